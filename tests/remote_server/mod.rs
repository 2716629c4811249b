//! A scripted HTTP server on loopback, for what a real server will not do on demand: exact
//! byte chunking, delays, CRLF, status codes, stalls, broken streams. Each connection gets the
//! next scripted reply (the last one repeats); every request is recorded.
//!
//! Used by the integration tests (`tests/remote_*.rs`) and, through `#[path]`, by the unit
//! tests in `src/llm/`. It runs on its own thread and runtime so synchronous tests (which run
//! the binary) can use it too.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One step of a scripted reply.
#[derive(Debug, Clone)]
pub enum Act {
    /// Write these bytes (flushed at once: one network read on the other side, given a pause).
    Write(Vec<u8>),
    /// Pause, in milliseconds.
    Sleep(u64),
    /// Keep the connection open until the client closes it (at most 30 s), recording when.
    Hold,
    /// Write these bytes this many times (as fast as the client reads), stopping when the
    /// client goes away: an endless stream, or one enormous line.
    Repeat(Vec<u8>, u64),
}

/// A scripted reply: acts, then the connection is closed.
#[derive(Debug, Clone, Default)]
pub struct Reply(pub Vec<Act>);

impl Reply {
    /// A complete response with a `Content-Length`.
    pub fn full(
        status: &str,
        content_type: &str,
        extra_headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut head = format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
        for (k, v) in extra_headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(body);
        Reply(vec![Act::Write(head.into_bytes())])
    }

    /// A 200 response whose body ends when the connection closes, written in `parts` with
    /// `pause_ms` between them.
    pub fn stream(content_type: &str, parts: &[&[u8]], pause_ms: u64) -> Reply {
        let head = format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n");
        let mut acts = vec![Act::Write(head.into_bytes())];
        for (i, p) in parts.iter().enumerate() {
            if i > 0 && pause_ms > 0 {
                acts.push(Act::Sleep(pause_ms));
            }
            acts.push(Act::Write(p.to_vec()));
        }
        Reply(acts)
    }

    /// An SSE stream of `data:` payloads (each followed by a blank line).
    pub fn sse(payloads: &[&str], pause_ms: u64) -> Reply {
        let owned: Vec<Vec<u8>> = payloads
            .iter()
            .map(|p| format!("data: {p}\n\n").into_bytes())
            .collect();
        let parts: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        Reply::stream("text/event-stream", &parts, pause_ms)
    }

    pub fn then(mut self, act: Act) -> Reply {
        self.0.push(act);
        self
    }
}

/// An OpenAI chat completion chunk carrying `text`.
pub fn chunk(text: &str) -> String {
    serde_json::json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]}).to_string()
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Request line and headers.
    pub head: String,
    pub body: String,
}

impl Seen {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("request body is JSON")
    }

    /// A header's value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// A running scripted server.
pub struct Server {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub requests: Arc<Mutex<Vec<Seen>>>,
    /// When the client closed each held connection.
    pub closed: Arc<Mutex<Vec<Instant>>>,
}

impl Server {
    pub fn start(replies: Vec<Reply>) -> Server {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let (reqs, clos) = (requests.clone(), closed.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                let mut n = 0usize;
                loop {
                    let Ok((sock, _)) = listener.accept().await else {
                        return;
                    };
                    let reply = replies[n.min(replies.len() - 1)].clone();
                    n += 1;
                    let (reqs, clos) = (reqs.clone(), clos.clone());
                    tokio::spawn(async move { serve(sock, reply, reqs, clos).await });
                }
            });
        });
        let addr = rx.recv().expect("server address");
        Server {
            url: format!("http://{addr}"),
            requests,
            closed,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.requests.lock().expect("lock").clone()
    }

    /// Wait up to `limit` for a held connection to be closed by the client.
    pub fn wait_closed(&self, limit: Duration) -> Option<Instant> {
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Some(i) = self.closed.lock().expect("lock").first() {
                return Some(*i);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

async fn serve(
    mut sock: tokio::net::TcpStream,
    reply: Reply,
    reqs: Arc<Mutex<Vec<Seen>>>,
    closed: Arc<Mutex<Vec<Instant>>>,
) {
    let _ = sock.set_nodelay(true);
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match sock.read(&mut tmp).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match sock.read(&mut tmp).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
    reqs.lock().expect("lock").push(Seen { head, body });
    for act in reply.0 {
        match act {
            Act::Write(b) => {
                if sock.write_all(&b).await.is_err() {
                    closed.lock().expect("lock").push(Instant::now());
                    return;
                }
                let _ = sock.flush().await;
            }
            Act::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Act::Repeat(b, n) => {
                for _ in 0..n {
                    if sock.write_all(&b).await.is_err() {
                        closed.lock().expect("lock").push(Instant::now());
                        return;
                    }
                }
            }
            Act::Hold => {
                let until = tokio::time::timeout(Duration::from_secs(30), async {
                    loop {
                        match sock.read(&mut tmp).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                })
                .await;
                if until.is_ok() {
                    closed.lock().expect("lock").push(Instant::now());
                }
                return;
            }
        }
    }
    let _ = sock.shutdown().await;
}
