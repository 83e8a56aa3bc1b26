//! What PostgreSQL does its own way.

use super::{Backend, Conn};
use diesel::connection::Connection;
use diesel::dsl::sql;
use diesel::expression::BoxableExpression;
use diesel::sql_types::{Bool, Jsonb};
use serde_json::{Map, Value};

/// `metadata @> filter`, served by the table's GIN index.
pub fn metadata_contains<QS: 'static>(
    filter: &Map<String, Value>,
) -> Box<dyn BoxableExpression<QS, Backend, SqlType = Bool>> {
    Box::new(sql::<Bool>("metadata @> ").bind::<Jsonb, _>(Value::Object(filter.clone())))
}

/// A read-write transaction.
pub fn write_tx<T, E>(conn: &mut Conn, f: impl FnOnce(&mut Conn) -> Result<T, E>) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    conn.transaction(f)
}

/// The next document revision, from its sequence.
pub fn next_revision(conn: &mut Conn) -> diesel::QueryResult<i64> {
    use diesel::RunQueryDsl;
    diesel::select(sql::<diesel::sql_types::BigInt>(
        "nextval('documents_revision_seq')",
    ))
    .get_result(conn)
}

/// Lets concurrent claimers of deriver work pass over each other's candidate rows.
pub const SKIP_LOCKED: &str = "FOR UPDATE OF q SKIP LOCKED";
