//! Golden logits: the engine's output, step by step, is what the unpatched mistral.rs 0.8.1
//! gave, so every change under `vendor/` is checked against it.
//!
//! Three fixed prompts run greedily (promptloom's `engine_sampling`) on the default model, one
//! at a time, prefix cache off. A logits processor records every step's logits: a SHA-256 of
//! their f32 bits and the top 5 (token id, value). `tests/fixtures/golden_logits.json` holds
//! what the crates.io build of mistralrs-core 0.8.1 gave on this machine (an Intel Xeon with
//! AVX-512), recorded before any patch with
//!
//! ```text
//! PROMPTLOOM_GOLDEN_RECORD=1 cargo test --test golden_logits
//! ```
//!
//! A run passes when every step is bit-identical, or, where a change must reorder a sum (or
//! another CPU takes other SIMD paths in candle's and gemm's kernels), when every step has the
//! same top-5 ids with each value within [`BOUND`] and so the same greedy tokens. The test
//! prints which of the two it was.
#![cfg(feature = "local")]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use mistralrs::{CustomLogitsProcessor, RequestBuilder, Response, Tensor, TextMessageRole};
use promptloom::engine_api::{engine_sampling, gguf_builder};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Largest difference allowed in a top-5 logit when the bits differ.
const BOUND: f32 = 1e-3;

const PROMPTS: [&str; 3] = [
    "What is the capital of England?",
    "Write a short poem about the sea.",
    "Explain in three sentences how a bicycle works.",
];
const STEPS: usize = 96;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Step {
    /// SHA-256 of the logits' f32 bits, little-endian.
    sha256: String,
    /// The five largest logits, largest first (ties by lower id): (id, value).
    top5: Vec<(u32, f32)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Run {
    prompt: String,
    steps: Vec<Step>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Golden {
    model_sha256: String,
    recorded_with: String,
    runs: Vec<Run>,
}

struct Recorder(Mutex<Vec<Step>>);

impl CustomLogitsProcessor for Recorder {
    fn apply(&self, logits: &Tensor, _context: &[u32]) -> mistralrs::Result<Tensor> {
        let values: Vec<f32> = logits.to_dtype(mistralrs::DType::F32)?.to_vec1()?;
        let mut hash = Sha256::new();
        for v in &values {
            hash.update(v.to_le_bytes());
        }
        let mut ids: Vec<u32> = (0..values.len() as u32).collect();
        ids.sort_by(|&a, &b| {
            values[b as usize]
                .total_cmp(&values[a as usize])
                .then(a.cmp(&b))
        });
        let step = Step {
            sha256: hex::encode(hash.finalize()),
            top5: ids[..5].iter().map(|&i| (i, values[i as usize])).collect(),
        };
        match self.0.lock() {
            Ok(mut s) => s.push(step),
            Err(p) => p.into_inner().push(step),
        }
        Ok(logits.clone())
    }
}

async fn record(model: &mistralrs::Model, prompt: &str) -> Vec<Step> {
    let recorder = Arc::new(Recorder(Mutex::new(Vec::new())));
    let req = RequestBuilder::new()
        .add_message(TextMessageRole::User, prompt)
        .set_sampling(engine_sampling(Some(STEPS)))
        .add_logits_processor(recorder.clone());
    let mut stream = model.stream_chat_request(req).await.unwrap();
    while let Some(r) = stream.next().await {
        match r {
            Response::Chunk(c) if c.choices.iter().any(|c| c.finish_reason.is_some()) => break,
            Response::Done(_) => break,
            Response::InternalError(e) => panic!("engine error: {e}"),
            Response::ValidationError(e) => panic!("engine refused: {e}"),
            Response::ModelError(e, _) => panic!("model error: {e}"),
            _ => {}
        }
    }
    drop(stream);
    let steps = recorder.0.lock().unwrap().clone();
    steps
}

fn sha256_file(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    hex::encode(Sha256::digest(&bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logits_match_the_unpatched_engine() {
    let path = common::require_default_model();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden_logits.json");
    let (lanes_before, _) = mistralrs_core::promptloom::q8_lanes_built();
    let (ropes, reads, embeddings) = (
        mistralrs_core::promptloom::rope_tables_built(),
        mistralrs_core::promptloom::gguf_file_reads(),
        mistralrs_core::promptloom::quantized_embeddings_built(),
    );
    let model = gguf_builder(&path)
        .unwrap()
        .with_max_num_seqs(1)
        .with_prefix_cache_n(None)
        .build()
        .await
        .unwrap();
    // Patch 19: the load built one rotary table (0.8.1: one per layer) and read the file
    // buffered (unbuffered, its vocabulary and merges alone were about 200,000 reads).
    assert_eq!(
        mistralrs_core::promptloom::rope_tables_built() - ropes,
        1,
        "rotary tables built by one load"
    );
    // Patch 20: its token embedding table stayed quantized (the logits below check its rows).
    assert_eq!(
        mistralrs_core::promptloom::quantized_embeddings_built() - embeddings,
        1,
        "token embedding tables kept quantized by one load"
    );
    let reads = mistralrs_core::promptloom::gguf_file_reads() - reads;
    assert!(
        (1..10_000).contains(&reads),
        "{reads} reads reached the GGUF file in one load"
    );
    let mut runs = Vec::new();
    for prompt in PROMPTS {
        runs.push(Run {
            prompt: prompt.to_string(),
            steps: record(&model, prompt).await,
        });
    }
    // Patch 21: the decode steps ran on the kernel with outputs in lanes (where it runs here),
    // every layer's weights and the head repacked for it.
    if mistralrs_core::promptloom::q8_lanes_available() {
        let (packed, _) = mistralrs_core::promptloom::q8_lanes_built();
        assert!(
            packed - lanes_before > 4 * 30,
            "{} weights repacked for the decode kernel",
            packed - lanes_before
        );
    }
    // Patch 16: the model was loaded with q/k/v and gate/up stacked, two per layer.
    assert!(
        mistralrs_core::promptloom::stacked_built() >= 2,
        "the model's projections were not stacked"
    );
    let model_sha256 = sha256_file(&path);
    if std::env::var_os("PROMPTLOOM_GOLDEN_RECORD").is_some() {
        let golden = Golden {
            model_sha256,
            recorded_with: "mistralrs-core 0.8.1 as published on crates.io, unpatched".into(),
            runs,
        };
        std::fs::create_dir_all(fixture.parent().unwrap()).unwrap();
        std::fs::write(
            &fixture,
            serde_json::to_string_pretty(&golden).unwrap() + "\n",
        )
        .unwrap();
        println!("recorded {}", fixture.display());
        return;
    }
    let golden: Golden = serde_json::from_str(&std::fs::read_to_string(&fixture).unwrap()).unwrap();
    assert_eq!(
        model_sha256,
        golden.model_sha256,
        "{} is not the file the fixture was recorded with",
        path.display()
    );
    let (mut identical, mut total, mut max_delta) = (0usize, 0usize, 0f32);
    for (got, want) in runs.iter().zip(&golden.runs) {
        assert_eq!(got.prompt, want.prompt);
        assert_eq!(
            got.steps.len(),
            want.steps.len(),
            "{:?}: a different number of steps (different greedy tokens)",
            got.prompt
        );
        for (i, (g, w)) in got.steps.iter().zip(&want.steps).enumerate() {
            total += 1;
            if g == w {
                identical += 1;
                continue;
            }
            let ids = |s: &Step| s.top5.iter().map(|t| t.0).collect::<Vec<_>>();
            assert_eq!(
                ids(g),
                ids(w),
                "{:?} step {i}: top-5 ids differ",
                got.prompt
            );
            for (a, b) in g.top5.iter().zip(&w.top5) {
                let d = (a.1 - b.1).abs();
                max_delta = max_delta.max(d);
                assert!(
                    d <= BOUND,
                    "{:?} step {i}: logit of token {} is {} (golden {}), off by {d} > {BOUND}",
                    got.prompt,
                    a.0,
                    a.1,
                    b.1
                );
            }
        }
    }
    if identical == total {
        println!("golden logits: all {total} steps bit-identical");
    } else {
        println!(
            "golden logits: {identical}/{total} steps bit-identical, the others within {BOUND} \
             (max |Δ| {max_delta:e}), same top-5 ids and greedy tokens"
        );
    }
}
