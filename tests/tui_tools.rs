//! Tool calls in the playground, with the real binary in tmux and the scripted model making
//! the calls: the call block appears with the mock's result, the final answer streams below
//! it, a result can be edited and re-run from there (a sibling), and a `command` tool the
//! config marks `confirm = true` waits for approve/deny; denied, its program never runs.

mod common;

use std::time::Duration;

use common::tmux::{field, meta, nodes, session_file, Tmux};
use common::Sandbox;

const CONFIG: &str = r#"
default_model = "fake"
[models.fake]
backend = "scripted"
reply = "No tool for that."
rules = [
  { when = "temperature", reply = "Final: it is {prompt}" },
  { when = "MARKER-RESULT", reply = "Final: the command said {prompt}" },
  { when = "not allowed", reply = "Final: the tool was refused." },
  { when = "Boston", tool_calls = [ { name = "get_current_weather", arguments = '{"location": "Boston"}' } ] },
  { when = "touch it", tool_calls = [ { name = "touch_marker", arguments = '{}' } ] },
]
delay_ms = 10

[tools.touch_marker]
allow = true
confirm = true
"#;

fn prompt(marker: &std::path::Path) -> String {
    format!(
        r#"title = "Tools"
[[tool]]
name = "get_current_weather"
description = "Weather"
parameters = {{ type = "object", properties = {{ location = {{ type = "string" }} }}, required = ["location"] }}
mock = '{{"location": "{{{{location}}}}", "temperature": "72"}}'

[[tool]]
name = "touch_marker"
parameters = {{ type = "object" }}
command = ["sh", "-c", "touch '{}'; echo MARKER-RESULT"]

[[variant]]
name = "weather"
template = "{{{{q}}}}"
tools = ["get_current_weather", "touch_marker"]

[[case]]
name = "boston"
vars = {{ q = "Weather in Boston?" }}
expect = {{ tool = "get_current_weather", args = {{ location = "Boston" }} }}

[[case]]
name = "touch"
vars = {{ q = "Please touch it." }}
"#,
        marker.display()
    )
}

#[test]
fn a_call_block_shows_the_mock_result_and_the_answer_streams_below() {
    let sb = Sandbox::new(CONFIG);
    let marker = sb.path("marker");
    sb.write("prompts/tools.toml", &prompt(&marker));
    let tm = Tmux::start(&sb, &["prompts/tools.toml"]);
    tm.wait_for("to run.", Duration::from_secs(20));
    tm.keys(&["Enter"]);
    let screen = tm.wait_for("Final: it is", Duration::from_secs(20));
    assert!(screen.contains("tool get_current_weather"), "{screen}");
    assert!(screen.contains("\"location\": \"Boston\""), "{screen}");
    assert!(screen.contains("result (mock, 0 ms)"), "{screen}");
    assert!(screen.contains("\"temperature\": \"72\""), "{screen}");
    tm.wait_for("✓ 1/1", Duration::from_secs(10));

    // Select the call, edit its result, re-run from there.
    tm.keys(&["f"]);
    tm.wait_for("▶ tool get_current_weather", Duration::from_secs(5));
    tm.keys(&["M"]);
    tm.wait_for("Tool result", Duration::from_secs(5));
    tm.keys(&["C-u"]);
    tm.keys(&["-l", r#"{"temperature": "-5", "forecast": "snow"}"#]);
    tm.keys(&["Enter"]);
    let screen = tm.wait_for("snow", Duration::from_secs(10));
    let screen = if screen.contains("Final: it is {\"temperature\": \"-5\"") {
        screen
    } else {
        tm.wait_for(
            "Final: it is {\"temperature\": \"-5\"",
            Duration::from_secs(10),
        )
    };
    assert!(screen.contains("result (edited, 0 ms)"), "{screen}");

    tm.keys(&["q"]);
    tm.wait_exit(Duration::from_secs(10));
    let ns = nodes(&session_file(&sb));
    let kinds: Vec<&str> = ns.iter().map(|n| field(n, "kind")).collect();
    assert_eq!(
        kinds,
        [
            "answer",
            "tool-call",
            "tool-result",
            "answer",
            "tool-result",
            "answer"
        ],
        "{ns:#?}"
    );
    // The edited result is a sibling of the mock's, and the new answer hangs under it.
    assert_eq!(ns[4]["parent"].as_integer(), ns[1]["id"].as_integer());
    assert_eq!(meta(&ns[4], "source"), Some("edited"));
    assert_eq!(ns[5]["parent"].as_integer(), ns[4]["id"].as_integer());
    assert!(field(&ns[5], "text").contains("-5"), "{:?}", ns[5]);
}

#[test]
fn a_confirmed_command_waits_for_approval_and_a_denied_one_never_runs() {
    let sb = Sandbox::new(CONFIG);
    let marker = sb.path("marker");
    sb.write("prompts/tools.toml", &prompt(&marker));
    let tm = Tmux::start(&sb, &["prompts/tools.toml"]);
    tm.wait_for("to run.", Duration::from_secs(20));
    tm.keys(&["]"]);
    tm.wait_for("case touch", Duration::from_secs(5));
    tm.keys(&["Enter"]);
    let screen = tm.wait_for("run tool touch_marker?", Duration::from_secs(20));
    assert!(screen.contains("Y: approve, x: deny"), "{screen}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!marker.exists(), "the command ran before it was approved");
    tm.keys(&["x"]);
    let screen = tm.wait_for("Final: the tool was refused.", Duration::from_secs(10));
    assert!(screen.contains("result (not_allowed, 0 ms)"), "{screen}");
    assert!(!marker.exists(), "a denied command ran");

    // Run again and approve: now it runs.
    tm.keys(&["R"]);
    tm.wait_for("run tool touch_marker?", Duration::from_secs(20));
    tm.keys(&["Y"]);
    tm.wait_for("Final: the command said", Duration::from_secs(20));
    assert!(marker.exists(), "an approved command did not run");
    tm.keys(&["q"]);
    tm.wait_exit(Duration::from_secs(10));
    let ns = nodes(&session_file(&sb));
    let sources: Vec<&str> = ns
        .iter()
        .filter(|n| field(n, "kind") == "tool-result")
        .filter_map(|n| meta(n, "source"))
        .collect();
    assert_eq!(sources, ["not_allowed", "command"]);
}
