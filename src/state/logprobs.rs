//! The token probabilities of one answer, kept flat so a session with thousands of answers
//! holds them in three allocations per answer (`store::logprobs` writes them beside the
//! session, each text once).
//!
//! Records are kept in order: each chosen token, then its alternatives. `text` holds all their
//! texts concatenated; each record stores where its text ends and its natural-log probability.

use crate::chat::TokenLogprob;

/// Log-probabilities are kept to 1/1024 nat (a probability to 0.1%), down to -64 nats:
/// what the session's sidecar file stores (as a count of these steps). Anything lower is -64.
pub(crate) const LOGPROB_STEPS_PER_NAT: f32 = 1024.0;

/// `logprob` as its stored step count (0 = probability 1).
pub(crate) fn quantize(logprob: f32) -> u16 {
    let q = (-logprob * LOGPROB_STEPS_PER_NAT).round();
    if q.is_nan() || q <= 0.0 {
        0
    } else if q >= f32::from(u16::MAX) {
        u16::MAX
    } else {
        q as u16
    }
}

pub(crate) fn dequantize(q: u16) -> f32 {
    -f32::from(q) / LOGPROB_STEPS_PER_NAT
}

/// One record: a chosen token or an alternative.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    /// Byte offset in `TokenProbs::text` where this record's text ends.
    end: u32,
    logprob: f32,
}

/// The probabilities of an answer's tokens.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TokenProbs {
    text: String,
    spans: Vec<Span>,
    /// For each chosen token, the index of its record in `spans`; its alternatives follow it.
    tokens: Vec<u32>,
}

/// One token as the views read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TokenView<'a> {
    pub text: &'a str,
    pub logprob: f32,
    probs: &'a TokenProbs,
    alts: (usize, usize),
}

impl<'a> TokenView<'a> {
    /// The probability in [0, 1].
    pub fn prob(&self) -> f64 {
        f64::from(self.logprob).exp()
    }

    /// How many alternatives there are at this position.
    pub fn alternative_count(&self) -> usize {
        self.alts.1 - self.alts.0
    }

    /// The alternatives at this position, most likely first (the chosen token may be one).
    pub fn alternatives(&self) -> impl Iterator<Item = (&'a str, f32)> + 'a {
        let p = self.probs;
        (self.alts.0..self.alts.1).map(move |i| (p.record_text(i), p.spans[i].logprob))
    }
}

/// Why token probabilities read from disk are not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Corrupt(pub String);

impl TokenProbs {
    /// Append tokens as a stream delivers them. Offsets past 4 GiB of token text are not
    /// kept (no answer is that long: answers end at `max_answer_bytes`).
    pub fn push(&mut self, t: &TokenLogprob) {
        let extra = t.text.len() + t.top.iter().map(|a| a.0.len()).sum::<usize>();
        if self.text.len() + extra > u32::MAX as usize {
            return;
        }
        self.tokens.push(self.spans.len() as u32);
        self.push_record(&t.text, t.logprob);
        for (text, lp) in &t.top {
            self.push_record(text, *lp);
        }
    }

    /// Append a token as the session's sidecar stores it: its text and quantized
    /// log-probability, then its alternatives'. Refused (and nothing appended) when the
    /// answer's token text would pass 4 GiB.
    pub fn push_stored(&mut self, text: &str, q: u16, alts: &[(&str, u16)]) -> Result<(), Corrupt> {
        let extra = text.len() + alts.iter().map(|a| a.0.len()).sum::<usize>();
        if self.text.len() + extra > u32::MAX as usize {
            return Err(Corrupt("an answer's token text is over 4 GiB".into()));
        }
        self.tokens.push(self.spans.len() as u32);
        for (text, q) in std::iter::once((text, q)).chain(alts.iter().copied()) {
            self.text.push_str(text);
            self.spans.push(Span {
                end: self.text.len() as u32,
                logprob: dequantize(q),
            });
        }
        Ok(())
    }

    /// Room for `tokens` tokens of `records` records in all (a sidecar being read).
    pub fn reserve(&mut self, tokens: usize, records: usize) {
        self.tokens.reserve(tokens);
        self.spans.reserve(records);
        self.text.reserve(records.saturating_mul(4));
    }

    /// Records: the chosen tokens and their alternatives.
    pub fn records(&self) -> usize {
        self.spans.len()
    }

    fn push_record(&mut self, text: &str, logprob: f32) {
        self.text.push_str(text);
        self.spans.push(Span {
            end: self.text.len() as u32,
            logprob: dequantize(quantize(logprob)),
        });
    }

    fn record_text(&self, i: usize) -> &str {
        let start = if i == 0 {
            0
        } else {
            self.spans[i - 1].end as usize
        };
        self.text
            .get(start..self.spans[i].end as usize)
            .unwrap_or("")
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<TokenView<'_>> {
        let at = *self.tokens.get(i)? as usize;
        let next = self
            .tokens
            .get(i + 1)
            .map_or(self.spans.len(), |&n| n as usize);
        Some(TokenView {
            text: self.record_text(at),
            logprob: self.spans[at].logprob,
            probs: self,
            alts: (at + 1, next),
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = TokenView<'_>> {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// The chosen tokens' texts joined: the answer, when the backend's tokens cover it.
    #[cfg(test)]
    pub fn joined(&self) -> String {
        self.iter().map(|t| t.text).collect()
    }

    /// The byte offset in the joined text where token `i` starts.
    #[cfg(test)]
    pub fn offset_of(&self, i: usize) -> usize {
        self.iter().take(i).map(|t| t.text.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(text: &str, lp: f32, top: &[(&str, f32)]) -> TokenLogprob {
        TokenLogprob::new(
            text.into(),
            lp,
            top.iter().map(|(t, l)| (t.to_string(), *l)).collect(),
        )
    }

    #[test]
    fn tokens_and_alternatives_read_back_in_order() {
        let mut p = TokenProbs::default();
        p.push(&tok("Lon", -0.1, &[("Lon", -0.1), ("Par", -2.5)]));
        p.push(&tok("don", -0.01, &[]));
        p.push(&tok("é", -3.0, &[("e", -0.5), ("é", -3.0)]));
        assert_eq!(p.len(), 3);
        assert_eq!(p.joined(), "Londoné");
        let t = p.get(0).unwrap();
        assert_eq!(t.text, "Lon");
        assert!((t.prob() - (-0.1f64).exp()).abs() < 1e-3);
        let alts: Vec<_> = t.alternatives().collect();
        assert_eq!(
            alts,
            vec![("Lon", dequantize(quantize(-0.1))), ("Par", -2.5)]
        );
        assert_eq!(p.get(1).unwrap().alternatives().count(), 0);
        // Alternatives are sorted most likely first whatever the server sent.
        let alts: Vec<_> = p.get(2).unwrap().alternatives().collect();
        assert_eq!(alts, vec![("e", -0.5), ("é", -3.0)]);
        assert_eq!(p.offset_of(2), 6);
        assert!(p.get(3).is_none());
    }

    #[test]
    fn quantized_to_a_thousandth_of_a_nat() {
        for lp in [0.0f32, -0.0004, -0.1, -1.0, -10.5, -63.9] {
            assert!(
                (dequantize(quantize(lp)) - lp).abs() <= 0.5 / 1024.0,
                "{lp}"
            );
        }
        assert_eq!(quantize(f32::NEG_INFINITY), u16::MAX);
        assert_eq!(quantize(0.3), 0);
    }

    #[test]
    fn server_logprobs_are_clamped_into_probabilities() {
        let t = tok("x", 0.5, &[("y", f32::NAN)]);
        assert_eq!(t.logprob, 0.0);
        assert_eq!(t.top[0].1, f32::NEG_INFINITY);
    }
}
