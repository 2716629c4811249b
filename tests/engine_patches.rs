//! The patches to the vendored mistralrs-core (`vendor/README.md`), each checked on the code it
//! changes, through the crate's `promptloom` test entry points. No model needed.
#![cfg(feature = "local")]

use candle_core::{DType, Device, Tensor};
use mistralrs_core::promptloom;

/// Deterministic values in [-1, 1) (a 64-bit LCG), so a failure reproduces.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn tensor(shape: (usize, usize, usize, usize), seed: u64, dtype: DType) -> Tensor {
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    Tensor::from_vec(values(n, seed), shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// One (1, kv heads, n, head dim) tensor per length n of `lens`, the i-th from seed `seed + i`:
/// the caches of sequences of different lengths.
fn per_length(lens: &[usize], (kvh, d): (usize, usize), seed: u64, dtype: DType) -> Vec<Tensor> {
    lens.iter()
        .enumerate()
        .map(|(i, &n)| tensor((1, kvh, n, d), seed + i as u64, dtype))
        .collect()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    let a = a.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
    let b = b.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
    a.to_vec1::<f32>()
        .unwrap()
        .iter()
        .zip(b.to_vec1::<f32>().unwrap())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Patch 1 (decode attention): a batch of decode rows through the CPU kernel gives each row
/// exactly what that row gives alone, and matches the plain matmul-softmax-matmul reference.
/// Before the patch every row got the last row's output.
#[test]
fn decode_attention_of_a_batch_equals_each_row_alone() {
    // The lanes test counts the tiles computed in lanes: none of ours may run meanwhile.
    let _switch = DECODE_SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    // (batch, heads, kv heads, kv length, head dim): SmolLM2-135M's 9 heads over 3 kv heads
    // of 64 at several depths (one tile, a partial tile, many tiles), and a small odd case.
    let cases = [
        (3, 9, 3, 40, 64),
        (4, 9, 3, 1, 64),
        (2, 9, 3, 17, 64),
        (4, 9, 3, 300, 64),
        (3, 2, 2, 40, 8),
    ];
    for dtype in [DType::F32, DType::F16] {
        for (i, &(b, h, kvh, kv, d)) in cases.iter().enumerate() {
            let seed = 100 * i as u64;
            let q = tensor((b, h, 1, d), seed, dtype);
            let k = tensor((b, kvh, kv, d), seed + 1, dtype);
            let v = tensor((b, kvh, kv, d), seed + 2, dtype);
            let scale = 1.0 / (d as f32).sqrt();
            let batched = promptloom::cpu_attention(&q, &k, &v, scale).unwrap();
            assert_eq!(batched.dims(), &[b, h, 1, d]);
            for row in 0..b {
                let one = |t: &Tensor| t.narrow(0, row, 1).unwrap();
                let alone = promptloom::cpu_attention(&one(&q), &one(&k), &one(&v), scale).unwrap();
                assert_eq!(
                    bits(&one(&batched)),
                    bits(&alone),
                    "{dtype:?} case {i} (b {b}, h {h}, kv {kv}): row {row} of the batch differs from the row alone"
                );
            }
            let reference = promptloom::reference_attention(&q, &k, &v, scale).unwrap();
            // The reference path differs by up to 6e-4 in f32 here (not yet explained; the
            // bitwise batch-vs-alone check above is what guards the patch).
            let bound = if dtype == DType::F32 { 2e-3 } else { 8e-3 };
            let diff = max_abs_diff(&batched, &reference);
            assert!(
                diff <= bound,
                "{dtype:?} case {i}: off the reference by {diff} > {bound}"
            );
        }
    }
}

/// Patch 13 (answers of different lengths decode together): the cache manager batches
/// sequences of different lengths by left-padding the shorter, the masker masks each row's
/// padding and the decode kernel starts each row at its own first key, so every row of the
/// step gives exactly the bits it gives alone; and each sequence gets back exactly its own
/// keys. Lengths: one tile, tile edges (16), a row whose cache is empty (1), many tiles.
#[test]
fn a_decode_step_of_different_lengths_equals_each_row_alone() {
    // The lanes test counts the tiles computed in lanes: none of ours may run meanwhile.
    let _switch = DECODE_SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    let lengths: &[&[usize]] = &[&[40, 17, 300, 33], &[16, 1, 15], &[5, 5], &[129, 64]];
    for dtype in [DType::F32, DType::F16] {
        for (case, lens) in lengths.iter().enumerate() {
            let (h, kvh, d) = (9, 3, 64);
            let seed = 1000 + 10 * case as u64;
            let b = lens.len();
            let q = tensor((b, h, 1, d), seed, dtype);
            let k = per_length(lens, (kvh, d), seed + 1, dtype);
            let v = per_length(lens, (kvh, d), seed + 101, dtype);
            let scale = 1.0 / (d as f32).sqrt();
            let (batched, rows) = promptloom::left_padded_decode_step(&q, &k, &v, scale).unwrap();
            assert_eq!(batched.dims(), &[b, h, 1, d]);
            for row in 0..b {
                let q_row = q.narrow(0, row, 1).unwrap();
                let alone = promptloom::cpu_attention(&q_row, &k[row], &v[row], scale).unwrap();
                assert_eq!(
                    bits(&batched.narrow(0, row, 1).unwrap()),
                    bits(&alone),
                    "{dtype:?} lengths {lens:?}: row {row} of the step differs from the row alone"
                );
                assert_eq!(
                    bits(&rows[row]),
                    bits(&k[row]),
                    "{dtype:?} lengths {lens:?}: row {row}'s cache handed back is not its keys"
                );
            }
        }
    }
}

/// Patch 13 (scheduler): answers of three lengths all decoding run in one step when the
/// engine's cache can batch them; with 0.8.1's length buckets (or a cache that cannot) one
/// length runs and the others wait their turn.
#[test]
fn answers_of_different_lengths_share_a_decode_step() {
    assert_eq!(promptloom::scheduler_mixed_lengths(true).unwrap(), 3);
    assert_eq!(promptloom::scheduler_mixed_lengths(false).unwrap(), 1);
}

/// The decode-score switch is global: the tests that turn it hold this.
static DECODE_SWITCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Patch 14 (decode attention): the scores of a tile of 16 keys computed in AVX-512 lanes, and
/// in AVX2 lanes, give the bits of 0.8.1's key-by-key `vec_dot_f32`, so a decode step gives
/// the same output: depths below, at and past a tile and many tiles, head sizes that are not
/// a multiple of the sum's chunk of four, batches, a mask, and a step of left-padded rows of
/// different lengths (tiles that start off the grid of 16).
#[test]
fn decode_scores_in_lanes_match_key_by_key_bit_for_bit() {
    use promptloom::DecodeScores;
    let _switch = DECODE_SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    // (batch, heads, kv heads, kv length, head dim)
    let shapes = [
        (1, 9, 3, 1, 64),
        (1, 9, 3, 15, 64),
        (1, 9, 3, 16, 64),
        (1, 9, 3, 17, 64),
        (2, 9, 3, 100, 64),
        (1, 4, 4, 333, 62),
        (1, 2, 1, 48, 7),
        (3, 8, 2, 257, 128),
    ];
    let modes = [DecodeScores::Lanes, DecodeScores::Avx2Lanes];
    let run = |mode: DecodeScores, f: &dyn Fn() -> Vec<Vec<u32>>| {
        promptloom::set_decode_scores(mode);
        let tiles = promptloom::decode_score_lane_tiles();
        let out = f();
        (out, promptloom::decode_score_lane_tiles() - tiles)
    };
    // f32 caches, and the f16 (and bf16) ones the models decode with on the CPU (patch 18).
    let cases = [DType::F32, DType::F16, DType::BF16]
        .into_iter()
        .flat_map(|dtype| {
            shapes
                .iter()
                .enumerate()
                .map(move |(case, &shape)| (dtype, case, shape))
        });
    for (dtype, case, (b, h, kvh, kl, d)) in cases {
        let seed = 7000 + 10 * case as u64;
        // Scores of amplitude up to a few units: the low bits of every sum matter.
        let q = tensor((b, h, 1, d), seed, dtype).affine(3.0, 0.0).unwrap();
        let k = tensor((b, kvh, kl, d), seed + 1, dtype);
        let v = tensor((b, kvh, kl, d), seed + 2, dtype);
        let mask: Vec<f32> = (0..b * kl)
            .map(|x| {
                if x % 5 == 3 {
                    f32::NEG_INFINITY
                } else {
                    (x % 7) as f32 * 0.25
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (b, 1, 1, kl), &Device::Cpu)
            .and_then(|m| m.to_dtype(dtype))
            .unwrap();
        let scale = 1.0 / (d as f32).sqrt();
        let step = || {
            vec![
                bits(&promptloom::cpu_attention(&q, &k, &v, scale).unwrap()),
                bits(&promptloom::cpu_attention_masked(&q, &k, &v, &mask, scale).unwrap()),
            ]
        };
        let (want, none) = run(DecodeScores::KeyByKey, &step);
        assert_eq!(none, 0, "key by key ran lanes");
        for mode in modes {
            let (got, tiles) = run(mode, &step);
            assert_eq!(
                got, want,
                "{mode:?}, {dtype:?}, shape {:?}: other bits than key by key",
                shapes[case]
            );
            let full_tiles = 2 * b * h * (kl / 16);
            if promptloom::decode_score_lanes().is_some() {
                assert!(
                    tiles >= full_tiles,
                    "{mode:?}, {dtype:?}, shape {:?}: {tiles} of {full_tiles} tiles in lanes",
                    shapes[case]
                );
            }
        }
    }
    // Rows of different lengths, left-padded into one step (patch 13).
    let lens = [40, 17, 300, 33];
    let (h, kvh, d) = (9, 3, 64);
    for dtype in [DType::F32, DType::F16] {
        let q = tensor((lens.len(), h, 1, d), 7900, dtype)
            .affine(3.0, 0.0)
            .unwrap();
        let k = per_length(&lens, (kvh, d), 7901, dtype);
        let v = per_length(&lens, (kvh, d), 7951, dtype);
        let step = || {
            vec![bits(
                &promptloom::left_padded_decode_step(&q, &k, &v, 0.125)
                    .unwrap()
                    .0,
            )]
        };
        let (want, _) = run(DecodeScores::KeyByKey, &step);
        for mode in modes {
            let (got, tiles) = run(mode, &step);
            assert_eq!(
                got, want,
                "{mode:?}, {dtype:?}, lengths {lens:?}: other bits than key by key"
            );
            if promptloom::decode_score_lanes().is_some() {
                assert!(tiles > 0, "{mode:?}, {dtype:?}: no tile in lanes");
            }
        }
    }
    promptloom::set_decode_scores(DecodeScores::default());
}

/// Patch 2 (scheduler): with nothing running, the scheduler starts at most `max_num_seqs`
/// waiting sequences. It used to start all of them.
#[test]
fn scheduler_starts_at_most_max_num_seqs() {
    assert_eq!(promptloom::scheduler_first_step(1, 4).unwrap(), 1);
    assert_eq!(promptloom::scheduler_first_step(2, 4).unwrap(), 2);
    assert_eq!(promptloom::scheduler_first_step(4, 3).unwrap(), 3);
}

/// Patch 2 (scheduler): an answer parked mid-way (its length bucket did not run) resumes
/// decoding when the others finish. It used to be set back to "prompt" and re-read from
/// scratch, which changes its numerics and so its greedy text (the bench's "same 1/2").
#[test]
fn a_parked_answer_resumes_decoding() {
    assert_eq!(promptloom::scheduler_parked_resume().unwrap(), (true, true));
}

/// Patch 3 (prefix cache): a finished sequence's last token has no KV row; a prompt that
/// replays the whole sequence (a multi-turn chat) resumes before that token, not after it.
#[test]
fn prefix_cache_never_resumes_past_the_kv_it_holds() {
    let cached: Vec<u32> = (1..=10).collect();
    // The next turn: all ten tokens, then more. KV exists for the first nine.
    let next_turn: Vec<u32> = (1..=14).collect();
    assert_eq!(
        promptloom::prefix_cache_offset(&cached, 9, &next_turn).unwrap(),
        Some(9)
    );
    // A prompt that leaves the cached one earlier resumes where they part.
    assert_eq!(
        promptloom::prefix_cache_offset(&cached, 9, &[1, 2, 3, 4, 99, 100]).unwrap(),
        Some(4)
    );
    // Nothing in common: a miss.
    assert_eq!(
        promptloom::prefix_cache_offset(&cached, 9, &[7, 8]).unwrap(),
        None
    );
}

/// A Q8_0 weight (n, k) from seed `w_seed` and m activation rows of width k from `x_seed`,
/// with an outlier in the first row and, from 3 rows, a zero second row (its scale is 0).
fn q8_case(
    (m, n, k): (usize, usize, usize),
    w_seed: u64,
    x_seed: u64,
) -> (std::sync::Arc<candle_core::quantized::QTensor>, Vec<f32>) {
    use candle_core::quantized::{GgmlDType, QTensor};
    let w = Tensor::from_vec(values(n * k, w_seed), (n, k), &Device::Cpu).unwrap();
    let w = std::sync::Arc::new(QTensor::quantize(&w, GgmlDType::Q8_0).unwrap());
    let mut xs = values(m * k, x_seed);
    xs[k / 2] = 40.0;
    if m > 2 {
        xs[k..2 * k].fill(0.0);
    }
    (w, xs)
}

/// The Q8_0 mat-mul kernel gives candle's result bit for bit, for the model's shapes (and odd
/// row counts, a zero row, an outlier), one row (decode) and many (prompt reading), in each of
/// its forms.
#[test]
fn q8_kernel_matches_candle_bit_for_bit() {
    use candle_core::quantized::QMatMul;
    use candle_core::Module;
    if !promptloom::q8_kernel_available() {
        println!("skipped: this CPU has no AVX-512 VNNI, the kernel does not run here");
        return;
    }
    // (activation rows, weight rows n, width k): q/k/v/o, gate/up, down, the head (cut).
    let shapes = [
        (1, 576, 576),
        (1, 192, 576),
        (1, 1536, 576),
        (1, 576, 1536),
        (1, 4096, 576),
        (2, 576, 576),
        (3, 192, 576),
        (4, 192, 576),
        (5, 1536, 576),
        (7, 1536, 576),
        (8, 576, 1536),
        (33, 576, 1536),
        (130, 192, 576),
    ];
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        let (w, xs) = q8_case((m, n, k), 7 + i as u64, 1000 + i as u64);
        let x = Tensor::from_vec(xs, (m, k), &Device::Cpu).unwrap();
        let candle = QMatMul::from_arc(w.clone()).unwrap().forward(&x).unwrap();
        // Every form: a decode step's few rows against one weight row at a time (patch 17, the
        // default up to 8 rows) or four, two outputs per 512-bit register (patch 12), and patch
        // 7's 256-bit one.
        for (wide, by_row) in [(true, true), (true, false), (false, false)] {
            promptloom::set_q8_wide(wide);
            promptloom::set_q8_by_row(by_row);
            let ours = promptloom::q8_matmul(&x, &w);
            promptloom::set_q8_wide(true);
            promptloom::set_q8_by_row(true);
            let ours = ours
                .unwrap()
                .expect("the kernel applies to a Q8_0 weight and f32 rows");
            assert_eq!(ours.dims(), candle.dims());
            assert_eq!(
                bits(&ours),
                bits(&candle),
                "shape {i}: ({m}, {k}) x ({n}, {k})ᵀ, wide {wide}, by row {by_row}"
            );
        }
    }
}

/// The llama model's Q8_0 layers (`QLinear`): a step of up to eight activation rows (a decode
/// step of up to eight answers) goes to patch 21's kernel where it runs; otherwise one row goes
/// to candle's kernel and two or more (prompts) to patch 12's. Every path gives candle's
/// product bit for bit.
#[test]
fn q8_layers_use_the_lanes_kernel_for_few_rows_and_candle_bits_always() {
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use candle_core::Module;
    assert!(!promptloom::q8_kernel_for_rows(0));
    assert!(!promptloom::q8_kernel_for_rows(1));
    assert!(promptloom::q8_kernel_for_rows(2));
    assert!(promptloom::q8_kernel_for_rows(1_800));
    let kernel = promptloom::q8_kernel_available();
    let lanes = promptloom::q8_lanes_available();
    let (n, k) = (192, 576);
    let w = Tensor::from_vec(values(n * k, 77), (n, k), &Device::Cpu).unwrap();
    let w = std::sync::Arc::new(QTensor::quantize(&w, GgmlDType::Q8_0).unwrap());
    // (shape of x, activation rows): one decode row as the model passes it (batch 1,
    // position 1), a bare row, two and eight sequences decoding together, prompts.
    let cases: [(&[usize], usize); 6] = [
        (&[1, 1, k], 1),
        (&[1, k], 1),
        (&[2, 1, k], 2),
        (&[8, 1, k], 8),
        (&[1, 9, k], 9),
        (&[2, 40, k], 80),
    ];
    for (i, (dims, rows)) in cases.into_iter().enumerate() {
        let x = Tensor::from_vec(values(rows * k, 300 + i as u64), dims, &Device::Cpu).unwrap();
        let (ours, used_kernel) = promptloom::q8_linear_forward(w.clone(), &x).unwrap();
        assert_eq!(
            used_kernel,
            (lanes && rows <= 8) || (kernel && rows >= 2),
            "{dims:?}: kernels on this CPU: patch 21 {lanes}, patch 12 {kernel}"
        );
        let candle = QMatMul::from_arc(w.clone()).unwrap().forward(&x).unwrap();
        assert_eq!(ours.dims(), candle.dims(), "{dims:?}");
        assert_eq!(bits(&ours), bits(&candle), "{dims:?}");
    }
}

/// Patch 21's kernel (outputs in lanes) gives candle's product bit for bit, for the model's
/// shapes (q/k/v and gate/up stacked, down, the head cut), 1 to 17 rows, widths of 1, 17 and
/// 33 blocks, a zero row and an outlier; and it declines what it does not cover.
#[test]
fn q8_lanes_kernel_matches_candle_bit_for_bit() {
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use candle_core::Module;
    if !promptloom::q8_lanes_available() {
        println!("skipped: this CPU has no AVX-512 BW/VL/VNNI, the kernel does not run here");
        return;
    }
    let shapes = [
        (1, 960, 576),
        (4, 960, 576),
        (3, 3072, 576),
        (8, 576, 1536),
        (2, 4096, 576),
        (17, 64, 576),
        (5, 16, 32),
        (7, 48, 544),
        (6, 32, 1056),
    ];
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        let (w, xs) = q8_case((m, n, k), 11 + i as u64, 2000 + i as u64);
        for dims in [vec![m, 1, k], vec![m, k]] {
            let x = Tensor::from_vec(xs.clone(), dims.as_slice(), &Device::Cpu).unwrap();
            let ours = promptloom::q8_lanes_matmul(&x, &w)
                .unwrap()
                .expect("the kernel applies to a Q8_0 weight and f32 rows");
            let candle = QMatMul::from_arc(w.clone()).unwrap().forward(&x).unwrap();
            assert_eq!(ours.dims(), candle.dims());
            assert_eq!(
                bits(&ours),
                bits(&candle),
                "shape {i}: ({m}, {k}) x ({n}, {k})ᵀ as {dims:?}"
            );
        }
    }
    // Not a whole number of groups of sixteen outputs, or not Q8_0: declined.
    let x = Tensor::from_vec(values(576, 5), (1, 576), &Device::Cpu).unwrap();
    let odd = Tensor::from_vec(values(24 * 576, 6), (24, 576), &Device::Cpu).unwrap();
    let odd = QTensor::quantize(&odd, GgmlDType::Q8_0).unwrap();
    assert!(promptloom::q8_lanes_matmul(&x, &odd).unwrap().is_none());
    let q4 = Tensor::from_vec(values(32 * 576, 7), (32, 576), &Device::Cpu).unwrap();
    let q4 = QTensor::quantize(&q4, GgmlDType::Q4_1).unwrap();
    assert!(promptloom::q8_lanes_matmul(&x, &q4).unwrap().is_none());
}

/// The prompt-kernel switch is global: the tests that turn it hold this.
static PREFILL_SWITCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// q, k, v, mask and softmax scale of one prompt-attention case.
type Case = (Tensor, Tensor, Tensor, Tensor, f32);

/// A prompt-attention case: q (1, h, ql, d) with values of amplitude `q_amp` (larger gives
/// peakier softmaxes), k and v (1, kvh, kl, d) in [-1, 1), and a causal mask where query j
/// (at position kl - ql + j) sees keys up to its own position.
fn prompt_case(
    seed: u64,
    (ql, kl, h, kvh, d): (usize, usize, usize, usize, usize),
    dtype: DType,
    q_amp: f64,
) -> Case {
    let q = tensor((1, h, ql, d), seed, DType::F32)
        .affine(q_amp, 0.0)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let k = tensor((1, kvh, kl, d), seed + 1, dtype);
    let v = tensor((1, kvh, kl, d), seed + 2, dtype);
    let mask: Vec<f32> = (0..ql * kl)
        .map(|x| {
            let (j, key) = (x / kl, x % kl);
            if key > kl - ql + j {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, (1, 1, ql, kl), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    (q, k, v, mask, 1.0 / (d as f32).sqrt())
}

/// The case through the prompt kernel `kernel`: (with the causal mask, without a mask).
fn prompt_attention(
    kernel: promptloom::PrefillAttention,
    (q, k, v, mask, scale): &Case,
) -> (Tensor, Tensor) {
    promptloom::set_prefill_attention(kernel);
    let masked = promptloom::cpu_attention_masked(q, k, v, mask, *scale);
    let plain = promptloom::cpu_attention(q, k, v, *scale);
    promptloom::set_prefill_attention(promptloom::PrefillAttention::default());
    (masked.unwrap(), plain.unwrap())
}

/// Prompt-attention shapes, (q_len, kv_len, heads, kv heads, head dim): the model's (9 heads
/// over 3 kv heads of 64) from scratch and after a cached prefix, small and odd head sizes;
/// then prompts longer than a key block (64), a tile (32) and a group of lanes (16), not
/// multiples of them, and a head size that is not a multiple of a register block (80).
const PROMPT_SHAPES: [(usize, usize, usize, usize, usize); 8] = [
    (37, 37, 9, 3, 64),
    (13, 50, 9, 3, 64),
    (8, 8, 2, 2, 8),
    (5, 21, 3, 1, 6),
    (300, 300, 9, 3, 64),
    (130, 333, 9, 3, 64),
    (70, 70, 4, 2, 80),
    (2, 65, 2, 1, 64),
];

/// Patch 8: the exact prompt-attention kernel gives 0.8.1's result bit for bit: causal
/// prompts from scratch and after a cached prefix, with and without a mask, f32 and f16.
#[test]
fn prompt_attention_kernel_matches_the_old_one_bit_for_bit() {
    use promptloom::PrefillAttention::{Exact, Original};
    let _switch = PREFILL_SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    for dtype in [DType::F32, DType::F16] {
        for (i, &shape) in PROMPT_SHAPES[..4].iter().enumerate() {
            let case = prompt_case(500 + 10 * i as u64, shape, dtype, 1.0);
            let (old, new) = (
                prompt_attention(Original, &case),
                prompt_attention(Exact, &case),
            );
            assert_eq!(
                bits(&new.0),
                bits(&old.0),
                "{dtype:?} case {i}, causal mask"
            );
            assert_eq!(bits(&new.1), bits(&old.1), "{dtype:?} case {i}, no mask");
        }
    }
}

/// Patch 10: the tiled prompt attention (opt-in) stays within its stated bound of the
/// exact kernel, 1e-5 per output element in f32 (v within [-1, 1)), and within f16's own
/// rounding in f16: prompts shorter and longer than a key block (64) and than a tile of
/// query rows (32), after a cached prefix, head sizes that are not a multiple of the
/// register tile (6, 80), peaky softmaxes (q amplified 8x), with and without a mask.
#[test]
fn tiled_prompt_attention_is_within_its_bound() {
    use promptloom::PrefillAttention::{Exact, Tiled};
    let _switch = PREFILL_SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    let mut worst = [0f32; 2];
    for (dtype, bound) in [(DType::F32, 1e-5f32), (DType::F16, 2e-3)] {
        for (i, &shape) in PROMPT_SHAPES.iter().enumerate() {
            for q_amp in [1.0, 8.0] {
                let case = prompt_case(700 + 10 * i as u64, shape, dtype, q_amp);
                let (exact, tiled) = (
                    prompt_attention(Exact, &case),
                    prompt_attention(Tiled, &case),
                );
                for (what, e, t) in [
                    ("causal", &exact.0, &tiled.0),
                    ("no mask", &exact.1, &tiled.1),
                ] {
                    assert_eq!(e.dims(), t.dims());
                    let diff = max_abs_diff(e, t);
                    assert!(
                        diff <= bound,
                        "{dtype:?} case {i} {shape:?} q x{q_amp}, {what}: {diff:e} > {bound:e}"
                    );
                    let w = &mut worst[usize::from(dtype == DType::F16)];
                    *w = w.max(diff);
                }
            }
        }
    }
    // A kernel that ignored the mask, the scale or a block would be far outside the bound;
    // say how close it came.
    eprintln!(
        "tiled vs exact prompt attention: worst |diff| f32 {:e}, f16 {:e}",
        worst[0], worst[1]
    );
}

/// Patch 11: the lanes kernel (the default) gives the row-at-a-time exact kernel's result
/// (patch 8, itself 0.8.1's, above) bit for bit: every shape, f32 and f16, softmaxes flat
/// and peaky, with the causal mask and without a mask, and a mask that hides scattered keys
/// (lanes of one group active on different keys, and a row that sees none: NaN as 0.8.1).
/// On a CPU without AVX-512F the kernel does not run (`Lanes` is `Exact` there) and the test
/// says so.
#[test]
fn lanes_prompt_attention_matches_the_exact_kernel_bit_for_bit() {
    use promptloom::PrefillAttention::{Exact, Lanes};
    let _switch = PREFILL_SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    if !promptloom::lanes_attention_available() {
        eprintln!(
            "lanes prompt attention: not available on this CPU (no AVX-512F); nothing to compare"
        );
        return;
    }
    assert_eq!(promptloom::PrefillAttention::default(), Lanes);
    for dtype in [DType::F32, DType::F16] {
        for (i, &shape) in PROMPT_SHAPES.iter().enumerate() {
            for q_amp in [1.0, 8.0] {
                let case = prompt_case(900 + 10 * i as u64, shape, dtype, q_amp);
                let (exact, lanes) = (
                    prompt_attention(Exact, &case),
                    prompt_attention(Lanes, &case),
                );
                let what = format!("{dtype:?} case {i} {shape:?} q x{q_amp}");
                assert_eq!(bits(&lanes.0), bits(&exact.0), "{what}, causal mask");
                assert_eq!(bits(&lanes.1), bits(&exact.1), "{what}, no mask");
            }
        }
    }
    // Scattered mask: key j hidden from query row r when (r * 7 + j * 3) % 5 == 0, and row 3
    // hidden from every key.
    let (ql, kl, h, kvh, d) = (40, 90, 9, 3, 64);
    let (q, k, v, _, scale) = prompt_case(991, (ql, kl, h, kvh, d), DType::F32, 4.0);
    let mask: Vec<f32> = (0..ql * kl)
        .map(|x| {
            let (r, j) = (x / kl, x % kl);
            if r == 3 || (r * 7 + j * 3) % 5 == 0 {
                f32::NEG_INFINITY
            } else {
                0.25 * ((j % 4) as f32)
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, (1, 1, ql, kl), &Device::Cpu).unwrap();
    let case = (q, k, v, mask, scale);
    let (exact, lanes) = (
        prompt_attention(Exact, &case),
        prompt_attention(Lanes, &case),
    );
    assert_eq!(bits(&lanes.0), bits(&exact.0), "scattered mask");
}

/// Patch 11's vector `exp` is the C library's `expf` bit for bit on every 7th f32 of the
/// softmax's range (from -104, below which expf is 0, to 0; and 0 to 88), and on -inf, NaN
/// and the edges of its fast range (where it calls `f32::exp` itself).
#[test]
fn lanes_exp_is_the_c_librarys_expf() {
    if !promptloom::lanes_attention_available() {
        eprintln!("lanes prompt attention: not available on this CPU; its exp is not used");
        return;
    }
    let neg = promptloom::lanes_exp_mismatches((-104.0f32).to_bits(), (-0.0f32).to_bits(), 7);
    let pos = promptloom::lanes_exp_mismatches(0, 88.0f32.to_bits(), 7);
    assert_eq!((neg, pos), (0, 0), "f32s whose exp differs from expf");
    for x in [
        f32::NEG_INFINITY,
        f32::NAN,
        -88.0,
        -87.999_99,
        87.999_99,
        88.0,
        -0.0,
        0.0,
    ] {
        let bits = x.to_bits();
        assert_eq!(
            promptloom::lanes_exp_mismatches(bits, bits + 1, 1),
            0,
            "exp({x})"
        );
    }
}

/// Patch 9: a GGUF LoRA layer keeps its merged weight, and a layer the adapters do not target
/// merges nothing. On 0.8.1 the merged layer dropped the adapter (its output was the base
/// layer's) and the untargeted layer panicked ("Found no adapters to merge.").
#[test]
fn gguf_lora_layers_keep_their_merged_weights() {
    let dev = Device::Cpu;
    let (out_f, in_f, r, alpha) = (48, 64, 4, 8.0);
    let m = |rows: usize, cols: usize, seed: u64| {
        Tensor::from_vec(values(rows * cols, seed), (rows, cols), &dev).unwrap()
    };
    let w = m(out_f, in_f, 1);
    let a = m(r, in_f, 2);
    let b = m(out_f, r, 3);
    let x = m(3, in_f, 4).unsqueeze(0).unwrap();
    let layer = |b: &Tensor, targeted: bool| {
        promptloom::gguf_lora_layer_forward(&w, &[(a.clone(), b.clone(), alpha)], targeted, &x)
            .unwrap()
    };

    // A layer left alone is the quantized base layer; a zero B merges to it bit for bit
    // (dequantize, add zero, quantize again gives the same Q8_0 blocks).
    let base = layer(&b, false);
    assert_eq!(bits(&layer(&b.zeros_like().unwrap(), true)), bits(&base));

    // The merged layer computes x (W + alpha/r B A)^T, up to Q8_0 rounding.
    let delta = b.matmul(&a).unwrap().affine(alpha / r as f64, 0.0).unwrap();
    let expected = x
        .broadcast_matmul(&(&w + &delta).unwrap().t().unwrap())
        .unwrap();
    // Q8_0 rounds the merged weight and the activations: allow 2% of the largest output.
    let largest = max_abs_diff(&expected, &expected.zeros_like().unwrap());
    let merged = layer(&b, true);
    let err_merged = max_abs_diff(&merged, &expected);
    let err_base = max_abs_diff(&base, &expected);
    assert!(
        err_merged < 0.02 * largest && err_base > 0.2 * largest,
        "merged layer off by {err_merged}, base layer by {err_base}, largest output {largest}"
    );

    // Two adapters on one layer are both merged.
    let a2 = m(r, in_f, 5);
    let b2 = m(out_f, r, 6);
    let both = promptloom::gguf_lora_layer_forward(
        &w,
        &[
            (a.clone(), b.clone(), alpha),
            (a2.clone(), b2.clone(), alpha),
        ],
        true,
        &x,
    )
    .unwrap();
    let delta2 = b2
        .matmul(&a2)
        .unwrap()
        .affine(alpha / r as f64, 0.0)
        .unwrap();
    let expected2 = x
        .broadcast_matmul(&((&w + &delta).unwrap() + &delta2).unwrap().t().unwrap())
        .unwrap();
    let err_both = max_abs_diff(&both, &expected2);
    let largest2 = max_abs_diff(&expected2, &expected2.zeros_like().unwrap());
    assert!(
        err_both < 0.02 * largest2,
        "two adapters off by {err_both}, largest output {largest2}"
    );
}

/// Patch 16: q, k and v (and gate and up) stacked into one weight give each part's product
/// bit for bit, in Q8_0 (our kernel from two rows, candle's for one) and in the shipped file's
/// Q4_1 (candle's kernel), for one decoded row, a batch and a prompt; parts of different types
/// stay apart.
#[test]
fn stacked_projections_give_each_parts_product_bit_for_bit() {
    use candle_core::quantized::{GgmlDType, QTensor};
    let k = 576;
    let quantize = |n: usize, seed: u64, dtype: GgmlDType| {
        let w = Tensor::from_vec(values(n * k, seed), (n, k), &Device::Cpu).unwrap();
        QTensor::quantize(&w, dtype).unwrap()
    };
    let before = promptloom::stacked_built();
    for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_1] {
        // q/k/v of SmolLM2-135M, then gate/up.
        for (c, widths) in [vec![576, 192, 192], vec![1536, 1536]]
            .into_iter()
            .enumerate()
        {
            let parts = |stack| {
                let parts = widths
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| quantize(n, 50 + 10 * c as u64 + i as u64, dtype))
                    .collect();
                (parts, stack)
            };
            for (j, dims) in [[1, 1, k], [4, 1, k], [1, 37, k]].into_iter().enumerate() {
                let rows = dims[0] * dims[1];
                let x = Tensor::from_vec(values(rows * k, 900 + j as u64), &dims[..], &Device::Cpu)
                    .unwrap();
                let (p, _) = parts(false);
                let apart = promptloom::stacked_forward(p, false, &x).unwrap();
                let (p, _) = parts(true);
                let stacked = promptloom::stacked_forward(p, true, &x).unwrap();
                assert_eq!(stacked.len(), widths.len());
                for (i, (s, a)) in stacked.iter().zip(&apart).enumerate() {
                    assert_eq!(s.dims(), a.dims(), "{dtype:?} {widths:?} {dims:?} part {i}");
                    assert!(s.is_contiguous());
                    assert_eq!(bits(s), bits(a), "{dtype:?} {widths:?} {dims:?} part {i}");
                }
            }
        }
    }
    assert_eq!(
        promptloom::stacked_built() - before,
        2 * 2 * 3,
        "some parts were not stacked"
    );
    // Parts of two types are kept apart (one product each).
    let before = promptloom::stacked_built();
    let mixed = vec![
        quantize(192, 1, GgmlDType::Q8_0),
        quantize(192, 2, GgmlDType::Q4_1),
    ];
    let x = Tensor::from_vec(values(k, 3), (1, k), &Device::Cpu).unwrap();
    assert_eq!(
        promptloom::stacked_forward(mixed, true, &x).unwrap().len(),
        2
    );
    assert_eq!(promptloom::stacked_built(), before);
}

/// Patch 19: a key missing from a GGUF file's metadata is a plain error naming the key (no
/// candle error inside, whose formatting resolved a backtrace when RUST_BACKTRACE was set:
/// ~400 ms of every load, where loaders ask for optional keys), and a key of another type
/// still says which type it is.
#[test]
fn a_missing_gguf_key_is_a_plain_error_naming_it() {
    use candle_core::quantized::gguf_file::{self, Value};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.gguf");
    let metadata = [
        ("general.architecture", Value::String("llama".into())),
        ("llama.block_count", Value::U32(30)),
        ("llama.rope.freq_base", Value::F32(10_000.0)),
    ];
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let mut file = std::fs::File::create(&path).unwrap();
    gguf_file::write(&mut file, &metadata, &[]).unwrap();
    drop(file);
    let error = |key| promptloom::gguf_value_error(&path, key).unwrap();
    assert_eq!(error("block_count"), None);
    assert_eq!(
        error("expert_count").as_deref(),
        Some("`llama.expert_count` is missing from the GGUF metadata")
    );
    let wrong = error("rope.freq_base").unwrap();
    assert!(wrong.starts_with("`llama.rope.freq_base`"), "{wrong}");
    assert!(wrong.contains("value is not a `u32`"), "{wrong}");
    assert!(!wrong.contains('\n'), "a backtrace in the error: {wrong}");
}

/// Patch 20: the rows of a token embedding table kept quantized, each dequantized when it is
/// looked up, have the bits of the same rows of the table dequantized whole (Q8_0 and Q4_1;
/// ids of any shape, repeated ids), and an id outside the table is an error, not a panic.
#[test]
fn quantized_embedding_rows_match_the_dequantized_table_bit_for_bit() {
    use candle_core::quantized::{GgmlDType, QTensor};
    let (vocab, hidden) = (300, 576);
    for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_1] {
        let w = Tensor::from_vec(values(vocab * hidden, 7), (vocab, hidden), &Device::Cpu).unwrap();
        let table = QTensor::quantize(&w, dtype).unwrap();
        // What candle_nn's Embedding does with the dequantized table.
        let dense = table.dequantize(&Device::Cpu).unwrap();
        let lookup = |ids: &Tensor| {
            let mut dims = ids.dims().to_vec();
            dims.push(hidden);
            let flat = ids.flatten_all().unwrap();
            dense.index_select(&flat, 0).unwrap().reshape(dims).unwrap()
        };
        for ids in [
            vec![0u32],
            vec![299, 5, 5, 17, 0, 128],
            (0..300).rev().collect(),
        ] {
            for shape in [vec![ids.len()], vec![1, ids.len()]] {
                let ids = Tensor::from_vec(ids.clone(), shape, &Device::Cpu).unwrap();
                let table = QTensor::quantize(&w, dtype).unwrap();
                let got = promptloom::quantized_embedding(table, &ids).unwrap();
                let want = lookup(&ids);
                assert_eq!(got.dims(), want.dims(), "{dtype:?}");
                assert_eq!(bits(&got), bits(&want), "{dtype:?} {:?}", ids.dims());
            }
        }
        let outside = Tensor::from_vec(vec![3u32, 300], 2, &Device::Cpu).unwrap();
        let e = promptloom::quantized_embedding(table, &outside).unwrap_err();
        assert!(e.to_string().contains("token id 300 is outside"), "{e}");
    }
}
