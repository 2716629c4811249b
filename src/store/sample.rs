//! A small session with every kind of field (two nodes, a rating, a model identity): what the
//! store's tests round-trip and the session-file fuzz target (`promptloom bench --fuzz`)
//! starts from.

use crate::chat::{ChatMessage, ChatRequest, FinishReason, ModelIdentity, Role, Sampling};
use crate::eval::expect::CheckResult;
use crate::state::session::{Node, NodeKind, NodeStatus, Rating, Session};

pub(crate) fn sample_session() -> Session {
    let mut s = Session::new(
        "Capitals",
        "2026-11-27T05:00:00Z".into(),
        Some("prompts/capitals.toml".into()),
    );
    s.models.insert(
        "smollm2".into(),
        ModelIdentity {
            backend: "local".into(),
            gguf_file: Some("SmolLM2.gguf".into()),
            gguf_sha256: Some("ab".repeat(32)),
            ..Default::default()
        },
    );
    let req = ChatRequest {
        messages: vec![
            ChatMessage::new(Role::System, "Be brief."),
            ChatMessage::new(Role::User, "What is the capital of England?"),
        ],
        sampling: Sampling {
            temperature: Some(0.7),
            max_tokens: Some(64),
            stop: vec!["\n\n".into()],
            ..Default::default()
        },
    };
    let mut n = Node::start(
        1,
        None,
        NodeKind::Answer,
        "plain",
        "England",
        "smollm2",
        req.clone(),
        "2026-11-27T05:00:01Z".into(),
    );
    n.text =
        "The capital is London.\n\nIt has \"quotes\" and a tab\tand ''' and \"\"\" too.".into();
    n.status = NodeStatus::Done;
    n.finish_reason = Some(FinishReason::Stop);
    n.tokens_out = 12;
    n.ttft_ms = Some(80);
    n.tok_per_s = Some(33.5);
    n.checks = vec![CheckResult {
        kind: "any".into(),
        pass: true,
        detail: "found \"London\"".into(),
    }];
    s.nodes.push(n);
    let mut c = Node::start(
        2,
        Some(1),
        NodeKind::Critique,
        "plain",
        "England",
        "smollm2",
        req,
        "2026-11-27T05:00:02Z".into(),
    );
    c.text = "Fine.".into();
    c.status = NodeStatus::Streaming;
    s.nodes.push(c);
    s.ratings.push(Rating {
        node: 1,
        stars: Some(4),
        thumb: Some(1),
        note: Some("good\nshort".into()),
        rater: "ann".into(),
        at: "2026-11-27T05:01:00Z".into(),
        seq: None,
    });
    s
}
