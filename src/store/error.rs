//! The error a session save reports, in its own leaf so the writer (`format.rs`) and the
//! file operations in `store/mod.rs` share it without importing each other.

use std::path::PathBuf;

/// Errors saving a session.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SaveError {
    #[error("cannot serialise session: {0}")]
    Serialise(#[from] toml::ser::Error),
    #[error("cannot serialise session: {0}")]
    Invalid(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}
