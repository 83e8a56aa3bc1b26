// Queries of the metamessages table: see the module docs of `queries`.
use super::schema::{messages, metamessages, sessions, users};
use super::{dialect, into_map, Conn};
use crate::{DbError, DbResult};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use honcho_domain::{
    id::new_id, now, Error, Metamessage, MetamessageChanges, MetamessageFilter, NewMetamessage,
    Page, PageRequest,
};
use serde_json::Value;

#[derive(Queryable, Selectable)]
#[diesel(table_name = metamessages)]
pub(super) struct MetamessageRow {
    public_id: String,
    app_id: String,
    user_id: String,
    session_id: Option<String>,
    message_id: Option<String>,
    label: String,
    content: String,
    metadata: Value,
    created_at: DateTime<Utc>,
}

impl From<MetamessageRow> for Metamessage {
    fn from(r: MetamessageRow) -> Self {
        Metamessage {
            id: r.public_id,
            app_id: r.app_id,
            user_id: r.user_id,
            session_id: r.session_id,
            message_id: r.message_id,
            label: r.label,
            content: r.content,
            metadata: into_map(r.metadata),
            created_at: r.created_at,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = metamessages)]
pub(super) struct NewMetamessageRow<'a> {
    pub public_id: &'a str,
    pub app_id: &'a str,
    pub user_id: &'a str,
    pub session_id: Option<&'a str>,
    pub message_id: Option<&'a str>,
    pub label: &'a str,
    pub content: &'a str,
    pub metadata: &'a Value,
    pub created_at: DateTime<Utc>,
}

/// `session_id` and `message_id` are written together, so that concurrent updates cannot leave a
/// metamessage pointing at a message of another session.
#[derive(AsChangeset)]
#[diesel(table_name = metamessages)]
struct MetamessageChangeset {
    label: Option<String>,
    session_id: Option<Option<String>>,
    message_id: Option<Option<String>>,
    metadata: Option<Value>,
}

/// Metamessages of the user and app with this id: the only way a metamessage is looked up.
#[diesel::dsl::auto_type(no_type_alias)]
fn metamessage_of<'a>(app_id: &'a str, user_id: &'a str, id: &'a str) -> _ {
    metamessages::table
        .filter(metamessages::public_id.eq(id))
        .filter(metamessages::user_id.eq(user_id))
        .filter(metamessages::app_id.eq(app_id))
}

pub(super) fn user_exists(conn: &mut Conn, app_id: &str, user_id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        users::table
            .filter(users::public_id.eq(user_id))
            .filter(users::app_id.eq(app_id)),
    ))
    .get_result(conn)
}

/// Whether the session belongs to the user in the app.
fn session_exists(
    conn: &mut Conn,
    app_id: &str,
    user_id: &str,
    session_id: &str,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        sessions::table
            .filter(sessions::public_id.eq(session_id))
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::app_id.eq(app_id)),
    ))
    .get_result(conn)
}

/// Whether the message belongs to the session (and so to the user and app).
fn message_exists(
    conn: &mut Conn,
    app_id: &str,
    user_id: &str,
    session_id: &str,
    message_id: &str,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        messages::table
            .filter(messages::public_id.eq(message_id))
            .filter(messages::session_id.eq(session_id))
            .filter(messages::user_id.eq(user_id))
            .filter(messages::app_id.eq(app_id)),
    ))
    .get_result(conn)
}

/// Stores a metamessage of the user, checking in one transaction that the user exists in the app,
/// that the session (if any) is the user's and that the message (if any) is in that session.
pub fn create_metamessage(
    conn: &mut Conn,
    app_id: &str,
    user_id: &str,
    new: NewMetamessage,
) -> DbResult<Metamessage> {
    if new.message_id.is_some() && new.session_id.is_none() {
        return Err(Error::message_without_session().into());
    }
    dialect::write_tx(conn, |conn| {
        if !user_exists(conn, app_id, user_id)? {
            return Err(Error::user_not_found(user_id).into());
        }
        if let Some(session_id) = &new.session_id {
            if !session_exists(conn, app_id, user_id, session_id)? {
                return Err(Error::session_not_found().into());
            }
            if let Some(message_id) = &new.message_id {
                if !message_exists(conn, app_id, user_id, session_id, message_id)? {
                    return Err(Error::metamessage_message_not_found().into());
                }
            }
        }
        let metadata = Value::Object(new.metadata.into_inner());
        let (id, created_at) = (new_id(), now());
        let row = NewMetamessageRow {
            public_id: &id,
            app_id,
            user_id,
            session_id: new.session_id.as_deref(),
            message_id: new.message_id.as_deref(),
            label: new.label.as_str(),
            content: new.content.as_str(),
            metadata: &metadata,
            created_at,
        };
        diesel::insert_into(metamessages::table)
            .values(&row)
            .execute(conn)?;
        Ok::<_, DbError>(Metamessage {
            id,
            app_id: app_id.to_string(),
            user_id: user_id.to_string(),
            session_id: new.session_id,
            message_id: new.message_id,
            label: new.label.into_inner(),
            content: new.content.into_inner(),
            metadata: into_map(metadata),
            created_at,
        })
    })
}

pub fn get_metamessage(
    conn: &mut Conn,
    app_id: &str,
    user_id: &str,
    id: &str,
) -> DbResult<Metamessage> {
    metamessage_of(app_id, user_id, id)
        .select(MetamessageRow::as_select())
        .get_result(conn)
        .optional()?
        .map(Metamessage::from)
        .ok_or_else(|| Error::metamessage_not_found(id).into())
}

/// Applies `changes` in one transaction. When the session or the message changes, the resulting
/// pair is checked: the session must be the user's, and a message needs a session and must be in it.
pub fn update_metamessage(
    conn: &mut Conn,
    app_id: &str,
    user_id: &str,
    id: &str,
    changes: MetamessageChanges,
) -> DbResult<Metamessage> {
    dialect::write_tx(conn, |conn| {
        let stored: MetamessageRow = metamessage_of(app_id, user_id, id)
            .select(MetamessageRow::as_select())
            .get_result(conn)
            .optional()?
            .ok_or_else(|| Error::metamessage_not_found(id))?;
        let (mut session_change, mut message_change) = (None, None);
        if changes.session_id.is_some() || changes.message_id.is_some() {
            if let Some(session_id) = &changes.session_id {
                if !session_exists(conn, app_id, user_id, session_id)? {
                    return Err(Error::session_not_found().into());
                }
            }
            let session_id = changes.session_id.or(stored.session_id.clone());
            let message_id = changes.message_id.or(stored.message_id.clone());
            if let Some(message_id) = &message_id {
                let Some(session_id) = &session_id else {
                    return Err(Error::message_without_session().into());
                };
                if !message_exists(conn, app_id, user_id, session_id, message_id)? {
                    return Err(Error::metamessage_message_not_found_for_update().into());
                }
            }
            (session_change, message_change) = (Some(session_id), Some(message_id));
        }
        let changeset = MetamessageChangeset {
            label: changes.label.map(|l| l.into_inner()),
            session_id: session_change,
            message_id: message_change,
            metadata: changes.metadata.map(|m| Value::Object(m.into_inner())),
        };
        if changeset.label.is_none()
            && changeset.session_id.is_none()
            && changeset.metadata.is_none()
        {
            return Ok(stored.into());
        }
        diesel::update(metamessage_of(app_id, user_id, id))
            .set(&changeset)
            .returning(MetamessageRow::as_returning())
            .get_result(conn)
            .map(Metamessage::from)
            .map_err(DbError::from)
    })
}

/// A page of the user's metamessages in the app, narrowed by each field of `filter` that is given.
pub fn list_metamessages(
    conn: &mut Conn,
    app_id: &str,
    user_id: &str,
    filter: &MetamessageFilter,
    req: PageRequest,
) -> DbResult<Page<Metamessage>> {
    let query = || {
        let mut q = metamessages::table
            .filter(metamessages::user_id.eq(user_id))
            .filter(metamessages::app_id.eq(app_id))
            .into_boxed();
        if let Some(label) = &filter.label {
            q = q.filter(metamessages::label.eq(label));
        }
        if let Some(session_id) = &filter.session_id {
            q = q.filter(metamessages::session_id.eq(session_id));
        }
        if let Some(message_id) = &filter.message_id {
            q = q.filter(metamessages::message_id.eq(message_id));
        }
        if let Some(f) = &filter.metadata {
            q = q.filter(dialect::metadata_contains(f.as_map()));
        }
        q
    };
    let total: i64 = query().count().get_result(conn)?;
    page_by_id!(conn, req, total, query, MetamessageRow, metamessages::id)
}
