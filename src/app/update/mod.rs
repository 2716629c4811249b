//! `update`: the app's pure state machine. Messages in, state changes and effects out; no
//! I/O, no clocks (times arrive in messages), so every behaviour is a plain unit test.

use std::time::Duration;

use crossterm::event::{KeyEvent, MouseButton, MouseEvent, MouseEventKind};

use super::edit::{text_to_variant, variant_to_text, TextArea};
use super::state::{AppState, InputPurpose, Layer, Pane, PaneMetrics, Phase, PickerKind};
use super::{techniques, write_back, Action, Effect, Msg};
use crate::chat::{FinishReason, StreamEvent};
use crate::config::keymap::Mode;
use crate::prompt::{render, Case, Variant};
use crate::state::session::{Node, NodeKind, NodeStatus};
use crate::ui::layout;

/// Apply one message.
pub(crate) fn update(s: &mut AppState, msg: Msg) -> Vec<Effect> {
    let mut fx = Vec::new();
    match msg {
        Msg::Key { key, at } => {
            s.now = at;
            key_event(s, &key, &mut fx);
            s.dirty = true;
        }
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
        Msg::Rating(io) => super::rating::io(s, io, &mut fx),
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
    fx
}

fn key_event(s: &mut AppState, key: &KeyEvent, fx: &mut Vec<Effect>) {
    let mode = s.mode();
    let action = s.keymap.action(mode, key);
    if mode == Mode::Normal {
        if let Some(a) = action {
            if a != Action::Interrupt {
                s.interrupt_armed = false;
            }
            normal_action(s, a, fx);
        }
        return;
    }
    layer_key(s, action, key, fx);
}

/// Keys for the top layer. Text-entry layers take unbound keys as text.
fn layer_key(s: &mut AppState, action: Option<Action>, key: &KeyEvent, fx: &mut Vec<Effect>) {
    let Some(top) = s.layers.pop() else { return };
    let editor_height = usize::from(s.height.saturating_sub(6));
    let keep = match top {
        Layer::Help { scroll } => match action {
            Some(Action::Close) | Some(Action::Help) => None,
            Some(Action::Down) => Some(Layer::Help { scroll: scroll + 1 }),
            Some(Action::Up) => Some(Layer::Help {
                scroll: scroll.saturating_sub(1),
            }),
            _ => Some(Layer::Help { scroll }),
        },
        Layer::Picker {
            kind,
            items,
            selected,
        } => match action {
            Some(Action::Close) => None,
            Some(Action::Down) => Some(Layer::Picker {
                kind,
                selected: (selected + 1).min(items.len().saturating_sub(1)),
                items,
            }),
            Some(Action::Up) => Some(Layer::Picker {
                kind,
                selected: selected.saturating_sub(1),
                items,
            }),
            Some(Action::Accept) => {
                match kind {
                    PickerKind::Case => select_case(s, selected),
                    PickerKind::Model => {
                        if let (Some(m), Some(v)) =
                            (items.get(selected), s.prompt.variants.get_mut(s.focus))
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
            _ => Some(Layer::Picker {
                kind,
                items,
                selected,
            }),
        },
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
                    crossterm::event::KeyCode::Char(c)
                        if !key
                            .modifiers
                            .contains(crossterm::event::KeyModifiers::CONTROL) =>
                    {
                        text.push(c)
                    }
                    crossterm::event::KeyCode::Backspace => {
                        text.pop();
                    }
                    _ => {}
                }
                Some(Layer::Input { purpose, text })
            }
        },
        l
        @ (Layer::Note { .. } | Layer::Compare(_) | Layer::Leaderboard(_) | Layer::Browser(_)) => {
            super::rating::layer_key(s, l, action, key, fx)
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
        Layer::SearchParams(f) => {
            techniques::form_key(s, f, action, key, fx);
            None
        }
    };
    if let Some(l) = keep {
        s.layers.push(l);
    }
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
            let v = Variant {
                name: unique_name(s, "new"),
                description: None,
                model,
                system: None,
                template,
                examples: vec![],
                context: vec![],
                context_instruction: None,
                step_by_step: false,
                sampling: Default::default(),
                generated: None,
                retrieve: None,
                select: None,
            };
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
                &s.prompt.variants,
                &s.models,
                s.prompt.variants.first().map_or("", |v| v.model.as_str()),
            ) {
                Ok(text) => {
                    s.prompt.source = text.clone();
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
            super::rating::normal_action(s, a, fx);
        }
        other => techniques::normal_action(s, other, fx),
    }
}

fn page(s: &AppState) -> isize {
    s.metrics
        .get(s.focus)
        .map_or(10, |m| m.view_rows.max(2) as isize - 1)
}

fn scroll(s: &mut AppState, i: usize, by: isize) {
    let m = s.metrics.get(i).copied().unwrap_or_default();
    let Some(p) = s.panes.get_mut(i) else { return };
    let max = m.total_rows.saturating_sub(m.view_rows);
    let cur = if p.follow { max } else { p.scroll.min(max) };
    let next = if by < 0 {
        cur.saturating_sub(by.unsigned_abs())
    } else {
        cur.saturating_add(by as usize)
    };
    if next >= max {
        p.follow = true;
        p.scroll = max;
    } else {
        p.follow = false;
        p.scroll = next;
    }
}

fn keep_focus_visible(s: &mut AppState) {
    let n = s.panes.len();
    if n == 0 {
        s.focus = 0;
        s.first = 0;
        return;
    }
    s.focus = s.focus.min(n - 1);
    let vis = layout::visible_count(s.width, n);
    if s.focus < s.first {
        s.first = s.focus;
    } else if s.focus >= s.first + vis {
        s.first = s.focus + 1 - vis;
    }
    s.first = s.first.min(n - vis);
}

fn mouse_event(s: &mut AppState, m: &MouseEvent) {
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
        MouseEventKind::Down(MouseButton::Left) => {
            s.focus = i;
            s.dirty = true;
        }
        MouseEventKind::ScrollDown => {
            scroll(s, i, 3);
            s.dirty = true;
        }
        MouseEventKind::ScrollUp => {
            scroll(s, i, -3);
            s.dirty = true;
        }
        _ => {}
    }
}

/// Start (or restart) the stream for variant `i` on the selected case.
fn start(s: &mut AppState, i: usize, fx: &mut Vec<Effect>) {
    let Some(v) = s.prompt.variants.get(i).cloned() else {
        return;
    };
    if s.panes.get(i).is_some_and(|p| p.phase.is_active()) {
        cancel(s, i, fx);
    }
    let case = s.current_case().cloned().unwrap_or_else(|| Case {
        name: "(no case)".into(),
        vars: Default::default(),
        expect: Default::default(),
        turns: Vec::new(),
    });
    let seed = s.next_seed();
    let prepared = render::prepare(&v, &case);
    let chat = render::with_seed(prepared.request, seed);
    let id = s.session.next_node_id();
    let mut node = Node::start(
        id,
        None,
        NodeKind::Answer,
        &v.name,
        &case.name,
        &v.model,
        chat.clone(),
        s.stamp(),
    );
    node.status = NodeStatus::Queued;
    node.meta.extend(prepared.meta);
    s.session.nodes.push(node);
    let request = s.next_request;
    s.next_request += 1;
    if let Some(p) = s.panes.get_mut(i) {
        *p = Pane::idle();
        p.node = Some(id);
        p.request = request;
        p.phase = Phase::Queued;
        p.started = s.now;
    }
    s.interrupt_armed = false;
    fx.push(Effect::StartStream {
        node: id,
        request,
        model: v.model.clone(),
        chat,
    });
}

fn finish(s: &mut AppState, i: usize, outcome: Result<FinishReason, String>, at: Duration) {
    let Some(p) = s.panes.get_mut(i) else { return };
    let Some(id) = p.node else { return };
    let stats = p.meter.stats();
    let elapsed = at.saturating_sub(p.started);
    p.request = 0;
    let expect = s.current_case().map(|c| c.expect.clone());
    let Some(node) = s.session.node_mut(id) else {
        return;
    };
    node.finish(outcome, &stats, elapsed);
    let phase = match node.status {
        NodeStatus::Cancelled => Phase::Cancelled,
        NodeStatus::Done => {
            if let Some(e) = expect.filter(|_| node.case != "(no case)") {
                node.checks = e.check(&node.text);
            }
            Phase::Done
        }
        _ => Phase::Error,
    };
    if let Some(p) = s.panes.get_mut(i) {
        p.phase = phase;
    }
}

fn cancel(s: &mut AppState, i: usize, fx: &mut Vec<Effect>) {
    let Some(p) = s.panes.get(i) else { return };
    if !p.phase.is_active() {
        return;
    }
    let Some(id) = p.node else { return };
    fx.push(Effect::CancelStream { node: id });
    finish(s, i, Ok(FinishReason::Cancelled), s.now);
    save(s, fx);
}

pub(crate) fn cancel_all(s: &mut AppState, fx: &mut Vec<Effect>) {
    for i in 0..s.panes.len() {
        cancel(s, i, fx);
    }
    techniques::cancel_all(s, fx);
}

fn quit(s: &mut AppState, fx: &mut Vec<Effect>) {
    techniques::cancel_all(s, fx);
    for i in 0..s.panes.len() {
        if let Some(id) = s.panes[i].node.filter(|_| s.panes[i].phase.is_active()) {
            fx.push(Effect::CancelStream { node: id });
            finish(s, i, Ok(FinishReason::Cancelled), s.now);
        }
    }
    save(s, fx);
    s.quit = true;
}

pub(crate) fn save(s: &AppState, fx: &mut Vec<Effect>) {
    let mut session = s.session.clone();
    session.variants = s.prompt.variants.clone();
    session.cases = s.prompt.cases.clone();
    fx.push(Effect::SaveSession {
        path: s.session_path.clone(),
        session: Box::new(session),
    });
}

fn stream_event(
    s: &mut AppState,
    node: u64,
    request: u64,
    event: StreamEvent,
    at: Duration,
    fx: &mut Vec<Effect>,
) {
    if techniques::owns(s, node) {
        return techniques::stream_event(s, node, request, event, at, fx);
    }
    let Some(i) = s
        .panes
        .iter()
        .position(|p| p.node == Some(node) && p.request == request && p.phase.is_active())
    else {
        return; // stale: cancelled, rerun, or deleted
    };
    s.dirty = true;
    match event {
        StreamEvent::Delta(d) => {
            let p = &mut s.panes[i];
            let started = p.started;
            p.meter.on_delta(at.saturating_sub(started), &d);
            if !d.is_empty() {
                p.phase = Phase::Streaming;
                // "loading model…" and the like are over once tokens flow.
                p.notice = None;
            }
            if let Some(n) = s.session.node_mut(node) {
                n.status = NodeStatus::Streaming;
                n.text.push_str(&d);
            }
        }
        StreamEvent::Usage(u) => s.panes[i].meter.on_usage(u),
        StreamEvent::Notice(n) => s.panes[i].notice = Some(n),
        StreamEvent::Finished(r) => {
            finish(s, i, Ok(r), at);
            save(s, fx);
        }
        StreamEvent::Failed(e) => {
            finish(s, i, Err(e), at);
            save(s, fx);
        }
    }
}

fn select_case(s: &mut AppState, c: usize) {
    if c < s.prompt.cases.len() && c != s.case {
        s.case = c;
        s.show_case_results();
    }
}

fn input_accepted(s: &mut AppState, purpose: InputPurpose, text: String, fx: &mut Vec<Effect>) {
    match purpose {
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

fn replace_variant(s: &mut AppState, i: usize, v: Variant) {
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

fn delete_variant(s: &mut AppState, i: usize, fx: &mut Vec<Effect>) {
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

fn unique_name(s: &AppState, base: &str) -> String {
    if !s.prompt.variants.iter().any(|v| v.name == base) {
        return base.to_string();
    }
    (2..)
        .map(|n| format!("{base} {n}"))
        .find(|c| !s.prompt.variants.iter().any(|v| v.name == *c))
        .unwrap_or_else(|| base.to_string())
}

/// The driver reports what the last frame measured.
pub(crate) fn set_metrics(s: &mut AppState, metrics: Vec<PaneMetrics>) {
    s.metrics = metrics;
    s.metrics.resize(s.panes.len(), PaneMetrics::default());
}

#[cfg(test)]
pub(crate) mod tests;
