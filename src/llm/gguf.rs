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
        let value = value(r, ty, 0)?;
        metadata.push((key, value));
    }
    Ok(GgufHeader {
        version,
        tensor_count,
        metadata,
    })
}

/// One tensor's entry in the file's tensor table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    /// Offset from the start of the data section.
    pub offset: u64,
    /// Bytes of data, from the type's block size.
    pub bytes: u64,
}

/// The header, the tensor table, and where the data section starts: everything needed to
/// know that every tensor's data lies inside the file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GgufLayout {
    pub header: GgufHeader,
    pub tensors: Vec<TensorInfo>,
    pub data_start: u64,
    pub file_len: u64,
}

impl GgufLayout {
    /// Bytes of tensor data.
    pub fn data_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes).sum()
    }
}

/// `(bytes per block, elements per block)` of a ggml tensor type, `None` for types that no
/// longer exist or that this reader does not know.
pub(crate) fn ggml_type_size(ty: u32) -> Option<(u64, u64)> {
    Some(match ty {
        0 => (4, 1),     // F32
        1 => (2, 1),     // F16
        2 => (18, 32),   // Q4_0
        3 => (20, 32),   // Q4_1
        6 => (22, 32),   // Q5_0
        7 => (24, 32),   // Q5_1
        8 => (34, 32),   // Q8_0
        9 => (36, 32),   // Q8_1
        10 => (84, 256), // Q2_K
        11 => (110, 256),
        12 => (144, 256),
        13 => (176, 256),
        14 => (210, 256),
        15 => (292, 256), // Q8_K
        16 => (66, 256),  // IQ2_XXS
        17 => (74, 256),
        18 => (98, 256),
        19 => (50, 256),
        20 => (18, 32), // IQ4_NL
        21 => (110, 256),
        22 => (82, 256),
        23 => (136, 256),
        24 => (1, 1), // I8
        25 => (2, 1),
        26 => (4, 1),
        27 => (8, 1),
        28 => (8, 1), // F64
        29 => (56, 256),
        30 => (2, 1), // BF16
        34 => (54, 256),
        35 => (66, 256),
        _ => return None,
    })
}

/// Most dimensions a ggml tensor has.
const MAX_DIMS: u32 = 4;

/// Read and check the whole layout of the GGUF file at `path`: header, tensor table, and that
/// every tensor's data range lies inside the file (a truncated download or a flipped byte is
/// caught here, before mistral.rs reads it).
pub(crate) fn read_layout(path: &Path) -> Result<GgufLayout, GgufError> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(1 << 16, file);
    read_layout_from(&mut r, file_len)
}

/// [`read_layout`] on any reader; `file_len` is the total length of the file.
pub(crate) fn read_layout_from<R: Read + Seek>(
    r: &mut R,
    file_len: u64,
) -> Result<GgufLayout, GgufError> {
    let truncated = |e: io::Error| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            GgufError::Corrupt(format!(
                "the file ends inside its header ({file_len} bytes): truncated?"
            ))
        } else {
            GgufError::Io(e)
        }
    };
    let header = read_header_from(r).map_err(|e| match e {
        GgufError::Io(e) => truncated(e),
        e => e,
    })?;
    // Each tensor entry takes at least 8 (name length) + 4 + 4 + 8 bytes.
    if header.tensor_count > file_len / 24 {
        return Err(GgufError::Corrupt(format!(
            "{} tensors do not fit in a file of {file_len} bytes",
            header.tensor_count
        )));
    }
    let alignment = match header.get("general.alignment") {
        None => 32,
        Some(MetaValue::Int(a)) if *a > 0 && (*a as u64).is_power_of_two() && *a <= 1 << 20 => {
            *a as u64
        }
        Some(other) => {
            return Err(GgufError::Corrupt(format!(
                "general.alignment is {other:?}, not a power of two"
            )))
        }
    };
    let mut tensors = Vec::with_capacity(header.tensor_count as usize);
    for i in 0..header.tensor_count {
        let name = string(r).map_err(|e| match e {
            GgufError::Io(e) => truncated(e),
            e => e,
        })?;
        let at = |what: String| GgufError::Corrupt(format!("tensor {i} ({name:?}): {what}"));
        let n_dims = u32le(r).map_err(truncated)?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(at(format!("{n_dims} dimensions (1 to {MAX_DIMS} allowed)")));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(u64le(r).map_err(truncated)?);
        }
        let ggml_type = u32le(r).map_err(truncated)?;
        let offset = u64le(r).map_err(truncated)?;
        let (block_bytes, block_elems) = ggml_type_size(ggml_type)
            .ok_or_else(|| at(format!("unknown tensor type {ggml_type}")))?;
        let elems = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n > 0)
            .ok_or_else(|| at(format!("impossible shape {dims:?}")))?;
        if dims[0] % block_elems != 0 {
            return Err(at(format!(
                "first dimension {} is not a multiple of the type's block of {block_elems}",
                dims[0]
            )));
        }
        let bytes = (elems / block_elems)
            .checked_mul(block_bytes)
            .ok_or_else(|| at(format!("impossible shape {dims:?}")))?;
        if offset % alignment != 0 {
            return Err(at(format!(
                "data offset {offset} is not aligned to {alignment} bytes"
            )));
        }
        tensors.push(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            bytes,
        });
    }
    let table_end = r.stream_position()?;
    let data_start = table_end.div_ceil(alignment) * alignment;
    for (i, t) in tensors.iter().enumerate() {
        let end = data_start
            .checked_add(t.offset)
            .and_then(|s| s.checked_add(t.bytes));
        match end {
            Some(end) if end <= file_len => {}
            _ => {
                return Err(GgufError::Corrupt(format!(
                    "tensor {i} ({:?}) needs bytes {}..{} but the file has {file_len}: truncated or corrupt",
                    t.name,
                    data_start.saturating_add(t.offset),
                    data_start.saturating_add(t.offset).saturating_add(t.bytes),
                )))
            }
        }
    }
    Ok(GgufLayout {
        header,
        tensors,
        data_start,
        file_len,
    })
}

/// Check that mistral.rs can run this file, with an error that says why not: the
/// architecture is one it runs, and the tensor table and data are whole.
pub(crate) fn check_supported(path: &Path) -> Result<GgufHeader, String> {
    let layout = read_layout(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let header = layout.header;
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

/// sha256 of a file, remembered in `cache` by the file's path, length and modification
/// time, so that a start after the first reads the hash of a 100+ MB model instead of
/// computing it again (0.4 s of one core, taken from the first answer's prompt on two cores).
///
/// `cache` is a text file of `sha256<TAB>length<TAB>mtime in ns<TAB>path` lines. A missing,
/// unreadable or malformed cache (or line) is ignored: the hash is computed and the cache
/// rewritten whole (`store::write_atomic`: a temporary file and a rename, so a reader never
/// sees half of it). Failing to write it is not an error: the hash is still returned.
pub(crate) fn sha256_remembered(path: &Path, cache: Option<&Path>) -> io::Result<String> {
    let Some(cache) = cache else {
        return sha256_file(path);
    };
    let meta = std::fs::metadata(path)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let key = key.to_string_lossy();
    let (len, mtime) = (meta.len().to_string(), mtime.to_string());
    let text = std::fs::read_to_string(cache).unwrap_or_default();
    let mut kept = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.splitn(4, '\t').collect();
        let [sha, l, m, p] = f[..] else { continue };
        let valid = sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            continue;
        }
        if p == key {
            if l == len && m == mtime {
                return Ok(sha.to_string());
            }
            continue;
        }
        kept.push(line.to_string());
    }
    let sha = sha256_file(path)?;
    // The newest last; at most 64 files remembered.
    kept.push(format!("{sha}\t{len}\t{mtime}\t{key}"));
    let from = kept.len().saturating_sub(64);
    let body = kept[from..].join("\n") + "\n";
    let _ = crate::store::write_atomic(cache, body.as_bytes());
    Ok(sha)
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

/// Arrays of arrays deeper than this are refused (real files nest at most once; a crafted
/// file could otherwise recurse until the stack overflows).
const MAX_ARRAY_NESTING: usize = 4;

fn value<R: Read + Seek>(r: &mut R, ty: u32, depth: usize) -> Result<MetaValue, GgufError> {
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
                        .and_then(|b| i64::try_from(b).ok())
                        .ok_or_else(|| GgufError::Corrupt("array too large".into()))?;
                    r.seek(SeekFrom::Current(bytes))?;
                }
                None => {
                    if depth >= MAX_ARRAY_NESTING {
                        return Err(GgufError::Corrupt("arrays nested too deeply".into()));
                    }
                    for _ in 0..len {
                        value(r, item, depth + 1)?;
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

/// Small GGUF files built in memory: test inputs and the fuzz targets' seeds
/// (`promptloom bench --fuzz` runs them, so they are not test-only).
pub(crate) mod samples {
    use super::ggml_type_size;

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

    /// A whole GGUF file: [`tiny_gguf`]'s header with `tensors` (name, dims, type) in its
    /// table and their data (filled with a pattern) after it, aligned as ggml aligns.
    pub(crate) fn gguf_with_tensors(arch: &str, tensors: &[(&str, &[u64], u32)]) -> Vec<u8> {
        let mut b = tiny_gguf(arch);
        b[8..16].copy_from_slice(&(tensors.len() as u64).to_le_bytes());
        let mut offset = 0u64;
        let mut sizes = Vec::new();
        for (name, dims, ty) in tensors {
            b.extend_from_slice(&(name.len() as u64).to_le_bytes());
            b.extend_from_slice(name.as_bytes());
            b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in *dims {
                b.extend_from_slice(&d.to_le_bytes());
            }
            b.extend_from_slice(&ty.to_le_bytes());
            b.extend_from_slice(&offset.to_le_bytes());
            let (bb, be) = ggml_type_size(*ty).unwrap_or((1, 1));
            let bytes = dims.iter().product::<u64>() / be * bb;
            sizes.push(bytes);
            offset += bytes.div_ceil(32) * 32;
        }
        while !b.len().is_multiple_of(32) {
            b.push(0);
        }
        for (i, bytes) in sizes.iter().enumerate() {
            let start = b.len();
            b.extend((0..*bytes).map(|j| (j as u8).wrapping_mul(31).wrapping_add(i as u8)));
            while !(b.len() - start).is_multiple_of(32) {
                b.push(0);
            }
        }
        b
    }

    /// Three tensors, about 40 KB: big enough to cut at 1 KB and at half.
    pub(crate) fn sample_model() -> Vec<u8> {
        gguf_with_tensors(
            "llama",
            &[
                ("token_embd.weight", &[64, 128], 8),
                ("output_norm.weight", &[64], 0),
                ("blk.0.attn_q.weight", &[64, 64, 2], 1),
            ],
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Cursor;

    pub(crate) use super::samples::{sample_model, tiny_gguf};

    fn layout(bytes: &[u8]) -> Result<GgufLayout, GgufError> {
        read_layout_from(&mut Cursor::new(bytes), bytes.len() as u64)
    }

    #[test]
    fn a_whole_file_has_every_tensor_inside_it() {
        let b = sample_model();
        let l = layout(&b).unwrap();
        assert_eq!(l.tensors.len(), 3);
        assert_eq!(l.tensors[0].bytes, 64 * 128 / 32 * 34);
        assert_eq!(l.tensors[2].dims, [64, 64, 2]);
        assert_eq!(l.data_start % 32, 0);
        assert!(l.data_start + l.data_bytes() <= b.len() as u64);
    }

    #[test]
    fn truncated_and_corrupted_files_are_clear_errors() {
        let b = sample_model();
        let cut_1k = layout(&b[..1024]).unwrap_err().to_string();
        assert!(
            cut_1k.contains("needs bytes") && cut_1k.contains("truncated"),
            "{cut_1k}"
        );
        let half = layout(&b[..b.len() / 2]).unwrap_err().to_string();
        assert!(half.contains("truncated or corrupt"), "{half}");
        let in_header = layout(&b[..60]).unwrap_err().to_string();
        assert!(in_header.contains("ends inside its header"), "{in_header}");
        // A flipped byte in the first tensor's first dimension (right after its name and
        // dimension count) makes it far larger than the file.
        let name = b"token_embd.weight";
        let at = b.windows(name.len()).position(|w| w == name).unwrap() + name.len() + 4;
        let mut flipped = b.clone();
        flipped[at + 1] ^= 0x40;
        let e = layout(&flipped).unwrap_err().to_string();
        assert!(e.contains("tensor 0 (\"token_embd.weight\")"), "{e}");
        // ... in its type: an unknown type.
        let mut flipped = b.clone();
        flipped[at + 16] ^= 0x80;
        let e = layout(&flipped).unwrap_err().to_string();
        assert!(e.contains("unknown tensor type"), "{e}");
        // ... in the dimension count.
        let mut flipped = b.clone();
        flipped[at - 4] ^= 0x10;
        let e = layout(&flipped).unwrap_err().to_string();
        assert!(e.contains("dimensions (1 to 4 allowed)"), "{e}");
    }

    #[test]
    fn a_remembered_hash_is_read_back_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (model, cache) = (dir.path().join("m.gguf"), dir.path().join("c/hashes.tsv"));
        std::fs::write(&model, b"one").unwrap();
        let first = sha256_remembered(&model, Some(&cache)).unwrap();
        assert_eq!(first, sha256_file(&model).unwrap());
        let text = std::fs::read_to_string(&cache).unwrap();
        assert!(text.starts_with(&format!("{first}\t3\t")), "{text:?}");
        // Read back, not computed: a hash planted for the same path, length and time is
        // what comes back, and a malformed line beside it is skipped.
        let planted = "ab".repeat(32);
        let text = format!("garbage\tline\n{}", text.replacen(&first, &planted, 1));
        std::fs::write(&cache, text).unwrap();
        assert_eq!(sha256_remembered(&model, Some(&cache)).unwrap(), planted);
        // Another length (and time): computed again, and the entry replaced.
        std::fs::write(&model, b"three").unwrap();
        let again = sha256_remembered(&model, Some(&cache)).unwrap();
        assert_eq!(again, sha256_file(&model).unwrap());
        let text = std::fs::read_to_string(&cache).unwrap();
        assert_eq!(text.lines().count(), 1, "{text:?}");
        assert!(text.starts_with(&format!("{again}\t5\t")), "{text:?}");
        // An unwritable cache still gives the hash; no cache computes it.
        let blocked = dir.path().join("m.gguf/x.tsv");
        assert_eq!(sha256_remembered(&model, Some(&blocked)).unwrap(), again);
        assert_eq!(sha256_remembered(&model, None).unwrap(), again);
    }

    #[test]
    fn check_supported_reports_a_truncated_file_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gguf");
        let b = sample_model();
        std::fs::write(&p, &b[..b.len() / 2]).unwrap();
        let e = check_supported(&p).unwrap_err();
        assert!(
            e.starts_with(&format!("{}: corrupt GGUF header: tensor", p.display())),
            "{e}"
        );
        std::fs::write(&p, &b).unwrap();
        assert!(check_supported(&p).is_ok());
    }

    #[test]
    fn deeply_nested_arrays_are_refused_not_a_stack_overflow() {
        let mut b = Vec::new();
        b.extend_from_slice(b"GGUF");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        b.push(b'k');
        b.extend_from_slice(&9u32.to_le_bytes());
        for _ in 0..100_000 {
            b.extend_from_slice(&9u32.to_le_bytes());
            b.extend_from_slice(&1u64.to_le_bytes());
        }
        let e = read_header_from(&mut Cursor::new(b))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nested too deeply"), "{e}");
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
