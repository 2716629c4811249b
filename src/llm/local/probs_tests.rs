//! Token probabilities and branching on the real default model.

use std::time::Instant;

use super::tests::{ask, model_path};
use super::*;
use crate::llm::{ChatMessage, Sampling};

/// Text, token probabilities and the end of one stream, with the time of its first text.
async fn run(
    b: &LocalBackend,
    req: ChatRequest,
) -> (String, Vec<TokenLogprob>, Option<StreamEvent>, f64) {
    let t0 = Instant::now();
    let mut first = None;
    let mut h = b.start(req);
    let (mut text, mut probs) = (String::new(), Vec::new());
    while let Some(ev) = h.events.recv().await {
        match ev {
            StreamEvent::Delta(d) => {
                first.get_or_insert_with(|| t0.elapsed().as_secs_f64());
                text.push_str(&d);
            }
            StreamEvent::Logprobs(p) => probs.extend(p),
            e if e.is_terminal() => return (text, probs, Some(e), first.unwrap_or(f64::NAN)),
            _ => {}
        }
    }
    (text, probs, None, f64::NAN)
}

fn sampling(logprobs: Option<usize>, temperature: Option<f64>) -> Sampling {
    Sampling {
        max_tokens: Some(24),
        logprobs,
        temperature,
        seed: Some(11),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_probabilities_are_probabilities_and_branches_continue_the_prefix() {
    let b = LocalBackend::new(model_path(), LocalOptions::default());
    b.ready().await.expect("model loads");
    let q = "What is the capital of France? Answer in one sentence.";

    // Greedy with 5 alternatives per token.
    let (text, probs, end, _) = run(&b, ask(q, sampling(Some(5), None))).await;
    assert!(matches!(end, Some(StreamEvent::Finished(_))), "{end:?}");
    assert!(!probs.is_empty(), "no token probabilities for {text:?}");
    for t in &probs {
        let p = t.logprob.exp();
        assert!((0.0..=1.0).contains(&p), "{t:?}");
        assert!(!t.top.is_empty() && t.top.len() <= 5, "{t:?}");
        assert!(
            t.top.windows(2).all(|w| w[0].1 >= w[1].1),
            "unsorted: {t:?}"
        );
        let mass: f32 = t.top.iter().map(|(_, lp)| lp.exp()).sum();
        assert!(mass <= 1.0 + 1e-4, "{t:?}");
        // Greedy: the chosen token is the most likely one (a special token such as the
        // end of the turn has no text of its own in the answer).
        if !t.text.is_empty() {
            assert_eq!(t.top[0].0, t.text, "{t:?}");
        }
        assert!((t.top[0].1 - t.logprob).abs() < 1e-5, "{t:?}");
    }
    // The tokens spell the answer.
    let spelled: String = probs.iter().map(|t| t.text.as_str()).collect();
    assert!(
        text.starts_with(spelled.trim_end()) || spelled.starts_with(&text),
        "{spelled:?} vs {text:?}"
    );

    // Asking for probabilities does not change a greedy or a seeded answer.
    let (plain, _, _, _) = run(&b, ask(q, sampling(None, None))).await;
    assert_eq!(plain, text);
    let (seeded, _, _, _) = run(&b, ask(q, sampling(None, Some(0.9)))).await;
    let (seeded_probed, sp, _, _) = run(&b, ask(q, sampling(Some(3), Some(0.9)))).await;
    assert_eq!(seeded, seeded_probed);
    assert!(sp.iter().all(|t| (0.0..=1.0).contains(&t.logprob.exp())));

    // A branch from token 3: the first three tokens as a partial assistant message. Greedy
    // from there gives back the rest of the greedy answer, and the parent prompt's KV is
    // reused (the prefix cache): its first token comes without re-reading the prompt.
    let k = 3.min(probs.len() - 1);
    let prefix: String = probs[..k].iter().map(|t| t.text.as_str()).collect();
    let mut req = ask(q, sampling(None, None));
    req.messages
        .push(ChatMessage::new(Role::Assistant, &prefix));
    let (rest, _, end, first) = run(&b, req).await;
    assert!(matches!(end, Some(StreamEvent::Finished(_))), "{end:?}");
    let whole = format!("{prefix}{rest}");
    let n = whole.len().min(text.len()).min(40);
    assert_eq!(
        whole[..n],
        text[..n],
        "branch {prefix:?} + {rest:?} vs {text:?}"
    );
    eprintln!(
        "branch from token {k}: first token after {:.0} ms",
        first * 1e3
    );

    // An alternative token: the branch starts with it.
    if let Some((alt, _)) = probs[k].top.get(1) {
        let mut req = ask(q, sampling(None, None));
        req.messages
            .push(ChatMessage::new(Role::Assistant, format!("{prefix}{alt}")));
        let (rest, _, end, _) = run(&b, req).await;
        assert!(
            matches!(end, Some(StreamEvent::Finished(_))),
            "{end:?}: {rest:?}"
        );
    }
}
