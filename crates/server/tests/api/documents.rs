//! Documents: embedded on write, re-embedded on new content, nearest-first queries.

use crate::helpers::{assert_redacted_snapshot, detail, id, Options, Scope, TestApp};
use honcho_domain::retrieval::{Retrieval, RetrievalMode};
use honcho_models::{cosine_distance, HashEmbedder, OpenAiConfig, OpenAiEmbedder, RetryPolicy};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

fn collection(app: &TestApp) -> (Scope, String) {
    let s = app.session_path();
    let cid = id(&app.ok(app.post(&s.collections(), json!({ "name": "facts" }))));
    let docs = format!("{}/{cid}/documents", s.collections());
    (s, docs)
}

#[test]
fn create_get_update_delete() {
    let app = TestApp::spawn();
    let (_, docs) = collection(&app);
    let doc = app.ok(app.post(
        &docs,
        json!({ "content": "The user lives in Lisbon.", "metadata": { "source": "chat" } }),
    ));
    assert_redacted_snapshot!(doc);
    let did = id(&doc);
    assert_eq!(app.ok(app.get(&format!("{docs}/{did}"))), doc);
    let updated = app.ok(app.put(
        &format!("{docs}/{did}"),
        json!({ "metadata": { "source": "import" } }),
    ));
    assert_eq!(
        (updated["content"].clone(), updated["metadata"].clone()),
        (doc["content"].clone(), json!({ "source": "import" }))
    );
    let updated = app.ok(app.put(
        &format!("{docs}/{did}"),
        json!({ "content": "The user moved to Porto." }),
    ));
    assert_eq!(
        (updated["content"].clone(), updated["metadata"].clone()),
        (
            json!("The user moved to Porto."),
            json!({ "source": "import" })
        )
    );
    let page = app.ok(app.post(
        &format!("{docs}/list"),
        json!({ "filter": { "source": "import" } }),
    ));
    assert_eq!(page["total"], 1);
    assert_eq!(
        app.delete(&format!("{docs}/{did}")),
        (200, json!({ "message": "Document deleted successfully" }))
    );
    assert_eq!(
        app.get(&format!("{docs}/{did}")),
        (
            404,
            json!({ "detail": format!("Document with ID '{did}' not found") })
        )
    );
}

#[test]
fn new_content_is_embedded_again() {
    let app = TestApp::spawn();
    let (_, docs) = collection(&app);
    let did = id(&app.ok(app.post(
        &docs,
        json!({ "content": "enjoys hiking in the mountains" }),
    )));
    app.ok(app.post(
        &docs,
        json!({ "content": "plays the violin every evening" }),
    ));
    let other = id(&app.ok(app.post(
        &docs,
        json!({ "content": "goes hiking in the hills on weekends" }),
    )));
    let top = |q: &str| {
        app.ok(app.post(&format!("{docs}/query"), json!({ "query": q, "top_k": 1 })))[0]["id"]
            .clone()
    };
    assert_eq!(top("enjoys hiking in the mountains"), json!(did));
    app.ok(app.put(
        &format!("{docs}/{did}"),
        json!({ "content": "collects vintage stamps" }),
    ));
    assert_eq!(top("vintage stamps"), json!(did));
    assert_eq!(top("enjoys hiking in the mountains"), json!(other));
}

#[test]
fn errors() {
    let app = TestApp::spawn();
    let (s, docs) = collection(&app);
    let c404 = json!({ "detail": "Collection not found or does not belong to user" });
    let ghost = format!("{}/ghost/documents", s.collections());
    assert_eq!(
        app.post(&ghost, json!({ "content": "x" })),
        (404, c404.clone())
    );
    assert_eq!(app.delete(&format!("{ghost}/nothing")), (404, c404));
    assert_eq!(
        app.delete(&format!("{docs}/nothing")),
        detail(404, "Document not found or does not belong to user")
    );
    let did = id(&app.ok(app.post(&docs, json!({ "content": "x" }))));
    assert_eq!(
        app.put(&format!("{docs}/{did}"), json!({})),
        detail(422, "Content and metadata cannot both be None")
    );
    assert_eq!(
        app.put(&format!("{docs}/nothing"), json!({ "content": "y" })),
        detail(404, "Document with ID 'nothing' not found")
    );
    let (status, body) = app.post(&docs, json!({ "content": "" }));
    assert_eq!(
        (status, body["detail"][0]["type"].clone()),
        (422, json!("string_too_short"))
    );
    let (status, body) = app.post(&docs, json!({ "content": "x".repeat(100_001) }));
    assert_eq!(
        (status, body["detail"][0]["loc"].clone()),
        (422, json!(["body", "content"]))
    );
    app.ok(app.post(&docs, json!({ "content": "é".repeat(100_000) })));
    let (status, body) = app.post(
        &format!("{docs}/query"),
        json!({ "query": "q".repeat(1001) }),
    );
    assert_eq!(
        (status, body["detail"][0]["type"].clone()),
        (422, json!("string_too_long"))
    );
    for top_k in [0, 51] {
        let (status, body) = app.post(
            &format!("{docs}/query"),
            json!({ "query": "x", "top_k": top_k }),
        );
        assert_eq!(
            (status, body["detail"][0]["loc"].clone()),
            (422, json!(["body", "top_k"])),
            "{top_k}"
        );
    }
    let (status, body) = app.post(&format!("{docs}/query"), json!({}));
    assert_eq!(
        (status, body["detail"][0]["type"].clone()),
        (422, json!("missing"))
    );
}

const TEXTS: [&str; 12] = [
    "The user lives in Lisbon and works as a nurse.",
    "The user has two cats named Miso and Tofu.",
    "The user is learning to play the cello.",
    "The user prefers tea over coffee in the morning.",
    "The user ran a marathon in Porto last spring.",
    "The user is allergic to peanuts.",
    "The user's sister lives in Berlin.",
    "The user enjoys reading science fiction novels.",
    "The user works night shifts at the hospital.",
    "The user wants to visit Japan next year.",
    "The user drinks green tea every afternoon.",
    "The user adopted a third cat last week.",
];

#[test]
fn query_orders_by_cosine_distance_like_a_brute_force_scan() {
    // `vector` ranking is v1.1.0's: cosine distance alone.
    let app = TestApp::spawn_with(Options {
        embedder: Arc::new(HashEmbedder::new()),
        retrieval: Retrieval {
            mode: RetrievalMode::Vector,
            ..Retrieval::default()
        },
        ..Options::default()
    });
    let (_, docs) = collection(&app);
    let mut stored: Vec<(String, String)> = Vec::new();
    for (i, text) in TEXTS.iter().enumerate() {
        let d = app.ok(app.post(
            &docs,
            json!({ "content": text, "metadata": { "even": i % 2 == 0 } }),
        ));
        stored.push((id(&d), text.to_string()));
    }
    let embedder = HashEmbedder::new();
    for query in [
        "cats at home",
        "tea or coffee",
        "hospital nurse job",
        "travel plans",
    ] {
        let q = embedder.embed_one(query);
        let mut expected: Vec<(f32, &String)> = stored
            .iter()
            .map(|(id, t)| (cosine_distance(&q, &embedder.embed_one(t)), id))
            .collect();
        expected.sort_by(|a, b| a.0.total_cmp(&b.0));
        let want: Vec<&String> = expected.iter().take(5).map(|(_, id)| *id).collect();
        let found = app.ok(app.post(&format!("{docs}/query"), json!({ "query": query })));
        let got: Vec<String> = found.as_array().unwrap().iter().map(id).collect();
        assert_eq!(got.iter().collect::<Vec<_>>(), want, "query {query:?}");

        let all = app.ok(app.post(
            &format!("{docs}/query"),
            json!({ "query": query, "top_k": 50 }),
        ));
        assert_eq!(all.as_array().unwrap().len(), TEXTS.len());
        let even = app.ok(app.post(
            &format!("{docs}/query"),
            json!({ "query": query, "top_k": 3, "filter": { "even": true } }),
        ));
        let want_even: Vec<&String> = expected
            .iter()
            .filter(|(_, id)| stored.iter().position(|(s, _)| s == *id).unwrap() % 2 == 0)
            .take(3)
            .map(|(_, id)| *id)
            .collect();
        let got_even: Vec<String> = even.as_array().unwrap().iter().map(id).collect();
        assert_eq!(
            got_even.iter().collect::<Vec<_>>(),
            want_even,
            "filtered query {query:?}"
        );
    }
    let empty = app.ok(app.post(
        &format!("{docs}/query"),
        json!({ "query": "anything", "filter": { "missing": 1 } }),
    ));
    assert_eq!(empty, json!([]));
}

/// An OpenAI-compatible server that always fails with 500, counting the requests it gets.
fn failing_provider() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            crate::helpers::read_request(&stream);
            let answer = r#"{"error": {"message": "upstream exploded"}}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (url, hits)
}

#[test]
fn a_failing_embedding_provider_is_a_502_and_stores_nothing() {
    let (url, hits) = failing_provider();
    let mut config = OpenAiConfig::new("sk-test");
    config.base_url = url;
    config.timeout = Duration::from_secs(2);
    config.retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(10),
        max_retry_after: Duration::from_millis(10),
    };
    let app = TestApp::spawn_with_embedder(Arc::new(OpenAiEmbedder::new(config).unwrap()));
    let (_, docs) = collection(&app);
    let (status, body): (u16, Value) = app.post(&docs, json!({ "content": "a fact" }));
    // The provider's message ("upstream exploded") and address stay in the log.
    assert_eq!((status, body), detail(502, "embedding provider failed"));
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "three attempts"
    );
    let page = app.ok(app.post_empty(&format!("{docs}/list")));
    assert_eq!(page["total"], 0, "no half-made document");
    // An unknown collection is answered before the provider is called.
    let before = hits.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        app.post(
            &docs.replace("/documents", "x/documents"),
            json!({ "content": "a" })
        )
        .0,
        404
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), before);
}

#[test]
fn vectors_of_another_embedder_are_not_compared_until_reembedded() {
    let app = TestApp::spawn();
    let (_, docs) = collection(&app);
    let did = id(&app.ok(app.post(&docs, json!({ "content": "The user keeps bees." }))));
    app.ok(app.post(&docs, json!({ "content": "The user sails on weekends." })));
    app.execute_sql(
        "UPDATE documents SET embedder = 'old-model'",
        "UPDATE documents SET embedder = 'old-model'",
    );
    // Hybrid ranking still finds them by their words, and says that their vectors were not compared.
    let (found, incomparable) = query_with_header(&app, &docs, json!({ "query": "bees" }));
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["id"], did.as_str());
    assert_eq!(incomparable.as_deref(), Some("2"));

    assert_eq!(
        crate::helpers::reembed(&app, 1),
        "re-embedded 2 documents and embedded 0 messages with model2vec:potion-base-8M"
    );
    let found = app.ok(app.post(
        &format!("{docs}/query"),
        json!({ "query": "bees", "top_k": 1 }),
    ));
    assert_eq!(found[0]["id"], did.as_str());
}

/// A query's answer and its `x-honcho-incomparable-documents` header.
fn query_with_header(app: &TestApp, docs: &str, body: Value) -> (Value, Option<String>) {
    let res = ureq::post(&format!("{}{docs}/query", app.base))
        .send_json(body)
        .unwrap();
    let header = res
        .header("x-honcho-incomparable-documents")
        .map(str::to_string);
    (res.into_json().unwrap(), header)
}

#[test]
fn a_vector_query_over_vectors_it_cannot_compare_says_so() {
    let app = TestApp::spawn_with(Options {
        retrieval: Retrieval {
            mode: RetrievalMode::Vector,
            ..Retrieval::default()
        },
        ..Options::default()
    });
    let (_, docs) = collection(&app);
    app.ok(app.post(&docs, json!({ "content": "The user keeps bees." })));
    app.ok(app.post(&docs, json!({ "content": "The user sails on weekends." })));
    let (found, incomparable) = query_with_header(&app, &docs, json!({ "query": "bees" }));
    assert_eq!((found.as_array().unwrap().len(), incomparable), (2, None));
    // As a database written with another embedder (a new revision, so the cached copy is read again).
    let sql = "UPDATE documents SET embedder = 'old-model', revision = revision + 1000000 \
               WHERE content LIKE '%bees%'";
    app.execute_sql(sql, sql);
    let (found, incomparable) = query_with_header(&app, &docs, json!({ "query": "bees" }));
    assert_eq!(
        found.as_array().unwrap().len(),
        1,
        "only the comparable one"
    );
    assert_eq!(incomparable.as_deref(), Some("1"));
}

#[test]
fn queries_see_documents_written_by_another_process() {
    let app = TestApp::spawn();
    let (_, docs) = collection(&app);
    app.ok(app.post(&docs, json!({ "content": "The user plays chess." })));
    // Warm this process's copy of the collection's vectors.
    assert_eq!(
        app.ok(app.post(&format!("{docs}/query"), json!({ "query": "chess" })))
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let mut other = std::process::Command::new(env!("CARGO_BIN_EXE_honcho"))
        .current_dir(dir.path())
        .env("DATABASE_URL", app.database_url())
        .env("PORT", port.to_string())
        .env("LOG_LEVEL", "warn")
        .env_remove("USE_AUTH")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let base = format!("http://127.0.0.1:{port}");
    let up = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(25));
        agent.get(&format!("{base}/health")).call().is_ok()
    });
    assert!(up, "second server did not start");
    let written: Value = agent
        .post(&format!("{base}{docs}"))
        .send_json(json!({ "content": "The user plays chess on Sundays." }))
        .unwrap()
        .into_json()
        .unwrap();
    let found = app.ok(app.post(
        &format!("{docs}/query"),
        json!({ "query": "chess sundays", "top_k": 2 }),
    ));
    let _ = other.kill();
    let _ = other.wait();
    assert_eq!(
        found[0]["id"], written["id"],
        "a document another process wrote is found at once"
    );
}

#[test]
fn a_deleted_document_leaves_the_query_results_at_once() {
    let app = TestApp::spawn();
    let (_, docs) = collection(&app);
    let gone = id(&app.ok(app.post(&docs, json!({ "content": "The user owns a red bicycle." }))));
    let kept = id(&app.ok(app.post(&docs, json!({ "content": "The user owns a blue car." }))));
    let top = || app.ok(app.post(&format!("{docs}/query"), json!({ "query": "red bicycle" })));
    assert_eq!(top()[0]["id"], gone.as_str());
    app.ok(app.delete(&format!("{docs}/{gone}")));
    let after = top();
    assert_eq!(
        (after.as_array().unwrap().len(), after[0]["id"].clone()),
        (1, json!(kept))
    );
}

/// A collection larger than one read of its cached copy (2,000 documents): the copy is read in
/// pages, then extended with a new document, then read again when a document it holds changes;
/// every query sees every document as it now is.
#[test]
fn a_collection_of_several_pages_is_searched_whole_and_kept_current() {
    let app = TestApp::spawn();
    let (_, docs) = collection(&app);
    let ids: Vec<String> = (0..2_050)
        .map(|i| {
            let content = format!("filler note number n{i} about the weather");
            id(&app.ok(app.post(&docs, json!({ "content": content }))))
        })
        .collect();
    let top = |query: &str| -> String {
        let found = app.ok(app.post(
            &format!("{docs}/query"),
            json!({ "query": query, "top_k": 1 }),
        ));
        id(&found[0])
    };
    // Items of the first page and of the second are found by their words.
    assert_eq!(top("note n7"), ids[7]);
    assert_eq!(top("note n2049"), ids[2_049]);
    // A new document extends the cached copy.
    let added = id(&app.ok(app.post(
        &docs,
        json!({ "content": "a trip to alpha centauri planned" }),
    )));
    assert_eq!(top("alpha centauri trip"), added);
    assert_eq!(top("note n2049"), ids[2_049]);
    // A document the copy holds gets new content: the copy is read again, in pages.
    app.ok(app.put(
        &format!("{docs}/{}", ids[5]),
        json!({ "content": "zebra crossing outside the bakery" }),
    ));
    assert_eq!(top("zebra crossing bakery"), ids[5]);
    assert_ne!(top("note n5"), ids[5]);
    assert_eq!(top("note n2049"), ids[2_049]);
    assert_eq!(top("alpha centauri trip"), added);
}
