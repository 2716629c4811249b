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
    let mut b = json!({
        "model": model,
        "messages": request.messages,
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
}

impl WireParser for OpenAiParser {
    fn on_payload(&mut self, _event: Option<&str>, data: &str, out: &mut Vec<Step>) {
        let data = data.trim();
        if data.is_empty() {
            return;
        }
        if data == "[DONE]" {
            out.push(Step::Finish(self.finish.unwrap_or(FinishReason::Stop)));
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
            if let Some(r) = c.get("finish_reason").and_then(Value::as_str) {
                self.finish = Some(FinishReason::from_wire(r));
            }
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            out.push(Step::Emit(StreamEvent::Usage(Usage {
                prompt_tokens: u.get("prompt_tokens").and_then(Value::as_u64),
                completion_tokens: u.get("completion_tokens").and_then(Value::as_u64),
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
                logprobs: None,
                samples: None,
                stop_on: None,
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
                completion_tokens: Some(2)
            }))]
        );
        assert_eq!(feed(&mut p, r#"{"choices":null,"usage":null}"#), []);
        assert_eq!(feed(&mut p, "[DONE]"), [Step::Finish(FinishReason::Length)]);
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
