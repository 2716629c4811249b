//! Editing the prompt's variants: replacing, inserting and deleting one, and naming copies.

use super::panes::{cancel, keep_focus_visible};
use crate::app::model::msg::Effect;
use crate::app::model::state::{AppState, Pane, PaneMetrics};
use crate::prompt::Variant;

pub(crate) fn replace_variant(s: &mut AppState, i: usize, v: Variant) {
    if let Some(slot) = s.prompt.variants.get_mut(i) {
        let renamed = slot.name != v.name;
        *slot = v;
        s.variants_dirty = true;
        s.session.variants = s.prompt.variants.clone();
        if renamed && !s.panes[i].phase.is_active() {
            // Past answers belong to the old name; start this pane fresh.
            s.panes[i] = Pane::idle();
        }
    }
}

pub(crate) fn insert_variant(s: &mut AppState, v: Variant) {
    let at = (s.focus + 1).min(s.prompt.variants.len());
    s.prompt.variants.insert(at, v);
    s.panes.insert(at, Pane::idle());
    s.metrics.insert(at, PaneMetrics::default());
    s.session.variants = s.prompt.variants.clone();
    s.variants_dirty = true;
    s.focus = at;
    keep_focus_visible(s);
}

pub(crate) fn delete_variant(s: &mut AppState, i: usize, fx: &mut Vec<Effect>) {
    if i >= s.prompt.variants.len() || s.prompt.variants.len() <= 1 {
        return;
    }
    cancel(s, i, fx);
    s.prompt.variants.remove(i);
    s.panes.remove(i);
    s.metrics.remove(i);
    s.session.variants = s.prompt.variants.clone();
    s.variants_dirty = true;
    keep_focus_visible(s);
}

pub(crate) fn unique_name(s: &AppState, base: &str) -> String {
    if !s.prompt.variants.iter().any(|v| v.name == base) {
        return base.to_string();
    }
    (2..)
        .map(|n| format!("{base} {n}"))
        .find(|c| !s.prompt.variants.iter().any(|v| v.name == *c))
        .unwrap_or_else(|| base.to_string())
}
