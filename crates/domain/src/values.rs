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

/// A metadata object or metadata filter: a JSON object with no NUL in any key or string.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metadata(Map<String, Value>);

impl Metadata {
    pub fn parse(map: Map<String, Value>) -> Result<Self, Invalid> {
        if map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)) {
            return Err(Invalid::ContainsNul);
        }
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
    fn metadata_refuses_nul_anywhere() {
        let m = serde_json::json!({"a": {"b": ["ok", "no\u{0}"]}});
        let Value::Object(m) = m else { unreachable!() };
        assert_eq!(Metadata::parse(m), Err(Invalid::ContainsNul));
    }
}
