use crate::helpers::{assert_empty_page, assert_redacted_snapshot, detail, id, TestApp};
use serde_json::{json, Value};

fn batch_of(n: usize) -> Value {
    let messages: Vec<Value> = (0..n)
        .map(|i| json!({ "content": format!("message {i}"), "is_user": i % 2 == 0, "metadata": { "i": i } }))
        .collect();
    json!({ "messages": messages })
}

#[test]
fn create_get_update() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let msg = app.ok(app.post(
        &s.messages(),
        json!({ "content": "hello", "is_user": true, "metadata": { "mood": "good" } }),
    ));
    assert_redacted_snapshot!(msg);
    assert_eq!(
        (
            msg["session_id"].clone(),
            msg["user_id"].clone(),
            msg["app_id"].clone()
        ),
        (json!(s.session), json!(s.user), json!(s.app))
    );
    let mid = id(&msg);
    assert_eq!(app.ok(app.get(&format!("{}/{mid}", s.messages()))), msg);
    let updated = app.ok(app.put(
        &format!("{}/{mid}", s.messages()),
        json!({ "metadata": { "mood": "great" } }),
    ));
    assert_eq!(
        (updated["metadata"].clone(), updated["content"].clone()),
        (json!({ "mood": "great" }), json!("hello"))
    );
}

#[test]
fn unknown_messages_are_404() {
    let app = TestApp::spawn();
    let s = app.session_path();
    assert_eq!(
        app.get(&format!("{}/ghost", s.messages())),
        detail(404, "Message with ID ghost not found")
    );
    assert_eq!(
        app.put(
            &format!("{}/ghost", s.messages()),
            json!({ "metadata": {} })
        ),
        detail(404, "Message not found")
    );
    let (status, body) = app.put(&format!("{}/ghost", s.messages()), json!({}));
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["type"], "missing");
}

#[test]
fn a_message_is_only_found_in_its_own_session() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let other = app.create_session(&s.app, &s.user);
    let mid = id(&app.ok(app.post(&s.messages(), json!({ "content": "mine", "is_user": true }))));
    assert_eq!(
        app.get(&format!(
            "{}/sessions/{other}/messages/{mid}",
            s.user_path()
        ))
        .0,
        404
    );
}

#[test]
fn batch_keeps_order_and_returns_every_message() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let stored = app.ok(app.post(&format!("{}/batch", s.messages()), batch_of(100)));
    let stored = stored.as_array().unwrap();
    assert_eq!(stored.len(), 100);
    for (i, m) in stored.iter().enumerate() {
        assert_eq!(m["content"], format!("message {i}"));
        assert_eq!(m["metadata"], json!({ "i": i }));
    }
    let page1 = app.ok(app.post(&format!("{}/list?size=100", s.messages()), json!({})));
    let ids: Vec<String> = page1["items"].as_array().unwrap().iter().map(id).collect();
    let sent: Vec<String> = stored.iter().map(id).collect();
    assert_eq!(ids, sent);
    assert_redacted_snapshot!(stored[..2].to_vec().into());
}

#[test]
fn empty_batch_is_an_empty_answer() {
    let app = TestApp::spawn();
    let s = app.session_path();
    assert_eq!(
        app.post(
            &format!("{}/batch", s.messages()),
            json!({ "messages": [] })
        ),
        (200, json!([]))
    );
}

#[test]
fn batch_over_100_is_422_and_stores_nothing() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let (status, body) = app.post(&format!("{}/batch", s.messages()), batch_of(101));
    assert_eq!(status, 422);
    insta::assert_json_snapshot!(crate::helpers::plain(&body));
    let page = app.ok(app.post_empty(&format!("{}/list", s.messages())));
    assert_eq!(page["total"], 0);
}

#[test]
fn batch_to_unknown_session_is_404() {
    let app = TestApp::spawn();
    let s = app.session_path();
    assert_eq!(
        app.post(
            &format!("{}/sessions/ghost/messages/batch", s.user_path()),
            batch_of(3)
        ),
        detail(404, "Session not found or does not belong to user")
    );
}

#[test]
fn batch_with_one_bad_message_stores_none() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let mut batch = batch_of(50);
    batch["messages"][37]["content"] = json!("x".repeat(50_001));
    let (status, body) = app.post(&format!("{}/batch", s.messages()), batch);
    assert_eq!(status, 422);
    assert_eq!(
        body["detail"][0]["loc"],
        json!(["body", "messages", 37, "content"])
    );
    assert_eq!(body["detail"][0]["type"], "string_too_long");
    let mut batch = batch_of(50);
    batch["messages"][12]["metadata"] = json!({ "k": "nul\u{0}here" });
    let (status, body) = app.post(&format!("{}/batch", s.messages()), batch);
    assert_eq!(status, 422);
    assert_eq!(
        body["detail"][0]["loc"],
        json!(["body", "messages", 12, "metadata"])
    );
    let page = app.ok(app.post_empty(&format!("{}/list", s.messages())));
    assert_eq!(page["total"], 0, "a refused batch leaves no rows");
}

#[test]
fn batch_that_fails_half_way_in_the_database_leaves_no_rows() {
    // A trigger makes the database refuse the 50th row of the batch, after the session row was
    // updated and 49 rows were written in the same transaction.
    let app = TestApp::spawn();
    let s = app.session_path();
    app.ok(app.post(&format!("{}/batch", s.messages()), batch_of(10)));
    app.execute_sql(
        "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN \
           IF NEW.content = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF; RETURN NEW; END $$ \
           LANGUAGE plpgsql; \
         CREATE TRIGGER refuse_poison BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON messages WHEN NEW.content = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;",
    );
    let mut batch = batch_of(100);
    batch["messages"][49]["content"] = json!("poison");
    assert_eq!(
        app.post(&format!("{}/batch", s.messages()), batch),
        detail(500, "An unexpected error occurred")
    );
    let page = app.ok(app.post(&format!("{}/list?size=100", s.messages()), json!({})));
    assert_eq!(page["total"], 10, "the session's count is rolled back");
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        10,
        "no row of the failed batch is stored"
    );
    let counted = app.ok(app.post(
        &format!("{}/list?size=100", s.messages()),
        json!({ "filter": {"i": 0} }),
    ));
    assert_eq!(counted["total"], 1);
}

#[test]
fn content_limits() {
    let app = TestApp::spawn();
    let s = app.session_path();
    app.ok(app.post(&s.messages(), json!({ "content": "", "is_user": true })));
    app.ok(app.post(
        &s.messages(),
        json!({ "content": "é".repeat(50_000), "is_user": true }),
    ));
    let (status, body) = app.post(
        &s.messages(),
        json!({ "content": "x".repeat(50_001), "is_user": true }),
    );
    assert_eq!(status, 422);
    insta::assert_json_snapshot!(crate::helpers::plain(&body));
}

#[test]
fn list_pages_filters_and_reverses() {
    let app = TestApp::spawn();
    let s = app.session_path();
    app.ok(app.post(&format!("{}/batch", s.messages()), batch_of(7)));
    let page = app.ok(app.post(&format!("{}/list?page=2&size=3", s.messages()), json!({})));
    assert_eq!(
        (
            page["total"].clone(),
            page["page"].clone(),
            page["size"].clone(),
            page["pages"].clone()
        ),
        (json!(7), json!(2), json!(3), json!(3))
    );
    let contents: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["message 3", "message 4", "message 5"]);
    let rev = app.ok(app.post(
        &format!("{}/list?reverse=true&size=2", s.messages()),
        json!(null),
    ));
    let contents: Vec<&str> = rev["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["message 6", "message 5"]);
    let filtered = app.ok(app.post(
        &format!("{}/list", s.messages()),
        json!({ "filter": { "i": 4 } }),
    ));
    assert_eq!(
        (
            filtered["total"].clone(),
            filtered["items"][0]["content"].clone()
        ),
        (json!(1), json!("message 4"))
    );
    // An unknown session lists as empty, as every list does for an unknown parent.
    let empty = app.ok(app.post_empty(&format!("{}/sessions/ghost/messages/list", s.user_path())));
    assert_empty_page(&empty);
}

#[test]
fn lax_booleans_are_accepted_like_v1() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let m = app.ok(app.post(&s.messages(), json!({ "content": "x", "is_user": "yes" })));
    assert_eq!(m["is_user"], true);
    let m = app.ok(app.post(&s.messages(), json!({ "content": "x", "is_user": 0 })));
    assert_eq!(m["is_user"], false);
    let (status, body) = app.post(&s.messages(), json!({ "content": "x", "is_user": "maybe" }));
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["type"], "bool_parsing");
}
