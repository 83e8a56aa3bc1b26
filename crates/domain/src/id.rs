//! Public identifiers: 21-character nanoids over `A-Za-z0-9_-`.

/// Length of every public id.
pub const ID_LEN: usize = 21;

/// A fresh random public id.
pub fn new_id() -> String {
    nanoid::nanoid!()
}
