//! `cargo xtask bench --import`: how fast `honcho import` copies a local source. A source server
//! on a fresh SQLite database is seeded through its API with `USERS` users, each with `SESSIONS`
//! sessions of `PER_SESSION` messages (about 200 characters) and a collection of `DOCUMENTS`
//! documents; then `honcho import` copies it into a fresh SQLite database (and into PostgreSQL
//! with `--postgres`), once to write everything and once more (nothing left to write). Printed:
//! each run's time, messages/s and documents/s, from the command's own start to its exit.

use crate::bench::{Client, Server};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const USERS: usize = 20;
const SESSIONS: usize = 5;
const PER_SESSION: usize = 1_000;
const DOCUMENTS: usize = 50;
/// Workers of the import (its `--concurrency`).
const CONCURRENCY: usize = 4;

fn seed(port: u16) -> Result<(), String> {
    crate::bench::in_parallel(4, |w| {
        let mut client = Client::new(port);
        let app = client.create("/v1/apps", json!({ "name": format!("import-{w}") }))?;
        for u in (w..USERS).step_by(4) {
            let users = format!("/v1/apps/{app}/users");
            let user = client.create(&users, json!({ "name": format!("u{u}") }))?;
            let user_path = format!("{users}/{user}");
            for _ in 0..SESSIONS {
                let session = client.create(&format!("{user_path}/sessions"), json!({}))?;
                let batch_path = format!("{user_path}/sessions/{session}/messages/batch");
                for b in 0..PER_SESSION / 100 {
                    let batch: Vec<Value> = (0..100)
                        .map(|i| {
                            let content = crate::bench::content(b * 100 + i);
                            json!({ "content": content, "is_user": i % 2 == 0 })
                        })
                        .collect();
                    let body = json!({ "messages": batch }).to_string();
                    let answer = client.request("POST", &batch_path, Some(&body))?;
                    if answer.status != 200 {
                        return Err(format!("seeding a batch: {}", answer.describe()));
                    }
                }
            }
            let documents = client.create(
                &format!("{user_path}/collections"),
                json!({ "name": "notes" }),
            )?;
            let documents = format!("{user_path}/collections/{documents}/documents");
            for d in 0..DOCUMENTS {
                client.create(
                    &documents,
                    json!({ "content": crate::bench::document_text(d) }),
                )?;
            }
        }
        Ok(())
    })
}

/// Runs `honcho import` from `source` into `target` and prints how long it took.
fn import(binary: &Path, source: u16, target: &str, label: &str, run: &str) -> Result<(), String> {
    let started = Instant::now();
    let out = Command::new(binary)
        .args(["import", "--from", &format!("http://127.0.0.1:{source}")])
        .args(["--concurrency", &CONCURRENCY.to_string()])
        .env("DATABASE_URL", target)
        .env("LOG_LEVEL", "warn")
        .output()
        .map_err(|e| format!("honcho import: {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "honcho import into {label} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let messages = USERS * SESSIONS * PER_SESSION;
    let documents = USERS * DOCUMENTS;
    println!(
        "{label:<10} {run:<22} {secs:>8.2} s {:>12.0} messages/s {:>10.0} documents/s",
        messages as f64 / secs,
        documents as f64 / secs
    );
    Ok(())
}

pub fn run(binary: &Path, postgres: Option<&str>) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("honcho-bench-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let source_db = dir.join("source.db");
    let (source, _) =
        Server::start_with(binary, source_db.to_str().unwrap(), "import-source", &[])?;
    let started = Instant::now();
    seed(source.port)?;
    println!(
        "source: {USERS} users, {} sessions, {} messages, {} documents (seeded in {:.1} s); \
         {CONCURRENCY} workers",
        USERS * SESSIONS,
        USERS * SESSIONS * PER_SESSION,
        USERS * DOCUMENTS,
        started.elapsed().as_secs_f64()
    );
    let target = dir.join("target.db");
    let result = (|| {
        let target = target.to_str().unwrap();
        import(binary, source.port, target, "sqlite", "first run (all new)")?;
        import(
            binary,
            source.port,
            target,
            "sqlite",
            "second run (all there)",
        )?;
        if let Some(url) = postgres {
            import(binary, source.port, url, "postgres", "first run (all new)")?;
            import(
                binary,
                source.port,
                url,
                "postgres",
                "second run (all there)",
            )?;
        }
        Ok(())
    })();
    source.finish();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
