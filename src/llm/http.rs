//! What every remote backend shares: the HTTP client, API keys, retries with backoff, the idle
//! timeout, reading a streamed body, and turning each way a request can fail into one specific
//! message that names the model and the endpoint.
//!
//! The backends (`openai`, `anthropic`, `ollama`) only build a request body and parse their
//! wire format ([`WireParser`]); the loop here owns the connection, so cancelling, timeouts
//! and errors behave the same for all of them. An API key never leaves this module except in
//! a request header: every message built here goes through [`Remote::redact`].

use std::time::Duration;

use serde_json::Value;

use super::sse::{LineDecoder, SseDecoder};
use super::{EventSink, FinishReason, ModelIdentity, StreamEvent};
use crate::config::ModelConfig;

const DEFAULT_IDLE_TIMEOUT: u64 = 60;
const DEFAULT_CONNECT_TIMEOUT: u64 = 10;
const DEFAULT_MAX_RETRIES: u32 = 3;
/// Longest wait between retries, whatever `Retry-After` asks for.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);
/// Cap of the exponential backoff used when the server gives no `Retry-After`.
const MAX_BACKOFF: Duration = Duration::from_secs(20);
/// How much of an error body is read and quoted.
const MAX_ERROR_BODY: usize = 64 * 1024;
const MAX_QUOTE_CHARS: usize = 300;

/// Where and how to reach one configured remote model.
#[derive(Clone)]
pub(crate) struct Remote {
    pub backend: &'static str,
    /// The model id sent to the server.
    pub model: String,
    /// `base_url` without a trailing slash.
    pub base_url: String,
    pub api_key: Option<String>,
    /// Where the key came from, for hints: `$NAME` or "api_key in the config file".
    pub key_source: Option<String>,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_retries: u32,
    pub drop_rejected_params: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub client: reqwest::Client,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Remote")
            .field("backend", &self.backend)
            .field("model", &self.model)
            .field("base_url", &self.public_url(&self.base_url))
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// Settings for configured model `name`. Fails when its `api_key_env` names a variable that
    /// is not set, or when the client cannot be built.
    pub fn from_config(
        name: &str,
        backend: &'static str,
        m: &ModelConfig,
    ) -> Result<Remote, String> {
        let base_url = m
            .base_url
            .clone()
            .ok_or_else(|| format!("model {name:?} has no base_url"))?
            .trim_end_matches('/')
            .to_string();
        let model = m
            .model
            .clone()
            .ok_or_else(|| format!("model {name:?} has no `model`"))?;
        let (api_key, key_source) = match (&m.api_key_env, &m.api_key) {
            (Some(var), _) => match std::env::var(var) {
                Ok(k) if !k.trim().is_empty() => (Some(k.trim().to_string()), Some(format!("${var}"))),
                _ => {
                    return Err(format!(
                        "model {name:?} takes its API key from the environment variable {var} (api_key_env), which is not set"
                    ))
                }
            },
            (None, Some(k)) => (
                Some(k.trim().to_string()),
                Some("api_key in the config file".to_string()),
            ),
            (None, None) => (None, None),
        };
        let connect_timeout = Duration::from_secs(
            m.connect_timeout_secs
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
                .max(1),
        );
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .build()
            .map_err(|e| format!("model {name:?}: could not build an HTTP client: {e}"))?;
        Ok(Remote {
            backend,
            model,
            base_url,
            api_key,
            key_source,
            idle_timeout: Duration::from_secs(
                m.idle_timeout_secs.unwrap_or(DEFAULT_IDLE_TIMEOUT).max(1),
            ),
            connect_timeout,
            max_retries: m.max_retries.unwrap_or(DEFAULT_MAX_RETRIES),
            drop_rejected_params: m.drop_rejected_params.clone(),
            headers: m
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            client,
        })
    }

    pub fn identity(&self) -> ModelIdentity {
        ModelIdentity {
            backend: self.backend.into(),
            base_url: Some(self.public_url(&self.base_url)),
            model: Some(self.model.clone()),
            ..Default::default()
        }
    }

    /// `url` without user info or query string (either may carry a credential).
    pub fn public_url(&self, url: &str) -> String {
        match reqwest::Url::parse(url) {
            Ok(mut u) => {
                let _ = u.set_username("");
                let _ = u.set_password(None);
                u.set_query(None);
                self.redact(u.as_str().trim_end_matches('/'))
            }
            Err(_) => self.redact(url),
        }
    }

    /// `text` with the API key (and anything configured as a header value) blanked out.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        let secrets = self
            .api_key
            .iter()
            .chain(self.headers.iter().map(|(_, v)| v));
        for s in secrets {
            if s.len() >= 4 && out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "[redacted]");
            }
        }
        out
    }
}

/// The framing of a streamed body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    /// Server-sent events.
    Sse,
    /// Newline-delimited JSON.
    Ndjson,
}

/// What a parser makes of one payload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Emit(StreamEvent),
    Finish(FinishReason),
    Fail(String),
}

/// A backend's wire format: one payload (an SSE event's data, or one NDJSON line) at a time.
pub(crate) trait WireParser: Send {
    fn on_payload(&mut self, event: Option<&str>, data: &str, out: &mut Vec<Step>);
    /// The failure to report when the body ends without the format's end marker.
    fn on_eof(&self) -> String;
}

/// One request to make: where, what, and the headers that authenticate it.
pub(crate) struct Call {
    pub url: String,
    pub body: Value,
    pub auth_headers: Vec<(&'static str, String)>,
    pub wire: Wire,
}

/// Seconds, as the user reads them: "4 s", "1.5 s".
fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if (s - s.round()).abs() < 0.05 {
        format!("{} s", s.round() as u64)
    } else {
        format!("{s:.1} s")
    }
}

/// `s` on one line, at most `MAX_QUOTE_CHARS` characters.
fn clip(s: &str) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= MAX_QUOTE_CHARS {
        flat
    } else {
        let mut c: String = flat.chars().take(MAX_QUOTE_CHARS).collect();
        c.push('…');
        c
    }
}

/// The human part of an error payload: `{"error":{"message":…}}`, `{"error":"…"}`,
/// `{"message":…}`, `{"detail":…}`, or the text itself.
pub(crate) fn error_message(body: &str) -> String {
    let text = body.trim();
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        if let Some(m) = json_error_text(&v) {
            return clip(&m);
        }
    }
    clip(text)
}

/// The message inside a JSON error value, if it has one.
pub(crate) fn json_error_text(v: &Value) -> Option<String> {
    let err = v.get("error").filter(|e| !e.is_null()).unwrap_or(v);
    if let Some(s) = err.as_str() {
        return Some(s.to_string());
    }
    let msg = ["message", "detail", "msg"]
        .iter()
        .find_map(|k| err.get(*k).and_then(Value::as_str));
    let kind = err.get("type").and_then(Value::as_str);
    match (kind, msg) {
        (Some(k), Some(m)) if k != "error" => Some(format!("{k}: {m}")),
        (_, Some(m)) => Some(m.to_string()),
        (Some(k), None) => Some(k.to_string()),
        (None, None) => None,
    }
}

/// Describe a failure to get a response at all (connect, DNS, TLS, timeouts).
fn transport_error(e: &reqwest::Error, remote: &Remote, url: &str) -> String {
    let mut chain = Vec::new();
    let mut refused = false;
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        chain.push(s.to_string());
        src = s.source();
    }
    let all = chain.join(": ").to_lowercase();
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let innermost = chain.last().cloned().unwrap_or_else(|| e.to_string());
    if refused || all.contains("connection refused") {
        "connection refused: nothing is listening there (is the server running, and is base_url right?)".into()
    } else if all.contains("dns error")
        || all.contains("failed to lookup address")
        || all.contains("name or service not known")
        || all.contains("no address associated")
    {
        format!("could not resolve host {host:?} (DNS failure: {innermost})")
    } else if all.contains("certificate")
        || all.contains("tls")
        || all.contains("handshake")
        || all.contains("ssl")
        || all.contains("corrupt message")
    {
        format!("TLS failure talking to {host:?}: {innermost}")
    } else if e.is_timeout() || all.contains("timed out") {
        format!(
            "could not connect within {} (connect_timeout_secs)",
            secs(remote.connect_timeout)
        )
    } else if e.is_connect() {
        format!("could not connect: {innermost}")
    } else {
        format!("request failed: {innermost}")
    }
}

/// The hint after an authentication failure.
fn key_hint(remote: &Remote) -> String {
    match &remote.key_source {
        Some(src) => format!("check the key in {src}"),
        None => "no API key is configured; set api_key_env in the model's config".into(),
    }
}

/// Whether a request failed because the connection closed (or was reset) before any response
/// came: the typical sign of a reused keep-alive connection the server had just closed.
fn closed_before_response(e: &reqwest::Error) -> bool {
    if e.is_connect() || e.is_timeout() {
        return false;
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ) {
                return true;
            }
        }
        if s.to_string()
            .contains("connection closed before message completed")
        {
            return true;
        }
        src = s.source();
    }
    false
}

/// Whether the server asks us to come back later.
fn is_retryable(status: u16) -> bool {
    matches!(status, 429 | 503 | 529)
}

/// How long `Retry-After` asks to wait (seconds or an HTTP date), capped.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let d = if let Ok(s) = v.parse::<f64>() {
        Duration::try_from_secs_f64(s.max(0.0)).ok()?
    } else {
        let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
        (when.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
    };
    Some(d.min(MAX_RETRY_WAIT))
}

/// Exponential backoff for retry `n` (0-based): 1 s, 2 s, 4 s … capped, with ±25 % jitter so
/// concurrent requests do not come back in lockstep.
pub(crate) fn backoff(n: u32, jitter: f64) -> Duration {
    let base = Duration::from_secs(1u64 << n.min(10)).min(MAX_BACKOFF);
    base.mul_f64(0.75 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// Outcome of waiting for something while watching for cancellation and the idle timeout.
enum Waited<T> {
    Got(T),
    Idle,
    Cancelled,
}

async fn wait<T>(
    sink: &EventSink,
    limit: Duration,
    fut: impl std::future::Future<Output = T>,
) -> Waited<T> {
    tokio::select! {
        biased;
        _ = sink.cancelled() => Waited::Cancelled,
        r = tokio::time::timeout(limit, fut) => match r {
            Ok(v) => Waited::Got(v),
            Err(_) => Waited::Idle,
        },
    }
}

/// Remove parameter `p` from a request body (top level, or inside Ollama's `options`).
fn remove_param(body: &mut Value, p: &str) -> bool {
    let top = body.as_object_mut().and_then(|o| o.remove(p)).is_some();
    let nested = body
        .get_mut("options")
        .and_then(Value::as_object_mut)
        .and_then(|o| o.remove(p))
        .is_some();
    top || nested
}

fn has_param(body: &Value, p: &str) -> bool {
    body.get(p).is_some() || body.get("options").and_then(|o| o.get(p)).is_some()
}

/// Parameters a server commonly rejects, to hint at `drop_rejected_params`.
const DROPPABLE: &[&str] = &[
    "seed",
    "top_p",
    "top_k",
    "temperature",
    "stop",
    "max_tokens",
    "stream_options",
];

/// Run a call to its end: connect (with retries), stream, parse, and deliver events. Always
/// ends with exactly one terminal event on `sink`.
pub(crate) async fn run(
    remote: &Remote,
    mut call: Call,
    parser: &mut dyn WireParser,
    sink: &EventSink,
) {
    let url = remote.public_url(&call.url);
    let who = format!("model {:?} at {url}", remote.model);
    let fail = |detail: String| {
        let msg = remote.redact(&format!("{who}: {detail}"));
        tracing::warn!(backend = remote.backend, "{msg}");
        sink.finish(StreamEvent::Failed(msg));
    };
    let cancelled = || sink.finish(StreamEvent::Finished(FinishReason::Cancelled));

    let mut retries = 0u32;
    let mut resent = false;
    let mut response = loop {
        let mut req = remote
            .client
            .post(&call.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                reqwest::header::ACCEPT,
                match call.wire {
                    Wire::Sse => "text/event-stream",
                    Wire::Ndjson => "application/x-ndjson",
                },
            );
        for (k, v) in &call.auth_headers {
            req = req.header(*k, v);
        }
        for (k, v) in &remote.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let body = match serde_json::to_vec(&call.body) {
            Ok(b) => b,
            Err(e) => return fail(format!("could not encode the request: {e}")),
        };
        let sent = match wait(sink, remote.idle_timeout, req.body(body).send()).await {
            Waited::Cancelled => return cancelled(),
            Waited::Idle => {
                return fail(format!(
                    "no response within {} (idle_timeout_secs)",
                    secs(remote.idle_timeout)
                ))
            }
            Waited::Got(r) => r,
        };
        let resp = match sent {
            Ok(r) => r,
            // A kept-alive connection the server had already closed (llama-server and others
            // drop idle ones after a few seconds): nothing was answered, so ask once more, on
            // a new connection.
            Err(e) if !resent && closed_before_response(&e) => {
                resent = true;
                tracing::info!(
                    backend = remote.backend,
                    "{who}: connection closed before a response; sending again"
                );
                continue;
            }
            Err(e) => return fail(transport_error(&e, remote, &call.url)),
        };
        let status = resp.status();
        if status.is_success() {
            break resp;
        }
        let code = status.as_u16();
        let reason = status.canonical_reason().unwrap_or("");
        let http = format!("HTTP {code} {reason}").trim_end().to_string();
        let after = retry_after(resp.headers());
        let body = match wait(sink, remote.idle_timeout, read_capped(resp)).await {
            Waited::Cancelled => return cancelled(),
            Waited::Idle => String::new(),
            Waited::Got(b) => b,
        };
        let msg = error_message(&body);
        let quoted = if msg.is_empty() {
            String::new()
        } else {
            format!(": {msg}")
        };
        if is_retryable(code) {
            if retries < remote.max_retries {
                let delay = after.unwrap_or_else(|| backoff(retries, rand::random::<f64>()));
                retries += 1;
                let what = if code == 429 {
                    format!("rate limited by {who}")
                } else {
                    format!("{who} is unavailable")
                };
                sink.send(StreamEvent::Notice(remote.redact(&format!(
                    "{what} ({http}); retrying in {} (retry {retries}/{})",
                    secs(delay),
                    remote.max_retries
                ))));
                match wait(
                    sink,
                    delay + Duration::from_secs(1),
                    tokio::time::sleep(delay),
                )
                .await
                {
                    Waited::Cancelled => return cancelled(),
                    _ => continue,
                }
            }
            return fail(format!(
                "{} ({http}), gave up after {} retries{quoted}",
                if code == 429 {
                    "rate limited"
                } else {
                    "server unavailable"
                },
                remote.max_retries
            ));
        }
        match code {
            400 | 422 => {
                let lower = msg.to_lowercase();
                let droppable: Vec<String> = remote
                    .drop_rejected_params
                    .iter()
                    .filter(|p| lower.contains(&p.to_lowercase()) && has_param(&call.body, p))
                    .cloned()
                    .collect();
                if !droppable.is_empty() {
                    for p in &droppable {
                        remove_param(&mut call.body, p);
                    }
                    sink.send(StreamEvent::Notice(remote.redact(&format!(
                        "{who} rejected {}; retrying without (drop_rejected_params)",
                        droppable.join(", ")
                    ))));
                    continue;
                }
                let hint = DROPPABLE
                    .iter()
                    .find(|p| lower.contains(*p) && has_param(&call.body, p))
                    .map(|p| format!(" (to retry without `{p}` when a server rejects it, add \"{p}\" to drop_rejected_params)"))
                    .unwrap_or_default();
                return fail(format!("the server rejected the request ({http}){quoted}{hint}"));
            }
            401 | 403 => {
                return fail(format!(
                    "authentication failed ({http}){quoted}; {}",
                    key_hint(remote)
                ))
            }
            404 => {
                return fail(format!(
                    "not found ({http}){quoted}; check base_url and that the server has a model named {:?}",
                    remote.model
                ))
            }
            c if c >= 500 => return fail(format!("server error ({http}){quoted}")),
            _ => return fail(format!("unexpected response ({http}){quoted}")),
        }
    };

    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_string();
    let mut sse = SseDecoder::default();
    let mut lines = LineDecoder::default();
    let mut head: Vec<u8> = Vec::new();
    let mut received = 0usize;
    let mut steps = Vec::new();
    loop {
        let chunk = match wait(sink, remote.idle_timeout, response.chunk()).await {
            Waited::Cancelled => {
                drop(response);
                return cancelled();
            }
            Waited::Idle => {
                return fail(format!(
                    "the stream stalled: no data for {} (idle_timeout_secs); kept what arrived",
                    secs(remote.idle_timeout)
                ))
            }
            Waited::Got(Ok(c)) => c,
            Waited::Got(Err(e)) => {
                return fail(format!(
                    "the connection broke mid-stream after {received} bytes: {}",
                    transport_error(&e, remote, &call.url)
                ))
            }
        };
        let eof = chunk.is_none();
        let bytes: &[u8] = chunk.as_deref().unwrap_or(&[]);
        received += bytes.len();
        if head.len() < 512 {
            head.extend(bytes.iter().take(512 - head.len()));
        }
        match call.wire {
            Wire::Sse => {
                let mut events = sse.feed(bytes);
                if eof {
                    events.extend(sse.finish());
                }
                if sse.field_lines == 0 && (sse.foreign_lines > 0 || (eof && received > 0)) {
                    return fail(format!(
                        "the server did not answer with an event stream (content-type: {content_type}): {}",
                        error_message(&String::from_utf8_lossy(&head))
                    ));
                }
                for ev in events {
                    parser.on_payload(ev.event.as_deref(), &ev.data, &mut steps);
                }
            }
            Wire::Ndjson => {
                let mut ls = lines.feed(bytes);
                if eof {
                    ls.extend(lines.finish());
                }
                for l in ls.iter().filter(|l| !l.trim().is_empty()) {
                    parser.on_payload(None, l, &mut steps);
                }
            }
        }
        for step in steps.drain(..) {
            match step {
                Step::Emit(ev) => {
                    if !sink.send(ev) {
                        drop(response);
                        return cancelled();
                    }
                }
                Step::Finish(r) => {
                    sink.finish(StreamEvent::Finished(r));
                    return;
                }
                Step::Fail(m) => return fail(m),
            }
        }
        if sse.overlong() || lines.overlong() {
            return fail(format!(
                "the server sent a line longer than {} MiB; stopped reading (kept what arrived)",
                crate::llm::sse::MAX_LINE_BYTES >> 20
            ));
        }
        if eof {
            return fail(if received == 0 {
                "the server closed the connection without sending anything".to_string()
            } else {
                format!(
                    "{} (connection closed after {received} bytes)",
                    parser.on_eof()
                )
            });
        }
    }
}

/// An error body, at most `MAX_ERROR_BODY` bytes of it.
async fn read_capped(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while let Ok(Some(c)) = resp.chunk().await {
        buf.extend_from_slice(&c);
        if buf.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// `stop` as servers want it, or nothing when empty.
pub(crate) fn stop_value(stop: &[String]) -> Option<Value> {
    (!stop.is_empty()).then(|| Value::from(stop.to_vec()))
}

/// A payload that should be JSON but is not: quote it.
pub(crate) fn not_json(data: &str) -> String {
    format!(
        "the server sent an error instead of a chunk: {}",
        clip(data)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_extracted() {
        assert_eq!(
            error_message(
                r#"{"error":{"message":"model 'x' not found","type":"invalid_request_error"}}"#
            ),
            "invalid_request_error: model 'x' not found"
        );
        assert_eq!(error_message(r#"{"error":"boom"}"#), "boom");
        assert_eq!(
            error_message(
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            ),
            "overloaded_error: Overloaded"
        );
        assert_eq!(error_message("  plain\ntext  "), "plain text");
        assert_eq!(error_message(&"x".repeat(400)).chars().count(), 301);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        assert_eq!(backoff(0, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(2, 0.5), Duration::from_secs(4));
        assert_eq!(backoff(30, 0.5), MAX_BACKOFF);
        assert!(backoff(1, 0.0) < backoff(1, 1.0));
        assert_eq!(backoff(1, 0.0), Duration::from_millis(1500));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_capped() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "4".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(4)));
        h.insert(reqwest::header::RETRY_AFTER, "9999".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_RETRY_WAIT));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn keys_are_redacted_and_urls_lose_credentials() {
        let mut r = Remote::from_config(
            "m",
            "openai",
            &toml::from_str::<ModelConfig>(
                "backend = \"openai\"\nbase_url = \"http://u:pw@h:1/v1/?key=abc\"\nmodel = \"x\"\napi_key = \"sk-secret-123\"\n",
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(r.redact("bad key sk-secret-123!"), "bad key [redacted]!");
        assert_eq!(r.public_url(&r.base_url.clone()), "http://h:1/v1");
        r.api_key = None;
        assert_eq!(r.redact("sk-secret-123"), "sk-secret-123");
        assert!(!format!("{r:?}").contains("pw"));
    }

    #[test]
    fn params_are_removed_at_top_level_and_in_options() {
        let mut b = serde_json::json!({"seed": 1, "options": {"seed": 2, "top_k": 3}});
        assert!(remove_param(&mut b, "seed"));
        assert_eq!(b, serde_json::json!({"options": {"top_k": 3}}));
        assert!(!remove_param(&mut b, "seed"));
        assert!(has_param(&b, "top_k"));
    }
}

#[cfg(test)]
#[path = "../../tests/remote_server/mod.rs"]
pub(crate) mod loopback_server;

/// Every backend against the scripted loopback server: the SSE edge cases, each failure, the
/// Anthropic and Ollama wire formats, cancellation.
#[cfg(test)]
mod loopback_tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::loopback_server::{chunk, Act, Reply, Server};
    use super::*;
    use crate::llm::anthropic::AnthropicBackend;
    use crate::llm::ollama::OllamaBackend;
    use crate::llm::openai::OpenAiBackend;
    use crate::llm::{Backend, ChatMessage, ChatRequest, Role, Sampling, StreamHandle, Usage};

    const KEY: &str = "sk-unit-canary-5f2b9c";

    fn remote(kind: &'static str, url: &str, extra: &str) -> Remote {
        let text = format!(
            "backend = \"{kind}\"\nbase_url = \"{url}\"\nmodel = \"tiny\"\napi_key = \"{KEY}\"\n{extra}"
        );
        let m: ModelConfig = toml::from_str(&text).expect("model config");
        Remote::from_config("tiny", kind, &m).expect("remote")
    }

    fn openai(url: &str, extra: &str) -> Arc<dyn Backend> {
        Arc::new(OpenAiBackend::new(remote(
            "openai",
            &format!("{url}/v1"),
            extra,
        )))
    }

    fn req() -> ChatRequest {
        ChatRequest {
            messages: vec![
                ChatMessage::new(Role::System, "Answer briefly."),
                ChatMessage::new(Role::User, "What is the capital of England?"),
            ],
            sampling: Sampling {
                temperature: Some(0.0),
                max_tokens: Some(32),
                seed: Some(42),
                logprobs: None,
                samples: None,
                stop_on: None,
                ..Default::default()
            },
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
                StreamEvent::Delta(d) => Some(d.as_str()),
                _ => None,
            })
            .collect()
    }

    fn failure(evs: &[StreamEvent]) -> String {
        match evs.last() {
            Some(StreamEvent::Failed(m)) => {
                assert!(!m.contains(KEY), "the key leaked: {m}");
                m.clone()
            }
            other => panic!("expected a failure, got {other:?} after {evs:?}"),
        }
    }

    #[tokio::test]
    async fn sse_edge_cases_stream_in_order() {
        let role = r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}"#;
        let missing = r#"{"choices":[{"index":0,"delta":{}}]}"#;
        let london = chunk("Lond").into_bytes();
        let accent = chunk("on é").into_bytes();
        // Split "é" (two bytes) across two network reads.
        let cut = accent.iter().position(|&b| b == 0xC3).unwrap() + 1;
        let mut parts: Vec<Vec<u8>> = vec![
            b": keep-alive\r\n\r\n".to_vec(),
            format!("data: {role}\r\n\r\n").into_bytes(),
            format!("data: {missing}\n\n").into_bytes(),
        ];
        let mut l = b"data: ".to_vec();
        l.extend(&london);
        l.extend(b"\r\n\r\n");
        parts.push(l);
        let mut a = b"data: ".to_vec();
        a.extend(&accent[..cut]);
        parts.push(a);
        let mut b = accent[cut..].to_vec();
        b.extend(b"\n\n");
        parts.push(b);
        // One payload over two data lines, then finish_reason, usage with empty choices, DONE.
        parts.push(b"data: {\"choices\":[{\"index\":0,\n".to_vec());
        parts.push(
            b"data: \"delta\":{\"content\":\"!\"},\"finish_reason\":\"stop\"}]}\n\n".to_vec(),
        );
        parts.push(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":4}}\n\n: ping\n\n".to_vec());
        parts.push(b"data: [DONE]\n\n".to_vec());
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let srv = Server::start(vec![Reply::stream("text/event-stream", &refs, 15)]);
        let evs = collect(openai(&srv.url, "").start(req())).await;
        assert_eq!(text(&evs), "London é!");
        assert!(evs.contains(&StreamEvent::Usage(Usage {
            prompt_tokens: Some(11),
            completion_tokens: Some(4),
            estimated: false,
        })));
        assert_eq!(evs.last(), Some(&StreamEvent::Finished(FinishReason::Stop)));

        let seen = &srv.seen()[0];
        assert!(
            seen.head.starts_with("POST /v1/chat/completions "),
            "{}",
            seen.head
        );
        assert_eq!(seen.header("authorization"), Some(format!("Bearer {KEY}")));
        let b = seen.json();
        assert_eq!(b["model"], "tiny");
        assert_eq!(b["stream"], true);
        assert_eq!(b["stream_options"]["include_usage"], true);
        assert_eq!(b["max_tokens"], 32);
        assert_eq!(b["temperature"], 0.0);
        assert_eq!(b["seed"], 42);
        assert_eq!(b["messages"][0]["role"], "system");
    }

    /// A server that closes the connection without answering (what a stale keep-alive
    /// connection looks like) gets the request once more, on a new connection; twice in a row
    /// is a failure.
    #[tokio::test]
    async fn a_connection_closed_before_any_response_is_tried_once_more() {
        let ok = Reply::sse(&[&chunk("London"), "[DONE]"], 0);
        let srv = Server::start(vec![Reply(vec![]), ok]);
        let evs = collect(openai(&srv.url, "").start(req())).await;
        assert_eq!(text(&evs), "London", "{evs:?}");
        assert_eq!(srv.seen().len(), 2);

        let srv = Server::start(vec![Reply(vec![]), Reply(vec![]), Reply(vec![])]);
        let m = failure(&collect(openai(&srv.url, "").start(req())).await);
        assert!(m.contains("request failed"), "{m}");
        assert_eq!(srv.seen().len(), 2, "one more try, not more");
    }

    #[tokio::test]
    async fn connection_refused() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let m = failure(&collect(openai(&url, "").start(req())).await);
        assert_eq!(
            m,
            format!("model \"tiny\" at http://127.0.0.1:{port}/v1/chat/completions: connection refused: nothing is listening there (is the server running, and is base_url right?)")
        );
    }

    #[tokio::test]
    async fn dns_failure() {
        let m = failure(
            &collect(
                openai("http://no-such-host.invalid", "connect_timeout_secs = 5").start(req()),
            )
            .await,
        );
        assert!(
            m.starts_with("model \"tiny\" at http://no-such-host.invalid/v1/chat/completions: could not resolve host \"no-such-host.invalid\" (DNS failure"),
            "{m}"
        );
    }

    #[tokio::test]
    async fn tls_failure() {
        // A plain-HTTP server answering a TLS client's hello.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            use std::io::Write;
            if let Ok((mut s, _)) = listener.accept() {
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let m = failure(&collect(openai(&url, "").start(req())).await);
        assert!(
            m.contains("/v1/chat/completions: TLS failure talking to \"127.0.0.1\""),
            "{m}"
        );
    }

    async fn status_failure(reply: Reply, extra: &str) -> (String, Server) {
        let srv = Server::start(vec![reply]);
        let m = failure(&collect(openai(&srv.url, extra).start(req())).await);
        (m, srv)
    }

    #[tokio::test]
    async fn unauthorized_names_the_key_source_without_the_key() {
        let body = format!(
            r#"{{"error":{{"message":"Incorrect API key provided: {KEY}.","type":"invalid_request_error","code":"invalid_api_key"}}}}"#
        );
        let (m, srv) = status_failure(
            Reply::full("401 Unauthorized", "application/json", &[], &body),
            "",
        )
        .await;
        assert_eq!(
            m,
            format!("model \"tiny\" at {}/v1/chat/completions: authentication failed (HTTP 401 Unauthorized): invalid_request_error: Incorrect API key provided: [redacted].; check the key in api_key in the config file", srv.url)
        );
        let (m, _) = status_failure(
            Reply::full("403 Forbidden", "text/plain", &[], "forbidden"),
            "",
        )
        .await;
        assert!(m.ends_with("authentication failed (HTTP 403 Forbidden): forbidden; check the key in api_key in the config file"), "{m}");
    }

    #[tokio::test]
    async fn not_found_bad_request_and_server_error() {
        let (m, _) = status_failure(
            Reply::full("404 Not Found", "application/json", &[], r#"{"error":{"message":"The model `tiny` does not exist","type":"invalid_request_error"}}"#),
            "",
        )
        .await;
        assert!(m.ends_with("not found (HTTP 404 Not Found): invalid_request_error: The model `tiny` does not exist; check base_url and that the server has a model named \"tiny\""), "{m}");
        let (m, _) = status_failure(
            Reply::full(
                "400 Bad Request",
                "application/json",
                &[],
                r#"{"error":{"message":"Unsupported parameter: 'seed'"}}"#,
            ),
            "",
        )
        .await;
        assert!(m.ends_with("the server rejected the request (HTTP 400 Bad Request): Unsupported parameter: 'seed' (to retry without `seed` when a server rejects it, add \"seed\" to drop_rejected_params)"), "{m}");
        let (m, _) = status_failure(
            Reply::full(
                "500 Internal Server Error",
                "text/plain",
                &[],
                "CUDA error: out of memory",
            ),
            "",
        )
        .await;
        assert!(
            m.ends_with("server error (HTTP 500 Internal Server Error): CUDA error: out of memory"),
            "{m}"
        );
    }

    #[tokio::test]
    async fn rejected_parameter_is_dropped_only_when_configured() {
        let reject = Reply::full(
            "400 Bad Request",
            "application/json",
            &[],
            r#"{"error":{"message":"Unsupported parameter: 'seed'"}}"#,
        );
        let ok = Reply::sse(&[&chunk("London"), "[DONE]"], 0);
        let srv = Server::start(vec![reject, ok]);
        let evs = collect(openai(&srv.url, "drop_rejected_params = [\"seed\"]").start(req())).await;
        assert_eq!(text(&evs), "London");
        assert!(evs.iter().any(|e| matches!(e, StreamEvent::Notice(n) if n.ends_with("rejected seed; retrying without (drop_rejected_params)"))), "{evs:?}");
        let seen = srv.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].json()["seed"], 42);
        assert!(seen[1].json().get("seed").is_none());
        assert_eq!(seen[1].json()["temperature"], 0.0);
    }

    #[tokio::test]
    async fn rate_limits_are_retried_after_the_wait_the_server_asks_for() {
        let limited = Reply::full(
            "429 Too Many Requests",
            "application/json",
            &[("Retry-After", "1")],
            r#"{"error":{"message":"slow down"}}"#,
        );
        let ok = Reply::sse(&[&chunk("London"), "[DONE]"], 0);
        let srv = Server::start(vec![limited, ok]);
        let t = Instant::now();
        let evs = collect(openai(&srv.url, "max_retries = 2").start(req())).await;
        assert!(
            t.elapsed() >= Duration::from_millis(950),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(
            evs[0],
            StreamEvent::Notice(format!("rate limited by model \"tiny\" at {}/v1/chat/completions (HTTP 429 Too Many Requests); retrying in 1 s (retry 1/2)", srv.url))
        );
        assert_eq!(text(&evs), "London");
        assert_eq!(srv.seen().len(), 2);
    }

    #[tokio::test]
    async fn unavailable_gives_up_after_max_retries() {
        let busy = Reply::full(
            "503 Service Unavailable",
            "text/plain",
            &[("Retry-After", "0")],
            "loading model",
        );
        let srv = Server::start(vec![busy]);
        let evs = collect(openai(&srv.url, "max_retries = 2").start(req())).await;
        let notices = evs
            .iter()
            .filter(|e| matches!(e, StreamEvent::Notice(_)))
            .count();
        assert_eq!(notices, 2);
        assert_eq!(
            evs[0],
            StreamEvent::Notice(format!("model \"tiny\" at {}/v1/chat/completions is unavailable (HTTP 503 Service Unavailable); retrying in 0 s (retry 1/2)", srv.url))
        );
        assert!(failure(&evs).ends_with("server unavailable (HTTP 503 Service Unavailable), gave up after 2 retries: loading model"), "{evs:?}");
        assert_eq!(srv.seen().len(), 3);
    }

    #[tokio::test]
    async fn stream_without_done_keeps_the_text_and_fails() {
        let srv = Server::start(vec![Reply::sse(
            &[&chunk("The capital "), &chunk("is")],
            10,
        )]);
        let evs = collect(openai(&srv.url, "").start(req())).await;
        assert_eq!(text(&evs), "The capital is");
        let m = failure(&evs);
        assert!(m.ends_with("the stream ended before [DONE]; the answer is incomplete (connection closed after 254 bytes)"), "{m}");
    }

    #[tokio::test]
    async fn a_stalled_stream_times_out() {
        let reply = Reply::sse(&[&chunk("London")], 0).then(Act::Sleep(5000));
        let srv = Server::start(vec![reply]);
        let t = Instant::now();
        let evs = collect(openai(&srv.url, "idle_timeout_secs = 1").start(req())).await;
        assert!(t.elapsed() < Duration::from_secs(3));
        assert_eq!(text(&evs), "London");
        assert!(failure(&evs).ends_with(
            "the stream stalled: no data for 1 s (idle_timeout_secs); kept what arrived"
        ));
    }

    #[tokio::test]
    async fn a_body_that_is_not_sse() {
        let srv = Server::start(vec![Reply::full(
            "200 OK",
            "text/html",
            &[],
            "<html><body>Welcome to nginx!</body></html>\n",
        )]);
        let m = failure(&collect(openai(&srv.url, "").start(req())).await);
        assert!(m.ends_with("the server did not answer with an event stream (content-type: text/html): <html><body>Welcome to nginx!</body></html>"), "{m}");
    }

    #[tokio::test]
    async fn errors_inside_the_stream() {
        let srv = Server::start(vec![
            Reply::sse(
                &[
                    &chunk("Lon"),
                    r#"{"error":{"message":"context length exceeded","type":"server_error"}}"#,
                ],
                0,
            ),
            Reply::sse(&[&chunk("Lon"), "Model failed with error: Cuda OOM"], 0),
        ]);
        let evs = collect(openai(&srv.url, "").start(req())).await;
        assert_eq!(text(&evs), "Lon");
        assert!(failure(&evs).ends_with(
            "the server reported an error mid-stream: server_error: context length exceeded"
        ));
        let evs = collect(openai(&srv.url, "").start(req())).await;
        assert!(failure(&evs).ends_with(
            "the server sent an error instead of a chunk: Model failed with error: Cuda OOM"
        ));
    }

    #[tokio::test]
    async fn cancelling_closes_the_connection_at_once() {
        let reply = Reply::sse(&[&chunk("London ")], 0).then(Act::Hold);
        let srv = Server::start(vec![reply]);
        let mut h = openai(&srv.url, "").start(req());
        assert_eq!(
            h.events.recv().await,
            Some(StreamEvent::Delta("London ".into()))
        );
        let t = Instant::now();
        h.cancel();
        assert_eq!(
            h.events.recv().await,
            Some(StreamEvent::Finished(FinishReason::Cancelled))
        );
        let closed = tokio::task::spawn_blocking(move || srv.wait_closed(Duration::from_secs(5)))
            .await
            .unwrap()
            .expect("the server saw the connection close");
        assert!(
            closed.duration_since(t) < Duration::from_millis(500),
            "{:?}",
            closed.duration_since(t)
        );
    }

    #[tokio::test]
    async fn anthropic_wire_format() {
        let events = [
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"m1","type":"message","role":"assistant","content":[],"model":"tiny","usage":{"input_tokens":14,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"England... London"}}"#,
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
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"London"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"."}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":1}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":3}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ];
        let owned: Vec<Vec<u8>> = events
            .iter()
            .map(|(e, d)| format!("event: {e}\r\ndata: {d}\r\n\r\n").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        let srv = Server::start(vec![
            Reply::stream("text/event-stream", &refs, 5),
            Reply::stream("text/event-stream", &refs[..8], 0),
            Reply::stream("text/event-stream", &[b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"], 0),
        ]);
        let b: Arc<dyn Backend> =
            Arc::new(AnthropicBackend::new(remote("anthropic", &srv.url, "")));
        let evs = collect(b.start(req())).await;
        assert_eq!(text(&evs), "London.");
        assert!(evs.contains(&StreamEvent::Usage(Usage {
            prompt_tokens: Some(14),
            completion_tokens: Some(3),
            estimated: false,
        })));
        assert_eq!(evs.last(), Some(&StreamEvent::Finished(FinishReason::Stop)));
        let seen = &srv.seen()[0];
        assert!(seen.head.starts_with("POST /v1/messages "), "{}", seen.head);
        assert_eq!(seen.header("x-api-key").as_deref(), Some(KEY));
        assert_eq!(
            seen.header("anthropic-version").as_deref(),
            Some("2023-06-01")
        );
        assert_eq!(seen.header("authorization"), None);
        let body = seen.json();
        assert_eq!(body["system"], "Answer briefly.");
        assert_eq!(body["max_tokens"], 32);
        assert_eq!(body["messages"].as_array().unwrap().len(), 1);

        let evs = collect(b.start(req())).await;
        assert_eq!(text(&evs), "London.");
        assert!(failure(&evs).contains(
            "/v1/messages: the stream ended before message_stop; the answer is incomplete"
        ));
        let evs = collect(b.start(req())).await;
        assert!(failure(&evs).ends_with(
            "/v1/messages: the server reported an error mid-stream: overloaded_error: Overloaded"
        ));
    }

    #[tokio::test]
    async fn ollama_wire_format() {
        let lines: [&[u8]; 4] = [
            b"{\"model\":\"tiny\",\"message\":{\"role\":\"assistant\",\"content\":\"Lon\"},\"done\":false}\n",
            b"{\"model\":\"tiny\",\"message\":{\"role\":\"assistant\",\"content\":\"don\"},\"do",
            b"ne\":false}\n",
            b"{\"model\":\"tiny\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"total_duration\":123456,\"prompt_eval_count\":20,\"eval_count\":2,\"eval_duration\":1000}\n",
        ];
        let srv = Server::start(vec![
            Reply::stream("application/x-ndjson", &lines, 10),
            Reply::stream("application/x-ndjson", &lines[..1], 0),
            Reply::full(
                "404 Not Found",
                "application/json",
                &[],
                r#"{"error":"model \"tiny\" not found, try pulling it first"}"#,
            ),
        ]);
        let b: Arc<dyn Backend> = Arc::new(OllamaBackend::new(remote("ollama", &srv.url, "")));
        let evs = collect(b.start(req())).await;
        assert_eq!(text(&evs), "London");
        assert!(evs.contains(&StreamEvent::Usage(Usage {
            prompt_tokens: Some(20),
            completion_tokens: Some(2),
            estimated: false,
        })));
        assert_eq!(evs.last(), Some(&StreamEvent::Finished(FinishReason::Stop)));
        let seen = &srv.seen()[0];
        assert!(seen.head.starts_with("POST /api/chat "), "{}", seen.head);
        let body = seen.json();
        assert_eq!(body["options"]["num_predict"], 32);
        assert_eq!(body["options"]["seed"], 42);
        assert_eq!(body["stream"], true);

        let evs = collect(b.start(req())).await;
        assert_eq!(text(&evs), "Lon");
        assert!(failure(&evs).ends_with("the stream ended before its final line (\"done\": true); the answer is incomplete (connection closed after 77 bytes)"));
        let evs = collect(b.start(req())).await;
        assert!(failure(&evs).ends_with("/api/chat: not found (HTTP 404 Not Found): model \"tiny\" not found, try pulling it first; check base_url and that the server has a model named \"tiny\""));
    }
}
