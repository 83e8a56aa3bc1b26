//! Erasure: a user, or one session, and everything stored about it or derived from it. Checked in
//! every table of the schema (listed from the database's catalog, so a new table must be classified
//! here), in the SQLite files' bytes, in a second server process's caches, through every route, and
//! against a deriver working on the user at that moment.

use crate::auth::honcho;
use crate::helpers::{id, on_postgres, succeeded, Honcho, Options, TestApp};
use crate::insights::{app_with, distinct_words, wait_for_queue};
use crate::model_server::{default_reply, ModelServer, Protocol, Reply, Role};
use diesel::{Connection, RunQueryDsl};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// What a table of the schema can hold of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holds {
    /// A user's data: erasure removes (or, for keys, clears) its rows.
    UserData,
    /// A user's data only while the deriver works on one of its sessions.
    WhileDeriving,
    /// Nothing of a user.
    Nothing,
}

/// Every table of the schema. A new table fails `the_schema_has_no_table_erasure_does_not_know`
/// until it is classified here (and, if it holds a user's data, erased by `queries::erasure`).
const TABLES: &[(&str, Holds)] = &[
    ("__diesel_schema_migrations", Holds::Nothing),
    ("apps", Holds::Nothing),
    ("users", Holds::UserData),
    ("sessions", Holds::UserData),
    ("messages", Holds::UserData),
    ("metamessages", Holds::UserData),
    ("collections", Holds::UserData),
    ("documents", Holds::UserData),
    ("deriver_queue", Holds::UserData),
    ("deriver_leases", Holds::WhileDeriving),
    ("api_keys", Holds::UserData),
    ("erasures", Holds::Nothing),
];

#[derive(diesel::QueryableByName)]
struct Line {
    #[diesel(sql_type = diesel::sql_types::Text)]
    text: String,
}

/// Every row of every table of the test's database, as `(table, the row as text)`.
fn every_row(app: &TestApp) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if on_postgres() {
        let mut conn = diesel::PgConnection::establish(app.database_url()).unwrap();
        let tables: Vec<Line> = diesel::sql_query(
            "SELECT table_name::text AS text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        )
        .load(&mut conn)
        .unwrap();
        for table in tables {
            let rows: Vec<Line> =
                diesel::sql_query(format!("SELECT t::text AS text FROM \"{}\" t", table.text))
                    .load(&mut conn)
                    .unwrap();
            out.extend(rows.into_iter().map(|r| (table.text.clone(), r.text)));
        }
    } else {
        let mut conn = diesel::SqliteConnection::establish(app.database_url()).unwrap();
        let tables: Vec<Line> = diesel::sql_query(
            "SELECT name AS text FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%'",
        )
        .load(&mut conn)
        .unwrap();
        for table in tables {
            let columns: Vec<Line> = diesel::sql_query(format!(
                "SELECT name AS text FROM pragma_table_info('{}')",
                table.text
            ))
            .load(&mut conn)
            .unwrap();
            let row = columns
                .iter()
                .map(|c| format!("coalesce(quote(\"{}\"), '')", c.text))
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            let rows: Vec<Line> =
                diesel::sql_query(format!("SELECT {row} AS text FROM \"{}\"", table.text))
                    .load(&mut conn)
                    .unwrap();
            out.extend(rows.into_iter().map(|r| (table.text.clone(), r.text)));
        }
    }
    out
}

/// The rows (table, text) holding any of `needles`.
fn rows_naming(app: &TestApp, needles: &[&str]) -> Vec<(String, String)> {
    every_row(app)
        .into_iter()
        .filter(|(_, row)| needles.iter().any(|n| row.contains(n)))
        .collect()
}

/// The tables with a row holding any of `needles`.
fn tables_naming(app: &TestApp, needles: &[&str]) -> std::collections::BTreeSet<String> {
    rows_naming(app, needles)
        .into_iter()
        .map(|(t, _)| t)
        .collect()
}

/// SQLite: the database file and its write-ahead log, as bytes.
fn sqlite_bytes(app: &TestApp) -> Vec<u8> {
    let mut bytes = std::fs::read(app.database_url()).unwrap();
    bytes.extend(std::fs::read(format!("{}-wal", app.database_url())).unwrap_or_default());
    bytes
}

fn holds(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A user with two sessions of messages, a metamessage, a collection of documents naming a
/// message, and a recorded API key, each holding `mark`.
struct Person {
    name: String,
    user: String,
    sessions: Vec<String>,
    messages: Vec<String>,
    collection: String,
    path: String,
}

impl Person {
    fn create(app: &TestApp, app_id: &str, mark: &str) -> Person {
        let name = format!("person-{mark}");
        let user = app.create_user(app_id, &name);
        let path = format!("/v1/apps/{app_id}/users/{user}");
        let mut sessions = Vec::new();
        let mut messages = Vec::new();
        for s in 0..2 {
            let session = app.create_session(app_id, &user);
            let stored = app.ok(app.post(
                &format!("{path}/sessions/{session}/messages/batch"),
                json!({ "messages": [
                    { "content": format!("{mark} says {}", distinct_words(s)), "is_user": true },
                    { "content": format!("{mark} asked about beekeeping, part {s}"), "is_user": false },
                ] }),
            ));
            messages.extend(stored.as_array().unwrap().iter().map(id));
            sessions.push(session);
        }
        app.ok(app.post(
            &format!("{path}/metamessages"),
            json!({ "metamessage_type": "note", "content": format!("a note on {mark}"),
                    "session_id": sessions[0], "message_id": messages[0] }),
        ));
        let collection = id(&app.ok(app.post(
            &format!("{path}/collections"),
            json!({ "name": "notes", "metadata": { "about": mark } }),
        )));
        for (i, m) in messages.iter().enumerate().take(2) {
            app.ok(app.post(
                &format!("{path}/collections/{collection}/documents"),
                json!({ "content": format!("{mark} keeps bees, note {i}"),
                        "metadata": { "message_id": m } }),
            ));
        }
        let minted = honcho(
            &[
                "keys",
                "create",
                "--app-id",
                app_id,
                "--user-id",
                &user,
                "--label",
                &format!("key of {mark}"),
            ],
            &[
                ("DATABASE_URL", app.database_url()),
                ("AUTH_JWT_SECRET", crate::auth::SECRET),
            ],
        );
        succeeded(&minted);
        Person {
            name,
            user,
            sessions,
            messages,
            collection,
            path,
        }
    }

    /// Every id of the person.
    fn ids(&self) -> Vec<&str> {
        let mut ids = vec![self.user.as_str(), self.name.as_str(), &self.collection];
        ids.extend(self.sessions.iter().map(String::as_str));
        ids.extend(self.messages.iter().map(String::as_str));
        ids
    }
}

/// A gauge of a spawned server's `/metrics`.
fn gauge(server: &Honcho, name: &str) -> f64 {
    let text = ureq::get(&format!("{}/metrics", server.base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

fn post(base: &str, path: &str, body: Value) -> (u16, Value) {
    match ureq::post(&format!("{base}{path}")).send_json(body) {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("{path}: {e}"),
    }
}

/// Searches `person`'s messages and documents through `base`: the contents found.
fn search(base: &str, person: &Person, words: &str) -> (u16, Vec<String>) {
    let (status, found) = post(
        base,
        &format!("{}/messages/query", person.path),
        json!({ "query": words }),
    );
    let mut contents: Vec<String> = match found.as_array() {
        Some(items) => items
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_string())
            .collect(),
        None => Vec::new(),
    };
    let (_, docs) = post(
        base,
        &format!(
            "{}/collections/{}/documents/query",
            person.path, person.collection
        ),
        json!({ "query": words }),
    );
    if let Some(items) = docs.as_array() {
        contents.extend(
            items
                .iter()
                .map(|d| d["content"].as_str().unwrap().to_string()),
        );
    }
    (status, contents)
}

#[test]
fn the_schema_has_no_table_erasure_does_not_know() {
    let app = TestApp::spawn();
    let found = tables_of(&app);
    let known: std::collections::BTreeSet<String> =
        TABLES.iter().map(|(t, _)| t.to_string()).collect();
    assert_eq!(
        found, known,
        "classify every table in `TABLES` (and erase what it holds of a user in queries::erasure)"
    );
}

fn tables_of(app: &TestApp) -> std::collections::BTreeSet<String> {
    // An empty database has rows only in the migrations' table: list the tables from the catalog.
    let sql = if on_postgres() {
        "SELECT table_name::text AS text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
    } else {
        "SELECT name AS text FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    };
    let lines: Vec<Line> = if on_postgres() {
        let mut conn = diesel::PgConnection::establish(app.database_url()).unwrap();
        diesel::sql_query(sql).load(&mut conn).unwrap()
    } else {
        let mut conn = diesel::SqliteConnection::establish(app.database_url()).unwrap();
        diesel::sql_query(sql).load(&mut conn).unwrap()
    };
    lines.into_iter().map(|l| l.text).collect()
}

#[test]
fn erasing_a_user_leaves_nothing_of_it_in_any_table_file_process_or_route() {
    let model = ModelServer::start(Protocol::OpenAi);
    let app = app_with(&model, 2);
    let app_id = app.create_app("erasure");
    let gone = Person::create(&app, &app_id, "GONEZQX");
    let kept = Person::create(&app, &app_id, "KEPTWVY");
    for person in [&gone, &kept] {
        wait_for_queue(&app, &app_id, &format!("user_id={}", person.user), 4);
    }
    // A second server process over the same database, its caches warmed by searches.
    let other = Honcho::start(app.database_url());
    for person in [&gone, &kept] {
        let (status, found) = search(&other.base, person, "beekeeping bees");
        assert_eq!(status, 200);
        assert!(!found.is_empty());
    }
    assert!(gauge(&other, "honcho_message_cache_bytes") > 0.0);
    assert!(gauge(&other, "honcho_vector_cache_bytes") > 0.0);
    // Every table that can hold a user's data holds some of this one's (facts and summaries by the
    // deriver included), so the check below can fail.
    let before = tables_naming(&app, &gone.ids());
    for (table, holds) in TABLES {
        assert_eq!(
            before.contains(*table),
            *holds == Holds::UserData,
            "{table} before the erasure"
        );
    }
    assert!(rows_naming(&app, &["The user said: GONEZQX"]).len() >= 2);
    if !on_postgres() {
        assert!(holds(&sqlite_bytes(&app), "GONEZQX"));
    }

    let (status, body) = app.delete(&gone.path);
    assert_eq!((status, body), (204, json!("")));

    // Nothing of it in any row of any table.
    let mut needles = gone.ids();
    needles.push("GONEZQX");
    assert_eq!(rows_naming(&app, &needles), vec![]);
    // The other user's data is all there.
    assert_eq!(
        tables_naming(&app, &kept.ids()),
        before,
        "the other user's rows"
    );
    // Nor in the SQLite files' bytes (free pages and the write-ahead log included).
    if !on_postgres() {
        let bytes = sqlite_bytes(&app);
        assert!(!holds(&bytes, "GONEZQX"));
        assert!(holds(&bytes, "KEPTWVY"));
    }
    // The other process drops its cached copies within a second or two.
    let started = Instant::now();
    while gauge(&other, "honcho_message_cache_bytes") > 0.0
        || gauge(&other, "honcho_vector_cache_bytes") > 0.0
    {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the second process kept its copies"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every route about the user answers 404, on both processes; lists and document queries are
    // empty (as v1.1.0 answers them for an unknown user or collection).
    let s = &gone.sessions[0];
    let m = &gone.messages[0];
    let c = &gone.collection;
    let p = &gone.path;
    for base in [app.base.as_str(), other.base.as_str()] {
        for (method, path, body) in [
            (
                "GET",
                format!("/v1/apps/{app_id}/users?user_id={}", gone.user),
                None,
            ),
            (
                "GET",
                format!("/v1/apps/{app_id}/users/name/{}", gone.name),
                None,
            ),
            ("PUT", p.clone(), Some(json!({ "metadata": {} }))),
            ("DELETE", p.clone(), None),
            ("GET", format!("{p}/sessions?session_id={s}"), None),
            (
                "PUT",
                format!("{p}/sessions/{s}"),
                Some(json!({ "metadata": {} })),
            ),
            ("DELETE", format!("{p}/sessions/{s}"), None),
            ("GET", format!("{p}/sessions/{s}/messages/{m}"), None),
            (
                "POST",
                format!("{p}/sessions/{s}/messages"),
                Some(json!({ "content": "x", "is_user": true })),
            ),
            ("GET", format!("{p}/sessions/{s}/context"), None),
            (
                "POST",
                format!("{p}/sessions/{s}/chat"),
                Some(json!({ "queries": "bees?" })),
            ),
            (
                "POST",
                format!("{p}/messages/query"),
                Some(json!({ "query": "bees" })),
            ),
            (
                "POST",
                format!("{p}/sessions/{s}/messages/query"),
                Some(json!({ "query": "bees" })),
            ),
            ("GET", format!("{p}/collections?collection_id={c}"), None),
            ("GET", format!("{p}/collections/name/notes"), None),
            (
                "POST",
                format!("{p}/collections"),
                Some(json!({ "name": "again" })),
            ),
            (
                "POST",
                format!("{p}/metamessages"),
                Some(json!({ "metamessage_type": "note", "content": "x" })),
            ),
        ] {
            let mut request = ureq::request(method, &format!("{base}{path}"));
            if body.is_some() {
                request = request.set("content-type", "application/json");
            }
            let answer = match body {
                Some(b) => request.send_string(&b.to_string()),
                None => request.call(),
            };
            let status = match answer {
                Ok(r) => r.status(),
                Err(ureq::Error::Status(s, _)) => s,
                Err(e) => panic!("{method} {path}: {e}"),
            };
            // chat needs a model: the second process has none (405 before any lookup).
            let expected = if base == other.base && path.ends_with("/chat") {
                405
            } else {
                404
            };
            assert_eq!(status, expected, "{method} {path} on {base}");
        }
        for list in [
            format!("/v1/apps/{app_id}/users/{}/sessions/list", gone.user),
            format!("{p}/collections/list"),
            format!("{p}/metamessages/list"),
        ] {
            let (status, page) = post(base, &list, json!({}));
            assert_eq!((status, page["total"].as_i64()), (200, Some(0)), "{list}");
        }
        let query = format!("{p}/collections/{c}/documents/query");
        assert_eq!(
            post(base, &query, json!({ "query": "bees" })),
            (200, json!([]))
        );
    }
    let (status, users) = post(
        &app.base,
        &format!("/v1/apps/{app_id}/users/list"),
        json!({}),
    );
    assert_eq!((status, users["total"].as_i64()), (200, Some(1)));
    // The other user is searchable on both processes.
    for base in [app.base.as_str(), other.base.as_str()] {
        let (status, found) = search(base, &kept, "beekeeping bees");
        assert_eq!(status, 200);
        assert!(found.iter().all(|c| c.contains("KEPTWVY")) && !found.is_empty());
    }
    let text = ureq::get(&format!("{}/metrics", app.base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(text.contains("honcho_erasures_total{scope=\"user\"}"));
}

#[test]
fn erasing_a_session_takes_its_messages_and_their_facts_and_keeps_the_rest() {
    let model = ModelServer::start(Protocol::OpenAi);
    let app = app_with(&model, 1);
    let app_id = app.create_app("erasure");
    let user = app.create_user(&app_id, "someone");
    let path = format!("/v1/apps/{app_id}/users/{user}");
    let mut sessions = Vec::new();
    let mut messages: Vec<Vec<String>> = Vec::new();
    for (mark, said) in [
        ("FIRSTQZX", ["grows tomatoes", "waters them daily"]),
        ("SECONDWVY", ["plays the cello", "reads poetry at night"]),
    ] {
        let session = app.create_session(&app_id, &user);
        let stored = app.ok(app.post(
            &format!("{path}/sessions/{session}/messages/batch"),
            json!({ "messages": [
                { "content": format!("{mark} {}", said[0]), "is_user": true },
                { "content": format!("{mark} {}", said[1]), "is_user": true },
                { "content": format!("{mark} heard the assistant"), "is_user": false },
            ] }),
        ));
        let ids: Vec<String> = stored.as_array().unwrap().iter().map(id).collect();
        app.ok(app.post(
            &format!("{path}/metamessages"),
            json!({ "metamessage_type": "note", "content": format!("note on {mark}"),
                    "session_id": session, "message_id": ids[0] }),
        ));
        sessions.push(session);
        messages.push(ids);
    }
    let notes = id(&app.ok(app.post(&format!("{path}/collections"), json!({ "name": "notes" }))));
    for (mark, named) in [
        ("FIRSTQZX", &messages[0][1]),
        ("SECONDWVY", &messages[1][1]),
    ] {
        app.ok(app.post(
            &format!("{path}/collections/{notes}/documents"),
            json!({ "content": format!("{mark} has a garden"), "metadata": { "message_id": named } }),
        ));
    }
    // A document that names no message stays, whatever it says.
    app.ok(app.post(
        &format!("{path}/collections/{notes}/documents"),
        json!({ "content": "about FIRSTQZX, written by hand" }),
    ));
    wait_for_queue(&app, &app_id, &format!("user_id={user}"), 4);
    let facts_path = |c: &str| format!("{path}/collections/{c}/documents/list?size=100");
    let honcho = id(&app.ok(app.get(&format!("{path}/collections/name/honcho"))));
    let facts = |c: &str| -> Vec<String> {
        app.ok(app.post(&facts_path(c), json!({})))["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["content"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(facts(&honcho).len(), 4, "{:?}", facts(&honcho));
    // Warm the caches.
    let (_, found) = post(
        &app.base,
        &format!("{path}/messages/query"),
        json!({ "query": "FIRSTQZX tomatoes" }),
    );
    assert!(!found.as_array().unwrap().is_empty());
    let first = &sessions[0];
    let mut needles: Vec<&str> = vec![
        first.as_str(),
        "FIRSTQZX grows",
        "FIRSTQZX waters",
        "FIRSTQZX heard",
        "note on FIRSTQZX",
        "FIRSTQZX has",
    ];
    needles.extend(messages[0].iter().map(String::as_str));
    assert_eq!(
        tables_naming(&app, &needles),
        [
            "deriver_queue",
            "documents",
            "messages",
            "metamessages",
            "sessions"
        ]
        .map(String::from)
        .into()
    );

    let (status, body) = app.delete(&format!("{path}/sessions/{first}?erase=true"));
    assert_eq!(
        (status, body),
        (200, json!({ "message": "Session erased successfully" }))
    );

    assert_eq!(rows_naming(&app, &needles), vec![]);
    if !on_postgres() {
        let bytes = sqlite_bytes(&app);
        assert!(!holds(&bytes, "FIRSTQZX grows") && !holds(&bytes, "FIRSTQZX has"));
        assert!(holds(&bytes, "SECONDWVY plays"));
    }
    assert_eq!(
        app.get(&format!("{path}/sessions?session_id={first}")).0,
        404
    );
    assert_eq!(
        app.get(&format!(
            "{path}/sessions/{first}/messages/{}",
            messages[0][0]
        ))
        .0,
        404
    );
    // The user, its other session, its messages and facts, and the hand-written note stay.
    let second = &sessions[1];
    let page = app.ok(app.post(
        &format!("{path}/sessions/{second}/messages/list"),
        json!({}),
    ));
    assert_eq!(page["total"], 3);
    let mut kept = facts(&honcho);
    kept.sort();
    assert_eq!(
        kept,
        [
            "The user said: SECONDWVY plays the cello",
            "The user said: SECONDWVY reads poetry at night"
        ]
    );
    let mut notes_left = facts(&notes);
    notes_left.sort();
    assert_eq!(
        notes_left,
        ["SECONDWVY has a garden", "about FIRSTQZX, written by hand"]
    );
    let (_, found) = post(
        &app.base,
        &format!("{path}/messages/query"),
        json!({ "query": "FIRSTQZX tomatoes" }),
    );
    let found: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert!(
        found.iter().all(|c| c.starts_with("SECONDWVY")),
        "{found:?}"
    );
    // A soft delete still only deactivates.
    let (status, body) = app.delete(&format!("{path}/sessions/{second}"));
    assert_eq!(
        (status, body),
        (200, json!({ "message": "Session deleted successfully" }))
    );
    assert_eq!(
        app.ok(app.get(&format!("{path}/sessions?session_id={second}")))["is_active"],
        false
    );
    // Erasing again is a 404.
    let (status, body) = app.delete(&format!("{path}/sessions/{first}?erase=true"));
    assert_eq!(
        (status, body["detail"].as_str()),
        (404, Some("Session not found or does not belong to user"))
    );
    let (status, _) = app.delete(&format!("{path}/sessions/{second}?erase=maybe"));
    assert_eq!(status, 422);
}

#[test]
fn a_deriver_working_on_the_user_during_its_erasure_writes_nothing_back() {
    // Facts take a while: the erasure lands while items are being derived.
    let model = ModelServer::scripted(Protocol::OpenAi, |asked| match asked.role() {
        Role::Facts => match default_reply(asked) {
            Reply::Text(t) => Reply::Slow(Duration::from_millis(400), t),
            other => other,
        },
        _ => default_reply(asked),
    });
    let app = app_with(&model, 2);
    let app_id = app.create_app("erasure");
    let gone = app.create_user(&app_id, "RACINGQZX");
    let path = format!("/v1/apps/{app_id}/users/{gone}");
    let mut ids: Vec<String> = vec![gone.clone()];
    for s in 0..2 {
        let session = app.create_session(&app_id, &gone);
        let batch: Vec<Value> = (0..6)
            .map(|i| json!({ "content": format!("RACINGQZX fact {s} {i}"), "is_user": true }))
            .collect();
        let stored = app.ok(app.post(
            &format!("{path}/sessions/{session}/messages/batch"),
            json!({ "messages": batch }),
        ));
        ids.extend(stored.as_array().unwrap().iter().map(id));
        ids.push(session);
    }
    // Wait until workers hold both sessions' leases and have derived some facts.
    let started = Instant::now();
    loop {
        let status = app.ok(app.get(&format!("/v1/apps/{app_id}/deriver/status?user_id={gone}")));
        let leased = tables_naming(&app, &ids.iter().map(String::as_str).collect::<Vec<_>>());
        if status["done"].as_i64().unwrap() >= 1 && leased.contains("deriver_leases") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the deriver did not start: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(app.delete(&path).0, 204);
    // The workers' calls in flight are answered, and what the workers do with the answers (their
    // commits find no lease) is over by the time another user's message is derived below.
    let started = Instant::now();
    while model.answered() < model.asked().len() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "calls left unanswered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut needles: Vec<&str> = ids.iter().map(String::as_str).collect();
    needles.push("RACINGQZX");
    assert_eq!(rows_naming(&app, &needles), vec![]);
    // The workers go on with other users.
    let next = app.create_user(&app_id, "after");
    let session = app.create_session(&app_id, &next);
    app.ok(app.post(
        &format!("/v1/apps/{app_id}/users/{next}/sessions/{session}/messages"),
        json!({ "content": "I collect stamps", "is_user": true }),
    ));
    wait_for_queue(&app, &app_id, &format!("user_id={next}"), 1);
    // Both workers are idle again: neither is left with a result of the erased user's.
    let started = Instant::now();
    while app.ok(app.get(&format!("/v1/apps/{app_id}/deriver/status")))["in_progress"] != 0 {
        assert!(started.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(model.answered(), model.asked().len());
    assert_eq!(rows_naming(&app, &needles), vec![]);
}

#[test]
fn a_user_can_erase_itself_and_no_one_else_and_its_recorded_keys_are_revoked() {
    use honcho_domain::auth::Claims;
    use honcho_web::auth::Keys;
    let app = TestApp::spawn_with_auth(crate::auth::SECRET);
    let keys = Keys::new(crate::auth::SECRET);
    let admin = keys.admin_key();
    let send = |token: &str, method: &str, path: &str| app.send_as(Some(token), method, path, None);
    let (_, a) = app.send_as(Some(&admin), "POST", "/v1/apps", Some(r#"{"name": "a"}"#));
    let a = id(&a);
    let user = |name: &str| {
        let body = json!({ "name": name }).to_string();
        id(&app
            .send_as(
                Some(&admin),
                "POST",
                &format!("/v1/apps/{a}/users"),
                Some(&body),
            )
            .1)
    };
    let (alice, bob) = (user("alice"), user("bob"));
    let (_, session) = app.send_as(
        Some(&admin),
        "POST",
        &format!("/v1/apps/{a}/users/{alice}/sessions"),
        Some("{}"),
    );
    let session = id(&session);
    let (status, minted) = send(
        &admin,
        "POST",
        &format!("/v1/keys?app_id={a}&user_id={alice}"),
    );
    assert_eq!(status, 200);
    let alice_key = minted["key"].as_str().unwrap().to_string();
    let session_key = keys.mint(&Claims {
        se: Some(session.clone()),
        ..Claims::default()
    });
    let bob_path = format!("/v1/apps/{a}/users/{bob}");
    let alice_path = format!("/v1/apps/{a}/users/{alice}");
    assert_eq!(send(&alice_key, "DELETE", &bob_path).0, 401);
    assert_eq!(send(&session_key, "DELETE", &alice_path).0, 401);
    assert_eq!(send(&alice_key, "DELETE", &alice_path).0, 204);
    // Its recorded key is revoked, and names the erased user no more.
    let (status, body) = send(
        &alice_key,
        "GET",
        &format!("{alice_path}/sessions?session_id={session}"),
    );
    assert_eq!(
        (status, body["detail"].as_str()),
        (401, Some("JWT revoked"))
    );
    let (_, listed) = send(&admin, "GET", &format!("/v1/keys?app_id={a}"));
    let record = &listed["items"][0];
    assert_eq!(record["user_id"], "(erased)");
    assert!(record["revoked_at"].is_string(), "{record}");
    assert!(!listed.to_string().contains(&alice));
    // The admin key erases anyone; an unknown user is a 404.
    assert_eq!(send(&admin, "DELETE", &bob_path).0, 204);
    let (status, body) = send(&admin, "DELETE", &bob_path);
    assert_eq!(status, 404);
    assert_eq!(body["detail"], format!("User with ID '{bob}' not found"));
}

#[test]
fn the_command_line_erases_a_user_or_a_session_and_says_what_it_erased() {
    let app = TestApp::spawn();
    let s = app.session_path();
    for content in ["first", "second"] {
        app.ok(app.post(
            &s.messages(),
            json!({ "content": content, "is_user": true }),
        ));
    }
    let other = app.create_session(&s.app, &s.user);
    let env = [("DATABASE_URL", app.database_url())];
    let out = honcho(
        &[
            "erase",
            "--app-id",
            &s.app,
            "--user-id",
            &s.user,
            "--session-id",
            &s.session,
        ],
        &env,
    );
    succeeded(&out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "erased session {} of user {} of app {}: 0 users, 1 sessions, 2 messages, \
             0 metamessages, 0 collections, 0 documents, 0 queue items, 0 keys\n",
            s.session, s.user, s.app
        )
    );
    assert_eq!(
        app.get(&format!(
            "{}/sessions?session_id={}",
            s.user_path(),
            s.session
        ))
        .0,
        404
    );
    assert_eq!(
        app.get(&format!("{}/sessions?session_id={other}", s.user_path()))
            .0,
        200
    );
    let out = honcho(&["erase", "--app-id", &s.app, "--user-id", &s.user], &env);
    succeeded(&out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "erased user {} of app {}: 1 users, 1 sessions, 0 messages, 0 metamessages, \
             0 collections, 0 documents, 0 queue items, 0 keys\n",
            s.user, s.app
        )
    );
    let out = honcho(&["erase", "--app-id", &s.app, "--user-id", &s.user], &env);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().last(),
        Some(format!("honcho: User with ID '{}' not found", s.user).as_str())
    );
    // Each erasure is recorded (counts only); the refused one is not.
    let recorded = every_row(&app)
        .into_iter()
        .filter(|(t, _)| t == "erasures")
        .count();
    assert_eq!(recorded, 2);
}

#[test]
fn an_erasure_that_deadlocks_with_a_writer_runs_again() {
    // PostgreSQL only: SQLite has one writer at a time.
    if !on_postgres() {
        return;
    }
    use diesel::connection::SimpleConnection;
    // Messages are queued (a model is configured) but no worker takes them.
    let model = ModelServer::start(Protocol::OpenAi);
    let app = TestApp::spawn_with(Options {
        models: Some(model.models()),
        ..Options::default()
    });
    let s = app.session_path();
    app.ok(app.post(
        &s.messages(),
        json!({ "content": "DEADLOCKQZX", "is_user": true }),
    ));
    // A writer holding the session's queue items, as a deriver completing an item does...
    let mut writer = diesel::PgConnection::establish(app.database_url()).unwrap();
    writer
        .batch_execute(&format!(
            "BEGIN; SELECT id FROM deriver_queue WHERE session_id = '{}' FOR UPDATE",
            s.session
        ))
        .unwrap();
    // ...while the erasure, holding the user's row, waits for them...
    let base = app.base.clone();
    let path = s.user_path();
    let erasure = std::thread::spawn(move || {
        match ureq::request("DELETE", &format!("{base}{path}")).call() {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(s, _)) => s,
            Err(e) => panic!("{e}"),
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    // ...and then waits for the user's row (a summary's reference to it): PostgreSQL ends the
    // erasure, the first to wait, to break the deadlock; the writer goes on and commits.
    writer
        .batch_execute(&format!(
            "INSERT INTO metamessages (public_id, app_id, user_id, session_id, label, content, \
             metadata, created_at) VALUES ('deadlock-summary-1234', '{}', '{}', '{}', 'summary', \
             'DEADLOCKQZX summary', '{{}}', now()); COMMIT",
            s.app, s.user, s.session
        ))
        .unwrap();
    // The erasure ran again after the writer's commit, and took its summary too.
    assert_eq!(erasure.join().unwrap(), 204);
    assert_eq!(
        rows_naming(&app, &[s.user.as_str(), s.session.as_str(), "DEADLOCKQZX"]),
        vec![]
    );
}
