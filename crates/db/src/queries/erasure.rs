//! Erasure: a user, or one session, and every row of every table that holds its data or was derived
//! from it, deleted in one transaction. Every table of the schema is either covered here or holds
//! nothing of a user (`apps`, `erasures`); the API tests list the schema's tables and look for the
//! erased ids and texts in each.

use super::schema::{
    api_keys, collections, deriver_leases, deriver_queue, documents, erasures, messages,
    metamessages, sessions, users,
};
use super::{dialect, session_of, Conn};
use crate::{DbError, DbResult};
use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::Text;
use honcho_domain::erasure::{Erased, ErasureScope};
use honcho_domain::{Error, SessionKey};
use std::collections::BTreeSet;

/// What a recorded key that named an erased id names instead.
pub const ERASED_ID: &str = "(erased)";

/// Times an erasure runs again after PostgreSQL ended it to break a deadlock with a writer.
const ERASURE_TRIES: usize = 3;

/// Runs `erase` in a write transaction, again when PostgreSQL rolled it back to break a deadlock
/// (a deriver holding a session's items while waiting for a row the erasure locked) or a
/// serialization failure (class 40): the erasure removed nothing then, and its next run finds
/// the other writer done.
fn erasure_tx(
    conn: &mut Conn,
    mut erase: impl FnMut(&mut Conn) -> Result<Erased, DbError>,
) -> DbResult<Erased> {
    let mut tries = 0;
    loop {
        tries += 1;
        match dialect::write_tx(conn, &mut erase) {
            Err(DbError::Query(diesel::result::Error::DatabaseError(_, info)))
                if tries < ERASURE_TRIES
                    && info
                        .sqlstate()
                        .is_some_and(|s| s.as_str().starts_with("40")) =>
            {
                continue
            }
            other => return other,
        }
    }
}

/// Erases the user `user_id` of app `app_id`: its sessions (active or not), their messages and
/// metamessages, its collections and their documents (its facts included), the deriver's queue
/// rows and leases of its sessions; recorded keys naming the user, its sessions or its collections
/// are revoked and their ids replaced by [`ERASED_ID`] (and their label cleared). Records the
/// erasure (counts only). A user that does not exist is a not-found error, and nothing changes.
pub fn erase_user(
    conn: &mut Conn,
    app_id: &str,
    user_id: &str,
    at: DateTime<Utc>,
) -> DbResult<Erased> {
    erasure_tx(conn, |conn| {
        dialect::lock_for_erasure(conn, app_id, user_id, None)?;
        let user = users::table
            .filter(users::public_id.eq(user_id))
            .filter(users::app_id.eq(app_id));
        if user.count().get_result::<i64>(conn)? == 0 {
            return Err(Error::user_not_found(user_id).into());
        }
        let sessions_of_user = || {
            sessions::table
                .filter(sessions::user_id.eq(user_id))
                .filter(sessions::app_id.eq(app_id))
        };
        let collections_of_user = || {
            collections::table
                .filter(collections::user_id.eq(user_id))
                .filter(collections::app_id.eq(app_id))
        };
        let session_ids: Vec<String> = sessions_of_user().select(sessions::public_id).load(conn)?;
        let collection_ids: Vec<String> = collections_of_user()
            .select(collections::public_id)
            .load(conn)?;
        let mut erased = Erased {
            keys: clear_keys(conn, Some(user_id), &session_ids, &collection_ids, at)?,
            ..Erased::default()
        };
        erased.queue_items = erase_queue(conn, &session_ids)?;
        erased.metamessages = diesel::delete(
            metamessages::table
                .filter(metamessages::user_id.eq(user_id))
                .filter(metamessages::app_id.eq(app_id)),
        )
        .execute(conn)? as u64;
        for chunk in collection_ids.chunks(IDS_PER_STATEMENT) {
            erased.documents +=
                diesel::delete(documents::table.filter(documents::collection_id.eq_any(chunk)))
                    .execute(conn)? as u64;
        }
        erased.collections = diesel::delete(collections_of_user()).execute(conn)? as u64;
        for chunk in session_ids.chunks(IDS_PER_STATEMENT) {
            erased.messages +=
                diesel::delete(messages::table.filter(messages::session_id.eq_any(chunk)))
                    .execute(conn)? as u64;
        }
        erased.sessions = diesel::delete(sessions_of_user()).execute(conn)? as u64;
        erased.users = diesel::delete(user).execute(conn)? as u64;
        record(conn, ErasureScope::User, &erased, at)?;
        Ok(erased)
    })
}

/// Erases the session of `key` (active or not): its messages, its metamessages and those naming
/// its messages, the documents of the user's collections whose `metadata.message_id` names one of
/// its messages (the facts derived from them), its queue rows and lease; recorded keys naming it
/// are revoked and name [`ERASED_ID`] instead. The user's other sessions and facts stay.
pub fn erase_session(conn: &mut Conn, key: &SessionKey, at: DateTime<Utc>) -> DbResult<Erased> {
    erasure_tx(conn, |conn| {
        dialect::lock_for_erasure(conn, &key.app_id, &key.user_id, Some(&key.session_id))?;
        if session_of(key).count().get_result::<i64>(conn)? == 0 {
            return Err(Error::session_not_found().into());
        }
        let session_ids = [key.session_id.clone()];
        let message_ids: Vec<String> = messages::table
            .filter(messages::session_id.eq(&key.session_id))
            .select(messages::public_id)
            .load(conn)?;
        let collection_ids: Vec<String> = collections::table
            .filter(collections::user_id.eq(&key.user_id))
            .filter(collections::app_id.eq(&key.app_id))
            .select(collections::public_id)
            .load(conn)?;
        let mut erased = Erased {
            keys: clear_keys(conn, None, &session_ids, &[], at)?,
            ..Erased::default()
        };
        erased.queue_items = erase_queue(conn, &session_ids)?;
        erased.metamessages = diesel::delete(
            metamessages::table.filter(metamessages::session_id.eq(&key.session_id)),
        )
        .execute(conn)? as u64;
        let mut facts: Vec<(i64, String)> = Vec::new();
        for messages in message_ids.chunks(IDS_PER_STATEMENT) {
            erased.metamessages += diesel::delete(
                metamessages::table.filter(metamessages::message_id.eq_any(messages)),
            )
            .execute(conn)? as u64;
            for collections in collection_ids.chunks(IDS_PER_STATEMENT) {
                facts.extend(
                    documents::table
                        .filter(documents::collection_id.eq_any(collections))
                        .filter(sql::<Text>(dialect::METADATA_MESSAGE_ID).eq_any(messages))
                        .select((documents::id, documents::collection_id))
                        .load::<(i64, String)>(conn)?,
                );
            }
        }
        let ids: Vec<i64> = facts.iter().map(|(id, _)| *id).collect();
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            erased.documents += diesel::delete(documents::table.filter(documents::id.eq_any(chunk)))
                .execute(conn)? as u64;
        }
        // Cached copies of those collections see that documents are gone.
        let touched: BTreeSet<&str> = facts.iter().map(|(_, c)| c.as_str()).collect();
        for collection_id in touched {
            let revision = dialect::next_revision(conn, collection_id)?;
            diesel::update(collections::table.filter(collections::public_id.eq(collection_id)))
                .set(collections::deleted_revision.eq(revision))
                .execute(conn)?;
        }
        erased.messages =
            diesel::delete(messages::table.filter(messages::session_id.eq(&key.session_id)))
                .execute(conn)? as u64;
        erased.sessions = diesel::delete(session_of(key)).execute(conn)? as u64;
        record(conn, ErasureScope::Session, &erased, at)?;
        Ok(erased)
    })
}

/// Ids bound per statement, well under both engines' limits on bound values.
pub(crate) const IDS_PER_STATEMENT: usize = 500;

/// Deletes the deriver's queue rows and leases of `sessions`: a worker holding one of those leases
/// finds it gone when it commits, and its results are dropped.
fn erase_queue(conn: &mut Conn, sessions: &[String]) -> QueryResult<u64> {
    let mut erased = 0;
    for chunk in sessions.chunks(IDS_PER_STATEMENT) {
        erased +=
            diesel::delete(deriver_leases::table.filter(deriver_leases::session_id.eq_any(chunk)))
                .execute(conn)?;
        erased +=
            diesel::delete(deriver_queue::table.filter(deriver_queue::session_id.eq_any(chunk)))
                .execute(conn)?;
    }
    Ok(erased as u64)
}

/// Revokes the recorded keys naming the user `user_id`, one of `sessions` or one of `collections`,
/// replaces those ids by [`ERASED_ID`] and clears their labels; returns how many keys. Rows stay:
/// a revocation is never undone, and every process counts them (`revocation_mark`).
fn clear_keys(
    conn: &mut Conn,
    user_id: Option<&str>,
    sessions: &[String],
    collections: &[String],
    at: DateTime<Utc>,
) -> QueryResult<u64> {
    let mut keys: BTreeSet<i64> = BTreeSet::new();
    if let Some(user_id) = user_id {
        keys.extend(
            api_keys::table
                .filter(api_keys::user_id.eq(user_id))
                .select(api_keys::id)
                .load::<i64>(conn)?,
        );
    }
    for chunk in sessions.chunks(IDS_PER_STATEMENT) {
        keys.extend(
            api_keys::table
                .filter(api_keys::session_id.eq_any(chunk))
                .select(api_keys::id)
                .load::<i64>(conn)?,
        );
    }
    for chunk in collections.chunks(IDS_PER_STATEMENT) {
        keys.extend(
            api_keys::table
                .filter(api_keys::collection_id.eq_any(chunk))
                .select(api_keys::id)
                .load::<i64>(conn)?,
        );
    }
    let keys: Vec<i64> = keys.into_iter().collect();
    for chunk in keys.chunks(IDS_PER_STATEMENT) {
        let of = || api_keys::table.filter(api_keys::id.eq_any(chunk));
        diesel::update(of().filter(api_keys::revoked_at.is_null()))
            .set(api_keys::revoked_at.eq(at))
            .execute(conn)?;
        diesel::update(of())
            .set(api_keys::label.eq(None::<String>))
            .execute(conn)?;
        if let Some(user_id) = user_id {
            diesel::update(of().filter(api_keys::user_id.eq(user_id)))
                .set(api_keys::user_id.eq(ERASED_ID))
                .execute(conn)?;
        }
        for ids in sessions.chunks(IDS_PER_STATEMENT) {
            diesel::update(of().filter(api_keys::session_id.eq_any(ids)))
                .set(api_keys::session_id.eq(ERASED_ID))
                .execute(conn)?;
        }
        for ids in collections.chunks(IDS_PER_STATEMENT) {
            diesel::update(of().filter(api_keys::collection_id.eq_any(ids)))
                .set(api_keys::collection_id.eq(ERASED_ID))
                .execute(conn)?;
        }
    }
    Ok(keys.len() as u64)
}

/// Records an erasure: when, what kind, how many rows of each kind; never whose.
fn record(
    conn: &mut Conn,
    scope: ErasureScope,
    erased: &Erased,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    let n = |v: u64| v as i64;
    diesel::insert_into(erasures::table)
        .values((
            erasures::scope.eq(scope.as_str()),
            erasures::erased_at.eq(at),
            erasures::users.eq(n(erased.users)),
            erasures::sessions.eq(n(erased.sessions)),
            erasures::messages.eq(n(erased.messages)),
            erasures::metamessages.eq(n(erased.metamessages)),
            erasures::collections.eq(n(erased.collections)),
            erasures::documents.eq(n(erased.documents)),
            erasures::queue_items.eq(n(erased.queue_items)),
            erasures::keys.eq(n(erased.keys)),
        ))
        .execute(conn)?;
    Ok(())
}

/// How many erasures were recorded: rows are never deleted, so this changes with every erasure,
/// whichever process made it.
pub fn erasure_mark(conn: &mut Conn) -> DbResult<i64> {
    Ok(erasures::table.count().get_result(conn)?)
}
