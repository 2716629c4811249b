//! The session file format, version 2, and the reader for version 1.
//!
//! Format 2 stores every distinct chat message once, in `[[message]]` tables, and each node
//! lists the messages it sent by id (`messages = [1, 2, 5]`), with its sampling, checks and
//! annotations as one-line inline tables:
//!
//! ```toml
//! [[message]]
//! id = 1
//! role = "system"
//! content = "Be brief."
//!
//! [[node]]
//! id = 7
//! kind = "answer"
//! ...
//! messages = [1, 4]
//! sampling = { temperature = 0.7, seed = 7919 }
//! checks = [{ kind = "any", pass = true, detail = "found \"London\"" }]
//! text = """
//! London."""
//! ```
//!
//! A system prompt and few-shot examples are shared by every node of a variant, so a file
//! shrinks by the size of its requests, and each node is one table instead of six or seven
//! (format 1 repeated every message in `[[node.request.messages]]` tables). Parsing costs
//! about the same per value whatever its size, so fewer values per node is what counts.
//! Format 1 files still load and are written as format 2 on the next save.
//!
//! Large files are written and read in parts on all cores: the header (with the message
//! pool), the `[[node]]` tables in chunks, then ratings and votes.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use toml_writer::{TomlKeyBuilder, TomlStringBuilder, TomlWrite, WriteTomlValue};

use super::error::SaveError;
use crate::chat::{
    ChatMessage, ChatRequest, FinishReason, ModelIdentity, Role, Sampling, ToolCall, ToolResultOf,
};
use crate::eval::expect::CheckResult;
use crate::price::Price;
use crate::prompt::{Case, Variant};
use crate::state::session::{Node, NodeKind, NodeStatus, Rating, Session, Vote, FORMAT};
use crate::state::versions::VariantVersion;

/// Serialise a session to format-2 TOML. Streams still live are written as cancelled and
/// marked incomplete (see [`Session::for_saving`]).
pub(crate) fn to_text(s: &Session) -> Result<String, SaveError> {
    let head = HeadOut {
        format: FORMAT,
        title: &s.title,
        created: &s.created,
        prompt_file: s.prompt_file.as_deref(),
        models: &s.models,
        prices: &s.prices,
        variant: &s.variants,
        case: &s.cases,
        version: &s.versions,
    };
    let mut out = format!(
        "# promptloom session (format {FORMAT}). Human-readable and diffable; edit with care.\n\
         # Each distinct message is stored once under [[message]]; a node lists the ones it sent.\n{}",
        toml::to_string_pretty(&head)?
    );
    let pool = MessagePool::of(&s.nodes);
    for (i, m) in pool.messages.iter().enumerate() {
        sep(&mut out);
        out.push_str("[[message]]\n");
        key_value(&mut out, "id", &(i as u64 + 1));
        key_value(&mut out, "role", role_name(m.role));
        key_value(
            &mut out,
            "content",
            &TomlStringBuilder::new(&m.content).as_default(),
        );
        if !m.tool_calls.is_empty() {
            out.push_str("tool_calls = [");
            for (i, c) in m.tool_calls.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str("{ id = ");
                let _ = one_line(&c.id).write_toml_value(&mut out);
                out.push_str(", name = ");
                let _ = one_line(&c.name).write_toml_value(&mut out);
                out.push_str(", arguments = ");
                let _ = one_line(&c.arguments).write_toml_value(&mut out);
                out.push_str(" }");
            }
            out.push_str("]\n");
        }
        if let Some(r) = &m.tool_result {
            out.push_str("tool_result = { call_id = ");
            let _ = one_line(&r.call_id).write_toml_value(&mut out);
            out.push_str(", name = ");
            let _ = one_line(&r.name).write_toml_value(&mut out);
            out.push_str(" }\n");
        }
    }
    let chunks = chunk_count(s.nodes.len());
    let size = s.nodes.len().div_ceil(chunks).max(1);
    let parts: Vec<Result<String, SaveError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = s
            .nodes
            .chunks(size)
            .zip(pool.sent.chunks(size))
            .map(|(c, sent)| {
                scope.spawn(move || {
                    let mut part = String::with_capacity(c.len() * 1_200);
                    for (n, ids) in c.iter().zip(sent) {
                        write_node(&mut part, n, ids)?;
                    }
                    Ok(part)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(SaveError::Invalid("a writer thread panicked".into())))
            })
            .collect()
    });
    for part in parts {
        let part = part?;
        if !part.is_empty() {
            sep(&mut out);
            out.push_str(&part);
        }
    }
    let tail = toml::to_string_pretty(&TailOut {
        rating: &s.ratings,
        vote: &s.votes,
    })?;
    if !tail.trim().is_empty() {
        sep(&mut out);
        out.push_str(&tail);
    }
    Ok(out)
}

/// End what came before with a blank line.
fn sep(out: &mut String) {
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
}

#[derive(Serialize)]
struct HeadOut<'a> {
    format: u32,
    title: &'a str,
    created: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_file: Option<&'a str>,
    models: &'a BTreeMap<String, ModelIdentity>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    prices: &'a BTreeMap<String, Price>,
    variant: &'a [Variant],
    case: &'a [Case],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    version: &'a [VariantVersion],
}

#[derive(Serialize)]
struct TailOut<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    rating: &'a [Rating],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    vote: &'a [Vote],
}

/// Every distinct message of a session, numbered from 1 in order of first use, and the ids
/// each node sent.
struct MessagePool<'a> {
    messages: Vec<&'a ChatMessage>,
    /// For each node, in order, the ids of its messages.
    sent: Vec<Vec<u64>>,
}

impl<'a> MessagePool<'a> {
    fn of(nodes: &'a [Node]) -> Self {
        let mut messages = Vec::new();
        type Key<'k> = (Role, &'k str, &'k [ToolCall], Option<&'k ToolResultOf>);
        let mut ids: HashMap<Key<'a>, u64> = HashMap::new();
        let sent = nodes
            .iter()
            .map(|n| {
                n.request
                    .messages
                    .iter()
                    .map(|m| {
                        let key = (
                            m.role,
                            m.content.as_str(),
                            m.tool_calls.as_slice(),
                            m.tool_result.as_ref(),
                        );
                        *ids.entry(key).or_insert_with(|| {
                            messages.push(m);
                            messages.len() as u64
                        })
                    })
                    .collect()
            })
            .collect();
        MessagePool { messages, sent }
    }
}

fn key_value(out: &mut String, key: &str, value: &(impl WriteTomlValue + ?Sized)) {
    out.push_str(key);
    out.push_str(" = ");
    // Writing into a String cannot fail.
    let _ = value.write_toml_value(out);
    out.push('\n');
}

/// A string for a one-line inline value: never a multi-line form.
fn one_line(s: &str) -> toml_writer::TomlString<'_> {
    let b = TomlStringBuilder::new(s);
    b.as_basic_pretty()
        .or_else(|| b.as_literal())
        .unwrap_or_else(|| b.as_basic())
}

/// A TOML integer: TOML has no integers above `i64::MAX`.
fn int(field: &str, node: u64, v: u64) -> Result<i64, SaveError> {
    i64::try_from(v).map_err(|_| {
        SaveError::Invalid(format!(
            "node {node}: {field} = {v} is larger than a TOML integer can hold"
        ))
    })
}

/// One `[[node]]` table; `sent` are the ids of its messages in the pool.
fn write_node(out: &mut String, n: &Node, sent: &[u64]) -> Result<(), SaveError> {
    let live = matches!(n.status, NodeStatus::Streaming | NodeStatus::Queued);
    let status = if live {
        NodeStatus::Cancelled
    } else {
        n.status
    };
    out.push_str("[[node]]\n");
    key_value(out, "id", &int("id", n.id, n.id)?);
    if let Some(p) = n.parent {
        key_value(out, "parent", &int("parent", n.id, p)?);
    }
    key_value(out, "kind", n.kind.as_str());
    key_value(out, "variant", &one_line(&n.variant));
    key_value(out, "case", &one_line(&n.case));
    key_value(out, "model", &one_line(&n.model));
    key_value(out, "status", status_name(status));
    key_value(out, "started_at", &one_line(&n.started_at));
    if let Some(f) = n.finish_reason {
        key_value(out, "finish_reason", finish_name(f));
    }
    if let Some(e) = &n.error {
        key_value(out, "error", &TomlStringBuilder::new(e).as_default());
    }
    if let Some(v) = n.prompt_tokens {
        key_value(out, "prompt_tokens", &int("prompt_tokens", n.id, v)?);
    }
    key_value(out, "tokens_out", &int("tokens_out", n.id, n.tokens_out)?);
    if let Some(v) = n.ttft_ms {
        key_value(out, "ttft_ms", &int("ttft_ms", n.id, v)?);
    }
    if let Some(v) = n.tok_per_s {
        key_value(out, "tok_per_s", &v);
    }
    if let Some(v) = n.duration_ms {
        key_value(out, "duration_ms", &int("duration_ms", n.id, v)?);
    }
    if let Some(v) = n.score {
        key_value(out, "score", &v);
    }
    if !n.checks.is_empty() {
        out.push_str("checks = [");
        for (i, c) in n.checks.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str("{ kind = ");
            let _ = one_line(&c.kind).write_toml_value(out);
            out.push_str(", pass = ");
            out.push_str(if c.pass { "true" } else { "false" });
            out.push_str(", detail = ");
            let _ = one_line(&c.detail).write_toml_value(out);
            out.push_str(" }");
        }
        out.push_str("]\n");
    }
    // A stream still running is saved as cancelled and marked incomplete.
    let mut meta: Vec<(&str, &str)> = n
        .meta
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .filter(|(k, _)| !(live && *k == "incomplete"))
        .collect();
    if live {
        meta.push(("incomplete", "true"));
        meta.sort_unstable_by_key(|e| e.0);
    }
    if !meta.is_empty() {
        out.push_str("meta = {");
        for (i, (k, v)) in meta.iter().enumerate() {
            out.push_str(if i > 0 { ", " } else { " " });
            let _ = out.key(TomlKeyBuilder::new(k).as_default());
            out.push_str(" = ");
            let _ = one_line(v).write_toml_value(out);
        }
        out.push_str(" }\n");
    }
    key_value(out, "messages", sent);
    write_sampling(out, n.id, &n.request.sampling)?;
    key_value(out, "text", &TomlStringBuilder::new(&n.text).as_default());
    out.push('\n');
    Ok(())
}

fn write_sampling(out: &mut String, node: u64, s: &Sampling) -> Result<(), SaveError> {
    let mut fields: Vec<(&str, String)> = Vec::new();
    let f64_text = |v: f64| {
        let mut t = String::new();
        let _ = v.write_toml_value(&mut t);
        t
    };
    if let Some(v) = s.temperature {
        fields.push(("temperature", f64_text(v)));
    }
    if let Some(v) = s.top_p {
        fields.push(("top_p", f64_text(v)));
    }
    if let Some(v) = s.top_k {
        fields.push(("top_k", int("top_k", node, v as u64)?.to_string()));
    }
    if let Some(v) = s.max_tokens {
        fields.push(("max_tokens", int("max_tokens", node, v as u64)?.to_string()));
    }
    if !s.stop.is_empty() {
        let mut t = String::from("[");
        for (i, stop) in s.stop.iter().enumerate() {
            if i > 0 {
                t.push_str(", ");
            }
            let _ = one_line(stop).write_toml_value(&mut t);
        }
        t.push(']');
        fields.push(("stop", t));
    }
    if let Some(v) = s.seed {
        fields.push(("seed", int("seed", node, v)?.to_string()));
    }
    if !s.tools.is_empty() {
        // JSON Schemas as TOML: a `null` in a schema has no TOML form and is refused.
        let v = toml::Value::try_from(&s.tools).map_err(|e| {
            SaveError::Invalid(format!(
                "node {node}: the tools cannot be written as TOML: {e}"
            ))
        })?;
        fields.push(("tools", v.to_string()));
    }
    if let Some(c) = &s.tool_choice {
        let mut t = String::new();
        let _ = one_line(c.as_str()).write_toml_value(&mut t);
        fields.push(("tool_choice", t));
    }
    if let Some(v) = s.max_tool_steps {
        fields.push((
            "max_tool_steps",
            int("max_tool_steps", node, v as u64)?.to_string(),
        ));
    }
    if let Some(v) = s.logprobs {
        fields.push(("logprobs", int("logprobs", node, v as u64)?.to_string()));
    }
    if let Some(v) = s.samples {
        fields.push(("samples", int("samples", node, v as u64)?.to_string()));
    }
    if let Some(v) = s.stop_on {
        fields.push(("stop_on", format!("\"{}\"", v.as_str())));
    }
    if fields.is_empty() {
        return Ok(());
    }
    out.push_str("sampling = {");
    for (i, (k, v)) in fields.iter().enumerate() {
        out.push_str(if i > 0 { ", " } else { " " });
        out.push_str(k);
        out.push_str(" = ");
        out.push_str(v);
    }
    out.push_str(" }\n");
    Ok(())
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

fn status_name(s: NodeStatus) -> &'static str {
    match s {
        NodeStatus::Queued => "queued",
        NodeStatus::Streaming => "streaming",
        NodeStatus::Done => "done",
        NodeStatus::Cancelled => "cancelled",
        NodeStatus::Error => "error",
    }
}

fn finish_name(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::StopSequence => "stop_sequence",
        FinishReason::Cancelled => "cancelled",
        FinishReason::Error => "error",
        FinishReason::MaxAnswerBytes => "max_answer_bytes",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ChecksDecided => "checks_decided",
    }
}

/// Threads to use for `nodes` nodes: one below 2,000 nodes, else one per core (at most 8).
fn chunk_count(nodes: usize) -> usize {
    if nodes < 2_000 {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
}

// ---------------------------------------------------------------------------------------
// Reading

/// A format-2 file, or its header and tail when the nodes are parsed apart.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIn {
    format: u32,
    title: String,
    created: String,
    #[serde(default)]
    prompt_file: Option<String>,
    #[serde(default)]
    models: BTreeMap<String, ModelIdentity>,
    #[serde(default)]
    prices: BTreeMap<String, Price>,
    #[serde(default)]
    variant: Vec<Variant>,
    #[serde(default)]
    case: Vec<Case>,
    #[serde(default)]
    message: Vec<MessageIn>,
    #[serde(default)]
    node: Vec<NodeIn>,
    #[serde(default)]
    rating: Vec<Rating>,
    #[serde(default)]
    vote: Vec<Vote>,
    #[serde(default)]
    version: Vec<VariantVersion>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageIn {
    id: u64,
    role: Role,
    content: String,
    #[serde(default)]
    tool_calls: Vec<ToolCall>,
    #[serde(default)]
    tool_result: Option<ToolResultOf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodesIn {
    #[serde(default)]
    node: Vec<NodeIn>,
}

/// A node as format 2 stores it: [`Node`] with the request as message ids and sampling.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeIn {
    id: u64,
    #[serde(default)]
    parent: Option<u64>,
    kind: NodeKind,
    variant: String,
    case: String,
    model: String,
    status: NodeStatus,
    started_at: String,
    #[serde(default)]
    finish_reason: Option<FinishReason>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    tokens_out: u64,
    #[serde(default)]
    ttft_ms: Option<u64>,
    #[serde(default)]
    tok_per_s: Option<f64>,
    #[serde(default)]
    duration_ms: Option<u64>,
    #[serde(default)]
    score: Option<f64>,
    #[serde(default)]
    checks: Vec<CheckResult>,
    #[serde(default)]
    meta: BTreeMap<String, String>,
    #[serde(default)]
    messages: Vec<u64>,
    #[serde(default)]
    sampling: Sampling,
    text: String,
}

/// Why a parsed format-2 file is still not a session.
#[derive(Debug)]
pub(crate) enum ReadError {
    Toml(toml::de::Error),
    /// A problem the TOML schema cannot express, and the text to look for to place it.
    Invalid {
        message: String,
        near: String,
    },
}

/// Parse format-2 text.
pub(crate) fn parse(text: &str) -> Result<Session, ReadError> {
    let file = match parse_in_parts(text) {
        Some(f) => f,
        None => toml::from_str::<FileIn>(text).map_err(ReadError::Toml)?,
    };
    file.into_session()
}

impl FileIn {
    fn into_session(self) -> Result<Session, ReadError> {
        let mut pool: HashMap<u64, ChatMessage> = HashMap::with_capacity(self.message.len());
        for m in self.message {
            let id = m.id;
            if pool
                .insert(
                    id,
                    ChatMessage {
                        tool_calls: m.tool_calls,
                        tool_result: m.tool_result,
                        ..ChatMessage::new(m.role, m.content)
                    },
                )
                .is_some()
            {
                return Err(ReadError::Invalid {
                    message: format!("two messages have id {id}"),
                    near: format!("[[message]]\nid = {id}\n"),
                });
            }
        }
        let mut nodes = Vec::with_capacity(self.node.len());
        for n in self.node {
            let mut messages = Vec::with_capacity(n.messages.len());
            for id in &n.messages {
                let m = pool.get(id).ok_or_else(|| ReadError::Invalid {
                    message: format!(
                        "node {} sends message {id}, which no [[message]] table defines",
                        n.id
                    ),
                    near: format!("[[node]]\nid = {}\n", n.id),
                })?;
                messages.push(m.clone());
            }
            nodes.push(Node {
                id: n.id,
                parent: n.parent,
                kind: n.kind,
                variant: n.variant,
                case: n.case,
                model: n.model,
                status: n.status,
                started_at: n.started_at,
                finish_reason: n.finish_reason,
                error: n.error,
                prompt_tokens: n.prompt_tokens,
                tokens_out: n.tokens_out,
                ttft_ms: n.ttft_ms,
                tok_per_s: n.tok_per_s,
                duration_ms: n.duration_ms,
                score: n.score,
                checks: n.checks,
                meta: n.meta,
                text: n.text,
                request: ChatRequest {
                    messages,
                    sampling: n.sampling,
                },
                logprobs: Default::default(),
            });
        }
        Ok(Session {
            format: self.format,
            title: self.title,
            created: self.created,
            prompt_file: self.prompt_file,
            models: self.models,
            prices: self.prices,
            variants: self.variant,
            cases: self.case,
            nodes,
            ratings: self.rating,
            votes: self.vote,
            versions: self.version,
        })
    }
}

/// Parse a large file on several threads: the `[[node]]` tables in chunks, the rest (the
/// header and message pool before the first node, ratings and votes after the last) as one
/// document.
///
/// The split is at lines that are exactly `[[node]]`, `[[rating]]` or `[[vote]]`. Such a line
/// can also sit inside a multi-line string (an answer quoting TOML); a split there leaves the
/// part before it with an unterminated string, which fails to parse, and then `None` sends
/// the caller to the ordinary single-pass parse, which also gives exact error positions.
fn parse_in_parts(text: &str) -> Option<FileIn> {
    if text.len() < 1 << 20 {
        return None;
    }
    let starts: Vec<usize> = text
        .match_indices("\n[[node]]\n")
        .map(|(i, _)| i + 1)
        .collect();
    let first = *starts.first()?;
    let last = *starts.last()?;
    let tail = ["\n[[rating]]\n", "\n[[vote]]\n"]
        .iter()
        .filter_map(|pat| text.get(last..)?.find(pat).map(|i| last + i + 1))
        .min()
        .unwrap_or(text.len());
    let chunks = chunk_count(starts.len());
    let per = starts.len().div_ceil(chunks).max(1);
    let mut bounds: Vec<(usize, usize)> = starts.chunks(per).map(|c| (c[0], 0)).collect();
    for i in 0..bounds.len() {
        bounds[i].1 = bounds.get(i + 1).map_or(tail, |b| b.0);
    }
    let rest = format!("{}\n{}", text.get(..first)?, text.get(tail..)?);
    std::thread::scope(|scope| {
        let rest = scope.spawn(|| toml::from_str::<FileIn>(&rest).ok());
        let parts: Vec<_> = bounds
            .iter()
            .map(|&(a, b)| {
                let part = text.get(a..b);
                scope.spawn(move || part.and_then(|p| toml::from_str::<NodesIn>(p).ok()))
            })
            .collect();
        let mut file = rest.join().ok()??;
        if !file.node.is_empty() {
            return None;
        }
        for p in parts {
            file.node.extend(p.join().ok()??.node);
        }
        Some(file)
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Big sessions are written and read in parts on several threads; the result must be
    /// exactly what a single pass gives, even when answers quote the headers the split uses.
    #[test]
    fn large_sessions_round_trip_through_the_parallel_path() {
        let mut s = crate::bench::session::synthetic(3_000);
        let text = to_text(&s).unwrap();
        let single = toml::from_str::<FileIn>(&text)
            .unwrap()
            .into_session()
            .unwrap();
        assert_eq!(single.nodes, s.for_saving().nodes);
        let parts = parse_in_parts(&text).expect("a 3,000-node session is parsed in parts");
        assert_eq!(parts.into_session().unwrap(), single);
        assert_eq!(parse(&text).unwrap(), single);

        // An answer that contains the split markers on their own lines.
        s.nodes[1500].text = "toml:\n[[node]]\nid = 1\n[[rating]]\n[[vote]]\nend".into();
        s.nodes[2999].text = "[[rating]]\nnot a rating\n".into();
        let text = to_text(&s).unwrap();
        assert!(
            text.contains("\n[[node]]\nid = 1\n[[rating]]"),
            "the marker is written raw"
        );
        let back = parse(&text).unwrap();
        assert_eq!(back.nodes, s.for_saving().nodes);
        assert_eq!(back.ratings, s.ratings);
        assert_eq!(back.votes, s.votes);
    }

    /// Every message is stored once; nodes refer to them by id, in order.
    #[test]
    fn messages_are_stored_once_and_keep_their_order() {
        let s = crate::bench::session::synthetic(40);
        let text = to_text(&s).unwrap();
        // 3 shared messages (system, example question, example answer) + 11 distinct cases.
        assert_eq!(text.matches("\n[[message]]\n").count(), 3 + 11, "{text}");
        assert_eq!(text.matches("You are a careful geography tutor").count(), 1);
        assert!(text.contains("messages = [1, 2, 3, 4]\n"), "{text}");
        let back = parse(&text).unwrap();
        for (a, b) in back.nodes.iter().zip(&s.nodes) {
            assert_eq!(a.request, b.request);
        }
        // The same content under two roles is two messages.
        let mut s = crate::bench::session::synthetic(2);
        s.nodes[1].request.messages[0].role = Role::User;
        let back = parse(&to_text(&s).unwrap()).unwrap();
        assert_eq!(back.nodes[1].request.messages[0].role, Role::User);
        assert_eq!(back.nodes[0].request.messages[0].role, Role::System);
    }

    /// Text the writer quotes by hand: every kind of awkward string survives.
    #[test]
    fn tool_calls_results_and_offered_tools_round_trip() {
        use crate::chat::{ToolChoice, ToolSpec};
        let mut s = crate::bench::session::synthetic(2);
        let call = ToolCall {
            id: "call_1".into(),
            name: "get_current_weather".into(),
            arguments: r#"{"location": "Boston, \"MA\""}"#.into(),
        };
        let n = &mut s.nodes[1];
        n.request.sampling.tools = vec![ToolSpec {
            name: "get_current_weather".into(),
            description: "Weather 'now'".into(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {"location": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
                "required": ["location"]
            }),
        }];
        n.request.sampling.tool_choice = Some(ToolChoice::Tool("get_current_weather".into()));
        n.request.sampling.max_tool_steps = Some(3);
        n.request
            .messages
            .push(ChatMessage::assistant_calls("", vec![call.clone()]));
        n.request
            .messages
            .push(ChatMessage::tool_result(&call, "{\"temperature\": 72}"));
        n.finish_reason = Some(FinishReason::ToolCalls);
        let text = to_text(&s).unwrap();
        let back = crate::store::parse(Path::new("s.toml"), &text).unwrap();
        assert_eq!(back.nodes, s.nodes, "{text}");
        // The pool holds the four shared messages once plus the call and its result: six
        // tables. (Counted as table headers: the file's header comment names [[message]] too.)
        assert_eq!(
            text.matches("\n[[message]]\n").count(),
            s.nodes[0].request.messages.len() + 2,
            "{text}"
        );
    }

    #[test]
    fn awkward_strings_round_trip() {
        let nasty = [
            "",
            "plain",
            r#"quote " and ' and ''' and """ and """" and '''''"#,
            r"back\slash \n not a newline",
            "tab\tcr\r\nlone cr\rnul\u{0}bell\u{7}del\u{7f}",
            "line\n",
            "\n\nstarts with newlines",
            "ends with quote\"",
            "ends with quotes\"\"",
            "ends with single '",
            "unicode: é 漢字 🦀 \u{200b}",
            "[[node]]",
            "= # not a comment",
        ];
        let mut s = crate::bench::session::synthetic(nasty.len());
        for (i, t) in nasty.iter().enumerate() {
            let n = &mut s.nodes[i];
            n.text = (*t).into();
            n.variant = (*t).into();
            n.case = (*t).into();
            n.error = Some((*t).into());
            n.checks[0].detail = (*t).into();
            n.meta.insert((*t).into(), (*t).into());
            n.meta.insert("k".into(), (*t).into());
            n.request.messages[3].content = (*t).into();
            n.request.sampling.stop = vec![(*t).into(), "\n\n".into()];
            n.score = Some(if i % 2 == 0 { 0.5 } else { -3.0 });
            n.request.sampling.top_p = Some(1.0);
            n.request.sampling.top_k = Some(40);
        }
        s.nodes[1].tok_per_s = Some(f64::INFINITY);
        let text = to_text(&s).unwrap();
        let back = parse(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        assert_eq!(back.nodes, s.for_saving().nodes);
    }

    #[test]
    fn live_streams_are_saved_cancelled_and_incomplete() {
        let mut s = crate::bench::session::synthetic(3);
        s.nodes[0].status = NodeStatus::Streaming;
        s.nodes[1].status = NodeStatus::Queued;
        s.nodes[1].meta.insert("incomplete".into(), "no".into());
        s.nodes[1].meta.insert("a".into(), "1".into());
        let back = parse(&to_text(&s).unwrap()).unwrap();
        assert_eq!(back.nodes, s.for_saving().nodes);
        assert_eq!(back.nodes[1].status, NodeStatus::Cancelled);
        assert_eq!(back.nodes[1].meta["incomplete"], "true");
        assert_eq!(back.nodes[2].status, NodeStatus::Done);
        assert!(back.nodes[2].meta.is_empty());
        // The in-memory session is not touched by saving.
        assert_eq!(s.nodes[0].status, NodeStatus::Streaming);
    }

    #[test]
    fn integers_toml_cannot_hold_are_refused_not_written() {
        let mut s = crate::bench::session::synthetic(1);
        s.nodes[0].request.sampling.seed = Some(u64::MAX);
        let err = to_text(&s).unwrap_err().to_string();
        assert!(err.contains("node 1: seed"), "{err}");
    }

    #[test]
    fn a_format_1_file_loads_into_the_same_session() {
        let s = crate::bench::session::synthetic(30);
        let mut v1 = toml::to_string_pretty(&Session {
            format: 1,
            ..s.clone()
        })
        .unwrap();
        v1.insert_str(0, "# promptloom session (format 1)\n");
        assert!(v1.contains("[[node.request.messages]]"));
        let back = crate::store::parse(Path::new("old.toml"), &v1).unwrap();
        assert_eq!(back.nodes, s.nodes);
        assert_eq!(back.ratings, s.ratings);
        // Saved again, it is format 2.
        let again = to_text(&back).unwrap();
        assert!(again.contains("\nformat = 2\n"), "{again}");
        let reread = crate::store::parse(Path::new("s.toml"), &again).unwrap();
        assert_eq!(reread.nodes, s.nodes);
    }

    /// Variant versions round-trip; a file written before versions existed has none and
    /// loads as before.
    #[test]
    fn variant_versions_round_trip_and_old_files_have_none() {
        let mut s = crate::bench::session::synthetic(3);
        let old = to_text(&s).unwrap();
        assert!(!old.contains("[[version]]"));
        assert!(crate::store::parse(Path::new("old.toml"), &old)
            .unwrap()
            .versions
            .is_empty());
        let mut v = crate::prompt::render::tests_support::variant();
        crate::state::versions::record(&mut s, &v, "2026-01-01T00:00:00Z");
        v.template = "Another word for {{word}}?".into();
        crate::state::versions::record(&mut s, &v, "2026-01-01T00:01:00Z");
        let text = to_text(&s).unwrap();
        assert_eq!(text.matches("[[version]]").count(), 2, "{text}");
        let back = crate::store::parse(Path::new("s.toml"), &text).unwrap();
        assert_eq!(back.versions, s.versions);
        assert_eq!(back.nodes, s.nodes);
    }

    #[test]
    fn dangling_and_duplicate_message_ids_are_reported_at_their_place() {
        let s = crate::bench::session::synthetic(5);
        let text = to_text(&s).unwrap();
        let node4 = text.find("[[node]]\nid = 4\n").unwrap();
        let line = text[..node4].lines().count() + 1;
        let bad = format!(
            "{}{}",
            &text[..node4],
            text[node4..].replacen("messages = [1, 2, 3, ", "messages = [1, 99, 3, ", 1)
        );
        let err = crate::store::parse(Path::new("s.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("s.toml:{line}:1: node 4 sends message 99")),
            "{err}"
        );
        let bad = text.replace("[[message]]\nid = 2\n", "[[message]]\nid = 1\n");
        let err = crate::store::parse(Path::new("s.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("two messages have id 1"), "{err}");
    }

    /// serde's name for a unit enum variant.
    fn serde_name(v: impl serde::Serialize) -> String {
        toml::Value::try_from(v)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The hand-written writer must spell enums exactly as serde reads them.
    #[test]
    fn enum_names_match_serde() {
        for r in [Role::System, Role::User, Role::Assistant] {
            assert_eq!(role_name(r), serde_name(r));
        }
        for s in [
            NodeStatus::Queued,
            NodeStatus::Streaming,
            NodeStatus::Done,
            NodeStatus::Cancelled,
            NodeStatus::Error,
        ] {
            assert_eq!(status_name(s), serde_name(s));
        }
        for f in [
            FinishReason::Stop,
            FinishReason::Length,
            FinishReason::StopSequence,
            FinishReason::Cancelled,
            FinishReason::Error,
            FinishReason::MaxAnswerBytes,
            FinishReason::ToolCalls,
        ] {
            assert_eq!(finish_name(f), serde_name(f));
        }
        for k in [
            NodeKind::Answer,
            NodeKind::Critique,
            NodeKind::Rewrite,
            NodeKind::Thought,
            NodeKind::Value,
            NodeKind::Judge,
            NodeKind::VariantProposal,
            NodeKind::ToolCall,
            NodeKind::ToolResult,
        ] {
            assert_eq!(k.as_str(), serde_name(k));
        }
    }
}
