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
//! The token vectors (29,528 × 256) are compiled in as int8 with one `f32` scale per token, made
//! from the model file's `f32` vectors at build time (`build.rs`: 7.5 MB instead of 30; a text's
//! vector differs from the `f32` model's by a cosine distance of about 1e-4). They are read in
//! place from the binary, never copied: only the pages of the tokens a process meets become
//! resident, and the kernel may drop them again. The tokenizer is decoded once per process, on
//! first use, and shared.

use std::sync::OnceLock;

use honcho_domain::embed::{EmbedError, Embedder};
use model2vec_rs::model::StaticModel;

/// The identifier stored with vectors of this embedder.
pub const ID: &str = "model2vec:potion-base-8M";

/// Length of every vector.
pub const DIMENSIONS: usize = 256;

/// Bytes aligned for reading `f32` in place.
#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

/// The token vectors as int8, row after row (`build.rs`).
static VECTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/potion-base-8M.i8"));
/// One `f32` scale per row, little-endian, aligned for reading in place.
static SCALES: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    env!("OUT_DIR"),
    "/potion-base-8M.scales"
)));
// `ROWS` and `COLS` of the vectors.
include!(concat!(env!("OUT_DIR"), "/potion-base-8M.shape.rs"));
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

/// The model, shared by every embedder value of the process: the tokenizer decoded, the vectors
/// borrowed from the binary.
fn model() -> &'static StaticModel {
    static MODEL_ONCE: OnceLock<StaticModel> = OnceLock::new();
    MODEL_ONCE.get_or_init(|| {
        // The bytes are compiled in and checked by this crate's tests: failing here is a build
        // defect, not a runtime condition.
        let (vectors, scales) = vectors().expect("the shipped potion-base-8M model decodes");
        let tokenizer = tokenizers::Tokenizer::from_bytes(TOKENIZER)
            .expect("the shipped potion-base-8M tokenizer decodes");
        // Without a token mapping, model2vec-rs scales each token's row by its weight: the row's
        // scale here.
        StaticModel::from_borrowed_i8(
            tokenizer,
            vectors,
            ROWS,
            COLS,
            normalize(),
            Some(scales),
            None,
        )
        .expect("the shipped potion-base-8M model decodes")
    })
}

/// Whether the model's vectors are scaled to unit length (`config.json`).
fn normalize() -> bool {
    serde_json::from_slice::<serde_json::Value>(CONFIG)
        .ok()
        .and_then(|c| c.get("normalize").and_then(serde_json::Value::as_bool))
        .unwrap_or(true)
}

/// The int8 vectors and their rows' scales, in place.
fn vectors() -> Result<(&'static [i8], &'static [f32]), String> {
    if !cfg!(target_endian = "little") {
        return Err("the scales are stored little-endian; this machine is not".into());
    }
    let vectors: &'static [i8] = bytemuck::cast_slice(VECTORS);
    let scales: &'static [f32] =
        bytemuck::try_cast_slice(&SCALES.0).map_err(|e| format!("the scales: {e}"))?;
    if vectors.len() != ROWS * COLS || scales.len() != ROWS {
        return Err(format!(
            "{} values and {} scales for {ROWS} × {COLS}",
            vectors.len(),
            scales.len()
        ));
    }
    Ok((vectors, scales))
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

    /// The int8 vectors compiled in give what model2vec-rs's own decoding of the model file (its
    /// `f32` vectors) gives, to a cosine distance far below anything a ranking tells apart, on every
    /// text of the retrieval set: vectors stored by either are comparable (the same id).
    #[test]
    fn int8_vectors_embed_as_the_f32_model_does() {
        let file = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/assets/potion-base-8M/model.safetensors"
        ))
        .unwrap();
        let exact = StaticModel::from_bytes(TOKENIZER, &file, CONFIG, Some(true)).expect("decodes");
        let set: serde_json::Value =
            serde_json::from_str(include_str!("../../../xtask/eval/retrieval.json")).unwrap();
        let mut texts = Vec::new();
        collect_strings(&set, &mut texts);
        assert!(texts.len() > 1000, "{} texts", texts.len());
        texts.extend(
            [
                "",
                "   ",
                "Ünïcödé naïve café",
                "a",
                "x".repeat(5000).as_str(),
            ]
            .map(String::from),
        );
        let mut worst = 0f32;
        for text in &texts {
            let expected = exact
                .encode_with_args(std::slice::from_ref(text), None, 1)
                .pop()
                .unwrap_or_default();
            let got = PotionEmbedder::new().embed_one(text);
            if expected.iter().all(|x| *x == 0.0) {
                assert!(got.iter().all(|x| *x == 0.0), "{text}");
                continue;
            }
            worst = worst.max(cosine_distance(&expected, &got));
        }
        eprintln!("largest cosine distance to the f32 model: {worst}");
        assert!(worst < 1e-3, "cosine distance up to {worst}");
    }

    fn collect_strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|v| collect_strings(v, out)),
            serde_json::Value::Object(o) => o.values().for_each(|v| collect_strings(v, out)),
            _ => {}
        }
    }

    /// Pins the model and its pooling (the int8 vectors: within 1e-4 per component of the `f32`
    /// model's): if this fails beyond such rounding, stored vectors of this id would no longer
    /// match new ones, so the id must change.
    #[test]
    fn vectors_are_stable() {
        let v = PotionEmbedder::new().embed_one("The user adopted a beagle named Biscuit.");
        let head: Vec<i32> = v[..4].iter().map(|x| (x * 1e4).round() as i32).collect();
        assert_eq!(
            head,
            vec![739, -2269, -781, -1372],
            "the potion-base-8M vectors changed"
        );
    }
}
