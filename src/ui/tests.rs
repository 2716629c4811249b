//! Views through `TestBackend`: snapshots of the main screen at 80×24 and 160×48, plus
//! resize and hostile-output checks.

use std::time::Duration;

use crate::app::model::keys::KeyCode;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use super::*;
use crate::app::update::tests::{app, ev, key, started};
use crate::app::update::{set_metrics, update};
use crate::app::Msg;
use crate::chat::{FinishReason, StreamEvent};

pub(crate) fn screen(state: &mut crate::app::model::state::AppState, w: u16, h: u16) -> String {
    update(
        state,
        Msg::Resize {
            width: w,
            height: h,
        },
    );
    let theme = Theme::builtin_dark();
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    let mut cache = ViewCache::default();
    let mut metrics = Vec::new();
    t.draw(|f| metrics = draw(f, state, &mut cache, &theme))
        .unwrap();
    set_metrics(state, metrics);
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        let mut line = String::new();
        let mut skip = 0;
        for x in 0..w {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let sym = buf[(x, y)].symbol();
            line.push_str(sym);
            skip = unicode_width::UnicodeWidthStr::width(sym).saturating_sub(1);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn streaming() -> crate::app::model::state::AppState {
    let mut s = app();
    s.now = Duration::from_millis(0);
    let st = started(&key(&mut s, KeyCode::Enter));
    update(
        &mut s,
        Msg::StreamStarted {
            node: st[0].0,
            request: st[0].1,
        },
    );
    update(
        &mut s,
        Msg::StreamStarted {
            node: st[1].0,
            request: st[1].1,
        },
    );
    ev(
        &mut s,
        st[0],
        StreamEvent::Delta(
            "# Answer\nThe capital of England is **London**, on the `Thames`.\n- one\n- two\n"
                .into(),
        ),
        250,
    );
    ev(
        &mut s,
        st[0],
        StreamEvent::Delta("```python\nprint('hi')\n".into()),
        400,
    );
    s.now = Duration::from_millis(1200);
    s
}

#[test]
fn snapshot_idle() {
    let mut s = app();
    insta::assert_snapshot!("idle_80x24", screen(&mut s, 80, 24));
    insta::assert_snapshot!("idle_160x48", screen(&mut s, 160, 48));
}

#[test]
fn snapshot_streaming() {
    let mut s = streaming();
    insta::assert_snapshot!("streaming_80x24", screen(&mut s, 80, 24));
    insta::assert_snapshot!("streaming_160x48", screen(&mut s, 160, 48));
}

#[test]
fn snapshot_done_and_error() {
    let mut s = app();
    let st = started(&key(&mut s, KeyCode::Enter));
    ev(&mut s, st[0], StreamEvent::Delta("London.".into()), 100);
    ev(&mut s, st[0], StreamEvent::Delta(" Really.".into()), 300);
    ev(
        &mut s,
        st[0],
        StreamEvent::Finished(FinishReason::Stop),
        400,
    );
    ev(&mut s, st[1], StreamEvent::Failed("POST http://127.0.0.1:9/v1/chat/completions: connection refused (os error 111); is the server running?".into()), 500);
    s.now = Duration::from_millis(600);
    insta::assert_snapshot!("error_80x24", screen(&mut s, 80, 24));
    insta::assert_snapshot!("error_160x48", screen(&mut s, 160, 48));
}

#[test]
fn snapshot_zoomed_and_help() {
    let mut s = streaming();
    key(&mut s, KeyCode::Char('z'));
    insta::assert_snapshot!("zoomed_80x24", screen(&mut s, 80, 24));
    insta::assert_snapshot!("zoomed_160x48", screen(&mut s, 160, 48));
    key(&mut s, KeyCode::Char('z'));
    key(&mut s, KeyCode::Char('?'));
    insta::assert_snapshot!("help_80x24", screen(&mut s, 80, 24));
    insta::assert_snapshot!("help_160x48", screen(&mut s, 160, 48));
}

#[test]
fn every_size_down_to_tiny_draws_without_panicking() {
    let mut s = streaming();
    key(&mut s, KeyCode::Char('e'));
    for w in [1u16, 2, 5, 20, 21, 33, 59, 61, 80] {
        for h in [1u16, 2, 3, 6, 7, 24] {
            let out = screen(&mut s, w, h);
            assert_eq!(out.lines().count(), usize::from(h));
        }
    }
    // Help and pickers too.
    key(&mut s, KeyCode::Esc);
    key(&mut s, KeyCode::Char('?'));
    screen(&mut s, 20, 6);
    key(&mut s, KeyCode::Esc);
    key(&mut s, KeyCode::Char('m'));
    screen(&mut s, 20, 6);
}

#[test]
fn hostile_output_never_reaches_the_terminal() {
    let mut s = app();
    let st = started(&key(&mut s, KeyCode::Enter));
    ev(&mut s, st[0], StreamEvent::Delta("a\x1b[2Jb \x1b]52;c;SGVsbG8=\x07 \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ \u{9b}31m bell\x07 日本語 e\u{301}".into()), 5);
    let theme = Theme::builtin_dark();
    let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let mut cache = ViewCache::default();
    t.draw(|f| {
        draw(f, &s, &mut cache, &theme);
    })
    .unwrap();
    let buf = t.backend().buffer();
    let mut all = String::new();
    for c in buf.content() {
        for ch in c.symbol().chars() {
            assert!(
                !ch.is_control() && !('\u{80}'..='\u{9f}').contains(&ch),
                "control character {ch:?} in a cell"
            );
        }
        all.push_str(c.symbol());
    }
    assert!(all.contains("␛[2J"), "{all}");
    assert!(all.contains("␛]52;c;SGVsbG8=␇"), "{all}");
}

#[test]
fn wide_characters_align_in_panes() {
    let mut s = app();
    let st = started(&key(&mut s, KeyCode::Enter));
    ev(
        &mut s,
        st[0],
        StreamEvent::Delta(
            "日本語の首都は東京です。🎉🎉 combining: e\u{301}e\u{301}e\u{301} done".into(),
        ),
        5,
    );
    let out = screen(&mut s, 60, 12);
    for line in out.lines() {
        assert!(
            unicode_width::UnicodeWidthStr::width(line) <= 60,
            "{line:?}"
        );
    }
    // The right border of the second pane stays in the last column on every pane row.
    let rows: Vec<&str> = out.lines().skip(3).take(6).collect();
    for r in rows {
        assert_eq!(unicode_width::UnicodeWidthStr::width(r), 60, "{r:?}");
    }
}

#[test]
fn a_layer_on_top_of_the_stack_is_drawn_on_top() {
    // The stack is drawn in one walk, bottom to top: help opened over the leaderboard must
    // cover it, although the two are drawn by different modules.
    let mut s = app();
    key(&mut s, KeyCode::Char('L'));
    assert!(matches!(
        s.layers.last(),
        Some(crate::app::model::state::Layer::Leaderboard(_))
    ));
    let board = screen(&mut s, 80, 24);
    assert!(board.contains("Leaderboard by variant"), "{board}");
    s.layers
        .push(crate::app::model::state::Layer::Help { scroll: 0 });
    let both = screen(&mut s, 80, 24);
    assert!(both.contains("Keys (Esc closes)"), "{both}");
    // Its first line names the first mode it lists, inside the box (the leaderboard, drawn
    // by another module, used to be drawn over it and wipe it out): the mode it was opened
    // over, the leaderboard's, comes first.
    let row2 = both.lines().nth(2).unwrap_or("");
    assert!(row2.contains("│leaderboard"), "{both}");
}

#[test]
fn a_pane_header_names_its_models_lora_adapters() {
    let mut s = app();
    s.prompt.variants[1].model = "other".into();
    s.adapters.insert("other".into(), "support-v1".into());
    let out = screen(&mut s, 160, 48);
    let top = out
        .lines()
        .find(|l| l.contains(" teacher · "))
        .unwrap_or_default();
    assert!(top.contains(" teacher · other + lora support-v1 "), "{top}");
    assert!(
        top.contains(" plain · fake ") && !top.contains("fake + lora"),
        "{top}"
    );
}

#[test]
fn the_case_picker_shows_its_filter_and_the_matches_only() {
    let mut s = app();
    key(&mut s, KeyCode::Char('p'));
    for c in "ital".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    let out = screen(&mut s, 80, 24);
    assert!(out.contains("> ital▏"), "{out}");
    assert!(out.contains("1/2"), "{out}");
    assert!(out.contains("Italy  country=Italy"), "{out}");
    assert!(!out.contains("England  country=England"), "{out}");
    for c in "xyz".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    let out = screen(&mut s, 80, 24);
    assert!(out.contains("no match") && out.contains("0/2"), "{out}");
}
