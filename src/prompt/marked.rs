//! The chat as sent, with every piece marked by what put it there: the role (system message),
//! worked examples, earlier turns of a conversation, the in-context instruction and passages,
//! the case's variable values, the step-by-step cue.
//!
//! [`super::render::prepare`] builds the request *from* these pieces (a message's content is
//! the concatenation of its pieces), so a view that draws them shows exactly what was sent,
//! after retrieval and example selection, and can never drift from the renderer.

use std::collections::BTreeMap;

use super::template;
use crate::chat::{ChatMessage, Role};

/// Which part of the chat a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Block {
    /// The role / persona: the system message.
    System,
    /// A turn of worked example `index` (from 0) of `of` (few-shot, one-shot, chain of
    /// thought; fixed or selected for the case).
    Example { index: usize, of: usize },
    /// An earlier turn of a conversation case (or, for a chat not built here, any turn
    /// before the last).
    History,
    /// The turn the model answers.
    Task,
}

/// What put a piece of text into a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Template or turn text as written.
    Text,
    /// The value of the case's variable of this name.
    Var(String),
    /// The in-context instruction ("Answer using only the context below…").
    ContextInstruction,
    /// One in-context document with its tags: pasted (`None`) or retrieved (`file:lines`).
    Passage(Option<String>),
    /// "Question: " between the context and the task.
    QuestionLabel,
    /// The zero-shot chain-of-thought cue, with the blank line before it.
    StepByStep,
}

/// One chat message in marked pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MarkedMessage {
    pub role: Role,
    pub block: Block,
    pub pieces: Vec<(Piece, String)>,
}

impl MarkedMessage {
    pub fn new(role: Role, block: Block) -> MarkedMessage {
        MarkedMessage {
            role,
            block,
            pieces: Vec::new(),
        }
    }

    /// Append a piece (empty text is dropped; a piece like the last one is merged into it).
    pub fn push(&mut self, piece: Piece, text: impl AsRef<str>) {
        let text = text.as_ref();
        if text.is_empty() {
            return;
        }
        match self.pieces.last_mut() {
            Some((p, t)) if *p == piece && piece == Piece::Text => t.push_str(text),
            _ => self.pieces.push((piece, text.to_string())),
        }
    }

    /// `template` filled from `vars`, each value marked with its variable.
    pub fn push_template(&mut self, template_text: &str, vars: &BTreeMap<String, String>) {
        for (var, text) in template::segments(template_text, vars) {
            match var {
                Some(name) => self.push(Piece::Var(name.to_string()), text),
                None => self.push(Piece::Text, text),
            }
        }
    }

    /// The message content: every piece, in order.
    pub fn content(&self) -> String {
        let mut s = String::with_capacity(self.pieces.iter().map(|(_, t)| t.len()).sum());
        for (_, t) in &self.pieces {
            s.push_str(t);
        }
        s
    }

    pub fn to_chat(&self) -> ChatMessage {
        ChatMessage::new(self.role, self.content())
    }

    /// How many in-context passages this message carries.
    pub fn passages(&self) -> usize {
        self.pieces
            .iter()
            .filter(|(p, _)| matches!(p, Piece::Passage(_)))
            .count()
    }
}

/// A chat that was not built here (an answer recorded by an older build, or sent by an
/// earlier version of the variant): one plain piece per message; the first system message is
/// the role, the last user turn the task, everything between earlier turns.
pub(crate) fn plain(messages: &[ChatMessage]) -> Vec<MarkedMessage> {
    let last_user = messages.iter().rposition(|m| m.role == Role::User);
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let block = if i == 0 && m.role == Role::System {
                Block::System
            } else if Some(i) == last_user {
                Block::Task
            } else {
                Block::History
            };
            let mut out = MarkedMessage::new(m.role, block);
            out.push(Piece::Text, &m.content);
            out
        })
        .collect()
}

/// What a chat is made of, in counts: the compact prompt view's first line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Anatomy {
    /// The system message, if any.
    pub system: Option<String>,
    /// Worked examples (pairs of turns).
    pub examples: usize,
    /// In-context passages.
    pub passages: usize,
    /// Earlier conversation turns.
    pub history: usize,
    /// The step-by-step cue is on the task.
    pub step_by_step: bool,
}

pub(crate) fn anatomy(chat: &[MarkedMessage]) -> Anatomy {
    let mut a = Anatomy::default();
    for m in chat {
        match m.block {
            Block::System => a.system = Some(m.content()),
            Block::Example { of, .. } => a.examples = of,
            Block::History => a.history += 1,
            Block::Task => {}
        }
        a.passages += m.passages();
        a.step_by_step |= m.pieces.iter().any(|(p, _)| *p == Piece::StepByStep);
    }
    a
}

/// The pieces of the turn being answered, from the task itself on (the context block and
/// its question label left out): the user message as the compact view shows it.
pub(crate) fn task_pieces(chat: &[MarkedMessage]) -> Vec<(Piece, String)> {
    let Some(task) = chat.iter().rev().find(|m| m.block == Block::Task) else {
        return Vec::new();
    };
    let start = task
        .pieces
        .iter()
        .rposition(|(p, _)| *p == Piece::QuestionLabel)
        .map_or(0, |i| i + 1);
    let start = if start == 0 {
        // No label: skip a leading context block that has none (never built here, kept
        // for chats from elsewhere).
        task.pieces
            .iter()
            .position(|(p, _)| !matches!(p, Piece::ContextInstruction | Piece::Passage(_)))
            .unwrap_or(0)
    } else {
        start
    };
    task.pieces[start..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_merge_plain_text_and_concatenate_to_the_content() {
        let vars: BTreeMap<String, String> = [("w".to_string(), "big".to_string())].into();
        let mut m = MarkedMessage::new(Role::User, Block::Task);
        m.push(Piece::Text, "Say ");
        m.push_template("a synonym for {{w}} and ", &vars);
        m.push(Piece::Text, "");
        m.push(Piece::StepByStep, "\n\nthink");
        assert_eq!(
            m.pieces,
            [
                (Piece::Text, "Say a synonym for ".to_string()),
                (Piece::Var("w".into()), "big".to_string()),
                (Piece::Text, " and ".to_string()),
                (Piece::StepByStep, "\n\nthink".to_string()),
            ]
        );
        assert_eq!(m.content(), "Say a synonym for big and \n\nthink");
    }

    #[test]
    fn a_plain_chat_is_role_history_and_task() {
        let chat = plain(&[
            ChatMessage::new(Role::System, "sys"),
            ChatMessage::new(Role::User, "q1"),
            ChatMessage::new(Role::Assistant, "a1"),
            ChatMessage::new(Role::User, "q2"),
        ]);
        let blocks: Vec<Block> = chat.iter().map(|m| m.block).collect();
        assert_eq!(
            blocks,
            [Block::System, Block::History, Block::History, Block::Task]
        );
        let a = anatomy(&chat);
        assert_eq!(a.system.as_deref(), Some("sys"));
        assert_eq!((a.examples, a.history, a.passages), (0, 2, 0));
        assert_eq!(task_pieces(&chat), [(Piece::Text, "q2".to_string())]);
    }
}
