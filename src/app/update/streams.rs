//! Where a stream event goes (a pane's answer or a technique's step) and stopping all of them
//! at once (`Esc`, `Ctrl-C`, quitting).

use std::time::Duration;

use super::panes::{self, cancel, finish, save};
use super::techniques;
use super::tools;
use crate::app::model::msg::Effect;
use crate::app::model::state::AppState;
use crate::chat::{FinishReason, StreamEvent};

/// An event of the stream for `(node, request)`: a technique's if a technique owns the node,
/// else a pane's.
pub(crate) fn stream_event(
    s: &mut AppState,
    node: u64,
    request: u64,
    event: StreamEvent,
    at: Duration,
    fx: &mut Vec<Effect>,
) {
    if techniques::owns(s, node) {
        return techniques::stream_event(s, node, request, event, at, fx);
    }
    panes::stream_event(s, node, request, event, at, fx);
}

pub(crate) fn cancel_all(s: &mut AppState, fx: &mut Vec<Effect>) {
    for i in 0..s.panes.len() {
        cancel(s, i, fx);
    }
    techniques::cancel_all(s, fx);
}

pub(crate) fn quit(s: &mut AppState, fx: &mut Vec<Effect>) {
    techniques::cancel_all(s, fx);
    for i in 0..s.panes.len() {
        if tools::answering(s, i) {
            panes::stop_answering(s, i, fx);
            continue;
        }
        if let Some(id) = s.panes[i].node.filter(|_| s.panes[i].phase.is_active()) {
            fx.push(Effect::CancelStream { node: id });
            finish(s, i, Ok(FinishReason::Cancelled), s.now);
        }
    }
    save(s, fx);
    s.quit = true;
}
