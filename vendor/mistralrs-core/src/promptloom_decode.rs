//! promptloom: the scores of decode attention, 16 keys at once (issue 12; `vendor/README.md`,
//! patch 14).
//!
//! `flash_attn_cpu_single_q` (every decode step on CPU) computes each score with
//! `vec_dot_f32`: one running sum per key, to which each chunk of four products is added in
//! turn. That is a chain of dependent scalar additions, so one key's score takes about as
//! many cycles as the head has dimensions times the latency of an add, and the kernel spends
//! most of its time waiting on it (2026-12-03, Intel Xeon: `vec_dot_f32` was 7% of a greedy
//! decode's samples at a context of ~100 keys, 12.5% with four answers in a batch, and its
//! share grows with the context: the playground's few-shot prompts are long).
//!
//! Here the 16 lanes of an AVX-512 register (8 of an AVX2 one, twice) are 16 keys of one
//! tile (the kernel's tiles are 16 keys), and every lane runs exactly its key's sequence:
//! the same products, the same sum of each chunk's four, added to the same running sum in
//! the same order (mul and add, never fused; the sum starts at +0.0), then the tail
//! products one by one. So each score is `vec_dot_f32`'s bit for bit, and 16 chains
//! advance at once. The 16 keys' rows (`stride` apart in the cache) are read a block of
//! dimensions at a time and transposed in registers, so a register holds one dimension of
//! every key.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

pub(crate) use crate::promptloom::DecodeScores;

/// Keys per call: the kernel's tile.
pub(crate) const KEYS: usize = 16;

static MODE: AtomicU8 = AtomicU8::new(1);
static TILES: AtomicUsize = AtomicUsize::new(0);

/// How decode attention computes its scores from now on.
pub fn set_mode(mode: DecodeScores) {
    let m = match mode {
        DecodeScores::KeyByKey => 0,
        DecodeScores::Lanes => 1,
        DecodeScores::Avx2Lanes => 2,
    };
    MODE.store(m, Ordering::Relaxed);
}

/// Tiles whose scores were computed in lanes so far (for the tests: the path ran).
pub fn tiles() -> usize {
    TILES.load(Ordering::Relaxed)
}

/// Count `n` more tiles computed in lanes (once per rayon task, not per tile: one shared
/// counter bumped by both threads per tile would bounce its cache line on the hot path).
pub(crate) fn count(n: usize) {
    if n > 0 {
        TILES.fetch_add(n, Ordering::Relaxed);
    }
}

/// Which instruction set computes the lanes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Lanes {
    Avx512,
    Avx2,
}

/// The instruction set the lanes use on this CPU with the default mode ("AVX-512", "AVX2"),
/// or None (then `vec_dot_f32` runs).
pub fn lanes_here() -> Option<&'static str> {
    best().map(|l| match l {
        Lanes::Avx512 => "AVX-512",
        Lanes::Avx2 => "AVX2",
    })
}

fn best() -> Option<Lanes> {
    if is_x86_feature_detected!("avx512f") {
        Some(Lanes::Avx512)
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("f16c") {
        Some(Lanes::Avx2)
    } else {
        None
    }
}

/// The lanes to use for this call: None when the mode is key by key, the CPU has neither
/// set.
pub(crate) fn usable() -> Option<Lanes> {
    match MODE.load(Ordering::Relaxed) {
        1 => best(),
        2 if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("f16c") => {
            Some(Lanes::Avx2)
        }
        _ => None,
    }
}

/// The element types of a cache the lanes read: f32 as it is; f16 and bf16 widened to f32,
/// exactly, as `vec_dot_f32` widens each element (`UpcastF32`: every f16 and bf16 value is an
/// f32 value), so the products and sums are the same.
///
/// The loads are inlined into `scores512` and `scores256`, whose target features they use.
pub(crate) trait LaneKey: Copy {
    /// `width` (1 to 16) elements from `p` into the low lanes, zeros above.
    unsafe fn load16(p: *const Self, width: usize) -> __m512;
    /// `width` (1 to 8) elements from `p` into the low lanes, zeros above.
    unsafe fn load8(p: *const Self, width: usize) -> __m256;
}

impl LaneKey for f32 {
    #[inline(always)]
    unsafe fn load16(p: *const f32, width: usize) -> __m512 {
        let valid: __mmask16 = if width == 16 { 0xffff } else { (1u16 << width) - 1 };
        _mm512_maskz_loadu_ps(valid, p)
    }
    #[inline(always)]
    unsafe fn load8(p: *const f32, width: usize) -> __m256 {
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(width as i32), lane))
    }
}

/// The 16-bit elements of a row, `width` of them, zero-padded to `N` (a part of a block:
/// only where the head size is not a multiple of the block).
#[inline(always)]
unsafe fn padded<const N: usize>(p: *const u16, width: usize) -> [u16; N] {
    let mut bits = [0u16; N];
    std::ptr::copy_nonoverlapping(p, bits.as_mut_ptr(), width);
    bits
}

impl LaneKey for half::f16 {
    #[inline(always)]
    unsafe fn load16(p: *const half::f16, width: usize) -> __m512 {
        if width == 16 {
            _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
        } else {
            let bits = padded::<16>(p as *const u16, width);
            _mm512_cvtph_ps(_mm256_loadu_si256(bits.as_ptr() as *const __m256i))
        }
    }
    #[inline(always)]
    unsafe fn load8(p: *const half::f16, width: usize) -> __m256 {
        if width == 8 {
            _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
        } else {
            let bits = padded::<8>(p as *const u16, width);
            _mm256_cvtph_ps(_mm_loadu_si128(bits.as_ptr() as *const __m128i))
        }
    }
}

impl LaneKey for half::bf16 {
    // A bf16 is the top half of its f32: widened by a shift.
    #[inline(always)]
    unsafe fn load16(p: *const half::bf16, width: usize) -> __m512 {
        let bits = if width == 16 {
            _mm256_loadu_si256(p as *const __m256i)
        } else {
            let bits = padded::<16>(p as *const u16, width);
            _mm256_loadu_si256(bits.as_ptr() as *const __m256i)
        };
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(bits)))
    }
    #[inline(always)]
    unsafe fn load8(p: *const half::bf16, width: usize) -> __m256 {
        let bits = if width == 8 {
            _mm_loadu_si128(p as *const __m128i)
        } else {
            let bits = padded::<8>(p as *const u16, width);
            _mm_loadu_si128(bits.as_ptr() as *const __m128i)
        };
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(bits)))
    }
}

/// `out[l] = vec_dot_f32(q, &k[l * stride..][..q.len()])` for the 16 keys l of a tile, bit
/// for bit, with `q` already widened to f32.
///
/// # Safety
/// `lanes` must be what [`usable`] returned, and
/// `k[15 * stride + q.len() - 1]` must be in bounds.
pub(crate) unsafe fn scores<T: LaneKey>(
    lanes: Lanes,
    q: &[f32],
    k: &[T],
    stride: usize,
) -> [f32; KEYS] {
    debug_assert!(k.len() >= (KEYS - 1) * stride + q.len());
    let mut out = [0f32; KEYS];
    match lanes {
        Lanes::Avx512 => scores512(q, k.as_ptr(), stride, &mut out),
        Lanes::Avx2 => {
            scores256(q, k.as_ptr(), stride, &mut out[..8]);
            scores256(q, k.as_ptr().add(8 * stride), stride, &mut out[8..]);
        }
    }
    out
}

/// The 16 keys' rows are read 16 dimensions at a time (16 loads) and transposed in registers
/// (64 shuffles), so each register holds one dimension of the 16 keys; then every lane adds
/// as `vec_dot_f32` does. (Gathers instead of the transpose were slower than the scalar
/// chain on the Xeon this was measured on.)
#[target_feature(enable = "avx512f")]
unsafe fn scores512<T: LaneKey>(q: &[f32], k: *const T, stride: usize, out: &mut [f32]) {
    let d = q.len();
    let chunks = d / 4;
    let mut sum = _mm512_setzero_ps();
    let mut col = [_mm512_setzero_ps(); 16];
    for block in 0..d.div_ceil(16) {
        let first = 16 * block;
        let width = (d - first).min(16);
        let mut rows = [_mm512_setzero_ps(); 16];
        for (key, row) in rows.iter_mut().enumerate() {
            *row = T::load16(k.add(key * stride + first), width);
        }
        transpose16(&rows, &mut col);
        let mul = |e: usize| _mm512_mul_ps(_mm512_set1_ps(*q.get_unchecked(first + e)), col[e]);
        // vec_dot_f32: sum += a0*b0 + a1*b1 + a2*b2 + a3*b3, left to right, chunk after
        // chunk; then the last d % 4 products one by one. Blocks of 16 hold whole chunks.
        let block_chunks = (chunks - 4 * block).min(4);
        for c in 0..block_chunks {
            let e = 4 * c;
            let part = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(mul(e), mul(e + 1)), mul(e + 2)), mul(e + 3));
            sum = _mm512_add_ps(sum, part);
        }
        for e in 4 * block_chunks..width {
            sum = _mm512_add_ps(sum, mul(e));
        }
    }
    _mm512_storeu_ps(out.as_mut_ptr(), sum);
}

/// `col[c]` lane `r` = `rows[r]` lane `c`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn transpose16(rows: &[__m512; 16], col: &mut [__m512; 16]) {
    // Within each 128-bit lane L: x[g][j] holds column 4L + j of rows 4g..4g + 3.
    let mut x = [[_mm512_setzero_ps(); 4]; 4];
    for g in 0..4 {
        let r = &rows[4 * g..4 * g + 4];
        let t0 = _mm512_unpacklo_ps(r[0], r[1]);
        let t1 = _mm512_unpackhi_ps(r[0], r[1]);
        let t2 = _mm512_unpacklo_ps(r[2], r[3]);
        let t3 = _mm512_unpackhi_ps(r[2], r[3]);
        x[g][0] = _mm512_shuffle_ps::<0x44>(t0, t2);
        x[g][1] = _mm512_shuffle_ps::<0xEE>(t0, t2);
        x[g][2] = _mm512_shuffle_ps::<0x44>(t1, t3);
        x[g][3] = _mm512_shuffle_ps::<0xEE>(t1, t3);
    }
    // Column 4L + j: lane L of x[0][j], x[1][j], x[2][j], x[3][j], in that order.
    for j in 0..4 {
        let y0 = _mm512_shuffle_f32x4::<0x44>(x[0][j], x[1][j]);
        let y1 = _mm512_shuffle_f32x4::<0xEE>(x[0][j], x[1][j]);
        let y2 = _mm512_shuffle_f32x4::<0x44>(x[2][j], x[3][j]);
        let y3 = _mm512_shuffle_f32x4::<0xEE>(x[2][j], x[3][j]);
        col[j] = _mm512_shuffle_f32x4::<0x88>(y0, y2);
        col[4 + j] = _mm512_shuffle_f32x4::<0xDD>(y0, y2);
        col[8 + j] = _mm512_shuffle_f32x4::<0x88>(y1, y3);
        col[12 + j] = _mm512_shuffle_f32x4::<0xDD>(y1, y3);
    }
}

/// `scores512` with 8 keys and 8 dimensions at a time (8 loads, 24 shuffles).
#[target_feature(enable = "avx2,f16c")]
unsafe fn scores256<T: LaneKey>(q: &[f32], k: *const T, stride: usize, out: &mut [f32]) {
    let d = q.len();
    let chunks = d / 4;
    let mut sum = _mm256_setzero_ps();
    for block in 0..d.div_ceil(8) {
        let first = 8 * block;
        let width = (d - first).min(8);
        let mut rows = [_mm256_setzero_ps(); 8];
        for (key, row) in rows.iter_mut().enumerate() {
            *row = T::load8(k.add(key * stride + first), width);
        }
        let col = transpose8(&rows);
        let mul = |e: usize| _mm256_mul_ps(_mm256_set1_ps(*q.get_unchecked(first + e)), col[e]);
        let block_chunks = (chunks - 2 * block).min(2);
        for c in 0..block_chunks {
            let e = 4 * c;
            let part = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(mul(e), mul(e + 1)), mul(e + 2)), mul(e + 3));
            sum = _mm256_add_ps(sum, part);
        }
        for e in 4 * block_chunks..width {
            sum = _mm256_add_ps(sum, mul(e));
        }
    }
    _mm256_storeu_ps(out.as_mut_ptr(), sum);
}

/// Column `c` lane `r` = `rows[r]` lane `c`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn transpose8(r: &[__m256; 8]) -> [__m256; 8] {
    let mut t = [_mm256_setzero_ps(); 8];
    for g in 0..2 {
        let (a, b, c, d) = (r[4 * g], r[4 * g + 1], r[4 * g + 2], r[4 * g + 3]);
        let (t0, t1) = (_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
        let (t2, t3) = (_mm256_unpacklo_ps(c, d), _mm256_unpackhi_ps(c, d));
        // Lane L of t[4g + j]: column 4L + j of rows 4g..4g + 3.
        t[4 * g] = _mm256_shuffle_ps::<0x44>(t0, t2);
        t[4 * g + 1] = _mm256_shuffle_ps::<0xEE>(t0, t2);
        t[4 * g + 2] = _mm256_shuffle_ps::<0x44>(t1, t3);
        t[4 * g + 3] = _mm256_shuffle_ps::<0xEE>(t1, t3);
    }
    let mut col = [_mm256_setzero_ps(); 8];
    for j in 0..4 {
        col[j] = _mm256_permute2f128_ps::<0x20>(t[j], t[4 + j]);
        col[4 + j] = _mm256_permute2f128_ps::<0x31>(t[j], t[4 + j]);
    }
    col
}
