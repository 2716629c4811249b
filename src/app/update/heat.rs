//! The heat layer's keys (`H`): `app::heat` decides what a key means on the answer's
//! tokens, this applies it: close, ask for a typed token, or start the branch from the
//! cursor as a sibling answer streaming in the pane the view was opened from.

use crate::app::heat::{self, HeatKey, HeatView};
use crate::app::model::msg::Effect;
use crate::app::model::state::{AppState, InputPurpose, Layer, Pane, Phase};
use crate::config::keymap::Action;

/// Open the heat view of the focused pane's answer, or say why there is none.
pub(crate) fn open(s: &mut AppState) {
    match heat::open(s.pane_node(s.focus), s.focus) {
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
    match heat::key(&mut h, node, action) {
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
    if let Some(Layer::Heat(h)) = s.layers.pop() {
        branch(s, &h, &text, None, fx);
    }
}

/// Start the branch from the heat view's cursor as a sibling answer streaming in its pane.
fn branch(
    s: &mut AppState,
    h: &HeatView,
    token: &str,
    logprob: Option<f32>,
    fx: &mut Vec<Effect>,
) {
    if s.panes.get(h.pane).is_some_and(|p| p.phase.is_active()) {
        s.message = Some("this pane is still streaming; cancel it (Esc) before branching".into());
        return;
    }
    let Some(orig) = s.session.node(h.node) else {
        return;
    };
    let (id, at) = (s.session.next_node_id(), s.stamp());
    let Some(node) = heat::branch_node(orig, h.cursor, token, logprob, id, at) else {
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
