//! Tool calls through the real binary against the scripted loopback server: the OpenAI wire
//! format (`tools`, streamed `tool_calls`, `tool` results on the next request) and the tool
//! loop of `promptloom run` (mock results, bad calls, a model that never stops calling,
//! `command` tools that the config does not allow).

mod common;
mod remote_server;

use common::{parse_toml, text, Sandbox};
use remote_server::{chunk, Reply, Server};
use serde_json::json;

fn config(url: &str) -> String {
    format!(
        "default_model = \"srv\"\n[models.srv]\nbackend = \"openai\"\nbase_url = \"{url}/v1\"\nmodel = \"tiny\"\nmax_retries = 0\n"
    )
}

const WEATHER_TOOL: &str = r#"
[[tool]]
name = "get_current_weather"
description = "Get the current weather in a given location"
parameters = { type = "object", properties = { location = { type = "string" }, unit = { type = "string", enum = ["celsius", "fahrenheit"] } }, required = ["location"] }
mock = '{"location": "{{location}}", "temperature": "72", "forecast": ["sunny", "windy"]}'
"#;

fn prompt(extra_variant: &str, expect: &str) -> String {
    format!(
        "title = \"tools\"\n[defaults]\ntemperature = 0.0\n{WEATHER_TOOL}\n[[variant]]\nname = \"v\"\ntemplate = \"{{{{q}}}}\"\ntools = [\"get_current_weather\"]\n{extra_variant}\n[[case]]\nname = \"boston\"\nvars = {{ q = \"Weather in Boston and Paris?\" }}\nexpect = {expect}\n"
    )
}

/// A chunk whose delta carries `tool_calls`.
fn calls_chunk(calls: serde_json::Value) -> String {
    json!({"choices": [{"index": 0, "delta": {"tool_calls": calls}, "finish_reason": null}]})
        .to_string()
}

fn finish_chunk(reason: &str) -> String {
    json!({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}).to_string()
}

/// `payloads` as an SSE body written one byte at a time.
fn bytewise(payloads: &[String]) -> Reply {
    let body: Vec<u8> = payloads
        .iter()
        .flat_map(|p| format!("data: {p}\n\n").into_bytes())
        .collect();
    let parts: Vec<Vec<u8>> = body.iter().map(|b| vec![*b]).collect();
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    Reply::stream("text/event-stream", &refs, 0)
}

fn run(
    sb: &Sandbox,
    prompt: &std::path::Path,
    extra: &[&str],
) -> (std::process::Output, toml::Table) {
    let out = sb.path("s.toml");
    let mut args = vec![
        "run",
        prompt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = sb.run(&args);
    let s = parse_toml(&out);
    (o, s)
}

fn kinds(s: &toml::Table) -> Vec<String> {
    s["node"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap().to_string())
        .collect()
}

fn nodes_of<'a>(s: &'a toml::Table, kind: &str) -> Vec<&'a toml::Table> {
    s["node"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"].as_str() == Some(kind))
        .map(|n| n.as_table().unwrap())
        .collect()
}

#[test]
fn two_calls_split_at_every_byte_are_answered_by_the_mock_and_the_answer_follows() {
    let turn1 = [
        calls_chunk(
            json!([{"index": 0, "id": "call_b", "type": "function", "function": {"name": "get_current_weather", "arguments": ""}}]),
        ),
        calls_chunk(json!([{"index": 0, "function": {"arguments": "{\"location\": \"Bos"}}])),
        calls_chunk(
            json!([{"index": 1, "id": "call_p", "type": "function", "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Paris\", \"unit\": \"celsius\"}"}}]),
        ),
        calls_chunk(json!([{"index": 0, "function": {"arguments": "ton, MA\"}"}}])),
        finish_chunk("tool_calls"),
        "[DONE]".to_string(),
    ];
    let server = Server::start(vec![
        bytewise(&turn1),
        Reply::sse(
            &[
                &chunk("It is 72 and sunny "),
                &chunk("in Boston."),
                "[DONE]",
            ],
            0,
        ),
    ]);
    let sb = Sandbox::new(&config(&server.url));
    let p = sb.write(
        "p.toml",
        &prompt(
            "tool_choice = \"auto\"",
            "{ tool = \"get_current_weather\", args = { location = \"Boston\" }, any = [\"72\"] }",
        ),
    );
    let (o, s) = run(&sb, &p, &[]);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", text(&o.stderr));
    assert!(stdout.contains("RIGHT CALLS"), "{stdout}");
    assert!(stdout.contains("1/1 (100%)"), "{stdout}");
    assert_eq!(
        kinds(&s),
        [
            "answer",
            "tool-call",
            "tool-result",
            "tool-call",
            "tool-result",
            "answer"
        ]
    );
    let results = nodes_of(&s, "tool-result");
    assert_eq!(
        results[0]["text"].as_str(),
        Some(r#"{"location": "Boston, MA", "temperature": "72", "forecast": ["sunny", "windy"]}"#)
    );
    assert_eq!(results[0]["meta"]["source"].as_str(), Some("mock"));
    assert_eq!(results[1]["meta"]["call_id"].as_str(), Some("call_p"));
    let answers = nodes_of(&s, "answer");
    assert_eq!(answers[0]["finish_reason"].as_str(), Some("tool_calls"));
    assert_eq!(
        answers[1]["text"].as_str(),
        Some("It is 72 and sunny in Boston.")
    );

    // What went over the wire.
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let first = seen[0].json();
    assert_eq!(first["tools"][0]["function"]["name"], "get_current_weather");
    assert_eq!(
        first["tools"][0]["function"]["parameters"]["required"],
        json!(["location"])
    );
    assert_eq!(first["tool_choice"], "auto");
    let second = seen[1].json();
    let msgs = second["messages"].as_array().unwrap();
    let assistant = &msgs[msgs.len() - 3];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(assistant["tool_calls"][0]["id"], "call_b");
    assert_eq!(
        assistant["tool_calls"][0]["function"]["arguments"],
        "{\"location\": \"Boston, MA\"}"
    );
    assert_eq!(assistant["tool_calls"][1]["id"], "call_p");
    assert_eq!(msgs[msgs.len() - 2]["role"], "tool");
    assert_eq!(msgs[msgs.len() - 2]["tool_call_id"], "call_b");
    assert!(msgs[msgs.len() - 1]["content"]
        .as_str()
        .unwrap()
        .contains("Paris"));
}

#[test]
fn unknown_tools_and_broken_arguments_get_errors_the_model_reads() {
    let turn1 = [
        calls_chunk(json!([
            {"index": 0, "id": "c0", "function": {"name": "get_weather", "arguments": "{}"}},
            {"index": 1, "id": "c1", "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Bos"}},
            {"index": 2, "id": "c2", "function": {"name": "get_current_weather", "arguments": "{\"unit\": \"kelvin\"}"}}
        ])),
        finish_chunk("tool_calls"),
        "[DONE]".to_string(),
    ];
    let server = Server::start(vec![
        Reply::sse(&turn1.iter().map(String::as_str).collect::<Vec<_>>(), 0),
        Reply::sse(&[&chunk("Sorry."), "[DONE]"], 0),
    ]);
    let sb = Sandbox::new(&config(&server.url));
    let p = sb.write(
        "p.toml",
        &prompt(
            "",
            "{ tool = \"get_current_weather\", args = { location = \"Boston\" } }",
        ),
    );
    let (o, s) = run(&sb, &p, &["--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["summary"][0]["tool_expected"], 1);
    assert_eq!(report["summary"][0]["tool_right"], 0);
    assert_eq!(
        report["results"][0]["tool_calls"].as_array().unwrap().len(),
        3
    );
    let results = nodes_of(&s, "tool-result");
    let texts: Vec<&str> = results
        .iter()
        .map(|r| r["text"].as_str().unwrap())
        .collect();
    assert!(
        texts[0].starts_with("error: there is no tool \"get_weather\""),
        "{texts:?}"
    );
    assert!(texts[1].contains("not JSON"), "{texts:?}");
    assert!(
        texts[2].contains("do not match") && texts[2].contains("kelvin"),
        "{texts:?}"
    );
    assert!(results
        .iter()
        .all(|r| r["meta"]["source"].as_str() == Some("error")));
    // The errors went back to the model as tool results.
    let second = server.seen()[1].json();
    let tool_msgs: Vec<&serde_json::Value> = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .collect();
    assert_eq!(tool_msgs.len(), 3);
    assert!(tool_msgs[0]["content"]
        .as_str()
        .unwrap()
        .contains("get_current_weather"));
}

#[test]
fn a_model_that_never_stops_calling_is_stopped_at_max_tool_steps() {
    let turn = [
        calls_chunk(
            json!([{"index": 0, "id": "c", "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Boston\"}"}}]),
        ),
        finish_chunk("tool_calls"),
        "[DONE]".to_string(),
    ];
    let server = Server::start(vec![Reply::sse(
        &turn.iter().map(String::as_str).collect::<Vec<_>>(),
        0,
    )]);
    let sb = Sandbox::new(&config(&server.url));
    let p = sb.write(
        "p.toml",
        &prompt("max_tool_steps = 2", "{ tool = \"get_current_weather\" }"),
    );
    let (o, s) = run(&sb, &p, &[]);
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    // Two rounds answered, the third turn's calls refused.
    assert_eq!(server.seen().len(), 3);
    let answers = nodes_of(&s, "answer");
    assert_eq!(answers.len(), 3);
    let last = answers[2];
    assert_eq!(last["status"].as_str(), Some("error"));
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("max_tool_steps = 2"),
        "{last:?}"
    );
    assert!(stdout.contains("max_tool_steps = 2"), "{stdout}");
}

#[test]
fn a_command_tool_runs_only_when_allowed() {
    let call = [
        calls_chunk(
            json!([{"index": 0, "id": "c", "function": {"name": "touch_marker", "arguments": "{\"name\": \"x\"}"}}]),
        ),
        finish_chunk("tool_calls"),
        "[DONE]".to_string(),
    ];
    let replies = || {
        vec![
            Reply::sse(&call.iter().map(String::as_str).collect::<Vec<_>>(), 0),
            Reply::sse(&[&chunk("Done."), "[DONE]"], 0),
        ]
    };
    let server = Server::start(replies());
    let sb = Sandbox::new(&config(&server.url));
    let marker = sb.path("marker");
    let p = sb.write(
        "p.toml",
        &format!(
            "title = \"cmd\"\n[[tool]]\nname = \"touch_marker\"\nparameters = {{ type = \"object\", properties = {{ name = {{ type = \"string\" }} }} }}\ncommand = [\"sh\", \"-c\", \"cat > '{}'; echo made it\"]\n[[variant]]\nname = \"v\"\ntemplate = \"go\"\ntools = [\"touch_marker\"]\n",
            marker.display()
        ),
    );
    let (o, s) = run(&sb, &p, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!marker.exists(), "a command the config does not allow ran");
    let r = nodes_of(&s, "tool-result")[0].clone();
    assert_eq!(r["meta"]["source"].as_str(), Some("not_allowed"));
    assert!(
        r["text"]
            .as_str()
            .unwrap()
            .contains("[tools.touch_marker] allow = true"),
        "{r:?}"
    );

    let server = Server::start(replies());
    std::fs::write(sb.path("config.toml"), config(&server.url)).unwrap();
    let (o, s) = run(&sb, &p, &["--allow-tools"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "{\"name\":\"x\"}"
    );
    let r = nodes_of(&s, "tool-result")
        .into_iter()
        .find(|r| r["meta"]["source"].as_str() == Some("command"))
        .cloned()
        .unwrap();
    assert_eq!(r["text"].as_str(), Some("made it\n"));
}
