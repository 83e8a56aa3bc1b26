//! Copying another server's records into this one (`honcho import`): what becomes of a record of
//! the source, given what the target holds under its id and its name.
//!
//! A record keeps its id, so a second run finds what the first wrote and writes nothing again. A
//! record on both sides is compared whole (every field the API shows, `created_at` to the
//! microsecond the database keeps); one that differs is reported and left alone unless the run
//! overwrites. An id or a name that belongs to another record on the target is a conflict: the
//! record and everything under it are skipped.

/// What a run may do with the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportMode {
    /// Write what is missing (false: only classify, as a dry run does).
    pub write: bool,
    /// Replace a record that differs with the source's.
    pub overwrite: bool,
}

/// What became of one record of the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It was not on the target: written (or, in a dry run, it would be).
    Written,
    /// On the target as on the source.
    Present,
    /// On the target with other content, left as it is.
    Differs,
    /// On the target with other content, replaced by the source's.
    Overwritten,
    /// Its id or its name belongs to another record on the target (said here).
    Conflict(String),
    /// It points at a record that is not on the target (said here): not written.
    Unlinked(String),
}

impl Outcome {
    /// Whether the record is on the target as the source has it once the run ends (so what it
    /// holds may be imported too).
    pub fn imported(&self) -> bool {
        matches!(
            self,
            Outcome::Written | Outcome::Present | Outcome::Overwritten
        )
    }
}

/// The outcome for `source` given the record the target holds under the same id (`None`: none),
/// whether that record has the same parent (app, user, session or collection) as the source's,
/// and `what` the record is, for the conflict's words.
pub fn judge<T: PartialEq>(
    source: &T,
    target: Option<(&T, bool)>,
    what: &str,
    id: &str,
    mode: ImportMode,
) -> Outcome {
    match target {
        None => Outcome::Written,
        Some((_, false)) => Outcome::Conflict(format!(
            "{what} {id} exists on the target under another parent"
        )),
        Some((t, true)) if t == source => Outcome::Present,
        Some(_) if mode.overwrite => Outcome::Overwritten,
        Some(_) => Outcome::Differs,
    }
}

/// The conflict of a record whose `name` belongs to `other` on the target.
pub fn name_taken(what: &str, name: &str, id: &str, other: &str) -> Outcome {
    Outcome::Conflict(format!(
        "{what} {id}: the name {name:?} belongs to {what} {other} on the target"
    ))
}

/// The embedder named by a document imported without a vector (`--skip-embedding`): no query's
/// embedder compares with it, words still find the document, and `honcho reembed` gives it one.
pub const UNEMBEDDED: &str = "unembedded";

/// The empty vector of a document imported without one.
pub fn unembedded() -> crate::Embedding {
    crate::Embedding {
        vector: Vec::new(),
        embedder: UNEMBEDDED.to_string(),
    }
}

/// A timestamp as the database keeps it (microseconds), so that a record read back compares equal
/// to the one written.
pub fn stored_time(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRITE: ImportMode = ImportMode {
        write: true,
        overwrite: false,
    };

    #[test]
    fn a_record_is_judged_by_what_the_target_holds_under_its_id() {
        assert_eq!(judge(&1, None, "message", "m", WRITE), Outcome::Written);
        assert_eq!(
            judge(&1, Some((&1, true)), "message", "m", WRITE),
            Outcome::Present
        );
        assert_eq!(
            judge(&1, Some((&2, true)), "message", "m", WRITE),
            Outcome::Differs
        );
        let overwrite = ImportMode {
            overwrite: true,
            ..WRITE
        };
        assert_eq!(
            judge(&1, Some((&2, true)), "message", "m", overwrite),
            Outcome::Overwritten
        );
        // Another parent is a conflict even when the rest is equal, and with overwrite.
        assert!(matches!(
            judge(&1, Some((&1, false)), "message", "m", overwrite),
            Outcome::Conflict(_)
        ));
        assert!(!Outcome::Differs.imported());
        assert!(Outcome::Present.imported());
    }
}
