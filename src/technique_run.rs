//! `promptloom technique ...`: the technique state machines (self-critique, branching,
//! tree-of-thought search, judge, variant proposals) driven headlessly against real backends.
//!
//! This is the same split the TUI uses: the machines in `state::critique` and
//! `state::search` decide what to request; this driver builds each request from the session
//! (`prompt::techniques`), creates the node, streams it, saves the session atomically after
//! every finished node, and feeds the outcome back. Ctrl-C cancels what is in flight through
//! the machine, waits for the cancelled nodes, saves, and exits with 130.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::TechniqueCmd;
use crate::config::Config;
use crate::error::InputError;
use crate::eval::judge::{self, PairOutcome, Verdict};
use crate::llm::{BackendRegistry, ChatRequest, FinishReason};
use crate::prompt::techniques::{self, SearchParams, Techniques};
use crate::prompt::{self, render};
use crate::sanitize::visible;
use crate::state::critique::{self, CritiqueLoop};
use crate::state::search::{self, Mode, Search};
use crate::state::session::{Node, NodeKind, NodeStatus, Session};
use crate::store;

const EXIT_INTERRUPTED: u8 = 130;

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn seed() -> u64 {
    u64::from(rand::random::<u32>())
}

/// Streams requests as session nodes and saves the session after each one finishes.
struct Runner {
    registry: Arc<BackendRegistry>,
    session: Session,
    path: PathBuf,
    tx: mpsc::UnboundedSender<(u64, Node)>,
    rx: mpsc::UnboundedReceiver<(u64, Node)>,
    /// ticket → (node id, cancel token)
    in_flight: BTreeMap<u64, (u64, CancellationToken)>,
    interrupted: bool,
}

impl Runner {
    fn new(config: Config, session: Session, path: PathBuf) -> Runner {
        let (tx, rx) = mpsc::unbounded_channel();
        Runner {
            registry: Arc::new(BackendRegistry::new(config)),
            session,
            path,
            tx,
            rx,
            in_flight: BTreeMap::new(),
            interrupted: false,
        }
    }

    fn save(&mut self) -> anyhow::Result<()> {
        for (k, v) in self.registry.identities() {
            self.session.models.insert(k, v);
        }
        store::save_atomic(&self.path, &self.session)
            .with_context(|| format!("saving {}", self.path.display()))
    }

    /// Create a node for `request` under `parent` and start streaming it; returns its id.
    fn spawn(
        &mut self,
        ticket: u64,
        parent: u64,
        kind: NodeKind,
        model: &str,
        request: ChatRequest,
        meta: &[(&str, String)],
    ) -> u64 {
        let mut node = self
            .session
            .push_child(parent, kind, model, request, now_rfc3339(), meta)
            .clone();
        let id = node.id;
        let cancel = CancellationToken::new();
        self.in_flight.insert(ticket, (id, cancel.clone()));
        let backend = self.registry.get(model);
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let node = match backend {
                Ok(b) => crate::headless::stream_into_node(b.as_ref(), node, &cancel, |_| {}).await,
                Err(e) => {
                    node.status = NodeStatus::Error;
                    node.finish_reason = Some(FinishReason::Error);
                    node.error = Some(e);
                    node
                }
            };
            let _ = tx.send((ticket, node));
        });
        id
    }

    fn cancel(&mut self, ticket: u64) {
        if let Some((_, c)) = self.in_flight.get(&ticket) {
            c.cancel();
        }
    }

    /// The next finished request (ticket and node), or `None` on Ctrl-C (first time only).
    async fn next(&mut self) -> anyhow::Result<Option<(u64, Node)>> {
        let got = tokio::select! {
            got = self.rx.recv() => got,
            _ = tokio::signal::ctrl_c(), if !self.interrupted => {
                self.interrupted = true;
                return Ok(None);
            }
        };
        let (ticket, node) = got.ok_or_else(|| anyhow!("request channel closed"))?;
        self.in_flight.remove(&ticket);
        if let Some(slot) = self.session.node_mut(node.id) {
            *slot = node.clone();
        }
        self.save()?;
        Ok(Some((ticket, node)))
    }

    /// Wait for everything still in flight (after a cancel).
    async fn drain(&mut self) -> anyhow::Result<()> {
        while !self.in_flight.is_empty() {
            if self.next().await?.is_none() {
                let tickets: Vec<u64> = self.in_flight.keys().copied().collect();
                for t in tickets {
                    self.cancel(t);
                }
            }
        }
        Ok(())
    }

    fn set_meta(&mut self, node: u64, key: &str, value: String) {
        if let Some(n) = self.session.node_mut(node) {
            n.meta.insert(key.into(), value);
        }
    }
}

// ---- helpers --------------------------------------------------------------------------

fn load_session(path: &Path) -> anyhow::Result<Session> {
    Ok(store::load(path)?)
}

/// The technique settings for a session: from its prompt file when that still loads.
fn session_techniques(session: &Session, config: &Config) -> Techniques {
    session
        .prompt_file
        .as_deref()
        .and_then(|p| prompt::load(Path::new(p), &config.model_names(), &config.default_model).ok())
        .map(|f| f.techniques)
        .unwrap_or_default()
}

fn check_model(config: &Config, model: &str, at: &Path) -> Result<(), InputError> {
    if config.model(model).is_some() {
        Ok(())
    } else {
        Err(InputError::plain(
            at,
            format!(
                "--model {model:?} is not a configured model; configured: {}",
                config.model_names().join(", ")
            ),
        ))
    }
}

fn finished_node<'a>(session: &'a Session, id: u64, path: &Path) -> Result<&'a Node, InputError> {
    let n = session
        .node(id)
        .ok_or_else(|| InputError::plain(path, format!("the session has no node {id}")))?;
    if n.status != NodeStatus::Done {
        return Err(InputError::plain(
            path,
            format!(
                "node {id} is {:?}, not done; pick a finished node",
                n.status
            ),
        ));
    }
    Ok(n)
}

fn preview(text: &str, max: usize) -> String {
    let flat = visible(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let mut s: String = flat.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

fn node_line(n: &Node) -> String {
    let score = n.score.map(|s| format!(" [{s:.2}]")).unwrap_or_default();
    let status = match n.status {
        NodeStatus::Done => String::new(),
        s => format!(" ({s:?})").to_lowercase(),
    };
    let pruned = if n.meta.contains_key("beam_level") {
        " *kept*"
    } else {
        ""
    };
    format!(
        "#{} {}{score}{status}{pruned}: {}",
        n.id,
        n.kind.as_str(),
        preview(&n.text, 70)
    )
}

/// The subtree under `root` as indented lines, value nodes folded into their parent's score.
fn tree(session: &Session, root: u64) -> String {
    fn walk(s: &Session, id: u64, depth: usize, out: &mut String) {
        let Some(n) = s.node(id) else { return };
        out.push_str(&"  ".repeat(depth));
        out.push_str(&node_line(n));
        out.push('\n');
        for c in s.nodes.iter().filter(|c| c.parent == Some(id)) {
            if c.kind != NodeKind::Value && depth < 64 {
                walk(s, c.id, depth + 1, out);
            }
        }
    }
    let mut out = String::new();
    walk(session, root, 0, &mut out);
    out
}

/// A word diff on one line: `[-removed-]{+added+}`, with added/removed word counts.
fn diff_line(old: &str, new: &str) -> String {
    use crate::state::diff::{word_counts, word_diff, SpanKind};
    let spans = word_diff(old, new);
    let mut s = String::new();
    for sp in &spans {
        match sp.kind {
            SpanKind::Equal => s.push_str(&sp.text),
            SpanKind::Added => s.push_str(&format!("{{+{}+}}", sp.text.trim())),
            SpanKind::Removed => s.push_str(&format!("[-{}-]", sp.text.trim())),
        }
    }
    let s = preview(&s, 2000);
    let (added, removed) = word_counts(&spans);
    format!("{s} (+{added} −{removed} words)")
}

/// `A`, `B`, `tie` or `unparseable` (with a preview of what the judge said when `raw`).
fn pref_label(p: &judge::Preference, raw: bool) -> String {
    match p {
        judge::Preference::A => "A".into(),
        judge::Preference::B => "B".into(),
        judge::Preference::Tie => "tie".into(),
        judge::Preference::Unparseable(t) if raw => format!("unparseable: {}", preview(t, 60)),
        judge::Preference::Unparseable(_) => "unparseable".into(),
    }
}

fn finish(runner: &Runner) -> ExitCode {
    eprintln!("session saved to {}", runner.path.display());
    if runner.interrupted {
        eprintln!("interrupted: what finished is in the session");
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    }
}

// ---- subcommands ------------------------------------------------------------------------

pub(crate) async fn run(config: Config, cmd: TechniqueCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TechniqueCmd::Critique {
            session,
            node,
            rounds,
            model,
        } => critique(config, &session, node, rounds, model).await,
        TechniqueCmd::Branch {
            session,
            node,
            k,
            step,
            model,
        } => branch(config, &session, node, k, step, model).await,
        TechniqueCmd::Search {
            file,
            case,
            variant,
            k,
            beam,
            depth,
            samples,
            out,
            model,
        } => {
            search_cmd(
                config,
                &file,
                &case,
                &variant,
                [k, beam, depth, samples],
                out,
                model,
            )
            .await
        }
        TechniqueCmd::Judge {
            session,
            node,
            case,
            pair,
            model,
        } => judge_cmd(config, &session, node, case, pair, model).await,
        TechniqueCmd::Propose {
            file,
            variant,
            n,
            out,
            model,
        } => propose(config, &file, &variant, n, out, model).await,
    }
}

async fn critique(
    config: Config,
    path: &Path,
    answer: u64,
    rounds: Option<usize>,
    model: Option<String>,
) -> anyhow::Result<ExitCode> {
    let session = load_session(path)?;
    let tech = session_techniques(&session, &config);
    let node = finished_node(&session, answer, path)?.clone();
    let model = model
        .or(tech.critic_model.clone())
        .unwrap_or(node.model.clone());
    check_model(&config, &model, path)?;
    let expect = session
        .cases
        .iter()
        .find(|c| c.name == node.case)
        .map(|c| c.expect.clone())
        .unwrap_or_default();
    let task = techniques::task_of(&session, answer)
        .ok_or_else(|| anyhow!("node {answer} has no task to critique against"))?;
    let rounds = rounds.unwrap_or(tech.critique_rounds).clamp(1, 10);
    let mut runner = Runner::new(config, session, path.to_path_buf());
    let (mut l, mut effects) = CritiqueLoop::start(answer, &node.text, rounds);
    loop {
        for e in std::mem::take(&mut effects) {
            match e {
                critique::Effect::Critique { ticket, answer } => {
                    let text = runner
                        .session
                        .node(answer)
                        .map(|n| n.text.clone())
                        .unwrap_or_default();
                    let req = techniques::critique_request(&task, &text, &tech.critique);
                    let round = l.round.to_string();
                    runner.spawn(
                        ticket,
                        answer,
                        NodeKind::Critique,
                        &model,
                        req,
                        &[("round", round)],
                    );
                }
                critique::Effect::Rewrite {
                    ticket,
                    answer,
                    critique,
                } => {
                    let text = runner
                        .session
                        .node(answer)
                        .map(|n| n.text.clone())
                        .unwrap_or_default();
                    let crit = runner
                        .session
                        .node(critique)
                        .map(|n| n.text.clone())
                        .unwrap_or_default();
                    let req = techniques::rewrite_request(&task, &text, &crit, &tech.rewrite);
                    let round = l.round.to_string();
                    runner.spawn(
                        ticket,
                        critique,
                        NodeKind::Rewrite,
                        &model,
                        req,
                        &[("round", round)],
                    );
                }
                critique::Effect::Cancel { ticket } => runner.cancel(ticket),
            }
        }
        if !l.is_running() {
            break;
        }
        match runner.next().await? {
            None => effects = l.update(critique::Msg::Cancel),
            Some((ticket, n)) => {
                effects = match n.status {
                    NodeStatus::Done => {
                        let passed = if n.kind == NodeKind::Rewrite && !expect.is_empty() {
                            let checks = expect.check(&n.text);
                            let pass = checks.iter().all(|c| c.pass);
                            if let Some(m) = runner.session.node_mut(n.id) {
                                m.checks = checks;
                            }
                            Some(pass)
                        } else {
                            None
                        };
                        l.update(critique::Msg::Done {
                            ticket,
                            node: n.id,
                            text: n.text.clone(),
                            passed,
                        })
                    }
                    _ => l.update(critique::Msg::Failed {
                        ticket,
                        error: n.error.clone().unwrap_or_else(|| "cancelled".into()),
                    }),
                }
            }
        }
    }
    runner.drain().await?;
    let reason = l
        .stop_reason()
        .map(|r| r.describe())
        .unwrap_or_else(|| "running".into());
    let latest = l.latest();
    runner.set_meta(latest, "stop_reason", reason.clone());
    runner.save()?;
    print!("{}", tree(&runner.session, answer));
    let (chain, _) = critique::revisions(&runner.session, latest);
    for w in chain.windows(2) {
        let old = runner
            .session
            .node(w[0])
            .map(|n| n.text.as_str())
            .unwrap_or("");
        let new = runner
            .session
            .node(w[1])
            .map(|n| n.text.as_str())
            .unwrap_or("");
        println!("diff #{} → #{}: {}", w[0], w[1], diff_line(old, new));
    }
    println!(
        "stopped: {reason} after {} round(s); latest revision #{latest} ({})",
        l.round,
        critique::revision_label(&runner.session, latest)
    );
    Ok(finish(&runner))
}

/// Drive a search (or a branching) to the end.
async fn drive_search(
    runner: &mut Runner,
    mut s: Search,
    mut effects: Vec<search::Effect>,
    tech: &Techniques,
    model: &str,
    temperature: f64,
) -> anyhow::Result<Search> {
    let params = format!(
        "k={} beam={} depth={} value_samples={}",
        s.params.k, s.params.beam, s.params.depth, s.params.value_samples
    );
    let mut values: BTreeMap<u64, u64> = BTreeMap::new();
    loop {
        for e in std::mem::take(&mut effects) {
            match e {
                search::Effect::Expand {
                    ticket,
                    parent,
                    level,
                } => {
                    let Some(p) = runner.session.node(parent).cloned() else {
                        continue;
                    };
                    let meta = [("search", params.clone()), ("level", level.to_string())];
                    match s.mode {
                        Mode::Answer => {
                            let req = techniques::branch_answer_request(&p, temperature, seed());
                            runner.spawn(ticket, parent, NodeKind::Answer, model, req, &meta);
                        }
                        Mode::Step => {
                            let task = techniques::task_of(&runner.session, parent)
                                .ok_or_else(|| anyhow!("node {parent} has no task"))?;
                            let steps = techniques::steps_to(&runner.session, parent);
                            let req = techniques::step_request(
                                &task,
                                &steps,
                                &tech.step,
                                temperature,
                                seed(),
                            );
                            runner.spawn(ticket, parent, NodeKind::Thought, model, req, &meta);
                        }
                    }
                }
                search::Effect::Value { ticket, node } => {
                    let task = techniques::task_of(&runner.session, node)
                        .ok_or_else(|| anyhow!("node {node} has no task"))?;
                    let steps = techniques::steps_to(&runner.session, node);
                    let req = techniques::value_request(&task, &steps, &tech.value, seed());
                    let id = runner.spawn(ticket, node, NodeKind::Value, model, req, &[]);
                    values.insert(ticket, id);
                }
                search::Effect::Score {
                    node,
                    score,
                    samples,
                } => {
                    if let Some(n) = runner.session.node_mut(node) {
                        n.score = score;
                        n.meta.insert("value_samples".into(), samples);
                        if score.is_none() {
                            n.meta.insert("value".into(), "unparseable".into());
                        }
                    }
                }
                search::Effect::Kept { level, nodes } => {
                    for n in nodes {
                        runner.set_meta(n, "beam_level", level.to_string());
                    }
                }
                search::Effect::Cancel { ticket } => runner.cancel(ticket),
            }
        }
        if !s.is_running() {
            break;
        }
        match runner.next().await? {
            None => effects = s.update(search::Msg::Cancel),
            Some((ticket, n)) => {
                if let Some(v) = values.remove(&ticket) {
                    if n.status == NodeStatus::Done {
                        let label = crate::eval::value::parse_label(&n.text);
                        runner.set_meta(
                            v,
                            "label",
                            label.map_or("unparseable".into(), |l| l.as_str().into()),
                        );
                        if let Some(l) = label {
                            if let Some(m) = runner.session.node_mut(v) {
                                m.score = Some(l.score());
                            }
                        }
                    }
                }
                effects = match n.status {
                    NodeStatus::Done => s.update(search::Msg::Done {
                        ticket,
                        node: n.id,
                        text: n.text.clone(),
                    }),
                    _ => s.update(search::Msg::Failed {
                        ticket,
                        error: n.error.clone().unwrap_or_else(|| "cancelled".into()),
                    }),
                };
            }
        }
    }
    runner.drain().await?;
    runner.save()?;
    Ok(s)
}

async fn branch(
    config: Config,
    path: &Path,
    node: u64,
    k: Option<usize>,
    step: bool,
    model: Option<String>,
) -> anyhow::Result<ExitCode> {
    let session = load_session(path)?;
    let tech = session_techniques(&session, &config);
    let n = finished_node(&session, node, path)?.clone();
    let model = model.unwrap_or(n.model.clone());
    check_model(&config, &model, path)?;
    let k = k.unwrap_or(tech.branch_k).clamp(1, 16);
    let mode = if step { Mode::Step } else { Mode::Answer };
    let mut runner = Runner::new(config, session, path.to_path_buf());
    let (s, effects) = Search::branch(node, k, mode);
    let s = drive_search(
        &mut runner,
        s,
        effects,
        &tech,
        &model,
        tech.branch_temperature,
    )
    .await?;
    print!("{}", tree(&runner.session, node));
    println!("branched #{node} into {k}: {}", s.status.describe());
    Ok(finish(&runner))
}

async fn search_cmd(
    config: Config,
    file: &Path,
    case: &str,
    variant: &str,
    [k, beam, depth, samples]: [Option<usize>; 4],
    out: Option<PathBuf>,
    model: Option<String>,
) -> anyhow::Result<ExitCode> {
    let pf = prompt::load(file, &config.model_names(), &config.default_model)?;
    let v = pf.variant(variant).ok_or_else(|| {
        InputError::plain(file, format!("--variant {variant:?} is not in the file"))
    })?;
    let c = pf
        .case(case)
        .ok_or_else(|| InputError::plain(file, format!("--case {case:?} is not in the file")))?;
    let model = model.unwrap_or(v.model.clone());
    check_model(&config, &model, file)?;
    let tech = pf.techniques.clone();
    let params = SearchParams {
        k: k.unwrap_or(tech.search.k).clamp(1, 16),
        beam: beam.unwrap_or(tech.search.beam).clamp(1, 16),
        depth: depth.unwrap_or(tech.search.depth).clamp(1, 10),
        value_samples: samples.unwrap_or(tech.search.value_samples).min(10),
    };
    let out = out.unwrap_or_else(|| {
        let dir = store::default_sessions_dir(&config.dirs.sessions_dir());
        store::new_session_path(
            &dir,
            "search",
            &chrono::Local::now().format("%Y%m%d-%H%M%S").to_string(),
        )
    });
    let mut session = Session::new(&pf.title, now_rfc3339(), Some(file.display().to_string()));
    session.variants = pf.variants.clone();
    session.cases = pf.cases.clone();
    // The root holds the task; the search grows thoughts under it.
    let mut root = Node::start(
        1,
        None,
        NodeKind::Thought,
        &v.name,
        &c.name,
        &model,
        render::request(v, &c.vars),
        now_rfc3339(),
    );
    root.status = NodeStatus::Done;
    root.meta.insert("search_root".into(), "true".into());
    session.nodes.push(root);
    let mut runner = Runner::new(config, session, out);
    runner.save()?;
    let (s, effects) = Search::start(1, params, Mode::Step);
    let s = drive_search(
        &mut runner,
        s,
        effects,
        &tech,
        &model,
        tech.branch_temperature,
    )
    .await?;
    // Check the best path's last step against the case.
    if let Some(best) = s.best() {
        let checks = c
            .expect
            .check(&techniques::steps_to(&runner.session, best).join("\n"));
        let verdict = match (checks.is_empty(), checks.iter().all(|c| c.pass)) {
            (true, _) => "no expectations",
            (false, true) => "PASS",
            (false, false) => "FAIL",
        };
        runner.set_meta(best, "best", verdict.into());
        runner.save()?;
        print!("{}", tree(&runner.session, 1));
        println!(
            "search {}: best #{best} score {} ({verdict})",
            s.status.describe(),
            s.score(best).map_or("none".into(), |x| format!("{x:.2}"))
        );
    } else {
        print!("{}", tree(&runner.session, 1));
        println!("search {}: no best node", s.status.describe());
    }
    Ok(finish(&runner))
}

async fn judge_cmd(
    config: Config,
    path: &Path,
    node: Option<u64>,
    case: Option<String>,
    pair: Vec<u64>,
    model: Option<String>,
) -> anyhow::Result<ExitCode> {
    let session = load_session(path)?;
    let tech = session_techniques(&session, &config);
    let targets: Vec<u64> = match (node, case, pair.as_slice()) {
        (Some(n), None, []) => vec![finished_node(&session, n, path)?.id],
        (None, Some(c), []) => {
            let v: Vec<u64> = session
                .nodes
                .iter()
                .filter(|n| {
                    n.case == c
                        && n.status == NodeStatus::Done
                        && matches!(n.kind, NodeKind::Answer | NodeKind::Rewrite)
                        && !n.meta.contains_key("search_root")
                })
                .map(|n| n.id)
                .collect();
            if v.is_empty() {
                bail!(InputError::plain(
                    path,
                    format!("no finished answers for case {c:?}")
                ));
            }
            v
        }
        (None, None, [a, b]) => {
            finished_node(&session, *a, path)?;
            finished_node(&session, *b, path)?;
            vec![*a, *b]
        }
        _ => bail!(InputError::plain(
            path,
            "give exactly one of --node N, --case NAME or --pair A B"
        )),
    };
    let first = targets[0];
    let model = model
        .or(tech.judge_model.clone())
        .or_else(|| session.node(first).map(|n| n.model.clone()))
        .unwrap_or(config.default_model.clone());
    check_model(&config, &model, path)?;
    let task =
        techniques::task_of(&session, first).ok_or_else(|| anyhow!("node {first} has no task"))?;
    let mut runner = Runner::new(config, session, path.to_path_buf());
    let text = |r: &Runner, id: u64| {
        r.session
            .node(id)
            .map(|n| n.text.clone())
            .unwrap_or_default()
    };

    if pair.len() == 2 {
        let (a, b) = (pair[0], pair[1]);
        let fwd = techniques::pairwise_request(
            &task,
            &text(&runner, a),
            &text(&runner, b),
            &tech.judge_rubric,
        );
        let rev = techniques::pairwise_request(
            &task,
            &text(&runner, b),
            &text(&runner, a),
            &tech.judge_rubric,
        );
        runner.spawn(
            1,
            a,
            NodeKind::Judge,
            &model,
            fwd,
            &[("pair", format!("A=#{a} B=#{b}"))],
        );
        runner.spawn(
            2,
            a,
            NodeKind::Judge,
            &model,
            rev,
            &[("pair", format!("A=#{b} B=#{a}"))],
        );
        let mut prefs: BTreeMap<u64, (u64, judge::Preference)> = BTreeMap::new();
        while !runner.in_flight.is_empty() {
            match runner.next().await? {
                None => {
                    for t in [1, 2] {
                        runner.cancel(t);
                    }
                }
                Some((t, n)) => {
                    let p = judge::parse_preference(&n.text);
                    runner.set_meta(n.id, "verdict", pref_label(&p, false));
                    prefs.insert(t, (n.id, p));
                }
            }
        }
        let outcome = match (prefs.get(&1), prefs.get(&2)) {
            (Some((_, f)), Some((_, s))) => judge::combine(f, s),
            _ => PairOutcome::Unknown,
        };
        let winner = match outcome {
            PairOutcome::First => format!("#{a}"),
            PairOutcome::Second => format!("#{b}"),
            _ => "-".into(),
        };
        for (id, _) in prefs.values() {
            runner.set_meta(*id, "pair_outcome", outcome.as_str().into());
        }
        runner.save()?;
        let shown = |t: u64| prefs.get(&t).map_or("-".into(), |p| pref_label(&p.1, true));
        println!("#{a} shown first: {}", shown(1));
        println!("#{b} shown first: {}", shown(2));
        println!("pairwise: {} (winner {winner})", outcome.as_str());
        if outcome == PairOutcome::Inconsistent {
            println!("position bias: the judge's preference flipped with the order");
        }
        return Ok(finish(&runner));
    }

    for (i, &t) in targets.iter().enumerate() {
        let req = techniques::judge_request(&task, &text(&runner, t), &tech.judge_rubric);
        runner.spawn(i as u64 + 1, t, NodeKind::Judge, &model, req, &[]);
    }
    let mut lines = BTreeMap::new();
    let mut scores = Vec::new();
    while !runner.in_flight.is_empty() {
        match runner.next().await? {
            None => {
                let ts: Vec<u64> = runner.in_flight.keys().copied().collect();
                for t in ts {
                    runner.cancel(t);
                }
            }
            Some((_, n)) => {
                let judged = n.parent.unwrap_or(0);
                let line = if n.status != NodeStatus::Done {
                    format!(
                        "#{judged}: judge {:?}: {}",
                        n.status,
                        n.error.clone().unwrap_or_default()
                    )
                } else {
                    let verdict = judge::parse_verdict(&n.text);
                    scores.extend(verdict.score());
                    match verdict {
                        Verdict::Scored { score, reason } => {
                            if let Some(m) = runner.session.node_mut(n.id) {
                                m.score = Some(score);
                                m.meta.insert("verdict".into(), "scored".into());
                                m.meta.insert("reason".into(), reason.clone());
                            }
                            format!("#{judged}: {score}/10 — {}", preview(&reason, 100))
                        }
                        Verdict::Unparseable(raw) => {
                            runner.set_meta(n.id, "verdict", "unparseable".into());
                            format!("#{judged}: unparseable judge answer: {}", preview(&raw, 80))
                        }
                    }
                };
                lines.insert(judged, line);
            }
        }
    }
    runner.save()?;
    for l in lines.values() {
        println!("{l}");
    }
    if scores.len() > 1 {
        let mean = scores.iter().sum::<f64>() / scores.len() as f64;
        println!(
            "mean judge score {mean:.1} over {} scored of {} judged",
            scores.len(),
            lines.len()
        );
    }
    Ok(finish(&runner))
}

async fn propose(
    config: Config,
    file: &Path,
    variant: &str,
    n: Option<usize>,
    out: Option<PathBuf>,
    model: Option<String>,
) -> anyhow::Result<ExitCode> {
    let pf = prompt::load(file, &config.model_names(), &config.default_model)?;
    let v = pf
        .variant(variant)
        .ok_or_else(|| {
            InputError::plain(file, format!("--variant {variant:?} is not in the file"))
        })?
        .clone();
    let model = model
        .or(pf.techniques.proposer_model.clone())
        .unwrap_or(v.model.clone());
    check_model(&config, &model, file)?;
    let n = n.unwrap_or(pf.techniques.proposals).clamp(1, 8);
    let out = out.unwrap_or_else(|| {
        let dir = store::default_sessions_dir(&config.dirs.sessions_dir());
        store::new_session_path(
            &dir,
            "propose",
            &chrono::Local::now().format("%Y%m%d-%H%M%S").to_string(),
        )
    });
    let mut session = if out.exists() {
        load_session(&out)?
    } else {
        let mut s = Session::new(&pf.title, now_rfc3339(), Some(file.display().to_string()));
        s.variants = pf.variants.clone();
        s.cases = pf.cases.clone();
        s
    };
    // A parent for the proposal: the variant's request on the first case, not sent.
    let id = session.next_node_id();
    let case = pf.cases.first().cloned();
    let vars = case.as_ref().map(|c| c.vars.clone()).unwrap_or_default();
    let mut anchor = Node::start(
        id,
        None,
        NodeKind::Answer,
        &v.name,
        case.as_ref().map_or("", |c| c.name.as_str()),
        &v.model,
        render::request(&v, &vars),
        now_rfc3339(),
    );
    anchor.status = NodeStatus::Done;
    anchor.meta.insert("not_sent".into(), "true".into());
    session.nodes.push(anchor);
    let mut runner = Runner::new(config, session, out);
    let req = techniques::propose_request(&v, n, &v.sampling);
    runner.spawn(
        1,
        id,
        NodeKind::VariantProposal,
        &model,
        req,
        &[("n", n.to_string())],
    );
    let node = loop {
        match runner.next().await? {
            None => runner.cancel(1),
            Some((_, node)) => break node,
        }
    };
    if node.status != NodeStatus::Done {
        runner.save()?;
        bail!(
            "the proposer did not finish: {}",
            node.error.unwrap_or_else(|| format!("{:?}", node.status))
        );
    }
    let used: Vec<String> = prompt::template::variables(&v.template)
        .into_iter()
        .map(|x| x.name)
        .collect();
    let allowed: Vec<String> = pf
        .cases
        .iter()
        .flat_map(|c| c.vars.keys().cloned())
        .chain(used.iter().cloned())
        .collect();
    let (props, rejected) = techniques::parse_proposals(&node.text, &used, &allowed);
    let mut added = Vec::new();
    for p in &props {
        let mut name = format!("{} / {}", v.name, p.intent);
        let mut i = 2;
        while runner.session.variants.iter().any(|x| x.name == name) {
            name = format!("{} / {} {i}", v.name, p.intent);
            i += 1;
        }
        let mut nv = v.clone();
        nv.name = name.clone();
        nv.template = p.template.clone();
        if p.system.is_some() {
            nv.system = p.system.clone();
        }
        nv.generated = Some(p.intent.clone());
        runner.session.variants.push(nv);
        added.push(name);
    }
    runner.set_meta(node.id, "accepted", added.len().to_string());
    if !rejected.is_empty() {
        runner.set_meta(node.id, "rejected", rejected.join("; "));
    }
    runner.save()?;
    for p in &props {
        println!("[[variant]]\n# generated: {}", p.intent);
        println!("name = {:?}", format!("{} / {}", v.name, p.intent));
        if let Some(s) = &p.system {
            println!("system = {s:?}");
        }
        println!("template = {:?}\ngenerated = {:?}\n", p.template, p.intent);
    }
    println!(
        "{} proposal(s) accepted, {} rejected",
        props.len(),
        rejected.len()
    );
    for r in &rejected {
        println!("  rejected {r}");
    }
    Ok(finish(&runner))
}
