//! The app's messages and effects: what can happen to the app ([`Msg`]: keys, stream events,
//! reports from the driver) and what `update` asks the driver to do ([`Effect`]).

use std::path::PathBuf;
use std::time::Duration;

use super::keys::{Key, Mouse};
use super::rating::{RatingEffect, RatingIo};
use super::tools::{ToolEffect, ToolMsg};
use crate::chat::{BackendStatus, ChatRequest, StreamEvent};
use crate::prompt::retrieve::Indexes;
use crate::prompt::vectors::Vectors;
use crate::prompt::{Case, Variant};

/// Everything that can happen to the app. `at` is the time since the app started, read by
/// the driver, so `update` never reads a clock.
#[derive(Debug, Clone)]
pub(crate) enum Msg {
    Key {
        key: Key,
        at: Duration,
    },
    Mouse {
        mouse: Mouse,
        at: Duration,
    },
    /// The wait asked for by [`Effect::SequenceTimer`] `id` is over: if that key sequence is
    /// still pending, it is cancelled.
    SequenceTimeout {
        id: u64,
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
    Rating(RatingIo),
    /// A tool the driver ran for the tool loop finished.
    Tool(ToolMsg),
    /// What [`Effect::Gather`] read and fetched for `(node, request)`: the retrieval indexes
    /// (a file that could not be read carries its error) and the embedding vectors (a model
    /// that failed carries its error); stale pairs are dropped.
    Gathered {
        node: u64,
        request: u64,
        run: Box<WaitingRun>,
        indexes: Indexes,
        vectors: Vectors,
        at: Duration,
    },
}

/// A pane's run waiting for its retrieval files and embedding vectors: what to render once they are here (as it was
/// when the run started, whatever is edited meanwhile).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WaitingRun {
    pub variant: Variant,
    pub case: Case,
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
    /// Save the session (with the prompt's variants and cases) to `path`. The driver takes
    /// the snapshot when the saver is free, so a burst of saves costs one copy, not one each.
    SaveSession {
        path: PathBuf,
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
    /// A key sequence started: send [`Msg::SequenceTimeout`] `id` after `after`.
    SequenceTimer {
        id: u64,
        after: Duration,
    },
    /// Start loading a model now (shows progress in the header).
    Preload(String),
    /// Ratings, votes, the session browser (journaled synchronously by the driver).
    Rating(RatingEffect),
    /// Run a tool for the tool loop.
    Tool(ToolEffect),
    /// Read and index the retrieval files of a pane's run and fetch the embedding vectors it
    /// ranks by (retrieval or example selection by embedding), off the loop: `update` reads no
    /// file and calls no server. They come back as [`Msg::Gathered`] with `run`.
    Gather {
        node: u64,
        request: u64,
        run: Box<WaitingRun>,
    },
}
