//! In-process search state: a corpus (a collection's documents, or a user's messages) held as
//! vectors and word postings, so that a query does not read every item from the database each
//! time, and ranked by one fusion ([`honcho_domain::retrieval`]).
//!
//! A copy is used only while its corpus's version is unchanged. What a version is depends on the
//! corpus (see `queries::documents` and `queries::messages`); each is read through indexes, whatever
//! the corpus's size, and changes with every new item, new vector and deletion, whichever process
//! wrote them. Least recently used copies are dropped beyond a memory budget per kind of corpus.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use honcho_domain::lexical::{distinct_terms, LexicalIndex};
use honcho_domain::retrieval::{
    best, wants_feedback, Ranked, RetrievalMode, Search, FEEDBACK_DF_SHARE, FEEDBACK_DOCUMENTS,
    FEEDBACK_TERMS, FEEDBACK_WEIGHT,
};
use honcho_domain::vector::{normalized, quantize, top_k, QuantizedQuery};
use honcho_domain::Embedding;

/// The items of one corpus at one version: item `i` is the `i`th pushed, in id order. `V` is the
/// corpus's version, `M` what each item carries besides its vector and words (to narrow a query
/// without asking the database).
///
/// Items are kept in segments of [`SEGMENT`]: full segments are never changed again and are shared
/// (not copied) by the copies made from this one, so bringing a copy up to date with a few new
/// items copies at most one segment, however large the corpus.
#[derive(Debug, Clone)]
pub struct Corpus<V, M> {
    pub version: V,
    full: Vec<Arc<Segment<M>>>,
    /// The last segment, filling up (fewer than `SEGMENT` items).
    open: Segment<M>,
    /// Every (embedder, dimensions) of the vectors held, in the order first seen: an item's
    /// `made_by` is its place here plus one (0 for an item without a vector).
    makers: Vec<(Box<str>, i32)>,
}

/// Items per segment.
const SEGMENT: usize = 1024;

/// Consecutive items of a corpus.
#[derive(Debug, Clone)]
struct Segment<M> {
    /// Internal ids, ascending.
    ids: Vec<i64>,
    /// `(embedder, dimensions)` of each item's vector; `None` for an item without one.
    made_by: Vec<u16>,
    meta: Vec<M>,
    /// Every vector, unit length and quantized to `i8` (a quarter of `f32`'s memory), one after
    /// the other (one block of memory, scanned in order).
    values: Vec<i8>,
    /// Vector `i` is `values[starts[i]..starts[i + 1]]` (empty without one).
    starts: Vec<usize>,
    /// Vector `i`'s scale ([`quantize`]).
    scales: Vec<f32>,
    /// BM25 postings of the items' texts.
    lexical: LexicalIndex,
}

impl<M> Segment<M> {
    fn new() -> Self {
        Segment {
            ids: Vec::new(),
            made_by: Vec::new(),
            meta: Vec::new(),
            values: Vec::new(),
            starts: vec![0],
            scales: Vec::new(),
            lexical: LexicalIndex::default(),
        }
    }

    fn vector(&self, i: usize) -> (&[i8], f32) {
        (
            &self.values[self.starts[i]..self.starts[i + 1]],
            self.scales[i],
        )
    }

    fn bytes(&self) -> usize {
        self.values.capacity()
            + self.scales.capacity() * 4
            + self.ids.len() * (8 + 2 + 8 + std::mem::size_of::<M>())
            + self.lexical.bytes()
            + 64
    }
}

impl<V, M> Corpus<V, M> {
    /// An empty copy at `version`.
    pub fn new(version: V) -> Self {
        Corpus {
            version,
            full: Vec::new(),
            open: Segment::new(),
            makers: Vec::new(),
        }
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.full.len() * SEGMENT + self.open.ids.len()
    }

    /// Whether no item is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The segment holding item `i`, and its place there.
    fn at(&self, i: usize) -> (&Segment<M>, usize) {
        match self.full.get(i / SEGMENT) {
            Some(segment) => (segment, i % SEGMENT),
            None => (&self.open, i - self.full.len() * SEGMENT),
        }
    }

    /// Every segment, in order.
    fn segments(&self) -> impl Iterator<Item = &Segment<M>> {
        self.full
            .iter()
            .map(|s| &**s)
            .chain(std::iter::once(&self.open))
    }

    /// The internal id of item `i`.
    pub fn id(&self, i: usize) -> i64 {
        let (segment, j) = self.at(i);
        segment.ids[j]
    }

    /// What item `i` carries.
    pub fn meta(&self, i: usize) -> &M {
        let (segment, j) = self.at(i);
        &segment.meta[j]
    }

    /// The largest id held (0 when empty).
    pub fn last_id(&self) -> i64 {
        let last = self.open.ids.last();
        last.or_else(|| self.full.last().and_then(|s| s.ids.last()))
            .copied()
            .unwrap_or(0)
    }

    /// Adds the next item (ids ascending): its vector with the embedder that made it (scaled to
    /// unit length here), its text and what it carries.
    pub fn push(&mut self, id: i64, vector: Option<(&str, Vec<f32>)>, text: &str, meta: M) {
        self.push_said(id, vector, (text, ""), meta);
    }

    /// [`Corpus::push`] for a text said by `speaker` ([`LexicalIndex::push_said`]).
    pub fn push_said(
        &mut self,
        id: i64,
        vector: Option<(&str, Vec<f32>)>,
        (text, speaker): (&str, &str),
        meta: M,
    ) {
        let (made_by, scale) = match vector {
            Some((embedder, values)) => {
                let dims = values.len() as i32;
                let known = self
                    .makers
                    .iter()
                    .position(|(e, d)| **e == *embedder && *d == dims);
                let place = known.unwrap_or_else(|| {
                    self.makers.push((Box::from(embedder), dims));
                    self.makers.len() - 1
                });
                let scale = quantize(&normalized(values), &mut self.open.values);
                // A corpus holds the vectors of one embedder or two (while re-embedding); past
                // 65,535 of them an item would rank by its words alone.
                (u16::try_from(place + 1).unwrap_or(0), scale)
            }
            None => (0, 0.0),
        };
        let open = &mut self.open;
        open.ids.push(id);
        open.made_by.push(made_by);
        open.meta.push(meta);
        open.starts.push(open.values.len());
        open.scales.push(scale);
        open.lexical.push_said(text, speaker);
        if open.ids.len() == SEGMENT {
            let mut full = std::mem::replace(open, Segment::new());
            full.values.shrink_to_fit();
            full.scales.shrink_to_fit();
            full.lexical.shrink_to_fit();
            self.full.push(Arc::new(full));
        }
    }

    /// The vector of item `i`, quantized, and its scale.
    fn vector(&self, i: usize) -> (&[i8], f32) {
        let (segment, j) = self.at(i);
        segment.vector(j)
    }

    /// Item `i`'s place in `makers` plus one (0 without a vector).
    fn made_by(&self, i: usize) -> u16 {
        let (segment, j) = self.at(i);
        segment.made_by[j]
    }

    /// What `made_by` an item whose vector `query` can be compared with carries (`None` when no
    /// item's can).
    fn maker_of(&self, query: &Embedding) -> Option<u16> {
        let dims = query.vector.len() as i32;
        self.makers
            .iter()
            .position(|(e, d)| **e == *query.embedder && *d == dims)
            .and_then(|place| u16::try_from(place + 1).ok())
    }

    /// Bytes held, about.
    pub fn bytes(&self) -> usize {
        self.segments().map(Segment::bytes).sum::<usize>() + 64
    }

    /// The internal ids of the `top` vectors nearest to `query` (same embedder and dimension) with
    /// their cosine distances, nearest first.
    pub fn nearest(&self, query: &Embedding, top: usize) -> Vec<(i64, f32)> {
        let q = QuantizedQuery::new(&normalized(query.vector.clone()));
        let Some(maker) = self.maker_of(query) else {
            return Vec::new();
        };
        let scored = (0..self.len())
            .filter(|&i| self.made_by(i) == maker)
            .map(|i| {
                let (v, scale) = self.vector(i);
                (self.id(i), 1.0 - q.dot(v, scale))
            });
        top_k(scored, top)
    }

    /// The internal ids of the `top` items best ranked for `search`
    /// ([`honcho_domain::retrieval`]), best first, among the positions `keep` accepts, and how
    /// many of those carry no vector the query's embedder can compare (another embedder's, or
    /// none): hybrid ranking ranks them by their words alone, vector ranking cannot rank them.
    pub fn rank(&self, search: &Search, keep: impl Fn(usize) -> bool, top: usize) -> Ranked<i64> {
        let mode = search.retrieval.mode;
        let wanted = match &search.embedding {
            Some(query) if mode.uses_vectors() => self.maker_of(query),
            _ => None,
        };
        let comparable = |i: usize| Some(self.made_by(i)) == wanted;
        let parts: Vec<&LexicalIndex> = self.segments().map(|s| &s.lexical).collect();
        let query_terms = match mode {
            RetrievalMode::Vector => Vec::new(),
            _ => distinct_terms(&search.text),
        };
        // The BM25 score of every item, then (below) of each candidate, in place.
        let mut lexical = match mode {
            RetrievalMode::Vector => Vec::new(),
            _ => LexicalIndex::weighted_scores_over(
                &parts,
                query_terms.iter().map(|t| (t.as_str(), 1.0)),
            ),
        };
        let mut incomparable = 0;
        let mut candidates: Vec<u32> = Vec::new();
        for i in (0..self.len()).filter(|&i| keep(i)) {
            let comparable = comparable(i);
            if !comparable && mode != RetrievalMode::Lexical {
                incomparable += 1;
            }
            let candidate = match mode {
                RetrievalMode::Vector => comparable,
                // An item whose vector cannot be compared still ranks by its words.
                RetrievalMode::Hybrid => comparable || lexical[i] > 0.0,
                RetrievalMode::Lexical => lexical[i] > 0.0,
            };
            if candidate {
                candidates.push(i as u32);
            }
        }
        if mode != RetrievalMode::Vector {
            // Candidates ascend, so each score moves to a place at or before its own.
            for (to, &from) in candidates.iter().enumerate() {
                lexical[to] = lexical[from as usize];
            }
            lexical.truncate(candidates.len());
        }
        let cosine: Vec<f32> = match (&search.embedding, mode) {
            (Some(query), RetrievalMode::Hybrid | RetrievalMode::Vector) => {
                let q = QuantizedQuery::new(&normalized(query.vector.clone()));
                candidates
                    .iter()
                    .map(|&i| i as usize)
                    // No score (scaled to 0) for a vector that cannot be compared.
                    .map(|i| match comparable(i) {
                        true => {
                            let (v, scale) = self.vector(i);
                            q.dot(v, scale)
                        }
                        false => f32::NAN,
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        let mut fused = search.retrieval.fuse(&lexical, &cosine);
        // Lexical feedback from the first ranking's best (`retrieval::FEEDBACK_DOCUMENTS`).
        if mode == RetrievalMode::Hybrid && wants_feedback(&query_terms) {
            let first: Vec<usize> = best(
                candidates
                    .iter()
                    .map(|&i| i as usize)
                    .zip(fused.iter().copied()),
                FEEDBACK_DOCUMENTS,
            )
            .into_iter()
            .map(|(i, _)| i)
            .collect();
            let found = LexicalIndex::feedback_terms(
                &parts,
                &first,
                &query_terms,
                FEEDBACK_TERMS,
                FEEDBACK_DF_SHARE,
            );
            if !found.is_empty() {
                let more = LexicalIndex::weighted_scores_over(&parts, found.iter().copied());
                for (score, &i) in lexical.iter_mut().zip(&candidates) {
                    *score += FEEDBACK_WEIGHT * more[i as usize];
                }
                fused = search.retrieval.fuse(&lexical, &cosine);
            }
        }
        let ids = best(
            candidates.iter().map(|&i| self.id(i as usize)).zip(fused),
            top,
        )
        .into_iter()
        .map(|(id, _)| id)
        .collect();
        Ranked {
            items: ids,
            incomparable,
        }
    }
}

/// A collection's copy: its version is `(largest internal id, largest revision, deletion
/// revision)`. Ids are never reused, every new vector (and so every new content) takes a new
/// revision and every deletion draws one, so an unchanged version means unchanged vectors and
/// postings.
pub type CollectionCorpus = Corpus<(i64, i64, i64), ()>;
/// The cache of collections' copies.
pub type CollectionCache = CorpusCache<(i64, i64, i64), ()>;

/// One session of a user's, as a copy of the user's messages knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMark {
    /// Internal id.
    pub id: i64,
    pub public_id: String,
    /// Messages (held by the copy, or counted by the database).
    pub count: i64,
    /// Bumped when messages of the session get a vector after they were stored.
    pub vector_revision: i64,
}

/// What a copy of a user's messages knows of each besides its vector and words.
#[derive(Debug, Clone, Copy)]
pub struct MessageMeta {
    /// Position of its session in the copy's version.
    pub session: u32,
    pub is_user: bool,
}

/// What a copy of a user's messages was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagesVersion {
    /// The user's name, the speaker of the user's messages ([`Corpus::push_said`]): a question
    /// naming the user finds what they said, and a reply that addresses them by name does not
    /// stand out by that word alone.
    pub speaker: String,
    /// The user's sessions, in id order.
    pub sessions: Vec<SessionMark>,
}

/// A copy of a user's messages.
pub type MessageCorpus = Corpus<MessagesVersion, MessageMeta>;
/// The copies of users' messages, and the embedder that gives a message stored without a vector
/// its vector when a copy reads it (an embedder running in process; none with a remote one, whose
/// vectors a worker stores).
#[derive(Debug)]
pub struct UserCache {
    pub copies: CorpusCache<MessagesVersion, MessageMeta>,
    fill: std::sync::OnceLock<Arc<dyn honcho_domain::embed::Embedder>>,
}

impl UserCache {
    pub fn new(budget: usize, gauge: &'static str) -> Self {
        UserCache {
            copies: CorpusCache::new(budget, gauge),
            fill: std::sync::OnceLock::new(),
        }
    }

    /// Sets the in-process embedder (once; later calls change nothing).
    pub fn fill_with(&self, embedder: Arc<dyn honcho_domain::embed::Embedder>) {
        let _ = self.fill.set(embedder);
    }

    /// The name of the user whose messages the held copy of `user_id` holds (maybe no longer the
    /// user's name; `None` when no copy is held).
    pub fn speaker(&self, user_id: &str) -> Option<String> {
        let copy = self.copies.get(user_id)?;
        Some(copy.version.speaker.clone())
    }

    /// The in-process embedder, if set.
    pub fn fill(&self) -> Option<&dyn honcho_domain::embed::Embedder> {
        self.fill.get().map(|e| e.as_ref())
    }
}

/// Copies of corpora of one kind, by key, within a memory budget (least recently used dropped).
#[derive(Debug)]
pub struct CorpusCache<V, M> {
    budget: usize,
    /// The gauge reporting the bytes held.
    gauge: &'static str,
    inner: Mutex<Inner<V, M>>,
    /// Held while a copy is read from the database, so concurrent misses load it once.
    loading: Mutex<()>,
}

#[derive(Debug)]
struct Inner<V, M> {
    entries: HashMap<String, (u64, Arc<Corpus<V, M>>)>,
    tick: u64,
    bytes: usize,
    /// Copies outside the budget (larger than all of it, or dropped for others), for as long as a
    /// query still uses them: the next query of the same corpus shares (and extends) the copy
    /// instead of reading another, so a corpus costs one copy while it is searched, however many
    /// queries search it at once.
    in_use: HashMap<String, std::sync::Weak<Corpus<V, M>>>,
    /// Moves with every `clear`: a copy read before a clear is not kept after it.
    epoch: u64,
}

impl<V, M> CorpusCache<V, M> {
    /// A cache holding at most `budget` bytes (0 disables it), reported as `gauge`.
    pub fn new(budget: usize, gauge: &'static str) -> Self {
        CorpusCache {
            budget,
            gauge,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                tick: 0,
                bytes: 0,
                in_use: HashMap::new(),
                epoch: 0,
            }),
            loading: Mutex::new(()),
        }
    }

    fn get(&self, key: &str) -> Option<Arc<Corpus<V, M>>> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(entry) = inner.entries.get_mut(key) {
            entry.0 = tick;
            return Some(entry.1.clone());
        }
        let shared = inner.in_use.get(key)?.upgrade();
        if shared.is_none() {
            inner.in_use.remove(key);
        }
        shared
    }

    fn epoch(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).epoch
    }

    /// Keeps `corpus` as the copy of `key`, unless the cache was cleared since `epoch` (the copy
    /// may hold what was erased meanwhile: the query that read it uses it, nobody else).
    fn put(&self, key: &str, corpus: Arc<Corpus<V, M>>, epoch: u64) {
        let size = corpus.bytes();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.epoch != epoch {
            return;
        }
        if size > self.budget {
            if let Some((_, gone)) = inner.entries.remove(key) {
                inner.bytes -= gone.bytes();
            }
            // Forget copies no query uses any more (their memory is already freed).
            inner.in_use.retain(|_, copy| copy.strong_count() > 0);
            inner
                .in_use
                .insert(key.to_string(), Arc::downgrade(&corpus));
            metrics::gauge!(self.gauge).set(inner.bytes as f64);
            return;
        }
        inner.in_use.remove(key);
        inner.tick += 1;
        let tick = inner.tick;
        if let Some((_, old)) = inner.entries.insert(key.to_string(), (tick, corpus)) {
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
                inner.in_use.insert(oldest, Arc::downgrade(&gone));
            }
        }
        inner.in_use.retain(|_, copy| copy.strong_count() > 0);
        metrics::gauge!(self.gauge).set(inner.bytes as f64);
    }

    /// Forgets the copy of `key` (its corpus is gone).
    pub fn forget(&self, key: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, gone)) = inner.entries.remove(key) {
            inner.bytes -= gone.bytes();
        }
        inner.in_use.remove(key);
        metrics::gauge!(self.gauge).set(inner.bytes as f64);
    }

    /// Drops every copy (data was erased: no copy may keep any of it). Queries using a copy keep it
    /// until they are done; copies read before this call are not kept.
    pub fn clear(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.entries.clear();
        inner.in_use.clear();
        inner.bytes = 0;
        inner.epoch += 1;
        metrics::gauge!(self.gauge).set(0.0);
    }

    /// The copy of `key` that `current` accepts: the cached one, or else the one `refresh` makes
    /// from the stale copy (if any): loaded once however many queries miss at the same time.
    pub fn current<E>(
        &self,
        key: &str,
        current: impl Fn(&Corpus<V, M>) -> bool,
        refresh: impl FnOnce(Option<&Corpus<V, M>>) -> Result<Corpus<V, M>, E>,
    ) -> Result<Arc<Corpus<V, M>>, E> {
        let cached = || self.get(key).filter(|c| current(c));
        if let Some(copy) = cached() {
            metrics::counter!("honcho_vector_cache_hits_total").increment(1);
            return Ok(copy);
        }
        metrics::counter!("honcho_vector_cache_misses_total").increment(1);
        let _loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(copy) = cached() {
            return Ok(copy);
        }
        let epoch = self.epoch();
        let stale = self.get(key);
        let copy = Arc::new(refresh(stale.as_deref())?);
        self.put(key, copy.clone(), epoch);
        Ok(copy)
    }
}
