//! Session load and save times at 100, 1,000 and 10,000 nodes.

use std::time::Instant;

use super::figures::{Out, Plan, Sample};
use crate::eval::expect::CheckResult;
use crate::llm::{ChatMessage, ChatRequest, FinishReason, Role, Sampling};
use crate::state::session::{Node, NodeKind, NodeStatus, Rating, Session, Vote};

/// A session shaped like a real one: 4 variants × n/4 cases, answers of ~700 bytes with
/// Markdown and quotes, a system prompt and a few-shot example in every request, checks, a
/// critique under every tenth answer, ratings on a fifth of the nodes and some votes.
pub(crate) fn synthetic(n: usize) -> Session {
    let mut s = Session::new(
        "bench",
        "2026-11-27T08:00:00Z".into(),
        Some("prompts/capitals.toml".into()),
    );
    let answer =
        "The capital of England is **London**. It sits on the \"Thames\" and has been the \
seat of government for centuries.\n\n- Population: about 9 million\n- Founded by the Romans as \
Londinium\n\n```python\nprint('London')\n```\nIn short, London. "
            .repeat(3);
    for id in 1..=n as u64 {
        let variant = format!("v{}", id % 4);
        let case = format!("case {}", id / 4);
        let request = ChatRequest {
            messages: vec![
                ChatMessage::new(
                    Role::System,
                    "You are a careful geography tutor. Answer in one short paragraph.",
                ),
                ChatMessage::new(Role::User, "What is the capital of France?"),
                ChatMessage::new(Role::Assistant, "Paris."),
                ChatMessage::new(Role::User, format!("What is the capital of {case}?")),
            ],
            sampling: Sampling {
                temperature: Some(0.7),
                max_tokens: Some(256),
                seed: Some(id * 7919),
                ..Default::default()
            },
        };
        let critique = id % 10 == 0;
        let mut node = Node::start(
            id,
            critique.then(|| id - 1),
            if critique {
                NodeKind::Critique
            } else {
                NodeKind::Answer
            },
            &variant,
            &case,
            "smollm2",
            request,
            "2026-11-27T08:00:01.123Z".into(),
        );
        node.status = NodeStatus::Done;
        node.finish_reason = Some(FinishReason::Stop);
        node.text = answer.clone();
        node.prompt_tokens = Some(61);
        node.tokens_out = 160;
        node.ttft_ms = Some(240);
        node.tok_per_s = Some(37.25);
        node.duration_ms = Some(4_500);
        node.checks = vec![CheckResult {
            kind: "contains".into(),
            pass: id % 3 != 0,
            detail: "found \"London\"".into(),
        }];
        s.nodes.push(node);
        if id % 5 == 0 {
            s.ratings.push(Rating {
                node: id,
                stars: Some((id % 5 + 1) as u8),
                thumb: Some(if id % 2 == 0 { 1 } else { -1 }),
                note: (id % 15 == 0).then(|| "good, but\nlong".to_string()),
                rater: "bench".into(),
                at: "2026-11-27T08:01:00Z".into(),
                seq: None,
            });
        }
        if id % 8 == 0 {
            s.votes.push(Vote {
                left: id - 1,
                right: id - 2,
                outcome: "left".into(),
                rater: "bench".into(),
                at: "2026-11-27T08:02:00Z".into(),
                seq: None,
            });
        }
    }
    s
}

/// [`synthetic`] with token probabilities on every answer: each word of it a token, with
/// five alternatives (what `logprobs = 5` asks for).
pub(crate) fn synthetic_with_logprobs(n: usize) -> Session {
    let mut s = synthetic(n);
    let words: Vec<String> = s
        .nodes
        .first()
        .map(|n| n.text.split_inclusive(' ').map(str::to_string).collect())
        .unwrap_or_default();
    for node in &mut s.nodes {
        let mut p = crate::state::logprobs::TokenProbs::default();
        for (i, w) in words.iter().enumerate() {
            let k = (i as u64 + node.id) % 11;
            let lp = -(k as f32) * 0.37;
            let top = (0..5)
                .map(|j| {
                    if j == 0 {
                        (w.clone(), lp)
                    } else {
                        (format!(" alt{j}"), lp - j as f32 * 0.8)
                    }
                })
                .collect();
            p.push(&crate::chat::TokenLogprob::new(w.clone(), lp, top));
        }
        node.logprobs = p;
    }
    s
}

pub(crate) fn run(plan: &Plan) -> anyhow::Result<Out> {
    let mut out = Out::default();
    out.line("\nSession files (TOML, atomic save with fsync; median [min–max] of runs)");
    out.line(format!(
        "  {:>7}  {:>8}  {:>22}  {:>22}",
        "nodes", "MB", "load ms", "save ms"
    ));
    let dir = tempfile::tempdir()?;
    let sizes: &[usize] = if plan.quick {
        &[100, 1_000]
    } else {
        &[100, 1_000, 10_000]
    };
    let runs = plan.runs.max(3);
    let cases: Vec<(usize, bool)> = sizes
        .iter()
        .map(|&n| (n, false))
        .chain(std::iter::once((*sizes.last().unwrap_or(&100), true)))
        .collect();
    for (n, with_logprobs) in cases {
        let session = if with_logprobs {
            synthetic_with_logprobs(n)
        } else {
            synthetic(n)
        };
        let path = dir.path().join(format!("s{n}-{with_logprobs}.toml"));
        let (mut load, mut save) = (Sample::default(), Sample::default());
        for _ in 0..runs {
            let t = Instant::now();
            crate::store::save_atomic(&path, &session)?;
            save.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let back = crate::store::load(&path)?;
            load.push(t.elapsed().as_secs_f64() * 1e3);
            if back.nodes.len() != n {
                anyhow::bail!("session round trip lost nodes: {} of {n}", back.nodes.len());
            }
            let with = |s: &Session| s.nodes.iter().filter(|n| !n.logprobs.is_empty()).count();
            if with(&back) != with(&session) {
                anyhow::bail!(
                    "session round trip lost token probabilities: {} of {}",
                    with(&back),
                    with(&session)
                );
            }
        }
        let side = crate::store::logprobs::sidecar_path(&path);
        let side_mb = std::fs::metadata(&side).map_or(0.0, |m| m.len() as f64 / 1e6);
        let mb = std::fs::metadata(&path)?.len() as f64 / 1e6;
        let label = if with_logprobs {
            format!("{n} + token probabilities, 5 alternatives per token ({side_mb:.1} MB beside)")
        } else {
            String::new()
        };
        out.line(format!(
            "  {n:>7}  {mb:>8.1}  {:>22}  {:>22}  {label}",
            load.show(1),
            save.show(1)
        ));
        if n == 10_000 && with_logprobs {
            let (l, s) = (
                load.median().unwrap_or(f64::NAN),
                save.median().unwrap_or(f64::NAN),
            );
            out.goal(
                "session of 10,000 nodes with token probabilities loads in",
                "≤ 300 ms",
                format!("{l:.0} ms"),
                Some(l <= 300.0),
            );
            out.goal(
                "session of 10,000 nodes with token probabilities saves in",
                "≤ 300 ms",
                format!("{s:.0} ms"),
                Some(s <= 300.0),
            );
        } else if n == 10_000 {
            let (l, s) = (
                load.median().unwrap_or(f64::NAN),
                save.median().unwrap_or(f64::NAN),
            );
            out.goal(
                "session of 10,000 nodes loads in",
                "≤ 300 ms",
                format!("{l:.0} ms"),
                Some(l <= 300.0),
            );
            out.goal(
                "session of 10,000 nodes saves in",
                "≤ 300 ms",
                format!("{s:.0} ms"),
                Some(s <= 300.0),
            );
        }
    }
    Ok(out)
}
