//! Word-level diff between a revision and the one it revised, for the `d` view.
//!
//! Words (and the whitespace between them) are compared with `similar`'s word tokenizer and
//! runs of the same kind are merged, so a view draws a handful of coloured spans rather than
//! one per word.

use similar::{ChangeTag, TextDiff};

/// What happened to a span of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpanKind {
    Equal,
    Added,
    Removed,
}

/// A run of text with one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DiffSpan {
    pub kind: SpanKind,
    pub text: String,
}

/// The word diff from `old` to `new`: equal, removed and added spans in reading order
/// (removed before added where a word was replaced). Concatenating the equal and added spans
/// gives `new`; the equal and removed spans give `old`.
pub(crate) fn word_diff(old: &str, new: &str) -> Vec<DiffSpan> {
    let diff = TextDiff::from_words(old, new);
    let mut out: Vec<DiffSpan> = Vec::new();
    for change in diff.iter_all_changes() {
        let kind = match change.tag() {
            ChangeTag::Equal => SpanKind::Equal,
            ChangeTag::Insert => SpanKind::Added,
            ChangeTag::Delete => SpanKind::Removed,
        };
        let text = change.value();
        match out.last_mut() {
            Some(last) if last.kind == kind => last.text.push_str(text),
            _ => out.push(DiffSpan {
                kind,
                text: text.to_string(),
            }),
        }
    }
    out
}

/// Counts of added and removed words, for a one-line summary (`+3 −1`).
pub(crate) fn word_counts(spans: &[DiffSpan]) -> (usize, usize) {
    let count = |k: SpanKind| {
        spans
            .iter()
            .filter(|s| s.kind == k)
            .map(|s| s.text.split_whitespace().count())
            .sum()
    };
    (count(SpanKind::Added), count(SpanKind::Removed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn side(spans: &[DiffSpan], skip: SpanKind) -> String {
        spans
            .iter()
            .filter(|s| s.kind != skip)
            .map(|s| s.text.as_str())
            .collect()
    }

    #[test]
    fn replaced_word_is_removed_then_added() {
        let d = word_diff(
            "The capital of England is Paris.",
            "The capital of England is London.",
        );
        assert_eq!(
            d,
            vec![
                DiffSpan {
                    kind: SpanKind::Equal,
                    text: "The capital of England is ".into()
                },
                DiffSpan {
                    kind: SpanKind::Removed,
                    text: "Paris.".into()
                },
                DiffSpan {
                    kind: SpanKind::Added,
                    text: "London.".into()
                },
            ]
        );
        assert_eq!(word_counts(&d), (1, 1));
    }

    #[test]
    fn identical_text_is_one_equal_span_and_empty_is_nothing() {
        assert_eq!(
            word_diff("same words", "same words"),
            vec![DiffSpan {
                kind: SpanKind::Equal,
                text: "same words".into()
            }]
        );
        assert!(word_diff("", "").is_empty());
        assert_eq!(word_counts(&word_diff("", "new text here")), (3, 0));
    }

    proptest! {
        #[test]
        fn both_sides_are_reconstructed(old in "[a-c \n]{0,40}", new in "[a-c \n]{0,40}") {
            let d = word_diff(&old, &new);
            prop_assert_eq!(side(&d, SpanKind::Added), old);
            prop_assert_eq!(side(&d, SpanKind::Removed), new);
            for w in d.windows(2) {
                prop_assert_ne!(w[0].kind, w[1].kind);
            }
        }
    }
}
