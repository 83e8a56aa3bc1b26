//! How `documents/query` ranks a collection's documents: by meaning (cosine similarity of the
//! embedder's vectors), by words (BM25, [`crate::lexical`]), or by both fused.
//!
//! # Fusion (`hybrid`, the default)
//! Over the candidates (the documents that pass the query's filter and carry a vector of the
//! configured embedder, or hold a query term), each list of scores is min-max normalised to `[0, 1]` (a list whose scores
//! are all equal, such as BM25 for a query made only of stop words, normalises to 0 and so ranks
//! nothing), then `score = w · bm25' + (1 − w) · cosine'` with `w` the lexical weight. Ties go to
//! the older document. For a query of [`FEEDBACK_QUERY_TERMS`] terms or more, the BM25 of terms
//! drawn from the best documents of that ranking is added and the scores are fused again
//! ([`FEEDBACK_DOCUMENTS`]). Both engines rank the same data identically: the scores are computed
//! in process from the same documents in the same order.
//!
//! A document whose vector the configured embedder cannot compare (made by another embedder, before
//! `honcho reembed`) is a hybrid candidate when it holds a query term, with no cosine score (scaled
//! to 0): it ranks by its words alone.
//!
//! `vector` ranks by cosine similarity alone (the v1.1.0 behaviour), over comparable vectors only;
//! `lexical` by BM25 alone, over every document whatever its embedder, returning only documents
//! holding a query term.

use std::fmt;
use std::str::FromStr;

use crate::vector::top_k;
use crate::Embedding;

/// One query of a collection's documents.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    /// The query as written (for BM25).
    pub text: String,
    /// Its vector; absent when the mode does not use vectors.
    pub embedding: Option<Embedding>,
    pub retrieval: Retrieval,
}

/// What a query found, best first, and how many of the documents it searched carry a vector the
/// query's embedder cannot compare (made by another embedder): `hybrid` ranks those by their words
/// alone, `vector` cannot rank them at all.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked<T> {
    pub items: Vec<T>,
    pub incomparable: usize,
}

/// Which of a user's messages a message search reads.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MessageScope {
    /// Only these sessions of the user (every one, active or not, when `None`).
    pub sessions: Option<Vec<String>>,
    /// Only the user's messages (`true`) or only the others (`false`).
    pub is_user: Option<bool>,
    /// Only messages whose metadata contains this ([`crate::json::contains`]).
    pub metadata: Option<crate::Metadata>,
}

/// The most sessions a message search may name.
pub const SESSION_IDS_MAX: usize = 100;

impl MessageScope {
    /// The sessions a search names: at most [`SESSION_IDS_MAX`].
    pub fn parse_sessions(ids: Vec<String>) -> Result<Vec<String>, crate::Invalid> {
        match ids.len() {
            n if n > SESSION_IDS_MAX => Err(crate::Invalid::TooManyItems {
                max: SESSION_IDS_MAX,
                actual: n,
            }),
            _ => Ok(ids),
        }
    }
}

/// The most results a document query returns (v1.1.0's limit).
pub const DOCUMENT_TOP_K_MAX: usize = 50;
/// The results a document query returns when not told (v1.1.0's default).
pub const DOCUMENT_TOP_K_DEFAULT: usize = 5;
/// The most results a message search returns.
pub const MESSAGE_TOP_K_MAX: usize = 100;
/// The results a message search returns when not told.
pub const MESSAGE_TOP_K_DEFAULT: usize = 10;

/// Which scores rank documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetrievalMode {
    #[default]
    Hybrid,
    Vector,
    Lexical,
}

impl RetrievalMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RetrievalMode::Hybrid => "hybrid",
            RetrievalMode::Vector => "vector",
            RetrievalMode::Lexical => "lexical",
        }
    }

    /// Whether the query text must be embedded.
    pub fn uses_vectors(self) -> bool {
        self != RetrievalMode::Lexical
    }
}

impl fmt::Display for RetrievalMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RetrievalMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "hybrid" => Ok(RetrievalMode::Hybrid),
            "vector" => Ok(RetrievalMode::Vector),
            "lexical" => Ok(RetrievalMode::Lexical),
            _ => Err(format!(
                "'{s}' is not a retrieval mode (expected 'hybrid', 'vector' or 'lexical')"
            )),
        }
    }
}

/// The ranking configuration of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retrieval {
    pub mode: RetrievalMode,
    /// Weight of the lexical scores in `hybrid` mode, in `[0, 1]`.
    pub lexical_weight: f32,
}

/// The default lexical weight.
pub const DEFAULT_LEXICAL_WEIGHT: f32 = 0.5;

impl Default for Retrieval {
    fn default() -> Self {
        Retrieval {
            mode: RetrievalMode::Hybrid,
            lexical_weight: DEFAULT_LEXICAL_WEIGHT,
        }
    }
}

impl Retrieval {
    /// Parses a lexical weight: a number from 0 to 1.
    pub fn parse_weight(s: &str) -> Result<f32, String> {
        s.trim()
            .parse::<f32>()
            .ok()
            .filter(|w| (0.0..=1.0).contains(w))
            .ok_or_else(|| format!("'{s}' is not a number from 0 to 1"))
    }

    /// The fused score of each candidate, from its lexical and cosine scores (same order, same
    /// length), as the mode asks.
    pub fn fuse(&self, lexical: &[f32], cosine: &[f32]) -> Vec<f32> {
        match self.mode {
            RetrievalMode::Vector => cosine.to_vec(),
            RetrievalMode::Lexical => lexical.to_vec(),
            RetrievalMode::Hybrid => {
                let w = self.lexical_weight;
                normalized(lexical)
                    .zip(normalized(cosine))
                    .map(|(l, c)| w * l + (1.0 - w) * c)
                    .collect()
            }
        }
    }
}

/// Lexical pseudo-relevance feedback in `hybrid` ranking: the terms that best describe the first
/// ranking's [`FEEDBACK_DOCUMENTS`] best items ([`crate::lexical::LexicalIndex::feedback_terms`]:
/// at most [`FEEDBACK_TERMS`], none found in more than [`FEEDBACK_DF_SHARE`] of the corpus) are
/// searched too, and [`FEEDBACK_WEIGHT`] times their BM25 (each term weighted by its share of the
/// heaviest) is added to the query's BM25 before the scores are fused again. Names, places and
/// dates of the first results find the items that answer the rest of a question. Only for a query
/// of at least [`FEEDBACK_QUERY_TERMS`] distinct terms: a lookup of a word or two wants the items
/// holding those words first, not their neighbours.
pub const FEEDBACK_DOCUMENTS: usize = 3;
/// See [`FEEDBACK_DOCUMENTS`].
pub const FEEDBACK_TERMS: usize = 10;
/// See [`FEEDBACK_DOCUMENTS`].
pub const FEEDBACK_DF_SHARE: f32 = 0.03;
/// See [`FEEDBACK_DOCUMENTS`].
pub const FEEDBACK_WEIGHT: f32 = 0.4;
/// See [`FEEDBACK_DOCUMENTS`].
pub const FEEDBACK_QUERY_TERMS: usize = 3;

/// Whether feedback applies to a query of these distinct terms ([`FEEDBACK_DOCUMENTS`];
/// [`crate::lexical::distinct_terms`]).
pub fn wants_feedback(query_terms: &[String]) -> bool {
    query_terms.len() >= FEEDBACK_QUERY_TERMS
}

/// The text to embed for a search of `speaker`'s own messages: `query` without the words that
/// name the speaker (a word all of whose terms are terms of the name, such as `Priya's` for
/// `Priya Raman`). Every message searched is the speaker's, so their name in a question says
/// nothing about which one answers it, while in the embedding it would draw the question towards
/// the replies that address them by name. The words stay in the text ranked by BM25, where the
/// speaker's name is a term of each of their messages (`lexical::LexicalIndex::push_said`).
/// `None` when no word names the speaker, or when nothing else would be left.
pub fn without_speaker(query: &str, speaker: &str) -> Option<String> {
    let name = crate::lexical::terms(speaker);
    if name.is_empty() {
        return None;
    }
    // Whether any word named the speaker, and whether a word with a term is left.
    let (mut dropped, mut left) = (false, false);
    let kept: Vec<&str> = query
        .split_whitespace()
        .filter(|word| {
            let terms = crate::lexical::terms(word);
            let names = !terms.is_empty() && terms.iter().all(|t| name.contains(t));
            dropped |= names;
            left |= !names && !terms.is_empty();
            !names
        })
        .collect();
    (dropped && left).then(|| kept.join(" "))
}

/// `scores` min-max scaled to `[0, 1]`; all zeros when they are all equal (or not finite).
fn normalized(scores: &[f32]) -> impl Iterator<Item = f32> + '_ {
    let (min, max) = scores
        .iter()
        .filter(|s| s.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| {
            (lo.min(*s), hi.max(*s))
        });
    let span = max - min;
    scores.iter().map(move |s| {
        if span > 0.0 && span.is_finite() && s.is_finite() {
            (s - min) / span
        } else {
            0.0
        }
    })
}

/// The `k` best of `scored` (highest score first; on equal scores, the item that came first).
pub fn best<T>(scored: impl IntoIterator<Item = (T, f32)>, k: usize) -> Vec<(T, f32)> {
    top_k(scored.into_iter().map(|(t, s)| (t, -s)), k)
        .into_iter()
        .map(|(t, s)| (t, -s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for mode in [
            RetrievalMode::Hybrid,
            RetrievalMode::Vector,
            RetrievalMode::Lexical,
        ] {
            assert_eq!(mode.as_str().parse::<RetrievalMode>(), Ok(mode));
        }
        assert_eq!(
            " Hybrid ".parse::<RetrievalMode>(),
            Ok(RetrievalMode::Hybrid)
        );
        assert!("bm25".parse::<RetrievalMode>().is_err());
        assert_eq!(Retrieval::parse_weight("0.3"), Ok(0.3));
        assert!(Retrieval::parse_weight("1.5").is_err());
        assert!(Retrieval::parse_weight("NaN").is_err());
    }

    #[test]
    fn hybrid_is_a_weighted_sum_of_min_max_scaled_scores() {
        let r = Retrieval::default();
        let fused = r.fuse(&[0.0, 2.0, 4.0], &[0.5, 0.9, 0.1]);
        let expect = [0.25, 0.5 * 0.5 + 0.5, 0.5];
        for (f, e) in fused.iter().zip(expect) {
            assert!((f - e).abs() < 1e-6, "{fused:?}");
        }
        // A flat list (no query term matched) leaves the order to the other.
        let fused = r.fuse(&[0.0, 0.0, 0.0], &[0.2, 0.8, 0.5]);
        assert_eq!(best(fused.into_iter().enumerate(), 3)[0].0, 1);
        let lexical_only = Retrieval {
            lexical_weight: 1.0,
            ..r
        };
        assert_eq!(lexical_only.fuse(&[1.0, 3.0], &[0.9, 0.1]), vec![0.0, 1.0]);
    }

    #[test]
    fn feedback_is_for_queries_of_three_terms_or_more() {
        use crate::lexical::distinct_terms;
        assert!(wants_feedback(&distinct_terms(
            "Where does Priya live now?"
        )));
        assert!(!wants_feedback(&distinct_terms("note 0")));
        assert!(!wants_feedback(&distinct_terms("dogs dog dogs the of")));
    }

    #[test]
    fn a_query_is_embedded_without_the_words_naming_the_speaker() {
        let name = "Augustin \"Gus\" Farrow";
        assert_eq!(
            without_speaker("When did Gus's knee surgery happen?", name).as_deref(),
            Some("When did knee surgery happen?")
        );
        assert_eq!(
            without_speaker("Where do the Farrows live now?", name).as_deref(),
            Some("Where do the live now?")
        );
        // Naming nobody, or nothing but the name: the query as it is.
        assert_eq!(without_speaker("Where is the boat?", name), None);
        assert_eq!(without_speaker("Gus?", name), None);
        assert_eq!(without_speaker("Who is Gus", name), None);
        assert_eq!(without_speaker("anything", ""), None);
    }

    #[test]
    fn best_prefers_high_scores_then_the_first() {
        let ranked = best([("a", 0.5), ("b", 0.9), ("c", 0.9), ("d", 0.1)], 3);
        let names: Vec<&str> = ranked.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["b", "c", "a"]);
    }
}
