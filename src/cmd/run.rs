//! `promptloom run`: every variant × case of a prompt file, streamed concurrently, recorded in
//! a session file, summarised as a table (or JSON).
//!
//! The session is saved after every finished answer, so an interrupted run keeps what
//! finished; Ctrl-C cancels the streams in flight, saves, and exits with 130.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::chat::ToolCall;
use crate::config::Config;
use crate::error::InputError;
use crate::llm::{
    self, Backend, BackendRegistry, ChatRequest, FinishReason, OnCancel, StreamEvent,
};
use crate::progress::Progress;
use crate::prompt::retrieve::Indexes;
use crate::prompt::tools::ToolDef;
use crate::prompt::vectors::{EmbedWants, Vectors};
use crate::prompt::{self, render, Case, PromptFile, Variant};
use crate::sanitize::{one_line, visible};
use crate::state::session::{Node, NodeKind, NodeStatus, Session};
use crate::state::timing::StreamMeter;
use crate::state::tool_loop::{self, Answer, External, Next, Source};
use crate::state::versions;
use crate::store;
use crate::tool_run;

/// `promptloom run FILE`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    pub file: PathBuf,
    /// Run every variant on this configured model instead of the ones the file names.
    #[arg(long)]
    pub model: Option<String>,
    /// Session file to write (default: a new file in ./sessions/ when it exists, else in the
    /// data dir).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print results as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Only these cases (repeatable).
    #[arg(long = "case")]
    pub cases: Vec<String>,
    /// Only these variants (repeatable).
    #[arg(long = "variant")]
    pub variants: Vec<String>,
    /// Let `command` and `mcp` tools run without [tools.NAME] / [mcp.NAME] allow = true in
    /// the config (confirm = true is then not asked either).
    #[arg(long)]
    pub allow_tools: bool,
}

/// One variant × case to run.
#[derive(Debug, Clone)]
pub(crate) struct Trial {
    pub node_id: u64,
    pub variant: Variant,
    pub case: Case,
    pub request: ChatRequest,
    /// What was chosen for the request (retrieved chunks, selected examples).
    pub meta: std::collections::BTreeMap<String, String>,
}

/// Exit code when interrupted by Ctrl-C.
const EXIT_INTERRUPTED: u8 = 130;

/// The jobs for a prompt file, variants outermost, ids from 1. A variant with `samples = N`
/// gets N jobs per case, seeded `seed`, `seed + 1`, … (its own `seed`, else a random one)
/// and tied together by their `sample_group` annotation.
pub(crate) fn plan(file: &PromptFile, vectors: &Vectors, indexes: &Indexes) -> Vec<Trial> {
    let mut jobs = Vec::with_capacity(file.variants.len() * file.cases.len());
    for v in &file.variants {
        for c in &file.cases {
            let prepared = render::prepare(v, c, vectors, indexes);
            let samples = v.sampling.samples.unwrap_or(1).max(1);
            let base = v
                .sampling
                .seed
                .unwrap_or_else(|| u64::from(rand::random::<u32>()));
            for k in 0..samples {
                let mut request = prepared.request.clone();
                let mut meta = prepared.meta.clone();
                if samples > 1 {
                    request.sampling.seed = Some(base.wrapping_add(k as u64));
                    meta.insert(
                        crate::eval::consistency::GROUP_KEY.into(),
                        format!("{}/{}", v.name, c.name),
                    );
                    meta.insert(crate::eval::consistency::INDEX_KEY.into(), k.to_string());
                } else {
                    request = render::with_seed(request, base);
                }
                jobs.push(Trial {
                    node_id: jobs.len() as u64 + 1,
                    variant: v.clone(),
                    case: c.clone(),
                    request,
                    meta,
                });
            }
        }
    }
    jobs
}

/// What every variant × case renders with: the retrieval indexes (files read once) and the
/// vectors it ranks by (retrieval or example selection by embedding), fetched off the
/// runtime's threads, each text once. An unreadable file or a model that fails carries its
/// error, which fails the cells that needed it ([`render::prepare_error`]).
async fn inputs(file: &PromptFile) -> (Indexes, Vectors) {
    let indexes = render::indexes_for(&file.variants);
    let mut wants = EmbedWants::default();
    for v in &file.variants {
        for c in &file.cases {
            wants.merge(render::embeddings_needed(v, c, &indexes));
        }
    }
    if wants.is_empty() {
        return (indexes, Vectors::default());
    }
    (indexes, llm::embed::fetch_off_thread(wants).await)
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Apply `--model`, `--case` and `--variant`.
fn narrow(file: &mut PromptFile, args: &RunArgs, config: &Config) -> Result<(), InputError> {
    let arg_err = |msg: String| InputError::plain(&args.file, msg);
    if let Some(m) = &args.model {
        if config.model(m).is_none() {
            return Err(arg_err(format!(
                "--model {m:?} is not a configured model; configured: {}",
                config.model_names().join(", ")
            )));
        }
        for v in &mut file.variants {
            v.model = m.clone();
        }
    }
    if !args.cases.is_empty() {
        for c in &args.cases {
            if file.case(c).is_none() {
                return Err(arg_err(format!(
                    "--case {c:?} is not in the file; cases: {}",
                    file.cases
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        file.cases.retain(|c| args.cases.contains(&c.name));
    }
    if !args.variants.is_empty() {
        for v in &args.variants {
            if file.variant(v).is_none() {
                return Err(arg_err(format!(
                    "--variant {v:?} is not in the file; variants: {}",
                    file.variants
                        .iter()
                        .map(|v| v.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        file.variants.retain(|v| args.variants.contains(&v.name));
    }
    Ok(())
}

/// Run a prompt file headlessly.
pub(crate) async fn run(config: Config, args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut file = prompt::load(&args.file, &config.model_names(), &config.default_model)?;
    narrow(&mut file, &args, &config)?;
    let (indexes, vectors) = inputs(&file).await;
    let jobs = plan(&file, &vectors, &indexes);

    let out_path = match &args.out {
        Some(p) => p.clone(),
        None => {
            let dir = store::default_sessions_dir(&config.dirs.sessions_dir());
            let stem = file
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "session".into());
            store::new_session_path(
                &dir,
                &stem,
                &chrono::Local::now().format("%Y%m%d-%H%M%S").to_string(),
            )
        }
    };
    if out_path.exists() {
        // Never overwrite something that is not a session we can read back.
        store::load(&out_path).with_context(|| {
            format!(
                "{} exists and is not a readable session; refusing to overwrite it",
                out_path.display()
            )
        })?;
    }

    let mut session = Session::new(
        &file.title,
        now_rfc3339(),
        Some(file.path.display().to_string()),
    );
    session.variants = file.variants.clone();
    session.cases = file.cases.clone();
    // Each answer records the variant version it was made with.
    let at = now_rfc3339();
    let tags: BTreeMap<String, String> = file
        .variants
        .iter()
        .map(|v| (v.name.clone(), versions::record(&mut session, v, &at)))
        .collect();

    let tool_config = config.clone();
    let registry = Arc::new(BackendRegistry::new(config));
    let models: BTreeSet<&str> = file.variants.iter().map(|v| v.model.as_str()).collect();
    for m in &models {
        // Unbuildable backends fail their requests with the reason; start loading the rest now.
        if let Ok(b) = registry.get(m) {
            b.preload();
        }
    }

    let progress = Progress::new("run", Some(jobs.len() as u64));
    let cancel = CancellationToken::new();
    let semaphore = Arc::new(Semaphore::new(usize::from(args.concurrency)));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Vec<Node>>();
    let tools = Arc::new(ToolEnv {
        defs: file.tools.clone(),
        config: tool_config,
        allow_all: args.allow_tools,
        next_id: Arc::new(AtomicU64::new(jobs.len() as u64 + 1)),
    });
    for job in jobs.iter().cloned() {
        let backend = registry.get(&job.variant.model);
        let (cancel, semaphore, done_tx, progress, tools) = (
            cancel.clone(),
            semaphore.clone(),
            done_tx.clone(),
            progress.clone(),
            tools.clone(),
        );
        tokio::spawn(async move {
            let permit = tokio::select! {
                p = semaphore.acquire_owned() => p.ok(),
                _ = cancel.cancelled() => None,
            };
            let prep_error = crate::prompt::render::prepare_error(&job.meta);
            let nodes = match (permit, backend) {
                (None, _) => vec![cancelled_before_start(&job)],
                (Some(_), _) if prep_error.is_some() => {
                    vec![failed_before_start(&job, prep_error.unwrap_or_default())]
                }
                (Some(_permit), Ok(b)) => {
                    run_job(b.as_ref(), &job, &cancel, &progress, &tools).await
                }
                (Some(_), Err(e)) => vec![failed_before_start(&job, e)],
            };
            let _ = done_tx.send(nodes);
        });
    }
    drop(done_tx);

    let mut interrupted = false;
    let mut save_error = None;
    let mut received = 0;
    loop {
        tokio::select! {
            nodes = done_rx.recv() => {
                let Some(mut nodes) = nodes else { break };
                if let Some(t) = tags.get(nodes.first().map_or("", |n| n.variant.as_str())) {
                    for node in &mut nodes {
                        versions::tag_node(node, t.clone());
                    }
                }
                received += 1;
                // The job's last node is its final turn (the one the checks are on).
                if let Some(node) = nodes.last() {
                    progress.step(&format!(
                        "{} × {} on {}: {}",
                        visible(&node.variant),
                        visible(&node.case),
                        visible(&node.model),
                        verdict(node)
                    ));
                }
                session.nodes.extend(nodes);
                session.nodes.sort_by_key(|n| n.id);
                session.models = registry.identities();
                session.prices = registry.prices();
                if let Err(e) = store::save_atomic(&out_path, &session) {
                    save_error = Some(e);
                }
                if received == jobs.len() {
                    break;
                }
            }
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                progress.message("cancelling…".into());
                cancel.cancel();
            }
        }
    }
    progress.finish();
    // Save once more: the local model's hash may have arrived after the last node.
    session.models = registry.identities();
    session.prices = registry.prices();
    if let Err(e) = store::save_atomic(&out_path, &session) {
        save_error = Some(e);
    }

    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json_report(&session, &out_path))?
        );
    } else {
        print!("{}", table(&session));
    }
    let saved = save_error.is_none();
    match save_error {
        Some(e) => eprintln!("error: the session could not be saved: {e}"),
        None => eprintln!("session saved to {}", out_path.display()),
    }
    if interrupted {
        eprintln!("interrupted: answers that finished are in the session");
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    let ok = finals(&session).all(|n| n.status == NodeStatus::Done && n.passed() != Some(false));
    Ok(if ok && saved {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn base_node(job: &Trial) -> Node {
    let mut n = Node::start(
        job.node_id,
        None,
        NodeKind::Answer,
        &job.variant.name,
        &job.case.name,
        &job.variant.model,
        job.request.clone(),
        now_rfc3339(),
    );
    n.meta.extend(job.meta.clone());
    n
}

fn cancelled_before_start(job: &Trial) -> Node {
    let mut n = base_node(job);
    n.status = NodeStatus::Cancelled;
    n.finish_reason = Some(FinishReason::Cancelled);
    n
}

fn failed_before_start(job: &Trial, error: String) -> Node {
    let mut n = base_node(job);
    n.status = NodeStatus::Error;
    n.finish_reason = Some(FinishReason::Error);
    n.error = Some(error);
    n
}

/// What a job needs to answer tool calls.
pub(crate) struct ToolEnv {
    pub defs: Vec<ToolDef>,
    pub config: Config,
    pub allow_all: bool,
    /// Ids for the nodes a tool loop adds (every job's first node has its id from [`plan`]).
    pub next_id: Arc<AtomicU64>,
}

/// Stream one job to the end (or cancellation): its answer, and when the model calls tools,
/// every call, result and later turn ([`tool_loop`]), with the case's checks on the last
/// turn. The nodes come back in the order they were made, the job's own first.
async fn run_job(
    backend: &dyn Backend,
    job: &Trial,
    cancel: &CancellationToken,
    progress: &Progress,
    tools: &ToolEnv,
) -> Vec<Node> {
    let model = &job.variant.model;
    let mut local = Session::new("", String::new(), None);
    // `stop_on` ends a stream on the case's text checks; with tools offered a turn's text is
    // not the whole answer (the calls are checked too, on the last turn only), so it does not.
    let expect = Some(&job.case.expect).filter(|_| job.request.sampling.tools.is_empty());
    let (first, mut calls) = stream_turn(backend, base_node(job), cancel, expect, |n| {
        progress.message(format!("{model}: {n}"))
    })
    .await;
    let mut current = first.id;
    local.nodes.push(first);
    let mut rounds = 0;
    while let Some(node) = local.node(current) {
        if node.status != NodeStatus::Done {
            break;
        }
        let request = node.request.clone();
        match tool_loop::after_turn(&request, &calls, rounds) {
            Next::Done => break,
            Next::StepLimit(e) => {
                if let Some(n) = local.node_mut(current) {
                    n.status = NodeStatus::Error;
                    n.error = Some(e);
                }
                break;
            }
            Next::Answer => {}
        }
        let text = node.text.clone();
        if let Some(n) = local.node_mut(current) {
            n.finish_reason = Some(FinishReason::ToolCalls);
        }
        let mut parent = current;
        let mut results = Vec::with_capacity(calls.len());
        for call in &calls {
            let call_node = tool_loop::record_call(&mut local, parent, call, now_rfc3339());
            let t0 = Instant::now();
            let answer = tool_loop::answer_call(call, &request.sampling.tools, &tools.defs, |d| {
                tool_run::permission(&tools.config, tools.allow_all, d)
            });
            let (content, source) = match answer {
                Answer::Ready { content, source } => (content, source),
                Answer::Run(ext) => {
                    let source = match ext {
                        External::Command { .. } => Source::Command,
                        External::Mcp { .. } => Source::Mcp,
                    };
                    match tool_run::run_external(&tools.config, &ext).await {
                        Ok(out) => (out, source),
                        Err(e) => (format!("error: {e}"), Source::Error),
                    }
                }
                // Nobody can approve a call in a headless run.
                Answer::Confirm(_) => (
                    tool_loop::not_allowed(
                        &call.name,
                        "the config says confirm = true and a headless run cannot ask; approve it in the playground, or pass --allow-tools",
                    ),
                    Source::NotAllowed,
                ),
            };
            parent = tool_loop::record_result(
                &mut local,
                call_node,
                &content,
                source,
                t0.elapsed(),
                now_rfc3339(),
            );
            results.push((call.clone(), content));
        }
        rounds += 1;
        let next = tool_loop::next_request(&request, &text, &results);
        let turn = local
            .push_child(parent, NodeKind::Answer, model, next, now_rfc3339(), &[])
            .clone();
        local.nodes.pop();
        let (turn, more) = stream_turn(backend, turn, cancel, expect, |n| {
            progress.message(format!("{model}: {n}"))
        })
        .await;
        current = turn.id;
        calls = more;
        local.nodes.push(turn);
    }
    if let Some(last) = local.node(current) {
        if last.status == NodeStatus::Done {
            let mut checks = job.case.expect.check(&last.text);
            checks.extend(job.case.expect.check_calls(
                &tool_loop::calls_to(&local, current),
                &job.request.sampling.tools,
            ));
            if let Some(n) = local.node_mut(current) {
                n.checks = checks;
            }
        }
    }
    // A sampled case's answer is its conversation's last turn (the one the checks ran on).
    if current != job.node_id {
        use crate::eval::consistency::{GROUP_KEY, INDEX_KEY};
        for key in [GROUP_KEY, INDEX_KEY] {
            let v = local.node_mut(job.node_id).and_then(|n| n.meta.remove(key));
            if let (Some(v), Some(n)) = (v, local.node_mut(current)) {
                n.meta.insert(key.into(), v);
            }
        }
    }
    renumber(&mut local.nodes, job.node_id, &tools.next_id);
    local.nodes
}

/// Give every node but the job's first a session-wide id from `next`, keeping the links.
fn renumber(nodes: &mut [Node], first: u64, next: &AtomicU64) {
    let mut map = std::collections::HashMap::new();
    for n in nodes.iter_mut().filter(|n| n.id != first) {
        let id = next.fetch_add(1, Ordering::Relaxed);
        map.insert(n.id, id);
        n.id = id;
    }
    for n in nodes.iter_mut() {
        if let Some(p) = n.parent.and_then(|p| map.get(&p)) {
            n.parent = Some(*p);
        }
    }
}

/// [`stream_into_node`], also returning the tool calls the turn made.
async fn stream_turn(
    backend: &dyn Backend,
    node: Node,
    cancel: &CancellationToken,
    expect: Option<&crate::eval::expect::Expect>,
    on_notice: impl FnMut(String),
) -> (Node, Vec<ToolCall>) {
    let mut calls = Vec::new();
    let node = stream_with_calls(backend, node, cancel, expect, on_notice, &mut calls).await;
    (node, calls)
}

/// Stream `node.request` to the end (or until `cancel`), filling in the node's text, figures,
/// status, finish reason and error ([`Node::finish`]). Notices go to `on_notice`. With
/// `stop_on` in the request and `expect` given, the stream ends as soon as the checks are
/// decided ([`Node::decided_early`], finish reason `checks_decided`).
pub(crate) async fn stream_into_node(
    backend: &dyn Backend,
    node: Node,
    cancel: &CancellationToken,
    expect: Option<&crate::eval::expect::Expect>,
    on_notice: impl FnMut(String),
) -> Node {
    stream_with_calls(backend, node, cancel, expect, on_notice, &mut Vec::new()).await
}

async fn stream_with_calls(
    backend: &dyn Backend,
    mut node: Node,
    cancel: &CancellationToken,
    expect: Option<&crate::eval::expect::Expect>,
    mut on_notice: impl FnMut(String),
    calls: &mut Vec<ToolCall>,
) -> Node {
    let t0 = Instant::now();
    let handle = backend.start(node.request.clone());
    let mut meter = StreamMeter::default();
    let mut outcome: Result<FinishReason, String> = Ok(FinishReason::Cancelled);
    llm::pump(handle, cancel, OnCancel::Drain, |ev| {
        match ev {
            StreamEvent::Delta(d) => {
                meter.on_delta(t0.elapsed(), &d);
                node.text.push_str(&d);
                if expect.is_some_and(|e| node.decided_early(e)) {
                    outcome = Ok(FinishReason::ChecksDecided);
                    // Dropping the stream cancels the request.
                    return false;
                }
            }
            StreamEvent::Usage(u) => meter.on_usage(u),
            StreamEvent::Logprobs(t) => t.iter().for_each(|t| node.logprobs.push(t)),
            StreamEvent::Notice(n) => on_notice(n),
            StreamEvent::ToolCall(c) => calls.push(c),
            StreamEvent::Finished(r) => outcome = Ok(r),
            StreamEvent::Failed(e) => outcome = Err(e),
        }
        true
    })
    .await;
    node.finish(outcome, &meter.stats(), t0.elapsed());
    node
}

fn verdict(n: &Node) -> String {
    match n.status {
        NodeStatus::Error => "ERROR".into(),
        NodeStatus::Cancelled => "CANCELLED".into(),
        NodeStatus::Queued | NodeStatus::Streaming => "INCOMPLETE".into(),
        NodeStatus::Done => match n.passed() {
            None => "-".into(),
            Some(true) => "PASS".into(),
            Some(false) => {
                let failed: Vec<&str> = n
                    .checks
                    .iter()
                    .filter(|c| !c.pass)
                    .map(|c| c.kind.as_str())
                    .collect();
                format!("FAIL {}", failed.join(","))
            }
        },
    }
}

/// One sampled cell: agreement, the pass rate with its interval, the clusters with counts.
fn stability_line(cell: &str, nodes: &[&Node]) -> String {
    match crate::eval::consistency::stability(nodes) {
        Some(st) => format!(
            "{}: {}",
            visible(cell),
            crate::eval::figures::describe_stability(&st)
        ),
        None => format!("{}: {} samples, none finished", visible(cell), nodes.len()),
    }
}

/// Output tokens, `~N` when estimated.
fn tokens_cell(n: &Node) -> String {
    if n.tokens_approx() {
        format!("~{}", n.tokens_out)
    } else {
        n.tokens_out.to_string()
    }
}

fn usd_cell(v: Option<f64>) -> String {
    crate::eval::leaderboard::usd_cell(v)
}

fn opt_ms(v: Option<u64>) -> String {
    v.map(|x| format!("{x} ms")).unwrap_or_else(|| "-".into())
}

fn opt_rate(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
}

/// Per-variant figures.
struct VariantSummary {
    variant: String,
    answers: usize,
    passed: usize,
    checked: usize,
    errors: usize,
    /// Conversations whose case expects a tool call, and those where the right tool was called
    /// with the right (schema-valid) arguments.
    tool_expected: usize,
    tool_right: usize,
    mean_ttft_ms: Option<f64>,
    mean_tok_per_s: Option<f64>,
    mean_duration_ms: Option<f64>,
    /// All its answers' cost; `None` when one has an unpriced model.
    cost: Option<f64>,
}

impl VariantSummary {
    /// All the answers' cost over the passing ones.
    fn cost_per_pass(&self) -> Option<f64> {
        self.cost
            .filter(|_| self.passed > 0)
            .map(|c| c / self.passed as f64)
    }
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = xs.collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The nodes that end a conversation, the last turn of each job: an answer that did not end in calls the loop went on to
/// answer. A turn stopped at `max_tool_steps` ended in calls too, but it is the last one (its
/// status says the error).
fn finals(s: &Session) -> impl Iterator<Item = &Node> {
    s.nodes.iter().filter(|n| {
        n.kind == NodeKind::Answer
            && (n.finish_reason != Some(FinishReason::ToolCalls) || n.status != NodeStatus::Done)
    })
}

/// Every model turn (the `tool-call`/`tool-result` nodes between them cost nothing).
fn answers(s: &Session) -> impl Iterator<Item = &Node> {
    s.nodes.iter().filter(|n| n.kind == NodeKind::Answer)
}

/// What the conversation ending in `n` cost: its model turns on the way to `n`; `None` when
/// one has an unpriced model.
fn conversation_cost(s: &Session, n: &Node) -> Option<f64> {
    let mut sum = 0.0;
    let mut cur = Some(n.id);
    while let Some(id) = cur {
        let Some(t) = s.node(id) else { break };
        if t.kind == NodeKind::Answer {
            sum += t.cost(&s.prices)?;
        }
        cur = t.parent;
    }
    Some(sum)
}

/// The `tool` check of a final node, if its case has one.
fn tool_check(n: &Node) -> Option<bool> {
    n.checks.iter().find(|c| c.kind == "tool").map(|c| c.pass)
}

/// The calls made on the way to `n`, compactly: `get_current_weather({"location":"Boston"})`.
fn calls_text(s: &Session, n: &Node) -> String {
    let calls = tool_loop::calls_to(s, n.id);
    if calls.is_empty() {
        return "-".into();
    }
    calls
        .iter()
        .map(|c| format!("{}({})", c.name, c.arguments.trim()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn summaries(s: &Session) -> Vec<VariantSummary> {
    let mut names: Vec<&str> = Vec::new();
    for n in finals(s) {
        if !names.contains(&n.variant.as_str()) {
            names.push(&n.variant);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let nodes: Vec<&Node> = finals(s).filter(|n| n.variant == name).collect();
            VariantSummary {
                variant: name.to_string(),
                answers: nodes.len(),
                passed: nodes
                    .iter()
                    .filter(|n| n.status == NodeStatus::Done && n.passed() == Some(true))
                    .count(),
                checked: nodes.iter().filter(|n| n.passed().is_some()).count(),
                errors: nodes
                    .iter()
                    .filter(|n| n.status == NodeStatus::Error)
                    .count(),
                tool_expected: nodes.iter().filter(|n| tool_check(n).is_some()).count(),
                tool_right: nodes.iter().filter(|n| tool_check(n) == Some(true)).count(),
                mean_ttft_ms: mean(nodes.iter().filter_map(|n| n.ttft_ms).map(|x| x as f64)),
                mean_tok_per_s: mean(nodes.iter().filter_map(|n| n.tok_per_s)),
                mean_duration_ms: mean(
                    nodes.iter().filter_map(|n| n.duration_ms).map(|x| x as f64),
                ),
                // Every turn of its conversations, not only the last.
                cost: answers(s)
                    .filter(|n| n.variant == name)
                    .map(|n| n.cost(&s.prices))
                    .try_fold(0.0, |sum, c| c.map(|c| sum + c)),
            }
        })
        .collect()
}

/// Lay out rows as aligned columns.
fn columns(rows: &[Vec<String>]) -> String {
    use unicode_width::UnicodeWidthStr;
    let ncol = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..ncol)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.width())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(widths[i] - cell.width() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The human-readable report.
pub(crate) fn table(s: &Session) -> String {
    let with_tools = s.nodes.iter().any(|n| !n.request.sampling.tools.is_empty());
    let mut head = vec![
        "VARIANT", "CASE", "MODEL", "RESULT", "TOKENS", "TTFT", "TOK/S", "LATENCY", "COST",
        "ANSWER",
    ];
    if with_tools {
        head.push("CALLS");
    }
    let mut rows = vec![head.iter().map(|x| x.to_string()).collect::<Vec<_>>()];
    for n in finals(s) {
        let mut row = vec![
            n.variant.clone(),
            n.case.clone(),
            n.model.clone(),
            verdict(n),
            tokens_cell(n),
            opt_ms(n.ttft_ms),
            opt_rate(n.tok_per_s),
            opt_ms(n.duration_ms),
            usd_cell(conversation_cost(s, n)),
            one_line(&n.text, 60),
        ];
        if with_tools {
            row.push(one_line(&calls_text(s, n), 60));
        }
        rows.push(row);
    }
    let mut out = columns(&rows);
    out.push('\n');
    let mut head = vec![
        "VARIANT",
        "PASSED",
        "ERRORS",
        "MEAN TTFT",
        "MEAN TOK/S",
        "MEAN LATENCY",
        "COST",
        "COST/PASS",
    ];
    if with_tools {
        head.push("RIGHT CALLS");
    }
    let mut rows = vec![head.iter().map(|x| x.to_string()).collect::<Vec<_>>()];
    for v in summaries(s) {
        let per_pass = v.cost_per_pass();
        let mut row = vec![
            v.variant,
            format!("{}/{}", v.passed, v.checked),
            v.errors.to_string(),
            v.mean_ttft_ms
                .map(|x| format!("{x:.0} ms"))
                .unwrap_or_else(|| "-".into()),
            opt_rate(v.mean_tok_per_s),
            v.mean_duration_ms
                .map(|x| format!("{x:.0} ms"))
                .unwrap_or_else(|| "-".into()),
            usd_cell(v.cost),
            usd_cell(per_pass),
        ];
        if with_tools {
            row.push(if v.tool_expected == 0 {
                "-".into()
            } else {
                format!(
                    "{}/{} ({:.0}%)",
                    v.tool_right,
                    v.tool_expected,
                    100.0 * v.tool_right as f64 / v.tool_expected as f64
                )
            });
        }
        rows.push(row);
    }
    out.push_str(&columns(&rows));
    let groups = crate::eval::consistency::group_samples(s);
    if !groups.is_empty() {
        out.push('\n');
        for (cell, nodes) in &groups {
            out.push_str(&stability_line(cell, nodes));
            out.push('\n');
        }
    }
    let estimates: Vec<&str> = s.nodes.iter().filter_map(Node::tokens_estimate).collect();
    if estimates.contains(&"tokenizer") {
        out.push_str(
            "~: the backend sent no token count; counted with the model's tokenizer (configured `tokenizer`)\n",
        );
    }
    if estimates.contains(&"approx") {
        out.push_str(
            "~: the backend sent no token count; estimated from the text (about 4 characters a token)\n",
        );
    }
    if answers(s).any(|n| n.cost(&s.prices).is_none()) {
        out.push_str("COST -: the model has no price; set [models.NAME] price = { input = …, output = … } (dollars per million tokens)\n");
    }
    let problems: Vec<&Node> = finals(s)
        .filter(|n| n.error.is_some() || n.passed() == Some(false))
        .collect();
    if !problems.is_empty() {
        out.push('\n');
        for n in problems {
            if let Some(e) = &n.error {
                out.push_str(&format!(
                    "{} / {}: error: {}\n",
                    n.variant,
                    n.case,
                    visible(e)
                ));
            }
            for c in n.checks.iter().filter(|c| !c.pass) {
                out.push_str(&format!(
                    "{} / {}: {} failed: {}\n",
                    n.variant,
                    n.case,
                    c.kind,
                    visible(&c.detail)
                ));
            }
        }
    }
    out
}

/// The `tool-result` nodes on the way to `node`, oldest first.
fn tool_results_to(s: &Session, node: u64) -> Vec<&Node> {
    let mut out = Vec::new();
    let mut cur = Some(node);
    while let Some(id) = cur {
        let Some(n) = s.node(id) else { break };
        if n.kind == NodeKind::ToolResult {
            out.push(n);
        }
        cur = n.parent;
    }
    out.reverse();
    out
}

/// The answer's token probabilities for `--json`: `null` when the backend gave none.
fn logprobs_json(n: &Node) -> serde_json::Value {
    if n.logprobs.is_empty() {
        return serde_json::Value::Null;
    }
    n.logprobs
        .iter()
        .map(|t| {
            json!({
                "token": t.text,
                "logprob": t.logprob,
                "top": t.alternatives().map(|(a, lp)| json!([a, lp])).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// The `--json` report.
pub(crate) fn json_report(s: &Session, session_path: &Path) -> serde_json::Value {
    let results: Vec<serde_json::Value> = finals(s)
        .map(|n| {
            let calls: Vec<serde_json::Value> = tool_loop::calls_to(s, n.id)
                .iter()
                .map(|c| json!({"id": c.id, "name": c.name, "arguments": c.arguments}))
                .collect();
            let results: Vec<serde_json::Value> = tool_results_to(s, n.id)
                .iter()
                .map(|r| {
                    json!({
                        "name": r.meta.get("tool"),
                        "source": r.meta.get("source"),
                        "content": r.text,
                        "latency_ms": r.duration_ms,
                    })
                })
                .collect();
            json!({
                "tool_calls": calls,
                "tool_results": results,
                "node": n.id,
                "variant": n.variant,
                "case": n.case,
                "model": n.model,
                "status": n.status,
                "pass": n.passed(),
                "checks": n.checks,
                "text": n.text,
                "finish_reason": n.finish_reason,
                "error": n.error,
                "prompt_tokens": n.prompt_tokens,
                "tokens_out": n.tokens_out,
                "ttft_ms": n.ttft_ms,
                "tok_per_s": n.tok_per_s,
                "duration_ms": n.duration_ms,
                "tokens_approx": n.tokens_approx(),
                "tokens_estimate": n.tokens_estimate(),
                "cost_usd": conversation_cost(s, n),
                "logprobs": logprobs_json(n),
            })
        })
        .collect();
    let summary: Vec<serde_json::Value> = summaries(s)
        .into_iter()
        .map(|v| {
            json!({
                "variant": v.variant,
                "answers": v.answers,
                "passed": v.passed,
                "checked": v.checked,
                "errors": v.errors,
                "tool_expected": v.tool_expected,
                "tool_right": v.tool_right,
                "tool_right_rate": (v.tool_expected > 0).then(|| v.tool_right as f64 / v.tool_expected as f64),
                "mean_ttft_ms": v.mean_ttft_ms,
                "mean_tok_per_s": v.mean_tok_per_s,
                "mean_duration_ms": v.mean_duration_ms,
                "cost_usd": v.cost,
                "cost_per_pass_usd": v.cost_per_pass(),
            })
        })
        .collect();
    let stability: Vec<serde_json::Value> = crate::eval::consistency::group_samples(s)
        .iter()
        .filter_map(|(cell, nodes)| {
            let st = crate::eval::consistency::stability(nodes)?;
            let clusters = |cs: &[crate::eval::consistency::Cluster]| -> Vec<serde_json::Value> {
                cs.iter()
                    .map(|c| json!({"key": c.key, "count": c.members.len(), "nodes": c.members}))
                    .collect()
            };
            let pass = st
                .pass
                .and_then(|(h, n)| crate::eval::leaderboard::share(h, n))
                .map(|p| {
                    json!({"passed": p.hits, "checked": p.n, "rate": p.interval.estimate,
                           "low": p.interval.low, "high": p.interval.high})
                });
            Some(json!({
                "cell": cell,
                "samples": st.samples,
                "agreement": st.agreement,
                "majority_node": st.majority(),
                "pass": pass,
                "by_text": clusters(&st.by_text),
                "by_checks": clusters(&st.by_checks),
            }))
        })
        .collect();
    json!({
        "stability": stability,
        "title": s.title,
        "prompt_file": s.prompt_file,
        "session": PathBuf::from(session_path),
        "all_passed": finals(s).all(|n| n.status == NodeStatus::Done && n.passed() != Some(false)),
        "results": results,
        "summary": summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Sampling;
    use crate::eval::expect::CheckResult;

    #[test]
    fn table_shows_verdicts_and_failures_without_control_characters() {
        let mut s = Session::new("t", "now".into(), None);
        let mut a = Node::start(
            1,
            None,
            NodeKind::Answer,
            "plain",
            "England",
            "m",
            ChatRequest {
                messages: vec![],
                sampling: Sampling::default(),
            },
            "now".into(),
        );
        a.status = NodeStatus::Done;
        a.text = "London\x1b[2J is it".into();
        a.checks = vec![CheckResult {
            kind: "any".into(),
            pass: true,
            detail: "found".into(),
        }];
        let mut b = a.clone();
        b.id = 2;
        b.variant = "teacher".into();
        b.checks[0].pass = false;
        b.checks[0].detail = "none of [\"London\"] found".into();
        let mut c = a.clone();
        c.id = 3;
        c.status = NodeStatus::Error;
        c.error = Some("connection refused".into());
        s.nodes = vec![a, b, c];
        let t = table(&s);
        assert!(t.contains("PASS"), "{t}");
        assert!(t.contains("FAIL any"), "{t}");
        assert!(t.contains("ERROR"), "{t}");
        assert!(t.contains("London␛[2J is it"), "{t}");
        assert!(!t.contains('\x1b'));
        assert!(
            t.contains("plain / England: error: connection refused"),
            "{t}"
        );
        assert!(t.contains("teacher / England: any failed"), "{t}");
        assert!(t.contains("COST -: the model has no price"), "{t}");
        let j = json_report(&s, Path::new("s.toml"));
        assert_eq!(j["all_passed"], false);
        assert_eq!(j["results"][0]["cost_usd"], serde_json::Value::Null);
        assert_eq!(j["summary"][0]["passed"], 1);
        assert_eq!(j["summary"][0]["errors"], 1);
    }

    #[test]
    fn costs_per_answer_and_per_passing_answer() {
        let mut s = Session::new("t", "now".into(), None);
        s.prices.insert(
            "m".into(),
            crate::price::Price {
                input: 1.0,
                output: 3.0,
            },
        );
        let mut a = Node::start(
            1,
            None,
            NodeKind::Answer,
            "plain",
            "England",
            "m",
            ChatRequest {
                messages: vec![],
                sampling: Sampling::default(),
            },
            "now".into(),
        );
        a.status = NodeStatus::Done;
        a.prompt_tokens = Some(2000);
        a.tokens_out = 1000;
        a.duration_ms = Some(1500);
        a.checks = vec![CheckResult {
            kind: "any".into(),
            pass: true,
            detail: String::new(),
        }];
        let mut b = a.clone();
        b.id = 2;
        b.checks[0].pass = false;
        b.meta.insert("tokens".into(), "approx".into());
        s.nodes = vec![a, b];
        let t = table(&s);
        // $0.002 + $0.003 each.
        assert!(t.contains("$0.005000"), "{t}");
        assert!(t.contains("~1000"), "{t}");
        assert!(t.contains("1500 ms"), "{t}");
        assert!(t.contains("~: the backend sent no token count"), "{t}");
        let j = json_report(&s, Path::new("s.toml"));
        assert_eq!(j["results"][1]["tokens_approx"], true);
        assert_eq!(j["results"][1]["tokens_estimate"], "approx");
        assert_eq!(j["results"][0]["tokens_estimate"], serde_json::Value::Null);
        let per_pass = j["summary"][0]["cost_per_pass_usd"].as_f64().unwrap();
        assert!((per_pass - 0.01).abs() < 1e-12, "{per_pass}");
        // Counted with the model's tokenizer: still estimated, and said so.
        s.nodes[1].meta.insert("tokens".into(), "tokenizer".into());
        let t = table(&s);
        assert!(t.contains("~1000"), "{t}");
        assert!(t.contains("counted with the model's tokenizer"), "{t}");
        assert!(!t.contains("about 4 characters a token"), "{t}");
        let j = json_report(&s, Path::new("s.toml"));
        assert_eq!(j["results"][1]["tokens_estimate"], "tokenizer");
        assert_eq!(j["results"][1]["tokens_approx"], true);
    }

    #[test]
    fn a_tool_conversation_costs_every_model_turn() {
        let mut s = Session::new("t", "now".into(), None);
        s.prices.insert(
            "m".into(),
            crate::price::Price {
                input: 1.0,
                output: 3.0,
            },
        );
        let turn = |id: u64, parent: Option<u64>, kind: NodeKind, reason: FinishReason| {
            let mut n = Node::start(
                id,
                parent,
                kind,
                "tools",
                "weather",
                "m",
                ChatRequest {
                    messages: vec![],
                    sampling: Sampling::default(),
                },
                "now".into(),
            );
            n.status = NodeStatus::Done;
            n.finish_reason = Some(reason);
            if kind == NodeKind::Answer {
                n.prompt_tokens = Some(2000);
                n.tokens_out = 1000;
            }
            n
        };
        s.nodes = vec![
            turn(1, None, NodeKind::Answer, FinishReason::ToolCalls),
            turn(2, Some(1), NodeKind::ToolCall, FinishReason::Stop),
            turn(3, Some(2), NodeKind::ToolResult, FinishReason::Stop),
            turn(4, Some(3), NodeKind::Answer, FinishReason::Stop),
        ];
        // Two model turns at $0.002 + $0.003 each: the conversation's row and the variant's
        // total count both, not only the last turn's $0.005.
        let j = json_report(&s, Path::new("s.toml"));
        assert_eq!(j["results"].as_array().map(Vec::len), Some(1), "{j}");
        let cost = j["results"][0]["cost_usd"].as_f64().unwrap();
        assert!((cost - 0.01).abs() < 1e-12, "{cost}");
        let total = j["summary"][0]["cost_usd"].as_f64().unwrap();
        assert!((total - 0.01).abs() < 1e-12, "{total}");
        let t = table(&s);
        assert!(t.contains("$0.01 "), "{t}");
        assert!(!t.contains("$0.005"), "{t}");
        // An unpriced model on one turn leaves the conversation's cost unknown.
        s.nodes[0].model = "unpriced".into();
        let j = json_report(&s, Path::new("s.toml"));
        assert!(j["results"][0]["cost_usd"].is_null(), "{j}");
        assert!(j["summary"][0]["cost_usd"].is_null(), "{j}");
    }
}
