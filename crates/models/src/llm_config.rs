//! Choosing the chat language models from the environment.
//!
//! - `LLM_PROVIDER`: `openai` (any OpenAI-compatible API, the default) or `anthropic`.
//! - `LLM_BASE_URL`: the base URL **including** the version path; default
//!   `https://api.openai.com/v1`, or `https://api.anthropic.com/v1` for `anthropic`.
//! - `LLM_API_KEY` (or `ANTHROPIC_API_KEY` with `anthropic`): the key; local servers may need none.
//! - `LLM_MODEL`: the model of every role; per-role overrides `DERIVER_MODEL` (fact extraction),
//!   `SUMMARY_MODEL`, `QUERY_MODEL` (search queries) and `DIALECTIC_MODEL` (answers).
//! - `LLM_TIMEOUT_SECS`: limit per attempt in seconds; default 60.
//!
//! Insights are off (`None`) when neither `LLM_MODEL` nor a per-role model is set. A blank value
//! counts as unset; any other bad value is an error naming the variable.

use crate::chat::{ChatConfig, HttpChatModel, Protocol};
use crate::openai::RetryPolicy;
use honcho_domain::llm::ChatModel;
use std::sync::Arc;
use std::time::Duration;

pub use honcho_domain::llm::Models;

/// The models the variables read through `lookup` configure (the server's configuration reads
/// the environment and passes its reader here), or `None` when no model is set.
pub fn models_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<Models>, String> {
    let var = |name: &str| {
        lookup(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let provider = var("LLM_PROVIDER").unwrap_or_else(|| "openai".into());
    let (protocol, default_base, key) = match provider.to_ascii_lowercase().as_str() {
        "openai" => (
            Protocol::OpenAi,
            "https://api.openai.com/v1",
            var("LLM_API_KEY"),
        ),
        "anthropic" => (
            Protocol::Anthropic,
            "https://api.anthropic.com/v1",
            var("LLM_API_KEY").or_else(|| var("ANTHROPIC_API_KEY")),
        ),
        _ => {
            return Err(format!(
                "LLM_PROVIDER: unknown provider '{provider}' (expected 'openai' or 'anthropic')"
            ))
        }
    };
    let timeout = match var("LLM_TIMEOUT_SECS") {
        None => Duration::from_secs(60),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|s| *s > 0.0 && *s <= 3600.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                format!("LLM_TIMEOUT_SECS: '{v}' is not a number of seconds in (0, 3600]")
            })?,
    };
    let default_model = var("LLM_MODEL");
    let roles = [
        "DERIVER_MODEL",
        "SUMMARY_MODEL",
        "QUERY_MODEL",
        "DIALECTIC_MODEL",
    ];
    if default_model.is_none() && roles.iter().all(|r| var(r).is_none()) {
        return Ok(None);
    }
    let base_url = var("LLM_BASE_URL").unwrap_or_else(|| default_base.to_string());
    let model_of = |role: &str| -> Result<Arc<dyn ChatModel>, String> {
        let model = var(role).or_else(|| default_model.clone()).ok_or_else(|| {
            format!("{role}: no model for this role (set it, or LLM_MODEL for every role)")
        })?;
        let config = ChatConfig {
            protocol,
            base_url: base_url.clone(),
            api_key: key.clone(),
            model,
            timeout,
            retry: RetryPolicy::default(),
        };
        let model = HttpChatModel::new(config).map_err(|e| {
            if e.starts_with("the model") {
                format!("{role}: {e}")
            } else {
                format!("LLM_BASE_URL: {e}")
            }
        })?;
        Ok(Arc::new(model))
    };
    let models = Models {
        deriver: model_of("DERIVER_MODEL")?,
        summary: model_of("SUMMARY_MODEL")?,
        query: model_of("QUERY_MODEL")?,
        dialectic: model_of("DIALECTIC_MODEL")?,
    };
    if key.is_none() && !is_local(&base_url) {
        let key_var = match protocol {
            Protocol::OpenAi => "LLM_API_KEY",
            Protocol::Anthropic => "LLM_API_KEY (or ANTHROPIC_API_KEY)",
        };
        return Err(format!(
            "{key_var}: required for {base_url} (only a server on this machine, at 127.0.0.1 or \
             localhost, may go without a key)"
        ));
    }
    Ok(Some(models))
}

/// Whether `url` names a server on this machine (which may need no key).
fn is_local(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models(vars: &[(&str, &str)]) -> Result<Option<Models>, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        models_from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn no_model_means_insights_off() {
        assert!(models(&[]).unwrap().is_none());
        assert!(
            models(&[("LLM_BASE_URL", "http://x/v1"), ("LLM_MODEL", " ")])
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn one_model_serves_every_role_unless_a_role_overrides_it() {
        let m = models(&[
            ("LLM_MODEL", "small"),
            ("DIALECTIC_MODEL", "large"),
            ("LLM_API_KEY", "k"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(m.deriver.id(), "openai:small");
        assert_eq!(m.query.id(), "openai:small");
        assert_eq!(m.dialectic.id(), "openai:large");
        let m = models(&[
            ("LLM_PROVIDER", "Anthropic"),
            ("ANTHROPIC_API_KEY", "k"),
            ("LLM_MODEL", "claude"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(m.summary.id(), "anthropic:claude");
    }

    #[test]
    fn bad_values_name_their_variable() {
        let err = |vars: &[(&str, &str)]| models(vars).unwrap_err();
        assert!(err(&[("LLM_MODEL", "m"), ("LLM_PROVIDER", "cohere")]).starts_with("LLM_PROVIDER:"));
        assert!(
            err(&[("LLM_MODEL", "m"), ("LLM_BASE_URL", "ftp://x")]).starts_with("LLM_BASE_URL:")
        );
        assert!(err(&[("LLM_MODEL", "m"), ("LLM_TIMEOUT_SECS", "soon")])
            .starts_with("LLM_TIMEOUT_SECS:"));
        assert!(err(&[("DIALECTIC_MODEL", "m")]).starts_with("DERIVER_MODEL:"));
        // A remote server needs a key; one on this machine may go without.
        assert!(err(&[
            ("LLM_MODEL", "m"),
            ("LLM_BASE_URL", "https://llm.example/v1")
        ])
        .starts_with("LLM_API_KEY:"));
        assert!(err(&[("LLM_MODEL", "m")]).starts_with("LLM_API_KEY:"));
        for local in [
            "http://127.0.0.1:11434/v1",
            "http://localhost/v1",
            "http://[::1]:8080/v1",
        ] {
            assert!(models(&[("LLM_MODEL", "m"), ("LLM_BASE_URL", local)]).is_ok());
        }
        // Checked even when no model is set.
        assert!(err(&[("LLM_PROVIDER", "cohere")]).starts_with("LLM_PROVIDER:"));
    }
}
