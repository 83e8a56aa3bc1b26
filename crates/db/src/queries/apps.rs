use super::{dialect, into_map, on_unique, schema::apps, updated_row, Conn};
use crate::DbResult;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use honcho_domain::{id::new_id, now, App, Error, Metadata, Name, Page, PageRequest};
use serde_json::Value;

#[derive(Queryable, Selectable)]
#[diesel(table_name = apps)]
pub(super) struct AppRow {
    public_id: String,
    name: String,
    metadata: Value,
    created_at: DateTime<Utc>,
}

impl From<AppRow> for App {
    fn from(r: AppRow) -> Self {
        App {
            id: r.public_id,
            name: r.name,
            metadata: into_map(r.metadata),
            created_at: r.created_at,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = apps)]
struct NewAppRow<'a> {
    public_id: &'a str,
    name: &'a str,
    metadata: &'a Value,
    created_at: DateTime<Utc>,
}

#[derive(AsChangeset)]
#[diesel(table_name = apps)]
struct AppChanges {
    name: Option<String>,
    metadata: Option<Value>,
}

fn insert(conn: &mut Conn, name: &str, metadata: Value) -> QueryResult<App> {
    let (id, created_at) = (new_id(), now());
    let row = NewAppRow {
        public_id: &id,
        name,
        metadata: &metadata,
        created_at,
    };
    diesel::insert_into(apps::table)
        .values(&row)
        .execute(conn)?;
    Ok(App {
        id,
        name: name.to_string(),
        metadata: into_map(metadata),
        created_at,
    })
}

pub fn create_app(conn: &mut Conn, name: Name, metadata: Metadata) -> DbResult<App> {
    dialect::single_write(conn, |conn| {
        let r = insert(conn, name.as_str(), Value::Object(metadata.into_inner()));
        on_unique(r, || Error::app_name_taken(name.as_str()))
    })
}

pub fn get_app(conn: &mut Conn, id: &str) -> DbResult<App> {
    apps::table
        .filter(apps::public_id.eq(id))
        .select(AppRow::as_select())
        .get_result(conn)
        .optional()?
        .map(App::from)
        .ok_or_else(|| Error::app_not_found(id).into())
}

fn find_by_name(conn: &mut Conn, name: &str) -> QueryResult<Option<App>> {
    apps::table
        .filter(apps::name.eq(name))
        .select(AppRow::as_select())
        .get_result(conn)
        .optional()
        .map(|r| r.map(App::from))
}

pub fn get_app_by_name(conn: &mut Conn, name: &str) -> DbResult<App> {
    find_by_name(conn, name)?.ok_or_else(|| Error::app_name_not_found(name).into())
}

/// Returns the app named `name`, creating it if needed. Concurrent callers all get the same app: the
/// insert yields to a competing one and the row is read back.
pub fn get_or_create_app(conn: &mut Conn, name: Name) -> DbResult<App> {
    dialect::single_write(conn, |conn| {
        if let Some(app) = find_by_name(conn, name.as_str())? {
            return Ok(app);
        }
        let row = NewAppRow {
            public_id: &new_id(),
            name: name.as_str(),
            metadata: &Value::Object(Default::default()),
            created_at: now(),
        };
        diesel::insert_into(apps::table)
            .values(&row)
            .on_conflict(apps::name)
            .do_nothing()
            .execute(conn)?;
        get_app_by_name(conn, name.as_str())
    })
}

pub fn update_app(
    conn: &mut Conn,
    id: &str,
    name: Option<Name>,
    metadata: Option<Metadata>,
) -> DbResult<App> {
    dialect::single_write(conn, |conn| {
        let changes = AppChanges {
            name: name.map(Name::into_inner),
            metadata: metadata.map(|m| Value::Object(m.into_inner())),
        };
        if changes.name.is_none() && changes.metadata.is_none() {
            return get_app(conn, id);
        }
        let r = updated_row(
            diesel::update(apps::table.filter(apps::public_id.eq(id)))
                .set(&changes)
                .returning(AppRow::as_returning()),
            conn,
        );
        on_unique(r, Error::app_update_conflict)?
            .map(App::from)
            .ok_or_else(|| Error::app_not_found(id).into())
    })
}

pub fn list_apps(
    conn: &mut Conn,
    filter: Option<&Metadata>,
    req: PageRequest,
) -> DbResult<Page<App>> {
    let query = || {
        let mut q = apps::table.into_boxed();
        if let Some(f) = filter {
            q = q.filter(dialect::metadata_contains(f.as_map()));
        }
        q
    };
    let total: i64 = query().count().get_result(conn)?;
    page_by_id!(conn, req, total, query, AppRow, apps::id)
}
