//! `promptloom tools list`: the tools of the MCP servers in the config, each printed as a
//! `[[tool]]` table a prompt file can use as it is (name, description, the server's JSON
//! Schema as `parameters`, `mcp = "SERVER/TOOL"`).
//!
//! Listing starts the server (stdio) or connects to it (HTTP): the user asked for it by name or
//! by running this, so it needs no `allow`; calls from a prompt file still do.

use std::process::ExitCode;

use crate::config::Config;
use crate::tool_run::mcp::{self, McpTool};

/// Options of `promptloom tools`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ToolsAction {
    /// List the tools of the configured MCP servers (all of them, or SERVER's) as `[[tool]]`
    /// tables for a prompt file.
    List {
        /// One server of the config's `[mcp.NAME]` tables.
        server: Option<String>,
    },
}

/// A server's tool as a `[[tool]]` table. A schema TOML can't hold (a JSON `null`) is left
/// out, with a comment saying so.
fn tool_table(server: &str, t: &McpTool) -> String {
    let mut table = toml::Table::new();
    table.insert("name".into(), toml::Value::String(t.name.clone()));
    if !t.description.is_empty() {
        table.insert(
            "description".into(),
            toml::Value::String(t.description.clone()),
        );
    }
    let mut note = String::new();
    match toml::Value::try_from(&t.input_schema) {
        Ok(v) => {
            table.insert("parameters".into(), v);
        }
        Err(_) => {
            note = "# parameters: the server's schema has null values TOML can't write; put it in a schema_file\n".into();
        }
    }
    table.insert(
        "mcp".into(),
        toml::Value::String(format!("{server}/{}", t.name)),
    );
    let mut doc = toml::Table::new();
    doc.insert(
        "tool".into(),
        toml::Value::Array(vec![toml::Value::Table(table)]),
    );
    let body = toml::to_string(&doc).unwrap_or_default();
    format!("{note}{body}")
}

pub(crate) async fn run(config: Config, action: ToolsAction) -> anyhow::Result<ExitCode> {
    let ToolsAction::List { server } = action;
    let names: Vec<String> = match server {
        Some(s) => vec![s],
        None => config.mcp.keys().cloned().collect(),
    };
    if names.is_empty() {
        eprintln!("no MCP servers are configured: add [mcp.NAME] with command (and args) or url to the config");
        return Ok(ExitCode::FAILURE);
    }
    let mut failed = false;
    for name in &names {
        match mcp::list(&config, name).await {
            Ok(tools) => {
                println!("# MCP server {name}: {} tools", tools.len());
                for t in &tools {
                    println!("{}", tool_table(name, t));
                }
            }
            Err(e) => {
                eprintln!("error: {}", crate::sanitize::visible(&e));
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_tool_is_a_tool_table_a_prompt_file_accepts() {
        let t = McpTool {
            name: "get_current_weather".into(),
            description: "Weather \"now\"\x1b[2J".into(),
            input_schema: serde_json::json!({
                "type": "object",
                "properties": {"location": {"type": "string"}},
                "required": ["location"]
            }),
        };
        let text = tool_table("weather", &t);
        assert!(!text.contains('\x1b'), "{text}");
        let back: toml::Table = text.parse().unwrap();
        let tool = &back["tool"][0];
        assert_eq!(tool["name"].as_str(), Some("get_current_weather"));
        assert_eq!(tool["mcp"].as_str(), Some("weather/get_current_weather"));
        assert_eq!(tool["description"].as_str(), Some("Weather \"now\"\x1b[2J"));
        assert_eq!(tool["parameters"]["required"][0].as_str(), Some("location"));
        let with_null = McpTool {
            input_schema: serde_json::json!({"type": "object", "default": null}),
            ..t
        };
        let text = tool_table("weather", &with_null);
        assert!(text.starts_with("# parameters:"), "{text}");
        assert!(text.parse::<toml::Table>().unwrap()["tool"][0]
            .get("parameters")
            .is_none());
    }
}
