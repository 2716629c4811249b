//! Turning a variant and a case into the exact chat messages sent to a model.
//!
//! Techniques are rendered the same way for every backend: the role is the system message,
//! worked examples (one-shot, few-shot, chain-of-thought) are prior user/assistant turns,
//! in-context documents precede the task with an instruction to answer only from them, and
//! zero-shot chain of thought appends a step-by-step cue.
//!
//! Rendering does no I/O: a variant that retrieves or selects examples by embedding first says
//! which texts need vectors ([`embeddings_needed`]); whoever runs it fetches them and passes
//! them in ([`Vectors`]), as it passes the retrieval indexes it read ([`Indexes`],
//! [`indexes_for`]).

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::marked::{Block, MarkedMessage, Piece};
use super::retrieve::{self, Indexes, Passage};
use super::select;
use super::template;
use super::variant::{Case, Example, Turn, Variant};
use super::vectors::{EmbedWants, Vectors};
#[cfg(test)]
use crate::chat::ChatMessage;
use crate::chat::{ChatRequest, Role};

/// The cue zero-shot chain of thought appends to the task.
pub(crate) const STEP_BY_STEP: &str = "Let's think this through step by step.";

/// The instruction that goes with in-context documents unless a variant overrides it.
pub(crate) const CONTEXT_INSTRUCTION: &str = "Answer using only the context below. If the answer is not in the context, say \"I don't know\".";

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
    prepare_turns(variant, vars, &[], &Vectors::default(), &Indexes::default())
        .request
        .messages
}

/// The request for `variant` filled with `vars`, with the variant's sampling (and `vectors`
/// for what it ranks by embedding, see [`embeddings_needed_for`]).
pub(crate) fn request(
    variant: &Variant,
    vars: &BTreeMap<String, String>,
    vectors: &Vectors,
    indexes: &Indexes,
) -> ChatRequest {
    prepare_turns(variant, vars, &[], vectors, indexes).request
}

/// The request for `variant` on `case`: a single-turn case fills the template; a
/// conversation sends its earlier turns as history and the variant answers the last one.
/// `vectors` holds what [`embeddings_needed`] asked for; without them, ranking by embedding
/// fails and [`prepare_error`] says so.
pub(crate) fn prepare(
    variant: &Variant,
    case: &Case,
    vectors: &Vectors,
    indexes: &Indexes,
) -> Prepared {
    prepare_turns(variant, &case.vars, &case.turns, vectors, indexes)
}

/// Read and index the files of every variant that retrieves (the I/O rendering leaves to its
/// caller).
pub(crate) fn indexes_for<'a>(variants: impl IntoIterator<Item = &'a Variant>) -> Indexes {
    Indexes::load(variants.into_iter().filter_map(|v| v.retrieve.as_ref()))
}

/// What a caller reads before rendering `variant` on `case`: its retrieval index (reading the
/// files) and, with it, the texts it needs embedded.
pub(crate) fn read_inputs(variant: &Variant, case: &Case) -> (Indexes, EmbedWants) {
    let indexes = indexes_for([variant]);
    let wants = embeddings_needed(variant, case, &indexes);
    (indexes, wants)
}

/// Whether rendering `variant` on `case` needs anything from outside first: retrieval files to
/// read (with `indexes` as loaded so far) or vectors to fetch. Reads nothing.
pub(crate) fn needs_inputs(variant: &Variant, case: &Case, indexes: &Indexes) -> bool {
    variant.retrieve.is_some() || !embeddings_needed(variant, case, indexes).is_empty()
}

/// The texts [`prepare`] of `variant` on `case` needs embedded: empty unless its retrieval or
/// example selection ranks by embedding; the chunks are named by the retrieval's index in
/// `indexes`.
pub(crate) fn embeddings_needed(variant: &Variant, case: &Case, indexes: &Indexes) -> EmbedWants {
    wants(variant, &case.vars, &case.turns, indexes)
}

/// The texts [`request`] of `variant` with `vars` needs embedded.
pub(crate) fn embeddings_needed_for(
    variant: &Variant,
    vars: &BTreeMap<String, String>,
    indexes: &Indexes,
) -> EmbedWants {
    wants(variant, vars, &[], indexes)
}

fn wants(
    variant: &Variant,
    vars: &BTreeMap<String, String>,
    turns: &[Turn],
    indexes: &Indexes,
) -> EmbedWants {
    let mut out = EmbedWants::default();
    if variant.retrieve.is_none() && variant.select.is_none() {
        return out;
    }
    let q = question(variant, vars, turns);
    if let Some(sel) = &variant.select {
        select::embed_texts(sel, &q, &mut out);
    }
    if let Some(r) = &variant.retrieve {
        retrieve::embed_texts(r, &retrieve::query_for(r, vars, &q), indexes, &mut out);
    }
    out
}

/// The examples to send for `question`: the selection when the variant has one (recorded in
/// `meta`), else the fixed examples.
pub(crate) fn examples_for<'a>(
    variant: &'a Variant,
    question: &str,
    vectors: &Vectors,
    meta: &mut BTreeMap<String, String>,
) -> Cow<'a, [Example]> {
    let Some(sel) = &variant.select else {
        return Cow::Borrowed(&variant.examples);
    };
    Cow::Owned(
        select::choose(sel, question, vectors, meta)
            .into_iter()
            .map(|p| Example {
                input: p.input.clone(),
                output: p.output.clone(),
            })
            .collect(),
    )
}

/// What chunks and examples are chosen for: the last user turn of a conversation, else the
/// rendered template.
fn question(variant: &Variant, vars: &BTreeMap<String, String>, turns: &[Turn]) -> String {
    match turns.last() {
        Some(t) => template::render(t.text(), vars),
        None => template::render(&variant.template, vars),
    }
}

fn prepare_turns(
    variant: &Variant,
    vars: &BTreeMap<String, String>,
    turns: &[Turn],
    vectors: &Vectors,
    indexes: &Indexes,
) -> Prepared {
    let mut meta = BTreeMap::new();
    let q = question(variant, vars, turns);
    let examples = examples_for(variant, &q, vectors, &mut meta);
    let retrieved = match &variant.retrieve {
        Some(r) => {
            let query = retrieve::query_for(r, vars, &q);
            retrieve::context_for(r, &query, vectors, indexes, &mut meta)
        }
        None => Vec::new(),
    };
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
        let m = prepare(&v, &case, &Vectors::default(), &Indexes::default())
            .request
            .messages;
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
        let p = prepare(&v, &case, &Vectors::default(), &Indexes::default());
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

    #[test]
    fn ranking_by_embedding_asks_for_vectors_and_fails_the_request_without_them() {
        use crate::prompt::retrieve::{RankBy, Retrieve, RetrieveSpec};
        let dir = tempfile::tempdir().unwrap();
        let doc = dir.path().join("h.md");
        std::fs::write(&doc, "# Refunds\nWithin 30 days.\n").unwrap();
        let mut v = variant();
        v.retrieve = Some(Retrieve {
            spec: RetrieveSpec {
                from: vec!["h.md".into()],
                k: 1,
                chunk_tokens: 300,
                overlap: 0,
                by: RankBy::Hybrid,
                query: None,
                embed_model: Some("e".into()),
            },
            files: vec![(doc, "h.md".into())],
        });
        let case = Case {
            name: "c".into(),
            vars: vars(),
            expect: Default::default(),
            turns: vec![],
        };
        // Rendering reads no file: before the caller loaded the index, the chunks are unknown
        // and the request says why it can't be sent.
        let none = Indexes::default();
        assert!(embeddings_needed(&v, &case, &none).is_empty());
        let p = prepare(&v, &case, &Vectors::default(), &none);
        assert!(
            prepare_error(&p.meta)
                .is_some_and(|e| e.contains("h.md") && e.contains("not read yet")),
            "{:?}",
            p.meta
        );
        let ix = indexes_for([&v]);
        let wants = embeddings_needed(&v, &case, &ix);
        let asked: Vec<(&str, Vec<&str>)> = wants.iter().collect();
        assert_eq!(
            asked,
            vec![("e", vec!["# Refunds\nWithin 30 days.", "Synonym for big?"])]
        );
        // The fetch failed: the request must not be sent, and says why.
        let mut down = Vectors::default();
        let texts = &asked[0].1;
        down.insert("e", texts, Err("embeddings request to x failed".into()));
        let p = prepare(&v, &case, &down, &ix);
        assert_eq!(
            prepare_error(&p.meta).as_deref(),
            Some("retrieval failed: embeddings request to x failed")
        );
        // With the vectors, the chunk is retrieved (hybrid: BM25 and embedding agree).
        let mut up = Vectors::default();
        up.insert("e", texts, Ok(vec![vec![1.0, 0.0], vec![1.0, 0.1]]));
        let p = prepare(&v, &case, &up, &ix);
        assert_eq!(prepare_error(&p.meta), None);
        assert!(
            p.meta["retrieved"].starts_with("1 by hybrid: h.md:1-2"),
            "{:?}",
            p.meta
        );
        assert!(p.request.messages[0].content.contains("Within 30 days."));
        // BM25 alone needs nothing.
        v.retrieve.as_mut().unwrap().spec.by = RankBy::Bm25;
        assert!(embeddings_needed(&v, &case, &ix).is_empty());
    }
}
