//! `honcho import`: a source server's whole object graph, read through its API by the `honcho`
//! binary, written into another database (this run's engine), then compared list by list through
//! a server over that database.

use crate::helpers::{id, FreshDatabase, Honcho, TestApp};
use serde_json::{json, Value};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Metadata with nested JSON and integers beyond 64 bits.
fn rich(i: usize) -> Value {
    serde_json::from_str(&format!(
        r#"{{"i": {i}, "nested": {{"list": [1, {{"x": "y"}}, null], "big": 123456789012345678901234567890}}, "flag": true, "float": 0.5}}"#
    ))
    .unwrap()
}

/// The source's apps, each with users, sessions (one inactive), messages, metamessages of each
/// kind (the user's, a session's, a message's), collections and documents.
fn fill(source: &TestApp, messages_per_session: &[usize]) -> Vec<String> {
    let mut apps = Vec::new();
    for (a, users) in [
        ("import-a", &["alice", "bob", "carol"][..]),
        ("import-b", &["dave"][..]),
    ] {
        let app =
            id(&source.ok(source.post("/v1/apps", json!({ "name": a, "metadata": rich(0) }))));
        for (u, user_name) in users.iter().enumerate() {
            let users_path = format!("/v1/apps/{app}/users");
            let user = id(&source.ok(source.post(
                &users_path,
                json!({ "name": user_name, "metadata": rich(u) }),
            )));
            let user_path = format!("{users_path}/{user}");
            if *user_name == "carol" {
                continue; // a user with nothing
            }
            let sessions: Vec<String> = messages_per_session
                .iter()
                .enumerate()
                .map(|(s, count)| {
                    let session = id(&source.ok(source.post(
                        &format!("{user_path}/sessions"),
                        json!({ "metadata": rich(s) }),
                    )));
                    let path = format!("{user_path}/sessions/{session}/messages");
                    let mut sent = 0;
                    while sent < *count {
                        let n = (count - sent).min(100);
                        let batch: Vec<Value> = (sent..sent + n)
                            .map(|i| {
                                json!({
                                    "content": format!("{user_name} said line {i} of session {s} about kayaks and tides"),
                                    "is_user": i % 2 == 0,
                                    "metadata": if i % 7 == 0 { rich(i) } else { json!({}) },
                                })
                            })
                            .collect();
                        source.ok(source.post(&format!("{path}/batch"), json!({ "messages": batch })));
                        sent += n;
                    }
                    session
                })
                .collect();
            // The second session is inactive.
            if sessions.len() > 1 {
                let (status, _) = source.delete(&format!("{user_path}/sessions/{}", sessions[1]));
                assert_eq!(status, 200);
            }
            let first = &sessions[0];
            let page = source.ok(source.post(
                &format!("{user_path}/sessions/{first}/messages/list?size=1"),
                json!({}),
            ));
            let message = id(&page["items"][0]);
            for body in [
                json!({ "metamessage_type": "note", "content": "likes the sea" }),
                json!({ "label": "summary", "content": "a short summary", "session_id": first, "metadata": rich(1) }),
                json!({ "label": "thought", "content": "about the first line", "session_id": first, "message_id": message }),
            ] {
                source.ok(source.post(&format!("{user_path}/metamessages"), body));
            }
            let collection = id(&source.ok(source.post(
                &format!("{user_path}/collections"),
                json!({ "name": format!("notes of {user_name}"), "metadata": rich(2) }),
            )));
            for d in 0..12 {
                source.ok(source.post(
                    &format!("{user_path}/collections/{collection}/documents"),
                    json!({ "content": format!("{user_name} keeps document {d} about lighthouse number {d}"), "metadata": rich(d) }),
                ));
            }
        }
        apps.push(app);
    }
    apps
}

fn call(base: &str, method: &str, path: &str, body: Option<&Value>) -> Value {
    let request = ureq::request(method, &format!("{base}{path}"));
    let answer = match body {
        Some(b) => request.send_json(b.clone()),
        None => request.call(),
    };
    answer
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
        .into_json()
        .unwrap()
}

/// Every item of a list, all pages (of 100).
fn all(base: &str, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    for page in 1.. {
        let answer = call(
            base,
            "POST",
            &format!("{path}?page={page}&size=100"),
            Some(&json!({})),
        );
        let got = answer["items"].as_array().unwrap().clone();
        let done = got.len() < 100;
        items.extend(got);
        if done {
            break;
        }
    }
    items
}

/// What every list of the API answers about `apps`, in the order it answers it.
fn dump(base: &str, apps: &[String]) -> Value {
    let apps: Vec<Value> = apps
        .iter()
        .map(|app| {
            let users: Vec<Value> = all(base, &format!("/v1/apps/{app}/users/list"))
                .into_iter()
                .map(|user| {
                    let path = format!("/v1/apps/{app}/users/{}", id(&user));
                    let sessions: Vec<Value> = all(base, &format!("{path}/sessions/list"))
                        .into_iter()
                        .map(|s| {
                            let messages =
                                all(base, &format!("{path}/sessions/{}/messages/list", id(&s)));
                            json!({ "session": s, "messages": messages })
                        })
                        .collect();
                    let collections: Vec<Value> = all(base, &format!("{path}/collections/list"))
                        .into_iter()
                        .map(|c| {
                            let documents =
                                all(base, &format!("{path}/collections/{}/documents/list", id(&c)));
                            json!({ "collection": c, "documents": documents })
                        })
                        .collect();
                    json!({
                        "user": user,
                        "sessions": sessions,
                        "metamessages": all(base, &format!("{path}/metamessages/list")),
                        "collections": collections,
                    })
                })
                .collect();
            json!({ "app": call(base, "GET", &format!("/v1/apps?app_id={app}"), None), "users": users })
        })
        .collect();
    Value::Array(apps)
}

/// A query of the first user's first collection of `app` finds the document it names.
fn assert_document_found(base: &str, app: &str) {
    let users = all(base, &format!("/v1/apps/{app}/users/list"));
    let user_path = format!("/v1/apps/{app}/users/{}", id(&users[0]));
    let collection = id(&all(base, &format!("{user_path}/collections/list"))[0]);
    let found = call(
        base,
        "POST",
        &format!("{user_path}/collections/{collection}/documents/query"),
        Some(&json!({ "query": "lighthouse number 7", "top_k": 1 })),
    );
    assert_eq!(
        found[0]["content"],
        "alice keeps document 7 about lighthouse number 7"
    );
}

/// Where `a` and `b` first differ (a JSON path and both values), or `None`.
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, &format!("{at}[{i}]"))),
        (Value::Object(x), Value::Object(y)) if x.len() == y.len() => {
            x.iter().find_map(|(k, v)| match y.get(k) {
                Some(w) => first_difference(v, w, &format!("{at}.{k}")),
                None => Some(format!("{at}.{k}: missing on the target")),
            })
        }
        _ if a == b => None,
        _ => Some(format!("{at}: {} != {}", cut(a), cut(b))),
    }
}

fn cut(v: &Value) -> String {
    v.to_string().chars().take(400).collect()
}

/// The two dumps are the same JSON.
fn assert_same(source: &Value, target: &Value) {
    if let Some(d) = first_difference(source, target, "") {
        panic!("the target differs from the source at {d}");
    }
}

/// `honcho import --from FROM ARGS` into `target`, started (not waited for).
fn start_import(target: &str, from: &str, args: &[&str]) -> std::process::Child {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_honcho"))
        .args(["import", "--from", from])
        .args(args)
        .current_dir(dir.path())
        .env("DATABASE_URL", target)
        .env("EMBEDDING_PROVIDER", "local")
        .env("LOG_LEVEL", "warn")
        .env_remove("USE_AUTH")
        .env_remove("HONCHO_IMPORT_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `honcho import`, run to its end.
fn import(target: &str, from: &str, args: &[&str]) -> Output {
    start_import(target, from, args).wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The summary's row for `kind` (`messages`, ...): read, written, present, differs, overwritten,
/// conflicts, failed.
fn row(out: &Output, kind: &str) -> Vec<u64> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} row in {}", text(out)));
    line.split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect()
}

const KINDS: [&str; 7] = [
    "apps",
    "users",
    "sessions",
    "messages",
    "metamessages",
    "collections",
    "documents",
];

#[test]
fn an_import_copies_every_record_with_its_ids_times_and_order_and_a_second_run_writes_nothing() {
    let source = TestApp::spawn();
    let apps = fill(&source, &[600, 450, 5]);
    let target = FreshDatabase::new(None);

    let dry = import(&target.url, &source.base, &["--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry));
    if !crate::helpers::on_postgres() {
        assert!(
            !std::path::Path::new(&target.url).exists(),
            "a dry run creates no database"
        );
    }
    assert_eq!(
        row(&dry, "messages")[..2],
        [3 * 1055, 3 * 1055],
        "{}",
        text(&dry)
    );

    let first = import(&target.url, &source.base, &["--concurrency", "3"]);
    assert!(first.status.success(), "{}", text(&first));
    for kind in KINDS {
        let r = row(&first, kind);
        assert_eq!(
            r[0],
            r[1],
            "{kind}: everything read is written\n{}",
            text(&first)
        );
    }
    assert_eq!(row(&first, "messages")[1], 3 * 1055);

    let server = Honcho::start(&target.url);
    assert_same(&dump(&source.base, &apps), &dump(&server.base, &apps));

    // Documents are found by their words and by the target's vectors.
    assert_document_found(&server.base, &apps[0]);

    let second = import(&target.url, &source.base, &[]);
    assert!(second.status.success(), "{}", text(&second));
    for kind in KINDS {
        let r = row(&second, kind);
        assert_eq!(
            r[1],
            0,
            "{kind}: a second run writes nothing\n{}",
            text(&second)
        );
        assert_eq!(
            r[0],
            r[2],
            "{kind}: everything read is present\n{}",
            text(&second)
        );
    }
    drop(server);
    let server = Honcho::start(&target.url);
    assert_same(&dump(&source.base, &apps), &dump(&server.base, &apps));
}

/// Messages stored in the database at `url` (0 before its tables exist).
fn count_messages(url: &str) -> i64 {
    use diesel::{Connection, RunQueryDsl};
    let count = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT count(*) FROM messages)",
    ));
    let counted = if crate::helpers::on_postgres() {
        diesel::PgConnection::establish(url)
            .ok()
            .and_then(|mut c| count.get_result(&mut c).ok())
    } else if std::path::Path::new(url).exists() {
        diesel::SqliteConnection::establish(url)
            .ok()
            .and_then(|mut c| count.get_result(&mut c).ok())
    } else {
        None
    };
    counted.unwrap_or(0)
}

/// The target's messages, per session (read through a server over it).
fn stored_messages(target: &str, apps: &[String]) -> Vec<(String, usize)> {
    let server = Honcho::start(target);
    let dump = dump(&server.base, apps);
    let mut counts = Vec::new();
    for app in dump.as_array().unwrap() {
        for user in app["users"].as_array().unwrap() {
            for s in user["sessions"].as_array().unwrap() {
                counts.push((id(&s["session"]), s["messages"].as_array().unwrap().len()));
            }
        }
    }
    counts
}

#[test]
fn an_import_killed_half_way_leaves_whole_batches_and_a_second_run_completes_it() {
    let source = TestApp::spawn();
    let per_session = [700, 700, 700];
    let apps = fill(&source, &per_session);
    let total = 3 * 700 * 3;
    let target = FreshDatabase::new(None);
    let mut child = start_import(&target.url, &source.base, &["--concurrency", "1"]);
    // Killed once its first batches are stored.
    let started = Instant::now();
    while count_messages(&target.url) < 200 {
        if child.try_wait().unwrap().is_some() {
            panic!(
                "the import ended before it was killed\n{}",
                text(&child.wait_with_output().unwrap())
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "nothing was imported in two minutes"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let after_kill = stored_messages(&target.url, &apps);
    let stored: usize = after_kill.iter().map(|(_, n)| n).sum();
    assert!(stored < total, "the import ended before it was killed");
    for (session, n) in &after_kill {
        assert!(
            n % 100 == 0 || *n == 700,
            "session {session} holds {n} messages: not whole batches"
        );
    }
    let rerun = import(&target.url, &source.base, &[]);
    assert!(rerun.status.success(), "{}", text(&rerun));
    assert_eq!(row(&rerun, "messages")[1] as usize, total - stored);
    let server = Honcho::start(&target.url);
    assert_same(&dump(&source.base, &apps), &dump(&server.base, &apps));
}

#[test]
fn a_name_taken_on_the_target_is_a_conflict_and_a_record_that_differs_is_reported_or_overwritten() {
    let source = TestApp::spawn();
    let apps = fill(&source, &[5]);
    let target = FreshDatabase::new(None);
    let server = Honcho::start(&target.url);
    let taken = id(&server
        .post("/v1/apps", &json!({ "name": "import-a" }))
        .unwrap());
    drop(server);

    let out = import(&target.url, &source.base, &[]);
    assert!(
        !out.status.success(),
        "a conflict is a failure\n{}",
        text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&apps[0]) && stderr.contains(&taken) && stderr.contains("conflict"),
        "the conflict names both ids\n{}",
        text(&out)
    );
    assert_eq!(row(&out, "apps")[..2], [2, 1]);
    assert_eq!(row(&out, "apps")[5], 1);
    // The conflicting app's subtree is skipped; the other app is imported whole.
    assert_eq!(row(&out, "users")[0], 1, "{}", text(&out));
    let server = Honcho::start(&target.url);
    assert_same(
        &dump(&source.base, &apps[1..]),
        &dump(&server.base, &apps[1..]),
    );
    assert!(all(&server.base, &format!("/v1/apps/{taken}/users/list")).is_empty());

    // A message changed on the target is reported, and kept...
    let dave = all(&server.base, &format!("/v1/apps/{}/users/list", apps[1]));
    let user_path = format!("/v1/apps/{}/users/{}", apps[1], id(&dave[0]));
    let sessions = all(&server.base, &format!("{user_path}/sessions/list"));
    let messages_path = format!("{user_path}/sessions/{}/messages", id(&sessions[0]));
    let message = id(&all(&server.base, &format!("{messages_path}/list"))[2]);
    call(
        &server.base,
        "PUT",
        &format!("{messages_path}/{message}"),
        Some(&json!({ "metadata": { "changed": "on the target" } })),
    );
    drop(server);
    let out = import(&target.url, &source.base, &["--app", "import-b"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(row(&out, "messages")[3], 1, "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&message));
    let server = Honcho::start(&target.url);
    assert_ne!(
        dump(&source.base, &apps[1..]),
        dump(&server.base, &apps[1..])
    );
    drop(server);
    // ...unless the run overwrites.
    let out = import(
        &target.url,
        &source.base,
        &["--app", "import-b", "--overwrite"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(row(&out, "messages")[4], 1, "{}", text(&out));
    let server = Honcho::start(&target.url);
    assert_same(
        &dump(&source.base, &apps[1..]),
        &dump(&server.base, &apps[1..]),
    );
}

/// A server answering every request with `status` and `body`.
fn answering(status: u16, body: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            use std::io::Write;
            crate::helpers::read_request(&stream);
            let _ = write!(
                &stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    base
}

#[test]
fn a_source_that_cannot_be_read_fails_with_one_line_before_anything_is_written() {
    let source = crate::helpers::TestApp::spawn_with_auth("import-secret");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let not_honcho = answering(200, r#"{"openapi": "3.1.0", "paths": {}}"#);
    let no_document = answering(404, r#"{"detail": "Not Found"}"#);
    let cases: [(&str, Vec<&str>, &str); 5] = [
        (&closed, vec![], "cannot be reached"),
        (
            &source.base,
            vec!["--api-key", "wrong"],
            "refused the API key (401",
        ),
        (&not_honcho, vec![], "not a Honcho v1.1.0 API"),
        (&no_document, vec![], "is this a Honcho server?"),
        (
            &source.base,
            vec!["--api-key", "wrong", "--app", "x"],
            "refused the API key (401",
        ),
    ];
    for (from, args, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        let target = FreshDatabase::new(Some(dir.path().join("target.db")));
        let out = import(&target.url, from, &args);
        assert!(!out.status.success(), "{from}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "one line: {}", text(&out));
        assert!(
            stderr.contains(says),
            "{from}: expected {says:?}: {}",
            text(&out)
        );
        if !crate::helpers::on_postgres() {
            assert!(!dir.path().join("target.db").exists(), "nothing is written");
        }
        assert_eq!(count_messages(&target.url), 0);
    }
}

/// A proxy to the server at `base` that answers 502 to the first `fail` requests whose path
/// contains `matching` (and forwards every other request).
fn flaky_proxy(base: &str, matching: String, fail: usize) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    let (base, failed) = (base.to_string(), Arc::new(AtomicUsize::new(0)));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (base, matching, failed) = (base.clone(), matching.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                loop {
                    let mut first = String::new();
                    if reader.read_line(&mut first).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = first.split_whitespace();
                    let (method, path) = (
                        parts.next().unwrap().to_string(),
                        parts.next().unwrap().to_string(),
                    );
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let (status, answer) = if path.contains(&matching)
                        && failed.fetch_add(1, Ordering::SeqCst) < fail
                    {
                        (502, r#"{"detail":"the upstream is down"}"#.to_string())
                    } else {
                        let request = ureq::request(&method, &format!("{base}{path}"))
                            .set("content-type", "application/json");
                        let sent = if body.is_empty() {
                            request.call()
                        } else {
                            request.send_bytes(&body)
                        };
                        match sent {
                            Ok(r) => (r.status(), r.into_string().unwrap()),
                            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
                            Err(e) => (599, e.to_string()),
                        }
                    };
                    let _ = write!(
                        out,
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                }
            });
        }
    });
    proxy
}

#[test]
fn a_source_answering_5xx_is_retried_and_then_reported_per_list_while_the_rest_is_imported() {
    let source = TestApp::spawn();
    let apps = fill(&source, &[150, 20]);
    // Two 502s on message pages: retried, nothing lost.
    let target = FreshDatabase::new(None);
    let proxy = flaky_proxy(&source.base, "/messages/list".into(), 2);
    let out = import(&target.url, &proxy, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let server = Honcho::start(&target.url);
    assert_same(&dump(&source.base, &apps), &dump(&server.base, &apps));
    drop(server);

    // One session's messages always 502: reported, and everything else is imported.
    let users = all(&source.base, &format!("/v1/apps/{}/users/list", apps[0]));
    let user_path = format!("/v1/apps/{}/users/{}", apps[0], id(&users[0]));
    let broken = id(&all(&source.base, &format!("{user_path}/sessions/list"))[0]);
    let target = FreshDatabase::new(None);
    let proxy = flaky_proxy(&source.base, format!("{broken}/messages/list"), usize::MAX);
    let out = import(&target.url, &proxy, &["--concurrency", "2"]);
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&broken) && stderr.contains("502"),
        "the failure names the session and the status\n{}",
        text(&out)
    );
    // 150 + 20 messages for each of three users, less the broken session's 150.
    assert_eq!(row(&out, "messages")[1], 3 * 170 - 150, "{}", text(&out));
    // The metamessage pointing at one of the broken session's messages is not written; the
    // others are.
    assert_eq!(
        row(&out, "metamessages")[1..],
        [8, 0, 0, 0, 0, 1],
        "{}",
        text(&out)
    );
    assert!(
        stderr.contains("which is not on the target"),
        "{}",
        text(&out)
    );
    assert_eq!(row(&out, "documents")[1], 36, "{}", text(&out));
}

#[test]
fn skip_embedding_leaves_documents_found_by_words_and_derive_queues_the_messages() {
    let source = TestApp::spawn();
    let apps = fill(&source, &[30]);
    let target = FreshDatabase::new(None);
    let out = import(&target.url, &source.base, &["--skip-embedding", "--derive"]);
    assert!(out.status.success(), "{}", text(&out));
    let server = Honcho::start(&target.url);
    assert_same(&dump(&source.base, &apps), &dump(&server.base, &apps));
    // Each imported message waits for the deriver (a server with a model derives them).
    for (app, messages) in [(&apps[0], 60), (&apps[1], 30)] {
        let status = call(
            &server.base,
            "GET",
            &format!("/v1/apps/{app}/deriver/status"),
            None,
        );
        assert_eq!(status["pending"], messages, "{status}");
    }
    // Documents without vectors are found by their words.
    assert_document_found(&server.base, &apps[0]);
    drop(server);
    // Without --derive nothing is queued.
    let target = FreshDatabase::new(None);
    assert!(import(&target.url, &source.base, &[]).status.success());
    let server = Honcho::start(&target.url);
    let status = call(
        &server.base,
        "GET",
        &format!("/v1/apps/{}/deriver/status", apps[0]),
        None,
    );
    assert_eq!(status["pending"], 0, "{status}");
}

#[test]
fn a_source_with_keys_is_read_with_an_admin_key_or_with_an_apps_own_key() {
    use honcho_domain::auth::Claims;
    let source = TestApp::spawn_with_auth("import-secret");
    let keys = honcho_web::auth::Keys::new("import-secret");
    let admin = keys.mint(&Claims::admin());
    let mut apps = Vec::new();
    for name in ["keyed-one", "keyed-two"] {
        let body = json!({ "name": name }).to_string();
        let (status, app) = source.send_as(Some(&admin), "POST", "/v1/apps", Some(&body));
        assert_eq!(status, 200, "{app}");
        apps.push(id(&app));
    }
    let target = FreshDatabase::new(None);
    let out = import(&target.url, &source.base, &["--api-key", &admin]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(row(&out, "apps")[..2], [2, 2], "{}", text(&out));
    // A key of one app cannot list the apps: it imports its own.
    let app_key = keys.mint(&Claims {
        ap: Some(apps[1].clone()),
        ..Claims::default()
    });
    let target = FreshDatabase::new(None);
    let out = import(&target.url, &source.base, &["--api-key", &app_key]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(row(&out, "apps")[..2], [1, 1], "{}", text(&out));
    let server = Honcho::start(&target.url);
    let app = call(
        &server.base,
        "GET",
        &format!("/v1/apps?app_id={}", apps[1]),
        None,
    );
    assert_eq!(app["name"], "keyed-two");
}

#[test]
fn the_sources_facts_and_summaries_come_along_into_the_protected_collection() {
    use crate::model_server::{ModelServer, Protocol};
    let model = ModelServer::start(Protocol::OpenAi);
    // A source whose deriver stored a fact (in the user's `honcho` collection) from a message.
    let (source, s, _) = crate::insights::app_with_a_fact(&model);
    let facts_there = all(&source.base, &format!("{}/collections/list", s.user_path()));
    let facts = facts_there
        .iter()
        .find(|c| c["name"] == "honcho")
        .expect("the source's deriver made the protected collection");
    let documents = format!("{}/collections/{}/documents/list", s.user_path(), id(facts));
    assert!(
        !all(&source.base, &documents).is_empty(),
        "the source holds a fact"
    );

    let target = FreshDatabase::new(None);
    let out = import(&target.url, &source.base, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let server = Honcho::start(&target.url);
    let apps = [s.app.clone()];
    assert_same(&dump(&source.base, &apps), &dump(&server.base, &apps));
    // On the target it is the user's protected collection: the API may not rename it.
    let renamed = ureq::put(&format!(
        "{}{}/collections/{}",
        server.base,
        s.user_path(),
        id(facts)
    ))
    .send_json(json!({ "name": "mine now" }));
    let status = match renamed {
        Ok(answer) => answer.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    };
    assert!(
        (400..500).contains(&status),
        "renamed the protected collection: {status}"
    );
}
