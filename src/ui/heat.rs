//! The heat layer (`H`): the focused answer's tokens shaded by probability, the token cursor,
//! and the alternatives at the cursor with their probabilities.
//!
//! Shading never rests on colour alone: tokens below 90% are underlined, below 50% also bold,
//! and the cursor is reversed, so the view reads the same with `NO_COLOR` and in every theme.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Widget};
use ratatui::Frame;

use crate::app::model::heat::{HeatView, LOW, MID};
use crate::app::model::state::AppState;
use crate::config::theme::Theme;
use crate::sanitize::{one_line, visible};
use crate::state::logprobs::TokenProbs;

/// Rows under the text: the cursor line, the alternatives, the keys.
const ALT_ROWS: u16 = 5;

/// The style of a token of probability `p`.
pub(crate) fn heat_style(p: f64, theme: &Theme) -> Style {
    if p < LOW {
        theme
            .style("heat.low")
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    } else if p < MID {
        theme.style("heat.mid").add_modifier(Modifier::UNDERLINED)
    } else {
        theme.style("text")
    }
}

fn cursor_style(theme: &Theme) -> Style {
    theme
        .style("heat.cursor")
        .add_modifier(Modifier::REVERSED | Modifier::BOLD)
}

/// What the cursor shows for a token that is only whitespace.
fn shown(text: &str) -> String {
    if !text.trim().is_empty() {
        return text.to_string();
    }
    text.chars()
        .map(|c| match c {
            '\n' => "⏎\n".to_string(),
            ' ' => "␣".to_string(),
            '\t' => "⇥".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// Percent with one decimal, `<0.1%` below that.
pub(crate) fn percent(p: f64) -> String {
    if p > 0.0 && p < 0.001 {
        "<0.1%".into()
    } else {
        format!("{:.1}%", 100.0 * p)
    }
}

pub(crate) fn draw(frame: &mut Frame, area: Rect, state: &AppState, h: &HeatView, theme: &Theme) {
    let Some(node) = state.session.node(h.node) else {
        let r = super::frame::body(area);
        Clear.render(r, frame.buffer_mut());
        return;
    };
    let probs = &node.logprobs;
    let low = probs.iter().filter(|t| t.prob() < LOW).count();
    let title = format!(
        " Heat · #{} {} · {} · {} tokens, {low} below 50% · Esc closes ",
        node.id,
        one_line(&node.variant, 24),
        one_line(&node.model, 20),
        probs.len()
    );
    let Some(inner) = super::frame::overlay(frame, area, (10, 4), &title, theme) else {
        return;
    };
    let alt_rows = ALT_ROWS.min(inner.height.saturating_sub(1));
    let text_rows = inner.height - alt_rows;
    draw_tokens(
        frame,
        Rect::new(inner.x, inner.y, inner.width, text_rows),
        probs,
        h.cursor,
        theme,
    );
    draw_cursor(
        frame,
        Rect::new(inner.x, inner.y + text_rows, inner.width, alt_rows),
        state,
        h,
        theme,
    );
}

/// The tokens, wrapped, scrolled so the cursor's row is visible.
fn draw_tokens(frame: &mut Frame, r: Rect, probs: &TokenProbs, cursor: usize, theme: &Theme) {
    if r.height == 0 {
        return;
    }
    let cur = cursor_style(theme);
    let texts: Vec<(String, Style)> = probs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if i == cursor {
                (shown(t.text), cur)
            } else {
                (t.text.to_string(), heat_style(t.prob(), theme))
            }
        })
        .collect();
    let parts: Vec<(&str, Style)> = texts.iter().map(|(t, s)| (t.as_str(), *s)).collect();
    let lines = super::diff::wrap_styled(&parts, r.width);
    let at = lines
        .iter()
        .position(|l| l.spans.iter().any(|s| s.style == cur))
        .unwrap_or(0);
    let rows = usize::from(r.height);
    let top = at.saturating_sub(rows.saturating_sub(1) / 2);
    let top = top.min(lines.len().saturating_sub(rows));
    for (k, line) in lines.iter().skip(top).take(rows).enumerate() {
        frame
            .buffer_mut()
            .set_line(r.x, r.y + k as u16, line, r.width);
    }
}

/// The cursor's token, its alternatives (the selected one marked), the keys.
fn draw_cursor(frame: &mut Frame, r: Rect, state: &AppState, h: &HeatView, theme: &Theme) {
    let Some(node) = state.session.node(h.node) else {
        return;
    };
    let muted = theme.style("muted");
    let text = theme.style("text");
    let mut lines: Vec<Line<'static>> = Vec::new();
    if let Some(t) = node.logprobs.get(h.cursor) {
        lines.push(Line::from(vec![
            Span::styled(
                format!("token {}/{} ", h.cursor + 1, node.logprobs.len()),
                theme.style("header.key"),
            ),
            Span::styled(format!("{:?}", visible(t.text)), cursor_style(theme)),
            Span::styled(
                format!(" p = {} (log p {:.3})", percent(t.prob()), t.logprob),
                text,
            ),
        ]));
        let alts: Vec<(&str, f32)> = t.alternatives().collect();
        if alts.is_empty() {
            lines.push(Line::styled(
                "  no alternatives recorded (logprobs = 0); i types a token to branch with",
                muted,
            ));
        }
        let room = usize::from(r.height.saturating_sub(2)).max(1);
        let first = h.alt.saturating_sub(room.saturating_sub(1));
        for (j, (a, lp)) in alts.iter().enumerate().skip(first).take(room) {
            let p = f64::from(*lp).exp();
            let bar = "█".repeat(((p * 10.0).round() as usize).min(10));
            let chosen = if *a == t.text { " (chosen)" } else { "" };
            let line = format!(
                "{} {:>6} {bar:<10} {:?}{chosen}",
                if j == h.alt { "▸" } else { " " },
                percent(p),
                visible(a)
            );
            let style = if j == h.alt {
                theme.style("overlay.selected").add_modifier(Modifier::BOLD)
            } else {
                text
            };
            lines.push(Line::styled(line, style));
        }
    }
    let keys = "←/→ token · n next unsure · ↑/↓ alternative · Enter branch · i type a token · plain ≥90%, underlined <90%, bold <50%";
    for (k, l) in lines
        .iter()
        .take(usize::from(r.height.saturating_sub(1)))
        .enumerate()
    {
        frame.buffer_mut().set_line(r.x, r.y + k as u16, l, r.width);
    }
    if r.height > 0 {
        frame.buffer_mut().set_line(
            r.x,
            r.y + r.height - 1,
            &Line::styled(one_line(keys, usize::from(r.width)), muted),
            r.width,
        );
    }
}

/// For a branch made in the heat view: where it came from and how much text it shares.
pub(crate) fn branch_note(n: &crate::state::session::Node) -> Option<String> {
    let of = n.meta.get("branch_of")?;
    let at = n
        .meta
        .get("branch_token")
        .and_then(|t| t.parse::<usize>().ok())
        .map_or(0, |t| t + 1);
    let shared = n
        .meta
        .get("shared_prefix_bytes")
        .and_then(|b| b.parse::<usize>().ok())
        .unwrap_or(0);
    let prefix = n.text.get(..shared).unwrap_or("");
    let token = n
        .logprobs
        .get(at.saturating_sub(1))
        .map(|t| one_line(t.text, 20))
        .unwrap_or_default();
    Some(format!(
        "↳ branch of #{of} at token {at}: shares {:?}, then {token:?}",
        one_line(prefix, 40)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shading_uses_modifiers_not_only_colour() {
        let t = Theme::load("dark", crate::config::theme::ColorDepth::None).unwrap();
        let low = heat_style(0.2, &t);
        let mid = heat_style(0.7, &t);
        let high = heat_style(0.95, &t);
        assert!(low
            .add_modifier
            .contains(Modifier::BOLD | Modifier::UNDERLINED));
        assert!(mid.add_modifier.contains(Modifier::UNDERLINED));
        assert!(!mid.add_modifier.contains(Modifier::BOLD));
        assert!(!high.add_modifier.contains(Modifier::UNDERLINED));
        assert_eq!(low.fg, None, "NO_COLOR drops colours");
    }

    #[test]
    fn percentages() {
        assert_eq!(percent(0.62), "62.0%");
        assert_eq!(percent(0.0004), "<0.1%");
        assert_eq!(percent(0.0), "0.0%");
    }
}

#[cfg(test)]
mod snapshots {
    use crate::app::model::keys::KeyCode;
    use ratatui::backend::TestBackend;
    use ratatui::style::Modifier;
    use ratatui::Terminal;

    use crate::app::update::heat::tests::answered_app;
    use crate::app::update::tests::key;
    use crate::config::theme::{ColorDepth, Theme};
    use crate::ui::tests::screen;

    #[test]
    fn heat_view_at_two_sizes() {
        for (w, h) in [(80, 24), (160, 48)] {
            let (mut s, _) = answered_app();
            key(&mut s, KeyCode::Char('H'));
            key(&mut s, KeyCode::Char('n'));
            key(&mut s, KeyCode::Char('j'));
            insta::assert_snapshot!(format!("heat_{w}x{h}"), screen(&mut s, w, h));
        }
    }

    /// In every theme and without colour, the unsure token is bold and underlined, the cursor
    /// reversed, a sure token plain.
    #[test]
    fn readable_in_every_theme_and_without_colour() {
        for (name, depth) in [
            ("dark", ColorDepth::TrueColor),
            ("light", ColorDepth::TrueColor),
            ("high-contrast", ColorDepth::TrueColor),
            ("dark", ColorDepth::None),
        ] {
            let theme = Theme::load(name, depth).unwrap();
            let (mut s, _) = answered_app();
            key(&mut s, KeyCode::Char('H'));
            key(&mut s, KeyCode::Char('l')); // cursor on " is"
            let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
            let mut cache = crate::ui::ViewCache::default();
            t.draw(|f| {
                crate::ui::draw(f, &s, &mut cache, &theme);
            })
            .unwrap();
            let buf = t.backend().buffer().clone();
            // The heat box's first text row: "It is London."
            let row = (0..24u16)
                .find(|&y| {
                    let line: String = (0..80u16).map(|x| buf[(x, y)].symbol()).collect();
                    line.contains("It is London.")
                })
                .unwrap_or_else(|| panic!("{name}: no text row"));
            let syms: Vec<String> = (0..80u16)
                .map(|x| buf[(x, row)].symbol().to_string())
                .collect();
            let col = |needle: &str| -> u16 {
                (0..80usize)
                    .find(|&x| {
                        needle
                            .chars()
                            .enumerate()
                            .all(|(k, c)| syms.get(x + k).is_some_and(|s| *s == c.to_string()))
                    })
                    .unwrap() as u16
            };
            let m = |x: u16| buf[(x, row)].modifier;
            let london = col("London");
            assert!(
                m(london).contains(Modifier::BOLD | Modifier::UNDERLINED),
                "{name}: {:?}",
                m(london)
            );
            assert!(m(col("is")).contains(Modifier::REVERSED), "{name}: cursor");
            assert!(
                !m(col("It")).contains(Modifier::UNDERLINED),
                "{name}: sure token"
            );
            if depth == ColorDepth::None {
                assert_eq!(buf[(london, row)].fg, ratatui::style::Color::Reset);
            }
        }
    }
}
