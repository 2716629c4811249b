//! Tool calls in a pane: each call as a block (the tool's name, its arguments pretty-printed,
//! the result with where it came from and how long it took), between the turns of the
//! conversation. The pane's own node is the turn streaming now; the turns and calls before it
//! are drawn above its text ([`rows_above`]), the calls it made below ([`rows_below`]).
//!
//! Everything here came from a model or a tool: it is drawn through `sanitize::visible`.

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthChar;

use crate::app::model::state::AppState;
use crate::config::theme::Theme;
use crate::sanitize::visible;
use crate::state::session::{Node, NodeKind, Session};
use crate::state::tool_loop;

/// At most this many rows of a result are shown (the session keeps all of it).
const MAX_RESULT_ROWS: usize = 12;

/// `text` cut into rows of at most `width` columns (no word wrapping: JSON has few spaces).
fn hard_wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut rows = Vec::new();
    for line in text.split('\n') {
        let mut row = String::new();
        let mut w = 0;
        for ch in line.chars() {
            let cw = ch.width().unwrap_or(0);
            if w + cw > width && !row.is_empty() {
                rows.push(std::mem::take(&mut row));
                w = 0;
            }
            row.push(ch);
            w += cw;
        }
        rows.push(row);
    }
    rows
}

/// JSON pretty-printed, other text as it is.
fn pretty(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) if v.is_object() || v.is_array() => {
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| text.to_string())
        }
        _ => text.to_string(),
    }
}

fn push_wrapped(out: &mut Vec<Line<'static>>, prefix: &str, text: &str, width: u16, style: Style) {
    let room = usize::from(width).saturating_sub(prefix.chars().count());
    for r in hard_wrap(&visible(text), room) {
        out.push(Line::from(vec![
            Span::styled(prefix.to_string(), style),
            Span::styled(r, style),
        ]));
    }
}

/// The block of one call and its result (if it has one yet). `selected` marks the block the
/// tool keys act on.
pub(crate) fn call_block(
    call: &Node,
    result: Option<&Node>,
    selected: bool,
    width: u16,
    theme: &Theme,
) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let head = if selected { "▶ " } else { "┌ " };
    let name = call.meta.get("tool").map(String::as_str).unwrap_or("?");
    let head_style = if selected {
        theme.style("pane.focused.border")
    } else {
        theme.style("md.code")
    };
    out.push(Line::from(vec![
        Span::styled(head.to_string(), head_style),
        Span::styled(format!("tool {}", visible(name)), head_style),
    ]));
    push_wrapped(
        &mut out,
        "│ ",
        &pretty(&call.text),
        width,
        theme.style("md.code"),
    );
    match result {
        None => out.push(Line::from(Span::styled(
            "└ (waiting for the result)".to_string(),
            theme.style("muted"),
        ))),
        Some(r) => {
            let source = r.meta.get("source").map(String::as_str).unwrap_or("?");
            let ms = r.duration_ms.unwrap_or(0);
            let role = match source {
                "error" | "not_allowed" => "error",
                _ => "muted",
            };
            out.push(Line::from(Span::styled(
                format!("├ result ({source}, {ms} ms)"),
                theme.style(role),
            )));
            let mut rows = Vec::new();
            push_wrapped(&mut rows, "│ ", &pretty(&r.text), width, theme.style(role));
            if rows.len() > MAX_RESULT_ROWS {
                let more = rows.len() - MAX_RESULT_ROWS;
                rows.truncate(MAX_RESULT_ROWS);
                rows.push(Line::from(Span::styled(
                    format!("│ … {more} more rows"),
                    theme.style("muted"),
                )));
            }
            out.extend(rows);
            out.push(Line::from(Span::styled("└".to_string(), theme.style(role))));
        }
    }
    out
}

/// The blocks of the calls `answer` made, in order, with the results on the way to the
/// pane's node `shown` (an edited result replaces the one it was edited from).
fn round_rows(
    s: &Session,
    answer: u64,
    shown: u64,
    selected: Option<u64>,
    width: u16,
    theme: &Theme,
) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    for (call_id, _, result) in tool_loop::round_toward(s, answer, Some(shown)) {
        let Some(call) = s.node(call_id) else {
            continue;
        };
        let result = result.and_then(|r| s.node(r));
        let is_selected = selected.is_some_and(|sel| Some(sel) == result.map(|r| r.id));
        out.extend(call_block(call, result, is_selected, width, theme));
    }
    out
}

/// The earlier turns of the pane's conversation (each with its calls), oldest first: the
/// answer turns above the pane's node on its path through `tool-call`/`tool-result` nodes.
fn earlier_turns(s: &Session, node: u64) -> Vec<&Node> {
    let mut out = Vec::new();
    let mut cur = s.node(node).and_then(|n| n.parent);
    while let Some(id) = cur {
        let Some(n) = s.node(id) else { break };
        match n.kind {
            NodeKind::Answer => out.push(n),
            NodeKind::ToolCall | NodeKind::ToolResult => {}
            _ => break,
        }
        cur = n.parent;
    }
    out.reverse();
    out
}

/// Rows drawn above the pane's answer: the earlier turns and their calls.
pub(crate) fn rows_above(
    state: &AppState,
    i: usize,
    width: u16,
    theme: &Theme,
) -> Vec<Line<'static>> {
    let Some(node) = state.panes.get(i).and_then(|p| p.node) else {
        return Vec::new();
    };
    let selected = state.tools.selected(i);
    let mut out = Vec::new();
    for turn in earlier_turns(&state.session, node) {
        if !turn.text.is_empty() {
            out.extend(super::answer::render_all(
                &visible(&turn.text),
                width,
                theme,
            ));
        }
        out.extend(round_rows(
            &state.session,
            turn.id,
            node,
            selected,
            width,
            theme,
        ));
    }
    out
}

/// Rows drawn below the pane's answer: the calls it made (while they are being answered).
pub(crate) fn rows_below(
    state: &AppState,
    i: usize,
    width: u16,
    theme: &Theme,
) -> Vec<Line<'static>> {
    let Some(node) = state.panes.get(i).and_then(|p| p.node) else {
        return Vec::new();
    };
    round_rows(
        &state.session,
        node,
        node,
        state.tools.selected(i),
        width,
        theme,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatRequest, ToolCall};
    use crate::state::tool_loop::Source;
    use std::time::Duration;

    fn text_of(lines: &[Line<'_>]) -> String {
        lines
            .iter()
            .map(|l| {
                l.spans
                    .iter()
                    .map(|s| s.content.as_ref())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_block_shows_name_pretty_arguments_and_the_result_with_latency_sanitised() {
        let mut s = Session::new("t", "now".into(), None);
        s.nodes.push(Node::start(
            1,
            None,
            NodeKind::Answer,
            "v",
            "c",
            "m",
            ChatRequest {
                messages: vec![],
                sampling: Default::default(),
            },
            "now".into(),
        ));
        let call = ToolCall {
            id: "c1".into(),
            name: "get_current_weather".into(),
            arguments: r#"{"location":"Boston\u001b[2J"}"#.into(),
        };
        let k = tool_loop::record_call(&mut s, 1, &call, "now".into());
        let r = tool_loop::record_result(
            &mut s,
            k,
            r#"{"temperature":"72"}"#,
            Source::Mock,
            Duration::from_millis(4),
            "now".into(),
        );
        let theme = Theme::builtin_dark();
        let rows = call_block(s.node(k).unwrap(), s.node(r), false, 40, &theme);
        let t = text_of(&rows);
        assert_eq!(
            t,
            "┌ tool get_current_weather\n│ {\n│   \"location\": \"Boston\\u001b[2J\"\n│ }\n├ result (mock, 4 ms)\n│ {\n│   \"temperature\": \"72\"\n│ }\n└"
        );
        // The JSON printer escapes the ESC the arguments decode to: no escape reaches the
        // terminal.
        assert!(!t.contains('\x1b'));
        // Text that is not JSON goes through `visible`: a raw ESC is shown as a symbol.
        let raw = ToolCall {
            id: "c2".into(),
            name: "get_current_weather\x1b]0;owned\x07".into(),
            arguments: "Boston\x1b[2J".into(),
        };
        let k2 = tool_loop::record_call(&mut s, 1, &raw, "now".into());
        let r2 = tool_loop::record_result(
            &mut s,
            k2,
            "sunny\x1b[31m",
            Source::Command,
            Duration::ZERO,
            "now".into(),
        );
        let t = text_of(&call_block(
            s.node(k2).unwrap(),
            s.node(r2),
            false,
            40,
            &theme,
        ));
        assert!(!t.contains('\x1b') && !t.contains('\x07'), "{t:?}");
        assert!(t.contains("│ Boston␛[2J"), "{t}");
        assert!(t.contains("│ sunny␛[31m"), "{t}");
        let waiting = text_of(&call_block(s.node(k).unwrap(), None, true, 40, &theme));
        assert!(
            waiting.starts_with("▶ tool get_current_weather"),
            "{waiting}"
        );
        assert!(waiting.ends_with("(waiting for the result)"), "{waiting}");
    }

    #[test]
    fn long_lines_wrap_and_long_results_are_cut() {
        assert_eq!(hard_wrap("abcdef", 4), ["abcd", "ef"]);
        let mut s = Session::new("t", "now".into(), None);
        s.nodes.push(Node::start(
            1,
            None,
            NodeKind::Answer,
            "v",
            "c",
            "m",
            ChatRequest {
                messages: vec![],
                sampling: Default::default(),
            },
            "now".into(),
        ));
        let call = ToolCall {
            id: "c1".into(),
            name: "t".into(),
            arguments: "{}".into(),
        };
        let k = tool_loop::record_call(&mut s, 1, &call, "now".into());
        let long = "line\n".repeat(40);
        let r = tool_loop::record_result(
            &mut s,
            k,
            &long,
            Source::Command,
            Duration::ZERO,
            "now".into(),
        );
        let rows = call_block(
            s.node(k).unwrap(),
            s.node(r),
            false,
            40,
            &Theme::builtin_dark(),
        );
        let t = text_of(&rows);
        assert!(t.contains("… 29 more rows"), "{t}");
    }
}
