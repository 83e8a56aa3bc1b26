//! The `honcho` server: reads its configuration, opens and migrates the database, and serves the API.

pub mod config;

use config::Config;
use honcho_db::Db;
use honcho_web::{build_app, AppState};
use std::net::TcpListener;

/// Opens the database named by the configuration and applies pending migrations (logging how many).
pub fn open_database(config: &Config) -> Result<Db, String> {
    let (db, ran) = open_and_migrate(config)?;
    if ran > 0 {
        tracing::info!(migrations = ran, "migrations applied");
    }
    Ok(db)
}

/// Opens the database for a one-shot command (its work has no deadline: a request's deadline is
/// the server's) and applies pending migrations.
pub fn open_for_command(config: &Config) -> Result<Db, String> {
    let options = honcho_db::DbOptions {
        statement_timeout: None,
        ..config.db_options()
    };
    let (db, ran) = open_and_migrate_with(config, options)?;
    if ran > 0 {
        tracing::info!(migrations = ran, "migrations applied");
    }
    Ok(db)
}

/// Opens the database and applies pending migrations; returns how many ran.
pub fn open_and_migrate(config: &Config) -> Result<(Db, usize), String> {
    open_and_migrate_with(config, config.db_options())
}

fn open_and_migrate_with(
    config: &Config,
    options: honcho_db::DbOptions,
) -> Result<(Db, usize), String> {
    let db = Db::open(&config.database, options)
        .map_err(|e| format!("DATABASE_URL {}: {e}", config.database.redacted()))?;
    let ran = db
        .migrate()
        .map_err(|e| format!("DATABASE_URL {}: {e}", config.database.redacted()))?;
    Ok((db, ran))
}

/// A bound, not yet running server.
pub struct Server {
    pub server: actix_web::dev::Server,
    pub port: u16,
    /// With authentication on: keeps this process's copy of the revoked keys fresh while it lives.
    pub revocation_watch: Option<honcho_web::auth::RevocationWatch>,
    /// Drops this process's cached search data when any process erased data.
    pub erasure_watch: honcho_db::ErasureWatch,
}

/// How the HTTP server treats connections.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    /// Worker threads.
    pub workers: usize,
    /// Open connections per worker at most.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (and, separately, its body: `AppState`).
    pub request_timeout: std::time::Duration,
    /// Time in-flight requests get to finish after SIGTERM/SIGINT before the process exits.
    pub shutdown_timeout: std::time::Duration,
}

/// Binds `listener` and prepares the HTTP server for `state`. The server runs when awaited.
pub fn build_server(
    state: AppState,
    listener: TcpListener,
    http: HttpSettings,
) -> std::io::Result<Server> {
    let port = listener.local_addr()?.port();
    let revocation_watch = state.auth.keys.as_ref().map(|_| {
        honcho_web::auth::RevocationWatch::start(state.db.clone(), state.auth.revocations.clone())
    });
    let erasure_watch = honcho_db::ErasureWatch::start(state.db.clone());
    let server = actix_web::HttpServer::new(move || build_app(state.clone()))
        .workers(http.workers)
        .max_connections(http.max_connections)
        .client_request_timeout(http.request_timeout)
        .client_disconnect_timeout(std::time::Duration::from_secs(1))
        .shutdown_timeout(http.shutdown_timeout.as_secs())
        .listen(listener)?
        .run();
    Ok(Server {
        server,
        port,
        revocation_watch,
        erasure_watch,
    })
}

/// Warns when stored vectors were made by another embedder than the configured one: queries only
/// compare like with like, so those documents are invisible to search until re-embedded.
pub fn check_embeddings(
    db: &Db,
    embedder: &dyn honcho_domain::embed::Embedder,
) -> Result<(), String> {
    let in_use = db.embedders_in_use().map_err(|e| e.to_string())?;
    for (id, dimensions, count) in in_use {
        if id != embedder.id() || dimensions as usize != embedder.dimensions() {
            tracing::warn!(
                documents = count,
                stored = %format!("{id} ({dimensions} dimensions)"),
                configured = %format!("{} ({} dimensions)", embedder.id(), embedder.dimensions()),
                "documents were embedded by another embedder and are not searched; run `honcho reembed` \
                 (or set EMBEDDING_PROVIDER back)"
            );
        }
    }
    Ok(())
}

/// Gives messages, which are stored without a vector, their vectors: an in-process embedder
/// computes them when this process reads messages for search; for a remote one a worker embeds and
/// stores them after the writes (returned, to be stopped at shutdown).
pub fn give_messages_vectors(
    db: &Db,
    embedder: &std::sync::Arc<dyn honcho_domain::embed::Embedder>,
) -> Option<honcho_insights::embedding::MessageEmbedder> {
    if embedder.remote() {
        return Some(honcho_insights::embedding::MessageEmbedder::start(
            db.clone(),
            embedder.clone(),
        ));
    }
    db.embed_messages_with(embedder.clone());
    None
}

/// Blocks until SIGTERM or SIGINT.
pub fn wait_for_stop_signal() -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
        Ok(())
    })
}
