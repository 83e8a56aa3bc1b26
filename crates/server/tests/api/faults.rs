//! Faults for real: a full disk, killed and cut database connections, a server killed
//! under load, a client that stalls. Each test fails on the bug it guards against: an acknowledged
//! write that was not stored, a 500 for an outage, a connection held forever.

use crate::helpers::{id, on_postgres, with_address, FreshDatabase, Honcho, Options, TestApp};
use honcho_db::DbOptions;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A tmpfs of the given size, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?.keep();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            let _ = std::fs::remove_dir(&dir);
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Writes zeros into `dir/fill` until the disk refuses.
fn fill_disk(dir: &Path) {
    let mut file = std::fs::File::create(dir.join("fill")).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

/// What a 503 from an outage looks like.
fn assert_outage(status: u16, body: &Value, what: &str) {
    assert_eq!(status, 503, "{what}: expected 503, got {status}: {body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("Database unavailable: "),
        "{what}: detail {detail:?}"
    );
}

#[test]
fn sqlite_on_a_full_disk_acknowledges_only_what_it_stored() {
    if on_postgres() {
        eprintln!("skipped: the disk-full test is for SQLite");
        return;
    }
    let disk = match Tmpfs::mount("4m") {
        Ok(disk) => disk,
        // In CI a fault test that cannot run is a failure, not a pass.
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("cannot mount a tmpfs here ({why}), and CI=true: the disk-full test must run")
        }
        Err(why) => {
            eprintln!("skipped: cannot mount a tmpfs here ({why})");
            return;
        }
    };
    let app = TestApp::spawn_with(Options {
        sqlite_path: Some(disk.0.join("honcho.db")),
        ..Options::default()
    });
    let s = app.session_path();
    let (a, u) = (&s.app, &s.user);
    let m = id(&app.ok(app.post(
        &s.messages(),
        json!({ "content": "hello", "is_user": true }),
    )));
    let mm = id(&app.ok(app.post(
        &format!("{}/metamessages", s.user_path()),
        json!({ "label": "note", "content": "x" }),
    )));
    let c = id(&app.ok(app.post(&s.collections(), json!({ "name": "facts" }))));
    let d = id(&app.ok(app.post(
        &format!("{}/{c}/documents", s.collections()),
        json!({ "content": "likes tea" }),
    )));
    // (what, PUT path, GET path)
    let resources = [
        (
            "app",
            format!("/v1/apps/{a}"),
            format!("/v1/apps?app_id={a}"),
        ),
        (
            "user",
            s.user_path(),
            format!("/v1/apps/{a}/users?user_id={u}"),
        ),
        (
            "session",
            s.session_path(),
            format!("{}/sessions?session_id={}", s.user_path(), s.session),
        ),
        (
            "message",
            format!("{}/{m}", s.messages()),
            format!("{}/{m}", s.messages()),
        ),
        (
            "metamessage",
            format!("{}/metamessages/{mm}", s.user_path()),
            format!("{}/metamessages/{mm}", s.user_path()),
        ),
        (
            "collection",
            format!("{}/{c}", s.collections()),
            format!("{}?collection_id={c}", s.collections()),
        ),
        (
            "document",
            format!("{}/{c}/documents/{d}", s.collections()),
            format!("{}/{c}/documents/{d}", s.collections()),
        ),
    ];

    fill_disk(&disk.0);
    let mut refused = 0;
    for (i, (what, put, get)) in resources.iter().enumerate() {
        let wanted = json!({ "v": i });
        let (status, body) = app.put(put, json!({ "metadata": wanted }));
        let stored = app.ok(app.get(get));
        if status == 200 {
            assert_eq!(
                stored["metadata"], wanted,
                "{what}: PUT answered 200 but the change was not stored"
            );
        } else {
            assert_outage(status, &body, what);
            assert_ne!(stored["metadata"], wanted, "{what}: refused but stored");
            refused += 1;
        }
    }
    for n in 0..20 {
        let (status, body) = app.post(
            &s.messages(),
            json!({ "content": format!("on a full disk {n}"), "is_user": true }),
        );
        if status == 200 {
            let got = app.ok(app.get(&format!("{}/{}", s.messages(), id(&body))));
            assert_eq!(got["content"], body["content"]);
        } else {
            assert_outage(status, &body, "message");
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "the full disk refused nothing: the test is void"
    );

    // Space again: the same server writes again.
    std::fs::remove_file(disk.0.join("fill")).unwrap();
    let (status, _) = app.put(
        &format!("/v1/apps/{a}"),
        json!({ "metadata": { "v": "after" } }),
    );
    assert_eq!(status, 200);
    let app_row = app.ok(app.get(&format!("/v1/apps?app_id={a}")));
    assert_eq!(app_row["metadata"], json!({ "v": "after" }));
}

/// Requests from `threads` threads for `duration`; every status seen.
fn load(app: &TestApp, path: &str, threads: usize, duration: Duration) -> Vec<u16> {
    let statuses = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let start = Instant::now();
                while start.elapsed() < duration {
                    let status = app.get(path).0;
                    statuses.lock().unwrap().push(status);
                }
            });
        }
    });
    statuses.into_inner().unwrap()
}

/// Backends killed 0.1, 0.5, 1 and 3 s before 25 requests (reads and writes of every kind): no
/// request fails. A connection found dead at a call's first statement is replaced, and the call
/// runs on another.
#[test]
fn a_restart_of_postgres_costs_no_request_whatever_the_delay() {
    let Some((app, s, get)) = postgres_with_eight_connections() else {
        return;
    };
    let mut failures = Vec::new();
    // Each kind of request comes first after a kill once: reads, and writes whose first statement
    // is a transaction's or a plain insert's.
    for kind in 0..6 {
        let delay = [100u64, 500, 1000, 3000][kind % 4];
        warm_then_kill(&app, &get, Duration::from_millis(300));
        std::thread::sleep(Duration::from_millis(delay));
        for n in 0..25 {
            let (status, body) = match (kind + n) % 6 {
                0 => app.get(&get),
                1 => app.post(&s.messages(), json!({ "content": "x", "is_user": true })),
                2 => app.post("/v1/apps", json!({ "name": format!("a-{kind}-{n}") })),
                3 => app.put(&s.session_path(), json!({ "metadata": { "n": n } })),
                4 => app.post(
                    &format!("/v1/apps/{}/users", s.app),
                    json!({ "name": format!("u-{kind}-{n}") }),
                ),
                _ => app.post(&format!("{}/list", s.messages()), json!({})),
            };
            if status != 200 {
                failures.push(format!(
                    "{delay} ms, first kind {kind}, request {n}: {status} {body}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// PostgreSQL only: a server with 8 connections, a session, and a read of it.
fn postgres_with_eight_connections() -> Option<(TestApp, crate::helpers::Scope, String)> {
    if !on_postgres() {
        eprintln!("skipped: PostgreSQL only (set TEST_DATABASE_URL)");
        return None;
    }
    let app = TestApp::spawn_with(Options {
        db: DbOptions::with_max_size(8),
        ..Options::default()
    });
    let s = app.session_path();
    let get = format!("{}/sessions?session_id={}", s.user_path(), s.session);
    Some((app, s, get))
}

/// Warms the pool with reads of `get` for `warming`, then kills every connection of the server
/// behind its back.
fn warm_then_kill(app: &TestApp, get: &str, warming: Duration) {
    let warm = load(app, get, 8, warming);
    assert!(warm.iter().all(|&s| s == 200));
    let killed = app.terminate_connections();
    assert!(killed >= 2, "only {killed} connections were open");
}

#[test]
fn killed_postgres_connections_are_replaced_before_they_cost_a_request() {
    let Some((app, _, get)) = postgres_with_eight_connections() else {
        return;
    };
    warm_then_kill(&app, &get, Duration::from_millis(500));
    std::thread::sleep(Duration::from_millis(2500));
    for n in 0..25 {
        let (status, body) = app.get(&get);
        assert_eq!(
            status, 200,
            "request {n} after the connections were killed: {body}"
        );
    }

    // Killed while busy: the requests that lose their connection are 503s, never 500s, and the
    // server heals by itself.
    let statuses = std::thread::scope(|scope| {
        let busy = scope.spawn(|| load(&app, &get, 4, Duration::from_secs(3)));
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(500));
            app.terminate_connections();
        }
        busy.join().unwrap()
    });
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 503),
        "statuses under killed connections: {:?}",
        statuses.iter().filter(|&&s| s != 200).collect::<Vec<_>>()
    );
    // It heals by itself: once a request succeeds, every following one does.
    let healing = std::time::Instant::now();
    while app.get(&get).0 != 200 {
        assert!(
            healing.elapsed() < Duration::from_secs(10),
            "the server did not heal"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..25 {
        assert_eq!(app.get(&get).0, 200);
    }
}

/// A TCP proxy to PostgreSQL that can be cut (every connection closed, new ones dropped) and restored.
struct Proxy {
    address: String,
    up: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let up = Arc::new(AtomicBool::new(true));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, streams2) = (up.clone(), streams.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let mut all = streams2.lock().unwrap();
                all.push(client.try_clone().unwrap());
                all.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy {
            address,
            up,
            streams,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// `host:port` of `TEST_DATABASE_URL`.
fn postgres_address() -> String {
    let url = std::env::var("TEST_DATABASE_URL").unwrap();
    let start = url
        .find('@')
        .map_or_else(|| url.find("://").unwrap() + 3, |i| i + 1);
    let rest = &url[start..];
    let host = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:5432")
    }
}

#[test]
fn postgres_down_is_a_fast_503_and_recovery_needs_no_restart() {
    if !on_postgres() {
        eprintln!("skipped: PostgreSQL only (set TEST_DATABASE_URL)");
        return;
    }
    let proxy = Proxy::start(postgres_address());
    let app = TestApp::spawn_with(Options {
        pg_address: Some(proxy.address.clone()),
        ..Options::default()
    });
    let s = app.session_path();
    let get = format!("{}/sessions?session_id={}", s.user_path(), s.session);
    assert!(load(&app, &get, 4, Duration::from_millis(300))
        .iter()
        .all(|&s| s == 200));

    proxy.cut();
    let started = Instant::now();
    let (status, body) = app.get(&get);
    assert_outage(status, &body, "the first request while down");
    assert!(started.elapsed() < Duration::from_secs(12));
    // The pool now knows: each further request fails fast.
    for n in 0..5 {
        let started = Instant::now();
        let (status, body) = app.get(&get);
        assert_outage(status, &body, "a request while down");
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "request {n} while down took {took:?}"
        );
    }
    // A write while down is refused, not acknowledged.
    let (status, body) = app.post(&s.messages(), json!({ "content": "x", "is_user": true }));
    assert_outage(status, &body, "a write while down");

    proxy.restore();
    let started = Instant::now();
    loop {
        let (status, body) = app.get(&get);
        if status == 200 {
            break;
        }
        assert_outage(status, &body, "a request while recovering");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no recovery within 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(load(&app, &get, 4, Duration::from_millis(300))
        .iter()
        .all(|&s| s == 200));
    let page = app.ok(app.post(&format!("{}/list", s.messages()), json!({})));
    assert_eq!(page["total"], 0, "the refused write was stored");
}

/// While the database is down the log says so once (no line per failed connection attempt), and
/// once more when it is back.
#[test]
fn an_outage_is_logged_once_when_it_begins_and_once_when_it_ends() {
    if !on_postgres() {
        eprintln!("skipped: PostgreSQL only (set TEST_DATABASE_URL)");
        return;
    }
    let db = FreshDatabase::new(None);
    let proxy = Proxy::start(postgres_address());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let server = Honcho::start_logged(
        &with_address(&db.url, &proxy.address),
        &[("LOG_LEVEL", "info"), ("DATABASE_POOL_SIZE", "4")],
        Some(&log),
    );
    let app = id(&server
        .post("/v1/apps", &json!({ "name": "outage" }))
        .unwrap());
    let get = format!("{}/v1/apps?app_id={app}", server.base);
    proxy.cut();
    for _ in 0..5 {
        let status = match ureq::get(&get).call() {
            Err(ureq::Error::Status(status, _)) => status,
            other => panic!("answered while down: {other:?}"),
        };
        assert_eq!(status, 503);
    }
    proxy.restore();
    let started = Instant::now();
    while ureq::get(&get).call().is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "no recovery");
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let count = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count("database unavailable"), 1, "{text}");
    assert_eq!(count("database available again"), 1, "{text}");
    assert_eq!(count("r2d2"), 0, "{text}");
}

#[test]
fn a_stalled_request_is_answered_408_and_its_connection_closed() {
    let app = TestApp::spawn_with(Options {
        body_timeout: Duration::from_secs(1),
        ..Options::default()
    });
    let addr = app.base.trim_start_matches("http://").to_string();
    for (what, head) in [
        (
            "a half-sent body",
            "POST /v1/apps HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: 100\r\n\r\n{\"name\": ",
        ),
        ("half-sent headers", "POST /v1/apps HTTP/1.1\r\nhost: x\r\n"),
    ] {
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let started = Instant::now();
        stream.write_all(head.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let took = started.elapsed();
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "{what}: answered {answer:?} after {took:?}"
        );
        assert!(
            took < Duration::from_secs(5),
            "{what}: closed after {took:?}"
        );
    }
    // The server still serves.
    assert_eq!(app.post("/v1/apps", json!({ "name": "after" })).0, 200);
}

#[test]
fn sqlite_write_ahead_log_stays_bounded_under_sustained_writes() {
    if on_postgres() {
        eprintln!("skipped: SQLite only");
        return;
    }
    const LIMIT: u64 = 1024 * 1024;
    let app = TestApp::spawn_with(Options {
        db: DbOptions {
            sqlite_wal_limit: LIMIT,
            ..DbOptions::with_max_size(4)
        },
        ..Options::default()
    });
    let wal = PathBuf::from(format!("{}-wal", app.database_url()));
    let s = app.session_path();
    let batch = json!({ "messages": (0..50)
        .map(|i| json!({ "content": format!("{i:04} {}", "x".repeat(4000)), "is_user": true }))
        .collect::<Vec<_>>() });
    let done = AtomicBool::new(false);
    let largest = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut largest = 0;
            while !done.load(Ordering::Relaxed) {
                largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
                std::thread::sleep(Duration::from_millis(5));
            }
            largest
        });
        let readers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    while !done.load(Ordering::Relaxed) {
                        app.post(&format!("{}/list?size=5", s.messages()), json!({}));
                    }
                })
            })
            .collect();
        let writers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    for _ in 0..40 {
                        assert_eq!(
                            app.post(&format!("{}/batch", s.messages()), batch.clone())
                                .0,
                            200
                        );
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        sampler.join().unwrap()
    });
    let written = 4 * 40 * 50 * 4000;
    eprintln!("largest write-ahead log: {largest} bytes");
    assert!(
        largest < 4 * LIMIT,
        "the write-ahead log reached {largest} bytes (limit {LIMIT}) while {written} bytes were written"
    );
}

pub fn post_json(base: &str, path: &str, body: &Value) -> Result<Value, String> {
    ureq::post(&format!("{base}{path}"))
        .send_json(body.clone())
        .map_err(|e| e.to_string())?
        .into_json()
        .map_err(|e| e.to_string())
}

#[test]
fn a_server_killed_under_batch_load_keeps_every_acknowledged_batch_whole() {
    const PER_BATCH: usize = 10;
    let db = FreshDatabase::new(None);
    let server = Honcho::start(&db.url);
    let messages = server.new_session("kill");
    let acknowledged = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (base, messages, acknowledged) = (&server.base, &messages, &acknowledged);
            scope.spawn(move || {
                for b in 0.. {
                    let batch = json!({ "messages": (0..PER_BATCH)
                        .map(|k| json!({ "content": format!("t{t}-b{b}-m{k}"), "is_user": true }))
                        .collect::<Vec<_>>() });
                    match post_json(base, &format!("{messages}/batch"), &batch) {
                        Ok(_) => acknowledged.lock().unwrap().push(format!("t{t}-b{b}")),
                        Err(_) => return,
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(1500));
        // SIGKILL: no shutdown, no flush.
        let killed = Command::new("kill")
            .args(["-KILL", &server.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    });
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(acknowledged.len() > 5, "too little load before the kill");

    drop(server);
    let server = Honcho::start(&db.url);
    let mut stored = Vec::new();
    for page in 1.. {
        let body = server
            .post(&format!("{messages}/list?page={page}&size=100"), &json!({}))
            .unwrap();
        let items = body["items"].as_array().unwrap().clone();
        if items.is_empty() {
            break;
        }
        stored.extend(
            items
                .into_iter()
                .map(|m| m["content"].as_str().unwrap().to_string()),
        );
    }
    let mut batches: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for content in &stored {
        let (batch, _) = content.rsplit_once("-m").unwrap();
        batches
            .entry(batch.to_string())
            .or_default()
            .push(content.clone());
    }
    for (batch, contents) in &batches {
        let want: Vec<String> = (0..PER_BATCH).map(|k| format!("{batch}-m{k}")).collect();
        assert_eq!(contents, &want, "batch {batch} is partial or out of order");
    }
    for batch in &acknowledged {
        assert!(
            batches.contains_key(batch),
            "acknowledged batch {batch} was lost"
        );
    }
}
