//! The deriver's queue: the only code that knows its statuses' storage and their SQL. Items are
//! written by `create_messages` in the messages' transaction. A worker leases a session
//! (`deriver_leases`, one row per leased session, a fresh token per claim), takes the session's
//! items oldest first, and commits each item's outputs with its completion in one transaction that
//! first checks its token: a worker whose lease was taken over writes nothing. What an item reads
//! and writes besides the queue is in `memory`.

use super::memory::{store_facts, store_summaries, work_item};
use super::schema::{deriver_leases, deriver_queue, messages};
use super::{dialect, page_of, Conn};
use crate::corpus::CollectionCache;
use crate::{DbError, DbResult};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use honcho_domain::insights::{Completion, Derived, DuplicateRule, ItemPolicy, Lease, WorkItem};
use honcho_domain::queue::{
    truncate_error, FailedItem, FailedScope, QueueCounts, QueueScope, QueueStatus, RetryRequest,
    ERROR_KEPT_MAX, ERROR_SHOWN_MAX, OPEN_TEXTS,
};
use honcho_domain::{id::new_id, now, Page, PageRequest, SessionKey};

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
        // `$1` (and `$2`, `$3`: the open statuses) are the same parameter at both places on both
        // engines. SQLite numbers `$`-parameters in the order they first appear: `$1` comes first.
        let query = format!(
            "SELECT q.session_id FROM deriver_queue q \
             WHERE q.not_before <= $1 AND q.status IN ($2, $3) \
             AND NOT EXISTS (SELECT 1 FROM deriver_queue p WHERE p.session_id = q.session_id \
                 AND p.status IN ($2, $3) AND p.id < q.id) \
             AND NOT EXISTS (SELECT 1 FROM deriver_leases l WHERE l.session_id = q.session_id \
                 AND l.leased_until > $1) \
             ORDER BY q.id LIMIT 1 {}",
            dialect::SKIP_LOCKED
        );
        let Some(candidate) = diesel::sql_query(query)
            .bind::<super::super::types::Moment, _>(at)
            .bind::<diesel::sql_types::Text, _>(OPEN_TEXTS[0])
            .bind::<diesel::sql_types::Text, _>(OPEN_TEXTS[1])
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
                    .filter(deriver_queue::status.eq(QueueStatus::Processing.as_str())),
            )
            .set(deriver_queue::status.eq(QueueStatus::Pending.as_str()))
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
            .filter(deriver_queue::status.eq_any(OPEN_TEXTS))
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
                deriver_queue::status.eq(QueueStatus::Processing.as_str()),
                deriver_queue::attempts.eq(head.attempts + 1),
                deriver_queue::updated_at.eq(at),
            ))
            .execute(conn)?;
        let key = SessionKey {
            app_id: head.app_id,
            user_id: head.user_id,
            session_id: lease.session_id.clone(),
        };
        return work_item(
            conn,
            key,
            head.id,
            head.attempts + 1,
            &head.message_id,
            policy,
        )
        .map(Some);
    }
}

/// Stores an item's outcome under its lease (see `DeriverStore::complete_item`): the summaries,
/// the item settled, the session's next item taken, then the facts.
pub fn complete_item(
    conn: &mut Conn,
    cache: &CollectionCache,
    lease: &Lease,
    item: &WorkItem,
    derived: Derived,
    rule: &dyn DuplicateRule,
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
        store_summaries(conn, item, &derived.summaries, at)?;
        settle_first(conn, item.id, None, at)?;
        // The next item before the facts, for the same reason.
        let next = match next {
            Some(policy) => take_head(conn, lease, policy)?,
            None => None,
        };
        let facts = store_facts(conn, cache, item, &derived.facts, rule)?;
        Ok::<_, DbError>(Completion::Stored {
            facts,
            next: next.map(Box::new),
        })
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
    let status = match error {
        Some(_) => QueueStatus::Failed,
        None => QueueStatus::Done,
    }
    .as_str();
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
            deriver_queue::status.eq(QueueStatus::Pending.as_str()),
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
        let error: String = error.chars().take(ERROR_KEPT_MAX).collect();
        match retry_at {
            Some(retry_at) => diesel::update(item)
                .set((
                    deriver_queue::status.eq(QueueStatus::Pending.as_str()),
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
        let status = QueueStatus::parse(&status);
        match status {
            Some(QueueStatus::Pending) => counts.pending += messages,
            Some(QueueStatus::Processing) => {
                counts.in_progress += rows;
                counts.pending += messages - rows;
            }
            Some(QueueStatus::Failed) => counts.failed += messages,
            Some(QueueStatus::Done) | None => counts.done += messages,
        }
        if status.is_some_and(QueueStatus::is_open) {
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
    if counts.failed > 0 {
        let failed = FailedScope {
            app_id: Some(scope.app_id.clone()),
            user_id: scope.user_id.clone(),
            session_id: scope.session_id.clone(),
        };
        counts.oldest_failure = failed_rows(&failed, None)
            .order(deriver_queue::id.asc())
            .select((deriver_queue::updated_at, deriver_queue::last_error))
            .first::<(DateTime<Utc>, Option<String>)>(conn)
            .optional()?
            .map(|(at, error)| {
                let error = error.unwrap_or_default();
                (at, truncate_error(&error, ERROR_SHOWN_MAX))
            });
    }
    Ok(counts)
}

/// The whole queue's open and failed messages (read through partial indexes) and the oldest open
/// item's time; `done` is not counted: it grows with every message.
pub fn queue_depth(conn: &mut Conn) -> DbResult<QueueCounts> {
    let mut rows: Vec<StatusRow> = Vec::new();
    for status in [
        QueueStatus::Pending,
        QueueStatus::Processing,
        QueueStatus::Failed,
    ] {
        let status = status.as_str();
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
        .filter(deriver_queue::status.eq_any(OPEN_TEXTS))
        .order(deriver_queue::id.asc())
        .select(deriver_queue::created_at)
        .first(conn)
        .optional()?;
    Ok(counts)
}

/// The failed rows of `scope` (of them only those of `message_ids`, when given).
fn failed_rows<'a>(
    scope: &'a FailedScope,
    message_ids: Option<&'a [String]>,
) -> deriver_queue::BoxedQuery<'a, super::super::Backend> {
    let mut q = deriver_queue::table
        .filter(deriver_queue::status.eq(QueueStatus::Failed.as_str()))
        .into_boxed();
    if let Some(app_id) = &scope.app_id {
        q = q.filter(deriver_queue::app_id.eq(app_id));
    }
    if let Some(user_id) = &scope.user_id {
        q = q.filter(deriver_queue::user_id.eq(user_id));
    }
    if let Some(session_id) = &scope.session_id {
        q = q.filter(deriver_queue::session_id.eq(session_id));
    }
    if let Some(ids) = message_ids {
        q = q.filter(deriver_queue::message_id.eq_any(ids));
    }
    q
}

#[derive(Queryable)]
struct FailedRow {
    message_id: String,
    session_id: String,
    user_id: String,
    attempts: i32,
    last_error: Option<String>,
    updated_at: DateTime<Utc>,
}

impl From<FailedRow> for FailedItem {
    fn from(r: FailedRow) -> Self {
        FailedItem {
            message_id: r.message_id,
            session_id: r.session_id,
            user_id: r.user_id,
            attempts: r.attempts,
            error: truncate_error(r.last_error.as_deref().unwrap_or(""), ERROR_SHOWN_MAX),
            failed_at: r.updated_at,
        }
    }
}

/// The failed items of `scope`, oldest first (or newest with `reverse`).
pub fn failed_items(
    conn: &mut Conn,
    scope: &FailedScope,
    req: PageRequest,
) -> DbResult<Page<FailedItem>> {
    let query = || failed_rows(scope, None);
    let total: i64 = query().count().get_result(conn)?;
    page_of::<FailedRow, FailedItem>(total, req, |offset| {
        let q = query()
            .select((
                deriver_queue::message_id,
                deriver_queue::session_id,
                deriver_queue::user_id,
                deriver_queue::attempts,
                deriver_queue::last_error,
                deriver_queue::updated_at,
            ))
            .limit(req.limit())
            .offset(offset);
        if req.reverse {
            q.order(deriver_queue::id.desc())
        } else {
            q.order(deriver_queue::id.asc())
        }
        .load(conn)
    })
}

/// A queue row as it is re-queued by a retry.
#[derive(Queryable, Clone)]
struct QueuedRow {
    id: i64,
    app_id: String,
    user_id: String,
    message_id: String,
    message_count: i32,
    attempts: i32,
    not_before: DateTime<Utc>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
}

/// Puts the failed items of `request` back to pending with fresh attempts; returns how many. Per
/// session, in one transaction: the session's row is locked (no batch is stored meanwhile), a
/// worker's lease on it is taken over (its attempt in progress is dropped and done again), and
/// the session's open items and the retried ones are queued again in the order of their messages,
/// so the session's later messages wait behind the retried ones.
pub fn retry_failed(conn: &mut Conn, request: &RetryRequest) -> DbResult<u64> {
    let sessions: Vec<String> = failed_rows(&request.scope, request.message_ids.as_deref())
        .select(deriver_queue::session_id)
        .distinct()
        .load(conn)?;
    let mut retried = 0;
    for session_id in sessions {
        retried += dialect::write_tx(conn, |conn| retry_in_session(conn, &session_id, request))?;
    }
    Ok(retried)
}

fn retry_in_session(conn: &mut Conn, session_id: &str, request: &RetryRequest) -> DbResult<u64> {
    use super::schema::sessions;
    let at = now();
    // Session row, then items, then lease: as a batch (session row, then its queue row) and a
    // worker (items, then lease) take them.
    diesel::update(sessions::table.filter(sessions::public_id.eq(session_id)))
        .set(sessions::message_count.eq(sessions::message_count))
        .execute(conn)?;
    dialect::lock_open_items(conn, session_id)?;
    let columns = (
        deriver_queue::id,
        deriver_queue::app_id,
        deriver_queue::user_id,
        deriver_queue::message_id,
        deriver_queue::message_count,
        deriver_queue::attempts,
        deriver_queue::not_before,
        deriver_queue::last_error,
        deriver_queue::created_at,
    );
    let failed: Vec<QueuedRow> = failed_rows(&request.scope, request.message_ids.as_deref())
        .filter(deriver_queue::session_id.eq(session_id))
        .select(columns)
        .load(conn)?;
    if failed.is_empty() {
        return Ok(0);
    }
    let open: Vec<QueuedRow> = deriver_queue::table
        .filter(deriver_queue::session_id.eq(session_id))
        .filter(deriver_queue::status.eq_any(OPEN_TEXTS))
        .select(columns)
        .load(conn)?;
    // A worker on the session loses its lease: its attempt's outcome is refused, and the item
    // it was on is queued again below with its attempt counted.
    diesel::delete(deriver_leases::table.filter(deriver_leases::session_id.eq(session_id)))
        .execute(conn)?;
    let positions: std::collections::HashMap<String, i64> = messages::table
        .filter(
            messages::public_id.eq_any(
                failed
                    .iter()
                    .chain(&open)
                    .map(|r| r.message_id.as_str())
                    .collect::<Vec<_>>(),
            ),
        )
        .select((messages::public_id, messages::id))
        .load::<(String, i64)>(conn)?
        .into_iter()
        .collect();
    let mut rows: Vec<(QueuedRow, bool)> = failed
        .into_iter()
        .map(|r| (r, true))
        .chain(open.into_iter().map(|r| (r, false)))
        .collect();
    rows.sort_by_key(|(r, _)| positions.get(&r.message_id).copied().unwrap_or(i64::MAX));
    let retried = rows.iter().filter(|(_, retried)| *retried).count() as u64;
    let ids: Vec<i64> = rows.iter().map(|(r, _)| r.id).collect();
    diesel::delete(deriver_queue::table.filter(deriver_queue::id.eq_any(&ids))).execute(conn)?;
    for (row, retried) in rows {
        let (attempts, not_before, last_error) = match retried {
            true => (0, at, None),
            false => (row.attempts, row.not_before, row.last_error),
        };
        diesel::insert_into(deriver_queue::table)
            .values((
                deriver_queue::app_id.eq(&row.app_id),
                deriver_queue::user_id.eq(&row.user_id),
                deriver_queue::session_id.eq(session_id),
                deriver_queue::message_id.eq(&row.message_id),
                deriver_queue::message_count.eq(row.message_count),
                deriver_queue::status.eq(QueueStatus::Pending.as_str()),
                deriver_queue::attempts.eq(attempts),
                deriver_queue::not_before.eq(not_before),
                deriver_queue::last_error.eq(last_error),
                deriver_queue::created_at.eq(row.created_at),
                deriver_queue::updated_at.eq(at),
            ))
            .execute(conn)?;
    }
    Ok(retried)
}
