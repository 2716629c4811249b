//! promptloom: a terminal prompt playground.
//!
//! Layout (see ARCHITECTURE.md): the core is `chat` (request vocabulary), `state/` (sessions
//! and the technique machines), `prompt/` (prompt files), `eval/` (checks, judges, rankings)
//! and `technique/` (one interpreter of the techniques); `store/` keeps sessions on disk,
//! `llm/` holds the backends, `config/` the config, keymap and themes. `app/` and `ui/` are
//! the playground, `cmd/` the headless subcommands; `cli.rs` composes their arguments and
//! this file dispatches.

mod app;
mod bench;
#[doc(hidden)]
pub mod bench_api;
mod chat;
mod cli;
mod cmd;
mod config;
mod doctor;
mod error;
mod eval;
#[cfg(test)]
mod front_end_parity;
mod fuzz;
mod import_promptfoo;
mod llm;
mod model_fetch;
mod price;
mod progress;
mod prompt;
#[cfg(feature = "local")]
mod quantize;
mod sanitize;
#[cfg(test)]
mod soak;
mod state;
mod store;
mod technique;
mod tool_run;
mod ui;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::{Config, Dirs};
use crate::error::InputError;

/// Exit code for invalid input (prompt files, config, sessions, arguments).
pub(crate) const EXIT_INVALID: u8 = 2;
/// Exit code for a binary built for CPU features this CPU lacks.
const EXIT_CPU: u8 = 3;

/// The binary's entry point.
pub fn main_entry() -> ExitCode {
    store::limit_arenas();
    // First, before anything could run an instruction this CPU lacks.
    if let Err(why) = doctor::cpu::startup_check() {
        eprintln!("error: {why}");
        return ExitCode::from(EXIT_CPU);
    }
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(input) = e.downcast_ref::<InputError>() {
                eprintln!("error: {input}");
                ExitCode::from(EXIT_INVALID)
            } else {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let explicit_config = cli.config.clone();
    if let Some(Command::Doctor) = cli.command {
        // Before loading the config: a bad config is one of its findings.
        return Ok(doctor::run(explicit_config.as_deref()));
    }
    let dirs = Dirs::resolve(cli.config.as_deref());
    let config = Config::load(dirs, cli.config.is_some())?;
    let _log_guard = init_logging(&config.dirs);
    llm::embed::configure(&config);
    match cli.command {
        Some(Command::Run(args)) => runtime()?.block_on(cmd::run::run(config, args)),
        Some(Command::Check(args)) => cmd::check::run(&config, args),
        Some(Command::Import(args)) => cmd::import::run(&config, args),
        Some(Command::Export(args)) => {
            cmd::export::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Compare(args)) => cmd::compare::run(args),
        Some(Command::Rate(args)) => {
            let rater = config.rater_name();
            cmd::rate::run(args, rater)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Technique { action }) => {
            runtime()?.block_on(cmd::technique::run(config, action))
        }
        #[cfg(feature = "local")]
        Some(Command::Quantize(args)) => runtime()?.block_on(cmd::quantize::run(args)),
        Some(Command::Bench(args)) => bench::run(config, args),
        Some(Command::Tools { action }) => runtime()?.block_on(cmd::tools::run(config, action)),
        Some(Command::Doctor) => Ok(doctor::run(explicit_config.as_deref())),
        Some(Command::Model { action }) => cmd::model::run(&config, action),
        None => runtime()?.block_on(app::run(
            config,
            app::driver::Open {
                prompt_file: cli.prompt_file,
                session: cli.session,
                theme: cli.theme,
            },
        )),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Log to a file in the state dir (never to the terminal). `PROMPTLOOM_LOG` sets the filter.
fn init_logging(dirs: &Dirs) -> Option<()> {
    let dir = &dirs.state_dir;
    std::fs::create_dir_all(dir).ok()?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("promptloom.log"))
        .ok()?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("PROMPTLOOM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("promptloom=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .try_init()
        .ok()
}

/// What `examples/bare_mistralrs.rs` and the engine tests need from the local backend.
#[cfg(feature = "local")]
#[doc(hidden)]
pub use llm::local::engine_api;
