//! Reading a GGUF file's header without loading it: the architecture (mistral.rs panics on
//! some unsupported ones, so we check first), the file type, and the metadata keys.

// The header checks serve the local backend; the file hash is used everywhere.
#![cfg_attr(not(feature = "local"), allow(dead_code))]

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// GGUF architectures mistral.rs 0.8.1 can run from a GGUF file.
pub(crate) const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "llama",
    "mistral3",
    "phi2",
    "phi3",
    "starcoder2",
    "qwen2",
    "qwen3",
    "qwen3moe",
];

/// A metadata value (arrays are skipped and recorded by length only).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MetaValue {
    Int(i128),
    Float(f64),
    Bool(bool),
    Str(String),
    Array { len: u64 },
}

/// The header of a GGUF file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GgufHeader {
    pub version: u32,
    pub tensor_count: u64,
    pub metadata: Vec<(String, MetaValue)>,
}

impl GgufHeader {
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn architecture(&self) -> Option<&str> {
        match self.get("general.architecture") {
            Some(MetaValue::Str(s)) => Some(s),
            _ => None,
        }
    }
}

/// Errors reading a GGUF header.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GgufError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not a GGUF file (magic bytes are {0:?}, expected \"GGUF\")")]
    NotGguf([u8; 4]),
    #[error("unsupported GGUF version {0}")]
    Version(u32),
    #[error("corrupt GGUF header: {0}")]
    Corrupt(String),
}

/// Read the header of the GGUF file at `path`.
pub(crate) fn read_header(path: &Path) -> Result<GgufHeader, GgufError> {
    let mut r = BufReader::with_capacity(1 << 16, File::open(path)?);
    read_header_from(&mut r)
}

pub(crate) fn read_header_from<R: Read + Seek>(r: &mut R) -> Result<GgufHeader, GgufError> {
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)?;
    if &magic != b"GGUF" {
        return Err(GgufError::NotGguf(magic));
    }
    let version = u32le(r)?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::Version(version));
    }
    let tensor_count = u64le(r)?;
    let kv_count = u64le(r)?;
    if kv_count > 1_000_000 {
        return Err(GgufError::Corrupt(format!("{kv_count} metadata entries")));
    }
    let mut metadata = Vec::with_capacity(kv_count as usize);
    for _ in 0..kv_count {
        let key = string(r)?;
        let ty = u32le(r)?;
        let value = value(r, ty)?;
        metadata.push((key, value));
    }
    Ok(GgufHeader {
        version,
        tensor_count,
        metadata,
    })
}

/// Check that mistral.rs can run this file, with an error that says why not.
pub(crate) fn check_supported(path: &Path) -> Result<GgufHeader, String> {
    let header = read_header(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match header.architecture() {
        Some(a) if SUPPORTED_ARCHITECTURES.contains(&a.to_ascii_lowercase().as_str()) => Ok(header),
        Some(a) => Err(format!(
            "{}: GGUF architecture {a:?} is not supported by the local backend (mistral.rs 0.8.1 runs: {}); serve it with llama.cpp and use backend = \"openai\" instead",
            path.display(),
            SUPPORTED_ARCHITECTURES.join(", ")
        )),
        None => Err(format!("{}: GGUF file has no general.architecture", path.display())),
    }
}

/// sha256 of a file, hex.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn u32le<R: Read>(r: &mut R) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn u64le<R: Read>(r: &mut R) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn string<R: Read>(r: &mut R) -> Result<String, GgufError> {
    let len = u64le(r)?;
    if len > 1 << 24 {
        return Err(GgufError::Corrupt(format!("string of {len} bytes")));
    }
    let mut b = vec![0u8; len as usize];
    r.read_exact(&mut b)?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// Size in bytes of a fixed-size scalar type, `None` for strings and arrays.
fn scalar_size(ty: u32) -> Option<u64> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

fn value<R: Read + Seek>(r: &mut R, ty: u32) -> Result<MetaValue, GgufError> {
    let mut b8 = [0u8; 8];
    Ok(match ty {
        0 => {
            r.read_exact(&mut b8[..1])?;
            MetaValue::Int(b8[0].into())
        }
        1 => {
            r.read_exact(&mut b8[..1])?;
            MetaValue::Int((b8[0] as i8).into())
        }
        2 => {
            r.read_exact(&mut b8[..2])?;
            MetaValue::Int(u16::from_le_bytes([b8[0], b8[1]]).into())
        }
        3 => {
            r.read_exact(&mut b8[..2])?;
            MetaValue::Int(i16::from_le_bytes([b8[0], b8[1]]).into())
        }
        4 => MetaValue::Int(u32le(r)?.into()),
        5 => MetaValue::Int((u32le(r)? as i32).into()),
        6 => MetaValue::Float(f32::from_bits(u32le(r)?).into()),
        7 => {
            r.read_exact(&mut b8[..1])?;
            MetaValue::Bool(b8[0] != 0)
        }
        8 => MetaValue::Str(string(r)?),
        9 => {
            let item = u32le(r)?;
            let len = u64le(r)?;
            match scalar_size(item) {
                Some(size) => {
                    let bytes = len
                        .checked_mul(size)
                        .ok_or_else(|| GgufError::Corrupt("array too large".into()))?;
                    r.seek(SeekFrom::Current(bytes as i64))?;
                }
                None => {
                    for _ in 0..len {
                        value(r, item)?;
                    }
                }
            }
            MetaValue::Array { len }
        }
        10 => MetaValue::Int(u64le(r)?.into()),
        11 => MetaValue::Int((u64le(r)? as i64).into()),
        12 => MetaValue::Float(f64::from_bits(u64le(r)?)),
        other => return Err(GgufError::Corrupt(format!("unknown value type {other}"))),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Cursor;

    /// A minimal GGUF header with the given architecture and a string array.
    pub(crate) fn tiny_gguf(arch: &str) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"GGUF");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&3u64.to_le_bytes());
        let s = |b: &mut Vec<u8>, s: &str| {
            b.extend_from_slice(&(s.len() as u64).to_le_bytes());
            b.extend_from_slice(s.as_bytes());
        };
        s(&mut b, "general.architecture");
        b.extend_from_slice(&8u32.to_le_bytes());
        s(&mut b, arch);
        s(&mut b, "tokenizer.ggml.tokens");
        b.extend_from_slice(&9u32.to_le_bytes());
        b.extend_from_slice(&8u32.to_le_bytes());
        b.extend_from_slice(&2u64.to_le_bytes());
        s(&mut b, "<s>");
        s(&mut b, "</s>");
        s(&mut b, "general.file_type");
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&3u32.to_le_bytes());
        b
    }

    #[test]
    fn reads_architecture_and_skips_arrays() {
        let h = read_header_from(&mut Cursor::new(tiny_gguf("llama"))).unwrap();
        assert_eq!(h.architecture(), Some("llama"));
        assert_eq!(
            h.get("tokenizer.ggml.tokens"),
            Some(&MetaValue::Array { len: 2 })
        );
        assert_eq!(h.get("general.file_type"), Some(&MetaValue::Int(3)));
    }

    #[test]
    fn rejects_non_gguf_and_unsupported_architectures() {
        let err = read_header_from(&mut Cursor::new(b"PK\x03\x04rest".to_vec())).unwrap_err();
        assert!(err.to_string().starts_with("not a GGUF file"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.gguf");
        std::fs::write(&p, tiny_gguf("gemma3")).unwrap();
        let err = check_supported(&p).unwrap_err();
        assert!(
            err.contains("architecture \"gemma3\" is not supported"),
            "{err}"
        );
        std::fs::write(&p, tiny_gguf("llama")).unwrap();
        assert!(check_supported(&p).is_ok());
    }
}
