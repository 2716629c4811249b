//! LoRA adapters on a local GGUF model ("adapters as models").
//!
//! A model in the config may name LoRA adapters beside its GGUF file (`lora = ["DIR"]`), each
//! a directory in PEFT's layout (`adapter_config.json` + `adapter_model.safetensors`, as
//! `save_pretrained` writes them). mistral.rs 0.8.1 applies them to a GGUF base with its GGUF
//! LoRA loader (`GgufLoraModelBuilder`): at load time it adds each adapter's
//! `alpha / r · B·A` to the base weights and quantizes them again (vendor/ patch 9: 0.8.1
//! dropped the merged weights, so an adapter changed nothing).
//!
//! That loader panics on what it does not expect (a missing tensor, a tensor name without
//! `.lora`) and silently ignores what it can't apply (DoRA, rsLoRA scaling, bias, `fan_in_fan_out`,
//! saved modules, per-layer ranks). So every adapter is checked here first against the base
//! file's tensor table, and each problem is an error naming the file and what is wrong.
//!
//! mistral.rs finds adapter files in one folder through an "ordering" that names each adapter
//! by a substring of its file names. The checked bytes are written into a fresh folder as
//! `a0__adapter_config.json` (a normalised config: rank, alpha, dropout, target modules) and
//! `a0__adapter_model.safetensors` (the very bytes that were hashed), so what loads is what the
//! session records.

// The checks run everywhere (and are tested without the engine); only loading needs it.
#![cfg_attr(not(feature = "local"), allow(dead_code))]
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::chat::AdapterIdentity;

/// The file names of an adapter in PEFT's layout.
pub(crate) const CONFIG_FILE: &str = "adapter_config.json";
pub(crate) const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// The modules mistral.rs 0.8.1 applies a LoRA to in a GGUF llama model: PEFT's name, the
/// submodule it sits in, and the GGUF tensor (`blk.N.{tensor}.weight`).
const MODULES: &[(&str, &str, &str)] = &[
    ("q_proj", "self_attn", "attn_q"),
    ("k_proj", "self_attn", "attn_k"),
    ("v_proj", "self_attn", "attn_v"),
    ("o_proj", "self_attn", "attn_output"),
    ("gate_proj", "mlp", "ffn_gate"),
    ("up_proj", "mlp", "ffn_up"),
    ("down_proj", "mlp", "ffn_down"),
];

/// GGUF architectures whose LoRA mistral.rs 0.8.1 loads with the module names above (its phi3
/// adapter model has fused projections, which PEFT names differently).
const ARCHITECTURES: &[&str] = &["llama", "mistral3"];

fn module_names() -> String {
    MODULES.iter().map(|m| m.0).collect::<Vec<_>>().join(", ")
}

/// What the adapters are checked against: the base file's projection shapes.
#[derive(Debug, Clone)]
pub(crate) struct BaseShapes {
    path: PathBuf,
    layers: usize,
    /// `blk.N.attn_q.weight` → (in, out) features.
    dims: BTreeMap<String, (usize, usize)>,
}

impl BaseShapes {
    /// Read from the GGUF file's tensor table (no weights are read).
    pub fn read(path: &Path) -> Result<BaseShapes, String> {
        let layout =
            super::gguf::read_layout(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let arch = layout
            .header
            .architecture()
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if !ARCHITECTURES.contains(&arch.as_str()) {
            return Err(format!(
                "{}: LoRA adapters need a base of architecture {} (mistral.rs 0.8.1's GGUF LoRA loader), this one is {arch:?}",
                path.display(),
                ARCHITECTURES.join(" or ")
            ));
        }
        let mut dims = BTreeMap::new();
        let mut layers = 0;
        for t in &layout.tensors {
            let Some(rest) = t.name.strip_prefix("blk.") else {
                continue;
            };
            let Some((n, _)) = rest.split_once('.') else {
                continue;
            };
            let Ok(n) = n.parse::<usize>() else { continue };
            layers = layers.max(n + 1);
            // GGUF lists dimensions innermost first: (in, out) for a projection.
            if let [i, o] = t.dims[..] {
                dims.insert(t.name.clone(), (i as usize, o as usize));
            }
        }
        Ok(BaseShapes {
            path: path.to_path_buf(),
            layers,
            dims,
        })
    }
}

/// `adapter_config.json` as PEFT writes it: the fields that change what the adapter computes.
/// Other fields (task type, revision, …) are ignored.
#[derive(Debug, Deserialize)]
struct PeftConfig {
    #[serde(default)]
    peft_type: Option<String>,
    r: usize,
    lora_alpha: f64,
    #[serde(default)]
    lora_dropout: Option<f64>,
    target_modules: Option<TargetModules>,
    #[serde(default)]
    use_dora: bool,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    fan_in_fan_out: bool,
    #[serde(default)]
    bias: Option<String>,
    #[serde(default)]
    modules_to_save: Option<Vec<String>>,
    #[serde(default)]
    rank_pattern: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    alpha_pattern: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    layers_to_transform: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TargetModules {
    List(Vec<String>),
    Pattern(String),
}

/// An adapter that passed every check, ready to stage.
#[derive(Debug)]
pub(crate) struct Adapter {
    pub identity: AdapterIdentity,
    pub rank: usize,
    /// What B·A is multiplied by: lora_alpha / r (rsLoRA: lora_alpha / √r).
    pub scale: f64,
    targets: BTreeSet<String>,
    /// The config mistral.rs reads (normalised; see the module docs).
    staged_config: String,
    weights: Vec<u8>,
    config_path: PathBuf,
}

/// Read and check the adapter in `dir` against `base`.
pub(crate) fn read_adapter(dir: &Path, base: &BaseShapes) -> Result<Adapter, String> {
    if dir.is_file() {
        return Err(format!(
            "LoRA adapter {}: is a file; name the directory that holds {CONFIG_FILE} and {WEIGHTS_FILE}",
            dir.display()
        ));
    }
    if !dir.is_dir() {
        return Err(format!(
            "LoRA adapter {}: no such directory (it should hold {CONFIG_FILE} and {WEIGHTS_FILE}, as PEFT's save_pretrained writes them)",
            dir.display()
        ));
    }
    let config_path = dir.join(CONFIG_FILE);
    let weights_path = dir.join(WEIGHTS_FILE);
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| format!("{}: {e}", config_path.display()))?;
    let config: PeftConfig = serde_json::from_str(&text)
        .map_err(|e| format!("{}:{}:{}: {e}", config_path.display(), e.line(), e.column()))?;
    let (targets, scale) =
        check_config(&config).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let weights = match std::fs::read(&weights_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bin = dir.join("adapter_model.bin");
            let hint = if bin.is_file() {
                format!(
                    "; {} is PyTorch pickle, which mistral.rs does not load for GGUF LoRA: save the adapter with safe_serialization=True",
                    bin.display()
                )
            } else {
                String::new()
            };
            return Err(format!("{}: not found{hint}", weights_path.display()));
        }
        Err(e) => return Err(format!("{}: {e}", weights_path.display())),
    };
    check_weights(&weights, &targets, config.r, base)
        .map_err(|e| format!("{}: {e}", weights_path.display()))?;
    let sha256 = |b: &[u8]| {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(b))
    };
    // mistral.rs computes the scale as lora_alpha / r; an rsLoRA adapter's is alpha / √r.
    let alpha_for_engine = scale * config.r as f64;
    let staged_config = serde_json::json!({
        "r": config.r,
        "lora_alpha": alpha_for_engine,
        "lora_dropout": config.lora_dropout,
        "target_modules": targets.iter().collect::<Vec<_>>(),
    })
    .to_string();
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    Ok(Adapter {
        identity: AdapterIdentity {
            name,
            file: weights_path.display().to_string(),
            sha256: Some(sha256(&weights)),
            config_sha256: Some(sha256(text.as_bytes())),
        },
        rank: config.r,
        scale,
        targets,
        staged_config,
        weights,
        config_path,
    })
}

/// The modules a config targets and its scale, or what in it mistral.rs can't apply.
fn check_config(c: &PeftConfig) -> Result<(BTreeSet<String>, f64), String> {
    if let Some(t) = c
        .peft_type
        .as_deref()
        .filter(|t| !t.eq_ignore_ascii_case("LORA"))
    {
        return Err(format!("peft_type is {t:?}; only LoRA adapters load"));
    }
    if c.r == 0 {
        return Err("r = 0: a LoRA adapter needs a rank of at least 1".into());
    }
    if !c.lora_alpha.is_finite() {
        return Err(format!("lora_alpha = {} is not a number", c.lora_alpha));
    }
    let unsupported = [
        (c.use_dora, "use_dora = true (DoRA)"),
        (c.fan_in_fan_out, "fan_in_fan_out = true"),
        (
            c.bias.as_deref().is_some_and(|b| b != "none"),
            "bias other than \"none\" (trained biases)",
        ),
        (
            c.modules_to_save.as_ref().is_some_and(|m| !m.is_empty()),
            "modules_to_save (fully trained modules)",
        ),
        (
            c.rank_pattern.as_ref().is_some_and(|m| !m.is_empty()),
            "rank_pattern (per-layer ranks)",
        ),
        (
            c.alpha_pattern.as_ref().is_some_and(|m| !m.is_empty()),
            "alpha_pattern (per-layer alphas)",
        ),
        (
            c.layers_to_transform.as_ref().is_some_and(|v| !v.is_null()),
            "layers_to_transform (an adapter on some layers only)",
        ),
    ];
    if let Some((_, what)) = unsupported.iter().find(|(on, _)| *on) {
        return Err(format!(
            "{what} is not supported: mistral.rs 0.8.1 merges plain LoRA (B·A scaled by lora_alpha / r) into every layer of the target modules"
        ));
    }
    let targets = match &c.target_modules {
        Some(TargetModules::List(l)) if !l.is_empty() => l,
        Some(TargetModules::Pattern(p)) => {
            return Err(format!(
                "target_modules is the pattern {p:?}; list the module names (any of {})",
                module_names()
            ))
        }
        _ => {
            return Err(format!(
                "target_modules is empty; list the module names (any of {})",
                module_names()
            ))
        }
    };
    let mut set = BTreeSet::new();
    for t in targets {
        if !MODULES.iter().any(|m| m.0 == t) {
            return Err(format!(
                "target module {t:?} is not supported: mistral.rs 0.8.1 applies a LoRA on a GGUF model to {} only",
                module_names()
            ));
        }
        set.insert(t.clone());
    }
    let scale = if c.use_rslora {
        c.lora_alpha / (c.r as f64).sqrt()
    } else {
        c.lora_alpha / c.r as f64
    };
    Ok((set, scale))
}

/// Every tensor is an A or B matrix of a targeted module with the base's shapes, and every
/// layer of every targeted module has both (mistral.rs panics on a missing one).
fn check_weights(
    bytes: &[u8],
    targets: &BTreeSet<String>,
    rank: usize,
    base: &BaseShapes,
) -> Result<(), String> {
    use safetensors::{Dtype, SafeTensors};
    let st = SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file: {e}"))?;
    let mut seen = BTreeSet::new();
    let mut names: Vec<(&str, safetensors::tensor::TensorView<'_>)> = st.iter().collect();
    names.sort_by(|a, b| a.0.cmp(b.0));
    for (name, view) in names {
        let parsed = parse_tensor_name(name).ok_or_else(|| {
            format!(
                "tensor {name:?} is not a LoRA matrix of a supported module (expected base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight and the like, for {})",
                module_names()
            )
        })?;
        let (layer, module, gguf_tensor, is_a) = parsed;
        if !targets.contains(module) {
            return Err(format!(
                "tensor {name:?} is for {module}, which target_modules in {CONFIG_FILE} does not list (mistral.rs would ignore it)"
            ));
        }
        if layer >= base.layers {
            return Err(format!(
                "tensor {name:?} is for layer {layer}, but the base {} has {} layers",
                base.path.display(),
                base.layers
            ));
        }
        if !matches!(view.dtype(), Dtype::F32 | Dtype::F16 | Dtype::BF16) {
            return Err(format!(
                "tensor {name:?} is {:?}; LoRA matrices load as F32, F16 or BF16",
                view.dtype()
            ));
        }
        let key = format!("blk.{layer}.{gguf_tensor}.weight");
        let &(inf, outf) = base.dims.get(&key).ok_or_else(|| {
            format!(
                "tensor {name:?}: the base {} has no 2-D tensor {key}",
                base.path.display()
            )
        })?;
        let (want, which) = if is_a {
            ([rank, inf], "lora_A is (r, in_features)")
        } else {
            ([outf, rank], "lora_B is (out_features, r)")
        };
        if view.shape() != want {
            return Err(format!(
                "tensor {name:?} has shape {:?}, expected {want:?} ({which}: r = {rank} from {CONFIG_FILE}, and {key} of {} is {inf} -> {outf})",
                view.shape(),
                base.path.display()
            ));
        }
        seen.insert((layer, module, is_a));
    }
    for layer in 0..base.layers {
        for module in targets {
            for (is_a, m) in [(true, "lora_A"), (false, "lora_B")] {
                if !seen.contains(&(layer, module.as_str(), is_a)) {
                    let group = MODULES
                        .iter()
                        .find(|x| x.0 == module)
                        .map_or("self_attn", |x| x.1);
                    return Err(format!(
                        "no tensor base_model.model.model.layers.{layer}.{group}.{module}.{m}.weight: every layer of every target module needs both LoRA matrices"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `base_model.model.model.layers.{N}.{self_attn|mlp}.{module}.lora_{A|B}.weight` →
/// (N, module, GGUF tensor, is A).
fn parse_tensor_name(name: &str) -> Option<(usize, &'static str, &'static str, bool)> {
    let rest = name.strip_prefix("base_model.model.model.layers.")?;
    let parts: Vec<&str> = rest.split('.').collect();
    let [layer, group, module, ab, "weight"] = parts[..] else {
        return None;
    };
    let layer = layer.parse().ok()?;
    let &(m, g, t) = MODULES.iter().find(|x| x.0 == module)?;
    if g != group {
        return None;
    }
    let is_a = match ab {
        "lora_A" => true,
        "lora_B" => false,
        _ => return None,
    };
    Some((layer, m, t, is_a))
}

/// Read and check every adapter of one model against its base.
pub(crate) fn read_adapters(base: &Path, dirs: &[PathBuf]) -> Result<Vec<Adapter>, String> {
    let shapes = BaseShapes::read(base)?;
    let adapters = dirs
        .iter()
        .map(|d| read_adapter(d, &shapes))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(first) = adapters.first() {
        for a in &adapters[1..] {
            if a.targets != first.targets {
                return Err(format!(
                    "{}: target_modules {:?} differ from {:?} in {}; mistral.rs 0.8.1 puts several adapters on one base only when they target the same modules",
                    a.config_path.display(),
                    a.targets,
                    first.targets,
                    first.config_path.display()
                ));
            }
        }
    }
    Ok(adapters)
}

/// The checked adapters written where mistral.rs reads them; removed on drop.
pub(crate) struct Staged {
    dir: tempfile::TempDir,
    names: Vec<String>,
}

impl Staged {
    /// The folder (mistral.rs's adapter "model id", and the ordering's base model id).
    pub fn dir(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// The adapter names of the ordering: `a0__`, `a1__`, … (a name is matched as a
    /// substring of file names, so each ends with `__`: `a1__` is not inside `a10__…`).
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

pub(crate) fn stage(adapters: &[Adapter]) -> Result<Staged, String> {
    let dir = tempfile::Builder::new()
        .prefix("promptloom-lora-")
        .tempdir()
        .map_err(|e| format!("cannot make a folder for the LoRA adapters: {e}"))?;
    let mut names = Vec::new();
    for (i, a) in adapters.iter().enumerate() {
        let name = format!("a{i}__");
        let write = |file: &str, bytes: &[u8]| {
            let p = dir.path().join(format!("{name}{file}"));
            std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))
        };
        write(CONFIG_FILE, a.staged_config.as_bytes())?;
        write(WEIGHTS_FILE, &a.weights)?;
        names.push(name);
    }
    Ok(Staged { dir, names })
}

/// The identity of configured adapters before they are read (no hash yet).
pub(crate) fn configured(dirs: &[PathBuf]) -> Vec<AdapterIdentity> {
    dirs.iter()
        .map(|d| AdapterIdentity {
            name: d
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| d.display().to_string()),
            file: d.join(WEIGHTS_FILE).display().to_string(),
            ..Default::default()
        })
        .collect()
}

/// A mistral.rs model of `builder`'s GGUF with the staged adapters merged in.
#[cfg(feature = "local")]
pub(crate) fn builder(
    builder: mistralrs::GgufModelBuilder,
    staged: &Staged,
) -> mistralrs::GgufLoraModelBuilder {
    let ordering = mistralrs_core::Ordering {
        adapters: Some(staged.names().to_vec()),
        layers: None,
        // The tokenizer and chat template are looked for here first: the staged folder has
        // neither, so they come from the GGUF file as for the base model alone.
        base_model_id: staged.dir(),
        preload_adapters: None,
    };
    mistralrs::GgufLoraModelBuilder::from_gguf_model_builder(builder, staged.dir(), ordering)
}

/// Load the GGUF model of `base` (a builder for the file at `path`) with the adapters in
/// `dirs` merged in: check them against the file, stage them, build. Returns the model and
/// the adapters' identities.
#[cfg(feature = "local")]
pub(crate) async fn load(
    path: &Path,
    base: mistralrs::GgufModelBuilder,
    dirs: &[PathBuf],
) -> Result<(mistralrs::Model, Vec<AdapterIdentity>), String> {
    let started = std::time::Instant::now();
    let (p, d) = (path.to_path_buf(), dirs.to_vec());
    let (staged, identities, ranks) = tokio::task::spawn_blocking(move || {
        let adapters = read_adapters(&p, &d)?;
        let staged = stage(&adapters)?;
        let ranks: Vec<(usize, f64)> = adapters.iter().map(|a| (a.rank, a.scale)).collect();
        Ok::<_, String>((
            staged,
            adapters.into_iter().map(|a| a.identity).collect::<Vec<_>>(),
            ranks,
        ))
    })
    .await
    .map_err(|e| format!("checking the LoRA adapters crashed: {e}"))??;
    let checked = started.elapsed();
    let names = identities
        .iter()
        .map(|a| a.name.as_str())
        .collect::<Vec<_>>()
        .join(" + ");
    let shapes = ranks
        .iter()
        .map(|(r, s)| format!("r {r}, scale {s}"))
        .collect::<Vec<_>>()
        .join("; ");
    let b = builder(base, &staged);
    // build() runs in its own task so a panic inside mistral.rs becomes an error here.
    let model = tokio::spawn(async move { b.build().await })
        .await
        .map_err(|e| {
            format!(
                "loading {} with LoRA {names} crashed inside mistral.rs: {e}",
                path.display()
            )
        })?
        .map_err(|e| format!("cannot load {} with LoRA {names}: {e:#}", path.display()))?;
    drop(staged);
    tracing::info!(
        "loaded {} with LoRA {names} ({shapes}) in {:?} (adapters checked and staged in {checked:?})",
        path.display(),
        started.elapsed()
    );
    Ok((model, identities))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A llama GGUF with `layers` layers of SmolLM2-like shapes scaled down: hidden 64, q/o
    /// 64 → 64, k/v 64 → 32, MLP 64 → 96 → 64.
    pub(crate) fn base_gguf(layers: usize) -> Vec<u8> {
        let mut t: Vec<(String, Vec<u64>)> = Vec::new();
        for l in 0..layers {
            for (name, dims) in [
                ("attn_q", [64, 64]),
                ("attn_k", [64, 32]),
                ("attn_v", [64, 32]),
                ("attn_output", [64, 64]),
                ("ffn_gate", [64, 96]),
                ("ffn_up", [64, 96]),
                ("ffn_down", [96, 64]),
            ] {
                t.push((format!("blk.{l}.{name}.weight"), dims.to_vec()));
            }
        }
        let refs: Vec<(&str, &[u64], u32)> = t
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice(), 0))
            .collect();
        crate::llm::gguf::samples::gguf_with_tensors("llama", &refs)
    }

    /// PEFT's tensors for `modules` on `layers` layers of [`base_gguf`]: (name, shape), B zero.
    pub(crate) fn peft_tensors(
        layers: usize,
        modules: &[&str],
        r: usize,
    ) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for l in 0..layers {
            for m in modules {
                let (_, group, _) = MODULES.iter().find(|x| x.0 == *m).copied().unwrap();
                let (i, o) = match *m {
                    "q_proj" | "o_proj" => (64, 64),
                    "k_proj" | "v_proj" => (64, 32),
                    "gate_proj" | "up_proj" => (64, 96),
                    _ => (96, 64),
                };
                let p = format!("base_model.model.model.layers.{l}.{group}.{m}");
                out.push((format!("{p}.lora_A.weight"), vec![r, i]));
                out.push((format!("{p}.lora_B.weight"), vec![o, r]));
            }
        }
        out
    }

    pub(crate) fn safetensors_bytes(tensors: &[(String, Vec<usize>)]) -> Vec<u8> {
        let data: Vec<Vec<u8>> = tensors
            .iter()
            .map(|(_, s)| vec![0u8; s.iter().product::<usize>() * 4])
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
            .iter()
            .zip(&data)
            .map(|((n, s), d)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                        .unwrap(),
                )
            })
            .collect();
        safetensors::serialize(views, None).unwrap()
    }

    struct Fixture {
        _tmp: tempfile::TempDir,
        base: PathBuf,
        adapter: PathBuf,
    }

    fn fixture(config: &str, tensors: &[(String, Vec<usize>)]) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base.gguf");
        std::fs::write(&base, base_gguf(2)).unwrap();
        let adapter = tmp.path().join("my-adapter");
        std::fs::create_dir(&adapter).unwrap();
        std::fs::write(adapter.join(CONFIG_FILE), config).unwrap();
        std::fs::write(adapter.join(WEIGHTS_FILE), safetensors_bytes(tensors)).unwrap();
        Fixture {
            _tmp: tmp,
            base,
            adapter,
        }
    }

    const QV: &str = r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "lora_dropout": 0.05,
        "target_modules": ["q_proj", "v_proj"], "bias": "none", "task_type": "CAUSAL_LM",
        "modules_to_save": null, "rank_pattern": {}, "alpha_pattern": {}, "use_dora": false,
        "use_rslora": false, "fan_in_fan_out": false, "layers_to_transform": null}"#;

    fn check(f: &Fixture) -> Result<Vec<Adapter>, String> {
        read_adapters(&f.base, std::slice::from_ref(&f.adapter))
    }

    #[test]
    fn a_peft_adapter_passes_and_is_staged_for_the_engine() {
        let f = fixture(QV, &peft_tensors(2, &["q_proj", "v_proj"], 4));
        let adapters = check(&f).unwrap();
        let id = &adapters[0].identity;
        assert_eq!(id.name, "my-adapter");
        assert_eq!(adapters[0].rank, 4);
        assert_eq!(adapters[0].scale, 2.0);
        let bytes = std::fs::read(f.adapter.join(WEIGHTS_FILE)).unwrap();
        let hash = |p: &Path| Some(crate::llm::gguf::sha256_file(p).unwrap());
        assert_eq!(id.sha256, hash(&f.adapter.join(WEIGHTS_FILE)));
        assert_eq!(id.config_sha256, hash(&f.adapter.join(CONFIG_FILE)));
        let staged = stage(&adapters).unwrap();
        let dir = PathBuf::from(staged.dir());
        assert_eq!(staged.names(), ["a0__"]);
        assert_eq!(
            std::fs::read(dir.join("a0__adapter_model.safetensors")).unwrap(),
            bytes
        );
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("a0__adapter_config.json")).unwrap())
                .unwrap();
        assert_eq!(cfg["r"], 4);
        assert_eq!(cfg["lora_alpha"], 8.0);
        assert_eq!(
            cfg["target_modules"],
            serde_json::json!(["q_proj", "v_proj"])
        );
        drop(staged);
        assert!(!dir.exists(), "the staged folder is removed");
    }

    #[test]
    fn rslora_is_staged_with_the_alpha_that_gives_its_scale() {
        let f = fixture(
            &QV.replace(r#""use_rslora": false"#, r#""use_rslora": true"#)
                .replace(r#""r": 4"#, r#""r": 16"#),
            &peft_tensors(2, &["q_proj", "v_proj"], 16),
        );
        let a = check(&f).unwrap();
        // rsLoRA scales by alpha / sqrt(r) = 8 / 4; mistral.rs by alpha' / r, so alpha' = 32.
        assert_eq!(a[0].scale, 2.0);
        let cfg: serde_json::Value = serde_json::from_str(&a[0].staged_config).unwrap();
        assert_eq!(cfg["lora_alpha"], 32.0);
    }

    fn err(config: &str, tensors: &[(String, Vec<usize>)]) -> String {
        let f = fixture(config, tensors);
        match check(&f) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_wrong_shape_names_the_file_the_tensor_and_both_shapes() {
        let mut t = peft_tensors(2, &["q_proj", "v_proj"], 4);
        t[3].1 = vec![64, 4]; // v_proj B of layer 0: v is 64 -> 32
        let e = err(QV, &t);
        assert!(e.contains("my-adapter/adapter_model.safetensors"), "{e}");
        assert!(e.contains("layers.0.self_attn.v_proj.lora_B.weight"), "{e}");
        assert!(e.contains("[64, 4]") && e.contains("[32, 4]"), "{e}");
        // A rank that differs from the config's r.
        let e = err(QV, &peft_tensors(2, &["q_proj", "v_proj"], 8));
        assert!(e.contains("expected [4, 64]"), "{e}");
    }

    #[test]
    fn missing_and_extra_tensors_are_errors() {
        let mut t = peft_tensors(2, &["q_proj", "v_proj"], 4);
        t.pop();
        let e = err(QV, &t);
        assert!(
            e.contains("no tensor base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"),
            "{e}"
        );
        let e = err(QV, &peft_tensors(2, &["q_proj", "v_proj", "k_proj"], 4));
        assert!(e.contains("k_proj, which target_modules"), "{e}");
        let e = err(QV, &peft_tensors(3, &["q_proj", "v_proj"], 4));
        assert!(e.contains("layer 2") && e.contains("has 2 layers"), "{e}");
        let mut t = peft_tensors(2, &["q_proj", "v_proj"], 4);
        t.push(("base_model.model.lm_head.weight".into(), vec![10, 64]));
        let e = err(QV, &t);
        assert!(
            e.contains("lm_head.weight") && e.contains("not a LoRA matrix"),
            "{e}"
        );
    }

    #[test]
    fn what_mistral_rs_cannot_apply_is_refused_by_name() {
        let t = peft_tensors(2, &["q_proj", "v_proj"], 4);
        for (from, to, says) in [
            (r#""use_dora": false"#, r#""use_dora": true"#, "DoRA"),
            (r#""bias": "none""#, r#""bias": "all""#, "bias"),
            (
                r#""modules_to_save": null"#,
                r#""modules_to_save": ["lm_head"]"#,
                "modules_to_save",
            ),
            (
                r#""rank_pattern": {}"#,
                r#""rank_pattern": {"q_proj": 8}"#,
                "rank_pattern",
            ),
            (
                r#""layers_to_transform": null"#,
                r#""layers_to_transform": [0]"#,
                "layers_to_transform",
            ),
            (
                r#""fan_in_fan_out": false"#,
                r#""fan_in_fan_out": true"#,
                "fan_in_fan_out",
            ),
            (
                r#"["q_proj", "v_proj"]"#,
                r#"["q_proj", "embed_tokens"]"#,
                "\"embed_tokens\" is not supported",
            ),
            (
                r#"["q_proj", "v_proj"]"#,
                r#""all-linear""#,
                "pattern \"all-linear\"",
            ),
            (
                r#""peft_type": "LORA""#,
                r#""peft_type": "IA3""#,
                "only LoRA",
            ),
        ] {
            let config = QV.replace(from, to);
            assert_ne!(config, QV, "{from}");
            let e = err(&config, &t);
            assert!(
                e.contains("my-adapter/adapter_config.json") && e.contains(says),
                "{says}: {e}"
            );
        }
        let e = err("{\"r\": 4,\n \"lora_alpha\": }", &t);
        assert!(e.contains("adapter_config.json:2:"), "{e}");
    }

    #[test]
    fn missing_files_and_bad_bases_name_the_path() {
        let f = fixture(QV, &peft_tensors(2, &["q_proj", "v_proj"], 4));
        std::fs::remove_file(f.adapter.join(WEIGHTS_FILE)).unwrap();
        std::fs::write(f.adapter.join("adapter_model.bin"), b"pickle").unwrap();
        let e = check(&f).err().unwrap();
        assert!(
            e.contains("adapter_model.safetensors: not found")
                && e.contains("safe_serialization=True"),
            "{e}"
        );
        std::fs::write(f.adapter.join(WEIGHTS_FILE), b"\x08\0\0\0\0\0\0\0{}").unwrap();
        let e = check(&f).err().unwrap();
        assert!(
            e.contains("adapter_model.safetensors: not a safetensors file"),
            "{e}"
        );
        let e = read_adapters(&f.base, &[f.adapter.join("nope")])
            .err()
            .unwrap();
        assert!(e.contains("my-adapter/nope: no such directory"), "{e}");
        let e = read_adapters(&f.base, &[f.adapter.join(CONFIG_FILE)])
            .err()
            .unwrap();
        assert!(e.contains("is a file"), "{e}");
        let phi = f.base.with_file_name("phi.gguf");
        std::fs::write(&phi, crate::llm::gguf::samples::tiny_gguf("phi3")).unwrap();
        let e = read_adapters(&phi, std::slice::from_ref(&f.adapter))
            .err()
            .unwrap();
        assert!(e.contains("phi.gguf") && e.contains("\"phi3\""), "{e}");
    }

    #[test]
    fn several_adapters_must_target_the_same_modules() {
        let f = fixture(QV, &peft_tensors(2, &["q_proj", "v_proj"], 4));
        let other = f.adapter.with_file_name("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(
            other.join(CONFIG_FILE),
            QV.replace(r#"["q_proj", "v_proj"]"#, r#"["q_proj"]"#),
        )
        .unwrap();
        std::fs::write(
            other.join(WEIGHTS_FILE),
            safetensors_bytes(&peft_tensors(2, &["q_proj"], 4)),
        )
        .unwrap();
        let e = read_adapters(&f.base, &[f.adapter.clone(), other.clone()])
            .err()
            .unwrap();
        assert!(
            e.contains("other/adapter_config.json") && e.contains("same modules"),
            "{e}"
        );
        std::fs::write(other.join(CONFIG_FILE), QV).unwrap();
        std::fs::write(
            other.join(WEIGHTS_FILE),
            safetensors_bytes(&peft_tensors(2, &["q_proj", "v_proj"], 4)),
        )
        .unwrap();
        let staged = stage(&read_adapters(&f.base, &[f.adapter.clone(), other]).unwrap()).unwrap();
        assert_eq!(staged.names(), ["a0__", "a1__"]);
    }

    #[test]
    fn ordering_names_never_match_each_others_files() {
        let names: Vec<String> = (0..12).map(|i| format!("a{i}__")).collect();
        for a in &names {
            for b in &names {
                let file = format!("{b}{WEIGHTS_FILE}");
                assert_eq!(file.contains(a.as_str()), a == b, "{a} in {file}");
            }
        }
    }
}
