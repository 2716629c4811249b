//! Embedding vectors as data. Rendering a variant whose retrieval or example selection ranks
//! by embedding needs vectors for some texts (the chunks, the pool's inputs, the query); the
//! prompt core says which ([`EmbedWants`], from `render::embeddings_needed`) and takes the
//! vectors someone fetched ([`Vectors`]), but never calls the embeddings endpoint itself:
//! the playground's driver fetches them as an effect, `promptloom run` before it renders
//! (both through `crate::llm::embed`, with its on-disk cache).

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Texts to embed, per configured embedding model (`embed_model`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EmbedWants {
    by_model: BTreeMap<String, BTreeSet<String>>,
}

impl EmbedWants {
    pub fn add<'a>(&mut self, model: &str, texts: impl IntoIterator<Item = &'a str>) {
        let set = self.by_model.entry(model.to_string()).or_default();
        set.extend(texts.into_iter().map(str::to_string));
    }

    /// Everything `other` wants too.
    pub fn merge(&mut self, other: EmbedWants) {
        for (model, texts) in other.by_model {
            self.by_model.entry(model).or_default().extend(texts);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_model.values().all(BTreeSet::is_empty)
    }

    /// (model, texts) pairs, models in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Vec<&str>)> {
        self.by_model
            .iter()
            .map(|(m, t)| (m.as_str(), t.iter().map(String::as_str).collect()))
    }
}

/// Fetched vectors per model and text, or why a model's could not be fetched (the error
/// every ranking by that model then records).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Vectors {
    by_model: BTreeMap<String, Result<HashMap<String, Vec<f32>>, String>>,
}

impl Vectors {
    /// What fetching `texts` from `model` gave: one vector per text, in order, or an error.
    pub fn insert(&mut self, model: &str, texts: &[&str], got: Result<Vec<Vec<f32>>, String>) {
        let got = got.and_then(|vectors| {
            if vectors.len() != texts.len() {
                return Err(format!(
                    "asked for {} vectors, got {}",
                    texts.len(),
                    vectors.len()
                ));
            }
            Ok(texts
                .iter()
                .map(|t| t.to_string())
                .zip(vectors)
                .collect::<HashMap<_, _>>())
        });
        match (self.by_model.get_mut(model), got) {
            (Some(Ok(have)), Ok(more)) => have.extend(more),
            (Some(Err(_)), _) => {}
            (_, got) => {
                self.by_model.insert(model.to_string(), got);
            }
        }
    }

    /// The vector of `text` from `model`.
    pub fn of(&self, model: &str, text: &str) -> Result<&[f32], String> {
        match self.by_model.get(model) {
            None => Err(format!("no vectors were fetched from {model:?}")),
            Some(Err(e)) => Err(e.clone()),
            Some(Ok(m)) => m
                .get(text)
                .map(Vec::as_slice)
                .ok_or_else(|| format!("no vector from {model:?} for a text it was not asked")),
        }
    }

    /// The vectors of `texts` from `model`, in order.
    pub fn all<'a>(
        &self,
        model: &str,
        texts: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<&[f32]>, String> {
        texts.into_iter().map(|t| self.of(model, t)).collect()
    }
}

/// Cosine similarity; 0 for a zero vector or mismatched lengths.
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_parallel_and_orthogonal() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 1.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }

    #[test]
    fn wants_merge_and_vectors_answer_by_model_and_text() {
        let mut w = EmbedWants::default();
        assert!(w.is_empty());
        w.add("e", ["b", "a"]);
        let mut more = EmbedWants::default();
        more.add("e", ["a", "c"]);
        more.add("f", ["x"]);
        w.merge(more);
        let got: Vec<(&str, Vec<&str>)> = w.iter().collect();
        assert_eq!(got, vec![("e", vec!["a", "b", "c"]), ("f", vec!["x"])]);

        let mut v = Vectors::default();
        v.insert("e", &["a", "b"], Ok(vec![vec![1.0], vec![2.0]]));
        v.insert("e", &["c"], Ok(vec![vec![3.0]]));
        v.insert("f", &["x"], Err("server down".into()));
        assert_eq!(
            v.all("e", ["c", "a"]).unwrap(),
            vec![&[3.0][..], &[1.0][..]]
        );
        assert_eq!(v.of("f", "x").unwrap_err(), "server down");
        assert!(v
            .of("g", "x")
            .unwrap_err()
            .contains("no vectors were fetched"));
        assert!(v.of("e", "zzz").is_err());
        // A short answer is an error for the whole model, not a misaligned map.
        v.insert("h", &["p", "q"], Ok(vec![vec![1.0]]));
        assert!(v
            .of("h", "p")
            .unwrap_err()
            .contains("asked for 2 vectors, got 1"));
    }
}
