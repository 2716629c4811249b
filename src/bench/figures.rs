//! What the bench's sections share: the plan they run under, samples with their median and
//! spread, a section's printed lines and goals, the machine the figures were measured on, and
//! the timed stream and prompts several sections use. A leaf, so the sections and
//! `bench/mod.rs` (which runs them) do not import each other.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::llm::{ChatMessage, ChatRequest, Role, Sampling, StreamEvent, StreamHandle};

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
                estimated: false,
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
