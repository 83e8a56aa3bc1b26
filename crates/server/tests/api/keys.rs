//! Recorded keys: minting records them, the admin lists and revokes them, and every server process
//! refuses a revoked key within seconds.

use crate::auth::{honcho, SECRET};
use crate::helpers::{detail, id, succeeded, Honcho, TestApp};
use honcho_domain::auth::Claims;
use honcho_web::auth::Keys;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// An app with a user, made with the admin key.
fn seed(app: &TestApp, admin: &str) -> (String, String) {
    let (status, a) = app.send_as(Some(admin), "POST", "/v1/apps", Some(r#"{"name": "keys"}"#));
    assert_eq!(status, 200, "{a}");
    let a = id(&a);
    let (status, u) = app.send_as(
        Some(admin),
        "POST",
        &format!("/v1/apps/{a}/users"),
        Some(r#"{"name": "alice"}"#),
    );
    assert_eq!(status, 200, "{u}");
    (a, id(&u))
}

fn mint(app: &TestApp, admin: &str, query: &str) -> String {
    let (status, body) = app.send_as(Some(admin), "POST", &format!("/v1/keys?{query}"), None);
    assert_eq!(status, 200, "{body}");
    body["key"].as_str().unwrap().to_string()
}

fn revoked() -> (u16, Value) {
    detail(401, "JWT revoked")
}

#[test]
fn keys_are_recorded_listed_and_revoked_by_id_or_by_their_text() {
    let app = TestApp::spawn_with_auth(SECRET);
    let keys = Keys::new(SECRET);
    let admin = keys.admin_key();
    let (a, _) = seed(&app, &admin);
    let users = format!("/v1/apps/{a}/users/list");
    let key = mint(&app, &admin, &format!("app_id={a}&label=mobile%20app"));
    assert_eq!(app.send_as(Some(&key), "POST", &users, None).0, 200);

    let (status, page) = app.get_as(&admin, &format!("/v1/keys?app_id={a}"));
    assert_eq!(status, 200);
    assert_eq!(page["total"], json!(1));
    let listed = &page["items"][0];
    let key_id = id(listed);
    assert_eq!(listed["app_id"], json!(a));
    assert_eq!(listed["user_id"], Value::Null);
    assert_eq!(listed["label"], json!("mobile app"));
    assert_eq!(listed["revoked_at"], Value::Null);
    assert!(listed["created_at"].is_string());
    // The key carries its id and issue time; the list never shows the key.
    let claims = keys.verify(&key).unwrap();
    assert_eq!(claims.jti.as_deref(), Some(key_id.as_str()));
    assert!(claims.iat.is_some());
    assert!(!page.to_string().contains(&key));
    let (_, other_app) = app.get_as(&admin, "/v1/keys?app_id=other");
    assert_eq!(other_app["total"], json!(0));

    // Revoked: refused at once by this process; revoking again changes nothing.
    let (status, first) = app.delete_as(&admin, &format!("/v1/keys/{key_id}"));
    assert_eq!(status, 200, "{first}");
    assert!(first["revoked_at"].is_string());
    assert_eq!(app.send_as(Some(&key), "POST", &users, None), revoked());
    let (status, again) = app.delete_as(&admin, &format!("/v1/keys/{key_id}"));
    assert_eq!((status, &again), (200, &first));
    assert_eq!(
        app.delete_as(&admin, "/v1/keys/no-such-key"),
        detail(404, "Key with ID 'no-such-key' not found")
    );

    // A key minted before keys were recorded (no id) is revoked by presenting it.
    let legacy = keys.mint(&Claims {
        t: "2025-01-01T00:00:00".into(),
        ap: Some(a.clone()),
        ..Claims::default()
    });
    let sibling = keys.mint(&Claims {
        t: "2025-01-02T00:00:00".into(),
        ap: Some(a.clone()),
        ..Claims::default()
    });
    assert_eq!(app.send_as(Some(&legacy), "POST", &users, None).0, 200);
    let body = json!({ "key": legacy }).to_string();
    let (status, first) = app.send_as(Some(&admin), "POST", "/v1/keys/revoke", Some(&body));
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["app_id"], json!(a));
    assert_eq!(first["created_at"], json!("2025-01-01T00:00:00Z"));
    assert_eq!(app.send_as(Some(&legacy), "POST", &users, None), revoked());
    assert_eq!(app.send_as(Some(&sibling), "POST", &users, None).0, 200);
    let (status, again) = app.send_as(Some(&admin), "POST", "/v1/keys/revoke", Some(&body));
    assert_eq!((status, &again), (200, &first));
    // A recorded key presented is revoked under its own id.
    let recorded = mint(&app, &admin, &format!("app_id={a}"));
    let body = json!({ "key": recorded }).to_string();
    let (_, record) = app.send_as(Some(&admin), "POST", "/v1/keys/revoke", Some(&body));
    assert_eq!(
        record["id"],
        json!(keys.verify(&recorded).unwrap().jti.unwrap())
    );
    assert_eq!(
        app.send_as(Some(&recorded), "POST", &users, None),
        revoked()
    );
    let (_, all) = app.get_as(&admin, "/v1/keys");
    assert_eq!(all["total"], json!(3));

    // What cannot be revoked, and what is not a key.
    let body = json!({ "key": admin }).to_string();
    assert_eq!(
        app.send_as(Some(&admin), "POST", "/v1/keys/revoke", Some(&body)),
        detail(
            422,
            "The admin key cannot be revoked; change AUTH_JWT_SECRET to replace it"
        )
    );
    let body = json!({ "key": Keys::new("another secret").mint(&Claims { ap: Some(a.clone()), ..Claims::default() }) }).to_string();
    assert_eq!(
        app.send_as(Some(&admin), "POST", "/v1/keys/revoke", Some(&body))
            .0,
        422
    );
    let (status, body) = app.send_as(
        Some(&admin),
        "POST",
        &format!("/v1/keys?app_id={a}&label="),
        None,
    );
    assert_eq!(
        (status, body["detail"][0]["loc"].clone()),
        (422, json!(["query", "label"]))
    );
}

#[test]
fn with_auth_off_the_key_routes_are_disabled() {
    let app = TestApp::spawn();
    let disabled = detail(405, "Feature is disabled");
    assert_eq!(app.get("/v1/keys"), disabled);
    assert_eq!(app.delete("/v1/keys/x"), disabled);
    assert_eq!(
        app.post("/v1/keys/revoke", json!({ "key": "x.y.z" })),
        disabled
    );
}

/// Polls `server` with `key` until it answers "JWT revoked"; the time it took.
fn refused_within(limit: Duration, what: &str, mut ask: impl FnMut() -> (u16, Value)) -> Duration {
    let started = Instant::now();
    loop {
        let answer = ask();
        if answer == revoked() {
            return started.elapsed();
        }
        assert_eq!(answer.0, 200, "{what}: {answer:?}");
        assert!(
            started.elapsed() < limit,
            "{what}: the revoked key still works after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_revoked_key_is_refused_by_every_process_within_five_seconds() {
    let app = TestApp::spawn_with_auth(SECRET);
    let admin = Keys::new(SECRET).admin_key();
    let (a, u) = seed(&app, &admin);
    let other = Honcho::start_with(
        app.database_url(),
        &[("USE_AUTH", "true"), ("AUTH_JWT_SECRET", SECRET)],
    );
    let sessions = format!("/v1/apps/{a}/users/{u}/sessions/list");
    let by_api = mint(&app, &admin, &format!("app_id={a}&user_id={u}"));
    let by_cli = mint(&app, &admin, &format!("app_id={a}&user_id={u}"));
    for key in [&by_api, &by_cli] {
        assert_eq!(app.send_as(Some(key), "POST", &sessions, None).0, 200);
        assert_eq!(other.send_as(key, "POST", &sessions).0, 200);
    }
    let limit = Duration::from_secs(5);

    // Revoked through one server: that one refuses at once, the other within the limit.
    let jti = |key: &str| Keys::new(SECRET).verify(key).unwrap().jti.unwrap();
    let (status, _) = app.send_as(
        Some(&admin),
        "DELETE",
        &format!("/v1/keys/{}", jti(&by_api)),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        app.send_as(Some(&by_api), "POST", &sessions, None),
        revoked()
    );
    let waited = refused_within(limit, "the other server", || {
        other.send_as(&by_api, "POST", &sessions)
    });
    eprintln!("revoked through the API: the other server refused the key after {waited:?}");

    // Revoked from the command line (a third process): both servers refuse within the limit.
    let out = honcho(
        &["keys", "revoke", &jti(&by_cli)],
        &[("DATABASE_URL", app.database_url())],
    );
    succeeded(&out);
    let first = refused_within(limit, "the in-process server", || {
        app.send_as(Some(&by_cli), "POST", &sessions, None)
    });
    let second = refused_within(limit, "the spawned server", || {
        other.send_as(&by_cli, "POST", &sessions)
    });
    eprintln!("revoked from the command line: refused after {first:?} and {second:?}");
}

#[test]
fn the_command_line_checks_records_lists_and_revokes_keys() {
    let app = TestApp::spawn_with_auth(SECRET);
    let admin = Keys::new(SECRET).admin_key();
    let (a, u) = seed(&app, &admin);
    let env = [
        ("AUTH_JWT_SECRET", SECRET),
        ("DATABASE_URL", app.database_url()),
    ];
    let run = |args: &[&str]| {
        let out = honcho(args, &env);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )
    };
    // Every id given is checked, alone or together.
    assert_eq!(
        run(&["keys", "create", "--user-id", "nope"]),
        (
            false,
            String::new(),
            "honcho: --user-id: no user with ID 'nope'".into()
        )
    );
    let (other_app, _) = {
        let (_, b) = app.send_as(Some(&admin), "POST", "/v1/apps", Some(r#"{"name": "b"}"#));
        (id(&b), ())
    };
    assert_eq!(
        run(&["keys", "create", "--app-id", &other_app, "--user-id", &u]),
        (
            false,
            String::new(),
            format!("honcho: --user-id: no user with ID '{u}'")
        )
    );
    let (ok, key, stderr) = run(&["keys", "create", "--user-id", &u]);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let (ok, labelled, stderr) = run(&[
        "keys",
        "create",
        "--app-id",
        &a,
        "--user-id",
        &u,
        "--label",
        "support laptop",
    ]);
    assert!(ok, "{stderr}");
    let sessions = format!("/v1/apps/{a}/users/{u}/sessions/list");
    assert_eq!(app.send_as(Some(&labelled), "POST", &sessions, None).0, 200);

    let (ok, listing, _) = run(&["keys", "list", "--app-id", &a]);
    assert!(ok);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 2, "{listing}");
    assert!(lines[0].starts_with("id\tapp_id\tuser_id"));
    assert!(lines[1].contains("support laptop"), "{listing}");
    assert!(!listing.contains(&labelled));
    let key_id = lines[1].split('\t').next().unwrap().to_string();
    let (ok, all, _) = run(&["keys", "list"]);
    assert!(ok);
    assert_eq!(all.lines().count(), 3, "{all}");

    let (ok, said, stderr) = run(&["keys", "revoke", &key_id]);
    assert!(ok, "{stderr}");
    assert!(said.starts_with(&format!("revoked key {key_id}")), "{said}");
    let (ok, _, stderr) = run(&["keys", "revoke", "0f1e2d3c-0000-4000-8000-000000000000"]);
    assert!(!ok);
    assert_eq!(
        stderr,
        "honcho: Key with ID '0f1e2d3c-0000-4000-8000-000000000000' not found"
    );
    let (ok, _, stderr) = run(&["keys", "revoke", &key]);
    assert!(ok, "{stderr}");
    let (ok, listing, _) = run(&["keys", "list"]);
    assert!(ok);
    assert_eq!(
        listing
            .lines()
            .skip(1)
            .filter(|l| l.ends_with("\t-"))
            .count(),
        0,
        "every key is revoked: {listing}"
    );
    let (ok, help, _) = run(&["keys", "create", "--help"]);
    assert!(ok);
    assert!(help.contains("--app-id A --user-id U"), "{help}");
}
