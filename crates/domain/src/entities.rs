//! The resources of the API as the domain sees them. Timestamps are UTC with microsecond precision,
//! the precision both storage engines keep.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub id: String,
    pub name: String,
    pub metadata: Map<String, Value>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub app_id: String,
    pub name: String,
    pub metadata: Map<String, Value>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: String,
    pub app_id: String,
    pub user_id: String,
    pub is_active: bool,
    pub metadata: Map<String, Value>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: String,
    pub app_id: String,
    pub user_id: String,
    pub session_id: String,
    pub is_user: bool,
    pub content: String,
    pub metadata: Map<String, Value>,
    pub created_at: DateTime<Utc>,
}

/// A message to be stored: parsed and checked, not yet given an id.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub content: crate::Content,
    pub is_user: bool,
    pub metadata: crate::Metadata,
}

/// The ids that locate a session: its app, its user and itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKey {
    pub app_id: String,
    pub user_id: String,
    pub session_id: String,
}

/// Whether a session's metadata asks the deriver to skip it (`deriver_disabled` set to anything
/// other than `null` or `false`).
pub fn deriver_disabled(metadata: &Map<String, Value>) -> bool {
    !matches!(
        metadata.get("deriver_disabled"),
        None | Some(Value::Null) | Some(Value::Bool(false))
    )
}

/// The current time at the precision storage keeps (microseconds).
pub fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Collection {
    pub id: String,
    pub app_id: String,
    pub user_id: String,
    pub name: String,
    pub metadata: Map<String, Value>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: String,
    pub app_id: String,
    pub user_id: String,
    pub collection_id: String,
    pub content: String,
    pub metadata: Map<String, Value>,
    pub created_at: DateTime<Utc>,
}

/// The ids that locate a collection: its app, its user and itself.
#[derive(Debug, Clone)]
pub struct CollectionKey {
    pub app_id: String,
    pub user_id: String,
    pub collection_id: String,
}

/// A vector and the embedder that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    pub vector: Vec<f32>,
    /// The embedder's id (see `embed::Embedder::id`).
    pub embedder: String,
}

/// The name of each user's protected collection, which holds the deriver's facts.
pub const PROTECTED_COLLECTION: &str = "honcho";

/// A note about a user (v1.1.0's metamessage), optionally attached to one of the user's sessions and
/// to a message of that session.
#[derive(Debug, Clone, PartialEq)]
pub struct Metamessage {
    pub id: String,
    pub app_id: String,
    pub user_id: String,
    pub session_id: Option<String>,
    pub message_id: Option<String>,
    pub label: String,
    pub content: String,
    pub metadata: Map<String, Value>,
    pub created_at: DateTime<Utc>,
}

/// A metamessage to be stored: parsed and checked, not yet given an id. Whether its session and
/// message exist (and belong together) is checked when it is stored.
#[derive(Debug, Clone)]
pub struct NewMetamessage {
    pub label: crate::values::Label,
    pub content: crate::Content,
    pub session_id: Option<String>,
    pub message_id: Option<String>,
    pub metadata: crate::Metadata,
}

/// Changes to a metamessage: `None` leaves a field as it is; `metadata` replaces it wholesale.
#[derive(Debug, Clone, Default)]
pub struct MetamessageChanges {
    pub label: Option<crate::values::Label>,
    pub session_id: Option<String>,
    pub message_id: Option<String>,
    pub metadata: Option<crate::Metadata>,
}

/// What narrows a list of a user's metamessages: each given field must match.
#[derive(Debug, Clone, Default)]
pub struct MetamessageFilter {
    pub label: Option<String>,
    pub session_id: Option<String>,
    pub message_id: Option<String>,
    pub metadata: Option<crate::Metadata>,
}
