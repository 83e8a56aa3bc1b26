//! `Db`: the connection pool of one backend, and every store operation dispatched to that backend's
//! queries. Calls are blocking (diesel is synchronous): the web layer runs them off the async workers.

use crate::vectors::VectorCache;
use crate::{pg, sqlite, DatabaseUrl, DbError, DbResult};
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use honcho_domain::{
    App, Collection, CollectionKey, Document, Embedding, Message, Metadata, Name, NewMessage, Page,
    PageRequest, Session, SessionKey, Text, User,
};
use std::sync::Arc;
use std::time::Duration;

const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Key of the advisory lock that serialises migrations between replicas starting together.
const MIGRATION_LOCK: i64 = 0x686f_6e63_686f;

/// A pool of connections to one database, and the cache of collections' vectors.
#[derive(Clone)]
pub struct Db {
    pool: Backend,
    vectors: Arc<VectorCache>,
}

/// The pool of the engine the URL named.
#[derive(Clone)]
enum Backend {
    Postgres(Pool<ConnectionManager<PgConnection>>),
    Sqlite(Pool<ConnectionManager<SqliteConnection>>),
}

/// Bytes of vectors kept in memory per process (`VECTOR_CACHE_MB` overrides).
const VECTOR_CACHE_BYTES: usize = 256 * 1024 * 1024;

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.backend())
    }
}

#[derive(Debug)]
struct SqliteSetup;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqliteSetup {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        sqlite::dialect::prepare_connection(conn).map_err(diesel::r2d2::Error::QueryError)
    }
}

fn pool_builder<C: diesel::r2d2::R2D2Connection + 'static>(
    max_size: u32,
) -> diesel::r2d2::Builder<ConnectionManager<C>> {
    Pool::builder()
        .max_size(max_size)
        .min_idle(Some(1))
        // A broken connection surfaces as a query error (and r2d2 drops it); testing each checkout
        // would cost a round trip per request.
        .test_on_check_out(false)
        .connection_timeout(Duration::from_secs(10))
}

/// Runs `$call` with a pooled connection of whichever backend `$db` is.
macro_rules! dispatch {
    ($db:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match &$db.pool {
            Backend::Postgres(pool) => {
                let mut conn = pool.get()?;
                pg::queries::$f(&mut conn, $($arg),*)
            }
            Backend::Sqlite(pool) => {
                let mut conn = pool.get()?;
                sqlite::queries::$f(&mut conn, $($arg),*)
            }
        }
    };
}

impl Db {
    /// Opens a pool of at most `max_size` connections. Fails (never falls back to another engine)
    /// when the database cannot be reached.
    pub fn connect(url: &DatabaseUrl, max_size: u32) -> DbResult<Db> {
        match url {
            DatabaseUrl::Postgres(u) => {
                // A direct connection first: its error says why (pool errors only say "timed out").
                PgConnection::establish(u).map_err(|e| DbError::Connect(e.to_string()))?;
                let pool = pool_builder(max_size)
                    .build(ConnectionManager::new(u.clone()))
                    .map_err(|e| DbError::Connect(e.to_string()))?;
                Ok(Db::new(Backend::Postgres(pool)))
            }
            DatabaseUrl::Sqlite(path) => {
                let u = path.to_string_lossy().into_owned();
                let mut conn =
                    SqliteConnection::establish(&u).map_err(|e| DbError::Connect(e.to_string()))?;
                sqlite::dialect::prepare_connection(&mut conn)
                    .map_err(|e| DbError::Connect(e.to_string()))?;
                let pool = pool_builder(max_size)
                    .connection_customizer(Box::new(SqliteSetup))
                    .build(ConnectionManager::new(u))
                    .map_err(|e| DbError::Connect(e.to_string()))?;
                Ok(Db::new(Backend::Sqlite(pool)))
            }
        }
    }

    fn new(pool: Backend) -> Db {
        let budget = std::env::var("VECTOR_CACHE_MB")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .map_or(VECTOR_CACHE_BYTES, |mb| mb * 1024 * 1024);
        Db {
            pool,
            vectors: Arc::new(VectorCache::new(budget)),
        }
    }

    /// `"postgres"` or `"sqlite"`.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// Applies pending migrations; returns how many ran. Safe to call from several processes at once.
    pub fn migrate(&self) -> DbResult<usize> {
        let err = |e: Box<dyn std::error::Error + Send + Sync>| DbError::Migration(e.to_string());
        match &self.pool {
            Backend::Postgres(pool) => {
                let mut conn = pool.get()?;
                conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
                let ran = conn
                    .run_pending_migrations(PG_MIGRATIONS)
                    .map(|v| v.len())
                    .map_err(err);
                conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
                ran
            }
            Backend::Sqlite(pool) => {
                let mut conn = pool.get()?;
                conn.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|v| v.len())
                    .map_err(err)
            }
        }
    }

    /// Whether the database answers.
    pub fn ping(&self) -> DbResult<()> {
        dispatch!(self, ping())
    }

    // Apps

    pub fn create_app(&self, name: Name, metadata: Metadata) -> DbResult<App> {
        dispatch!(self, create_app(name, metadata))
    }
    pub fn get_app(&self, id: &str) -> DbResult<App> {
        dispatch!(self, get_app(id))
    }
    pub fn get_app_by_name(&self, name: &str) -> DbResult<App> {
        dispatch!(self, get_app_by_name(name))
    }
    pub fn get_or_create_app(&self, name: Name) -> DbResult<App> {
        dispatch!(self, get_or_create_app(name))
    }
    pub fn update_app(
        &self,
        id: &str,
        name: Option<Name>,
        metadata: Option<Metadata>,
    ) -> DbResult<App> {
        dispatch!(self, update_app(id, name, metadata))
    }
    pub fn list_apps(&self, filter: Option<&Metadata>, req: PageRequest) -> DbResult<Page<App>> {
        dispatch!(self, list_apps(filter, req))
    }

    // Users

    pub fn create_user(&self, app_id: &str, name: Name, metadata: Metadata) -> DbResult<User> {
        dispatch!(self, create_user(app_id, name, metadata))
    }
    pub fn get_user(&self, app_id: &str, user_id: &str) -> DbResult<User> {
        dispatch!(self, get_user(app_id, user_id))
    }
    pub fn get_user_by_name(&self, app_id: &str, name: &str) -> DbResult<User> {
        dispatch!(self, get_user_by_name(app_id, name))
    }
    pub fn get_or_create_user(&self, app_id: &str, name: Name) -> DbResult<User> {
        dispatch!(self, get_or_create_user(app_id, name))
    }
    pub fn update_user(
        &self,
        app_id: &str,
        user_id: &str,
        name: Option<Name>,
        metadata: Option<Metadata>,
    ) -> DbResult<User> {
        dispatch!(self, update_user(app_id, user_id, name, metadata))
    }
    pub fn list_users(
        &self,
        app_id: &str,
        filter: Option<&Metadata>,
        req: PageRequest,
    ) -> DbResult<Page<User>> {
        dispatch!(self, list_users(app_id, filter, req))
    }

    // Sessions

    pub fn create_session(
        &self,
        app_id: &str,
        user_id: &str,
        metadata: Metadata,
    ) -> DbResult<Session> {
        dispatch!(self, create_session(app_id, user_id, metadata))
    }
    pub fn get_session(&self, key: &SessionKey) -> DbResult<Session> {
        dispatch!(self, get_session(key))
    }
    pub fn list_sessions(
        &self,
        app_id: &str,
        user_id: &str,
        filter: Option<&Metadata>,
        only_active: bool,
        req: PageRequest,
    ) -> DbResult<Page<Session>> {
        dispatch!(
            self,
            list_sessions(app_id, user_id, filter, only_active, req)
        )
    }
    pub fn update_session(&self, key: &SessionKey, metadata: Metadata) -> DbResult<Session> {
        dispatch!(self, update_session(key, metadata))
    }
    pub fn delete_session(&self, key: &SessionKey) -> DbResult<()> {
        dispatch!(self, delete_session(key))
    }
    pub fn clone_session(
        &self,
        key: &SessionKey,
        cut_off: Option<&str>,
        deep_copy: bool,
    ) -> DbResult<Session> {
        dispatch!(self, clone_session(key, cut_off, deep_copy))
    }

    // Messages

    /// Stores a batch of messages atomically and in order; see the queries for the details.
    pub fn create_messages(
        &self,
        key: &SessionKey,
        batch: Vec<NewMessage>,
        enqueue: bool,
    ) -> DbResult<Vec<Message>> {
        dispatch!(self, create_messages(key, batch, enqueue))
    }
    pub fn get_message(&self, key: &SessionKey, id: &str) -> DbResult<Message> {
        dispatch!(self, get_message(key, id))
    }
    pub fn update_message(
        &self,
        key: &SessionKey,
        id: &str,
        metadata: Metadata,
    ) -> DbResult<Message> {
        dispatch!(self, update_message(key, id, metadata))
    }
    pub fn list_messages(
        &self,
        key: &SessionKey,
        filter: Option<&Metadata>,
        req: PageRequest,
    ) -> DbResult<Page<Message>> {
        dispatch!(self, list_messages(key, filter, req))
    }

    // Collections

    pub fn create_collection(
        &self,
        app_id: &str,
        user_id: &str,
        name: Name,
        metadata: Metadata,
    ) -> DbResult<Collection> {
        dispatch!(self, create_collection(app_id, user_id, name, metadata))
    }
    pub fn get_collection(&self, key: &CollectionKey) -> DbResult<Collection> {
        dispatch!(self, get_collection(key))
    }
    pub fn get_collection_by_name(
        &self,
        app_id: &str,
        user_id: &str,
        name: &str,
    ) -> DbResult<Collection> {
        dispatch!(self, get_collection_by_name(app_id, user_id, name))
    }
    pub fn list_collections(
        &self,
        app_id: &str,
        user_id: &str,
        filter: Option<&Metadata>,
        req: PageRequest,
    ) -> DbResult<Page<Collection>> {
        dispatch!(self, list_collections(app_id, user_id, filter, req))
    }
    pub fn update_collection(
        &self,
        key: &CollectionKey,
        name: Option<Name>,
        metadata: Option<Metadata>,
    ) -> DbResult<Collection> {
        dispatch!(self, update_collection(key, name, metadata))
    }
    pub fn delete_collection(&self, key: &CollectionKey) -> DbResult<()> {
        dispatch!(self, delete_collection(key))
    }

    // Documents

    /// C404 unless the collection exists.
    pub fn check_collection(&self, key: &CollectionKey) -> DbResult<()> {
        dispatch!(self, check_collection(key))
    }
    pub fn create_document(
        &self,
        key: &CollectionKey,
        content: Text,
        metadata: Metadata,
        embedding: Embedding,
    ) -> DbResult<Document> {
        dispatch!(self, create_document(key, content, metadata, embedding))
    }
    pub fn get_document(&self, key: &CollectionKey, id: &str) -> DbResult<Document> {
        dispatch!(self, get_document(key, id))
    }
    pub fn update_document(
        &self,
        key: &CollectionKey,
        id: &str,
        content: Option<(Text, Embedding)>,
        metadata: Option<Metadata>,
    ) -> DbResult<Document> {
        dispatch!(self, update_document(key, id, content, metadata))
    }
    pub fn delete_document(&self, key: &CollectionKey, id: &str) -> DbResult<()> {
        dispatch!(self, delete_document(key, id))
    }
    pub fn list_documents(
        &self,
        key: &CollectionKey,
        filter: Option<&Metadata>,
        req: PageRequest,
    ) -> DbResult<Page<Document>> {
        dispatch!(self, list_documents(key, filter, req))
    }
    /// `(embedder, dimensions, documents)` for every embedder that made stored vectors.
    pub fn embedders_in_use(&self) -> DbResult<Vec<(String, i32, i64)>> {
        dispatch!(self, embedders_in_use())
    }
    /// Documents (internal id, content) after `after` whose vector another embedder made.
    pub fn documents_to_reembed(
        &self,
        embedder: &str,
        dimensions: i32,
        after: i64,
        limit: i64,
    ) -> DbResult<Vec<(i64, String)>> {
        dispatch!(
            self,
            documents_to_reembed(embedder, dimensions, after, limit)
        )
    }
    /// Replaces one document's vector.
    pub fn set_embedding(&self, internal_id: i64, embedding: &Embedding) -> DbResult<()> {
        dispatch!(self, set_embedding(internal_id, embedding))
    }
    /// The `top` nearest documents to `query`; see the queries for the details.
    pub fn query_documents(
        &self,
        key: &CollectionKey,
        query: &Embedding,
        top: usize,
        filter: Option<&Metadata>,
    ) -> DbResult<Vec<Document>> {
        match filter {
            // A metadata filter is applied by the database while it reads the vectors.
            Some(_) => dispatch!(self, query_documents(key, query, top, filter)),
            None => dispatch!(self, query_documents_cached(key, query, top, &self.vectors)),
        }
    }

    // Metamessages

    pub fn create_metamessage(
        &self,
        app_id: &str,
        user_id: &str,
        new: honcho_domain::NewMetamessage,
    ) -> DbResult<honcho_domain::Metamessage> {
        dispatch!(self, create_metamessage(app_id, user_id, new))
    }
    pub fn get_metamessage(
        &self,
        app_id: &str,
        user_id: &str,
        id: &str,
    ) -> DbResult<honcho_domain::Metamessage> {
        dispatch!(self, get_metamessage(app_id, user_id, id))
    }
    pub fn update_metamessage(
        &self,
        app_id: &str,
        user_id: &str,
        id: &str,
        changes: honcho_domain::MetamessageChanges,
    ) -> DbResult<honcho_domain::Metamessage> {
        dispatch!(self, update_metamessage(app_id, user_id, id, changes))
    }
    pub fn list_metamessages(
        &self,
        app_id: &str,
        user_id: &str,
        filter: &honcho_domain::MetamessageFilter,
        req: PageRequest,
    ) -> DbResult<Page<honcho_domain::Metamessage>> {
        dispatch!(self, list_metamessages(app_id, user_id, filter, req))
    }
}
