//! Command-line definitions.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::store::export::Format;

/// A terminal prompt playground: prompt variants side by side, streaming from a local GGUF
/// model or remote APIs.
#[derive(Debug, Parser)]
#[command(name = "promptloom", version, about)]
pub(crate) struct Cli {
    /// Config file (default: the platform config dir's promptloom/config.toml, or
    /// $PROMPTLOOM_CONFIG).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// Prompt file to open (with no subcommand).
    #[arg(value_name = "PROMPT_FILE")]
    pub prompt_file: Option<PathBuf>,

    /// Reopen a session file (with no subcommand).
    #[arg(long, value_name = "FILE")]
    pub session: Option<PathBuf>,

    /// Theme name or path to a theme file.
    #[arg(long, global = true)]
    pub theme: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run every variant × case of a prompt file headlessly and print a table.
    Run(RunArgs),
    /// Check prompt files for errors without running anything.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Export a session as JSONL, CSV, Markdown or DPO preference pairs.
    Export {
        session: PathBuf,
        #[arg(long, value_enum)]
        format: Format,
        /// Write here instead of stdout.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Rate answers and record blind votes in a session, from flags or stdin.
    Rate(crate::rate::RateArgs),
    /// Manage models.
    Model {
        #[command(subcommand)]
        action: ModelAction,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    pub file: PathBuf,
    /// Run every variant on this configured model instead of the ones the file names.
    #[arg(long)]
    pub model: Option<String>,
    /// Session file to write (default: a new file in ./sessions/ when it exists, else in the
    /// data dir).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print results as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Only these cases (repeatable).
    #[arg(long = "case")]
    pub cases: Vec<String>,
    /// Only these variants (repeatable).
    #[arg(long = "variant")]
    pub variants: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ModelAction {
    /// Download the default model (SmolLM2-135M-Instruct, GGUF Q4_1) into the data dir.
    Fetch {
        /// Download again even if the file is there and intact.
        #[arg(long)]
        force: bool,
    },
    /// List configured models and whether they are ready to use.
    List,
}
