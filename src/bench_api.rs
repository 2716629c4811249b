//! What `benches/draw.rs` and `promptloom bench` need from the crate's internals; not a
//! public API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::app::model::keys::{Key, KeyCode, Mods};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use crate::app::model::state::AppState;
use crate::app::update::{set_metrics, update};
use crate::app::{Effect, Msg};
use crate::chat::StreamEvent;
use crate::config::keymap::Keymap;
use crate::config::theme::Theme;
use crate::state::session::Session;
use crate::ui::{draw, ViewCache};

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
                key: Key::new(KeyCode::Enter, Mods::NONE),
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

/// The tree view's drawing cost, for `benches/tree.rs`: one case with `nodes` nodes (a
/// search tree three wide, with value samples, pruned, bookmarked and streaming nodes),
/// the tree layer open, drawn into an in-memory terminal.
pub struct TreeBench {
    state: AppState,
    cache: ViewCache,
    theme: Theme,
    terminal: ratatui::Terminal<ratatui::backend::TestBackend>,
}

impl TreeBench {
    pub fn new(nodes: usize, width: u16, height: u16) -> TreeBench {
        use crate::app::update::update;
        use crate::app::Msg;
        use crate::chat::{ChatRequest, Sampling};
        let src = "title = \"bench\"\n[[variant]]\nname = \"v\"\ntemplate = \"Q {{q}}\"\n[[case]]\nname = \"c\"\nvars = { q = \"x\" }\n";
        let models = vec!["m".to_string()];
        let prompt =
            match crate::prompt::parse(std::path::Path::new("bench.toml"), src, &models, "m") {
                Ok(p) => p,
                Err(e) => panic!("{e}"),
            };
        let mut session = crate::state::session::Session::new("bench", "now".into(), None);
        let request = ChatRequest {
            messages: vec![],
            sampling: Sampling::default(),
        };
        let mut thoughts: Vec<u64> = Vec::new();
        for i in 0..nodes {
            let id = i as u64 + 1;
            let (parent, kind) = match i {
                0 => (None, crate::state::session::NodeKind::Answer),
                _ if i % 4 == 0 => (Some(id - 1), crate::state::session::NodeKind::Value),
                _ => (
                    Some(
                        thoughts
                            .get((thoughts.len().saturating_sub(1)) / 3)
                            .copied()
                            .unwrap_or(1),
                    ),
                    crate::state::session::NodeKind::Thought,
                ),
            };
            let mut n = crate::state::session::Node::start(
                id,
                parent,
                kind,
                "v",
                "c",
                "m",
                request.clone(),
                "now".into(),
            );
            n.text = format!("Step {i}: combine {} and {} to get {}; the remaining numbers are 4 6 8 and the goal is still 24", i % 7, i % 5, i % 11);
            n.status = match i % 50 {
                1 => crate::state::session::NodeStatus::Streaming,
                2 => crate::state::session::NodeStatus::Queued,
                _ => crate::state::session::NodeStatus::Done,
            };
            if kind == crate::state::session::NodeKind::Thought {
                thoughts.push(id);
                n.score = Some((i % 3) as f64 / 2.0);
                if i % 17 == 0 {
                    n.meta.insert("pruned".into(), "true".into());
                }
                if i % 23 == 0 {
                    n.meta.insert("bookmark".into(), "true".into());
                }
            }
            session.nodes.push(n);
        }
        let mut state = AppState::new(
            prompt,
            session,
            std::path::PathBuf::from("bench-session.toml"),
            crate::config::keymap::Keymap::defaults(),
            models,
            chrono::Utc::now(),
            1,
        );
        update(&mut state, Msg::Resize { width, height });
        update(
            &mut state,
            Msg::Key {
                key: crate::app::model::keys::Key::new(
                    crate::app::model::keys::KeyCode::Char('t'),
                    crate::app::model::keys::Mods::NONE,
                ),
                at: std::time::Duration::ZERO,
            },
        );
        assert!(
            matches!(
                state.layers.last(),
                Some(crate::app::model::state::Layer::Tree(_))
            ),
            "the tree view opened"
        );
        let terminal =
            match ratatui::Terminal::new(ratatui::backend::TestBackend::new(width, height)) {
                Ok(t) => t,
                Err(e) => panic!("{e}"),
            };
        TreeBench {
            state,
            cache: ViewCache::default(),
            theme: Theme::builtin_dark(),
            terminal,
        }
    }

    /// Rows in the flattened tree.
    pub fn rows(&self) -> usize {
        match self.state.layers.last() {
            Some(crate::app::model::state::Layer::Tree(t)) => t.rows.len(),
            _ => 0,
        }
    }

    /// Draw one frame.
    pub fn draw(&mut self) {
        let (state, cache, theme) = (&self.state, &mut self.cache, &self.theme);
        if let Err(e) = self.terminal.draw(|f| {
            draw(f, state, cache, theme);
        }) {
            panic!("{e}");
        }
    }

    /// A key in the tree view (`j`, `k`, `G`...), as the user would press it.
    pub fn key(&mut self, c: char) {
        crate::app::update::update(
            &mut self.state,
            crate::app::Msg::Key {
                key: crate::app::model::keys::Key::new(
                    crate::app::model::keys::KeyCode::Char(c),
                    crate::app::model::keys::Mods::NONE,
                ),
                at: std::time::Duration::ZERO,
            },
        );
    }

    /// Re-flatten the tree (what a finished node costs).
    pub fn rebuild(&mut self) {
        let session = &self.state.session;
        for l in self.state.layers.iter_mut() {
            if let crate::app::model::state::Layer::Tree(t) = l {
                t.rebuild(session);
            }
        }
    }
}
