//! Retrieval figures: how long chunking and BM25-indexing a document takes at 1 MB and 10 MB
//! (what a variant's `retrieve = { from = … }` pays once per run and file set), one query on
//! the result, and hit@1/hit@3 on the retrieval test corpus. Plain numbers; `bench/mod.rs`
//! prints them.

use std::time::Instant;

use crate::prompt::retrieve::{build, test_corpus};

/// One document size.
pub(crate) struct Document {
    pub mb: usize,
    pub chunks: usize,
    pub build_ms: Vec<f64>,
    pub query_ms: Vec<f64>,
}

pub(crate) struct Figures {
    pub documents: Vec<Document>,
    pub questions: usize,
    pub corpus_chunks: usize,
    pub hit1: usize,
    pub hit3: usize,
}

/// Build the index of a document of each size in `sizes` (MB), `runs` times (at least 3 for
/// 1 MB, at most 3 for 10 MB and up), and rank the test corpus.
pub(crate) fn measure(sizes: &[usize], runs: usize) -> Result<Figures, String> {
    let mut documents = Vec::new();
    for &mb in sizes {
        let text = test_corpus::big_document(mb * 1_000_000);
        let runs = if mb >= 10 {
            runs.clamp(1, 3)
        } else {
            runs.max(3)
        };
        let mut d = Document {
            mb,
            chunks: 0,
            build_ms: Vec::new(),
            query_ms: Vec::new(),
        };
        for _ in 0..runs {
            let files = [("big.md".to_string(), text.clone())];
            let t = Instant::now();
            let ix = build(&files, 300, 50);
            d.build_ms.push(t.elapsed().as_secs_f64() * 1e3);
            d.chunks = ix.chunks.len();
            let t = Instant::now();
            let hits = ix.bm25(
                "How many days of sick leave before I need a doctor's note?",
                3,
            );
            d.query_ms.push(t.elapsed().as_secs_f64() * 1e3);
            if hits.len() != 3 {
                return Err(format!("{mb} MB index found {} chunks, not 3", hits.len()));
            }
        }
        documents.push(d);
    }
    let ix = build(&test_corpus::corpus(), 300, 50);
    Ok(Figures {
        documents,
        questions: test_corpus::QUESTIONS.len(),
        corpus_chunks: ix.chunks.len(),
        hit1: test_corpus::hits_at(&ix, 1),
        hit3: test_corpus::hits_at(&ix, 3),
    })
}
