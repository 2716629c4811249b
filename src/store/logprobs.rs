//! Token probabilities beside a session file: `NAME.toml.logprobs`, a compact binary file.
//!
//! A session with token probabilities on holds several records per generated token (the
//! chosen token and its alternatives). Written into the TOML they made a 10,000-node session
//! save in about 5 s and load in about 3 s; here they are a few bytes per record, written and
//! read as flat blocks.
//!
//! Layout (little-endian; `varint` is unsigned LEB128):
//!
//! ```text
//! magic   "PLLOGP1\n"
//! varint  number of answers
//! answer: varint node id, varint tokens, varint records,
//!         per token:  varint alternatives (records that follow it)
//!         per record: varint text length in bytes, u16 -logprob in 1/1024 nat
//!         the records' texts, concatenated (UTF-8)
//! ```
//!
//! A missing file means no probabilities. A damaged one is an error naming the file and the
//! byte where it stops making sense; the TOML session is never affected by it. The file I/O
//! is in `store` (`save_logprobs`, `load_logprobs`); this module only encodes and decodes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::state::session::Node;

use crate::state::logprobs::{dequantize, quantize, Span, TokenProbs};

const MAGIC: &[u8; 8] = b"PLLOGP1\n";

/// Where the token probabilities of the session at `session` live.
pub(crate) fn sidecar_path(session: &Path) -> PathBuf {
    let mut name = session.as_os_str().to_os_string();
    name.push(".logprobs");
    PathBuf::from(name)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// The file's bytes for the answers that have token probabilities.
pub(crate) fn encode<'a>(probs: impl Iterator<Item = (u64, &'a TokenProbs)>) -> Vec<u8> {
    let kept: Vec<(u64, &TokenProbs)> = probs.filter(|(_, p)| !p.is_empty()).collect();
    let size: usize = kept
        .iter()
        .map(|(_, p)| p.text.len() + 3 * p.spans.len() + p.tokens.len() + 16)
        .sum();
    let mut out = Vec::with_capacity(size + MAGIC.len() + 8);
    out.extend_from_slice(MAGIC);
    varint(&mut out, kept.len() as u64);
    for (id, p) in kept {
        varint(&mut out, id);
        varint(&mut out, p.tokens.len() as u64);
        varint(&mut out, p.spans.len() as u64);
        for (i, &t) in p.tokens.iter().enumerate() {
            let next = p.tokens.get(i + 1).map_or(p.spans.len() as u32, |&n| n);
            varint(&mut out, u64::from(next - t - 1));
        }
        let mut start = 0u32;
        for s in &p.spans {
            varint(&mut out, u64::from(s.end - start));
            out.extend_from_slice(&quantize(s.logprob).to_le_bytes());
            start = s.end;
        }
        out.extend_from_slice(p.text.as_bytes());
    }
    out
}

/// Give `nodes` the probabilities read for them; those of unknown nodes are dropped.
pub(crate) fn attach(nodes: &mut [Node], mut probs: BTreeMap<u64, TokenProbs>) {
    if probs.is_empty() {
        return;
    }
    for n in nodes {
        if let Some(p) = probs.remove(&n.id) {
            n.logprobs = p;
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .bytes
                .get(self.at)
                .ok_or("the file ends inside a number")?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a number is longer than 64 bits".into())
    }

    /// A count that can't exceed what is left in the file (each item takes a byte or more).
    fn count(&mut self) -> Result<usize, String> {
        let n = self.varint()?;
        if n > (self.bytes.len() - self.at) as u64 {
            return Err(format!("a count of {n} is more than the file holds"));
        }
        Ok(n as usize)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or("the file ends inside an answer")?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
}

/// Parse a sidecar's bytes.
pub(crate) fn decode(bytes: &[u8]) -> Result<BTreeMap<u64, TokenProbs>, (usize, String)> {
    if bytes.get(..MAGIC.len()) != Some(MAGIC) {
        return Err((0, "not a promptloom token-probability file".into()));
    }
    let mut r = Reader {
        bytes,
        at: MAGIC.len(),
    };
    let mut out = BTreeMap::new();
    let err = |r: &Reader, e: String| (r.at, e);
    let answers = r.count().map_err(|e| err(&r, e))?;
    for _ in 0..answers {
        let start = r.at;
        let one = (|| -> Result<(u64, TokenProbs), String> {
            let id = r.varint()?;
            let n_tokens = r.count()?;
            let n_spans = r.count()?;
            let mut tokens = Vec::with_capacity(n_tokens);
            let mut at = 0u64;
            for _ in 0..n_tokens {
                tokens.push(u32::try_from(at).map_err(|_| "too many records")?);
                at += 1 + r.varint()?;
            }
            if at != n_spans as u64 {
                return Err(format!(
                    "tokens and their alternatives make {at} records, the answer says {n_spans}"
                ));
            }
            let mut spans = Vec::with_capacity(n_spans);
            let mut end = 0u64;
            for _ in 0..n_spans {
                end += r.varint()?;
                let q = r.take(2)?;
                spans.push(Span {
                    end: u32::try_from(end).map_err(|_| "an answer's text is over 4 GiB")?,
                    logprob: dequantize(u16::from_le_bytes([q[0], q[1]])),
                });
            }
            let text = r.take(end as usize)?;
            let text = std::str::from_utf8(text)
                .map_err(|_| "token text is not UTF-8".to_string())?
                .to_string();
            let probs = TokenProbs::from_parts(text, spans, tokens).map_err(|e| e.0)?;
            Ok((id, probs))
        })();
        match one {
            Ok((id, p)) => {
                if out.insert(id, p).is_some() {
                    return Err((start, format!("node {id} appears twice")));
                }
            }
            Err(e) => return Err((r.at, e)),
        }
    }
    if r.at != bytes.len() {
        return Err((r.at, "bytes left after the last answer".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::TokenLogprob;

    pub(crate) fn probs(n: usize, seed: u64) -> TokenProbs {
        let mut p = TokenProbs::default();
        for i in 0..n {
            let k = (i as u64 + seed) % 7;
            p.push(&TokenLogprob::new(
                format!("t{k}é "),
                -(k as f32) / 3.0,
                (0..(k % 4))
                    .map(|j| (format!("a{j}"), -(j as f32) - 0.25))
                    .collect(),
            ));
        }
        p
    }

    #[test]
    fn round_trip_keeps_every_token_and_alternative() {
        let mut m = BTreeMap::new();
        m.insert(3, probs(50, 1));
        m.insert(300, probs(1, 2));
        m.insert(9, TokenProbs::default());
        m.insert(7, probs(20, 3));
        let bytes = encode(m.iter().filter(|(id, _)| **id != 7).map(|(id, p)| (*id, p)));
        let back = decode(&bytes).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[&3], m[&3]);
        assert_eq!(back[&300], m[&300]);
    }

    #[test]
    fn damaged_files_say_where() {
        let mut m = BTreeMap::new();
        m.insert(3, probs(10, 1));
        let bytes = encode(m.iter().map(|(id, p)| (*id, p)));
        assert!(decode(b"nope").is_err());
        for cut in [9, 12, bytes.len() - 1] {
            let (at, why) = decode(&bytes[..cut]).unwrap_err();
            assert!(at <= cut, "{at} {why}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode(&extra).unwrap_err().1.contains("left after"));
        // A flipped length byte must not panic, whatever it turns into.
        for i in MAGIC.len()..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            let _ = decode(&b);
        }
    }

    #[test]
    fn save_and_load_beside_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let session = dir.path().join("s.toml");
        let mut s = crate::bench::session::synthetic(3);
        s.nodes[1].logprobs = probs(5, 0);
        crate::store::save_logprobs(&session, &s.nodes).unwrap();
        assert!(sidecar_path(&session).exists());
        let back = crate::store::load_logprobs(&session).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[&s.nodes[1].id], s.nodes[1].logprobs);
        // Nothing to keep: the stale file goes.
        s.nodes[1].logprobs = TokenProbs::default();
        crate::store::save_logprobs(&session, &s.nodes).unwrap();
        assert!(!sidecar_path(&session).exists());
        assert!(crate::store::load_logprobs(&session).unwrap().is_empty());
        std::fs::write(sidecar_path(&session), b"PLLOGP1\n\x05").unwrap();
        let err = crate::store::load_logprobs(&session)
            .unwrap_err()
            .to_string();
        assert!(err.contains("s.toml.logprobs"), "{err}");
        assert!(err.contains("byte 9"), "{err}");
    }
}
