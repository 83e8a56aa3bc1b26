//! What the domain needs from a chat language model. Implementations (OpenAI-compatible and
//! Anthropic HTTP clients) live in `honcho-models`.

use std::fmt;
use std::sync::Arc;

/// Who says a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// One turn of the conversation sent to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub role: Role,
    pub content: String,
}

/// A request for one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// Instructions, sent as the system prompt.
    pub system: String,
    /// The conversation, oldest first; the last turn is the user's.
    pub turns: Vec<Turn>,
    /// Longest answer, in tokens.
    pub max_tokens: u32,
    /// Ask for a JSON object (where the provider can enforce it).
    pub json_object: bool,
}

/// Produces text from a prompt. Implementations are blocking (callers run them off the async
/// workers) and retry what may pass by itself (rate limits, 5xx, timeouts) before failing.
pub trait ChatModel: Send + Sync + fmt::Debug {
    /// The provider and model, for logs: `openai:gpt-4o-mini`, `anthropic:claude-3-5-haiku-latest`.
    fn id(&self) -> &str;
    /// The whole answer.
    fn complete(&self, prompt: &Prompt) -> Result<String, LlmError>;
    /// The answer in pieces as they arrive, each passed to `on_text`. A failure before the first
    /// piece is retried like `complete`; a failure after it ends the answer with an error.
    fn stream(&self, prompt: &Prompt, on_text: &mut dyn FnMut(&str)) -> Result<(), LlmError>;
}

/// Why a model gave no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The provider kept failing or could not be reached (502).
    #[error("language model provider failed: {0}")]
    Provider(String),
    /// The provider is not configured properly, e.g. a refused key (503).
    #[error("language model provider unavailable: {0}")]
    Unavailable(String),
    /// The provider answered something that is not an answer (502).
    #[error("language model provider answered unexpectedly: {0}")]
    BadResponse(String),
}

/// The chat model of each role.
#[derive(Debug, Clone)]
pub struct Models {
    /// Reads facts out of new messages.
    pub deriver: Arc<dyn ChatModel>,
    /// Writes conversation summaries.
    pub summary: Arc<dyn ChatModel>,
    /// Writes search queries for a question.
    pub query: Arc<dyn ChatModel>,
    /// Answers questions about a user.
    pub dialectic: Arc<dyn ChatModel>,
}
