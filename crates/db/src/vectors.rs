//! An in-process copy of collections' vectors and word postings, so a query does not read every
//! document of a collection from the database each time. A copy is used only while the
//! collection's version is unchanged: its largest internal document id, its largest document
//! revision, and the revision drawn at its last document deletion. Ids are never reused, every new
//! vector (and so every new content) takes a new revision and every deletion draws one, so an
//! unchanged version means unchanged vectors and postings, whichever process wrote them; all three
//! are read through indexes, whatever the collection's size. Least recently used copies are dropped
//! beyond a memory budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use honcho_domain::lexical::LexicalIndex;
use honcho_domain::retrieval::{best, Ranked, RetrievalMode, Search};
use honcho_domain::vector::{dot, normalized, top_k};
use honcho_domain::Embedding;

/// The vectors and word postings of one collection at one version.
#[derive(Debug, Clone)]
pub struct CollectionVectors {
    /// `(largest internal id, largest revision, deletion revision)` when the copy was made.
    pub version: (i64, i64, i64),
    /// Internal document ids, ascending; document `i` is the `i`-th of every list.
    pub ids: Vec<i64>,
    /// `(embedder, dimensions)` of each vector.
    pub made_by: Vec<(Arc<str>, i32)>,
    /// Every vector, unit length, one after the other (one block of memory, scanned in order).
    values: Vec<f32>,
    /// Vector `i` is `values[starts[i]..starts[i + 1]]`.
    starts: Vec<usize>,
    /// BM25 postings of the documents' contents, document `i` being `ids[i]`.
    pub lexical: LexicalIndex,
}

impl CollectionVectors {
    /// An empty copy at `version`.
    pub fn new(version: (i64, i64, i64)) -> Self {
        CollectionVectors {
            version,
            ids: Vec::new(),
            made_by: Vec::new(),
            values: Vec::new(),
            starts: vec![0],
            lexical: LexicalIndex::default(),
        }
    }

    /// Adds the next document (ids ascending): its vector (scaled to unit length here) and
    /// content.
    pub fn push(&mut self, id: i64, made_by: (Arc<str>, i32), vector: Vec<f32>, content: &str) {
        self.ids.push(id);
        self.made_by.push(made_by);
        self.values.extend(normalized(vector));
        self.starts.push(self.values.len());
        self.lexical.push(content);
    }

    /// The vector of document `i`.
    fn vector(&self, i: usize) -> &[f32] {
        &self.values[self.starts[i]..self.starts[i + 1]]
    }

    fn bytes(&self) -> usize {
        self.values.len() * 4 + self.ids.len() * 40 + self.lexical.bytes() + 64
    }

    /// Positions of the documents with a vector of `query`'s embedder and dimension.
    fn comparable<'a>(&'a self, query: &'a Embedding) -> impl Iterator<Item = usize> + 'a {
        let dims = query.vector.len() as i32;
        self.made_by
            .iter()
            .enumerate()
            .filter(move |(_, (name, d))| *d == dims && **name == *query.embedder)
            .map(|(i, _)| i)
    }

    /// The internal ids of the `top` vectors nearest to `query` (same embedder and dimension) with
    /// their cosine distances, nearest first.
    pub fn nearest(&self, query: &Embedding, top: usize) -> Vec<(i64, f32)> {
        let q = normalized(query.vector.clone());
        let scored = self
            .comparable(query)
            .map(|i| (self.ids[i], 1.0 - dot(&q, self.vector(i))));
        top_k(scored, top)
    }

    /// The internal ids of the `top` documents best ranked for `search`
    /// ([`honcho_domain::retrieval`]), best first, among those whose id is in `allowed` (sorted)
    /// when given, and how many of those carry a vector the query's embedder cannot compare
    /// (another embedder's, or none): hybrid ranking ranks them by their words alone, vector
    /// ranking cannot rank them.
    pub fn rank(&self, search: &Search, allowed: Option<&[i64]>, top: usize) -> Ranked<i64> {
        let mode = search.retrieval.mode;
        let mut searched: Vec<usize> = (0..self.ids.len()).collect();
        if let Some(allowed) = allowed {
            searched.retain(|&i| allowed.binary_search(&self.ids[i]).is_ok());
        }
        let comparable: Vec<bool> = match &search.embedding {
            Some(query) if mode.uses_vectors() => {
                let mut mask = vec![false; self.ids.len()];
                for i in self.comparable(query) {
                    mask[i] = true;
                }
                mask
            }
            _ => vec![false; self.ids.len()],
        };
        let incomparable = match mode {
            RetrievalMode::Lexical => 0,
            _ => searched.iter().filter(|&&i| !comparable[i]).count(),
        };
        let all_lexical = match mode {
            RetrievalMode::Vector => Vec::new(),
            _ => self.lexical.scores(&search.text),
        };
        let candidates: Vec<usize> = searched
            .into_iter()
            .filter(|&i| match mode {
                RetrievalMode::Vector => comparable[i],
                // A document whose vector cannot be compared still ranks by its words.
                RetrievalMode::Hybrid => comparable[i] || all_lexical[i] > 0.0,
                RetrievalMode::Lexical => all_lexical[i] > 0.0,
            })
            .collect();
        let lexical: Vec<f32> = match mode {
            RetrievalMode::Vector => Vec::new(),
            _ => candidates.iter().map(|&i| all_lexical[i]).collect(),
        };
        let cosine: Vec<f32> = match (&search.embedding, mode) {
            (Some(query), RetrievalMode::Hybrid | RetrievalMode::Vector) => {
                let q = normalized(query.vector.clone());
                candidates
                    .iter()
                    // No score (scaled to 0) for a vector that cannot be compared.
                    .map(|&i| match comparable[i] {
                        true => dot(&q, self.vector(i)),
                        false => f32::NAN,
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        let fused = search.retrieval.fuse(&lexical, &cosine);
        let ids = best(candidates.iter().map(|&i| self.ids[i]).zip(fused), top)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        Ranked {
            items: ids,
            incomparable,
        }
    }
}

#[derive(Debug)]
pub struct VectorCache {
    budget: usize,
    inner: Mutex<Inner>,
    /// Held while a copy is read from the database, so concurrent misses load it once.
    pub loading: Mutex<()>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, (u64, Arc<CollectionVectors>)>,
    tick: u64,
    bytes: usize,
}

impl VectorCache {
    /// A cache holding at most `budget` bytes of vectors (0 disables it).
    pub fn new(budget: usize) -> Self {
        VectorCache {
            budget,
            inner: Mutex::new(Inner::default()),
            loading: Mutex::new(()),
        }
    }

    pub fn get(&self, collection: &str) -> Option<Arc<CollectionVectors>> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.tick += 1;
        let tick = inner.tick;
        let entry = inner.entries.get_mut(collection)?;
        entry.0 = tick;
        Some(entry.1.clone())
    }

    pub fn put(&self, collection: &str, vectors: Arc<CollectionVectors>) {
        let size = vectors.bytes();
        if size > self.budget {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.tick += 1;
        let tick = inner.tick;
        if let Some((_, old)) = inner
            .entries
            .insert(collection.to_string(), (tick, vectors))
        {
            inner.bytes -= old.bytes();
        }
        inner.bytes += size;
        while inner.bytes > self.budget {
            let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((_, gone)) = inner.entries.remove(&oldest) {
                inner.bytes -= gone.bytes();
            }
        }
        metrics::gauge!("honcho_vector_cache_bytes").set(inner.bytes as f64);
    }
}
