//! `chat` (the dialectic).

use super::{run, Features, SessionPath};
use crate::auth::{scope, Access};
use crate::dto::{DialecticOptions, DialecticResponse};
use crate::error::{ApiError, ValidationIssue};
use crate::extract::Body;
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes, Data, Path};
use actix_web::{post, HttpResponse};
use futures_util::StreamExt;
use honcho_domain::context::TokenCounter;
use honcho_domain::insights::{check_query, check_query_count};
use honcho_domain::llm::LlmError;
use honcho_insights::dialectic;
use serde_json::{json, Value};

/// The detail of a `chat` when no language model is configured.
const CHAT_DISABLED: &str = "Feature is disabled: chat needs a language model; set \
LLM_BASE_URL and LLM_MODEL (OpenAI-compatible), or LLM_PROVIDER=anthropic with ANTHROPIC_API_KEY";

/// `queries`: a string, or a list of 1 to 25 strings, each at most 10 000 characters. Wrong types
/// are reported as FastAPI reports a failed `str | list[str]`.
fn parse_queries(queries: Value) -> Result<Vec<String>, ApiError> {
    let at = |rest: &[Value]| -> Vec<Value> {
        [json!("body"), json!("queries")]
            .into_iter()
            .chain(rest.iter().cloned())
            .collect()
    };
    let checked = |q: String, loc: Vec<Value>| -> Result<String, ApiError> {
        check_query(&q).map_err(|r| {
            ApiError::validation(ValidationIssue::from_invalid(loc, &r, Value::Null))
        })?;
        Ok(q)
    };
    match queries {
        Value::String(q) => Ok(vec![checked(q, at(&[]))?]),
        Value::Array(items) => {
            check_query_count(items.len()).map_err(|r| {
                let issue = match r {
                    honcho_domain::Invalid::Rule(_) => ValidationIssue::new(
                        "too_short",
                        at(&[]),
                        "List should have at least 1 item after validation, not 0",
                        json!([]),
                    )
                    .with_ctx(json!({ "field_type": "List", "min_length": 1, "actual_length": 0 })),
                    other => ValidationIssue::from_invalid(at(&[]), &other, Value::Null),
                };
                ApiError::validation(issue)
            })?;
            let wrong: Vec<ValidationIssue> = items
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.is_string())
                .map(|(i, v)| {
                    ValidationIssue::new(
                        "string_type",
                        at(&[json!("list[str]"), json!(i)]),
                        "Input should be a valid string",
                        v.clone(),
                    )
                })
                .collect();
            if !wrong.is_empty() {
                let mut issues = vec![ValidationIssue::new(
                    "string_type",
                    at(&[json!("str")]),
                    "Input should be a valid string",
                    Value::Array(items),
                )];
                issues.extend(wrong);
                return Err(ApiError::Validation(issues));
            }
            // Every item is a string now.
            items
                .into_iter()
                .enumerate()
                .filter_map(|(i, v)| match v {
                    Value::String(q) => Some(checked(q, at(&[json!(i)]))),
                    _ => None,
                })
                .collect()
        }
        other => Err(ApiError::Validation(vec![
            ValidationIssue::new(
                "string_type",
                at(&[json!("str")]),
                "Input should be a valid string",
                other.clone(),
            ),
            ValidationIssue::new(
                "list_type",
                at(&[json!("list[str]")]),
                "Input should be a valid list",
                other,
            ),
        ])),
    }
}

impl From<LlmError> for ApiError {
    fn from(e: LlmError) -> Self {
        // The provider's words (its URL, its message, whatever it echoes) are for the operator's
        // log; the client gets a fixed detail and the request id (`X-Request-Id`) to ask about.
        tracing::warn!(error = %e, "language model failed");
        let (status, detail) = match e {
            LlmError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "language model provider unavailable",
            ),
            LlmError::Provider(_) => (StatusCode::BAD_GATEWAY, "language model provider failed"),
            LlmError::BadResponse(_) => (
                StatusCode::BAD_GATEWAY,
                "language model provider answered unexpectedly",
            ),
        };
        ApiError::Status(status, detail.into())
    }
}

impl From<dialectic::DialecticError<honcho_db::DbError>> for ApiError {
    fn from(e: dialectic::DialecticError<honcho_db::DbError>) -> Self {
        match e {
            dialectic::DialecticError::Store(e) => e.into(),
            dialectic::DialecticError::Embed(e) => e.into(),
        }
    }
}

/// Ask about the user: an answer from what Honcho knows of them and this conversation
#[utoipa::path(
    tag = "sessions",
    operation_id = "chat_v1_apps__app_id__users__user_id__sessions__session_id__chat_post",
    params(SessionPath),
    request_body(content = DialecticOptions, description = "Dialectic Endpoint Parameters"),
    responses(
        (status = 200, description = "Response to a question informed by Honcho's User Representation",
            content(
                (DialecticResponse = "application/json"),
                (String = "text/event-stream")
            )
        ),
    )
)]
#[post("/{session_id}/chat")]
pub(super) async fn chat(
    access: Access<scope::Session>,
    features: Data<Features>,
    ranker: super::search::Ranker,
    counter: Data<dyn TokenCounter>,
    path: Path<SessionPath>,
    body: Body<DialecticOptions>,
) -> Result<HttpResponse, ApiError> {
    let Body(DialecticOptions { queries, stream }) = body;
    let queries = parse_queries(queries)?;
    let Some(models) = features.models.clone() else {
        return Err(ApiError::Status(
            StatusCode::METHOD_NOT_ALLOWED,
            CHAT_DISABLED.into(),
        ));
    };
    let key = path.into_inner().key();
    let (embedder, counter, retrieval) = (
        ranker.embedder.into_inner(),
        counter.into_inner(),
        ranker.retrieval,
    );
    let m = models.clone();
    let k = key.clone();
    let prepared = run(access.db(), move |db| {
        let reading = dialectic::Reading {
            embedder: embedder.as_ref(),
            retrieval,
            counter: counter.as_ref(),
        };
        Ok(dialectic::prepare(db, &m, reading, &k, &queries))
    })
    .await??;
    // The context is kept once the model answered (or began to): a failed answer writes nothing.
    let remember = |prepared: dialectic::Prepared| {
        run(access.db(), move |db| {
            dialectic::remember(db, &key, &prepared)
        })
    };
    if !stream {
        let p = prepared.clone();
        let content = web::block(move || dialectic::answer(&models, &p)).await??;
        remember(prepared).await?;
        return Ok(HttpResponse::Ok().json(DialecticResponse { content }));
    }
    let kept = prepared.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<String, LlmError>>();
    actix_web::rt::task::spawn_blocking(move || {
        let pieces = tx.clone();
        let result = dialectic::stream(&models, &prepared, &mut |text| {
            let _ = pieces.send(Ok(text.to_string()));
        });
        if let Err(e) = result {
            let _ = tx.send(Err(e));
        }
    });
    // Whatever fails before the first piece is an ordinary error answer.
    let first = match rx.recv().await {
        None => String::new(),
        Some(Ok(text)) => text,
        Some(Err(e)) => return Err(e.into()),
    };
    remember(kept).await?;
    let rest = futures_util::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await? {
            Ok(text) => Some((Ok(Bytes::from(text)), Some(rx))),
            Err(e) => {
                // The answer is cut: the connection ends without the closing chunk, so the client
                // sees a broken stream, not a complete answer.
                tracing::warn!(error = %e, "language model failed while streaming an answer");
                Some((
                    Err(actix_web::error::ErrorBadGateway(
                        "language model provider failed",
                    )),
                    None,
                ))
            }
        }
    });
    let body = futures_util::stream::once(async move { Ok(Bytes::from(first)) }).chain(rest);
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(body))
}
