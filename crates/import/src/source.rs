//! The source: a server of the Honcho v1.1.0 API, read through that API only. Its answers are
//! parsed with the web crate's response types, the ones this server writes them with.

use honcho_models::http::{error_answer, retrying, transport_failure, Failure};
use honcho_models::RetryPolicy;
use honcho_web::dto;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// Items asked for per page (the API's largest page).
pub const PAGE_SIZE: u32 = 100;

/// The operations an import reads (method and path as the v1.1.0 document names them): a source
/// whose `/openapi.json` lacks one is not a v1.1.0 API.
pub const OPERATIONS: &[(&str, &str)] = &[
    ("get", "/v1/apps"),
    ("post", "/v1/apps/list"),
    ("get", "/v1/apps/name/{name}"),
    ("post", "/v1/apps/{app_id}/users/list"),
    ("post", "/v1/apps/{app_id}/users/{user_id}/sessions/list"),
    (
        "post",
        "/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}/messages/list",
    ),
    (
        "post",
        "/v1/apps/{app_id}/users/{user_id}/metamessages/list",
    ),
    ("post", "/v1/apps/{app_id}/users/{user_id}/collections/list"),
    (
        "post",
        "/v1/apps/{app_id}/users/{user_id}/collections/{collection_id}/documents/list",
    ),
];

/// Why the source could not answer.
#[derive(Debug)]
pub enum SourceError {
    /// No answer: connection refused, name unknown, timed out, TLS failed.
    Unreachable(String),
    /// 401 or 403: the key is missing, wrong, or does not reach this.
    Refused(u16, String),
    /// 404.
    NotFound(String),
    /// Another status (5xx after the retries).
    Status(u16, String),
    /// An answer that is not what the API documents.
    Answer(String),
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::Unreachable(e) => write!(f, "the source cannot be reached: {e}"),
            SourceError::Refused(code, detail) => {
                write!(f, "the source refused the API key ({code}: {detail})")
            }
            SourceError::NotFound(detail) => write!(f, "not found on the source ({detail})"),
            SourceError::Status(code, detail) => write!(f, "the source answered {code}: {detail}"),
            SourceError::Answer(e) => write!(f, "the source's answer is not v1.1.0's: {e}"),
        }
    }
}

/// A client of the source's API.
#[derive(Debug, Clone)]
pub struct Source {
    base: String,
    key: Option<String>,
    agent: ureq::Agent,
    /// How a request answered 429 or 5xx, or not at all, is tried again.
    retry: RetryPolicy,
}

/// The longest a request may take.
const TIMEOUT: Duration = Duration::from_secs(120);

impl Source {
    /// A client of the server at `base` (`http(s)://host[:port]`, a path prefix allowed), sending
    /// `key` as a bearer token when given.
    pub fn new(base: &str, key: Option<String>) -> Result<Source, String> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!(
                "--from {base}: not an http:// or https:// address of a Honcho server"
            ));
        }
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout(TIMEOUT)
            .max_idle_connections_per_host(64)
            .build();
        Ok(Source {
            base,
            key,
            agent,
            retry: RetryPolicy {
                max_attempts: 5,
                initial_backoff: Duration::from_millis(250),
                ..RetryPolicy::default()
            },
        })
    }

    /// The same client, trying each request `attempts` times.
    pub fn with_attempts(mut self, attempts: u32) -> Source {
        self.retry.max_attempts = attempts.max(1);
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Checks that the source documents the operations an import reads (its `/openapi.json`), once
    /// and without retrying: a wrong address fails at once.
    pub fn check_api(&self) -> Result<(), SourceError> {
        let once = self.clone().with_attempts(1);
        let document: Value = match once.call("GET", "/openapi.json", &[], None) {
            Err(SourceError::NotFound(_)) | Err(SourceError::Answer(_)) => {
                return Err(SourceError::Answer(format!(
                    "{}/openapi.json is not an OpenAPI document: is this a Honcho server?",
                    self.base
                )))
            }
            other => other?,
        };
        let paths = document.get("paths").and_then(Value::as_object);
        for (method, path) in OPERATIONS {
            let found = paths
                .and_then(|p| p.get(*path))
                .and_then(|p| p.get(*method))
                .is_some();
            if !found {
                return Err(SourceError::Answer(format!(
                    "it does not document {} {path}: not a Honcho v1.1.0 API",
                    method.to_uppercase()
                )));
            }
        }
        Ok(())
    }

    /// `GET path?query`, parsed.
    pub fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, SourceError> {
        self.call("GET", path, query, None)
    }

    /// Whether requests carry a key.
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// Every item of a list (`POST path` with `body`, page after page of [`PAGE_SIZE`]), handed to
    /// `each` a page at a time; stops at the first error (of the source, or `each`'s).
    pub fn each_page<T: DeserializeOwned, E: From<SourceError>>(
        &self,
        path: &str,
        body: &Value,
        mut each: impl FnMut(Vec<T>) -> Result<(), E>,
    ) -> Result<(), E> {
        let size = PAGE_SIZE.to_string();
        for page in 1u64.. {
            let query = [("page", page.to_string()), ("size", size.clone())];
            let answer: dto::Page<T> = self.call("POST", path, &query, Some(body))?;
            let last = answer.items.len() < PAGE_SIZE as usize || page >= answer.pages;
            if !answer.items.is_empty() {
                each(answer.items)?;
            }
            if last {
                break;
            }
        }
        Ok(())
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<T, SourceError> {
        let url = format!("{}{path}", self.base);
        let body = body.map(|b| serde_json::to_vec(b).expect("a JSON value serialises"));
        // What the last retryable failure was, for the error once the attempts are spent.
        let last_status = std::cell::Cell::new(None);
        let attempt = || {
            let mut request = self.agent.request(method, &url);
            for (k, v) in query {
                request = request.query(k, v);
            }
            if let Some(key) = &self.key {
                request = request.set("Authorization", &format!("Bearer {key}"));
            }
            let sent = match &body {
                Some(b) => request
                    .set("Content-Type", "application/json")
                    .send_bytes(b),
                None => request.call(),
            };
            match sent {
                Ok(answer) => serde_json::from_reader(std::io::BufReader::new(
                    answer.into_reader(),
                ))
                .map_err(|e| Failure::Fatal(SourceError::Answer(format!("{method} {path}: {e}")))),
                Err(ureq::Error::Status(code, answer)) => {
                    let (detail, retry_after) = error_answer(code, answer);
                    let message = detail
                        .strip_prefix(&format!("HTTP {code}"))
                        .map(|m| m.trim_start_matches(": ").to_string())
                        .unwrap_or(detail);
                    Err(match code {
                        401 | 403 => Failure::Fatal(SourceError::Refused(code, message)),
                        404 => Failure::Fatal(SourceError::NotFound(format!("{path}: {message}"))),
                        429 | 500..=599 => {
                            last_status.set(Some(code));
                            Failure::retry(format!("{code}: {message}"), retry_after)
                        }
                        _ => {
                            Failure::Fatal(SourceError::Status(code, format!("{path}: {message}")))
                        }
                    })
                }
                Err(ureq::Error::Transport(t)) => {
                    last_status.set(None);
                    Err(match transport_failure(&t, TIMEOUT) {
                        Ok(retryable) => Failure::Retry(retryable),
                        Err(detail) => Failure::Fatal(SourceError::Unreachable(detail)),
                    })
                }
            }
        };
        retrying(
            &self.retry,
            "source",
            method,
            &url,
            attempt,
            |detail| match last_status.get() {
                Some(code) => SourceError::Status(code, detail),
                None => SourceError::Unreachable(detail),
            },
        )
    }
}
