//! Authentication: HS256 API keys and the [`Access`] extractor that authorises a request for the route
//! the router matched.
//!
//! A route's scope is part of its handler's signature (`Access<scope::Session>`, ...). The extractor
//! verifies the key and checks the scope against the ids the router captured, decoded exactly as the
//! handler's own `Path` sees them. It is also the only way a handler reaches the store or the key
//! signer: the database pool is registered under a type only this module can name. So a `/v1` handler
//! that skips the check cannot do anything, and an unmatched path never gets this far (404).

use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpRequest};
use honcho_db::{Db, DbResult};
use honcho_domain::auth::{AuthError, Claims, PathIds, RevokedKeys, Scope};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;
use std::future::{ready, Ready};
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

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

    /// The key a record describes (its claims, signed).
    pub fn key_for(&self, record: &honcho_domain::auth::KeyRecord) -> String {
        self.mint(&record.claims())
    }

    /// The admin key: `{"t": "", "ad": true}`.
    pub fn admin_key(&self) -> String {
        self.mint(&Claims::admin())
    }

    /// Verifies the signature (HS256 only: `none` and every other algorithm are refused), refuses a
    /// header naming critical extensions (`crit`: this server understands none, RFC 7515 §4.1.11)
    /// and a key whose `nbf` is still to come, and decodes the claims. Expiry is checked by the
    /// caller (`exp` may be a number or an ISO string).
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if names_critical_extensions(token) {
            return Err(AuthError::Invalid);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_nbf = true;
        validation.leeway = CLOCK_LEEWAY_SECS as u64;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                _ => AuthError::Invalid,
            })
    }
}

/// Seconds a key's `nbf` and `iat` may lie ahead of this server's clock (clocks out of step).
pub const CLOCK_LEEWAY_SECS: i64 = 60;

/// Whether a token's header has a `crit` member (extensions the recipient must understand).
fn names_critical_extensions(token: &str) -> bool {
    use base64::Engine;
    let Some(header) = token.split('.').next() else {
        return false;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|h| h.get("crit").is_some())
}

/// Authentication settings shared with every request: `keys` is `None` when `USE_AUTH` is off.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    pub keys: Option<Keys>,
    /// This process's copy of the revoked keys (kept up to date by [`RevocationWatch`]).
    pub revocations: Arc<Revocations>,
    /// With authentication on, the bearer token that may read `/metrics` besides the admin key
    /// (`METRICS_TOKEN`).
    pub metrics_token: Option<String>,
}

impl AuthConfig {
    /// Authentication on, keys signed with `keys`.
    pub fn with_keys(keys: Keys) -> AuthConfig {
        AuthConfig {
            keys: Some(keys),
            ..AuthConfig::default()
        }
    }
}

/// How often each process reads whether keys were revoked: a revocation reaches every process
/// within about this long.
pub const REVOCATIONS_REFRESH: Duration = Duration::from_secs(1);

/// A copy of the revoked keys older than this is not trusted: keys are refused with 503 until it
/// has been read again (a revocation is never missed for longer than this).
pub const REVOCATIONS_MAX_AGE: Duration = Duration::from_secs(5);

/// The revoked keys as this process last read them. Checking a key against it costs no database
/// round trip; [`Revocations::refresh`] reads them again only when their count changed (one
/// count over an index otherwise).
#[derive(Debug, Default)]
pub struct Revocations {
    state: RwLock<RevocationState>,
}

#[derive(Debug, Default)]
struct RevocationState {
    list: RevokedKeys,
    mark: Option<i64>,
    read_at: Option<Instant>,
}

impl Revocations {
    /// Reads the revoked keys again if they changed, and marks the copy fresh.
    pub fn refresh(&self, db: &Db) -> DbResult<()> {
        let mark = db.revocation_mark()?;
        let known = self.state.read().unwrap_or_else(|e| e.into_inner()).mark;
        let list = match known == Some(mark) {
            true => None,
            false => Some(RevokedKeys::new(db.revoked_keys()?)),
        };
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = list {
            state.list = list;
            state.mark = Some(mark);
        }
        state.read_at = Some(Instant::now());
        Ok(())
    }

    /// Refuses a revoked key (401), and every key while the copy is stale (503).
    fn check(&self, claims: &Claims, token: &str) -> Result<(), ApiError> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        if state
            .read_at
            .is_none_or(|t| t.elapsed() > REVOCATIONS_MAX_AGE)
        {
            return Err(ApiError::Unavailable {
                detail: "Database unavailable: the revoked keys could not be read".into(),
                cause: "the copy of the revoked keys is out of date".into(),
            });
        }
        if state.list.refuses(claims, token) {
            return Err(AuthError::Revoked.into());
        }
        Ok(())
    }
}

/// A thread that refreshes a process's [`Revocations`] every [`REVOCATIONS_REFRESH`]; stopped and
/// joined when dropped.
pub struct RevocationWatch {
    _running: honcho_db::Periodic,
}

impl RevocationWatch {
    /// Reads the revoked keys once now (so the first request finds them), then keeps them fresh.
    pub fn start(db: Db, revocations: Arc<Revocations>) -> RevocationWatch {
        if let Err(e) = revocations.refresh(&db) {
            tracing::warn!(error = %e, "the revoked keys could not be read; keys are refused until they are");
        }
        let mut failing = false;
        RevocationWatch {
            _running: honcho_db::Periodic::start(
                "key-revocations",
                REVOCATIONS_REFRESH,
                move || match (revocations.refresh(&db), failing) {
                    (Ok(()), true) => {
                        tracing::info!("the revoked keys can be read again");
                        failing = false;
                    }
                    (Err(e), false) => {
                        tracing::warn!(error = %e, "the revoked keys could not be read");
                        failing = true;
                    }
                    _ => {}
                },
            ),
        }
    }
}

/// The scopes a handler can ask for, as types: `Access<scope::App>` is a request the app's key (or
/// the admin key) may make. The rules behind each are `honcho_domain::auth::Claims::permits`.
pub mod scope {
    use honcho_domain::auth::Scope;

    /// A route's scope, named by a type in a handler's signature.
    pub trait RouteScope: 'static {
        const SCOPE: Scope;
        /// Whether the route's `user_id` and `session_id` query parameters are ids of the route
        /// (its handler keeps to them), checked against a key's ids as its path ids are.
        const QUERY_IDS: bool = false;
    }

    macro_rules! scopes {
        ($($name:ident),*) => {$(
            #[doc = concat!("`Scope::", stringify!($name), "` as a type.")]
            pub struct $name;
            impl RouteScope for $name {
                const SCOPE: Scope = Scope::$name;
            }
        )*};
    }

    scopes!(Admin, App, AppUser, Session, Collection, Token);

    /// `Scope::App` on a route whose handler keeps to the `user_id` and `session_id` of its query:
    /// a key naming a user (or session) of the app reaches it for that user (or session) only.
    pub struct AppQuery;
    impl RouteScope for AppQuery {
        const SCOPE: Scope = Scope::App;
        const QUERY_IDS: bool = true;
    }
}

/// What the [`Access`] extractor needs, registered by `build_app`. Private to this module: handlers
/// get the store from an `Access` and nowhere else.
pub(crate) struct Gate {
    db: Db,
    keys: Option<Keys>,
    revocations: Arc<Revocations>,
    metrics_token: Option<String>,
}

impl Gate {
    pub(crate) fn new(db: Db, auth: AuthConfig) -> Gate {
        Gate {
            db,
            keys: auth.keys,
            revocations: auth.revocations,
            metrics_token: auth.metrics_token,
        }
    }
}

/// The ids of a matched route that scopes are checked against. Deserialised from the router's
/// captures by the same deserialiser as every handler's `Path`, so they are the ids the handler uses.
#[derive(Deserialize)]
struct ScopeIds {
    app_id: Option<String>,
    user_id: Option<String>,
    session_id: Option<String>,
    collection_id: Option<String>,
}

/// A request that passed its route's scope check (`S`), with the key's claims and the store.
/// Take it as a handler's first argument: extractors run in order, so a refused key is answered
/// before the body is read.
pub struct Access<S> {
    claims: Claims,
    db: Db,
    keys: Option<Keys>,
    revocations: Arc<Revocations>,
    scope: PhantomData<S>,
}

impl<S> Access<S> {
    /// The key's claims (admin when authentication is off).
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The store.
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// This process's copy of the revoked keys (read again after a revocation or an erasure that
    /// revoked keys, so that this process refuses them at once).
    pub(crate) fn revocations(&self) -> Arc<Revocations> {
        self.revocations.clone()
    }
}

impl Access<scope::Admin> {
    /// The key signer; `None` when authentication is off.
    pub(crate) fn signer(&self) -> Option<&Keys> {
        self.keys.as_ref()
    }
}

impl<S: scope::RouteScope> FromRequest for Access<S> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            authorize(req, S::SCOPE, S::QUERY_IDS).map(|(claims, gate)| Access {
                claims,
                db: gate.db.clone(),
                keys: gate.keys.clone(),
                revocations: gate.revocations.clone(),
                scope: PhantomData,
            }),
        )
    }
}

/// Checks the request's key against `scope` for the ids of the matched route, in the order the
/// contract gives: no key, bad key, expired key, revoked key, admin, admin-only route, matching
/// claim.
fn authorize(
    req: &HttpRequest,
    scope: Scope,
    query_ids: bool,
) -> Result<(Claims, &Gate), ApiError> {
    let gate = gate(req)?;
    let Some(keys) = &gate.keys else {
        return Ok((Claims::admin(), gate));
    };
    // A handler without a matched route cannot exist; refuse rather than guess.
    if req.match_pattern().is_none() {
        return Err(ApiError::not_found("Not Found"));
    }
    let mut ids: ScopeIds = req
        .match_info()
        .load()
        .map_err(|_| ApiError::not_found("Not Found"))?;
    if query_ids {
        // Read as the handler reads them (`Query::string`), so they are the ids it keeps to.
        let query = crate::extract::Query::of(req)?;
        ids.user_id = ids.user_id.or(query.string("user_id")?);
        ids.session_id = ids.session_id.or(query.string("session_id")?);
    }
    let token = bearer(req)?;
    let claims = keys.verify(token)?;
    let now = chrono::Utc::now();
    claims.check_expiry(now)?;
    claims.check_issued(now, CLOCK_LEEWAY_SECS)?;
    gate.revocations.check(&claims, token)?;
    claims.permits(
        scope,
        &PathIds {
            app_id: ids.app_id.as_deref(),
            user_id: ids.user_id.as_deref(),
            session_id: ids.session_id.as_deref(),
            collection_id: ids.collection_id.as_deref(),
        },
    )?;
    Ok((claims, gate))
}

/// What `build_app` registered for authorisation.
fn gate(req: &HttpRequest) -> Result<&Gate, ApiError> {
    req.app_data::<Data<Gate>>()
        .map(|gate| gate.get_ref())
        .ok_or_else(|| ApiError::Internal("the auth gate is not registered".into()))
}

/// The request's bearer key: none, or more than one `Authorization` header, is refused (which of
/// two keys would count is not for a server to guess).
fn bearer(req: &HttpRequest) -> Result<&str, AuthError> {
    let mut headers = req
        .headers()
        .get_all(actix_web::http::header::AUTHORIZATION);
    let first = headers.next().ok_or(AuthError::NoToken)?;
    if headers.next().is_some() {
        return Err(AuthError::SeveralKeys);
    }
    let value = first.to_str().map_err(|_| AuthError::NoToken)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::NoToken)?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::NoToken)
}

/// `/metrics` with authentication on: the admin key, or `metrics_token` when one is set, is needed.
pub(crate) fn check_metrics_access(req: &HttpRequest) -> Result<(), ApiError> {
    let gate = gate(req)?;
    let Some(keys) = &gate.keys else {
        return Ok(());
    };
    let token = bearer(req)?;
    if gate
        .metrics_token
        .as_deref()
        .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
    {
        return Ok(());
    }
    let claims = keys.verify(token)?;
    claims.check_expiry(chrono::Utc::now())?;
    if claims.is_admin() {
        Ok(())
    } else {
        Err(AuthError::AdminRequired.into())
    }
}

/// Compares two secrets in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::unauthorized(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test, web, App, HttpResponse};

    const SECRET: &str = "unit-test-secret";

    async fn list_users(access: Access<scope::App>) -> HttpResponse {
        HttpResponse::Ok().body(access.claims().ap.clone().unwrap_or_default())
    }

    async fn admin_only(_: Access<scope::Admin>) -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    fn key(app: &str) -> String {
        Keys::new(SECRET).mint(&Claims {
            ap: Some(app.into()),
            ..Claims::default()
        })
    }

    async fn call(path: &str, token: Option<&str>) -> (u16, String) {
        let dir = tempfile::tempdir().unwrap();
        let url =
            honcho_db::DatabaseUrl::parse(&dir.path().join("t.db").to_string_lossy()).unwrap();
        let db = Db::connect(&url, 1).unwrap();
        db.migrate().unwrap();
        let auth = AuthConfig::with_keys(Keys::new(SECRET));
        auth.revocations.refresh(&db).unwrap();
        let gate = Gate::new(db, auth);
        let app = test::init_service(
            App::new()
                .app_data(Data::new(gate))
                .route("/v1/apps/{app_id}/users/list", web::post().to(list_users))
                .route("/v1/apps/list", web::post().to(admin_only)),
        )
        .await;
        let mut req = test::TestRequest::post().uri(path);
        if let Some(token) = token {
            req = req.insert_header(("authorization", format!("Bearer {token}")));
        }
        let res = test::call_service(&app, req.to_request()).await;
        let status = res.status().as_u16();
        let body = test::read_body(res).await;
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[actix_web::test]
    async fn scopes_are_checked_against_the_decoded_ids_of_the_matched_route() {
        assert_eq!(
            call("/v1/apps/Ab/users/list", Some(&key("Ab"))).await,
            (200, "Ab".into())
        );
        // The router decodes `%62`; so does authorisation: the key of "Ab" is the key for this path.
        assert_eq!(
            call("/v1/apps/A%62/users/list", Some(&key("Ab"))).await,
            (200, "Ab".into())
        );
        let refused = (
            401,
            r#"{"detail":"JWT not permissioned for this resource"}"#.into(),
        );
        assert_eq!(
            call("/v1/apps/A%62/users/list", Some(&key("A%62"))).await,
            refused
        );
        assert_eq!(
            call("/v1/app%73/Ab/users/lis%74", Some(&key("Other"))).await,
            refused
        );
    }

    #[actix_web::test]
    async fn every_spelling_of_an_admin_route_needs_the_admin_key() {
        for path in ["/v1/apps/list", "/v1/app%73/list", "/v1/%61pps/lis%74"] {
            assert_eq!(
                call(path, None).await,
                (401, r#"{"detail":"No access token provided"}"#.into()),
                "{path}"
            );
            assert_eq!(
                call(path, Some(&key("A"))).await,
                (
                    401,
                    r#"{"detail":"Resource requires admin privileges"}"#.into()
                ),
                "{path}"
            );
            let admin = Keys::new(SECRET).admin_key();
            assert_eq!(call(path, Some(&admin)).await.0, 200, "{path}");
        }
    }
}
