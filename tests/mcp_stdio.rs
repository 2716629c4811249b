//! A real MCP server over stdio: `tests/mcp/weather_server.py`, built on the `mcp` PyPI package
//! (scripts/test.sh installs it in a venv and exports PROMPTLOOM_TEST_MCP_PYTHON). The binary
//! lists the server's tools (`promptloom tools list`) and a prompt file calls one through the
//! tool loop (`promptloom run`, the scripted model making the call); without `allow` the call is
//! refused and the server never runs the tool. The same server over streamable HTTP
//! (`[mcp.NAME] url = …`) on a loopback port is listed and called too.

mod common;

use std::path::{Path, PathBuf};

use common::{parse_toml, text, Sandbox};

/// The Python with the `mcp` package, or None (skipped) outside `make test`.
fn mcp_python() -> Option<PathBuf> {
    match std::env::var("PROMPTLOOM_TEST_MCP_PYTHON") {
        Ok(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ if std::env::var("PROMPTLOOM_REQUIRE_SERVERS").is_ok_and(|v| v == "1") => panic!(
            "PROMPTLOOM_TEST_MCP_PYTHON is not set but PROMPTLOOM_REQUIRE_SERVERS=1: scripts/test.sh should have installed the mcp package"
        ),
        _ => {
            eprintln!(
                "skipped: PROMPTLOOM_TEST_MCP_PYTHON is not set (a Python with the `mcp` package; `make test` installs one)"
            );
            None
        }
    }
}

fn server_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/weather_server.py")
}

/// A config with the scripted model (it calls the weather tool, then answers from the result)
/// and the MCP server, allowed or not.
fn config(python: &Path, call_log: &Path, allow: bool) -> String {
    format!(
        r#"
default_model = "fake"
[models.fake]
backend = "scripted"
reply = "no tool was called"
rules = [
  {{ when = "temperature", reply = "It is 72 degrees in Boston." }},
  {{ when = "not allowed", reply = "I may not look that up." }},
  {{ when = "reported an error", reply = "The weather station is down." }},
  {{ when = "Boston", tool_calls = [ {{ name = "get_current_weather", arguments = '{{"location": "Boston, MA"}}' }} ] }},
  {{ when = "broken", tool_calls = [ {{ name = "fail", arguments = '{{}}' }} ] }},
]

[mcp.weather]
command = {python:?}
args = [{script:?}]
env = {{ WEATHER_CALL_LOG = {log:?} }}
allow = {allow}
"#,
        python = python.display().to_string(),
        script = server_script().display().to_string(),
        log = call_log.display().to_string(),
    )
}

const PROMPT: &str = r#"
title = "MCP weather"

[[tool]]
name = "get_current_weather"
description = "Get the current weather in a given location"
parameters = { type = "object", properties = { location = { type = "string" } }, required = ["location"] }
mcp = "weather/get_current_weather"

[[tool]]
name = "fail"
mcp = "weather/fail"

[[variant]]
name = "v"
template = "{{question}}"
tools = ["get_current_weather", "fail"]

[[case]]
name = "boston"
vars = { question = "What's the weather like in Boston?" }
expect = { tool = "get_current_weather", args = { location = "Boston" } }

[[case]]
name = "broken"
vars = { question = "Is the broken station up?" }
"#;

fn results(session: &Path) -> Vec<(String, String, String)> {
    let s = parse_toml(session);
    s["node"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"].as_str() == Some("tool-result"))
        .map(|n| {
            let meta = n.get("meta").and_then(|m| m.as_table());
            let get = |k: &str| {
                meta.and_then(|m| m.get(k))
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            (
                get("tool"),
                get("source"),
                n["text"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn tools_list_prints_the_servers_tools_as_tool_tables() {
    let Some(python) = mcp_python() else { return };
    let sb = Sandbox::new("");
    let log = sb.path("calls.jsonl");
    std::fs::write(sb.path("config.toml"), config(&python, &log, false)).unwrap();
    let o = sb.run(&["tools", "list"]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", text(&o.stderr));
    assert!(out.contains("# MCP server weather: 2 tools"), "{out}");
    let t: toml::Table = out.parse().unwrap_or_else(|e| panic!("{e}\n{out}"));
    let tools = t["tool"].as_array().unwrap();
    let weather = tools
        .iter()
        .find(|t| t["name"].as_str() == Some("get_current_weather"))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(weather["mcp"].as_str(), Some("weather/get_current_weather"));
    assert_eq!(
        weather["description"].as_str(),
        Some("Get the current weather in a given location")
    );
    assert_eq!(
        weather["parameters"]["required"][0].as_str(),
        Some("location")
    );
    // Listing calls no tool.
    assert!(!log.exists());
    // An unknown server is a clear error.
    let o = sb.run(&["tools", "list", "nope"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("no MCP server \"nope\" in the config (configured: weather)"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn a_prompt_file_calls_an_mcp_tool_only_when_the_config_allows_it() {
    let Some(python) = mcp_python() else { return };
    let sb = Sandbox::new("");
    let log = sb.path("calls.jsonl");
    let prompt = sb.write("p.toml", PROMPT);

    // Not allowed: the call is answered with a refusal and the server never runs the tool.
    std::fs::write(sb.path("config.toml"), config(&python, &log, false)).unwrap();
    let out = sb.path("denied.toml");
    let o = sb.run(&[
        "run",
        prompt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let r = results(&out);
    assert!(
        r.iter().all(|(_, source, text)| source == "not_allowed"
            && text.contains("set allow = true under [mcp.weather]")),
        "{r:?}"
    );
    assert!(!log.exists(), "the tool ran although it was not allowed");

    // Allowed: the server answers, the model's next turn reads the result.
    std::fs::write(sb.path("config.toml"), config(&python, &log, true)).unwrap();
    let out = sb.path("allowed.toml");
    let o = sb.run(&[
        "run",
        prompt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", text(&o.stderr));
    assert!(stdout.contains("It is 72 degrees in Boston."), "{stdout}");
    assert!(stdout.contains("The weather station is down."), "{stdout}");
    let r = results(&out);
    let weather = r
        .iter()
        .find(|(tool, _, _)| tool == "get_current_weather")
        .unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(weather.1, "mcp", "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&weather.2).unwrap();
    assert_eq!(v["location"], "Boston, MA");
    assert_eq!(v["temperature"], "72");
    // The server's error comes back as an error result the model reads.
    let fail = r
        .iter()
        .find(|(tool, _, _)| tool == "fail")
        .unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(fail.1, "error", "{r:?}");
    assert!(fail.2.contains("the tool reported an error"), "{r:?}");
    // The server saw exactly the one weather call, with the model's arguments.
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        [r#"{"location": "Boston, MA", "unit": "fahrenheit"}"#]
    );
}

/// The weather server over streamable HTTP on a free loopback port, stopped when dropped.
struct HttpServer {
    child: std::process::Child,
    url: String,
}

impl HttpServer {
    fn start(python: &Path, call_log: &Path) -> HttpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let child = std::process::Command::new(python)
            .arg(server_script())
            .args(["--http", &port.to_string()])
            .env("WEATHER_CALL_LOG", call_log)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the HTTP MCP server did not listen on {port} within 30 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        HttpServer {
            child,
            url: format!("http://127.0.0.1:{port}/mcp"),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_mcp_server_over_streamable_http_is_listed_and_called() {
    let Some(python) = mcp_python() else { return };
    let sb = Sandbox::new("");
    let log = sb.path("calls.jsonl");
    let server = HttpServer::start(&python, &log);
    // The stdio config with the server swapped for its URL.
    let stdio = config(&python, &log, true);
    let head = stdio
        .split("[mcp.weather]")
        .next()
        .unwrap_or_default()
        .to_string();
    let cfg = format!(
        "{head}[mcp.weather]\nurl = {:?}\nallow = true\n",
        server.url
    );
    std::fs::write(sb.path("config.toml"), cfg).unwrap();
    let o = sb.run(&["tools", "list", "weather"]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", text(&o.stderr));
    assert!(out.contains("# MCP server weather: 2 tools"), "{out}");
    assert!(
        out.contains("mcp = \"weather/get_current_weather\""),
        "{out}"
    );

    let prompt = sb.write("p.toml", PROMPT);
    let session = sb.path("http.toml");
    let o = sb.run(&[
        "run",
        prompt.to_str().unwrap(),
        "--case",
        "boston",
        "--out",
        session.to_str().unwrap(),
    ]);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", text(&o.stderr));
    assert!(stdout.contains("It is 72 degrees in Boston."), "{stdout}");
    let r = results(&session);
    assert!(
        r.iter()
            .any(|(tool, source, t)| tool == "get_current_weather"
                && source == "mcp"
                && t.contains("72")),
        "{r:?}"
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        [r#"{"location": "Boston, MA", "unit": "fahrenheit"}"#]
    );
}
