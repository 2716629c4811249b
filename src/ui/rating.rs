//! Rating surfaces: the rating in a pane's header, the note editor, the blind comparison,
//! the leaderboard and the session browser. They only draw; the full-screen ones leave the
//! footer row to the key hints (generated from the keymap).

use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Widget};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::answer::AnswerView;
use super::cache::ViewCache;
use crate::app::model::edit::TextArea;
use crate::app::model::queries::{my_rating, other_raters, shown_node};
use crate::app::model::rating::{
    node_label, outcome_words, stars_text, BoardState, BrowserState, CompareState,
};
use crate::app::model::state::{AppState, Layer};
use crate::config::theme::Theme;
use crate::eval::bradley_terry::Interval;
use crate::eval::leaderboard::{
    agreement_text, judge_cell, usd_cell, Entry, GroupBy, Share, MIN_SAMPLE,
};
use crate::sanitize::visible;
use crate::state::session::NodeStatus;

/// Your rating of what pane `i` shows, for the right of its title: `★★★★☆ 👍 ✎ saved`.
/// Only ratings that reached the journal are in the session, so whatever is shown is saved.
pub(crate) fn pane_rating(state: &AppState, i: usize, theme: &Theme) -> Option<Line<'static>> {
    let node = shown_node(state, i)?;
    let mine = my_rating(state, node).filter(|r| !r.is_empty());
    let others = other_raters(state, node);
    if mine.is_none() && others == 0 {
        return None;
    }
    let star = theme.style("rating.star");
    let muted = theme.style("muted");
    let mut spans = vec![Span::raw(" ")];
    if let Some(r) = mine {
        if let Some(n) = r.stars {
            spans.push(Span::styled(stars_text(n), star));
            spans.push(Span::raw(" "));
        }
        match r.thumb {
            Some(t) if t > 0 => spans.push(Span::raw("👍 ")),
            Some(t) if t < 0 => spans.push(Span::raw("👎 ")),
            _ => {}
        }
        if r.note.is_some() {
            spans.push(Span::styled("✎ ", star));
        }
        spans.push(Span::styled("saved ", theme.style("check.pass")));
    }
    if others > 0 {
        // Other raters' ratings exist (shown in the leaderboard), untouched by yours.
        spans.push(Span::styled(format!("+{others} "), muted));
    }
    Some(Line::from(spans).right_aligned())
}

/// Your note on what pane `i` shows, as one row: `✎ first line…`.
pub(crate) fn pane_note(
    state: &AppState,
    i: usize,
    width: u16,
    theme: &Theme,
) -> Option<Line<'static>> {
    let node = shown_node(state, i)?;
    let note = my_rating(state, node)?.note.as_deref()?;
    let mut first = visible(note.lines().next().unwrap_or(""));
    let more = note.lines().count() > 1;
    let room = usize::from(width).saturating_sub(5);
    if first.width() > room {
        first = truncate(&first, room.saturating_sub(1));
        first.push('…');
    } else if more {
        first.push_str(" …");
    }
    Some(Line::from(vec![
        Span::styled("✎ ", theme.style("rating.star")),
        Span::styled(format!("“{first}”"), theme.style("md.emphasis")),
    ]))
}

fn truncate(s: &str, width: usize) -> String {
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if w + cw > width {
            break;
        }
        w += cw;
        out.push(c);
    }
    out
}

/// Draw one rating layer over everything but the footer row; `ui::draw_layers` walks the
/// stack.
pub(crate) fn draw_layer(
    frame: &mut Frame,
    area: Rect,
    state: &AppState,
    layer: &Layer,
    cache: &mut ViewCache,
    theme: &Theme,
) {
    let screen = Rect::new(
        area.x,
        area.y,
        area.width,
        area.height.saturating_sub(1).max(1.min(area.height)),
    );
    {
        match layer {
            Layer::Note { node, area: text } => note(frame, screen, state, *node, text, theme),
            Layer::Compare(c) => compare(frame, screen, state, c, &mut cache.compare, theme),
            Layer::Leaderboard(b) => leaderboard(frame.buffer_mut(), screen, b, theme),
            Layer::Browser(b) => browser(frame.buffer_mut(), screen, b, theme),
            _ => {}
        }
    }
}

fn clear(buf: &mut Buffer, r: Rect) {
    Clear.render(r, buf);
}

fn put(buf: &mut Buffer, area: Rect, row: u16, line: &Line<'_>) {
    if row < area.height {
        buf.set_line(area.x, area.y + row, line, area.width);
    }
}

fn note(
    frame: &mut Frame,
    area: Rect,
    state: &AppState,
    node: u64,
    text: &TextArea,
    theme: &Theme,
) {
    let who = state
        .session
        .node(node)
        .map(|n| format!("#{node} · {}", visible(&n.variant)))
        .unwrap_or_else(|| format!("#{node}"));
    let r = crate::app::model::layout::centered(area, area.width.saturating_sub(8).max(20), 12);
    clear(frame.buffer_mut(), r);
    let b = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.style("overlay.border"))
        .title(format!(" Note on {who} (Ctrl-S saves, Esc cancels) "));
    let inner = b.inner(r);
    b.render(r, frame.buffer_mut());
    if inner.height == 0 || inner.width == 0 {
        return;
    }
    for (row, line) in text
        .lines
        .iter()
        .skip(text.top)
        .take(usize::from(inner.height))
        .enumerate()
    {
        frame.buffer_mut().set_stringn(
            inner.x,
            inner.y + row as u16,
            visible(line),
            usize::from(inner.width),
            theme.style("text"),
        );
    }
    if text.row >= text.top && text.row < text.top + usize::from(inner.height) {
        let line = text.lines.get(text.row).map_or("", String::as_str);
        let col = visible(&line[..text.col.min(line.len())]).width() as u16;
        frame.set_cursor_position(Position::new(
            (inner.x + col).min(inner.x + inner.width.saturating_sub(1)),
            inner.y + (text.row - text.top) as u16,
        ));
    }
}

fn compare(
    frame: &mut Frame,
    area: Rect,
    state: &AppState,
    c: &CompareState,
    views: &mut [AnswerView; 2],
    theme: &Theme,
) {
    let buf = frame.buffer_mut();
    clear(buf, area);
    if area.height == 0 || area.width == 0 {
        return;
    }
    let muted = theme.style("muted");
    let key = theme.style("header.key");
    let vars = state
        .prompt
        .cases
        .iter()
        .find(|k| k.name == c.case)
        .map(|k| {
            k.vars
                .iter()
                .map(|(n, v)| format!("{n}={}", visible(v)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    put(
        buf,
        area,
        0,
        &Line::from(vec![
            Span::styled("Blind A/B", theme.style("header")),
            Span::styled("  case ", muted),
            Span::styled(visible(&c.case), key),
            Span::styled(format!(" {vars}"), theme.style("text")),
            Span::styled(format!("   {} vote(s) this round", c.votes), muted),
        ]),
    );
    let why = if c.voted.is_some() {
        &c.reason
    } else {
        &c.blind_reason
    };
    let why_rows = wrapped(
        "why this pair: ",
        &visible(why),
        area.width,
        muted,
        theme.style("text"),
    );
    let why_h = (why_rows.len() as u16).min(3);
    for (k, l) in why_rows.iter().take(usize::from(why_h)).enumerate() {
        put(buf, area, 1 + k as u16, l);
    }
    let top_rows = 1 + why_h;
    let bottom_rows = 1;
    let body_h = area.height.saturating_sub(top_rows + bottom_rows);
    let half = area.width / 2;
    let y = area.y + top_rows.min(area.height);
    let sides = [
        (c.left, Rect::new(area.x, y, half, body_h), "left"),
        (
            c.right,
            Rect::new(area.x + half, y, area.width - half, body_h),
            "right",
        ),
    ];
    for (k, (id, r, side)) in sides.into_iter().enumerate() {
        let node = state.session.node(id);
        let picked = c.voted == Some(side);
        let mut title = vec![Span::styled(
            format!(" {} ", if k == 0 { "Left" } else { "Right" }),
            theme.style("pane.title"),
        )];
        if let (Some(_), Some(n)) = (c.voted, node) {
            title.push(Span::styled(
                format!("· {} ", visible(&node_label(n))),
                theme.style("header.key"),
            ));
            if picked {
                title.push(Span::styled("✓ your pick ", theme.style("check.pass")));
            }
        }
        if let Some(n) = node {
            if matches!(n.status, NodeStatus::Streaming | NodeStatus::Queued) {
                title.push(Span::styled("streaming… ", theme.style("status.streaming")));
            } else if n.meta.contains_key("incomplete") || n.status == NodeStatus::Cancelled {
                title.push(Span::styled("incomplete ", theme.style("status.cancelled")));
            }
        }
        let border = if picked || c.voted.is_some_and(|v| v == "tie" || v == "both_bad") {
            theme.style("pane.focused.border")
        } else {
            theme.style("pane.border")
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(border)
            .title(Line::from(title));
        let inner = block.inner(r);
        block.render(r, buf);
        if inner.width == 0 || inner.height == 0 {
            continue;
        }
        let text = node.map_or("", |n| n.text.as_str());
        let view = &mut views[k];
        view.sync(id, text, inner.width, theme);
        let h = usize::from(inner.height);
        let top = c.scroll.min(view.len().saturating_sub(h));
        for row in 0..h {
            match view.row(top + row) {
                Some(line) => {
                    buf.set_line(inner.x, inner.y + row as u16, line, inner.width);
                }
                None => break,
            }
        }
    }
    let hint = match c.voted {
        Some(v) => Line::from(vec![
            Span::styled(
                format!("You voted: {}. ", outcome_words(v)),
                theme.style("check.pass"),
            ),
            Span::styled("Any key: next pair · Esc: close", muted),
        ]),
        None => Line::from(Span::styled(
            "Which answer is better? Names are hidden and sides are random.",
            muted,
        )),
    };
    put(buf, area, area.height.saturating_sub(1), &hint);
}

fn share_cell(s: &Option<Share>) -> String {
    match s {
        Some(s) => format!("{}/{} {:.0}%", s.hits, s.n, 100.0 * s.interval.estimate),
        None => "-".into(),
    }
}

fn share_detail(s: &Option<Share>) -> String {
    match s {
        Some(s) => format!(
            "{}/{} = {:.0}% [{:.0}%, {:.0}%]",
            s.hits,
            s.n,
            100.0 * s.interval.estimate,
            100.0 * s.interval.low,
            100.0 * s.interval.high
        ),
        None => "-".into(),
    }
}

fn stars_cell(e: &Entry) -> String {
    match e.stars {
        Some(Interval {
            estimate,
            low,
            high,
        }) => format!("{estimate:.1} [{low:.1},{high:.1}]"),
        None => "-".into(),
    }
}

fn strength_cell(e: &Entry) -> String {
    match e.strength {
        Some(s) => format!("{:+.1} [{:+.1},{:+.1}]", s.estimate, s.low, s.high),
        None => "-".into(),
    }
}

fn judge_short(e: &Entry) -> String {
    match e.judge {
        Some(j) => format!("{:.1} n={}", j.estimate, e.judge_n),
        None if e.judge_unparseable > 0 => "unparsed".into(),
        None => "-".into(),
    }
}

fn cell(text: &str, w: usize) -> String {
    let t = truncate(text, w);
    let pad = w.saturating_sub(t.width());
    format!("{t}{} ", " ".repeat(pad))
}

/// Word-wrap `text` to `width` columns (long words are cut).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    let mut cur = String::new();
    for word in text.split(' ') {
        let sep = usize::from(!cur.is_empty());
        if cur.width() + sep + word.width() <= width {
            if sep == 1 {
                cur.push(' ');
            }
            cur.push_str(word);
            continue;
        }
        if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        let mut w = word.to_string();
        while w.width() > width {
            let mut head = truncate(&w, width);
            if head.is_empty() {
                // A character wider than the whole row: it goes on a row of its own.
                head = w.chars().next().map(String::from).unwrap_or_default();
            }
            w = w[head.len()..].to_string();
            out.push(head);
        }
        cur = w;
    }
    if !cur.is_empty() || out.is_empty() {
        out.push(cur);
    }
    out
}

/// `label` then `text`, wrapped, continuation rows indented by two.
fn wrapped(
    label: &str,
    text: &str,
    width: u16,
    label_style: Style,
    style: Style,
) -> Vec<Line<'static>> {
    let w = usize::from(width);
    let first = wrap(&format!("{label}{text}"), w);
    let mut out = Vec::new();
    for (i, row) in first.into_iter().enumerate() {
        if i == 0 && row.starts_with(label) {
            out.push(Line::from(vec![
                Span::styled(label.to_string(), label_style),
                Span::styled(row[label.len()..].to_string(), style),
            ]));
        } else {
            out.push(Line::styled(row, style));
        }
    }
    out
}

fn leaderboard(buf: &mut Buffer, area: Rect, b: &BoardState, theme: &Theme) {
    clear(buf, area);
    if area.height == 0 || area.width == 0 {
        return;
    }
    let board = &b.board;
    let muted = theme.style("muted");
    let text = theme.style("text");
    let key = theme.style("header.key");
    let wide = area.width >= 120;
    let other = match board.by {
        GroupBy::Variant => "versions",
        GroupBy::VariantVersion => "models",
        GroupBy::Model | GroupBy::VariantModel => "variants",
    };
    let basis = if board.by_votes {
        let fitted: usize = board.entries.iter().map(Entry::votes).sum::<usize>() / 2;
        format!(
            "Ranked by Bradley–Terry strength from {fitted} blind vote(s) (a tie is half a win; {} both-bad vote(s) counted, not fitted).",
            board.both_bad_votes
        )
    } else {
        format!(
            "Ranked by {}; press v to compare.",
            crate::eval::leaderboard::ranking_basis(board)
        )
    };
    put(
        buf,
        area,
        0,
        &Line::from(vec![
            Span::styled(
                format!("Leaderboard by {}", board.by.as_str()),
                theme.style("header"),
            ),
            Span::styled(format!("  (Tab: by {other})"), muted),
        ]),
    );
    let mut notes: Vec<Line<'static>> = Vec::new();
    if let Some(e) = board.entries.get(b.selected) {
        let small = if e.rank.is_none() {
            format!(
                " Too few to rank: needs {MIN_SAMPLE} {}.",
                if board.by_votes {
                    "votes"
                } else {
                    "star ratings"
                }
            )
        } else {
            String::new()
        };
        notes.extend(wrapped(
            &format!("{}: ", visible(&e.name)),
            &format!(
                "{} answer(s); stars n={}; 👍 {}; passed {}; W-L-T {}-{}-{}, both bad {}; judge {}; cost {}, per passing answer {}.{small}",
                e.answers,
                e.stars_n,
                share_detail(&e.thumbs_up),
                share_detail(&e.pass_rate),
                e.wins,
                e.losses,
                e.ties,
                e.both_bad,
                judge_cell(e),
                usd_cell(e.cost),
                usd_cell(e.cost_per_pass())
            ),
            area.width,
            key,
            text,
        ));
    }
    notes.extend(wrapped(
        "",
        &format!(
            "{basis} ~N: can't be told apart from another entry at 95%. n=K: fewer than {MIN_SAMPLE}, not ranked."
        ),
        area.width,
        muted,
        muted,
    ));
    notes.extend(wrapped(
        "",
        &agreement_text(board.agreement.as_ref()),
        area.width,
        text,
        text,
    ));
    match &b.suggestion {
        Some(sug) => notes.extend(wrapped(
            "Next to compare (v): ",
            &format!(
                "case {}, {} vs {}. Why: {}",
                visible(&sug.case),
                visible(&sug.variant_a),
                visible(&sug.variant_b),
                visible(&sug.reason)
            ),
            area.width,
            key,
            text,
        )),
        None => notes.push(Line::styled(
            "Next to compare: nothing yet (no case has answers from two variants).",
            muted,
        )),
    }
    let name_w = if wide { 18 } else { 10 };
    let mut cols: Vec<(&str, usize)> = vec![
        ("rank", 5),
        (board.by.as_str(), name_w),
        ("stars [95%]", 13),
        ("👍 share", 9),
        ("passed", 9),
        ("BT [95%]", 16),
        ("judge", 9),
    ];
    if wide {
        cols.insert(2, ("answers", 7));
        cols.push(("W-L-T", 8));
        cols.push(("both bad", 8));
        cols.push(("$/pass", 10));
    }
    let header: String = cols.iter().map(|(h, w)| cell(h, *w)).collect();
    put(buf, area, 1, &Line::styled(header, key));
    let first_row = 2u16;
    // The table gets at least three rows; notes fill the rest from the bottom.
    let note_rows = (notes.len() as u16).min(area.height.saturating_sub(first_row + 3));
    let rows = area.height.saturating_sub(first_row + note_rows + 1).max(1);
    let top = b
        .selected
        .saturating_sub(usize::from(rows).saturating_sub(1));
    if board.entries.is_empty() {
        put(
            buf,
            area,
            first_row,
            &Line::styled("Nothing rated yet: run some answers first.", muted),
        );
    }
    for (row, (i, e)) in board
        .entries
        .iter()
        .enumerate()
        .skip(top)
        .take(usize::from(rows))
        .enumerate()
    {
        let mut cells: Vec<String> = vec![
            e.rank_label(board.by_votes),
            visible(&e.name),
            stars_cell(e),
            share_cell(&e.thumbs_up),
            share_cell(&e.pass_rate),
            strength_cell(e),
            judge_short(e),
        ];
        if wide {
            cells.insert(2, e.answers.to_string());
            cells.push(format!("{}-{}-{}", e.wins, e.losses, e.ties));
            cells.push(e.both_bad.to_string());
            cells.push(usd_cell(e.cost_per_pass()));
        }
        let line: String = cells
            .iter()
            .zip(&cols)
            .map(|(c, (_, w))| cell(c, *w))
            .collect();
        let style = if i == b.selected {
            theme.style("overlay.selected")
        } else if e.rank.is_none() {
            muted
        } else {
            text
        };
        put(
            buf,
            area,
            first_row + row as u16,
            &Line::styled(line, style),
        );
    }
    let y0 = area.height.saturating_sub(note_rows);
    for (k, l) in notes.iter().take(usize::from(note_rows)).enumerate() {
        put(buf, area, y0 + k as u16, l);
    }
}

fn browser(buf: &mut Buffer, area: Rect, b: &BrowserState, theme: &Theme) {
    clear(buf, area);
    if area.height == 0 || area.width == 0 {
        return;
    }
    let muted = theme.style("muted");
    put(
        buf,
        area,
        0,
        &Line::from(vec![
            Span::styled("Sessions", theme.style("header")),
            Span::styled(
                "  newest first · Enter opens (this session is saved first) · Esc closes",
                muted,
            ),
        ]),
    );
    let Some(items) = &b.items else {
        put(buf, area, 2, &Line::styled("looking for sessions…", muted));
        return;
    };
    if items.is_empty() {
        put(
            buf,
            area,
            2,
            &Line::styled(
                "No session files in ./sessions/ or the data dir yet.",
                muted,
            ),
        );
        return;
    }
    put(
        buf,
        area,
        1,
        &Line::styled(
            format!(
                "  {} {} {} {} {}",
                cell("modified", 16),
                cell("answers", 7),
                cell("rated", 5),
                cell("votes", 5),
                "session file · prompt file"
            ),
            theme.style("header.key"),
        ),
    );
    let rows = usize::from(area.height.saturating_sub(2)).max(1);
    let top = b.selected.saturating_sub(rows - 1);
    for (row, (i, s)) in items.iter().enumerate().skip(top).take(rows).enumerate() {
        let mark = if s.current { "● " } else { "  " };
        let what = match &s.error {
            Some(e) => format!("{} · cannot open: {}", s.path.display(), e),
            None => format!(
                "{} · {}",
                s.path.file_name().map_or_else(
                    || s.path.display().to_string(),
                    |n| n.to_string_lossy().into_owned()
                ),
                s.prompt_file.as_deref().unwrap_or(&s.title),
            ),
        };
        let line = format!(
            "{mark}{} {} {} {} {}",
            cell(&s.modified, 16),
            cell(&s.answers.to_string(), 7),
            cell(&s.ratings.to_string(), 5),
            cell(&s.votes.to_string(), 5),
            visible(&what)
        );
        let style = if i == b.selected {
            theme.style("overlay.selected")
        } else if s.error.is_some() {
            theme.style("error")
        } else {
            theme.style("text")
        };
        put(buf, area, 2 + row as u16, &Line::styled(line, style));
    }
}

#[cfg(test)]
mod tests;
