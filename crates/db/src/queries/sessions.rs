use super::messages::NewMessageRow;
use super::metamessages::NewMetamessageRow;
use super::schema::{messages, metamessages, sessions};
use super::{dialect, into_map, session_of, updated_row, Conn};
use crate::{DbError, DbResult};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use honcho_domain::{id::new_id, now, Error, Metadata, Page, PageRequest, Session, SessionKey};
use serde_json::Value;
use std::collections::HashMap;

#[derive(Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub(super) struct SessionRow {
    public_id: String,
    app_id: String,
    user_id: String,
    is_active: bool,
    metadata: Value,
    created_at: DateTime<Utc>,
}

impl From<SessionRow> for Session {
    fn from(r: SessionRow) -> Self {
        Session {
            id: r.public_id,
            app_id: r.app_id,
            user_id: r.user_id,
            is_active: r.is_active,
            metadata: into_map(r.metadata),
            created_at: r.created_at,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = sessions)]
struct NewSessionRow<'a> {
    public_id: &'a str,
    app_id: &'a str,
    user_id: &'a str,
    is_active: bool,
    metadata: &'a Value,
    message_count: i64,
    created_at: DateTime<Utc>,
}

fn insert_session(
    conn: &mut Conn,
    app_id: &str,
    user_id: &str,
    metadata: Value,
    message_count: i64,
) -> QueryResult<Session> {
    let (id, created_at) = (new_id(), now());
    let row = NewSessionRow {
        public_id: &id,
        app_id,
        user_id,
        is_active: true,
        metadata: &metadata,
        message_count,
        created_at,
    };
    diesel::insert_into(sessions::table)
        .values(&row)
        .execute(conn)?;
    Ok(Session {
        id,
        app_id: app_id.to_string(),
        user_id: user_id.to_string(),
        is_active: true,
        metadata: into_map(metadata),
        created_at,
    })
}

/// Creates an active session. The user must exist in the app (enforced by a foreign key on both ids).
pub fn create_session(
    conn: &mut Conn,
    app_id: &str,
    user_id: &str,
    metadata: Metadata,
) -> DbResult<Session> {
    dialect::single_write(conn, |conn| {
        insert_session(
            conn,
            app_id,
            user_id,
            Value::Object(metadata.into_inner()),
            0,
        )
        .map_err(|e| {
            if DbError::is_foreign_key_violation(&e) {
                Error::user_not_found(user_id).into()
            } else {
                e.into()
            }
        })
    })
}

pub fn get_session(conn: &mut Conn, key: &SessionKey) -> DbResult<Session> {
    session_of(key)
        .select(SessionRow::as_select())
        .get_result(conn)
        .optional()?
        .map(Session::from)
        .ok_or_else(|| Error::session_not_found().into())
}

pub fn list_sessions(
    conn: &mut Conn,
    app_id: &str,
    user_id: &str,
    filter: Option<&Metadata>,
    only_active: bool,
    req: PageRequest,
) -> DbResult<Page<Session>> {
    let query = || {
        let mut q = sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::app_id.eq(app_id))
            .into_boxed();
        if only_active {
            q = q.filter(sessions::is_active.eq(true));
        }
        if let Some(f) = filter {
            q = q.filter(dialect::metadata_contains(f.as_map()));
        }
        q
    };
    let total: i64 = query().count().get_result(conn)?;
    page_by_id!(conn, req, total, query, SessionRow, sessions::id)
}

pub fn update_session(conn: &mut Conn, key: &SessionKey, metadata: Metadata) -> DbResult<Session> {
    dialect::single_write(conn, |conn| {
        updated_row(
            diesel::update(session_of(key))
                .set(sessions::metadata.eq(Value::Object(metadata.into_inner())))
                .returning(SessionRow::as_returning()),
            conn,
        )?
        .map(Session::from)
        .ok_or_else(|| Error::session_not_found().into())
    })
}

/// Soft delete: the session becomes inactive; its messages stay.
pub fn delete_session(conn: &mut Conn, key: &SessionKey) -> DbResult<()> {
    dialect::single_write(conn, |conn| {
        let n = diesel::update(session_of(key))
            .set(sessions::is_active.eq(false))
            .execute(conn)?;
        if n == 0 {
            return Err(Error::session_not_found().into());
        }
        Ok(())
    })
}

/// Rows per insert statement when copying, well under both engines' bind limits.
const COPY_CHUNK: usize = 500;

#[derive(Queryable)]
struct MessageCopy {
    public_id: String,
    is_user: bool,
    content: String,
    metadata: Value,
    embedding: Option<Vec<u8>>,
    embedder: Option<String>,
    dimensions: Option<i32>,
}

#[derive(Queryable)]
struct MetamessageCopy {
    message_id: Option<String>,
    label: String,
    content: String,
    metadata: Value,
}

/// Copies a session and its messages up to and including `cut_off` (all when `None`) into a new active
/// session, in one transaction. With `deep_copy`, the session's metamessages that point at no message
/// or at a copied one are copied too, re-pointed at the copies.
pub fn clone_session(
    conn: &mut Conn,
    key: &SessionKey,
    cut_off: Option<&str>,
    deep_copy: bool,
) -> DbResult<Session> {
    dialect::write_tx(conn, |conn| {
        let source: SessionRow = session_of(key)
            .select(SessionRow::as_select())
            .get_result(conn)
            .optional()?
            .ok_or_else(Error::clone_source_not_found)?;
        let mut to_copy = messages::table
            .filter(messages::session_id.eq(&source.public_id))
            .order(messages::id.asc())
            .into_boxed();
        if let Some(message_id) = cut_off {
            let last: i64 = messages::table
                .filter(messages::public_id.eq(message_id))
                .filter(messages::session_id.eq(&source.public_id))
                .select(messages::id)
                .get_result(conn)
                .optional()?
                .ok_or_else(Error::clone_source_not_found)?;
            to_copy = to_copy.filter(messages::id.le(last));
        }
        let originals: Vec<MessageCopy> = to_copy
            .select((
                messages::public_id,
                messages::is_user,
                messages::content,
                messages::metadata,
                messages::embedding,
                messages::embedder,
                messages::dimensions,
            ))
            .load(conn)?;

        let clone = insert_session(
            conn,
            &key.app_id,
            &key.user_id,
            source.metadata,
            originals.len() as i64,
        )?;
        let created_at = now();
        let mut new_ids: HashMap<String, String> = HashMap::with_capacity(originals.len());
        for chunk in originals.chunks(COPY_CHUNK) {
            let rows: Vec<NewMessageRow> = chunk
                .iter()
                .map(|m| {
                    let id = new_id();
                    new_ids.insert(m.public_id.clone(), id.clone());
                    NewMessageRow {
                        public_id: id,
                        app_id: &key.app_id,
                        user_id: &key.user_id,
                        session_id: &clone.id,
                        is_user: m.is_user,
                        content: m.content.clone(),
                        metadata: m.metadata.clone(),
                        created_at,
                        embedding: m.embedding.clone(),
                        embedder: m.embedder.clone(),
                        dimensions: m.dimensions,
                    }
                })
                .collect();
            diesel::insert_into(messages::table)
                .values(&rows)
                .execute(conn)?;
        }

        if deep_copy {
            let metas: Vec<MetamessageCopy> = metamessages::table
                .filter(metamessages::session_id.eq(&source.public_id))
                .order(metamessages::id.asc())
                .select((
                    metamessages::message_id,
                    metamessages::label,
                    metamessages::content,
                    metamessages::metadata,
                ))
                .load(conn)?;
            // Copies of metamessages that point at no message or at a copied one, re-pointed.
            let copies: Vec<(String, Option<&str>, &MetamessageCopy)> = metas
                .iter()
                .filter_map(|mm| {
                    let message_id = match &mm.message_id {
                        None => None,
                        Some(old) => Some(new_ids.get(old)?.as_str()),
                    };
                    Some((new_id(), message_id, mm))
                })
                .collect();
            let rows: Vec<NewMetamessageRow> = copies
                .iter()
                .map(|(id, message_id, mm)| NewMetamessageRow {
                    public_id: id,
                    app_id: &key.app_id,
                    user_id: &key.user_id,
                    session_id: Some(&clone.id),
                    message_id: *message_id,
                    label: &mm.label,
                    content: &mm.content,
                    metadata: &mm.metadata,
                    created_at,
                })
                .collect();
            for chunk in rows.chunks(COPY_CHUNK) {
                diesel::insert_into(metamessages::table)
                    .values(chunk)
                    .execute(conn)?;
            }
        }
        Ok::<_, DbError>(clone)
    })
}
