//! `promptloom import promptfooconfig.yaml [-o out.toml]`: a promptfoo suite as a prompt file.
//!
//! Mapped: `description` → title; `prompts` (text, `file://` text files, `{raw, label}`) →
//! variants; `providers` (ids or `{id, label, config}`) → each variant's model (one variant
//! per prompt × provider when there are several), with `temperature`/`max_tokens`;
//! `tests` (inline, `file://` CSV or YAML) with `vars` (text, numbers, `file://` text files)
//! and `assert` → checks; `defaultTest` merged into every test. Assertions: `contains`,
//! `icontains`, `contains-any`/`-all` (and `i` forms) → any/all; `not-contains`,
//! `not-icontains`, `not-contains-any` → none; `equals` → equals; `regex` → regex;
//! `starts-with` → an anchored regex; `llm-rubric` → the file's judge rubric (`[techniques]`)
//! when every test uses the same one. promptfoo's `{{ var }}` syntax is ours too; values in
//! assertions are filled from the test's vars at import time.
//!
//! Everything else (providers' other settings, scripts, other assertion types, nunjucks
//! filters, `scenarios`, …) is listed as not mapped; the output is checked by parsing it
//! back before it is written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::InputError;
use crate::prompt::template;

/// The result of an import.
#[derive(Debug)]
pub(crate) struct Imported {
    pub toml: String,
    /// Fields that could not be mapped, with where they were.
    pub unmapped: Vec<String>,
    /// Model names the file uses, to configure.
    pub models: Vec<(String, String)>,
}

fn yaml(path: &Path) -> Result<Value, InputError> {
    let text = std::fs::read_to_string(path).map_err(|e| InputError::io(path, &e))?;
    serde_yaml_ng::from_str(&text).map_err(|e| {
        let (line, col) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        InputError {
            path: path.to_path_buf(),
            position: Some((line, col)),
            message: format!("{e}"),
            hint: None,
        }
    })
}

fn file_ref(s: &str) -> Option<&str> {
    s.strip_prefix("file://")
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

struct Ctx<'a> {
    base: &'a Path,
    unmapped: Vec<String>,
}

impl Ctx<'_> {
    fn skip(&mut self, what: impl Into<String>) {
        self.unmapped.push(what.into());
    }

    /// A `file://` text file's contents, relative to the config.
    fn read(&mut self, rel: &str, what: &str) -> Option<String> {
        let rel = rel.split(':').next().unwrap_or(rel);
        let ext = Path::new(rel)
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if matches!(
            ext.as_str(),
            "js" | "ts" | "mjs" | "cjs" | "py" | "json" | "jsonl" | "yaml" | "yml"
        ) {
            self.skip(format!(
                "{what}: file://{rel} ({ext} files are code or structured prompts)"
            ));
            return None;
        }
        match std::fs::read_to_string(self.base.join(rel)) {
            Ok(t) => Some(t),
            Err(e) => {
                self.skip(format!("{what}: file://{rel} cannot be read: {e}"));
                None
            }
        }
    }
}

/// Convert the promptfoo config at `path`.
pub(crate) fn import(path: &Path) -> Result<Imported, InputError> {
    let root = yaml(path)?;
    let Value::Object(cfg) = root else {
        return Err(InputError::plain(
            path,
            "not a promptfoo config (expected a mapping)",
        ));
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut cx = Ctx {
        base,
        unmapped: Vec::new(),
    };
    let known = [
        "description",
        "prompts",
        "providers",
        "tests",
        "defaultTest",
        "$schema",
    ];
    for k in cfg.keys() {
        if !known.contains(&k.as_str()) {
            cx.skip(format!("top-level `{k}`"));
        }
    }
    let title = cfg
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("Imported from promptfoo")
        .to_string();

    // prompts
    let mut prompts: Vec<(String, String)> = Vec::new();
    let prompt_list = match cfg.get("prompts") {
        Some(Value::Array(a)) => a.clone(),
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| serde_json::json!({"raw": k, "label": v}))
            .collect(),
        _ => Vec::new(),
    };
    for (i, p) in prompt_list.iter().enumerate() {
        let what = format!("prompts[{i}]");
        let (raw, label) = match p {
            Value::String(s) => (Some(s.clone()), None),
            Value::Object(m) => {
                for k in m.keys() {
                    if !["raw", "label", "id"].contains(&k.as_str()) {
                        cx.skip(format!("{what}.{k}"));
                    }
                }
                (
                    m.get("raw").or_else(|| m.get("id")).and_then(scalar),
                    m.get("label").and_then(scalar),
                )
            }
            _ => (None, None),
        };
        let Some(raw) = raw else {
            cx.skip(what);
            continue;
        };
        let text = match file_ref(&raw) {
            Some(rel) if rel.contains('*') => {
                cx.skip(format!("{what}: glob file://{rel}"));
                None
            }
            Some(rel) => cx.read(rel, &what),
            None => Some(raw.clone()),
        };
        let Some(text) = text else { continue };
        if text.contains("{%") || text.contains("| ") && text.contains("}}") && has_filter(&text) {
            cx.skip(format!(
                "{what}: nunjucks tags or filters (sent as written)"
            ));
        }
        let name = label.unwrap_or_else(|| {
            file_ref(&raw)
                .map(|r| r.to_string())
                .unwrap_or_else(|| format!("prompt {}", i + 1))
        });
        prompts.push((name, text));
    }
    if prompts.is_empty() {
        return Err(InputError::plain(path, "no prompt could be imported")
            .with_hint("prompts must be text or file:// text files"));
    }

    // providers
    struct Provider {
        name: String,
        id: String,
        temperature: Option<f64>,
        max_tokens: Option<i64>,
    }
    let mut providers: Vec<Provider> = Vec::new();
    let provider_list = match cfg.get("providers") {
        Some(Value::Array(a)) => a.clone(),
        Some(v @ Value::String(_)) | Some(v @ Value::Object(_)) => vec![v.clone()],
        _ => Vec::new(),
    };
    for (i, p) in provider_list.iter().enumerate() {
        let what = format!("providers[{i}]");
        let (id, label, config) = match p {
            Value::String(s) => (s.clone(), None, None),
            Value::Object(m) => {
                for k in m.keys() {
                    if !["id", "label", "config"].contains(&k.as_str()) {
                        cx.skip(format!("{what}.{k}"));
                    }
                }
                match m.get("id").and_then(Value::as_str) {
                    Some(id) => (
                        id.to_string(),
                        m.get("label").and_then(scalar),
                        m.get("config").cloned(),
                    ),
                    None => {
                        cx.skip(format!("{what} (no id)"));
                        continue;
                    }
                }
            }
            _ => continue,
        };
        if file_ref(&id).is_some() || id.starts_with("exec:") || id.starts_with("python:") {
            cx.skip(format!("{what}: custom provider {id}"));
            continue;
        }
        let mut temperature = None;
        let mut max_tokens = None;
        if let Some(Value::Object(c)) = &config {
            for (k, v) in c {
                match k.as_str() {
                    "temperature" => temperature = v.as_f64(),
                    "max_tokens" | "max_output_tokens" | "maxTokens" => max_tokens = v.as_i64(),
                    _ => cx.skip(format!("{what}.config.{k}")),
                }
            }
        }
        let name = label.unwrap_or_else(|| model_name(&id));
        providers.push(Provider {
            name: sanitize(&name),
            id,
            temperature,
            max_tokens,
        });
    }

    // tests
    let default_test = cfg.get("defaultTest").cloned().unwrap_or(Value::Null);
    let tests: Vec<Value> = match cfg.get("tests") {
        Some(Value::Array(a)) => {
            let mut out = Vec::new();
            for (i, t) in a.iter().enumerate() {
                match t {
                    Value::String(s) => {
                        out.extend(tests_from_file(&mut cx, s, &format!("tests[{i}]")))
                    }
                    other => out.push(other.clone()),
                }
            }
            out
        }
        Some(Value::String(s)) => tests_from_file(&mut cx, s, "tests"),
        _ => Vec::new(),
    };
    let mut rubrics: BTreeSet<String> = BTreeSet::new();
    let mut cases: Vec<toml::Table> = Vec::new();
    let mut names = BTreeSet::new();
    for (i, t) in tests.iter().enumerate() {
        let what = format!("tests[{i}]");
        let Value::Object(t) = t else {
            cx.skip(what);
            continue;
        };
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        let mut asserts: Vec<Value> = Vec::new();
        let mut description = None;
        for src in [&default_test, &Value::Object(t.clone())] {
            let Value::Object(m) = src else { continue };
            let is_default = std::ptr::eq(src, &default_test);
            let w = if is_default {
                "defaultTest".to_string()
            } else {
                what.clone()
            };
            for (k, v) in m {
                match k.as_str() {
                    "vars" => {
                        if let Value::Object(vs) = v {
                            for (name, val) in vs {
                                match scalar(val) {
                                    Some(s) => {
                                        let s = match file_ref(&s) {
                                            Some(rel) => match cx.read(rel, &format!("{w}.vars.{name}")) {
                                                Some(t) => t,
                                                None => continue,
                                            },
                                            None => s,
                                        };
                                        vars.insert(name.clone(), s);
                                    }
                                    None => cx.skip(format!(
                                        "{w}.vars.{name}: lists and objects (promptfoo expands lists into combinations)"
                                    )),
                                }
                            }
                        } else {
                            cx.skip(format!("{w}.vars (not a mapping)"));
                        }
                    }
                    "assert" => {
                        if let Value::Array(a) = v {
                            asserts.extend(a.iter().cloned());
                        }
                    }
                    "description" if !is_default => description = scalar(v),
                    _ => cx.skip(format!("{w}.{k}")),
                }
            }
        }
        let mut expect = toml::Table::new();
        let mut any: Vec<String> = Vec::new();
        let mut all: Vec<String> = Vec::new();
        let mut none: Vec<String> = Vec::new();
        let mut regex: Vec<String> = Vec::new();
        let mut sensitive = 0;
        let mut insensitive = 0;
        for (j, a) in asserts.iter().enumerate() {
            let w = format!("{what}.assert[{j}]");
            let Value::Object(a) = a else { continue };
            let kind = a.get("type").and_then(Value::as_str).unwrap_or("");
            for k in a.keys() {
                if !["type", "value"].contains(&k.as_str()) {
                    cx.skip(format!("{w}.{k} ({kind})"));
                }
            }
            let values: Vec<String> = match a.get("value") {
                Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
                Some(v) => scalar(v).into_iter().collect(),
                None => Vec::new(),
            };
            let values: Vec<String> = values.iter().map(|v| template::render(v, &vars)).collect();
            let ci = kind.contains("icontains");
            let case_kind = kind.starts_with("contains")
                || kind.starts_with("not-contains")
                || kind == "equals"
                || kind == "starts-with";
            match kind {
                "contains" | "icontains" | "contains-all" | "icontains-all" => all.extend(values),
                "contains-any" | "icontains-any" => any.extend(values),
                "not-contains" | "not-icontains" | "not-contains-any" | "not-icontains-any" => {
                    none.extend(values)
                }
                "equals" => match values.first() {
                    Some(v) if !expect.contains_key("equals") => {
                        expect.insert("equals".into(), v.clone().into());
                    }
                    _ => cx.skip(format!("{w}: a second equals")),
                },
                "regex" => regex.extend(values),
                "starts-with" => {
                    regex.extend(values.iter().map(|v| format!("^{}", regex::escape(v))))
                }
                "llm-rubric" => match values.first() {
                    Some(v) => {
                        rubrics.insert(v.clone());
                    }
                    None => cx.skip(format!("{w}: llm-rubric without a value")),
                },
                other => cx.skip(format!("{w}: assert type `{other}`")),
            }
            if ci {
                insensitive += 1;
            } else if case_kind {
                sensitive += 1;
            }
        }
        if regex.len() > 1 {
            // Several patterns must all match: one pattern of lookaheads is not available in
            // Rust's regex, so keep the first and report the rest.
            for r in &regex[1..] {
                cx.skip(format!("{what}: extra regex {r:?} (a case has one)"));
            }
        }
        for (k, v) in [("any", any), ("all", all), ("none", none)] {
            if !v.is_empty() {
                expect.insert(
                    k.into(),
                    toml::Value::Array(v.into_iter().map(Into::into).collect()),
                );
            }
        }
        if let Some(r) = regex.first() {
            expect.insert("regex".into(), r.clone().into());
        }
        if sensitive > 0 && insensitive == 0 {
            expect.insert("case_sensitive".into(), true.into());
        } else if sensitive > 0 {
            cx.skip(format!(
                "{what}: case-sensitive and -insensitive checks mixed (all made case-insensitive)"
            ));
        }
        let mut case = toml::Table::new();
        let mut name = description.unwrap_or_else(|| format!("test {}", i + 1));
        while !names.insert(name.clone()) {
            name.push('\'');
        }
        case.insert("name".into(), name.into());
        case.insert(
            "vars".into(),
            toml::Value::Table(vars.into_iter().map(|(k, v)| (k, v.into())).collect()),
        );
        if !expect.is_empty() {
            case.insert("expect".into(), toml::Value::Table(expect));
        }
        cases.push(case);
    }

    // Every var a prompt uses must be defined by every case: fill missing ones with "".
    let used: BTreeSet<String> = prompts
        .iter()
        .flat_map(|(_, t)| template::variables(t))
        .map(|v| v.name)
        .collect();
    for c in &mut cases {
        let name = c
            .get("name")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        if let Some(toml::Value::Table(vars)) = c.get_mut("vars") {
            for u in &used {
                if !vars.contains_key(u) {
                    vars.insert(u.clone(), "".into());
                    cx.unmapped.push(format!(
                        "case {name:?} does not set {{{{{u}}}}}: set to \"\""
                    ));
                }
            }
        }
    }

    let mut doc = toml::Table::new();
    doc.insert("title".into(), title.into());
    doc.insert(
        "description".into(),
        format!("Imported from {}", path.display()).into(),
    );
    let mut variants = Vec::new();
    let many = providers.len() > 1;
    let mut vnames = BTreeSet::new();
    for (pname, text) in &prompts {
        let targets: Vec<Option<&Provider>> = if providers.is_empty() {
            vec![None]
        } else {
            providers.iter().map(Some).collect()
        };
        for prov in targets {
            let mut v = toml::Table::new();
            let mut name = match (prov, many) {
                (Some(p), true) => format!("{pname} · {}", p.name),
                _ => pname.clone(),
            };
            while !vnames.insert(name.clone()) {
                name.push('\'');
            }
            v.insert("name".into(), name.into());
            if let Some(p) = prov {
                v.insert("model".into(), p.name.clone().into());
                if let Some(t) = p.temperature {
                    v.insert("temperature".into(), t.into());
                }
                if let Some(m) = p.max_tokens.filter(|m| *m > 0) {
                    v.insert("max_tokens".into(), m.into());
                }
            }
            v.insert("template".into(), text.trim_end().to_string().into());
            variants.push(toml::Value::Table(v));
        }
    }
    doc.insert("variant".into(), toml::Value::Array(variants));
    if !cases.is_empty() {
        doc.insert(
            "case".into(),
            toml::Value::Array(cases.into_iter().map(toml::Value::Table).collect()),
        );
    }
    match rubrics.len() {
        0 => {}
        1 => {
            let mut t = toml::Table::new();
            if let Some(r) = rubrics.iter().next() {
                t.insert("judge_rubric".into(), r.clone().into());
            }
            doc.insert("techniques".into(), toml::Value::Table(t));
        }
        n => cx.skip(format!(
            "llm-rubric: {n} different rubrics (a prompt file has one judge rubric)"
        )),
    }
    let toml = toml::to_string(&doc)
        .map_err(|e| InputError::plain(path, format!("cannot write the prompt file: {e}")))?;
    let models = providers
        .iter()
        .map(|p| (p.name.clone(), p.id.clone()))
        .collect();
    Ok(Imported {
        toml,
        unmapped: cx.unmapped,
        models,
    })
}

/// Does a `{{ … }}` use a nunjucks filter (`{{ x | upper }}`)?
fn has_filter(text: &str) -> bool {
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let Some(j) = rest[i..].find("}}") else { break };
        if rest[i..i + j].contains('|') {
            return true;
        }
        rest = &rest[i + j..];
    }
    false
}

/// `openai:gpt-4o-mini` → `gpt-4o-mini`; `openai:chat:gpt-4o` → `gpt-4o`.
fn model_name(id: &str) -> String {
    id.rsplit(':').next().unwrap_or(id).to_string()
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Tests from `file://tests.csv` (promptfoo's CSV: columns are vars, `__expected…` columns
/// are assertions such as `icontains: Paris`) or `file://tests.yaml`.
fn tests_from_file(cx: &mut Ctx, s: &str, what: &str) -> Vec<Value> {
    let Some(rel) = file_ref(s) else {
        cx.skip(format!("{what}: {s}"));
        return Vec::new();
    };
    let p = cx.base.join(rel);
    let ext = p
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "csv" => {
            let mut out = Vec::new();
            let mut r = match csv::Reader::from_path(&p) {
                Ok(r) => r,
                Err(e) => {
                    cx.skip(format!("{what}: {}: {e}", p.display()));
                    return out;
                }
            };
            let headers = match r.headers() {
                Ok(h) => h.clone(),
                Err(e) => {
                    cx.skip(format!("{what}: {}: {e}", p.display()));
                    return out;
                }
            };
            for (row, rec) in r.records().enumerate() {
                let Ok(rec) = rec else {
                    cx.skip(format!("{what}: {} row {}", p.display(), row + 2));
                    continue;
                };
                let mut vars = serde_json::Map::new();
                let mut asserts = Vec::new();
                let mut description = None;
                for (h, v) in headers.iter().zip(rec.iter()) {
                    if h.starts_with("__expected") {
                        if v.is_empty() {
                            continue;
                        }
                        let (kind, value) = match v.split_once(':') {
                            Some((k, val)) if !k.contains(' ') => {
                                (k.trim().to_string(), val.trim().to_string())
                            }
                            _ => ("equals".to_string(), v.to_string()),
                        };
                        asserts.push(serde_json::json!({"type": kind, "value": value}));
                    } else if h == "__description" {
                        description = Some(v.to_string());
                    } else if h.starts_with("__") {
                        cx.skip(format!("{what}: CSV column {h}"));
                    } else {
                        vars.insert(h.to_string(), Value::String(v.to_string()));
                    }
                }
                let mut t = serde_json::json!({"vars": vars, "assert": asserts});
                if let Some(d) = description {
                    t["description"] = Value::String(d);
                }
                out.push(t);
            }
            out
        }
        "yaml" | "yml" => match yaml(&p) {
            Ok(Value::Array(a)) => a,
            Ok(_) => {
                cx.skip(format!("{what}: {} is not a list of tests", p.display()));
                Vec::new()
            }
            Err(e) => {
                cx.skip(format!("{what}: {e}"));
                Vec::new()
            }
        },
        _ => {
            cx.skip(format!("{what}: tests from {rel}"));
            Vec::new()
        }
    }
}

/// `promptloom import`: write the file (never over an existing one) and report.
pub(crate) fn run(
    config: &Path,
    out: Option<PathBuf>,
    models: &[String],
) -> anyhow::Result<std::process::ExitCode> {
    let imported = import(config)?;
    let out = out.unwrap_or_else(|| config.with_extension("toml"));
    if out.exists() {
        anyhow::bail!("{} exists; choose another -o path", out.display());
    }
    // The result must be a valid prompt file, with its models taken as configured.
    let mut names: Vec<String> = models.to_vec();
    names.extend(imported.models.iter().map(|(n, _)| n.clone()));
    let default = names.first().cloned().unwrap_or_default();
    crate::prompt::parse(&out, &imported.toml, &names, &default)
        .map_err(|e| anyhow::anyhow!("the imported file does not validate: {e}"))?;
    crate::store::write_atomic(&out, imported.toml.as_bytes())?;
    println!("wrote {}", out.display());
    for (name, id) in &imported.models {
        if !models.contains(name) {
            println!("model {name:?} (promptfoo provider {id}) is not configured: add [models.{name}] to config.toml");
        }
    }
    if imported.unmapped.is_empty() {
        println!("every field was mapped");
    } else {
        println!("not mapped ({}):", imported.unmapped.len());
        for u in &imported.unmapped {
            println!("  {u}");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_documented_config_maps_prompts_providers_tests_and_asserts() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "prompt2.txt", "Answer briefly: {{question}}\n");
        write(dir.path(), "context.txt", "Paris is the capital of France.");
        let cfg = write(
            dir.path(),
            "promptfooconfig.yaml",
            r#"description: Capitals
prompts:
  - "What is the capital of {{country}}?"
  - file://prompt2.txt
providers:
  - openai:gpt-4o-mini
  - id: ollama:chat:llama3
    label: llama
    config:
      temperature: 0.2
      max_tokens: 64
      num_ctx: 4096
defaultTest:
  assert:
    - type: not-icontains
      value: As an AI
tests:
  - description: france
    vars:
      country: France
      question: "Capital of {{country}}?"
      doc: file://context.txt
    assert:
      - type: icontains
        value: "{{country}}"
      - type: icontains-any
        value: [Paris, paris]
      - type: starts-with
        value: The
      - type: llm-rubric
        value: Is polite
      - type: javascript
        value: output.length < 100
  - vars:
      country: Peru
      question: Capital?
      doc: none
    assert:
      - type: equals
        value: Lima
      - type: regex
        value: "^L"
      - type: llm-rubric
        value: Is polite
"#,
        );
        let got = import(&cfg).unwrap();
        let doc: toml::Table = toml::from_str(&got.toml).unwrap();
        let variants = doc["variant"].as_array().unwrap();
        assert_eq!(variants.len(), 4, "{}", got.toml);
        assert_eq!(variants[0]["name"].as_str(), Some("prompt 1 · gpt-4o-mini"));
        assert_eq!(variants[1]["model"].as_str(), Some("llama"));
        assert_eq!(variants[1]["temperature"].as_float(), Some(0.2));
        assert_eq!(
            variants[3]["template"].as_str(),
            Some("Answer briefly: {{question}}")
        );
        let cases = doc["case"].as_array().unwrap();
        assert_eq!(cases[0]["name"].as_str(), Some("france"));
        assert_eq!(
            cases[0]["vars"]["doc"].as_str(),
            Some("Paris is the capital of France.")
        );
        let e = &cases[0]["expect"];
        assert_eq!(e["all"].as_array().unwrap()[0].as_str(), Some("France"));
        assert_eq!(e["any"].as_array().unwrap().len(), 2);
        assert_eq!(e["none"].as_array().unwrap()[0].as_str(), Some("As an AI"));
        assert_eq!(e["regex"].as_str(), Some("^The"));
        assert_eq!(cases[1]["expect"]["equals"].as_str(), Some("Lima"));
        assert_eq!(
            doc["techniques"]["judge_rubric"].as_str(),
            Some("Is polite")
        );
        let u = got.unmapped.join("\n");
        assert!(u.contains("providers[1].config.num_ctx"), "{u}");
        assert!(
            u.contains("tests[0].assert[5]: assert type `javascript`"),
            "{u}"
        );
        assert!(
            u.contains("tests[0]: case-sensitive and -insensitive checks mixed"),
            "{u}"
        );
        assert_eq!(
            got.models,
            vec![
                ("gpt-4o-mini".into(), "openai:gpt-4o-mini".into()),
                ("llama".into(), "ollama:chat:llama3".into())
            ]
        );
        // It is a valid prompt file.
        let names = vec!["gpt-4o-mini".to_string(), "llama".to_string()];
        crate::prompt::parse(&dir.path().join("out.toml"), &got.toml, &names, "llama").unwrap();
    }

    #[test]
    fn csv_tests_and_unmappable_fields_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "tests.csv",
            "question,__expected,__description\nCapital of France?,icontains: paris,fr\nCapital of Peru?,Lima,pe\n",
        );
        let cfg = write(
            dir.path(),
            "promptfooconfig.yaml",
            "prompts: ['{{question}}']\nproviders: [file://provider.py]\ntests: file://tests.csv\nscenarios: []\n",
        );
        let got = import(&cfg).unwrap();
        let doc: toml::Table = toml::from_str(&got.toml).unwrap();
        let cases = doc["case"].as_array().unwrap();
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0]["name"].as_str(), Some("fr"));
        assert_eq!(
            cases[0]["expect"]["all"].as_array().unwrap()[0].as_str(),
            Some("paris")
        );
        assert_eq!(cases[1]["expect"]["equals"].as_str(), Some("Lima"));
        let u = got.unmapped.join("\n");
        assert!(u.contains("top-level `scenarios`"), "{u}");
        assert!(u.contains("custom provider file://provider.py"), "{u}");
        assert!(doc["variant"].as_array().unwrap()[0].get("model").is_none());
    }
}
