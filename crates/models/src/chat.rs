//! Chat language models over HTTP: any OpenAI-compatible `POST {base}/chat/completions` (OpenAI,
//! Ollama, vLLM, llama.cpp server, LiteLLM, ...) and Anthropic's `POST {base}/messages`, each whole
//! or streamed (server-sent events).
//!
//! The base URL includes the version path (`https://api.openai.com/v1`,
//! `https://api.anthropic.com/v1`). Failures that may pass (408, 429, 5xx, timeouts, connection
//! errors) are retried with exponential backoff and jitter, or after `Retry-After` when the
//! provider says; a stream is retried only until its first piece arrived. Other failures fail at
//! once, one log line each. The key is sent only in its header and never appears in errors or logs.

use crate::http::{
    error_answer, retrying, transport_failure, Failure, RetryPolicy, IDLE_CONNECTIONS,
};
use honcho_domain::llm::{ChatModel, LlmError, Prompt, Role};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

/// Largest whole answer read.
const MAX_ANSWER_BYTES: u64 = 16 * 1024 * 1024;
/// Anthropic's API version header.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Which wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `POST {base}/chat/completions`, `Authorization: Bearer`.
    OpenAi,
    /// `POST {base}/messages`, `x-api-key` and `anthropic-version`.
    Anthropic,
}

/// Everything an [`HttpChatModel`] needs. `Debug` hides the key.
#[derive(Clone, PartialEq)]
pub struct ChatConfig {
    pub protocol: Protocol,
    /// Base URL including the version path.
    pub base_url: String,
    /// The key; local servers often need none.
    pub api_key: Option<String>,
    pub model: String,
    /// Limit for one attempt (for a stream: connecting and each read).
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for ChatConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatConfig")
            .field("protocol", &self.protocol)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// A chat model behind an HTTP API.
pub struct HttpChatModel {
    config: ChatConfig,
    endpoint: String,
    id: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for HttpChatModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpChatModel")
            .field("id", &self.id)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl HttpChatModel {
    /// Checks the base URL and the model name.
    pub fn new(config: ChatConfig) -> Result<HttpChatModel, String> {
        let base = config.base_url.trim().trim_end_matches('/');
        let url = url::Url::parse(base).map_err(|e| format!("'{base}' is not a URL: {e}"))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!("'{base}' is not an http:// or https:// URL"));
        }
        if config.model.trim().is_empty() {
            return Err("the model name is empty".into());
        }
        let (path, provider) = match config.protocol {
            Protocol::OpenAi => ("chat/completions", "openai"),
            Protocol::Anthropic => ("messages", "anthropic"),
        };
        let agent = ureq::AgentBuilder::new()
            .max_idle_connections_per_host(IDLE_CONNECTIONS)
            .timeout_connect(config.timeout)
            .timeout_read(config.timeout)
            .timeout_write(config.timeout)
            .build();
        Ok(HttpChatModel {
            endpoint: format!("{base}/{path}"),
            id: format!("{provider}:{}", config.model),
            agent,
            config,
        })
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The request body of `prompt`.
    fn body(&self, prompt: &Prompt, stream: bool) -> Value {
        let role = |r: Role| match r {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        let turns = prompt
            .turns
            .iter()
            .map(|t| json!({ "role": role(t.role), "content": t.content }));
        match self.config.protocol {
            Protocol::OpenAi => {
                let mut messages = vec![json!({ "role": "system", "content": prompt.system })];
                messages.extend(turns);
                let mut body = json!({
                    "model": self.config.model,
                    "messages": messages,
                    "max_tokens": prompt.max_tokens,
                    "stream": stream,
                });
                if prompt.json_object {
                    body["response_format"] = json!({ "type": "json_object" });
                }
                body
            }
            Protocol::Anthropic => json!({
                "model": self.config.model,
                "system": prompt.system,
                "messages": turns.collect::<Vec<_>>(),
                "max_tokens": prompt.max_tokens,
                "stream": stream,
            }),
        }
    }

    /// Sends `body`, retrying what may pass; the 2xx response.
    fn send(&self, body: &Value) -> Result<ureq::Response, LlmError> {
        let bytes = body.to_string();
        let sent = retrying(
            &self.config.retry,
            "language model",
            "POST",
            &self.endpoint,
            || self.attempt(&bytes),
            LlmError::Provider,
        );
        if let Err(e) = &sent {
            tracing::warn!(model = %self.id, error = %e, "language model request failed");
        }
        sent
    }

    fn attempt(&self, body: &str) -> Result<ureq::Response, Failure<LlmError>> {
        let mut request = self
            .agent
            .post(&self.endpoint)
            .set("content-type", "application/json");
        request = match (self.config.protocol, &self.config.api_key) {
            (Protocol::OpenAi, Some(key)) => request.set("authorization", &format!("Bearer {key}")),
            (Protocol::Anthropic, Some(key)) => request.set("x-api-key", key),
            (_, None) => request,
        };
        if self.config.protocol == Protocol::Anthropic {
            request = request.set("anthropic-version", ANTHROPIC_VERSION);
        }
        match request.send_string(body) {
            Ok(response) => Ok(response),
            Err(ureq::Error::Status(status, response)) => {
                Err(self.status_failure(status, response))
            }
            Err(ureq::Error::Transport(t)) => match transport_failure(&t, self.config.timeout) {
                Ok(retryable) => Err(Failure::Retry(retryable)),
                Err(detail) => Err(Failure::Fatal(LlmError::Provider(format!(
                    "POST {}: {detail}",
                    self.endpoint
                )))),
            },
        }
    }

    fn status_failure(&self, status: u16, response: ureq::Response) -> Failure<LlmError> {
        let (detail, retry_after) = error_answer(status, response);
        match status {
            408 | 429 | 500..=599 => Failure::retry(detail, retry_after),
            401 | 403 => Failure::Fatal(LlmError::Unavailable(format!(
                "POST {}: {detail} (check the API key)",
                self.endpoint
            ))),
            _ => Failure::Fatal(LlmError::Provider(format!(
                "POST {}: {detail}",
                self.endpoint
            ))),
        }
    }
}

/// The text of a whole answer.
fn answer_text(protocol: Protocol, answer: &Value) -> Option<String> {
    match protocol {
        Protocol::OpenAi => answer
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .map(str::to_string),
        Protocol::Anthropic => {
            let blocks = answer.get("content")?.as_array()?;
            Some(
                blocks
                    .iter()
                    .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                    .filter_map(|b| b.get("text").and_then(Value::as_str))
                    .collect(),
            )
        }
    }
}

/// What one server-sent event of a stream says.
enum Event {
    Text(String),
    Done,
    Error(String),
    Other,
}

fn stream_event(protocol: Protocol, data: &str) -> Event {
    if data == "[DONE]" {
        return Event::Done;
    }
    let Ok(value) = serde_json::from_str::<Value>(data) else {
        return Event::Error(format!("an event is not JSON: {data:.80}"));
    };
    if let Some(error) = value.get("error") {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| error.to_string(), str::to_string);
        return Event::Error(message);
    }
    let text = match protocol {
        Protocol::OpenAi => value.pointer("/choices/0/delta/content"),
        Protocol::Anthropic => match value.get("type").and_then(Value::as_str) {
            Some("message_stop") => return Event::Done,
            Some("content_block_delta") => value.pointer("/delta/text"),
            _ => None,
        },
    };
    match text.and_then(Value::as_str) {
        Some(t) if !t.is_empty() => Event::Text(t.to_string()),
        _ => Event::Other,
    }
}

impl ChatModel for HttpChatModel {
    fn id(&self) -> &str {
        &self.id
    }

    fn complete(&self, prompt: &Prompt) -> Result<String, LlmError> {
        let response = self.send(&self.body(prompt, false))?;
        let mut raw = Vec::new();
        response
            .into_reader()
            .take(MAX_ANSWER_BYTES)
            .read_to_end(&mut raw)
            .map_err(|e| LlmError::Provider(format!("reading the answer failed: {e}")))?;
        let answer: Value = serde_json::from_slice(&raw)
            .map_err(|e| LlmError::BadResponse(format!("the answer is not JSON: {e}")))?;
        answer_text(self.config.protocol, &answer)
            .ok_or_else(|| LlmError::BadResponse("the answer holds no text".into()))
    }

    fn stream(&self, prompt: &Prompt, on_text: &mut dyn FnMut(&str)) -> Result<(), LlmError> {
        let response = self.send(&self.body(prompt, true))?;
        let reader = BufReader::new(response.into_reader().take(MAX_ANSWER_BYTES));
        for line in reader.lines() {
            let line =
                line.map_err(|e| LlmError::Provider(format!("the stream broke off: {e}")))?;
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            match stream_event(self.config.protocol, data.trim()) {
                Event::Text(text) => on_text(&text),
                Event::Done => return Ok(()),
                Event::Error(message) => {
                    return Err(LlmError::Provider(format!("the stream failed: {message}")))
                }
                Event::Other => {}
            }
        }
        Err(LlmError::Provider(
            "the stream ended before the answer was complete".into(),
        ))
    }
}
