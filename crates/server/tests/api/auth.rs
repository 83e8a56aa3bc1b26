//! API keys: every route checks its scope; keys are minted by the API and the command line.

use crate::helpers::{detail, id, TestApp};
use honcho_domain::auth::Claims;
use honcho_web::auth::Keys;
use serde_json::{json, Value};
use std::cell::Cell;

pub const SECRET: &str = "test-secret-of-sufficient-length";

/// Resources the matrix runs against: an app with a user, a sibling user, their sessions and a
/// message, and a sibling app with its own user and session.
pub struct Fixture {
    pub app: String,
    pub app_name: String,
    pub user: String,
    pub user_name: String,
    pub session: String,
    pub message: String,
    pub metamessage: String,
    pub collection: String,
    pub document: String,
    pub sibling_collection: String,
    pub sibling_app: String,
    pub sibling_app_user: String,
    pub sibling_user: String,
    pub sibling_session: String,
    /// A recorded key (minted by the API for the app) that the key routes revoke.
    pub key_id: String,
    pub key_text: String,
}

impl Fixture {
    pub fn seed(app: &TestApp, admin: &str) -> Fixture {
        let ok = |method: &str, path: &str, body: Value| -> Value {
            let (status, v) = app.send_as(Some(admin), method, path, Some(&body.to_string()));
            assert_eq!(status, 200, "{method} {path}: {v}");
            v
        };
        let post = |path: &str, body: Value| id(&ok("POST", path, body));
        let a = post("/v1/apps", json!({ "name": "tenant-a" }));
        let b = post("/v1/apps", json!({ "name": "tenant-b" }));
        let u = post(&format!("/v1/apps/{a}/users"), json!({ "name": "alice" }));
        let u2 = post(&format!("/v1/apps/{a}/users"), json!({ "name": "bob" }));
        let ub = post(&format!("/v1/apps/{b}/users"), json!({ "name": "carol" }));
        let alice = format!("/v1/apps/{a}/users/{u}");
        let s = post(&format!("{alice}/sessions"), json!({}));
        let s2 = post(&format!("/v1/apps/{a}/users/{u2}/sessions"), json!({}));
        let m = post(
            &format!("{alice}/sessions/{s}/messages"),
            json!({ "content": "hi", "is_user": true }),
        );
        let mm = post(
            &format!("{alice}/metamessages"),
            json!({ "metamessage_type": "note", "content": "about alice", "session_id": s, "message_id": m }),
        );
        let c = post(&format!("{alice}/collections"), json!({ "name": "facts" }));
        let d = post(
            &format!("{alice}/collections/{c}/documents"),
            json!({ "content": "likes tea" }),
        );
        let c2 = post(
            &format!("/v1/apps/{a}/users/{u2}/collections"),
            json!({ "name": "facts" }),
        );
        let (status, minted) =
            app.send_as(Some(admin), "POST", &format!("/v1/keys?app_id={a}"), None);
        assert_eq!(status, 200, "{minted}");
        let (status, listed) = app.get_as(admin, "/v1/keys?reverse=true");
        assert_eq!(status, 200, "{listed}");
        Fixture {
            app: a,
            app_name: "tenant-a".into(),
            user: u,
            user_name: "alice".into(),
            session: s,
            message: m,
            metamessage: mm,
            collection: c,
            document: d,
            sibling_collection: c2,
            sibling_app: b,
            sibling_app_user: ub,
            sibling_user: u2,
            sibling_session: s2,
            key_id: id(&listed["items"][0]),
            key_text: minted["key"].as_str().unwrap().to_string(),
        }
    }

    /// Makes what a destructive request is about exist again, with the same id where a key names it.
    pub fn prepare(&mut self, app: &TestApp, admin: &str, method: &str, template: &str) {
        if method != "DELETE" {
            return;
        }
        // An erased user comes back under its id (its other rows are not needed after this).
        let users = format!("/v1/apps/{}/users?user_id={}", self.app, self.user);
        if app.get_as(admin, &users).0 == 404 {
            let sql = format!(
                "INSERT INTO users (public_id, app_id, name, metadata, created_at) \
                 VALUES ('{}', '{}', '{}', '{{}}', '2026-01-01 00:00:00+00:00')",
                self.user, self.app, self.user_name
            );
            app.execute_sql(&sql, &sql);
        }
        let collections = format!("/v1/apps/{}/users/{}/collections", self.app, self.user);
        let path = format!("{collections}?collection_id={}", self.collection);
        if app.get_as(admin, &path).0 == 404 {
            let sql = format!(
                "INSERT INTO collections (public_id, app_id, user_id, name, metadata, created_at) \
                 VALUES ('{}', '{}', '{}', 'facts', '{{}}', '2026-01-01 00:00:00+00:00')",
                self.collection, self.app, self.user
            );
            app.execute_sql(&sql, &sql);
        }
        if template.ends_with("/documents/{document_id}") {
            let body = r#"{"content": "to be deleted"}"#;
            let path = format!("{collections}/{}/documents", self.collection);
            self.document = id(&app.send_as(Some(admin), "POST", &path, Some(body)).1);
        }
    }

    /// A concrete request for a route template: path (with the query token routes need) and a body
    /// that makes the request succeed when it is allowed.
    pub fn request(&self, template: &str, method: &str, n: usize) -> (String, Option<String>) {
        let path = template
            .replace("{app_id}", &self.app)
            .replace("{user_id}", &self.user)
            .replace("{session_id}", &self.session)
            .replace("{message_id}", &self.message)
            .replace("{metamessage_id}", &self.metamessage)
            .replace("{collection_id}", &self.collection)
            .replace("{document_id}", &self.document)
            .replace("{key_id}", &self.key_id);
        let path = match (method, template) {
            (_, "/v1/apps/name/{name}") | (_, "/v1/apps/get_or_create/{name}") => {
                path.replace("{name}", &self.app_name)
            }
            (_, t)
                if t.ends_with("/users/name/{name}")
                    || t.ends_with("/users/get_or_create/{name}") =>
            {
                path.replace("{name}", &self.user_name)
            }
            ("GET", "/v1/apps") => format!("{path}?app_id={}", self.app),
            ("GET", "/v1/apps/{app_id}/users") => format!("{path}?user_id={}", self.user),
            ("GET", "/v1/apps/{app_id}/users/{user_id}/sessions") => {
                format!("{path}?session_id={}", self.session)
            }
            ("POST", "/v1/keys") => format!("{path}?app_id={}", self.app),
            ("GET", "/v1/apps/{app_id}/users/{user_id}/collections") => {
                format!("{path}?collection_id={}", self.collection)
            }
            (_, t) if t.ends_with("/collections/name/{name}") => path.replace("{name}", "facts"),
            _ => path,
        };
        let body = match (method, template) {
            ("GET", _) | ("DELETE", _) => None,
            ("POST", "/v1/apps") => Some(json!({ "name": format!("new-app-{n}") })),
            ("POST", "/v1/apps/{app_id}/users") => Some(json!({ "name": format!("new-user-{n}") })),
            ("POST", t) if t.ends_with("/messages") => {
                Some(json!({ "content": "x", "is_user": true }))
            }
            ("POST", t) if t.ends_with("/metamessages") => {
                Some(json!({ "metamessage_type": "note", "content": "x" }))
            }
            ("POST", t) if t.ends_with("/collections") => Some(json!({ "name": format!("c-{n}") })),
            ("POST", t) if t.ends_with("/documents") => Some(json!({ "content": "x" })),
            ("POST", t) if t.ends_with("/query") => Some(json!({ "query": "tea" })),
            ("POST", t) if t.ends_with("/chat") => Some(json!({ "queries": "tea?" })),
            ("POST", "/v1/keys/revoke") => Some(json!({ "key": self.key_text })),
            ("POST", t) if t.ends_with("/batch") => {
                Some(json!({ "messages": [{ "content": "x", "is_user": false }] }))
            }
            ("POST", _) => Some(json!({})),
            ("PUT", _) => Some(json!({ "metadata": { "n": n } })),
            _ => unreachable!("{method} {template}"),
        };
        (path, body.map(|b| b.to_string()))
    }
}

/// The keys the matrix tries, by name.
pub fn keys(f: &Fixture) -> Vec<(&'static str, Option<String>)> {
    let keys = Keys::new(SECRET);
    let scoped = |ap: Option<&str>, us: Option<&str>, se: Option<&str>| {
        Some(keys.mint(&Claims {
            ap: ap.map(Into::into),
            us: us.map(Into::into),
            se: se.map(Into::into),
            ..Claims::default()
        }))
    };
    let expired = Claims {
        exp: Some(json!(chrono::Utc::now().timestamp() - 60)),
        ..Claims::admin()
    };
    // An unsigned token claiming to be admin.
    let none_alg = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(r#"{"t":"","ad":true}"#)
    );
    vec![
        ("none", None),
        ("garbage", Some("not-a-jwt".into())),
        (
            "other secret",
            Some(Keys::new("another-secret").admin_key()),
        ),
        ("alg none", Some(none_alg)),
        ("expired", Some(keys.mint(&expired))),
        ("admin", Some(keys.admin_key())),
        ("app", scoped(Some(&f.app), None, None)),
        ("user", scoped(None, Some(&f.user), None)),
        ("session", scoped(None, None, Some(&f.session))),
        ("sibling app", scoped(Some(&f.sibling_app), None, None)),
        ("sibling user", scoped(None, Some(&f.sibling_user), None)),
        (
            "sibling session",
            scoped(None, None, Some(&f.sibling_session)),
        ),
        (
            "collection",
            Some(keys.mint(&Claims {
                co: Some(f.collection.clone()),
                ..Claims::default()
            })),
        ),
        (
            "sibling collection",
            Some(keys.mint(&Claims {
                co: Some(f.sibling_collection.clone()),
                ..Claims::default()
            })),
        ),
        // Keys naming several ids reach only routes naming all of them.
        ("app+user", scoped(Some(&f.app), Some(&f.user), None)),
        (
            "app+user+session",
            scoped(Some(&f.app), Some(&f.user), Some(&f.session)),
        ),
        (
            "user+session",
            scoped(None, Some(&f.user), Some(&f.session)),
        ),
        ("app+session", scoped(Some(&f.app), None, Some(&f.session))),
        (
            "app+collection",
            Some(keys.mint(&Claims {
                ap: Some(f.app.clone()),
                co: Some(f.collection.clone()),
                ..Claims::default()
            })),
        ),
        (
            "app+sibling user",
            scoped(Some(&f.app), Some(&f.sibling_user), None),
        ),
        (
            "app+sibling session",
            scoped(Some(&f.app), None, Some(&f.sibling_session)),
        ),
        (
            "app+user+sibling session",
            scoped(Some(&f.app), Some(&f.user), Some(&f.sibling_session)),
        ),
        (
            "app+sibling collection",
            Some(keys.mint(&Claims {
                ap: Some(f.app.clone()),
                co: Some(f.sibling_collection.clone()),
                ..Claims::default()
            })),
        ),
    ]
}

/// The keys naming the right app and a sibling's id: refused everywhere.
pub const SIBLING_MULTI_KEYS: &[&str] = &[
    "app+sibling user",
    "app+sibling session",
    "app+user+sibling session",
    "app+sibling collection",
];

fn b64(s: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = s.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The scope column of the contract, written out independently of the server's table: which of the
/// matrix's scoped keys may use each route ("admin" = none of them).
const SPEC: &[(&str, &str, &[&str])] = &[
    ("GET", "/v1/apps", &["app"]),
    ("POST", "/v1/apps", &[]),
    ("POST", "/v1/apps/list", &[]),
    ("GET", "/v1/apps/name/{name}", &[]),
    ("GET", "/v1/apps/get_or_create/{name}", &[]),
    ("PUT", "/v1/apps/{app_id}", &["app"]),
    ("POST", "/v1/apps/{app_id}/users", &["app"]),
    ("GET", "/v1/apps/{app_id}/users", &["app", "user"]),
    ("POST", "/v1/apps/{app_id}/users/list", &["app"]),
    ("GET", "/v1/apps/{app_id}/users/name/{name}", &["app"]),
    (
        "GET",
        "/v1/apps/{app_id}/users/get_or_create/{name}",
        &["app"],
    ),
    ("PUT", "/v1/apps/{app_id}/users/{user_id}", &["app", "user"]),
    (
        "DELETE",
        "/v1/apps/{app_id}/users/{user_id}",
        &["app", "user"],
    ),
    (
        "GET",
        "/v1/apps/{app_id}/users/{user_id}/sessions",
        &["app", "user", "session"],
    ),
    (
        "POST",
        "/v1/apps/{app_id}/users/{user_id}/sessions",
        &["app", "user"],
    ),
    (
        "POST",
        "/v1/apps/{app_id}/users/{user_id}/sessions/list",
        &["app", "user"],
    ),
    (
        "PUT",
        "/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}",
        &["app", "user", "session"],
    ),
    (
        "DELETE",
        "/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}",
        &["app", "user", "session"],
    ),
    (
        "GET",
        "/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}/clone",
        &["app", "user", "session"],
    ),
    (
        "POST",
        "/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}/chat",
        &["app", "user", "session"],
    ),
    (
        "POST",
        "/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}/messages",
        &["app", "user", "session"],
    ),
    (
        "POST",
        "/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}/messages/batch",
        &["app", "user", "session"],
    ),
    (
        "POST",
        "/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}/messages/list",
        &["app", "user", "session"],
    ),
    (
        "GET",
        "/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}/messages/{message_id}",
        &["app", "user", "session"],
    ),
    (
        "POST",
        "/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}/messages/query",
        &["app", "user", "session"],
    ),
    (
        "GET",
        "/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}/context",
        &["app", "user", "session"],
    ),
    (
        "POST",
        "/v1/apps/{app_id}/users/{user_id}/messages/query",
        &["app", "user"],
    ),
    (
        "PUT",
        "/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}/messages/{message_id}",
        &["app", "user", "session"],
    ),
    (
        "POST",
        "/v1/apps/{app_id}/users/{user_id}/metamessages",
        &["app", "user"],
    ),
    (
        "POST",
        "/v1/apps/{app_id}/users/{user_id}/metamessages/list",
        &["app", "user"],
    ),
    (
        "GET",
        "/v1/apps/{app_id}/users/{user_id}/metamessages/{metamessage_id}",
        &["app", "user"],
    ),
    (
        "PUT",
        "/v1/apps/{app_id}/users/{user_id}/metamessages/{metamessage_id}",
        &["app", "user"],
    ),
    (
        "GET",
        "/v1/apps/{app_id}/users/{user_id}/collections",
        &["app", "user", "collection"],
    ),
    (
        "POST",
        "/v1/apps/{app_id}/users/{user_id}/collections",
        &["app", "user"],
    ),
    (
        "POST",
        "/v1/apps/{app_id}/users/{user_id}/collections/list",
        &["app", "user"],
    ),
    (
        "GET",
        "/v1/apps/{app_id}/users/{user_id}/collections/name/{name}",
        &["app", "user"],
    ),
    (
        "PUT",
        "/v1/apps/{app_id}/users/{user_id}/collections/{collection_id}",
        &["app", "user", "collection"],
    ),
    (
        "DELETE",
        "/v1/apps/{app_id}/users/{user_id}/collections/{collection_id}",
        &["app", "user", "collection"],
    ),
    (
        "POST",
        "/v1/apps/{app_id}/users/{user_id}/collections/{collection_id}/documents/list",
        &["app", "user", "collection"],
    ),
    (
        "GET",
        "/v1/apps/{app_id}/users/{user_id}/collections/{collection_id}/documents/{document_id}",
        &["app", "user", "collection"],
    ),
    (
        "PUT",
        "/v1/apps/{app_id}/users/{user_id}/collections/{collection_id}/documents/{document_id}",
        &["app", "user", "collection"],
    ),
    (
        "DELETE",
        "/v1/apps/{app_id}/users/{user_id}/collections/{collection_id}/documents/{document_id}",
        &["app", "user", "collection"],
    ),
    (
        "POST",
        "/v1/apps/{app_id}/users/{user_id}/collections/{collection_id}/documents/query",
        &["app", "user", "collection"],
    ),
    (
        "POST",
        "/v1/apps/{app_id}/users/{user_id}/collections/{collection_id}/documents",
        &["app", "user", "collection"],
    ),
    ("POST", "/v1/keys", &[]),
    ("GET", "/v1/keys", &[]),
    ("POST", "/v1/keys/revoke", &[]),
    ("DELETE", "/v1/keys/{key_id}", &[]),
    ("GET", "/v1/apps/{app_id}/deriver/status", &["app"]),
    ("GET", "/v1/apps/{app_id}/deriver/failed", &["app"]),
    ("POST", "/v1/apps/{app_id}/deriver/retry", &["app"]),
];

/// Routes resolved from the query or the key: a refused key is "Unauthorized access to resource".
const TOKEN_ROUTES: &[&str] = &[
    "/v1/apps",
    "/v1/apps/{app_id}/users",
    "/v1/apps/{app_id}/users/{user_id}/sessions",
    "/v1/apps/{app_id}/users/{user_id}/collections",
];

/// The levels whose ids a request to the route names: those in its path, and for the token routes
/// the one read from the query.
fn route_levels(method: &str, template: &str) -> Vec<&'static str> {
    let mut levels: Vec<&str> = [
        ("{app_id}", "app"),
        ("{user_id}", "user"),
        ("{session_id}", "session"),
        ("{collection_id}", "collection"),
    ]
    .into_iter()
    .filter(|(param, _)| template.contains(param))
    .map(|(_, level)| level)
    .collect();
    if method == "GET" && TOKEN_ROUTES.contains(&template) {
        let read = match template.rsplit('/').next() {
            Some("apps") => "app",
            Some("users") => "user",
            Some("sessions") => "session",
            _ => "collection",
        };
        levels.push(read);
    }
    levels
}

/// What a key gets on a route: `None` for success (200), else the 401 detail. A scoped key is
/// named by the levels it names, joined by `+` (`sibling` before a level names another's id): one
/// of its ids must be one the route's scope accepts (the contract's scope column), and every id it
/// names must be the route's.
pub fn expected(method: &str, template: &str, key: &str) -> Option<&'static str> {
    match key {
        "none" => return Some("No access token provided"),
        "garbage" | "other secret" | "alg none" => return Some("Invalid JWT"),
        "expired" => return Some("JWT expired"),
        "admin" => return None,
        _ => {}
    }
    let allowed = SPEC
        .iter()
        .find(|(m, t, _)| *m == method && *t == template)
        .unwrap_or_else(|| {
            panic!("{method} {template} is served but has no expected scope in this test")
        })
        .2;
    let parts: Vec<(&str, bool)> = key
        .split('+')
        .map(|part| match part.strip_prefix("sibling ") {
            Some(level) => (level, true),
            None => (part, false),
        })
        .collect();
    let levels = route_levels(method, template);
    let scope_accepts = parts
        .iter()
        .any(|(level, sibling)| !sibling && allowed.contains(level));
    let all_named_ids_are_the_routes = parts
        .iter()
        .all(|(level, sibling)| !sibling && levels.contains(level));
    if scope_accepts && all_named_ids_are_the_routes {
        None
    } else if allowed.is_empty() {
        Some("Resource requires admin privileges")
    } else if method == "GET" && TOKEN_ROUTES.contains(&template) {
        Some("Unauthorized access to resource")
    } else {
        Some("JWT not permissioned for this resource")
    }
}

#[test]
fn every_route_checks_its_scope() {
    let app = TestApp::spawn_with_auth(SECRET);
    let admin = Keys::new(SECRET).admin_key();
    let mut fixture = Fixture::seed(&app, &admin);
    let keys = keys(&fixture);
    let n = Cell::new(0);
    let mut failures = Vec::new();
    // Deleting the collection comes second to last: it takes the documents with it; erasing the
    // user comes last: it takes everything (the user comes back under its id, nothing else).
    let mut routes = app.operations();
    routes.sort_by_key(|(m, t)| {
        (
            m == "DELETE" && t == "/v1/apps/{app_id}/users/{user_id}",
            m == "DELETE" && t.ends_with("/collections/{collection_id}"),
        )
    });
    for (method, template) in &routes {
        let method = method.as_str();
        for (name, token) in &keys {
            n.set(n.get() + 1);
            fixture.prepare(&app, &admin, method, template);
            let (path, body) = fixture.request(template, method, n.get());
            let (status, answer) = app.send_as(token.as_deref(), method, &path, body.as_deref());
            let got = match status {
                200 | 204 => None,
                // Authorised; this server has no language model.
                405 if template.ends_with("/chat") => None,
                401 => answer["detail"]
                    .as_str()
                    .map(str::to_string)
                    .map(|d| d.leak() as &str),
                other => Some(format!("unexpected {other}: {answer}").leak() as &str),
            };
            let want = expected(method, template, name);
            if got != want {
                failures.push(format!(
                    "{method} {template} with {name} key: expected {want:?}, got {got:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        SPEC.len(),
        routes.len(),
        "every route of the contract is served"
    );
}

#[test]
fn a_key_cannot_reach_outside_its_real_ancestry() {
    let app = TestApp::spawn_with_auth(SECRET);
    let keys = Keys::new(SECRET);
    let f = Fixture::seed(&app, &keys.admin_key());
    // A key of app B's user, used with its own user id under app A.
    let foreign = keys.mint(&Claims {
        us: Some(f.sibling_app_user.clone()),
        ..Claims::default()
    });
    let under_a = format!("/v1/apps/{}/users/{}", f.app, f.sibling_app_user);
    let (status, body) = app.send_as(
        Some(&foreign),
        "POST",
        &format!("{under_a}/sessions"),
        Some("{}"),
    );
    assert_eq!(
        (status, body),
        (
            404,
            json!({ "detail": format!("User with ID '{}' not found", f.sibling_app_user) })
        )
    );
    let (status, _) = app.send_as(
        Some(&foreign),
        "PUT",
        &under_a,
        Some(r#"{"name": "mallory"}"#),
    );
    assert_eq!(status, 404);
    let (status, _) = app.get_as(
        &foreign,
        &format!("/v1/apps/{}/users?user_id={}", f.app, f.sibling_app_user),
    );
    assert_eq!(status, 404);
    let (status, page) = app.send_as(
        Some(&foreign),
        "POST",
        &format!("{under_a}/sessions/list"),
        None,
    );
    assert_eq!((status, page["total"].clone()), (200, json!(0)));
    // A session key used under another user of the same app.
    let session_key = keys.mint(&Claims {
        se: Some(f.session.clone()),
        ..Claims::default()
    });
    let other_user = format!(
        "/v1/apps/{}/users/{}/sessions/{}",
        f.app, f.sibling_user, f.session
    );
    let (status, body) = app.send_as(
        Some(&session_key),
        "POST",
        &format!("{other_user}/messages/list"),
        None,
    );
    assert_eq!((status, body["total"].clone()), (200, json!(0)));
    let (status, body) = app.get_as(
        &session_key,
        &format!("{other_user}/messages/{}", f.message),
    );
    assert_eq!(status, 404, "{body}");
    let (status, _) = app.send_as(
        Some(&session_key),
        "POST",
        &format!("{other_user}/messages"),
        Some(r#"{"content": "x", "is_user": true}"#),
    );
    assert_eq!(status, 404);
}

#[test]
fn token_routes_fall_back_to_the_key() {
    let app = TestApp::spawn_with_auth(SECRET);
    let keys = Keys::new(SECRET);
    let f = Fixture::seed(&app, &keys.admin_key());
    let key = |ap: Option<&str>, us: Option<&str>, se: Option<&str>| {
        keys.mint(&Claims {
            ap: ap.map(Into::into),
            us: us.map(Into::into),
            se: se.map(Into::into),
            ..Claims::default()
        })
    };
    let app_key = key(Some(&f.app), None, None);
    let user_key = key(Some(&f.app), Some(&f.user), None);
    let session_key = key(Some(&f.app), Some(&f.user), Some(&f.session));
    let (status, body) = app.get_as(&app_key, "/v1/apps");
    assert_eq!((status, body["id"].clone()), (200, json!(f.app)));
    let users = format!("/v1/apps/{}/users", f.app);
    let (status, body) = app.get_as(&user_key, &users);
    assert_eq!((status, body["id"].clone()), (200, json!(f.user)));
    let sessions = format!("/v1/apps/{}/users/{}/sessions", f.app, f.user);
    let (status, body) = app.get_as(&session_key, &sessions);
    assert_eq!((status, body["id"].clone()), (200, json!(f.session)));
    // A key naming more ids reaches less: a session's key reads neither its app nor its user.
    let unauthorized = detail(401, "Unauthorized access to resource");
    assert_eq!(app.get_as(&session_key, "/v1/apps"), unauthorized);
    assert_eq!(app.get_as(&session_key, &users), unauthorized);
    assert_eq!(
        app.get_as(&user_key, &format!("{users}?user_id={}", f.sibling_user)),
        unauthorized
    );
    let (status, body) = app.send_as(Some(&keys.admin_key()), "GET", "/v1/apps", None);
    assert_eq!(
        (status, body),
        detail(401, "App ID not found in query parameter or JWT")
    );
}

/// The leak this server closed: v1.1.0 accepts a key when any of its ids matches, so an app and
/// user key could list the app's users and read a sibling user's messages.
#[test]
fn a_user_key_of_an_app_reads_nothing_of_another_user() {
    let app = TestApp::spawn_with_auth(SECRET);
    let admin = Keys::new(SECRET).admin_key();
    let f = Fixture::seed(&app, &admin);
    let bob_session = format!(
        "/v1/apps/{}/users/{}/sessions/{}",
        f.app, f.sibling_user, f.sibling_session
    );
    let (status, _) = app.send_as(
        Some(&admin),
        "POST",
        &format!("{bob_session}/messages"),
        Some(r#"{"content": "bob secret", "is_user": true}"#),
    );
    assert_eq!(status, 200);
    let (status, body) = app.send_as(
        Some(&admin),
        "POST",
        &format!("/v1/keys?app_id={}&user_id={}", f.app, f.user),
        None,
    );
    assert_eq!(status, 200);
    let alice = body["key"].as_str().unwrap().to_string();
    let refused = detail(401, "JWT not permissioned for this resource");
    for path in [
        format!("/v1/apps/{}/users/list", f.app),
        format!("{bob_session}/messages/list"),
        format!("/v1/apps/{}/users/{}/sessions/list", f.app, f.sibling_user),
    ] {
        assert_eq!(
            app.send_as(Some(&alice), "POST", &path, None),
            refused,
            "{path}"
        );
    }
    // Her own resources still work.
    let own = format!(
        "/v1/apps/{}/users/{}/sessions/{}/messages/list",
        f.app, f.user, f.session
    );
    let (status, page) = app.send_as(Some(&alice), "POST", &own, None);
    assert_eq!((status, page["total"].clone()), (200, json!(1)));
}

#[test]
fn minted_keys_work_until_they_expire() {
    let app = TestApp::spawn_with_auth(SECRET);
    let admin = Keys::new(SECRET).admin_key();
    let f = Fixture::seed(&app, &admin);
    let mint = |query: &str| -> (u16, Value) {
        app.send_as(Some(&admin), "POST", &format!("/v1/keys?{query}"), None)
    };
    let later = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let (status, body) = mint(&format!("app_id={}&expires_at={later}", f.app));
    assert_eq!(status, 200);
    let key = body["key"].as_str().unwrap().to_string();
    let (status, _) = app.send_as(
        Some(&key),
        "POST",
        &format!("/v1/apps/{}/users/list", f.app),
        None,
    );
    assert_eq!(status, 200);

    let earlier = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
    let (_, body) = mint(&format!(
        "user_id={}&expires_at={}",
        f.user,
        earlier.replace('+', "%2B")
    ));
    let expired = body["key"].as_str().unwrap().to_string();
    let (status, body) = app.send_as(
        Some(&expired),
        "POST",
        &format!("/v1/apps/{}/users/{}/sessions/list", f.app, f.user),
        None,
    );
    assert_eq!((status, body), detail(401, "JWT expired"));

    assert_eq!(
        mint("expires_at=2030-01-01T00:00:00"),
        detail(
            422,
            "At least one of app_id, user_id, session_id, or collection_id must be provided"
        )
    );
    let (status, body) = mint("app_id=x&expires_at=tomorrow");
    assert_eq!(
        (status, body["detail"][0]["loc"].clone()),
        (422, json!(["query", "expires_at"]))
    );
    let app_key = Keys::new(SECRET).mint(&Claims {
        ap: Some(f.app.clone()),
        ..Claims::default()
    });
    let (status, body) = app.send_as(
        Some(&app_key),
        "POST",
        &format!("/v1/keys?app_id={}", f.app),
        None,
    );
    assert_eq!(
        (status, body),
        detail(401, "Resource requires admin privileges")
    );
}

#[test]
fn with_auth_off_every_request_is_admin_and_keys_are_disabled() {
    let app = TestApp::spawn();
    assert_eq!(
        app.post_empty("/v1/keys?app_id=x"),
        detail(405, "Feature is disabled")
    );
    let (status, _) = app.send_as(
        Some("garbage"),
        "POST",
        "/v1/apps",
        Some(r#"{"name": "open"}"#),
    );
    assert_eq!(status, 200);
}

pub fn honcho(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_honcho"));
    cmd.args(args)
        .current_dir(dir.path())
        .env_remove("USE_AUTH")
        .env_remove("AUTH_JWT_SECRET");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn the_command_line_prints_and_mints_keys() {
    let app = TestApp::spawn_with_auth(SECRET);
    let out = honcho(&["keys", "admin"], &[("AUTH_JWT_SECRET", SECRET)]);
    assert!(out.status.success());
    let admin = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let f = Fixture::seed(&app, &admin);
    let env = [
        ("AUTH_JWT_SECRET", SECRET),
        ("DATABASE_URL", app.database_url()),
    ];
    // Ids may start with '-': the command line takes them as values (and checks them).
    let dashed = honcho(&["keys", "create", "--app-id", "-starts-with-a-dash"], &env);
    assert!(!dashed.status.success());
    assert_eq!(
        String::from_utf8_lossy(&dashed.stderr).trim(),
        "honcho: --app-id: no app with ID '-starts-with-a-dash'"
    );

    let out = honcho(&["keys", "create", "--app-id", &f.app], &env);
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let (status, body) = app.send_as(
        Some(&key),
        "POST",
        &format!("/v1/apps/{}/users/list", f.app),
        None,
    );
    assert_eq!(
        status,
        200,
        "{body} with key {key:?}, stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = honcho(
        &[
            "keys",
            "create",
            "--app-id",
            &f.app,
            "--expires-at",
            "2020-01-01T00:00:00Z",
        ],
        &env,
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let (status, body) = app.send_as(
        Some(&key),
        "POST",
        &format!("/v1/apps/{}/users/list", f.app),
        None,
    );
    assert_eq!((status, body), detail(401, "JWT expired"));

    let out = honcho(&["keys", "admin"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AUTH_JWT_SECRET"));
}

#[test]
fn auth_on_without_a_secret_refuses_to_start() {
    let out = honcho(
        &["serve", "--port", "0"],
        &[("USE_AUTH", "TRUE"), ("DATABASE_URL", "unused.db")],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        "honcho: AUTH_JWT_SECRET must be set when USE_AUTH is true"
    );
}

/// A token signed with `secret` from a header and claims written out (to say what `Keys::mint`
/// never would).
fn signed(header: Value, claims: Value, secret: &str) -> String {
    let message = format!("{}.{}", b64(&header.to_string()), b64(&claims.to_string()));
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
            .unwrap();
    format!("{message}.{signature}")
}

/// The raw answer to a request with these header lines.
fn raw(app: &TestApp, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(app.base.trim_start_matches("http://")).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[test]
fn tokens_not_yet_valid_from_the_future_or_with_unknown_critical_extensions_are_refused() {
    let app = TestApp::spawn_with_auth(SECRET);
    let admin = Keys::new(SECRET).admin_key();
    let f = Fixture::seed(&app, &admin);
    let users = format!("/v1/apps/{}/users/list", f.app);
    let now = chrono::Utc::now().timestamp();
    let header = json!({ "alg": "HS256", "typ": "JWT" });
    let app_claims = |extra: Value| {
        let mut c = json!({ "t": "", "ap": f.app });
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };
    let ask = |token: &str| app.send_as(Some(token), "POST", &users, None);
    // The same claims pass with times in the past.
    let fine = signed(
        header.clone(),
        app_claims(json!({ "nbf": now - 10, "iat": now - 10 })),
        SECRET,
    );
    assert_eq!(ask(&fine).0, 200);
    let later = signed(
        header.clone(),
        app_claims(json!({ "nbf": now + 3600 })),
        SECRET,
    );
    assert_eq!(ask(&later), detail(401, "JWT not yet valid"));
    let future = signed(
        header.clone(),
        app_claims(json!({ "iat": now + 3600 })),
        SECRET,
    );
    assert_eq!(ask(&future), detail(401, "JWT issued in the future"));
    let crit = signed(
        json!({ "alg": "HS256", "typ": "JWT", "crit": ["exp-ext"], "exp-ext": true }),
        app_claims(json!({})),
        SECRET,
    );
    assert_eq!(ask(&crit), detail(401, "Invalid JWT"));

    // Two Authorization headers: neither is chosen.
    let answer = raw(
        &app,
        &format!(
            "POST {users} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {admin}\r\n\
             authorization: Bearer {fine}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer.contains("More than one Authorization header"),
        "{answer}"
    );
}

#[test]
fn with_auth_on_metrics_need_the_admin_key_or_the_metrics_token() {
    let app = TestApp::spawn_with(crate::helpers::Options {
        auth: honcho_web::auth::AuthConfig {
            metrics_token: Some("scrape-token".into()),
            ..honcho_web::auth::AuthConfig::with_keys(Keys::new(SECRET))
        },
        ..crate::helpers::Options::default()
    });
    let admin = Keys::new(SECRET).admin_key();
    let f = Fixture::seed(&app, &admin);
    let app_key = Keys::new(SECRET).mint(&Claims {
        ap: Some(f.app.clone()),
        ..Claims::default()
    });
    let status = |token: Option<&str>| app.send_as(token, "GET", "/metrics", None).0;
    assert_eq!(status(None), 401);
    assert_eq!(status(Some(&app_key)), 401);
    assert_eq!(status(Some("wrong-token")), 401);
    assert_eq!(status(Some(&admin)), 200);
    assert_eq!(status(Some("scrape-token")), 200);
    // Health stays open (load balancers ask it).
    assert_eq!(app.send_as(None, "GET", "/health", None).0, 200);
}

#[test]
fn the_server_never_prints_the_admin_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_honcho"))
        .args(["serve", "--port", &port.to_string()])
        .env("DATABASE_URL", &db)
        .env("USE_AUTH", "true")
        .env("AUTH_JWT_SECRET", SECRET)
        .env("LOG_LEVEL", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while ureq::get(&format!("http://127.0.0.1:{port}/health"))
        .call()
        .is_err()
    {
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let admin = Keys::new(SECRET).admin_key();
    assert!(
        !printed.contains(&admin),
        "the admin key was printed:\n{printed}"
    );
    assert!(printed.contains("honcho keys admin"), "{printed}");
}

/// A route whose handler keeps to ids of its query (`deriver/status?user_id=`) counts them as the
/// route's: an app and user key reads its user's status, not another's, nor the whole app's.
#[test]
fn query_ids_of_a_route_narrow_like_path_ids() {
    let app = TestApp::spawn_with_auth(SECRET);
    let admin = Keys::new(SECRET).admin_key();
    let f = Fixture::seed(&app, &admin);
    let key = Keys::new(SECRET).mint(&Claims {
        ap: Some(f.app.clone()),
        us: Some(f.user.clone()),
        ..Claims::default()
    });
    for route in ["status", "failed"] {
        let status = |query: &str| {
            app.get_as(&key, &format!("/v1/apps/{}/deriver/{route}{query}", f.app))
                .0
        };
        assert_eq!(status(&format!("?user_id={}", f.user)), 200);
        assert_eq!(status(&format!("?user_id={}", f.sibling_user)), 401);
        assert_eq!(status(""), 401);
        assert_eq!(
            status(&format!("?user_id={}&session_id={}", f.user, f.session)),
            200
        );
    }
    // Running failed messages again is the app's (or the admin's) to do.
    let retry = format!("/v1/apps/{}/deriver/retry", f.app);
    assert_eq!(app.send_as(Some(&key), "POST", &retry, Some("{}")).0, 401);
}
