//! `OpenAiEmbedder` against a scripted HTTP/1.1 server on 127.0.0.1 (std only): ordering, retries,
//! `Retry-After`, timeouts and the checks on what the provider answers.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use honcho_models::{EmbedError, Embedder, OpenAiConfig, OpenAiEmbedder, RetryPolicy};
use serde_json::{json, Value};

const KEY: &str = "sk-test-secret-key";

/// What the server answers to one request.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    /// Wait before answering (to provoke client timeouts).
    delay: Duration,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    fn raw(status: u16, body: &str) -> Self {
        Reply {
            body: body.to_string(),
            ..Reply::json(status, Value::Null)
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// One request as the server read it.
#[derive(Clone, Debug)]
struct Request {
    head: String,
    body: String,
}

impl Request {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON request body")
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

type Handler = dyn Fn(usize, &Request) -> Reply + Send + Sync;

struct MockServer {
    base_url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl MockServer {
    /// A server answering request number `n` (0-based) with `handler(n, request)`, each connection
    /// on its own thread so that a slow answer does not hold up the next attempt. The threads
    /// end with the test process.
    fn start(handler: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base_url = format!("http://{}/v1", listener.local_addr().expect("address"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = Arc::clone(&requests);
        let counter = Arc::new(AtomicUsize::new(0));
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (handler, seen, counter) = (
                    Arc::clone(&handler),
                    Arc::clone(&seen),
                    Arc::clone(&counter),
                );
                thread::spawn(move || serve(stream, &*handler, &seen, &counter));
            }
        });
        MockServer { base_url, requests }
    }

    /// A server answering from a script; requests beyond its end get its last reply.
    fn script(replies: Vec<Reply>) -> Self {
        Self::start(move |n, _| replies[n.min(replies.len() - 1)].clone())
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("not poisoned").clone()
    }

    fn count(&self) -> usize {
        self.requests().len()
    }

    fn config(&self) -> OpenAiConfig {
        OpenAiConfig {
            base_url: self.base_url.clone(),
            model: "test-model".into(),
            dimensions: 3,
            timeout: Duration::from_secs(5),
            retry: fast_retries(4),
            ..OpenAiConfig::new(KEY)
        }
    }

    fn embedder(&self) -> OpenAiEmbedder {
        OpenAiEmbedder::new(self.config()).expect("valid config")
    }
}

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
        max_retry_after: Duration::from_secs(2),
    }
}

fn serve(
    mut stream: TcpStream,
    handler: &Handler,
    seen: &Mutex<Vec<Request>>,
    counter: &AtomicUsize,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Some(request) = read_request(&mut stream) else {
        return;
    };
    let n = counter.fetch_add(1, Ordering::SeqCst);
    let reply = handler(n, &request);
    seen.lock().expect("not poisoned").push(request);
    thread::sleep(reply.delay);
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        answer.push_str(&format!("{name}: {value}\r\n"));
    }
    answer.push_str("\r\n");
    answer.push_str(&reply.body);
    // The client may have given up already.
    let _ = stream.write_all(answer.as_bytes());
    let _ = stream.flush();
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let request = Request {
        head,
        body: String::new(),
    };
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        body: String::from_utf8_lossy(&data[head_end..head_end + length]).into_owned(),
        ..request
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// An OpenAI-shaped answer with the given (index, vector) items, in the given order.
fn embeddings(items: &[(usize, Vec<f32>)]) -> Value {
    let data: Vec<Value> = items
        .iter()
        .map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v}))
        .collect();
    let usage = json!({"prompt_tokens": 1, "total_tokens": 1});
    json!({"object": "list", "model": "test-model", "data": data, "usage": usage})
}

fn ok_one() -> Reply {
    Reply::json(200, embeddings(&[(0, vec![0.5, 0.25, 0.125])]))
}

fn provider_error(result: Result<Vec<Vec<f32>>, EmbedError>) -> String {
    match result {
        Err(EmbedError::Provider(detail)) => {
            assert!(!detail.contains(KEY), "the key leaked: {detail}");
            detail
        }
        other => panic!("expected a provider error, got {other:?}"),
    }
}

fn bad_response(result: Result<Vec<Vec<f32>>, EmbedError>) -> String {
    match result {
        Err(EmbedError::BadResponse(detail)) => detail,
        other => panic!("expected a bad response, got {other:?}"),
    }
}

#[test]
fn success_puts_vectors_back_in_input_order() {
    let server = MockServer::script(vec![Reply::json(
        200,
        embeddings(&[
            (2, vec![3.0, 3.0, 3.0]),
            (0, vec![1.0, 1.0, 1.0]),
            (1, vec![2.0, 2.0, 2.0]),
        ]),
    )]);
    let embedder = server.embedder();
    assert_eq!(embedder.id(), "openai:test-model");
    assert_eq!(embedder.dimensions(), 3);
    let vectors = embedder.embed(&["one", "two", "three"]).expect("success");
    assert_eq!(vectors, vec![vec![1.0; 3], vec![2.0; 3], vec![3.0; 3]]);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert!(
        request.head.starts_with("POST /v1/embeddings HTTP/1.1\r\n"),
        "{}",
        request.head
    );
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}"))
    );
    assert_eq!(
        request.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        request.json(),
        json!({"model": "test-model", "input": ["one", "two", "three"]})
    );
}

#[test]
fn no_texts_make_no_request() {
    let server = MockServer::script(vec![ok_one()]);
    assert_eq!(server.embedder().embed(&[]), Ok(vec![]));
    assert_eq!(server.count(), 0);
}

#[test]
fn long_inputs_are_sent_in_batches() {
    // Each vector encodes its text's length, so the order of the result can be checked.
    let server = MockServer::start(|_, request| {
        let input = request.json()["input"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let items: Vec<(usize, Vec<f32>)> = input
            .iter()
            .enumerate()
            .rev()
            .map(|(i, t)| (i, vec![t.as_str().unwrap_or("").len() as f32, 0.0, 0.0]))
            .collect();
        Reply::json(200, embeddings(&items))
    });
    let embedder = OpenAiEmbedder::new(OpenAiConfig {
        batch_size: 2,
        ..server.config()
    })
    .expect("valid");
    let texts = ["a", "bb", "ccc", "dddd", "eeeee"];
    let vectors = embedder.embed(&texts).expect("success");
    let lengths: Vec<f32> = vectors.iter().map(|v| v[0]).collect();
    assert_eq!(lengths, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    let sizes: Vec<usize> = server
        .requests()
        .iter()
        .map(|r| r.json()["input"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, vec![2, 2, 1]);
}

#[test]
fn shortened_dimensions_are_requested() {
    let server = MockServer::script(vec![ok_one()]);
    let embedder = OpenAiEmbedder::new(OpenAiConfig {
        model: "text-embedding-3-large".into(),
        request_dimensions: Some(3),
        ..server.config()
    })
    .expect("valid");
    embedder.embed(&["x"]).expect("success");
    assert_eq!(
        server.requests()[0].json(),
        json!({"model": "text-embedding-3-large", "input": ["x"], "dimensions": 3})
    );
}

#[test]
fn too_many_requests_is_retried_with_backoff() {
    let limited = Reply::json(429, json!({"error": {"message": "Rate limit reached"}}));
    let server = MockServer::script(vec![limited, ok_one()]);
    let vectors = server
        .embedder()
        .embed(&["x"])
        .expect("success after a retry");
    assert_eq!(vectors, vec![vec![0.5, 0.25, 0.125]]);
    assert_eq!(server.count(), 2);
}

#[test]
fn retry_after_is_honoured() {
    let limited =
        Reply::json(429, json!({"error": {"message": "slow down"}})).header("Retry-After", "0.3");
    let server = MockServer::script(vec![limited, ok_one()]);
    let start = Instant::now();
    server
        .embedder()
        .embed(&["x"])
        .expect("success after waiting");
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert_eq!(server.count(), 2);
}

#[test]
fn retry_after_is_capped() {
    let limited = Reply::json(429, json!({})).header("Retry-After", "120");
    let server = MockServer::script(vec![limited, ok_one()]);
    let embedder = OpenAiEmbedder::new(OpenAiConfig {
        retry: RetryPolicy {
            max_retry_after: Duration::from_millis(50),
            ..fast_retries(4)
        },
        ..server.config()
    })
    .expect("valid");
    let start = Instant::now();
    embedder
        .embed(&["x"])
        .expect("success after the capped wait");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(50) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert_eq!(server.count(), 2);
}

#[test]
fn service_unavailable_is_retried() {
    let down = Reply::raw(503, "upstream overloaded").header("Retry-After", "0");
    let server = MockServer::script(vec![down.clone(), down, ok_one()]);
    server
        .embedder()
        .embed(&["x"])
        .expect("success on the third attempt");
    assert_eq!(server.count(), 3);
}

#[test]
fn persistent_server_errors_give_up_after_the_last_attempt() {
    let server = MockServer::script(vec![Reply::json(
        500,
        json!({"error": {"message": "The server had an error"}}),
    )]);
    let embedder = OpenAiEmbedder::new(OpenAiConfig {
        retry: fast_retries(3),
        ..server.config()
    })
    .expect("valid");
    let detail = provider_error(embedder.embed(&["x"]));
    assert_eq!(server.count(), 3);
    assert!(detail.contains("HTTP 500"), "{detail}");
    assert!(detail.contains("The server had an error"), "{detail}");
    assert!(detail.contains("3 attempts"), "{detail}");
    assert!(detail.contains("/v1/embeddings"), "{detail}");
}

#[test]
fn timeouts_are_retried_then_reported() {
    let server = MockServer::script(vec![ok_one().delayed(Duration::from_secs(3))]);
    let embedder = OpenAiEmbedder::new(OpenAiConfig {
        timeout: Duration::from_millis(200),
        retry: fast_retries(2),
        ..server.config()
    })
    .expect("valid");
    let start = Instant::now();
    let detail = provider_error(embedder.embed(&["x"]));
    let elapsed = start.elapsed();
    assert!(detail.contains("timed out"), "{detail}");
    assert!(detail.contains("2 attempts"), "{detail}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(server.count(), 2);
}

#[test]
fn a_slow_first_attempt_can_be_followed_by_a_good_one() {
    let server = MockServer::script(vec![ok_one().delayed(Duration::from_secs(3)), ok_one()]);
    let embedder = OpenAiEmbedder::new(OpenAiConfig {
        timeout: Duration::from_millis(200),
        ..server.config()
    })
    .expect("valid");
    assert_eq!(embedder.embed(&["x"]).expect("second attempt").len(), 1);
    assert_eq!(server.count(), 2);
}

#[test]
fn connection_errors_are_retried_then_reported() {
    // A port that was just free: nothing listens there any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let embedder = OpenAiEmbedder::new(OpenAiConfig {
        base_url: format!("http://127.0.0.1:{port}/v1"),
        dimensions: 3,
        retry: fast_retries(3),
        ..OpenAiConfig::new(KEY)
    })
    .expect("valid");
    let detail = provider_error(embedder.embed(&["x"]));
    assert!(detail.contains("3 attempts"), "{detail}");
}

#[test]
fn malformed_answers_are_bad_responses() {
    let server = MockServer::script(vec![Reply::raw(200, "<html>surprise</html>")]);
    let detail = bad_response(server.embedder().embed(&["x"]));
    assert!(detail.contains("<html>"), "{detail}");
    assert_eq!(server.count(), 1, "a malformed answer is not retried");

    let server = MockServer::script(vec![Reply::json(
        200,
        json!({"data": [{"embedding": "AAAA", "index": 0}]}),
    )]);
    bad_response(server.embedder().embed(&["x"]));
}

#[test]
fn wrong_vector_lengths_are_bad_responses() {
    let server = MockServer::script(vec![Reply::json(
        200,
        embeddings(&[(0, vec![1.0, 2.0, 3.0]), (1, vec![1.0, 2.0])]),
    )]);
    let detail = bad_response(server.embedder().embed(&["x", "y"]));
    assert!(
        detail.contains("embedding 1 has 2 dimensions, expected 3"),
        "{detail}"
    );
    assert_eq!(server.count(), 1);
}

#[test]
fn wrong_counts_are_bad_responses() {
    let server = MockServer::script(vec![ok_one()]);
    let detail = bad_response(server.embedder().embed(&["x", "y"]));
    assert!(detail.contains("1 embeddings for 2 inputs"), "{detail}");
}

#[test]
fn unauthorized_fails_at_once() {
    let server = MockServer::script(vec![Reply::json(
        401,
        json!({"error": {
            "message": "Incorrect API key provided: sk-tes***key.",
            "type": "invalid_request_error"
        }}),
    )]);
    let detail = provider_error(server.embedder().embed(&["x"]));
    assert_eq!(server.count(), 1, "a 401 is not retried");
    assert!(
        detail.contains("HTTP 401: Incorrect API key provided"),
        "{detail}"
    );
    assert!(detail.contains("OPENAI_API_KEY"), "{detail}");
}

#[test]
fn not_found_hints_at_the_base_url() {
    let server = MockServer::script(vec![Reply::raw(404, "404 page not found")]);
    let detail = provider_error(server.embedder().embed(&["x"]));
    assert_eq!(server.count(), 1);
    assert!(detail.contains("HTTP 404: 404 page not found"), "{detail}");
    assert!(detail.contains("OPENAI_BASE_URL"), "{detail}");
}

#[test]
fn bad_requests_fail_at_once_with_the_providers_message() {
    let server = MockServer::script(vec![Reply::json(
        400,
        json!({"error": "input must not be empty"}),
    )]);
    let detail = provider_error(server.embedder().embed(&[""]));
    assert_eq!(server.count(), 1);
    assert!(
        detail.contains("HTTP 400: input must not be empty"),
        "{detail}"
    );
}
