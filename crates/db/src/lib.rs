//! Persistence for honcho-rs. Two engines, one set of queries: `queries/` and `schema.rs` are compiled
//! once per backend (`pg` and `sqlite`), each with its own SQL types and a small `dialect` for what
//! genuinely differs (metadata containment, write transactions, connection set-up). `Db` picks the
//! backend from the database URL and dispatches every call to it.

// `queries/` and `schema.rs` are deliberately compiled twice, once per backend (see above).
#![allow(clippy::duplicate_mod)]

pub mod corpus;
mod erasure;
mod error;
mod periodic;
mod pg;
mod pool;
mod sqlite;
mod store;
mod url;

pub use erasure::{ErasureWatch, ERASURES_POLL};
pub use error::{DbError, Outage};
pub use periodic::Periodic;
pub use pool::close;
pub use store::{
    Db, DbOptions, PoolState, SqliteSync, MESSAGE_CACHE_MB_DEFAULT, SQLITE_WAL_LIMIT_MB_DEFAULT,
    VECTOR_CACHE_MB_DEFAULT,
};
pub use url::{DatabaseUrl, UrlError};

/// Result of a store operation.
pub type DbResult<T> = Result<T, DbError>;
