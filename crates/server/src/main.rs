//! `honcho`: the command line of the server.

use clap::{Args, Parser, Subcommand};
use honcho_server::config::Config;
use std::net::TcpListener;
use std::process::ExitCode;

use honcho_server::config::vars;

/// What `serve` (the default command) reads.
fn serve_help() -> String {
    vars::help(&[
        vars::DATABASE,
        vars::HTTP,
        vars::AUTH,
        vars::EMBEDDING,
        vars::RETRIEVAL,
        vars::LLM,
        vars::DERIVER,
        vars::LOGGING,
    ])
}

#[derive(Parser)]
#[command(
    name = "honcho",
    version,
    about = "User memory for AI agents: the Honcho v1.1.0 API server",
    args_conflicts_with_subcommands = true,
    after_help = serve_help()
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a command, `honcho` serves: these are `serve`'s flags.
    #[command(flatten)]
    serve: ServeArgs,
}

/// Where the database is.
#[derive(Args, Clone, Default)]
struct DatabaseArg {
    /// Database: postgres://... or a SQLite path [default: ./honcho.db]
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
}

impl DatabaseArg {
    /// The configuration, with this database (the flag's, or `DATABASE_URL`).
    fn config(&self) -> Result<Config, String> {
        Config::read(self.database_url.clone())
    }
}

#[derive(Args, Clone, Default)]
struct ServeArgs {
    #[command(flatten)]
    database: DatabaseArg,
    /// Listen address [default: 127.0.0.1]
    #[arg(long, env = "HOST")]
    host: Option<String>,
    /// Listen port [default: 8000]
    #[arg(long, env = "PORT")]
    port: Option<u16>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default)
    #[command(after_help = serve_help())]
    Serve(ServeArgs),
    /// Apply pending database migrations and exit
    #[command(after_help = vars::help(&[vars::DATABASE, vars::LOGGING]))]
    Migrate(DatabaseArg),
    /// Print the OpenAPI document (YAML) and exit
    Openapi,
    /// Re-embed every document and message whose vector another embedder made (after changing
    /// EMBEDDING_PROVIDER or EMBEDDING_MODEL), and embed messages stored without one
    #[command(after_help = vars::help(&[vars::DATABASE, vars::EMBEDDING, vars::LOGGING]))]
    Reembed {
        #[command(flatten)]
        database: DatabaseArg,
        /// Documents or messages per embedding request
        #[arg(long, default_value_t = 64)]
        batch: usize,
    },
    /// Print or mint API keys (needs AUTH_JWT_SECRET)
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Runs deriver workers only (no HTTP): several processes can share one PostgreSQL database.
    /// `honcho deriver failed` lists the messages whose derivation failed; `honcho deriver retry`
    /// runs them again
    #[command(after_help = vars::help(&[
        vars::DATABASE,
        vars::LLM,
        vars::DERIVER,
        vars::EMBEDDING,
        vars::LOGGING,
    ]))]
    Deriver(DeriverArgs),
    /// Copy the data of a Honcho v1.1.0 server (apps, users, sessions, messages, metamessages,
    /// collections, documents), read through its API, into this database with their ids and times;
    /// running it again imports only what is missing. Exits non-zero when something failed or
    /// conflicted
    #[command(after_help = vars::help(&[vars::DATABASE, vars::EMBEDDING, vars::LOGGING]))]
    Import(ImportArgs),
    /// Erase a user and everything stored about it (sessions, messages, metamessages, collections,
    /// documents and facts, the deriver's work), or with --session-id one session and the facts
    /// derived from its messages; prints what was erased. This cannot be undone.
    #[command(after_help = vars::help(&[vars::DATABASE, vars::LOGGING]))]
    Erase {
        #[command(flatten)]
        database: DatabaseArg,
        // Ids may start with `-` (their alphabet includes it).
        /// The user's app
        #[arg(long, allow_hyphen_values = true)]
        app_id: String,
        /// The user to erase (or whose session to erase)
        #[arg(long, allow_hyphen_values = true)]
        user_id: String,
        /// Erase only this session of the user
        #[arg(long, allow_hyphen_values = true)]
        session_id: Option<String>,
    },
}

/// `honcho import`: the source, what to take from it and how.
#[derive(Args)]
struct ImportArgs {
    #[command(flatten)]
    database: DatabaseArg,
    /// The source server's address (http://host:port of any server of the Honcho v1.1.0 API)
    #[arg(long, value_name = "URL")]
    from: String,
    /// A key of the source (an admin key reads every app; an app's key, that app)
    #[arg(long, env = "HONCHO_IMPORT_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Import only this app, by id or name (repeatable) [default: every app the key lists]
    #[arg(long = "app", value_name = "NAME_OR_ID", allow_hyphen_values = true)]
    apps: Vec<String>,
    /// Users imported at once
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Read the source and compare with the target, print the counts and conflicts, write nothing
    #[arg(long)]
    dry_run: bool,
    /// Replace records of the target that differ from the source's (default: report them)
    #[arg(long)]
    overwrite: bool,
    /// Store documents without vectors (searchable by words; `honcho reembed` embeds them)
    #[arg(long)]
    skip_embedding: bool,
    /// Queue the imported messages for the deriver (default: the source's facts and summaries
    /// come along as they are, nothing is derived again)
    #[arg(long)]
    derive: bool,
}

/// `honcho deriver`: the workers, or with a subcommand the failed messages.
#[derive(Args)]
struct DeriverArgs {
    #[command(flatten)]
    database: DatabaseArg,
    #[command(subcommand)]
    action: Option<DeriverAction>,
}

#[derive(Subcommand)]
enum DeriverAction {
    /// List the messages whose derivation failed after their last attempt, oldest first
    #[command(after_help = vars::help(&[vars::DATABASE, vars::LOGGING]))]
    Failed {
        #[command(flatten)]
        scope: FailedArgs,
    },
    /// Run failed messages again (all of them, or those of an app, user, session or the messages
    /// named); each session's in the order of its messages
    #[command(after_help = vars::help(&[vars::DATABASE, vars::LOGGING]))]
    Retry {
        #[command(flatten)]
        scope: FailedArgs,
        /// Only this message (repeat for several)
        #[arg(long = "message-id", allow_hyphen_values = true)]
        message_ids: Vec<String>,
    },
}

#[derive(Args)]
struct FailedArgs {
    #[command(flatten)]
    database: DatabaseArg,
    // Ids may start with `-` (their alphabet includes it).
    /// Only this app's
    #[arg(long, allow_hyphen_values = true)]
    app_id: Option<String>,
    /// Only this user's
    #[arg(long, allow_hyphen_values = true)]
    user_id: Option<String>,
    /// Only this session's
    #[arg(long, allow_hyphen_values = true)]
    session_id: Option<String>,
}

impl FailedArgs {
    /// The database (this command's flag, else the one given before it) and the scope.
    fn split(self, outer: DatabaseArg) -> (DatabaseArg, honcho_domain::queue::FailedScope) {
        let scope = honcho_domain::queue::FailedScope {
            app_id: self.app_id,
            user_id: self.user_id,
            session_id: self.session_id,
        };
        let database = DatabaseArg {
            database_url: self.database.database_url.or(outer.database_url),
        };
        (database, scope)
    }
}

/// `honcho deriver failed` and `honcho deriver retry`.
fn run_deriver_action(action: DeriverAction, outer: DatabaseArg) -> Result<(), String> {
    match action {
        DeriverAction::Failed { scope } => {
            let (database, scope) = scope.split(outer);
            let db = existing_database(database)?;
            let mut out =
                String::from("message_id\tsession_id\tuser_id\tattempts\tfailed_at\terror\n");
            for page in 1.. {
                let req = honcho_domain::PageRequest {
                    page,
                    size: 100,
                    reverse: false,
                };
                let failed = db.failed_items(&scope, req).map_err(|e| e.to_string())?;
                for f in &failed.items {
                    // One line per message: the error's own line breaks and tabs are spaces.
                    let error: String = f
                        .error
                        .chars()
                        .map(|c| if c.is_control() { ' ' } else { c })
                        .collect();
                    out.push_str(&format!(
                        "{}\t{}\t{}\t{}\t{}\t{error}\n",
                        f.message_id,
                        f.session_id,
                        f.user_id,
                        f.attempts,
                        f.failed_at.to_rfc3339(),
                    ));
                }
                if page >= failed.pages {
                    break;
                }
            }
            emit(&out)
        }
        DeriverAction::Retry { scope, message_ids } => {
            let (database, scope) = scope.split(outer);
            honcho_domain::queue::check_retry_ids(message_ids.len())
                .map_err(|e| format!("--message-id: {e}"))?;
            let db = existing_database(database)?;
            let request = honcho_domain::queue::RetryRequest {
                scope,
                message_ids: (!message_ids.is_empty()).then_some(message_ids),
            };
            let retried = db.retry_failed(&request).map_err(|e| e.to_string())?;
            let s = if retried == 1 { "" } else { "s" };
            emit(&format!(
                "queued {retried} failed message{s} again (running deriver workers take them up)\n"
            ))
        }
    }
}

/// What a key reaches, for `keys create --help` and the README.
const KEY_SCOPES: &str = "What a key reaches (every id it names must be in the route's path):
  --app-id A                  everything in app A
  --user-id U                 user U's routes (its sessions, messages, metamessages, collections)
  --app-id A --user-id U      user U's routes in app A only (not the app's user list, not other users)
  --session-id S              session S's routes (its messages, chat, clone)
  --app-id A --session-id S   session S's routes in app A only
  --collection-id C           collection C's routes (its documents, queries)
  --user-id U --collection-id C, and any other combination: routes naming all of those ids";

#[derive(Subcommand)]
enum KeysCommand {
    /// Print the admin key
    #[command(after_help = vars::help(&[vars::SECRET, vars::LOGGING]))]
    Admin,
    /// Mint a key scoped to an app, user, session and/or collection, and record it (its id, ids,
    /// label and times; never the key) so that it can be listed and revoked. The ids must exist.
    #[command(after_help = format!(
        "{KEY_SCOPES}\n\n{}",
        vars::help(&[vars::SECRET, vars::DATABASE, vars::LOGGING])
    ))]
    Create {
        // Ids may start with `-` (their alphabet includes it).
        /// The app the key may use
        #[arg(long, allow_hyphen_values = true)]
        app_id: Option<String>,
        /// The user the key may use
        #[arg(long, allow_hyphen_values = true)]
        user_id: Option<String>,
        /// The session the key may use
        #[arg(long, allow_hyphen_values = true)]
        session_id: Option<String>,
        /// The collection the key may use
        #[arg(long, allow_hyphen_values = true)]
        collection_id: Option<String>,
        /// When the key stops working (ISO 8601, UTC when no offset is given)
        #[arg(long)]
        expires_at: Option<String>,
        /// Free text recorded with the key, to tell keys apart (1-100 characters)
        #[arg(long, allow_hyphen_values = true)]
        label: Option<String>,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// List the recorded keys (never the keys themselves), oldest first
    #[command(after_help = vars::help(&[vars::DATABASE, vars::LOGGING]))]
    List {
        /// Only the keys that name this app
        #[arg(long, allow_hyphen_values = true)]
        app_id: Option<String>,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Revoke a key, by its id or by its text; every server refuses it within seconds
    #[command(after_help = vars::help(&[vars::SECRET, vars::DATABASE, vars::LOGGING]))]
    Revoke {
        /// The key's id (from `keys list`), or the key itself (for keys minted before keys were
        /// recorded)
        #[arg(allow_hyphen_values = true)]
        key: String,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

/// The database that records keys: it must exist already (a SQLite file is not created here).
/// The database of an existing deployment, for a one-shot command (a SQLite file must exist).
fn existing_database(database: DatabaseArg) -> Result<honcho_db::Db, String> {
    let config = database.config()?;
    if let honcho_db::DatabaseUrl::Sqlite(path) = &config.database {
        if !path.exists() {
            return Err(format!(
                "DATABASE_URL {}: no such database (start the server once, or run `honcho migrate`)",
                config.database.redacted()
            ));
        }
    }
    honcho_server::open_for_command(&config)
}

/// `honcho import`: reads the source first (nothing is opened or written when it cannot be read),
/// then imports and prints the summary.
fn import(args: ImportArgs) -> Result<(), String> {
    let config = args.database.config()?;
    let embedder = if args.skip_embedding {
        None
    } else {
        Some(config.embedder()?)
    };
    let source = honcho_import::Source::new(&args.from, args.api_key.clone())?;
    let options = honcho_import::Options {
        apps: args.apps,
        concurrency: args.concurrency,
        dry_run: args.dry_run,
        overwrite: args.overwrite,
        derive: args.derive,
        embedder,
    };
    let tally = std::sync::Arc::new(honcho_import::Tally::new(args.dry_run));
    // A dry run into a SQLite file that does not exist yet judges against an empty database of its
    // own, so that it creates nothing at the target's path.
    let empty = match &config.database {
        honcho_db::DatabaseUrl::Sqlite(path) if args.dry_run && !path.exists() => {
            Some(std::env::temp_dir().join(format!("honcho-dry-run-{}.db", std::process::id())))
        }
        _ => None,
    };
    let judged = match &empty {
        Some(path) => Config {
            database: honcho_db::DatabaseUrl::Sqlite(path.clone()),
            ..config.clone()
        },
        None => config.clone(),
    };
    let ran = honcho_import::run(
        &source,
        || honcho_server::open_for_command(&judged),
        &options,
        &tally,
    );
    if let Some(path) = &empty {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    ran?;
    let title = if args.dry_run {
        "dry run (nothing written)"
    } else {
        "imported"
    };
    emit(&format!(
        "{title}: from {} into {}\n{tally}\n",
        source.base(),
        config.database.redacted()
    ))?;
    match tally.incomplete() {
        (0, 0) => Ok(()),
        (failed, conflicts) => Err(format!(
            "{failed} failed and {conflicts} conflicting records were not imported (reported above)"
        )),
    }
}

/// Shows an optional value in a listing.
fn or_dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

fn run_keys(command: KeysCommand) -> Result<(), String> {
    match command {
        KeysCommand::Admin => emit(&format!(
            "{}\n",
            honcho_server::config::signing_keys()?.admin_key()
        ))?,
        KeysCommand::Create {
            app_id,
            user_id,
            session_id,
            collection_id,
            expires_at,
            label,
            database,
        } => {
            let keys = honcho_server::config::signing_keys()?;
            let scope = honcho_domain::auth::KeyScope {
                app_id,
                user_id,
                session_id,
                collection_id,
            };
            use honcho_domain::auth::{KeyRecord, KeyRequestError};
            let record =
                KeyRecord::requested(scope, label, expires_at.as_deref(), chrono::Utc::now())
                    .map_err(|e| match e {
                        KeyRequestError::Expiry(raw) => format!(
                            "--expires-at: cannot read '{raw}' as an ISO 8601 date and time"
                        ),
                        KeyRequestError::Label(reason, _) => format!("--label: {reason}"),
                        KeyRequestError::NoId => "at least one of --app-id, --user-id, \
                                                  --session-id or --collection-id is needed"
                            .into(),
                    })?;
            let scope = &record.scope;
            let db = existing_database(database)?;
            if let Some(level) = db.check_key_scope(scope).map_err(|e| e.to_string())? {
                let id = match level {
                    "app" => &scope.app_id,
                    "user" => &scope.user_id,
                    "session" => &scope.session_id,
                    _ => &scope.collection_id,
                };
                return Err(format!(
                    "--{level}-id: no {level} with ID '{}'",
                    or_dash(id)
                ));
            }
            let key = keys.key_for(&record);
            db.record_key(&record).map_err(|e| e.to_string())?;
            eprintln!("honcho: key {} recorded", record.id);
            emit(&format!("{key}\n"))?;
        }
        KeysCommand::List { app_id, database } => {
            let db = existing_database(database)?;
            let mut out = String::from(
                "id\tapp_id\tuser_id\tsession_id\tcollection_id\tlabel\tcreated_at\texpires_at\trevoked_at\n",
            );
            let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or("-".to_string(), |t| t.to_rfc3339())
            };
            for page in 1.. {
                let req = honcho_domain::PageRequest {
                    page,
                    size: 100,
                    reverse: false,
                };
                let keys = db
                    .list_keys(app_id.as_deref(), req)
                    .map_err(|e| e.to_string())?;
                for k in &keys.items {
                    out.push_str(&format!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                        k.id,
                        or_dash(&k.scope.app_id),
                        or_dash(&k.scope.user_id),
                        or_dash(&k.scope.session_id),
                        or_dash(&k.scope.collection_id),
                        or_dash(&k.label),
                        k.created_at.to_rfc3339(),
                        time(k.expires_at),
                        time(k.revoked_at),
                    ));
                }
                if page >= keys.pages {
                    break;
                }
            }
            emit(&out)?;
        }
        KeysCommand::Revoke { key, database } => {
            let db = existing_database(database)?;
            let now = chrono::Utc::now();
            // A key id is a UUID; a key's text is a JWT, whose parts are separated by dots.
            let record = if key.contains('.') {
                let claims = honcho_server::config::signing_keys()?
                    .verify(key.trim())
                    .map_err(|_| {
                        "the key is not one of this server's keys (its signature does not match \
                     AUTH_JWT_SECRET)"
                            .to_string()
                    })?;
                claims.check_revocable().map_err(|e| e.to_string())?;
                db.revoke_presented(&claims, key.trim(), now)
            } else {
                db.revoke_key(&key, now)
            }
            .map_err(|e| e.to_string())?;
            emit(&format!(
                "revoked key {} (at {})\n",
                record.id,
                record.revoked_at.map_or(String::new(), |t| t.to_rfc3339())
            ))?;
        }
    }
    Ok(())
}

fn init_logging() -> Result<(), String> {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let settings = honcho_server::config::LogSettings::from_env()?;
    let filter = EnvFilter::try_new(&settings.filter)
        .map_err(|e| format!("RUST_LOG: '{}': {e}", settings.filter))?;
    // Colour only for a person at a terminal, and never with NO_COLOR set.
    let ansi = std::io::stderr().is_terminal() && settings.color;
    // Logs go to stderr: stdout carries what commands print (keys, the OpenAPI document).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if settings.json {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}

/// Writes `text` to stdout; a reader that went away (`honcho openapi | head`) is not an error.
fn emit(text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("stdout: {e}")),
        _ => Ok(()),
    }
}

/// jemalloc, which returns memory freed after a burst of load to the system (see `Cargo.toml`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// What the allocator holds, for `/metrics`: bytes the program has allocated, in pages it uses
/// (`active`), resident (its pages and its own bookkeeping), and mapped but given back (`retained`).
fn allocator_gauges() -> Vec<(&'static str, f64)> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // The figures are refreshed when the epoch advances.
    if epoch::advance().is_err() {
        return Vec::new();
    }
    [
        ("honcho_allocator_allocated_bytes", stats::allocated::read()),
        ("honcho_allocator_active_bytes", stats::active::read()),
        ("honcho_allocator_metadata_bytes", stats::metadata::read()),
        ("honcho_allocator_resident_bytes", stats::resident::read()),
        ("honcho_allocator_retained_bytes", stats::retained::read()),
    ]
    .into_iter()
    .filter_map(|(name, read)| read.ok().map(|v| (name, v as f64)))
    .collect()
}

fn main() -> ExitCode {
    if let Err(msg) = honcho_server::config::read_dotenv(std::path::Path::new(".env")) {
        eprintln!("honcho: {msg}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    if let Err(msg) = init_logging() {
        eprintln!("honcho: {msg}");
        return ExitCode::FAILURE;
    }
    let outcome = run(cli.command.unwrap_or(Command::Serve(cli.serve)));
    // No connection may still be opening while the process exits (libpq's and OpenSSL's exit-time
    // clean-up would pull the ground from under it).
    honcho_db::close(std::time::Duration::from_secs(10));
    match outcome {
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
        Command::Reembed { database, batch } => {
            let config = database.config()?;
            let embedder = config.embedder()?;
            let db = honcho_server::open_database(&config)?;
            let done = honcho_domain::embed::reembed(&db, embedder.as_ref(), batch, |documents| {
                tracing::info!(documents, "re-embedded")
            })?;
            let messages =
                honcho_domain::embed::embed_messages(&db, embedder.as_ref(), batch, |messages| {
                    tracing::info!(messages, "embedded")
                })?;
            println!(
                "re-embedded {done} documents and embedded {messages} messages with {}",
                embedder.id()
            );
            Ok(())
        }
        Command::Openapi => emit(&honcho_web::api_yaml()),
        Command::Import(args) => import(args),
        Command::Erase {
            database,
            app_id,
            user_id,
            session_id,
        } => {
            let db = existing_database(database)?;
            let (what, erased) = match session_id {
                None => (
                    format!("user {user_id} of app {app_id}"),
                    db.erase_user(&app_id, &user_id),
                ),
                Some(session_id) => {
                    let what = format!("session {session_id} of user {user_id} of app {app_id}");
                    let key = honcho_domain::SessionKey {
                        app_id,
                        user_id,
                        session_id,
                    };
                    (what, db.erase_session(&key))
                }
            };
            let erased = erased.map_err(|e| e.to_string())?;
            emit(&format!("erased {what}: {erased}\n"))
        }
        Command::Deriver(DeriverArgs {
            database,
            action: None,
        }) => run_deriver(database.config()?),
        Command::Deriver(DeriverArgs {
            database,
            action: Some(action),
        }) => run_deriver_action(action, database),
        Command::Migrate(database) => {
            let config = database.config()?;
            let (_, ran) = honcho_server::open_and_migrate(&config)?;
            let s = if ran == 1 { "" } else { "s" };
            match ran {
                0 => println!(
                    "database {} is up to date (no migration to apply)",
                    config.database.redacted()
                ),
                n => println!(
                    "database {}: applied {n} migration{s}; it is up to date",
                    config.database.redacted()
                ),
            }
            Ok(())
        }
        Command::Serve(ServeArgs {
            database,
            host,
            port,
        }) => {
            let mut config = database.config()?;
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
    honcho_domain::values::set_metadata_limits(config.metadata_limits);
    let keys = config.keys();
    let embedder = config.embedder()?;
    let models = config.models()?;
    let db = honcho_server::open_database(&config)?;
    honcho_server::check_embeddings(&db, embedder.as_ref())?;
    let addr = format!("{}:{}", config.host, config.port);
    let listener = TcpListener::bind(&addr).map_err(|e| format!("HOST/PORT {addr}: {e}"))?;
    let port = listener.local_addr().map_or(config.port, |a| a.port());
    let shown = match config.host.as_str() {
        "0.0.0.0" | "::" => format!("127.0.0.1:{port}"),
        host if host.contains(':') => format!("[{host}]:{port}"),
        host => format!("{host}:{port}"),
    };
    tracing::info!(
        address = %addr,
        database = %config.database.redacted(),
        backend = db.backend(),
        auth = if keys.is_some() { "on" } else { "off" },
        insights = %match &models {
            None => "off (no LLM configured: chat answers 405, nothing is queued)".to_string(),
            Some(m) => format!(
                "on (chat with {}; {} deriver worker(s) in this process)",
                m.dialectic.id(),
                config.deriver.workers
            ),
        },
        embedder = embedder.id(),
        "honcho listening on http://{shown}/ (docs: http://{shown}/docs/)"
    );
    if keys.is_some() {
        // The admin key itself is never printed or logged by the server.
        tracing::info!("authentication is on: `honcho keys admin` prints the admin key");
    }
    let deriver = match (&models, config.deriver.workers) {
        (Some(models), 1..) => Some(honcho_insights::Deriver::start(
            db.clone(),
            models.clone(),
            embedder.clone(),
            config.deriver.clone(),
        )),
        _ => None,
    };
    let message_embedder = honcho_server::give_messages_vectors(&db, &embedder);
    let state = honcho_web::AppState {
        db,
        auth: honcho_web::auth::AuthConfig {
            keys,
            revocations: Default::default(),
            metrics_token: config.metrics_token.clone(),
        },
        enqueue_for_deriver: models.is_some(),
        deriver_signal: deriver.as_ref().map(honcho_insights::Deriver::signal),
        models,
        embedder,
        retrieval: config.retrieval,
        tokens: std::sync::Arc::new(honcho_models::tokens::O200kCounter),
        body_timeout: std::time::Duration::from_secs(config.request_timeout_secs),
        cors_origins: config.cors_origins.clone(),
    };
    let http = honcho_server::HttpSettings {
        workers: config.workers(),
        max_connections: config.max_connections,
        request_timeout: std::time::Duration::from_secs(config.request_timeout_secs),
        shutdown_timeout: std::time::Duration::from_secs(config.shutdown_timeout_secs),
    };
    // The metrics recorder is installed before the first request.
    honcho_web::metrics();
    honcho_web::set_process_gauges(allocator_gauges);
    actix_web::rt::System::new().block_on(async move {
        let server =
            honcho_server::build_server(state, listener, http).map_err(|e| e.to_string())?;
        // SIGTERM/SIGINT: stop accepting, let in-flight requests finish (SHUTDOWN_TIMEOUT), exit 0.
        server.server.await.map_err(|e| e.to_string())?;
        if let Some(deriver) = deriver {
            deriver.stop(http.shutdown_timeout);
        }
        if let Some(worker) = message_embedder {
            worker.stop(http.shutdown_timeout);
        }
        tracing::info!("honcho stopped");
        Ok(())
    })
}

/// `honcho deriver`: workers only, until SIGTERM or SIGINT; then each finishes its item and gives
/// its session up.
fn run_deriver(config: Config) -> Result<(), String> {
    let embedder = config.embedder()?;
    let models = config.models()?.ok_or(
        "no language model is configured: set LLM_BASE_URL and LLM_MODEL (or LLM_PROVIDER=anthropic \
         with ANTHROPIC_API_KEY)",
    )?;
    if config.deriver.workers == 0 {
        return Err("DERIVER_WORKERS: must be above 0 for `honcho deriver`".into());
    }
    let db = honcho_server::open_database(&config)?;
    honcho_server::check_embeddings(&db, embedder.as_ref())?;
    tracing::info!(
        database = %config.database.redacted(),
        workers = config.deriver.workers,
        model = models.deriver.id(),
        embedder = embedder.id(),
        "honcho deriver running"
    );
    let _erasure_watch = honcho_db::ErasureWatch::start(db.clone());
    let deriver = honcho_insights::Deriver::start(db, models, embedder, config.deriver.clone());
    honcho_server::wait_for_stop_signal()?;
    tracing::info!("stopping: finishing current items");
    deriver.stop(std::time::Duration::from_secs(config.shutdown_timeout_secs));
    tracing::info!("honcho deriver stopped");
    Ok(())
}
