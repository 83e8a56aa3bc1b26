//! API keys: minting (v1.1.0's `POST /v1/keys`), and the additions that list and revoke them. Every
//! route is the admin's; with authentication off they answer 405.

use crate::auth::{scope, Access, Keys};
use crate::dto::{KeyInfo, KeyRevoke, Page};
use crate::error::{ApiError, ValidationIssue};
use crate::extract::{Body, FromQuery, ListParams, Query};
use actix_web::http::StatusCode;
use actix_web::web::{Json, Path};
use actix_web::{delete, get, post, HttpRequest};
use honcho_domain::auth::{KeyRecord, KeyRequestError, KeyScope};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_key)
        .service(list_keys)
        .service(revoke_presented_key)
        .service(revoke_key);
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct KeyQuery {
    /// ID of the app to scope the key to
    app_id: Option<String>,
    /// ID of the user to scope the key to
    user_id: Option<String>,
    /// ID of the session to scope the key to
    session_id: Option<String>,
    /// ID of the collection to scope the key to
    collection_id: Option<String>,
    /// When the key stops working (ISO 8601; UTC when no offset is given)
    #[param(value_type = Option<String>, format = DateTime)]
    expires_at: Option<String>,
    /// Free text recorded with the key, to tell keys apart in the list (1-100 characters)
    #[param(min_length = 1, max_length = 100)]
    label: Option<String>,
}

impl FromQuery for KeyQuery {
    fn from_query(q: &Query) -> Result<Self, ApiError> {
        Ok(KeyQuery {
            app_id: q.string("app_id")?,
            user_id: q.string("user_id")?,
            session_id: q.string("session_id")?,
            collection_id: q.string("collection_id")?,
            expires_at: q.string("expires_at")?,
            label: q.string("label")?,
        })
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct KeyListQuery {
    /// Only the keys that name this app
    app_id: Option<String>,
}

impl FromQuery for KeyListQuery {
    fn from_query(q: &Query) -> Result<Self, ApiError> {
        Ok(KeyListQuery {
            app_id: q.string("app_id")?,
        })
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct KeyPath {
    /// The key's id (its `jti` claim)
    key_id: String,
}

/// A new API key.
#[derive(Serialize, ToSchema)]
pub struct Key {
    key: String,
}

/// The signer, or 405 when authentication is off.
fn signer(admin: &Access<scope::Admin>) -> Result<&Keys, ApiError> {
    admin.signer().ok_or_else(|| {
        ApiError::Status(StatusCode::METHOD_NOT_ALLOWED, "Feature is disabled".into())
    })
}

/// Reads the revoked keys again so that this process refuses the key at once. The revocation is
/// stored already: a failure here is left to the watch, which retries every second.
pub(super) fn refresh_after_revoking(revocations: &crate::auth::Revocations, db: &honcho_db::Db) {
    if let Err(e) = revocations.refresh(db) {
        tracing::warn!(error = %e, "the revoked keys could not be read again after a revocation");
    }
}

/// Create an API key scoped to an app, user, session and/or collection
///
/// The key reaches only routes whose path names every id it was given (see the README's table).
/// It is recorded (its id, ids, label and times; never the key) so that it can be listed and
/// revoked.
#[utoipa::path(
    tag = "keys",
    operation_id = "create_key_v1_keys_post",
    params(KeyQuery),
    responses((status = 200, description = "The key", body = Key))
)]
#[post("/keys")]
pub async fn create_key(
    admin: Access<scope::Admin>,
    req: HttpRequest,
) -> Result<Json<Key>, ApiError> {
    let keys = signer(&admin)?.clone();
    let q = KeyQuery::parse(&req)?;
    let scope = KeyScope {
        app_id: q.app_id,
        user_id: q.user_id,
        session_id: q.session_id,
        collection_id: q.collection_id,
    };
    let record = KeyRecord::requested(scope, q.label, q.expires_at.as_deref(), chrono::Utc::now())
        .map_err(|e| match e {
            KeyRequestError::Expiry(raw) => ApiError::validation(ValidationIssue::new(
                "datetime_from_date_parsing",
                vec![json!("query"), json!("expires_at")],
                "Input should be a valid datetime or date, invalid character in year",
                json!(raw),
            )),
            KeyRequestError::Label(reason, raw) => {
                ApiError::validation(ValidationIssue::from_invalid(
                    vec![json!("query"), json!("label")],
                    &reason,
                    json!(raw),
                ))
            }
            KeyRequestError::NoId => ApiError::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "At least one of app_id, user_id, session_id, or collection_id must be provided"
                    .into(),
            ),
        })?;
    let key = keys.key_for(&record);
    // Recorded before it is handed out: a key that could not be recorded is not given.
    super::run(admin.db(), move |db| db.record_key(&record)).await?;
    Ok(Json(Key { key }))
}

/// List the recorded API keys
///
/// Keys minted by this server (and keys presented for revocation), oldest first; never the keys
/// themselves.
#[utoipa::path(
    tag = "keys",
    operation_id = "list_keys_v1_keys_get",
    params(KeyListQuery, ListParams),
    responses((status = 200, description = "A page of keys", body = Page<KeyInfo>))
)]
#[get("/keys")]
async fn list_keys(
    admin: Access<scope::Admin>,
    req: HttpRequest,
) -> Result<Json<Page<KeyInfo>>, ApiError> {
    signer(&admin)?;
    let page = ListParams::page(&req)?;
    let app_id = KeyListQuery::parse(&req)?.app_id;
    let keys = super::run(admin.db(), move |db| db.list_keys(app_id.as_deref(), page)).await?;
    Ok(Json(Page::from_domain(keys, KeyInfo::from)))
}

/// Revoke an API key by its id
///
/// Every server process refuses the key within seconds (401 "JWT revoked"). Revoking a revoked
/// key changes nothing.
#[utoipa::path(
    tag = "keys",
    operation_id = "revoke_key_v1_keys__key_id__delete",
    params(KeyPath),
    responses((status = 200, description = "The revoked key", body = KeyInfo))
)]
#[delete("/keys/{key_id}")]
async fn revoke_key(
    admin: Access<scope::Admin>,
    path: Path<KeyPath>,
) -> Result<Json<KeyInfo>, ApiError> {
    signer(&admin)?;
    let key_id = path.into_inner().key_id;
    let revocations = admin.revocations();
    let record = super::run(admin.db(), move |db| {
        let record = db.revoke_key(&key_id, chrono::Utc::now())?;
        refresh_after_revoking(&revocations, db);
        Ok(record)
    })
    .await?;
    Ok(Json(KeyInfo::from(record)))
}

/// Revoke an API key by presenting it
///
/// For keys whose id is not known (minted before keys were recorded, or elsewhere with this
/// server's secret): the key is recorded by its SHA-256 and refused from then on. The admin key
/// cannot be revoked (change `AUTH_JWT_SECRET` to replace it).
#[utoipa::path(
    tag = "keys",
    operation_id = "revoke_presented_key_v1_keys_revoke_post",
    request_body(content = KeyRevoke, description = "The key to revoke"),
    responses((status = 200, description = "The revoked key", body = KeyInfo))
)]
#[post("/keys/revoke")]
async fn revoke_presented_key(
    admin: Access<scope::Admin>,
    body: Body<KeyRevoke>,
) -> Result<Json<KeyInfo>, ApiError> {
    let keys = signer(&admin)?;
    let token = body.0.key.trim().to_string();
    let claims = keys.verify(&token).map_err(|_| {
        ApiError::Status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The key is not one of this server's keys (its signature does not match)".into(),
        )
    })?;
    claims.check_revocable()?;
    let revocations = admin.revocations();
    let record = super::run(admin.db(), move |db| {
        let record = db.revoke_presented(&claims, &token, chrono::Utc::now())?;
        refresh_after_revoking(&revocations, db);
        Ok(record)
    })
    .await?;
    Ok(Json(KeyInfo::from(record)))
}
