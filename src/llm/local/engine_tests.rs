//! The local engine as an instrument: a greedy answer depends only on its own prompt, not on
//! what the engine ran before it or beside it (needs the default model, like the other local
//! tests).

use super::tests::{ask, collect, model_path};
use super::*;
use crate::llm::{ChatMessage, Sampling};

fn greedy(max_tokens: usize) -> Sampling {
    Sampling {
        max_tokens: Some(max_tokens),
        ..Default::default()
    }
}

/// A greedy answer to `text`.
async fn answer(backend: &LocalBackend, text: &str, max_tokens: usize) -> String {
    let (text, end) = collect(&mut backend.start(ask(text, greedy(max_tokens)))).await;
    assert!(
        matches!(end, Some(StreamEvent::Finished(_))),
        "{end:?}: {text}"
    );
    text
}

const PROBE: &str = "What is the capital of England?";

/// The batching tests count batched decode steps with the process-wide counter, so they run
/// one at a time (each would otherwise count the other's steps).
static BATCHING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One filler request of each kind the playground sends; each leaves the engine in a
/// different state (its RNG, its prefix cache, a cancelled sequence).
async fn filler(backend: &LocalBackend, kind: usize) {
    match kind {
        // A long greedy answer.
        0 => {
            answer(
                backend,
                "Write a long story about a dragon and a knight.",
                200,
            )
            .await;
        }
        // A sampled answer (seeded processor, temperature 1).
        1 => {
            let mut h = backend.start(ask(
                "Invent a name for a new fruit and describe it.",
                Sampling {
                    temperature: Some(1.0),
                    top_p: Some(0.95),
                    max_tokens: Some(48),
                    seed: Some(7),
                    ..Default::default()
                },
            ));
            collect(&mut h).await;
        }
        // A request cancelled mid-answer.
        2 => {
            let mut h = backend.start(ask(
                "Write a long story about a wizard who loses his hat.",
                greedy(400),
            ));
            let mut got = 0;
            while got < 5 {
                match h.events.recv().await {
                    Some(StreamEvent::Delta(_)) => got += 1,
                    Some(e) if e.is_terminal() => panic!("ended before cancel: {e:?}"),
                    Some(_) => {}
                    None => panic!("stream closed before cancel"),
                }
            }
            h.cancel();
            let (_, end) = collect(&mut h).await;
            assert_eq!(end, Some(StreamEvent::Finished(FinishReason::Cancelled)));
        }
        // A system prompt and a sampled answer without a seed.
        3 => {
            let mut h = backend.start(ChatRequest {
                messages: vec![
                    ChatMessage::new(Role::System, "You answer in French."),
                    ChatMessage::new(Role::User, "Describe a rainy morning."),
                ],
                sampling: Sampling {
                    temperature: Some(0.8),
                    max_tokens: Some(40),
                    ..Default::default()
                },
            });
            collect(&mut h).await;
        }
        // A multi-turn conversation that replays an earlier answer.
        _ => {
            let first = answer(backend, PROBE, 48).await;
            let mut h = backend.start(ChatRequest {
                messages: vec![
                    ChatMessage::new(Role::User, PROBE),
                    ChatMessage::new(Role::Assistant, first),
                    ChatMessage::new(Role::User, "And of France?"),
                ],
                sampling: greedy(32),
            });
            collect(&mut h).await;
        }
    }
}

/// Greedy is greedy: the same greedy prompt, five times in one engine, each time after a
/// different filler, gives byte-identical text, with the prefix cache on and off. Before
/// `engine_sampling` set the temperature, mistral.rs sampled these "greedy" answers at
/// temperature 1 from an engine-wide RNG, so each one depended on what ran before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_answer_does_not_depend_on_what_ran_before() {
    for prefix_cache_n in [16, 0] {
        let backend = LocalBackend::new(
            model_path(),
            LocalOptions {
                max_num_seqs: 1,
                prefix_cache_n,
                ..LocalOptions::default()
            },
        );
        backend.ready().await.unwrap();
        let fresh = answer(&backend, PROBE, 48).await;
        assert!(fresh.contains("London"), "{fresh}");
        for kind in 0..5 {
            filler(&backend, kind).await;
            let again = answer(&backend, PROBE, 48).await;
            assert_eq!(
                again, fresh,
                "prefix cache {prefix_cache_n}, after filler {kind}"
            );
        }
    }
}

/// A greedy answer, its prompt's length and its completion's length in tokens.
async fn answer_with_usage(
    backend: &LocalBackend,
    text: &str,
    max_tokens: usize,
) -> (String, u64, u64) {
    let mut h = backend.start(ask(text, greedy(max_tokens)));
    let mut out = String::new();
    let (mut prompt_tokens, mut tokens) = (0, 0);
    while let Some(ev) = h.events.recv().await {
        match ev {
            StreamEvent::Delta(d) => out.push_str(&d),
            StreamEvent::Usage(u) => {
                prompt_tokens = u.prompt_tokens.unwrap_or(0);
                tokens = u.completion_tokens.unwrap_or(0);
            }
            StreamEvent::Finished(_) => break,
            StreamEvent::Failed(e) => panic!("{e}"),
            // The local backend is offered no tools (they ride in Sampling, unread here).
            StreamEvent::ToolCall(c) => panic!("the local model made a tool call: {c:?}"),
            StreamEvent::Notice(_) | StreamEvent::Logprobs(_) => {}
        }
    }
    (out, prompt_tokens, tokens)
}

/// Batching: four *different* prompts of the same token length, run together in one engine
/// batch and one at a time, give identical texts. (Identical prompts would hide a batch bug:
/// before the decode-attention patch every row of a batch got the last row's attention.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_different_prompts_batched_answer_as_they_do_alone() {
    let _one_at_a_time = BATCHING.lock().await;
    let prompts: Vec<String> = ["England", "France", "Italy", "Spain"]
        .iter()
        .map(|c| format!("Tell me about {c}: its capital, its rivers and its food."))
        .collect();
    let options = |max_num_seqs| LocalOptions {
        max_num_seqs,
        prefix_cache_n: 0,
        ..LocalOptions::default()
    };
    let one_at_a_time = LocalBackend::new(model_path(), options(1));
    let mut alone = Vec::new();
    let mut lengths = Vec::new();
    for p in &prompts {
        let (text, n, _) = answer_with_usage(&one_at_a_time, p, 48).await;
        alone.push(text);
        lengths.push(n);
    }
    drop(one_at_a_time);
    assert!(
        lengths.iter().all(|&n| n == lengths[0] && n > 0),
        "the prompts must have one token length to share a batch: {lengths:?}"
    );
    let batched = LocalBackend::new(model_path(), options(4));
    batched.ready().await.unwrap();
    let before = mistralrs_core::promptloom::decode_steps();
    let together =
        futures::future::join_all(prompts.iter().map(|p| answer_with_usage(&batched, p, 48))).await;
    let decoded = mistralrs_core::promptloom::decode_steps().since(before);
    for (i, ((text, _, _), want)) in together.iter().zip(&alone).enumerate() {
        assert_eq!(text, want, "prompt {i} ({}) batched vs alone", prompts[i]);
    }
    // The engine really decoded them in batches: at least half their tokens (each answer's
    // first token comes from its prompt step). Other tests in this binary keep one sequence
    // in the engine, so they add no batched tokens.
    let tokens: u64 = together.iter().map(|t| t.2.saturating_sub(1)).sum();
    assert!(
        decoded.batched_tokens as u64 * 2 >= tokens,
        "only {} of {tokens} tokens were decoded in batches: {decoded:?}",
        decoded.batched_tokens
    );
}

/// Batching a case's variants (patch 13): four different prompts of four *different* token
/// lengths, like the variants of a case, decode in shared steps and give the texts they give
/// one at a time. Before the patch the engine only batched answers of one length, so these
/// took turns step by step (the bench's "batch 1.00").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_prompts_of_different_lengths_decode_together_as_they_do_alone() {
    let _one_at_a_time = BATCHING.lock().await;
    let prompts = [
        "Tell me about England.",
        "Tell me about France: its capital.",
        "Tell me about Italy: its capital and its rivers.",
        "Tell me about Spain: its capital, its rivers, its mountains and its food.",
    ];
    let options = |max_num_seqs| LocalOptions {
        max_num_seqs,
        prefix_cache_n: 0,
        ..LocalOptions::default()
    };
    let one_at_a_time = LocalBackend::new(model_path(), options(1));
    let mut alone = Vec::new();
    let mut lengths = Vec::new();
    for p in prompts {
        let (text, n, _) = answer_with_usage(&one_at_a_time, p, 48).await;
        alone.push(text);
        lengths.push(n);
    }
    drop(one_at_a_time);
    let mut distinct = lengths.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        4,
        "the prompts must have four token lengths: {lengths:?}"
    );
    let batched = LocalBackend::new(model_path(), options(4));
    batched.ready().await.unwrap();
    let before = mistralrs_core::promptloom::decode_steps();
    let together =
        futures::future::join_all(prompts.iter().map(|p| answer_with_usage(&batched, p, 48))).await;
    let decoded = mistralrs_core::promptloom::decode_steps().since(before);
    for (i, ((text, _, _), want)) in together.iter().zip(&alone).enumerate() {
        assert_eq!(
            text, want,
            "prompt {i} ({} tokens) batched vs alone",
            lengths[i]
        );
    }
    // Most of their tokens were decoded in shared steps (each answer's first token comes
    // from its prompt step, and the first answer may decode a step or two before the last
    // prompt is read).
    let tokens: u64 = together.iter().map(|t| t.2.saturating_sub(1)).sum();
    assert!(
        decoded.batched_tokens as u64 * 4 >= tokens * 3,
        "only {} of {tokens} tokens were decoded in batches: {decoded:?}",
        decoded.batched_tokens
    );
}

/// The tokenizer a remote model can be given (`tokenizer = "<the GGUF file>"`, issue 16)
/// counts what the engine itself counted: an answer cut at its token limit re-counts to that
/// limit, and a prompt's messages count fewer tokens than the engine read (the chat
/// template's own tokens are not in the messages), but not far fewer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gguf_tokenizer_counts_the_tokens_the_engine_reported() {
    let counter = crate::llm::counted::load_tokenizer(&model_path()).unwrap();
    let backend = LocalBackend::new(model_path(), LocalOptions::default());
    backend.ready().await.unwrap();
    let prompt = "Write a long story about a dragon who learns to cook.";
    let (text, prompt_tokens, tokens) = answer_with_usage(&backend, prompt, 24).await;
    assert_eq!(tokens, 24, "{text}");
    assert_eq!(counter.count(&text).unwrap(), tokens, "{text:?}");
    let counted = counter.count(prompt).unwrap();
    assert!(
        counted < prompt_tokens && counted + 40 > prompt_tokens,
        "{counted} counted, {prompt_tokens} read"
    );
    // A special token written in a text is one token.
    assert_eq!(
        counter.count("<|im_end|>").unwrap(),
        1,
        "SmolLM2's end-of-turn token"
    );
}
