//! promptloom: the CPU product of f32 activations and a Q8_0 weight, with the same result as
//! candle 0.10.2's (`QMatMul::forward` → `k_quants::matmul` with the AVX2
//! `vec_dot_q8_0_q8_0`), bit for bit, in fewer instructions when the CPU has AVX-512 VNNI.
//!
//! Same arithmetic, step by step:
//! - each activation row is quantized by candle's own `BlockQ8_0::from_float`;
//! - for each 32-value block, the eight i32 lanes hold sums of four products. Candle gets
//!   them with `sign`, `maddubs` and `madd` (no i16 pair can saturate: activation values are
//!   within ±127, weight magnitudes within 128); here one `vpdpbusd` of 512 bits gives the
//!   same integers for two outputs at once, from the weights shifted to unsigned and an
//!   accumulator that starts at the shift's correction (see `dots`);
//! - the lanes go to f32 and are fused-multiply-added, with the same scale (the f32 product
//!   of the two f16 scales), into one 8-lane accumulator per output, block after block in the
//!   same order;
//! - candle's horizontal sum (`hsum_float_8`) ends each output.
//!
//! What changes: per block and two outputs, four instructions instead of about thirty-four; four
//! weight rows and up to four activation rows per pass, so each loaded block is used several
//! times; and the work splits into tiles of rows and columns for rayon, instead of one
//! parallel dispatch per activation row.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use candle_core::quantized::k_quants::{BlockQ8_0, GgmlType};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Result, Storage, Tensor};
use half::f16;
use mistralrs_quant::{GgufMatMul, QuantMethod, QuantMethodConfig};
use rayon::prelude::*;

use crate::layers::MatMul;
use crate::promptloom_q8_lanes::{self as lanes, Packed};

static ENABLED: AtomicBool = AtomicBool::new(true);
static WIDE: AtomicBool = AtomicBool::new(true);
static BY_ROW: AtomicBool = AtomicBool::new(true);

fn wide() -> bool {
    WIDE.load(Ordering::Relaxed)
}

/// A decode step's few activation rows (up to `FEW_ROWS`) against one weight row at a time
/// (the default, `dots_row`), or against four at a time as prompts are (`dots`): the same bits.
pub fn set_by_row(on: bool) {
    BY_ROW.store(on, Ordering::Relaxed);
}

/// Two outputs per 512-bit `vpdpbusd` (the default, issue 12) or, with false, patch 7's one
/// output per 256-bit one: the same bits either way.
pub fn set_wide(on: bool) {
    WIDE.store(on, Ordering::Relaxed);
}

/// Switch the kernel on (the default) or off (candle's path) for every model from now on.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// The fewest activation rows `QLinear::forward` hands to the kernel by default; fewer go
/// to candle.
pub const DEFAULT_MIN_ROWS: usize = 2;
static MIN_ROWS: AtomicUsize = AtomicUsize::new(DEFAULT_MIN_ROWS);

/// Whether `QLinear::forward` multiplies `rows` activation rows with this kernel (when it is
/// `available`): prompts and batches (2 rows or more) yes, one decoded token no. For one
/// row candle's own kernel decodes faster (2026-12-02, Intel Xeon AVX-512/VNNI/AMX, 2
/// threads: 0.80x and 0.91x of candle's decode rate with this kernel), while from 2 rows on
/// this one reads prompts 1.49-2.40x faster. Both give the same bits, so the choice changes
/// only the time.
pub fn use_for_rows(rows: usize) -> bool {
    rows >= MIN_ROWS.load(Ordering::Relaxed)
}

/// The fewest rows the kernel takes from now on (`DEFAULT_MIN_ROWS`; 1 = every product, as
/// before issue 12, for the bench's comparison).
pub fn set_min_rows(rows: usize) {
    MIN_ROWS.store(rows.max(1), Ordering::Relaxed);
}

/// Whether the kernel runs here: switched on, and `cpu_supported`.
pub fn available() -> bool {
    ENABLED.load(Ordering::Relaxed) && cpu_supported()
}

/// Whether candle was built with AVX2 and the CPU has AVX-512F and AVX-512 VNNI (with VL, for
/// the 256-bit form): what this kernel and patch 21's need to give candle's bits.
pub(crate) fn cpu_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // candle's own kernel must be its AVX2 one (chosen when it is compiled) for the
        // results to be the same.
        cfg!(target_feature = "avx2")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A GGUF weight as the llama model multiplies by it: mistral.rs's `QuantMethod` (no bias),
/// and the `QTensor` itself when it is Q8_0, for the kernel.
pub(crate) struct QLinear {
    method: Arc<dyn QuantMethod>,
    q8: Option<Arc<QTensor>>,
    /// promptloom (patch 21): the weight repacked for steps of few rows, made at the first
    /// one (None for good when it does not apply or fit, see `promptloom_q8_lanes`).
    lanes: OnceLock<Option<Packed>>,
}

impl QLinear {
    pub(crate) fn gguf(weight: QTensor) -> Result<Self> {
        Self::gguf_arc(Arc::new(weight))
    }

    pub(crate) fn gguf_arc(weight: Arc<QTensor>) -> Result<Self> {
        let q8 = (weight.dtype() == GgmlDType::Q8_0).then(|| weight.clone());
        let method = Arc::new(GgufMatMul::new(QuantMethodConfig::Gguf {
            q_weight: weight,
            b: None,
        })?);
        Ok(Self {
            method,
            q8,
            lanes: OnceLock::new(),
        })
    }

    /// `x` times the weight, as `MatMul.qmethod_matmul(x, method)` computes it.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_path(x).map(|(y, _)| y)
    }

    /// `forward`, and whether the kernel (true) or candle's path (false) computed it.
    pub(crate) fn forward_path(&self, x: &Tensor) -> Result<(Tensor, bool)> {
        if let Some(w) = &self.q8 {
            // promptloom (patch 21): a decode step's few rows on the kernel with outputs in
            // lanes (candle's bits), its repacked weight made at the first one.
            let width = x.dims().last().copied().unwrap_or(0).max(1);
            if lanes::available() && x.elem_count() / width <= FEW_ROWS {
                let packed = self.lanes.get_or_init(|| Packed::new(w).ok().flatten());
                if let Some(p) = packed {
                    if let Some(y) = p.matmul(&x.contiguous()?)? {
                        return Ok((y, true));
                    }
                }
            }
            // promptloom: one activation row (a decoded token) stays on candle's kernel.
            if use_for_rows(x.elem_count() / width) {
                if let Some(y) = matmul(x, w)? {
                    return Ok((y, true));
                }
            }
        }
        MatMul.qmethod_matmul(x, &*self.method).map(|y| (y, false))
    }
}

static STACKED: AtomicBool = AtomicBool::new(true);
static STACKED_BUILT: AtomicUsize = AtomicUsize::new(0);

/// Whether models loaded from now on stack the weights that multiply one input (q, k and v;
/// gate and up) into one matrix (the default), or keep one product each, as 0.8.1 does.
pub fn set_stacked(on: bool) {
    STACKED.store(on, Ordering::Relaxed);
}

/// Stacked weights built since the process started.
pub fn stacked_built() -> usize {
    STACKED_BUILT.load(Ordering::Relaxed)
}

/// Weights that multiply the same input, as one product or one each.
///
/// promptloom (issue 12): in a GGUF tensor every output row is its own run of blocks, so the
/// rows of q, k and v (or of gate and up) concatenated are one weight whose product gives each
/// part's outputs exactly as its own product does (every output is one row's dot product with
/// the input, in either kernel). One product instead of three (or two) per layer: one parallel
/// op, one quantization of the input, and an even split of work between threads.
pub(crate) enum QLinears {
    Stacked { linear: QLinear, widths: Vec<usize> },
    Apart(Vec<QLinear>),
}

impl QLinears {
    /// Stacked when switched on and the parts are of one type and input width on the CPU;
    /// apart otherwise.
    pub(crate) fn gguf(parts: Vec<QTensor>) -> Result<Self> {
        Self::build(parts, STACKED.load(Ordering::Relaxed))
    }

    pub(crate) fn build(parts: Vec<QTensor>, stack: bool) -> Result<Self> {
        let stackable = parts.len() > 1
            && parts.iter().all(|p| {
                p.device().is_cpu()
                    && p.dtype() == parts[0].dtype()
                    && p.shape().dims().len() == 2
                    && p.shape().dims()[1] == parts[0].shape().dims()[1]
            });
        if !stack || !stackable {
            return parts
                .into_iter()
                .map(QLinear::gguf)
                .collect::<Result<Vec<_>>>()
                .map(Self::Apart);
        }
        let k = parts[0].shape().dims()[1];
        let widths: Vec<usize> = parts.iter().map(|p| p.shape().dims()[0]).collect();
        let mut bytes = Vec::new();
        for p in &parts {
            bytes.extend_from_slice(&p.data()?);
        }
        let dtype = parts[0].dtype();
        drop(parts);
        let stacked = candle_core::quantized::ggml_file::qtensor_from_ggml(
            dtype,
            &bytes,
            vec![widths.iter().sum(), k],
            &candle_core::Device::Cpu,
        )?;
        STACKED_BUILT.fetch_add(1, Ordering::Relaxed);
        Ok(Self::Stacked {
            linear: QLinear::gguf(stacked)?,
            widths,
        })
    }

    /// Each part's product with `x`, in order, each contiguous.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        match self {
            Self::Apart(parts) => parts.iter().map(|p| p.forward(x)).collect(),
            Self::Stacked { linear, widths } => {
                let y = linear.forward(x)?;
                let last = y.rank() - 1;
                let mut start = 0;
                widths
                    .iter()
                    .map(|&w| {
                        let part = y.narrow(last, start, w)?.contiguous();
                        start += w;
                        part
                    })
                    .collect()
            }
        }
    }
}

static QUANTIZED_EMBEDDINGS: AtomicUsize = AtomicUsize::new(0);

/// Token embeddings kept quantized so far (patch 20), for the tests.
pub fn quantized_embeddings_built() -> usize {
    QUANTIZED_EMBEDDINGS.load(Ordering::Relaxed)
}

/// promptloom (issue 12, patch 20): the token embedding table kept as the GGUF stores it, each
/// looked-up row dequantized when it is looked up. 0.8.1 dequantized the whole table to f32
/// at load (49,152 × 576 for SmolLM2: 113 MB written, ~100 ms of the load, and held for the
/// process's life) to look up a few rows per step. Dequantizing is block by block, so a row
/// dequantized alone has the bits it has in the whole table.
pub(crate) struct QEmbedding {
    table: QTensor,
    hidden: usize,
}

impl QEmbedding {
    /// A (vocabulary, hidden) table on the CPU.
    pub(crate) fn new(table: QTensor) -> Result<Self> {
        let (_, hidden) = table.shape().dims2()?;
        if !table.device().is_cpu() || hidden % table.dtype().block_size() != 0 {
            candle_core::bail!("a quantized embedding needs a CPU table of whole blocks per row");
        }
        QUANTIZED_EMBEDDINGS.fetch_add(1, Ordering::Relaxed);
        Ok(Self { table, hidden })
    }

    /// The rows of `ids` (u32, any shape), as `candle_nn::Embedding` gives them: shape
    /// `ids.dims() + [hidden]`, f32.
    pub(crate) fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let vocab = self.table.shape().dims()[0];
        let dtype = self.table.dtype();
        let row = self.hidden / dtype.block_size() * dtype.type_size();
        let data = self.table.data()?;
        let ids_v = ids.flatten_all()?.to_vec1::<u32>()?;
        let mut bytes = Vec::with_capacity(ids_v.len() * row);
        for &id in &ids_v {
            let id = id as usize;
            if id >= vocab {
                candle_core::bail!("token id {id} is outside the embedding table ({vocab} rows)");
            }
            bytes.extend_from_slice(&data[id * row..(id + 1) * row]);
        }
        let rows = candle_core::quantized::ggml_file::qtensor_from_ggml(
            dtype,
            &bytes,
            vec![ids_v.len(), self.hidden],
            &candle_core::Device::Cpu,
        )?
        .dequantize(&candle_core::Device::Cpu)?;
        let mut dims = ids.dims().to_vec();
        dims.push(self.hidden);
        rows.reshape(dims)
    }
}

/// One Q8_0 block as candle lays it out (`#[repr(C)] BlockQ8_0 { d: f16, qs: [i8; 32] }`,
/// 34 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Block {
    pub(crate) d: f16,
    pub(crate) qs: [i8; 32],
}

/// candle's blocks seen as `Block`s (the same layout; candle's fields are private).
pub(crate) fn as_blocks(blocks: &[BlockQ8_0]) -> &[Block] {
    // Same size (asserted below), alignment and field order.
    unsafe { std::slice::from_raw_parts(blocks.as_ptr() as *const Block, blocks.len()) }
}
const _: () = assert!(std::mem::size_of::<Block>() == std::mem::size_of::<BlockQ8_0>());

pub(crate) const QK: usize = 32;
/// Output tile: activation rows × weight rows handed to one rayon task.
const TILE_M: usize = 32;
const TILE_N: usize = 64;
/// Up to this many activation rows (a decode step of up to eight answers) are quantized on the
/// calling thread: only the products are split between threads.
pub(crate) const FEW_ROWS: usize = 8;

/// `x` (…, k) times the Q8_0 weight `w` (n, k) transposed: (…, n); None when the kernel does
/// not apply (then candle's path gives the answer, or the error).
pub fn matmul(x: &Tensor, w: &QTensor) -> Result<Option<Tensor>> {
    if !available()
        || w.dtype() != GgmlDType::Q8_0
        || !x.device().is_cpu()
        || x.dtype() != DType::F32
        || !x.is_contiguous()
        || x.rank() < 2
    {
        return Ok(None);
    }
    let (n, k) = w.shape().dims2()?;
    let mut dims = x.dims().to_vec();
    if dims.last() != Some(&k) || k == 0 || k % QK != 0 || n % 4 != 0 {
        return Ok(None);
    }
    dims.pop();
    dims.push(n);
    let m = x.elem_count() / k;
    let nb = k / QK;
    let data = w.data()?;
    if data.len() != n * nb * std::mem::size_of::<Block>() {
        return Ok(None);
    }
    // The storage is a Vec<BlockQ8_0>: aligned for Block (same layout).
    let weights: &[Block] =
        unsafe { std::slice::from_raw_parts(data.as_ptr() as *const Block, n * nb) };

    let (guard, layout) = x.storage_and_layout();
    let xs: &[f32] = match &*guard {
        Storage::Cpu(cpu) => &cpu.as_slice::<f32>()?[layout.start_offset()..][..m * k],
        _ => return Ok(None),
    };
    // Activations quantized exactly as candle does, row by row: in parallel for a prompt, on
    // this thread for the few rows of a decode step (a parallel op of its own would cost more
    // than the work).
    let few = m <= FEW_ROWS;
    let mut acts = vec![BlockQ8_0::zeros(); m * nb];
    if few {
        acts.chunks_mut(nb)
            .zip(xs.chunks(k))
            .for_each(|(b, x)| BlockQ8_0::from_float(x, b));
    } else {
        acts.par_chunks_mut(nb)
            .zip(xs.par_chunks(k))
            .for_each(|(b, x)| BlockQ8_0::from_float(x, b));
    }
    drop(guard);
    let acts: &[Block] = unsafe { std::slice::from_raw_parts(acts.as_ptr() as *const Block, m * nb) };
    let act_scales: Vec<f32> = acts.iter().map(|b| b.d.to_f32()).collect();
    // promptloom: per activation block, minus 128 times the sum of each lane's four values
    // (the dot kernel multiplies weights shifted to unsigned, w + 128; see `dots`).
    let act_corr: Vec<[i32; 8]> = if few {
        acts.iter().map(|b| shifted_correction(&b.qs)).collect()
    } else {
        acts.par_iter().map(|b| shifted_correction(&b.qs)).collect()
    };

    let mut dst = vec![0f32; m * n];
    let out = SendPtr(dst.as_mut_ptr());
    // A decode step's few rows: about four column tiles per thread, whatever the width, so the
    // two halves of a small product (192 columns for k and v) are even; a prompt: 32 × 64.
    let tile_n = if few {
        (n / (4 * rayon::current_num_threads().max(1))).next_multiple_of(4).clamp(16, 256)
    } else {
        TILE_N
    };
    let by_row = few && wide() && BY_ROW.load(Ordering::Relaxed);
    let row_tiles = m.div_ceil(TILE_M);
    let col_tiles = n.div_ceil(tile_n);
    (0..row_tiles * col_tiles).into_par_iter().for_each(|t| {
        let (rt, ct) = (t / col_tiles, t % col_tiles);
        let (r0, r1) = (rt * TILE_M, ((rt + 1) * TILE_M).min(m));
        let (c0, c1) = (ct * tile_n, ((ct + 1) * tile_n).min(n));
        // Tiles write disjoint outputs.
        let out = &out;
        unsafe {
            tile(acts, &act_scales, &act_corr, weights, nb, n, (r0, r1), (c0, c1), out.0, by_row)
        };
    });
    Tensor::from_vec(dst, dims, x.device()).map(Some)
}

pub(crate) struct SendPtr(pub(crate) *mut f32);
unsafe impl Sync for SendPtr {}
unsafe impl Send for SendPtr {}

/// Outputs [r0, r1) × [c0, c1): groups of 4 weight rows against 4, then 1, activation rows;
/// or, `by_row`, each weight row against groups of up to 4 activation rows.
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    acts: &[Block],
    act_scales: &[f32],
    act_corr: &[[i32; 8]],
    weights: &[Block],
    nb: usize,
    n: usize,
    (r0, r1): (usize, usize),
    (c0, c1): (usize, usize),
    dst: *mut f32,
    by_row: bool,
) {
    let wide = wide();
    if by_row {
        // promptloom: a decode step's few rows, one weight row at a time (see `dots_row`).
        for c in c0..c1 {
            let mut r = r0;
            while r < r1 {
                let rows = (r1 - r).min(4);
                match rows {
                    4 => dots_row::<4>(acts, act_scales, act_corr, weights, nb, n, r, c, dst),
                    3 => dots_row::<3>(acts, act_scales, act_corr, weights, nb, n, r, c, dst),
                    2 => dots_row::<2>(acts, act_scales, act_corr, weights, nb, n, r, c, dst),
                    _ => dots_row::<1>(acts, act_scales, act_corr, weights, nb, n, r, c, dst),
                }
                r += rows;
            }
        }
        return;
    }
    let mut r = r0;
    while r < r1 {
        let rows = (r1 - r).min(4);
        let mut c = c0;
        while c < c1 {
            match (rows, wide) {
                (4, true) => dots::<4>(acts, act_scales, act_corr, weights, nb, n, r, c, dst),
                (3, true) => dots::<3>(acts, act_scales, act_corr, weights, nb, n, r, c, dst),
                (2, true) => dots::<2>(acts, act_scales, act_corr, weights, nb, n, r, c, dst),
                (_, true) => dots::<1>(acts, act_scales, act_corr, weights, nb, n, r, c, dst),
                (4, false) => dots256::<4>(acts, act_scales, weights, nb, n, r, c, dst),
                (3, false) => dots256::<3>(acts, act_scales, weights, nb, n, r, c, dst),
                (2, false) => dots256::<2>(acts, act_scales, weights, nb, n, r, c, dst),
                (_, false) => dots256::<1>(acts, act_scales, weights, nb, n, r, c, dst),
            }
            c += 4;
        }
        r += rows;
    }
}

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

/// candle's `hsum_float_8`, unchanged.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn hsum_float_8(x: __m256) -> f32 {
    let res = _mm256_extractf128_ps(x, 1);
    let res = _mm_add_ps(res, _mm256_castps256_ps128(x));
    let res = _mm_add_ps(res, _mm_movehl_ps(res, res));
    let res = _mm_add_ss(res, _mm_movehdup_ps(res));
    _mm_cvtss_f32(res)
}

/// `-128 · (qs[4l] + … + qs[4l + 3])` for each lane l: what `dots` adds to undo the shift of
/// the weights to unsigned values.
pub(crate) fn shifted_correction(qs: &[i8; 32]) -> [i32; 8] {
    let mut c = [0i32; 8];
    for (l, c) in c.iter_mut().enumerate() {
        *c = -128 * qs[4 * l..4 * l + 4].iter().map(|&v| v as i32).sum::<i32>();
    }
    c
}

/// The dot products of activation rows [r, r + A) with weight rows [c, c + 4).
///
/// promptloom (issue 12): two weight rows share one 512-bit register, one per half, so each
/// `vpdpbusd` computes the lane sums of two outputs. The integers are candle's: it computes
/// `Σ |w|·(y·sign w)` over each lane's four values; here the weights are shifted to unsigned
/// (`w + 128`, an xor of the sign bit) and the accumulator starts at `-128 Σ y`, so
/// `Σ (w + 128)·y − 128 Σ y = Σ w·y`, the same integer (no step saturates: at most
/// 4 · 255 · 127). Then, per half, the same conversion, the same f32 scale product and the
/// same fused multiply-add into the same 8-lane accumulator, block after block, and candle's
/// horizontal sum.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn dots<const A: usize>(
    acts: &[Block],
    act_scales: &[f32],
    act_corr: &[[i32; 8]],
    weights: &[Block],
    nb: usize,
    n: usize,
    r: usize,
    c: usize,
    dst: *mut f32,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; A];
    let sign = _mm512_set1_epi8(-128);
    for j in 0..nb {
        let mut u = [_mm512_setzero_si512(); 2];
        let mut dx = [_mm512_setzero_ps(); 2];
        for p in 0..2 {
            let lo = weights.get_unchecked((c + 2 * p) * nb + j);
            let hi = weights.get_unchecked((c + 2 * p + 1) * nb + j);
            let w = _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(_mm256_loadu_si256(lo.qs.as_ptr() as *const __m256i)),
                _mm256_loadu_si256(hi.qs.as_ptr() as *const __m256i),
            );
            u[p] = _mm512_xor_si512(w, sign);
            dx[p] = _mm512_castpd_ps(_mm512_insertf64x4::<1>(
                _mm512_castpd256_pd512(_mm256_castps_pd(_mm256_set1_ps(lo.d.to_f32()))),
                _mm256_castps_pd(_mm256_set1_ps(hi.d.to_f32())),
            ));
        }
        for a in 0..A {
            let at = (r + a) * nb + j;
            let y = acts.get_unchecked(at);
            let by = _mm512_broadcast_i64x4(_mm256_loadu_si256(y.qs.as_ptr() as *const __m256i));
            let corr = _mm512_broadcast_i64x4(_mm256_loadu_si256(
                act_corr.get_unchecked(at).as_ptr() as *const __m256i,
            ));
            let dy = _mm512_set1_ps(*act_scales.get_unchecked(at));
            for p in 0..2 {
                let q = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(corr, u[p], by));
                // candle: _mm256_set1_ps(f16::to_f32(x.d) * f16::to_f32(y.d)): the same product.
                let d = _mm512_mul_ps(dx[p], dy);
                acc[a][p] = _mm512_fmadd_ps(d, q, acc[a][p]);
            }
        }
    }
    for a in 0..A {
        for p in 0..2 {
            let lo = _mm512_castps512_ps256(acc[a][p]);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(acc[a][p])));
            *dst.add((r + a) * n + c + 2 * p) = hsum_float_8(lo);
            *dst.add((r + a) * n + c + 2 * p + 1) = hsum_float_8(hi);
        }
    }
}

/// The dot products of activation rows [r, r + A) with weight row c.
///
/// promptloom (issue 12): `dots` reads four weight rows side by side, block j of each, then
/// block j + 1: four streams 612 bytes apart, which this CPU's prefetchers serve at half the
/// rate of one row read straight through (an AMD EPYC, 2026-12-04: 6.7 against 16.5 GB/s on one
/// thread). Here one weight row is read in order, two blocks per 512-bit register, and each
/// activation row's two blocks beside them: one `vpdpbusd` gives both blocks' eight lane sums
/// (the same integers as `dots`, from the same shift and correction), then, block after block,
/// candle's scale (the f32 product of the two f16 scales) and fused multiply-add into that
/// output's 8-lane accumulator, and candle's horizontal sum: the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn dots_row<const A: usize>(
    acts: &[Block],
    act_scales: &[f32],
    act_corr: &[[i32; 8]],
    weights: &[Block],
    nb: usize,
    n: usize,
    r: usize,
    c: usize,
    dst: *mut f32,
) {
    let mut acc = [_mm256_setzero_ps(); A];
    let sign = _mm512_set1_epi8(-128);
    let row = c * nb;
    let load = |b: &Block| _mm256_loadu_si256(b.qs.as_ptr() as *const __m256i);
    let mut j = 0;
    while j + 2 <= nb {
        let (w0, w1) = (weights.get_unchecked(row + j), weights.get_unchecked(row + j + 1));
        let u = _mm512_xor_si512(
            _mm512_inserti64x4::<1>(_mm512_castsi256_si512(load(w0)), load(w1)),
            sign,
        );
        let (d0, d1) = (w0.d.to_f32(), w1.d.to_f32());
        for a in 0..A {
            let at = (r + a) * nb + j;
            let y = _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(load(acts.get_unchecked(at))),
                load(acts.get_unchecked(at + 1)),
            );
            // The corrections of blocks j and j + 1 lie side by side.
            let corr = _mm512_loadu_si512(act_corr.get_unchecked(at).as_ptr() as *const _);
            let q = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(corr, u, y));
            let q0 = _mm512_castps512_ps256(q);
            let q1 = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(q)));
            let s0 = _mm256_set1_ps(d0 * *act_scales.get_unchecked(at));
            acc[a] = _mm256_fmadd_ps(s0, q0, acc[a]);
            let s1 = _mm256_set1_ps(d1 * *act_scales.get_unchecked(at + 1));
            acc[a] = _mm256_fmadd_ps(s1, q1, acc[a]);
        }
        j += 2;
    }
    if j < nb {
        let w0 = weights.get_unchecked(row + j);
        let u = _mm512_xor_si512(_mm512_castsi256_si512(load(w0)), sign);
        let d0 = w0.d.to_f32();
        for a in 0..A {
            let at = (r + a) * nb + j;
            let y = _mm512_castsi256_si512(load(acts.get_unchecked(at)));
            let corr = _mm512_castsi256_si512(_mm256_loadu_si256(
                act_corr.get_unchecked(at).as_ptr() as *const __m256i,
            ));
            let q = _mm512_castps512_ps256(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(corr, u, y)));
            let s0 = _mm256_set1_ps(d0 * *act_scales.get_unchecked(at));
            acc[a] = _mm256_fmadd_ps(s0, q, acc[a]);
        }
    }
    for (a, acc) in acc.iter().enumerate() {
        *dst.add((r + a) * n + c) = hsum_float_8(*acc);
    }
}

/// `dots` as patch 7 had it: one 256-bit `vpdpbusd` per block and output, on candle's
/// `sign` of the values (`promptloom::set_q8_wide(false)`, for the bench's comparison).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512vnni,avx512vl")]
#[allow(clippy::too_many_arguments)]
unsafe fn dots256<const A: usize>(
    acts: &[Block],
    act_scales: &[f32],
    weights: &[Block],
    nb: usize,
    n: usize,
    r: usize,
    c: usize,
    dst: *mut f32,
) {
    let mut acc = [[_mm256_setzero_ps(); 4]; A];
    let zero = _mm256_setzero_si256();
    for j in 0..nb {
        let mut x = [zero; 4];
        let mut ax = [zero; 4];
        let mut dx = [_mm256_setzero_ps(); 4];
        for i in 0..4 {
            let b = weights.get_unchecked((c + i) * nb + j);
            x[i] = _mm256_loadu_si256(b.qs.as_ptr() as *const __m256i);
            ax[i] = _mm256_sign_epi8(x[i], x[i]);
            dx[i] = _mm256_set1_ps(b.d.to_f32());
        }
        for a in 0..A {
            let y = acts.get_unchecked((r + a) * nb + j);
            let by = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            let dy = _mm256_set1_ps(*act_scales.get_unchecked((r + a) * nb + j));
            for i in 0..4 {
                let sy = _mm256_sign_epi8(by, x[i]);
                let q = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(zero, ax[i], sy));
                // candle: _mm256_set1_ps(f16::to_f32(x.d) * f16::to_f32(y.d)): the same product.
                let d = _mm256_mul_ps(dx[i], dy);
                acc[a][i] = _mm256_fmadd_ps(d, q, acc[a][i]);
            }
        }
    }
    for a in 0..A {
        for i in 0..4 {
            *dst.add((r + a) * n + c + i) = hsum_float_8(acc[a][i]);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn dots<const A: usize>(
    _acts: &[Block],
    _act_scales: &[f32],
    _act_corr: &[[i32; 8]],
    _weights: &[Block],
    _nb: usize,
    _n: usize,
    _r: usize,
    _c: usize,
    _dst: *mut f32,
) {
    unreachable!("available() is false off x86_64")
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn dots_row<const A: usize>(
    _acts: &[Block],
    _act_scales: &[f32],
    _act_corr: &[[i32; 8]],
    _weights: &[Block],
    _nb: usize,
    _n: usize,
    _r: usize,
    _c: usize,
    _dst: *mut f32,
) {
    unreachable!("available() is false off x86_64")
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn dots256<const A: usize>(
    _acts: &[Block],
    _act_scales: &[f32],
    _weights: &[Block],
    _nb: usize,
    _n: usize,
    _r: usize,
    _c: usize,
    _dst: *mut f32,
) {
    unreachable!("available() is false off x86_64")
}
