//! Editing a variant as text: the in-app editor and `$EDITOR` both edit the variant as a small
//! TOML document (system, template, examples, sampling...), parsed back strictly so a typo
//! is reported instead of silently dropped.

use super::keys::{Key, KeyCode};
use unicode_segmentation::UnicodeSegmentation;

use crate::prompt::Variant;

/// A multi-line text buffer with a cursor (row, byte column on a grapheme boundary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TextArea {
    pub lines: Vec<String>,
    pub row: usize,
    pub col: usize,
    /// First line shown.
    pub top: usize,
}

impl TextArea {
    pub fn new(text: &str) -> TextArea {
        let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
        if lines.is_empty() {
            lines.push(String::new());
        }
        TextArea {
            lines,
            row: 0,
            col: 0,
            top: 0,
        }
    }

    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    fn line(&self) -> &str {
        self.lines.get(self.row).map_or("", String::as_str)
    }

    fn prev_boundary(&self) -> usize {
        self.line()[..self.col]
            .grapheme_indices(true)
            .next_back()
            .map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self) -> usize {
        let l = self.line();
        l[self.col..]
            .graphemes(true)
            .next()
            .map_or(l.len(), |g| self.col + g.len())
    }

    /// Apply an editing key; returns whether it was handled.
    pub fn key(&mut self, k: &Key) -> bool {
        if k.ctrl_held() || k.alt_held() {
            return false;
        }
        match k.code {
            KeyCode::Char(c) => {
                let col = self.col;
                if let Some(l) = self.lines.get_mut(self.row) {
                    l.insert(col, c);
                    self.col += c.len_utf8();
                }
            }
            KeyCode::Tab => {
                let col = self.col;
                if let Some(l) = self.lines.get_mut(self.row) {
                    l.insert_str(col, "  ");
                    self.col += 2;
                }
            }
            KeyCode::Enter => {
                let rest = self.lines[self.row].split_off(self.col);
                self.lines.insert(self.row + 1, rest);
                self.row += 1;
                self.col = 0;
            }
            KeyCode::Backspace => {
                if self.col > 0 {
                    let start = self.prev_boundary();
                    let col = self.col;
                    self.lines[self.row].replace_range(start..col, "");
                    self.col = start;
                } else if self.row > 0 {
                    let cur = self.lines.remove(self.row);
                    self.row -= 1;
                    self.col = self.lines[self.row].len();
                    self.lines[self.row].push_str(&cur);
                }
            }
            KeyCode::Delete => {
                if self.col < self.line().len() {
                    let end = self.next_boundary();
                    let col = self.col;
                    self.lines[self.row].replace_range(col..end, "");
                } else if self.row + 1 < self.lines.len() {
                    let next = self.lines.remove(self.row + 1);
                    self.lines[self.row].push_str(&next);
                }
            }
            KeyCode::Left => {
                if self.col > 0 {
                    self.col = self.prev_boundary();
                } else if self.row > 0 {
                    self.row -= 1;
                    self.col = self.line().len();
                }
            }
            KeyCode::Right => {
                if self.col < self.line().len() {
                    self.col = self.next_boundary();
                } else if self.row + 1 < self.lines.len() {
                    self.row += 1;
                    self.col = 0;
                }
            }
            KeyCode::Up | KeyCode::Down => {
                let target = if k.code == KeyCode::Up {
                    self.row.checked_sub(1)
                } else {
                    Some(self.row + 1).filter(|r| *r < self.lines.len())
                };
                if let Some(r) = target {
                    let graphemes = self.line()[..self.col].graphemes(true).count();
                    self.row = r;
                    self.col = self
                        .line()
                        .grapheme_indices(true)
                        .nth(graphemes)
                        .map_or(self.line().len(), |(i, _)| i);
                }
            }
            KeyCode::Home => self.col = 0,
            KeyCode::End => self.col = self.line().len(),
            _ => return false,
        }
        true
    }

    /// Keep the cursor within `height` visible lines.
    pub fn scroll_into_view(&mut self, height: usize) {
        let h = height.max(1);
        if self.row < self.top {
            self.top = self.row;
        } else if self.row >= self.top + h {
            self.top = self.row + 1 - h;
        }
    }
}

/// The text a variant is edited as.
pub(crate) fn variant_to_text(v: &Variant) -> String {
    let body = toml::to_string_pretty(v).unwrap_or_else(|e| format!("# cannot show: {e}\n"));
    format!(
        "# Edit this variant; Ctrl-S applies (in $EDITOR: save and quit), Esc discards.\n{body}"
    )
}

/// Parse edited text back into a variant; `models` are the configured model names.
pub(crate) fn text_to_variant(text: &str, models: &[String]) -> Result<Variant, String> {
    let v: Variant = toml::from_str(text).map_err(|e| {
        let pos = e
            .span()
            .map(|s| {
                let (l, c) = crate::error::line_col(text, s.start);
                format!("line {l}, column {c}: ")
            })
            .unwrap_or_default();
        format!("{pos}{}", e.message().trim())
    })?;
    if v.name.trim().is_empty() {
        return Err("the variant needs a name".into());
    }
    if !models.contains(&v.model) {
        return Err(format!(
            "model {:?} is not configured; configured: {}",
            v.model,
            models.join(", ")
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> Key {
        Key::plain(c)
    }

    #[test]
    fn typing_newlines_and_deleting_wide_graphemes() {
        let mut t = TextArea::new("ab");
        t.key(&key(KeyCode::End));
        t.key(&key(KeyCode::Enter));
        for c in "日e\u{301}".chars() {
            t.key(&key(KeyCode::Char(c)));
        }
        assert_eq!(t.text(), "ab\n日e\u{301}");
        t.key(&key(KeyCode::Backspace));
        assert_eq!(t.text(), "ab\n日");
        t.key(&key(KeyCode::Home));
        t.key(&key(KeyCode::Backspace));
        assert_eq!(t.text(), "ab日");
        assert_eq!((t.row, t.col), (0, 2));
    }

    #[test]
    fn variants_round_trip_and_errors_have_positions() {
        let v = Variant {
            system: Some("Be brief.".into()),
            ..Variant::new("plain", "m", "Q: {{q}}")
        };
        let text = variant_to_text(&v);
        assert_eq!(text_to_variant(&text, &["m".into()]).unwrap(), v);
        let err =
            text_to_variant(&text.replace("template", "tempalte"), &["m".into()]).unwrap_err();
        assert!(err.contains("line") && err.contains("tempalte"), "{err}");
        let err = text_to_variant(&text, &["other".into()]).unwrap_err();
        assert!(err.contains("not configured"), "{err}");
    }
}
