//! `HttpChatModel` against scripted OpenAI-compatible and Anthropic servers on 127.0.0.1: request
//! shapes, answers, retries, `Retry-After`, timeouts, refused keys, malformed answers and streams
//! (arriving in pieces, cut in the middle, failing before the first piece).

use honcho_domain::llm::{ChatModel, LlmError, Prompt, Role, Turn};
use honcho_models::{ChatConfig, HttpChatModel, Protocol, RetryPolicy};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One answer of the scripted server: status, headers, and the body in pieces sent with a pause
/// before each.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    pieces: Vec<(Duration, String)>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "application/json".into())],
            pieces: vec![(Duration::ZERO, body.to_string())],
        }
    }

    fn events(events: &[(u64, &str)]) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type", "text/event-stream".into())],
            pieces: events
                .iter()
                .map(|(ms, data)| (Duration::from_millis(*ms), format!("data: {data}\n\n")))
                .collect(),
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    fn delayed(mut self, by: Duration) -> Reply {
        self.pieces[0].0 = by;
        self
    }
}

/// What the server received: head (lower-cased header names kept as sent) and body.
#[derive(Clone, Debug)]
struct Seen {
    head: String,
    body: Value,
}

impl Seen {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

struct Mock {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Mock {
    /// Answers request number n with `script[n]` (the last one after the end).
    fn start(script: Vec<Reply>) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (seen2, count) = (seen.clone(), Arc::new(AtomicUsize::new(0)));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let reply = script[n.min(script.len() - 1)].clone();
                let seen = seen2.clone();
                std::thread::spawn(move || answer(stream, reply, &seen));
            }
        });
        Mock { base, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn model(&self, protocol: Protocol, timeout: Duration) -> HttpChatModel {
        HttpChatModel::new(ChatConfig {
            protocol,
            base_url: self.base.clone(),
            api_key: Some("sk-secret".into()),
            model: "test-model".into(),
            timeout,
            retry: RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(4),
                max_retry_after: Duration::from_secs(1),
            },
        })
        .unwrap()
    }
}

fn answer(mut stream: TcpStream, reply: Reply, seen: &Mutex<Vec<Seen>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
        }
    }
    let body = serde_json::from_slice(&data[head_end..]).unwrap_or(Value::Null);
    seen.lock().unwrap().push(Seen { head, body });
    let mut out = format!("HTTP/1.1 {} X\r\nconnection: close\r\n", reply.status);
    for (n, v) in &reply.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut first = true;
    for (pause, piece) in reply.pieces {
        std::thread::sleep(pause);
        if first {
            out.push_str(&piece);
            first = false;
            if stream.write_all(out.as_bytes()).is_err() {
                return;
            }
        } else if stream.write_all(piece.as_bytes()).is_err() {
            return;
        }
        let _ = stream.flush();
    }
}

fn prompt(json_object: bool) -> Prompt {
    Prompt {
        system: "Be brief.".into(),
        turns: vec![
            Turn {
                role: Role::User,
                content: "Hi".into(),
            },
            Turn {
                role: Role::Assistant,
                content: "Hello".into(),
            },
            Turn {
                role: Role::User,
                content: "Where do I live?".into(),
            },
        ],
        max_tokens: 100,
        json_object,
    }
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn openai_compatible_answers_whole() {
    let mock = Mock::start(vec![Reply::json(
        200,
        json!({ "choices": [{ "message": { "role": "assistant", "content": "{\"facts\": []}" } }] }),
    )]);
    let model = mock.model(Protocol::OpenAi, SECOND);
    assert_eq!(model.id(), "openai:test-model");
    assert_eq!(model.complete(&prompt(true)).unwrap(), "{\"facts\": []}");
    let seen = &mock.seen()[0];
    assert!(seen.head.starts_with("POST /v1/chat/completions "));
    assert_eq!(
        seen.header("authorization").as_deref(),
        Some("Bearer sk-secret")
    );
    assert_eq!(seen.body["model"], "test-model");
    assert_eq!(
        seen.body["messages"][0],
        json!({ "role": "system", "content": "Be brief." })
    );
    assert_eq!(seen.body["messages"][3]["content"], "Where do I live?");
    assert_eq!(
        seen.body["response_format"],
        json!({ "type": "json_object" })
    );
    assert_eq!(seen.body["stream"], false);
    assert!(!format!("{model:?}").contains("sk-secret"));
}

#[test]
fn anthropic_answers_whole() {
    let mock = Mock::start(vec![Reply::json(
        200,
        json!({ "content": [{ "type": "text", "text": "You live " }, { "type": "text", "text": "in Lisbon." }] }),
    )]);
    let model = mock.model(Protocol::Anthropic, SECOND);
    assert_eq!(
        model.complete(&prompt(false)).unwrap(),
        "You live in Lisbon."
    );
    let seen = &mock.seen()[0];
    assert!(seen.head.starts_with("POST /v1/messages "));
    assert_eq!(seen.header("x-api-key").as_deref(), Some("sk-secret"));
    assert_eq!(
        seen.header("anthropic-version").as_deref(),
        Some("2023-06-01")
    );
    assert_eq!(seen.body["system"], "Be brief.");
    assert_eq!(
        seen.body["messages"][0],
        json!({ "role": "user", "content": "Hi" })
    );
    assert_eq!(seen.body["max_tokens"], 100);
}

#[test]
fn rate_limits_and_server_errors_are_retried_and_refused_keys_are_not() {
    let ok = Reply::json(
        200,
        json!({ "choices": [{ "message": { "content": "fine" } }] }),
    );
    let mock = Mock::start(vec![
        Reply::json(429, json!({ "error": { "message": "slow down" } })).header("retry-after", "0"),
        Reply::json(500, json!({ "error": { "message": "oops" } })),
        ok,
    ]);
    assert_eq!(
        mock.model(Protocol::OpenAi, SECOND)
            .complete(&prompt(false))
            .unwrap(),
        "fine"
    );
    assert_eq!(mock.seen().len(), 3);

    let mock = Mock::start(vec![Reply::json(
        401,
        json!({ "error": { "message": "bad key" } }),
    )]);
    let err = mock
        .model(Protocol::OpenAi, SECOND)
        .complete(&prompt(false))
        .unwrap_err();
    assert!(
        matches!(&err, LlmError::Unavailable(m) if m.contains("bad key")),
        "{err}"
    );
    assert_eq!(mock.seen().len(), 1);

    let mock = Mock::start(vec![Reply::json(503, json!({ "error": "down" }))]);
    let err = mock
        .model(Protocol::Anthropic, SECOND)
        .complete(&prompt(false))
        .unwrap_err();
    assert!(
        matches!(&err, LlmError::Provider(m) if m.contains("gave up after 3")),
        "{err}"
    );
    assert!(!err.to_string().contains("sk-secret"));
}

#[test]
fn timeouts_are_retried_then_reported() {
    let slow = Reply::json(
        200,
        json!({ "choices": [{ "message": { "content": "late" } }] }),
    )
    .delayed(Duration::from_millis(800));
    let mock = Mock::start(vec![slow]);
    let started = Instant::now();
    let err = mock
        .model(Protocol::OpenAi, Duration::from_millis(200))
        .complete(&prompt(false))
        .unwrap_err();
    assert!(
        matches!(&err, LlmError::Provider(m) if m.contains("timed out")),
        "{err}"
    );
    assert_eq!(mock.seen().len(), 3);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn malformed_answers_are_bad_responses() {
    let mock = Mock::start(vec![Reply {
        status: 200,
        headers: vec![],
        pieces: vec![(Duration::ZERO, "not json".into())],
    }]);
    let err = mock
        .model(Protocol::OpenAi, SECOND)
        .complete(&prompt(false))
        .unwrap_err();
    assert!(matches!(err, LlmError::BadResponse(_)), "{err}");
    let mock = Mock::start(vec![Reply::json(200, json!({ "choices": [] }))]);
    let err = mock
        .model(Protocol::OpenAi, SECOND)
        .complete(&prompt(false))
        .unwrap_err();
    assert!(matches!(err, LlmError::BadResponse(_)), "{err}");
}

/// One piece of an OpenAI-compatible stream.
fn openai_delta(text: &str) -> String {
    json!({ "choices": [{ "delta": { "content": text } }] }).to_string()
}

/// Streams `model`'s answer; the pieces with the time each arrived after the start.
fn stream(model: &HttpChatModel) -> (Result<(), LlmError>, Vec<(String, Duration)>, Duration) {
    let started = Instant::now();
    let mut pieces = Vec::new();
    let result = model.stream(&prompt(false), &mut |t| {
        pieces.push((t.to_string(), started.elapsed()))
    });
    (result, pieces, started.elapsed())
}

#[test]
fn openai_streams_arrive_in_pieces_before_the_answer_is_complete() {
    let mock = Mock::start(vec![Reply::events(&[
        (0, &openai_delta("You live ")),
        (400, &openai_delta("in Lisbon.")),
        (0, "[DONE]"),
    ])]);
    let (result, pieces, total) = stream(&mock.model(Protocol::OpenAi, SECOND));
    result.unwrap();
    let texts: Vec<&str> = pieces.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(texts, ["You live ", "in Lisbon."]);
    assert!(
        total - pieces[0].1 >= Duration::from_millis(300),
        "the first piece came only at the end"
    );
    assert_eq!(mock.seen()[0].body["stream"], true);
}

#[test]
fn anthropic_streams_arrive_in_pieces() {
    let delta = |t: &str| {
        json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": t } })
            .to_string()
    };
    let start = json!({ "type": "message_start", "message": {} }).to_string();
    let stop = json!({ "type": "message_stop" }).to_string();
    let mock = Mock::start(vec![Reply::events(&[
        (0, &start),
        (0, &delta("Lis")),
        (200, &delta("bon")),
        (0, &stop),
    ])]);
    let (result, pieces, _) = stream(&mock.model(Protocol::Anthropic, SECOND));
    result.unwrap();
    let texts: Vec<&str> = pieces.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(texts, ["Lis", "bon"]);
}

#[test]
fn a_stream_cut_in_the_middle_is_an_error_after_its_pieces() {
    let mock = Mock::start(vec![Reply::events(&[(0, &openai_delta("partial"))])]);
    let (result, pieces, _) = stream(&mock.model(Protocol::OpenAi, SECOND));
    assert_eq!(pieces.len(), 1);
    assert!(matches!(result, Err(LlmError::Provider(m)) if m.contains("ended before")));
    // An error event in the stream is an error too.
    let mock = Mock::start(vec![Reply::events(&[(
        0,
        r#"{"error": {"message": "overloaded"}}"#,
    )])]);
    let (result, pieces, _) = stream(&mock.model(Protocol::Anthropic, SECOND));
    assert!(pieces.is_empty());
    assert!(matches!(result, Err(LlmError::Provider(m)) if m.contains("overloaded")));
}

#[test]
fn a_stream_failing_before_its_first_piece_is_retried() {
    let mock = Mock::start(vec![
        Reply::json(502, json!({ "error": "bad gateway" })),
        Reply::events(&[(0, &openai_delta("ok")), (0, "[DONE]")]),
    ]);
    let (result, pieces, _) = stream(&mock.model(Protocol::OpenAi, SECOND));
    result.unwrap();
    assert_eq!(pieces.len(), 1);
    assert_eq!(mock.seen().len(), 2);
}
