//! `backend = "anthropic"`: Claude's Messages API, streamed as server-sent events.
//!
//! The system prompt is a top-level field, `max_tokens` is mandatory, and the answer arrives
//! as content blocks. Thinking blocks are the model's scratchpad, not its answer: they are
//! never mixed into the text (the user gets one notice that the model is thinking).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::http::{self, Call, Remote, Step, Wire, WireParser};
use super::{
    Backend, ChatRequest, FinishReason, ModelIdentity, Role, StreamEvent, StreamHandle, Usage,
};
use crate::chat::{ToolCall, ToolChoice};

/// The API version this parser speaks.
const API_VERSION: &str = "2023-06-01";
/// `max_tokens` when the prompt file sets none (the API requires one).
const DEFAULT_MAX_TOKENS: usize = 1024;

pub(crate) struct AnthropicBackend {
    remote: Remote,
}

impl AnthropicBackend {
    pub fn new(remote: Remote) -> Self {
        Self { remote }
    }
}

/// The request body for a streamed message.
pub(crate) fn body(model: &str, request: &ChatRequest) -> Value {
    let s = &request.sampling;
    let system: Vec<&str> = request
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect();
    let mut messages: Vec<Value> = Vec::new();
    for m in request.messages.iter().filter(|m| m.role != Role::System) {
        if let Some(r) = &m.tool_result {
            let block =
                json!({"type": "tool_result", "tool_use_id": r.call_id, "content": m.content});
            // Results of one turn's calls go back in one user message.
            if let Some(prev) = messages.last_mut().filter(|p| {
                p["role"] == "user"
                    && p["content"]
                        .as_array()
                        .is_some_and(|c| c.iter().all(|b| b["type"] == "tool_result"))
            }) {
                if let Some(c) = prev["content"].as_array_mut() {
                    c.push(block);
                }
            } else {
                messages.push(json!({"role": "user", "content": [block]}));
            }
            continue;
        }
        if m.tool_calls.is_empty() {
            messages.push(json!({"role": m.role, "content": m.content}));
            continue;
        }
        let mut content = Vec::new();
        if !m.content.is_empty() {
            content.push(json!({"type": "text", "text": m.content}));
        }
        for c in &m.tool_calls {
            // The API takes the input as an object; arguments that were not one are sent empty
            // (the model was told so in the call's result).
            let input = c.parsed_args().unwrap_or_else(|_| json!({}));
            content.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
        }
        messages.push(json!({"role": "assistant", "content": content}));
    }
    let mut b = serde_json::Map::new();
    b.insert("model".into(), model.into());
    b.insert(
        "max_tokens".into(),
        s.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS).into(),
    );
    if !system.is_empty() {
        b.insert("system".into(), system.join("\n\n").into());
    }
    b.insert("messages".into(), messages.into());
    b.insert("stream".into(), true.into());
    if let Some(v) = s.temperature {
        b.insert("temperature".into(), v.into());
    }
    if let Some(v) = s.top_p {
        b.insert("top_p".into(), v.into());
    }
    if let Some(v) = s.top_k {
        b.insert("top_k".into(), v.into());
    }
    if let Some(v) = http::stop_value(&s.stop) {
        b.insert("stop_sequences".into(), v);
    }
    if !s.tools.is_empty() {
        let tools: Vec<Value> = s
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
        b.insert("tools".into(), tools.into());
        if let Some(c) = &s.tool_choice {
            let v = match c {
                ToolChoice::Auto => json!({"type": "auto"}),
                ToolChoice::None => json!({"type": "none"}),
                ToolChoice::Required => json!({"type": "any"}),
                ToolChoice::Tool(n) => json!({"type": "tool", "name": n}),
            };
            b.insert("tool_choice".into(), v);
        }
    }
    Value::Object(b)
}

impl Backend for AnthropicBackend {
    fn start(&self, request: ChatRequest) -> StreamHandle {
        let (handle, sink) = StreamHandle::channel();
        let remote = self.remote.clone();
        tokio::spawn(async move {
            let mut auth = vec![("anthropic-version", API_VERSION.to_string())];
            if let Some(k) = &remote.api_key {
                auth.push(("x-api-key", k.clone()));
            }
            let call = Call {
                url: format!("{}/v1/messages", remote.base_url),
                body: body(&remote.model, &request),
                auth_headers: auth,
                wire: Wire::Sse,
            };
            http::run(&remote, call, &mut AnthropicParser::default(), &sink).await;
        });
        handle
    }

    fn identity(&self) -> ModelIdentity {
        self.remote.identity()
    }
}

/// Messages API events.
#[derive(Debug, Default)]
pub(crate) struct AnthropicParser {
    /// Content block types by index.
    blocks: BTreeMap<u64, String>,
    stop: Option<FinishReason>,
    input_tokens: Option<u64>,
    told_thinking: bool,
    /// `tool_use` blocks by index: their id, name and the input JSON streamed so far.
    calls: BTreeMap<u64, ToolCall>,
    call_bytes: usize,
}

fn stop_reason(s: &str) -> FinishReason {
    match s {
        "max_tokens" => FinishReason::Length,
        "stop_sequence" => FinishReason::StopSequence,
        "tool_use" => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

impl AnthropicParser {
    fn thinking(&mut self, out: &mut Vec<Step>) {
        if !self.told_thinking {
            self.told_thinking = true;
            out.push(Step::Emit(StreamEvent::Notice(
                "the model is thinking (not shown as part of the answer)".into(),
            )));
        }
    }
}

impl WireParser for AnthropicParser {
    fn on_payload(&mut self, event: Option<&str>, data: &str, out: &mut Vec<Step>) {
        let v: Value = match serde_json::from_str(data.trim()) {
            Ok(v) => v,
            Err(_) => {
                out.push(Step::Fail(http::not_json(data)));
                return;
            }
        };
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or(event)
            .unwrap_or("");
        match kind {
            "message_start" => {
                let u = v.get("message").and_then(|m| m.get("usage"));
                self.input_tokens = u
                    .and_then(|u| u.get("input_tokens"))
                    .and_then(Value::as_u64);
                if self.input_tokens.is_some() {
                    out.push(Step::Emit(StreamEvent::Usage(Usage {
                        prompt_tokens: self.input_tokens,
                        completion_tokens: None,
                        estimated: false,
                    })));
                }
            }
            "content_block_start" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = v.get("content_block");
                let t = block
                    .and_then(|b| b.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("text")
                    .to_string();
                if t == "text" {
                    if let Some(text) = block
                        .and_then(|b| b.get("text"))
                        .and_then(Value::as_str)
                        .filter(|t| !t.is_empty())
                    {
                        out.push(Step::Emit(StreamEvent::Delta(text.into())));
                    }
                } else if t.contains("thinking") {
                    self.thinking(out);
                } else if t == "tool_use" {
                    let field = |k: &str| {
                        block
                            .and_then(|b| b.get(k))
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    };
                    // A server may put the whole input in the start block.
                    let input = block
                        .and_then(|b| b.get("input"))
                        .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                        .map(Value::to_string)
                        .unwrap_or_default();
                    self.calls.insert(
                        index,
                        ToolCall {
                            id: field("id"),
                            name: field("name"),
                            arguments: input,
                        },
                    );
                }
                self.blocks.insert(index, t);
            }
            "content_block_delta" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta = v.get("delta");
                let t = delta
                    .and_then(|d| d.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let block_is_text = self.blocks.get(&index).is_none_or(|b| b == "text");
                match t {
                    "text_delta" if block_is_text => {
                        if let Some(text) = delta
                            .and_then(|d| d.get("text"))
                            .and_then(Value::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            out.push(Step::Emit(StreamEvent::Delta(text.into())));
                        }
                    }
                    "thinking_delta" => self.thinking(out),
                    "input_json_delta" => {
                        let part = delta
                            .and_then(|d| d.get("partial_json"))
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        self.call_bytes += part.len();
                        if self.call_bytes > super::openai::MAX_TOOL_ARGUMENT_BYTES {
                            out.push(Step::Fail(format!(
                                "the model's tool call input passed {} MiB; stopped",
                                super::openai::MAX_TOOL_ARGUMENT_BYTES >> 20
                            )));
                            return;
                        }
                        if let Some(c) = self.calls.get_mut(&index) {
                            c.arguments.push_str(part);
                        }
                    }
                    // signature_delta, citations: not answer text.
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(r) = v
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop = Some(stop_reason(r));
                }
                if let Some(n) = v
                    .get("usage")
                    .and_then(|u| u.get("output_tokens"))
                    .and_then(Value::as_u64)
                {
                    out.push(Step::Emit(StreamEvent::Usage(Usage {
                        prompt_tokens: self.input_tokens,
                        completion_tokens: Some(n),
                        estimated: false,
                    })));
                }
            }
            "message_stop" => {
                let calls = std::mem::take(&mut self.calls);
                let any = !calls.is_empty();
                for (i, mut c) in calls {
                    if c.id.is_empty() {
                        c.id = format!("toolu_{i}");
                    }
                    out.push(Step::Emit(StreamEvent::ToolCall(c)));
                }
                let stop = match self.stop {
                    None | Some(FinishReason::Stop) if any => FinishReason::ToolCalls,
                    Some(r) => r,
                    None => FinishReason::Stop,
                };
                out.push(Step::Finish(stop));
            }
            "error" => {
                let msg = http::json_error_text(&v).unwrap_or_else(|| data.trim().to_string());
                out.push(Step::Fail(format!(
                    "the server reported an error mid-stream: {msg}"
                )));
            }
            // ping, content_block_stop, and event types added after this was written.
            _ => {}
        }
    }

    fn on_eof(&self) -> String {
        "the stream ended before message_stop; the answer is incomplete".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{ChatMessage, Sampling};

    #[test]
    fn body_has_top_level_system_and_always_max_tokens() {
        let r = ChatRequest {
            messages: vec![
                ChatMessage::new(Role::System, "be brief"),
                ChatMessage::new(Role::User, "hi"),
                ChatMessage::new(Role::Assistant, "hello"),
                ChatMessage::new(Role::User, "capital of England?"),
            ],
            sampling: Sampling {
                temperature: Some(0.0),
                stop: vec!["END".into()],
                seed: Some(3),
                logprobs: None,
                samples: None,
                stop_on: None,
                ..Default::default()
            },
        };
        assert_eq!(
            body("claude", &r),
            json!({
                "model": "claude", "max_tokens": 1024, "system": "be brief", "stream": true,
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": "capital of England?"},
                ],
                "temperature": 0.0, "stop_sequences": ["END"],
            })
        );
    }

    #[test]
    fn tool_use_streams_as_input_json_deltas_and_results_go_back_as_tool_result_blocks() {
        let mut p = AnthropicParser::default();
        let mut out = Vec::new();
        for data in [
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me check."}}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_current_weather","input":{}}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"Bo"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ston\"}"}}"#,
            r#"{"type":"content_block_stop","index":1}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":20}}"#,
            r#"{"type":"message_stop"}"#,
        ] {
            p.on_payload(None, data, &mut out);
        }
        let call = ToolCall {
            id: "toolu_1".into(),
            name: "get_current_weather".into(),
            arguments: r#"{"location": "Boston"}"#.into(),
        };
        assert_eq!(
            out[0],
            Step::Emit(StreamEvent::Delta("Let me check.".into()))
        );
        assert_eq!(out[2], Step::Emit(StreamEvent::ToolCall(call.clone())));
        assert_eq!(out[3], Step::Finish(FinishReason::ToolCalls));

        let mut second = call.clone();
        second.id = "toolu_2".into();
        let r = ChatRequest {
            messages: vec![
                ChatMessage::new(Role::User, "weather?"),
                ChatMessage::assistant_calls("Let me check.", vec![call.clone(), second.clone()]),
                ChatMessage::tool_result(&call, "72"),
                ChatMessage::tool_result(&second, "73"),
            ],
            sampling: Sampling {
                tools: vec![crate::chat::ToolSpec {
                    name: "get_current_weather".into(),
                    description: "d".into(),
                    parameters: json!({"type": "object"}),
                }],
                tool_choice: Some(ToolChoice::Required),
                ..Default::default()
            },
        };
        let b = body("claude", &r);
        assert_eq!(
            b["messages"],
            json!([
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_current_weather", "input": {"location": "Boston"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_current_weather", "input": {"location": "Boston"}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "72"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "73"},
                ]},
            ])
        );
        assert_eq!(b["tools"][0]["input_schema"], json!({"type": "object"}));
        assert_eq!(b["tool_choice"], json!({"type": "any"}));
    }

    #[test]
    fn thinking_never_reaches_the_answer() {
        let mut p = AnthropicParser::default();
        let mut out = Vec::new();
        for (ev, data) in [
            (
                "message_start",
                r#"{"type":"message_start","message":{"usage":{"input_tokens":9,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Hmm, London?"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"abc"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
            ),
            ("ping", r#"{"type": "ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"London."}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":12}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ] {
            p.on_payload(Some(ev), data, &mut out);
        }
        assert_eq!(
            out,
            [
                Step::Emit(StreamEvent::Usage(Usage {
                    prompt_tokens: Some(9),
                    completion_tokens: None,
                    estimated: false,
                })),
                Step::Emit(StreamEvent::Notice(
                    "the model is thinking (not shown as part of the answer)".into()
                )),
                Step::Emit(StreamEvent::Delta("London.".into())),
                Step::Emit(StreamEvent::Usage(Usage {
                    prompt_tokens: Some(9),
                    completion_tokens: Some(12),
                    estimated: false,
                })),
                Step::Finish(FinishReason::Length),
            ]
        );
    }

    #[test]
    fn error_event_fails() {
        let mut p = AnthropicParser::default();
        let mut out = Vec::new();
        p.on_payload(
            Some("error"),
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            &mut out,
        );
        assert_eq!(
            out,
            [Step::Fail(
                "the server reported an error mid-stream: overloaded_error: Overloaded".into()
            )]
        );
    }
}
