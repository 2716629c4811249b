//! `promptloom export`: a session as JSONL, CSV, a Markdown report, or training data (chosen
//! answers for supervised fine-tuning, DPO preference pairs).
//!
//! Ratings and votes travel with the answers they judge, so an export is the evidence and
//! not just the outputs; `sft` and `pairs` ([`sft`]) turn the user's choices into training
//! files.

mod html;
pub(crate) mod sft;

use serde::Serialize;
use serde_json::json;
use std::fmt::Write as _;

use crate::state::session::{Node, Session};

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Jsonl,
    Csv,
    Md,
    /// Preference pairs from decisive blind votes, as JSONL `{prompt, chosen, rejected}`
    /// with chat messages (TRL's conversational preference layout).
    Pairs,
    /// The chosen answer per case as chat-format JSONL `{"messages": [...]}` (OpenAI
    /// fine-tuning, TRL's SFTTrainer).
    Sft,
    /// One self-contained page (inline CSS and SVG charts, no scripts, no network): the
    /// leaderboard with its intervals, stars per variant, speed per model.
    Html,
    /// Every finished conversation as OpenAI chat-format JSONL `{"messages": [...],
    /// "tools": [...]}`: the request's messages (assistant `tool_calls`, `tool` results) and
    /// the final answer.
    Openai,
}

/// One exported response row.
#[derive(Debug, Serialize)]
struct Row<'a> {
    node: u64,
    parent: Option<u64>,
    kind: &'a str,
    variant: &'a str,
    case: &'a str,
    model: &'a str,
    backend: Option<&'a str>,
    status: &'a str,
    text: &'a str,
    finish_reason: Option<&'a str>,
    error: Option<&'a str>,
    prompt_tokens: Option<u64>,
    tokens_out: u64,
    ttft_ms: Option<u64>,
    tok_per_s: Option<f64>,
    started_at: &'a str,
    checks: Vec<serde_json::Value>,
    ratings: Vec<RatingOut<'a>>,
    votes: Vec<VoteOut<'a>>,
    /// `tool-call` and `tool-result` nodes: the tool, the call's id, what answered it and
    /// how long it took.
    #[serde(skip_serializing_if = "Option::is_none")]
    tool: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    call_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u64>,
}

/// A rating as exported.
#[derive(Debug, Serialize)]
struct RatingOut<'a> {
    stars: Option<u8>,
    thumb: Option<&'static str>,
    note: Option<&'a str>,
    rater: &'a str,
    at: &'a str,
}

/// A vote that involved the row's node, from that node's point of view.
#[derive(Debug, Serialize)]
struct VoteOut<'a> {
    left: u64,
    right: u64,
    outcome: &'a str,
    /// `won`, `lost`, `tie` or `both_bad` for this node.
    result: &'static str,
    rater: &'a str,
    at: &'a str,
}

fn thumb_str(t: Option<i8>) -> Option<&'static str> {
    match t {
        Some(t) if t > 0 => Some("up"),
        Some(t) if t < 0 => Some("down"),
        _ => None,
    }
}

fn ratings_of<'a>(s: &'a Session, id: u64) -> Vec<RatingOut<'a>> {
    s.ratings
        .iter()
        .filter(|r| r.node == id && !r.is_empty())
        .map(|r| RatingOut {
            stars: r.stars,
            thumb: thumb_str(r.thumb),
            note: r.note.as_deref(),
            rater: &r.rater,
            at: &r.at,
        })
        .collect()
}

fn votes_of<'a>(s: &'a Session, id: u64) -> Vec<VoteOut<'a>> {
    s.votes
        .iter()
        .filter(|v| v.left == id || v.right == id)
        .map(|v| {
            let on_left = v.left == id;
            let result = match (v.outcome.as_str(), on_left) {
                ("left", true) | ("right", false) => "won",
                ("left", false) | ("right", true) => "lost",
                ("tie", _) => "tie",
                _ => "both_bad",
            };
            VoteOut {
                left: v.left,
                right: v.right,
                outcome: &v.outcome,
                result,
                rater: &v.rater,
                at: &v.at,
            }
        })
        .collect()
}

fn row<'a>(s: &'a Session, n: &'a Node) -> Row<'a> {
    Row {
        node: n.id,
        parent: n.parent,
        kind: n.kind.as_str(),
        variant: &n.variant,
        case: &n.case,
        model: &n.model,
        backend: s.models.get(&n.model).map(|m| m.backend.as_str()),
        status: status_str(n),
        text: &n.text,
        finish_reason: n.finish_reason.map(|f| f.as_str()),
        error: n.error.as_deref(),
        prompt_tokens: n.prompt_tokens,
        tokens_out: n.tokens_out,
        ttft_ms: n.ttft_ms,
        tok_per_s: n.tok_per_s,
        started_at: &n.started_at,
        checks: n
            .checks
            .iter()
            .map(|c| json!({"kind": c.kind, "pass": c.pass, "detail": c.detail}))
            .collect(),
        ratings: ratings_of(s, n.id),
        votes: votes_of(s, n.id),
        tool: n.meta.get("tool").map(String::as_str),
        call_id: n.meta.get("call_id").map(String::as_str),
        source: n.meta.get("source").map(String::as_str),
        duration_ms: n.duration_ms,
    }
}

/// The conversations of a session in OpenAI chat format, one JSON line per final answer.
fn openai_transcripts(s: &Session) -> anyhow::Result<String> {
    use crate::chat::{FinishReason, Role};
    use crate::state::session::{NodeKind, NodeStatus};
    let mut out = String::new();
    for n in s.nodes.iter().filter(|n| {
        n.kind == NodeKind::Answer
            && n.status == NodeStatus::Done
            && n.finish_reason != Some(FinishReason::ToolCalls)
    }) {
        let mut messages: Vec<serde_json::Value> = n
            .request
            .messages
            .iter()
            .map(crate::llm::openai::wire_message)
            .collect();
        messages.push(crate::llm::openai::wire_message(
            &crate::chat::ChatMessage::new(Role::Assistant, n.text.clone()),
        ));
        let mut line = json!({
            "messages": messages,
            "metadata": {"node": n.id, "variant": n.variant, "case": n.case, "model": n.model},
        });
        if !n.request.sampling.tools.is_empty() {
            line["tools"] = crate::llm::openai::wire_tools(&n.request.sampling.tools);
        }
        out.push_str(&serde_json::to_string(&line)?);
        out.push('\n');
    }
    Ok(out)
}

fn status_str(n: &Node) -> &'static str {
    use crate::state::session::NodeStatus::*;
    match n.status {
        Queued => "queued",
        Streaming => "streaming",
        Done => "done",
        Cancelled => "cancelled",
        Error => "error",
    }
}

/// Render a session in `format`.
pub(crate) fn export(session: &Session, format: Format) -> anyhow::Result<String> {
    match format {
        Format::Jsonl => {
            let mut out = String::new();
            for n in &session.nodes {
                out.push_str(&serde_json::to_string(&row(session, n))?);
                out.push('\n');
            }
            Ok(out)
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record([
                "node",
                "parent",
                "kind",
                "variant",
                "case",
                "model",
                "backend",
                "status",
                "text",
                "finish_reason",
                "error",
                "prompt_tokens",
                "tokens_out",
                "ttft_ms",
                "tok_per_s",
                "started_at",
                "checks",
                "checks_passed",
                "stars",
                "thumb",
                "note",
                "rater",
                "votes",
            ])?;
            for n in &session.nodes {
                let r = row(session, n);
                let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
                let checks = n
                    .checks
                    .iter()
                    .map(|c| format!("{}:{}", c.kind, if c.pass { "pass" } else { "fail" }))
                    .collect::<Vec<_>>()
                    .join(";");
                w.write_record([
                    r.node.to_string(),
                    opt(r.parent),
                    r.kind.to_string(),
                    r.variant.to_string(),
                    r.case.to_string(),
                    r.model.to_string(),
                    r.backend.unwrap_or_default().to_string(),
                    r.status.to_string(),
                    r.text.to_string(),
                    r.finish_reason.unwrap_or_default().to_string(),
                    r.error.unwrap_or_default().to_string(),
                    opt(r.prompt_tokens),
                    r.tokens_out.to_string(),
                    opt(r.ttft_ms),
                    r.tok_per_s.map(|x| format!("{x:.2}")).unwrap_or_default(),
                    r.started_at.to_string(),
                    checks,
                    n.passed().map(|p| p.to_string()).unwrap_or_default(),
                    // One value per rater, joined with "; " in the same order in each column.
                    join(
                        r.ratings
                            .iter()
                            .map(|x| x.stars.map(|v| v.to_string()).unwrap_or_default()),
                    ),
                    join(
                        r.ratings
                            .iter()
                            .map(|x| x.thumb.unwrap_or_default().to_string()),
                    ),
                    join(
                        r.ratings
                            .iter()
                            .map(|x| x.note.unwrap_or_default().to_string()),
                    ),
                    join(r.ratings.iter().map(|x| x.rater.to_string())),
                    r.votes
                        .iter()
                        .map(|v| {
                            let other = if v.left == r.node { v.right } else { v.left };
                            format!("{}:{other}", v.result)
                        })
                        .collect::<Vec<_>>()
                        .join(";"),
                ])?;
            }
            Ok(String::from_utf8(w.into_inner()?)?)
        }
        Format::Md => Ok(markdown(session)),
        Format::Html => Ok(html::page(session)),
        Format::Openai => openai_transcripts(session),
        Format::Pairs => sft::to_jsonl(&sft::pair_rows(
            session,
            &sft::Filter::default(),
            &session.title,
            true,
        )),
        Format::Sft => sft::to_jsonl(&sft::sft_rows(
            session,
            &sft::Filter::default(),
            &session.title,
            true,
        )),
    }
}

fn join(it: impl Iterator<Item = String>) -> String {
    it.collect::<Vec<_>>().join("; ")
}

fn markdown(s: &Session) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", s.title);
    if let Some(p) = &s.prompt_file {
        let _ = writeln!(out, "- Prompt file: `{p}`");
    }
    let _ = writeln!(out, "- Created: {}", s.created);
    for (name, m) in &s.models {
        let place = m
            .gguf_file
            .clone()
            .or_else(|| m.base_url.clone())
            .unwrap_or_default();
        let _ = write!(out, "- Model `{name}`: {} {place}", m.backend);
        for a in &m.adapters {
            let _ = write!(out, " + LoRA `{}`", a.name);
            if let Some(h) = &a.sha256 {
                let _ = write!(out, " (adapter_model.safetensors sha256 {h})");
            }
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "\n## Summary\n");
    let _ = writeln!(
        out,
        "| variant | answers | passed | mean tokens | mean tok/s |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
    for (variant, nodes) in by_variant(s) {
        let checked: Vec<&&Node> = nodes.iter().filter(|n| n.passed().is_some()).collect();
        let passed = checked.iter().filter(|n| n.passed() == Some(true)).count();
        let mean_tokens =
            nodes.iter().map(|n| n.tokens_out as f64).sum::<f64>() / nodes.len().max(1) as f64;
        let rates: Vec<f64> = nodes.iter().filter_map(|n| n.tok_per_s).collect();
        let mean_rate = if rates.is_empty() {
            "-".to_string()
        } else {
            format!("{:.1}", rates.iter().sum::<f64>() / rates.len() as f64)
        };
        let _ = writeln!(
            out,
            "| {} | {} | {}/{} | {:.0} | {} |",
            md_cell(variant),
            nodes.len(),
            passed,
            checked.len(),
            mean_tokens,
            mean_rate
        );
    }
    if s.nodes
        .iter()
        .any(|n| n.kind == crate::state::session::NodeKind::Answer)
    {
        use crate::eval::leaderboard::{build, to_markdown, GroupBy};
        let _ = writeln!(out, "\n## Leaderboard\n");
        let _ = write!(out, "{}", to_markdown(&build(s, GroupBy::Variant)));
        let models = build(s, GroupBy::Model);
        if models.entries.len() > 1 {
            let _ = writeln!(out, "\n### By model\n");
            let _ = write!(out, "{}", to_markdown(&models));
            let both = build(s, GroupBy::VariantModel);
            if both.entries.len() > models.entries.len() {
                let _ = writeln!(out, "\n### By variant and model\n");
                let _ = write!(out, "{}", to_markdown(&both));
            }
        }
        let _ = writeln!(out, "\n### Speed by model\n");
        let _ = write!(out, "{}", speed_table(s));
        let hist = crate::eval::figures::stars_histograms(s);
        if hist.iter().any(|h| h.counts.iter().any(|&c| c > 0)) {
            let _ = writeln!(out, "\n### Stars per variant\n");
            let _ = writeln!(out, "| variant | 1★ | 2★ | 3★ | 4★ | 5★ |");
            let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
            for h in &hist {
                let c = h.counts;
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} |",
                    md_cell(&h.name),
                    c[0],
                    c[1],
                    c[2],
                    c[3],
                    c[4]
                );
            }
        }
    }
    let _ = writeln!(out, "\n## Answers");
    for n in &s.nodes {
        let _ = writeln!(
            out,
            "\n### #{} {} · {} · case {} · {}\n",
            n.id,
            n.kind.as_str(),
            n.variant,
            n.case,
            n.model
        );
        let verdict = match n.passed() {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "no checks",
        };
        let _ = writeln!(
            out,
            "{} · {} tokens · ttft {} · {} · {}",
            status_str(n),
            n.tokens_out,
            n.ttft_ms
                .map(|t| format!("{t} ms"))
                .unwrap_or_else(|| "-".into()),
            n.tok_per_s
                .map(|t| format!("{t:.1} tok/s"))
                .unwrap_or_else(|| "-".into()),
            verdict
        );
        if let Some(e) = &n.error {
            let _ = writeln!(out, "\n**Error:** {e}");
        }
        if matches!(
            n.kind,
            crate::state::session::NodeKind::ToolCall | crate::state::session::NodeKind::ToolResult
        ) {
            let tool = n.meta.get("tool").map(String::as_str).unwrap_or("?");
            let what = match n.kind {
                crate::state::session::NodeKind::ToolCall => format!("Call to `{tool}`:"),
                _ => format!(
                    "Result of `{tool}` ({}, {} ms):",
                    n.meta.get("source").map(String::as_str).unwrap_or("?"),
                    n.duration_ms.unwrap_or(0)
                ),
            };
            let fence = if n.text.contains("```") {
                "````"
            } else {
                "```"
            };
            let _ = writeln!(out, "\n{what}\n\n{fence}json\n{}\n{fence}", n.text);
            continue;
        }
        for r in ratings_of(s, n.id) {
            let stars = r
                .stars
                .map(|k| "★".repeat(usize::from(k)))
                .unwrap_or_default();
            let thumb = match r.thumb {
                Some("up") => " 👍",
                Some("down") => " 👎",
                _ => "",
            };
            let note = r
                .note
                .map(|t| format!(": {}", t.replace('\n', " / ")))
                .unwrap_or_default();
            let _ = writeln!(out, "\n- Rated by {}: {stars}{thumb}{note}", r.rater);
        }
        let _ = writeln!(out);
        for line in n.text.lines() {
            let _ = writeln!(out, "> {line}");
        }
        for c in &n.checks {
            let _ = writeln!(
                out,
                "\n- {} `{}`: {}",
                if c.pass { "✔" } else { "✘" },
                c.kind,
                c.detail
            );
        }
    }
    out
}

/// Per model: answers, mean time to first token, mean decode rate and mean tokens out
/// (cost is a leaderboard column: per variant, in all and per passing answer).
fn speed_table(s: &Session) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| model | answers | mean ttft | mean tok/s | mean tokens out |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
    let mut models: Vec<(&str, Vec<&Node>)> = Vec::new();
    for n in s
        .nodes
        .iter()
        .filter(|n| n.kind == crate::state::session::NodeKind::Answer)
    {
        match models.iter_mut().find(|(m, _)| *m == n.model) {
            Some((_, list)) => list.push(n),
            None => models.push((&n.model, vec![n])),
        }
    }
    let mean = |xs: Vec<f64>| -> Option<f64> {
        (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
    };
    for (model, nodes) in models {
        let ttft = mean(
            nodes
                .iter()
                .filter_map(|n| n.ttft_ms)
                .map(|t| t as f64)
                .collect(),
        );
        let rate = mean(nodes.iter().filter_map(|n| n.tok_per_s).collect());
        let tokens = mean(nodes.iter().map(|n| n.tokens_out as f64).collect());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            md_cell(model),
            nodes.len(),
            ttft.map_or("-".into(), |t| format!("{t:.0} ms")),
            rate.map_or("-".into(), |r| format!("{r:.1}")),
            tokens.map_or("-".into(), |t| format!("{t:.0}")),
        );
    }
    out
}

fn by_variant(s: &Session) -> Vec<(&str, Vec<&Node>)> {
    let mut out: Vec<(&str, Vec<&Node>)> = Vec::new();
    for n in s
        .nodes
        .iter()
        .filter(|n| n.kind == crate::state::session::NodeKind::Answer)
    {
        match out.iter_mut().find(|(v, _)| *v == n.variant) {
            Some((_, list)) => list.push(n),
            None => out.push((&n.variant, vec![n])),
        }
    }
    out
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::sample_session;

    #[test]
    fn jsonl_has_one_object_per_node_with_required_fields() {
        let s = sample_session();
        let out = export(&s, Format::Jsonl).unwrap();
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        let first = &lines[0];
        for key in [
            "node",
            "parent",
            "kind",
            "variant",
            "case",
            "model",
            "text",
            "finish_reason",
            "tokens_out",
            "ttft_ms",
            "tok_per_s",
            "checks",
        ] {
            assert!(first.get(key).is_some(), "missing {key}");
        }
        assert_eq!(first["checks"][0]["kind"], "any");
        assert_eq!(first["checks"][0]["pass"], true);
        assert_eq!(lines[1]["parent"], 1);
        assert_eq!(lines[1]["kind"], "critique");
        assert_eq!(first["text"], s.nodes[0].text);
    }

    #[test]
    fn csv_round_trips_text_with_newlines_and_quotes() {
        let s = sample_session();
        let out = export(&s, Format::Csv).unwrap();
        let mut r = csv::Reader::from_reader(out.as_bytes());
        let rows: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[0][8], s.nodes[0].text);
        assert_eq!(&rows[0][16], "any:pass");
    }

    #[test]
    fn markdown_has_summary_and_answers() {
        let out = export(&sample_session(), Format::Md).unwrap();
        assert!(out.starts_with("# Capitals\n"));
        assert!(out.contains("| plain | 1 | 1/1 |"), "{out}");
        assert!(out.contains("> The capital is London."));
        assert!(out.contains("### Speed by model"), "{out}");
    }

    #[test]
    fn markdown_names_each_models_lora_adapters() {
        let mut s = sample_session();
        let base = s.models["smollm2"].clone();
        s.models.insert(
            "tuned".into(),
            crate::chat::ModelIdentity {
                adapters: vec![crate::chat::AdapterIdentity {
                    name: "support-v1".into(),
                    file: "/ft/support-v1/adapter_model.safetensors".into(),
                    sha256: Some("cd".repeat(32)),
                    config_sha256: Some("ef".repeat(32)),
                }],
                ..base
            },
        );
        let out = export(&s, Format::Md).unwrap();
        assert!(
            out.contains("- Model `smollm2`: local SmolLM2.gguf\n"),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "- Model `tuned`: local SmolLM2.gguf + LoRA `support-v1` (adapter_model.safetensors sha256 {})\n",
                "cd".repeat(32)
            )),
            "{out}"
        );
    }

    #[test]
    fn markdown_groups_by_model_and_by_variant_on_each_model() {
        use crate::eval::leaderboard::tests::{grid, node_of, vote};
        let mut s = grid(&["a", "b"], &["c1", "c2"]);
        // b's c2 answer came from another model: three variant @ model entries.
        let b2 = node_of(&s, "b", "c2");
        s.node_mut(b2).unwrap().model = "m-a".into();
        s.node_mut(b2).unwrap().ttft_ms = Some(120);
        s.node_mut(b2).unwrap().tok_per_s = Some(50.0);
        let (a1, b1) = (node_of(&s, "a", "c1"), node_of(&s, "b", "c1"));
        vote(&mut s, a1, b1, "left");
        let out = export(&s, Format::Md).unwrap();
        assert!(out.contains("### By model"), "{out}");
        assert!(out.contains("| variant @ model |"), "{out}");
        assert!(out.contains("| b @ m-a |"), "{out}");
        assert!(out.contains("| b @ m-b |"), "{out}");
        assert!(out.contains("| m-a | 3 | 120 ms | 50.0 |"), "{out}");
    }
}
