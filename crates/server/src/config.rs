//! Configuration from the environment (and a `.env` file), with command-line overrides: the only
//! module that reads the environment (the models' settings are parsed by `honcho_models` from the
//! reader passed here). A bad value stops start-up with one line naming the variable; nothing falls
//! back silently.

use honcho_db::{DatabaseUrl, DbOptions, SqliteSync};

#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseUrl,
    pub host: String,
    pub port: u16,
    /// Database connections per process; `None` picks a default for the engine.
    pub pool_size: Option<u32>,
    /// HTTP worker threads; `None` means one per core.
    pub workers: Option<usize>,
    /// The key-signing secret when `USE_AUTH` is on; `None` when it is off.
    pub auth_secret: Option<String>,
    /// With authentication on, a bearer token that may read `/metrics` besides the admin key.
    pub metrics_token: Option<String>,
    /// Bytes of JSON text and array elements metadata and filters may have.
    pub metadata_limits: honcho_domain::values::MetadataLimits,
    /// SQLite: `full` (default, survives power loss) or `normal` (survives a process crash).
    pub sqlite_sync: SqliteSync,
    /// SQLite: write-ahead log size (MiB) past which it is checkpointed and truncated.
    pub sqlite_wal_limit_mb: u64,
    /// MiB of collection vectors and postings cached per process (`0`: none).
    pub vector_cache_mb: usize,
    /// MiB of users' message vectors and postings (message search) cached per process (`0`: none).
    pub message_cache_mb: usize,
    /// Seconds a client has to send a request's headers, and then its body.
    pub request_timeout_secs: u64,
    /// Open connections per HTTP worker at most; more wait to be accepted.
    pub max_connections: usize,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_timeout_secs: u64,
    /// Origins browsers may call from; `None` for v1.1.0's list.
    pub cors_origins: Option<Vec<String>>,
    /// The deriver's workers (`DERIVER_*`).
    pub deriver: honcho_insights::DeriverSettings,
    /// How `documents/query` ranks (`RETRIEVAL_MODE`, `RETRIEVAL_LEXICAL_WEIGHT`).
    pub retrieval: honcho_domain::retrieval::Retrieval,
}

/// The environment variables, by what they configure: every command's `--help` lists the groups it
/// reads from here (one list, so help and code cannot drift).
pub mod vars {
    pub const DATABASE: &[&str] = &[
        "DATABASE_URL (or CONNECTION_URI)",
        "DATABASE_POOL_SIZE",
        "SQLITE_SYNCHRONOUS",
        "SQLITE_WAL_LIMIT_MB",
    ];
    pub const LOGGING: &[&str] = &["LOG_LEVEL (or RUST_LOG)", "LOG_FORMAT", "NO_COLOR"];
    pub const HTTP: &[&str] = &[
        "METADATA_MAX_BYTES",
        "METADATA_ARRAY_MAX",
        "HOST",
        "PORT",
        "HTTP_WORKERS",
        "REQUEST_TIMEOUT",
        "MAX_CONNECTIONS",
        "SHUTDOWN_TIMEOUT",
        "CORS_ORIGINS",
    ];
    pub const AUTH: &[&str] = &["USE_AUTH", "AUTH_JWT_SECRET", "METRICS_TOKEN"];
    pub const SECRET: &[&str] = &["AUTH_JWT_SECRET"];
    pub const EMBEDDING: &[&str] = &[
        "EMBEDDING_PROVIDER",
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
        "EMBEDDING_MODEL",
        "EMBEDDING_DIMENSIONS",
        "EMBEDDING_TIMEOUT_SECS",
    ];
    pub const RETRIEVAL: &[&str] = &[
        "VECTOR_CACHE_MB",
        "MESSAGE_CACHE_MB",
        "RETRIEVAL_MODE",
        "RETRIEVAL_LEXICAL_WEIGHT",
    ];
    pub const LLM: &[&str] = &[
        "LLM_PROVIDER",
        "LLM_BASE_URL",
        "LLM_API_KEY (or ANTHROPIC_API_KEY)",
        "LLM_MODEL",
        "DERIVER_MODEL",
        "SUMMARY_MODEL",
        "QUERY_MODEL",
        "DIALECTIC_MODEL",
        "LLM_TIMEOUT_SECS",
    ];
    pub const DERIVER: &[&str] = &[
        "DERIVER_WORKERS",
        "DERIVER_MAX_ATTEMPTS",
        "DERIVER_LEASE_SECS",
        "DERIVER_POLL_MS",
        "DERIVER_RETRY_BASE_MS",
        "SHUTDOWN_TIMEOUT",
    ];

    /// The `--help` text naming the variables of `groups`, wrapped.
    pub fn help(groups: &[&[&str]]) -> String {
        let mut out = String::from("Environment (also read from ./.env):\n ");
        let mut width = 1;
        let mut seen = Vec::new();
        for name in groups.iter().flat_map(|g| g.iter()) {
            if seen.contains(name) {
                continue;
            }
            seen.push(name);
            let item = if seen.len() == 1 {
                format!(" {name}")
            } else {
                format!(", {name}")
            };
            if width + item.len() > 98 {
                out.push_str(",\n  ");
                out.push_str(item.trim_start_matches(", "));
                width = 2 + item.len() - 2;
            } else {
                out.push_str(&item);
                width += item.len();
            }
        }
        out
    }
}

/// Reads `path` (a `.env` file) into the environment when it exists; a variable set already keeps
/// its value. A line that cannot be read stops start-up, naming the file and the line (rather than
/// silently dropping it and every line after it).
pub fn read_dotenv(path: &std::path::Path) -> Result<(), String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let mut values = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok(pair) => values.push(pair),
            Err(dotenvy::Error::LineParse(part, _)) => {
                // The parser names the part it stopped at; the line is the first that holds it.
                let found = text
                    .lines()
                    .enumerate()
                    .find(|(_, l)| l.contains(part.trim()));
                let (number, line) = match found {
                    Some((n, l)) => (format!(" line {}", n + 1), l.trim()),
                    None => (String::new(), part.trim()),
                };
                return Err(format!(
                    "{}{number}: cannot read '{line}' (expected NAME=value; quote values with \
                     spaces)",
                    path.display(),
                ));
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    for (name, value) in values {
        if std::env::var_os(&name).is_none() {
            std::env::set_var(name, value);
        }
    }
    Ok(())
}

/// Where the SQLite database lives when nothing is configured.
pub const DEFAULT_DATABASE: &str = "./honcho.db";

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A variable as it is (not trimmed; a value that is not Unicode read lossily, so that it fails
/// validation naming the variable rather than counting as unset): what the models' settings parse.
fn raw_var(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// The keys that sign and check API keys, for the commands that print or mint keys
/// (`AUTH_JWT_SECRET`, whether or not `USE_AUTH` is on).
pub fn signing_keys() -> Result<honcho_web::auth::Keys, String> {
    var("AUTH_JWT_SECRET")
        .map(|secret| honcho_web::auth::Keys::new(&secret))
        .ok_or_else(|| "AUTH_JWT_SECRET must be set to print or mint keys".to_string())
}

fn parse_var<T: std::str::FromStr>(name: &str) -> Result<Option<T>, String> {
    match var(name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}: cannot parse '{v}'")),
    }
}

/// A true/false setting: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, in any case; anything else
/// is an error naming the variable.
pub fn flag(name: &str) -> Result<Option<bool>, String> {
    let Some(v) = var(name) else { return Ok(None) };
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(Some(true)),
        "false" | "0" | "no" | "off" => Ok(Some(false)),
        _ => Err(format!(
            "{name}: '{v}' is neither true nor false (true/false, 1/0, yes/no, on/off)"
        )),
    }
}

/// How logs are written, from `RUST_LOG` (a tracing filter) or `LOG_LEVEL` (v1.1.0's level names),
/// and `LOG_FORMAT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// A `tracing` filter directive.
    pub filter: String,
    /// One JSON object per line instead of text.
    pub json: bool,
    /// Colour allowed (`NO_COLOR` unset); used only on a terminal.
    pub color: bool,
}

impl LogSettings {
    pub fn from_env() -> Result<LogSettings, String> {
        let filter = match (var("RUST_LOG"), var("LOG_LEVEL")) {
            (Some(filter), _) => filter,
            (None, Some(level)) => match level.trim().to_ascii_lowercase().as_str() {
                "trace" => "trace".into(),
                "debug" => "debug".into(),
                "info" => "info".into(),
                "warn" | "warning" => "warn".into(),
                "error" | "critical" => "error".into(),
                "off" => "off".into(),
                _ => {
                    return Err(format!(
                        "LOG_LEVEL: '{level}' is not one of trace, debug, info, warning, error, \
                         critical, off"
                    ))
                }
            },
            (None, None) => "info".into(),
        };
        let json = match var("LOG_FORMAT").map(|f| f.trim().to_ascii_lowercase()) {
            None => false,
            Some(f) if f == "pretty" || f == "text" => false,
            Some(f) if f == "json" => true,
            Some(f) => return Err(format!("LOG_FORMAT: '{f}' is neither pretty nor json")),
        };
        let color = std::env::var_os("NO_COLOR").is_none();
        Ok(LogSettings {
            filter,
            json,
            color,
        })
    }
}

/// A number above zero, or nothing.
fn positive<T: std::str::FromStr + PartialOrd + Default>(name: &str) -> Result<Option<T>, String> {
    match parse_var::<T>(name)? {
        Some(n) if n <= T::default() => Err(format!("{name}: must be above 0")),
        n => Ok(n),
    }
}

impl Config {
    /// Reads the server's variables (the groups of [`vars`] but the embedder's and the language
    /// models', which [`Config::embedder`] and [`Config::models`] read when a command needs them):
    /// `DATABASE_URL` (or v1.1.0's `CONNECTION_URI`), the HTTP, auth, retrieval and deriver
    /// settings. Flags such as `USE_AUTH` take true/false, 1/0,
    /// yes/no or on/off.
    pub fn from_env() -> Result<Config, String> {
        Config::read(None)
    }

    /// As [`Config::from_env`], with the database given on the command line (`--database-url`)
    /// taking the place of `DATABASE_URL` when it is there.
    pub fn read(database_url: Option<String>) -> Result<Config, String> {
        let (name, raw) = match (
            database_url.or_else(|| var("DATABASE_URL")),
            var("CONNECTION_URI"),
        ) {
            (Some(u), _) => ("DATABASE_URL", u),
            (None, Some(u)) => ("CONNECTION_URI", u),
            (None, None) => ("DATABASE_URL", DEFAULT_DATABASE.to_string()),
        };
        let database = DatabaseUrl::parse(&raw).map_err(|e| format!("{name}: {e}"))?;
        let use_auth = flag("USE_AUTH")?.unwrap_or(false);
        let auth_secret = match (use_auth, var("AUTH_JWT_SECRET")) {
            (false, _) => None,
            (true, Some(secret)) => Some(secret),
            (true, None) => return Err("AUTH_JWT_SECRET must be set when USE_AUTH is true".into()),
        };
        Ok(Config {
            database,
            host: var("HOST").unwrap_or_else(|| "127.0.0.1".into()),
            port: port()?,
            pool_size: positive("DATABASE_POOL_SIZE")?,
            workers: positive("HTTP_WORKERS")?,
            auth_secret,
            metrics_token: var("METRICS_TOKEN"),
            metadata_limits: honcho_domain::values::MetadataLimits {
                max_bytes: positive("METADATA_MAX_BYTES")?
                    .unwrap_or(honcho_domain::values::METADATA_MAX_BYTES),
                array_max: positive("METADATA_ARRAY_MAX")?
                    .unwrap_or(honcho_domain::values::METADATA_ARRAY_MAX),
            },
            sqlite_sync: match var("SQLITE_SYNCHRONOUS").map(|v| v.trim().to_ascii_lowercase()) {
                None => SqliteSync::Full,
                Some(v) if v == "full" => SqliteSync::Full,
                Some(v) if v == "normal" => SqliteSync::Normal,
                Some(v) => {
                    return Err(format!(
                        "SQLITE_SYNCHRONOUS: '{v}' is neither 'full' nor 'normal'"
                    ))
                }
            },
            sqlite_wal_limit_mb: positive("SQLITE_WAL_LIMIT_MB")?
                .unwrap_or(honcho_db::SQLITE_WAL_LIMIT_MB_DEFAULT),
            vector_cache_mb: parse_var("VECTOR_CACHE_MB")?
                .unwrap_or(honcho_db::VECTOR_CACHE_MB_DEFAULT),
            message_cache_mb: parse_var("MESSAGE_CACHE_MB")?
                .unwrap_or(honcho_db::MESSAGE_CACHE_MB_DEFAULT),
            request_timeout_secs: positive("REQUEST_TIMEOUT")?.unwrap_or(30),
            max_connections: positive("MAX_CONNECTIONS")?.unwrap_or(10_000),
            shutdown_timeout_secs: parse_var("SHUTDOWN_TIMEOUT")?.unwrap_or(30),
            cors_origins: var("CORS_ORIGINS").map(|v| origins(&v)).transpose()?,
            deriver: deriver_settings()?,
            retrieval: retrieval()?,
        })
    }

    /// The store's settings.
    pub fn db_options(&self) -> DbOptions {
        DbOptions {
            sqlite_sync: self.sqlite_sync,
            sqlite_wal_limit: self.sqlite_wal_limit_mb * 1024 * 1024,
            vector_cache_bytes: self.vector_cache_mb.saturating_mul(1024 * 1024),
            message_cache_bytes: self.message_cache_mb.saturating_mul(1024 * 1024),
            statement_timeout: Some(std::time::Duration::from_secs(self.request_timeout_secs)),
            ..DbOptions::with_max_size(self.pool_size())
        }
    }

    /// The embedder `EMBEDDING_PROVIDER` and the other `EMBEDDING_*` variables name (the shipped
    /// model by default), read when a command needs one.
    pub fn embedder(&self) -> Result<std::sync::Arc<dyn honcho_domain::embed::Embedder>, String> {
        honcho_models::EmbedderConfig::from_lookup(raw_var)?.build()
    }

    /// The chat models the `LLM_*` variables name (`None`: insights off), read when a command
    /// needs them.
    pub fn models(&self) -> Result<Option<honcho_models::Models>, String> {
        honcho_models::llm_config::models_from_lookup(raw_var)
    }

    /// The key-signing keys, when authentication is on.
    pub fn keys(&self) -> Option<honcho_web::auth::Keys> {
        self.auth_secret.as_deref().map(honcho_web::auth::Keys::new)
    }

    pub fn pool_size(&self) -> u32 {
        self.pool_size.unwrap_or(match self.database {
            DatabaseUrl::Postgres(_) => 16,
            DatabaseUrl::Sqlite(_) => 8,
        })
    }

    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }
}

/// `PORT`: 0 (any free port) to 65535.
fn port() -> Result<u16, String> {
    match var("PORT") {
        None => Ok(8000),
        Some(v) => v.trim().parse::<u16>().map_err(|_| {
            format!("PORT: '{v}' is not a port number (a whole number from 0 to 65535)")
        }),
    }
}

/// `CORS_ORIGINS`: comma-separated origins, each `scheme://host[:port]` (http or https), or `*`.
fn origins(v: &str) -> Result<Vec<String>, String> {
    v.split(',')
        .map(|o| o.trim().trim_end_matches('/'))
        .filter(|o| !o.is_empty())
        .map(|o| {
            let valid = o == "*"
                || o.split_once("://").is_some_and(|(scheme, rest)| {
                    let (host, port) = match rest.rsplit_once(':') {
                        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(p)),
                        _ => (rest, None),
                    };
                    matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https")
                        && !host.is_empty()
                        && !host.contains(['/', '?', '#', '@', ' '])
                        && port.is_none_or(|p| p.parse::<u16>().is_ok())
                });
            if valid {
                Ok(o.to_string())
            } else {
                Err(format!(
                    "CORS_ORIGINS: '{o}' is not an origin (scheme://host[:port] with http or \
                     https, or * for any)"
                ))
            }
        })
        .collect()
}

/// `RETRIEVAL_MODE` (`hybrid`, the default, `vector` or `lexical`) and
/// `RETRIEVAL_LEXICAL_WEIGHT` (the weight of BM25 in hybrid ranking, 0 to 1, default 0.5).
fn retrieval() -> Result<honcho_domain::retrieval::Retrieval, String> {
    use honcho_domain::retrieval::Retrieval;
    let defaults = Retrieval::default();
    Ok(Retrieval {
        mode: match var("RETRIEVAL_MODE") {
            Some(v) => v.parse().map_err(|e| format!("RETRIEVAL_MODE: {e}"))?,
            None => defaults.mode,
        },
        lexical_weight: match var("RETRIEVAL_LEXICAL_WEIGHT") {
            Some(v) => {
                Retrieval::parse_weight(&v).map_err(|e| format!("RETRIEVAL_LEXICAL_WEIGHT: {e}"))?
            }
            None => defaults.lexical_weight,
        },
    })
}

/// `DERIVER_WORKERS` (sessions at once in this process; 0 turns the in-process deriver off),
/// `DERIVER_MAX_ATTEMPTS`, `DERIVER_LEASE_SECS`, `DERIVER_POLL_MS`, `DERIVER_RETRY_BASE_MS`.
fn deriver_settings() -> Result<honcho_insights::DeriverSettings, String> {
    use std::time::Duration;
    let defaults = honcho_insights::DeriverSettings::default();
    let host = var("HOSTNAME").unwrap_or_else(|| "honcho".into());
    Ok(honcho_insights::DeriverSettings {
        workers: parse_var("DERIVER_WORKERS")?.unwrap_or(defaults.workers),
        max_attempts: positive("DERIVER_MAX_ATTEMPTS")?.unwrap_or(defaults.max_attempts),
        lease: positive("DERIVER_LEASE_SECS")?
            .map(Duration::from_secs)
            .unwrap_or(defaults.lease),
        poll: positive("DERIVER_POLL_MS")?
            .map(Duration::from_millis)
            .unwrap_or(defaults.poll),
        retry_base: positive("DERIVER_RETRY_BASE_MS")?
            .map(Duration::from_millis)
            .unwrap_or(defaults.retry_base),
        retry_max: defaults.retry_max,
        name: format!("{host}:{}", std::process::id()),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Variable names in `text` (`DATABASE_URL (or CONNECTION_URI)` is two).
    fn names<'a>(text: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        text.into_iter()
            .flat_map(|t| {
                t.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            })
            .filter(|w| w.len() > 2 && w.contains('_') || ["HOST", "PORT"].contains(w))
            .map(str::to_string)
            .collect()
    }

    /// The README's configuration tables and the variables `--help` lists name the same variables.
    #[test]
    fn the_readme_documents_every_variable_the_help_lists() {
        use super::vars::*;
        let groups = [
            DATABASE, LOGGING, HTTP, AUTH, SECRET, EMBEDDING, RETRIEVAL, LLM, DERIVER,
        ];
        let helped = names(groups.iter().flat_map(|g| g.iter().copied()));
        let readme = include_str!("../../../README.md");
        // The first cell of each table row, and only the backticked words in it.
        let documented = names(
            readme
                .lines()
                .filter_map(|l| l.strip_prefix("| "))
                .filter(|l| l.starts_with('`'))
                .filter_map(|l| l.split(" | ").next())
                .flat_map(|cell| cell.split('`').skip(1).step_by(2)),
        );
        // `NO_COLOR` is a convention of terminals, named in the logging row's text.
        let helped: BTreeSet<String> = helped.into_iter().filter(|n| n != "NO_COLOR").collect();
        assert_eq!(
            documented, helped,
            "README variables vs the --help lists (config::vars)"
        );
    }
}
