//! Judging answers: expected-answer checks, LLM judge verdicts, value estimates of partial
//! solutions.

pub(crate) mod active;
pub(crate) mod bradley_terry;
pub(crate) mod consistency;
pub(crate) mod expect;
pub(crate) mod figures;
pub(crate) mod history;
pub(crate) mod judge;
pub(crate) mod leaderboard;
pub(crate) mod value;
