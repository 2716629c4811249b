//! `stop_on` in the playground: after each delta, whether the case's checks are already
//! decided (`Node::decided_early`, the same test the headless runner uses).

use crate::app::model::state::AppState;

/// Whether the pane stream of `node` should end now on its checks.
pub(crate) fn decided(s: &mut AppState, node: u64) -> bool {
    let wants = s
        .session
        .node(node)
        .is_some_and(|n| n.request.sampling.stop_on.is_some() && n.case != "(no case)");
    if !wants {
        return false;
    }
    let Some(expect) = s.current_case().map(|c| c.expect.clone()) else {
        return false;
    };
    s.session
        .node_mut(node)
        .is_some_and(|n| n.decided_early(&expect))
}
