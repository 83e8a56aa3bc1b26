//! `Db`: the connection pool of one backend, and every store operation dispatched to that backend's
//! queries. Calls are blocking (diesel is synchronous): the web layer runs them off the async workers.

use crate::corpus::{CollectionCache, UserCache};
use crate::pool::{Liveness, PgManager, SqliteManager};
use crate::{pg, sqlite, DatabaseUrl, DbError, DbResult};
use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, ManageConnection, Pool};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use honcho_domain::auth::{Claims, KeyRecord, KeyScope};
use honcho_domain::erasure::{Erased, ErasureScope};
use honcho_domain::import::{ImportMode, Outcome};
use honcho_domain::insights::{Completion, Conversation, Derived, ItemPolicy, Lease, WorkItem};
use honcho_domain::{
    App, Collection, CollectionKey, Document, Embedding, Message, Metadata, Metamessage, Name,
    NewMessage, Page, PageRequest, Session, SessionKey, Text, User,
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
    liveness: Arc<Liveness>,
    vectors: Arc<CollectionCache>,
    messages: Arc<UserCache>,
    /// SQLite: how long a store call may run (PostgreSQL's connections carry their own limit).
    statement_timeout: Option<Duration>,
}

/// The pool of the engine the URL named.
#[derive(Clone)]
enum Backend {
    Postgres(Pool<PgManager>),
    Sqlite(Pool<SqliteManager>, Arc<WalBound>),
}

/// A pool's connections, for metrics.
#[derive(Debug, Clone, Copy)]
pub struct PoolState {
    pub connections: u32,
    pub idle: u32,
    pub max_size: u32,
}

/// How SQLite makes a commit durable (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SqliteSync {
    /// An acknowledged write survives a power loss (`FULL`): the default.
    #[default]
    Full,
    /// An acknowledged write survives a crash of the process, not of the machine (`NORMAL`).
    Normal,
}

/// Settings of a store.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Connections at most.
    pub max_size: u32,
    /// SQLite only: durability of commits.
    pub sqlite_sync: SqliteSync,
    /// SQLite only: the write-ahead log is checkpointed and truncated when it grows past this.
    pub sqlite_wal_limit: u64,
    /// Bytes of collection vectors and postings kept in memory.
    pub vector_cache_bytes: usize,
    /// Bytes of users' message vectors and postings (message search) kept in memory.
    pub message_cache_bytes: usize,
    /// The longest a statement may run (PostgreSQL's `statement_timeout`), and on SQLite a whole
    /// store call (its statements are interrupted by a progress handler); `None` for no limit. The
    /// server sets its request timeout, so a request's database work ends with its deadline.
    pub statement_timeout: Option<Duration>,
}

/// MiB of write-ahead log past which SQLite's log is checkpointed and truncated, by default.
pub const SQLITE_WAL_LIMIT_MB_DEFAULT: u64 = 64;
/// MiB of cached collection vectors and postings, by default.
pub const VECTOR_CACHE_MB_DEFAULT: usize = 256;
/// MiB of cached users' message vectors and postings, by default.
pub const MESSAGE_CACHE_MB_DEFAULT: usize = 256;

const MIB: usize = 1024 * 1024;

impl DbOptions {
    /// Defaults (durable commits, the default log limit and cache sizes, no statement timeout)
    /// with `max_size` connections.
    pub fn with_max_size(max_size: u32) -> DbOptions {
        DbOptions {
            max_size,
            sqlite_sync: SqliteSync::Full,
            sqlite_wal_limit: SQLITE_WAL_LIMIT_MB_DEFAULT * MIB as u64,
            vector_cache_bytes: VECTOR_CACHE_MB_DEFAULT * MIB,
            message_cache_bytes: MESSAGE_CACHE_MB_DEFAULT * MIB,
            statement_timeout: None,
        }
    }
}

/// Keeps SQLite's write-ahead log bounded. SQLite's own (passive) checkpoints cannot reset the log
/// while readers and writers keep it in use, so after a store call the log's size is read (one
/// `stat`, at most every [`WAL_LOOK_EVERY`], by one caller) and, past the limit, a truncating
/// checkpoint runs: it waits for the current writer and readers, copies the log into the database
/// and empties it.
#[derive(Debug)]
struct WalBound {
    wal: std::path::PathBuf,
    limit: u64,
    /// When the bound was set up; `last_look` counts microseconds from here.
    since: std::time::Instant,
    last_look: std::sync::atomic::AtomicU64,
}

/// Shortest time between two looks at the log's size: reads (most calls) do not grow it, and a
/// millisecond of writes adds little to it.
const WAL_LOOK_EVERY: Duration = Duration::from_millis(1);

impl WalBound {
    fn new(wal: std::path::PathBuf, limit: u64) -> WalBound {
        WalBound {
            wal,
            limit,
            since: std::time::Instant::now(),
            last_look: Default::default(),
        }
    }

    /// Whether this caller should look at the log now (one caller per interval).
    fn due(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.since.elapsed().as_micros() as u64;
        let last = self.last_look.load(Relaxed);
        now.saturating_sub(last) >= WAL_LOOK_EVERY.as_micros() as u64
            && self
                .last_look
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
    }
}

/// Attempts at a truncating checkpoint before leaving it to a later call.
const CHECKPOINT_TRIES: usize = 100;

/// Runs a truncating checkpoint; `false` when another checkpoint was running (busy).
fn checkpoint_truncate(conn: &mut SqliteConnection) -> diesel::QueryResult<bool> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Checkpoint {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        busy: i32,
    }
    let done =
        diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").get_result::<Checkpoint>(conn)?;
    Ok(done.busy == 0)
}

impl WalBound {
    fn after_call(&self, conn: &mut SqliteConnection) {
        if !self.due() {
            return;
        }
        let size = std::fs::metadata(&self.wal).map_or(0, |m| m.len());
        if size <= self.limit {
            return;
        }
        // Writers' own (passive) checkpoints hold the checkpoint lock briefly and make ours give up
        // at once (busy); try again for a while. Once it has the lock, ours waits for the current
        // writer and readers through the busy timeout.
        for _ in 0..CHECKPOINT_TRIES {
            match checkpoint_truncate(conn) {
                Ok(true) => return,
                Ok(false) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => {
                    tracing::warn!(error = %e, wal_bytes = size, "checkpoint of the write-ahead log failed");
                    return;
                }
            }
        }
        tracing::warn!(
            wal_bytes = size,
            "the write-ahead log could not be checkpointed; trying again later"
        );
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.backend())
    }
}

#[derive(Debug)]
struct SqliteSetup(DbOptions);

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqliteSetup {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        sqlite::dialect::prepare_connection(conn, &self.0).map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Why a SQLite database could not be opened, naming the path and the cause SQLite's message
/// ("unable to open database file") leaves out: a missing directory, or one that cannot be
/// written (the write-ahead log lives beside the file).
fn sqlite_open_problem(path: &std::path::Path, sqlite: String) -> String {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !dir.is_dir() {
        return format!(
            "cannot open {}: the directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    let probe = dir.join(format!(".honcho-write-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Err(e) => format!(
            "cannot open {}: the directory {} cannot be written: {e}",
            path.display(),
            dir.display()
        ),
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            format!("cannot open {}: {sqlite}", path.display())
        }
    }
}

fn pool_builder<M: ManageConnection>(max_size: u32) -> diesel::r2d2::Builder<M> {
    Pool::builder()
        // Failed connection attempts surface as failed checkouts, which are logged once per outage
        // (`Liveness`); the pool's own handler would log every attempt.
        .error_handler(Box::new(diesel::r2d2::NopErrorHandler))
        .max_size(max_size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(10))
}

/// Runs `$call` with a pooled connection of whichever backend `$db` is. On PostgreSQL a call may run
/// again on another connection when the first was found dead before doing anything, so its
/// arguments are passed as clones there (references and copies cost nothing; owned values are
/// copied); SQLite's calls take them as they are.
macro_rules! dispatch {
    ($db:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match &$db.pool {
            Backend::Postgres(pool) => {
                // A connection found dead at the call's first statement, which could not have
                // changed anything, is dropped and the call runs on another (each pooled
                // connection may have been killed while idle, so at most the pool's size again).
                let mut replaced = 0;
                loop {
                    let mut conn = $db.liveness.checkout(pool)?;
                    conn.begin_call();
                    // Owned arguments are cloned: the call may run again.
                    let result =
                        pg::queries::$f(&mut conn, $(::std::clone::Clone::clone(&$arg)),*);
                    match &result {
                        Err(e) => {
                            conn.note(e);
                            if conn.replaceable(e) && replaced < pool.max_size() {
                                replaced += 1;
                                continue;
                            }
                            $db.liveness.note(e);
                        }
                        Ok(_) => $db.liveness.served(),
                    }
                    break result;
                }
            }
            Backend::Sqlite(pool, wal) => {
                let mut conn = $db.liveness.checkout(pool)?;
                let deadline = sqlite::dialect::Deadline::within($db.statement_timeout);
                let result = deadline.settle(sqlite::queries::$f(&mut conn, $($arg),*));
                match &result {
                    Err(e) => $db.liveness.note(e),
                    Ok(_) => $db.liveness.served(),
                }
                wal.after_call(&mut conn);
                result
            }
        }
    };
}

/// Store calls that are only their query run on a pooled connection (`dispatch!`): each
/// `fn name(&self, arg: Type, ...) -> Result;` becomes a method calling the backend's
/// `queries::name(conn, arg, ...)`. A new query of that kind is its function in `queries` and one
/// line here.
macro_rules! forward {
    ($($(#[$attr:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty;)*) => {
        $(
            $(#[$attr])*
            pub fn $name(&self $(, $arg: $ty)*) -> $ret {
                dispatch!(self, $name($($arg),*))
            }
        )*
    };
}

impl Db {
    /// Opens a pool of at most `max_size` connections with the default settings. Fails (never
    /// falls back to another engine) when the database cannot be reached.
    pub fn connect(url: &DatabaseUrl, max_size: u32) -> DbResult<Db> {
        Db::open(url, DbOptions::with_max_size(max_size))
    }

    /// Opens a pool with `options`.
    pub fn open(url: &DatabaseUrl, options: DbOptions) -> DbResult<Db> {
        let max_size = options.max_size;
        match url {
            DatabaseUrl::Postgres(u) => {
                // A direct connection first: its error says why (pool errors only say "timed out").
                PgConnection::establish(u).map_err(|e| DbError::Connect(e.to_string()))?;
                // Connections idle for a while are checked before use (see `pool`); a check on
                // every checkout would cost a round trip per request.
                let pool = pool_builder(max_size)
                    .test_on_check_out(true)
                    .build(PgManager::new(u.clone(), options.statement_timeout))
                    .map_err(|e| DbError::Connect(e.to_string()))?;
                Ok(Db::new(Backend::Postgres(pool), &options))
            }
            DatabaseUrl::Sqlite(path) => {
                let u = path.to_string_lossy().into_owned();
                let opened = SqliteConnection::establish(&u)
                    .map_err(|e| e.to_string())
                    .and_then(|mut conn| {
                        sqlite::dialect::prepare_connection(&mut conn, &options)
                            .map(|()| conn)
                            .map_err(|e| e.to_string())
                    });
                let _conn = opened.map_err(|e| DbError::Connect(sqlite_open_problem(path, e)))?;
                let wal = Arc::new(WalBound::new(
                    std::path::PathBuf::from(format!("{u}-wal")),
                    options.sqlite_wal_limit,
                ));
                // A file has no connection to lose: no check on checkout.
                let pool = pool_builder(max_size)
                    .test_on_check_out(false)
                    .connection_customizer(Box::new(SqliteSetup(options.clone())))
                    .build(SqliteManager(ConnectionManager::new(u)))
                    .map_err(|e| DbError::Connect(e.to_string()))?;
                Ok(Db::new(Backend::Sqlite(pool, wal), &options))
            }
        }
    }

    fn new(pool: Backend, options: &DbOptions) -> Db {
        Db {
            pool,
            liveness: Arc::default(),
            vectors: Arc::new(CollectionCache::new(
                options.vector_cache_bytes,
                "honcho_vector_cache_bytes",
            )),
            messages: Arc::new(UserCache::new(
                options.message_cache_bytes,
                "honcho_message_cache_bytes",
            )),
            statement_timeout: options.statement_timeout,
        }
    }

    /// Connections open, idle and allowed, for metrics.
    pub fn pool_state(&self) -> PoolState {
        let (state, max_size) = match &self.pool {
            Backend::Postgres(pool) => (pool.state(), pool.max_size()),
            Backend::Sqlite(pool, _) => (pool.state(), pool.max_size()),
        };
        PoolState {
            connections: state.connections,
            idle: state.idle_connections,
            max_size,
        }
    }

    /// `"postgres"` or `"sqlite"`.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(..) => "sqlite",
        }
    }

    /// Applies pending migrations; returns how many ran. Safe to call from several processes at once.
    pub fn migrate(&self) -> DbResult<usize> {
        let err = |e: Box<dyn std::error::Error + Send + Sync>| DbError::Migration(e.to_string());
        match &self.pool {
            Backend::Postgres(pool) => {
                let mut conn = pool.get()?;
                // Migrations (and waiting for another replica's) may take longer than a request.
                conn.batch_execute("SET statement_timeout = 0")?;
                conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
                let ran = conn
                    .run_pending_migrations(PG_MIGRATIONS)
                    .map(|v| v.len())
                    .map_err(err);
                conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
                conn.restore_statement_timeout()?;
                ran
            }
            Backend::Sqlite(pool, _) => {
                let mut conn = pool.get()?;
                conn.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|v| v.len())
                    .map_err(err)
            }
        }
    }

    forward! {
        /// Whether the database answers.
        fn ping(&self) -> DbResult<()>;
    }

    // Apps

    forward! {
        fn create_app(&self, name: Name, metadata: Metadata) -> DbResult<App>;
        fn get_app(&self, id: &str) -> DbResult<App>;
        fn get_app_by_name(&self, name: &str) -> DbResult<App>;
        fn get_or_create_app(&self, name: Name) -> DbResult<App>;
        fn update_app(
            &self,
            id: &str,
            name: Option<Name>,
            metadata: Option<Metadata>,
        ) -> DbResult<App>;
        fn list_apps(&self, filter: Option<&Metadata>, req: PageRequest) -> DbResult<Page<App>>;
    }

    // Users

    forward! {
        fn create_user(&self, app_id: &str, name: Name, metadata: Metadata) -> DbResult<User>;
        fn get_user(&self, app_id: &str, user_id: &str) -> DbResult<User>;
        fn get_user_by_name(&self, app_id: &str, name: &str) -> DbResult<User>;
        fn get_or_create_user(&self, app_id: &str, name: Name) -> DbResult<User>;
        fn update_user(
            &self,
            app_id: &str,
            user_id: &str,
            name: Option<Name>,
            metadata: Option<Metadata>,
        ) -> DbResult<User>;
        fn list_users(
            &self,
            app_id: &str,
            filter: Option<&Metadata>,
            req: PageRequest,
        ) -> DbResult<Page<User>>;
    }

    // Sessions

    forward! {
        fn create_session(
            &self,
            app_id: &str,
            user_id: &str,
            metadata: Metadata,
        ) -> DbResult<Session>;
        fn get_session(&self, key: &SessionKey) -> DbResult<Session>;
        fn list_sessions(
            &self,
            app_id: &str,
            user_id: &str,
            filter: Option<&Metadata>,
            only_active: bool,
            req: PageRequest,
        ) -> DbResult<Page<Session>>;
        fn update_session(&self, key: &SessionKey, metadata: Metadata) -> DbResult<Session>;
        fn delete_session(&self, key: &SessionKey) -> DbResult<()>;
        fn clone_session(
            &self,
            key: &SessionKey,
            cut_off: Option<&str>,
            deep_copy: bool,
        ) -> DbResult<Session>;
    }

    // Messages

    forward! {
        /// Stores a batch of messages atomically and in order; see the queries for the details.
        fn create_messages(
            &self,
            key: &SessionKey,
            batch: Vec<NewMessage>,
            enqueue: bool,
        ) -> DbResult<Vec<Message>>;
        fn get_message(&self, key: &SessionKey, id: &str) -> DbResult<Message>;
        fn update_message(
            &self,
            key: &SessionKey,
            id: &str,
            metadata: Metadata,
        ) -> DbResult<Message>;
        fn list_messages(
            &self,
            key: &SessionKey,
            filter: Option<&Metadata>,
            req: PageRequest,
        ) -> DbResult<Page<Message>>;
    }

    // Collections

    forward! {
        fn create_collection(
            &self,
            app_id: &str,
            user_id: &str,
            name: Name,
            metadata: Metadata,
        ) -> DbResult<Collection>;
        fn get_collection(&self, key: &CollectionKey) -> DbResult<Collection>;
        fn get_collection_by_name(
            &self,
            app_id: &str,
            user_id: &str,
            name: &str,
        ) -> DbResult<Collection>;
        fn list_collections(
            &self,
            app_id: &str,
            user_id: &str,
            filter: Option<&Metadata>,
            req: PageRequest,
        ) -> DbResult<Page<Collection>>;
        fn update_collection(
            &self,
            key: &CollectionKey,
            name: Option<Name>,
            metadata: Option<Metadata>,
        ) -> DbResult<Collection>;
        fn delete_collection(&self, key: &CollectionKey) -> DbResult<()>;
    }

    // Documents

    forward! {
        /// C404 unless the collection exists.
        fn check_collection(&self, key: &CollectionKey) -> DbResult<()>;
        fn create_document(
            &self,
            key: &CollectionKey,
            content: Text,
            metadata: Metadata,
            embedding: Embedding,
        ) -> DbResult<Document>;
        fn get_document(&self, key: &CollectionKey, id: &str) -> DbResult<Document>;
        fn update_document(
            &self,
            key: &CollectionKey,
            id: &str,
            content: Option<(Text, Embedding)>,
            metadata: Option<Metadata>,
        ) -> DbResult<Document>;
        fn delete_document(&self, key: &CollectionKey, id: &str) -> DbResult<()>;
        fn list_documents(
            &self,
            key: &CollectionKey,
            filter: Option<&Metadata>,
            req: PageRequest,
        ) -> DbResult<Page<Document>>;
        /// `(embedder, dimensions, documents)` for every embedder that made stored vectors.
        fn embedders_in_use(&self) -> DbResult<Vec<(String, i32, i64)>>;
    }
    /// The `top` documents best ranked for `search`; see the query for the details.
    pub fn query_documents(
        &self,
        key: &CollectionKey,
        search: &honcho_domain::retrieval::Search,
        top: usize,
        filter: Option<&Metadata>,
    ) -> DbResult<honcho_domain::retrieval::Ranked<Document>> {
        dispatch!(
            self,
            query_documents(key, search, top, filter, &*self.vectors)
        )
    }

    /// Messages stored without a vector get theirs from `embedder` (which runs in process) when
    /// this process reads them for search. Set once, at start-up; without it they wait for a
    /// stored vector (a remote embedder's worker, or `honcho reembed`).
    pub fn embed_messages_with(&self, embedder: Arc<dyn honcho_domain::embed::Embedder>) {
        self.messages.fill_with(embedder);
    }

    /// The `top` messages of the user best ranked for `search` within `scope`, and the user's
    /// name; see the query.
    pub fn query_messages(
        &self,
        app_id: &str,
        user_id: &str,
        scope: &honcho_domain::retrieval::MessageScope,
        search: &honcho_domain::retrieval::Search,
        top: usize,
    ) -> DbResult<(honcho_domain::retrieval::Ranked<Message>, String)> {
        dispatch!(
            self,
            query_messages(&*self.messages, app_id, user_id, scope, search, top)
        )
    }

    /// The user's name as this process's copy of their messages knows it, without asking the
    /// database (`None` when no copy is held; it may be out of date, which `query_messages` tells).
    pub fn message_speaker(&self, user_id: &str) -> Option<String> {
        self.messages.speaker(user_id)
    }

    /// The session's context within a token budget; see the query.
    pub fn session_context(
        &self,
        key: &SessionKey,
        request: &honcho_domain::context::ContextRequest,
        facts: Option<&honcho_domain::retrieval::Search>,
        counter: &dyn honcho_domain::context::TokenCounter,
    ) -> DbResult<honcho_domain::context::SessionContext> {
        dispatch!(
            self,
            session_context(&*self.vectors, key, request, facts, counter)
        )
    }

    // Metamessages

    forward! {
        fn create_metamessage(
            &self,
            app_id: &str,
            user_id: &str,
            new: honcho_domain::NewMetamessage,
        ) -> DbResult<honcho_domain::Metamessage>;
        fn get_metamessage(
            &self,
            app_id: &str,
            user_id: &str,
            id: &str,
        ) -> DbResult<honcho_domain::Metamessage>;
        fn update_metamessage(
            &self,
            app_id: &str,
            user_id: &str,
            id: &str,
            changes: honcho_domain::MetamessageChanges,
        ) -> DbResult<honcho_domain::Metamessage>;
        fn list_metamessages(
            &self,
            app_id: &str,
            user_id: &str,
            filter: &honcho_domain::MetamessageFilter,
            req: PageRequest,
        ) -> DbResult<Page<honcho_domain::Metamessage>>;
    }

    // API keys

    forward! {
        fn check_key_scope(&self, scope: &KeyScope) -> DbResult<Option<&'static str>>;
        fn record_key(&self, record: &KeyRecord) -> DbResult<()>;
        fn list_keys(&self, app_id: Option<&str>, req: PageRequest) -> DbResult<Page<KeyRecord>>;
        fn revoke_key(&self, id: &str, now: DateTime<Utc>) -> DbResult<KeyRecord>;
        fn revoke_presented(
            &self,
            claims: &Claims,
            token: &str,
            now: DateTime<Utc>,
        ) -> DbResult<KeyRecord>;
        fn revocation_mark(&self) -> DbResult<i64>;
        fn revoked_keys(&self) -> DbResult<Vec<(String, Option<String>)>>;
    }

    // Import: another server's records with their ids and times (see `queries::import`)

    forward! {
        fn import_app(&self, app: &App, mode: ImportMode) -> DbResult<Outcome>;
        fn import_user(&self, user: &User, mode: ImportMode) -> DbResult<Outcome>;
        fn import_session(&self, session: &Session, mode: ImportMode) -> DbResult<Outcome>;
        fn import_collection(&self, c: &Collection, mode: ImportMode) -> DbResult<Outcome>;
        /// One outcome per message, in order; `enqueue` queues the written ones for the deriver.
        fn import_messages(
            &self,
            key: &SessionKey,
            batch: &[Message],
            mode: ImportMode,
            enqueue: bool,
        ) -> DbResult<Vec<Outcome>>;
        fn import_metamessages(
            &self,
            app_id: &str,
            user_id: &str,
            batch: &[Metamessage],
            mode: ImportMode,
        ) -> DbResult<Vec<Outcome>>;
    }
    pub fn import_documents(
        &self,
        key: &CollectionKey,
        batch: &[(Document, Option<Embedding>)],
        mode: ImportMode,
    ) -> DbResult<Vec<Outcome>> {
        dispatch!(self, import_documents(key, batch, mode))
    }

    // Erasure

    /// Erases the user and everything stored about it (see the query), in one transaction; then
    /// this process drops its in-memory copies of search data (other processes drop theirs within
    /// a second: [`ErasureWatch`]) and, on SQLite, the write-ahead log is checkpointed and emptied
    /// so that the erased text is in neither file. Logged and counted (counts only).
    pub fn erase_user(&self, app_id: &str, user_id: &str) -> DbResult<Erased> {
        let erased = dispatch!(self, erase_user(app_id, user_id, honcho_domain::now()))?;
        self.after_erasure(ErasureScope::User, &erased);
        tracing::info!(app_id, user_id, erased = %erased, "erased a user");
        Ok(erased)
    }

    /// Erases the session and what was derived from its messages (see the query); as
    /// [`Db::erase_user`] after it.
    pub fn erase_session(&self, key: &SessionKey) -> DbResult<Erased> {
        let erased = dispatch!(self, erase_session(key, honcho_domain::now()))?;
        self.after_erasure(ErasureScope::Session, &erased);
        tracing::info!(
            app_id = %key.app_id,
            user_id = %key.user_id,
            session_id = %key.session_id,
            erased = %erased,
            "erased a session"
        );
        Ok(erased)
    }

    forward! {
        /// How many erasures the database recorded (it changes with every erasure).
        fn erasure_mark(&self) -> DbResult<i64>;
    }

    /// Drops every in-memory copy of collections' and users' search data.
    pub fn forget_cached(&self) {
        self.vectors.clear();
        self.messages.copies.clear();
    }

    fn after_erasure(&self, scope: ErasureScope, erased: &Erased) {
        self.forget_cached();
        metrics::counter!("honcho_erasures_total", "scope" => scope.as_str()).increment(1);
        for (kind, n) in erased.counts() {
            metrics::counter!("honcho_erased_rows_total", "kind" => kind).increment(n);
        }
        if let Backend::Sqlite(pool, _) = &self.pool {
            let emptied = pool.get().map_err(|e| e.to_string()).and_then(|mut conn| {
                for _ in 0..CHECKPOINT_TRIES {
                    match checkpoint_truncate(&mut conn) {
                        Ok(true) => return Ok(true),
                        Ok(false) => std::thread::sleep(Duration::from_millis(2)),
                        Err(e) => return Err(e.to_string()),
                    }
                }
                Ok(false)
            });
            if !matches!(emptied, Ok(true)) {
                tracing::warn!(
                    error = ?emptied.err(),
                    "after an erasure the write-ahead log could not be emptied: erased text stays \
                     in it until its next checkpoint"
                );
            }
        }
    }

    // Deriver queue

    forward! {
        /// The whole queue's open and failed items (not the done ones).
        fn queue_depth(&self) -> DbResult<honcho_domain::queue::QueueCounts>;
        /// The failed items of `scope`.
        fn failed_items(
            &self,
            scope: &honcho_domain::queue::FailedScope,
            req: PageRequest,
        ) -> DbResult<Page<honcho_domain::queue::FailedItem>>;
        /// Puts failed items back to pending; see the query.
        fn retry_failed(&self, request: &honcho_domain::queue::RetryRequest) -> DbResult<u64>;
        /// Items by status within `scope`.
        fn queue_counts(
            &self,
            scope: &honcho_domain::queue::QueueScope,
        ) -> DbResult<honcho_domain::queue::QueueCounts>;
    }
}

impl honcho_domain::embed::ReembedStore for Db {
    type Error = DbError;

    fn documents_to_reembed(
        &self,
        embedder: &str,
        dimensions: usize,
        after: i64,
        limit: usize,
    ) -> DbResult<Vec<(i64, String)>> {
        let (dimensions, limit) = (dimensions as i32, limit as i64);
        dispatch!(
            self,
            documents_to_reembed(embedder, dimensions, after, limit)
        )
    }
    fn set_embedding(&self, internal_id: i64, embedding: &Embedding) -> DbResult<()> {
        dispatch!(self, set_embedding(internal_id, embedding))
    }
    fn messages_to_embed(
        &self,
        missing: bool,
        other_than: Option<(&str, usize)>,
        after: i64,
        limit: usize,
    ) -> DbResult<Vec<(i64, String)>> {
        let other_than = other_than.map(|(name, dims)| (name, dims as i32));
        dispatch!(
            self,
            messages_to_embed(missing, other_than, after, limit as i64)
        )
    }
    fn set_message_embeddings(&self, vectors: &[(i64, Embedding)]) -> DbResult<()> {
        dispatch!(self, set_message_embeddings(vectors))
    }
}

impl honcho_domain::insights::DeriverStore for Db {
    type Error = DbError;

    fn claim_session(
        &self,
        worker: &str,
        policy: ItemPolicy,
    ) -> DbResult<Option<(Lease, Option<WorkItem>)>> {
        dispatch!(self, claim_session(worker, policy))
    }
    fn renew_lease(&self, lease: &Lease, duration: Duration) -> DbResult<bool> {
        dispatch!(self, renew_lease(lease, duration))
    }
    fn next_item(&self, lease: &Lease, policy: ItemPolicy) -> DbResult<Option<WorkItem>> {
        dispatch!(self, next_item(lease, policy))
    }
    fn complete_item(
        &self,
        lease: &Lease,
        item: &WorkItem,
        derived: Derived,
        rule: &dyn honcho_domain::insights::DuplicateRule,
        next: Option<ItemPolicy>,
    ) -> DbResult<Completion> {
        dispatch!(
            self,
            complete_item(&*self.vectors, lease, item, derived, rule, next)
        )
    }
    fn fail_item(
        &self,
        lease: &Lease,
        item_id: i64,
        error: &str,
        retry_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> DbResult<bool> {
        dispatch!(self, fail_item(lease, item_id, error, retry_at))
    }
    fn release_lease(&self, lease: &Lease) -> DbResult<()> {
        dispatch!(self, release_lease(lease))
    }
}

impl honcho_domain::insights::MemoryStore for Db {
    type Error = DbError;

    fn conversation(&self, key: &SessionKey, recent: i64) -> DbResult<Conversation> {
        dispatch!(self, conversation(key, recent))
    }
    fn user_name(&self, key: &SessionKey) -> DbResult<String> {
        let (app_id, user_id) = (key.app_id.as_str(), key.user_id.as_str());
        dispatch!(self, get_user(app_id, user_id)).map(|user| user.name)
    }
    fn rank_facts(
        &self,
        key: &SessionKey,
        searches: &[honcho_domain::retrieval::Search],
        top: usize,
    ) -> DbResult<Vec<Vec<String>>> {
        dispatch!(
            self,
            rank_facts_for_each(&*self.vectors, key, searches, top)
        )
    }
    fn search_messages(
        &self,
        key: &SessionKey,
        searches: &[honcho_domain::retrieval::Search],
        top: usize,
    ) -> DbResult<Vec<Vec<Message>>> {
        dispatch!(
            self,
            search_messages_for_each(&*self.messages, key, searches, top)
        )
    }
    fn save_representation(
        &self,
        key: &SessionKey,
        message_id: Option<&str>,
        content: &str,
    ) -> DbResult<()> {
        dispatch!(self, save_representation(key, message_id, content))
    }
}
