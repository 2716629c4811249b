//! What `benches/draw.rs` and `promptloom bench` need from the crate's internals; not a
//! public API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use crate::app::state::AppState;
use crate::app::update::{set_metrics, update};
use crate::app::{Effect, Msg};
use crate::chat::StreamEvent;
use crate::config::keymap::Keymap;
use crate::config::theme::Theme;
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
