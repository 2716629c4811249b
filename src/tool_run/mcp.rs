//! MCP servers (`[mcp.NAME]` in the config) through the official Rust SDK, `rmcp`: a client
//! over stdio (`command` + `args`, the server runs as a child process) or streamable HTTP
//! (`url`). Each use connects, does its one thing (list the tools, or call one) and closes:
//! simple, and a server that dies takes nothing with it.
//!
//! What a server sends is untrusted: its tool list and results are plain text to the caller,
//! which shows them through `sanitize`.

use std::process::Stdio;
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, ContentBlock};
use rmcp::service::RunningService;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};

use crate::config::{Config, McpServer};

/// How long connecting and one request may take together.
const MCP_TIMEOUT: Duration = Duration::from_secs(60);

/// A tool an MCP server offers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct McpTool {
    pub name: String,
    pub description: String,
    pub input_schema: serde_json::Value,
}

fn server<'a>(config: &'a Config, name: &str) -> Result<&'a McpServer, String> {
    config.mcp.get(name).ok_or_else(|| {
        let known: Vec<&str> = config.mcp.keys().map(String::as_str).collect();
        format!(
            "no MCP server {name:?} in the config ({})",
            if known.is_empty() {
                "none is configured; add [mcp.NAME] with command or url".to_string()
            } else {
                format!("configured: {}", known.join(", "))
            }
        )
    })
}

async fn connect(name: &str, s: &McpServer) -> Result<RunningService<RoleClient, ()>, String> {
    match (&s.command, &s.url) {
        (Some(cmd), _) => {
            let mut c = tokio::process::Command::new(cmd);
            c.args(&s.args).envs(&s.env);
            // The server's log would land on the terminal the playground owns.
            let (transport, _) = TokioChildProcess::builder(c)
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("MCP server {name:?}: could not start {cmd:?}: {e}"))?;
            ().serve(transport)
                .await
                .map_err(|e| format!("MCP server {name:?}: {e}"))
        }
        (None, Some(url)) => {
            let transport = StreamableHttpClientTransport::from_uri(url.as_str());
            ().serve(transport)
                .await
                .map_err(|e| format!("MCP server {name:?} at {url}: {e}"))
        }
        (None, None) => Err(format!("[mcp.{name}] has neither command nor url")),
    }
}

async fn timed<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(MCP_TIMEOUT, f)
        .await
        .map_err(|_| format!("{what}: no answer within {} s", MCP_TIMEOUT.as_secs()))?
}

/// The tools of server `name`.
pub(crate) async fn list(config: &Config, name: &str) -> Result<Vec<McpTool>, String> {
    let s = server(config, name)?;
    timed(&format!("MCP server {name:?}"), async {
        let client = connect(name, s).await?;
        let tools = client
            .list_all_tools()
            .await
            .map_err(|e| format!("MCP server {name:?}: listing tools: {e}"));
        let _ = client.cancel().await;
        Ok(tools?
            .into_iter()
            .map(|t| McpTool {
                name: t.name.to_string(),
                description: t.description.map(|d| d.to_string()).unwrap_or_default(),
                input_schema: serde_json::Value::Object((*t.input_schema).clone()),
            })
            .collect())
    })
    .await
}

/// The text of a tool's result: text blocks as they are, other content named; the structured
/// content when there is no content block.
fn result_text(content: &[ContentBlock], structured: Option<&serde_json::Value>) -> String {
    let mut parts: Vec<String> = content
        .iter()
        .map(|c| match c {
            ContentBlock::Text(t) => t.text.clone(),
            ContentBlock::Image(i) => format!("[image {}]", i.mime_type),
            ContentBlock::Audio(a) => format!("[audio {}]", a.mime_type),
            ContentBlock::Resource(_) => "[embedded resource]".to_string(),
            ContentBlock::ResourceLink(_) => "[resource link]".to_string(),
            // ContentBlock is non_exhaustive: kinds a later protocol adds.
            _ => "[content of another kind]".to_string(),
        })
        .collect();
    if parts.is_empty() {
        if let Some(v) = structured {
            parts.push(v.to_string());
        }
    }
    parts.join("\n")
}

/// Call `tool` on server `name` with `args`: the text of its result, or its error (a result
/// the server marks `isError` is an error quoting that text).
pub(crate) async fn call(
    config: &Config,
    name: &str,
    tool: &str,
    args: &serde_json::Value,
) -> Result<String, String> {
    let s = server(config, name)?;
    timed(&format!("MCP server {name:?}, tool {tool:?}"), async {
        let client = connect(name, s).await?;
        let mut params = CallToolRequestParams::new(tool.to_string());
        params.arguments = args.as_object().cloned();
        let result = client
            .call_tool(params)
            .await
            .map_err(|e| format!("MCP server {name:?}, tool {tool:?}: {e}"));
        let _ = client.cancel().await;
        let result = result?;
        let text = result_text(&result.content, result.structured_content.as_ref());
        if result.is_error == Some(true) {
            Err(format!("the tool reported an error: {text}"))
        } else {
            Ok(text)
        }
    })
    .await
}
