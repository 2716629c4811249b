//! Local-engine figures: promptloom's backend vs a bare mistral.rs loop, concurrency, and
//! time to first token with a cold and a warm prefix cache.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mistralrs::{RequestBuilder, Response, TextMessageRole};

use super::{decode_prompt, file_label, file_name, measure, Measure, Out, Plan, Sample};
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

/// Section 1; also returns (file label, promptloom decode median) for the llama comparison.
pub(crate) async fn local_vs_bare(
    plan: &Plan,
    files: &[(&str, PathBuf)],
) -> anyhow::Result<(Out, Vec<(String, f64)>)> {
    let mut out = Out::default();
    out.line(format!(
        "\nLocal decode: promptloom's backend vs a bare mistral.rs loop, identical settings \
         (greedy, {} tokens, one sequence in the engine, prefix cache 16), runs interleaved, order alternating; \
         tok/s median [min–max]",
        plan.tokens
    ));
    out.line(format!(
        "  {:<36} {:<11} {:>22} {:>22} {:>7}",
        "file", "engine", "prompt tok/s", "decode tok/s", "ratio"
    ));
    let mut medians = Vec::new();
    for (label, path) in files {
        let name = file_label(path, label);
        let bare = bare_model(path).await?;
        let ours = ours(path, LocalOptions::default()).await?;
        // One warm-up each: the first request pays one-off allocations.
        bare_run(&bare, &decode_prompt(999, "warm-up"), 8).await?;
        ours_run(&ours, &decode_prompt(999, "warm-up"), 8).await?;
        let (mut b, mut o) = (Rates::default(), Rates::default());
        // Alternate which goes first, so drift (heat, other load) falls on both alike.
        for run in 0..plan.runs {
            let prompt = decode_prompt(run, "decode");
            if run % 2 == 0 {
                b.add(&bare_run(&bare, &prompt, plan.tokens).await?);
                o.add(&ours_run(&ours, &prompt, plan.tokens).await?);
            } else {
                o.add(&ours_run(&ours, &prompt, plan.tokens).await?);
                b.add(&bare_run(&bare, &prompt, plan.tokens).await?);
            }
        }
        drop(bare);
        drop(ours);
        let (bd, od) = (
            b.decode.median().unwrap_or(f64::NAN),
            o.decode.median().unwrap_or(f64::NAN),
        );
        let ratio = od / bd;
        out.line(format!(
            "  {name:<36} {:<11} {:>22} {:>22}",
            "bare",
            b.prompt.show(1),
            b.decode.show(1)
        ));
        out.line(format!(
            "  {:<36} {:<11} {:>22} {:>22} {:>7.3}",
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
    }
    let best = medians.iter().map(|(_, r)| *r).fold(f64::NAN, f64::max);
    out.goal(
        "best local decode (shipped or re-quantized file)",
        "≥ 60 tok/s",
        format!("{best:.1} tok/s"),
        Some(best >= 60.0),
    );
    Ok((out, medians))
}

/// Section 3: aggregate tokens/s with k variants asking at once.
pub(crate) async fn concurrency(plan: &Plan, model: &Path) -> anyhow::Result<Out> {
    let mut out = Out::default();
    let tokens = (plan.tokens / 2).max(16);
    out.line(format!(
        "\nConcurrency: k variants at once on the local model ({}), {tokens} tokens each \
         (aggregate tok/s = all tokens / wall time; promptloom hands mistral.rs one sequence \
         at a time, see the note on batching)",
        file_name(model)
    ));
    out.line(format!(
        "  {:>3}  {:>14}  {:>16}  {:>22}",
        "k", "aggregate tok/s", "wall s", "ttft ms (per stream)"
    ));
    let b = ours(model, LocalOptions::default()).await?;
    let mut alone: Vec<String> = Vec::new();
    for k in [1usize, 2, 4, 8] {
        let (line, texts) = round(&b, k, tokens).await?;
        out.line(format!("  {k:>3}  {line}"));
        alone = texts;
    }
    drop(b);
    if !plan.quick {
        // What the engine's own batching would give, and whether its answers stay the same
        // as one-at-a-time greedy answers to the same prompts (the reason promptloom gates).
        out.line(
            "  mistral.rs batching the k sequences itself (max_num_seqs = k), same prompts; \
             'same' = answers identical to one-at-a-time greedy ones:",
        );
        for k in [2usize, 4, 8] {
            let batched = ours(
                model,
                LocalOptions {
                    max_num_seqs: k,
                    ..LocalOptions::default()
                },
            )
            .await?;
            let (line, texts) = round(&batched, k, tokens).await?;
            let same = texts.iter().zip(&alone).filter(|(a, b)| a == b).count();
            out.line(format!("  {k:>3}  {line}  same {same}/{k}"));
        }
    }
    Ok(out)
}

/// k requests at once (the prompts of k = 8 are a superset of the smaller rounds'); the
/// table line and the answers in prompt order.
async fn round(b: &LocalBackend, k: usize, tokens: usize) -> anyhow::Result<(String, Vec<String>)> {
    let t0 = Instant::now();
    let handles: Vec<_> = (0..k)
        .map(|i| b.start(greedy(&decode_prompt(i, "concurrency"), tokens)))
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
    Ok((
        format!(
            "{:>14.1}  {wall:>16.1}  {:>22}",
            total as f64 / wall,
            ttft.show(0)
        ),
        texts,
    ))
}

/// ~1,500 tokens of few-shot geography: a system prompt and 30 worked examples.
pub(crate) fn few_shot(nonce: &str, question: &str) -> ChatRequest {
    const FACTS: &[(&str, &str, &str)] = &[
        ("France", "Paris", "on the Seine, home of the Louvre"),
        ("Germany", "Berlin", "on the Spree, reunified in 1990"),
        (
            "Italy",
            "Rome",
            "on the Tiber, once the centre of an empire",
        ),
        (
            "Spain",
            "Madrid",
            "on the Manzanares, at the centre of the peninsula",
        ),
        (
            "Portugal",
            "Lisbon",
            "on the Tagus estuary, facing the Atlantic",
        ),
        (
            "Ireland",
            "Dublin",
            "on the Liffey, with a famous university",
        ),
        ("Norway", "Oslo", "at the head of the Oslofjord"),
        ("Sweden", "Stockholm", "spread over fourteen islands"),
        ("Finland", "Helsinki", "on the Gulf of Finland"),
        (
            "Denmark",
            "Copenhagen",
            "on the islands of Zealand and Amager",
        ),
        ("Poland", "Warsaw", "on the Vistula, rebuilt after 1945"),
        ("Austria", "Vienna", "on the Danube, known for music"),
        ("Hungary", "Budapest", "two cities joined across the Danube"),
        ("Greece", "Athens", "below the Acropolis"),
        ("Turkey", "Ankara", "in central Anatolia, chosen in 1923"),
        ("Egypt", "Cairo", "on the Nile, near the pyramids of Giza"),
        ("Kenya", "Nairobi", "near a national park with lions"),
        (
            "Nigeria",
            "Abuja",
            "a planned city in the centre of the country",
        ),
        (
            "Japan",
            "Tokyo",
            "on Tokyo Bay, the largest metropolitan area",
        ),
        ("China", "Beijing", "in the north, with the Forbidden City"),
        ("India", "New Delhi", "part of Delhi, on the Yamuna"),
        (
            "Australia",
            "Canberra",
            "a planned city between Sydney and Melbourne",
        ),
        ("Canada", "Ottawa", "on the Ottawa River"),
        ("Brazil", "Brasília", "a planned city opened in 1960"),
        ("Argentina", "Buenos Aires", "on the Río de la Plata"),
        ("Chile", "Santiago", "in a valley below the Andes"),
        ("Peru", "Lima", "on the Pacific coast"),
        (
            "Mexico",
            "Mexico City",
            "on a high plateau, once Tenochtitlan",
        ),
        (
            "Morocco",
            "Rabat",
            "on the Atlantic at the mouth of the Bou Regreg",
        ),
        ("Vietnam", "Hanoi", "on the Red River"),
    ];
    let mut messages = vec![ChatMessage::new(
        Role::System,
        format!(
            "[{nonce}] You are a patient geography tutor. For every country the student names, \
             give its capital city first, then one true, concrete fact about where that city \
             lies or what it is known for. Keep each answer to one sentence, never invent \
             facts, and if a country is unknown or ambiguous say that you are not sure."
        ),
    )];
    for (country, capital, fact) in FACTS {
        messages.push(ChatMessage::new(
            Role::User,
            format!("What is the capital of {country}, and what is it known for?"),
        ));
        messages.push(ChatMessage::new(
            Role::Assistant,
            format!("The capital of {country} is {capital}, {fact}; it is the seat of the national government."),
        ));
    }
    messages.push(ChatMessage::new(Role::User, question.to_string()));
    ChatRequest {
        messages,
        sampling: Sampling {
            max_tokens: Some(4),
            ..Default::default()
        },
    }
}

/// Section 4: time to first token of the few-shot prompt, cold and with the prefix warm.
pub(crate) async fn ttft(plan: &Plan, model: &Path) -> anyhow::Result<Out> {
    let mut out = Out::default();
    let b = ours(model, LocalOptions::default()).await?;
    let (mut cold, mut warm) = (Sample::default(), Sample::default());
    let mut prompt_tokens = 0;
    let rounds = if plan.quick { 1 } else { plan.runs.clamp(1, 2) };
    for round in 0..rounds {
        let nonce = format!("session {round}-{}", std::process::id());
        let (m, _) = measure(b.start(few_shot(&nonce, "What is the capital of England?")))
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        prompt_tokens = m.prompt_tokens;
        cold.push(ms(m.ttft));
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
    out.line(format!(
        "\nTime to first token, few-shot prompt of {prompt_tokens} tokens (system prompt + 30 \
         examples shared, last question differs), promptloom local backend, {}",
        file_name(model)
    ));
    out.line(format!(
        "  cold (new prefix)        {:>26} ms",
        cold.show(0)
    ));
    out.line(format!(
        "  warm (prefix cached)     {:>26} ms",
        warm.show(0)
    ));
    let (c, w) = (
        cold.median().unwrap_or(f64::NAN),
        warm.median().unwrap_or(f64::NAN),
    );
    out.goal(
        "TTFT, 1,500-token few-shot prompt: cold / warm",
        "printed",
        format!("{c:.0} / {w:.0} ms"),
        None,
    );
    Ok(out)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
