//! `{{var}}` templates: the only templating prompt files use, so what you see is what is sent.

use std::collections::BTreeMap;

/// A `{{name}}` reference found in a template, with its byte range in the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VarRef {
    pub name: String,
    pub start: usize,
    pub end: usize,
}

/// Every `{{ name }}` in `template`, in order. Names are trimmed; `{{}}` is ignored.
pub(crate) fn variables(template: &str) -> Vec<VarRef> {
    let mut out = Vec::new();
    let mut rest = 0;
    while let Some(open) = template[rest..].find("{{") {
        let start = rest + open;
        let Some(close) = template[start + 2..].find("}}") else {
            break;
        };
        let end = start + 2 + close + 2;
        let name = template[start + 2..end - 2].trim();
        if !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        {
            out.push(VarRef {
                name: name.to_string(),
                start,
                end,
            });
        }
        rest = end;
    }
    out
}

/// Fill every `{{name}}` from `vars`. A name with no value is left as written, so a missing
/// variable is visible in the output (validation reports it before anything runs).
pub(crate) fn render(template: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    for (_, text) in segments(template, vars) {
        out.push_str(text);
    }
    out
}

/// The rendered template in pieces: literal text (`None`) and each filled variable's value
/// (`Some(name)`), in order. Their concatenation is [`render`]'s output (it is built from
/// them), so a view that highlights the variables shows exactly what is sent.
pub(crate) fn segments<'a>(
    template: &'a str,
    vars: &'a BTreeMap<String, String>,
) -> Vec<(Option<&'a str>, &'a str)> {
    let mut out = Vec::new();
    let mut last = 0;
    for v in variables(template) {
        if v.start > last {
            out.push((None, &template[last..v.start]));
        }
        match vars.get_key_value(&v.name) {
            Some((name, value)) => out.push((Some(name.as_str()), value.as_str())),
            None => out.push((None, &template[v.start..v.end])),
        }
        last = v.end;
    }
    if last < template.len() {
        out.push((None, &template[last..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn renders_variables_with_and_without_spaces() {
        let t = "Capital of {{country}}? Of {{ country }} in {{year}}.";
        assert_eq!(
            render(t, &vars(&[("country", "Peru"), ("year", "1900")])),
            "Capital of Peru? Of Peru in 1900."
        );
    }

    #[test]
    fn missing_variable_is_left_visible() {
        assert_eq!(render("Hi {{name}}!", &vars(&[])), "Hi {{name}}!");
    }

    #[test]
    fn finds_positions_and_ignores_non_names() {
        let t = "a {{x}} b {{ not a var }} {{y_2}} {{";
        let v = variables(t);
        assert_eq!(
            v.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
            ["x", "y_2"]
        );
        assert_eq!(&t[v[0].start..v[0].end], "{{x}}");
    }

    #[test]
    fn segments_mark_the_filled_values_and_concatenate_to_the_rendering() {
        let vs = vars(&[("country", "Peru")]);
        let t = "Capital of {{country}}? {{missing}}!";
        let seg = segments(t, &vs);
        assert_eq!(
            seg,
            [
                (None, "Capital of "),
                (Some("country"), "Peru"),
                (None, "? "),
                (None, "{{missing}}"),
                (None, "!")
            ]
        );
        assert_eq!(seg.iter().map(|s| s.1).collect::<String>(), render(t, &vs));
    }

    #[test]
    fn values_are_not_re_expanded() {
        assert_eq!(
            render("{{a}}", &vars(&[("a", "{{b}}"), ("b", "no")])),
            "{{b}}"
        );
    }
}
