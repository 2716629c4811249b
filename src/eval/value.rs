//! Value estimates for tree-of-thought search: the model labels a partial solution *sure*,
//! *likely* or *impossible* (Yao et al., 2023), several samples are averaged.
//!
//! Labels map to 1.0 / 0.5 / 0.0, so a score reads as "how promising, 0 to 1". (Yao et al.
//! sum 20 / 1 / 0.001 over samples; both orderings agree on which candidates are best when
//! every candidate has the same number of readable samples, and ours stays comparable when
//! some samples could not be read.) A sample that names no label, or contradicts itself, is
//! recorded as unparseable and left out of the average; when no sample can be read the
//! candidate has no score at all, never a zero.

use regex::Regex;
use std::sync::LazyLock;

/// A value label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    Sure,
    Likely,
    Impossible,
}

impl Label {
    pub fn score(self) -> f64 {
        match self {
            Label::Sure => 1.0,
            Label::Likely => 0.5,
            Label::Impossible => 0.0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Label::Sure => "sure",
            Label::Likely => "likely",
            Label::Impossible => "impossible",
        }
    }
}

static LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(sure|certain|likely|impossible|not possible)\b").expect("static regex")
});

/// "Sure, I will..." / "Sure! ..." opening a line is a conversational reply, not a verdict.
static INTERJECTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?im)^[\s*_]*sure\s*[,!]").expect("static regex"));

fn labels_in(text: &str) -> Vec<Label> {
    let text = INTERJECTION.replace_all(text, "");
    let mut out: Vec<Label> = LABEL
        .captures_iter(&text)
        .filter_map(|c| {
            Some(match c.get(1)?.as_str().to_ascii_lowercase().as_str() {
                "sure" | "certain" => Label::Sure,
                "likely" => Label::Likely,
                _ => Label::Impossible,
            })
        })
        .collect();
    out.dedup();
    out
}

/// Read one value sample. The verdict is asked for on the last line, so the last line that
/// names exactly one label decides; otherwise the whole text must name exactly one.
pub(crate) fn parse_label(raw: &str) -> Option<Label> {
    for line in raw.lines().rev().filter(|l| !l.trim().is_empty()) {
        let mut ls = labels_in(line);
        ls.sort_by_key(|l| l.as_str());
        ls.dedup();
        match ls.as_slice() {
            [one] => return Some(*one),
            [] => continue,
            _ => break,
        }
    }
    let mut all = labels_in(raw);
    all.sort_by_key(|l| l.as_str());
    all.dedup();
    match all.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// Several samples of one candidate's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ValueEstimate {
    /// One entry per sample, `None` for unreadable (or failed) samples.
    pub samples: Vec<Option<Label>>,
}

impl ValueEstimate {
    pub fn push(&mut self, label: Option<Label>) {
        self.samples.push(label);
    }

    /// The mean of the readable samples; `None` when there are none.
    pub fn score(&self) -> Option<f64> {
        let read: Vec<f64> = self.samples.iter().flatten().map(|l| l.score()).collect();
        (!read.is_empty()).then(|| read.iter().sum::<f64>() / read.len() as f64)
    }

    /// `sure,likely,?` — what each sample said, for the node's meta.
    pub fn summary(&self) -> String {
        self.samples
            .iter()
            .map(|s| s.map_or("?", Label::as_str))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_clean_and_messy_answers() {
        assert_eq!(parse_label("sure"), Some(Label::Sure));
        assert_eq!(parse_label("Likely."), Some(Label::Likely));
        assert_eq!(
            parse_label("10 - 4 = 6, 6 * 4 = 24.\nThe steps reach 24.\n**Sure**"),
            Some(Label::Sure)
        );
        // Reasoning mentions several labels; the last line decides.
        assert_eq!(
            parse_label("It is not impossible, and I am not sure.\nVerdict: likely"),
            Some(Label::Likely)
        );
        assert_eq!(
            parse_label("The numbers are too big, so reaching 24 is not possible."),
            Some(Label::Impossible)
        );
        assert_eq!(parse_label("This is unlikely to work."), None);
        assert_eq!(parse_label("I'm not sure, it's likely"), None);
        assert_eq!(parse_label(""), None);
        assert_eq!(parse_label("Step 3: 4 * 6 = 24"), None);
        assert_eq!(parse_label("LIKELY\n\n"), Some(Label::Likely));
        // Seen from SmolLM2-135M: a conversational "Sure," is not a verdict.
        assert_eq!(
            parse_label("Sure, I will be bus 1 wis64 times leftmost you achieve reached the- the previous step\n\nTo sum up the steps:\n\n- 4 * 4 * 4 * 4 = 24 = 24 + 24"),
            None
        );
        assert_eq!(
            parse_label("Sure! The verdict is: likely"),
            Some(Label::Likely)
        );
        assert_eq!(
            parse_label("Yes, that's correct. The achieved solution is indeed 24."),
            None
        );
    }

    #[test]
    fn estimates_average_readable_samples_only() {
        let mut v = ValueEstimate::default();
        assert_eq!(v.score(), None);
        v.push(Some(Label::Sure));
        v.push(None);
        v.push(Some(Label::Likely));
        assert_eq!(v.score(), Some(0.75));
        assert_eq!(v.summary(), "sure,?,likely");
        let all_bad = ValueEstimate {
            samples: vec![None, None],
        };
        assert_eq!(
            all_bad.score(),
            None,
            "all unparseable is no score, not zero"
        );
        let impossible = ValueEstimate {
            samples: vec![Some(Label::Impossible)],
        };
        assert_eq!(impossible.score(), Some(0.0));
    }
}
