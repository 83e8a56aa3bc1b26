//! What SQLite does its own way.

use super::{Backend, Conn};
use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::expression::BoxableExpression;
use diesel::sql_types::{Bool, Text};
use serde_json::{Map, Value};

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
/// writers wait for each other instead of failing on a lock upgrade.
pub fn write_tx<T, E>(conn: &mut Conn, f: impl FnOnce(&mut Conn) -> Result<T, E>) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    conn.immediate_transaction(f)
}

/// Per-connection set-up: WAL with the configured durability and log size, foreign keys, a busy
/// timeout, and the containment function.
pub fn prepare_connection(
    conn: &mut Conn,
    options: &crate::store::DbOptions,
) -> Result<(), diesel::result::Error> {
    let synchronous = match options.sqlite_sync {
        crate::store::SqliteSync::Full => "FULL",
        crate::store::SqliteSync::Normal => "NORMAL",
    };
    conn.batch_execute(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; \
         PRAGMA journal_size_limit = {}; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
        options.sqlite_wal_limit
    ))?;
    honcho_json_contains_utils::register_impl(conn, |doc: String, filter: String| {
        match (
            serde_json::from_str::<Value>(&doc),
            serde_json::from_str::<Value>(&filter),
        ) {
            (Ok(d), Ok(f)) => honcho_domain::json::contains(&d, &f),
            _ => false,
        }
    })
}

/// The next document revision: one more than the largest stored. Callers hold the write lock
/// (`write_tx`), so no other writer can draw the same number, and draws happen in commit order (the
/// collection needs no lock of its own, unlike on PostgreSQL).
pub fn next_revision(conn: &mut Conn, _collection_id: &str) -> diesel::QueryResult<i64> {
    use diesel::RunQueryDsl;
    diesel::select(sql::<diesel::sql_types::BigInt>(
        "(SELECT coalesce(max(revision), 0) + 1 FROM documents)",
    ))
    .get_result(conn)
}

/// SQLite has one writer at a time (`write_tx`): nothing to lock.
pub fn lock_open_items(_conn: &mut Conn, _session_id: &str) -> diesel::QueryResult<()> {
    Ok(())
}

/// SQLite has one writer at a time (`write_tx`): claims never run concurrently.
pub const SKIP_LOCKED: &str = "";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DbOptions, SqliteSync};
    use diesel::{Connection, RunQueryDsl};

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
}
