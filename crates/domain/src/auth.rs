//! Who may do what: the claims of an API key and the rules that match them against a route's scope.
//! Verifying a token's signature is the web layer's job; everything after that lives here.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
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

    /// Whether the key may use a route of `scope` whose path names `ids`. Every store lookup also
    /// filters by the whole chain of ids in the path, so a key that matches one level of a path with a
    /// forged ancestry (its own user under another app) reaches nothing.
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
        if allowed {
            Ok(())
        } else {
            Err(AuthError::NotPermissioned)
        }
    }

    /// `GET /v1/apps`: the app from the query, else the key's; a non-admin key must be that app's.
    pub fn resolve_app(&self, query: Option<String>) -> Result<String, AuthError> {
        self.resolve(query, &self.ap, AuthError::AppIdMissing, &[])
    }

    /// `GET .../users`: the user from the query, else the key's; a non-admin key must be that user's
    /// or the app's.
    pub fn resolve_user(&self, app_id: &str, query: Option<String>) -> Result<String, AuthError> {
        self.resolve(
            query,
            &self.us,
            AuthError::UserIdMissing,
            &[(&self.ap, app_id)],
        )
    }

    /// `GET .../sessions`: the session from the query, else the key's; a non-admin key must be that
    /// session's, the user's or the app's.
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
        )
    }

    /// `GET .../collections`: the collection from the query, else the key's; a non-admin key must be
    /// that collection's, the user's or the app's.
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
        )
    }

    /// The id a token route reads: from the query, else from the key's `claim` of that level. A
    /// non-admin key must name that id, or one of the `ancestors` in the path.
    fn resolve(
        &self,
        query: Option<String>,
        claim: &Option<String>,
        missing: AuthError,
        ancestors: &[(&Option<String>, &str)],
    ) -> Result<String, AuthError> {
        let id = query.or_else(|| claim.clone()).ok_or(missing)?;
        let allowed = self.is_admin()
            || same(claim, Some(&id))
            || ancestors.iter().any(|(c, path_id)| same(c, Some(path_id)));
        if allowed {
            Ok(id)
        } else {
            Err(AuthError::Unauthorized)
        }
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
