//! The data of the prompt views (which panes show their full chat, the previews of what each
//! variant sends, the prompt diff layer), apart from the code over the app state in
//! `app::update::prompt_view`, so the state can hold them without depending on that code.

use std::collections::{BTreeMap, BTreeSet};

use crate::chat::ChatMessage;
use crate::prompt::marked::MarkedMessage;
use crate::prompt::{Case, Variant};
use crate::state::diff::DiffSpan;

/// The prompt views of all panes.
#[derive(Debug, Clone, Default)]
pub(crate) struct PromptViews {
    /// Variants (by name) whose pane shows the full chat.
    pub(crate) expanded: BTreeSet<String>,
    /// Per variant name: what it will send on the selected case.
    pub(crate) previews: BTreeMap<String, Preview>,
}

/// A variant's chat on a case, as it will be sent.
#[derive(Debug, Clone)]
pub(crate) struct Preview {
    /// What it was built from (rebuilt when either changes).
    pub(crate) variant: Variant,
    pub(crate) case: Option<Case>,
    pub(crate) marked: Vec<MarkedMessage>,
    pub(crate) messages: Vec<ChatMessage>,
    /// Parts left out of the preview, in words ("context chosen by embedding when run").
    pub(crate) deferred: Option<String>,
    /// What retrieval and example selection chose, as a node records it (`retrieved`,
    /// `examples_selected`): the context layer's scores.
    pub(crate) meta: std::collections::BTreeMap<String, String>,
}

impl PromptViews {
    pub fn is_expanded(&self, variant: &str) -> bool {
        self.expanded.contains(variant)
    }
}

/// The prompt diff layer: the focused variant's chat (what it sends now) against another
/// chat, cycled through the other panes and then the chat its own answer was sent with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PromptDiff {
    /// The focused variant.
    pub variant: usize,
    /// Which of the targets (other panes, then its own sent chat) is compared.
    pub target: usize,
    /// How many targets there were when it opened.
    pub targets: usize,
    /// `other → focused`, for the title.
    pub old_label: String,
    pub new_label: String,
    pub spans: Vec<DiffSpan>,
    pub added: usize,
    pub removed: usize,
    pub scroll: usize,
}

/// The chat as one text, each message under a `[role · block]` line: what the prompt diff
/// compares, so a change in any message (or in the technique blocks) shows.
pub(crate) fn chat_text(chat: &[MarkedMessage]) -> String {
    let mut out = String::new();
    for m in chat {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&format!("[{}]\n", block_label(m)));
        out.push_str(&m.content());
    }
    out
}

/// `system`, `example 2/3 · user`, `earlier turn · assistant`, `user`.
pub(crate) fn block_label(m: &MarkedMessage) -> String {
    use crate::chat::Role;
    use crate::prompt::marked::Block;
    let role = match m.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    match m.block {
        Block::System => "system".to_string(),
        Block::Example { index, of } => format!("example {}/{of} · {role}", index + 1),
        Block::History => format!("earlier turn · {role}"),
        Block::Task => role.to_string(),
    }
}
