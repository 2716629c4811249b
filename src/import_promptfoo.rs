//! `promptloom import promptfooconfig.yaml [-o out.toml]`: a promptfoo suite as a prompt file.
//!
//! Mapped: `description` → title; `prompts` (text, `file://` text files, `{raw, label}`) →
//! variants, a `.txt` file holding several prompts separated by `---` lines giving one variant
//! each; chat prompts (`file://prompt.json`/`.yaml`/`.jsonl` or an inline JSON string holding
//! `[{role, content}, …]`) → the first system message as the variant's `system`, the last user
//! message as its `template`, earlier user/assistant pairs as `examples`; `providers` (or
//! `targets`; ids or `{id, label, config}`) → each variant's model (one variant per prompt ×
//! provider when there are several), with `temperature`, `top_p`, `top_k`, `seed`, `stop` and
//! `max_tokens` (also `max_completion_tokens`, `max_new_tokens`, `maxOutputTokens`);
//! `tests` (inline, `file://` CSV, YAML, JSON or JSONL) with `vars` (text, numbers, `file://`
//! text files) and `assert` → checks; `defaultTest` (inline or `file://`) merged into every
//! test, its `options.provider` (the grader) → `[techniques] judge_model`. Assertions:
//! `contains`, `icontains`, `contains-any`/`-all` (and `i` forms) → any/all; `not-contains`,
//! `not-icontains`, `not-contains-any` → none; `equals` → equals; `regex` → regex;
//! `starts-with` → an anchored regex; `llm-rubric` → the file's judge rubric (`[techniques]`)
//! when every test uses the same one. promptfoo's `{{ var }}` syntax is ours too; values in
//! assertions are filled from the test's vars at import time.
//!
//! Everything else (providers' other settings, scripts and prompt functions, image parts,
//! other assertion types, nunjucks tags and filters, `scenarios`, …) is listed as not mapped,
//! a `defaultTest` field once rather than once per test; the output is checked by parsing it
//! back before it is written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::InputError;
use crate::prompt::template;

/// promptfoo's separator between the prompts of one `.txt` file (`PROMPT_DELIMITER`).
pub(crate) const PROMPT_SEPARATOR: &str = "---";

/// The result of an import.
#[derive(Debug)]
pub(crate) struct Imported {
    pub toml: String,
    /// Fields that could not be mapped, with where they were.
    pub unmapped: Vec<String>,
    /// Model names the file uses (the variants' and the judge's), to configure.
    pub models: Vec<(String, String)>,
}

fn yaml(path: &Path) -> Result<Value, InputError> {
    let text = std::fs::read_to_string(path).map_err(|e| InputError::io(path, &e))?;
    yaml_text(path, &text)
}

fn yaml_text(path: &Path, text: &str) -> Result<Value, InputError> {
    serde_yaml_ng::from_str(text).map_err(|e| {
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

fn extension(rel: &str) -> String {
    Path::new(rel)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
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
    /// Notes already made by [`Ctx::skip_once`].
    once: BTreeSet<String>,
}

impl Ctx<'_> {
    fn skip(&mut self, what: impl Into<String>) {
        self.unmapped.push(what.into());
    }

    /// A note about something every test shares (`defaultTest`): made once, not per test.
    fn skip_once(&mut self, what: impl Into<String>) {
        let what = what.into();
        if self.once.insert(what.clone()) {
            self.unmapped.push(what);
        }
    }

    /// [`Ctx::skip_once`] for what comes from `defaultTest`, [`Ctx::skip`] otherwise.
    fn note(&mut self, shared: bool, what: String) {
        if shared {
            self.skip_once(what)
        } else {
            self.skip(what)
        }
    }

    /// A `file://` text file's contents, relative to the config.
    fn read(&mut self, rel: &str, what: &str) -> Option<String> {
        let rel = rel.split(':').next().unwrap_or(rel);
        let ext = extension(rel);
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

/// One imported prompt: what a variant takes from it.
#[derive(Debug, Clone, PartialEq)]
struct Prompt {
    name: String,
    system: Option<String>,
    /// Few-shot (user, assistant) pairs.
    examples: Vec<(String, String)>,
    template: String,
}

impl Prompt {
    fn text(name: String, template: String) -> Prompt {
        Prompt {
            name,
            system: None,
            examples: Vec::new(),
            template,
        }
    }

    /// Every text of the prompt that is filled from a case's vars.
    fn filled_texts(&self) -> impl Iterator<Item = &str> + '_ {
        std::iter::once(self.template.as_str())
            .chain(self.system.as_deref())
            .chain(self.examples.iter().map(|(input, _)| input.as_str()))
    }
}

/// `name`, or `name #k` when a source holds several prompts.
fn numbered(name: &str, k: usize, of: usize) -> String {
    if of > 1 {
        format!("{name} #{}", k + 1)
    } else {
        name.to_string()
    }
}

/// The prompts of a `.txt` file: parts between lines that are just the separator, trimmed,
/// empty ones dropped (promptfoo's `processTxtFile`).
fn split_prompts(text: &str, separator: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut buffer: Vec<&str> = Vec::new();
    for line in text.lines().chain(std::iter::once(separator)) {
        if line.trim() == separator {
            let part = buffer.join("\n").trim().to_string();
            if !part.is_empty() {
                parts.push(part);
            }
            buffer.clear();
        } else {
            buffer.push(line);
        }
    }
    parts
}

/// A chat prompt (`[{role, content}, …]`): a leading system (or developer) message → `system`,
/// the last message, which must be the user's → `template`, the messages between →
/// user/assistant example pairs. Anything else (images, other roles or orders) is reported and
/// the prompt is not imported.
fn chat_prompt(cx: &mut Ctx, what: &str, name: String, messages: &[Value]) -> Option<Prompt> {
    let mut turns: Vec<(String, String)> = Vec::new();
    for (k, m) in messages.iter().enumerate() {
        let w = format!("{what}: messages[{k}]");
        let Value::Object(m) = m else {
            cx.skip(format!(
                "{w} is not a {{role, content}} message; prompt not imported"
            ));
            return None;
        };
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        for key in m.keys() {
            if !["role", "content"].contains(&key.as_str()) {
                cx.skip(format!("{w}.{key}"));
            }
        }
        let content = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => {
                let mut texts = Vec::new();
                for part in parts {
                    match part {
                        Value::String(s) => texts.push(s.clone()),
                        Value::Object(p)
                            if p.get("type").and_then(Value::as_str) == Some("text") =>
                        {
                            match p.get("text").and_then(Value::as_str) {
                                Some(t) => texts.push(t.to_string()),
                                None => {
                                    cx.skip(format!(
                                        "{w}: a text part without text; prompt not imported"
                                    ));
                                    return None;
                                }
                            }
                        }
                        other => {
                            let kind = other.get("type").and_then(Value::as_str).unwrap_or("?");
                            cx.skip(format!(
                                "{w}: a `{kind}` content part (only text is mapped); prompt not imported"
                            ));
                            return None;
                        }
                    }
                }
                texts.join("\n")
            }
            _ => {
                cx.skip(format!("{w} has no text content; prompt not imported"));
                return None;
            }
        };
        turns.push((role.to_string(), content));
    }
    let mut rest = turns.as_slice();
    let mut system = None;
    if let Some(((role, content), tail)) = rest.split_first() {
        if role == "system" || role == "developer" {
            system = Some(content.clone());
            rest = tail;
        }
    }
    let Some(((role, template), middle)) = rest.split_last() else {
        cx.skip(format!("{what}: no user message; prompt not imported"));
        return None;
    };
    if role != "user" {
        cx.skip(format!(
            "{what}: the last message is the `{role}`'s, not the user's; prompt not imported"
        ));
        return None;
    }
    let paired = middle.len() % 2 == 0
        && middle
            .chunks(2)
            .all(|p| p[0].0 == "user" && p[1].0 == "assistant");
    if !paired {
        let roles: Vec<&str> = turns.iter().map(|(r, _)| r.as_str()).collect();
        cx.skip(format!(
            "{what}: messages ({}) are not [system,] user/assistant pairs, then user; prompt not imported",
            roles.join(", ")
        ));
        return None;
    }
    let examples: Vec<(String, String)> = middle
        .chunks(2)
        .map(|p| (p[0].1.clone(), p[1].1.clone()))
        .collect();
    if examples
        .iter()
        .any(|(_, out)| !template::variables(out).is_empty())
    {
        cx.skip(format!(
            "{what}: an assistant message uses {{{{vars}}}} (example answers are sent as written)"
        ));
    }
    Some(Prompt {
        name,
        system,
        examples,
        template: template.clone(),
    })
}

/// The prompts in `file://rel`: text files (split on separator lines for `.txt`), chat
/// message lists in JSON/YAML (one per line in JSONL); prompt functions are reported.
fn prompt_file(cx: &mut Ctx, rel: &str, what: &str, name: &str, separator: &str) -> Vec<Prompt> {
    let file = rel.split(':').next().unwrap_or(rel);
    let ext = extension(file);
    if matches!(ext.as_str(), "js" | "ts" | "mjs" | "cjs" | "py") {
        cx.skip(format!(
            "{what}: file://{rel} (a {ext} prompt function: not mapped)"
        ));
        return Vec::new();
    }
    let path = cx.base.join(file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            cx.skip(format!("{what}: file://{file} cannot be read: {e}"));
            return Vec::new();
        }
    };
    let what = format!("{what}: file://{file}");
    if !matches!(ext.as_str(), "json" | "jsonl" | "yaml" | "yml") {
        let parts = if ext == "txt" {
            split_prompts(&text, separator)
        } else {
            vec![text]
        };
        let of = parts.len();
        return parts
            .into_iter()
            .enumerate()
            .map(|(k, t)| Prompt::text(numbered(name, k, of), t))
            .collect();
    }
    if text.contains("{%") {
        cx.skip(format!(
            "{what} builds its messages with nunjucks tags ({{% %}}): not mapped"
        ));
        return Vec::new();
    }
    let values: Vec<Value> = if ext == "jsonl" {
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(line) {
                Ok(v) => out.push(v),
                Err(e) => cx.skip(format!("{what} line {}: {e}", n + 1)),
            }
        }
        out
    } else {
        match yaml_text(&path, &text) {
            Ok(v) => vec![v],
            Err(e) => {
                cx.skip(format!(
                    "{what}: not a chat message list ({}); prompt not imported",
                    e.message
                ));
                return Vec::new();
            }
        }
    };
    let of = values.len();
    let mut out = Vec::new();
    for (k, v) in values.iter().enumerate() {
        let w = if of > 1 {
            format!("{what} #{}", k + 1)
        } else {
            what.clone()
        };
        match v {
            Value::String(s) => out.push(Prompt::text(numbered(name, k, of), s.clone())),
            Value::Array(messages) => {
                out.extend(chat_prompt(cx, &w, numbered(name, k, of), messages))
            }
            _ => cx.skip(format!(
                "{w} is not a list of chat messages; prompt not imported"
            )),
        }
    }
    out
}

/// An inline prompt that is a JSON chat message list (promptfoo sends those as chat).
fn inline_chat(raw: &str) -> Option<Vec<Value>> {
    if !raw.trim_start().starts_with('[') {
        return None;
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Array(messages))
            if messages
                .iter()
                .all(|m| m.get("role").is_some_and(Value::is_string)) =>
        {
            Some(messages)
        }
        _ => None,
    }
}

/// A provider's sampling settings that a variant can carry.
#[derive(Debug, Default)]
struct Settings {
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u64>,
    max_tokens: Option<i64>,
    seed: Option<u64>,
    stop: Vec<String>,
}

impl Settings {
    /// Take `config.key` if it is a sampling setting (under any of promptfoo's providers'
    /// spellings); false when it is not one or its value has the wrong type.
    fn take(&mut self, key: &str, v: &Value) -> bool {
        match key {
            "temperature" => set(&mut self.temperature, v.as_f64()),
            "top_p" | "topP" => set(&mut self.top_p, v.as_f64()),
            "top_k" | "topK" => set(&mut self.top_k, v.as_u64()),
            "seed" => set(&mut self.seed, v.as_u64()),
            "max_tokens"
            | "max_output_tokens"
            | "maxTokens"
            | "maxOutputTokens"
            | "max_completion_tokens"
            | "max_new_tokens" => set(&mut self.max_tokens, v.as_i64()),
            "stop" | "stop_sequences" | "stopSequences" => {
                let stop: Option<Vec<String>> = match v {
                    Value::String(s) => Some(vec![s.clone()]),
                    Value::Array(a) => a.iter().map(|s| s.as_str().map(String::from)).collect(),
                    _ => None,
                };
                match stop {
                    Some(s) => {
                        self.stop = s;
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        }
    }
}

/// Store `v` in `slot` if there is one; whether there was.
fn set<T>(slot: &mut Option<T>, v: Option<T>) -> bool {
    let found = v.is_some();
    if found {
        *slot = v;
    }
    found
}

struct Provider {
    name: String,
    id: String,
    settings: Settings,
}

fn is_custom_provider(id: &str) -> bool {
    file_ref(id).is_some() || id.starts_with("exec:") || id.starts_with("python:")
}

/// The grader a `defaultTest.options.provider` names, as the judge model (name, id): a
/// string id, `{id, label, config}` or `{text, embedding}`. A grader that is also a provider
/// under test takes that provider's name.
fn grader(cx: &mut Ctx, v: &Value, what: &str, providers: &[Provider]) -> Option<(String, String)> {
    let (id, label) = match v {
        Value::String(id) => (id.clone(), None),
        Value::Object(m) if m.contains_key("id") => {
            for k in m.keys() {
                if !["id", "label"].contains(&k.as_str()) {
                    grader_field(cx, what, k);
                }
            }
            match m.get("id").and_then(Value::as_str) {
                Some(id) => (id.to_string(), m.get("label").and_then(scalar)),
                None => {
                    cx.skip_once(format!("{what}.id (not text)"));
                    return None;
                }
            }
        }
        Value::Object(m) => {
            let mut judge = None;
            for (k, v) in m {
                if k == "text" {
                    judge = grader(cx, v, &format!("{what}.text"), providers);
                } else {
                    grader_field(cx, what, k);
                }
            }
            return judge;
        }
        _ => {
            cx.skip_once(what.to_string());
            return None;
        }
    };
    if is_custom_provider(&id) {
        cx.skip_once(format!("{what}: custom grader {id}"));
        return None;
    }
    let lower = id.to_ascii_lowercase();
    if ["embedding", "classification", "classifier"]
        .iter()
        .any(|k| lower.contains(k))
    {
        cx.skip_once(format!(
            "{what}: {id} (an embedding or classifier grader, not a judge model)"
        ));
        return None;
    }
    let name = providers
        .iter()
        .find(|p| p.id == id)
        .map(|p| p.name.clone())
        .unwrap_or_else(|| sanitize(&label.unwrap_or_else(|| model_name(&id))));
    Some((name, id))
}

/// A grader field other than the judge's id: reported once.
fn grader_field(cx: &mut Ctx, what: &str, key: &str) {
    cx.skip_once(match key {
        "embedding" => format!("{what}.embedding (an embedding model, for `similar`)"),
        "config" => format!("{what}.config (the judge model's settings go in its [models.NAME])"),
        _ => format!("{what}.{key}"),
    });
}

/// A test's (or defaultTest's) `vars` into `vars`.
fn read_vars(cx: &mut Ctx, v: &Value, w: &str, vars: &mut BTreeMap<String, String>) {
    let Value::Object(vs) = v else {
        cx.skip(format!("{w}.vars (not a mapping)"));
        return;
    };
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
}

/// `defaultTest`: inline, or `file://shared/defaultTest.yaml`.
fn default_test(cx: &mut Ctx, v: Option<&Value>) -> serde_json::Map<String, Value> {
    match v {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(Value::String(s)) => {
            let Some(rel) = file_ref(s) else {
                cx.skip(format!("defaultTest: {s}"));
                return serde_json::Map::new();
            };
            let ext = extension(rel);
            if !matches!(ext.as_str(), "yaml" | "yml" | "json") {
                cx.skip(format!(
                    "defaultTest: file://{rel} ({ext} files are not read)"
                ));
                return serde_json::Map::new();
            }
            match yaml(&cx.base.join(rel)) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    cx.skip(format!("defaultTest: file://{rel} is not a mapping"));
                    serde_json::Map::new()
                }
                Err(e) => {
                    cx.skip(format!("defaultTest: {e}"));
                    serde_json::Map::new()
                }
            }
        }
        Some(_) => {
            cx.skip("defaultTest (not a mapping)");
            serde_json::Map::new()
        }
    }
}

/// Convert the promptfoo config at `path`, with promptfoo's default prompt separator.
#[cfg(test)]
pub(crate) fn import(path: &Path) -> Result<Imported, InputError> {
    import_with(path, PROMPT_SEPARATOR)
}

/// Convert the promptfoo config at `path`; `separator` splits `.txt` prompt files.
pub(crate) fn import_with(path: &Path, separator: &str) -> Result<Imported, InputError> {
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
        once: BTreeSet::new(),
    };
    let known = [
        "description",
        "prompts",
        "providers",
        "targets",
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
    let mut prompts: Vec<Prompt> = Vec::new();
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
        let name = label.unwrap_or_else(|| {
            file_ref(&raw)
                .map(|r| r.to_string())
                .unwrap_or_else(|| format!("prompt {}", i + 1))
        });
        let found = match file_ref(&raw) {
            Some(rel) if rel.contains('*') => {
                cx.skip(format!("{what}: glob file://{rel}"));
                Vec::new()
            }
            Some(rel) => prompt_file(&mut cx, rel, &what, &name, separator),
            None => match inline_chat(&raw) {
                Some(messages) => chat_prompt(&mut cx, &what, name, &messages)
                    .into_iter()
                    .collect(),
                None => vec![Prompt::text(name, raw.clone())],
            },
        };
        for p in found {
            if p.filled_texts()
                .any(|t| t.contains("{%") || t.contains("| ") && t.contains("}}") && has_filter(t))
            {
                cx.skip(format!(
                    "{what}: nunjucks tags or filters (sent as written)"
                ));
            }
            prompts.push(p);
        }
    }
    if prompts.is_empty() {
        let why: Vec<&str> = cx
            .unmapped
            .iter()
            .filter(|u| u.starts_with("prompts"))
            .map(String::as_str)
            .collect();
        let message = if why.is_empty() {
            "no prompt could be imported".to_string()
        } else {
            format!("no prompt could be imported: {}", why.join("; "))
        };
        return Err(InputError::plain(path, message).with_hint(
            "prompts must be text, file:// text files or chat message lists ([{role, content}] in .json/.yaml)",
        ));
    }

    // providers (`targets` is promptfoo's other name for them)
    let mut providers: Vec<Provider> = Vec::new();
    let provider_value = match (cfg.get("providers"), cfg.get("targets")) {
        (Some(p), Some(_)) => {
            cx.skip("top-level `targets` (providers is set too)");
            Some(p)
        }
        (p, t) => p.or(t),
    };
    let provider_list = match provider_value {
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
        if is_custom_provider(&id) {
            cx.skip(format!("{what}: custom provider {id}"));
            continue;
        }
        let mut settings = Settings::default();
        if let Some(Value::Object(c)) = &config {
            for (k, v) in c {
                if !settings.take(k, v) {
                    cx.skip(format!("{what}.config.{k}"));
                }
            }
        }
        let name = label.unwrap_or_else(|| model_name(&id));
        providers.push(Provider {
            name: sanitize(&name),
            id,
            settings,
        });
    }

    // defaultTest: read once, its unmapped fields reported once
    let default = default_test(&mut cx, cfg.get("defaultTest"));
    let mut default_vars: BTreeMap<String, String> = BTreeMap::new();
    let mut default_asserts: Vec<Value> = Vec::new();
    let mut judge: Option<(String, String)> = None;
    for (k, v) in &default {
        match k.as_str() {
            "vars" => read_vars(&mut cx, v, "defaultTest", &mut default_vars),
            "assert" => match v {
                Value::Array(a) => default_asserts = a.clone(),
                _ => cx.skip("defaultTest.assert (not a list)"),
            },
            "options" => match v {
                Value::Object(o) => {
                    for (k, v) in o {
                        if k == "provider" {
                            judge = grader(&mut cx, v, "defaultTest.options.provider", &providers);
                        } else {
                            cx.skip(format!("defaultTest.options.{k}"));
                        }
                    }
                }
                _ => cx.skip("defaultTest.options (not a mapping)"),
            },
            _ => cx.skip(format!("defaultTest.{k}")),
        }
    }

    // tests
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
        let mut vars = default_vars.clone();
        // (where, from defaultTest, the assertion); numbered as one merged list, as before.
        let mut asserts: Vec<(String, bool, Value)> = default_asserts
            .iter()
            .enumerate()
            .map(|(j, a)| (format!("defaultTest.assert[{j}]"), true, a.clone()))
            .collect();
        let mut description = None;
        for (k, v) in t {
            match k.as_str() {
                "vars" => read_vars(&mut cx, v, &what, &mut vars),
                "assert" => {
                    if let Value::Array(a) = v {
                        for a in a {
                            let j = asserts.len();
                            asserts.push((format!("{what}.assert[{j}]"), false, a.clone()));
                        }
                    }
                }
                "description" => description = scalar(v),
                _ => cx.skip(format!("{what}.{k}")),
            }
        }
        let mut expect = toml::Table::new();
        let mut any: Vec<String> = Vec::new();
        let mut all: Vec<String> = Vec::new();
        let mut none: Vec<String> = Vec::new();
        let mut regex: Vec<String> = Vec::new();
        let mut sensitive = 0;
        let mut insensitive = 0;
        for (w, shared, a) in &asserts {
            let Value::Object(a) = a else { continue };
            let kind = a.get("type").and_then(Value::as_str).unwrap_or("");
            for k in a.keys() {
                if !["type", "value"].contains(&k.as_str()) {
                    cx.note(*shared, format!("{w}.{k} ({kind})"));
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
                    _ => cx.skip(format!("{what}: a second equals")),
                },
                "regex" => regex.extend(values),
                "starts-with" => {
                    regex.extend(values.iter().map(|v| format!("^{}", regex::escape(v))))
                }
                "llm-rubric" => match values.first() {
                    Some(v) => {
                        rubrics.insert(v.clone());
                    }
                    None => cx.note(*shared, format!("{w}: llm-rubric without a value")),
                },
                other => cx.note(*shared, format!("{w}: assert type `{other}`")),
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
        .flat_map(Prompt::filled_texts)
        .flat_map(template::variables)
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
    for prompt in &prompts {
        let targets: Vec<Option<&Provider>> = if providers.is_empty() {
            vec![None]
        } else {
            providers.iter().map(Some).collect()
        };
        for prov in targets {
            let mut v = toml::Table::new();
            let mut name = match (prov, many) {
                (Some(p), true) => format!("{} · {}", prompt.name, p.name),
                _ => prompt.name.clone(),
            };
            while !vnames.insert(name.clone()) {
                name.push('\'');
            }
            v.insert("name".into(), name.into());
            if let Some(p) = prov {
                v.insert("model".into(), p.name.clone().into());
                let s = &p.settings;
                if let Some(t) = s.temperature {
                    v.insert("temperature".into(), t.into());
                }
                if let Some(t) = s.top_p {
                    v.insert("top_p".into(), t.into());
                }
                if let Some(k) = s.top_k.and_then(|k| i64::try_from(k).ok()) {
                    v.insert("top_k".into(), k.into());
                }
                if let Some(m) = s.max_tokens.filter(|m| *m > 0) {
                    v.insert("max_tokens".into(), m.into());
                }
                if let Some(seed) = s.seed.and_then(|k| i64::try_from(k).ok()) {
                    v.insert("seed".into(), seed.into());
                }
                if !s.stop.is_empty() {
                    v.insert(
                        "stop".into(),
                        toml::Value::Array(s.stop.iter().cloned().map(Into::into).collect()),
                    );
                }
            }
            if let Some(system) = &prompt.system {
                v.insert("system".into(), system.trim_end().to_string().into());
            }
            if !prompt.examples.is_empty() {
                let examples = prompt
                    .examples
                    .iter()
                    .map(|(input, output)| {
                        let mut e = toml::Table::new();
                        e.insert("input".into(), input.clone().into());
                        e.insert("output".into(), output.clone().into());
                        toml::Value::Table(e)
                    })
                    .collect();
                v.insert("examples".into(), toml::Value::Array(examples));
            }
            v.insert(
                "template".into(),
                prompt.template.trim_end().to_string().into(),
            );
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
    let mut techniques = toml::Table::new();
    match rubrics.len() {
        0 => {}
        1 => {
            if let Some(r) = rubrics.iter().next() {
                techniques.insert("judge_rubric".into(), r.clone().into());
            }
        }
        n => cx.skip(format!(
            "llm-rubric: {n} different rubrics (a prompt file has one judge rubric)"
        )),
    }
    if let Some((name, _)) = &judge {
        techniques.insert("judge_model".into(), name.clone().into());
    }
    if !techniques.is_empty() {
        doc.insert("techniques".into(), toml::Value::Table(techniques));
    }
    let toml = toml::to_string(&doc)
        .map_err(|e| InputError::plain(path, format!("cannot write the prompt file: {e}")))?;
    let mut models: Vec<(String, String)> = providers
        .iter()
        .map(|p| (p.name.clone(), p.id.clone()))
        .collect();
    if let Some((name, id)) = judge {
        if !models.iter().any(|(n, _)| *n == name) {
            models.push((name, id));
        }
    }
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
/// are assertions such as `icontains: Paris`), `file://tests.yaml`/`.json` (a list) or
/// `file://tests.jsonl` (one test per line).
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
        "yaml" | "yml" | "json" => match yaml(&p) {
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
        "jsonl" => {
            let text = match std::fs::read_to_string(&p) {
                Ok(t) => t,
                Err(e) => {
                    cx.skip(format!("{what}: {}: {e}", p.display()));
                    return Vec::new();
                }
            };
            let mut out = Vec::new();
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Value>(line) {
                    Ok(t) => out.push(t),
                    Err(e) => cx.skip(format!("{what}: {} line {}: {e}", p.display(), n + 1)),
                }
            }
            out
        }
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
    let separator = std::env::var("PROMPTFOO_PROMPT_SEPARATOR")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| PROMPT_SEPARATOR.to_string());
    let imported = import_with(config, &separator)?;
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

    /// Parse an import with our prompt parser, every model it names configured.
    fn parsed(dir: &Path, got: &Imported) -> crate::prompt::PromptFile {
        let names: Vec<String> = got.models.iter().map(|(n, _)| n.clone()).collect();
        let default = names.first().cloned().unwrap_or_else(|| "m".to_string());
        let names = if names.is_empty() {
            vec![default.clone()]
        } else {
            names
        };
        crate::prompt::parse(&dir.join("out.toml"), &got.toml, &names, &default)
            .unwrap_or_else(|e| panic!("{e}\n{}", got.toml))
    }

    fn sent(
        file: &crate::prompt::PromptFile,
        variant: usize,
        case: usize,
    ) -> Vec<(crate::chat::Role, String)> {
        crate::prompt::render::messages(&file.variants[variant], &file.cases[case].vars)
            .into_iter()
            .map(|m| (m.role, m.content))
            .collect()
    }

    #[test]
    fn chat_prompt_files_become_system_examples_and_template() {
        use crate::chat::Role::{Assistant, System, User};
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "prompt1.json",
            r#"[
  { "role": "system", "content": "You are a sports historian." },
  { "role": "user", "content": "Who won the world series in 1990?" },
  { "role": "assistant", "content": "The Cincinnati Reds." },
  { "role": "user", "content": "Who won the world series in {{ year }}?" }
]"#,
        );
        write(
            dir.path(),
            "prompt.yaml",
            "- role: system\n  content: |\n    Answer in {{ language }}.\n- role: user\n  content: '{{ content }}'\n",
        );
        write(
            dir.path(),
            "prompts.jsonl",
            "[{\"role\": \"user\", \"content\": \"One: {{content}}\"}]\n\n[{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Two:\"}, {\"type\": \"text\", \"text\": \"{{content}}\"}]}]\n",
        );
        let cfg = write(
            dir.path(),
            "promptfooconfig.yaml",
            r#"prompts:
  - file://prompt1.json
  - id: file://prompt.yaml
    label: multiline
  - file://prompts.jsonl
  - '[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "{{content}}"}]'
providers: [openai:gpt-4o-mini]
tests:
  - vars: { year: "2001", language: French, content: hello }
"#,
        );
        let got = import(&cfg).unwrap();
        assert!(got.unmapped.is_empty(), "{:?}", got.unmapped);
        let file = parsed(dir.path(), &got);
        let names: Vec<&str> = file.variants.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "prompt1.json",
                "multiline",
                "prompts.jsonl #1",
                "prompts.jsonl #2",
                "prompt 4"
            ]
        );
        let v = &file.variants[0];
        assert_eq!(v.system.as_deref(), Some("You are a sports historian."));
        assert_eq!(v.examples.len(), 1);
        assert_eq!(v.examples[0].input, "Who won the world series in 1990?");
        assert_eq!(v.examples[0].output, "The Cincinnati Reds.");
        // What is sent: the system message, the example pair, then the filled question.
        assert_eq!(
            sent(&file, 0, 0),
            [
                (System, "You are a sports historian.".to_string()),
                (User, "Who won the world series in 1990?".to_string()),
                (Assistant, "The Cincinnati Reds.".to_string()),
                (User, "Who won the world series in 2001?".to_string()),
            ]
        );
        assert_eq!(
            sent(&file, 1, 0),
            [
                (System, "Answer in French.".to_string()),
                (User, "hello".to_string())
            ]
        );
        assert_eq!(sent(&file, 2, 0), [(User, "One: hello".to_string())]);
        assert_eq!(sent(&file, 3, 0), [(User, "Two:\nhello".to_string())]);
        assert_eq!(
            sent(&file, 4, 0),
            [
                (System, "Be brief.".to_string()),
                (User, "hello".to_string())
            ]
        );
    }

    #[test]
    fn chat_prompts_that_cannot_map_are_reported_and_the_rest_imported() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "vision.json",
            r#"[{"role": "user", "content": [{"type": "text", "text": "{{question}}"},
               {"type": "image_url", "image_url": {"url": "{{url}}"}}]}]"#,
        );
        write(
            dir.path(),
            "history.json",
            "[\n{% for m in history %}{\"role\": \"user\", \"content\": {{ m | dump }}},{% endfor %}\n{\"role\": \"user\", \"content\": \"{{question}}\"}]",
        );
        write(
            dir.path(),
            "prefill.json",
            r#"[{"role": "user", "content": "{{question}}"}, {"role": "assistant", "content": "Sure:"}]"#,
        );
        write(
            dir.path(),
            "twice.json",
            r#"[{"role": "user", "content": "a"}, {"role": "user", "content": "{{question}}"}]"#,
        );
        write(
            dir.path(),
            "ok.json",
            r#"[{"role": "user", "content": "{{question}}"}]"#,
        );
        let cfg = write(
            dir.path(),
            "promptfooconfig.yaml",
            "prompts: [file://vision.json, file://history.json, file://prefill.json, file://twice.json, file://prompt.py:make, file://ok.json]\ntests:\n  - vars: { question: q, url: u }\n",
        );
        let got = import(&cfg).unwrap();
        let u = got.unmapped.join("\n");
        assert!(
            u.contains("prompts[0]: file://vision.json: messages[0]: a `image_url` content part (only text is mapped); prompt not imported"),
            "{u}"
        );
        assert!(
            u.contains("prompts[1]: file://history.json builds its messages with nunjucks tags"),
            "{u}"
        );
        assert!(
            u.contains("prompts[2]: file://prefill.json: the last message is the `assistant`'s"),
            "{u}"
        );
        assert!(
            u.contains("prompts[3]: file://twice.json: messages (user, user) are not"),
            "{u}"
        );
        assert!(
            u.contains("prompts[4]: file://prompt.py:make (a py prompt function"),
            "{u}"
        );
        let file = parsed(dir.path(), &got);
        assert_eq!(file.variants.len(), 1);
        assert_eq!(file.variants[0].name, "ok.json");
        assert_eq!(file.variants[0].template, "{{question}}");

        // With none importable, the error says why.
        let cfg = write(
            dir.path(),
            "only-bad.yaml",
            "prompts: [file://vision.json, file://prompt.js:f]\n",
        );
        let e = import(&cfg).unwrap_err().to_string();
        assert!(e.contains("no prompt could be imported"), "{e}");
        assert!(e.contains("`image_url` content part"), "{e}");
        assert!(e.contains("a js prompt function"), "{e}");
    }

    #[test]
    fn a_txt_file_of_prompts_split_by_separator_lines_gives_one_variant_each() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "prompts.txt",
            "Rephrase this in French: {{body}}\n---\nRephrase this like a pirate: {{body}}\n\n---\n\n",
        );
        write(
            dir.path(),
            "one.txt",
            "Summarise: {{body}}\n(a --- inside a line stays)\n",
        );
        write(
            dir.path(),
            "alt.txt",
            "A {{body}}\n===\nB {{body}}\n---\nstill B\n",
        );
        let cfg = write(
            dir.path(),
            "promptfooconfig.yaml",
            "prompts:\n  - file://prompts.txt\n  - id: file://one.txt\n    label: one\n  - file://alt.txt\ntests:\n  - vars: { body: hi }\n",
        );
        let got = import(&cfg).unwrap();
        let file = parsed(dir.path(), &got);
        let v: Vec<(&str, &str)> = file
            .variants
            .iter()
            .map(|v| (v.name.as_str(), v.template.as_str()))
            .collect();
        assert_eq!(
            v,
            [
                ("prompts.txt #1", "Rephrase this in French: {{body}}"),
                ("prompts.txt #2", "Rephrase this like a pirate: {{body}}"),
                ("one", "Summarise: {{body}}\n(a --- inside a line stays)"),
                ("alt.txt #1", "A {{body}}\n===\nB {{body}}"),
                ("alt.txt #2", "still B"),
            ]
        );
        // PROMPTFOO_PROMPT_SEPARATOR changes the separator.
        let got = import_with(&cfg, "===").unwrap();
        let file = parsed(dir.path(), &got);
        let v: Vec<&str> = file.variants.iter().map(|v| v.template.as_str()).collect();
        assert_eq!(
            v[0],
            "Rephrase this in French: {{body}}\n---\nRephrase this like a pirate: {{body}}\n\n---"
        );
        assert_eq!(&v[2..], ["A {{body}}", "B {{body}}\n---\nstill B"]);
    }

    #[test]
    fn default_test_grader_becomes_the_judge_and_its_fields_are_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write(
            dir.path(),
            "promptfooconfig.yaml",
            r#"prompts: ["Answer: {{question}}"]
providers: [openai:gpt-4o-mini]
defaultTest:
  options:
    provider:
      id: mistral:mistral-large-latest
      embedding:
        id: mistral:embedding:mistral-embed
    transformVars: "vars"
  metadata: { suite: x }
  assert:
    - type: javascript
      value: output.length < 500
    - type: llm-rubric
      value: Answers {{question}} politely
      metric: polite
tests:
  - vars: { question: a }
  - vars: { question: b }
  - vars: { question: c }
    assert:
      - type: similar
        value: c
"#,
        );
        let got = import(&cfg).unwrap();
        let count = |s: &str| got.unmapped.iter().filter(|u| u.contains(s)).count();
        assert_eq!(
            count("defaultTest.options.provider.embedding"),
            1,
            "{:?}",
            got.unmapped
        );
        assert_eq!(count("defaultTest.options.transformVars"), 1);
        assert_eq!(count("defaultTest.metadata"), 1);
        assert_eq!(count("defaultTest.assert[0]: assert type `javascript`"), 1);
        assert_eq!(count("defaultTest.assert[1].metric (llm-rubric)"), 1);
        // A test's own unmapped assertion is still reported per test, numbered as before.
        assert_eq!(count("tests[2].assert[2]: assert type `similar`"), 1);
        // The rubric is filled per test, so three different rubrics.
        assert_eq!(count("llm-rubric: 3 different rubrics"), 1);
        assert_eq!(
            got.models,
            vec![
                ("gpt-4o-mini".to_string(), "openai:gpt-4o-mini".to_string()),
                (
                    "mistral-large-latest".to_string(),
                    "mistral:mistral-large-latest".to_string()
                ),
            ]
        );
        let file = parsed(dir.path(), &got);
        assert_eq!(
            file.techniques.judge_model.as_deref(),
            Some("mistral-large-latest")
        );
        // The judge must be a configured model: without it the file does not load.
        let e = crate::prompt::parse(
            &dir.path().join("out.toml"),
            &got.toml,
            &["gpt-4o-mini".to_string()],
            "gpt-4o-mini",
        )
        .unwrap_err();
        assert!(e.to_string().contains("mistral-large-latest"), "{e}");
    }

    #[test]
    fn default_test_from_a_file_and_grader_forms() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("shared")).unwrap();
        write(
            dir.path(),
            "shared/defaultTest.yaml",
            "vars:\n  tone: dry\nassert:\n  - type: not-icontains\n    value: As an AI\n  - type: cost\n    threshold: 0.01\noptions:\n  provider: openai:o4-mini\n",
        );
        let cfg = write(
            dir.path(),
            "promptfooconfig.yaml",
            r#"defaultTest: file://shared/defaultTest.yaml
prompts: ["In a {{tone}} tone: {{question}}"]
providers:
  - id: openai:o4-mini
    label: small
  - openai:gpt-4.1
tests:
  - vars: { question: a }
    assert: [{ type: icontains, value: x }]
  - vars: { question: b, tone: warm }
"#,
        );
        let got = import(&cfg).unwrap();
        let file = parsed(dir.path(), &got);
        // The grader is a provider under test: it keeps that provider's name.
        assert_eq!(file.techniques.judge_model.as_deref(), Some("small"));
        assert_eq!(got.models.len(), 2);
        assert_eq!(file.cases[0].vars["tone"], "dry");
        assert_eq!(file.cases[1].vars["tone"], "warm");
        let c0 = toml::from_str::<toml::Table>(&got.toml).unwrap()["case"][0]["expect"].clone();
        assert_eq!(c0["none"].as_array().unwrap()[0].as_str(), Some("As an AI"));
        assert_eq!(c0["all"].as_array().unwrap()[0].as_str(), Some("x"));
        let u = &got.unmapped;
        assert_eq!(
            u.iter()
                .filter(|u| u.contains("defaultTest.assert[1]: assert type `cost`"))
                .count(),
            1,
            "{u:?}"
        );

        // `{text, embedding}` graders; classifier graders are not judges.
        let cfg = write(
            dir.path(),
            "vertex.yaml",
            "prompts: ['{{q}}']\nproviders: [vertex:chat:gemini-pro]\ndefaultTest:\n  options:\n    provider:\n      text: vertex:chat:gemini-1.5-pro\n      embedding: vertex:embedding:text-embedding-004\ntests: [{vars: {q: a}}]\n",
        );
        let got = import(&cfg).unwrap();
        assert_eq!(
            parsed(dir.path(), &got).techniques.judge_model.as_deref(),
            Some("gemini-1.5-pro")
        );
        let cfg = write(
            dir.path(),
            "hf.yaml",
            "prompts: ['{{q}}']\nproviders: [openai:gpt-4o-mini]\ndefaultTest:\n  options:\n    provider: huggingface:text-classification:facebook/roberta-hate\ntests: [{vars: {q: a}}]\n",
        );
        let got = import(&cfg).unwrap();
        assert!(parsed(dir.path(), &got).techniques.judge_model.is_none());
        assert!(
            got.unmapped
                .iter()
                .any(|u| u.contains("an embedding or classifier grader")),
            "{:?}",
            got.unmapped
        );
    }

    #[test]
    fn sampling_aliases_targets_and_jsonl_tests() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "cases.jsonl",
            "{\"vars\": {\"q\": \"Capital of France?\"}, \"assert\": [{\"type\": \"icontains\", \"value\": \"paris\"}]}\n\n{\"description\": \"peru\", \"vars\": {\"q\": \"Capital of Peru?\"}}\n",
        );
        let cfg = write(
            dir.path(),
            "promptfooconfig.yaml",
            r#"prompts: ['{{q}}']
targets:
  - id: groq:llama-3.3-70b
    config: { temperature: 0.5, top_p: 0.9, max_completion_tokens: 300, seed: 7, stop: ["\n\n"], tool_choice: auto }
  - id: replicate:meta/llama-4
    config: { max_new_tokens: 50, top_k: 40, topP: 0.8 }
tests: file://cases.jsonl
"#,
        );
        let got = import(&cfg).unwrap();
        assert_eq!(
            got.unmapped,
            vec!["providers[0].config.tool_choice".to_string()]
        );
        let file = parsed(dir.path(), &got);
        let s = &file.variants[0].sampling;
        assert_eq!(file.variants[0].model, "llama-3.3-70b");
        assert_eq!(s.temperature, Some(0.5));
        assert_eq!(s.top_p, Some(0.9));
        assert_eq!(s.max_tokens, Some(300));
        assert_eq!(s.seed, Some(7));
        assert_eq!(s.stop, ["\n\n"]);
        let s = &file.variants[1].sampling;
        assert_eq!(file.variants[1].model, "meta-llama-4");
        assert_eq!(
            (s.max_tokens, s.top_k, s.top_p),
            (Some(50), Some(40), Some(0.8))
        );
        assert_eq!(file.cases.len(), 2);
        assert_eq!(file.cases[1].name, "peru");
        assert_eq!(file.cases[0].vars["q"], "Capital of France?");
    }
}
