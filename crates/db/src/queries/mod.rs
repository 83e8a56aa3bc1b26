// Queries shared by both backends. This file and its submodules are compiled once inside `pg` and once
// inside `sqlite`; `super::{schema, dialect, Conn}` resolve to that backend's versions.

// Lookups by a unique key use `get_result`, not `first`: `first` adds `LIMIT ?`, and SQLite prepares a
// statement again whenever a bound LIMIT changes or is bound anew, which is on every execution.

use super::{dialect, schema, Conn};
use crate::{DbError, DbResult};
use diesel::{ExpressionMethods, QueryDsl};
use honcho_domain::{Page, PageRequest, SessionKey};
use serde_json::{Map, Value};

/// One page of the rows `$query()` gives (a closure making the filtered, boxed query), ordered by
/// `$id` (newest first with `req.reverse`), read as `$row` (`Selectable`) and converted to the
/// domain type; `$total` is how many rows match (the page's item query is skipped past the end).
macro_rules! page_by_id {
    ($conn:expr, $req:expr, $total:expr, $query:expr, $row:ty, $id:expr) => {{
        let req: honcho_domain::PageRequest = $req;
        super::page_of::<$row, _>($total, req, |offset| {
            let q = $query()
                .select(<$row>::as_select())
                .limit(req.limit())
                .offset(offset);
            if req.reverse {
                q.order($id.desc())
            } else {
                q.order($id.asc())
            }
            .load($conn)
        })
    }};
}

mod apps;
mod collections;
mod context;
mod documents;
mod erasure;
mod import;
mod keys;
mod memory;
mod messages;
mod metamessages;
mod queue;
mod sessions;
mod users;

pub use apps::*;
pub use collections::*;
pub use context::*;
pub use documents::*;
pub use erasure::*;
pub use import::*;
pub use keys::*;
pub use memory::*;
pub use messages::*;
pub use metamessages::*;
pub use queue::*;
pub use sessions::*;
pub use users::*;

/// Sessions of `key`'s user in `key`'s app with `key`'s id: the only way a session is looked up
/// (by the session queries, and by the message queries that lock and count a session).
#[diesel::dsl::auto_type(no_type_alias)]
pub(crate) fn session_of<'a>(key: &'a SessionKey) -> _ {
    let id: &'a str = &key.session_id;
    let user_id: &'a str = &key.user_id;
    let app_id: &'a str = &key.app_id;
    schema::sessions::table
        .filter(schema::sessions::public_id.eq(id))
        .filter(schema::sessions::user_id.eq(user_id))
        .filter(schema::sessions::app_id.eq(app_id))
}

/// Metadata as stored (always an object) to the domain's map.
fn into_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Builds a page: skips the item query when the page starts past the end.
fn page_of<R, T>(
    total: i64,
    req: PageRequest,
    load: impl FnOnce(i64) -> diesel::QueryResult<Vec<R>>,
) -> DbResult<Page<T>>
where
    T: From<R>,
{
    let total = u64::try_from(total).unwrap_or(0);
    let items = match req.offset() {
        Some(offset) if (offset as u64) < total => load(offset)?.into_iter().map(T::from).collect(),
        _ => Vec::new(),
    };
    Ok(Page::new(items, total, req))
}

/// Runs `f`, turning a unique violation into `conflict`.
fn on_unique<T>(
    r: diesel::QueryResult<T>,
    conflict: impl FnOnce() -> honcho_domain::Error,
) -> DbResult<T> {
    r.map_err(|e| {
        if DbError::is_unique_violation(&e) {
            conflict().into()
        } else {
            e.into()
        }
    })
}

/// The row an `UPDATE ... RETURNING` changed, if any. The statement is run to its end (`load`):
/// SQLite commits an autocommit statement when it finishes, and only a statement run to completion
/// reports a commit that failed (a full disk); `get_result` stops at the first row and loses that error.
fn updated_row<'q, Q, U>(query: Q, conn: &mut Conn) -> diesel::QueryResult<Option<U>>
where
    Q: diesel::RunQueryDsl<Conn> + diesel::query_dsl::LoadQuery<'q, Conn, U>,
{
    Ok(query.load(conn)?.into_iter().next())
}

/// Answers `SELECT 1`, to tell that the database is reachable.
pub fn ping(conn: &mut Conn) -> DbResult<()> {
    use diesel::RunQueryDsl;
    diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1")).execute(conn)?;
    Ok(())
}
