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
    /// One vector per input text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
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
