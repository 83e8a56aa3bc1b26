//! What the deriver and the dialectic need from the store: the ports `DeriverStore` and
//! `MemoryStore`, and the values that cross them. The orchestration lives in `honcho-insights`;
//! the SQL in `honcho-db`.

use crate::{Embedding, Message, SessionKey};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::time::Duration;

/// Label of a short summary metamessage (v1.1.0's).
pub const SUMMARY_SHORT_LABEL: &str = "honcho_chat_summary_short";
/// Label of a long summary metamessage (v1.1.0's).
pub const SUMMARY_LONG_LABEL: &str = "honcho_chat_summary_long";
/// Label of the metamessage that keeps the context a dialectic answer was given.
pub const REPRESENTATION_LABEL: &str = "honcho_user_representation";
/// Messages since the last short summary that call for a new one.
pub const SHORT_SUMMARY_EVERY: i64 = 20;
/// Messages since the last long summary that call for a new one.
pub const LONG_SUMMARY_EVERY: i64 = 60;
/// A claim on one session's queue: only the holder of `token` may change the session's items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub session_id: String,
    pub token: String,
}

/// A summary as stored: its text and the message it covers the conversation up to.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub content: String,
    pub message_id: String,
}

/// A session's conversation as the models see it: the latest summaries and the messages after the
/// latest short summary (at most a bounded number of the newest).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation {
    pub short_summary: Option<Summary>,
    pub long_summary: Option<Summary>,
    /// Oldest first.
    pub recent: Vec<Message>,
    /// The newest message sent by the user, if any.
    pub last_user_message: Option<String>,
}

/// One queued message to derive from, with what the models need to read it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkItem {
    /// Queue id.
    pub id: i64,
    /// Attempts so far, this one included.
    pub attempt: i32,
    pub session: SessionKey,
    pub message: Message,
    /// The conversation up to and including `message`.
    pub conversation: Conversation,
    /// Messages after the latest short summary, up to and including `message`.
    pub since_short: i64,
    /// Messages after the latest long summary, up to and including `message`.
    pub since_long: i64,
    /// For a long summary: the messages after the latest long summary (at most a bounded number of
    /// the newest), oldest first; empty unless `since_long` calls for one.
    pub since_long_messages: Vec<Message>,
}

/// How a worker takes an item (set by the deriver, applied by the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemPolicy {
    /// An item tried this often is marked failed instead of tried again.
    pub max_attempts: i32,
    /// How long a lease lasts from its last renewal.
    pub lease: Duration,
    /// Messages after the latest short summary an item reads, at most (the newest).
    pub recent_messages: i64,
    /// Messages after the latest long summary a long summary reads, at most (the newest).
    pub long_messages: i64,
}

/// When a new fact is a near-duplicate of another, and is not stored: the deriver's rule, applied
/// by the store inside the transaction that stores an item's facts, against the user's stored
/// facts nearest to it and the item's facts kept before it.
pub trait DuplicateRule: Send + Sync {
    /// How many stored facts nearest to a new one are checked against it.
    fn candidates(&self) -> usize;
    /// Whether `new` is a near-duplicate of `old`, whose vectors are `distance` apart (cosine).
    fn duplicates(&self, new: &str, old: &str, distance: f32) -> bool;
}

/// A summary to store as a metamessage of the item's session.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSummary {
    pub label: &'static str,
    pub content: String,
    pub metadata: Map<String, Value>,
}

/// A fact to store in the user's protected collection.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFact {
    pub content: String,
    pub embedding: Embedding,
    pub metadata: Map<String, Value>,
}

/// Everything an item produced, committed together with its completion.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Derived {
    pub facts: Vec<NewFact>,
    pub summaries: Vec<NewSummary>,
}

/// What storing an item's outcome came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    /// The lease was lost: nothing was written.
    LeaseLost,
    /// Stored: `facts` of the item's facts (the others were near-duplicates). With the session's
    /// next item when one was asked for: taken in the same transaction, as
    /// [`DeriverStore::next_item`] takes it (`None`, and the lease given up, when none is due).
    Stored {
        facts: usize,
        next: Option<Box<WorkItem>>,
    },
}

/// The deriver's queue and what it writes. Calls are blocking and each holds a connection only for
/// itself; none is held between calls.
pub trait DeriverStore: Send + Sync {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Leases a session whose oldest open item is due and which no live lease holds, for
    /// `policy.lease`, and takes its first item in the same transaction, as
    /// [`DeriverStore::next_item`] does (`None` beside the lease, given up again, when it is no
    /// longer due). `None` when there is no such session.
    fn claim_session(
        &self,
        worker: &str,
        policy: ItemPolicy,
    ) -> Result<Option<(Lease, Option<WorkItem>)>, Self::Error>;
    /// Extends the lease; `false` when it was lost (expired and claimed by another worker).
    fn renew_lease(&self, lease: &Lease, duration: Duration) -> Result<bool, Self::Error>;
    /// The session's oldest open item, marked in progress with one more attempt. Items already tried
    /// `max_attempts` times are marked failed first. `None` (and the lease is given up) when the
    /// session has nothing due, or the lease was lost.
    fn next_item(&self, lease: &Lease, policy: ItemPolicy)
        -> Result<Option<WorkItem>, Self::Error>;
    /// Stores what an item produced and marks it done, in one transaction, only while `lease` is
    /// held; [`Completion::LeaseLost`] (nothing written) when it was lost. Facts that `rule` calls
    /// near-duplicates of a stored fact of the same embedder (or of one kept before them) are
    /// skipped. With `next`, the same transaction also takes the session's next item under that
    /// policy, so a worker going through a session commits once per item.
    fn complete_item(
        &self,
        lease: &Lease,
        item: &WorkItem,
        derived: Derived,
        rule: &dyn DuplicateRule,
        next: Option<ItemPolicy>,
    ) -> Result<Completion, Self::Error>;
    /// Records a failed attempt: the item is tried again after `retry_at`, or, when `retry_at` is
    /// `None`, marked failed for good. `false` when the lease was lost.
    fn fail_item(
        &self,
        lease: &Lease,
        item_id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<bool, Self::Error>;
    /// Gives the session up (its in-progress item, if any, goes back to pending).
    fn release_lease(&self, lease: &Lease) -> Result<(), Self::Error>;
}

/// What the dialectic reads and writes.
pub trait MemoryStore: Send + Sync {
    type Error: std::error::Error + Send + Sync + 'static;

    /// The session's conversation (at most `recent` messages after its latest short summary): U404
    /// / S404 when the user or session does not exist.
    fn conversation(&self, key: &SessionKey, recent: i64) -> Result<Conversation, Self::Error>;
    /// The user's name, the speaker of the user's messages ([`crate::retrieval::without_speaker`]):
    /// U404 when the user does not exist.
    fn user_name(&self, key: &SessionKey) -> Result<String, Self::Error>;
    /// For each search, the contents of the user's `top` facts best ranked for it (the ranking of
    /// [`crate::retrieval`]), best first.
    fn rank_facts(
        &self,
        key: &SessionKey,
        searches: &[crate::retrieval::Search],
        top: usize,
    ) -> Result<Vec<Vec<String>>, Self::Error>;
    /// For each search, the user's `top` messages (from every session) best ranked for it, best
    /// first.
    fn search_messages(
        &self,
        key: &SessionKey,
        searches: &[crate::retrieval::Search],
        top: usize,
    ) -> Result<Vec<Vec<Message>>, Self::Error>;
    /// Saves the context of an answer as a metamessage of the session.
    fn save_representation(
        &self,
        key: &SessionKey,
        message_id: Option<&str>,
        content: &str,
    ) -> Result<(), Self::Error>;
}

/// Longest dialectic query, in characters.
pub const MAX_QUERY_CHARS: usize = 10_000;
/// Most queries in one dialectic request.
pub const MAX_QUERIES: usize = 25;

/// Checks one dialectic query: at most `MAX_QUERY_CHARS` characters, no NUL.
pub fn check_query(query: &str) -> Result<(), crate::Invalid> {
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(crate::Invalid::TooLong {
            max: MAX_QUERY_CHARS,
        });
    }
    if query.contains('\0') {
        return Err(crate::Invalid::ContainsNul);
    }
    Ok(())
}

/// Checks the number of queries: 1 to `MAX_QUERIES`.
pub fn check_query_count(count: usize) -> Result<(), crate::Invalid> {
    match count {
        0 => Err(crate::Invalid::Rule(
            "At least one query is needed".to_string(),
        )),
        n if n > MAX_QUERIES => Err(crate::Invalid::TooManyItems {
            max: MAX_QUERIES,
            actual: n,
        }),
        _ => Ok(()),
    }
}
