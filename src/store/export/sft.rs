//! Training data out: `export --format sft` (chat-format JSONL, `{"messages": [...]}`, read by
//! OpenAI fine-tuning and Hugging Face TRL's `SFTTrainer`) and `--format pairs` (TRL's
//! conversational preference layout, `{"prompt": [...], "chosen": [...], "rejected": [...]}`).
//!
//! SFT rows are the answers the user chose, one per case: the promoted answer (the one made
//! the pane's answer in the tree view), else the highest-rated (mean stars, then net thumbs),
//! else one that passed its checks; ties go to the newest. Pairs are the decisive blind votes.
//! Filters narrow what may be chosen; `--split` cuts the rows into train and validation by a
//! hash of the case name, so a case is always on one side, and stays there when cases are
//! added.
//!
//! Every row carries a `metadata` object (session file, node id, case, variant, model, why it
//! was chosen), so a dataset can be traced back to its answers. `datasets` loads it as one
//! more column and TRL's trainers keep only the columns they know; `--no-metadata` leaves it
//! out for consumers that refuse unknown keys.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::llm::{ChatMessage, Role};
use crate::state::session::{Node, NodeKind, NodeStatus, Session};

/// What may be chosen.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct Filter {
    /// Only answers with a mean of at least N stars (sft: the chosen answer; pairs: the
    /// chosen side).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=5))]
    pub min_stars: Option<u8>,
    /// Only answers that passed all their checks (answers without checks are left out).
    #[arg(long)]
    pub passing: bool,
    /// Only answers of these variants (repeatable).
    #[arg(long = "variant", value_name = "NAME")]
    pub variants: Vec<String>,
    /// Only answers of these models (repeatable): distil a stronger model's answers.
    #[arg(long = "model", value_name = "NAME")]
    pub models: Vec<String>,
    /// Only this rater's stars and votes count. Promotions record no rater, so they are
    /// then not used.
    #[arg(long, value_name = "NAME")]
    pub rater: Option<String>,
}

impl Filter {
    pub fn is_set(&self) -> bool {
        self.min_stars.is_some()
            || self.passing
            || !self.variants.is_empty()
            || !self.models.is_empty()
            || self.rater.is_some()
    }
}

/// Why an answer was chosen for its case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    Promoted,
    Rated,
    Passed,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Promoted => "promoted",
            Reason::Rated => "rated",
            Reason::Passed => "passed",
        }
    }
}

/// The answer chosen for one case.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Choice {
    pub case: String,
    pub node: u64,
    pub reason: Reason,
    pub stars: Option<f64>,
}

/// A finished, complete answer (or rewrite) that was actually sent.
fn usable(n: &Node) -> bool {
    matches!(n.kind, NodeKind::Answer | NodeKind::Rewrite)
        && n.status == NodeStatus::Done
        && n.error.is_none()
        && !n.text.trim().is_empty()
        && !["incomplete", "not_sent", "pruned"]
            .iter()
            .any(|k| n.meta.contains_key(*k))
}

/// Mean stars and net thumbs of `id`, counting only `rater`'s ratings when given.
fn rating_of(s: &Session, id: u64, rater: Option<&str>) -> (Option<f64>, i64) {
    let mut stars = Vec::new();
    let mut thumbs = 0i64;
    for r in s
        .ratings
        .iter()
        .filter(|r| r.node == id && rater.is_none_or(|x| r.rater == x))
    {
        if let Some(k) = r.stars {
            stars.push(f64::from(k));
        }
        if let Some(t) = r.thumb {
            thumbs += i64::from(t.signum());
        }
    }
    let mean = (!stars.is_empty()).then(|| stars.iter().sum::<f64>() / stars.len() as f64);
    (mean, thumbs)
}

fn allowed(s: &Session, n: &Node, f: &Filter) -> bool {
    usable(n)
        && (f.variants.is_empty() || f.variants.contains(&n.variant))
        && (f.models.is_empty() || f.models.contains(&n.model))
        && (!f.passing || n.passed() == Some(true))
        && f.min_stars.is_none_or(|min| {
            rating_of(s, n.id, f.rater.as_deref())
                .0
                .is_some_and(|m| m >= f64::from(min))
        })
}

/// Nodes some run promoted to be its pane's answer.
fn promoted(s: &Session) -> BTreeSet<u64> {
    s.nodes
        .iter()
        .filter_map(|n| n.meta.get("promoted"))
        .filter_map(|v| v.parse().ok())
        .collect()
}

/// Cases in the session's order, then any only the nodes name.
fn case_order(s: &Session) -> Vec<String> {
    let mut out: Vec<String> = s.cases.iter().map(|c| c.name.clone()).collect();
    for n in &s.nodes {
        if !out.contains(&n.case) {
            out.push(n.case.clone());
        }
    }
    out
}

/// The chosen answer per case (cases with none are left out).
pub(crate) fn choices(s: &Session, f: &Filter) -> Vec<Choice> {
    let promoted = if f.rater.is_some() {
        BTreeSet::new()
    } else {
        promoted(s)
    };
    let rater = f.rater.as_deref();
    let mut out = Vec::new();
    for case in case_order(s) {
        let cands: Vec<&Node> = s
            .nodes
            .iter()
            .filter(|n| n.case == case && allowed(s, n, f))
            .collect();
        let rated = |n: &&Node| {
            let (stars, thumbs) = rating_of(s, n.id, rater);
            stars.is_some() || thumbs > 0
        };
        let tiers: [(Reason, Vec<&Node>); 3] = [
            (
                Reason::Promoted,
                cands
                    .iter()
                    .copied()
                    .filter(|n| promoted.contains(&n.id))
                    .collect(),
            ),
            (Reason::Rated, cands.iter().copied().filter(rated).collect()),
            (
                Reason::Passed,
                cands
                    .iter()
                    .copied()
                    .filter(|n| n.passed() == Some(true))
                    .collect(),
            ),
        ];
        let Some((reason, tier)) = tiers.into_iter().find(|(_, t)| !t.is_empty()) else {
            continue;
        };
        // Best: mean stars, net thumbs, passed, then the newest.
        let key = |n: &Node| {
            let (stars, thumbs) = rating_of(s, n.id, rater);
            (
                stars.unwrap_or(f64::NEG_INFINITY),
                thumbs,
                n.passed() == Some(true),
                n.id,
            )
        };
        let Some(best) = tier.into_iter().max_by(|a, b| {
            let (ka, kb) = (key(a), key(b));
            ka.0.total_cmp(&kb.0)
                .then(ka.1.cmp(&kb.1))
                .then(ka.2.cmp(&kb.2))
                .then(ka.3.cmp(&kb.3))
        }) else {
            continue;
        };
        out.push(Choice {
            case,
            node: best.id,
            reason,
            stars: rating_of(s, best.id, rater).0,
        });
    }
    out
}

/// The messages that asked for `n`: a rewrite's own request is the rewrite instruction, so
/// it answers the request of the answer it revises.
fn prompt_of<'a>(s: &'a Session, n: &'a Node) -> &'a [ChatMessage] {
    let mut cur = n;
    let mut seen = BTreeSet::new();
    while cur.kind != NodeKind::Answer && seen.insert(cur.id) {
        match cur.parent.and_then(|p| s.node(p)) {
            Some(p) => cur = p,
            None => break,
        }
    }
    &cur.request.messages
}

fn assistant(text: &str) -> Value {
    json!([ChatMessage::new(Role::Assistant, text)])
}

/// One exported row and the case it belongs to (the split keeps cases whole).
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub case: String,
    pub value: Value,
}

/// SFT rows, one per chosen answer.
pub(crate) fn sft_rows(s: &Session, f: &Filter, source: &str, metadata: bool) -> Vec<Row> {
    choices(s, f)
        .into_iter()
        .filter_map(|c| {
            let n = s.node(c.node)?;
            let mut messages = prompt_of(s, n).to_vec();
            messages.push(ChatMessage::new(Role::Assistant, n.text.clone()));
            let mut value = json!({ "messages": messages });
            if metadata {
                value["metadata"] = json!({
                    "session": source,
                    "node": n.id,
                    "case": n.case,
                    "variant": n.variant,
                    "model": n.model,
                    "chosen_by": c.reason.as_str(),
                    "stars": c.stars,
                    "passed": n.passed(),
                });
            }
            Some(Row {
                case: c.case,
                value,
            })
        })
        .collect()
}

/// Preference pairs, one per decisive vote whose chosen side passes the filter (`--rater`:
/// only that rater's votes).
pub(crate) fn pair_rows(s: &Session, f: &Filter, source: &str, metadata: bool) -> Vec<Row> {
    let mut out = Vec::new();
    for v in &s.votes {
        if f.rater.as_deref().is_some_and(|r| r != v.rater) {
            continue;
        }
        let (chosen, rejected) = match v.outcome.as_str() {
            "left" => (v.left, v.right),
            "right" => (v.right, v.left),
            _ => continue,
        };
        let (Some(c), Some(r)) = (s.node(chosen), s.node(rejected)) else {
            continue;
        };
        if !allowed(s, c, f) || !usable(r) {
            continue;
        }
        let prompt = prompt_of(s, c);
        let rejected_prompt = prompt_of(s, r);
        let mut value = json!({
            "prompt": prompt,
            "chosen": assistant(&c.text),
            "rejected": assistant(&r.text),
        });
        if metadata {
            value["metadata"] = json!({
                "session": source,
                "case": c.case,
                "chosen_node": c.id,
                "rejected_node": r.id,
                "chosen_variant": c.variant,
                "rejected_variant": r.variant,
                "chosen_model": c.model,
                "rejected_model": r.model,
                "rater": v.rater,
                // Set when the two sides were asked differently (different variants).
                "rejected_prompt": (rejected_prompt != prompt).then_some(rejected_prompt),
            });
        }
        out.push(Row {
            case: c.case.clone(),
            value,
        });
    }
    out
}

/// Where a case falls in [0, 1): the first 8 bytes of SHA-256 of its name.
pub(crate) fn case_position(case: &str) -> f64 {
    let digest = Sha256::digest(case.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(head) >> 11) as f64 / (1u64 << 53) as f64
}

/// Rows of cases below `train` go to training, the rest to validation.
pub(crate) fn split(rows: Vec<Row>, train: f64) -> (Vec<Row>, Vec<Row>) {
    rows.into_iter()
        .partition(|r| case_position(&r.case) < train)
}

/// JSON lines.
pub(crate) fn to_jsonl(rows: &[Row]) -> anyhow::Result<String> {
    let mut out = String::new();
    for r in rows {
        out.push_str(&serde_json::to_string(&r.value)?);
        out.push('\n');
    }
    Ok(out)
}

/// `data.jsonl` → `data.train.jsonl` and `data.validation.jsonl`.
pub(crate) fn split_paths(out: &Path) -> (PathBuf, PathBuf) {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let ext = out
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_else(|| "jsonl".into());
    (
        out.with_file_name(format!("{stem}.train.{ext}")),
        out.with_file_name(format!("{stem}.validation.{ext}")),
    )
}

#[cfg(test)]
mod tests;
