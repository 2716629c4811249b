//! `promptloom import`: a promptfoo config converted into a prompt file
//! ([`crate::import_promptfoo`] does the mapping).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;

/// `promptloom import` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// The promptfoo config (promptfooconfig.yaml).
    #[arg(value_name = "PROMPTFOO_CONFIG")]
    pub file: PathBuf,
    /// Where to write (default: the config's name with .toml).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
}

pub(crate) fn run(config: &Config, args: ImportArgs) -> anyhow::Result<ExitCode> {
    crate::import_promptfoo::run(&args.file, args.out, &config.model_names())
}
