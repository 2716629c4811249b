//! The prompt in the pane through `TestBackend`: compact and expanded, few-shot and
//! in-context variants, at 80×24 and 160×48.

use std::path::Path;

use crate::app::model::keys::KeyCode;

use crate::app::model::state::AppState;
use crate::app::update::tests::{ev, key, started, state_for};
use crate::chat::{FinishReason, StreamEvent};
use crate::ui::tests::screen;

/// A few-shot variant (role + two worked examples) and an in-context one (two pasted
/// documents, the step-by-step cue), on a case with two variables.
const PROMPT: &str = r#"title = "Policies"
[defaults]
model = "fake"

[[variant]]
name = "few-shot"
system = "You answer HR questions in one sentence."
template = "Question from {{team}}: {{question}}"
examples = [
  { input = "Question from sales: how many holidays?", output = "25 days a year." },
  { input = "Question from ops: who approves leave?", output = "Your manager." },
]

[[variant]]
name = "in-context"
template = "Question from {{team}}: {{question}}"
context = ["Employees get 10 sick days a year.", "Sick days do not carry over."]
step_by_step = true

[[case]]
name = "sick"
vars = { team = "support", question = "how many sick days do I get?" }
expect = { any = ["10"] }
"#;

fn app() -> AppState {
    let mut s = state_for(
        Path::new("prompts/policies.toml"),
        PROMPT,
        &["fake"],
        "Policies",
    );
    crate::app::update::settle(&mut s);
    s
}

#[test]
fn collapsed_on_open() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut s = app();
        let text = screen(&mut s, w, h);
        assert!(text.contains("▸ prompt"), "{text}");
        assert!(text.contains("2 example(s)"), "{text}");
        assert!(text.contains("2 passage(s)"), "{text}");
        insta::assert_snapshot!(format!("collapsed_{w}x{h}"), text);
    }
}

#[test]
fn few_shot_expanded() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut s = app();
        key(&mut s, KeyCode::Char('o'));
        let text = screen(&mut s, w, h);
        assert!(text.contains("example 1/2 · user"), "{text}");
        assert!(text.contains("example 2/2 · assistant"), "{text}");
        insta::assert_snapshot!(format!("few_shot_expanded_{w}x{h}"), text);
        // And folded again.
        key(&mut s, KeyCode::Char('o'));
        assert!(!screen(&mut s, w, h).contains("example 1/2"));
    }
}

#[test]
fn in_context_expanded_after_a_run() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut s = app();
        let st = started(&key(&mut s, KeyCode::Enter));
        ev(
            &mut s,
            st[1],
            StreamEvent::Delta("You get 10 sick days a year.".into()),
            100,
        );
        ev(
            &mut s,
            st[1],
            StreamEvent::Finished(FinishReason::Stop),
            200,
        );
        key(&mut s, KeyCode::Tab);
        key(&mut s, KeyCode::Char('o'));
        let text = screen(&mut s, w, h);
        assert!(text.contains("the chat as sent"), "{text}");
        assert!(text.contains("┆ context 1/2 (pasted)"), "{text}");
        assert!(text.contains("┆ step-by-step cue"), "{text}");
        insta::assert_snapshot!(format!("in_context_expanded_{w}x{h}"), text);
    }
}

/// The compact view keeps to a third of the pane, however long the task.
#[test]
fn a_long_prompt_folds_and_the_answer_keeps_the_pane() {
    let mut s = app();
    let long = "word ".repeat(400);
    s.prompt.variants[0].template = format!("{long}{{{{question}}}}");
    crate::app::update::prompt_view::refresh(&mut s);
    let theme = crate::config::theme::Theme::builtin_dark();
    let rows = super::compact_rows(&s, 0, 38, 18, &theme);
    assert_eq!(rows.len(), 6, "{rows:?}");
    let last: String = rows[rows.len() - 2]
        .spans
        .iter()
        .map(|s| s.content.as_ref())
        .collect();
    assert!(
        last.starts_with("… ") && last.ends_with("o shows all"),
        "{last}"
    );
    let text = screen(&mut s, 80, 24);
    assert!(text.contains("more row(s)"), "{text}");
}

/// The variables are drawn in the theme's `prompt.var` style, the rest of the task not.
#[test]
fn the_case_variables_are_highlighted() {
    let s = app();
    let theme = crate::config::theme::Theme::builtin_dark();
    let rows = super::compact_rows(&s, 0, 70, 18, &theme);
    let var = theme.style("prompt.var");
    // Row 0: the counts; row 1: the role; row 2: the task.
    let styled: Vec<(String, bool)> = rows[2]
        .spans
        .iter()
        .map(|sp| (sp.content.to_string(), sp.style == var))
        .collect();
    assert!(
        styled.contains(&("support".to_string(), true)),
        "{styled:?}"
    );
    assert!(
        styled.contains(&("how many sick days do I get?".to_string(), true)),
        "{styled:?}"
    );
    assert!(styled
        .iter()
        .any(|(t, v)| t.starts_with("Question from") && !v));
}
