//! Runaway outputs are bounded, with the real binary and a scripted server on loopback: an
//! SSE stream that never ends stops at `max_answer_bytes` with that finish reason recorded;
//! one endless line (1 GiB without a newline) fails the stream at the line limit. The
//! child's peak RSS (from `wait4`) stays small in both.

mod common;
#[path = "remote_server/mod.rs"]
mod remote_server;

use std::io::Read;
use std::process::Stdio;

use common::{parse_toml, Sandbox};
use remote_server::{chunk, Act, Reply, Server};

const PROMPT: &str = "title = \"t\"\n[[variant]]\nname = \"v\"\ntemplate = \"Talk forever.\"\n";

fn config(url: &str, extra: &str) -> String {
    format!(
        "default_model = \"api\"\n{extra}\n[models.api]\nbackend = \"openai\"\nbase_url = \"{url}/v1\"\nmodel = \"m\"\nidle_timeout_secs = 20\n"
    )
}

/// Run `promptloom run` to its end; returns (exit code, stdout, stderr, peak RSS in KiB).
// The child is reaped by wait4 (for its rusage), not by std's Child::wait.
#[allow(clippy::zombie_processes)]
fn run_measured(sb: &Sandbox, out: &std::path::Path) -> (i32, String, String, i64) {
    let prompt = sb.write("p.toml", PROMPT);
    let mut child = sb
        .command()
        .args([
            "run",
            prompt.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let mut status = 0;
    // SAFETY: rusage is plain data; we reap our own child (std's Child is not waited on).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (
        code,
        t_out.join().unwrap(),
        t_err.join().unwrap(),
        usage.ru_maxrss,
    )
}

fn node(out: &std::path::Path) -> toml::Table {
    let file = parse_toml(out);
    file["node"].as_array().unwrap()[0]
        .as_table()
        .unwrap()
        .clone()
}

#[test]
fn an_endless_stream_stops_at_max_answer_bytes_with_memory_bounded() {
    let word = format!("data: {}\n\n", chunk("all work and no play "));
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
    let srv = Server::start(vec![Reply(vec![
        Act::Write(head.as_bytes().to_vec()),
        Act::Repeat(word.into_bytes(), u64::MAX),
    ])]);
    // The default cap (1 MiB).
    let sb = Sandbox::new(&config(&srv.url, ""));
    let out = sb.path("s.toml");
    let (code, stdout, stderr, rss_kib) = run_measured(&sb, &out);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let n = node(&out);
    assert_eq!(
        n["finish_reason"].as_str(),
        Some("max_answer_bytes"),
        "{n:?}"
    );
    let len = n["text"].as_str().unwrap().len();
    assert!(len <= 1 << 20 && len > (1 << 20) - 64, "{len}");
    assert!(rss_kib < 200 * 1024, "peak RSS {rss_kib} KiB");
    eprintln!(
        "endless stream: answer cut at {len} bytes; peak RSS {} MiB",
        rss_kib / 1024
    );
}

#[test]
fn a_configured_cap_is_used() {
    let word = format!("data: {}\n\n", chunk("tok "));
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
    let srv = Server::start(vec![Reply(vec![
        Act::Write(head.as_bytes().to_vec()),
        Act::Repeat(word.into_bytes(), u64::MAX),
    ])]);
    let sb = Sandbox::new(&config(&srv.url, "max_answer_bytes = 1000"));
    let out = sb.path("s.toml");
    let (code, stdout, stderr, _) = run_measured(&sb, &out);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let n = node(&out);
    assert_eq!(n["finish_reason"].as_str(), Some("max_answer_bytes"));
    assert_eq!(n["text"].as_str().unwrap().len(), 1000);
}

#[test]
fn one_gigabyte_line_fails_at_the_line_limit_with_memory_bounded() {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
    let first = format!(
        "data: {}\n\ndata: {{\"choices\":[{{\"delta\":{{\"content\":\"",
        chunk("before ")
    );
    let srv = Server::start(vec![Reply(vec![
        Act::Write(head.as_bytes().to_vec()),
        Act::Write(first.into_bytes()),
        // 1 GiB of one line.
        Act::Repeat(vec![b'a'; 1 << 20], 1024),
    ])]);
    let sb = Sandbox::new(&config(&srv.url, ""));
    let out = sb.path("s.toml");
    let (_code, stdout, stderr, rss_kib) = run_measured(&sb, &out);
    let n = node(&out);
    assert_eq!(
        n["status"].as_str(),
        Some("error"),
        "{n:?}\n{stdout}\n{stderr}"
    );
    let err = n["error"].as_str().unwrap_or_default();
    assert!(err.contains("a line longer than 8 MiB"), "{err}");
    assert_eq!(n["text"].as_str(), Some("before "));
    assert!(rss_kib < 200 * 1024, "peak RSS {rss_kib} KiB");
    eprintln!(
        "1 GiB line: stream failed at the 8 MiB line limit; peak RSS {} MiB",
        rss_kib / 1024
    );
}
