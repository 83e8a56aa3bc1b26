//! What the deriver and the dialectic read and write besides the queue: conversation windows,
//! summaries, the user's facts (stored under the deriver's duplicate rule) and kept
//! representations. How much an item reads and when a fact is a duplicate are the deriver's
//! (`ItemPolicy`, `DuplicateRule`); this module applies them.

use super::documents::{current_vectors, insert_document};
use super::messages::MessageRow;
use super::metamessages::NewMetamessageRow;
use super::schema::{collections, documents, messages, metamessages, users};
use super::{dialect, Conn};
use crate::corpus::CollectionCache;
use crate::DbResult;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use honcho_domain::insights::{
    Conversation, DuplicateRule, ItemPolicy, NewFact, NewSummary, Summary, WorkItem,
    LONG_SUMMARY_EVERY, REPRESENTATION_LABEL, SHORT_SUMMARY_EVERY, SUMMARY_LONG_LABEL,
    SUMMARY_SHORT_LABEL,
};
use honcho_domain::vector::cosine_distance;
use honcho_domain::{
    id::new_id, now, CollectionKey, Error, Message, SessionKey, PROTECTED_COLLECTION,
};
use serde_json::Value;

/// Queue item `id` (attempt `attempt`) of `key`'s session, on message `message_id`, with the
/// conversation it reads under `policy`: the messages since the latest short summary (for a user's
/// message or a short summary due), and since the latest long summary when one is due.
pub(super) fn work_item(
    conn: &mut Conn,
    key: SessionKey,
    id: i64,
    attempt: i32,
    message_id: &str,
    policy: ItemPolicy,
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
            policy.recent_messages,
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
            policy.long_messages,
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

/// Stores an item's summaries as metamessages of its session.
pub(super) fn store_summaries(
    conn: &mut Conn,
    item: &WorkItem,
    summaries: &[NewSummary],
    at: DateTime<Utc>,
) -> QueryResult<()> {
    for summary in summaries {
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
    Ok(())
}

/// Stores an item's facts in the user's protected collection (made when missing), leaving out
/// those `rule` calls near-duplicates of the user's stored facts nearest to them (of the same
/// embedder) or of the item's facts kept before them; returns how many it stored.
pub(super) fn store_facts(
    conn: &mut Conn,
    cache: &CollectionCache,
    item: &WorkItem,
    facts: &[NewFact],
    rule: &dyn DuplicateRule,
) -> DbResult<usize> {
    if facts.is_empty() {
        return Ok(0);
    }
    let key = protected_collection(conn, &item.session.app_id, &item.session.user_id)?;
    // Read before the first insert: the cached copy of the collection's vectors must only ever
    // hold committed documents.
    let stored = current_vectors(conn, &key, cache)?;
    let mut kept: Vec<&NewFact> = Vec::new();
    for fact in facts {
        let near: Vec<(i64, f32)> = stored.as_ref().map_or_else(Vec::new, |copy| {
            copy.nearest(&fact.embedding, rule.candidates())
        });
        let contents: Vec<(i64, String)> = if near.is_empty() {
            Vec::new()
        } else {
            documents::table
                .filter(documents::id.eq_any(near.iter().map(|(id, _)| *id)))
                .select((documents::id, documents::content))
                .load(conn)?
        };
        let restates_stored = contents.iter().any(|(id, old)| {
            near.iter()
                .any(|(n, d)| n == id && rule.duplicates(&fact.content, old, *d))
        });
        let restates_new = kept.iter().any(|k| {
            k.embedding.embedder == fact.embedding.embedder
                && rule.duplicates(
                    &fact.content,
                    &k.content,
                    cosine_distance(&k.embedding.vector, &fact.embedding.vector),
                )
        });
        if !restates_stored && !restates_new {
            kept.push(fact);
        }
    }
    for fact in &kept {
        insert_document(
            conn,
            &key,
            &fact.content,
            &Value::Object(fact.metadata.clone()),
            &fact.embedding,
        )?;
    }
    Ok(kept.len())
}

/// The session's conversation for the dialectic (at most `recent` messages after the latest short
/// summary): U404 / S404 first.
pub fn conversation(conn: &mut Conn, key: &SessionKey, recent: i64) -> DbResult<Conversation> {
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
        recent,
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
