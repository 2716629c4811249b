//! `promptloom bench`: every performance figure in one run on this machine, with medians and
//! spreads, each next to its goal.
//!
//! Sections (all by default; `--only` picks some):
//! - `local`: decode and prompt tokens/s through promptloom's local backend vs a bare
//!   mistral.rs loop with identical settings, for the shipped file and the re-quantized one;
//! - `kernel`: where decode time goes: candle's quantized mat-vecs for one token, alone, and
//!   the memory-bandwidth floor;
//! - `llama`: the same prompt through llama.cpp's `llama-server` via the OpenAI backend;
//! - `concurrency`: aggregate tokens/s with 1, 2, 4 and 8 variants at once on the local model;
//! - `ttft`: time to first token of a ~1,500-token few-shot prompt, cold and with the prefix
//!   cache warm;
//! - `ui`: per-frame draw time of 6 panes at 1 KB / 100 KB / 1 MB, and the rate at which the
//!   real event loop absorbs a scripted backend streaming into 6 panes;
//! - `session`: load and save times at 100, 1,000 and 10,000 nodes;
//! - `retrieval`: BM25 chunking + index build time for 1 MB and 10 MB of text, a query's
//!   time, and hit@k on the retrieval test corpus.
//!
//! `--fuzz SECONDS` runs the fuzz targets instead (see [`fuzz`]).

#[cfg(feature = "local")]
mod engine;
mod fuzz;
#[cfg(feature = "local")]
mod kernel;
mod llama;
mod retrieval;
pub(crate) mod session;
mod ui;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::llm::{ChatMessage, ChatRequest, Role, Sampling, StreamEvent, StreamHandle};

/// `promptloom bench` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Sections to run (default: all): local, kernel, llama, concurrency, ttft, ui, session,
    /// retrieval.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<Section>,
    /// Runs per measurement.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub runs: u32,
    /// Tokens generated per decode run.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(8..=4096))]
    pub tokens: u32,
    /// The shipped GGUF file (default: the data dir's SmolLM2-135M-Instruct.Q4_1.gguf).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The re-quantized file to compare (default: the shipped one re-quantized to Q8_0 beside
    /// it, made now if missing).
    #[arg(long)]
    pub requantized: Option<PathBuf>,
    /// llama.cpp's llama-server binary (default: $PROMPTLOOM_LLAMA_SERVER, the cache that
    /// scripts/llama-server.sh fills, then PATH).
    #[arg(long)]
    pub llama_server: Option<PathBuf>,
    /// Threads for llama-server.
    #[arg(long, default_value_t = 2)]
    pub llama_threads: u32,
    /// Smaller sizes everywhere (for a smoke test): 1 run, 32 tokens, 1,000-node sessions.
    #[arg(long)]
    pub quick: bool,
    /// Instead of the figures: run every fuzz target (src/fuzz.rs) for SECONDS each and
    /// print the inputs each took and the crashes found (exit 1 on a crash).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub fuzz: Option<f64>,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!("{s:?}: seconds, more than 0 and at most 86400")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Section {
    Local,
    Kernel,
    Llama,
    Concurrency,
    Ttft,
    Ui,
    Session,
    Retrieval,
}

/// Settings shared by the sections.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub runs: usize,
    pub tokens: usize,
    pub quick: bool,
    /// Printed beside every figure.
    pub machine: Machine,
}

/// Several measurements of one quantity.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Sample(pub Vec<f64>);

impl Sample {
    pub fn push(&mut self, x: f64) {
        if x.is_finite() {
            self.0.push(x);
        }
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    pub fn median(&self) -> Option<f64> {
        let v = self.sorted();
        let n = v.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(v[n / 2]),
            _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }

    /// `median [min–max]` with `digits` decimals, or `-`.
    pub fn show(&self, digits: usize) -> String {
        let v = self.sorted();
        match (self.median(), v.first(), v.last()) {
            (Some(m), Some(lo), Some(hi)) if v.len() > 1 => {
                format!("{m:.digits$} [{lo:.digits$}–{hi:.digits$}]")
            }
            (Some(m), _, _) => format!("{m:.digits$}"),
            _ => "-".into(),
        }
    }
}

/// One goal from the performance issue and whether it was met.
#[derive(Debug, Clone)]
pub(crate) struct Goal {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub met: Option<bool>,
}

/// A model file as the tables name it: its file name, then what it is (`shipped`, ...).
pub(crate) fn file_label(path: &Path, label: &str) -> String {
    format!("{} ({label})", file_name(path))
}

pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |f| f.to_string_lossy().into_owned())
}

/// A section's output, or, when it failed, a line saying so and a missed goal: one failing
/// section (a server that went away, a missing file) does not lose the others' figures.
fn section(name: &str, result: anyhow::Result<Out>) -> Out {
    result.unwrap_or_else(|e| {
        let mut out = Out::default();
        out.line(format!("\n{name}: FAILED: {e:#}"));
        out.goal(
            &format!("{name} section ran to the end"),
            "runs",
            "failed".into(),
            Some(false),
        );
        out.failed = true;
        out
    })
}

/// What a section prints: its lines and the goals it checked.
#[derive(Debug, Default)]
pub(crate) struct Out {
    pub text: String,
    pub goals: Vec<Goal>,
    /// The section stopped with an error.
    pub failed: bool,
}

impl Out {
    pub fn line(&mut self, s: impl AsRef<str>) {
        let _ = writeln!(self.text, "{}", s.as_ref());
        // Print as we go: the whole bench takes minutes.
        println!("{}", s.as_ref());
    }

    pub fn goal(&mut self, what: &str, target: &str, measured: String, met: Option<bool>) {
        self.goals.push(Goal {
            what: what.into(),
            target: target.into(),
            measured,
            met,
        });
    }
}

/// Timing of one streamed answer, seen from the consumer's side.
#[cfg_attr(not(feature = "local"), allow(dead_code))]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Measure {
    pub ttft: Duration,
    pub prompt_tokens: u64,
    pub tokens: u64,
    /// (tokens - 1) / (last - first token).
    pub decode_tps: f64,
    /// prompt tokens / time to first token.
    pub prompt_tps: f64,
}

/// Drain a stream, timing it; text deltas count as tokens unless usage says otherwise.
pub(crate) async fn measure(mut handle: StreamHandle) -> Result<(Measure, String), String> {
    let t0 = Instant::now();
    let mut first = None;
    let mut last = t0;
    let mut deltas = 0u64;
    let mut usage = None;
    let mut text = String::new();
    while let Some(ev) = handle.events.recv().await {
        match ev {
            StreamEvent::Delta(d) => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                deltas += 1;
                text.push_str(&d);
            }
            StreamEvent::Usage(u) => usage = Some(u),
            StreamEvent::Notice(_) | StreamEvent::Logprobs(_) | StreamEvent::ToolCall(_) => {}
            StreamEvent::Finished(_) => break,
            StreamEvent::Failed(e) => return Err(e),
        }
    }
    let first = first.ok_or("the stream produced no text")?;
    let tokens = usage
        .and_then(|u| u.completion_tokens)
        .unwrap_or(deltas)
        .max(1);
    let prompt_tokens = usage.and_then(|u| u.prompt_tokens).unwrap_or(0);
    let ttft = first - t0;
    let span = (last - first).as_secs_f64();
    Ok((
        Measure {
            ttft,
            prompt_tokens,
            tokens,
            decode_tps: if span > 0.0 {
                (tokens.saturating_sub(1)) as f64 / span
            } else {
                0.0
            },
            prompt_tps: prompt_tokens as f64 / ttft.as_secs_f64().max(1e-9),
        },
        text,
    ))
}

/// A decode prompt: a long-answer instruction behind a unique first line, so no run reuses
/// another's cached prefix and every run pays for its whole prompt.
pub(crate) fn decode_prompt(run: usize, tag: &str) -> String {
    format!(
        "[{tag} run {run}] Write a long story about a dragon who learns to cook. Describe the \
         kitchen, the first failed dish, the village that tastes it, and what the dragon learns."
    )
}

/// ~1,800 tokens of few-shot geography: a system prompt and 34 worked examples.
pub(crate) fn few_shot(nonce: &str, question: &str) -> ChatRequest {
    const FACTS: &[(&str, &str, &str)] = &[
        ("France", "Paris", "on the Seine, home of the Louvre"),
        ("Germany", "Berlin", "on the Spree, reunified in 1990"),
        (
            "Italy",
            "Rome",
            "on the Tiber, once the centre of an empire",
        ),
        (
            "Spain",
            "Madrid",
            "on the Manzanares, at the centre of the peninsula",
        ),
        (
            "Portugal",
            "Lisbon",
            "on the Tagus estuary, facing the Atlantic",
        ),
        (
            "Ireland",
            "Dublin",
            "on the Liffey, with a famous university",
        ),
        ("Norway", "Oslo", "at the head of the Oslofjord"),
        ("Sweden", "Stockholm", "spread over fourteen islands"),
        ("Finland", "Helsinki", "on the Gulf of Finland"),
        (
            "Denmark",
            "Copenhagen",
            "on the islands of Zealand and Amager",
        ),
        ("Poland", "Warsaw", "on the Vistula, rebuilt after 1945"),
        ("Austria", "Vienna", "on the Danube, known for music"),
        ("Hungary", "Budapest", "two cities joined across the Danube"),
        ("Greece", "Athens", "below the Acropolis"),
        ("Turkey", "Ankara", "in central Anatolia, chosen in 1923"),
        ("Egypt", "Cairo", "on the Nile, near the pyramids of Giza"),
        ("Kenya", "Nairobi", "near a national park with lions"),
        (
            "Nigeria",
            "Abuja",
            "a planned city in the centre of the country",
        ),
        (
            "Japan",
            "Tokyo",
            "on Tokyo Bay, the largest metropolitan area",
        ),
        ("China", "Beijing", "in the north, with the Forbidden City"),
        ("India", "New Delhi", "part of Delhi, on the Yamuna"),
        (
            "Australia",
            "Canberra",
            "a planned city between Sydney and Melbourne",
        ),
        ("Canada", "Ottawa", "on the Ottawa River"),
        ("Brazil", "Brasília", "a planned city opened in 1960"),
        ("Argentina", "Buenos Aires", "on the Río de la Plata"),
        ("Chile", "Santiago", "in a valley below the Andes"),
        ("Peru", "Lima", "on the Pacific coast"),
        (
            "Mexico",
            "Mexico City",
            "on a high plateau, once Tenochtitlan",
        ),
        (
            "Morocco",
            "Rabat",
            "on the Atlantic at the mouth of the Bou Regreg",
        ),
        ("Vietnam", "Hanoi", "on the Red River"),
        (
            "Thailand",
            "Bangkok",
            "on the Chao Phraya, known for its temples",
        ),
        ("Indonesia", "Jakarta", "on the north-west coast of Java"),
        (
            "South Korea",
            "Seoul",
            "on the Han River, ringed by mountains",
        ),
        ("Colombia", "Bogotá", "on a high plateau in the Andes"),
    ];
    let mut messages = vec![ChatMessage::new(
        Role::System,
        format!(
            "[{nonce}] You are a patient geography tutor. For every country the student names, \
             give its capital city first, then one true, concrete fact about where that city \
             lies or what it is known for. Keep each answer to one sentence, never invent \
             facts, and if a country is unknown or ambiguous say that you are not sure."
        ),
    )];
    for (country, capital, fact) in FACTS {
        messages.push(ChatMessage::new(
            Role::User,
            format!("What is the capital of {country}, and what is it known for?"),
        ));
        messages.push(ChatMessage::new(
            Role::Assistant,
            format!("The capital of {country} is {capital}, {fact}; it is the seat of the national government."),
        ));
    }
    messages.push(ChatMessage::new(Role::User, question.to_string()));
    ChatRequest {
        messages,
        sampling: Sampling {
            max_tokens: Some(4),
            ..Default::default()
        },
    }
}

pub(crate) fn run(config: Config, args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(seconds) = args.fuzz {
        return Ok(fuzz::run(seconds, &Machine::detect().tag()));
    }
    let plan = Plan {
        runs: if args.quick { 1 } else { args.runs as usize },
        tokens: if args.quick { 32 } else { args.tokens as usize },
        quick: args.quick,
        machine: Machine::detect(),
    };
    let all = args.only.is_empty();
    let want = |s: Section| all || args.only.contains(&s);
    let t0 = Instant::now();
    let machine = plan.machine.clone();
    println!(
        "promptloom bench: {} · {} cores · {} · runs {} · {} tokens",
        chrono::Local::now().format("%Y-%m-%d %H:%M"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        machine.tag(),
        plan.runs,
        plan.tokens
    );
    let mut outs: Vec<Out> = Vec::new();
    if want(Section::Session) {
        outs.push(section("session", session::run(&plan)));
    }
    if want(Section::Ui) {
        outs.push(section("ui", ui::run(&plan)));
    }
    if want(Section::Retrieval) {
        outs.push(section("retrieval", retrieval_section(&plan)));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let model = args.model.clone().unwrap_or_else(|| {
        config
            .dirs
            .models_dir()
            .join(crate::model_fetch::SHIPPED_GGUF)
    });
    let needs_model = want(Section::Local)
        || want(Section::Kernel)
        || want(Section::Llama)
        || want(Section::Concurrency)
        || want(Section::Ttft);
    if needs_model && !model.is_file() {
        anyhow::bail!(
            "{}: model file not found; run `promptloom model fetch` (or pass --model)",
            model.display()
        );
    }
    #[cfg(feature = "local")]
    let requantized = if needs_model {
        Some(engine::requantized(&model, args.requantized.clone())?)
    } else {
        None
    };
    #[cfg(not(feature = "local"))]
    let requantized: Option<PathBuf> = args.requantized.clone();
    let mut files = vec![("shipped", model.clone())];
    if let Some(r) = &requantized {
        files.push(("re-quantized", r.clone()));
    }
    #[cfg_attr(not(feature = "local"), allow(unused_mut))]
    let mut local_rates: Vec<(String, f64)> = Vec::new();
    // promptloom's prompt reading of the few-shot prompt (tok/s), from the ttft section.
    #[cfg_attr(not(feature = "local"), allow(unused_mut))]
    let mut prompt_read: Option<f64> = None;
    #[cfg(feature = "local")]
    {
        if want(Section::Local) {
            match rt.block_on(engine::local_vs_bare(&plan, &files)) {
                Ok((out, rates)) => {
                    local_rates = rates;
                    outs.push(out);
                }
                Err(e) => outs.push(section("local", Err(e))),
            }
        }
        if want(Section::Kernel) {
            outs.push(section("kernel", kernel::run(&plan, &files, &local_rates)));
        }
        // What users run: the re-quantized default file.
        let default = requantized.clone().unwrap_or_else(|| model.clone());
        if want(Section::Concurrency) {
            outs.push(section(
                "concurrency",
                rt.block_on(engine::concurrency(&plan, &default)),
            ));
        }
        if want(Section::Ttft) {
            match rt.block_on(engine::ttft(&plan, &default)) {
                Ok((out, read)) => {
                    prompt_read = Some(read);
                    outs.push(out);
                }
                Err(e) => outs.push(section("ttft", Err(e))),
            }
        }
    }
    #[cfg(not(feature = "local"))]
    if want(Section::Local)
        || want(Section::Kernel)
        || want(Section::Concurrency)
        || want(Section::Ttft)
    {
        println!(
            "\nlocal, kernel, concurrency, ttft: skipped (this promptloom was built without the `local` feature)"
        );
    }
    if want(Section::Llama) {
        let server = llama::find_server(args.llama_server.as_deref());
        outs.push(section(
            "llama",
            rt.block_on(llama::run(
                &plan,
                server,
                args.llama_threads,
                &files,
                &local_rates,
                prompt_read,
            )),
        ));
    }
    println!("\nGoals (measured on {})", machine.tag());
    let mut missed = 0;
    for g in outs.iter().flat_map(|o| &o.goals) {
        let mark = match g.met {
            Some(true) => "met",
            Some(false) => {
                missed += 1;
                "MISSED"
            }
            None => "n/a",
        };
        println!(
            "  {:<58} {:<14} {:<24} {mark}",
            g.what, g.target, g.measured
        );
    }
    println!(
        "\nbench took {:.0} s; {missed} goal(s) missed",
        t0.elapsed().as_secs_f64()
    );
    // Missed goals are results; a section that could not run is a failure.
    Ok(if outs.iter().any(|o| o.failed) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The retrieval figures ([`retrieval::measure`]) as lines and goals.
fn retrieval_section(plan: &Plan) -> anyhow::Result<Out> {
    let sizes: &[usize] = if plan.quick { &[1] } else { &[1, 10] };
    let f = retrieval::measure(sizes, plan.runs).map_err(|e| anyhow::anyhow!(e))?;
    let mut out = Out::default();
    out.line(format!(
        "\nRetrieval: chunk (300 tokens, overlap 50) + BM25 index of one document; median [min–max] of runs · {}",
        plan.machine.tag()
    ));
    out.line(format!(
        "  {:>6}  {:>8}  {:>22}  {:>16}",
        "MB", "chunks", "build ms", "query ms"
    ));
    for d in &f.documents {
        let (build, query) = (Sample(d.build_ms.clone()), Sample(d.query_ms.clone()));
        out.line(format!(
            "  {:>6}  {:>8}  {:>22}  {:>16}",
            d.mb,
            d.chunks,
            build.show(0),
            query.show(1)
        ));
        out.goal(
            &format!("BM25 index of {} MB builds in", d.mb),
            "(figure)",
            format!("{:.0} ms", build.median().unwrap_or(f64::NAN)),
            None,
        );
    }
    let n = f.questions;
    out.line(format!(
        "  hit@k on the test corpus ({n} questions, {} chunks, BM25): hit@1 {}/{n}, hit@3 {}/{n}",
        f.corpus_chunks, f.hit1, f.hit3
    ));
    for (k, hits) in [(1, f.hit1), (3, f.hit3)] {
        out.goal(
            &format!("retrieval test corpus: hit@{k} (BM25)"),
            &format!("{n}/{n}"),
            format!("{hits}/{n}"),
            Some(hits == n),
        );
    }
    Ok(out)
}

fn cpuinfo_field(cpuinfo: &str, name: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// The machine every figure was measured on: CPU, the SIMD features it reports, threads.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Machine {
    pub cpu: String,
    /// Of AVX2, AVX-512, VNNI (AVX-512 or AVX), AMX: the ones the CPU has.
    pub features: Vec<&'static str>,
    /// Threads the model's kernels run on (rayon's global pool).
    pub threads: usize,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Machine::from_cpuinfo(&cpuinfo, rayon_threads())
    }

    fn from_cpuinfo(cpuinfo: &str, threads: usize) -> Machine {
        let flags = cpuinfo_field(cpuinfo, "flags").unwrap_or_default();
        let has = |f: &str| flags.split_whitespace().any(|x| x == f);
        let mut features = Vec::new();
        for (name, flag) in [
            ("AVX2", "avx2"),
            ("AVX-512", "avx512f"),
            ("AVX512-VNNI", "avx512_vnni"),
            ("AVX-VNNI", "avx_vnni"),
            ("AMX", "amx_int8"),
        ] {
            if has(flag) {
                features.push(name);
            }
        }
        Machine {
            cpu: cpuinfo_field(cpuinfo, "model name").unwrap_or_else(|| "unknown CPU".into()),
            features,
            threads,
        }
    }

    pub fn has(&self, feature: &str) -> bool {
        self.features.contains(&feature)
    }

    /// `CPU · features · N threads`, printed beside the figures.
    pub fn tag(&self) -> String {
        let features = if self.features.is_empty() {
            "no AVX2".to_string()
        } else {
            self.features.join(" ")
        };
        format!("{} · {features} · {} threads", self.cpu, self.threads)
    }
}

fn rayon_threads() -> usize {
    #[cfg(feature = "local")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "local"))]
    {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_section_is_reported_and_the_others_are_kept() {
        let ok = section("ui", Ok(Out::default()));
        assert!(!ok.failed);
        let bad = section("llama", Err(anyhow::anyhow!("server went away")));
        assert!(bad.failed);
        assert!(
            bad.text.contains("llama: FAILED: server went away"),
            "{}",
            bad.text
        );
        assert_eq!(bad.goals.len(), 1);
        assert_eq!(bad.goals[0].met, Some(false));
    }

    #[test]
    fn machine_reads_the_cpu_and_its_simd_features() {
        let cpuinfo =
            "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz\n\
                       flags\t\t: fpu sse2 avx2 avx512f avx512_vnni amx_tile amx_int8 avx_vnni\n";
        let m = Machine::from_cpuinfo(cpuinfo, 2);
        assert_eq!(m.cpu, "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz");
        assert_eq!(
            m.features,
            ["AVX2", "AVX-512", "AVX512-VNNI", "AVX-VNNI", "AMX"]
        );
        assert!(m.has("AMX"));
        assert_eq!(
            m.tag(),
            "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz · AVX2 AVX-512 AVX512-VNNI AVX-VNNI AMX · 2 threads"
        );
        let old = Machine::from_cpuinfo("model name : Old\nflags : sse2 avx\n", 1);
        assert!(old.features.is_empty());
        assert_eq!(old.tag(), "Old · no AVX2 · 1 threads");
    }

    #[test]
    fn sample_median_and_spread() {
        let mut s = Sample::default();
        assert_eq!(s.show(1), "-");
        s.push(3.0);
        assert_eq!(s.show(1), "3.0");
        s.push(1.0);
        s.push(f64::NAN);
        s.push(2.0);
        assert_eq!(s.median(), Some(2.0));
        assert_eq!(s.show(1), "2.0 [1.0–3.0]");
        s.push(10.0);
        assert_eq!(s.median(), Some(2.5));
    }

    #[tokio::test]
    async fn measure_times_a_scripted_stream() {
        let (handle, sink) = StreamHandle::channel();
        tokio::spawn(async move {
            for w in ["a ", "b ", "c"] {
                tokio::time::sleep(Duration::from_millis(20)).await;
                sink.send(StreamEvent::Delta(w.into()));
            }
            sink.send(StreamEvent::Usage(crate::llm::Usage {
                prompt_tokens: Some(10),
                completion_tokens: Some(3),
            }));
            sink.finish(StreamEvent::Finished(crate::llm::FinishReason::Stop));
        });
        let (m, text) = measure(handle).await.unwrap();
        assert_eq!(text, "a b c");
        assert_eq!((m.tokens, m.prompt_tokens), (3, 10));
        assert!(m.ttft >= Duration::from_millis(15), "{:?}", m.ttft);
        // 2 intervals of ~20 ms: about 50 tok/s, far from the 0 or infinity of a bug.
        assert!(
            m.decode_tps > 10.0 && m.decode_tps < 200.0,
            "{}",
            m.decode_tps
        );
    }
}
