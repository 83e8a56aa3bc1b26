//! The deriver's queue under the operator's control: failed messages listed with their error, run
//! again in their session's order, and derived once; the queue's statuses written in one place.

use crate::auth::honcho;
use crate::helpers::{id, succeeded, user_messages, TestApp};
use crate::insights::{app_with, facts_of, wait_for_queue};
use crate::model_server::{default_reply, ModelServer, Protocol, Reply, Role};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The contents of the user's facts.
fn facts(app: &TestApp, user_path: &str) -> Vec<String> {
    facts_of(app, user_path)
        .iter()
        .map(|d| d["content"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_failed_message_is_listed_with_its_error_and_a_retry_derives_it_once_in_order() {
    // The model cannot answer for the poisoned message until told otherwise, and takes its time
    // with the slow one (so that a retry lands while it is being derived).
    let poisoned = Arc::new(AtomicBool::new(true));
    let flag = poisoned.clone();
    let model = ModelServer::scripted(Protocol::OpenAi, move |asked| {
        let message = asked.new_message().to_string();
        match asked.role() {
            Role::Facts if message.contains("POISON") && flag.load(Ordering::SeqCst) => {
                Reply::Text("I would rather not say.".into())
            }
            Role::Facts if message.contains("SLOW") => match default_reply(asked) {
                Reply::Text(t) => Reply::Slow(Duration::from_millis(1500), t),
                other => other,
            },
            _ => default_reply(asked),
        }
    });
    let app = app_with(&model, 1);
    let s = app.session_path();
    let contents = [
        "alpha one apples",
        "POISON bravo two bananas",
        "charlie three cherries",
        "SLOW delta four dates",
        "echo five elderberries",
    ];
    let ids = user_messages(&app, &s.messages(), &contents);
    let failed_path = format!("/v1/apps/{}/deriver/failed", s.app);
    // The poisoned message is parked after its last attempt; the session moves on.
    let started = Instant::now();
    let failed = loop {
        let page = app.ok(app.get(&failed_path));
        if page["total"] == 1 {
            break page;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{page}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let item = &failed["items"][0];
    assert_eq!(item["message_id"], ids[1].as_str());
    assert_eq!(item["session_id"], s.session.as_str());
    assert_eq!(item["user_id"], s.user.as_str());
    assert_eq!(item["attempts"], 3);
    let error = item["error"].as_str().unwrap();
    assert!(error.contains("I would rather not say"), "{error}");
    assert!(item["failed_at"].as_str().unwrap().ends_with('Z'));
    let status = app.ok(app.get(&format!(
        "/v1/apps/{}/deriver/status?session_id={}",
        s.app, s.session
    )));
    assert_eq!(status["failed"], 1);
    assert_eq!(status["oldest_failure_error"], error);
    assert_eq!(status["oldest_failure_at"], item["failed_at"]);
    // The other filters narrow it.
    let other_session = app.create_session(&s.app, &s.user);
    let narrowed = app.ok(app.get(&format!("{failed_path}?session_id={other_session}")));
    assert_eq!(narrowed["total"], 0);
    let mine = app.ok(app.get(&format!("{failed_path}?user_id={}", s.user)));
    assert_eq!(mine["total"], 1);

    // While the slow message is being derived (the session's queue is past the failed one), the
    // model is mended and the failed message retried: it goes before the session's messages not
    // derived yet, and the attempt in progress is done again after it.
    let started = Instant::now();
    while !model
        .asked()
        .iter()
        .any(|a| a.new_message().contains("SLOW"))
    {
        assert!(started.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(10));
    }
    poisoned.store(false, Ordering::SeqCst);
    let retry = format!("/v1/apps/{}/deriver/retry", s.app);
    let answer = app.ok(app.post(&retry, json!({ "session_id": s.session })));
    assert_eq!(answer, json!({ "retried": 1 }));
    assert_eq!(app.ok(app.get(&failed_path))["total"], 0);
    let status = wait_for_queue(&app, &s.app, &format!("session_id={}", s.session), 5);
    assert_eq!(
        (status["done"].as_i64(), status["failed"].as_i64()),
        (Some(5), Some(0))
    );
    assert_eq!(status["oldest_failure_at"], Value::Null);

    // Facts once each: the attempt cut short by the retry stored nothing.
    let mut stored_facts = facts(&app, &s.user_path());
    stored_facts.sort();
    let mut expected: Vec<String> = contents
        .iter()
        .map(|c| format!("The user said: {c}"))
        .collect();
    expected.sort();
    assert_eq!(stored_facts, expected);
    // In order: after the retry the model was asked for the poisoned message, then the slow one
    // again, then the last one.
    let asked: Vec<String> = model
        .asked()
        .iter()
        .filter(|a| a.role() == Role::Facts)
        .map(|a| a.new_message().to_string())
        .collect();
    let last_poison = asked.iter().rposition(|m| m.contains("POISON")).unwrap();
    let last_slow = asked.iter().rposition(|m| m.contains("SLOW")).unwrap();
    let last_echo = asked.iter().rposition(|m| m.contains("echo")).unwrap();
    assert!(
        last_poison < last_slow && last_slow < last_echo,
        "{asked:#?}"
    );
    assert_eq!(
        asked.iter().filter(|m| m.contains("SLOW")).count(),
        2,
        "{asked:#?}"
    );

    // Nothing more to retry; bad bodies are 422s.
    assert_eq!(app.ok(app.post(&retry, json!({}))), json!({ "retried": 0 }));
    let ids_over: Vec<String> = (0..1001).map(|i| format!("m{i}")).collect();
    let (status, body) = app.post(&retry, json!({ "message_ids": ids_over }));
    assert_eq!(status, 422);
    assert_eq!(
        body["detail"][0]["loc"],
        json!(["body", "message_ids"]),
        "{body}"
    );
    assert!(body["detail"][0]["msg"]
        .as_str()
        .unwrap()
        .contains("at most 1000"));
    assert_eq!(app.post(&retry, json!({ "sesion_id": "x" })).0, 422);
}

#[test]
fn the_command_line_lists_and_retries_failed_messages() {
    let poisoned = Arc::new(AtomicBool::new(true));
    let flag = poisoned.clone();
    let model = ModelServer::scripted(Protocol::OpenAi, move |asked| match asked.role() {
        Role::Facts if flag.load(Ordering::SeqCst) => Reply::Status(400),
        _ => default_reply(asked),
    });
    let app = app_with(&model, 1);
    let s = app.session_path();
    let message = id(&app.ok(app.post(
        &s.messages(),
        json!({ "content": "I sail on weekends", "is_user": true }),
    )));
    wait_for_queue(&app, &s.app, &format!("session_id={}", s.session), 1);
    let env = [("DATABASE_URL", app.database_url())];
    let out = honcho(&["deriver", "failed", "--app-id", &s.app], &env);
    succeeded(&out);
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert_eq!(
        lines[0],
        "message_id\tsession_id\tuser_id\tattempts\tfailed_at\terror"
    );
    let fields: Vec<&str> = lines[1].split('\t').collect();
    assert_eq!(&fields[..4], [message.as_str(), &s.session, &s.user, "3"]);
    assert!(fields[5].contains("400"), "{listed}");
    poisoned.store(false, Ordering::SeqCst);
    let out = honcho(
        &[
            "deriver",
            "retry",
            "--app-id",
            &s.app,
            "--message-id",
            &message,
        ],
        &env,
    );
    succeeded(&out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "queued 1 failed message again (running deriver workers take them up)\n"
    );
    // This process's workers find it by polling (another process queued it).
    let status = wait_for_queue(&app, &s.app, &format!("session_id={}", s.session), 1);
    assert_eq!(
        (status["done"].as_i64(), status["failed"].as_i64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        facts(&app, &s.user_path()),
        ["The user said: I sail on weekends"]
    );
    let out = honcho(&["deriver", "failed"], &env);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "message_id\tsession_id\tuser_id\tattempts\tfailed_at\terror\n"
    );
}

/// The queue's statuses are written as text in one place (`honcho_domain::queue::QueueStatus`,
/// and the migrations' constraint): no other source file spells one as a string.
#[test]
fn no_queue_status_is_spelled_outside_its_mapping() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mapping = std::path::Path::new("crates/domain/src/queue.rs");
    let mut found = Vec::new();
    // The server's crates (xtask is a client: it reads the API's JSON fields).
    let mut dirs = vec![root.join("crates")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                // Tests speak of statuses as the API shows them.
                if !path.ends_with("tests") && !path.ends_with("target") {
                    dirs.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with(mapping) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                for status in ["\"pending\"", "\"processing\"", "\"done\"", "\"failed\""] {
                    if line.contains(status) {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
                for status in ["'pending'", "'processing'", "'done'", "'failed'"] {
                    if line.contains(status) {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(found.is_empty(), "status literals:\n{}", found.join("\n"));
}
