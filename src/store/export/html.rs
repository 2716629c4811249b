//! `export --format html`: one self-contained page a user can send to a colleague. No
//! scripts, no fonts or styles from elsewhere, no network references: the CSS is inline and
//! every chart is an inline SVG drawn with `plotters` (its SVG backend only, no font files:
//! text is SVG `<text>` the browser lays out).
//!
//! Sections, each with its table and one chart: the leaderboard (strength or mean stars as a
//! point with its 95% interval, entries that can't be told apart marked `~`), stars per
//! variant, time to first token per model, tokens per second per model, self-consistency
//! per variant (`samples = N` agreement) and cost per passing answer per variant.

use std::fmt::Write as _;

use plotters::prelude::*;

use crate::eval::bradley_terry::Interval;
use crate::eval::figures::{model_speeds, stars_histograms, ModelSpeed};
use crate::eval::leaderboard::{build, usd_cell, GroupBy, Leaderboard};
use crate::sanitize::visible;
use crate::state::session::Session;

const WIDTH: u32 = 760;

/// Text for HTML: control characters made visible, markup characters escaped.
fn esc(s: &str) -> String {
    visible(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Labels drawn inside an SVG (plotters writes them as `<text>`; escape them ourselves so
/// the page stays well-formed whatever a variant is called).
fn label(s: &str) -> String {
    let v = esc(s);
    if v.chars().count() > 24 {
        let mut t: String = v.chars().take(23).collect();
        t.push('…');
        t
    } else {
        v
    }
}

/// An SVG drawn by `draw` into a `w`×`h` canvas, as inline markup.
fn svg(
    h: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend, plotters::coord::Shift>) -> Result<(), String>,
) -> String {
    let mut out = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut out, (WIDTH, h)).into_drawing_area();
        let r = root
            .fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|_| draw(&root));
        r.and_then(|_| root.present().map_err(|e| e.to_string()))
    };
    match result {
        // Inline SVG in HTML needs no namespace; leaving it out keeps the page free of URLs.
        Ok(()) => out.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1),
        Err(e) => format!("<p class=\"muted\">(chart not drawn: {})</p>", esc(&e)),
    }
}

fn interval_chart(board: &Leaderboard) -> String {
    let by_votes = board.by_votes;
    let rows: Vec<(String, Interval)> = board
        .entries
        .iter()
        .filter_map(|e| {
            let iv = if by_votes { e.strength } else { e.stars }?;
            let tie = if e.tied { "~" } else { "" };
            Some((format!("{tie}{}", label(&e.name)), iv))
        })
        .collect();
    let n = rows.len().max(1);
    let (mut lo, mut hi) = if by_votes {
        (0.0f64, 0.0f64)
    } else {
        (1.0, 5.0)
    };
    for (_, iv) in &rows {
        lo = lo.min(iv.low);
        hi = hi.max(iv.high);
    }
    let pad = ((hi - lo) * 0.05).max(0.1);
    let (lo, hi) = (lo - pad, hi + pad);
    let h = 60 + 34 * n as u32;
    let caption = if by_votes {
        "Bradley–Terry strength, 95% interval (~ can't be told apart)"
    } else {
        "Mean stars, 95% interval (~ can't be told apart)"
    };
    svg(h, |root| {
        let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let mut chart = ChartBuilder::on(root)
            .caption(caption, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(150)
            .build_cartesian_2d(lo..hi, -0.5f64..(n as f64 - 0.5))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .y_labels(n)
            .y_label_formatter(&|y| {
                let i = y.round();
                if (y - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .disable_y_mesh()
            .draw()
            .map_err(|e| e.to_string())?;
        if by_votes {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(0.0, -0.5), (0.0, n as f64 - 0.5)],
                    BLACK.mix(0.4),
                )))
                .map_err(|e| e.to_string())?;
        }
        chart
            .draw_series(rows.iter().enumerate().map(|(i, (_, iv))| {
                ErrorBar::new_horizontal(
                    i as f64,
                    iv.low,
                    iv.estimate,
                    iv.high,
                    BLUE.filled().stroke_width(2),
                    12,
                )
            }))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                rows.iter()
                    .enumerate()
                    .map(|(i, (_, iv))| Circle::new((iv.estimate, i as f64), 5, BLUE.filled())),
            )
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// Horizontal bars, one per (label, value).
fn bar_chart(caption: &str, unit: &str, rows: &[(String, f64)]) -> String {
    let n = rows.len().max(1);
    let max = rows.iter().map(|r| r.1).fold(0.0f64, f64::max).max(1e-9) * 1.15;
    let h = 60 + 34 * n as u32;
    svg(h, |root| {
        let names: Vec<String> = rows.iter().map(|r| label(&r.0)).collect();
        let mut chart = ChartBuilder::on(root)
            .caption(caption, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(150)
            .build_cartesian_2d(0.0..max, -0.5f64..(n as f64 - 0.5))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(unit)
            .y_labels(n)
            .y_label_formatter(&|y| {
                let i = y.round();
                if (y - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .disable_y_mesh()
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, (_, v))| {
                Rectangle::new(
                    [(0.0, i as f64 - 0.35), (*v, i as f64 + 0.35)],
                    CYAN.mix(0.8).filled(),
                )
            }))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// Grouped vertical bars: for each variant, how many ratings gave 1…5 stars.
fn stars_chart(hist: &[(String, [usize; 5])]) -> String {
    let groups = hist.len().max(1);
    let max = hist.iter().flat_map(|h| h.1).max().unwrap_or(0).max(1) as f64 * 1.15;
    let colours = [RED, MAGENTA, YELLOW, CYAN, GREEN];
    svg(320, |root| {
        let names: Vec<String> = hist.iter().map(|h| label(&h.0)).collect();
        let mut chart = ChartBuilder::on(root)
            .caption("Ratings with 1 … 5 stars, per variant", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(0.0f64..(groups as f64 * 6.0), 0.0..max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(groups * 6)
            .x_label_formatter(&|x| {
                // A group's name under its middle bar.
                let slot = x.round();
                if (x - slot).abs() > 1e-6 || slot < 0.0 {
                    return String::new();
                }
                let slot = slot as usize;
                if slot % 6 == 2 {
                    names.get(slot / 6).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .disable_x_mesh()
            .y_desc("ratings")
            .draw()
            .map_err(|e| e.to_string())?;
        for (g, (_, counts)) in hist.iter().enumerate() {
            chart
                .draw_series(counts.iter().enumerate().map(|(k, &c)| {
                    let x = g as f64 * 6.0 + k as f64;
                    Rectangle::new([(x, 0.0), (x + 0.9, c as f64)], colours[k].filled())
                }))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

const STYLE: &str = "body{font-family:sans-serif;max-width:820px;margin:2em auto;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}\
th{background:#f3f3f3}.muted{color:#777}section{margin-bottom:2.5em}";

/// The page.
pub(crate) fn page(s: &Session) -> String {
    let mut out = String::new();
    let title = esc(&s.title);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title} · promptloom</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n<p class=\"muted\">Session created {}; {} answer(s), {} rating(s), {} blind vote(s). Every interval is 95%.</p>\n",
        esc(&s.created),
        s.nodes.len(),
        s.ratings.len(),
        s.votes.len()
    );
    let board = build(s, GroupBy::Variant);
    let _ = write!(out, "<section id=\"leaderboard\">\n<h2>Leaderboard</h2>\n");
    let _ = writeln!(
        out,
        "<table><tr><th>rank</th><th>variant</th><th>answers</th><th>mean stars</th><th>passed</th><th>strength</th></tr>"
    );
    for e in &board.entries {
        let iv = |i: Option<Interval>, sign: bool| match i {
            Some(i) if sign => format!("{:+.2} [{:+.2}, {:+.2}]", i.estimate, i.low, i.high),
            Some(i) => format!("{:.2} [{:.2}, {:.2}]", i.estimate, i.low, i.high),
            None => "—".into(),
        };
        let passed = e.pass_rate.map_or("—".into(), |p| {
            format!("{}/{} ({:.0}%)", p.hits, p.n, 100.0 * p.interval.estimate)
        });
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.rank_label(board.by_votes)),
            esc(&e.name),
            e.answers,
            iv(e.stars, false),
            passed,
            iv(e.strength, true)
        );
    }
    let _ = write!(out, "</table>\n{}\n</section>\n", interval_chart(&board));

    let hist: Vec<(String, [usize; 5])> = stars_histograms(s)
        .into_iter()
        .map(|h| (h.name, h.counts))
        .collect();
    let _ = write!(
        out,
        "<section id=\"stars\">\n<h2>Stars per variant</h2>\n<table><tr><th>variant</th><th>1★</th><th>2★</th><th>3★</th><th>4★</th><th>5★</th></tr>\n"
    );
    for (name, c) in &hist {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            c[0],
            c[1],
            c[2],
            c[3],
            c[4]
        );
    }
    let _ = write!(out, "</table>\n{}\n</section>\n", stars_chart(&hist));

    let speeds = model_speeds(s);
    type Pick = fn(&ModelSpeed) -> Option<f64>;
    let sections: [(&str, &str, &str, Pick); 2] = [
        (
            "ttft",
            "Time to first token per model (median)",
            "ms",
            |m| m.ttft_ms,
        ),
        (
            "speed",
            "Tokens per second per model (median)",
            "tokens/s",
            |m| m.tok_per_s,
        ),
    ];
    for (id, heading, unit, pick) in sections {
        let rows: Vec<(String, f64)> = speeds
            .iter()
            .filter_map(|m| pick(m).map(|v| (m.model.clone(), v)))
            .collect();
        let _ = write!(
            out,
            "<section id=\"{id}\">\n<h2>{heading}</h2>\n<table><tr><th>model</th><th>answers</th><th>{unit}</th></tr>\n"
        );
        for m in &speeds {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&m.model),
                m.answers,
                pick(m).map_or("—".into(), |v| format!("{v:.1}"))
            );
        }
        let _ = write!(
            out,
            "</table>\n{}\n</section>\n",
            bar_chart(heading, unit, &rows)
        );
    }
    stability_and_cost(&mut out, &board);
    out.push_str("</body>\n</html>\n");
    out
}

/// Two sections from the leaderboard's columns: each variant's self-consistency (the mean
/// agreement of its `samples = N` cells) and what its answers cost, in all and per passing
/// answer. A variant without samples or without a price has a row with "—" and no bar.
fn stability_and_cost(out: &mut String, board: &Leaderboard) {
    let _ = write!(
        out,
        "<section id=\"stability\">\n<h2>Self-consistency per variant</h2>\n<table><tr><th>variant</th><th>sampled cells</th><th>agreement</th></tr>\n"
    );
    let mut rows = Vec::new();
    for e in &board.entries {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.name),
            e.stability_cells,
            e.stability
                .map_or("—".into(), |a| format!("{:.0}%", 100.0 * a))
        );
        if let Some(a) = e.stability {
            rows.push((e.name.clone(), 100.0 * a));
        }
    }
    let _ = write!(
        out,
        "</table>\n{}\n</section>\n",
        bar_chart(
            "Agreement of samples per variant",
            "% of samples in the majority",
            &rows
        )
    );

    let _ = write!(
        out,
        "<section id=\"cost\">\n<h2>Cost per variant</h2>\n<table><tr><th>variant</th><th>answers</th><th>cost</th><th>cost per passing answer</th></tr>\n"
    );
    let mut rows = Vec::new();
    for e in &board.entries {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.name),
            e.answers,
            esc(&usd_cell(e.cost)),
            esc(&usd_cell(e.cost_per_pass()))
        );
        if let Some(c) = e.cost_per_pass() {
            rows.push((e.name.clone(), c));
        }
    }
    let _ = write!(
        out,
        "</table>\n{}\n</section>\n",
        bar_chart("Cost per passing answer per variant", "dollars", &rows)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_has_six_sections_each_with_one_chart_and_no_urls() {
        let mut s = crate::store::tests::sample_session();
        s.title = "Caps <&> \"quoted\"".into();
        let html = page(&s);
        assert_eq!(html.matches("<section").count(), 6, "{html}");
        for part in html.split("<section").skip(1) {
            assert_eq!(part.matches("<svg").count(), 1, "{part}");
        }
        assert!(!html.contains("http"), "{html}");
        assert!(html.contains("Caps &lt;&amp;&gt; &quot;quoted&quot;"));
    }

    /// A variant sampled three times (two agree) on a priced model: the stability section
    /// shows 67% with a bar, the cost section its cost per passing answer with a bar.
    #[test]
    fn stability_and_cost_sections_carry_the_leaderboard_figures() {
        use crate::eval::consistency::GROUP_KEY;
        use crate::eval::expect::CheckResult;
        let mut s = crate::store::tests::sample_session();
        let model = s.nodes[0].model.clone();
        s.prices.insert(
            model,
            crate::price::Price {
                input: 0.0,
                output: 1000.0,
            },
        );
        let base = s.nodes[0].clone();
        s.nodes.clear();
        s.ratings.clear();
        s.votes.clear();
        for (k, text) in ["Paris", "Paris", "Lyon"].into_iter().enumerate() {
            let mut n = base.clone();
            n.id = k as u64 + 1;
            n.text = text.into();
            n.tokens_out = 10;
            n.prompt_tokens = Some(5);
            n.meta.insert(GROUP_KEY.into(), "cell".into());
            n.checks = vec![CheckResult {
                kind: "any".into(),
                pass: k < 2,
                detail: String::new(),
            }];
            s.nodes.push(n);
        }
        let section = |html: &str, id: &str| {
            let start = html.find(&format!("<section id=\"{id}\">")).unwrap();
            let end = start + html[start..].find("</section>").unwrap();
            html[start..end].to_string()
        };
        let html = page(&s);
        let st = section(&html, "stability");
        assert!(st.contains("<td>1</td><td>67%</td>"), "{st}");
        // The same answers unsampled: a row with "—" and one rectangle fewer (no bar).
        let mut unsampled = s.clone();
        for n in &mut unsampled.nodes {
            n.meta.remove(GROUP_KEY);
        }
        let bare = section(&page(&unsampled), "stability");
        assert!(bare.contains("<td>0</td><td>—</td>"), "{bare}");
        assert_eq!(
            st.matches("<rect").count(),
            bare.matches("<rect").count() + 1,
            "{st}\n{bare}"
        );
        let cost = section(&html, "cost");
        // 3 answers × 10 tokens at $1000 per million out = $0.03; two passed: $0.015 each.
        assert!(
            cost.contains(&esc(&crate::price::format_usd(0.015))),
            "{cost}"
        );
        assert!(
            cost.contains(&esc(&crate::price::format_usd(0.03))),
            "{cost}"
        );
    }
}
