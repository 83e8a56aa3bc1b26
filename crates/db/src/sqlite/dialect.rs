//! What SQLite does its own way.

use super::{Backend, Conn};
use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::dsl::sql;
use diesel::expression::BoxableExpression;
use diesel::sql_types::{Bool, Text};
use diesel::{Connection, RunQueryDsl};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::Duration;

#[diesel::declare_sql_function]
extern "SQL" {
    /// PostgreSQL's `jsonb @>` on JSON text, implemented by `honcho_domain::json::contains`.
    fn honcho_json_contains(doc: Text, filter: Text) -> Bool;
}

/// `metadata` contains `filter`, with the same semantics as PostgreSQL's `@>`.
pub fn metadata_contains<QS: 'static>(
    filter: &Map<String, Value>,
) -> Box<dyn BoxableExpression<QS, Backend, SqlType = Bool>> {
    let filter = Value::Object(filter.clone()).to_string();
    Box::new(
        sql::<Bool>("honcho_json_contains(metadata, ")
            .bind::<Text, _>(filter)
            .sql(")"),
    )
}

/// A read-write transaction, taking the write lock up front (`BEGIN IMMEDIATE`) so that concurrent
/// writers wait for each other instead of failing on a lock upgrade. Writers of one database in
/// this process first queue on its [`writer_gate`], as long as SQLite's busy timeout at most (then
/// the database is busy, as SQLite would say). A call inside a transaction skips the gate and fails
/// (`AlreadyInTransaction`) instead of waiting for itself.
pub fn write_tx<T, E>(conn: &mut Conn, f: impl FnOnce(&mut Conn) -> Result<T, E>) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    let outermost = <Conn as Connection>::TransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()?
        .is_none();
    if !outermost {
        return conn.immediate_transaction(f);
    }
    let gate = writer_gate(conn)?;
    let Some(_turn) = gate.enter(BUSY_TIMEOUT) else {
        return Err(busy().into());
    };
    conn.immediate_transaction(f)
}

/// A write that is otherwise one statement: as it is (PostgreSQL runs it in a transaction so that a
/// dead connection is found at its `BEGIN`; a SQLite file has no connection to lose).
pub fn single_write<T, E>(
    conn: &mut Conn,
    f: impl FnOnce(&mut Conn) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    f(conn)
}

/// How long a writer waits for the database: SQLite's busy timeout, and the longest wait in the
/// in-process queue.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLite's error for a database that stayed locked (an outage: answered 503).
fn busy() -> diesel::result::Error {
    diesel::result::Error::DatabaseError(
        diesel::result::DatabaseErrorKind::Unknown,
        Box::new("database is locked (by this process's other writers)".to_string()),
    )
}

/// One database file's writers in this process, one at a time.
#[derive(Debug, Default)]
struct Gate {
    taken: Mutex<bool>,
    freed: Condvar,
}

/// A writer's turn at a [`Gate`]; the next writer's starts when it is dropped.
struct Turn<'a>(&'a Gate);

impl Gate {
    /// Waits up to `timeout` for a turn; `None` when none came.
    fn enter(&self, timeout: Duration) -> Option<Turn<'_>> {
        let taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        let (mut taken, _) = self
            .freed
            .wait_timeout_while(taken, timeout, |taken| *taken)
            .unwrap_or_else(|e| e.into_inner());
        if *taken {
            return None;
        }
        *taken = true;
        Some(Turn(self))
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        *self.0.taken.lock().unwrap_or_else(|e| e.into_inner()) = false;
        self.0.freed.notify_one();
    }
}

#[derive(diesel::QueryableByName)]
struct MainFile {
    #[diesel(sql_type = Text)]
    file: String,
}

/// The queue of this process's writers to the database file `conn` is open on. SQLite lets a
/// waiting writer poll the lock with sleeps growing to 100 ms (the busy timeout), so under
/// contention the lock sits free while writers sleep; in a queue, the next writer starts as soon
/// as the previous one commits. Writers in other processes still meet the busy timeout.
fn writer_gate(conn: &mut Conn) -> diesel::QueryResult<Arc<Gate>> {
    static GATES: LazyLock<Mutex<HashMap<String, Arc<Gate>>>> = LazyLock::new(Default::default);
    let main = diesel::sql_query("SELECT file FROM pragma_database_list WHERE name = 'main'")
        .get_result::<MainFile>(conn)?;
    let mut gates = GATES.lock().unwrap_or_else(|e| e.into_inner());
    Ok(gates.entry(main.file).or_default().clone())
}

/// Per-connection set-up: a busy timeout, WAL with the configured durability and log size, foreign
/// keys, deleted content overwritten with zeros (`secure_delete`: an erased message's text does
/// not stay in the file's free space), and the containment function. The busy timeout comes first:
/// turning a new file to WAL needs it to itself, and another process may be reading it.
pub fn prepare_connection(
    conn: &mut Conn,
    options: &crate::store::DbOptions,
) -> Result<(), diesel::result::Error> {
    let synchronous = match options.sqlite_sync {
        crate::store::SqliteSync::Full => "FULL",
        crate::store::SqliteSync::Normal => "NORMAL",
    };
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; \
         PRAGMA journal_size_limit = {}; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;",
        BUSY_TIMEOUT.as_millis(),
        options.sqlite_wal_limit,
    ))?;
    conn.on_progress(DEADLINE_CHECK_EVERY, || {
        if Deadline::passed() {
            diesel::sqlite::ProgressDecision::Interrupt
        } else {
            diesel::sqlite::ProgressDecision::Continue
        }
    });
    honcho_json_contains_utils::register_impl(conn, |doc: String, filter: String| {
        if Deadline::stop_here() {
            return false;
        }
        let Ok(doc) = serde_json::from_str::<Value>(&doc) else {
            return false;
        };
        with_parsed_filter(&filter, |f| {
            f.is_some_and(|f| honcho_domain::json::contains(&doc, f))
        })
    })
}

/// SQLite virtual-machine instructions between two looks at the deadline: every few rows of a scan
/// (a row takes a dozen or so). A look reads the clock only while a deadline is set. A call of a
/// Rust function counts as one instruction however long it runs, so such functions look at the
/// deadline themselves ([`Deadline::stop_here`]).
const DEADLINE_CHECK_EVERY: std::num::NonZeroU32 = std::num::NonZeroU32::new(64).unwrap();

thread_local! {
    /// When the store call running on this thread must end. SQLite runs a statement on its
    /// caller's thread, so each connection's progress handler reads the deadline of the call that
    /// is using it from here, and interrupts the statement once it has passed.
    static DEADLINE: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
    /// Whether a Rust function called by the current call's statements skipped its work because
    /// the deadline had passed (its answers since are not to be trusted).
    static CUT_SHORT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The deadline of a store call on this thread, from its start until it is settled and dropped.
/// A statement still running when it passes ends with SQLite's "interrupted", an outage
/// ([`crate::Outage::Deadline`]) answered 503; a transaction it was part of is rolled back.
/// Store calls do not nest.
#[must_use]
pub struct Deadline(());

impl Deadline {
    /// Work on this thread must end within `limit` (`None`: no limit).
    pub fn within(limit: Option<Duration>) -> Deadline {
        DEADLINE.set(limit.map(|l| std::time::Instant::now() + l));
        CUT_SHORT.set(false);
        Deadline(())
    }

    /// Whether the current call's deadline has passed.
    fn passed() -> bool {
        DEADLINE
            .get()
            .is_some_and(|d| std::time::Instant::now() >= d)
    }

    /// For work done inside one statement (a Rust function called on each row): whether to skip
    /// it because the deadline has passed. The progress handler then ends the statement at its next
    /// look; should the statement finish first, [`Deadline::settle`] fails the call all the same.
    fn stop_here() -> bool {
        let stop = Deadline::passed();
        if stop {
            CUT_SHORT.set(true);
        }
        stop
    }

    /// The call's result, or the deadline's error when a function skipped work for it.
    pub fn settle<T>(self, result: crate::DbResult<T>) -> crate::DbResult<T> {
        if CUT_SHORT.get() {
            return Err(crate::DbError::Unavailable {
                outage: crate::Outage::Deadline,
                cause: "a filter was cut short at the deadline".into(),
            });
        }
        result
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        DEADLINE.set(None);
        CUT_SHORT.set(false);
    }
}

thread_local! {
    /// The filter a query's rows are compared with, parsed once per query rather than once per row:
    /// SQLite hands the function the same text for every row of a statement (on this thread).
    static PARSED_FILTER: std::cell::RefCell<Option<(String, Option<Value>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with `filter` parsed (`None` when it is not JSON), from the cache when it is the filter
/// of the last call.
fn with_parsed_filter<R>(filter: &str, f: impl FnOnce(Option<&Value>) -> R) -> R {
    PARSED_FILTER.with(|cache| {
        let mut cache = cache.borrow_mut();
        if !matches!(&*cache, Some((text, _)) if text == filter) {
            let parsed = serde_json::from_str::<Value>(filter).ok();
            *cache = Some((filter.to_string(), parsed));
        }
        f(cache.as_ref().and_then(|(_, parsed)| parsed.as_ref()))
    })
}

/// The next document revision: one more than the largest stored. Callers hold the write lock
/// (`write_tx`), so no other writer can draw the same number, and draws happen in commit order (the
/// collection needs no lock of its own, unlike on PostgreSQL).
pub fn next_revision(conn: &mut Conn, _collection_id: &str) -> diesel::QueryResult<i64> {
    diesel::select(sql::<diesel::sql_types::BigInt>(
        "(SELECT coalesce(max(revision), 0) + 1 FROM documents)",
    ))
    .get_result(conn)
}

/// SQLite has one writer at a time (`write_tx`): nothing to lock.
pub fn lock_open_items(_conn: &mut Conn, _session_id: &str) -> diesel::QueryResult<()> {
    Ok(())
}

/// SQLite has one writer at a time (`write_tx`): nothing to lock.
pub fn lock_for_erasure(
    _conn: &mut Conn,
    _app_id: &str,
    _user_id: &str,
    _session_id: Option<&str>,
) -> diesel::QueryResult<()> {
    Ok(())
}

/// The `message_id` field of a row's metadata, as text (what names the message a fact came from).
pub const METADATA_MESSAGE_ID: &str = "json_extract(metadata, '$.message_id')";

/// SQLite has one writer at a time (`write_tx`): claims never run concurrently.
pub const SKIP_LOCKED: &str = "";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DbOptions, SqliteSync};

    #[derive(diesel::QueryableByName)]
    struct Synchronous {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        synchronous: i32,
    }

    fn synchronous(options: &DbOptions) -> i32 {
        let mut conn = Conn::establish(":memory:").unwrap();
        prepare_connection(&mut conn, options).unwrap();
        diesel::sql_query("PRAGMA synchronous")
            .get_result::<Synchronous>(&mut conn)
            .unwrap()
            .synchronous
    }

    #[test]
    fn commits_are_durable_unless_configured_otherwise() {
        assert_eq!(synchronous(&DbOptions::with_max_size(1)), 2, "FULL");
        let normal = DbOptions {
            sqlite_sync: SqliteSync::Normal,
            ..DbOptions::with_max_size(1)
        };
        assert_eq!(synchronous(&normal), 1, "NORMAL");
    }

    #[test]
    fn writers_of_one_file_take_turns_and_a_nested_write_fails_instead_of_waiting() {
        let path = std::env::temp_dir().join(format!("honcho-gate-{}.db", std::process::id()));
        let url = path.to_string_lossy().into_owned();
        let open = || {
            let mut conn = Conn::establish(&url).unwrap();
            prepare_connection(&mut conn, &DbOptions::with_max_size(1)).unwrap();
            conn
        };
        open()
            .batch_execute("CREATE TABLE IF NOT EXISTS n (v INTEGER NOT NULL)")
            .unwrap();
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let mut conn = open();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        write_tx(&mut conn, |conn| {
                            conn.batch_execute("INSERT INTO n (v) VALUES (1)")?;
                            let nested = write_tx(conn, |conn| {
                                conn.batch_execute("INSERT INTO n (v) VALUES (1)")
                            });
                            assert!(matches!(
                                nested,
                                Err(diesel::result::Error::AlreadyInTransaction)
                            ));
                            conn.batch_execute("INSERT INTO n (v) VALUES (1)")
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let count = diesel::sql_query("SELECT count(*) AS n FROM n")
            .get_result::<Count>(&mut open())
            .unwrap();
        assert_eq!(count.n, 200);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{url}{suffix}"));
        }
    }

    /// A new file is turned to WAL by the first connection prepared on it; another process
    /// reading it at that moment (a script counting rows, a second server starting) holds a
    /// shared lock, and the change waits for it instead of failing the connection.
    #[test]
    fn the_first_connection_of_a_new_file_waits_for_a_reader_to_turn_it_to_wal() {
        let path = std::env::temp_dir().join(format!("honcho-new-{}.db", std::process::id()));
        let url = path.to_string_lossy().into_owned();
        let mut reader = Conn::establish(&url).unwrap();
        reader
            .batch_execute("BEGIN; SELECT count(*) FROM sqlite_master;")
            .unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(300));
                reader.batch_execute("COMMIT").unwrap();
            });
            let mut conn = Conn::establish(&url).unwrap();
            prepare_connection(&mut conn, &DbOptions::with_max_size(1))
                .expect("the connection waits for the reader");
            #[derive(diesel::QueryableByName)]
            struct Mode {
                #[diesel(sql_type = diesel::sql_types::Text)]
                journal_mode: String,
            }
            let mode = diesel::sql_query("PRAGMA journal_mode")
                .get_result::<Mode>(&mut conn)
                .unwrap();
            assert_eq!(mode.journal_mode, "wal");
        });
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{url}{suffix}"));
        }
    }

    #[test]
    fn a_writer_waits_for_its_turn_only_as_long_as_the_busy_timeout() {
        let gate = Gate::default();
        let turn = gate.enter(Duration::from_millis(10)).expect("a free gate");
        std::thread::scope(|s| {
            let waiter = s.spawn(|| gate.enter(Duration::from_millis(50)).is_some());
            assert!(
                !waiter.join().unwrap(),
                "a turn while another writer had it"
            );
        });
        drop(turn);
        assert!(gate.enter(Duration::from_millis(10)).is_some());
        let outage = crate::DbError::from(busy()).outage();
        assert_eq!(outage, Some(crate::error::Outage::Busy));
    }
}
