use honcho_domain::Error as DomainError;

/// What a store operation can fail with. `Domain` errors are answers for the client (not found,
/// conflict, ...); the others are faults of the database or its pool.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("no database connection available: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("could not connect to the database: {0}")]
    Connect(String),
    #[error("migrations failed: {0}")]
    Migration(String),
}

impl DbError {
    /// Whether the query failed on a unique constraint.
    pub(crate) fn is_unique_violation(e: &diesel::result::Error) -> bool {
        matches!(
            e,
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            )
        )
    }
    /// Whether the query failed on a foreign key.
    pub(crate) fn is_foreign_key_violation(e: &diesel::result::Error) -> bool {
        matches!(
            e,
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                _
            )
        )
    }
}
