//! Ranking of `documents/query`: hybrid (BM25 + the shipped embedder) by default, `vector` and
//! `lexical` on request. Results are checked against the formulas computed here from the stored
//! documents, after every kind of change, with and without filters.

use crate::helpers::{id, user_messages, Options, TestApp};
use honcho_domain::lexical::LexicalIndex;
use honcho_domain::retrieval::{Retrieval, RetrievalMode};
use honcho_models::PotionEmbedder;
use serde_json::{json, Value};

const MODES: [RetrievalMode; 3] = [
    RetrievalMode::Hybrid,
    RetrievalMode::Vector,
    RetrievalMode::Lexical,
];

pub fn app_with(mode: RetrievalMode) -> TestApp {
    TestApp::spawn_with(Options {
        retrieval: Retrieval {
            mode,
            ..Retrieval::default()
        },
        ..Options::default()
    })
}

fn collection(app: &TestApp) -> String {
    let s = app.session_path();
    let cid = id(&app.ok(app.post(&s.collections(), json!({ "name": "memories" }))));
    format!("{}/{cid}/documents", s.collections())
}

pub const TEXTS: [&str; 12] = [
    "Maya adopted a beagle puppy called Biscuit last spring.",
    "The vet said Biscuit needs his booster shots in March.",
    "Maya tuned her grandmother's old cello before the recital.",
    "She practises scales every evening after work.",
    "Maya works as a nurse on the night shift at St Anne's hospital.",
    "Her sister Ines lives in Lisbon and teaches chemistry.",
    "They are planning a trip to Kyoto in October.",
    "Maya prefers green tea to coffee, except on Mondays.",
    "The recital went well; the audience clapped for a long time.",
    "Her landlord raised the rent, so she might move to Leeds.",
    "Ines gave Maya a red bicycle for her birthday.",
    "Biscuit chewed through the bicycle's brake cable.",
];

/// Every document of the collection as `(id, content, metadata)`, in creation order.
fn stored(app: &TestApp, docs: &str) -> Vec<(String, String, Value)> {
    let page = app.ok(app.post(&format!("{docs}/list?size=100"), json!({})));
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                id(d),
                d["content"].as_str().unwrap().to_string(),
                d["metadata"].clone(),
            )
        })
        .collect()
}

/// The score of each stored document for `query` under `retrieval`, computed from scratch (BM25
/// over the whole collection, cosine with the shipped model, fusion over the `candidates`).
fn reference_scores(
    all: &[(String, String, Value)],
    candidates: &[usize],
    query: &str,
    retrieval: Retrieval,
) -> Vec<(usize, f64)> {
    let mut index = LexicalIndex::default();
    for (_, content, _) in all {
        index.push(content);
    }
    let bm25 = index.scores(query);
    let model = PotionEmbedder::new();
    let q = model.embed_one(query);
    let cosine = |text: &str| -> f64 {
        let v = model.embed_one(text);
        q.iter()
            .zip(&v)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum()
    };
    let lexical: Vec<f64> = candidates.iter().map(|&i| f64::from(bm25[i])).collect();
    let dense: Vec<f64> = candidates.iter().map(|&i| cosine(&all[i].1)).collect();
    let scale = |xs: &[f64]| -> Vec<f64> {
        let lo = xs.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        xs.iter()
            .map(|x| if hi > lo { (x - lo) / (hi - lo) } else { 0.0 })
            .collect()
    };
    let w = f64::from(retrieval.lexical_weight);
    let fused: Vec<f64> = match retrieval.mode {
        RetrievalMode::Vector => dense,
        RetrievalMode::Lexical => lexical,
        RetrievalMode::Hybrid => scale(&lexical)
            .iter()
            .zip(scale(&dense))
            .map(|(l, d)| w * l + (1.0 - w) * d)
            .collect(),
    };
    let mut scored: Vec<(usize, f64)> = candidates.iter().cloned().zip(fused).collect();
    if retrieval.mode == RetrievalMode::Lexical {
        scored.retain(|(_, s)| *s > 0.0);
    }
    scored
}

/// Asserts that `got` (ids, best first) is a correct top-`k` of the reference scores: in
/// non-increasing order of score, and no left-out candidate scores above the last one returned
/// (both up to rounding).
fn assert_top_k(
    all: &[(String, String, Value)],
    scored: &[(usize, f64)],
    got: &[String],
    k: usize,
    what: &str,
) {
    const EPS: f64 = 1e-4;
    let score_of = |doc: &String| -> f64 {
        let i = all.iter().position(|(id, ..)| id == doc).unwrap();
        scored
            .iter()
            .find(|(j, _)| *j == i)
            .unwrap_or_else(|| panic!("{what}: {:?} is not a candidate", all[i].1))
            .1
    };
    assert_eq!(got.len(), k.min(scored.len()), "{what}: result count");
    let scores: Vec<f64> = got.iter().map(score_of).collect();
    for pair in scores.windows(2) {
        assert!(pair[0] + EPS >= pair[1], "{what}: out of order {scores:?}");
    }
    if let Some(last) = scores.last() {
        for (i, s) in scored {
            if !got.contains(&all[*i].0) {
                assert!(
                    *s <= last + EPS,
                    "{what}: {:?} ({s}) left out above the last ({last})",
                    all[*i].1
                );
            }
        }
    }
}

fn query(app: &TestApp, docs: &str, body: Value) -> Vec<String> {
    app.ok(app.post(&format!("{docs}/query"), body))
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect()
}

const QUERIES: [&str; 6] = [
    "What is the name of Maya's dog?",
    "Which instrument does she play?",
    "where does her sister live",
    "hospital job",
    "Biscuit bicycle",
    "travel plans for autumn",
];

/// Checks every query (plain and with the `even` filter) against the reference.
fn check_all(app: &TestApp, docs: &str, retrieval: Retrieval, step: &str) {
    let all = stored(app, docs);
    let everyone: Vec<usize> = (0..all.len()).collect();
    let even: Vec<usize> = everyone
        .iter()
        .cloned()
        .filter(|&i| all[i].2["even"] == json!(true))
        .collect();
    for q in QUERIES {
        let scored = reference_scores(&all, &everyone, q, retrieval);
        let got = query(app, docs, json!({ "query": q, "top_k": 4 }));
        assert_top_k(&all, &scored, &got, 4, &format!("{step}: {q}"));
        let scored = reference_scores(&all, &even, q, retrieval);
        let got = query(
            app,
            docs,
            json!({ "query": q, "top_k": 3, "filter": { "even": true } }),
        );
        assert_top_k(&all, &scored, &got, 3, &format!("{step}, filtered: {q}"));
    }
}

fn add_all(app: &TestApp, docs: &str) -> Vec<String> {
    TEXTS
        .iter()
        .enumerate()
        .map(|(i, text)| {
            id(&app.ok(app.post(
                docs,
                json!({ "content": text, "metadata": { "even": i % 2 == 0 } }),
            )))
        })
        .collect()
}

#[test]
fn every_mode_ranks_by_its_formula_and_stays_exact_through_changes() {
    for mode in MODES {
        let retrieval = Retrieval {
            mode,
            ..Retrieval::default()
        };
        let app = app_with(mode);
        let docs = collection(&app);
        // A first copy of the collection is taken with one document, then extended.
        app.ok(app.post(
            &docs,
            json!({ "content": "Maya keeps bees.", "metadata": {} }),
        ));
        check_all(&app, &docs, retrieval, &format!("{mode}: one document"));
        let ids = add_all(&app, &docs);
        check_all(&app, &docs, retrieval, &format!("{mode}: created"));
        // New content: the postings and the vector of that document change at once.
        app.ok(app.put(
            &format!("{docs}/{}", ids[6]),
            json!({ "content": "Maya's sister bought a cello in Lisbon." }),
        ));
        check_all(&app, &docs, retrieval, &format!("{mode}: updated"));
        // Metadata only: a filter sees it at once.
        app.ok(app.put(
            &format!("{docs}/{}", ids[1]),
            json!({ "metadata": { "even": true } }),
        ));
        check_all(&app, &docs, retrieval, &format!("{mode}: metadata changed"));
        app.ok(app.delete(&format!("{docs}/{}", ids[0])));
        app.ok(app.delete(&format!("{docs}/{}", ids[11])));
        check_all(&app, &docs, retrieval, &format!("{mode}: deleted"));
        app.ok(app.post(
            &docs,
            json!({ "content": "Biscuit the beagle learnt to sit.", "metadata": { "even": true } }),
        ));
        check_all(
            &app,
            &docs,
            retrieval,
            &format!("{mode}: added after delete"),
        );
    }
}

#[test]
fn hybrid_finds_by_meaning_and_by_rare_words() {
    let app = TestApp::spawn();
    let docs = collection(&app);
    add_all(&app, &docs);
    let top = |q: &str| -> String {
        let found = app.ok(app.post(&format!("{docs}/query"), json!({ "query": q, "top_k": 1 })));
        found[0]["content"].as_str().unwrap().to_string()
    };
    // No shared word: found by meaning.
    assert_eq!(top("Which musical instrument?"), TEXTS[2]);
    // A rare name: found by the word.
    assert_eq!(top("Kyoto"), TEXTS[6]);
    assert_eq!(top("Who is Ines?"), TEXTS[5]);
}

#[test]
fn deleted_and_edited_documents_change_results_at_once() {
    let app = TestApp::spawn();
    let docs = collection(&app);
    let ids = add_all(&app, &docs);
    let first = |q: &str| query(&app, &docs, json!({ "query": q, "top_k": 1 }))[0].clone();
    assert_eq!(first("Kyoto trip in October"), ids[6]);
    app.ok(app.delete(&format!("{docs}/{}", ids[6])));
    assert_ne!(first("Kyoto trip in October"), ids[6]);
    app.ok(app.put(
        &format!("{docs}/{}", ids[3]),
        json!({ "content": "A weekend in Kyoto in October, booked at last." }),
    ));
    assert_eq!(first("Kyoto trip in October"), ids[3]);
}

#[test]
fn edge_queries_answer_sensibly() {
    for mode in MODES {
        let app = app_with(mode);
        let docs = collection(&app);
        // An empty collection.
        assert_eq!(
            query(&app, &docs, json!({ "query": "anything" })),
            Vec::<String>::new()
        );
        add_all(&app, &docs);
        // Only stop words: no word counts; hybrid and vector still rank by meaning, lexical finds
        // nothing.
        let found = query(
            &app,
            &docs,
            json!({ "query": "what is the of and", "top_k": 5 }),
        );
        match mode {
            RetrievalMode::Lexical => assert!(found.is_empty(), "{found:?}"),
            _ => assert_eq!(found.len(), 5),
        }
        // Punctuation only.
        let found = query(&app, &docs, json!({ "query": "?!…", "top_k": 3 }));
        assert!(found.len() <= 3);
    }
}

#[test]
fn text_in_other_languages_is_ranked_without_trouble() {
    let app = TestApp::spawn();
    let docs = collection(&app);
    let texts = [
        "Die Katze schläft den ganzen Tag auf dem Sofa.",
        "東京の桜はとても綺麗でした。",
        "Η αδελφή μου μένει στην Αθήνα.",
        "Mi hermano toca la guitarra los domingos.",
        "Maya adopted a beagle puppy called Biscuit.",
        "Привет, как дела? Я живу в Москве.",
    ];
    let ids: Vec<String> = texts
        .iter()
        .map(|t| id(&app.ok(app.post(&docs, json!({ "content": t })))))
        .collect();
    let first = |q: &str| query(&app, &docs, json!({ "query": q, "top_k": 6 }));
    assert_eq!(first("Katze Sofa")[0], ids[0]);
    assert_eq!(first("東京の桜")[0], ids[1]);
    assert_eq!(first("Αθήνα")[0], ids[2]);
    assert_eq!(first("guitarra")[0], ids[3]);
    assert_eq!(first("Москве")[0], ids[5]);
    assert_eq!(first("🎻🐶").len(), 6);
}

/// The same data ranks the same on SQLite and PostgreSQL: the snapshot is shared by both runs.
#[test]
fn both_engines_rank_the_same() {
    let mut out = serde_json::Map::new();
    for mode in MODES {
        let app = app_with(mode);
        let docs = collection(&app);
        add_all(&app, &docs);
        for q in QUERIES {
            let found =
                app.ok(app.post(&format!("{docs}/query"), json!({ "query": q, "top_k": 5 })));
            let contents: Vec<Value> = found
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["content"].clone())
                .collect();
            out.insert(format!("{mode}: {q}"), Value::Array(contents));
        }
    }
    insta::assert_json_snapshot!(Value::Object(out));
}

/// A collection (and a user's session) of 100 texts: a first one naming a dog, 98 notes, and a
/// last one about the dog that shares no word with the question asked about it.
fn feedback_texts() -> Vec<String> {
    let mut texts =
        vec!["Priya adopted a greyhound called Biscuit from a rescue in Leeds".to_string()];
    texts.extend((0..98).map(|i| format!("Note number {i}: tea and toast in the morning")));
    texts.push("Biscuit sleeps on the sofa all afternoon".to_string());
    texts
}

#[test]
fn a_question_finds_what_its_first_answer_names_and_a_short_lookup_does_not_spread() {
    // Words alone (weight 1) in hybrid mode: the last text ranks by feedback or not at all.
    let app = TestApp::spawn_with(Options {
        retrieval: Retrieval {
            mode: RetrievalMode::Hybrid,
            lexical_weight: 1.0,
        },
        ..Options::default()
    });
    let texts = feedback_texts();
    let s = app.session_path();
    let cid = id(&app.ok(app.post(&s.collections(), json!({ "name": "dogs" }))));
    let docs = format!("{}/{cid}/documents", s.collections());
    let ids: Vec<String> = texts
        .iter()
        .map(|t| id(&app.ok(app.post(&docs, json!({ "content": t })))))
        .collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let message_ids = user_messages(&app, &s.messages(), &texts);
    let search = |text: &str| -> (Vec<String>, Vec<String>) {
        let found = query(&app, &docs, json!({ "query": text, "top_k": 5 }));
        let url = format!("{}/messages/query", s.user_path());
        let messages = app.ok(app.post(&url, json!({ "query": text, "top_k": 5 })));
        (found, messages.as_array().unwrap().iter().map(id).collect())
    };
    // A question: the first result names Biscuit, and the text about Biscuit comes up with it.
    let (documents, messages) = search("Which greyhound did Priya adopt?");
    for (found, ids, kind) in [
        (&documents, &ids, "documents"),
        (&messages, &message_ids, "messages"),
    ] {
        assert_eq!(found[0], ids[0], "{kind}: {found:?}");
        assert!(found.contains(&ids[99]), "{kind}: {found:?}");
    }
    // A lookup of two words is ranked by those words alone.
    let (documents, messages) = search("greyhound Priya");
    for (found, ids, kind) in [
        (&documents, &ids, "documents"),
        (&messages, &message_ids, "messages"),
    ] {
        assert_eq!(found[0], ids[0], "{kind}: {found:?}");
        assert!(!found.contains(&ids[99]), "{kind}: {found:?}");
    }
}
