use crate::helpers::{id, redact, TestApp};
use serde_json::json;

#[test]
fn create_then_fetch_by_id_and_name() {
    let app = TestApp::spawn();
    let created = app.ok(app.post(
        "/v1/apps",
        json!({ "name": "demo", "metadata": { "tier": "gold" } }),
    ));
    insta::assert_json_snapshot!(redact(&created));
    let app_id = id(&created);
    assert_eq!(
        app.ok(app.get(&format!("/v1/apps?app_id={app_id}"))),
        created
    );
    assert_eq!(app.ok(app.get("/v1/apps/name/demo")), created);
}

#[test]
fn metadata_defaults_to_an_empty_object() {
    let app = TestApp::spawn();
    let created = app.ok(app.post("/v1/apps", json!({ "name": "plain" })));
    assert_eq!(created["metadata"], json!({}));
}

#[test]
fn duplicate_name_is_a_conflict() {
    let app = TestApp::spawn();
    app.create_app("demo");
    let (status, body) = app.post("/v1/apps", json!({ "name": "demo" }));
    assert_eq!(status, 409);
    assert_eq!(
        body,
        json!({ "detail": "App with name 'demo' already exists" })
    );
}

#[test]
fn unknown_apps_are_404() {
    let app = TestApp::spawn();
    assert_eq!(
        app.get("/v1/apps?app_id=nope"),
        (404, json!({ "detail": "App with ID nope not found" }))
    );
    assert_eq!(
        app.get("/v1/apps/name/nope"),
        (404, json!({ "detail": "App with name 'nope' not found" }))
    );
    assert_eq!(
        app.put("/v1/apps/nope", json!({ "name": "x" })),
        (404, json!({ "detail": "App with ID nope not found" }))
    );
}

#[test]
fn get_without_an_app_id_is_401() {
    let app = TestApp::spawn();
    assert_eq!(
        app.get("/v1/apps"),
        (
            401,
            json!({ "detail": "App ID not found in query parameter or JWT" })
        )
    );
}

#[test]
fn get_or_create_returns_the_same_app() {
    let app = TestApp::spawn();
    let first = app.ok(app.get("/v1/apps/get_or_create/shared"));
    let second = app.ok(app.get("/v1/apps/get_or_create/shared"));
    assert_eq!(first, second);
    assert_eq!(first["name"], "shared");
}

#[test]
fn concurrent_get_or_create_agree() {
    let app = TestApp::spawn();
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| s.spawn(|| id(&app.ok(app.get("/v1/apps/get_or_create/raced")))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(ids.iter().all(|i| i == &ids[0]), "different apps: {ids:?}");
    let page = app.ok(app.post_empty("/v1/apps/list"));
    assert_eq!(page["total"], 1);
}

#[test]
fn get_or_create_checks_the_name() {
    let app = TestApp::spawn();
    let long = "x".repeat(101);
    let (status, body) = app.get(&format!("/v1/apps/get_or_create/{long}"));
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["type"], "string_too_long");
    assert_eq!(body["detail"][0]["loc"], json!(["path", "name"]));
}

#[test]
fn update_replaces_name_and_metadata() {
    let app = TestApp::spawn();
    let app_id = app.create_app("before");
    let updated = app.ok(app.put(
        &format!("/v1/apps/{app_id}"),
        json!({ "name": "after", "metadata": { "a": 1 } }),
    ));
    assert_eq!(
        (updated["name"].clone(), updated["metadata"].clone()),
        (json!("after"), json!({ "a": 1 }))
    );
    // Metadata is replaced wholesale; a missing field leaves the value as it was.
    let updated = app.ok(app.put(
        &format!("/v1/apps/{app_id}"),
        json!({ "metadata": { "b": 2 } }),
    ));
    assert_eq!(
        (updated["name"].clone(), updated["metadata"].clone()),
        (json!("after"), json!({ "b": 2 }))
    );
    let unchanged = app.ok(app.put(&format!("/v1/apps/{app_id}"), json!({})));
    assert_eq!(unchanged, updated);
}

#[test]
fn update_to_a_taken_name_is_a_conflict() {
    let app = TestApp::spawn();
    app.create_app("taken");
    let other = app.create_app("other");
    assert_eq!(
        app.put(&format!("/v1/apps/{other}"), json!({ "name": "taken" })),
        (
            409,
            json!({ "detail": "App update failed - unique constraint violation" })
        )
    );
}

#[test]
fn update_refuses_over_long_names() {
    let app = TestApp::spawn();
    let app_id = app.create_app("short");
    let (status, body) = app.put(
        &format!("/v1/apps/{app_id}"),
        json!({ "name": "n".repeat(101) }),
    );
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "name"]));
}

#[test]
fn list_pages_filters_and_reverses() {
    let app = TestApp::spawn();
    for i in 0..5 {
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        app.ok(app.post(
            "/v1/apps",
            json!({ "name": format!("app-{i}"), "metadata": { "tier": tier, "i": i } }),
        ));
    }
    let page = app.ok(app.post("/v1/apps/list?size=2&page=2", json!({})));
    insta::assert_json_snapshot!(redact(&page));

    let names = |v: &serde_json::Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_string())
            .collect()
    };
    let evens = app.ok(app.post("/v1/apps/list", json!({ "filter": { "tier": "even" } })));
    assert_eq!(names(&evens), ["app-0", "app-2", "app-4"]);
    assert_eq!(evens["total"], 3);
    let reversed = app.ok(app.post(
        "/v1/apps/list?reverse=true",
        json!({ "filter": { "tier": "even" } }),
    ));
    assert_eq!(names(&reversed), ["app-4", "app-2", "app-0"]);
    let past_end = app.ok(app.post("/v1/apps/list?page=9", json!(null)));
    assert_eq!(
        (
            past_end["items"].clone(),
            past_end["total"].clone(),
            past_end["pages"].clone()
        ),
        (json!([]), json!(5), json!(1))
    );
    let none = app.ok(app.post("/v1/apps/list", json!({ "filter": { "tier": "none" } })));
    assert_eq!(
        (none["total"].clone(), none["pages"].clone()),
        (json!(0), json!(0))
    );
}
