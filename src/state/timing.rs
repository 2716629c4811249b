//! Time to first token and tokens/s, computed the same way for every backend from the
//! client's clock, so panes and runs compare fairly.

use std::time::Duration;

use crate::chat::Usage;

/// Accumulates what a stream delivered, stamped with the consumer's elapsed time since the
/// request was started.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StreamMeter {
    first_token: Option<Duration>,
    last_token: Option<Duration>,
    deltas: u64,
    usage: Usage,
}

/// The figures recorded for a finished (or stopped) stream.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct StreamStats {
    pub prompt_tokens: Option<u64>,
    pub tokens_out: u64,
    pub ttft_ms: Option<u64>,
    /// Decode rate: tokens after the first over the time between the first and the last.
    pub tok_per_s: Option<f64>,
    /// `tokens_out` is the number of text deltas, not a count the server or engine sent.
    pub tokens_counted: bool,
    /// Some counts were made by promptloom with the model's tokenizer (the server sent
    /// none), not reported.
    pub tokens_estimated: bool,
}

impl StreamMeter {
    /// A text delta arrived `at` after the request started. Empty deltas are not tokens.
    pub fn on_delta(&mut self, at: Duration, text: &str) {
        if text.is_empty() {
            return;
        }
        self.first_token.get_or_insert(at);
        self.last_token = Some(at);
        self.deltas += 1;
    }

    /// Counts the backend sent. An estimated count (made with the model's tokenizer) never
    /// replaces a reported one.
    pub fn on_usage(&mut self, usage: Usage) {
        let reported = !self.usage.estimated;
        if usage.estimated && reported {
            let fills = (usage.prompt_tokens.is_some() && self.usage.prompt_tokens.is_none())
                || (usage.completion_tokens.is_some() && self.usage.completion_tokens.is_none());
            if !fills {
                return;
            }
            self.usage.prompt_tokens = self.usage.prompt_tokens.or(usage.prompt_tokens);
            self.usage.completion_tokens = self.usage.completion_tokens.or(usage.completion_tokens);
            self.usage.estimated = true;
            return;
        }
        if usage.prompt_tokens.is_some() {
            self.usage.prompt_tokens = usage.prompt_tokens;
        }
        if usage.completion_tokens.is_some() {
            self.usage.completion_tokens = usage.completion_tokens;
        }
    }

    /// Tokens so far: the server's count when it sent one, else the number of deltas (every
    /// backend here streams about one token per delta).
    pub fn tokens(&self) -> u64 {
        self.usage.completion_tokens.unwrap_or(self.deltas)
    }

    pub fn stats(&self) -> StreamStats {
        let tokens = self.tokens();
        let tok_per_s = match (self.first_token, self.last_token) {
            (Some(first), Some(last)) if tokens > 1 && last > first => {
                Some((tokens - 1) as f64 / (last - first).as_secs_f64())
            }
            _ => None,
        };
        StreamStats {
            prompt_tokens: self.usage.prompt_tokens,
            tokens_out: tokens,
            ttft_ms: self.first_token.map(|d| d.as_millis() as u64),
            tok_per_s,
            tokens_counted: self.usage.completion_tokens.is_none() && self.deltas > 0,
            tokens_estimated: self.usage.estimated,
        }
    }
}

/// Roughly how many tokens `text` is, for a backend that reports no count: about four
/// characters a token for English prose with the BPE tokenizers in use, and never fewer
/// than the words and punctuation marks in it. Recorded as approximate (`tokens = "approx"`).
pub(crate) fn approx_tokens(text: &str) -> u64 {
    let chars = text.chars().count() as u64;
    let pieces = text
        .split(|c: char| c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(|w| 1 + w.chars().filter(|c| c.is_ascii_punctuation()).count() as u64)
        .sum::<u64>();
    chars.div_ceil(4).max(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn ttft_and_decode_rate_from_client_clock() {
        let mut m = StreamMeter::default();
        m.on_delta(ms(5), "");
        m.on_delta(ms(200), "Lon");
        m.on_delta(ms(300), "don");
        m.on_delta(ms(400), ".");
        let s = m.stats();
        assert_eq!(s.ttft_ms, Some(200));
        assert_eq!(s.tokens_out, 3);
        assert!(s.tokens_counted);
        assert!((s.tok_per_s.unwrap() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn server_count_wins_over_delta_count() {
        let mut m = StreamMeter::default();
        m.on_delta(ms(100), "a b c");
        m.on_delta(ms(1100), "d");
        m.on_usage(Usage {
            prompt_tokens: Some(12),
            completion_tokens: Some(11),
            estimated: false,
        });
        let s = m.stats();
        assert_eq!(s.tokens_out, 11);
        assert!(!s.tokens_counted);
        assert_eq!(s.prompt_tokens, Some(12));
        assert!((s.tok_per_s.unwrap() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn estimated_counts_fill_what_the_server_left_out_and_are_marked() {
        let mut m = StreamMeter::default();
        m.on_delta(ms(100), "a b");
        m.on_usage(Usage {
            prompt_tokens: Some(12),
            completion_tokens: None,
            estimated: false,
        });
        m.on_usage(Usage {
            prompt_tokens: Some(99),
            completion_tokens: Some(5),
            estimated: true,
        });
        let s = m.stats();
        // The reported prompt count stays; the completion count is the tokenizer's.
        assert_eq!((s.prompt_tokens, s.tokens_out), (Some(12), 5));
        assert!(s.tokens_estimated && !s.tokens_counted);

        // With every count reported, an estimate changes nothing and marks nothing.
        let mut m = StreamMeter::default();
        m.on_usage(Usage {
            prompt_tokens: Some(12),
            completion_tokens: Some(3),
            estimated: false,
        });
        m.on_usage(Usage {
            prompt_tokens: Some(99),
            completion_tokens: Some(5),
            estimated: true,
        });
        let s = m.stats();
        assert_eq!((s.prompt_tokens, s.tokens_out), (Some(12), 3));
        assert!(!s.tokens_estimated);
    }

    #[test]
    fn approximate_token_counts() {
        assert_eq!(approx_tokens(""), 0);
        // 44 characters, 9 words: 11 by characters.
        assert_eq!(
            approx_tokens("The quick brown fox jumps over the lazy dog."),
            11
        );
        // Short words with punctuation: the pieces win.
        assert_eq!(approx_tokens("a, b, c, d."), 8);
    }

    #[test]
    fn no_rate_from_a_single_token() {
        let mut m = StreamMeter::default();
        m.on_delta(ms(100), "x");
        assert_eq!(m.stats().tok_per_s, None);
        assert_eq!(StreamMeter::default().stats().ttft_ms, None);
    }
}
