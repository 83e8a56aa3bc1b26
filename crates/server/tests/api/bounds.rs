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
    assert_eq!(body["detail"][0]["loc"], json!(["body", "filter"]));
    assert_eq!(
        body["detail"][0]["msg"],
        "Value error, an array may have at most 1000 elements, not 1001"
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
