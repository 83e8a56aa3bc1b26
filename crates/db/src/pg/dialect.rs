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

/// A write that is otherwise one statement, run in a transaction so that the call's first statement
/// is its `BEGIN`: a connection found dead there is replaced and the call runs again on another
/// (see `Db`), which a plain `INSERT` or `UPDATE` that may have committed could not be.
pub fn single_write<T, E>(
    conn: &mut Conn,
    f: impl FnOnce(&mut Conn) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    conn.transaction(f)
}

/// The next document revision, from its sequence, drawn while this transaction holds the row lock of
/// the document's collection (until it ends). So a collection's documents take their ids and
/// revisions in commit order, and a cached copy whose version matches the largest ones has seen
/// every committed document (two writers drawing in one order and committing in the other would
/// leave the earlier draw behind a version the cache already holds).
pub fn next_revision(conn: &mut Conn, collection_id: &str) -> diesel::QueryResult<i64> {
    use super::schema::collections;
    use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
    collections::table
        .filter(collections::public_id.eq(collection_id))
        .select(collections::id)
        .for_update()
        .load::<i64>(conn)?;
    diesel::select(sql::<diesel::sql_types::BigInt>(
        "nextval('documents_revision_seq')",
    ))
    .get_result(conn)
}

/// Locks what an erasure removes, parents first: the user (`session_id` `None`) or the session, the
/// user's sessions (or that one), their open deriver items and leases, and the user's collections.
/// Writers of a session's messages, documents of a collection and new sessions or metamessages of
/// the user wait, and then find their parent gone. A deriver holding a session's items while it
/// waits for the user's row (a fact's collection, a summary's session) can deadlock with it: the
/// erasure then runs again (`queries::erasure`).
pub fn lock_for_erasure(
    conn: &mut Conn,
    app_id: &str,
    user_id: &str,
    session_id: Option<&str>,
) -> diesel::QueryResult<()> {
    use super::schema::{collections, deriver_leases, deriver_queue, sessions, users};
    use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
    let of_user = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::app_id.eq(app_id))
        .order(sessions::id.asc())
        .select(sessions::public_id);
    let sessions: Vec<String> = match session_id {
        Some(session_id) => of_user
            .filter(sessions::public_id.eq(session_id))
            .for_update()
            .load(conn)?,
        None => {
            users::table
                .filter(users::public_id.eq(user_id))
                .filter(users::app_id.eq(app_id))
                .select(users::id)
                .for_update()
                .load::<i64>(conn)?;
            of_user.for_update().load(conn)?
        }
    };
    for chunk in sessions.chunks(crate::pg::queries::IDS_PER_STATEMENT) {
        deriver_queue::table
            .filter(deriver_queue::session_id.eq_any(chunk))
            .filter(deriver_queue::status.eq_any(honcho_domain::queue::OPEN_TEXTS))
            .order(deriver_queue::id.asc())
            .select(deriver_queue::id)
            .for_update()
            .load::<i64>(conn)?;
        deriver_leases::table
            .filter(deriver_leases::session_id.eq_any(chunk))
            .select(deriver_leases::session_id)
            .for_update()
            .load::<String>(conn)?;
    }
    collections::table
        .filter(collections::user_id.eq(user_id))
        .filter(collections::app_id.eq(app_id))
        .order(collections::id.asc())
        .select(collections::id)
        .for_update()
        .load::<i64>(conn)?;
    Ok(())
}

/// The `message_id` field of a row's metadata, as text (what names the message a fact came from).
pub const METADATA_MESSAGE_ID: &str = "metadata ->> 'message_id'";

/// Lets concurrent claimers of deriver work pass over each other's candidate rows.
pub const SKIP_LOCKED: &str = "FOR UPDATE OF q SKIP LOCKED";

/// Locks a session's open deriver items until the transaction ends. Every transaction that touches
/// both a session's items and its lease takes the items first (a claim locks the head item with
/// `SKIP LOCKED`, then writes the lease), so two of them can never wait for each other.
pub fn lock_open_items(conn: &mut Conn, session_id: &str) -> diesel::QueryResult<()> {
    use super::schema::deriver_queue;
    use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
    deriver_queue::table
        .filter(deriver_queue::session_id.eq(session_id))
        .filter(deriver_queue::status.eq_any(honcho_domain::queue::OPEN_TEXTS))
        .order(deriver_queue::id.asc())
        .select(deriver_queue::id)
        .for_update()
        .load::<i64>(conn)
        .map(|_| ())
}
