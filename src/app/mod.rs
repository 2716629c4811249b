//! The playground: a full-screen app in which every prompt variant of the selected case has
//! its own pane and all of them stream at once.
//!
//! The shape is The Elm Architecture, in three floors, each importing only the ones below:
//! - [`model`]: the one state tree ([`model::state::AppState`]), its layers and their states,
//!   and the messages and effects; it imports nothing else in `app`;
//! - [`update`]: [`update::update`] turns a [`Msg`] into state changes plus [`Effect`]s
//!   without doing any I/O; it imports only the model;
//! - [`driver`]: the event loop, runs the effects (streams, saves, the rating journal,
//!   clipboard, `$EDITOR`) and feeds their results back as messages.
//!
//! Keys become [`Action`]s through the keymap; internal messages can't be bound.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod driver;
pub(crate) mod model;
pub(crate) mod update;

pub(crate) use crate::config::keymap::Action;
pub(crate) use driver::run;
pub(crate) use model::msg::{Effect, Msg};
