//! `cargo xtask bench --soak`: a steady mixed load with insights on, to see whether the server's
//! resident memory levels off. A mock model (OpenAI-compatible, in this process) answers after
//! 20 ms; the server runs 4 deriver workers and caches of 32 MiB each (documents' and messages'
//! search state), so that the caches reach their budgets within the run. Twelve connections
//! repeat a mix of requests (per 20: 4 batches of 20 messages, 4 single messages, 2 list pages,
//! 2 session reads, 2 document creates, 2 document queries, 2 message searches, 1 session context,
//! 1 `chat`), each as a user of its own that it replaces with a new one every `PER_USER` requests:
//! the data grows all along, as a service's does, while each user's history stays bounded.
//! `/metrics` is read only after the load (a scrape also folds histogram samples, which would
//! hide a server that only does so then).
//!
//! Printed: the server's RSS (and its anonymous part) every 10 s, at the end of the load, and 60 s
//! after it; the caches' bytes at the end; and how much RSS grew over the second half of the load.

use crate::bench::{memory_kib, Client, Server};
use crate::bench_insights::{bench_reply, model_env, start_model_with, status};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What the mock model waits before answering.
const MODEL_LATENCY: Duration = Duration::from_millis(20);
/// Client connections.
const CLIENTS: usize = 12;
/// Requests a connection sends as one user before it moves on to a new one (about 800 messages
/// and 50 documents each).
const PER_USER: usize = 400;
/// How often RSS is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// How long the server is watched after the load stops.
const REST: Duration = Duration::from_secs(60);
/// Each cache's budget, in MiB.
const CACHE_MB: usize = 32;

/// `VmRSS` and `RssAnon` of `pid`, in MiB.
fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    let mib = |field| memory_kib(pid, field).map(|kib| kib as f64 / 1024.0);
    Some((mib("VmRSS:")?, mib("RssAnon:")?))
}

/// One client's paths.
struct Paths {
    session: String,
    user: String,
    documents: String,
}

impl Paths {
    /// The `k`th request of the mix (method, path, body).
    fn request(&self, client: usize, k: usize) -> (&'static str, String, Option<String>) {
        let text = |i: usize| {
            format!(
                "client {client} turn {k}.{i}: I had oatmeal with berries number {} and walked \
                 the dog called Pixel{} before work",
                k % 50,
                (k + i) % 7
            )
        };
        let messages = format!("{}/messages", self.session);
        match k % 20 {
            0..=3 => {
                let batch: Vec<Value> = (0..20)
                    .map(|i| json!({ "content": text(i), "is_user": i % 2 == 0 }))
                    .collect();
                let body = json!({ "messages": batch }).to_string();
                ("POST", format!("{messages}/batch"), Some(body))
            }
            4..=7 => {
                let body = json!({ "content": text(0), "is_user": true }).to_string();
                ("POST", messages, Some(body))
            }
            8..=9 => (
                "POST",
                format!("{messages}/list?page=1&size=50&reverse=true"),
                Some("{}".into()),
            ),
            10..=11 => {
                let (sessions, id) = self.session.rsplit_once('/').unwrap_or_default();
                ("GET", format!("{sessions}?session_id={id}"), None)
            }
            12..=13 => {
                let body = json!({ "content": text(1), "metadata": { "k": k } }).to_string();
                ("POST", self.documents.clone(), Some(body))
            }
            14..=15 => {
                let body = json!({ "query": "what does the user eat", "top_k": 5 }).to_string();
                ("POST", format!("{}/query", self.documents), Some(body))
            }
            16..=17 => {
                let body = json!({ "query": "the dog called Pixel", "top_k": 10 }).to_string();
                ("POST", format!("{}/messages/query", self.user), Some(body))
            }
            18 => ("GET", format!("{}/context?tokens=1000", self.session), None),
            _ => {
                let body = json!({ "queries": "What does the user eat?" }).to_string();
                ("POST", format!("{}/chat", self.session), Some(body))
            }
        }
    }
}

/// Creates a user with a collection and a session in `app`: its paths.
fn new_user(client: &mut Client, app: &str, name: &str) -> Result<Paths, String> {
    let id = client.create(&format!("/v1/apps/{app}/users"), json!({ "name": name }))?;
    let user = format!("/v1/apps/{app}/users/{id}");
    let collection = client.create(&format!("{user}/collections"), json!({ "name": "notes" }))?;
    let session = client.create(&format!("{user}/sessions"), json!({}))?;
    Ok(Paths {
        session: format!("{user}/sessions/{session}"),
        documents: format!("{user}/collections/{collection}/documents"),
        user,
    })
}

/// A gauge's value in Prometheus' text format.
fn gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

pub fn run(label: &str, db_url: &str, binary: &Path, duration: Duration) -> Result<(), String> {
    let base = start_model_with(MODEL_LATENCY, bench_reply)?;
    let mut env = model_env(&base, 4);
    env.push(("VECTOR_CACHE_MB", CACHE_MB.to_string()));
    env.push(("MESSAGE_CACHE_MB", CACHE_MB.to_string()));
    let (server, _) = Server::start_with(binary, db_url, label, &env)?;
    let pid = server.child.id();
    let mut client = Client::new(server.port);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let app = client.create(
        "/v1/apps",
        json!({ "name": format!("soak-{label}-{nanos}") }),
    )?;
    println!(
        "\n{label}: soak, {CLIENTS} connections (a new user every {PER_USER} requests) for {} s, \
         mock model after {} ms, 4 deriver workers, caches of {CACHE_MB} MiB each",
        duration.as_secs(),
        MODEL_LATENCY.as_millis()
    );
    println!(
        "{:>6} {:>9} {:>9} {:>10} {:>8} {:>14}",
        "s", "RSS MiB", "anon MiB", "requests", "errors", "derived items"
    );
    let requests = AtomicUsize::new(0);
    let errors = AtomicUsize::new(0);
    let first_error = std::sync::Mutex::new(None::<String>);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut samples: Vec<(f64, f64, f64)> = Vec::new();
    std::thread::scope(|s| {
        for c in 0..CLIENTS {
            let (requests, errors, first_error, stop) = (&requests, &errors, &first_error, &stop);
            let (port, app) = (server.port, app.as_str());
            s.spawn(move || {
                let mut http = Client::new(port);
                let mut k = c; // clients start at different points of the mix
                let mut p: Option<Paths> = None;
                while !stop.load(Ordering::Relaxed) {
                    if p.is_none() || k % PER_USER == 0 {
                        match new_user(&mut http, app, &format!("c{c}-{k}")) {
                            Ok(paths) => p = Some(paths),
                            Err(e) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                first_error.lock().unwrap().get_or_insert(e);
                                std::thread::sleep(Duration::from_millis(10));
                                continue;
                            }
                        }
                    }
                    let Some(p) = &p else { continue };
                    let (method, path, body) = p.request(c, k);
                    k += 1;
                    match http.request(method, &path, body.as_deref()) {
                        Ok(r) if r.status == 200 => {}
                        Ok(r) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            let mut first = first_error.lock().unwrap();
                            first.get_or_insert_with(|| {
                                format!("{method} {path}: {}", r.describe())
                            });
                        }
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error.lock().unwrap().get_or_insert(e);
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                    requests.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let mut next = started;
        while started.elapsed() < duration {
            next += SAMPLE_EVERY;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            let (rss, anon) = rss_mib(pid).unwrap_or((f64::NAN, f64::NAN));
            let t = started.elapsed().as_secs_f64();
            samples.push((t, rss, anon));
            let derived = status(&mut Client::new(server.port), &app)
                .ok()
                .and_then(|v| v["done"].as_u64())
                .unwrap_or_default();
            println!(
                "{t:>6.0} {rss:>9.1} {anon:>9.1} {:>10} {:>8} {derived:>14}",
                requests.load(Ordering::Relaxed),
                errors.load(Ordering::Relaxed)
            );
        }
        stop.store(true, Ordering::Relaxed);
    });
    let load_secs = started.elapsed().as_secs_f64();
    let total = requests.load(Ordering::Relaxed);
    let (end_rss, end_anon) = rss_mib(pid).unwrap_or((f64::NAN, f64::NAN));
    std::thread::sleep(REST);
    let (rest_rss, rest_anon) = rss_mib(pid).unwrap_or((f64::NAN, f64::NAN));
    let metrics = Client::new(server.port)
        .request("GET", "/metrics", None)
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .unwrap_or_default();
    let mib = |name| gauge(&metrics, name).map_or("-".into(), |b| format!("{:.1}", b / 1048576.0));
    let half = samples
        .iter()
        .find(|(t, ..)| *t >= load_secs / 2.0)
        .map(|&(_, rss, _)| rss);
    let first = samples.first().map(|&(_, rss, _)| rss);
    println!(
        "{label}: {total} requests ({:.0}/s), {} errors; RSS at the first sample {}, at half time \
         {}, at the end {end_rss:.1} MiB (anon {end_anon:.1}), {} s later {rest_rss:.1} MiB \
         (anon {rest_anon:.1}); second half's growth {}; caches: documents {} MiB, messages {} MiB",
        total as f64 / load_secs,
        errors.load(Ordering::Relaxed),
        first.map_or("-".into(), |v| format!("{v:.1} MiB")),
        half.map_or("-".into(), |v| format!("{v:.1} MiB")),
        REST.as_secs(),
        half.map_or("-".into(), |v| format!("{:+.1} MiB", end_rss - v)),
        mib("honcho_vector_cache_bytes"),
        mib("honcho_message_cache_bytes"),
    );
    if let Some(e) = first_error.lock().unwrap().take() {
        eprintln!("{label}: first error: {e}");
    }
    server.finish();
    Ok(())
}
