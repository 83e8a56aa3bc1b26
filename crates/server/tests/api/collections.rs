//! Collections: names unique per user, the reserved name, the protected collection, cascading delete.

use crate::helpers::{assert_redacted_snapshot, detail, id, TestApp};
use serde_json::json;

#[test]
fn create_get_list_update_delete() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let created = app.ok(app.post(
        &s.collections(),
        json!({ "name": "notes", "metadata": { "kind": "misc" } }),
    ));
    assert_redacted_snapshot!(created);
    let cid = id(&created);
    assert_eq!(
        app.ok(app.get(&format!("{}?collection_id={cid}", s.collections()))),
        created
    );
    assert_eq!(
        app.ok(app.get(&format!("{}/name/notes", s.collections()))),
        created
    );
    app.ok(app.post(&s.collections(), json!({ "name": "other" })));
    let page = app.ok(app.post(
        &format!("{}/list", s.collections()),
        json!({ "filter": { "kind": "misc" } }),
    ));
    assert_eq!(
        (page["total"].clone(), page["items"][0]["id"].clone()),
        (json!(1), json!(cid))
    );
    let all = app.ok(app.post(&format!("{}/list?reverse=true", s.collections()), json!({})));
    assert_eq!(
        (all["total"].clone(), all["items"][0]["name"].clone()),
        (json!(2), json!("other"))
    );

    let renamed = app.ok(app.put(
        &format!("{}/{cid}", s.collections()),
        json!({ "name": "journal" }),
    ));
    assert_eq!(
        (renamed["name"].clone(), renamed["metadata"].clone()),
        (json!("journal"), json!({ "kind": "misc" }))
    );
    let remeta = app.ok(app.put(
        &format!("{}/{cid}", s.collections()),
        json!({ "metadata": { "k": 2 } }),
    ));
    assert_eq!(
        (remeta["name"].clone(), remeta["metadata"].clone()),
        (json!("journal"), json!({ "k": 2 }))
    );

    assert_eq!(
        app.delete(&format!("{}/{cid}", s.collections())),
        (200, json!({ "message": "Collection deleted successfully" }))
    );
    assert_eq!(
        app.get(&format!("{}?collection_id={cid}", s.collections())),
        detail(404, "Collection not found or does not belong to user")
    );
}

#[test]
fn the_reserved_name_is_refused_in_any_case() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let (status, body) = app.post(&s.collections(), json!({ "name": "HoNcHo" }));
    assert_eq!(status, 422);
    insta::assert_json_snapshot!(crate::helpers::plain(&body));
    let cid = id(&app.ok(app.post(&s.collections(), json!({ "name": "mine" }))));
    let (status, body) = app.put(
        &format!("{}/{cid}", s.collections()),
        json!({ "name": "honcho" }),
    );
    assert_eq!(
        (status, body["detail"][0]["msg"].clone()),
        (
            422,
            json!("Value error, Collection name cannot be 'honcho'")
        )
    );
}

#[test]
fn errors_of_create_update_and_delete() {
    let app = TestApp::spawn();
    let s = app.session_path();
    assert_eq!(
        app.post(
            &format!("/v1/apps/{}/users/ghost/collections", s.app),
            json!({ "name": "x" })
        ),
        detail(404, "User with ID 'ghost' not found")
    );
    app.ok(app.post(&s.collections(), json!({ "name": "dup" })));
    assert_eq!(
        app.post(&s.collections(), json!({ "name": "dup" })),
        detail(409, "Collection with name 'dup' already exists")
    );
    let cid = id(&app.ok(app.post(&s.collections(), json!({ "name": "free" }))));
    assert_eq!(
        app.put(
            &format!("{}/{cid}", s.collections()),
            json!({ "name": "dup" })
        ),
        detail(409, "Collection update failed - name already in use")
    );
    assert_eq!(
        app.put(&format!("{}/{cid}", s.collections()), json!({})),
        detail(
            422,
            "Invalid collection configuration - at least one field must be provided"
        )
    );
    let c404 = json!({ "detail": "Collection not found or does not belong to user" });
    assert_eq!(
        app.put(
            &format!("{}/ghost", s.collections()),
            json!({ "name": "x" })
        ),
        (404, c404.clone())
    );
    assert_eq!(
        app.delete(&format!("{}/ghost", s.collections())),
        (404, c404)
    );
    assert_eq!(
        app.get(&format!("{}/name/ghost", s.collections())),
        detail(404, "Collection with name 'ghost' not found")
    );
    assert_eq!(
        app.get(&s.collections()),
        detail(401, "Collection ID not found in query parameter or JWT")
    );
}

#[test]
fn names_are_unique_per_user_and_collections_do_not_leak() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let bob = app.create_user(&s.app, "bob");
    let bobs = format!("/v1/apps/{}/users/{bob}/collections", s.app);
    let mine = id(&app.ok(app.post(&s.collections(), json!({ "name": "same" }))));
    app.ok(app.post(&bobs, json!({ "name": "same" })));
    assert_eq!(app.get(&format!("{bobs}?collection_id={mine}")).0, 404);
    assert_eq!(app.delete(&format!("{bobs}/{mine}")).0, 404);
    assert_eq!(
        app.post(
            &format!("{bobs}/{mine}/documents"),
            json!({ "content": "x" })
        )
        .0,
        404
    );
}

#[test]
fn deleting_a_collection_deletes_its_documents() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let cid = id(&app.ok(app.post(&s.collections(), json!({ "name": "doomed" }))));
    let docs = format!("{}/{cid}/documents", s.collections());
    let did = id(&app.ok(app.post(&docs, json!({ "content": "a fact" }))));
    app.ok(app.post(&docs, json!({ "content": "another fact" })));
    app.ok(app.delete(&format!("{}/{cid}", s.collections())));
    let page = app.ok(app.post_empty(&format!("{docs}/list")));
    assert_eq!(page["total"], 0);
    assert_eq!(app.get(&format!("{docs}/{did}")).0, 404);
    // A new collection with the same name starts empty.
    let again = id(&app.ok(app.post(&s.collections(), json!({ "name": "doomed" }))));
    let page = app.ok(app.post_empty(&format!("{}/{again}/documents/list", s.collections())));
    assert_eq!(page["total"], 0);
}

#[test]
fn the_protected_collection_cannot_be_deleted_or_renamed_but_holds_documents() {
    let app = TestApp::spawn();
    let s = app.session_path();
    // The deriver creates it; here it is made directly in the database.
    let now = "2026-01-01 00:00:00+00:00";
    let insert = format!(
        "INSERT INTO collections (public_id, app_id, user_id, name, metadata, created_at) \
         VALUES ('protectedcollection01', '{}', '{}', 'honcho', '{{}}', '{now}')",
        s.app, s.user
    );
    app.execute_sql(&insert, &insert);
    let path = format!("{}/protectedcollection01", s.collections());
    let reserved =
        json!({ "detail": "Invalid collection configuration - 'honcho' is a reserved name" });
    assert_eq!(app.delete(&path), (422, reserved.clone()));
    assert_eq!(
        app.put(&path, json!({ "name": "mine-now" })),
        (422, reserved)
    );
    let updated = app.ok(app.put(&path, json!({ "metadata": { "note": "ok" } })));
    assert_eq!(updated["name"], "honcho");
    assert_eq!(
        app.ok(app.get(&format!("{}/name/honcho", s.collections())))["id"],
        "protectedcollection01"
    );
    let did = id(&app.ok(app.post(
        &format!("{path}/documents"),
        json!({ "content": "likes tea" }),
    )));
    assert_eq!(
        app.delete(&format!("{path}/documents/{did}")),
        detail(422, "Cannot delete collection with reserved name 'honcho'")
    );
    let found = app.ok(app.post(
        &format!("{path}/documents/query"),
        json!({ "query": "tea" }),
    ));
    assert_eq!(found[0]["id"], did.as_str());
}
