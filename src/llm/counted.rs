//! Token counts for a server that sends none: many OpenAI-compatible servers stream no usage
//! (or only when asked in a way they ignore), and without counts an answer's cost and rate
//! are guesses from its length. A model configured with `tokenizer = "…"` (a GGUF file of the
//! same model, or a `tokenizer.json`) is wrapped here: when its stream ends without a count,
//! the answer's text and the request's messages are counted with that tokenizer and sent as
//! an estimated [`Usage`] just before the end, so the node records them as
//! `tokens = "tokenizer"` (estimated), not as reported.
//!
//! The prompt count is the messages' text only: the server's chat template adds a few tokens
//! per message that are not counted.

use std::sync::Arc;

use super::{Backend, BackendStatus, ChatRequest, ModelIdentity, StreamEvent, StreamHandle, Usage};

/// Counts the tokens of a text with a model's tokenizer.
pub(crate) trait TokenCount: Send + Sync {
    fn count(&self, text: &str) -> Result<u64, String>;
}

#[cfg(feature = "local")]
impl TokenCount for mistralrs_core::promptloom::TokenCounter {
    fn count(&self, text: &str) -> Result<u64, String> {
        mistralrs_core::promptloom::TokenCounter::count(self, text)
            .map(|n| n as u64)
            .map_err(|e| e.to_string())
    }
}

/// The tokenizer in `path` (a `.gguf` file's, else a `tokenizer.json`).
#[cfg(feature = "local")]
pub(crate) fn load_tokenizer(path: &std::path::Path) -> Result<Arc<dyn TokenCount>, String> {
    mistralrs_core::promptloom::TokenCounter::from_file(path)
        .map(|t| Arc::new(t) as Arc<dyn TokenCount>)
        .map_err(|e| format!("cannot read a tokenizer from {}: {e}", path.display()))
}

#[cfg(not(feature = "local"))]
pub(crate) fn load_tokenizer(path: &std::path::Path) -> Result<Arc<dyn TokenCount>, String> {
    Err(format!(
        "{}: reading a tokenizer needs the `local` feature; rebuild with default features",
        path.display()
    ))
}

/// `inner`, with the counts it leaves out counted by `tokenizer`.
pub(crate) struct CountingBackend {
    inner: Arc<dyn Backend>,
    tokenizer: Arc<dyn TokenCount>,
}

impl CountingBackend {
    pub fn new(inner: Arc<dyn Backend>, tokenizer: Arc<dyn TokenCount>) -> CountingBackend {
        CountingBackend { inner, tokenizer }
    }
}

/// The counts `reported` lacks, counted with `tokenizer` (None when nothing is missing or
/// the tokenizer failed: the node then falls back to the text's length).
fn estimate(
    tokenizer: &dyn TokenCount,
    request: &ChatRequest,
    answer: &str,
    reported: Usage,
) -> Option<Usage> {
    let prompt = match reported.prompt_tokens {
        Some(_) => None,
        None => {
            let mut n = 0;
            for m in &request.messages {
                n += tokenizer.count(&m.content).ok()?;
            }
            Some(n)
        }
    };
    let completion = match reported.completion_tokens {
        Some(_) => None,
        None => Some(tokenizer.count(answer).ok()?),
    };
    (prompt.is_some() || completion.is_some()).then_some(Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        estimated: true,
    })
}

impl Backend for CountingBackend {
    fn start(&self, request: ChatRequest) -> StreamHandle {
        let mut inner = self.inner.start(request.clone());
        let (handle, sink) = StreamHandle::channel();
        let tokenizer = self.tokenizer.clone();
        tokio::spawn(async move {
            let mut answer = String::new();
            let mut reported = Usage::default();
            let mut cancelled = false;
            loop {
                let ev = if cancelled {
                    inner.events.recv().await
                } else {
                    tokio::select! {
                        _ = sink.cancelled() => {
                            inner.cancel();
                            cancelled = true;
                            continue;
                        }
                        ev = inner.events.recv() => ev,
                    }
                };
                let Some(ev) = ev else {
                    sink.finish(StreamEvent::Failed(
                        "the backend ended the stream without finishing".into(),
                    ));
                    return;
                };
                match ev {
                    StreamEvent::Delta(text) => {
                        answer.push_str(&text);
                        sink.send(StreamEvent::Delta(text));
                    }
                    StreamEvent::Usage(u) => {
                        reported.prompt_tokens = reported.prompt_tokens.or(u.prompt_tokens);
                        reported.completion_tokens =
                            reported.completion_tokens.or(u.completion_tokens);
                        sink.send(StreamEvent::Usage(u));
                    }
                    ev if ev.is_terminal() => {
                        let (t, r) = (tokenizer.clone(), request.clone());
                        // A long answer takes a while to tokenize: off the async threads.
                        let counted = tokio::task::spawn_blocking(move || {
                            estimate(&*t, &r, &answer, reported)
                        })
                        .await
                        .ok()
                        .flatten();
                        if let Some(u) = counted {
                            sink.send(StreamEvent::Usage(u));
                        }
                        sink.finish(ev);
                        return;
                    }
                    ev => {
                        sink.send(ev);
                    }
                }
            }
        });
        handle
    }

    fn identity(&self) -> ModelIdentity {
        self.inner.identity()
    }

    fn status(&self) -> BackendStatus {
        self.inner.status()
    }

    fn preload(&self) {
        self.inner.preload()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::scripted::{Script, ScriptedBackend};
    use crate::llm::{ChatMessage, Role, Sampling};
    use crate::state::session::{Node, NodeKind};
    use crate::state::timing::StreamMeter;
    use std::time::Duration;

    /// One token per whitespace-separated word.
    struct Words;
    impl TokenCount for Words {
        fn count(&self, text: &str) -> Result<u64, String> {
            Ok(text.split_whitespace().count() as u64)
        }
    }

    fn req() -> ChatRequest {
        ChatRequest {
            messages: vec![
                ChatMessage::new(Role::System, "be brief"),
                ChatMessage::new(Role::User, "what is the capital of France"),
            ],
            sampling: Sampling::default(),
        }
    }

    /// A backend that streams `words` and then `usage` (if any), then finishes.
    struct Fake {
        usage: Option<Usage>,
    }
    impl Backend for Fake {
        fn start(&self, _request: ChatRequest) -> StreamHandle {
            let (handle, sink) = StreamHandle::channel();
            let usage = self.usage;
            tokio::spawn(async move {
                for w in ["The ", "capital ", "is ", "Paris."] {
                    sink.send(StreamEvent::Delta(w.into()));
                }
                if let Some(u) = usage {
                    sink.send(StreamEvent::Usage(u));
                }
                sink.finish(StreamEvent::Finished(crate::llm::FinishReason::Stop));
            });
            handle
        }
        fn identity(&self) -> ModelIdentity {
            ModelIdentity::default()
        }
    }

    /// The node a stream makes, as every driver records it (meter, then `apply_stats`).
    async fn node_of(b: &dyn Backend) -> (Node, Vec<StreamEvent>) {
        let mut h = b.start(req());
        let mut meter = StreamMeter::default();
        let mut events = Vec::new();
        while let Some(ev) = h.events.recv().await {
            match &ev {
                StreamEvent::Delta(t) => meter.on_delta(Duration::from_millis(10), t),
                StreamEvent::Usage(u) => meter.on_usage(*u),
                _ => {}
            }
            let end = ev.is_terminal();
            events.push(ev);
            if end {
                break;
            }
        }
        let mut n = Node::start(1, None, NodeKind::Answer, "v", "c", "m", req(), "t".into());
        n.apply_stats(&meter.stats());
        (n, events)
    }

    #[tokio::test]
    async fn a_stream_without_usage_is_counted_with_the_tokenizer_and_marked_estimated() {
        let inner: Arc<dyn Backend> = Arc::new(Fake { usage: None });
        let b = CountingBackend::new(inner.clone(), Arc::new(Words));
        let (n, events) = node_of(&b).await;
        // 2 + 6 words of prompt, 4 of answer.
        assert_eq!((n.prompt_tokens, n.tokens_out), (Some(8), 4));
        assert_eq!(n.tokens_estimate(), Some("tokenizer"));
        assert!(n.tokens_approx());
        // The estimate comes just before the end.
        assert!(matches!(
            events[events.len() - 2],
            StreamEvent::Usage(Usage {
                estimated: true,
                ..
            })
        ));
        // Unwrapped, the same stream falls back to the text's length.
        let (plain, _) = node_of(&*inner).await;
        assert_eq!(plain.tokens_estimate(), Some("approx"));
    }

    #[tokio::test]
    async fn reported_counts_are_kept_and_only_missing_ones_are_counted() {
        let full = Usage {
            prompt_tokens: Some(30),
            completion_tokens: Some(5),
            estimated: false,
        };
        let b = CountingBackend::new(Arc::new(Fake { usage: Some(full) }), Arc::new(Words));
        let (n, events) = node_of(&b).await;
        assert_eq!((n.prompt_tokens, n.tokens_out), (Some(30), 5));
        assert_eq!(n.tokens_estimate(), None);
        assert!(!events.iter().any(|e| matches!(
            e,
            StreamEvent::Usage(Usage {
                estimated: true,
                ..
            })
        )));

        // Only the prompt reported (Anthropic's first event, a server's partial usage).
        let half = Usage {
            prompt_tokens: Some(30),
            completion_tokens: None,
            estimated: false,
        };
        let b = CountingBackend::new(Arc::new(Fake { usage: Some(half) }), Arc::new(Words));
        let (n, _) = node_of(&b).await;
        assert_eq!((n.prompt_tokens, n.tokens_out), (Some(30), 4));
        assert_eq!(n.tokens_estimate(), Some("tokenizer"));
    }

    #[tokio::test]
    async fn a_scripted_backend_passes_through_unchanged() {
        // The scripted backend reports its counts: nothing is estimated.
        let inner = Arc::new(ScriptedBackend::new(Script {
            reply: "one two three".into(),
            repeat: 1,
            ..Script::default()
        }));
        let b = CountingBackend::new(inner, Arc::new(Words));
        let (n, _) = node_of(&b).await;
        assert_eq!(n.tokens_estimate(), None);
        assert!(n.tokens_out > 0);
    }
}
