use super::{parse_filter, parse_metadata, parse_name, parse_path_name, run, AppPath, UserPath};
use crate::auth::{scope, Access};
use crate::dto::{Page, User, UserCreate, UserGet, UserUpdate};
use crate::error::ApiError;
use crate::extract::{Body, FromQuery, ListParams, OptionalBody, Query};
use actix_web::web::{Json, Path};
use actix_web::{get, post, put, HttpRequest};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_user)
        .service(get_user)
        .service(list_users)
        .service(get_user_by_name)
        .service(get_or_create_user)
        .service(update_user)
        .service(super::erasure::erase_user)
        .service(
            utoipa_actix_web::scope("/{user_id}/sessions").configure(super::sessions::configure),
        )
        .service(
            utoipa_actix_web::scope("/{user_id}/messages")
                .service(super::search::query_user_messages),
        )
        .service(
            utoipa_actix_web::scope("/{user_id}/metamessages")
                .configure(super::metamessages::configure),
        )
        .service(
            utoipa_actix_web::scope("/{user_id}/collections")
                .configure(super::collections::configure),
        );
}

#[derive(Deserialize)]
struct AppNamePath {
    app_id: String,
    name: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct GetUserQuery {
    /// User ID to retrieve. If not provided, users JWT token
    user_id: Option<String>,
}

impl FromQuery for GetUserQuery {
    fn from_query(q: &Query) -> Result<Self, ApiError> {
        Ok(GetUserQuery {
            user_id: q.string("user_id")?,
        })
    }
}

/// Create a user in an app
#[utoipa::path(
    tag = "users",
    operation_id = "create_user_v1_apps__app_id__users_post",
    params(AppPath),
    request_body(content = UserCreate, description = "User creation parameters"),
    responses(
        (status = 200, description = "The new user", body = User),
        (status = 409, description = "The name is taken")
    )
)]
#[post("")]
async fn create_user(
    access: Access<scope::App>,
    path: Path<AppPath>,
    body: Body<UserCreate>,
) -> Result<Json<User>, ApiError> {
    let Body(UserCreate { name, metadata }) = body;
    let name = parse_name(name, &[json!("name")])?;
    let metadata = parse_metadata(metadata, &[json!("metadata")])?;
    let app_id = path.into_inner().app_id;
    let user = run(access.db(), move |db| {
        db.create_user(&app_id, name, metadata)
    })
    .await?;
    Ok(Json(user.into()))
}

/// Get a user by id (from the query, or the token's user)
#[utoipa::path(
    tag = "users",
    operation_id = "get_user_v1_apps__app_id__users_get",
    params(AppPath, GetUserQuery),
    responses((status = 200, description = "The user", body = User))
)]
#[get("")]
async fn get_user(
    access: Access<scope::Token>,
    req: HttpRequest,
    path: Path<AppPath>,
) -> Result<Json<User>, ApiError> {
    let app_id = path.into_inner().app_id;
    let user_id = access
        .claims()
        .resolve_user(&app_id, GetUserQuery::parse(&req)?.user_id)?;
    let user = run(access.db(), move |db| db.get_user(&app_id, &user_id)).await?;
    Ok(Json(user.into()))
}

/// List the users of an app
#[utoipa::path(
    tag = "users",
    operation_id = "get_users_v1_apps__app_id__users_list_post",
    params(AppPath, ListParams),
    request_body(content = Option<UserGet>, description = "Filtering options for the users list"),
    responses((status = 200, description = "A page of users", body = Page<User>))
)]
#[post("/list")]
async fn list_users(
    access: Access<scope::App>,
    req: HttpRequest,
    path: Path<AppPath>,
    body: OptionalBody<UserGet>,
) -> Result<Json<Page<User>>, ApiError> {
    let page = ListParams::page(&req)?;
    let filter = parse_filter(body.0.and_then(|b| b.filter))?;
    let app_id = path.into_inner().app_id;
    let users = run(access.db(), move |db| {
        db.list_users(&app_id, filter.as_ref(), page)
    })
    .await?;
    Ok(Json(Page::from_domain(users, User::from)))
}

/// Get a user by name
#[utoipa::path(
    tag = "users",
    operation_id = "get_user_by_name_v1_apps__app_id__users_name__name__get",
    params(AppPath, ("name" = String, Path, description = "Name of the user to retrieve")),
    responses((status = 200, description = "The user", body = User))
)]
#[get("/name/{name}")]
async fn get_user_by_name(
    access: Access<scope::App>,
    path: Path<AppNamePath>,
) -> Result<Json<User>, ApiError> {
    let AppNamePath { app_id, name } = path.into_inner();
    let user = run(access.db(), move |db| db.get_user_by_name(&app_id, &name)).await?;
    Ok(Json(user.into()))
}

/// Get a user by name, creating it if it does not exist
#[utoipa::path(
    tag = "users",
    operation_id = "get_or_create_user_v1_apps__app_id__users_get_or_create__name__get",
    params(AppPath, ("name" = String, Path, description = "Name of the user to get or create")),
    responses((status = 200, description = "The user", body = User))
)]
#[get("/get_or_create/{name}")]
async fn get_or_create_user(
    access: Access<scope::App>,
    path: Path<AppNamePath>,
) -> Result<Json<User>, ApiError> {
    let AppNamePath { app_id, name } = path.into_inner();
    let name = parse_path_name(name)?;
    let user = run(access.db(), move |db| db.get_or_create_user(&app_id, name)).await?;
    Ok(Json(user.into()))
}

/// Update a user's name and/or metadata
#[utoipa::path(
    tag = "users",
    operation_id = "update_user_v1_apps__app_id__users__user_id__put",
    params(UserPath),
    request_body(content = UserUpdate, description = "Updated user parameters"),
    responses(
        (status = 200, description = "The updated user", body = User),
        (status = 409, description = "The name is taken")
    )
)]
#[put("/{user_id}")]
async fn update_user(
    access: Access<scope::AppUser>,
    path: Path<UserPath>,
    body: Body<UserUpdate>,
) -> Result<Json<User>, ApiError> {
    let Body(UserUpdate { name, metadata }) = body;
    let name = name.map(|n| parse_name(n, &[json!("name")])).transpose()?;
    let metadata = metadata
        .map(|m| parse_metadata(m, &[json!("metadata")]))
        .transpose()?;
    let UserPath { app_id, user_id } = path.into_inner();
    let user = run(access.db(), move |db| {
        db.update_user(&app_id, &user_id, name, metadata)
    })
    .await?;
    Ok(Json(user.into()))
}
