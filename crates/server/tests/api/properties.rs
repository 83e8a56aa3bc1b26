//! Property tests: SQLite's metadata containment equals PostgreSQL's `@>`, and no request body,
//! however odd, gets a 5xx.

use crate::helpers::{on_postgres, TestApp};
use diesel::{Connection, PgConnection, RunQueryDsl};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Value};

fn runner(cases: u32) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    )
}

/// Small JSON values over a small alphabet, so that containment is often true.
fn json_value() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-2i64..3).prop_map(Value::from),
        prop_oneof![
            Just("1.0"),
            Just("1.50"),
            Just("15e-1"),
            Just("-0.0"),
            Just("2e0")
        ]
        .prop_map(|n| serde_json::from_str(n).unwrap()),
        prop_oneof![Just("x"), Just("y"), Just(""), Just("1")].prop_map(Value::from),
    ];
    scalar.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            object(inner),
        ]
    })
}

fn object(inner: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    proptest::collection::vec((prop_oneof![Just("a"), Just("b"), Just("c")], inner), 0..3).prop_map(
        |pairs| {
            Value::Object(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect::<Map<_, _>>(),
            )
        },
    )
}

/// A filter made from `doc` so that containment is often true, and decided by the details: a subset
/// of keys and array items, numbers respelled (`1` as `1.0`, `1.5` as `15e-1`), some values changed.
/// `seed` drives the choices.
fn filter_from(doc: &Value, seed: &mut u64) -> Value {
    match doc {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                if roll(seed, 3) != 0 {
                    out.insert(k.clone(), filter_from(v, seed));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut out = Vec::new();
            for v in items {
                if roll(seed, 2) == 0 {
                    out.push(filter_from(v, seed));
                }
            }
            Value::Array(out)
        }
        Value::Number(n) => {
            let literal = n.to_string();
            let respelled = match roll(seed, 4) {
                0 => "2.5".to_string(),
                1 if !literal.contains(['.', 'e']) => format!("{literal}.0"),
                2 if !literal.contains(['e', 'E']) => format!("{literal}e0"),
                _ => literal,
            };
            serde_json::from_str(&respelled).unwrap()
        }
        _ if roll(seed, 8) == 0 => Value::from("changed"),
        other => other.clone(),
    }
}

/// A number below `n` from a small generator.
fn roll(seed: &mut u64, n: u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 33) % n
}

#[derive(diesel::QueryableByName)]
struct Contains {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    contains: bool,
}

#[test]
fn sqlite_containment_equals_postgres_jsonb_containment() {
    let Some(url) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: compares with PostgreSQL (set TEST_DATABASE_URL)");
        return;
    };
    let conn = std::cell::RefCell::new(PgConnection::establish(&url).unwrap());
    let strategy = (
        object(json_value()),
        object(json_value()),
        any::<u64>(),
        any::<bool>(),
    );
    let agreed_true = std::cell::Cell::new(0);
    runner(1024)
        .run(&strategy, |(doc, random, mut seed, derive)| {
            let filter = if derive {
                filter_from(&doc, &mut seed)
            } else {
                random
            };
            // What SQLite evaluates: the same function, registered on every SQLite connection.
            let ours = honcho_domain::json::contains(&doc, &filter);
            let postgres = diesel::sql_query("SELECT $1::jsonb @> $2::jsonb AS contains")
                .bind::<diesel::sql_types::Text, _>(doc.to_string())
                .bind::<diesel::sql_types::Text, _>(filter.to_string())
                .get_result::<Contains>(&mut *conn.borrow_mut())
                .unwrap()
                .contains;
            prop_assert_eq!(ours, postgres, "{} @> {}", doc, filter);
            agreed_true.set(agreed_true.get() + usize::from(ours));
            Ok(())
        })
        .unwrap();
    // Both answers occur often enough for the comparison to mean something.
    assert!(
        (200..900).contains(&agreed_true.get()),
        "{} of 1024 were contained",
        agreed_true.get()
    );
}

#[test]
fn no_request_body_gets_a_server_error() {
    let app = TestApp::spawn();
    let s = app.session_path();
    let targets = [
        ("POST", "/v1/apps".to_string()),
        ("POST", "/v1/apps/list".to_string()),
        ("PUT", format!("/v1/apps/{}", s.app)),
        ("POST", s.messages()),
        ("POST", format!("{}/batch", s.messages())),
        ("POST", format!("{}/list", s.messages())),
        ("POST", format!("{}/metamessages", s.user_path())),
        ("POST", s.collections()),
    ];
    let body = prop_oneof![
        json_value().prop_map(|v| v.to_string()),
        object(json_value()).prop_map(|v| v.to_string()),
        ".{0,40}",
        proptest::collection::vec(any::<u8>(), 0..40)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ];
    let strategy = (0..targets.len(), body);
    runner(if on_postgres() { 128 } else { 256 })
        .run(&strategy, |(target, body)| {
            let (method, path) = &targets[target];
            let (status, answer) = app.send_as(None, method, path, Some(&body));
            prop_assert!(
                [200, 404, 409, 422].contains(&status),
                "{} {} with {:?}: {} {}",
                method,
                path,
                body,
                status,
                answer
            );
            Ok(())
        })
        .unwrap();
}
