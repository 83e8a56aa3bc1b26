//! `honcho`: the command line of the server.

use clap::{Parser, Subcommand};
use honcho_server::config::Config;
use std::net::TcpListener;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "honcho",
    version,
    about = "User memory for AI agents: the Honcho v1.1.0 API server"
)]
struct Cli {
    /// Database: postgres://... or a SQLite path (default ./honcho.db). Overrides DATABASE_URL.
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default)
    Serve {
        /// Listen address (overrides HOST)
        #[arg(long)]
        host: Option<String>,
        /// Listen port (overrides PORT)
        #[arg(long)]
        port: Option<u16>,
    },
    /// Apply pending database migrations and exit
    Migrate,
    /// Print the OpenAPI document (YAML) and exit
    Openapi,
    /// Re-embed every document whose vector another embedder made (after changing EMBEDDING_PROVIDER
    /// or EMBEDDING_MODEL)
    Reembed {
        /// Documents per embedding request
        #[arg(long, default_value_t = 64)]
        batch: usize,
    },
    /// Print or mint API keys (needs AUTH_JWT_SECRET)
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print the admin key
    Admin,
    /// Mint a key scoped to an app, user, session and/or collection
    Create {
        // Ids may start with `-` (their alphabet includes it).
        #[arg(long, allow_hyphen_values = true)]
        app_id: Option<String>,
        #[arg(long, allow_hyphen_values = true)]
        user_id: Option<String>,
        #[arg(long, allow_hyphen_values = true)]
        session_id: Option<String>,
        #[arg(long, allow_hyphen_values = true)]
        collection_id: Option<String>,
        /// When the key stops working (ISO 8601, UTC when no offset is given)
        #[arg(long)]
        expires_at: Option<String>,
    },
}

fn keys_from_env() -> Result<honcho_web::auth::Keys, String> {
    let secret = std::env::var("AUTH_JWT_SECRET")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .ok_or("AUTH_JWT_SECRET must be set to print or mint keys")?;
    Ok(honcho_web::auth::Keys::new(&secret))
}

fn run_keys(command: KeysCommand) -> Result<(), String> {
    let keys = keys_from_env()?;
    match command {
        KeysCommand::Admin => println!("{}", keys.admin_key()),
        KeysCommand::Create {
            app_id,
            user_id,
            session_id,
            collection_id,
            expires_at,
        } => {
            if app_id.is_none()
                && user_id.is_none()
                && session_id.is_none()
                && collection_id.is_none()
            {
                return Err("at least one of --app-id, --user-id, --session-id or --collection-id is needed".into());
            }
            let exp = match expires_at {
                None => None,
                Some(raw) => Some(
                    honcho_domain::auth::parse_instant(&raw)
                        .ok_or_else(|| {
                            format!(
                                "--expires-at: cannot read '{raw}' as an ISO 8601 date and time"
                            )
                        })?
                        .timestamp(),
                ),
            };
            let claims = honcho_domain::auth::Claims {
                t: chrono::Utc::now().to_rfc3339(),
                exp: exp.map(serde_json::Value::from),
                ad: None,
                ap: app_id,
                us: user_id,
                se: session_id,
                co: collection_id,
            };
            println!("{}", keys.mint(&claims));
        }
    }
    Ok(())
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let level = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("LOG_LEVEL").map(|l| l.to_lowercase()))
        .unwrap_or_else(|_| "info".into());
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr: stdout carries what commands print (keys, the OpenAPI document).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    if let Some(url) = &cli.database_url {
        std::env::set_var("DATABASE_URL", url);
    }
    init_logging();
    match run(cli.command.unwrap_or(Command::Serve {
        host: None,
        port: None,
    })) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("honcho: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Keys(command) => run_keys(command),
        Command::Reembed { batch } => {
            let config = Config::from_env()?;
            let embedder = honcho_insights::embedder_from_env()?;
            let db = honcho_server::open_database(&config)?;
            let done = honcho_server::reembed(&db, embedder.as_ref(), batch.max(1))?;
            println!("re-embedded {done} documents with {}", embedder.id());
            Ok(())
        }
        Command::Openapi => {
            print!("{}", honcho_web::api_yaml());
            Ok(())
        }
        Command::Migrate => {
            let config = Config::from_env()?;
            honcho_server::open_database(&config)?;
            println!("database {} is up to date", config.database.redacted());
            Ok(())
        }
        Command::Serve { host, port } => {
            let mut config = Config::from_env()?;
            if let Some(h) = host {
                config.host = h;
            }
            if let Some(p) = port {
                config.port = p;
            }
            serve(config)
        }
    }
}

fn serve(config: Config) -> Result<(), String> {
    let keys = config.keys();
    let embedder = honcho_insights::embedder_from_env()?;
    let db = honcho_server::open_database(&config)?;
    honcho_server::check_embeddings(&db, embedder.as_ref())?;
    let addr = format!("{}:{}", config.host, config.port);
    let listener = TcpListener::bind(&addr).map_err(|e| format!("HOST/PORT {addr}: {e}"))?;
    tracing::info!(
        address = %addr,
        database = %config.database.redacted(),
        backend = db.backend(),
        auth = if keys.is_some() { "on" } else { "off" },
        insights = "off (no LLM configured)",
        embedder = embedder.id(),
        "honcho listening; docs at /docs"
    );
    if let Some(keys) = &keys {
        // Printed once, on the terminal only: keys are never written to the logs.
        println!("Admin key (keep it secret): {}", keys.admin_key());
    }
    let state = honcho_web::AppState {
        db,
        auth: honcho_web::auth::AuthConfig { keys },
        enqueue_for_deriver: false,
        embedder,
        body_timeout: std::time::Duration::from_secs(config.request_timeout_secs),
    };
    let http = honcho_server::HttpSettings {
        workers: config.workers(),
        max_connections: config.max_connections,
        request_timeout: std::time::Duration::from_secs(config.request_timeout_secs),
    };
    actix_web::rt::System::new().block_on(async move {
        let server =
            honcho_server::build_server(state, listener, http).map_err(|e| e.to_string())?;
        server.server.await.map_err(|e| e.to_string())
    })
}
