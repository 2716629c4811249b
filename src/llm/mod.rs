//! Model backends behind one streaming interface.
//!
//! Every backend turns a [`ChatRequest`] into a stream of [`StreamEvent`]s delivered on a
//! channel the caller drains, and stops generating as soon as the [`StreamHandle`] is
//! cancelled or dropped. Timing (time to first token, tokens/s) is not measured by the
//! backends: the consumer stamps events with its own clock (see [`crate::state::timing`]),
//! so every backend is measured the same way.

pub(crate) mod anthropic;
pub(crate) mod embed;
pub(crate) mod gguf;
pub(crate) mod http;
#[cfg(feature = "local")]
pub(crate) mod local;
pub(crate) mod ollama;
pub(crate) mod openai;
pub(crate) mod registry;
pub(crate) mod scripted;
#[cfg(feature = "local")]
pub(crate) mod seeded;
pub(crate) mod sse;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(crate) use registry::BackendRegistry;

/// Who said a message in a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    System,
    User,
    Assistant,
}

/// One chat turn, exactly as sent to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// Sampling parameters. `None` means "the backend's default" and is recorded as such.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Sampling {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl Sampling {
    /// `self` with every unset field taken from `base`.
    pub fn over(&self, base: &Sampling) -> Sampling {
        Sampling {
            temperature: self.temperature.or(base.temperature),
            top_p: self.top_p.or(base.top_p),
            top_k: self.top_k.or(base.top_k),
            max_tokens: self.max_tokens.or(base.max_tokens),
            stop: if self.stop.is_empty() {
                base.stop.clone()
            } else {
                self.stop.clone()
            },
            seed: self.seed.or(base.seed),
        }
    }
}

/// A streaming chat request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub sampling: Sampling,
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FinishReason {
    /// The model ended its answer (end-of-sequence token).
    Stop,
    /// `max_tokens` was reached.
    Length,
    /// A stop sequence was produced.
    StopSequence,
    /// The user cancelled.
    Cancelled,
    /// The request failed; see the error.
    Error,
}

impl FinishReason {
    /// Map the finish reasons servers and engines report onto ours.
    pub fn from_wire(s: &str) -> FinishReason {
        match s {
            "length" | "max_tokens" | "model_length" => FinishReason::Length,
            "stop_sequence" => FinishReason::StopSequence,
            "canceled" | "cancelled" => FinishReason::Cancelled,
            "error" => FinishReason::Error,
            _ => FinishReason::Stop,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::StopSequence => "stop_sequence",
            FinishReason::Cancelled => "cancelled",
            FinishReason::Error => "error",
        }
    }
}

/// Token counts reported by the engine or server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Usage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
}

/// What a stream delivers, in order: any number of `Delta`/`Usage`/`Notice`, then exactly one
/// `Finished` or `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StreamEvent {
    /// More answer text.
    Delta(String),
    /// Token counts (usually once, near the end).
    Usage(Usage),
    /// Something the user should see that is not part of the answer, e.g. "rate limited,
    /// retrying in 4 s" or the model still loading.
    Notice(String),
    /// The stream ended normally.
    Finished(FinishReason),
    /// The stream ended with an error. Text received before it is kept by the consumer.
    Failed(String),
}

impl StreamEvent {
    pub fn is_terminal(&self) -> bool {
        matches!(self, StreamEvent::Finished(_) | StreamEvent::Failed(_))
    }
}

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

/// Where a model runs, as recorded in session files so a run can be reproduced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelIdentity {
    pub backend: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gguf_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gguf_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// Whether a backend can take requests yet.
// Only the local backend loads, so without it some states are never built.
#[cfg_attr(not(feature = "local"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BackendStatus {
    /// Nothing loaded yet (local models load on first use or on `preload`).
    Idle,
    Loading,
    Ready,
    Failed(String),
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
