//! The reads of a session context ([`honcho_domain::context`]): the user's facts ranked for a
//! query, the session's latest messages, and its summaries.

use super::documents::{current_vectors, documents_in_order};
use super::memory::find_protected;
use super::messages::MessageRow;
use super::schema::{messages, metamessages};
use super::Conn;
use crate::corpus::CollectionCache;
use crate::DbResult;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use honcho_domain::context::{
    fit_facts, ContextRequest, MessageFill, SessionContext, SessionSummary, SummaryKind,
    TokenCounter, FACTS_MAX,
};
use honcho_domain::insights::{SUMMARY_LONG_LABEL, SUMMARY_SHORT_LABEL};
use honcho_domain::retrieval::Search;
use honcho_domain::{CollectionKey, Message, SessionKey};

/// Messages read per round while filling a context.
const PAGE: i64 = 100;

/// The session's context within `request.tokens` (S404 for an unknown session); `facts` is the
/// request's query, ready to rank (`None` without a query).
pub fn session_context(
    conn: &mut Conn,
    cache: &CollectionCache,
    key: &SessionKey,
    request: &ContextRequest,
    facts: Option<&Search>,
    counter: &dyn TokenCounter,
) -> DbResult<SessionContext> {
    super::sessions::get_session(conn, key)?;
    let budget = request.tokens;
    let ranked = match facts {
        Some(search) => {
            rank_facts_for_each(conn, cache, key, std::slice::from_ref(search), FACTS_MAX)?
                .pop()
                .unwrap_or_default()
        }
        None => Vec::new(),
    };
    let facts = fit_facts(budget, ranked, counter);
    let mut fill = MessageFill::new(budget - facts.1);
    let mut before = i64::MAX;
    'read: loop {
        let page: Vec<(i64, MessageRow)> = messages::table
            .filter(messages::session_id.eq(&key.session_id))
            .filter(messages::id.lt(before))
            .order(messages::id.desc())
            .limit(PAGE)
            .select((messages::id, MessageRow::as_select()))
            .load(conn)?;
        let last_page = (page.len() as i64) < PAGE;
        for (id, row) in page {
            before = id;
            if !fill.offer(Message::from(row), counter) {
                break 'read;
            }
        }
        if last_page {
            break;
        }
    }
    let summaries = match request.summary && fill.left_some_out() {
        true => latest_summaries(conn, &key.session_id)?,
        false => Vec::new(),
    };
    Ok(fill.finish(budget, facts, summaries, counter))
}

/// The session's newest short and long summaries (those whose message still exists).
fn latest_summaries(conn: &mut Conn, session_id: &str) -> DbResult<Vec<SessionSummary>> {
    let mut found = Vec::new();
    for (label, kind) in [
        (SUMMARY_SHORT_LABEL, SummaryKind::Short),
        (SUMMARY_LONG_LABEL, SummaryKind::Long),
    ] {
        let newest: Option<(String, Option<String>, DateTime<Utc>)> = metamessages::table
            .filter(metamessages::session_id.eq(session_id))
            .filter(metamessages::label.eq(label))
            .order(metamessages::id.desc())
            .select((
                metamessages::content,
                metamessages::message_id,
                metamessages::created_at,
            ))
            .first(conn)
            .optional()?;
        let Some((content, Some(message_id), created_at)) = newest else {
            continue;
        };
        let covers_up_to: Option<i64> = messages::table
            .filter(messages::public_id.eq(&message_id))
            .select(messages::id)
            .get_result(conn)
            .optional()?;
        if let Some(covers_up_to) = covers_up_to {
            found.push(SessionSummary {
                content,
                message_id,
                kind,
                created_at,
                covers_up_to,
            });
        }
    }
    Ok(found)
}

/// For each search, the contents of the user's `top` facts best ranked for it (hybrid ranking over
/// the user's protected collection, read once for all of them), best first; none when the user has
/// no facts.
pub fn rank_facts_for_each(
    conn: &mut Conn,
    cache: &CollectionCache,
    key: &SessionKey,
    searches: &[Search],
    top: usize,
) -> DbResult<Vec<Vec<String>>> {
    let Some(collection_id) = find_protected(conn, &key.app_id, &key.user_id)? else {
        return Ok(vec![Vec::new(); searches.len()]);
    };
    let collection = CollectionKey {
        app_id: key.app_id.clone(),
        user_id: key.user_id.clone(),
        collection_id,
    };
    let Some(copy) = current_vectors(conn, &collection, cache)? else {
        return Ok(vec![Vec::new(); searches.len()]);
    };
    let mut out = Vec::with_capacity(searches.len());
    for search in searches {
        let ranked = copy.rank(search, |_| true, top);
        out.push(
            documents_in_order(conn, &ranked.items)?
                .into_iter()
                .map(|d| d.content)
                .collect(),
        );
    }
    Ok(out)
}
