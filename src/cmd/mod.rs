//! The subcommands, one floor above everything else: each owns its clap arguments and drives
//! the core (prompt files, sessions, techniques) and the backends headlessly. `cli.rs` only
//! composes their arguments and `lib.rs` only dispatches; nothing below imports `cmd/`.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod check;
pub(crate) mod compare;
pub(crate) mod export;
pub(crate) mod import;
pub(crate) mod model;
#[cfg(feature = "local")]
pub(crate) mod quantize;
pub(crate) mod rate;
pub(crate) mod run;
pub(crate) mod technique;
pub(crate) mod tools;
