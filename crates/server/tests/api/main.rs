//! Black-box tests of the HTTP API. Every test starts the real server on a free port over a fresh
//! database: a temporary SQLite file, or its own PostgreSQL schema when `TEST_DATABASE_URL` is set.

mod apps;
mod auth;
mod bounds;
mod collections;
mod deriver_control;
mod deriver_processes;
mod documents;
mod erasure;
mod faults;
mod helpers;
mod import;
mod insights;
mod keys;
mod messages;
mod metamessages;
mod model_server;
mod openapi;
mod operations;
mod properties;
mod retrieval;
mod routing;
mod search;
mod sessions;
mod users;
mod validation;
