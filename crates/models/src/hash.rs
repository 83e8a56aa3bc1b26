//! The local embedder: signed feature hashing of words, word pairs and character trigrams.
//!
//! It is the zero-configuration default: deterministic, in process, no model file and no network,
//! tens of microseconds per paragraph. It measures *lexical* overlap (shared words, shared word pairs,
//! shared word pieces), which is enough to find near-duplicate facts and documents that use the
//! query's words; see the crate documentation for what it cannot do.
//!
//! # Algorithm (`local-hash-v1`)
//!
//! 1. **Words**: the text is split into maximal runs of Unicode alphanumeric characters
//!    ([`char::is_alphanumeric`]); everything else separates words and is dropped. Each character
//!    is lower-cased with Unicode rules ([`char::to_lowercase`]).
//! 2. **Features**, each with a weight, added to the vector:
//!    - every word (unigram), weight [`UNIGRAM_WEIGHT`];
//!    - every pair of adjacent words (bigram), weight [`BIGRAM_WEIGHT`];
//!    - every character trigram of each word padded as `<word>`, with weight
//!      `TRIGRAM_WEIGHT / sqrt(n)` ([`TRIGRAM_WEIGHT`]) where `n` is the number of trigrams of that
//!      word, so that a word contributes the same trigram energy however long it is.
//! 3. **Hashing**: a feature is hashed with 64-bit FNV-1a over a one-byte namespace (`w`, `b` or
//!    `c`) followed by the feature's UTF-8 bytes (the two words of a bigram are separated by a
//!    space), then mixed with MurmurHash3's 64-bit finaliser (`fmix64`). The low bits modulo
//!    [`DIMENSIONS`] pick the component; the top bit picks the sign (+ or -), so colliding features
//!    cancel rather than pile up.
//! 4. **Normalisation**: the vector is scaled to unit L2 length. A text without any word (empty,
//!    whitespace, punctuation only) gives the zero vector, which [`crate::vector::cosine_distance`]
//!    treats as distance 1 from everything.
//!
//! Every step is fixed here (no `std` hasher, whose output may change between Rust versions, and no
//! randomness), so a vector stored today is reproduced exactly by any later build. Changing any
//! step must change [`ID`].

use honcho_domain::embed::{EmbedError, Embedder};

/// The identifier stored with vectors of this embedder. Bump the version when the algorithm
/// changes.
pub const ID: &str = "local-hash-v1";

/// Length of every local vector. 512 components keep collisions rare for paragraph-sized texts
/// (a few hundred features) while a stored vector takes 2 KiB.
pub const DIMENSIONS: usize = 512;

/// Weight of a word.
pub const UNIGRAM_WEIGHT: f32 = 1.0;
/// Weight of a pair of adjacent words: sensitivity to phrases and order, a little less than the
/// words. At 0.8, `Alice is Bob's sister` and `Bob is Alice's sister` (same words) are at distance
/// ~0.19, beyond the deriver's near-duplicate threshold of 0.15.
pub const BIGRAM_WEIGHT: f32 = 0.8;
/// Total (L2) weight of the character trigrams of one word: shared stems and inflections
/// (`mountain`/`mountains`) count, but less than the whole word.
pub const TRIGRAM_WEIGHT: f32 = 0.7;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The deterministic, in-process default embedder (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct HashEmbedder;

impl HashEmbedder {
    /// The embedder; it has no state or configuration.
    pub fn new() -> Self {
        HashEmbedder
    }

    /// The vector of one text: [`DIMENSIONS`] components, unit length, or all zeros when the text
    /// has no word.
    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        let mut vector = vec![0.0f32; DIMENSIONS];
        let mut word = String::new();
        let mut previous = String::new();
        let mut padded = Vec::new();
        let mut chars = text.chars().peekable();
        while chars.peek().is_some() {
            word.clear();
            // Skip separators, then take one run of alphanumerics.
            while chars.next_if(|c| !c.is_alphanumeric()).is_some() {}
            while let Some(c) = chars.next_if(|c| c.is_alphanumeric()) {
                word.extend(c.to_lowercase());
            }
            if word.is_empty() {
                continue;
            }
            add(&mut vector, hash(b'w', &[word.as_bytes()]), UNIGRAM_WEIGHT);
            if !previous.is_empty() {
                let pair = hash(b'b', &[previous.as_bytes(), b" ", word.as_bytes()]);
                add(&mut vector, pair, BIGRAM_WEIGHT);
            }
            add_trigrams(&mut vector, &word, &mut padded);
            std::mem::swap(&mut previous, &mut word);
        }
        normalise(&mut vector);
        vector
    }
}

impl Embedder for HashEmbedder {
    fn id(&self) -> &str {
        ID
    }

    fn dimensions(&self) -> usize {
        DIMENSIONS
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|t| self.embed_one(t)).collect())
    }
}

/// Adds the trigrams of `<word>`; `padded` is a reusable buffer.
fn add_trigrams(vector: &mut [f32], word: &str, padded: &mut Vec<char>) {
    padded.clear();
    padded.push('<');
    padded.extend(word.chars());
    padded.push('>');
    let count = padded.len().saturating_sub(2);
    if count == 0 {
        return;
    }
    let weight = TRIGRAM_WEIGHT / (count as f32).sqrt();
    let mut buf = [0u8; 12];
    for gram in padded.windows(3) {
        let mut len = 0;
        for c in gram {
            len += c.encode_utf8(&mut buf[len..]).len();
        }
        add(vector, hash(b'c', &[&buf[..len]]), weight);
    }
}

/// FNV-1a 64 over the namespace byte and `parts`, then MurmurHash3's `fmix64` so that every bit of
/// the result depends on every input bit (FNV's low bits alone are weak).
fn hash(namespace: u8, parts: &[&[u8]]) -> u64 {
    let mut h = FNV_OFFSET;
    for &byte in std::iter::once(&namespace).chain(parts.iter().flat_map(|p| p.iter())) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

fn add(vector: &mut [f32], hash: u64, weight: f32) {
    // DIMENSIONS is far below u64::MAX, so the remainder always fits in usize.
    let index = (hash % DIMENSIONS as u64) as usize;
    if hash >> 63 == 0 {
        vector[index] += weight;
    } else {
        vector[index] -= weight;
    }
}

/// Scales to unit length; leaves a zero vector (no features, or features that cancelled exactly) as
/// is.
fn normalise(vector: &mut [f32]) {
    let norm = vector
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        for x in vector.iter_mut() {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::cosine_distance;

    fn embed(text: &str) -> Vec<f32> {
        HashEmbedder::new().embed_one(text)
    }

    fn distance(a: &str, b: &str) -> f32 {
        cosine_distance(&embed(a), &embed(b))
    }

    fn norm(v: &[f32]) -> f32 {
        v.iter().map(|x| x * x).sum::<f32>().sqrt()
    }

    const PARAGRAPH: &str =
        "The user mentioned that they moved to Lisbon last spring with their two \
        dogs, and that they have been learning Portuguese in the evenings. They work remotely as a \
        backend engineer for a logistics company, mostly writing Rust and some Python, and they \
        prefer async communication over meetings. On weekends they go hiking in Sintra or surfing \
        near Ericeira when the swell is good. They dislike coriander, are allergic to peanuts, and \
        try to cook vegetarian meals at least four days a week. Their sister lives in Porto and \
        they visit her every other month by train. They are saving money to buy a small flat with \
        a balcony, ideally close to a park where the dogs can run, and hope to do so within two \
        years. Recently they started reading science fiction again, especially Ursula K. Le Guin.";

    #[test]
    fn identifier_and_dimensions() {
        let e = HashEmbedder::new();
        assert_eq!(e.id(), "local-hash-v1");
        assert_eq!(e.dimensions(), DIMENSIONS);
        let vectors = e.embed(&["one", "", "two words"]).expect("infallible");
        assert_eq!(vectors.len(), 3);
        assert!(vectors.iter().all(|v| v.len() == DIMENSIONS));
        assert!(e.embed(&[]).expect("infallible").is_empty());
    }

    #[test]
    fn deterministic() {
        let a = embed(PARAGRAPH);
        let b = HashEmbedder.embed_one(PARAGRAPH);
        assert_eq!(
            a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }

    /// Pins the algorithm: if this fails, stored `local-hash-v1` vectors would no longer match new
    /// ones, so the change needs a new [`ID`] (and these values updated).
    #[test]
    fn stable_across_builds() {
        assert_eq!(hash(b'w', &[b"hello"]), hash(b'w', &[b"hel", b"lo"]));
        let v = embed("Hello, world!");
        let nonzero: Vec<(usize, f32)> = v
            .iter()
            .enumerate()
            .filter(|(_, x)| **x != 0.0)
            .map(|(i, x)| (i, *x))
            .collect();
        // 2 words + 1 bigram + 5 + 5 trigrams (`<he hel ell llo lo>`, `<wo ...`) unless they
        // collide.
        assert!(nonzero.len() <= 13 && nonzero.len() >= 10, "{nonzero:?}");
        let snapshot: Vec<String> = nonzero
            .iter()
            .take(4)
            .map(|(i, x)| format!("{i}:{x:.6}"))
            .collect();
        assert_eq!(
            snapshot, EXPECTED_HELLO_WORLD,
            "the local-hash-v1 algorithm changed"
        );
        // Every bit of a longer vector (the arithmetic is exact IEEE, without platform-dependent
        // steps).
        let digest = hash(b'x', &[&crate::vector::encode(&embed(PARAGRAPH))]);
        assert_eq!(
            format!("{digest:016x}"),
            EXPECTED_PARAGRAPH_DIGEST,
            "the local-hash-v1 algorithm changed"
        );
    }

    /// The first four non-zero components of `embed("Hello, world!")`.
    const EXPECTED_HELLO_WORLD: [&str; 4] =
        ["11:0.164535", "30:0.164535", "59:-0.420471", "65:-0.164535"];

    /// `hash(b'x', encode(embed(PARAGRAPH)))`.
    const EXPECTED_PARAGRAPH_DIGEST: &str = "b73295b04952e141";

    #[test]
    fn fnv1a_reference_values() {
        // Published FNV-1a 64 test vectors (before the finaliser).
        let fnv = |bytes: &[u8]| {
            bytes.iter().fold(FNV_OFFSET, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
            })
        };
        assert_eq!(fnv(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn unit_length_or_zero() {
        for text in [
            PARAGRAPH,
            "a",
            "Hello, world!",
            "ÉCOLE école",
            "数据库 データ",
        ] {
            let n = norm(&embed(text));
            assert!((n - 1.0).abs() < 1e-5, "{text:?}: {n}");
        }
        for text in ["", "   ", "?!... --- ,;:", "\n\t"] {
            assert!(embed(text).iter().all(|&x| x == 0.0), "{text:?}");
            assert_eq!(distance(text, "anything"), 1.0);
        }
    }

    #[test]
    fn case_and_punctuation_insensitive() {
        assert!(distance("Hello, World!", "hello world") < 1e-6);
        assert!(distance("ÉCOLE", "école") < 1e-6);
        assert!(distance("STRASSE", "strasse") < 1e-6);
    }

    #[test]
    fn similar_texts_are_closer_than_unrelated_ones() {
        let base = "The user loves hiking in the mountains on weekends";
        let near = "The user enjoys hiking in mountains at the weekend";
        let far = "Quarterly revenue grew because of the new pricing model";
        assert!(distance(base, near) < distance(base, far));
        assert!(distance(base, near) < 0.6, "{}", distance(base, near));
        assert!(distance(base, far) > 0.7, "{}", distance(base, far));
        // Near-duplicate facts fall within the deriver's 0.15 threshold; different facts do not.
        assert!(distance("The user lives in Lisbon.", "the user lives in Lisbon") < 0.15);
        assert!(distance("User lives in Lisbon", "User lives in Porto") > 0.15);
        // Inflections share trigrams.
        assert!(distance("mountain", "mountains") < 0.8);
        assert!(distance("mountain", "lake") > 0.95);
    }

    #[test]
    fn word_order_matters_only_through_bigrams() {
        let d = distance("dog bites man", "man bites dog");
        assert!(d > 0.15 && d < 0.5, "{d}");
        let d = distance("Alice is Bob's sister", "Bob is Alice's sister");
        assert!(d > 0.15 && d < 0.5, "{d}");
    }

    #[test]
    fn fast_enough() {
        let e = HashEmbedder::new();
        let paragraph = &PARAGRAPH[..PARAGRAPH.len().min(1000)];
        let start = std::time::Instant::now();
        for _ in 0..1000 {
            std::hint::black_box(e.embed_one(std::hint::black_box(paragraph)));
        }
        let elapsed = start.elapsed();
        // Optimised builds take a few tens of milliseconds; leave room for debug builds and busy
        // CI.
        let limit = if cfg!(debug_assertions) { 20.0 } else { 1.0 };
        assert!(elapsed.as_secs_f64() < limit, "{elapsed:?}");
    }
}
