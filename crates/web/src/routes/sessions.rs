use super::{parse_filter, parse_metadata, run, SessionPath, UserPath};
use crate::auth::{scope, Access};
use crate::dto::{Deleted, Page, Session, SessionCreate, SessionGet, SessionUpdate};
use crate::error::ApiError;
use crate::extract::{Body, FromQuery, ListParams, OptionalBody, Query};
use actix_web::web::{Json, Path};
use actix_web::{delete, get, post, put, HttpRequest};
use honcho_domain::SessionKey;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_session)
        .service(create_session)
        .service(list_sessions)
        .service(update_session)
        .service(delete_session)
        .service(clone_session)
        .service(super::dialectic::chat)
        .service(super::search::session_context)
        .service(
            utoipa_actix_web::scope("/{session_id}/messages").configure(super::messages::configure),
        );
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct GetSessionQuery {
    /// Session ID to retrieve. If not provided, uses JWT token
    session_id: Option<String>,
}

impl FromQuery for GetSessionQuery {
    fn from_query(q: &Query) -> Result<Self, ApiError> {
        Ok(GetSessionQuery {
            session_id: q.string("session_id")?,
        })
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CloneQuery {
    /// Message ID to cut off the clone at
    message_id: Option<String>,
    /// Whether to deep copy metamessages
    #[param(default = false)]
    #[serde(default)]
    deep_copy: bool,
}

impl FromQuery for CloneQuery {
    fn from_query(q: &Query) -> Result<Self, ApiError> {
        Ok(CloneQuery {
            message_id: q.string("message_id")?,
            deep_copy: q.boolean("deep_copy", false)?,
        })
    }
}

/// Get a session by id (from the query, or the token's session)
#[utoipa::path(
    tag = "sessions",
    operation_id = "get_session_v1_apps__app_id__users__user_id__sessions_get",
    params(UserPath, GetSessionQuery),
    responses((status = 200, description = "The session", body = Session))
)]
#[get("")]
async fn get_session(
    access: Access<scope::Token>,
    req: HttpRequest,
    path: Path<UserPath>,
) -> Result<Json<Session>, ApiError> {
    let UserPath { app_id, user_id } = path.into_inner();
    let session_id = access.claims().resolve_session(
        &app_id,
        &user_id,
        GetSessionQuery::parse(&req)?.session_id,
    )?;
    let key = SessionKey {
        app_id,
        user_id,
        session_id,
    };
    let session = run(access.db(), move |db| db.get_session(&key)).await?;
    Ok(Json(session.into()))
}

/// Create a session for a user
#[utoipa::path(
    tag = "sessions",
    operation_id = "create_session_v1_apps__app_id__users__user_id__sessions_post",
    params(UserPath),
    request_body(content = SessionCreate, description = "Session creation parameters"),
    responses((status = 200, description = "The new session", body = Session))
)]
#[post("")]
async fn create_session(
    access: Access<scope::AppUser>,
    path: Path<UserPath>,
    body: Body<SessionCreate>,
) -> Result<Json<Session>, ApiError> {
    let metadata = parse_metadata(body.0.metadata, &[json!("metadata")])?;
    let UserPath { app_id, user_id } = path.into_inner();
    let session = run(access.db(), move |db| {
        db.create_session(&app_id, &user_id, metadata)
    })
    .await?;
    Ok(Json(session.into()))
}

/// List a user's sessions
#[utoipa::path(
    tag = "sessions",
    operation_id = "get_sessions_v1_apps__app_id__users__user_id__sessions_list_post",
    params(UserPath, ListParams),
    request_body(content = Option<SessionGet>, description = "Filtering and pagination options for the sessions list"),
    responses((status = 200, description = "A page of sessions", body = Page<Session>))
)]
#[post("/list")]
async fn list_sessions(
    access: Access<scope::AppUser>,
    req: HttpRequest,
    path: Path<UserPath>,
    body: OptionalBody<SessionGet>,
) -> Result<Json<Page<Session>>, ApiError> {
    let page = ListParams::page(&req)?;
    let (filter, only_active) = match body.0 {
        Some(b) => (parse_filter(b.filter)?, b.is_active),
        None => (None, false),
    };
    let UserPath { app_id, user_id } = path.into_inner();
    let sessions = run(access.db(), move |db| {
        db.list_sessions(&app_id, &user_id, filter.as_ref(), only_active, page)
    })
    .await?;
    Ok(Json(Page::from_domain(sessions, Session::from)))
}

/// Replace a session's metadata
#[utoipa::path(
    tag = "sessions",
    operation_id = "update_session_v1_apps__app_id__users__user_id__sessions__session_id__put",
    params(SessionPath),
    request_body(content = SessionUpdate, description = "Updated session parameters"),
    responses((status = 200, description = "The updated session", body = Session))
)]
#[put("/{session_id}")]
async fn update_session(
    access: Access<scope::Session>,
    path: Path<SessionPath>,
    body: Body<SessionUpdate>,
) -> Result<Json<Session>, ApiError> {
    let metadata = parse_metadata(body.0.metadata, &[json!("metadata")])?;
    let key = path.into_inner().key();
    let session = run(access.db(), move |db| db.update_session(&key, metadata)).await?;
    Ok(Json(session.into()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeleteSessionQuery {
    /// An addition to v1.1.0: `true` erases the session for good instead of deactivating it: its
    /// messages, its metamessages, the deriver's work on it, and the facts derived from its
    /// messages (documents whose `metadata.message_id` names one of them), in one transaction.
    /// The user's other sessions and facts stay.
    #[param(default = false)]
    #[serde(default)]
    erase: bool,
}

impl FromQuery for DeleteSessionQuery {
    fn from_query(q: &Query) -> Result<Self, ApiError> {
        Ok(DeleteSessionQuery {
            erase: q.boolean("erase", false)?,
        })
    }
}

/// Deactivate a session (its messages stay readable), or with `erase=true` erase it
#[utoipa::path(
    tag = "sessions",
    operation_id = "delete_session_v1_apps__app_id__users__user_id__sessions__session_id__delete",
    params(SessionPath, DeleteSessionQuery),
    responses((status = 200, description = "The session is inactive (or, with `erase=true`, erased)", body = Deleted))
)]
#[delete("/{session_id}")]
async fn delete_session(
    access: Access<scope::Session>,
    req: HttpRequest,
    path: Path<SessionPath>,
) -> Result<Json<Deleted>, ApiError> {
    let erase = DeleteSessionQuery::parse(&req)?.erase;
    let key = path.into_inner().key();
    let revocations = access.revocations();
    run(access.db(), move |db| match erase {
        false => db.delete_session(&key),
        true => {
            let erased = db.erase_session(&key)?;
            super::erasure::keys_revoked(&erased, &revocations, db);
            Ok(())
        }
    })
    .await?;
    Ok(Json(Deleted {
        message: match erase {
            false => "Session deleted successfully",
            true => "Session erased successfully",
        }
        .into(),
    }))
}

/// Copy a session and its messages (up to `message_id`, inclusive) into a new session
#[utoipa::path(
    tag = "sessions",
    operation_id = "clone_session_v1_apps__app_id__users__user_id__sessions__session_id__clone_get",
    params(SessionPath, CloneQuery),
    responses((status = 200, description = "The new session", body = Session))
)]
#[get("/{session_id}/clone")]
async fn clone_session(
    access: Access<scope::Session>,
    req: HttpRequest,
    path: Path<SessionPath>,
) -> Result<Json<Session>, ApiError> {
    let CloneQuery {
        message_id: cut_off,
        deep_copy,
    } = CloneQuery::parse(&req)?;
    let key = path.into_inner().key();
    let session = run(access.db(), move |db| {
        db.clone_session(&key, cut_off.as_deref(), deep_copy)
    })
    .await?;
    Ok(Json(session.into()))
}
