//! The deriver: worker threads that lease sessions with queued messages and, per message in order,
//! extract facts about the user and write summaries, committing each item's outputs with its
//! completion (see `DeriverStore`). No database connection is held during a model call: every store
//! call takes and returns its own.

use crate::duplicates::NearDuplicates;
use crate::prompts::{self, SummaryKind};
use honcho_domain::embed::{EmbedError, Embedder};
use honcho_domain::facts::parse_facts;
use honcho_domain::insights::{
    Completion, Derived, DeriverStore, ItemPolicy, Lease, NewFact, NewSummary, WorkItem,
    LONG_SUMMARY_EVERY, SHORT_SUMMARY_EVERY, SUMMARY_LONG_LABEL, SUMMARY_SHORT_LABEL,
};
use honcho_domain::llm::{LlmError, Models};
use honcho_domain::queue::{FailureCause, QueueStatus};
use honcho_domain::Embedding;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Messages after the latest short summary that an item (and a dialectic answer) reads, at most
/// (the newest).
pub const RECENT_MESSAGES: i64 = 40;
/// Messages after the latest long summary that a long summary reads, at most (the newest).
pub const LONG_MESSAGES: i64 = 120;

/// How the workers behave.
#[derive(Debug, Clone)]
pub struct DeriverSettings {
    /// Sessions worked on at once (threads).
    pub workers: usize,
    /// Attempts of one item before it is marked failed.
    pub max_attempts: i32,
    /// How long a lease lasts without renewal; renewed every third of it while an item runs.
    pub lease: Duration,
    /// How often an idle worker looks for work (new messages of this process wake it at once).
    pub poll: Duration,
    /// Wait before the second attempt of an item; doubled for each further one, up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Names this process in leases (host and process id, for example).
    pub name: String,
}

impl Default for DeriverSettings {
    fn default() -> Self {
        DeriverSettings {
            workers: 1,
            max_attempts: 5,
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            name: format!("honcho-{}", std::process::id()),
        }
    }
}

/// Why an item produced nothing this time.
#[derive(Debug)]
enum ItemError {
    Model(LlmError),
    Embed(EmbedError),
    Unreadable(String),
}

impl ItemError {
    fn cause(&self) -> FailureCause {
        match self {
            ItemError::Model(LlmError::Unavailable(_)) => FailureCause::ModelRefused,
            ItemError::Model(LlmError::Provider(_)) => FailureCause::ModelUnreachable,
            ItemError::Model(LlmError::BadResponse(_)) | ItemError::Unreadable(_) => {
                FailureCause::AnswerUnusable
            }
            ItemError::Embed(_) => FailureCause::EmbedderFailed,
        }
    }
}

impl std::fmt::Display for ItemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ItemError::Model(e) => write!(f, "{e}"),
            ItemError::Embed(e) => write!(f, "{e}"),
            ItemError::Unreadable(e) => write!(f, "{e}"),
        }
    }
}

/// Wakes idle workers and tells them to stop.
#[derive(Debug, Default)]
pub struct Signal {
    stopping: AtomicBool,
    woken: Mutex<u64>,
    cv: Condvar,
}

impl Signal {
    /// New work may be waiting: one idle worker looks now (one session's new items need one
    /// worker; waking every idle worker would send them all claiming at once).
    pub fn wake(&self) {
        self.bump();
        self.cv.notify_one();
    }
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.bump();
        self.cv.notify_all();
    }
    fn bump(&self) {
        let mut woken = self.woken.lock().unwrap_or_else(|e| e.into_inner());
        *woken = woken.wrapping_add(1);
    }
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
    /// Sleeps up to `timeout`, less when woken or stopped.
    pub(crate) fn wait(&self, timeout: Duration) {
        let woken = self.woken.lock().unwrap_or_else(|e| e.into_inner());
        let seen = *woken;
        if self.stopping() {
            return;
        }
        let _ = self
            .cv
            .wait_timeout_while(woken, timeout, |w| *w == seen && !self.stopping());
    }
}

/// Running workers.
pub struct Deriver {
    signal: Arc<Signal>,
    threads: Vec<JoinHandle<()>>,
}

/// What a worker needs.
struct Worker<S> {
    store: S,
    models: Models,
    embedder: Arc<dyn Embedder>,
    settings: DeriverSettings,
    signal: Arc<Signal>,
    name: String,
}

impl Deriver {
    /// Starts `settings.workers` worker threads.
    pub fn start<S>(
        store: S,
        models: Models,
        embedder: Arc<dyn Embedder>,
        settings: DeriverSettings,
    ) -> Deriver
    where
        S: DeriverStore + Clone + 'static,
    {
        let signal = Arc::new(Signal::default());
        let threads = (0..settings.workers)
            .map(|i| {
                let worker = Worker {
                    store: store.clone(),
                    models: models.clone(),
                    embedder: embedder.clone(),
                    name: format!("{}/{i}", settings.name),
                    settings: settings.clone(),
                    signal: signal.clone(),
                };
                std::thread::Builder::new()
                    .name(format!("deriver-{i}"))
                    .spawn(move || worker.run())
                    .expect("spawning a deriver thread")
            })
            .collect();
        Deriver { signal, threads }
    }

    /// Wakes the workers when new work was queued (by this process).
    pub fn signal(&self) -> Arc<Signal> {
        self.signal.clone()
    }

    /// Stops claiming; each worker finishes its current item and gives its session up. Waits up to
    /// `timeout`; a worker still busy then keeps its lease until it expires.
    pub fn stop(self, timeout: Duration) {
        self.signal.stop();
        let deadline = Instant::now() + timeout;
        for thread in self.threads {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

impl<S: DeriverStore> Worker<S> {
    fn policy(&self) -> ItemPolicy {
        ItemPolicy {
            max_attempts: self.settings.max_attempts,
            lease: self.settings.lease,
            recent_messages: RECENT_MESSAGES,
            long_messages: LONG_MESSAGES,
        }
    }

    fn run(self) {
        tracing::debug!(worker = %self.name, "deriver worker started");
        while !self.signal.stopping() {
            match self.store.claim_session(&self.name, self.policy()) {
                Ok(Some((lease, first))) => self.work_on(&lease, first),
                Ok(None) => self.signal.wait(self.settings.poll),
                Err(e) => {
                    tracing::warn!(error = %e, "deriver: cannot read the queue");
                    self.signal.wait(self.settings.poll);
                }
            }
        }
        tracing::debug!(worker = %self.name, "deriver worker stopped");
    }

    /// Works through the leased session's due items, in order, from `first` (taken with the
    /// lease). Storing an item's outcome also takes the next one (one transaction per item),
    /// unless the worker is stopping.
    fn work_on(&self, lease: &Lease, first: Option<WorkItem>) {
        let mut next = first;
        while let Some(item) = next {
            let started = Instant::now();
            let outcome = self.with_renewal(lease, || self.derive(&item));
            metrics::histogram!("honcho_deriver_item_seconds")
                .record(started.elapsed().as_secs_f64());
            next = match outcome {
                Ok(derived) => self.complete(lease, &item, derived, started),
                Err(e) => self.fail(lease, &item, e),
            };
        }
    }

    /// The session's next item, or `None` when the worker is stopping (the lease given up), when
    /// nothing is due, or when the queue cannot be read.
    fn take_next(&self, lease: &Lease) -> Option<WorkItem> {
        if self.signal.stopping() {
            self.release(lease);
            return None;
        }
        match self.store.next_item(lease, self.policy()) {
            Ok(item) => item,
            Err(e) => {
                tracing::warn!(error = %e, "deriver: cannot read the next item");
                self.release_and_wait(lease);
                None
            }
        }
    }

    /// Stores a derived item; returns the session's next item.
    fn complete(
        &self,
        lease: &Lease,
        item: &WorkItem,
        derived: Derived,
        started: Instant,
    ) -> Option<WorkItem> {
        let summaries = derived.summaries.len();
        let going_on = !self.signal.stopping();
        let policy = going_on.then(|| self.policy());
        let stored = self
            .store
            .complete_item(lease, item, derived, &NearDuplicates, policy)
            .map(|completion| match completion {
                Completion::Stored { facts, next } => {
                    metrics::counter!(
                        "honcho_deriver_items_total",
                        "outcome" => QueueStatus::Done.as_str()
                    )
                    .increment(1);
                    tracing::info!(
                        queue_item = item.id,
                        message_id = %item.message.id,
                        session_id = %item.session.session_id,
                        facts_stored = facts,
                        summaries_written = summaries,
                        seconds = started.elapsed().as_secs_f64(),
                        "deriver: message derived"
                    );
                    if !going_on {
                        self.release(lease);
                    }
                    Some(next.map(|item| *item))
                }
                Completion::LeaseLost => None,
            });
        self.went_on(lease, item, stored)
    }

    /// Records a failed attempt (to retry after a backoff, or failed for good after the last
    /// attempt); returns the session's next item.
    fn fail(&self, lease: &Lease, item: &WorkItem, e: ItemError) -> Option<WorkItem> {
        let retry_at = (item.attempt < self.settings.max_attempts)
            .then(|| honcho_domain::now() + self.backoff(item.attempt));
        let outcome = match retry_at {
            Some(_) => "retried",
            None => QueueStatus::Failed.as_str(),
        };
        metrics::counter!("honcho_deriver_items_total", "outcome" => outcome).increment(1);
        metrics::counter!("honcho_deriver_failures_total", "cause" => e.cause().as_str())
            .increment(1);
        match retry_at {
            Some(at) => tracing::warn!(
                queue_item = item.id,
                message_id = %item.message.id,
                session_id = %item.session.session_id,
                attempt = item.attempt,
                max_attempts = self.settings.max_attempts,
                next_attempt_at = %at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                cause = e.cause().as_str(),
                error = %e,
                "deriver: attempt failed; trying again later"
            ),
            None => tracing::warn!(
                queue_item = item.id,
                message_id = %item.message.id,
                session_id = %item.session.session_id,
                attempt = item.attempt,
                cause = e.cause().as_str(),
                error = %e,
                "deriver: last attempt failed; the message is parked as failed (see deriver/failed)"
            ),
        }
        let stored = self
            .store
            .fail_item(lease, item.id, &e.to_string(), retry_at)
            .map(|kept| kept.then(|| self.take_next(lease)));
        self.went_on(lease, item, stored)
    }

    /// The session's next item after `item`'s outcome was stored: `Ok(Some(next))` when it was
    /// (with the next item, if any); `Ok(None)` when the lease had been lost.
    fn went_on(
        &self,
        lease: &Lease,
        item: &WorkItem,
        stored: Result<Option<Option<WorkItem>>, S::Error>,
    ) -> Option<WorkItem> {
        match stored {
            Ok(Some(next)) => next,
            Ok(None) => {
                tracing::warn!(
                    queue_item = item.id,
                    message_id = %item.message.id,
                    session_id = %item.session.session_id,
                    "deriver: the session's lease was lost (taken over, or the session erased); \
                     nothing of this attempt is kept"
                );
                None
            }
            Err(e) => {
                metrics::counter!(
                    "honcho_deriver_failures_total",
                    "cause" => FailureCause::StoreError.as_str()
                )
                .increment(1);
                tracing::warn!(
                    queue_item = item.id,
                    message_id = %item.message.id,
                    session_id = %item.session.session_id,
                    error = %e,
                    "deriver: cannot store an item's outcome"
                );
                self.release_and_wait(lease);
                None
            }
        }
    }

    fn release(&self, lease: &Lease) {
        if let Err(e) = self.store.release_lease(lease) {
            tracing::warn!(error = %e, "deriver: cannot release a session");
        }
    }

    /// Gives the session up after a database error and waits a poll interval before going on.
    fn release_and_wait(&self, lease: &Lease) {
        let _ = self.store.release_lease(lease);
        self.signal.wait(self.settings.poll);
    }

    /// Runs `f` while a helper thread renews the lease every third of its length.
    fn with_renewal<T>(&self, lease: &Lease, f: impl FnOnce() -> T) -> T {
        let done = (Mutex::new(false), Condvar::new());
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let every = self.settings.lease / 3;
                let mut finished = done.0.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    let (guard, timeout) = done
                        .1
                        .wait_timeout_while(finished, every, |f| !*f)
                        .unwrap_or_else(|e| e.into_inner());
                    finished = guard;
                    if *finished || !timeout.timed_out() {
                        return;
                    }
                    match self.store.renew_lease(lease, self.settings.lease) {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err(e) => tracing::warn!(error = %e, "deriver: cannot renew a lease"),
                    }
                }
            });
            let result = f();
            *done.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
            done.1.notify_all();
            result
        })
    }

    /// Wait before attempt `attempt + 1`: doubling from `retry_base`, at most `retry_max`, with up to
    /// a quarter of jitter.
    fn backoff(&self, attempt: i32) -> chrono::Duration {
        let base = self.settings.retry_base.as_secs_f64();
        let wait =
            (base * 2f64.powi(attempt.clamp(1, 30) - 1)).min(self.settings.retry_max.as_secs_f64());
        let jitter = 1.0 + 0.25 * unit_random();
        chrono::Duration::milliseconds((wait * jitter * 1000.0) as i64)
    }

    /// Facts from a user's message; summaries when enough messages have arrived.
    fn derive(&self, item: &WorkItem) -> Result<Derived, ItemError> {
        let mut derived = Derived::default();
        if item.message.is_user {
            let prompt = prompts::facts(&item.conversation, &item.message);
            let answer = self
                .models
                .deriver
                .complete(&prompt)
                .map_err(ItemError::Model)?;
            let facts = parse_facts(&answer).map_err(|e| ItemError::Unreadable(e.to_string()))?;
            if !facts.is_empty() {
                let texts: Vec<&str> = facts.iter().map(String::as_str).collect();
                let vectors = self.embedder.embed_each(&texts).map_err(ItemError::Embed)?;
                derived.facts = facts
                    .into_iter()
                    .zip(vectors)
                    .map(|(content, vector)| NewFact {
                        content,
                        embedding: Embedding {
                            vector,
                            embedder: self.embedder.id().to_string(),
                        },
                        metadata: one("message_id", json!(item.message.id)),
                    })
                    .collect();
            }
        }
        let mut long_seed = item
            .conversation
            .long_summary
            .as_ref()
            .map(|s| s.content.clone());
        if item.since_long >= LONG_SUMMARY_EVERY {
            let prompt = prompts::summary(
                SummaryKind::Long,
                long_seed.as_deref(),
                &item.since_long_messages,
            );
            let long = self.summarise(&prompt)?;
            derived
                .summaries
                .push(summary(SUMMARY_LONG_LABEL, &long, item.since_long, "LONG"));
            long_seed = Some(long);
        }
        if item.since_short >= SHORT_SUMMARY_EVERY {
            let prompt = prompts::summary(
                SummaryKind::Short,
                long_seed.as_deref(),
                &item.conversation.recent,
            );
            let short = self.summarise(&prompt)?;
            derived.summaries.push(summary(
                SUMMARY_SHORT_LABEL,
                &short,
                item.since_short,
                "SHORT",
            ));
        }
        Ok(derived)
    }

    fn summarise(&self, prompt: &honcho_domain::llm::Prompt) -> Result<String, ItemError> {
        let answer = self
            .models
            .summary
            .complete(prompt)
            .map_err(ItemError::Model)?;
        prompts::read_summary(&answer)
            .ok_or_else(|| ItemError::Unreadable("the model wrote an empty summary".into()))
    }
}

fn one(key: &str, value: Value) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert(key.to_string(), value);
    map
}

fn summary(label: &'static str, content: &str, count: i64, kind: &str) -> NewSummary {
    let mut metadata = one("message_count", json!(count));
    metadata.insert("summary_type".into(), json!(kind));
    NewSummary {
        label,
        content: content.to_string(),
        metadata,
    }
}

/// A number in [0, 1) that differs between calls (for jitter; not for anything that needs
/// randomness of quality).
fn unit_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_woken_or_stopped_signal_ends_the_wait() {
        let signal = Arc::new(Signal::default());
        let s = signal.clone();
        let started = Instant::now();
        let t = std::thread::spawn(move || s.wait(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(50));
        signal.wake();
        t.join().unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        signal.stop();
        let started = Instant::now();
        signal.wait(Duration::from_secs(10));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn stopping_ends_every_wait() {
        let signal = Arc::new(Signal::default());
        let started = Instant::now();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let s = signal.clone();
                std::thread::spawn(move || s.wait(Duration::from_secs(10)))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        signal.stop();
        for w in waiters {
            w.join().unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..100 {
            let r = unit_random();
            assert!((0.0..1.0).contains(&r));
        }
    }
}
