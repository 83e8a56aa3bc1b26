//! `ApiError`: the one mapping from every failure to an HTTP answer. Client errors carry their detail;
//! internal ones are logged with their cause and answered with a fixed text.

use actix_web::http::header::RETRY_AFTER;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use honcho_db::DbError;
use honcho_domain::{Error as DomainError, Invalid};
use serde::Serialize;
use serde_json::{json, Value};
use std::fmt;

/// One entry of a FastAPI 422 body: `{"type", "loc", "msg", "input", "ctx"?}`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ValidationIssue {
    #[serde(rename = "type")]
    pub kind: String,
    pub loc: Vec<Value>,
    pub msg: String,
    pub input: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Value>,
}

/// The most characters of a request's input a 422 echoes back.
pub const ECHO_MAX: usize = 256;

/// `input` as a 422 echoes it: whole when its JSON text has at most [`ECHO_MAX`] characters, else
/// its first [`ECHO_MAX`] characters (of the string, or of the JSON text) and a note that it was
/// cut, so that an answer never grows with the request.
pub fn echo(input: Value) -> Value {
    /// Collects JSON text up to a bound, then stops the serialiser.
    struct Bounded(Vec<u8>);
    impl std::io::Write for Bounded {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0.len() + buf.len() > ECHO_MAX * 4 + 8 {
                return Err(std::io::Error::other("long enough"));
            }
            self.0.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    // At most one character more than is shown: enough to tell whether it must be cut.
    let head: String = match &input {
        Value::String(s) => s.chars().take(ECHO_MAX + 1).collect(),
        _ => {
            let mut out = Bounded(Vec::new());
            let _ = serde_json::to_writer(&mut out, &input);
            String::from_utf8_lossy(&out.0)
                .chars()
                .take(ECHO_MAX + 1)
                .collect()
        }
    };
    if head.chars().count() <= ECHO_MAX {
        return input;
    }
    let shown: String = head.chars().take(ECHO_MAX).collect();
    Value::String(format!(
        "{shown}... (cut: only the first {ECHO_MAX} characters are shown)"
    ))
}

impl ValidationIssue {
    pub fn new(kind: &str, loc: Vec<Value>, msg: impl Into<String>, input: Value) -> Self {
        ValidationIssue {
            kind: kind.to_string(),
            loc,
            msg: msg.into(),
            input: echo(input),
            ctx: None,
        }
    }
    pub fn with_ctx(mut self, ctx: Value) -> Self {
        self.ctx = Some(ctx);
        self
    }

    /// The issue for a value that failed a domain rule, in pydantic's words.
    pub fn from_invalid(loc: Vec<Value>, reason: &Invalid, input: Value) -> Self {
        let msg = reason.to_string();
        match reason {
            Invalid::TooShort { min } => Self::new("string_too_short", loc, msg, input)
                .with_ctx(json!({ "min_length": min })),
            Invalid::TooLong { max } => {
                Self::new("string_too_long", loc, msg, input).with_ctx(json!({ "max_length": max }))
            }
            Invalid::TooManyItems { max, actual } => Self::new("too_long", loc, msg, input)
                .with_ctx(
                    json!({ "field_type": "List", "max_length": max, "actual_length": actual }),
                ),
            Invalid::TooManyKeys { max, actual } => Self::new("too_long", loc, msg, input)
                .with_ctx(
                    json!({ "field_type": "Dictionary", "max_length": max, "actual_length": actual }),
                ),
            Invalid::ContainsNul => Self::new("value_error", loc, msg, input)
                .with_ctx(json!({ "error": "NUL characters (\\u0000) are not allowed" })),
            Invalid::TooLarge { max_bytes } => Self::new("value_error", loc, msg, input).with_ctx(
                json!({ "error": format!("at most {max_bytes} bytes of JSON are allowed") }),
            ),
            Invalid::Rule(rule) => {
                Self::new("value_error", loc, msg, input).with_ctx(json!({ "error": rule }))
            }
        }
    }
}

/// Seconds a client is asked to wait after a 503.
const RETRY_AFTER_SECS: u32 = 1;

/// Every error body: `{"detail": ...}`, fields in FastAPI's order.
#[derive(Serialize)]
struct Detail<T: Serialize> {
    detail: T,
}

#[derive(Debug)]
pub enum ApiError {
    /// Any non-validation client error: `{"detail": "..."}`.
    Status(StatusCode, String),
    /// A 422 with FastAPI's list of issues.
    Validation(Vec<ValidationIssue>),
    /// A fault of ours or of the database; the cause is logged, never sent.
    Internal(String),
    /// An outage of the database (unreachable, connection lost, disk full, read-only): a 503 whose
    /// detail names the condition, with `Retry-After`. The cause is logged, never sent.
    Unavailable { detail: String, cause: String },
}

impl ApiError {
    pub fn validation(issue: ValidationIssue) -> Self {
        ApiError::Validation(vec![issue])
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError::Status(StatusCode::NOT_FOUND, detail.into())
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        ApiError::Status(StatusCode::UNAUTHORIZED, detail.into())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Status(code, detail) => write!(f, "{code}: {detail}"),
            ApiError::Validation(issues) => write!(f, "422: {} validation issue(s)", issues.len()),
            ApiError::Internal(cause) => write!(f, "internal error: {cause}"),
            ApiError::Unavailable { detail, cause } => write!(f, "{detail}: {cause}"),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotFound(d) => ApiError::Status(StatusCode::NOT_FOUND, d),
            DomainError::Conflict(d) => ApiError::Status(StatusCode::CONFLICT, d),
            DomainError::Unprocessable(d) => ApiError::Status(StatusCode::UNPROCESSABLE_ENTITY, d),
            DomainError::InvalidField { field, reason } => {
                ApiError::validation(ValidationIssue::from_invalid(
                    vec![json!("body"), json!(field)],
                    &reason,
                    Value::Null,
                ))
            }
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Domain(d) => d.into(),
            DbError::Unavailable { outage, cause } => ApiError::Unavailable {
                detail: format!("Database unavailable: {outage}"),
                cause,
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<honcho_domain::embed::EmbedError> for ApiError {
    fn from(e: honcho_domain::embed::EmbedError) -> Self {
        use honcho_domain::embed::EmbedError;
        // The provider's words are for the operator's log, never the client's answer.
        tracing::warn!(error = %e, "embedding failed");
        let (status, detail) = match e {
            EmbedError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "embedding provider unavailable",
            ),
            EmbedError::Provider(_) => (StatusCode::BAD_GATEWAY, "embedding provider failed"),
            EmbedError::BadResponse(_) => (
                StatusCode::BAD_GATEWAY,
                "embedding provider answered unexpectedly",
            ),
        };
        ApiError::Status(status, detail.into())
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Status(code, _) => *code,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        match self {
            ApiError::Status(_, detail) => res.json(Detail { detail }),
            ApiError::Validation(issues) => res.json(Detail { detail: issues }),
            ApiError::Internal(cause) => {
                tracing::error!(cause = %cause, "request failed");
                res.json(Detail {
                    detail: "An unexpected error occurred",
                })
            }
            ApiError::Unavailable { detail, cause } => {
                // The store logs an outage once when it begins and once when it ends.
                tracing::debug!(cause = %cause, "{detail}");
                res.insert_header((RETRY_AFTER, RETRY_AFTER_SECS.to_string()))
                    .json(Detail { detail })
            }
        }
    }
}
