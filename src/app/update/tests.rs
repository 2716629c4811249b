//! `update` as a state machine: messages in, state and effects out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::app::model::keys::{Key, KeyCode, Mods};

use super::*;
use crate::app::model::state::AppState;
use crate::chat::{FinishReason, StreamEvent, Usage};
use crate::config::keymap::Keymap;
use crate::state::session::NodeStatus;
use crate::state::session::Session;

pub(crate) const PROMPT: &str = "title = \"Capitals\"\n[defaults]\nmodel = \"fake\"\n\n[[variant]]\nname = \"plain\"\ntemplate = \"What is the capital of {{country}}?\"\n\n[[variant]]\nname = \"teacher\"\nsystem = \"You teach.\"\ntemplate = \"What is the capital of {{country}}?\"\n\n[[case]]\nvars = { country = \"England\" }\nexpect = { any = [\"London\"] }\n\n[[case]]\nvars = { country = \"Italy\" }\nexpect = { any = [\"Rome\"] }\n";

pub(crate) fn app() -> AppState {
    let mut s = new_app();
    settle(&mut s);
    s
}

fn new_app() -> AppState {
    state_for(
        Path::new("prompts/capitals.toml"),
        PROMPT,
        &["fake", "other"],
        "Capitals",
    )
}

/// The app state for prompt file `text` (read as if at `path`, for relative files), these
/// models (the first is the default), a new session titled `title`, the default keymap, a
/// fixed clock and seed. Not settled (see `settle`).
pub(crate) fn state_for(path: &Path, text: &str, models: &[&str], title: &str) -> AppState {
    let models: Vec<String> = models.iter().map(|m| m.to_string()).collect();
    let prompt = crate::prompt::parse(path, text, &models, &models[0]).unwrap();
    let session = Session::new(title, "2026-01-01T00:00:00.000Z".into(), None);
    let wall = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let mut s = AppState::new(
        prompt,
        session,
        PathBuf::from("sessions/s.toml"),
        Keymap::defaults(),
        models,
        wall,
        42,
    );
    // What the driver reads when it opens the prompt.
    s.indexes = crate::prompt::render::indexes_for(&s.prompt.variants);
    s
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(crate) fn key(s: &mut AppState, c: KeyCode) -> Vec<Effect> {
    let mods = match c {
        KeyCode::Char(ch) if ch.is_ascii_uppercase() => Mods::SHIFT,
        _ => Mods::NONE,
    };
    update(
        s,
        Msg::Key {
            key: Key::new(c, mods),
            at: s.now,
        },
    )
}

fn ctrl(s: &mut AppState, c: char) -> Vec<Effect> {
    update(
        s,
        Msg::Key {
            key: Key::new(KeyCode::Char(c), Mods::CTRL),
            at: s.now,
        },
    )
}

pub(crate) fn started(fx: &[Effect]) -> Vec<(u64, u64)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::StartStream { node, request, .. } => Some((*node, *request)),
            _ => None,
        })
        .collect()
}

pub(crate) fn ev(
    s: &mut AppState,
    (node, request): (u64, u64),
    event: StreamEvent,
    at: u64,
) -> Vec<Effect> {
    update(
        s,
        Msg::Stream {
            node,
            request,
            event,
            at: ms(at),
        },
    )
}

#[test]
fn run_all_starts_one_stream_per_variant_with_the_exact_request() {
    let mut s = app();
    let fx = key(&mut s, KeyCode::Enter);
    let st = started(&fx);
    assert_eq!(st.len(), 2);
    assert!(s.panes.iter().all(|p| p.phase == Phase::Queued));
    match &fx[1] {
        Effect::StartStream { model, chat, .. } => {
            assert_eq!(model, "fake");
            assert_eq!(chat.messages[0].content, "You teach.");
            assert_eq!(chat.messages[1].content, "What is the capital of England?");
        }
        other => panic!("{other:?}"),
    }
    // The node records the request it was made from.
    let n = s.session.node(st[1].0).unwrap();
    assert_eq!(n.request.messages[0].content, "You teach.");
    assert_eq!(n.case, "England");
}

#[test]
fn streaming_fills_the_node_then_finishing_checks_and_saves() {
    let mut s = app();
    let st = started(&key(&mut s, KeyCode::Char('r')));
    update(
        &mut s,
        Msg::StreamStarted {
            node: st[0].0,
            request: st[0].1,
        },
    );
    assert_eq!(s.panes[0].phase, Phase::Waiting);
    ev(
        &mut s,
        st[0],
        StreamEvent::Delta("The capital is ".into()),
        200,
    );
    assert_eq!(s.panes[0].phase, Phase::Streaming);
    ev(&mut s, st[0], StreamEvent::Delta("London.".into()), 300);
    ev(
        &mut s,
        st[0],
        StreamEvent::Usage(Usage {
            prompt_tokens: Some(9),
            completion_tokens: Some(3),
            estimated: false,
        }),
        300,
    );
    let fx = ev(
        &mut s,
        st[0],
        StreamEvent::Finished(FinishReason::Stop),
        310,
    );
    assert_eq!(s.panes[0].phase, Phase::Done);
    let n = s.session.node(st[0].0).unwrap();
    assert_eq!(n.text, "The capital is London.");
    assert_eq!(n.status, NodeStatus::Done);
    assert_eq!(n.ttft_ms, Some(200));
    assert_eq!(n.tokens_out, 3);
    assert_eq!(n.passed(), Some(true));
    assert_eq!(n.duration_ms, Some(310));
    assert!(matches!(&fx[..], [Effect::SaveSession { .. }]));
    assert_eq!(s.snapshot().nodes.len(), 2);
    // The other pane is still running.
    assert!(s.any_active());
}

#[test]
fn stale_events_are_dropped_after_cancel_and_rerun() {
    let mut s = app();
    let st = started(&key(&mut s, KeyCode::Enter));
    ev(&mut s, st[0], StreamEvent::Delta("old ".into()), 10);
    let fx = key(&mut s, KeyCode::Esc);
    assert!(fx.contains(&Effect::CancelStream { node: st[0].0 }));
    assert_eq!(s.panes[0].phase, Phase::Cancelled);
    assert_eq!(
        s.session.node(st[0].0).unwrap().status,
        NodeStatus::Cancelled
    );
    // A late chunk of the cancelled stream changes nothing.
    ev(&mut s, st[0], StreamEvent::Delta("late".into()), 20);
    assert_eq!(s.session.node(st[0].0).unwrap().text, "old ");
    // Rerun the focused pane: a new node and request; the old request's events are stale.
    let st2 = started(&key(&mut s, KeyCode::Char('R')));
    assert_eq!(st2.len(), 1);
    assert_ne!(st2[0], st[0]);
    ev(&mut s, st[0], StreamEvent::Finished(FinishReason::Stop), 30);
    assert_eq!(s.panes[0].phase, Phase::Queued);
    ev(
        &mut s,
        st2[0],
        StreamEvent::Failed("boom: connection refused".into()),
        40,
    );
    assert_eq!(s.panes[0].phase, Phase::Error);
    assert_eq!(
        s.session.node(st2[0].0).unwrap().error.as_deref(),
        Some("boom: connection refused")
    );
}

#[test]
fn ctrl_c_cancels_then_quits_and_q_saves() {
    let mut s = app();
    key(&mut s, KeyCode::Enter);
    let fx = ctrl(&mut s, 'c');
    assert!(!s.quit);
    assert!(!s.any_active());
    assert_eq!(
        fx.iter()
            .filter(|e| matches!(e, Effect::CancelStream { .. }))
            .count(),
        2
    );
    let fx = ctrl(&mut s, 'c');
    assert!(s.quit);
    assert!(fx.iter().any(|e| matches!(e, Effect::SaveSession { .. })));

    let mut s = app();
    let fx = key(&mut s, KeyCode::Char('q'));
    assert!(s.quit);
    match &fx[..] {
        [Effect::SaveSession { path }] => {
            assert_eq!(path, &PathBuf::from("sessions/s.toml"));
            assert_eq!(s.snapshot().variants.len(), 2);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn focus_scroll_and_zoom() {
    let mut s = app();
    update(
        &mut s,
        Msg::Resize {
            width: 40,
            height: 20,
        },
    );
    key(&mut s, KeyCode::Char('l'));
    assert_eq!(s.focus, 1);
    // Only one 30-column pane fits in 40 columns: the row scrolls to show the focus.
    assert_eq!(s.first, 1);
    key(&mut s, KeyCode::Char('l'));
    assert_eq!(s.focus, 1);
    key(&mut s, KeyCode::Tab);
    assert_eq!((s.focus, s.first), (0, 0));
    set_metrics(
        &mut s,
        vec![
            PaneMetrics {
                total_rows: 100,
                view_rows: 10
            };
            2
        ],
    );
    key(&mut s, KeyCode::Char('k'));
    assert_eq!((s.panes[0].scroll, s.panes[0].follow), (89, false));
    key(&mut s, KeyCode::Home);
    assert_eq!(s.panes[0].scroll, 0);
    key(&mut s, KeyCode::PageDown);
    assert_eq!(s.panes[0].scroll, 9);
    key(&mut s, KeyCode::Char('G'));
    assert!(s.panes[0].follow);
    key(&mut s, KeyCode::Char('z'));
    assert!(s.zoomed);
}

#[test]
fn cases_switch_and_show_earlier_answers() {
    let mut s = app();
    let st = started(&key(&mut s, KeyCode::Enter));
    for x in &st {
        ev(&mut s, *x, StreamEvent::Delta("London".into()), 5);
        ev(&mut s, *x, StreamEvent::Finished(FinishReason::Stop), 6);
    }
    key(&mut s, KeyCode::Char(']'));
    assert_eq!(s.case_name(), "Italy");
    assert!(s
        .panes
        .iter()
        .all(|p| p.node.is_none() && p.phase == Phase::Idle));
    key(&mut s, KeyCode::Char('['));
    assert_eq!(s.panes[0].node, Some(st[0].0));
    assert_eq!(s.panes[0].phase, Phase::Done);
}

#[test]
fn free_input_adds_a_case_and_runs_it() {
    let mut s = app();
    key(&mut s, KeyCode::Char('i'));
    for c in "Peru".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    let fx = key(&mut s, KeyCode::Enter);
    assert_eq!(started(&fx).len(), 2);
    assert_eq!(s.case_name(), "input 1");
    match &fx[0] {
        Effect::StartStream { chat, .. } => {
            assert_eq!(chat.messages[0].content, "What is the capital of Peru?")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn editor_changes_the_variant_but_not_recorded_requests() {
    let mut s = app();
    let st = started(&key(&mut s, KeyCode::Enter));
    key(&mut s, KeyCode::Esc);
    key(&mut s, KeyCode::Char('e'));
    assert!(matches!(s.layers.last(), Some(Layer::Editor { .. })));
    // Go to the template line and prepend text.
    if let Some(Layer::Editor { area, .. }) = s.layers.last_mut() {
        area.row = area
            .lines
            .iter()
            .position(|l| l.starts_with("template"))
            .unwrap();
        area.col = "template = \"".len();
    }
    for c in "Briefly: ".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    ctrl(&mut s, 's');
    assert!(s.layers.is_empty(), "{:?}", s.layers);
    assert!(s.variants_dirty);
    assert_eq!(
        s.prompt.variants[0].template,
        "Briefly: What is the capital of {{country}}?"
    );
    // The earlier run keeps the request it was made from.
    assert_eq!(
        s.session.node(st[0].0).unwrap().request.messages[0].content,
        "What is the capital of England?"
    );
    let fx = key(&mut s, KeyCode::Char('R'));
    match &fx[0] {
        Effect::StartStream { chat, .. } => {
            assert_eq!(
                chat.messages[0].content,
                "Briefly: What is the capital of England?"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn editor_errors_keep_the_editor_open() {
    let mut s = app();
    key(&mut s, KeyCode::Char('e'));
    if let Some(Layer::Editor { area, .. }) = s.layers.last_mut() {
        area.lines.push("bogus = 1".into());
    }
    ctrl(&mut s, 's');
    match s.layers.last() {
        Some(Layer::Editor { error: Some(e), .. }) => assert!(e.contains("bogus"), "{e}"),
        other => panic!("{other:?}"),
    }
    key(&mut s, KeyCode::Esc);
    assert!(s.layers.is_empty());
}

#[test]
fn add_duplicate_rename_delete_and_model_switch() {
    let mut s = app();
    key(&mut s, KeyCode::Char('A'));
    assert_eq!(s.prompt.variants[1].name, "plain copy");
    assert_eq!((s.panes.len(), s.focus), (3, 1));
    key(&mut s, KeyCode::Char('N'));
    for _ in 0.."plain copy".len() {
        key(&mut s, KeyCode::Backspace);
    }
    for c in "terse".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    key(&mut s, KeyCode::Enter);
    assert_eq!(s.prompt.variants[1].name, "terse");
    key(&mut s, KeyCode::Char('m'));
    // Letters filter a picker; the arrows (and ctrl-n/ctrl-p) move.
    key(&mut s, KeyCode::Down);
    let fx = key(&mut s, KeyCode::Enter);
    assert_eq!(s.prompt.variants[1].model, "other");
    assert_eq!(fx, vec![Effect::Preload("other".into())]);
    key(&mut s, KeyCode::Char('D'));
    key(&mut s, KeyCode::Char('y'));
    assert_eq!(
        s.prompt
            .variants
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>(),
        ["plain", "teacher"]
    );
    key(&mut s, KeyCode::Char('a'));
    assert_eq!(s.prompt.variants.len(), 3);
    assert!(matches!(s.layers.last(), Some(Layer::Editor { .. })));
}

#[test]
fn write_back_emits_the_new_file_text() {
    let mut s = app();
    s.prompt.variants[0].system = Some("Be brief.".into());
    let fx = key(&mut s, KeyCode::Char('w'));
    match &fx[..] {
        [Effect::WritePromptFile { path, text }] => {
            assert_eq!(path, &PathBuf::from("prompts/capitals.toml"));
            assert!(text.contains("system = \"Be brief.\""), "{text}");
            assert!(text.contains("[[case]]"), "{text}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn help_layer_takes_keys_first() {
    let mut s = app();
    key(&mut s, KeyCode::Char('?'));
    assert_eq!(s.mode(), crate::config::keymap::Mode::Help);
    // `q` closes help instead of quitting.
    key(&mut s, KeyCode::Char('q'));
    assert!(!s.quit && s.layers.is_empty());
    let fx = key(&mut s, KeyCode::Char('y'));
    assert!(fx.is_empty());
    assert_eq!(s.message.as_deref(), Some("nothing to copy"));
}

#[test]
fn stop_on_first_pass_ends_the_pane_stream_once_its_checks_pass() {
    let mut s = app();
    s.prompt.variants[0].sampling.stop_on = Some(crate::chat::StopOn::FirstPass);
    let st = started(&key(&mut s, KeyCode::Char('r')));
    assert_eq!(s.panes[0].node, Some(st[0].0));
    let fx = ev(&mut s, st[0], StreamEvent::Delta("It is Lon".into()), 10);
    assert!(!fx.iter().any(|e| matches!(e, Effect::CancelStream { .. })));
    let fx = ev(&mut s, st[0], StreamEvent::Delta("don, and".into()), 20);
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::CancelStream { node } if *node == st[0].0)),
        "{fx:?}"
    );
    let n = s.session.node(st[0].0).unwrap();
    assert_eq!(n.finish_reason, Some(FinishReason::ChecksDecided));
    assert_eq!(n.meta["stopped_on"], "first_pass: all checks");
    assert_eq!(n.passed(), Some(true));
    assert_eq!(s.panes[0].phase, Phase::Done);
    // What the backend still sends is stale.
    ev(&mut s, st[0], StreamEvent::Delta(" more".into()), 30);
    assert_eq!(s.session.node(st[0].0).unwrap().text, "It is London, and");
}

#[test]
fn the_case_picker_filters_by_typing_and_picks_the_match() {
    let mut s = app();
    // Two thousand cases, as a cases_file brings them.
    let base = s.prompt.cases[0].clone();
    for i in 0..2000 {
        let mut c = base.clone();
        c.name = format!("row {i}");
        c.vars.insert("country".into(), format!("Land{i}"));
        s.prompt.cases.push(c);
    }
    key(&mut s, KeyCode::Char('p'));
    assert!(matches!(s.layers.last(), Some(Layer::Picker { .. })));
    // Letters filter (j and k are letters here, not moves).
    for c in "land1999".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    let Some(Layer::Picker {
        items,
        selected,
        filter,
        ..
    }) = s.layers.last()
    else {
        panic!("picker closed");
    };
    assert_eq!(filter, "land1999");
    let shown = crate::app::model::queries::picker_matches(items, filter);
    assert_eq!(*selected, 0);
    assert!(
        items[shown[0]].contains("Land1999"),
        "{:?}",
        items[shown[0]]
    );
    // Backspace widens it again; Enter picks the best match of what is typed.
    key(&mut s, KeyCode::Backspace);
    let Some(Layer::Picker { items, filter, .. }) = s.layers.last() else {
        panic!("picker closed");
    };
    assert_eq!(filter, "land199");
    assert!(crate::app::model::queries::picker_matches(items, filter).len() > 1);
    key(&mut s, KeyCode::Char('9'));
    key(&mut s, KeyCode::Enter);
    assert!(s.layers.is_empty());
    assert_eq!(s.prompt.cases[s.case].name, "row 1999");
}

#[test]
fn a_picker_filter_that_matches_nothing_keeps_the_picker_and_says_so() {
    let mut s = app();
    let before = s.case;
    key(&mut s, KeyCode::Char('p'));
    for c in "zzzz".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    key(&mut s, KeyCode::Enter);
    assert!(matches!(s.layers.last(), Some(Layer::Picker { .. })));
    assert_eq!(s.case, before);
    assert!(s
        .message
        .as_deref()
        .unwrap_or("")
        .contains("nothing matches"));
    // Arrows still move, Esc closes without picking.
    key(&mut s, KeyCode::Esc);
    assert!(s.layers.is_empty());
    assert_eq!(s.case, before);
}

/// The one [`Effect::Gather`] in `fx`.
fn gather_of(fx: Vec<Effect>) -> (u64, u64, Box<crate::app::model::msg::WaitingRun>) {
    let mut gathers: Vec<_> = fx
        .into_iter()
        .filter_map(|e| match e {
            Effect::Gather { node, request, run } => Some((node, request, run)),
            _ => None,
        })
        .collect();
    assert_eq!(gathers.len(), 1, "one gather expected");
    gathers.remove(0)
}

#[test]
fn a_pane_whose_retrieval_fails_is_not_sent_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("handbook.md"),
        "# Refunds\nWithin 30 days.\n",
    )
    .unwrap();
    let text = "title = \"T\"\n[defaults]\nmodel = \"fake\"\n\n[[variant]]\nname = \"rag\"\ntemplate = \"How long for refunds?\"\nretrieve = { from = [\"handbook.md\"], k = 1 }\n\n[[case]]\nname = \"one\"\n";
    let mut s = state_for(&dir.path().join("p.toml"), text, &["fake"], "T");
    // The file is gone by the time the pane runs.
    std::fs::remove_file(dir.path().join("handbook.md")).unwrap();
    let fx = key(&mut s, KeyCode::Char('r'));
    // update reads no file: the driver is asked to read it.
    assert!(started(&fx).is_empty(), "{fx:?}");
    let (node, request, run) = gather_of(fx);
    assert_eq!(s.panes[0].phase, Phase::Queued);
    let (indexes, _) = crate::prompt::render::read_inputs(&run.variant, &run.case);
    let fx = update(
        &mut s,
        Msg::Gathered {
            node,
            request,
            run,
            indexes,
            vectors: Default::default(),
            at: ms(5),
        },
    );
    assert!(started(&fx).is_empty(), "{fx:?}");
    assert!(fx.iter().any(|e| matches!(e, Effect::SaveSession { .. })));
    assert_eq!(s.panes[0].phase, Phase::Error);
    let n = s.pane_node(0).unwrap();
    assert_eq!(n.status, NodeStatus::Error);
    let e = n.error.as_deref().unwrap_or("");
    assert!(e.starts_with("retrieval failed: cannot read"), "{e}");
    assert!(e.contains("handbook.md"), "{e}");
}

#[test]
fn a_pane_ranking_by_embedding_waits_for_the_vectors_then_sends_what_they_chose() {
    use crate::prompt::vectors::Vectors;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.md"), "# Refunds\nWithin 30 days.\n").unwrap();
    std::fs::write(dir.path().join("b.md"), "# Shipping\nTwo working days.\n").unwrap();
    let text = "title = \"T\"\n[defaults]\nmodel = \"fake\"\n\n[[variant]]\nname = \"rag\"\ntemplate = \"How long does shipping take?\"\nretrieve = { from = [\"a.md\", \"b.md\"], k = 1, by = \"embedding\", embed_model = \"fake\" }\n\n[[case]]\nname = \"one\"\n";
    let mut s = state_for(&dir.path().join("p.toml"), text, &["fake"], "T");
    let fx = key(&mut s, KeyCode::Char('r'));
    // Nothing is sent yet: the driver is asked for the files and vectors first.
    assert!(started(&fx).is_empty(), "{fx:?}");
    let (node, request, run) = gather_of(fx);
    assert_eq!(s.panes[0].phase, Phase::Queued);
    // What the driver reads for it.
    let (indexes, wants) = crate::prompt::render::read_inputs(&run.variant, &run.case);
    assert_eq!(s.panes[0].node, Some(node));
    let asked: Vec<(&str, Vec<&str>)> = wants.iter().collect();
    assert_eq!(asked.len(), 1);
    let (model, texts) = &asked[0];
    assert_eq!(*model, "fake");
    assert_eq!(texts.len(), 3, "two chunks and the query: {texts:?}");
    // Shipping texts point one way, everything else the other.
    let mut vectors = Vectors::default();
    let v = |t: &str| {
        if t.to_lowercase().contains("shipping") {
            vec![0.0, 1.0]
        } else {
            vec![1.0, 0.0]
        }
    };
    vectors.insert(model, texts, Ok(texts.iter().map(|t| v(t)).collect()));
    // An answer for another request is stale: dropped.
    let fx = update(
        &mut s,
        Msg::Gathered {
            node,
            request: request + 1,
            run: run.clone(),
            indexes: indexes.clone(),
            vectors: vectors.clone(),
            at: ms(5),
        },
    );
    assert!(fx.is_empty(), "{fx:?}");
    assert_eq!(s.panes[0].phase, Phase::Queued);
    let fx = update(
        &mut s,
        Msg::Gathered {
            node,
            request,
            run,
            indexes,
            vectors,
            at: ms(5),
        },
    );
    assert_eq!(started(&fx), vec![(node, request)]);
    let chat = fx
        .iter()
        .find_map(|e| match e {
            Effect::StartStream { chat, .. } => Some(chat.clone()),
            _ => None,
        })
        .unwrap();
    let sent = &chat.messages.last().unwrap().content;
    assert!(sent.contains("Two working days."), "{sent}");
    assert!(!sent.contains("Within 30 days."), "{sent}");
    let n = s.pane_node(0).unwrap();
    assert_eq!(n.request, chat, "the node records what is sent");
    let got = n.meta.get("retrieved").map(String::as_str).unwrap_or("");
    assert!(got.starts_with("1 by embedding: b.md:"), "{got}");
}
