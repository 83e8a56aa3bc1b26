//! Who may do what: the claims of an API key and the rules that match them against a route's scope.
//! Verifying a token's signature is the web layer's job; everything after that lives here.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;

/// The claims of an API key (an HS256 JWT). All optional, as in v1.1.0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// When the key was made (free text; empty for the admin key).
    #[serde(default)]
    pub t: String,
    /// Expiry: seconds since the epoch, or (older keys) an ISO 8601 string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<Value>,
    /// Admin: may do anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad: Option<bool>,
    /// App id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ap: Option<String>,
    /// User id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub us: Option<String>,
    /// Session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub se: Option<String>,
    /// Collection id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub co: Option<String>,
    /// The key's id (a UUID), under which it is recorded and can be revoked. Keys minted before
    /// keys were recorded have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// When the key was made, in seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
}

/// What a route needs from a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only the admin key.
    Admin,
    /// The app's key (`ap`).
    App,
    /// The app's (`ap`) or the user's (`us`) key.
    AppUser,
    /// The app's, the user's or the session's (`se`) key.
    Session,
    /// The app's, the user's or the collection's (`co`) key.
    Collection,
    /// Any valid key; the handler resolves the resource from the query or the key (GET of an app, a
    /// user, a session or a collection by id).
    Token,
}

/// The ids a request's path names, by level.
#[derive(Debug, Clone, Copy, Default)]
pub struct PathIds<'a> {
    pub app_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub collection_id: Option<&'a str>,
}

impl<'a> PathIds<'a> {
    /// The ids of a route under an app, and under one of its users when `user_id` is given.
    pub fn under(app_id: &'a str, user_id: Option<&'a str>) -> PathIds<'a> {
        PathIds {
            app_id: Some(app_id),
            user_id,
            ..PathIds::default()
        }
    }
}

/// Why a request is refused; `Display` is the exact detail of the 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    NoToken,
    Invalid,
    Expired,
    AdminRequired,
    NotPermissioned,
    /// A token route asked for a resource the key is not scoped to.
    Unauthorized,
    /// The key was revoked.
    Revoked,
    /// The key's `nbf` (not before) is still to come.
    NotYetValid,
    /// The key's `iat` (issued at) is in the future.
    IssuedInFuture,
    /// The request carries more than one `Authorization` header.
    SeveralKeys,
    AppIdMissing,
    UserIdMissing,
    SessionIdMissing,
    CollectionIdMissing,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthError::NoToken => "No access token provided",
            AuthError::Invalid => "Invalid JWT",
            AuthError::Expired => "JWT expired",
            AuthError::Revoked => "JWT revoked",
            AuthError::NotYetValid => "JWT not yet valid",
            AuthError::IssuedInFuture => "JWT issued in the future",
            AuthError::SeveralKeys => "More than one Authorization header",
            AuthError::AdminRequired => "Resource requires admin privileges",
            AuthError::NotPermissioned => "JWT not permissioned for this resource",
            AuthError::Unauthorized => "Unauthorized access to resource",
            AuthError::AppIdMissing => "App ID not found in query parameter or JWT",
            AuthError::UserIdMissing => "User ID not found in query parameter or JWT",
            AuthError::SessionIdMissing => "Session ID not found in query parameter or JWT",
            AuthError::CollectionIdMissing => "Collection ID not found in query parameter or JWT",
        })
    }
}

impl std::error::Error for AuthError {}

fn same(claim: &Option<String>, id: Option<&str>) -> bool {
    matches!((claim.as_deref(), id), (Some(c), Some(i)) if c == i)
}

impl Claims {
    /// The claims every request carries when authentication is off, and those of the admin key.
    pub fn admin() -> Claims {
        Claims {
            t: String::new(),
            ad: Some(true),
            ..Claims::default()
        }
    }

    pub fn is_admin(&self) -> bool {
        self.ad == Some(true)
    }

    /// Refuses an expired key. `exp` may be a number (seconds since the epoch) or an ISO 8601 string
    /// (with or without an offset; without one it is UTC); anything else makes the key invalid.
    pub fn check_expiry(&self, now: DateTime<Utc>) -> Result<(), AuthError> {
        let expires = match &self.exp {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::Number(n)) => {
                let secs = n.as_f64().ok_or(AuthError::Invalid)?;
                DateTime::<Utc>::from_timestamp_micros((secs * 1e6) as i64)
                    .ok_or(AuthError::Invalid)?
            }
            Some(Value::String(s)) => parse_instant(s).ok_or(AuthError::Invalid)?,
            Some(_) => return Err(AuthError::Invalid),
        };
        if now >= expires {
            return Err(AuthError::Expired);
        }
        Ok(())
    }

    /// Refuses a key issued (`iat`) later than `now`, beyond `leeway` seconds for clocks out of
    /// step.
    pub fn check_issued(&self, now: DateTime<Utc>, leeway: i64) -> Result<(), AuthError> {
        match self.iat {
            Some(iat) if iat > now.timestamp() + leeway => Err(AuthError::IssuedInFuture),
            _ => Ok(()),
        }
    }

    /// Whether every id the key names is the route's id at that level: naming more ids narrows a
    /// key, never widens it. A key naming an app and a user reaches that user's routes in that app
    /// and nothing else (not the app's user list, not another user).
    fn within(&self, ids: &PathIds) -> bool {
        [
            (&self.ap, ids.app_id),
            (&self.us, ids.user_id),
            (&self.se, ids.session_id),
            (&self.co, ids.collection_id),
        ]
        .into_iter()
        .all(|(claim, id)| claim.is_none() || same(claim, id))
    }

    /// Whether the key may use a route of `scope` whose path names `ids`: one of its ids must be
    /// one the scope accepts (as in v1.1.0), and every id it names must be the route's (see
    /// `within`). Every store lookup also filters by the whole chain of ids in the path, so a key
    /// that matches one level of a path with a forged ancestry (its own user under another app)
    /// reaches nothing.
    pub fn permits(&self, scope: Scope, ids: &PathIds) -> Result<(), AuthError> {
        if self.is_admin() {
            return Ok(());
        }
        let app = same(&self.ap, ids.app_id);
        let user = same(&self.us, ids.user_id);
        let allowed = match scope {
            Scope::Admin => return Err(AuthError::AdminRequired),
            Scope::Token => true,
            Scope::App => app,
            Scope::AppUser => app || user,
            Scope::Session => app || user || same(&self.se, ids.session_id),
            Scope::Collection => app || user || same(&self.co, ids.collection_id),
        };
        // Token routes resolve their ids from the query or the key and check them there.
        if allowed && (scope == Scope::Token || self.within(ids)) {
            Ok(())
        } else {
            Err(AuthError::NotPermissioned)
        }
    }

    /// `GET /v1/apps`: the app from the query, else the key's; a non-admin key must be that app's
    /// and name nothing below it.
    pub fn resolve_app(&self, query: Option<String>) -> Result<String, AuthError> {
        self.resolve(
            query,
            &self.ap,
            AuthError::AppIdMissing,
            &[],
            PathIds::default(),
            |ids, id| ids.app_id = Some(id),
        )
    }

    /// `GET .../users`: the user from the query, else the key's; a non-admin key must be that user's
    /// or the app's, and name nothing else.
    pub fn resolve_user(&self, app_id: &str, query: Option<String>) -> Result<String, AuthError> {
        self.resolve(
            query,
            &self.us,
            AuthError::UserIdMissing,
            &[(&self.ap, app_id)],
            PathIds::under(app_id, None),
            |ids, id| ids.user_id = Some(id),
        )
    }

    /// `GET .../sessions`: the session from the query, else the key's; a non-admin key must be that
    /// session's, the user's or the app's, and name nothing else.
    pub fn resolve_session(
        &self,
        app_id: &str,
        user_id: &str,
        query: Option<String>,
    ) -> Result<String, AuthError> {
        self.resolve(
            query,
            &self.se,
            AuthError::SessionIdMissing,
            &[(&self.us, user_id), (&self.ap, app_id)],
            PathIds::under(app_id, Some(user_id)),
            |ids, id| ids.session_id = Some(id),
        )
    }

    /// `GET .../collections`: the collection from the query, else the key's; a non-admin key must be
    /// that collection's, the user's or the app's, and name nothing else.
    pub fn resolve_collection(
        &self,
        app_id: &str,
        user_id: &str,
        query: Option<String>,
    ) -> Result<String, AuthError> {
        self.resolve(
            query,
            &self.co,
            AuthError::CollectionIdMissing,
            &[(&self.us, user_id), (&self.ap, app_id)],
            PathIds::under(app_id, Some(user_id)),
            |ids, id| ids.collection_id = Some(id),
        )
    }

    /// The id a token route reads: from the query, else from the key's `claim` of that level. A
    /// non-admin key must name that id, or one of the `ancestors` in the path, and every id it
    /// names must be one of the route's: those of the `path`, and the id read at its `level`.
    fn resolve(
        &self,
        query: Option<String>,
        claim: &Option<String>,
        missing: AuthError,
        ancestors: &[(&Option<String>, &str)],
        path: PathIds,
        level: for<'x> fn(&mut PathIds<'x>, &'x str),
    ) -> Result<String, AuthError> {
        let id = query.or_else(|| claim.clone()).ok_or(missing)?;
        let mut route = path;
        level(&mut route, &id);
        let allowed = self.is_admin()
            || ((same(claim, Some(&id))
                || ancestors.iter().any(|(c, path_id)| same(c, Some(path_id))))
                && self.within(&route));
        if allowed {
            Ok(id)
        } else {
            Err(AuthError::Unauthorized)
        }
    }
}

/// The ids a key names: what it may reach (see [`Claims::permits`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyScope {
    pub app_id: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub collection_id: Option<String>,
}

impl KeyScope {
    /// Whether the scope names no id at all (such a key would reach nothing).
    pub fn is_empty(&self) -> bool {
        self.app_id.is_none()
            && self.user_id.is_none()
            && self.session_id.is_none()
            && self.collection_id.is_none()
    }
}

/// A key as the server records it: its id, scope, label and times; never the key itself.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    /// The key's `jti` (a UUID). Keys recorded when presented for revocation get a new one.
    pub id: String,
    pub scope: KeyScope,
    /// Free text to tell keys apart (who or what it was given to).
    pub label: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The SHA-256 of the key's text ([`key_digest`]), kept only for a key recorded when it was
    /// presented for revocation (it carries no id of ours), so that it is refused by its text.
    pub digest: Option<String>,
}

/// Why a key asked for cannot be made.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyRequestError {
    /// `expires_at` is not an ISO 8601 date and time (the text given).
    Expiry(String),
    /// The label is not a valid name (why, and the text given).
    Label(crate::Invalid, String),
    /// The key would name no id.
    NoId,
}

impl KeyRecord {
    /// The record of a key asked for (through the API or the command line): `expires_at` an ISO 8601
    /// date and time, `label` a valid name, and at least one id in `scope`; checked in that order.
    pub fn requested(
        scope: KeyScope,
        label: Option<String>,
        expires_at: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<KeyRecord, KeyRequestError> {
        let expires_at = match expires_at {
            None => None,
            Some(raw) => {
                Some(parse_instant(raw).ok_or_else(|| KeyRequestError::Expiry(raw.to_string()))?)
            }
        };
        let label = match label {
            None => None,
            Some(raw) => Some(
                crate::Name::parse(raw.clone())
                    .map_err(|reason| KeyRequestError::Label(reason, raw))?
                    .into_inner(),
            ),
        };
        if scope.is_empty() {
            return Err(KeyRequestError::NoId);
        }
        Ok(KeyRecord::new(scope, label, expires_at, now))
    }

    /// A new key's record: a fresh id, made `now`, expiring at `expires_at` to the whole second (what
    /// its `exp` claim can say).
    pub fn new(
        scope: KeyScope,
        label: Option<String>,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> KeyRecord {
        KeyRecord {
            id: uuid::Uuid::new_v4().to_string(),
            scope,
            label,
            expires_at: expires_at.and_then(|t| DateTime::from_timestamp(t.timestamp(), 0)),
            created_at: now,
            revoked_at: None,
            digest: None,
        }
    }

    /// The record of a key presented for revocation that carries no id the server recorded (minted
    /// before keys were recorded, or elsewhere with the same secret): recorded by its digest, revoked
    /// `now`.
    pub fn presented(claims: &Claims, token: &str, now: DateTime<Utc>) -> KeyRecord {
        let expires_at = claims.exp.as_ref().and_then(|exp| match exp {
            Value::Number(n) => n
                .as_f64()
                .and_then(|s| DateTime::<Utc>::from_timestamp(s as i64, 0)),
            Value::String(s) => parse_instant(s),
            _ => None,
        });
        let created_at = claims
            .iat
            .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
            .or_else(|| parse_instant(&claims.t))
            .unwrap_or(now);
        KeyRecord {
            revoked_at: Some(now),
            digest: Some(key_digest(token)),
            ..KeyRecord::new(claims.scope(), None, expires_at, created_at)
        }
    }

    /// The claims of the key this record describes (what is signed when it is minted).
    pub fn claims(&self) -> Claims {
        Claims {
            t: self.created_at.to_rfc3339(),
            exp: self.expires_at.map(|t| Value::from(t.timestamp())),
            ad: None,
            ap: self.scope.app_id.clone(),
            us: self.scope.user_id.clone(),
            se: self.scope.session_id.clone(),
            co: self.scope.collection_id.clone(),
            jti: Some(self.id.clone()),
            iat: Some(self.created_at.timestamp()),
        }
    }
}

impl Claims {
    /// Refuses to revoke the admin key.
    pub fn check_revocable(&self) -> Result<(), crate::Error> {
        match self.is_admin() {
            true => Err(crate::Error::admin_key_not_revocable()),
            false => Ok(()),
        }
    }

    /// The ids the key names.
    pub fn scope(&self) -> KeyScope {
        KeyScope {
            app_id: self.ap.clone(),
            user_id: self.us.clone(),
            session_id: self.se.clone(),
            collection_id: self.co.clone(),
        }
    }
}

/// The SHA-256 of a key's text, in lower-case hex: how a key without a recorded id is recognised.
pub fn key_digest(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The revoked keys a process refuses: by id (`jti`) and, for keys recorded by their text, by
/// digest. Checking a key costs no database round trip; the web layer keeps it up to date.
#[derive(Debug, Clone, Default)]
pub struct RevokedKeys {
    ids: HashSet<String>,
    digests: HashSet<String>,
}

impl RevokedKeys {
    /// The list from the revoked records' ids and digests.
    pub fn new(revoked: impl IntoIterator<Item = (String, Option<String>)>) -> RevokedKeys {
        let mut list = RevokedKeys::default();
        for (id, digest) in revoked {
            list.ids.insert(id);
            if let Some(digest) = digest {
                list.digests.insert(digest);
            }
        }
        list
    }

    /// Whether the key (its claims, and its text `token`) is revoked.
    pub fn refuses(&self, claims: &Claims, token: &str) -> bool {
        claims.jti.as_ref().is_some_and(|id| self.ids.contains(id))
            || (!self.digests.is_empty() && self.digests.contains(&key_digest(token)))
    }
}

/// Parses an ISO 8601 instant: RFC 3339, or without an offset (taken as UTC).
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .or_else(|| {
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)
    })
    .map(|n| n.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(ap: Option<&str>, us: Option<&str>, se: Option<&str>, co: Option<&str>) -> Claims {
        Claims {
            ap: ap.map(Into::into),
            us: us.map(Into::into),
            se: se.map(Into::into),
            co: co.map(Into::into),
            ..Claims::default()
        }
    }

    #[test]
    fn scopes_accept_the_claims_of_their_level_and_above() {
        let ids = PathIds {
            app_id: Some("A"),
            user_id: Some("U"),
            session_id: Some("S"),
            collection_id: Some("C"),
        };
        let app = key(Some("A"), None, None, None);
        let user = key(None, Some("U"), None, None);
        let session = key(None, None, Some("S"), None);
        let collection = key(None, None, None, Some("C"));
        assert_eq!(app.permits(Scope::App, &ids), Ok(()));
        assert_eq!(
            user.permits(Scope::App, &ids),
            Err(AuthError::NotPermissioned)
        );
        assert_eq!(user.permits(Scope::AppUser, &ids), Ok(()));
        assert_eq!(
            session.permits(Scope::AppUser, &ids),
            Err(AuthError::NotPermissioned)
        );
        assert_eq!(session.permits(Scope::Session, &ids), Ok(()));
        assert_eq!(
            collection.permits(Scope::Session, &ids),
            Err(AuthError::NotPermissioned)
        );
        assert_eq!(collection.permits(Scope::Collection, &ids), Ok(()));
        assert_eq!(
            app.permits(Scope::Admin, &ids),
            Err(AuthError::AdminRequired)
        );
        assert_eq!(Claims::admin().permits(Scope::Admin, &ids), Ok(()));
        let sibling = key(Some("B"), Some("V"), Some("T"), Some("D"));
        for scope in [
            Scope::App,
            Scope::AppUser,
            Scope::Session,
            Scope::Collection,
        ] {
            assert_eq!(
                sibling.permits(scope, &ids),
                Err(AuthError::NotPermissioned)
            );
        }
    }

    #[test]
    fn naming_more_ids_narrows_a_key() {
        let route = |app, user, session| PathIds {
            app_id: Some(app),
            user_id: user,
            session_id: session,
            collection_id: None,
        };
        let app_user = key(Some("A"), Some("U"), None, None);
        // Its own user's routes in its app.
        assert_eq!(
            app_user.permits(Scope::AppUser, &route("A", Some("U"), None)),
            Ok(())
        );
        assert_eq!(
            app_user.permits(Scope::Session, &route("A", Some("U"), Some("S"))),
            Ok(())
        );
        // Not the app's routes, not another user, not its user under another app.
        let refused = Err(AuthError::NotPermissioned);
        assert_eq!(
            app_user.permits(Scope::App, &route("A", None, None)),
            refused
        );
        assert_eq!(
            app_user.permits(Scope::AppUser, &route("A", Some("V"), None)),
            refused
        );
        assert_eq!(
            app_user.permits(Scope::AppUser, &route("B", Some("U"), None)),
            refused
        );
        // A user key alone keeps working in any app, as in v1.1.0.
        let user = key(None, Some("U"), None, None);
        assert_eq!(
            user.permits(Scope::AppUser, &route("B", Some("U"), None)),
            Ok(())
        );
        // App and session: that session's routes only.
        let app_session = key(Some("A"), None, Some("S"), None);
        assert_eq!(
            app_session.permits(Scope::Session, &route("A", Some("U"), Some("S"))),
            Ok(())
        );
        assert_eq!(
            app_session.permits(Scope::Session, &route("A", Some("U"), Some("T"))),
            refused
        );
        assert_eq!(
            app_session.permits(Scope::AppUser, &route("A", Some("U"), None)),
            refused
        );
        // A key naming nothing reaches nothing.
        assert_eq!(
            Claims::default().permits(Scope::Session, &route("A", Some("U"), Some("S"))),
            refused
        );
        // Token routes: the id read from the query or the key counts as the route's.
        assert_eq!(app_user.resolve_user("A", None), Ok("U".into()));
        assert_eq!(
            app_user.resolve_user("A", Some("V".into())),
            Err(AuthError::Unauthorized)
        );
        assert_eq!(app_user.resolve_app(None), Err(AuthError::Unauthorized));
        assert_eq!(
            app_user.resolve_session("A", "U", Some("S".into())),
            Ok("S".into())
        );
        assert_eq!(
            Claims::default().resolve_app(Some("A".into())),
            Err(AuthError::Unauthorized)
        );
    }

    #[test]
    fn revoked_keys_are_refused_by_id_or_by_digest() {
        let now = parse_instant("2026-01-01T00:00:00Z").unwrap();
        let record = KeyRecord::new(
            KeyScope {
                app_id: Some("A".into()),
                ..KeyScope::default()
            },
            Some("mobile".into()),
            None,
            now,
        );
        let claims = record.claims();
        assert_eq!(claims.jti.as_deref(), Some(record.id.as_str()));
        assert_eq!(claims.iat, Some(now.timestamp()));
        let old = key(Some("A"), None, None, None);
        let presented = KeyRecord::presented(&old, "old.key.text", now);
        assert_eq!(presented.scope, old.scope());
        assert_eq!(presented.revoked_at, Some(now));
        let list = RevokedKeys::new([(record.id.clone(), None)]);
        assert!(list.refuses(&claims, "any text"));
        assert!(!list.refuses(&old, "old.key.text"));
        let list = RevokedKeys::new([(presented.id.clone(), presented.digest.clone())]);
        assert!(list.refuses(&old, "old.key.text"));
        assert!(!list.refuses(&old, "another.key.text"));
        assert!(!list.refuses(&claims, "any text"));
        assert_eq!(key_digest("abc").len(), 64);
    }

    #[test]
    fn expiry_accepts_numbers_and_iso_strings() {
        let now = parse_instant("2026-01-01T00:00:00Z").unwrap();
        let with = |exp: Value| Claims {
            exp: Some(exp),
            ..Claims::default()
        };
        assert_eq!(with(json!(now.timestamp() + 60)).check_expiry(now), Ok(()));
        assert_eq!(
            with(json!(now.timestamp())).check_expiry(now),
            Err(AuthError::Expired)
        );
        assert_eq!(with(json!("2026-01-01T00:01:00")).check_expiry(now), Ok(()));
        assert_eq!(
            with(json!("2025-12-31T23:59:59+00:00")).check_expiry(now),
            Err(AuthError::Expired)
        );
        assert_eq!(
            with(json!("soon")).check_expiry(now),
            Err(AuthError::Invalid)
        );
        assert_eq!(Claims::default().check_expiry(now), Ok(()));
    }

    #[test]
    fn token_routes_resolve_from_query_or_claims() {
        let user = key(None, Some("U"), None, None);
        assert_eq!(user.resolve_user("A", None), Ok("U".into()));
        assert_eq!(
            user.resolve_user("A", Some("V".into())),
            Err(AuthError::Unauthorized)
        );
        assert_eq!(
            key(Some("A"), None, None, None).resolve_user("A", Some("V".into())),
            Ok("V".into())
        );
        assert_eq!(user.resolve_app(None), Err(AuthError::AppIdMissing));
        assert_eq!(
            Claims::admin().resolve_app(Some("A".into())),
            Ok("A".into())
        );
        assert_eq!(
            key(Some("B"), None, None, None).resolve_app(Some("A".into())),
            Err(AuthError::Unauthorized)
        );
        assert_eq!(
            Claims::admin().resolve_session("A", "U", None),
            Err(AuthError::SessionIdMissing)
        );
    }
}
