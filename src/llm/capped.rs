//! A per-answer size cap around any backend: a server that streams forever, or a local model
//! that never stops, ends at `max_answer_bytes` with [`FinishReason::MaxAnswerBytes`] instead
//! of growing an answer (and the memory holding it) without bound.
//!
//! Every backend the registry builds is wrapped, so the playground, `run` and the techniques
//! all get the same cap.

use std::sync::Arc;

use super::{
    Backend, BackendStatus, ChatRequest, FinishReason, ModelIdentity, StreamEvent, StreamHandle,
};

/// The default cap: 1 MiB of answer text, far beyond any answer worth reading in a pane.
pub(crate) const DEFAULT_MAX_ANSWER_BYTES: usize = 1 << 20;

/// `inner`, with every answer cut at `cap` bytes.
pub(crate) struct CappedBackend {
    inner: Arc<dyn Backend>,
    cap: usize,
}

impl CappedBackend {
    pub fn new(inner: Arc<dyn Backend>, cap: usize) -> CappedBackend {
        CappedBackend {
            inner,
            cap: cap.max(1),
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn prefix(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Backend for CappedBackend {
    fn start(&self, request: ChatRequest) -> StreamHandle {
        let mut inner = self.inner.start(request);
        let (handle, sink) = StreamHandle::channel();
        let cap = self.cap;
        tokio::spawn(async move {
            let mut total = 0usize;
            let mut cancelled = false;
            loop {
                let ev = if cancelled {
                    inner.events.recv().await
                } else {
                    tokio::select! {
                        _ = sink.cancelled() => {
                            // Pass the cancel on and forward the inner stream's last word.
                            inner.cancel();
                            cancelled = true;
                            continue;
                        }
                        ev = inner.events.recv() => ev,
                    }
                };
                let Some(ev) = ev else {
                    // The inner backend vanished without a terminal event: say so.
                    sink.finish(StreamEvent::Failed(
                        "the backend ended the stream without finishing".into(),
                    ));
                    return;
                };
                match ev {
                    StreamEvent::Delta(text) if total + text.len() > cap => {
                        let keep = prefix(&text, cap - total);
                        if !keep.is_empty() {
                            sink.send(StreamEvent::Delta(keep.to_string()));
                        }
                        inner.cancel();
                        sink.finish(StreamEvent::Notice(format!(
                            "answer cut at max_answer_bytes = {cap}"
                        )));
                        sink.finish(StreamEvent::Finished(FinishReason::MaxAnswerBytes));
                        return;
                    }
                    StreamEvent::Delta(text) => {
                        total += text.len();
                        if !sink.send(StreamEvent::Delta(text)) && !cancelled {
                            inner.cancel();
                            cancelled = true;
                        }
                    }
                    ev if ev.is_terminal() => {
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

    fn req() -> ChatRequest {
        ChatRequest {
            messages: vec![ChatMessage::new(Role::User, "hi")],
            sampling: Sampling::default(),
        }
    }

    async fn collect(mut h: StreamHandle) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        while let Some(ev) = h.events.recv().await {
            let end = ev.is_terminal();
            out.push(ev);
            if end {
                break;
            }
        }
        out
    }

    fn text(evs: &[StreamEvent]) -> String {
        evs.iter()
            .filter_map(|e| match e {
                StreamEvent::Delta(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    fn scripted(reply: &str, repeat: usize) -> Arc<dyn Backend> {
        Arc::new(ScriptedBackend::new(Script {
            reply: reply.into(),
            repeat,
            ..Default::default()
        }))
    }

    #[tokio::test]
    async fn a_long_answer_stops_at_the_cap_on_a_character_boundary() {
        let b = CappedBackend::new(scripted("héllo wörld ", 10_000), 1001);
        let evs = collect(b.start(req())).await;
        let t = text(&evs);
        assert!(t.len() <= 1001 && t.len() > 990, "{}", t.len());
        assert_eq!(
            evs.last(),
            Some(&StreamEvent::Finished(FinishReason::MaxAnswerBytes))
        );
        assert!(evs
            .iter()
            .any(|e| matches!(e, StreamEvent::Notice(n) if n.contains("max_answer_bytes = 1001"))));
    }

    #[tokio::test]
    async fn a_short_answer_passes_through_unchanged() {
        let b = CappedBackend::new(scripted("short answer", 1), 1000);
        let evs = collect(b.start(req())).await;
        assert_eq!(text(&evs), "short answer");
        assert!(matches!(
            evs.last(),
            Some(StreamEvent::Finished(r)) if *r != FinishReason::MaxAnswerBytes
        ));
    }

    #[tokio::test]
    async fn cancelling_passes_through_and_ends_the_stream() {
        let s = Script {
            reply: "word ".into(),
            repeat: 100_000,
            delay: std::time::Duration::from_millis(1),
            ..Default::default()
        };
        let b = CappedBackend::new(Arc::new(ScriptedBackend::new(s)), usize::MAX);
        let h = b.start(req());
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        h.cancel();
        let evs = tokio::time::timeout(std::time::Duration::from_secs(5), collect(h))
            .await
            .unwrap();
        assert_eq!(
            evs.last(),
            Some(&StreamEvent::Finished(FinishReason::Cancelled))
        );
    }
}
