// Writing another server's records with their ids and times (`honcho import`). Each call judges
// its records against what the target holds under their ids (and names) with the domain's
// `import::judge`, and with `mode.write` writes what is missing (and, with `mode.overwrite`,
// replaces what differs) in one transaction; without it, it only reads (a dry run).
use super::apps::AppRow;
use super::collections::CollectionRow;
use super::documents::{DocumentRow, NewDocumentRow};
use super::messages::{MessageRow, NewMessageRow};
use super::metamessages::{MetamessageRow, NewMetamessageRow};
use super::schema::{apps, collections, documents, messages, metamessages};
use super::schema::{sessions, users};
use super::sessions::SessionRow;
use super::users::UserRow;
use super::{dialect, into_map, session_of, Conn};
use crate::{DbError, DbResult};
use diesel::prelude::*;
use honcho_domain::import::{judge, name_taken, ImportMode, Outcome};
use honcho_domain::vector::encode;
use honcho_domain::{
    deriver_disabled, App, Collection, CollectionKey, Document, Embedding, Error, Message,
    Metamessage, Session, SessionKey, User,
};
use serde_json::Value;
use std::collections::HashMap;

/// Runs `f` in a write transaction when the mode writes, else as plain reads.
fn in_mode<T>(
    conn: &mut Conn,
    mode: ImportMode,
    f: impl FnOnce(&mut Conn) -> DbResult<T>,
) -> DbResult<T> {
    if mode.write {
        dialect::write_tx(conn, f)
    } else {
        f(conn)
    }
}

fn object(m: &serde_json::Map<String, Value>) -> Value {
    Value::Object(m.clone())
}

pub fn import_app(conn: &mut Conn, app: &App, mode: ImportMode) -> DbResult<Outcome> {
    in_mode(conn, mode, |conn| {
        let found: Option<App> = apps::table
            .filter(apps::public_id.eq(&app.id))
            .select(AppRow::as_select())
            .get_result(conn)
            .optional()?
            .map(App::from);
        if found.as_ref().is_none_or(|f| f.name != app.name) {
            let holder: Option<String> = apps::table
                .filter(apps::name.eq(&app.name))
                .select(apps::public_id)
                .get_result(conn)
                .optional()?;
            if let Some(other) = holder {
                return Ok(name_taken("app", &app.name, &app.id, &other));
            }
        }
        let values = (
            apps::name.eq(&app.name),
            apps::metadata.eq(object(&app.metadata)),
            apps::created_at.eq(app.created_at),
        );
        let found = found.as_ref().map(|f| (f, true));
        settle(conn, mode, app, found, "app", &app.id, |conn, new| {
            if new {
                diesel::insert_into(apps::table)
                    .values((apps::public_id.eq(&app.id), values))
                    .execute(conn)
            } else {
                diesel::update(apps::table.filter(apps::public_id.eq(&app.id)))
                    .set(values)
                    .execute(conn)
            }
        })
    })
}

pub fn import_user(conn: &mut Conn, user: &User, mode: ImportMode) -> DbResult<Outcome> {
    in_mode(conn, mode, |conn| {
        let found: Option<User> = users::table
            .filter(users::public_id.eq(&user.id))
            .select(UserRow::as_select())
            .get_result(conn)
            .optional()?
            .map(User::from);
        if found.as_ref().is_none_or(|f| f.name != user.name) {
            let holder: Option<String> = users::table
                .filter(users::app_id.eq(&user.app_id))
                .filter(users::name.eq(&user.name))
                .select(users::public_id)
                .get_result(conn)
                .optional()?;
            if let Some(other) = holder.filter(|o| *o != user.id) {
                return Ok(name_taken("user", &user.name, &user.id, &other));
            }
        }
        let found = found.as_ref().map(|f| (f, f.app_id == user.app_id));
        let values = (
            users::name.eq(&user.name),
            users::metadata.eq(object(&user.metadata)),
            users::created_at.eq(user.created_at),
        );
        settle(conn, mode, user, found, "user", &user.id, |conn, new| {
            if new {
                diesel::insert_into(users::table)
                    .values((
                        users::public_id.eq(&user.id),
                        users::app_id.eq(&user.app_id),
                        values,
                    ))
                    .execute(conn)
            } else {
                diesel::update(users::table.filter(users::public_id.eq(&user.id)))
                    .set(values)
                    .execute(conn)
            }
        })
    })
}

pub fn import_session(conn: &mut Conn, session: &Session, mode: ImportMode) -> DbResult<Outcome> {
    in_mode(conn, mode, |conn| {
        let found: Option<Session> = sessions::table
            .filter(sessions::public_id.eq(&session.id))
            .select(SessionRow::as_select())
            .get_result(conn)
            .optional()?
            .map(Session::from);
        let found = found.as_ref().map(|f| {
            let same_parent = f.app_id == session.app_id && f.user_id == session.user_id;
            (f, same_parent)
        });
        let values = (
            sessions::is_active.eq(session.is_active),
            sessions::metadata.eq(object(&session.metadata)),
            sessions::created_at.eq(session.created_at),
        );
        settle(
            conn,
            mode,
            session,
            found,
            "session",
            &session.id,
            |conn, new| {
                if new {
                    diesel::insert_into(sessions::table)
                        .values((
                            sessions::public_id.eq(&session.id),
                            sessions::app_id.eq(&session.app_id),
                            sessions::user_id.eq(&session.user_id),
                            sessions::message_count.eq(0),
                            values,
                        ))
                        .execute(conn)
                } else {
                    diesel::update(sessions::table.filter(sessions::public_id.eq(&session.id)))
                        .set(values)
                        .execute(conn)
                }
            },
        )
    })
}

pub fn import_collection(
    conn: &mut Conn,
    collection: &Collection,
    mode: ImportMode,
) -> DbResult<Outcome> {
    let c = collection;
    in_mode(conn, mode, |conn| {
        let found: Option<Collection> = collections::table
            .filter(collections::public_id.eq(&c.id))
            .select(CollectionRow::as_select())
            .get_result(conn)
            .optional()?
            .map(Collection::from);
        if found.as_ref().is_none_or(|f| f.name != c.name) {
            let holder: Option<String> = collections::table
                .filter(collections::app_id.eq(&c.app_id))
                .filter(collections::user_id.eq(&c.user_id))
                .filter(collections::name.eq(&c.name))
                .select(collections::public_id)
                .get_result(conn)
                .optional()?;
            if let Some(other) = holder.filter(|o| *o != c.id) {
                return Ok(name_taken("collection", &c.name, &c.id, &other));
            }
        }
        let found = found
            .as_ref()
            .map(|f| (f, f.app_id == c.app_id && f.user_id == c.user_id));
        let values = (
            collections::name.eq(&c.name),
            collections::metadata.eq(object(&c.metadata)),
            collections::created_at.eq(c.created_at),
        );
        settle(conn, mode, c, found, "collection", &c.id, |conn, new| {
            if new {
                diesel::insert_into(collections::table)
                    .values((
                        collections::public_id.eq(&c.id),
                        collections::app_id.eq(&c.app_id),
                        collections::user_id.eq(&c.user_id),
                        values,
                    ))
                    .execute(conn)
            } else {
                diesel::update(collections::table.filter(collections::public_id.eq(&c.id)))
                    .set(values)
                    .execute(conn)
            }
        })
    })
}

/// The outcome of one record given what the target holds under its id (`found`, with whether it
/// has the record's parent), written when the mode writes: `write(conn, true)` inserts it,
/// `write(conn, false)` replaces the target's.
fn settle<T: PartialEq>(
    conn: &mut Conn,
    mode: ImportMode,
    record: &T,
    found: Option<(&T, bool)>,
    what: &str,
    id: &str,
    write: impl FnOnce(&mut Conn, bool) -> QueryResult<usize>,
) -> DbResult<Outcome> {
    let outcome = judge(record, found, what, id, mode);
    if mode.write {
        match outcome {
            Outcome::Written => write(conn, true)?,
            Outcome::Overwritten => write(conn, false)?,
            _ => 0,
        };
    }
    Ok(outcome)
}

/// The outcome of each record of `batch` given the target's records of the same ids (`found`) and
/// whether a record has the parent the batch is written under.
fn judge_batch<R, T: PartialEq>(
    batch: &[R],
    record: impl Fn(&R) -> &T,
    found: Vec<T>,
    id: impl Fn(&T) -> &str,
    same_parent: impl Fn(&T) -> bool,
    what: &str,
    mode: ImportMode,
) -> Vec<Outcome> {
    let found: HashMap<&str, &T> = found.iter().map(|t| (id(t), t)).collect();
    batch
        .iter()
        .map(|r| {
            let t = record(r);
            let target = found.get(id(t)).map(|f| (*f, same_parent(f)));
            judge(t, target, what, id(t), mode)
        })
        .collect()
}

/// Writes a batch of one session's messages (in their order, after the session's messages) with
/// their ids and times; with `enqueue` the written ones are queued for the deriver as a stored
/// batch is. The session's row is locked and its count kept, as for any batch.
pub fn import_messages(
    conn: &mut Conn,
    key: &SessionKey,
    batch: &[Message],
    mode: ImportMode,
    enqueue: bool,
) -> DbResult<Vec<Outcome>> {
    in_mode(conn, mode, |conn| {
        let ids: Vec<&str> = batch.iter().map(|m| m.id.as_str()).collect();
        let found: Vec<Message> = messages::table
            .filter(messages::public_id.eq_any(&ids))
            .select(MessageRow::as_select())
            .load(conn)?
            .into_iter()
            .map(Message::from)
            .collect();
        let same_parent = |m: &Message| {
            m.session_id == key.session_id && m.user_id == key.user_id && m.app_id == key.app_id
        };
        let outcomes = judge_batch(batch, |m| m, found, |m| &m.id, same_parent, "message", mode);
        if !mode.write {
            return Ok(outcomes);
        }
        let written: Vec<&Message> = batch
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| **o == Outcome::Written)
            .map(|(m, _)| m)
            .collect();
        let overwritten = outcomes.contains(&Outcome::Overwritten);
        let session_metadata: Value = diesel::update(session_of(key))
            .set((
                sessions::message_count.eq(sessions::message_count + written.len() as i64),
                // Cached copies of the session's messages read them again when one is replaced.
                sessions::vector_revision.eq(sessions::vector_revision + i64::from(overwritten)),
            ))
            .returning(sessions::metadata)
            .get_result(conn)
            .optional()?
            .ok_or_else(Error::session_not_found)?;
        let rows: Vec<NewMessageRow> = written
            .iter()
            .map(|m| NewMessageRow {
                public_id: m.id.clone(),
                app_id: &key.app_id,
                user_id: &key.user_id,
                session_id: &key.session_id,
                is_user: m.is_user,
                content: m.content.clone(),
                metadata: object(&m.metadata),
                created_at: m.created_at,
                embedding: None,
                embedder: None,
                dimensions: None,
            })
            .collect();
        if !rows.is_empty() {
            diesel::insert_into(messages::table)
                .values(&rows)
                .execute(conn)?;
        }
        for (m, _) in batch
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| **o == Outcome::Overwritten)
        {
            diesel::update(messages::table.filter(messages::public_id.eq(&m.id)))
                .set((
                    messages::is_user.eq(m.is_user),
                    messages::content.eq(&m.content),
                    messages::metadata.eq(object(&m.metadata)),
                    messages::created_at.eq(m.created_at),
                    messages::embedding.eq(None::<Vec<u8>>),
                    messages::embedder.eq(None::<String>),
                    messages::dimensions.eq(None::<i32>),
                ))
                .execute(conn)?;
        }
        if enqueue && !rows.is_empty() && !deriver_disabled(&into_map(session_metadata)) {
            let first = &rows[0].public_id;
            super::messages::queue_batch(conn, key, first, rows.len(), honcho_domain::now())?;
        }
        Ok(outcomes)
    })
}

/// Writes a batch of a user's metamessages with their ids, times and links.
pub fn import_metamessages(
    conn: &mut Conn,
    app_id: &str,
    user_id: &str,
    batch: &[Metamessage],
    mode: ImportMode,
) -> DbResult<Vec<Outcome>> {
    in_mode(conn, mode, |conn| {
        let ids: Vec<&str> = batch.iter().map(|m| m.id.as_str()).collect();
        let found: Vec<Metamessage> = metamessages::table
            .filter(metamessages::public_id.eq_any(&ids))
            .select(MetamessageRow::as_select())
            .load(conn)?
            .into_iter()
            .map(Metamessage::from)
            .collect();
        let same_parent = |m: &Metamessage| m.app_id == app_id && m.user_id == user_id;
        let outcomes = judge_batch(
            batch,
            |m| m,
            found,
            |m| &m.id,
            same_parent,
            "metamessage",
            mode,
        );
        if !mode.write {
            return Ok(outcomes);
        }
        if !super::metamessages::user_exists(conn, app_id, user_id)? {
            return Err(Error::user_not_found(user_id).into());
        }
        let outcomes = unlinked(conn, batch, outcomes)?;
        let mut rows = Vec::new();
        for (m, outcome) in batch.iter().zip(&outcomes) {
            let metadata = object(&m.metadata);
            match outcome {
                Outcome::Written => rows.push((m, metadata)),
                Outcome::Overwritten => {
                    diesel::update(metamessages::table.filter(metamessages::public_id.eq(&m.id)))
                        .set((
                            metamessages::label.eq(&m.label),
                            metamessages::content.eq(&m.content),
                            metamessages::session_id.eq(&m.session_id),
                            metamessages::message_id.eq(&m.message_id),
                            metamessages::metadata.eq(metadata),
                            metamessages::created_at.eq(m.created_at),
                        ))
                        .execute(conn)?;
                }
                _ => {}
            }
        }
        let rows: Vec<NewMetamessageRow> = rows
            .iter()
            .map(|(m, metadata)| NewMetamessageRow {
                public_id: &m.id,
                app_id,
                user_id,
                session_id: m.session_id.as_deref(),
                message_id: m.message_id.as_deref(),
                label: &m.label,
                content: &m.content,
                metadata,
                created_at: m.created_at,
            })
            .collect();
        if !rows.is_empty() {
            diesel::insert_into(metamessages::table)
                .values(&rows)
                .execute(conn)?;
        }
        Ok(outcomes)
    })
}

/// The outcomes with each metamessage to write whose session or message is not on the target
/// marked unlinked (it could not be stored).
fn unlinked(
    conn: &mut Conn,
    batch: &[Metamessage],
    mut outcomes: Vec<Outcome>,
) -> DbResult<Vec<Outcome>> {
    let writes = || {
        batch
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| matches!(o, Outcome::Written | Outcome::Overwritten))
            .map(|(m, _)| m)
    };
    let session_ids: Vec<&str> = writes().filter_map(|m| m.session_id.as_deref()).collect();
    let message_ids: Vec<&str> = writes().filter_map(|m| m.message_id.as_deref()).collect();
    let sessions_there: std::collections::HashSet<String> = sessions::table
        .filter(sessions::public_id.eq_any(&session_ids))
        .select(sessions::public_id)
        .load(conn)?
        .into_iter()
        .collect();
    let messages_there: std::collections::HashSet<String> = messages::table
        .filter(messages::public_id.eq_any(&message_ids))
        .select(messages::public_id)
        .load(conn)?
        .into_iter()
        .collect();
    for (m, outcome) in batch.iter().zip(outcomes.iter_mut()) {
        if !matches!(outcome, Outcome::Written | Outcome::Overwritten) {
            continue;
        }
        let missing = match (&m.session_id, &m.message_id) {
            (Some(s), _) if !sessions_there.contains(s) => Some(format!("session {s}")),
            (_, Some(id)) if !messages_there.contains(id) => Some(format!("message {id}")),
            _ => None,
        };
        if let Some(missing) = missing {
            *outcome = Outcome::Unlinked(format!(
                "metamessage {} points at {missing}, which is not on the target",
                m.id
            ));
        }
    }
    Ok(outcomes)
}

/// Writes a batch of a collection's documents with their ids and times, each with the vector given
/// for it (written and replaced ones need one; see `honcho_domain::import::unembedded`).
pub fn import_documents(
    conn: &mut Conn,
    key: &CollectionKey,
    batch: &[(Document, Option<Embedding>)],
    mode: ImportMode,
) -> DbResult<Vec<Outcome>> {
    in_mode(conn, mode, |conn| {
        let ids: Vec<&str> = batch.iter().map(|(d, _)| d.id.as_str()).collect();
        let found: Vec<Document> = documents::table
            .filter(documents::public_id.eq_any(&ids))
            .select(DocumentRow::as_select())
            .load(conn)?
            .into_iter()
            .map(Document::from)
            .collect();
        let same_parent = |d: &Document| {
            d.collection_id == key.collection_id
                && d.user_id == key.user_id
                && d.app_id == key.app_id
        };
        let outcomes = judge_batch(
            batch,
            |(d, _)| d,
            found,
            |d| &d.id,
            same_parent,
            "document",
            mode,
        );
        if !mode.write {
            return Ok(outcomes);
        }
        super::collections::find_collection(conn, key)?;
        let unembedded = honcho_domain::import::unembedded();
        for ((d, embedding), outcome) in batch.iter().zip(&outcomes) {
            if !matches!(outcome, Outcome::Written | Outcome::Overwritten) {
                continue;
            }
            let embedding = embedding.as_ref().unwrap_or(&unembedded);
            let metadata = object(&d.metadata);
            let revision = dialect::next_revision(conn, &key.collection_id)?;
            if *outcome == Outcome::Written {
                diesel::insert_into(documents::table)
                    .values(&NewDocumentRow {
                        public_id: &d.id,
                        app_id: &key.app_id,
                        user_id: &key.user_id,
                        collection_id: &key.collection_id,
                        content: &d.content,
                        metadata: &metadata,
                        embedding: encode(&embedding.vector),
                        embedder: &embedding.embedder,
                        dimensions: embedding.vector.len() as i32,
                        revision,
                        created_at: d.created_at,
                    })
                    .execute(conn)?;
            } else {
                diesel::update(documents::table.filter(documents::public_id.eq(&d.id)))
                    .set((
                        documents::content.eq(&d.content),
                        documents::metadata.eq(&metadata),
                        documents::embedding.eq(encode(&embedding.vector)),
                        documents::embedder.eq(&embedding.embedder),
                        documents::dimensions.eq(embedding.vector.len() as i32),
                        documents::revision.eq(revision),
                        documents::created_at.eq(d.created_at),
                    ))
                    .execute(conn)?;
            }
        }
        Ok::<_, DbError>(outcomes)
    })
}
