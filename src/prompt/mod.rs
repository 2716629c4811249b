//! Prompt files: one experiment each, variants × cases, loaded from `prompts/*.toml`.
//!
//! Parsing is strict (`deny_unknown_fields`) and validation runs before anything is sent to a
//! model: unknown keys, undefined `{{var}}`s, unknown models, duplicate names and bad regexes
//! are reported with file, line and column.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod cases_file;
pub(crate) mod chunk;
pub(crate) mod marked;
pub(crate) mod render;
pub(crate) mod retrieve;
pub(crate) mod select;
pub(crate) mod techniques;
pub(crate) mod template;
pub(crate) mod tools;
mod variant;
pub(crate) mod vectors;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::chat::Sampling;
use crate::error::InputError;
use crate::eval::expect::Expect;
pub(crate) use variant::{validate_turns, Case, Example, Turn, Variant};

/// A loaded, validated prompt file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PromptFile {
    pub path: PathBuf,
    pub title: String,
    pub description: Option<String>,
    pub variants: Vec<Variant>,
    pub cases: Vec<Case>,
    /// The variable free-form input fills (the `main_var` default, else the first variable the
    /// first variant's template uses).
    pub main_var: Option<String>,
    /// The file's text when loaded, for writing edits back with its layout kept.
    pub source: String,
    /// The variants as `source` defines them (`variants` may have been edited since): what
    /// writing back compares with, so only changed fields are written.
    pub file_variants: Vec<Variant>,
    /// Technique prompts and parameters (`[techniques]`), defaults filled in.
    pub techniques: techniques::Techniques,
    /// The `[[tool]]` tables: what the variants may offer and what answers a call.
    pub tools: Vec<tools::ToolDef>,
}

// ---- the file as written -------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    title: String,
    description: Option<String>,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default, rename = "variant")]
    variants: Vec<Spanned<RawVariant>>,
    #[serde(default, rename = "case")]
    cases: Vec<Spanned<RawCase>>,
    /// More cases from a CSV, JSONL or YAML file (relative to this file).
    cases_file: Option<Spanned<String>>,
    #[serde(default)]
    techniques: Option<techniques::RawTechniques>,
    #[serde(default, rename = "tool")]
    tools: Vec<Spanned<tools::RawTool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    model: Option<Spanned<String>>,
    system: Option<String>,
    main_var: Option<String>,
    context_instruction: Option<String>,
    #[serde(flatten)]
    sampling: RawSampling,
}

#[derive(Debug, Default, Deserialize)]
struct RawSampling {
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<usize>,
    max_tokens: Option<usize>,
    #[serde(default)]
    stop: Vec<String>,
    seed: Option<u64>,
    logprobs: Option<usize>,
    samples: Option<usize>,
    stop_on: Option<crate::chat::StopOn>,
}

impl RawSampling {
    fn into_sampling(self) -> Sampling {
        Sampling {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            max_tokens: self.max_tokens,
            stop: self.stop,
            seed: self.seed,
            logprobs: self.logprobs,
            samples: self.samples,
            stop_on: self.stop_on,
            ..Sampling::default()
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariant {
    name: Spanned<String>,
    description: Option<String>,
    model: Option<Spanned<String>>,
    system: Option<String>,
    template: Spanned<String>,
    #[serde(default)]
    examples: Vec<Example>,
    #[serde(default)]
    context: Vec<String>,
    #[serde(default)]
    context_files: Vec<Spanned<String>>,
    context_instruction: Option<String>,
    #[serde(default)]
    step_by_step: bool,
    generated: Option<String>,
    retrieve: Option<Spanned<retrieve::RetrieveSpec>>,
    examples_file: Option<Spanned<String>>,
    select: Option<Spanned<select::SelectSpec>>,
    /// The `[[tool]]`s this variant offers, by name.
    #[serde(default)]
    tools: Vec<Spanned<String>>,
    /// `auto`, `none`, `required` or a tool's name.
    tool_choice: Option<Spanned<String>>,
    /// Per-tool description overrides (to compare descriptions of one tool).
    #[serde(default)]
    tool_descriptions: BTreeMap<String, String>,
    max_tool_steps: Option<Spanned<usize>>,
    // Sampling overrides. Written out rather than flattened: serde cannot combine `flatten`
    // with `deny_unknown_fields`, and a typo here must be an error.
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<usize>,
    max_tokens: Option<usize>,
    #[serde(default)]
    stop: Vec<String>,
    seed: Option<u64>,
    /// Token probabilities with this many alternatives per token.
    logprobs: Option<usize>,
    /// Run each case this many times (self-consistency).
    samples: Option<usize>,
    /// End a stream once its checks are decided.
    stop_on: Option<crate::chat::StopOn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    #[serde(default)]
    expect: Option<Spanned<Expect>>,
    #[serde(default)]
    turns: Option<Spanned<Vec<Turn>>>,
}

/// Load and validate a prompt file. `models` are the configured model names;
/// `default_model` is used where neither the file nor the variant names one.
pub(crate) fn load(
    path: &Path,
    models: &[String],
    default_model: &str,
) -> Result<PromptFile, InputError> {
    let text = std::fs::read_to_string(path).map_err(|e| InputError::io(path, &e))?;
    parse(path, &text, models, default_model)
}

/// Parse and validate prompt-file text (see [`load`]).
pub(crate) fn parse(
    path: &Path,
    text: &str,
    models: &[String],
    default_model: &str,
) -> Result<PromptFile, InputError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| InputError::toml(path, text, &e))?;
    if raw.variants.is_empty() {
        return Err(
            InputError::at(path, text, 0, "the file defines no variants")
                .with_hint("add at least one [[variant]] with a `name` and a `template`"),
        );
    }
    let defaults_sampling_model = raw.defaults.model.clone();
    let default_model_name = match &defaults_sampling_model {
        Some(m) => {
            check_model(path, text, m, models)?;
            m.get_ref().clone()
        }
        None => default_model.to_string(),
    };
    let techniques = match raw.techniques {
        Some(t) => t.validate(models, |offset, message| {
            InputError::at(path, text, offset, message)
        })?,
        None => techniques::Techniques::default(),
    };
    let base_dir = path.parent().unwrap_or(Path::new("."));
    let tool_defs = tools::load(path, text, base_dir, &raw.tools)?;
    let RawDefaults {
        system: default_system,
        main_var,
        context_instruction: default_ctx_instruction,
        sampling: default_sampling,
        ..
    } = raw.defaults;
    let default_sampling = default_sampling.into_sampling();

    let mut variants = Vec::with_capacity(raw.variants.len());
    let mut seen = BTreeSet::new();
    for v in &raw.variants {
        let rv = v.get_ref();
        let name = rv.name.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(InputError::at(
                path,
                text,
                rv.name.span().start,
                "variant name is empty",
            ));
        }
        if !seen.insert(name.clone()) {
            return Err(InputError::at(
                path,
                text,
                rv.name.span().start,
                format!("duplicate variant name {name:?}"),
            )
            .with_hint("each [[variant]] needs its own name"));
        }
        let model = match &rv.model {
            Some(m) => {
                check_model(path, text, m, models)?;
                m.get_ref().clone()
            }
            None => default_model_name.clone(),
        };
        let mut context = rv.context.clone();
        for f in &rv.context_files {
            let p = base_dir.join(f.get_ref());
            let doc = std::fs::read_to_string(&p).map_err(|e| {
                InputError::at(
                    path,
                    text,
                    f.span().start,
                    format!("cannot read context file {}: {e}", p.display()),
                )
                .with_hint("context_files are relative to the prompt file's folder")
            })?;
            context.push(doc);
        }
        let (examples, select) = examples_and_selection(path, text, base_dir, rv, models)?;
        let retrieve = match &rv.retrieve {
            Some(r) => Some(load_retrieve(path, text, base_dir, r, models)?),
            None => None,
        };
        let (tool_specs, tool_choice, max_tool_steps) = tools::for_variant(
            path,
            text,
            &name,
            &tools::VariantTools {
                tools: &rv.tools,
                tool_choice: rv.tool_choice.as_ref(),
                tool_descriptions: &rv.tool_descriptions,
                max_tool_steps: rv.max_tool_steps.as_ref(),
            },
            &tool_defs,
        )?;
        let own = Sampling {
            temperature: rv.temperature,
            top_p: rv.top_p,
            top_k: rv.top_k,
            max_tokens: rv.max_tokens,
            stop: rv.stop.clone(),
            seed: rv.seed,
            tools: tool_specs,
            tool_choice,
            max_tool_steps,
            logprobs: rv.logprobs,
            samples: rv.samples,
            stop_on: rv.stop_on,
        };
        variants.push(Variant {
            name,
            description: rv.description.clone(),
            model,
            system: rv.system.clone().or_else(|| default_system.clone()),
            template: rv.template.get_ref().clone(),
            examples,
            context,
            context_instruction: rv
                .context_instruction
                .clone()
                .or_else(|| default_ctx_instruction.clone()),
            step_by_step: rv.step_by_step,
            sampling: own.over(&default_sampling),
            generated: rv.generated.clone(),
            retrieve,
            select,
        });
    }

    let mut cases = Vec::with_capacity(raw.cases.len().max(1));
    let mut case_names = BTreeSet::new();
    for (i, c) in raw.cases.iter().enumerate() {
        let rc = c.get_ref();
        let name = rc
            .name
            .clone()
            .unwrap_or_else(|| default_case_name(i, &rc.vars));
        if !case_names.insert(name.clone()) {
            return Err(InputError::at(
                path,
                text,
                c.span().start,
                format!("duplicate case name {name:?}"),
            )
            .with_hint("give the cases distinct `name`s"));
        }
        let expect = match &rc.expect {
            Some(e) => {
                e.get_ref().validate().map_err(|msg| {
                    InputError::at(path, text, e.span().start, format!("case {name:?}: {msg}"))
                })?;
                if let Some(t) = &e.get_ref().tool {
                    if !tool_defs.iter().any(|d| &d.spec.name == t) {
                        return Err(InputError::at(
                            path,
                            text,
                            e.span().start,
                            format!(
                                "case {name:?} expects a call to {t:?}, which no [[tool]] defines"
                            ),
                        ));
                    }
                }
                e.get_ref().clone()
            }
            None => Expect::default(),
        };
        let turns = match &rc.turns {
            Some(t) => {
                validate_turns(t.get_ref()).map_err(|msg| {
                    InputError::at(path, text, t.span().start, format!("case {name:?}: {msg}"))
                })?;
                t.get_ref().clone()
            }
            None => Vec::new(),
        };
        cases.push(Case {
            name,
            vars: rc.vars.clone(),
            expect,
            turns,
        });
    }
    if let Some(f) = &raw.cases_file {
        let p = data_file(path, text, base_dir, f, "cases_file")?;
        for c in cases_file::load(&p)? {
            if !case_names.insert(c.name.clone()) {
                return Err(InputError::at(
                    path,
                    text,
                    f.span().start,
                    format!(
                        "case {:?} from {} is also a [[case]] here",
                        c.name,
                        p.display()
                    ),
                )
                .with_hint("give the cases distinct `name`s"));
            }
            cases.push(c);
        }
    }
    // Variables in a conversation's turns must be defined by its case.
    for c in &cases {
        for t in &c.turns {
            if let Some(var) = template::variables(t.text())
                .into_iter()
                .find(|v| !c.vars.contains_key(&v.name))
            {
                return Err(InputError::plain(
                    path,
                    format!(
                        "case {:?} uses {{{{{}}}}} in a turn but does not define it",
                        c.name, var.name
                    ),
                ));
            }
        }
    }

    // Every variable a variant uses must be defined by every case.
    for (rv, v) in raw.variants.iter().zip(&variants) {
        let rv = rv.get_ref();
        let template_span = rv.template.span();
        let mut texts: Vec<(&str, usize)> = vec![(v.template.as_str(), template_span.start)];
        for ex in &v.examples {
            texts.push((ex.input.as_str(), template_span.start));
        }
        for ex in v.select.iter().flat_map(|s| &s.pool) {
            texts.push((ex.input.as_str(), template_span.start));
        }
        if let Some(q) = v.retrieve.as_ref().and_then(|r| r.spec.query.as_deref()) {
            texts.push((q, template_span.start));
        }
        for (t, fallback) in texts {
            for var in template::variables(t) {
                if cases.is_empty() {
                    return Err(InputError::at(
                        path,
                        text,
                        var_offset(text, fallback, &var.name),
                        format!(
                            "variant {:?} uses {{{{{}}}}} but the file has no [[case]] to define it",
                            v.name, var.name
                        ),
                    )
                    .with_hint(format!(
                        "add [[case]] with vars = {{ {} = \"...\" }}",
                        var.name
                    )));
                }
                // A conversation's turns take the template's place, so only single-turn
                // cases must define the template's variables (examples apply to both).
                let is_template = std::ptr::eq(t, v.template.as_str());
                if let Some(c) = cases.iter().find(|c| {
                    !c.vars.contains_key(&var.name) && (!is_template || c.turns.is_empty())
                }) {
                    let defined: Vec<&str> = c.vars.keys().map(String::as_str).collect();
                    return Err(InputError::at(
                        path,
                        text,
                        var_offset(text, fallback, &var.name),
                        format!(
                            "variant {:?} uses {{{{{}}}}}, which case {:?} does not define",
                            v.name, var.name, c.name
                        ),
                    )
                    .with_hint(if defined.is_empty() {
                        format!("add vars = {{ {} = \"...\" }} to that case", var.name)
                    } else {
                        format!(
                            "that case defines: {}; fix the name or add it to the case's vars",
                            defined.join(", ")
                        )
                    }));
                }
            }
        }
    }
    if cases.is_empty() {
        cases.push(Case {
            name: "default".into(),
            vars: BTreeMap::new(),
            expect: Expect::default(),
            turns: Vec::new(),
        });
    }
    let main_var = main_var.or_else(|| {
        variants
            .iter()
            .flat_map(|v| template::variables(&v.template))
            .map(|v| v.name)
            .next()
    });

    Ok(PromptFile {
        path: path.to_path_buf(),
        title: raw.title,
        description: raw.description,
        file_variants: variants.clone(),
        variants,
        cases,
        main_var,
        source: text.to_string(),
        techniques,
        tools: tool_defs,
    })
}

impl PromptFile {
    pub fn variant(&self, name: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.name == name)
    }

    pub fn case(&self, name: &str) -> Option<&Case> {
        self.cases.iter().find(|c| c.name == name)
    }
}

/// The fixed examples and the selection pool of a variant: inline `examples` plus
/// `examples_file`; with `select`, they form the pool and no example is fixed.
fn examples_and_selection(
    path: &Path,
    text: &str,
    base_dir: &Path,
    rv: &RawVariant,
    models: &[String],
) -> Result<(Vec<Example>, Option<select::Select>), InputError> {
    let mut pool: Vec<select::PoolExample> = rv
        .examples
        .iter()
        .enumerate()
        .map(|(i, e)| select::PoolExample {
            source: format!("inline {}", i + 1),
            input: e.input.clone(),
            output: e.output.clone(),
        })
        .collect();
    if let Some(f) = &rv.examples_file {
        let p = data_file(path, text, base_dir, f, "examples_file")?;
        pool.extend(select::load_examples(&p)?);
    }
    let Some(spec) = &rv.select else {
        let fixed = pool
            .into_iter()
            .map(|p| Example {
                input: p.input,
                output: p.output,
            })
            .collect();
        return Ok((fixed, None));
    };
    let at = |msg: String| InputError::at(path, text, spec.span().start, msg);
    let s = spec.get_ref();
    if s.k == 0 {
        return Err(at("select: k must be at least 1".into()));
    }
    if pool.is_empty() {
        return Err(at("select has no examples to choose from".into())
            .with_hint("add examples_file = \"examples.jsonl\" or inline examples"));
    }
    match (&s.by, &s.embed_model) {
        (select::SelectBy::Embedding, None) => {
            return Err(at("select: by = \"embedding\" needs embed_model".into())
                .with_hint("embed_model names a configured OpenAI-compatible model"))
        }
        (_, Some(m)) if !models.contains(m) => {
            return Err(at(format!("select: unknown embed_model {m:?}")))
        }
        _ => {}
    }
    Ok((
        Vec::new(),
        Some(select::Select {
            spec: s.clone(),
            pool,
        }),
    ))
}

/// Resolve a variant's `retrieve` and build its index now, so a bad pattern or an unreadable
/// file fails when the prompt file loads.
fn load_retrieve(
    path: &Path,
    text: &str,
    base_dir: &Path,
    r: &Spanned<retrieve::RetrieveSpec>,
    models: &[String],
) -> Result<retrieve::Retrieve, InputError> {
    let at = |msg: String| InputError::at(path, text, r.span().start, format!("retrieve: {msg}"));
    let spec = r.get_ref();
    if spec.k == 0 {
        return Err(at("k must be at least 1".into()));
    }
    if spec.chunk_tokens < 8 {
        return Err(at("chunk_tokens must be at least 8".into()));
    }
    if spec.overlap >= spec.chunk_tokens {
        return Err(at("overlap must be smaller than chunk_tokens".into()));
    }
    match (&spec.by, &spec.embed_model) {
        (retrieve::RankBy::Embedding | retrieve::RankBy::Hybrid, None) => {
            return Err(
                at("by = \"embedding\" and \"hybrid\" need embed_model".into()).with_hint(
                    "embed_model names a configured OpenAI-compatible model (base_url and model)",
                ),
            )
        }
        (_, Some(m)) if !models.contains(m) => {
            return Err(at(format!("unknown embed_model {m:?}")))
        }
        _ => {}
    }
    let files = retrieve::resolve_files(base_dir, &spec.from)
        .map_err(|e| at(e).with_hint("`from` is relative to the prompt file's folder"))?;
    let out = retrieve::Retrieve {
        spec: spec.clone(),
        files,
    };
    retrieve::index(&out).map_err(at)?;
    Ok(out)
}

fn check_model(
    path: &Path,
    text: &str,
    model: &Spanned<String>,
    models: &[String],
) -> Result<(), InputError> {
    if models.iter().any(|m| m == model.get_ref()) {
        return Ok(());
    }
    Err(InputError::at(
        path,
        text,
        model.span().start,
        format!("unknown model {:?}", model.get_ref()),
    )
    .with_hint(format!(
        "configured models: {}; add [models.{}] to config.toml or pick one of these",
        models.join(", "),
        model.get_ref()
    )))
}

/// The byte offset of `{{name}}` at or after `from` in the file, for error positions.
fn var_offset(text: &str, from: usize, name: &str) -> usize {
    let tail = text.get(from..).unwrap_or("");
    let plain = format!("{{{{{name}}}}}");
    let spaced = format!("{{{{ {name} }}}}");
    tail.find(&plain)
        .or_else(|| tail.find(&spaced))
        .map(|i| from + i)
        .unwrap_or(from)
}

fn default_case_name(index: usize, vars: &BTreeMap<String, String>) -> String {
    match vars.values().next() {
        Some(v) if vars.len() == 1 && v.chars().count() <= 40 && !v.contains('\n') => v.clone(),
        _ => format!("case-{}", index + 1),
    }
}

/// The data file a prompt file names under `key` (relative to the prompt file's folder), or an
/// error at the key's value when it is not a readable file.
fn data_file(
    path: &Path,
    text: &str,
    base_dir: &Path,
    f: &Spanned<String>,
    key: &str,
) -> Result<PathBuf, InputError> {
    let p = base_dir.join(f.get_ref());
    if !p.is_file() {
        return Err(InputError::at(
            path,
            text,
            f.span().start,
            format!("cannot read {key} {}", p.display()),
        )
        .with_hint(format!("{key} is relative to the prompt file's folder")));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models() -> Vec<String> {
        vec!["smollm2".into(), "llamacpp".into()]
    }

    fn parse_ok(text: &str) -> PromptFile {
        parse(Path::new("prompts/t.toml"), text, &models(), "smollm2").unwrap()
    }

    fn parse_err(text: &str) -> String {
        parse(Path::new("prompts/t.toml"), text, &models(), "smollm2")
            .unwrap_err()
            .to_string()
    }

    const CAPITALS: &str = r#"title = "Capital cities"
[defaults]
model = "smollm2"
temperature = 0.7
max_tokens = 128

[[variant]]
name = "plain"
template = "What is the capital of {{country}}?"

[[variant]]
name = "teacher"
system = "You are an experienced geography teacher."
template = "What is the capital of {{country}}?"

[[variant]]
name = "few-shot"
template = "What is the capital of {{country}}?"
examples = [ { input = "What is the capital of France?", output = "Paris" } ]

[[variant]]
name = "remote"
model = "llamacpp"
temperature = 0.2
template = "What is the capital of {{country}}?"

[[case]]
vars = { country = "England" }
expect = { any = ["London"] }
"#;

    #[test]
    fn the_issue_example_parses_with_defaults_applied() {
        let f = parse_ok(CAPITALS);
        assert_eq!(f.title, "Capital cities");
        assert_eq!(f.variants.len(), 4);
        assert_eq!(f.variants[0].sampling.temperature, Some(0.7));
        assert_eq!(f.variants[0].sampling.max_tokens, Some(128));
        assert_eq!(f.variants[3].model, "llamacpp");
        assert_eq!(f.variants[3].sampling.temperature, Some(0.2));
        assert_eq!(f.variants[3].sampling.max_tokens, Some(128));
        assert_eq!(f.cases[0].name, "England");
        assert_eq!(f.main_var.as_deref(), Some("country"));
    }

    #[test]
    fn unknown_key_is_reported_with_position() {
        let err = parse_err(
            "title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"x\"\ntemprature = 0.5\n",
        );
        assert!(
            err.starts_with("prompts/t.toml:5:1: unknown field `temprature`"),
            "{err}"
        );
    }

    #[test]
    fn undefined_variable_names_variant_case_and_position() {
        let err = parse_err(
            "title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"Capital of {{contry}}?\"\n[[case]]\nname = \"uk\"\nvars = { country = \"England\" }\n",
        );
        assert_eq!(
            err,
            "prompts/t.toml:4:24: variant \"a\" uses {{contry}}, which case \"uk\" does not define\n  hint: that case defines: country; fix the name or add it to the case's vars"
        );
    }

    #[test]
    fn variable_without_any_case_is_an_error() {
        let err = parse_err("title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"{{x}}\"\n");
        assert!(
            err.contains("uses {{x}} but the file has no [[case]]"),
            "{err}"
        );
    }

    #[test]
    fn empty_variant_list_is_an_error() {
        let err = parse_err("title = \"t\"\n");
        assert!(
            err.starts_with("prompts/t.toml:1:1: the file defines no variants"),
            "{err}"
        );
    }

    #[test]
    fn unknown_model_lists_the_configured_ones() {
        let err = parse_err(
            "title = \"t\"\n[[variant]]\nname = \"a\"\nmodel = \"gpt9\"\ntemplate = \"x\"\n",
        );
        assert!(
            err.starts_with("prompts/t.toml:4:9: unknown model \"gpt9\""),
            "{err}"
        );
        assert!(
            err.contains("configured models: smollm2, llamacpp"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_variant_names_are_errors() {
        let err = parse_err(
            "title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"x\"\n[[variant]]\nname = \"a\"\ntemplate = \"y\"\n",
        );
        assert!(
            err.starts_with("prompts/t.toml:6:8: duplicate variant name \"a\""),
            "{err}"
        );
    }

    #[test]
    fn bad_regex_is_reported() {
        let err = parse_err(
            "title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"x\"\n[[case]]\nexpect = { regex = \"(unclosed\" }\n",
        );
        assert!(
            err.starts_with("prompts/t.toml:6:10: case \"case-1\": invalid regex"),
            "{err}"
        );
    }

    #[test]
    fn techniques_table_is_optional_and_validated_with_position() {
        let f = parse_ok("title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"x\"\n[techniques]\ncritique_rounds = 2\ncritic_model = \"llamacpp\"\n");
        assert_eq!(f.techniques.critique_rounds, 2);
        assert_eq!(f.techniques.critic_model.as_deref(), Some("llamacpp"));
        assert_eq!(
            parse_ok(CAPITALS).techniques,
            techniques::Techniques::default()
        );
        let err = parse_err("title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"x\"\n[techniques]\njudge_model = \"gpt9\"\n");
        assert!(
            err.starts_with("prompts/t.toml:6:15: unknown model \"gpt9\" in [techniques]"),
            "{err}"
        );
        let err = parse_err("title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"x\"\n[techniques]\nrewrte = \"x\"\n");
        assert!(
            err.starts_with("prompts/t.toml:6:1: unknown field `rewrte`"),
            "{err}"
        );
    }

    #[test]
    fn file_without_cases_gets_one_empty_case() {
        let f = parse_ok("title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"Tell a joke\"\n");
        assert_eq!(f.cases.len(), 1);
        assert_eq!(f.cases[0].name, "default");
    }

    #[test]
    fn multi_turn_cases_parse_and_skip_the_template_vars() {
        let f = parse_ok("title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"Capital of {{country}}?\"\n[[case]]\nvars = { country = \"Peru\" }\n[[case]]\nname = \"chat\"\nvars = { city = \"Lima\" }\nturns = [{ user = \"I live in {{city}}.\" }, { assistant = \"Nice!\" }, { user = \"Which country is that in?\" }]\nexpect = { any = [\"Peru\"] }\n");
        assert_eq!(f.cases[1].turns.len(), 3);
        assert_eq!(
            f.cases[1].turns[2],
            Turn::User("Which country is that in?".into())
        );
        let err = parse_err("title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"x\"\n[[case]]\nname = \"c\"\nturns = [{ user = \"hi\" }, { assistant = \"yo\" }]\n");
        assert!(
            err.starts_with("prompts/t.toml:7:9: case \"c\": the last turn must be a user turn"),
            "{err}"
        );
        let err = parse_err("title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"x\"\n[[case]]\nname = \"c\"\nturns = [{ user = \"hi {{who}}\" }]\n");
        assert!(
            err.contains("case \"c\" uses {{who}} in a turn but does not define it"),
            "{err}"
        );
        let err = parse_err("title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"x\"\n[[case]]\nturns = [{ usr = \"hi\" }]\n");
        assert!(err.starts_with("prompts/t.toml:6:"), "{err}");
    }

    #[test]
    fn cases_file_rows_join_the_inline_cases() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cases.csv"),
            "country,expect_any\nPeru,Lima\nFrance,Paris|paris\n",
        )
        .unwrap();
        let p = dir.path().join("t.toml");
        let text = "title = \"t\"\ncases_file = \"cases.csv\"\n[[variant]]\nname = \"a\"\ntemplate = \"Capital of {{country}}?\"\n[[case]]\nname = \"uk\"\nvars = { country = \"England\" }\n";
        let f = parse(&p, text, &models(), "smollm2").unwrap();
        let names: Vec<&str> = f.cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["uk", "cases.csv:2", "cases.csv:3"]);
        assert_eq!(f.cases[2].expect.any, ["Paris", "paris"]);
        // A row that lacks a template variable is reported by case name.
        std::fs::write(dir.path().join("cases.csv"), "city\nLima\n").unwrap();
        let err = parse(&p, text, &models(), "smollm2")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("which case \"cases.csv:2\" does not define"),
            "{err}"
        );
        let missing = text.replace("cases.csv", "nope.csv");
        let err = parse(&p, &missing, &models(), "smollm2")
            .unwrap_err()
            .to_string();
        assert!(err.contains(":2:14: cannot read cases_file"), "{err}");
    }
}
