//! Route handlers, one module per resource. Each handler extracts and parses its input, makes one
//! store call off the async workers, and converts the result to its response shape.
//!
//! Every route lives in `configure`'s tree; utoipa-actix-web collects the OpenAPI paths from the same
//! registrations, so a route cannot exist without its documentation.

mod apps;
mod collections;
mod deriver;
mod dialectic;
mod documents;
mod erasure;
mod keys;
mod messages;
mod metamessages;
mod search;
mod sessions;
mod users;

use crate::dto::Object;
use crate::error::{ApiError, ValidationIssue};
use actix_web::web::Data;
use honcho_db::{Db, DbResult};
use honcho_domain::embed::Embedder;
use honcho_domain::{Content, Embedding, Invalid, Metadata, Name, Text};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;
use utoipa_actix_web::{scope, service_config::ServiceConfig};

/// Registers every `/v1` route.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(scope("/apps").configure(apps::configure))
        .configure(keys::configure);
}

/// Settings the handlers need besides the store.
#[derive(Debug, Clone, Default)]
pub struct Features {
    /// Whether new messages are queued for the deriver.
    pub enqueue_for_deriver: bool,
    /// The language models of `chat`; `None` when none is configured (405).
    pub models: Option<honcho_domain::llm::Models>,
    /// Wakes this process's deriver workers when messages were queued.
    pub deriver_signal: Option<std::sync::Arc<honcho_insights::Signal>>,
}

impl Features {
    /// Messages were stored: wake this process's deriver workers (when messages are queued).
    fn queued(&self) {
        if let (true, Some(signal)) = (self.enqueue_for_deriver, &self.deriver_signal) {
            signal.wake();
        }
    }

    /// Failed items were queued again: wake this process's deriver workers.
    fn requeued(&self) {
        if let Some(signal) = &self.deriver_signal {
            signal.wake();
        }
    }
}

/// Runs a blocking store call on actix's blocking pool. The store comes from an
/// [`Access`](crate::auth::Access), so only an authorised request reaches it.
async fn run<T, F>(db: &Db, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Db) -> DbResult<T> + Send + 'static,
{
    let db = db.clone();
    Ok(actix_web::web::block(move || f(&db)).await??)
}

/// Embeds `text` on the blocking pool, holding no database connection meanwhile.
async fn embed(embedder: &Data<dyn Embedder>, text: String) -> Result<Embedding, ApiError> {
    Ok(try_embed(embedder, text).await??)
}

/// [`embed`], with the embedder's failure given back as it is.
async fn try_embed(
    embedder: &Data<dyn Embedder>,
    text: String,
) -> Result<Result<Embedding, honcho_domain::embed::EmbedError>, ApiError> {
    let embedder = embedder.clone().into_inner();
    Ok(actix_web::web::block(move || {
        let vector = embedder.embed(&[text.as_str()])?.pop().ok_or_else(|| {
            honcho_domain::embed::EmbedError::BadResponse("no vector returned".into())
        })?;
        Ok(Embedding {
            vector,
            embedder: embedder.id().to_string(),
        })
    })
    .await?)
}

/// A 422 unless `top_k` is from 1 to `max`.
fn check_top_k(top_k: i64, max: usize) -> Result<(), ApiError> {
    let max = max as i64;
    if (1..=max).contains(&top_k) {
        return Ok(());
    }
    let (kind, msg, ctx) = if top_k < 1 {
        (
            "greater_than_equal",
            "Input should be greater than or equal to 1".to_string(),
            json!({ "ge": 1 }),
        )
    } else {
        (
            "less_than_equal",
            format!("Input should be less than or equal to {max}"),
            json!({ "le": max }),
        )
    };
    Err(ApiError::validation(
        ValidationIssue::new(kind, vec![json!("body"), json!("top_k")], msg, json!(top_k))
            .with_ctx(ctx),
    ))
}

fn body_loc(path: &[Value]) -> Vec<Value> {
    std::iter::once(json!("body"))
        .chain(path.iter().cloned())
        .collect()
}

/// A 422 for query parameter `name`.
fn invalid_query(name: &str, reason: &Invalid) -> ApiError {
    ApiError::validation(ValidationIssue::from_invalid(
        vec![json!("query"), json!(name)],
        reason,
        Value::Null,
    ))
}

fn invalid(path: &[Value], reason: &Invalid, input: Value) -> ApiError {
    ApiError::validation(ValidationIssue::from_invalid(body_loc(path), reason, input))
}

fn parse_name(s: String, path: &[Value]) -> Result<Name, ApiError> {
    Name::parse(s.clone()).map_err(|r| invalid(path, &r, Value::String(s)))
}

/// A name given in the path (`get_or_create/{name}`).
fn parse_path_name(s: String) -> Result<Name, ApiError> {
    Name::parse(s.clone()).map_err(|r| {
        ApiError::validation(ValidationIssue::from_invalid(
            vec![json!("path"), json!("name")],
            &r,
            Value::String(s),
        ))
    })
}

fn parse_content(s: String, path: &[Value]) -> Result<Content, ApiError> {
    match Content::parse(s) {
        Ok(c) => Ok(c),
        // The input of a too-long content is not echoed back in full.
        Err(r) => Err(invalid(path, &r, Value::Null)),
    }
}

fn parse_metadata(m: Object, path: &[Value]) -> Result<Metadata, ApiError> {
    Metadata::parse(m.clone()).map_err(|r| invalid(path, &r, Value::Object(m)))
}

/// A list filter: `None`, `null` and `{}` all mean "no filter".
fn parse_filter(f: Option<Object>) -> Result<Option<Metadata>, ApiError> {
    match f {
        Some(m) if !m.is_empty() => parse_metadata(m, &[json!("filter")]).map(Some),
        _ => Ok(None),
    }
}

/// `/v1/apps/{app_id}`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AppPath {
    /// ID of the app
    pub app_id: String,
}

/// `/v1/apps/{app_id}/users/{user_id}`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserPath {
    /// ID of the app
    pub app_id: String,
    /// ID of the user
    pub user_id: String,
}

/// `/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SessionPath {
    /// ID of the app
    pub app_id: String,
    /// ID of the user
    pub user_id: String,
    /// ID of the session
    pub session_id: String,
}

/// `/v1/apps/{app_id}/users/{user_id}/collections/{collection_id}`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CollectionPath {
    /// ID of the app
    pub app_id: String,
    /// ID of the user
    pub user_id: String,
    /// ID of the collection
    pub collection_id: String,
}

impl CollectionPath {
    fn key(self) -> honcho_domain::CollectionKey {
        honcho_domain::CollectionKey {
            app_id: self.app_id,
            user_id: self.user_id,
            collection_id: self.collection_id,
        }
    }
}

fn parse_text(r: Result<Text, Invalid>, path: &[Value]) -> Result<Text, ApiError> {
    r.map_err(|reason| invalid(path, &reason, Value::Null))
}

impl SessionPath {
    fn key(self) -> honcho_domain::SessionKey {
        honcho_domain::SessionKey {
            app_id: self.app_id,
            user_id: self.user_id,
            session_id: self.session_id,
        }
    }
}
