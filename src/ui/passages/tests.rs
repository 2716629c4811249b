//! The context layer (`O`) through `TestBackend`: before a run (what the variant will send)
//! and after (the request as sent, with the scores its node recorded), at 80×24 and 160×48.

use crate::app::model::keys::KeyCode;

use crate::app::model::state::{AppState, Layer};
use crate::app::update::tests::{key, state_for};
use crate::ui::tests::screen;

const HANDBOOK: &str = "# Refunds\n\nRefunds are paid within 14 days of the return.\n\n# Shipping\n\nParcels leave the warehouse every Monday.\n\n# Support\n\nCall support on weekdays between nine and five.\n";

fn rag_app(dir: &std::path::Path) -> AppState {
    std::fs::write(dir.join("handbook.md"), HANDBOOK).unwrap();
    std::fs::write(dir.join("policy.txt"), "Be polite.").unwrap();
    let text = "title = \"T\"\n[defaults]\nmodel = \"fake\"\n\n[[variant]]\nname = \"rag\"\ntemplate = \"{{q}}\"\ncontext_files = [\"policy.txt\"]\nretrieve = { from = [\"handbook.md\"], k = 2, chunk_tokens = 20, overlap = 0 }\n\n[[variant]]\nname = \"plain\"\ntemplate = \"{{q}}\"\n\n[[case]]\nname = \"refunds\"\nvars = { q = \"How many days until refunds are paid?\" }\n";
    state_for(&dir.join("p.toml"), text, &["fake"], "T")
}

#[test]
fn the_context_layer_shows_each_passage_with_its_source_score_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = rag_app(dir.path());
    screen(&mut s, 80, 24);
    key(&mut s, KeyCode::Char('O'));
    let Some(Layer::Passages(v)) = s.layers.last() else {
        panic!("no context layer: {:?}", s.layers);
    };
    assert_eq!(v.source_note, "will send");
    assert_eq!(v.passages.len(), 2, "{v:?}");
    // The refunds chunk ranks first and carries its score before any run.
    assert!(v.passages[1].text.contains("14 days"), "{v:?}");
    assert!(v.passages[1].score.is_some(), "{v:?}");
    for (w, h) in [(80, 24), (160, 48)] {
        let text = screen(&mut s, w, h);
        assert!(text.contains("Context of rag"), "{text}");
        assert!(text.contains("pasted whole"), "{text}");
        assert!(text.contains("handbook.md:"), "{text}");
        assert!(text.contains("score "), "{text}");
        assert!(text.contains("Refunds are paid within 14 days"), "{text}");
        // The header names the prompt file, in a temporary folder: not part of the snapshot.
        let dir_name = dir.path().display().to_string();
        insta::assert_snapshot!(
            format!("passages_will_send_{w}x{h}"),
            text.replace(&dir_name, "DIR")
        );
    }
    // Esc closes; after a run the layer shows the request as sent, with the same passages.
    key(&mut s, KeyCode::Esc);
    assert!(s.layers.is_empty());
    key(&mut s, KeyCode::Char('r'));
    key(&mut s, KeyCode::Char('O'));
    let Some(Layer::Passages(after)) = s.layers.last() else {
        panic!("no context layer: {:?}", s.layers);
    };
    assert_eq!(after.source_note, "as sent");
    assert_eq!(after.passages.len(), 2);
    assert_eq!(after.passages[1].score, v_score(&s, 1));
    // `O` again closes it.
    key(&mut s, KeyCode::Char('O'));
    assert!(s.layers.is_empty());
}

/// The score the node's `retrieved` record gives passage `k`'s source.
fn v_score(s: &AppState, k: usize) -> Option<f64> {
    let n = s.pane_node(0)?;
    let (_, scores) = crate::app::model::passages::parse_retrieved(n.meta.get("retrieved")?);
    let Some(Layer::Passages(v)) = s.layers.last() else {
        return None;
    };
    scores.get(v.passages[k].source.as_deref()?).copied()
}

/// A variant with no context says how to give it some; scrolling past the end stops.
#[test]
fn a_plain_variant_says_it_has_no_context_and_scrolling_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = rag_app(dir.path());
    screen(&mut s, 80, 24);
    key(&mut s, KeyCode::Char('l'));
    key(&mut s, KeyCode::Char('O'));
    let text = screen(&mut s, 80, 24);
    assert!(text.contains("no context passages"), "{text}");
    key(&mut s, KeyCode::Esc);
    key(&mut s, KeyCode::Char('h'));
    key(&mut s, KeyCode::Char('O'));
    for _ in 0..500 {
        key(&mut s, KeyCode::Char('j'));
    }
    let Some(Layer::Passages(v)) = s.layers.last() else {
        panic!()
    };
    assert!(v.scroll < 100, "{}", v.scroll);
    let text = screen(&mut s, 80, 24);
    // Scrolled to the end: the last passage's text is still on screen.
    assert!(text.contains("14 days"), "{text}");
}
