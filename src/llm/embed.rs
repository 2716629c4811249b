//! Text embeddings from any OpenAI-compatible `/v1/embeddings` endpoint (llama-server
//! `--embeddings`, Ollama, vLLM, OpenAI), for `retrieve = { by = "embedding" }` and
//! `select = { by = "embedding" }`.
//!
//! The endpoint is a configured model (`[models.NAME]` with `base_url` and `model`), named by
//! the prompt file's `embed_model`. Vectors are cached on disk by (served model, text hash) in
//! `<data dir>/embeddings/`, one JSONL file per model, so a rerun embeds nothing it has seen.
//!
//! Rendering never calls this: it says which texts need vectors
//! (`prompt::render::embeddings_needed`) and takes them as data. The playground's driver runs
//! [`fetch`] as an effect off the UI loop, `promptloom run` and `technique` before they render.
//! Each request runs on a thread of its own with a small runtime, so [`fetch`] can be called
//! from inside or outside an async context (it blocks: async callers use `spawn_blocking`).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};

use crate::config::{Config, ModelConfig};
use crate::prompt::vectors::{EmbedWants, Vectors};

struct Settings {
    models: HashMap<String, ModelConfig>,
    cache_dir: PathBuf,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Per cache file: text hash → vector.
type Cache = HashMap<PathBuf, HashMap<String, Vec<f32>>>;
static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();

/// Make the configured models usable as embedding endpoints. Called once at startup.
pub(crate) fn configure(config: &Config) {
    let _ = SETTINGS.set(Settings {
        models: config
            .model_names()
            .into_iter()
            .filter_map(|n| config.model(&n).map(|m| (n, m.clone())))
            .collect(),
        cache_dir: config.dirs.data_dir.join("embeddings"),
    });
}

/// How many texts go in one request.
const BATCH: usize = 64;

fn text_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Vectors for everything `wants` asks for, per model; a model whose request fails carries
/// the error (each ranking by it then records it).
pub(crate) fn fetch(wants: &EmbedWants) -> Vectors {
    let mut out = Vectors::default();
    for (model, texts) in wants.iter() {
        out.insert(model, &texts, embed(model, &texts));
    }
    out
}

/// [`fetch`] on a blocking thread, one fetch at a time (panes asking for the same texts then
/// find them in the cache the first one filled).
pub(crate) async fn fetch_off_thread(wants: EmbedWants) -> Vectors {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let asked = wants.clone();
    match tokio::task::spawn_blocking(move || fetch(&wants)).await {
        Ok(vectors) => vectors,
        Err(e) => {
            let mut failed = Vectors::default();
            for (model, texts) in asked.iter() {
                failed.insert(
                    model,
                    &texts,
                    Err(format!("the embeddings fetch failed: {e}")),
                );
            }
            failed
        }
    }
}

/// The vectors for `texts` from configured model `name`, from the cache where it has them.
pub(crate) fn embed(name: &str, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
    let settings = SETTINGS
        .get()
        .ok_or_else(|| "embeddings are not configured".to_string())?;
    let m = settings
        .models
        .get(name)
        .ok_or_else(|| format!("embed_model {name:?} is not a configured model"))?;
    let (base_url, model) = match (&m.base_url, &m.model) {
        (Some(u), Some(md)) => (u.trim_end_matches('/').to_string(), md.clone()),
        _ => {
            return Err(format!(
                "embed_model {name:?} needs base_url and model (an OpenAI-compatible server)"
            ))
        }
    };
    let file = settings.cache_dir.join(format!(
        "{}-{}.jsonl",
        name.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>(),
        &text_hash(&format!("{base_url}\n{model}"))[..12]
    ));
    let hashes: Vec<String> = texts.iter().map(|t| text_hash(t)).collect();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let missing: Vec<usize> = {
        let mut c = cache
            .lock()
            .map_err(|_| "embedding cache poisoned".to_string())?;
        let entries = c.entry(file.clone()).or_insert_with(|| read_cache(&file));
        (0..texts.len())
            .filter(|&i| !entries.contains_key(&hashes[i]))
            .collect()
    };
    if !missing.is_empty() {
        let remote = crate::llm::http::Remote::from_config(name, "openai", m)?;
        let api_key = remote.api_key.clone();
        let headers = remote.headers.clone();
        let mut fresh: Vec<(String, Vec<f32>)> = Vec::with_capacity(missing.len());
        for batch in missing.chunks(BATCH) {
            let inputs: Vec<String> = batch.iter().map(|&i| texts[i].to_string()).collect();
            let vectors = request(&base_url, &model, api_key.as_deref(), &headers, &inputs)?;
            for (&i, v) in batch.iter().zip(vectors) {
                fresh.push((hashes[i].clone(), v));
            }
        }
        append_cache(&file, &fresh);
        let mut c = cache
            .lock()
            .map_err(|_| "embedding cache poisoned".to_string())?;
        let entries = c.entry(file.clone()).or_default();
        entries.extend(fresh);
    }
    let c = cache
        .lock()
        .map_err(|_| "embedding cache poisoned".to_string())?;
    let entries = c.get(&file).ok_or("embedding cache lost")?;
    hashes
        .iter()
        .map(|h| {
            entries
                .get(h)
                .cloned()
                .ok_or_else(|| "the server returned fewer vectors than inputs".to_string())
        })
        .collect()
}

fn read_cache(file: &PathBuf) -> HashMap<String, Vec<f32>> {
    #[derive(serde::Deserialize)]
    struct Line {
        h: String,
        v: Vec<f32>,
    }
    let Ok(text) = std::fs::read_to_string(file) else {
        return HashMap::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
        .map(|l| (l.h, l.v))
        .collect()
}

fn append_cache(file: &PathBuf, fresh: &[(String, Vec<f32>)]) {
    if let Some(dir) = file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
    else {
        tracing::warn!("cannot write the embedding cache {}", file.display());
        return;
    };
    let mut out = String::new();
    for (h, v) in fresh {
        out.push_str(&serde_json::json!({ "h": h, "v": v }).to_string());
        out.push('\n');
    }
    // One write per batch: a torn last line is skipped when read back.
    let _ = f.write_all(out.as_bytes());
}

/// One POST to `{base_url}/embeddings`, on a thread of its own.
fn request(
    base_url: &str,
    model: &str,
    api_key: Option<&str>,
    headers: &[(String, String)],
    inputs: &[String],
) -> Result<Vec<Vec<f32>>, String> {
    let url = format!("{base_url}/embeddings");
    let body = serde_json::json!({ "model": model, "input": inputs });
    let n = inputs.len();
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("embeddings: no runtime: {e}"))?;
            rt.block_on(async {
                let client = reqwest::Client::builder()
                    .connect_timeout(std::time::Duration::from_secs(10))
                    .timeout(std::time::Duration::from_secs(120))
                    .build()
                    .map_err(|e| format!("embeddings: {e}"))?;
                let mut req = client.post(&url).json(&body);
                if let Some(k) = api_key {
                    req = req.bearer_auth(k);
                }
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                let resp = req
                    .send()
                    .await
                    .map_err(|e| format!("embeddings request to {url} failed: {e}"))?;
                let status = resp.status();
                let text = resp
                    .text()
                    .await
                    .map_err(|e| format!("embeddings from {url}: {e}"))?;
                if !status.is_success() {
                    let short: String = text.chars().take(200).collect();
                    return Err(format!("embeddings from {url}: HTTP {status}: {short}"));
                }
                parse_response(&text, n).map_err(|e| format!("embeddings from {url}: {e}"))
            })
        })
        .join()
        .map_err(|_| "embeddings: the request thread panicked".to_string())?
    })
}

/// `{"data": [{"index": i, "embedding": [...]}, ...]}`, in input order.
fn parse_response(text: &str, n: usize) -> Result<Vec<Vec<f32>>, String> {
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        index: Option<usize>,
        embedding: Vec<f32>,
    }
    #[derive(serde::Deserialize)]
    struct Resp {
        data: Vec<Item>,
    }
    let r: Resp =
        serde_json::from_str(text).map_err(|e| format!("not an embeddings response: {e}"))?;
    if r.data.len() != n {
        return Err(format!("asked for {n} vectors, got {}", r.data.len()));
    }
    let mut out: Vec<Option<Vec<f32>>> = vec![None; n];
    for (pos, item) in r.data.into_iter().enumerate() {
        let i = item.index.unwrap_or(pos);
        match out.get_mut(i) {
            Some(slot) => *slot = Some(item.embedding),
            None => return Err(format!("vector index {i} out of range")),
        }
    }
    out.into_iter()
        .map(|v| v.ok_or_else(|| "a vector is missing".to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_put_in_input_order() {
        let v = parse_response(
            r#"{"data":[{"index":1,"embedding":[0,1]},{"index":0,"embedding":[1,0]}]}"#,
            2,
        )
        .unwrap();
        assert_eq!(v, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert!(parse_response(r#"{"data":[]}"#, 1).is_err());
        assert!(parse_response("<html>", 1).is_err());
    }
}
