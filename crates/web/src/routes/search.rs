//! Additions beyond v1.1.0 for an agent's every turn: message search (one session, or every
//! session of a user) and the session context within a token budget.

use super::{check_top_k, embed, parse_filter, parse_text, run, try_embed, SessionPath, UserPath};
use crate::auth::{scope, Access};
use crate::dto::{Message, MessageSearch, SessionContext, UserMessageSearch};
use crate::error::ApiError;
use crate::extract::{Body, FromQuery, Query};
use actix_web::dev::Payload;
use actix_web::web::{Data, Json, Path};
use actix_web::{get, post, FromRequest, HttpRequest, HttpResponse};
use honcho_domain::context::{ContextRequest, TokenCounter, TOKENS_DEFAULT, TOKENS_MAX};
use honcho_domain::embed::Embedder;
use honcho_domain::retrieval::{
    without_speaker, MessageScope, Retrieval, RetrievalMode, Search, MESSAGE_TOP_K_MAX,
};
use honcho_domain::Text;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use utoipa::IntoParams;

/// What ranking needs, from the app's data: the embedder and the ranking settings.
pub(super) struct Ranker {
    pub embedder: Data<dyn Embedder>,
    pub retrieval: Retrieval,
}

impl FromRequest for Ranker {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Ranker, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let embedder = req.app_data::<Data<dyn Embedder>>().cloned();
        let retrieval = req.app_data::<Data<Retrieval>>().map(|r| ***r);
        std::future::ready(match (embedder, retrieval) {
            (Some(embedder), Some(retrieval)) => Ok(Ranker {
                embedder,
                retrieval,
            }),
            _ => Err(actix_web::error::ErrorInternalServerError(
                "the embedder or the ranking settings are not configured",
            )),
        })
    }
}

impl Ranker {
    /// The query text, ready to rank with (embedded unless the mode ranks by words alone), and
    /// whether it ranks by words alone because the embedder failed. When the embedder fails and
    /// `by_words_when_unembedded` (message search), hybrid ranking goes on by words alone (the
    /// failure is logged; the answer says so in [`RANKED_BY_WORDS_HEADER`]), so that search keeps
    /// working while a remote embedding service is down; otherwise (`documents/query`, as v1.1.0
    /// answers it, and `vector` ranking) the answer is the embedder's error. `embedded` is the
    /// text to embed when it is not `text` (message search: [`without_speaker`]).
    pub async fn search(
        &self,
        text: String,
        embedded: Option<String>,
        by_words_when_unembedded: bool,
    ) -> Result<(Search, bool), ApiError> {
        let (embedder, retrieval) = (&self.embedder, self.retrieval);
        let mut by_words_only = false;
        let embedded = embedded.unwrap_or_else(|| text.clone());
        let embedding = match retrieval.mode {
            RetrievalMode::Lexical => None,
            RetrievalMode::Hybrid if by_words_when_unembedded => {
                match try_embed(embedder, embedded).await? {
                    Ok(e) => Some(e),
                    Err(e) => {
                        tracing::warn!(error = %e, "search: the query could not be embedded; ranking by words alone");
                        by_words_only = true;
                        None
                    }
                }
            }
            RetrievalMode::Vector | RetrievalMode::Hybrid => Some(embed(embedder, embedded).await?),
        };
        let retrieval = match by_words_only {
            true => Retrieval {
                mode: RetrievalMode::Lexical,
                ..retrieval
            },
            false => retrieval,
        };
        let search = Search {
            text,
            embedding,
            retrieval,
        };
        Ok((search, by_words_only))
    }
}

/// Set (to `words`) on a search's answer when the query could not be embedded and hybrid ranking
/// ranked by words alone.
pub const RANKED_BY_WORDS_HEADER: &str = "x-honcho-ranked-by";

/// Runs a message search for the user of `app_id`/`user_id`. The query is embedded without the
/// words naming the user ([`without_speaker`]) as this process last knew the user's name, which
/// costs no database read; when the search finds that the name it embedded for is not the user's
/// (the user's first search here, or a rename) and that changes the text embedded, it is made
/// again with the user's name.
async fn search_messages(
    access: &Access<impl scope::RouteScope>,
    ranker: &Ranker,
    (app_id, user_id): (String, String),
    (query, top_k, scope): (String, i64, MessageScope),
) -> Result<HttpResponse, ApiError> {
    let text = parse_text(Text::message_query(query), &[json!("query")])?.into_inner();
    check_top_k(top_k, MESSAGE_TOP_K_MAX)?;
    let ids = Arc::new((app_id, user_id, scope));
    let speaker = access.db().message_speaker(&ids.1);
    let mut embedded = speaker.as_deref().and_then(|n| without_speaker(&text, n));
    let mut again = false;
    let (found, by_words_only) = loop {
        let (search, by_words_only) = ranker.search(text.clone(), embedded.clone(), true).await?;
        let asked = ids.clone();
        let (found, name) = run(access.db(), move |db| {
            db.query_messages(&asked.0, &asked.1, &asked.2, &search, top_k as usize)
        })
        .await?;
        // Made again once at most: that answer stands, even if the user was renamed meanwhile.
        if again || speaker.as_deref() == Some(name.as_str()) {
            break (found, by_words_only);
        }
        let for_name = without_speaker(&text, &name);
        if for_name == embedded {
            break (found, by_words_only);
        }
        embedded = for_name;
        again = true;
    };
    let messages: Vec<Message> = found.items.into_iter().map(Message::from).collect();
    let mut answer = HttpResponse::Ok();
    if by_words_only {
        answer.insert_header((RANKED_BY_WORDS_HEADER, "words"));
    }
    Ok(answer.json(messages))
}

/// Search a session's messages, best match first
///
/// Ranked as `documents/query` ranks (BM25 over stemmed words and the embedder's vectors, fused;
/// `RETRIEVAL_MODE` configures it), with no language model call. A message is searchable as soon
/// as it is stored; one without a vector (stored before message search existed, or waiting for a
/// remote embedder) is found by its words. The user is the speaker of their messages: the user's
/// `name` counts as words of each (not of its length), and the words of a query that name the user
/// are left out of its embedding, so that a question naming the user finds what they said rather
/// than the replies that address them by name.
#[utoipa::path(
    tag = "search",
    params(SessionPath),
    request_body(content = MessageSearch, description = "What to look for, and in which messages"),
    responses((status = 200, description = "The best matching messages, best first", body = Vec<Message>,
        headers(("x-honcho-ranked-by" = String, description = "`words` when the query could not be embedded (the embedding service failed) and hybrid ranking ranked by words alone"))))
)]
#[post("/query")]
pub async fn query_session_messages(
    access: Access<scope::Session>,
    ranker: Ranker,
    path: Path<SessionPath>,
    body: Body<MessageSearch>,
) -> Result<HttpResponse, ApiError> {
    let Body(MessageSearch {
        query,
        filter,
        top_k,
        is_user,
    }) = body;
    let key = path.into_inner().key();
    let scope = MessageScope {
        sessions: Some(vec![key.session_id]),
        is_user,
        metadata: parse_filter(filter)?,
    };
    let ids = (key.app_id, key.user_id);
    search_messages(&access, &ranker, ids, (query, top_k, scope)).await
}

/// Search every session of a user (active or not), best match first
///
/// Ranked as the session search ranks, over all of the user's messages; `session_ids` narrows it
/// to some sessions (an id that is not one of the user's sessions is a 404).
#[utoipa::path(
    tag = "search",
    params(UserPath),
    request_body(content = UserMessageSearch, description = "What to look for, and in which messages"),
    responses((status = 200, description = "The best matching messages, best first", body = Vec<Message>,
        headers(("x-honcho-ranked-by" = String, description = "`words` when the query could not be embedded (the embedding service failed) and hybrid ranking ranked by words alone"))))
)]
#[post("/query")]
pub async fn query_user_messages(
    access: Access<scope::AppUser>,
    ranker: Ranker,
    path: Path<UserPath>,
    body: Body<UserMessageSearch>,
) -> Result<HttpResponse, ApiError> {
    let Body(UserMessageSearch {
        query,
        filter,
        top_k,
        is_user,
        session_ids,
    }) = body;
    let path = path.into_inner();
    let sessions = session_ids
        .map(MessageScope::parse_sessions)
        .transpose()
        .map_err(|reason| super::invalid(&[json!("session_ids")], &reason, Value::Null))?;
    let scope = MessageScope {
        sessions,
        is_user,
        metadata: parse_filter(filter)?,
    };
    let ids = (path.app_id, path.user_id);
    search_messages(&access, &ranker, ids, (query, top_k, scope)).await
}

/// `.../context` query parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ContextParams {
    /// Token budget of the answer (`o200k_base` tokens of its contents)
    #[param(minimum = 1, maximum = 100000, default = 2048)]
    tokens: Option<u64>,
    /// Include the newest summary when some messages do not fit
    #[param(default = true)]
    summary: Option<bool>,
    /// Also return the user's facts most relevant to this (1 to 10,000 characters)
    #[param(min_length = 1, max_length = 10000)]
    query: Option<String>,
}

impl FromQuery for ContextParams {
    fn from_query(q: &Query) -> Result<Self, ApiError> {
        Ok(ContextParams {
            tokens: Some(q.integer("tokens", TOKENS_DEFAULT as i64, 1, TOKENS_MAX as i64)? as u64),
            summary: Some(q.boolean("summary", true)?),
            query: q.string("query")?,
        })
    }
}

/// The context for the next prompt: latest messages, summary and facts within a token budget
///
/// The session's latest messages that fit in `tokens` after the facts (at most a quarter of the
/// budget) and, when some messages did not fit, the newest summary the deriver wrote (at most half
/// of it). Tokens are counted with `o200k_base`. Without a language model configured there are no
/// summaries or facts, and the answer holds the messages that fit.
#[utoipa::path(
    tag = "context",
    params(SessionPath, ContextParams),
    responses((status = 200, description = "The context, within the budget", body = SessionContext))
)]
#[get("/{session_id}/context")]
pub async fn session_context(
    access: Access<scope::Session>,
    ranker: Ranker,
    counter: Data<dyn TokenCounter>,
    path: Path<SessionPath>,
    req: HttpRequest,
) -> Result<Json<SessionContext>, ApiError> {
    let q = ContextParams::parse(&req)?;
    let (tokens, summary) = (
        q.tokens.unwrap_or_default() as usize,
        q.summary.unwrap_or(true),
    );
    let query = match q.query {
        Some(text) => Some(
            Text::message_query(text)
                .map_err(|reason| super::invalid_query("query", &reason))?
                .into_inner(),
        ),
        None => None,
    };
    let facts = match &query {
        Some(text) => Some(ranker.search(text.clone(), None, true).await?.0),
        None => None,
    };
    let request = ContextRequest {
        tokens,
        summary,
        query,
    };
    let key = path.into_inner().key();
    let counter = counter.into_inner();
    let context = run(access.db(), move |db| {
        db.session_context(&key, &request, facts.as_ref(), &*counter)
    })
    .await?;
    Ok(Json(context.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use honcho_domain::retrieval::MESSAGE_TOP_K_DEFAULT;
    use honcho_domain::values::MESSAGE_QUERY_MAX;
    use serde_json::Value;

    /// The schema attributes take literals only: they must say what the domain's limits are.
    #[test]
    fn the_documented_limits_are_the_domains() {
        let doc = serde_json::to_value(crate::api_doc()).unwrap();
        for name in ["MessageSearch", "UserMessageSearch"] {
            let p = &doc["components"]["schemas"][name]["properties"];
            assert_eq!(p["query"]["maxLength"], json!(MESSAGE_QUERY_MAX), "{name}");
            assert_eq!(p["top_k"]["maximum"], json!(MESSAGE_TOP_K_MAX), "{name}");
            assert_eq!(
                p["top_k"]["default"],
                json!(MESSAGE_TOP_K_DEFAULT),
                "{name}"
            );
        }
        let context = &doc["paths"]
            ["/v1/apps/{app_id}/users/{user_id}/sessions/{session_id}/context"]["get"]
            ["parameters"];
        let param = |n: &str| -> Value {
            context
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == n)
                .unwrap()["schema"]
                .clone()
        };
        assert_eq!(param("tokens")["maximum"], json!(TOKENS_MAX));
        assert_eq!(param("tokens")["default"], json!(TOKENS_DEFAULT));
        assert_eq!(param("query")["maxLength"], json!(MESSAGE_QUERY_MAX));
    }
}
