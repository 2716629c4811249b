//! promptloom: entry points into this crate's internals for promptloom's tests of its patches
//! (`vendor/README.md` in promptloom lists them). Not part of mistral.rs's API.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use candle_core::{Result, Tensor};
use tokio::sync::mpsc::channel;
use tokio::sync::Mutex;

use crate::attention::{Sdpa, SdpaParams};
use crate::kv_cache::{KvCache, SingleCache};
use crate::prefix_cacher::{MatchingCache, PrefixCacheManagerV2};
use crate::scheduler::{DefaultScheduler, DefaultSchedulerMethod};
use crate::sampler::Sampler;
use crate::sequence::{
    SeqStepType, Sequence, SequenceGroup, SequenceRecognizer, SequenceState, StopReason,
};
use crate::IntervalLogger;

fn sdpa_params(q: &Tensor, k: &Tensor, softmax_scale: f32) -> Result<SdpaParams> {
    Ok(SdpaParams {
        n_kv_groups: q.dim(1)? / k.dim(1)?,
        softcap: None,
        softmax_scale,
        sliding_window: None,
        sinks: None,
    })
}

/// Attention without a mask as the models run it on the CPU (`Sdpa::run_attention`: the
/// flash kernels; q of one position goes to the decode kernel). Shapes: q (batch, heads,
/// q_len, head_dim), k and v (batch, kv_heads, kv_len, head_dim); returns (batch, heads,
/// q_len, head_dim).
pub fn cpu_attention(q: &Tensor, k: &Tensor, v: &Tensor, softmax_scale: f32) -> Result<Tensor> {
    let params = sdpa_params(q, k, softmax_scale)?;
    Sdpa.run_attention(q, k, v, None, None, &params)
}

/// `cpu_attention` with an additive mask (batch or 1, heads or 1, q_len, kv_len), as prompts
/// run it (several query positions: the prompt kernel).
pub fn cpu_attention_masked(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    softmax_scale: f32,
) -> Result<Tensor> {
    let params = sdpa_params(q, k, softmax_scale)?;
    Sdpa.run_attention(q, k, v, Some(mask), None, &params)
}

pub use crate::attention::PrefillAttention;

/// Which kernel reads prompts from now on: promptloom's bit-exact lanes kernel (patch 11,
/// the default: `PrefillAttention::default()`), its bit-exact row-at-a-time one (patch 8),
/// its tiled one (patch 10, opt-in, not bit-exact) or 0.8.1's.
pub fn set_prefill_attention(kernel: PrefillAttention) {
    crate::attention::set_prefill(kernel);
}

/// Whether patch 11's lanes kernel runs on this machine (AVX-512F, and its `exp` equals the C
/// library's `expf` on a sweep of arguments); where not, `PrefillAttention::Lanes` runs patch
/// 8's kernel.
pub fn lanes_attention_available() -> bool {
    PrefillAttention::Lanes.effective() == PrefillAttention::Lanes
}

/// How many of the f32s with bit patterns from `from` to `to` (either order), every `step`-th,
/// patch 11's vector `exp` gives other bits for than `f32::exp` (the C library's `expf`).
/// `usize::MAX` where it cannot run (no AVX-512F, not x86-64).
pub fn lanes_exp_mismatches(from: u32, to: u32, step: u32) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        crate::promptloom_lanes::exp_mismatches(from, to, step)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (from, to, step);
        usize::MAX
    }
}

/// How decode attention computes its scores (patch 14).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum DecodeScores {
    /// `vec_dot_f32` key by key, as 0.8.1 does.
    KeyByKey,
    /// In vector lanes, each score `vec_dot_f32`'s bit for bit: AVX-512 where the CPU has
    /// AVX-512F, else AVX2, else key by key (the default).
    #[default]
    Lanes,
    /// In AVX2 lanes even where AVX-512F is there (so such a machine tests that path too).
    Avx2Lanes,
}

/// How decode attention computes its scores from now on (key by key whatever the mode off
/// x86-64).
pub fn set_decode_scores(mode: DecodeScores) {
    #[cfg(target_arch = "x86_64")]
    crate::promptloom_decode::set_mode(mode);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = mode;
}

/// The instruction set patch 14's lanes use here by default ("AVX-512", "AVX2"), or None.
pub fn decode_score_lanes() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        crate::promptloom_decode::lanes_here()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Tiles of 16 keys whose decode scores patch 14's lanes computed so far.
pub fn decode_score_lane_tiles() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        crate::promptloom_decode::tiles()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

/// The same attention by the plain path (matmul, softmax, matmul): a reference.
pub fn reference_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    softmax_scale: f32,
) -> Result<Tensor> {
    let params = sdpa_params(q, k, softmax_scale)?;
    Sdpa.run_attention_noflash(q, k, v, None, &params)
}

/// The prefix cache holding one finished sequence, `cached` tokens long, whose layers hold
/// KV rows for its first `kv_len` positions (a finished sequence's last sampled token has
/// none), asked for `query`: the offset it would resume from, or None for a miss.
pub fn prefix_cache_offset(cached: &[u32], kv_len: usize, query: &[u32]) -> Result<Option<usize>> {
    let mut cacher = PrefixCacheManagerV2::new(1, false, false);
    let rows = Tensor::zeros((1, 1, kv_len, 1), candle_core::DType::F32, &candle_core::Device::Cpu)?;
    let mut k = SingleCache::new(2, cached.len() + 16, cached.len() + 16);
    let mut v = SingleCache::new(2, cached.len() + 16, cached.len() + 16);
    k.append(&rows)?;
    v.append(&rows)?;
    cacher.insert_for_checks(cached.to_vec(), vec![Some(KvCache::Normal { k, v })]);
    let hit = cacher.search_for_matching_cache(query, None, None, None)?;
    Ok(hit.map(|MatchingCache::Normal { offset, .. }| offset))
}

fn sequence(id: usize, len: usize) -> Result<Sequence> {
    let (tx, _rx) = channel(1);
    let sampler = Sampler::new(None, 0, None, None, None, None, None, 1, 1.0, 0.0, vec![])
        .map_err(candle_core::Error::msg)?;
    let group = Arc::new(Mutex::new(SequenceGroup::new(1, false, true, None)));
    Ok(Sequence::new_waiting(
        (0..len as u32).collect(),
        "prompt".to_string(),
        id,
        0,
        // One layer: `Sequence::len` reads the first layer's cache slot.
        1,
        tx,
        sampler,
        vec![],
        vec![],
        None,
        false,
        false,
        group,
        0,
        0,
        SequenceRecognizer::None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        SeqStepType::PromptAndDecode,
        None,
        None,
        None,
        false,
        vec![],
    ))
}

fn logger() -> IntervalLogger {
    IntervalLogger::new(Duration::from_secs(86_400), None)
}

fn max_seqs(n: usize) -> Result<DefaultSchedulerMethod> {
    let n = std::num::NonZeroUsize::new(n).ok_or_else(|| candle_core::Error::msg("max_num_seqs 0"))?;
    Ok(DefaultSchedulerMethod::Fixed(n))
}

/// The default scheduler with `max_num_seqs`, nothing running and `waiting` equal-length
/// requests queued: how many it starts in its first step.
pub fn scheduler_first_step(max_num_seqs: usize, waiting: usize) -> Result<usize> {
    let mut s: DefaultScheduler<VecDeque<Sequence>> = DefaultScheduler::new(max_seqs(max_num_seqs)?);
    for id in 0..waiting {
        s.add_seq_for_checks(sequence(id, 8)?);
    }
    let logger = logger();
    let out = s.schedule(&logger);
    Ok(out.prompt.len() + out.completion.len())
}

/// Sequence A (5 tokens) is decoding when B (8 tokens) arrives; they fall in different length
/// buckets, so the scheduler runs B's prompt and parks A, which is mid-answer. B then
/// finishes. Returns (A parked as a completion, A resumed as a completion): a parked answer
/// must resume decoding, not be re-read as a prompt.
pub fn scheduler_parked_resume() -> Result<(bool, bool)> {
    let mut s: DefaultScheduler<VecDeque<Sequence>> = DefaultScheduler::new(max_seqs(2)?);
    let logger = logger();
    s.add_seq_for_checks(sequence(0, 5)?);
    {
        let out = s.schedule(&logger);
        for seq in out.prompt.iter() {
            seq.set_state(SequenceState::RunningCompletion);
        }
    }
    s.add_seq_for_checks(sequence(1, 8)?);
    let mut parked_as_completion = false;
    {
        let out = s.schedule(&logger);
        let running: Vec<usize> = out
            .prompt
            .iter()
            .chain(out.completion.iter())
            .map(|seq| *seq.id())
            .collect();
        if running != [1] {
            return Err(candle_core::Error::msg(format!(
                "expected only B to run, ran {running:?}"
            )));
        }
        for seq in out.prompt.iter().chain(out.completion.iter()) {
            seq.set_state(SequenceState::Done(StopReason::Canceled));
        }
    }
    if let Some(a) = s.waiting_for_checks().iter().find(|seq| *seq.id() == 0) {
        parked_as_completion = a.is_completion();
    }
    let out = s.schedule(&logger);
    let resumed_as_completion = out.completion.iter().any(|seq| *seq.id() == 0);
    Ok((parked_as_completion, resumed_as_completion))
}

/// Patch 13: answers of three lengths (5, 8 and 11 tokens) in a scheduler with
/// max_num_seqs 3, read as prompts one bucket at a time; the engine's cache can (`capable`)
/// or cannot batch decode rows of different lengths. Returns how many of the three the
/// first step after all are decoding runs together.
pub fn scheduler_mixed_lengths(capable: bool) -> Result<usize> {
    use crate::scheduler::Scheduler;
    let mut s: DefaultScheduler<VecDeque<Sequence>> = DefaultScheduler::new(max_seqs(3)?);
    Scheduler::set_mixed_length_decode(&mut s, capable);
    let logger = logger();
    for (id, len) in [5, 8, 11].into_iter().enumerate() {
        s.add_seq_for_checks(sequence(id, len)?);
    }
    let mut decoding = std::collections::HashSet::new();
    for _ in 0..12 {
        let out = s.schedule(&logger);
        for seq in out.prompt.iter() {
            seq.set_state(SequenceState::RunningCompletion);
            decoding.insert(*seq.id());
        }
        if decoding.len() == 3 {
            let out = s.schedule(&logger);
            return Ok(out.completion.len());
        }
    }
    Err(candle_core::Error::msg(format!(
        "only {decoding:?} of the three prompts were read in 12 steps"
    )))
}

static MIXED_LENGTH_DECODE: AtomicBool = AtomicBool::new(true);

/// Patch 13: whether answers of different lengths share decode steps (the default), or, as
/// in 0.8.1, only answers of one length do and the others wait their turn step by step.
/// Read at every step, by every engine whose cache can do it.
pub fn set_mixed_length_decode(on: bool) {
    MIXED_LENGTH_DECODE.store(on, Ordering::Relaxed);
}

pub(crate) fn mixed_length_decode() -> bool {
    MIXED_LENGTH_DECODE.load(Ordering::Relaxed)
}

/// Patch 13: one decode step of a batch of sequences of different lengths, as the engine
/// runs it: sequence i's cache holds all but the last of its keys and values `k[i]`, `v[i]`
/// (1, kv_heads, len_i, head_dim); the cache manager batches the caches (left-padding the
/// shorter), the masker builds the decode mask, the step's new keys and values (each
/// sequence's last) are appended and the CPU attention runs for the queries `q` (batch,
/// heads, 1, head_dim). Returns the attention output (batch, heads, 1, head_dim) and each
/// row's keys as the cache manager hands them back to its sequence after the step.
pub fn left_padded_decode_step(
    q: &Tensor,
    k: &[Tensor],
    v: &[Tensor],
    softmax_scale: f32,
) -> Result<(Tensor, Vec<Tensor>)> {
    use crate::layers::CausalMasker;
    use crate::layers_masker::PastKvLenCache;
    let single = |t: &Tensor| -> Result<SingleCache> {
        let len = t.dim(2)? - 1;
        let mut c = SingleCache::new(2, 4096, len.max(1));
        if len > 0 {
            c.append(&t.narrow(2, 0, len)?.contiguous()?)?;
        }
        Ok(c)
    };
    let ks = k.iter().map(|t| single(t).map(Some)).collect::<Result<Vec<_>>>()?;
    let vs = v.iter().map(|t| single(t).map(Some)).collect::<Result<Vec<_>>>()?;
    let mut cache = vec![KvCache::Normal {
        k: crate::kv_cache::batch_rows(&ks),
        v: crate::kv_cache::batch_rows(&vs),
    }];
    let b = k.len();
    let input_ids = Tensor::zeros((b, 1), candle_core::DType::U32, q.device())?;
    let mask = CausalMasker.make_causal_mask_matrix(
        &input_ids,
        &cache as &dyn PastKvLenCache,
        q.dtype(),
        q.dim(1)?,
    )?;
    let last = |t: &Tensor| t.narrow(2, t.dim(2)? - 1, 1);
    let new_k = Tensor::cat(&k.iter().map(last).collect::<Result<Vec<_>>>()?, 0)?;
    let new_v = Tensor::cat(&v.iter().map(last).collect::<Result<Vec<_>>>()?, 0)?;
    let (k_all, v_all) = cache[0].append(&new_k, &new_v)?;
    let params = sdpa_params(q, &k_all, softmax_scale)?;
    let out = Sdpa.run_attention(q, &k_all, &v_all, mask.as_ref(), None, &params)?;
    let KvCache::Normal { k: batch_k, .. } = &cache[0] else {
        return Err(candle_core::Error::msg("not a normal cache"));
    };
    let chunks = batch_k
        .all_data
        .as_ref()
        .ok_or_else(|| candle_core::Error::msg("empty batch cache"))?
        .chunk(b, 0)?;
    let rows = chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            crate::kv_cache::unpad_row(batch_k, chunk, i)
                .current_data()?
                .ok_or_else(|| candle_core::Error::msg("empty row"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((out, rows))
}

static DECODE_STEPS: AtomicUsize = AtomicUsize::new(0);
static DECODE_SEQS: AtomicUsize = AtomicUsize::new(0);
static BATCHED_SEQS: AtomicUsize = AtomicUsize::new(0);

/// Counts one decode step of `seqs` sequences (called by the engine).
pub(crate) fn count_decode_step(seqs: usize) {
    DECODE_STEPS.fetch_add(1, Ordering::Relaxed);
    DECODE_SEQS.fetch_add(seqs, Ordering::Relaxed);
    if seqs > 1 {
        BATCHED_SEQS.fetch_add(seqs, Ordering::Relaxed);
    }
}

/// What every engine in this process decoded so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeSteps {
    /// Decode steps (one token for each sequence in the step).
    pub steps: usize,
    /// Tokens decoded: the sequences in those steps.
    pub tokens: usize,
    /// Tokens decoded in steps of more than one sequence.
    pub batched_tokens: usize,
}

impl DecodeSteps {
    /// What was decoded between `earlier` and `self`.
    pub fn since(self, earlier: DecodeSteps) -> DecodeSteps {
        DecodeSteps {
            steps: self.steps - earlier.steps,
            tokens: self.tokens - earlier.tokens,
            batched_tokens: self.batched_tokens - earlier.batched_tokens,
        }
    }
}

pub fn decode_steps() -> DecodeSteps {
    DecodeSteps {
        steps: DECODE_STEPS.load(Ordering::Relaxed),
        tokens: DECODE_SEQS.load(Ordering::Relaxed),
        batched_tokens: BATCHED_SEQS.load(Ordering::Relaxed),
    }
}

static ROPE_TABLES: AtomicUsize = AtomicUsize::new(0);

/// Counts one rotary table built by a GGUF llama load (patch 19: one per device).
pub(crate) fn count_rope_table() {
    ROPE_TABLES.fetch_add(1, Ordering::Relaxed);
}

/// Rotary tables the GGUF llama loads of this process built so far.
pub fn rope_tables_built() -> usize {
    ROPE_TABLES.load(Ordering::Relaxed)
}

static GGUF_FILE_READS: AtomicUsize = AtomicUsize::new(0);

/// A reader that counts the reads that reach it (the GGUF loader's files, patch 19).
pub struct Counted<R>(R);

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        GGUF_FILE_READS.fetch_add(1, Ordering::Relaxed);
        self.0.read(buf)
    }
}

impl<R: std::io::Seek> std::io::Seek for Counted<R> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.0.seek(pos)
    }
}

/// A GGUF file as the loader reads it: buffered (patch 19). Its header is a run of small
/// reads, two per string of the vocabulary and merges; unbuffered, each was a system call
/// (about 200,000 for SmolLM2's 49,152 tokens and 48,900 merges).
pub fn buffered<R: std::io::Read>(r: R) -> std::io::BufReader<Counted<R>> {
    std::io::BufReader::with_capacity(1 << 16, Counted(r))
}

/// A GGUF file opened by the loader.
pub type GgufFile = std::io::BufReader<Counted<std::fs::File>>;

/// Reads that reached the GGUF files the loaders of this process opened, so far.
pub fn gguf_file_reads() -> usize {
    GGUF_FILE_READS.load(Ordering::Relaxed)
}

/// The error `ContentMetadata::get_value` gives for `key` of a GGUF file's metadata (read
/// whole), for the test of patch 19: `None` when the key is there and has that type.
pub fn gguf_value_error(path: &std::path::Path, key: &str) -> Result<Option<String>> {
    let mut file = buffered(std::fs::File::open(path)?);
    let content = candle_core::quantized::gguf_file::Content::read(&mut file)?;
    let arch = content
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_default();
    let md = crate::utils::gguf_metadata::ContentMetadata {
        path_prefix: &arch,
        metadata: &content.metadata,
    };
    Ok(md.get_value::<u32>(key).err().map(|e| format!("{e:#}")))
}

pub use crate::promptloom_q8::quantized_embeddings_built;

/// The rows of `ids` from `table` kept quantized (patch 20), for the test that compares them
/// with the dequantized table's rows.
pub fn quantized_embedding(table: candle_core::quantized::QTensor, ids: &Tensor) -> Result<Tensor> {
    crate::promptloom_q8::QEmbedding::new(table)?.forward(ids)
}

static ENGINE_THREAD_IN_POOL: AtomicBool = AtomicBool::new(true);

/// Whether engines started from now on make their engine thread a rayon worker (the default),
/// or, as mistral.rs 0.8.1 did, send every parallel op of a step to rayon's global pool from
/// outside it (a cold injection and a sleep/wake per op) and attention to a second pool.
pub fn set_engine_thread_in_pool(on: bool) {
    ENGINE_THREAD_IN_POOL.store(on, Ordering::Relaxed);
}

/// A pool with as many threads as rayon's global one, the calling thread its worker 0, or
/// None when switched off (or when the calling thread already belongs to a pool).
pub(crate) fn engine_pool() -> Option<rayon::ThreadPool> {
    if !ENGINE_THREAD_IN_POOL.load(Ordering::Relaxed) {
        return None;
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(rayon::current_num_threads())
        .use_current_thread()
        .thread_name(|i| format!("mistralrs-engine-{i}"))
        .build()
        .ok()
}

/// The Q8_0 mat-mul kernel (`promptloom_q8`): whether it runs on this CPU, the switch, and the
/// product itself (None where it does not apply).
pub use crate::promptloom_q8::{
    available as q8_kernel_available, matmul as q8_matmul, set_enabled as set_q8_kernel,
    set_by_row as set_q8_by_row, set_wide as set_q8_wide,
    set_min_rows as set_q8_kernel_min_rows, use_for_rows as q8_kernel_for_rows,
    DEFAULT_MIN_ROWS as Q8_KERNEL_DEFAULT_MIN_ROWS,
};

/// The Q8_0 kernel for a decode step's few rows with outputs in lanes (patch 21,
/// `promptloom_q8_lanes`): whether it runs here, its switch, the weights repacked so far and
/// the bytes held, the time spent repacking, a weight repacked for it, and a product with a
/// weight repacked on the spot.
pub use crate::promptloom_q8_lanes::{
    available as q8_lanes_available, matmul_repacked as q8_lanes_matmul,
    pack_micros as q8_lanes_pack_micros, packed_built as q8_lanes_built,
    set_enabled as set_q8_lanes, Packed as Q8LanesWeight,
};

/// Whether llama models loaded from now on stack q/k/v and gate/up into one product each (the
/// default, `promptloom_q8::QLinears`), and how many stacks were built.
pub use crate::promptloom_q8::{set_stacked as set_stacked_projections, stacked_built};

/// Weights that multiply one input, as the llama model builds them (`QLinears`), stacked into
/// one product or not, applied to `x`: each part's product, in order.
pub fn stacked_forward(
    parts: Vec<candle_core::quantized::QTensor>,
    stack: bool,
    x: &Tensor,
) -> Result<Vec<Tensor>> {
    crate::promptloom_q8::QLinears::build(parts, stack)?.forward(x)
}

/// A Q8_0 weight as the llama model builds it (`promptloom_q8::QLinear`) applied to `x`:
/// the product, and whether the kernel (true) or candle's path (false) computed it.
pub fn q8_linear_forward(
    w: Arc<candle_core::quantized::QTensor>,
    x: &Tensor,
) -> Result<(Tensor, bool)> {
    crate::promptloom_q8::QLinear::gguf_arc(w)?.forward_path(x)
}

/// A GGUF weight with LoRA adapters as the GGUF llama LoRA model builds it (`QLoraLinear`,
/// `xlora_models/quantized_llama.rs`), merged as that model merges a plain LoRA (no X-LoRA
/// classifier), applied to `x` (batch, rows, in). `w` is (out, in) and is quantized to Q8_0
/// here; each adapter is (A: (r, in), B: (out, r), lora_alpha). With `targeted` false the
/// adapters name another module than this layer's, as for the layers a LoRA leaves alone.
pub fn gguf_lora_layer_forward(
    w: &Tensor,
    adapters: &[(Tensor, Tensor, f64)],
    targeted: bool,
    x: &Tensor,
) -> Result<Tensor> {
    use crate::lora::{get_lora_cfg, LinearLayerLike, LoraConfig, Merge, QLoraLinear};
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};

    let q = Arc::new(QTensor::quantize(w, GgmlDType::Q8_0)?);
    let linear_cfg = get_lora_cfg(&q);
    let prefix = "model.layers.0.self_attn.q_proj";
    let module = if targeted { "q_proj" } else { "v_proj" };
    let mut tensors = std::collections::HashMap::new();
    let mut configs = Vec::new();
    let mut names = Vec::new();
    for (i, (a, b, alpha)) in adapters.iter().enumerate() {
        let id = (i + 1).to_string();
        tensors.insert(format!("{prefix}.lora_A.{id}.weight"), a.clone());
        tensors.insert(format!("{prefix}.lora_B.{id}.weight"), b.clone());
        let json = format!(
            r#"{{"r": {}, "lora_alpha": {alpha}, "target_modules": ["{module}"]}}"#,
            a.dim(0)?
        );
        let cfg: LoraConfig = serde_json::from_str(&json).map_err(candle_core::Error::msg)?;
        names.push(format!("adapter{i}"));
        configs.push(((id, format!("adapter{i}")), cfg));
    }
    let vb = mistralrs_quant::ShardedSafeTensors::wrap(
        Box::new(tensors),
        candle_core::DType::F32,
        w.device().clone(),
    );
    let ordering = crate::lora::Ordering {
        adapters: Some(names),
        layers: None,
        base_model_id: String::new(),
        preload_adapters: None,
    };
    let mut count = 0;
    let mut layer = QLoraLinear::new(
        QMatMul::from_arc(q)?,
        &linear_cfg,
        &configs,
        &vb,
        &ordering,
        prefix.to_string(),
        &mut count,
        &None,
    )?;
    layer.merge_weights()?;
    layer.lora_forward(x, None, 1.0, None)
}

/// A model's tokenizer, to count the tokens of text a server sent without counts: read from
/// a GGUF file's metadata (converted as mistral.rs converts it when it loads that file) or
/// from a Hugging Face `tokenizer.json`.
pub struct TokenCounter(tokenizers::Tokenizer);

impl TokenCounter {
    /// The tokenizer of `path`: a `.gguf` file's, else `path` read as a `tokenizer.json`.
    pub fn from_file(path: &std::path::Path) -> Result<TokenCounter> {
        let is_gguf = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
        let tokenizer = if is_gguf {
            let mut file = buffered(std::fs::File::open(path)?);
            let mut readers = [&mut file];
            let content = crate::gguf::Content::from_readers(&mut readers)?;
            crate::gguf::convert_gguf_to_hf_tokenizer(&content)
                .map_err(candle_core::Error::msg)?
                .tokenizer
        } else {
            tokenizers::Tokenizer::from_file(path).map_err(candle_core::Error::msg)?
        };
        Ok(TokenCounter(tokenizer))
    }

    /// How many tokens `text` is, special tokens written in it (`<|im_end|>`) counted as one.
    pub fn count(&self, text: &str) -> Result<usize> {
        self.0
            .encode_fast(text, false)
            .map(|e| e.len())
            .map_err(candle_core::Error::msg)
    }
}
