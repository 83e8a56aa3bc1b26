//! `cargo xtask bench`: build the release server, start it on a fresh SQLite
//! database (and optionally on PostgreSQL), seed data through the HTTP API and
//! load-test a few representative endpoints.
//!
//! The load generator is deliberately dependency-free: one OS thread per
//! connection, each driving a small blocking HTTP/1.1 keep-alive client over a
//! `TcpStream`. Every request's latency is recorded, so percentiles are exact.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

const USAGE: &str = "usage: cargo xtask bench [OPTIONS]

Builds the release server, starts it on a fresh SQLite database (then on
PostgreSQL with --postgres), seeds data over HTTP and load-tests it.

options:
  --duration SECS    measured seconds per scenario, after a 1 s warm-up (default 10)
  --connections N    concurrent keep-alive connections, one thread each (default 16)
  --postgres URL     also benchmark against this PostgreSQL database (after SQLite)
  --only a,b,...     run only these scenarios: batch, message, list, get-session,
                     query (top 5 of 10,000 documents), document (create),
                     search (a user's top 10 of 10,000 messages in 10 sessions)
  --insights         instead of the scenarios above: the insights' benchmarks against
                     a mock model answering after 50 ms (deriver items/s with 1, 4 and
                     16 workers, chat latency above the model's, batch req/s with
                     messages queued for the deriver vs not; --only deriver,chat,enqueue)
  --soak             instead of the scenarios above: a steady mixed load with insights on
                     (mock model, 4 deriver workers, caches of 32 MiB each) for --duration
                     seconds (default 300), printing the server's RSS every 10 s, at the end
                     and 60 s after the load
  --import           instead of the scenarios above: `honcho import` from a seeded local
                     source (20 users, 100 sessions, 100,000 messages, 1,000 documents)
                     into a fresh SQLite database (and into --postgres), twice
  --skip-build       use the existing target/release/honcho as is
  --binary PATH      use this server binary (for instance an older build, to compare)
  --help             print this help

environment:
  HONCHO_ROOT        workspace root (defaults to the parent of the xtask crate)";

/// `cargo` arguments that build the server binary.
const BUILD_ARGS: [&str; 6] = [
    "build",
    "--release",
    "-p",
    "honcho-server",
    "--bin",
    "honcho",
];
/// Requests sent before this much time has passed are not measured.
const WARM_UP: Duration = Duration::from_secs(1);
/// Messages per batch request (the API's maximum).
const BATCH_SIZE: usize = 100;
/// Messages seeded into the session used by the `list` scenario.
const LIST_MESSAGES: usize = 10_000;
/// Documents in the collection the query scenario searches.
const QUERY_DOCUMENTS: usize = 10_000;
/// Messages of the user the search scenario searches (over `SEARCH_SESSIONS` sessions).
const SEARCH_MESSAGES: usize = 10_000;
const SEARCH_SESSIONS: usize = 10;
/// Connections that seed the query collection.
const SEED_CONNECTIONS: usize = 8;
/// Length of every message's content, in characters.
const CONTENT_LEN: usize = 200;
/// Socket read/write timeout: a stuck server fails requests instead of hanging.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server may take to answer `GET /health` with 200.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Scenario {
    Batch,
    Message,
    List,
    GetSession,
    Query,
    Document,
    Search,
}

impl Scenario {
    const ALL: [Self; 7] = [
        Self::Batch,
        Self::Message,
        Self::List,
        Self::GetSession,
        Self::Query,
        Self::Document,
        Self::Search,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Batch => "batch",
            Self::Message => "message",
            Self::List => "list",
            Self::GetSession => "get-session",
            Self::Query => "query",
            Self::Document => "document",
            Self::Search => "search",
        }
    }
}

#[derive(Clone)]
pub(crate) struct Options {
    pub(crate) duration: Duration,
    pub(crate) connections: usize,
    pub(crate) postgres: Option<String>,
    pub(crate) scenarios: Vec<Scenario>,
    pub(crate) skip_build: bool,
    /// `--binary`: the server to run instead of the release build.
    pub(crate) binary: Option<PathBuf>,
    pub(crate) insights: bool,
    /// `--soak`: the memory soak instead of the scenarios.
    pub(crate) soak: bool,
    /// `--import`: `honcho import`'s speed instead of the scenarios.
    pub(crate) import: bool,
    /// With `insights`: which of `INSIGHTS_PARTS` to run.
    pub(crate) insights_parts: Vec<&'static str>,
}

/// The parts of `--insights`.
const INSIGHTS_PARTS: [&str; 3] = ["deriver", "chat", "enqueue"];

/// Parses the command line; `Ok(None)` means `--help` was asked for.
fn parse_args(args: &[String]) -> Result<Option<Options>, String> {
    let mut opts = Options {
        duration: Duration::from_secs(10),
        connections: 16,
        postgres: None,
        scenarios: Scenario::ALL.to_vec(),
        skip_build: false,
        binary: None,
        insights: false,
        soak: false,
        import: false,
        insights_parts: INSIGHTS_PARTS.to_vec(),
    };
    let mut only = None;
    let mut duration_given = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "--help" | "-h" => return Ok(None),
            "--skip-build" => opts.skip_build = true,
            "--binary" => opts.binary = Some(PathBuf::from(value()?)),
            "--insights" => opts.insights = true,
            "--soak" => opts.soak = true,
            "--import" => opts.import = true,
            "--postgres" => opts.postgres = Some(value()?.clone()),
            "--duration" => {
                let secs = value()?.parse().ok().filter(|&s: &f64| s > 0.0);
                opts.duration = secs
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or("--duration must be a positive number of seconds")?;
                duration_given = true;
            }
            "--connections" => {
                let n = value()?.parse().ok().filter(|&n| n > 0);
                opts.connections = n.ok_or("--connections must be a positive integer")?;
            }
            "--only" => only = Some(value()?.clone()),
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    if opts.soak && !duration_given {
        opts.duration = Duration::from_secs(300);
    }
    if let Some(only) = only {
        let names = only.split(',').map(str::trim);
        if opts.insights {
            opts.insights_parts = names
                .map(|name| {
                    INSIGHTS_PARTS
                        .into_iter()
                        .find(|p| *p == name)
                        .ok_or_else(|| format!("unknown insights part {name:?}\n\n{USAGE}"))
                })
                .collect::<Result<_, _>>()?;
        } else {
            let find = |name: &str| {
                let found = Scenario::ALL.into_iter().find(|s| s.name() == name);
                found.ok_or_else(|| format!("unknown scenario {name:?}\n\n{USAGE}"))
            };
            opts.scenarios = names.map(find).collect::<Result<_, _>>()?;
        }
    }
    Ok(Some(opts))
}

pub fn run(args: &[String]) -> Result<(), String> {
    let Some(opts) = parse_args(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    let binary = match &opts.binary {
        Some(path) => path.clone(),
        None => server_binary(opts.skip_build)?,
    };

    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "honcho bench: {cores} cores, {} connections, {:.1} s per scenario after {} s warm-up",
        opts.connections,
        opts.duration.as_secs_f64(),
        WARM_UP.as_secs()
    );

    let db = std::env::temp_dir().join(format!("honcho-bench-{}.db", std::process::id()));
    let db_url = db.to_str().ok_or("temp dir path is not UTF-8")?;
    remove_sqlite(&db); // leftovers of an earlier run with the same pid
    if opts.import {
        return crate::bench_import::run(&binary, opts.postgres.as_deref());
    }
    if opts.soak {
        let result = crate::bench_soak::run("sqlite", db_url, &binary, opts.duration);
        remove_sqlite(&db);
        result?;
        if let Some(url) = &opts.postgres {
            crate::bench_soak::run("postgres", url, &binary, opts.duration)?;
        }
        return Ok(());
    }
    if opts.insights {
        let result = crate::bench_insights::run("sqlite", db_url, &binary, &opts);
        remove_sqlite(&db);
        result?;
        if let Some(url) = &opts.postgres {
            crate::bench_insights::run("postgres", url, &binary, &opts)?;
        }
        return Ok(());
    }
    let result = bench_backend("sqlite", db_url, &binary, &opts);
    remove_sqlite(&db);
    result?;
    if let Some(url) = &opts.postgres {
        bench_backend("postgres", url, &binary, &opts)?;
    }
    Ok(())
}

/// The workspace root: `$HONCHO_ROOT` (for running this file elsewhere), else the parent of the
/// xtask crate.
pub(crate) fn workspace_root() -> PathBuf {
    match std::env::var_os("HONCHO_ROOT") {
        Some(root) => PathBuf::from(root),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("in a workspace")
            .into(),
    }
}

/// The release server binary, built first unless `skip_build`.
pub(crate) fn server_binary(skip_build: bool) -> Result<PathBuf, String> {
    let root = workspace_root();
    if !skip_build {
        eprintln!("building the release server...");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(&root)
            .args(BUILD_ARGS)
            .status();
        match status {
            Ok(status) if status.success() => {}
            Ok(status) => return Err(format!("cargo build failed ({status})")),
            Err(e) => return Err(format!("cannot run cargo: {e}")),
        }
    }
    // Cargo puts build output in `$CARGO_TARGET_DIR` (relative to the root) or `target`.
    let target = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
    let binary = root.join(target).join("release/honcho");
    if !binary.is_file() {
        return Err(format!(
            "{} does not exist; build it first",
            binary.display()
        ));
    }
    Ok(binary)
}

/// Deletes a SQLite database and its WAL side files.
pub(crate) fn remove_sqlite(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        let _ = fs::remove_file(path);
    }
}

/// Starts a server on `database_url`, seeds it, runs the scenarios and prints
/// the results table.
fn bench_backend(label: &str, db_url: &str, binary: &Path, opts: &Options) -> Result<(), String> {
    let (server, startup) = Server::start(binary, db_url, label)?;
    let startup_ms = startup.as_secs_f64() * 1e3;
    println!("\n{label}: start-up {startup_ms:.2} ms (spawn to first 200 from GET /health)");
    let fixture = Fixture::seed(server.port, opts)
        .map_err(|e| format!("{label}: {e}\n(server log: {})", server.log.display()))?;

    println!(
        "{:<12} {:>9} {:>9} {:>9} {:>8} {:>12} {:>11}",
        "scenario", "req/s", "p50 ms", "p99 ms", "errors", "max RSS MiB", "server CPU"
    );
    let mut first_errors = Vec::new();
    for &scenario in &opts.scenarios {
        let out = run_scenario(scenario, &fixture, &server, opts);
        let ms = |q| percentile_ms(&out.latencies, q).map_or("-".into(), |ms| format!("{ms:.2}"));
        let rss = out
            .max_rss_kib
            .map_or("-".into(), |kib| format!("{:.1}", kib as f64 / 1024.0));
        let rate = out.latencies.len() as f64 / opts.duration.as_secs_f64();
        let name = scenario.name();
        let (p50, p99, errors) = (ms(0.50), ms(0.99), out.errors);
        let cpu = out
            .server_cores
            .map_or("-".into(), |c| format!("{:.0}%", c * 100.0));
        println!("{name:<12} {rate:>9.0} {p50:>9} {p99:>9} {errors:>8} {rss:>12} {cpu:>11}");
        if let Some(error) = out.first_error {
            first_errors.push(format!("{label} {name}: first error: {error}"));
        }
    }
    first_errors.iter().for_each(|e| eprintln!("{e}"));
    server.finish();
    Ok(())
}

/// A running `honcho serve`; killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) port: u16,
    pub(crate) log: PathBuf,
}

impl Server {
    /// Spawns the server and polls `GET /health` every 2 ms until it answers
    /// 200; also returns that start-up time.
    fn start(binary: &Path, db_url: &str, label: &str) -> Result<(Self, Duration), String> {
        Self::start_with(binary, db_url, label, &[])
    }

    /// Like `start`, with extra environment variables.
    pub(crate) fn start_with(
        binary: &Path,
        db_url: &str,
        label: &str,
        env: &[(&str, String)],
    ) -> Result<(Self, Duration), String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| format!("cannot find a free port: {e}"))?
            .port();
        let pid = std::process::id();
        let log = std::env::temp_dir().join(format!("honcho-bench-{pid}-{label}.log"));
        let log_file = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let log_err = log_file.try_clone().map_err(|e| e.to_string())?;

        let spawned = Instant::now();
        let child = Command::new(binary)
            .arg("serve")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("DATABASE_URL", db_url)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        // From here on, dropping `server` kills the child, also on error paths.
        let mut server = Server { child, port, log };
        loop {
            let mut client = Client::new(port);
            if matches!(client.request("GET", "/health", None), Ok(r) if r.status == 200) {
                return Ok((server, spawned.elapsed()));
            }
            let log = server.log.display();
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "{label}: server exited ({status}) on start-up; see {log}"
                ));
            }
            if spawned.elapsed() > STARTUP_TIMEOUT {
                let secs = STARTUP_TIMEOUT.as_secs();
                return Err(format!(
                    "{label}: server not healthy after {secs} s; see {log}"
                ));
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Stops the server and removes its log (which error paths keep).
    pub(crate) fn finish(self) {
        let log = self.log.clone();
        drop(self);
        let _ = fs::remove_file(log);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Data created through the API before the scenarios run.
pub(crate) struct Fixture {
    /// `/v1/apps/{app_id}/users/{user_id}/sessions`
    sessions_path: String,
    /// One session per connection, for the write and get-session scenarios.
    sessions: Vec<String>,
    /// The session holding `LIST_MESSAGES` messages, for the list scenario.
    list_session: String,
    /// `.../collections/{id}/documents` of the collection holding `QUERY_DOCUMENTS` documents.
    documents_path: String,
    /// `/v1/apps/{app_id}/users/{user_id}/messages/query` of a user with `SEARCH_MESSAGES`
    /// messages.
    search_path: String,
}

impl Fixture {
    /// Creates an app (uniquely named, as PostgreSQL may hold earlier runs),
    /// a user, and only the sessions the selected scenarios need.
    pub(crate) fn seed(port: u16, opts: &Options) -> Result<Self, String> {
        let mut client = Client::new(port);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("bench-{}-{nanos}", std::process::id());
        let app = client.create("/v1/apps", json!({"name": name, "metadata": {}}))?;
        let user = client.create(&format!("/v1/apps/{app}/users"), json!({"name": name}))?;
        let sessions_path = format!("/v1/apps/{app}/users/{user}/sessions");
        let mut new_session = || client.create(&sessions_path, json!({"metadata": {}}));

        let mut sessions = Vec::new();
        if opts.scenarios.iter().any(|&s| s != Scenario::List) {
            sessions = (0..opts.connections)
                .map(|_| new_session())
                .collect::<Result<_, _>>()?;
        }
        let mut list_session = String::new();
        if opts.scenarios.contains(&Scenario::List) {
            list_session = new_session()?;
            let path = format!("{sessions_path}/{list_session}/messages/batch");
            let body = batch_body();
            for _ in 0..LIST_MESSAGES / BATCH_SIZE {
                let resp = client.request("POST", &path, Some(&body))?;
                if resp.status != 200 {
                    return Err(format!("seeding POST {path}: {}", resp.describe()));
                }
            }
        }
        let mut documents_path = String::new();
        if opts
            .scenarios
            .iter()
            .any(|s| matches!(s, Scenario::Query | Scenario::Document))
        {
            let collections = format!("/v1/apps/{app}/users/{user}/collections");
            let collection = client.create(&collections, json!({"name": "bench"}))?;
            documents_path = format!("{collections}/{collection}/documents");
            if opts.scenarios.contains(&Scenario::Query) {
                seed_documents(port, &documents_path)?;
            }
        }
        let mut search_path = String::new();
        if opts.scenarios.contains(&Scenario::Search) {
            let searched = client.create(
                &format!("/v1/apps/{app}/users"),
                json!({"name": format!("{name}-searched")}),
            )?;
            let user_path = format!("/v1/apps/{app}/users/{searched}");
            let per_session = SEARCH_MESSAGES / SEARCH_SESSIONS;
            for s in 0..SEARCH_SESSIONS {
                let session = client.create(&format!("{user_path}/sessions"), json!({}))?;
                let path = format!("{user_path}/sessions/{session}/messages/batch");
                for b in 0..per_session / BATCH_SIZE {
                    let first = s * per_session + b * BATCH_SIZE;
                    let messages: Vec<Value> = (first..first + BATCH_SIZE)
                        .map(|i| json!({"content": document_text(i), "is_user": i % 2 == 0}))
                        .collect();
                    let body = json!({ "messages": messages }).to_string();
                    let resp = client.request("POST", &path, Some(&body))?;
                    if resp.status != 200 {
                        return Err(format!("seeding POST {path}: {}", resp.describe()));
                    }
                }
            }
            search_path = format!("{user_path}/messages/query");
        }
        Ok(Fixture {
            sessions_path,
            sessions,
            list_session,
            documents_path,
            search_path,
        })
    }

    /// The request (method, path, body) connection `conn` repeats in `scenario`.
    fn request(&self, scenario: Scenario, conn: usize) -> (&'static str, String, Option<String>) {
        let base = &self.sessions_path;
        let own = self.sessions.get(conn).map_or("", String::as_str);
        match scenario {
            Scenario::Batch => (
                "POST",
                format!("{base}/{own}/messages/batch"),
                Some(batch_body()),
            ),
            Scenario::Message => {
                let body = json!({"content": content(conn), "is_user": true, "metadata": {}});
                (
                    "POST",
                    format!("{base}/{own}/messages"),
                    Some(body.to_string()),
                )
            }
            Scenario::List => {
                let path = format!("{base}/{}/messages/list?page=1&size=50", self.list_session);
                ("POST", path, Some("{}".into()))
            }
            Scenario::GetSession => ("GET", format!("{base}?session_id={own}"), None),
            Scenario::Query => {
                let body =
                    json!({"query": "what does the user like to eat for breakfast", "top_k": 5});
                let path = format!("{}/query", self.documents_path);
                ("POST", path, Some(body.to_string()))
            }
            Scenario::Document => {
                let body = json!({"content": document_text(conn), "metadata": {}});
                ("POST", self.documents_path.clone(), Some(body.to_string()))
            }
            Scenario::Search => {
                let body =
                    json!({"query": "what does the user like to eat for breakfast", "top_k": 10});
                ("POST", self.search_path.clone(), Some(body.to_string()))
            }
        }
    }
}

/// Fills the query collection with `QUERY_DOCUMENTS` distinct documents over several connections.
fn seed_documents(port: u16, path: &str) -> Result<(), String> {
    in_parallel(SEED_CONNECTIONS, |worker| {
        let mut client = Client::new(port);
        for i in (worker..QUERY_DOCUMENTS).step_by(SEED_CONNECTIONS) {
            client.create(
                path,
                json!({"content": document_text(i), "metadata": {"i": i}}),
            )?;
        }
        Ok(())
    })
}

/// Runs `work(0)` .. `work(n - 1)` on threads of their own; the first error, if any.
pub(crate) fn in_parallel(
    n: usize,
    work: impl Fn(usize) -> Result<(), String> + Sync,
) -> Result<(), String> {
    std::thread::scope(|s| {
        let work = &work;
        let threads: Vec<_> = (0..n).map(|i| s.spawn(move || work(i))).collect();
        threads.into_iter().try_for_each(|t| {
            t.join()
                .map_err(|_| "a seeding thread panicked".to_string())?
        })
    })
}

/// A fact-like sentence of about `CONTENT_LEN` characters, different for each `i`.
pub(crate) fn document_text(i: usize) -> String {
    const TOPICS: [&str; 8] = [
        "likes oatmeal with berries for breakfast",
        "runs five kilometres every morning",
        "works as a software engineer in Lisbon",
        "has a sister who lives in Berlin",
        "is learning Japanese on weekends",
        "prefers green tea to coffee",
        "adopted a rescue dog named Pixel",
        "plans a trip to Patagonia next spring",
    ];
    let mut text = format!(
        "Fact {i}: the user {} and {}.",
        TOPICS[i % 8],
        TOPICS[(i / 8) % 8]
    );
    while text.len() < CONTENT_LEN {
        text.push_str(" Noted during conversation number ");
        text.push_str(&(i % 97).to_string());
        text.push('.');
    }
    text.truncate(CONTENT_LEN);
    text
}

/// A message body of exactly `CONTENT_LEN` ASCII characters.
pub(crate) fn content(i: usize) -> String {
    let mut text = format!("bench message {i}:");
    while text.len() < CONTENT_LEN {
        text.push_str(" lorem ipsum dolor sit amet");
    }
    text.truncate(CONTENT_LEN);
    text
}

fn batch_body() -> String {
    let messages: Vec<Value> = (0..BATCH_SIZE)
        .map(|i| json!({"content": content(i), "is_user": i % 2 == 0}))
        .collect();
    json!({ "messages": messages }).to_string()
}

/// What a scenario measured, per connection and then merged.
#[derive(Default)]
pub(crate) struct Outcome {
    /// Microseconds per successful measured request (sorted once merged).
    pub(crate) latencies: Vec<u32>,
    pub(crate) errors: usize,
    pub(crate) first_error: Option<String>,
    pub(crate) max_rss_kib: Option<u64>,
    /// Server CPU time over the measured window, in cores (1.0 = one core busy).
    pub(crate) server_cores: Option<f64>,
}

pub(crate) fn run_scenario(
    scenario: Scenario,
    fixture: &Fixture,
    server: &Server,
    opts: &Options,
) -> Outcome {
    // Encode every connection's request once; the hot loop only writes bytes.
    let requests: Vec<Vec<u8>> = (0..opts.connections)
        .map(|conn| {
            let (method, path, body) = fixture.request(scenario, conn);
            encode(server.port, method, &path, body.as_deref())
        })
        .collect();
    let warm_end = Instant::now() + WARM_UP;
    let end = warm_end + opts.duration;
    let stop = AtomicBool::new(false);

    thread::scope(|s| {
        let sampler = s.spawn(|| sample_max_rss(server.child.id(), &stop));
        let cpu = s.spawn(|| {
            thread::sleep(warm_end.saturating_duration_since(Instant::now()));
            let start = cpu_seconds(server.child.id());
            thread::sleep(end.saturating_duration_since(Instant::now()));
            Some((cpu_seconds(server.child.id())? - start?) / opts.duration.as_secs_f64())
        });
        let workers: Vec<_> = requests
            .iter()
            .map(|raw| s.spawn(move || worker(server.port, raw, warm_end, end)))
            .collect();
        let mut total = Outcome::default();
        for worker in workers {
            let part = worker.join().expect("bench worker panicked");
            total.latencies.extend(part.latencies);
            total.errors += part.errors;
            total.first_error = total.first_error.or(part.first_error);
        }
        stop.store(true, Ordering::Relaxed);
        total.max_rss_kib = sampler.join().expect("RSS sampler panicked");
        total.server_cores = cpu.join().expect("CPU sampler panicked");
        total.latencies.sort_unstable();
        total
    })
}

/// Sends `raw` over one keep-alive connection until `end`. Only requests that
/// start after `warm_end` and finish by `end` count; non-200s are errors.
fn worker(port: u16, raw: &[u8], warm_end: Instant, end: Instant) -> Outcome {
    let mut client = Client::new(port);
    let mut out = Outcome::default();
    loop {
        let started = Instant::now();
        if started >= end {
            return out;
        }
        let result = client.send(raw);
        let finished = Instant::now();
        let measured = started >= warm_end && finished <= end;
        let error = match result {
            Ok(resp) if resp.status == 200 => {
                let micros = (finished - started).as_micros();
                if measured {
                    out.latencies
                        .push(u32::try_from(micros).unwrap_or(u32::MAX));
                }
                continue;
            }
            Ok(resp) => resp.describe(),
            Err(e) => {
                thread::sleep(Duration::from_millis(10)); // don't spin on a dead server
                e
            }
        };
        if measured {
            out.errors += 1;
            out.first_error.get_or_insert(error);
        }
    }
}

/// User plus system CPU time of `pid` so far, in seconds (clock ticks of 1/100 s, as on Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th of them.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Samples `VmRSS` of `pid` every 100 ms until `stop`; the maximum, in KiB.
fn sample_max_rss(pid: u32, stop: &AtomicBool) -> Option<u64> {
    let read = || memory_kib(pid, "VmRSS:");
    let mut max = None;
    while !stop.load(Ordering::Relaxed) {
        max = max.max(read());
        thread::sleep(Duration::from_millis(100));
    }
    max.max(read())
}

/// A memory figure of `pid` (`field` is a line's head in `/proc/{pid}/status`, e.g. `VmRSS:`), in
/// KiB.
pub(crate) fn memory_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix(field))?;
    line.split_whitespace().next()?.parse().ok()
}

/// Nearest-rank percentile of sorted microsecond latencies, in milliseconds.
pub(crate) fn percentile_ms(sorted: &[u32], q: f64) -> Option<f64> {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).map(|&us| f64::from(us) / 1e3)
}

pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// `HTTP 422: {...}`, the body cut short, for error messages.
    pub(crate) fn describe(&self) -> String {
        let body: String = String::from_utf8_lossy(&self.body)
            .chars()
            .take(500)
            .collect();
        format!("HTTP {}: {body}", self.status)
    }
}

/// A minimal blocking HTTP/1.1 client on one keep-alive connection, which is
/// (re)opened lazily after it failed or the server closed it.
pub(crate) struct Client {
    port: u16,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    pub(crate) fn new(port: u16) -> Self {
        Client { port, conn: None }
    }

    pub(crate) fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<Response, String> {
        self.send(&encode(self.port, method, path, body))
            .map_err(|e| format!("{method} {path}: {e}"))
    }

    /// POSTs `body` to `path` and returns the `id` of the created resource.
    pub(crate) fn create(&mut self, path: &str, body: Value) -> Result<String, String> {
        let resp = self.request("POST", path, Some(&body.to_string()))?;
        if resp.status != 200 {
            return Err(format!("seeding POST {path}: {}", resp.describe()));
        }
        let value: Value = serde_json::from_slice(&resp.body)
            .map_err(|e| format!("POST {path}: bad JSON: {e}"))?;
        let id = value["id"].as_str().map(str::to_owned);
        id.ok_or_else(|| format!("POST {path}: no \"id\" in {value}"))
    }

    /// Sends an encoded request and reads the response. A kept-alive connection the server closed
    /// while it was idle (after its keep-alive timeout) is replaced and the request sent again.
    fn send(&mut self, raw: &[u8]) -> Result<Response, String> {
        let (conn, reused) = match self.conn.take() {
            Some(conn) => (conn, true),
            None => (
                connect(self.port).map_err(|e| format!("connect: {e}"))?,
                false,
            ),
        };
        let conn = self.conn.insert(conn);
        let mut result = exchange(conn, raw);
        let closed = |e: &io::Error| {
            matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) || e.to_string() == "connection closed"
        };
        if reused && matches!(&result, Err(e) if closed(e)) {
            let fresh = connect(self.port).map_err(|e| format!("connect: {e}"))?;
            result = exchange(self.conn.insert(fresh), raw);
        }
        match result {
            Ok((resp, keep_alive)) => {
                if !keep_alive {
                    self.conn = None;
                }
                Ok(resp)
            }
            Err(e) => {
                self.conn = None;
                Err(format!("I/O error: {e}"))
            }
        }
    }
}

/// Serializes a whole request (with its JSON body, if any) for a single write.
fn encode(port: u16, method: &str, path: &str, body: Option<&str>) -> Vec<u8> {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    if let Some(body) = body {
        let len = body.len();
        raw += &format!("Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n{body}");
    } else {
        raw += "\r\n";
    }
    raw.into_bytes()
}

fn connect(port: u16) -> io::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(BufReader::with_capacity(64 * 1024, stream))
}

/// Writes one request and reads one response; also says whether the
/// connection may be reused.
fn exchange(conn: &mut BufReader<TcpStream>, raw: &[u8]) -> io::Result<(Response, bool)> {
    conn.get_mut().write_all(raw)?;
    let mut line = String::new();
    read_line(conn, &mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;

    let (mut length, mut chunked, mut keep_alive) = (None, false, true);
    loop {
        read_line(conn, &mut line)?;
        if line.trim_end().is_empty() {
            break; // the empty line that ends the head
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            keep_alive = !value.eq_ignore_ascii_case("close");
        }
    }

    let mut body = Vec::new();
    if chunked {
        read_chunked(conn, &mut body)?;
    } else if let Some(length) = length {
        body.resize(length, 0);
        conn.read_exact(&mut body)?;
    } else if status != 204 && status != 304 {
        // No framing: the body runs until the server closes the connection.
        keep_alive = false;
        conn.read_to_end(&mut body)?;
    }
    Ok((Response { status, body }, keep_alive))
}

/// Reads a `Transfer-Encoding: chunked` body into `body`, skipping trailers.
fn read_chunked(conn: &mut impl BufRead, body: &mut Vec<u8>) -> io::Result<()> {
    let mut line = String::new();
    loop {
        read_line(conn, &mut line)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            break;
        }
        let start = body.len();
        body.resize(start + size, 0);
        conn.read_exact(&mut body[start..])?;
        read_line(conn, &mut line)?; // the CRLF that closes the chunk
    }
    loop {
        read_line(conn, &mut line)?;
        if line.trim_end().is_empty() {
            return Ok(()); // end of (optional) trailers
        }
    }
}

/// Reads one line into `line` (cleared first); end of stream is an error.
fn read_line(conn: &mut impl BufRead, line: &mut String) -> io::Result<()> {
    line.clear();
    match conn.read_line(line)? {
        0 => Err(io::Error::other("connection closed")),
        _ => Ok(()),
    }
}
