//! promptloom (issue 12, patch 21): the Q8_0 product of a decode step's few rows, candle's
//! bits, with sixteen weight rows in the lanes of one register.
//!
//! candle's kernel, and patches 7, 12 and 17 after it, give every output and 32-value block
//! eight i32 lane sums (four products each), convert them to f32 and fuse-multiply-add them,
//! scaled, into that output's 8-lane accumulator, then add the eight lanes. Patch 17 does it
//! one output at a time, for up to four activation rows: per block and row a dot instruction,
//! a conversion, two broadcasts of the scale product, two multiply-adds of 256 bits, and the
//! bookkeeping between them; with four rows (four answers batched) that work, not memory,
//! bounded a step on a 2-core AVX-512 machine (a step of four rows cost 1.7-1.8x a step of
//! one).
//!
//! Here sixteen weight rows (outputs) sit in the lanes of a register, lane c holding four
//! bytes of output c's block: a `vpdpbusd` against four activation bytes broadcast gives that
//! lane sum for sixteen outputs, and the conversion, the scale (one multiply for sixteen) and
//! the multiply-add follow for sixteen at once, into eight accumulators (one per lane of
//! candle's) of sixteen outputs. candle's horizontal sum becomes three adds of whole
//! registers in its order. Every operation is candle's, on the same values, in the same order:
//! the same bits, whatever the number of rows.
//!
//! The repacked weight is a second copy, built the first time a weight meets a step of at
//! most eight rows, and only while the copies fit a quarter of the memory available then
//! (`reserve`); a weight without one keeps the kernels before this patch.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use candle_core::quantized::k_quants::{BlockQ8_0, GgmlType};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Result, Storage, Tensor};
use rayon::prelude::*;

use crate::promptloom_q8::{as_blocks, cpu_supported, shifted_correction, Block, SendPtr, QK};

/// Weight rows (outputs) per group: the 32-bit lanes of a 512-bit register.
const GROUP: usize = 16;
/// Bytes of one Q8_0 block (f16 scale and 32 values).
const BLOCK_BYTES: usize = std::mem::size_of::<Block>();

static ENABLED: AtomicBool = AtomicBool::new(true);
static PACKED_BUILT: AtomicUsize = AtomicUsize::new(0);
static PACKED_BYTES: AtomicUsize = AtomicUsize::new(0);
static PACK_MICROS: AtomicUsize = AtomicUsize::new(0);

/// Steps of few rows use this kernel (the default) or, with false, the kernels before patch
/// 21 (the same bits).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Weights repacked so far, and the bytes of those still held.
pub fn packed_built() -> (usize, usize) {
    (
        PACKED_BUILT.load(Ordering::Relaxed),
        PACKED_BYTES.load(Ordering::Relaxed),
    )
}

/// Microseconds spent repacking weights so far (all threads' wall time of `Packed::new`).
pub fn pack_micros() -> usize {
    PACK_MICROS.load(Ordering::Relaxed)
}

/// Whether the kernel runs here: switched on, patch 7's CPU support
/// (`promptloom_q8::cpu_supported`: candle built with AVX2, AVX-512 F, VL and VNNI), and
/// AVX-512 BW.
pub fn available() -> bool {
    ENABLED.load(Ordering::Relaxed) && cpu_supported() && {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512bw")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

/// What is left of the budget of repacked copies: a quarter of the memory available when the
/// first copy is made.
fn budget() -> &'static Mutex<usize> {
    static LEFT: OnceLock<Mutex<usize>> = OnceLock::new();
    LEFT.get_or_init(|| {
        let mut sys = sysinfo::System::new();
        sys.refresh_memory();
        Mutex::new((sys.available_memory() / 4) as usize)
    })
}

/// Takes `bytes` from the budget: false when they do not fit.
fn reserve(bytes: usize) -> bool {
    let Ok(mut left) = budget().lock() else {
        return false;
    };
    if *left < bytes {
        return false;
    }
    *left -= bytes;
    true
}

/// A Q8_0 weight (n, k) repacked for the decode kernel: its rows in groups of `GROUP`, a
/// group block after block, each block as the sixteen rows' f16 scales, then eight slices of
/// 64 bytes: slice `l` holds bytes `4l..4l + 4` of the block of each of the sixteen rows, one
/// row per 32-bit lane, shifted to unsigned (`v + 128`, for `vpdpbusd`). The copy takes the
/// bytes the GGUF layout takes, and a group's bytes are read in one stream.
pub struct Packed {
    n: usize,
    k: usize,
    data: Vec<u8>,
}

impl Packed {
    /// The repacked copy of `w`, or None when it is not a 2-D Q8_0 CPU weight of whole blocks
    /// and whole groups of rows, or does not fit the budget.
    pub fn new(w: &QTensor) -> Result<Option<Self>> {
        if w.dtype() != GgmlDType::Q8_0 || !w.device().is_cpu() || w.shape().dims().len() != 2
        {
            return Ok(None);
        }
        let (n, k) = w.shape().dims2()?;
        let nb = k / QK;
        let src = w.data()?;
        if k % QK != 0
            || n % GROUP != 0
            || src.len() != n * nb * BLOCK_BYTES
            || !reserve(src.len())
        {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let group = GROUP * nb * BLOCK_BYTES;
        let mut data = vec![0u8; src.len()];
        data.par_chunks_mut(group)
            .zip(src.par_chunks(group))
            .for_each(|(dst, src)| pack_group(src, dst, nb));
        PACKED_BUILT.fetch_add(1, Ordering::Relaxed);
        PACKED_BYTES.fetch_add(data.len(), Ordering::Relaxed);
        PACK_MICROS.fetch_add(started.elapsed().as_micros() as usize, Ordering::Relaxed);
        Ok(Some(Self { n, k, data }))
    }

    /// `x` (…, k) times the weight transposed: (…, n), candle's product bit for bit; None
    /// where the kernel does not apply (not f32 on the CPU, or another width).
    pub fn matmul(&self, x: &Tensor) -> Result<Option<Tensor>> {
        if !available()
            || !x.device().is_cpu()
            || x.dtype() != DType::F32
            || !x.is_contiguous()
            || x.dims().last() != Some(&self.k)
        {
            return Ok(None);
        }
        let (n, k) = (self.n, self.k);
        let m = x.elem_count() / k;
        let acts = {
            let (guard, layout) = x.storage_and_layout();
            let xs: &[f32] = match &*guard {
                Storage::Cpu(cpu) => &cpu.as_slice::<f32>()?[layout.start_offset()..][..m * k],
                _ => return Ok(None),
            };
            Acts::new(xs, m, k)
        };
        let mut dst = vec![0f32; m * n];
        let out = SendPtr(dst.as_mut_ptr());
        // About four tiles of row groups per thread.
        let groups = n / GROUP;
        let per_tile = (groups / (4 * rayon::current_num_threads().max(1))).clamp(1, 16);
        let tiles = groups.div_ceil(per_tile);
        (0..tiles).into_par_iter().for_each(|t| {
            let out = &out;
            for g in t * per_tile..((t + 1) * per_tile).min(groups) {
                // Tiles write disjoint outputs.
                unsafe { self.group(&acts, g, out.0) };
            }
        });
        let mut dims = x.dims().to_vec();
        dims.pop();
        dims.push(n);
        Tensor::from_vec(dst, dims, x.device()).map(Some)
    }

    /// The outputs of row group `g` for every activation row, two rows at a time (the group's
    /// bytes are read from memory once, then from the cache).
    unsafe fn group(&self, acts: &Acts, g: usize, dst: *mut f32) {
        let nb = self.k / QK;
        let bytes = GROUP * nb * BLOCK_BYTES;
        let w = self.data.as_ptr().add(g * bytes);
        let mut r = 0;
        while r < acts.m {
            if acts.m - r >= 2 {
                dots::<2>(w, nb, acts, r, g * GROUP, self.n, dst);
                r += 2;
            } else {
                dots::<1>(w, nb, acts, r, g * GROUP, self.n, dst);
                r += 1;
            }
        }
    }
}

impl Drop for Packed {
    /// A dropped model's copies go back to the budget.
    fn drop(&mut self) {
        if let Ok(mut left) = budget().lock() {
            *left += self.data.len();
        }
        PACKED_BYTES.fetch_sub(self.data.len(), Ordering::Relaxed);
    }
}

/// Sixteen weight rows from the GGUF layout (`src`, `nb` blocks each) into the packed one.
fn pack_group(src: &[u8], dst: &mut [u8], nb: usize) {
    let row = nb * BLOCK_BYTES;
    for j in 0..nb {
        let out = &mut dst[j * GROUP * BLOCK_BYTES..(j + 1) * GROUP * BLOCK_BYTES];
        let (scales, slices) = out.split_at_mut(2 * GROUP);
        for c in 0..GROUP {
            let block = &src[c * row + j * BLOCK_BYTES..c * row + (j + 1) * BLOCK_BYTES];
            scales[2 * c..2 * c + 2].copy_from_slice(&block[..2]);
            // Four bytes at a time, each shifted to unsigned (the XOR flips every sign bit).
            for (l, four) in block[2..].chunks_exact(4).enumerate() {
                let v = u32::from_le_bytes([four[0], four[1], four[2], four[3]]) ^ 0x8080_8080;
                slices[l * 64 + 4 * c..l * 64 + 4 * c + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
    }
}

/// A step's activation rows, quantized as candle quantizes them (`BlockQ8_0::from_float`):
/// per row and block, its f32 scale, its eight lanes of four values (as one i32 each, to
/// broadcast), and per lane `-128 ·` the lane's sum, which undoes the weights' shift.
struct Acts {
    m: usize,
    scales: Vec<f32>,
    ys: Vec<[i32; 8]>,
    corr: Vec<[i32; 8]>,
}

impl Acts {
    fn new(xs: &[f32], m: usize, k: usize) -> Self {
        let nb = k / QK;
        let mut a = Acts {
            m,
            scales: vec![0f32; m * nb],
            ys: vec![[0i32; 8]; m * nb],
            corr: vec![[0i32; 8]; m * nb],
        };
        let mut blocks = vec![BlockQ8_0::zeros(); nb];
        for (r, x) in xs.chunks(k).enumerate() {
            BlockQ8_0::from_float(x, &mut blocks);
            for (j, block) in as_blocks(&blocks).iter().enumerate() {
                let at = r * nb + j;
                a.scales[at] = block.d.to_f32();
                a.corr[at] = shifted_correction(&block.qs);
                for l in 0..8 {
                    let v = &block.qs[4 * l..4 * l + 4];
                    a.ys[at][l] = i32::from_le_bytes([v[0] as u8, v[1] as u8, v[2] as u8, v[3] as u8]);
                }
            }
        }
        a
    }
}

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

/// Outputs `c0..c0 + 16` of activation rows `r..r + A` against the packed row group `w`: per
/// output, candle's eight lanes (each lane's four products, exact in i32), converted to f32
/// and fused-multiply-added with candle's scale into that lane's accumulator, block after
/// block; then candle's horizontal sum of the eight lanes, in its order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dots<const A: usize>(
    w: *const u8,
    nb: usize,
    acts: &Acts,
    r: usize,
    c0: usize,
    n: usize,
    dst: *mut f32,
) {
    let mut acc = [[_mm512_setzero_ps(); 8]; A];
    for j in 0..nb {
        let base = w.add(j * GROUP * BLOCK_BYTES);
        let dw = _mm512_cvtph_ps(_mm256_loadu_si256(base as *const __m256i));
        let mut scale = [_mm512_setzero_ps(); A];
        for (a, scale) in scale.iter_mut().enumerate() {
            // candle: f16::to_f32(x.d) * f16::to_f32(y.d), the same product in each lane.
            *scale = _mm512_mul_ps(dw, _mm512_set1_ps(*acts.scales.get_unchecked((r + a) * nb + j)));
        }
        for l in 0..8 {
            let wl = _mm512_loadu_si512(base.add(2 * GROUP + 64 * l) as *const _);
            for a in 0..A {
                let at = (r + a) * nb + j;
                let sum = _mm512_dpbusd_epi32(
                    _mm512_set1_epi32(acts.corr.get_unchecked(at)[l]),
                    wl,
                    _mm512_set1_epi32(acts.ys.get_unchecked(at)[l]),
                );
                acc[a][l] = _mm512_fmadd_ps(scale[a], _mm512_cvtepi32_ps(sum), acc[a][l]);
            }
        }
    }
    for (a, acc) in acc.iter().enumerate() {
        // candle's hsum_float_8: ((x0 + x4) + (x2 + x6)) + ((x1 + x5) + (x3 + x7)).
        let t0 = _mm512_add_ps(acc[4], acc[0]);
        let t1 = _mm512_add_ps(acc[5], acc[1]);
        let t2 = _mm512_add_ps(acc[6], acc[2]);
        let t3 = _mm512_add_ps(acc[7], acc[3]);
        let s = _mm512_add_ps(_mm512_add_ps(t0, t2), _mm512_add_ps(t1, t3));
        _mm512_storeu_ps(dst.add((r + a) * n + c0), s);
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn dots<const A: usize>(
    _w: *const u8,
    _nb: usize,
    _acts: &Acts,
    _r: usize,
    _c0: usize,
    _n: usize,
    _dst: *mut f32,
) {
    unreachable!("available() is false off x86_64")
}

/// `x` (…, k) times the Q8_0 weight `w` (n, k) with this kernel, repacking `w` first (for the
/// tests); None where it does not apply.
pub fn matmul_repacked(x: &Tensor, w: &QTensor) -> Result<Option<Tensor>> {
    match Packed::new(w)? {
        Some(p) => p.matmul(x),
        None => Ok(None),
    }
}
