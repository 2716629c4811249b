//! promptloom: prompt attention in tiles (issue 12; `vendor/README.md`, patch 10).
//!
//! `flash_attn_cpu_prefill` (patch 8) computes one query row at a time and one key position
//! at a time, with a scalar `exp` for every (query, key) pair: a 1,800-token prompt spent most
//! of its time there. Here groups of [`RG`] query rows meet blocks of [`KB`] key positions:
//! the RG × KB scores and the weighted sum of the values are register-tiled FMA loops (every
//! loaded key and value serves RG rows), the block's softmax update is done once per block
//! (online softmax by blocks, as FlashAttention does) with a vectorised [`exp`].
//!
//! Not bit-identical to 0.8.1: the sums run in another order, products are fused and `exp`
//! is a polynomial (below 2 ulp). The stated bound, checked by
//! `engine_patches::tiled_prompt_attention_is_within_its_bound`, is 1e-5 of the largest
//! |value| per output element (f32); golden logits give the same greedy tokens.

/// Key positions per block.
pub(crate) const KB: usize = 64;
/// Query rows per group (they share every loaded key and value).
pub(crate) const RG: usize = 4;
/// Width, in f32s, of one register tile's columns: four 256-bit registers (LLVM prefers
/// 256-bit vectors even where AVX-512 is there), so RG rows take 16 registers.
pub(crate) const W: usize = 32;

/// `e^x` for f32, vectorisable: `2^n · p(r)` with `n = round(x / ln 2)`, `r = x - n ln 2`
/// (Cody–Waite, two constants) and a degree-6 Taylor polynomial on |r| ≤ ln2/2. Relative
/// error below 2 ulp for x in [-87, 88]; 0 below -87 (and for -inf), +inf above 88.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    let xc = x.clamp(-87.0, 88.0);
    let t = xc.mul_add(LOG2E, MAGIC);
    let n = t - MAGIC;
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, xc));
    let mut p: f32 = 1.0 / 720.0;
    p = p.mul_add(r, 1.0 / 120.0);
    p = p.mul_add(r, 1.0 / 24.0);
    p = p.mul_add(r, 1.0 / 6.0);
    p = p.mul_add(r, 0.5);
    p = p.mul_add(r, 1.0);
    p = p.mul_add(r, 1.0);
    // 2^n from n's bits: t's low mantissa bits hold n (plus 2^22 from MAGIC's half).
    let ni = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
    let e = p * scale;
    if x < -87.0 {
        0.0
    } else if x > 88.0 {
        f32::INFINITY
    } else {
        e
    }
}

/// Lanes of the partial sums and maxima (independent, so they vectorise).
const R: usize = 16;

#[inline(always)]
fn max(x: &[f32; KB]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; R];
    for c in x.chunks_exact(R) {
        for t in 0..R {
            acc[t] = acc[t].max(c[t]);
        }
    }
    acc.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b))
}

#[inline(always)]
fn sum(x: &[f32; KB]) -> f32 {
    let mut acc = [0f32; R];
    for c in x.chunks_exact(R) {
        for t in 0..R {
            acc[t] += c[t];
        }
    }
    acc.iter().sum()
}

/// K of one kv head for [`attend`]: `[block][i][j]` = k[block·KB + j][i], zero past the end.
pub(crate) fn pack_k(k: impl Fn(usize, usize) -> f32, kv_len: usize, d: usize, out: &mut [f32]) {
    let blocks = kv_len.div_ceil(KB);
    debug_assert_eq!(out.len(), blocks * d * KB);
    for pos in 0..kv_len {
        let (block, j) = (pos / KB, pos % KB);
        for i in 0..d {
            out[(block * d + i) * KB + j] = k(pos, i);
        }
    }
}

/// Scores of RG query rows (`q`: RG·d) against one key block (`kb`: d·KB from [`pack_k`]).
#[inline(always)]
fn scores(q: &[f32], d: usize, kb: &[f32], s: &mut [[f32; KB]; RG]) {
    for c in (0..KB).step_by(W) {
        let mut acc = [[0f32; W]; RG];
        for i in 0..d {
            let k: &[f32; W] = kb[i * KB + c..][..W].try_into().expect("W values");
            for r in 0..RG {
                let qv = q[r * d + i];
                for t in 0..W {
                    acc[r][t] = qv.mul_add(k[t], acc[r][t]);
                }
            }
        }
        for r in 0..RG {
            s[r][c..c + W].copy_from_slice(&acc[r]);
        }
    }
}

/// `o[r] += Σ_j p[r][j] · v[j]` for one key block; `vb`: KB rows of `dvp` values.
#[inline(always)]
fn weighted_values(p: &[[f32; KB]; RG], vb: &[f32], dvp: usize, o: &mut [f32]) {
    for c in (0..dvp).step_by(W) {
        let mut acc = [[0f32; W]; RG];
        for r in 0..RG {
            acc[r].copy_from_slice(&o[r * dvp + c..][..W]);
        }
        for j in 0..KB {
            let v: &[f32; W] = vb[j * dvp + c..][..W].try_into().expect("W values");
            for r in 0..RG {
                let pj = p[r][j];
                for t in 0..W {
                    acc[r][t] = pj.mul_add(v[t], acc[r][t]);
                }
            }
        }
        for r in 0..RG {
            o[r * dvp + c..][..W].copy_from_slice(&acc[r]);
        }
    }
}

/// Attention of RG query rows over the first `kv_len` key positions.
/// - `q`: RG·d query values (rows past the real ones are zero);
/// - `kt`: the kv head's keys from [`pack_k`]; `vf`: its values, `blocks·KB` rows of `dvp`
///   (zero past kv_len and past dv);
/// - `mask`: per row, the additive term of every key position (`kv_len` values, `slope`
///   times each), or `None` for a padding row (every position masked);
/// - `out`: RG·dvp, the normalised result. A row with every position masked gets zeros.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend(
    q: &[f32],
    d: usize,
    kt: &[f32],
    vf: &[f32],
    dvp: usize,
    kv_len: usize,
    mask: [Option<&[f32]>; RG],
    slope: f32,
    scale: f32,
    softcap: f32,
    out: &mut [f32],
) {
    let blocks = kv_len.div_ceil(KB);
    let mut m = [f32::NEG_INFINITY; RG];
    let mut l = [0f32; RG];
    out[..RG * dvp].fill(0.0);
    let mut s = [[0f32; KB]; RG];
    let mut mt = [[f32::NEG_INFINITY; KB]; RG];
    for block in 0..blocks {
        let first = block * KB;
        let n = (kv_len - first).min(KB);
        let mut any = false;
        for r in 0..RG {
            let t = &mut mt[r];
            match mask[r] {
                Some(row) => {
                    for (t, &x) in t[..n].iter_mut().zip(&row[first..first + n]) {
                        *t = slope * x;
                    }
                    t[n..].fill(f32::NEG_INFINITY);
                    any |= t[..n].iter().any(|&x| x != f32::NEG_INFINITY);
                }
                None => t.fill(f32::NEG_INFINITY),
            }
        }
        if !any {
            continue;
        }
        scores(q, d, &kt[block * d * KB..][..d * KB], &mut s);
        for r in 0..RG {
            let mrow = &mt[r];
            let x = &mut s[r];
            if softcap != 0.0 {
                for j in 0..KB {
                    x[j] = softcap * (x[j] * (scale / softcap)).tanh() + mrow[j];
                }
            } else {
                for j in 0..KB {
                    x[j] = x[j] * scale + mrow[j];
                }
            }
            let mx = max(x);
            if mx == f32::NEG_INFINITY {
                x.fill(0.0);
                continue;
            }
            let m_new = m[r].max(mx);
            let alpha = exp(m[r] - m_new);
            for v in x.iter_mut() {
                *v = exp(*v - m_new);
            }
            let sum = sum(x);
            l[r] = l[r] * alpha + sum;
            m[r] = m_new;
            if alpha != 1.0 {
                for o in &mut out[r * dvp..][..dvp] {
                    *o *= alpha;
                }
            }
        }
        weighted_values(&s, &vf[first * dvp..][..KB * dvp], dvp, out);
    }
    for r in 0..RG {
        let inv = if l[r] > 0.0 { 1.0 / l[r] } else { 0.0 };
        for o in &mut out[r * dvp..][..dvp] {
            *o *= inv;
        }
    }
}
