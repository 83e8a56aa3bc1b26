use super::{dialect, into_map, on_unique, schema::users, updated_row, Conn};
use crate::{DbError, DbResult};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use honcho_domain::{id::new_id, now, Error, Metadata, Name, Page, PageRequest, User};
use serde_json::Value;

#[derive(Queryable, Selectable)]
#[diesel(table_name = users)]
pub(super) struct UserRow {
    public_id: String,
    app_id: String,
    name: String,
    metadata: Value,
    created_at: DateTime<Utc>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: r.public_id,
            app_id: r.app_id,
            name: r.name,
            metadata: into_map(r.metadata),
            created_at: r.created_at,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct NewUserRow<'a> {
    public_id: &'a str,
    app_id: &'a str,
    name: &'a str,
    metadata: &'a Value,
    created_at: DateTime<Utc>,
}

#[derive(AsChangeset)]
#[diesel(table_name = users)]
struct UserChanges {
    name: Option<String>,
    metadata: Option<Value>,
}

/// An unknown app shows up as a foreign-key failure on insert.
fn app_missing(app_id: &str, e: diesel::result::Error) -> DbError {
    if DbError::is_foreign_key_violation(&e) {
        Error::app_not_found(app_id).into()
    } else {
        e.into()
    }
}

pub fn create_user(
    conn: &mut Conn,
    app_id: &str,
    name: Name,
    metadata: Metadata,
) -> DbResult<User> {
    dialect::single_write(conn, |conn| {
        let metadata = Value::Object(metadata.into_inner());
        let (id, created_at) = (new_id(), now());
        let row = NewUserRow {
            public_id: &id,
            app_id,
            name: name.as_str(),
            metadata: &metadata,
            created_at,
        };
        match diesel::insert_into(users::table).values(&row).execute(conn) {
            Ok(_) => Ok(User {
                id,
                app_id: app_id.to_string(),
                name: name.into_inner(),
                metadata: into_map(metadata),
                created_at,
            }),
            Err(e) if DbError::is_unique_violation(&e) => Err(Error::user_name_taken().into()),
            Err(e) => Err(app_missing(app_id, e)),
        }
    })
}

pub fn get_user(conn: &mut Conn, app_id: &str, user_id: &str) -> DbResult<User> {
    users::table
        .filter(users::public_id.eq(user_id))
        .filter(users::app_id.eq(app_id))
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()?
        .map(User::from)
        .ok_or_else(|| Error::user_not_found(user_id).into())
}

fn find_by_name(conn: &mut Conn, app_id: &str, name: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::app_id.eq(app_id))
        .filter(users::name.eq(name))
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()
        .map(|r| r.map(User::from))
}

pub fn get_user_by_name(conn: &mut Conn, app_id: &str, name: &str) -> DbResult<User> {
    find_by_name(conn, app_id, name)?.ok_or_else(|| Error::user_name_not_found(name).into())
}

/// Returns the user named `name` in the app, creating it if needed; concurrent callers get the same
/// user. An unknown app is a 404.
pub fn get_or_create_user(conn: &mut Conn, app_id: &str, name: Name) -> DbResult<User> {
    dialect::single_write(conn, |conn| {
        if let Some(user) = find_by_name(conn, app_id, name.as_str())? {
            return Ok(user);
        }
        let row = NewUserRow {
            public_id: &new_id(),
            app_id,
            name: name.as_str(),
            metadata: &Value::Object(Default::default()),
            created_at: now(),
        };
        diesel::insert_into(users::table)
            .values(&row)
            .on_conflict((users::app_id, users::name))
            .do_nothing()
            .execute(conn)
            .map_err(|e| app_missing(app_id, e))?;
        get_user_by_name(conn, app_id, name.as_str())
    })
}

pub fn update_user(
    conn: &mut Conn,
    app_id: &str,
    user_id: &str,
    name: Option<Name>,
    metadata: Option<Metadata>,
) -> DbResult<User> {
    dialect::single_write(conn, |conn| {
        let changes = UserChanges {
            name: name.map(Name::into_inner),
            metadata: metadata.map(|m| Value::Object(m.into_inner())),
        };
        if changes.name.is_none() && changes.metadata.is_none() {
            return get_user(conn, app_id, user_id);
        }
        let r = updated_row(
            diesel::update(
                users::table
                    .filter(users::public_id.eq(user_id))
                    .filter(users::app_id.eq(app_id)),
            )
            .set(&changes)
            .returning(UserRow::as_returning()),
            conn,
        );
        on_unique(r, Error::user_update_conflict)?
            .map(User::from)
            .ok_or_else(|| Error::user_not_found(user_id).into())
    })
}

pub fn list_users(
    conn: &mut Conn,
    app_id: &str,
    filter: Option<&Metadata>,
    req: PageRequest,
) -> DbResult<Page<User>> {
    let query = || {
        let mut q = users::table.filter(users::app_id.eq(app_id)).into_boxed();
        if let Some(f) = filter {
            q = q.filter(dialect::metadata_contains(f.as_map()));
        }
        q
    };
    let total: i64 = query().count().get_result(conn)?;
    page_by_id!(conn, req, total, query, UserRow, users::id)
}
