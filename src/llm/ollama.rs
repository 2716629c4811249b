//! `backend = "ollama"`: Ollama's native chat API, streamed as newline-delimited JSON.
//!
//! The native API (rather than Ollama's OpenAI-compatible `/v1`) takes `top_k` and
//! `num_predict` in `options` and reports exact prompt and answer token counts and durations
//! on its final line.

use serde_json::{json, Value};

use super::http::{self, Call, Remote, Step, Wire, WireParser};
use super::{Backend, ChatRequest, FinishReason, ModelIdentity, StreamEvent, StreamHandle, Usage};
use crate::chat::{ChatMessage, ToolCall, ToolChoice};

pub(crate) struct OllamaBackend {
    remote: Remote,
}

impl OllamaBackend {
    pub fn new(remote: Remote) -> Self {
        Self { remote }
    }
}

/// The request body for a streamed chat.
pub(crate) fn body(model: &str, request: &ChatRequest) -> Value {
    let s = &request.sampling;
    let mut options = serde_json::Map::new();
    if let Some(v) = s.temperature {
        options.insert("temperature".into(), v.into());
    }
    if let Some(v) = s.top_p {
        options.insert("top_p".into(), v.into());
    }
    if let Some(v) = s.top_k {
        options.insert("top_k".into(), v.into());
    }
    if let Some(v) = s.seed {
        options.insert("seed".into(), v.into());
    }
    if let Some(v) = s.max_tokens {
        options.insert("num_predict".into(), v.into());
    }
    if let Some(v) = http::stop_value(&s.stop) {
        options.insert("stop".into(), v);
    }
    let messages: Vec<Value> = request.messages.iter().map(wire_message).collect();
    let mut b = json!({
        "model": model,
        "messages": messages,
        "stream": true,
        "options": options,
    });
    // Ollama has no tool_choice: "none" offers no tools, the others offer them all.
    if !s.tools.is_empty() && s.tool_choice != Some(ToolChoice::None) {
        if let Some(o) = b.as_object_mut() {
            o.insert("tools".into(), super::openai::wire_tools(&s.tools));
        }
    }
    // Ollama 0.12.11 and later; older servers ignore these keys.
    if let (Some(n), Some(o)) = (s.logprobs, b.as_object_mut()) {
        o.insert("logprobs".into(), true.into());
        if n > 0 {
            o.insert("top_logprobs".into(), super::token_probs::top_n(n).into());
        }
    }
    b
}

/// A message as `/api/chat` takes it: calls with their arguments as objects, results under
/// the `tool` role.
fn wire_message(m: &ChatMessage) -> Value {
    if let Some(r) = &m.tool_result {
        return json!({"role": "tool", "content": m.content, "tool_name": r.name});
    }
    let mut v = json!({"role": m.role, "content": m.content});
    if !m.tool_calls.is_empty() {
        let calls: Vec<Value> = m
            .tool_calls
            .iter()
            .map(|c| {
                json!({"function": {"name": c.name, "arguments": c.parsed_args().unwrap_or_else(|_| json!({}))}})
            })
            .collect();
        v["tool_calls"] = calls.into();
    }
    v
}

impl Backend for OllamaBackend {
    fn start(&self, request: ChatRequest) -> StreamHandle {
        let (handle, sink) = StreamHandle::channel();
        let remote = self.remote.clone();
        tokio::spawn(async move {
            let call = Call {
                url: format!("{}/api/chat", remote.base_url),
                body: body(&remote.model, &request),
                auth_headers: remote
                    .api_key
                    .iter()
                    .map(|k| ("authorization", format!("Bearer {k}")))
                    .collect(),
                wire: Wire::Ndjson,
            };
            http::run(&remote, call, &mut OllamaParser::default(), &sink).await;
        });
        handle
    }

    fn identity(&self) -> ModelIdentity {
        self.remote.identity()
    }
}

/// `/api/chat` stream lines.
#[derive(Debug, Default)]
pub(crate) struct OllamaParser {
    /// Tool calls so far (Ollama sends each call whole, in a message line before the last).
    calls: Vec<ToolCall>,
}

impl WireParser for OllamaParser {
    fn on_payload(&mut self, _event: Option<&str>, line: &str, out: &mut Vec<Step>) {
        let v: Value = match serde_json::from_str(line.trim()) {
            Ok(v) => v,
            Err(_) => {
                out.push(Step::Fail(format!(
                    "the server did not answer with NDJSON: {}",
                    http::error_message(line)
                )));
                return;
            }
        };
        if v.get("error").is_some_and(|e| !e.is_null()) {
            let msg = http::json_error_text(&v).unwrap_or_default();
            out.push(Step::Fail(format!(
                "the server reported an error mid-stream: {msg}"
            )));
            return;
        }
        if let Some(text) = v
            .get("message")
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            out.push(Step::Emit(StreamEvent::Delta(text.into())));
        }
        if let Some(calls) = v
            .get("message")
            .and_then(|m| m.get("tool_calls"))
            .and_then(Value::as_array)
        {
            for c in calls {
                let f = c.get("function");
                let n = self.calls.len();
                self.calls.push(ToolCall {
                    id: c
                        .get("id")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("call_{n}")),
                    name: f
                        .and_then(|f| f.get("name"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    arguments: match f.and_then(|f| f.get("arguments")) {
                        Some(Value::String(s)) => s.clone(),
                        Some(v) => v.to_string(),
                        None => String::new(),
                    },
                });
            }
        }
        let probs = super::token_probs::parse_entries(v.get("logprobs"));
        if !probs.is_empty() {
            out.push(Step::Emit(StreamEvent::Logprobs(probs)));
        }
        if v.get("done").and_then(Value::as_bool) == Some(true) {
            let n = |k: &str| v.get(k).and_then(Value::as_u64);
            tracing::debug!(
                total_ns = n("total_duration"),
                load_ns = n("load_duration"),
                prompt_eval_ns = n("prompt_eval_duration"),
                eval_ns = n("eval_duration"),
                "ollama reported durations"
            );
            out.push(Step::Emit(StreamEvent::Usage(Usage {
                prompt_tokens: n("prompt_eval_count"),
                completion_tokens: n("eval_count"),
                estimated: false,
            })));
            let mut reason = v
                .get("done_reason")
                .and_then(Value::as_str)
                .map(FinishReason::from_wire)
                .unwrap_or(FinishReason::Stop);
            let calls = std::mem::take(&mut self.calls);
            if !calls.is_empty() && reason == FinishReason::Stop {
                reason = FinishReason::ToolCalls;
            }
            for c in calls {
                out.push(Step::Emit(StreamEvent::ToolCall(c)));
            }
            out.push(Step::Finish(reason));
        }
    }

    fn on_eof(&self) -> String {
        "the stream ended before its final line (\"done\": true); the answer is incomplete".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{Role, Sampling};

    #[test]
    fn tool_calls_arrive_whole_and_results_go_back_under_the_tool_role() {
        let mut p = OllamaParser::default();
        let mut out = Vec::new();
        p.on_payload(
            None,
            r#"{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_current_weather","arguments":{"location":"Boston"}}}]},"done":false}"#,
            &mut out,
        );
        p.on_payload(
            None,
            r#"{"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop"}"#,
            &mut out,
        );
        let call = ToolCall {
            id: "call_0".into(),
            name: "get_current_weather".into(),
            arguments: r#"{"location":"Boston"}"#.into(),
        };
        assert_eq!(out[1], Step::Emit(StreamEvent::ToolCall(call.clone())));
        assert_eq!(out[2], Step::Finish(FinishReason::ToolCalls));
        let r = ChatRequest {
            messages: vec![
                ChatMessage::new(Role::User, "weather?"),
                ChatMessage::assistant_calls("", vec![call.clone()]),
                ChatMessage::tool_result(&call, "72"),
            ],
            sampling: Sampling {
                tools: vec![crate::chat::ToolSpec {
                    name: "get_current_weather".into(),
                    description: "d".into(),
                    parameters: json!({"type": "object"}),
                }],
                logprobs: Some(2),
                ..Default::default()
            },
        };
        let b = body("llama3.2", &r);
        assert_eq!(
            b["messages"],
            json!([
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_current_weather", "arguments": {"location": "Boston"}}}]},
                {"role": "tool", "content": "72", "tool_name": "get_current_weather"},
            ])
        );
        assert_eq!(b["tools"][0]["function"]["name"], "get_current_weather");
        // Tools and token probabilities in one request.
        assert_eq!(
            (b["logprobs"].clone(), b["top_logprobs"].clone()),
            (json!(true), json!(2))
        );
    }

    #[test]
    fn options_carry_the_sampling_parameters() {
        let r = ChatRequest {
            messages: vec![ChatMessage::new(Role::User, "hi")],
            sampling: Sampling {
                temperature: Some(0.2),
                top_p: Some(0.8),
                top_k: Some(20),
                max_tokens: Some(32),
                stop: vec!["x".into()],
                seed: Some(5),
                ..Default::default()
            },
        };
        assert_eq!(
            body("llama3", &r),
            json!({
                "model": "llama3", "stream": true,
                "messages": [{"role": "user", "content": "hi"}],
                "options": {"temperature": 0.2, "top_p": 0.8, "top_k": 20, "seed": 5, "num_predict": 32, "stop": ["x"]},
            })
        );
    }

    #[test]
    fn token_probabilities_when_asked() {
        let r = ChatRequest {
            messages: vec![],
            sampling: Sampling {
                logprobs: Some(3),
                ..Default::default()
            },
        };
        let b = body("m", &r);
        assert_eq!(
            (b["logprobs"].clone(), b["top_logprobs"].clone()),
            (json!(true), json!(3))
        );
        let mut out = Vec::new();
        OllamaParser::default().on_payload(
            None,
            r#"{"message":{"role":"assistant","content":"Hi"},"logprobs":[{"token":"Hi","logprob":-0.1,"top_logprobs":[{"token":"Hi","logprob":-0.1},{"token":"Yo","logprob":-3.0}]}],"done":false}"#,
            &mut out,
        );
        assert!(
            matches!(&out[1], Step::Emit(StreamEvent::Logprobs(t)) if t[0].top[1].0 == "Yo"),
            "{out:?}"
        );
    }

    #[test]
    fn lines_and_final_counts() {
        let mut p = OllamaParser::default();
        let mut out = Vec::new();
        p.on_payload(
            None,
            r#"{"message":{"role":"assistant","content":"London"},"done":false}"#,
            &mut out,
        );
        p.on_payload(None, r#"{"message":{"role":"assistant","content":""},"done":true,"done_reason":"length","prompt_eval_count":7,"eval_count":3,"eval_duration":1000}"#, &mut out);
        assert_eq!(
            out,
            [
                Step::Emit(StreamEvent::Delta("London".into())),
                Step::Emit(StreamEvent::Usage(Usage {
                    prompt_tokens: Some(7),
                    completion_tokens: Some(3),
                    estimated: false,
                })),
                Step::Finish(FinishReason::Length),
            ]
        );
    }
}
