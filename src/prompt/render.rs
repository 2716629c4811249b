//! Turning a variant and a case into the exact chat messages sent to a model.
//!
//! Techniques are rendered the same way for every backend: the role is the system message,
//! worked examples (one-shot, few-shot, chain-of-thought) are prior user/assistant turns,
//! in-context documents precede the task with an instruction to answer only from them, and
//! zero-shot chain of thought appends a step-by-step cue.

use std::collections::BTreeMap;

use super::marked::{Block, MarkedMessage, Piece};
use super::template;
use super::{Case, Turn, Variant};
#[cfg(test)]
use crate::chat::ChatMessage;
use crate::chat::{ChatRequest, Role};

/// The cue zero-shot chain of thought appends to the task.
pub(crate) const STEP_BY_STEP: &str = "Let's think this through step by step.";

/// The instruction that goes with in-context documents unless a variant overrides it.
pub(crate) const CONTEXT_INSTRUCTION: &str = "Answer using only the context below. If the answer is not in the context, say \"I don't know\".";

/// A retrieved passage placed in the context block.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Passage {
    /// `file:first-last` lines.
    pub source: String,
    pub text: String,
}

/// A request ready to send, with what was chosen for it (retrieved chunks, selected
/// examples) as node metadata, so the session records it with the request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Prepared {
    pub request: ChatRequest,
    pub meta: BTreeMap<String, String>,
    /// The request's messages in marked pieces (`request.messages` is built from them).
    pub marked: Vec<MarkedMessage>,
}

/// Why a prepared request must not be sent: retrieval or example selection failed (an
/// unreadable file, an embedding server that is down). Sent anyway, the answer would be
/// compared as if it had its context; `run` and the panes fail the cell with this instead.
pub(crate) fn prepare_error(meta: &BTreeMap<String, String>) -> Option<String> {
    [
        ("retrieve_error", "retrieval failed"),
        ("select_error", "example selection failed"),
    ]
    .iter()
    .find_map(|(k, what)| meta.get(*k).map(|e| format!("{what}: {e}")))
}

/// The messages for `variant` filled with `vars` (a single-turn case).
#[cfg(test)]
pub(crate) fn messages(variant: &Variant, vars: &BTreeMap<String, String>) -> Vec<ChatMessage> {
    prepare_turns(variant, vars, &[]).request.messages
}

/// The request for `variant` filled with `vars`, with the variant's sampling.
pub(crate) fn request(variant: &Variant, vars: &BTreeMap<String, String>) -> ChatRequest {
    prepare_turns(variant, vars, &[]).request
}

/// The request for `variant` on `case`: a single-turn case fills the template; a
/// conversation sends its earlier turns as history and the variant answers the last one.
pub(crate) fn prepare(variant: &Variant, case: &Case) -> Prepared {
    prepare_turns(variant, &case.vars, &case.turns)
}

/// What chunks and examples are chosen for: the last user turn of a conversation, else the
/// rendered template.
fn question(variant: &Variant, vars: &BTreeMap<String, String>, turns: &[Turn]) -> String {
    match turns.last() {
        Some(t) => template::render(t.text(), vars),
        None => template::render(&variant.template, vars),
    }
}

fn prepare_turns(variant: &Variant, vars: &BTreeMap<String, String>, turns: &[Turn]) -> Prepared {
    let mut meta = BTreeMap::new();
    let q = question(variant, vars, turns);
    let examples = super::select::examples_for(variant, &q, &mut meta);
    let retrieved = super::retrieve::context_for(variant, vars, &q, &mut meta);
    let mut out = Vec::with_capacity(2 + 2 * examples.len() + turns.len());
    if let Some(system) = variant.system.as_deref().filter(|s| !s.trim().is_empty()) {
        let mut m = MarkedMessage::new(Role::System, Block::System);
        m.push_template(system, vars);
        out.push(m);
    }
    let of = examples.len();
    for (index, ex) in examples.iter().enumerate() {
        let block = Block::Example { index, of };
        let mut m = MarkedMessage::new(Role::User, block);
        m.push_template(&ex.input, vars);
        out.push(m);
        let mut m = MarkedMessage::new(Role::Assistant, block);
        m.push(Piece::Text, &ex.output);
        out.push(m);
    }
    let mut context = (!variant.context.is_empty() || !retrieved.is_empty())
        .then_some((variant, retrieved.as_slice()));
    if turns.is_empty() {
        let mut m = MarkedMessage::new(Role::User, Block::Task);
        finish_turn(
            &mut m,
            variant,
            context,
            |m| m.push_template(&variant.template, vars),
            true,
        );
        out.push(m);
    } else {
        // The context goes before the conversation (into its first user turn); the
        // step-by-step cue goes on the turn being answered.
        let last = turns.len() - 1;
        for (i, t) in turns.iter().enumerate() {
            let block = if i == last {
                Block::Task
            } else {
                Block::History
            };
            match t {
                Turn::Assistant(text) => {
                    let mut m = MarkedMessage::new(Role::Assistant, block);
                    m.push_template(text, vars);
                    out.push(m);
                }
                Turn::User(text) => {
                    let mut m = MarkedMessage::new(Role::User, block);
                    finish_turn(
                        &mut m,
                        variant,
                        context.take(),
                        |m| m.push_template(text, vars),
                        i == last,
                    );
                    out.push(m);
                }
            }
        }
    }
    Prepared {
        request: ChatRequest {
            messages: out.iter().map(MarkedMessage::to_chat).collect(),
            sampling: variant.sampling.clone(),
        },
        meta,
        marked: out,
    }
}

/// Fill in a seed for sampled requests that have none, so every run is reproducible from its
/// session file.
pub(crate) fn with_seed(mut request: ChatRequest, fresh_seed: u64) -> ChatRequest {
    if request.sampling.temperature.is_some_and(|t| t > 0.0) && request.sampling.seed.is_none() {
        request.sampling.seed = Some(fresh_seed);
    }
    request
}

/// The in-context block: the instruction, then each document (pasted or retrieved).
fn context_block(m: &mut MarkedMessage, variant: &Variant, retrieved: &[Passage]) {
    m.push(
        Piece::ContextInstruction,
        format!(
            "{}\n\n",
            variant
                .context_instruction
                .as_deref()
                .unwrap_or(CONTEXT_INSTRUCTION)
        ),
    );
    for doc in &variant.context {
        m.push(
            Piece::Passage(None),
            format!("<context>\n{}\n</context>\n\n", doc.trim_end()),
        );
    }
    for p in retrieved {
        m.push(
            Piece::Passage(Some(p.source.clone())),
            format!(
                "<context source=\"{}\">\n{}\n</context>\n\n",
                p.source,
                p.text.trim_end()
            ),
        );
    }
}

/// A user turn: the context block (if it goes here), the task, and the step-by-step cue on
/// the turn being answered.
fn finish_turn(
    m: &mut MarkedMessage,
    variant: &Variant,
    context: Option<(&Variant, &[Passage])>,
    task: impl FnOnce(&mut MarkedMessage),
    answered: bool,
) {
    if let Some((v, retrieved)) = context {
        context_block(m, v, retrieved);
        m.push(Piece::QuestionLabel, "Question: ");
    }
    task(m);
    if answered && variant.step_by_step {
        m.push(Piece::StepByStep, format!("\n\n{STEP_BY_STEP}"));
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use crate::chat::Sampling;
    use crate::prompt::Variant;

    pub(crate) fn variant() -> Variant {
        Variant {
            name: "v".into(),
            description: None,
            model: "m".into(),
            system: None,
            template: "Synonym for {{word}}?".into(),
            examples: vec![],
            context: vec![],
            context_instruction: None,
            step_by_step: false,
            sampling: Sampling::default(),
            generated: None,
            retrieve: None,
            select: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::variant;
    use super::*;
    use crate::prompt::{Case, Example, Turn};

    #[test]
    fn seeds_are_filled_only_for_sampled_requests() {
        let mut r = ChatRequest {
            messages: vec![],
            sampling: crate::chat::Sampling {
                temperature: Some(0.7),
                ..Default::default()
            },
        };
        assert_eq!(with_seed(r.clone(), 5).sampling.seed, Some(5));
        r.sampling.seed = Some(1);
        assert_eq!(with_seed(r.clone(), 5).sampling.seed, Some(1));
        r.sampling = crate::chat::Sampling::default();
        assert_eq!(with_seed(r, 5).sampling.seed, None);
    }

    fn vars() -> BTreeMap<String, String> {
        [("word".to_string(), "big".to_string())].into()
    }

    #[test]
    fn zero_shot_is_one_user_turn() {
        let m = messages(&variant(), &vars());
        assert_eq!(m, vec![ChatMessage::new(Role::User, "Synonym for big?")]);
    }

    #[test]
    fn role_becomes_system_and_examples_become_prior_turns() {
        let mut v = variant();
        v.system = Some("You are a thesaurus.".into());
        v.examples = vec![
            Example {
                input: "Synonym for happy?".into(),
                output: "joyful".into(),
            },
            Example {
                input: "Synonym for fast?".into(),
                output: "quick".into(),
            },
        ];
        let m = messages(&v, &vars());
        let roles: Vec<Role> = m.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                Role::System,
                Role::User,
                Role::Assistant,
                Role::User,
                Role::Assistant,
                Role::User
            ]
        );
        assert_eq!(m[2].content, "joyful");
        assert_eq!(m[5].content, "Synonym for big?");
    }

    #[test]
    fn context_wraps_the_task_with_the_instruction() {
        let mut v = variant();
        v.context = vec!["Employees get 10 sick days.\n".into()];
        let m = messages(&v, &vars());
        assert_eq!(
            m[0].content,
            format!("{CONTEXT_INSTRUCTION}\n\n<context>\nEmployees get 10 sick days.\n</context>\n\nQuestion: Synonym for big?")
        );
    }

    #[test]
    fn zero_shot_chain_of_thought_appends_the_cue() {
        let mut v = variant();
        v.step_by_step = true;
        let m = messages(&v, &vars());
        assert_eq!(m[0].content, format!("Synonym for big?\n\n{STEP_BY_STEP}"));
    }

    #[test]
    fn a_conversation_is_history_then_the_last_turn_with_context_first() {
        let mut v = variant();
        v.system = Some("You are a thesaurus.".into());
        v.examples = vec![Example {
            input: "Synonym for happy?".into(),
            output: "joyful".into(),
        }];
        v.context = vec!["Big means large.".into()];
        v.step_by_step = true;
        let case = Case {
            name: "chat".into(),
            vars: vars(),
            expect: Default::default(),
            turns: vec![
                Turn::User("Hi, I need a word.".into()),
                Turn::Assistant("Which one?".into()),
                Turn::User("Synonym for {{word}}?".into()),
            ],
        };
        let m = prepare(&v, &case).request.messages;
        let got: Vec<(Role, &str)> = m.iter().map(|m| (m.role, m.content.as_str())).collect();
        let first = format!(
            "{CONTEXT_INSTRUCTION}\n\n<context>\nBig means large.\n</context>\n\nQuestion: Hi, I need a word."
        );
        let last = format!("Synonym for big?\n\n{STEP_BY_STEP}");
        assert_eq!(
            got,
            [
                (Role::System, "You are a thesaurus."),
                (Role::User, "Synonym for happy?"),
                (Role::Assistant, "joyful"),
                (Role::User, first.as_str()),
                (Role::Assistant, "Which one?"),
                (Role::User, last.as_str()),
            ]
        );
    }

    /// The marked pieces say which technique put each part of the chat there, and the
    /// messages sent are exactly their concatenation.
    #[test]
    fn marked_pieces_name_every_technique_block() {
        use crate::prompt::marked::{anatomy, task_pieces, Block, Piece};
        let mut v = variant();
        v.system = Some("You are a thesaurus for {{word}}.".into());
        v.examples = vec![
            Example {
                input: "Synonym for happy?".into(),
                output: "joyful".into(),
            },
            Example {
                input: "Synonym for fast?".into(),
                output: "quick".into(),
            },
        ];
        v.context = vec!["Big means large.".into()];
        v.step_by_step = true;
        let case = Case {
            name: "c".into(),
            vars: vars(),
            expect: Default::default(),
            turns: vec![],
        };
        let p = prepare(&v, &case);
        let blocks: Vec<Block> = p.marked.iter().map(|m| m.block).collect();
        assert_eq!(
            blocks,
            [
                Block::System,
                Block::Example { index: 0, of: 2 },
                Block::Example { index: 0, of: 2 },
                Block::Example { index: 1, of: 2 },
                Block::Example { index: 1, of: 2 },
                Block::Task
            ]
        );
        let sent: Vec<ChatMessage> = p.marked.iter().map(|m| m.to_chat()).collect();
        assert_eq!(sent, p.request.messages);
        let task = &p.marked[5].pieces;
        let kinds: Vec<&Piece> = task.iter().map(|(k, _)| k).collect();
        assert_eq!(
            kinds,
            [
                &Piece::ContextInstruction,
                &Piece::Passage(None),
                &Piece::QuestionLabel,
                &Piece::Text,
                &Piece::Var("word".into()),
                &Piece::Text,
                &Piece::StepByStep
            ]
        );
        assert_eq!(
            p.marked[0].pieces[1],
            (Piece::Var("word".into()), "big".into())
        );
        let a = anatomy(&p.marked);
        assert_eq!((a.examples, a.passages, a.step_by_step), (2, 1, true));
        let t: String = task_pieces(&p.marked)
            .iter()
            .map(|(_, t)| t.as_str())
            .collect();
        assert_eq!(t, format!("Synonym for big?\n\n{STEP_BY_STEP}"));
    }

    #[test]
    fn system_prompt_may_use_variables() {
        let mut v = variant();
        v.system = Some("Answer about {{word}} only.".into());
        assert_eq!(messages(&v, &vars())[0].content, "Answer about big only.");
    }
}
