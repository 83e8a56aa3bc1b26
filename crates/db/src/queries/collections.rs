use super::schema::{collections, documents, users};
use super::{dialect, into_map, on_unique, Conn};
use crate::{DbError, DbResult};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use honcho_domain::{
    id::new_id, now, Collection, CollectionKey, Error, Metadata, Name, Page, PageRequest,
    PROTECTED_COLLECTION,
};
use serde_json::Value;

#[derive(Queryable, Selectable)]
#[diesel(table_name = collections)]
pub(super) struct CollectionRow {
    public_id: String,
    app_id: String,
    user_id: String,
    pub(super) name: String,
    metadata: Value,
    created_at: DateTime<Utc>,
}

impl From<CollectionRow> for Collection {
    fn from(r: CollectionRow) -> Self {
        Collection {
            id: r.public_id,
            app_id: r.app_id,
            user_id: r.user_id,
            name: r.name,
            metadata: into_map(r.metadata),
            created_at: r.created_at,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = collections)]
struct NewCollectionRow<'a> {
    public_id: &'a str,
    app_id: &'a str,
    user_id: &'a str,
    name: &'a str,
    metadata: &'a Value,
    created_at: DateTime<Utc>,
}

#[derive(AsChangeset)]
#[diesel(table_name = collections)]
struct CollectionChanges {
    name: Option<String>,
    metadata: Option<Value>,
}

/// Collections of `key`'s user in `key`'s app with `key`'s id.
#[diesel::dsl::auto_type(no_type_alias)]
pub(super) fn collection_of<'a>(key: &'a CollectionKey) -> _ {
    let id: &'a str = &key.collection_id;
    let user_id: &'a str = &key.user_id;
    let app_id: &'a str = &key.app_id;
    collections::table
        .filter(collections::public_id.eq(id))
        .filter(collections::user_id.eq(user_id))
        .filter(collections::app_id.eq(app_id))
}

/// The collection, or C404.
pub(super) fn find_collection(conn: &mut Conn, key: &CollectionKey) -> DbResult<CollectionRow> {
    collection_of(key)
        .select(CollectionRow::as_select())
        .get_result(conn)
        .optional()?
        .ok_or_else(|| Error::collection_not_found().into())
}

/// Creates a collection of the user. The name has been checked (it is not the reserved one).
pub fn create_collection(
    conn: &mut Conn,
    app_id: &str,
    user_id: &str,
    name: Name,
    metadata: Metadata,
) -> DbResult<Collection> {
    dialect::write_tx(conn, |conn| {
        let user_exists: Option<i64> = users::table
            .filter(users::public_id.eq(user_id))
            .filter(users::app_id.eq(app_id))
            .select(users::id)
            .get_result(conn)
            .optional()?;
        if user_exists.is_none() {
            return Err(Error::user_not_found(user_id).into());
        }
        let metadata = Value::Object(metadata.into_inner());
        let (id, created_at) = (new_id(), now());
        let row = NewCollectionRow {
            public_id: &id,
            app_id,
            user_id,
            name: name.as_str(),
            metadata: &metadata,
            created_at,
        };
        on_unique(
            diesel::insert_into(collections::table)
                .values(&row)
                .execute(conn),
            || Error::collection_name_taken(name.as_str()),
        )?;
        Ok::<_, DbError>(Collection {
            id,
            app_id: app_id.to_string(),
            user_id: user_id.to_string(),
            name: name.into_inner(),
            metadata: into_map(metadata),
            created_at,
        })
    })
}

pub fn get_collection(conn: &mut Conn, key: &CollectionKey) -> DbResult<Collection> {
    find_collection(conn, key).map(Collection::from)
}

pub fn get_collection_by_name(
    conn: &mut Conn,
    app_id: &str,
    user_id: &str,
    name: &str,
) -> DbResult<Collection> {
    collections::table
        .filter(collections::name.eq(name))
        .filter(collections::user_id.eq(user_id))
        .filter(collections::app_id.eq(app_id))
        .select(CollectionRow::as_select())
        .get_result(conn)
        .optional()?
        .map(Collection::from)
        .ok_or_else(|| Error::collection_name_not_found(name).into())
}

pub fn list_collections(
    conn: &mut Conn,
    app_id: &str,
    user_id: &str,
    filter: Option<&Metadata>,
    req: PageRequest,
) -> DbResult<Page<Collection>> {
    let query = || {
        let mut q = collections::table
            .filter(collections::user_id.eq(user_id))
            .filter(collections::app_id.eq(app_id))
            .into_boxed();
        if let Some(f) = filter {
            q = q.filter(dialect::metadata_contains(f.as_map()));
        }
        q
    };
    let total: i64 = query().count().get_result(conn)?;
    page_by_id!(conn, req, total, query, CollectionRow, collections::id)
}

/// Renames and/or replaces the metadata of a collection; the protected collection keeps its name.
pub fn update_collection(
    conn: &mut Conn,
    key: &CollectionKey,
    name: Option<Name>,
    metadata: Option<Metadata>,
) -> DbResult<Collection> {
    dialect::write_tx(conn, |conn| {
        let current = find_collection(conn, key)?;
        if name.is_some() && current.name == PROTECTED_COLLECTION {
            return Err(Error::collection_reserved().into());
        }
        let changes = CollectionChanges {
            name: name.map(Name::into_inner),
            metadata: metadata.map(|m| Value::Object(m.into_inner())),
        };
        let r = diesel::update(collection_of(key))
            .set(&changes)
            .returning(CollectionRow::as_returning())
            .get_result(conn);
        on_unique(r, Error::collection_update_conflict).map(Collection::from)
    })
}

/// Deletes a collection and its documents in one transaction; the protected collection stays.
pub fn delete_collection(conn: &mut Conn, key: &CollectionKey) -> DbResult<()> {
    dialect::write_tx(conn, |conn| {
        let current = find_collection(conn, key)?;
        if current.name == PROTECTED_COLLECTION {
            return Err(Error::collection_reserved().into());
        }
        diesel::delete(documents::table.filter(documents::collection_id.eq(&key.collection_id)))
            .execute(conn)?;
        diesel::delete(collection_of(key)).execute(conn)?;
        Ok::<_, DbError>(())
    })
}
