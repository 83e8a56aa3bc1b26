use super::{parse_content, parse_filter, parse_metadata, run, Features, SessionPath};
use crate::auth::{scope, Access};
use crate::dto::{Message, MessageBatchCreate, MessageCreate, MessageGet, MessageUpdate, Page};
use crate::error::ApiError;
use crate::extract::{Body, ListParams, OptionalBody};
use actix_web::web::{Data, Json, Path};
use actix_web::{get, post, put, HttpRequest};
use honcho_domain::values::check_batch;
use honcho_domain::NewMessage;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_message)
        .service(create_messages)
        .service(list_messages)
        .service(get_message)
        .service(update_message)
        .service(super::search::query_session_messages);
}

/// `.../messages/{message_id}`
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct MessagePath {
    /// ID of the app
    app_id: String,
    /// ID of the user
    user_id: String,
    /// ID of the session
    session_id: String,
    /// ID of the message
    message_id: String,
}

impl MessagePath {
    fn split(self) -> (honcho_domain::SessionKey, String) {
        let key = SessionPath {
            app_id: self.app_id,
            user_id: self.user_id,
            session_id: self.session_id,
        }
        .key();
        (key, self.message_id)
    }
}

fn new_message(m: MessageCreate, path: &[Value]) -> Result<NewMessage, ApiError> {
    let at = |field: &str| {
        path.iter()
            .cloned()
            .chain([json!(field)])
            .collect::<Vec<_>>()
    };
    Ok(NewMessage {
        content: parse_content(m.content, &at("content"))?,
        is_user: m.is_user,
        metadata: parse_metadata(m.metadata, &at("metadata"))?,
    })
}

/// Add a message to a session
#[utoipa::path(
    tag = "messages",
    operation_id = "create_message_for_session_v1_apps__app_id__users__user_id__sessions__session_id__messages_post",
    params(SessionPath),
    request_body(content = MessageCreate, description = "Message creation parameters"),
    responses((status = 200, description = "The new message", body = Message))
)]
#[post("")]
async fn create_message(
    access: Access<scope::Session>,
    features: Data<Features>,
    path: Path<SessionPath>,
    body: Body<MessageCreate>,
) -> Result<Json<Message>, ApiError> {
    let batch = vec![new_message(body.0, &[])?];
    let key = path.into_inner().key();
    let enqueue = features.enqueue_for_deriver;
    let mut stored = run(access.db(), move |db| {
        db.create_messages(&key, batch, enqueue)
    })
    .await?;
    features.queued();
    let message = stored
        .pop()
        .ok_or_else(|| ApiError::Internal("a stored message went missing".into()))?;
    Ok(Json(message.into()))
}

/// Add up to 100 messages to a session in one transaction, in the given order
#[utoipa::path(
    tag = "messages",
    operation_id = "create_batch_messages_for_session_v1_apps__app_id__users__user_id__sessions__session_id__messages_batch_post",
    params(SessionPath),
    request_body(content = MessageBatchCreate, description = "Batch of messages to create"),
    responses((status = 200, description = "The new messages, in order", body = Vec<Message>))
)]
#[post("/batch")]
async fn create_messages(
    access: Access<scope::Session>,
    features: Data<Features>,
    path: Path<SessionPath>,
    body: Body<MessageBatchCreate>,
) -> Result<Json<Vec<Message>>, ApiError> {
    let messages = body.0.messages;
    check_batch(messages.len())
        .map_err(|reason| super::invalid(&[json!("messages")], &reason, Value::Null))?;
    let batch = messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| new_message(m, &[json!("messages"), json!(i)]))
        .collect::<Result<Vec<_>, _>>()?;
    let key = path.into_inner().key();
    let enqueue = features.enqueue_for_deriver;
    let stored = run(access.db(), move |db| {
        db.create_messages(&key, batch, enqueue)
    })
    .await?;
    features.queued();
    Ok(Json(stored.into_iter().map(Message::from).collect()))
}

/// List a session's messages
#[utoipa::path(
    tag = "messages",
    operation_id = "get_messages_v1_apps__app_id__users__user_id__sessions__session_id__messages_list_post",
    params(SessionPath, ListParams),
    request_body(content = Option<MessageGet>, description = "Filtering options for the messages list"),
    responses((status = 200, description = "A page of messages", body = Page<Message>))
)]
#[post("/list")]
async fn list_messages(
    access: Access<scope::Session>,
    req: HttpRequest,
    path: Path<SessionPath>,
    body: OptionalBody<MessageGet>,
) -> Result<Json<Page<Message>>, ApiError> {
    let page = ListParams::page(&req)?;
    let filter = parse_filter(body.0.and_then(|b| b.filter))?;
    let key = path.into_inner().key();
    let messages = run(access.db(), move |db| {
        db.list_messages(&key, filter.as_ref(), page)
    })
    .await?;
    Ok(Json(Page::from_domain(messages, Message::from)))
}

/// Get a message
#[utoipa::path(
    tag = "messages",
    operation_id = "get_message_v1_apps__app_id__users__user_id__sessions__session_id__messages__message_id__get",
    params(MessagePath),
    responses((status = 200, description = "The message", body = Message))
)]
#[get("/{message_id}")]
async fn get_message(
    access: Access<scope::Session>,
    path: Path<MessagePath>,
) -> Result<Json<Message>, ApiError> {
    let (key, id) = path.into_inner().split();
    let message = run(access.db(), move |db| db.get_message(&key, &id)).await?;
    Ok(Json(message.into()))
}

/// Replace a message's metadata
#[utoipa::path(
    tag = "messages",
    operation_id = "update_message_v1_apps__app_id__users__user_id__sessions__session_id__messages__message_id__put",
    params(MessagePath),
    request_body(content = MessageUpdate, description = "Updated message parameters"),
    responses((status = 200, description = "The updated message", body = Message))
)]
#[put("/{message_id}")]
async fn update_message(
    access: Access<scope::Session>,
    path: Path<MessagePath>,
    body: Body<MessageUpdate>,
) -> Result<Json<Message>, ApiError> {
    let metadata = parse_metadata(body.0.metadata, &[json!("metadata")])?;
    let (key, id) = path.into_inner().split();
    let message = run(access.db(), move |db| {
        db.update_message(&key, &id, metadata)
    })
    .await?;
    Ok(Json(message.into()))
}
