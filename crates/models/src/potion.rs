//! The shipped semantic embedder: potion-base-8M, a static embedding model (Minish Lab, MIT; the
//! files and their licence are in `crates/models/assets/potion-base-8M`), run in process by
//! `model2vec-rs` from bytes compiled into the binary. No network at build or run time.
//!
//! A text is split into WordPiece tokens (lower-cased, accents stripped, as BERT's uncased
//! tokenizer does), each token has a learnt 256-dimensional vector (29,528 of them, already
//! weighted by how telling the token is), and the text's vector is their mean scaled to unit
//! length. Unlike `local-hash-v1` it relates words of similar meaning (`cello` / `instrument`,
//! `puppy` / `dog`); like any bag of tokens, it ignores word order. The whole text is embedded
//! (no truncation). A text with no known token (empty, punctuation only) gives the zero vector,
//! at distance 1 from everything.
//!
//! The model is decoded once per process, on first use (about 30 MB of `f32`), and shared.

use std::sync::OnceLock;

use honcho_domain::embed::{EmbedError, Embedder};
use model2vec_rs::model::StaticModel;

/// The identifier stored with vectors of this embedder.
pub const ID: &str = "model2vec:potion-base-8M";

/// Length of every vector.
pub const DIMENSIONS: usize = 256;

const MODEL: &[u8] = include_bytes!("../assets/potion-base-8M/model.safetensors");
const TOKENIZER: &[u8] = include_bytes!("../assets/potion-base-8M/tokenizer.json");
const CONFIG: &[u8] = include_bytes!("../assets/potion-base-8M/config.json");

/// The shipped static embedder (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct PotionEmbedder;

impl PotionEmbedder {
    /// The embedder; the model is decoded on first use.
    pub fn new() -> Self {
        PotionEmbedder
    }

    /// Decodes the model now rather than on the first text (start-up calls this, so the first
    /// request does not pay for it).
    pub fn load(&self) {
        model();
    }

    /// The vector of one text: [`DIMENSIONS`] components, unit length or all zeros.
    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        // A text without tokens pools nothing and comes back as the zero vector.
        model()
            .encode_with_args(&[text.to_string()], None, 1)
            .pop()
            .unwrap_or_default()
    }
}

/// The decoded model, shared by every embedder value of the process.
fn model() -> &'static StaticModel {
    static MODEL_ONCE: OnceLock<StaticModel> = OnceLock::new();
    MODEL_ONCE.get_or_init(|| {
        // The bytes are compiled in and checked by this crate's tests: failing here is a build
        // defect, not a runtime condition.
        StaticModel::from_bytes(TOKENIZER, MODEL, CONFIG, Some(true))
            .expect("the shipped potion-base-8M model decodes")
    })
}

impl Embedder for PotionEmbedder {
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

#[cfg(test)]
mod tests {
    use super::*;
    use honcho_domain::vector::cosine_distance;

    fn distance(a: &str, b: &str) -> f32 {
        let e = PotionEmbedder::new();
        cosine_distance(&e.embed_one(a), &e.embed_one(b))
    }

    #[test]
    fn vectors_are_unit_length_and_deterministic() {
        let e = PotionEmbedder::new();
        let v = e.embed_one("Maya tuned her old cello before the concert.");
        assert_eq!(v.len(), DIMENSIONS);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        assert_eq!(
            v,
            e.embed_one("Maya tuned her old cello before the concert.")
        );
        assert_eq!(e.embed(&["a", "b"]).expect("embeds").len(), 2);
    }

    #[test]
    fn related_meanings_are_nearer_than_unrelated_ones() {
        let q = "What musical instrument does she play?";
        let related = distance(q, "I finally tuned my old cello last night");
        let unrelated = distance(q, "The mortgage paperwork for the flat is done");
        assert!(related < unrelated, "{related} vs {unrelated}");
        assert!(
            distance("my puppy chewed the slippers", "the dog ate my shoes")
                < distance(
                    "my puppy chewed the slippers",
                    "quarterly tax filing deadline"
                )
        );
    }

    #[test]
    fn texts_without_tokens_give_the_zero_vector() {
        let e = PotionEmbedder::new();
        for text in ["", "   ", "\u{0}"] {
            let v = e.embed_one(text);
            assert_eq!(v.len(), DIMENSIONS);
            assert!(v.iter().all(|x| *x == 0.0), "{text:?}: {v:?}");
        }
        // Any script: no panic, a vector of the right length.
        for text in [
            "日本語のテキスト",
            "Ελληνικά κείμενα",
            "emoji 🎻🐶",
            "ÅÄÖ åäö",
        ] {
            assert_eq!(e.embed_one(text).len(), DIMENSIONS);
        }
    }

    /// Pins the model and its pooling: if this fails, stored vectors of this id would no longer
    /// match new ones, so the id must change.
    #[test]
    fn vectors_are_stable() {
        let v = PotionEmbedder::new().embed_one("The user adopted a beagle named Biscuit.");
        let head: Vec<i32> = v[..4].iter().map(|x| (x * 1e4).round() as i32).collect();
        assert_eq!(
            head,
            vec![739, -2272, -783, -1370],
            "the potion-base-8M vectors changed"
        );
    }
}
