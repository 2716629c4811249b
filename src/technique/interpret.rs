//! The one interpreter of the technique machines' effects, shared by the TUI and the
//! `technique` subcommands (see the module docs of [`crate::technique`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::requests;
use super::{Command, Spawn};
use crate::chat::ChatRequest;
use crate::eval::judge::{self, PairOutcome, Preference, Verdict};
use crate::eval::value;
use crate::prompt::techniques::Techniques;
use crate::prompt::{template, Case, Variant};
use crate::state::critique::{self, CritiqueLoop};
use crate::state::search::{self, ExpandAs, Search};
use crate::state::session::{Node, NodeKind, NodeStatus, Session};

/// What a technique reads and writes while it interprets: the session its nodes live in, the
/// prompt file's technique settings and cases, and a seed source for sampled steps.
pub(crate) struct Ctx<'a> {
    pub session: &'a mut Session,
    pub techniques: &'a Techniques,
    pub cases: &'a [Case],
    pub seed: &'a mut dyn FnMut() -> u64,
}

/// The machine behind one use of a technique.
#[derive(Debug, Clone)]
pub(crate) enum Machine {
    Critique(CritiqueLoop),
    Search {
        search: Search,
        temperature: f64,
        /// One level, unscored (`b`, `technique branch`).
        branch: bool,
    },
    Judge {
        nodes: Vec<u64>,
    },
    Pair {
        a: u64,
        b: u64,
        /// ticket → (judge node, preference)
        prefs: BTreeMap<u64, (u64, Preference)>,
    },
    Propose {
        variant: String,
        /// Rewrites asked for.
        n: usize,
        /// The proposer's node, once it has ended.
        answer: Option<u64>,
    },
    /// Self-consistency: `n` seeded samples of an answer's request, children of the answer,
    /// tied together by their `sample_group` (`#`, `technique samples`).
    Samples {
        root: u64,
        group: String,
        /// The samples that have ended, in the order they did.
        nodes: Vec<u64>,
    },
}

/// One use of a technique: its machine, the model it asks, and the tickets still streaming.
#[derive(Debug, Clone)]
pub(crate) struct Technique {
    pub model: String,
    pub machine: Machine,
    pending: BTreeSet<u64>,
    concluded: bool,
}

/// How a technique ended, for the front end's summary. The session annotations (stop reason,
/// the best node's verdict) are already written when this is returned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Conclusion {
    Critique {
        reason: String,
        latest: u64,
        rounds: usize,
        revisions: usize,
    },
    Search {
        root: u64,
        branch: bool,
        status: String,
        /// Children grown under the root (branching).
        children: usize,
        /// The best node, its value and its check verdict (searching).
        best: Option<(u64, Option<f64>, &'static str)>,
    },
    Judge {
        nodes: Vec<u64>,
    },
    Pair {
        a: u64,
        b: u64,
        outcome: PairOutcome,
    },
    Propose {
        variant: String,
        /// The proposer's node (`None` if it never came back).
        answer: Option<u64>,
    },
    Samples {
        root: u64,
        /// Every sample node, finished or not.
        nodes: Vec<u64>,
        /// Their clusters (`None` when none finished).
        stability: Option<crate::eval::consistency::Stability>,
    },
}

impl Technique {
    fn new(model: String, machine: Machine) -> Technique {
        Technique {
            model,
            machine,
            pending: BTreeSet::new(),
            concluded: false,
        }
    }

    /// Refine `answer` for up to `rounds` rounds of critique and rewrite.
    pub fn critique(
        ctx: &mut Ctx,
        answer: &Node,
        rounds: usize,
        model: String,
    ) -> (Technique, Vec<Command>) {
        let (critique_loop, effects) = CritiqueLoop::start(answer.id, &answer.text, rounds);
        let mut t = Technique::new(model, Machine::Critique(critique_loop));
        let cmds = t.critique_effects(ctx, effects);
        (t, cmds)
    }

    /// Run a started search (or branching) whose first effects are `effects`.
    pub fn search(
        ctx: &mut Ctx,
        (search, effects): (Search, Vec<search::Effect>),
        temperature: f64,
        branch: bool,
        model: String,
    ) -> (Technique, Vec<Command>) {
        let machine = Machine::Search {
            search,
            temperature,
            branch,
        };
        let mut t = Technique::new(model, machine);
        let cmds = t.search_effects(ctx, effects);
        (t, cmds)
    }

    /// Judge each of `targets` on 1–10; a target without a task is skipped.
    pub fn judge(ctx: &mut Ctx, targets: &[u64], model: String) -> (Technique, Vec<Command>) {
        let mut t = Technique::new(
            model,
            Machine::Judge {
                nodes: targets.to_vec(),
            },
        );
        let mut cmds = Vec::new();
        for (i, &target) in targets.iter().enumerate() {
            let text = ctx.session.node(target).map(|n| n.text.clone());
            let (Some(task), Some(text)) = (requests::task_of(ctx.session, target), text) else {
                continue;
            };
            let req = requests::judge_request(&task, &text, &ctx.techniques.judge_rubric);
            cmds.push(t.spawn(i as u64 + 1, target, NodeKind::Judge, req, vec![]));
        }
        (t, cmds)
    }

    /// Judge `a` against `b` in both orders.
    pub fn pair(
        ctx: &mut Ctx,
        a: u64,
        b: u64,
        model: String,
    ) -> Result<(Technique, Vec<Command>), String> {
        let task =
            requests::task_of(ctx.session, a).ok_or_else(|| format!("node {a} has no task"))?;
        let text = |id: u64| {
            ctx.session
                .node(id)
                .map(|n| n.text.clone())
                .unwrap_or_default()
        };
        let (ta, tb) = (text(a), text(b));
        let rubric = &ctx.techniques.judge_rubric;
        let fwd = requests::pairwise_request(&task, &ta, &tb, rubric);
        let rev = requests::pairwise_request(&task, &tb, &ta, rubric);
        let mut t = Technique::new(
            model,
            Machine::Pair {
                a,
                b,
                prefs: BTreeMap::new(),
            },
        );
        let cmds = vec![
            t.spawn(
                1,
                a,
                NodeKind::Judge,
                fwd,
                vec![("pair", format!("A=#{a} B=#{b}"))],
            ),
            t.spawn(
                2,
                a,
                NodeKind::Judge,
                rev,
                vec![("pair", format!("A=#{b} B=#{a}"))],
            ),
        ];
        Ok((t, cmds))
    }

    /// Ask for `n` rewrites of `variant`, hanging the proposal off `parent`.
    pub fn propose(
        variant: &Variant,
        parent: u64,
        n: usize,
        model: String,
    ) -> (Technique, Vec<Command>) {
        let mut t = Technique::new(
            model,
            Machine::Propose {
                variant: variant.name.clone(),
                n,
                answer: None,
            },
        );
        let req = requests::propose_request(variant, n, &variant.sampling);
        let cmd = t.spawn(
            1,
            parent,
            NodeKind::VariantProposal,
            req,
            vec![("n", n.to_string())],
        );
        (t, vec![cmd])
    }

    /// `n` samples of `answer`'s request with seeds `seed`, `seed + 1`, … (the request's own
    /// seed, else a fresh one). A request at temperature 0 (or unset: greedy) would give `n`
    /// copies of one answer, so it samples at `temperature` instead.
    pub fn samples(
        ctx: &mut Ctx,
        answer: &Node,
        n: usize,
        temperature: f64,
        model: String,
    ) -> (Technique, Vec<Command>) {
        use crate::eval::consistency::{GROUP_KEY, INDEX_KEY};
        let group = format!("{}/{}/#{}", answer.variant, answer.case, answer.id);
        let mut t = Technique::new(
            model,
            Machine::Samples {
                root: answer.id,
                group: group.clone(),
                nodes: Vec::new(),
            },
        );
        let mut request = answer.request.clone();
        if request.sampling.temperature.is_none_or(|x| x <= 0.0) {
            request.sampling.temperature = Some(temperature);
        }
        let base = request.sampling.seed.unwrap_or_else(|| (ctx.seed)());
        let cmds = (0..n)
            .map(|k| {
                let mut req = request.clone();
                req.sampling.seed = Some(base.wrapping_add(k as u64));
                t.spawn(
                    k as u64 + 1,
                    answer.id,
                    NodeKind::Answer,
                    req,
                    vec![(GROUP_KEY, group.clone()), (INDEX_KEY, k.to_string())],
                )
            })
            .collect();
        (t, cmds)
    }

    /// Whether the machine has stopped asking (streams it cancelled may still be ending).
    pub fn stopped(&self) -> bool {
        match &self.machine {
            Machine::Critique(critique_loop) => !critique_loop.is_running(),
            Machine::Search { search, .. } => !search.is_running(),
            _ => self.pending.is_empty(),
        }
    }

    /// The newest revision of a critique, else `None`.
    pub fn latest_revision(&self) -> Option<u64> {
        match &self.machine {
            Machine::Critique(critique_loop) => Some(critique_loop.latest()),
            _ => None,
        }
    }

    /// The node of `ticket` ended (done, failed or cancelled): annotate it (a rewrite's checks,
    /// a value sample's label) and feed it to the machine.
    pub fn finished(&mut self, ctx: &mut Ctx, ticket: u64, node: u64) -> Vec<Command> {
        annotate_finished(ctx, node);
        self.pending.remove(&ticket);
        let Some(n) = ctx.session.node(node).cloned() else {
            return Vec::new();
        };
        let ok = n.status == NodeStatus::Done;
        let error = n
            .error
            .clone()
            .unwrap_or_else(|| format!("{:?}", n.status).to_lowercase());
        match &mut self.machine {
            Machine::Critique(critique_loop) => {
                let msg = if ok {
                    critique::Msg::Done {
                        ticket,
                        node: n.id,
                        text: n.text.clone(),
                        passed: n.passed(),
                    }
                } else {
                    critique::Msg::Failed { ticket, error }
                };
                let effects = critique_loop.update(msg);
                self.critique_effects(ctx, effects)
            }
            Machine::Search { search, .. } => {
                let msg = if ok {
                    search::Msg::Done {
                        ticket,
                        node: n.id,
                        text: n.text.clone(),
                    }
                } else {
                    search::Msg::Failed { ticket, error }
                };
                let effects = search.update(msg);
                self.search_effects(ctx, effects)
            }
            Machine::Judge { .. } => {
                if ok {
                    record_verdict(ctx.session, n.id);
                }
                Vec::new()
            }
            Machine::Pair { prefs, .. } => {
                let p = if ok {
                    judge::parse_preference(&n.text)
                } else {
                    Preference::Unparseable(error)
                };
                if let Some(m) = ctx.session.node_mut(n.id) {
                    m.meta.insert("verdict".into(), preference_label(&p).into());
                }
                prefs.insert(ticket, (n.id, p));
                if self.pending.is_empty() {
                    let outcome = pair_outcome(prefs);
                    for (id, _) in prefs.values() {
                        if let Some(m) = ctx.session.node_mut(*id) {
                            m.meta
                                .insert("pair_outcome".into(), outcome.as_str().into());
                        }
                    }
                }
                Vec::new()
            }
            Machine::Propose { answer, .. } => {
                *answer = Some(n.id);
                Vec::new()
            }
            Machine::Samples { nodes, .. } => {
                nodes.push(n.id);
                Vec::new()
            }
        }
    }

    /// Send a message to a running search (prune, unprune, promote from the tree view).
    pub fn steer(&mut self, ctx: &mut Ctx, msg: search::Msg) -> Vec<Command> {
        match &mut self.machine {
            Machine::Search { search, .. } => {
                let effects = search.update(msg);
                self.search_effects(ctx, effects)
            }
            _ => Vec::new(),
        }
    }

    /// Stop: the machine cancels what it has in flight, and every other pending ticket is
    /// cancelled too.
    pub fn cancel(&mut self, ctx: &mut Ctx) -> Vec<Command> {
        let mut cmds = match &mut self.machine {
            Machine::Critique(critique_loop) => {
                let e = critique_loop.update(critique::Msg::Cancel);
                self.critique_effects(ctx, e)
            }
            Machine::Search { search, .. } => {
                let e = search.update(search::Msg::Cancel);
                self.search_effects(ctx, e)
            }
            _ => Vec::new(),
        };
        let asked: BTreeSet<u64> = cmds
            .iter()
            .filter_map(|c| match c {
                Command::Cancel { ticket } => Some(*ticket),
                Command::Spawn(_) => None,
            })
            .collect();
        cmds.extend(
            self.pending
                .iter()
                .filter(|t| !asked.contains(t))
                .map(|&ticket| Command::Cancel { ticket }),
        );
        cmds
    }

    /// Once [`stopped`](Self::stopped): write the closing annotations (a critique's stop
    /// reason, a search's best-node verdict) and say how it ended. `None` before that, and
    /// after the first call.
    pub fn conclude(&mut self, ctx: &mut Ctx) -> Option<Conclusion> {
        if self.concluded || !self.stopped() {
            return None;
        }
        self.concluded = true;
        Some(match &self.machine {
            Machine::Critique(critique_loop) => {
                let reason = critique_loop
                    .stop_reason()
                    .map(|r| r.describe())
                    .unwrap_or_else(|| "running".into());
                let latest = critique_loop.latest();
                if let Some(n) = ctx.session.node_mut(latest) {
                    n.meta.insert("stop_reason".into(), reason.clone());
                }
                let (chain, _) = critique::revisions(ctx.session, latest);
                Conclusion::Critique {
                    reason,
                    latest,
                    rounds: critique_loop.round,
                    revisions: chain.len(),
                }
            }
            Machine::Search { search, branch, .. } => {
                let root = search.root;
                let children = ctx
                    .session
                    .nodes
                    .iter()
                    .filter(|n| n.parent == Some(root) && n.meta.contains_key("search"))
                    .count();
                let best = match (branch, search.best()) {
                    (false, Some(b)) => {
                        let verdict = best_verdict(ctx, b);
                        if let Some(n) = ctx.session.node_mut(b) {
                            n.meta.insert("best".into(), verdict.into());
                        }
                        Some((b, search.score(b), verdict))
                    }
                    _ => None,
                };
                Conclusion::Search {
                    root,
                    branch: *branch,
                    status: search.status.describe().to_string(),
                    children,
                    best,
                }
            }
            Machine::Judge { nodes } => Conclusion::Judge {
                nodes: nodes.clone(),
            },
            Machine::Pair { a, b, prefs } => Conclusion::Pair {
                a: *a,
                b: *b,
                outcome: pair_outcome(prefs),
            },
            Machine::Propose {
                variant, answer, ..
            } => Conclusion::Propose {
                variant: variant.clone(),
                answer: *answer,
            },
            Machine::Samples { root, group, .. } => {
                let members = sample_nodes(ctx.session, *root, group);
                Conclusion::Samples {
                    root: *root,
                    nodes: members.iter().map(|n| n.id).collect(),
                    stability: crate::eval::consistency::stability(&members),
                }
            }
        })
    }

    fn spawn(
        &mut self,
        ticket: u64,
        parent: u64,
        kind: NodeKind,
        request: ChatRequest,
        meta: Vec<(&'static str, String)>,
    ) -> Command {
        self.pending.insert(ticket);
        Command::Spawn(Box::new(Spawn {
            ticket,
            parent,
            kind,
            model: self.model.clone(),
            request,
            meta,
        }))
    }

    fn critique_effects(&mut self, ctx: &mut Ctx, effects: Vec<critique::Effect>) -> Vec<Command> {
        let mut out = Vec::new();
        let mut queue: VecDeque<critique::Effect> = effects.into();
        while let Some(e) = queue.pop_front() {
            let Machine::Critique(critique_loop) = &self.machine else {
                break;
            };
            let round = critique_loop.round.to_string();
            let text = |s: &Session, id: u64| s.node(id).map(|n| n.text.clone());
            let failed = match e {
                critique::Effect::Critique { ticket, answer } => {
                    match (
                        requests::task_of(ctx.session, answer),
                        text(ctx.session, answer),
                    ) {
                        (Some(task), Some(text)) => {
                            let req =
                                requests::critique_request(&task, &text, &ctx.techniques.critique);
                            out.push(self.spawn(
                                ticket,
                                answer,
                                NodeKind::Critique,
                                req,
                                vec![("round", round)],
                            ));
                            None
                        }
                        _ => Some(ticket),
                    }
                }
                critique::Effect::Rewrite {
                    ticket,
                    answer,
                    critique,
                } => match (
                    requests::task_of(ctx.session, answer),
                    text(ctx.session, answer),
                    text(ctx.session, critique),
                ) {
                    (Some(task), Some(text), Some(crit)) => {
                        let req =
                            requests::rewrite_request(&task, &text, &crit, &ctx.techniques.rewrite);
                        out.push(self.spawn(
                            ticket,
                            critique,
                            NodeKind::Rewrite,
                            req,
                            vec![("round", round)],
                        ));
                        None
                    }
                    _ => Some(ticket),
                },
                critique::Effect::Cancel { ticket } => {
                    out.push(Command::Cancel { ticket });
                    None
                }
            };
            if let (Some(ticket), Machine::Critique(critique_loop)) = (failed, &mut self.machine) {
                queue.extend(critique_loop.update(critique::Msg::Failed {
                    ticket,
                    error: "the node has no task to critique against".into(),
                }));
            }
        }
        out
    }

    fn search_effects(&mut self, ctx: &mut Ctx, effects: Vec<search::Effect>) -> Vec<Command> {
        let mut out = Vec::new();
        let mut queue: VecDeque<search::Effect> = effects.into();
        while let Some(e) = queue.pop_front() {
            let Machine::Search {
                search,
                temperature,
                ..
            } = &self.machine
            else {
                break;
            };
            let (mode, temperature) = (search.mode, *temperature);
            let params = format!(
                "k={} beam={} depth={} value_samples={}",
                search.params.k,
                search.params.beam,
                search.params.depth,
                search.params.value_samples
            );
            let failed = match e {
                search::Effect::Expand {
                    ticket,
                    parent,
                    level,
                } => {
                    let meta = vec![("search", params), ("level", level.to_string())];
                    let seed = (ctx.seed)();
                    match (mode, ctx.session.node(parent).cloned()) {
                        (_, None) => Some(ticket),
                        (ExpandAs::Answer, Some(p)) => {
                            let req = requests::branch_answer_request(&p, temperature, seed);
                            out.push(self.spawn(ticket, parent, NodeKind::Answer, req, meta));
                            None
                        }
                        (ExpandAs::Step, Some(_)) => match requests::task_of(ctx.session, parent) {
                            Some(task) => {
                                let steps = requests::steps_to(ctx.session, parent);
                                let req = requests::step_request(
                                    &task,
                                    &steps,
                                    &ctx.techniques.step,
                                    temperature,
                                    seed,
                                );
                                out.push(self.spawn(ticket, parent, NodeKind::Thought, req, meta));
                                None
                            }
                            None => Some(ticket),
                        },
                    }
                }
                search::Effect::Value { ticket, node } => {
                    match requests::task_of(ctx.session, node) {
                        Some(task) => {
                            let steps = requests::steps_to(ctx.session, node);
                            let seed = (ctx.seed)();
                            let req =
                                requests::value_request(&task, &steps, &ctx.techniques.value, seed);
                            out.push(self.spawn(ticket, node, NodeKind::Value, req, vec![]));
                            None
                        }
                        None => Some(ticket),
                    }
                }
                search::Effect::Score {
                    node,
                    score,
                    samples,
                } => {
                    if let Some(n) = ctx.session.node_mut(node) {
                        n.score = score;
                        n.meta.insert("value_samples".into(), samples);
                        if score.is_none() {
                            n.meta.insert("value".into(), "unparseable".into());
                        }
                    }
                    None
                }
                search::Effect::Kept { level, nodes } => {
                    for n in nodes {
                        if let Some(m) = ctx.session.node_mut(n) {
                            m.meta.insert("beam_level".into(), level.to_string());
                        }
                    }
                    None
                }
                search::Effect::Cancel { ticket } => {
                    out.push(Command::Cancel { ticket });
                    None
                }
            };
            if let (Some(ticket), Machine::Search { search, .. }) = (failed, &mut self.machine) {
                queue.extend(search.update(search::Msg::Failed {
                    ticket,
                    error: "the node has no task".into(),
                }));
            }
        }
        out
    }
}

/// A finished technique node's own annotations: a rewrite is checked against its case's
/// expectations, a value sample gets its label and score.
fn annotate_finished(ctx: &mut Ctx, id: u64) {
    let expect = ctx
        .session
        .node(id)
        .and_then(|n| ctx.cases.iter().find(|c| c.name == n.case))
        .map(|c| c.expect.clone())
        .unwrap_or_default();
    let Some(n) = ctx.session.node_mut(id) else {
        return;
    };
    if n.status != NodeStatus::Done {
        return;
    }
    let sample =
        n.kind == NodeKind::Answer && n.meta.contains_key(crate::eval::consistency::GROUP_KEY);
    if (n.kind == NodeKind::Rewrite || sample) && !expect.is_empty() {
        n.checks = expect.check(&n.text);
    }
    if n.kind == NodeKind::Value {
        let label = value::parse_label(&n.text);
        n.meta.insert(
            "label".into(),
            label.map_or("unparseable".into(), |l| l.as_str().into()),
        );
        n.score = label.map(|l| l.score());
    }
}

/// The samples of `root` in `group`, in session order.
pub(crate) fn sample_nodes<'a>(session: &'a Session, root: u64, group: &str) -> Vec<&'a Node> {
    session
        .nodes
        .iter()
        .filter(|n| {
            n.parent == Some(root)
                && n.meta
                    .get(crate::eval::consistency::GROUP_KEY)
                    .map(String::as_str)
                    == Some(group)
        })
        .collect()
}

/// The 1–10 verdict a judge node gave, written onto it (`score`, `verdict`, `reason`).
fn record_verdict(session: &mut Session, id: u64) {
    let Some(n) = session.node_mut(id) else {
        return;
    };
    let verdict = judge::parse_verdict(&n.text);
    n.score = verdict.score();
    match verdict {
        Verdict::Scored { reason, .. } => {
            n.meta.insert("verdict".into(), "scored".into());
            n.meta.insert("reason".into(), reason);
        }
        Verdict::Unparseable(_) => {
            n.meta.insert("verdict".into(), "unparseable".into());
        }
    }
}

/// `A`, `B`, `tie` or `unparseable`.
pub(crate) fn preference_label(p: &Preference) -> &'static str {
    match p {
        Preference::A => "A",
        Preference::B => "B",
        Preference::Tie => "tie",
        Preference::Unparseable(_) => "unparseable",
    }
}

fn pair_outcome(prefs: &BTreeMap<u64, (u64, Preference)>) -> PairOutcome {
    match (prefs.get(&1), prefs.get(&2)) {
        (Some((_, f)), Some((_, r))) => judge::combine(f, r),
        _ => PairOutcome::Unknown,
    }
}

/// Whether the steps to the best node pass its case's expectations.
fn best_verdict(ctx: &Ctx, best: u64) -> &'static str {
    let expect = ctx
        .session
        .node(best)
        .and_then(|n| ctx.cases.iter().find(|c| c.name == n.case))
        .map(|c| c.expect.clone())
        .unwrap_or_default();
    let checks = expect.check(&requests::steps_to(ctx.session, best).join("\n"));
    match (checks.is_empty(), checks.iter().all(|c| c.pass)) {
        (true, _) => "no expectations",
        (false, true) => "PASS",
        (false, false) => "FAIL",
    }
}

/// The variants a proposer's answer (`text`) makes of `base`: each accepted block becomes
/// `base / intent`, made unique against `existing` and each other; with a reason for every
/// rejected block. A template must keep `base`'s placeholders and use only variables the
/// cases define.
pub(crate) fn proposed_variants(
    base: &Variant,
    text: &str,
    cases: &[Case],
    existing: &[Variant],
) -> (Vec<Variant>, Vec<String>) {
    let used: Vec<String> = template::variables(&base.template)
        .into_iter()
        .map(|x| x.name)
        .collect();
    let allowed: Vec<String> = cases
        .iter()
        .flat_map(|c| c.vars.keys().cloned())
        .chain(used.iter().cloned())
        .collect();
    let (props, rejected) = requests::parse_proposals(text, &used, &allowed);
    let mut added: Vec<Variant> = Vec::new();
    let taken =
        |name: &str, added: &[Variant]| existing.iter().chain(added.iter()).any(|v| v.name == name);
    for p in &props {
        let stem = format!("{} / {}", base.name, p.intent);
        let mut name = stem.clone();
        let mut i = 2;
        while taken(&name, &added) {
            name = format!("{stem} {i}");
            i += 1;
        }
        let mut v = base.clone();
        v.name = name;
        v.template = p.template.clone();
        if p.system.is_some() {
            v.system = p.system.clone();
        }
        v.generated = Some(p.intent.clone());
        added.push(v);
    }
    (added, rejected)
}

/// Note on the proposal node how many variants were accepted and why the rest were not.
pub(crate) fn record_proposals(
    session: &mut Session,
    node: u64,
    accepted: usize,
    rejected: &[String],
) {
    if let Some(n) = session.node_mut(node) {
        n.meta.insert("accepted".into(), accepted.to_string());
        if !rejected.is_empty() {
            n.meta.insert("rejected".into(), rejected.join("; "));
        }
    }
}
