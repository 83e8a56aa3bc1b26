//! SQLite: JSON text metadata (containment by a Rust function registered on each connection),
//! RFC 3339 text timestamps, rowid ids; WAL journal, foreign keys on.

pub mod types {
    pub type MetaJson = diesel::sql_types::Json;
    pub type Moment = diesel::sql_types::TimestamptzSqlite;
}

pub type Conn = diesel::SqliteConnection;
pub type Backend = diesel::sqlite::Sqlite;

pub mod dialect;
#[path = "../queries/mod.rs"]
pub mod queries;
#[path = "../schema.rs"]
pub mod schema;
