//! The `[techniques]` table of a prompt file: the prompts behind the techniques
//! (self-critique, tree-of-thought, value, judge, variant proposals), their parameters, and
//! the models that run them. The requests built from these for each step live in
//! [`crate::technique::requests`].
//!
//! Defaults are written for small models: one instruction, an explicit output format the
//! parsers in [`crate::eval`] read back, and an exact phrase to say when there is nothing to
//! do. A prompt file may override any of them in its optional `[techniques]` table, and may
//! name different models for the critic, the judge and the proposer.

use serde::Deserialize;
use toml::Spanned;

/// The phrase a critic says when there is nothing left to fix.
pub(crate) const NO_ISSUES: &str = "NO ISSUES";

pub(crate) const CRITIQUE: &str = "Analyse the previous answer to the task. List the concrete problems with it: mistakes, missing parts, unclear wording, anything that does not do what the task asks. Be specific and brief, one problem per line. If there is nothing left to fix, say exactly NO ISSUES and nothing else.";

pub(crate) const REWRITE: &str = "Improve the answer based on the critique: fix every problem it lists and keep what was already good. Output only the improved answer, with no preamble and no comments about the changes.";

pub(crate) const VALUE: &str = "Evaluate whether the partial solution above is on track to solve the task correctly. Think briefly, then give your verdict on the last line as exactly one word: sure (it certainly leads to a correct answer), likely (it might), or impossible (it cannot).";

pub(crate) const JUDGE_RUBRIC: &str = "Judge how well the answer does the task: is it correct, complete, relevant and clearly written? Penalise wrong facts heavily and verbosity lightly.";

pub(crate) const JUDGE_FORMAT: &str = "Reply in exactly this format:\nSCORE: <a whole number from 1 (useless) to 10 (perfect)>\nREASON: <one sentence>";

pub(crate) const PAIRWISE_FORMAT: &str = "Which answer does the task better? Reply in exactly this format:\nWINNER: <A or B or TIE>\nREASON: <one sentence>";

pub(crate) const STEP: &str = "Continue the reasoning with the single next step only. Write one short step; do not repeat earlier steps. If the steps so far already reach the final answer, write the final answer.";

/// The intents a proposer is asked to cover, in order.
pub(crate) const PROPOSAL_INTENTS: [&str; 4] =
    ["clearer task", "added role", "few-shot", "chain of thought"];

/// Search parameters for breadth-first tree-of-thought.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchParams {
    /// Thoughts per frontier node.
    #[serde(default = "default_k")]
    pub k: usize,
    /// Candidates kept per level.
    #[serde(default = "default_beam")]
    pub beam: usize,
    /// Levels below the root.
    #[serde(default = "default_depth")]
    pub depth: usize,
    /// Value prompts per thought, averaged.
    #[serde(default = "default_value_samples")]
    pub value_samples: usize,
}

fn default_k() -> usize {
    3
}
fn default_beam() -> usize {
    2
}
fn default_depth() -> usize {
    3
}
fn default_value_samples() -> usize {
    3
}

impl Default for SearchParams {
    fn default() -> Self {
        SearchParams {
            k: default_k(),
            beam: default_beam(),
            depth: default_depth(),
            value_samples: default_value_samples(),
        }
    }
}

/// A prompt file's technique settings after validation; every field falls back to the
/// built-in default.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Techniques {
    pub critique: String,
    pub rewrite: String,
    pub value: String,
    pub judge_rubric: String,
    pub step: String,
    pub critic_model: Option<String>,
    pub judge_model: Option<String>,
    pub proposer_model: Option<String>,
    pub branch_k: usize,
    pub branch_temperature: f64,
    pub search: SearchParams,
    pub critique_rounds: usize,
    /// How many rewrites the proposer is asked for (`g`, `technique propose`).
    pub proposals: usize,
}

impl Default for Techniques {
    fn default() -> Self {
        Techniques {
            critique: CRITIQUE.into(),
            rewrite: REWRITE.into(),
            value: VALUE.into(),
            judge_rubric: JUDGE_RUBRIC.into(),
            step: STEP.into(),
            critic_model: None,
            judge_model: None,
            proposer_model: None,
            branch_k: 3,
            branch_temperature: 0.9,
            search: SearchParams::default(),
            critique_rounds: 3,
            proposals: 3,
        }
    }
}

/// The `[techniques]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTechniques {
    critique: Option<String>,
    rewrite: Option<String>,
    value: Option<String>,
    judge_rubric: Option<String>,
    step: Option<String>,
    critic_model: Option<Spanned<String>>,
    judge_model: Option<Spanned<String>>,
    proposer_model: Option<Spanned<String>>,
    branch_k: Option<Spanned<usize>>,
    branch_temperature: Option<Spanned<f64>>,
    search: Option<Spanned<SearchParams>>,
    critique_rounds: Option<Spanned<usize>>,
    proposals: Option<Spanned<usize>>,
}

impl RawTechniques {
    /// Validate against the configured models; `err(offset, message)` builds a positioned
    /// error.
    pub(crate) fn validate<E>(
        self,
        models: &[String],
        err: impl Fn(usize, String) -> E,
    ) -> Result<Techniques, E> {
        let d = Techniques::default();
        let model = |m: Option<Spanned<String>>| -> Result<Option<String>, E> {
            match m {
                None => Ok(None),
                Some(m) if models.iter().any(|x| x == m.get_ref()) => Ok(Some(m.into_inner())),
                Some(m) => Err(err(
                    m.span().start,
                    format!(
                        "unknown model {:?} in [techniques]; configured: {}",
                        m.get_ref(),
                        models.join(", ")
                    ),
                )),
            }
        };
        let positive = |v: Option<Spanned<usize>>, name: &str, max: usize, dflt: usize| match v {
            None => Ok(dflt),
            Some(v) if (1..=max).contains(v.get_ref()) => Ok(*v.get_ref()),
            Some(v) => Err(err(
                v.span().start,
                format!("{name} must be between 1 and {max}"),
            )),
        };
        let search = match self.search {
            None => d.search,
            Some(s) => {
                let p = *s.get_ref();
                let ok = (1..=16).contains(&p.k)
                    && (1..=16).contains(&p.beam)
                    && (1..=10).contains(&p.depth)
                    && p.value_samples <= 10;
                if !ok {
                    return Err(err(
                        s.span().start,
                        "search needs k and beam in 1..=16, depth in 1..=10, value_samples in 0..=10"
                            .into(),
                    ));
                }
                p
            }
        };
        let branch_temperature = match self.branch_temperature {
            None => d.branch_temperature,
            Some(t) if (0.0..=2.0).contains(t.get_ref()) => *t.get_ref(),
            Some(t) => {
                return Err(err(
                    t.span().start,
                    "branch_temperature must be between 0.0 and 2.0".into(),
                ))
            }
        };
        Ok(Techniques {
            critique: self.critique.unwrap_or(d.critique),
            rewrite: self.rewrite.unwrap_or(d.rewrite),
            value: self.value.unwrap_or(d.value),
            judge_rubric: self.judge_rubric.unwrap_or(d.judge_rubric),
            step: self.step.unwrap_or(d.step),
            critic_model: model(self.critic_model)?,
            judge_model: model(self.judge_model)?,
            proposer_model: model(self.proposer_model)?,
            branch_k: positive(self.branch_k, "branch_k", 16, d.branch_k)?,
            branch_temperature,
            search,
            critique_rounds: positive(
                self.critique_rounds,
                "critique_rounds",
                10,
                d.critique_rounds,
            )?,
            proposals: positive(self.proposals, "proposals", 8, d.proposals)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn techniques_table_validates_models_and_ranges() {
        let parse = |t: &str| -> Result<Techniques, String> {
            let raw: RawTechniques = toml::from_str(t).map_err(|e| e.to_string())?;
            raw.validate(&["smollm2".into(), "big".into()], |off, m| {
                format!("{off}: {m}")
            })
        };
        let t =
            parse("critic_model = \"big\"\nbranch_k = 2\nsearch = { k = 2, beam = 1 }\n").unwrap();
        assert_eq!(t.critic_model.as_deref(), Some("big"));
        assert_eq!(t.branch_k, 2);
        assert_eq!(t.search.k, 2);
        assert_eq!(t.search.depth, 3);
        assert_eq!(t.critique, CRITIQUE);
        let e = parse("judge_model = \"gpt9\"\n").unwrap_err();
        assert!(e.starts_with("14: unknown model \"gpt9\""), "{e}");
        assert!(parse("branch_k = 0\n")
            .unwrap_err()
            .contains("branch_k must be"));
        assert!(parse("search = { k = 99 }\n").is_err());
        assert_eq!(parse("").unwrap().proposals, 3);
        assert_eq!(parse("proposals = 5\n").unwrap().proposals, 5);
        assert!(parse("proposals = 9\n")
            .unwrap_err()
            .contains("proposals must be between 1 and 8"));
        assert!(parse("critque = \"x\"\n")
            .unwrap_err()
            .contains("unknown field"));
    }
}
