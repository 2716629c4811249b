//! Key bindings: which key triggers which [`Action`] in which mode.
//!
//! The defaults are embedded (`keymap.toml`); a user's keymap file is merged over them per
//! mode. A bad key name or an unknown action is an [`InputError`] naming file, line and
//! column, reported before the screen opens. Every action carries its own help text, so the
//! footer and the `?` overlay are generated from the same table the key handler uses and can
//! never drift from behaviour.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use toml::Spanned;

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

/// A key with modifiers, as written in keymap files (`ctrl-r`, `shift-tab`, `G`, `?`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    pub code: KeyCodeOrd,
    pub ctrl: bool,
    pub alt: bool,
}

/// `KeyCode` restricted to what keymaps bind, ordered so bindings sort stably.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum KeyCodeOrd {
    Char(char),
    F(u8),
    Named(&'static str),
}

const NAMED: &[&str] = &[
    "enter",
    "esc",
    "tab",
    "backtab",
    "up",
    "down",
    "left",
    "right",
    "pageup",
    "pagedown",
    "home",
    "end",
    "backspace",
    "delete",
    "insert",
    "space",
];

impl Key {
    /// Parse `ctrl-alt-x`, `G`, `pageup`, `f5`, `shift-tab`.
    pub fn parse(s: &str) -> Result<Key, String> {
        let mut ctrl = false;
        let mut alt = false;
        let mut shift = false;
        let mut rest = s;
        loop {
            let lower = rest.to_ascii_lowercase();
            if rest.chars().count() > 1 && lower.starts_with("ctrl-") {
                ctrl = true;
                rest = &rest[5..];
            } else if rest.chars().count() > 1 && lower.starts_with("alt-") {
                alt = true;
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
                let c = if ctrl { c.to_ascii_lowercase() } else { c };
                KeyCodeOrd::Char(c)
            }
            (None, _) => return Err("empty key".into()),
            _ => {
                let lower = rest.to_ascii_lowercase();
                if shift && lower == "tab" {
                    KeyCodeOrd::Named("backtab")
                } else if let Some(n) = NAMED.iter().find(|n| **n == lower) {
                    if *n == "space" {
                        KeyCodeOrd::Char(' ')
                    } else {
                        KeyCodeOrd::Named(n)
                    }
                } else if let Some(n) = lower
                    .strip_prefix('f')
                    .and_then(|d| d.parse::<u8>().ok())
                    .filter(|n| (1..=24).contains(n))
                {
                    KeyCodeOrd::F(n)
                } else {
                    return Err(format!(
                        "unknown key {s:?}; use a single character, f1..f24, or one of {}",
                        NAMED.join(", ")
                    ));
                }
            }
        };
        Ok(Key { code, ctrl, alt })
    }

    /// The binding a terminal key event matches, if it can be bound at all.
    pub fn from_event(ev: &KeyEvent) -> Option<Key> {
        let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
        let alt = ev.modifiers.contains(KeyModifiers::ALT);
        let code = match ev.code {
            KeyCode::Char(c) => KeyCodeOrd::Char(if ctrl { c.to_ascii_lowercase() } else { c }),
            KeyCode::F(n) => KeyCodeOrd::F(n),
            KeyCode::Enter => KeyCodeOrd::Named("enter"),
            KeyCode::Esc => KeyCodeOrd::Named("esc"),
            KeyCode::Tab => KeyCodeOrd::Named("tab"),
            KeyCode::BackTab => KeyCodeOrd::Named("backtab"),
            KeyCode::Up => KeyCodeOrd::Named("up"),
            KeyCode::Down => KeyCodeOrd::Named("down"),
            KeyCode::Left => KeyCodeOrd::Named("left"),
            KeyCode::Right => KeyCodeOrd::Named("right"),
            KeyCode::PageUp => KeyCodeOrd::Named("pageup"),
            KeyCode::PageDown => KeyCodeOrd::Named("pagedown"),
            KeyCode::Home => KeyCodeOrd::Named("home"),
            KeyCode::End => KeyCodeOrd::Named("end"),
            KeyCode::Backspace => KeyCodeOrd::Named("backspace"),
            KeyCode::Delete => KeyCodeOrd::Named("delete"),
            KeyCode::Insert => KeyCodeOrd::Named("insert"),
            _ => return None,
        };
        Some(Key { code, ctrl, alt })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("C-")?;
        }
        if self.alt {
            f.write_str("M-")?;
        }
        match self.code {
            KeyCodeOrd::Char(' ') => f.write_str("space"),
            KeyCodeOrd::Char(c) => write!(f, "{c}"),
            KeyCodeOrd::F(n) => write!(f, "F{n}"),
            KeyCodeOrd::Named("pageup") => f.write_str("PgUp"),
            KeyCodeOrd::Named("pagedown") => f.write_str("PgDn"),
            KeyCodeOrd::Named("backtab") => f.write_str("S-Tab"),
            KeyCodeOrd::Named("enter") => f.write_str("Enter"),
            KeyCodeOrd::Named("esc") => f.write_str("Esc"),
            KeyCodeOrd::Named("tab") => f.write_str("Tab"),
            KeyCodeOrd::Named(n) => {
                // "home" -> "Home", like the other named keys.
                let mut c = n.chars();
                match c.next() {
                    Some(first) => write!(f, "{}{}", first.to_ascii_uppercase(), c.as_str()),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Bindings per mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keymap {
    modes: BTreeMap<Mode, BTreeMap<Key, Action>>,
}

type RawKeymap = BTreeMap<Spanned<String>, BTreeMap<Spanned<String>, Spanned<String>>>;

impl Keymap {
    /// The embedded defaults.
    pub fn defaults() -> Keymap {
        let mut k = Keymap {
            modes: BTreeMap::new(),
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

    /// Merge keymap TOML over these bindings. `"none"` unbinds a key.
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
            for (key, action) in bindings {
                let k = Key::parse(key.get_ref())
                    .map_err(|m| InputError::at(path, text, key.span().start, m))?;
                if action.get_ref() == "none" {
                    table.remove(&k);
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
                table.insert(k, a);
            }
        }
        Ok(())
    }

    /// The action `ev` triggers in `mode`.
    pub fn action(&self, mode: Mode, ev: &KeyEvent) -> Option<Action> {
        let key = Key::from_event(ev)?;
        let table = self.modes.get(&mode)?;
        // Shifted letters arrive as the uppercase char (SHIFT is ignored by `from_event`), so
        // `G` and `shift-g` both match the stored `Char('G')`.
        table.get(&key).copied()
    }

    /// Every binding of `mode`, grouped by action in the order actions are declared.
    pub fn bindings(&self, mode: Mode) -> Vec<(Action, Vec<Key>)> {
        let mut by_action: BTreeMap<Action, Vec<Key>> = BTreeMap::new();
        if let Some(t) = self.modes.get(&mode) {
            for (k, a) in t {
                by_action.entry(*a).or_default().push(*k);
            }
        }
        by_action.into_iter().collect()
    }

    /// The first key bound to `action` in `mode`, for hints.
    pub fn key_for(&self, mode: Mode, action: Action) -> Option<Key> {
        self.modes
            .get(&mode)?
            .iter()
            .find(|(_, a)| **a == action)
            .map(|(k, _)| *k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn defaults_parse_and_bind_the_documented_keys() {
        let k = Keymap::defaults();
        let n = Mode::Normal;
        assert_eq!(
            k.action(n, &ev(KeyCode::Enter, KeyModifiers::NONE)),
            Some(Action::RunAll)
        );
        assert_eq!(
            k.action(n, &ev(KeyCode::Char('R'), KeyModifiers::SHIFT)),
            Some(Action::RerunFocused)
        );
        assert_eq!(
            k.action(n, &ev(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Interrupt)
        );
        assert_eq!(
            k.action(n, &ev(KeyCode::Char('?'), KeyModifiers::SHIFT)),
            Some(Action::Help)
        );
        assert_eq!(
            k.action(n, &ev(KeyCode::PageDown, KeyModifiers::NONE)),
            Some(Action::PageDown)
        );
        assert_eq!(
            k.action(Mode::Editor, &ev(KeyCode::Char('s'), KeyModifiers::CONTROL)),
            Some(Action::Accept)
        );
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
            k.action(n, &ev(KeyCode::Char('r'), KeyModifiers::CONTROL)),
            Some(Action::RerunFocused)
        );
        assert_eq!(
            k.action(n, &ev(KeyCode::Char('q'), KeyModifiers::NONE)),
            None
        );
        assert_eq!(
            k.action(n, &ev(KeyCode::Char('r'), KeyModifiers::NONE)),
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
        assert_eq!(Key::parse("ctrl-c").unwrap().to_string(), "C-c");
        assert_eq!(Key::parse("pagedown").unwrap().to_string(), "PgDn");
        assert_eq!(Key::parse("shift-tab").unwrap().to_string(), "S-Tab");
        assert_eq!(Key::parse("G").unwrap().to_string(), "G");
    }
}
