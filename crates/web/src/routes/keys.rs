use crate::auth::{scope, Access};
use crate::error::{ApiError, ValidationIssue};
use crate::extract::Query;
use actix_web::http::StatusCode;
use actix_web::web::Json;
use actix_web::{post, HttpRequest};
use honcho_domain::auth::{parse_instant, Claims};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
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
}

/// A new API key.
#[derive(Serialize, ToSchema)]
pub struct Key {
    key: String,
}

/// Create an API key scoped to an app, user, session and/or collection
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
    let Some(keys) = admin.signer() else {
        return Err(ApiError::Status(
            StatusCode::METHOD_NOT_ALLOWED,
            "Feature is disabled".into(),
        ));
    };
    let q = Query::of(&req)?;
    let expires_at = match q.string("expires_at")? {
        None => None,
        Some(raw) => Some(parse_instant(&raw).ok_or_else(|| {
            ApiError::validation(ValidationIssue::new(
                "datetime_from_date_parsing",
                vec![json!("query"), json!("expires_at")],
                "Input should be a valid datetime or date, invalid character in year",
                json!(raw),
            ))
        })?),
    };
    let claims = Claims {
        t: chrono::Utc::now().to_rfc3339(),
        exp: expires_at.map(|t| json!(t.timestamp())),
        ad: None,
        ap: q.string("app_id")?,
        us: q.string("user_id")?,
        se: q.string("session_id")?,
        co: q.string("collection_id")?,
    };
    if claims.ap.is_none() && claims.us.is_none() && claims.se.is_none() && claims.co.is_none() {
        return Err(ApiError::Status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "At least one of app_id, user_id, session_id, or collection_id must be provided".into(),
        ));
    }
    Ok(Json(Key {
        key: keys.mint(&claims),
    }))
}
