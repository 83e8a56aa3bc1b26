//! Authentication: HS256 API keys, the scope of every route, and the middleware that checks them.
//!
//! Every `/v1` route has exactly one entry in [`ROUTES`]; a test checks that the table and the OpenAPI
//! document (built from the registered routes) name the same operations, and the server refuses to start
//! otherwise, so a route cannot be added without choosing its scope.

use crate::error::ApiError;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use honcho_domain::auth::{AuthError, Claims, PathIds, Scope};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use std::future::{ready, Ready};

/// The signing secret of API keys.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    pub fn new(secret: &str) -> Keys {
        Keys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
        }
    }

    /// Signs `claims` as an HS256 JWT.
    pub fn mint(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// The admin key: `{"t": "", "ad": true}`.
    pub fn admin_key(&self) -> String {
        self.mint(&Claims::admin())
    }

    /// Verifies the signature (HS256 only: `none` and every other algorithm are refused) and decodes
    /// the claims. Expiry is checked by the caller (`exp` may be a number or an ISO string).
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|_| AuthError::Invalid)
    }
}

/// Authentication settings shared with every request: `None` when `USE_AUTH` is off.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    pub keys: Option<Keys>,
}

/// The scope of every `/v1` operation: method, route template, scope.
pub const ROUTES: &[(Method, &str, Scope)] = &[
    (Method::GET, "/v1/apps", Scope::Token),
    (Method::POST, "/v1/apps", Scope::Admin),
    (Method::POST, "/v1/apps/list", Scope::Admin),
    (Method::GET, "/v1/apps/name/{name}", Scope::Admin),
    (Method::GET, "/v1/apps/get_or_create/{name}", Scope::Admin),
    (Method::PUT, "/v1/apps/{app_id}", Scope::App),
    (Method::POST, "/v1/apps/{app_id}/users", Scope::App),
    (Method::GET, "/v1/apps/{app_id}/users", Scope::Token),
    (Method::POST, "/v1/apps/{app_id}/users/list", Scope::App),
    (
        Method::GET,
        "/v1/apps/{app_id}/users/name/{name}",
        Scope::App,
    ),
    (
        Method::GET,
        "/v1/apps/{app_id}/users/get_or_create/{name}",
        Scope::App,
    ),
    (
        Method::PUT,
        "/v1/apps/{app_id}/users/{user_id}",
        Scope::AppUser,
    ),
    (
        Method::GET,
        "/v1/apps/{app_id}/users/{user_id}/sessions",
        Scope::Token,
    ),
    (
        Method::POST,
        "/v1/apps/{app_id}/users/{user_id}/sessions",
        Scope::AppUser,
    ),
    (
        Method::POST,
        "/v1/apps/{app_id}/users/{user_id}/sessions/list",
        Scope::AppUser,
    ),
    (
        Method::PUT,
        "/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}",
        Scope::Session,
    ),
    (
        Method::DELETE,
        "/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}",
        Scope::Session,
    ),
    (
        Method::GET,
        "/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}/clone",
        Scope::Session,
    ),
    (
        Method::POST,
        "/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}/messages",
        Scope::Session,
    ),
    (
        Method::POST,
        "/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}/messages/batch",
        Scope::Session,
    ),
    (
        Method::POST,
        "/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}/messages/list",
        Scope::Session,
    ),
    (
        Method::GET,
        "/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}/messages/{message_id}",
        Scope::Session,
    ),
    (
        Method::PUT,
        "/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}/messages/{message_id}",
        Scope::Session,
    ),
    (
        Method::POST,
        "/v1/apps/{app_id}/users/{user_id}/metamessages",
        Scope::AppUser,
    ),
    (
        Method::POST,
        "/v1/apps/{app_id}/users/{user_id}/metamessages/list",
        Scope::AppUser,
    ),
    (
        Method::GET,
        "/v1/apps/{app_id}/users/{user_id}/metamessages/{metamessage_id}",
        Scope::AppUser,
    ),
    (
        Method::PUT,
        "/v1/apps/{app_id}/users/{user_id}/metamessages/{metamessage_id}",
        Scope::AppUser,
    ),
    (
        Method::GET,
        "/v1/apps/{app_id}/users/{user_id}/collections",
        Scope::Token,
    ),
    (
        Method::POST,
        "/v1/apps/{app_id}/users/{user_id}/collections",
        Scope::AppUser,
    ),
    (
        Method::POST,
        "/v1/apps/{app_id}/users/{user_id}/collections/list",
        Scope::AppUser,
    ),
    (
        Method::GET,
        "/v1/apps/{app_id}/users/{user_id}/collections/name/{name}",
        Scope::AppUser,
    ),
    (
        Method::PUT,
        "/v1/apps/{app_id}/users/{user_id}/collections/{collection_id}",
        Scope::Collection,
    ),
    (
        Method::DELETE,
        "/v1/apps/{app_id}/users/{user_id}/collections/{collection_id}",
        Scope::Collection,
    ),
    (
        Method::POST,
        "/v1/apps/{app_id}/users/{user_id}/collections/{collection_id}/documents/list",
        Scope::Collection,
    ),
    (
        Method::GET,
        "/v1/apps/{app_id}/users/{user_id}/collections/{collection_id}/documents/{document_id}",
        Scope::Collection,
    ),
    (
        Method::PUT,
        "/v1/apps/{app_id}/users/{user_id}/collections/{collection_id}/documents/{document_id}",
        Scope::Collection,
    ),
    (
        Method::DELETE,
        "/v1/apps/{app_id}/users/{user_id}/collections/{collection_id}/documents/{document_id}",
        Scope::Collection,
    ),
    (
        Method::POST,
        "/v1/apps/{app_id}/users/{user_id}/collections/{collection_id}/documents/query",
        Scope::Collection,
    ),
    (
        Method::POST,
        "/v1/apps/{app_id}/users/{user_id}/collections/{collection_id}/documents",
        Scope::Collection,
    ),
    (Method::POST, "/v1/keys", Scope::Admin),
];

/// The scope of the route `method path` matches, with the ids its path names. Literal segments
/// must match exactly; `{name}` segments capture.
pub fn route_scope<'p>(method: &Method, path: &'p str) -> Option<(Scope, PathIds<'p>)> {
    let segments: Vec<&str> = path.split('/').collect();
    ROUTES
        .iter()
        .filter(|(m, _, _)| m == method)
        .find_map(|(_, template, scope)| {
            let mut ids = PathIds::default();
            let mut parts = template.split('/');
            let mut n = 0;
            for (i, part) in parts.by_ref().enumerate() {
                let seg = *segments.get(i)?;
                match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    Some(name) => match name {
                        "app_id" => ids.app_id = Some(seg),
                        "user_id" => ids.user_id = Some(seg),
                        "session_id" => ids.session_id = Some(seg),
                        "collection_id" => ids.collection_id = Some(seg),
                        _ => {}
                    },
                    None if part == seg => {}
                    None => return None,
                }
                n = i + 1;
            }
            (n == segments.len()).then_some((*scope, ids))
        })
}

/// The documented operations that have no scope, and the scoped routes that are not documented.
pub fn unscoped_routes(api: &utoipa::openapi::OpenApi) -> Vec<String> {
    let mut documented = Vec::new();
    for (path, item) in &api.paths.paths {
        let ops = [
            (Method::GET, &item.get),
            (Method::POST, &item.post),
            (Method::PUT, &item.put),
            (Method::DELETE, &item.delete),
        ];
        for (method, op) in ops {
            if op.is_some() && path.starts_with("/v1/") {
                documented.push((method, path.clone()));
            }
        }
    }
    let mut problems: Vec<String> = documented
        .iter()
        .filter(|(m, p)| !ROUTES.iter().any(|(rm, rp, _)| rm == m && rp == p))
        .map(|(m, p)| format!("{m} {p} has no scope in auth::ROUTES"))
        .collect();
    problems.extend(
        ROUTES
            .iter()
            .filter(|(m, p, _)| !documented.iter().any(|(dm, dp)| dm == m && dp == p))
            .map(|(m, p, _)| format!("{m} {p} is in auth::ROUTES but not served")),
    );
    problems
}

fn bearer(req: &ServiceRequest) -> Option<&str> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Checks the key of every `/v1` request against its route's scope, in the order the contract gives:
/// no key, bad key, expired key, admin, admin-only route, matching claim. The accepted claims are left
/// in the request for the handlers of token routes. With authentication off every request is admin.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let keys = req
        .app_data::<Data<AuthConfig>>()
        .and_then(|c| c.keys.clone());
    let claims = match keys {
        None => Ok(Claims::admin()),
        Some(keys) => match route_scope(req.method(), req.path()) {
            None => Ok(Claims::default()),
            Some((scope, ids)) => bearer(&req).ok_or(AuthError::NoToken).and_then(|token| {
                let claims = keys.verify(token)?;
                claims.check_expiry(chrono::Utc::now())?;
                claims.permits(scope, &ids)?;
                Ok(claims)
            }),
        },
    };
    match claims {
        Ok(claims) => {
            req.extensions_mut().insert(claims);
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Err(e) => {
            let res =
                actix_web::ResponseError::error_response(&ApiError::unauthorized(e.to_string()));
            Ok(req.into_response(res))
        }
    }
}

/// The claims of the request's key (admin when authentication is off).
pub struct Principal(pub Claims);

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Claims>()
                .cloned()
                .map(Principal)
                .ok_or_else(|| {
                    ApiError::Internal("request reached a handler without authentication".into())
                }),
        )
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::unauthorized(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_route_has_a_scope_and_every_scope_a_route() {
        let problems = unscoped_routes(&crate::api_doc());
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn paths_match_their_templates_only() {
        let (scope, ids) =
            route_scope(&Method::POST, "/v1/apps/A/users/U/sessions/S/messages/list").unwrap();
        assert_eq!(scope, Scope::Session);
        assert_eq!(
            (ids.app_id, ids.user_id, ids.session_id),
            (Some("A"), Some("U"), Some("S"))
        );
        assert_eq!(
            route_scope(&Method::POST, "/v1/apps/list").unwrap().0,
            Scope::Admin
        );
        assert_eq!(
            route_scope(&Method::PUT, "/v1/apps/list").unwrap().0,
            Scope::App
        );
        assert!(route_scope(&Method::GET, "/v1/apps/A/users/U/sessions/S/messages").is_none());
        assert!(route_scope(&Method::GET, "/v1/apps/A/extra").is_none());
    }
}
