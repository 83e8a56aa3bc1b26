//! Helpers for storing and searching embedding vectors.
//!
//! Vectors are stored as raw bytes ([`encode`]/[`decode`]: little-endian `f32`, 4 bytes per
//! component, no header), so both database engines keep them in a plain `BLOB`/`bytea` column and
//! the byte layout does not depend on the machine. Search is exact (brute force):
//! [`cosine_distance`] against every candidate, keeping the nearest with [`top_k`], which needs
//! memory for `k` entries only.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// The bytes of a vector: each component as a little-endian `f32`, in order.
pub fn encode(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The vector that [`encode`] wrote, or `None` when the length is not a multiple of 4 (the bytes
/// are not an encoded vector). An empty slice decodes to an empty vector.
pub fn decode(bytes: &[u8]) -> Option<Vec<f32>> {
    let components = bytes.chunks_exact(4);
    if !components.remainder().is_empty() {
        return None;
    }
    Some(
        components
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// `1 - cos(a, b)`, in `[0, 2]`: 0 for vectors pointing the same way, 1 for orthogonal ones, 2 for
/// opposite ones.
///
/// Vectors that cannot be compared give 1.0 (as far as an unrelated vector): a zero vector (which
/// is what the local embedder returns for a text without words), vectors of different lengths, and
/// vectors with non-finite components. Sums are accumulated in `f64`, so the result does not depend
/// on the magnitude of the inputs beyond `f32` rounding.
pub fn cosine_distance(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 1.0;
    }
    let (mut dot, mut norm_a, mut norm_b) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        norm_a += x * x;
        norm_b += y * y;
    }
    if norm_a == 0.0 || norm_b == 0.0 {
        return 1.0;
    }
    let similarity = dot / (norm_a.sqrt() * norm_b.sqrt());
    if !similarity.is_finite() {
        return 1.0;
    }
    // Rounding can push the similarity of (anti-)parallel vectors just beyond ±1.
    (1.0 - similarity.clamp(-1.0, 1.0)) as f32
}

/// `v` scaled to unit length (a zero vector stays zero: it is at distance 1 from everything), so
/// that cosine distance is one minus a dot product.
pub fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let norm = dot(&v, &v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Dot product in `f32` with eight independent sums, which the compiler turns into vector
/// instructions: the fast path for vectors already [`normalized`].
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            sums[i] += x[i] * y[i];
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// Appends `v` to `out` as `i8` components, returning the scale that restores them (component `j`
/// is about `scale * out[j]`): a quarter of the memory of `f32`, as the shipped model holds its own
/// vectors. The scale is the largest magnitude over 127, so each component is off by at most half
/// a step (`scale / 2`); a zero vector stays zero (scale 0).
pub fn quantize(v: &[f32], out: &mut Vec<i8>) -> f32 {
    let largest = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if largest == 0.0 || !largest.is_finite() {
        out.extend(std::iter::repeat_n(0, v.len()));
        return 0.0;
    }
    let scale = largest / 127.0;
    out.extend(
        v.iter()
            .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8),
    );
    scale
}

/// A query vector made ready to score many vectors [`quantize`]d to `i8`: its components as
/// `i16`, so that a score is an integer dot product (which the compiler turns into multiply-add
/// vector instructions, about twice as fast as converting each `i8` to `f32`) times the two
/// scales. The query keeps four to five significant digits, the stored vectors two.
#[derive(Debug, Clone)]
pub struct QuantizedQuery {
    components: Vec<i16>,
    scale: f32,
}

/// Lanes of the integer dot product: independent sums the compiler keeps in vector registers.
const LANES: usize = 16;

impl QuantizedQuery {
    /// `v` in `i16` steps of `scale`. The largest step is chosen so that no dot product with an
    /// `i8` vector of `v`'s length can leave `i32` (at most 32,767 steps; fewer past 516
    /// dimensions). A vector that is zero or has a component that is not finite scores 0 against
    /// everything.
    pub fn new(v: &[f32]) -> QuantizedQuery {
        let steps = (i32::MAX as usize / (127 * v.len().max(1))).clamp(1, i16::MAX as usize) as f32;
        let largest = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        if largest == 0.0 || v.iter().any(|x| !x.is_finite()) {
            return QuantizedQuery {
                components: vec![0; v.len()],
                scale: 0.0,
            };
        }
        let scale = largest / steps;
        QuantizedQuery {
            components: v
                .iter()
                .map(|x| (x / scale).round().clamp(-steps, steps) as i16)
                .collect(),
            scale,
        }
    }

    /// The dot product with the vector [`quantize`] made (its components `b` and `scale`).
    pub fn dot(&self, b: &[i8], scale: f32) -> f32 {
        let mut sums = [0i32; LANES];
        let (ca, cb) = (self.components.chunks_exact(LANES), b.chunks_exact(LANES));
        let tail: i32 = ca
            .remainder()
            .iter()
            .zip(cb.remainder())
            .map(|(&x, &y)| i32::from(x) * i32::from(y))
            .sum();
        for (x, y) in ca.zip(cb) {
            for i in 0..LANES {
                sums[i] += i32::from(x[i]) * i32::from(y[i]);
            }
        }
        (sums.iter().sum::<i32>() + tail) as f32 * self.scale * scale
    }
}

/// The `k` items with the smallest distance, nearest first; among equal distances the item that
/// came first in `items` comes first (and wins the last place).
///
/// Memory is bounded by `k` (a max-heap of the best items so far), so `items` may be a lazy scan
/// over every stored vector. A NaN distance counts as `+inf` (farther than any finite distance),
/// and `-0.0` equals `0.0`.
pub fn top_k<T>(items: impl IntoIterator<Item = (T, f32)>, k: usize) -> Vec<(T, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Entry<T>> = BinaryHeap::with_capacity(k.saturating_add(1).min(1024));
    for (seq, (item, distance)) in items.into_iter().enumerate() {
        let entry = Entry {
            key: sort_key(distance),
            seq,
            distance,
            item,
        };
        if heap.len() < k {
            heap.push(entry);
        } else if let Some(mut worst) = heap.peek_mut() {
            // A later item never displaces an earlier one at the same distance: `entry` has a
            // larger `seq` than everything in the heap, so equality of keys means
            // `entry` is worse.
            if entry < *worst {
                *worst = entry;
            }
        }
    }
    heap.into_sorted_vec()
        .into_iter()
        .map(|e| (e.item, e.distance))
        .collect()
}

/// Maps a distance onto a key for `total_cmp`: NaN (of either sign) onto +inf, `-0.0` onto `0.0`.
fn sort_key(distance: f32) -> f32 {
    if distance.is_nan() {
        f32::INFINITY
    } else {
        // -0.0 + 0.0 == +0.0, so `total_cmp` does not order the two zeros apart.
        distance + 0.0
    }
}

/// A candidate in [`top_k`]'s heap, ordered by (distance, arrival); the item itself is not
/// compared.
struct Entry<T> {
    key: f32,
    seq: usize,
    distance: f32,
    item: T,
}

impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key
            .total_cmp(&other.key)
            .then(self.seq.cmp(&other.seq))
    }
}

impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<T> Eq for Entry<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quantized_unit_vector_keeps_its_dot_products_within_a_step() {
        let a = normalized(
            (0..256)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect(),
        );
        let b = normalized(
            (0..256)
                .map(|i| ((i * 53 % 89) as f32 - 44.0) / 3.0)
                .collect(),
        );
        let mut q = Vec::new();
        let scale = quantize(&b, &mut q);
        assert_eq!(q.len(), 256);
        assert!(q.iter().any(|&x| x == 127 || x == -127));
        let exact = dot(&a, &b);
        let approx = QuantizedQuery::new(&a).dot(&q, scale);
        assert!((exact - approx).abs() < 2e-3, "{exact} vs {approx}");
        let (mut zero, mut odd) = (Vec::new(), Vec::new());
        assert_eq!(quantize(&[0.0; 9], &mut zero), 0.0);
        assert_eq!(zero, vec![0i8; 9]);
        // Lengths that are not a multiple of the lanes take the tail.
        let scale = quantize(&[0.5, -0.25, 1.0], &mut odd);
        assert_eq!(odd, vec![64, -32, 127]);
        let ones = QuantizedQuery::new(&[1.0, 1.0, 1.0]);
        assert!((ones.dot(&odd, scale) - 1.25).abs() < 1e-2);
        assert_eq!(QuantizedQuery::new(&[0.0; 3]).dot(&odd, scale), 0.0);
        assert_eq!(QuantizedQuery::new(&[f32::NAN, 1.0]).dot(&[1, 1], 1.0), 0.0);
    }

    #[test]
    fn an_integer_dot_product_cannot_overflow_at_any_length() {
        for len in [1, 3, 16, 256, 516, 517, 1536, 3072, 100_000] {
            let q = QuantizedQuery::new(&vec![1.0; len]);
            let b = vec![-127i8; len];
            let got = q.dot(&b, 1.0 / 127.0);
            assert!(
                (got + len as f32).abs() <= len as f32 * 1e-3,
                "{len}: {got}"
            );
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let v = vec![0.0, -0.0, 1.5, -2.25, f32::MIN_POSITIVE, f32::MAX, 1e-30];
        let bytes = encode(&v);
        assert_eq!(bytes.len(), v.len() * 4);
        let back = decode(&bytes).expect("a multiple of 4");
        assert_eq!(
            back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn encoding_is_little_endian() {
        assert_eq!(encode(&[1.0]), vec![0x00, 0x00, 0x80, 0x3f]);
        assert_eq!(decode(&[0x00, 0x00, 0x80, 0x3f]), Some(vec![1.0]));
    }

    #[test]
    fn decode_rejects_partial_components() {
        assert_eq!(decode(&[]), Some(vec![]));
        assert_eq!(decode(&[1, 2, 3]), None);
        assert_eq!(decode(&[0, 0, 0, 0, 1]), None);
    }

    #[test]
    fn cosine_distance_of_known_vectors() {
        let close = |x: f32, y: f32| (x - y).abs() < 1e-6;
        assert!(close(cosine_distance(&[1.0, 0.0], &[2.0, 0.0]), 0.0));
        assert!(close(cosine_distance(&[1.0, 0.0], &[0.0, 3.0]), 1.0));
        assert!(close(cosine_distance(&[1.0, 0.0], &[-1.0, 0.0]), 2.0));
        assert!(close(
            cosine_distance(&[1.0, 1.0], &[1.0, 0.0]),
            1.0 - 0.5f32.sqrt()
        ));
        let v = [0.1f32, 0.2, 0.3, 0.4];
        let d = cosine_distance(&v, &v);
        assert!((0.0..1e-6).contains(&d), "{d}");
    }

    #[test]
    fn cosine_distance_of_incomparable_vectors_is_one() {
        assert_eq!(cosine_distance(&[0.0, 0.0], &[1.0, 0.0]), 1.0);
        assert_eq!(cosine_distance(&[0.0, 0.0], &[0.0, 0.0]), 1.0);
        assert_eq!(cosine_distance(&[], &[]), 1.0);
        assert_eq!(cosine_distance(&[1.0], &[1.0, 0.0]), 1.0);
        assert_eq!(cosine_distance(&[f32::NAN, 1.0], &[1.0, 1.0]), 1.0);
        assert_eq!(cosine_distance(&[f32::INFINITY, 1.0], &[1.0, 1.0]), 1.0);
    }

    #[test]
    fn top_k_keeps_the_nearest_in_order() {
        let items = [("a", 0.5), ("b", 0.1), ("c", 0.9), ("d", 0.3), ("e", 0.2)];
        assert_eq!(top_k(items, 3), vec![("b", 0.1), ("e", 0.2), ("d", 0.3)]);
        assert_eq!(top_k(items, 0), vec![]);
        assert_eq!(top_k(items, 10).len(), 5);
        assert_eq!(top_k(Vec::<(u8, f32)>::new(), 3), vec![]);
    }

    #[test]
    fn top_k_breaks_ties_by_insertion_order() {
        let items = [(1, 0.5), (2, 0.2), (3, 0.5), (4, 0.2), (5, 0.5)];
        assert_eq!(top_k(items, 3), vec![(2, 0.2), (4, 0.2), (1, 0.5)]);
        assert_eq!(
            top_k(items, 4),
            vec![(2, 0.2), (4, 0.2), (1, 0.5), (3, 0.5)]
        );
        // Zeros of both signs are one distance.
        assert_eq!(
            top_k([(1, 0.0), (2, -0.0), (3, 0.0)], 2)
                .iter()
                .map(|p| p.0)
                .collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn top_k_puts_nan_last() {
        let items = [(1, f32::NAN), (2, f32::INFINITY), (3, 0.4), (4, -f32::NAN)];
        let ids: Vec<i32> = top_k(items, 4).into_iter().map(|p| p.0).collect();
        assert_eq!(ids, vec![3, 1, 2, 4]);
        let ids: Vec<i32> = top_k(items, 1).into_iter().map(|p| p.0).collect();
        assert_eq!(ids, vec![3]);
    }
}
