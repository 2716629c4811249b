//! The panes' own runs: starting, finishing and cancelling the stream of a variant on the
//! selected case, scrolling, keeping the focus on screen, and asking for the session to be
//! saved.

use std::time::Duration;

use super::tools;
use crate::app::model::layout;
use crate::app::model::msg::{Effect, WaitingRun};
use crate::app::model::state::{AppState, Pane, Phase};
use crate::chat::{FinishReason, StreamEvent};
use crate::prompt::retrieve::Indexes;
use crate::prompt::vectors::Vectors;
use crate::prompt::{render, Case};
use crate::state::session::{Node, NodeKind, NodeStatus};
use crate::state::tool_loop;

pub(crate) fn page(s: &AppState) -> isize {
    s.metrics
        .get(s.focus)
        .map_or(10, |m| m.view_rows.max(2) as isize - 1)
}

pub(crate) fn scroll(s: &mut AppState, i: usize, by: isize) {
    let m = s.metrics.get(i).copied().unwrap_or_default();
    let Some(p) = s.panes.get_mut(i) else { return };
    let max = m.total_rows.saturating_sub(m.view_rows);
    let cur = if p.follow { max } else { p.scroll.min(max) };
    let next = if by < 0 {
        cur.saturating_sub(by.unsigned_abs())
    } else {
        cur.saturating_add(by as usize)
    };
    if next >= max {
        p.follow = true;
        p.scroll = max;
    } else {
        p.follow = false;
        p.scroll = next;
    }
}

pub(crate) fn keep_focus_visible(s: &mut AppState) {
    let n = s.panes.len();
    if n == 0 {
        s.focus = 0;
        s.first = 0;
        return;
    }
    s.focus = s.focus.min(n - 1);
    let vis = layout::visible_count(s.width, n);
    if s.focus < s.first {
        s.first = s.focus;
    } else if s.focus >= s.first + vis {
        s.first = s.focus + 1 - vis;
    }
    s.first = s.first.min(n - vis);
}

/// Start (or restart) the stream for variant `i` on the selected case.
pub(crate) fn start(s: &mut AppState, i: usize, fx: &mut Vec<Effect>) {
    let Some(v) = s.prompt.variants.get(i).cloned() else {
        return;
    };
    if s.panes.get(i).is_some_and(|p| p.phase.is_active()) {
        cancel(s, i, fx);
    }
    tools::forget_pane(s, i, fx);
    let case = s.current_case().cloned().unwrap_or_else(|| Case {
        name: "(no case)".into(),
        vars: Default::default(),
        expect: Default::default(),
        turns: Vec::new(),
    });
    let seed = s.next_seed();
    // Retrieval files are read and embedding vectors fetched by the driver: until they come,
    // the node holds the request as the last loaded index renders it, and the pane waits
    // queued.
    let waiting = render::needs_inputs(&v, &case, &s.indexes);
    let prepared = render::prepare(&v, &case, &Vectors::default(), &s.indexes);
    let chat = render::with_seed(prepared.request, seed);
    let id = s.session.next_node_id();
    let mut node = Node::start(
        id,
        None,
        NodeKind::Answer,
        &v.name,
        &case.name,
        &v.model,
        chat.clone(),
        s.stamp(),
    );
    node.status = NodeStatus::Queued;
    if !waiting {
        node.meta.extend(prepared.meta);
    }
    let prep_error = render::prepare_error(&node.meta);
    super::versions::tag(s, &v, &mut node);
    s.session.nodes.push(node);
    let request = s.next_request;
    s.next_request += 1;
    if let Some(p) = s.panes.get_mut(i) {
        *p = Pane::idle();
        p.node = Some(id);
        p.request = request;
        p.phase = Phase::Queued;
        p.started = s.now;
    }
    s.interrupt_armed = false;
    if waiting {
        fx.push(Effect::Gather {
            node: id,
            request,
            run: Box::new(WaitingRun { variant: v, case }),
        });
        return;
    }
    if let Some(e) = prep_error {
        // Not sent: the pane says why, the session records it (as `run` does).
        finish(s, i, Err(e), s.now);
        save(s, fx);
        return;
    }
    fx.push(Effect::StartStream {
        node: id,
        request,
        model: v.model.clone(),
        chat,
    });
}

/// The files and vectors a waiting run asked for: render its request with them and send it,
/// or, when retrieval or ranking failed (a file gone, the embeddings server down), fail the
/// pane with the reason, unsent. The indexes read are kept for the previews.
pub(crate) fn gathered(
    s: &mut AppState,
    node: u64,
    request: u64,
    run: WaitingRun,
    indexes: Indexes,
    vectors: &Vectors,
    fx: &mut Vec<Effect>,
) {
    s.indexes.merge(indexes);
    // The preview renders again with what was just read.
    s.prompt_view.previews.remove(&run.variant.name);
    let Some(i) = s
        .panes
        .iter()
        .position(|p| p.node == Some(node) && p.request == request && p.phase == Phase::Queued)
    else {
        return; // rerun or cancelled meanwhile
    };
    let prepared = render::prepare(&run.variant, &run.case, vectors, &s.indexes);
    let Some(n) = s.session.node_mut(node) else {
        return;
    };
    // The seed drawn when the run started (`with_seed` only fills one where it did then).
    let seed = n.request.sampling.seed.unwrap_or_default();
    let chat = render::with_seed(prepared.request, seed);
    n.request = chat.clone();
    n.meta.extend(prepared.meta);
    if let Some(e) = render::prepare_error(&n.meta) {
        finish(s, i, Err(e), s.now);
        save(s, fx);
        return;
    }
    fx.push(Effect::StartStream {
        node,
        request,
        model: run.variant.model,
        chat,
    });
}

pub(crate) fn finish(
    s: &mut AppState,
    i: usize,
    outcome: Result<FinishReason, String>,
    at: Duration,
) {
    let Some(p) = s.panes.get_mut(i) else { return };
    let Some(id) = p.node else { return };
    let stats = p.meter.stats();
    let elapsed = at.saturating_sub(p.started);
    p.request = 0;
    let expect = s.current_case().map(|c| c.expect.clone());
    // The calls made on the way to this turn, for the case's `tool`/`args` check (a turn that
    // goes on to calls has its checks cleared by the tool loop: they belong to the last turn).
    let calls = tool_loop::calls_to(&s.session, id);
    let Some(node) = s.session.node_mut(id) else {
        return;
    };
    node.finish(outcome, &stats, elapsed);
    let phase = match node.status {
        NodeStatus::Cancelled => Phase::Cancelled,
        NodeStatus::Done => {
            if let Some(e) = expect.filter(|_| node.case != "(no case)") {
                let mut checks = e.check(&node.text);
                checks.extend(e.check_calls(&calls, &node.request.sampling.tools));
                node.checks = checks;
            }
            Phase::Done
        }
        _ => Phase::Error,
    };
    if let Some(p) = s.panes.get_mut(i) {
        p.phase = phase;
    }
}

pub(crate) fn cancel(s: &mut AppState, i: usize, fx: &mut Vec<Effect>) {
    let Some(p) = s.panes.get(i) else { return };
    if !p.phase.is_active() {
        return;
    }
    let Some(id) = p.node else { return };
    if tools::answering(s, i) {
        // The turn is over (its node says so); what stops is answering its calls. A tool
        // still running in the driver reports to a round that is gone: dropped.
        stop_answering(s, i, fx);
        save(s, fx);
        return;
    }
    fx.push(Effect::CancelStream { node: id });
    finish(s, i, Ok(FinishReason::Cancelled), s.now);
    save(s, fx);
}

/// Stop answering pane `i`'s tool calls: the answer node keeps its finished turn, the pane
/// shows the loop as cancelled, and a tool still running for it is stopped.
pub(crate) fn stop_answering(s: &mut AppState, i: usize, fx: &mut Vec<Effect>) {
    tools::forget_pane(s, i, fx);
    if let Some(p) = s.panes.get_mut(i) {
        p.phase = Phase::Cancelled;
        p.notice = None;
    }
}

pub(crate) fn save(s: &AppState, fx: &mut Vec<Effect>) {
    fx.push(Effect::SaveSession {
        path: s.session_path.clone(),
    });
}

pub(crate) fn select_case(s: &mut AppState, c: usize) {
    if c < s.prompt.cases.len() && c != s.case {
        s.case = c;
        s.show_case_results();
    }
}

/// An event of a pane's own stream (not a technique's).
pub(crate) fn stream_event(
    s: &mut AppState,
    node: u64,
    request: u64,
    event: StreamEvent,
    at: Duration,
    fx: &mut Vec<Effect>,
) {
    let Some(i) = s
        .panes
        .iter()
        .position(|p| p.node == Some(node) && p.request == request && p.phase.is_active())
    else {
        return; // stale: cancelled, rerun, or deleted
    };
    s.dirty = true;
    match event {
        StreamEvent::Delta(d) => {
            let p = &mut s.panes[i];
            let started = p.started;
            p.meter.on_delta(at.saturating_sub(started), &d);
            if !d.is_empty() {
                p.phase = Phase::Streaming;
                // "loading model…" and the like are over once tokens flow.
                p.notice = None;
            }
            if let Some(n) = s.session.node_mut(node) {
                n.status = NodeStatus::Streaming;
                n.text.push_str(&d);
            }
            // `stop_on`: end the stream as soon as the case's checks are decided (the same
            // test the headless runner makes after every delta). Not with tools offered: a
            // turn's text is not the whole answer (the calls are checked on the last turn).
            let expect = s.prompt.cases.get(s.case).map(|c| &c.expect);
            let decided = match (expect, s.session.node_mut(node)) {
                (Some(e), Some(n)) => {
                    n.case != "(no case)"
                        && n.request.sampling.tools.is_empty()
                        && n.decided_early(e)
                }
                _ => false,
            };
            if decided {
                fx.push(Effect::CancelStream { node });
                finish(s, i, Ok(FinishReason::ChecksDecided), at);
                save(s, fx);
            }
        }
        StreamEvent::Usage(u) => s.panes[i].meter.on_usage(u),
        StreamEvent::Logprobs(t) => {
            if let Some(n) = s.session.node_mut(node) {
                t.iter().for_each(|t| n.logprobs.push(t));
            }
        }
        StreamEvent::Notice(n) => s.panes[i].notice = Some(n),
        StreamEvent::ToolCall(c) => tools::on_call(s, node, c),
        StreamEvent::Finished(r) => {
            finish(s, i, Ok(r), at);
            tools::after_finish(s, i, fx);
            save(s, fx);
        }
        StreamEvent::Failed(e) => {
            finish(s, i, Err(e), at);
            save(s, fx);
        }
    }
}
