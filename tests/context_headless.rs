//! Context engineering end to end with the real binary: cases from data files, multi-turn
//! cases (scripted backend and an OpenAI-compatible server on loopback), retrieval (BM25, and
//! embeddings from a fake `/v1/embeddings` server on loopback), and example selection.

mod common;
mod remote_server;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use common::{parse_toml, text, Sandbox};
use remote_server::{chunk, Reply, Server};

const SCRIPTED: &str = r#"
default_model = "fake"
[models.fake]
backend = "scripted"
reply = "I do not know."
rules = [ { when = "country is that in", reply = "Lima is in Peru." },
          { when = "England", reply = "London." },
          { when = "France", reply = "Paris." },
          { when = "doctor", reply = "From the fourth day." } ]
"#;

fn run_ok(sb: &Sandbox, prompt: &std::path::Path, out: &std::path::Path) -> String {
    let o = sb.run(&[
        "run",
        prompt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = text(&o.stdout);
    assert!(
        o.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&o.stderr)
    );
    stdout
}

fn nodes(out: &std::path::Path) -> Vec<toml::Table> {
    parse_toml(out)["node"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n.as_table().expect("table").clone())
        .collect()
}

const MULTI_TURN: &str = r#"title = "Chat"
[[variant]]
name = "plain"
system = "You are a geography tutor."
template = "Capital of {{country}}?"

[[case]]
vars = { country = "England" }
expect = { any = ["London"] }

[[case]]
name = "chat"
vars = { city = "Lima" }
turns = [{ user = "I live in {{city}}." }, { assistant = "Nice city!" }, { user = "Which country is that in?" }]
expect = { any = ["Peru"] }
"#;

#[test]
fn multi_turn_case_runs_headless_with_its_history() {
    let sb = Sandbox::new(SCRIPTED);
    let prompt = sb.write("chat.toml", MULTI_TURN);
    let out = sb.path("s.toml");
    let stdout = run_ok(&sb, &prompt, &out);
    assert_eq!(stdout.matches("PASS ").count(), 2, "{stdout}");
    let n = nodes(&out);
    let chat = n
        .iter()
        .find(|n| n["case"].as_str() == Some("chat"))
        .unwrap();
    assert_eq!(chat["text"].as_str(), Some("Lima is in Peru."));
    let msgs = common::sent(&out, chat);
    let got: Vec<(&str, &str)> = msgs.iter().map(|(r, c)| (r.as_str(), c.as_str())).collect();
    assert_eq!(
        got,
        [
            ("system", "You are a geography tutor."),
            ("user", "I live in Lima."),
            ("assistant", "Nice city!"),
            ("user", "Which country is that in?"),
        ]
    );
    // The case's turns are kept in the session.
    let cases = parse_toml(&out)["case"].as_array().unwrap().clone();
    assert_eq!(cases[1]["turns"].as_array().map(|t| t.len()), Some(3));
}

#[test]
fn multi_turn_case_against_an_openai_compatible_server_on_loopback() {
    let server = Server::start(vec![Reply::sse(
        &[&chunk("Lima is "), &chunk("in Peru."), "[DONE]"],
        5,
    )]);
    let config = format!(
        "default_model = \"remote\"\n[models.remote]\nbackend = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"tiny\"\n",
        server.url
    );
    let sb = Sandbox::new(&config);
    let prompt = sb.write("chat.toml", MULTI_TURN);
    let out = sb.path("s.toml");
    let o = sb.run(&[
        "run",
        prompt.to_str().unwrap(),
        "--case",
        "chat",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let reqs = server.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 1);
    let body = reqs[0].json();
    let roles: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert_eq!(body["messages"][1]["content"], "I live in Lima.");
    assert_eq!(body["messages"][3]["content"], "Which country is that in?");
    assert!(text(&o.stdout).contains("PASS"), "{}", text(&o.stdout));
}

#[test]
fn cases_file_rows_run_and_bad_rows_exit_two_with_position() {
    let sb = Sandbox::new(SCRIPTED);
    sb.write(
        "data/cases.csv",
        "country,expect_any,expect_none\nEngland,London|Londres,Paris\nFrance,Paris,\n",
    );
    let prompt = sb.write(
        "p.toml",
        "title = \"t\"\ncases_file = \"data/cases.csv\"\n[[variant]]\nname = \"a\"\ntemplate = \"Capital of {{country}}?\"\n",
    );
    let out = sb.path("s.toml");
    let stdout = run_ok(&sb, &prompt, &out);
    assert!(stdout.contains("cases.csv:2"), "{stdout}");
    assert_eq!(stdout.matches("PASS ").count(), 2, "{stdout}");

    sb.write("data/cases.csv", "country,expect_regex\nEngland,(\n");
    let o = sb.run(&["check", prompt.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("cases.csv:2:9: invalid regex"), "{err}");
}

const HANDBOOK: &str = "# Annual leave\n\nYou get 25 days of paid annual leave per year.\n\n# Sick leave\n\nTell your manager before 10:00. From the fourth day of illness, a doctor's note is required.\n\n# Expenses\n\nSubmit receipts within 30 days.\n";

#[test]
fn bm25_retrieval_puts_the_right_chunk_in_and_records_it() {
    let sb = Sandbox::new(SCRIPTED);
    sb.write("docs/handbook.md", HANDBOOK);
    let prompt = sb.write(
        "p.toml",
        r#"title = "Handbook"
[[variant]]
name = "top-1"
template = "{{question}}"
retrieve = { from = ["docs/*.md"], k = 1, chunk_tokens = 60, overlap = 0 }

[[case]]
vars = { question = "When do I need a doctor's note?" }
expect = { any = ["fourth"] }
"#,
    );
    let out = sb.path("s.toml");
    run_ok(&sb, &prompt, &out);
    let n = nodes(&out);
    let meta = n[0]["meta"]["retrieved"].as_str().unwrap();
    assert!(
        meta.starts_with("1 by bm25: docs/handbook.md:5-7 "),
        "{meta}"
    );
    let msgs = common::sent(&out, &n[0]);
    let user = &msgs.last().unwrap().1;
    assert!(
        user.contains("<context source=\"docs/handbook.md:5-7\">\n# Sick leave\n"),
        "{user}"
    );
    assert!(!user.contains("Annual leave"), "{user}");
    assert!(
        user.ends_with("Question: When do I need a doctor's note?"),
        "{user}"
    );
}

/// A fake OpenAI-compatible embeddings server: each text becomes a bag-of-words vector
/// (words hashed into 256 buckets), so similar texts get similar vectors. Counts requests.
fn embedding_server() -> (String, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(Mutex::new(0usize));
    let c = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(50) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            *c.lock().unwrap() += 1;
            let data: Vec<serde_json::Value> = req["input"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let mut v = vec![0f32; 256];
                    for w in t
                        .as_str()
                        .unwrap_or("")
                        .split(|c: char| !c.is_alphanumeric())
                    {
                        if w.len() > 3 {
                            let h = w
                                .to_lowercase()
                                .bytes()
                                .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
                            v[(h % 256) as usize] += 1.0;
                        }
                    }
                    serde_json::json!({"object": "embedding", "index": i, "embedding": v})
                })
                .collect();
            let resp = serde_json::json!({"object": "list", "data": data, "model": "fake-embed"})
                .to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{resp}",
                resp.len()
            );
        }
    });
    (url, count)
}

#[test]
fn embedding_and_hybrid_retrieval_through_a_loopback_embeddings_server() {
    let (url, count) = embedding_server();
    let config = format!(
        "{SCRIPTED}\n[models.embed]\nbackend = \"openai\"\nbase_url = \"{url}/v1\"\nmodel = \"fake-embed\"\n"
    );
    let sb = Sandbox::new(&config);
    sb.write("docs/handbook.md", HANDBOOK);
    let prompt = sb.write(
        "p.toml",
        r#"title = "Handbook"
[[variant]]
name = "embedding"
template = "{{question}}"
retrieve = { from = ["docs/handbook.md"], k = 1, chunk_tokens = 60, overlap = 0, by = "embedding", embed_model = "embed" }

[[variant]]
name = "hybrid"
template = "{{question}}"
retrieve = { from = ["docs/handbook.md"], k = 2, chunk_tokens = 60, overlap = 0, by = "hybrid", embed_model = "embed" }

[[case]]
vars = { question = "Which doctor's note rules apply to illness?" }
expect = { any = ["fourth"] }
"#,
    );
    let out = sb.path("s.toml");
    run_ok(&sb, &prompt, &out);
    let n = nodes(&out);
    let emb = n[0]["meta"]["retrieved"].as_str().unwrap();
    assert!(
        emb.starts_with("1 by embedding: docs/handbook.md:5-7 "),
        "{emb}"
    );
    let hyb = n[1]["meta"]["retrieved"].as_str().unwrap();
    assert!(
        hyb.starts_with("2 by hybrid: docs/handbook.md:5-7 "),
        "{hyb}"
    );
    let first = *count.lock().unwrap();
    assert!(first >= 1);
    // A rerun embeds nothing new: the vectors are cached on disk.
    run_ok(&sb, &prompt, &sb.path("s2.toml"));
    assert_eq!(
        *count.lock().unwrap(),
        first,
        "rerun called the server again"
    );
    assert!(
        std::fs::read_dir(sb.path("data/embeddings"))
            .unwrap()
            .count()
            >= 1
    );
}

#[test]
fn embedding_server_down_fails_the_request_with_the_reason() {
    let config = format!(
        "{SCRIPTED}\n[models.embed]\nbackend = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"e\"\nconnect_timeout_secs = 2\n"
    );
    let sb = Sandbox::new(&config);
    sb.write("docs/h.md", HANDBOOK);
    let prompt = sb.write(
        "p.toml",
        "title = \"t\"\n[[variant]]\nname = \"e\"\ntemplate = \"{{q}}\"\nretrieve = { from = [\"docs/h.md\"], by = \"embedding\", embed_model = \"embed\" }\n[[case]]\nvars = { q = \"doctor\" }\n",
    );
    let o = sb.run(&[
        "run",
        prompt.to_str().unwrap(),
        "--out",
        sb.path("s.toml").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let stdout = text(&o.stdout);
    assert!(stdout.contains("ERROR"), "{stdout}");
    assert!(
        stdout.contains("retrieval failed: embeddings request to"),
        "{stdout}"
    );
}

#[test]
fn selected_examples_are_sent_and_recorded() {
    let sb = Sandbox::new(SCRIPTED);
    sb.write(
        "examples.jsonl",
        "{\"input\": \"Capital of Spain?\", \"output\": \"Madrid\"}\n{\"input\": \"What is 2 + 2?\", \"output\": \"4\"}\n{\"input\": \"Capital of Italy?\", \"output\": \"Rome\"}\n",
    );
    let prompt = sb.write(
        "p.toml",
        r#"title = "t"
[[variant]]
name = "selected"
template = "Capital of {{country}}?"
examples_file = "examples.jsonl"
select = { k = 2, by = "bm25" }

[[case]]
vars = { country = "England" }
"#,
    );
    let out = sb.path("s.toml");
    run_ok(&sb, &prompt, &out);
    let n = nodes(&out);
    let meta = n[0]["meta"]["examples_selected"].as_str().unwrap();
    assert!(meta.starts_with("2 of 3 by bm25: "), "{meta}");
    assert!(
        !meta.contains("examples.jsonl:2 "),
        "the arithmetic example is not similar: {meta}"
    );
    let msgs = common::sent(&out, &n[0]);
    assert_eq!(msgs.len(), 5, "two example pairs + question: {msgs:?}");
    assert!(!msgs.iter().any(|(_, c)| c == "4"), "{msgs:?}");
}

#[test]
fn import_writes_a_prompt_file_that_runs_and_lists_what_it_could_not_map() {
    let sb = Sandbox::new(SCRIPTED);
    let cfg = sb.write(
        "pf/promptfooconfig.yaml",
        "description: Capitals\nprompts:\n  - 'What is the capital of {{country}}?'\nproviders:\n  - id: openai:gpt-4o-mini\n    label: fake\n    config:\n      temperature: 0\n      seed: 3\ntests:\n  - vars: { country: England }\n    assert:\n      - type: icontains\n        value: london\n      - type: is-json\n",
    );
    let out = sb.path("pf/suite.toml");
    let o = sb.run(&["import", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", text(&o.stderr));
    // `seed` maps since the importer learned promptfoo's sampling aliases; `is-json` doesn't.
    assert!(stdout.contains("not mapped (1):"), "{stdout}");
    assert!(!stdout.contains("providers[0].config.seed"), "{stdout}");
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.contains("seed = 3"), "{written}");
    assert!(stdout.contains("assert type `is-json`"), "{stdout}");
    let stdout = run_ok(&sb, &out, &sb.path("s.toml"));
    assert!(stdout.contains("PASS"), "{stdout}");
    // Never over an existing file.
    let o = sb.run(&["import", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("exists"), "{}", text(&o.stderr));
}
