//! The shipped `prompts/tools-weather.toml` through the real binary with the scripted model
//! making the calls: `check` accepts it, `run` answers the calls with the mock, streams the
//! final answers and prints per variant how often the right tool was called with the right
//! arguments.

mod common;

use common::{parse_toml, text, Sandbox};

/// Calls the weather tool for weather questions, answers from the tool's result, and answers
/// the capital question without a tool.
const SCRIPTED: &str = r#"
default_model = "fake"
[models.fake]
backend = "scripted"
reply = "The capital of France is Paris."
rules = [
  { when = "temperature", reply = "It is 72 degrees, sunny and windy." },
  { when = "Boston", tool_calls = [ { name = "get_current_weather", arguments = '{"location": "Boston, MA"}' } ] },
  { when = "Paris right now", tool_calls = [ { name = "get_current_weather", arguments = '{"location": "Paris", "unit": "celsius"}' } ] },
]
"#;

fn shipped() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/tools-weather.toml")
}

#[test]
fn check_accepts_the_shipped_weather_file() {
    let sb = Sandbox::new(SCRIPTED);
    let o = sb.run(&["check", shipped().to_str().unwrap()]);
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
}

#[test]
fn run_prints_the_right_call_rate_per_variant_and_keeps_every_call() {
    let sb = Sandbox::new(SCRIPTED);
    let out = sb.path("s.toml");
    let o = sb.run(&[
        "run",
        shipped().to_str().unwrap(),
        "--model",
        "fake",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", text(&o.stderr));
    assert!(stdout.contains("RIGHT CALLS"), "{stdout}");
    for v in ["terse", "article", "detailed"] {
        let line = stdout
            .lines()
            .rfind(|l| l.starts_with(v))
            .unwrap_or_else(|| panic!("no summary line for {v}:\n{stdout}"));
        assert!(line.contains("2/2 (100%)"), "{line}");
    }
    assert!(
        stdout.contains("It is 72 degrees, sunny and windy."),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"get_current_weather({"location": "Boston, MA"})"#),
        "{stdout}"
    );

    let s = parse_toml(&out);
    let nodes = s["node"].as_array().unwrap();
    // 3 variants x (2 weather cases x 3 nodes + 1 final) + 3 no-tool answers.
    let count = |k: &str| {
        nodes
            .iter()
            .filter(|n| n["kind"].as_str() == Some(k))
            .count()
    };
    assert_eq!(count("tool-call"), 6);
    assert_eq!(count("tool-result"), 6);
    assert_eq!(count("answer"), 6 + 6 + 3);
    let result = nodes
        .iter()
        .find(|n| n["kind"].as_str() == Some("tool-result"))
        .unwrap();
    assert!(result["text"]
        .as_str()
        .unwrap()
        .contains("\"temperature\": \"72\""));
    // The variants offered one tool under three descriptions.
    let descriptions: std::collections::BTreeSet<String> = s["variant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v["sampling"]["tools"][0]["description"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(descriptions.len(), 3);

    // Exported: JSONL rows for calls and results, OpenAI-format transcripts with the calls.
    let o = sb.run(&["export", out.to_str().unwrap(), "--format", "jsonl"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let rows: Vec<serde_json::Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let call = rows.iter().find(|r| r["kind"] == "tool-call").unwrap();
    assert_eq!(call["tool"], "get_current_weather");
    let res = rows.iter().find(|r| r["kind"] == "tool-result").unwrap();
    assert_eq!(res["source"], "mock");
    let o = sb.run(&["export", out.to_str().unwrap(), "--format", "openai"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let lines: Vec<serde_json::Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 9);
    let boston = lines
        .iter()
        .find(|l| l["metadata"]["case"] == "boston")
        .unwrap();
    let msgs = boston["messages"].as_array().unwrap();
    let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "assistant"]);
    assert_eq!(
        msgs[2]["tool_calls"][0]["function"]["name"],
        "get_current_weather"
    );
    assert_eq!(boston["tools"][0]["type"], "function");
    let o = sb.run(&["export", out.to_str().unwrap(), "--format", "md"]);
    assert!(
        text(&o.stdout).contains("Result of `get_current_weather` (mock, "),
        "{}",
        text(&o.stdout)
    );
}

/// `stop_on` and `samples` with tools: a turn that ends in calls is not cut on its text (the
/// first turn here says "check", which the case's `none` refuses), and the stability line
/// groups each sample's last turn, the one its checks ran on.
#[test]
fn stop_on_waits_for_the_last_turn_and_samples_group_the_final_answers() {
    let sb = Sandbox::new(
        r#"
default_model = "fake"
[models.fake]
backend = "scripted"
reply = "No idea."
rules = [
  { when = "temperature", reply = "It is 72 degrees, sunny and windy." },
  { when = "Boston", reply = "Let me check.", tool_calls = [ { name = "get_current_weather", arguments = '{"location": "Boston"}' } ] },
]
"#,
    );
    let p = sb.write(
        "p.toml",
        r#"title = "stop_on with tools"
[defaults]
stop_on = "first_fail"
samples = 2

[[tool]]
name = "get_current_weather"
description = "Get the current weather in a given location"
parameters = { type = "object", properties = { location = { type = "string" } }, required = ["location"] }
mock = '{"location": "{{location}}", "temperature": "72"}'

[[variant]]
name = "weather"
template = "What's the weather like in Boston?"
tools = ["get_current_weather"]

[[case]]
name = "boston"
expect = { tool = "get_current_weather", none = ["check"], any = ["72"] }
"#,
    );
    let out = sb.path("s.toml");
    let o = sb.run(&[
        "run",
        p.to_str().unwrap(),
        "--model",
        "fake",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", text(&o.stderr));
    let s = parse_toml(&out);
    let nodes = s["node"].as_array().unwrap();
    let calls = nodes
        .iter()
        .filter(|n| n["kind"].as_str() == Some("tool-call"))
        .count();
    assert_eq!(calls, 2, "{stdout}");
    assert!(
        nodes
            .iter()
            .all(|n| n.get("finish_reason").and_then(|r| r.as_str()) != Some("checks_decided")),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.contains("2 samples"))
        .unwrap_or_else(|| panic!("no stability line:\n{stdout}"));
    assert!(line.contains("passed 2/2"), "{line}");
    assert!(line.contains("72 degrees"), "{line}");
}
