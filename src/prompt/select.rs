//! Example selection for few-shot prompts: `examples_file = "examples.jsonl"` (or CSV) and
//! `select = { k = 3, by = "bm25" | "embedding" | "random" | "first", order = "similar-last" }`.
//!
//! The pool is the variant's inline `examples` followed by the file's rows; per case, `k` of
//! them are picked for the case's question: the most similar inputs (BM25 or embeddings), a
//! random sample seeded by the question (so reruns pick the same), or the first `k`. The
//! choice is recorded in the node's metadata (`examples_selected`) like retrieved chunks.
//! Without `select`, the file's rows are all used, as fixed examples. Ranking by embedding
//! takes its vectors as data ([`super::vectors`]): [`embed_texts`] says which texts need them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::retrieve::rank_by_vectors;
use super::vectors::{EmbedWants, Vectors};
use crate::error::InputError;

/// How examples are picked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SelectBy {
    #[default]
    Bm25,
    Embedding,
    Random,
    First,
}

/// In which order the picked examples are sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Order {
    /// The most similar example last, nearest the question (models weigh recent turns most).
    #[default]
    SimilarLast,
    SimilarFirst,
}

fn default_k() -> usize {
    3
}

/// `select = { … }` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SelectSpec {
    #[serde(default = "default_k")]
    pub k: usize,
    #[serde(default)]
    pub by: SelectBy,
    #[serde(default)]
    pub order: Order,
    /// The configured model that embeds, for `by = "embedding"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed_model: Option<String>,
}

/// An example in the pool, with where it came from (`examples.jsonl:4`, `inline 2`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolExample {
    pub source: String,
    pub input: String,
    pub output: String,
}

/// A variant's selection: the spec and its pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Select {
    pub spec: SelectSpec,
    pub pool: Vec<PoolExample>,
}

/// A line of a JSONL examples file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    input: String,
    output: String,
}

/// Read an examples file: JSONL lines `{"input": …, "output": …}` or a CSV with `input` and
/// `output` columns.
pub(crate) fn load_examples(path: &Path) -> Result<Vec<PoolExample>, InputError> {
    let text = std::fs::read_to_string(path).map_err(|e| InputError::io(path, &e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let at = |line: usize, col: usize, msg: String| InputError {
        path: path.to_path_buf(),
        position: Some((line, col)),
        message: msg,
        hint: Some("each example has an `input` and an `output`".into()),
    };
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let mut out = Vec::new();
    match ext.as_deref() {
        Some("jsonl") | Some("ndjson") => {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let ex: Row = serde_json::from_str(line.trim())
                    .map_err(|e| at(i + 1, e.column().max(1), format!("bad example: {e}")))?;
                out.push(PoolExample {
                    source: format!("{name}:{}", i + 1),
                    input: ex.input,
                    output: ex.output,
                });
            }
        }
        Some("csv") => {
            let mut r = csv::Reader::from_reader(text.as_bytes());
            let headers = r.headers().map_err(|e| at(1, 1, e.to_string()))?.clone();
            let col = |n: &str| headers.iter().position(|h| h.trim() == n);
            let (Some(ic), Some(oc)) = (col("input"), col("output")) else {
                return Err(at(
                    1,
                    1,
                    "the CSV needs `input` and `output` columns".into(),
                ));
            };
            for rec in r.records() {
                let rec = rec.map_err(|e| {
                    let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                    at(line, 1, e.to_string())
                })?;
                let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
                out.push(PoolExample {
                    source: format!("{name}:{line}"),
                    input: rec.get(ic).unwrap_or("").to_string(),
                    output: rec.get(oc).unwrap_or("").to_string(),
                });
            }
        }
        _ => {
            return Err(InputError::plain(path, "unknown examples_file format")
                .with_hint("use a .jsonl or .csv file"))
        }
    }
    Ok(out)
}

/// BM25 engines over example pools, by pool hash.
static ENGINES: OnceLock<Mutex<HashMap<String, Arc<bm25::SearchEngine<u32>>>>> = OnceLock::new();

fn pool_hash(pool: &[PoolExample]) -> String {
    let mut h = Sha256::new();
    for p in pool {
        h.update(p.input.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

fn engine(pool: &[PoolExample]) -> Arc<bm25::SearchEngine<u32>> {
    let key = pool_hash(pool);
    let cache = ENGINES.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(e) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return e;
    }
    let docs: Vec<bm25::Document<u32>> = pool
        .iter()
        .enumerate()
        .map(|(i, p)| bm25::Document::new(i as u32, p.input.clone()))
        .collect();
    let e = Arc::new(
        bm25::SearchEngineBuilder::<u32>::with_documents(bm25::Language::English, docs).build(),
    );
    if let Ok(mut c) = cache.lock() {
        c.insert(key, e.clone());
    }
    e
}

/// Indices into the pool, best first, with scores; `None` scores for `first`/`random`.
fn pick(
    spec: &SelectSpec,
    pool: &[PoolExample],
    question: &str,
    vectors: &Vectors,
) -> Result<Vec<(usize, Option<f32>)>, String> {
    let k = spec.k.min(pool.len());
    Ok(match spec.by {
        SelectBy::First => (0..k).map(|i| (i, None)).collect(),
        SelectBy::Random => {
            use rand::SeedableRng;
            let seed = u64::from_le_bytes(
                Sha256::digest(question.as_bytes())[..8]
                    .try_into()
                    .unwrap_or([0; 8]),
            );
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut idx = rand::seq::index::sample(&mut rng, pool.len(), k).into_vec();
            idx.sort_unstable();
            idx.into_iter().map(|i| (i, None)).collect()
        }
        SelectBy::Bm25 => {
            let mut hits: Vec<(usize, f32)> = engine(pool)
                .search(question, None)
                .into_iter()
                .map(|r| (r.document.id as usize, r.score))
                .collect();
            hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            // Fewer than k matching words: fill up in pool order.
            let mut out: Vec<(usize, Option<f32>)> = hits
                .into_iter()
                .take(k)
                .map(|(i, s)| (i, Some(s)))
                .collect();
            for i in 0..pool.len() {
                if out.len() >= k {
                    break;
                }
                if !out.iter().any(|(j, _)| *j == i) {
                    out.push((i, Some(0.0)));
                }
            }
            out
        }
        SelectBy::Embedding => {
            let model = spec
                .embed_model
                .as_deref()
                .ok_or("by = \"embedding\" needs embed_model")?;
            let inputs = vectors.all(model, pool.iter().map(|p| p.input.as_str()))?;
            let q = vectors.of(model, question)?;
            rank_by_vectors(&inputs, q, k)
                .into_iter()
                .map(|(i, s)| (i, Some(s)))
                .collect()
        }
    })
}

/// The texts picking examples for `question` by embedding needs vectors for (the pool's
/// inputs and the question), added to `wants`.
pub(crate) fn embed_texts(sel: &Select, question: &str, wants: &mut EmbedWants) {
    if sel.spec.by != SelectBy::Embedding {
        return;
    }
    let Some(model) = sel.spec.embed_model.as_deref() else {
        return;
    };
    wants.add(model, sel.pool.iter().map(|p| p.input.as_str()));
    wants.add(model, [question]);
}

/// The pool's examples to send for `question`, in the order sent, recorded in `meta`
/// (`examples_selected`); a failure is recorded as `select_error` and picks none.
pub(crate) fn choose<'a>(
    sel: &'a Select,
    question: &str,
    vectors: &Vectors,
    meta: &mut BTreeMap<String, String>,
) -> Vec<&'a PoolExample> {
    match pick(&sel.spec, &sel.pool, question, vectors) {
        Ok(mut picked) => {
            let similar = matches!(sel.spec.by, SelectBy::Bm25 | SelectBy::Embedding);
            if similar && sel.spec.order == Order::SimilarLast {
                picked.reverse();
            }
            let record: Vec<String> = picked
                .iter()
                .filter_map(|(i, s)| {
                    let p = sel.pool.get(*i)?;
                    Some(match s {
                        Some(s) => format!("{} {s:.3}", p.source),
                        None => p.source.clone(),
                    })
                })
                .collect();
            meta.insert(
                "examples_selected".into(),
                format!(
                    "{} of {} by {}: {}",
                    record.len(),
                    sel.pool.len(),
                    match sel.spec.by {
                        SelectBy::Bm25 => "bm25",
                        SelectBy::Embedding => "embedding",
                        SelectBy::Random => "random",
                        SelectBy::First => "first",
                    },
                    record.join("; ")
                ),
            );
            picked
                .iter()
                .filter_map(|(i, _)| sel.pool.get(*i))
                .collect()
        }
        Err(e) => {
            meta.insert("select_error".into(), e);
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Vec<PoolExample> {
        [
            ("Translate 'cat' to French", "chat"),
            ("What is 2 + 2?", "4"),
            ("Translate 'dog' to French", "chien"),
            ("What is the capital of Italy?", "Rome"),
            ("What is 10 times 3?", "30"),
        ]
        .iter()
        .enumerate()
        .map(|(i, (a, b))| PoolExample {
            source: format!("ex.jsonl:{}", i + 1),
            input: a.to_string(),
            output: b.to_string(),
        })
        .collect()
    }

    fn spec(by: SelectBy, order: Order) -> SelectSpec {
        SelectSpec {
            k: 2,
            by,
            order,
            embed_model: None,
        }
    }

    #[test]
    fn bm25_picks_the_nearest_examples_most_similar_last() {
        let picked = pick(
            &spec(SelectBy::Bm25, Order::SimilarLast),
            &pool(),
            "Translate 'bird' to French",
            &Vectors::default(),
        )
        .unwrap();
        let ids: Vec<usize> = picked.iter().map(|p| p.0).collect();
        assert!(ids.contains(&0) && ids.contains(&2), "{ids:?}");
    }

    #[test]
    fn first_and_random_are_reproducible() {
        let p = pool();
        let first = pick(
            &spec(SelectBy::First, Order::SimilarLast),
            &p,
            "q",
            &Vectors::default(),
        )
        .unwrap();
        assert_eq!(first, vec![(0, None), (1, None)]);
        let a = pick(
            &spec(SelectBy::Random, Order::SimilarLast),
            &p,
            "some question",
            &Vectors::default(),
        )
        .unwrap();
        let b = pick(
            &spec(SelectBy::Random, Order::SimilarLast),
            &p,
            "some question",
            &Vectors::default(),
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn examples_for_records_the_choice_in_order() {
        let mut v = crate::prompt::render::tests_support::variant();
        v.select = Some(Select {
            spec: spec(SelectBy::Bm25, Order::SimilarLast),
            pool: pool(),
        });
        let mut meta = BTreeMap::new();
        let ex = crate::prompt::render::examples_for(
            &v,
            "What is 7 times 6?",
            &Vectors::default(),
            &mut meta,
        );
        assert_eq!(ex.len(), 2);
        // Most similar last: "What is 10 times 3?".
        assert_eq!(ex[1].output, "30");
        let m = &meta["examples_selected"];
        assert!(m.starts_with("2 of 5 by bm25: "), "{m}");
        assert!(m.contains("ex.jsonl:5"), "{m}");
        let mut v = v.clone();
        v.select = None;
        v.examples = vec![crate::prompt::Example {
            input: "a".into(),
            output: "b".into(),
        }];
        let mut meta = BTreeMap::new();
        assert_eq!(
            crate::prompt::render::examples_for(&v, "x", &Vectors::default(), &mut meta).len(),
            1
        );
        assert!(meta.is_empty());
    }

    #[test]
    fn embedding_picks_by_the_vectors_it_is_given_and_says_when_it_has_none() {
        let p = pool();
        let mut spec = spec(SelectBy::Embedding, Order::SimilarFirst);
        spec.embed_model = Some("e".into());
        let sel = Select { spec, pool: p };
        let mut wants = EmbedWants::default();
        embed_texts(&sel, "What is 7 times 6?", &mut wants);
        let (model, texts) = wants.iter().next().unwrap();
        assert_eq!(
            (model, texts.len()),
            ("e", 6),
            "the 5 inputs and the question"
        );
        // Arithmetic questions point one way, translations the other.
        let vector = |t: &str| {
            if t.contains("Translate") {
                vec![0.0, 1.0]
            } else if t.contains("times") {
                vec![1.0, 0.1]
            } else {
                vec![1.0, 0.6]
            }
        };
        let mut vectors = Vectors::default();
        vectors.insert("e", &texts, Ok(texts.iter().map(|t| vector(t)).collect()));
        let mut meta = BTreeMap::new();
        let got = choose(&sel, "What is 7 times 6?", &vectors, &mut meta);
        assert_eq!(got[0].output, "30", "{got:?}");
        assert!(meta["examples_selected"].starts_with("2 of 5 by embedding: ex.jsonl:5 "));
        let mut meta = BTreeMap::new();
        assert!(choose(&sel, "What is 7 times 6?", &Vectors::default(), &mut meta).is_empty());
        assert!(
            meta["select_error"].contains("no vectors were fetched"),
            "{meta:?}"
        );
    }

    #[test]
    fn examples_files_load_with_positions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ex.jsonl");
        std::fs::write(
            &p,
            "{\"input\": \"a\", \"output\": \"b\"}\n\n{\"input\": \"c\"}\n",
        )
        .unwrap();
        let e = load_examples(&p).unwrap_err().to_string();
        assert!(e.contains("ex.jsonl:3:"), "{e}");
        std::fs::write(&p, "{\"input\": \"a\", \"output\": \"b\"}\n").unwrap();
        assert_eq!(load_examples(&p).unwrap()[0].source, "ex.jsonl:1");
        let c = dir.path().join("ex.csv");
        std::fs::write(&c, "input,output\n\"Hi, there\",hello\n").unwrap();
        let got = load_examples(&c).unwrap();
        assert_eq!(
            (got[0].input.as_str(), got[0].source.as_str()),
            ("Hi, there", "ex.csv:2")
        );
    }
}
