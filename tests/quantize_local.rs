//! `promptloom quantize` on the real shipped model: the result loads in mistral.rs, keeps the
//! metadata with `general.file_type` updated, and the quality check runs both models.
#![cfg(feature = "local")]

mod common;

use common::{require_default_model, shipped_model_path, text, Sandbox};

#[test]
fn requantizes_the_shipped_model_and_checks_its_quality() {
    require_default_model();
    let shipped = shipped_model_path();
    let sb = Sandbox::new("");
    let out = sb.path("model.Q8_0.gguf");
    let o = sb.run(&[
        "quantize",
        &shipped.to_string_lossy(),
        &out.to_string_lossy(),
        "--to",
        "q8_0",
    ]);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", text(&o.stderr));
    assert!(
        stdout.contains("210 of 272 tensors quantized to Q8_0"),
        "{stdout}"
    );
    assert!(stdout.contains("61 tensors 1-D, kept as F32"), "{stdout}");
    // Q8_0 of a Q4_1 file loses next to nothing; the check measures it rather than assuming.
    assert!(stdout.contains("quality on "), "{stdout}");
    assert!(stdout.contains("(negligible loss)"), "{stdout}");

    // Same bytes as the default file `model fetch` derived: quantizing is deterministic.
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(require_default_model()).unwrap()
    );

    // Refuses to overwrite without --force, and never writes over its input.
    let again = sb.run(&[
        "quantize",
        &shipped.to_string_lossy(),
        &out.to_string_lossy(),
        "--to",
        "q4_0",
        "--no-check",
    ]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );
    let same = sb.run(&[
        "quantize",
        &out.to_string_lossy(),
        &out.to_string_lossy(),
        "--to",
        "q4_0",
        "--force",
        "--no-check",
    ]);
    assert!(!same.status.success());
    assert!(
        text(&same.stderr).contains("overwrite the input"),
        "{}",
        text(&same.stderr)
    );
}
