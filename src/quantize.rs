//! `promptloom quantize IN.gguf OUT.gguf --to q8_0|q4_0|q4k|q6k`: re-quantize a GGUF file with
//! candle, keeping its metadata (in the original order) and updating `general.file_type`.
//!
//! Tensors are dequantized to f32 and quantized to the target type. Left as they are: 1-D
//! tensors (norms and biases stay f32, as llama.cpp keeps them), tensors already of the target
//! type, and tensors whose row length the target block size does not divide (the K-quants use
//! 256-wide blocks; SmolLM2's 576-wide rows are not a multiple of 256).
//!
//! The output is written to a temporary file beside OUT and renamed into place, so a failed
//! run never leaves a torn file; IN is never written.
//!
//! [`quality`] compares two files on a short built-in text: both models are teacher-forced
//! through the same tokens (a logits processor records each step's distribution and then
//! leaves only the forced token for the engine's greedy step), giving the perplexity of the
//! text under each model, the mean KL divergence from the original's next-token
//! distribution, and how often their top token agrees.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context};
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;

use crate::llm::gguf;

/// What a file can be re-quantized to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Target {
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q4_0")]
    Q4_0,
    #[value(name = "q4k")]
    Q4K,
    #[value(name = "q6k")]
    Q6K,
}

impl Target {
    fn dtype(self) -> GgmlDType {
        match self {
            Target::Q8_0 => GgmlDType::Q8_0,
            Target::Q4_0 => GgmlDType::Q4_0,
            Target::Q4K => GgmlDType::Q4K,
            Target::Q6K => GgmlDType::Q6K,
        }
    }

    /// llama.cpp's `general.file_type` (LLAMA_FTYPE_MOSTLY_*) for a file mostly of this type.
    pub fn file_type(self) -> u32 {
        match self {
            Target::Q4_0 => 2,
            Target::Q8_0 => 7,
            Target::Q4K => 14, // Q4_K_S: plain Q4_K, no mixed-in higher types
            Target::Q6K => 18,
        }
    }

    /// The conventional file-name tag (`Q8_0`, `Q4_K`...).
    pub fn tag(self) -> &'static str {
        match self {
            Target::Q8_0 => "Q8_0",
            Target::Q4_0 => "Q4_0",
            Target::Q4K => "Q4_K",
            Target::Q6K => "Q6_K",
        }
    }
}

/// `<name>.<TAG>.gguf` beside `model`, with the model's own quantization tag (`.Q4_1`,
/// `.F16`...) replaced: `SmolLM2-135M-Instruct.Q4_1.gguf` -> `SmolLM2-135M-Instruct.Q8_0.gguf`.
pub(crate) fn derived_path(model: &Path, target: Target) -> PathBuf {
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let base = match stem.rsplit_once('.') {
        Some((base, tag))
            if tag.len() <= 8
                && tag
                    .chars()
                    .next()
                    .is_some_and(|c| matches!(c, 'Q' | 'q' | 'F' | 'f' | 'B' | 'b')) =>
        {
            base.to_string()
        }
        _ => stem,
    };
    model.with_file_name(format!("{base}.{}.gguf", target.tag()))
}

/// Why a tensor was written unchanged.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kept {
    OneDimensional,
    AlreadyTarget,
    /// Row length not a multiple of the target's block size.
    RowNotDivisible {
        row: usize,
        block: usize,
    },
}

/// What a quantization did.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub tensors: usize,
    pub quantized: usize,
    /// (name, original type, why) for every tensor written unchanged.
    pub kept: Vec<(String, String, Kept)>,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub seconds: f64,
}

impl Report {
    /// Human-readable summary lines.
    pub fn lines(&self, target: Target) -> Vec<String> {
        let mut out = vec![format!(
            "{} of {} tensors quantized to {}; size {:.1} MB -> {:.1} MB ({:+.0}%), {:.1} s",
            self.quantized,
            self.tensors,
            target.tag(),
            self.in_bytes as f64 / 1e6,
            self.out_bytes as f64 / 1e6,
            (self.out_bytes as f64 / self.in_bytes.max(1) as f64 - 1.0) * 100.0,
            self.seconds
        )];
        let mut groups: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
        for (name, ty, why) in &self.kept {
            let reason = match why {
                Kept::OneDimensional => format!("1-D, kept as {ty}"),
                Kept::AlreadyTarget => format!("already {ty}"),
                Kept::RowNotDivisible { row, block } => {
                    format!("row of {row} not a multiple of {block}, kept as {ty}")
                }
            };
            groups.entry(reason).or_default().push(name);
        }
        for (reason, names) in groups {
            let sample: Vec<&str> = names.iter().take(3).copied().collect();
            let more = names.len().saturating_sub(sample.len());
            out.push(format!(
                "  {} tensors {reason}: {}{}",
                names.len(),
                sample.join(", "),
                if more > 0 {
                    format!(", ... ({more} more)")
                } else {
                    String::new()
                }
            ));
        }
        out
    }
}

/// Decide what happens to one tensor.
pub(crate) fn plan(dims: &[usize], dtype: GgmlDType, target: GgmlDType) -> Result<(), Kept> {
    if dims.len() < 2 {
        return Err(Kept::OneDimensional);
    }
    if dtype == target {
        return Err(Kept::AlreadyTarget);
    }
    let row = dims.last().copied().unwrap_or(0);
    let block = target.block_size();
    if row == 0 || !row.is_multiple_of(block) {
        return Err(Kept::RowNotDivisible { row, block });
    }
    Ok(())
}

/// Re-quantize `input` into `output`.
pub(crate) fn quantize(
    input: &Path,
    output: &Path,
    target: Target,
    force: bool,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> anyhow::Result<Report> {
    let t0 = Instant::now();
    if same_file(input, output) {
        bail!(
            "{}: the output would overwrite the input; pick another OUT",
            output.display()
        );
    }
    if output.exists() && !force {
        bail!(
            "{}: already exists; pass --force to replace it",
            output.display()
        );
    }
    // Our own header reader keeps the metadata order; candle's keeps it in a HashMap.
    let header = gguf::read_header(input).with_context(|| format!("{}", input.display()))?;
    let mut reader = BufReader::with_capacity(
        1 << 20,
        File::open(input).with_context(|| format!("cannot open {}", input.display()))?,
    );
    let content = gguf_file::Content::read(&mut reader)
        .map_err(|e| anyhow::anyhow!("{}: not a readable GGUF file: {e}", input.display()))?;

    let mut metadata: Vec<(String, gguf_file::Value)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (key, _) in &header.metadata {
        if let Some(v) = content.metadata.get(key) {
            if seen.insert(key.clone()) {
                metadata.push((key.clone(), v.clone()));
            }
        }
    }
    let mut rest: Vec<_> = content
        .metadata
        .iter()
        .filter(|(k, _)| !seen.contains(*k))
        .collect();
    rest.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in rest {
        metadata.push((k.clone(), v.clone()));
    }
    set_meta(
        &mut metadata,
        "general.file_type",
        gguf_file::Value::U32(target.file_type()),
    );
    // candle writes tensor data with 32-byte alignment.
    if metadata.iter().any(|(k, _)| k == "general.alignment") {
        set_meta(
            &mut metadata,
            "general.alignment",
            gguf_file::Value::U32(32),
        );
    }

    // Tensors in file order.
    let mut infos: Vec<(&String, &gguf_file::TensorInfo)> = content.tensor_infos.iter().collect();
    infos.sort_by_key(|(_, i)| i.offset);
    let total = infos.len();
    let target_dtype = target.dtype();
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(total);
    let mut kept = Vec::new();
    let mut quantized = 0;
    for (i, (name, info)) in infos.into_iter().enumerate() {
        progress(i, total, name);
        let qt = content
            .tensor(&mut reader, name, &Device::Cpu)
            .map_err(|e| anyhow::anyhow!("{}: tensor {name}: {e}", input.display()))?;
        let dims = info.shape.dims().to_vec();
        match plan(&dims, info.ggml_dtype, target_dtype) {
            Ok(()) => {
                let f = qt
                    .dequantize(&Device::Cpu)
                    .map_err(|e| anyhow::anyhow!("tensor {name}: cannot dequantize: {e}"))?;
                let q = QTensor::quantize(&f, target_dtype).map_err(|e| {
                    anyhow::anyhow!("tensor {name}: cannot quantize to {}: {e}", target.tag())
                })?;
                tensors.push((name.clone(), q));
                quantized += 1;
            }
            Err(why) => {
                kept.push((name.clone(), format!("{:?}", info.ggml_dtype), why));
                tensors.push((name.clone(), qt));
            }
        }
    }
    progress(total, total, "writing");

    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".quantize-")
        .suffix(".gguf.tmp")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
        let md: Vec<(&str, &gguf_file::Value)> =
            metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        gguf_file::write(&mut w, &md, &ts)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", output.display()))?;
        w.flush()
            .with_context(|| format!("writing {}", output.display()))?;
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("writing {}", output.display()))?;
    tmp.persist(output)
        .map_err(|e| anyhow::anyhow!("cannot move the result to {}: {e}", output.display()))?;
    Ok(Report {
        tensors: total,
        quantized,
        kept,
        in_bytes: std::fs::metadata(input).map(|m| m.len()).unwrap_or(0),
        out_bytes: std::fs::metadata(output).map(|m| m.len()).unwrap_or(0),
        seconds: t0.elapsed().as_secs_f64(),
    })
}

fn set_meta(md: &mut Vec<(String, gguf_file::Value)>, key: &str, value: gguf_file::Value) {
    match md.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => md.push((key.to_string(), value)),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// The built-in text the quality check forces both models through: plain encyclopaedic
/// English, the kind of text a small instruct model should find unsurprising.
pub(crate) const QUALITY_TEXT: &str = "The River Thames flows through southern England, \
passing Oxford, Reading and Windsor before it reaches London and the North Sea. For centuries \
it was the main road of the city: ships brought timber, wool and tea to its docks, and \
ferries carried people from one bank to the other. Today the river is cleaner than it has \
been for a hundred years. Seals and salmon have returned, and walkers can follow a path along \
its banks from the source in the Cotswolds to the flood barrier at Woolwich.";

/// How close a re-quantized model stays to the original on [`QUALITY_TEXT`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Quality {
    pub tokens: usize,
    pub ppl_original: f64,
    pub ppl_quantized: f64,
    /// Mean KL(original || quantized) over the text's positions, in nats.
    pub mean_kl: f64,
    /// Share of positions where both models' most likely token is the same.
    pub top1_agreement: f64,
}

impl Quality {
    /// Negligible loss: perplexity up by at most 1% and mean KL at most 0.01 nats.
    pub fn negligible(&self) -> bool {
        self.ppl_quantized <= self.ppl_original * 1.01 && self.mean_kl <= 0.01
    }

    pub fn line(&self) -> String {
        format!(
            "quality on {} tokens of built-in text: perplexity {:.3} -> {:.3} ({:+.2}%), mean KL {:.4} nats, top-1 agreement {:.1}% ({})",
            self.tokens,
            self.ppl_original,
            self.ppl_quantized,
            (self.ppl_quantized / self.ppl_original - 1.0) * 100.0,
            self.mean_kl,
            self.top1_agreement * 100.0,
            if self.negligible() { "negligible loss" } else { "NOT negligible" }
        )
    }
}

/// Per-position log-probabilities of one teacher-forced pass.
struct Pass {
    /// log-softmax over the vocabulary at each position.
    logprobs: Vec<Vec<f32>>,
}

/// Records the distribution at each step, then leaves only the forced token.
struct Forcer {
    forced: Vec<u32>,
    steps: Mutex<Vec<Vec<f32>>>,
}

impl mistralrs::CustomLogitsProcessor for Forcer {
    fn apply(
        &self,
        logits: &mistralrs::Tensor,
        _context: &[u32],
    ) -> mistralrs::Result<mistralrs::Tensor> {
        let values: Vec<f32> = logits.to_dtype(mistralrs::DType::F32)?.to_vec1()?;
        let mut steps = match self.steps.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let i = steps.len();
        steps.push(log_softmax(&values));
        let token = self.forced.get(i).copied().unwrap_or(0) as usize;
        let masked = crate::llm::seeded::mask_all_but(values.len(), token.min(values.len() - 1));
        mistralrs::Tensor::from_vec(masked, values.len(), logits.device())?.to_dtype(logits.dtype())
    }
}

pub(crate) fn log_softmax(values: &[f32]) -> Vec<f32> {
    let max = values
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = values
        .iter()
        .map(|&v| f64::from(v - max).exp())
        .filter(|x| x.is_finite())
        .sum();
    let lse = max as f64 + sum.ln();
    values
        .iter()
        .map(|&v| (f64::from(v) - lse) as f32)
        .collect()
}

/// KL(p || q) from log-probabilities.
pub(crate) fn kl(logp: &[f32], logq: &[f32]) -> f64 {
    logp.iter()
        .zip(logq)
        .map(|(&lp, &lq)| {
            let p = f64::from(lp).exp();
            if p == 0.0 || !lp.is_finite() {
                0.0
            } else {
                p * (f64::from(lp) - f64::from(lq))
            }
        })
        .sum()
}

fn argmax(xs: &[f32]) -> usize {
    xs.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// Summarise two passes over the same forced tokens.
pub(crate) fn compare(forced: &[u32], a: &[Vec<f32>], b: &[Vec<f32>]) -> Quality {
    let n = forced.len().min(a.len()).min(b.len());
    let mut nll_a = 0.0;
    let mut nll_b = 0.0;
    let mut kl_sum = 0.0;
    let mut agree = 0usize;
    for i in 0..n {
        let t = forced[i] as usize;
        nll_a -= f64::from(a[i].get(t).copied().unwrap_or(f32::NEG_INFINITY));
        nll_b -= f64::from(b[i].get(t).copied().unwrap_or(f32::NEG_INFINITY));
        kl_sum += kl(&a[i], &b[i]);
        if argmax(&a[i]) == argmax(&b[i]) {
            agree += 1;
        }
    }
    let nf = n.max(1) as f64;
    Quality {
        tokens: n,
        ppl_original: (nll_a / nf).exp(),
        ppl_quantized: (nll_b / nf).exp(),
        mean_kl: kl_sum / nf,
        top1_agreement: agree as f64 / nf,
    }
}

async fn load(path: &Path) -> anyhow::Result<mistralrs::Model> {
    gguf::check_supported(path).map_err(|e| anyhow::anyhow!(e))?;
    crate::llm::local::gguf_builder(path)
        .map_err(|e| anyhow::anyhow!(e))?
        .build()
        .await
        .map_err(|e| anyhow::anyhow!("cannot load {}: {e:#}", path.display()))
}

/// Teacher-force `model` through `forced` after a fixed instruction.
async fn pass(model: &mistralrs::Model, forced: &[u32]) -> anyhow::Result<Pass> {
    let forcer = Arc::new(Forcer {
        forced: forced.to_vec(),
        steps: Mutex::new(Vec::with_capacity(forced.len())),
    });
    let params = crate::llm::local::engine_sampling(Some(forced.len()));
    let req = mistralrs::RequestBuilder::new()
        .add_message(
            mistralrs::TextMessageRole::User,
            "Write a short paragraph about the River Thames.",
        )
        .set_sampling(params)
        .add_logits_processor(forcer.clone());
    let mut stream = model
        .stream_chat_request(req)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Drain promptly: an unread stream stalls the engine.
    while let Some(r) = stream.next().await {
        match r {
            mistralrs::Response::Chunk(c)
                if c.choices.iter().any(|c| c.finish_reason.is_some()) =>
            {
                break
            }
            mistralrs::Response::Done(_) => break,
            mistralrs::Response::InternalError(e) => bail!("engine error: {e}"),
            mistralrs::Response::ValidationError(e) => bail!("engine refused: {e}"),
            mistralrs::Response::ModelError(e, _) => bail!("model error: {e}"),
            _ => {}
        }
    }
    drop(stream);
    let steps = match forcer.steps.lock() {
        Ok(s) => s.clone(),
        Err(p) => p.into_inner().clone(),
    };
    Ok(Pass { logprobs: steps })
}

/// Compare `quantized` against `original` on the built-in text.
pub(crate) async fn quality(original: &Path, quantized: &Path) -> anyhow::Result<Quality> {
    let a = load(original).await?;
    let forced = a
        .tokenize(
            either::Either::Right(QUALITY_TEXT.to_string()),
            None,
            false,
            false,
            None,
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot tokenize the quality text: {e}"))?;
    if forced.is_empty() {
        bail!("the quality text tokenized to nothing");
    }
    let pa = pass(&a, &forced).await?;
    drop(a);
    let b = load(quantized).await?;
    let pb = pass(&b, &forced).await?;
    drop(b);
    Ok(compare(&forced, &pa.logprobs, &pb.logprobs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_keeps_norms_matching_and_indivisible_rows() {
        assert_eq!(
            plan(&[576], GgmlDType::F32, GgmlDType::Q8_0),
            Err(Kept::OneDimensional)
        );
        assert_eq!(
            plan(&[576, 576], GgmlDType::Q8_0, GgmlDType::Q8_0),
            Err(Kept::AlreadyTarget)
        );
        assert_eq!(plan(&[576, 576], GgmlDType::Q4_1, GgmlDType::Q8_0), Ok(()));
        assert_eq!(
            plan(&[1536, 576], GgmlDType::Q4_1, GgmlDType::Q4K),
            Err(Kept::RowNotDivisible {
                row: 576,
                block: 256
            })
        );
        assert_eq!(plan(&[576, 1536], GgmlDType::Q4_1, GgmlDType::Q6K), Ok(()));
    }

    #[test]
    fn derived_names_replace_the_quant_tag() {
        let p = Path::new("/m/SmolLM2-135M-Instruct.Q4_1.gguf");
        assert_eq!(
            derived_path(p, Target::Q8_0),
            Path::new("/m/SmolLM2-135M-Instruct.Q8_0.gguf")
        );
        assert_eq!(
            derived_path(Path::new("x/model.gguf"), Target::Q4K),
            Path::new("x/model.Q4_K.gguf")
        );
        assert_eq!(
            derived_path(Path::new("llama-3.2-1b.gguf"), Target::Q6K),
            Path::new("llama-3.2-1b.Q6_K.gguf")
        );
    }

    #[test]
    fn kl_is_zero_for_equal_and_positive_otherwise() {
        let p = log_softmax(&[1.0, 2.0, 3.0]);
        let q = log_softmax(&[1.0, 2.5, 3.0]);
        assert!(kl(&p, &p).abs() < 1e-9);
        assert!(kl(&p, &q) > 0.0);
        let total: f64 = p.iter().map(|&x| f64::from(x).exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }

    #[test]
    fn compare_computes_perplexity_and_agreement() {
        // Two positions, vocabulary of 2; forced tokens 0 then 1.
        let half = (0.5f32).ln();
        let a = vec![vec![half, half], vec![half, half]];
        let b = vec![vec![(0.25f32).ln(), (0.75f32).ln()], vec![half, half]];
        let q = compare(&[0, 1], &a, &b);
        assert!((q.ppl_original - 2.0).abs() < 1e-6);
        // nll_b = -(ln .25 + ln .5) / 2 -> ppl = sqrt(8)
        assert!((q.ppl_quantized - 8f64.sqrt()).abs() < 1e-5);
        assert!(q.mean_kl > 0.0);
        assert!(!q.negligible());
        assert_eq!(q.tokens, 2);
    }

    /// A tiny GGUF written with candle, re-quantized: metadata order kept, file type updated,
    /// 2-D tensors with divisible rows quantized, the rest kept.
    #[test]
    fn requantizes_a_small_file_and_keeps_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.gguf");
        let output = dir.path().join("out.gguf");
        let dev = Device::Cpu;
        let w = candle_core::Tensor::arange(0f32, 64.0 * 64.0, &dev)
            .unwrap()
            .reshape((64, 64))
            .unwrap()
            .affine(1.0 / 4096.0, -0.5)
            .unwrap();
        let big = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let norm = QTensor::quantize(
            &candle_core::Tensor::ones(64, candle_core::DType::F32, &dev).unwrap(),
            GgmlDType::F32,
        )
        .unwrap();
        let odd = QTensor::quantize(
            &candle_core::Tensor::ones((4, 100), candle_core::DType::F32, &dev).unwrap(),
            GgmlDType::F32,
        )
        .unwrap();
        let md = [
            (
                "general.architecture",
                gguf_file::Value::String("llama".into()),
            ),
            ("general.file_type", gguf_file::Value::U32(3)),
            ("zzz.custom", gguf_file::Value::String("kept".into())),
            ("aaa.custom", gguf_file::Value::U32(5)),
        ];
        {
            let mut f = File::create(&input).unwrap();
            let md_refs: Vec<(&str, &gguf_file::Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
            gguf_file::write(
                &mut f,
                &md_refs,
                &[("blk.0.w", &big), ("blk.0.norm", &norm), ("odd", &odd)],
            )
            .unwrap();
        }
        let report = quantize(&input, &output, Target::Q4K, false, &mut |_, _, _| {}).unwrap();
        // 64-wide rows are not a multiple of 256: nothing to quantize for q4k.
        assert_eq!(report.quantized, 0);
        let report = quantize(&input, &output, Target::Q8_0, true, &mut |_, _, _| {}).unwrap();
        assert_eq!((report.tensors, report.quantized), (3, 1));
        assert!(report
            .kept
            .iter()
            .any(|(n, _, k)| n == "blk.0.norm" && *k == Kept::OneDimensional));
        assert!(report.kept.iter().any(|(n, _, k)| n == "odd"
            && *k
                == Kept::RowNotDivisible {
                    row: 100,
                    block: 32
                }));
        let h = gguf::read_header(&output).unwrap();
        let keys: Vec<&str> = h.metadata.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "general.architecture",
                "general.file_type",
                "zzz.custom",
                "aaa.custom"
            ]
        );
        assert_eq!(h.get("general.file_type"), Some(&gguf::MetaValue::Int(7)));
        let mut r = File::open(&output).unwrap();
        let c = gguf_file::Content::read(&mut r).unwrap();
        let t = c.tensor(&mut r, "blk.0.w", &dev).unwrap();
        assert_eq!(t.dtype(), GgmlDType::Q8_0);
        // Values survive: Q8_0 of the dequantized Q4_1 stays within Q8_0's step.
        let before = big
            .dequantize(&dev)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let after = t
            .dequantize(&dev)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let worst = before
            .iter()
            .zip(&after)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 0.01, "{worst}");
        // The input is never the output, and an existing output needs --force.
        assert!(quantize(&input, &input, Target::Q8_0, true, &mut |_, _, _| {}).is_err());
        let err = quantize(&input, &output, Target::Q8_0, false, &mut |_, _, _| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("already exists"), "{err}");
    }
}
