//! Fuzz targets: every parser of outside data gets arbitrary bytes and mutated valid files,
//! and must return (an error is fine) without panicking, hanging or overflowing the stack.
//!
//! Runs on stable Rust with proptest. `cargo test` runs a few hundred inputs per target;
//! `PROMPTLOOM_FUZZ_CASES=N` sets the count per round and `PROMPTLOOM_FUZZ_SECONDS=S` keeps
//! each target going for S seconds (new seeds every round); `scripts/fuzz.sh SECONDS` does
//! that for every target. A failure prints the smallest input proptest found.
//!
//! Not covered: tool-call JSON (no such parser exists yet).

use std::io::Cursor;
use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};

/// Inputs per round (`PROMPTLOOM_FUZZ_CASES`, default 256).
fn cases() -> u32 {
    std::env::var("PROMPTLOOM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// How long each target runs (`PROMPTLOOM_FUZZ_SECONDS`; default: one round).
fn budget() -> Option<Duration> {
    std::env::var("PROMPTLOOM_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
}

/// Run `check` on inputs from `strategy` until the budget is spent; panic with the smallest
/// failing input if any input panics. Prints how many inputs were tried.
fn fuzz<S>(name: &str, strategy: S, check: impl Fn(S::Value))
where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let start = Instant::now();
    let deadline = budget().map(|b| start + b);
    let mut total = 0u64;
    loop {
        let mut runner = TestRunner::new(RunnerConfig {
            cases: cases(),
            failure_persistence: None,
            max_shrink_iters: 2_000,
            ..RunnerConfig::default()
        });
        let result = runner.run(&strategy, |v| {
            check(v);
            Ok::<(), TestCaseError>(())
        });
        if let Err(e) = result {
            panic!("fuzz target {name} failed after {total} inputs: {e}");
        }
        total += u64::from(cases());
        match deadline {
            Some(d) if Instant::now() < d => continue,
            _ => break,
        }
    }
    eprintln!(
        "fuzz {name}: {total} inputs in {:.1} s, no panic",
        start.elapsed().as_secs_f64()
    );
}

/// One edit to a seed file.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(prop::sample::Index, u8),
    SetByte(prop::sample::Index, u8),
    Insert(prop::sample::Index, Vec<u8>),
    InsertToken(prop::sample::Index, prop::sample::Index),
    Delete(prop::sample::Index, usize),
    Truncate(prop::sample::Index),
    /// Copy a slice of the input to another place (repeats tables, lines, tensors).
    Duplicate(prop::sample::Index, usize, prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let idx = any::<prop::sample::Index>;
    prop_oneof![
        (idx(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (idx(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        (idx(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (idx(), idx()).prop_map(|(i, t)| Mutation::InsertToken(i, t)),
        (idx(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        idx().prop_map(Mutation::Truncate),
        (idx(), 1usize..256, idx()).prop_map(|(i, n, at)| Mutation::Duplicate(i, n, at)),
    ]
}

/// Tokens that mean something to the formats under test.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "=",
    ",",
    ".",
    "#",
    "\n",
    "\r\n",
    "\r",
    "\\",
    "\\u",
    "\\U0010FFFF",
    "\\uD800",
    "0",
    "-1",
    "1e999",
    "nan",
    "inf",
    "true",
    "99999999999999999999",
    "18446744073709551616",
    "1979-05-27T07:32:00Z",
    "null",
    ":",
    "data: ",
    "event: ",
    "\n\n",
    "[DONE]",
    "{{",
    "}}",
    "{{x}}",
    "é",
    "😀",
    "\u{0}",
    "\u{1b}[2J",
    "format = 1",
    "format = 2",
    "[[node]]",
    "[[message]]",
    "[[variant]]",
    "[[case]]",
    "[models.x]",
    "backend = \"local\"",
    "\"seq\":",
    "\"kind\":\"rating\"",
    "inherits = ",
];

fn apply(seed: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in muts {
        let len = b.len();
        match m {
            Mutation::FlipBit(i, bit) if len > 0 => b[i.index(len)] ^= 1 << bit,
            Mutation::SetByte(i, v) if len > 0 => b[i.index(len)] = *v,
            Mutation::Insert(i, bytes) => {
                let at = i.index(len + 1);
                b.splice(at..at, bytes.iter().copied());
            }
            Mutation::InsertToken(i, t) => {
                let at = i.index(len + 1);
                let tok = TOKENS[t.index(TOKENS.len())].as_bytes();
                b.splice(at..at, tok.iter().copied());
            }
            Mutation::Delete(i, n) if len > 0 => {
                let at = i.index(len);
                let end = (at + n).min(len);
                b.drain(at..end);
            }
            Mutation::Truncate(i) => b.truncate(i.index(len + 1)),
            Mutation::Duplicate(i, n, at) if len > 0 => {
                let from = i.index(len);
                let end = (from + n).min(len);
                let piece: Vec<u8> = b[from..end].to_vec();
                let to = at.index(len + 1);
                b.splice(to..to, piece);
            }
            _ => {}
        }
    }
    b
}

/// Arbitrary bytes, or one of `seeds` mutated a few times (structure-aware: most edits keep
/// most of the structure, so the parser gets past its first checks).
fn inputs(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..512),
        4 => (0..n, prop::collection::vec(mutation(), 1..8))
            .prop_map(move |(i, muts)| apply(&seeds[i], &muts)),
    ]
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn repo_files(dir: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .filter_map(|p| std::fs::read(p).ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(!out.is_empty(), "no seed files in {}", dir.display());
    out.sort();
    out
}

fn models() -> Vec<String> {
    vec!["smollm2".into(), "scripted".into()]
}

#[test]
fn fuzz_prompt_files() {
    fuzz("prompt files", inputs(repo_files("prompts")), |b| {
        let t = text(&b);
        if let Ok(p) = crate::prompt::parse(Path::new("p.toml"), &t, &models(), "smollm2") {
            // What loads must render.
            for v in &p.variants {
                for c in &p.cases {
                    let _ = crate::prompt::render::request(v, &c.vars);
                }
            }
        }
    });
}

#[test]
fn fuzz_config() {
    let seeds = vec![
        include_bytes!("config/default.toml").to_vec(),
        b"default_model = \"llamacpp\"\ntheme = \"light\"\nmax_answer_bytes = 4096\n[models.llamacpp]\nbackend = \"openai\"\nbase_url = \"http://127.0.0.1:8080/v1\"\nmodel = \"smollm2\"\napi_key_env = \"OPENAI_API_KEY\"\nheaders = { x = \"y\" }\ndrop_rejected_params = [\"seed\"]\n[models.s]\nbackend = \"scripted\"\nrules = [{ when = \"a\", reply = \"b\" }]\n".to_vec(),
    ];
    let dirs = crate::config::Dirs {
        config_file: "/nonexistent/c.toml".into(),
        data_dir: "/nonexistent/data".into(),
        state_dir: "/nonexistent/state".into(),
    };
    fuzz("config", inputs(seeds), |b| {
        let mut c = crate::config::Config::defaults(dirs.clone());
        if c.merge_text(Path::new("c.toml"), &text(&b)).is_ok() {
            let _ = c.validate();
            for m in c.models.values() {
                let _ = c.gguf_path(m);
            }
        }
    });
}

#[test]
fn fuzz_keymaps() {
    let seeds = vec![
        include_bytes!("config/keymap.toml").to_vec(),
        b"[normal]\n\"ctrl-r\" = \"rerun\"\n\"g g\" = \"none\"\n\"alt-shift-F12\" = \"quit\"\n"
            .to_vec(),
    ];
    fuzz("keymaps", inputs(seeds), |b| {
        let mut k = crate::config::keymap::Keymap::defaults();
        let _ = k.merge_text(Path::new("k.toml"), &text(&b));
    });
}

#[test]
fn fuzz_themes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    let path_str = path.to_string_lossy().into_owned();
    fuzz("themes", inputs(repo_files("themes")), |b| {
        // `inherits` may name other files: keep it to the built-in themes.
        let t = text(&b).replace("inherits", "inherits_");
        std::fs::write(&path, t).unwrap();
        for depth in [
            crate::config::theme::ColorDepth::TrueColor,
            crate::config::theme::ColorDepth::None,
        ] {
            let _ = crate::config::theme::Theme::load(&path_str, depth);
        }
    });
}

fn session_seeds() -> Vec<Vec<u8>> {
    let s = crate::store::tests::sample_session();
    let v2 = crate::store::to_text(&s).unwrap().into_bytes();
    let mut s1 = s.clone();
    s1.format = 1;
    let v1 = toml::to_string(&s1).unwrap().into_bytes();
    vec![v2, v1]
}

#[test]
fn fuzz_session_files() {
    let p = Path::new("s.toml");
    fuzz(
        "session files (format 1 and 2)",
        inputs(session_seeds()),
        |b| {
            if let Ok(s) = crate::store::parse(p, &text(&b)) {
                // Whatever loads must save and load again.
                if let Ok(t) = crate::store::to_text(&s) {
                    if let Err(e) = crate::store::parse(p, &t) {
                        panic!("a loaded session saved to a file that does not load: {e}\n{t}");
                    }
                }
                let _ =
                    crate::eval::leaderboard::build(&s, crate::eval::leaderboard::GroupBy::Variant);
            }
        },
    );
}

#[test]
fn fuzz_journals() {
    let seed = b"{\"kind\":\"rating\",\"seq\":1,\"node\":1,\"stars\":4,\"rater\":\"ann\",\"at\":\"t1\"}\n{\"kind\":\"vote\",\"seq\":2,\"left\":1,\"right\":2,\"outcome\":\"tie\",\"rater\":\"ann\",\"at\":\"t2\"}\n{\"kind\":\"rating\",\"seq\":3,\"node\":2,\"note\":\"n\\u00e9\",\"thumb\":-1,\"rater\":\"b\",\"at\":\"t3\"}\n".to_vec();
    fuzz("journals", inputs(vec![seed]), |b| {
        let _ = crate::store::journal::parse_journal(Path::new("s.toml.journal"), &b);
    });
}

#[test]
fn fuzz_rate_lines() {
    let seeds = vec![
        b"rate node=3 stars=4 thumb=up note=\"short, \\\"quoted\\\"\" rater=ann".to_vec(),
        b"vote left=1 right=2 outcome=both_bad".to_vec(),
        b"compact".to_vec(),
    ];
    fuzz("rate stdin lines", inputs(seeds), |b| {
        let _ = crate::cmd::rate::parse_line(&text(&b));
    });
}

/// Feed `bytes` in pieces cut at `cuts`.
fn pieces(bytes: &[u8], cuts: &[prop::sample::Index]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for p in points.into_iter().chain([bytes.len()]) {
        out.push(bytes[start..p].to_vec());
        start = p;
    }
    out
}

fn stream_inputs(
    seeds: Vec<Vec<u8>>,
) -> impl Strategy<Value = (Vec<u8>, Vec<prop::sample::Index>)> {
    (
        inputs(seeds),
        prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    )
}

#[test]
fn fuzz_sse_streams() {
    use crate::llm::http::WireParser;
    let openai = [
        r#"{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"content":"lo é😀"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
        "[DONE]",
    ];
    let anthropic = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
        ": ping\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":1}}\n\n",
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let openai_stream: String = openai
        .iter()
        .map(|p| format!("data: {p}\r\n\r\n"))
        .collect();
    let seeds = vec![openai_stream.into_bytes(), anthropic.as_bytes().to_vec()];
    fuzz(
        "SSE streams (OpenAI, Anthropic)",
        stream_inputs(seeds),
        |(b, cuts)| {
            let mut d = crate::llm::sse::SseDecoder::default();
            let mut events = Vec::new();
            for p in pieces(&b, &cuts) {
                events.extend(d.feed(&p));
            }
            events.extend(d.finish());
            let mut o = crate::llm::openai::OpenAiParser::default();
            let mut a = crate::llm::anthropic::AnthropicParser::default();
            let mut steps = Vec::new();
            for ev in &events {
                o.on_payload(ev.event.as_deref(), &ev.data, &mut steps);
                a.on_payload(ev.event.as_deref(), &ev.data, &mut steps);
            }
            let _ = (o.on_eof(), a.on_eof());
        },
    );
}

#[test]
fn fuzz_ndjson_streams() {
    use crate::llm::http::WireParser;
    let seed = concat!(
        "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}\n",
        "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"lo\"},\"done\":false}\n",
        "{\"error\":\"boom\"}\n",
        "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"length\",\"prompt_eval_count\":4,\"eval_count\":2}\n",
    );
    fuzz(
        "NDJSON streams (Ollama)",
        stream_inputs(vec![seed.as_bytes().to_vec()]),
        |(b, cuts)| {
            let mut d = crate::llm::sse::LineDecoder::default();
            let mut lines = Vec::new();
            for p in pieces(&b, &cuts) {
                lines.extend(d.feed(&p));
            }
            lines.extend(d.finish());
            let mut o = crate::llm::ollama::OllamaParser;
            let mut steps = Vec::new();
            for l in &lines {
                o.on_payload(None, l, &mut steps);
            }
            let _ = o.on_eof();
        },
    );
}

#[test]
fn fuzz_gguf_headers() {
    let seeds = vec![
        crate::llm::gguf::tests::sample_model(),
        crate::llm::gguf::tests::tiny_gguf("llama"),
    ];
    fuzz("GGUF headers and tensor tables", inputs(seeds), |b| {
        let _ = crate::llm::gguf::read_header_from(&mut Cursor::new(&b));
        if let Ok(l) = crate::llm::gguf::read_layout_from(&mut Cursor::new(&b), b.len() as u64) {
            // Every tensor the check accepts lies inside the file.
            for t in &l.tensors {
                assert!(l.data_start + t.offset + t.bytes <= b.len() as u64);
            }
        }
    });
}

#[test]
fn mutations_keep_most_of_the_seed() {
    // The structure-aware half really is structure-aware: one edit leaves a prompt file that
    // still parses often enough to reach the validation code.
    let seeds = repo_files("prompts");
    let mut runner = TestRunner::deterministic();
    let strat = (0..seeds.len(), prop::collection::vec(mutation(), 1..2));
    let mut parsed = 0;
    for _ in 0..200 {
        let (i, muts) = strat.new_tree(&mut runner).unwrap().current();
        let b = apply(&seeds[i], &muts);
        if crate::prompt::parse(Path::new("p.toml"), &text(&b), &models(), "smollm2").is_ok() {
            parsed += 1;
        }
    }
    assert!(
        parsed > 20,
        "only {parsed} of 200 mutated prompt files parsed"
    );
}

#[test]
fn fuzz_cases_files() {
    let dir = tempfile::tempdir().unwrap();
    for (ext, seed) in [
        (
            "csv",
            "name,country,expect_any,expect_regex\nuk,England,London|london,^L\nfr,\"France, \"\"the\"\"\",Paris,\n,Peru,Lima\\|x,\n",
        ),
        (
            "jsonl",
            "{\"name\":\"uk\",\"country\":\"England\",\"expect_any\":[\"London\"],\"n\":3}\n{\"turns\":[{\"user\":\"hi\"},{\"assistant\":\"yo\"},{\"user\":\"and?\"}],\"expect_case_sensitive\":true}\n",
        ),
        (
            "yaml",
            "- name: uk\n  country: England\n  expect_any: [London]\n- country: Peru\n  expect_equals: Lima\n  turns:\n    - user: hi\n    - assistant: yo\n    - user: more\n",
        ),
    ] {
        let path = dir.path().join(format!("cases.{ext}"));
        fuzz(&format!("cases files ({ext})"), inputs(vec![seed.as_bytes().to_vec()]), |b| {
            std::fs::write(&path, &b).unwrap();
            let _ = crate::prompt::cases_file::load(&path);
        });
    }
}
