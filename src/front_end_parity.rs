//! The same technique through both front ends: the TUI's `update` path (keys in, effects out,
//! stream events fed back) and the `promptloom technique` runner (real tasks on the scripted
//! backend), answered by one scripted model, must build the same nodes.

use std::path::{Path, PathBuf};

use crate::app::model::keys::KeyCode;

use crate::app::model::state::AppState;
use crate::app::update::tests::{ev, key, started};
use crate::app::Effect;
use crate::chat::{FinishReason, StreamEvent};
use crate::cmd::technique::TechniqueCommand;
use crate::config::keymap::Keymap;
use crate::config::{Config, Dirs};
use crate::llm::scripted::Script;
use crate::prompt::{self, render};
use crate::state::session::{Node, NodeKind, NodeStatus, Session};
use crate::store;

const CONFIG: &str = r#"default_model = "fake"
[models.fake]
backend = "scripted"
reply = "I do not know."
rules = [
  { when = "Previous answer:\nThe capital of England is London.\n\nAnalyse", reply = "NO ISSUES" },
  { when = "Critique:\n", reply = "The capital of England is London." },
  { when = "Analyse the previous answer", reply = "1. Wrong city: the capital of England is London, not Paris." },
  { when = "capital of England", reply = "Paris" },
]
"#;

const PROMPT: &str = r#"title = "Capitals"
[defaults]
model = "fake"
temperature = 0.0
max_tokens = 64

[[variant]]
name = "plain"
template = "What is the capital of {{country}}?"

[[case]]
vars = { country = "England" }
"#;

fn config(dir: &Path) -> Config {
    let dirs = Dirs {
        config_file: dir.join("config.toml"),
        data_dir: dir.join("data"),
        state_dir: dir.join("state"),
    };
    let mut c = Config::defaults(dirs);
    c.merge_text(&dir.join("config.toml"), CONFIG)
        .expect("the test config parses");
    c
}

/// A session with one finished answer, "Paris", as node 1.
fn answered(
    prompt_path: &Path,
    models: &[String],
    script: &Script,
) -> (prompt::PromptFile, Session) {
    let pf = prompt::parse(prompt_path, PROMPT, models, "fake").expect("the prompt parses");
    let mut s = Session::new(
        &pf.title,
        "2026-01-01T00:00:00.000Z".into(),
        Some(prompt_path.display().to_string()),
    );
    s.variants = pf.variants.clone();
    s.cases = pf.cases.clone();
    let request = render::request(
        &pf.variants[0],
        &pf.cases[0].vars,
        &Default::default(),
        &Default::default(),
    );
    let (text, _) = script.reply_to(&request);
    let mut n = Node::start(
        1,
        None,
        NodeKind::Answer,
        "plain",
        &pf.cases[0].name,
        "fake",
        request,
        "2026-01-01T00:00:00.000Z".into(),
    );
    n.text = text;
    n.status = NodeStatus::Done;
    n.finish_reason = Some(FinishReason::Stop);
    s.nodes.push(n);
    (pf, s)
}

/// What both front ends must agree on: everything but clocks, figures and the TUI's own
/// pane bookkeeping (`promoted`).
fn shape(s: &Session) -> Vec<String> {
    s.nodes
        .iter()
        .map(|n| {
            let mut meta = n.meta.clone();
            meta.remove("promoted");
            format!(
                "#{} parent={:?} {} {}/{}/{} {:?} {:?} checks={:?} score={:?} meta={meta:?} text={:?} request={:?}",
                n.id,
                n.parent,
                n.kind.as_str(),
                n.variant,
                n.case,
                n.model,
                n.status,
                n.finish_reason,
                n.checks,
                n.score,
                n.text,
                n.request
            )
        })
        .collect()
}

/// Answer every stream the TUI starts with the scripted model until nothing is left running.
fn answer_streams(s: &mut AppState, script: &Script, mut fx: Vec<Effect>) {
    let mut at = 100;
    for _ in 0..64 {
        let mut next = Vec::new();
        for e in &fx {
            if let Effect::StartStream {
                node,
                request,
                chat,
                ..
            } = e
            {
                let (text, cut) = script.reply_to(chat);
                at += 10;
                let usage = script.usage_of(chat, &text);
                ev(s, (*node, *request), StreamEvent::Delta(text), at);
                ev(s, (*node, *request), StreamEvent::Usage(usage), at);
                let reason = if cut {
                    FinishReason::Length
                } else {
                    FinishReason::Stop
                };
                next.extend(ev(
                    s,
                    (*node, *request),
                    StreamEvent::Finished(reason),
                    at + 5,
                ));
            }
        }
        if started(&next).is_empty() {
            return;
        }
        fx = next;
    }
    panic!("the technique kept starting streams");
}

#[tokio::test]
async fn a_critique_loop_builds_the_same_nodes_in_the_tui_and_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    let models = config.model_names();
    let script = Script::from_config(config.model("fake").expect("the fake model"));
    let prompt_path = dir.path().join("capitals.toml");
    std::fs::write(&prompt_path, PROMPT).expect("write the prompt");

    // The CLI: `promptloom technique critique --node 1 --rounds 3`.
    let (_, base) = answered(&prompt_path, &models, &script);
    let session_path: PathBuf = dir.path().join("cli.toml");
    store::save_atomic(&session_path, &base).expect("save the base session");
    crate::cmd::technique::run(
        config.clone(),
        TechniqueCommand::Critique {
            session: session_path.clone(),
            node: 1,
            rounds: Some(3),
            model: None,
        },
    )
    .await
    .expect("the CLI critique runs");
    let cli = store::load(&session_path).expect("the CLI session loads");

    // The TUI: `C` on the pane showing node 1 (critique_rounds defaults to 3).
    let (pf, base) = answered(&prompt_path, &models, &script);
    let wall = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("a valid time")
        .with_timezone(&chrono::Utc);
    let mut s = AppState::new(
        pf,
        base,
        dir.path().join("tui.toml"),
        Keymap::defaults(),
        models,
        wall,
        7,
    );
    assert_eq!(s.panes[0].node, Some(1));
    let fx = key(&mut s, KeyCode::Char('C'));
    assert_eq!(started(&fx).len(), 1, "C starts the first critique");
    answer_streams(&mut s, &script, fx);
    assert!(!s.any_active());

    let (cli, tui) = (shape(&cli), shape(&s.session));
    // answer, critique, rewrite, and the critique that finds nothing left to fix
    assert_eq!(tui.len(), 4, "{tui:#?}");
    assert!(tui[3].contains("NO ISSUES"), "{tui:#?}");
    assert_eq!(cli, tui);
}
