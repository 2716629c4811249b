//! Model backends behind one streaming interface.
//!
//! Every backend turns a [`ChatRequest`] into a stream of [`StreamEvent`]s delivered on a
//! channel the caller drains, and stops generating as soon as the [`StreamHandle`] is
//! cancelled or dropped. Timing (time to first token, tokens/s) is not measured by the
//! backends: the consumer stamps events with its own clock (see [`crate::state::timing`]),
//! so every backend is measured the same way.

pub(crate) mod anthropic;
pub(crate) mod capped;
pub(crate) mod counted;

pub(crate) mod embed;
pub(crate) mod gguf;
pub(crate) mod http;
#[cfg(feature = "local")]
pub(crate) mod local;
pub(crate) mod lora;
pub(crate) mod ollama;
pub(crate) mod openai;
pub(crate) mod registry;
pub(crate) mod scripted;
#[cfg(feature = "local")]
pub(crate) mod seeded;
pub(crate) mod sse;
pub(crate) mod token_probs;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(crate) use crate::chat::TokenLogprob;
pub(crate) use crate::chat::{
    BackendStatus, ChatMessage, ChatRequest, FinishReason, ModelIdentity, Role, Sampling,
    StreamEvent, Usage,
};
pub(crate) use registry::BackendRegistry;

/// The consumer's end of a running request. Dropping it cancels the request.
pub(crate) struct StreamHandle {
    pub events: mpsc::UnboundedReceiver<StreamEvent>,
    cancel: CancellationToken,
}

impl StreamHandle {
    /// A handle plus the producer's ends: the sender for events and the token to watch.
    pub fn channel() -> (StreamHandle, EventSink) {
        let (tx, rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        (
            StreamHandle {
                events: rx,
                cancel: cancel.clone(),
            },
            EventSink { tx, cancel },
        )
    }

    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The producer's end of a stream.
#[derive(Clone)]
pub(crate) struct EventSink {
    tx: mpsc::UnboundedSender<StreamEvent>,
    cancel: CancellationToken,
}

impl EventSink {
    /// Send an event; returns false when the consumer is gone or has cancelled.
    pub fn send(&self, ev: StreamEvent) -> bool {
        !self.cancel.is_cancelled() && self.tx.send(ev).is_ok()
    }

    /// Send a terminal event even after cancellation (so the consumer learns it stopped).
    pub fn finish(&self, ev: StreamEvent) {
        let _ = self.tx.send(ev);
    }

    pub async fn cancelled(&self) {
        tokio::select! {
            _ = self.cancel.cancelled() => {}
            _ = self.tx.closed() => {}
        }
    }
}

/// A model backend. `start` never blocks: it spawns the work on the current tokio runtime and
/// returns at once; loading, connecting and generating all happen in that task.
pub(crate) trait Backend: Send + Sync {
    /// Start a streaming chat request.
    fn start(&self, request: ChatRequest) -> StreamHandle;
    /// What to record about this model in a session file.
    fn identity(&self) -> ModelIdentity;
    /// Load state, for the UI header.
    fn status(&self) -> BackendStatus {
        BackendStatus::Ready
    }
    /// Begin loading now instead of on the first request.
    fn preload(&self) {}
}

/// Feed every event of `handle` to `on_event` until the stream ends or `on_event` returns
/// false (the consumer is gone). When `cancel` fires the backend is told to stop; with
/// [`OnCancel::Drain`] the events up to its terminal one (normally `Finished(Cancelled)`) are
/// still delivered, with [`OnCancel::Return`] pumping stops at once. A backend that drops its
/// sender without a terminal event is reported as `Failed`. Both drivers (the app's stream
/// tasks and the headless runners) stream through this one loop.
pub(crate) async fn pump(
    mut handle: StreamHandle,
    cancel: &CancellationToken,
    on_cancel: OnCancel,
    mut on_event: impl FnMut(StreamEvent) -> bool,
) {
    let mut cancel_sent = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled(), if !cancel_sent => {
                handle.cancel();
                cancel_sent = true;
                if on_cancel == OnCancel::Return {
                    return;
                }
            }
            ev = handle.events.recv() => match ev {
                Some(ev) => {
                    let end = ev.is_terminal();
                    if !on_event(ev) || end {
                        return;
                    }
                }
                None => {
                    on_event(StreamEvent::Failed(
                        "the backend ended the stream without finishing".into(),
                    ));
                    return;
                }
            }
        }
    }
}

/// What [`pump`] does once its cancel token fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnCancel {
    /// Stop delivering: the consumer has already closed the stream on its side.
    Return,
    /// Keep delivering up to the backend's terminal event, so the consumer records how the
    /// stream really ended.
    Drain,
}
