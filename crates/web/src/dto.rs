//! Request and response bodies of the v1.1.0 contract, with their OpenAPI schemas. Field names, types
//! and required-ness follow the documented contract exactly.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// A JSON object.
pub type Object = Map<String, Value>;

/// Timestamps as the v1.1.0 server writes them: RFC 3339 in UTC with microseconds when non-zero.
fn timestamp<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    let text = if t.timestamp_subsec_micros() == 0 {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    };
    s.serialize_str(&text)
}

/// Timestamps as a v1.1.0 server may write them: RFC 3339 with an offset, or without one (then UTC,
/// as a server that stores naive UTC times writes them).
fn read_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f")
                .map(|t| t.and_utc())
        })
        .map_err(|_| serde::de::Error::custom(format!("not a timestamp: {text:?}")))
}

fn optional_timestamp<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => timestamp(t, s),
        None => s.serialize_none(),
    }
}

/// Booleans as pydantic reads them in lax mode: `true`/`false`, `0`/`1`, and strings such as
/// `"yes"`, `"off"`, `"t"`.
fn lax_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a boolean")
        }
        fn visit_bool<E>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<bool, E> {
            match v {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(E::invalid_value(serde::de::Unexpected::Signed(v), &self)),
            }
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<bool, E> {
            self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<bool, E> {
            match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "t" | "yes" | "y" | "on" => Ok(true),
                "0" | "false" | "f" | "no" | "n" | "off" => Ok(false),
                _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
            }
        }
    }
    d.deserialize_any(V)
}

fn lax_bool_default_false<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    lax_bool(d)
}

// ---------------------------------------------------------------- responses

/// A recorded API key: what it reaches and when it was made, expires and was revoked. The key
/// itself is never stored or shown again.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyInfo {
    /// The key's id (its `jti` claim)
    pub id: String,
    pub app_id: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub collection_id: Option<String>,
    /// Free text given when the key was made
    pub label: Option<String>,
    #[serde(serialize_with = "optional_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// When the key was revoked; `null` while it works
    #[serde(serialize_with = "optional_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<honcho_domain::auth::KeyRecord> for KeyInfo {
    fn from(r: honcho_domain::auth::KeyRecord) -> Self {
        KeyInfo {
            id: r.id,
            app_id: r.scope.app_id,
            user_id: r.scope.user_id,
            session_id: r.scope.session_id,
            collection_id: r.scope.collection_id,
            label: r.label,
            expires_at: r.expires_at,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// A key presented for revocation.
#[derive(Debug, Deserialize, ToSchema)]
pub struct KeyRevoke {
    /// The key's text (a key minted by this server or with its secret; expired keys too)
    pub key: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct App {
    pub id: String,
    pub name: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Object,
    #[serde(serialize_with = "timestamp", deserialize_with = "read_timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: String,
    pub name: String,
    pub app_id: String,
    #[serde(serialize_with = "timestamp", deserialize_with = "read_timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Object,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Session {
    pub id: String,
    pub is_active: bool,
    pub user_id: String,
    pub app_id: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Object,
    #[serde(serialize_with = "timestamp", deserialize_with = "read_timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Message {
    pub id: String,
    pub content: String,
    pub is_user: bool,
    pub session_id: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Object,
    #[serde(serialize_with = "timestamp", deserialize_with = "read_timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    pub app_id: String,
    pub user_id: String,
}

/// One page of a list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[schema(minimum = 0)]
    pub total: u64,
    #[schema(minimum = 1)]
    pub page: u64,
    #[schema(minimum = 1)]
    pub size: u32,
    #[schema(minimum = 0)]
    #[serde(default)]
    pub pages: u64,
}

impl<T> Page<T> {
    pub fn from_domain<D>(p: honcho_domain::Page<D>, f: impl FnMut(D) -> T) -> Self {
        let p = p.map(f);
        Page {
            items: p.items,
            total: p.total,
            page: p.page,
            size: p.size,
            pages: p.pages,
        }
    }
}

/// The answer of a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub message: String,
}

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

impl From<honcho_domain::App> for App {
    fn from(a: honcho_domain::App) -> Self {
        App {
            id: a.id,
            name: a.name,
            metadata: a.metadata,
            created_at: a.created_at,
        }
    }
}

impl From<honcho_domain::User> for User {
    fn from(u: honcho_domain::User) -> Self {
        User {
            id: u.id,
            name: u.name,
            app_id: u.app_id,
            created_at: u.created_at,
            metadata: u.metadata,
        }
    }
}

impl From<honcho_domain::Session> for Session {
    fn from(s: honcho_domain::Session) -> Self {
        Session {
            id: s.id,
            is_active: s.is_active,
            user_id: s.user_id,
            app_id: s.app_id,
            metadata: s.metadata,
            created_at: s.created_at,
        }
    }
}

impl From<honcho_domain::Message> for Message {
    fn from(m: honcho_domain::Message) -> Self {
        Message {
            id: m.id,
            content: m.content,
            is_user: m.is_user,
            session_id: m.session_id,
            metadata: m.metadata,
            created_at: m.created_at,
            app_id: m.app_id,
            user_id: m.user_id,
        }
    }
}

// ---------------------------------------------------------------- requests

#[derive(Debug, Deserialize, ToSchema)]
pub struct AppCreate {
    #[schema(schema_with = limited::name)]
    pub name: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Object,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AppUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Object>,
}

/// Filter of the app list: keeps apps whose metadata contains `filter`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AppGet {
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Object>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UserCreate {
    #[schema(schema_with = limited::name)]
    pub name: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Object,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UserUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Object>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UserGet {
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Object>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SessionCreate {
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Object,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SessionUpdate {
    #[schema(value_type = Object)]
    pub metadata: Object,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SessionGet {
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Object>,
    /// Only active sessions when true.
    #[serde(default, deserialize_with = "lax_bool_default_false")]
    pub is_active: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MessageCreate {
    #[schema(schema_with = limited::content)]
    pub content: String,
    #[serde(deserialize_with = "lax_bool")]
    pub is_user: bool,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Object,
}

/// Schema for batch message creation with a max of 100 messages
#[derive(Debug, Deserialize, ToSchema)]
pub struct MessageBatchCreate {
    #[schema(schema_with = limited::batch)]
    pub messages: Vec<MessageCreate>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MessageGet {
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Object>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MessageUpdate {
    #[schema(value_type = Object)]
    pub metadata: Object,
}

// ---------------------------------------------------------------- metamessages

/// A metamessage. `metamessage_type` is v1.1.0's name of `label`; both carry the same value.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Metamessage {
    pub id: String,
    pub label: String,
    pub content: String,
    pub user_id: String,
    pub app_id: String,
    #[schema(required = true)]
    pub session_id: Option<String>,
    #[schema(required = true)]
    pub message_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Object,
    #[serde(serialize_with = "timestamp", deserialize_with = "read_timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[schema(read_only)]
    pub metamessage_type: String,
}

impl From<honcho_domain::Metamessage> for Metamessage {
    fn from(m: honcho_domain::Metamessage) -> Self {
        Metamessage {
            id: m.id,
            metamessage_type: m.label.clone(),
            label: m.label,
            content: m.content,
            user_id: m.user_id,
            app_id: m.app_id,
            session_id: m.session_id,
            message_id: m.message_id,
            metadata: m.metadata,
            created_at: m.created_at,
        }
    }
}

/// `metamessage_type` is required unless its newer name `label` is given (`label` wins when both are).
#[derive(Debug, Deserialize, ToSchema)]
pub struct MetamessageCreate {
    #[serde(default)]
    #[schema(schema_with = limited::label, required = true)]
    pub metamessage_type: Option<String>,
    #[schema(schema_with = limited::content)]
    pub content: String,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Object,
    /// The newer name of `metamessage_type`.
    #[serde(default)]
    #[schema(schema_with = limited::newer_label)]
    pub label: Option<String>,
}

/// Filters of the metamessage list; each given field narrows it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MetamessageGet {
    #[serde(default)]
    pub metamessage_type: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Object>,
    /// The newer name of `metamessage_type`.
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MetamessageUpdate {
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    pub metamessage_type: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Object>,
    /// The newer name of `metamessage_type`.
    #[serde(default)]
    #[schema(schema_with = limited::newer_label)]
    pub label: Option<String>,
}

// ---------------------------------------------------------------- collections and documents

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Collection {
    pub id: String,
    pub name: String,
    pub user_id: String,
    pub app_id: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Object,
    #[serde(serialize_with = "timestamp", deserialize_with = "read_timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

impl From<honcho_domain::Collection> for Collection {
    fn from(c: honcho_domain::Collection) -> Self {
        Collection {
            id: c.id,
            name: c.name,
            user_id: c.user_id,
            app_id: c.app_id,
            metadata: c.metadata,
            created_at: c.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CollectionCreate {
    #[schema(schema_with = limited::name)]
    pub name: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Object,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CollectionGet {
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Object>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CollectionUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Object>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Document {
    pub id: String,
    pub content: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Object,
    #[serde(serialize_with = "timestamp", deserialize_with = "read_timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    pub collection_id: String,
    pub app_id: String,
    pub user_id: String,
}

impl From<honcho_domain::Document> for Document {
    fn from(d: honcho_domain::Document) -> Self {
        Document {
            id: d.id,
            content: d.content,
            metadata: d.metadata,
            created_at: d.created_at,
            collection_id: d.collection_id,
            app_id: d.app_id,
            user_id: d.user_id,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DocumentCreate {
    #[schema(schema_with = limited::document)]
    pub content: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Object,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DocumentGet {
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Object>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DocumentUpdate {
    #[serde(default)]
    #[schema(schema_with = document_update_metadata)]
    pub metadata: Option<Object>,
    #[serde(default)]
    #[schema(schema_with = limited::document_or_null)]
    pub content: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DocumentQuery {
    #[schema(schema_with = limited::query)]
    pub query: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Object>,
    #[serde(default = "default_top_k")]
    #[schema(schema_with = limited::document_top_k)]
    pub top_k: i64,
}

/// `DocumentUpdate.metadata`: an optional object of at most `METADATA_MAX_KEYS` keys.
fn document_update_metadata() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .max_properties(Some(honcho_domain::values::METADATA_MAX_KEYS))
        .build()
}

fn default_top_k() -> i64 {
    honcho_domain::retrieval::DOCUMENT_TOP_K_DEFAULT as i64
}

/// Schemas of fields with limits, built from the domain's limits (utoipa's attributes take only
/// literals, which would repeat them).
mod limited {
    use honcho_domain::retrieval::{DOCUMENT_TOP_K_DEFAULT, DOCUMENT_TOP_K_MAX};
    use honcho_domain::values::{
        BATCH_MAX, CONTENT_MAX, DOCUMENT_MAX, LABEL_MAX, NAME_MAX, QUERY_MAX,
    };
    use utoipa::openapi::schema::{
        Array, ArrayBuilder, KnownFormat, Object, ObjectBuilder, SchemaFormat, SchemaType, Type,
    };
    use utoipa::openapi::Ref;

    fn text(min: usize, max: usize, or_null: bool) -> Object {
        let kind = match or_null {
            true => SchemaType::from_iter([Type::String, Type::Null]),
            false => SchemaType::new(Type::String),
        };
        ObjectBuilder::new()
            .schema_type(kind)
            .min_length(Some(min))
            .max_length(Some(max))
            .build()
    }
    pub fn name() -> Object {
        text(1, NAME_MAX, false)
    }
    pub fn content() -> Object {
        text(0, CONTENT_MAX, false)
    }
    pub fn label() -> Object {
        text(1, LABEL_MAX, false)
    }
    /// The newer name of `metamessage_type` (a schema made here carries no doc comment).
    pub fn newer_label() -> Object {
        let mut schema = text(1, LABEL_MAX, true);
        schema.description = Some("The newer name of `metamessage_type`.".into());
        schema
    }
    pub fn document() -> Object {
        text(1, DOCUMENT_MAX, false)
    }
    pub fn document_or_null() -> Object {
        text(1, DOCUMENT_MAX, true)
    }
    pub fn query() -> Object {
        text(1, QUERY_MAX, false)
    }
    pub fn batch() -> Array {
        ArrayBuilder::new()
            .items(Ref::from_schema_name("MessageCreate"))
            .max_items(Some(BATCH_MAX))
            .build()
    }
    pub fn document_top_k() -> Object {
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::Integer))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .default(Some(serde_json::json!(DOCUMENT_TOP_K_DEFAULT)))
            .maximum(Some(DOCUMENT_TOP_K_MAX as f64))
            .minimum(Some(1f64))
            .build()
    }
}

/// The body of `chat`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DialecticOptions {
    /// One question, or several answered together
    #[schema(schema_with = dialectic_queries)]
    pub queries: Value,
    /// Send the answer as it is written (`text/event-stream`, raw text chunks)
    #[serde(default)]
    #[schema(default = false)]
    pub stream: bool,
}

/// `DialecticOptions.queries`: a string or a list of strings.
fn dialectic_queries() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{
        AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type,
    };
    let string = || {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .max_length(Some(honcho_domain::insights::MAX_QUERY_CHARS))
    };
    Schema::AnyOf(
        AnyOfBuilder::new()
            .item(string())
            .item(
                ArrayBuilder::new()
                    .items(string())
                    .min_items(Some(1))
                    .max_items(Some(honcho_domain::insights::MAX_QUERIES)),
            )
            .build(),
    )
}

/// The answer of `chat` (`stream: false`).
#[derive(Debug, Serialize, ToSchema)]
pub struct DialecticResponse {
    pub content: String,
}

/// The deriver's queue for an app, a user or a session.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeriverStatus {
    /// Messages waiting to be derived
    pub pending: i64,
    /// Messages being derived now
    pub in_progress: i64,
    /// Messages given up on after every attempt failed (kept with their error)
    pub failed: i64,
    /// Messages derived
    pub done: i64,
    /// Age in seconds of the oldest message not yet derived (pending or in progress)
    pub oldest_pending_age_seconds: Option<f64>,
    /// When the oldest message still failed failed (`null` when none has)
    #[serde(serialize_with = "optional_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub oldest_failure_at: Option<DateTime<Utc>>,
    /// Why it failed (its last attempt's error, at most 500 characters)
    pub oldest_failure_error: Option<String>,
}

impl From<honcho_domain::queue::QueueCounts> for DeriverStatus {
    fn from(c: honcho_domain::queue::QueueCounts) -> Self {
        let (oldest_failure_at, oldest_failure_error) = match c.oldest_failure {
            Some((at, error)) => (Some(at), Some(error)),
            None => (None, None),
        };
        DeriverStatus {
            pending: c.pending,
            in_progress: c.in_progress,
            failed: c.failed,
            done: c.done,
            oldest_pending_age_seconds: c
                .oldest_open
                .map(|t| ((chrono::Utc::now() - t).num_milliseconds().max(0) as f64) / 1000.0),
            oldest_failure_at,
            oldest_failure_error,
        }
    }
}

/// A message whose derivation failed after its last attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailedItem {
    pub message_id: String,
    pub session_id: String,
    pub user_id: String,
    /// Attempts made
    pub attempts: i32,
    /// The last attempt's error (at most 500 characters; longer ones are cut and end with `…`)
    pub error: String,
    /// When the last attempt failed
    #[serde(serialize_with = "timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub failed_at: DateTime<Utc>,
}

impl From<honcho_domain::queue::FailedItem> for FailedItem {
    fn from(f: honcho_domain::queue::FailedItem) -> Self {
        FailedItem {
            message_id: f.message_id,
            session_id: f.session_id,
            user_id: f.user_id,
            attempts: f.attempts,
            error: f.error,
            failed_at: f.failed_at,
        }
    }
}

/// Which failed messages to run again: every failed message of the app when both are left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeriverRetry {
    /// Only this session's
    #[serde(default)]
    pub session_id: Option<String>,
    /// Only these messages (at most 1,000)
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub message_ids: Option<Vec<String>>,
}

/// How many failed messages were queued again.
#[derive(Debug, Serialize, ToSchema)]
pub struct Retried {
    pub retried: u64,
}

/// The body of a session's message search.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MessageSearch {
    /// What to look for: words and meaning (1 to 10,000 characters)
    #[schema(min_length = 1, max_length = 10000)]
    pub query: String,
    /// Only messages whose metadata contains this object (as `messages/list` filters)
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Object>,
    /// How many messages to return at most
    #[serde(default = "default_message_top_k")]
    #[schema(minimum = 1, maximum = 100, default = 10)]
    pub top_k: i64,
    /// Only the user's messages (`true`) or only the others (`false`)
    #[serde(default)]
    pub is_user: Option<bool>,
}

/// The body of a search over every session of a user.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserMessageSearch {
    /// What to look for: words and meaning (1 to 10,000 characters)
    #[schema(min_length = 1, max_length = 10000)]
    pub query: String,
    /// Only messages whose metadata contains this object (as `messages/list` filters)
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Object>,
    /// How many messages to return at most
    #[serde(default = "default_message_top_k")]
    #[schema(minimum = 1, maximum = 100, default = 10)]
    pub top_k: i64,
    /// Only the user's messages (`true`) or only the others (`false`)
    #[serde(default)]
    pub is_user: Option<bool>,
    /// Only these sessions of the user (all of them, active or not, when absent)
    #[serde(default)]
    #[schema(max_items = 100)]
    pub session_ids: Option<Vec<String>>,
}

fn default_message_top_k() -> i64 {
    honcho_domain::retrieval::MESSAGE_TOP_K_DEFAULT as i64
}

/// A session's summary, as a context carries it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContextSummary {
    pub content: String,
    /// The message the summary covers the conversation up to
    pub message_id: String,
    /// `short` or `long`
    #[schema(pattern = "^(short|long)$")]
    pub kind: &'static str,
    #[serde(serialize_with = "timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

/// What to put in the next prompt, within a token budget.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionContext {
    /// The session's latest messages that fit, oldest first
    pub messages: Vec<Message>,
    /// The newest summary, when some messages did not fit and one exists
    pub summary: Option<ContextSummary>,
    /// The user's facts most relevant to `query`, best first
    pub facts: Vec<String>,
    /// Tokens of the contents above (`o200k_base`), never above the budget
    #[schema(minimum = 0)]
    pub tokens: u64,
}

impl From<honcho_domain::context::SessionContext> for SessionContext {
    fn from(c: honcho_domain::context::SessionContext) -> Self {
        SessionContext {
            messages: c.messages.into_iter().map(Message::from).collect(),
            summary: c.summary.map(|s| ContextSummary {
                content: s.content,
                message_id: s.message_id,
                kind: s.kind.as_str(),
                created_at: s.created_at,
            }),
            facts: c.facts,
            tokens: c.tokens as u64,
        }
    }
}

// ---------------------------------------------------------------- answers read back

// Another server's answers, parsed with the types above (`honcho import`), as the records they
// describe.

impl From<App> for honcho_domain::App {
    fn from(a: App) -> Self {
        honcho_domain::App {
            id: a.id,
            name: a.name,
            metadata: a.metadata,
            created_at: a.created_at,
        }
    }
}

impl From<User> for honcho_domain::User {
    fn from(u: User) -> Self {
        honcho_domain::User {
            id: u.id,
            app_id: u.app_id,
            name: u.name,
            metadata: u.metadata,
            created_at: u.created_at,
        }
    }
}

impl From<Session> for honcho_domain::Session {
    fn from(s: Session) -> Self {
        honcho_domain::Session {
            id: s.id,
            app_id: s.app_id,
            user_id: s.user_id,
            is_active: s.is_active,
            metadata: s.metadata,
            created_at: s.created_at,
        }
    }
}

impl From<Message> for honcho_domain::Message {
    fn from(m: Message) -> Self {
        honcho_domain::Message {
            id: m.id,
            app_id: m.app_id,
            user_id: m.user_id,
            session_id: m.session_id,
            is_user: m.is_user,
            content: m.content,
            metadata: m.metadata,
            created_at: m.created_at,
        }
    }
}

impl From<Metamessage> for honcho_domain::Metamessage {
    fn from(m: Metamessage) -> Self {
        honcho_domain::Metamessage {
            id: m.id,
            app_id: m.app_id,
            user_id: m.user_id,
            session_id: m.session_id,
            message_id: m.message_id,
            label: m.label,
            content: m.content,
            metadata: m.metadata,
            created_at: m.created_at,
        }
    }
}

impl From<Collection> for honcho_domain::Collection {
    fn from(c: Collection) -> Self {
        honcho_domain::Collection {
            id: c.id,
            app_id: c.app_id,
            user_id: c.user_id,
            name: c.name,
            metadata: c.metadata,
            created_at: c.created_at,
        }
    }
}

impl From<Document> for honcho_domain::Document {
    fn from(d: Document) -> Self {
        honcho_domain::Document {
            id: d.id,
            app_id: d.app_id,
            user_id: d.user_id,
            collection_id: d.collection_id,
            content: d.content,
            metadata: d.metadata,
            created_at: d.created_at,
        }
    }
}
