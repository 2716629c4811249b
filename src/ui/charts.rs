//! The `c` layer over the leaderboard: the results as pictures. Each entry's strength as a
//! point with its 95% interval on one shared axis (Bradley–Terry from blind votes, else mean
//! stars), entries that can't be told apart marked `~` and a zero-width interval drawn as a
//! lone point labelled "no spread"; the stars histogram of each variant; median time to
//! first token and tokens per second of each model as bars (ratatui's `BarChart`); each
//! entry's self-consistency (agreement over its `samples = N` cells) and what one passing
//! answer cost, as bars.

use ratatui::buffer::Buffer;
use ratatui::layout::{Direction, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, BarGroup, Widget};
use ratatui::Frame;

use crate::app::model::charts::ChartsView;
use crate::config::theme::Theme;
use crate::eval::bradley_terry::Interval;
use crate::sanitize::{one_line, visible};

pub(crate) fn draw(frame: &mut Frame, area: Rect, c: &ChartsView, theme: &Theme) {
    let r = Rect::new(
        area.x,
        area.y,
        area.width,
        area.height
            .saturating_sub(crate::app::model::layout::FOOTER_ROWS),
    );
    let title = format!(
        " Charts by {} · Esc back to the table ",
        c.board.by.as_str()
    );
    let Some(inner) = super::frame::boxed(frame, r, (30, 10), &title, theme) else {
        return;
    };
    let buf = frame.buffer_mut();
    let n = c.board.entries.len().max(1) as u16;
    let strength_h = (n + 2).min(inner.height / 2);
    let rest = inner.height - strength_h;
    let stars_h = rest.saturating_mul(2) / 5;
    let speed_h = (rest - stars_h) / 2;
    let stable_h = rest - stars_h - speed_h;
    let mut y = inner.y;
    strength(
        buf,
        Rect::new(inner.x, y, inner.width, strength_h),
        c,
        theme,
    );
    y += strength_h;
    stars(buf, Rect::new(inner.x, y, inner.width, stars_h), c, theme);
    y += stars_h;
    speed(buf, Rect::new(inner.x, y, inner.width, speed_h), c, theme);
    y += speed_h;
    stability_and_cost(buf, Rect::new(inner.x, y, inner.width, stable_h), c, theme);
}

fn heading(buf: &mut Buffer, area: Rect, text: &str, note: &str, theme: &Theme) {
    if area.height == 0 {
        return;
    }
    let line = Line::from(vec![
        Span::styled(text.to_string(), theme.style("header")),
        Span::styled(format!("  {note}"), theme.style("muted")),
    ]);
    buf.set_line(area.x, area.y, &line, area.width);
}

/// Points with their intervals on one axis; `~` where intervals can't separate entries.
fn strength(buf: &mut Buffer, area: Rect, c: &ChartsView, theme: &Theme) {
    let by_votes = c.board.by_votes;
    let (title, note) = if by_votes {
        (
            "Strength (Bradley–Terry, 95% interval)",
            "● estimate  ├─┤ interval  │ zero  ~ can't be told apart",
        )
    } else {
        (
            "Mean stars (95% interval; no blind votes yet)",
            "● mean  ├─┤ interval  ~ can't be told apart",
        )
    };
    heading(buf, area, title, note, theme);
    let rows: Vec<(String, Option<Interval>, bool, String)> = c
        .board
        .entries
        .iter()
        .map(|e| {
            let iv = if by_votes { e.strength } else { e.stars };
            (visible(&e.name), iv, e.tied, e.rank_label(by_votes))
        })
        .collect();
    if rows.is_empty() {
        buf.set_line(
            area.x,
            area.y + 1,
            &Line::styled("nothing rated yet", theme.style("muted")),
            area.width,
        );
        return;
    }
    let (mut lo, mut hi) = if by_votes {
        (0.0f64, 0.0f64)
    } else {
        (1.0, 5.0)
    };
    for (_, iv, _, _) in &rows {
        if let Some(iv) = iv {
            lo = lo.min(iv.low);
            hi = hi.max(iv.high);
        }
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    let name_w = 16usize.min(usize::from(area.width) / 4);
    let value_w = 24usize;
    let axis_x = area.x + (name_w + 5) as u16;
    let axis_w = area
        .width
        .saturating_sub((name_w + 5 + value_w) as u16)
        .max(10);
    let col = |v: f64| -> u16 {
        let f = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
        axis_x + (f * f64::from(axis_w - 1)).round() as u16
    };
    let bar = theme.style("chart.bar").add_modifier(Modifier::BOLD);
    let ivs = theme.style("chart.interval");
    let muted = theme.style("muted");
    for (k, (name, iv, tied, rank)) in rows.iter().enumerate() {
        let y = area.y + 1 + k as u16;
        if y >= area.y + area.height {
            break;
        }
        let label = format!("{rank:>4} {:<name_w$}", one_line(name, name_w));
        buf.set_string(area.x, y, &label, theme.style("text"));
        if by_votes {
            buf.set_string(col(0.0), y, "│", muted);
        }
        let Some(iv) = iv else {
            buf.set_string(axis_x, y, "no votes", muted);
            continue;
        };
        let (a, b, m) = (col(iv.low), col(iv.high), col(iv.estimate));
        for x in a..=b {
            buf.set_string(x, y, "─", ivs);
        }
        buf.set_string(a, y, "├", ivs);
        buf.set_string(b, y, "┤", ivs);
        buf.set_string(m, y, "●", bar);
        let spread = if iv.width() <= 1e-9 { " no spread" } else { "" };
        let value = format!(
            "{}{:+.2} [{:+.2}, {:+.2}]{spread}",
            if *tied { "~" } else { " " },
            iv.estimate,
            iv.low,
            iv.high
        );
        let vx = axis_x + axis_w + 1;
        if vx < area.x + area.width {
            buf.set_string(vx, y, one_line(&value, value_w + 10), theme.style("text"));
        }
    }
}

/// One group of five bars (1★…5★) per variant.
fn stars(buf: &mut Buffer, area: Rect, c: &ChartsView, theme: &Theme) {
    heading(
        buf,
        area,
        "Stars per variant",
        "ratings with 1 … 5 stars",
        theme,
    );
    if area.height < 4 {
        return;
    }
    let body = Rect::new(area.x, area.y + 1, area.width, area.height - 1);
    if c.stars.iter().all(|h| h.counts.iter().all(|&n| n == 0)) {
        buf.set_line(
            body.x,
            body.y,
            &Line::styled("no star ratings yet", theme.style("muted")),
            body.width,
        );
        return;
    }
    let groups = c.stars.len().max(1) as u16;
    // Five bars and a gap per group: as wide as fits, at least one column.
    let bar_w = ((body.width / groups).saturating_sub(2) / 5).clamp(1, 5);
    let label_w = usize::from(bar_w * 5);
    let groups: Vec<BarGroup> = c
        .stars
        .iter()
        .map(|h| {
            let bars: Vec<Bar> = h
                .counts
                .iter()
                .enumerate()
                .map(|(k, &n)| {
                    Bar::default()
                        .value(n as u64)
                        .label(Line::from(format!("{}", k + 1)))
                        .style(theme.style("rating.star"))
                })
                .collect();
            BarGroup::default()
                .label(Line::from(one_line(&visible(&h.name), label_w)))
                .bars(&bars)
        })
        .collect();
    let mut chart = BarChart::default()
        .bar_width(bar_w)
        .bar_gap(0)
        .group_gap(2)
        .value_style(theme.style("overlay.selected"))
        .label_style(theme.style("muted"));
    for g in groups {
        chart = chart.data(g);
    }
    chart.render(body, buf);
}

/// Median ttft and tokens/s per model, side by side, as horizontal bars.
fn speed(buf: &mut Buffer, area: Rect, c: &ChartsView, theme: &Theme) {
    heading(
        buf,
        area,
        "Speed by model",
        "median over its answers",
        theme,
    );
    if area.height < 3 {
        return;
    }
    let (left, right) = halves(area);
    hbars(
        buf,
        "time to first token (ms)",
        c.speeds
            .iter()
            .map(|s| {
                (
                    visible(&s.model),
                    s.ttft_ms,
                    s.ttft_ms.map_or("—".into(), |t| format!("{t:.0} ms")),
                )
            })
            .collect(),
        left,
        theme,
    );
    hbars(
        buf,
        "tokens per second",
        c.speeds
            .iter()
            .map(|s| {
                (
                    visible(&s.model),
                    s.tok_per_s,
                    s.tok_per_s.map_or("—".into(), |t| format!("{t:.1} tok/s")),
                )
            })
            .collect(),
        right,
        theme,
    );
}

/// The left and right halves of a section below its heading line.
fn halves(area: Rect) -> (Rect, Rect) {
    let half = area.width / 2;
    (
        Rect::new(area.x, area.y + 1, half, area.height - 1),
        Rect::new(
            area.x + half,
            area.y + 1,
            area.width - half,
            area.height - 1,
        ),
    )
}

/// Per entry: how often its samples agree (the majority's share, mean over its sampled
/// cells) and what one passing answer cost (every answer paid for over the passing ones).
fn stability_and_cost(buf: &mut Buffer, area: Rect, c: &ChartsView, theme: &Theme) {
    heading(
        buf,
        area,
        &format!("Stability and cost by {}", c.board.by.as_str()),
        "samples = N agreement · $ per passing answer",
        theme,
    );
    if area.height < 3 {
        return;
    }
    let (left, right) = halves(area);
    let entries = &c.board.entries;
    if entries.iter().all(|e| e.stability.is_none()) {
        buf.set_string(
            left.x,
            left.y,
            "agreement of samples",
            theme.style("header.key"),
        );
        buf.set_string(
            left.x,
            left.y + 1,
            "no sampled cells yet (samples = N on a variant)",
            theme.style("muted"),
        );
    } else {
        hbars(
            buf,
            "agreement of samples (%)",
            entries
                .iter()
                .map(|e| {
                    (
                        visible(&e.name),
                        e.stability.map(|a| 100.0 * a),
                        e.stability.map_or("—".into(), |a| {
                            format!("{:.0}% · {} cells", 100.0 * a, e.stability_cells)
                        }),
                    )
                })
                .collect(),
            left,
            theme,
        );
    }
    if entries.iter().all(|e| e.cost_per_pass().is_none()) {
        buf.set_string(
            right.x,
            right.y,
            "cost per passing answer",
            theme.style("header.key"),
        );
        let why = if entries.iter().all(|e| e.cost.is_none()) {
            "no prices set ([price] in the config)"
        } else {
            "nothing passed its checks yet"
        };
        buf.set_string(right.x, right.y + 1, why, theme.style("muted"));
    } else {
        hbars(
            buf,
            "cost per passing answer ($)",
            entries
                .iter()
                .map(|e| {
                    let per = e.cost_per_pass();
                    (
                        visible(&e.name),
                        // Bars are whole numbers: micro-dollars keep small prices apart.
                        per.map(|d| d * 1e6),
                        per.map_or("—".into(), crate::price::format_usd),
                    )
                })
                .collect(),
            right,
            theme,
        );
    }
}

/// A titled horizontal bar chart: one bar per (name, value, text); `None` draws an empty
/// bar with its text ("—").
fn hbars(
    buf: &mut Buffer,
    title: &str,
    values: Vec<(String, Option<f64>, String)>,
    r: Rect,
    theme: &Theme,
) {
    const NAME_W: usize = 12;
    buf.set_string(r.x, r.y, title, theme.style("header.key"));
    let body = Rect::new(
        r.x,
        r.y + 1,
        r.width.saturating_sub(1),
        r.height.saturating_sub(1),
    );
    if values.iter().all(|v| v.1.is_none()) {
        buf.set_string(body.x, body.y, "no figures yet", theme.style("muted"));
        return;
    }
    let bars: Vec<Bar> = values
        .iter()
        .map(|(name, v, text)| {
            Bar::default()
                .value(v.map_or(0, |x| x.round().max(0.0) as u64))
                .text_value(text.clone())
                .label(Line::from(format!("{:<NAME_W$}", one_line(name, NAME_W))))
                .style(theme.style("chart.bar"))
        })
        .collect();
    BarChart::default()
        .direction(Direction::Horizontal)
        .bar_width(1)
        .bar_gap(0)
        .value_style(theme.style("text"))
        .label_style(theme.style("muted"))
        .data(BarGroup::default().bars(&bars))
        .render(body, buf);
}

#[cfg(test)]
mod tests;
