//! Remote backends through the real binary against the scripted loopback server: what the user
//! sees and what the session keeps when requests fail, and that an API key never reaches a
//! session file, an export, the log or the terminal.

mod common;
mod remote_server;

use common::{parse_toml, text, Sandbox};
use remote_server::{chunk, Reply, Server};

/// The canary key: the one `scripts/test.sh` exports for the whole run, or a local one.
fn canary() -> String {
    std::env::var("PROMPTLOOM_CANARY_KEY")
        .unwrap_or_else(|_| "sk-canary-remote-scripted-4e1d".into())
}

fn model(name: &str, backend: &str, url: &str, extra: &str) -> String {
    format!(
        "[models.{name}]\nbackend = \"{backend}\"\nbase_url = \"{url}\"\nmodel = \"tiny\"\napi_key_env = \"PROMPTLOOM_CANARY_KEY\"\nmax_retries = 2\n{extra}\n"
    )
}

fn variant(name: &str, model: &str) -> String {
    format!("[[variant]]\nname = \"{name}\"\nmodel = \"{model}\"\ntemplate = \"What is the capital of {{{{country}}}}?\"\n")
}

/// Every file under `dir`, recursively.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn failures_are_specific_keep_partial_text_and_leave_other_requests_running() {
    let key = canary();
    let london = Server::start(vec![Reply::sse(
        &[
            &chunk("The capital "),
            &chunk("of England "),
            &chunk("is London."),
            "[DONE]",
        ],
        30,
    )]);
    let broken = Server::start(vec![Reply::sse(
        &[&chunk("The capital "), &chunk("is")],
        30,
    )]);
    let denied_body = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {key}","type":"invalid_request_error"}}}}"#
    );
    let denied = Server::start(vec![Reply::full(
        "401 Unauthorized",
        "application/json",
        &[],
        &denied_body,
    )]);
    let limited = Server::start(vec![
        Reply::full(
            "429 Too Many Requests",
            "application/json",
            &[("Retry-After", "1")],
            r#"{"error":{"message":"slow down"}}"#,
        ),
        Reply::sse(&[&chunk("London"), "[DONE]"], 0),
    ]);
    let anthropic = Server::start(vec![Reply::stream(
        "text/event-stream",
        &[
            b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n",
            b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"London.\"}}\n\n",
            b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n",
            b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ],
        10,
    )]);
    let ollama = Server::start(vec![Reply::stream(
        "application/x-ndjson",
        &[
            b"{\"message\":{\"role\":\"assistant\",\"content\":\"London\"},\"done\":false}\n",
            b"{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":9,\"eval_count\":1}\n",
        ],
        10,
    )]);
    let config = [
        "default_model = \"ok\"\n".to_string(),
        model("ok", "openai", &format!("{}/v1", london.url), ""),
        model("broken", "openai", &format!("{}/v1", broken.url), ""),
        model("denied", "openai", &format!("{}/v1", denied.url), ""),
        model("limited", "openai", &format!("{}/v1", limited.url), ""),
        model("claude", "anthropic", &anthropic.url, ""),
        model("llama", "ollama", &ollama.url, ""),
    ]
    .concat();
    let sb = Sandbox::new(&config);
    let prompt = [
        "title = \"remote failures\"\n[defaults]\ntemperature = 0.0\nmax_tokens = 32\n".to_string(),
        variant("ok", "ok"),
        variant("broken", "broken"),
        variant("denied", "denied"),
        variant("limited", "limited"),
        variant("claude", "claude"),
        variant("llama", "llama"),
        "[[case]]\nvars = { country = \"England\" }\nexpect = { any = [\"London\"] }\n".to_string(),
    ]
    .concat();
    let prompt = sb.write("p.toml", &prompt);
    let out = sb.path("s.toml");
    let o = sb
        .command()
        .env("PROMPTLOOM_CANARY_KEY", &key)
        .env("PROMPTLOOM_LOG", "promptloom=debug")
        .args([
            "run",
            prompt.to_str().unwrap(),
            "--concurrency",
            "6",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    let s = parse_toml(&out);
    let node = |v: &str| {
        s["node"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["variant"].as_str() == Some(v))
            .unwrap_or_else(|| panic!("no node for {v}"))
            .as_table()
            .unwrap()
            .clone()
    };
    for v in ["ok", "limited", "claude", "llama"] {
        let n = node(v);
        assert_eq!(n["status"].as_str(), Some("done"), "{v}: {n:?}");
        assert!(n["text"].as_str().unwrap().contains("London"), "{v}: {n:?}");
    }
    assert_eq!(node("claude")["tokens_out"].as_integer(), Some(2));
    assert_eq!(node("llama")["prompt_tokens"].as_integer(), Some(9));

    let b = node("broken");
    assert_eq!(b["status"].as_str(), Some("error"));
    assert_eq!(b["text"].as_str(), Some("The capital is"));
    assert_eq!(b["meta"]["incomplete"].as_str(), Some("true"));
    let broken_msg = format!(
        "model \"tiny\" at {}/v1/chat/completions: the stream ended before [DONE]; the answer is incomplete (connection closed after 254 bytes)",
        broken.url
    );
    assert_eq!(b["error"].as_str(), Some(broken_msg.as_str()));
    assert!(
        stdout.contains(&format!("broken / England: error: {broken_msg}")),
        "{stdout}"
    );

    let d = node("denied");
    assert_eq!(d["status"].as_str(), Some("error"));
    let denied_msg = format!(
        "model \"tiny\" at {}/v1/chat/completions: authentication failed (HTTP 401 Unauthorized): invalid_request_error: Incorrect API key provided: [redacted]; check the key in $PROMPTLOOM_CANARY_KEY",
        denied.url
    );
    assert_eq!(d["error"].as_str(), Some(denied_msg.as_str()));

    // The model identity is recorded, without the key.
    assert_eq!(s["models"]["ok"]["backend"].as_str(), Some("openai"));
    assert_eq!(
        s["models"]["ok"]["base_url"].as_str(),
        Some(format!("{}/v1", london.url).as_str())
    );
    assert_eq!(s["models"]["claude"]["backend"].as_str(), Some("anthropic"));

    // Every server saw the key, the right way.
    assert_eq!(
        london.seen()[0].header("authorization"),
        Some(format!("Bearer {key}"))
    );
    assert_eq!(anthropic.seen()[0].header("x-api-key"), Some(key.clone()));
    assert_eq!(limited.seen().len(), 2);

    // The canary is nowhere the user or a file can see it.
    let mut outputs = vec![stdout.clone(), stderr.clone()];
    for fmt in ["jsonl", "csv", "md"] {
        let e = sb.run(&["export", out.to_str().unwrap(), "--format", fmt]);
        assert!(e.status.success(), "{fmt}: {}", text(&e.stderr));
        outputs.push(text(&e.stdout));
    }
    let written = files(sb.dir.path());
    assert!(
        written.iter().any(|p| p.ends_with("promptloom.log")),
        "no log among {written:?}"
    );
    for p in &written {
        let bytes = std::fs::read(p).unwrap();
        assert!(
            !text(&bytes).contains(&key),
            "the key leaked into {}",
            p.display()
        );
    }
    for (i, t) in outputs.iter().enumerate() {
        assert!(!t.contains(&key), "the key leaked into output {i}:\n{t}");
    }
}

#[cfg(unix)]
#[test]
fn a_key_in_a_world_readable_config_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let key = canary();
    let sb = Sandbox::new(&format!(
        "default_model = \"gpt\"\n[models.gpt]\nbackend = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"gpt-4o\"\napi_key = \"{key}\"\n"
    ));
    let cfg = sb.path("config.toml");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    sb.write(
        "p.toml",
        "title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"hi\"\n",
    );
    let o = sb.run(&["run", "p.toml"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert_eq!(
        err.trim(),
        format!(
            "error: {}: [models.gpt] has an api_key, but this file's permissions are 0644, so other users can read the key; run `chmod 600 {}` or use api_key_env instead",
            cfg.display(),
            cfg.display()
        )
    );
    assert!(!err.contains(&key));
    // At 0600 it is accepted (and the request fails for an unrelated reason: nothing listens).
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = sb.run(&["run", "p.toml"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("connection refused"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn an_unset_key_variable_fails_the_request_saying_which() {
    let sb = Sandbox::new(
        "default_model = \"gpt\"\n[models.gpt]\nbackend = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"gpt-4o\"\napi_key_env = \"PROMPTLOOM_TEST_UNSET_KEY\"\n",
    );
    sb.write(
        "p.toml",
        "title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"hi\"\n",
    );
    let o = sb
        .command()
        .env_remove("PROMPTLOOM_TEST_UNSET_KEY")
        .args(["run", "p.toml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stdout).contains("a / default: error: model \"gpt\" takes its API key from the environment variable PROMPTLOOM_TEST_UNSET_KEY (api_key_env), which is not set"),
        "{}",
        text(&o.stdout)
    );
}

/// A chunk with its token probabilities, as OpenAI and llama-server stream them.
fn chunk_with_logprobs(text: &str, lp: f64, alts: &[(&str, f64)]) -> String {
    let top: Vec<serde_json::Value> = alts
        .iter()
        .map(|(t, l)| serde_json::json!({"token": t, "logprob": l, "bytes": t.as_bytes()}))
        .collect();
    serde_json::json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0,
        "delta": {"content": text},
        "logprobs": {"content": [{"token": text, "logprob": lp, "bytes": text.as_bytes(), "top_logprobs": top}]},
        "finish_reason": null}]})
    .to_string()
}

#[test]
fn token_probabilities_cost_and_approximate_counts_from_an_openai_server() {
    let srv = Server::start(vec![Reply::sse(
        &[
            &chunk_with_logprobs("Lon", -0.1, &[("Lon", -0.1), ("Par", -2.4)]),
            &chunk_with_logprobs("don", -0.02, &[("don", -0.02), ("g", -4.0)]),
            &chunk_with_logprobs(".", -0.7, &[("!", -0.6), (".", -0.7)]),
            // No usage chunk: the counts are estimated and marked.
            "[DONE]",
        ],
        5,
    )]);
    let config = [
        "default_model = \"ok\"\n".to_string(),
        model(
            "ok",
            "openai",
            &format!("{}/v1", srv.url),
            "price = { input = 2.0, output = 10.0 }",
        ),
    ]
    .concat();
    let sb = Sandbox::new(&config);
    let prompt = [
        "title = \"logprobs\"\n[defaults]\nlogprobs = 2\n".to_string(),
        variant("ok", "ok"),
        "[[case]]\nvars = { country = \"England\" }\nexpect = { any = [\"London\"] }\n".to_string(),
    ]
    .concat();
    let prompt = sb.write("p.toml", &prompt);
    let out = sb.path("s.toml");
    let o = sb
        .command()
        .env("PROMPTLOOM_CANARY_KEY", canary())
        .args([
            "run",
            prompt.to_str().unwrap(),
            "--json",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    // Asked for, the OpenAI way.
    let body = srv.seen()[0].json();
    assert_eq!(body["logprobs"], true);
    assert_eq!(body["top_logprobs"], 2);

    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let r = &j["results"][0];
    assert_eq!(r["text"], "London.");
    let toks = r["logprobs"].as_array().unwrap();
    assert_eq!(toks.len(), 3);
    let joined: String = toks.iter().map(|t| t["token"].as_str().unwrap()).collect();
    assert_eq!(joined, "London.");
    for t in toks {
        let p = t["logprob"].as_f64().unwrap().exp();
        assert!((0.0..=1.0).contains(&p), "{t}");
        let top = t["top"].as_array().unwrap();
        assert!(
            top.iter().any(|a| a[0] == t["token"]),
            "chosen among the top: {t}"
        );
        let lps: Vec<f64> = top.iter().map(|a| a[1].as_f64().unwrap()).collect();
        assert!(lps.windows(2).all(|w| w[0] >= w[1]), "sorted: {t}");
    }
    // The server sent "!" first with a higher probability: sorted, it stays first.
    assert_eq!(toks[2]["top"][0][0], "!");
    // No usage from the server: estimated, marked, and priced.
    assert_eq!(r["tokens_approx"], true);
    assert_eq!(r["tokens_out"], 3);
    assert!(r["cost_usd"].as_f64().unwrap() > 0.0, "{r}");
    assert!(j["summary"][0]["cost_per_pass_usd"].as_f64().unwrap() > 0.0);

    // Kept beside the session, not in it; the session records the price.
    let side = sb.path("s.toml.logprobs");
    assert!(side.exists());
    let s = parse_toml(&out);
    assert!(!std::fs::read_to_string(&out)
        .unwrap()
        .contains("top_logprobs"));
    assert_eq!(s["prices"]["ok"]["output"].as_float(), Some(10.0));
    assert_eq!(s["node"][0]["meta"]["tokens"].as_str(), Some("approx"));
    assert_eq!(s["node"][0]["sampling"]["logprobs"].as_integer(), Some(2));
}
