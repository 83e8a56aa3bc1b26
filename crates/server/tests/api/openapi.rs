//! The served document, the committed `openapi.yaml` and the docs page agree.

use crate::helpers::TestApp;

#[test]
fn committed_openapi_yaml_matches_the_code() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.yaml"))
            .expect("openapi.yaml is committed at the workspace root");
    assert!(
        committed == honcho_web::api_yaml(),
        "openapi.yaml is out of date: run `cargo xtask openapi` and commit the result"
    );
}

#[test]
fn openapi_json_is_served_and_snapshotted() {
    let app = TestApp::spawn();
    let served = app.ok(app.get("/openapi.json"));
    let from_code: serde_json::Value = serde_json::from_str(&honcho_web::api_json()).unwrap();
    assert_eq!(served, from_code);
    insta::assert_json_snapshot!(crate::helpers::plain(&served));
}

#[test]
fn docs_page_is_served_offline() {
    let app = TestApp::spawn();
    let (status, body) = app.get("/docs/");
    assert_eq!(status, 200);
    let html = body.as_str().unwrap();
    assert!(html.contains("swagger-ui"), "not the Swagger UI page");
    assert!(
        !html.contains("https://"),
        "the docs page must not load scripts from the network"
    );
    let (status, _) = app.get("/docs/swagger-ui-bundle.js");
    assert_eq!(status, 200);
    assert_eq!(
        app.get("/health"),
        (200, serde_json::json!({ "status": "ok" }))
    );
}
