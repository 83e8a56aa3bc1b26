//! The rules of honcho-rs, free of I/O: entities, values that parse at the edge, metadata filters,
//! pagination, and the domain error whose `Display` is the exact detail a client sees.

pub mod auth;
pub mod context;
pub mod embed;
pub mod entities;
pub mod erasure;
pub mod error;
pub mod facts;
pub mod id;
pub mod import;
pub mod insights;
pub mod json;
pub mod lexical;
pub mod llm;
pub mod page;
pub mod queue;
pub mod retrieval;
pub mod values;
pub mod vector;

pub use entities::*;
pub use error::{Error, Invalid};
pub use page::{Page, PageRequest};
pub use values::{Content, Metadata, Name, Text};
