//! A language model server for the tests, on 127.0.0.1: speaks OpenAI's `/chat/completions` and
//! Anthropic's `/messages`, whole or streamed (SSE), and answers by a script that sees each request:
//! the default script plays every role of honcho's prompts deterministically; tests wrap it to fail,
//! stall or hold calls open.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which API the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    OpenAi,
    Anthropic,
}

/// What a request asked for.
#[derive(Debug, Clone)]
pub struct Asked {
    pub system: String,
    /// The last user turn.
    pub user: String,
    pub stream: bool,
}

impl Asked {
    pub fn role(&self) -> Role {
        if self.system.contains("durable facts") {
            Role::Facts
        } else if self.system.contains("running record") {
            Role::LongSummary
        } else if self.system.contains("summarise a conversation") {
            Role::ShortSummary
        } else if self.system.contains("search a memory") {
            Role::Queries
        } else {
            Role::Answer
        }
    }

    /// The new message of a facts request.
    pub fn new_message(&self) -> &str {
        self.user
            .rsplit_once("New message from the user:\n")
            .map_or("", |(_, m)| m)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Facts,
    ShortSummary,
    LongSummary,
    Queries,
    Answer,
}

/// An answer of the server.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The model's text (sent whole, or streamed in pieces of a few characters when asked).
    Text(String),
    /// The text streamed in these pieces with this pause before each.
    Pieces(Vec<String>, Duration),
    /// These pieces streamed, then the connection closes without the stream's end.
    Cut(Vec<String>),
    /// An HTTP error with a JSON body.
    Status(u16),
    /// Waits this long, then answers the text.
    Slow(Duration, String),
    /// Never answers (until the server is dropped or the client goes away).
    Hold,
}

type Script = dyn Fn(&Asked) -> Reply + Send + Sync;

pub struct ModelServer {
    pub base: String,
    pub protocol: Protocol,
    asked: Arc<Mutex<Vec<Asked>>>,
    /// Requests answered (their reply written), held ones and cut streams not counted.
    answered: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
}

/// Plays every role: facts "The user said: <message>", summaries naming how many messages they
/// saw, one search phrase, and an answer that quotes its context.
pub fn default_reply(asked: &Asked) -> Reply {
    Reply::Text(match asked.role() {
        Role::Facts => {
            let message = asked.new_message().trim();
            if message.is_empty() || message.starts_with("nothing") {
                r#"{"facts": []}"#.to_string()
            } else {
                json!({ "facts": [format!("The user said: {message}")] }).to_string()
            }
        }
        Role::ShortSummary | Role::LongSummary => {
            let lines = asked
                .user
                .lines()
                .filter(|l| l.starts_with("user: ") || l.starts_with("assistant: "))
                .count();
            format!("Summary: a conversation of {lines} messages.")
        }
        Role::Queries => r#"{"queries": ["The user likes"]}"#.to_string(),
        Role::Answer => format!("ANSWER from context: {}", asked.user),
    })
}

impl ModelServer {
    /// A server answering with `default_reply`.
    pub fn start(protocol: Protocol) -> ModelServer {
        Self::scripted(protocol, default_reply)
    }

    pub fn scripted(
        protocol: Protocol,
        script: impl Fn(&Asked) -> Reply + Send + Sync + 'static,
    ) -> ModelServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        let asked = Arc::new(Mutex::new(Vec::new()));
        let answered = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let (a, n, c) = (asked.clone(), answered.clone(), closed.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if c.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (a, n, s, c) = (a.clone(), n.clone(), script.clone(), c.clone());
                std::thread::spawn(move || serve(stream, protocol, &a, &n, s.as_ref(), &c));
            }
        });
        ModelServer {
            base,
            protocol,
            asked,
            answered,
            closed,
        }
    }

    /// Every request so far.
    pub fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap().clone()
    }

    /// How many requests were answered so far.
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    /// The environment that points honcho at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let provider = match self.protocol {
            Protocol::OpenAi => "openai",
            Protocol::Anthropic => "anthropic",
        };
        vec![
            ("LLM_PROVIDER", provider.into()),
            ("LLM_BASE_URL", self.base.clone()),
            ("LLM_API_KEY", "test-key".into()),
            ("LLM_MODEL", "mock-model".into()),
            ("LLM_TIMEOUT_SECS", "30".into()),
        ]
    }

    /// Honcho's models, pointed at this server.
    pub fn models(&self) -> honcho_domain::llm::Models {
        let env = self.env();
        honcho_models::llm_config::models_from_lookup(|name| {
            env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())
        })
        .unwrap()
        .unwrap()
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(
            self.base
                .trim_start_matches("http://")
                .trim_end_matches("/v1"),
        );
    }
}

fn serve(
    stream: TcpStream,
    protocol: Protocol,
    asked: &Mutex<Vec<Asked>>,
    answered: &AtomicUsize,
    script: &Script,
    closed: &AtomicBool,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.trim().eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let request = read_request(protocol, &body);
        asked.lock().unwrap().push(request.clone());
        let reply = script(&request);
        let written = match reply {
            Reply::Hold => {
                while !closed.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                    // A client that went away ends the hold.
                    let mut probe = [0u8; 1];
                    stream.set_nonblocking(true).ok();
                    let gone = matches!(stream.peek(&mut probe), Ok(0));
                    stream.set_nonblocking(false).ok();
                    if gone {
                        return;
                    }
                }
                return;
            }
            Reply::Status(code) => write_whole(
                &mut stream,
                code,
                &json!({"error": {"message": format!("scripted failure {code}"), "type": "server_error"}}),
            ),
            Reply::Slow(wait, text) => {
                std::thread::sleep(wait);
                answer(&mut stream, protocol, &request, vec![text], Duration::ZERO)
            }
            Reply::Text(text) => {
                let pieces = if request.stream {
                    chunks(&text)
                } else {
                    vec![text]
                };
                answer(&mut stream, protocol, &request, pieces, Duration::ZERO)
            }
            Reply::Pieces(pieces, pause) => answer(&mut stream, protocol, &request, pieces, pause),
            Reply::Cut(pieces) => {
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
                );
                for piece in pieces {
                    let _ = write!(
                        stream,
                        "data: {}\n\n",
                        json!({"choices": [{"index": 0, "delta": {"content": piece}}]})
                    );
                }
                let _ = stream.flush();
                std::thread::sleep(Duration::from_millis(100));
                return;
            }
        };
        if written.is_err() {
            return;
        }
        answered.fetch_add(1, Ordering::SeqCst);
    }
}

fn chunks(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(8).map(|c| c.iter().collect()).collect()
}

fn read_request(protocol: Protocol, body: &Value) -> Asked {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let text = |m: &Value| -> String {
        match &m["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(""),
            _ => String::new(),
        }
    };
    let system = match protocol {
        Protocol::OpenAi => messages
            .iter()
            .find(|m| m["role"] == "system")
            .map(text)
            .unwrap_or_default(),
        Protocol::Anthropic => match &body["system"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
    };
    let user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(text)
        .unwrap_or_default();
    Asked {
        system,
        user,
        stream: body["stream"].as_bool().unwrap_or(false),
    }
}

fn write_whole(stream: &mut TcpStream, status: u16, body: &Value) -> std::io::Result<()> {
    let body = body.to_string();
    write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

fn answer(
    stream: &mut TcpStream,
    protocol: Protocol,
    request: &Asked,
    pieces: Vec<String>,
    pause: Duration,
) -> std::io::Result<()> {
    if !request.stream {
        let text: String = pieces.concat();
        let body = match protocol {
            Protocol::OpenAi => json!({
                "id": "c1", "object": "chat.completion", "model": "mock-model",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}]
            }),
            Protocol::Anthropic => json!({
                "id": "m1", "type": "message", "role": "assistant", "model": "mock-model",
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn"
            }),
        };
        return write_whole(stream, 200, &body);
    }
    write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
    )?;
    stream.flush()?;
    if protocol == Protocol::Anthropic {
        write!(
            stream,
            "event: message_start\ndata: {}\n\n",
            json!({"type": "message_start", "message": {"id": "m1", "content": []}})
        )?;
    }
    for piece in pieces {
        std::thread::sleep(pause);
        let event = match protocol {
            Protocol::OpenAi => format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "delta": {"content": piece}}]})
            ),
            Protocol::Anthropic => format!(
                "event: content_block_delta\ndata: {}\n\n",
                json!({"type": "content_block_delta", "index": 0,
                       "delta": {"type": "text_delta", "text": piece}})
            ),
        };
        stream.write_all(event.as_bytes())?;
        stream.flush()?;
    }
    match protocol {
        Protocol::OpenAi => stream.write_all(b"data: [DONE]\n\n")?,
        Protocol::Anthropic => write!(
            stream,
            "event: message_stop\ndata: {}\n\n",
            json!({"type": "message_stop"})
        )?,
    }
    stream.flush()?;
    // A streamed answer ends with the connection.
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Err(std::io::Error::other("stream ended"))
}
