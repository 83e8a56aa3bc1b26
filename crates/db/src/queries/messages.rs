use super::schema::{deriver_queue, messages, sessions};
use super::{dialect, into_map, page_of, session_of, updated_row, Conn};
use crate::{DbError, DbResult};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use honcho_domain::{
    deriver_disabled, id::new_id, now, Error, Message, Metadata, NewMessage, Page, PageRequest,
    SessionKey,
};
use serde_json::Value;

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
            })
            .collect();
        let enqueue = enqueue && !deriver_disabled(&into_map(session_metadata));
        diesel::insert_into(messages::table)
            .values(&rows)
            .execute(conn)?;
        if enqueue {
            // One queue row for the whole batch: its first message and how many follow it in the
            // session (the session row is locked, so no other batch of the session interleaves).
            diesel::insert_into(deriver_queue::table)
                .values((
                    deriver_queue::app_id.eq(&key.app_id),
                    deriver_queue::user_id.eq(&key.user_id),
                    deriver_queue::session_id.eq(&key.session_id),
                    deriver_queue::message_id.eq(&rows[0].public_id),
                    deriver_queue::message_count.eq(rows.len() as i32),
                    deriver_queue::not_before.eq(created_at),
                    deriver_queue::created_at.eq(created_at),
                    deriver_queue::updated_at.eq(created_at),
                ))
                .execute(conn)?;
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
    page_of::<MessageRow, Message>(total, req, |offset| {
        let q = query()
            .select(MessageRow::as_select())
            .limit(req.limit())
            .offset(offset);
        if req.reverse {
            q.order(messages::id.desc())
        } else {
            q.order(messages::id.asc())
        }
        .load(conn)
    })
}
