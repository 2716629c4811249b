//! The prompt-engineering techniques on keys: self-critique (`c`, `C`), revisions (`<`, `>`,
//! `d`), tree-of-thought branching (`b`, `B`) and search (`s`), the tree view (`t`), LLM
//! variant proposals (`g`) and the LLM judge (`J`, `K`, `P`).
//!
//! The machines themselves and what their effects mean live in [`crate::technique`], shared
//! with the `technique` subcommands; this module starts them from keys, turns their
//! [`Command`]s into nodes and [`Effect::StartStream`]s, and hands each finished stream back
//! to its technique. Technique streams are tracked by node in [`TechState::streams`], apart
//! from the panes' own answers, so a critique streaming next to a rerun never disturbs the
//! pane's phase.

use std::collections::VecDeque;
use std::time::Duration;

use crate::app::model::keys::{Key, KeyCode};

use super::panes::save;
use super::variants::insert_variant;
use crate::app::model::msg::Effect;
use crate::app::model::queries::{judge_line, latest_judge};
use crate::app::model::state::{next_seed, AppState, Layer, Pane, Phase};
use crate::app::model::techniques::{
    is_folded, root_of, tree_height, DiffView, Job, SearchForm, TechStream, TreeRow, TreeView,
};
use crate::chat::{FinishReason, StreamEvent};
use crate::config::keymap::Action;
use crate::eval::judge::PairOutcome;
use crate::prompt::render;
use crate::prompt::techniques::SearchParams;
use crate::sanitize::visible;
use crate::state::critique;
use crate::state::diff::{word_counts, word_diff};
use crate::state::search::{self, ExpandAs, Search};
use crate::state::session::{Node, NodeKind, NodeStatus};
use crate::state::timing::StreamMeter;
use crate::technique::{self, Command, Conclusion, Ctx, Machine, Spawn, Technique};

fn pane_of_variant(s: &AppState, variant: &str) -> Option<usize> {
    s.prompt.variants.iter().position(|v| v.name == variant)
}

/// Point the pane of `node`'s variant at `node` (if it is on screen and idle) and remember it
/// in the root's meta so a reopened session shows the same.
fn show_in_pane(s: &mut AppState, node: u64) -> bool {
    let Some(n) = s.session.node(node) else {
        return false;
    };
    let (variant, case, phase) = (n.variant.clone(), n.case.clone(), Phase::from_node(n));
    let root = root_of(&s.session, node);
    if let Some(r) = s.session.node_mut(root) {
        r.meta.insert("promoted".into(), node.to_string());
    }
    if case != s.case_name() {
        return false;
    }
    let Some(i) = pane_of_variant(s, &variant) else {
        return false;
    };
    let Some(p) = s.panes.get_mut(i) else {
        return false;
    };
    if p.phase.is_active() {
        return false;
    }
    *p = Pane::idle();
    p.node = Some(node);
    p.phase = phase;
    s.dirty = true;
    true
}

/// The node a technique key acts on: the tree's selection when the tree is on top, else the
/// focused pane's node.
fn target(s: &AppState) -> Option<u64> {
    match s.layers.last() {
        Some(Layer::Tree(t)) => t.selected(),
        _ => s.panes.get(s.focus).and_then(|p| p.node),
    }
}

/// `id` if it is a finished node with text, else a message saying why not.
fn finished(s: &mut AppState, id: Option<u64>, what: &str) -> Option<Node> {
    let Some(id) = id else {
        s.message = Some(format!(
            "nothing to {what} yet: run the variant first (Enter)"
        ));
        return None;
    };
    match s.session.node(id) {
        Some(n) if n.status == NodeStatus::Done && !n.text.trim().is_empty() => Some(n.clone()),
        Some(n) if n.status == NodeStatus::Done && n.meta.contains_key("search_root") => {
            Some(n.clone())
        }
        Some(n) => {
            let why = match n.status {
                NodeStatus::Queued | NodeStatus::Streaming => "still streaming",
                NodeStatus::Done => "empty",
                NodeStatus::Cancelled => "cancelled",
                NodeStatus::Error => "an error",
            };
            s.message = Some(format!("can't {what} #{id}: it is {why}"));
            None
        }
        None => None,
    }
}

/// The interpreter's context over the app state (the job list is left free).
fn in_ctx<R>(s: &mut AppState, f: impl FnOnce(&mut Ctx) -> R) -> R {
    let AppState {
        session,
        prompt,
        seed_state,
        ..
    } = s;
    let mut seed = || next_seed(seed_state);
    f(&mut Ctx {
        session,
        techniques: &prompt.techniques,
        cases: &prompt.cases,
        seed: &mut seed,
    })
}

/// Run `f` on `job`'s technique; `None` when there is no such job.
fn with_technique<R>(
    s: &mut AppState,
    job: u64,
    f: impl FnOnce(&mut Technique, &mut Ctx) -> R,
) -> Option<R> {
    let AppState {
        session,
        prompt,
        seed_state,
        tech,
        ..
    } = s;
    let j = tech.jobs.iter_mut().find(|j| j.id == job)?;
    let mut seed = || next_seed(seed_state);
    Some(f(
        &mut j.technique,
        &mut Ctx {
            session,
            techniques: &prompt.techniques,
            cases: &prompt.cases,
            seed: &mut seed,
        },
    ))
}

/// Add a started technique as a job on `variant` × `case` and carry out its first commands.
fn add_job(
    s: &mut AppState,
    variant: &str,
    case: &str,
    technique: Technique,
    commands: Vec<Command>,
    fx: &mut Vec<Effect>,
) -> u64 {
    s.tech.next_job += 1;
    let id = s.tech.next_job;
    s.tech.jobs.push(Job {
        id,
        variant: variant.to_string(),
        case: case.to_string(),
        technique,
        running: true,
        summary: None,
    });
    // Keep the list short: finished jobs only matter for their summary line.
    if s.tech.jobs.len() > 64 {
        if let Some(pos) = s.tech.jobs.iter().position(|j| !j.running) {
            s.tech.jobs.remove(pos);
        }
    }
    run_commands(s, id, commands, fx);
    id
}

/// Carry out `job`'s commands: spawns become nodes and [`Effect::StartStream`]s; a cancelled
/// stream's node ends at once (as cancelled) and goes back to the job, whose answer is queued
/// too. Then see whether the job has ended.
fn run_commands(s: &mut AppState, job: u64, commands: Vec<Command>, fx: &mut Vec<Effect>) {
    let mut queue: VecDeque<Command> = commands.into();
    let mut ended = false;
    while let Some(c) = queue.pop_front() {
        match c {
            Command::Spawn(sp) => start_stream(s, job, *sp, fx),
            Command::Cancel { ticket } => {
                let Some(node) = node_of_ticket(s, job, ticket) else {
                    continue;
                };
                fx.push(Effect::CancelStream { node });
                let now = s.now;
                if let Some((_, more)) = end_stream(s, node, Ok(FinishReason::Cancelled), now) {
                    queue.extend(more);
                    ended = true;
                }
            }
        }
    }
    conclude_job(s, job);
    if ended {
        rebuild_trees(s);
        save(s, fx);
    }
}

/// Create the node of `sp` and start streaming it.
fn start_stream(s: &mut AppState, job: u64, sp: Spawn, fx: &mut Vec<Effect>) {
    let stamp = s.stamp();
    let node = s.session.push_child(
        sp.parent,
        sp.kind,
        &sp.model,
        sp.request.clone(),
        stamp,
        &sp.meta,
    );
    node.status = NodeStatus::Queued;
    let id = node.id;
    let req = s.next_request;
    s.next_request += 1;
    s.tech.streams.insert(
        id,
        TechStream {
            job,
            ticket: sp.ticket,
            request: req,
            started: s.now,
            meter: StreamMeter::default(),
        },
    );
    fx.push(Effect::StartStream {
        node: id,
        request: req,
        model: sp.model,
        chat: sp.request,
    });
}

fn node_of_ticket(s: &AppState, job: u64, ticket: u64) -> Option<u64> {
    s.tech
        .streams
        .iter()
        .find(|(_, t)| t.job == job && t.ticket == ticket)
        .map(|(n, _)| *n)
}

/// Rebuild every open tree view (after nodes were added or changed state).
fn rebuild_trees(s: &mut AppState) {
    let h = tree_height(s.height);
    for l in s.layers.iter_mut() {
        if let Layer::Tree(t) = l {
            t.rebuild(&s.session);
            t.keep_visible(h);
        }
    }
}

// ---- keys -----------------------------------------------------------------------------

/// Technique keys in normal mode (and the shared ones the tree view forwards).
pub(crate) fn normal_action(s: &mut AppState, a: Action, fx: &mut Vec<Effect>) {
    match a {
        Action::Critique => start_critique(s, target(s), 1, fx),
        Action::CritiqueLoop => {
            let rounds = s.prompt.techniques.critique_rounds;
            start_critique(s, target(s), rounds, fx)
        }
        Action::PrevRevision => step_revision(s, -1),
        Action::NextRevision => step_revision(s, 1),
        Action::Diff => open_diff(s, target(s)),
        Action::Branch => start_branch(s, target(s), false, fx),
        Action::Samples => start_samples(s, target(s), fx),
        Action::BranchSteps => start_branch(s, target(s), true, fx),
        Action::Tree => open_tree(s),
        Action::Search => open_search_form(s, target(s)),
        Action::Propose => start_propose(s, fx),
        Action::Judge => start_judge(s, target(s).into_iter().collect(), false, fx),
        Action::JudgeAll => {
            let case = s.case_name();
            let all: Vec<u64> = s
                .session
                .nodes
                .iter()
                .filter(|n| {
                    n.case == case
                        && n.status == NodeStatus::Done
                        && matches!(n.kind, NodeKind::Answer | NodeKind::Rewrite)
                        && !n.text.trim().is_empty()
                        && !n.meta.contains_key("not_sent")
                })
                .map(|n| n.id)
                .collect();
            start_judge(s, all, true, fx)
        }
        Action::JudgePair => start_pair(s, fx),
        Action::CancelTechniques if !cancel_all(s, fx) => {
            s.message = Some("no technique is running".into());
        }
        _ => {}
    }
}

fn open_tree(s: &mut AppState) {
    let case = s.case_name();
    let sel = s.panes.get(s.focus).and_then(|p| p.node);
    let mut t = TreeView::new(&s.session, &case, sel);
    if t.rows.is_empty() {
        s.message = Some("no answers for this case yet: run it first (Enter)".into());
        return;
    }
    t.keep_visible(tree_height(s.height));
    s.layers.push(Layer::Tree(Box::new(t)));
}

fn step_revision(s: &mut AppState, by: isize) {
    let Some(p) = s.panes.get(s.focus) else {
        return;
    };
    if p.phase.is_active() {
        s.message = Some("wait for the answer to finish".into());
        return;
    }
    let Some(node) = p.node else { return };
    let (chain, pos) = critique::revisions(&s.session, node);
    if chain.len() < 2 {
        s.message = Some("only one revision: press c to critique and rewrite".into());
        return;
    }
    let next = pos as isize + by;
    if next < 0 || next as usize >= chain.len() {
        s.message = Some(format!(
            "already at the {} revision",
            if by < 0 { "first" } else { "newest" }
        ));
        return;
    }
    let id = chain[next as usize];
    show_in_pane(s, id);
    s.message = None;
}

fn open_diff(s: &mut AppState, node: Option<u64>) {
    let Some(id) = node else {
        s.message = Some("nothing to diff yet".into());
        return;
    };
    let (chain, pos) = critique::revisions(&s.session, id);
    let pair = if pos > 0 {
        Some((chain[pos - 1], chain[pos]))
    } else {
        // A branch or a thought: against its parent, when that has text.
        s.session
            .node(id)
            .and_then(|n| n.parent)
            .and_then(|p| s.session.node(p))
            .filter(|p| {
                matches!(
                    p.kind,
                    NodeKind::Answer | NodeKind::Rewrite | NodeKind::Thought
                ) && !p.text.is_empty()
            })
            .map(|p| (p.id, id))
    };
    let Some((old, new)) = pair else {
        s.message = Some(format!(
            "#{id} has no earlier revision to diff against (c critiques and rewrites it)"
        ));
        return;
    };
    let text = |i: u64| s.session.node(i).map_or("", |n| n.text.as_str());
    let spans = word_diff(text(old), text(new));
    let (added, removed) = word_counts(&spans);
    s.layers.push(Layer::Diff(Box::new(DiffView {
        old,
        new,
        spans,
        added,
        removed,
        scroll: 0,
    })));
}

/// Fold or unfold a node of the tree, and save.
fn keep_fold(s: &mut AppState, id: u64, folded: bool, fx: &mut Vec<Effect>) {
    if let Some(n) = s.session.node_mut(id) {
        if folded {
            n.meta.insert("collapsed".into(), "true".into());
        } else {
            n.meta.remove("collapsed");
        }
        save(s, fx);
    }
}

/// Keys of the tree view. Pushes the tree back (and any layer it opens on top).
pub(crate) fn tree_key(
    s: &mut AppState,
    mut t: Box<TreeView>,
    action: Option<Action>,
    fx: &mut Vec<Effect>,
) {
    let h = tree_height(s.height);
    let sel = t.selected();
    let row = t.rows.get(t.cursor).cloned();
    match action {
        Some(Action::Close) => return,
        Some(Action::Down) => t.cursor = (t.cursor + 1).min(t.rows.len().saturating_sub(1)),
        Some(Action::Up) => t.cursor = t.cursor.saturating_sub(1),
        Some(Action::Parent) => {
            if let Some(p) = row.and_then(|r| r.parent) {
                t.select(p);
            }
        }
        Some(Action::Child) => {
            if let Some(r) = row {
                if s.session.node(r.id).is_some_and(is_folded) {
                    keep_fold(s, r.id, false, fx);
                    t.rebuild(&s.session);
                }
                if t.rows
                    .get(t.cursor + 1)
                    .is_some_and(|c| c.parent == Some(r.id))
                {
                    t.cursor += 1;
                }
            }
        }
        Some(a @ (Action::PrevSibling | Action::NextSibling)) => {
            if let Some(r) = row {
                let sib = |c: &TreeRow| c.parent == r.parent && c.depth == r.depth;
                let found = if a == Action::NextSibling {
                    t.rows
                        .iter()
                        .enumerate()
                        .skip(t.cursor + 1)
                        .find(|(_, c)| sib(c))
                        .map(|(i, _)| i)
                } else {
                    t.rows[..t.cursor]
                        .iter()
                        .enumerate()
                        .rev()
                        .find(|(_, c)| sib(c))
                        .map(|(i, _)| i)
                };
                if let Some(i) = found {
                    t.cursor = i;
                }
            }
        }
        Some(Action::ToggleCollapse) => {
            if let Some(r) = row {
                let folded = s.session.node(r.id).is_some_and(is_folded);
                if r.children > 0 || folded {
                    keep_fold(s, r.id, !folded, fx);
                    t.rebuild(&s.session);
                }
            }
        }
        Some(Action::OpenNode) => t.open = !t.open,
        Some(Action::Bookmark) => {
            if let Some(n) = sel.and_then(|id| s.session.node_mut(id)) {
                if n.meta.remove("bookmark").is_none() {
                    n.meta.insert("bookmark".into(), "true".into());
                }
                save(s, fx);
            }
        }
        Some(Action::Prune) => {
            if let Some(id) = sel {
                // A running search may move on (and grow the tree) right away.
                toggle_prune(s, id, fx);
                t.rebuild(&s.session);
            }
        }
        Some(Action::Promote) => {
            if let Some(id) = sel {
                promote(s, id, fx);
                t.rebuild(&s.session);
            }
        }
        Some(Action::Help) => {
            s.layers.push(Layer::Tree(t));
            s.layers.push(Layer::Help { scroll: 0 });
            return;
        }
        Some(
            a @ (Action::Branch
            | Action::Samples
            | Action::BranchSteps
            | Action::Search
            | Action::Critique
            | Action::Diff
            | Action::Judge
            | Action::CancelTechniques),
        ) => {
            // Act on the selection with the tree still underneath.
            s.layers.push(Layer::Tree(t));
            normal_action(s, a, fx);
            rebuild_trees(s);
            return;
        }
        _ => {}
    }
    t.keep_visible(h);
    s.layers.push(Layer::Tree(t));
}

fn toggle_prune(s: &mut AppState, id: u64, fx: &mut Vec<Effect>) {
    let Some(n) = s.session.node_mut(id) else {
        return;
    };
    let pruned = if n.meta.remove("pruned").is_some() {
        false
    } else {
        n.meta.insert("pruned".into(), "true".into());
        true
    };
    // Tell every running search: a pruned node is never expanded or kept.
    steer_searches(
        s,
        if pruned {
            search::Msg::Prune(id)
        } else {
            search::Msg::Unprune(id)
        },
        fx,
    );
    s.message = Some(if pruned {
        format!("pruned #{id} (x again to unprune)")
    } else {
        format!("unpruned #{id}")
    });
    save(s, fx);
}

/// Tell every running search about a prune, unprune or promotion.
fn steer_searches(s: &mut AppState, msg: search::Msg, fx: &mut Vec<Effect>) {
    let jobs: Vec<u64> = s
        .tech
        .jobs
        .iter()
        .filter(|j| j.running && matches!(j.technique.machine, Machine::Search { .. }))
        .map(|j| j.id)
        .collect();
    for j in jobs {
        let cmds = with_technique(s, j, |t, ctx| t.steer(ctx, msg.clone())).unwrap_or_default();
        run_commands(s, j, cmds, fx);
    }
}

fn promote(s: &mut AppState, id: u64, fx: &mut Vec<Effect>) {
    let Some(n) = s.session.node_mut(id) else {
        return;
    };
    if !matches!(
        n.kind,
        NodeKind::Answer | NodeKind::Rewrite | NodeKind::Thought
    ) || n.meta.contains_key("search_root")
    {
        s.message = Some(format!(
            "a {} can't be the pane's answer: promote an answer, rewrite or thought",
            n.kind.as_str()
        ));
        return;
    }
    n.meta.remove("pruned");
    steer_searches(s, search::Msg::Promote(id), fx);
    let variant = s
        .session
        .node(id)
        .map(|n| n.variant.clone())
        .unwrap_or_default();
    s.message = Some(if show_in_pane(s, id) {
        format!("pane {} now shows #{id}", visible(&variant))
    } else {
        format!("#{id} promoted (its pane is busy or not on this case)")
    });
    save(s, fx);
}

/// Keys of the diff view.
pub(crate) fn diff_key(mut d: Box<DiffView>, action: Option<Action>) -> Option<Layer> {
    match action {
        Some(Action::Close) | Some(Action::Diff) => return None,
        Some(Action::Down) => d.scroll += 1,
        Some(Action::Up) => d.scroll = d.scroll.saturating_sub(1),
        _ => {}
    }
    Some(Layer::Diff(d))
}

/// Keys of the search parameter form.
pub(crate) fn form_key(
    s: &mut AppState,
    mut f: SearchForm,
    action: Option<Action>,
    key: &Key,
    fx: &mut Vec<Effect>,
) {
    match action {
        Some(Action::Close) => return,
        Some(Action::Accept) => {
            start_search(s, f, fx);
            return;
        }
        Some(Action::Down) => f.field = (f.field + 1) % 4,
        Some(Action::Up) => f.field = (f.field + 3) % 4,
        Some(Action::Increase) => f.bump(true),
        Some(Action::Decrease) => f.bump(false),
        _ => {
            if let KeyCode::Char(c) = key.code {
                if let Some(d) = c.to_digit(10) {
                    f.set(d as usize);
                }
            }
        }
    }
    s.layers.push(Layer::SearchParams(f));
}

// ---- starting techniques ----------------------------------------------------------------

fn start_critique(s: &mut AppState, node: Option<u64>, rounds: usize, fx: &mut Vec<Effect>) {
    let Some(n) = finished(s, node, "critique") else {
        return;
    };
    if s.tech.jobs.iter().any(|j| {
        j.running
            && matches!(&j.technique.machine, Machine::Critique(critique_loop) if critique_loop.revisions.contains(&n.id))
    }) {
        s.message = Some(format!("#{} is already being refined", n.id));
        return;
    }
    let model = s
        .prompt
        .techniques
        .critic_model
        .clone()
        .unwrap_or(n.model.clone());
    s.message = Some(if rounds > 1 {
        format!("refining #{} (up to {rounds} rounds) with {model}", n.id)
    } else {
        format!("critiquing #{} with {model}, then rewriting", n.id)
    });
    let (t, cmds) = in_ctx(s, |ctx| Technique::critique(ctx, &n, rounds, model));
    add_job(s, &n.variant, &n.case, t, cmds, fx);
}

fn start_branch(s: &mut AppState, node: Option<u64>, steps: bool, fx: &mut Vec<Effect>) {
    let Some(n) = finished(s, node, "branch") else {
        return;
    };
    let k = s.prompt.techniques.branch_k;
    let mode = if steps || n.kind == NodeKind::Thought {
        ExpandAs::Step
    } else {
        ExpandAs::Answer
    };
    let temperature = s.prompt.techniques.branch_temperature;
    let what = if mode == ExpandAs::Step {
        "next steps"
    } else {
        "alternative answers"
    };
    s.message = Some(format!(
        "branching #{} into {k} {what} at temperature {temperature} (t: tree)",
        n.id
    ));
    let model = n.model.clone();
    let (t, cmds) = in_ctx(s, |ctx| {
        Technique::search(ctx, Search::branch(n.id, k, mode), temperature, true, model)
    });
    add_job(s, &n.variant, &n.case, t, cmds, fx);
}

/// Samples when the variant doesn't say `samples = N`.
const DEFAULT_SAMPLES: usize = 5;

/// Self-consistency of the answer: N seeded samples of its request (the variant's `samples`,
/// else 5), streamed at once as its children and clustered when they end.
fn start_samples(s: &mut AppState, node: Option<u64>, fx: &mut Vec<Effect>) {
    let Some(n) = finished(s, node, "sample") else {
        return;
    };
    let k = s
        .prompt
        .variants
        .iter()
        .find(|v| v.name == n.variant)
        .and_then(|v| v.sampling.samples)
        .filter(|&k| k > 1)
        .unwrap_or(DEFAULT_SAMPLES)
        .min(64);
    let temperature = s.prompt.techniques.branch_temperature;
    let greedy = n.request.sampling.temperature.is_none_or(|t| t <= 0.0);
    s.message = Some(if greedy {
        format!(
            "sampling #{} {k} times at temperature {temperature} (its own is greedy)",
            n.id
        )
    } else {
        format!("sampling #{} {k} times", n.id)
    });
    let model = n.model.clone();
    let (t, cmds) = in_ctx(s, |ctx| Technique::samples(ctx, &n, k, temperature, model));
    add_job(s, &n.variant, &n.case, t, cmds, fx);
}

fn open_search_form(s: &mut AppState, node: Option<u64>) {
    let Some(n) = finished(s, node, "search from") else {
        return;
    };
    let p = s.prompt.techniques.search;
    s.layers.push(Layer::SearchParams(SearchForm {
        node: n.id,
        values: [p.k, p.beam, p.depth, p.value_samples],
        field: 0,
    }));
}

fn start_search(s: &mut AppState, f: SearchForm, fx: &mut Vec<Effect>) {
    let Some(n) = s.session.node(f.node).cloned() else {
        return;
    };
    // Search from a thought continues its steps; from an answer it starts a fresh chain of
    // thoughts for the same task under a search root.
    let root = if n.kind == NodeKind::Thought {
        n.id
    } else {
        let id = s.session.next_node_id();
        let mut r = Node::start(
            id,
            Some(n.id),
            NodeKind::Thought,
            &n.variant,
            &n.case,
            &n.model,
            n.request.clone(),
            s.stamp(),
        );
        r.status = NodeStatus::Done;
        r.meta.insert("search_root".into(), "true".into());
        s.session.nodes.push(r);
        id
    };
    let params = SearchParams {
        k: f.values[0],
        beam: f.values[1],
        depth: f.values[2],
        value_samples: f.values[3],
    };
    let temperature = s.prompt.techniques.branch_temperature;
    s.message = Some(format!(
        "searching from #{} (k={} b={} d={}): x prunes, p promotes, X stops",
        n.id, params.k, params.beam, params.depth
    ));
    let model = n.model.clone();
    let (t, cmds) = in_ctx(s, |ctx| {
        let started = Search::start(root, params, ExpandAs::Step);
        Technique::search(ctx, started, temperature, false, model)
    });
    add_job(s, &n.variant, &n.case, t, cmds, fx);
    // Watch it grow.
    if let Some(Layer::Tree(t)) = s.layers.last_mut() {
        t.rebuild(&s.session);
        t.select(root);
    } else {
        let mut t = TreeView::new(&s.session, &n.case, Some(root));
        t.keep_visible(tree_height(s.height));
        s.layers.push(Layer::Tree(Box::new(t)));
    }
    rebuild_trees(s);
}

fn start_judge(s: &mut AppState, targets: Vec<u64>, all: bool, fx: &mut Vec<Effect>) {
    let targets: Vec<Node> = if all {
        targets
            .iter()
            .filter_map(|&t| s.session.node(t).cloned())
            .collect()
    } else {
        match finished(s, targets.first().copied(), "judge") {
            Some(n) => vec![n],
            None => return,
        }
    };
    let Some(first) = targets.first() else {
        s.message = Some("no finished answers to judge on this case".into());
        return;
    };
    let model = s
        .prompt
        .techniques
        .judge_model
        .clone()
        .unwrap_or(first.model.clone());
    let (variant, case) = (first.variant.clone(), first.case.clone());
    let ids: Vec<u64> = targets.iter().map(|n| n.id).collect();
    let (t, cmds) = in_ctx(s, |ctx| Technique::judge(ctx, &ids, model.clone()));
    let started = cmds
        .iter()
        .filter(|c| matches!(c, Command::Spawn(_)))
        .count();
    s.message = Some(format!("judging {started} answer(s) with {model}"));
    if started == 0 {
        s.message = Some("nothing to judge".into());
        return;
    }
    add_job(s, &variant, &case, t, cmds, fx);
}

fn start_pair(s: &mut AppState, fx: &mut Vec<Effect>) {
    let n = s.panes.len();
    if n < 2 {
        s.message = Some("pairwise judging needs two panes".into());
        return;
    }
    let other = (s.focus + 1) % n;
    let a_id = s.panes[s.focus].node;
    let b_id = s.panes[other].node;
    let Some(a) = finished(s, a_id, "judge") else {
        return;
    };
    let Some(b) = finished(s, b_id, "judge") else {
        return;
    };
    let model = s
        .prompt
        .techniques
        .judge_model
        .clone()
        .unwrap_or(a.model.clone());
    let m = model.clone();
    match in_ctx(s, |ctx| Technique::pair(ctx, a.id, b.id, m)) {
        Ok((t, cmds)) => {
            s.message = Some(format!(
                "pairwise: #{} vs #{}, judged in both orders by {model}",
                a.id, b.id
            ));
            add_job(s, &a.variant, &a.case, t, cmds, fx);
        }
        Err(e) => s.message = Some(format!("can't judge #{}: {e}", a.id)),
    }
}

fn start_propose(s: &mut AppState, fx: &mut Vec<Effect>) {
    let Some(v) = s.prompt.variants.get(s.focus).cloned() else {
        return;
    };
    let model = s
        .prompt
        .techniques
        .proposer_model
        .clone()
        .unwrap_or(v.model.clone());
    let case = s.current_case().cloned();
    let case_name = s.case_name();
    // The proposal hangs off the pane's answer, or off an unsent anchor holding the
    // variant's request (as `promptloom technique propose` does).
    let parent = match s.panes.get(s.focus).and_then(|p| p.node) {
        Some(p) => p,
        None => {
            let id = s.session.next_node_id();
            let vars = case.as_ref().map(|c| c.vars.clone()).unwrap_or_default();
            let mut anchor = Node::start(
                id,
                None,
                NodeKind::Answer,
                &v.name,
                &case_name,
                &v.model,
                // A record, never sent: context ranked by embedding is left out of it (the
                // driver fetches vectors for runs only); retrieval as last read.
                render::request(&v, &vars, &Default::default(), &s.indexes),
                s.stamp(),
            );
            anchor.status = NodeStatus::Done;
            anchor.meta.insert("not_sent".into(), "true".into());
            s.session.nodes.push(anchor);
            id
        }
    };
    let n = s.prompt.techniques.proposals;
    s.message = Some(format!(
        "asking {model} for {n} rewrites of {:?}",
        visible(&v.name)
    ));
    let (t, cmds) = Technique::propose(&v, parent, n, model);
    add_job(s, &v.name, &case_name, t, cmds, fx);
}

// ---- how jobs end -------------------------------------------------------------------------

/// If `job` has just stopped, write its summary.
fn conclude_job(s: &mut AppState, job: u64) {
    if !s.tech.jobs.iter().any(|j| j.id == job && j.running) {
        return;
    }
    let Some(Some(c)) = with_technique(s, job, |t, ctx| t.conclude(ctx)) else {
        return;
    };
    let summary = match c {
        Conclusion::Critique {
            reason,
            latest,
            rounds,
            revisions,
        } => format!(
            "refine stopped after {rounds} round(s): {reason} (newest #{latest}, {revisions} revisions; < > step, d diffs)"
        ),
        Conclusion::Search {
            root,
            branch: true,
            status,
            children,
            ..
        } => format!("branched #{root}: {children} children, {status} (t: tree)"),
        Conclusion::Search {
            status,
            best: Some((b, score, verdict)),
            ..
        } => format!(
            "search {status}: best #{b} value {} ({verdict}; p promotes it)",
            score.map_or("none".into(), |x| format!("{x:.2}"))
        ),
        Conclusion::Search { status, .. } => format!("search {status}"),
        Conclusion::Judge { nodes } => judge_summary(s, &nodes),
        Conclusion::Pair { a, b, outcome } => {
            let verdict = match outcome {
                PairOutcome::First => format!("#{a} wins in both orders"),
                PairOutcome::Second => format!("#{b} wins in both orders"),
                PairOutcome::Tie => "a tie".into(),
                PairOutcome::Inconsistent => {
                    "position bias: the preference flipped with the order".into()
                }
                PairOutcome::Unknown => "undecided (an answer was unreadable)".into(),
            };
            format!("pairwise #{a} vs #{b}: {verdict}")
        }
        Conclusion::Propose { variant, answer } => propose_summary(s, &variant, answer),
        Conclusion::Samples {
            root,
            nodes,
            stability: Some(st),
        } => format!(
            "samples of #{root} ({} asked): {} (t: tree)",
            nodes.len(),
            crate::eval::figures::describe_stability(&st)
        ),
        Conclusion::Samples { root, nodes, .. } => {
            format!("samples of #{root}: none of {} finished", nodes.len())
        }
    };
    finish_job(s, job, summary);
}

fn judge_summary(s: &AppState, judged: &[u64]) -> String {
    if judged.len() == 1 {
        return judge_line(s, judged[0]).unwrap_or_else(|| "judge finished".into());
    }
    let scores: Vec<f64> = judged
        .iter()
        .filter_map(|&t| latest_judge(s, t))
        .filter_map(|j| j.score)
        .collect();
    if scores.is_empty() {
        format!("judged {} answers: no readable score", judged.len())
    } else {
        format!(
            "judged {} answers: mean {:.1}/10 over {} readable",
            judged.len(),
            scores.iter().sum::<f64>() / scores.len() as f64,
            scores.len()
        )
    }
}

/// Add the variants the proposer's answer makes, beside the variant they rewrite; the summary.
fn propose_summary(s: &mut AppState, variant: &str, answer: Option<u64>) -> String {
    let Some(node) = answer.and_then(|id| s.session.node(id)).cloned() else {
        return "proposer failed: cancelled".into();
    };
    if node.status != NodeStatus::Done {
        let error = node
            .error
            .clone()
            .unwrap_or_else(|| format!("{:?}", node.status).to_lowercase());
        return format!("proposer failed: {error}");
    }
    let Some(vi) = pane_of_variant(s, variant) else {
        return "the variant was deleted".into();
    };
    let v = s.prompt.variants[vi].clone();
    let (added, rejected) =
        technique::proposed_variants(&v, &node.text, &s.prompt.cases, &s.prompt.variants);
    let keep_focus = s.focus;
    s.focus = vi;
    let names: Vec<String> = added.iter().map(|v| v.name.clone()).collect();
    for nv in added {
        insert_variant(s, nv);
    }
    if names.is_empty() {
        s.focus = keep_focus.min(s.panes.len().saturating_sub(1));
    } else if let Some(first) = pane_of_variant(s, &names[0]) {
        s.focus = first;
    }
    technique::record_proposals(&mut s.session, node.id, names.len(), &rejected);
    let mut summary = format!(
        "added {} generated variant(s) of {:?}",
        names.len(),
        visible(&v.name)
    );
    if !rejected.is_empty() {
        summary.push_str(&format!(
            ", {} rejected ({})",
            rejected.len(),
            rejected.join("; ")
        ));
    }
    if !names.is_empty() {
        summary.push_str(": Enter runs them all");
    }
    summary
}

fn finish_job(s: &mut AppState, job: u64, summary: String) {
    if let Some(j) = s.tech.jobs.iter_mut().find(|j| j.id == job) {
        j.running = false;
        j.summary = Some(summary.clone());
    }
    s.message = Some(summary);
    s.dirty = true;
}

// ---- streams ----------------------------------------------------------------------------

/// Whether `node` is a technique stream (not a pane's answer).
pub(crate) fn owns(s: &AppState, node: u64) -> bool {
    s.tech.streams.contains_key(&node)
}

/// An event of a technique stream.
pub(crate) fn stream_event(
    s: &mut AppState,
    node: u64,
    request: u64,
    event: StreamEvent,
    at: Duration,
    fx: &mut Vec<Effect>,
) {
    let Some(ts) = s.tech.streams.get_mut(&node) else {
        return;
    };
    if ts.request != request {
        return;
    }
    s.dirty = true;
    match event {
        StreamEvent::Delta(d) => {
            ts.meter.on_delta(at.saturating_sub(ts.started), &d);
            if let Some(n) = s.session.node_mut(node) {
                if n.status == NodeStatus::Queued {
                    n.status = NodeStatus::Streaming;
                }
                n.text.push_str(&d);
            }
        }
        StreamEvent::Usage(u) => ts.meter.on_usage(u),
        StreamEvent::Logprobs(t) => {
            if let Some(n) = s.session.node_mut(node) {
                t.iter().for_each(|t| n.logprobs.push(t));
            }
        }
        // Technique requests offer no tools (technique::requests drops them).
        StreamEvent::Notice(_) | StreamEvent::ToolCall(_) => {}
        StreamEvent::Finished(r) => finish_stream(s, node, Ok(r), at, fx),
        StreamEvent::Failed(e) => finish_stream(s, node, Err(e), at, fx),
    }
}

fn finish_stream(
    s: &mut AppState,
    node: u64,
    outcome: Result<FinishReason, String>,
    at: Duration,
    fx: &mut Vec<Effect>,
) {
    let Some((job, cmds)) = end_stream(s, node, outcome, at) else {
        return;
    };
    run_commands(s, job, cmds, fx);
    rebuild_trees(s);
    save(s, fx);
}

/// Close the node of a technique stream ([`Node::finish`]) and hand it to its technique;
/// its job and the commands that follow.
fn end_stream(
    s: &mut AppState,
    node: u64,
    outcome: Result<FinishReason, String>,
    at: Duration,
) -> Option<(u64, Vec<Command>)> {
    let ts = s.tech.streams.remove(&node)?;
    s.session
        .node_mut(node)?
        .finish(outcome, &ts.meter.stats(), at.saturating_sub(ts.started));
    let (before, cmds, after) = with_technique(s, ts.job, |t, ctx| {
        let before = t.latest_revision();
        let cmds = t.finished(ctx, ts.ticket, node);
        (before, cmds, t.latest_revision())
    })?;
    if let Some(latest) = after.filter(|_| after != before) {
        show_in_pane(s, latest);
    }
    Some((ts.job, cmds))
}

// ---- cancelling -------------------------------------------------------------------------

fn cancel_job(s: &mut AppState, job: u64, fx: &mut Vec<Effect>) {
    if !s.tech.jobs.iter().any(|j| j.id == job && j.running) {
        return;
    }
    let cmds = with_technique(s, job, |t, ctx| t.cancel(ctx)).unwrap_or_default();
    run_commands(s, job, cmds, fx);
    if s.tech.jobs.iter().any(|j| j.id == job && j.running) {
        finish_job(s, job, "cancelled".into());
    }
}

/// Cancel every running technique; whether there was one.
pub(crate) fn cancel_all(s: &mut AppState, fx: &mut Vec<Effect>) -> bool {
    let running: Vec<u64> = s
        .tech
        .jobs
        .iter()
        .filter(|j| j.running)
        .map(|j| j.id)
        .collect();
    for j in &running {
        cancel_job(s, *j, fx);
    }
    if !running.is_empty() {
        s.message = Some(format!("cancelled {} technique run(s)", running.len()));
        rebuild_trees(s);
    }
    !running.is_empty()
}

/// Cancel the techniques working on pane `i`'s variant.
pub(crate) fn cancel_variant(s: &mut AppState, i: usize, fx: &mut Vec<Effect>) {
    let Some(v) = s.prompt.variants.get(i).map(|v| v.name.clone()) else {
        return;
    };
    let running: Vec<u64> = s
        .tech
        .jobs
        .iter()
        .filter(|j| j.running && j.variant == v)
        .map(|j| j.id)
        .collect();
    for j in running {
        cancel_job(s, j, fx);
    }
    rebuild_trees(s);
}

#[cfg(test)]
pub(crate) mod tests;
