//! An embedder for any OpenAI-compatible `POST {base}/embeddings` endpoint (OpenAI, Ollama, vLLM,
//! llama.cpp server, LiteLLM, ...).
//!
//! The base URL follows the OpenAI SDK convention: it **includes** the API version path, for
//! example `https://api.openai.com/v1` (the default) or `http://localhost:11434/v1` for Ollama, and
//! `/embeddings` is appended to it. A base URL without the version path typically gets a 404, whose
//! error says so.
//!
//! Each call sends `{"model": ..., "input": [texts...]}` (plus `"dimensions"` when a shortened
//! `text-embedding-3-*` vector was asked for) with `Authorization: Bearer <key>`, in batches of
//! [`OpenAiConfig::batch_size`] texts, and expects `{"data": [{"embedding": [...], "index": i},
//! ...]}`. Answers are put back in input order by `index` (when no item has an `index`, the order
//! of `data` is used), and their count and every vector's length are checked
//! ([`EmbedError::BadResponse`]).
//!
//! Failures that may pass (HTTP 408, 429 and 5xx, timeouts, connection and DNS errors, a connection
//! dropped while reading) are retried with exponential backoff ([`RetryPolicy`]); a `Retry-After`
//! header in seconds on a 429 or 503 replaces the backoff, capped by
//! [`RetryPolicy::max_retry_after`]. Other failures (for example 400, 401, 404) fail at once. The
//! key is sent only in the `Authorization` header and never appears in errors, logs or `Debug`
//! output.
//!
//! Requests are blocking (`ureq`, rustls with the Mozilla root certificates bundled, so no system
//! TLS library is needed); proxies from `HTTPS_PROXY` and friends are not used.

use std::fmt;
use std::io::Read;
use std::time::Duration;

pub use crate::http::RetryPolicy;
use crate::http::{error_answer, is_timeout, quote, retrying, transport_failure, Failure};
use honcho_domain::embed::{EmbedError, Embedder};
use serde::{Deserialize, Serialize};

/// Where OpenAI's API lives, including the version path.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// The model used when none is configured.
pub const DEFAULT_MODEL: &str = "text-embedding-3-small";
/// How long one attempt (connect, send, wait and read the whole answer) may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Texts sent in one request by default: far below OpenAI's limit of 2048 inputs, and an answer of
/// 128 vectors of 3072 dimensions stays under 10 MB of JSON.
pub const DEFAULT_BATCH_SIZE: usize = 128;

/// Largest successful answer read (a bigger one is a [`EmbedError::BadResponse`]).
const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// The vector length of OpenAI's embedding models, used when no dimension is configured. Other
/// models (for example local ones served by Ollama) need an explicit dimension.
pub fn known_dimensions(model: &str) -> Option<usize> {
    match model {
        "text-embedding-3-small" | "text-embedding-ada-002" => Some(1536),
        "text-embedding-3-large" => Some(3072),
        _ => None,
    }
}

/// Whether the model accepts a `dimensions` request parameter (shortened vectors).
pub fn supports_shortening(model: &str) -> bool {
    model.starts_with("text-embedding-3-")
}

/// Everything [`OpenAiEmbedder`] needs. `Debug` shows the key redacted.
#[derive(Clone, PartialEq)]
pub struct OpenAiConfig {
    /// Base URL including the version path, e.g. `https://api.openai.com/v1`; `/embeddings` is
    /// appended.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <api_key>`.
    pub api_key: String,
    /// Model name sent with each request; also part of [`Embedder::id`] (`openai:<model>`).
    pub model: String,
    /// Length every answered vector must have.
    pub dimensions: usize,
    /// Sent as the `dimensions` request parameter (shortened `text-embedding-3-*` vectors); `None`
    /// sends nothing, which every OpenAI-compatible server accepts.
    pub request_dimensions: Option<usize>,
    /// Limit for one attempt, from connecting to having read the whole answer.
    pub timeout: Duration,
    /// Retries of failed attempts.
    pub retry: RetryPolicy,
    /// Most texts sent in one request; longer inputs are split into several requests.
    pub batch_size: usize,
}

impl OpenAiConfig {
    /// OpenAI's defaults: [`DEFAULT_BASE_URL`], [`DEFAULT_MODEL`] with 1536 dimensions,
    /// [`DEFAULT_TIMEOUT`], [`RetryPolicy::default`] and [`DEFAULT_BATCH_SIZE`].
    pub fn new(api_key: impl Into<String>) -> Self {
        OpenAiConfig {
            base_url: DEFAULT_BASE_URL.to_string(),
            api_key: api_key.into(),
            model: DEFAULT_MODEL.to_string(),
            dimensions: 1536,
            request_dimensions: None,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("model", &self.model)
            .field("dimensions", &self.dimensions)
            .field("request_dimensions", &self.request_dimensions)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

/// An [`Embedder`] calling an OpenAI-compatible embeddings endpoint (see the module documentation).
pub struct OpenAiEmbedder {
    agent: ureq::Agent,
    endpoint: String,
    authorization: String,
    id: String,
    model: String,
    dimensions: usize,
    request_dimensions: Option<usize>,
    timeout: Duration,
    retry: RetryPolicy,
    batch_size: usize,
}

impl fmt::Debug for OpenAiEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiEmbedder")
            .field("id", &self.id)
            .field("endpoint", &self.endpoint)
            .field("dimensions", &self.dimensions)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl OpenAiEmbedder {
    /// Checks the configuration and prepares the HTTP client; no request is made. The error names
    /// the environment variable behind the faulty field.
    pub fn new(config: OpenAiConfig) -> Result<Self, String> {
        let key = config.api_key.trim();
        if key.is_empty() {
            return Err("OPENAI_API_KEY: required when EMBEDDING_PROVIDER=openai".into());
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "OPENAI_API_KEY: contains characters that cannot be sent in an HTTP header".into(),
            );
        }
        let endpoint = endpoint(&config.base_url)?;
        let model = config.model.trim();
        if model.is_empty() {
            return Err("EMBEDDING_MODEL: must not be empty".into());
        }
        if config.dimensions == 0 || config.request_dimensions == Some(0) {
            return Err("EMBEDDING_DIMENSIONS: must be a positive number".into());
        }
        if config.timeout.is_zero() {
            return Err("EMBEDDING_TIMEOUT_SECS: must be positive".into());
        }
        if config.retry.max_attempts == 0 {
            return Err("embedding retry policy: at least one attempt is needed".into());
        }
        if config.batch_size == 0 {
            return Err("embedding batch size: must be positive".into());
        }
        let agent = ureq::AgentBuilder::new()
            .max_idle_connections_per_host(crate::http::IDLE_CONNECTIONS)
            .timeout(config.timeout)
            // A redirected POST would be replayed as a GET; report the redirect instead.
            .redirects(0)
            .user_agent(concat!("honcho-rs/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(OpenAiEmbedder {
            agent,
            endpoint,
            authorization: format!("Bearer {key}"),
            id: format!("openai:{model}"),
            model: model.to_string(),
            dimensions: config.dimensions,
            request_dimensions: config.request_dimensions,
            timeout: config.timeout,
            retry: config.retry,
            batch_size: config.batch_size,
        })
    }

    /// The URL requests go to (`{base}/embeddings`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// One request's worth of texts, retried as the policy says.
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = serde_json::to_vec(&EmbeddingsRequest {
            model: &self.model,
            input: texts,
            dimensions: self.request_dimensions,
        })
        .map_err(|e| EmbedError::Provider(format!("cannot encode the request: {e}")))?;
        let answer = retrying(
            &self.retry,
            "embedding",
            "POST",
            &self.endpoint,
            || self.attempt(&body),
            EmbedError::Provider,
        )?;
        parse_answer(&answer, texts.len(), self.dimensions)
    }

    /// One HTTP exchange: the body of a 2xx answer, or why not.
    fn attempt(&self, body: &[u8]) -> Result<Vec<u8>, Failure<EmbedError>> {
        let result = self
            .agent
            .post(&self.endpoint)
            .set("Authorization", &self.authorization)
            .set("Content-Type", "application/json")
            .set("Accept", "application/json")
            .send_bytes(body);
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(status, response)) => {
                return Err(self.status_failure(status, response))
            }
            Err(ureq::Error::Transport(transport)) => {
                return Err(self.transport_failure(&transport))
            }
        };
        let status = response.status();
        if !(200..300).contains(&status) {
            return Err(self.status_failure(status, response));
        }
        let mut answer = Vec::new();
        response
            .into_reader()
            .take(MAX_BODY_BYTES + 1)
            .read_to_end(&mut answer)
            .map_err(|e| {
                let detail = if is_timeout(&e) {
                    format!("timed out after {:?} reading the answer", self.timeout)
                } else {
                    format!("reading the answer failed: {e}")
                };
                Failure::retry(detail, None)
            })?;
        if answer.len() as u64 > MAX_BODY_BYTES {
            return Err(Failure::Fatal(EmbedError::BadResponse(format!(
                "the answer is larger than {MAX_BODY_BYTES} bytes"
            ))));
        }
        Ok(answer)
    }

    fn status_failure(&self, status: u16, response: ureq::Response) -> Failure<EmbedError> {
        let location = response.header("location").map(str::to_string);
        let (detail, retry_after) = error_answer(status, response);
        if status == 408 || status == 429 || (500..600).contains(&status) {
            return Failure::retry(detail, retry_after);
        }
        let hint = match status {
            300..=399 => match location {
                Some(to) => format!(" (redirected to {to}; set OPENAI_BASE_URL to the final URL)"),
                None => " (a redirect; set OPENAI_BASE_URL to the final URL)".to_string(),
            },
            401 | 403 => " (check OPENAI_API_KEY)".to_string(),
            404 => " (check OPENAI_BASE_URL, which includes the version path as in \
                    https://api.openai.com/v1, and EMBEDDING_MODEL)"
                .to_string(),
            _ => String::new(),
        };
        Failure::Fatal(EmbedError::Provider(format!(
            "POST {}: {detail}{hint}",
            self.endpoint
        )))
    }

    fn transport_failure(&self, transport: &ureq::Transport) -> Failure<EmbedError> {
        match transport_failure(transport, self.timeout) {
            Ok(retryable) => Failure::Retry(retryable),
            Err(detail) => Failure::Fatal(EmbedError::Provider(format!(
                "POST {}: {detail}",
                self.endpoint
            ))),
        }
    }
}

impl Embedder for OpenAiEmbedder {
    fn id(&self) -> &str {
        &self.id
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn remote(&self) -> bool {
        true
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch_size) {
            vectors.extend(self.embed_batch(batch)?);
        }
        Ok(vectors)
    }
}

/// `{base}/embeddings`, after checking that the base is a plain http(s) URL.
fn endpoint(base: &str) -> Result<String, String> {
    let base = base.trim();
    let url = url::Url::parse(base)
        .map_err(|e| format!("OPENAI_BASE_URL: '{base}' is not a URL: {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "OPENAI_BASE_URL: '{base}' is not an http:// or https:// URL"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "OPENAI_BASE_URL: must not contain credentials (the key goes in OPENAI_API_KEY)".into(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "OPENAI_BASE_URL: '{base}' must not have a query or fragment"
        ));
    }
    Ok(format!("{}/embeddings", url.as_str().trim_end_matches('/')))
}

#[derive(Serialize)]
struct EmbeddingsRequest<'a> {
    model: &'a str,
    input: &'a [&'a str],
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<usize>,
}

#[derive(Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    embedding: Vec<f32>,
    #[serde(default)]
    index: Option<usize>,
}

/// The vectors of a successful answer in input order, after checking count, indices and lengths.
fn parse_answer(
    raw: &[u8],
    expected: usize,
    dimensions: usize,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let answer: EmbeddingsResponse = serde_json::from_slice(raw).map_err(|e| {
        let start = quote(&String::from_utf8_lossy(&raw[..raw.len().min(200)]));
        EmbedError::BadResponse(format!("not an embeddings answer ({e}): {start}"))
    })?;
    let count = answer.data.len();
    if count != expected {
        return Err(EmbedError::BadResponse(format!(
            "{count} embeddings for {expected} inputs"
        )));
    }
    let with_index = answer.data.iter().filter(|d| d.index.is_some()).count();
    let ordered: Vec<Vec<f32>> = if with_index == 0 {
        answer.data.into_iter().map(|d| d.embedding).collect()
    } else if with_index == count {
        let mut slots: Vec<Option<Vec<f32>>> = vec![None; count];
        for item in answer.data {
            let index = item.index.unwrap_or(usize::MAX);
            match slots.get_mut(index) {
                Some(slot @ None) => *slot = Some(item.embedding),
                Some(Some(_)) => {
                    return Err(EmbedError::BadResponse(format!(
                        "index {index} answered twice"
                    )))
                }
                None => {
                    return Err(EmbedError::BadResponse(format!(
                        "index {index} out of range for {count} inputs"
                    )))
                }
            }
        }
        // Every slot is filled: `count` distinct indices below `count`.
        slots.into_iter().flatten().collect()
    } else {
        return Err(EmbedError::BadResponse(
            "some embeddings have no index".into(),
        ));
    };
    if let Some((i, v)) = ordered
        .iter()
        .enumerate()
        .find(|(_, v)| v.len() != dimensions)
    {
        return Err(EmbedError::BadResponse(format!(
            "embedding {i} has {} dimensions, expected {dimensions} (check EMBEDDING_DIMENSIONS)",
            v.len()
        )));
    }
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_retry_after, provider_message, MAX_QUOTED_CHARS};

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(1), Duration::from_millis(200));
        assert_eq!(policy.backoff(2), Duration::from_millis(400));
        assert_eq!(policy.backoff(3), Duration::from_millis(800));
        assert_eq!(policy.backoff(10), Duration::from_secs(5));
        assert_eq!(policy.backoff(100), Duration::from_secs(5));
    }

    #[test]
    fn endpoint_appends_to_the_versioned_base() {
        assert_eq!(
            endpoint("https://api.openai.com/v1").as_deref(),
            Ok("https://api.openai.com/v1/embeddings")
        );
        assert_eq!(
            endpoint("http://localhost:11434/v1/").as_deref(),
            Ok("http://localhost:11434/v1/embeddings")
        );
        assert_eq!(
            endpoint("http://localhost:8080").as_deref(),
            Ok("http://localhost:8080/embeddings")
        );
        for bad in [
            "localhost:11434/v1",
            "ftp://x/v1",
            "not a url",
            "https://u:p@host/v1",
            "http://h/v1?x=1",
        ] {
            let error = endpoint(bad).expect_err(bad);
            assert!(error.starts_with("OPENAI_BASE_URL: "), "{error}");
        }
    }

    #[test]
    fn construction_checks_the_key_and_redacts_it() {
        let error = OpenAiEmbedder::new(OpenAiConfig::new("  ")).expect_err("no key");
        assert!(error.starts_with("OPENAI_API_KEY"), "{error}");
        let error = OpenAiEmbedder::new(OpenAiConfig::new("sk-a\nb")).expect_err("bad key");
        assert!(
            error.starts_with("OPENAI_API_KEY") && !error.contains("sk-a"),
            "{error}"
        );
        let config = OpenAiConfig::new("sk-secret");
        assert!(!format!("{config:?}").contains("sk-secret"));
        let embedder = OpenAiEmbedder::new(config).expect("valid");
        assert!(!format!("{embedder:?}").contains("sk-secret"));
        assert_eq!(embedder.id(), "openai:text-embedding-3-small");
        assert_eq!(embedder.dimensions(), 1536);
        assert_eq!(embedder.endpoint(), "https://api.openai.com/v1/embeddings");
    }

    #[test]
    fn provider_messages() {
        let m = |s: &str| provider_message(s.as_bytes());
        assert_eq!(
            m(r#"{"error": {"message": "Bad key", "type": "x"}}"#).as_deref(),
            Some("Bad key")
        );
        assert_eq!(
            m(r#"{"error": "model not found"}"#).as_deref(),
            Some("model not found")
        );
        assert_eq!(
            m("upstream\nconnect error").as_deref(),
            Some("upstream connect error")
        );
        assert_eq!(m("  "), None);
        let long = "é".repeat(1000);
        assert_eq!(
            m(&long).map(|s| s.chars().count()),
            Some(MAX_QUOTED_CHARS + 3)
        );
    }

    #[test]
    fn retry_after_in_seconds() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn answers_are_checked_and_ordered() {
        let ok = br#"{"data":[{"embedding":[3,3],"index":1},{"embedding":[1,1],"index":0}]}"#;
        assert_eq!(
            parse_answer(ok, 2, 2),
            Ok(vec![vec![1.0, 1.0], vec![3.0, 3.0]])
        );
        let no_index = br#"{"data":[{"embedding":[1,1]},{"embedding":[3,3]}]}"#;
        assert_eq!(
            parse_answer(no_index, 2, 2),
            Ok(vec![vec![1.0, 1.0], vec![3.0, 3.0]])
        );
        let bad =
            |raw: &[u8], n, d| matches!(parse_answer(raw, n, d), Err(EmbedError::BadResponse(_)));
        assert!(bad(ok, 3, 2));
        assert!(bad(ok, 2, 3));
        assert!(bad(
            br#"{"data":[{"embedding":[1],"index":0},{"embedding":[1],"index":0}]}"#,
            2,
            1
        ));
        assert!(bad(
            br#"{"data":[{"embedding":[1],"index":0},{"embedding":[1],"index":2}]}"#,
            2,
            1
        ));
        assert!(bad(
            br#"{"data":[{"embedding":[1],"index":0},{"embedding":[1]}]}"#,
            2,
            1
        ));
        assert!(bad(br#"{"data":[{"embedding":"AAAA","index":0}]}"#, 1, 1));
        assert!(bad(b"<html>", 1, 1));
    }
}
