//! The requests a technique sends, built from session nodes: the task behind a node, the
//! reasoning steps above it, and one request builder per step (critique, rewrite, value,
//! branch, next step, judge, pairwise, propose), plus reading a proposer's answer back.

use std::collections::BTreeSet;

use crate::chat::{ChatMessage, ChatRequest, Role, Sampling};
use crate::prompt::techniques::{JUDGE_FORMAT, PAIRWISE_FORMAT, PROPOSAL_INTENTS};
use crate::prompt::{template, Variant};
use crate::state::session::{Node, NodeKind, Session};

// ---- what a node was asked -----------------------------------------------------------

/// The task behind a node: the system prompt and the last user turn of the request that
/// started its chain (the nearest answer or search root above it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Task {
    pub system: Option<String>,
    pub user: String,
    /// The request of the chain's root, whose examples and system prompt step requests keep.
    pub base: ChatRequest,
}

/// The node whose request defines the task for `id`: the nearest ancestor-or-self of kind
/// `answer`, or the top of a chain of thoughts.
pub(crate) fn task_root(session: &Session, id: u64) -> Option<&Node> {
    let mut cur = session.node(id)?;
    let mut seen = BTreeSet::new();
    while cur.kind != NodeKind::Answer && seen.insert(cur.id) {
        match cur.parent.and_then(|p| session.node(p)) {
            Some(p) => cur = p,
            None => break,
        }
    }
    Some(cur)
}

/// The task a node answers.
pub(crate) fn task_of(session: &Session, id: u64) -> Option<Task> {
    let root = task_root(session, id)?;
    let user = root
        .request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)?
        .content
        .clone();
    let system = root
        .request
        .messages
        .iter()
        .find(|m| m.role == Role::System)
        .map(|m| m.content.clone());
    Some(Task {
        system,
        user,
        base: root.request.clone(),
    })
}

/// The reasoning steps on the path to `id` (inclusive), top down: the texts of the thought
/// (and answer) nodes from the task root or the search root, empty texts skipped.
pub(crate) fn steps_to(session: &Session, id: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut cur = session.node(id);
    while let Some(n) = cur {
        if !seen.insert(n.id) || !matches!(n.kind, NodeKind::Thought | NodeKind::Answer) {
            break;
        }
        if !n.text.trim().is_empty() {
            out.push(n.text.trim().to_string());
        }
        // A search root starts a fresh chain: the answer it hangs under is not a step.
        if n.kind == NodeKind::Answer || n.meta.contains_key("search_root") {
            break;
        }
        cur = n.parent.and_then(|p| session.node(p));
    }
    out.reverse();
    out
}

fn numbered(steps: &[String]) -> String {
    let mut s = String::new();
    for (i, st) in steps.iter().enumerate() {
        s.push_str(&format!("Step {}: {}\n", i + 1, st));
    }
    s
}

/// Sampling for a technique step: its own temperature and token budget, the task's other
/// settings.
fn technique_sampling(base: &Sampling, temperature: f64, max_tokens: usize) -> Sampling {
    Sampling {
        temperature: Some(temperature),
        top_p: base.top_p,
        top_k: base.top_k,
        max_tokens: Some(max_tokens),
        stop: Vec::new(),
        seed: base.seed,
        logprobs: base.logprobs,
        // Technique steps write text: no tools (nothing would answer their calls).
        ..Sampling::default()
    }
}

fn single_turn(text: String, sampling: Sampling) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::new(Role::User, text)],
        sampling,
    }
}

// ---- request builders ------------------------------------------------------------------

/// The critique of `answer` for `task`.
pub(crate) fn critique_request(task: &Task, answer: &str, prompt: &str) -> ChatRequest {
    single_turn(
        format!(
            "Task:\n{}\n\nPrevious answer:\n{}\n\n{}",
            task.user.trim(),
            answer.trim(),
            prompt
        ),
        technique_sampling(&task.base.sampling, 0.0, 256),
    )
}

/// A rewrite may be as long as the answer was allowed to be.
fn rewrite_budget(task: &Task) -> usize {
    task.base.sampling.max_tokens.unwrap_or(256).max(256)
}

/// The rewrite of `answer` given `critique`. Keeps the task's system prompt, so the rewrite
/// speaks with the same role as the answer.
pub(crate) fn rewrite_request(
    task: &Task,
    answer: &str,
    critique: &str,
    prompt: &str,
) -> ChatRequest {
    let mut messages = Vec::with_capacity(2);
    if let Some(s) = &task.system {
        messages.push(ChatMessage::new(Role::System, s.clone()));
    }
    messages.push(ChatMessage::new(
        Role::User,
        format!(
            "Task:\n{}\n\nPrevious answer:\n{}\n\nCritique:\n{}\n\n{}",
            task.user.trim(),
            answer.trim(),
            critique.trim(),
            prompt
        ),
    ));
    ChatRequest {
        messages,
        sampling: technique_sampling(&task.base.sampling, 0.0, rewrite_budget(task)),
    }
}

/// The value prompt for the partial solution `steps`.
pub(crate) fn value_request(task: &Task, steps: &[String], prompt: &str, seed: u64) -> ChatRequest {
    let mut sampling = technique_sampling(&task.base.sampling, 0.7, 96);
    sampling.seed = Some(seed);
    single_turn(
        format!(
            "Task:\n{}\n\nPartial solution:\n{}\n{}",
            task.user.trim(),
            numbered(steps),
            prompt
        ),
        sampling,
    )
}

/// An alternative to `node` made from the same context: its own request with the
/// temperature raised and a fresh seed.
pub(crate) fn branch_answer_request(node: &Node, temperature: f64, seed: u64) -> ChatRequest {
    let mut r = node.request.clone();
    r.sampling.temperature = Some(temperature);
    r.sampling.seed = Some(seed);
    r
}

/// The next reasoning step after `steps`: the task's own conversation (system prompt,
/// examples) with the last user turn extended by the steps so far and the step instruction.
pub(crate) fn step_request(
    task: &Task,
    steps: &[String],
    prompt: &str,
    temperature: f64,
    seed: u64,
) -> ChatRequest {
    let mut messages = task.base.messages.clone();
    let turn = if steps.is_empty() {
        format!("{}\n\n{}", task.user.trim(), prompt)
    } else {
        format!(
            "{}\n\nSteps so far:\n{}\n{}",
            task.user.trim(),
            numbered(steps),
            prompt
        )
    };
    match messages.iter_mut().rev().find(|m| m.role == Role::User) {
        Some(m) => m.content = turn,
        None => messages.push(ChatMessage::new(Role::User, turn)),
    }
    let mut sampling = task.base.sampling.clone();
    sampling.temperature = Some(temperature);
    sampling.seed = Some(seed);
    sampling.max_tokens = Some(sampling.max_tokens.unwrap_or(64).min(96));
    sampling.stop = vec!["\n\n".into()];
    sampling.tools.clear();
    sampling.tool_choice = None;
    ChatRequest { messages, sampling }
}

/// A 1–10 judgement of `answer` against `rubric`.
pub(crate) fn judge_request(task: &Task, answer: &str, rubric: &str) -> ChatRequest {
    single_turn(
        format!(
            "{rubric}\n\nTask:\n{}\n\nAnswer:\n{}\n\n{JUDGE_FORMAT}",
            task.user.trim(),
            answer.trim()
        ),
        technique_sampling(&task.base.sampling, 0.0, 96),
    )
}

/// A pairwise judgement: which of `a` and `b` (shown in that order) does the task better.
pub(crate) fn pairwise_request(task: &Task, a: &str, b: &str, rubric: &str) -> ChatRequest {
    single_turn(
        format!(
            "{rubric}\n\nTask:\n{}\n\nAnswer A:\n{}\n\nAnswer B:\n{}\n\n{PAIRWISE_FORMAT}",
            task.user.trim(),
            a.trim(),
            b.trim()
        ),
        technique_sampling(&task.base.sampling, 0.0, 96),
    )
}

/// Ask for `n` rewrites of `variant`, each with a stated intent, in the format
/// [`parse_proposals`] reads.
pub(crate) fn propose_request(variant: &Variant, n: usize, sampling: &Sampling) -> ChatRequest {
    let vars: Vec<String> = template::variables(&variant.template)
        .into_iter()
        .map(|v| format!("{{{{{}}}}}", v.name))
        .collect();
    let intents: Vec<&str> = PROPOSAL_INTENTS.iter().cycle().take(n).copied().collect();
    let mut text = String::new();
    text.push_str(&format!(
        "Here is a prompt template for a language model.\n\nSYSTEM: {}\nTEMPLATE:\n{}\n\n",
        variant.system.as_deref().unwrap_or("(none)"),
        variant.template.trim()
    ));
    text.push_str(&format!(
        "Write {n} improved versions of it, one for each of these intents: {}.\n",
        intents.join("; ")
    ));
    if !vars.is_empty() {
        text.push_str(&format!(
            "Every TEMPLATE must keep the placeholders {} exactly as written.\n",
            vars.join(", ")
        ));
    }
    text.push_str("Use exactly this format for each version:\n\nVARIANT 1\nINTENT: <the intent>\nSYSTEM: <a system prompt, or (none)>\nTEMPLATE:\n<the new template>\n\nVARIANT 2\n...");
    single_turn(text, technique_sampling(sampling, 0.7, 512))
}

// ---- proposals -------------------------------------------------------------------------

/// One proposed variant read back from a proposer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proposal {
    pub intent: String,
    pub system: Option<String>,
    pub template: String,
}

/// Proposals parsed from `text`, plus a reason for each block that was rejected. A block is
/// rejected when it has no template or drops a placeholder of `required` (a template that
/// loses `{{question}}` can no longer answer any case), or uses one not in `allowed`.
pub(crate) fn parse_proposals(
    text: &str,
    required: &[String],
    allowed: &[String],
) -> (Vec<Proposal>, Vec<String>) {
    let header = |line: &str| {
        let t = line
            .trim()
            .trim_start_matches(['#', '*', ' '])
            .trim_end_matches(['*', ':', ' '])
            .to_ascii_lowercase();
        t.strip_prefix("variant")
            .map(|rest| rest.trim().chars().all(|c| c.is_ascii_digit()) && !rest.trim().is_empty())
            .unwrap_or(false)
    };
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    for line in text.lines() {
        if header(line) {
            blocks.push(Vec::new());
        } else if let Some(b) = blocks.last_mut() {
            b.push(line);
        }
    }
    if blocks.is_empty() && text.to_ascii_lowercase().contains("template:") {
        blocks.push(text.lines().collect());
    }
    let mut ok = Vec::new();
    let mut rejected = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        match parse_block(block, required, allowed) {
            Ok(p) => ok.push(p),
            Err(e) => rejected.push(format!("block {}: {e}", i + 1)),
        }
    }
    if blocks.is_empty() {
        rejected.push("no VARIANT blocks found".into());
    }
    (ok, rejected)
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let t = line.trim().trim_start_matches(['*', '-', ' ']);
    let lower = t.to_ascii_lowercase();
    if !lower.starts_with(name) {
        return None;
    }
    let rest = t[name.len()..].trim_start_matches(['*', ' ']);
    rest.strip_prefix(':')
        .map(|r| r.trim_start_matches(['*', ' ']).trim())
}

fn parse_block(
    block: &[&str],
    required: &[String],
    allowed: &[String],
) -> Result<Proposal, String> {
    let mut intent = None;
    let mut system = None;
    let mut template_lines: Option<Vec<&str>> = None;
    for line in block {
        if let Some(t) = template_lines.as_mut() {
            t.push(line);
            continue;
        }
        if let Some(v) = field(line, "intent") {
            intent = Some(v.to_string());
        } else if let Some(v) = field(line, "system") {
            let v = v.trim_matches('"');
            if !v.is_empty() && !v.eq_ignore_ascii_case("(none)") && !v.eq_ignore_ascii_case("none")
            {
                system = Some(v.to_string());
            }
        } else if let Some(v) = field(line, "template") {
            template_lines = Some(if v.is_empty() { vec![] } else { vec![v] });
        }
    }
    let template = template_lines
        .map(|l| l.join("\n"))
        .map(|t| t.trim().trim_matches('`').trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or("no TEMPLATE")?;
    let used: Vec<String> = template::variables(&template)
        .into_iter()
        .map(|v| v.name)
        .collect();
    if let Some(missing) = required.iter().find(|r| !used.contains(r)) {
        return Err(format!("the template drops {{{{{missing}}}}}"));
    }
    if let Some(unknown) = used.iter().find(|u| !allowed.contains(u)) {
        return Err(format!("the template uses undefined {{{{{unknown}}}}}"));
    }
    Ok(Proposal {
        intent: intent
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| "unstated".into()),
        system,
        template,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::techniques::{CRITIQUE, REWRITE, STEP};
    use crate::state::session::NodeStatus;

    fn node(id: u64, parent: Option<u64>, kind: NodeKind, text: &str, req: ChatRequest) -> Node {
        let mut n = Node::start(id, parent, kind, "v", "c", "m", req, "t".into());
        n.text = text.into();
        n.status = NodeStatus::Done;
        n
    }

    fn base_request() -> ChatRequest {
        ChatRequest {
            messages: vec![
                ChatMessage::new(Role::System, "You are good at arithmetic."),
                ChatMessage::new(Role::User, "Use 4 4 6 8 to make 24."),
            ],
            sampling: Sampling {
                temperature: Some(0.0),
                max_tokens: Some(200),
                ..Default::default()
            },
        }
    }

    fn session() -> Session {
        let mut s = Session::new("t", "now".into(), None);
        let empty = ChatRequest {
            messages: vec![],
            sampling: Sampling::default(),
        };
        s.nodes.push(node(
            1,
            None,
            NodeKind::Answer,
            "4 + 8 = 12",
            base_request(),
        ));
        s.nodes.push(node(
            2,
            Some(1),
            NodeKind::Thought,
            "6 - 4 = 2",
            empty.clone(),
        ));
        s.nodes.push(node(
            3,
            Some(2),
            NodeKind::Thought,
            "12 * 2 = 24",
            empty.clone(),
        ));
        s.nodes
            .push(node(4, Some(3), NodeKind::Value, "likely", empty));
        s
    }

    #[test]
    fn task_and_steps_come_from_the_chain() {
        let s = session();
        let t = task_of(&s, 3).unwrap();
        assert_eq!(t.user, "Use 4 4 6 8 to make 24.");
        assert_eq!(t.system.as_deref(), Some("You are good at arithmetic."));
        assert_eq!(steps_to(&s, 3), ["4 + 8 = 12", "6 - 4 = 2", "12 * 2 = 24"]);
        assert_eq!(task_of(&s, 4).unwrap().user, "Use 4 4 6 8 to make 24.");
    }

    #[test]
    fn step_request_keeps_the_system_prompt_and_lists_steps() {
        let s = session();
        let t = task_of(&s, 2).unwrap();
        let r = step_request(&t, &steps_to(&s, 2), STEP, 0.9, 7);
        assert_eq!(r.messages.len(), 2);
        assert_eq!(r.messages[0].role, Role::System);
        assert!(r.messages[1]
            .content
            .contains("Steps so far:\nStep 1: 4 + 8 = 12\nStep 2: 6 - 4 = 2\n"));
        assert_eq!(r.sampling.temperature, Some(0.9));
        assert_eq!(r.sampling.seed, Some(7));
    }

    #[test]
    fn critique_and_rewrite_quote_task_answer_and_critique() {
        let s = session();
        let t = task_of(&s, 1).unwrap();
        let c = critique_request(&t, "42", CRITIQUE);
        assert!(c.messages[0].content.contains("Previous answer:\n42"));
        assert!(c.messages[0].content.ends_with(CRITIQUE));
        assert_eq!(c.sampling.temperature, Some(0.0));
        let r = rewrite_request(&t, "42", "Wrong number.", REWRITE);
        assert_eq!(r.messages[0].role, Role::System);
        assert!(r.messages[1].content.contains("Critique:\nWrong number."));
    }

    #[test]
    fn proposals_parse_from_messy_output() {
        let text = "Sure! Here are the versions:\n\n**VARIANT 1**\n**Intent:** clearer task\nSYSTEM: (none)\nTEMPLATE:\nState the capital city of {{country}} in one word.\n\n### Variant 2\nINTENT: added role\nSYSTEM: You are a geography teacher.\nTEMPLATE: What is the capital of {{country}}?\n\nVARIANT 3\nINTENT: few-shot\nTEMPLATE:\nWhat is the capital?\n\nVARIANT 4\nINTENT: chain of thought\n";
        let req = vec!["country".to_string()];
        let (ok, rejected) = parse_proposals(text, &req, &req);
        assert_eq!(ok.len(), 2, "{ok:?} {rejected:?}");
        assert_eq!(ok[0].intent, "clearer task");
        assert_eq!(ok[0].system, None);
        assert_eq!(
            ok[0].template,
            "State the capital city of {{country}} in one word."
        );
        assert_eq!(
            ok[1].system.as_deref(),
            Some("You are a geography teacher.")
        );
        assert_eq!(ok[1].template, "What is the capital of {{country}}?");
        assert_eq!(
            rejected,
            [
                "block 3: the template drops {{country}}",
                "block 4: no TEMPLATE"
            ]
        );
        let (ok, rejected) = parse_proposals("I cannot help with that.", &req, &req);
        assert!(ok.is_empty());
        assert_eq!(rejected, ["no VARIANT blocks found"]);
        let (ok, _) = parse_proposals(
            "VARIANT 1\nINTENT: x\nTEMPLATE: {{country}} {{planet}}",
            &req,
            &req,
        );
        assert!(ok.is_empty());
    }
}
