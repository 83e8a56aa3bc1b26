use super::{parse_content, parse_filter, parse_metadata, run, UserPath};
use crate::auth::{scope, Access};
use crate::dto::{Metamessage, MetamessageCreate, MetamessageGet, MetamessageUpdate, Page};
use crate::error::{ApiError, ValidationIssue};
use crate::extract::{from_value, Body, ListParams, OptionalBody};
use actix_web::web::{Json, Path};
use actix_web::{get, post, put, HttpRequest};
use honcho_domain::values::Label;
use honcho_domain::{Invalid, MetamessageChanges, MetamessageFilter, NewMetamessage};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_metamessage)
        .service(list_metamessages)
        .service(get_metamessage)
        .service(update_metamessage);
}

/// `.../metamessages/{metamessage_id}`
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct MetamessagePath {
    /// ID of the app
    app_id: String,
    /// ID of the user
    user_id: String,
    /// ID of the metamessage
    metamessage_id: String,
}

/// The label as given: `label`, or its v1.1.0 name `metamessage_type` (`label` wins), with the name
/// of the field it came from.
fn given_label(
    label: Option<String>,
    metamessage_type: Option<String>,
) -> Option<(&'static str, String)> {
    match (label, metamessage_type) {
        (Some(label), _) => Some(("label", label)),
        (None, t) => t.map(|t| ("metamessage_type", t)),
    }
}

fn parse_label(
    label: Option<String>,
    metamessage_type: Option<String>,
) -> Result<Option<Label>, ApiError> {
    given_label(label, metamessage_type)
        .map(|(field, s)| {
            Label::parse(s.clone())
                .map_err(|r| super::invalid(&[json!(field)], &r, Value::String(s)))
        })
        .transpose()
}

/// An id or label given in the body: any string, but NUL is refused (it cannot be stored or queried).
fn no_nul(s: Option<String>, field: &str) -> Result<Option<String>, ApiError> {
    match s {
        Some(s) if s.contains('\0') => Err(super::invalid(
            &[json!(field)],
            &Invalid::ContainsNul,
            Value::String(s),
        )),
        other => Ok(other),
    }
}

/// Create a metamessage for a user, optionally attached to one of their sessions and a message of it
#[utoipa::path(
    tag = "metamessages",
    operation_id = "create_metamessage_v1_apps__app_id__users__user_id__metamessages_post",
    params(UserPath),
    request_body(content = MetamessageCreate, description = "Metamessage creation parameters"),
    responses((status = 200, description = "The new metamessage", body = Metamessage))
)]
#[post("")]
async fn create_metamessage(
    access: Access<scope::AppUser>,
    path: Path<UserPath>,
    body: Body<Value>,
) -> Result<Json<Metamessage>, ApiError> {
    let create: MetamessageCreate = from_value(&body.0)?;
    let Some(label) = parse_label(create.label, create.metamessage_type)? else {
        return Err(ApiError::validation(ValidationIssue::new(
            "missing",
            vec![json!("body"), json!("metamessage_type")],
            "Field required",
            body.0,
        )));
    };
    let new = NewMetamessage {
        label,
        content: parse_content(create.content, &[json!("content")])?,
        session_id: no_nul(create.session_id, "session_id")?,
        message_id: no_nul(create.message_id, "message_id")?,
        metadata: parse_metadata(create.metadata, &[json!("metadata")])?,
    };
    let UserPath { app_id, user_id } = path.into_inner();
    let metamessage = run(access.db(), move |db| {
        db.create_metamessage(&app_id, &user_id, new)
    })
    .await?;
    Ok(Json(metamessage.into()))
}

/// List a user's metamessages; each given field (label, session, message, metadata filter) narrows the list
#[utoipa::path(
    tag = "metamessages",
    operation_id = "get_metamessages_v1_apps__app_id__users__user_id__metamessages_list_post",
    params(UserPath, ListParams),
    request_body(content = Option<MetamessageGet>, description = "Filtering options for the metamessages list"),
    responses((status = 200, description = "A page of metamessages", body = Page<Metamessage>))
)]
#[post("/list")]
async fn list_metamessages(
    access: Access<scope::AppUser>,
    req: HttpRequest,
    path: Path<UserPath>,
    body: OptionalBody<MetamessageGet>,
) -> Result<Json<Page<Metamessage>>, ApiError> {
    let page = ListParams::page(&req)?;
    let filter = match body.0 {
        Some(b) => MetamessageFilter {
            label: match given_label(b.label, b.metamessage_type) {
                Some((field, label)) => no_nul(Some(label), field)?,
                None => None,
            },
            session_id: no_nul(b.session_id, "session_id")?,
            message_id: no_nul(b.message_id, "message_id")?,
            metadata: parse_filter(b.filter)?,
        },
        None => MetamessageFilter::default(),
    };
    let UserPath { app_id, user_id } = path.into_inner();
    let metamessages = run(access.db(), move |db| {
        db.list_metamessages(&app_id, &user_id, &filter, page)
    })
    .await?;
    Ok(Json(Page::from_domain(metamessages, Metamessage::from)))
}

/// Get a metamessage
#[utoipa::path(
    tag = "metamessages",
    operation_id = "get_metamessage_v1_apps__app_id__users__user_id__metamessages__metamessage_id__get",
    params(MetamessagePath),
    responses((status = 200, description = "The metamessage", body = Metamessage))
)]
#[get("/{metamessage_id}")]
async fn get_metamessage(
    access: Access<scope::AppUser>,
    path: Path<MetamessagePath>,
) -> Result<Json<Metamessage>, ApiError> {
    let MetamessagePath {
        app_id,
        user_id,
        metamessage_id,
    } = path.into_inner();
    let metamessage = run(access.db(), move |db| {
        db.get_metamessage(&app_id, &user_id, &metamessage_id)
    })
    .await?;
    Ok(Json(metamessage.into()))
}

/// Change a metamessage's label, session, message or metadata (replaced wholesale)
#[utoipa::path(
    tag = "metamessages",
    operation_id = "update_metamessage_v1_apps__app_id__users__user_id__metamessages__metamessage_id__put",
    params(MetamessagePath),
    request_body(content = MetamessageUpdate, description = "Updated metamessage parameters"),
    responses((status = 200, description = "The updated metamessage", body = Metamessage))
)]
#[put("/{metamessage_id}")]
async fn update_metamessage(
    access: Access<scope::AppUser>,
    path: Path<MetamessagePath>,
    body: Body<MetamessageUpdate>,
) -> Result<Json<Metamessage>, ApiError> {
    let b = body.0;
    let changes = MetamessageChanges {
        label: parse_label(b.label, b.metamessage_type)?,
        session_id: no_nul(b.session_id, "session_id")?,
        message_id: no_nul(b.message_id, "message_id")?,
        metadata: b
            .metadata
            .map(|m| parse_metadata(m, &[json!("metadata")]))
            .transpose()?,
    };
    let MetamessagePath {
        app_id,
        user_id,
        metamessage_id,
    } = path.into_inner();
    let metamessage = run(access.db(), move |db| {
        db.update_metamessage(&app_id, &user_id, &metamessage_id, changes)
    })
    .await?;
    Ok(Json(metamessage.into()))
}
