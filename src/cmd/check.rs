//! `promptloom check`: load prompt files and report their errors, running nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;

/// `promptloom check` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// Prompt files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Check each file; the first one with an error stops the run with it (file, line, column).
pub(crate) fn run(config: &Config, args: CheckArgs) -> anyhow::Result<ExitCode> {
    for f in &args.files {
        let p = crate::prompt::load(f, &config.model_names(), &config.default_model)?;
        println!(
            "{}: ok ({} variants × {} cases)",
            f.display(),
            p.variants.len(),
            p.cases.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
