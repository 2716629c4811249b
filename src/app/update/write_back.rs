//! Writing edited variants back to the prompt file with `toml_edit`, so comments, ordering
//! and formatting of everything the user didn't change stay as they were.
//!
//! Each variant is compared with the one the file defined under the same name: only fields
//! that differ are written (a variant that inherits `model` from `[defaults]` keeps doing so).
//! Variants that are gone are removed, new ones are appended.

use std::path::Path;

use toml_edit::{value, Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table};

use crate::prompt::{Example, Variant};

/// The prompt file's new text with `variants` written into `source`, whose variants were
/// `original` (as [`crate::prompt::PromptFile::file_variants`] keeps them; nothing is read from disk
/// here, so `update` stays pure).
pub(crate) fn rewrite(
    path: &Path,
    source: &str,
    original: &[Variant],
    variants: &[Variant],
) -> Result<String, String> {
    let mut doc: DocumentMut = source
        .parse()
        .map_err(|e| format!("{}: cannot parse: {e}", path.display()))?;
    if doc.get("variant").is_none() {
        doc.insert("variant", Item::ArrayOfTables(ArrayOfTables::new()));
    }
    let aot = doc
        .get_mut("variant")
        .and_then(Item::as_array_of_tables_mut)
        .ok_or_else(|| format!("{}: `variant` is not an array of tables", path.display()))?;
    // Remove variants that no longer exist.
    let mut i = 0;
    while i < aot.len() {
        let name = aot
            .get(i)
            .and_then(|t| t.get("name"))
            .and_then(Item::as_str)
            .map(str::to_string);
        if name.is_some_and(|n| !variants.iter().any(|v| v.name == n)) {
            aot.remove(i);
        } else {
            i += 1;
        }
    }
    for v in variants {
        let pos = (0..aot.len()).find(|&i| {
            aot.get(i)
                .and_then(|t| t.get("name"))
                .and_then(Item::as_str)
                == Some(v.name.as_str())
        });
        let before = original.iter().find(|o| o.name == v.name);
        match (pos, before) {
            (Some(i), Some(old)) => {
                if let Some(t) = aot.get_mut(i) {
                    write_changes(t, old, v);
                }
            }
            _ => {
                let mut t = Table::new();
                t.insert("name", value(v.name.clone()));
                let blank = Variant::new(&v.name, "", "");
                write_changes(&mut t, &blank, v);
                aot.push(t);
            }
        }
    }
    Ok(doc.to_string())
}

fn set_opt_str(t: &mut Table, key: &str, old: &Option<String>, new: &Option<String>) {
    if old != new {
        match new {
            Some(s) => {
                t.insert(key, value(s.clone()));
            }
            None => {
                t.remove(key);
            }
        }
    }
}

fn write_changes(t: &mut Table, old: &Variant, new: &Variant) {
    set_opt_str(t, "description", &old.description, &new.description);
    if old.model != new.model {
        t.insert("model", value(new.model.clone()));
    }
    set_opt_str(t, "system", &old.system, &new.system);
    if old.template != new.template {
        t.insert("template", value(new.template.clone()));
    }
    if old.examples != new.examples {
        if new.examples.is_empty() {
            t.remove("examples");
        } else {
            t.insert("examples", value(examples_array(&new.examples)));
        }
    }
    if old.context != new.context {
        t.remove("context_files");
        let mut a = Array::new();
        for c in &new.context {
            a.push(c.clone());
        }
        t.insert("context", value(a));
    }
    set_opt_str(
        t,
        "context_instruction",
        &old.context_instruction,
        &new.context_instruction,
    );
    if old.step_by_step != new.step_by_step {
        if new.step_by_step {
            t.insert("step_by_step", value(true));
        } else {
            t.remove("step_by_step");
        }
    }
    let (o, n) = (&old.sampling, &new.sampling);
    let float = |t: &mut Table, k: &str, a: Option<f64>, b: Option<f64>| {
        if a != b {
            match b {
                Some(x) => {
                    t.insert(k, value(x));
                }
                None => {
                    t.remove(k);
                }
            }
        }
    };
    let int = |t: &mut Table, k: &str, a: Option<u64>, b: Option<u64>| {
        if a != b {
            match b.and_then(|x| i64::try_from(x).ok()) {
                Some(x) => {
                    t.insert(k, value(x));
                }
                None => {
                    t.remove(k);
                }
            }
        }
    };
    float(t, "temperature", o.temperature, n.temperature);
    float(t, "top_p", o.top_p, n.top_p);
    int(
        t,
        "top_k",
        o.top_k.map(|x| x as u64),
        n.top_k.map(|x| x as u64),
    );
    int(
        t,
        "max_tokens",
        o.max_tokens.map(|x| x as u64),
        n.max_tokens.map(|x| x as u64),
    );
    int(t, "seed", o.seed, n.seed);
    if o.stop != n.stop {
        let mut a = Array::new();
        for s in &n.stop {
            a.push(s.clone());
        }
        t.insert("stop", value(a));
    }
    set_opt_str(t, "generated", &old.generated, &new.generated);
}

fn examples_array(examples: &[Example]) -> Array {
    let mut a = Array::new();
    for e in examples {
        let mut it = InlineTable::new();
        it.insert("input", e.input.clone().into());
        it.insert("output", e.output.clone().into());
        a.push(it);
    }
    a.set_trailing_comma(true);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt;

    const SRC: &str = "# my experiment\ntitle = \"T\"\n\n[defaults]\nmodel = \"m\"\ntemperature = 0.0\n\n# the plain one\n[[variant]]\nname = \"plain\"\ntemplate = \"Q: {{q}}\"  # keep me\n\n[[variant]]\nname = \"gone\"\ntemplate = \"x {{q}}\"\n\n[[case]]\nvars = { q = \"hi\" }\n";

    #[test]
    fn only_changed_fields_are_written_and_comments_survive() {
        let models = vec!["m".to_string(), "n".to_string()];
        let p = prompt::parse(Path::new("p.toml"), SRC, &models, "m").unwrap();
        let mut plain = p.variants[0].clone();
        plain.system = Some("Be brief.".into());
        let mut extra = plain.clone();
        extra.name = "extra".into();
        extra.model = "n".into();
        let out = rewrite(Path::new("p.toml"), SRC, &p.file_variants, &[plain, extra]).unwrap();
        assert!(out.contains("# my experiment"), "{out}");
        assert!(out.contains("# the plain one"), "{out}");
        assert!(out.contains("template = \"Q: {{q}}\"  # keep me"), "{out}");
        assert!(!out.contains("gone"), "{out}");
        let again = prompt::parse(Path::new("p.toml"), &out, &models, "m").unwrap();
        assert_eq!(again.variants.len(), 2);
        assert_eq!(again.variants[0].system.as_deref(), Some("Be brief."));
        assert_eq!(again.variants[1].model, "n");
        // `plain` still inherits its model from [defaults].
        let plain_block = out.split("[[variant]]").nth(1).unwrap();
        assert!(!plain_block.contains("model"), "{out}");
    }
}
