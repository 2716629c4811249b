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

/// [`pump`] for a consumer that may fall behind (the playground's loop, which draws between
/// batches of messages): each event handed on takes one of `credit`'s permits, which the
/// consumer gives back as it handles them. While there is no permit, answer text (and its
/// token probabilities) is merged into one pending delta instead of queued event by event,
/// so a backend faster than the screen costs the answer's size in memory, not a queue of
/// millions of small messages (measured in the soak: a 230 MB backlog in 56 s with six
/// scripted panes at full speed). Other events wait for a permit, in order. `credit` closed:
/// pumping stops.
pub(crate) async fn pump_paced(
    mut handle: StreamHandle,
    cancel: &CancellationToken,
    credit: &tokio::sync::Semaphore,
    mut on_event: impl FnMut(StreamEvent) -> bool,
) {
    let mut text = String::new();
    let mut probs: Vec<crate::chat::TokenLogprob> = Vec::new();
    // Deliver the merged text and probabilities (one permit each); false: stop.
    async fn flush(
        text: &mut String,
        probs: &mut Vec<crate::chat::TokenLogprob>,
        credit: &tokio::sync::Semaphore,
        on_event: &mut impl FnMut(StreamEvent) -> bool,
    ) -> bool {
        for ev in [
            (!text.is_empty()).then(|| StreamEvent::Delta(std::mem::take(text))),
            (!probs.is_empty()).then(|| StreamEvent::Logprobs(std::mem::take(probs))),
        ]
        .into_iter()
        .flatten()
        {
            match credit.acquire().await {
                Ok(p) => p.forget(),
                Err(_) => return false,
            }
            if !on_event(ev) {
                return false;
            }
        }
        true
    }
    loop {
        let pending = !text.is_empty() || !probs.is_empty();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                handle.cancel();
                return;
            }
            p = credit.acquire(), if pending => {
                // A permit is free: `flush` takes it (and any more it needs).
                if p.is_err() {
                    return;
                }
                if !flush(&mut text, &mut probs, credit, &mut on_event).await {
                    return;
                }
            }
            ev = handle.events.recv() => match ev {
                Some(StreamEvent::Delta(t)) if pending || credit.available_permits() == 0 => {
                    text.push_str(&t);
                }
                Some(StreamEvent::Logprobs(l)) if pending || credit.available_permits() == 0 => {
                    probs.extend(l);
                }
                Some(ev) => {
                    let end = ev.is_terminal();
                    if !flush(&mut text, &mut probs, credit, &mut on_event).await {
                        return;
                    }
                    match credit.acquire().await {
                        Ok(p) => p.forget(),
                        Err(_) => return,
                    }
                    if !on_event(ev) || end {
                        return;
                    }
                }
                None => {
                    if flush(&mut text, &mut probs, credit, &mut on_event).await {
                        on_event(StreamEvent::Failed(
                            "the backend ended the stream without finishing".into(),
                        ));
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::FinishReason;
    use std::sync::{Arc, Mutex};

    /// A consumer that is behind gets the text merged, not queued: 1,000 deltas sent while it
    /// gave no credit arrive as one, whole and in order, then the terminal event.
    #[tokio::test]
    async fn a_paced_pump_merges_text_while_the_consumer_is_behind() {
        let (handle, sink) = StreamHandle::channel();
        let credit = Arc::new(tokio::sync::Semaphore::new(1));
        let got: Arc<Mutex<Vec<StreamEvent>>> = Arc::default();
        let (c, g) = (credit.clone(), got.clone());
        let cancel = CancellationToken::new();
        let pump = tokio::spawn(async move {
            pump_paced(handle, &cancel, &c, |ev| {
                g.lock().unwrap().push(ev);
                true
            })
            .await
        });
        let mut want = String::new();
        for i in 0..1000 {
            let t = format!("{i} ");
            want.push_str(&t);
            assert!(sink.send(StreamEvent::Delta(t)));
        }
        sink.finish(StreamEvent::Finished(FinishReason::Stop));
        // The one permit went to the first delta; nothing more arrives without credit.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(got.lock().unwrap().len(), 1);
        credit.add_permits(10);
        pump.await.unwrap();
        let got = got.lock().unwrap();
        let text: String = got
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Delta(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, want);
        assert!(got.len() <= 3, "{} events", got.len());
        assert!(matches!(
            got.last(),
            Some(StreamEvent::Finished(FinishReason::Stop))
        ));
    }

    /// A closed credit (the app quitting) ends the pump even with events waiting.
    #[tokio::test]
    async fn a_closed_credit_stops_the_pump() {
        let (handle, sink) = StreamHandle::channel();
        let credit = tokio::sync::Semaphore::new(0);
        assert!(sink.send(StreamEvent::Notice("x".into())));
        credit.close();
        let cancel = CancellationToken::new();
        let mut n = 0;
        pump_paced(handle, &cancel, &credit, |_| {
            n += 1;
            true
        })
        .await;
        assert_eq!(n, 0);
    }
}
