//! Backends by configured model name, built on first use and shared after that (a local
//! model is loaded once however many variants use it).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::scripted::{Script, ScriptedBackend};
use super::{Backend, BackendStatus, ModelIdentity};
use crate::config::{BackendKind, Config};

/// Builds and caches one backend per configured model name.
pub(crate) struct BackendRegistry {
    config: Config,
    built: Mutex<BTreeMap<String, Arc<dyn Backend>>>,
}

impl BackendRegistry {
    pub fn new(config: Config) -> Self {
        BackendRegistry {
            config,
            built: Mutex::new(BTreeMap::new()),
        }
    }

    /// The backend for model `name`, building it if needed.
    pub fn get(&self, name: &str) -> Result<Arc<dyn Backend>, String> {
        let mut built = self
            .built
            .lock()
            .map_err(|_| "backend registry poisoned".to_string())?;
        if let Some(b) = built.get(name) {
            return Ok(b.clone());
        }
        let mut b = self.build(name)?;
        // A remote model with a tokenizer configured counts what its server leaves out.
        if let Some(m) = self.config.model(name) {
            let remote = !matches!(m.backend, BackendKind::Local | BackendKind::Scripted);
            if let Some(path) = self.config.tokenizer_path(m).filter(|_| remote) {
                let tokenizer = super::counted::load_tokenizer(&path)
                    .map_err(|e| format!("model {name:?}: {e}"))?;
                b = Arc::new(super::counted::CountingBackend::new(b, tokenizer));
            }
        }
        let cap = self
            .config
            .model(name)
            .and_then(|m| m.max_answer_bytes)
            .unwrap_or(self.config.max_answer_bytes);
        let b: Arc<dyn Backend> = Arc::new(super::capped::CappedBackend::new(b, cap));
        built.insert(name.to_string(), b.clone());
        Ok(b)
    }

    /// Identity of every backend built so far, for the session file.
    pub fn identities(&self) -> BTreeMap<String, ModelIdentity> {
        self.built
            .lock()
            .map(|b| b.iter().map(|(k, v)| (k.clone(), v.identity())).collect())
            .unwrap_or_default()
    }

    /// The configured price of every model built so far (local and scripted ones cost 0
    /// unless set; remote ones without a price are left out), for the session file.
    pub fn prices(&self) -> BTreeMap<String, crate::price::Price> {
        let all = self.config.prices();
        self.built
            .lock()
            .map(|b| {
                b.keys()
                    .filter_map(|k| all.get(k).map(|p| (k.clone(), p)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Load state of every backend built so far.
    pub fn statuses(&self) -> BTreeMap<String, BackendStatus> {
        self.built
            .lock()
            .map(|b| b.iter().map(|(k, v)| (k.clone(), v.status())).collect())
            .unwrap_or_default()
    }

    fn build(&self, name: &str) -> Result<Arc<dyn Backend>, String> {
        let m = self.config.model(name).ok_or_else(|| {
            format!(
                "unknown model {name:?}; configured: {}",
                self.config.model_names().join(", ")
            )
        })?;
        match m.backend {
            BackendKind::Scripted => Ok(Arc::new(ScriptedBackend::new(Script::from_config(m)))),
            BackendKind::Local => self.build_local(name, m),
            BackendKind::Openai => Ok(Arc::new(super::openai::OpenAiBackend::new(
                super::http::Remote::from_config(name, "openai", m)?,
            ))),
            BackendKind::Anthropic => Ok(Arc::new(super::anthropic::AnthropicBackend::new(
                super::http::Remote::from_config(name, "anthropic", m)?,
            ))),
            BackendKind::Ollama => Ok(Arc::new(super::ollama::OllamaBackend::new(
                super::http::Remote::from_config(name, "ollama", m)?,
            ))),
        }
    }

    #[cfg(feature = "local")]
    fn build_local(
        &self,
        name: &str,
        m: &crate::config::ModelConfig,
    ) -> Result<Arc<dyn Backend>, String> {
        use super::local::{LocalBackend, LocalOptions};
        let path = self
            .config
            .gguf_path(m)
            .ok_or_else(|| format!("model {name:?} has no gguf path"))?;
        let mut options = LocalOptions::default();
        if let Some(n) = m.max_num_seqs {
            options.max_num_seqs = n.max(1);
        }
        options.adapters = self.config.lora_paths(m);
        options.hash_cache = Some(self.config.dirs.hash_cache());
        Ok(Arc::new(LocalBackend::new(path, options)))
    }

    #[cfg(not(feature = "local"))]
    fn build_local(
        &self,
        name: &str,
        _m: &crate::config::ModelConfig,
    ) -> Result<Arc<dyn Backend>, String> {
        Err(format!(
            "model {name:?} uses the local backend, but this promptloom was built without the `local` feature; rebuild with default features"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dirs;
    use std::path::Path;

    fn registry(toml: &str) -> BackendRegistry {
        let mut c = Config::defaults(Dirs::resolve(None));
        c.merge_text(Path::new("/tmp/promptloom-test/config.toml"), toml)
            .unwrap();
        BackendRegistry::new(c)
    }

    /// A remote model's `tokenizer` is read when the model is built: a file that holds none
    /// is an error naming the model and the file, not a silent fall-back to text lengths.
    #[test]
    fn a_remote_models_tokenizer_is_loaded_when_it_is_built() {
        let r = registry(
            "[models.remote]\nbackend = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\
             model = \"m\"\ntokenizer = \"/nonexistent/tokenizer.json\"\n\
             [models.plain]\nbackend = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n",
        );
        let err = r.get("remote").err().expect("no tokenizer there");
        assert!(
            err.contains("\"remote\"") && err.contains("/nonexistent/tokenizer.json"),
            "{err}"
        );
        assert!(r.get("plain").is_ok());
    }

    #[test]
    fn a_bare_tokenizer_name_is_looked_up_beside_the_models() {
        let r = registry(
            "[models.remote]\nbackend = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\
             model = \"m\"\ntokenizer = \"SmolLM2.gguf\"\n",
        );
        let m = r.config.model("remote").unwrap();
        assert_eq!(
            r.config.tokenizer_path(m),
            Some(r.config.dirs.models_dir().join("SmolLM2.gguf"))
        );
    }
}
