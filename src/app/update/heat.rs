//! The heat layer's keys (`H`): the focused answer's tokens shaded by probability, a token
//! cursor with the alternatives at that position, and branching from one of them (Enter, or
//! `i` to type a token): a sibling answer that keeps the text before the cursor, puts the
//! chosen token in place of the original one and lets the model continue from there, in the
//! pane the view was opened from.
//!
//! The continuation is asked for by sending the kept text as a partial assistant message at
//! the end of the request; what each backend does with it is in ARCHITECTURE.md.

use crate::app::model::heat::{HeatView, LOW};
use crate::app::model::msg::Effect;
use crate::app::model::state::{AppState, InputPurpose, Layer, Pane, Phase};
use crate::chat::{ChatMessage, Role};
use crate::config::keymap::Action;
use crate::state::session::{Node, NodeKind, NodeStatus};

/// Open the heat view of the focused pane's answer, or say why there is none.
pub(crate) fn open(s: &mut AppState) {
    match view_of(s.pane_node(s.focus), s.focus) {
        Ok(h) => s.layers.push(Layer::Heat(Box::new(h))),
        Err(why) => s.message = Some(why),
    }
}

/// Keys of the heat layer; the layer that stays.
pub(crate) fn key(
    s: &mut AppState,
    mut h: Box<HeatView>,
    action: Option<Action>,
    fx: &mut Vec<Effect>,
) -> Option<Layer> {
    let node = s.session.node(h.node)?;
    match decide(&mut h, node, action) {
        HeatKey::Stay => Some(Layer::Heat(h)),
        HeatKey::Close => None,
        HeatKey::Branch { token, logprob } => {
            branch(s, &h, &token, logprob, fx);
            None
        }
        HeatKey::TypeToken => {
            s.layers.push(Layer::Heat(h));
            Some(Layer::Input {
                purpose: InputPurpose::BranchToken,
                text: String::new(),
            })
        }
    }
}

/// The token typed in the input opened with `i` (the heat layer is under it): branch with it.
pub(crate) fn typed(s: &mut AppState, text: String, fx: &mut Vec<Effect>) {
    if text.is_empty() {
        return;
    }
    if !matches!(s.layers.last(), Some(Layer::Heat(_))) {
        return;
    }
    if let Some(Layer::Heat(h)) = s.layers.pop() {
        branch(s, &h, &text, None, fx);
    }
}

/// Start the branch from the heat view's cursor as a sibling answer streaming in its pane.
fn branch(s: &mut AppState, h: &HeatView, token: &str, logprob: Option<f32>, fx: &mut Vec<Effect>) {
    if s.panes.get(h.pane).is_some_and(|p| p.phase.is_active()) {
        s.message = Some("this pane is still streaming; cancel it (Esc) before branching".into());
        return;
    }
    let Some(orig) = s.session.node(h.node) else {
        return;
    };
    let (id, at) = (s.session.next_node_id(), s.stamp());
    let Some(node) = branch_node(orig, h.cursor, token, logprob, id, at) else {
        return;
    };
    let orig_id = orig.id;
    let (chat, model) = (node.request.clone(), node.model.clone());
    s.session.nodes.push(node);
    let request = s.next_request;
    s.next_request += 1;
    if let Some(p) = s.panes.get_mut(h.pane) {
        *p = Pane::idle();
        p.node = Some(id);
        p.request = request;
        p.phase = Phase::Queued;
        p.started = s.now;
    }
    s.focus = h.pane;
    s.message = Some(format!(
        "branch of #{orig_id} at token {}: continuing after {:?}",
        h.cursor + 1,
        crate::sanitize::one_line(token, 20)
    ));
    fx.push(Effect::StartStream {
        node: id,
        request,
        model,
        chat,
    });
}

/// What a key in the heat layer asks for.
#[derive(Debug, Clone, PartialEq)]
enum HeatKey {
    Stay,
    Close,
    /// Branch with this token at the cursor (`None`: a typed token, no probability).
    Branch {
        token: String,
        logprob: Option<f32>,
    },
    /// Ask for a token to type.
    TypeToken,
}

/// The heat view of `node` (the focused pane's answer), or why there is none.
fn view_of(node: Option<&Node>, pane: usize) -> Result<HeatView, String> {
    let Some(n) = node else {
        return Err("no answer in this pane yet".into());
    };
    if n.logprobs.is_empty() {
        return Err(if n.request.sampling.logprobs.is_none() {
            "no token probabilities: set logprobs = 5 on the variant (or in [defaults]) and run again".into()
        } else {
            format!(
                "no token probabilities from this backend (model {:?})",
                n.model
            )
        });
    }
    Ok(HeatView {
        node: n.id,
        pane,
        cursor: 0,
        alt: 0,
    })
}

/// Move the cursor or the selection for `action` on `node`'s tokens; what else to do.
fn decide(h: &mut HeatView, node: &Node, action: Option<Action>) -> HeatKey {
    let len = node.logprobs.len();
    let alts = node
        .logprobs
        .get(h.cursor)
        .map_or(0, |t| t.alternatives().count());
    match action {
        Some(Action::Close) | Some(Action::Heat) => return HeatKey::Close,
        Some(Action::TokenNext) => {
            h.cursor = (h.cursor + 1).min(len.saturating_sub(1));
            h.alt = 0;
        }
        Some(Action::TokenPrev) => {
            h.cursor = h.cursor.saturating_sub(1);
            h.alt = 0;
        }
        Some(Action::TokenNextLow) => {
            if let Some(i) =
                (h.cursor + 1..len).find(|&i| node.logprobs.get(i).is_some_and(|t| t.prob() < LOW))
            {
                h.cursor = i;
                h.alt = 0;
            }
        }
        Some(Action::Down) => h.alt = (h.alt + 1).min(alts.saturating_sub(1)),
        Some(Action::Up) => h.alt = h.alt.saturating_sub(1),
        Some(Action::Accept) => {
            if let Some((token, lp)) = node
                .logprobs
                .get(h.cursor)
                .and_then(|t| t.alternatives().nth(h.alt))
            {
                return HeatKey::Branch {
                    token: token.to_string(),
                    logprob: Some(lp),
                };
            }
        }
        Some(Action::FreeInput) => return HeatKey::TypeToken,
        _ => {}
    }
    HeatKey::Stay
}

/// The sibling node of `orig` for a branch at token `cursor` with `token` in its place: its
/// text and request end with the kept prefix plus `token` (sent as a partial assistant
/// message to continue), its probabilities start with the kept ones, and its meta says where
/// it came from (`branch_of`, `branch_token`, `shared_prefix_bytes`). `None` when the
/// answer has no token probabilities at `cursor`.
pub(crate) fn branch_node(
    orig: &Node,
    cursor: usize,
    token: &str,
    logprob: Option<f32>,
    id: u64,
    started_at: String,
) -> Option<Node> {
    orig.logprobs.get(cursor)?;
    let prefix: String = orig.logprobs.iter().take(cursor).map(|t| t.text).collect();
    let start = format!("{prefix}{token}");
    let mut request = orig.request.clone();
    request
        .messages
        .push(ChatMessage::new(Role::Assistant, start.clone()));
    let mut n = Node::start(
        id,
        orig.parent,
        NodeKind::Answer,
        &orig.variant,
        &orig.case,
        &orig.model,
        request,
        started_at,
    );
    n.status = NodeStatus::Queued;
    n.text = start;
    n.meta = orig
        .meta
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "tokens" | "incomplete" | "promoted"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    n.meta.insert("branch_of".into(), orig.id.to_string());
    n.meta.insert("branch_token".into(), cursor.to_string());
    n.meta
        .insert("shared_prefix_bytes".into(), prefix.len().to_string());
    for t in orig.logprobs.iter().take(cursor) {
        n.logprobs.push(&crate::chat::TokenLogprob::new(
            t.text.to_string(),
            t.logprob,
            t.alternatives()
                .map(|(a, lp)| (a.to_string(), lp))
                .collect(),
        ));
    }
    let alts = orig
        .logprobs
        .get(cursor)
        .map(|t| {
            t.alternatives()
                .map(|(a, lp)| (a.to_string(), lp))
                .collect()
        })
        .unwrap_or_default();
    // A typed token the model did not offer has no probability of its own: shown as 0.
    n.logprobs.push(&crate::chat::TokenLogprob::new(
        token.to_string(),
        logprob.unwrap_or(f32::NEG_INFINITY),
        alts,
    ));
    Some(n)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::app::model::state::{AppState, Layer, Phase};
    use crate::chat::{ChatRequest, Sampling, TokenLogprob};

    fn answered() -> Node {
        let req = ChatRequest {
            messages: vec![ChatMessage::new(Role::User, "Capital of England?")],
            sampling: Sampling {
                logprobs: Some(2),
                ..Default::default()
            },
        };
        let mut n = Node::start(4, None, NodeKind::Answer, "v", "c", "m", req, "t".into());
        n.text = "It is London.".into();
        n.status = NodeStatus::Done;
        for (t, lp, alt) in [
            ("It", -0.1, "This"),
            (" is", -0.05, " was"),
            (" London", -0.9, " Paris"),
            (".", -0.01, "!"),
        ] {
            n.logprobs.push(&TokenLogprob::new(
                t.into(),
                lp,
                vec![(t.into(), lp), (alt.into(), lp - 1.0)],
            ));
        }
        n
    }

    /// An app whose first pane answered "It is London." with token probabilities.
    pub(crate) fn answered_app() -> (AppState, u64) {
        use crate::app::model::keys::KeyCode;
        use crate::app::update::tests::{app, ev, key, started};
        use crate::chat::{FinishReason, StreamEvent};
        let mut s = app();
        let st = started(&key(&mut s, KeyCode::Char('r')));
        for (i, (t, lp, alt)) in [
            ("It", -0.1f32, "This"),
            (" is", -0.05, " was"),
            (" London", -0.9, " Paris"),
            (".", -0.01, "!"),
        ]
        .into_iter()
        .enumerate()
        {
            ev(&mut s, st[0], StreamEvent::Delta(t.into()), 100 + i as u64);
            ev(
                &mut s,
                st[0],
                StreamEvent::Logprobs(vec![TokenLogprob::new(
                    t.into(),
                    lp,
                    vec![(t.into(), lp), (alt.into(), lp - 1.0)],
                )]),
                100 + i as u64,
            );
        }
        ev(
            &mut s,
            st[0],
            StreamEvent::Finished(FinishReason::Stop),
            200,
        );
        ev(&mut s, st[1], StreamEvent::Delta("Rome?".into()), 200);
        ev(
            &mut s,
            st[1],
            StreamEvent::Finished(FinishReason::Stop),
            210,
        );
        (s, st[0].0)
    }

    #[test]
    fn heat_keys_move_the_cursor_and_enter_branches_into_the_pane() {
        use crate::app::model::keys::KeyCode;
        use crate::app::update::tests::{ev, key, started};
        use crate::chat::{FinishReason, StreamEvent};
        let (mut s, orig) = answered_app();
        assert_eq!(s.session.node(orig).unwrap().logprobs.len(), 4);
        key(&mut s, KeyCode::Char('H'));
        assert!(matches!(s.layers.last(), Some(Layer::Heat(h)) if h.node == orig));
        key(&mut s, KeyCode::Char('n')); // the next token below 50%: " London"
        match s.layers.last() {
            Some(Layer::Heat(h)) => assert_eq!(h.cursor, 2),
            other => panic!("{other:?}"),
        }
        key(&mut s, KeyCode::Char('j')); // the alternative " Paris"
        let fx = key(&mut s, KeyCode::Enter);
        assert!(s.layers.is_empty());
        let st = started(&fx);
        assert_eq!(st.len(), 1);
        let Some(Effect::StartStream { chat, .. }) = fx.first() else {
            panic!("{fx:?}")
        };
        let last = chat.messages.last().unwrap();
        assert_eq!(
            (last.role, last.content.as_str()),
            (Role::Assistant, "It is Paris")
        );
        let b = st[0].0;
        assert_eq!(s.panes[0].node, Some(b));
        assert_eq!(
            s.session.node(b).unwrap().meta["branch_of"],
            orig.to_string()
        );
        // It streams in the pane like any answer and is checked on its whole text.
        ev(
            &mut s,
            st[0],
            StreamEvent::Delta(", no: London.".into()),
            300,
        );
        ev(
            &mut s,
            st[0],
            StreamEvent::Finished(FinishReason::Stop),
            310,
        );
        let n = s.session.node(b).unwrap();
        assert_eq!(n.text, "It is Paris, no: London.");
        assert_eq!(n.passed(), Some(true));
        assert_eq!(s.panes[0].phase, Phase::Done);
        // The original is still there, untouched.
        assert_eq!(s.session.node(orig).unwrap().text, "It is London.");
    }

    #[test]
    fn a_typed_token_branches_too_and_no_probabilities_says_why() {
        use crate::app::model::keys::KeyCode;
        use crate::app::update::tests::{key, started};
        let (mut s, _) = answered_app();
        key(&mut s, KeyCode::Char('H'));
        key(&mut s, KeyCode::Char('l'));
        key(&mut s, KeyCode::Char('i'));
        for c in " isn't".chars() {
            key(&mut s, KeyCode::Char(c));
        }
        let fx = key(&mut s, KeyCode::Enter);
        let Some(Effect::StartStream { chat, .. }) = fx.first() else {
            panic!("{fx:?}")
        };
        assert_eq!(chat.messages.last().unwrap().content, "It isn't");
        assert_eq!(started(&fx).len(), 1);
        assert!(s.layers.is_empty());
        // The second pane's backend sent none.
        s.focus = 1;
        key(&mut s, KeyCode::Char('H'));
        assert!(s.layers.is_empty());
        assert!(
            s.message
                .as_deref()
                .unwrap_or("")
                .contains("no token probabilities"),
            "{:?}",
            s.message
        );
    }

    #[test]
    fn a_branch_keeps_the_exact_prefix_then_the_alternative() {
        let orig = answered();
        let b = branch_node(&orig, 2, " Paris", Some(-1.9), 9, "t2".into()).unwrap();
        assert_eq!(b.text, "It is Paris");
        assert!(b.text.starts_with(&orig.text[..5]));
        assert_eq!(b.request.messages.len(), 2);
        let last = b.request.messages.last().unwrap();
        assert_eq!(
            (last.role, last.content.as_str()),
            (Role::Assistant, "It is Paris")
        );
        assert_eq!(b.meta["branch_of"], "4");
        assert_eq!(b.meta["branch_token"], "2");
        assert_eq!(b.meta["shared_prefix_bytes"], "5");
        assert_eq!(b.parent, orig.parent);
        assert_eq!(b.logprobs.len(), 3);
        assert_eq!(b.logprobs.get(2).unwrap().text, " Paris");
        assert!(branch_node(&orig, 4, "x", None, 9, "t".into()).is_none());
        // A typed token: probability 0.
        let typed = branch_node(&orig, 0, "Hmm", None, 9, "t".into()).unwrap();
        assert_eq!(typed.text, "Hmm");
        assert!(typed.logprobs.get(0).unwrap().prob() < 1e-20);
    }
}
