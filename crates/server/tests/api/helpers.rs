use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use honcho_db::{DatabaseUrl, Db, DbOptions};
use honcho_models::{Embedder, PotionEmbedder};
use honcho_web::auth::{AuthConfig, Keys};
use serde_json::{json, Value};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A running server over its own database.
pub struct TestApp {
    pub base: String,
    agent: ureq::Agent,
    handle: Option<actix_web::dev::ServerHandle>,
    thread: Option<JoinHandle<()>>,
    deriver: Option<honcho_insights::Deriver>,
    /// Embeds stored messages (with a remote embedder).
    message_embedder: Option<honcho_insights::embedding::MessageEmbedder>,
    /// Dropped after the server stopped (fields drop after `Drop::drop`).
    database: FreshDatabase,
    db_url: String,
}

/// How a test's server is set up; `Default` is authentication off, the shipped embedder, hybrid
/// ranking, a fresh database.
pub struct Options {
    pub auth: AuthConfig,
    pub embedder: Arc<dyn Embedder>,
    /// How `documents/query` ranks.
    pub retrieval: honcho_domain::retrieval::Retrieval,
    /// SQLite only: the database file (a fresh temporary one when `None`).
    pub sqlite_path: Option<std::path::PathBuf>,
    pub db: DbOptions,
    pub body_timeout: Duration,
    /// PostgreSQL only: reach the database at this `host:port` instead of the URL's (a proxy).
    pub pg_address: Option<String>,
    /// PostgreSQL only: a setting of the server's connections (`name`, `value`), as the URL's
    /// `options=-c...` sets it.
    pub pg_setting: Option<(&'static str, &'static str)>,
    /// Language models (insights on: messages are queued, `chat` answers).
    pub models: Option<honcho_domain::llm::Models>,
    /// In-process deriver workers (with `models`).
    pub deriver: Option<honcho_insights::DeriverSettings>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            auth: AuthConfig::default(),
            embedder: Arc::new(PotionEmbedder::new()),
            retrieval: Default::default(),
            sqlite_path: None,
            db: DbOptions::with_max_size(4),
            body_timeout: Duration::from_secs(30),
            pg_address: None,
            pg_setting: None,
            models: None,
            deriver: None,
        }
    }
}

/// A database of its own for one test: a temporary SQLite file (or the given path), or, when
/// `TEST_DATABASE_URL` is set, a new PostgreSQL schema that the URL selects (and names the
/// connections after, as `application_name`), dropped with this value.
pub struct FreshDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_schema: Option<(String, String)>,
}

impl FreshDatabase {
    pub fn new(sqlite_path: Option<std::path::PathBuf>) -> FreshDatabase {
        match std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            Some(base) => {
                let schema = format!(
                    "t_{}",
                    nanoid::nanoid!(16, &nanoid::alphabet::SAFE[2..38]).to_lowercase()
                );
                let mut conn =
                    PgConnection::establish(&base).expect("TEST_DATABASE_URL must be reachable");
                conn.batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .expect("create test schema");
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!(
                    "{base}{sep}options=-csearch_path%3D{schema}&application_name={schema}"
                );
                FreshDatabase {
                    url,
                    _dir: None,
                    pg_schema: Some((base, schema)),
                }
            }
            None => match sqlite_path {
                Some(path) => FreshDatabase {
                    url: path.to_string_lossy().into_owned(),
                    _dir: None,
                    pg_schema: None,
                },
                None => {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let path = dir.path().join("honcho.db");
                    FreshDatabase {
                        url: path.to_string_lossy().into_owned(),
                        _dir: Some(dir),
                        pg_schema: None,
                    }
                }
            },
        }
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        if let Some((base, schema)) = self.pg_schema.take() {
            if let Ok(mut conn) = PgConnection::establish(&base) {
                let _ = conn.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
            }
        }
    }
}

/// `url` with its `host:port` replaced by `address`.
pub fn with_address(url: &str, address: &str) -> String {
    let start = url
        .find('@')
        .or_else(|| url.find("://").map(|i| i + 2))
        .unwrap()
        + 1;
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    format!("{}{address}{}", &url[..start], &url[end..])
}

/// Whether the tests run on PostgreSQL (`TEST_DATABASE_URL` set).
pub fn on_postgres() -> bool {
    std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty())
}

impl TestApp {
    /// A server with authentication off and the shipped embedder.
    pub fn spawn() -> TestApp {
        Self::spawn_with(Options::default())
    }

    /// A server with authentication on, signing keys with `secret`.
    pub fn spawn_with_auth(secret: &str) -> TestApp {
        Self::spawn_with(Options {
            auth: AuthConfig::with_keys(Keys::new(secret)),
            ..Options::default()
        })
    }

    /// A server with authentication off and the given embedder.
    pub fn spawn_with_embedder(embedder: Arc<dyn Embedder>) -> TestApp {
        Self::spawn_with(Options {
            embedder,
            ..Options::default()
        })
    }

    pub fn spawn_with(options: Options) -> TestApp {
        let fresh = FreshDatabase::new(options.sqlite_path.clone());
        let mut url = match &options.pg_address {
            Some(address) => with_address(&fresh.url, address),
            None => fresh.url.clone(),
        };
        if let Some((name, value)) = options.pg_setting {
            url = url.replacen("options=", &format!("options=-c{name}%3D{value}%20"), 1);
        }
        let db_url = url.clone();
        let db = Db::open(&DatabaseUrl::parse(&url).unwrap(), options.db).expect("connect");
        db.migrate().expect("migrate");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        let (auth, embedder, body_timeout) = (options.auth, options.embedder, options.body_timeout);
        let retrieval = options.retrieval;
        let deriver = match (&options.models, options.deriver) {
            (Some(models), Some(settings)) => Some(honcho_insights::Deriver::start(
                db.clone(),
                models.clone(),
                embedder.clone(),
                settings,
            )),
            _ => None,
        };
        let deriver_signal = deriver.as_ref().map(honcho_insights::Deriver::signal);
        let message_embedder = honcho_server::give_messages_vectors(&db, &embedder);
        let models = options.models;
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let state = honcho_web::AppState {
                    db,
                    auth,
                    enqueue_for_deriver: models.is_some(),
                    models,
                    deriver_signal,
                    embedder,
                    retrieval,
                    tokens: std::sync::Arc::new(honcho_models::tokens::O200kCounter),
                    body_timeout,
                    cors_origins: None,
                };
                let http = honcho_server::HttpSettings {
                    workers: 2,
                    max_connections: 1000,
                    request_timeout: body_timeout,
                    shutdown_timeout: Duration::from_secs(5),
                };
                let server = honcho_server::build_server(state, listener, http).expect("server");
                tx.send(server.server.handle()).unwrap();
                let _ = server.server.await;
            })
        });
        let handle = rx.recv().unwrap();
        TestApp {
            base: format!("http://127.0.0.1:{port}"),
            agent: ureq::AgentBuilder::new().build(),
            handle: Some(handle),
            thread: Some(thread),
            deriver,
            message_embedder,
            database: fresh,
            db_url,
        }
    }

    /// The database URL of this test's server (for the command line).
    pub fn database_url(&self) -> &str {
        &self.db_url
    }

    /// Runs SQL directly on the test's database (to inject faults), picking the text for the engine.
    pub fn execute_sql(&self, postgres: &str, sqlite: &str) {
        if self.database.pg_schema.is_some() {
            let mut conn = PgConnection::establish(&self.db_url).unwrap();
            conn.batch_execute(postgres).unwrap();
        } else {
            let mut conn = diesel::SqliteConnection::establish(&self.db_url).unwrap();
            conn.batch_execute(sqlite).unwrap();
        }
    }

    /// PostgreSQL only: terminates every connection of this test's server (found by
    /// `application_name`); returns how many there were.
    pub fn terminate_connections(&self) -> i64 {
        use diesel::RunQueryDsl;
        let (base, schema) = self.database.pg_schema.as_ref().expect("PostgreSQL only");
        let mut conn = PgConnection::establish(base).unwrap();
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
            "(SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = '{schema}' AND pid <> pg_backend_pid())"
        )))
        .get_result(&mut conn)
        .unwrap()
    }

    fn send(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        self.send_as(None, method, path, body)
    }

    /// A request with `Authorization: Bearer {token}` when a token is given.
    pub fn send_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self
            .agent
            .request(method, &format!("{}{}", self.base, path))
            .set("content-type", "application/json");
        if let Some(token) = token {
            req = req.set("authorization", &format!("Bearer {token}"));
        }
        let res = match body {
            Some(b) => req.send_string(b),
            None => req.call(),
        };
        let res = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = res.status();
        let text = res.into_string().unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// Every `/v1` operation of the served OpenAPI document: (method, path template).
    pub fn operations(&self) -> Vec<(String, String)> {
        let doc = self.ok(self.get("/openapi.json"));
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            if !path.starts_with("/v1/") {
                continue;
            }
            for method in ["get", "post", "put", "delete", "patch"] {
                if item.get(method).is_some() {
                    ops.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        ops
    }

    /// A request whose path is sent byte for byte as given (no client-side normalisation of dot
    /// segments, slashes or escapes), over a fresh connection.
    pub fn send_raw(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        use std::io::{Read, Write};
        let addr = self.base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        let body = body.unwrap_or("");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
        if let Some(token) = token {
            head.push_str(&format!("authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{method} {path}: no HTTP answer: {text:?}"));
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{method} {path}: bad status line: {head:?}"));
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_string()
        };
        let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (status, value)
    }

    /// `GET path` with `Authorization: Bearer {token}`.
    pub fn get_as(&self, token: &str, path: &str) -> (u16, Value) {
        self.send_as(Some(token), "GET", path, None)
    }

    /// `DELETE path` with `Authorization: Bearer {token}`.
    pub fn delete_as(&self, token: &str, path: &str) -> (u16, Value) {
        self.send_as(Some(token), "DELETE", path, None)
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None)
    }
    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.send("DELETE", path, None)
    }
    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, Some(&body.to_string()))
    }
    pub fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        self.send("POST", path, Some(body))
    }
    pub fn post_empty(&self, path: &str) -> (u16, Value) {
        self.send("POST", path, None)
    }
    pub fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("PUT", path, Some(&body.to_string()))
    }

    /// A 200 answer's body, failing the test otherwise.
    pub fn ok(&self, answer: (u16, Value)) -> Value {
        assert_eq!(
            answer.0, 200,
            "expected 200, got {}: {}",
            answer.0, answer.1
        );
        answer.1
    }

    pub fn create_app(&self, name: &str) -> String {
        id(&self.ok(self.post("/v1/apps", json!({ "name": name }))))
    }
    pub fn create_user(&self, app: &str, name: &str) -> String {
        id(&self.ok(self.post(&format!("/v1/apps/{app}/users"), json!({ "name": name }))))
    }
    pub fn create_session(&self, app: &str, user: &str) -> String {
        id(&self.ok(self.post(&format!("/v1/apps/{app}/users/{user}/sessions"), json!({}))))
    }
    /// An app, a user and a session of that user; returns the session's path.
    pub fn session_path(&self) -> Scope {
        let app = self.create_app("app");
        let user = self.create_user(&app, "user");
        let session = self.create_session(&app, &user);
        Scope { app, user, session }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            actix_web::rt::System::new().block_on(handle.stop(false));
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(deriver) = self.deriver.take() {
            deriver.stop(Duration::from_secs(10));
        }
        if let Some(worker) = self.message_embedder.take() {
            worker.stop(Duration::from_secs(10));
        }
        // `database` drops its schema next.
    }
}

/// The ids of a session and its ancestors.
pub struct Scope {
    pub app: String,
    pub user: String,
    pub session: String,
}

impl Scope {
    pub fn user_path(&self) -> String {
        format!("/v1/apps/{}/users/{}", self.app, self.user)
    }
    pub fn session_path(&self) -> String {
        format!("{}/sessions/{}", self.user_path(), self.session)
    }
    pub fn collections(&self) -> String {
        format!("{}/collections", self.user_path())
    }
    pub fn messages(&self) -> String {
        format!("{}/messages", self.session_path())
    }
}

/// The payload of a chunked HTTP/1.1 body.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// Stores `texts` as the user's messages in one batch in the session at `messages` (a session's
/// messages path); their ids, in order.
pub fn user_messages(app: &TestApp, messages: &str, texts: &[&str]) -> Vec<String> {
    let batch: Vec<Value> = texts
        .iter()
        .map(|t| json!({ "content": t, "is_user": true }))
        .collect();
    let stored = app.ok(app.post(&format!("{messages}/batch"), json!({ "messages": batch })));
    stored.as_array().unwrap().iter().map(id).collect()
}

/// Fails the test unless `page` is a page of a list with nothing in it.
pub fn assert_empty_page(page: &Value) {
    assert_eq!(
        (&page["total"], &page["pages"]),
        (&json!(0), &json!(0)),
        "{page}"
    );
}

/// Fails the test, with the command's standard error, unless it exited 0.
pub fn succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The answer `{"detail": text}` with `status`, as the API words its errors.
pub fn detail(status: u16, text: &str) -> (u16, Value) {
    (status, json!({ "detail": text }))
}

pub fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}

const ID_FIELDS: [&str; 6] = [
    "id",
    "app_id",
    "user_id",
    "session_id",
    "message_id",
    "collection_id",
];

/// Snapshots a JSON value (`insta::assert_json_snapshot!`, optionally named) with its ids and
/// timestamps replaced by placeholders, wherever they are, after checking their shape.
macro_rules! assert_redacted_snapshot {
    ($name:literal, $value:expr) => {
        $crate::helpers::redacted(|| {
            insta::assert_json_snapshot!($name, $crate::helpers::plain(&$value))
        })
    };
    ($value:expr) => {
        $crate::helpers::redacted(|| insta::assert_json_snapshot!($crate::helpers::plain(&$value)))
    };
}
pub(crate) use assert_redacted_snapshot;

/// Runs `f` with insta redacting ids ([`redact_id`]) and `created_at` ([`redact_timestamp`]).
pub fn redacted<R>(f: impl FnOnce() -> R) -> R {
    let mut settings = insta::Settings::clone_current();
    for field in ID_FIELDS {
        settings.add_redaction(&format!(".**.{field}"), insta::dynamic_redaction(redact_id));
    }
    settings.add_redaction(".**.created_at", insta::dynamic_redaction(redact_timestamp));
    settings.bind(f)
}

/// `[id]` for a 21-character public id (any other value is kept: a metadata key may be named `id`).
pub fn redact_id(
    value: insta::internals::Content,
    path: insta::internals::ContentPath<'_>,
) -> insta::internals::Content {
    match value.as_str() {
        Some(s) => {
            assert_eq!(s.len(), 21, "{path} is not a 21-character id: {s}");
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{path} is not an id: {s}"
            );
            "[id]".into()
        }
        None => value,
    }
}

/// `[timestamp]` for an RFC 3339 UTC timestamp with microseconds.
pub fn redact_timestamp(
    value: insta::internals::Content,
    path: insta::internals::ContentPath<'_>,
) -> insta::internals::Content {
    let s = value
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"));
    chrono_like(s);
    "[timestamp]".into()
}

/// Checks `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`.
fn chrono_like(s: &str) {
    let ok = s.len() >= 20
        && s.ends_with('Z')
        && s.as_bytes()[4] == b'-'
        && s.as_bytes()[10] == b'T'
        && (s.len() == 20 || (s.as_bytes()[19] == b'.' && s.len() == 27));
    assert!(ok, "not an RFC 3339 UTC timestamp with microseconds: {s}");
}

/// A JSON value for insta: serde_json keeps numbers exactly (`arbitrary_precision`), which only its own
/// serialiser understands, so numbers are handed to insta as plain integers and floats.
pub struct Plain(Value);

pub fn plain(v: &Value) -> Plain {
    Plain(v.clone())
}

impl serde::Serialize for Plain {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => s.serialize_u64(u),
                (_, Some(i)) => s.serialize_i64(i),
                _ => s.serialize_f64(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::Array(items) => s.collect_seq(items.iter().map(plain)),
            Value::Object(map) => s.collect_map(map.iter().map(|(k, v)| (k, plain(v)))),
            other => other.serialize(s),
        }
    }
}

/// The `honcho` binary serving `url` on a free port (stopped with SIGKILL when dropped).
pub struct Honcho {
    pub child: std::process::Child,
    pub base: String,
}

impl Honcho {
    /// Authentication off.
    pub fn start(url: &str) -> Honcho {
        Honcho::start_with(url, &[])
    }

    /// With the extra environment `env`.
    pub fn start_with(url: &str, env: &[(&str, &str)]) -> Honcho {
        Honcho::start_logged(url, env, None)
    }

    /// With the extra environment `env`, writing its log (stderr) to `log` when given.
    pub fn start_logged(url: &str, env: &[(&str, &str)], log: Option<&std::path::Path>) -> Honcho {
        use std::process::{Command, Stdio};
        use std::time::Instant;
        // The port is chosen before the server binds it, and meanwhile the kernel may give it to
        // another test's outgoing connection: a server that exits at start-up is started again on
        // another port.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_honcho"));
            cmd.args(["serve", "--port", &port.to_string()])
                .env("DATABASE_URL", url)
                .env_remove("USE_AUTH")
                .env_remove("AUTH_JWT_SECRET")
                .env("LOG_LEVEL", "warn")
                .stdout(Stdio::null())
                .stderr(match log {
                    Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
                    None => Stdio::null(),
                });
            for (k, v) in env {
                cmd.env(k, v);
            }
            let mut child = cmd.spawn().unwrap();
            let base = format!("http://127.0.0.1:{port}");
            let started = Instant::now();
            loop {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if ureq::get(&format!("{base}/health")).call().is_ok() {
                    // The answer may have come from another test's server on that port.
                    std::thread::sleep(Duration::from_millis(100));
                    if child.try_wait().unwrap().is_none() {
                        return Honcho { child, base };
                    }
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "the server did not start"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("the server found no free port in five tries");
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        crate::faults::post_json(&self.base, path, body)
    }

    /// A new app named `app`, a user and a session: the session's messages path
    /// (`/v1/apps/{app}/users/{user}/sessions/{session}/messages`).
    pub fn new_session(&self, app: &str) -> String {
        let app = id(&self.post("/v1/apps", &json!({ "name": app })).unwrap());
        let users = format!("/v1/apps/{app}/users");
        let user = id(&self.post(&users, &json!({ "name": "u" })).unwrap());
        let sessions = format!("{users}/{user}/sessions");
        let session = id(&self.post(&sessions, &json!({})).unwrap());
        format!("{sessions}/{session}/messages")
    }

    /// A request with `Authorization: Bearer {token}`: the status and the body's JSON.
    pub fn send_as(&self, token: &str, method: &str, path: &str) -> (u16, Value) {
        let answer = ureq::request(method, &format!("{}{path}", self.base))
            .set("authorization", &format!("Bearer {token}"))
            .call();
        let response = match answer {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = response.status();
        (status, response.into_json().unwrap_or(Value::Null))
    }
}

impl Drop for Honcho {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one HTTP/1.1 request from `stream` (a test double of a service we call); returns its body.
pub fn read_request(stream: &std::net::TcpStream) -> Vec<u8> {
    use std::io::{BufRead, BufReader, Read};
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    body
}

/// `honcho reembed --batch N` over `app`'s database with the shipped embedder; its standard
/// output, once it exited successfully.
pub fn reembed(app: &TestApp, batch: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_honcho"))
        .args(["reembed", "--batch", &batch.to_string()])
        .current_dir(dir.path())
        .env("DATABASE_URL", app.database_url())
        .env("EMBEDDING_PROVIDER", "local")
        .env_remove("USE_AUTH")
        .output()
        .unwrap();
    succeeded(&out);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
