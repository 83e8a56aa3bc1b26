//! The `honcho` server: reads its configuration, opens and migrates the database, and serves the API.

pub mod config;

use config::Config;
use honcho_db::Db;
use honcho_web::{build_app, AppState};
use std::net::TcpListener;

/// Opens the database named by the configuration and applies pending migrations.
pub fn open_database(config: &Config) -> Result<Db, String> {
    let db = Db::connect(&config.database, config.pool_size())
        .map_err(|e| format!("DATABASE_URL {}: {e}", config.database.redacted()))?;
    let ran = db
        .migrate()
        .map_err(|e| format!("DATABASE_URL {}: {e}", config.database.redacted()))?;
    if ran > 0 {
        tracing::info!(migrations = ran, "migrations applied");
    }
    Ok(db)
}

/// A bound, not yet running server.
pub struct Server {
    pub server: actix_web::dev::Server,
    pub port: u16,
}

/// Refuses to serve a route that has no auth scope.
pub fn check_routes() -> Result<(), String> {
    let problems = honcho_web::auth::unscoped_routes(&honcho_web::api_doc());
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "routes without an auth scope: {}",
            problems.join("; ")
        ))
    }
}

/// Binds `listener` and prepares the HTTP server for `state`. The server runs when awaited.
pub fn build_server(
    state: AppState,
    listener: TcpListener,
    workers: usize,
) -> std::io::Result<Server> {
    let port = listener.local_addr()?.port();
    let server = actix_web::HttpServer::new(move || build_app(state.clone()))
        .workers(workers)
        .listen(listener)?
        .run();
    Ok(Server { server, port })
}
