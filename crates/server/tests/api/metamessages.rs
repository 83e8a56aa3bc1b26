//! metamessages: see the operations of the v1.1.0 contract.

use crate::helpers::{assert_empty_page, assert_redacted_snapshot, detail, id, Scope, TestApp};
use serde_json::{json, Value};

fn metamessages(s: &Scope) -> String {
    format!("{}/metamessages", s.user_path())
}

/// A message in the scope's session; returns its id.
fn message(app: &TestApp, s: &Scope, content: &str) -> String {
    id(&app.ok(app.post(
        &s.messages(),
        json!({ "content": content, "is_user": true }),
    )))
}

/// The `field` of every item of a page.
fn field_of_items(page: &Value, field: &str) -> Vec<Value> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m[field].clone())
        .collect()
}

fn contents(page: &Value) -> Vec<Value> {
    field_of_items(page, "content")
}

#[test]
fn create_get_with_and_without_session_and_message() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let mid = message(&app, &s, "hello");

    // The v1.1.0 name of the label, on the user alone.
    let bare = app.ok(app.post(
        &metamessages(&s),
        json!({ "metamessage_type": "note", "content": "about the user", "metadata": { "k": 1 } }),
    ));
    assert_redacted_snapshot!("bare", bare);
    assert_eq!(
        (
            bare["user_id"].clone(),
            bare["app_id"].clone(),
            bare["session_id"].clone(),
            bare["message_id"].clone()
        ),
        (json!(s.user), json!(s.app), Value::Null, Value::Null)
    );
    assert_eq!(
        app.ok(app.get(&format!("{}/{}", metamessages(&s), id(&bare)))),
        bare
    );

    // The newer name, on a session.
    let on_session = app.ok(app.post(
        &metamessages(&s),
        json!({ "label": "summary", "content": "", "session_id": s.session }),
    ));
    assert_eq!(
        (
            on_session["label"].clone(),
            on_session["metamessage_type"].clone(),
            on_session["session_id"].clone(),
            on_session["message_id"].clone(),
            on_session["metadata"].clone()
        ),
        (
            json!("summary"),
            json!("summary"),
            json!(s.session),
            Value::Null,
            json!({})
        )
    );

    // Both names: `label` wins. On a message of the session.
    let on_message = app.ok(app.post(
        &metamessages(&s),
        json!({
            "label": "thought",
            "metamessage_type": "ignored",
            "content": "c",
            "session_id": s.session,
            "message_id": mid,
        }),
    ));
    assert_redacted_snapshot!("on_message", on_message);
    assert_eq!(
        (
            on_message["label"].clone(),
            on_message["metamessage_type"].clone(),
            on_message["session_id"].clone(),
            on_message["message_id"].clone()
        ),
        (
            json!("thought"),
            json!("thought"),
            json!(s.session),
            json!(mid)
        )
    );
    assert_eq!(
        app.ok(app.get(&format!("{}/{}", metamessages(&s), id(&on_message)))),
        on_message
    );
}

#[test]
fn create_checks_the_user_the_session_and_the_message() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let mid = message(&app, &s, "mine");
    let other_session = app.create_session(&s.app, &s.user);
    let other_user = app.create_user(&s.app, "other");
    let others_session = app.create_session(&s.app, &other_user);
    let other_app = app.create_app("other app");
    let body = |extra: Value| {
        let mut b = json!({ "metamessage_type": "note", "content": "x" });
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };

    assert_eq!(
        app.post(&metamessages(&s), body(json!({ "message_id": mid }))),
        detail(422, "Cannot specify message_id without session_id")
    );
    assert_eq!(
        app.post(
            &format!("/v1/apps/{}/users/ghost/metamessages", s.app),
            body(json!({}))
        ),
        detail(404, "User with ID 'ghost' not found")
    );
    // The user exists, but not in that app.
    assert_eq!(
        app.post(
            &format!("/v1/apps/{other_app}/users/{}/metamessages", s.user),
            body(json!({}))
        ),
        (
            404,
            json!({ "detail": format!("User with ID '{}' not found", s.user) })
        )
    );
    let s404 = detail(404, "Session not found or does not belong to user");
    assert_eq!(
        app.post(&metamessages(&s), body(json!({ "session_id": "ghost" }))),
        s404
    );
    assert_eq!(
        app.post(
            &metamessages(&s),
            body(json!({ "session_id": others_session }))
        ),
        s404,
        "another user's session"
    );
    let m404 = detail(404, "Message not found or does not belong to session");
    assert_eq!(
        app.post(
            &metamessages(&s),
            body(json!({ "session_id": other_session, "message_id": mid }))
        ),
        m404,
        "a message of another session"
    );
    assert_eq!(
        app.post(
            &metamessages(&s),
            body(json!({ "session_id": s.session, "message_id": "ghost" }))
        ),
        m404
    );
    let page = app.ok(app.post_empty(&format!("{}/list", metamessages(&s))));
    assert_eq!(page["total"], 0, "nothing refused was stored");
}

#[test]
fn create_validates_label_content_and_nul() {
    let app = TestApp::spawn();
    let s = app.session_path();

    let (status, body) = app.post(&metamessages(&s), json!({ "content": "x" }));
    assert_eq!(status, 422);
    insta::assert_json_snapshot!("label_missing", crate::helpers::plain(&body));
    let (status, body) = app.post(
        &metamessages(&s),
        json!({ "metamessage_type": "t".repeat(51), "content": "x" }),
    );
    assert_eq!(status, 422);
    insta::assert_json_snapshot!("metamessage_type_too_long", crate::helpers::plain(&body));

    let issue = |body: Value| -> (u16, Value, Value) {
        let (status, answer) = app.post(&metamessages(&s), body);
        (
            status,
            answer["detail"][0]["type"].clone(),
            answer["detail"][0]["loc"].clone(),
        )
    };
    assert_eq!(
        issue(json!({ "label": "", "content": "x" })),
        (422, json!("string_too_short"), json!(["body", "label"]))
    );
    assert_eq!(
        issue(json!({ "label": "l".repeat(51), "metamessage_type": "ok", "content": "x" })),
        (422, json!("string_too_long"), json!(["body", "label"]))
    );
    assert_eq!(
        issue(json!({ "metamessage_type": "", "content": "x" })),
        (
            422,
            json!("string_too_short"),
            json!(["body", "metamessage_type"])
        )
    );
    assert_eq!(
        issue(json!({ "label": "note" })),
        (422, json!("missing"), json!(["body", "content"]))
    );
    assert_eq!(
        issue(json!({ "label": "note", "content": "x".repeat(50_001) })),
        (422, json!("string_too_long"), json!(["body", "content"]))
    );
    assert_eq!(
        issue(json!({ "label": "no\u{0}te", "content": "x" })),
        (422, json!("value_error"), json!(["body", "label"]))
    );
    assert_eq!(
        issue(json!({ "label": "note", "content": "\u{0}" })),
        (422, json!("value_error"), json!(["body", "content"]))
    );
    assert_eq!(
        issue(json!({ "label": "note", "content": "x", "session_id": "s\u{0}" })),
        (422, json!("value_error"), json!(["body", "session_id"]))
    );
    assert_eq!(
        issue(json!({ "label": "note", "content": "x", "metadata": { "k": "\u{0}" } })),
        (422, json!("value_error"), json!(["body", "metadata"]))
    );
    assert_eq!(
        issue(json!({ "label": 5, "content": "x" })),
        (422, json!("string_type"), json!(["body", "label"]))
    );

    // The limits themselves are accepted: 50 characters of label (two bytes each), 50 000 of content.
    let at_limits = app.ok(app.post(
        &metamessages(&s),
        json!({ "label": "é".repeat(50), "content": "é".repeat(50_000) }),
    ));
    assert_eq!(at_limits["label"], json!("é".repeat(50)));
    let page = app.ok(app.post_empty(&format!("{}/list", metamessages(&s))));
    assert_eq!(page["total"], 1, "only the valid metamessage was stored");
}

#[test]
fn list_filters_pages_and_reverses() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let m1 = message(&app, &s, "m1");
    let m2 = message(&app, &s, "m2");
    let other_session = app.create_session(&s.app, &s.user);
    let create = |body: Value| app.ok(app.post(&metamessages(&s), body));
    create(json!({ "label": "a", "content": "0", "metadata": { "n": 0, "tags": ["x"] } }));
    create(
        json!({ "label": "b", "content": "1", "session_id": s.session, "metadata": { "n": 1 } }),
    );
    create(json!({ "label": "a", "content": "2", "session_id": s.session, "message_id": m1 }));
    create(
        json!({ "label": "a", "content": "3", "session_id": s.session, "message_id": m2, "metadata": { "n": 3, "tags": ["x", "y"] } }),
    );
    create(json!({ "label": "b", "content": "4", "session_id": other_session }));
    let list = |query: &str, body: Value| {
        app.ok(app.post(&format!("{}/list{query}", metamessages(&s)), body))
    };

    let all = list("", json!(null));
    assert_eq!(
        contents(&all),
        [json!("0"), json!("1"), json!("2"), json!("3"), json!("4")]
    );
    assert_eq!(
        (
            all["total"].clone(),
            all["page"].clone(),
            all["size"].clone(),
            all["pages"].clone()
        ),
        (json!(5), json!(1), json!(50), json!(1))
    );
    assert_eq!(
        app.ok(app.post_empty(&format!("{}/list", metamessages(&s)))),
        all
    );
    assert_eq!(list("", json!({})), all);

    assert_eq!(
        contents(&list("", json!({ "label": "a" }))),
        [json!("0"), json!("2"), json!("3")]
    );
    assert_eq!(
        contents(&list("", json!({ "metamessage_type": "b" }))),
        [json!("1"), json!("4")]
    );
    assert_eq!(
        contents(&list("", json!({ "label": "b", "metamessage_type": "a" }))),
        [json!("1"), json!("4")],
        "label wins over metamessage_type"
    );
    assert_eq!(
        contents(&list("", json!({ "session_id": s.session }))),
        [json!("1"), json!("2"), json!("3")]
    );
    assert_eq!(
        contents(&list("", json!({ "session_id": s.session, "label": "a" }))),
        [json!("2"), json!("3")]
    );
    assert_eq!(
        contents(&list(
            "",
            json!({ "session_id": s.session, "message_id": m2 })
        )),
        [json!("3")]
    );
    assert_eq!(
        contents(&list("", json!({ "message_id": m1 }))),
        [json!("2")]
    );
    assert_eq!(
        contents(&list(
            "",
            json!({ "session_id": other_session, "message_id": m1 })
        )),
        Vec::<Value>::new()
    );
    assert_eq!(
        contents(&list("", json!({ "filter": { "tags": ["x"] } }))),
        [json!("0"), json!("3")]
    );
    assert_eq!(
        contents(&list("", json!({ "filter": { "n": 1 }, "label": "b" }))),
        [json!("1")]
    );
    assert_eq!(
        contents(&list("", json!({ "filter": { "n": 1 }, "label": "a" }))),
        Vec::<Value>::new()
    );
    assert_eq!(
        list("", json!({ "label": "none" }))["total"],
        0,
        "an unknown label matches nothing"
    );

    let page = list("?page=2&size=2", json!({}));
    assert_eq!(contents(&page), [json!("2"), json!("3")]);
    assert_eq!(
        (page["total"].clone(), page["pages"].clone()),
        (json!(5), json!(3))
    );
    let past = list("?page=4&size=2", json!({}));
    assert_eq!(
        (past["items"].clone(), past["total"].clone()),
        (json!([]), json!(5))
    );
    let rev = list("?reverse=true&size=2", json!({ "label": "a" }));
    assert_eq!(contents(&rev), [json!("3"), json!("2")]);
    assert_eq!(rev["total"], 3);
    assert_redacted_snapshot!("page", list("?size=1", json!({ "label": "b" })));

    let (status, body) = app.post(&format!("{}/list?size=101", metamessages(&s)), json!({}));
    assert_eq!(
        (status, body["detail"][0]["loc"].clone()),
        (422, json!(["query", "size"]))
    );
    let (status, body) = app.post(
        &format!("{}/list", metamessages(&s)),
        json!({ "filter": { "k": "\u{0}" } }),
    );
    assert_eq!(
        (status, body["detail"][0]["loc"].clone()),
        (422, json!(["body", "filter"]))
    );
    let (status, body) = app.post(
        &format!("{}/list", metamessages(&s)),
        json!({ "metamessage_type": "\u{0}" }),
    );
    assert_eq!(
        (status, body["detail"][0]["loc"].clone()),
        (422, json!(["body", "metamessage_type"]))
    );

    // Lists never check the parent: an unknown user or app is an empty page.
    for path in [
        format!("/v1/apps/{}/users/ghost/metamessages/list", s.app),
        format!("/v1/apps/ghost/users/{}/metamessages/list", s.user),
    ] {
        let empty = app.ok(app.post_empty(&path));
        assert_empty_page(&empty);
    }
}

#[test]
fn a_metamessage_is_only_visible_under_its_own_user_and_app() {
    let app = TestApp::spawn();
    let a = app.session_path();
    let b_user = app.create_user(&a.app, "b");
    let b = Scope {
        app: a.app.clone(),
        session: app.create_session(&a.app, &b_user),
        user: b_user,
    };
    let mm = id(&app.ok(app.post(
        &metamessages(&a),
        json!({ "label": "secret", "content": "of a", "session_id": a.session }),
    )));
    app.ok(app.post(
        &metamessages(&b),
        json!({ "label": "secret", "content": "of b" }),
    ));

    let not_found = (
        404,
        json!({ "detail": format!("Metamessage with ID {mm} not found") }),
    );
    assert_eq!(
        app.get(&format!("{}/{mm}", metamessages(&b))),
        not_found.clone()
    );
    assert_eq!(
        app.put(
            &format!("{}/{mm}", metamessages(&b)),
            json!({ "metadata": { "stolen": true } })
        ),
        not_found.clone()
    );
    let b_list = app.ok(app.post(
        &format!("{}/list", metamessages(&b)),
        json!({ "session_id": a.session }),
    ));
    assert_eq!(b_list["total"], 0);
    let b_all = app.ok(app.post_empty(&format!("{}/list", metamessages(&b))));
    assert_eq!(contents(&b_all), [json!("of b")]);

    // The right user under another app.
    let other_app = app.create_app("other");
    let elsewhere = format!("/v1/apps/{other_app}/users/{}/metamessages", a.user);
    assert_eq!(
        app.get(&format!("{elsewhere}/{mm}")),
        (
            404,
            json!({ "detail": format!("Metamessage with ID {mm} not found") })
        )
    );
    assert_eq!(
        app.ok(app.post_empty(&format!("{elsewhere}/list")))["total"],
        0
    );

    // B cannot attach a metamessage to A's session either.
    assert_eq!(
        app.post(
            &metamessages(&b),
            json!({ "label": "x", "content": "x", "session_id": a.session })
        ),
        detail(404, "Session not found or does not belong to user")
    );
    // And A's metamessage is unchanged.
    let mine = app.ok(app.get(&format!("{}/{mm}", metamessages(&a))));
    assert_eq!(mine["metadata"], json!({}));
}

#[test]
fn unknown_metamessages_are_404() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let not_found = detail(404, "Metamessage with ID ghost not found");
    assert_eq!(
        app.get(&format!("{}/ghost", metamessages(&s))),
        not_found.clone()
    );
    assert_eq!(
        app.put(
            &format!("{}/ghost", metamessages(&s)),
            json!({ "metadata": {} })
        ),
        not_found
    );
    // The body is checked before the store is asked.
    let (status, body) = app.put(&format!("{}/ghost", metamessages(&s)), json!([]));
    assert_eq!(
        (status, body["detail"][0]["type"].clone()),
        (422, json!("model_attributes_type"))
    );
}

#[test]
fn update_changes_label_metadata_session_and_message() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let m1 = message(&app, &s, "m1");
    let m2 = message(&app, &s, "m2");
    let s2 = app.create_session(&s.app, &s.user);
    let s2_scope = Scope {
        app: s.app.clone(),
        user: s.user.clone(),
        session: s2.clone(),
    };
    let n1 = message(&app, &s2_scope, "n1");
    let created = app.ok(app.post(
        &metamessages(&s),
        json!({ "label": "note", "content": "c", "metadata": { "a": 1, "b": 2 } }),
    ));
    let path = format!("{}/{}", metamessages(&s), id(&created));

    // Nothing given: unchanged.
    assert_eq!(app.ok(app.put(&path, json!({}))), created);
    // The label by either name; metadata replaced wholesale.
    let updated = app.ok(app.put(
        &path,
        json!({ "metamessage_type": "renamed", "metadata": { "c": 3 } }),
    ));
    assert_eq!(
        (
            updated["label"].clone(),
            updated["metamessage_type"].clone(),
            updated["metadata"].clone(),
            updated["content"].clone(),
            updated["created_at"].clone()
        ),
        (
            json!("renamed"),
            json!("renamed"),
            json!({ "c": 3 }),
            json!("c"),
            created["created_at"].clone()
        )
    );
    let updated = app.ok(app.put(
        &path,
        json!({ "label": "label", "metamessage_type": "ignored" }),
    ));
    assert_eq!(
        (updated["label"].clone(), updated["metadata"].clone()),
        (json!("label"), json!({ "c": 3 }))
    );

    // Onto a session, then a message of it, then another message of the same session.
    let on_session = app.ok(app.put(&path, json!({ "session_id": s.session })));
    assert_eq!(
        (
            on_session["session_id"].clone(),
            on_session["message_id"].clone()
        ),
        (json!(s.session), Value::Null)
    );
    let on_m1 = app.ok(app.put(&path, json!({ "message_id": m1 })));
    assert_eq!(
        (on_m1["session_id"].clone(), on_m1["message_id"].clone()),
        (json!(s.session), json!(m1))
    );
    let on_m2 = app.ok(app.put(&path, json!({ "message_id": m2 })));
    assert_eq!(on_m2["message_id"], json!(m2));
    // To another session and a message of it at once.
    let moved = app.ok(app.put(&path, json!({ "session_id": s2, "message_id": n1 })));
    assert_eq!(
        (moved["session_id"].clone(), moved["message_id"].clone()),
        (json!(s2), json!(n1))
    );
    assert_redacted_snapshot!("moved", moved);
    assert_eq!(app.ok(app.get(&path)), moved);
    let listed = app.ok(app.post(
        &format!("{}/list", metamessages(&s)),
        json!({ "session_id": s2, "message_id": n1 }),
    ));
    assert_eq!(field_of_items(&listed, "id"), [json!(id(&created))]);
}

#[test]
fn update_refuses_inconsistent_sessions_and_messages() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let m1 = message(&app, &s, "m1");
    let s2 = app.create_session(&s.app, &s.user);
    let other_user = app.create_user(&s.app, "other");
    let others_session = app.create_session(&s.app, &other_user);
    let bare = app.ok(app.post(
        &metamessages(&s),
        json!({ "label": "bare", "content": "c" }),
    ));
    let bare_path = format!("{}/{}", metamessages(&s), id(&bare));
    let attached = app.ok(app.post(
        &metamessages(&s),
        json!({ "label": "attached", "content": "c", "session_id": s.session, "message_id": m1 }),
    ));
    let attached_path = format!("{}/{}", metamessages(&s), id(&attached));

    // A message, but no session given and none stored.
    assert_eq!(
        app.put(&bare_path, json!({ "message_id": m1 })),
        detail(422, "Cannot specify message_id without session_id")
    );
    let s404 = detail(404, "Session not found or does not belong to user");
    assert_eq!(app.put(&bare_path, json!({ "session_id": "ghost" })), s404);
    assert_eq!(
        app.put(&bare_path, json!({ "session_id": others_session })),
        s404
    );
    let m404 = detail(404, "Message not found or doesn't belong to session");
    // A message of the stored session, given a session it is not in.
    assert_eq!(
        app.put(&bare_path, json!({ "session_id": s2, "message_id": m1 })),
        m404
    );
    assert_eq!(
        app.put(&attached_path, json!({ "message_id": "ghost" })),
        m404
    );
    // Moving to another session while the stored message stays in the first one.
    assert_eq!(app.put(&attached_path, json!({ "session_id": s2 })), m404);
    // Validation of the other fields.
    let (status, body) = app.put(&attached_path, json!({ "label": "" }));
    assert_eq!(
        (status, body["detail"][0]["loc"].clone()),
        (422, json!(["body", "label"]))
    );
    let (status, body) = app.put(
        &attached_path,
        json!({ "metamessage_type": "t".repeat(51) }),
    );
    assert_eq!(
        (
            status,
            body["detail"][0]["loc"].clone(),
            body["detail"][0]["type"].clone()
        ),
        (
            422,
            json!(["body", "metamessage_type"]),
            json!("string_too_long")
        )
    );
    let (status, body) = app.put(&attached_path, json!({ "message_id": "\u{0}" }));
    assert_eq!(
        (status, body["detail"][0]["loc"].clone()),
        (422, json!(["body", "message_id"]))
    );
    let (status, body) = app.put(&attached_path, json!({ "metadata": [1] }));
    assert_eq!(
        (status, body["detail"][0]["loc"].clone()),
        (422, json!(["body", "metadata"]))
    );

    // Nothing refused was written.
    assert_eq!(app.ok(app.get(&bare_path)), bare);
    assert_eq!(app.ok(app.get(&attached_path)), attached);
}

#[test]
fn deep_copy_of_a_session_copies_its_metamessages_up_to_the_cut() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let m1 = message(&app, &s, "m1");
    let m2 = message(&app, &s, "m2");
    let m3 = message(&app, &s, "m3");
    let create = |body: Value| app.ok(app.post(&metamessages(&s), body));
    create(
        json!({ "label": "l", "content": "no message", "session_id": s.session, "metadata": { "k": "v" } }),
    );
    create(json!({ "label": "l", "content": "on m1", "session_id": s.session, "message_id": m1 }));
    create(json!({ "label": "l", "content": "on m3", "session_id": s.session, "message_id": m3 }));
    // Not in the session: never copied.
    create(json!({ "label": "l", "content": "user only" }));

    let clone = app.ok(app.get(&format!(
        "{}/clone?message_id={m2}&deep_copy=true",
        s.session_path()
    )));
    let clone_id = id(&clone);
    let copied = app.ok(app.post(
        &format!("{}/list", metamessages(&s)),
        json!({ "session_id": clone_id }),
    ));
    assert_eq!(contents(&copied), [json!("no message"), json!("on m1")]);
    let items = copied["items"].as_array().unwrap();
    assert_eq!(items[0]["message_id"], Value::Null);
    assert_eq!(items[0]["metadata"], json!({ "k": "v" }));
    assert_eq!(items[0]["label"], json!("l"));

    // "on m1" points at the copy of m1, in the clone.
    let copied_m1 = items[1]["message_id"].as_str().unwrap().to_string();
    assert_ne!(copied_m1, m1);
    let clone_scope = Scope {
        app: s.app.clone(),
        user: s.user.clone(),
        session: clone_id.clone(),
    };
    let copy = app.ok(app.get(&format!("{}/{copied_m1}", clone_scope.messages())));
    assert_eq!(copy["content"], json!("m1"));
    let clone_messages = app.ok(app.post_empty(&format!("{}/list", clone_scope.messages())));
    assert_eq!(contents(&clone_messages), [json!("m1"), json!("m2")]);
    // The originals stay where they were.
    let originals = app.ok(app.post(
        &format!("{}/list", metamessages(&s)),
        json!({ "session_id": s.session }),
    ));
    assert_eq!(originals["total"], 3);
    assert_eq!(
        app.ok(app.post_empty(&format!("{}/list", metamessages(&s))))["total"],
        6
    );

    let shallow = app.ok(app.get(&format!(
        "{}/clone?message_id={m2}&deep_copy=false",
        s.session_path()
    )));
    let none = app.ok(app.post(
        &format!("{}/list", metamessages(&s)),
        json!({ "session_id": id(&shallow) }),
    ));
    assert_eq!(none["total"], 0);
    let default = app.ok(app.get(&format!("{}/clone", s.session_path())));
    let none = app.ok(app.post(
        &format!("{}/list", metamessages(&s)),
        json!({ "session_id": id(&default) }),
    ));
    assert_eq!(none["total"], 0, "deep_copy is off by default");
}

#[test]
fn a_user_key_cannot_reach_metamessages_outside_its_real_ancestry() {
    use honcho_domain::auth::Claims;
    use honcho_web::auth::Keys;
    const SECRET: &str = "metamessage-test-secret-of-some-length";
    let app = TestApp::spawn_with_auth(SECRET);
    let keys = Keys::new(SECRET);
    let admin = keys.admin_key();
    let as_admin = |method: &str, path: &str, body: Value| {
        let (status, v) = app.send_as(Some(&admin), method, path, Some(&body.to_string()));
        assert_eq!(status, 200, "{method} {path}: {v}");
        v
    };
    let a = id(&as_admin("POST", "/v1/apps", json!({ "name": "a" })));
    let b = id(&as_admin("POST", "/v1/apps", json!({ "name": "b" })));
    let alice = id(&as_admin(
        "POST",
        &format!("/v1/apps/{a}/users"),
        json!({ "name": "alice" }),
    ));
    let carol = id(&as_admin(
        "POST",
        &format!("/v1/apps/{b}/users"),
        json!({ "name": "carol" }),
    ));
    let mm = id(&as_admin(
        "POST",
        &format!("/v1/apps/{a}/users/{alice}/metamessages"),
        json!({ "label": "note", "content": "alice's" }),
    ));
    // Carol's key, with Carol's id put under app A.
    let carol_key = keys.mint(&Claims {
        us: Some(carol.clone()),
        ..Claims::default()
    });
    let under_a = format!("/v1/apps/{a}/users/{carol}/metamessages");
    let (status, body) = app.send_as(
        Some(&carol_key),
        "POST",
        &under_a,
        Some(r#"{"label": "x", "content": "x"}"#),
    );
    assert_eq!(
        (status, body),
        (
            404,
            json!({ "detail": format!("User with ID '{carol}' not found") })
        )
    );
    let (status, body) = app.send_as(Some(&carol_key), "POST", &format!("{under_a}/list"), None);
    assert_eq!((status, body["total"].clone()), (200, json!(0)));
    let (status, _) = app.get_as(&carol_key, &format!("{under_a}/{mm}"));
    assert_eq!(status, 404);
    // Alice's own path is refused to Carol's key outright.
    let (status, body) = app.get_as(
        &carol_key,
        &format!("/v1/apps/{a}/users/{alice}/metamessages/{mm}"),
    );
    assert_eq!(
        (status, body),
        detail(401, "JWT not permissioned for this resource")
    );
}
