//! Variant versions: every change to a variant (an in-app or `$EDITOR` edit, a model switch,
//! a generated proposal, a rename) gives it a new version, a content hash plus a short label
//! saying what changed, kept in the session with the variant as it was. Each answer records
//! the version it was made with (node meta [`VERSION_META`], `v2 3fa1c29b0e41`), so results
//! can be grouped by version and a variant's history read back.
//!
//! The hash covers everything that decides what is sent (template, role, examples, context,
//! retrieval and selection, sampling, model), not the name or description, so a rename keeps
//! the hash; versions are numbered per variant name from 1.

use sha2::{Digest, Sha256};

use crate::prompt::Variant;
use crate::state::session::{Node, Session};

pub(crate) use super::session::{VariantVersion, VERSION_META};

/// The content hash of a variant (name and description left out).
pub(crate) fn content_hash(v: &Variant) -> String {
    let mut c = v.clone();
    c.name.clear();
    c.description = None;
    let json = serde_json::to_string(&c).unwrap_or_default();
    let digest = Sha256::digest(json.as_bytes());
    hex::encode(&digest[..6])
}

/// The latest version recorded for the variant named `name`.
pub(crate) fn latest<'a>(s: &'a Session, name: &str) -> Option<&'a VariantVersion> {
    s.versions.iter().rev().find(|v| v.variant == name)
}

/// Every version of `name`, oldest first.
pub(crate) fn of_variant<'a>(s: &'a Session, name: &str) -> Vec<&'a VariantVersion> {
    s.versions.iter().filter(|v| v.variant == name).collect()
}

/// Record `v` as its variant's current version, unless the latest one already has its
/// content; returns the version's tag either way.
pub(crate) fn record(s: &mut Session, v: &Variant, at: &str) -> String {
    let hash = content_hash(v);
    if let Some(p) = s
        .versions
        .iter_mut()
        .rev()
        .find(|p| p.variant == v.name)
        .filter(|p| p.hash == hash)
    {
        // Same content (a description may differ): keep the description current.
        p.content = v.clone();
        return p.tag();
    }
    let prev = latest(s, &v.name);
    let label = match prev {
        Some(p) => changes(&p.content, v),
        None => match &v.generated {
            Some(why) => format!("proposed: {}", crate::sanitize::one_line(why, 40)),
            None => "first seen".into(),
        },
    };
    let version = VariantVersion {
        variant: v.name.clone(),
        number: prev.map_or(1, |p| p.number + 1),
        hash,
        label,
        at: at.to_string(),
        content: v.clone(),
    };
    let tag = version.tag();
    s.versions.push(version);
    tag
}

/// Mark `node` as made with `tag`.
pub(crate) fn tag_node(node: &mut Node, tag: String) {
    node.meta.insert(VERSION_META.into(), tag);
}

/// The version number an answer records (`v2 …` → 2).
pub(crate) fn number_of(n: &Node) -> Option<u32> {
    n.meta
        .get(VERSION_META)?
        .split_whitespace()
        .next()?
        .strip_prefix('v')?
        .parse()
        .ok()
}

/// What changed between two versions, in a few words.
fn changes(old: &Variant, new: &Variant) -> String {
    let mut parts: Vec<String> = Vec::new();
    if old.model != new.model {
        parts.push(format!("model → {}", new.model));
    }
    if old.system != new.system {
        parts.push("role".into());
    }
    if old.template != new.template {
        parts.push("template".into());
    }
    if old.examples != new.examples || old.select != new.select {
        parts.push("examples".into());
    }
    if old.context != new.context
        || old.context_instruction != new.context_instruction
        || old.retrieve != new.retrieve
    {
        parts.push("context".into());
    }
    if old.step_by_step != new.step_by_step {
        parts.push(if new.step_by_step {
            "step by step on".into()
        } else {
            "step by step off".into()
        });
    }
    if old.sampling != new.sampling {
        parts.push("sampling".into());
    }
    if new.generated.is_some() && old.generated != new.generated {
        parts.insert(0, "proposed".into());
    }
    if parts.is_empty() {
        "edited".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::render::tests_support::variant;

    #[test]
    fn a_variant_edited_twice_has_three_versions_and_no_change_adds_none() {
        let mut s = Session::new("t", "x".into(), None);
        let mut v = variant();
        assert_eq!(record(&mut s, &v, "t0"), format!("v1 {}", content_hash(&v)));
        assert_eq!(record(&mut s, &v, "t0b").split(' ').next(), Some("v1"));
        v.template = "Another word for {{word}}?".into();
        record(&mut s, &v, "t1");
        v.system = Some("You are a thesaurus.".into());
        v.model = "other".into();
        let tag = record(&mut s, &v, "t2");
        assert!(tag.starts_with("v3 "), "{tag}");
        let all = of_variant(&s, "v");
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].label, "first seen");
        assert_eq!(all[1].label, "template");
        assert_eq!(all[2].label, "model → other, role");
        assert_eq!(all[2].content, v);
        // A rename keeps the content hash (the version list is per name).
        let mut r = v.clone();
        r.name = "renamed".into();
        assert_eq!(content_hash(&r), content_hash(&v));
    }

    #[test]
    fn answers_read_back_their_version_number() {
        let mut n = Node::start(
            1,
            None,
            crate::state::session::NodeKind::Answer,
            "v",
            "c",
            "m",
            crate::chat::ChatRequest {
                messages: vec![],
                sampling: Default::default(),
            },
            "t".into(),
        );
        assert_eq!(number_of(&n), None);
        tag_node(&mut n, "v12 abcdef012345".into());
        assert_eq!(number_of(&n), Some(12));
    }
}
