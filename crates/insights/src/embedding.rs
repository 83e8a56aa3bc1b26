//! Embedding messages after they are stored, for an embedder reached over the network: a write
//! never waits for (or fails because of) the embedding service. Messages are stored without a
//! vector; this worker reads those without one in id order after its cursor (the primary key's
//! order, so a round costs the messages it reads), `BATCH` at a time, and stores their vectors.
//! Meanwhile message search finds them by their words. When the service fails, the batch waits
//! (backing off up to a minute) and is tried again; a batch the service refuses three times is
//! skipped, so one bad message cannot hold up the others. Every `REVISIT` the cursor goes back to
//! the start: skipped messages are tried again, and so are any committed behind the cursor.
//!
//! Each process with a remote embedder runs one such worker; two replicas may embed the same
//! message at the same time, which costs a duplicate call and stores the same vector.

use crate::deriver::Signal;
use honcho_domain::embed::{embed_all, Embedder, ReembedStore};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Messages per embedding request.
pub const BATCH: usize = 64;
/// How often the worker looks for messages when it found none.
pub const POLL: Duration = Duration::from_secs(1);
/// How often the worker reads from the first message again.
pub const REVISIT: Duration = Duration::from_secs(600);

/// The running worker.
pub struct MessageEmbedder {
    signal: Arc<Signal>,
    thread: JoinHandle<()>,
}

impl MessageEmbedder {
    /// Starts the worker.
    pub fn start<S>(store: S, embedder: Arc<dyn Embedder>) -> MessageEmbedder
    where
        S: ReembedStore + Send + 'static,
    {
        let signal = Arc::new(Signal::default());
        let stop = signal.clone();
        let thread = std::thread::Builder::new()
            .name("message-embedder".into())
            .spawn(move || run(&store, embedder.as_ref(), &stop))
            .expect("spawning the message embedder");
        MessageEmbedder { signal, thread }
    }

    /// Stops the worker after its current batch (waits up to `timeout`).
    pub fn stop(self, timeout: Duration) {
        self.signal.stop();
        let deadline = std::time::Instant::now() + timeout;
        while !self.thread.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.thread.is_finished() {
            let _ = self.thread.join();
        }
    }
}

fn run<S: ReembedStore>(store: &S, embedder: &dyn Embedder, signal: &Signal) {
    let (mut after, mut failures, mut backoff) = (0i64, 0u32, Duration::from_secs(1));
    let mut revisited = std::time::Instant::now();
    while !signal.stopping() {
        if revisited.elapsed() >= REVISIT {
            (after, revisited) = (0, std::time::Instant::now());
        }
        let pending = match store.messages_to_embed(true, None, after, BATCH) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "message embedder: cannot read the messages to embed");
                signal.wait(POLL);
                continue;
            }
        };
        let Some(last) = pending.last().map(|(id, _)| *id) else {
            signal.wait(POLL);
            continue;
        };
        match embed_all(embedder, &pending) {
            Ok(vectors) => match store.set_message_embeddings(&vectors) {
                Ok(()) => {
                    tracing::debug!(messages = vectors.len(), "message embedder: embedded");
                    (after, failures, backoff) = (last, 0, Duration::from_secs(1));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "message embedder: cannot store vectors");
                    signal.wait(backoff);
                }
            },
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, messages = pending.len(), attempt = failures,
                    "message embedder: the embedding service failed; the messages stay searchable by words");
                if failures >= 3 {
                    after = last;
                    failures = 0;
                } else {
                    signal.wait(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }
}
