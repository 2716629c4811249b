//! Reading an LLM judge's verdict back: a 1–10 score with a reason, or a pairwise winner.
//!
//! Judges (small ones especially) wander from the requested format: `**Score:** 8/10`,
//! `Rating: 7 out of 10`, a bare `6`, or a refusal. Anything that cannot be read as exactly one
//! score in range is [`Verdict::Unparseable`] and keeps the raw text, so it is shown and saved
//! as such and never counted as a score.

use regex::Regex;
use std::sync::LazyLock;

/// A judge's answer about one response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Scored { score: f64, reason: String },
    Unparseable(String),
}

impl Verdict {
    pub fn score(&self) -> Option<f64> {
        match self {
            Verdict::Scored { score, .. } => Some(*score),
            Verdict::Unparseable(_) => None,
        }
    }
}

static SCORE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:score|rating|grade)\b[*_\s]*(?:[:=\-]|is)[*_\s]*(\d+(?:\.\d+)?)\s*(?:/\s*10\b|out of 10\b)?")
        .expect("static regex")
});
static FRACTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(\d+(?:\.\d+)?)\s*(?:/\s*10|out of 10)\b").expect("static regex")
});
static REASON: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?is)\b(?:reason|explanation|because)\b[*_\s]*:?[*_\s]*(.+)")
        .expect("static regex")
});

/// Parse a judge's answer.
pub(crate) fn parse_verdict(raw: &str) -> Verdict {
    let unparseable = || Verdict::Unparseable(raw.to_string());
    let labelled: Vec<f64> = SCORE
        .captures_iter(raw)
        .filter_map(|c| c.get(1)?.as_str().parse().ok())
        .collect();
    let candidates = if labelled.is_empty() {
        let fractions: Vec<f64> = FRACTION
            .captures_iter(raw)
            .filter_map(|c| c.get(1)?.as_str().parse().ok())
            .collect();
        if fractions.is_empty() {
            // A bare number and nothing else.
            match raw.trim().trim_matches(['*', '.']).parse::<f64>() {
                Ok(x) => vec![x],
                Err(_) => return unparseable(),
            }
        } else {
            fractions
        }
    } else {
        labelled
    };
    // Two different scores ("Score: 3 ... Score: 8") is not a verdict.
    let first = candidates[0];
    if candidates.iter().any(|&c| c != first) || !(1.0..=10.0).contains(&first) {
        return unparseable();
    }
    let reason = REASON
        .captures(raw)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().trim().to_string())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| {
            // Everything that is not the score line.
            raw.lines()
                .filter(|l| !SCORE.is_match(l) && !FRACTION.is_match(l))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        });
    Verdict::Scored {
        score: first,
        reason: reason.trim_matches(['*', ' ']).to_string(),
    }
}

/// Which of two answers a pairwise judge preferred, in the order it saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Preference {
    A,
    B,
    Tie,
    Unparseable(String),
}

static WINNER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:winner|better answer|better|choice|verdict)\b[*_\s]*(?::|is)[*_\s]*(?:answer\s+)?\(?\b(a|b|tie|both|neither)\b")
        .expect("static regex")
});

/// Parse a pairwise judge's answer.
pub(crate) fn parse_preference(raw: &str) -> Preference {
    let picks: Vec<String> = WINNER
        .captures_iter(raw)
        .filter_map(|c| Some(c.get(1)?.as_str().to_ascii_lowercase()))
        .collect();
    let pick = match picks.first() {
        Some(p) if picks.iter().all(|x| x == p) => p.as_str(),
        _ => {
            // A reply that is only "A" or "B".
            match raw
                .trim()
                .trim_matches(['*', '.', ' '])
                .to_ascii_lowercase()
                .as_str()
            {
                "a" | "answer a" => "a",
                "b" | "answer b" => "b",
                "tie" => "tie",
                _ => return Preference::Unparseable(raw.to_string()),
            }
        }
    };
    match pick {
        "a" => Preference::A,
        "b" => Preference::B,
        _ => Preference::Tie,
    }
}

/// Which of two nodes won once both orders were asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PairOutcome {
    First,
    Second,
    Tie,
    /// The two orders disagree: the judge preferred whichever came first (or second) —
    /// position bias, not a preference.
    Inconsistent,
    /// At least one order could not be read.
    Unknown,
}

impl PairOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            PairOutcome::First => "first",
            PairOutcome::Second => "second",
            PairOutcome::Tie => "tie",
            PairOutcome::Inconsistent => "inconsistent (position bias)",
            PairOutcome::Unknown => "unknown (unparseable)",
        }
    }
}

/// Combine `forward` (first shown as A) and `swapped` (second shown as A).
pub(crate) fn combine(forward: &Preference, swapped: &Preference) -> PairOutcome {
    use Preference as P;
    match (forward, swapped) {
        (P::Unparseable(_), _) | (_, P::Unparseable(_)) => PairOutcome::Unknown,
        (P::A, P::B) => PairOutcome::First,
        (P::B, P::A) => PairOutcome::Second,
        (P::Tie, P::Tie) => PairOutcome::Tie,
        // A then A (or B then B): the judge followed the position. One tie and one pick is
        // a weak preference at best; call it inconsistent too rather than guess.
        _ => PairOutcome::Inconsistent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(raw: &str) -> Option<f64> {
        parse_verdict(raw).score()
    }

    #[test]
    fn the_requested_format_parses() {
        assert_eq!(
            parse_verdict("SCORE: 7\nREASON: Correct but wordy."),
            Verdict::Scored {
                score: 7.0,
                reason: "Correct but wordy.".into()
            }
        );
    }

    #[test]
    fn messy_but_readable_formats_parse() {
        assert_eq!(
            score("**Score:** 8/10\n**Reason:** names London."),
            Some(8.0)
        );
        assert_eq!(
            score("I would give this a rating of 6 out of 10."),
            Some(6.0)
        );
        assert_eq!(score("Rating: 6 out of 10. The answer is fine."), Some(6.0));
        assert_eq!(score("The answer is good. 9/10"), Some(9.0));
        assert_eq!(score("  7. "), Some(7.0));
        assert_eq!(
            score("score = 4\nreason: misses the second part"),
            Some(4.0)
        );
        assert_eq!(score("The score is 5."), Some(5.0));
        match parse_verdict("**Score:** 8/10\n**Reason:** names London.") {
            Verdict::Scored { reason, .. } => assert_eq!(reason, "names London."),
            v => panic!("{v:?}"),
        }
        match parse_verdict("Score: 3\nThe answer names the wrong city.") {
            Verdict::Scored { reason, .. } => {
                assert_eq!(reason, "The answer names the wrong city.")
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn garbage_out_of_range_and_contradictions_are_unparseable() {
        for raw in [
            "",
            "The capital of England is London.",
            "Score: 11",
            "Score: 0",
            "SCORE: <a whole number from 1 (useless) to 10 (perfect)>",
            "Score: 3\nActually, Score: 8",
            "I think it deserves a high score.",
            "Step 1: 12 * 2 = 24",
        ] {
            assert_eq!(
                parse_verdict(raw),
                Verdict::Unparseable(raw.to_string()),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn preferences_parse_and_combine() {
        assert_eq!(
            parse_preference("WINNER: A\nREASON: shorter"),
            Preference::A
        );
        assert_eq!(parse_preference("**Winner:** Answer B"), Preference::B);
        assert_eq!(parse_preference("The better answer is B."), Preference::B);
        assert_eq!(parse_preference("B"), Preference::B);
        assert_eq!(parse_preference("Winner: tie"), Preference::Tie);
        assert!(matches!(
            parse_preference("Both are great!"),
            Preference::Unparseable(_)
        ));
        assert!(matches!(
            parse_preference("Winner: A. On reflection, winner: B."),
            Preference::Unparseable(_)
        ));
        assert_eq!(combine(&Preference::A, &Preference::B), PairOutcome::First);
        assert_eq!(combine(&Preference::B, &Preference::A), PairOutcome::Second);
        assert_eq!(
            combine(&Preference::A, &Preference::A),
            PairOutcome::Inconsistent
        );
        assert_eq!(
            combine(&Preference::Tie, &Preference::Tie),
            PairOutcome::Tie
        );
        assert_eq!(
            combine(&Preference::A, &Preference::Unparseable("?".into())),
            PairOutcome::Unknown
        );
    }
}
