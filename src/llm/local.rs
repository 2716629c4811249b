//! The local backend: a GGUF model run in-process by mistral.rs.
//!
//! The model loads once, on first use or on `preload`, in a background task; every request
//! waits for it. Each request's stream is drained into our own unbounded channel straight
//! away (a mistral.rs stream that is not read stalls the whole engine), and cancelling drops
//! the mistral.rs receiver, which makes the engine stop that sequence at its next token.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mistralrs::{
    CustomLogitsProcessor, GgufModelBuilder, Model, RequestBuilder, Response, SamplingParams,
    StopTokens, Tensor, TokenSource,
};
use tokio::sync::OnceCell;

use super::seeded::{mask_all_but, SeededSampler};
use super::{
    Backend, BackendStatus, ChatRequest, EventSink, FinishReason, ModelIdentity, Role, StreamEvent,
    StreamHandle, TokenLogprob, Usage,
};
use crate::chat::MAX_TOP_LOGPROBS;

/// Options for the local engine.
#[derive(Debug, Clone)]
pub(crate) struct LocalOptions {
    pub max_num_seqs: usize,
    /// Sequences kept in mistral.rs's prefix cache (shared system prompts and examples).
    pub prefix_cache_n: usize,
    /// LoRA adapter directories merged into the model when it loads (`lora.rs`).
    pub adapters: Vec<PathBuf>,
    /// Where the model file's sha256 is remembered between starts (`sha256_remembered`);
    /// None computes it at every start.
    pub hash_cache: Option<PathBuf>,
}

impl Default for LocalOptions {
    /// Four sequences in the engine at once, so the variants of a case stream side by side:
    /// mistral.rs decodes sequences of equal length as one batch and lets sequences of
    /// different lengths take turns step by step (every pane stays live either way); the
    /// rest queue here. One at a time was the default while mistral.rs 0.8.1 gave every
    /// batched row the last row's attention (fixed in vendor/, patch 3); `promptloom bench
    /// --only concurrency` measures both.
    fn default() -> Self {
        LocalOptions {
            max_num_seqs: 4,
            prefix_cache_n: 16,
            adapters: Vec::new(),
            hash_cache: None,
        }
    }
}

struct Loaded {
    model: Model,
    adapters: Vec<crate::chat::AdapterIdentity>,
}

struct Shared {
    path: PathBuf,
    options: LocalOptions,
    model: OnceCell<Result<Arc<Loaded>, String>>,
    status: Mutex<BackendStatus>,
    sha256: Mutex<Hash>,
    /// Signalled when the hash is done.
    hashed: std::sync::Condvar,
    /// Requests inside the engine at once (see [`LocalOptions::default`]).
    gate: tokio::sync::Semaphore,
}

/// A GGUF model served by mistral.rs in this process.
#[derive(Clone)]
pub(crate) struct LocalBackend {
    shared: Arc<Shared>,
}

impl LocalBackend {
    pub fn new(path: PathBuf, options: LocalOptions) -> Self {
        let max_in_engine = options.max_num_seqs.max(1);
        LocalBackend {
            shared: Arc::new(Shared {
                path,
                options,
                model: OnceCell::new(),
                status: Mutex::new(BackendStatus::Idle),
                sha256: Mutex::new(Hash::NotStarted),
                hashed: std::sync::Condvar::new(),
                gate: tokio::sync::Semaphore::new(max_in_engine),
            }),
        }
    }

    /// Wait until the model is loaded (loading it if nobody has yet): the tests, and the
    /// bench's load time.
    pub async fn ready(&self) -> Result<(), String> {
        self.loaded().await.map(|_| ())
    }

    async fn loaded(&self) -> Result<Arc<Loaded>, String> {
        let shared = self.shared.clone();
        self.shared
            .model
            .get_or_init(|| async move {
                set_status(&shared.status, BackendStatus::Loading);
                let result = load(&shared.path, &shared.options).await.map(Arc::new);
                match &result {
                    Ok(_) => {
                        set_status(&shared.status, BackendStatus::Ready);
                        remember_sha256(shared.clone());
                    }
                    Err(e) => set_status(&shared.status, BackendStatus::Failed(e.clone())),
                }
                result
            })
            .await
            .clone()
    }
}

/// The model file's sha256, as far as it is known.
enum Hash {
    NotStarted,
    Computing,
    /// None when the file could not be read.
    Done(Option<String>),
}

/// How long [`LocalBackend::identity`] waits for a hash being computed, when no request is in
/// the engine. It is asked for when a session is written: at the end of a run the engine is
/// idle, so the hash (0.4 s of a core for a 145 MB file) gets the CPU and the session records
/// it. While requests are in the engine it does not wait (a save from the UI would stall):
/// that save goes without the hash and the next one records it.
const HASH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The model file's hash, recorded in sessions: read from the hash cache, or computed on a
/// thread of its own at the lowest priority, so that it does not take a core from the first
/// answer's prompt, which the engine is reading on every core at that moment.
fn remember_sha256(shared: Arc<Shared>) {
    let done = |shared: &Shared, h: Option<String>| {
        if let Ok(mut s) = shared.sha256.lock() {
            *s = Hash::Done(h);
        }
        shared.hashed.notify_all();
    };
    if let Ok(mut s) = shared.sha256.lock() {
        *s = Hash::Computing;
    }
    let inner = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("promptloom-sha256".into())
        .spawn(move || {
            #[cfg(target_os = "linux")]
            // SAFETY: setpriority with PRIO_PROCESS and 0 changes this thread's nice value
            // on Linux (each thread has its own); it reads no memory of ours.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, 0, 19);
            }
            let cache = inner.options.hash_cache.as_deref();
            let h = super::gguf::sha256_remembered(&inner.path, cache).ok();
            done(&inner, h);
        });
    // Without a thread the sessions record no hash.
    if spawned.is_err() {
        done(&shared, None);
    }
}

impl Shared {
    /// The hash, waiting up to [`HASH_WAIT`] if it is being computed and the engine is idle.
    fn sha256(&self) -> Option<String> {
        let idle = self.gate.available_permits() >= self.options.max_num_seqs.max(1);
        let wait = if idle {
            HASH_WAIT
        } else {
            std::time::Duration::ZERO
        };
        let guard = self.sha256.lock().ok()?;
        let (guard, _) = self
            .hashed
            .wait_timeout_while(guard, wait, |h| matches!(h, Hash::Computing))
            .ok()?;
        match &*guard {
            Hash::Done(h) => h.clone(),
            _ => None,
        }
    }
}

fn set_status(m: &Mutex<BackendStatus>, s: BackendStatus) {
    if let Ok(mut g) = m.lock() {
        *g = s;
    }
}

/// A mistral.rs builder for the GGUF file at `path` (mistral.rs takes a folder and file
/// names), offline: no hub token.
pub(crate) fn gguf_builder(path: &Path) -> Result<GgufModelBuilder, String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_string_lossy()
        .into_owned();
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .ok_or_else(|| format!("{} is not a file path", path.display()))?;
    Ok(GgufModelBuilder::new(dir, vec![file]).with_token_source(TokenSource::None))
}

async fn load(path: &Path, options: &LocalOptions) -> Result<Loaded, String> {
    // A missing path makes mistral.rs try the Hugging Face hub for ~30 s: check first.
    if !path.is_file() {
        return Err(format!(
            "model file {} not found; run `promptloom model fetch` (or `make model`) to download the default model",
            path.display()
        ));
    }
    // Unsupported architectures panic inside mistral.rs's build(): check the header first.
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || super::gguf::check_supported(&p))
        .await
        .map_err(|e| format!("reading the GGUF header failed: {e}"))??;
    let builder = gguf_builder(path)?
        .with_max_num_seqs(options.max_num_seqs)
        .with_prefix_cache_n(Some(options.prefix_cache_n));
    if !options.adapters.is_empty() {
        let (model, adapters) = super::lora::load(path, builder, &options.adapters).await?;
        return Ok(Loaded { model, adapters });
    }
    // build() runs in its own task so a panic inside mistral.rs becomes an error here.
    let model = tokio::spawn(async move { builder.build().await })
        .await
        .map_err(|e| format!("loading {} crashed inside mistral.rs: {e}", path.display()))?
        .map_err(|e| format!("cannot load {}: {e:#}", path.display()))?;
    Ok(Loaded {
        model,
        adapters: Vec::new(),
    })
}

/// The sampling settings promptloom hands mistral.rs for every request: argmax decoding, at
/// most `max_len` tokens. A request with a temperature gets our [`SeededProcessor`] on top,
/// which leaves only the token it drew finite, so argmax picks exactly that token; without a
/// temperature argmax is the greedy answer.
///
/// The temperature must be set: mistral.rs 0.8.1 reads `temperature: None` as 1.0
/// (`engine/add_request.rs`) and then samples the whole vocabulary from one engine-wide random
/// generator, so a "greedy" answer would depend on every request that ran before it. Anything
/// below 1e-7 selects its argmax sampler (`sampler.rs`). `top_k` stays at 1 as well, so the
/// answer is the argmax even if a later version reads the temperature differently.
///
/// Every caller (the backend, the bench's bare loop, `quantize`'s teacher-forcing pass and
/// `examples/bare_mistralrs.rs`) builds its parameters here.
pub fn engine_sampling(max_len: Option<usize>) -> SamplingParams {
    let mut params = SamplingParams::deterministic();
    params.temperature = Some(0.0);
    params.top_k = Some(1);
    params.max_len = max_len;
    params
}

/// What the example and the engine tests need from the local backend; not a public API.
#[doc(hidden)]
pub mod engine_api {
    pub use super::engine_sampling;

    /// A mistral.rs builder for the GGUF file at `path`, offline, as promptloom loads it.
    pub fn gguf_builder(path: &std::path::Path) -> Result<mistralrs::GgufModelBuilder, String> {
        super::gguf_builder(path)
    }
}

struct SeededProcessor(SeededSampler);

impl CustomLogitsProcessor for SeededProcessor {
    fn apply(&self, logits: &Tensor, _context: &[u32]) -> mistralrs::Result<Tensor> {
        let values: Vec<f32> = logits.to_dtype(mistralrs::DType::F32)?.to_vec1()?;
        let chosen = self.0.choose(&values);
        Tensor::from_vec(
            mask_all_but(values.len(), chosen),
            values.len(),
            logits.device(),
        )?
        .to_dtype(logits.dtype())
    }
}

/// The mistral.rs request for ours, and where its token probabilities are recorded when it
/// asks for them (see [`probs`]).
fn build_request(req: &ChatRequest) -> (RequestBuilder, Option<probs::Steps>) {
    let mut rb = RequestBuilder::new();
    let messages = match continuation::partial(req) {
        // A continuation's messages are sent as tokens (`continuation`); the builder keeps
        // the rest of the request.
        Some(_) => &req.messages[..0],
        None => &req.messages[..],
    };
    for m in messages {
        rb = tools::add_message(rb, m);
    }
    let s = &req.sampling;
    if !s.tools.is_empty() {
        rb = rb.set_tools(s.tools.iter().map(tools::engine_tool).collect());
        if let Some(c) = &s.tool_choice {
            rb = rb.set_tool_choice(tools::engine_choice(c, &s.tools));
        }
    }
    let mut params = engine_sampling(s.max_tokens);
    if !s.stop.is_empty() {
        params.stop_toks = Some(StopTokens::Seqs(s.stop.clone()));
    }
    let sampler = s.temperature.filter(|&t| t > 0.0).map(|t| {
        let seed = s.seed.unwrap_or_else(rand::random);
        SeededSampler::new(seed, t, s.top_k, s.top_p)
    });
    let mut steps = None;
    // A continuation always probes (top 1): mistral.rs trims the leading space of a stream's
    // first text, which a continuation needs back, and the probe names the whole token.
    let probe = s.logprobs.or(continuation::partial(req).map(|_| 0));
    if let Some(n) = probe {
        let n = n.min(MAX_TOP_LOGPROBS);
        // The engine's own list names the tokens (its figures are not used, see `probs`).
        params.top_n_logprobs = n + 1;
        let recorded = probs::Steps::default();
        rb = rb
            .return_logprobs(true)
            .add_logits_processor(Arc::new(probs::ProbeProcessor {
                sampler,
                n,
                steps: recorded.clone(),
            }));
        steps = Some(recorded);
    } else if let Some(sampler) = sampler {
        rb = rb.add_logits_processor(Arc::new(SeededProcessor(sampler)));
    }
    (rb.set_sampling(params), steps)
}

impl Backend for LocalBackend {
    fn start(&self, request: ChatRequest) -> StreamHandle {
        let (handle, sink) = StreamHandle::channel();
        let this = self.clone();
        tokio::spawn(async move {
            if this.shared.model.get().is_none() {
                sink.send(StreamEvent::Notice("loading model…".into()));
            }
            let loaded = tokio::select! {
                l = this.loaded() => l,
                _ = sink.cancelled() => {
                    sink.finish(StreamEvent::Finished(FinishReason::Cancelled));
                    return;
                }
            };
            let loaded = match loaded {
                Ok(l) => l,
                Err(e) => {
                    sink.finish(StreamEvent::Failed(e));
                    return;
                }
            };
            // Wait for a place in the engine; concurrent requests queue here.
            if this.shared.gate.available_permits() == 0 {
                sink.send(StreamEvent::Notice("queued behind other requests".into()));
            }
            let _permit = tokio::select! {
                p = this.shared.gate.acquire() => p,
                _ = sink.cancelled() => {
                    sink.finish(StreamEvent::Finished(FinishReason::Cancelled));
                    return;
                }
            };
            stream(&loaded.model, &request, &sink).await;
        });
        handle
    }

    fn identity(&self) -> ModelIdentity {
        ModelIdentity {
            backend: "local".into(),
            gguf_file: self
                .shared
                .path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned()),
            gguf_sha256: self.shared.sha256(),
            base_url: None,
            model: None,
            adapters: match self.shared.model.get() {
                Some(Ok(loaded)) => loaded.adapters.clone(),
                _ => super::lora::configured(&self.shared.options.adapters),
            },
        }
    }

    fn status(&self) -> BackendStatus {
        self.shared
            .status
            .lock()
            .map(|s| s.clone())
            .unwrap_or(BackendStatus::Idle)
    }

    fn preload(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let _ = this.loaded().await;
        });
    }
}

async fn stream(model: &Model, request: &ChatRequest, sink: &EventSink) {
    let (builder, steps) = build_request(request);
    let top_n = request.sampling.logprobs.unwrap_or(0).min(MAX_TOP_LOGPROBS);
    let started = match continuation::partial(request) {
        Some(_) => match continuation::prompt_tokens(model, request).await {
            Ok(tokens) => {
                model
                    .stream_chat_request(continuation::Continuation {
                        inner: builder,
                        tokens,
                    })
                    .await
            }
            Err(e) => {
                sink.finish(StreamEvent::Failed(e));
                return;
            }
        },
        None => model.stream_chat_request(builder).await,
    };
    let mut rx = match started {
        Ok(s) => s,
        Err(e) => {
            sink.finish(StreamEvent::Failed(format!(
                "mistral.rs refused the request: {e}"
            )));
            return;
        }
    };
    let mut first_text = true;
    let probs_of = |lp: &Option<mistralrs_core::ResponseLogprob>| {
        if let (Some(lp), Some(steps)) = (lp, &steps) {
            if let Some(t) = probs::pair(lp, steps, top_n) {
                sink.send(StreamEvent::Logprobs(vec![t]));
            }
        }
    };
    loop {
        let next = tokio::select! {
            biased;
            _ = sink.cancelled() => {
                // Dropping the receiver makes the engine cancel the sequence at its next token.
                drop(rx);
                sink.finish(StreamEvent::Finished(FinishReason::Cancelled));
                return;
            }
            r = rx.next() => r,
        };
        match next {
            Some(Response::Chunk(chunk)) => {
                let mut finish = None;
                for choice in &chunk.choices {
                    if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
                        sink.send(StreamEvent::Delta(text.to_string()));
                    }
                    for call in choice.delta.tool_calls.iter().flatten() {
                        sink.send(StreamEvent::ToolCall(tools::call_of(call)));
                    }
                    probs_of(&choice.logprobs);
                    if let Some(r) = &choice.finish_reason {
                        finish = Some(FinishReason::from_wire(r));
                    }
                }
                if let Some(u) = &chunk.usage {
                    sink.send(StreamEvent::Usage(Usage {
                        prompt_tokens: Some(u.prompt_tokens as u64),
                        completion_tokens: Some(u.completion_tokens as u64),
                        estimated: false,
                    }));
                }
                if let Some(f) = finish {
                    sink.finish(StreamEvent::Finished(f));
                    return;
                }
            }
            Some(Response::Done(done)) => {
                let reason = done
                    .choices
                    .first()
                    .map(|c| FinishReason::from_wire(&c.finish_reason))
                    .unwrap_or(FinishReason::Stop);
                sink.finish(StreamEvent::Finished(reason));
                return;
            }
            // A continuation is a completion request: its chunks have text, not deltas.
            Some(Response::CompletionChunk(chunk)) => {
                let mut finish = None;
                for choice in &chunk.choices {
                    let text = if first_text {
                        untrimmed(&choice.text, choice.logprobs.as_ref())
                    } else {
                        choice.text.clone()
                    };
                    if !text.is_empty() {
                        first_text = false;
                        sink.send(StreamEvent::Delta(text));
                    }
                    if request.sampling.logprobs.is_some() {
                        probs_of(&choice.logprobs);
                    }
                    if let Some(r) = &choice.finish_reason {
                        finish = Some(FinishReason::from_wire(r));
                    }
                }
                if let Some(f) = finish {
                    sink.finish(StreamEvent::Finished(f));
                    return;
                }
            }
            Some(Response::CompletionDone(done)) => {
                let reason = done
                    .choices
                    .first()
                    .map(|c| FinishReason::from_wire(&c.finish_reason))
                    .unwrap_or(FinishReason::Stop);
                sink.finish(StreamEvent::Finished(reason));
                return;
            }
            Some(Response::CompletionModelError(msg, _)) => {
                sink.finish(StreamEvent::Failed(format!("model error: {msg}")));
                return;
            }
            Some(Response::ModelError(msg, _)) => {
                sink.finish(StreamEvent::Failed(format!("model error: {msg}")));
                return;
            }
            Some(Response::InternalError(e)) => {
                sink.finish(StreamEvent::Failed(format!(
                    "mistral.rs internal error: {e}"
                )));
                return;
            }
            Some(Response::ValidationError(e)) => {
                sink.finish(StreamEvent::Failed(format!("request rejected: {e}")));
                return;
            }
            Some(_) => {}
            None => {
                sink.finish(StreamEvent::Failed(
                    "the engine closed the stream before finishing".into(),
                ));
                return;
            }
        }
    }
}

/// The first text of a stream as the token really reads: mistral.rs trims the leading
/// whitespace of a stream's first text (right for an answer, wrong for a continuation, where
/// " France" after "The capital of" must keep its space). The probe's top entry is the
/// chosen token decoded alone.
fn untrimmed(text: &str, lp: Option<&mistralrs_core::ResponseLogprob>) -> String {
    let whole = lp
        .and_then(|lp| lp.top_logprobs.first())
        .and_then(|t| t.bytes.as_deref());
    match whole {
        Some(w) if w != text && w.trim_start() == text => w.to_string(),
        _ => text.to_string(),
    }
}

mod continuation;
mod probs;
mod tools;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod probs_tests;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::llm::{ChatMessage, Sampling};
    use std::time::{Duration, Instant};

    /// The default model file; the test fails (it is not skipped) when it is missing.
    pub(crate) fn model_path() -> PathBuf {
        let data = std::env::var_os("PROMPTLOOM_DATA_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                directories::ProjectDirs::from("", "", "promptloom")
                    .map(|p| p.data_dir().to_path_buf())
            })
            .unwrap_or_default();
        let p = data.join("models").join(crate::model_fetch::DEFAULT_GGUF);
        assert!(
            p.is_file(),
            "{} missing: run `make model` first",
            p.display()
        );
        p
    }

    pub(crate) fn ask(text: &str, sampling: Sampling) -> ChatRequest {
        ChatRequest {
            messages: vec![ChatMessage::new(Role::User, text)],
            sampling,
        }
    }

    pub(crate) async fn collect(h: &mut StreamHandle) -> (String, Option<StreamEvent>) {
        let mut text = String::new();
        while let Some(ev) = h.events.recv().await {
            match ev {
                StreamEvent::Delta(d) => text.push_str(&d),
                e if e.is_terminal() => return (text, Some(e)),
                _ => {}
            }
        }
        (text, None)
    }

    /// One loaded model for all the assertions: loading is the slow part.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_model_answers_cancels_seeds_and_batches() {
        let backend = LocalBackend::new(model_path(), LocalOptions::default());
        backend.ready().await.unwrap();
        assert_eq!(backend.status(), BackendStatus::Ready);

        // Greedy answer.
        let mut h = backend.start(ask(
            "What is the capital of England?",
            Sampling {
                max_tokens: Some(32),
                ..Default::default()
            },
        ));
        let (text, end) = collect(&mut h).await;
        assert!(text.contains("London"), "{text}");
        assert!(matches!(end, Some(StreamEvent::Finished(_))), "{end:?}");
        // The file's hash (computed at the lowest priority since the load; identity waits
        // for it) is what a session records.
        let want = super::super::gguf::sha256_file(&model_path()).unwrap();
        let identity = tokio::task::block_in_place(|| backend.identity());
        assert_eq!(identity.gguf_sha256.as_deref(), Some(want.as_str()));

        // Cancel mid-generation returns promptly and the engine serves the next request.
        let mut h = backend.start(ask(
            "Write a long story about a dragon and a knight.",
            Sampling {
                max_tokens: Some(400),
                ..Default::default()
            },
        ));
        let mut got = 0;
        while got < 5 {
            if let Some(StreamEvent::Delta(_)) = h.events.recv().await {
                got += 1;
            }
        }
        let t = Instant::now();
        h.cancel();
        let (_, end) = collect(&mut h).await;
        assert_eq!(end, Some(StreamEvent::Finished(FinishReason::Cancelled)));
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        let mut h = backend.start(ask(
            "What is the capital of England?",
            Sampling {
                max_tokens: Some(32),
                ..Default::default()
            },
        ));
        let (text, _) = collect(&mut h).await;
        assert!(text.contains("London"), "after cancel: {text}");

        // Same seed, same answer; and max_tokens is honoured.
        let sampled = |seed| Sampling {
            temperature: Some(1.0),
            top_p: Some(0.95),
            max_tokens: Some(24),
            seed: Some(seed),
            ..Default::default()
        };
        let prompt = "Invent a name for a new fruit and describe it.";
        let (a, _) = collect(&mut backend.start(ask(prompt, sampled(42)))).await;
        let (b, _) = collect(&mut backend.start(ask(prompt, sampled(42)))).await;
        let (c, _) = collect(&mut backend.start(ask(prompt, sampled(43)))).await;
        assert_eq!(a, b);
        assert_ne!(a, c);

        // Several requests at once against the one loaded model.
        let mut handles: Vec<StreamHandle> = (0..4)
            .map(|_| {
                backend.start(ask(
                    "What is the capital of England?",
                    Sampling {
                        max_tokens: Some(32),
                        ..Default::default()
                    },
                ))
            })
            .collect();
        for h in &mut handles {
            let (text, _) = collect(h).await;
            assert!(text.contains("London"), "{text}");
        }

        // Stop sequences end the answer.
        let (text, _) = collect(&mut backend.start(ask(
            "Count from 1 to 10, separated by commas.",
            Sampling {
                max_tokens: Some(64),
                stop: vec!["5".into()],
                ..Default::default()
            },
        )))
        .await;
        assert!(!text.contains('6'), "{text}");
    }

    #[tokio::test]
    async fn missing_file_fails_fast_with_the_fix() {
        let b = LocalBackend::new(
            PathBuf::from("/nonexistent/m.gguf"),
            LocalOptions::default(),
        );
        let t = Instant::now();
        let (_, end) = collect(&mut b.start(ask("hi", Sampling::default()))).await;
        match end {
            Some(StreamEvent::Failed(e)) => assert!(e.contains("promptloom model fetch"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(matches!(b.status(), BackendStatus::Failed(_)));
    }

    #[tokio::test]
    async fn unsupported_architecture_is_a_clear_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gemma.gguf");
        std::fs::write(&p, crate::llm::gguf::samples::tiny_gguf("gemma3")).unwrap();
        let b = LocalBackend::new(p, LocalOptions::default());
        let (_, end) = collect(&mut b.start(ask("hi", Sampling::default()))).await;
        match end {
            Some(StreamEvent::Failed(e)) => {
                assert!(e.contains("\"gemma3\" is not supported"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
}
