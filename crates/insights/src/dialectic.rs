//! The dialectic: answers a question about a user from the facts the deriver stored and the
//! session's conversation. `prepare` does everything up to the answer (and may fail with an ordinary
//! error); the answer is then asked for whole or streamed.

use crate::prompts;
use honcho_domain::context::{take_within, TokenCounter};
use honcho_domain::embed::{EmbedError, Embedder};
use honcho_domain::insights::MemoryStore;
use honcho_domain::llm::{LlmError, Models, Prompt};
use honcho_domain::retrieval::{without_speaker, Retrieval, Search};
use honcho_domain::{Embedding, Message, SessionKey};

/// Facts taken per search query.
pub const FACTS_PER_QUERY: usize = 20;
/// The user's messages (from any session) taken per search query.
pub const MESSAGES_PER_QUERY: usize = 20;
/// Tokens (`o200k_base`) of the context an answer is given, at most: facts take up to a quarter,
/// the user's messages found by search up to another quarter, the conversation (summary and
/// latest messages) the rest.
pub const CONTEXT_TOKENS: usize = 6_000;

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

/// How the dialectic reads memory: the ranking and the token counter.
#[derive(Clone, Copy)]
pub struct Reading<'a> {
    pub embedder: &'a dyn Embedder,
    pub retrieval: Retrieval,
    pub counter: &'a dyn TokenCounter,
}

/// Reads the conversation, finds the facts and the user's messages (from every session) relevant
/// to `queries` (each query plus the search phrases the query model writes for it; when that model
/// fails or answers something unusable, the queries alone), ranked as message search ranks, and
/// returns the prompt for the answer, its context within [`CONTEXT_TOKENS`]. Nothing is written:
/// see `remember`.
pub fn prepare<S: MemoryStore>(
    store: &S,
    models: &Models,
    reading: Reading<'_>,
    key: &SessionKey,
    queries: &[String],
) -> Result<Prepared, DialecticError<S::Error>> {
    let mut conversation = store
        .conversation(key, crate::deriver::RECENT_MESSAGES)
        .map_err(DialecticError::Store)?;
    let question = queries.join("\n");
    let mut phrases: Vec<String> = queries.to_vec();
    phrases.extend(expand(models, &question));
    let speaker = store.user_name(key).map_err(DialecticError::Store)?;
    let searches = searches(reading, phrases, &speaker)?;
    let facts = store
        .rank_facts(key, &searches, FACTS_PER_QUERY)
        .map_err(DialecticError::Store)?;
    let found = store
        .search_messages(key, &searches, MESSAGES_PER_QUERY)
        .map_err(DialecticError::Store)?;
    let counter = reading.counter;
    let quarter = CONTEXT_TOKENS / 4;
    let (facts, facts_tokens) = take_within(interleave(facts, |f| f.clone()), quarter, |f| {
        counter.count(f)
    });
    let in_conversation: Vec<String> = conversation.recent.iter().map(|m| m.id.clone()).collect();
    let found: Vec<Message> = interleave(found, |m| m.id.clone())
        .into_iter()
        .filter(|m| !in_conversation.contains(&m.id))
        .collect();
    let (found, found_tokens) = take_within(found, quarter, |m| counter.count(&m.content));
    // The conversation gets what is left: its summary, then its latest messages.
    let mut room = CONTEXT_TOKENS.saturating_sub(facts_tokens + found_tokens);
    if let Some(summary) = &conversation.short_summary {
        room = room.saturating_sub(counter.count(&summary.content));
    }
    let mut recent_tokens: usize = 0;
    let keep_from = conversation
        .recent
        .iter()
        .rposition(|m| {
            recent_tokens += counter.count(&m.content);
            recent_tokens > room
        })
        .map_or(0, |i| i + 1);
    conversation.recent.drain(..keep_from);
    let context = prompts::answer_context(&facts, &found, &conversation);
    Ok(Prepared {
        prompt: prompts::answer(&question, &context),
        context,
        message_id: conversation.last_user_message,
    })
}

/// Each phrase ready to rank with (embedded in one call unless ranking is by words alone), as
/// message search makes it: embedded without the words naming the user, `speaker`
/// ([`without_speaker`]; the user's facts are about the user too, so their name tells none apart).
fn searches<E>(
    reading: Reading<'_>,
    phrases: Vec<String>,
    speaker: &str,
) -> Result<Vec<Search>, DialecticError<E>> {
    let vectors: Vec<Option<Embedding>> = match reading.retrieval.mode.uses_vectors() {
        true => {
            let embedded: Vec<Option<String>> = phrases
                .iter()
                .map(|p| without_speaker(p, speaker))
                .collect();
            let texts: Vec<&str> = phrases
                .iter()
                .zip(&embedded)
                .map(|(phrase, without)| without.as_deref().unwrap_or(phrase))
                .collect();
            reading
                .embedder
                .embed_each(&texts)?
                .into_iter()
                .map(|vector| {
                    Some(Embedding {
                        vector,
                        embedder: reading.embedder.id().to_string(),
                    })
                })
                .collect()
        }
        false => vec![None; phrases.len()],
    };
    Ok(phrases
        .into_iter()
        .zip(vectors)
        .map(|(text, embedding)| Search {
            text,
            embedding,
            retrieval: reading.retrieval,
        })
        .collect())
}

/// The results of several searches as one list: every search's best, then every search's second,
/// and so on, each item once (by `identity`).
fn interleave<T, K: PartialEq>(lists: Vec<Vec<T>>, identity: impl Fn(&T) -> K) -> Vec<T> {
    let mut lists: Vec<std::collections::VecDeque<T>> = lists.into_iter().map(Into::into).collect();
    let (mut out, mut seen): (Vec<T>, Vec<K>) = (Vec::new(), Vec::new());
    while lists.iter().any(|l| !l.is_empty()) {
        for list in &mut lists {
            if let Some(item) = list.pop_front() {
                let id = identity(&item);
                if !seen.contains(&id) {
                    seen.push(id);
                    out.push(item);
                }
            }
        }
    }
    out
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
