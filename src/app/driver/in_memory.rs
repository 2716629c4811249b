//! The real event loop without a terminal: a config and a prompt file written into a
//! directory and loaded as `promptloom PROMPT` loads them, ready for [`super::event_loop`] on
//! a [`super::MemoryScreen`]. Shared by what drives the loop in-process: the soak, the UI
//! bench's ingest figures and the loop's own tests.

use std::path::Path;

use super::{prepare, Open};
use crate::app::model::state::AppState;
use crate::config::theme::Theme;
use crate::config::{Config, Dirs};
use crate::store::journal::SessionStore;

/// What [`super::event_loop`] starts from.
pub(crate) type Prepared = (AppState, Theme, Option<SessionStore>);

/// `config` written as `dir/config.toml` and `prompt` as `dir/prompt_name`, loaded (data and
/// state dirs inside `dir`) and prepared, the session to be saved at `session` (never in the
/// working directory's `sessions/`).
pub(crate) fn load_in(
    dir: &Path,
    config: &str,
    prompt_name: &str,
    prompt: &str,
    session: &Path,
) -> anyhow::Result<(Config, Prepared)> {
    let config_file = dir.join("config.toml");
    std::fs::write(&config_file, config)?;
    let prompt_file = dir.join(prompt_name);
    std::fs::write(&prompt_file, prompt)?;
    let dirs = Dirs {
        config_file,
        data_dir: dir.join("data"),
        state_dir: dir.join("state"),
    };
    let config = Config::load(dirs, true)?;
    let open = Open {
        prompt_file: Some(prompt_file),
        session: None,
        theme: None,
    };
    let mut prepared = prepare(&config, &open)?;
    prepared.0.session_path = session.to_path_buf();
    // The browser lists the sandbox's folders only: the tests run in the checkout, whose
    // `sessions/` (and the prompt files its sessions point at) a monkey must not open and save.
    prepared.0.rating.session_dirs = std::iter::once(config.dirs.sessions_dir())
        .chain(session.parent().map(Path::to_path_buf))
        .collect();
    Ok((config, prepared))
}
