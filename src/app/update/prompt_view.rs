//! The prompt beside its answer: for every pane, the chat its variant sends on the selected
//! case, kept ready for the view, and which panes show it in full.
//!
//! A pane that has an answer shows the chat that answer was made from (the node's request,
//! exactly as sent); a pane with none shows what it will send, built by the same
//! [`render::prepare`] a run uses (after retrieval and example selection). Both come as
//! [`MarkedMessage`]s, so the view can mark the technique blocks and the case's variables.
//! Previews are rebuilt only when a variant or the case changes.
//!
//! Retrieval and example selection by embedding call a server; a preview doesn't (that would
//! block the keys on the network): such a variant's preview leaves those parts out and says
//! they are chosen when it runs; once it has run, its pane shows what was chosen.

use crate::app::model::prompt_model::{chat_text, Preview, PromptDiff};
use crate::app::model::queries::{shown, Source};
use crate::app::model::state::{AppState, Layer};
use crate::config::keymap::Action;
use crate::prompt::retrieve::{Indexes, RankBy};
use crate::prompt::select::SelectBy;
use crate::prompt::{render, Case, Variant};
use crate::state::diff::{word_counts, word_diff};

/// Rebuild the previews of variants or a case that changed since they were built.
pub(crate) fn refresh(s: &mut AppState) {
    let case = s.current_case().cloned();
    let views = &mut s.prompt_view;
    views
        .previews
        .retain(|name, _| s.prompt.variants.iter().any(|v| v.name == *name));
    for v in &s.prompt.variants {
        if views
            .previews
            .get(&v.name)
            .is_some_and(|p| p.variant == *v && p.case == case)
        {
            continue;
        }
        views
            .previews
            .insert(v.name.clone(), preview(v, case.as_ref(), &s.indexes));
    }
}

fn preview(v: &Variant, case: Option<&Case>, indexes: &Indexes) -> Preview {
    let mut offline = v.clone();
    let mut deferred = Vec::new();
    if let Some(r) = v.retrieve.as_ref().filter(|r| r.spec.by != RankBy::Bm25) {
        deferred.push(format!("{} context passage(s)", r.spec.k));
        offline.retrieve = None;
    }
    if let Some(sel) = v
        .select
        .as_ref()
        .filter(|s| s.spec.by == SelectBy::Embedding)
    {
        deferred.push(format!("{} example(s)", sel.spec.k));
        offline.select = None;
        offline.examples.clear();
    }
    let case = case.cloned().unwrap_or_else(|| Case {
        name: "(no case)".into(),
        vars: Default::default(),
        expect: Default::default(),
        turns: Vec::new(),
    });
    let prepared = render::prepare(&offline, &case, &Default::default(), indexes);
    Preview {
        variant: v.clone(),
        case: (case.name != "(no case)").then_some(case),
        messages: prepared.request.messages,
        marked: prepared.marked,
        meta: prepared.meta,
        deferred: (!deferred.is_empty()).then(|| {
            format!(
                "{} chosen by embedding when it runs",
                deferred.join(" and ")
            )
        }),
    }
}

/// The focused pane's prompt: full chat or compact, and back. Expanding scrolls the pane to
/// its top, so the chat is what shows; collapsing follows the answer again.
pub(crate) fn toggle(s: &mut AppState) {
    let Some(name) = s.prompt.variants.get(s.focus).map(|v| v.name.clone()) else {
        return;
    };
    let expanded = !s.prompt_view.expanded.remove(&name);
    if expanded {
        s.prompt_view.expanded.insert(name);
    }
    if let Some(p) = s.panes.get_mut(s.focus) {
        p.scroll = 0;
        p.follow = !expanded;
    }
}

/// What the focused variant's chat can be compared with: the other panes' chats (what they
/// send now), in pane order after it, then the chat its own answer was sent with when that
/// differs from what it sends now (an earlier version of itself).
fn diff_targets(s: &AppState, i: usize) -> Vec<(String, String)> {
    let n = s.prompt.variants.len();
    let mut out = Vec::new();
    for k in 1..n {
        let j = (i + k) % n;
        if let (Some(v), Some(p)) = (
            s.prompt.variants.get(j),
            s.prompt
                .variants
                .get(j)
                .and_then(|v| s.prompt_view.previews.get(&v.name)),
        ) {
            out.push((v.name.clone(), chat_text(&p.marked)));
        }
    }
    let name = s
        .prompt
        .variants
        .get(i)
        .map(|v| v.name.clone())
        .unwrap_or_default();
    if let Some(sent) = shown(s, i).filter(|c| matches!(c.source, Source::SentOther(_))) {
        out.push((
            format!("{name} as its answer was sent"),
            chat_text(&sent.chat),
        ));
    }
    out
}

/// Open (or, from the open layer, advance) the prompt diff of the focused pane.
pub(crate) fn open_diff(s: &mut AppState, target: usize) -> Option<PromptDiff> {
    let i = s.focus;
    let name = s.prompt.variants.get(i)?.name.clone();
    let new_text = chat_text(&s.prompt_view.previews.get(&name)?.marked);
    let targets = diff_targets(s, i);
    if targets.is_empty() {
        s.message = Some("nothing to compare this prompt with: one variant, never edited".into());
        return None;
    }
    let target = target % targets.len();
    let (old_label, old_text) = &targets[target];
    let spans = word_diff(old_text, &new_text);
    let (added, removed) = word_counts(&spans);
    Some(PromptDiff {
        variant: i,
        target,
        targets: targets.len(),
        old_label: old_label.clone(),
        new_label: name,
        spans,
        added,
        removed,
        scroll: 0,
    })
}

/// Keys of the prompt diff layer: the diff key again compares with the next target.
pub(crate) fn diff_key(
    s: &mut AppState,
    mut d: Box<PromptDiff>,
    action: Option<Action>,
) -> Option<Layer> {
    match action {
        Some(Action::Close) => return None,
        Some(Action::PromptDiff) => {
            return open_diff(s, d.target + 1).map(|d| Layer::PromptDiff(Box::new(d)));
        }
        Some(Action::Down) => d.scroll += 1,
        Some(Action::Up) => d.scroll = d.scroll.saturating_sub(1),
        _ => {}
    }
    Some(Layer::PromptDiff(d))
}

#[cfg(test)]
mod tests {
    use crate::app::model::keys::KeyCode;

    use super::*;
    use crate::app::update::tests::{app, ev, key, started};
    use crate::chat::{FinishReason, StreamEvent};
    use crate::prompt::marked::Block;

    #[test]
    fn every_pane_has_its_chat_before_anything_runs() {
        let s = app();
        let a = shown(&s, 0).unwrap();
        assert_eq!(a.source, Source::WillSend);
        assert_eq!(a.chat.len(), 1);
        assert_eq!(a.chat[0].content(), "What is the capital of England?");
        let b = shown(&s, 1).unwrap();
        assert_eq!(b.chat[0].block, Block::System);
        assert_eq!(b.chat[1].content(), "What is the capital of England?");
    }

    #[test]
    fn a_run_shows_what_was_sent_and_an_edit_keeps_the_old_chat_marked() {
        let mut s = app();
        let st = started(&key(&mut s, KeyCode::Enter));
        ev(&mut s, st[0], StreamEvent::Delta("London".into()), 10);
        ev(&mut s, st[0], StreamEvent::Finished(FinishReason::Stop), 20);
        assert_eq!(shown(&s, 0).unwrap().source, Source::Sent);
        // Another case: the preview follows it.
        key(&mut s, KeyCode::Char(']'));
        let c = shown(&s, 0).unwrap();
        assert_eq!(c.chat[0].content(), "What is the capital of Italy?");
        key(&mut s, KeyCode::Char('['));
        s.prompt.variants[0].template = "Name the capital of {{country}}.".into();
        refresh(&mut s);
        let old = shown(&s, 0).unwrap();
        assert!(
            matches!(old.source, Source::SentOther(_)),
            "{:?}",
            old.source
        );
        assert_eq!(old.chat[0].content(), "What is the capital of England?");
    }

    #[test]
    fn the_toggle_expands_the_focused_pane_and_scrolls_it_to_the_top() {
        let mut s = app();
        assert!(!s.prompt_view.is_expanded("plain"));
        key(&mut s, KeyCode::Char('o'));
        assert!(s.prompt_view.is_expanded("plain"));
        assert!(!s.prompt_view.is_expanded("teacher"));
        assert!(!s.panes[0].follow);
        key(&mut s, KeyCode::Char('o'));
        assert!(!s.prompt_view.is_expanded("plain"));
        assert!(s.panes[0].follow);
    }

    #[test]
    fn the_prompt_diff_compares_with_each_other_pane_then_the_sent_chat() {
        use crate::state::diff::SpanKind;
        let mut s = app();
        key(&mut s, KeyCode::Char('='));
        let Some(Layer::PromptDiff(d)) = s.layers.last() else {
            panic!("no diff layer: {:?}", s.layers);
        };
        // plain (focused) against teacher: teacher's system message is not in plain.
        assert_eq!(
            (d.old_label.as_str(), d.new_label.as_str()),
            ("teacher", "plain")
        );
        assert_eq!(d.targets, 1);
        let removed: String = d
            .spans
            .iter()
            .filter(|sp| sp.kind == SpanKind::Removed)
            .map(|sp| sp.text.as_str())
            .collect();
        assert!(removed.contains("You teach."), "{:?}", d.spans);
        assert_eq!(d.added, 0);
        key(&mut s, KeyCode::Esc);
        assert!(s.layers.is_empty());
        // Run, then edit: its own earlier chat becomes the second target.
        let st = started(&key(&mut s, KeyCode::Enter));
        ev(&mut s, st[0], StreamEvent::Finished(FinishReason::Stop), 20);
        s.prompt.variants[0].template = "Name the capital of {{country}}.".into();
        refresh(&mut s);
        key(&mut s, KeyCode::Char('='));
        key(&mut s, KeyCode::Char('='));
        let Some(Layer::PromptDiff(d)) = s.layers.last() else {
            panic!("no diff layer");
        };
        assert_eq!(d.old_label, "plain as its answer was sent");
        assert_eq!((d.added, d.removed), (2, 3), "{:?}", d.spans);
    }

    #[test]
    fn chat_text_labels_each_message() {
        let s = app();
        let b = shown(&s, 1).unwrap();
        assert_eq!(
            chat_text(&b.chat),
            "[system]\nYou teach.\n\n[user]\nWhat is the capital of England?"
        );
    }
}
