//! Retrieval for in-context prompts: `retrieve = { from = ["docs/*.md"], k = 3, by = "bm25" }`.
//!
//! The files are chunked ([`super::chunk`]) and indexed once per run: indexes are cached in
//! memory by the hash of the files' contents and the chunking parameters, so every variant
//! and case that points at the same documents shares one. The top-k chunks for the case's
//! question go into the in-context block, each tagged with its source (`file:first-last`),
//! and the choice (file, line range, score) is recorded in the node's metadata with the
//! request, so a session shows exactly what the model saw.
//!
//! `by = "bm25"` ranks with the `bm25` crate (English stemming and stop words);
//! `"embedding"` by cosine similarity of vectors from an OpenAI-compatible endpoint
//! (`embed_model`); `"hybrid"` fuses both rankings by reciprocal rank (RRF, k = 60). The
//! vectors come in as data ([`super::vectors`]): [`embed_texts`] says which texts need them,
//! and the caller fetches them before rendering.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::template;
use super::vectors::{cosine, EmbedWants, Vectors};

/// A retrieved passage placed in the context block.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Passage {
    /// `file:first-last` lines.
    pub source: String,
    pub text: String,
}

/// How chunks (or examples) are ranked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RankBy {
    #[default]
    Bm25,
    Embedding,
    Hybrid,
}

fn default_k() -> usize {
    3
}
fn default_chunk_tokens() -> usize {
    300
}
fn default_overlap() -> usize {
    50
}

/// `retrieve = { … }` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetrieveSpec {
    /// Files or glob patterns (`*`, `?`, `[...]`, `**`), relative to the prompt file.
    pub from: Vec<String>,
    #[serde(default = "default_k")]
    pub k: usize,
    #[serde(default = "default_chunk_tokens")]
    pub chunk_tokens: usize,
    #[serde(default = "default_overlap")]
    pub overlap: usize,
    #[serde(default)]
    pub by: RankBy,
    /// What to search for (a template); default: the case's question (the rendered template,
    /// or a conversation's last user turn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The configured model that embeds, for `by = "embedding"` and `"hybrid"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed_model: Option<String>,
}

/// A variant's retrieval: the spec and the files it matched when the prompt file loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Retrieve {
    pub spec: RetrieveSpec,
    /// (path to read, path to show), in a stable order.
    pub files: Vec<(PathBuf, String)>,
}

/// One chunk of one file.
#[derive(Debug, Clone)]
pub(crate) struct Chunk {
    pub file: String,
    pub first_line: usize,
    pub last_line: usize,
    pub heading: Option<String>,
    pub text: String,
}

impl Chunk {
    pub fn source(&self) -> String {
        format!("{}:{}-{}", self.file, self.first_line, self.last_line)
    }
}

/// The chunks of a set of files and their BM25 engine.
pub(crate) struct Index {
    pub chunks: Vec<Chunk>,
    engine: bm25::SearchEngine<u32>,
}

static INDEXES: OnceLock<Mutex<HashMap<String, Arc<Index>>>> = OnceLock::new();

/// Resolve `from` against `base` into files (sorted, deduplicated). A pattern matching
/// nothing is an error.
pub(crate) fn resolve_files(
    base: &Path,
    from: &[String],
) -> Result<Vec<(PathBuf, String)>, String> {
    let mut out: Vec<(PathBuf, String)> = Vec::new();
    for pat in from {
        let full = base.join(pat);
        let full_s = full.to_string_lossy().into_owned();
        let mut matched = Vec::new();
        if full.is_file() {
            matched.push(full.clone());
        } else {
            let paths = glob::glob(&full_s).map_err(|e| format!("bad pattern {pat:?}: {e}"))?;
            for p in paths.flatten() {
                if p.is_file() {
                    matched.push(p);
                }
            }
        }
        if matched.is_empty() {
            return Err(format!("{pat:?} matches no file (looked for {full_s})"));
        }
        matched.sort();
        for p in matched {
            let shown = p
                .strip_prefix(base)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            if !out.iter().any(|(q, _)| *q == p) {
                out.push((p, shown));
            }
        }
    }
    Ok(out)
}

/// The retrieval indexes a render may use, by the retrieval they serve ([`Retrieve::key`]), as
/// whoever may read files (the playground's driver, `promptloom run`) loaded them: rendering
/// looks an index up here and never reads a file itself.
#[derive(Clone, Default)]
pub(crate) struct Indexes {
    by_key: HashMap<String, Result<Arc<Index>, String>>,
}

impl std::fmt::Debug for Indexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(
                self.by_key
                    .iter()
                    .map(|(k, v)| (k, v.as_ref().map(|ix| ix.chunks.len()))),
            )
            .finish()
    }
}

impl Indexes {
    /// Read the files of each retrieval and index them (cached while the files are unchanged);
    /// a file that can't be read is recorded as that retrieval's error.
    pub fn load<'a>(retrievals: impl IntoIterator<Item = &'a Retrieve>) -> Indexes {
        let mut out = Indexes::default();
        for r in retrievals {
            out.by_key.insert(r.key(), index(r));
        }
        out
    }

    /// The index of `r`, or why there is none (unreadable files, or not loaded).
    pub fn get(&self, r: &Retrieve) -> Result<Arc<Index>, String> {
        match self.by_key.get(&r.key()) {
            Some(found) => found.clone(),
            None => Err(format!(
                "the files of {} are not read yet (they are read when the variant runs)",
                r.spec.from.join(", ")
            )),
        }
    }

    /// Everything `other` loaded, replacing what this held for the same retrievals.
    pub fn merge(&mut self, other: Indexes) {
        self.by_key.extend(other.by_key);
    }
}

impl Retrieve {
    /// What identifies the index: the chunking and the files (not their text: [`index`]
    /// re-reads them).
    pub fn key(&self) -> String {
        let mut k = format!("{} {}", self.spec.chunk_tokens, self.spec.overlap);
        for (p, shown) in &self.files {
            k.push('\0');
            k.push_str(&p.to_string_lossy());
            k.push('\0');
            k.push_str(shown);
        }
        k
    }
}

/// The index for `r`, built on first use and shared while the files are unchanged. Reads the
/// files: [`Indexes::load`] (and the prompt file's loader, to check them) call it, rendering
/// does not.
pub(crate) fn index(r: &Retrieve) -> Result<Arc<Index>, String> {
    let mut texts = Vec::with_capacity(r.files.len());
    let mut h = Sha256::new();
    h.update(format!("{} {}\n", r.spec.chunk_tokens, r.spec.overlap));
    for (p, shown) in &r.files {
        let t =
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        h.update(shown.as_bytes());
        h.update([0]);
        h.update(Sha256::digest(t.as_bytes()));
        texts.push((shown.clone(), t));
    }
    let key = hex::encode(h.finalize());
    let cache = INDEXES.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(ix) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(ix);
    }
    let ix = Arc::new(build(&texts, r.spec.chunk_tokens, r.spec.overlap));
    if let Ok(mut c) = cache.lock() {
        c.insert(key, ix.clone());
    }
    Ok(ix)
}

/// Chunk and index `(shown name, text)` files.
pub(crate) fn build(files: &[(String, String)], chunk_tokens: usize, overlap: usize) -> Index {
    let mut chunks = Vec::new();
    for (name, text) in files {
        for s in super::chunk::chunk(text, chunk_tokens, overlap) {
            chunks.push(Chunk {
                file: name.clone(),
                first_line: s.first_line,
                last_line: s.last_line,
                heading: s.heading,
                text: text[s.start..s.end].to_string(),
            });
        }
    }
    let docs: Vec<bm25::Document<u32>> = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            // The section heading counts for every chunk of the section.
            let body = match &c.heading {
                Some(h) if !c.text.starts_with('#') => format!("{h}\n{}", c.text),
                _ => c.text.clone(),
            };
            bm25::Document::new(i as u32, body)
        })
        .collect();
    let engine =
        bm25::SearchEngineBuilder::<u32>::with_documents(bm25::Language::English, docs).build();
    Index { chunks, engine }
}

impl Index {
    /// BM25 ranking: (chunk, score), best first, ties by position.
    pub fn bm25(&self, query: &str, k: usize) -> Vec<(usize, f32)> {
        let mut hits: Vec<(usize, f32)> = self
            .engine
            .search(query, None)
            .into_iter()
            .map(|r| (r.document.id as usize, r.score))
            .collect();
        sort_hits(&mut hits);
        hits.truncate(k);
        hits
    }

    /// Embedding ranking by cosine similarity, with `model`'s vectors from `vectors`.
    pub fn embedding(
        &self,
        vectors: &Vectors,
        model: &str,
        query: &str,
        k: usize,
    ) -> Result<Vec<(usize, f32)>, String> {
        let chunks = vectors.all(model, self.chunks.iter().map(|c| c.text.as_str()))?;
        let q = vectors.of(model, query)?;
        Ok(rank_by_vectors(&chunks, q, k))
    }

    /// The top `k` chunks for `query`.
    pub fn search(
        &self,
        spec: &RetrieveSpec,
        query: &str,
        vectors: &Vectors,
    ) -> Result<Vec<(usize, f32)>, String> {
        let model = || {
            spec.embed_model
                .as_deref()
                .ok_or_else(|| "by = \"embedding\" needs embed_model".to_string())
        };
        match spec.by {
            RankBy::Bm25 => Ok(self.bm25(query, spec.k)),
            RankBy::Embedding => self.embedding(vectors, model()?, query, spec.k),
            RankBy::Hybrid => {
                let all = self.chunks.len();
                let a = self.bm25(query, all);
                let b = self.embedding(vectors, model()?, query, all)?;
                Ok(fuse(&[a, b], spec.k))
            }
        }
    }
}

/// Rank `vectors` by cosine similarity to `q`: (index, similarity), best first.
pub(crate) fn rank_by_vectors(vectors: &[&[f32]], q: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut hits: Vec<(usize, f32)> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (i, cosine(v, q)))
        .collect();
    sort_hits(&mut hits);
    hits.truncate(k);
    hits
}

fn sort_hits(hits: &mut [(usize, f32)]) {
    hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
}

/// Reciprocal rank fusion of several rankings (k = 60).
pub(crate) fn fuse(rankings: &[Vec<(usize, f32)>], k: usize) -> Vec<(usize, f32)> {
    let mut score: BTreeMap<usize, f32> = BTreeMap::new();
    for r in rankings {
        for (rank, (i, _)) in r.iter().enumerate() {
            *score.entry(*i).or_default() += 1.0 / (60.0 + rank as f32 + 1.0);
        }
    }
    let mut hits: Vec<(usize, f32)> = score.into_iter().collect();
    sort_hits(&mut hits);
    hits.truncate(k);
    hits
}

/// What `r` searches for: its `query` template filled from `vars`, else the case's question.
pub(crate) fn query_for(r: &Retrieve, vars: &BTreeMap<String, String>, question: &str) -> String {
    match &r.spec.query {
        Some(q) => template::render(q, vars),
        None => question.to_string(),
    }
}

/// The texts ranking `query` by embedding needs vectors for (the chunks and the query), added
/// to `wants`. Nothing for BM25; nothing either when the index can't be built or no model is
/// named: [`context_for`] then records that error.
pub(crate) fn embed_texts(r: &Retrieve, query: &str, indexes: &Indexes, wants: &mut EmbedWants) {
    if r.spec.by == RankBy::Bm25 {
        return;
    }
    let (Some(model), Ok(ix)) = (r.spec.embed_model.as_deref(), indexes.get(r)) else {
        return;
    };
    wants.add(model, ix.chunks.iter().map(|c| c.text.as_str()));
    wants.add(model, [query]);
}

/// The retrieved passages for `query`, recording the choice in `meta` (`retrieved`: one
/// `file:first-last score` per chunk, `; `-separated). A failure (an unreadable file, no
/// vectors from the embedding model) is recorded as `retrieve_error` and leaves the passages
/// out.
pub(crate) fn context_for(
    r: &Retrieve,
    query: &str,
    vectors: &Vectors,
    indexes: &Indexes,
    meta: &mut BTreeMap<String, String>,
) -> Vec<Passage> {
    let found = indexes
        .get(r)
        .and_then(|ix| Ok((ix.search(&r.spec, query, vectors)?, ix)));
    match found {
        Ok((hits, ix)) => {
            let mut out = Vec::with_capacity(hits.len());
            let mut record = Vec::with_capacity(hits.len());
            for (i, score) in hits {
                let Some(c) = ix.chunks.get(i) else { continue };
                record.push(format!("{} {score:.3}", c.source()));
                out.push(Passage {
                    source: c.source(),
                    text: c.text.clone(),
                });
            }
            meta.insert(
                "retrieved".into(),
                format!(
                    "{} by {}: {}",
                    out.len(),
                    by_name(r.spec.by),
                    record.join("; ")
                ),
            );
            out
        }
        Err(e) => {
            meta.insert("retrieve_error".into(), e);
            Vec::new()
        }
    }
}

fn by_name(by: RankBy) -> &'static str {
    match by {
        RankBy::Bm25 => "bm25",
        RankBy::Embedding => "embedding",
        RankBy::Hybrid => "hybrid",
    }
}

/// The retrieval test corpus: a small handbook where each of [`QUESTIONS`] has one section that
/// answers it. The unit tests check the ranking on it; `promptloom bench --only retrieval`
/// prints its hit@k beside the index build times.
pub(crate) mod test_corpus {
    use crate::prompt::retrieve::Index;

    /// A small handbook: each question has one section that answers it.
    pub(crate) fn corpus() -> Vec<(String, String)> {
        let handbook = "\
# Working hours

Core hours are 10:00 to 16:00. Outside them, schedule your day as you like, as long as \
your team knows when to reach you.

# Annual leave

Full-time employees get 25 days of paid annual leave per calendar year. Unused days carry \
over until the end of March of the following year, up to a maximum of five days.

# Sick leave

If you are ill, tell your manager before 10:00 on the first day. From the fourth day of \
illness, a doctor's note is required. Sick days do not reduce your annual leave.

# Expenses

Submit receipts within 30 days through the expenses portal. Train travel is reimbursed in \
second class; flights need approval from your director in advance.

# Equipment

Every new starter receives a laptop, a monitor and a headset. Lost or broken equipment is \
reported to the IT service desk, which replaces it within two working days.

# Parental leave

Birth parents get 26 weeks of fully paid parental leave; partners get 8 weeks. Leave can \
be taken in blocks within the first year.
";
        let security = "\
# Passwords

Use the password manager for every account. Passwords are at least 14 characters long and \
never reused. Multi-factor authentication is mandatory for email and the VPN.

# Reporting incidents

Report a suspected phishing email with the Report button, or to security@example.com. \
Never forward it to colleagues.
";
        vec![
            ("handbook.md".into(), handbook.into()),
            ("security.md".into(), security.into()),
        ]
    }

    pub(crate) const QUESTIONS: &[(&str, &str)] = &[
        (
            "How many days of paid holiday do I get each year?",
            "Annual leave",
        ),
        ("When do I need a doctor's note when I'm ill?", "Sick leave"),
        (
            "Can I fly to a client meeting, and who approves it?",
            "Expenses",
        ),
        ("My laptop broke, who replaces it?", "Equipment"),
        ("What are the core hours?", "Working hours"),
        ("How long is parental leave for partners?", "Parental leave"),
        ("How long must a password be?", "Passwords"),
        ("What do I do with a phishing email?", "Reporting incidents"),
        (
            "Do unused leave days carry over to next year?",
            "Annual leave",
        ),
        (
            "Is multi-factor authentication required for the VPN?",
            "Passwords",
        ),
    ];

    /// How many questions have their section among the top `k` chunks (by heading).
    pub(crate) fn hits_at(ix: &Index, k: usize) -> usize {
        QUESTIONS
            .iter()
            .filter(|(q, want)| {
                ix.bm25(q, k).iter().any(|(i, _)| {
                    ix.chunks.get(*i).and_then(|c| c.heading.as_deref()) == Some(want)
                })
            })
            .count()
    }

    /// About `bytes` of handbook text: the shipped 21 KB company handbook
    /// (`prompts/docs/company-handbook.md`) repeated, each copy's headings numbered so the
    /// copies are different sections.
    pub(crate) fn big_document(bytes: usize) -> String {
        let base = include_str!("../../prompts/docs/company-handbook.md");
        let mut text = String::with_capacity(bytes + base.len());
        let mut n = 0;
        while text.len() < bytes {
            text.push_str(&base.replace("# ", &format!("# {n} ")));
            n += 1;
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_corpus::{corpus, QUESTIONS};

    #[test]
    fn the_right_chunk_ranks_first_for_known_questions() {
        let ix = build(&corpus(), 300, 50);
        let mut hit1 = 0;
        let mut hit3 = 0;
        for (q, want) in QUESTIONS {
            let hits = ix.bm25(q, 3);
            let headings: Vec<&str> = hits
                .iter()
                .filter_map(|(i, _)| ix.chunks[*i].heading.as_deref())
                .collect();
            if headings.first() == Some(want) {
                hit1 += 1;
            }
            if headings.contains(want) {
                hit3 += 1;
            }
        }
        eprintln!(
            "BM25 on the test corpus: hit@1 {hit1}/{n}, hit@3 {hit3}/{n}",
            n = QUESTIONS.len()
        );
        assert_eq!(hit1, QUESTIONS.len(), "hit@1 {hit1}");
        assert_eq!(hit3, QUESTIONS.len());
    }

    #[test]
    fn chunks_carry_file_lines_and_headings() {
        let ix = build(&corpus(), 300, 50);
        let sick = ix
            .chunks
            .iter()
            .find(|c| c.heading.as_deref() == Some("Sick leave"))
            .unwrap();
        assert_eq!(sick.source(), "handbook.md:9-11");
        assert!(sick.text.starts_with("# Sick leave\n"));
    }

    #[test]
    fn fusion_prefers_chunks_both_rankings_like() {
        let a = vec![(1, 9.0), (2, 5.0), (3, 1.0)];
        let b = vec![(2, 0.9), (3, 0.8), (1, 0.1)];
        let f = fuse(&[a, b], 2);
        assert_eq!(f[0].0, 2);
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn globs_resolve_relative_to_the_prompt_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("docs")).unwrap();
        std::fs::write(dir.path().join("docs/b.md"), "b").unwrap();
        std::fs::write(dir.path().join("docs/a.md"), "a").unwrap();
        std::fs::write(dir.path().join("docs/x.txt"), "x").unwrap();
        let f = resolve_files(dir.path(), &["docs/a.md".into(), "docs/*.md".into()]).unwrap();
        let shown: Vec<&str> = f.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(shown, ["docs/a.md", "docs/b.md"]);
        let e = resolve_files(dir.path(), &["nope/*.md".into()]).unwrap_err();
        assert!(e.contains("matches no file"), "{e}");
    }

    #[test]
    fn hit_at_k_counts_the_questions_answered_in_the_top_k() {
        let ix = build(&corpus(), 300, 50);
        assert_eq!(super::test_corpus::hits_at(&ix, 1), QUESTIONS.len());
        // Against a corpus without the answers, nothing is found.
        let other = build(
            &[("x.md".into(), "# Lunch\n\nSoup on Fridays.\n".into())],
            300,
            50,
        );
        assert_eq!(super::test_corpus::hits_at(&other, 3), 0);
        let big = super::test_corpus::big_document(100_000);
        assert!(
            big.len() >= 100_000 && big.contains("### 3 4.2 Sick leave"),
            "{}",
            &big[..200]
        );
    }
}
