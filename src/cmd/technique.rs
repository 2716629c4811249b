//! `promptloom technique ...`: the technique state machines (self-critique, branching,
//! tree-of-thought search, judge, variant proposals) driven headlessly against real backends.
//!
//! The techniques themselves are [`crate::technique`], the same core the TUI drives: this
//! runner carries out a technique's commands (each spawn becomes a node streamed on its own
//! task), saves the session atomically after every finished node, and hands the node back.
//! Ctrl-C cancels the technique, waits for the cancelled nodes, saves, and exits with 130.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::InputError;
use crate::eval::judge::{self, PairOutcome};
use crate::llm::BackendRegistry;
use crate::prompt::techniques::{SearchParams, Techniques};
use crate::prompt::{self, render, Case};
use crate::sanitize::one_line;
use crate::state::critique;
use crate::state::search::{ExpandAs, Search};
use crate::state::session::{Node, NodeKind, NodeStatus, Session};
use crate::store;
use crate::technique::{self, requests, Command, Conclusion, Ctx, Spawn, Technique};

/// `promptloom technique …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TechniqueCommand {
    /// Critique a node and rewrite it from the critique, repeating up to --rounds times.
    Critique {
        session: PathBuf,
        #[arg(long)]
        node: u64,
        /// Rounds (default: the prompt file's critique_rounds, else 3).
        #[arg(long)]
        rounds: Option<usize>,
        /// The critic (default: the prompt file's critic_model, else the answer's model).
        #[arg(long)]
        model: Option<String>,
    },
    /// Sample k alternative children of a node at a raised temperature.
    Branch {
        session: PathBuf,
        #[arg(long)]
        node: u64,
        #[arg(short, long)]
        k: Option<usize>,
        /// Next reasoning steps continuing from the node's text (thoughts), not whole answers.
        #[arg(long)]
        step: bool,
        #[arg(long)]
        model: Option<String>,
    },
    /// Self-consistency: N seeded samples of a node's request (at the branching temperature
    /// when the node's own is greedy), clustered: agreement, pass rate, answers and counts.
    Samples {
        session: PathBuf,
        #[arg(long)]
        node: u64,
        /// Samples (default: the variant's `samples`, else 5; at most 64).
        #[arg(short, long)]
        n: Option<usize>,
        #[arg(long)]
        model: Option<String>,
    },
    /// Breadth-first tree-of-thought search on one case of a prompt file.
    Search {
        file: PathBuf,
        #[arg(long)]
        case: String,
        #[arg(long)]
        variant: String,
        /// Thoughts per frontier node.
        #[arg(short, long)]
        k: Option<usize>,
        /// Beam width.
        #[arg(short, long)]
        beam: Option<usize>,
        /// Depth.
        #[arg(short, long)]
        depth: Option<usize>,
        /// Value prompts per thought.
        #[arg(long)]
        samples: Option<usize>,
        /// Session file to write.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        model: Option<String>,
    },
    /// Judge a node, every answer of a case, or a pair (both orders) with an LLM.
    Judge {
        session: PathBuf,
        #[arg(long)]
        node: Option<u64>,
        #[arg(long)]
        case: Option<String>,
        /// Two node ids to compare; asked in both orders to expose position bias.
        #[arg(long, num_args = 2, value_names = ["A", "B"])]
        pair: Vec<u64>,
        #[arg(long)]
        model: Option<String>,
    },
    /// Ask a model for N rewrites of a variant with stated intents.
    Propose {
        file: PathBuf,
        #[arg(long)]
        variant: String,
        /// How many (1-8; default: the file's [techniques] proposals, else 3).
        #[arg(short)]
        n: Option<usize>,
        /// Session file to add the generated variants to (created if missing).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        model: Option<String>,
    },
}

const EXIT_INTERRUPTED: u8 = 130;

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `v`'s request with `vars` as a run would send it: its retrieval files read and the vectors
/// it ranks by (retrieval or example selection by embedding) fetched now, since the task a
/// search or a proposal starts from is what a run would send.
fn task_request(v: &prompt::Variant, vars: &BTreeMap<String, String>) -> crate::chat::ChatRequest {
    let indexes = render::indexes_for([v]);
    let vectors = crate::llm::embed::fetch(&render::embeddings_needed_for(v, vars, &indexes));
    render::request(v, vars, &vectors, &indexes)
}

/// Streams a technique's requests as session nodes and saves the session after each one
/// finishes.
struct Runner {
    registry: Arc<BackendRegistry>,
    session: Session,
    path: PathBuf,
    tx: mpsc::UnboundedSender<(u64, Node)>,
    rx: mpsc::UnboundedReceiver<(u64, Node)>,
    /// ticket → (node id, cancel token)
    in_flight: BTreeMap<u64, (u64, CancellationToken)>,
    /// ticket → node id, of everything spawned
    spawned: BTreeMap<u64, u64>,
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
            spawned: BTreeMap::new(),
            interrupted: false,
        }
    }

    fn save(&mut self) -> anyhow::Result<()> {
        for (k, v) in self.registry.identities() {
            self.session.models.insert(k, v);
        }
        self.session.prices.extend(self.registry.prices());
        store::save_atomic(&self.path, &self.session)
            .with_context(|| format!("saving {}", self.path.display()))
    }

    /// Create the node of `sp` and start streaming it.
    fn spawn(&mut self, sp: Spawn) {
        let mut node = self
            .session
            .push_child(
                sp.parent,
                sp.kind,
                &sp.model,
                sp.request,
                now_rfc3339(),
                &sp.meta,
            )
            .clone();
        let id = node.id;
        let ticket = sp.ticket;
        let cancel = CancellationToken::new();
        self.in_flight.insert(ticket, (id, cancel.clone()));
        self.spawned.insert(ticket, id);
        let backend = self.registry.get(&sp.model);
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let node = match backend {
                Ok(b) => {
                    super::run::stream_into_node(b.as_ref(), node, &cancel, None, |_| {}).await
                }
                Err(e) => {
                    node.finish(Err(e), &Default::default(), Default::default());
                    node
                }
            };
            let _ = tx.send((ticket, node));
        });
    }

    fn cancel(&mut self, ticket: u64) {
        if let Some((_, c)) = self.in_flight.get(&ticket) {
            c.cancel();
        }
    }

    fn cancel_all(&mut self) {
        let tickets: Vec<u64> = self.in_flight.keys().copied().collect();
        for t in tickets {
            self.cancel(t);
        }
    }

    /// The next finished request (ticket and node id, the node put in the session), or
    /// `None` on Ctrl-C (first time only).
    async fn next(&mut self) -> anyhow::Result<Option<(u64, u64)>> {
        let got = tokio::select! {
            got = self.rx.recv() => got,
            _ = tokio::signal::ctrl_c(), if !self.interrupted => {
                self.interrupted = true;
                return Ok(None);
            }
        };
        let (ticket, node) = got.ok_or_else(|| anyhow!("request channel closed"))?;
        self.in_flight.remove(&ticket);
        let id = node.id;
        if let Some(slot) = self.session.node_mut(id) {
            *slot = node;
        }
        Ok(Some((ticket, id)))
    }

    /// Start a technique on this runner's session.
    fn start<R>(
        &mut self,
        techniques: &Techniques,
        cases: &[Case],
        f: impl FnOnce(&mut Ctx) -> R,
    ) -> R {
        let mut seed = || u64::from(rand::random::<u32>());
        f(&mut Ctx {
            session: &mut self.session,
            techniques,
            cases,
            seed: &mut seed,
        })
    }
}

/// Drive `technique` to its end: carry out its commands, hand back each finished node and
/// save, cancel it on Ctrl-C, wait for what it cancelled; then its conclusion.
async fn drive(
    runner: &mut Runner,
    mut technique: Technique,
    mut commands: Vec<Command>,
    techniques: &Techniques,
    cases: &[Case],
) -> anyhow::Result<Conclusion> {
    let mut seed = || u64::from(rand::random::<u32>());
    let progress = crate::progress::Progress::new("technique", None);
    loop {
        progress.message(format!("{} in flight", runner.in_flight.len()));
        for c in std::mem::take(&mut commands) {
            match c {
                Command::Spawn(sp) => runner.spawn(*sp),
                Command::Cancel { ticket } => runner.cancel(ticket),
            }
        }
        let stopped = technique.stopped();
        if stopped && runner.in_flight.is_empty() {
            break;
        }
        let next = runner.next().await?;
        let mut ctx = Ctx {
            session: &mut runner.session,
            techniques,
            cases,
            seed: &mut seed,
        };
        match next {
            None if stopped => runner.cancel_all(),
            None => commands = technique.cancel(&mut ctx),
            Some((ticket, node)) => {
                if let Some(n) = ctx.session.node(node) {
                    progress.step(&format!(
                        "{} #{} ({} × {}): {:?}",
                        n.kind.as_str(),
                        n.id,
                        n.variant,
                        n.case,
                        n.status
                    ));
                }
                commands = technique.finished(&mut ctx, ticket, node);
                runner.save()?;
            }
        }
    }
    progress.finish();
    let mut ctx = Ctx {
        session: &mut runner.session,
        techniques,
        cases,
        seed: &mut seed,
    };
    let conclusion = technique
        .conclude(&mut ctx)
        .ok_or_else(|| anyhow!("the technique did not stop"))?;
    runner.save()?;
    Ok(conclusion)
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
        one_line(&n.text, 70)
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
    let s = one_line(&s, 2000);
    let (added, removed) = word_counts(&spans);
    format!("{s} (+{added} −{removed} words)")
}

/// `A`, `B`, `tie` or `unparseable` (with a preview of what the judge said when `raw`).
fn pref_label(p: &judge::Preference, raw: bool) -> String {
    match p {
        judge::Preference::A => "A".into(),
        judge::Preference::B => "B".into(),
        judge::Preference::Tie => "tie".into(),
        judge::Preference::Unparseable(t) if raw => format!("unparseable: {}", one_line(t, 60)),
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

pub(crate) async fn run(config: Config, cmd: TechniqueCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TechniqueCommand::Critique {
            session,
            node,
            rounds,
            model,
        } => critique(config, &session, node, rounds, model).await,
        TechniqueCommand::Branch {
            session,
            node,
            k,
            step,
            model,
        } => branch(config, &session, node, k, step, model).await,
        TechniqueCommand::Samples {
            session,
            node,
            n,
            model,
        } => samples(config, &session, node, n, model).await,
        TechniqueCommand::Search {
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
        TechniqueCommand::Judge {
            session,
            node,
            case,
            pair,
            model,
        } => judge_cmd(config, &session, node, case, pair, model).await,
        TechniqueCommand::Propose {
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
    if requests::task_of(&session, answer).is_none() {
        bail!("node {answer} has no task to critique against");
    }
    let rounds = rounds.unwrap_or(tech.critique_rounds).clamp(1, 10);
    let cases = session.cases.clone();
    let mut runner = Runner::new(config, session, path.to_path_buf());
    let (t, cmds) = runner.start(&tech, &cases, |ctx| {
        Technique::critique(ctx, &node, rounds, model)
    });
    let Conclusion::Critique {
        reason,
        latest,
        rounds,
        ..
    } = drive(&mut runner, t, cmds, &tech, &cases).await?
    else {
        bail!("a critique ended as another technique");
    };
    print!("{}", tree(&runner.session, answer));
    let (chain, _) = critique::revisions(&runner.session, latest);
    for w in chain.windows(2) {
        let text = |id: u64| runner.session.node(id).map_or("", |n| n.text.as_str());
        println!(
            "diff #{} → #{}: {}",
            w[0],
            w[1],
            diff_line(text(w[0]), text(w[1]))
        );
    }
    println!(
        "stopped: {reason} after {rounds} round(s); latest revision #{latest} ({})",
        critique::revision_label(&runner.session, latest)
    );
    Ok(finish(&runner))
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
    let mode = if step {
        ExpandAs::Step
    } else {
        ExpandAs::Answer
    };
    let cases = session.cases.clone();
    let mut runner = Runner::new(config, session, path.to_path_buf());
    let temperature = tech.branch_temperature;
    let (t, cmds) = runner.start(&tech, &cases, |ctx| {
        Technique::search(ctx, Search::branch(node, k, mode), temperature, true, model)
    });
    let status = match drive(&mut runner, t, cmds, &tech, &cases).await? {
        Conclusion::Search { status, .. } => status,
        _ => bail!("a branching ended as another technique"),
    };
    print!("{}", tree(&runner.session, node));
    println!("branched #{node} into {k}: {status}");
    Ok(finish(&runner))
}

async fn samples(
    config: Config,
    path: &Path,
    node: u64,
    n: Option<usize>,
    model: Option<String>,
) -> anyhow::Result<ExitCode> {
    let session = load_session(path)?;
    let tech = session_techniques(&session, &config);
    let root = finished_node(&session, node, path)?.clone();
    let model = model.unwrap_or(root.model.clone());
    check_model(&config, &model, path)?;
    let k = n
        .or_else(|| {
            session
                .variants
                .iter()
                .find(|v| v.name == root.variant)
                .and_then(|v| v.sampling.samples)
        })
        .unwrap_or(5)
        .clamp(1, 64);
    let cases = session.cases.clone();
    let mut runner = Runner::new(config, session, path.to_path_buf());
    let temperature = tech.branch_temperature;
    let (t, cmds) = runner.start(&tech, &cases, |ctx| {
        Technique::samples(ctx, &root, k, temperature, model)
    });
    match drive(&mut runner, t, cmds, &tech, &cases).await? {
        Conclusion::Samples {
            stability: Some(st),
            ..
        } => println!(
            "samples of #{node}: {}",
            crate::eval::figures::describe_stability(&st)
        ),
        Conclusion::Samples { nodes, .. } => {
            println!("samples of #{node}: none of {} finished", nodes.len())
        }
        _ => bail!("sampling ended as another technique"),
    }
    print!("{}", tree(&runner.session, node));
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
        task_request(v, &c.vars),
        now_rfc3339(),
    );
    root.status = NodeStatus::Done;
    root.meta.insert("search_root".into(), "true".into());
    session.nodes.push(root);
    let cases = session.cases.clone();
    let mut runner = Runner::new(config, session, out);
    runner.save()?;
    let temperature = tech.branch_temperature;
    let (t, cmds) = runner.start(&tech, &cases, |ctx| {
        Technique::search(
            ctx,
            Search::start(1, params, ExpandAs::Step),
            temperature,
            false,
            model,
        )
    });
    let Conclusion::Search { status, best, .. } =
        drive(&mut runner, t, cmds, &tech, &cases).await?
    else {
        bail!("a search ended as another technique");
    };
    print!("{}", tree(&runner.session, 1));
    match best {
        Some((best, score, verdict)) => println!(
            "search {status}: best #{best} score {} ({verdict})",
            score.map_or("none".into(), |x| format!("{x:.2}"))
        ),
        None => println!("search {status}: no best node"),
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
    if requests::task_of(&session, first).is_none() {
        bail!("node {first} has no task");
    }
    let cases = session.cases.clone();
    let mut runner = Runner::new(config, session, path.to_path_buf());

    if let [a, b] = pair[..] {
        let (t, cmds) = runner
            .start(&tech, &cases, |ctx| Technique::pair(ctx, a, b, model))
            .map_err(|e| anyhow!(e))?;
        let outcome = match drive(&mut runner, t, cmds, &tech, &cases).await? {
            Conclusion::Pair { outcome, .. } => outcome,
            _ => bail!("a pairwise judgement ended as another technique"),
        };
        let winner = match outcome {
            PairOutcome::First => format!("#{a}"),
            PairOutcome::Second => format!("#{b}"),
            _ => "-".into(),
        };
        let shown = |ticket: u64| {
            runner
                .spawned
                .get(&ticket)
                .and_then(|id| runner.session.node(*id))
                .map_or("-".into(), |n| {
                    let p = if n.status == NodeStatus::Done {
                        judge::parse_preference(&n.text)
                    } else {
                        judge::Preference::Unparseable(n.error.clone().unwrap_or_default())
                    };
                    pref_label(&p, true)
                })
        };
        println!("#{a} shown first: {}", shown(1));
        println!("#{b} shown first: {}", shown(2));
        println!("pairwise: {} (winner {winner})", outcome.as_str());
        if outcome == PairOutcome::Inconsistent {
            println!("position bias: the judge's preference flipped with the order");
        }
        return Ok(finish(&runner));
    }

    let (t, cmds) = runner.start(&tech, &cases, |ctx| Technique::judge(ctx, &targets, model));
    drive(&mut runner, t, cmds, &tech, &cases).await?;
    let mut lines = BTreeMap::new();
    let mut scores = Vec::new();
    for id in runner.spawned.values() {
        let Some(n) = runner.session.node(*id) else {
            continue;
        };
        let judged = n.parent.unwrap_or(0);
        let line = if n.status != NodeStatus::Done {
            format!(
                "#{judged}: judge {:?}: {}",
                n.status,
                n.error.clone().unwrap_or_default()
            )
        } else if let Some(score) = n.score {
            scores.push(score);
            let reason = n.meta.get("reason").map_or("", String::as_str);
            format!("#{judged}: {score}/10 — {}", one_line(reason, 100))
        } else {
            format!(
                "#{judged}: unparseable judge answer: {}",
                one_line(&n.text, 80)
            )
        };
        lines.insert(judged, line);
    }
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
        task_request(&v, &vars),
        now_rfc3339(),
    );
    anchor.status = NodeStatus::Done;
    anchor.meta.insert("not_sent".into(), "true".into());
    session.nodes.push(anchor);
    let cases = session.cases.clone();
    let mut runner = Runner::new(config, session, out);
    let (t, cmds) = Technique::propose(&v, id, n, model);
    let answer = match drive(&mut runner, t, cmds, &pf.techniques, &cases).await? {
        Conclusion::Propose { answer, .. } => answer,
        _ => bail!("a proposal ended as another technique"),
    };
    let Some(node) = answer.and_then(|a| runner.session.node(a)).cloned() else {
        bail!("the proposer did not finish: cancelled");
    };
    if node.status != NodeStatus::Done {
        bail!(
            "the proposer did not finish: {}",
            node.error.unwrap_or_else(|| format!("{:?}", node.status))
        );
    }
    let (added, rejected) =
        technique::proposed_variants(&v, &node.text, &pf.cases, &runner.session.variants);
    technique::record_proposals(&mut runner.session, node.id, added.len(), &rejected);
    for nv in &added {
        println!(
            "[[variant]]\n# generated: {}",
            nv.generated.as_deref().unwrap_or("")
        );
        println!("name = {:?}", nv.name);
        if let Some(s) = &nv.system {
            println!("system = {s:?}");
        }
        println!(
            "template = {:?}\ngenerated = {:?}\n",
            nv.template,
            nv.generated.as_deref().unwrap_or("")
        );
    }
    println!(
        "{} proposal(s) accepted, {} rejected",
        added.len(),
        rejected.len()
    );
    for r in &rejected {
        println!("  rejected {r}");
    }
    runner.session.variants.extend(added);
    runner.save()?;
    Ok(finish(&runner))
}
