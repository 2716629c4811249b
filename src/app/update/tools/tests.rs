//! The tool loop in the playground as a state machine: a pane's calls become `tool-call` and
//! `tool-result` nodes, the next turn streams into the same pane, a `confirm = true` command
//! waits for approve/deny (denied: no run is ever asked of the driver), and a late report for
//! a pane that was rerun is dropped.

use std::path::Path;
use std::time::Duration;

use crate::app::model::keys::KeyCode;

use crate::app::model::msg::{Effect, Msg};
use crate::app::model::state::{AppState, Phase};
use crate::app::model::tools::{ToolEffect, ToolMsg};
use crate::app::update::tests::{ev, key, started, state_for};
use crate::app::update::update;
use crate::chat::{FinishReason, Role, StreamEvent, ToolCall};
use crate::state::session::{NodeKind, NodeStatus};
use crate::state::tool_loop::{External, Permission};

const PROMPT: &str = r#"title = "Tools"
[defaults]
model = "fake"

[[tool]]
name = "get_current_weather"
parameters = { type = "object", properties = { location = { type = "string" } }, required = ["location"] }
mock = '{"location": "{{location}}", "temperature": "72"}'

[[tool]]
name = "touch_marker"
parameters = { type = "object" }
command = ["touch", "/tmp/never"]

[[variant]]
name = "weather"
template = "{{q}}"
tools = ["get_current_weather", "touch_marker"]

[[case]]
name = "boston"
vars = { q = "Weather in Boston?" }
expect = { tool = "get_current_weather", args = { location = "Boston" } }
"#;

fn app() -> AppState {
    let mut s = state_for(Path::new("p.toml"), PROMPT, &["fake"], "Tools");
    s.tools
        .permissions
        .insert("touch_marker".into(), Permission::Confirm);
    s
}

fn call(name: &str, args: &str) -> ToolCall {
    ToolCall {
        id: format!("call_{name}"),
        name: name.into(),
        arguments: args.into(),
    }
}

/// Start pane 0 and let its turn end in `calls`; the effects of the finish.
fn turn_with_calls(s: &mut AppState, calls: &[ToolCall]) -> ((u64, u64), Vec<Effect>) {
    let st = started(&key(s, KeyCode::Char('r')));
    assert_eq!(st.len(), 1);
    for c in calls {
        ev(s, st[0], StreamEvent::ToolCall(c.clone()), 100);
    }
    let fx = ev(
        s,
        st[0],
        StreamEvent::Finished(FinishReason::ToolCalls),
        200,
    );
    (st[0], fx)
}

fn kinds(s: &AppState) -> Vec<NodeKind> {
    s.session.nodes.iter().map(|n| n.kind).collect()
}

fn tool_runs(fx: &[Effect]) -> Vec<&External> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Tool(ToolEffect::Run { external, .. }) => Some(external),
            _ => None,
        })
        .collect()
}

#[test]
fn a_mocked_call_is_recorded_and_the_next_turn_streams_into_the_pane() {
    let mut s = app();
    let c = call("get_current_weather", r#"{"location": "Boston"}"#);
    let (first, fx) = turn_with_calls(&mut s, std::slice::from_ref(&c));
    assert_eq!(
        kinds(&s),
        [
            NodeKind::Answer,
            NodeKind::ToolCall,
            NodeKind::ToolResult,
            NodeKind::Answer
        ]
    );
    let answer = s.session.node(first.0).unwrap();
    assert_eq!(answer.finish_reason, Some(FinishReason::ToolCalls));
    let result = &s.session.nodes[2];
    assert_eq!(result.meta["source"], "mock");
    assert_eq!(
        result.text,
        r#"{"location": "Boston", "temperature": "72"}"#
    );
    // The next turn hangs under the result and asks with the call and its result.
    let next = started(&fx);
    assert_eq!(next.len(), 1);
    assert_eq!(s.panes[0].node, Some(next[0].0));
    assert_eq!(s.panes[0].phase, Phase::Queued);
    assert_eq!(s.session.node(next[0].0).unwrap().parent, Some(result.id));
    let Some(Effect::StartStream { chat, .. }) =
        fx.iter().find(|e| matches!(e, Effect::StartStream { .. }))
    else {
        panic!("{fx:?}")
    };
    let n = chat.messages.len();
    assert_eq!(chat.messages[n - 2].role, Role::Assistant);
    assert_eq!(chat.messages[n - 2].tool_calls, std::slice::from_ref(&c));
    assert_eq!(chat.messages[n - 1].role, Role::User);
    assert_eq!(
        chat.messages[n - 1]
            .tool_result
            .as_ref()
            .map(|r| r.call_id.as_str()),
        Some("call_get_current_weather")
    );
    assert!(tool_runs(&fx).is_empty());
    // The final turn ends the loop: no more streams, the pane is done.
    ev(
        &mut s,
        next[0],
        StreamEvent::Delta("72 and sunny".into()),
        300,
    );
    let fx = ev(
        &mut s,
        next[0],
        StreamEvent::Finished(FinishReason::Stop),
        400,
    );
    assert!(started(&fx).is_empty());
    assert_eq!(s.panes[0].phase, Phase::Done);
    // The case's call check is on the final turn (the turn that called has none).
    let last = s.session.node(next[0].0).unwrap();
    let tool: Vec<_> = last.checks.iter().filter(|c| c.kind == "tool").collect();
    assert!(tool.len() == 1 && tool[0].pass, "{:?}", last.checks);
    assert!(s.session.node(first.0).unwrap().checks.is_empty());
}

#[test]
fn a_denied_command_is_never_run_and_the_model_is_told() {
    let mut s = app();
    let (_, fx) = turn_with_calls(&mut s, &[call("touch_marker", "{}")]);
    assert!(
        tool_runs(&fx).is_empty() && started(&fx).is_empty(),
        "{fx:?}"
    );
    assert!(s.tools.confirming.is_some());
    let notice = s.panes[0].notice.clone().unwrap_or_default();
    assert!(notice.contains("Y: approve, x: deny"), "{notice}");
    let fx = key(&mut s, KeyCode::Char('x'));
    assert!(tool_runs(&fx).is_empty(), "{fx:?}");
    let result = s
        .session
        .nodes
        .iter()
        .find(|n| n.kind == NodeKind::ToolResult)
        .unwrap();
    assert_eq!(result.meta["source"], "not_allowed");
    assert!(result.text.contains("the user denied this call"));
    assert_eq!(started(&fx).len(), 1);
    assert!(s.tools.confirming.is_none());
    // Nothing waits any more: another deny is only a message.
    let fx = key(&mut s, KeyCode::Char('x'));
    assert!(fx.iter().all(|e| !matches!(e, Effect::Tool(_))));
    assert_eq!(
        s.message.as_deref(),
        Some("no tool call is waiting for approval")
    );
}

#[test]
fn an_approved_command_runs_in_the_driver_and_its_output_is_the_result() {
    let mut s = app();
    let (first, _) = turn_with_calls(&mut s, &[call("touch_marker", "{}")]);
    let fx = key(&mut s, KeyCode::Char('Y'));
    let runs = tool_runs(&fx);
    assert_eq!(
        runs,
        [&External::Command {
            argv: vec!["touch".into(), "/tmp/never".into()],
            stdin: "{}".into()
        }]
    );
    assert_eq!(s.panes[0].phase, Phase::Waiting);
    let fx = update(
        &mut s,
        Msg::Tool(ToolMsg::Done {
            answer: first.0,
            index: 0,
            result: Ok("touched".into()),
            at: Duration::from_millis(950),
        }),
    );
    let result = s
        .session
        .nodes
        .iter()
        .find(|n| n.kind == NodeKind::ToolResult)
        .unwrap();
    assert_eq!(result.meta["source"], "command");
    assert_eq!(result.text, "touched");
    assert_eq!(result.status, NodeStatus::Done);
    assert_eq!(started(&fx).len(), 1);
}

#[test]
fn a_late_tool_report_for_a_rerun_pane_is_dropped() {
    let mut s = app();
    let (first, _) = turn_with_calls(&mut s, &[call("touch_marker", "{}")]);
    key(&mut s, KeyCode::Char('Y'));
    // Rerun the pane while the tool runs.
    let rerun = started(&key(&mut s, KeyCode::Char('r')));
    assert_eq!(rerun.len(), 1);
    let nodes = s.session.nodes.len();
    let fx = update(
        &mut s,
        Msg::Tool(ToolMsg::Done {
            answer: first.0,
            index: 0,
            result: Ok("late".into()),
            at: Duration::from_millis(950),
        }),
    );
    assert!(fx.is_empty(), "{fx:?}");
    assert_eq!(s.session.nodes.len(), nodes);
    assert_eq!(s.panes[0].node, Some(rerun[0].0));
    // The first turn had finished: rerunning stopped its round, not its answer.
    assert_eq!(s.session.node(first.0).unwrap().status, NodeStatus::Done);
}

#[test]
fn cancelling_while_a_tool_runs_stops_the_round_and_keeps_the_answer() {
    let mut s = app();
    let (first, _) = turn_with_calls(&mut s, &[call("touch_marker", "{}")]);
    key(&mut s, KeyCode::Char('Y'));
    let mut fx = Vec::new();
    crate::app::update::panes::cancel(&mut s, 0, &mut fx);
    // No stream to cancel: the answer's stream has ended. The running tool is stopped.
    assert!(
        fx.iter().all(|e| !matches!(e, Effect::CancelStream { .. })),
        "{fx:?}"
    );
    assert!(
        fx.iter().any(|e| matches!(e, Effect::Tool(ToolEffect::Cancel { answers }) if *answers == vec![first.0])),
        "{fx:?}"
    );
    assert_eq!(s.panes[0].phase, Phase::Cancelled);
    let answer = s.session.node(first.0).unwrap();
    assert_eq!(answer.status, NodeStatus::Done);
    assert_eq!(answer.finish_reason, Some(FinishReason::ToolCalls));
    let fx = update(
        &mut s,
        Msg::Tool(ToolMsg::Done {
            answer: first.0,
            index: 0,
            result: Ok("late".into()),
            at: Duration::from_millis(950),
        }),
    );
    assert!(fx.is_empty(), "{fx:?}");
    assert!(s
        .session
        .nodes
        .iter()
        .all(|n| n.kind != NodeKind::ToolResult));
}
