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
#[derive(Debug, Clone)]
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
