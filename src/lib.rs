//! promptloom: a terminal prompt playground.
//!
//! Layout: `state/` (pure session data), `prompt/` (prompt files and techniques), `eval/`
//! (checks), `llm/` (backends), `store/` (session files), `config/`; `headless` and the
//! subcommands are drivers over them.

mod cli;
mod config;
mod error;
mod eval;
mod headless;
mod llm;
mod model_fetch;
mod prompt;
mod sanitize;
mod state;
mod store;
mod technique_run;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, ModelAction};
use crate::config::{Config, Dirs};
use crate::error::InputError;

/// Exit code for invalid input (prompt files, config, sessions, arguments).
pub(crate) const EXIT_INVALID: u8 = 2;

/// The binary's entry point.
pub fn main_entry() -> ExitCode {
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
    let dirs = Dirs::resolve(cli.config.as_deref());
    let config = Config::load(dirs, cli.config.is_some())?;
    let _log_guard = init_logging(&config.dirs);
    match cli.command {
        Some(Command::Run(args)) => runtime()?.block_on(headless::run(config, args)),
        Some(Command::Check { files }) => {
            for f in &files {
                let p = prompt::load(f, &config.model_names(), &config.default_model)?;
                println!(
                    "{}: ok ({} variants × {} cases)",
                    f.display(),
                    p.variants.len(),
                    p.cases.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Export {
            session,
            format,
            out,
        }) => {
            let s = store::load(&session)?;
            let text = store::export::export(&s, format)?;
            match out {
                Some(p) => store::write_atomic(&p, text.as_bytes())?,
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Technique { action }) => {
            runtime()?.block_on(technique_run::run(config, action))
        }
        Some(Command::Model { action }) => match action {
            ModelAction::Fetch { force } => {
                let path = model_fetch::fetch(&config.dirs.models_dir(), force)?;
                println!("{}", path.display());
                Ok(ExitCode::SUCCESS)
            }
            ModelAction::List => {
                model_fetch::list(&config);
                Ok(ExitCode::SUCCESS)
            }
        },
        None => match cli.prompt_file {
            Some(file) => runtime()?.block_on(headless::run(
                config,
                cli::RunArgs {
                    file,
                    model: None,
                    out: None,
                    json: false,
                    concurrency: 4,
                    cases: vec![],
                    variants: vec![],
                },
            )),
            None => {
                use clap::CommandFactory;
                Cli::command().print_help()?;
                Ok(ExitCode::SUCCESS)
            }
        },
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
