//! Lexical ranking: Okapi BM25 over stemmed words.
//!
//! # Terms
//! A text is split into words at Unicode word boundaries (UAX #29: `don't` and `Maya's` are one
//! word each, an ideograph is a word of its own), keeping the words that hold a letter or digit.
//! Each word is lower-cased (Unicode rules, with `’` read as `'`), dropped if it is an English stop
//! word ([`STOP_WORDS`]), and reduced to its Snowball English stem (`running`, `runs` → `run`;
//! words of other languages pass through the stemmer mostly unchanged, so they still match
//! themselves exactly).
//!
//! # Scoring
//! For a query's distinct terms `t` and a document `d` of a collection of `N` documents:
//!
//! `score(d) = Σ idf(t) · tf(t,d) · (K1 + 1) / (tf(t,d) + K1 · (1 − B + B · len(d) / avglen))`
//!
//! with `idf(t) = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))`, `df(t)` the number of documents
//! holding `t`, `len(d)` the number of terms of `d` (stop words not counted) and `avglen` their
//! mean. The statistics are those of the whole collection, whatever filter a query adds (as search
//! engines do), so a filter narrows the candidates without changing their scores.

use std::collections::HashMap;

use rust_stemmers::{Algorithm, Stemmer};
use unicode_segmentation::UnicodeSegmentation;

/// Term frequency saturation.
pub const K1: f32 = 1.2;
/// Length normalisation.
pub const B: f32 = 0.75;

/// English words too common to tell documents apart, matched after lower-casing and before
/// stemming.
#[rustfmt::skip]
pub const STOP_WORDS: &[&str] = &[
    "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are",
    "aren't", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both",
    "but", "by", "can", "can't", "cannot", "could", "couldn't", "did", "didn't", "do", "does",
    "doesn't", "doing", "don't", "down", "during", "each", "few", "for", "from", "further", "had",
    "hadn't", "has", "hasn't", "have", "haven't", "having", "he", "he'd", "he'll", "he's", "her",
    "here", "here's", "hers", "herself", "him", "himself", "his", "how", "how's", "i", "i'd",
    "i'll", "i'm", "i've", "if", "in", "into", "is", "isn't", "it", "it's", "its", "itself",
    "let's", "me", "more", "most", "mustn't", "my", "myself", "no", "nor", "not", "of", "off", "on",
    "once", "only", "or", "other", "ought", "our", "ours", "ourselves", "out", "over", "own",
    "same", "shan't", "she", "she'd", "she'll", "she's", "should", "shouldn't", "so", "some",
    "such", "than", "that", "that's", "the", "their", "theirs", "them", "themselves", "then",
    "there", "there's", "these", "they", "they'd", "they'll", "they're", "they've", "this", "those",
    "through", "to", "too", "under", "until", "up", "very", "was", "wasn't", "we", "we'd", "we'll",
    "we're", "we've", "were", "weren't", "what", "what's", "when", "when's", "where", "where's",
    "which", "while", "who", "who's", "whom", "why", "why's", "will", "with", "won't", "would",
    "wouldn't", "you", "you'd", "you'll", "you're", "you've", "your", "yours", "yourself",
    "yourselves",
];

/// Calls `each` with every term of `text`, in order (repeats included).
pub fn for_each_term(text: &str, mut each: impl FnMut(&str)) {
    let stemmer = Stemmer::create(Algorithm::English);
    let mut word = String::new();
    for raw in text.unicode_words() {
        word.clear();
        for c in raw.chars() {
            match c {
                '\u{2019}' | '\u{2018}' => word.push('\''),
                c => word.extend(c.to_lowercase()),
            }
        }
        if STOP_WORDS.binary_search(&word.as_str()).is_ok() {
            continue;
        }
        each(&stemmer.stem(&word));
    }
}

/// The terms of `text`, in order (repeats included).
pub fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_term(text, |t| out.push(t.to_string()));
    out
}

/// The distinct terms of `text`, in the order they first appear.
pub fn distinct_terms(text: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for_each_term(text, |t| {
        if !seen.iter().any(|s| s == t) {
            seen.push(t.to_string());
        }
    });
    seen
}

/// The postings of a set of documents, numbered 0, 1, … in the order they were added. Adding is
/// the only change: a document that changes or goes means building the index again.
///
/// While documents are added, a hash map finds a term's id and each term's postings grow on their
/// own; [`LexicalIndex::shrink_to_fit`] (an index that is complete) keeps an open-addressing table
/// of ids instead and the postings one after another: about 20 bytes a term instead of about a
/// hundred, and a lookup still hashes the term once.
#[derive(Debug, Clone)]
pub struct LexicalIndex {
    /// Every term, one after another: term `id` is `text[ends[id - 1]..ends[id]]` (from 0 for the
    /// first).
    text: String,
    ends: Vec<u32>,
    terms_of: Terms,
    /// Per document: its number of terms.
    lengths: Vec<u32>,
    total_length: u64,
    /// Every document's distinct term ids, one document after another: document `d`'s are
    /// `terms[starts[d]..starts[d + 1]]` (for feedback, [`LexicalIndex::feedback_terms`]).
    terms: Vec<u32>,
    starts: Vec<u32>,
}

/// How a term's id and postings are found.
#[derive(Debug, Clone)]
enum Terms {
    /// Taking documents: ids by term; per id, (document number, occurrences) in document order.
    Open {
        ids: HashMap<Box<str>, u32>,
        postings: Vec<Vec<(u32, u32)>>,
    },
    /// Complete: `slots` (a power of two, at most half full) holds each id plus one at the
    /// first free place from its term's hash on (0: free); id `i`'s postings are
    /// `postings[starts[i]..starts[i + 1]]`.
    Table {
        slots: Vec<u32>,
        postings: Vec<(u32, u32)>,
        starts: Vec<u32>,
    },
}

impl Default for LexicalIndex {
    fn default() -> Self {
        LexicalIndex {
            text: String::new(),
            ends: Vec::new(),
            terms_of: Terms::Open {
                ids: HashMap::new(),
                postings: Vec::new(),
            },
            lengths: Vec::new(),
            total_length: 0,
            terms: Vec::new(),
            starts: vec![0],
        }
    }
}

impl LexicalIndex {
    /// Adds the next document.
    pub fn push(&mut self, text: &str) {
        self.push_said(text, "");
    }

    /// Adds the next document, `text` said by `speaker`: the terms of the speaker's name count as
    /// terms of the document (a question naming the speaker finds what they said, as it finds a
    /// transcript line `<name>: <text>`), and not in its length, so that its other terms score as
    /// they would without a speaker.
    pub fn push_said(&mut self, text: &str, speaker: &str) {
        let doc = self.lengths.len() as u32;
        let mut counts: HashMap<String, u32> = HashMap::new();
        let mut length = 0u32;
        let mut count = |t: &str| match counts.get_mut(t) {
            Some(n) => *n += 1,
            None => {
                counts.insert(t.to_string(), 1);
            }
        };
        for_each_term(text, |t| {
            length += 1;
            count(t);
        });
        for_each_term(speaker, count);
        self.open();
        let Terms::Open { ids, postings } = &mut self.terms_of else {
            unreachable!("opened above")
        };
        // Postings stay in document order whatever the hash map's order.
        for (term, count) in counts {
            let id = match ids.get(term.as_str()) {
                Some(&id) => id,
                None => {
                    let id = self.ends.len() as u32;
                    self.text.push_str(&term);
                    self.ends.push(self.text.len() as u32);
                    ids.insert(term.into_boxed_str(), id);
                    postings.push(Vec::new());
                    id
                }
            };
            postings[id as usize].push((doc, count));
            self.terms.push(id);
        }
        self.starts.push(self.terms.len() as u32);
        self.lengths.push(length);
        self.total_length += u64::from(length);
    }

    /// Term `id`'s text.
    fn term(&self, id: u32) -> &str {
        let from = match id {
            0 => 0,
            id => self.ends[id as usize - 1] as usize,
        };
        &self.text[from..self.ends[id as usize] as usize]
    }

    /// The id of `term`, if a document holds it.
    fn id(&self, term: &str) -> Option<u32> {
        match &self.terms_of {
            Terms::Open { ids, .. } => ids.get(term).copied(),
            Terms::Table { slots, .. } => {
                let mask = slots.len() - 1;
                let mut at = slot_hash(term) & mask;
                loop {
                    match slots[at] {
                        0 => return None,
                        id if self.term(id - 1) == term => return Some(id - 1),
                        _ => at = (at + 1) & mask,
                    }
                }
            }
        }
    }

    /// Term `id`'s postings: (document number, occurrences), in document order.
    fn postings(&self, id: u32) -> &[(u32, u32)] {
        match &self.terms_of {
            Terms::Open { postings, .. } => &postings[id as usize],
            Terms::Table {
                postings, starts, ..
            } => &postings[starts[id as usize] as usize..starts[id as usize + 1] as usize],
        }
    }

    /// Makes the index take documents again (a complete index holds its terms in a table).
    fn open(&mut self) {
        if let Terms::Table { .. } = self.terms_of {
            let ids = (0..self.ends.len() as u32)
                .map(|id| (Box::from(self.term(id)), id))
                .collect();
            let postings = (0..self.ends.len() as u32)
                .map(|id| self.postings(id).to_vec())
                .collect();
            self.terms_of = Terms::Open { ids, postings };
        }
    }

    /// Keeps the terms in a table and the postings in one block, and gives back the room kept for
    /// more documents (an index that is complete; adding a document after it still works).
    pub fn shrink_to_fit(&mut self) {
        if let Terms::Open { postings, .. } = &self.terms_of {
            let mut slots = vec![0u32; (2 * self.ends.len()).next_power_of_two().max(2)];
            let mask = slots.len() - 1;
            for id in 0..self.ends.len() as u32 {
                let mut at = slot_hash(self.term(id)) & mask;
                while slots[at] != 0 {
                    at = (at + 1) & mask;
                }
                slots[at] = id + 1;
            }
            let mut flat = Vec::with_capacity(postings.iter().map(Vec::len).sum());
            let mut starts = Vec::with_capacity(postings.len() + 1);
            starts.push(0);
            for p in postings {
                flat.extend_from_slice(p);
                starts.push(flat.len() as u32);
            }
            self.terms_of = Terms::Table {
                slots,
                postings: flat,
                starts,
            };
        }
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
        self.lengths.shrink_to_fit();
        self.terms.shrink_to_fit();
        self.starts.shrink_to_fit();
    }

    /// Approximate memory held, in bytes.
    pub fn bytes(&self) -> usize {
        let terms = match &self.terms_of {
            Terms::Open { ids, postings } => {
                let postings: usize = postings.iter().map(|p| p.capacity() * 8 + 24).sum();
                postings + ids.keys().map(|k| k.len() + 16 + 4 + 8).sum::<usize>()
            }
            Terms::Table {
                slots,
                postings,
                starts,
            } => slots.capacity() * 4 + postings.capacity() * 8 + starts.capacity() * 4,
        };
        terms
            + self.text.capacity()
            + self.ends.capacity() * 4
            + self.lengths.capacity() * 4
            + self.terms.capacity() * 4
            + self.starts.capacity() * 4
            + 128
    }

    /// The BM25 score of every document for `query`, indexed by document number (0 for a
    /// document holding none of its terms, and for every document when the query has no term).
    pub fn scores(&self, query: &str) -> Vec<f32> {
        LexicalIndex::scores_over(&[self], query)
    }

    /// The BM25 scores of the documents of `parts` taken as one index (the documents of the first
    /// part, then of the next, ...): the same scores one index holding them all would give.
    pub fn scores_over(parts: &[&LexicalIndex], query: &str) -> Vec<f32> {
        let terms = distinct_terms(query);
        LexicalIndex::weighted_scores_over(parts, terms.iter().map(|t| (t.as_str(), 1.0)))
    }

    /// As [`LexicalIndex::scores_over`] for distinct terms already stemmed, each term's BM25
    /// contribution multiplied by its weight.
    pub fn weighted_scores_over<'t>(
        parts: &[&LexicalIndex],
        terms: impl IntoIterator<Item = (&'t str, f32)>,
    ) -> Vec<f32> {
        let documents: usize = parts.iter().map(|p| p.lengths.len()).sum();
        let mut scores = vec![0.0f32; documents];
        if documents == 0 {
            return scores;
        }
        let n = documents as f64;
        let total: u64 = parts.iter().map(|p| p.total_length).sum();
        let average = (total as f64 / n).max(1.0) as f32;
        for (t, weight) in terms {
            let postings: Vec<Option<&[(u32, u32)]>> = parts
                .iter()
                .map(|p| p.id(t).map(|id| p.postings(id)))
                .collect();
            let df: usize = postings.iter().flatten().map(|p| p.len()).sum();
            if df == 0 {
                continue;
            }
            let idf = idf(n, df) * weight;
            let mut offset = 0;
            for (part, postings) in parts.iter().zip(&postings) {
                for &(doc, tf) in postings.unwrap_or(&[]) {
                    let tf = tf as f32;
                    let length = part.lengths[doc as usize] as f32;
                    let norm = K1 * (1.0 - B + B * length / average);
                    scores[offset + doc as usize] += idf * tf * (K1 + 1.0) / (tf + norm);
                }
                offset += part.lengths.len();
            }
        }
        scores
    }

    /// Pseudo-relevance feedback: the terms that best describe the documents `docs` (numbers over
    /// `parts` taken as one index, usually a first ranking's best), up to `most`, with weights in
    /// `(0, 1]` (1 for the heaviest). A term weighs the sum over those documents of its share of
    /// the document's terms times its idf. The query's own terms (`query_terms`, stemmed) are left
    /// out, and so are terms
    /// found in more than `df_share` of all documents (frequent terms add noise, and their
    /// postings cost the most to score). Ties go to the term that sorts first, so the choice does
    /// not depend on the order of a hash map.
    pub fn feedback_terms<'a>(
        parts: &[&'a LexicalIndex],
        docs: &[usize],
        query_terms: &[String],
        most: usize,
        df_share: f32,
    ) -> Vec<(&'a str, f32)> {
        let documents: usize = parts.iter().map(|p| p.lengths.len()).sum();
        let mut weights: HashMap<&'a str, f32> = HashMap::new();
        for &d in docs {
            let Some((part, doc)) = locate(parts, d) else {
                continue;
            };
            let length = part.lengths[doc].max(1) as f32;
            let (from, to) = (part.starts[doc] as usize, part.starts[doc + 1] as usize);
            for &id in &part.terms[from..to] {
                let name = part.term(id);
                if query_terms.iter().any(|q| q == name) {
                    continue;
                }
                let df: usize = parts
                    .iter()
                    .filter_map(|p| p.id(name).map(|i| p.postings(i).len()))
                    .sum();
                if df as f32 > df_share * documents as f32 {
                    continue;
                }
                let postings = part.postings(id);
                let tf = postings
                    .binary_search_by_key(&(doc as u32), |&(d, _)| d)
                    .map_or(0, |i| postings[i].1);
                let weight = tf as f32 / length * idf(documents as f64, df);
                *weights.entry(name).or_insert(0.0) += weight;
            }
        }
        let mut ranked: Vec<(&'a str, f32)> = weights.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        ranked.truncate(most);
        let heaviest = ranked.first().map_or(1.0, |(_, w)| *w);
        if heaviest > 0.0 {
            ranked.iter_mut().for_each(|(_, w)| *w /= heaviest);
        }
        ranked
    }
}

/// Where a complete index's table starts looking for `term` (the standard library's hasher with
/// its fixed keys: the table is built and probed in the same process).
fn slot_hash(term: &str) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(term) as usize
}

/// BM25's idf of a term found in `df` of `n` documents.
fn idf(n: f64, df: usize) -> f32 {
    let df = df as f64;
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln() as f32
}

/// The part holding document `d` of `parts` taken as one index, and its number there.
fn locate<'a>(parts: &[&'a LexicalIndex], mut d: usize) -> Option<(&'a LexicalIndex, usize)> {
    for part in parts {
        if d < part.lengths.len() {
            return Some((part, d));
        }
        d -= part.lengths.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn terms_are_lower_cased_stemmed_words_without_stop_words() {
        assert_eq!(
            terms("The runners were RUNNING; she runs daily!"),
            vec!["runner", "run", "run", "daili"]
        );
        assert_eq!(terms("Maya’s dog didn't bark"), vec!["maya", "dog", "bark"]);
        assert_eq!(terms("the and of it"), Vec::<String>::new());
        assert_eq!(
            terms("2024 was 3.5 times better"),
            vec!["2024", "3.5", "time", "better"]
        );
        // Other scripts: words (or ideographs) pass through, never a panic.
        assert_eq!(terms("Füße Straße"), vec!["füße", "straße"]);
        assert_eq!(terms("東京に住む").len(), 5);
        assert!(terms("🎻 — …").is_empty());
    }

    #[test]
    fn bm25_follows_the_formula() {
        let mut index = LexicalIndex::default();
        index.push("cello cello practice");
        index.push("piano lessons");
        index.push("the cello");
        let scores = index.scores("cello");
        // N = 3, df = 2, lengths 3, 2, 1 (average 2).
        let idf = (1.0f32 + (3.0 - 2.0 + 0.5) / (2.0 + 0.5)).ln();
        let expect = |tf: f32, len: f32| idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len / 2.0));
        assert!((scores[0] - expect(2.0, 3.0)).abs() < 1e-6);
        assert_eq!(scores[1], 0.0);
        assert!((scores[2] - expect(1.0, 1.0)).abs() < 1e-6);
        // Repeating a query word does not count it twice; stop words count nothing.
        assert_eq!(index.scores("cello cello the"), scores);
        assert_eq!(index.scores("the of"), vec![0.0; 3]);
        assert_eq!(LexicalIndex::default().scores("cello"), Vec::<f32>::new());
    }

    #[test]
    fn feedback_finds_the_rare_terms_of_the_best_documents() {
        let texts = [
            "Callum is a sound engineer at gigs",
            "the gig in Manchester went well",
            "tea and toast",
            "tea with milk",
            "toast with jam",
            "tea again",
        ];
        let (mut first, mut second) = (LexicalIndex::default(), LexicalIndex::default());
        for (i, text) in texts.iter().enumerate() {
            if i < 3 { &mut first } else { &mut second }.push(text);
        }
        let parts = [&first, &second];
        // The query's own terms are left out; "tea" is in half the documents.
        let found =
            LexicalIndex::feedback_terms(&parts, &[0, 1], &terms("sound engineer"), 10, 0.4);
        let names: Vec<&str> = found.iter().map(|(t, _)| *t).collect();
        assert!(names.contains(&"gig"), "{names:?}");
        assert!(
            !names.contains(&"sound") && !names.contains(&"tea"),
            "{names:?}"
        );
        assert_eq!(found[0].1, 1.0);
        assert!(found.iter().all(|(_, w)| *w > 0.0 && *w <= 1.0));
        assert_eq!(found.len(), names.len());
        assert!(LexicalIndex::feedback_terms(&parts, &[0], &terms("x"), 0, 1.0).is_empty());
        // Weighted scores: a weight scales a term's contribution.
        let once = LexicalIndex::weighted_scores_over(&parts, [("gig", 1.0)]);
        let half = LexicalIndex::weighted_scores_over(&parts, [("gig", 0.5)]);
        assert!(once[1] > 0.0 && (half[1] * 2.0 - once[1]).abs() < 1e-6);
    }

    #[test]
    fn a_complete_index_scores_as_it_did_while_taking_documents() {
        let texts = [
            "Callum is a sound engineer at gigs",
            "the gig in Manchester went well",
            "tea and toast in Manchester",
            "sound checks before the gig",
        ];
        let mut open = LexicalIndex::default();
        texts.iter().for_each(|t| open.push(t));
        let mut complete = open.clone();
        complete.shrink_to_fit();
        assert!(complete.bytes() < open.bytes());
        for query in [
            "gig",
            "sound engineer manchester",
            "toast tea",
            "absent",
            "the",
        ] {
            assert_eq!(complete.scores(query), open.scores(query), "{query}");
        }
        let query = terms("sound engineer");
        assert_eq!(
            LexicalIndex::feedback_terms(&[&complete], &[0, 3], &query, 10, 1.0),
            LexicalIndex::feedback_terms(&[&open], &[0, 3], &query, 10, 1.0)
        );
        // A complete index still takes a document.
        complete.push("a gig in Leeds");
        open.push("a gig in Leeds");
        assert_eq!(complete.scores("gig leeds"), open.scores("gig leeds"));
        assert!(complete.scores("leeds")[4] > 0.0);
    }

    #[test]
    fn rarer_terms_weigh_more() {
        let mut index = LexicalIndex::default();
        for text in ["dog park", "dog walk", "dog food", "cat park"] {
            index.push(text);
        }
        let s = index.scores("cat dog");
        assert!(s[3] > s[0], "{s:?}");
    }

    #[test]
    fn parts_score_as_one_index() {
        let texts = [
            "dog park at noon",
            "the dog walk",
            "cat food and dog food",
            "cat park",
            "walking the cat",
            "noon walk in the park",
        ];
        let mut whole = LexicalIndex::default();
        let (mut first, mut second) = (LexicalIndex::default(), LexicalIndex::default());
        for (i, text) in texts.iter().enumerate() {
            whole.push(text);
            if i < 4 { &mut first } else { &mut second }.push(text);
        }
        for query in ["dog", "cat park", "walk noon food", "absent"] {
            assert_eq!(
                LexicalIndex::scores_over(&[&first, &second], query),
                whole.scores(query),
                "{query}"
            );
        }
    }
}
