//! Where decode time goes: candle's quantized matrix-vector products, alone.
//!
//! One decoded token multiplies one activation row by every weight matrix of the model (seven
//! per layer, then the output head). This section loads those matrices from the GGUF file
//! exactly as mistral.rs does (candle `QTensor` → `QMatMul`) and times one token's worth of
//! `QMatMul::forward` calls, in order, on rayon's global pool (what decode uses) and on a
//! one-thread pool. It also measures how fast this machine streams memory, since a mat-vec
//! reads every weight once per token: weight bytes ÷ read bandwidth is a floor on the time per
//! token that no engine can beat.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::quantized::{gguf_file, QMatMul};
use candle_core::{Device, Module, Tensor};

use super::figures::{Out, Plan, Sample};

/// The weights one token is multiplied by, as candle loads them.
struct Weights {
    mats: Vec<QMatMul>,
    /// Input width of each matrix.
    widths: Vec<usize>,
    macs: u64,
    bytes: u64,
}

/// Every 2-D weight of the layers, plus the output head (`output.weight`, or the tied
/// `token_embd.weight`).
fn load(path: &Path) -> anyhow::Result<Weights> {
    let mut file = std::fs::File::open(path)?;
    let content = gguf_file::Content::read(&mut file)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let head = if content.tensor_infos.contains_key("output.weight") {
        "output.weight"
    } else {
        "token_embd.weight"
    };
    let mut names: Vec<&String> = content
        .tensor_infos
        .iter()
        .filter(|(name, info)| {
            info.shape.dims().len() == 2 && (name.starts_with("blk.") || name.as_str() == head)
        })
        .map(|(name, _)| name)
        .collect();
    names.sort();
    let mut w = Weights {
        mats: Vec::new(),
        widths: Vec::new(),
        macs: 0,
        bytes: 0,
    };
    for name in names {
        let t = content.tensor(&mut file, name, &Device::Cpu)?;
        let (n, k) = t.shape().dims2()?;
        w.macs += (n * k) as u64;
        w.bytes += t.storage_size_in_bytes() as u64;
        w.widths.push(k);
        w.mats.push(QMatMul::from_qtensor(t)?);
    }
    Ok(w)
}

/// Activation rows of a decode step of four variants at once (the bench's concurrency case).
const BATCH_ROWS: usize = 4;

/// Milliseconds for one token's mat-vecs, in file order.
fn one_token(w: &Weights, inputs: &[Tensor]) -> anyhow::Result<f64> {
    let t = Instant::now();
    for (m, x) in w.mats.iter().zip(inputs) {
        std::hint::black_box(m.forward(x)?);
    }
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

/// Milliseconds for one token's products (one step's, for inputs of several rows), each
/// weight with its input in file order through `product`, or None when `product` declines
/// one of them.
fn timed<M>(
    mats: &[M],
    inputs: &[Tensor],
    product: impl Fn(&M, &Tensor) -> anyhow::Result<Option<Tensor>>,
) -> anyhow::Result<Option<f64>> {
    let t = Instant::now();
    for (m, x) in mats.iter().zip(inputs) {
        match product(m, x)? {
            Some(y) => std::hint::black_box(y),
            None => return Ok(None),
        };
    }
    Ok(Some(t.elapsed().as_secs_f64() * 1e3))
}

/// `timed` with promptloom's Q8_0 kernel (`promptloom::q8_matmul`, vendor/README.md patch
/// 7), or None when it does not run here or a weight is not Q8_0.
fn one_token_ours(w: &Weights, inputs: &[Tensor]) -> anyhow::Result<Option<f64>> {
    use mistralrs_core::promptloom::{q8_kernel_available, q8_matmul};
    if !q8_kernel_available() {
        return Ok(None);
    }
    timed(&w.mats, inputs, |m, x| match m {
        QMatMul::QTensor(q) => Ok(q8_matmul(x, q)?),
        _ => Ok(None),
    })
}

/// `timed` with patch 21's decode kernel, on weights repacked for it beforehand.
fn one_token_lanes(
    lanes: &[mistralrs_core::promptloom::Q8LanesWeight],
    inputs: &[Tensor],
) -> anyhow::Result<Option<f64>> {
    timed(lanes, inputs, |m, x| Ok(m.matmul(x)?))
}

/// Each weight repacked for patch 21's kernel, or None when one of them cannot be (not
/// Q8_0, not whole groups of sixteen rows, or the kernel does not run here).
fn repack(w: &Weights) -> anyhow::Result<Option<Vec<mistralrs_core::promptloom::Q8LanesWeight>>> {
    use mistralrs_core::promptloom::{q8_lanes_available, Q8LanesWeight};
    if !q8_lanes_available() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for m in &w.mats {
        let QMatMul::QTensor(q) = m else {
            return Ok(None);
        };
        match Q8LanesWeight::new(q)? {
            Some(p) => out.push(p),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// Read bandwidth in GB/s over a buffer of `bytes` (the model's weights: what a decoded token
/// reads), on every thread of rayon's pool and on one thread. The buffer is scanned by
/// `memchr` for a byte it never holds: a vectorised loop in a dependency, so built at full
/// optimisation like the engine (this crate builds at opt-level 1, and a plain loop here
/// measures the loop, not the memory). The buffer is written first, so every page is real
/// memory (a zeroed allocation maps one shared zero page).
fn read_bandwidth(bytes: usize, runs: usize) -> (Sample, Sample) {
    use rayon::prelude::*;
    let buf = vec![1u8; bytes.max(1 << 20)];
    let scan = |chunk: &[u8]| memchr::memchr(0, chunk).is_some();
    let (mut all, mut one) = (Sample::default(), Sample::default());
    for _ in 0..runs.max(3) {
        let t = Instant::now();
        let found = buf
            .par_chunks(1 << 20)
            .map(scan)
            .reduce(|| false, |a, b| a | b);
        all.push(buf.len() as f64 / t.elapsed().as_secs_f64() / 1e9);
        let t = Instant::now();
        let found_one = scan(&buf);
        one.push(buf.len() as f64 / t.elapsed().as_secs_f64() / 1e9);
        std::hint::black_box((found, found_one));
    }
    (all, one)
}

pub(crate) fn run(
    plan: &Plan,
    files: &[(&str, PathBuf)],
    decode: &[(String, f64)],
) -> anyhow::Result<Out> {
    let mut out = Out::default();
    let runs = plan.runs.max(3) * 4;
    out.line(format!(
        "\nWhere decode time goes: candle 0.10.2's quantized mat-vec (QMatMul::forward, 1 row) over \
         every weight of the model, one token's worth, alone; ms per token median [min–max] of {runs} [{}]",
        plan.machine.tag()
    ));
    out.line(format!(
        "  {:<34} {:>8} {:>20} {:>20} {:>20} {:>8} {:>12} {:>10} {:>20} {:>20}",
        "file",
        "weights",
        "rayon pool",
        "caller in the pool",
        "1 thread",
        "GMAC/s",
        "memory floor",
        "of decode",
        "ours, in the pool",
        "ours, 4 rows"
    ));
    let single = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    // The same ops called from a worker of a pool of as many threads, as the engine thread
    // is once it belongs to its pool: every parallel op is a local join, no cold injection.
    let pooled = rayon::ThreadPoolBuilder::new()
        .num_threads(rayon::current_num_threads())
        .build()?;
    for (label, path) in files {
        let w = load(path)?;
        let (bw, bw_one) = read_bandwidth(w.bytes as usize, plan.runs);
        let gbs = bw.median().unwrap_or(f64::NAN);
        out.line(format!(
            "  memory read bandwidth, a buffer of {:.0} MB (the weights of {}): {} GB/s on {} threads, {} GB/s on 1",
            w.bytes as f64 / 1e6,
            super::figures::file_name(path),
            bw.show(1),
            plan.machine.threads,
            bw_one.show(1)
        ));
        let inputs = w
            .widths
            .iter()
            .map(|&k| Tensor::rand(-1f32, 1f32, (1, k), &Device::Cpu))
            .collect::<Result<Vec<_>, _>>()?;
        // One decode step of four variants at once: four activation rows per product.
        let batch = w
            .widths
            .iter()
            .map(|&k| Tensor::rand(-1f32, 1f32, (BATCH_ROWS, k), &Device::Cpu))
            .collect::<Result<Vec<_>, _>>()?;
        let (mut pool, mut inside, mut one, mut ours, mut ours_batch) = (
            Sample::default(),
            Sample::default(),
            Sample::default(),
            Sample::default(),
            Sample::default(),
        );
        // The 4 rows against four weight rows at a time, as before patch 17.
        let mut ours_batch_four = Sample::default();
        // Patch 21's decode kernel (outputs in lanes), 1 row and 4, on weights repacked first
        // (what a load does once, at its first decode step).
        let t = Instant::now();
        let lanes = repack(&w)?;
        if lanes.is_some() {
            out.line(format!(
                "  {:<34} weights repacked for patch 21's decode kernel in {:.0} ms (once per load)",
                "",
                t.elapsed().as_secs_f64() * 1e3
            ));
        }
        let (mut lanes_one, mut lanes_batch) = (Sample::default(), Sample::default());
        one_token(&w, &inputs)?;
        let has_ours = pooled.install(|| one_token_ours(&w, &inputs))?.is_some();
        for _ in 0..runs {
            pool.push(one_token(&w, &inputs)?);
            inside.push(pooled.install(|| one_token(&w, &inputs))?);
            one.push(single.install(|| one_token(&w, &inputs))?);
            if has_ours {
                if let Some(t) = pooled.install(|| one_token_ours(&w, &inputs))? {
                    ours.push(t);
                }
                if let Some(t) = pooled.install(|| one_token_ours(&w, &batch))? {
                    ours_batch.push(t);
                }
                mistralrs_core::promptloom::set_q8_by_row(false);
                let four = pooled.install(|| one_token_ours(&w, &batch));
                mistralrs_core::promptloom::set_q8_by_row(true);
                if let Some(t) = four? {
                    ours_batch_four.push(t);
                }
            }
            if let Some(lanes) = &lanes {
                if let Some(t) = pooled.install(|| one_token_lanes(lanes, &inputs))? {
                    lanes_one.push(t);
                }
                if let Some(t) = pooled.install(|| one_token_lanes(lanes, &batch))? {
                    lanes_batch.push(t);
                }
            }
        }
        drop(lanes);
        let ms = pool.median().unwrap_or(f64::NAN);
        let floor = w.bytes as f64 / (gbs * 1e9) * 1e3;
        let share = decode
            .iter()
            .find(|(l, _)| l == label)
            .map_or("-".to_string(), |(_, tps)| {
                format!("{:.0}%", ms / (1e3 / tps) * 100.0)
            });
        let name = super::figures::file_label(path, label);
        out.line(format!(
            "  {name:<34} {:>6.0}MB {:>20} {:>20} {:>20} {:>8.1} {:>9.2} ms {:>10} {:>20} {:>20}",
            w.bytes as f64 / 1e6,
            pool.show(2),
            inside.show(2),
            one.show(2),
            w.macs as f64 / (ms / 1e3) / 1e9,
            floor,
            share,
            ours.show(2),
            ours_batch.show(2)
        ));
        if let (Some(o), Some(c)) = (ours.median(), inside.median()) {
            out.goal(
                &format!("one row, our Q8_0 kernel's speed / candle's, {label}"),
                "printed",
                format!("{:.2}x ({o:.2} vs {c:.2} ms per token)", c / o),
                None,
            );
        }
        if let (Some(b), Some(f)) = (ours_batch.median(), ours_batch_four.median()) {
            out.goal(
                &format!("{BATCH_ROWS} rows, one weight row at a time / four (patch 17), {label}"),
                "printed",
                format!("{:.2}x ({b:.2} vs {f:.2} ms per step)", f / b),
                None,
            );
        }
        if let (Some(b), Some(o)) = (ours_batch.median(), ours.median()) {
            out.goal(
                &format!("{BATCH_ROWS} rows / 1 row, our Q8_0 kernel's time, {label}"),
                "printed",
                format!(
                    "{:.2}x ({b:.2} vs {o:.2} ms per step; {:.2} ms at the memory floor)",
                    b / o,
                    floor
                ),
                None,
            );
        }
        if let (Some(l), Some(c), Some(b)) =
            (lanes_one.median(), inside.median(), lanes_batch.median())
        {
            out.goal(
                &format!("one row, patch 21's decode kernel / candle's, {label}"),
                "printed",
                format!("{:.2}x ({l:.2} vs {c:.2} ms per token)", c / l),
                None,
            );
            out.goal(
                &format!("{BATCH_ROWS} rows / 1 row, patch 21's decode kernel's time, {label}"),
                "printed",
                format!(
                    "{:.2}x ({b:.2} vs {l:.2} ms per step; {:.2} ms at the memory floor)",
                    b / l,
                    floor
                ),
                None,
            );
        }
        out.line(format!(
            "  {:<34} {} mat-vecs, {:.0} M multiply-adds per token; the memory floor allows {:.0} tok/s, these mat-vecs alone {:.0} tok/s",
            "",
            w.mats.len(),
            w.macs as f64 / 1e6,
            1e3 / floor,
            1e3 / ms
        ));
    }
    decode_attention(plan, &mut out)?;
    Ok(out)
}

/// One layer's decode attention (SmolLM2-135M's 9 heads over 3 kv heads of 64) at three
/// context lengths, one row and a batch of four: its scores in vector lanes (patch 14, the
/// default) against key by key (0.8.1's `vec_dot_f32`); the same bits either way
/// (`engine_patches::decode_scores_in_lanes_match_key_by_key_bit_for_bit`).
fn decode_attention(plan: &Plan, out: &mut Out) -> anyhow::Result<()> {
    use mistralrs_core::promptloom::{
        cpu_attention, decode_score_lanes, set_decode_scores, DecodeScores,
    };
    let Some(lanes) = decode_score_lanes() else {
        out.line("\nDecode attention: no vector lanes on this CPU (key by key only)");
        return Ok(());
    };
    out.line(format!(
        "\nDecode attention, one layer (9 heads over 3 kv heads of 64); the model's cache is f16 on the CPU; µs per call median [min–max] [{}]",
        plan.machine.tag()
    ));
    out.line(format!(
        "  {:<5} {:<6} {:>5} {:>22} {:>22} {:>6}",
        "cache",
        "keys",
        "rows",
        format!("{lanes} lanes"),
        "key by key",
        "gain"
    ));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(rayon::current_num_threads())
        .build()?;
    let reps = 50 * plan.runs.max(1);
    use candle_core::DType;
    let shapes = [DType::F16, DType::F32].into_iter().flat_map(|dtype| {
        [100usize, 300, 1800]
            .into_iter()
            .flat_map(move |keys| [1usize, BATCH_ROWS].map(|rows| (dtype, keys, rows)))
    });
    for (dtype, keys, rows) in shapes {
        {
            let rand = |shape: (usize, usize, usize, usize)| {
                Tensor::rand(-1f32, 1f32, shape, &Device::Cpu).and_then(|t| t.to_dtype(dtype))
            };
            let q = rand((rows, 9, 1, 64))?;
            let k = rand((rows, 3, keys, 64))?;
            let v = rand((rows, 3, keys, 64))?;
            let (mut fast, mut slow) = (Sample::default(), Sample::default());
            for _ in 0..reps {
                for (mode, sample) in [
                    (DecodeScores::Lanes, &mut fast),
                    (DecodeScores::KeyByKey, &mut slow),
                ] {
                    set_decode_scores(mode);
                    let t = Instant::now();
                    pool.install(|| cpu_attention(&q, &k, &v, 0.125))?;
                    sample.push(t.elapsed().as_secs_f64() * 1e6);
                }
            }
            set_decode_scores(DecodeScores::default());
            let gain = slow.median().unwrap_or(f64::NAN) / fast.median().unwrap_or(f64::NAN);
            let cache = format!("{dtype:?}").to_lowercase();
            out.line(format!(
                "  {cache:<5} {keys:<6} {rows:>5} {:>22} {:>22} {gain:>5.2}x",
                fast.show(0),
                slow.show(0)
            ));
            if keys == 1800 {
                out.goal(
                    &format!(
                        "decode attention gain from score lanes, {cache} cache, 1800 keys, {rows} row(s)"
                    ),
                    "printed",
                    format!("{gain:.2}x"),
                    None,
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model's weights are all found: 30 layers × 7 matrices + the tied output head of
    /// 49,152 × 576.
    #[test]
    fn loads_every_weight_of_the_default_model() {
        let path = crate::llm::local::tests::model_path();
        let w = load(&path).unwrap();
        assert_eq!(w.mats.len(), 30 * 7 + 1);
        let layer = 576 * 576 * 2 + 576 * 192 * 2 + 576 * 1536 * 3;
        assert_eq!(w.macs, 30 * layer + 49_152 * 576);
        let x = Tensor::ones((1, 576), candle_core::DType::F32, &Device::Cpu).unwrap();
        let y = w.mats.last().unwrap().forward(&x).unwrap();
        assert_eq!(y.dims(), &[1, 49_152]);
    }
}
