//! Clients of the models honcho-rs calls over the network or runs in process: chat language models
//! ([`chat`]: OpenAI-compatible and Anthropic, whole or streamed) and embedders
//! (implementations of [`honcho_domain::embed::Embedder`]) and the vector helpers used to store and
//! search their output.
//!
//! # Embedders
//!
//! - [`PotionEmbedder`] (`model2vec:potion-base-8M`, 256 dimensions; `EMBEDDING_PROVIDER=local`): the
//!   default, needing no configuration. A static embedding model compiled into the binary and run
//!   in process ([`potion`]).
//! - [`HashEmbedder`] (`local-hash-v1`, 512 dimensions; `EMBEDDING_PROVIDER=local-hash`): a
//!   deterministic feature-hashing embedder running in process, without model files or network,
//!   in about 40 µs for a 1000-character paragraph in an optimised build ([`hash`] documents the
//!   exact algorithm, and its limits are below).
//! - [`OpenAiEmbedder`] (`openai:<model>`; `EMBEDDING_PROVIDER=openai`): any OpenAI-compatible
//!   `/embeddings` endpoint, with timeouts and retries ([`openai`]).
//!
//! [`EmbedderConfig::from_lookup`] picks one from `EMBEDDING_PROVIDER` and related variables
//! ([`config`] lists them), read by the server's configuration; a bad value is an error naming the
//! variable, for the server to print before stopping.
//!
//! Every vector is stored with its embedder's [`id`](honcho_domain::embed::Embedder::id) and
//! dimension; vectors of different ids are never compared, so switching embedders needs a
//! re-embedding.
//!
//! # What the hash embedder can and cannot do
//!
//! It measures **lexical** overlap: texts sharing words, pairs of adjacent words and word pieces
//! (character trigrams, so `mountain` and `mountains` are related) are close. That finds near-duplicate
//! facts and documents using the query's own words, with no setup. Its limits, honestly:
//!
//! - **No semantics**: synonyms and paraphrases are unrelated (`car` / `automobile`, `likes` /
//!   `enjoys`), as are translations; a negation (`likes` / `does not like`) barely moves the
//!   vector.
//! - **Word order** counts only through adjacent pairs: `dog bites man` and `man bites dog` share
//!   all their words and differ only in their pairs.
//! - **No weighting by rarity**: frequent words (`the`, `user`) count as much as telling ones, so
//!   texts sharing boilerplate look more alike than they are, and long texts dilute short matches.
//! - **Words** are runs of Unicode letters and digits: punctuation, apostrophes and combining marks
//!   that are not alphabetic split words (`don't` is `don` + `t`), and scripts written without
//!   spaces (Chinese, Japanese, Thai) form one word per run, matched only through character
//!   trigrams.
//! - **Collisions**: features are hashed into 512 components with random signs, so unrelated texts
//!   have small non-zero similarities (noise of roughly ±0.05 for paragraphs).
//! - A text without letters or digits gives the zero vector, which is at distance 1 from
//!   everything.
//!
//! For semantic search, configure an embedding model (`EMBEDDING_PROVIDER=openai`, which also
//! covers local servers such as Ollama).

pub mod chat;
pub mod config;
pub mod hash;
pub mod http;
pub mod llm_config;
pub mod openai;
pub mod potion;
pub mod tokens;

pub use chat::{ChatConfig, HttpChatModel, Protocol};
pub use config::EmbedderConfig;
pub use hash::HashEmbedder;
pub use honcho_domain::embed::{EmbedError, Embedder};
pub use honcho_domain::vector::{self, cosine_distance, decode, encode, top_k};
pub use llm_config::{models_from_lookup, Models};
pub use openai::{OpenAiConfig, OpenAiEmbedder, RetryPolicy};
pub use potion::PotionEmbedder;
