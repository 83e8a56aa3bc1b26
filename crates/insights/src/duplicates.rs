//! When a new fact restates one the user already has: the deriver's rule, which the store applies
//! inside the transaction that stores an item's facts.

use honcho_domain::insights::DuplicateRule;

/// Stored facts nearest to a new one that are checked for being restated by it.
pub const DUPLICATE_CANDIDATES: usize = 4;
/// A fact this close (cosine distance) to another, and a restatement of it ([`restates`]), is a
/// near-duplicate and not stored.
pub const DUPLICATE_DISTANCE: f32 = 0.15;

/// Near in meaning and adding no word: [`DUPLICATE_DISTANCE`] and [`restates`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NearDuplicates;

impl DuplicateRule for NearDuplicates {
    fn candidates(&self) -> usize {
        DUPLICATE_CANDIDATES
    }
    fn duplicates(&self, new: &str, old: &str, distance: f32) -> bool {
        distance <= DUPLICATE_DISTANCE && restates(new, old)
    }
}

/// Whether `new` says nothing in words that `old` does not: every term of `new` (stemmed, stop
/// words left out, [`honcho_domain::lexical`]) is a term of `old`. With the vectors' distance this
/// makes a near-duplicate: `The user is a nurse` restates `The user works as a nurse`, while `The
/// user has a cat named Biscuit` does not restate `... a dog named Biscuit`, however near their
/// vectors (a static embedder barely tells such facts apart, nor numbers and names).
pub fn restates(new: &str, old: &str) -> bool {
    let old = honcho_domain::lexical::terms(old);
    honcho_domain::lexical::terms(new)
        .iter()
        .all(|t| old.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restatement_adds_no_word() {
        assert!(restates("The user is a nurse", "The user works as a nurse"));
        assert!(restates("The user plays cello", "The user plays the cello"));
        assert!(restates("", "anything"));
        assert!(!restates(
            "The user has a cat named Biscuit",
            "The user has a dog named Biscuit"
        ));
        assert!(!restates(
            "The user said: message 3",
            "The user said: message 2"
        ));
        assert!(!restates(
            "The user works as a nurse",
            "The user is a nurse"
        ));
    }

    #[test]
    fn a_near_duplicate_is_near_and_adds_no_word() {
        let rule = NearDuplicates;
        assert!(rule.duplicates("The user is a nurse", "The user works as a nurse", 0.1));
        assert!(!rule.duplicates("The user is a nurse", "The user works as a nurse", 0.2));
        assert!(!rule.duplicates("The user works as a nurse", "The user is a nurse", 0.0));
    }
}
