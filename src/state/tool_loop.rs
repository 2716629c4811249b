//! The tool loop, one machine for both front ends: given a finished turn that made tool
//! calls, decide how each call is answered, record the calls and results as nodes, and build
//! the next turn's request, until the model answers without a call or `max_tool_steps` rounds
//! have been answered.
//!
//! Pure: it never runs anything. A call answered by a `command` or an MCP server comes back as
//! [`Answer::Run`]; the driver (`cmd/run.rs` headless, the playground's driver) runs it and
//! hands the text back through [`record_result`]. Mocks, refusals and bad calls (unknown tool,
//! arguments that are not JSON or do not match the schema) are answered here, as a result the
//! model reads, so it can correct itself on the next turn.
//!
//! In the session tree a round looks like this (each a child of the one above):
//! `answer (finish_reason = tool_calls)` → `tool-call` → `tool-result` → `tool-call` →
//! `tool-result` → `answer` (the next turn, whose request holds the calls and results).

use std::time::Duration;

use crate::chat::{ChatMessage, ChatRequest, ToolCall, ToolSpec, DEFAULT_MAX_TOOL_STEPS};
use crate::prompt::tools::{render_mock, ToolAnswer, ToolDef};
use crate::state::session::{Node, NodeKind, NodeStatus, Session};

/// Whether the user lets a `command` or `mcp` tool run (decided by the driver from the config
/// and `--allow-tools`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Permission {
    Allowed,
    /// Allowed once the user approves this call (`confirm = true`).
    Confirm,
    /// Not allowed, and why (shown in the pane and given to the model).
    Denied(String),
}

/// Something outside promptloom that answers a call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum External {
    /// Run `argv` with `stdin` (the arguments as JSON).
    Command { argv: Vec<String>, stdin: String },
    /// Call `tool` on MCP server `server` with `args` (an object).
    Mcp {
        server: String,
        tool: String,
        args: serde_json::Value,
    },
}

/// Where a result came from, as recorded in `meta.source` of a `tool-result` node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Mock,
    Command,
    Mcp,
    /// The user edited the result and re-ran from there.
    Edited,
    /// The call was refused (not allowed, or denied by the user).
    NotAllowed,
    /// The call was bad (unknown tool, bad arguments) or running it failed.
    Error,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Mock => "mock",
            Source::Command => "command",
            Source::Mcp => "mcp",
            Source::Edited => "edited",
            Source::NotAllowed => "not_allowed",
            Source::Error => "error",
        }
    }
}

/// How one call is answered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// Answered already: the text the model gets.
    Ready { content: String, source: Source },
    /// The driver runs this and reports back.
    Run(External),
    /// The driver asks the user first (approve: run it; deny: [`denied_by_user`]).
    Confirm(External),
}

/// The text a refused call is answered with.
pub(crate) fn not_allowed(tool: &str, why: &str) -> String {
    format!("error: tool {tool:?} is not allowed to run: {why}")
}

/// The answer when the user denies a confirmed call.
pub(crate) fn denied_by_user(tool: &str) -> Answer {
    Answer::Ready {
        content: not_allowed(tool, "the user denied this call"),
        source: Source::NotAllowed,
    }
}

fn error(content: String) -> Answer {
    Answer::Ready {
        content: format!("error: {content}"),
        source: Source::Error,
    }
}

/// Decide how `call` is answered. `offered` are the tools of the request the call came from;
/// `defs` the prompt file's tools; `permission` says whether an external tool may run.
pub(crate) fn answer_call(
    call: &ToolCall,
    offered: &[ToolSpec],
    defs: &[ToolDef],
    permission: impl Fn(&ToolDef) -> Permission,
) -> Answer {
    let (Some(spec), Some(def)) = (
        offered.iter().find(|s| s.name == call.name),
        defs.iter().find(|d| d.spec.name == call.name),
    ) else {
        let names: Vec<&str> = offered.iter().map(|s| s.name.as_str()).collect();
        return error(format!(
            "there is no tool {:?}; the tools are: {}",
            call.name,
            if names.is_empty() {
                "(none)".to_string()
            } else {
                names.join(", ")
            }
        ));
    };
    let args = match call.parsed_args() {
        Ok(a) => a,
        Err(e) => return error(format!("{e}; send the arguments as one JSON object")),
    };
    if let Err(e) = spec.check_args(&args) {
        return error(format!(
            "the arguments do not match the tool's parameters: {e}"
        ));
    }
    if let Some(content) = render_mock(&def.answer, &args) {
        return Answer::Ready {
            content,
            source: Source::Mock,
        };
    }
    let external = match &def.answer {
        ToolAnswer::Command(argv) => External::Command {
            argv: argv.clone(),
            stdin: args.to_string(),
        },
        ToolAnswer::Mcp { server, tool } => External::Mcp {
            server: server.clone(),
            tool: tool.clone(),
            args,
        },
        ToolAnswer::Fixed(_) | ToolAnswer::Template(_) => {
            return error("internal: a mock without a result".into())
        }
    };
    match permission(def) {
        Permission::Allowed => Answer::Run(external),
        Permission::Confirm => Answer::Confirm(external),
        Permission::Denied(why) => Answer::Ready {
            content: not_allowed(&call.name, &why),
            source: Source::NotAllowed,
        },
    }
}

/// What to do after a turn ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Next {
    /// No calls: this turn is the final answer.
    Done,
    /// Answer the calls (record each with [`record_call`]), then start [`next_request`].
    Answer,
    /// The model is still calling tools after `max_tool_steps` answered rounds: the node gets
    /// this error and the conversation stops.
    StepLimit(String),
}

/// After a turn that made `calls`, with `rounds_answered` rounds of calls already answered in
/// this conversation.
pub(crate) fn after_turn(
    request: &ChatRequest,
    calls: &[ToolCall],
    rounds_answered: usize,
) -> Next {
    if calls.is_empty() {
        return Next::Done;
    }
    let max = request
        .sampling
        .max_tool_steps
        .unwrap_or(DEFAULT_MAX_TOOL_STEPS);
    if rounds_answered >= max {
        return Next::StepLimit(format!(
            "the model was still calling tools after max_tool_steps = {max} rounds (last: {}); stopped",
            calls
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Next::Answer
}

/// How many rounds of calls were answered above `node` (the `answer` turns with calls among
/// its ancestors).
pub(crate) fn rounds_above(session: &Session, node: u64) -> usize {
    let mut rounds = 0;
    let mut cur = session.node(node).and_then(|n| n.parent);
    while let Some(id) = cur {
        let Some(n) = session.node(id) else { break };
        if n.kind == NodeKind::ToolCall
            && n.parent
                .and_then(|p| session.node(p))
                .is_some_and(|p| p.kind == NodeKind::Answer)
        {
            rounds += 1;
        }
        cur = n.parent;
    }
    rounds
}

/// The request for the turn after `prev`, whose model wrote `text` and made the calls that
/// `results` answer (in call order).
pub(crate) fn next_request(
    prev: &ChatRequest,
    text: &str,
    results: &[(ToolCall, String)],
) -> ChatRequest {
    let mut req = prev.clone();
    req.messages.push(ChatMessage::assistant_calls(
        text,
        results.iter().map(|(c, _)| c.clone()).collect(),
    ));
    for (c, content) in results {
        req.messages
            .push(ChatMessage::tool_result(c, content.clone()));
    }
    req
}

/// Add a `tool-call` node for `call` under `parent` (done at once: the call is complete).
pub(crate) fn record_call(session: &mut Session, parent: u64, call: &ToolCall, at: String) -> u64 {
    let (model, request) = session
        .node(parent)
        .map(|p| (p.model.clone(), p.request.clone()))
        .unwrap_or_else(|| (String::new(), empty_request()));
    let n = session.push_child(
        parent,
        NodeKind::ToolCall,
        &model,
        request,
        at,
        &[("tool", call.name.clone()), ("call_id", call.id.clone())],
    );
    n.status = NodeStatus::Done;
    n.text = call.arguments.clone();
    n.id
}

/// Add the `tool-result` node answering the call node `call_node`.
pub(crate) fn record_result(
    session: &mut Session,
    call_node: u64,
    content: &str,
    source: Source,
    latency: Duration,
    at: String,
) -> u64 {
    let (model, request, tool, id) = match session.node(call_node) {
        Some(c) => (
            c.model.clone(),
            c.request.clone(),
            c.meta.get("tool").cloned().unwrap_or_default(),
            c.meta.get("call_id").cloned().unwrap_or_default(),
        ),
        None => (String::new(), empty_request(), String::new(), String::new()),
    };
    let n = session.push_child(
        call_node,
        NodeKind::ToolResult,
        &model,
        request,
        at,
        &[
            ("tool", tool),
            ("call_id", id),
            ("source", source.as_str().to_string()),
        ],
    );
    n.status = NodeStatus::Done;
    n.text = content.to_string();
    n.duration_ms = Some(latency.as_millis() as u64);
    n.id
}

/// The call a `tool-call` node records.
pub(crate) fn call_of(n: &Node) -> Option<ToolCall> {
    (n.kind == NodeKind::ToolCall).then(|| ToolCall {
        id: n.meta.get("call_id").cloned().unwrap_or_default(),
        name: n.meta.get("tool").cloned().unwrap_or_default(),
        arguments: n.text.clone(),
    })
}

/// Every call made on the way to `node` (its ancestors' `tool-call` nodes, oldest first), for
/// the case's `tool` check.
pub(crate) fn calls_to(session: &Session, node: u64) -> Vec<ToolCall> {
    let mut out = Vec::new();
    let mut cur = Some(node);
    while let Some(id) = cur {
        let Some(n) = session.node(id) else { break };
        out.extend(call_of(n));
        cur = n.parent;
    }
    out.reverse();
    out
}

/// The calls a turn made, with their results, in call order: read back from the children of
/// an `answer` node with finish reason `tool_calls` (the chain `call → result → call → …`).
/// Where a call has several results (an edited result is a sibling of the first): the one
/// that is `toward` or above it (the conversation a pane shows), else the newest.
pub(crate) fn round_toward(
    session: &Session,
    answer: u64,
    toward: Option<u64>,
) -> Vec<(u64, ToolCall, Option<u64>)> {
    let mut path = Vec::new();
    let mut cur = toward;
    while let Some(id) = cur {
        if path.contains(&id) {
            break;
        }
        path.push(id);
        cur = session.node(id).and_then(|n| n.parent);
    }
    let mut out = Vec::new();
    let mut parent = answer;
    while let Some(call) = session
        .nodes
        .iter()
        .find(|n| n.parent == Some(parent) && n.kind == NodeKind::ToolCall)
    {
        let results: Vec<u64> = session
            .nodes
            .iter()
            .filter(|n| n.parent == Some(call.id) && n.kind == NodeKind::ToolResult)
            .map(|r| r.id)
            .collect();
        let result = results
            .iter()
            .copied()
            .find(|r| path.contains(r))
            .or_else(|| results.last().copied());
        if let Some(c) = call_of(call) {
            out.push((call.id, c, result));
        }
        match result {
            Some(r) => parent = r,
            None => break,
        }
    }
    out
}

fn empty_request() -> ChatRequest {
    ChatRequest {
        messages: Vec::new(),
        sampling: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{Role, Sampling};
    use serde_json::json;

    fn weather() -> ToolDef {
        ToolDef {
            spec: ToolSpec {
                name: "get_current_weather".into(),
                description: "Get the weather".into(),
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "location": {"type": "string"},
                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
                    },
                    "required": ["location"]
                }),
            },
            answer: ToolAnswer::Template(
                r#"{"location": "{{location}}", "temperature": 72}"#.into(),
            ),
        }
    }

    fn shell() -> ToolDef {
        ToolDef {
            spec: ToolSpec {
                name: "shell".into(),
                description: String::new(),
                parameters: json!({"type": "object"}),
            },
            answer: ToolAnswer::Command(vec!["touch".into(), "/tmp/x".into()]),
        }
    }

    fn call(name: &str, args: &str) -> ToolCall {
        ToolCall {
            id: "c1".into(),
            name: name.into(),
            arguments: args.into(),
        }
    }

    fn allowed(_: &ToolDef) -> Permission {
        Permission::Allowed
    }

    #[test]
    fn a_mock_answers_with_the_template_filled() {
        let defs = [weather()];
        let offered = [defs[0].spec.clone()];
        let a = answer_call(
            &call("get_current_weather", r#"{"location": "Boston"}"#),
            &offered,
            &defs,
            allowed,
        );
        assert_eq!(
            a,
            Answer::Ready {
                content: r#"{"location": "Boston", "temperature": 72}"#.into(),
                source: Source::Mock
            }
        );
    }

    #[test]
    fn bad_calls_are_answered_with_errors_the_model_can_read() {
        let defs = [weather(), shell()];
        let offered = [defs[0].spec.clone()];
        let err = |a: Answer| match a {
            Answer::Ready {
                content,
                source: Source::Error,
            } => content,
            other => panic!("{other:?}"),
        };
        let unknown = err(answer_call(
            &call("get_weather", "{}"),
            &offered,
            &defs,
            allowed,
        ));
        assert!(unknown.contains("no tool \"get_weather\""), "{unknown}");
        assert!(unknown.contains("get_current_weather"), "{unknown}");
        // A tool the file defines but this request did not offer is unknown too.
        assert!(
            err(answer_call(&call("shell", "{}"), &offered, &defs, allowed)).contains("no tool")
        );
        let broken = err(answer_call(
            &call("get_current_weather", r#"{"location": "Bos"#),
            &offered,
            &defs,
            allowed,
        ));
        assert!(broken.contains("not JSON"), "{broken}");
        let invalid = err(answer_call(
            &call("get_current_weather", r#"{"unit": "kelvin"}"#),
            &offered,
            &defs,
            allowed,
        ));
        assert!(invalid.contains("location"), "{invalid}");
        assert!(invalid.contains("kelvin"), "{invalid}");
    }

    #[test]
    fn external_tools_follow_the_permission() {
        let defs = [shell()];
        let offered = [defs[0].spec.clone()];
        let c = call("shell", r#"{"cmd": "ls"}"#);
        let run = External::Command {
            argv: vec!["touch".into(), "/tmp/x".into()],
            stdin: r#"{"cmd":"ls"}"#.into(),
        };
        assert_eq!(
            answer_call(&c, &offered, &defs, allowed),
            Answer::Run(run.clone())
        );
        assert_eq!(
            answer_call(&c, &offered, &defs, |_| Permission::Confirm),
            Answer::Confirm(run)
        );
        assert_eq!(
            answer_call(&c, &offered, &defs, |_| Permission::Denied(
                "not in config".into()
            )),
            Answer::Ready {
                content: "error: tool \"shell\" is not allowed to run: not in config".into(),
                source: Source::NotAllowed
            }
        );
    }

    fn req(max: Option<usize>) -> ChatRequest {
        ChatRequest {
            messages: vec![ChatMessage::new(Role::User, "Weather in Boston?")],
            sampling: Sampling {
                max_tool_steps: max,
                tools: vec![weather().spec],
                ..Default::default()
            },
        }
    }

    #[test]
    fn the_loop_stops_at_max_tool_steps() {
        let c = [call("get_current_weather", "{}")];
        assert_eq!(after_turn(&req(None), &[], 0), Next::Done);
        assert_eq!(after_turn(&req(None), &c, 4), Next::Answer);
        assert!(
            matches!(after_turn(&req(None), &c, 5), Next::StepLimit(e) if e.contains("max_tool_steps = 5"))
        );
        assert!(matches!(
            after_turn(&req(Some(1)), &c, 1),
            Next::StepLimit(_)
        ));
    }

    #[test]
    fn rounds_are_nodes_and_the_next_request_carries_calls_and_results() {
        let mut s = Session::new("t", "now".into(), None);
        s.nodes.push(Node::start(
            1,
            None,
            NodeKind::Answer,
            "v",
            "c",
            "m",
            req(None),
            "now".into(),
        ));
        let c1 = call("get_current_weather", r#"{"location": "Boston"}"#);
        let mut c2 = call("get_current_weather", r#"{"location": "Paris"}"#);
        c2.id = "c2".into();
        let k1 = record_call(&mut s, 1, &c1, "now".into());
        let r1 = record_result(
            &mut s,
            k1,
            "72",
            Source::Mock,
            Duration::from_millis(3),
            "now".into(),
        );
        let k2 = record_call(&mut s, r1, &c2, "now".into());
        let r2 = record_result(
            &mut s,
            k2,
            "72 too",
            Source::Mock,
            Duration::ZERO,
            "now".into(),
        );
        let round = round_toward(&s, 1, None);
        assert_eq!(
            round,
            vec![(k1, c1.clone(), Some(r1)), (k2, c2.clone(), Some(r2))]
        );
        assert_eq!(s.node(r1).unwrap().duration_ms, Some(3));
        assert_eq!(s.node(r1).unwrap().meta["source"], "mock");
        let next = next_request(
            &req(None),
            "Let me look.",
            &[(c1.clone(), "72".into()), (c2.clone(), "72 too".into())],
        );
        assert_eq!(next.messages.len(), 4);
        assert_eq!(next.messages[1].tool_calls, vec![c1.clone(), c2.clone()]);
        assert_eq!(next.messages[2].tool_result.as_ref().unwrap().call_id, "c1");
        assert_eq!(next.messages[3].content, "72 too");
        // The next turn hangs under the last result and sees both calls above it.
        let turn2 = s
            .push_child(r2, NodeKind::Answer, "m", next, "now".into(), &[])
            .id;
        assert_eq!(calls_to(&s, turn2), vec![c1.clone(), c2.clone()]);
        assert_eq!(rounds_above(&s, turn2), 1);
        // The second result edited: a sibling. The round toward the old turn keeps the old
        // result; toward the edited one, or with no path, the edit.
        let edited = record_result(
            &mut s,
            k2,
            "-5",
            Source::Edited,
            Duration::ZERO,
            "now".into(),
        );
        assert_eq!(round_toward(&s, 1, Some(turn2))[1].2, Some(r2));
        assert_eq!(round_toward(&s, 1, Some(edited))[1].2, Some(edited));
        assert_eq!(round_toward(&s, 1, None)[1].2, Some(edited));
        assert_eq!(round_toward(&s, 1, Some(turn2))[0].2, Some(r1));
    }
}
