//! `[[tool]]` tables: the functions a prompt file offers the model, and what answers a call.
//!
//! ```toml
//! [[tool]]
//! name = "get_current_weather"
//! description = "Get the current weather in a given location"
//! parameters = { type = "object", properties = { location = { type = "string" } }, required = ["location"] }
//! mock = '{"location": "{{location}}", "temperature": 72, "forecast": ["sunny", "windy"]}'
//! ```
//!
//! `parameters` is a JSON Schema, inline or in `schema_file` (JSON, relative to the prompt
//! file). Exactly one of `mock` (a fixed value, or a string template over the call's arguments),
//! `command` (a program: the arguments go to its stdin as JSON, its stdout is the result) or
//! `mcp = "SERVER/TOOL"` (a tool of a configured MCP server) answers a call. A prompt file
//! never runs anything by itself: `command` and `mcp` tools run only when the user's config or
//! `--allow-tools` allows them (checked by the drivers).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::chat::ToolSpec;
use crate::error::InputError;

/// What answers a call to a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ToolAnswer {
    /// This JSON value, whatever the arguments.
    Fixed(serde_json::Value),
    /// This text with `{{arg}}` filled from the call's arguments (strings JSON-escaped, so a
    /// JSON template stays JSON; other values as JSON).
    Template(String),
    /// Run this program (argv) with the arguments as JSON on stdin; stdout is the result.
    Command(Vec<String>),
    /// Call `tool` on the configured MCP server `server`.
    Mcp { server: String, tool: String },
}

impl ToolAnswer {
    pub fn kind(&self) -> &'static str {
        match self {
            ToolAnswer::Fixed(_) | ToolAnswer::Template(_) => "mock",
            ToolAnswer::Command(_) => "command",
            ToolAnswer::Mcp { .. } => "mcp",
        }
    }
}

/// A tool as a prompt file defines it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolDef {
    pub spec: ToolSpec,
    pub answer: ToolAnswer,
}

/// The mock's answer to a call with `args` (an object).
pub(crate) fn render_mock(answer: &ToolAnswer, args: &serde_json::Value) -> Option<String> {
    match answer {
        ToolAnswer::Fixed(v) => Some(v.to_string()),
        ToolAnswer::Template(t) => {
            let vars: BTreeMap<String, String> = args
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| {
                            let text = match v {
                                serde_json::Value::String(s) => {
                                    let quoted = serde_json::Value::String(s.clone()).to_string();
                                    quoted[1..quoted.len() - 1].to_string()
                                }
                                other => other.to_string(),
                            };
                            (k.clone(), text)
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(super::template::render(t, &vars))
        }
        ToolAnswer::Command(_) | ToolAnswer::Mcp { .. } => None,
    }
}

/// A `[[tool]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTool {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    parameters: Option<Spanned<toml::Value>>,
    schema_file: Option<Spanned<String>>,
    mock: Option<Spanned<toml::Value>>,
    command: Option<Spanned<Vec<String>>>,
    mcp: Option<Spanned<String>>,
}

/// A tool name the OpenAI and Anthropic APIs accept: 1-64 of `[A-Za-z0-9_-]`.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn to_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => (*i).into(),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        toml::Value::Boolean(b) => (*b).into(),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        toml::Value::Table(t) => {
            serde_json::Value::Object(t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

/// Validate the `[[tool]]` tables of a prompt file.
pub(super) fn load(
    path: &Path,
    text: &str,
    base_dir: &Path,
    raw: &[Spanned<RawTool>],
) -> Result<Vec<ToolDef>, InputError> {
    let mut out: Vec<ToolDef> = Vec::with_capacity(raw.len());
    for t in raw {
        let rt = t.get_ref();
        let at = |offset: usize, msg: String| InputError::at(path, text, offset, msg);
        let name = rt.name.get_ref().trim().to_string();
        if !valid_name(&name) {
            return Err(at(
                rt.name.span().start,
                format!("tool name {name:?} is not 1-64 letters, digits, '_' or '-'"),
            )
            .with_hint("the model calls a tool by this name; APIs reject other characters"));
        }
        if out.iter().any(|d| d.spec.name == name) {
            return Err(at(
                rt.name.span().start,
                format!("duplicate tool name {name:?}"),
            ));
        }
        let parameters = match (&rt.parameters, &rt.schema_file) {
            (Some(_), Some(f)) => {
                return Err(at(
                    f.span().start,
                    format!("tool {name:?} has both `parameters` and `schema_file`"),
                )
                .with_hint("keep one of them"))
            }
            (Some(p), None) => (to_json(p.get_ref()), p.span().start),
            (None, Some(f)) => {
                let p = base_dir.join(f.get_ref());
                let body = std::fs::read_to_string(&p).map_err(|e| {
                    at(
                        f.span().start,
                        format!("cannot read schema_file {}: {e}", p.display()),
                    )
                    .with_hint("schema_file is relative to the prompt file's folder")
                })?;
                let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| {
                    at(
                        f.span().start,
                        format!("schema_file {} is not JSON: {e}", p.display()),
                    )
                })?;
                (v, f.span().start)
            }
            (None, None) => (
                serde_json::json!({ "type": "object", "properties": {} }),
                rt.name.span().start,
            ),
        };
        let (parameters, params_at) = parameters;
        if parameters.get("type").and_then(|v| v.as_str()) != Some("object") {
            return Err(at(
                params_at,
                format!("tool {name:?}: parameters must be a JSON Schema with type = \"object\""),
            )
            .with_hint("a call's arguments are always an object: { type = \"object\", properties = { ... } }"));
        }
        if let Err(e) = jsonschema::validator_for(&parameters) {
            return Err(at(
                params_at,
                format!("tool {name:?}: parameters are not a valid JSON Schema: {e}"),
            ));
        }
        let answer = match (&rt.mock, &rt.command, &rt.mcp) {
            (Some(m), None, None) => match m.get_ref() {
                toml::Value::String(s) => ToolAnswer::Template(s.clone()),
                other => ToolAnswer::Fixed(to_json(other)),
            },
            (None, Some(c), None) => {
                if c.get_ref().first().is_none_or(|p| p.trim().is_empty()) {
                    return Err(
                        at(c.span().start, format!("tool {name:?}: command is empty"))
                            .with_hint("command = [\"program\", \"arg\", ...]"),
                    );
                }
                ToolAnswer::Command(c.get_ref().clone())
            }
            (None, None, Some(m)) => match m.get_ref().split_once('/') {
                Some((server, tool)) if !server.is_empty() && !tool.is_empty() => ToolAnswer::Mcp {
                    server: server.to_string(),
                    tool: tool.to_string(),
                },
                _ => {
                    return Err(at(
                        m.span().start,
                        format!(
                            "tool {name:?}: mcp = {:?} is not \"SERVER/TOOL\"",
                            m.get_ref()
                        ),
                    )
                    .with_hint("SERVER is an [mcp.SERVER] table of your config.toml"))
                }
            },
            (m, c, p) => {
                let second = [
                    m.as_ref().map(|x| x.span().start),
                    c.as_ref().map(|x| x.span().start),
                    p.as_ref().map(|x| x.span().start),
                ]
                .into_iter()
                .flatten()
                .nth(1)
                .unwrap_or(t.span().start);
                return Err(at(
                    second,
                    format!("tool {name:?} needs exactly one of `mock`, `command` or `mcp`"),
                )
                .with_hint("mock = '{\"temperature\": 72}' answers every call with that text; command = [\"prog\"] runs a program; mcp = \"server/tool\" asks an MCP server"));
            }
        };
        out.push(ToolDef {
            spec: ToolSpec {
                name,
                description: rt.description.clone(),
                parameters,
            },
            answer,
        });
    }
    Ok(out)
}

/// A variant's tool settings as written.
#[derive(Debug)]
pub(super) struct VariantTools<'a> {
    pub tools: &'a [Spanned<String>],
    pub tool_choice: Option<&'a Spanned<String>>,
    pub tool_descriptions: &'a BTreeMap<String, String>,
    pub max_tool_steps: Option<&'a Spanned<usize>>,
}

/// What a variant's tool settings come to: the specs it offers, its tool choice, its step
/// limit.
pub(super) type VariantToolSettings = (
    Vec<ToolSpec>,
    Option<crate::chat::ToolChoice>,
    Option<usize>,
);

/// The specs a variant offers, with its description overrides, checked against the file's
/// tools; the tool choice; the step limit.
pub(super) fn for_variant(
    path: &Path,
    text: &str,
    variant: &str,
    v: &VariantTools<'_>,
    defs: &[ToolDef],
) -> Result<VariantToolSettings, InputError> {
    let known = || {
        if defs.is_empty() {
            "the file has no [[tool]] tables".to_string()
        } else {
            format!(
                "tools: {}",
                defs.iter()
                    .map(|d| d.spec.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    let mut specs = Vec::new();
    for n in v.tools {
        let Some(d) = defs.iter().find(|d| &d.spec.name == n.get_ref()) else {
            return Err(InputError::at(
                path,
                text,
                n.span().start,
                format!("variant {variant:?} offers unknown tool {:?}", n.get_ref()),
            )
            .with_hint(known()));
        };
        let mut spec = d.spec.clone();
        if let Some(desc) = v.tool_descriptions.get(&spec.name) {
            spec.description = desc.clone();
        }
        specs.push(spec);
    }
    if let Some(name) = v
        .tool_descriptions
        .keys()
        .find(|k| !specs.iter().any(|s| &s.name == *k))
    {
        return Err(InputError::plain(
            path,
            format!("variant {variant:?}: tool_descriptions names {name:?}, which the variant does not offer"),
        )
        .with_hint("add it to the variant's tools = [...]"));
    }
    let choice = match v.tool_choice {
        None => None,
        Some(c) => {
            let choice = crate::chat::ToolChoice::parse(c.get_ref());
            if let crate::chat::ToolChoice::Tool(n) = &choice {
                if !specs.iter().any(|s| &s.name == n) {
                    return Err(InputError::at(
                        path,
                        text,
                        c.span().start,
                        format!(
                            "variant {variant:?}: tool_choice {n:?} is not auto, none, required or a tool the variant offers"
                        ),
                    ));
                }
            }
            if specs.is_empty() {
                return Err(InputError::at(
                    path,
                    text,
                    c.span().start,
                    format!("variant {variant:?} sets tool_choice but offers no tools"),
                )
                .with_hint("add tools = [\"NAME\", ...]"));
            }
            Some(choice)
        }
    };
    let steps = match v.max_tool_steps {
        Some(s) if *s.get_ref() == 0 => {
            return Err(InputError::at(
                path,
                text,
                s.span().start,
                format!("variant {variant:?}: max_tool_steps must be at least 1"),
            ))
        }
        Some(s) => Some(*s.get_ref()),
        None => None,
    };
    Ok((specs, choice, steps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_template_mock_fills_arguments_and_stays_json() {
        let a = ToolAnswer::Template(r#"{"location": "{{location}}", "t": {{n}}}"#.into());
        let out = render_mock(&a, &json!({"location": "Boston, \"MA\"", "n": 72})).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v, json!({"location": "Boston, \"MA\"", "t": 72}));
        assert_eq!(
            render_mock(&ToolAnswer::Fixed(json!({"a": 1})), &json!({})).unwrap(),
            r#"{"a":1}"#
        );
        assert!(render_mock(&ToolAnswer::Command(vec!["x".into()]), &json!({})).is_none());
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("get_current_weather"));
        assert!(!valid_name("get weather"));
        assert!(!valid_name(""));
    }
}
