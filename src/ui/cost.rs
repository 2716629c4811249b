//! The latency and cost of a finished answer, as spans for a pane's status line.

use std::collections::BTreeMap;

use ratatui::style::Style;
use ratatui::text::Span;

use crate::price::{format_usd, Price};
use crate::state::session::Node;

/// ` · 1.2 s · $0.0004500`; no cost when the model has no price in the config (`~` before
/// it when the token counts are estimates).
pub(crate) fn cost_spans(
    n: &Node,
    prices: &BTreeMap<String, Price>,
    style: Style,
) -> Vec<Span<'static>> {
    let mut out = Vec::new();
    if let Some(ms) = n.duration_ms {
        out.push(Span::styled(
            format!(" · {:.1} s", ms as f64 / 1000.0),
            style,
        ));
    }
    if let Some(c) = n.cost(prices) {
        let approx = if n.tokens_approx() { "~" } else { "" };
        out.push(Span::styled(format!(" · {approx}{}", format_usd(c)), style));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatRequest, Sampling};
    use crate::state::session::NodeKind;

    fn node() -> Node {
        let req = ChatRequest {
            messages: vec![],
            sampling: Sampling::default(),
        };
        let mut n = Node::start(1, None, NodeKind::Answer, "v", "c", "gpt", req, "t".into());
        n.prompt_tokens = Some(1000);
        n.tokens_out = 500;
        n.duration_ms = Some(1234);
        n
    }

    fn text(spans: &[Span]) -> String {
        spans.iter().map(|s| s.content.as_ref()).collect()
    }

    #[test]
    fn latency_and_cost_of_a_priced_model() {
        let mut prices = BTreeMap::new();
        prices.insert(
            "gpt".to_string(),
            Price {
                input: 0.15,
                output: 0.6,
            },
        );
        let n = node();
        assert_eq!(
            text(&cost_spans(&n, &prices, Style::default())),
            " · 1.2 s · $0.0004500"
        );
        let mut approx = n.clone();
        approx.meta.insert("tokens".into(), "approx".into());
        assert!(text(&cost_spans(&approx, &prices, Style::default())).ends_with("~$0.0004500"));
        assert_eq!(
            text(&cost_spans(&n, &BTreeMap::new(), Style::default())),
            " · 1.2 s"
        );
    }
}
