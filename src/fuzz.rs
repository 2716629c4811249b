//! Fuzz targets: every parser of outside data gets arbitrary bytes and mutated valid files,
//! and must return (an error is fine) without panicking, hanging or overflowing the stack.
//!
//! Runs on stable Rust with proptest. `cargo test` runs a few hundred inputs per target
//! (`PROMPTLOOM_FUZZ_CASES=N` per round, `PROMPTLOOM_FUZZ_SECONDS=S` keeps each target going
//! for S seconds with new seeds every round); `promptloom bench --fuzz SECONDS` runs every
//! target for SECONDS in the shipped binary and prints the inputs each took and the crashes
//! (`scripts/fuzz.sh` calls it). A failure names the smallest input proptest found.
//!
//! Tool calls are covered twice: streamed `tool_calls` / `tool_use` chunks in the SSE and
//! NDJSON targets' seeds, and a target of their own for what happens to a call once it is
//! whole (its arguments parsed, checked against the tool's JSON Schema, a mock filled in,
//! and the case's `expect.tool` check), with the arguments and the schema as the input.

use std::io::Cursor;
use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};

/// How much input a target gets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Inputs per round (a fresh proptest runner, so fresh random seeds, each round).
    pub cases: u32,
    /// Keep starting rounds until this much time has passed (`None`: one round).
    pub time: Option<Duration>,
}

impl Budget {
    /// `PROMPTLOOM_FUZZ_CASES` (default 256) and `PROMPTLOOM_FUZZ_SECONDS` (default: one round).
    #[cfg(test)]
    fn from_env() -> Budget {
        Budget {
            cases: std::env::var("PROMPTLOOM_FUZZ_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(256),
            time: std::env::var("PROMPTLOOM_FUZZ_SECONDS")
                .ok()
                .and_then(|v| v.parse::<f64>().ok())
                .map(Duration::from_secs_f64),
        }
    }
}

/// What one target did.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub name: String,
    /// Inputs tried (that returned, and the failing one if any).
    pub inputs: u64,
    pub elapsed: Duration,
    /// The first crash: proptest's message with the smallest input it shrank to.
    pub crash: Option<String>,
}

/// Every fuzz target, by name.
pub(crate) type Target = (&'static str, fn(&Budget) -> Report);

pub(crate) fn targets() -> Vec<Target> {
    vec![
        ("prompt files", prompt_files),
        ("config", config),
        ("keymaps", keymaps),
        ("themes", themes),
        ("session files (format 1 and 2)", session_files),
        ("journals", journals),
        ("rate stdin lines", rate_lines),
        ("SSE streams (OpenAI, Anthropic)", sse_streams),
        ("NDJSON streams (Ollama)", ndjson_streams),
        ("GGUF headers and tensor tables", gguf_headers),
        ("cases files (csv)", cases_csv),
        ("cases files (jsonl)", cases_jsonl),
        ("cases files (yaml)", cases_yaml),
        ("tool calls (arguments, schemas)", tool_calls),
        ("token-probability sidecars", logprob_sidecars),
    ]
}

/// Run `check` on inputs from `strategy` until the budget is spent or an input panics; a
/// panic is shrunk to the smallest failing input and reported (not re-raised).
fn fuzz<S>(budget: &Budget, name: &str, strategy: S, check: impl Fn(S::Value)) -> Report
where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let start = Instant::now();
    let deadline = budget.time.map(|b| start + b);
    let mut total = 0u64;
    let mut crash = None;
    loop {
        let mut runner = TestRunner::new(RunnerConfig {
            cases: budget.cases,
            failure_persistence: None,
            max_shrink_iters: 2_000,
            ..RunnerConfig::default()
        });
        let result = runner.run(&strategy, |v| {
            check(v);
            Ok::<(), TestCaseError>(())
        });
        if let Err(e) = result {
            crash = Some(format!(
                "fuzz target {name} failed after {total} inputs: {e}"
            ));
            total += 1;
            break;
        }
        total += u64::from(budget.cases);
        match deadline {
            Some(d) if Instant::now() < d => continue,
            _ => break,
        }
    }
    Report {
        name: name.to_string(),
        inputs: total,
        elapsed: start.elapsed(),
        crash,
    }
}

/// Under `cargo test`: run one target with the environment's budget; a crash fails the test.
#[cfg(test)]
fn must_not_crash(target: fn(&Budget) -> Report) {
    let r = target(&Budget::from_env());
    if let Some(c) = r.crash {
        panic!("{c}");
    }
    eprintln!(
        "fuzz {}: {} inputs in {:.1} s, no panic",
        r.name,
        r.inputs,
        r.elapsed.as_secs_f64()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;

    #[test]
    fn fuzz_prompt_files() {
        must_not_crash(prompt_files);
    }
    #[test]
    fn fuzz_config() {
        must_not_crash(config);
    }
    #[test]
    fn fuzz_keymaps() {
        must_not_crash(keymaps);
    }
    #[test]
    fn fuzz_themes() {
        must_not_crash(themes);
    }
    #[test]
    fn fuzz_session_files() {
        must_not_crash(session_files);
    }
    #[test]
    fn fuzz_journals() {
        must_not_crash(journals);
    }
    #[test]
    fn fuzz_rate_lines() {
        must_not_crash(rate_lines);
    }
    #[test]
    fn fuzz_sse_streams() {
        must_not_crash(sse_streams);
    }
    #[test]
    fn fuzz_ndjson_streams() {
        must_not_crash(ndjson_streams);
    }
    #[test]
    fn fuzz_gguf_headers() {
        must_not_crash(gguf_headers);
    }
    #[test]
    fn fuzz_cases_files() {
        must_not_crash(cases_csv);
        must_not_crash(cases_jsonl);
        must_not_crash(cases_yaml);
    }
    #[test]
    fn fuzz_tool_calls() {
        must_not_crash(tool_calls);
    }
    #[test]
    fn fuzz_logprob_sidecars() {
        must_not_crash(logprob_sidecars);
    }

    #[test]
    fn every_target_is_listed_once() {
        let names: std::collections::BTreeSet<&str> = targets().iter().map(|t| t.0).collect();
        assert_eq!(names.len(), targets().len());
        assert_eq!(targets().len(), 15);
    }

    #[test]
    fn a_crash_is_reported_with_its_input_not_raised() {
        // The harness really catches panics: a parser that panics on a 0xFF byte is found.
        let r = fuzz(
            &Budget {
                cases: 256,
                time: None,
            },
            "panics on 0xff",
            prop::collection::vec(any::<u8>(), 0..64),
            |b| assert!(!b.contains(&0xff), "found 0xff"),
        );
        let c = r.crash.expect("the panic is found");
        assert!(c.contains("panics on 0xff") && c.contains("255"), "{c}");
    }

    #[test]
    fn the_embedded_seeds_are_every_shipped_file() {
        for (dir, n) in [
            ("prompts", PROMPT_SEEDS.len()),
            ("themes", THEME_SEEDS.len()),
        ] {
            let on_disk = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
                .unwrap()
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
                .count();
            assert_eq!(
                n, on_disk,
                "add the new {dir}/*.toml to the seed list in fuzz.rs"
            );
        }
    }

    #[test]
    fn mutations_keep_most_of_the_seed() {
        // The structure-aware half really is structure-aware: one edit leaves a prompt file that
        // still parses often enough to reach the validation code.
        let seeds = embedded(PROMPT_SEEDS);
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
fn inputs(mut seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    if seeds.is_empty() {
        seeds.push(Vec::new());
    }
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

/// The shipped prompt files and themes, embedded so the shipped binary has its seeds
/// (a test checks the lists match the folders).
const PROMPT_SEEDS: &[&[u8]] = &[
    include_bytes!("../prompts/capitals.toml"),
    include_bytes!("../prompts/chain-of-thought.toml"),
    include_bytes!("../prompts/few-shot.toml"),
    include_bytes!("../prompts/game-of-24.toml"),
    include_bytes!("../prompts/in-context.toml"),
    include_bytes!("../prompts/local-vs-remote.toml"),
    include_bytes!("../prompts/one-shot.toml"),
    include_bytes!("../prompts/self-critique.toml"),
    include_bytes!("../prompts/tools-weather.toml"),
    include_bytes!("../prompts/tree-of-thoughts.toml"),
    include_bytes!("../prompts/zero-shot-cot.toml"),
    include_bytes!("../prompts/zero-shot-role.toml"),
];
const THEME_SEEDS: &[&[u8]] = &[
    include_bytes!("../themes/dark.toml"),
    include_bytes!("../themes/high-contrast.toml"),
    include_bytes!("../themes/light.toml"),
];

fn embedded(seeds: &[&[u8]]) -> Vec<Vec<u8>> {
    seeds.iter().map(|s| s.to_vec()).collect()
}

fn models() -> Vec<String> {
    vec!["smollm2".into(), "scripted".into()]
}

fn prompt_files(budget: &Budget) -> Report {
    fuzz(
        budget,
        "prompt files",
        inputs(embedded(PROMPT_SEEDS)),
        |b| {
            let t = text(&b);
            if let Ok(p) = crate::prompt::parse(Path::new("p.toml"), &t, &models(), "smollm2") {
                // What loads must render.
                for v in &p.variants {
                    for c in &p.cases {
                        let _ = crate::prompt::render::request(
                            v,
                            &c.vars,
                            &Default::default(),
                            &Default::default(),
                        );
                    }
                }
            }
        },
    )
}

fn config(budget: &Budget) -> Report {
    let seeds = vec![
        include_bytes!("config/default.toml").to_vec(),
        b"default_model = \"llamacpp\"\ntheme = \"light\"\nmax_answer_bytes = 4096\n[models.llamacpp]\nbackend = \"openai\"\nbase_url = \"http://127.0.0.1:8080/v1\"\nmodel = \"smollm2\"\napi_key_env = \"OPENAI_API_KEY\"\nheaders = { x = \"y\" }\ndrop_rejected_params = [\"seed\"]\n[models.s]\nbackend = \"scripted\"\nrules = [{ when = \"a\", reply = \"b\" }]\n".to_vec(),
    ];
    let dirs = crate::config::Dirs {
        config_file: "/nonexistent/c.toml".into(),
        data_dir: "/nonexistent/data".into(),
        state_dir: "/nonexistent/state".into(),
    };
    fuzz(budget, "config", inputs(seeds), |b| {
        let mut c = crate::config::Config::defaults(dirs.clone());
        if c.merge_text(Path::new("c.toml"), &text(&b)).is_ok() {
            let _ = c.validate();
            for m in c.models.values() {
                let _ = c.gguf_path(m);
            }
        }
    })
}

fn keymaps(budget: &Budget) -> Report {
    let seeds = vec![
        include_bytes!("config/keymap.toml").to_vec(),
        b"[normal]\n\"ctrl-r\" = \"rerun\"\n\"g g\" = \"none\"\n\"alt-shift-F12\" = \"quit\"\n"
            .to_vec(),
    ];
    fuzz(budget, "keymaps", inputs(seeds), |b| {
        let mut k = crate::config::keymap::Keymap::defaults();
        let _ = k.merge_text(Path::new("k.toml"), &text(&b));
    })
}

fn themes(budget: &Budget) -> Report {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return no_temp_dir("themes", &e),
    };
    let path = dir.path().join("t.toml");
    let path_str = path.to_string_lossy().into_owned();
    // `inherits` stays in: it may only name built-in themes and siblings in this folder.
    fuzz(budget, "themes", inputs(embedded(THEME_SEEDS)), |b| {
        if std::fs::write(&path, &b).is_ok() {
            for depth in [
                crate::config::theme::ColorDepth::TrueColor,
                crate::config::theme::ColorDepth::None,
            ] {
                let _ = crate::config::theme::Theme::load(&path_str, depth);
            }
        }
    })
}

/// A target that can't start (no temporary folder) is reported as a failure.
fn no_temp_dir(name: &str, e: &std::io::Error) -> Report {
    Report {
        name: name.to_string(),
        inputs: 0,
        elapsed: Duration::ZERO,
        crash: Some(format!(
            "fuzz target {name} could not start: no temporary folder: {e}"
        )),
    }
}

fn session_seeds() -> Vec<Vec<u8>> {
    let s = crate::store::sample::sample_session();
    let mut seeds = Vec::new();
    if let Ok(v2) = crate::store::to_text(&s) {
        seeds.push(v2.into_bytes());
    }
    let mut s1 = s.clone();
    s1.format = 1;
    if let Ok(v1) = toml::to_string(&s1) {
        seeds.push(v1.into_bytes());
    }
    seeds
}

fn session_files(budget: &Budget) -> Report {
    let p = Path::new("s.toml");
    fuzz(
        budget,
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
    )
}

fn journals(budget: &Budget) -> Report {
    let seed = b"{\"kind\":\"rating\",\"seq\":1,\"node\":1,\"stars\":4,\"rater\":\"ann\",\"at\":\"t1\"}\n{\"kind\":\"vote\",\"seq\":2,\"left\":1,\"right\":2,\"outcome\":\"tie\",\"rater\":\"ann\",\"at\":\"t2\"}\n{\"kind\":\"rating\",\"seq\":3,\"node\":2,\"note\":\"n\\u00e9\",\"thumb\":-1,\"rater\":\"b\",\"at\":\"t3\"}\n".to_vec();
    fuzz(budget, "journals", inputs(vec![seed]), |b| {
        let _ = crate::store::journal::parse_journal(Path::new("s.toml.journal"), &b);
    })
}

fn rate_lines(budget: &Budget) -> Report {
    let seeds = vec![
        b"rate node=3 stars=4 thumb=up note=\"short, \\\"quoted\\\"\" rater=ann".to_vec(),
        b"vote left=1 right=2 outcome=both_bad".to_vec(),
        b"compact".to_vec(),
    ];
    fuzz(budget, "rate stdin lines", inputs(seeds), |b| {
        let _ = crate::cmd::rate::parse_line(&text(&b));
    })
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

fn sse_streams(budget: &Budget) -> Report {
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
    // Tool calls as both wire formats stream them: OpenAI's argument deltas split across
    // chunks (two calls, the second by index only), Anthropic's tool_use with input_json_delta.
    let openai_tools: String = [
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_current_weather","arguments":""}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"location\": \"Bos"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ton\"}"}},{"index":1,"id":"call_2","function":{"name":"x","arguments":"{}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        "[DONE]",
    ]
    .iter()
    .map(|p| format!("data: {p}\n\n"))
    .collect();
    let anthropic_tools = concat!(
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_current_weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\": \\\"Bo\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"ston\\\"}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"}}\n\n",
    );
    let seeds = vec![
        openai_stream.into_bytes(),
        anthropic.as_bytes().to_vec(),
        openai_tools.into_bytes(),
        anthropic_tools.as_bytes().to_vec(),
    ];
    fuzz(
        budget,
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
    )
}

fn ndjson_streams(budget: &Budget) -> Report {
    use crate::llm::http::WireParser;
    let seed = concat!(
        "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}\n",
        "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"lo\"},\"done\":false}\n",
        "{\"error\":\"boom\"}\n",
        "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"length\",\"prompt_eval_count\":4,\"eval_count\":2}\n",
    );
    let tools = concat!(
        "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"get_current_weather\",\"arguments\":{\"location\":\"Boston\",\"unit\":\"f\"}}}]},\"done\":false}\n",
        "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\"}\n",
    );
    fuzz(
        budget,
        "NDJSON streams (Ollama)",
        stream_inputs(vec![seed.as_bytes().to_vec(), tools.as_bytes().to_vec()]),
        |(b, cuts)| {
            let mut d = crate::llm::sse::LineDecoder::default();
            let mut lines = Vec::new();
            for p in pieces(&b, &cuts) {
                lines.extend(d.feed(&p));
            }
            lines.extend(d.finish());
            let mut o = crate::llm::ollama::OllamaParser::default();
            let mut steps = Vec::new();
            for l in &lines {
                o.on_payload(None, l, &mut steps);
            }
            let _ = o.on_eof();
        },
    )
}

fn gguf_headers(budget: &Budget) -> Report {
    let seeds = vec![
        crate::llm::gguf::samples::sample_model(),
        crate::llm::gguf::samples::tiny_gguf("llama"),
    ];
    fuzz(
        budget,
        "GGUF headers and tensor tables",
        inputs(seeds),
        |b| {
            let _ = crate::llm::gguf::read_header_from(&mut Cursor::new(&b));
            if let Ok(l) = crate::llm::gguf::read_layout_from(&mut Cursor::new(&b), b.len() as u64)
            {
                // Every tensor the check accepts lies inside the file.
                for t in &l.tensors {
                    assert!(l.data_start + t.offset + t.bytes <= b.len() as u64);
                }
            }
        },
    )
}

fn cases_file(budget: &Budget, ext: &str, seed: &str) -> Report {
    let name = format!("cases files ({ext})");
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return no_temp_dir(&name, &e),
    };
    let path = dir.path().join(format!("cases.{ext}"));
    fuzz(budget, &name, inputs(vec![seed.as_bytes().to_vec()]), |b| {
        if std::fs::write(&path, &b).is_ok() {
            let _ = crate::prompt::cases_file::load(&path);
        }
    })
}

fn cases_csv(budget: &Budget) -> Report {
    cases_file(
        budget,
        "csv",
        "name,country,expect_any,expect_regex\nuk,England,London|london,^L\nfr,\"France, \"\"the\"\"\",Paris,\n,Peru,Lima\\|x,\n",
    )
}

fn cases_jsonl(budget: &Budget) -> Report {
    cases_file(
        budget,
        "jsonl",
        "{\"name\":\"uk\",\"country\":\"England\",\"expect_any\":[\"London\"],\"n\":3}\n{\"turns\":[{\"user\":\"hi\"},{\"assistant\":\"yo\"},{\"user\":\"and?\"}],\"expect_case_sensitive\":true}\n",
    )
}

fn cases_yaml(budget: &Budget) -> Report {
    cases_file(
        budget,
        "yaml",
        "- name: uk\n  country: England\n  expect_any: [London]\n- country: Peru\n  expect_equals: Lima\n  turns:\n    - user: hi\n    - assistant: yo\n    - user: more\n",
    )
}

/// A whole tool call from an untrusted model: its arguments text and (for half the inputs)
/// the tool's parameters schema come from the input. The call is answered as the tool loop
/// answers it (parse, schema check, mock template), and checked as a case's `expect.tool`
/// checks it.
fn tool_calls(budget: &Budget) -> Report {
    use crate::chat::{ToolCall, ToolSpec};
    use crate::prompt::tools::{ToolAnswer, ToolDef};
    use crate::state::tool_loop::{answer_call, Permission};
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "location": {"type": "string", "minLength": 1, "pattern": "^[A-Za-z ,]+$"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true}
        },
        "required": ["location"],
        "additionalProperties": false
    });
    let seeds = vec![
        br#"{"location": "Boston, MA", "unit": "fahrenheit"}"#.to_vec(),
        br#"{"location": "Z\u00fcrich \ud83d\ude00", "days": 3, "tags": ["a", "b"]}"#.to_vec(),
        br#"{"location": {"nested": [1, 2, {"deep": null}]}, "unit": 1e999}"#.to_vec(),
        schema.to_string().into_bytes(),
        br##"{"type": "object", "properties": {"q": {"$ref": "#/definitions/x"}}, "definitions": {"x": {"type": "string", "format": "date-time"}}}"##.to_vec(),
    ];
    let template = ToolAnswer::Template(
        r#"{"location": "{{location}}", "temperature": 72, "unit": "{{unit}}", "forecast": ["sunny", "windy"]}"#.into(),
    );
    fuzz(
        budget,
        "tool calls (arguments, schemas)",
        (inputs(seeds), any::<bool>()),
        |(b, as_schema)| {
            let input = text(&b);
            let (arguments, parameters) = if as_schema {
                let parameters = serde_json::from_str(&input).unwrap_or(serde_json::Value::Null);
                (r#"{"location": "Boston"}"#.to_string(), parameters)
            } else {
                (input, schema.clone())
            };
            let spec = ToolSpec {
                name: "get_current_weather".into(),
                description: String::new(),
                parameters,
            };
            let def = ToolDef {
                spec: spec.clone(),
                answer: template.clone(),
            };
            for name in ["get_current_weather", "unknown_tool"] {
                let call = ToolCall {
                    id: "call_1".into(),
                    name: name.into(),
                    arguments: arguments.clone(),
                };
                let _ = answer_call(
                    &call,
                    std::slice::from_ref(&spec),
                    std::slice::from_ref(&def),
                    |_| Permission::Allowed,
                );
                let expect = crate::eval::expect::Expect {
                    tool: Some("get_current_weather".into()),
                    args: Some(serde_json::json!({"location": "Boston"})),
                    ..Default::default()
                };
                let _ = expect.check_calls(&[call], std::slice::from_ref(&spec));
            }
        },
    )
}

/// The token-probability sidecar (`NAME.toml.logprobs`): a real file of two answers as the
/// seed, decoded and every token and alternative read back.
fn logprob_sidecars(budget: &Budget) -> Report {
    use crate::chat::TokenLogprob;
    use crate::state::logprobs::TokenProbs;
    let answers: Vec<(u64, TokenProbs)> = (0..2u64)
        .map(|seed| {
            let mut p = TokenProbs::default();
            for i in 0..12u64 {
                let k = (i + seed) % 5;
                p.push(&TokenLogprob::new(
                    format!("t{k}é "),
                    -(k as f32) / 3.0,
                    (0..k % 3)
                        .map(|j| (format!("a{j}😀"), -(j as f32) - 0.5))
                        .collect(),
                ));
            }
            (seed + 1, p)
        })
        .collect();
    let seed = crate::store::logprobs::encode(answers.iter().map(|(id, p)| (*id, p)));
    fuzz(
        budget,
        "token-probability sidecars",
        inputs(vec![seed]),
        |b| {
            if let Ok(all) = crate::store::logprobs::decode(&b) {
                for p in all.values() {
                    for t in p.iter() {
                        let _ = (t.prob(), t.text.len(), t.alternative_count());
                        for (alt, lp) in t.alternatives() {
                            let _ = (alt.len(), lp.is_finite());
                        }
                    }
                }
            }
        },
    )
}
