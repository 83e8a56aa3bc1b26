//! Every spelling of a path reaches the route its canonical spelling reaches, with the same
//! authorisation; dot segments match nothing. The cases are generated from the served OpenAPI
//! document, so a new route is covered without editing this file.

use crate::auth::{expected, keys, Fixture, SECRET, SIBLING_MULTI_KEYS};
use crate::helpers::TestApp;
use honcho_web::auth::Keys;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value};

/// What a disguised path must answer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Meaning {
    /// Exactly what the plain path answers.
    Same,
    /// 404 `Not Found`: the spelling matches no route.
    Unrouted,
}

fn encode(c: char, upper: bool) -> String {
    if upper {
        format!("%{:02X}", c as u32)
    } else {
        format!("%{:02x}", c as u32)
    }
}

/// Disguises of `path` (whose route is `template`): each static segment with one letter
/// percent-encoded in both hex cases and wholly encoded, a trailing slash, doubled slashes, and dot
/// segments.
fn disguises(template: &str, path: &str) -> Vec<(String, Meaning)> {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, format!("?{q}")),
        None => (path, String::new()),
    };
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let statics: Vec<bool> = template
        .split('/')
        .skip(1)
        .map(|s| !s.starts_with('{'))
        .collect();
    assert_eq!(segments.len(), statics.len(), "{template} vs {path}");
    let join = |segs: &[String]| format!("/{}{query}", segs.join("/"));
    let owned: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
    let mut out = Vec::new();
    for (i, seg) in segments.iter().enumerate().filter(|(i, _)| statics[*i]) {
        // Prefer a letter whose escape has a hex letter in it (`l` is %6c / %6C).
        let pos = seg
            .char_indices()
            .find(|(_, c)| c.is_ascii_alphabetic() && encode(*c, false) != encode(*c, true))
            .or_else(|| seg.char_indices().find(|(_, c)| c.is_ascii_alphabetic()))
            .map(|(p, _)| p)
            .unwrap_or(0);
        for upper in [false, true] {
            let c = seg[pos..].chars().next().unwrap();
            let mut segs = owned.clone();
            segs[i] = format!("{}{}{}", &seg[..pos], encode(c, upper), &seg[pos + 1..]);
            out.push((join(&segs), Meaning::Same));
        }
        let mut segs = owned.clone();
        segs[i] = seg.chars().map(|c| encode(c, true)).collect();
        out.push((join(&segs), Meaning::Same));
    }
    out.push((format!("{path}/{query}"), Meaning::Same));
    out.push((format!("/{path}{query}"), Meaning::Same));
    let last = path.rfind('/').unwrap();
    out.push((
        format!("{}/{}{query}", &path[..last], &path[last..]),
        Meaning::Same,
    ));
    let after_v1 = |insert: &str| format!("/v1/{insert}{}{query}", &path[3..]);
    out.push((after_v1("./"), Meaning::Unrouted));
    out.push((after_v1("x/../"), Meaning::Unrouted));
    out.push((after_v1("%2e/"), Meaning::Unrouted));
    out.push((after_v1("x/%2E%2e/"), Meaning::Unrouted));
    out
}

/// Tenant A's ids and names: none may appear in an answer to a request that did not name it.
fn secrets(f: &Fixture) -> Vec<String> {
    vec![
        f.app.clone(),
        f.user.clone(),
        f.session.clone(),
        f.message.clone(),
        f.metamessage.clone(),
        f.collection.clone(),
        f.document.clone(),
        f.app_name.clone(),
        f.user_name.clone(),
    ]
}

#[test]
fn disguised_paths_never_get_past_authorisation() {
    let app = TestApp::spawn_with_auth(SECRET);
    let admin = Keys::new(SECRET).admin_key();
    let fixture = Fixture::seed(&app, &admin);
    let keys = keys(&fixture);
    let mut outsiders = vec![
        "none",
        "other secret",
        "sibling app",
        "sibling user",
        "sibling session",
        "sibling collection",
    ];
    outsiders.extend_from_slice(SIBLING_MULTI_KEYS);
    let secrets = secrets(&fixture);
    let mut failures = Vec::new();
    let mut cases = 0;
    for (n, (method, template)) in app.operations().iter().enumerate() {
        let (path, body) = fixture.request(template, method, n);
        for (name, token) in keys.iter().filter(|(k, _)| outsiders.contains(k)) {
            let Some(detail) = expected(method, template, name) else {
                continue;
            };
            let plain = app.send_raw(token.as_deref(), method, &path, body.as_deref());
            let refused = (401, json!({ "detail": detail }));
            if plain != refused {
                failures.push(format!(
                    "{method} {path} with {name} key: {plain:?}, expected {refused:?}"
                ));
            }
            for (disguise, meaning) in disguises(template, &path) {
                cases += 1;
                let answer = app.send_raw(token.as_deref(), method, &disguise, body.as_deref());
                let want = match meaning {
                    Meaning::Same => refused.clone(),
                    Meaning::Unrouted => crate::helpers::detail(404, "Not Found"),
                };
                if answer != want {
                    failures.push(format!(
                        "{method} {disguise} with {name} key: {answer:?}, expected {want:?}"
                    ));
                }
                let text = answer.1.to_string();
                for secret in secrets.iter().filter(|s| !disguise.contains(s.as_str())) {
                    if text.contains(secret.as_str()) {
                        failures.push(format!(
                            "{method} {disguise} with {name} key leaks {secret}: {text}"
                        ));
                    }
                }
            }
        }
    }
    assert!(cases > 1000, "only {cases} disguised requests were tried");
    assert!(
        failures.is_empty(),
        "{} failures of {cases} disguised requests:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// How a request fared: refused (with the detail), unrouted, or past authorisation.
#[derive(Debug, PartialEq)]
enum Outcome {
    Refused(Value),
    Unrouted,
    Authorised,
}

fn outcome((status, body): (u16, Value)) -> Outcome {
    match status {
        401 => Outcome::Refused(body),
        404 if body == json!({ "detail": "Not Found" }) => Outcome::Unrouted,
        _ => Outcome::Authorised,
    }
}

/// A random spelling of `path`: characters of its segments percent-encoded (either hex case), runs of
/// slashes, maybe a trailing slash. The query is left alone.
fn respell(path: &str, choices: &[u8], trailing: bool) -> String {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, format!("?{q}")),
        None => (path, String::new()),
    };
    let mut out = String::new();
    for (i, c) in path.chars().enumerate() {
        let choice = choices[i % choices.len()];
        if c == '/' {
            out.push('/');
            if choice.is_multiple_of(7) {
                out.push('/');
            }
        } else if choice.is_multiple_of(3) {
            out.push_str(&encode(c, choice.is_multiple_of(2)));
        } else {
            out.push(c);
        }
    }
    if trailing {
        out.push('/');
    }
    out + &query
}

#[test]
fn routing_and_authorisation_agree_for_any_spelling() {
    let app = TestApp::spawn_with_auth(SECRET);
    let admin = Keys::new(SECRET).admin_key();
    let mut fixture = Fixture::seed(&app, &admin);
    let keys = keys(&fixture);
    let ops = app.operations();
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 160,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let strategy = (
        0..ops.len(),
        0..keys.len(),
        proptest::collection::vec(any::<u8>(), 1..48),
        any::<bool>(),
    );
    let n = std::cell::Cell::new(10_000);
    let fixture = std::cell::RefCell::new(&mut fixture);
    runner
        .run(&strategy, |(op, key, choices, trailing)| {
            let (method, template) = &ops[op];
            let (name, token) = &keys[key];
            n.set(n.get() + 1);
            fixture.borrow_mut().prepare(&app, &admin, method, template);
            let (path, body) = fixture.borrow().request(template, method, n.get());
            let spelled = respell(&path, &choices, trailing);
            let plain = outcome(app.send_raw(token.as_deref(), method, &path, body.as_deref()));
            fixture.borrow_mut().prepare(&app, &admin, method, template);
            let disguised =
                outcome(app.send_raw(token.as_deref(), method, &spelled, body.as_deref()));
            prop_assert_eq!(
                &plain,
                &disguised,
                "{} {} (as {}) with the {} key",
                method,
                path,
                spelled,
                name
            );
            prop_assert_ne!(plain, Outcome::Unrouted, "{} {} is served", method, path);
            Ok(())
        })
        .unwrap();
}
