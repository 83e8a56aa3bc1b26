//! An in-process copy of collections' vectors, so a query does not read every vector of a collection
//! from the database each time. A copy is used only while the collection's version is unchanged:
//! its largest internal document id, its largest document revision, and the revision drawn at its
//! last document deletion. Ids are never reused, every new vector takes a new revision and every
//! deletion draws one, so an unchanged version means unchanged vectors, whichever process wrote them;
//! all three are read through indexes, whatever the collection's size. Least recently used copies
//! are dropped beyond a memory budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The vectors of one collection at one version.
#[derive(Debug)]
pub struct CollectionVectors {
    /// `(largest internal id, largest revision, deletion revision)` when the copy was made.
    pub version: (i64, i64, i64),
    /// Internal document ids, in the order of `vectors`.
    pub ids: Vec<i64>,
    /// `(embedder, dimensions)` of each vector.
    pub made_by: Vec<(Arc<str>, i32)>,
    pub vectors: Vec<Vec<f32>>,
}

impl CollectionVectors {
    fn bytes(&self) -> usize {
        self.vectors.iter().map(|v| v.len() * 4 + 48).sum::<usize>() + 64
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
