//! What the domain needs from an embedding model. Implementations live in `honcho-models`.

use std::fmt;

/// Turns texts into vectors. Implementations are blocking (callers run them off the async workers) and
/// must be deterministic for a given model.
pub trait Embedder: Send + Sync + fmt::Debug {
    /// A stable identifier of the model that produced a vector, stored with every vector, for example
    /// `local-hash-v1` or `openai:text-embedding-3-small`. Vectors of different ids are never compared.
    fn id(&self) -> &str;
    /// Length of every vector this embedder returns.
    fn dimensions(&self) -> usize;
    /// Whether it is a service reached over the network: then a write never waits for it (messages
    /// are embedded after they are stored).
    fn remote(&self) -> bool {
        false
    }
    /// One vector per input text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// [`Embedder::embed`], checked to answer one vector per text ([`EmbedError::BadResponse`]
    /// otherwise), so that pairing texts with vectors never drops one.
    fn embed_each(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let vectors = self.embed(texts)?;
        if vectors.len() != texts.len() {
            return Err(EmbedError::BadResponse(format!(
                "{} vectors for {} texts",
                vectors.len(),
                texts.len()
            )));
        }
        Ok(vectors)
    }
}

/// Why an embedding could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmbedError {
    /// The provider kept failing or could not be reached (answered 502 by the API).
    #[error("embedding provider failed: {0}")]
    Provider(String),
    /// The provider is not configured properly, e.g. a missing key (answered 503 by the API).
    #[error("embedding provider unavailable: {0}")]
    Unavailable(String),
    /// The provider answered something that is not a valid embedding (answered 502).
    #[error("embedding provider answered unexpectedly: {0}")]
    BadResponse(String),
}

/// Documents whose stored vector another embedder made, and a way to replace it: what
/// [`reembed`] needs from the store.
pub trait ReembedStore {
    type Error: fmt::Display;

    /// Up to `limit` documents after internal id `after` (in id order) whose vector is not from
    /// `embedder` with `dimensions` components: `(internal id, content)`.
    fn documents_to_reembed(
        &self,
        embedder: &str,
        dimensions: usize,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, Self::Error>;
    /// Stores `embedding` as the document's vector.
    fn set_embedding(
        &self,
        internal_id: i64,
        embedding: &crate::Embedding,
    ) -> Result<(), Self::Error>;
    /// Up to `limit` messages after internal id `after` (in id order): with `missing`, those without
    /// a stored vector; with `other_than`, those whose stored vector is not from that embedder with
    /// that many dimensions: `(internal id, content)`.
    fn messages_to_embed(
        &self,
        missing: bool,
        other_than: Option<(&str, usize)>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, Self::Error>;
    /// Stores each vector as its message's, in one transaction.
    fn set_message_embeddings(
        &self,
        vectors: &[(i64, crate::Embedding)],
    ) -> Result<(), Self::Error>;
}

/// Embeds every message whose stored vector another embedder made and, for a remote embedder,
/// every message stored without one (an in-process embedder computes those when it reads them),
/// `batch` at a time (at least 1). Returns how many messages were updated. Safe to interrupt and run
/// again: each batch is stored as soon as it has its vectors.
pub fn embed_messages<S: ReembedStore>(
    store: &S,
    embedder: &dyn Embedder,
    batch: usize,
    progress: impl FnMut(u64),
) -> Result<u64, String> {
    let model = Some((embedder.id(), embedder.dimensions()));
    in_batches(
        embedder,
        batch,
        |after, limit| store.messages_to_embed(embedder.remote(), model, after, limit),
        |vectors| store.set_message_embeddings(vectors),
        progress,
    )
}

/// Each text's vector, paired with its id.
pub fn embed_all(
    embedder: &dyn Embedder,
    items: &[(i64, String)],
) -> Result<Vec<(i64, crate::Embedding)>, EmbedError> {
    let texts: Vec<&str> = items.iter().map(|(_, c)| c.as_str()).collect();
    let vectors = embedder.embed_each(&texts)?;
    Ok(items
        .iter()
        .zip(vectors)
        .map(|((id, _), vector)| {
            (
                *id,
                crate::Embedding {
                    vector,
                    embedder: embedder.id().to_string(),
                },
            )
        })
        .collect())
}

/// Re-embeds every document whose vector another embedder made, `batch` at a time (at least 1).
/// Returns how many documents were updated. Safe to interrupt and run again: each document is
/// stored as soon as it has its new vector.
pub fn reembed<S: ReembedStore>(
    store: &S,
    embedder: &dyn Embedder,
    batch: usize,
    progress: impl FnMut(u64),
) -> Result<u64, String> {
    let (name, dimensions) = (embedder.id(), embedder.dimensions());
    in_batches(
        embedder,
        batch,
        |after, limit| store.documents_to_reembed(name, dimensions, after, limit),
        |vectors| {
            vectors
                .iter()
                .try_for_each(|(id, embedding)| store.set_embedding(*id, embedding))
        },
        progress,
    )
}

/// Reads `(internal id, text)` pages in id order with `read(after, limit)`, embeds each page and
/// stores its vectors with `write`, until a page comes back empty; returns how many were stored.
fn in_batches<E: fmt::Display>(
    embedder: &dyn Embedder,
    batch: usize,
    read: impl Fn(i64, usize) -> Result<Vec<(i64, String)>, E>,
    write: impl Fn(&[(i64, crate::Embedding)]) -> Result<(), E>,
    mut progress: impl FnMut(u64),
) -> Result<u64, String> {
    let (mut after, mut done) = (0i64, 0u64);
    loop {
        let pending = read(after, batch.max(1)).map_err(|e| e.to_string())?;
        let Some(last) = pending.last() else {
            return Ok(done);
        };
        after = last.0;
        let vectors = embed_all(embedder, &pending).map_err(|e| e.to_string())?;
        write(&vectors).map_err(|e| e.to_string())?;
        done += vectors.len() as u64;
        progress(done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model that answers one vector, whatever it is asked.
    #[derive(Debug)]
    struct OneVector;

    impl Embedder for OneVector {
        fn id(&self) -> &str {
            "one"
        }
        fn dimensions(&self) -> usize {
            1
        }
        fn embed(&self, _texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
            Ok(vec![vec![1.0]])
        }
    }

    #[test]
    fn embed_each_refuses_an_answer_with_another_count_of_vectors() {
        assert_eq!(OneVector.embed_each(&["a"]), Ok(vec![vec![1.0]]));
        assert_eq!(
            OneVector.embed_each(&["a", "b"]),
            Err(EmbedError::BadResponse("1 vectors for 2 texts".into()))
        );
    }
}
