//! Hostile and malformed input: always a precise 4xx, never a 500, nothing stored.

use crate::helpers::{detail, TestApp};
use serde_json::json;

#[test]
fn malformed_json_is_json_invalid() {
    let app = TestApp::spawn();
    let (status, body) = app.post_raw("/v1/apps", "{\"name\": ");
    assert_eq!(status, 422);
    insta::assert_json_snapshot!(crate::helpers::plain(&body));
}

#[test]
fn wrong_types_and_missing_fields() {
    let app = TestApp::spawn();
    let (status, body) = app.post("/v1/apps", json!({ "name": 5 }));
    assert_eq!(status, 422);
    insta::assert_json_snapshot!("name_not_a_string", crate::helpers::plain(&body));
    let (_, body) = app.post("/v1/apps", json!({ "metadata": {} }));
    insta::assert_json_snapshot!("name_missing", crate::helpers::plain(&body));
    let (_, body) = app.post("/v1/apps", json!({ "name": "a", "metadata": [1] }));
    insta::assert_json_snapshot!("metadata_not_an_object", crate::helpers::plain(&body));
    let (_, body) = app.post("/v1/apps", json!(["not", "an", "object"]));
    insta::assert_json_snapshot!("body_not_an_object", crate::helpers::plain(&body));
    let (_, body) = app.post_empty("/v1/apps");
    insta::assert_json_snapshot!("body_missing", crate::helpers::plain(&body));
}

#[test]
fn names_outside_limits() {
    let app = TestApp::spawn();
    let (status, body) = app.post("/v1/apps", json!({ "name": "" }));
    assert_eq!(status, 422);
    insta::assert_json_snapshot!("name_empty", crate::helpers::plain(&body));
    let (status, body) = app.post("/v1/apps", json!({ "name": "n".repeat(101) }));
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["type"], "string_too_long");
    assert_eq!(body["detail"][0]["ctx"], json!({ "max_length": 100 }));
    // 100 characters of two bytes each are within the limit.
    app.ok(app.post("/v1/apps", json!({ "name": "é".repeat(100) })));
}

#[test]
fn nul_characters_are_refused_everywhere() {
    let app = TestApp::spawn();
    let (status, body) = app.post("/v1/apps", json!({ "name": "a\u{0}b" }));
    assert_eq!(
        (status, body["detail"][0]["loc"].clone()),
        (422, json!(["body", "name"]))
    );
    let (status, body) = app.post(
        "/v1/apps",
        json!({ "name": "ok", "metadata": { "k\u{0}": 1 } }),
    );
    assert_eq!(
        (status, body["detail"][0]["loc"].clone()),
        (422, json!(["body", "metadata"]))
    );
    let s = app.session_path();
    let (status, _) = app.post(
        &s.messages(),
        json!({ "content": "nul \u{0}", "is_user": true }),
    );
    assert_eq!(status, 422);
    let (status, body) = app.post(
        &format!("{}/list", s.messages()),
        json!({ "filter": { "k": "\u{0}" } }),
    );
    assert_eq!(
        (status, body["detail"][0]["loc"].clone()),
        (422, json!(["body", "filter"]))
    );
    let page = app.ok(app.post_empty("/v1/apps/list"));
    assert_eq!(page["total"], 1, "only the session's app was stored");
}

#[test]
fn pagination_limits() {
    let app = TestApp::spawn();
    for (query, loc, kind) in [
        ("page=0", "page", "greater_than_equal"),
        ("size=0", "size", "greater_than_equal"),
        ("size=101", "size", "less_than_equal"),
        ("page=abc", "page", "int_parsing"),
        ("reverse=sometimes", "reverse", "bool_parsing"),
    ] {
        let (status, body) = app.post_empty(&format!("/v1/apps/list?{query}"));
        assert_eq!(status, 422, "{query}");
        assert_eq!(body["detail"][0]["loc"], json!(["query", loc]), "{query}");
        assert_eq!(body["detail"][0]["type"], kind, "{query}");
    }
    let (_, body) = app.post_empty("/v1/apps/list?size=101");
    insta::assert_json_snapshot!("size_over_100", crate::helpers::plain(&body));
    let huge = app.ok(app.post_empty("/v1/apps/list?page=9223372036854775807&size=100"));
    assert_eq!(huge["items"], json!([]));
    let huger = app.ok(app.post_empty("/v1/apps/list?page=99999999999999999999999"));
    assert_eq!(huger["items"], json!([]));
}

#[test]
fn odd_path_segments_are_just_unknown_ids() {
    let app = TestApp::spawn();
    for segment in [
        "%27%20OR%201%3D1--",
        "%22",
        "%25",
        "%E2%9C%93",
        "..%2F..",
        "a%00b",
    ] {
        let (status, _) = app.get(&format!("/v1/apps?app_id={segment}"));
        assert!(status == 404 || status == 422, "{segment}: {status}");
        let (status, body) = app.get(&format!("/v1/apps/name/{segment}"));
        assert_eq!(status, 404, "{segment}: {body}");
        let (status, _) = app.post(
            &format!("/v1/apps/{segment}/users/{segment}/sessions/{segment}/messages"),
            json!({ "content": "x", "is_user": true }),
        );
        assert_eq!(status, 404, "{segment}");
    }
}

#[test]
fn oversized_body_is_413() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let huge = "x".repeat(honcho_web::BODY_LIMIT + 1);
    let (status, _) = app.post_raw(&s.messages(), &huge);
    assert_eq!(status, 413);
}

#[test]
fn unknown_routes_answer_like_fastapi() {
    let app = TestApp::spawn();
    assert_eq!(app.get("/v1/nothing"), detail(404, "Not Found"));
}

#[test]
fn a_known_path_with_another_method_is_405_with_allow() {
    let app = TestApp::spawn();
    for (method, path, allow) in [
        ("DELETE", "/v1/apps/list", "POST, PUT"),
        ("PUT", "/v1/keys", "GET, POST"),
        ("PATCH", "/v1/apps", "GET, POST"),
        (
            "DELETE",
            "/v1/apps/A/users/U/sessions/S/messages/batch",
            "GET, POST, PUT",
        ),
        ("DELETE", "/v1/apps/A/users/U/metamessages/M", "GET, PUT"),
    ] {
        let res = match ureq::request(method, &format!("{}{path}", app.base)).call() {
            Err(ureq::Error::Status(_, res)) => res,
            other => panic!("{method} {path}: {other:?}"),
        };
        assert_eq!(res.status(), 405, "{method} {path}");
        assert_eq!(res.header("allow"), Some(allow), "{method} {path}");
        let body: serde_json::Value = res.into_json().unwrap();
        assert_eq!(body, json!({ "detail": "Method Not Allowed" }));
    }
    assert_eq!(
        app.delete("/v1/apps/A/users/U/nothing"),
        detail(404, "Not Found")
    );
}

/// The `(type, loc)` of every problem a 422 lists.
fn problems(body: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("not a validation list: {body}"))
        .iter()
        .map(|i| (i["type"].as_str().unwrap().to_string(), i["loc"].clone()))
        .collect()
}

#[test]
fn every_problem_of_a_body_is_listed_in_field_order() {
    let app = TestApp::spawn();
    let (status, body) = app.post("/v1/apps", json!({ "metadata": [1] }));
    assert_eq!(status, 422);
    assert_eq!(
        problems(&body),
        [
            ("missing".into(), json!(["body", "name"])),
            ("dict_type".into(), json!(["body", "metadata"])),
        ]
    );
    assert_eq!(body["detail"][0]["input"], json!({ "metadata": [1] }));
    let s = app.session_path();
    let (status, body) = app.post(
        &format!("{}/batch", s.messages()),
        json!({ "messages": [
            { "content": 5, "is_user": "x", "metadata": {} },
            { "is_user": true },
            "not a message",
        ] }),
    );
    assert_eq!(status, 422);
    assert_eq!(
        problems(&body),
        [
            (
                "string_type".into(),
                json!(["body", "messages", 0, "content"])
            ),
            (
                "bool_parsing".into(),
                json!(["body", "messages", 0, "is_user"])
            ),
            ("missing".into(), json!(["body", "messages", 1, "content"])),
            (
                "model_attributes_type".into(),
                json!(["body", "messages", 2])
            ),
        ]
    );
    // Nothing of a refused batch is stored.
    let page = app.ok(app.post(&format!("{}/list", s.messages()), json!({})));
    assert_eq!(page["total"], 0);
}

/// A 422 never echoes more than the first 256 characters of what it refuses, whatever the error.
#[test]
fn a_refused_input_is_echoed_cut_to_256_characters() {
    let app = TestApp::spawn();
    let note = "... (cut: only the first 256 characters are shown)";
    // Malformed JSON of a megabyte of control characters.
    let junk = "\u{1}".repeat(1 << 20);
    let (status, body) = app.post_raw("/v1/apps", &junk);
    assert_eq!(status, 422);
    let text = body.to_string();
    assert!(text.len() < 4096, "{} bytes of answer", text.len());
    let input = body["detail"][0]["input"].as_str().unwrap();
    assert!(input.ends_with(note), "{input}");
    assert_eq!(input.chars().count(), 256 + note.chars().count());
    // A top-level array, a too-long name, a wrongly typed huge value.
    let big_array = serde_json::Value::Array(vec![json!(12345); 1_000]);
    for body in [
        big_array.clone(),
        json!({ "name": "n".repeat(100_000) }),
        json!({ "name": big_array }),
    ] {
        let (status, answer) = app.post("/v1/apps", body);
        assert_eq!(status, 422);
        let input = answer["detail"][0]["input"].as_str().unwrap_or_default();
        assert!(input.ends_with(note), "{answer}");
        assert!(answer.to_string().len() < 4096);
    }
    // Small inputs are echoed whole, as FastAPI does.
    let (_, answer) = app.post("/v1/apps", json!({ "name": 5 }));
    assert_eq!(answer["detail"][0]["input"], json!(5));
}
