//! Local-engine figures: promptloom's backend vs a bare mistral.rs loop, concurrency, and
//! time to first token with a cold and a warm prefix cache.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mistralrs::{RequestBuilder, Response, TextMessageRole};
use mistralrs_core::promptloom::PrefillAttention;

use super::figures::{
    decode_prompt, few_shot, file_label, file_name, measure, Measure, Out, Plan, Sample,
};
use crate::llm::local::{LocalBackend, LocalOptions};
use crate::llm::{Backend, ChatMessage, ChatRequest, Role, Sampling};

/// The re-quantized file to compare: `explicit`, else `<name>.Q8_0.gguf` beside the model,
/// made now (a couple of seconds) when missing.
pub(crate) fn requantized(model: &Path, explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    let target = crate::quantize::Target::Q8_0;
    let out = crate::quantize::derived_path(model, target);
    if !out.is_file() {
        println!(
            "making {} from {} (promptloom quantize --to q8_0)",
            out.display(),
            model.display()
        );
        crate::quantize::quantize(model, &out, target, false, &mut |_, _, _| {})?;
    }
    Ok(out)
}

fn greedy(prompt: &str, max_tokens: usize) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::new(Role::User, prompt)],
        sampling: Sampling {
            max_tokens: Some(max_tokens),
            ..Default::default()
        },
    }
}

/// The bare loop: mistral.rs's own API only, with the settings promptloom's backend uses
/// (one sequence in the engine, prefix cache of 16, greedy, same max tokens).
async fn bare_model(path: &Path) -> anyhow::Result<mistralrs::Model> {
    let options = LocalOptions::default();
    crate::llm::local::gguf_builder(path)
        .map_err(|e| anyhow::anyhow!(e))?
        .with_max_num_seqs(options.max_num_seqs)
        .with_prefix_cache_n(Some(options.prefix_cache_n))
        .build()
        .await
        .map_err(|e| anyhow::anyhow!("cannot load {}: {e:#}", path.display()))
}

async fn bare_run(model: &mistralrs::Model, prompt: &str, max: usize) -> anyhow::Result<Measure> {
    let params = crate::llm::local::engine_sampling(Some(max));
    let req = RequestBuilder::new()
        .add_message(TextMessageRole::User, prompt)
        .set_sampling(params);
    let t0 = Instant::now();
    let mut first = None;
    let mut last = t0;
    let mut n = 0u64;
    let mut prompt_tokens = 0u64;
    let mut stream = model
        .stream_chat_request(req)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    while let Some(r) = stream.next().await {
        match r {
            Response::Chunk(c) => {
                if c.choices
                    .iter()
                    .any(|c| c.delta.content.as_deref().is_some_and(|t| !t.is_empty()))
                {
                    let now = Instant::now();
                    first.get_or_insert(now);
                    last = now;
                    n += 1;
                }
                if let Some(u) = &c.usage {
                    n = u.completion_tokens as u64;
                    prompt_tokens = u.prompt_tokens as u64;
                }
                if c.choices.iter().any(|c| c.finish_reason.is_some()) {
                    break;
                }
            }
            Response::Done(_) => break,
            Response::InternalError(e) => anyhow::bail!("engine error: {e}"),
            Response::ModelError(e, _) => anyhow::bail!("model error: {e}"),
            Response::ValidationError(e) => anyhow::bail!("engine refused: {e}"),
            _ => {}
        }
    }
    let first = first.ok_or_else(|| anyhow::anyhow!("no tokens"))?;
    let ttft = first - t0;
    let span = (last - first).as_secs_f64();
    Ok(Measure {
        ttft,
        prompt_tokens,
        tokens: n,
        decode_tps: if span > 0.0 {
            n.saturating_sub(1) as f64 / span
        } else {
            0.0
        },
        prompt_tps: prompt_tokens as f64 / ttft.as_secs_f64().max(1e-9),
    })
}

async fn ours(path: &Path, options: LocalOptions) -> anyhow::Result<LocalBackend> {
    let b = LocalBackend::new(path.to_path_buf(), options);
    b.ready().await.map_err(|e| anyhow::anyhow!(e))?;
    // The file's hash, computed once after the load at the lowest priority, must not run
    // inside the figures measured next: identity() waits for it while the engine is idle.
    let waiting = b.clone();
    tokio::task::spawn_blocking(move || waiting.identity()).await?;
    // One short answer first: the first decode step of a load repacks the weights for patch
    // 21's kernel (once), which is not a rate.
    ours_run(&b, &decode_prompt(998, "warm-up"), 4).await?;
    Ok(b)
}

async fn ours_run(b: &LocalBackend, prompt: &str, max: usize) -> anyhow::Result<Measure> {
    let (m, _) = measure(b.start(greedy(prompt, max)))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(m)
}

#[derive(Default)]
struct Rates {
    prompt: Sample,
    decode: Sample,
}

impl Rates {
    fn add(&mut self, m: &Measure) {
        self.prompt.push(m.prompt_tps);
        self.decode.push(m.decode_tps);
    }
}

/// Which of the engine's speed patches are on (vendor/README.md, patches 6–8, 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Paths {
    /// The engine thread is a worker of its own rayon pool (read when an engine starts).
    pub pool: bool,
    /// q/k/v and gate/up stacked into one product each (patch 16; read when a model loads).
    pub stacked: bool,
    /// The Q8_0 VNNI mat-mul kernel.
    pub kernel: bool,
    /// The kernel also for one activation row (a decoded token), as before issue 12; by
    /// default one row goes to candle's kernel.
    pub kernel_one_row: bool,
    /// The Q8_0 kernel's 512-bit form, two outputs per `vpdpbusd` (patch 12), or patch 7's
    /// 256-bit one.
    pub q8_wide: bool,
    /// The prompt-attention kernel: bit-exact in lanes (patch 11, the default), bit-exact
    /// row at a time (patch 8), tiled (patch 10) or 0.8.1's.
    pub attention: PrefillAttention,
    /// Decode steps on patch 21's Q8_0 kernel with outputs in lanes (off: patch 17's and
    /// candle's, as before it).
    pub lanes: bool,
}

impl Paths {
    pub const PATCHED: Paths = Paths {
        pool: true,
        stacked: true,
        kernel: true,
        kernel_one_row: false,
        q8_wide: true,
        attention: PrefillAttention::Lanes,
        lanes: true,
    };
    pub const UNPATCHED: Paths = Paths {
        pool: false,
        stacked: false,
        kernel: false,
        kernel_one_row: false,
        q8_wide: false,
        attention: PrefillAttention::Original,
        lanes: false,
    };
    /// The patched engine with patch 10's tiled prompt attention (opt-in: not bit-exact, so
    /// not the default) in place of patch 11's exact one.
    pub const TILED_ATTENTION: Paths = Paths {
        attention: PrefillAttention::Tiled,
        ..Paths::PATCHED
    };
    /// The patched engine with patch 8's row-at-a-time exact prompt attention (what patch 11
    /// replaces; the same bits).
    pub const ROW_ATTENTION: Paths = Paths {
        attention: PrefillAttention::Exact,
        ..Paths::PATCHED
    };

    /// Switch the kernels for the requests that follow (and the pool for engines started
    /// from now on).
    pub fn set(self) {
        use mistralrs_core::promptloom::*;
        set_engine_thread_in_pool(self.pool);
        set_stacked_projections(self.stacked);
        set_q8_kernel(self.kernel);
        set_q8_kernel_min_rows(if self.kernel_one_row {
            1
        } else {
            Q8_KERNEL_DEFAULT_MIN_ROWS
        });
        set_q8_wide(self.q8_wide);
        set_prefill_attention(self.attention);
        set_q8_lanes(self.lanes);
    }

    /// What the figures of a run with these paths, against the patched engine's, show the
    /// gain of.
    fn gain_of(self) -> &'static str {
        if self == Paths::UNPATCHED {
            "all speed patches"
        } else if !self.pool {
            "the engine pool"
        } else if !self.stacked {
            "stacked projections"
        } else if self.kernel_one_row {
            "candle's kernel for one row"
        } else if !self.lanes && self.kernel && self.q8_wide {
            "patch 21's decode kernel"
        } else if self.kernel && !self.q8_wide {
            "the 512-bit Q8_0 kernel"
        } else {
            "the Q8_0 kernel"
        }
    }
}

/// One way of running the bare loop: the patched engine, or with some of its changes off.
struct Bare {
    name: &'static str,
    paths: Paths,
    model: mistralrs::Model,
    rates: Rates,
}

/// Section 1; also returns (file label, promptloom decode median) for the llama comparison.
///
/// Beside promptloom's backend and the bare loop, the bare loop runs with the engine's speed
/// patches switched off (0.8.1's threading, candle's Q8_0 kernel), in the same run, so each
/// patch's gain is a ratio of figures measured side by side.
pub(crate) async fn local_vs_bare(
    plan: &Plan,
    files: &[(&str, PathBuf)],
) -> anyhow::Result<(Out, Vec<(String, f64)>)> {
    let mut out = Out::default();
    out.line(format!(
        "\nLocal decode: promptloom's backend vs a bare mistral.rs loop, identical settings \
         (greedy, {} tokens, prefix cache 16), runs interleaved, order rotating; \
         tok/s median [min–max] [{}]",
        plan.tokens,
        plan.machine.tag()
    ));
    out.line(format!(
        "  {:<36} {:<34} {:>22} {:>22} {:>7}",
        "file", "engine", "prompt tok/s", "decode tok/s", "ratio"
    ));
    let kernel = mistralrs_core::promptloom::q8_kernel_available();
    let mut medians = Vec::new();
    for (label, path) in files {
        let name = file_label(path, label);
        let mut variants = vec![("bare", Paths::PATCHED)];
        if kernel && is_q8_0(path) {
            if mistralrs_core::promptloom::q8_lanes_available() {
                variants.push((
                    "bare, decode before patch 21",
                    Paths {
                        lanes: false,
                        ..Paths::PATCHED
                    },
                ));
            }
            variants.push((
                "bare, our Q8_0 kernel for 1 row too",
                Paths {
                    kernel_one_row: true,
                    lanes: false,
                    ..Paths::PATCHED
                },
            ));
            variants.push((
                "bare, patch 7's 256-bit Q8_0 kernel",
                Paths {
                    q8_wide: false,
                    ..Paths::PATCHED
                },
            ));
            variants.push((
                "bare, candle's Q8_0 kernel",
                Paths {
                    kernel: false,
                    lanes: false,
                    ..Paths::PATCHED
                },
            ));
        }
        variants.push((
            "bare, q/k/v and gate/up apart",
            Paths {
                stacked: false,
                ..Paths::PATCHED
            },
        ));
        variants.push((
            "bare, 0.8.1 threading",
            Paths {
                pool: false,
                ..Paths::PATCHED
            },
        ));
        variants.push(("bare, 0.8.1 (no speed patch)", Paths::UNPATCHED));
        let mut bares = Vec::new();
        for (vname, paths) in variants {
            paths.set();
            let model = bare_model(path).await;
            Paths::PATCHED.set();
            bares.push(Bare {
                name: vname,
                paths,
                model: model?,
                rates: Rates::default(),
            });
        }
        let ours = ours(path, LocalOptions::default()).await?;
        // One warm-up each: the first request pays one-off allocations.
        for b in &bares {
            b.paths.set();
            let r = bare_run(&b.model, &decode_prompt(999, "warm-up"), 8).await;
            Paths::PATCHED.set();
            r?;
        }
        ours_run(&ours, &decode_prompt(999, "warm-up"), 8).await?;
        let mut o = Rates::default();
        // Rotate which goes first, so drift (heat, other load) falls on all alike.
        let n = bares.len() + 1;
        for run in 0..plan.runs {
            let prompt = decode_prompt(run, "decode");
            for slot in 0..n {
                let which = (slot + run) % n;
                if let Some(b) = bares.get_mut(which) {
                    b.paths.set();
                    let m = bare_run(&b.model, &prompt, plan.tokens).await;
                    Paths::PATCHED.set();
                    b.rates.add(&m?);
                } else {
                    o.add(&ours_run(&ours, &prompt, plan.tokens).await?);
                }
            }
        }
        drop(ours);
        let bd = bares[0].rates.decode.median().unwrap_or(f64::NAN);
        let od = o.decode.median().unwrap_or(f64::NAN);
        for (i, b) in bares.iter().enumerate() {
            let d = b.rates.decode.median().unwrap_or(f64::NAN);
            out.line(format!(
                "  {:<36} {:<34} {:>22} {:>22} {:>7}",
                if i == 0 { name.as_str() } else { "" },
                b.name,
                b.rates.prompt.show(1),
                b.rates.decode.show(1),
                if i == 0 {
                    String::new()
                } else {
                    format!("{:.3}", d / bd)
                }
            ));
            if i > 0 {
                let what = b.paths.gain_of();
                out.goal(
                    &format!("decode gain from {what}, {label}"),
                    "printed",
                    format!("{:.2}x ({bd:.1} vs {d:.1} tok/s)", bd / d),
                    None,
                );
                let p = b.rates.prompt.median().unwrap_or(f64::NAN);
                let bp = bares[0].rates.prompt.median().unwrap_or(f64::NAN);
                out.goal(
                    &format!("prompt gain from {what}, {label}"),
                    "printed",
                    format!("{:.2}x ({bp:.0} vs {p:.0} tok/s)", bp / p),
                    None,
                );
            }
        }
        let ratio = od / bd;
        out.line(format!(
            "  {:<36} {:<34} {:>22} {:>22} {:>7.3}",
            "",
            "promptloom",
            o.prompt.show(1),
            o.decode.show(1),
            ratio
        ));
        out.goal(
            &format!("promptloom / bare mistral.rs decode, {label}"),
            "≥ 0.97",
            format!("{ratio:.3} ({od:.1} vs {bd:.1} tok/s)"),
            Some(ratio >= 0.97),
        );
        medians.push((label.to_string(), od));
        // The bare loop, and as it was before issue 12, for the llama.cpp section.
        medians.push((format!("{label}, bare"), bd));
        if let Some(b) = bares.iter().find(|b| b.paths.kernel_one_row) {
            medians.push((
                format!("{label}, bare, our Q8_0 kernel for 1 row too"),
                b.rates.decode.median().unwrap_or(f64::NAN),
            ));
        }
        drop(bares);
    }
    let best = medians
        .iter()
        .filter(|(l, _)| files.iter().any(|(f, _)| *f == l.as_str()))
        .map(|(_, r)| *r)
        .fold(f64::NAN, f64::max);
    out.goal(
        "best local decode (shipped or re-quantized file)",
        "≥ 60 tok/s",
        format!("{best:.1} tok/s"),
        Some(best >= 60.0),
    );
    Ok((out, medians))
}

/// Whether the GGUF file's weights are Q8_0 (the kernel's type), from its name.
fn is_q8_0(path: &Path) -> bool {
    file_name(path).to_ascii_lowercase().contains("q8_0")
}

/// Section 3: aggregate tokens/s with k variants asking at once: promptloom queueing them
/// (one sequence in the engine) against the engine batching them (max_num_seqs = k), with
/// the answers compared to the one-at-a-time ones.
pub(crate) async fn concurrency(plan: &Plan, model: &Path) -> anyhow::Result<Out> {
    use mistralrs_core::promptloom::decode_steps;
    let mut out = Out::default();
    let tokens = (plan.tokens / 2).max(16);
    out.line(format!(
        "\nConcurrency: k variants at once on the local model ({}), {tokens} tokens each; \
         aggregate tok/s = all tokens / wall time; 'same' = answers identical to the \
         one-at-a-time ones; 'batch' = mean sequences per decode step [{}]",
        file_name(model),
        plan.machine.tag()
    ));
    out.line(format!(
        "  {:<44} {:>3}  {:>15}  {:>7}  {:>22}  {:>6}  {:>5}",
        "", "k", "aggregate tok/s", "wall s", "ttft ms (per stream)", "batch", "same"
    ));
    let one = LocalOptions {
        max_num_seqs: 1,
        ..LocalOptions::default()
    };
    let b = ours(model, one.clone()).await?;
    let mut alone: Vec<String> = Vec::new();
    // One at a time, k streams queue: each k's aggregate is a one-stream rate, so their
    // median is the baseline (one 64-token run alone is noisy).
    let mut single = Sample::default();
    let ks: &[usize] = if plan.quick { &[1, 4] } else { &[1, 2, 4, 8] };
    for &k in ks {
        let before = decode_steps();
        let r = round(&b, k, tokens, "concurrency").await?;
        let batch = decode_steps().since(before);
        out.line(format!(
            "  {:<44} {k:>3}  {}  {:>6.2}",
            if k == 1 {
                "one at a time (max_num_seqs 1)"
            } else {
                ""
            },
            r.line,
            batch.tokens as f64 / batch.steps.max(1) as f64
        ));
        single.push(r.aggregate);
        alone = r.texts;
    }
    // One at a time as before issue 12 (our Q8_0 kernel for the single decode row too), for
    // the ratio before/after in this run; a new prompt, so the prefix cache gives it nothing.
    let mut single_one_row = None;
    if mistralrs_core::promptloom::q8_kernel_available() && is_q8_0(model) {
        let one_row = Paths {
            kernel_one_row: true,
            lanes: false,
            ..Paths::PATCHED
        };
        let r = round_on(one_row, &b, 1, tokens, "concurrency, kernel for 1 row").await?;
        out.line(format!(
            "  {:<44} {:>3}  {}",
            "one at a time, our Q8_0 kernel for 1 row too", 1, r.line
        ));
        single_one_row = Some(r.aggregate);
    }
    // One at a time and four at once with decode steps on the kernels before patch 21, for
    // its before/after in this run; new prompts, so the prefix cache gives them nothing.
    let before_21 = Paths {
        lanes: false,
        ..Paths::PATCHED
    };
    let mut single_before_21 = None;
    if mistralrs_core::promptloom::q8_lanes_available() && is_q8_0(model) {
        let r = round_on(before_21, &b, 1, tokens, "concurrency, before patch 21").await?;
        out.line(format!(
            "  {:<44} {:>3}  {}",
            "one at a time, decode before patch 21", 1, r.line
        ));
        single_before_21 = Some(r.aggregate);
    }
    // The variant prompts of different lengths, one at a time, for the last comparison.
    let variants: Vec<String> = (0..4).map(variant_prompt).collect();
    let mut variants_alone = Vec::new();
    let (t0, mut variant_tokens) = (Instant::now(), 0u64);
    for p in &variants {
        let (m, text) = measure(b.start(greedy(p, tokens)))
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        variant_tokens += m.tokens;
        variants_alone.push(text);
    }
    let variants_single = variant_tokens as f64 / t0.elapsed().as_secs_f64();
    out.line(format!(
        "  {:<44} {:>3}  {variants_single:>15.1}  {:>7.1}",
        "4 prompts of different length, one at a time",
        1,
        t0.elapsed().as_secs_f64()
    ));
    // Four answers of --tokens each (twice the length above) one at a time, for the ratio at
    // that length: the prompts' share of the time shrinks as answers grow.
    let long = plan.tokens.max(tokens);
    let single_long = if long > tokens {
        let r = round(&b, 4, long, "concurrency, long").await?;
        out.line(format!(
            "  {:<44} {:>3}  {}",
            format!("one at a time, {long} tokens each"),
            1,
            r.line
        ));
        Some((r.aggregate, r.texts))
    } else {
        None
    };
    drop(b);
    let single = single.median().unwrap_or(f64::NAN);
    out.line(format!(
        "  {:<44} {:>3}  {single:>15.1}",
        "one at a time, median of the rows above", 1
    ));
    let mut longer = None;
    let mut ratio_before_21 = None;
    let mut mixed = (f64::NAN, 0usize);
    let mut four = (f64::NAN, 0usize);
    for &k in ks.iter().filter(|&&k| k > 1) {
        let batched = ours(
            model,
            LocalOptions {
                max_num_seqs: k,
                ..LocalOptions::default()
            },
        )
        .await?;
        let before = decode_steps();
        let r = round(&batched, k, tokens, "concurrency").await?;
        let batch = decode_steps().since(before);
        let same = r.texts.iter().zip(&alone).filter(|(a, b)| a == b).count();
        out.line(format!(
            "  {:<44} {k:>3}  {}  {:>6.2}  {same}/{k}",
            if k == 2 {
                "engine batching (max_num_seqs k), same length"
            } else {
                ""
            },
            r.line,
            batch.tokens as f64 / batch.steps.max(1) as f64
        ));
        if k == 4 {
            four = (r.aggregate, same);
            if let Some((single_long, texts)) = &single_long {
                let r = round(&batched, k, long, "concurrency, long").await?;
                let same = r.texts.iter().zip(texts).filter(|(a, b)| a == b).count();
                out.line(format!(
                    "  {:<44} {k:>3}  {}  {:>6}  {same}/{k}",
                    format!("  the same, {long} tokens each"),
                    r.line,
                    ""
                ));
                longer = Some((long, r.aggregate / single_long, same));
            }
            if let Some(single) = single_before_21 {
                let r = round_on(
                    before_21,
                    &batched,
                    k,
                    tokens,
                    "concurrency, before patch 21",
                )
                .await?;
                out.line(format!(
                    "  {:<44} {k:>3}  {}",
                    "  the same, decode before patch 21", r.line
                ));
                ratio_before_21 = Some(r.aggregate / single);
            }
            // A case's variants differ in length: patch 13 decodes them in shared steps;
            // 0.8.1's length buckets make them take turns step by step.
            for (label, on) in [
                ("engine batching, 4 prompts of different length", true),
                ("  the same, 0.8.1's length buckets", false),
            ] {
                mistralrs_core::promptloom::set_mixed_length_decode(on);
                let r = variants_round(&batched, &variants, tokens, &variants_alone).await;
                mistralrs_core::promptloom::set_mixed_length_decode(true);
                let (line, aggregate, same) = r?;
                out.line(format!("  {label:<44} {k:>3}  {line}  {same}/4"));
                if on {
                    mixed = (aggregate, same);
                }
            }
        }
        drop(batched);
    }
    let (agg, same) = four;
    out.goal(
        "4 variants at once (engine batching) / one at a time, aggregate tok/s",
        "≥ 2.0, 4/4 same",
        format!(
            "{:.2} ({agg:.1} vs {single:.1}), {same}/4 same",
            agg / single
        ),
        Some(agg / single >= 2.0 && same == 4),
    );
    if let Some((long, ratio, same)) = longer {
        out.goal(
            &format!("4 variants at once / one at a time, {long} tokens each"),
            "printed",
            format!("{ratio:.2}, {same}/4 same"),
            None,
        );
    }
    if let Some(ratio) = ratio_before_21 {
        out.goal(
            "4 variants at once / one at a time, decode before patch 21",
            "printed",
            format!("{ratio:.2}"),
            None,
        );
    }
    let (mixed_agg, mixed_same) = mixed;
    out.goal(
        "4 variants of different lengths at once / one at a time",
        "≥ 2.0, 4/4 same",
        format!(
            "{:.2} ({mixed_agg:.1} vs {variants_single:.1}), {mixed_same}/4 same",
            mixed_agg / variants_single
        ),
        Some(mixed_agg / variants_single >= 2.0 && mixed_same == 4),
    );
    if let Some(before) = single_one_row {
        out.goal(
            "4 at once / one at a time, our Q8_0 kernel for 1 row too",
            "printed",
            format!("{:.2} ({agg:.1} vs {before:.1})", agg / before),
            None,
        );
    }
    Ok(out)
}

/// The 4 variant prompts (`variant_prompt`) at once on `b`: the line's aggregate tok/s, wall
/// time and mean sequences per decode step, the aggregate, and how many answers equal the
/// one-at-a-time ones.
async fn variants_round(
    b: &LocalBackend,
    variants: &[String],
    tokens: usize,
    alone: &[String],
) -> anyhow::Result<(String, f64, usize)> {
    use mistralrs_core::promptloom::decode_steps;
    let before = decode_steps();
    let t0 = Instant::now();
    let handles: Vec<_> = variants
        .iter()
        .map(|p| b.start(greedy(p, tokens)))
        .collect();
    let results = futures::future::join_all(handles.into_iter().map(measure)).await;
    let wall = t0.elapsed().as_secs_f64();
    let batch = decode_steps().since(before);
    let (mut total, mut same) = (0u64, 0);
    for (r, want) in results.into_iter().zip(alone) {
        let (m, text) = r.map_err(|e| anyhow::anyhow!(e))?;
        total += m.tokens;
        same += usize::from(&text == want);
    }
    let aggregate = total as f64 / wall;
    Ok((
        format!(
            "{aggregate:>15.1}  {wall:>7.1}  {:>22}  {:>6.2}",
            "",
            batch.tokens as f64 / batch.steps.max(1) as f64
        ),
        aggregate,
        same,
    ))
}

/// The i-th of 4 variant prompts of different token lengths (like a case's variants).
fn variant_prompt(i: usize) -> String {
    format!(
        "{}{}",
        decode_prompt(i, "variant"),
        " Use vivid, concrete details.".repeat(i)
    )
}

struct Round {
    line: String,
    aggregate: f64,
    texts: Vec<String>,
}

/// k requests at once (the prompts of k = 8 are a superset of the smaller rounds'); the
/// table columns and the answers in prompt order.
async fn round(b: &LocalBackend, k: usize, tokens: usize, tag: &str) -> anyhow::Result<Round> {
    let t0 = Instant::now();
    let handles: Vec<_> = (0..k)
        .map(|i| b.start(greedy(&decode_prompt(i, tag), tokens)))
        .collect();
    let results = futures::future::join_all(handles.into_iter().map(measure)).await;
    let wall = t0.elapsed().as_secs_f64();
    let mut total = 0u64;
    let mut ttft = Sample::default();
    let mut texts = Vec::new();
    for r in results {
        let (m, text) = r.map_err(|e| anyhow::anyhow!(e))?;
        total += m.tokens;
        ttft.push(m.ttft.as_secs_f64() * 1e3);
        texts.push(text);
    }
    let aggregate = total as f64 / wall;
    Ok(Round {
        line: format!("{aggregate:>15.1}  {wall:>7.1}  {:>22}", ttft.show(0)),
        aggregate,
        texts,
    })
}

/// `round` with the engine's kernels switched to `paths` (the patched ones again after it).
async fn round_on(
    paths: Paths,
    b: &LocalBackend,
    k: usize,
    tokens: usize,
    tag: &str,
) -> anyhow::Result<Round> {
    paths.set();
    let r = round(b, k, tokens, tag).await;
    Paths::PATCHED.set();
    r
}

/// Section 4: time to first token of the few-shot prompt: a cold start (the request that
/// loads the model), a new prefix on the loaded model (prompt reading), and with the prefix
/// warm. Also returns the prompt reading rate (tok/s, new prefix, model loaded) for the
/// llama.cpp comparison.
pub(crate) async fn ttft(plan: &Plan, model: &Path) -> anyhow::Result<(Out, f64)> {
    let mut out = Out::default();
    // The first request of a new backend loads the model: what a user waits for at start,
    // the first time (the model's hash is not remembered yet, so it is computed meanwhile,
    // as `promptloom` does, at the lowest priority).
    let hashes = tempfile::tempdir()?;
    let b = LocalBackend::new(
        model.to_path_buf(),
        LocalOptions {
            hash_cache: Some(hashes.path().join("gguf-sha256.tsv")),
            ..LocalOptions::default()
        },
    );
    let packing = mistralrs_core::promptloom::q8_lanes_pack_micros();
    let (start, _) = measure(b.start(few_shot(
        &format!("start {}", std::process::id()),
        "What is the capital of England?",
    )))
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    // Patch 21 repacks the head before the first token and the layers at the first decode
    // step: once per load.
    let packing = (mistralrs_core::promptloom::q8_lanes_pack_micros() - packing) as f64 / 1e3;
    let (mut cold, mut warm, mut rate) = (Sample::default(), Sample::default(), Sample::default());
    let mut prompt_tokens = start.prompt_tokens;
    let rounds = if plan.quick { 1 } else { plan.runs.clamp(1, 2) };
    for round in 0..rounds {
        let nonce = format!("session {round}-{}", std::process::id());
        let (m, _) = measure(b.start(few_shot(&nonce, "What is the capital of England?")))
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        prompt_tokens = m.prompt_tokens;
        cold.push(ms(m.ttft));
        rate.push(m.prompt_tps);
        for q in ["Scotland", "Wales", "Iceland"] {
            let (m, _) = measure(b.start(few_shot(
                &nonce,
                &format!("What is the capital of {q}, and what is it known for?"),
            )))
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
            warm.push(ms(m.ttft));
        }
    }
    drop(b);
    // The model load alone, on a new backend.
    let t = Instant::now();
    LocalBackend::new(model.to_path_buf(), LocalOptions::default())
        .ready()
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let load = t.elapsed();
    // The same cold prompt with every speed patch off (0.8.1's threading and kernels), and
    // with one of patch 11's, patch 12's or patch 10's (opt-in) kernels swapped for the one
    // it replaces or competes with: (row label, paths, tag, note, gain goal, whether the
    // gain is the alternative's over the default instead of the default's over it).
    let alternatives = [
        (
            "cold, 0.8.1 paths",
            Paths::UNPATCHED,
            "unpatched",
            "every speed patch off",
            "prompt reading gain from the speed patches, few-shot",
            false,
        ),
        (
            "cold, row attention",
            Paths::ROW_ATTENTION,
            "rows",
            "patch 8, row at a time, same bits",
            "prompt reading gain of the lanes attention over patch 8's, few-shot",
            false,
        ),
        (
            "cold, 256-bit Q8_0 kernel",
            Paths {
                q8_wide: false,
                ..Paths::PATCHED
            },
            "narrow",
            "patch 7's form, same bits",
            "prompt reading gain of the 512-bit Q8_0 kernel over patch 7's, few-shot",
            false,
        ),
        (
            "cold, tiled attention",
            Paths::TILED_ATTENTION,
            "tiled",
            "patch 10, opt-in: not bit-exact",
            "prompt reading gain of the tiled attention (opt-in), few-shot",
            true,
        ),
    ];
    let mut measured = Vec::new();
    for (label, paths, tag, note, gain, inverse) in alternatives {
        measured.push((
            label,
            note,
            gain,
            inverse,
            cold_with(model, paths, tag).await?,
        ));
    }
    let lanes = if mistralrs_core::promptloom::lanes_attention_available() {
        "patch 11's lanes attention"
    } else {
        "patch 8's attention: no AVX-512F here for patch 11's"
    };
    out.line(format!(
        "\nTime to first token, few-shot prompt of {prompt_tokens} tokens (system prompt + 34 \
         examples shared, last question differs), promptloom local backend, {} [{}]",
        file_name(model),
        plan.machine.tag()
    ));
    out.line(format!(
        "  start (loads the model)  {:>26} ms   of which the load alone {:.0} ms; then {packing:.0} ms \
         repacking weights for patch 21 (the head before the first token, the layers at the \
         first decode step)",
        format!("{:.0}", ms(start.ttft)),
        ms(load)
    ));
    out.line(format!(
        "  cold (new prefix)        {:>26} ms   prompt {} tok/s ({lanes})",
        cold.show(0),
        rate.show(0)
    ));
    out.line(format!(
        "  warm (prefix cached)     {:>26} ms",
        warm.show(0)
    ));
    for (label, note, _, _, m) in &measured {
        // Values right-aligned to column 51, as the rows above.
        out.line(format!(
            "  {label}{:>w$} ms   prompt {:.0} tok/s ({note})",
            format!("{:.0}", ms(m.ttft)),
            m.prompt_tps,
            w = 51usize.saturating_sub(label.len())
        ));
    }
    let (c, w, r) = (
        cold.median().unwrap_or(f64::NAN),
        warm.median().unwrap_or(f64::NAN),
        rate.median().unwrap_or(f64::NAN),
    );
    let s = ms(start.ttft);
    out.goal(
        &format!("TTFT, {prompt_tokens}-token few-shot, start incl. model load"),
        "≤ 5000 ms",
        format!("{s:.0} ms"),
        Some(s <= 5000.0),
    );
    out.goal(
        &format!("TTFT, {prompt_tokens}-token few-shot: new prefix / warm"),
        "printed",
        format!("{c:.0} / {w:.0} ms"),
        None,
    );
    out.goal(
        "prompt reading, few-shot, new prefix",
        "printed",
        format!("{r:.0} tok/s"),
        None,
    );
    for (_, _, gain, inverse, m) in &measured {
        let (a, b) = if *inverse {
            (m.prompt_tps, r)
        } else {
            (r, m.prompt_tps)
        };
        out.goal(
            gain,
            "printed",
            format!("{:.2}x ({a:.0} vs {b:.0} tok/s)", a / b),
            None,
        );
    }
    Ok((out, r))
}

/// The few-shot prompt, new prefix, on a new engine with `paths` (the patched paths again
/// afterwards, whatever happened).
async fn cold_with(model: &Path, paths: Paths, tag: &str) -> anyhow::Result<Measure> {
    paths.set();
    let m = async {
        let b = ours(model, LocalOptions::default()).await?;
        let (m, _) = measure(b.start(few_shot(
            &format!("{tag} {}", std::process::id()),
            "What is the capital of England?",
        )))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
        anyhow::Ok(m)
    }
    .await;
    Paths::PATCHED.set();
    m
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The start of a branch: `parent`'s conversation with its answer cut after about half its
/// words and `token` in place of the next, sent as a partial assistant message to continue
/// (as the heat view's branch from a token builds it).
fn branch_request(parent: &ChatRequest, answer: &str, token: &str) -> ChatRequest {
    let words: Vec<&str> = answer.split_inclusive(' ').collect();
    let kept: String = words[..words.len() / 2].concat();
    let mut r = parent.clone();
    r.messages.push(ChatMessage::new(
        Role::Assistant,
        format!("{}{token}", kept.trim_end()),
    ));
    r.sampling.max_tokens = Some(8);
    r
}

/// Section 5 (issue 16): how long a branch waits for its first token on the local model. A
/// parent answers the few-shot prompt (a new prefix: the whole prompt is read); then a branch
/// from a token of its answer (a continuation: only the partial answer is new) and a sampled
/// request of the same prompt (a tree-of-thought alternative or one of N samples: seeded,
/// temperature 0.8, the prompt cached) each time their first token.
pub(crate) async fn branch(plan: &Plan, model: &Path) -> anyhow::Result<Out> {
    let mut out = Out::default();
    let b = ours(model, LocalOptions::default()).await?;
    // A warm-up: the first request pays one-off allocations.
    measure(b.start(greedy(&decode_prompt(999, "warm-up"), 8)))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let (mut parent, mut branch, mut sample) =
        (Sample::default(), Sample::default(), Sample::default());
    let mut prompt_tokens = 0;
    let rounds = if plan.quick { 1 } else { plan.runs.clamp(1, 3) };
    for round in 0..rounds {
        let nonce = format!("branch {round}-{}", std::process::id());
        let mut req = few_shot(
            &nonce,
            "What is the capital of Norway, and what is it known for?",
        );
        req.sampling.max_tokens = Some(24);
        let (m, answer) = measure(b.start(req.clone()))
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        prompt_tokens = m.prompt_tokens;
        parent.push(ms(m.ttft));
        let (m, _) = measure(b.start(branch_request(&req, &answer, " However")))
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        branch.push(ms(m.ttft));
        let mut alt = req.clone();
        alt.sampling.temperature = Some(0.8);
        alt.sampling.seed = Some(1 + round as u64);
        let (m, _) = measure(b.start(alt))
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        sample.push(ms(m.ttft));
    }
    drop(b);
    out.line(format!(
        "\nBranch start: time to first token after the parent answered, few-shot prompt of \
         {prompt_tokens} tokens, promptloom local backend, {}; ms median [min–max] of {rounds} [{}]",
        file_name(model),
        plan.machine.tag()
    ));
    out.line(format!(
        "  parent (new prefix, whole prompt read)         {:>24} ms",
        parent.show(0)
    ));
    out.line(format!(
        "  branch from a token (continuation)             {:>24} ms",
        branch.show(0)
    ));
    out.line(format!(
        "  sample / tree-of-thought alternative (seeded)  {:>24} ms",
        sample.show(0)
    ));
    let (p, br, s) = (
        parent.median().unwrap_or(f64::NAN),
        branch.median().unwrap_or(f64::NAN),
        sample.median().unwrap_or(f64::NAN),
    );
    out.goal(
        &format!("branch from a token starts, {prompt_tokens}-token prompt"),
        "< 1000 ms",
        format!("{br:.0} ms ({:.2}x the parent's {p:.0} ms)", br / p),
        Some(br < 1000.0),
    );
    out.goal(
        &format!("sampled alternative starts, {prompt_tokens}-token prompt"),
        "< 1000 ms",
        format!("{s:.0} ms"),
        Some(s < 1000.0),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_branch_keeps_half_the_answer_then_the_new_token() {
        let parent = greedy("Name a capital.", 24);
        let r = branch_request(
            &parent,
            "The capital of Norway is Oslo, on a fjord.",
            " However",
        );
        assert_eq!(r.messages.len(), 2);
        assert_eq!(r.messages[0], parent.messages[0]);
        assert_eq!(r.messages[1].role, Role::Assistant);
        assert_eq!(r.messages[1].content, "The capital of Norway However");
        assert_eq!(r.sampling.max_tokens, Some(8));
    }
}
