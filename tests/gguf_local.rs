//! A truncated or corrupted GGUF gives a clear error in `run` (and so in the pane) before
//! mistral.rs reads it: the local backend checks the header, the tensor table and that every
//! tensor's data lies inside the file. Needs the `local` feature, not the model.
#![cfg(feature = "local")]

mod common;

use common::{parse_toml, text, Sandbox};

/// A llama-architecture GGUF with two tensors and their data.
fn gguf() -> Vec<u8> {
    let mut b = Vec::new();
    let s = |b: &mut Vec<u8>, s: &str| {
        b.extend_from_slice(&(s.len() as u64).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    };
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&2u64.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes());
    s(&mut b, "general.architecture");
    b.extend_from_slice(&8u32.to_le_bytes());
    s(&mut b, "llama");
    for (name, dims, ty, off) in [
        ("token_embd.weight", vec![64u64, 32], 0u32, 0u64),
        ("output_norm.weight", vec![64], 0, 8192),
    ] {
        s(&mut b, name);
        b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            b.extend_from_slice(&d.to_le_bytes());
        }
        b.extend_from_slice(&ty.to_le_bytes());
        b.extend_from_slice(&off.to_le_bytes());
    }
    while !b.len().is_multiple_of(32) {
        b.push(0);
    }
    b.extend((0..8192 + 256).map(|i| (i % 251) as u8));
    b
}

fn run_with(bytes: &[u8]) -> (String, String) {
    let sb =
        Sandbox::new("default_model = \"m\"\n[models.m]\nbackend = \"local\"\ngguf = \"m.gguf\"\n");
    std::fs::create_dir_all(sb.path("data/models")).unwrap();
    std::fs::write(sb.path("data/models/m.gguf"), bytes).unwrap();
    let p = sb.write(
        "p.toml",
        "title = \"t\"\n[[variant]]\nname = \"v\"\ntemplate = \"hi\"\n",
    );
    let out = sb.path("s.toml");
    let o = sb.run(&["run", p.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let file = parse_toml(&out);
    let node = file["node"].as_array().unwrap()[0]
        .as_table()
        .unwrap()
        .clone();
    (
        node["error"].as_str().unwrap_or_default().to_string(),
        text(&o.stdout) + &text(&o.stderr),
    )
}

#[test]
fn a_gguf_cut_at_1_kb_at_half_or_with_a_flipped_byte_is_a_clear_error() {
    let b = gguf();
    for (what, bytes) in [
        ("cut at 1 KB", b[..1024].to_vec()),
        ("cut at half", b[..b.len() / 2].to_vec()),
        ("flipped dimension byte", {
            let mut f = b.clone();
            let name = b"token_embd.weight";
            let at = f.windows(name.len()).position(|w| w == name).unwrap() + name.len() + 4;
            f[at + 1] ^= 0x40;
            f
        }),
    ] {
        let (err, out) = run_with(&bytes);
        assert!(
            err.contains("m.gguf: corrupt GGUF header: tensor")
                && err.contains("truncated or corrupt"),
            "{what}: {err}\n{out}"
        );
    }
}
