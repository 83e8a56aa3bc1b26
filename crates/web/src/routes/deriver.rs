//! The deriver's queue under the operator's control (additions to v1.1.0): its status, the
//! messages whose derivation failed, and running them again.

use super::{run, AppPath, Features};
use crate::auth::{scope, Access};
use crate::dto::{DeriverRetry, DeriverStatus, FailedItem, Page, Retried};
use crate::error::{ApiError, ValidationIssue};
use crate::extract::{Body, ListParams, Query};
use actix_web::web::{Data, Json, Path};
use actix_web::{get, post, HttpRequest};
use honcho_domain::queue::{check_retry_ids, FailedScope, QueueScope, RetryRequest};
use serde_json::json;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(deriver_status)
        .service(failed_items)
        .service(retry_failed);
}

/// The deriver's queue for the app (optionally one user or session): counts by status, the age of
/// the oldest message not yet derived, and the oldest failure
#[utoipa::path(
    tag = "apps",
    operation_id = "deriver_status_v1_apps__app_id__deriver_status_get",
    params(
        AppPath,
        ("user_id" = Option<String>, Query, description = "Only this user's messages"),
        ("session_id" = Option<String>, Query, description = "Only this session's messages"),
    ),
    responses((status = 200, description = "The queue's counts", body = DeriverStatus))
)]
#[get("/{app_id}/deriver/status")]
async fn deriver_status(
    access: Access<scope::AppQuery>,
    req: HttpRequest,
    path: Path<AppPath>,
) -> Result<Json<DeriverStatus>, ApiError> {
    let q = Query::of(&req)?;
    let scope = QueueScope {
        app_id: path.into_inner().app_id,
        user_id: q.string("user_id")?,
        session_id: q.string("session_id")?,
    };
    let counts = run(access.db(), move |db| db.queue_counts(&scope)).await?;
    Ok(Json(counts.into()))
}

/// The messages whose derivation failed after their last attempt
///
/// Oldest first (`reverse=true`: newest first), with the last attempt's error (at most 500
/// characters). Run them again with `deriver/retry`.
#[utoipa::path(
    tag = "deriver",
    params(
        AppPath,
        ("user_id" = Option<String>, Query, description = "Only this user's messages"),
        ("session_id" = Option<String>, Query, description = "Only this session's messages"),
        ListParams,
    ),
    responses((status = 200, description = "A page of failed messages", body = Page<FailedItem>))
)]
#[get("/{app_id}/deriver/failed")]
async fn failed_items(
    access: Access<scope::AppQuery>,
    req: HttpRequest,
    path: Path<AppPath>,
) -> Result<Json<Page<FailedItem>>, ApiError> {
    let page = ListParams::page(&req)?;
    let q = Query::of(&req)?;
    let scope = FailedScope {
        app_id: Some(path.into_inner().app_id),
        user_id: q.string("user_id")?,
        session_id: q.string("session_id")?,
    };
    let failed = run(access.db(), move |db| db.failed_items(&scope, page)).await?;
    Ok(Json(Page::from_domain(failed, FailedItem::from)))
}

/// Run failed messages again
///
/// The app's failed messages (of one session with `session_id`; only those named with
/// `message_ids`) go back to pending with fresh attempts and are derived again, each session's in
/// the order of its messages: the session's messages not derived yet wait behind them. A worker on
/// such a session at that moment gives it up (its attempt is done again). Answers how many.
#[utoipa::path(
    tag = "deriver",
    params(AppPath),
    request_body(content = DeriverRetry, description = "Which failed messages (all of the app's when empty)"),
    responses((status = 200, description = "How many messages were queued again", body = Retried))
)]
#[post("/{app_id}/deriver/retry")]
async fn retry_failed(
    access: Access<scope::App>,
    features: Data<Features>,
    path: Path<AppPath>,
    body: Body<DeriverRetry>,
) -> Result<Json<Retried>, ApiError> {
    let Body(DeriverRetry {
        session_id,
        message_ids,
    }) = body;
    if let Some(ids) = &message_ids {
        check_retry_ids(ids.len()).map_err(|reason| {
            ApiError::validation(ValidationIssue::from_invalid(
                vec![json!("body"), json!("message_ids")],
                &reason,
                json!(ids),
            ))
        })?;
    }
    let request = RetryRequest {
        scope: FailedScope {
            app_id: Some(path.into_inner().app_id),
            user_id: None,
            session_id,
        },
        message_ids,
    };
    let retried = run(access.db(), move |db| db.retry_failed(&request)).await?;
    if retried > 0 {
        features.requeued();
    }
    Ok(Json(Retried { retried }))
}
