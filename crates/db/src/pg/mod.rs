//! PostgreSQL: `jsonb` metadata with GIN-indexed containment, `timestamptz`, bigserial ids.

pub mod types {
    pub type MetaJson = diesel::sql_types::Jsonb;
    pub type Moment = diesel::sql_types::Timestamptz;
}

pub type Conn = diesel::PgConnection;
pub type Backend = diesel::pg::Pg;

pub mod dialect;
#[path = "../queries/mod.rs"]
pub mod queries;
#[path = "../schema.rs"]
pub mod schema;
