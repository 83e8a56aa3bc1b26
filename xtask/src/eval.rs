//! `cargo xtask eval`: how well `documents/query` finds what a question needs.
//!
//! The set is `xtask/eval/retrieval.json`, written for this project: conversations between invented
//! people and an assistant, in dated sessions, with questions whose evidence turns are marked
//! (single-fact, paraphrase, multi-hop, temporal). Each conversation becomes one collection with
//! one document per turn (`<speaker's first name or Assistant>: <text>`, as a transcript reads); each question is asked with `top_k` 50 through the HTTP API of the
//! release server, once per embedder and ranking mode, each on a fresh SQLite database. The score
//! is recall: the share of a question's evidence turns among the first k documents, averaged over
//! the questions.

use std::collections::BTreeMap;
use std::fs;
use std::time::Instant;

use serde_json::{json, Value};

use crate::bench::{remove_sqlite, server_binary, workspace_root, Client, Server};

const USAGE: &str = "usage: cargo xtask eval [--skip-build] [--weight W]

Builds the release server, stores xtask/eval/retrieval.json (one collection per conversation,
one document per turn) and asks its questions through documents/query, with each embedder
(local = potion-base-8M, local-hash = local-hash-v1) and each ranking mode (vector, lexical,
hybrid). Prints recall@5/@10/@50 (share of evidence turns found), overall and per kind.

options:
  --weight W      RETRIEVAL_LEXICAL_WEIGHT of the hybrid runs (default: the server's, 0.5)
  --skip-build    use the existing target/release/honcho as is";

/// Cut-offs reported.
const CUTS: [usize; 3] = [5, 10, 50];
/// Kinds of questions, in report order.
const KINDS: [&str; 4] = ["single-fact", "paraphrase", "multi-hop", "temporal"];

struct Question {
    kind: String,
    text: String,
    evidence: Vec<String>,
}

struct Conversation {
    /// `(turn id, text)` in order.
    turns: Vec<(String, String)>,
    questions: Vec<Question>,
}

fn load() -> Result<Vec<Conversation>, String> {
    let path = workspace_root().join("xtask/eval/retrieval.json");
    let raw = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: Value = serde_json::from_str(&raw).map_err(|e| format!("{}: {e}", path.display()))?;
    let str_of = |v: &Value, key: &str| -> Result<String, String> {
        v[key]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{}: missing \"{key}\" in {v}", path.display()))
    };
    let list = |v: &Value, key: &str| -> Result<Vec<Value>, String> {
        v[key]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("{}: missing list \"{key}\"", path.display()))
    };
    let mut out = Vec::new();
    for c in list(&doc, "conversations")? {
        // A turn is stored as its speaker's name and what they said, as a transcript reads.
        let person = str_of(&c, "person")?;
        // The name the person goes by: a quoted nickname (`Augustin "Gus" Farrow`), else the first.
        let first_name = match person.split('"').nth(1) {
            Some(nickname) if !nickname.trim().is_empty() => nickname.trim().to_string(),
            _ => person
                .split_whitespace()
                .next()
                .unwrap_or("User")
                .to_string(),
        };
        let mut turns = Vec::new();
        for session in list(&c, "sessions")? {
            for t in list(&session, "turns")? {
                let speaker = match str_of(&t, "speaker")?.as_str() {
                    "user" => first_name.clone(),
                    _ => "Assistant".to_string(),
                };
                let text = format!("{speaker}: {}", str_of(&t, "text")?);
                turns.push((str_of(&t, "id")?, text));
            }
        }
        let mut questions = Vec::new();
        for q in list(&c, "questions")? {
            let evidence = list(&q, "evidence")?
                .iter()
                .map(|e| {
                    e.as_str()
                        .map(str::to_owned)
                        .ok_or("evidence ids are strings")
                })
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(missing) = evidence
                .iter()
                .find(|e| !turns.iter().any(|(id, _)| id == *e))
            {
                return Err(format!(
                    "{}: unknown evidence turn {missing}",
                    path.display()
                ));
            }
            questions.push(Question {
                kind: str_of(&q, "kind")?,
                text: str_of(&q, "question")?,
                evidence,
            });
        }
        out.push(Conversation { turns, questions });
    }
    Ok(out)
}

/// Recall sums per cut-off and their question count, overall and per kind.
#[derive(Default)]
struct Tally {
    sums: BTreeMap<String, ([f64; 3], usize)>,
}

impl Tally {
    fn add(&mut self, kind: &str, found: &[String], evidence: &[String]) {
        for key in ["all", kind] {
            let entry = self.sums.entry(key.to_string()).or_default();
            for (i, cut) in CUTS.iter().enumerate() {
                let top = &found[..found.len().min(*cut)];
                let hits = evidence.iter().filter(|e| top.contains(e)).count();
                entry.0[i] += hits as f64 / evidence.len() as f64;
            }
            entry.1 += 1;
        }
    }

    /// Mean recall (in percent) of `key` at cut-off number `i`.
    fn recall(&self, key: &str, i: usize) -> f64 {
        self.sums
            .get(key)
            .map_or(0.0, |(sums, n)| 100.0 * sums[i] / (*n).max(1) as f64)
    }
}

/// Stores the set and asks every question on a fresh server with `env`; returns the tally.
fn run_one(
    binary: &std::path::Path,
    set: &[Conversation],
    label: &str,
    env: &[(&str, String)],
) -> Result<Tally, String> {
    let db = std::env::temp_dir().join(format!("honcho-eval-{}-{label}.db", std::process::id()));
    remove_sqlite(&db);
    let db_url = db.to_str().ok_or("temp dir path is not UTF-8")?.to_string();
    let result = (|| {
        let (server, _) = Server::start_with(binary, &db_url, label, env)?;
        let mut client = Client::new(server.port);
        let app = client.create("/v1/apps", json!({ "name": "eval" }))?;
        let mut tally = Tally::default();
        for (n, conversation) in set.iter().enumerate() {
            let user = client.create(
                &format!("/v1/apps/{app}/users"),
                json!({ "name": format!("person-{n}") }),
            )?;
            let collection = client.create(
                &format!("/v1/apps/{app}/users/{user}/collections"),
                json!({ "name": "turns" }),
            )?;
            let base = format!("/v1/apps/{app}/users/{user}/collections/{collection}/documents");
            for (id, text) in &conversation.turns {
                client.create(
                    &base,
                    json!({ "content": text, "metadata": { "turn": id } }),
                )?;
            }
            for q in &conversation.questions {
                let body = json!({ "query": q.text, "top_k": 50 }).to_string();
                let r = client.request("POST", &format!("{base}/query"), Some(&body))?;
                if r.status != 200 {
                    return Err(format!("query: {}", r.describe()));
                }
                let docs: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
                let found: Vec<String> = docs
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d["metadata"]["turn"].as_str().map(str::to_owned))
                    .collect();
                tally.add(&q.kind, &found, &q.evidence);
            }
        }
        server.finish();
        Ok(tally)
    })();
    remove_sqlite(&db);
    result
}

pub fn run(args: &[String]) -> Result<(), String> {
    let mut skip_build = false;
    let mut weight: Option<String> = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--skip-build" => skip_build = true,
            "--weight" => weight = Some(args.next().ok_or("--weight needs a value")?.clone()),
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown option {other}\n\n{USAGE}")),
        }
    }
    let set = load()?;
    let binary = server_binary(skip_build)?;
    let turns: usize = set.iter().map(|c| c.turns.len()).sum();
    let questions: usize = set.iter().map(|c| c.questions.len()).sum();
    println!(
        "honcho eval: {} conversations, {turns} turns (documents), {questions} questions; \
         recall of evidence turns in %, mean over questions",
        set.len()
    );
    println!(
        "\n{:<26} {:<8} {:>6} {:>6} {:>6}   @10 by kind: {}",
        "embedder",
        "mode",
        "@5",
        "@10",
        "@50",
        KINDS.join(" / ")
    );
    // Lexical ranking does not use vectors: one run stands for every embedder.
    let runs = [
        ("local-hash", "local-hash-v1", "vector"),
        ("local", "potion-base-8M", "vector"),
        ("local", "(none: BM25)", "lexical"),
        ("local-hash", "local-hash-v1", "hybrid"),
        ("local", "potion-base-8M", "hybrid"),
    ];
    for (provider, name, mode) in runs {
        let started = Instant::now();
        let mut env = vec![
            ("EMBEDDING_PROVIDER", provider.to_string()),
            ("RETRIEVAL_MODE", mode.to_string()),
        ];
        if let Some(w) = &weight {
            env.push(("RETRIEVAL_LEXICAL_WEIGHT", w.clone()));
        }
        let tally = run_one(&binary, &set, &format!("{provider}-{mode}"), &env)?;
        let kinds: Vec<String> = KINDS
            .iter()
            .map(|k| format!("{:.1}", tally.recall(k, 1)))
            .collect();
        println!(
            "{name:<26} {mode:<8} {:>6.1} {:>6.1} {:>6.1}   {}   ({:.1} s)",
            tally.recall("all", 0),
            tally.recall("all", 1),
            tally.recall("all", 2),
            kinds.join(" / "),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
