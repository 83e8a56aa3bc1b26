//! What honcho-rs learns from conversations, as orchestration over the domain's ports (the store's
//! `DeriverStore` and `MemoryStore`, `Embedder`, `ChatModel`):
//! - `deriver`: workers that turn queued messages into facts and summaries, exactly once each;
//! - `dialectic`: answers to questions about a user;
//! - `duplicates`: when a new fact restates one the user has;
//! - `prompts`: every prompt sent to a model and the reading of every answer.

pub mod deriver;
pub mod dialectic;
pub mod duplicates;
pub mod embedding;
pub mod prompts;

pub use deriver::{Deriver, DeriverSettings, Signal};
