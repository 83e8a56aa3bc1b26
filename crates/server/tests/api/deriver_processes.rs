//! `honcho deriver` processes over one database: a worker killed with SIGKILL in the middle of an
//! item loses and repeats nothing, and two workers share the sessions of one PostgreSQL database,
//! each item done once and every session in order.

use crate::helpers::{id, on_postgres, Options, TestApp};
use crate::insights::wait_for_queue;
use crate::model_server::{default_reply, Asked, ModelServer, Protocol, Reply, Role};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `honcho deriver` process on `app`'s database, asking `server`'s models.
struct Worker(Child);

impl Worker {
    /// Leases of 2 s, so that a killed worker's session is taken over soon.
    fn start(app: &TestApp, server: &ModelServer, workers: usize) -> Worker {
        Self::start_with_lease(app, server, workers, 2)
    }

    fn start_with_lease(
        app: &TestApp,
        server: &ModelServer,
        workers: usize,
        lease_secs: u64,
    ) -> Worker {
        Self::start_with_env(app, server, workers, lease_secs, &[])
    }

    fn start_with_env(
        app: &TestApp,
        server: &ModelServer,
        workers: usize,
        lease_secs: u64,
        env: &[(&str, &str)],
    ) -> Worker {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_honcho"));
        cmd.arg("deriver")
            .env("DATABASE_URL", app.database_url())
            .env("DERIVER_WORKERS", workers.to_string())
            .env("DERIVER_LEASE_SECS", lease_secs.to_string())
            .env("DERIVER_POLL_MS", "50")
            .env("DERIVER_RETRY_BASE_MS", "50")
            .env("LOG_LEVEL", "warn")
            .env_remove("EMBEDDING_PROVIDER")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (name, value) in server.env() {
            cmd.env(name, value);
        }
        cmd.envs(env.iter().copied());
        Worker(cmd.spawn().expect("honcho deriver starts"))
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The API server: queues messages (a model is configured) but derives nothing itself.
fn api(server: &ModelServer) -> TestApp {
    TestApp::spawn_with(Options {
        models: Some(server.models()),
        deriver: None,
        ..Options::default()
    })
}

/// `s{session}m{message}` and words of its own.
fn content(session: usize, message: usize) -> String {
    format!("s{session}m{message} golf{session}x{message} hotel{session}x{message} india{session}x{message}")
}

/// `(session, message)` of a facts request.
fn position(asked: &Asked) -> (usize, usize) {
    let tag = asked.new_message().split_whitespace().next().unwrap_or("");
    let (s, m) = tag.trim_start_matches('s').split_once('m').unwrap();
    (s.parse().unwrap(), m.parse().unwrap())
}

/// Every fact of the user's protected collection, by the message it came from.
fn facts_by_message(app: &TestApp, user_path: &str) -> HashMap<String, usize> {
    let collection = app.ok(app.get(&format!("{user_path}/collections/name/honcho")));
    let mut by_message = HashMap::new();
    let mut page = 1;
    loop {
        let answer = app.ok(app.post(
            &format!(
                "{user_path}/collections/{}/documents/list?size=100&page={page}",
                id(&collection)
            ),
            json!({}),
        ));
        for fact in answer["items"].as_array().unwrap() {
            *by_message
                .entry(fact["metadata"]["message_id"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
        if page >= answer["pages"].as_u64().unwrap() {
            return by_message;
        }
        page += 1;
    }
}

/// A model server that holds the first facts call for `(session, message)` open (the worker asking
/// it can be killed while it waits) and answers every other call; with the positions of the facts
/// calls in the order asked.
struct Holding {
    server: ModelServer,
    held: Arc<AtomicBool>,
    order: Arc<Mutex<Vec<(usize, usize)>>>,
}

impl Holding {
    fn at(target: (usize, usize)) -> Holding {
        let held = Arc::new(AtomicBool::new(false));
        let order = Arc::new(Mutex::new(Vec::new()));
        let (h, o) = (held.clone(), order.clone());
        let server = ModelServer::scripted(Protocol::OpenAi, move |asked| {
            if asked.role() == Role::Facts {
                let at = position(asked);
                o.lock().unwrap().push(at);
                if at == target && !h.swap(true, Ordering::SeqCst) {
                    return Reply::Hold;
                }
            }
            default_reply(asked)
        });
        Holding {
            server,
            held,
            order,
        }
    }

    /// Waits until the held call has been asked.
    fn wait_for_hold(&self) {
        let started = Instant::now();
        while !self.held.load(Ordering::SeqCst) {
            assert!(started.elapsed() < Duration::from_secs(60), "no held call");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_deriver_killed_in_the_middle_of_an_item_loses_and_repeats_nothing() {
    // The facts call for message 5 of session 0 is held open the first time: the worker is killed
    // while it waits.
    let holding = Holding::at((0, 5));
    let (server, order) = (&holding.server, &holding.order);
    let app = api(server);
    let s = app.session_path();
    let second = app.ok(app.post(
        &format!("/v1/apps/{}/users/{}/sessions", s.app, s.user),
        json!({}),
    ));
    let sessions = [s.session.clone(), id(&second)];
    let mut messages: Vec<Value> = Vec::new();
    for (i, session) in sessions.iter().enumerate() {
        let batch: Vec<Value> = (0..10)
            .map(|m| json!({ "content": content(i, m), "is_user": true }))
            .collect();
        let stored = app.ok(app.post(
            &format!("{}/sessions/{session}/messages/batch", s.user_path()),
            json!({ "messages": batch }),
        ));
        messages.extend(stored.as_array().unwrap().iter().cloned());
    }

    let mut worker = Worker::start(&app, server, 2);
    holding.wait_for_hold();
    std::thread::sleep(Duration::from_millis(100));
    worker.kill();
    let status = app.ok(app.get(&format!(
        "/v1/apps/{}/deriver/status?session_id={}",
        s.app, s.session
    )));
    assert_eq!(status["done"], 5, "items before the held one: {status}");
    assert_eq!(status["in_progress"], 1, "the held one: {status}");

    let _restarted = Worker::start(&app, server, 2);
    let status = wait_for_queue(&app, &s.app, &format!("user_id={}", s.user), 20);
    assert_eq!(status["done"], 20, "{status}");
    assert_eq!(status["failed"], 0, "{status}");

    // Exactly one fact per message.
    let facts = facts_by_message(&app, &s.user_path());
    assert_eq!(facts.len(), 20, "{facts:?}");
    for message in &messages {
        assert_eq!(facts.get(&id(message)), Some(&1), "{message}");
    }
    // Each session in order; only an item in flight at the kill was asked for twice (the held
    // one, and perhaps the other session's).
    let order = order.lock().unwrap().clone();
    for session in 0..2 {
        let mut seen: Vec<usize> = order
            .iter()
            .filter(|(s, _)| *s == session)
            .map(|(_, m)| *m)
            .collect();
        let asked = seen.len();
        seen.dedup();
        assert_eq!(seen, (0..10).collect::<Vec<_>>(), "session {session}");
        assert!(asked <= 11, "session {session}: {asked} calls");
        if session == 0 {
            assert_eq!(asked, 11, "the held item was asked for again");
        }
    }
}

#[test]
fn a_message_whose_worker_dies_on_its_last_attempt_is_parked_and_its_batch_goes_on() {
    // One attempt per message; the facts call of message 1 (of a batch of 4) is held the first
    // time and its worker killed: the restarted worker parks message 1 as failed without asking
    // again, and derives messages 2 and 3.
    let holding = Holding::at((0, 1));
    let (server, order) = (&holding.server, &holding.order);
    let app = api(server);
    let s = app.session_path();
    let batch: Vec<Value> = (0..4)
        .map(|m| json!({ "content": content(0, m), "is_user": true }))
        .collect();
    let stored = app.ok(app.post(
        &format!("{}/messages/batch", s.session_path()),
        json!({ "messages": batch }),
    ));
    let one_attempt = [("DERIVER_MAX_ATTEMPTS", "1")];
    let mut worker = Worker::start_with_env(&app, server, 1, 2, &one_attempt);
    holding.wait_for_hold();
    let scope = format!("session_id={}", s.session);
    let status = app.ok(app.get(&format!("/v1/apps/{}/deriver/status?{scope}", s.app)));
    assert_eq!(
        (&status["done"], &status["in_progress"], &status["pending"]),
        (&json!(1), &json!(1), &json!(2)),
        "{status}"
    );
    worker.kill();

    let _restarted = Worker::start_with_env(&app, server, 1, 2, &one_attempt);
    let status = wait_for_queue(&app, &s.app, &scope, 4);
    assert_eq!(
        (&status["done"], &status["failed"]),
        (&json!(3), &json!(1)),
        "{status}"
    );
    let asked: Vec<usize> = order.lock().unwrap().iter().map(|(_, m)| *m).collect();
    assert_eq!(asked, vec![0, 1, 2, 3], "message 1 asked once");
    let facts = facts_by_message(&app, &s.user_path());
    let messages = stored.as_array().unwrap();
    for (i, message) in messages.iter().enumerate() {
        let expected = if i == 1 { None } else { Some(&1) };
        assert_eq!(facts.get(&id(message)), expected, "message {i}");
    }
}

#[test]
fn two_deriver_processes_share_fifty_sessions_each_item_once_and_in_order() {
    if !on_postgres() {
        eprintln!("skipped on SQLite: several deriver processes are a PostgreSQL deployment");
        return;
    }
    const SESSIONS: usize = 50;
    const MESSAGES: usize = 20;
    // Both model servers write into one log with one clock, so that order across processes shows.
    let clock = Arc::new(AtomicU64::new(0));
    let log: Arc<Mutex<Vec<Call>>> = Arc::new(Mutex::new(Vec::new()));
    let server_for = |worker: usize| {
        let (clock, log) = (clock.clone(), log.clone());
        ModelServer::scripted(Protocol::OpenAi, move |asked| {
            if asked.role() == Role::Facts {
                let tick = clock.fetch_add(1, Ordering::SeqCst);
                log.lock().unwrap().push((tick, worker, position(asked)));
                return Reply::Slow(Duration::from_millis(5), default_text(asked));
            }
            default_reply(asked)
        })
    };
    let (first, second) = (server_for(0), server_for(1));
    let app = api(&first);
    let s = app.session_path();
    let mut sessions = Vec::new();
    for i in 0..SESSIONS {
        let session = app.ok(app.post(
            &format!("/v1/apps/{}/users/{}/sessions", s.app, s.user),
            json!({}),
        ));
        let batch: Vec<Value> = (0..MESSAGES)
            .map(|m| json!({ "content": content(i, m), "is_user": true }))
            .collect();
        app.ok(app.post(
            &format!("{}/sessions/{}/messages/batch", s.user_path(), id(&session)),
            json!({ "messages": batch }),
        ));
        sessions.push(id(&session));
    }
    // Leases long enough that none runs out on a loaded machine: then no item is asked for twice
    // (an expired lease is taken over and its item redone, which is correct but not what this
    // test counts).
    let _a = Worker::start_with_lease(&app, &first, 4, 30);
    let _b = Worker::start_with_lease(&app, &second, 4, 30);
    let status = wait_for_queue(
        &app,
        &s.app,
        &format!("user_id={}", s.user),
        (SESSIONS * MESSAGES) as i64,
    );
    assert_eq!(status["done"], (SESSIONS * MESSAGES) as i64, "{status}");

    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), SESSIONS * MESSAGES, "each item asked for once");
    for worker in 0..2 {
        let did = log.iter().filter(|(_, w, _)| *w == worker).count();
        assert!(did > 0, "worker {worker} did no work");
        eprintln!("worker {worker}: {did} items");
    }
    for session in 0..SESSIONS {
        let mut seen: Vec<(u64, usize)> = log
            .iter()
            .filter(|(_, _, (s, _))| *s == session)
            .map(|(tick, _, (_, m))| (*tick, *m))
            .collect();
        seen.sort();
        let order: Vec<usize> = seen.into_iter().map(|(_, m)| m).collect();
        assert_eq!(
            order,
            (0..MESSAGES).collect::<Vec<_>>(),
            "session {session}"
        );
    }
    let facts = facts_by_message(&app, &s.user_path());
    assert_eq!(facts.len(), SESSIONS * MESSAGES);
    assert!(facts.values().all(|n| *n == 1));
    let summaries = app.ok(app.post(
        &format!("{}/metamessages/list?size=1", s.user_path()),
        json!({ "label": "honcho_chat_summary_short" }),
    ));
    assert_eq!(summaries["total"], SESSIONS as i64);
}

/// A facts call: the shared clock's tick, the worker process, `(session, message)`.
type Call = (u64, usize, (usize, usize));

/// The default facts answer as text.
fn default_text(asked: &Asked) -> String {
    match default_reply(asked) {
        Reply::Text(text) => text,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_worker_that_lost_its_lease_cannot_commit() {
    // Worker A is frozen (SIGSTOP) during the facts call of message 3 for longer than its lease;
    // worker B takes the session over and finishes it; A, thawed, gets its answer and must write
    // nothing.
    let first_call = Arc::new(AtomicBool::new(false));
    let frozen = Arc::new(Mutex::new(None::<u32>));
    let (f, z) = (first_call.clone(), frozen.clone());
    let server = ModelServer::scripted(Protocol::OpenAi, move |asked| {
        if asked.role() == Role::Facts
            && position(asked) == (0, 3)
            && !f.swap(true, Ordering::SeqCst)
        {
            if let Some(pid) = *z.lock().unwrap() {
                let _ = Command::new("kill")
                    .args(["-STOP", &pid.to_string()])
                    .status();
            }
            return Reply::Slow(Duration::from_secs(3), default_text(asked));
        }
        default_reply(asked)
    });
    let app = api(&server);
    let s = app.session_path();
    let batch: Vec<Value> = (0..6)
        .map(|m| json!({ "content": content(0, m), "is_user": true }))
        .collect();
    let stored = app.ok(app.post(
        &format!("{}/messages/batch", s.session_path()),
        json!({ "messages": batch }),
    ));
    let mut a = Command::new(env!("CARGO_BIN_EXE_honcho"));
    a.arg("deriver")
        .env("DATABASE_URL", app.database_url())
        .env("DERIVER_WORKERS", "1")
        .env("DERIVER_LEASE_SECS", "1")
        .env("DERIVER_POLL_MS", "50")
        .env("LOG_LEVEL", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in server.env() {
        a.env(name, value);
    }
    *frozen.lock().unwrap() = None;
    let mut a = Worker(a.spawn().unwrap());
    *frozen.lock().unwrap() = Some(a.0.id());
    let started = Instant::now();
    while !first_call.load(Ordering::SeqCst) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no call for message 3"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A is frozen now. B claims the session as soon as A's lease (1 s) has run out, and finishes it.
    let mut b = Worker::start(&app, &server, 1);
    let status = wait_for_queue(&app, &s.app, &format!("session_id={}", s.session), 6);
    assert_eq!(status["done"], 6, "{status}");
    b.kill();
    // Thaw A: its answer is waiting; its commit must be refused.
    let _ = Command::new("kill")
        .args(["-CONT", &a.0.id().to_string()])
        .status();
    let mut stderr = a.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut stderr, &mut buf) {
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            if text.contains("lease was lost") {
                let _ = tx.send(text.clone());
            }
        }
    });
    let said = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("A reports that it lost its lease");
    assert!(said.contains("lease was lost"), "{said}");
    a.kill();
    let facts = facts_by_message(&app, &s.user_path());
    assert_eq!(facts.len(), 6, "{facts:?}");
    for message in stored.as_array().unwrap() {
        assert_eq!(facts.get(&id(message)), Some(&1), "{message}");
    }
}
