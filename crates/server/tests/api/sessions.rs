use crate::helpers::{assert_redacted_snapshot, detail, id, TestApp};
use serde_json::{json, Value};

#[test]
fn create_get_update_delete() {
    let app = TestApp::spawn();
    let app_id = app.create_app("app");
    let user = app.create_user(&app_id, "alice");
    let base = format!("/v1/apps/{app_id}/users/{user}/sessions");
    let session = app.ok(app.post(&base, json!({ "metadata": { "topic": "travel" } })));
    assert_redacted_snapshot!(session);
    let sid = id(&session);
    assert_eq!(
        app.ok(app.get(&format!("{base}?session_id={sid}"))),
        session
    );

    let updated = app.ok(app.put(
        &format!("{base}/{sid}"),
        json!({ "metadata": { "topic": "food" } }),
    ));
    assert_eq!(updated["metadata"], json!({ "topic": "food" }));

    assert_eq!(
        app.delete(&format!("{base}/{sid}")),
        (200, json!({ "message": "Session deleted successfully" }))
    );
    let after = app.ok(app.get(&format!("{base}?session_id={sid}")));
    assert_eq!(after["is_active"], false);
}

#[test]
fn messages_stay_readable_and_appendable_after_delete() {
    let app = TestApp::spawn();
    let s = app.session_path();
    app.ok(app.post(
        &s.messages(),
        json!({ "content": "before", "is_user": true }),
    ));
    app.ok(app.delete(&s.session_path()));
    app.ok(app.post(
        &s.messages(),
        json!({ "content": "after", "is_user": false }),
    ));
    let page = app.ok(app.post_empty(&format!("{}/list", s.messages())));
    assert_eq!(page["total"], 2);
}

#[test]
fn unknown_or_foreign_sessions_are_404() {
    let app = TestApp::spawn();
    let app_id = app.create_app("app");
    let alice = app.create_user(&app_id, "alice");
    let bob = app.create_user(&app_id, "bob");
    let sid = app.create_session(&app_id, &alice);
    let s404 = json!({ "detail": "Session not found or does not belong to user" });
    let bobs = format!("/v1/apps/{app_id}/users/{bob}/sessions");
    assert_eq!(
        app.get(&format!("{bobs}?session_id={sid}")),
        (404, s404.clone())
    );
    assert_eq!(
        app.put(&format!("{bobs}/{sid}"), json!({ "metadata": {} })),
        (404, s404.clone())
    );
    assert_eq!(app.delete(&format!("{bobs}/{sid}")), (404, s404.clone()));
    assert_eq!(
        app.post(
            &format!("{bobs}/{sid}/messages"),
            json!({ "content": "x", "is_user": true })
        ),
        (404, s404.clone())
    );
    assert_eq!(
        app.post(
            &format!("/v1/apps/{app_id}/users/ghost/sessions"),
            json!({})
        ),
        detail(404, "User with ID 'ghost' not found")
    );
    assert_eq!(
        app.get(&bobs),
        detail(401, "Session ID not found in query parameter or JWT")
    );
}

#[test]
fn update_requires_metadata() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let (status, body) = app.put(&s.session_path(), json!({}));
    assert_eq!(status, 422);
    insta::assert_json_snapshot!(crate::helpers::plain(&body));
}

#[test]
fn list_filters_by_activity_and_metadata() {
    let app = TestApp::spawn();
    let app_id = app.create_app("app");
    let user = app.create_user(&app_id, "alice");
    let base = format!("/v1/apps/{app_id}/users/{user}/sessions");
    let mut ids = Vec::new();
    for i in 0..4 {
        let s = app.ok(app.post(
            &base,
            json!({ "metadata": { "n": i, "tags": ["a", format!("t{i}")] } }),
        ));
        ids.push(id(&s));
    }
    app.ok(app.delete(&format!("{base}/{}", ids[1])));
    let list = |body: Value, query: &str| -> Vec<String> {
        let page = app.ok(app.post(&format!("{base}/list{query}"), body));
        page["items"].as_array().unwrap().iter().map(id).collect()
    };
    assert_eq!(list(json!({}), ""), ids);
    assert_eq!(list(json!({ "is_active": false }), ""), ids);
    assert_eq!(
        list(json!({ "is_active": true }), ""),
        [ids[0].clone(), ids[2].clone(), ids[3].clone()]
    );
    assert_eq!(
        list(json!({ "filter": { "tags": ["t2"] } }), ""),
        [ids[2].clone()]
    );
    assert_eq!(
        list(
            json!({ "filter": { "tags": ["a"] }, "is_active": true }),
            "?reverse=true"
        ),
        [ids[3].clone(), ids[2].clone(), ids[0].clone()]
    );
    assert_eq!(list(json!({ "filter": { "n": 3 } }), ""), [ids[3].clone()]);
}

fn contents(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn clone_copies_messages_up_to_the_cut_off() {
    let app = TestApp::spawn();
    let s = app.session_path();
    app.ok(app.put(&s.session_path(), json!({ "metadata": { "origin": true } })));
    let batch = app.ok(app.post(
        &format!("{}/batch", s.messages()),
        json!({ "messages": [
            { "content": "one", "is_user": true },
            { "content": "two", "is_user": false, "metadata": { "k": "v" } },
            { "content": "three", "is_user": true }
        ]}),
    ));
    let second = id(&batch[1]);

    let full = app.ok(app.get(&format!("{}/clone", s.session_path())));
    assert_ne!(id(&full), s.session);
    assert_eq!(
        (full["is_active"].clone(), full["metadata"].clone()),
        (json!(true), json!({ "origin": true }))
    );
    let full_msgs = app.ok(app.post_empty(&format!(
        "{}/sessions/{}/messages/list",
        s.user_path(),
        id(&full)
    )));
    assert_eq!(contents(&full_msgs), ["one", "two", "three"]);

    let cut = app.ok(app.get(&format!("{}/clone?message_id={second}", s.session_path())));
    let cut_msgs = app.ok(app.post_empty(&format!(
        "{}/sessions/{}/messages/list",
        s.user_path(),
        id(&cut)
    )));
    assert_eq!(contents(&cut_msgs), ["one", "two"]);
    let copy = &cut_msgs["items"][1];
    assert_ne!(id(copy), second, "copies get new ids");
    assert_eq!(
        (copy["metadata"].clone(), copy["session_id"].clone()),
        (json!({ "k": "v" }), json!(id(&cut)))
    );
}

#[test]
fn clone_of_an_empty_session_is_an_empty_session() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let clone = app.ok(app.get(&format!("{}/clone?deep_copy=true", s.session_path())));
    let fetched = app.ok(app.get(&format!(
        "{}/sessions?session_id={}",
        s.user_path(),
        id(&clone)
    )));
    assert_eq!(fetched, clone);
    let page = app.ok(app.post_empty(&format!(
        "{}/sessions/{}/messages/list",
        s.user_path(),
        id(&clone)
    )));
    assert_eq!(page["total"], 0);
}

#[test]
fn clone_of_unknown_session_or_message_is_404() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let other = app.create_session(&s.app, &s.user);
    let foreign = id(&app.ok(app.post(
        &format!("{}/sessions/{other}/messages", s.user_path()),
        json!({ "content": "elsewhere", "is_user": true }),
    )));
    let not_found = json!({ "detail": "Session not found" });
    assert_eq!(
        app.get(&format!("{}/sessions/ghost/clone", s.user_path())),
        (404, not_found.clone())
    );
    assert_eq!(
        app.get(&format!("{}/clone?message_id={foreign}", s.session_path())),
        (404, not_found)
    );
    let (status, body) = app.get(&format!("{}/clone?deep_copy=maybe", s.session_path()));
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["query", "deep_copy"]));
}
