//! Judging answers: expected-answer checks now; judges and rankings build on this.

pub(crate) mod active;
pub(crate) mod bradley_terry;
pub(crate) mod expect;
pub(crate) mod leaderboard;
