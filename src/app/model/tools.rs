//! The tool loop's state in the playground (what `app::update::tools` works on) and what it
//! asks of the driver ([`ToolEffect`]) and hears back ([`ToolMsg`]). Plain data, on the model
//! floor so `AppState` and the messages can hold it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::chat::{ChatRequest, ToolCall};
use crate::state::tool_loop::{External, Permission};

/// The playground's tool-loop state.
#[derive(Debug, Clone, Default)]
pub(crate) struct ToolTurns {
    /// Calls streamed so far, per node (they arrive before the node's `Finished`).
    pub pending: BTreeMap<u64, Vec<ToolCall>>,
    /// Whether each external tool may run, by tool name (set by the driver from the config
    /// and `--allow-tools`; a tool missing here is denied).
    pub permissions: BTreeMap<String, Permission>,
    /// Rounds being answered, by the answer node whose calls they are.
    pub rounds: BTreeMap<u64, Round>,
    /// The call waiting for approve/deny: its round (answer node).
    pub confirming: Option<u64>,
    /// The selected call block per pane (its result node), for stepping and editing.
    pub selected: BTreeMap<usize, u64>,
}

impl ToolTurns {
    /// The result node of the call block selected in pane `i`.
    pub fn selected(&self, i: usize) -> Option<u64> {
        self.selected.get(&i).copied()
    }
}

/// One turn's calls being answered in order.
#[derive(Debug, Clone)]
pub(crate) struct Round {
    pub pane: usize,
    pub request: ChatRequest,
    pub text: String,
    pub calls: Vec<ToolCall>,
    /// The call being answered now.
    pub next: usize,
    /// The node the next call hangs under (the answer, then each result).
    pub parent: u64,
    /// The call node of the call being answered.
    pub call_node: u64,
    pub results: Vec<(ToolCall, String)>,
    /// When the running external call started (app clock).
    pub started: Duration,
    /// What the waiting call would run once approved.
    pub waiting: Option<External>,
}

/// What the driver runs for the tool loop.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ToolEffect {
    /// Run an external tool for call `index` of the round of answer node `answer`.
    Run {
        answer: u64,
        index: usize,
        external: External,
    },
    /// Stop the external tools still running for these answers' rounds (the pane was
    /// cancelled, rerun or quit): a command is killed, an MCP call dropped.
    Cancel { answers: Vec<u64> },
}

/// What the driver reports back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ToolMsg {
    Done {
        answer: u64,
        index: usize,
        result: Result<String, String>,
        at: Duration,
    },
}
