use honcho_domain::Error as DomainError;
use std::fmt;

/// What a store operation can fail with. `Domain` errors are answers for the client (not found,
/// conflict, ...); `Unavailable` is an outage of the database (nothing was stored, a retry may
/// succeed); the others are faults.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("{outage}: {cause}")]
    Unavailable { outage: Outage, cause: String },
    #[error("query failed: {0}")]
    Query(diesel::result::Error),
    #[error("could not connect to the database: {0}")]
    Connect(String),
    #[error("migrations failed: {0}")]
    Migration(String),
}

/// Why the database cannot serve a request right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// The disk holding the database is full.
    DiskFull,
    /// The database (or its file) only accepts reads.
    ReadOnly,
    /// The connection to the database broke (restart, terminated backend, network).
    ConnectionLost,
    /// No connection to the database could be made in time.
    Unreachable,
    /// The database stayed locked by other writers for longer than the busy timeout.
    Busy,
    /// The database's storage reported an I/O error.
    Io,
    /// A statement ran past the deadline of the request it served (PostgreSQL's
    /// `statement_timeout`, SQLite's progress handler).
    Deadline,
}

impl fmt::Display for Outage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outage::DiskFull => "the database's disk is full",
            Outage::ReadOnly => "the database is read-only",
            Outage::ConnectionLost => "the connection to the database was lost",
            Outage::Unreachable => "the database cannot be reached",
            Outage::Busy => "the database is busy",
            Outage::Io => "the database's storage failed",
            Outage::Deadline => "the query ran past the request's deadline",
        })
    }
}

/// PostgreSQL's SQLSTATE codes that name an outage rather than a bad query. The server words its
/// messages in its `lc_messages` language, so they are classified by code only.
fn outage_of_sqlstate(code: &str) -> Option<Outage> {
    match code {
        // query_canceled: `statement_timeout` ended the statement.
        "57014" => Some(Outage::Deadline),
        // disk_full.
        "53100" => Some(Outage::DiskFull),
        // too_many_connections; out_of_memory; insufficient_resources.
        "53300" | "53200" | "53000" => Some(Outage::Busy),
        // read_only_sql_transaction: a standby, or `default_transaction_read_only`.
        "25006" => Some(Outage::ReadOnly),
        // admin_shutdown, crash_shutdown, cannot_connect_now (starting up, shutting down,
        // recovering), database_dropped.
        "57P01" | "57P02" | "57P03" | "57P04" => Some(Outage::ConnectionLost),
        // io_error, undefined_file (a data file gone), system_error.
        "58030" | "58P01" | "58000" => Some(Outage::Io),
        // Class 08: connection exceptions.
        code if code.starts_with("08") => Some(Outage::ConnectionLost),
        _ => None,
    }
}

/// Messages that name an outage, for errors that carry no SQLSTATE: SQLite's (always in English)
/// and libpq's own (a lost connection, in the client's locale: this process never sets one, so
/// English).
const OUTAGES: &[(&str, Outage)] = &[
    // SQLite's answer when the progress handler ended a statement at its call's deadline.
    ("interrupted", Outage::Deadline),
    ("database or disk is full", Outage::DiskFull),
    ("no space left on device", Outage::DiskFull),
    ("attempt to write a readonly database", Outage::ReadOnly),
    ("database is locked", Outage::Busy),
    ("database table is locked", Outage::Busy),
    ("disk i/o error", Outage::Io),
    ("unable to open database file", Outage::Io),
    ("terminating connection", Outage::ConnectionLost),
    ("closed the connection", Outage::ConnectionLost),
    ("connection has been closed", Outage::ConnectionLost),
    ("no connection to the server", Outage::ConnectionLost),
    ("could not send data to server", Outage::ConnectionLost),
    ("could not receive data from server", Outage::ConnectionLost),
    ("server closed", Outage::ConnectionLost),
    ("connection to server", Outage::ConnectionLost),
    ("eof detected", Outage::ConnectionLost),
    ("lost synchronization with server", Outage::ConnectionLost),
    ("connection reset", Outage::ConnectionLost),
    ("broken pipe", Outage::ConnectionLost),
];

impl DbError {
    /// The outage this error is, if it is one.
    pub fn outage(&self) -> Option<Outage> {
        match self {
            DbError::Unavailable { outage, .. } => Some(*outage),
            _ => None,
        }
    }

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

/// The outage a query error reports, if any.
fn outage_of(e: &diesel::result::Error) -> Option<Outage> {
    use diesel::result::{DatabaseErrorKind as Kind, Error};
    match e {
        Error::DatabaseError(Kind::ClosedConnection | Kind::UnableToSendCommand, _) => {
            Some(Outage::ConnectionLost)
        }
        Error::DatabaseError(Kind::ReadOnlyTransaction, _) => Some(Outage::ReadOnly),
        Error::BrokenTransactionManager => Some(Outage::ConnectionLost),
        Error::DatabaseError(_, info) => match info.sqlstate() {
            Some(code) => outage_of_sqlstate(code.as_str()),
            None => {
                let message = info.message().to_ascii_lowercase();
                OUTAGES
                    .iter()
                    .find(|(text, _)| message.contains(text))
                    .map(|(_, outage)| *outage)
            }
        },
        Error::RollbackErrorOnCommit {
            rollback_error,
            commit_error,
        } => outage_of(commit_error).or_else(|| outage_of(rollback_error)),
        _ => None,
    }
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        match outage_of(&e) {
            Some(outage) => DbError::Unavailable {
                outage,
                cause: e.to_string(),
            },
            None => DbError::Query(e),
        }
    }
}

impl From<diesel::r2d2::PoolError> for DbError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        DbError::Unavailable {
            outage: Outage::Unreachable,
            cause: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error};

    struct Info(&'static str);
    impl DatabaseErrorInformation for Info {
        fn message(&self) -> &str {
            self.0
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            None
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn db_error(kind: DatabaseErrorKind, message: &'static str) -> DbError {
        Error::DatabaseError(kind, Box::new(Info(message))).into()
    }

    #[test]
    fn postgres_outages_are_told_by_their_code() {
        assert_eq!(outage_of_sqlstate("57014"), Some(Outage::Deadline));
        assert_eq!(outage_of_sqlstate("53100"), Some(Outage::DiskFull));
        assert_eq!(outage_of_sqlstate("25006"), Some(Outage::ReadOnly));
        assert_eq!(outage_of_sqlstate("57P01"), Some(Outage::ConnectionLost));
        assert_eq!(outage_of_sqlstate("08006"), Some(Outage::ConnectionLost));
        assert_eq!(outage_of_sqlstate("58030"), Some(Outage::Io));
        // unique_violation, syntax_error, deadlock_detected: not outages.
        for code in ["23505", "42601", "40P01"] {
            assert_eq!(outage_of_sqlstate(code), None, "{code}");
        }
    }

    #[test]
    fn outages_are_told_apart_from_bad_queries() {
        let unknown = DatabaseErrorKind::Unknown;
        assert_eq!(
            db_error(unknown, "database or disk is full").outage(),
            Some(Outage::DiskFull)
        );
        assert_eq!(
            db_error(unknown, "SSL connection has been closed unexpectedly").outage(),
            Some(Outage::ConnectionLost)
        );
        assert_eq!(
            db_error(
                unknown,
                "terminating connection due to administrator command"
            )
            .outage(),
            Some(Outage::ConnectionLost)
        );
        assert_eq!(
            db_error(unknown, "attempt to write a readonly database").outage(),
            Some(Outage::ReadOnly)
        );
        assert_eq!(
            db_error(DatabaseErrorKind::ClosedConnection, "x").outage(),
            Some(Outage::ConnectionLost)
        );
        assert_eq!(
            db_error(unknown, "interrupted").outage(),
            Some(Outage::Deadline)
        );
        assert_eq!(db_error(unknown, "syntax error at or near").outage(), None);
        assert_eq!(
            db_error(DatabaseErrorKind::UniqueViolation, "duplicate key").outage(),
            None
        );
    }
}
