//! `promptloom doctor` with the real binary: each finding is checked against a setup where we
//! know the right answer (a good setup, a missing or truncated model, a bad config, an
//! unwritable folder, an endpoint that is down, a key variable unset), and the CPU startup
//! check and SIGILL explanation.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Output;

use common::{text, Sandbox};

/// A small GGUF file with two tensors, laid out as ggml lays them out.
fn gguf() -> Vec<u8> {
    let mut b = Vec::new();
    let s = |b: &mut Vec<u8>, s: &str| {
        b.extend_from_slice(&(s.len() as u64).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    };
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&2u64.to_le_bytes()); // tensors
    b.extend_from_slice(&1u64.to_le_bytes()); // metadata
    s(&mut b, "general.architecture");
    b.extend_from_slice(&8u32.to_le_bytes());
    s(&mut b, "llama");
    // F32 [256] at 0, F16 [64, 64] at 1024.
    for (name, dims, ty, off) in [
        ("a.weight", vec![256u64], 0u32, 0u64),
        ("b.weight", vec![64, 64], 1, 1024),
    ] {
        s(&mut b, name);
        b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            b.extend_from_slice(&d.to_le_bytes());
        }
        b.extend_from_slice(&ty.to_le_bytes());
        b.extend_from_slice(&off.to_le_bytes());
    }
    while !b.len().is_multiple_of(32) {
        b.push(0);
    }
    b.extend((0..1024 + 64 * 64 * 2).map(|i| (i % 251) as u8));
    b
}

/// An HTTP server on loopback answering every request with 200.
fn http_ok() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    port
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn config(port: u16) -> String {
    format!(
        r#"default_model = "tiny"
[models.fake]
backend = "scripted"
[models.tiny]
backend = "local"
gguf = "tiny.gguf"
[models.api]
backend = "openai"
base_url = "http://127.0.0.1:{port}/v1"
model = "x"
api_key_env = "PL_DOCTOR_TEST_KEY"
"#
    )
}

fn setup(port: u16) -> Sandbox {
    let sb = Sandbox::new(&config(port));
    std::fs::create_dir_all(sb.path("data/models")).unwrap();
    std::fs::write(sb.path("data/models/tiny.gguf"), gguf()).unwrap();
    sb
}

fn doctor(sb: &Sandbox, key: Option<&str>) -> (Output, String) {
    let mut c = sb.command();
    c.arg("doctor")
        .env_remove("TMUX")
        .env_remove("PROMPTLOOM_PRETEND_CPU_LACKS");
    match key {
        Some(k) => c.env("PL_DOCTOR_TEST_KEY", k),
        None => c.env_remove("PL_DOCTOR_TEST_KEY"),
    };
    let o = c.output().unwrap();
    let s = text(&o.stdout);
    (o, s)
}

/// The report's lines for one area and level.
fn lines<'a>(report: &'a str, level: &str, area: &str) -> Vec<&'a str> {
    report
        .lines()
        .filter(|l| l.starts_with(&format!("{level:<5} {area:<9} ")))
        .collect()
}

#[test]
fn a_good_setup_passes_with_every_finding_right() {
    let sb = setup(http_ok());
    let (o, r) = doctor(&sb, Some("sk-very-secret-value"));
    assert_eq!(o.status.code(), Some(0), "{r}\n{}", text(&o.stderr));
    assert!(
        lines(&r, "FAIL", "").is_empty() && !r.contains("FAIL"),
        "{r}"
    );
    let cfg = sb.path("config.toml");
    assert!(
        r.contains(&format!("ok    config    {}: valid", cfg.display())),
        "{r}"
    );
    // The model: parsed, architecture checked, hashed.
    let sha = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(gguf()))
    };
    assert!(r.contains("tiny (local): "), "{r}");
    // The built-in model nobody here uses is not downloaded: a warning only.
    assert!(
        lines(&r, "warn", "model")
            .iter()
            .any(|l| l.contains("smollm2 (local)") && l.contains("not found")),
        "{r}"
    );
    assert!(r.contains("2 tensors"), "{r}");
    assert!(
        r.contains("architecture llama (supported by mistral.rs 0.8.1)"),
        "{r}"
    );
    assert!(r.contains(&format!("sha256 {sha}")), "{r}");
    // The endpoint and its key, never printed.
    assert_eq!(lines(&r, "ok", "endpoint").len(), 1, "{r}");
    assert!(r.contains("GET answered 200 OK"), "{r}");
    assert!(
        r.contains("$PL_DOCTOR_TEST_KEY is set (20 characters)"),
        "{r}"
    );
    assert!(!r.contains("sk-very-secret-value"), "{r}");
    assert!(
        r.contains("ok    cpu       this build runs on this CPU"),
        "{r}"
    );
    assert!(r.contains("avx2"), "{r}");
    assert_eq!(lines(&r, "ok", "dirs").len(), 3, "{r}");
    // Each folder says how much room it has ("…, 79.61 GiB free").
    for l in lines(&r, "ok", "dirs") {
        assert!(l.contains("B free"), "{l}\n{r}");
    }
    assert!(
        r.ends_with(" warnings)\n") && r.contains("all checks passed"),
        "{r}"
    );
}

#[test]
fn a_missing_model_fails_and_says_how_to_get_it() {
    let sb = setup(http_ok());
    std::fs::remove_file(sb.path("data/models/tiny.gguf")).unwrap();
    let (o, r) = doctor(&sb, Some("k"));
    assert_eq!(o.status.code(), Some(1), "{r}");
    let fails = lines(&r, "FAIL", "model");
    assert_eq!(fails.len(), 1, "{r}");
    assert!(
        fails[0].contains("tiny.gguf not found; run `promptloom model fetch`"),
        "{r}"
    );
    assert!(r.contains("1 problem(s) found"), "{r}");
}

#[test]
fn a_truncated_model_fails_before_anything_loads_it() {
    let sb = setup(http_ok());
    let b = gguf();
    std::fs::write(sb.path("data/models/tiny.gguf"), &b[..b.len() / 2]).unwrap();
    let (o, r) = doctor(&sb, Some("k"));
    assert_eq!(o.status.code(), Some(1), "{r}");
    let fails = lines(&r, "FAIL", "model");
    assert_eq!(fails.len(), 1, "{r}");
    assert!(
        fails[0].contains("tensor 1 (\"b.weight\") needs bytes"),
        "{r}"
    );
    assert!(fails[0].contains("truncated or corrupt"), "{r}");
}

#[test]
fn a_bad_config_fails_with_its_position_and_the_rest_is_still_checked() {
    let sb = setup(http_ok());
    sb.write(
        "config.toml",
        "default_model = \"fake\"\n[models.fake]\nbackend = \"scripted\"\nreplly = \"x\"\n",
    );
    let (o, r) = doctor(&sb, None);
    assert_eq!(o.status.code(), Some(1), "{r}");
    let fails = lines(&r, "FAIL", "config");
    assert_eq!(fails.len(), 1, "{r}");
    assert!(
        fails[0].contains("config.toml:4:1: unknown field `replly`"),
        "{r}"
    );
    assert!(
        r.contains("the checks below use the built-in defaults"),
        "{r}"
    );
    // The built-in default model is not downloaded in this sandbox.
    assert!(r.contains("smollm2 (local)"), "{r}");
    assert!(lines(&r, "ok", "cpu").len() == 1, "{r}");
}

#[test]
fn an_unwritable_state_dir_fails() {
    let sb = setup(http_ok());
    // A folder under a regular file can't be made, even by root.
    sb.write("blocker", "a file");
    let mut c = sb.command();
    c.arg("doctor")
        .env("PROMPTLOOM_STATE_DIR", sb.path("blocker/state"))
        .env("PL_DOCTOR_TEST_KEY", "k")
        .env_remove("TMUX");
    let o = c.output().unwrap();
    let r = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{r}");
    let fails = lines(&r, "FAIL", "dirs");
    assert_eq!(fails.len(), 1, "{r}");
    assert!(
        fails[0].contains("state: ") && fails[0].contains("blocker/state is not writable"),
        "{r}"
    );
    assert_eq!(lines(&r, "ok", "dirs").len(), 2, "{r}");
}

#[test]
fn an_endpoint_that_is_down_and_an_unset_key_fail() {
    let sb = setup(closed_port());
    let (o, r) = doctor(&sb, None);
    assert_eq!(o.status.code(), Some(1), "{r}");
    let down = lines(&r, "FAIL", "endpoint");
    assert_eq!(down.len(), 1, "{r}");
    assert!(
        down[0].contains("unreachable: TCP connect to 127.0.0.1:"),
        "{r}"
    );
    assert!(down[0].contains("refused"), "{r}");
    let key = lines(&r, "FAIL", "key");
    assert_eq!(key.len(), 1, "{r}");
    assert!(key[0].contains("$PL_DOCTOR_TEST_KEY is not set"), "{r}");
}

#[test]
fn a_build_for_a_cpu_feature_this_cpu_lacks_is_explained_at_startup() {
    if !cfg!(target_feature = "avx2") {
        eprintln!("skipped: this build does not use avx2, so there is nothing to pretend away");
        return;
    }
    let sb = setup(http_ok());
    let o = sb
        .command()
        .args(["check", "nothing.toml"])
        .env("PROMPTLOOM_PRETEND_CPU_LACKS", "avx2")
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("this CPU lacks avx2"), "{err}");
    assert!(err.contains("rebuild on this machine"), "{err}");
    // It stopped before doing anything else (the prompt file was never looked at).
    assert!(!err.contains("nothing.toml"), "{err}");
}

#[cfg(unix)]
#[test]
fn an_illegal_instruction_is_explained_before_the_process_dies_of_it() {
    use std::os::unix::process::ExitStatusExt;
    let sb = setup(http_ok());
    sb.write(
        "p.toml",
        "title = \"t\"\n[[variant]]\nname = \"v\"\nmodel = \"slow\"\ntemplate = \"hi\"\n",
    );
    sb.write(
        "config.toml",
        "default_model = \"slow\"\n[models.slow]\nbackend = \"scripted\"\nreply = \"a b c d e f g h\"\ndelay_ms = 2000\n",
    );
    let mut child = sb
        .command()
        .args(["run", "p.toml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: sending a signal to our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGILL);
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.signal(), Some(libc::SIGILL), "{status:?} {err}");
    assert!(
        err.contains("promptloom: illegal instruction (SIGILL)"),
        "{err}"
    );
    assert!(err.contains("promptloom doctor"), "{err}");
}
