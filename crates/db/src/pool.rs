//! Connection pools that notice outages: PostgreSQL connections idle for a while are checked before
//! use (so a restart or a terminated backend costs no request), and once a checkout has failed the
//! next ones wait only briefly, so requests fail fast while the database is down and recover by
//! themselves when it returns.

use crate::{DbError, DbResult, Outage};
use diesel::r2d2::{ConnectionManager, ManageConnection, Pool, PooledConnection};
use diesel::PgConnection;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A connection idle for longer than this is pinged before use. Connections in steady use are not:
/// a broken one then surfaces as a 503 for the request that finds it.
pub(crate) const IDLE_CHECK: Duration = Duration::from_secs(2);

/// How long a checkout waits while the database is known to be down.
const FAIL_FAST: Duration = Duration::from_millis(250);

/// PostgreSQL connections that remember since when they have been idle, with a statement timeout.
#[derive(Debug)]
pub(crate) struct PgManager {
    manager: ConnectionManager<PgConnection>,
    statement_timeout: Option<Duration>,
}

impl PgManager {
    pub(crate) fn new(url: String, statement_timeout: Option<Duration>) -> PgManager {
        PgManager {
            manager: ConnectionManager::new(url),
            statement_timeout,
        }
    }
}

/// `SET statement_timeout` for `timeout` (`0`: none).
fn statement_timeout_sql(timeout: Option<Duration>) -> String {
    let ms = timeout.map_or(0, |t| t.as_millis().max(1));
    format!("SET statement_timeout = {ms}")
}

/// A pooled PostgreSQL connection, when it was last given back, whether a query found it broken,
/// and the statements it ran for the current call.
pub(crate) struct PgConn {
    conn: PgConnection,
    idle_since: Instant,
    lost: bool,
    statements: Arc<Statements>,
    statement_timeout: Option<Duration>,
}

/// What a connection has sent since the current call began: how many statements, and whether the
/// first one could have changed anything had it run (`BEGIN`, `SELECT`, `SET` and `SHOW` cannot
/// leave a lasting change on a connection that then died).
#[derive(Debug, Default)]
pub(crate) struct Statements {
    started: AtomicU32,
    first_harmless: AtomicBool,
}

/// Whether a statement whose text starts with `head` leaves nothing behind if its connection dies.
fn harmless(head: &str) -> bool {
    let word: String = head
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    ["BEGIN", "SELECT", "SET", "SHOW"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
}

/// Collects the first characters of a statement's text, then stops the formatting (the text of a
/// large insert, binds included, is never built).
struct Head(String);

impl std::fmt::Write for Head {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend(s.chars().take(16 - self.0.len().min(16)));
        if self.0.len() >= 16 {
            Err(std::fmt::Error)
        } else {
            Ok(())
        }
    }
}

impl diesel::connection::Instrumentation for StatementWatch {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        if let diesel::connection::InstrumentationEvent::StartQuery { query, .. } = event {
            if self.0.started.fetch_add(1, Ordering::Relaxed) == 0 {
                let mut head = Head(String::new());
                let _ = std::fmt::write(&mut head, format_args!("{query}"));
                self.0
                    .first_harmless
                    .store(harmless(&head.0), Ordering::Relaxed);
            }
        }
    }
}

/// The instrumentation that fills a connection's [`Statements`].
struct StatementWatch(Arc<Statements>);

impl PgConn {
    /// Takes note of a failed call: a connection found lost is not given back to the pool.
    pub(crate) fn note(&mut self, e: &DbError) {
        if e.outage() == Some(Outage::ConnectionLost) {
            self.lost = true;
        }
    }

    /// Sets the connection's statement timeout back to the pool's (after work allowed to run longer).
    pub(crate) fn restore_statement_timeout(&mut self) -> diesel::QueryResult<()> {
        use diesel::connection::SimpleConnection;
        self.conn
            .batch_execute(&statement_timeout_sql(self.statement_timeout))
    }

    /// A call begins: its statements are counted from here.
    pub(crate) fn begin_call(&mut self) {
        self.statements.started.store(0, Ordering::Relaxed);
        self.statements
            .first_harmless
            .store(true, Ordering::Relaxed);
    }

    /// Whether the call that failed with `e` can run again on another connection: this one was
    /// found dead at the call's first statement, which could not have changed anything (a
    /// connection killed while idle, by a restart or `pg_terminate_backend`). A write that may have
    /// committed is never run again.
    pub(crate) fn replaceable(&self, e: &DbError) -> bool {
        e.outage() == Some(Outage::ConnectionLost)
            && self.statements.started.load(Ordering::Relaxed) <= 1
            && self.statements.first_harmless.load(Ordering::Relaxed)
    }
}

impl Deref for PgConn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for PgConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

/// Connections being opened by pools' background threads, process-wide, and whether the process is
/// closing (then no new one is started). The pools open connections on threads of their own that
/// are never joined; a process that exits while one of them is in libpq's or OpenSSL's connection
/// code crashes in their exit-time clean-up. [`close`] waits for those to finish.
static CONNECTING: AtomicUsize = AtomicUsize::new(0);
static CLOSING: AtomicBool = AtomicBool::new(false);

/// Counts a connection attempt while it runs.
struct Connecting;

impl Connecting {
    fn start() -> Option<Connecting> {
        CONNECTING.fetch_add(1, Ordering::SeqCst);
        if CLOSING.load(Ordering::SeqCst) {
            CONNECTING.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Connecting)
    }
}

impl Drop for Connecting {
    fn drop(&mut self) {
        CONNECTING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Stops every pool of the process from opening connections and waits (at most `timeout`) for the
/// attempts under way to end. Call it last, before the process exits: afterwards no store call can
/// get a new connection.
pub fn close(timeout: Duration) {
    CLOSING.store(true, Ordering::SeqCst);
    let started = Instant::now();
    while CONNECTING.load(Ordering::SeqCst) > 0 && started.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Opens a connection unless the process is closing.
pub(crate) fn connect_counted<M: ManageConnection<Error = diesel::r2d2::Error>>(
    manager: &M,
) -> Result<M::Connection, diesel::r2d2::Error> {
    let _attempt = Connecting::start().ok_or_else(|| {
        diesel::r2d2::Error::ConnectionError(diesel::ConnectionError::BadConnection(
            "the process is stopping".into(),
        ))
    })?;
    manager.connect()
}

/// SQLite's connection manager, counted like PostgreSQL's (see [`close`]).
#[derive(Debug)]
pub(crate) struct SqliteManager(pub(crate) ConnectionManager<diesel::SqliteConnection>);

impl ManageConnection for SqliteManager {
    type Connection = diesel::SqliteConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Self::Connection, Self::Error> {
        connect_counted(&self.0)
    }

    fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        self.0.is_valid(conn)
    }

    fn has_broken(&self, conn: &mut Self::Connection) -> bool {
        self.0.has_broken(conn)
    }
}

impl ManageConnection for PgManager {
    type Connection = PgConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<PgConn, Self::Error> {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        let mut conn = connect_counted(&self.manager)?;
        if self.statement_timeout.is_some() {
            // A request's database work ends with its deadline.
            conn.batch_execute(&statement_timeout_sql(self.statement_timeout))
                .map_err(diesel::r2d2::Error::QueryError)?;
        }
        let statements = Arc::new(Statements::default());
        conn.set_instrumentation(StatementWatch(statements.clone()));
        Ok(PgConn {
            conn,
            idle_since: Instant::now(),
            lost: false,
            statements,
            statement_timeout: self.statement_timeout,
        })
    }

    /// Called on checkout: only a connection idle for longer than [`IDLE_CHECK`] costs a round trip.
    fn is_valid(&self, conn: &mut PgConn) -> Result<(), Self::Error> {
        if conn.idle_since.elapsed() < IDLE_CHECK {
            return Ok(());
        }
        self.manager.is_valid(&mut conn.conn)
    }

    /// Called when a connection is given back.
    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.idle_since = Instant::now();
        conn.lost || self.manager.has_broken(&mut conn.conn)
    }
}

/// Whether the last checkout failed (the database is then taken to be down), and the outage being
/// reported: an outage is logged once when it begins and once when it ends, however many requests
/// meet it meanwhile.
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    down: AtomicBool,
    /// Whether an outage is being reported (read on every successful call; the lock only then).
    reporting: AtomicBool,
    reported: std::sync::Mutex<Option<Outage>>,
}

impl Liveness {
    /// Takes note of a failed call: a lost connection may mean the database is gone, so the next
    /// checkout waits only briefly (a healthy pool still answers it at once). An outage not being
    /// reported yet is logged.
    pub(crate) fn note(&self, e: &DbError) {
        let Some(outage) = e.outage() else { return };
        if outage == Outage::Deadline {
            // One request's query, not an outage of the database.
            tracing::warn!(cause = %e, "a query ran past its request's deadline");
            return;
        }
        if matches!(outage, Outage::ConnectionLost | Outage::Unreachable) {
            self.down.store(true, Ordering::Relaxed);
        }
        // A lost connection and a database that cannot be reached are one outage (the first
        // request finds the connection broken, the next ones cannot open another).
        let down = |o: Outage| matches!(o, Outage::ConnectionLost | Outage::Unreachable);
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        let same = reported.is_some_and(|r| r == outage || (down(r) && down(outage)));
        if !same {
            tracing::error!(cause = %e, "database unavailable: {outage}");
            *reported = Some(outage);
            self.reporting.store(true, Ordering::Relaxed);
        }
    }

    /// Takes note of a call that succeeded: ends the outage being reported, if any.
    pub(crate) fn served(&self) {
        if !self.reporting.load(Ordering::Relaxed) {
            return;
        }
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(outage) = reported.take() {
            tracing::info!("database available again (after: {outage})");
        }
        self.reporting.store(false, Ordering::Relaxed);
    }

    /// A connection from `pool`: waiting the pool's full timeout while the database is believed up,
    /// and only [`FAIL_FAST`] once a checkout has failed, until one succeeds again.
    pub(crate) fn checkout<M: ManageConnection>(
        &self,
        pool: &Pool<M>,
    ) -> DbResult<PooledConnection<M>> {
        let wait = if self.down.load(Ordering::Relaxed) {
            FAIL_FAST
        } else {
            pool.connection_timeout()
        };
        let started = Instant::now();
        let got = pool.get_timeout(wait);
        metrics::histogram!("honcho_db_pool_wait_seconds").record(started.elapsed().as_secs_f64());
        match got {
            Ok(conn) => {
                self.down.store(false, Ordering::Relaxed);
                Ok(conn)
            }
            Err(e) => {
                let e = DbError::from(e);
                self.note(&e);
                self.down.store(true, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_statements_that_change_nothing_are_harmless() {
        for sql in [
            "BEGIN",
            "SELECT 1",
            " select x FROM t",
            "SET x = 1",
            "SHOW ssl",
        ] {
            assert!(harmless(sql), "{sql}");
        }
        for sql in [
            "INSERT INTO t",
            "UPDATE t SET",
            "DELETE FROM t",
            "WITH x AS (",
            "COMMIT",
            "",
        ] {
            assert!(!harmless(sql), "{sql}");
        }
        // Only the head of a statement's text is built.
        let mut head = Head(String::new());
        let long = "SELECT ".to_string() + &"x".repeat(10_000);
        assert!(std::fmt::write(&mut head, format_args!("{long}")).is_err());
        assert_eq!(head.0.len(), 16);
    }
}
