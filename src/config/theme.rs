//! Themes: semantic colour roles (`pane.focused.border`, `status.error`, `check.pass`...)
//! mapped to styles, plus the syntect theme used for code blocks.
//!
//! Built-in themes (`themes/*.toml`) are embedded; `--theme` or config `theme` names one of
//! them or a path to a theme file, which may `inherits` another by name: a built-in theme or
//! `NAME.toml` beside the inheriting file (never a path, so a theme can't make promptloom read
//! `/dev/zero` or a file outside its folder). Theme files are at most [`MAX_THEME_BYTES`] and
//! must be regular files. Views ask for a role, never
//! for a colour, so a theme can restyle everything. `NO_COLOR` drops colours (keeping bold
//! and the like); terminals without truecolor get RGB mapped onto the 256-colour palette.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

use crate::error::InputError;

const BUILTIN: &[(&str, &str)] = &[
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

/// Every role a theme may set; a typo in a theme file is an error.
pub(crate) const ROLES: &[&str] = &[
    "text",
    "muted",
    "header",
    "header.key",
    "footer",
    "footer.key",
    "pane.border",
    "pane.focused.border",
    "pane.title",
    "status.idle",
    "status.queued",
    "status.waiting",
    "status.streaming",
    "status.done",
    "status.cancelled",
    "status.error",
    "check.pass",
    "check.fail",
    "diff.added",
    "diff.removed",
    "rating.star",
    "prompt.label",
    "prompt.var",
    "prompt.technique",
    "chart.bar",
    "chart.interval",
    "md.heading",
    "md.emphasis",
    "md.strong",
    "md.code",
    "md.list",
    "md.fence",
    "overlay.border",
    "overlay.selected",
    "error",
    "heat.low",
    "heat.mid",
    "heat.cursor",
];

/// Theme files larger than this are refused (the built-in ones are about 2 KB).
pub(crate) const MAX_THEME_BYTES: u64 = 256 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: Option<String>,
    inherits: Option<toml::Spanned<String>>,
    syntect: Option<String>,
    #[serde(default)]
    roles: BTreeMap<toml::Spanned<String>, StyleSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StyleSpec {
    fg: Option<toml::Spanned<String>>,
    bg: Option<toml::Spanned<String>>,
    #[serde(default)]
    bold: bool,
    #[serde(default)]
    italic: bool,
    #[serde(default)]
    underline: bool,
    #[serde(default)]
    reversed: bool,
    #[serde(default)]
    dim: bool,
}

/// How many colours the terminal shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColorDepth {
    None,
    Indexed256,
    TrueColor,
}

impl ColorDepth {
    /// From `NO_COLOR` and `COLORTERM`.
    pub fn from_env() -> ColorDepth {
        if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            return ColorDepth::None;
        }
        match std::env::var("COLORTERM").as_deref() {
            Ok("truecolor") | Ok("24bit") => ColorDepth::TrueColor,
            _ => ColorDepth::Indexed256,
        }
    }
}

/// A loaded theme.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Theme {
    pub name: String,
    pub syntect: String,
    pub depth: ColorDepth,
    roles: BTreeMap<String, Style>,
}

impl Theme {
    /// The default dark theme, full colour (for tests and snapshots).
    pub fn builtin_dark() -> Theme {
        match Theme::load("dark", ColorDepth::TrueColor) {
            Ok(t) => t,
            Err(e) => panic!("embedded theme is invalid: {e}"),
        }
    }

    /// A built-in theme by name, or a theme file by path.
    pub fn load(name_or_path: &str, depth: ColorDepth) -> Result<Theme, InputError> {
        let mut theme = Theme {
            name: name_or_path.to_string(),
            syntect: "base16-ocean.dark".into(),
            depth,
            roles: BTreeMap::new(),
        };
        theme.apply(name_or_path, 0)?;
        Ok(theme)
    }

    fn apply(&mut self, name_or_path: &str, depth: usize) -> Result<(), InputError> {
        let (path, text) = match BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            Some((n, t)) => (
                PathBuf::from(format!("<built-in theme {n}>")),
                t.to_string(),
            ),
            None => {
                let p = PathBuf::from(name_or_path);
                let t = read_theme_file(&p)?;
                (p, t)
            }
        };
        if depth > 8 {
            return Err(InputError::plain(
                &path,
                "`inherits` chain is too deep (a cycle?)",
            ));
        }
        let file: ThemeFile =
            toml::from_str(&text).map_err(|e| InputError::toml(&path, &text, &e))?;
        if let Some(parent) = &file.inherits {
            let resolved = resolve_inherits(&path, parent.get_ref()).map_err(|why| {
                InputError::at(&path, &text, parent.span().start, why).with_hint(format!(
                    "`inherits` names a theme: a built-in one ({}) or NAME for NAME.toml in this theme's folder",
                    builtin_names()
                ))
            })?;
            self.apply(&resolved, depth + 1)?;
        }
        if let Some(n) = file.name {
            self.name = n;
        }
        if let Some(s) = file.syntect {
            self.syntect = s;
        }
        for (role, spec) in file.roles {
            if !ROLES.contains(&role.get_ref().as_str()) {
                return Err(InputError::at(
                    &path,
                    &text,
                    role.span().start,
                    format!("unknown role {:?}", role.get_ref()),
                )
                .with_hint(format!("roles: {}", ROLES.join(", "))));
            }
            let style = spec.to_style(&path, &text, self.depth)?;
            self.roles.insert(role.into_inner(), style);
        }
        Ok(())
    }

    /// The style of a role (unset roles are the terminal's default).
    pub fn style(&self, role: &str) -> Style {
        self.roles.get(role).copied().unwrap_or_default()
    }

    /// Map a syntect colour to this terminal.
    pub fn rgb(&self, r: u8, g: u8, b: u8) -> Option<Color> {
        adapt(Color::Rgb(r, g, b), self.depth)
    }
}

fn builtin_names() -> String {
    BUILTIN
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A theme file's text: a regular file of at most [`MAX_THEME_BYTES`], in UTF-8.
fn read_theme_file(p: &Path) -> Result<String, InputError> {
    use std::io::Read;
    let hint = || format!("built-in themes: {}", builtin_names());
    // Metadata first: opening a FIFO would block, and /dev/zero never ends.
    let meta = std::fs::metadata(p).map_err(|e| InputError::io(p, &e).with_hint(hint()))?;
    if !meta.is_file() {
        return Err(
            InputError::plain(p, "not a theme file (not a regular file)").with_hint(hint()),
        );
    }
    let too_big = || {
        InputError::plain(
            p,
            format!("theme file is larger than {} KiB", MAX_THEME_BYTES / 1024),
        )
    };
    if meta.len() > MAX_THEME_BYTES {
        return Err(too_big());
    }
    let f = std::fs::File::open(p).map_err(|e| InputError::io(p, &e))?;
    let mut bytes = Vec::new();
    f.take(MAX_THEME_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| InputError::io(p, &e))?;
    if bytes.len() as u64 > MAX_THEME_BYTES {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|e| {
        InputError::plain(
            p,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// What `inherits = "NAME"` in the theme at `from` names: a built-in theme, or `NAME.toml` in
/// `from`'s folder. Paths are refused: no separators, no `..`, nothing hidden.
fn resolve_inherits(from: &Path, name: &str) -> Result<String, String> {
    if BUILTIN.iter().any(|(n, _)| *n == name) {
        return Ok(name.to_string());
    }
    let stem = name.strip_suffix(".toml").unwrap_or(name);
    let ok = !stem.is_empty()
        && !stem.starts_with('.')
        && stem
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !stem.contains("..");
    if !ok {
        return Err(format!(
            "`inherits = {name:?}`: not a theme name (letters, digits, `-`, `_`; no paths)"
        ));
    }
    let dir = match from.parent() {
        // A built-in theme inheriting something that is not built in (can't happen).
        _ if from.to_string_lossy().starts_with("<built-in") => None,
        Some(d) if d.as_os_str().is_empty() => Some(Path::new(".")),
        d => d,
    };
    let candidate = dir.map(|d| d.join(format!("{stem}.toml")));
    match candidate {
        Some(c) if c.is_file() => Ok(c.to_string_lossy().into_owned()),
        Some(c) => Err(format!(
            "`inherits = {name:?}`: no such theme (not built in, and no {})",
            c.display()
        )),
        None => Err(format!("`inherits = {name:?}`: no such built-in theme")),
    }
}

impl StyleSpec {
    fn to_style(&self, path: &Path, text: &str, depth: ColorDepth) -> Result<Style, InputError> {
        let mut s = Style::default();
        let color = |c: &toml::Spanned<String>| -> Result<Option<Color>, InputError> {
            let parsed = parse_color(c.get_ref())
                .ok_or_else(|| InputError::at(path, text, c.span().start, format!("unknown colour {:?}; use a name (red, lightblue, darkgray...), #rrggbb or 0..255", c.get_ref())))?;
            Ok(adapt(parsed, depth))
        };
        if let Some(fg) = &self.fg {
            if let Some(c) = color(fg)? {
                s = s.fg(c);
            }
        }
        if let Some(bg) = &self.bg {
            if let Some(c) = color(bg)? {
                s = s.bg(c);
            }
        }
        for (on, m) in [
            (self.bold, Modifier::BOLD),
            (self.italic, Modifier::ITALIC),
            (self.underline, Modifier::UNDERLINED),
            (self.reversed, Modifier::REVERSED),
            (self.dim, Modifier::DIM),
        ] {
            if on {
                s = s.add_modifier(m);
            }
        }
        Ok(s)
    }
}

fn parse_color(s: &str) -> Option<Color> {
    if let Some(hex) = s.strip_prefix('#') {
        if hex.len() == 6 {
            let v = u32::from_str_radix(hex, 16).ok()?;
            return Some(Color::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8));
        }
        return None;
    }
    if let Ok(i) = s.parse::<u8>() {
        return Some(Color::Indexed(i));
    }
    Some(match s.to_ascii_lowercase().as_str() {
        "reset" | "default" => Color::Reset,
        "black" => Color::Black,
        "red" => Color::Red,
        "green" => Color::Green,
        "yellow" => Color::Yellow,
        "blue" => Color::Blue,
        "magenta" => Color::Magenta,
        "cyan" => Color::Cyan,
        "gray" | "grey" => Color::Gray,
        "darkgray" | "darkgrey" => Color::DarkGray,
        "lightred" => Color::LightRed,
        "lightgreen" => Color::LightGreen,
        "lightyellow" => Color::LightYellow,
        "lightblue" => Color::LightBlue,
        "lightmagenta" => Color::LightMagenta,
        "lightcyan" => Color::LightCyan,
        "white" => Color::White,
        _ => return None,
    })
}

/// A colour as this terminal can show it: none under `NO_COLOR`, RGB mapped to the xterm
/// 256-colour cube without truecolor.
fn adapt(c: Color, depth: ColorDepth) -> Option<Color> {
    match (depth, c) {
        (ColorDepth::None, _) => None,
        (ColorDepth::Indexed256, Color::Rgb(r, g, b)) => Some(Color::Indexed(rgb_to_256(r, g, b))),
        _ => Some(c),
    }
}

/// Nearest xterm-256 colour: the 6×6×6 cube or the grey ramp, whichever is closer.
pub(crate) fn rgb_to_256(r: u8, g: u8, b: u8) -> u8 {
    const LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];
    let near = |v: u8| -> usize {
        (0..6)
            .min_by_key(|&i| (i32::from(LEVELS[i]) - i32::from(v)).abs())
            .unwrap_or(0)
    };
    let (ri, gi, bi) = (near(r), near(g), near(b));
    let cube = 16 + 36 * ri + 6 * gi + bi;
    let dist = |a: (u8, u8, u8)| -> i32 {
        let d = |x: u8, y: u8| (i32::from(x) - i32::from(y)).pow(2);
        d(a.0, r) + d(a.1, g) + d(a.2, b)
    };
    let cube_rgb = (LEVELS[ri], LEVELS[gi], LEVELS[bi]);
    let avg = (u32::from(r) + u32::from(g) + u32::from(b)) / 3;
    let gi_ramp = ((avg.saturating_sub(8)) / 10).min(23) as u8;
    let grey = 8 + 10 * gi_ramp;
    if dist((grey, grey, grey)) < dist(cube_rgb) {
        232 + gi_ramp
    } else {
        cube as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_themes_parse_and_set_every_role() {
        for (name, _) in BUILTIN {
            let t = Theme::load(name, ColorDepth::TrueColor).unwrap();
            for role in ROLES {
                assert!(t.roles.contains_key(*role), "{name} lacks {role}");
            }
        }
        let light = Theme::load("light", ColorDepth::TrueColor).unwrap();
        assert_eq!(light.syntect, "InspiredGitHub");
        assert_eq!(light.style("pane.focused.border").fg, Some(Color::Blue));
        // inherited from dark
        assert_eq!(light.style("status.error").fg, Some(Color::Red));
    }

    #[test]
    fn no_color_keeps_modifiers_only() {
        let t = Theme::load("dark", ColorDepth::None).unwrap();
        let s = t.style("pane.focused.border");
        assert_eq!(s.fg, None);
        assert!(s.add_modifier.contains(Modifier::BOLD));
    }

    #[test]
    fn rgb_falls_back_to_256_colours() {
        let t = Theme::load("light", ColorDepth::Indexed256).unwrap();
        assert!(matches!(t.style("md.code").fg, Some(Color::Indexed(_))));
        assert_eq!(rgb_to_256(255, 0, 0), 196);
        assert_eq!(rgb_to_256(128, 128, 128), 244);
    }

    #[test]
    fn inherits_names_a_theme_never_a_path() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("themes")).unwrap();
        let dir = root.path().join("themes");
        let p = dir.join("t.toml");
        let load = |text: &str| {
            std::fs::write(&p, text).unwrap();
            Theme::load(p.to_str().unwrap(), ColorDepth::TrueColor).map_err(|e| e.to_string())
        };
        for bad in ["/dev/zero", "../x", "sub/x", "..", ".hidden", ""] {
            let e = load(&format!("name = \"t\"\ninherits = {bad:?}\n")).unwrap_err();
            assert!(e.contains("t.toml:2:12: `inherits"), "{bad}: {e}");
            assert!(e.contains("not a theme name"), "{bad}: {e}");
        }
        // A file `../x.toml` exists, still refused: only names resolve.
        std::fs::write(root.path().join("x.toml"), "[roles]\n").unwrap();
        assert!(load("inherits = \"../x\"\n")
            .unwrap_err()
            .contains("not a theme name"));
        // A missing name says where it looked.
        let e = load("inherits = \"nope\"\n").unwrap_err();
        assert!(
            e.contains("no such theme") && e.contains("nope.toml"),
            "{e}"
        );
        // A sibling theme by name, and a built-in one.
        std::fs::write(
            dir.join("base.toml"),
            "inherits = \"light\"\n[roles]\n\"text\" = { fg = \"magenta\" }\n",
        )
        .unwrap();
        let t = Theme::load(
            {
                std::fs::write(&p, "inherits = \"base\"\n").unwrap();
                p.to_str().unwrap()
            },
            ColorDepth::TrueColor,
        )
        .unwrap();
        assert_eq!(t.style("text").fg, Some(Color::Magenta));
        assert_eq!(t.syntect, "InspiredGitHub");
    }

    #[test]
    fn theme_files_are_bounded_regular_files() {
        let e = Theme::load("/dev/zero", ColorDepth::TrueColor)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/dev/zero: not a theme file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.toml");
        let mut big = String::from("[roles]\n");
        while big.len() as u64 <= MAX_THEME_BYTES {
            big.push_str("# padding padding padding padding padding padding padding\n");
        }
        std::fs::write(&p, big).unwrap();
        let e = Theme::load(p.to_str().unwrap(), ColorDepth::TrueColor)
            .unwrap_err()
            .to_string();
        assert!(e.contains("larger than 256 KiB"), "{e}");
    }

    #[test]
    fn theme_file_errors_have_positions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.toml");
        std::fs::write(
            &p,
            "inherits = \"dark\"\n[roles]\n\"pane.focussed.border\" = { fg = \"red\" }\n",
        )
        .unwrap();
        let e = Theme::load(p.to_str().unwrap(), ColorDepth::TrueColor)
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.toml:3:1: unknown role"), "{e}");
        std::fs::write(&p, "[roles]\n\"text\" = { fg = \"redd\" }\n").unwrap();
        let e = Theme::load(p.to_str().unwrap(), ColorDepth::TrueColor)
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.toml:2:17: unknown colour"), "{e}");
    }
}
