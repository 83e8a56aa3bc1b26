//! The dialectic: answers a question about a user from the facts the deriver stored and the
//! session's conversation. `prepare` does everything up to the answer (and may fail with an ordinary
//! error); the answer is then asked for whole or streamed.

use crate::prompts;
use honcho_domain::embed::{EmbedError, Embedder};
use honcho_domain::insights::MemoryStore;
use honcho_domain::llm::{LlmError, Models, Prompt};
use honcho_domain::{Embedding, SessionKey};

/// Facts taken per search query.
pub const FACTS_PER_QUERY: usize = 10;
/// Facts farther than this (cosine distance) from a query are not relevant to it.
pub const MAX_FACT_DISTANCE: f32 = 0.85;

/// Why no answer could be prepared.
#[derive(Debug)]
pub enum DialecticError<E> {
    /// The store refused (unknown user or session) or failed.
    Store(E),
    /// The embedding model failed.
    Embed(EmbedError),
}

impl<E> From<EmbedError> for DialecticError<E> {
    fn from(e: EmbedError) -> Self {
        DialecticError::Embed(e)
    }
}

/// The prompt for the answer, ready to send to the dialectic model, and the context it holds (kept
/// by `remember` once the model answers).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub prompt: Prompt,
    context: String,
    /// The session's latest user message, which the kept context is tied to.
    message_id: Option<String>,
}

/// Reads the conversation, finds the facts relevant to `queries` (each query plus the search
/// phrases the query model writes for it; when that model fails or answers something unusable, the
/// queries alone) and returns the prompt for the answer. Nothing is written: see `remember`.
pub fn prepare<S: MemoryStore>(
    store: &S,
    models: &Models,
    embedder: &dyn Embedder,
    key: &SessionKey,
    queries: &[String],
) -> Result<Prepared, DialecticError<S::Error>> {
    let conversation = store.conversation(key).map_err(DialecticError::Store)?;
    let question = queries.join("\n");
    let mut searches: Vec<String> = queries.to_vec();
    searches.extend(expand(models, &question));
    let texts: Vec<&str> = searches.iter().map(String::as_str).collect();
    let queries: Vec<Embedding> = embedder
        .embed(&texts)?
        .into_iter()
        .map(|vector| Embedding {
            vector,
            embedder: embedder.id().to_string(),
        })
        .collect();
    let found = store
        .search_facts(key, &queries, FACTS_PER_QUERY, MAX_FACT_DISTANCE)
        .map_err(DialecticError::Store)?;
    let mut facts: Vec<(String, f32)> = Vec::new();
    for (fact, distance) in found.into_iter().flatten() {
        match facts.iter_mut().find(|(f, _)| *f == fact) {
            Some(known) => known.1 = known.1.min(distance),
            None => facts.push((fact, distance)),
        }
    }
    facts.sort_by(|a, b| a.1.total_cmp(&b.1));
    let facts: Vec<String> = facts.into_iter().map(|(f, _)| f).collect();
    let context = prompts::answer_context(&facts, &conversation);
    Ok(Prepared {
        prompt: prompts::answer(&question, &context),
        context,
        message_id: conversation.last_user_message,
    })
}

/// Keeps the context an answer was given from as the session's `honcho_user_representation`
/// metamessage; called once the model answered (or began to), so a failed answer writes nothing.
pub fn remember<S: MemoryStore>(
    store: &S,
    key: &SessionKey,
    prepared: &Prepared,
) -> Result<(), S::Error> {
    store.save_representation(key, prepared.message_id.as_deref(), &prepared.context)
}

/// Search phrases for `question` from the query model; none when it fails (logged).
fn expand(models: &Models, question: &str) -> Vec<String> {
    match models.query.complete(&prompts::search_queries(question)) {
        Ok(answer) => prompts::read_search_queries(&answer).unwrap_or_else(|| {
            tracing::info!("dialectic: the query model wrote no usable search phrases");
            Vec::new()
        }),
        Err(e) => {
            tracing::warn!(error = %e, "dialectic: query expansion failed; searching with the question alone");
            Vec::new()
        }
    }
}

/// The whole answer.
pub fn answer(models: &Models, prepared: &Prepared) -> Result<String, LlmError> {
    models
        .dialectic
        .complete(&prepared.prompt)
        .map(|a| a.trim().to_string())
}

/// The answer in pieces as they arrive.
pub fn stream(
    models: &Models,
    prepared: &Prepared,
    on_text: &mut dyn FnMut(&str),
) -> Result<(), LlmError> {
    models.dialectic.stream(&prepared.prompt, on_text)
}
