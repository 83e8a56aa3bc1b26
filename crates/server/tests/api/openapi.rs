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

/// Limits the document states with literals (fields whose schema keeps its doc comment) are the
/// domain's: the document and the parsing cannot disagree.
#[test]
fn the_documented_limits_are_the_domains() {
    use honcho_domain::{context, page, queue, retrieval};
    let doc: serde_json::Value = serde_json::from_str(&honcho_web::api_json()).unwrap();
    let schema =
        |name: &str, field: &str| doc["components"]["schemas"][name]["properties"][field].clone();
    for body in ["MessageSearch", "UserMessageSearch"] {
        assert_eq!(
            schema(body, "query")["maxLength"],
            honcho_domain::values::MESSAGE_QUERY_MAX
        );
        assert_eq!(
            schema(body, "top_k")["maximum"],
            retrieval::MESSAGE_TOP_K_MAX
        );
        assert_eq!(
            schema(body, "top_k")["default"],
            retrieval::MESSAGE_TOP_K_DEFAULT
        );
    }
    assert_eq!(
        schema("UserMessageSearch", "session_ids")["maxItems"],
        retrieval::SESSION_IDS_MAX
    );
    assert_eq!(
        schema("DeriverRetry", "message_ids")["maxItems"],
        queue::RETRY_IDS_MAX
    );
    // Every paginated operation's `size`, and the context's `tokens`.
    let mut sizes = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for op in item.as_object().unwrap().values() {
            for param in op["parameters"].as_array().into_iter().flatten() {
                let s = &param["schema"];
                match param["name"].as_str() {
                    Some("size") => {
                        sizes += 1;
                        assert_eq!(s["maximum"], page::SIZE_MAX, "{path}");
                        assert_eq!(s["default"], page::SIZE_DEFAULT, "{path}");
                    }
                    Some("tokens") => {
                        assert_eq!(s["maximum"], context::TOKENS_MAX, "{path}");
                        assert_eq!(s["default"], context::TOKENS_DEFAULT, "{path}");
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(sizes >= 8, "{sizes} paginated operations");
}
