//! `backend = "openai"`: any OpenAI-compatible chat completions server (OpenAI, vLLM,
//! llama.cpp's llama-server, Ollama's `/v1`, LM Studio, mistral.rs's server, OpenRouter, Groq),
//! streamed as server-sent events.
//!
//! Servers differ in the details, so the parser is lenient where the spec allows it: `choices`
//! may be empty or null (the usage chunk), `delta.content` may be null or missing,
//! `finish_reason` arrives in its own chunk or with the last text, an `{"error": …}` object
//! or plain text may replace a chunk mid-stream.

use serde_json::{json, Value};

use super::http::{self, Call, Remote, Step, Wire, WireParser};
use super::{Backend, ChatRequest, FinishReason, ModelIdentity, StreamEvent, StreamHandle, Usage};
use crate::chat::{ChatMessage, Role, ToolCall, ToolChoice, ToolSpec};

/// The longest arguments one tool call may stream (a model that never closes its JSON would
/// otherwise grow them until memory runs out).
pub(crate) const MAX_TOOL_ARGUMENT_BYTES: usize = 1 << 20;

/// A message in the chat completions format: tool calls on assistant turns, `tool` messages
/// for results.
pub(crate) fn wire_message(m: &ChatMessage) -> Value {
    if let Some(r) = &m.tool_result {
        return json!({ "role": "tool", "tool_call_id": r.call_id, "content": m.content });
    }
    let role = match m.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    if m.tool_calls.is_empty() {
        return json!({ "role": role, "content": m.content });
    }
    let calls: Vec<Value> = m
        .tool_calls
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "type": "function",
                "function": { "name": c.name, "arguments": c.arguments },
            })
        })
        .collect();
    json!({
        "role": role,
        "content": if m.content.is_empty() { Value::Null } else { Value::String(m.content.clone()) },
        "tool_calls": calls,
    })
}

/// `tools` in the chat completions format.
pub(crate) fn wire_tools(tools: &[ToolSpec]) -> Value {
    tools
        .iter()
        .map(|t| {
            json!({
                "type": "function",
                "function": { "name": t.name, "description": t.description, "parameters": t.parameters },
            })
        })
        .collect()
}

/// `tool_choice` in the chat completions format.
pub(crate) fn wire_tool_choice(c: &ToolChoice) -> Value {
    match c {
        ToolChoice::Tool(name) => json!({ "type": "function", "function": { "name": name } }),
        other => Value::String(other.as_str().to_string()),
    }
}

pub(crate) struct OpenAiBackend {
    remote: Remote,
}

impl OpenAiBackend {
    pub fn new(remote: Remote) -> Self {
        Self { remote }
    }
}

/// The request body for a streamed chat completion.
pub(crate) fn body(model: &str, request: &ChatRequest) -> Value {
    let s = &request.sampling;
    let messages: Vec<Value> = request.messages.iter().map(wire_message).collect();
    let mut b = json!({
        "model": model,
        "messages": messages,
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    let o = b.as_object_mut().expect("a JSON object literal");
    if let Some(v) = s.max_tokens {
        o.insert("max_tokens".into(), v.into());
    }
    if let Some(v) = s.temperature {
        o.insert("temperature".into(), v.into());
    }
    if let Some(v) = s.top_p {
        o.insert("top_p".into(), v.into());
    }
    if let Some(v) = http::stop_value(&s.stop) {
        o.insert("stop".into(), v);
    }
    if let Some(v) = s.seed {
        o.insert("seed".into(), v.into());
    }
    if !s.tools.is_empty() {
        o.insert("tools".into(), wire_tools(&s.tools));
        if let Some(c) = &s.tool_choice {
            o.insert("tool_choice".into(), wire_tool_choice(c));
        }
    }
    if let Some(n) = s.logprobs {
        o.insert("logprobs".into(), true.into());
        if n > 0 {
            o.insert("top_logprobs".into(), super::token_probs::top_n(n).into());
        }
    }
    b
}

impl Backend for OpenAiBackend {
    fn start(&self, request: ChatRequest) -> StreamHandle {
        let (handle, sink) = StreamHandle::channel();
        let remote = self.remote.clone();
        tokio::spawn(async move {
            let call = Call {
                url: format!("{}/chat/completions", remote.base_url),
                body: body(&remote.model, &request),
                auth_headers: remote
                    .api_key
                    .iter()
                    .map(|k| ("authorization", format!("Bearer {k}")))
                    .collect(),
                wire: Wire::Sse,
            };
            http::run(&remote, call, &mut OpenAiParser::default(), &sink).await;
        });
        handle
    }

    fn identity(&self) -> ModelIdentity {
        self.remote.identity()
    }
}

/// Chat completion chunks.
#[derive(Debug, Default)]
pub(crate) struct OpenAiParser {
    finish: Option<FinishReason>,
    /// Tool calls being streamed, by their `index`.
    calls: std::collections::BTreeMap<u64, ToolCall>,
    call_bytes: usize,
}

impl OpenAiParser {
    /// Fold one `delta.tool_calls` array in: the first fragment of a call brings its id and
    /// name, later ones more of its arguments. Servers that omit `index` send each call whole,
    /// in order: such a call gets the key after the last one (`calls.len()` when no call had
    /// an index), so it never lands on a call already streamed.
    fn on_tool_calls(&mut self, deltas: &[Value], out: &mut Vec<Step>) {
        for d in deltas {
            let index = d
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or_else(|| self.calls.keys().next_back().map_or(0, |last| last + 1));
            let f = d.get("function");
            let entry = self.calls.entry(index).or_insert_with(|| ToolCall {
                id: String::new(),
                name: String::new(),
                arguments: String::new(),
            });
            if let Some(id) = d
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                entry.id = id.to_string();
            }
            if let Some(n) = f.and_then(|f| f.get("name")).and_then(Value::as_str) {
                entry.name.push_str(n);
            }
            match f.and_then(|f| f.get("arguments")) {
                Some(Value::String(a)) => {
                    self.call_bytes += a.len();
                    entry.arguments.push_str(a);
                }
                // Some servers send the arguments as an object instead of its JSON text.
                Some(v @ Value::Object(_)) => {
                    let t = v.to_string();
                    self.call_bytes += t.len();
                    entry.arguments.push_str(&t);
                }
                _ => {}
            }
            if self.call_bytes > MAX_TOOL_ARGUMENT_BYTES {
                out.push(Step::Fail(format!(
                    "the model's tool call arguments passed {} MiB; stopped",
                    MAX_TOOL_ARGUMENT_BYTES >> 20
                )));
                return;
            }
        }
    }

    /// The stream is over: deliver the calls, then finish.
    fn finish(&mut self, out: &mut Vec<Step>) {
        let calls = std::mem::take(&mut self.calls);
        let any = !calls.is_empty();
        for (i, mut c) in calls {
            if c.id.is_empty() {
                c.id = format!("call_{i}");
            }
            out.push(Step::Emit(StreamEvent::ToolCall(c)));
        }
        let reason = match self.finish {
            // Some servers say "stop" after a turn of calls.
            Some(FinishReason::Stop) | None if any => FinishReason::ToolCalls,
            Some(r) => r,
            None => FinishReason::Stop,
        };
        out.push(Step::Finish(reason));
    }
}

impl WireParser for OpenAiParser {
    fn on_payload(&mut self, _event: Option<&str>, data: &str, out: &mut Vec<Step>) {
        let data = data.trim();
        if data.is_empty() {
            return;
        }
        if data == "[DONE]" {
            self.finish(out);
            return;
        }
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) => {
                out.push(Step::Fail(http::not_json(data)));
                return;
            }
        };
        if v.get("error").is_some_and(|e| !e.is_null()) {
            let msg = http::json_error_text(&v).unwrap_or_else(|| data.to_string());
            out.push(Step::Fail(format!(
                "the server reported an error mid-stream: {msg}"
            )));
            return;
        }
        let choices = v.get("choices").and_then(Value::as_array);
        // Only the first choice is shown (we never ask for n > 1).
        if let Some(c) = choices.and_then(|c| {
            c.iter()
                .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        }) {
            if let Some(text) = c
                .get("delta")
                .and_then(|d| d.get("content"))
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                out.push(Step::Emit(StreamEvent::Delta(text.to_string())));
            }
            let probs =
                super::token_probs::parse_entries(c.get("logprobs").and_then(|l| l.get("content")));
            if !probs.is_empty() {
                out.push(Step::Emit(StreamEvent::Logprobs(probs)));
            }
            if let Some(calls) = c
                .get("delta")
                .and_then(|d| d.get("tool_calls"))
                .and_then(Value::as_array)
            {
                self.on_tool_calls(calls, out);
            }
            if let Some(r) = c.get("finish_reason").and_then(Value::as_str) {
                self.finish = Some(FinishReason::from_wire(r));
            }
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            out.push(Step::Emit(StreamEvent::Usage(Usage {
                prompt_tokens: u.get("prompt_tokens").and_then(Value::as_u64),
                completion_tokens: u.get("completion_tokens").and_then(Value::as_u64),
                estimated: false,
            })));
        }
    }

    fn on_eof(&self) -> String {
        match self.finish {
            Some(r) => format!(
                "the stream ended without [DONE] (after finish_reason {:?})",
                r.as_str()
            ),
            None => "the stream ended before [DONE]; the answer is incomplete".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{ChatMessage, Role, Sampling};

    fn feed(p: &mut OpenAiParser, data: &str) -> Vec<Step> {
        let mut out = Vec::new();
        p.on_payload(None, data, &mut out);
        out
    }

    #[test]
    fn body_sends_the_sampling_parameters() {
        let r = ChatRequest {
            messages: vec![
                ChatMessage::new(Role::System, "be brief"),
                ChatMessage::new(Role::User, "hi"),
            ],
            sampling: Sampling {
                temperature: Some(0.5),
                top_p: Some(0.9),
                top_k: Some(40),
                max_tokens: Some(16),
                stop: vec!["\n\n".into()],
                seed: Some(7),
                ..Default::default()
            },
        };
        let b = body("m", &r);
        assert_eq!(
            b,
            json!({
                "model": "m",
                "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
                "stream": true,
                "stream_options": {"include_usage": true},
                "max_tokens": 16, "temperature": 0.5, "top_p": 0.9, "stop": ["\n\n"], "seed": 7,
            })
        );
        let plain = body(
            "m",
            &ChatRequest {
                messages: vec![],
                sampling: Sampling::default(),
            },
        );
        assert!(plain.get("seed").is_none() && plain.get("stop").is_none());
    }

    #[test]
    fn chunks_with_null_or_missing_content_and_empty_choices() {
        let mut p = OpenAiParser::default();
        assert_eq!(
            feed(
                &mut p,
                r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}"#
            ),
            []
        );
        assert_eq!(feed(&mut p, r#"{"choices":[{"index":0,"delta":{}}]}"#), []);
        assert_eq!(
            feed(
                &mut p,
                r#"{"choices":[{"index":0,"delta":{"content":"Lon"}}]}"#
            ),
            [Step::Emit(StreamEvent::Delta("Lon".into()))]
        );
        assert_eq!(
            feed(
                &mut p,
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#
            ),
            []
        );
        assert_eq!(
            feed(
                &mut p,
                r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#
            ),
            [Step::Emit(StreamEvent::Usage(Usage {
                prompt_tokens: Some(5),
                completion_tokens: Some(2),
                estimated: false,
            }))]
        );
        assert_eq!(feed(&mut p, r#"{"choices":null,"usage":null}"#), []);
        assert_eq!(feed(&mut p, "[DONE]"), [Step::Finish(FinishReason::Length)]);
    }

    #[test]
    fn tool_calls_stream_in_fragments_and_arrive_whole_before_the_finish() {
        let mut p = OpenAiParser::default();
        let mut out = Vec::new();
        for chunk in [
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_current_weather","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"loc"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","function":{"name":"get_current_weather","arguments":"{\"location\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ation\": \"Boston\"}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":" \"Paris\"}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ] {
            p.on_payload(None, chunk, &mut out);
        }
        assert_eq!(
            out,
            [
                Step::Emit(StreamEvent::ToolCall(ToolCall {
                    id: "call_a".into(),
                    name: "get_current_weather".into(),
                    arguments: r#"{"location": "Boston"}"#.into()
                })),
                Step::Emit(StreamEvent::ToolCall(ToolCall {
                    id: "call_b".into(),
                    name: "get_current_weather".into(),
                    arguments: r#"{"location": "Paris"}"#.into()
                })),
                Step::Finish(FinishReason::ToolCalls),
            ]
        );
        // A server that sends whole calls without index or id, then says "stop".
        let mut p = OpenAiParser::default();
        let mut out = Vec::new();
        p.on_payload(
            None,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"name":"a","arguments":{"x":1}}},{"function":{"name":"b","arguments":"{}"}}]},"finish_reason":"stop"}]}"#,
            &mut out,
        );
        p.on_payload(None, "[DONE]", &mut out);
        let names: Vec<(String, String, String)> = out
            .iter()
            .filter_map(|s| match s {
                Step::Emit(StreamEvent::ToolCall(c)) => {
                    Some((c.id.clone(), c.name.clone(), c.arguments.clone()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            names,
            [
                ("call_0".into(), "a".into(), r#"{"x":1}"#.into()),
                ("call_1".into(), "b".into(), "{}".into())
            ]
        );
        assert_eq!(out.last(), Some(&Step::Finish(FinishReason::ToolCalls)));
    }

    #[test]
    fn endless_tool_arguments_fail_the_stream() {
        let mut p = OpenAiParser::default();
        let piece = "x".repeat(64 << 10);
        let chunk = json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments": piece}}]}}]}).to_string();
        let mut out = Vec::new();
        for _ in 0..20 {
            p.on_payload(None, &chunk, &mut out);
        }
        assert!(
            matches!(out.last(), Some(Step::Fail(m)) if m.contains("1 MiB")),
            "{out:?}"
        );
    }

    #[test]
    fn tools_calls_and_results_go_out_in_the_chat_completions_format() {
        let call = ToolCall {
            id: "call_1".into(),
            name: "get_current_weather".into(),
            arguments: r#"{"location":"Boston"}"#.into(),
        };
        let r = ChatRequest {
            messages: vec![
                ChatMessage::new(Role::User, "weather?"),
                ChatMessage::assistant_calls("", vec![call.clone()]),
                ChatMessage::tool_result(&call, "72"),
            ],
            sampling: Sampling {
                tools: vec![ToolSpec {
                    name: "get_current_weather".into(),
                    description: "d".into(),
                    parameters: json!({"type": "object"}),
                }],
                tool_choice: Some(ToolChoice::Tool("get_current_weather".into())),
                ..Default::default()
            },
        };
        let b = body("m", &r);
        assert_eq!(
            b["messages"],
            json!([
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_current_weather", "arguments": "{\"location\":\"Boston\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "72"},
            ])
        );
        assert_eq!(
            b["tools"],
            json!([{"type": "function", "function": {"name": "get_current_weather", "description": "d", "parameters": {"type": "object"}}}])
        );
        assert_eq!(
            b["tool_choice"],
            json!({"type": "function", "function": {"name": "get_current_weather"}})
        );
    }

    #[test]
    fn asks_for_and_reads_token_probabilities() {
        let mut r = ChatRequest {
            messages: vec![],
            sampling: Sampling {
                logprobs: Some(50),
                ..Default::default()
            },
        };
        let b = body("m", &r);
        assert_eq!(b["logprobs"], true);
        assert_eq!(b["top_logprobs"], 20);
        r.sampling.logprobs = Some(0);
        assert!(body("m", &r).get("top_logprobs").is_none());
        let mut p = OpenAiParser::default();
        let steps = feed(
            &mut p,
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":{"content":[{"token":"Hi","logprob":-0.5,"top_logprobs":[{"token":"Hi","logprob":-0.5},{"token":"Hey","logprob":-1.5}]}]}}]}"#,
        );
        assert_eq!(steps.len(), 2);
        match &steps[1] {
            Step::Emit(StreamEvent::Logprobs(t)) => {
                assert_eq!(t[0].text, "Hi");
                assert_eq!(t[0].top.len(), 2);
            }
            s => panic!("{s:?}"),
        }
        // `"logprobs": null` (logprobs off) is nothing.
        let steps = feed(
            &mut p,
            r#"{"choices":[{"index":0,"delta":{"content":"x"},"logprobs":null}]}"#,
        );
        assert_eq!(steps.len(), 1);
    }

    #[test]
    fn tools_and_token_probabilities_together() {
        let r = ChatRequest {
            messages: vec![ChatMessage::new(Role::User, "weather?")],
            sampling: Sampling {
                tools: vec![ToolSpec {
                    name: "get_current_weather".into(),
                    description: "d".into(),
                    parameters: json!({"type": "object"}),
                }],
                logprobs: Some(3),
                ..Default::default()
            },
        };
        let b = body("m", &r);
        assert_eq!(b["tools"][0]["function"]["name"], "get_current_weather");
        assert_eq!(b["logprobs"], true);
        assert_eq!(b["top_logprobs"], 3);
        // One chunk with text, its token probabilities and a tool call's first fragment.
        let mut p = OpenAiParser::default();
        let mut out = Vec::new();
        for chunk in [
            r#"{"choices":[{"index":0,"delta":{"content":"Ok","tool_calls":[{"index":0,"id":"call_a","function":{"name":"get_current_weather","arguments":"{\"location\":"}}]},"logprobs":{"content":[{"token":"Ok","logprob":-0.25,"top_logprobs":[]}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Boston\"}"}}]},"logprobs":null,"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ] {
            p.on_payload(None, chunk, &mut out);
        }
        assert_eq!(out.len(), 4, "{out:?}");
        assert_eq!(out[0], Step::Emit(StreamEvent::Delta("Ok".into())));
        match &out[1] {
            Step::Emit(StreamEvent::Logprobs(t)) => {
                assert_eq!(t.len(), 1);
                assert_eq!(t[0].text, "Ok");
            }
            s => panic!("{s:?}"),
        }
        assert_eq!(
            out[2],
            Step::Emit(StreamEvent::ToolCall(ToolCall {
                id: "call_a".into(),
                name: "get_current_weather".into(),
                arguments: r#"{"location":"Boston"}"#.into()
            }))
        );
        assert_eq!(out[3], Step::Finish(FinishReason::ToolCalls));
    }

    #[test]
    fn errors_mid_stream() {
        let mut p = OpenAiParser::default();
        assert_eq!(
            feed(
                &mut p,
                r#"{"error":{"message":"out of memory","type":"server_error"}}"#
            ),
            [Step::Fail(
                "the server reported an error mid-stream: server_error: out of memory".into()
            )]
        );
        assert_eq!(
            feed(&mut p, "Model failed with error: shape mismatch"),
            [Step::Fail("the server sent an error instead of a chunk: Model failed with error: shape mismatch".into())]
        );
    }
}
