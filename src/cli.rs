//! Command-line definitions: the global flags and the list of subcommands. Each subcommand
//! in [`crate::cmd`] owns its own arguments; this file only composes them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    Run(crate::cmd::run::RunArgs),
    /// Check prompt files for errors without running anything.
    Check(crate::cmd::check::CheckArgs),
    /// Convert a promptfoo config (promptfooconfig.yaml) into a prompt file, listing every
    /// field that could not be mapped.
    Import(crate::cmd::import::ImportArgs),
    /// Export a session as JSONL, CSV, Markdown, fine-tuning data (sft) or DPO preference
    /// pairs.
    Export(crate::cmd::export::ExportArgs),
    /// What changed between two runs of one prompt file: per variant and case, pass/fail
    /// flips and star deltas; per variant, whether its prompt changed.
    Compare(crate::cmd::compare::CompareArgs),
    /// Rate answers and record blind votes in a session, from flags or stdin.
    Rate(crate::cmd::rate::RateArgs),
    /// Run a technique headlessly: self-critique, branching, tree-of-thought search, LLM
    /// judge, LLM-proposed variants. New nodes are appended to the session file.
    Technique {
        #[command(subcommand)]
        action: crate::cmd::technique::TechniqueCommand,
    },
    /// Re-quantize a GGUF file (q8_0, q4_0, q4k, q6k), keeping its metadata, and compare its
    /// quality with the original on a built-in text.
    #[cfg(feature = "local")]
    Quantize(crate::cmd::quantize::QuantizeArgs),
    /// Measure everything that matters for speed on this machine: local decode vs bare
    /// mistral.rs, llama.cpp, concurrency, time to first token, UI drawing and ingest,
    /// session load and save. Prints medians and spreads next to the goals.
    Bench(crate::bench::BenchArgs),
    /// Check config, model files, CPU features, endpoints, terminal and folders; exit 1 if
    /// anything is wrong.
    Doctor,
    /// The tools of the configured MCP servers (`[mcp.NAME]`).
    Tools {
        #[command(subcommand)]
        action: crate::cmd::tools::ToolsAction,
    },
    /// Manage models.
    Model {
        #[command(subcommand)]
        action: crate::cmd::model::ModelAction,
    },
}
