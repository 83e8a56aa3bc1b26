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
/// A fact this close (cosine distance) to a stored one, and a restatement of it
/// ([`restates`]), is a near-duplicate and not stored.
pub const DUPLICATE_DISTANCE: f32 = 0.15;

/// Whether `new` says nothing in words that `old` does not: every term of `new` (stemmed, stop
/// words left out, [`crate::lexical`]) is a term of `old`. With the vectors' distance this makes a
/// near-duplicate: `The user is a nurse` restates `The user works as a nurse`, while `The user has
/// a cat named Biscuit` does not restate `... a dog named Biscuit`, however near their vectors (a
/// static embedder barely tells such facts apart, nor numbers and names).
pub fn restates(new: &str, old: &str) -> bool {
    let old = crate::lexical::terms(old);
    crate::lexical::terms(new).iter().all(|t| old.contains(t))
}

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

/// What to do with an item whose previous attempts all failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemPolicy {
    /// An item tried this often is marked failed instead of tried again.
    pub max_attempts: i32,
    /// How long a lease lasts from its last renewal.
    pub lease: Duration,
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
    /// Stored. With the session's next item when one was asked for: taken in the same transaction,
    /// as [`DeriverStore::next_item`] takes it (`None`, and the lease given up, when none is due).
    Stored(Option<Box<WorkItem>>),
}

/// The queue's state for an app, a user or a session.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueueCounts {
    pub pending: i64,
    pub in_progress: i64,
    pub failed: i64,
    pub done: i64,
    /// When the oldest item not yet done or failed was queued.
    pub oldest_open: Option<DateTime<Utc>>,
}

/// Which items to count: an app's, optionally one user's or one session's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueScope {
    pub app_id: String,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
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
    /// held; [`Completion::LeaseLost`] (nothing written) when it was lost. Facts within
    /// `DUPLICATE_DISTANCE` of a stored fact of the same embedder that they restate ([`restates`])
    /// are skipped. With `next`, the same transaction also takes the session's next item under that
    /// policy, so a worker going through a session commits once per item.
    fn complete_item(
        &self,
        lease: &Lease,
        item: &WorkItem,
        derived: Derived,
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

    /// The session's conversation: U404 / S404 when the user or session does not exist.
    fn conversation(&self, key: &SessionKey) -> Result<Conversation, Self::Error>;
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

#[cfg(test)]
mod restatement {
    use super::restates;

    #[test]
    fn a_restatement_adds_no_word() {
        assert!(restates("The user is a nurse", "The user works as a nurse"));
        assert!(restates("The user plays cello", "The user plays the cello"));
        assert!(restates("", "anything"));
        assert!(!restates(
            "The user has a cat named Biscuit",
            "The user has a dog named Biscuit"
        ));
        assert!(!restates(
            "The user said: message 3",
            "The user said: message 2"
        ));
        assert!(!restates(
            "The user works as a nurse",
            "The user is a nurse"
        ));
    }
}
