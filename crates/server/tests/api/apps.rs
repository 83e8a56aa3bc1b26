use crate::helpers::{assert_empty_page, assert_redacted_snapshot, detail, id, TestApp};
use serde_json::json;

#[test]
fn create_then_fetch_by_id_and_name() {
    let app = TestApp::spawn();
    let created = app.ok(app.post(
        "/v1/apps",
        json!({ "name": "demo", "metadata": { "tier": "gold" } }),
    ));
    assert_redacted_snapshot!(created);
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
        detail(404, "App with ID nope not found")
    );
    assert_eq!(
        app.get("/v1/apps/name/nope"),
        detail(404, "App with name 'nope' not found")
    );
    assert_eq!(
        app.put("/v1/apps/nope", json!({ "name": "x" })),
        detail(404, "App with ID nope not found")
    );
}

#[test]
fn get_without_an_app_id_is_401() {
    let app = TestApp::spawn();
    assert_eq!(
        app.get("/v1/apps"),
        detail(401, "App ID not found in query parameter or JWT")
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
        detail(409, "App update failed - unique constraint violation")
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
    assert_redacted_snapshot!(page);

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
    assert_empty_page(&none);
}

#[test]
fn metadata_numbers_round_trip_exactly_and_filter_by_value() {
    let app = TestApp::spawn();
    let sent = r#"{"name": "numbers", "metadata": {"big": 1267650600228229401496703205376,
        "neg": -9223372036854775809, "f": 0.1, "e": 1e3, "s": 1.50, "tiny": 25e-3}}"#;
    let (status, created) = app.post_raw("/v1/apps", sent);
    assert_eq!(status, 200, "{created}");
    // As PostgreSQL's jsonb keeps them: exact digits, no exponent, the literal's scale.
    let want: serde_json::Value = serde_json::from_str(
        r#"{"big": 1267650600228229401496703205376, "neg": -9223372036854775809, "f": 0.1,
            "e": 1000, "s": 1.50, "tiny": 0.025}"#,
    )
    .unwrap();
    assert_eq!(created["metadata"], want);
    let fetched = app.ok(app.get(&format!("/v1/apps?app_id={}", id(&created))));
    assert_eq!(fetched["metadata"].to_string(), want.to_string());
    let count = |filter: &str| {
        let body = format!(r#"{{"filter": {filter}}}"#);
        app.ok(app.post_raw("/v1/apps/list", &body))["total"].clone()
    };
    assert_eq!(
        count(r#"{"big": 1267650600228229401496703205376}"#),
        json!(1)
    );
    assert_eq!(
        count(r#"{"big": 1267650600228229401496703205377}"#),
        json!(0)
    );
    assert_eq!(count(r#"{"e": 1000.0, "s": 15e-1}"#), json!(1));
    let (status, body) = app.post_raw(
        "/v1/apps",
        r#"{"name": "huge", "metadata": {"n": 1e100000}}"#,
    );
    assert_eq!(status, 422, "{body}");
}
