use super::schema::{deriver_queue, messages, sessions, users};
use super::{dialect, into_map, session_of, updated_row, Conn};
use crate::corpus::{Corpus, MessageCorpus, MessageMeta, MessagesVersion, SessionMark, UserCache};
use crate::{DbError, DbResult};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use honcho_domain::embed::Embedder;
use honcho_domain::retrieval::{MessageScope, Ranked, Search};
use honcho_domain::vector::{decode, encode};
use honcho_domain::{
    deriver_disabled, id::new_id, now, Embedding, Error, Message, Metadata, NewMessage, Page,
    PageRequest, SessionKey,
};
use serde_json::Value;
use std::sync::Arc;

#[derive(Queryable, Selectable)]
#[diesel(table_name = messages)]
pub(super) struct MessageRow {
    public_id: String,
    app_id: String,
    user_id: String,
    session_id: String,
    is_user: bool,
    content: String,
    metadata: Value,
    created_at: DateTime<Utc>,
}

impl From<MessageRow> for Message {
    fn from(r: MessageRow) -> Self {
        Message {
            id: r.public_id,
            app_id: r.app_id,
            user_id: r.user_id,
            session_id: r.session_id,
            is_user: r.is_user,
            content: r.content,
            metadata: into_map(r.metadata),
            created_at: r.created_at,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = messages)]
pub(super) struct NewMessageRow<'a> {
    pub public_id: String,
    pub app_id: &'a str,
    pub user_id: &'a str,
    pub session_id: &'a str,
    pub is_user: bool,
    pub content: String,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub embedding: Option<Vec<u8>>,
    pub embedder: Option<String>,
    pub dimensions: Option<i32>,
}

/// Stores `batch` in the session, in order, in one transaction: all of it or none of it. The session
/// must belong to the user and app of `key`. With `enqueue`, the batch also gets a deriver queue
/// row in the same transaction (unless the session disables the deriver).
pub fn create_messages(
    conn: &mut Conn,
    key: &SessionKey,
    batch: Vec<NewMessage>,
    enqueue: bool,
) -> DbResult<Vec<Message>> {
    dialect::write_tx(conn, |conn| {
        // Locks the session row for the rest of the transaction, so a session's messages are numbered
        // in commit order, and keeps its message count.
        let session_metadata: Value = diesel::update(session_of(key))
            .set(sessions::message_count.eq(sessions::message_count + batch.len() as i64))
            .returning(sessions::metadata)
            .get_result(conn)
            .optional()?
            .ok_or_else(Error::session_not_found)?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let created_at = now();
        let rows: Vec<NewMessageRow> = batch
            .into_iter()
            .map(|m| NewMessageRow {
                public_id: new_id(),
                app_id: &key.app_id,
                user_id: &key.user_id,
                session_id: &key.session_id,
                is_user: m.is_user,
                content: m.content.into_inner(),
                metadata: Value::Object(m.metadata.into_inner()),
                created_at,
                // Stored without a vector: see `current_messages`.
                embedding: None,
                embedder: None,
                dimensions: None,
            })
            .collect();
        let enqueue = enqueue && !deriver_disabled(&into_map(session_metadata));
        diesel::insert_into(messages::table)
            .values(&rows)
            .execute(conn)?;
        if enqueue {
            queue_batch(conn, key, &rows[0].public_id, rows.len(), created_at)?;
        }
        Ok::<_, DbError>(
            rows.into_iter()
                .map(|r| Message {
                    id: r.public_id,
                    app_id: key.app_id.clone(),
                    user_id: key.user_id.clone(),
                    session_id: key.session_id.clone(),
                    is_user: r.is_user,
                    content: r.content,
                    metadata: into_map(r.metadata),
                    created_at: r.created_at,
                })
                .collect(),
        )
    })
}

/// Queues a stored batch for the deriver: one row, its first message and how many follow it in
/// the session (the caller holds the session row's lock, so no other batch of the session
/// interleaves).
pub(super) fn queue_batch(
    conn: &mut Conn,
    key: &SessionKey,
    first: &str,
    count: usize,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(deriver_queue::table)
        .values((
            deriver_queue::app_id.eq(&key.app_id),
            deriver_queue::user_id.eq(&key.user_id),
            deriver_queue::session_id.eq(&key.session_id),
            deriver_queue::message_id.eq(first),
            deriver_queue::message_count.eq(count as i32),
            deriver_queue::not_before.eq(at),
            deriver_queue::created_at.eq(at),
            deriver_queue::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Messages of `key`'s session with this id: the only way a message is looked up.
#[diesel::dsl::auto_type(no_type_alias)]
fn message_of<'a>(key: &'a SessionKey, id: &'a str) -> _ {
    let session_id: &'a str = &key.session_id;
    let user_id: &'a str = &key.user_id;
    let app_id: &'a str = &key.app_id;
    messages::table
        .filter(messages::public_id.eq(id))
        .filter(messages::session_id.eq(session_id))
        .filter(messages::user_id.eq(user_id))
        .filter(messages::app_id.eq(app_id))
}

pub fn get_message(conn: &mut Conn, key: &SessionKey, id: &str) -> DbResult<Message> {
    message_of(key, id)
        .select(MessageRow::as_select())
        .get_result(conn)
        .optional()?
        .map(Message::from)
        .ok_or_else(|| Error::message_not_found(id).into())
}

pub fn update_message(
    conn: &mut Conn,
    key: &SessionKey,
    id: &str,
    metadata: Metadata,
) -> DbResult<Message> {
    dialect::single_write(conn, |conn| {
        updated_row(
            diesel::update(message_of(key, id))
                .set(messages::metadata.eq(Value::Object(metadata.into_inner())))
                .returning(MessageRow::as_returning()),
            conn,
        )?
        .map(Message::from)
        .ok_or_else(|| Error::message_not_found_for_update().into())
    })
}

/// A page of the session's messages. Without a filter the total is the session's stored count, so a
/// page costs one index range read however long the session is.
pub fn list_messages(
    conn: &mut Conn,
    key: &SessionKey,
    filter: Option<&Metadata>,
    req: PageRequest,
) -> DbResult<Page<Message>> {
    let count: Option<i64> = session_of(key)
        .select(sessions::message_count)
        .get_result(conn)
        .optional()?;
    let Some(count) = count else {
        return Ok(Page::new(Vec::new(), 0, req));
    };
    let query = || {
        let mut q = messages::table
            .filter(messages::session_id.eq(&key.session_id))
            .into_boxed();
        if let Some(f) = filter {
            q = q.filter(dialect::metadata_contains(f.as_map()));
        }
        q
    };
    let total = match filter {
        Some(_) => query().count().get_result(conn)?,
        None => count,
    };
    page_by_id!(conn, req, total, query, MessageRow, messages::id)
}

/// The `top` messages of the user best ranked for `search` ([`honcho_domain::retrieval`]), best
/// first, among those `scope` accepts: U404 for an unknown user, S404 when `scope` names a session
/// the user does not have. Scores come from the cached copy of the user's messages (brought up to
/// date first); the database applies a metadata filter and reads the winners' rows. Also answers
/// the user's name, the speaker of the messages ranked (a search embedded for another name may
/// want to be made again: [`honcho_domain::retrieval::without_speaker`]).
pub fn query_messages(
    conn: &mut Conn,
    cache: &UserCache,
    app_id: &str,
    user_id: &str,
    scope: &MessageScope,
    search: &Search,
    top: usize,
) -> DbResult<(Ranked<Message>, String)> {
    let copy = current_messages(conn, cache, app_id, user_id)?
        .ok_or_else(|| Error::user_not_found(user_id))?;
    let ranked = rank_messages(conn, &copy, scope, search, top)?;
    Ok((ranked, copy.version.speaker.clone()))
}

/// The user's `top` messages (every session) best ranked for each search (one read of the user's
/// copy for all of them).
pub fn search_messages_for_each(
    conn: &mut Conn,
    cache: &UserCache,
    key: &SessionKey,
    searches: &[Search],
    top: usize,
) -> DbResult<Vec<Vec<Message>>> {
    let copy = current_messages(conn, cache, &key.app_id, &key.user_id)?
        .ok_or_else(|| Error::user_not_found(&key.user_id))?;
    let scope = MessageScope::default();
    searches
        .iter()
        .map(|search| rank_messages(conn, &copy, &scope, search, top).map(|r| r.items))
        .collect()
}

/// [`query_messages`] over a current copy.
fn rank_messages(
    conn: &mut Conn,
    copy: &MessageCorpus,
    scope: &MessageScope,
    search: &Search,
    top: usize,
) -> DbResult<Ranked<Message>> {
    let sessions: Option<Vec<u32>> = match &scope.sessions {
        Some(wanted) => Some(
            wanted
                .iter()
                .map(|s| {
                    copy.version
                        .sessions
                        .iter()
                        .position(|m| m.public_id == *s)
                        .map(|i| i as u32)
                        .ok_or_else(Error::session_not_found)
                })
                .collect::<Result<_, _>>()?,
        ),
        None => None,
    };
    let allowed: Option<Vec<i64>> = match &scope.metadata {
        // Through the sessions' index (the ones asked for, else all of the user's).
        Some(f) => {
            let searched: Vec<&str> = match &scope.sessions {
                Some(wanted) => wanted.iter().map(String::as_str).collect(),
                None => copy
                    .version
                    .sessions
                    .iter()
                    .map(|m| m.public_id.as_str())
                    .collect(),
            };
            Some(
                messages::table
                    .filter(messages::session_id.eq_any(searched))
                    .filter(dialect::metadata_contains(f.as_map()))
                    .order(messages::id.asc())
                    .select(messages::id)
                    .load(conn)?,
            )
        }
        None => None,
    };
    let keep = |i: usize| {
        let meta = copy.meta(i);
        sessions.as_ref().is_none_or(|s| s.contains(&meta.session))
            && scope.is_user.is_none_or(|u| u == meta.is_user)
            && allowed
                .as_ref()
                .is_none_or(|a| a.binary_search(&copy.id(i)).is_ok())
    };
    let ranked = copy.rank(search, keep, top);
    Ok(Ranked {
        items: messages_in_order(conn, &ranked.items)?,
        incomparable: ranked.incomparable,
    })
}

/// The messages of internal ids `ids`, in that order.
fn messages_in_order(conn: &mut Conn, ids: &[i64]) -> DbResult<Vec<Message>> {
    let mut rows: Vec<(i64, MessageRow)> = messages::table
        .filter(messages::id.eq_any(ids))
        .select((messages::id, MessageRow::as_select()))
        .load(conn)?;
    rows.sort_by_key(|(id, _)| ids.iter().position(|i| i == id));
    Ok(rows.into_iter().map(|(_, r)| Message::from(r)).collect())
}

/// `(id, session, is_user, embedder, embedding, content)` of a message.
type MessageVectorRow = (i64, String, bool, Option<String>, Option<Vec<u8>>, String);

/// `(name, session id, public id, message count, vector revision)`: a user and one of its
/// sessions, or the user alone (`None`s) when it has none.
type MarkRow = (
    String,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

/// The user's name and sessions (in id order), as the search state compares them; `None` when the
/// user does not exist (one round trip for both, a statement prepared once per connection).
fn session_marks(
    conn: &mut Conn,
    app_id: &str,
    user_id: &str,
) -> QueryResult<Option<MessagesVersion>> {
    let rows: Vec<MarkRow> = users::table
        .left_join(
            sessions::table.on(sessions::user_id
                .eq(users::public_id)
                .and(sessions::app_id.eq(users::app_id))),
        )
        .filter(users::public_id.eq(user_id))
        .filter(users::app_id.eq(app_id))
        .order(sessions::id.nullable().asc())
        .select((
            users::name,
            sessions::id.nullable(),
            sessions::public_id.nullable(),
            sessions::message_count.nullable(),
            sessions::vector_revision.nullable(),
        ))
        .load(conn)?;
    let Some(speaker) = rows.first().map(|r| r.0.clone()) else {
        return Ok(None);
    };
    let sessions = rows
        .into_iter()
        .filter_map(|(_, id, public_id, count, vector_revision)| {
            Some(SessionMark {
                id: id?,
                public_id: public_id?,
                count: count?,
                vector_revision: vector_revision?,
            })
        })
        .collect();
    Ok(Some(MessagesVersion { speaker, sessions }))
}

/// At most `limit` messages of `sessions` after internal id `after`, in id order (read through each session's
/// index: messages have no index by user, which would cost every write).
fn message_vectors(
    conn: &mut Conn,
    sessions: &[SessionMark],
    after: i64,
    limit: i64,
) -> QueryResult<Vec<MessageVectorRow>> {
    if sessions.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = sessions.iter().map(|m| m.public_id.as_str()).collect();
    messages::table
        .filter(messages::session_id.eq_any(ids))
        .filter(messages::id.gt(after))
        .order(messages::id.asc())
        .limit(limit)
        .select((
            messages::id,
            messages::session_id,
            messages::is_user,
            messages::embedder,
            messages::embedding,
            messages::content,
        ))
        .load(conn)
}

/// Adds `rows` (in id order, after the copy's) to the copy and counts them in their sessions.
/// Messages stored without a vector get one from `fill` (the in-process embedder), when given.
fn append_messages(
    copy: &mut MessageCorpus,
    rows: Vec<MessageVectorRow>,
    fill: Option<&dyn Embedder>,
) {
    let mut computed = match fill {
        Some(embedder) => {
            let texts: Vec<&str> = rows
                .iter()
                .filter(|r| r.4.is_none())
                .map(|r| r.5.as_str())
                .collect();
            match embedder.embed_each(&texts) {
                Ok(vectors) => vectors,
                // Found by their words until a later read.
                Err(e) => {
                    tracing::warn!(error = %e, "message search: cannot embed messages");
                    Vec::new()
                }
            }
        }
        None => Vec::new(),
    }
    .into_iter();
    let sessions: std::collections::HashMap<String, usize> = copy
        .version
        .sessions
        .iter()
        .enumerate()
        .map(|(i, m)| (m.public_id.clone(), i))
        .collect();
    // The user is the speaker of the user's messages ([`MessagesVersion::speaker`]).
    let speaker = copy.version.speaker.clone();
    for (id, session_id, is_user, embedder, bytes, content) in rows {
        let vector = match bytes {
            Some(bytes) => embedder.as_deref().zip(decode(&bytes)),
            // Stored without one: computed above, in the same order.
            None => fill.zip(computed.next()).map(|(e, v)| (e.id(), v)),
        };
        // Rows are read for the copy's sessions only.
        let Some(&session) = sessions.get(&session_id) else {
            continue;
        };
        copy.version.sessions[session].count += 1;
        let meta = MessageMeta {
            session: session as u32,
            is_user,
        };
        let said_by = if is_user { speaker.as_str() } else { "" };
        copy.push_said(id, vector, (&content, said_by), meta);
    }
}

/// The cached copy of the user's messages, brought up to date. Its version is the user's sessions
/// (in id order) with, for each, the messages the copy holds and the session's vector revision;
/// the copy is current when it holds at least the messages the database counts in each of the
/// same sessions, with the same vector revisions. A session's message count is updated in the
/// transaction that stores its messages (under the session's row lock), so a count above the
/// copy's means messages the copy lacks; a vector revision that moved means messages given a new
/// vector; a session gone (erased) means messages gone. When only messages were added, all after
/// the copy's last, the copy is extended with just those; otherwise it is read whole.
fn current_messages(
    conn: &mut Conn,
    cache: &UserCache,
    app_id: &str,
    user_id: &str,
) -> DbResult<Option<Arc<MessageCorpus>>> {
    let Some(marks) = session_marks(conn, app_id, user_id)? else {
        return Ok(None);
    };
    let empty = |marks: &[SessionMark]| -> Vec<SessionMark> {
        marks
            .iter()
            .map(|m| SessionMark {
                count: 0,
                ..m.clone()
            })
            .collect()
    };
    let copy = cache.copies.current(
        user_id,
        |c| covers(&c.version, &marks),
        |stale| {
            if let Some(old) = stale.filter(|old| extends(&old.version, &marks)) {
                let mut copy = old.clone();
                // Sessions created since, empty so far in the copy.
                copy.version
                    .sessions
                    .extend(empty(&marks.sessions[old.version.sessions.len()..]));
                read_into(conn, &mut copy, &marks.sessions, cache)?;
                if covers(&copy.version, &marks) {
                    return Ok::<_, DbError>(copy);
                }
            }
            let mut copy = Corpus::new(MessagesVersion {
                speaker: marks.speaker.clone(),
                sessions: empty(&marks.sessions),
            });
            read_into(conn, &mut copy, &marks.sessions, cache)?;
            Ok(copy)
        },
    )?;
    Ok(Some(copy))
}

/// Messages read per round into a copy, so that a large user's rows are never all in memory at
/// once besides the copy.
const READ_PAGE: i64 = 2_000;

/// Adds the messages of `marks`'s sessions after the copy's last to the copy, a page at a time
/// (only those sessions are read, so every row read joins the copy and moves its last id).
fn read_into(
    conn: &mut Conn,
    copy: &mut MessageCorpus,
    marks: &[SessionMark],
    cache: &UserCache,
) -> QueryResult<()> {
    loop {
        let rows = message_vectors(conn, marks, copy.last_id(), READ_PAGE)?;
        let full = rows.len() as i64 == READ_PAGE;
        append_messages(copy, rows, cache.fill());
        if !full {
            return Ok(());
        }
    }
}

/// Whether `new` only adds to `old`: the same user's name, the same sessions first, with the same
/// vector revisions.
fn extends(old: &MessagesVersion, new: &MessagesVersion) -> bool {
    old.speaker == new.speaker
        && old.sessions.len() <= new.sessions.len()
        && old
            .sessions
            .iter()
            .zip(&new.sessions)
            .all(|(o, n)| o.id == n.id && o.vector_revision == n.vector_revision)
}

/// Whether the copy (`held`) holds every message `marks` counts: the same user's name and
/// sessions, with the same vector revisions, and at least as many messages in each.
fn covers(held: &MessagesVersion, marks: &MessagesVersion) -> bool {
    held.sessions.len() == marks.sessions.len()
        && extends(held, marks)
        && held
            .sessions
            .iter()
            .zip(&marks.sessions)
            .all(|(h, m)| h.count >= m.count)
}

/// Up to `limit` messages after internal id `after`: with `missing`, those without a stored vector;
/// with `other_than`, those whose stored vector is from another embedder or of another size:
/// `(internal id, content)`, in id order.
pub fn messages_to_embed(
    conn: &mut Conn,
    missing: bool,
    other_than: Option<(&str, i32)>,
    after: i64,
    limit: i64,
) -> DbResult<Vec<(i64, String)>> {
    let mut q = messages::table.filter(messages::id.gt(after)).into_boxed();
    q = match (missing, other_than) {
        (true, Some((name, dims))) => q.filter(
            messages::embedder
                .is_null()
                .or(messages::embedder.ne(name))
                .or(messages::dimensions.ne(dims)),
        ),
        (false, Some((name, dims))) => q.filter(
            messages::embedder
                .ne(name)
                .or(messages::dimensions.ne(dims)),
        ),
        (true, None) => q.filter(messages::embedder.is_null()),
        (false, None) => return Ok(Vec::new()),
    };
    Ok(q.order(messages::id.asc())
        .limit(limit)
        .select((messages::id, messages::content))
        .load(conn)?)
}

/// Stores each vector as its message's and moves the vector revision of their sessions, in one
/// transaction, so that cached copies of those users' messages are read again.
pub fn set_message_embeddings(conn: &mut Conn, vectors: &[(i64, Embedding)]) -> DbResult<()> {
    if vectors.is_empty() {
        return Ok(());
    }
    dialect::write_tx(conn, |conn| {
        for (id, embedding) in vectors {
            diesel::update(messages::table.filter(messages::id.eq(id)))
                .set((
                    messages::embedding.eq(encode(&embedding.vector)),
                    messages::embedder.eq(&embedding.embedder),
                    messages::dimensions.eq(embedding.vector.len() as i32),
                ))
                .execute(conn)?;
        }
        let ids: Vec<i64> = vectors.iter().map(|(id, _)| *id).collect();
        let sessions: Vec<String> = messages::table
            .filter(messages::id.eq_any(&ids))
            .select(messages::session_id)
            .distinct()
            .load(conn)?;
        diesel::update(sessions::table.filter(sessions::public_id.eq_any(&sessions)))
            .set(sessions::vector_revision.eq(sessions::vector_revision + 1))
            .execute(conn)?;
        Ok::<_, DbError>(())
    })
}
