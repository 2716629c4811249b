//! `promptloom run`, `check` and `export` end to end, with the real binary.

mod common;

use common::{parse_toml, text, Sandbox};

const SCRIPTED: &str = r#"
default_model = "fake"
[models.fake]
backend = "scripted"
reply = "I do not know."
rules = [ { when = "England", reply = "The capital of England is London." },
          { when = "France", reply = "Paris, of course." } ]
delay_ms = 5
"#;

const PROMPT: &str = r#"title = "Capitals"
[defaults]
temperature = 0.7
max_tokens = 64

[[variant]]
name = "plain"
template = "What is the capital of {{country}}?"

[[variant]]
name = "teacher"
system = "You teach geography."
template = "What is the capital of {{country}}?"
examples = [ { input = "What is the capital of Spain?", output = "Madrid" } ]

[[case]]
vars = { country = "England" }
expect = { any = ["London"] }

[[case]]
vars = { country = "France" }
expect = { any = ["Paris"], none = ["London"] }
"#;

#[test]
fn run_saves_a_session_prints_a_table_and_exports() {
    let sb = Sandbox::new(SCRIPTED);
    let prompt = sb.write("prompts/capitals.toml", PROMPT);
    let out = sb.path("s.toml");
    let o = sb.run(&[
        "run",
        prompt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = text(&o.stdout);
    assert!(
        o.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&o.stderr)
    );
    assert_eq!(stdout.matches("PASS ").count(), 4, "{stdout}");
    assert!(stdout.contains("VARIANT  PASSED"), "{stdout}");
    assert!(
        text(&o.stderr).contains("session saved to"),
        "{}",
        text(&o.stderr)
    );

    let s = parse_toml(&out);
    assert_eq!(s["format"].as_integer(), Some(2));
    assert_eq!(s["models"]["fake"]["backend"].as_str(), Some("scripted"));
    let nodes = s["node"].as_array().unwrap();
    assert_eq!(nodes.len(), 4);
    let first = nodes[0].as_table().unwrap();
    assert_eq!(first["variant"].as_str(), Some("plain"));
    assert_eq!(first["case"].as_str(), Some("England"));
    assert_eq!(
        first["text"].as_str(),
        Some("The capital of England is London.")
    );
    assert_eq!(first["status"].as_str(), Some("done"));
    // The exact request is recorded, with the seed that was used.
    let teacher = nodes[2].as_table().unwrap();
    let msgs = common::sent(&out, teacher);
    assert_eq!(msgs.len(), 4, "system + example pair + question");
    assert_eq!(msgs[0].0, "system");
    assert!(teacher["sampling"]["seed"].as_integer().is_some());
    assert_eq!(s["variant"].as_array().unwrap().len(), 2);

    // JSONL export matches the session node for node.
    let o = sb.run(&["export", out.to_str().unwrap(), "--format", "jsonl"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let rows: Vec<serde_json::Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), nodes.len());
    for (row, node) in rows.iter().zip(nodes) {
        assert_eq!(row["node"].as_i64(), node["id"].as_integer());
        assert_eq!(row["text"].as_str(), node["text"].as_str());
        assert_eq!(row["kind"], "answer");
        assert_eq!(row["checks"][0]["pass"], true);
    }
    for fmt in ["csv", "md"] {
        let o = sb.run(&["export", out.to_str().unwrap(), "--format", fmt]);
        assert!(o.status.success(), "{fmt}: {}", text(&o.stderr));
        assert!(text(&o.stdout).contains("London"), "{fmt}");
    }
}

#[test]
fn json_output_and_exit_code_one_on_failed_expectation() {
    let sb = Sandbox::new(SCRIPTED);
    let prompt = sb.write(
        "p.toml",
        "title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"Capital of {{c}}?\"\n[[case]]\nvars = { c = \"Peru\" }\nexpect = { any = [\"Lima\"] }\n",
    );
    let o = sb.run(&[
        "run",
        prompt.to_str().unwrap(),
        "--json",
        "--out",
        sb.path("s.toml").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    assert_eq!(j["all_passed"], false);
    assert_eq!(j["results"][0]["pass"], false);
    assert_eq!(j["results"][0]["text"], "I do not know.");
    assert_eq!(j["summary"][0]["checked"], 1);
}

#[test]
fn invalid_prompt_file_exits_two_with_position() {
    let sb = Sandbox::new(SCRIPTED);
    let prompt = sb.write(
        "bad.toml",
        "title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"Capital of {{contry}}?\"\n[[case]]\nvars = { country = \"Peru\" }\n",
    );
    for sub in ["run", "check"] {
        let o = sb.run(&[sub, prompt.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{sub}");
        let err = text(&o.stderr);
        assert!(
            err.contains("bad.toml:4:24: variant \"a\" uses {{contry}}"),
            "{sub}: {err}"
        );
    }
    assert!(!sb.path("sessions").exists());
}

#[test]
fn bad_config_exits_two_before_anything_runs() {
    let sb = Sandbox::new(
        "default_model = \"fake\"\n[models.fake]\nbackend = \"scripted\"\ndelay = 3\n",
    );
    let o = sb.run(&["check", "nothing.toml"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("config.toml:4:1: unknown field `delay`"),
        "{err}"
    );
}

#[test]
fn unknown_model_flag_is_invalid_input() {
    let sb = Sandbox::new(SCRIPTED);
    let prompt = sb.write(
        "p.toml",
        "title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"hi\"\n",
    );
    let o = sb.run(&["run", prompt.to_str().unwrap(), "--model", "gpt9"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--model \"gpt9\" is not a configured model"));
}

#[test]
fn sessions_go_to_local_sessions_dir_and_never_overwrite() {
    let sb = Sandbox::new(SCRIPTED);
    std::fs::create_dir_all(sb.path("sessions")).unwrap();
    let prompt = sb.write(
        "p.toml",
        "title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"England?\"\n",
    );
    for _ in 0..2 {
        assert!(sb.run(&["run", "p.toml"]).status.success());
    }
    let files: Vec<_> = std::fs::read_dir(sb.path("sessions")).unwrap().collect();
    assert_eq!(files.len(), 2);
    // An existing file that is not a session is never overwritten.
    let precious = sb.write("notes.toml", "this is not a session");
    let o = sb.run(&[
        "run",
        prompt.to_str().unwrap(),
        "--out",
        precious.to_str().unwrap(),
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&precious).unwrap(),
        "this is not a session"
    );
}

#[test]
fn errors_are_recorded_with_partial_text_and_exit_one() {
    let sb = Sandbox::new(
        "default_model = \"flaky\"\n[models.flaky]\nbackend = \"scripted\"\nreply = \"one two three four\"\nfail_after_chunks = 2\nerror = \"server went away\"\n",
    );
    let prompt = sb.write(
        "p.toml",
        "title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"hi\"\n",
    );
    let out = sb.path("s.toml");
    let o = sb.run(&[
        "run",
        prompt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stdout).contains("a / default: error: server went away"),
        "{}",
        text(&o.stdout)
    );
    let s = parse_toml(&out);
    let n = s["node"][0].as_table().unwrap();
    assert_eq!(n["status"].as_str(), Some("error"));
    assert_eq!(n["text"].as_str(), Some("one two "));
    assert_eq!(n["meta"]["incomplete"].as_str(), Some("true"));
}

#[test]
fn ctrl_c_cancels_and_keeps_what_finished() {
    let sb = Sandbox::new(
        "default_model = \"slow\"\n[models.slow]\nbackend = \"scripted\"\nreply = \"a b c d e f g h i j\"\ndelay_ms = 400\n[models.fast]\nbackend = \"scripted\"\nreply = \"done\"\n",
    );
    let prompt = sb.write(
        "p.toml",
        "title = \"t\"\n[[variant]]\nname = \"quick\"\nmodel = \"fast\"\ntemplate = \"hi\"\n[[variant]]\nname = \"slow\"\ntemplate = \"hi\"\n",
    );
    let out = sb.path("s.toml");
    let child = sb
        .command()
        .args([
            "run",
            prompt.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the quick answer to be saved, then interrupt.
    let t = std::time::Instant::now();
    while !out.exists() && t.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o.stderr));
    assert!(
        t.elapsed() < std::time::Duration::from_secs(3),
        "cancel took {:?}",
        t.elapsed()
    );
    let s = parse_toml(&out);
    let nodes = s["node"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["status"].as_str(), Some("done"));
    assert_eq!(nodes[0]["text"].as_str(), Some("done"));
    assert_eq!(nodes[1]["status"].as_str(), Some("cancelled"));
}

/// Two runs of one prompt file, the second with `plain` edited so France now fails, rated
/// differently: `compare` reports the flip, the star delta and the prompt change, and with
/// `--fail-on-regression` exits 1.
#[test]
fn compare_reports_flips_star_deltas_and_prompt_changes() {
    let sb = Sandbox::new(SCRIPTED);
    let prompt = sb.write("prompts/capitals.toml", PROMPT);
    let (a, b) = (sb.path("a.toml"), sb.path("b.toml"));
    let run = |out: &std::path::Path| {
        let o = sb.run(&[
            "run",
            prompt.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        // Piped: the progress is plain lines, one per finished answer.
        let err = text(&o.stderr);
        assert!(err.contains("run [4/4] "), "{err}");
        assert!(!err.contains('\r'), "{err:?}");
        o
    };
    assert!(run(&a).status.success());
    // B: plain mentions England in every question, so the scripted model answers London.
    sb.write(
        "prompts/capitals.toml",
        &PROMPT.replace(
            "name = \"plain\"\ntemplate = \"What is the capital of {{country}}?\"",
            "name = \"plain\"\ntemplate = \"Not England: what is the capital of {{country}}?\"",
        ),
    );
    assert!(!run(&b).status.success());
    for (file, stars) in [(&a, "5"), (&b, "2")] {
        // Node 2 is plain × France in both (variants outermost, ids from 1).
        let o = sb.run(&[
            "rate",
            file.to_str().unwrap(),
            "--node",
            "2",
            "--stars",
            stars,
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let o = sb.run(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", text(&o.stderr));
    let row = |v: &str, c: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{v} ")) && l.contains(c))
            .unwrap_or_else(|| panic!("no {v} {c} row in\n{out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        row("plain", "France"),
        "plain France pass → fail REGRESSED 5.0 → 2.0 -3.0"
    );
    assert_eq!(row("teacher", "France"), "teacher France pass → pass — → —");
    assert!(out.contains("plain: prompt changed (+"), "{out}");
    assert!(out.contains("teacher: prompt unchanged"), "{out}");
    assert!(out.contains("0 fixed, 1 regressed"), "{out}");
    let o = sb.run(&[
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--fail-on-regression",
    ]);
    assert_eq!(o.status.code(), Some(1));
}

/// `export --format html` writes one self-contained page: Python's own HTML parser reads
/// it, every section holds exactly one chart (an inline SVG), and nothing points anywhere
/// (no src/href/url(), no http at all).
#[test]
fn html_export_is_one_self_contained_page_with_a_chart_per_section() {
    let sb = Sandbox::new(SCRIPTED);
    let prompt = sb.write("prompts/capitals.toml", PROMPT);
    let s = sb.path("s.toml");
    let o = sb.run(&[
        "run",
        prompt.to_str().unwrap(),
        "--out",
        s.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = sb.run(&["rate", s.to_str().unwrap(), "--node", "1", "--stars", "4"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let page = sb.path("page.html");
    let o = sb.run(&[
        "export",
        s.to_str().unwrap(),
        "--format",
        "html",
        "--out",
        page.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("http"), "{html}");
    let checker = r#"
import sys
from html.parser import HTMLParser
class P(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections = []
        self.stack = []
        self.refs = []
    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self.sections.append(0)
        if tag == "svg" and self.sections:
            self.sections[-1] += 1
        for k, v in attrs:
            if k in ("src", "href", "xlink:href", "action") or (v and "url(" in v):
                self.refs.append((tag, k, v))
        if tag in ("script", "link", "img", "iframe"):
            self.refs.append((tag, "", ""))
p = P()
p.feed(open(sys.argv[1], encoding="utf-8").read())
p.close()
print("sections", " ".join(str(n) for n in p.sections))
print("refs", len(p.refs), p.refs)
"#;
    let o = match std::process::Command::new("python3")
        .args(["-c", checker, page.to_str().unwrap()])
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipped the HTML parser check: python3 not runnable ({e})");
            return;
        }
    };
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", text(&o.stderr));
    assert!(out.contains("sections 1 1 1 1 1 1\n"), "{out}");
    assert!(out.contains("refs 0 []"), "{out}");
    // Markdown gets the same figures as tables.
    let o = sb.run(&["export", s.to_str().unwrap(), "--format", "md"]);
    let md = text(&o.stdout);
    assert!(md.contains("### Stars per variant"), "{md}");
    assert!(md.contains("| plain | 0 | 0 | 0 | 1 | 0 |"), "{md}");
}

/// The HTML export opened in headless Chromium (Debian's package) renders to a non-blank
/// screenshot: the PNG's pixels are not all one colour. Skips, saying so, without Chromium.
#[test]
fn html_export_renders_in_headless_chromium() {
    let Some(chromium) = ["chromium", "chromium-browser"].into_iter().find(|c| {
        std::process::Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        eprintln!("skipped: chromium is not installed (apt-get install chromium)");
        return;
    };
    let sb = Sandbox::new(SCRIPTED);
    let prompt = sb.write("prompts/capitals.toml", PROMPT);
    let s = sb.path("s.toml");
    let o = sb.run(&[
        "run",
        prompt.to_str().unwrap(),
        "--out",
        s.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let page = sb.path("page.html");
    let o = sb.run(&[
        "export",
        s.to_str().unwrap(),
        "--format",
        "html",
        "--out",
        page.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let shot = sb.path("shot.png");
    let profile = sb.path("chromium-profile");
    let o = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=820,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        shot.exists(),
        "no screenshot; chromium said:\n{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    // Decode the PNG with Python's zlib and count the distinct pixel byte values: a blank
    // page is one colour; a page with tables and charts has many.
    let decode = r#"
import sys, zlib, struct
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, width, height = 8, b"", 0, 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        width, height = struct.unpack(">II", body[:8])
    if kind == b"IDAT":
        idat += body
    pos += 12 + n
raw = zlib.decompress(idat)
print(width, height, len(set(raw)))
"#;
    let o = std::process::Command::new("python3")
        .args(["-c", decode, shot.to_str().unwrap()])
        .output()
        .unwrap();
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", text(&o.stderr));
    let f: Vec<usize> = out
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    assert_eq!(f.len(), 3, "{out}");
    assert!(f[0] >= 800 && f[1] >= 1000, "{out}");
    assert!(f[2] > 20, "the screenshot looks blank: {out}");
}
