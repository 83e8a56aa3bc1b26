use super::collections::{collection_of, find_collection};
use super::schema::{collections, documents};
use super::{dialect, into_map, Conn};
use crate::corpus::{CollectionCache, CollectionCorpus, Corpus};
use crate::{DbError, DbResult};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use honcho_domain::retrieval::{Ranked, Search};
use honcho_domain::vector::{decode, encode};
use honcho_domain::{
    id::new_id, now, CollectionKey, Document, Embedding, Error, Metadata, Page, PageRequest, Text,
    PROTECTED_COLLECTION,
};
use serde_json::Value;
use std::sync::Arc;

#[derive(Queryable, Selectable)]
#[diesel(table_name = documents)]
pub(super) struct DocumentRow {
    id: i64,
    public_id: String,
    app_id: String,
    user_id: String,
    collection_id: String,
    content: String,
    metadata: Value,
    created_at: DateTime<Utc>,
}

impl From<DocumentRow> for Document {
    fn from(r: DocumentRow) -> Self {
        Document {
            id: r.public_id,
            app_id: r.app_id,
            user_id: r.user_id,
            collection_id: r.collection_id,
            content: r.content,
            metadata: into_map(r.metadata),
            created_at: r.created_at,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = documents)]
pub(super) struct NewDocumentRow<'a> {
    pub public_id: &'a str,
    pub app_id: &'a str,
    pub user_id: &'a str,
    pub collection_id: &'a str,
    pub content: &'a str,
    pub metadata: &'a Value,
    pub embedding: Vec<u8>,
    pub embedder: &'a str,
    pub dimensions: i32,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(AsChangeset)]
#[diesel(table_name = documents)]
struct DocumentChanges {
    content: Option<String>,
    metadata: Option<Value>,
    embedding: Option<Vec<u8>>,
    embedder: Option<String>,
    dimensions: Option<i32>,
    revision: Option<i64>,
}

/// Documents of `key`'s collection with this id: the only way a document is looked up.
#[diesel::dsl::auto_type(no_type_alias)]
fn document_of<'a>(key: &'a CollectionKey, id: &'a str) -> _ {
    let collection_id: &'a str = &key.collection_id;
    let user_id: &'a str = &key.user_id;
    let app_id: &'a str = &key.app_id;
    documents::table
        .filter(documents::public_id.eq(id))
        .filter(documents::collection_id.eq(collection_id))
        .filter(documents::user_id.eq(user_id))
        .filter(documents::app_id.eq(app_id))
}

/// C404 unless the collection exists (checked before embedding, so a bad path costs no model call).
pub fn check_collection(conn: &mut Conn, key: &CollectionKey) -> DbResult<()> {
    find_collection(conn, key).map(|_| ())
}

pub fn create_document(
    conn: &mut Conn,
    key: &CollectionKey,
    content: Text,
    metadata: Metadata,
    embedding: Embedding,
) -> DbResult<Document> {
    dialect::write_tx(conn, |conn| {
        find_collection(conn, key)?;
        let metadata = Value::Object(metadata.into_inner());
        let (id, created_at) = insert_document(conn, key, content.as_str(), &metadata, &embedding)?;
        Ok::<_, DbError>(Document {
            id,
            app_id: key.app_id.clone(),
            user_id: key.user_id.clone(),
            collection_id: key.collection_id.clone(),
            content: content.into_inner(),
            metadata: into_map(metadata),
            created_at,
        })
    })
}

/// Inserts one document into an existing collection; returns its public id and creation time.
pub(super) fn insert_document(
    conn: &mut Conn,
    key: &CollectionKey,
    content: &str,
    metadata: &Value,
    embedding: &Embedding,
) -> QueryResult<(String, DateTime<Utc>)> {
    let (id, created_at) = (new_id(), now());
    let row = NewDocumentRow {
        public_id: &id,
        app_id: &key.app_id,
        user_id: &key.user_id,
        collection_id: &key.collection_id,
        content,
        metadata,
        embedding: encode(&embedding.vector),
        embedder: &embedding.embedder,
        dimensions: embedding.vector.len() as i32,
        revision: dialect::next_revision(conn, &key.collection_id)?,
        created_at,
    };
    diesel::insert_into(documents::table)
        .values(&row)
        .execute(conn)?;
    Ok((id, created_at))
}

pub fn get_document(conn: &mut Conn, key: &CollectionKey, id: &str) -> DbResult<Document> {
    document_of(key, id)
        .select(DocumentRow::as_select())
        .get_result(conn)
        .optional()?
        .map(Document::from)
        .ok_or_else(|| Error::document_not_found(id).into())
}

/// Replaces content (with its new embedding) and/or metadata.
pub fn update_document(
    conn: &mut Conn,
    key: &CollectionKey,
    id: &str,
    content: Option<(Text, Embedding)>,
    metadata: Option<Metadata>,
) -> DbResult<Document> {
    let (content, embedding) =
        content.map_or((None, None), |(t, e)| (Some(t.into_inner()), Some(e)));
    dialect::write_tx(conn, |conn| {
        let revision = match embedding {
            Some(_) => Some(dialect::next_revision(conn, &key.collection_id)?),
            None => None,
        };
        let changes = DocumentChanges {
            content,
            metadata: metadata.map(|m| Value::Object(m.into_inner())),
            dimensions: embedding.as_ref().map(|e| e.vector.len() as i32),
            embedding: embedding.as_ref().map(|e| encode(&e.vector)),
            embedder: embedding.map(|e| e.embedder),
            revision,
        };
        diesel::update(document_of(key, id))
            .set(&changes)
            .returning(DocumentRow::as_returning())
            .get_result(conn)
            .optional()?
            .map(Document::from)
            .ok_or_else(|| Error::document_not_found(id).into())
    })
}

pub fn delete_document(conn: &mut Conn, key: &CollectionKey, id: &str) -> DbResult<()> {
    dialect::write_tx(conn, |conn| {
        let collection = find_collection(conn, key)?;
        if collection.name == PROTECTED_COLLECTION {
            return Err(Error::document_in_reserved_collection().into());
        }
        let n = diesel::delete(document_of(key, id)).execute(conn)?;
        if n == 0 {
            return Err(Error::document_not_found_for_delete().into());
        }
        // Tells cached copies of the collection's vectors that one is gone.
        let revision = dialect::next_revision(conn, &key.collection_id)?;
        diesel::update(collection_of(key))
            .set(collections::deleted_revision.eq(revision))
            .execute(conn)?;
        Ok::<_, DbError>(())
    })
}

pub fn list_documents(
    conn: &mut Conn,
    key: &CollectionKey,
    filter: Option<&Metadata>,
    req: PageRequest,
) -> DbResult<Page<Document>> {
    let query = || {
        let mut q = documents::table
            .filter(documents::collection_id.eq(&key.collection_id))
            .filter(documents::user_id.eq(&key.user_id))
            .filter(documents::app_id.eq(&key.app_id))
            .into_boxed();
        if let Some(f) = filter {
            q = q.filter(dialect::metadata_contains(f.as_map()));
        }
        q
    };
    let total: i64 = query().count().get_result(conn)?;
    page_by_id!(conn, req, total, query, DocumentRow, documents::id)
}

/// The `top` documents of the collection best ranked for `search`
/// ([`honcho_domain::retrieval`]), best first, among those that pass `filter`. Scores come from the
/// cached copy of the collection (brought up to date first); the database applies the filter and
/// reads the winners' rows. An unknown collection has no documents.
pub fn query_documents(
    conn: &mut Conn,
    key: &CollectionKey,
    search: &Search,
    top: usize,
    filter: Option<&Metadata>,
    cache: &CollectionCache,
) -> DbResult<Ranked<Document>> {
    let Some(copy) = current_vectors(conn, key, cache)? else {
        return Ok(Ranked {
            items: Vec::new(),
            incomparable: 0,
        });
    };
    let allowed: Option<Vec<i64>> = match filter {
        Some(f) => Some(
            documents::table
                .filter(documents::collection_id.eq(&key.collection_id))
                .filter(documents::user_id.eq(&key.user_id))
                .filter(documents::app_id.eq(&key.app_id))
                .filter(dialect::metadata_contains(f.as_map()))
                .order(documents::id.asc())
                .select(documents::id)
                .load(conn)?,
        ),
        None => None,
    };
    let keep = |i: usize| match &allowed {
        Some(allowed) => allowed.binary_search(&copy.id(i)).is_ok(),
        None => true,
    };
    let ranked = copy.rank(search, keep, top);
    Ok(Ranked {
        items: documents_in_order(conn, &ranked.items)?,
        incomparable: ranked.incomparable,
    })
}

/// How many documents each embedder (and dimension) produced.
pub fn embedders_in_use(conn: &mut Conn) -> DbResult<Vec<(String, i32, i64)>> {
    Ok(documents::table
        .group_by((documents::embedder, documents::dimensions))
        .select((
            documents::embedder,
            documents::dimensions,
            diesel::dsl::count_star(),
        ))
        .load(conn)?)
}

/// Up to `limit` documents after internal id `after` whose vector was not made by `embedder` with
/// `dimensions`: their internal ids and contents, in id order.
pub fn documents_to_reembed(
    conn: &mut Conn,
    embedder: &str,
    dimensions: i32,
    after: i64,
    limit: i64,
) -> DbResult<Vec<(i64, String)>> {
    Ok(documents::table
        .filter(documents::id.gt(after))
        .filter(
            documents::embedder
                .ne(embedder)
                .or(documents::dimensions.ne(dimensions)),
        )
        .order(documents::id.asc())
        .limit(limit)
        .select((documents::id, documents::content))
        .load(conn)?)
}

/// Replaces one document's vector.
pub fn set_embedding(conn: &mut Conn, internal_id: i64, embedding: &Embedding) -> DbResult<()> {
    dialect::write_tx(conn, |conn| {
        let collection_id: String = documents::table
            .find(internal_id)
            .select(documents::collection_id)
            .get_result(conn)?;
        let revision = dialect::next_revision(conn, &collection_id)?;
        diesel::update(documents::table.filter(documents::id.eq(internal_id)))
            .set((
                documents::embedding.eq(encode(&embedding.vector)),
                documents::embedder.eq(&embedding.embedder),
                documents::dimensions.eq(embedding.vector.len() as i32),
                documents::revision.eq(revision),
            ))
            .execute(conn)?;
        Ok::<_, DbError>(())
    })
}

/// The documents of internal ids `ids`, in that order (the winners of a query, nearest first).
pub(super) fn documents_in_order(conn: &mut Conn, ids: &[i64]) -> DbResult<Vec<Document>> {
    let mut rows: Vec<DocumentRow> = documents::table
        .filter(documents::id.eq_any(ids))
        .select(DocumentRow::as_select())
        .load(conn)?;
    rows.sort_by_key(|r| ids.iter().position(|id| *id == r.id));
    Ok(rows.into_iter().map(Document::from).collect())
}

/// Every vector of a collection, unit length, in id order.
fn load_vectors(
    conn: &mut Conn,
    collection_id: &str,
    version: (i64, i64, i64),
) -> QueryResult<CollectionCorpus> {
    let mut copy = Corpus::new(version);
    append_pages(conn, &mut copy, collection_id, None)?;
    Ok(copy)
}

/// Documents read per statement while a copy is built: the rows in hand (and, on PostgreSQL, the
/// result the client library holds) stay a few MB whatever the collection's size.
const READ_PAGE: i64 = 2_000;

/// Adds the collection's documents after the copy's last id (in id order), [`READ_PAGE`] at a
/// time: all of them, or (`revisions`) those with a revision above the first and at most the
/// second. False when a document the copy holds turned up (it has a new vector).
fn append_pages(
    conn: &mut Conn,
    copy: &mut CollectionCorpus,
    collection_id: &str,
    revisions: Option<(i64, i64)>,
) -> QueryResult<bool> {
    let (held, last_held) = (copy.len(), copy.last_id());
    // An update's first page starts from the first id: a changed document the copy holds must be
    // seen. Every other page starts after the copy's last.
    let mut after = match revisions {
        Some(_) => i64::MIN,
        None => last_held,
    };
    loop {
        let mut query = documents::table
            .filter(documents::collection_id.eq(collection_id))
            .into_boxed();
        if let Some((above, at_most)) = revisions {
            query = query
                .filter(documents::revision.gt(above))
                .filter(documents::revision.le(at_most))
                .filter(documents::id.le(copy.version.0));
        }
        let rows: Vec<VectorRow> = query
            .filter(documents::id.gt(after))
            .order(documents::id.asc())
            .limit(READ_PAGE)
            .select(VECTOR_COLUMNS)
            .load(conn)?;
        if held > 0 && rows.iter().any(|(id, ..)| *id <= last_held) {
            return Ok(false);
        }
        let full = rows.len() as i64 == READ_PAGE;
        append(copy, rows);
        if !full {
            return Ok(true);
        }
        after = copy.last_id();
    }
}

/// `(id, embedder, embedding, content)` of a document.
type VectorRow = (i64, String, Vec<u8>, String);
const VECTOR_COLUMNS: (
    documents::id,
    documents::embedder,
    documents::embedding,
    documents::content,
) = (
    documents::id,
    documents::embedder,
    documents::embedding,
    documents::content,
);

/// Adds `rows` (in id order, after the copy's) to the copy: unit-length vectors and postings.
fn append(copy: &mut CollectionCorpus, rows: Vec<VectorRow>) {
    for (id, embedder, bytes, content) in rows {
        let vector = decode(&bytes).map(|v| (embedder.as_str(), v));
        copy.push(id, vector, &content, ());
    }
}

/// `old` brought to `version` by reading only the documents added since, when that is all that
/// changed (no deletion, no document given a new vector); `None` when the copy must be read whole.
/// Ids and revisions are drawn in commit order (`dialect::next_revision`), so the documents with a
/// revision above the copy's and at most `version`'s are exactly those committed in between.
fn extend_vectors(
    conn: &mut Conn,
    collection_id: &str,
    old: &CollectionCorpus,
    version: (i64, i64, i64),
) -> QueryResult<Option<CollectionCorpus>> {
    let (old_id, old_revision, old_deleted) = old.version;
    if version.2 != old_deleted || version.0 < old_id || version.1 < old_revision {
        return Ok(None);
    }
    let mut copy = old.clone();
    copy.version = version;
    match append_pages(
        conn,
        &mut copy,
        collection_id,
        Some((old_revision, version.1)),
    )? {
        true => Ok(Some(copy)),
        false => Ok(None),
    }
}

/// The cached copy of the collection's vectors, reloaded when the collection changed since it was
/// taken; `None` for an unknown collection.
pub(super) fn current_vectors(
    conn: &mut Conn,
    key: &CollectionKey,
    cache: &CollectionCache,
) -> DbResult<Option<Arc<CollectionCorpus>>> {
    // One round trip, a statement prepared once per connection: the collection's deletion
    // revision and its documents' largest id and revision (each an index read).
    let of_collection = || documents::table.filter(documents::collection_id.eq(&key.collection_id));
    let read = collections::table
        .filter(collections::public_id.eq(&key.collection_id))
        .filter(collections::user_id.eq(&key.user_id))
        .filter(collections::app_id.eq(&key.app_id))
        .select((
            collections::deleted_revision,
            of_collection()
                .select(diesel::dsl::max(documents::id))
                .single_value(),
            of_collection()
                .select(diesel::dsl::max(documents::revision))
                .single_value(),
        ))
        .get_result::<(i64, Option<i64>, Option<i64>)>(conn)
        .optional()?;
    let Some((deleted_revision, max_id, max_revision)) = read else {
        return Ok(None);
    };
    let version = (
        max_id.unwrap_or(0),
        max_revision.unwrap_or(0),
        deleted_revision,
    );
    let copy = cache.current(
        &key.collection_id,
        |c| c.version == version,
        |stale| {
            if let Some(old) = stale {
                if let Some(copy) = extend_vectors(conn, &key.collection_id, old, version)? {
                    return Ok::<_, DbError>(copy);
                }
            }
            Ok(load_vectors(conn, &key.collection_id, version)?)
        },
    )?;
    Ok(Some(copy))
}
