//! What every HTTP client of another service shares (the models', and `honcho import`'s of its
//! source): the retry policy and loop, and reading failures (status answers, transport errors,
//! `Retry-After`, the service's message, quoted safely).

use std::io::Read;
use std::time::Duration;

/// Largest part of an error answer read to find the provider's message.
const MAX_ERROR_BODY_BYTES: u64 = 64 * 1024;
/// Longest provider error message quoted in an error.
pub(crate) const MAX_QUOTED_CHARS: usize = 300;
/// Idle keep-alive connections a client keeps to its provider. Deriver workers and chat requests
/// call a provider concurrently; with fewer kept, every call beyond them opens a connection (and,
/// over TLS, repeats the handshake).
pub(crate) const IDLE_CONNECTIONS: usize = 64;

/// How often and how patiently a failing request is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included; at least 1.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled before each further one.
    pub initial_backoff: Duration,
    /// Longest wait computed by doubling.
    pub max_backoff: Duration,
    /// Longest wait a `Retry-After` header may impose.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, waiting 200 ms, 400 ms and 800 ms in between (or what `Retry-After` says, up to
    /// 30 s).
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based): `initial_backoff * 2^(attempt -
    /// 1)`, at most `max_backoff`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

/// Runs `attempt` until it succeeds, fails for good, or `policy` gives up (then `gave_up` makes the
/// error from the last failure). Waits `Retry-After` when the provider said, else the backoff with
/// jitter; one log line per failed attempt, naming `what` was asked (`method` of `endpoint`).
pub fn retrying<T, E>(
    policy: &RetryPolicy,
    what: &str,
    method: &str,
    endpoint: &str,
    mut attempt: impl FnMut() -> Result<T, Failure<E>>,
    gave_up: impl FnOnce(String) -> E,
) -> Result<T, E> {
    let mut n = 1;
    loop {
        let failure = match attempt() {
            Ok(value) => return Ok(value),
            Err(Failure::Fatal(error)) => return Err(error),
            Err(Failure::Retry(failure)) => failure,
        };
        if n >= policy.max_attempts {
            let tries = if n == 1 { "attempt" } else { "attempts" };
            return Err(gave_up(format!(
                "{method} {endpoint}: {} (gave up after {n} {tries})",
                failure.detail
            )));
        }
        let wait = match failure.retry_after {
            Some(wait) => wait.min(policy.max_retry_after),
            None => jitter(policy.backoff(n)),
        };
        tracing::warn!(
            endpoint,
            attempt = n,
            max_attempts = policy.max_attempts,
            wait_ms = wait.as_millis() as u64,
            error = %failure.detail,
            "{what} request failed; retrying"
        );
        std::thread::sleep(wait);
        n += 1;
    }
}

/// `wait` plus up to a quarter more, so that clients that failed together do not retry together.
fn jitter(wait: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    wait + wait.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

/// A transport error: worth retrying (timeouts, DNS, refused or dropped connections), or the
/// detail of a final failure.
pub fn transport_failure(
    transport: &ureq::Transport,
    timeout: Duration,
) -> Result<Retryable, String> {
    use ureq::ErrorKind::{BadHeader, BadStatus, ConnectionFailed, Dns, Io};
    let source = std::error::Error::source(transport);
    if source
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(is_timeout)
    {
        return Ok(Retryable {
            detail: format!("timed out after {timeout:?}"),
            retry_after: None,
        });
    }
    // Like ureq's `Display`, without the URL that the final error names already.
    let mut detail = transport.kind().to_string();
    if let Some(message) = transport.message() {
        detail.push_str(&format!(": {message}"));
    }
    if let Some(source) = source {
        detail.push_str(&format!(": {source}"));
    }
    match transport.kind() {
        Dns | ConnectionFailed | Io | BadStatus | BadHeader => Ok(Retryable {
            detail,
            retry_after: None,
        }),
        _ => Err(detail),
    }
}

/// What an error answer says: `HTTP <status>: <the provider's message>`, and the wait a 429 or 503
/// asks for (`Retry-After`).
pub fn error_answer(status: u16, response: ureq::Response) -> (String, Option<Duration>) {
    let retry_after = if status == 429 || status == 503 {
        response.header("retry-after").and_then(parse_retry_after)
    } else {
        None
    };
    let mut raw = Vec::new();
    // The message is a courtesy: an unreadable error body still leaves the status to report.
    let _ = response
        .into_reader()
        .take(MAX_ERROR_BODY_BYTES)
        .read_to_end(&mut raw);
    let detail = match provider_message(&raw) {
        Some(message) => format!("HTTP {status}: {message}"),
        None => format!("HTTP {status}"),
    };
    (detail, retry_after)
}

/// Why an attempt failed.
pub enum Failure<E> {
    /// Worth another attempt.
    Retry(Retryable),
    /// Final.
    Fatal(E),
}

pub struct Retryable {
    pub detail: String,
    pub retry_after: Option<Duration>,
}

impl<E> Failure<E> {
    pub fn retry(detail: String, retry_after: Option<Duration>) -> Self {
        Failure::Retry(Retryable {
            detail,
            retry_after,
        })
    }
}

pub(crate) fn is_timeout(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

/// `Retry-After` in (possibly fractional) seconds; the HTTP-date form is ignored (backoff applies).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// The provider's explanation in an error body: `{"error": {"message": ...}}` (OpenAI, vLLM),
/// `{"error": "..."}` (Ollama) or `{"message": ...}`; otherwise the start of a non-empty text body.
pub(crate) fn provider_message(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let message = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(json) => {
            let found = json
                .pointer("/error/message")
                .or_else(|| json.get("error"))
                .or_else(|| json.get("message"))
                .or_else(|| json.get("detail"));
            match found {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => text.to_string(),
            }
        }
        Err(_) => text.to_string(),
    };
    Some(quote(&message))
}

/// The first [`MAX_QUOTED_CHARS`] characters of `message`, on one line.
pub(crate) fn quote(message: &str) -> String {
    let one_line: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let one_line = one_line.trim();
    match one_line.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line.to_string(),
    }
}
