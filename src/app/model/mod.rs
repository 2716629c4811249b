//! The model floor: the app's state, its layers and their states, and the messages and
//! effects. Plain data and read-only questions; imports nothing else in `app`.

pub(crate) mod charts;
pub(crate) mod commands;
pub(crate) mod edit;
pub(crate) mod heat;
pub(crate) mod keys;
pub(crate) mod layout;
pub(crate) mod msg;
pub(crate) mod passages;
pub(crate) mod prompt_model;
pub(crate) mod queries;
pub(crate) mod rating;
pub(crate) mod state;
pub(crate) mod techniques;
pub(crate) mod tools;
