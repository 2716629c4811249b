//! Errors about the user's input files, always naming file, line and column.
//!
//! Everything a user writes (prompt files, config, sessions, themes, keymaps) is reported
//! through [`InputError`], whose `Display` is `path:line:col: what is wrong` followed by what
//! to do, the form editors and terminals make clickable.

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem in a file the user wrote. The process exits with code 2 for these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InputError {
    pub path: PathBuf,
    /// 1-based line and column, when the problem has a place.
    pub position: Option<(usize, usize)>,
    pub message: String,
    pub hint: Option<String>,
}

impl InputError {
    pub fn plain(path: &Path, message: impl Into<String>) -> Self {
        InputError {
            path: path.to_path_buf(),
            position: None,
            message: message.into(),
            hint: None,
        }
    }

    /// An error at byte offset `offset` of `text`.
    pub fn at(path: &Path, text: &str, offset: usize, message: impl Into<String>) -> Self {
        InputError {
            path: path.to_path_buf(),
            position: Some(line_col(text, offset)),
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn io(path: &Path, err: &std::io::Error) -> Self {
        Self::plain(path, format!("cannot read: {err}"))
    }

    /// A TOML syntax or schema error, with the position toml reports.
    pub fn toml(path: &Path, text: &str, err: &toml::de::Error) -> Self {
        let message = err.message().trim().to_string();
        match err.span() {
            Some(span) => Self::at(path, text, span.start, message),
            None => Self::plain(path, message),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => {
                write!(f, "{}:{line}:{col}: {}", self.path.display(), self.message)?
            }
            None => write!(f, "{}: {}", self.path.display(), self.message)?,
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InputError {}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let t = "a = 1\nbé = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, t.find('=').unwrap()), (1, 3));
        let second_eq = t.rfind('=').unwrap();
        assert_eq!(line_col(t, second_eq), (2, 4));
    }

    #[test]
    fn display_has_path_line_col_and_hint() {
        let e = InputError::at(Path::new("p.toml"), "x\ny", 2, "bad").with_hint("fix it");
        assert_eq!(e.to_string(), "p.toml:2:1: bad\n  hint: fix it");
    }
}
