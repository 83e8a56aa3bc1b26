//! The HTTP layer of honcho-rs: actix-web routes under `/v1`, the request and response shapes of the
//! v1.1.0 contract, FastAPI-shaped validation errors, and the OpenAPI document built from the same
//! route list that serves requests.

mod app;
pub mod auth;
pub mod dto;
mod error;
mod extract;
mod observe;
mod openapi;
mod path;
mod routes;

pub use app::{api_doc, api_json, api_yaml, build_app, AppState, DEFAULT_CORS_ORIGINS};
pub use error::{ApiError, ValidationIssue};
pub use observe::{metrics, set_process_gauges};
pub use routes::Features;

/// Largest request body accepted; larger ones are answered 413.
pub const BODY_LIMIT: usize = 32 * 1024 * 1024;
