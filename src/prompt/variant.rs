//! What a prompt file holds once validated: variants, cases, their turns and worked
//! examples. A leaf below the parser (`prompt/mod.rs`) and the modules it and the renderer
//! call (cases files, retrieval, example selection), so none of them imports the parser.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{retrieve, select};
use crate::chat::Sampling;
use crate::eval::expect::Expect;

/// A worked example, rendered as a user turn followed by an assistant turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Example {
    pub input: String,
    pub output: String,
}

/// A prompt variant after validation: defaults applied, context files read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Variant {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub model: String,
    /// Role / persona: the system message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The task, with `{{var}}`s filled from the case.
    pub template: String,
    /// One-shot / few-shot / chain-of-thought worked examples, sent as prior chat turns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<Example>,
    /// In-context documents the answer must come from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<String>,
    /// The instruction that goes with `context`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_instruction: Option<String>,
    /// Zero-shot chain of thought: append "Let's think this through step by step."
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub step_by_step: bool,
    #[serde(default)]
    pub sampling: Sampling,
    /// Set on variants an LLM proposed: what the rewrite was meant to improve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<String>,
    /// Retrieved in-context passages (`retrieve = { … }`), chosen per case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieve: Option<retrieve::Retrieve>,
    /// Few-shot examples chosen per case from a pool (`select = { … }`); replaces `examples`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<select::Select>,
}

impl Variant {
    /// A variant with only a name, a model and a task; everything else empty (what a new
    /// variant in the app and a variant added to a prompt file start from).
    pub(crate) fn new(name: &str, model: &str, template: &str) -> Variant {
        Variant {
            name: name.to_string(),
            description: None,
            model: model.to_string(),
            system: None,
            template: template.to_string(),
            examples: vec![],
            context: vec![],
            context_instruction: None,
            step_by_step: false,
            sampling: Default::default(),
            generated: None,
            retrieve: None,
            select: None,
        }
    }
}

/// A test case: variable values and what a good answer must satisfy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Case {
    pub name: String,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Expect::is_empty")]
    pub expect: Expect,
    /// A conversation: the earlier turns are sent as history and the variant answers the
    /// last (user) turn. Empty for a single-turn case, which fills the variant's template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub turns: Vec<Turn>,
}

/// One turn of a multi-turn case: `{ user = "…" }` or `{ assistant = "…" }`. `{{vars}}` are
/// filled from the case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum Turn {
    User(String),
    Assistant(String),
}

impl Turn {
    pub fn text(&self) -> &str {
        match self {
            Turn::User(t) | Turn::Assistant(t) => t,
        }
    }
}

/// A conversation must end on a user turn (that is what the variants answer).
pub(crate) fn validate_turns(turns: &[Turn]) -> Result<(), String> {
    match turns.last() {
        None | Some(Turn::User(_)) => Ok(()),
        Some(Turn::Assistant(_)) => {
            Err("the last turn must be a user turn: the variants answer it".into())
        }
    }
}
