//! The context layer (`O`): what a pane's prompt put in its in-context block, passage by
//! passage (the file and line range, the retrieval score, the text as sent), and which
//! few-shot examples were selected for the case. Built when it opens from the chat the pane
//! shows: the answer's request exactly as sent when it has one (scores from the node's
//! `retrieved` record), else what the variant will send. Its keys are in
//! `app::update::passages`, its drawing in `ui::passages`.

use std::collections::BTreeMap;

use crate::chat::{ChatMessage, Role};
use crate::prompt::marked::{Block, MarkedMessage};

/// One document of the in-context block.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PassageItem {
    /// `file:first-last` for a retrieved chunk; `None` for a file pasted whole.
    pub source: Option<String>,
    /// The retrieval score recorded with the request (BM25, cosine or fused rank score).
    pub score: Option<f64>,
    pub text: String,
}

/// One worked example as sent: its user turn and the answer shown for it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExampleItem {
    pub input: String,
    pub output: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PassagesView {
    pub variant: String,
    pub case: String,
    /// "as sent" or "will send" (and what is chosen only when it runs).
    pub source_note: String,
    /// How the passages were ranked (`bm25`, `embedding`, `hybrid`), when retrieved.
    pub ranked_by: Option<String>,
    pub passages: Vec<PassageItem>,
    /// The `examples_selected` record ("2 of 5 by bm25: ex.jsonl:5 3.1; …"), if selected.
    pub examples_note: Option<String>,
    pub examples: Vec<ExampleItem>,
    /// First row shown.
    pub scroll: usize,
}

impl PassagesView {
    pub fn is_empty(&self) -> bool {
        self.passages.is_empty() && self.examples.is_empty() && self.examples_note.is_none()
    }
}

/// The `retrieved` record, `"3 by bm25: a.md:1-9 4.210; b.md:3-5 1.002"`: the ranking and
/// each source's score. Unreadable parts are left out (the record is ours, but the session
/// file is the user's).
pub(crate) fn parse_retrieved(record: &str) -> (Option<String>, BTreeMap<String, f64>) {
    let mut scores = BTreeMap::new();
    let Some((head, list)) = record.split_once(": ") else {
        return (None, scores);
    };
    let by = head.split_once(" by ").map(|(_, b)| b.trim().to_string());
    for entry in list.split("; ") {
        if let Some((source, score)) = entry.trim().rsplit_once(' ') {
            if let Ok(v) = score.parse::<f64>() {
                scores.insert(source.to_string(), v);
            }
        }
    }
    (by, scores)
}

/// The in-context documents of `messages` in order: `<context source="S">` blocks (retrieved,
/// scored from `scores`) and bare `<context>` blocks (pasted files), as the renderer writes
/// them, from every user message.
pub(crate) fn passages_of(
    messages: &[ChatMessage],
    scores: &BTreeMap<String, f64>,
) -> Vec<PassageItem> {
    const END: &str = "\n</context>";
    let mut out = Vec::new();
    for m in messages.iter().filter(|m| m.role == Role::User) {
        let mut rest = m.content.as_str();
        while let Some(at) = rest.find("<context") {
            let after = &rest[at + "<context".len()..];
            let (source, body) = if let Some(b) = after.strip_prefix(">\n") {
                (None, b)
            } else if let Some(tagged) = after.strip_prefix(" source=\"") {
                match tagged.split_once("\">\n") {
                    Some((s, b)) if !s.contains('\n') => (Some(s.to_string()), b),
                    _ => {
                        rest = after;
                        continue;
                    }
                }
            } else {
                rest = after;
                continue;
            };
            let (text, next) = match body.find(END) {
                Some(e) => (&body[..e], &body[e + END.len()..]),
                None => (body, ""),
            };
            out.push(PassageItem {
                score: source.as_ref().and_then(|s| scores.get(s).copied()),
                source,
                text: text.to_string(),
            });
            rest = next;
        }
    }
    out
}

/// The worked examples of a marked chat: each example's user turn and its answer.
pub(crate) fn examples_of(marked: &[MarkedMessage]) -> Vec<ExampleItem> {
    let mut out: Vec<ExampleItem> = Vec::new();
    for m in marked {
        let Block::Example { index, .. } = m.block else {
            continue;
        };
        let text: String = m.pieces.iter().map(|(_, t)| t.as_str()).collect();
        while out.len() <= index {
            out.push(ExampleItem {
                input: String::new(),
                output: String::new(),
            });
        }
        match m.role {
            Role::Assistant => out[index].output.push_str(&text),
            _ => out[index].input.push_str(&text),
        }
    }
    out
}

/// The view of a chat: `meta` is the node's (or the preview's) record of what was chosen.
pub(crate) fn build(
    variant: &str,
    case: &str,
    source_note: String,
    messages: &[ChatMessage],
    marked: Option<&[MarkedMessage]>,
    meta: &BTreeMap<String, String>,
) -> PassagesView {
    let (ranked_by, scores) = meta
        .get("retrieved")
        .map(|r| parse_retrieved(r))
        .unwrap_or_default();
    PassagesView {
        variant: variant.to_string(),
        case: case.to_string(),
        source_note,
        ranked_by,
        passages: passages_of(messages, &scores),
        examples_note: meta.get("examples_selected").cloned(),
        examples: marked.map(examples_of).unwrap_or_default(),
        scroll: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> ChatMessage {
        ChatMessage::new(Role::User, text)
    }

    #[test]
    fn the_retrieved_record_gives_the_ranking_and_each_score() {
        let (by, s) = parse_retrieved("2 by bm25: docs/a b.md:1-9 4.210; b.md:3-5 1.002");
        assert_eq!(by.as_deref(), Some("bm25"));
        assert_eq!(s["docs/a b.md:1-9"], 4.21);
        assert_eq!(s["b.md:3-5"], 1.002);
        assert_eq!(parse_retrieved("garbage"), (None, BTreeMap::new()));
        let (_, s) = parse_retrieved("1 by bm25: a.md:1-2 notanumber");
        assert!(s.is_empty());
    }

    /// The blocks come back in order with their sources, scores and exact text; a pasted
    /// file has no source; a `<context` that isn't one of ours is skipped.
    #[test]
    fn passages_are_read_back_from_the_chat_as_sent() {
        let msg = "Answer using only the context below.\n\n\
                   <context>\nWhole file.\nTwo lines.\n</context>\n\n\
                   <context source=\"h.md:3-7\">\nRefunds take 14 days.\n</context>\n\n\
                   <contextual> not a block\n\
                   <context source=\"h.md:9-12\">\nCall us, é😀.\n</context>\n\n\
                   Question: How long?";
        let scores = BTreeMap::from([("h.md:3-7".to_string(), 4.5)]);
        let got = passages_of(
            &[
                ChatMessage::new(Role::System, "<context>\nno\n</context>"),
                user(msg),
            ],
            &scores,
        );
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].source, None);
        assert_eq!(got[0].text, "Whole file.\nTwo lines.");
        assert_eq!(got[1].source.as_deref(), Some("h.md:3-7"));
        assert_eq!(got[1].score, Some(4.5));
        assert_eq!(got[1].text, "Refunds take 14 days.");
        assert_eq!(got[2].source.as_deref(), Some("h.md:9-12"));
        assert_eq!(got[2].score, None);
        assert_eq!(got[2].text, "Call us, é😀.");
        // A block cut off (no closing tag) keeps the rest of the message.
        let cut = passages_of(&[user("<context source=\"x:1-2\">\nhalf")], &scores);
        assert_eq!(cut[0].text, "half");
    }

    /// The renderer's own output reads back: a variant with a pasted file and BM25
    /// retrieval, prepared for a case, gives one pasted and k retrieved passages whose
    /// sources and scores are those the node's metadata records.
    #[test]
    fn a_prepared_request_reads_back_with_its_recorded_scores() {
        let dir = tempfile::tempdir().unwrap();
        let doc = "# Refunds\n\nRefunds take 14 days.\n\n# Shipping\n\nParcels ship on Monday.\n\n# Support\n\nCall us any weekday.\n";
        std::fs::write(dir.path().join("h.md"), doc).unwrap();
        std::fs::write(dir.path().join("pasted.txt"), "Pasted whole.").unwrap();
        let text = "title = \"T\"\n[defaults]\nmodel = \"fake\"\n\n[[variant]]\nname = \"rag\"\ntemplate = \"{{q}}\"\ncontext_files = [\"pasted.txt\"]\nretrieve = { from = [\"h.md\"], k = 2, chunk_tokens = 20, overlap = 0 }\n\n[[case]]\nname = \"one\"\nvars = { q = \"How long do refunds take?\" }\n";
        let path = dir.path().join("p.toml");
        let models = ["fake".to_string()];
        let p = crate::prompt::parse(&path, text, &models, &models[0]).unwrap();
        let prepared = crate::prompt::render::prepare(
            &p.variants[0],
            &p.cases[0],
            &crate::prompt::vectors::Vectors::default(),
            &crate::prompt::render::indexes_for(&p.variants),
        );
        let v = build(
            "rag",
            "one",
            "as sent".into(),
            &prepared.request.messages,
            Some(&prepared.marked),
            &prepared.meta,
        );
        assert_eq!(v.ranked_by.as_deref(), Some("bm25"));
        assert_eq!(v.passages.len(), 2, "{v:?}");
        assert_eq!(v.passages[0].source, None);
        assert_eq!(v.passages[0].text, "Pasted whole.");
        let first = &v.passages[1];
        assert!(first.text.contains("Refunds take 14 days."), "{first:?}");
        assert!(first
            .source
            .as_deref()
            .is_some_and(|s| s.starts_with("h.md:")));
        assert!(first.score.is_some_and(|s| s > 0.0), "{first:?}");
        assert!(v.examples.is_empty() && v.examples_note.is_none());
    }
}
