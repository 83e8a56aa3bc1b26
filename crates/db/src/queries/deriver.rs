// The deriver's queue (see the module docs of `queries`). Items are written by `create_messages` in
// the messages' transaction. A worker leases a session (`deriver_leases`, one row per leased session,
// a fresh token per claim), takes the session's items oldest first, and commits each item's outputs
// with its completion in one transaction that first checks its token: a worker whose lease was taken
// over writes nothing.

use super::documents::{current_vectors, insert_document};
use super::messages::MessageRow;
use super::metamessages::NewMetamessageRow;
use super::schema::{
    collections, deriver_leases, deriver_queue, documents, messages, metamessages, users,
};
use super::{dialect, Conn};
use crate::corpus::CollectionCache;
use crate::{DbError, DbResult};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use honcho_domain::insights::{
    restates, Completion, Conversation, Derived, ItemPolicy, Lease, NewFact, QueueCounts,
    QueueScope, Summary, WorkItem, DUPLICATE_DISTANCE, LONG_SUMMARY_EVERY, REPRESENTATION_LABEL,
    SHORT_SUMMARY_EVERY, SUMMARY_LONG_LABEL, SUMMARY_SHORT_LABEL,
};
use honcho_domain::vector::cosine_distance;
use honcho_domain::{
    id::new_id, now, CollectionKey, Error, Message, SessionKey, PROTECTED_COLLECTION,
};
use serde_json::Value;

/// Stored facts nearest to a new one that are checked for being restated by it.
const DUPLICATE_CANDIDATES: usize = 4;

/// Statuses of an item still to be done.
const OPEN: [&str; 2] = ["pending", "processing"];
/// Messages after the latest short summary given to a model, at most (the newest).
const RECENT_LIMIT: i64 = 40;
/// Messages after the latest long summary given to the long summary's model, at most (the newest).
const LONG_LIMIT: i64 = 120;

#[derive(QueryableByName)]
struct Claimable {
    #[diesel(sql_type = diesel::sql_types::Text)]
    session_id: String,
}

fn lease_until(lease: std::time::Duration) -> DateTime<Utc> {
    now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60))
}

/// Leases the session of the oldest due item that heads its session's queue and that no live
/// lease holds, and takes that item. On PostgreSQL concurrent claimers skip each other's candidates
/// (`SKIP LOCKED`); on both engines the lease row decides: it is taken only when absent or expired.
pub fn claim_session(
    conn: &mut Conn,
    worker: &str,
    policy: ItemPolicy,
) -> DbResult<Option<(Lease, Option<WorkItem>)>> {
    dialect::write_tx(conn, |conn| {
        let at = now();
        // `$1` is the same parameter at both places on both engines.
        let query = format!(
            "SELECT q.session_id FROM deriver_queue q \
             WHERE q.status IN ('pending', 'processing') AND q.not_before <= $1 \
             AND NOT EXISTS (SELECT 1 FROM deriver_queue p WHERE p.session_id = q.session_id \
                 AND p.status IN ('pending', 'processing') AND p.id < q.id) \
             AND NOT EXISTS (SELECT 1 FROM deriver_leases l WHERE l.session_id = q.session_id \
                 AND l.leased_until > $1) \
             ORDER BY q.id LIMIT 1 {}",
            dialect::SKIP_LOCKED
        );
        let Some(candidate) = diesel::sql_query(query)
            .bind::<super::super::types::Moment, _>(at)
            .get_result::<Claimable>(conn)
            .optional()?
        else {
            return Ok(None);
        };
        // Items before lease, as every transaction that touches both (see `hold`).
        dialect::lock_open_items(conn, &candidate.session_id)?;
        diesel::delete(
            deriver_leases::table
                .filter(deriver_leases::session_id.eq(&candidate.session_id))
                .filter(deriver_leases::leased_until.le(at)),
        )
        .execute(conn)?;
        let token = new_token();
        let taken = diesel::insert_into(deriver_leases::table)
            .values((
                deriver_leases::session_id.eq(&candidate.session_id),
                deriver_leases::token.eq(&token),
                deriver_leases::worker.eq(worker),
                deriver_leases::leased_until.eq(lease_until(policy.lease)),
            ))
            .on_conflict(deriver_leases::session_id)
            .do_nothing()
            .execute(conn)?;
        if taken != 1 {
            return Ok(None);
        }
        let lease = Lease {
            session_id: candidate.session_id,
            token,
        };
        let first = take_head(conn, &lease, policy)?;
        Ok::<_, DbError>(Some((lease, first)))
    })
}

/// A lease token: unique per claim.
fn new_token() -> String {
    new_id()
}

/// Whether `lease` is still held, extending it by `duration` when given. The update also locks the
/// lease row until the transaction ends, so no claim can take the session meanwhile. Callers that
/// change the session's items lock them first (`dialect::lock_open_items`): items before lease,
/// the order of a claim.
fn hold(
    conn: &mut Conn,
    lease: &Lease,
    duration: Option<std::time::Duration>,
) -> QueryResult<bool> {
    let held = deriver_leases::table
        .filter(deriver_leases::session_id.eq(&lease.session_id))
        .filter(deriver_leases::token.eq(&lease.token));
    let n = match duration {
        Some(d) => diesel::update(held)
            .set(deriver_leases::leased_until.eq(lease_until(d)))
            .execute(conn)?,
        None => diesel::update(held)
            .set(deriver_leases::token.eq(deriver_leases::token))
            .execute(conn)?,
    };
    Ok(n == 1)
}

pub fn renew_lease(
    conn: &mut Conn,
    lease: &Lease,
    duration: std::time::Duration,
) -> DbResult<bool> {
    dialect::write_tx(conn, |conn| Ok(hold(conn, lease, Some(duration))?))
}

/// Gives up a lease; an item left in progress goes back to pending (its attempt counted).
pub fn release_lease(conn: &mut Conn, lease: &Lease) -> DbResult<()> {
    dialect::write_tx(conn, |conn| {
        dialect::lock_open_items(conn, &lease.session_id)?;
        let n = diesel::delete(
            deriver_leases::table
                .filter(deriver_leases::session_id.eq(&lease.session_id))
                .filter(deriver_leases::token.eq(&lease.token)),
        )
        .execute(conn)?;
        if n == 1 {
            diesel::update(
                deriver_queue::table
                    .filter(deriver_queue::session_id.eq(&lease.session_id))
                    .filter(deriver_queue::status.eq("processing")),
            )
            .set(deriver_queue::status.eq("pending"))
            .execute(conn)?;
        }
        Ok(())
    })
}

#[derive(Queryable)]
struct HeadRow {
    id: i64,
    app_id: String,
    user_id: String,
    message_id: String,
    attempts: i32,
    not_before: DateTime<Utc>,
    last_error: Option<String>,
}

pub fn next_item(conn: &mut Conn, lease: &Lease, policy: ItemPolicy) -> DbResult<Option<WorkItem>> {
    dialect::write_tx(conn, |conn| {
        dialect::lock_open_items(conn, &lease.session_id)?;
        if !hold(conn, lease, Some(policy.lease))? {
            return Ok(None);
        }
        take_head(conn, lease, policy)
    })
}

/// The session's oldest open item, marked in progress with one more attempt; items tried
/// `policy.max_attempts` times are parked first. When nothing is due the lease is given up. The
/// caller holds the lease, with the session's open items locked.
fn take_head(conn: &mut Conn, lease: &Lease, policy: ItemPolicy) -> DbResult<Option<WorkItem>> {
    loop {
        let head: Option<HeadRow> = deriver_queue::table
            .filter(deriver_queue::session_id.eq(&lease.session_id))
            .filter(deriver_queue::status.eq_any(OPEN))
            .order(deriver_queue::id.asc())
            .select((
                deriver_queue::id,
                deriver_queue::app_id,
                deriver_queue::user_id,
                deriver_queue::message_id,
                deriver_queue::attempts,
                deriver_queue::not_before,
                deriver_queue::last_error,
            ))
            .first(conn)
            .optional()?;
        let at = now();
        let head = match head {
            Some(h) if h.not_before <= at => h,
            // Nothing due: give the session up (another worker claims it when it is due).
            _ => {
                diesel::delete(
                    deriver_leases::table
                        .filter(deriver_leases::session_id.eq(&lease.session_id))
                        .filter(deriver_leases::token.eq(&lease.token)),
                )
                .execute(conn)?;
                return Ok(None);
            }
        };
        let item = deriver_queue::table.filter(deriver_queue::id.eq(head.id));
        if head.attempts >= policy.max_attempts {
            // Tried as often as allowed (a worker died during the last attempt): park it.
            let error = head
                .last_error
                .unwrap_or_else(|| "the worker stopped during the last attempt".to_string());
            settle_first(conn, head.id, Some(&error), at)?;
            continue;
        }
        diesel::update(item)
            .set((
                deriver_queue::status.eq("processing"),
                deriver_queue::attempts.eq(head.attempts + 1),
                deriver_queue::updated_at.eq(at),
            ))
            .execute(conn)?;
        let key = SessionKey {
            app_id: head.app_id,
            user_id: head.user_id,
            session_id: lease.session_id.clone(),
        };
        return work_item(conn, key, head.id, head.attempts + 1, &head.message_id).map(Some);
    }
}

fn work_item(
    conn: &mut Conn,
    key: SessionKey,
    id: i64,
    attempt: i32,
    message_id: &str,
) -> DbResult<WorkItem> {
    let (upto, message): (i64, MessageRow) = messages::table
        .filter(messages::public_id.eq(message_id))
        .select((messages::id, MessageRow::as_select()))
        .get_result(conn)?;
    let message = Message::from(message);
    let short = latest_summary(conn, &key.session_id, SUMMARY_SHORT_LABEL)?;
    let long = latest_summary(conn, &key.session_id, SUMMARY_LONG_LABEL)?;
    let since_short = count_between(conn, &key.session_id, short.as_ref().map(|s| s.1), upto)?;
    let since_long = count_between(conn, &key.session_id, long.as_ref().map(|s| s.1), upto)?;
    // The conversation is read for a user's message (facts) and for a short summary only.
    let recent = if message.is_user || since_short >= SHORT_SUMMARY_EVERY {
        messages_between(
            conn,
            &key.session_id,
            short.as_ref().map(|s| s.1),
            Some(upto),
            RECENT_LIMIT,
        )?
    } else {
        Vec::new()
    };
    let since_long_messages = if since_long >= LONG_SUMMARY_EVERY {
        messages_between(
            conn,
            &key.session_id,
            long.as_ref().map(|s| s.1),
            Some(upto),
            LONG_LIMIT,
        )?
    } else {
        Vec::new()
    };
    Ok(WorkItem {
        id,
        attempt,
        session: key,
        message,
        conversation: Conversation {
            short_summary: short.map(|s| s.0),
            long_summary: long.map(|s| s.0),
            recent,
            last_user_message: None,
        },
        since_short,
        since_long,
        since_long_messages,
    })
}

/// The session's latest summary with `label`, and the internal id of the message it covers up to.
fn latest_summary(
    conn: &mut Conn,
    session_id: &str,
    label: &str,
) -> QueryResult<Option<(Summary, i64)>> {
    let found: Option<(String, Option<String>)> = metamessages::table
        .filter(metamessages::session_id.eq(session_id))
        .filter(metamessages::label.eq(label))
        .order(metamessages::id.desc())
        .select((metamessages::content, metamessages::message_id))
        .first(conn)
        .optional()?;
    let Some((content, Some(message_id))) = found else {
        return Ok(None);
    };
    let upto: Option<i64> = messages::table
        .filter(messages::public_id.eq(&message_id))
        .select(messages::id)
        .get_result(conn)
        .optional()?;
    Ok(upto.map(|upto| {
        (
            Summary {
                content,
                message_id,
            },
            upto,
        )
    }))
}

/// Messages of the session after internal id `after` up to `upto`.
fn count_between(
    conn: &mut Conn,
    session_id: &str,
    after: Option<i64>,
    upto: i64,
) -> QueryResult<i64> {
    messages::table
        .filter(messages::session_id.eq(session_id))
        .filter(messages::id.gt(after.unwrap_or(0)))
        .filter(messages::id.le(upto))
        .count()
        .get_result(conn)
}

/// The newest `limit` messages of the session after internal id `after` (up to `upto`), oldest first.
fn messages_between(
    conn: &mut Conn,
    session_id: &str,
    after: Option<i64>,
    upto: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<Message>> {
    let mut rows: Vec<MessageRow> = messages::table
        .filter(messages::session_id.eq(session_id))
        .filter(messages::id.gt(after.unwrap_or(0)))
        .filter(messages::id.le(upto.unwrap_or(i64::MAX)))
        .order(messages::id.desc())
        .limit(limit)
        .select(MessageRow::as_select())
        .load(conn)?;
    rows.reverse();
    Ok(rows.into_iter().map(Message::from).collect())
}

/// The user's protected collection, created when missing.
fn protected_collection(
    conn: &mut Conn,
    app_id: &str,
    user_id: &str,
) -> QueryResult<CollectionKey> {
    let key = |collection_id| CollectionKey {
        app_id: app_id.to_string(),
        user_id: user_id.to_string(),
        collection_id,
    };
    // Read first: it exists after the user's first fact, and on PostgreSQL even an insert that
    // conflicts draws an id from the sequence.
    if let Some(found) = find_protected(conn, app_id, user_id)? {
        return Ok(key(found));
    }
    diesel::insert_into(collections::table)
        .values((
            collections::public_id.eq(new_id()),
            collections::app_id.eq(app_id),
            collections::user_id.eq(user_id),
            collections::name.eq(PROTECTED_COLLECTION),
            collections::metadata.eq(Value::Object(Default::default())),
            collections::created_at.eq(now()),
        ))
        .on_conflict((collections::user_id, collections::name))
        .do_nothing()
        .execute(conn)?;
    find_protected(conn, app_id, user_id)?
        .map(key)
        .ok_or(diesel::result::Error::NotFound)
}

pub(super) fn find_protected(
    conn: &mut Conn,
    app_id: &str,
    user_id: &str,
) -> QueryResult<Option<String>> {
    collections::table
        .filter(collections::user_id.eq(user_id))
        .filter(collections::name.eq(PROTECTED_COLLECTION))
        .filter(collections::app_id.eq(app_id))
        .select(collections::public_id)
        .get_result(conn)
        .optional()
}

pub fn complete_item(
    conn: &mut Conn,
    cache: &CollectionCache,
    lease: &Lease,
    item: &WorkItem,
    derived: Derived,
    next: Option<ItemPolicy>,
) -> DbResult<Completion> {
    dialect::write_tx(conn, |conn| {
        dialect::lock_open_items(conn, &lease.session_id)?;
        if !hold(conn, lease, next.map(|policy| policy.lease))? {
            return Ok(Completion::LeaseLost);
        }
        let at = now();
        // The item's own rows first: storing a fact locks the user's collection row until the
        // commit (`dialect::next_revision`), and the user's other sessions wait on that lock.
        for summary in &derived.summaries {
            let metadata = Value::Object(summary.metadata.clone());
            diesel::insert_into(metamessages::table)
                .values(&NewMetamessageRow {
                    public_id: &new_id(),
                    app_id: &item.session.app_id,
                    user_id: &item.session.user_id,
                    session_id: Some(&item.session.session_id),
                    message_id: Some(&item.message.id),
                    label: summary.label,
                    content: &summary.content,
                    metadata: &metadata,
                    created_at: at,
                })
                .execute(conn)?;
        }
        settle_first(conn, item.id, None, at)?;
        // The next item before the facts, for the same reason.
        let next = match next {
            Some(policy) => take_head(conn, lease, policy)?,
            None => None,
        };
        if !derived.facts.is_empty() {
            let key = protected_collection(conn, &item.session.app_id, &item.session.user_id)?;
            // Read before the first insert: the cached copy of the collection's vectors must only
            // ever hold committed documents.
            let stored = current_vectors(conn, &key, cache)?;
            let mut kept: Vec<&NewFact> = Vec::new();
            for fact in &derived.facts {
                let near_stored: Vec<i64> = stored.as_ref().map_or_else(Vec::new, |copy| {
                    copy.nearest(&fact.embedding, DUPLICATE_CANDIDATES)
                        .into_iter()
                        .filter(|(_, d)| *d <= DUPLICATE_DISTANCE)
                        .map(|(id, _)| id)
                        .collect()
                });
                let restates_stored = !near_stored.is_empty()
                    && documents::table
                        .filter(documents::id.eq_any(&near_stored))
                        .select(documents::content)
                        .load::<String>(conn)?
                        .iter()
                        .any(|old| restates(&fact.content, old));
                let restates_new = kept.iter().any(|k| {
                    k.embedding.embedder == fact.embedding.embedder
                        && cosine_distance(&k.embedding.vector, &fact.embedding.vector)
                            <= DUPLICATE_DISTANCE
                        && restates(&fact.content, &k.content)
                });
                if !restates_stored && !restates_new {
                    kept.push(fact);
                }
            }
            for fact in kept {
                insert_document(
                    conn,
                    &key,
                    &fact.content,
                    &Value::Object(fact.metadata.clone()),
                    &fact.embedding,
                )?;
            }
        }
        Ok::<_, DbError>(Completion::Stored(next.map(Box::new)))
    })
}

/// Ends the first message of queue row `id`: `done`, or `failed` with `error`. A row covering one
/// message is updated in place. A batch row leaves a row recording that message (with its attempts
/// and error) and moves on to the session's next message: due now, not yet attempted. Called by
/// the lease holder, with the session's open items locked.
fn settle_first(
    conn: &mut Conn,
    id: i64,
    error: Option<&str>,
    at: DateTime<Utc>,
) -> QueryResult<usize> {
    let status = if error.is_some() { "failed" } else { "done" };
    let row = deriver_queue::table.filter(deriver_queue::id.eq(id));
    let (app_id, user_id, session_id, message_id, message_count, attempts, created_at): (
        String,
        String,
        String,
        String,
        i32,
        i32,
        DateTime<Utc>,
    ) = row
        .select((
            deriver_queue::app_id,
            deriver_queue::user_id,
            deriver_queue::session_id,
            deriver_queue::message_id,
            deriver_queue::message_count,
            deriver_queue::attempts,
            deriver_queue::created_at,
        ))
        .get_result(conn)?;
    if message_count <= 1 {
        return diesel::update(row)
            .set((
                deriver_queue::status.eq(status),
                deriver_queue::last_error.eq(error),
                deriver_queue::updated_at.eq(at),
            ))
            .execute(conn);
    }
    diesel::insert_into(deriver_queue::table)
        .values((
            deriver_queue::app_id.eq(&app_id),
            deriver_queue::user_id.eq(&user_id),
            deriver_queue::session_id.eq(&session_id),
            deriver_queue::message_id.eq(&message_id),
            deriver_queue::message_count.eq(1),
            deriver_queue::status.eq(status),
            deriver_queue::attempts.eq(attempts),
            deriver_queue::last_error.eq(error),
            deriver_queue::not_before.eq(at),
            deriver_queue::created_at.eq(created_at),
            deriver_queue::updated_at.eq(at),
        ))
        .execute(conn)?;
    // The message after the settled one (messages go only with their session's queue rows and
    // lease, which this caller holds, and a batch's messages
    // follow each other in the session), found in one query.
    let settled = diesel::alias!(messages as settled);
    let position = settled
        .filter(settled.field(messages::public_id).eq(&message_id))
        .select(settled.field(messages::id))
        .single_value();
    let next: String = messages::table
        .filter(messages::session_id.eq(&session_id))
        .filter(messages::id.nullable().gt(position))
        .order(messages::id.asc())
        .select(messages::public_id)
        .first(conn)?;
    diesel::update(row)
        .set((
            deriver_queue::message_id.eq(&next),
            deriver_queue::message_count.eq(message_count - 1),
            deriver_queue::status.eq("pending"),
            deriver_queue::attempts.eq(0),
            deriver_queue::last_error.eq(None::<String>),
            deriver_queue::not_before.eq(at),
            deriver_queue::updated_at.eq(at),
        ))
        .execute(conn)
}

pub fn fail_item(
    conn: &mut Conn,
    lease: &Lease,
    item_id: i64,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> DbResult<bool> {
    dialect::write_tx(conn, |conn| {
        dialect::lock_open_items(conn, &lease.session_id)?;
        if !hold(conn, lease, None)? {
            return Ok(false);
        }
        let at = now();
        let item = deriver_queue::table.filter(deriver_queue::id.eq(item_id));
        let error: String = error.chars().take(2_000).collect();
        match retry_at {
            Some(retry_at) => diesel::update(item)
                .set((
                    deriver_queue::status.eq("pending"),
                    deriver_queue::not_before.eq(retry_at),
                    deriver_queue::last_error.eq(&error),
                    deriver_queue::updated_at.eq(at),
                ))
                .execute(conn)?,
            None => settle_first(conn, item_id, Some(&error), at)?,
        };
        Ok(true)
    })
}

/// Per status: rows, the messages they cover, and the lowest row id.
type StatusRow = (String, i64, Option<i64>, Option<i64>);

/// Message counts by status from [`StatusRow`]s. A row in progress covers one message in progress
/// and the rest of its batch still pending.
fn tally(rows: Vec<StatusRow>) -> (QueueCounts, Option<i64>) {
    let mut counts = QueueCounts::default();
    let mut oldest_open: Option<i64> = None;
    for (status, rows, messages, first) in rows {
        let messages = messages.unwrap_or(rows);
        match status.as_str() {
            "pending" => counts.pending += messages,
            "processing" => {
                counts.in_progress += rows;
                counts.pending += messages - rows;
            }
            "failed" => counts.failed += messages,
            _ => counts.done += messages,
        }
        if OPEN.contains(&status.as_str()) {
            oldest_open = match (oldest_open, first) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    (counts, oldest_open)
}

/// Messages by status for an app (optionally one user or session), read through its index.
pub fn queue_counts(conn: &mut Conn, scope: &QueueScope) -> DbResult<QueueCounts> {
    let mut query = deriver_queue::table
        .filter(deriver_queue::app_id.eq(&scope.app_id))
        .group_by(deriver_queue::status)
        .select((
            deriver_queue::status,
            diesel::dsl::count_star(),
            diesel::dsl::sum(deriver_queue::message_count),
            diesel::dsl::min(deriver_queue::id),
        ))
        .into_boxed();
    if let Some(user_id) = &scope.user_id {
        query = query.filter(deriver_queue::user_id.eq(user_id));
    }
    if let Some(session_id) = &scope.session_id {
        query = query.filter(deriver_queue::session_id.eq(session_id));
    }
    let (mut counts, oldest_open) = tally(query.load(conn)?);
    if let Some(id) = oldest_open {
        counts.oldest_open = deriver_queue::table
            .find(id)
            .select(deriver_queue::created_at)
            .get_result(conn)
            .optional()?;
    }
    Ok(counts)
}

/// The whole queue's open and failed messages (read through partial indexes) and the oldest open
/// item's time; `done` is not counted: it grows with every message.
pub fn queue_depth(conn: &mut Conn) -> DbResult<QueueCounts> {
    let mut rows: Vec<StatusRow> = Vec::new();
    for status in ["pending", "processing", "failed"] {
        let (n, messages): (i64, Option<i64>) = deriver_queue::table
            .filter(deriver_queue::status.eq(status))
            .select((
                diesel::dsl::count_star(),
                diesel::dsl::sum(deriver_queue::message_count),
            ))
            .get_result(conn)?;
        rows.push((status.to_string(), n, messages, None));
    }
    let (mut counts, _) = tally(rows);
    counts.oldest_open = deriver_queue::table
        .filter(deriver_queue::status.eq_any(OPEN))
        .order(deriver_queue::id.asc())
        .select(deriver_queue::created_at)
        .first(conn)
        .optional()?;
    Ok(counts)
}

/// The session's conversation for the dialectic: U404 / S404 first.
pub fn conversation(conn: &mut Conn, key: &SessionKey) -> DbResult<Conversation> {
    let user_exists: bool = diesel::select(diesel::dsl::exists(
        users::table
            .filter(users::public_id.eq(&key.user_id))
            .filter(users::app_id.eq(&key.app_id)),
    ))
    .get_result(conn)?;
    if !user_exists {
        return Err(Error::user_not_found(&key.user_id).into());
    }
    super::sessions::get_session(conn, key)?;
    let short = latest_summary(conn, &key.session_id, SUMMARY_SHORT_LABEL)?;
    let long = latest_summary(conn, &key.session_id, SUMMARY_LONG_LABEL)?;
    let recent = messages_between(
        conn,
        &key.session_id,
        short.as_ref().map(|s| s.1),
        None,
        RECENT_LIMIT,
    )?;
    let last_user_message = messages::table
        .filter(messages::session_id.eq(&key.session_id))
        .filter(messages::is_user.eq(true))
        .order(messages::id.desc())
        .select(messages::public_id)
        .first(conn)
        .optional()?;
    Ok(Conversation {
        short_summary: short.map(|s| s.0),
        long_summary: long.map(|s| s.0),
        recent,
        last_user_message,
    })
}

/// Saves the context of a dialectic answer as a metamessage of the session.
pub fn save_representation(
    conn: &mut Conn,
    key: &SessionKey,
    message_id: Option<&str>,
    content: &str,
) -> DbResult<()> {
    dialect::write_tx(conn, |conn| {
        diesel::insert_into(metamessages::table)
            .values(&NewMetamessageRow {
                public_id: &new_id(),
                app_id: &key.app_id,
                user_id: &key.user_id,
                session_id: Some(&key.session_id),
                message_id,
                label: REPRESENTATION_LABEL,
                content,
                metadata: &Value::Object(Default::default()),
                created_at: now(),
            })
            .execute(conn)?;
        Ok(())
    })
}
