//! `promptloom rate`: ratings and votes from the command line or a pipe.
//!
//! This makes rating scriptable (and crash-testable) without the TUI. With `--stdin`, each
//! line is one command and each gets one answer line once it is durably saved:
//!
//! ```text
//! node=3 stars=4 thumb=up note="too long, but right"   -> ok 17
//! vote left=3 right=7 outcome=tie                       -> ok 18
//! compact                                               -> ok compacted
//! node=99 stars=9                                       -> error line 4: ...
//! ```
//!
//! Values may be bare words or JSON strings (`note="a \"quoted\" word\nnext line"`).

use std::io::{BufRead, Write};

use crate::eval::{active, leaderboard};
use crate::state::session::Session;
use crate::store::journal::{RatingEdit, SessionStore, StoreError};

/// Options of `promptloom rate`.
#[derive(Debug, clap::Args)]
pub(crate) struct RateArgs {
    pub session: std::path::PathBuf,
    /// Node id to rate.
    #[arg(long, required_unless_present_any = ["stdin", "next"])]
    pub node: Option<u64>,
    /// Stars 1-5; 0 clears.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=5))]
    pub stars: Option<u8>,
    /// Thumb: up, down or none.
    #[arg(long, value_parser = ["up", "down", "none"])]
    pub thumb: Option<String>,
    /// Free-text note; an empty string clears it.
    #[arg(long)]
    pub note: Option<String>,
    /// Who is rating (default: `rater` from config, else the OS user).
    #[arg(long)]
    pub rater: Option<String>,
    /// Read one command per line from stdin and answer each with `ok SEQ` once saved.
    #[arg(long, conflicts_with_all = ["node", "stars", "thumb", "note"])]
    pub stdin: bool,
    /// Print the most informative blind comparison to make next (and why), then exit.
    #[arg(long, conflicts_with_all = ["node", "stdin"])]
    pub next: bool,
    /// With --stdin: fold the journal into the session file after this many records (0:
    /// only at the end).
    #[arg(long, default_value_t = 64)]
    pub compact_every: usize,
}

/// One parsed stdin command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line {
    Rating {
        edit: RatingEdit,
        rater: Option<String>,
    },
    Vote {
        left: u64,
        right: u64,
        outcome: String,
        rater: Option<String>,
    },
    Compact,
}

/// Run the subcommand.
pub(crate) fn run(args: RateArgs, default_rater: String) -> anyhow::Result<()> {
    if args.next {
        let session = crate::store::journal::load_with_journal(&args.session)?;
        let board = leaderboard::build(&session, leaderboard::GroupBy::Variant);
        match active::next_pair(&session, &board) {
            Some(s) => println!(
                "vote left={} right={}  # case {:?}: {} vs {} — {}",
                s.node_a, s.node_b, s.case, s.variant_a, s.variant_b, s.reason
            ),
            None => println!("# nothing to compare: no case has answers from two variants"),
        }
        return Ok(());
    }
    let (mut session, mut store) = SessionStore::open(&args.session).map_err(to_anyhow)?;
    let rater = args.rater.clone().unwrap_or(default_rater);
    if !args.stdin {
        let node = args.node.unwrap_or_default();
        let edit = RatingEdit {
            node,
            stars: args.stars,
            thumb: match args.thumb.as_deref() {
                None => None,
                Some(t) => Some(parse_thumb(t).map_err(anyhow::Error::msg)?),
            },
            note: args.note.clone(),
        };
        check_node(&session, node).map_err(anyhow::Error::msg)?;
        let seq = store
            .append_rating(&mut session, &edit, &rater, &now())
            .map_err(to_anyhow)?;
        store.compact(&session).map_err(to_anyhow)?;
        println!("ok {seq}");
        return Ok(());
    }
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut failures = 0usize;
    for (i, line) in stdin.lock().lines().enumerate() {
        let line = line?;
        let answer = match parse_line(&line) {
            Ok(None) => continue,
            Ok(Some(cmd)) => execute(&mut session, &mut store, cmd, &rater, args.compact_every),
            Err(e) => Err(e),
        };
        match answer {
            Ok(text) => writeln!(out, "{text}")?,
            Err(e) => {
                failures += 1;
                writeln!(out, "error line {}: {e}", i + 1)?;
            }
        }
        out.flush()?;
    }
    store.compact(&session).map_err(to_anyhow)?;
    if failures > 0 {
        anyhow::bail!("{failures} line(s) were refused");
    }
    Ok(())
}

fn execute(
    session: &mut Session,
    store: &mut SessionStore,
    cmd: Line,
    default_rater: &str,
    compact_every: usize,
) -> Result<String, String> {
    let seq = match cmd {
        Line::Compact => {
            store.compact(session).map_err(|e| e.to_string())?;
            return Ok("ok compacted".into());
        }
        Line::Rating { edit, rater } => {
            check_node(session, edit.node)?;
            store
                .append_rating(
                    session,
                    &edit,
                    rater.as_deref().unwrap_or(default_rater),
                    &now(),
                )
                .map_err(|e| e.to_string())?
        }
        Line::Vote {
            left,
            right,
            outcome,
            rater,
        } => {
            check_node(session, left)?;
            check_node(session, right)?;
            let (l, r) = (session.node(left), session.node(right));
            if let (Some(l), Some(r)) = (l, r) {
                if l.case != r.case {
                    return Err(format!(
                        "nodes {left} and {right} answer different cases ({:?}, {:?})",
                        l.case, r.case
                    ));
                }
            }
            store
                .append_vote(
                    session,
                    left,
                    right,
                    &outcome,
                    rater.as_deref().unwrap_or(default_rater),
                    &now(),
                )
                .map_err(|e| e.to_string())?
        }
    };
    // Folding happens after the acknowledgement's record is durable, so a crash while
    // compacting never loses an acknowledged record.
    if compact_every > 0 && store.pending() >= compact_every {
        store.compact(session).map_err(|e| e.to_string())?;
    }
    Ok(format!("ok {seq}"))
}

fn to_anyhow(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::Input(i) => anyhow::Error::new(i),
        other => anyhow::Error::new(other),
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn check_node(session: &Session, node: u64) -> Result<(), String> {
    if session.node(node).is_some() {
        Ok(())
    } else {
        Err(format!(
            "no node {node} in {} (nodes go up to {})",
            session.title,
            session.next_node_id().saturating_sub(1)
        ))
    }
}

fn parse_thumb(t: &str) -> Result<i8, String> {
    match t {
        "up" | "+" | "+1" | "1" => Ok(1),
        "down" | "-" | "-1" => Ok(-1),
        "none" | "0" | "" => Ok(0),
        other => Err(format!("thumb must be up, down or none, not {other:?}")),
    }
}

/// Split `key=value` pairs; a value starting with `"` is a JSON string.
fn pairs(mut rest: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(out);
        }
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("expected key=value at {rest:?}"))?;
        let key = rest[..eq].to_string();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("expected key=value at {rest:?}"));
        }
        rest = &rest[eq + 1..];
        if rest.starts_with('"') {
            let mut it = serde_json::Deserializer::from_str(rest).into_iter::<String>();
            let value = match it.next() {
                Some(Ok(v)) => v,
                _ => return Err(format!("unterminated or invalid string after {key}=")),
            };
            let used = it.byte_offset();
            rest = &rest[used..];
            out.push((key, value));
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push((key, rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
}

fn number(key: &str, v: &str) -> Result<u64, String> {
    v.parse()
        .map_err(|_| format!("{key} must be a whole number, not {v:?}"))
}

/// Parse one stdin line; `None` for blank lines and `#` comments.
pub(crate) fn parse_line(line: &str) -> Result<Option<Line>, String> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') {
        return Ok(None);
    }
    if t == "compact" {
        return Ok(Some(Line::Compact));
    }
    if let Some(rest) = t.strip_prefix("vote ") {
        let (mut left, mut right, mut outcome, mut rater) = (None, None, None, None);
        for (k, v) in pairs(rest)? {
            match k.as_str() {
                "left" => left = Some(number("left", &v)?),
                "right" => right = Some(number("right", &v)?),
                "outcome" => outcome = Some(v),
                "rater" => rater = Some(v),
                other => return Err(format!("unknown vote field {other:?}")),
            }
        }
        return Ok(Some(Line::Vote {
            left: left.ok_or("a vote needs left=NODE")?,
            right: right.ok_or("a vote needs right=NODE")?,
            outcome: outcome.ok_or("a vote needs outcome=left|right|tie|both_bad")?,
            rater,
        }));
    }
    let mut edit = RatingEdit::default();
    let mut node = None;
    let mut rater = None;
    for (k, v) in pairs(t)? {
        match k.as_str() {
            "node" => node = Some(number("node", &v)?),
            "stars" => {
                let s = number("stars", &v)?;
                if s > 5 {
                    return Err(format!("stars must be 0 (clear) to 5, not {s}"));
                }
                edit.stars = Some(s as u8);
            }
            "thumb" => edit.thumb = Some(parse_thumb(&v)?),
            "note" => edit.note = Some(v),
            "rater" => rater = Some(v),
            other => return Err(format!("unknown rating field {other:?}")),
        }
    }
    edit.node = node.ok_or("a rating needs node=ID")?;
    Ok(Some(Line::Rating { edit, rater }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ratings_votes_and_quoted_notes() {
        let l = parse_line(r#"node=3 stars=4 thumb=up note="a \"b\"\nc" rater=ann"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            l,
            Line::Rating {
                edit: RatingEdit {
                    node: 3,
                    stars: Some(4),
                    thumb: Some(1),
                    note: Some("a \"b\"\nc".into())
                },
                rater: Some("ann".into())
            }
        );
        let v = parse_line("vote left=3 right=7 outcome=both_bad")
            .unwrap()
            .unwrap();
        assert_eq!(
            v,
            Line::Vote {
                left: 3,
                right: 7,
                outcome: "both_bad".into(),
                rater: None
            }
        );
        assert_eq!(parse_line("  # comment").unwrap(), None);
        assert_eq!(parse_line("compact").unwrap(), Some(Line::Compact));
    }

    #[test]
    fn refuses_bad_lines_with_a_reason() {
        for (line, want) in [
            ("stars=4", "needs node"),
            ("node=x stars=4", "whole number"),
            ("node=1 stars=6", "0 (clear) to 5"),
            ("node=1 colour=red", "unknown rating field"),
            ("node=1 note=\"open", "unterminated"),
            ("vote left=1 outcome=tie", "needs right"),
            ("node=1 thumb=sideways", "thumb must be"),
        ] {
            let err = parse_line(line).unwrap_err();
            assert!(err.contains(want), "{line}: {err}");
        }
    }
}
