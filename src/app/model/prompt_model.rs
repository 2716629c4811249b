//! The data of the prompt views (which panes show their full chat, the previews of what each
//! variant sends, the prompt diff layer), apart from the code over the app state in
//! `app::update::prompt_view`, so the state can hold them without depending on that code.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use super::state::AppState;

use crate::chat::ChatMessage;
use crate::prompt::marked::{self, MarkedMessage};
use crate::prompt::{Case, Variant};
use crate::state::diff::DiffSpan;
use crate::state::session::NodeKind;

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

/// Where the chat a pane shows comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// Not run yet: what the variant will send.
    WillSend,
    /// What the pane's answer was made from; the variant still sends the same.
    Sent,
    /// What the answer was made from, no longer what the variant sends (it was edited, or
    /// the answer is a technique's node); the words say which.
    SentOther(String),
}

/// The chat a pane shows.
#[derive(Debug, Clone)]
pub(crate) struct ShownChat<'a> {
    pub chat: Cow<'a, [MarkedMessage]>,
    pub source: Source,
    pub deferred: Option<&'a str>,
}

/// The chat pane `i` shows: its answer's request, else its variant's preview.
pub(crate) fn shown(s: &AppState, i: usize) -> Option<ShownChat<'_>> {
    let v = s.prompt.variants.get(i)?;
    let preview = s.prompt_view.previews.get(&v.name);
    match s.pane_node(i) {
        Some(n) => {
            let sent = &n.request.messages;
            match preview.filter(|p| p.messages == *sent) {
                Some(p) => Some(ShownChat {
                    chat: Cow::Borrowed(&p.marked),
                    source: Source::Sent,
                    deferred: None,
                }),
                None => Some(ShownChat {
                    chat: Cow::Owned(marked::plain(sent)),
                    source: Source::SentOther(if n.kind == NodeKind::Answer {
                        "sent by an earlier version of this variant".into()
                    } else {
                        format!("sent for this {}", n.kind.as_str())
                    }),
                    deferred: None,
                }),
            }
        }
        None => preview.map(|p| ShownChat {
            chat: Cow::Borrowed(&p.marked),
            source: Source::WillSend,
            deferred: p.deferred.as_deref(),
        }),
    }
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
