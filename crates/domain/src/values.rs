//! Values that parse at the edge: once constructed they are known to satisfy the API's limits, so
//! inner code never checks them again.

use crate::json::contains_nul;
use crate::Invalid;
use serde_json::{Map, Value};

/// Maximum characters of an app, user or collection name.
pub const NAME_MAX: usize = 100;
/// Maximum characters of message and metamessage content.
pub const CONTENT_MAX: usize = 50_000;
/// Maximum messages in one batch.
pub const BATCH_MAX: usize = 100;

/// Checks the size of a batch of messages: at most [`BATCH_MAX`].
pub fn check_batch(len: usize) -> Result<(), Invalid> {
    match len {
        n if n > BATCH_MAX => Err(Invalid::TooManyItems {
            max: BATCH_MAX,
            actual: n,
        }),
        _ => Ok(()),
    }
}

fn check_text(s: &str, min: usize, max: usize) -> Result<(), Invalid> {
    if s.contains('\0') {
        return Err(Invalid::ContainsNul);
    }
    // Limits count Unicode scalar values, as the v1.1.0 contract does.
    let n = if s.len() <= max {
        s.chars().count()
    } else {
        s.chars().take(max + 1).count()
    };
    if n < min {
        return Err(Invalid::TooShort { min });
    }
    if n > max {
        return Err(Invalid::TooLong { max });
    }
    Ok(())
}

/// An app, user or collection name: 1..=100 characters, no NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub fn parse(s: String) -> Result<Self, Invalid> {
        check_text(&s, 1, NAME_MAX)?;
        Ok(Name(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Message or metamessage content: 0..=50 000 characters, no NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content(String);

impl Content {
    pub fn parse(s: String) -> Result<Self, Invalid> {
        check_text(&s, 0, CONTENT_MAX)?;
        Ok(Content(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Maximum characters of a metamessage label.
pub const LABEL_MAX: usize = 50;

/// A metamessage label (`metamessage_type` in v1.1.0): 1..=50 characters, no NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label(String);

impl Label {
    pub fn parse(s: String) -> Result<Self, Invalid> {
        check_text(&s, 1, LABEL_MAX)?;
        Ok(Label(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Maximum characters of a document's content.
pub const DOCUMENT_MAX: usize = 100_000;
/// Maximum characters of a document query.
pub const QUERY_MAX: usize = 1_000;
/// Longest message search query, in characters.
pub const MESSAGE_QUERY_MAX: usize = 10_000;
/// Most keys a document update's metadata may have (the v1.1.0 contract's limit).
pub const METADATA_MAX_KEYS: usize = 10_000;

/// Checks the key count of a document update's metadata: at most [`METADATA_MAX_KEYS`].
pub fn check_metadata_keys(count: usize) -> Result<(), Invalid> {
    match count {
        n if n > METADATA_MAX_KEYS => Err(Invalid::TooManyKeys {
            max: METADATA_MAX_KEYS,
            actual: n,
        }),
        _ => Ok(()),
    }
}

/// A collection name: a `Name` that is not the reserved "honcho" (in any case).
pub fn collection_name(s: String) -> Result<Name, Invalid> {
    let name = Name::parse(s)?;
    if name
        .as_str()
        .eq_ignore_ascii_case(crate::PROTECTED_COLLECTION)
    {
        return Err(Invalid::Rule("Collection name cannot be 'honcho'".into()));
    }
    Ok(name)
}

/// Text to embed: a document's content (1..=100 000 characters) or a query (1..=1 000), no NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(String);

impl Text {
    pub fn document(s: String) -> Result<Self, Invalid> {
        check_text(&s, 1, DOCUMENT_MAX)?;
        Ok(Text(s))
    }
    pub fn query(s: String) -> Result<Self, Invalid> {
        check_text(&s, 1, QUERY_MAX)?;
        Ok(Text(s))
    }
    pub fn message_query(s: String) -> Result<Self, Invalid> {
        check_text(&s, 1, MESSAGE_QUERY_MAX)?;
        Ok(Text(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Most bytes a metadata object or filter may take as JSON text, by default (v1.1.0 sets none; one
/// request's work must stay bounded).
pub const METADATA_MAX_BYTES: usize = 256 * 1024;
/// Most elements an array inside metadata or a filter may have, by default (containment compares
/// arrays element by element; PostgreSQL's `@>` does so pairwise).
pub const METADATA_ARRAY_MAX: usize = 1_000;

/// The limits of metadata and filters in force in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataLimits {
    pub max_bytes: usize,
    pub array_max: usize,
}

impl Default for MetadataLimits {
    fn default() -> Self {
        MetadataLimits {
            max_bytes: METADATA_MAX_BYTES,
            array_max: METADATA_ARRAY_MAX,
        }
    }
}

static LIMITS: std::sync::OnceLock<MetadataLimits> = std::sync::OnceLock::new();

/// Sets the process's metadata limits (from its configuration, once at start-up); `false` when they
/// were set or used already.
pub fn set_metadata_limits(limits: MetadataLimits) -> bool {
    LIMITS.set(limits).is_ok()
}

/// The process's metadata limits.
pub fn metadata_limits() -> MetadataLimits {
    *LIMITS.get_or_init(MetadataLimits::default)
}

/// Counts the bytes of JSON text written to it, up to a bound.
struct ByteCount {
    bytes: usize,
    max: usize,
}

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len();
        if self.bytes > self.max {
            return Err(std::io::Error::other("over the limit"));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The length of the longest array anywhere in `v`.
fn longest_array(v: &Value) -> usize {
    match v {
        Value::Array(items) => items
            .iter()
            .map(longest_array)
            .max()
            .unwrap_or(0)
            .max(items.len()),
        Value::Object(m) => m.values().map(longest_array).max().unwrap_or(0),
        _ => 0,
    }
}

/// A metadata object or metadata filter: a JSON object with no NUL in any key or string, within
/// the process's [`MetadataLimits`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metadata(Map<String, Value>);

impl Metadata {
    /// Refuses NUL characters, more than the limits' bytes of JSON text and arrays longer than
    /// theirs; writes numbers as both engines (and PostgreSQL's `jsonb`) keep them.
    pub fn parse(map: Map<String, Value>) -> Result<Self, Invalid> {
        if map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)) {
            return Err(Invalid::ContainsNul);
        }
        let limits = metadata_limits();
        let mut count = ByteCount {
            bytes: 0,
            max: limits.max_bytes,
        };
        if serde_json::to_writer(&mut count, &map).is_err() {
            return Err(Invalid::TooLarge {
                max_bytes: limits.max_bytes,
            });
        }
        let longest = map.values().map(longest_array).max().unwrap_or(0);
        if longest > limits.array_max {
            return Err(Invalid::Rule(format!(
                "an array may have at most {} elements, not {longest}",
                limits.array_max
            )));
        }
        let mut map = map;
        map.values_mut()
            .try_for_each(crate::json::canonical_numbers)
            .map_err(Invalid::Rule)?;
        Ok(Metadata(map))
    }
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
    pub fn into_inner(self) -> Map<String, Value> {
        self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_limits_count_characters_not_bytes() {
        assert!(Name::parse("é".repeat(100)).is_ok());
        assert_eq!(
            Name::parse("é".repeat(101)),
            Err(Invalid::TooLong { max: 100 })
        );
        assert_eq!(
            Name::parse(String::new()),
            Err(Invalid::TooShort { min: 1 })
        );
        assert_eq!(Name::parse("a\0b".into()), Err(Invalid::ContainsNul));
    }

    #[test]
    fn content_may_be_empty_but_not_too_long() {
        assert!(Content::parse(String::new()).is_ok());
        assert!(Content::parse("x".repeat(CONTENT_MAX)).is_ok());
        assert_eq!(
            Content::parse("x".repeat(CONTENT_MAX + 1)),
            Err(Invalid::TooLong { max: CONTENT_MAX })
        );
    }

    #[test]
    fn metadata_is_bounded_in_bytes_and_array_length() {
        let object = |v: Value| match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let big = serde_json::json!({ "a": "x".repeat(METADATA_MAX_BYTES) });
        assert_eq!(
            Metadata::parse(object(big)),
            Err(Invalid::TooLarge {
                max_bytes: METADATA_MAX_BYTES
            })
        );
        let long = serde_json::json!({ "a": { "b": vec![1; METADATA_ARRAY_MAX + 1] } });
        assert!(matches!(
            Metadata::parse(object(long)),
            Err(Invalid::Rule(_))
        ));
        let fine = serde_json::json!({ "a": [vec![1; METADATA_ARRAY_MAX]] });
        assert!(Metadata::parse(object(fine)).is_ok());
    }

    #[test]
    fn metadata_refuses_nul_anywhere() {
        let m = serde_json::json!({"a": {"b": ["ok", "no\u{0}"]}});
        let Value::Object(m) = m else { unreachable!() };
        assert_eq!(Metadata::parse(m), Err(Invalid::ContainsNul));
    }
}
