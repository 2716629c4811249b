//! Turning a variant and a case into the exact chat messages sent to a model.
//!
//! Techniques are rendered the same way for every backend: the role is the system message,
//! worked examples (one-shot, few-shot, chain-of-thought) are prior user/assistant turns,
//! in-context documents precede the task with an instruction to answer only from them, and
//! zero-shot chain of thought appends a step-by-step cue.

use std::collections::BTreeMap;

use super::template;
use super::{Case, Turn, Variant};
use crate::chat::{ChatMessage, ChatRequest, Role};

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
        out.push(ChatMessage::new(
            Role::System,
            template::render(system, vars),
        ));
    }
    for ex in examples.iter() {
        out.push(ChatMessage::new(
            Role::User,
            template::render(&ex.input, vars),
        ));
        out.push(ChatMessage::new(Role::Assistant, ex.output.clone()));
    }
    let context = context_block(variant, &retrieved);
    if turns.is_empty() {
        let task = template::render(&variant.template, vars);
        out.push(ChatMessage::new(
            Role::User,
            finish_turn(variant, context.as_deref(), &task, true),
        ));
    } else {
        // The context goes before the conversation (into its first user turn); the
        // step-by-step cue goes on the turn being answered.
        let last = turns.len() - 1;
        let mut context = context;
        for (i, t) in turns.iter().enumerate() {
            let text = template::render(t.text(), vars);
            match t {
                Turn::Assistant(_) => out.push(ChatMessage::new(Role::Assistant, text)),
                Turn::User(_) => out.push(ChatMessage::new(
                    Role::User,
                    finish_turn(variant, context.take().as_deref(), &text, i == last),
                )),
            }
        }
    }
    Prepared {
        request: ChatRequest {
            messages: out,
            sampling: variant.sampling.clone(),
        },
        meta,
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
fn context_block(variant: &Variant, retrieved: &[Passage]) -> Option<String> {
    if variant.context.is_empty() && retrieved.is_empty() {
        return None;
    }
    let mut text = String::new();
    text.push_str(
        variant
            .context_instruction
            .as_deref()
            .unwrap_or(CONTEXT_INSTRUCTION),
    );
    text.push_str("\n\n");
    for doc in &variant.context {
        text.push_str("<context>\n");
        text.push_str(doc.trim_end());
        text.push_str("\n</context>\n\n");
    }
    for p in retrieved {
        text.push_str(&format!("<context source=\"{}\">\n", p.source));
        text.push_str(p.text.trim_end());
        text.push_str("\n</context>\n\n");
    }
    Some(text)
}

fn finish_turn(variant: &Variant, context: Option<&str>, task: &str, answered: bool) -> String {
    let mut text = String::with_capacity(task.len() + 64);
    if let Some(c) = context {
        text.push_str(c);
        text.push_str("Question: ");
    }
    text.push_str(task);
    if answered && variant.step_by_step {
        text.push_str("\n\n");
        text.push_str(STEP_BY_STEP);
    }
    text
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

    #[test]
    fn system_prompt_may_use_variables() {
        let mut v = variant();
        v.system = Some("Answer about {{word}} only.".into());
        assert_eq!(messages(&v, &vars())[0].content, "Answer about big only.");
    }
}
