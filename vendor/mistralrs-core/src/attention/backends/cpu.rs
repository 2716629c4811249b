#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

use candle_core::{Context, DType, Device, Result, Storage, Tensor, WithDType};

use half::bf16;
use half::f16;
use rayon::prelude::*;
use rayon::ThreadPool;

use std::sync::LazyLock;
use std::{f32, iter::Sum};

// Optional hardware prefetch for ping‑pong style scheduling.
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::_mm_prefetch;

// --- portable wrapper around architecture‑specific prefetch -------------
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn prefetch(addr: *const u8) {
    _mm_prefetch(addr as *const i8, core::arch::x86_64::_MM_HINT_T0);
}

#[cfg(target_arch = "aarch64")]
#[inline(always)]
unsafe fn prefetch(addr: *const u8) {
    core::arch::asm!(
        "prfm pldl1keep, [{0}]",
        in(reg) addr,
        options(readonly, nostack, preserves_flags)
    );
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
#[inline(always)]
unsafe fn prefetch(_addr: *const u8) {}
// -----------------------------------------------------------------------

use crate::attention::SdpaParams;

#[cfg(target_os = "macos")]
/// Elevate the thread QoS so macOS prefers running it on Performance (P) cores.
unsafe fn set_thread_affinity() {
    // USER_INTERACTIVE has the highest scheduling priority that user code
    // can request and is most likely to be scheduled on P‑cores.
    use libc::{pthread_set_qos_class_self_np, qos_class_t::QOS_CLASS_USER_INTERACTIVE};
    // The second argument is a relative priority within the QoS class (0 = default).
    pthread_set_qos_class_self_np(QOS_CLASS_USER_INTERACTIVE, 0);
}

#[cfg(not(target_os = "macos"))]
#[inline(always)]
unsafe fn set_thread_affinity() {
    // On non‑macOS platforms we currently leave affinity untouched.
}

/// Rayon pool used by the flash‑attention CPU kernels, with a per‑thread
/// start handler that applies our affinity hint exactly once.
static FLASH_ATTN_POOL: LazyLock<ThreadPool> = LazyLock::new(|| {
    rayon::ThreadPoolBuilder::new()
        .start_handler(|_| unsafe {
            set_thread_affinity();
        })
        .build()
        .expect("Failed to build custom Rayon thread‑pool for flash‑attention")
});

/// promptloom: where the attention kernels run their tiles. On the engine thread, which is a
/// worker of the engine's one pool (`crate::promptloom::engine_pool`), in place: the engine
/// thread works on its own tiles and no job crosses to another pool. Elsewhere (and with
/// `promptloom::set_engine_thread_in_pool(false)`), as in 0.8.1: on this module's own pool.
fn in_attention_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        f()
    } else {
        FLASH_ATTN_POOL.install(f)
    }
}

const DOT_CHUNK: usize = 4;

/// Size (in KV positions) processed by each inner‑tile job.
const TILE_KV: usize = 16;

/// Unrolled dot‑product that works purely in `f32`.
#[inline]
fn vec_dot_f32<T: UpcastF32 + Copy>(a: &[T], b: &[T]) -> f32 {
    let mut sum = 0f32;
    let chunks = a.len() / DOT_CHUNK;
    for i in 0..chunks {
        let i_chunk = i * DOT_CHUNK;
        sum += a[i_chunk].to_f32() * b[i_chunk].to_f32()
            + a[i_chunk + 1].to_f32() * b[i_chunk + 1].to_f32()
            + a[i_chunk + 2].to_f32() * b[i_chunk + 2].to_f32()
            + a[i_chunk + 3].to_f32() * b[i_chunk + 3].to_f32();
    }
    for i in (chunks * DOT_CHUNK)..a.len() {
        sum += a[i].to_f32() * b[i].to_f32();
    }
    sum
}

/// promptloom (patch 14): `vec_dot_f32(q, k[base + l * stride..][..q.len()])` for the 16
/// keys l of a full tile, computed in vector lanes (`crate::promptloom_decode`), bit for
/// bit, from an f32, f16 or bf16 cache (patch 18: the models' caches are f16 on the CPU),
/// with `q` widened to f32 as `vec_dot_f32` widens it; None (then the caller computes each
/// key's `vec_dot_f32`) for a partial tile, another type, or where the lanes do not run.
#[inline]
fn decode_scores<T: WithDType>(
    q: &[f32],
    k: &[T],
    base: usize,
    stride: usize,
    keys: usize,
) -> Option<[f32; TILE_KV]> {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::promptloom_decode::{scores, usable, KEYS};
        const _: () = assert!(KEYS == TILE_KV);
        if keys != TILE_KV {
            return None;
        }
        let lanes = usable()?;
        let span = (TILE_KV - 1) * stride + q.len();
        let k = k.get(base..base.checked_add(span)?)?;
        // Safety: T is the type its DTYPE names (candle's WithDType), the span is in bounds
        // and `lanes` is what `usable` returned.
        unsafe {
            let (ptr, len) = (k.as_ptr(), k.len());
            match T::DTYPE {
                DType::F32 => Some(scores(lanes, q, std::slice::from_raw_parts(ptr as *const f32, len), stride)),
                DType::F16 => Some(scores(lanes, q, std::slice::from_raw_parts(ptr as *const f16, len), stride)),
                DType::BF16 => Some(scores(lanes, q, std::slice::from_raw_parts(ptr as *const bf16, len), stride)),
                _ => None,
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (q, k, base, stride, keys);
        None
    }
}

/// promptloom (patch 14): count tiles whose scores `decode_scores` computed in lanes.
#[inline]
fn count_lane_tiles(n: usize) {
    #[cfg(target_arch = "x86_64")]
    crate::promptloom_decode::count(n);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = n;
}

#[inline]
fn clamp_index(idx: usize, dim: usize) -> usize {
    if dim == 0 {
        0
    } else if idx >= dim {
        dim - 1
    } else {
        idx
    }
}

#[inline]
fn mask_offset(
    dims: &[usize],
    b: usize,
    h: usize,
    b_i: usize,
    h_i: usize,
    q_pos: usize,
    kv_pos: usize,
) -> Option<usize> {
    if dims.is_empty() {
        return Some(0);
    }

    match dims.len() {
        1 => {
            let kv_dim = dims[0];
            if kv_dim == 0 {
                None
            } else {
                Some(clamp_index(kv_pos, kv_dim))
            }
        }
        2 => {
            let q_dim = dims[0];
            let kv_dim = dims[1];
            if q_dim == 0 || kv_dim == 0 {
                None
            } else {
                let q_idx = clamp_index(q_pos, q_dim);
                let kv_idx = clamp_index(kv_pos, kv_dim);
                Some(q_idx * kv_dim + kv_idx)
            }
        }
        3 => {
            let d0 = dims[0];
            let d1 = dims[1];
            let d2 = dims[2];
            if d0 == 0 || d1 == 0 || d2 == 0 {
                return None;
            }
            let q_idx = clamp_index(q_pos, d1);
            let kv_idx = clamp_index(kv_pos, d2);
            if d0 == b || d0 == 1 {
                let b_idx = if d0 == 1 { 0 } else { clamp_index(b_i, d0) };
                Some((b_idx * d1 + q_idx) * d2 + kv_idx)
            } else if d0 == h || d0 == 1 {
                let h_idx = if d0 == 1 { 0 } else { clamp_index(h_i, d0) };
                Some((h_idx * d1 + q_idx) * d2 + kv_idx)
            } else if d0 == b.saturating_mul(h) {
                let combined_idx = clamp_index(b_i * h + h_i, d0);
                Some((combined_idx * d1 + q_idx) * d2 + kv_idx)
            } else {
                Some(q_idx * d2 + kv_idx)
            }
        }
        4 => {
            let d0 = dims[0];
            let d1 = dims[1];
            let d2 = dims[2];
            let d3 = dims[3];
            if d0 == 0 || d1 == 0 || d2 == 0 || d3 == 0 {
                return None;
            }
            let b_idx = if d0 == 1 {
                0
            } else if d0 == b {
                clamp_index(b_i, d0)
            } else if d0 == b.saturating_mul(h) {
                clamp_index(b_i * h + h_i, d0)
            } else {
                clamp_index(b_i, d0)
            };
            let h_idx = if d1 == 1 {
                0
            } else if d1 == h {
                clamp_index(h_i, d1)
            } else if d1 == b {
                clamp_index(b_i, d1)
            } else {
                clamp_index(h_i, d1)
            };
            let q_idx = clamp_index(q_pos, d2);
            let kv_idx = clamp_index(kv_pos, d3);
            Some(((b_idx * d1 + h_idx) * d2 + q_idx) * d3 + kv_idx)
        }
        _ => {
            let q_dim = *dims.get(dims.len().saturating_sub(2))?;
            let kv_dim = *dims.last()?;
            if q_dim == 0 || kv_dim == 0 {
                return None;
            }
            let q_idx = clamp_index(q_pos, q_dim);
            let kv_idx = clamp_index(kv_pos, kv_dim);
            let mut prefix_dim = 1usize;
            for &dim in &dims[..dims.len() - 2] {
                if dim == 0 {
                    return None;
                }
                prefix_dim = prefix_dim.saturating_mul(dim);
            }
            let combined_idx = if prefix_dim == 0 {
                0
            } else {
                let idx_val = b_i * h + h_i;
                idx_val.min(prefix_dim - 1)
            };
            Some((combined_idx * q_dim + q_idx) * kv_dim + kv_idx)
        }
    }
}

struct MaskInfo<'a> {
    data: &'a [f32],
    dims: &'a [usize],
    b: usize,
    h: usize,
}

impl<'a> MaskInfo<'a> {
    #[inline]
    fn value(&self, b_i: usize, h_i: usize, q_pos: usize, kv_pos: usize) -> f32 {
        if let Some(idx) = mask_offset(self.dims, self.b, self.h, b_i, h_i, q_pos, kv_pos) {
            *self.data.get(idx).unwrap_or(&0.0)
        } else {
            0.0
        }
    }

    /// promptloom: the mask row of one (batch, head, query) row as a slice of the mask, when
    /// the mask holds every kv position (rank 1 to 4, last dim ≥ kv_len): what `row`
    /// gives, without a copy.
    fn row_in_place(&self, b_i: usize, h_i: usize, q_pos: usize, kv_len: usize) -> Option<&'a [f32]> {
        let rank = self.dims.len();
        if !(1..=4).contains(&rank) || self.dims[rank - 1] < kv_len {
            return None;
        }
        let base = mask_offset(self.dims, self.b, self.h, b_i, h_i, q_pos, 0)?;
        self.data.get(base..base + kv_len)
    }

    /// promptloom: `value` for every kv position of one (batch, head, query) row at once.
    /// For masks of rank 1 to 4, `mask_offset` is the offset of kv position 0 plus the
    /// clamped kv index, so the row is a slice; other ranks ask `value` per position.
    fn row(&self, b_i: usize, h_i: usize, q_pos: usize, kv_len: usize) -> Vec<f32> {
        let rank = self.dims.len();
        if (1..=4).contains(&rank) {
            let kv_dim = self.dims[rank - 1];
            match mask_offset(self.dims, self.b, self.h, b_i, h_i, q_pos, 0) {
                Some(base) => (0..kv_len)
                    .map(|kv| *self.data.get(base + clamp_index(kv, kv_dim)).unwrap_or(&0.0))
                    .collect(),
                None => vec![0.0; kv_len],
            }
        } else {
            (0..kv_len)
                .map(|kv| self.value(b_i, h_i, q_pos, kv))
                .collect()
        }
    }
}

pub(crate) trait DowncastF32 {
    fn cast(x: f32) -> Self;
}

impl DowncastF32 for f32 {
    fn cast(x: f32) -> Self {
        x
    }
}

impl DowncastF32 for f16 {
    fn cast(x: f32) -> Self {
        f16::from_f32(x)
    }
}

impl DowncastF32 for bf16 {
    fn cast(x: f32) -> Self {
        bf16::from_f32(x)
    }
}

/// Up‑cast helper: convert any supported element type to `f32` once so that the
/// hot kernels can run entirely in `f32` and only down‑cast when writing out.
pub trait UpcastF32 {
    fn to_f32(self) -> f32;
}

impl UpcastF32 for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl UpcastF32 for f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self.to_f32()
    }
}

impl UpcastF32 for bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self.to_f32()
    }
}

pub fn run_flash_attn_cpu<T>(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    sdpa_params: &SdpaParams,
) -> Result<Tensor>
where
    T: WithDType + Sum + num_traits::real::Real + DowncastF32 + UpcastF32 + Copy,
{
    // Inline CPU slice extraction for q, k, v, and optional mask
    let (q_guard, q_layout) = q.storage_and_layout();
    let q_data: &[T] = if let Storage::Cpu(cpu) = &*q_guard {
        let data = cpu.as_slice::<T>().context("Expected CPU storage for q")?;
        &data[q_layout.start_offset()..]
    } else {
        return Err(candle_core::Error::Msg("Expected CPU storage for q".into()));
    };
    let (k_guard, k_layout) = k.storage_and_layout();
    let k_data: &[T] = if let Storage::Cpu(cpu) = &*k_guard {
        let data = cpu.as_slice::<T>().context("Expected CPU storage for k")?;
        &data[k_layout.start_offset()..]
    } else {
        return Err(candle_core::Error::Msg("Expected CPU storage for k".into()));
    };
    let (v_guard, v_layout) = v.storage_and_layout();
    let v_data: &[T] = if let Storage::Cpu(cpu) = &*v_guard {
        let data = cpu.as_slice::<T>().context("Expected CPU storage for v")?;
        &data[v_layout.start_offset()..]
    } else {
        return Err(candle_core::Error::Msg("Expected CPU storage for v".into()));
    };
    let mut mask_buffer: Option<Vec<f32>> = None;
    let mut mask_dims: Option<Vec<usize>> = None;
    if let Some(mask_tensor) = mask {
        mask_dims = Some(mask_tensor.shape().dims().to_vec());
        let buffer = {
            let (guard, layout) = mask_tensor.storage_and_layout();
            if let Storage::Cpu(cpu) = &*guard {
                let data = cpu
                    .as_slice::<T>()
                    .context("Expected CPU storage for mask")?;
                data[layout.start_offset()..]
                    .iter()
                    .map(|v| (*v).to_f32())
                    .collect::<Vec<f32>>()
            } else {
                return Err(candle_core::Error::Msg(
                    "Expected CPU storage for mask".into(),
                ));
            }
        };
        mask_buffer = Some(buffer);
    }
    // q_guard, k_guard, v_guard, and m_guard (if any) are kept in scope to hold storage alive

    let q_stride = q.stride();
    let k_stride = k.stride();
    let v_stride = v.stride();

    // Fast path for decode: q_len == 1
    let mask_dims_ref = mask_dims.as_deref();
    let mask_slice = mask_buffer.as_deref();

    if q.shape().dims()[1] == 1 {
        return flash_attn_cpu_single_q(
            q_data,
            k_data,
            v_data,
            mask_slice,
            mask_dims_ref,
            q.shape().dims(),
            k.shape().dims(),
            v.shape().dims(),
            q_stride,
            k_stride,
            v_stride,
            sdpa_params.softmax_scale,
            0.0,
            sdpa_params.softcap.unwrap_or(0.0),
        );
    }

    // promptloom: the prompt kernel chosen by `set_prefill` (patches 8, 10 and 11).
    let prefill = match prefill_kernel().effective() {
        PrefillAttention::Original => None,
        PrefillAttention::Exact => Some(flash_attn_cpu_prefill::<T> as PrefillFn<T>),
        PrefillAttention::Tiled => Some(flash_attn_cpu_tiled::<T> as PrefillFn<T>),
        #[cfg(target_arch = "x86_64")]
        PrefillAttention::Lanes => Some(flash_attn_cpu_lanes::<T> as PrefillFn<T>),
        #[cfg(not(target_arch = "x86_64"))]
        PrefillAttention::Lanes => Some(flash_attn_cpu_prefill::<T> as PrefillFn<T>),
    };
    if let Some(prefill) = prefill {
        return prefill(
            q_data,
            k_data,
            v_data,
            mask_slice,
            mask_dims_ref,
            q.shape().dims(),
            k.shape().dims(),
            v.shape().dims(),
            q_stride,
            k_stride,
            v_stride,
            sdpa_params.softmax_scale,
            0.0,
            sdpa_params.softcap.unwrap_or(0.0),
        );
    }

    flash_attn_cpu(
        q_data,
        k_data,
        v_data,
        mask_slice,
        mask_dims_ref,
        q.shape().dims(),
        k.shape().dims(),
        v.shape().dims(),
        q_stride,
        k_stride,
        v_stride,
        sdpa_params.softmax_scale,
        0.0,
        sdpa_params.softcap.unwrap_or(0.0),
    )
}

/// Optimised path for the common decode case: q_len == 1 but kv_len ≫ 1.
/// All intermediate maths is done in `f32`; we down‑cast to `T` exactly once
/// when writing the output buffer.
#[allow(clippy::too_many_arguments)]
fn flash_attn_cpu_single_q<T>(
    q_data: &[T],
    k_data: &[T],
    v_data: &[T],
    mask_vec: Option<&[f32]>,
    mask_dims: Option<&[usize]>,
    qshape: &[usize],
    kshape: &[usize],
    vshape: &[usize],
    qstride: &[usize],
    kstride: &[usize],
    vstride: &[usize],
    scale: f32,
    max_bias: f32,
    logit_softcap: f32,
) -> Result<Tensor>
where
    T: WithDType + Copy + UpcastF32 + DowncastF32,
{
    let (b, _q_len, h, d) = (qshape[0], qshape[1], qshape[2], qshape[3]);
    let kv_len = kshape[1];
    let kv_tiles = kv_len.div_ceil(TILE_KV);
    let dv = d;

    // --- head tiling factors and softmax helper -----------------------
    let k_h = kshape[2];
    let v_h = vshape[2];
    let rk2 = h / k_h;
    let rv2 = h / v_h;
    let n2 = 2_usize.pow((h as f32).log2().ceil() as u32);

    // final output
    let mut out = vec![T::cast(0.0); b * h * dv];
    // scratch: [tile][b_i * h + h_i][dv] (flattened). promptloom: one slot per (batch row,
    // head); with a slot per head only, every batch row got the last row's result.
    let rows = b * h;
    let mut scratch = vec![0f32; kv_tiles * rows * dv];
    let mut scratch_s = vec![0f32; kv_tiles * rows]; // softmax S per tile
    let mut scratch_m = vec![f32::NEG_INFINITY; kv_tiles * rows];

    // Store as plain usize so the capture is Sync (raw *mut T is not Sync)
    let scratch_ptr = scratch.as_mut_ptr() as usize;
    let scratch_s_ptr = scratch_s.as_mut_ptr() as usize;
    let scratch_m_ptr = scratch_m.as_mut_ptr() as usize;

    let mask_info = match (mask_vec, mask_dims) {
        (Some(data), Some(dims)) => Some(MaskInfo { data, dims, b, h }),
        _ => None,
    };
    // promptloom (patch 13): a row whose mask starts with -inf (a left-padded row of a batch
    // of sequences of different lengths) starts at its first unmasked key, and its tiles are
    // counted from there: the same keys in the same tiles, so the same bits, as the row
    // alone. (0.8.1 ran the masked keys too, and a leading -inf key made the row NaN.)
    let first_key: Vec<usize> = (0..rows)
        .map(|row| {
            mask_info.as_ref().map_or(0, |mask| {
                (0..kv_len)
                    .take_while(|&kv| mask.value(row / h, row % h, 0, kv) == f32::NEG_INFINITY)
                    .count()
            })
        })
        .collect();

    // promptloom (patch 18): each (batch row, head)'s query widened to f32 once per call,
    // element by element as vec_dot_f32 widens it, for the lanes (`decode_scores`).
    let q_wide: Vec<f32> = (0..rows)
        .flat_map(|row| {
            let q_base = (row / h) * qstride[0] + (row % h) * qstride[2];
            q_data[q_base..q_base + d].iter().map(|x| x.to_f32())
        })
        .collect();

    in_attention_pool(|| {
        (0..kv_tiles).into_par_iter().for_each(|tile_idx| {
            let mut lane_tiles = 0;
            for b_i in 0..b {
                for h_i in 0..h {
                    let start = first_key[b_i * h + h_i] + tile_idx * TILE_KV;
                    if start >= kv_len {
                        continue;
                    }
                    let end = (start + TILE_KV).min(kv_len);
                    // Per‑head slope for ALiBi / NTK bias.
                    let slope = if max_bias > 0.0 {
                        2.0f32.powf(-max_bias * ((h_i + 1) as f32) / n2 as f32)
                    } else {
                        1.0
                    };
                    let k_head = h_i / rk2;
                    let v_head = h_i / rv2;

                    // pointers into scratch
                    let row = b_i * h + h_i;
                    let base_vk = ((tile_idx * rows + row) * dv) as isize;
                    let base_s = (tile_idx * rows + row) as isize;

                    let q_base = b_i * qstride[0] + h_i * qstride[2];
                    let q_row = &q_data[q_base..q_base + d];

                    // Re‑materialise the pointer from the captured usize.
                    let vkq: &mut [f32] = unsafe {
                        std::slice::from_raw_parts_mut(
                            (scratch_ptr as *mut f32).add(base_vk as usize),
                            dv,
                        )
                    };
                    let mut s = 0f32;
                    let mut m = f32::NEG_INFINITY;

                    // promptloom (patch 14): a full tile's 16 scores at once, each
                    // vec_dot_f32's bit for bit (f32 caches; others key by key as before).
                    let lane_scores = decode_scores(&q_wide[row * d..(row + 1) * d], k_data, b_i * kstride[0] + start * kstride[1] + k_head * kstride[2], kstride[1], end - start);
                    lane_tiles += usize::from(lane_scores.is_some());

                    for kv_pos in start..end {
                        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
                        {
                            // One‑step look‑ahead prefetch of the next K and V rows.
                            let next_pos = kv_pos + 1;
                            if next_pos < end {
                                let next_k_base =
                                    b_i * kstride[0] + next_pos * kstride[1] + k_head * kstride[2];
                                let next_v_base =
                                    b_i * vstride[0] + next_pos * vstride[1] + v_head * vstride[2];
                                unsafe {
                                    prefetch(k_data.as_ptr().add(next_k_base) as *const u8);
                                    prefetch(v_data.as_ptr().add(next_v_base) as *const u8);
                                }
                            }
                        }
                        // ---------- dot(Q,K) ----------
                        let dot = match &lane_scores {
                            Some(scores) => scores[kv_pos - start],
                            None => {
                                let k_base =
                                    b_i * kstride[0] + kv_pos * kstride[1] + k_head * kstride[2];
                                vec_dot_f32(q_row, &k_data[k_base..k_base + d])
                            }
                        };
                        let mut s_val = dot * scale;

                        if logit_softcap != 0.0 {
                            s_val = logit_softcap * (s_val / logit_softcap).tanh();
                        }
                        let mask_delta = mask_info
                            .as_ref()
                            .map(|mask| slope * mask.value(b_i, h_i, 0, kv_pos))
                            .unwrap_or(0.0);
                        s_val += mask_delta;

                        // -------- tile-local softmax ----------
                        let m_old = m;
                        let mut ms = 1.0;
                        let mut vs = 1.0;
                        if s_val > m {
                            m = s_val;
                            ms = (m_old - m).exp();
                            for v in vkq.iter_mut() {
                                *v *= ms;
                            }
                        } else {
                            vs = (s_val - m).exp();
                        }

                        // -------- add V ----------
                        // promptloom (patch 14): over the row's slice, so the loop has no
                        // bounds check per element and vectorises; the same mul and add
                        // per element.
                        let v_base = b_i * vstride[0] + kv_pos * vstride[1] + v_head * vstride[2];
                        let v_row = &v_data[v_base..v_base + dv];
                        for (acc, v) in vkq.iter_mut().zip(v_row) {
                            *acc += v.to_f32() * vs;
                        }

                        s = s * ms + vs;
                    }

                    unsafe {
                        *((scratch_s_ptr as *mut f32).add(base_s as usize)) = s;
                        *((scratch_m_ptr as *mut f32).add(base_s as usize)) = m;
                    }
                }
            }
            count_lane_tiles(lane_tiles);
        });
    });

    // -------- serial reduction over tiles (per head) --------
    for b_i in 0..b {
        for h_i in 0..h {
            let row = b_i * h + h_i;
            let out_off = row * dv;

            // start with tile 0
            let mut vkq = vec![0f32; dv];
            vkq.copy_from_slice(&scratch[(row * dv)..(row * dv + dv)]);
            let mut s = scratch_s[row];
            let mut m = scratch_m[row];

            for tile_idx in 1..(kv_len - first_key[row]).div_ceil(TILE_KV) {
                let base = (tile_idx * rows + row) * dv;
                let base_s = tile_idx * rows + row;

                let m_b = scratch_m[base_s];
                let s_b = scratch_s[base_s];
                let vkq_b = &scratch[base..base + dv];

                if m >= m_b {
                    let factor = (m_b - m).exp();
                    for (v, v_b) in vkq.iter_mut().zip(vkq_b) {
                        *v += v_b * factor;
                    }
                    s += s_b * factor;
                } else {
                    let factor = (m - m_b).exp();
                    for (v, v_a) in vkq.iter_mut().zip(vkq_b) {
                        *v = v_a + *v * factor;
                    }
                    s = s_b + s * factor;
                    m = m_b;
                }
            }

            let inv_s = 1.0 / s;
            for (o, v) in out[out_off..][..dv].iter_mut().zip(vkq.iter()) {
                *o = T::cast(*v * inv_s);
            }
        }
    }

    Tensor::from_vec(out, (b, h, 1, dv), &Device::Cpu)
}

/// Main forward flash-attention CPU routine.
/// Shapes follow Candle convention: (B, S, H, D)
#[allow(clippy::too_many_arguments)]
fn flash_attn_cpu<T>(
    q_data: &[T],
    k_data: &[T],
    v_data: &[T],
    mask_vec: Option<&[f32]>,
    mask_dims: Option<&[usize]>,
    qshape: &[usize],
    kshape: &[usize],
    vshape: &[usize],
    qstride: &[usize],
    kstride: &[usize],
    vstride: &[usize],
    scale: f32,
    max_bias: f32,
    logit_softcap: f32,
) -> Result<Tensor>
where
    T: WithDType + Copy + UpcastF32 + DowncastF32,
{
    let (b, q_len, h, d) = (qshape[0], qshape[1], qshape[2], qshape[3]);
    let kv_len = kshape[1];
    let k_h = kshape[2];
    let v_h = vshape[2];
    let rk2 = h / k_h;
    let rv2 = h / v_h;
    let dv = d;

    let n2 = 2_usize.pow((h as f32).log2().ceil() as u32);

    let mut out = vec![T::cast(0.0); b * q_len * h * dv];

    assert_eq!(qstride[3], 1, "q must have contiguous rows");
    assert_eq!(kstride[3], 1, "k must have contiguous rows");
    assert_eq!(vstride[3], 1, "v must have contiguous rows");

    let mask_info = match (mask_vec, mask_dims) {
        (Some(data), Some(dims)) => Some(MaskInfo { data, dims, b, h }),
        _ => None,
    };

    in_attention_pool(|| {
        out.par_chunks_mut(dv)
            .with_min_len(64)
            .enumerate()
            .for_each(|(row_idx, out_chunk)| {
                // Decode flat index back to (batch, head, q_pos)
                let rows_per_batch = h * q_len;
                let b_i = row_idx / rows_per_batch;
                let rem = row_idx % rows_per_batch;
                let h_i = rem / q_len;
                let q_pos = rem % q_len;

                let slope = if max_bias > 0.0 {
                    2.0f32.powf(-max_bias * ((h_i + 1) as f32) / n2 as f32)
                } else {
                    1.0
                };

                let k_head = h_i / rk2;
                let v_head = h_i / rv2;

                let mut vkq = vec![0f32; dv];
                let mut s = 0.0f32;
                let mut m = f32::NEG_INFINITY;

                // Q row
                let q_base = b_i * qstride[0] + q_pos * qstride[1] + h_i * qstride[2];
                let q_row = &q_data[q_base..q_base + d];

                for kv_pos in 0..kv_len {
                    // -------- ping‑pong prefetch of next KV row --------
                    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
                    {
                        let next_pos = kv_pos + 1;
                        if next_pos < kv_len {
                            let next_k_base =
                                b_i * kstride[0] + next_pos * kstride[1] + k_head * kstride[2];
                            let next_v_base =
                                b_i * vstride[0] + next_pos * vstride[1] + v_head * vstride[2];
                            unsafe {
                                prefetch(k_data.as_ptr().add(next_k_base) as *const u8);
                                prefetch(v_data.as_ptr().add(next_v_base) as *const u8);
                            }
                        }
                    }
                    // ----------------------------------------------------
                    // Mask (optional)
                    let mv = mask_info
                        .as_ref()
                        .map(|mask| slope * mask.value(b_i, h_i, q_pos, kv_pos))
                        .unwrap_or(0.0);
                    if mv == f32::NEG_INFINITY {
                        continue;
                    }

                    // K row
                    let k_base = b_i * kstride[0] + kv_pos * kstride[1] + k_head * kstride[2];
                    let k_row = &k_data[k_base..k_base + d];

                    // dot(Q, K)
                    let mut s_val = vec_dot_f32(q_row, k_row);
                    let mut scale_applied = scale;
                    if logit_softcap != 0.0 {
                        scale_applied /= logit_softcap;
                    }
                    s_val *= scale_applied;
                    if logit_softcap != 0.0 {
                        s_val = logit_softcap * s_val.tanh();
                    }
                    s_val += mv;

                    // online softmax
                    let m_old = m;
                    let mut ms = 1.0f32;
                    let mut vs = 1.0f32;
                    if s_val > m {
                        m = s_val;
                        ms = (m_old - m).exp();
                        for v in vkq.iter_mut() {
                            *v *= ms;
                        }
                    } else {
                        vs = (s_val - m).exp();
                    }

                    // V row (strided) as f32
                    let v_base = b_i * vstride[0] + kv_pos * vstride[1] + v_head * vstride[2];
                    for d_i in 0..dv {
                        vkq[d_i] += v_data[v_base + d_i].to_f32() * vs;
                    }

                    s = s * ms + vs;
                }

                // final normalisation + downcast
                let inv_s = 1.0 / s;
                for (o, v) in out_chunk.iter_mut().zip(vkq.iter()) {
                    *o = T::cast(*v * inv_s);
                }
            });
    });

    let out_shape = (b, h, q_len, dv);
    Tensor::from_vec(out, out_shape, &Device::Cpu)
}

/// promptloom: which kernel reads prompts (several query positions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefillAttention {
    /// 0.8.1's `flash_attn_cpu`.
    Original,
    /// `flash_attn_cpu_prefill` (patch 8, the default): 0.8.1's result bit for bit.
    Exact,
    /// `flash_attn_cpu_tiled` (patch 10, opt-in): tiles of query rows and key blocks, within
    /// 1e-5 (f32) of the others; with the f16 attention of the GGUF models its rounding
    /// differs, which flips near-tied greedy tokens (see `vendor/README.md`).
    Tiled,
    /// `flash_attn_cpu_lanes` (patch 11, the default): 0.8.1's result bit for bit, 16 query
    /// rows at once in the lanes of AVX-512 registers; `Exact` where the CPU has no AVX-512F
    /// or the C library's `expf` is not the one it reproduces.
    Lanes,
}

impl Default for PrefillAttention {
    fn default() -> Self {
        PrefillAttention::Lanes
    }
}

impl PrefillAttention {
    /// The kernel that runs when this one is chosen: `Lanes` falls back to `Exact` where it
    /// cannot run (see `Lanes`).
    pub fn effective(self) -> PrefillAttention {
        match self {
            PrefillAttention::Lanes if !lanes_available() => PrefillAttention::Exact,
            k => k,
        }
    }
}

fn lanes_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::promptloom_lanes::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

static PREFILL: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(3);

/// promptloom: choose the prompt-attention kernel for the calls that follow.
pub(crate) fn set_prefill(kernel: PrefillAttention) {
    let v = match kernel {
        PrefillAttention::Original => 0,
        PrefillAttention::Exact => 1,
        PrefillAttention::Tiled => 2,
        PrefillAttention::Lanes => 3,
    };
    PREFILL.store(v, std::sync::atomic::Ordering::Relaxed);
}

fn prefill_kernel() -> PrefillAttention {
    match PREFILL.load(std::sync::atomic::Ordering::Relaxed) {
        0 => PrefillAttention::Original,
        1 => PrefillAttention::Exact,
        2 => PrefillAttention::Tiled,
        _ => PrefillAttention::Lanes,
    }
}

/// promptloom: `x` (batch, len, heads, width, with strides `stride`, rows contiguous) as
/// f32 into `out`, one chunk of `chunk` values per (batch, head) in order: position `pos` of a
/// head at `pos * row` in its chunk (`row ≥ width`; what lies past `width` or past `len`
/// rows is left as it is). The prompt kernels' K and V, converted once per call.
#[allow(clippy::too_many_arguments)]
fn heads_as_f32<T: UpcastF32 + Copy + Send + Sync>(
    x: &[T],
    stride: &[usize],
    heads: usize,
    len: usize,
    width: usize,
    row: usize,
    chunk: usize,
    out: &mut [f32],
) {
    out.par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(bh, out)| {
            let (b_i, hi) = (bh / heads, bh % heads);
            for pos in 0..len {
                let base = b_i * stride[0] + pos * stride[1] + hi * stride[2];
                for (o, v) in out[pos * row..][..width].iter_mut().zip(&x[base..base + width]) {
                    *o = v.to_f32();
                }
            }
        });
}

/// promptloom: the mask rows of query rows `q0 .. q0 + n` of (batch `b_i`, head `h_i`) for
/// the kernels that take groups of rows: slices of the mask where it holds every key position,
/// else copies made into `owned` (`MaskInfo::row`); `zeros` without a mask. Rows past `n`
/// are None.
fn group_mask_rows<'a, const N: usize>(
    mask_info: Option<&MaskInfo<'a>>,
    zeros: &'a [f32],
    (b_i, h_i, q0, n, kv_len): (usize, usize, usize, usize, usize),
    owned: &'a mut [Option<Vec<f32>>; N],
) -> [Option<&'a [f32]>; N] {
    let mut in_place: [Option<&'a [f32]>; N] = [None; N];
    for r in 0..n {
        match mask_info {
            None => in_place[r] = Some(zeros),
            Some(mask) => match mask.row_in_place(b_i, h_i, q0 + r, kv_len) {
                Some(row) => in_place[r] = Some(row),
                None => owned[r] = Some(mask.row(b_i, h_i, q0 + r, kv_len)),
            },
        }
    }
    let owned: &'a [Option<Vec<f32>>; N] = owned;
    let mut rows: [Option<&'a [f32]>; N] = [None; N];
    for r in 0..n {
        rows[r] = in_place[r].or(owned[r].as_deref());
    }
    rows
}

/// Key positions scored together.
const LANES: usize = 8;

/// promptloom: `flash_attn_cpu` with the same result, bit for bit, in far fewer
/// instructions. Every score is still `vec_dot_f32(q, k)` (the same products, summed in the
/// same order) and every query row still runs the same online softmax over the key positions
/// in order; what changes:
/// - K and V are converted to f32 once per call (per kv head) instead of once per use (every
///   query row of every head sharing the kv head converted them again, element by element);
/// - K is laid out in blocks of 8 positions, transposed, so the 8 scores of a block are
///   computed side by side, one lane each, with the products and sums of each lane in the
///   order `vec_dot_f32` uses (vectorisable: the lanes are independent);
/// - the mask row is read once per query row, and a block whose 8 positions are all masked
///   is skipped without computing its scores (0.8.1 skipped those positions too, one by one,
///   after looking up the mask).
#[allow(clippy::too_many_arguments)]
fn flash_attn_cpu_prefill<T>(
    q_data: &[T],
    k_data: &[T],
    v_data: &[T],
    mask_vec: Option<&[f32]>,
    mask_dims: Option<&[usize]>,
    qshape: &[usize],
    kshape: &[usize],
    vshape: &[usize],
    qstride: &[usize],
    kstride: &[usize],
    vstride: &[usize],
    scale: f32,
    max_bias: f32,
    logit_softcap: f32,
) -> Result<Tensor>
where
    T: WithDType + Copy + UpcastF32 + DowncastF32,
{
    let (b, q_len, h, d) = (qshape[0], qshape[1], qshape[2], qshape[3]);
    let kv_len = kshape[1];
    let k_h = kshape[2];
    let v_h = vshape[2];
    let rk2 = h / k_h;
    let rv2 = h / v_h;
    let dv = d;

    let n2 = 2_usize.pow((h as f32).log2().ceil() as u32);

    let mut out = vec![T::cast(0.0); b * q_len * h * dv];

    assert_eq!(qstride[3], 1, "q must have contiguous rows");
    assert_eq!(kstride[3], 1, "k must have contiguous rows");
    assert_eq!(vstride[3], 1, "v must have contiguous rows");

    let mask_info = match (mask_vec, mask_dims) {
        (Some(data), Some(dims)) => Some(MaskInfo { data, dims, b, h }),
        _ => None,
    };

    let blocks = kv_len.div_ceil(LANES);
    // kt[(b_i * k_h + kh)][block][i][lane] = k[b_i, block * 8 + lane, kh, i] as f32.
    let kt_per_head = blocks * d * LANES;
    let mut kt = vec![0f32; b * k_h * kt_per_head];
    // vf[(b_i * v_h + vh)][pos][i] = v[b_i, pos, vh, i] as f32.
    let vf_per_head = kv_len * dv;
    let mut vf = vec![0f32; b * v_h * vf_per_head];

    in_attention_pool(|| {
        kt.par_chunks_mut(kt_per_head.max(1))
            .enumerate()
            .for_each(|(bh, kt)| {
                let (b_i, kh) = (bh / k_h, bh % k_h);
                for pos in 0..kv_len {
                    let base = b_i * kstride[0] + pos * kstride[1] + kh * kstride[2];
                    let (block, lane) = (pos / LANES, pos % LANES);
                    for i in 0..d {
                        kt[(block * d + i) * LANES + lane] = k_data[base + i].to_f32();
                    }
                }
            });
        heads_as_f32(v_data, vstride, v_h, kv_len, dv, dv, vf_per_head, &mut vf);

        let (kt, vf) = (&kt, &vf);
        out.par_chunks_mut(dv)
            .with_min_len(64)
            .enumerate()
            .for_each(|(row_idx, out_chunk)| {
                let rows_per_batch = h * q_len;
                let b_i = row_idx / rows_per_batch;
                let rem = row_idx % rows_per_batch;
                let h_i = rem / q_len;
                let q_pos = rem % q_len;

                let slope = if max_bias > 0.0 {
                    2.0f32.powf(-max_bias * ((h_i + 1) as f32) / n2 as f32)
                } else {
                    1.0
                };

                let k_head = h_i / rk2;
                let v_head = h_i / rv2;
                let kt = &kt[(b_i * k_h + k_head) * kt_per_head..][..kt_per_head];
                let vf = &vf[(b_i * v_h + v_head) * vf_per_head..][..vf_per_head];

                let q_base = b_i * qstride[0] + q_pos * qstride[1] + h_i * qstride[2];
                let q: Vec<f32> = q_data[q_base..q_base + d]
                    .iter()
                    .map(|x| (*x).to_f32())
                    .collect();
                // The mask term of every position, as 0.8.1 computes it.
                let mv: Vec<f32> = match &mask_info {
                    Some(mask) => mask
                        .row(b_i, h_i, q_pos, kv_len)
                        .into_iter()
                        .map(|m| slope * m)
                        .collect(),
                    None => vec![0.0; kv_len],
                };

                let mut vkq = vec![0f32; dv];
                let mut s = 0.0f32;
                let mut m = f32::NEG_INFINITY;
                let chunks = d / DOT_CHUNK;

                for block in 0..blocks {
                    let first = block * LANES;
                    let n = (kv_len - first).min(LANES);
                    let mvb = &mv[first..first + n];
                    if mvb.iter().all(|&x| x == f32::NEG_INFINITY) {
                        continue;
                    }
                    let kb = &kt[block * d * LANES..][..d * LANES];
                    // vec_dot_f32, lane by lane.
                    let mut dot = [0f32; LANES];
                    for c in 0..chunks {
                        let i = c * DOT_CHUNK;
                        let (k0, k1, k2, k3) = (
                            &kb[i * LANES..][..LANES],
                            &kb[(i + 1) * LANES..][..LANES],
                            &kb[(i + 2) * LANES..][..LANES],
                            &kb[(i + 3) * LANES..][..LANES],
                        );
                        for l in 0..LANES {
                            dot[l] += q[i] * k0[l]
                                + q[i + 1] * k1[l]
                                + q[i + 2] * k2[l]
                                + q[i + 3] * k3[l];
                        }
                    }
                    for i in (chunks * DOT_CHUNK)..d {
                        let ki = &kb[i * LANES..][..LANES];
                        for l in 0..LANES {
                            dot[l] += q[i] * ki[l];
                        }
                    }

                    for l in 0..n {
                        let kv_pos = first + l;
                        let mv = mvb[l];
                        if mv == f32::NEG_INFINITY {
                            continue;
                        }
                        let mut s_val = dot[l];
                        let mut scale_applied = scale;
                        if logit_softcap != 0.0 {
                            scale_applied /= logit_softcap;
                        }
                        s_val *= scale_applied;
                        if logit_softcap != 0.0 {
                            s_val = logit_softcap * s_val.tanh();
                        }
                        s_val += mv;

                        // online softmax
                        let m_old = m;
                        let mut ms = 1.0f32;
                        let mut vs = 1.0f32;
                        if s_val > m {
                            m = s_val;
                            ms = (m_old - m).exp();
                            for v in vkq.iter_mut() {
                                *v *= ms;
                            }
                        } else {
                            vs = (s_val - m).exp();
                        }

                        let v_row = &vf[kv_pos * dv..][..dv];
                        for (acc, &v) in vkq.iter_mut().zip(v_row) {
                            *acc += v * vs;
                        }

                        s = s * ms + vs;
                    }
                }

                // final normalisation + downcast
                let inv_s = 1.0 / s;
                for (o, v) in out_chunk.iter_mut().zip(vkq.iter()) {
                    *o = T::cast(*v * inv_s);
                }
            });
    });

    let out_shape = (b, h, q_len, dv);
    Tensor::from_vec(out, out_shape, &Device::Cpu)
}

/// promptloom: the signature the prompt kernels share.
type PrefillFn<T> = fn(
    &[T],
    &[T],
    &[T],
    Option<&[f32]>,
    Option<&[usize]>,
    &[usize],
    &[usize],
    &[usize],
    &[usize],
    &[usize],
    &[usize],
    f32,
    f32,
    f32,
) -> Result<Tensor>;

/// promptloom: query rows per work item of `flash_attn_cpu_tiled`.
const TILE_ROWS: usize = 32;

/// promptloom (patch 10): prompt attention in tiles, `crate::promptloom_attn::attend` on
/// groups of query rows of one head. K and V are converted to f32 once per call and kv head
/// (K packed in key blocks, V padded to whole register tiles); mask rows are read in place
/// where the mask holds every key position.
#[allow(clippy::too_many_arguments)]
fn flash_attn_cpu_tiled<T>(
    q_data: &[T],
    k_data: &[T],
    v_data: &[T],
    mask_vec: Option<&[f32]>,
    mask_dims: Option<&[usize]>,
    qshape: &[usize],
    kshape: &[usize],
    vshape: &[usize],
    qstride: &[usize],
    kstride: &[usize],
    vstride: &[usize],
    scale: f32,
    max_bias: f32,
    logit_softcap: f32,
) -> Result<Tensor>
where
    T: WithDType + Copy + UpcastF32 + DowncastF32,
{
    use crate::promptloom_attn::{attend, pack_k, KB, RG, W};

    let (b, q_len, h, d) = (qshape[0], qshape[1], qshape[2], qshape[3]);
    let kv_len = kshape[1];
    let k_h = kshape[2];
    let v_h = vshape[2];
    let rk2 = h / k_h;
    let rv2 = h / v_h;
    let dv = vshape[3];
    let dvp = dv.div_ceil(W) * W;
    let n2 = 2_usize.pow((h as f32).log2().ceil() as u32);

    assert_eq!(qstride[3], 1, "q must have contiguous rows");
    assert_eq!(kstride[3], 1, "k must have contiguous rows");
    assert_eq!(vstride[3], 1, "v must have contiguous rows");

    let mask_info = match (mask_vec, mask_dims) {
        (Some(data), Some(dims)) => Some(MaskInfo { data, dims, b, h }),
        _ => None,
    };
    let zeros = vec![0f32; kv_len];

    let blocks = kv_len.div_ceil(KB);
    let kt_per_head = blocks * d * KB;
    let mut kt = vec![0f32; b * k_h * kt_per_head];
    let vf_per_head = blocks * KB * dvp;
    let mut vf = vec![0f32; b * v_h * vf_per_head];
    let mut out = vec![T::cast(0.0); b * h * q_len * dv];

    in_attention_pool(|| {
        kt.par_chunks_mut(kt_per_head.max(1))
            .enumerate()
            .for_each(|(bh, kt)| {
                let (b_i, kh) = (bh / k_h, bh % k_h);
                let base = b_i * kstride[0] + kh * kstride[2];
                pack_k(
                    |pos, i| k_data[base + pos * kstride[1] + i].to_f32(),
                    kv_len,
                    d,
                    kt,
                );
            });
        heads_as_f32(v_data, vstride, v_h, kv_len, dv, dvp, vf_per_head, &mut vf);

        let (kt, vf, zeros) = (&kt, &vf, &zeros);
        let mask_info = &mask_info;
        // out: (b, h, q_len, dv); one chunk per (batch, head), tiles of TILE_ROWS rows in it.
        out.par_chunks_mut((q_len * dv).max(1))
            .enumerate()
            .for_each(|(bh, out_head)| {
                let (b_i, h_i) = (bh / h, bh % h);
                let slope = if max_bias > 0.0 {
                    2.0f32.powf(-max_bias * ((h_i + 1) as f32) / n2 as f32)
                } else {
                    1.0
                };
                let kt = &kt[(b_i * k_h + h_i / rk2) * kt_per_head..][..kt_per_head];
                let vf = &vf[(b_i * v_h + h_i / rv2) * vf_per_head..][..vf_per_head];
                out_head
                    .par_chunks_mut(TILE_ROWS * dv)
                    .enumerate()
                    .for_each(|(tile, out_tile)| {
                        let r0 = tile * TILE_ROWS;
                        let rows = out_tile.len() / dv;
                        let mut qb = vec![0f32; RG * d];
                        let mut ob = vec![0f32; RG * dvp];
                        for g in (0..rows).step_by(RG) {
                            let n = (rows - g).min(RG);
                            qb.fill(0.0);
                            for r in 0..n {
                                let q_pos = r0 + g + r;
                                let q_base =
                                    b_i * qstride[0] + q_pos * qstride[1] + h_i * qstride[2];
                                for (o, x) in qb[r * d..][..d].iter_mut().zip(&q_data[q_base..q_base + d]) {
                                    *o = x.to_f32();
                                }
                            }
                            let mut owned: [Option<Vec<f32>>; RG] = Default::default();
                            let rows_mask = group_mask_rows(
                                mask_info.as_ref(),
                                zeros,
                                (b_i, h_i, r0 + g, n, kv_len),
                                &mut owned,
                            );
                            attend(
                                &qb, d, kt, vf, dvp, kv_len, rows_mask, slope, scale,
                                logit_softcap, &mut ob,
                            );
                            for r in 0..n {
                                for (o, x) in out_tile[(g + r) * dv..][..dv].iter_mut().zip(&ob[r * dvp..][..dv]) {
                                    *o = T::cast(*x);
                                }
                            }
                        }
                    });
            });
    });

    let out_shape = (b, h, q_len, dv);
    Tensor::from_vec(out, out_shape, &Device::Cpu)
}

/// promptloom (patch 11): `flash_attn_cpu` with the same result, bit for bit, 16 query rows
/// of one head at a time as the lanes of AVX-512 registers (`crate::promptloom_lanes::attend`:
/// each lane runs its row's exact sequence). K and V are converted to f32 once per call and
/// kv head (V padded to whole register blocks); mask rows are read in place where the mask
/// holds every key position. Runs only where `promptloom_lanes::available()`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn flash_attn_cpu_lanes<T>(
    q_data: &[T],
    k_data: &[T],
    v_data: &[T],
    mask_vec: Option<&[f32]>,
    mask_dims: Option<&[usize]>,
    qshape: &[usize],
    kshape: &[usize],
    vshape: &[usize],
    qstride: &[usize],
    kstride: &[usize],
    vstride: &[usize],
    scale: f32,
    max_bias: f32,
    logit_softcap: f32,
) -> Result<Tensor>
where
    T: WithDType + Copy + UpcastF32 + DowncastF32,
{
    use crate::promptloom_lanes::{attend, DC, L};

    let (b, q_len, h, d) = (qshape[0], qshape[1], qshape[2], qshape[3]);
    let kv_len = kshape[1];
    let k_h = kshape[2];
    let v_h = vshape[2];
    let rk2 = h / k_h;
    let rv2 = h / v_h;
    // As flash_attn_cpu: values have the head dim of the queries.
    let dv = d;
    let dvp = dv.div_ceil(DC) * DC;
    let n2 = 2_usize.pow((h as f32).log2().ceil() as u32);

    assert_eq!(qstride[3], 1, "q must have contiguous rows");
    assert_eq!(kstride[3], 1, "k must have contiguous rows");
    assert_eq!(vstride[3], 1, "v must have contiguous rows");

    let mask_info = match (mask_vec, mask_dims) {
        (Some(data), Some(dims)) => Some(MaskInfo { data, dims, b, h }),
        _ => None,
    };
    let zeros = vec![0f32; kv_len];

    // kf[(b_i * k_h + kh)][pos][i], vf[(b_i * v_h + vh)][pos][i] (dvp wide), as f32.
    let kf_per_head = kv_len * d;
    let mut kf = vec![0f32; b * k_h * kf_per_head];
    let vf_per_head = kv_len * dvp;
    let mut vf = vec![0f32; b * v_h * vf_per_head];
    let mut out = vec![T::cast(0.0); b * h * q_len * dv];

    in_attention_pool(|| {
        heads_as_f32(k_data, kstride, k_h, kv_len, d, d, kf_per_head, &mut kf);
        heads_as_f32(v_data, vstride, v_h, kv_len, dv, dvp, vf_per_head, &mut vf);

        let (kf, vf, zeros) = (&kf, &vf, &zeros);
        let mask_info = &mask_info;
        // out: (b, h, q_len, dv); one chunk per (batch, head), groups of L rows in it.
        out.par_chunks_mut((q_len * dv).max(1))
            .enumerate()
            .for_each(|(bh, out_head)| {
                let (b_i, h_i) = (bh / h, bh % h);
                let slope = if max_bias > 0.0 {
                    2.0f32.powf(-max_bias * ((h_i + 1) as f32) / n2 as f32)
                } else {
                    1.0
                };
                let kf = &kf[(b_i * k_h + h_i / rk2) * kf_per_head..][..kf_per_head];
                let vf = &vf[(b_i * v_h + h_i / rv2) * vf_per_head..][..vf_per_head];
                out_head
                    .par_chunks_mut(L * dv)
                    .enumerate()
                    .for_each(|(group, out_group)| {
                        let r0 = group * L;
                        let n = out_group.len() / dv;
                        let mut qb = vec![0f32; L * d];
                        for r in 0..n {
                            let q_pos = r0 + r;
                            let q_base = b_i * qstride[0] + q_pos * qstride[1] + h_i * qstride[2];
                            for (o, x) in qb[r * d..][..d].iter_mut().zip(&q_data[q_base..q_base + d]) {
                                *o = x.to_f32();
                            }
                        }
                        let mut owned: [Option<Vec<f32>>; L] = Default::default();
                        let rows = group_mask_rows(
                            mask_info.as_ref(),
                            zeros,
                            (b_i, h_i, r0, n, kv_len),
                            &mut owned,
                        );
                        let mut ob = vec![0f32; L * dvp];
                        // Safety: runs only where `promptloom_lanes::available()` (AVX-512F).
                        unsafe {
                            attend(
                                &qb, d, kf, vf, dvp, kv_len, &rows, slope, scale, logit_softcap,
                                &mut ob,
                            );
                        }
                        for r in 0..n {
                            for (o, x) in out_group[r * dv..][..dv].iter_mut().zip(&ob[r * dvp..][..dv]) {
                                *o = T::cast(*x);
                            }
                        }
                    });
            });
    });

    let out_shape = (b, h, q_len, dv);
    Tensor::from_vec(out, out_shape, &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::SdpaParams;
    use candle_core::{Device, Tensor, D};
    use candle_nn::ops::softmax;

    use candle_core::Result as CandleResult;

    const EPS: f32 = 1e-4;

    #[test]
    fn test_flash_attn_cpu_single_q() -> CandleResult<()> {
        // Test for q_len == 1 (single Q)
        let b = 1;
        let h = 2;
        let d = 4;
        let kv_len = 2;

        // Create q with shape (b, 1, h, d) filled with ones
        let q_vec = vec![1.0f32; b * h * d];
        let q = Tensor::from_vec(q_vec.clone(), (b, 1, h, d), &Device::Cpu)?;

        // Create k and v with shape (b, kv_len, h, d) filled with ones
        let k_vec = vec![1.0f32; b * kv_len * h * d];
        let v_vec = vec![1.0f32; b * kv_len * h * d];
        let k = Tensor::from_vec(k_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;
        let v = Tensor::from_vec(v_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;

        // SDPA parameters: scale = 1.0, no softcap
        let sdpa = SdpaParams {
            softmax_scale: 1.0,
            softcap: None,
            n_kv_groups: 1,
            sliding_window: None,
            sinks: None,
        };
        let scale = sdpa.softmax_scale;

        // Run the flash attention CPU function
        let out = run_flash_attn_cpu::<f32>(&q, &k, &v, None, &sdpa)?;
        // Expect output shape (b, h, 1, d)
        assert_eq!(out.shape().dims(), &[b, h, 1, d]);

        // Naive attention
        let q_perm = q.clone().permute((0, 2, 1, 3))?;
        let k_perm = k.clone().permute((0, 2, 1, 3))?;
        let v_perm = v.clone().permute((0, 2, 1, 3))?;

        let q_resh = q_perm.reshape(&[b * h, 1, d])?;
        let k_resh = k_perm.reshape(&[b * h, kv_len, d])?;
        let v_resh = v_perm.reshape(&[b * h, kv_len, d])?;

        let logits = (q_resh.matmul(&k_resh.transpose(1, 2)?)? * scale as f64)?;
        let weights = softmax(&logits, D::Minus1)?;

        let attn_out = weights.matmul(&v_resh)?;

        let naive_out = attn_out.reshape(&[b, h, 1, d])?;

        let flash_data = out.flatten_all()?.to_vec1::<f32>()?;
        let naive_data = naive_out.flatten_all()?.to_vec1::<f32>()?;
        for (f_val, n_val) in flash_data.iter().zip(naive_data.iter()) {
            assert!((f_val - n_val).abs() < EPS);
        }

        Ok(())
    }

    #[test]
    fn test_flash_attn_cpu_full_q() -> CandleResult<()> {
        // Test for q_len > 1 (full Q)
        let b = 1;
        let q_len = 2;
        let h = 2;
        let d = 4;
        let kv_len = 2;

        // Create q with shape (b, q_len, h, d) filled with ones
        let q_vec = vec![1.0f32; b * q_len * h * d];
        let q = Tensor::from_vec(q_vec.clone(), (b, q_len, h, d), &Device::Cpu)?;

        // Create k and v with shape (b, kv_len, h, d) filled with ones
        let k_vec = vec![1.0f32; b * kv_len * h * d];
        let v_vec = vec![1.0f32; b * kv_len * h * d];
        let k = Tensor::from_vec(k_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;
        let v = Tensor::from_vec(v_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;

        // SDPA parameters: scale = 1.0, no softcap
        let sdpa = SdpaParams {
            softmax_scale: 1.0,
            softcap: None,
            n_kv_groups: 1,
            sliding_window: None,
            sinks: None,
        };
        let scale = sdpa.softmax_scale;

        // Run the flash attention CPU function
        let out = run_flash_attn_cpu::<f32>(&q, &k, &v, None, &sdpa)?;
        // Expect output shape (b, h, q_len, d)
        assert_eq!(out.shape().dims(), &[b, h, q_len, d]);

        // Naive attention
        let q_perm = q.clone().permute((0, 2, 1, 3))?;
        let k_perm = k.clone().permute((0, 2, 1, 3))?;
        let v_perm = v.clone().permute((0, 2, 1, 3))?;

        let q_resh = q_perm.reshape(&[b * h, q_len, d])?;
        let k_resh = k_perm.reshape(&[b * h, kv_len, d])?;
        let v_resh = v_perm.reshape(&[b * h, kv_len, d])?;

        let logits = (q_resh.matmul(&k_resh.transpose(1, 2)?)? * scale as f64)?;
        let weights = softmax(&logits, D::Minus1)?;

        let attn_out = weights.matmul(&v_resh)?;

        let naive_out = attn_out.reshape(&[b, h, q_len, d])?;

        // 7) Compare element‐by‐element
        let flash_data = out.flatten_all()?.to_vec1::<f32>()?;
        let naive_data = naive_out.flatten_all()?.to_vec1::<f32>()?;
        for (f_val, n_val) in flash_data.iter().zip(naive_data.iter()) {
            assert!((f_val - n_val).abs() < EPS);
        }

        Ok(())
    }

    #[test]
    fn test_flash_attn_cpu_single_q_softcap() -> CandleResult<()> {
        // Test for q_len == 1 (single Q) with softcap
        let b = 1;
        let h = 2;
        let d = 4;
        let kv_len = 2;

        // Create q with shape (b, 1, h, d) filled with ones
        let q_vec = vec![1.0f32; b * h * d];
        let q = Tensor::from_vec(q_vec.clone(), (b, 1, h, d), &Device::Cpu)?;

        // Create k and v with shape (b, kv_len, h, d) filled with ones
        let k_vec = vec![1.0f32; b * kv_len * h * d];
        let v_vec = vec![1.0f32; b * kv_len * h * d];
        let k = Tensor::from_vec(k_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;
        let v = Tensor::from_vec(v_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;

        // SDPA parameters: scale = 1.0, softcap = Some(0.5)
        let sdpa = SdpaParams {
            softmax_scale: 1.0,
            softcap: Some(0.5),
            n_kv_groups: 1,
            sliding_window: None,
            sinks: None,
        };
        let scale = sdpa.softmax_scale;
        let sc = sdpa.softcap.unwrap();

        // Run the flash attention CPU function
        let out = run_flash_attn_cpu::<f32>(&q, &k, &v, None, &sdpa)?;
        // Expect output shape (b, h, 1, d)
        assert_eq!(out.shape().dims(), &[b, h, 1, d]);

        // Naive attention with softcap
        let q_perm = q.clone().permute((0, 2, 1, 3))?;
        let k_perm = k.clone().permute((0, 2, 1, 3))?;
        let v_perm = v.clone().permute((0, 2, 1, 3))?;

        let q_resh = q_perm.reshape(&[b * h, 1, d])?;
        let k_resh = k_perm.reshape(&[b * h, kv_len, d])?;
        let v_resh = v_perm.reshape(&[b * h, kv_len, d])?;

        let logits = (q_resh.matmul(&k_resh.transpose(1, 2)?)? * scale as f64)?;

        let logits = (logits / sc as f64)?;
        let logits = logits.tanh()?;
        let logits = (logits * sc as f64)?;

        let weights = softmax(&logits, D::Minus1)?;
        let attn_out = weights.matmul(&v_resh)?;
        let naive_out = attn_out.reshape(&[b, h, 1, d])?;

        let flash_data = out.flatten_all()?.to_vec1::<f32>()?;
        let naive_data = naive_out.flatten_all()?.to_vec1::<f32>()?;
        for (f_val, n_val) in flash_data.iter().zip(naive_data.iter()) {
            assert!((f_val - n_val).abs() < EPS);
        }
        Ok(())
    }

    #[test]
    fn test_flash_attn_cpu_full_q_softcap() -> CandleResult<()> {
        // Test for q_len > 1 (full Q) with softcap
        let b = 1;
        let q_len = 2;
        let h = 2;
        let d = 4;
        let kv_len = 2;

        // Create q with shape (b, q_len, h, d) filled with ones
        let q_vec = vec![1.0f32; b * q_len * h * d];
        let q = Tensor::from_vec(q_vec.clone(), (b, q_len, h, d), &Device::Cpu)?;

        // Create k and v with shape (b, kv_len, h, d) filled with ones
        let k_vec = vec![1.0f32; b * kv_len * h * d];
        let v_vec = vec![1.0f32; b * kv_len * h * d];
        let k = Tensor::from_vec(k_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;
        let v = Tensor::from_vec(v_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;

        // SDPA parameters: scale = 1.0, softcap = Some(0.5)
        let sdpa = SdpaParams {
            softmax_scale: 1.0,
            softcap: Some(0.5),
            n_kv_groups: 1,
            sliding_window: None,
            sinks: None,
        };
        let scale = sdpa.softmax_scale;
        let sc = sdpa.softcap.unwrap();

        // Run the flash attention CPU function
        let out = run_flash_attn_cpu::<f32>(&q, &k, &v, None, &sdpa)?;
        // Expect output shape (b, h, q_len, d)
        assert_eq!(out.shape().dims(), &[b, h, q_len, d]);

        // Naive attention with softcap
        let q_perm = q.clone().permute((0, 2, 1, 3))?;
        let k_perm = k.clone().permute((0, 2, 1, 3))?;
        let v_perm = v.clone().permute((0, 2, 1, 3))?;

        let q_resh = q_perm.reshape(&[b * h, q_len, d])?;
        let k_resh = k_perm.reshape(&[b * h, kv_len, d])?;
        let v_resh = v_perm.reshape(&[b * h, kv_len, d])?;

        let logits = (q_resh.matmul(&k_resh.transpose(1, 2)?)? * scale as f64)?;

        let logits = (logits / sc as f64)?;
        let logits = logits.tanh()?;
        let logits = (logits * sc as f64)?;

        let weights = softmax(&logits, D::Minus1)?;
        let attn_out = weights.matmul(&v_resh)?;
        let naive_out = attn_out.reshape(&[b, h, q_len, d])?;

        let flash_data = out.flatten_all()?.to_vec1::<f32>()?;
        let naive_data = naive_out.flatten_all()?.to_vec1::<f32>()?;
        for (f_val, n_val) in flash_data.iter().zip(naive_data.iter()) {
            assert!((f_val - n_val).abs() < EPS);
        }
        Ok(())
    }
}
