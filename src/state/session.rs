//! A session: everything needed to reproduce and judge a set of runs.
//!
//! Every response is a [`Node`] with an optional parent, so critiques, rewrites and branches
//! hang off the answers they came from. Each node keeps the exact request it was made from,
//! so editing a variant later never rewrites history. Ratings and votes have their own
//! tables.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::chat::{ChatRequest, FinishReason, ModelIdentity};
use crate::eval::expect::CheckResult;
use crate::price::Price;
use crate::prompt::{Case, Variant};
use crate::state::logprobs::TokenProbs;
use crate::state::timing::{approx_tokens, StreamStats};

/// The session file format version this build writes.
pub(crate) const FORMAT: u32 = 2;

/// What produced a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum NodeKind {
    Answer,
    Critique,
    Rewrite,
    Thought,
    Value,
    Judge,
    VariantProposal,
    /// A call the model made in its parent answer: `text` holds the arguments as sent,
    /// `meta.tool` the tool's name, `meta.call_id` the call's id.
    ToolCall,
    /// The answer to its parent call: `text` is the result the model was given, `meta.source`
    /// says what produced it (mock, command, mcp, edited, not_allowed, error).
    ToolResult,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Answer => "answer",
            NodeKind::Critique => "critique",
            NodeKind::Rewrite => "rewrite",
            NodeKind::Thought => "thought",
            NodeKind::Value => "value",
            NodeKind::Judge => "judge",
            NodeKind::VariantProposal => "variant-proposal",
            NodeKind::ToolCall => "tool-call",
            NodeKind::ToolResult => "tool-result",
        }
    }
}

/// Where a node's generation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum NodeStatus {
    /// Waiting to start.
    Queued,
    /// Generating; a session saved now marks the text as incomplete.
    Streaming,
    Done,
    Cancelled,
    Error,
}

/// One response (or critique, thought, judgement...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Node {
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u64>,
    pub kind: NodeKind,
    pub variant: String,
    pub case: String,
    pub model: String,
    pub status: NodeStatus,
    /// RFC 3339 time the request started.
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub tokens_out: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tok_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// A score given to this node (value estimates, judge scores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
    /// Free-form annotations (technique parameters, stop reasons, prune marks...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    pub text: String,
    /// The exact messages and sampling sent.
    pub request: ChatRequest,
    /// The probabilities of the answer's tokens, when the backend gave them. Not in the
    /// TOML: `store::logprobs` keeps them in a binary file beside it.
    #[serde(skip)]
    pub logprobs: TokenProbs,
}

impl Node {
    /// A new node for a request about to start.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        id: u64,
        parent: Option<u64>,
        kind: NodeKind,
        variant: &str,
        case: &str,
        model: &str,
        request: ChatRequest,
        started_at: String,
    ) -> Node {
        Node {
            id,
            parent,
            kind,
            variant: variant.to_string(),
            case: case.to_string(),
            model: model.to_string(),
            status: NodeStatus::Streaming,
            started_at,
            finish_reason: None,
            error: None,
            prompt_tokens: None,
            tokens_out: 0,
            ttft_ms: None,
            tok_per_s: None,
            duration_ms: None,
            score: None,
            checks: Vec::new(),
            meta: BTreeMap::new(),
            text: String::new(),
            request,
            logprobs: TokenProbs::default(),
        }
    }

    /// Record the stream's figures. Counts the backend did not send are either counted with
    /// the model's tokenizer (`stats.tokens_estimated`; the node is marked
    /// `tokens = "tokenizer"`) or approximated from the text ([`approx_tokens`]; marked
    /// `tokens = "approx"`). Reported counts leave the node unmarked.
    pub fn apply_stats(&mut self, stats: &StreamStats) {
        self.prompt_tokens = stats.prompt_tokens;
        self.tokens_out = stats.tokens_out;
        self.ttft_ms = stats.ttft_ms;
        self.tok_per_s = stats.tok_per_s.map(|r| (r * 100.0).round() / 100.0);
        let mut approx = stats.tokens_counted;
        if self.prompt_tokens.is_none() {
            let sent: u64 = self
                .request
                .messages
                .iter()
                .map(|m| approx_tokens(&m.content))
                .sum();
            self.prompt_tokens = Some(sent);
            approx = true;
        }
        if approx {
            self.meta.insert("tokens".into(), "approx".into());
        } else if stats.tokens_estimated {
            self.meta.insert("tokens".into(), "tokenizer".into());
        }
    }

    /// What this answer cost by `prices` (dollars), or `None` when its model's price is
    /// unknown.
    pub fn cost(&self, prices: &BTreeMap<String, Price>) -> Option<f64> {
        prices
            .get(&self.model)
            .map(|p| p.cost(self.prompt_tokens.unwrap_or(0), self.tokens_out))
    }

    /// The token counts are estimates (the model's tokenizer, or about 4 characters a
    /// token), not the backend's own.
    pub fn tokens_approx(&self) -> bool {
        self.tokens_estimate().is_some()
    }

    /// How the token counts were estimated when the backend sent none: `"tokenizer"` (the
    /// model's tokenizer) or `"approx"` (from the text's length); `None` when reported.
    pub fn tokens_estimate(&self) -> Option<&str> {
        self.meta
            .get("tokens")
            .map(String::as_str)
            .filter(|v| matches!(*v, "approx" | "tokenizer"))
    }

    /// Close the node from its stream's outcome: the figures, the elapsed time, the status and
    /// finish reason, the error (a failed node that had text is marked `incomplete`). Every
    /// driver finishes nodes through this one function, so a node ends the same whichever
    /// front end streamed it.
    pub fn finish(
        &mut self,
        outcome: Result<FinishReason, String>,
        stats: &StreamStats,
        elapsed: Duration,
    ) {
        self.duration_ms = Some(elapsed.as_millis() as u64);
        self.apply_stats(stats);
        match outcome {
            Ok(FinishReason::Cancelled) => {
                self.status = NodeStatus::Cancelled;
                self.finish_reason = Some(FinishReason::Cancelled);
            }
            Ok(r) => {
                self.status = NodeStatus::Done;
                self.finish_reason = Some(r);
            }
            Err(e) => {
                self.status = NodeStatus::Error;
                self.finish_reason = Some(FinishReason::Error);
                self.error = Some(e);
                if !self.text.is_empty() {
                    self.meta.insert("incomplete".into(), "true".into());
                }
            }
        }
    }

    /// With `stop_on` in its sampling: whether the text so far already decides `expect`, in
    /// which case the node is marked (`stopped_on = "first_fail: none"`) and its stream
    /// should end with [`FinishReason::ChecksDecided`]. Both front ends ask this after every
    /// delta, so they stop at the same text.
    pub fn decided_early(&mut self, expect: &crate::eval::expect::Expect) -> bool {
        let Some(stop) = self.request.sampling.stop_on else {
            return false;
        };
        match expect.decided(&self.text, stop) {
            Some(by) => {
                self.meta
                    .insert("stopped_on".into(), format!("{}: {by}", stop.as_str()));
                true
            }
            None => false,
        }
    }

    pub fn passed(&self) -> Option<bool> {
        if self.checks.is_empty() {
            None
        } else {
            Some(self.checks.iter().all(|c| c.pass))
        }
    }
}

/// A human rating of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rating {
    pub node: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stars: Option<u8>,
    /// +1 up, -1 down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb: Option<i8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub rater: String,
    pub at: String,
    /// The journal sequence number of the last change folded into this record
    /// (`store::journal`); the largest `seq` in a session file tells a replay which journal
    /// records the file already contains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

impl Rating {
    /// Nothing left: every field was cleared.
    pub fn is_empty(&self) -> bool {
        self.stars.is_none() && self.thumb.is_none() && self.note.is_none()
    }
}

/// A blind pairwise preference between two nodes answering the same case.
///
/// `left` and `right` are the nodes as they were shown on each side, so the side a variant
/// appeared on is kept (side bias can be checked later).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Vote {
    pub left: u64,
    pub right: u64,
    /// `left`, `right`, `tie` or `both_bad`.
    pub outcome: String,
    pub rater: String,
    pub at: String,
    /// Journal sequence number, as for [`Rating::seq`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// The node meta key that names the variant version an answer was made with.
pub(crate) const VERSION_META: &str = "variant_version";

/// One version of one variant (recorded and read by [`crate::state::versions`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VariantVersion {
    pub variant: String,
    /// 1, 2, … per variant name.
    pub number: u32,
    /// The first 12 hex digits of the SHA-256 of the variant's content.
    pub hash: String,
    /// What changed from the version before ("template", "model → other", "proposed: …").
    pub label: String,
    /// RFC 3339 time it was recorded.
    pub at: String,
    /// The variant as it was.
    pub content: Variant,
}

impl VariantVersion {
    /// `v2 3fa1c29b0e41`: what an answer's meta records.
    pub fn tag(&self) -> String {
        format!("v{} {}", self.number, self.hash)
    }
}

/// The outcomes a [`Vote`] may record.
pub(crate) const VOTE_OUTCOMES: [&str; 4] = ["left", "right", "tie", "both_bad"];

/// A whole session file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Session {
    pub format: u32,
    pub title: String,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_file: Option<String>,
    /// The models used, by configured name.
    #[serde(default)]
    pub models: BTreeMap<String, ModelIdentity>,
    /// The variants as they were last defined in this session.
    #[serde(default, rename = "variant")]
    pub variants: Vec<Variant>,
    /// The price of each model (by configured name) when the session ran; a model missing
    /// here has an unknown cost.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prices: BTreeMap<String, Price>,
    #[serde(default, rename = "case")]
    pub cases: Vec<Case>,
    #[serde(default, rename = "node", skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<Node>,
    #[serde(default, rename = "rating", skip_serializing_if = "Vec::is_empty")]
    pub ratings: Vec<Rating>,
    #[serde(default, rename = "vote", skip_serializing_if = "Vec::is_empty")]
    pub votes: Vec<Vote>,
    /// Every version of every variant, in the order they were made
    /// ([`crate::state::versions`]). Files written before versions existed have none.
    #[serde(default, rename = "version", skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<VariantVersion>,
}

impl Session {
    pub fn new(title: &str, created: String, prompt_file: Option<String>) -> Session {
        Session {
            format: FORMAT,
            title: title.to_string(),
            created,
            prompt_file,
            models: BTreeMap::new(),
            prices: BTreeMap::new(),
            variants: Vec::new(),
            cases: Vec::new(),
            nodes: Vec::new(),
            ratings: Vec::new(),
            votes: Vec::new(),
            versions: Vec::new(),
        }
    }

    /// The id the next node gets.
    pub fn next_node_id(&self) -> u64 {
        self.nodes.iter().map(|n| n.id).max().map_or(1, |m| m + 1)
    }

    pub fn node(&self, id: u64) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn node_mut(&mut self, id: u64) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.id == id)
    }

    /// Add a node under `parent` (same variant and case) for `request`, with annotations;
    /// returns it, not yet started.
    pub fn push_child(
        &mut self,
        parent: u64,
        kind: NodeKind,
        model: &str,
        request: ChatRequest,
        started_at: String,
        meta: &[(&str, String)],
    ) -> &mut Node {
        let id = self.next_node_id();
        let (variant, case, version) = self
            .node(parent)
            .map(|p| {
                let version = p.meta.get(VERSION_META).cloned();
                (p.variant.clone(), p.case.clone(), version)
            })
            .unwrap_or_default();
        let mut node = Node::start(
            id,
            Some(parent),
            kind,
            &variant,
            &case,
            model,
            request,
            started_at,
        );
        // A rewrite or branch belongs to the version its answer was made with.
        if let Some(v) = version {
            node.meta.insert(VERSION_META.into(), v);
        }
        for (k, v) in meta {
            node.meta.insert((*k).to_string(), v.clone());
        }
        self.nodes.push(node);
        let last = self.nodes.len() - 1;
        &mut self.nodes[last]
    }

    /// What a save keeps of this session: streams still running are marked cancelled and
    /// incomplete, so a reopened session never shows a stream as live. The writer
    /// (`store::format`) applies this on the fly without copying; this copy is what tests
    /// compare a reloaded session with.
    #[cfg(test)]
    pub fn for_saving(&self) -> Session {
        let mut s = self.clone();
        for n in &mut s.nodes {
            if matches!(n.status, NodeStatus::Streaming | NodeStatus::Queued) {
                n.status = NodeStatus::Cancelled;
                n.meta.insert("incomplete".into(), "true".into());
            }
        }
        s
    }
}
