use super::{check_top_k, embed, parse_filter, parse_metadata, parse_text, run, CollectionPath};
use crate::auth::{scope, Access};
use crate::dto::{
    Deleted, Document, DocumentCreate, DocumentGet, DocumentQuery, DocumentUpdate, Page,
};
use crate::error::ApiError;
use crate::extract::{Body, ListParams, OptionalBody};
use actix_web::http::StatusCode;
use actix_web::web::{Data, Json, Path};
use actix_web::{delete, get, post, put, HttpRequest, HttpResponse};
use honcho_domain::embed::Embedder;
use honcho_domain::retrieval::DOCUMENT_TOP_K_MAX;
use honcho_domain::values::check_metadata_keys;
use honcho_domain::Text;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_documents)
        .service(query_documents)
        .service(get_document)
        .service(update_document)
        .service(delete_document)
        .service(create_document);
}

/// `.../documents/{document_id}`
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct DocumentPath {
    /// ID of the app
    app_id: String,
    /// ID of the user
    user_id: String,
    /// ID of the collection
    collection_id: String,
    /// ID of the document
    document_id: String,
}

impl DocumentPath {
    fn split(self) -> (honcho_domain::CollectionKey, String) {
        let key = CollectionPath {
            app_id: self.app_id,
            user_id: self.user_id,
            collection_id: self.collection_id,
        }
        .key();
        (key, self.document_id)
    }
}

/// List a collection's documents
#[utoipa::path(
    tag = "documents",
    operation_id = "get_documents_v1_apps__app_id__users__user_id__collections__collection_id__documents_list_post",
    params(CollectionPath, ListParams),
    request_body(content = Option<DocumentGet>, description = "Filtering options for the documents list"),
    responses((status = 200, description = "A page of documents", body = Page<Document>))
)]
#[post("/list")]
async fn list_documents(
    access: Access<scope::Collection>,
    req: HttpRequest,
    path: Path<CollectionPath>,
    body: OptionalBody<DocumentGet>,
) -> Result<Json<Page<Document>>, ApiError> {
    let page = ListParams::page(&req)?;
    let filter = parse_filter(body.0.and_then(|b| b.filter))?;
    let key = path.into_inner().key();
    let documents = run(access.db(), move |db| {
        db.list_documents(&key, filter.as_ref(), page)
    })
    .await?;
    Ok(Json(Page::from_domain(documents, Document::from)))
}

/// Get a document
#[utoipa::path(
    tag = "documents",
    operation_id = "get_document_v1_apps__app_id__users__user_id__collections__collection_id__documents__document_id__get",
    params(DocumentPath),
    responses((status = 200, description = "The document", body = Document))
)]
#[get("/{document_id}")]
async fn get_document(
    access: Access<scope::Collection>,
    path: Path<DocumentPath>,
) -> Result<Json<Document>, ApiError> {
    let (key, id) = path.into_inner().split();
    let document = run(access.db(), move |db| db.get_document(&key, &id)).await?;
    Ok(Json(document.into()))
}

/// Replace a document's content (embedded again) and/or metadata
#[utoipa::path(
    tag = "documents",
    operation_id = "update_document_v1_apps__app_id__users__user_id__collections__collection_id__documents__document_id__put",
    params(DocumentPath),
    request_body(content = DocumentUpdate, description = "Updated document parameters"),
    responses((status = 200, description = "The updated document", body = Document))
)]
#[put("/{document_id}")]
async fn update_document(
    access: Access<scope::Collection>,
    embedder: Data<dyn Embedder>,
    path: Path<DocumentPath>,
    body: Body<DocumentUpdate>,
) -> Result<Json<Document>, ApiError> {
    let Body(DocumentUpdate { metadata, content }) = body;
    if content.is_none() && metadata.is_none() {
        return Err(ApiError::Status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Content and metadata cannot both be None".into(),
        ));
    }
    let metadata = metadata
        .map(|m| {
            // Counted first, and not echoed: a 422 of 10,001 keys would be long.
            check_metadata_keys(m.len()).map_err(|reason| {
                super::invalid(&[json!("metadata")], &reason, serde_json::Value::Null)
            })?;
            parse_metadata(m, &[json!("metadata")])
        })
        .transpose()?;
    let content = content
        .map(|c| parse_text(Text::document(c), &[json!("content")]))
        .transpose()?;
    let (key, id) = path.into_inner().split();
    let content = match content {
        Some(text) => {
            // An unknown document is answered before the model is called.
            let (k, i) = (key.clone(), id.clone());
            run(access.db(), move |db| db.get_document(&k, &i)).await?;
            let embedding = embed(&embedder, text.as_str().to_string()).await?;
            Some((text, embedding))
        }
        None => None,
    };
    let document = run(access.db(), move |db| {
        db.update_document(&key, &id, content, metadata)
    })
    .await?;
    Ok(Json(document.into()))
}

/// Delete a document
#[utoipa::path(
    tag = "documents",
    operation_id = "delete_document_v1_apps__app_id__users__user_id__collections__collection_id__documents__document_id__delete",
    params(DocumentPath),
    responses((status = 200, description = "The document is gone", body = Deleted))
)]
#[delete("/{document_id}")]
async fn delete_document(
    access: Access<scope::Collection>,
    path: Path<DocumentPath>,
) -> Result<Json<Deleted>, ApiError> {
    let (key, id) = path.into_inner().split();
    run(access.db(), move |db| db.delete_document(&key, &id)).await?;
    Ok(Json(Deleted {
        message: "Document deleted successfully".into(),
    }))
}

/// The documents that best match a query, best first
///
/// Ranked by meaning and words together by default (cosine similarity of the embedder's vectors
/// and BM25, each min-max scaled over the documents that pass the filter, then weighted);
/// `RETRIEVAL_MODE` and `RETRIEVAL_LEXICAL_WEIGHT` configure it.
#[utoipa::path(
    tag = "documents",
    operation_id = "query_documents_v1_apps__app_id__users__user_id__collections__collection_id__documents_query_post",
    params(CollectionPath),
    request_body(content = DocumentQuery, description = "Query parameters for document search"),
    responses((status = 200, description = "The best matching documents", body = Vec<Document>,
        headers(("x-honcho-incomparable-documents" = u64, description = "Set when documents searched carry a vector of another embedder (their count): ranked by their words only (hybrid) or not at all (vector); `honcho reembed` re-embeds them"))))
)]
#[post("/query")]
async fn query_documents(
    access: Access<scope::Collection>,
    ranker: super::search::Ranker,
    path: Path<CollectionPath>,
    body: Body<DocumentQuery>,
) -> Result<HttpResponse, ApiError> {
    let Body(DocumentQuery {
        query,
        filter,
        top_k,
    }) = body;
    let query = parse_text(Text::query(query), &[json!("query")])?;
    check_top_k(top_k, DOCUMENT_TOP_K_MAX)?;
    let filter = parse_filter(filter)?;
    let key = path.into_inner().key();
    let (search, _) = ranker.search(query.into_inner(), None, false).await?;
    let retrieval = ranker.retrieval;
    let collection = key.collection_id.clone();
    let found = run(access.db(), move |db| {
        db.query_documents(&key, &search, top_k as usize, filter.as_ref())
    })
    .await?;
    let documents: Vec<Document> = found.items.into_iter().map(Document::from).collect();
    let mut answer = HttpResponse::Ok();
    if found.incomparable > 0 {
        // Documents embedded by another embedder: ranked by their words in hybrid mode, not at
        // all in vector mode. Say so rather than answer as if they were not there.
        tracing::warn!(
            collection = %collection,
            documents = found.incomparable,
            mode = %retrieval.mode,
            embedder = ranker.embedder.id(),
            "documents of this collection were embedded by another embedder and cannot be \
             compared with the query's vector; run `honcho reembed`"
        );
        answer.insert_header((INCOMPARABLE_HEADER, found.incomparable.to_string()));
    }
    Ok(answer.json(documents))
}

/// Set on a query's answer when some of the documents searched carry a vector of another embedder
/// (their count): hybrid ranking ranked them by their words only, vector ranking not at all.
pub const INCOMPARABLE_HEADER: &str = "x-honcho-incomparable-documents";

/// Add a document to a collection (its content is embedded)
#[utoipa::path(
    tag = "documents",
    operation_id = "create_document_v1_apps__app_id__users__user_id__collections__collection_id__documents_post",
    params(CollectionPath),
    request_body(content = DocumentCreate, description = "Document creation parameters"),
    responses((status = 200, description = "The new document", body = Document))
)]
#[post("")]
async fn create_document(
    access: Access<scope::Collection>,
    embedder: Data<dyn Embedder>,
    path: Path<CollectionPath>,
    body: Body<DocumentCreate>,
) -> Result<Json<Document>, ApiError> {
    let Body(DocumentCreate { content, metadata }) = body;
    let content = parse_text(Text::document(content), &[json!("content")])?;
    let metadata = parse_metadata(metadata, &[json!("metadata")])?;
    let key = path.into_inner().key();
    let k = key.clone();
    run(access.db(), move |db| db.check_collection(&k)).await?;
    let embedding = embed(&embedder, content.as_str().to_string()).await?;
    let document = run(access.db(), move |db| {
        db.create_document(&key, content, metadata, embedding)
    })
    .await?;
    Ok(Json(document.into()))
}
