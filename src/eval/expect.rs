//! Expected-answer checks from a case's `expect = { ... }`.
//!
//! `any`: at least one phrase appears; `all`: every phrase appears; `none`: no phrase appears;
//! `regex`: the pattern matches; `equals`: the trimmed answer equals the text. Matching is
//! case-insensitive unless `case_sensitive = true`.

use regex::RegexBuilder;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chat::{ToolCall, ToolSpec};

impl CheckResult {
    fn into_vec(self) -> Vec<CheckResult> {
        vec![self]
    }
}

/// What a good answer must satisfy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Expect {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub none: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub case_sensitive: bool,
    /// The tool the model should call (`expect = { tool = "get_current_weather" }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// What the call's arguments must contain (a subset match: every key given here, with the
    /// same value; strings compared case-insensitively unless `case_sensitive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<serde_json::Value>,
}

/// Whether `want` is contained in `got`: objects by key (recursively), arrays element by
/// element; a string when `got` contains it (so `"Boston"` matches `"Boston, MA"`),
/// case-insensitively unless `case_sensitive`; numbers by value (`72` = `72.0`).
pub(crate) fn subset(want: &Value, got: &Value, case_sensitive: bool) -> bool {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w
            .iter()
            .all(|(k, wv)| g.get(k).is_some_and(|gv| subset(wv, gv, case_sensitive))),
        (Value::Array(w), Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(a, b)| subset(a, b, case_sensitive))
        }
        (Value::String(w), Value::String(g)) => {
            if case_sensitive {
                g.contains(w.trim())
            } else {
                g.to_lowercase().contains(&w.trim().to_lowercase())
            }
        }
        (Value::Number(w), Value::Number(g)) => w.as_f64() == g.as_f64(),
        (w, g) => w == g,
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckResult {
    /// `any`, `all`, `none`, `regex`, `equals` or `tool`.
    pub kind: String,
    pub pass: bool,
    /// What was looked for and, on failure, what was missing or found.
    pub detail: String,
}

impl Expect {
    pub fn is_empty(&self) -> bool {
        self.any.is_empty()
            && self.all.is_empty()
            && self.none.is_empty()
            && self.regex.is_none()
            && self.equals.is_none()
            && self.tool.is_none()
            && self.args.is_none()
    }

    /// Whether this case checks tool calls.
    pub fn checks_tools(&self) -> bool {
        self.tool.is_some() || self.args.is_some()
    }

    /// The `tool` check over every call a conversation made: passes when one call names the
    /// expected tool, its arguments are a JSON object valid against the tool's schema (from
    /// `specs`) and contain `args`. Empty when the case expects no call.
    pub fn check_calls(&self, calls: &[ToolCall], specs: &[ToolSpec]) -> Vec<CheckResult> {
        if !self.checks_tools() {
            return Vec::new();
        }
        let want = self.tool.as_deref();
        let mut reasons = Vec::new();
        for c in calls {
            if want.is_some_and(|w| w != c.name) {
                reasons.push(format!("called {:?}", c.name));
                continue;
            }
            let args = match c.parsed_args() {
                Ok(a) => a,
                Err(e) => {
                    reasons.push(format!("{:?}: {e}", c.name));
                    continue;
                }
            };
            if let Some(spec) = specs.iter().find(|s| s.name == c.name) {
                if let Err(e) = spec.check_args(&args) {
                    reasons.push(format!(
                        "{:?}: arguments do not match the schema: {e}",
                        c.name
                    ));
                    continue;
                }
            }
            if let Some(expected) = &self.args {
                if !subset(expected, &args, self.case_sensitive) {
                    reasons.push(format!("{:?} with arguments {args}", c.name));
                    continue;
                }
            }
            return vec![CheckResult {
                kind: "tool".into(),
                pass: true,
                detail: format!("called {:?} with {args}", c.name),
            }];
        }
        let looked_for = match (&want, &self.args) {
            (Some(t), Some(a)) => format!("{t:?} with {a}"),
            (Some(t), None) => format!("{t:?}"),
            (None, Some(a)) => format!("a call with {a}"),
            (None, None) => String::new(),
        };
        CheckResult {
            kind: "tool".into(),
            pass: false,
            detail: if reasons.is_empty() {
                format!("expected a call to {looked_for}; no tool was called")
            } else {
                format!("expected a call to {looked_for}; {}", reasons.join("; "))
            },
        }
        .into_vec()
    }

    /// Checked when the prompt file loads, so a bad pattern fails before anything runs.
    pub fn validate(&self) -> Result<(), String> {
        if self.args.as_ref().is_some_and(|a| !a.is_object()) {
            return Err("expect.args must be a table of argument values, e.g. args = { location = \"Boston\" }".into());
        }
        if let Some(r) = &self.regex {
            RegexBuilder::new(r)
                .case_insensitive(!self.case_sensitive)
                .build()
                .map_err(|e| format!("invalid regex {r:?}: {e}"))?;
        }
        Ok(())
    }

    /// Whether `partial` (an answer still streaming) has already decided the checks for
    /// `stop`: with `FirstFail`, some check can no longer pass (a `none` phrase appeared,
    /// the text left `equals`); with `FirstPass`, every check passes already and no more text
    /// can undo it (`any`/`all` found, `regex` matched; `none` and `equals` need the end).
    /// The check kind that decided it.
    pub fn decided(&self, partial: &str, stop: crate::chat::StopOn) -> Option<&'static str> {
        use crate::chat::StopOn;
        if self.is_empty() {
            return None;
        }
        let fold = |s: &str| {
            if self.case_sensitive {
                s.to_string()
            } else {
                s.to_lowercase()
            }
        };
        let hay = fold(partial);
        let contains = |needle: &String| hay.contains(&fold(needle));
        let regex_matches = || {
            self.regex.as_ref().is_some_and(|r| {
                RegexBuilder::new(r)
                    .case_insensitive(!self.case_sensitive)
                    .build()
                    .is_ok_and(|re| re.is_match(partial))
            })
        };
        match stop {
            StopOn::FirstFail => {
                if self.none.iter().any(contains) {
                    return Some("none");
                }
                if let Some(e) = &self.equals {
                    if !fold(e.trim()).starts_with(fold(partial.trim_start()).trim_end()) {
                        return Some("equals");
                    }
                }
                None
            }
            StopOn::FirstPass => {
                let undecidable = !self.none.is_empty() || self.equals.is_some();
                let any = self.any.is_empty() || self.any.iter().any(contains);
                let all = self.all.iter().all(contains);
                let regex = self.regex.is_none() || regex_matches();
                (!undecidable && any && all && regex).then_some("all checks")
            }
        }
    }

    /// Run every check on `answer`.
    pub fn check(&self, answer: &str) -> Vec<CheckResult> {
        let fold = |s: &str| {
            if self.case_sensitive {
                s.to_string()
            } else {
                s.to_lowercase()
            }
        };
        let hay = fold(answer);
        let contains = |needle: &String| hay.contains(&fold(needle));
        let mut out = Vec::new();
        if !self.any.is_empty() {
            let found: Vec<&String> = self.any.iter().filter(|n| contains(n)).collect();
            out.push(CheckResult {
                kind: "any".into(),
                pass: !found.is_empty(),
                detail: if found.is_empty() {
                    format!("none of {:?} found", self.any)
                } else {
                    format!("found {:?}", found[0])
                },
            });
        }
        if !self.all.is_empty() {
            let missing: Vec<&String> = self.all.iter().filter(|n| !contains(n)).collect();
            out.push(CheckResult {
                kind: "all".into(),
                pass: missing.is_empty(),
                detail: if missing.is_empty() {
                    format!("all of {:?} found", self.all)
                } else {
                    format!("missing {missing:?}")
                },
            });
        }
        if !self.none.is_empty() {
            let found: Vec<&String> = self.none.iter().filter(|n| contains(n)).collect();
            out.push(CheckResult {
                kind: "none".into(),
                pass: found.is_empty(),
                detail: if found.is_empty() {
                    format!("none of {:?} found", self.none)
                } else {
                    format!("found forbidden {found:?}")
                },
            });
        }
        if let Some(r) = &self.regex {
            let pass = RegexBuilder::new(r)
                .case_insensitive(!self.case_sensitive)
                .build()
                .map(|re| re.is_match(answer))
                .unwrap_or(false);
            out.push(CheckResult {
                kind: "regex".into(),
                pass,
                detail: format!("/{r}/ {}", if pass { "matched" } else { "did not match" }),
            });
        }
        if let Some(e) = &self.equals {
            let pass = fold(answer.trim()) == fold(e.trim());
            out.push(CheckResult {
                kind: "equals".into(),
                pass,
                detail: format!("expected exactly {e:?}"),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e() -> Expect {
        Expect::default()
    }

    #[test]
    fn streaming_checks_decide_early_only_when_more_text_cannot_change_them() {
        use crate::chat::StopOn::{FirstFail, FirstPass};
        let x = Expect {
            any: vec!["London".into()],
            regex: Some(r"\bcapital\b".into()),
            ..e()
        };
        assert_eq!(x.decided("The capital", FirstPass), None);
        assert_eq!(
            x.decided("The capital is london", FirstPass),
            Some("all checks")
        );
        assert_eq!(x.decided("The capital is london", FirstFail), None);
        let forbid = Expect {
            any: vec!["London".into()],
            none: vec!["Paris".into()],
            ..e()
        };
        // A `none` check can only be passed at the end.
        assert_eq!(forbid.decided("London", FirstPass), None);
        assert_eq!(forbid.decided("It is PARIS", FirstFail), Some("none"));
        let eq = Expect {
            equals: Some("London".into()),
            ..e()
        };
        assert_eq!(eq.decided("  Lon", FirstFail), None);
        assert_eq!(eq.decided("Lon ", FirstFail), None);
        assert_eq!(eq.decided("Londres", FirstFail), Some("equals"));
        assert_eq!(eq.decided("London", FirstPass), None);
        assert_eq!(e().decided("anything", FirstFail), None);
        // Whatever decided early agrees with the full check of the same text.
        assert!(!forbid.check("It is PARIS").iter().all(|c| c.pass));
        assert!(x.check("The capital is london").iter().all(|c| c.pass));
    }

    #[test]
    fn any_is_case_insensitive_by_default() {
        let x = Expect {
            any: vec!["London".into(), "Londres".into()],
            ..e()
        };
        let r = x.check("The capital is LONDON.");
        assert_eq!(r.len(), 1);
        assert!(r[0].pass);
        assert!(!x.check("Paris")[0].pass);
    }

    #[test]
    fn case_sensitive_can_be_asked_for() {
        let x = Expect {
            any: vec!["London".into()],
            case_sensitive: true,
            ..e()
        };
        assert!(!x.check("london")[0].pass);
        assert!(x.check("London")[0].pass);
    }

    #[test]
    fn all_none_regex_equals() {
        let x = Expect {
            all: vec!["a".into(), "b".into()],
            none: vec!["zzz".into()],
            regex: Some(r"^\d+$".into()),
            equals: Some(" 42 ".into()),
            ..e()
        };
        let r = x.check("42");
        let kinds: Vec<(&str, bool)> = r.iter().map(|c| (c.kind.as_str(), c.pass)).collect();
        assert_eq!(
            kinds,
            [
                ("all", false),
                ("none", true),
                ("regex", true),
                ("equals", true)
            ]
        );
        assert_eq!(r[0].detail, "missing [\"a\", \"b\"]");
        let r = x.check("ab zzz");
        assert!(r[0].pass);
        assert!(!r[1].pass);
        assert!(!r[2].pass);
    }

    #[test]
    fn empty_expectation_checks_nothing() {
        assert!(e().is_empty());
        assert!(e().check("anything").is_empty());
    }

    #[test]
    fn invalid_regex_fails_validation() {
        let x = Expect {
            regex: Some("(".into()),
            ..e()
        };
        assert!(x.validate().unwrap_err().starts_with("invalid regex"));
    }
}
