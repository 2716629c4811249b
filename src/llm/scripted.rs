//! A deterministic fake model (`backend = "scripted"`): fixed replies in fixed chunks with
//! fixed delays and optional failures. For trying the UI without a model and for tests.

use std::time::Duration;

use super::{
    Backend, ChatRequest, EventSink, FinishReason, ModelIdentity, Role, StreamEvent, StreamHandle,
    TokenLogprob, Usage,
};
use crate::chat::ToolCall;
use crate::config::{ModelConfig, ScriptRule};

/// The scripted backend's behaviour.
#[derive(Debug, Clone, Default)]
pub(crate) struct Script {
    pub reply: String,
    pub rules: Vec<ScriptRule>,
    /// Picked by seed when no rule matches.
    pub replies: Vec<String>,
    pub first_token: Duration,
    pub delay: Duration,
    pub chunk_chars: Option<usize>,
    pub fail_after_chunks: Option<usize>,
    pub error: Option<String>,
    pub repeat: usize,
}

impl Script {
    pub fn from_config(m: &ModelConfig) -> Script {
        Script {
            reply: m
                .reply
                .clone()
                .unwrap_or_else(|| "You asked: {prompt}".into()),
            rules: m.rules.clone(),
            replies: m.replies.clone(),
            first_token: Duration::from_millis(m.first_token_ms.unwrap_or(0)),
            delay: Duration::from_millis(m.delay_ms.unwrap_or(0)),
            chunk_chars: m.chunk_chars.filter(|&n| n > 0),
            fail_after_chunks: m.fail_after_chunks,
            error: m.error.clone(),
            repeat: m.repeat.unwrap_or(1).max(1),
        }
    }

    /// The tool calls the matching rule makes, when the request offers tools.
    pub fn calls_for(&self, request: &ChatRequest) -> Vec<ToolCall> {
        if request.sampling.tools.is_empty() {
            return Vec::new();
        }
        let last_user = last_user(request);
        self.rules
            .iter()
            .find(|r| last_user.contains(&r.when))
            .map(|r| {
                r.tool_calls
                    .iter()
                    .enumerate()
                    .map(|(i, c)| ToolCall {
                        id: format!("call_{}_{i}", request.messages.len()),
                        name: c.name.clone(),
                        arguments: c.arguments.replace("{prompt}", last_user),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The token counts this backend reports for `reply` to `request`: one token per
    /// chunk of the reply, one per word of the messages sent.
    pub fn usage_of(&self, request: &ChatRequest, reply: &str) -> Usage {
        let prompt_tokens: usize = request
            .messages
            .iter()
            .map(|m| chunks(&m.content, None).len())
            .sum();
        Usage {
            prompt_tokens: Some(prompt_tokens as u64),
            completion_tokens: Some(chunks(reply, self.chunk_chars).len() as u64),
            estimated: false,
        }
    }

    /// The full reply to a request, and whether `max_tokens` cut it short.
    pub fn reply_to(&self, request: &ChatRequest) -> (String, bool) {
        let last_user = last_user(request);
        let system = request
            .messages
            .iter()
            .find(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .unwrap_or("");
        let template = self
            .rules
            .iter()
            .find(|r| last_user.contains(&r.when))
            .map(|r| r.reply.as_str())
            .or_else(|| {
                let seed = request.sampling.seed.unwrap_or(0);
                let n = self.replies.len() as u64;
                (n > 0).then(|| self.replies[(seed % n.max(1)) as usize].as_str())
            })
            .unwrap_or(&self.reply);
        let one = template
            .replace("{prompt}", last_user)
            .replace("{system}", system);
        let mut text = one.repeat(self.repeat);
        // A partial assistant message last (a branch from a token) is continued: what of the
        // reply comes after it, or a fresh reply when the branch left the script's words.
        if let Some(m) = request
            .messages
            .last()
            .filter(|m| m.role == Role::Assistant)
        {
            text = match text.strip_prefix(&m.content) {
                Some(rest) => rest.to_string(),
                None if m.content.ends_with(char::is_whitespace) => text,
                None => format!(" {text}"),
            };
        }
        if let Some(max) = request.sampling.max_tokens {
            // One "token" per word, so max_tokens behaves visibly.
            let words = chunks(&text, None);
            if words.len() > max {
                return (words[..max].concat(), true);
            }
        }
        (text, false)
    }
}

/// The text of the last message on the user's side (a tool result counts).
fn last_user(request: &ChatRequest) -> &str {
    request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.as_str())
        .unwrap_or("")
}

/// Split `text` into chunks: `n` characters each, or one word with its trailing whitespace.
pub(crate) fn chunks(text: &str, n: Option<usize>) -> Vec<String> {
    match n {
        Some(n) => {
            let chars: Vec<char> = text.chars().collect();
            chars.chunks(n).map(|c| c.iter().collect()).collect()
        }
        None => {
            let mut out = Vec::new();
            let mut cur = String::new();
            let mut in_space = false;
            for ch in text.chars() {
                if ch.is_whitespace() {
                    in_space = true;
                } else if in_space {
                    out.push(std::mem::take(&mut cur));
                    in_space = false;
                }
                cur.push(ch);
            }
            if !cur.is_empty() {
                out.push(cur);
            }
            out
        }
    }
}

/// The scripted backend.
pub(crate) struct ScriptedBackend {
    script: Script,
}

impl ScriptedBackend {
    pub fn new(script: Script) -> Self {
        Self { script }
    }
}

impl Backend for ScriptedBackend {
    fn start(&self, request: ChatRequest) -> StreamHandle {
        let (handle, sink) = StreamHandle::channel();
        let script = self.script.clone();
        tokio::spawn(async move { run(script, request, sink).await });
        handle
    }

    fn identity(&self) -> ModelIdentity {
        ModelIdentity {
            backend: "scripted".into(),
            ..Default::default()
        }
    }
}

/// A made-up but fixed probability for chunk `i` of `parts` (each chunk is one "token"), with
/// `top` alternatives taken from the other chunks: the same reply always gets the same
/// figures, some tokens confident and some not, so heat views and branching can be tested.
pub(crate) fn scripted_logprob(parts: &[String], i: usize, top: usize) -> TokenLogprob {
    let text = parts.get(i).cloned().unwrap_or_default();
    // FNV-1a over the text and position.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes().chain((i as u64).to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let p = 0.05 + 0.95 * ((h % 1000) as f64 / 999.0);
    let rest = 1.0 - p;
    let mut alts = vec![(text.clone(), p.ln() as f32)];
    for j in 1..super::token_probs::top_n(top) {
        let other = parts
            .get((i + j * 7) % parts.len().max(1))
            .filter(|o| **o != text)
            .cloned()
            .unwrap_or_else(|| format!("{}{j}", text.trim_end()));
        if alts.iter().any(|(t, _)| *t == other) {
            continue;
        }
        alts.push((other, (rest / f64::from(1u32 << j.min(30))).ln() as f32));
    }
    if top == 0 {
        alts.clear();
    }
    TokenLogprob::new(text, p.ln() as f32, alts)
}

async fn run(script: Script, request: ChatRequest, sink: EventSink) {
    let (text, stopped_by_length) = script.reply_to(&request);
    let calls = script.calls_for(&request);
    let parts = chunks(&text, script.chunk_chars);
    if !script.first_token.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep(script.first_token) => {}
            _ = sink.cancelled() => { sink.finish(StreamEvent::Finished(FinishReason::Cancelled)); return; }
        }
    }
    let usage = script.usage_of(&request, &text);
    for (i, part) in parts.iter().enumerate() {
        if script.fail_after_chunks == Some(i) {
            sink.finish(StreamEvent::Failed(
                script
                    .error
                    .clone()
                    .unwrap_or_else(|| "scripted failure".into()),
            ));
            return;
        }
        if i > 0 && !script.delay.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(script.delay) => {}
                _ = sink.cancelled() => { sink.finish(StreamEvent::Finished(FinishReason::Cancelled)); return; }
            }
        } else if i > 0 {
            tokio::task::yield_now().await;
        }
        if !sink.send(StreamEvent::Delta(part.clone())) {
            sink.finish(StreamEvent::Finished(FinishReason::Cancelled));
            return;
        }
        if let Some(n) = request.sampling.logprobs {
            sink.send(StreamEvent::Logprobs(vec![scripted_logprob(&parts, i, n)]));
        }
    }
    if script.fail_after_chunks.is_some_and(|n| n >= parts.len()) {
        sink.finish(StreamEvent::Failed(
            script.error.unwrap_or_else(|| "scripted failure".into()),
        ));
        return;
    }
    sink.send(StreamEvent::Usage(usage));
    let made_calls = !calls.is_empty();
    for c in calls {
        sink.send(StreamEvent::ToolCall(c));
    }
    sink.finish(StreamEvent::Finished(if made_calls {
        FinishReason::ToolCalls
    } else if stopped_by_length {
        FinishReason::Length
    } else {
        FinishReason::Stop
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{ChatMessage, Sampling};

    fn req(text: &str) -> ChatRequest {
        ChatRequest {
            messages: vec![ChatMessage::new(Role::User, text)],
            sampling: Sampling::default(),
        }
    }

    async fn collect(h: &mut StreamHandle) -> Vec<StreamEvent> {
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

    #[tokio::test]
    async fn token_probabilities_when_asked_and_the_same_every_time() {
        let b = ScriptedBackend::new(Script {
            reply: "The capital of England is London, on the Thames.".into(),
            repeat: 1,
            ..Default::default()
        });
        let mut r = req("x");
        r.sampling.logprobs = Some(3);
        let run = |r: ChatRequest| {
            let mut h = b.start(r);
            async move {
                collect(&mut h)
                    .await
                    .into_iter()
                    .filter_map(|e| match e {
                        StreamEvent::Logprobs(t) => Some(t),
                        _ => None,
                    })
                    .flatten()
                    .collect::<Vec<_>>()
            }
        };
        let toks = run(r.clone()).await;
        assert_eq!(toks.len(), 9);
        let joined: String = toks.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(joined, "The capital of England is London, on the Thames.");
        for t in &toks {
            assert!(t.logprob <= 0.0 && t.logprob.exp() >= 0.0);
            assert!(t.top.len() <= 3 && !t.top.is_empty());
            assert!(t.top.iter().any(|(a, _)| *a == t.text), "{t:?}");
            assert!(t.top.windows(2).all(|w| w[0].1 >= w[1].1), "{t:?}");
            let mass: f32 = t.top.iter().map(|(_, lp)| lp.exp()).sum();
            assert!(mass <= 1.0 + 1e-4, "{mass}");
        }
        assert!(toks.iter().any(|t| t.logprob.exp() < 0.5));
        assert_eq!(run(r).await, toks);
        assert!(run(req("x")).await.is_empty());
    }

    #[test]
    fn chunking_keeps_all_text() {
        let t = "Hello  wide world\n\nbye";
        assert_eq!(chunks(t, None).concat(), t);
        assert_eq!(chunks(t, None), ["Hello  ", "wide ", "world\n\n", "bye"]);
        assert_eq!(chunks("abcdé", Some(2)), ["ab", "cd", "é"]);
    }

    #[tokio::test]
    async fn rules_pick_replies_and_stream_in_words() {
        let b = ScriptedBackend::new(Script {
            reply: "default".into(),
            rules: vec![ScriptRule {
                when: "England".into(),
                reply: "The capital is London.".into(),
                ..Default::default()
            }],
            repeat: 1,
            ..Default::default()
        });
        let mut h = b.start(req("Capital of England?"));
        let evs = collect(&mut h).await;
        assert_eq!(evs[0], StreamEvent::Delta("The ".into()));
        assert_eq!(evs.last(), Some(&StreamEvent::Finished(FinishReason::Stop)));
        let text: String = evs
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Delta(d) => Some(d.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, "The capital is London.");
    }

    #[tokio::test]
    async fn fails_after_n_chunks_keeping_earlier_text() {
        let b = ScriptedBackend::new(Script {
            reply: "one two three".into(),
            fail_after_chunks: Some(2),
            error: Some("boom".into()),
            repeat: 1,
            ..Default::default()
        });
        let mut h = b.start(req("x"));
        let evs = collect(&mut h).await;
        assert_eq!(
            evs,
            [
                StreamEvent::Delta("one ".into()),
                StreamEvent::Delta("two ".into()),
                StreamEvent::Failed("boom".into())
            ]
        );
    }

    #[tokio::test]
    async fn cancel_stops_promptly() {
        let b = ScriptedBackend::new(Script {
            reply: "a b c d e f g".into(),
            delay: Duration::from_secs(5),
            repeat: 1,
            ..Default::default()
        });
        let mut h = b.start(req("x"));
        assert_eq!(h.events.recv().await, Some(StreamEvent::Delta("a ".into())));
        let t = std::time::Instant::now();
        h.cancel();
        assert_eq!(
            h.events.recv().await,
            Some(StreamEvent::Finished(FinishReason::Cancelled))
        );
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn max_tokens_truncates_and_reports_length() {
        let b = ScriptedBackend::new(Script {
            reply: "a b c d".into(),
            repeat: 1,
            ..Default::default()
        });
        let mut r = req("x");
        r.sampling.max_tokens = Some(2);
        let mut h = b.start(r);
        let evs = collect(&mut h).await;
        assert_eq!(
            evs.last(),
            Some(&StreamEvent::Finished(FinishReason::Length))
        );
        assert_eq!(
            evs.iter()
                .filter(|e| matches!(e, StreamEvent::Delta(_)))
                .count(),
            2
        );
    }
}
