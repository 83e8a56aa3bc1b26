//! `cargo xtask eval`: how well `documents/query` finds what a question needs.
//!
//! The set is `xtask/eval/retrieval.json`, written for this project: conversations between invented
//! people and an assistant, in dated sessions, with questions whose evidence turns are marked
//! (single-fact, paraphrase, multi-hop, temporal). Each conversation's person becomes a user named
//! after them, and the conversation one collection of that user with one document per turn
//! (`<speaker's first name or Assistant>: <text>`, as a transcript reads); each question is asked
//! with `top_k` 50 through the HTTP API of the release server, once per embedder and ranking mode,
//! each on a fresh SQLite database. The score
//! is recall: the share of a question's evidence turns among the first k documents, averaged over
//! the questions.

use std::collections::BTreeMap;
use std::fs;
use std::time::Instant;

use serde_json::{json, Value};

use crate::bench::{remove_sqlite, server_binary, workspace_root, Client, Server};

const USAGE: &str =
    "usage: cargo xtask eval [--messages | --chat] [--skip-build | --binary PATH] [--weight W]

Builds the release server, stores xtask/eval/retrieval.json (one collection per conversation,
one document per turn) and asks its questions through documents/query, with each embedder
(local = potion-base-8M, local-hash = local-hash-v1) and each ranking mode (vector, lexical,
hybrid). Prints recall@5/@10/@50 (share of evidence turns found), overall and per kind.

options:
  --messages      message search instead: each conversation is a user's sessions (the user
                  named after the person), one message per turn, and each question is asked
                  through the user's messages/query
  --chat          context recall of chat instead: conversations stored as with --messages and
                  derived with an echo model (a fact is the user's message, the answer its
                  prompt); each question asked with chat on the conversation's last session;
                  prints the share of evidence turns whose text reaches the prompt
  --weight W      RETRIEVAL_LEXICAL_WEIGHT of the hybrid runs (default: the server's, 0.5)
  --skip-build    use the existing target/release/honcho as is
  --binary PATH   use this server binary (for instance an older build, to compare)";

/// What is measured.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// `documents/query` over one collection per conversation.
    Documents,
    /// `messages/query` over one user's sessions per conversation.
    Messages,
    /// What reaches `chat`'s prompt.
    Chat,
}

/// Cut-offs reported.
const CUTS: [usize; 3] = [5, 10, 50];
/// Kinds of questions, in report order.
const KINDS: [&str; 4] = ["single-fact", "paraphrase", "multi-hop", "temporal"];

struct Question {
    kind: String,
    text: String,
    evidence: Vec<String>,
}

struct Turn {
    id: String,
    /// What they said.
    said: String,
    is_user: bool,
}

struct Conversation {
    /// The person's full name, as the set gives it: the name of the user made for them.
    person: String,
    /// Turns of each session, in order.
    sessions: Vec<Vec<Turn>>,
    /// `(turn id, text)` of every turn, in order.
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
        let mut sessions = Vec::new();
        for session in list(&c, "sessions")? {
            let mut said_in_session = Vec::new();
            for t in list(&session, "turns")? {
                let is_user = str_of(&t, "speaker")? == "user";
                let speaker = match is_user {
                    true => first_name.clone(),
                    false => "Assistant".to_string(),
                };
                let said = str_of(&t, "text")?;
                let text = format!("{speaker}: {said}");
                turns.push((str_of(&t, "id")?, text));
                said_in_session.push(Turn {
                    id: str_of(&t, "id")?,
                    said,
                    is_user,
                });
            }
            sessions.push(said_in_session);
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
        out.push(Conversation {
            person,
            sessions,
            turns,
            questions,
        });
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

/// Runs `work` against a fresh server with `env` over a new SQLite file (removed afterwards), with
/// an app made for it.
fn on_fresh_server<T>(
    binary: &std::path::Path,
    label: &str,
    env: &[(&str, String)],
    work: impl FnOnce(&mut Client, &str) -> Result<T, String>,
) -> Result<T, String> {
    let db = std::env::temp_dir().join(format!("honcho-eval-{}-{label}.db", std::process::id()));
    remove_sqlite(&db);
    let db_url = db.to_str().ok_or("temp dir path is not UTF-8")?.to_string();
    let result = (|| {
        let (server, _) = Server::start_with(binary, &db_url, label, env)?;
        let mut client = Client::new(server.port);
        let app = client.create("/v1/apps", json!({ "name": "eval" }))?;
        let out = work(&mut client, &app)?;
        server.finish();
        Ok(out)
    })();
    remove_sqlite(&db);
    result
}

/// Asks `question` at `path` (a `.../query` route, `top_k` 50); returns the turn ids found, best
/// first.
fn turns_found(client: &mut Client, path: &str, question: &str) -> Result<Vec<String>, String> {
    let body = json!({ "query": question, "top_k": 50 }).to_string();
    let r = client.request("POST", path, Some(&body))?;
    if r.status != 200 {
        return Err(format!("query: {}", r.describe()));
    }
    let found: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    Ok(found
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["metadata"]["turn"].as_str().map(str::to_owned))
        .collect())
}

/// Stores the set and asks every question on a fresh server with `env`; returns the tally.
fn run_one(
    binary: &std::path::Path,
    set: &[Conversation],
    label: &str,
    env: &[(&str, String)],
) -> Result<Tally, String> {
    on_fresh_server(binary, label, env, |client, app| {
        let mut tally = Tally::default();
        for conversation in set {
            let user = client.create(
                &format!("/v1/apps/{app}/users"),
                json!({ "name": conversation.person }),
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
                let found = turns_found(client, &format!("{base}/query"), &q.text)?;
                tally.add(&q.kind, &found, &q.evidence);
            }
        }
        Ok(tally)
    })
}

/// Stores a conversation as a user's sessions and messages (what was said, the speaker as
/// `is_user`, the turn id in metadata); returns `(user, session ids)`.
fn store_sessions(
    client: &mut Client,
    app: &str,
    conversation: &Conversation,
) -> Result<(String, Vec<String>), String> {
    let user = client.create(
        &format!("/v1/apps/{app}/users"),
        json!({ "name": conversation.person }),
    )?;
    let mut sessions = Vec::new();
    for turns in &conversation.sessions {
        let session = client.create(&format!("/v1/apps/{app}/users/{user}/sessions"), json!({}))?;
        for chunk in turns.chunks(100) {
            let messages: Vec<Value> = chunk
                .iter()
                .map(|t| json!({ "content": t.said, "is_user": t.is_user, "metadata": { "turn": t.id } }))
                .collect();
            let body = json!({ "messages": messages }).to_string();
            let path = format!("/v1/apps/{app}/users/{user}/sessions/{session}/messages/batch");
            let r = client.request("POST", &path, Some(&body))?;
            if r.status != 200 {
                return Err(format!("batch: {}", r.describe()));
            }
        }
        sessions.push(session);
    }
    Ok((user, sessions))
}

/// Message search: each conversation is one user's sessions; each question is asked over all of
/// them (`messages/query`, `top_k` 50).
fn run_messages(
    binary: &std::path::Path,
    set: &[Conversation],
    label: &str,
    env: &[(&str, String)],
) -> Result<Tally, String> {
    on_fresh_server(binary, &format!("m-{label}"), env, |client, app| {
        let mut tally = Tally::default();
        for conversation in set {
            let (user, _) = store_sessions(client, app, conversation)?;
            let path = format!("/v1/apps/{app}/users/{user}/messages/query");
            for q in &conversation.questions {
                let found = turns_found(client, &path, &q.text)?;
                tally.add(&q.kind, &found, &q.evidence);
            }
        }
        Ok(tally)
    })
}

/// The model double of the context-recall run: a fact is the user's message itself, no search
/// phrases, a fixed summary, and an answer that is its prompt.
fn echo_reply(system: &str, user: &str) -> String {
    if system.contains("durable facts") {
        let new = user
            .rsplit("New message from the user:\n")
            .next()
            .unwrap_or("");
        json!({ "facts": [new.trim()] }).to_string()
    } else if system.contains("search a memory") {
        r#"{"queries": []}"#.to_string()
    } else if system.contains("running record") || system.contains("summarise a conversation") {
        "A conversation.".to_string()
    } else {
        user.to_string()
    }
}

/// Context recall of `chat`: every conversation stored and derived (facts are the user's messages),
/// each question asked on its conversation's last session; the share of the question's evidence
/// turns whose text reaches the prompt `chat` builds, overall and per kind. Returns `(mean share
/// per key, questions)`.
fn run_chat(
    binary: &std::path::Path,
    set: &[Conversation],
) -> Result<BTreeMap<String, (f64, usize)>, String> {
    let model = crate::bench_insights::start_model_with(std::time::Duration::ZERO, echo_reply)?;
    let env = [
        ("LLM_BASE_URL", model),
        ("LLM_API_KEY", "eval".to_string()),
        ("LLM_MODEL", "echo".to_string()),
        ("DERIVER_WORKERS", "2".to_string()),
        ("DERIVER_POLL_MS", "20".to_string()),
    ];
    on_fresh_server(binary, "chat", &env, |client, app| {
        let app = app.to_string();
        let mut stored = Vec::new();
        for conversation in set {
            stored.push(store_sessions(client, &app, conversation)?);
        }
        // The deriver writes every fact before a question is asked.
        let started = Instant::now();
        loop {
            let r = client.request("GET", &format!("/v1/apps/{app}/deriver/status"), None)?;
            let status: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
            let open = status["pending"].as_i64().unwrap_or(0)
                + status["in_progress"].as_i64().unwrap_or(0);
            if open == 0 {
                break;
            }
            if started.elapsed().as_secs() > 600 {
                return Err(format!("the deriver did not finish: {status}"));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let mut shares: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        for (conversation, (user, sessions)) in set.iter().zip(&stored) {
            let last = sessions.last().ok_or("a conversation without sessions")?;
            let said = |id: &str| {
                conversation
                    .sessions
                    .iter()
                    .flatten()
                    .find(|t| t.id == id)
                    .map(|t| t.said.as_str())
            };
            for q in &conversation.questions {
                let body = json!({ "queries": q.text }).to_string();
                let path = format!("/v1/apps/{app}/users/{user}/sessions/{last}/chat");
                let r = client.request("POST", &path, Some(&body))?;
                if r.status != 200 {
                    return Err(format!("chat: {}", r.describe()));
                }
                let answer: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
                let prompt = answer["content"].as_str().unwrap_or("");
                let reached = q
                    .evidence
                    .iter()
                    .filter(|e| said(e).is_some_and(|t| prompt.contains(t)))
                    .count();
                let share = reached as f64 / q.evidence.len() as f64;
                for key in ["all", q.kind.as_str()] {
                    let entry = shares.entry(key.to_string()).or_default();
                    entry.0 += share;
                    entry.1 += 1;
                }
            }
        }
        Ok(shares
            .into_iter()
            .map(|(k, (sum, n))| (k, (100.0 * sum / n.max(1) as f64, n)))
            .collect())
    })
}

pub fn run(args: &[String]) -> Result<(), String> {
    let mut skip_build = false;
    let mut weight: Option<String> = None;
    let mut target = Target::Documents;
    let mut binary: Option<std::path::PathBuf> = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--skip-build" => skip_build = true,
            "--messages" => target = Target::Messages,
            "--chat" => target = Target::Chat,
            "--binary" => {
                binary = Some(args.next().ok_or("--binary needs a path")?.into());
            }
            "--weight" => weight = Some(args.next().ok_or("--weight needs a value")?.clone()),
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown option {other}\n\n{USAGE}")),
        }
    }
    let set = load()?;
    let binary = match binary {
        Some(path) => path,
        None => server_binary(skip_build)?,
    };
    if target == Target::Chat {
        let questions: usize = set.iter().map(|c| c.questions.len()).sum();
        println!(
            "honcho eval --chat: {} conversations, {questions} questions asked with chat on each \
             conversation's last session (echo model: facts are the user's messages, the answer is \
             the prompt); context recall = share of evidence turns whose text reaches the prompt, %",
            set.len()
        );
        let started = Instant::now();
        let shares = run_chat(&binary, &set)?;
        let share = |k: &str| shares.get(k).map_or(0.0, |s| s.0);
        let kinds: Vec<String> = KINDS.iter().map(|k| format!("{:.1}", share(k))).collect();
        println!(
            "context recall {:.1}   by kind ({}): {}   ({:.1} s)",
            share("all"),
            KINDS.join(" / "),
            kinds.join(" / "),
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
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
        let label = format!("{provider}-{mode}");
        let tally = match target {
            Target::Messages => run_messages(&binary, &set, &label, &env)?,
            _ => run_one(&binary, &set, &label, &env)?,
        };
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
