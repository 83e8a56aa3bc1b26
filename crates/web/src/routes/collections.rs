use super::{parse_filter, parse_metadata, run, CollectionPath, UserPath};
use crate::auth::{scope, Access};
use crate::dto::{Collection, CollectionCreate, CollectionGet, CollectionUpdate, Deleted, Page};
use crate::error::{ApiError, ValidationIssue};
use crate::extract::{Body, FromQuery, ListParams, OptionalBody, Query};
use actix_web::http::StatusCode;
use actix_web::web::{Json, Path};
use actix_web::{delete, get, post, put, HttpRequest};
use honcho_domain::values::collection_name;
use honcho_domain::{CollectionKey, Name};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_collection)
        .service(create_collection)
        .service(list_collections)
        .service(get_collection_by_name)
        .service(update_collection)
        .service(delete_collection)
        .service(
            utoipa_actix_web::scope("/{collection_id}/documents")
                .configure(super::documents::configure),
        );
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct GetCollectionQuery {
    /// Collection ID to retrieve. If not provided, uses JWT token
    collection_id: Option<String>,
}

impl FromQuery for GetCollectionQuery {
    fn from_query(q: &Query) -> Result<Self, ApiError> {
        Ok(GetCollectionQuery {
            collection_id: q.string("collection_id")?,
        })
    }
}

#[derive(Deserialize)]
struct UserNamePath {
    app_id: String,
    user_id: String,
    name: String,
}

/// A collection name from the body: 1..=100 characters and not "honcho" in any case.
fn parse_collection_name(name: String) -> Result<Name, ApiError> {
    collection_name(name.clone()).map_err(|reason| {
        ApiError::validation(ValidationIssue::from_invalid(
            vec![json!("body"), json!("name")],
            &reason,
            Value::String(name),
        ))
    })
}

/// Get a collection by id (from the query, or the token's collection)
#[utoipa::path(
    tag = "collections",
    operation_id = "get_collection_v1_apps__app_id__users__user_id__collections_get",
    params(UserPath, GetCollectionQuery),
    responses((status = 200, description = "The collection", body = Collection))
)]
#[get("")]
async fn get_collection(
    access: Access<scope::Token>,
    req: HttpRequest,
    path: Path<UserPath>,
) -> Result<Json<Collection>, ApiError> {
    let UserPath { app_id, user_id } = path.into_inner();
    let collection_id = access.claims().resolve_collection(
        &app_id,
        &user_id,
        GetCollectionQuery::parse(&req)?.collection_id,
    )?;
    let key = CollectionKey {
        app_id,
        user_id,
        collection_id,
    };
    let collection = run(access.db(), move |db| db.get_collection(&key)).await?;
    Ok(Json(collection.into()))
}

/// Create a collection for a user
#[utoipa::path(
    tag = "collections",
    operation_id = "create_collection_v1_apps__app_id__users__user_id__collections_post",
    params(UserPath),
    request_body(content = CollectionCreate, description = "Collection creation parameters"),
    responses(
        (status = 200, description = "The new collection", body = Collection),
        (status = 409, description = "The name is taken")
    )
)]
#[post("")]
async fn create_collection(
    access: Access<scope::AppUser>,
    path: Path<UserPath>,
    body: Body<CollectionCreate>,
) -> Result<Json<Collection>, ApiError> {
    let Body(CollectionCreate { name, metadata }) = body;
    let name = parse_collection_name(name)?;
    let metadata = parse_metadata(metadata, &[json!("metadata")])?;
    let UserPath { app_id, user_id } = path.into_inner();
    let collection = run(access.db(), move |db| {
        db.create_collection(&app_id, &user_id, name, metadata)
    })
    .await?;
    Ok(Json(collection.into()))
}

/// List a user's collections
#[utoipa::path(
    tag = "collections",
    operation_id = "get_collections_v1_apps__app_id__users__user_id__collections_list_post",
    params(UserPath, ListParams),
    request_body(content = Option<CollectionGet>, description = "Filtering options for the collections list"),
    responses((status = 200, description = "A page of collections", body = Page<Collection>))
)]
#[post("/list")]
async fn list_collections(
    access: Access<scope::AppUser>,
    req: HttpRequest,
    path: Path<UserPath>,
    body: OptionalBody<CollectionGet>,
) -> Result<Json<Page<Collection>>, ApiError> {
    let page = ListParams::page(&req)?;
    let filter = parse_filter(body.0.and_then(|b| b.filter))?;
    let UserPath { app_id, user_id } = path.into_inner();
    let collections = run(access.db(), move |db| {
        db.list_collections(&app_id, &user_id, filter.as_ref(), page)
    })
    .await?;
    Ok(Json(Page::from_domain(collections, Collection::from)))
}

/// Get a collection by name
#[utoipa::path(
    tag = "collections",
    operation_id = "get_collection_by_name_v1_apps__app_id__users__user_id__collections_name__name__get",
    params(UserPath, ("name" = String, Path, description = "Name of the collection to retrieve")),
    responses((status = 200, description = "The collection", body = Collection))
)]
#[get("/name/{name}")]
async fn get_collection_by_name(
    access: Access<scope::AppUser>,
    path: Path<UserNamePath>,
) -> Result<Json<Collection>, ApiError> {
    let UserNamePath {
        app_id,
        user_id,
        name,
    } = path.into_inner();
    let collection = run(access.db(), move |db| {
        db.get_collection_by_name(&app_id, &user_id, &name)
    })
    .await?;
    Ok(Json(collection.into()))
}

/// Rename a collection and/or replace its metadata
#[utoipa::path(
    tag = "collections",
    operation_id = "update_collection_v1_apps__app_id__users__user_id__collections__collection_id__put",
    params(CollectionPath),
    request_body(content = CollectionUpdate, description = "Updated collection parameters"),
    responses(
        (status = 200, description = "The updated collection", body = Collection),
        (status = 409, description = "The name is taken")
    )
)]
#[put("/{collection_id}")]
async fn update_collection(
    access: Access<scope::Collection>,
    path: Path<CollectionPath>,
    body: Body<CollectionUpdate>,
) -> Result<Json<Collection>, ApiError> {
    let Body(CollectionUpdate { name, metadata }) = body;
    if name.is_none() && metadata.is_none() {
        return Err(ApiError::Status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid collection configuration - at least one field must be provided".into(),
        ));
    }
    let name = name.map(parse_collection_name).transpose()?;
    let metadata = metadata
        .map(|m| parse_metadata(m, &[json!("metadata")]))
        .transpose()?;
    let key = path.into_inner().key();
    let collection = run(access.db(), move |db| {
        db.update_collection(&key, name, metadata)
    })
    .await?;
    Ok(Json(collection.into()))
}

/// Delete a collection and all its documents
#[utoipa::path(
    tag = "collections",
    operation_id = "delete_collection_v1_apps__app_id__users__user_id__collections__collection_id__delete",
    params(CollectionPath),
    responses((status = 200, description = "The collection is gone", body = Deleted))
)]
#[delete("/{collection_id}")]
async fn delete_collection(
    access: Access<scope::Collection>,
    path: Path<CollectionPath>,
) -> Result<Json<Deleted>, ApiError> {
    let key = path.into_inner().key();
    run(access.db(), move |db| db.delete_collection(&key)).await?;
    Ok(Json(Deleted {
        message: "Collection deleted successfully".into(),
    }))
}
