//! Read-only questions about the app state that both `update` and the views ask: which node a
//! pane shows, whose ratings it has, and the lines a pane shows about its techniques. Nothing
//! here changes the state.

use std::borrow::Cow;

use super::state::AppState;
use super::techniques::{Job, TechStream, SPINNER};
use crate::prompt::marked::{self, MarkedMessage};
use crate::sanitize::{one_line, visible};
use crate::state::critique;
use crate::state::session::{Node, NodeKind, NodeStatus, Rating};
use crate::technique::Machine;

/// The node pane `i` shows (what a rating key rates).
pub(crate) fn shown_node(s: &AppState, i: usize) -> Option<u64> {
    s.panes.get(i).and_then(|p| p.node)
}

/// This rater's rating of `node`, if any.
pub(crate) fn my_rating(s: &AppState, node: u64) -> Option<&Rating> {
    s.session
        .ratings
        .iter()
        .rev()
        .find(|r| r.node == node && r.rater == s.rating.rater)
}

/// Other raters who rated `node` (with something left).
pub(crate) fn other_raters(s: &AppState, node: u64) -> usize {
    s.session
        .ratings
        .iter()
        .filter(|r| r.node == node && r.rater != s.rating.rater && !r.is_empty())
        .count()
}

pub(crate) fn latest_judge(s: &AppState, node: u64) -> Option<&Node> {
    s.session.nodes.iter().rev().find(|n| {
        n.kind == NodeKind::Judge && n.parent == Some(node) && !n.meta.contains_key("pair")
    })
}

/// The judge's verdict on `node`, newest first: `judge 8/10: reason`.
pub(crate) fn judge_line(s: &AppState, node: u64) -> Option<String> {
    let j = latest_judge(s, node)?;
    Some(match j.status {
        NodeStatus::Queued | NodeStatus::Streaming => "judging…".into(),
        NodeStatus::Done => match (j.score, j.meta.get("reason")) {
            (Some(sc), reason) => format!(
                "judge {sc}/10: {}",
                one_line(reason.map_or("", String::as_str), 200)
            ),
            (None, _) => format!(
                "judge: unparseable answer ({}) — not counted",
                one_line(&j.text, 60)
            ),
        },
        NodeStatus::Cancelled => "judge cancelled".into(),
        NodeStatus::Error => format!("judge failed: {}", j.error.as_deref().unwrap_or("")),
    })
}

fn running_line(s: &AppState, j: &Job) -> String {
    let spin = SPINNER[(s.now.as_millis() / 100) as usize % SPINNER.len()];
    let in_flight: Vec<(&u64, &TechStream)> = s
        .tech
        .streams
        .iter()
        .filter(|(_, t)| t.job == j.id)
        .collect();
    let tokens: u64 = in_flight.iter().map(|(_, t)| t.meter.tokens()).sum();
    let doing = in_flight
        .first()
        .and_then(|(n, _)| s.session.node(**n))
        .map(|n| n.kind.as_str())
        .unwrap_or("");
    match &j.technique.machine {
        Machine::Critique(critique_loop) => format!(
            "{spin} refine round {}/{}: {} #{} ({tokens} tok)",
            critique_loop.round,
            critique_loop.max_rounds,
            if doing == "rewrite" {
                "rewriting"
            } else {
                "critiquing"
            },
            critique_loop.latest()
        ),
        Machine::Search {
            search,
            branch: true,
            ..
        } => format!(
            "{spin} branching #{}: {} of {} running ({tokens} tok)",
            search.root,
            in_flight.len(),
            search.params.k
        ),
        Machine::Search { search, .. } => format!(
            "{spin} search level {}/{} · {} in flight · k={} b={}",
            search.level,
            search.params.depth,
            in_flight.len(),
            search.params.k,
            search.params.beam
        ),
        Machine::Judge { nodes } => format!("{spin} judging {} answer(s)", nodes.len()),
        Machine::Pair { a, b, .. } => format!("{spin} pairwise #{a} vs #{b}, both orders"),
        Machine::Propose { n, .. } => format!("{spin} proposing {n} variants ({tokens} tok)"),
        Machine::Samples { root, nodes, .. } => format!(
            "{spin} sampling #{root}: {} ended, {} running ({tokens} tok)",
            nodes.len(),
            in_flight.len()
        ),
    }
}

/// Lines a pane shows under its answer about techniques: the newest job on this variant and
/// case (progress, or how it ended), the judge's verdict, and a generated variant's intent.
/// Each comes with a theme role.
pub(crate) fn pane_notes(s: &AppState, i: usize) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    let Some(v) = s.prompt.variants.get(i) else {
        return out;
    };
    let case = s.case_name();
    if let Some(g) = &v.generated {
        out.push((format!("generated: {}", visible(g)), "muted"));
    }
    if let Some(j) = s.tech.jobs.iter().rev().find(|j| {
        j.variant == v.name
            && j.case == case
            && !matches!(j.technique.machine, Machine::Judge { .. } if j.summary.is_some())
    }) {
        if j.running {
            out.push((running_line(s, j), "status.streaming"));
        } else if let Some(sum) = &j.summary {
            out.push((visible(sum), "status.waiting"));
        }
    }
    if let Some(line) = s
        .panes
        .get(i)
        .and_then(|p| p.node)
        .and_then(|n| judge_line(s, n))
    {
        out.push((line, "rating.star"));
    }
    out
}

/// The pane title's badge: `rev 2/3` when the answer has revisions, `generated` for a
/// proposed variant, and the kind and id of a promoted node that is not an answer.
pub(crate) fn pane_badge(s: &AppState, i: usize) -> Option<String> {
    let mut parts = Vec::new();
    if s.prompt
        .variants
        .get(i)
        .is_some_and(|v| v.generated.is_some())
    {
        parts.push("generated".to_string());
    }
    if let Some(n) = s
        .panes
        .get(i)
        .and_then(|p| p.node)
        .and_then(|id| s.session.node(id))
    {
        let (chain, pos) = critique::revisions(&s.session, n.id);
        if chain.len() > 1 {
            parts.push(format!("rev {}/{}", pos + 1, chain.len()));
        }
        if n.parent.is_some() && n.kind != NodeKind::Rewrite {
            parts.push(format!("{} #{}", n.kind.as_str(), n.id));
        }
    }
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// The rows a picker shows for `filter`: indices into `items`, best match first (all of them,
/// in order, for an empty filter). Fuzzy, smart case, with nucleo's pattern syntax.
pub(crate) fn picker_matches(items: &[String], filter: &str) -> Vec<usize> {
    use nucleo_matcher::pattern::{CaseMatching, Normalization, Pattern};
    use nucleo_matcher::{Config, Matcher, Utf32Str};
    if filter.trim().is_empty() {
        return (0..items.len()).collect();
    }
    let pattern = Pattern::parse(filter, CaseMatching::Smart, Normalization::Smart);
    let mut matcher = Matcher::new(Config::DEFAULT);
    let mut buf = Vec::new();
    let mut scored: Vec<(usize, u32)> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            pattern
                .score(Utf32Str::new(item, &mut buf), &mut matcher)
                .map(|score| (i, score))
        })
        .collect();
    // Best first; equal scores keep the file's order.
    scored.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.into_iter().map(|(i, _)| i).collect()
}

/// Where the chat a pane shows comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// Not run yet: what the variant will send.
    WillSend,
    /// What the pane's answer was made from; the variant still sends the same.
    Sent,
    /// What the answer was made from, no longer what the variant sends (it was edited, or
    /// the answer is a technique's node); the words say which.
    SentOther(String),
}

/// The chat a pane shows.
#[derive(Debug, Clone)]
pub(crate) struct ShownChat<'a> {
    pub chat: Cow<'a, [MarkedMessage]>,
    pub source: Source,
    pub deferred: Option<&'a str>,
}

/// The chat pane `i` shows: its answer's request, else its variant's preview.
pub(crate) fn shown(s: &AppState, i: usize) -> Option<ShownChat<'_>> {
    let v = s.prompt.variants.get(i)?;
    let preview = s.prompt_view.previews.get(&v.name);
    match s.pane_node(i) {
        Some(n) => {
            let sent = &n.request.messages;
            match preview.filter(|p| p.messages == *sent) {
                Some(p) => Some(ShownChat {
                    chat: Cow::Borrowed(&p.marked),
                    source: Source::Sent,
                    deferred: None,
                }),
                None => Some(ShownChat {
                    chat: Cow::Owned(marked::plain(sent)),
                    source: Source::SentOther(if n.kind == NodeKind::Answer {
                        "sent by an earlier version of this variant".into()
                    } else {
                        format!("sent for this {}", n.kind.as_str())
                    }),
                    deferred: None,
                }),
            }
        }
        None => preview.map(|p| ShownChat {
            chat: Cow::Borrowed(&p.marked),
            source: Source::WillSend,
            deferred: p.deferred.as_deref(),
        }),
    }
}

/// The newest round of samples taken of `node` (`#`): how many were asked, how many ended,
/// and their clusters once one has finished.
pub(crate) fn samples_of(
    s: &AppState,
    node: u64,
) -> Option<(usize, usize, Option<crate::eval::consistency::Stability>)> {
    use crate::eval::consistency::GROUP_KEY;
    let group = s
        .session
        .nodes
        .iter()
        .rev()
        .filter(|n| n.parent == Some(node))
        .find_map(|n| n.meta.get(GROUP_KEY))?;
    let members: Vec<&Node> = s
        .session
        .nodes
        .iter()
        .filter(|n| n.parent == Some(node) && n.meta.get(GROUP_KEY) == Some(group))
        .collect();
    let ended = members
        .iter()
        .filter(|n| !matches!(n.status, NodeStatus::Queued | NodeStatus::Streaming))
        .count();
    Some((
        members.len(),
        ended,
        crate::eval::consistency::stability(&members),
    ))
}
