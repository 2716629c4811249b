//! promptloom: prompt attention with query rows as vector lanes (issue 12;
//! `vendor/README.md`, patch 11).
//!
//! `flash_attn_cpu_prefill` (patch 8) gives 0.8.1's result bit for bit but computes one query
//! row at a time, one key position at a time, with a scalar `expf` per (query, key) pair.
//! Here the 16 lanes of an AVX-512 register are 16 query rows of one head, and every lane
//! runs exactly that row's sequence: the same products and sums of the score in
//! `vec_dot_f32`'s order (mul and add, never fused), the same scale, mask term, comparison
//! with the running maximum and online-softmax update, key after key, and an `exp` that
//! gives glibc's `expf` bit for bit (its algorithm: a 32-entry table of 2^(i/32) and a
//! degree-3 polynomial in double precision, as the FMA build glibc picks on AVX2 + FMA
//! CPUs computes it; lanes with |x| >= 88 or NaN call `f32::exp` itself). So the result is
//! 0.8.1's bit for bit, and each loaded key or value element serves 16 rows.
//!
//! Used where the CPU has AVX-512F and this `exp` matches the C library's `expf` on a sweep
//! of its inputs at first use ([`available`]); otherwise patch 8's kernel runs.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

pub(crate) const L: usize = 16;
const KB: usize = 64;
/// Value dimensions per register block of the weighted sum (16 accumulators).
pub(crate) const DC: usize = 16;

const T: [u64; 32] = [
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
];
const N: f64 = 32.0;
const INV_LN2_N: f64 = f64::from_bits(0x3ff71547652b82fe) * N;
const C0: f64 = f64::from_bits(0x3fac6af84b912394) / N / N / N;
const C1: f64 = f64::from_bits(0x3fcebfce50fac4f3) / N / N;
const C2: f64 = f64::from_bits(0x3fe62e42ff0c52d6) / N;
const SHIFT: f64 = f64::from_bits(0x4338000000000000);

#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn exp8(x: __m256, t: &[__m512i; 4]) -> __m256 {
    let xd = _mm512_cvtps_pd(x);
    let z = _mm512_mul_pd(_mm512_set1_pd(INV_LN2_N), xd);
    let kd0 = _mm512_add_pd(z, _mm512_set1_pd(SHIFT));
    let ki = _mm512_castpd_si512(kd0);
    let kd = _mm512_sub_pd(kd0, _mm512_set1_pd(SHIFT));
    let r = _mm512_fmsub_pd(_mm512_set1_pd(INV_LN2_N), xd, kd);
    let lo = _mm512_permutex2var_epi64(t[0], ki, t[1]);
    let hi = _mm512_permutex2var_epi64(t[2], ki, t[3]);
    let upper = _mm512_test_epi64_mask(ki, _mm512_set1_epi64(16));
    let tv = _mm512_mask_blend_epi64(upper, lo, hi);
    let s = _mm512_castsi512_pd(_mm512_add_epi64(tv, _mm512_slli_epi64::<47>(ki)));
    let zz = _mm512_fmadd_pd(_mm512_set1_pd(C0), r, _mm512_set1_pd(C1));
    let r2 = _mm512_mul_pd(r, r);
    let y = _mm512_fmadd_pd(_mm512_set1_pd(C2), r, _mm512_set1_pd(1.0));
    let y = _mm512_fmadd_pd(zz, r2, y);
    _mm512_cvtpd_ps(_mm512_mul_pd(y, s))
}

/// expf of 16 lanes, as glibc's `expf` (FMA variant) computes it; lanes outside |x| < 88
/// (and NaN) by `f32::exp` itself.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn exp16(x: __m512, t: &[__m512i; 4]) -> __m512 {
    let lo = exp8(_mm512_castps512_ps256(x), t);
    let hi = exp8(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(x))), t);
    let e = _mm512_castpd_ps(_mm512_insertf64x4::<1>(
        _mm512_castpd256_pd512(_mm256_castps_pd(lo)),
        _mm256_castps_pd(hi),
    ));
    let abs = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fff_ffff)));
    let fast = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(abs, _mm512_set1_ps(88.0));
    if fast == 0xffff {
        return e;
    }
    let mut xs = [0f32; L];
    let mut es = [0f32; L];
    _mm512_storeu_ps(xs.as_mut_ptr(), x);
    _mm512_storeu_ps(es.as_mut_ptr(), e);
    for l in 0..L {
        if fast & (1 << l) == 0 {
            es[l] = xs[l].exp();
        }
    }
    _mm512_loadu_ps(es.as_ptr())
}

fn table() -> [__m512i; 4] {
    unsafe {
        [
            _mm512_loadu_si512(T[0..8].as_ptr() as *const _),
            _mm512_loadu_si512(T[8..16].as_ptr() as *const _),
            _mm512_loadu_si512(T[16..24].as_ptr() as *const _),
            _mm512_loadu_si512(T[24..32].as_ptr() as *const _),
        ]
    }
}

/// q: L rows of d; k: [kv_len][d]; v: [kv_len][dvp] (dvp a multiple of DC, zero-padded);
/// masks[l]: the lane's mask row or None for an unused lane; out: L rows of dvp.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn attend(q: &[f32], d: usize, k: &[f32], v: &[f32], dvp: usize, kv_len: usize,
    masks: &[Option<&[f32]>; L], slope: f32, scale: f32, softcap: f32, out: &mut [f32]) {
    let tab = table();
    // qt[i] = lane l holds q[l][i]
    let mut qt = vec![_mm512_setzero_ps(); d];
    {
        let mut col = [0f32; L];
        for i in 0..d {
            for l in 0..L {
                col[l] = if masks[l].is_some() { q[l * d + i] } else { 0.0 };
            }
            qt[i] = _mm512_loadu_ps(col.as_ptr());
        }
    }
    let scale_applied = if softcap != 0.0 { scale / softcap } else { scale };
    let vscale = _mm512_set1_ps(scale_applied);
    let mut m = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut s = _mm512_setzero_ps();
    let mut acc = vec![_mm512_setzero_ps(); dvp];
    let mut mv = [[0f32; L]; KB];
    let mut sc = [_mm512_setzero_ps(); KB];
    let mut msv = [_mm512_setzero_ps(); KB];
    let mut vsv = [_mm512_setzero_ps(); KB];
    let mut act = [0u16; KB];
    // 0: skip, 1: every lane active and no lane raised its max, 2: general
    let mut kind = [0u8; KB];
    let chunks = d / 4;
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    let one = _mm512_set1_ps(1.0);
    for j0 in (0..kv_len).step_by(KB) {
        let nb = (kv_len - j0).min(KB);
        for (l, mask) in masks.iter().enumerate() {
            match mask {
                Some(row) => {
                    for (jj, x) in row[j0..j0 + nb].iter().enumerate() {
                        mv[jj][l] = slope * x;
                    }
                }
                None => {
                    for mvj in mv[..nb].iter_mut() {
                        mvj[l] = f32::NEG_INFINITY;
                    }
                }
            }
        }
        let mut any = false;
        for jj in 0..nb {
            let mvj = _mm512_loadu_ps(mv[jj].as_ptr());
            act[jj] = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(mvj, ninf);
            any |= act[jj] != 0;
        }
        if !any {
            continue;
        }
        for jj in 0..nb {
            if act[jj] == 0 {
                continue;
            }
            let kr = k.as_ptr().add((j0 + jj) * d);
            let mut dot = _mm512_setzero_ps();
            for c in 0..chunks {
                let i = c * 4;
                let p0 = _mm512_mul_ps(qt[i], _mm512_set1_ps(*kr.add(i)));
                let p1 = _mm512_mul_ps(qt[i + 1], _mm512_set1_ps(*kr.add(i + 1)));
                let p2 = _mm512_mul_ps(qt[i + 2], _mm512_set1_ps(*kr.add(i + 2)));
                let p3 = _mm512_mul_ps(qt[i + 3], _mm512_set1_ps(*kr.add(i + 3)));
                let t = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(p0, p1), p2), p3);
                dot = _mm512_add_ps(dot, t);
            }
            for i in chunks * 4..d {
                dot = _mm512_add_ps(dot, _mm512_mul_ps(qt[i], _mm512_set1_ps(*kr.add(i))));
            }
            let mut x = _mm512_mul_ps(dot, vscale);
            if softcap != 0.0 {
                let mut xs = [0f32; L];
                _mm512_storeu_ps(xs.as_mut_ptr(), x);
                for e in xs.iter_mut() {
                    *e = softcap * e.tanh();
                }
                x = _mm512_loadu_ps(xs.as_ptr());
            }
            sc[jj] = _mm512_add_ps(x, _mm512_loadu_ps(mv[jj].as_ptr()));
        }
        for jj in 0..nb {
            let a = act[jj];
            if a == 0 {
                kind[jj] = 0;
                continue;
            }
            let sv = sc[jj];
            let gt = a & _mm512_cmp_ps_mask::<_CMP_GT_OQ>(sv, m);
            let x = _mm512_mask_blend_ps(gt, _mm512_sub_ps(sv, m), _mm512_sub_ps(m, sv));
            let e = exp16(x, &tab);
            let ms = _mm512_mask_blend_ps(gt, one, e);
            let vs = _mm512_mask_blend_ps(gt, e, one);
            m = _mm512_mask_blend_ps(gt, m, sv);
            s = _mm512_mask_add_ps(s, a, _mm512_mul_ps(s, ms), vs);
            msv[jj] = ms;
            vsv[jj] = vs;
            kind[jj] = if a == 0xffff && gt == 0 { 1 } else { 2 };
        }
        for c in (0..dvp).step_by(DC) {
            let mut ac = [_mm512_setzero_ps(); DC];
            ac.copy_from_slice(&acc[c..c + DC]);
            for jj in 0..nb {
                let vr = v.as_ptr().add((j0 + jj) * dvp + c);
                match kind[jj] {
                    0 => {}
                    1 => {
                        let vs = vsv[jj];
                        for (dd, a) in ac.iter_mut().enumerate() {
                            *a = _mm512_add_ps(*a, _mm512_mul_ps(_mm512_set1_ps(*vr.add(dd)), vs));
                        }
                    }
                    _ => {
                        let (ms, vs, am) = (msv[jj], vsv[jj], act[jj]);
                        for (dd, a) in ac.iter_mut().enumerate() {
                            let n = _mm512_add_ps(_mm512_mul_ps(*a, ms), _mm512_mul_ps(_mm512_set1_ps(*vr.add(dd)), vs));
                            *a = _mm512_mask_mov_ps(*a, am, n);
                        }
                    }
                }
            }
            acc[c..c + DC].copy_from_slice(&ac);
        }
    }
    let inv_s = _mm512_div_ps(one, s);
    let mut col = [0f32; L];
    let mut inv = [0f32; L];
    _mm512_storeu_ps(inv.as_mut_ptr(), inv_s);
    for (dd, a) in acc.iter().enumerate() {
        _mm512_storeu_ps(col.as_mut_ptr(), *a);
        for l in 0..L {
            if masks[l].is_some() {
                out[l * dvp + dd] = col[l] * inv[l];
            }
        }
    }
}

/// Whether [`attend`] can run here and gives the exact kernel's result: the CPU has AVX-512F
/// and [`exp16`] equals the C library's `expf` (what `f32::exp` calls) on a sweep of the
/// arguments the softmax passes it (every 997th f32 from -104 to 88, both ends of the fast
/// range, 0, -0, -inf, NaN). Checked once.
pub(crate) fn available() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512f")
            && exp_mismatches((-104.0f32).to_bits(), 0x8000_0000, 997) == 0
            && exp_mismatches(0, 0x42b0_0000 /* 88.0 */, 997) == 0
            && {
                let special = [
                    0.0, -0.0, 88.0, -88.0, 87.99999, -87.99999, -103.9, -150.0,
                    f32::NEG_INFINITY, f32::INFINITY, f32::NAN, f32::MIN_POSITIVE,
                ];
                special.iter().all(|&x| exp_lanes_of(x).to_bits() == x.exp().to_bits())
            }
    })
}

/// [`exp16`] of `x` in every lane, lane 0 returned (needs AVX-512F).
fn exp_lanes_of(x: f32) -> f32 {
    unsafe { lane0(x) }
}

#[target_feature(enable = "avx512f")]
unsafe fn lane0(x: f32) -> f32 {
    let tab = table();
    _mm512_cvtss_f32(exp16(_mm512_set1_ps(x), &tab))
}

/// How many f32s with bit patterns `from, from + step, ...` (below `to`; a descending range
/// when `from > to`, as for negative numbers) [`exp16`] gives other bits for than
/// `f32::exp`. Needs AVX-512F.
pub(crate) fn exp_mismatches(from: u32, to: u32, step: u32) -> usize {
    if !std::arch::is_x86_feature_detected!("avx512f") {
        return usize::MAX;
    }
    unsafe { mismatches(from, to, step) }
}

#[target_feature(enable = "avx512f")]
unsafe fn mismatches(from: u32, to: u32, step: u32) -> usize {
    let tab = table();
    let (lo, hi) = (from.min(to), from.max(to));
    let mut bad = 0;
    let mut xs = [0f32; L];
    let mut es = [0f32; L];
    let mut bits = lo as u64;
    while bits < hi as u64 {
        for x in xs.iter_mut() {
            *x = f32::from_bits(bits.min(hi as u64 - 1) as u32);
            bits += step as u64;
        }
        _mm512_storeu_ps(es.as_mut_ptr(), exp16(_mm512_loadu_ps(xs.as_ptr()), &tab));
        bad += xs.iter().zip(&es).filter(|(x, e)| x.exp().to_bits() != e.to_bits()).count();
    }
    bad
}
