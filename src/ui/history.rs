//! The `V` layer: the focused variant's versions, oldest first, each with what changed, its
//! answers, pass rate, mean stars and Bradley–Terry strength (with their 95% intervals), and
//! sparklines of how pass rate and stars moved from version to version.

use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Sparkline, Widget};
use ratatui::Frame;

use crate::app::model::charts::HistoryView;
use crate::config::theme::Theme;
use crate::sanitize::{one_line, visible};

pub(crate) fn draw(frame: &mut Frame, area: Rect, h: &HistoryView, theme: &Theme) {
    let title = format!(
        " History of {} · {} version(s) · Esc closes ",
        visible(&h.variant),
        h.rows.len()
    );
    let Some(inner) = super::frame::overlay(frame, area, (20, 6), &title, theme) else {
        return;
    };
    let buf = frame.buffer_mut();
    let muted = theme.style("muted");
    let text = theme.style("text");
    let wide = inner.width >= 100;
    let label_w = if wide { 28 } else { 14 };
    let head = if wide {
        format!(
            "{:<4} {:<12} {:<label_w$} {:>4} {:>16} {:>17} {:>19}",
            "ver", "hash", "change", "ans", "pass (95%)", "stars (95%)", "strength (95%)"
        )
    } else {
        format!(
            "{:<4} {:<label_w$} {:>4} {:>6} {:>5} {:>6}",
            "ver", "change", "ans", "pass", "stars", "BT"
        )
    };
    let mut lines = vec![Line::styled(head, muted)];
    for (i, row) in h.rows.iter().enumerate() {
        let pass = row.pass_rate.map(|p| {
            let pct = |x: f64| format!("{:.0}", 100.0 * x);
            if wide {
                format!(
                    "{}/{} {}% [{}–{}]",
                    p.hits,
                    p.n,
                    pct(p.interval.estimate),
                    pct(p.interval.low),
                    pct(p.interval.high)
                )
            } else {
                format!("{}%", pct(p.interval.estimate))
            }
        });
        let stars = row.stars.map(|s| {
            if wide {
                format!(
                    "{:.2} [{:.1}–{:.1}] n={}",
                    s.estimate, s.low, s.high, row.stars_n
                )
            } else {
                format!("{:.2}", s.estimate)
            }
        });
        let strength = row.strength.map(|s| {
            if wide {
                format!("{:+.2} [{:+.2}, {:+.2}]", s.estimate, s.low, s.high)
            } else {
                format!("{:+.2}", s.estimate)
            }
        });
        let dash = || "—".to_string();
        let label = one_line(&row.label, label_w);
        let line = if wide {
            format!(
                "{:<4} {:<12} {:<label_w$} {:>4} {:>16} {:>17} {:>19}",
                format!("v{}", row.number),
                row.hash,
                label,
                row.answers,
                pass.unwrap_or_else(dash),
                stars.unwrap_or_else(dash),
                strength.unwrap_or_else(dash)
            )
        } else {
            format!(
                "{:<4} {:<label_w$} {:>4} {:>6} {:>5} {:>6}",
                format!("v{}", row.number),
                label,
                row.answers,
                pass.unwrap_or_else(dash),
                stars.unwrap_or_else(dash),
                strength.unwrap_or_else(dash)
            )
        };
        let style = if i == h.selected {
            theme.style("overlay.selected")
        } else {
            text
        };
        lines.push(Line::styled(line, style));
    }
    if h.rows.is_empty() {
        lines.push(Line::styled("(no versions recorded)", muted));
    }
    let table_h = (inner.height as usize).saturating_sub(5).max(1);
    let top = h.selected.saturating_sub(table_h.saturating_sub(2));
    let mut y = inner.y;
    for (k, l) in lines.iter().enumerate() {
        if k > 0 && k - 1 < top {
            continue;
        }
        if usize::from(y - inner.y) >= table_h {
            break;
        }
        buf.set_line(inner.x, y, l, inner.width);
        y += 1;
    }
    // Sparklines: one column per version (pass rate in %, mean stars × 20), below the table.
    let spark_y = inner.y + inner.height.saturating_sub(4);
    let label_cols = 12u16;
    let spark_w = inner
        .width
        .saturating_sub(label_cols)
        .min(h.rows.len().max(1) as u16 * 2);
    let series: [(&str, Vec<Option<u64>>); 2] = [
        (
            "pass rate",
            h.rows
                .iter()
                .map(|r| {
                    r.pass_rate
                        .map(|p| (100.0 * p.interval.estimate).round() as u64)
                })
                .collect(),
        ),
        (
            "mean stars",
            h.rows
                .iter()
                .map(|r| r.stars.map(|s| (20.0 * s.estimate).round() as u64))
                .collect(),
        ),
    ];
    for (k, (name, values)) in series.iter().enumerate() {
        let row_y = spark_y + 2 * k as u16;
        if row_y >= inner.y + inner.height {
            break;
        }
        buf.set_line(
            inner.x,
            row_y,
            &Line::from(Span::styled(format!("{name:<11}"), muted)),
            label_cols,
        );
        // Each version two columns wide; a version without figures is a gap.
        let data: Vec<u64> = values
            .iter()
            .flat_map(|v| {
                let x = v.unwrap_or(0);
                [x, x]
            })
            .collect();
        Sparkline::default()
            .data(&data)
            .max(100)
            .style(theme.style("chart.bar").add_modifier(Modifier::BOLD))
            .render(Rect::new(inner.x + label_cols, row_y, spark_w, 2), buf);
    }
}

#[cfg(test)]
mod tests {
    use crate::app::model::keys::KeyCode;

    use crate::app::update::tests::{app, ev, key, started};
    use crate::chat::{FinishReason, StreamEvent};

    #[test]
    fn history_snapshots() {
        for (w, h) in [(80, 24), (160, 48)] {
            let mut s = app();
            for (k, (answer, stars)) in [("Paris", '2'), ("London", '4'), ("London", '5')]
                .into_iter()
                .enumerate()
            {
                if k > 0 {
                    s.prompt.variants[0].template =
                        format!("What is the capital city of {{{{country}}}}? ({k})");
                }
                let st = started(&key(&mut s, KeyCode::Char('R')));
                ev(&mut s, st[0], StreamEvent::Delta(answer.into()), 10);
                ev(&mut s, st[0], StreamEvent::Finished(FinishReason::Stop), 20);
                let fx = key(&mut s, KeyCode::Char(stars));
                crate::app::update::rating::tests::journal(&mut s, &fx);
            }
            key(&mut s, KeyCode::Char('V'));
            let text = crate::ui::tests::screen(&mut s, w, h);
            assert!(text.contains("History of plain · 3 version(s)"), "{text}");
            insta::assert_snapshot!(format!("history_{w}x{h}"), text);
        }
    }
}
