//! promptloom: a terminal prompt playground.
//!
//! Layout: `state/` (pure session data), `prompt/` (prompt files and techniques), `eval/`
//! (checks), `llm/` (backends), `store/` (session files), `config/`; `headless` and the
//! subcommands are drivers over them.

mod app;
mod bench;
mod cli;
mod config;
mod error;
mod eval;
mod headless;
mod import_promptfoo;
mod llm;
mod model_fetch;
mod prompt;
#[cfg(feature = "local")]
mod quantize;
mod rate;
mod sanitize;
mod state;
mod store;
mod technique_run;
mod ui;

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
    llm::embed::configure(&config);
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
        Some(Command::Import { file, out }) => {
            import_promptfoo::run(&file, out, &config.model_names())
        }
        Some(Command::Export {
            session,
            format,
            out,
        }) => {
            let s = store::journal::load_with_journal(&session)?;
            let text = store::export::export(&s, format)?;
            match out {
                Some(p) => store::write_atomic(&p, text.as_bytes())?,
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Rate(args)) => {
            let rater = config.rater_name();
            rate::run(args, rater)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Technique { action }) => {
            runtime()?.block_on(technique_run::run(config, action))
        }
        #[cfg(feature = "local")]
        Some(Command::Quantize {
            input,
            output,
            to,
            force,
            no_check,
            check_only,
        }) => runtime()?.block_on(quantize_cmd(
            &input, &output, to, force, no_check, check_only,
        )),
        Some(Command::Bench(args)) => bench::run(config, args),
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

#[cfg(feature = "local")]
async fn quantize_cmd(
    input: &std::path::Path,
    output: &std::path::Path,
    to: quantize::Target,
    force: bool,
    no_check: bool,
    check_only: bool,
) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    if check_only {
        let q = quantize::quality(input, output).await?;
        println!("{}", q.line());
        return Ok(ExitCode::SUCCESS);
    }
    let (i, o) = (input.to_path_buf(), output.to_path_buf());
    let tty = std::io::stderr().is_terminal();
    let report = tokio::task::spawn_blocking(move || {
        quantize::quantize(&i, &o, to, force, &mut |done, total, name| {
            if tty && (done % 16 == 0 || done == total) {
                eprint!("\r\x1b[Kquantizing {done}/{total} {name}");
            }
        })
    })
    .await??;
    if tty {
        eprintln!();
    }
    for line in report.lines(to) {
        println!("{line}");
    }
    println!("wrote {}", output.display());
    if !no_check {
        let q = quantize::quality(input, output).await?;
        println!("{}", q.line());
    }
    Ok(ExitCode::SUCCESS)
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

/// What `benches/draw.rs` needs from the crate's internals; not a public API.
#[doc(hidden)]
pub mod bench_api {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use crate::app::state::AppState;
    use crate::app::update::{set_metrics, update};
    use crate::app::{Effect, Msg};
    use crate::config::keymap::Keymap;
    use crate::config::theme::Theme;
    use crate::llm::StreamEvent;
    use crate::state::session::Session;
    use crate::ui::{draw, ViewCache};

    pub use crate::ui::tree::TreeBench;

    /// A playground with `panes` variants whose answers are `answer_bytes` long, drawn
    /// into an in-memory terminal.
    pub struct DrawBench {
        state: AppState,
        cache: ViewCache,
        theme: Theme,
        terminal: Terminal<TestBackend>,
        running: Vec<(u64, u64)>,
    }

    /// Markdown-ish answer text of about `bytes` bytes.
    pub fn answer_text(bytes: usize) -> String {
        let para = "The capital of England is **London**, which sits on the `Thames`; it has been the seat of government for centuries and is the largest city.\n- a list item with *emphasis*\n```rust\nfn main() { println!(\"hello {}\", 42); }\n```\n";
        let mut s = String::with_capacity(bytes + para.len());
        while s.len() < bytes {
            s.push_str(para);
        }
        s.truncate(bytes);
        while !s.is_char_boundary(s.len()) {
            s.pop();
        }
        s
    }

    impl DrawBench {
        pub fn new(panes: usize, answer_bytes: usize, width: u16, height: u16) -> DrawBench {
            let mut src = String::from("title = \"bench\"\n");
            for i in 0..panes {
                src.push_str(&format!(
                    "[[variant]]\nname = \"v{i}\"\ntemplate = \"Q {{{{q}}}}\"\n"
                ));
            }
            src.push_str("[[case]]\nvars = { q = \"x\" }\n");
            let models = vec!["m".to_string()];
            let prompt = match crate::prompt::parse(Path::new("bench.toml"), &src, &models, "m") {
                Ok(p) => p,
                Err(e) => panic!("{e}"),
            };
            let mut state = AppState::new(
                prompt,
                Session::new("bench", "now".into(), None),
                PathBuf::from("bench-session.toml"),
                Keymap::defaults(),
                models,
                chrono::Utc::now(),
                1,
            );
            update(&mut state, Msg::Resize { width, height });
            let fx = update(
                &mut state,
                Msg::Key {
                    key: KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE),
                    at: Duration::ZERO,
                },
            );
            let running: Vec<(u64, u64)> = fx
                .iter()
                .filter_map(|e| match e {
                    Effect::StartStream { node, request, .. } => Some((*node, *request)),
                    _ => None,
                })
                .collect();
            let text = answer_text(answer_bytes);
            for &(node, request) in &running {
                update(
                    &mut state,
                    Msg::Stream {
                        node,
                        request,
                        event: StreamEvent::Delta(text.clone()),
                        at: Duration::from_millis(10),
                    },
                );
            }
            let terminal = match Terminal::new(TestBackend::new(width, height)) {
                Ok(t) => t,
                Err(e) => panic!("{e}"),
            };
            DrawBench {
                state,
                cache: ViewCache::default(),
                theme: Theme::builtin_dark(),
                terminal,
                running,
            }
        }

        /// Draw one frame.
        pub fn draw(&mut self) {
            let (state, cache, theme) = (&self.state, &mut self.cache, &self.theme);
            let mut metrics = Vec::new();
            if let Err(e) = self
                .terminal
                .draw(|f| metrics = draw(f, state, cache, theme))
            {
                panic!("{e}");
            }
            set_metrics(&mut self.state, metrics);
        }

        /// Append a chunk to every streaming answer (as a stream would).
        pub fn append(&mut self, chunk: &str) {
            for &(node, request) in &self.running {
                update(
                    &mut self.state,
                    Msg::Stream {
                        node,
                        request,
                        event: StreamEvent::Delta(chunk.to_string()),
                        at: Duration::from_millis(20),
                    },
                );
            }
        }
    }
}
