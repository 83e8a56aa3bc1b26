//! `cargo xtask bench --insights`: the insights against a mock model that answers after a fixed
//! 50 ms (OpenAI-compatible, on 127.0.0.1, in this process):
//! - deriver throughput: items/s with 1, 4 and 16 workers, measured twice: in process, the
//!   server's workers deriving while the batches are stored, and as a drain, a `honcho deriver`
//!   process working off a queue stored beforehand. The mock's latency bounds it: one call
//!   per item is at most 20 items/s per worker, and a session of 20 messages makes 21 calls (its
//!   20th message also asks for a short summary), so at most 19 items/s per worker here;
//! - chat: latency of `chat` (one query-expansion call and one answer call, 100 ms of model time)
//!   and what the server adds above it;
//! - enqueue cost: batch-of-100 req/s with messages queued for the deriver (no workers) vs not.

use crate::bench::{percentile_ms, run_scenario, Client, Fixture, Options, Scenario, Server};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// What the mock model waits before answering.
const MODEL_LATENCY: Duration = Duration::from_millis(50);
/// Messages per session in the deriver scenario.
const MESSAGES_PER_SESSION: usize = 20;
/// Chat requests measured.
const CHATS: usize = 200;

/// What the mock model answers to a request with this system prompt and last user turn.
pub(crate) type Reply = fn(system: &str, user: &str) -> String;

/// Facts "The user said: <message>", one search phrase, and a fixed answer.
pub(crate) fn bench_reply(system: &str, user: &str) -> String {
    if system.contains("durable facts") {
        let new = user
            .rsplit("New message from the user:\n")
            .next()
            .unwrap_or("");
        json!({ "facts": [format!("The user said: {new}")] }).to_string()
    } else if system.contains("search a memory") {
        r#"{"queries": ["The user likes"]}"#.to_string()
    } else {
        "The user likes tea.".to_string()
    }
}

/// Starts the bench's mock model; returns its base URL.
fn start_model() -> Result<String, String> {
    start_model_with(MODEL_LATENCY, bench_reply)
}

/// Starts a mock OpenAI-compatible model answering `reply` after `latency`; returns its base URL.
pub(crate) fn start_model_with(latency: Duration, reply: Reply) -> Result<String, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let base = format!(
        "http://{}/v1",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve_model(stream, latency, reply));
        }
    });
    Ok(base)
}

fn serve_model(stream: TcpStream, latency: Duration, reply: Reply) {
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let system = request["messages"][0]["content"].as_str().unwrap_or("");
        let user = request["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .unwrap_or("");
        let text = reply(system, user);
        std::thread::sleep(latency);
        let answer = json!({
            "id": "c", "object": "chat.completion", "model": "mock",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}]
        })
        .to_string();
        // One write: a response in pieces would wait for the client's delayed ACK (Nagle).
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

pub(crate) fn model_env(base: &str, workers: usize) -> Vec<(&'static str, String)> {
    vec![
        ("LLM_BASE_URL", base.to_string()),
        ("LLM_API_KEY", "bench".into()),
        ("LLM_MODEL", "mock".into()),
        ("DERIVER_WORKERS", workers.to_string()),
        ("DERIVER_POLL_MS", "20".into()),
        // Every worker needs its connection now and then, and the API its own.
        ("DATABASE_POOL_SIZE", (workers + 8).to_string()),
    ]
}

/// Creates an app and a user; returns `(app, sessions path)`.
fn app_and_user(client: &mut Client, label: &str) -> Result<(String, String), String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("insights-{label}-{nanos}");
    let app = client.create("/v1/apps", json!({ "name": name }))?;
    let user = client.create(&format!("/v1/apps/{app}/users"), json!({ "name": "u" }))?;
    Ok((app.clone(), format!("/v1/apps/{app}/users/{user}/sessions")))
}

pub(crate) fn status(client: &mut Client, app: &str) -> Result<Value, String> {
    let r = client.request("GET", &format!("/v1/apps/{app}/deriver/status"), None)?;
    serde_json::from_slice(&r.body).map_err(|e| e.to_string())
}

/// How the deriver's work reaches it in a throughput run.
#[derive(Clone, Copy, PartialEq)]
enum Feed {
    /// The server's own workers derive while the batches are being stored (the clock starts
    /// before the first batch).
    InProcess,
    /// Every batch is stored first, through a server without workers; then a `honcho deriver`
    /// process drains the queue (the clock starts when it is spawned).
    Drain,
}

/// A `honcho deriver` process; killed when dropped.
struct DeriverProcess(std::process::Child);

impl Drop for DeriverProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Items/s of `workers` deriver workers over sessions of `MESSAGES_PER_SESSION` user messages.
fn deriver_throughput(
    label: &str,
    db_url: &str,
    binary: &Path,
    base: &str,
    workers: usize,
    feed: Feed,
) -> Result<(usize, f64), String> {
    let in_server = if feed == Feed::InProcess { workers } else { 0 };
    let (server, _) = Server::start_with(binary, db_url, label, &model_env(base, in_server))?;
    let mut client = Client::new(server.port);
    let (app, sessions) = app_and_user(&mut client, label)?;
    let session_count = (workers * 2).max(4);
    let items = session_count * MESSAGES_PER_SESSION;
    let mut paths = Vec::new();
    for _ in 0..session_count {
        let id = client.create(&sessions, json!({}))?;
        paths.push(format!("{sessions}/{id}/messages/batch"));
    }
    let mut started = Instant::now();
    for (s, path) in paths.iter().enumerate() {
        let messages: Vec<Value> = (0..MESSAGES_PER_SESSION)
            .map(|m| json!({ "content": format!("session {s} message {m} kilo{s}x{m} lima{s}x{m}"), "is_user": true }))
            .collect();
        let r = client.request(
            "POST",
            path,
            Some(&json!({ "messages": messages }).to_string()),
        )?;
        if r.status != 200 {
            return Err(format!("POST {path}: {}", r.describe()));
        }
    }
    let _deriver = match feed {
        Feed::InProcess => None,
        Feed::Drain => {
            started = Instant::now();
            let child = std::process::Command::new(binary)
                .arg("deriver")
                .envs(model_env(base, workers))
                .env("DATABASE_URL", db_url)
                .env("LOG_LEVEL", "warn")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::inherit())
                .spawn()
                .map_err(|e| format!("cannot start {} deriver: {e}", binary.display()))?;
            Some(DeriverProcess(child))
        }
    };
    loop {
        let now = status(&mut client, &app)?;
        let finished = now["done"].as_u64().unwrap_or(0) + now["failed"].as_u64().unwrap_or(0);
        if finished as usize >= items {
            if now["failed"].as_u64() != Some(0) {
                return Err(format!("{label}: items failed: {now}"));
            }
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!("{label}: the deriver did not finish: {now}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let rate = items as f64 / started.elapsed().as_secs_f64();
    server.finish();
    Ok((items, rate))
}

/// Latencies (ms) of sequential `chat` requests on a session with some conversation.
fn chat_latency(label: &str, db_url: &str, binary: &Path, base: &str) -> Result<Vec<u32>, String> {
    let (server, _) = Server::start_with(binary, db_url, label, &model_env(base, 0))?;
    let mut client = Client::new(server.port);
    let (_, sessions) = app_and_user(&mut client, label)?;
    let session = client.create(&sessions, json!({}))?;
    let messages: Vec<Value> = (0..10)
        .map(|m| json!({ "content": format!("I like tea number {m}"), "is_user": m % 2 == 0 }))
        .collect();
    client.request(
        "POST",
        &format!("{sessions}/{session}/messages/batch"),
        Some(&json!({ "messages": messages }).to_string()),
    )?;
    let path = format!("{sessions}/{session}/chat");
    let body = json!({ "queries": "What does the user drink?" }).to_string();
    let mut latencies = Vec::new();
    for i in 0..CHATS + 10 {
        let started = Instant::now();
        let r = client.request("POST", &path, Some(&body))?;
        if r.status != 200 {
            return Err(format!("POST {path}: {}", r.describe()));
        }
        if i >= 10 {
            latencies.push(started.elapsed().as_micros() as u32);
        }
    }
    latencies.sort_unstable();
    server.finish();
    Ok(latencies)
}

/// Batch-of-100 req/s and p50 with `env`.
fn batch_rate(
    label: &str,
    db_url: &str,
    binary: &Path,
    env: &[(&str, String)],
    opts: &Options,
) -> Result<(f64, Option<f64>), String> {
    let (server, _) = Server::start_with(binary, db_url, label, env)?;
    let only_batch = Options {
        scenarios: vec![Scenario::Batch],
        ..opts.clone()
    };
    let fixture = Fixture::seed(server.port, &only_batch)?;
    let out = run_scenario(Scenario::Batch, &fixture, &server, &only_batch);
    server.finish();
    if out.errors > 0 {
        return Err(format!(
            "{label}: {} errors, first: {:?}",
            out.errors, out.first_error
        ));
    }
    Ok((
        out.latencies.len() as f64 / opts.duration.as_secs_f64(),
        percentile_ms(&out.latencies, 0.5),
    ))
}

pub fn run(label: &str, db_url: &str, binary: &Path, opts: &Options) -> Result<(), String> {
    let base = start_model()?;
    println!(
        "\n{label}: insights, mock model answering after {} ms",
        MODEL_LATENCY.as_millis()
    );
    let part = |name: &str| opts.insights_parts.contains(&name);
    if part("deriver") {
        println!(
            "deriver      workers    items   in-process items/s   drain items/s   1 call/item   \
             21 calls/20 items"
        );
        for workers in [1, 4, 16] {
            let throughput = |feed| deriver_throughput(label, db_url, binary, &base, workers, feed);
            let (items, rate) = throughput(Feed::InProcess)?;
            let (_, drain) = throughput(Feed::Drain)?;
            // What the model's latency alone allows (see the module documentation).
            let per_call = workers as f64 * 1000.0 / MODEL_LATENCY.as_millis() as f64;
            let calls = (MESSAGES_PER_SESSION + 1) as f64 / MESSAGES_PER_SESSION as f64;
            println!(
                "{:<12} {workers:>7} {items:>8} {rate:>20.1} {drain:>15.1} {per_call:>13.0} {:>19.1}",
                "",
                per_call / calls
            );
        }
    }
    if part("chat") {
        let chat = chat_latency(label, db_url, binary, &base)?;
        let model_ms = 2.0 * MODEL_LATENCY.as_secs_f64() * 1000.0;
        let p = |q| percentile_ms(&chat, q).unwrap_or(f64::NAN);
        println!(
            "chat         {CHATS} sequential: p50 {:.2} ms, p99 {:.2} ms; model time {model_ms:.0} ms; \
             overhead p50 {:.2} ms, p99 {:.2} ms",
            p(0.5),
            p(0.99),
            p(0.5) - model_ms,
            p(0.99) - model_ms
        );
    }
    if part("enqueue") {
        // Off and on twice, in the order off, on, on, off: the database grows with every run, and
        // this order gives both settings the same share of the growth (and of the machine's drift).
        let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
        for round in 1..=2 {
            let measure = |env: &[(&str, String)]| batch_rate(label, db_url, binary, env, opts);
            let (off, on) = if round == 1 {
                let off = measure(&[])?;
                (off, measure(&model_env(&base, 0))?)
            } else {
                let on = measure(&model_env(&base, 0))?;
                (measure(&[])?, on)
            };
            println!(
                "enqueue {round}    batch of 100: insights off {:.0} req/s (p50 {} ms), on {:.0} req/s \
                 (p50 {} ms): {:+.1}%",
                off.0,
                ms(off.1),
                on.0,
                ms(on.1),
                (on.0 / off.0 - 1.0) * 100.0
            );
        }
    }
    Ok(())
}
