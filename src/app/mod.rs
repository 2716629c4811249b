//! The playground: a full-screen app in which every prompt variant of the selected case has
//! its own pane and all of them stream at once.
//!
//! The shape is The Elm Architecture: [`state::AppState`] is the one state tree,
//! [`update::update`] turns a [`Msg`] into state changes plus [`Effect`]s without doing any
//! I/O, and [`driver`] runs the effects (streams, saves, clipboard, `$EDITOR`) and feeds their
//! results back as messages. Keys become [`Action`]s through the keymap; internal messages
//! can't be bound.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod driver;
pub(crate) mod edit;
pub(crate) mod rating;
pub(crate) mod rating_io;
pub(crate) mod state;
pub(crate) mod suspend;
pub(crate) mod techniques;
pub(crate) mod update;
pub(crate) mod write_back;

use std::path::PathBuf;
use std::time::Duration;

use crossterm::event::{KeyEvent, MouseEvent};

use crate::chat::{BackendStatus, ChatRequest, StreamEvent};
pub(crate) use crate::config::keymap::Action;
use crate::state::session::Session;

pub(crate) use driver::run;

/// Everything that can happen to the app. `at` is the time since the app started, read by
/// the driver, so `update` never reads a clock.
#[derive(Debug, Clone)]
pub(crate) enum Msg {
    Key {
        key: KeyEvent,
        at: Duration,
    },
    Mouse {
        mouse: MouseEvent,
        at: Duration,
    },
    Resize {
        width: u16,
        height: u16,
    },
    /// Redraw timer for spinners and elapsed times while something is running.
    Tick {
        at: Duration,
    },
    /// The driver began the request (its backend was found and started).
    StreamStarted {
        node: u64,
        request: u64,
    },
    /// An event of the stream for `(node, request)`; stale pairs are dropped.
    Stream {
        node: u64,
        request: u64,
        event: StreamEvent,
        at: Duration,
    },
    /// A session save finished.
    Saved {
        path: PathBuf,
        error: Option<String>,
    },
    /// The prompt file was written (or not).
    PromptWritten {
        path: PathBuf,
        error: Option<String>,
    },
    /// Load state of the configured models changed.
    ModelStatus(Vec<(String, BackendStatus)>),
    /// `$EDITOR` returned with the variant text (or failed to run).
    ExternalEditDone {
        variant: usize,
        result: Result<String, String>,
    },
    /// What the driver did about a rating, vote, session list or session switch.
    Rating(rating::RatingIo),
}

/// What `update` asks the driver to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    StartStream {
        node: u64,
        request: u64,
        model: String,
        chat: ChatRequest,
    },
    CancelStream {
        node: u64,
    },
    SaveSession {
        path: PathBuf,
        session: Box<Session>,
    },
    /// Copy text to the system clipboard with OSC 52.
    Copy(String),
    /// Hand the terminal to `$EDITOR` on this text; the result comes back as
    /// [`Msg::ExternalEditDone`].
    OpenEditor {
        variant: usize,
        text: String,
    },
    WritePromptFile {
        path: PathBuf,
        text: String,
    },
    /// Start loading a model now (shows progress in the header).
    Preload(String),
    /// Ratings, votes, the session browser (journaled synchronously by the driver).
    Rating(rating::RatingEffect),
}
