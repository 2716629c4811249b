//! Key bindings: which key triggers which [`Action`] in which mode.
//!
//! The defaults are embedded (`keymap.toml`); a user's keymap file is merged over them per
//! mode. A bad key name or an unknown action is an [`InputError`] naming file, line and
//! column, reported before the screen opens. Every action carries its own help text, so the
//! footer and the `?` overlay are generated from the same table the key handler uses and can
//! never drift from behaviour.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

pub(crate) use crate::app::model::keys::{Key, KeyCode, KeySeq, Mods};

use crate::error::InputError;

const DEFAULT_KEYMAP: &str = include_str!("keymap.toml");

/// The modes a keymap has bindings for; each layer of the screen is in one mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Mode {
    Normal,
    Help,
    Picker,
    Editor,
    Input,
    Confirm,
    Compare,
    Leaderboard,
    Browser,
    Tree,
    Diff,
    SearchParams,
    Heat,
    History,
    Charts,
    PromptDiff,
    Passages,
}

impl Mode {
    pub const ALL: [Mode; 17] = [
        Mode::Normal,
        Mode::Help,
        Mode::Picker,
        Mode::Editor,
        Mode::Input,
        Mode::Confirm,
        Mode::Compare,
        Mode::Leaderboard,
        Mode::Browser,
        Mode::Tree,
        Mode::Diff,
        Mode::SearchParams,
        Mode::Heat,
        Mode::History,
        Mode::Charts,
        Mode::PromptDiff,
        Mode::Passages,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Help => "help",
            Mode::Picker => "picker",
            Mode::Editor => "editor",
            Mode::Input => "input",
            Mode::Confirm => "confirm",
            Mode::Compare => "compare",
            Mode::Leaderboard => "leaderboard",
            Mode::Browser => "browser",
            Mode::Tree => "tree",
            Mode::Diff => "diff",
            Mode::SearchParams => "search_params",
            Mode::Heat => "heat",
            Mode::History => "history",
            Mode::Charts => "charts",
            Mode::PromptDiff => "prompt_diff",
            Mode::Passages => "passages",
        }
    }

    fn from_name(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == s)
    }
}

macro_rules! actions {
    ($($variant:ident = $name:literal, $short:literal, $help:literal;)*) => {
        /// Everything a key can trigger. Internal messages (stream chunks, save results,
        /// ticks) are `Msg`, not actions, so they cannot be bound.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub(crate) enum Action { $($variant,)* }

        impl Action {
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            /// The snake_case name used in keymap files.
            pub fn name(self) -> &'static str {
                match self { $(Action::$variant => $name,)* }
            }

            /// A word or two for the footer.
            pub fn short(self) -> &'static str {
                match self { $(Action::$variant => $short,)* }
            }

            /// A sentence for the help overlay.
            pub fn help(self) -> &'static str {
                match self { $(Action::$variant => $help,)* }
            }

            pub fn from_name(s: &str) -> Option<Action> {
                match s { $($name => Some(Action::$variant),)* _ => None }
            }
        }
    };
}

actions! {
    RunAll = "run_all", "run", "Run every variant on the selected case";
    RerunFocused = "rerun_focused", "rerun", "Run the focused variant again";
    CancelFocused = "cancel_focused", "cancel", "Cancel the focused stream";
    CancelAll = "cancel_all", "cancel all", "Cancel every running stream";
    Interrupt = "interrupt", "interrupt", "Cancel all streams; press again to quit";
    Quit = "quit", "quit", "Save the session and quit";
    FocusLeft = "focus_left", "left", "Focus the pane to the left";
    FocusRight = "focus_right", "right", "Focus the pane to the right";
    FocusNext = "focus_next", "next", "Focus the next pane";
    FocusPrev = "focus_prev", "prev", "Focus the previous pane";
    ScrollDown = "scroll_down", "scroll", "Scroll the focused answer down a line";
    ScrollUp = "scroll_up", "scroll up", "Scroll the focused answer up a line";
    PageDown = "page_down", "page down", "Scroll the focused answer down a page";
    PageUp = "page_up", "page up", "Scroll the focused answer up a page";
    ScrollTop = "scroll_top", "top", "Jump to the top of the focused answer";
    ScrollBottom = "scroll_bottom", "follow", "Jump to the end and follow the stream";
    Zoom = "zoom", "zoom", "Zoom the focused pane to full screen and back";
    PrevCase = "prev_case", "prev case", "Select the previous case";
    NextCase = "next_case", "next case", "Select the next case";
    PickCase = "pick_case", "cases", "Pick a case from a list";
    FreeInput = "free_input", "input", "Type a free-form input for the main variable";
    EditVariant = "edit_variant", "edit", "Edit the focused variant in the in-app editor";
    ExternalEditor = "external_editor", "$EDITOR", "Edit the focused variant in $EDITOR";
    AddVariant = "add_variant", "add", "Add a new variant";
    DuplicateVariant = "duplicate_variant", "dup", "Duplicate the focused variant";
    RenameVariant = "rename_variant", "rename", "Rename the focused variant";
    DeleteVariant = "delete_variant", "delete", "Delete the focused variant";
    WritePromptFile = "write_prompt_file", "write", "Write the variants back to the prompt file";
    PickModel = "pick_model", "model", "Switch the focused variant's model";
    CopyAnswer = "copy_answer", "copy", "Copy the focused answer to the clipboard (OSC 52)";
    ApproveTool = "approve_tool", "approve", "Run the tool call waiting for approval";
    DenyTool = "deny_tool", "deny", "Refuse the tool call waiting for approval";
    NextToolCall = "next_tool_call", "next call", "Select the next tool call in the focused pane";
    PrevToolCall = "prev_tool_call", "prev call", "Select the previous tool call in the focused pane";
    EditToolResult = "edit_tool_result", "edit result", "Edit the selected call's result, re-run as a sibling";
    Help = "help", "help", "Show every key binding";
    TogglePrompt = "toggle_prompt", "prompt", "Show the focused pane's full chat as sent, or fold it";
    VersionHistory = "version_history", "history", "The focused variant's versions with their results";
    PromptDiff = "prompt_diff", "prompt diff", "Word diff of the focused prompt against another pane's (again: the next)";
    Passages = "passages", "context", "The focused pane's context passages (file, lines, score, text) and selected examples";
    Stars1 = "stars_1", "1-5 stars", "Rate the focused answer 1 star";
    Stars2 = "stars_2", "2 stars", "Rate the focused answer 2 stars";
    Stars3 = "stars_3", "3 stars", "Rate the focused answer 3 stars";
    Stars4 = "stars_4", "4 stars", "Rate the focused answer 4 stars";
    Stars5 = "stars_5", "5 stars", "Rate the focused answer 5 stars";
    ClearStars = "clear_stars", "clear stars", "Clear your stars on the focused answer";
    ThumbUp = "thumb_up", "+/- thumb", "Thumb up the focused answer (again: clear it)";
    ThumbDown = "thumb_down", "thumb down", "Thumb down the focused answer (again: clear it)";
    EditNote = "edit_note", "note", "Write a note on the focused answer (Ctrl-S saves)";
    Compare = "compare", "compare", "Blind A/B: compare two answers with names hidden";
    Leaderboard = "leaderboard", "board", "Leaderboard: variants ranked with 95% intervals";
    SessionBrowser = "session_browser", "sessions", "Open another session from a list";
    VoteLeft = "vote_left", "left better", "Vote: the left answer is better";
    VoteRight = "vote_right", "right better", "Vote: the right answer is better";
    VoteTie = "vote_tie", "tie", "Vote: both are equally good";
    VoteBothBad = "vote_both_bad", "both bad", "Vote: both are bad (not a tie)";
    NextPair = "next_pair", "skip", "Skip to the next most informative pair";
    ToggleGroup = "toggle_group", "variants/versions/models", "Rank variants, variant versions or models";
    CompareSuggested = "compare_suggested", "compare next", "Compare the suggested pair";
    Charts = "charts", "charts", "The leaderboard as charts: strengths with intervals, stars, speed";
    ExportBoard = "export_board", "export", "Write the leaderboard as Markdown beside the session";
    // Technique keys; in the tree view the footer lists them in this order.
    Prune = "prune", "prune", "Prune or unprune (a running search drops it)";
    Promote = "promote", "promote", "Make the node the pane's answer (saved)";
    Bookmark = "bookmark", "bookmark", "Bookmark the node (saved in the session)";
    OpenNode = "open_node", "open", "Show the node in full beside the tree";
    ToggleCollapse = "toggle_collapse", "fold", "Collapse or expand the node's children";
    Parent = "parent", "parent", "Go to the parent node";
    Child = "child", "child", "Go to the first child (expands)";
    PrevSibling = "prev_sibling", "prev sibling", "Go to the previous sibling";
    NextSibling = "next_sibling", "next sibling", "Go to the next sibling";
    CancelTechniques = "cancel_techniques", "stop", "Cancel every running technique";
    Critique = "critique", "critique", "Critique the answer, then rewrite it (one round)";
    CritiqueLoop = "critique_loop", "refine", "Critique and rewrite until nothing is left to fix";
    PrevRevision = "prev_revision", "older rev", "Show the previous revision of the answer";
    NextRevision = "next_revision", "newer rev", "Show the next revision of the answer";
    Diff = "diff", "diff", "Word diff against the revision it rewrote";
    Branch = "branch", "branch", "Sample k alternative answers (tree of thought)";
    Samples = "samples", "samples", "Self-consistency: N seeded samples of the answer, clustered with agreement and pass rate";
    BranchSteps = "branch_steps", "branch steps", "Sample k alternative next reasoning steps";
    Tree = "tree", "tree", "Show the answer tree of this case";
    Search = "search", "search", "Tree-of-thought search from the answer (k, b, d)";
    Propose = "propose", "propose", "Have a model write variants of this prompt";
    Judge = "judge", "judge", "LLM judge: score the answer 1-10 with a reason";
    JudgeAll = "judge_all", "judge all", "LLM judge: score every answer of the case";
    JudgePair = "judge_pair", "pairwise", "LLM judge: this pane vs the next, both orders";
    Heat = "heat", "heat", "Heat view: the answer's token probabilities; branch from a token";
    TokenNext = "token_next", "next token", "Move the token cursor to the next token";
    TokenPrev = "token_prev", "prev token", "Move the token cursor to the previous token";
    TokenNextLow = "token_next_low", "next unsure", "Jump to the next token below 50% probability";
    Increase = "increase", "more", "Increase the selected number";
    Decrease = "decrease", "less", "Decrease the selected number";
    Close = "close", "close", "Close this layer";
    Accept = "accept", "accept", "Accept";
    Up = "up", "up", "Move up";
    Down = "down", "down", "Move down";
}

/// Key names keymap files may use besides single characters and `f1`..`f24`.
const NAMED: &[(&str, KeyCode)] = &[
    ("enter", KeyCode::Enter),
    ("esc", KeyCode::Esc),
    ("tab", KeyCode::Tab),
    ("backtab", KeyCode::BackTab),
    ("up", KeyCode::Up),
    ("down", KeyCode::Down),
    ("left", KeyCode::Left),
    ("right", KeyCode::Right),
    ("pageup", KeyCode::PageUp),
    ("pagedown", KeyCode::PageDown),
    ("home", KeyCode::Home),
    ("end", KeyCode::End),
    ("backspace", KeyCode::Backspace),
    ("delete", KeyCode::Delete),
    ("insert", KeyCode::Insert),
    ("space", KeyCode::Char(' ')),
];

/// Parse one key as written in keymap files (`ctrl-alt-x`, `G`, `pageup`, `f5`,
/// `shift-tab`), in the form [`Key::binding`] gives a pressed key.
pub(crate) fn parse_key(s: &str) -> Result<Key, String> {
    let mut mods = Mods::NONE;
    let mut shift = false;
    let mut rest = s;
    loop {
        let lower = rest.to_ascii_lowercase();
        if rest.chars().count() > 1 && lower.starts_with("ctrl-") {
            mods = mods | Mods::CTRL;
            rest = &rest[5..];
        } else if rest.chars().count() > 1 && lower.starts_with("alt-") {
            mods = mods | Mods::ALT;
            rest = &rest[4..];
        } else if rest.chars().count() > 1 && lower.starts_with("shift-") {
            shift = true;
            rest = &rest[6..];
        } else {
            break;
        }
    }
    let mut chars = rest.chars();
    let code = match (chars.next(), chars.next()) {
        (Some(c), None) => {
            let c = if shift { c.to_ascii_uppercase() } else { c };
            let c = if mods.contains(Mods::CTRL) {
                c.to_ascii_lowercase()
            } else {
                c
            };
            KeyCode::Char(c)
        }
        (None, _) => return Err("empty key".into()),
        _ => {
            let lower = rest.to_ascii_lowercase();
            if shift && lower == "tab" {
                KeyCode::BackTab
            } else if let Some((_, code)) = NAMED.iter().find(|(n, _)| *n == lower) {
                *code
            } else if let Some(n) = lower
                .strip_prefix('f')
                .and_then(|d| d.parse::<u8>().ok())
                .filter(|n| (1..=24).contains(n))
            {
                KeyCode::F(n)
            } else {
                return Err(format!(
                    "unknown key {s:?}; use a single character, f1..f24, or one of {}",
                    NAMED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ));
            }
        }
    };
    Ok(Key::new(code, mods))
}

/// Parse a binding: one key, or a sequence of keys separated by spaces (`g g`, `space c`).
pub(crate) fn parse_seq(s: &str) -> Result<KeySeq, String> {
    // A lone " " is the space key, as it always was.
    if !s.is_empty() && s.trim().is_empty() {
        return Ok(KeySeq(vec![Key::plain(KeyCode::Char(' '))]));
    }
    let keys = s
        .split_whitespace()
        .map(parse_key)
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err("empty key".into());
    }
    Ok(KeySeq(keys))
}

/// What a key means in a mode, after the keys of a pending sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved {
    Action(Action),
    /// The keys so far start a longer sequence: wait for the next key.
    Pending,
    /// Nothing is bound to these keys.
    Unbound,
}

/// How long a started sequence waits for its next key unless configured.
pub(crate) const DEFAULT_SEQUENCE_TIMEOUT_MS: u64 = 1000;

/// Bindings per mode, and how long a started key sequence waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keymap {
    modes: BTreeMap<Mode, BTreeMap<KeySeq, Action>>,
    /// 0: a started sequence waits for ever (Esc cancels it).
    sequence_timeout_ms: u64,
}

type RawKeymap = BTreeMap<Spanned<String>, BTreeMap<Spanned<String>, Spanned<String>>>;

impl Keymap {
    /// The embedded defaults.
    pub fn defaults() -> Keymap {
        let mut k = Keymap {
            modes: BTreeMap::new(),
            sequence_timeout_ms: DEFAULT_SEQUENCE_TIMEOUT_MS,
        };
        if let Err(e) = k.merge_text(Path::new("<built-in keymap>"), DEFAULT_KEYMAP) {
            // The embedded file is tested to parse; reaching this is a build defect.
            panic!("embedded default keymap is invalid: {e}");
        }
        k
    }

    /// Defaults with the user's file merged over them.
    pub fn load(path: &Path) -> Result<Keymap, InputError> {
        let text = std::fs::read_to_string(path).map_err(|e| InputError::io(path, &e))?;
        let mut k = Keymap::defaults();
        k.merge_text(path, &text)?;
        Ok(k)
    }

    /// The configured `sequence_timeout_ms` (0: no timeout).
    pub fn set_sequence_timeout_ms(&mut self, ms: u64) {
        self.sequence_timeout_ms = ms;
    }

    /// How long a started sequence waits for its next key; `None`: until a key comes.
    pub fn sequence_timeout(&self) -> Option<Duration> {
        (self.sequence_timeout_ms > 0).then_some(Duration::from_millis(self.sequence_timeout_ms))
    }

    /// Merge keymap TOML over these bindings. `"none"` unbinds a key (and a sequence prefix
    /// with everything under it). A key this file binds replaces sequences it starts that
    /// came from before (the defaults); a sequence whose start is bound to an action is an
    /// error at the sequence, since that key could never wait for the rest.
    pub fn merge_text(&mut self, path: &Path, text: &str) -> Result<(), InputError> {
        let raw: RawKeymap = toml::from_str(text).map_err(|e| InputError::toml(path, text, &e))?;
        for (mode_name, bindings) in raw {
            let mode = Mode::from_name(mode_name.get_ref()).ok_or_else(|| {
                InputError::at(
                    path,
                    text,
                    mode_name.span().start,
                    format!(
                        "unknown mode [{}]; modes: {}",
                        mode_name.get_ref(),
                        Mode::ALL.map(Mode::name).join(", ")
                    ),
                )
            })?;
            let table = self.modes.entry(mode).or_default();
            // This file's bindings in this mode, with where each is written.
            let mut mine: BTreeMap<KeySeq, usize> = BTreeMap::new();
            for (key, action) in bindings {
                let seq = parse_seq(key.get_ref())
                    .map_err(|m| InputError::at(path, text, key.span().start, m))?;
                if action.get_ref() == "none" {
                    table.retain(|k, _| k != &seq && !k.extends(seq.keys()));
                    continue;
                }
                let a = Action::from_name(action.get_ref()).ok_or_else(|| {
                    InputError::at(
                        path,
                        text,
                        action.span().start,
                        format!("unknown action {:?}", action.get_ref()),
                    )
                    .with_hint(format!(
                        "actions: {}",
                        Action::ALL
                            .iter()
                            .map(|a| a.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
                table.insert(seq.clone(), a);
                mine.insert(seq, key.span().start);
            }
            // Older sequences under a key this file binds give way to it.
            table.retain(|k, _| mine.contains_key(k) || !mine.keys().any(|m| k.extends(m.keys())));
            for (seq, at) in &mine {
                for n in 1..seq.len() {
                    let prefix = KeySeq(seq.keys()[..n].to_vec());
                    let Some(bound) = table.get(&prefix) else {
                        continue;
                    };
                    let by = match mine.get(&prefix) {
                        Some(p) => format!("line {}", crate::error::line_col(text, *p).0),
                        None => "an earlier keymap (the built-in defaults)".to_string(),
                    };
                    return Err(InputError::at(
                        path,
                        text,
                        *at,
                        format!(
                            "\"{seq}\" can't be bound in [{}]: \"{prefix}\" is bound to {} ({by}), \
                             so it can't start a sequence",
                            mode.name(),
                            bound.name()
                        ),
                    )
                    .with_hint(format!(
                        "bind \"{prefix}\" = \"none\" to free it, or pick another first key"
                    )));
                }
            }
        }
        Ok(())
    }

    /// What `key` means in `mode` after the `pending` keys of a started sequence.
    pub fn resolve(&self, mode: Mode, pending: &[Key], key: Key) -> Resolved {
        let Some(table) = self.modes.get(&mode) else {
            return Resolved::Unbound;
        };
        let mut keys = pending.to_vec();
        keys.push(key.binding());
        let seq = KeySeq(keys);
        if let Some(a) = table.get(&seq) {
            return Resolved::Action(*a);
        }
        // Sequences that extend `seq` sort right after it.
        match table.range(seq.clone()..).next() {
            Some((k, _)) if k.extends(seq.keys()) => Resolved::Pending,
            _ => Resolved::Unbound,
        }
    }

    /// The action a single key triggers in `mode` (no sequence pending).
    #[cfg(test)]
    pub fn action(&self, mode: Mode, key: Key) -> Option<Action> {
        match self.resolve(mode, &[], key) {
            Resolved::Action(a) => Some(a),
            Resolved::Pending | Resolved::Unbound => None,
        }
    }

    /// What can follow the started sequence `prefix` in `mode`: the rest of each sequence
    /// and its action, in key order.
    pub fn continuations(&self, mode: Mode, prefix: &[Key]) -> Vec<(KeySeq, Action)> {
        let Some(table) = self.modes.get(&mode) else {
            return Vec::new();
        };
        table
            .range(KeySeq(prefix.to_vec())..)
            .skip_while(|(k, _)| k.keys() == prefix)
            .take_while(|(k, _)| k.extends(prefix))
            .map(|(k, a)| (KeySeq(k.keys()[prefix.len()..].to_vec()), *a))
            .collect()
    }

    /// Every binding of `mode`, grouped by action in the order actions are declared; an
    /// action's single keys come before its sequences.
    pub fn bindings(&self, mode: Mode) -> Vec<(Action, Vec<KeySeq>)> {
        let mut by_action: BTreeMap<Action, Vec<KeySeq>> = BTreeMap::new();
        if let Some(t) = self.modes.get(&mode) {
            for (k, a) in t {
                by_action.entry(*a).or_default().push(k.clone());
            }
        }
        for keys in by_action.values_mut() {
            keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
        }
        by_action.into_iter().collect()
    }

    /// The shortest binding of `action` in `mode`, for hints.
    pub fn key_for(&self, mode: Mode, action: Action) -> Option<KeySeq> {
        self.modes
            .get(&mode)?
            .iter()
            .filter(|(_, a)| **a == action)
            .map(|(k, _)| k)
            .min_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: KeyCode, mods: Mods) -> Key {
        Key::new(code, mods)
    }

    #[test]
    fn defaults_parse_and_bind_the_documented_keys() {
        let k = Keymap::defaults();
        let n = Mode::Normal;
        assert_eq!(
            k.action(n, ev(KeyCode::Enter, Mods::NONE)),
            Some(Action::RunAll)
        );
        assert_eq!(
            k.action(n, ev(KeyCode::Char('R'), Mods::SHIFT)),
            Some(Action::RerunFocused)
        );
        assert_eq!(
            k.action(n, ev(KeyCode::Char('c'), Mods::CTRL)),
            Some(Action::Interrupt)
        );
        assert_eq!(
            k.action(n, ev(KeyCode::Char('?'), Mods::SHIFT)),
            Some(Action::Help)
        );
        assert_eq!(
            k.action(n, ev(KeyCode::PageDown, Mods::NONE)),
            Some(Action::PageDown)
        );
        assert_eq!(
            k.action(Mode::Editor, ev(KeyCode::Char('s'), Mods::CTRL)),
            Some(Action::Accept)
        );
        assert_eq!(k.sequence_timeout(), Some(Duration::from_millis(1000)));
    }

    #[test]
    fn user_bindings_merge_over_defaults_and_none_unbinds() {
        let mut k = Keymap::defaults();
        k.merge_text(
            Path::new("k.toml"),
            "[normal]\n\"ctrl-r\" = \"rerun_focused\"\n\"q\" = \"none\"\n",
        )
        .unwrap();
        let n = Mode::Normal;
        assert_eq!(
            k.action(n, ev(KeyCode::Char('r'), Mods::CTRL)),
            Some(Action::RerunFocused)
        );
        assert_eq!(k.action(n, ev(KeyCode::Char('q'), Mods::NONE)), None);
        assert_eq!(
            k.action(n, ev(KeyCode::Char('r'), Mods::NONE)),
            Some(Action::RunAll)
        );
    }

    #[test]
    fn bad_bindings_name_file_line_and_column() {
        let mut k = Keymap::defaults();
        let err = k
            .merge_text(Path::new("k.toml"), "[normal]\nx = \"run_al\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("k.toml:2:5: unknown action \"run_al\""),
            "{err}"
        );
        let err = k
            .merge_text(Path::new("k.toml"), "[normal]\n\"ctrl-pgup\" = \"zoom\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("k.toml:2:1: unknown key"), "{err}");
        let err = k
            .merge_text(Path::new("k.toml"), "[nromal]\nx = \"zoom\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("k.toml:1:2: unknown mode [nromal]"),
            "{err}"
        );
    }

    #[test]
    fn keys_print_compactly() {
        assert_eq!(parse_key("ctrl-c").unwrap().to_string(), "C-c");
        assert_eq!(parse_key("pagedown").unwrap().to_string(), "PgDn");
        assert_eq!(parse_key("shift-tab").unwrap().to_string(), "S-Tab");
        assert_eq!(parse_key("G").unwrap().to_string(), "G");
        assert_eq!(parse_seq("space  c").unwrap().to_string(), "space c");
        assert_eq!(parse_seq(" ").unwrap().to_string(), "space");
    }

    #[test]
    fn a_sequence_is_pending_until_its_last_key() {
        let k = Keymap::defaults();
        let n = Mode::Normal;
        let space = Key::char(' ');
        assert_eq!(k.resolve(n, &[], space), Resolved::Pending);
        assert_eq!(
            k.resolve(n, &[space], Key::char('c')),
            Resolved::Action(Action::Critique)
        );
        assert_eq!(k.resolve(n, &[space], Key::char('%')), Resolved::Unbound);
        let next = k.continuations(n, &[space]);
        assert!(
            next.iter()
                .any(|(rest, a)| rest.to_string() == "c" && *a == Action::Critique),
            "{next:?}"
        );
        assert!(next.iter().all(|(rest, _)| rest.len() == 1), "{next:?}");
        // A single key is still a single key.
        assert_eq!(
            k.resolve(n, &[], Key::char('c')),
            Resolved::Action(Action::Critique)
        );
    }

    #[test]
    fn user_files_bind_sequences_and_their_own_keys_shadow_default_groups() {
        let mut k = Keymap::defaults();
        k.merge_text(
            Path::new("k.toml"),
            "[normal]\n\"g\" = \"none\"\n\"g g\" = \"scroll_top\"\n\"g e\" = \"scroll_bottom\"\n",
        )
        .unwrap();
        let n = Mode::Normal;
        let g = Key::char('g');
        assert_eq!(k.resolve(n, &[], g), Resolved::Pending);
        assert_eq!(k.resolve(n, &[g], g), Resolved::Action(Action::ScrollTop));
        assert_eq!(
            k.resolve(n, &[g], Key::char('e')),
            Resolved::Action(Action::ScrollBottom)
        );
        // Binding the leader itself replaces the built-in group under it.
        k.merge_text(Path::new("k2.toml"), "[normal]\n\"space\" = \"zoom\"\n")
            .unwrap();
        assert_eq!(
            k.resolve(n, &[], Key::char(' ')),
            Resolved::Action(Action::Zoom)
        );
        assert!(k.continuations(n, &[Key::char(' ')]).is_empty());
        // `none` on a leader frees the whole group.
        let mut k = Keymap::defaults();
        k.merge_text(Path::new("k.toml"), "[normal]\n\"space\" = \"none\"\n")
            .unwrap();
        assert_eq!(k.resolve(n, &[], Key::char(' ')), Resolved::Unbound);
    }

    #[test]
    fn a_sequence_under_a_bound_key_is_an_error_at_the_sequence() {
        // `g` is `propose` in the defaults.
        let mut k = Keymap::defaults();
        let err = k
            .merge_text(Path::new("k.toml"), "[normal]\n\"g g\" = \"scroll_top\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "k.toml:2:1: \"g g\" can't be bound in [normal]: \"g\" is bound to propose"
            ),
            "{err}"
        );
        assert!(err.contains("\"g\" = \"none\""), "{err}");
        // Both in one file: the error names the line of the single key.
        let mut k = Keymap::defaults();
        let err = k
            .merge_text(
                Path::new("k.toml"),
                "[help]\n\"u\" = \"up\"\n  \"u u\" = \"down\"\n",
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "k.toml:3:3: \"u u\" can't be bound in [help]: \"u\" is bound to up (line 2)"
            ),
            "{err}"
        );
    }
}
