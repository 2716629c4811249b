//! The vocabulary of talking to a model: chat messages, sampling, requests, stream events,
//! finish reasons and model identities. Plain data, no tokio: the core (`state/`, `prompt/`,
//! `technique/`, `store/`) speaks it without depending on the backends in [`crate::llm`],
//! which re-exports these types for them.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use serde::{Deserialize, Serialize};

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
    /// The answer reached `max_answer_bytes` and was cut there.
    MaxAnswerBytes,
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
            FinishReason::MaxAnswerBytes => "max_answer_bytes",
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
    /// LoRA adapters merged into a local model's weights, in the order they were applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adapters: Vec<AdapterIdentity>,
}

/// A LoRA adapter on a local model: its weights file and the hashes of what was loaded
/// (absent until the adapter has been read).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdapterIdentity {
    /// The adapter's directory name, as the pane header shows it.
    pub name: String,
    /// The path of its `adapter_model.safetensors`.
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// sha256 of its `adapter_config.json` (rank, alpha and target modules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_sha256: Option<String>,
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
