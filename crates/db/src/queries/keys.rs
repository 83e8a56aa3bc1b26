//! Recorded API keys: minting records a key, revoking marks it, and every process reads the revoked
//! ones (see `honcho_domain::auth::RevokedKeys`).

use super::{dialect, schema, schema::api_keys, Conn};
use crate::DbResult;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use honcho_domain::auth::{key_digest, Claims, KeyRecord, KeyScope};
use honcho_domain::{Error, Page, PageRequest};

#[derive(Queryable, Selectable)]
#[diesel(table_name = api_keys)]
struct KeyRow {
    public_id: String,
    app_id: Option<String>,
    user_id: Option<String>,
    session_id: Option<String>,
    collection_id: Option<String>,
    label: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    digest: Option<String>,
}

impl From<KeyRow> for KeyRecord {
    fn from(r: KeyRow) -> Self {
        KeyRecord {
            id: r.public_id,
            scope: KeyScope {
                app_id: r.app_id,
                user_id: r.user_id,
                session_id: r.session_id,
                collection_id: r.collection_id,
            },
            label: r.label,
            expires_at: r.expires_at,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
            digest: r.digest,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = api_keys)]
struct NewKeyRow<'a> {
    public_id: &'a str,
    app_id: Option<&'a str>,
    user_id: Option<&'a str>,
    session_id: Option<&'a str>,
    collection_id: Option<&'a str>,
    label: Option<&'a str>,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    digest: Option<&'a str>,
}

impl<'a> From<&'a KeyRecord> for NewKeyRow<'a> {
    fn from(r: &'a KeyRecord) -> Self {
        NewKeyRow {
            public_id: &r.id,
            app_id: r.scope.app_id.as_deref(),
            user_id: r.scope.user_id.as_deref(),
            session_id: r.scope.session_id.as_deref(),
            collection_id: r.scope.collection_id.as_deref(),
            label: r.label.as_deref(),
            expires_at: r.expires_at,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
            digest: r.digest.as_deref(),
        }
    }
}

/// Records a newly minted key (before the key is handed out).
pub fn record_key(conn: &mut Conn, record: &KeyRecord) -> DbResult<()> {
    dialect::single_write(conn, |conn| {
        diesel::insert_into(api_keys::table)
            .values(NewKeyRow::from(record))
            .execute(conn)?;
        Ok(())
    })
}

fn find_key(conn: &mut Conn, id: &str) -> QueryResult<Option<KeyRecord>> {
    api_keys::table
        .filter(api_keys::public_id.eq(id))
        .select(KeyRow::as_select())
        .get_result(conn)
        .optional()
        .map(|r| r.map(KeyRecord::from))
}

/// The recorded keys, oldest first (or newest with `reverse`), of one app when `app_id` is given.
pub fn list_keys(
    conn: &mut Conn,
    app_id: Option<&str>,
    req: PageRequest,
) -> DbResult<Page<KeyRecord>> {
    let query = || {
        let mut q = api_keys::table.into_boxed();
        if let Some(app_id) = app_id {
            q = q.filter(api_keys::app_id.eq(app_id));
        }
        q
    };
    let total: i64 = query().count().get_result(conn)?;
    page_by_id!(conn, req, total, query, KeyRow, api_keys::id)
}

/// Marks the key `id` revoked at `now` (a key revoked before keeps its time); 404 for an unknown id.
pub fn revoke_key(conn: &mut Conn, id: &str, now: DateTime<Utc>) -> DbResult<KeyRecord> {
    dialect::write_tx(conn, |conn| {
        diesel::update(
            api_keys::table
                .filter(api_keys::public_id.eq(id))
                .filter(api_keys::revoked_at.is_null()),
        )
        .set(api_keys::revoked_at.eq(now))
        .execute(conn)?;
        find_key(conn, id)?.ok_or_else(|| Error::key_not_found(id).into())
    })
}

/// Revokes the key whose text is `token` (its signature already verified, its claims `claims`): by
/// its id when the server recorded it, else by its digest, recording it then.
pub fn revoke_presented(
    conn: &mut Conn,
    claims: &Claims,
    token: &str,
    now: DateTime<Utc>,
) -> DbResult<KeyRecord> {
    if let Some(id) = &claims.jti {
        match revoke_key(conn, id, now) {
            Err(crate::DbError::Domain(Error::NotFound(_))) => {}
            other => return other,
        }
    }
    let digest = key_digest(token);
    dialect::write_tx(conn, |conn| {
        let record = KeyRecord::presented(claims, token, now);
        diesel::insert_into(api_keys::table)
            .values(NewKeyRow::from(&record))
            .on_conflict(api_keys::digest)
            .do_nothing()
            .execute(conn)?;
        let row = api_keys::table
            .filter(api_keys::digest.eq(&digest))
            .select(KeyRow::as_select())
            .get_result(conn)?;
        Ok(KeyRecord::from(row))
    })
}

/// How many keys are revoked: rows are never deleted and revocations never undone, so this changes
/// with every revocation.
pub fn revocation_mark(conn: &mut Conn) -> DbResult<i64> {
    Ok(api_keys::table
        .filter(api_keys::revoked_at.is_not_null())
        .count()
        .get_result(conn)?)
}

/// The revoked keys' ids and digests.
pub fn revoked_keys(conn: &mut Conn) -> DbResult<Vec<(String, Option<String>)>> {
    Ok(api_keys::table
        .filter(api_keys::revoked_at.is_not_null())
        .select((api_keys::public_id, api_keys::digest))
        .load(conn)?)
}

/// The first level (`"app"`, `"user"`, `"session"`, `"collection"`) of a scope whose id the
/// database does not hold, or holds elsewhere than the scope's other ids say (a user of another
/// app, a session or collection of another user); `None` when every id is there.
pub fn check_key_scope(conn: &mut Conn, scope: &KeyScope) -> DbResult<Option<&'static str>> {
    use schema::{apps, collections, sessions, users};
    if let Some(app) = &scope.app_id {
        let found: i64 = apps::table
            .filter(apps::public_id.eq(app))
            .count()
            .get_result(conn)?;
        if found == 0 {
            return Ok(Some("app"));
        }
    }
    if let Some(user) = &scope.user_id {
        let mut q = users::table.filter(users::public_id.eq(user)).into_boxed();
        if let Some(app) = &scope.app_id {
            q = q.filter(users::app_id.eq(app));
        }
        if q.count().get_result::<i64>(conn)? == 0 {
            return Ok(Some("user"));
        }
    }
    if let Some(session) = &scope.session_id {
        let mut q = sessions::table
            .filter(sessions::public_id.eq(session))
            .into_boxed();
        if let Some(app) = &scope.app_id {
            q = q.filter(sessions::app_id.eq(app));
        }
        if let Some(user) = &scope.user_id {
            q = q.filter(sessions::user_id.eq(user));
        }
        if q.count().get_result::<i64>(conn)? == 0 {
            return Ok(Some("session"));
        }
    }
    if let Some(collection) = &scope.collection_id {
        let mut q = collections::table
            .filter(collections::public_id.eq(collection))
            .into_boxed();
        if let Some(app) = &scope.app_id {
            q = q.filter(collections::app_id.eq(app));
        }
        if let Some(user) = &scope.user_id {
            q = q.filter(collections::user_id.eq(user));
        }
        if q.count().get_result::<i64>(conn)? == 0 {
            return Ok(Some("collection"));
        }
    }
    Ok(None)
}
