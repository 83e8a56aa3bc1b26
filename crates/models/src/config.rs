//! Choosing the embedder from the environment.
//!
//! - `EMBEDDING_PROVIDER`, case-insensitive: `local` (the default: the shipped potion-base-8M
//!   model, 256 dimensions, [`crate::potion`]), `local-hash` (the feature-hashing `local-hash-v1`,
//!   512 dimensions, [`crate::local`]) or `openai`.
//! - `OPENAI_API_KEY`: the bearer key; required with `openai`.
//! - `OPENAI_BASE_URL`: the base URL **including** the version path, e.g.
//!   `http://localhost:11434/v1`; default `https://api.openai.com/v1`.
//! - `EMBEDDING_MODEL`: default `text-embedding-3-small`.
//! - `EMBEDDING_DIMENSIONS`: the vector length; defaults to the model's for OpenAI's models (1536
//!   for `text-embedding-3-small`), required for any other model.
//! - `EMBEDDING_TIMEOUT_SECS`: limit per attempt in seconds, fractions allowed; default 30.
//!
//! With `local` and `local-hash`, the `OPENAI_*` variables and `EMBEDDING_MODEL` are ignored (they
//! may serve other purposes), but `EMBEDDING_DIMENSIONS`, if set, must be the embedder's own (256
//! or 512).
//!
//! The dimension of a model other than OpenAI's is required rather than learnt from the first
//! answer, because it must be known at start-up, before any request: it is compared with the
//! dimension of the stored vectors to detect a change of embedder. For `text-embedding-3-*` models
//! a dimension below the model's own is sent as the `dimensions` request parameter (OpenAI's
//! shortened embeddings).
//!
//! A variable set to an empty or blank value counts as unset. Any other bad value is an error
//! naming the variable; nothing falls back silently.

use std::sync::Arc;
use std::time::Duration;

use honcho_domain::embed::Embedder;

use crate::hash::{self, HashEmbedder};
use crate::openai::{self, OpenAiConfig, OpenAiEmbedder, RetryPolicy};
use crate::potion::{self, PotionEmbedder};

/// Longest accepted `EMBEDDING_TIMEOUT_SECS`.
const MAX_TIMEOUT_SECS: f64 = 3600.0;
/// Longest accepted `EMBEDDING_DIMENSIONS`.
const MAX_DIMENSIONS: usize = 65_536;

/// Which embedder to build, and how.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbedderConfig {
    /// [`PotionEmbedder`] (`EMBEDDING_PROVIDER=local`), the default.
    Potion,
    /// [`HashEmbedder`] (`local-hash-v1`; `EMBEDDING_PROVIDER=local-hash`).
    Hash,
    /// [`OpenAiEmbedder`] with this configuration.
    OpenAi(OpenAiConfig),
}

impl EmbedderConfig {
    /// Reads the variables in the module documentation through `lookup` (the server's
    /// configuration reads the environment and passes its reader here).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let var = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let dimensions = var("EMBEDDING_DIMENSIONS")
            .map(|v| parse_dimensions(&v))
            .transpose()?;
        let provider = var("EMBEDDING_PROVIDER").unwrap_or_else(|| "local".into());
        let fixed = |config: EmbedderConfig, own: usize| match dimensions {
            Some(d) if d != own => Err(format!(
                "EMBEDDING_DIMENSIONS: the {} embedder makes vectors of {own} dimensions, not {d}",
                provider.to_ascii_lowercase()
            )),
            _ => Ok(config),
        };
        match provider.to_ascii_lowercase().as_str() {
            "local" => fixed(EmbedderConfig::Potion, potion::DIMENSIONS),
            "local-hash" => fixed(EmbedderConfig::Hash, hash::DIMENSIONS),
            "openai" => openai_config(&var, dimensions).map(EmbedderConfig::OpenAi),
            _ => Err(format!(
                "EMBEDDING_PROVIDER: unknown provider '{provider}' (expected 'local', \
                 'local-hash' or 'openai')"
            )),
        }
    }

    /// The embedder this configuration describes; no request is made.
    pub fn build(self) -> Result<Arc<dyn Embedder>, String> {
        Ok(match self {
            EmbedderConfig::Potion => {
                let embedder = PotionEmbedder::new();
                embedder.load();
                Arc::new(embedder)
            }
            EmbedderConfig::Hash => Arc::new(HashEmbedder::new()),
            EmbedderConfig::OpenAi(config) => Arc::new(OpenAiEmbedder::new(config)?),
        })
    }
}

/// The `openai` settings; `dimensions` is `EMBEDDING_DIMENSIONS`, already parsed.
fn openai_config(
    var: &impl Fn(&str) -> Option<String>,
    dimensions: Option<usize>,
) -> Result<OpenAiConfig, String> {
    let api_key =
        var("OPENAI_API_KEY").ok_or("OPENAI_API_KEY: required when EMBEDDING_PROVIDER=openai")?;
    let model = var("EMBEDDING_MODEL").unwrap_or_else(|| openai::DEFAULT_MODEL.into());
    let native = openai::known_dimensions(&model);
    let dimensions = dimensions.or(native).ok_or_else(|| {
        format!(
            "EMBEDDING_DIMENSIONS: required for EMBEDDING_MODEL={model} \
             (the length of its vectors must be known at start-up)"
        )
    })?;
    let shorten = native.is_some_and(|n| n != dimensions) && openai::supports_shortening(&model);
    let timeout = match var("EMBEDDING_TIMEOUT_SECS") {
        None => openai::DEFAULT_TIMEOUT,
        Some(v) => parse_timeout(&v)?,
    };
    Ok(OpenAiConfig {
        base_url: var("OPENAI_BASE_URL").unwrap_or_else(|| openai::DEFAULT_BASE_URL.into()),
        api_key,
        model,
        dimensions,
        request_dimensions: shorten.then_some(dimensions),
        timeout,
        retry: RetryPolicy::default(),
        batch_size: openai::DEFAULT_BATCH_SIZE,
    })
}

fn parse_dimensions(value: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|d| (1..=MAX_DIMENSIONS).contains(d))
        .ok_or_else(|| {
            format!(
                "EMBEDDING_DIMENSIONS: '{value}' is not a whole number between 1 and \
                 {MAX_DIMENSIONS}"
            )
        })
}

fn parse_timeout(value: &str) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0 && *s <= MAX_TIMEOUT_SECS)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            format!(
                "EMBEDDING_TIMEOUT_SECS: '{value}' is not a number of seconds above 0 and at most \
                 {MAX_TIMEOUT_SECS}"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<EmbedderConfig, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EmbedderConfig::from_lookup(|name| vars.get(name).cloned())
    }

    fn openai(vars: &[(&str, &str)]) -> OpenAiConfig {
        match config(vars) {
            Ok(EmbedderConfig::OpenAi(c)) => c,
            other => panic!("expected openai, got {other:?}"),
        }
    }

    fn error_names(vars: &[(&str, &str)], variable: &str) {
        let error = config(vars).expect_err("a bad value");
        assert!(error.starts_with(&format!("{variable}: ")), "{error}");
    }

    #[test]
    fn local_is_the_default() {
        assert_eq!(config(&[]), Ok(EmbedderConfig::Potion));
        assert_eq!(
            config(&[("EMBEDDING_PROVIDER", " ")]),
            Ok(EmbedderConfig::Potion)
        );
        assert_eq!(
            config(&[("EMBEDDING_PROVIDER", "Local")]),
            Ok(EmbedderConfig::Potion)
        );
        // OpenAI settings meant for something else do not matter.
        let vars = [
            ("OPENAI_BASE_URL", "nonsense"),
            ("EMBEDDING_MODEL", "x"),
            ("EMBEDDING_DIMENSIONS", "256"),
        ];
        assert_eq!(config(&vars), Ok(EmbedderConfig::Potion));
        let embedder = EmbedderConfig::Potion.build().expect("local");
        assert_eq!(
            (embedder.id(), embedder.dimensions()),
            ("model2vec:potion-base-8M", 256)
        );
        assert_eq!(
            config(&[("EMBEDDING_PROVIDER", "Local-Hash")]),
            Ok(EmbedderConfig::Hash)
        );
        let embedder = EmbedderConfig::Hash.build().expect("hash");
        assert_eq!(
            (embedder.id(), embedder.dimensions()),
            ("local-hash-v1", 512)
        );
    }

    #[test]
    fn openai_defaults() {
        let c = openai(&[
            ("EMBEDDING_PROVIDER", "openai"),
            ("OPENAI_API_KEY", "sk-test"),
        ]);
        assert_eq!(c, OpenAiConfig::new("sk-test"));
        let embedder = EmbedderConfig::OpenAi(c).build().expect("valid");
        assert_eq!(embedder.id(), "openai:text-embedding-3-small");
        assert_eq!(embedder.dimensions(), 1536);
    }

    #[test]
    fn openai_settings() {
        let c = openai(&[
            ("EMBEDDING_PROVIDER", "OpenAI"),
            ("OPENAI_API_KEY", "ollama"),
            ("OPENAI_BASE_URL", "http://localhost:11434/v1"),
            ("EMBEDDING_MODEL", "nomic-embed-text"),
            ("EMBEDDING_DIMENSIONS", "768"),
            ("EMBEDDING_TIMEOUT_SECS", "2.5"),
        ]);
        assert_eq!(c.base_url, "http://localhost:11434/v1");
        assert_eq!(
            (c.model.as_str(), c.dimensions, c.request_dimensions),
            ("nomic-embed-text", 768, None)
        );
        assert_eq!(c.timeout, Duration::from_millis(2500));

        let shortened = [
            ("EMBEDDING_PROVIDER", "openai"),
            ("OPENAI_API_KEY", "k"),
            ("EMBEDDING_MODEL", "text-embedding-3-large"),
            ("EMBEDDING_DIMENSIONS", "256"),
        ];
        let c = openai(&shortened);
        assert_eq!((c.dimensions, c.request_dimensions), (256, Some(256)));
        let native = [
            ("EMBEDDING_PROVIDER", "openai"),
            ("OPENAI_API_KEY", "k"),
            ("EMBEDDING_DIMENSIONS", "1536"),
        ];
        assert_eq!(openai(&native).request_dimensions, None);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let base = [("EMBEDDING_PROVIDER", "openai"), ("OPENAI_API_KEY", "k")];
        let with = |extra: (&'static str, &'static str)| {
            let mut vars = base.to_vec();
            vars.push(extra);
            vars
        };
        error_names(&[("EMBEDDING_PROVIDER", "cohere")], "EMBEDDING_PROVIDER");
        error_names(&[("EMBEDDING_PROVIDER", "openai")], "OPENAI_API_KEY");
        error_names(&[("EMBEDDING_DIMENSIONS", "1536")], "EMBEDDING_DIMENSIONS");
        error_names(&[("EMBEDDING_DIMENSIONS", "abc")], "EMBEDDING_DIMENSIONS");
        error_names(&with(("EMBEDDING_DIMENSIONS", "0")), "EMBEDDING_DIMENSIONS");
        error_names(
            &with(("EMBEDDING_DIMENSIONS", "-3")),
            "EMBEDDING_DIMENSIONS",
        );
        error_names(
            &with(("EMBEDDING_MODEL", "mxbai-embed-large")),
            "EMBEDDING_DIMENSIONS",
        );
        for timeout in ["0", "-1", "soon", "NaN", "inf", "100000"] {
            error_names(
                &with(("EMBEDDING_TIMEOUT_SECS", timeout)),
                "EMBEDDING_TIMEOUT_SECS",
            );
        }
        // Checked when building.
        let c = EmbedderConfig::from_lookup(|name| match name {
            "EMBEDDING_PROVIDER" => Some("openai".into()),
            "OPENAI_API_KEY" => Some("k".into()),
            "OPENAI_BASE_URL" => Some("localhost:11434".into()),
            _ => None,
        })
        .expect("parsed");
        let error = c.build().expect_err("bad URL");
        assert!(error.starts_with("OPENAI_BASE_URL: "), "{error}");
    }
}
