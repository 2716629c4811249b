//! Token probabilities beside a session file: `NAME.toml.logprobs`, a compact binary file.
//!
//! A session with token probabilities on holds several records per generated token (the
//! chosen token and its alternatives: six with `logprobs = 5`). Written into the TOML they
//! made a 10,000-node session save in about 5 s and load in about 3 s. The first binary
//! layout (each record's text, its length and two bytes of log-probability) still came to
//! 59 MB for that session, and writing and fsyncing 59 MB alone takes about 250 ms here. So
//! the file is small instead:
//!
//! - every distinct token text is stored once, in a vocabulary at the end of the file; a
//!   record names its text by index (a model has a few ten thousand tokens, an answer uses
//!   the same ones over and over);
//! - the chosen token is almost always one of its alternatives (the most likely, at
//!   temperature 0): then it is a number saying which, not a record of its own;
//! - the alternatives come most likely first, so each log-probability after the first is
//!   stored as its difference from the one before (one or two bytes);
//! - a token with as many alternatives as the one before, chosen among them as the first,
//!   has a one-byte header.
//!
//! Layout (little-endian; `varint` is unsigned LEB128, `zigzag` a signed one):
//!
//! ```text
//! magic   "PLLOGP2\n"
//! u64     byte offset of the vocabulary
//! varint  number of answers
//! answer: varint node id, varint tokens
//!         per token: varint shape: 0 = the previous token's number of alternatives, the
//!                    chosen one is the first of them; else 1 + (alternatives << 5 | c),
//!                    c = 0: the chosen token follows as a record (varint text, varint q),
//!                    c = k + 1: the chosen token is alternative k (k < 31)
//!                    then per alternative: varint text, q (the first: varint q; the others:
//!                    zigzag q minus the previous alternative's q)
//! vocabulary: varint entries, per entry varint length in bytes, then the texts (UTF-8)
//! ```
//!
//! `q` is the log-probability as its count of 1/1024 nat below zero
//! ([`crate::state::logprobs::quantize`]), what the session keeps in memory, so a round trip
//! is exact.
//!
//! A missing file means no probabilities. A damaged one is an error naming the file and the
//! byte where it stops making sense; the TOML session is never affected by it. The file I/O
//! is in `store` (`save_logprobs`, `load_logprobs`); this module only encodes and decodes.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};

use crate::state::logprobs::{quantize, TokenProbs};
use crate::state::session::Node;

const MAGIC: &[u8; 8] = b"PLLOGP2\n";
/// The magic and the vocabulary's offset.
const HEADER: usize = MAGIC.len() + 8;
/// `c` in a token's shape: the chosen token is one of the first 31 alternatives.
const CHOSEN_BITS: u32 = 5;
const CHOSEN_MAX: usize = (1 << CHOSEN_BITS) - 1;

/// Where the token probabilities of the session at `session` live.
pub(crate) fn sidecar_path(session: &Path) -> PathBuf {
    let mut name = session.as_os_str().to_os_string();
    name.push(".logprobs");
    PathBuf::from(name)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// FxHash (rustc's): the vocabulary is looked up once per record, millions of times for a
/// large session, and its keys are our own data, so a fast hash beats a DoS-proof one.
#[derive(Default)]
struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(K);
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Token texts, numbered in order of first use.
#[derive(Default)]
struct Vocab<'a> {
    index: HashMap<&'a str, u32, BuildHasherDefault<Fx>>,
    texts: Vec<&'a str>,
}

impl<'a> Vocab<'a> {
    fn id(&mut self, text: &'a str) -> u32 {
        let next = self.texts.len() as u32;
        let id = *self.index.entry(text).or_insert(next);
        if id == next {
            self.texts.push(text);
        }
        id
    }
}

/// The file's bytes for the answers that have token probabilities.
pub(crate) fn encode<'a>(probs: impl Iterator<Item = (u64, &'a TokenProbs)>) -> Vec<u8> {
    let kept: Vec<(u64, &TokenProbs)> = probs.filter(|(_, p)| !p.is_empty()).collect();
    // About three bytes a record once the texts are in the vocabulary.
    let size: usize = kept.iter().map(|(_, p)| 3 * p.records() + 8).sum();
    let mut out = Vec::with_capacity(HEADER + size + 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[0; 8]);
    varint(&mut out, kept.len() as u64);
    let mut vocab = Vocab::default();
    for (id, p) in kept {
        varint(&mut out, id);
        varint(&mut out, p.len() as u64);
        let mut last_alts = usize::MAX;
        for t in p.iter() {
            let q = quantize(t.logprob);
            let alts = t.alternative_count();
            let chosen = t
                .alternatives()
                .take(CHOSEN_MAX)
                .position(|(text, lp)| text == t.text && quantize(lp) == q);
            match chosen {
                Some(0) if alts == last_alts => out.push(0),
                _ => {
                    let c = chosen.map_or(0, |k| k + 1) as u64;
                    varint(&mut out, 1 + (((alts as u64) << CHOSEN_BITS) | c));
                    if chosen.is_none() {
                        varint(&mut out, u64::from(vocab.id(t.text)));
                        varint(&mut out, u64::from(q));
                    }
                }
            }
            last_alts = alts;
            let mut prev: Option<u16> = None;
            for (text, lp) in t.alternatives() {
                varint(&mut out, u64::from(vocab.id(text)));
                let q = quantize(lp);
                match prev {
                    None => varint(&mut out, u64::from(q)),
                    Some(p) => varint(&mut out, zigzag(i64::from(q) - i64::from(p))),
                }
                prev = Some(q);
            }
        }
    }
    let at = out.len() as u64;
    out[MAGIC.len()..HEADER].copy_from_slice(&at.to_le_bytes());
    varint(&mut out, vocab.texts.len() as u64);
    for t in &vocab.texts {
        varint(&mut out, t.len() as u64);
    }
    for t in &vocab.texts {
        out.extend_from_slice(t.as_bytes());
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

    /// A count that can't exceed what is left to read (each item takes a byte or more).
    fn count(&mut self) -> Result<usize, String> {
        let n = self.varint()?;
        if n > (self.bytes.len() - self.at) as u64 {
            return Err(format!("a count of {n} is more than the file holds"));
        }
        Ok(n as usize)
    }

    fn q(&mut self) -> Result<u16, String> {
        let v = self.varint()?;
        u16::try_from(v).map_err(|_| format!("log-probability step {v} is out of range"))
    }

    fn text<'v>(&mut self, vocab: &[&'v str]) -> Result<&'v str, String> {
        let i = self.varint()?;
        usize::try_from(i)
            .ok()
            .and_then(|i| vocab.get(i).copied())
            .ok_or_else(|| format!("token text {i} is not in the vocabulary"))
    }
}

/// The vocabulary at `at`: its texts, each checked to be UTF-8.
fn read_vocab(bytes: &[u8], at: usize) -> Result<Vec<&str>, (usize, String)> {
    let mut r = Reader { bytes, at };
    let err = |r: &Reader, e: String| (r.at, e);
    let n = r.count().map_err(|e| err(&r, e))?;
    let mut lens = Vec::with_capacity(n);
    let mut total = 0usize;
    for _ in 0..n {
        let len = r.count().map_err(|e| err(&r, e))?;
        total = total.saturating_add(len);
        lens.push(len);
    }
    let texts = &bytes[r.at..];
    if texts.len() < total {
        return Err((bytes.len(), "the file ends inside the vocabulary".into()));
    }
    if texts.len() > total {
        return Err((r.at + total, "bytes left after the vocabulary".into()));
    }
    let texts = std::str::from_utf8(texts).map_err(|e| {
        (
            r.at + e.valid_up_to(),
            "token text is not UTF-8".to_string(),
        )
    })?;
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for len in lens {
        let t = texts.get(start..start + len).ok_or((
            r.at + start,
            "a token text ends inside a character".to_string(),
        ))?;
        out.push(t);
        start += len;
    }
    Ok(out)
}

/// Parse a sidecar's bytes.
pub(crate) fn decode(bytes: &[u8]) -> Result<BTreeMap<u64, TokenProbs>, (usize, String)> {
    if bytes.get(..MAGIC.len()) != Some(MAGIC) {
        return Err((0, "not a promptloom token-probability file".into()));
    }
    let Some(off) = bytes.get(MAGIC.len()..HEADER) else {
        return Err((MAGIC.len(), "the file ends inside its header".into()));
    };
    let mut b = [0u8; 8];
    b.copy_from_slice(off);
    let vocab_at = u64::from_le_bytes(b);
    let vocab_at = usize::try_from(vocab_at)
        .ok()
        .filter(|&v| (HEADER..=bytes.len()).contains(&v))
        .ok_or((
            MAGIC.len(),
            format!("the vocabulary's offset {vocab_at} is outside the file"),
        ))?;
    let vocab = read_vocab(bytes, vocab_at)?;
    // The answers end where the vocabulary starts.
    let mut r = Reader {
        bytes: &bytes[..vocab_at],
        at: HEADER,
    };
    let mut out = BTreeMap::new();
    let answers = r.count().map_err(|e| (r.at, e))?;
    let mut alts: Vec<(&str, u16)> = Vec::new();
    for _ in 0..answers {
        let start = r.at;
        let one = (|| -> Result<(u64, TokenProbs), String> {
            let id = r.varint()?;
            let n_tokens = r.count()?;
            let mut p = TokenProbs::default();
            let mut last_alts: Option<usize> = None;
            for _ in 0..n_tokens {
                let shape = r.varint()?;
                let (n_alts, chosen) = if shape == 0 {
                    let n = last_alts.ok_or("the first token has no shape of its own")?;
                    if n == 0 {
                        return Err("a token is its first alternative but has none".into());
                    }
                    (n, 1)
                } else {
                    let s = shape - 1;
                    let n =
                        usize::try_from(s >> CHOSEN_BITS).map_err(|_| "too many alternatives")?;
                    let c = (s & CHOSEN_MAX as u64) as usize;
                    if n > r.bytes.len() - r.at || c > n {
                        return Err(format!("a token says {n} alternatives, chosen {c}"));
                    }
                    (n, c)
                };
                if p.is_empty() {
                    // The answer's size, guessed from its first token (each record takes a
                    // byte or more of the file).
                    let left = r.bytes.len() - r.at;
                    p.reserve(n_tokens, n_tokens.saturating_mul(n_alts + 1).min(left));
                }
                last_alts = Some(n_alts);
                let own = if chosen == 0 {
                    Some((r.text(&vocab)?, r.q()?))
                } else {
                    None
                };
                alts.clear();
                let mut prev: Option<u16> = None;
                for _ in 0..n_alts {
                    let text = r.text(&vocab)?;
                    let q = match prev {
                        None => r.q()?,
                        Some(p) => {
                            let d = unzigzag(r.varint()?);
                            i64::from(p)
                                .checked_add(d)
                                .and_then(|q| u16::try_from(q).ok())
                                .ok_or("an alternative's log-probability is out of range")?
                        }
                    };
                    prev = Some(q);
                    alts.push((text, q));
                }
                let (text, q) = match own {
                    Some(own) => own,
                    None => alts[chosen - 1],
                };
                p.push_stored(text, q, &alts).map_err(|e| e.0)?;
            }
            Ok((id, p))
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
    if r.at != vocab_at {
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

    fn tok(text: &str, lp: f32, top: &[(&str, f32)]) -> TokenLogprob {
        TokenLogprob::new(
            text.into(),
            lp,
            top.iter().map(|(t, l)| (t.to_string(), *l)).collect(),
        )
    }

    #[test]
    fn every_shape_of_token_round_trips() {
        let mut p = TokenProbs::default();
        // The chosen token first among its alternatives, twice (the one-byte shape).
        p.push(&tok("It", -0.1, &[("It", -0.1), ("This", -2.0)]));
        p.push(&tok(" is", -0.2, &[(" is", -0.2), (" was", -1.0)]));
        // Chosen, but not the most likely (a sampled token).
        p.push(&tok(" Lon", -1.5, &[(" Par", -0.4), (" Lon", -1.5)]));
        // Not among its alternatives at all, or with none.
        p.push(&tok("don", -4.0, &[("g", -0.3), ("d", -0.9)]));
        p.push(&tok(".", -0.01, &[]));
        // A typed token (branching): no probability of its own.
        p.push(&tok("é!", f32::NEG_INFINITY, &[("!", -0.5)]));
        // As many alternatives as a token keeps (20 of the 40 sent), the chosen not among
        // them.
        let many: Vec<(String, f32)> = (0..40)
            .map(|i| (format!("a{i}"), -(i as f32) * 0.1))
            .collect();
        let many_ref: Vec<(&str, f32)> = many.iter().map(|(t, l)| (t.as_str(), *l)).collect();
        p.push(&tok("a35", -3.5, &many_ref));
        let mut q = TokenProbs::default();
        q.push(&tok("It", -0.1, &[("It", -0.1), ("This", -2.0)]));
        let bytes = encode([(5, &p), (6, &q)].into_iter());
        let back = decode(&bytes).unwrap();
        assert_eq!(back[&5], p);
        assert_eq!(back[&6], q);
        assert_eq!(back[&5].get(2).unwrap().text, " Lon");
        assert_eq!(back[&5].get(6).unwrap().alternative_count(), 20);
    }

    #[test]
    fn a_large_session_takes_a_few_bytes_per_record() {
        let s = crate::bench::session::synthetic_with_logprobs(200);
        let records: usize = s.nodes.iter().map(|n| n.logprobs.records()).sum();
        let bytes = encode(s.nodes.iter().map(|n| (n.id, &n.logprobs)));
        let per = bytes.len() as f64 / records as f64;
        // The first layout took 8.2 bytes a record on this session.
        assert!(per < 3.0, "{per:.2} bytes a record");
        let back = decode(&bytes).unwrap();
        for n in &s.nodes {
            assert_eq!(back[&n.id], n.logprobs, "node {}", n.id);
        }
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
        std::fs::write(sidecar_path(&session), b"PLLOGP2\n\x05").unwrap();
        let err = crate::store::load_logprobs(&session)
            .unwrap_err()
            .to_string();
        assert!(err.contains("s.toml.logprobs"), "{err}");
        assert!(err.contains("byte 8"), "{err}");
    }
}
