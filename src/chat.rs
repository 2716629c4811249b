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
///
/// An assistant turn may carry the tool calls the model made (`tool_calls`); the answer to a
/// call is a message of its own with `tool_result` set. Such a message has the user's side of
/// the conversation (`Role::User`), as Anthropic's API models it; the wire formats that have a
/// `tool` role (OpenAI, Ollama) send it under that role. A backend that speaks no tools (the
/// local model, for now) sends it as the user text it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChatMessage {
    pub role: Role,
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_result: Option<ToolResultOf>,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_result: None,
        }
    }

    /// The assistant turn that made `calls` (with any text it wrote before them).
    pub fn assistant_calls(content: impl Into<String>, calls: Vec<ToolCall>) -> Self {
        Self {
            tool_calls: calls,
            ..Self::new(Role::Assistant, content)
        }
    }

    /// The answer to the call `call`.
    pub fn tool_result(call: &ToolCall, content: impl Into<String>) -> Self {
        Self {
            tool_result: Some(ToolResultOf {
                call_id: call.id.clone(),
                name: call.name.clone(),
            }),
            ..Self::new(Role::User, content)
        }
    }
}

/// A tool the model is told about: its name, what it does and its arguments' JSON Schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToolSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// A JSON Schema for the arguments object.
    pub parameters: serde_json::Value,
}

impl ToolSpec {
    /// Check `args` against the parameters schema: `Err` lists what is wrong (at most five
    /// problems, each with its JSON pointer).
    pub fn check_args(&self, args: &serde_json::Value) -> Result<(), String> {
        let validator = jsonschema::validator_for(&self.parameters)
            .map_err(|e| format!("the tool's parameters are not a valid JSON Schema: {e}"))?;
        let problems: Vec<String> = validator
            .iter_errors(args)
            .take(5)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{at}: {e}")
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Which tools the model may or must call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToolChoice {
    Auto,
    None,
    Required,
    /// This tool, by name.
    Tool(String),
}

impl ToolChoice {
    pub fn parse(s: &str) -> ToolChoice {
        match s {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            name => ToolChoice::Tool(name.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ToolChoice::Auto => "auto",
            ToolChoice::None => "none",
            ToolChoice::Required => "required",
            ToolChoice::Tool(n) => n,
        }
    }
}

impl Serialize for ToolChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ToolChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ToolChoice::parse(&s))
    }
}

/// A call the model made: the id the server gave it (or one we made up), the tool's name and
/// the arguments exactly as the model wrote them (usually JSON; checked before use).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

impl ToolCall {
    /// The arguments as a JSON object, or what is wrong with them.
    pub fn parsed_args(&self) -> Result<serde_json::Value, String> {
        let text = self.arguments.trim();
        if text.is_empty() {
            return Ok(serde_json::Value::Object(Default::default()));
        }
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) if v.is_object() => Ok(v),
            Ok(_) => Err("the arguments are JSON but not an object".into()),
            Err(e) => Err(format!("the arguments are not JSON: {e}")),
        }
    }
}

/// Which call a tool-result message answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToolResultOf {
    pub call_id: String,
    pub name: String,
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
    /// The tools offered to the model. They ride with the sampling (as mistral.rs's
    /// `RequestBuilder` has `set_tools` beside `set_sampling`) so every request builder and
    /// session record carries them without a new request field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// How many rounds of tool calls the driver answers before it stops the conversation with
    /// an error (not sent; [`DEFAULT_MAX_TOOL_STEPS`] when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tool_steps: Option<usize>,
    /// Ask for token probabilities with this many alternatives per token (0: the chosen
    /// token's own only). Backends that can't give them ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<usize>,
    /// Self-consistency: run each case this many times, seeded `seed`, `seed + 1`, … (not
    /// sent to the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    /// End the stream as soon as the case's checks are decided (not sent to the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_on: Option<StopOn>,
}

/// When a stream may end early on its checks (streaming assertions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StopOn {
    /// As soon as one check can no longer pass (a `none` phrase appeared, `equals` diverged).
    FirstFail,
    /// As soon as every check already passes (`any`/`all` found, `regex` matched).
    FirstPass,
}

impl StopOn {
    pub fn as_str(self) -> &'static str {
        match self {
            StopOn::FirstFail => "first_fail",
            StopOn::FirstPass => "first_pass",
        }
    }
}

/// Rounds of tool calls answered when a variant does not say.
pub(crate) const DEFAULT_MAX_TOOL_STEPS: usize = 5;

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
            tools: if self.tools.is_empty() {
                base.tools.clone()
            } else {
                self.tools.clone()
            },
            tool_choice: self.tool_choice.clone().or(base.tool_choice.clone()),
            max_tool_steps: self.max_tool_steps.or(base.max_tool_steps),
            logprobs: self.logprobs.or(base.logprobs),
            samples: self.samples.or(base.samples),
            stop_on: self.stop_on.or(base.stop_on),
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
    /// The model ended its turn with tool calls.
    ToolCalls,
    /// `stop_on` ended it: its checks were decided before the model finished.
    ChecksDecided,
}

impl FinishReason {
    /// Map the finish reasons servers and engines report onto ours.
    pub fn from_wire(s: &str) -> FinishReason {
        match s {
            "length" | "max_tokens" | "model_length" => FinishReason::Length,
            "stop_sequence" => FinishReason::StopSequence,
            "canceled" | "cancelled" => FinishReason::Cancelled,
            "error" => FinishReason::Error,
            "tool_calls" | "tool_use" | "function_call" => FinishReason::ToolCalls,
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
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ChecksDecided => "checks_decided",
        }
    }
}

/// Token counts reported by the engine or server, or, when `estimated`, counted by
/// promptloom with the model's tokenizer because the server sent none (`llm/counted.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Usage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
}

/// Most alternatives a backend is asked for per token (OpenAI's `top_logprobs` limit).
pub(crate) const MAX_TOP_LOGPROBS: usize = 20;

/// One generated token: its text, its natural-log probability, and the most likely tokens
/// at its position (the chosen one may be among them), most likely first.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TokenLogprob {
    pub text: String,
    pub logprob: f32,
    pub top: Vec<(String, f32)>,
}

impl TokenLogprob {
    /// A token as a server sent it: a non-finite or positive logprob is clamped into
    /// `(-inf, 0]` (probabilities stay in [0, 1]), alternatives sorted most likely first.
    pub fn new(text: String, logprob: f32, mut top: Vec<(String, f32)>) -> TokenLogprob {
        let clamp = |lp: f32| {
            if lp.is_nan() {
                f32::NEG_INFINITY
            } else {
                lp.min(0.0)
            }
        };
        for t in &mut top {
            t.1 = clamp(t.1);
        }
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        top.truncate(MAX_TOP_LOGPROBS);
        TokenLogprob {
            text,
            logprob: clamp(logprob),
            top,
        }
    }
}

/// What a stream delivers, in order: any number of `Delta`/`Usage`/`Notice`, then exactly one
/// `Finished` or `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StreamEvent {
    /// More answer text.
    Delta(String),
    /// A complete tool call (its arguments fully streamed), delivered before `Finished`.
    ToolCall(ToolCall),
    /// Token counts (usually once, near the end).
    Usage(Usage),
    /// The probabilities of tokens just delivered as `Delta` text, in order (only when the
    /// request asked for `logprobs` and the backend gives them).
    Logprobs(Vec<TokenLogprob>),
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
