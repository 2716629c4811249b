//! `update`: the app's pure state machine. Messages in, state changes and effects out; no
//! I/O, no clocks (times arrive in messages), so every behaviour is a plain unit test.
//!
//! This file dispatches messages and keys; the rooms are [`panes`] (a variant's own run),
//! [`variants`] (editing them), [`streams`] (routing stream events, cancelling), [`heat`]
//! (the token view and branching from a token), [`rating`], [`techniques`], [`tools`] (the
//! tool loop) and [`write_back`]. They import only the model (and each other downwards:
//! nothing imports this file).

pub(crate) mod heat;
pub(crate) mod keys;
pub(crate) mod panes;
pub(crate) mod passages;
pub(crate) mod prompt_view;
pub(crate) mod rating;
pub(crate) mod streams;
pub(crate) mod techniques;
pub(crate) mod tools;
pub(crate) mod variants;
pub(crate) mod versions;
pub(crate) mod write_back;

use crate::app::model::edit::{text_to_variant, variant_to_text, TextArea};
use crate::app::model::keys::{Key, KeyCode, Mouse, MouseKind};
use crate::app::model::layout;
use crate::app::model::msg::{Effect, Msg};
use crate::app::model::queries::picker_matches;
use crate::app::model::state::{AppState, InputPurpose, Layer, PaneMetrics, Phase, PickerKind};
use crate::config::keymap::Action;
use crate::prompt::{Case, Variant};
use keys::Outcome;
use panes::{cancel, keep_focus_visible, page, scroll, select_case, start};
use streams::{cancel_all, quit, stream_event};
use variants::{delete_variant, insert_variant, replace_variant, unique_name};

/// Apply one message.
pub(crate) fn update(s: &mut AppState, msg: Msg) -> Vec<Effect> {
    let mut fx = Vec::new();
    match msg {
        Msg::Key { key, at } => {
            s.now = at;
            keys::key_event(s, key, &mut fx, &HANDLERS);
            s.dirty = true;
        }
        Msg::SequenceTimeout { id } => keys::sequence_timeout(s, id),
        Msg::Mouse { mouse, at } => {
            s.now = at;
            mouse_event(s, &mouse);
        }
        Msg::Resize { width, height } => {
            s.width = width;
            s.height = height;
            keep_focus_visible(s);
            s.dirty = true;
        }
        Msg::Tick { at } => {
            s.now = at;
            if s.any_active() {
                s.dirty = true;
            }
        }
        Msg::StreamStarted { node, request } => {
            if let Some(p) = s
                .panes
                .iter_mut()
                .find(|p| p.node == Some(node) && p.request == request)
            {
                if p.phase == Phase::Queued {
                    p.phase = Phase::Waiting;
                    s.dirty = true;
                }
            }
        }
        Msg::Stream {
            node,
            request,
            event,
            at,
        } => {
            s.now = at;
            stream_event(s, node, request, event, at, &mut fx);
        }
        Msg::Saved { path, error } => {
            if let Some(e) = error {
                s.message = Some(format!("session not saved: {e}"));
                s.dirty = true;
            } else if s
                .message
                .as_deref()
                .is_some_and(|m| m.starts_with("session not saved"))
            {
                s.message = Some(format!("session saved to {}", path.display()));
                s.dirty = true;
            }
        }
        Msg::PromptWritten { path, error } => {
            s.message = Some(match error {
                Some(e) => format!("prompt file not written: {e}"),
                None => {
                    s.variants_dirty = false;
                    format!("wrote {}", path.display())
                }
            });
            s.dirty = true;
        }
        Msg::ModelStatus(list) => {
            for (name, st) in list {
                s.model_status.insert(name, st);
            }
            s.dirty = true;
        }
        Msg::Rating(io) => rating::io(s, io, &mut fx),
        Msg::Tool(m) => tools::on_msg(s, m, &mut fx),
        Msg::Gathered {
            node,
            request,
            run,
            indexes,
            vectors,
            at,
        } => {
            s.now = at;
            panes::gathered(s, node, request, *run, indexes, &vectors, &mut fx);
            s.dirty = true;
        }
        Msg::ExternalEditDone { variant, result } => {
            match result {
                Ok(text) => match text_to_variant(&text, &s.models) {
                    Ok(v) => replace_variant(s, variant, v),
                    Err(e) => {
                        // Reopen in the in-app editor so the edit is not lost.
                        s.layers.push(Layer::Editor {
                            variant,
                            area: TextArea::new(&text),
                            error: Some(e),
                        });
                    }
                },
                Err(e) => s.message = Some(format!("$EDITOR failed: {e}")),
            }
            s.dirty = true;
        }
    }
    settle(s);
    fx
}

/// What follows every message (and a new state): the prompt previews of changed variants or
/// cases rebuilt, a version recorded for each variant that changed.
pub(crate) fn settle(s: &mut AppState) {
    prompt_view::refresh(s);
    versions::sync(s);
}

/// Keys for the top layer. Text-entry layers take unbound keys as text. The help is the one
/// layer a key passes through: it takes its own keys (scrolling, closing) and ignores the
/// rest, which reach the layer it describes. The others are modal: they cover what is
/// beneath, where a key would act unseen, so they take every key.
/// The handlers [`keys::key_event`] routes keys to.
const HANDLERS: keys::Handlers = keys::Handlers {
    normal: normal_action,
    layer: layer_key,
};

fn layer_key(s: &mut AppState, action: Option<Action>, key: &Key, fx: &mut Vec<Effect>) -> Outcome {
    // A layer whose table takes `help` opens the help over itself (the tree view pushes its
    // own, between its other keys).
    if action == Some(Action::Help)
        && !matches!(s.layers.last(), Some(Layer::Help { .. } | Layer::Tree(_)))
    {
        s.layers.push(Layer::Help { scroll: 0 });
        return Outcome::Handled;
    }
    let Some(top) = s.layers.pop() else {
        return Outcome::Ignored;
    };
    let editor_height = usize::from(s.height.saturating_sub(6));
    let keep = match top {
        Layer::Help { scroll } => match action {
            Some(Action::Close) | Some(Action::Help) => None,
            Some(Action::Down) => Some(Layer::Help { scroll: scroll + 1 }),
            Some(Action::Up) => Some(Layer::Help {
                scroll: scroll.saturating_sub(1),
            }),
            _ => {
                s.layers.push(Layer::Help { scroll });
                return Outcome::Ignored;
            }
        },
        Layer::Picker {
            kind,
            items,
            selected,
            mut filter,
        } => {
            let shown = picker_matches(&items, &filter);
            match action {
                Some(Action::Close) => None,
                Some(Action::Down) => Some(Layer::Picker {
                    kind,
                    selected: (selected + 1).min(shown.len().saturating_sub(1)),
                    items,
                    filter,
                }),
                Some(Action::Up) => Some(Layer::Picker {
                    kind,
                    selected: selected.saturating_sub(1),
                    items,
                    filter,
                }),
                Some(Action::Accept) => match shown.get(selected).copied() {
                    None => {
                        s.message = Some(format!("nothing matches \"{filter}\""));
                        Some(Layer::Picker {
                            kind,
                            items,
                            selected,
                            filter,
                        })
                    }
                    Some(i) => {
                        match kind {
                            PickerKind::Case => select_case(s, i),
                            PickerKind::Model => {
                                if let (Some(m), Some(v)) =
                                    (items.get(i), s.prompt.variants.get_mut(s.focus))
                                {
                                    if v.model != *m {
                                        v.model = m.clone();
                                        s.variants_dirty = true;
                                        s.session.variants = s.prompt.variants.clone();
                                        fx.push(Effect::Preload(m.clone()));
                                    }
                                }
                            }
                        }
                        None
                    }
                },
                // Typing filters; Backspace takes the last character back.
                None => {
                    if let Some(c) = key.text() {
                        filter.push(c);
                    } else if key.code == KeyCode::Backspace {
                        filter.pop();
                    }
                    // The filter changed: the best match is selected.
                    let selected = if picker_matches(&items, &filter) == shown {
                        selected
                    } else {
                        0
                    };
                    Some(Layer::Picker {
                        kind,
                        items,
                        selected,
                        filter,
                    })
                }
                _ => Some(Layer::Picker {
                    kind,
                    items,
                    selected,
                    filter,
                }),
            }
        }
        Layer::Editor {
            variant,
            mut area,
            error,
        } => match action {
            Some(Action::Close) => None,
            Some(Action::Accept) => match text_to_variant(&area.text(), &s.models) {
                Ok(v) => {
                    if s.prompt
                        .variants
                        .iter()
                        .enumerate()
                        .any(|(i, o)| i != variant && o.name == v.name)
                    {
                        Some(Layer::Editor {
                            variant,
                            area,
                            error: Some(format!("another variant is named {:?}", v.name)),
                        })
                    } else {
                        replace_variant(s, variant, v);
                        None
                    }
                }
                Err(e) => Some(Layer::Editor {
                    variant,
                    area,
                    error: Some(e),
                }),
            },
            _ => {
                area.key(key);
                area.scroll_into_view(editor_height);
                Some(Layer::Editor {
                    variant,
                    area,
                    error,
                })
            }
        },
        Layer::Input { purpose, mut text } => match action {
            Some(Action::Close) => None,
            Some(Action::Accept) => {
                input_accepted(s, purpose, text, fx);
                None
            }
            _ => {
                match key.code {
                    KeyCode::Char(c) if !key.ctrl_held() => text.push(c),
                    KeyCode::Backspace => {
                        text.pop();
                    }
                    // Ctrl-U clears the line (as in a shell).
                    KeyCode::Char('u') => text.clear(),
                    _ => {}
                }
                Some(Layer::Input { purpose, text })
            }
        },
        l
        @ (Layer::Note { .. } | Layer::Compare(_) | Layer::Leaderboard(_) | Layer::Browser(_)) => {
            rating::layer_key(s, l, action, key, fx)
        }
        Layer::ConfirmDelete { variant } => match action {
            Some(Action::Accept) => {
                delete_variant(s, variant, fx);
                None
            }
            Some(Action::Close) => None,
            _ => Some(Layer::ConfirmDelete { variant }),
        },
        // The technique layers push themselves back (and whatever they open on top).
        Layer::Tree(t) => {
            techniques::tree_key(s, t, action, fx);
            None
        }
        Layer::Diff(d) => techniques::diff_key(d, action),
        Layer::Heat(h) => heat::key(s, h, action, fx),
        Layer::SearchParams(f) => {
            techniques::form_key(s, f, action, key, fx);
            None
        }
        Layer::PromptDiff(d) => prompt_view::diff_key(s, d, action),
        Layer::History(h) => versions::history_key(h, action),
        // Any close key goes back to the table.
        Layer::Charts(c) => match action {
            Some(Action::Close) | Some(Action::Charts) => None,
            _ => Some(Layer::Charts(c)),
        },
        Layer::Passages(v) => passages::key(v, action, page(s).max(1) as usize),
    };
    if let Some(l) = keep {
        s.layers.push(l);
    }
    Outcome::Handled
}

fn normal_action(s: &mut AppState, a: Action, fx: &mut Vec<Effect>) {
    let n = s.panes.len();
    match a {
        Action::RunAll => {
            for i in 0..n {
                start(s, i, fx);
            }
        }
        Action::RerunFocused => start(s, s.focus, fx),
        Action::CancelFocused => {
            cancel(s, s.focus, fx);
            techniques::cancel_variant(s, s.focus, fx);
        }
        Action::CancelAll => cancel_all(s, fx),
        Action::Interrupt => {
            if s.any_active() && !s.interrupt_armed {
                cancel_all(s, fx);
                s.interrupt_armed = true;
                s.message = Some("cancelled; press Ctrl-C again to quit".into());
            } else {
                quit(s, fx);
            }
        }
        Action::Quit => quit(s, fx),
        Action::FocusLeft | Action::FocusPrev => {
            if n > 0 {
                s.focus = if a == Action::FocusPrev {
                    (s.focus + n - 1) % n
                } else {
                    s.focus.saturating_sub(1)
                };
            }
            keep_focus_visible(s);
        }
        Action::FocusRight | Action::FocusNext => {
            if n > 0 {
                s.focus = if a == Action::FocusNext {
                    (s.focus + 1) % n
                } else {
                    (s.focus + 1).min(n - 1)
                };
            }
            keep_focus_visible(s);
        }
        Action::ScrollDown => scroll(s, s.focus, 1),
        Action::ScrollUp => scroll(s, s.focus, -1),
        Action::PageDown => {
            let h = page(s);
            scroll(s, s.focus, h)
        }
        Action::PageUp => {
            let h = page(s);
            scroll(s, s.focus, -h)
        }
        Action::ScrollTop => {
            if let Some(p) = s.panes.get_mut(s.focus) {
                p.scroll = 0;
                p.follow = false;
            }
        }
        Action::ScrollBottom => {
            if let Some(p) = s.panes.get_mut(s.focus) {
                p.follow = true;
            }
        }
        Action::Zoom => s.zoomed = !s.zoomed,
        Action::PrevCase => {
            if !s.prompt.cases.is_empty() {
                let c = (s.case + s.prompt.cases.len() - 1) % s.prompt.cases.len();
                select_case(s, c);
            }
        }
        Action::NextCase => {
            if !s.prompt.cases.is_empty() {
                let c = (s.case + 1) % s.prompt.cases.len();
                select_case(s, c);
            }
        }
        Action::PickCase => {
            let items = s
                .prompt
                .cases
                .iter()
                .map(|c| {
                    let vars: Vec<String> =
                        c.vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    format!("{}  {}", c.name, vars.join(" "))
                })
                .collect();
            s.layers.push(Layer::Picker {
                kind: PickerKind::Case,
                items,
                selected: s.case,
                filter: String::new(),
            });
        }
        Action::FreeInput => {
            if s.prompt.main_var.is_some() {
                s.layers.push(Layer::Input {
                    purpose: InputPurpose::FreeInput,
                    text: String::new(),
                });
            } else {
                s.message = Some("this prompt file's templates use no variable to fill".into());
            }
        }
        Action::EditVariant => {
            if let Some(v) = s.prompt.variants.get(s.focus) {
                s.layers.push(Layer::Editor {
                    variant: s.focus,
                    area: TextArea::new(&variant_to_text(v)),
                    error: None,
                });
            }
        }
        Action::ExternalEditor => {
            if let Some(v) = s.prompt.variants.get(s.focus) {
                fx.push(Effect::OpenEditor {
                    variant: s.focus,
                    text: variant_to_text(v),
                });
            }
        }
        Action::AddVariant => {
            let model = s
                .prompt
                .variants
                .first()
                .map(|v| v.model.clone())
                .or_else(|| s.models.first().cloned())
                .unwrap_or_default();
            let template = s
                .prompt
                .main_var
                .as_ref()
                .map(|v| format!("{{{{{v}}}}}"))
                .unwrap_or_default();
            let v = Variant::new(&unique_name(s, "new"), &model, &template);
            insert_variant(s, v);
            normal_action(s, Action::EditVariant, fx);
        }
        Action::DuplicateVariant => {
            if let Some(v) = s.prompt.variants.get(s.focus).cloned() {
                let mut d = v.clone();
                d.name = unique_name(s, &format!("{} copy", v.name));
                insert_variant(s, d);
            }
        }
        Action::RenameVariant => {
            if let Some(v) = s.prompt.variants.get(s.focus) {
                s.layers.push(Layer::Input {
                    purpose: InputPurpose::Rename(s.focus),
                    text: v.name.clone(),
                });
            }
        }
        Action::DeleteVariant => {
            if s.prompt.variants.len() > 1 {
                s.layers.push(Layer::ConfirmDelete { variant: s.focus });
            } else {
                s.message = Some("the last variant can't be deleted".into());
            }
        }
        Action::WritePromptFile => {
            match write_back::rewrite(
                &s.prompt.path,
                &s.prompt.source,
                &s.prompt.file_variants,
                &s.prompt.variants,
            ) {
                Ok(text) => {
                    s.prompt.source = text.clone();
                    s.prompt.file_variants = s.prompt.variants.clone();
                    fx.push(Effect::WritePromptFile {
                        path: s.prompt.path.clone(),
                        text,
                    });
                }
                Err(e) => s.message = Some(e),
            }
        }
        Action::PickModel => {
            let current = s
                .prompt
                .variants
                .get(s.focus)
                .map(|v| v.model.clone())
                .unwrap_or_default();
            let selected = s.models.iter().position(|m| *m == current).unwrap_or(0);
            s.layers.push(Layer::Picker {
                kind: PickerKind::Model,
                items: s.models.clone(),
                selected,
                filter: String::new(),
            });
        }
        Action::CopyAnswer => match s.pane_node(s.focus) {
            Some(n) if !n.text.is_empty() => {
                fx.push(Effect::Copy(n.text.clone()));
                s.message = Some(format!("copied {} bytes", n.text.len()));
            }
            _ => s.message = Some("nothing to copy".into()),
        },
        Action::Help => s.layers.push(Layer::Help { scroll: 0 }),
        Action::Heat => heat::open(s),
        Action::TogglePrompt => prompt_view::toggle(s),
        Action::Passages => passages::open(s),
        Action::VersionHistory => versions::open_history(s),
        Action::PromptDiff => {
            if let Some(d) = prompt_view::open_diff(s, 0) {
                s.layers.push(Layer::PromptDiff(Box::new(d)));
            }
        }
        Action::ApproveTool
        | Action::DenyTool
        | Action::NextToolCall
        | Action::PrevToolCall
        | Action::EditToolResult => tools::normal_action(s, a, fx),
        Action::Close | Action::Accept | Action::Up | Action::Down => {}
        Action::Stars1
        | Action::Stars2
        | Action::Stars3
        | Action::Stars4
        | Action::Stars5
        | Action::ClearStars
        | Action::ThumbUp
        | Action::ThumbDown
        | Action::EditNote
        | Action::Compare
        | Action::Leaderboard
        | Action::SessionBrowser
        | Action::VoteLeft
        | Action::VoteRight
        | Action::VoteTie
        | Action::VoteBothBad
        | Action::NextPair
        | Action::ToggleGroup
        | Action::CompareSuggested
        | Action::ExportBoard => {
            rating::normal_action(s, a, fx);
        }
        other => techniques::normal_action(s, other, fx),
    }
}

fn mouse_event(s: &mut AppState, m: &Mouse) {
    let area = ratatui::layout::Rect::new(0, 0, s.width, s.height);
    let l = layout::screen(area, s.panes.len(), s.first, s.focus, s.zoomed);
    let hit = l.panes.iter().find(|(_, r)| {
        m.column >= r.x && m.column < r.x + r.width && m.row >= r.y && m.row < r.y + r.height
    });
    let Some(&(i, _)) = hit else { return };
    if !s.layers.is_empty() {
        return;
    }
    match m.kind {
        MouseKind::LeftDown => {
            s.focus = i;
            s.dirty = true;
        }
        MouseKind::ScrollDown => {
            scroll(s, i, 3);
            s.dirty = true;
        }
        MouseKind::ScrollUp => {
            scroll(s, i, -3);
            s.dirty = true;
        }
        MouseKind::Other => {}
    }
}

fn input_accepted(s: &mut AppState, purpose: InputPurpose, text: String, fx: &mut Vec<Effect>) {
    match purpose {
        InputPurpose::BranchToken => heat::typed(s, text, fx),
        InputPurpose::FreeInput => {
            let Some(var) = s.prompt.main_var.clone() else {
                return;
            };
            if text.trim().is_empty() {
                return;
            }
            let mut vars = s.current_case().map(|c| c.vars.clone()).unwrap_or_default();
            vars.insert(var, text);
            let n = s
                .prompt
                .cases
                .iter()
                .filter(|c| c.name.starts_with("input "))
                .count()
                + 1;
            s.prompt.cases.push(Case {
                name: format!("input {n}"),
                vars,
                expect: Default::default(),
                turns: Vec::new(),
            });
            s.session.cases = s.prompt.cases.clone();
            select_case(s, s.prompt.cases.len() - 1);
            normal_action(s, Action::RunAll, fx);
        }
        InputPurpose::ToolResult(node) => tools::edited(s, node, text, fx),
        InputPurpose::Rename(i) => {
            let name = text.trim().to_string();
            if name.is_empty() {
                return;
            }
            if s.prompt
                .variants
                .iter()
                .enumerate()
                .any(|(j, v)| j != i && v.name == name)
            {
                s.message = Some(format!("another variant is named {name:?}"));
                return;
            }
            if let Some(mut v) = s.prompt.variants.get(i).cloned() {
                v.name = name;
                replace_variant(s, i, v);
            }
        }
    }
}

/// The driver reports what the last frame measured.
pub(crate) fn set_metrics(s: &mut AppState, metrics: Vec<PaneMetrics>) {
    s.metrics = metrics;
    s.metrics.resize(s.panes.len(), PaneMetrics::default());
}

#[cfg(test)]
pub(crate) mod tests;
