use crate::helpers::{assert_redacted_snapshot, detail, id, TestApp};
use serde_json::json;

#[test]
fn create_then_fetch() {
    let app = TestApp::spawn();
    let app_id = app.create_app("app");
    let user = app.ok(app.post(
        &format!("/v1/apps/{app_id}/users"),
        json!({ "name": "alice", "metadata": { "lang": "en" } }),
    ));
    assert_redacted_snapshot!(user);
    assert_eq!(user["app_id"], app_id.as_str());
    let user_id = id(&user);
    assert_eq!(
        app.ok(app.get(&format!("/v1/apps/{app_id}/users?user_id={user_id}"))),
        user
    );
    assert_eq!(
        app.ok(app.get(&format!("/v1/apps/{app_id}/users/name/alice"))),
        user
    );
}

#[test]
fn names_are_unique_per_app_only() {
    let app = TestApp::spawn();
    let a = app.create_app("a");
    let b = app.create_app("b");
    app.create_user(&a, "alice");
    app.create_user(&b, "alice");
    assert_eq!(
        app.post(&format!("/v1/apps/{a}/users"), json!({ "name": "alice" })),
        detail(409, "User with this name already exists")
    );
}

#[test]
fn unknown_app_or_user_is_404() {
    let app = TestApp::spawn();
    assert_eq!(
        app.post("/v1/apps/nope/users", json!({ "name": "alice" })),
        detail(404, "App with ID nope not found")
    );
    assert_eq!(
        app.get("/v1/apps/nope/users/get_or_create/alice"),
        detail(404, "App with ID nope not found")
    );
    let app_id = app.create_app("app");
    assert_eq!(
        app.get(&format!("/v1/apps/{app_id}/users?user_id=ghost")),
        detail(404, "User with ID 'ghost' not found")
    );
    assert_eq!(
        app.get(&format!("/v1/apps/{app_id}/users/name/ghost")),
        detail(404, "User with name 'ghost' not found")
    );
    assert_eq!(
        app.put(
            &format!("/v1/apps/{app_id}/users/ghost"),
            json!({ "metadata": {} })
        ),
        detail(404, "User with ID 'ghost' not found")
    );
    assert_eq!(
        app.get(&format!("/v1/apps/{app_id}/users")),
        detail(401, "User ID not found in query parameter or JWT")
    );
}

#[test]
fn a_user_is_not_reachable_through_another_app() {
    let app = TestApp::spawn();
    let a = app.create_app("a");
    let b = app.create_app("b");
    let user = app.create_user(&a, "alice");
    assert_eq!(
        app.get(&format!("/v1/apps/{b}/users?user_id={user}")).0,
        404
    );
    assert_eq!(
        app.put(
            &format!("/v1/apps/{b}/users/{user}"),
            json!({ "name": "mallory" })
        )
        .0,
        404
    );
    assert_eq!(
        app.post(&format!("/v1/apps/{b}/users/{user}/sessions"), json!({}))
            .0,
        404
    );
}

#[test]
fn get_or_create_is_idempotent_and_concurrent_safe() {
    let app = TestApp::spawn();
    let app_id = app.create_app("app");
    let path = format!("/v1/apps/{app_id}/users/get_or_create/bob");
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|_| s.spawn(|| id(&app.ok(app.get(&path)))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(ids.iter().all(|i| i == &ids[0]), "different users: {ids:?}");
}

#[test]
fn update_and_conflicts() {
    let app = TestApp::spawn();
    let app_id = app.create_app("app");
    app.create_user(&app_id, "taken");
    let user = app.create_user(&app_id, "alice");
    let updated = app.ok(app.put(
        &format!("/v1/apps/{app_id}/users/{user}"),
        json!({ "name": "alicia", "metadata": { "x": true } }),
    ));
    assert_eq!(
        (updated["name"].clone(), updated["metadata"].clone()),
        (json!("alicia"), json!({ "x": true }))
    );
    assert_eq!(
        app.put(
            &format!("/v1/apps/{app_id}/users/{user}"),
            json!({ "name": "taken" })
        ),
        detail(409, "User update failed - unique constraint violation")
    );
}

#[test]
fn list_is_scoped_to_the_app() {
    let app = TestApp::spawn();
    let a = app.create_app("a");
    let b = app.create_app("b");
    for name in ["u1", "u2", "u3"] {
        app.create_user(&a, name);
    }
    app.create_user(&b, "other");
    let page = app.ok(app.post(
        &format!("/v1/apps/{a}/users/list?reverse=true&size=2"),
        json!({}),
    ));
    assert_redacted_snapshot!(page);
    // Lists never check that the parent exists.
    let empty = app.ok(app.post_empty("/v1/apps/nope/users/list"));
    assert_eq!(
        (empty["items"].clone(), empty["total"].clone()),
        (json!([]), json!(0))
    );
}
