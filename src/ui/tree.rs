//! The `t` layer: every node of a case as a tree, one row each (glyphs, kind, id, stars,
//! value or judge score, state, a one-line preview), with the selected node in full beside
//! it when opened; and the small form `s` asks k, b and d in.
//!
//! The rows were flattened by `update` when the tree last changed shape; a frame touches only
//! the visible rows (and reads their nodes by index), so a case with thousands of nodes
//! draws as fast as one with ten.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Widget};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::diff::wrap_styled;
use super::frame::body;
use crate::app::model::state::AppState;
use crate::app::model::techniques::{is_folded, SearchForm, TreeRow, TreeView, SPINNER};
use crate::config::theme::Theme;
use crate::sanitize::visible;
use crate::state::session::{Node, NodeKind, NodeStatus};
use crate::technique::Machine;

/// The node a row stands for, by index (falling back to a lookup if the list moved).
fn row_node<'a>(state: &'a AppState, r: &TreeRow) -> Option<&'a Node> {
    match state.session.nodes.get(r.idx) {
        Some(n) if n.id == r.id => Some(n),
        _ => state.session.node(r.id),
    }
}

/// At most `max` columns of `text` on one line (only the start of the text is looked at).
fn one_line(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut w = 0;
    let mut space = false;
    for ch in text.chars().take(max.saturating_mul(4).max(16)) {
        if ch.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            w += 1;
            space = false;
        }
        let piece = visible(ch.encode_utf8(&mut [0; 4]));
        let pw = piece.width();
        if w + pw > max {
            out.push('…');
            return out;
        }
        out.push_str(&piece);
        w += pw;
    }
    out
}

fn kind_role(k: NodeKind) -> &'static str {
    match k {
        NodeKind::Answer => "pane.title",
        NodeKind::Critique => "status.waiting",
        NodeKind::Rewrite => "status.done",
        NodeKind::Thought => "md.heading",
        NodeKind::Value => "muted",
        NodeKind::Judge => "rating.star",
        NodeKind::VariantProposal => "md.emphasis",
        NodeKind::ToolCall => "md.code",
        NodeKind::ToolResult => "muted",
    }
}

fn kind_label(k: NodeKind) -> &'static str {
    match k {
        NodeKind::VariantProposal => "proposal",
        k => k.as_str(),
    }
}

/// The spans of one row.
fn row_line(state: &AppState, r: &TreeRow, width: usize, theme: &Theme) -> Line<'static> {
    let Some(n) = row_node(state, r) else {
        return Line::from(format!("{}#{} (missing)", r.prefix, r.id));
    };
    let spin = SPINNER[(state.now.as_millis() / 100) as usize % SPINNER.len()];
    let pruned = n.meta.contains_key("pruned");
    let muted = theme.style("muted");
    let fold = if is_folded(n) {
        format!("▸{} ", r.children)
    } else if r.children > 0 {
        "▾ ".to_string()
    } else {
        "· ".to_string()
    };
    let mut spans = vec![
        Span::styled(r.prefix.clone(), muted),
        Span::styled(fold, muted),
        Span::styled(
            format!("{:<8} ", kind_label(n.kind)),
            theme.style(kind_role(n.kind)),
        ),
        Span::styled(format!("#{:<4} ", n.id), muted),
    ];
    if let Some(st) = r.stars {
        let st = usize::from(st.min(5));
        spans.push(Span::styled(
            format!("{}{} ", "★".repeat(st), "☆".repeat(5 - st)),
            theme.style("rating.star"),
        ));
    }
    // Scores: a judge's 1-10, a value estimate 0-1, or why there is none.
    let score = match (n.kind, n.score) {
        (NodeKind::Judge, Some(sc)) => Some(format!("{sc}/10")),
        (NodeKind::Judge, None) if n.meta.get("verdict").is_some_and(|v| v == "unparseable") => {
            Some("unparseable".into())
        }
        (NodeKind::Judge, None) => n.meta.get("verdict").map(|v| format!("pick {v}")),
        (_, Some(sc)) => Some(format!("v{sc:.2}")),
        (_, None) if n.meta.get("value").is_some_and(|v| v == "unparseable") => Some("v?".into()),
        _ => None,
    };
    if let Some(sc) = score {
        spans.push(Span::styled(format!("{sc} "), theme.style("rating.star")));
    }
    let valuing = r.values.iter().any(|&i| {
        state
            .session
            .nodes
            .get(i)
            .is_some_and(|v| matches!(v.status, NodeStatus::Queued | NodeStatus::Streaming))
    });
    let (st, role) = match n.status {
        NodeStatus::Queued => ("queued".to_string(), "status.queued"),
        NodeStatus::Streaming => (format!("{spin} streaming"), "status.streaming"),
        NodeStatus::Done if valuing => (format!("{spin} valuing"), "status.streaming"),
        NodeStatus::Done => (String::new(), "status.done"),
        NodeStatus::Cancelled => ("cancelled".to_string(), "status.cancelled"),
        NodeStatus::Error => ("error".to_string(), "status.error"),
    };
    if !st.is_empty() {
        spans.push(Span::styled(format!("{st} "), theme.style(role)));
    }
    let mut flags = Vec::new();
    if pruned {
        flags.push("✂ pruned".to_string());
    }
    if n.meta.contains_key("bookmark") {
        flags.push("◆".to_string());
    }
    if let Some(l) = n.meta.get("beam_level") {
        flags.push(format!("kept@{l}"));
    }
    if let Some(b) = n.meta.get("best") {
        flags.push(format!("best ({b})"));
    }
    if state.panes.iter().any(|p| p.node == Some(n.id)) {
        flags.push("◀ pane".to_string());
    }
    if !flags.is_empty() {
        spans.push(Span::styled(
            format!("{} ", flags.join(" ")),
            theme.style("header.key"),
        ));
    }
    let used: usize = spans.iter().map(|s| s.content.width()).sum();
    let text = if n.meta.contains_key("search_root") {
        "(search root: the task, no text)".to_string()
    } else if n.text.is_empty() && n.status == NodeStatus::Done {
        "(empty)".to_string()
    } else {
        one_line(&n.text, width.saturating_sub(used))
    };
    spans.push(Span::styled(text, theme.style("text")));
    let mut line = Line::from(spans);
    if pruned {
        line = line.patch_style(muted.add_modifier(Modifier::DIM));
    }
    line
}

pub(crate) fn draw(frame: &mut Frame, area: Rect, state: &AppState, t: &TreeView, theme: &Theme) {
    let r = body(area);
    if r.width < 8 || r.height < 3 {
        return;
    }
    Clear.render(r, frame.buffer_mut());
    let running: Vec<String> = state
        .tech
        .jobs
        .iter()
        .filter(|j| j.running && j.case == t.case)
        .map(|j| match &j.technique.machine {
            Machine::Search {
                search,
                branch: false,
                ..
            } => format!(
                "search level {}/{} k={} b={}",
                search.level, search.params.depth, search.params.k, search.params.beam
            ),
            Machine::Search { .. } => "branching".into(),
            Machine::Critique(_) => "refining".into(),
            Machine::Judge { .. } | Machine::Pair { .. } => "judging".into(),
            Machine::Propose { .. } => "proposing".into(),
            Machine::Samples { .. } => "sampling".into(),
        })
        .collect();
    let mut title = format!(" Tree · case {} · {} nodes", visible(&t.case), t.total);
    if !running.is_empty() {
        let spin = SPINNER[(state.now.as_millis() / 100) as usize % SPINNER.len()];
        title.push_str(&format!(" · {spin} {}", running.join(", ")));
    }
    title.push(' ');
    let (tree_area, side) = if t.open && r.width >= 40 {
        let w = r.width * 11 / 20;
        (
            Rect::new(r.x, r.y, w, r.height),
            Some(Rect::new(r.x + w, r.y, r.width - w, r.height)),
        )
    } else {
        (r, None)
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.style("overlay.border"))
        .title(title);
    let inner = block.inner(tree_area);
    block.render(tree_area, frame.buffer_mut());
    let h = usize::from(inner.height);
    let top = t.top.min(t.rows.len().saturating_sub(1));
    for (i, row) in t.rows.iter().enumerate().skip(top).take(h) {
        let y = inner.y + (i - top) as u16;
        let mut line = row_line(state, row, usize::from(inner.width), theme);
        if i == t.cursor {
            line = line.patch_style(theme.style("overlay.selected"));
            // Paint the whole row so the selection reads as a bar.
            frame.buffer_mut().set_style(
                Rect::new(inner.x, y, inner.width, 1),
                theme.style("overlay.selected"),
            );
        }
        frame.buffer_mut().set_line(inner.x, y, &line, inner.width);
    }
    if t.rows.len() > h && inner.width > 2 {
        let pos = format!(" {}/{} ", t.cursor + 1, t.rows.len());
        let x = tree_area.x + tree_area.width.saturating_sub(pos.width() as u16 + 2);
        frame.buffer_mut().set_string(
            x,
            tree_area.y + tree_area.height - 1,
            pos,
            theme.style("overlay.border"),
        );
    }
    if let Some(side) = side {
        if let Some(n) = t.selected().and_then(|id| state.session.node(id)) {
            draw_node(frame, side, n, theme);
        }
    }
}

/// One node in full: what it is, its figures and annotations, then its text.
fn draw_node(frame: &mut Frame, area: Rect, n: &Node, theme: &Theme) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.style("overlay.border"))
        .title(format!(
            " {} #{} · {} ",
            kind_label(n.kind),
            n.id,
            visible(&n.model)
        ));
    let inner = block.inner(area);
    block.render(area, frame.buffer_mut());
    let muted = theme.style("muted");
    let mut head = format!("{:?}", n.status).to_lowercase();
    if n.tokens_out > 0 {
        head.push_str(&format!(" · {} tok", n.tokens_out));
    }
    if let Some(sc) = n.score {
        head.push_str(&format!(" · score {sc:.2}"));
    }
    if let Some(p) = n.parent {
        head.push_str(&format!(" · parent #{p}"));
    }
    let mut parts: Vec<(String, Style)> = vec![(format!("{head}\n"), muted)];
    for (k, v) in &n.meta {
        parts.push((format!("{k}: {v}\n"), muted));
    }
    if let Some(e) = &n.error {
        parts.push((format!("error: {e}\n"), theme.style("error")));
    }
    parts.push(("\n".into(), Style::default()));
    parts.push((n.text.clone(), theme.style("text")));
    let refs: Vec<(&str, Style)> = parts.iter().map(|(s, st)| (s.as_str(), *st)).collect();
    let rows = wrap_styled(&refs, inner.width);
    for (i, line) in rows.iter().take(usize::from(inner.height)).enumerate() {
        frame
            .buffer_mut()
            .set_line(inner.x, inner.y + i as u16, line, inner.width);
    }
}

/// The `s` form: k, b, d and value samples, the selected one highlighted.
pub(crate) fn draw_form(frame: &mut Frame, area: Rect, f: &SearchForm, theme: &Theme) {
    let r = crate::app::model::layout::centered(area, 46, 9);
    let title = format!(" Tree-of-thought search from #{} ", f.node);
    let Some(inner) = super::frame::boxed(frame, r, (10, 4), &title, theme) else {
        return;
    };
    for (i, label) in SearchForm::LABELS.iter().enumerate() {
        if i as u16 >= inner.height {
            break;
        }
        let style = if i == f.field {
            theme.style("overlay.selected")
        } else {
            theme.style("text")
        };
        let text = format!("{label:<30} ◀ {:>2} ▶", f.values[i]);
        frame.buffer_mut().set_stringn(
            inner.x,
            inner.y + i as u16,
            format!("{text:<w$}", w = usize::from(inner.width)),
            usize::from(inner.width),
            style,
        );
    }
    let help = [
        "j/k field · h/l or digits change",
        "Enter starts · Esc cancels",
    ];
    for (i, line) in help.iter().enumerate() {
        let y = inner.y + 5 + i as u16;
        if y < inner.y + inner.height {
            frame.buffer_mut().set_stringn(
                inner.x,
                y,
                line,
                usize::from(inner.width),
                theme.style("muted"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::app::model::keys::KeyCode;

    use crate::app::model::state::{AppState, Layer};
    use crate::app::update::techniques::tests::answered;
    use crate::app::update::tests::{ev, key, started};
    use crate::app::Effect;
    use crate::chat::{FinishReason, StreamEvent};
    use crate::state::session::Rating;
    use crate::ui::tests::screen;

    fn reply(s: &mut AppState, pair: (u64, u64), text: &str) -> Vec<Effect> {
        ev(s, pair, StreamEvent::Delta(text.into()), 30);
        ev(s, pair, StreamEvent::Finished(FinishReason::Stop), 40)
    }

    /// A case with a two-round refine on plain, a judge, a rating, and a search from the
    /// teacher's answer in level 2: one thought pruned, one bookmarked, two streaming.
    fn grown() -> AppState {
        let mut s = answered();
        s.prompt.cases[0].expect = Default::default();
        let c1 = started(&key(&mut s, KeyCode::Char('C')));
        let r1 = started(&reply(&mut s, c1[0], "1. Paris is in France, not England."));
        let c2 = started(&reply(&mut s, r1[0], "The capital of England is London."));
        let r2 = started(&reply(&mut s, c2[0], "Say it in one word."));
        let c3 = started(&reply(&mut s, r2[0], "London."));
        reply(&mut s, c3[0], "NO ISSUES");
        let j = started(&key(&mut s, KeyCode::Char('J')));
        reply(&mut s, j[0], "SCORE: 9\nREASON: right city, one word.");
        s.session.ratings.push(Rating {
            node: 1,
            stars: Some(2),
            thumb: None,
            note: None,
            rater: "me".into(),
            at: "now".into(),
            seq: None,
        });
        key(&mut s, KeyCode::Char('l'));
        key(&mut s, KeyCode::Char('s'));
        for c in ['3', 'j', '2', 'j', '2', 'j', '1'] {
            key(&mut s, KeyCode::Char(c));
        }
        let l1 = started(&key(&mut s, KeyCode::Enter));
        let mut values = Vec::new();
        for (p, t) in l1.iter().zip([
            "Step 1: England's capital city",
            "Step 1: think of rivers",
            "Step 1: Paris",
        ]) {
            values.extend(started(&reply(&mut s, *p, t)));
        }
        reply(&mut s, values[0], "sure");
        reply(&mut s, values[1], "likely");
        // The user prunes the third thought while its value is pending.
        if let Some(Layer::Tree(t)) = s.layers.last_mut() {
            t.cursor = t.rows.iter().position(|r| r.id == l1[2].0).unwrap();
        }
        key(&mut s, KeyCode::Char('x'));
        if let Some(Layer::Tree(t)) = s.layers.last_mut() {
            t.cursor = t.rows.iter().position(|r| r.id == l1[1].0).unwrap();
        }
        key(&mut s, KeyCode::Char('m'));
        let l2: Vec<(u64, u64)> = s
            .tech
            .streams
            .iter()
            .map(|(n, t)| (*n, t.request))
            .collect();
        assert_eq!(l2.len(), 6, "3 thoughts under each of the 2 kept");
        ev(
            &mut s,
            l2[0],
            StreamEvent::Delta("Step 2: London".into()),
            50,
        );
        ev(
            &mut s,
            l2[1],
            StreamEvent::Delta("Step 2: the Thames runs through".into()),
            50,
        );
        s.now = Duration::from_millis(1200);
        s
    }

    #[test]
    fn snapshot_tree_during_a_search() {
        let mut s = grown();
        insta::assert_snapshot!("tree_search_80x24", screen(&mut s, 80, 24));
        insta::assert_snapshot!("tree_search_160x48", screen(&mut s, 160, 48));
        key(&mut s, KeyCode::Enter);
        insta::assert_snapshot!("tree_open_160x48", screen(&mut s, 160, 48));
    }

    #[test]
    fn snapshot_pane_revisions_judge_and_diff() {
        let mut s = grown();
        key(&mut s, KeyCode::Esc);
        key(&mut s, KeyCode::Char('h'));
        key(&mut s, KeyCode::Char('<'));
        insta::assert_snapshot!("pane_rev_80x24", screen(&mut s, 80, 24));
        key(&mut s, KeyCode::Char('d'));
        insta::assert_snapshot!("diff_80x24", screen(&mut s, 80, 24));
        insta::assert_snapshot!("diff_160x48", screen(&mut s, 160, 48));
    }

    #[test]
    fn snapshot_search_form() {
        let mut s = answered();
        key(&mut s, KeyCode::Char('s'));
        key(&mut s, KeyCode::Char('j'));
        insta::assert_snapshot!("search_form_80x24", screen(&mut s, 80, 24));
    }

    #[test]
    fn tree_and_diff_draw_at_every_size() {
        let mut s = grown();
        key(&mut s, KeyCode::Enter);
        for w in [1u16, 5, 20, 39, 40, 80] {
            for h in [1u16, 3, 6, 24] {
                assert_eq!(screen(&mut s, w, h).lines().count(), usize::from(h));
            }
        }
    }
}
