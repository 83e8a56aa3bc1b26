//! The domain error. Its `Display` is the exact `detail` the API answers with; the web layer maps each
//! variant to a status code in one place.

use std::fmt;

/// Why a single value failed to parse.
#[derive(Debug, Clone, PartialEq)]
pub enum Invalid {
    /// Fewer characters than allowed.
    TooShort { min: usize },
    /// More characters than allowed.
    TooLong { max: usize },
    /// A list with more items than allowed.
    TooManyItems { max: usize, actual: usize },
    /// An object with more keys than allowed.
    TooManyKeys { max: usize, actual: usize },
    /// A NUL character, which PostgreSQL cannot store.
    ContainsNul,
    /// More bytes of JSON text than allowed.
    TooLarge { max_bytes: usize },
    /// A rule specific to the field, with its message.
    Rule(String),
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::TooShort { min } => {
                let s = if *min == 1 { "" } else { "s" };
                write!(f, "String should have at least {min} character{s}")
            }
            Invalid::TooLong { max } => {
                let s = if *max == 1 { "" } else { "s" };
                write!(f, "String should have at most {max} character{s}")
            }
            Invalid::TooManyItems { max, actual } => write!(
                f,
                "List should have at most {max} items after validation, not {actual}"
            ),
            Invalid::TooManyKeys { max, actual } => write!(
                f,
                "Dictionary should have at most {max} items after validation, not {actual}"
            ),
            Invalid::ContainsNul => {
                f.write_str("Value error, NUL characters (\\u0000) are not allowed")
            }
            Invalid::TooLarge { max_bytes } => write!(
                f,
                "Value error, at most {max_bytes} bytes of JSON are allowed"
            ),
            Invalid::Rule(msg) => write!(f, "Value error, {msg}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// 404 with this detail.
    #[error("{0}")]
    NotFound(String),
    /// 409 with this detail.
    #[error("{0}")]
    Conflict(String),
    /// 422 with a field-level validation error (`loc` = `body` + `field`).
    #[error("{field}: {reason}")]
    InvalidField {
        field: &'static str,
        reason: Invalid,
    },
    /// 422 with a plain detail string.
    #[error("{0}")]
    Unprocessable(String),
}

impl Error {
    pub fn app_not_found(id: &str) -> Self {
        Error::NotFound(format!("App with ID {id} not found"))
    }
    pub fn app_name_not_found(name: &str) -> Self {
        Error::NotFound(format!("App with name '{name}' not found"))
    }
    pub fn app_name_taken(name: &str) -> Self {
        Error::Conflict(format!("App with name '{name}' already exists"))
    }
    pub fn app_update_conflict() -> Self {
        Error::Conflict("App update failed - unique constraint violation".into())
    }
    pub fn user_not_found(id: &str) -> Self {
        Error::NotFound(format!("User with ID '{id}' not found"))
    }
    pub fn user_name_not_found(name: &str) -> Self {
        Error::NotFound(format!("User with name '{name}' not found"))
    }
    pub fn user_name_taken() -> Self {
        Error::Conflict("User with this name already exists".into())
    }
    pub fn user_update_conflict() -> Self {
        Error::Conflict("User update failed - unique constraint violation".into())
    }
    pub fn session_not_found() -> Self {
        Error::NotFound("Session not found or does not belong to user".into())
    }
    /// The clone endpoint's wording for an unknown session or cut-off message.
    pub fn clone_source_not_found() -> Self {
        Error::NotFound("Session not found".into())
    }
    pub fn message_not_found(id: &str) -> Self {
        Error::NotFound(format!("Message with ID {id} not found"))
    }
    /// The update endpoint's wording for an unknown message.
    pub fn message_not_found_for_update() -> Self {
        Error::NotFound("Message not found".into())
    }
    pub fn invalid(field: &'static str, reason: Invalid) -> Self {
        Error::InvalidField { field, reason }
    }

    // Collections and documents

    pub fn collection_not_found() -> Self {
        Error::NotFound("Collection not found or does not belong to user".into())
    }
    pub fn collection_name_not_found(name: &str) -> Self {
        Error::NotFound(format!("Collection with name '{name}' not found"))
    }
    pub fn collection_name_taken(name: &str) -> Self {
        Error::Conflict(format!("Collection with name '{name}' already exists"))
    }
    pub fn collection_update_conflict() -> Self {
        Error::Conflict("Collection update failed - name already in use".into())
    }
    pub fn collection_reserved() -> Self {
        Error::Unprocessable(
            "Invalid collection configuration - 'honcho' is a reserved name".into(),
        )
    }
    pub fn document_not_found(id: &str) -> Self {
        Error::NotFound(format!("Document with ID '{id}' not found"))
    }
    pub fn document_not_found_for_delete() -> Self {
        Error::NotFound("Document not found or does not belong to user".into())
    }
    pub fn document_in_reserved_collection() -> Self {
        Error::Unprocessable("Cannot delete collection with reserved name 'honcho'".into())
    }

    // Metamessages

    pub fn metamessage_not_found(id: &str) -> Self {
        Error::NotFound(format!("Metamessage with ID {id} not found"))
    }
    /// A metamessage can only point at a message of its own session.
    pub fn message_without_session() -> Self {
        Error::Unprocessable("Cannot specify message_id without session_id".into())
    }
    /// The create endpoint's wording for a message outside the metamessage's session.
    pub fn metamessage_message_not_found() -> Self {
        Error::NotFound("Message not found or does not belong to session".into())
    }
    /// The update endpoint's wording for a message outside the metamessage's session.
    pub fn metamessage_message_not_found_for_update() -> Self {
        Error::NotFound("Message not found or doesn't belong to session".into())
    }

    // API keys

    /// The admin key is the secret's own: revoking it would need a new secret anyway.
    pub fn admin_key_not_revocable() -> Self {
        Error::Unprocessable(
            "The admin key cannot be revoked; change AUTH_JWT_SECRET to replace it".into(),
        )
    }
    pub fn key_not_found(id: &str) -> Self {
        Error::NotFound(format!("Key with ID '{id}' not found"))
    }
}
