//! `stop_on` in the playground: after each delta, whether the case's checks are already
//! decided (`Node::decided_early`, the same test the headless runner uses). Plain data in,
//! so it sits outside the app's state module.

use crate::eval::expect::Expect;
use crate::state::session::Session;

/// Whether the pane stream of `node` should end now on `expect`, its case's checks.
pub(crate) fn decided(session: &mut Session, node: u64, expect: Option<&Expect>) -> bool {
    let (Some(expect), Some(n)) = (expect, session.node_mut(node)) else {
        return false;
    };
    n.request.sampling.stop_on.is_some() && n.case != "(no case)" && n.decided_early(expect)
}
