use super::{parse_filter, parse_metadata, parse_name, parse_path_name, run};
use crate::auth::{scope, Access};
use crate::dto::{App, AppCreate, AppGet, AppUpdate, Page};
use crate::error::ApiError;
use crate::extract::{Body, FromQuery, ListParams, OptionalBody, Query};
use actix_web::web::{Json, Path};
use actix_web::{get, post, put, HttpRequest};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_app)
        .service(create_app)
        .service(list_apps)
        .service(get_app_by_name)
        .service(get_or_create_app)
        .service(update_app)
        .configure(super::deriver::configure)
        .service(utoipa_actix_web::scope("/{app_id}/users").configure(super::users::configure));
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct GetAppQuery {
    /// App ID to retrieve. If not provided, uses JWT token
    app_id: Option<String>,
}

impl FromQuery for GetAppQuery {
    fn from_query(q: &Query) -> Result<Self, ApiError> {
        Ok(GetAppQuery {
            app_id: q.string("app_id")?,
        })
    }
}

/// Get an app by id (from the query, or the token's app)
#[utoipa::path(
    tag = "apps",
    operation_id = "get_app_v1_apps_get",
    params(GetAppQuery),
    responses((status = 200, description = "The app", body = App))
)]
#[get("")]
async fn get_app(access: Access<scope::Token>, req: HttpRequest) -> Result<Json<App>, ApiError> {
    let app_id = access
        .claims()
        .resolve_app(GetAppQuery::parse(&req)?.app_id)?;
    let app = run(access.db(), move |db| db.get_app(&app_id)).await?;
    Ok(Json(app.into()))
}

/// Create an app
#[utoipa::path(
    tag = "apps",
    operation_id = "create_app_v1_apps_post",
    request_body(content = AppCreate, description = "App creation parameters"),
    responses(
        (status = 200, description = "The new app", body = App),
        (status = 409, description = "The name is taken")
    )
)]
#[post("")]
async fn create_app(
    access: Access<scope::Admin>,
    body: Body<AppCreate>,
) -> Result<Json<App>, ApiError> {
    let Body(AppCreate { name, metadata }) = body;
    let name = parse_name(name, &[json!("name")])?;
    let metadata = parse_metadata(metadata, &[json!("metadata")])?;
    let app = run(access.db(), move |db| db.create_app(name, metadata)).await?;
    Ok(Json(app.into()))
}

/// List apps, optionally filtered by metadata
#[utoipa::path(
    tag = "apps",
    operation_id = "get_all_apps_v1_apps_list_post",
    params(ListParams),
    request_body(content = Option<AppGet>, description = "Filtering and pagination options for the apps list"),
    responses((status = 200, description = "A page of apps", body = Page<App>))
)]
#[post("/list")]
async fn list_apps(
    access: Access<scope::Admin>,
    req: HttpRequest,
    body: OptionalBody<AppGet>,
) -> Result<Json<Page<App>>, ApiError> {
    let page = ListParams::page(&req)?;
    let filter = parse_filter(body.0.and_then(|b| b.filter))?;
    let apps = run(access.db(), move |db| db.list_apps(filter.as_ref(), page)).await?;
    Ok(Json(Page::from_domain(apps, App::from)))
}

/// Get an app by name
#[utoipa::path(
    tag = "apps",
    operation_id = "get_app_by_name_v1_apps_name__name__get",
    params(("name" = String, Path, description = "Name of the app to retrieve")),
    responses((status = 200, description = "The app", body = App))
)]
#[get("/name/{name}")]
async fn get_app_by_name(
    access: Access<scope::Admin>,
    name: Path<String>,
) -> Result<Json<App>, ApiError> {
    let name = name.into_inner();
    let app = run(access.db(), move |db| db.get_app_by_name(&name)).await?;
    Ok(Json(app.into()))
}

/// Get an app by name, creating it if it does not exist
#[utoipa::path(
    tag = "apps",
    operation_id = "get_or_create_app_v1_apps_get_or_create__name__get",
    params(("name" = String, Path, description = "Name of the app to get or create")),
    responses((status = 200, description = "The app", body = App))
)]
#[get("/get_or_create/{name}")]
async fn get_or_create_app(
    access: Access<scope::Admin>,
    name: Path<String>,
) -> Result<Json<App>, ApiError> {
    let name = name.into_inner();
    let name = parse_path_name(name)?;
    let app = run(access.db(), move |db| db.get_or_create_app(name)).await?;
    Ok(Json(app.into()))
}

/// Update an app's name and/or metadata
#[utoipa::path(
    tag = "apps",
    operation_id = "update_app_v1_apps__app_id__put",
    params(("app_id" = String, Path, description = "ID of the app to update")),
    request_body(content = AppUpdate, description = "Updated app parameters"),
    responses(
        (status = 200, description = "The updated app", body = App),
        (status = 409, description = "The name is taken")
    )
)]
#[put("/{app_id}")]
async fn update_app(
    access: Access<scope::App>,
    app_id: Path<String>,
    body: Body<AppUpdate>,
) -> Result<Json<App>, ApiError> {
    let Body(AppUpdate { name, metadata }) = body;
    let name = name.map(|n| parse_name(n, &[json!("name")])).transpose()?;
    let metadata = metadata
        .map(|m| parse_metadata(m, &[json!("metadata")]))
        .transpose()?;
    let app_id = app_id.into_inner();
    let app = run(access.db(), move |db| {
        db.update_app(&app_id, name, metadata)
    })
    .await?;
    Ok(Json(app.into()))
}
