//! The tool loop in the playground: a pane whose answer ends in tool calls records each call
//! and its result as nodes ([`crate::state::tool_loop`], the same machine `promptloom run`
//! drives), then streams the model's next turn into the same pane.
//!
//! Pure like the rest of `update`: mocks and refusals are answered here; a `command` or `mcp`
//! tool becomes [`ToolEffect::Run`], which the driver runs and answers with
//! [`ToolMsg::Done`]. A tool the config marks `confirm = true` waits for the user's
//! approve/deny key. Whether an external tool may run at all is decided once by the driver
//! from the config and stored in `ToolTurns::permissions` (`app::model::tools`).

use std::time::Duration;

use crate::app::model::msg::Effect;
use crate::app::model::state::{AppState, InputPurpose, Layer, Pane, Phase};
use crate::app::model::tools::{Round, ToolEffect, ToolMsg};
use crate::chat::ToolCall;
use crate::config::keymap::Action;
use crate::state::session::{NodeKind, NodeStatus};
use crate::state::tool_loop::{self, Answer, Next, Permission, Source};

/// A call arrived on the stream of `node`.
pub(crate) fn on_call(s: &mut AppState, node: u64, call: ToolCall) {
    s.tools.pending.entry(node).or_default().push(call);
}

/// The stream of pane `i`'s node finished (the node is closed already): when it made calls,
/// answer them and start the next turn.
pub(crate) fn after_finish(s: &mut AppState, i: usize, fx: &mut Vec<Effect>) {
    let Some(id) = s.panes.get(i).and_then(|p| p.node) else {
        return;
    };
    let calls = s.tools.pending.remove(&id).unwrap_or_default();
    let Some(node) = s.session.node(id) else {
        return;
    };
    if node.status != NodeStatus::Done {
        return;
    }
    let request = node.request.clone();
    let text = node.text.clone();
    let rounds = tool_loop::rounds_above(&s.session, id);
    match tool_loop::after_turn(&request, &calls, rounds) {
        Next::Done => return,
        Next::StepLimit(e) => {
            if let Some(n) = s.session.node_mut(id) {
                n.status = NodeStatus::Error;
                n.error = Some(e);
            }
            if let Some(p) = s.panes.get_mut(i) {
                p.phase = Phase::Error;
            }
            return;
        }
        Next::Answer => {}
    }
    if let Some(n) = s.session.node_mut(id) {
        n.finish_reason = Some(crate::chat::FinishReason::ToolCalls);
        // The checks belong to the final turn.
        n.checks.clear();
    }
    s.tools.rounds.insert(
        id,
        Round {
            pane: i,
            request,
            text,
            calls,
            next: 0,
            parent: id,
            call_node: 0,
            results: Vec::new(),
            started: s.now,
            waiting: None,
        },
    );
    if let Some(p) = s.panes.get_mut(i) {
        p.phase = Phase::Waiting;
    }
    advance(s, id, fx);
}

/// Answer the round's calls from `next` on until one has to wait; start the next turn when
/// all are answered.
fn advance(s: &mut AppState, answer: u64, fx: &mut Vec<Effect>) {
    loop {
        let Some(r) = s.tools.rounds.get(&answer) else {
            return;
        };
        let Some(call) = r.calls.get(r.next).cloned() else {
            return next_turn(s, answer, fx);
        };
        let parent = r.parent;
        let stamp = s.stamp();
        let call_node = tool_loop::record_call(&mut s.session, parent, &call, stamp);
        let defs = &s.prompt.tools;
        let permissions = &s.tools.permissions;
        let decided = tool_loop::answer_call(&call, &r.request.sampling.tools, defs, |d| {
            permissions.get(&d.spec.name).cloned().unwrap_or_else(|| {
                Permission::Denied(format!(
                    "the config does not allow it (add [tools.{}] allow = true to config.toml, or start with --allow-tools)",
                    d.spec.name
                ))
            })
        });
        let now = s.now;
        let Some(r) = s.tools.rounds.get_mut(&answer) else {
            return;
        };
        r.call_node = call_node;
        r.started = now;
        match decided {
            Answer::Ready { content, source } => {
                record(s, answer, content, source, Duration::ZERO);
            }
            Answer::Run(external) => {
                let index = r.next;
                fx.push(Effect::Tool(ToolEffect::Run {
                    answer,
                    index,
                    external,
                }));
                set_notice(s, answer, format!("running tool {}…", call.name));
                return;
            }
            Answer::Confirm(external) => {
                r.waiting = Some(external);
                s.tools.confirming = Some(answer);
                let keys = |a: Action| {
                    s.keymap
                        .key_for(crate::config::keymap::Mode::Normal, a)
                        .map(|k| k.to_string())
                        .unwrap_or_else(|| a.name().to_string())
                };
                let (yes, no) = (keys(Action::ApproveTool), keys(Action::DenyTool));
                set_notice(
                    s,
                    answer,
                    format!("run tool {}? {yes}: approve, {no}: deny", call.name),
                );
                return;
            }
        }
    }
}

fn set_notice(s: &mut AppState, answer: u64, text: String) {
    let pane = s.tools.rounds.get(&answer).map(|r| r.pane);
    if let Some(p) = pane.and_then(|i| s.panes.get_mut(i)) {
        p.notice = Some(text);
    }
    s.dirty = true;
}

/// Record the current call's result and move on.
fn record(s: &mut AppState, answer: u64, content: String, source: Source, latency: Duration) {
    let stamp = s.stamp();
    let Some(r) = s.tools.rounds.get_mut(&answer) else {
        return;
    };
    let call_node = r.call_node;
    let Some(call) = r.calls.get(r.next).cloned() else {
        return;
    };
    r.next += 1;
    r.results.push((call, content.clone()));
    let result =
        tool_loop::record_result(&mut s.session, call_node, &content, source, latency, stamp);
    if let Some(r) = s.tools.rounds.get_mut(&answer) {
        r.parent = result;
    }
    s.dirty = true;
}

/// Every call answered: the next turn streams into the same pane.
fn next_turn(s: &mut AppState, answer: u64, fx: &mut Vec<Effect>) {
    let Some(r) = s.tools.rounds.remove(&answer) else {
        return;
    };
    let chat = tool_loop::next_request(&r.request, &r.text, &r.results);
    let Some(model) = s.session.node(answer).map(|n| n.model.clone()) else {
        return;
    };
    let stamp = s.stamp();
    let node = s
        .session
        .push_child(r.parent, NodeKind::Answer, &model, chat.clone(), stamp, &[]);
    node.status = NodeStatus::Queued;
    let id = node.id;
    let request = s.next_request;
    s.next_request += 1;
    if let Some(p) = s.panes.get_mut(r.pane) {
        *p = Pane::idle();
        p.node = Some(id);
        p.request = request;
        p.phase = Phase::Queued;
        p.started = s.now;
    }
    s.dirty = true;
    fx.push(Effect::StartStream {
        node: id,
        request,
        model,
        chat,
    });
}

/// A message from the driver.
pub(crate) fn on_msg(s: &mut AppState, msg: ToolMsg, fx: &mut Vec<Effect>) {
    match msg {
        ToolMsg::Done {
            answer,
            index,
            result,
            at,
        } => {
            s.now = at;
            let Some(r) = s.tools.rounds.get(&answer) else {
                return; // the pane was rerun or cancelled meanwhile
            };
            if r.next != index {
                return;
            }
            let latency = at.saturating_sub(r.started);
            let source = match r.calls.get(index).map(|c| c.name.clone()).and_then(|n| {
                s.prompt
                    .tools
                    .iter()
                    .find(|d| d.spec.name == n)
                    .map(|d| d.answer.kind())
            }) {
                Some("mcp") => Source::Mcp,
                _ => Source::Command,
            };
            let (content, source) = match result {
                Ok(t) => (t, source),
                Err(e) => (format!("error: {e}"), Source::Error),
            };
            set_notice_clear(s, answer);
            record(s, answer, content, source, latency);
            advance(s, answer, fx);
        }
    }
}

fn set_notice_clear(s: &mut AppState, answer: u64) {
    let pane = s.tools.rounds.get(&answer).map(|r| r.pane);
    if let Some(p) = pane.and_then(|i| s.panes.get_mut(i)) {
        p.notice = None;
    }
}

/// The user approved (`true`) or denied the waiting call. Returns false when no call waits.
pub(crate) fn decide(s: &mut AppState, approve: bool, fx: &mut Vec<Effect>) -> bool {
    let Some(answer) = s.tools.confirming.take() else {
        return false;
    };
    let Some(r) = s.tools.rounds.get_mut(&answer) else {
        return true;
    };
    let Some(external) = r.waiting.take() else {
        return true;
    };
    let index = r.next;
    let name = r
        .calls
        .get(index)
        .map(|c| c.name.clone())
        .unwrap_or_default();
    if approve {
        r.started = s.now;
        fx.push(Effect::Tool(ToolEffect::Run {
            answer,
            index,
            external,
        }));
        set_notice(s, answer, format!("running tool {name}…"));
    } else {
        set_notice_clear(s, answer);
        let Answer::Ready { content, source } = tool_loop::denied_by_user(&name) else {
            return true;
        };
        record(s, answer, content, source, Duration::ZERO);
        advance(s, answer, fx);
    }
    true
}

/// The tool keys of the normal mode.
pub(crate) fn normal_action(s: &mut AppState, a: Action, fx: &mut Vec<Effect>) {
    match a {
        Action::ApproveTool | Action::DenyTool => {
            let waited = decide(s, a == Action::ApproveTool, fx);
            if !waited {
                s.message = Some("no tool call is waiting for approval".into());
            }
        }
        Action::NextToolCall | Action::PrevToolCall => {
            let results = pane_results(s, s.focus);
            if results.is_empty() {
                s.message = Some("no tool calls in this pane".into());
                return;
            }
            let cur = s
                .tools
                .selected
                .get(&s.focus)
                .and_then(|id| results.iter().position(|r| r == id));
            let next = match (cur, a == Action::NextToolCall) {
                (None, true) => 0,
                (None, false) => results.len() - 1,
                (Some(c), true) => (c + 1) % results.len(),
                (Some(c), false) => (c + results.len() - 1) % results.len(),
            };
            s.tools.selected.insert(s.focus, results[next]);
            if let Some(p) = s.panes.get_mut(s.focus) {
                p.follow = false;
            }
        }
        Action::EditToolResult => {
            let Some(id) = s.tools.selected.get(&s.focus).copied() else {
                s.message = Some("select a tool call first (next_tool_call)".into());
                return;
            };
            if s.panes.get(s.focus).is_some_and(|p| p.phase.is_active()) {
                s.message = Some("wait for the pane to finish (or cancel it) first".into());
                return;
            }
            let text = s
                .session
                .node(id)
                .map(|n| n.text.clone())
                .unwrap_or_default();
            s.layers.push(Layer::Input {
                purpose: InputPurpose::ToolResult(id),
                text,
            });
        }
        _ => {}
    }
    s.dirty = true;
}

/// The `tool-result` nodes of pane `i`'s conversation, in order.
fn pane_results(s: &AppState, i: usize) -> Vec<u64> {
    let Some(node) = s.panes.get(i).and_then(|p| p.node) else {
        return Vec::new();
    };
    let mut turns = Vec::new();
    let mut cur = Some(node);
    while let Some(id) = cur {
        let Some(n) = s.session.node(id) else { break };
        match n.kind {
            NodeKind::Answer => turns.push(id),
            NodeKind::ToolCall | NodeKind::ToolResult => {}
            _ => break,
        }
        cur = n.parent;
    }
    turns.reverse();
    turns
        .into_iter()
        .flat_map(|t| tool_loop::round_toward(&s.session, t, Some(node)))
        .filter_map(|(_, _, r)| r)
        .collect()
}

/// The user edited the result `node`: record the new text as a sibling result (source
/// `edited`) and go on from there: the round's later calls are answered again, then the next
/// turn streams into the pane.
pub(crate) fn edited(s: &mut AppState, node: u64, text: String, fx: &mut Vec<Effect>) {
    let Some(call_node) = s.session.node(node).and_then(|n| n.parent) else {
        return;
    };
    let Some(answer) = round_answer(s, call_node) else {
        return;
    };
    // The round as the edited result's conversation had it (earlier calls' results on its path).
    let round = tool_loop::round_toward(&s.session, answer, Some(node));
    let Some(k) = round.iter().position(|(c, _, _)| *c == call_node) else {
        return;
    };
    let Some(answer_node) = s.session.node(answer) else {
        return;
    };
    let pane = s
        .prompt
        .variants
        .iter()
        .position(|v| v.name == answer_node.variant)
        .unwrap_or(s.focus);
    let request = answer_node.request.clone();
    let turn_text = answer_node.text.clone();
    let mut results: Vec<(ToolCall, String)> = round[..k]
        .iter()
        .filter_map(|(_, c, r)| {
            let r = r.and_then(|r| s.session.node(r))?;
            Some((c.clone(), r.text.clone()))
        })
        .collect();
    let calls: Vec<ToolCall> = round.iter().map(|(_, c, _)| c.clone()).collect();
    let stamp = s.stamp();
    let new_result = tool_loop::record_result(
        &mut s.session,
        call_node,
        &text,
        Source::Edited,
        Duration::ZERO,
        stamp,
    );
    results.push((calls[k].clone(), text));
    s.tools.selected.insert(pane, new_result);
    forget_pane(s, pane, fx);
    s.tools.rounds.insert(
        answer,
        Round {
            pane,
            request,
            text: turn_text,
            calls,
            next: k + 1,
            parent: new_result,
            call_node: 0,
            results,
            started: s.now,
            waiting: None,
        },
    );
    if let Some(p) = s.panes.get_mut(pane) {
        p.phase = Phase::Waiting;
        p.follow = true;
    }
    advance(s, answer, fx);
}

/// The answer node whose round `call_node` belongs to (up the call/result chain).
fn round_answer(s: &AppState, call_node: u64) -> Option<u64> {
    let mut cur = s.session.node(call_node)?.parent;
    while let Some(id) = cur {
        let n = s.session.node(id)?;
        if n.kind == NodeKind::Answer {
            return Some(id);
        }
        cur = n.parent;
    }
    None
}

/// Whether pane `i`'s turn has finished and its calls are being answered (a mock, a tool
/// running in the driver, or a call waiting for approval): there is no stream to cancel then,
/// only the round.
pub(crate) fn answering(s: &AppState, i: usize) -> bool {
    s.tools.rounds.values().any(|r| r.pane == i)
}

/// Forget the rounds of pane `i` (it was rerun or cancelled).
pub(crate) fn forget_pane(s: &mut AppState, i: usize, fx: &mut Vec<Effect>) {
    let answers: Vec<u64> = s
        .tools
        .rounds
        .iter()
        .filter(|(_, r)| r.pane == i)
        .map(|(&a, _)| a)
        .collect();
    if !answers.is_empty() {
        fx.push(Effect::Tool(ToolEffect::Cancel { answers }));
    }
    s.tools.rounds.retain(|_, r| r.pane != i);
    if s.tools
        .confirming
        .is_some_and(|a| !s.tools.rounds.contains_key(&a))
    {
        s.tools.confirming = None;
    }
}

#[cfg(test)]
mod tests;
