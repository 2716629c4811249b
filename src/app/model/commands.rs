//! What each layer's key handler accepts, one table per mode. `update` dispatches through
//! these tables (an action a mode's table doesn't list never reaches its handler: the key is
//! ignored and bubbles to the layer below), and the footer and the `?` overlay list exactly
//! these actions with the keys the keymap binds to them, so neither can drift from what the
//! keys do. The tables are plain data, here on the model floor, so the views can read them.

use crate::config::keymap::{Action, Mode};

/// Where a command's key is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hint {
    /// In the footer and in `?`.
    Footer,
    /// Only in `?`: the footer has no room for it.
    HelpOnly,
    /// One footer entry for two commands, `first`'s key, `sep`, `second`'s key, then
    /// `label` (`h/l focus`, `1-5 stars`); listed where this command is.
    Joined {
        first: Action,
        second: Action,
        sep: &'static str,
        label: &'static str,
    },
    /// In the footer while a tool call waits for the user's approval.
    WhileToolWaits,
    /// In the footer when the prompt file offers tools.
    WithTools,
}

/// One action a layer's handler takes, and how its key is hinted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Command {
    pub action: Action,
    pub hint: Hint,
}

const fn shown(action: Action) -> Command {
    Command {
        action,
        hint: Hint::Footer,
    }
}

const fn quiet(action: Action) -> Command {
    Command {
        action,
        hint: Hint::HelpOnly,
    }
}

const fn joined(
    action: Action,
    first: Action,
    second: Action,
    sep: &'static str,
    label: &'static str,
) -> Command {
    Command {
        action,
        hint: Hint::Joined {
            first,
            second,
            sep,
            label,
        },
    }
}

const fn hint(action: Action, hint: Hint) -> Command {
    Command { action, hint }
}

use Action as A;

const NORMAL: &[Command] = &[
    shown(A::RunAll),
    quiet(A::RerunFocused),
    shown(A::CancelFocused),
    quiet(A::CancelAll),
    quiet(A::Interrupt),
    shown(A::Quit),
    quiet(A::FocusLeft),
    joined(A::FocusRight, A::FocusLeft, A::FocusRight, "/", "focus"),
    quiet(A::FocusNext),
    quiet(A::FocusPrev),
    shown(A::ScrollDown),
    quiet(A::ScrollUp),
    quiet(A::PageDown),
    quiet(A::PageUp),
    quiet(A::ScrollTop),
    shown(A::ScrollBottom),
    shown(A::Zoom),
    quiet(A::PrevCase),
    joined(A::NextCase, A::PrevCase, A::NextCase, " ", "case"),
    quiet(A::PickCase),
    shown(A::FreeInput),
    shown(A::EditVariant),
    quiet(A::ExternalEditor),
    quiet(A::AddVariant),
    quiet(A::DuplicateVariant),
    quiet(A::RenameVariant),
    quiet(A::DeleteVariant),
    shown(A::WritePromptFile),
    shown(A::PickModel),
    shown(A::CopyAnswer),
    hint(A::ApproveTool, Hint::WhileToolWaits),
    hint(A::DenyTool, Hint::WhileToolWaits),
    hint(A::NextToolCall, Hint::WithTools),
    hint(A::PrevToolCall, Hint::WithTools),
    hint(A::EditToolResult, Hint::WithTools),
    shown(A::Help),
    shown(A::TogglePrompt),
    shown(A::VersionHistory),
    shown(A::PromptDiff),
    shown(A::Passages),
    joined(A::Stars1, A::Stars1, A::Stars5, "-", "stars"),
    quiet(A::Stars2),
    quiet(A::Stars3),
    quiet(A::Stars4),
    quiet(A::Stars5),
    quiet(A::ClearStars),
    joined(A::ThumbUp, A::ThumbUp, A::ThumbDown, "/", "thumb"),
    quiet(A::ThumbDown),
    shown(A::EditNote),
    shown(A::Compare),
    shown(A::Leaderboard),
    shown(A::SessionBrowser),
    // Technique keys: in `?` and the README (and the `space` group's hint); the footer is
    // full.
    quiet(A::CancelTechniques),
    quiet(A::Critique),
    quiet(A::CritiqueLoop),
    quiet(A::PrevRevision),
    quiet(A::NextRevision),
    quiet(A::Diff),
    quiet(A::Branch),
    shown(A::Samples),
    quiet(A::BranchSteps),
    quiet(A::Tree),
    quiet(A::Search),
    quiet(A::Propose),
    quiet(A::Judge),
    quiet(A::JudgeAll),
    quiet(A::JudgePair),
    shown(A::Heat),
];

const HELP: &[Command] = &[
    shown(A::Close),
    quiet(A::Help),
    shown(A::Down),
    shown(A::Up),
];
const PICKER: &[Command] = &[
    shown(A::Close),
    shown(A::Accept),
    shown(A::Down),
    shown(A::Up),
];
const EDITOR: &[Command] = &[shown(A::Close), shown(A::Accept)];
const CONFIRM: &[Command] = &[shown(A::Accept), shown(A::Close)];
const COMPARE: &[Command] = &[
    shown(A::Close),
    shown(A::VoteLeft),
    shown(A::VoteRight),
    shown(A::VoteTie),
    shown(A::VoteBothBad),
    shown(A::NextPair),
    shown(A::Down),
    shown(A::Up),
];
const LEADERBOARD: &[Command] = &[
    shown(A::Close),
    shown(A::Help),
    quiet(A::Leaderboard),
    shown(A::ToggleGroup),
    shown(A::CompareSuggested),
    shown(A::ExportBoard),
    shown(A::Charts),
    shown(A::Down),
    shown(A::Up),
];
const BROWSER: &[Command] = PICKER;
const TREE: &[Command] = &[
    shown(A::Close),
    shown(A::Down),
    shown(A::Up),
    shown(A::Parent),
    shown(A::Child),
    shown(A::PrevSibling),
    shown(A::NextSibling),
    shown(A::ToggleCollapse),
    shown(A::OpenNode),
    shown(A::Bookmark),
    shown(A::Prune),
    shown(A::Promote),
    shown(A::Help),
    shown(A::Branch),
    shown(A::Samples),
    shown(A::BranchSteps),
    shown(A::Search),
    shown(A::Critique),
    shown(A::Diff),
    shown(A::Judge),
    shown(A::CancelTechniques),
];
const DIFF: &[Command] = &[
    shown(A::Close),
    quiet(A::Diff),
    shown(A::Down),
    shown(A::Up),
];
const SEARCH_PARAMS: &[Command] = &[
    shown(A::Close),
    shown(A::Accept),
    shown(A::Down),
    shown(A::Up),
    shown(A::Increase),
    shown(A::Decrease),
];
const HEAT: &[Command] = &[
    shown(A::Close),
    quiet(A::Heat),
    shown(A::TokenNext),
    shown(A::TokenPrev),
    shown(A::TokenNextLow),
    shown(A::Down),
    shown(A::Up),
    shown(A::Accept),
    shown(A::FreeInput),
];
const HISTORY: &[Command] = &[
    shown(A::Close),
    quiet(A::VersionHistory),
    shown(A::Down),
    shown(A::Up),
];
const CHARTS: &[Command] = &[shown(A::Close), quiet(A::Charts)];
const PROMPT_DIFF: &[Command] = &[
    shown(A::Close),
    shown(A::PromptDiff),
    shown(A::Down),
    shown(A::Up),
];
const PASSAGES: &[Command] = &[
    shown(A::Close),
    quiet(A::Passages),
    shown(A::Down),
    shown(A::Up),
    shown(A::PageDown),
    shown(A::PageUp),
];

/// The commands the handler of `mode` takes.
pub(crate) fn commands(mode: Mode) -> &'static [Command] {
    match mode {
        Mode::Normal => NORMAL,
        Mode::Help => HELP,
        Mode::Picker => PICKER,
        Mode::Editor | Mode::Input => EDITOR,
        Mode::Confirm => CONFIRM,
        Mode::Compare => COMPARE,
        Mode::Leaderboard => LEADERBOARD,
        Mode::Browser => BROWSER,
        Mode::Tree => TREE,
        Mode::Diff => DIFF,
        Mode::SearchParams => SEARCH_PARAMS,
        Mode::Heat => HEAT,
        Mode::History => HISTORY,
        Mode::Charts => CHARTS,
        Mode::PromptDiff => PROMPT_DIFF,
        Mode::Passages => PASSAGES,
    }
}

/// The command for `action` in `mode`, if its handler takes it.
pub(crate) fn command(mode: Mode, action: Action) -> Option<&'static Command> {
    commands(mode).iter().find(|c| c.action == action)
}

/// Whether the handler of `mode` takes `action`.
pub(crate) fn accepts(mode: Mode, action: Action) -> bool {
    command(mode, action).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::keymap::Keymap;

    #[test]
    fn every_default_binding_reaches_its_handler() {
        let k = Keymap::defaults();
        for mode in Mode::ALL {
            for (action, keys) in k.bindings(mode) {
                assert!(
                    accepts(mode, action),
                    "[{}] binds {} to {}, which its handler doesn't take",
                    mode.name(),
                    keys.iter()
                        .map(|k| k.to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                    action.name()
                );
            }
        }
    }

    #[test]
    fn each_table_lists_an_action_once_and_joined_hints_name_listed_actions() {
        for mode in Mode::ALL {
            let t = commands(mode);
            for (i, c) in t.iter().enumerate() {
                assert!(
                    !t[..i].iter().any(|o| o.action == c.action),
                    "[{}] lists {} twice",
                    mode.name(),
                    c.action.name()
                );
                if let Hint::Joined { first, second, .. } = c.hint {
                    assert!(accepts(mode, first) && accepts(mode, second));
                }
            }
        }
    }
}
