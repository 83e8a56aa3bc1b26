//! One request's work stays bounded: metadata and filters have a size and an array length limit,
//! and containment of long arrays costs linear time.

use crate::helpers::TestApp;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn a_long_array_filter_costs_linear_time() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let n = 1_000;
    let stored: Vec<usize> = (0..n).collect();
    let reversed: Vec<usize> = (0..n).rev().collect();
    for _ in 0..20 {
        app.ok(app.post(
            &s.messages(),
            json!({ "content": "x", "is_user": true, "metadata": { "a": stored } }),
        ));
    }
    let started = Instant::now();
    let page = app.ok(app.post(
        &format!("{}/list", s.messages()),
        json!({ "filter": { "a": reversed } }),
    ));
    let took = started.elapsed();
    assert_eq!(page["total"], 20);
    // Pairwise comparison: 20 rows × 1,000 × 1,000 elements, and a parse of the filter per row.
    assert!(took < Duration::from_secs(2), "the filter took {took:?}");
}

#[test]
fn metadata_and_filters_over_their_limits_are_422_naming_the_field_and_the_limit() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let (status, body) = app.post(
        &s.messages(),
        json!({ "content": "x", "is_user": true, "metadata": { "a": "x".repeat(300_000) } }),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "metadata"]));
    assert_eq!(
        body["detail"][0]["msg"],
        "Value error, at most 262144 bytes of JSON are allowed"
    );
    let (status, body) = app.post(
        &format!("{}/list", s.messages()),
        json!({ "filter": { "a": vec![0; 1_001] } }),
    );
    assert_eq!(status, 422, "{body}");
    // Refused before the body becomes a value, at the array itself.
    assert_eq!(body["detail"][0]["loc"], json!(["body", "filter", "a"]));
    assert_eq!(
        body["detail"][0]["msg"],
        "Value error, an array may have at most 1000 elements, not 1001 or more"
    );
    // Nothing was stored by the refused write.
    let page = app.ok(app.post(&format!("{}/list", s.messages()), json!({})));
    assert_eq!(page["total"], 0);
}

/// On PostgreSQL a request's statements end with its deadline (`statement_timeout`): a filter
/// that makes PostgreSQL compare arrays pairwise over many rows is a 503 soon after the deadline,
/// not a minute of work after the client left.
#[test]
fn a_query_past_the_deadline_ends_with_a_503() {
    if !crate::helpers::on_postgres() {
        eprintln!("skipped: PostgreSQL only (SQLite's containment is linear)");
        return;
    }
    let app = TestApp::spawn_with(crate::helpers::Options {
        db: honcho_db::DbOptions {
            statement_timeout: Some(Duration::from_secs(1)),
            ..honcho_db::DbOptions::with_max_size(4)
        },
        ..crate::helpers::Options::default()
    });
    let s = app.session_path();
    let batch: Vec<_> = (0..60)
        .map(|_| json!({ "content": "x", "is_user": true }))
        .collect();
    app.ok(app.post(
        &format!("{}/batch", s.messages()),
        json!({ "messages": batch }),
    ));
    // Written directly (the API accepts arrays of at most 1,000 elements): 20,000 per row.
    app.execute_sql(
        "UPDATE messages SET metadata = jsonb_build_object('a', \
         (SELECT jsonb_agg(g) FROM generate_series(1, 20000) g))",
        "",
    );
    // Elements near the end of each stored array: each is found after a scan of almost all of it.
    let filter: Vec<i64> = (0..1_000).map(|i| 20_000 - i).collect();
    let started = Instant::now();
    let (status, body) = app.post(
        &format!("{}/list", s.messages()),
        json!({ "filter": { "a": filter } }),
    );
    let took = started.elapsed();
    assert_eq!(
        (status, body),
        (
            503,
            json!({ "detail": "Database unavailable: the query ran past the request's deadline" })
        )
    );
    assert!(took < Duration::from_secs(4), "answered after {took:?}");
    // The server serves on.
    let page = app.ok(app.post(&format!("{}/list", s.messages()), json!({})));
    assert_eq!(page["total"], 60);
}

/// Peak resident memory of a process, in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024
}

/// Twenty concurrent maximal bodies of each kind cost the server less than 1 GiB at peak: a 31 MB
/// metadata array (refused before it is parsed), a batch of 100 messages of 50,000 four-byte
/// characters refused after it was parsed (its last message is invalid), and the same batch stored.
/// While bodies are parsed, `/health` keeps answering (parsing runs off the HTTP workers, one large
/// body per core at a time, within a budget of bytes in hand); while twenty 20 MB batches are written it waits for a database
/// connection like any request, so it is not timed then.
#[test]
fn twenty_maximal_bodies_at_once_stay_within_a_gigabyte() {
    let db = crate::helpers::FreshDatabase::new(None);
    let server = crate::helpers::Honcho::start(&db.url);
    let app = crate::helpers::id(&server.post("/v1/apps", &json!({ "name": "big" })).unwrap());
    let user = crate::helpers::id(
        &server
            .post(&format!("/v1/apps/{app}/users"), &json!({ "name": "u" }))
            .unwrap(),
    );
    let session = crate::helpers::id(
        &server
            .post(&format!("/v1/apps/{app}/users/{user}/sessions"), &json!({}))
            .unwrap(),
    );
    let messages = format!(
        "{}/v1/apps/{app}/users/{user}/sessions/{session}/messages",
        server.base
    );
    let array = format!(
        r#"{{"content": "x", "is_user": true, "metadata": {{"a": [{}0]}}}}"#,
        "1,".repeat(15_500_000)
    );
    let content = "\u{1F600}".repeat(50_000);
    let message = format!(r#"{{"content": "{content}", "is_user": true}}"#);
    let batch = |last: &str| {
        let mut all = vec![message.clone(); 99];
        all.push(last.to_string());
        format!(r#"{{"messages": [{}]}}"#, all.join(","))
    };
    let refused_batch = batch(&format!(
        r#"{{"content": "{content}", "is_user": "maybe"}}"#
    ));
    let stored_batch = batch(&message);
    for (kind, url, body, timed, expected) in [
        ("metadata array", messages.clone(), array, true, 422),
        (
            "refused batch",
            format!("{messages}/batch"),
            refused_batch,
            true,
            422,
        ),
        (
            "stored batch",
            format!("{messages}/batch"),
            stored_batch,
            false,
            200,
        ),
    ] {
        let mut slowest = Duration::ZERO;
        let statuses = std::thread::scope(|s| {
            let senders: Vec<_> = (0..20)
                .map(|_| {
                    s.spawn(|| {
                        match ureq::post(&url)
                            .set("content-type", "application/json")
                            .send_string(&body)
                        {
                            Ok(r) => r.status(),
                            Err(ureq::Error::Status(code, _)) => code,
                            Err(e) => panic!("{kind}: {e}"),
                        }
                    })
                })
                .collect();
            while senders.iter().any(|t| !t.is_finished()) {
                let started = Instant::now();
                ureq::get(&format!("{}/health", server.base))
                    .call()
                    .unwrap();
                slowest = slowest.max(started.elapsed());
                std::thread::sleep(Duration::from_millis(20));
            }
            senders
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect::<Vec<_>>()
        });
        let peak = peak_rss_mib(server.child.id());
        eprintln!("{kind}: {statuses:?}; slowest /health {slowest:?}; peak RSS {peak} MiB");
        // A body that waited too long for its turn is a 503 the client may retry.
        assert!(
            statuses.iter().all(|&s| s == expected || s == 503),
            "{kind}: {statuses:?}"
        );
        assert!(statuses.contains(&expected), "{kind}: {statuses:?}");
        assert!(peak < 1024, "{kind}: peak RSS {peak} MiB");
        if timed {
            // Alone on the machine it is 20-80 ms; other tests may share the cores meanwhile.
            assert!(
                slowest < Duration::from_millis(250),
                "{kind}: /health took {slowest:?}"
            );
        }
    }
}
