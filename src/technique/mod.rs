//! The techniques (self-critique, branching, tree-of-thought search, judge, pairwise judge,
//! variant proposals) as one core that both front ends drive.
//!
//! The pure machines in [`crate::state::critique`] and [`crate::state::search`] decide what to
//! ask next; a [`Technique`] turns their effects into [`Command`]s (stream this request into a
//! new node, cancel that ticket), annotates the session (scores, beam marks, verdicts, stop
//! reasons) and feeds finished nodes back to its machine. It does no I/O and reads no clock:
//! the TUI maps a [`Command::Spawn`] to an `Effect::StartStream`, the `technique` subcommands
//! to a task on their runner, so both build the same nodes from the same answers.
//!
//! A step that can't be built (its node has no task, its parent is gone) fails only its own
//! ticket, in both front ends.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod interpret;
pub(crate) mod requests;

pub(crate) use interpret::{
    proposed_variants, record_proposals, Conclusion, Ctx, Machine, Technique,
};

use crate::chat::ChatRequest;
use crate::state::session::NodeKind;

/// A request a technique wants streamed into a new node under `parent`. When the node ends,
/// the driver hands it back with [`Technique::finished`] and the same `ticket`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spawn {
    pub ticket: u64,
    pub parent: u64,
    pub kind: NodeKind,
    pub model: String,
    pub request: ChatRequest,
    /// Annotations the new node starts with.
    pub meta: Vec<(&'static str, String)>,
}

/// What a technique asks its driver to do.
// A spawn carries its request (sampling included); commands are few and short-lived, so
// boxing it would only add an allocation per step.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// Boxed: a request (with its offered tools) is large next to a ticket.
    Spawn(Box<Spawn>),
    /// Stop the stream of `ticket`; its node still comes back through
    /// [`Technique::finished`] (as cancelled).
    Cancel { ticket: u64 },
}
