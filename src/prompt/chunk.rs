//! Splitting documents into retrieval chunks: by headings, then paragraphs, then size.
//!
//! A chunk never crosses a heading (each section is chunked on its own), a heading is never
//! the end of a chunk (it goes with the text under it), chunks end at a paragraph break where
//! one is near the size limit, else at a line break, else between words, so a chunk never
//! splits a word, let alone a UTF-8 character. Consecutive chunks of a section share
//! `overlap` tokens. Sizes are in estimated tokens: 4 tokens per 3 words, a fair figure for
//! English text.

/// A chunk: a byte range of the file and the heading of its section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChunkSpan {
    pub start: usize,
    pub end: usize,
    /// 1-based first and last line.
    pub first_line: usize,
    pub last_line: usize,
    /// The section's heading text (without `#`s), if it has one.
    pub heading: Option<String>,
}

fn words_for_tokens(tokens: usize) -> usize {
    (tokens * 3 / 4).max(1)
}

/// A word: byte range, and whether it is part of the section's heading line.
#[derive(Debug, Clone, Copy)]
struct Word {
    start: usize,
    end: usize,
}

/// The ATX heading text of `line`, if it is one (`# Title` … `###### Title`).
fn heading_text(line: &str) -> Option<&str> {
    let t = line.trim_start_matches(' ');
    if line.len() - t.len() > 3 {
        return None;
    }
    let hashes = t.bytes().take_while(|&b| b == b'#').count();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let rest = &t[hashes..];
    if !rest.is_empty() && !rest.starts_with(' ') && !rest.starts_with('\t') {
        return None;
    }
    Some(rest.trim().trim_end_matches('#').trim())
}

/// Sections: (start, end, heading line end, heading text).
fn sections(text: &str) -> Vec<(usize, usize, usize, Option<String>)> {
    let mut out: Vec<(usize, usize, usize, Option<String>)> = Vec::new();
    let mut in_fence = false;
    let mut offset = 0;
    let mut current = (0usize, 0usize, None::<String>);
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        let trimmed = bare.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
        } else if !in_fence {
            if let Some(h) = heading_text(bare) {
                if offset > current.0 {
                    out.push((current.0, offset, current.1, current.2.take()));
                }
                current = (offset, offset + bare.len(), Some(h.to_string()));
            }
        }
        offset += line.len();
    }
    if text.len() > current.0 {
        out.push((current.0, text.len(), current.1, current.2));
    }
    out
}

/// Chunk `text` into pieces of about `chunk_tokens`, overlapping by `overlap` tokens.
pub(crate) fn chunk(text: &str, chunk_tokens: usize, overlap: usize) -> Vec<ChunkSpan> {
    let max_words = words_for_tokens(chunk_tokens);
    let overlap_words = if overlap == 0 {
        0
    } else {
        words_for_tokens(overlap).min(max_words / 2)
    };
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let line_of = |byte: usize| line_starts.partition_point(|&s| s <= byte);
    let mut out = Vec::new();
    for (s_start, s_end, heading_end, heading) in sections(text) {
        let words = words_in(text, s_start, s_end);
        if words.is_empty() {
            continue;
        }
        // Words of the heading line: a chunk may not end inside them or right after them.
        let heading_words = words.iter().take_while(|w| w.end <= heading_end).count();
        let has_body = words.len() > heading_words;
        let mut i = 0;
        while i < words.len() {
            let limit = (i + max_words).min(words.len());
            let mut end = if limit == words.len() {
                limit
            } else {
                best_break(text, &words, i, limit)
            };
            // Never end inside the heading, nor right after it when text follows.
            if end <= heading_words {
                end = if has_body {
                    heading_words + 1
                } else {
                    heading_words
                };
            }
            let (a, b) = (words[i].start, words[end - 1].end);
            out.push(ChunkSpan {
                start: a,
                end: b,
                first_line: line_of(a),
                last_line: line_of(b.saturating_sub(1).max(a)),
                heading: heading.clone(),
            });
            if end >= words.len() {
                break;
            }
            // The next chunk repeats the tail, but never a partial heading.
            let next = end
                .saturating_sub(overlap_words)
                .max(i + 1)
                .max(heading_words);
            i = next.min(end);
        }
    }
    out
}

fn words_in(text: &str, start: usize, end: usize) -> Vec<Word> {
    let slice = &text[start..end];
    let mut out = Vec::new();
    let mut word_start = None;
    for (i, c) in slice.char_indices() {
        if c.is_whitespace() {
            if let Some(ws) = word_start.take() {
                out.push(Word {
                    start: start + ws,
                    end: start + i,
                });
            }
        } else if word_start.is_none() {
            word_start = Some(i);
        }
    }
    if let Some(ws) = word_start {
        out.push(Word {
            start: start + ws,
            end,
        });
    }
    out
}

/// Where to end a chunk that starts at word `from` and may run to `limit` (exclusive): the
/// last paragraph break in the second half, else the last line break, else `limit`.
fn best_break(text: &str, words: &[Word], from: usize, limit: usize) -> usize {
    let min = from + (limit - from).div_ceil(2);
    let gap = |k: usize| &text[words[k - 1].end..words[k].start];
    let mut line_break = None;
    for k in (min.max(from + 1)..=limit).rev() {
        if k >= words.len() {
            continue;
        }
        let g = gap(k);
        let newlines = g.matches('\n').count();
        if newlines >= 2 {
            return k;
        }
        if newlines == 1 && line_break.is_none() {
            line_break = Some(k);
        }
    }
    line_break.unwrap_or(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_start_sections_and_stay_with_their_text() {
        let text =
            "Intro line.\n\n# Leave\n\nYou get 25 days.\n\n## Sick days\nTen sick days a year.\n";
        let c = chunk(text, 300, 50);
        let pieces: Vec<&str> = c.iter().map(|s| &text[s.start..s.end]).collect();
        assert_eq!(
            pieces,
            [
                "Intro line.",
                "# Leave\n\nYou get 25 days.",
                "## Sick days\nTen sick days a year."
            ]
        );
        assert_eq!(c[1].heading.as_deref(), Some("Leave"));
        assert_eq!((c[2].first_line, c[2].last_line), (7, 8));
    }

    #[test]
    fn headings_in_code_fences_are_text() {
        let text = "# A\n```\n# not a heading\n```\nafter\n";
        let c = chunk(text, 300, 0);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn long_sections_split_at_paragraphs_with_overlap() {
        let para = |n: usize| {
            (0..30)
                .map(|i| format!("w{n}x{i}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let text = format!("# Big\n\n{}\n\n{}\n\n{}\n", para(1), para(2), para(3));
        // 40 tokens = 30 words: the heading and each paragraph can't share a chunk.
        let c = chunk(&text, 60, 8);
        assert!(c.len() >= 2, "{c:?}");
        assert!(text[c[0].start..c[0].end].starts_with("# Big"));
        for w in c.windows(2) {
            assert!(w[1].start < w[0].end, "chunks overlap: {w:?}");
        }
        assert_eq!(c.last().map(|s| s.end), Some(text.trim_end().len()));
    }

    proptest::proptest! {
        #[test]
        fn chunks_never_split_a_char_or_end_on_a_heading(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    "# [a-zé]{1,8}( [a-zé]{1,8}){0,3}",
                    "[a-zé😀]{1,12}( [a-zé😀]{1,12}){0,40}",
                    proptest::strategy::Just(String::new()),
                ],
                1..20,
            ),
            tokens in 4usize..80,
            overlap in 0usize..20,
        ) {
            let text = parts.join("\n");
            let chunks = chunk(&text, tokens, overlap);
            for c in &chunks {
                proptest::prop_assert!(text.is_char_boundary(c.start) && text.is_char_boundary(c.end));
                let piece = &text[c.start..c.end];
                let last_line = piece.lines().last().unwrap_or("");
                // A chunk ending on a heading line is only allowed when the heading has no text.
                if heading_text(last_line).is_some() {
                    let after = text[c.end..].trim_start();
                    proptest::prop_assert!(after.is_empty() || heading_text(after.lines().next().unwrap_or("")).is_some(), "chunk ends on a heading: {piece:?}");
                }
            }
        }
    }
}
