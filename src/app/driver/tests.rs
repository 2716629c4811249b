//! The real event loop in-process: the driver's effects (streams, saves, the rating journal,
//! technique streams, embedding fetches) covered without tmux. A [`ScriptedScreen`] is the
//! user: at each frame it looks at the state on screen and, once the next step's condition
//! holds, presses that step's keys, keeping what the screen showed then.

use std::collections::VecDeque;
use std::time::Duration;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use tokio::sync::mpsc;

use super::in_memory::load_in;
use super::*;
use crate::app::model::state::Phase;
use crate::state::session::{NodeKind, NodeStatus};

/// Press `keys` once `ready` holds for the state on screen.
struct Step {
    name: &'static str,
    ready: Box<dyn Fn(&AppState) -> bool>,
    keys: Vec<KeyEvent>,
}

fn step(name: &'static str, ready: impl Fn(&AppState) -> bool + 'static, keys: &str) -> Step {
    Step {
        name,
        ready: Box::new(ready),
        keys: keys
            .chars()
            .map(|c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
            .collect(),
    }
}

/// A [`MemoryScreen`] that plays the user.
struct ScriptedScreen {
    inner: MemoryScreen,
    steps: VecDeque<Step>,
    keys: mpsc::UnboundedSender<Event>,
    /// (step, what the screen showed when its condition held).
    shots: Vec<(&'static str, String)>,
}

impl Screen for ScriptedScreen {
    fn size(&self) -> anyhow::Result<(u16, u16)> {
        self.inner.size()
    }

    fn draw(
        &mut self,
        state: &AppState,
        cache: &mut ViewCache,
        theme: &Theme,
    ) -> anyhow::Result<Vec<PaneMetrics>> {
        let metrics = self.inner.draw(state, cache, theme)?;
        if self.steps.front().is_some_and(|s| (s.ready)(state)) {
            if let Some(s) = self.steps.pop_front() {
                self.shots.push((s.name, self.inner.text()));
                for k in s.keys {
                    let _ = self.keys.send(Event::Key(k));
                }
            }
        }
        Ok(metrics)
    }

    fn edit_externally(&mut self, text: &str) -> anyhow::Result<Result<String, String>> {
        self.inner.edit_externally(text)
    }

    fn copy(&mut self, text: &str) {
        self.inner.copy(text)
    }
}

/// Run the loop in `dir` with `config` and `prompt` until the script quits (or 60 s pass,
/// which fails naming the step that never became ready).
fn play(dir: &Path, config: &str, prompt: &str, steps: Vec<Step>) -> (AppState, ScriptedScreen) {
    let (config, prepared) = load_in(dir, config, "p.toml", prompt, &dir.join("s.toml")).unwrap();
    let (tx, rx) = mpsc::unbounded_channel::<Event>();
    let events = Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok(e), rx))
    }));
    let mut screen = ScriptedScreen {
        inner: MemoryScreen::new(120, 30).unwrap(),
        steps: steps.into(),
        keys: tx,
        shots: Vec::new(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let run = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(60),
            event_loop(config, prepared, &mut screen, events, false),
        )
        .await
    });
    let (state, close) = match run {
        Ok(r) => r.unwrap(),
        Err(_) => panic!(
            "step {:?} never became ready; the screen:\n{}",
            screen.steps.front().map(|s| s.name),
            screen.inner.text()
        ),
    };
    close.unwrap();
    rt.shutdown_timeout(Duration::from_secs(5));
    (state, screen)
}

fn shot<'a>(screen: &'a ScriptedScreen, name: &str) -> &'a str {
    screen
        .shots
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s.as_str())
        .unwrap_or_else(|| panic!("no screen for {name}"))
}

// The first rule whose `when` is in the last user message answers (as in tests/tui_techniques.rs).
const CONFIG: &str = r#"
default_model = "fake"
rater = "tester"
[models.fake]
backend = "scripted"
reply = "I do not know."
delay_ms = 1
rules = [
  { when = "Critique:\n", reply = "The capital of England is London." },
  { when = "Analyse the previous answer", reply = "1. Wrong city: the capital of England is London, not Paris." },
  { when = "capital of England", reply = "Paris" },
]
"#;

const PROMPT: &str = r#"title = "Capitals"
[defaults]
model = "fake"
temperature = 0.0

[[variant]]
name = "plain"
template = "What is the capital of {{country}}?"

[[case]]
name = "England"
vars = { country = "England" }

[techniques]
critique_rounds = 3
"#;

#[test]
fn a_run_a_rating_and_a_critique_through_the_real_loop() {
    let dir = tempfile::tempdir().unwrap();
    let answered = |s: &AppState| s.panes.iter().all(|p| p.phase == Phase::Done);
    let steps = vec![
        step("start", |_| true, "r"),
        step("answered", answered, "3"),
        step("rated", |s| !s.session.ratings.is_empty(), "c"),
        step(
            "critiqued",
            |s| s.tech.jobs.iter().any(|j| !j.running) && !s.tech.busy(),
            "q",
        ),
    ];
    let (state, screen) = play(dir.path(), CONFIG, PROMPT, steps);

    // The session: the answer, the critique of it and the rewrite, all finished.
    let nodes = &state.session.nodes;
    let kinds: Vec<(NodeKind, &str, NodeStatus)> = nodes
        .iter()
        .map(|n| (n.kind, n.text.as_str(), n.status))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (NodeKind::Answer, "Paris", NodeStatus::Done),
            (
                NodeKind::Critique,
                "1. Wrong city: the capital of England is London, not Paris.",
                NodeStatus::Done
            ),
            (
                NodeKind::Rewrite,
                "The capital of England is London.",
                NodeStatus::Done
            ),
        ],
        "{nodes:#?}"
    );
    let (answer, critique, rewrite) = (&nodes[0], &nodes[1], &nodes[2]);
    assert_eq!(critique.parent, Some(answer.id));
    assert!(
        rewrite.parent == Some(critique.id) || rewrite.parent == Some(answer.id),
        "{rewrite:#?}"
    );
    // The rating went through the journal to the state.
    assert_eq!(state.session.ratings.len(), 1);
    let r = &state.session.ratings[0];
    assert_eq!(
        (r.node, r.stars, r.rater.as_str()),
        (answer.id, Some(3), "tester")
    );
    // The pane shows the rewrite now.
    assert_eq!(state.panes[0].node, Some(rewrite.id));

    // What the screen showed at each step.
    let s = shot(&screen, "answered");
    assert!(s.contains("Paris"), "{s}");
    let s = shot(&screen, "rated");
    assert!(s.contains("★★★"), "{s}");
    let s = shot(&screen, "critiqued");
    assert!(s.contains("rev 2/2"), "{s}");
    assert!(s.contains("The capital of England is London."), "{s}");
    assert!(s.contains("refine stopped after 1 round(s)"), "{s}");

    // On disk, after quitting: the saver's file with the journal folded in has the same.
    let saved = crate::store::load(&dir.path().join("s.toml")).unwrap();
    let on_disk: Vec<(u64, &str)> = saved
        .nodes
        .iter()
        .map(|n| (n.id, n.text.as_str()))
        .collect();
    let in_memory: Vec<(u64, &str)> = nodes.iter().map(|n| (n.id, n.text.as_str())).collect();
    assert_eq!(on_disk, in_memory);
    assert_eq!(saved.ratings.len(), 1);
    assert_eq!(
        (saved.ratings[0].node, saved.ratings[0].stars),
        (answer.id, Some(3))
    );
}

/// A pane whose retrieval ranks by embedding waits for the driver to fetch the vectors; when
/// the fetch fails (no embeddings endpoint here) the pane is not sent and says why.
#[test]
fn a_pane_whose_embedding_fetch_fails_is_not_sent_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("h.md"), "# Refunds\nWithin 30 days.\n").unwrap();
    let prompt = "title = \"T\"\n[defaults]\nmodel = \"fake\"\n[[variant]]\nname = \"rag\"\ntemplate = \"How long for refunds?\"\nretrieve = { from = [\"h.md\"], k = 1, by = \"embedding\", embed_model = \"fake\" }\n[[case]]\nname = \"one\"\n";
    let steps = vec![
        step("start", |_| true, "r"),
        step(
            "failed",
            |s| s.panes.iter().all(|p| p.phase == Phase::Error),
            "q",
        ),
    ];
    let (state, screen) = play(dir.path(), CONFIG, prompt, steps);
    let n = &state.session.nodes[0];
    assert_eq!(n.status, NodeStatus::Error);
    let e = n.error.as_deref().unwrap_or("");
    assert!(e.starts_with("retrieval failed: "), "{e}");
    assert!(n.text.is_empty(), "never sent: {n:#?}");
    let s = shot(&screen, "failed");
    assert!(s.contains("retrieval failed"), "{s}");
}
