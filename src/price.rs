//! What an answer cost: a model's price (US dollars per million input and output tokens) and
//! the cost of a node from its token counts.
//!
//! A leaf: `config` reads prices from `[models.NAME] price = { input = …, output = … }`,
//! `chat::ModelIdentity` records them in the session, and `eval::leaderboard` sums them,
//! all without depending on each other.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// US dollars per million tokens, as written in the config and recorded in a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Price {
    /// Per million prompt (input) tokens.
    pub input: f64,
    /// Per million completion (output) tokens.
    pub output: f64,
}

impl Price {
    /// Free: what a local or scripted model costs unless the user sets a figure.
    pub const FREE: Price = Price {
        input: 0.0,
        output: 0.0,
    };

    /// The cost in dollars of `prompt` input and `completion` output tokens.
    pub fn cost(&self, prompt: u64, completion: u64) -> f64 {
        (prompt as f64 * self.input + completion as f64 * self.output) / 1_000_000.0
    }

    /// A price a config may hold: finite and not negative.
    pub fn is_valid(&self) -> bool {
        self.input.is_finite() && self.output.is_finite() && self.input >= 0.0 && self.output >= 0.0
    }
}

/// Prices by configured model name; a model missing here has an unknown cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PriceTable(pub BTreeMap<String, Price>);

impl PriceTable {
    pub fn get(&self, model: &str) -> Option<Price> {
        self.0.get(model).copied()
    }

    /// The cost of one answer by `model`, or `None` when its price is unknown.
    #[cfg(test)]
    pub fn cost(&self, model: &str, prompt: u64, completion: u64) -> Option<f64> {
        self.get(model).map(|p| p.cost(prompt, completion))
    }
}

/// A dollar figure for a table cell: `$0` for free, four significant digits below a cent.
pub(crate) fn format_usd(usd: f64) -> String {
    if usd == 0.0 {
        "$0".to_string()
    } else if usd >= 0.01 {
        format!("${usd:.2}")
    } else {
        // Small per-answer costs: keep four significant digits.
        let digits = (-usd.log10()).ceil() as usize + 3;
        format!("${usd:.digits$}", digits = digits.min(12))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_per_million_tokens() {
        let p = Price {
            input: 0.15,
            output: 0.60,
        };
        // 1000 in, 500 out: 0.00015 + 0.0003
        assert!((p.cost(1000, 500) - 0.00045).abs() < 1e-12);
        assert_eq!(Price::FREE.cost(10_000, 10_000), 0.0);
    }

    #[test]
    fn table_says_unknown_for_an_unpriced_model() {
        let mut t = PriceTable::default();
        t.0.insert("a".into(), Price::FREE);
        assert_eq!(t.cost("a", 5, 5), Some(0.0));
        assert_eq!(t.cost("b", 5, 5), None);
    }

    #[test]
    fn dollar_cells() {
        assert_eq!(format_usd(0.0), "$0");
        assert_eq!(format_usd(1.234), "$1.23");
        assert_eq!(format_usd(0.00045), "$0.0004500");
        assert_eq!(format_usd(0.0123), "$0.01");
    }

    #[test]
    fn negative_and_nan_prices_are_invalid() {
        assert!(!Price {
            input: -1.0,
            output: 0.0
        }
        .is_valid());
        assert!(!Price {
            input: f64::NAN,
            output: 0.0
        }
        .is_valid());
        assert!(Price::FREE.is_valid());
    }
}
