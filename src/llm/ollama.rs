//! `backend = "ollama"`: Ollama's native chat API, streamed as newline-delimited JSON.
//!
//! The native API (rather than Ollama's OpenAI-compatible `/v1`) takes `top_k` and
//! `num_predict` in `options` and reports exact prompt and answer token counts and durations
//! on its final line.

use serde_json::{json, Value};

use super::http::{self, Call, Remote, Step, Wire, WireParser};
use super::{Backend, ChatRequest, FinishReason, ModelIdentity, StreamEvent, StreamHandle, Usage};

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
    let mut b = json!({
        "model": model,
        "messages": request.messages,
        "stream": true,
        "options": options,
    });
    // Ollama 0.12.11 and later; older servers ignore these keys.
    if let (Some(n), Some(o)) = (s.logprobs, b.as_object_mut()) {
        o.insert("logprobs".into(), true.into());
        if n > 0 {
            o.insert("top_logprobs".into(), super::token_probs::top_n(n).into());
        }
    }
    b
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
            http::run(&remote, call, &mut OllamaParser, &sink).await;
        });
        handle
    }

    fn identity(&self) -> ModelIdentity {
        self.remote.identity()
    }
}

/// `/api/chat` stream lines.
#[derive(Debug, Default)]
pub(crate) struct OllamaParser;

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
            })));
            let reason = v
                .get("done_reason")
                .and_then(Value::as_str)
                .map(FinishReason::from_wire)
                .unwrap_or(FinishReason::Stop);
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
    use crate::llm::{ChatMessage, Role, Sampling};

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
                logprobs: None,
                samples: None,
                stop_on: None,
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
        OllamaParser.on_payload(
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
        let mut p = OllamaParser;
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
                    completion_tokens: Some(3)
                })),
                Step::Finish(FinishReason::Length),
            ]
        );
    }
}
