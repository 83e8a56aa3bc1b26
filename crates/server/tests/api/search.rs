//! Message search (one session, or every session of a user) and the session context, through HTTP
//! on a real database.

use crate::helpers::{detail, id, Honcho, TestApp};
use crate::insights::{fast_deriver, wait_for_queue};
use crate::model_server::{ModelServer, Protocol};
use honcho_models::{OpenAiConfig, OpenAiEmbedder, RetryPolicy};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::retrieval::TEXTS;
use honcho_domain::retrieval::RetrievalMode;

const QUERIES: [&str; 6] = [
    "What is the dog's name?",
    "Which instrument does Maya play?",
    "Where does her sister live?",
    "travel plans",
    "What does she drink?",
    "bicycle",
];

fn contents(found: &Value) -> Vec<String> {
    found
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {found}"))
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect()
}

/// Stores `texts` in the session in one batch (every other one from the user, `i` in metadata).
fn store(app: &TestApp, session_path: &str, texts: &[&str]) -> Vec<Value> {
    let messages: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| json!({ "content": t, "is_user": i % 2 == 0, "metadata": { "i": i } }))
        .collect();
    let stored = app.ok(app.post(
        &format!("{session_path}/messages/batch"),
        json!({ "messages": messages }),
    ));
    stored.as_array().unwrap().clone()
}

#[test]
fn message_search_ranks_as_documents_query_ranks_the_same_texts() {
    let app = TestApp::spawn();
    let s = app.session_path();
    store(&app, &s.session_path(), &TEXTS);
    let collection = id(&app.ok(app.post(&s.collections(), json!({ "name": "same" }))));
    let docs = format!("{}/{collection}/documents", s.collections());
    for t in TEXTS {
        app.ok(app.post(&docs, json!({ "content": t })));
    }
    let user_search = format!("{}/messages/query", s.user_path());
    let session_search = format!("{}/messages/query", s.session_path());
    for q in QUERIES {
        let documents = contents(
            &app.ok(app.post(&format!("{docs}/query"), json!({ "query": q, "top_k": 12 }))),
        );
        let in_session =
            contents(&app.ok(app.post(&session_search, json!({ "query": q, "top_k": 12 }))));
        let in_user = contents(&app.ok(app.post(&user_search, json!({ "query": q, "top_k": 12 }))));
        assert_eq!(in_session, documents, "{q}");
        assert_eq!(in_user, documents, "{q}");
    }
    let first =
        |q: &str| contents(&app.ok(app.post(&user_search, json!({ "query": q }))))[0].clone();
    assert_eq!(first("What is the dog's name?"), TEXTS[0]);
    assert_eq!(first("Where does her sister live?"), TEXTS[5]);
    // The default is ten results.
    let found = app.ok(app.post(&user_search, json!({ "query": "Maya" })));
    assert!(found.as_array().unwrap().len() <= 10);
    // Messages answer as v1.1.0's Message.
    let m = &app.ok(app.post(&session_search, json!({ "query": "cello", "top_k": 1 })))[0];
    let mut keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "app_id",
            "content",
            "created_at",
            "id",
            "is_user",
            "metadata",
            "session_id",
            "user_id"
        ]
    );
}

#[test]
fn user_search_spans_sessions_and_narrows_by_session_speaker_and_metadata() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let other = app.create_session(&s.app, &s.user);
    let other_path = format!("{}/sessions/{other}", s.user_path());
    store(&app, &s.session_path(), &TEXTS[..6]);
    store(&app, &other_path, &TEXTS[6..]);
    // An inactive session is searched too.
    app.ok(app.delete(&other_path));
    let search = format!("{}/messages/query", s.user_path());
    let kyoto = contents(&app.ok(app.post(&search, json!({ "query": "Kyoto trip", "top_k": 1 }))));
    assert_eq!(kyoto, [TEXTS[6]]);
    // Narrowed to the first session, Kyoto is not there.
    let narrowed = app.ok(app.post(
        &search,
        json!({ "query": "Kyoto trip", "session_ids": [s.session] }),
    ));
    assert!(narrowed
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["session_id"] == json!(s.session)));
    assert!(!contents(&narrowed).contains(&TEXTS[6].to_string()));
    // The session route reads its session only.
    let in_first = app.ok(app.post(
        &format!("{}/messages/query", s.session_path()),
        json!({ "query": "Biscuit bicycle" }),
    ));
    assert!(in_first
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["session_id"] == json!(s.session)));
    assert!(!in_first.as_array().unwrap().is_empty());
    // is_user: even positions were the user's.
    for is_user in [true, false] {
        let found = app.ok(app.post(
            &search,
            json!({ "query": "Maya Biscuit Ines recital", "is_user": is_user, "top_k": 100 }),
        ));
        let found = found.as_array().unwrap();
        assert!(!found.is_empty());
        assert!(
            found.iter().all(|m| m["is_user"] == json!(is_user)),
            "{found:?}"
        );
    }
    // Metadata containment, as messages/list filters.
    let found = app.ok(app.post(
        &search,
        json!({ "query": "Maya", "filter": { "i": 4 }, "top_k": 100 }),
    ));
    let mut found = contents(&found);
    found.sort();
    assert_eq!(found, [TEXTS[10], TEXTS[4]], "i = 4 in each session");
}

/// A user's day, their turns first and the assistant's replies after each, three of which address
/// the user by name.
pub const PRIYAS_DAY: [&str; 16] = [
    "Our greyhound Pickle sleeps on the sofa all day.",
    "Priya, that sounds lovely!",
    "I baked a lemon cake for my sister on Sunday.",
    "Lemon cake is a classic choice.",
    "The pharmacy was busy all week with flu jabs.",
    "Good morning, Priya! How was the weekend?",
    "Callum is away at a gig in Manchester.",
    "Live sound work keeps odd hours.",
    "I started climbing again at the wall in Leeds.",
    "Priya, you deserve a rest after that.",
    "My sister lives in Cardiff now.",
    "Cardiff is a lovely city by the sea.",
    "We are thinking about a trip to Kerala in April.",
    "April is a good month to travel there.",
    "The garden needs weeding before the frost.",
    "Autumn chores never end.",
];

/// A user named `name` with [`PRIYAS_DAY`] in one session; returns the paths of the user and of
/// the session.
pub fn priyas_day(app: &TestApp, name: &str) -> (String, String) {
    let app_id = app.create_app("app");
    let user = app.create_user(&app_id, name);
    let session = app.create_session(&app_id, &user);
    let user_path = format!("/v1/apps/{app_id}/users/{user}");
    let session_path = format!("{user_path}/sessions/{session}");
    store(app, &session_path, &PRIYAS_DAY);
    (user_path, session_path)
}

#[test]
fn a_question_naming_the_user_finds_what_they_said_before_replies_that_name_them() {
    let app = TestApp::spawn();
    let (user, session) = priyas_day(&app, "Priya Raman");
    for (question, answer) in [
        ("Which pet does Priya have?", PRIYAS_DAY[0]),
        ("What did Priya bake?", PRIYAS_DAY[2]),
        ("Where does Priya climb?", PRIYAS_DAY[8]),
    ] {
        // Every session's messages, and the session's own.
        for search in [&user, &session] {
            let body = json!({ "query": question, "top_k": 1 });
            let found = app.ok(app.post(&format!("{search}/messages/query"), body));
            assert_eq!(contents(&found), [answer], "{question}");
        }
    }
    // Renamed, a question by the new name does the same (the process knew the old one).
    app.ok(app.put(&user, json!({ "name": "Anjali Raman" })));
    let body = json!({ "query": "Which pet does Anjali have?", "top_k": 1 });
    let found = app.ok(app.post(&format!("{user}/messages/query"), body));
    assert_eq!(contents(&found), [PRIYAS_DAY[0]]);
}

#[test]
fn the_users_name_finds_their_messages_by_words_and_follows_a_rename() {
    let app = crate::retrieval::app_with(RetrievalMode::Lexical);
    let (user, _) = priyas_day(&app, "Priya Raman");
    let search = format!("{user}/messages/query");
    let found = |query: &str| {
        let mut found =
            contents(&app.ok(app.post(&search, json!({ "query": query, "top_k": 100 }))));
        found.sort();
        found
    };
    let theirs = |also: &[usize]| {
        let mut expected: Vec<String> = (0..PRIYAS_DAY.len())
            .filter(|i| i % 2 == 0 || also.contains(i))
            .map(|i| PRIYAS_DAY[i].to_string())
            .collect();
        expected.sort();
        expected
    };
    // Every message of the user's, and the replies that name her.
    assert_eq!(found("Priya"), theirs(&[1, 5, 9]));
    assert_eq!(found("Raman"), theirs(&[]));
    assert!(found("Anjali").is_empty());
    // Renamed, the user is found by the new name and no longer by the old one.
    app.ok(app.put(&user, json!({ "name": "Anjali Raman" })));
    assert_eq!(found("Anjali"), theirs(&[]));
    let mut replies: Vec<String> = [1, 5, 9]
        .iter()
        .map(|&i| PRIYAS_DAY[i].to_string())
        .collect();
    replies.sort();
    assert_eq!(found("Priya"), replies);
}

#[test]
fn search_refuses_bad_input_and_unknown_ids() {
    let app = TestApp::spawn();
    let s = app.session_path();
    store(&app, &s.session_path(), &TEXTS[..2]);
    let user_search = format!("{}/messages/query", s.user_path());
    let session_search = format!("{}/messages/query", s.session_path());
    let status = |path: &str, body: Value| app.post(path, body).0;
    for body in [
        json!({ "query": "" }),
        json!({ "query": "x".repeat(10_001) }),
        json!({ "query": "x", "top_k": 0 }),
        json!({ "query": "x", "top_k": 101 }),
        json!({ "query": 5 }),
        json!({ "top_k": 5 }),
        json!({ "query": "x", "is_user": "yes" }),
        json!({ "query": "x", "filter": [1] }),
    ] {
        assert_eq!(status(&user_search, body.clone()), 422, "{body}");
        assert_eq!(status(&session_search, body.clone()), 422, "{body}");
    }
    let many: Vec<String> = (0..101).map(|i| format!("s{i}")).collect();
    let (code, body) = app.post(&user_search, json!({ "query": "x", "session_ids": many }));
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "session_ids"]));
    let (code, body) = app.post(&user_search, json!({ "query": "x", "top_k": 101 }));
    assert_eq!(code, 422);
    assert_eq!(
        body["detail"][0]["msg"],
        "Input should be less than or equal to 100"
    );
    assert_eq!(
        status(&user_search, json!({ "query": "x".repeat(10_000) })),
        200
    );
    // Unknown user, session, and a session of another user.
    let stranger = app.create_user(&s.app, "stranger");
    let theirs = app.create_session(&s.app, &stranger);
    let (code, body) = app.post(
        &format!("/v1/apps/{}/users/nobody/messages/query", s.app),
        json!({ "query": "x" }),
    );
    assert_eq!((code, body), detail(404, "User with ID 'nobody' not found"));
    let (code, body) = app.post(
        &format!("{}/sessions/nothing/messages/query", s.user_path()),
        json!({ "query": "x" }),
    );
    assert_eq!(
        (code, body),
        detail(404, "Session not found or does not belong to user")
    );
    assert_eq!(
        status(
            &user_search,
            json!({ "query": "x", "session_ids": [theirs] })
        ),
        404
    );
    assert_eq!(
        status(
            &format!("{}/sessions/{theirs}/messages/query", s.user_path()),
            json!({ "query": "x" })
        ),
        404
    );
    // A query of stop words only finds nothing by words; vectors still rank.
    let found = app.ok(app.post(&user_search, json!({ "query": "the of and" })));
    assert!(found.as_array().unwrap().len() <= 2);
}

#[test]
fn a_message_is_found_right_after_its_batch_through_another_process() {
    let app = TestApp::spawn();
    let other = Honcho::start(app.database_url());
    let s = app.session_path();
    let search = format!("{}/messages/query", s.user_path());
    // The other process holds a copy of the user's messages before each batch.
    for (round, word) in ["zeppelin", "quokka", "marimba", "fjord", "origami"]
        .iter()
        .enumerate()
    {
        let before = other.post(&search, &json!({ "query": word })).unwrap();
        assert!(!contents(&before).iter().any(|c| c.contains(word)));
        let texts = [
            format!("round {round}: nothing special"),
            format!("round {round}: I saw a {word} today"),
        ];
        let session = match round % 2 {
            0 => s.session.clone(),
            _ => app.create_session(&s.app, &s.user),
        };
        let path = format!("{}/sessions/{session}", s.user_path());
        store(&app, &path, &[texts[0].as_str(), texts[1].as_str()]);
        let after = other
            .post(&search, &json!({ "query": word, "top_k": 1 }))
            .unwrap();
        assert_eq!(contents(&after), [texts[1].clone()], "round {round}");
    }
    // Single messages too, and a clone's copies.
    app.ok(app.post(
        &s.messages(),
        json!({ "content": "the kookaburra laughed", "is_user": true }),
    ));
    let found = other
        .post(&search, &json!({ "query": "kookaburra", "top_k": 1 }))
        .unwrap();
    assert_eq!(contents(&found), ["the kookaburra laughed"]);
    app.ok(app.get(&format!("{}/clone", s.session_path())));
    let found = other
        .post(&search, &json!({ "query": "kookaburra", "top_k": 2 }))
        .unwrap();
    assert_eq!(
        contents(&found),
        ["the kookaburra laughed", "the kookaburra laughed"]
    );
}

/// `n` messages of `hello world` (2 tokens each in o200k_base) numbered in their metadata.
fn hello_messages(app: &TestApp, session_path: &str, n: usize) -> Vec<Value> {
    let messages: Vec<Value> = (0..n)
        .map(|i| json!({ "content": "hello world", "is_user": i % 2 == 0, "metadata": { "n": i } }))
        .collect();
    app.ok(app.post(
        &format!("{session_path}/messages/batch"),
        json!({ "messages": messages }),
    ))
    .as_array()
    .unwrap()
    .clone()
}

#[test]
fn context_fills_the_budget_with_the_latest_messages_oldest_first() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let stored = hello_messages(&app, &s.session_path(), 30);
    let context = |query: &str| app.ok(app.get(&format!("{}/context{query}", s.session_path())));
    let c = context("?tokens=21");
    assert_eq!(c["tokens"], 20);
    let messages = c["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 10);
    assert_eq!(
        messages[0]["id"], stored[20]["id"],
        "the latest ten, oldest first"
    );
    assert_eq!(messages[9]["id"], stored[29]["id"]);
    assert_eq!(c["summary"], Value::Null, "no summary was written");
    assert_eq!(c["facts"], json!([]));
    // Everything fits in the default budget.
    let c = context("");
    assert_eq!(
        (
            c["messages"].as_array().unwrap().len(),
            c["tokens"].as_u64()
        ),
        (30, Some(60))
    );
    // A budget smaller than one message holds none.
    let c = context("?tokens=1");
    assert_eq!(
        (
            c["messages"].as_array().unwrap().len(),
            c["tokens"].as_u64()
        ),
        (0, Some(0))
    );
    // A query without facts (no deriver) adds none.
    let c = context("?tokens=7&query=greeting");
    assert_eq!(c["facts"], json!([]));
    assert_eq!(c["messages"].as_array().unwrap().len(), 3);
    // Messages are counted in tokens, not characters or words.
    let empty = app.create_session(&s.app, &s.user);
    let path = format!("{}/sessions/{empty}", s.user_path());
    app.ok(app.post(
        &format!("{path}/messages"),
        json!({ "content": "antidisestablishmentarianism", "is_user": true }),
    ));
    let c = app.ok(app.get(&format!("{path}/context")));
    let tokens = c["tokens"].as_u64().unwrap();
    assert!((2..=10).contains(&tokens), "{tokens}");
}

#[test]
fn context_refuses_bad_parameters_and_unknown_sessions() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let path = format!("{}/context", s.session_path());
    for query in [
        "?tokens=0",
        "?tokens=100001",
        "?tokens=many",
        "?summary=perhaps",
        "?query=",
    ] {
        let (code, body) = app.get(&format!("{path}{query}"));
        assert_eq!(code, 422, "{query}: {body}");
        assert!(body["detail"][0]["loc"][0] == "query", "{body}");
    }
    assert_eq!(app.get(&format!("{path}?tokens=100000")).0, 200);
    let (code, body) = app.get(&format!("{}/sessions/nothing/context", s.user_path()));
    assert_eq!(
        (code, body),
        detail(404, "Session not found or does not belong to user")
    );
    let stranger = app.create_user(&s.app, "stranger");
    let theirs = app.create_session(&s.app, &stranger);
    assert_eq!(
        app.get(&format!("{}/sessions/{theirs}/context", s.user_path()))
            .0,
        404
    );
}

#[test]
fn context_adds_the_newest_summary_and_the_facts_for_a_query() {
    let server = ModelServer::start(Protocol::OpenAi);
    let app = TestApp::spawn_with(crate::helpers::Options {
        models: Some(server.models()),
        deriver: Some(fast_deriver(1)),
        ..Default::default()
    });
    let s = app.session_path();
    let mut texts: Vec<String> = (0..24)
        .map(|i| format!("filler message number {i} about nothing"))
        .collect();
    texts[3] = "I keep bees on my roof in Lisbon".into();
    let messages: Vec<Value> = texts
        .iter()
        .map(|t| json!({ "content": t, "is_user": true }))
        .collect();
    app.ok(app.post(
        &format!("{}/messages/batch", s.session_path()),
        json!({ "messages": messages }),
    ));
    wait_for_queue(&app, &s.app, &format!("session_id={}", s.session), 24);
    let path = format!("{}/context", s.session_path());
    // Everything fits: no summary.
    let c = app.ok(app.get(&path));
    assert_eq!(c["summary"], Value::Null);
    assert_eq!(c["messages"].as_array().unwrap().len(), 24);
    // A small budget: the short summary written at the 20th message, then the latest messages.
    let c = app.ok(app.get(&format!("{path}?tokens=60")));
    let summary = &c["summary"];
    assert_eq!(summary["kind"], "short", "{c}");
    assert!(
        summary["content"] == "a conversation of 20 messages.",
        "{c}"
    );
    let tokens = c["tokens"].as_u64().unwrap();
    assert!(tokens <= 60, "{tokens}");
    assert!(!c["messages"].as_array().unwrap().is_empty());
    let c = app.ok(app.get(&format!("{path}?tokens=60&summary=false")));
    assert_eq!(c["summary"], Value::Null);
    // Facts for a query, best first, within a quarter of the budget.
    let c = app.ok(app.get(&format!("{path}?tokens=400&query=Who%20keeps%20bees%3F")));
    let facts = c["facts"].as_array().unwrap();
    assert_eq!(
        facts[0], "The user said: I keep bees on my roof in Lisbon",
        "{c}"
    );
    assert!(c["tokens"].as_u64().unwrap() <= 400);
}

/// An OpenAI-compatible embeddings server: while `up` is false it fails with 500; otherwise a text
/// mentioning bees or honey gets one direction, any other text another.
fn embedding_service() -> (String, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let up = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let (is_up, count) = (up.clone(), calls.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            count.fetch_add(1, Ordering::SeqCst);
            let body = crate::helpers::read_request(&stream);
            let (status, answer) = if is_up.load(Ordering::SeqCst) {
                let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let data: Vec<Value> = request["input"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let t = t.as_str().unwrap_or("").to_lowercase();
                        let v = match t.contains("bees") || t.contains("honey") {
                            true => [1.0, 0.0, 0.0, 0.0],
                            false => [0.0, 1.0, 0.0, 0.0],
                        };
                        json!({ "index": i, "embedding": v })
                    })
                    .collect();
                ("200 OK", json!({ "data": data }).to_string())
            } else {
                (
                    "500 Internal Server Error",
                    r#"{"error": {"message": "down"}}"#.to_string(),
                )
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (url, up, calls)
}

#[test]
fn with_a_remote_embedder_writes_never_wait_and_messages_are_embedded_afterwards() {
    let (url, up, calls) = embedding_service();
    let mut config = OpenAiConfig::new("sk-test");
    config.base_url = url;
    config.model = "fake-embedder".into();
    config.dimensions = 4;
    config.timeout = Duration::from_secs(2);
    config.retry = RetryPolicy {
        max_attempts: 1,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(10),
        max_retry_after: Duration::from_millis(10),
    };
    let app = TestApp::spawn_with_embedder(Arc::new(OpenAiEmbedder::new(config).unwrap()));
    let s = app.session_path();
    // The service is down: the writes succeed without it.
    store(
        &app,
        &s.session_path(),
        &["I keep bees on my roof", "The weather is grey"],
    );
    app.ok(app.post(
        &s.messages(),
        json!({ "content": "Tomorrow I fly to Oslo", "is_user": true }),
    ));
    let search = format!("{}/messages/query", s.user_path());
    // Found by words at once, the answer saying the query could not be embedded.
    let answer = ureq::post(&format!("{}{search}", app.base))
        .send_json(json!({ "query": "bees", "top_k": 1 }))
        .unwrap();
    assert_eq!(answer.header("x-honcho-ranked-by"), Some("words"));
    let found: Value = answer.into_json().unwrap();
    assert_eq!(contents(&found), ["I keep bees on my roof"]);
    // By meaning only once the service is back and the worker embedded them.
    let honey = || contents(&app.ok(app.post(&search, json!({ "query": "honey", "top_k": 1 }))));
    assert!(honey().is_empty(), "no word in common, no vector yet");
    assert!(calls.load(Ordering::SeqCst) > 0);
    up.store(true, Ordering::SeqCst);
    let started = Instant::now();
    while honey().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the messages were not embedded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(honey(), ["I keep bees on my roof"]);
}

#[test]
fn messages_with_another_embedders_vectors_are_found_by_words_until_reembedded() {
    let app = TestApp::spawn();
    let s = app.session_path();
    store(&app, &s.session_path(), &TEXTS);
    // As a remote embedder stored them before the server moved to the shipped one.
    app.execute_sql(
        "UPDATE messages SET embedder = 'old-model', dimensions = 2, \
         embedding = '\\x0000803f0000803f'::bytea",
        "UPDATE messages SET embedder = 'old-model', dimensions = 2, \
         embedding = X'0000803F0000803F'",
    );
    let other = Honcho::start(app.database_url());
    let search = format!("{}/messages/query", s.user_path());
    let by_words = other
        .post(&search, &json!({ "query": "Kyoto", "top_k": 3 }))
        .unwrap();
    assert_eq!(contents(&by_words), [TEXTS[6]]);
    assert_eq!(
        crate::helpers::reembed(&app, 5),
        "re-embedded 0 documents and embedded 12 messages with model2vec:potion-base-8M"
    );
    // The other process sees the new vectors: every message is a candidate again.
    let all = other
        .post(&search, &json!({ "query": "Kyoto", "top_k": 12 }))
        .unwrap();
    assert_eq!(contents(&all).len(), 12);
    assert_eq!(contents(&all)[0], TEXTS[6]);
}

#[test]
fn a_user_with_more_messages_than_one_read_is_searched_whole() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let other = app.create_session(&s.app, &s.user);
    // 2,600 messages over two sessions, interleaved batch by batch; the copy reads 2,000 at a time.
    for b in 0..26 {
        let session = if b % 2 == 0 { &s.session } else { &other };
        let messages: Vec<Value> = (0..100)
            .map(|i| json!({ "content": format!("note {} of batch {b}", b * 100 + i), "is_user": true }))
            .collect();
        app.ok(app.post(
            &format!("{}/sessions/{session}/messages/batch", s.user_path()),
            json!({ "messages": messages }),
        ));
    }
    let search = format!("{}/messages/query", s.user_path());
    for (word, expected) in [
        ("0", "note 0 of batch 0"),
        ("2599", "note 2599 of batch 25"),
    ] {
        let found = app.ok(app.post(&search, json!({ "query": word, "top_k": 1, "filter": {} })));
        assert_eq!(contents(&found), [expected]);
    }
    let all = app.ok(app.post(&search, json!({ "query": "note", "top_k": 100 })));
    assert_eq!(all.as_array().unwrap().len(), 100);
}
