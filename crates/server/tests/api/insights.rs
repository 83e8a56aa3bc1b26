//! Insights end to end, over a real database, against the model server of `model_server`: the
//! deriver (facts, summaries, retries, disabled sessions, status) and `chat` (plain, lists,
//! streamed, failures, both provider protocols).

use crate::helpers::{id, Options, TestApp};
use crate::model_server::{default_reply, ModelServer, Protocol, Reply, Role};
use serde_json::{json, Value};
use std::io::Read;
use std::time::{Duration, Instant};

pub fn fast_deriver(workers: usize) -> honcho_insights::DeriverSettings {
    honcho_insights::DeriverSettings {
        workers,
        max_attempts: 3,
        lease: Duration::from_secs(5),
        poll: Duration::from_millis(50),
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_millis(200),
        name: "test".into(),
    }
}

/// A server asking `server`'s models, with `workers` deriver workers (none: messages are queued
/// and stay so).
pub fn app_with(server: &ModelServer, workers: usize) -> TestApp {
    TestApp::spawn_with(Options {
        models: Some(server.models()),
        deriver: (workers > 0).then(|| fast_deriver(workers)),
        ..Options::default()
    })
}

/// Waits until the queue of `scope` (a query such as `session_id=...`) has nothing open and
/// `finished` items done or failed; returns the status.
pub fn wait_for_queue(app: &TestApp, app_id: &str, scope: &str, finished: i64) -> Value {
    let started = Instant::now();
    loop {
        let status = app.ok(app.get(&format!("/v1/apps/{app_id}/deriver/status?{scope}")));
        let open = status["pending"].as_i64().unwrap() + status["in_progress"].as_i64().unwrap();
        let closed = status["done"].as_i64().unwrap() + status["failed"].as_i64().unwrap();
        if open == 0 && closed >= finished {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the queue did not drain: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Message contents with words of their own (so that no two facts are near-duplicates).
pub fn distinct_words(i: usize) -> String {
    format!("alpha{i} bravo{i} charlie{i} delta{i}")
}

/// The user's facts (documents of its protected collection).
pub fn facts_of(app: &TestApp, user_path: &str) -> Vec<Value> {
    let collection = app.ok(app.get(&format!("{user_path}/collections/name/honcho")));
    let page = app.ok(app.post(
        &format!(
            "{user_path}/collections/{}/documents/list?size=100",
            id(&collection)
        ),
        json!({}),
    ));
    page["items"].as_array().unwrap().clone()
}

fn metamessages(app: &TestApp, user_path: &str, label: &str) -> Vec<Value> {
    let page = app.ok(app.post(
        &format!("{user_path}/metamessages/list?size=100"),
        json!({ "label": label }),
    ));
    page["items"].as_array().unwrap().clone()
}

#[test]
fn sixty_messages_yield_facts_three_short_summaries_and_one_long() {
    let server = ModelServer::start(Protocol::OpenAi);
    let app = app_with(&server, 2);
    let s = app.session_path();
    let batch: Vec<Value> = (0..60)
        .map(|i| json!({ "content": distinct_words(i), "is_user": i % 2 == 0 }))
        .collect();
    let stored = app.ok(app.post(
        &format!("{}/messages/batch", s.session_path()),
        json!({ "messages": batch }),
    ));
    let status = wait_for_queue(&app, &s.app, &format!("session_id={}", s.session), 60);
    assert_eq!(status["done"], 60, "{status}");
    assert_eq!(status["failed"], 0);
    assert_eq!(status["oldest_pending_age_seconds"], Value::Null);

    // One fact per user message, tied to it; none from the assistant's messages.
    let facts = facts_of(&app, &s.user_path());
    assert_eq!(facts.len(), 30, "{facts:#?}");
    for (i, fact) in facts.iter().enumerate() {
        let message = &stored[i * 2];
        assert_eq!(fact["metadata"], json!({ "message_id": message["id"] }));
        assert_eq!(
            fact["content"],
            format!("The user said: {}", message["content"].as_str().unwrap())
        );
    }
    // Facts were asked for in message order.
    let asked: Vec<String> = server
        .asked()
        .iter()
        .filter(|a| a.role() == Role::Facts)
        .map(|a| a.new_message().to_string())
        .collect();
    let expected: Vec<String> = (0..60).step_by(2).map(distinct_words).collect();
    assert_eq!(asked, expected);

    let short = metamessages(&app, &s.user_path(), "honcho_chat_summary_short");
    let long = metamessages(&app, &s.user_path(), "honcho_chat_summary_long");
    assert_eq!(short.len(), 3, "{short:#?}");
    assert_eq!(long.len(), 1, "{long:#?}");
    for (n, summary) in short.iter().enumerate() {
        assert_eq!(summary["message_id"], stored[20 * n + 19]["id"]);
        assert_eq!(summary["session_id"], json!(s.session));
        assert_eq!(
            summary["metadata"],
            json!({ "message_count": 20, "summary_type": "SHORT" })
        );
        assert_eq!(summary["content"], "a conversation of 20 messages.");
    }
    assert_eq!(long[0]["message_id"], stored[59]["id"]);
    assert_eq!(
        long[0]["metadata"],
        json!({ "message_count": 60, "summary_type": "LONG" })
    );
    assert_eq!(long[0]["content"], "a conversation of 60 messages.");
    // The third short summary was seeded by the new long one.
    let seeded = server
        .asked()
        .into_iter()
        .filter(|a| a.role() == Role::ShortSummary)
        .nth(2)
        .unwrap();
    assert!(
        seeded.user.contains("a conversation of 60 messages."),
        "{}",
        seeded.user
    );
}

#[test]
fn without_a_model_or_with_the_deriver_disabled_nothing_is_queued() {
    let plain = TestApp::spawn();
    let s = plain.session_path();
    plain.ok(plain.post(
        &format!("{}/messages", s.session_path()),
        json!({ "content": "hello", "is_user": true }),
    ));
    let status = plain.ok(plain.get(&format!("/v1/apps/{}/deriver/status", s.app)));
    assert_eq!(
        status,
        json!({ "pending": 0, "in_progress": 0, "failed": 0, "done": 0, "oldest_pending_age_seconds": null,
                "oldest_failure_at": null, "oldest_failure_error": null })
    );

    // Queued but not worked on (no workers): pending, with an age.
    let server = ModelServer::start(Protocol::OpenAi);
    let app = app_with(&server, 0);
    let s = app.session_path();
    let disabled = app.ok(app.post(
        &format!("/v1/apps/{}/users/{}/sessions", s.app, s.user),
        json!({ "metadata": { "deriver_disabled": true } }),
    ));
    let disabled_path = format!(
        "/v1/apps/{}/users/{}/sessions/{}",
        s.app,
        s.user,
        id(&disabled)
    );
    app.ok(app.post(
        &format!("{disabled_path}/messages/batch"),
        json!({ "messages": [{ "content": "a", "is_user": true }, { "content": "b", "is_user": true }] }),
    ));
    app.ok(app.post(
        &format!("{}/messages", s.session_path()),
        json!({ "content": "hello", "is_user": true }),
    ));
    // A batch is queued as one row and counted as its messages.
    app.ok(app.post(
        &format!("{}/messages/batch", s.session_path()),
        json!({ "messages": [{ "content": "c", "is_user": true }, { "content": "d", "is_user": false }] }),
    ));
    std::thread::sleep(Duration::from_millis(100));
    let status = app.ok(app.get(&format!("/v1/apps/{}/deriver/status", s.app)));
    assert_eq!(status["pending"], 3, "{status}");
    assert_eq!(status["done"], 0, "{status}");
    assert!(status["oldest_pending_age_seconds"].as_f64().unwrap() > 0.0);
    for scope in [
        format!("session_id={}", id(&disabled)),
        "user_id=nobody".to_string(),
    ] {
        let status = app.ok(app.get(&format!("/v1/apps/{}/deriver/status?{scope}", s.app)));
        assert_eq!(status["pending"], 0, "{scope}: {status}");
    }
    let other_app = app.create_app("other");
    let status = app.ok(app.get(&format!("/v1/apps/{other_app}/deriver/status")));
    assert_eq!(status["pending"], 0);
    assert!(server.asked().is_empty());
}

#[test]
fn failing_items_retry_then_park_with_their_error_and_the_session_moves_on() {
    // "poison" always gets unreadable output; "flaky" fails once with a 500 storm, then works.
    let flaky_seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = flaky_seen.clone();
    let server = ModelServer::scripted(Protocol::OpenAi, move |asked| {
        let message = asked.new_message();
        if asked.role() == Role::Facts && message.starts_with("poison") {
            return Reply::Text("I cannot answer in JSON, sorry.".into());
        }
        if asked.role() == Role::Facts
            && message.starts_with("flaky")
            && seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 4
        {
            return Reply::Status(500);
        }
        default_reply(asked)
    });
    let app = app_with(&server, 1);
    let s = app.session_path();
    let messages: Vec<Value> = ["poison pill", "flaky one", "fine three"]
        .iter()
        .map(|c| json!({ "content": c, "is_user": true }))
        .collect();
    app.ok(app.post(
        &format!("{}/messages/batch", s.session_path()),
        json!({ "messages": messages }),
    ));
    let status = wait_for_queue(&app, &s.app, &format!("session_id={}", s.session), 3);
    assert_eq!(status["failed"], 1, "{status}");
    assert_eq!(status["done"], 2, "{status}");
    let facts: Vec<String> = facts_of(&app, &s.user_path())
        .iter()
        .map(|f| f["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        facts,
        vec!["The user said: flaky one", "The user said: fine three"]
    );
    let poison_calls = server
        .asked()
        .iter()
        .filter(|a| a.role() == Role::Facts && a.new_message().starts_with("poison"))
        .count();
    assert_eq!(poison_calls, 3, "tried max_attempts times");
}

#[test]
fn chat_without_a_model_is_405_naming_the_settings_and_checks_its_body_first() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let chat = format!("{}/chat", s.session_path());
    let (status, body) = app.post(&chat, json!({ "queries": "What does the user like?" }));
    assert_eq!(status, 405);
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.starts_with("Feature is disabled"), "{detail}");
    assert!(
        detail.contains("LLM_BASE_URL") && detail.contains("LLM_MODEL"),
        "{detail}"
    );

    for (body, kind, loc) in [
        (json!({}), "missing", json!(["body", "queries"])),
        (
            json!({ "queries": [] }),
            "too_short",
            json!(["body", "queries"]),
        ),
        (
            json!({ "queries": 5 }),
            "string_type",
            json!(["body", "queries", "str"]),
        ),
        (
            json!({ "queries": ["a", 5] }),
            "string_type",
            json!(["body", "queries", "str"]),
        ),
        (
            json!({ "queries": "x".repeat(10_001) }),
            "string_too_long",
            json!(["body", "queries"]),
        ),
        (
            json!({ "queries": vec!["q"; 26] }),
            "too_long",
            json!(["body", "queries"]),
        ),
        (
            json!({ "queries": "a\u{0}b" }),
            "value_error",
            json!(["body", "queries"]),
        ),
        (
            json!({ "queries": "a", "stream": "sometimes" }),
            "bool_parsing",
            json!(["body", "stream"]),
        ),
    ] {
        let (status, answer) = app.post(&chat, body.clone());
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["detail"][0]["type"], kind, "{body}: {answer}");
        assert_eq!(answer["detail"][0]["loc"], loc, "{body}: {answer}");
    }
    let (_, answer) = app.post(&chat, json!({ "queries": 5 }));
    assert_eq!(answer["detail"][1]["type"], "list_type", "{answer}");
    let (_, answer) = app.post(&chat, json!({ "queries": ["a", 5] }));
    assert_eq!(
        answer["detail"][1]["loc"],
        json!(["body", "queries", "list[str]", 1])
    );
}

/// A session with a derived fact ("The user said: I keep bees on my roof") and some conversation.
pub fn app_with_a_fact(server: &ModelServer) -> (TestApp, crate::helpers::Scope, Vec<Value>) {
    let app = app_with(server, 1);
    let s = app.session_path();
    let stored = app.ok(app.post(
        &format!("{}/messages/batch", s.session_path()),
        json!({ "messages": [
            { "content": "I keep bees on my roof", "is_user": true },
            { "content": "How lovely! How many hives?", "is_user": false },
        ] }),
    ));
    wait_for_queue(&app, &s.app, &format!("session_id={}", s.session), 2);
    (app, s, stored.as_array().unwrap().clone())
}

fn check_answer_prompt(server: &ModelServer, question: &str) {
    let answer = server
        .asked()
        .into_iter()
        .rev()
        .find(|a| a.role() == Role::Answer)
        .expect("the answer model was asked");
    assert!(
        answer
            .user
            .contains("- The user said: I keep bees on my roof"),
        "{}",
        answer.user
    );
    assert!(answer
        .user
        .contains("user: I keep bees on my roof\nassistant: How lovely! How many hives?"));
    assert!(answer.user.ends_with(&format!("Question: {question}")));
}

#[test]
fn chat_answers_from_facts_and_conversation_and_keeps_the_representation() {
    for protocol in [Protocol::OpenAi, Protocol::Anthropic] {
        let server = ModelServer::start(protocol);
        let (app, s, stored) = app_with_a_fact(&server);
        let chat = format!("{}/chat", s.session_path());
        let answer = app.ok(app.post(&chat, json!({ "queries": "What are the user's hobbies?" })));
        let content = answer["content"].as_str().unwrap();
        assert!(content.starts_with("ANSWER from context:"), "{content}");
        assert_eq!(answer.as_object().unwrap().len(), 1);
        check_answer_prompt(&server, "What are the user's hobbies?");
        // The query model was asked for search phrases.
        assert!(server.asked().iter().any(|a| a.role() == Role::Queries));

        // A list of queries is answered together.
        app.ok(app.post(
            &chat,
            json!({ "queries": ["Does the user keep animals?", "Where?"], "stream": false }),
        ));
        check_answer_prompt(&server, "Does the user keep animals?\nWhere?");

        let representations = metamessages(&app, &s.user_path(), "honcho_user_representation");
        assert_eq!(representations.len(), 2, "{protocol:?}");
        assert_eq!(representations[0]["message_id"], stored[0]["id"]);
        assert_eq!(representations[0]["session_id"], json!(s.session));
        let kept = representations[0]["content"].as_str().unwrap();
        assert!(
            kept.contains("- The user said: I keep bees on my roof"),
            "{kept}"
        );
    }
}

#[test]
fn chat_with_unusable_search_phrases_searches_with_the_question_alone() {
    // Phrases the model words badly, then a model that fails to give any.
    for refuses in [false, true] {
        let server = ModelServer::scripted(Protocol::OpenAi, move |asked| match asked.role() {
            Role::Queries if refuses => Reply::Status(400),
            Role::Queries => Reply::Text("bees? roofs? who knows".into()),
            _ => default_reply(asked),
        });
        let (app, s, _) = app_with_a_fact(&server);
        app.ok(app.post(
            &format!("{}/chat", s.session_path()),
            json!({ "queries": "Does the user keep bees on a roof?" }),
        ));
        check_answer_prompt(&server, "Does the user keep bees on a roof?");
    }
}

#[test]
fn chat_for_an_unknown_user_or_session_is_404() {
    let server = ModelServer::start(Protocol::OpenAi);
    let app = app_with(&server, 0);
    let s = app.session_path();
    let (status, body) = app.post(
        &format!(
            "/v1/apps/{}/users/nobody/sessions/{}/chat",
            s.app, s.session
        ),
        json!({ "queries": "hi" }),
    );
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["detail"], "User with ID 'nobody' not found");
    let (status, body) = app.post(
        &format!("{}/sessions/nothing/chat", s.user_path()),
        json!({ "queries": "hi", "stream": true }),
    );
    assert_eq!(status, 404, "{body}");
    assert!(server.asked().is_empty());
}

/// Sends a chat request with `stream: true` and returns the status, the content type and a reader
/// of the body.
fn stream_chat(app: &TestApp, path: &str, queries: &str) -> (u16, String, Box<dyn Read>) {
    let answer = ureq::post(&format!("{}{path}", app.base))
        .timeout(Duration::from_secs(30))
        .send_json(json!({ "queries": queries, "stream": true }));
    let response = match answer {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let content_type = response.header("content-type").unwrap_or("").to_string();
    (response.status(), content_type, response.into_reader())
}

#[test]
fn a_streamed_answer_arrives_in_pieces_before_it_is_complete() {
    for protocol in [Protocol::OpenAi, Protocol::Anthropic] {
        let server = ModelServer::scripted(protocol, |asked| match asked.role() {
            Role::Answer if asked.stream => Reply::Pieces(
                vec!["The user ".into(), "keeps ".into(), "bees.".into()],
                Duration::from_millis(400),
            ),
            _ => default_reply(asked),
        });
        let (app, s, _) = app_with_a_fact(&server);
        let started = Instant::now();
        let (status, content_type, mut body) =
            stream_chat(&app, &format!("{}/chat", s.session_path()), "Hobbies?");
        assert_eq!(status, 200);
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        let mut first = [0u8; 64];
        let n = body.read(&mut first).unwrap();
        let first_at = started.elapsed();
        let mut rest = String::new();
        body.read_to_string(&mut rest).unwrap();
        let all_at = started.elapsed();
        let text = format!("{}{rest}", String::from_utf8_lossy(&first[..n]));
        assert_eq!(
            text, "The user keeps bees.",
            "{protocol:?}: raw text, no framing"
        );
        assert!(
            all_at - first_at >= Duration::from_millis(600),
            "{protocol:?}: the first piece ({first_at:?}) came well before the end ({all_at:?})"
        );
        check_answer_prompt(&server, "Hobbies?");
    }
}

#[test]
fn a_provider_failing_before_the_first_token_is_an_error_status_not_a_200() {
    for (reply, expected) in [(Reply::Status(500), 502), (Reply::Status(401), 503)] {
        let r = reply.clone();
        let server = ModelServer::scripted(Protocol::OpenAi, move |asked| match asked.role() {
            Role::Answer => r.clone(),
            _ => default_reply(asked),
        });
        let (app, s, _) = app_with_a_fact(&server);
        let chat = format!("{}/chat", s.session_path());
        let (status, body) = app.post(&chat, json!({ "queries": "Hobbies?" }));
        assert_eq!(status, expected, "{body}");
        // The provider's words and address are for the log, not the client.
        let fixed = match expected {
            502 => "language model provider failed",
            _ => "language model provider unavailable",
        };
        assert_eq!(body, json!({ "detail": fixed }));
        let (status, content_type, mut reader) = stream_chat(&app, &chat, "Hobbies?");
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        assert_eq!(status, expected, "{text}");
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body, json!({ "detail": fixed }));
        // A failed answer keeps no representation.
        let kept = metamessages(&app, &s.user_path(), "honcho_user_representation");
        assert!(kept.is_empty(), "{kept:#?}");
    }
}

#[test]
fn a_stream_cut_after_the_first_piece_is_not_a_complete_answer() {
    // The model's stream stops without its end: the client must see a broken body.
    let server = ModelServer::scripted(Protocol::OpenAi, |asked| match asked.role() {
        Role::Answer if asked.stream => Reply::Cut(vec!["The user".into()]),
        _ => default_reply(asked),
    });
    let (app, s, _) = app_with_a_fact(&server);
    let (status, _, mut reader) = stream_chat(&app, &format!("{}/chat", s.session_path()), "Q?");
    assert_eq!(status, 200);
    let mut first = [0u8; 8];
    reader.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"The user");
    let mut rest = Vec::new();
    let end = reader.read_to_end(&mut rest);
    assert!(
        end.is_err(),
        "the body ended cleanly after {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn chat_finds_what_the_user_said_when_asked_by_their_name() {
    let server = ModelServer::start(Protocol::OpenAi);
    let app = app_with(&server, 0);
    let (user, _) = crate::search::priyas_day(&app, "Priya Raman");
    let session = id(&app.ok(app.post(&format!("{user}/sessions"), json!({}))));
    let answer = app.ok(app.post(
        &format!("{user}/sessions/{session}/chat"),
        json!({ "queries": "Which pet does Priya have?" }),
    ));
    let prompt = answer["content"].as_str().unwrap();
    let first = format!(
        "Earlier messages that may be relevant:\n- user: {}\n",
        crate::search::PRIYAS_DAY[0]
    );
    assert!(prompt.contains(&first), "{prompt}");
}

#[test]
fn chat_reads_what_the_user_said_in_another_session() {
    let server = ModelServer::start(Protocol::OpenAi);
    // No deriver: there are no facts, only messages.
    let app = app_with(&server, 0);
    let s = app.session_path();
    app.ok(app.post(
        &format!("{}/messages/batch", s.session_path()),
        json!({ "messages": [
            { "content": "I keep bees on my roof in Lisbon", "is_user": true },
            { "content": "How lovely! How many hives?", "is_user": false },
            { "content": "Three hives, and the honey is great", "is_user": true },
        ] }),
    ));
    let other = app.create_session(&s.app, &s.user);
    let other_path = format!("{}/sessions/{other}", s.user_path());
    app.ok(app.post(
        &format!("{other_path}/messages"),
        json!({ "content": "Any idea for a weekend project?", "is_user": true }),
    ));
    let answer = app.ok(app.post(
        &format!("{other_path}/chat"),
        json!({ "queries": "Does the user keep bees?" }),
    ));
    let prompt = answer["content"].as_str().unwrap();
    assert!(
        prompt.contains(
            "Earlier messages that may be relevant:\n- user: I keep bees on my roof in Lisbon"
        ),
        "{prompt}"
    );
    // The current session's conversation is there once, as the conversation.
    assert_eq!(
        prompt.matches("Any idea for a weekend project?").count(),
        1,
        "{prompt}"
    );
}
