//! Keeps the session's variant versions in step with the variants: after every message, a
//! variant whose content differs from its latest recorded version gets a new one (whatever
//! changed it: the in-app editor, `$EDITOR`, the model picker, a rename, a proposal), and
//! every answer started is tagged with the version it sends.

use crate::app::model::charts::HistoryView;
use crate::app::model::state::{AppState, Layer};
use crate::config::keymap::Action;
use crate::prompt::Variant;
use crate::state::session::Node;
use crate::state::versions;

/// Record a version for each variant that changed since its latest one.
pub(crate) fn sync(s: &mut AppState) {
    let at = s.stamp();
    for v in &s.prompt.variants {
        if versions::latest(&s.session, &v.name).is_some_and(|l| l.content == *v) {
            continue;
        }
        versions::record(&mut s.session, v, &at);
    }
}

/// Tag `node` (about to be sent for `v`) with `v`'s current version.
pub(crate) fn tag(s: &mut AppState, v: &Variant, node: &mut Node) {
    let at = s.stamp();
    let t = versions::record(&mut s.session, v, &at);
    versions::tag_node(node, t);
}

/// Open the focused variant's history.
pub(crate) fn open_history(s: &mut AppState) {
    let Some(name) = s.prompt.variants.get(s.focus).map(|v| v.name.clone()) else {
        return;
    };
    sync(s);
    let rows = crate::eval::history::history(&s.session, &name);
    let selected = rows.len().saturating_sub(1);
    s.layers.push(Layer::History(Box::new(HistoryView {
        variant: name,
        rows,
        selected,
    })));
}

pub(crate) fn history_key(mut h: Box<HistoryView>, action: Option<Action>) -> Option<Layer> {
    match action {
        Some(Action::Close) | Some(Action::VersionHistory) => return None,
        Some(Action::Down) => h.selected = (h.selected + 1).min(h.rows.len().saturating_sub(1)),
        Some(Action::Up) => h.selected = h.selected.saturating_sub(1),
        _ => {}
    }
    Some(Layer::History(h))
}

#[cfg(test)]
mod tests {
    use crate::app::model::keys::KeyCode;

    use super::*;
    use crate::app::model::state::Layer;
    use crate::app::update::tests::{app, ev, key, started};
    use crate::chat::{FinishReason, StreamEvent};
    use crate::state::versions::{number_of, of_variant};

    /// Edited twice in the app: three versions, and each answer points at the version it
    /// was sent with.
    #[test]
    fn edits_make_versions_and_answers_point_at_theirs() {
        let mut s = app();
        assert_eq!(of_variant(&s.session, "plain").len(), 1);
        let run = |s: &mut AppState| {
            let st = started(&key(s, KeyCode::Char('R')));
            ev(s, st[0], StreamEvent::Delta("London".into()), 10);
            ev(s, st[0], StreamEvent::Finished(FinishReason::Stop), 20);
            st[0].0
        };
        let a1 = run(&mut s);
        // The in-app editor: e, change the template, Ctrl-S.
        let mut v = s.prompt.variants[0].clone();
        v.template = "Name the capital of {{country}}.".into();
        s.prompt.variants[0] = v.clone();
        key(&mut s, KeyCode::Char('j'));
        let a2 = run(&mut s);
        // $EDITOR comes back with a role added.
        let text = format!(
            "system = \"Be brief.\"\n{}",
            crate::app::model::edit::variant_to_text(&v)
        );
        crate::app::update::update(
            &mut s,
            crate::app::Msg::ExternalEditDone {
                variant: 0,
                result: Ok(text),
            },
        );
        let a3 = run(&mut s);
        let versions = of_variant(&s.session, "plain");
        assert_eq!(versions.len(), 3, "{versions:#?}");
        assert_eq!(versions[1].label, "template");
        assert_eq!(versions[2].label, "role");
        let num = |id| number_of(s.session.node(id).unwrap());
        assert_eq!((num(a1), num(a2), num(a3)), (Some(1), Some(2), Some(3)));
        // The history layer lists them with their answers.
        key(&mut s, KeyCode::Char('V'));
        let Some(Layer::History(h)) = s.layers.last() else {
            panic!("{:?}", s.layers.last());
        };
        assert_eq!(
            h.rows.iter().map(|r| r.answers).collect::<Vec<_>>(),
            [1, 1, 1]
        );
        assert_eq!(h.selected, 2);
        key(&mut s, KeyCode::Esc);
        assert!(s.layers.is_empty());
    }
}
