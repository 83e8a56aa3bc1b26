//! Running the server: configuration errors, the command line, request ids, CORS, metrics and a
//! graceful stop.

use crate::helpers::{id, succeeded, TestApp};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `honcho` binary in a scratch directory, without the settings of the machine it runs on.
fn honcho(args: &[&str], env: &[(&str, &str)]) -> Command {
    let dir = std::env::temp_dir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_honcho"));
    cmd.args(args).current_dir(dir);
    for var in [
        "USE_AUTH",
        "AUTH_JWT_SECRET",
        "LOG_LEVEL",
        "RUST_LOG",
        "LOG_FORMAT",
        "HTTP_WORKERS",
        "DATABASE_URL",
        "PORT",
        "HOST",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    honcho(args, env).output().unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `honcho serve` with `env` on a free port, answering `/health`. The port is chosen before the
/// server binds it, and meanwhile the kernel may give it to another test's outgoing connection: a
/// server that exits at start-up is started again on another port.
fn serve_on_a_free_port(env: &[(&str, &str)]) -> std::process::Child {
    for _ in 0..5 {
        let port = free_port();
        let mut child = honcho(&["serve", "--port", &port.to_string()], env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if ureq::get(&format!("http://127.0.0.1:{port}/health"))
                .call()
                .is_ok()
            {
                // The answer may have come from another test's server on that port.
                std::thread::sleep(Duration::from_millis(100));
                if child.try_wait().unwrap().is_none() {
                    return child;
                }
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no start-up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("honcho serve found no free port in five tries");
}

fn wait_for_health(port: u16) {
    let started = Instant::now();
    while ureq::get(&format!("http://127.0.0.1:{port}/health"))
        .call()
        .is_err()
    {
        assert!(started.elapsed() < Duration::from_secs(30), "no start-up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let db = db.to_str().unwrap();
    for (var, value) in [
        ("LOG_LEVEL", "loud"),
        ("LOG_FORMAT", "bogus"),
        ("HTTP_WORKERS", "0"),
        ("USE_AUTH", "maybe"),
        ("SQLITE_SYNCHRONOUS", "sometimes"),
        ("REQUEST_TIMEOUT", "0"),
        ("DATABASE_POOL_SIZE", "0"),
        ("LLM_PROVIDER", "cohere"),
        ("RETRIEVAL_MODE", "bm25"),
        ("RETRIEVAL_LEXICAL_WEIGHT", "2"),
        ("EMBEDDING_PROVIDER", "potion"),
        ("VECTOR_CACHE_MB", "lots"),
        ("CORS_ORIGINS", "notaurl"),
        ("CORS_ORIGINS", "http://ok.example, ftp://files.example"),
    ] {
        let out = run(
            &["serve", "--port", "0"],
            &[(var, value), ("DATABASE_URL", db)],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}={value} started");
        assert_eq!(stderr.trim().lines().count(), 1, "{var}={value}: {stderr}");
        assert!(
            stderr.starts_with(&format!("honcho: {var}")),
            "{var}={value}: {stderr}"
        );
    }
    // The usual spellings of "true" turn authentication on: without a secret, no start.
    for yes in ["true", "TRUE", "1", "yes", "On"] {
        let out = run(
            &["serve", "--port", "0"],
            &[("USE_AUTH", yes), ("DATABASE_URL", db)],
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            "honcho: AUTH_JWT_SECRET must be set when USE_AUTH is true",
            "USE_AUTH={yes}"
        );
    }
}

/// Settings that used to be dropped or misread say exactly what is wrong, in one line.
#[test]
fn settings_that_were_silently_dropped_or_vague_stop_start_up_precisely() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let db = db.to_str().unwrap();
    let start = |env: &[(&str, &str)], cwd: &std::path::Path| {
        let out = honcho(&["serve", "--port", "0"], env)
            .current_dir(cwd)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{env:?} started");
        String::from_utf8_lossy(&out.stderr).trim().to_string()
    };
    // A malformed `.env` line is named, not skipped with every line after it.
    std::fs::write(
        dir.path().join(".env"),
        "HOST=127.0.0.1\nPORT=80 05\nLOG_LEVEL=info\n",
    )
    .unwrap();
    assert_eq!(
        start(&[("DATABASE_URL", db)], dir.path()),
        "honcho: .env line 2: cannot read 'PORT=80 05' (expected NAME=value; quote values with \
         spaces)"
    );
    std::fs::remove_file(dir.path().join(".env")).unwrap();
    let here = dir.path();
    assert_eq!(
        start(
            &[("DATABASE_URL", "postgres://postgres@127.0.0.1:5432")],
            here
        ),
        "honcho: DATABASE_URL: a PostgreSQL URL must name its database \
         (postgres://user@host:5432/NAME); it would otherwise use the user's default database"
    );
    assert_eq!(
        start(
            &[
                ("DATABASE_URL", db),
                ("LLM_MODEL", "m"),
                ("LLM_BASE_URL", "https://llm.example/v1")
            ],
            here
        ),
        "honcho: LLM_API_KEY: required for https://llm.example/v1 (only a server on this \
         machine, at 127.0.0.1 or localhost, may go without a key)"
    );
    assert_eq!(
        start(&[("DATABASE_URL", "/no/such/dir/x.db")], here),
        "honcho: DATABASE_URL sqlite:///no/such/dir/x.db: could not connect to the database: \
         cannot open /no/such/dir/x.db: the directory /no/such/dir does not exist"
    );
    let port = start(&[("DATABASE_URL", db), ("PORT", "70000")], here);
    assert!(port.contains("0..=65535"), "{port}");

    // A fresh `migrate` says once what it applied.
    let migrate = |db: &str| {
        let out = run(&["migrate", "--database-url", db], &[]);
        assert!(out.status.success());
        (
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )
    };
    let (said, logged) = migrate(db);
    assert!(said.contains(": applied "), "{said}");
    assert!(!logged.contains("migrations applied"), "{logged}");
    let (said, _) = migrate(db);
    assert!(
        said.ends_with("is up to date (no migration to apply)"),
        "{said}"
    );

    // Every command's help names what it reads.
    for (args, needles) in [
        (
            &["deriver", "--help"][..],
            &[
                "EMBEDDING_DIMENSIONS",
                "EMBEDDING_TIMEOUT_SECS",
                "LOG_LEVEL",
                "LLM_MODEL",
            ][..],
        ),
        (
            &["migrate", "--help"],
            &["DATABASE_URL", "SQLITE_SYNCHRONOUS", "LOG_LEVEL"],
        ),
        (
            &["reembed", "--help"],
            &["DATABASE_URL", "EMBEDDING_PROVIDER", "LOG_LEVEL"],
        ),
        (
            &["keys", "revoke", "--help"],
            &["DATABASE_URL", "AUTH_JWT_SECRET"],
        ),
        (
            &["serve", "--help"],
            &["VECTOR_CACHE_MB", "DERIVER_WORKERS", "SQLITE_WAL_LIMIT_MB"],
        ),
    ] {
        let help = String::from_utf8(run(args, &[]).stdout).unwrap();
        for needle in needles {
            assert!(
                help.contains(needle),
                "{args:?} does not name {needle}:\n{help}"
            );
        }
    }
}

#[test]
fn printing_into_a_closed_pipe_is_not_an_error() {
    let mut child = honcho(&["openapi"], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    // The reader is gone (`| head`).
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serve_flags_work_without_the_subcommand_and_help_names_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let port = free_port();
    let mut child = honcho(
        &["--port", &port.to_string()],
        &[("DATABASE_URL", db.to_str().unwrap())],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_for_health(port);
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains(&format!("http://127.0.0.1:{port}/docs/")),
        "no docs URL in {log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log that is not a terminal"
    );

    let help = String::from_utf8(run(&["serve", "--help"], &[]).stdout).unwrap();
    for var in [
        "DATABASE_URL",
        "PORT",
        "USE_AUTH",
        "LOG_LEVEL",
        "CORS_ORIGINS",
    ] {
        assert!(
            help.contains(var),
            "serve --help does not name {var}:\n{help}"
        );
    }
    // Commands that use no database do not take one.
    for args in [
        &["openapi", "--database-url", "x"][..],
        &["keys", "admin", "--database-url", "x"],
    ] {
        assert!(
            !run(args, &[("AUTH_JWT_SECRET", "s")]).status.success(),
            "{args:?}"
        );
    }
}

#[test]
fn minting_a_key_for_an_unknown_id_is_refused() {
    let app = TestApp::spawn();
    let real = app.create_app("real");
    let env = [
        ("AUTH_JWT_SECRET", "s"),
        ("DATABASE_URL", app.database_url()),
    ];
    let out = run(&["keys", "create", "--app-id", "doesnotexist"], &env);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "honcho: --app-id: no app with ID 'doesnotexist'"
    );
    let out = run(&["keys", "create", "--app-id", &real], &env);
    succeeded(&out);
    let user = id(&app.ok(app.post(&format!("/v1/apps/{real}/users"), json!({ "name": "u" }))));
    let out = run(
        &["keys", "create", "--app-id", &real, "--user-id", "nobody"],
        &env,
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "honcho: --user-id: no user with ID 'nobody'"
    );
    let out = run(
        &["keys", "create", "--app-id", &real, "--user-id", &user],
        &env,
    );
    assert!(out.status.success());
}

#[test]
fn every_response_carries_a_request_id() {
    let app = TestApp::spawn();
    let get = |id: Option<&str>| {
        let mut req = ureq::get(&format!("{}/health", app.base));
        if let Some(id) = id {
            req = req.set("x-request-id", id);
        }
        req.call()
            .unwrap()
            .header("x-request-id")
            .map(str::to_string)
    };
    let made = get(None).expect("a request id");
    assert_eq!(made.len(), 36, "not a UUID: {made}");
    assert_ne!(get(None).unwrap(), made);
    assert_eq!(get(Some("trace-42.a_b")).as_deref(), Some("trace-42.a_b"));
    let long = "x".repeat(300);
    let replaced = get(Some(&long)).unwrap();
    assert_eq!(replaced.len(), 36);
    // Errors carry one too.
    let res = ureq::get(&format!("{}/v1/nothing", app.base)).call();
    let Err(ureq::Error::Status(404, res)) = res else {
        panic!("expected a 404")
    };
    assert!(res.header("x-request-id").is_some());
}

#[test]
fn cors_allows_v1_1_0_origins_by_default() {
    let app = TestApp::spawn();
    let preflight = |origin: &str| {
        let res = ureq::request("OPTIONS", &format!("{}/v1/apps", app.base))
            .set("origin", origin)
            .set("access-control-request-method", "POST")
            .set(
                "access-control-request-headers",
                "content-type, authorization",
            )
            .call();
        match res {
            Ok(r) | Err(ureq::Error::Status(_, r)) => (
                r.status(),
                r.header("access-control-allow-origin").map(str::to_string),
            ),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(
        preflight("http://localhost"),
        (200, Some("http://localhost".into()))
    );
    assert_eq!(
        preflight("http://127.0.0.1:8000"),
        (200, Some("http://127.0.0.1:8000".into()))
    );
    let (_, allowed) = preflight("https://elsewhere.example");
    assert_eq!(allowed, None);
    let res = ureq::get(&format!("{}/health", app.base))
        .set("origin", "http://localhost")
        .call()
        .unwrap();
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("http://localhost")
    );
    // Another origin is served, without CORS headers.
    let res = ureq::get(&format!("{}/health", app.base))
        .set("origin", "https://elsewhere.example")
        .call()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.header("access-control-allow-origin"), None);
}

#[test]
fn metrics_count_requests_by_route_template() {
    let app = TestApp::spawn();
    let a = app.create_app("metered");
    app.ok(app.get(&format!("/v1/apps?app_id={a}")));
    let (status, _) = app.get("/v1/apps?app_id=missing");
    assert_eq!(status, 404);
    // A method of the client's own invention is not a label of its own (each would hold memory).
    let odd = ureq::request("FROBNICATE", &format!("{}/v1/apps", app.base)).call();
    assert!(odd.is_err(), "{odd:?}");
    let text = ureq::get(&format!("{}/metrics", app.base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    for needle in [
        r#"honcho_http_requests_total{method="POST",route="/v1/apps",status="200"}"#,
        r#"honcho_http_requests_total{method="GET",route="/v1/apps",status="404"}"#,
        r#"honcho_http_request_duration_seconds_bucket{method="GET",route="/v1/apps",le="0.005"}"#,
        "honcho_db_pool_connections ",
        "honcho_db_pool_wait_seconds_count",
        r#"honcho_http_requests_total{method="OTHER","#,
    ] {
        assert!(text.contains(needle), "no {needle} in:\n{text}");
    }
    assert!(!text.contains("FROBNICATE"), "a method became a label");
    // Ids never become labels: the route is the template.
    assert!(!text.contains(&a), "an id leaked into the metrics");
}

/// The server binary reports what its allocator holds, so that an operator can tell the caches'
/// bytes from the rest of its memory.
#[test]
fn metrics_report_the_allocators_bytes() {
    let db = crate::helpers::FreshDatabase::new(None);
    let server = crate::helpers::Honcho::start(&db.url);
    server.new_session("metered");
    let text = ureq::get(&format!("{}/metrics", server.base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let gauge = |name: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
            .parse()
            .unwrap()
    };
    let allocated = gauge("honcho_allocator_allocated_bytes");
    let active = gauge("honcho_allocator_active_bytes");
    let resident = gauge("honcho_allocator_resident_bytes");
    assert!(allocated > 1e6, "{allocated}");
    assert!(allocated <= active && active <= resident, "{text}");
    for name in [
        "honcho_allocator_metadata_bytes",
        "honcho_allocator_retained_bytes",
    ] {
        assert!(gauge(name) >= 0.0);
    }
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let port = free_port();
    let mut child = honcho(
        &["serve", "--port", &port.to_string()],
        &[
            ("DATABASE_URL", db.to_str().unwrap()),
            ("SHUTDOWN_TIMEOUT", "10"),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_for_health(port);
    let body = r#"{"name": "in flight"}"#;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /v1/apps HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body.as_bytes()[..5]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    std::thread::sleep(Duration::from_millis(500));
    stream.write_all(&body.as_bytes()[5..]).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "still running");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

/// How a run of `honcho` ended: `None` when it exited 0, else its exit code or signal.
fn failure(status: std::process::ExitStatus) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => None,
        (Some(code), _) => Some(format!("exit {code}")),
        (None, Some(signal)) => Some(format!("signal {signal}")),
        (None, None) => Some("unknown".into()),
    }
}

/// Each one-shot command run 50 times in a row ends cleanly: on PostgreSQL with TLS (as libpq
/// prefers by default) the pools' threads used to be opening connections while the process exited,
/// which crashed in libpq's and OpenSSL's clean-up about once in seven runs.
#[test]
fn one_shot_commands_end_cleanly_fifty_times_in_a_row() {
    let app = TestApp::spawn();
    let a = app.create_app("exits");
    let env = [
        ("DATABASE_URL", app.database_url()),
        ("AUTH_JWT_SECRET", "s"),
        ("LOG_LEVEL", "error"),
    ];
    let commands: [&[&str]; 3] = [
        &["migrate"],
        &["reembed"],
        &["keys", "create", "--app-id", &a],
    ];
    let mut failures = Vec::new();
    for args in commands {
        // Two at a time, as a deployment script and an operator might.
        std::thread::scope(|s| {
            let runs: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        (0..25)
                            .filter_map(|_| {
                                let out = run(args, &env);
                                failure(out.status).map(|f| {
                                    format!(
                                        "{args:?}: {f}: {}",
                                        String::from_utf8_lossy(&out.stderr)
                                    )
                                })
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for r in runs {
                failures.extend(r.join().unwrap());
            }
        });
    }
    assert!(
        failures.is_empty(),
        "{} of 150 runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `serve` and `deriver`, stopped with SIGTERM, exit 0 every time.
#[test]
fn serve_and_deriver_stopped_with_sigterm_exit_cleanly() {
    let app = TestApp::spawn();
    let url = app.database_url().to_string();
    let mut failures = Vec::new();
    for round in 0..10 {
        let serve = serve_on_a_free_port(&[("DATABASE_URL", &url), ("LOG_LEVEL", "error")]);
        let deriver = honcho(
            &["deriver"],
            &[
                ("DATABASE_URL", &url),
                ("LOG_LEVEL", "error"),
                ("LLM_BASE_URL", "http://127.0.0.1:9/v1"),
                ("LLM_MODEL", "unused"),
                ("DERIVER_WORKERS", "4"),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        // Let the deriver's workers start polling (and open their connections).
        std::thread::sleep(Duration::from_millis(150 + 30 * round));
        for (name, child) in [("serve", serve), ("deriver", deriver)] {
            let term = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(term.success());
            let out = child.wait_with_output().unwrap();
            if let Some(f) = failure(out.status) {
                failures.push(format!(
                    "{name}, round {round}: {f}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The README's walk-through stops at its first error: against a server that is not there it
/// fails and prints nothing of what would come after.
#[test]
fn the_readme_walk_through_stops_at_the_first_error() {
    let readme = include_str!("../../../../README.md");
    let start = readme.find("## A walk-through with curl").unwrap();
    let block = &readme[start..];
    let block = &block[block.find("```sh\n").unwrap() + 6..];
    let block = &block[..block.find("\n```\n").unwrap()];
    let port = free_port();
    let out = Command::new("bash")
        .args(["-c", block])
        .env("HONCHO_URL", format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "ran on: {printed}");
    assert!(
        !printed.contains("app "),
        "went on after the first error: {printed}"
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(said.matches("curl:").count(), 1, "{said}");
}
