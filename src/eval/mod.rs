//! Judging answers: expected-answer checks now; judges and rankings build on this.

pub(crate) mod expect;
