//! The context layer's keys (`O`): open it on the focused pane, scroll, close.

use crate::app::model::passages::{build, PassagesView};
use crate::app::model::queries::{shown, Source};
use crate::app::model::state::{AppState, Layer};
use crate::config::keymap::Action;

/// Open the focused pane's context: the answer's request as sent, else the preview of what
/// the variant will send.
pub(crate) fn open(s: &mut AppState) {
    let i = s.focus;
    let Some(v) = s.prompt.variants.get(i) else {
        return;
    };
    let case = s.case_name();
    let view = match s.pane_node(i) {
        Some(n) => {
            let marked = shown(s, i).and_then(|c| match c.source {
                Source::Sent => Some(c.chat.into_owned()),
                _ => None,
            });
            let note = match n.kind.as_str() {
                "answer" => "as sent".to_string(),
                k => format!("as sent for this {k}"),
            };
            build(
                &n.variant,
                &n.case,
                note,
                &n.request.messages,
                marked.as_deref(),
                &n.meta,
            )
        }
        None => {
            let Some(p) = s.prompt_view.previews.get(&v.name) else {
                return;
            };
            let note = match &p.deferred {
                Some(d) => format!("will send; {d}"),
                None => "will send".to_string(),
            };
            build(&v.name, &case, note, &p.messages, Some(&p.marked), &p.meta)
        }
    };
    s.layers.push(Layer::Passages(Box::new(view)));
}

/// Rows the view can hold at most (one per text line plus headers), so scrolling stops near
/// the end; the view clamps to what it really draws.
fn rows(v: &PassagesView) -> usize {
    let text = |t: &str| t.lines().count() + 2;
    v.passages.iter().map(|p| text(&p.text)).sum::<usize>()
        + v.examples
            .iter()
            .map(|e| text(&e.input) + text(&e.output))
            .sum::<usize>()
        + 4
}

pub(crate) fn key(mut v: Box<PassagesView>, action: Option<Action>, page: usize) -> Option<Layer> {
    let max = rows(&v);
    match action {
        Some(Action::Close) | Some(Action::Passages) => return None,
        Some(Action::Down) => v.scroll = (v.scroll + 1).min(max),
        Some(Action::Up) => v.scroll = v.scroll.saturating_sub(1),
        Some(Action::PageDown) => v.scroll = (v.scroll + page).min(max),
        Some(Action::PageUp) => v.scroll = v.scroll.saturating_sub(page),
        _ => {}
    }
    Some(Layer::Passages(v))
}
