//! The pure data of a session and the logic over it. Nothing here does I/O or knows about
//! terminals or async runtimes.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod critique;
pub(crate) mod diff;
pub(crate) mod logprobs;
pub(crate) mod search;
pub(crate) mod session;
pub(crate) mod timing;
pub(crate) mod tool_loop;
pub(crate) mod versions;
