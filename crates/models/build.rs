//! Converts the shipped model's `f32` token vectors to int8 at build time (from the file in
//! `assets/`; nothing is downloaded): each row becomes 256 signed bytes and one `f32` scale (its
//! largest magnitude over 127), as model2vec's int8 quantisation does. The binary carries 7.5 MB of
//! vectors instead of 30, and a process that meets many tokens keeps a quarter of the pages.

use std::io::Write;
use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let source = Path::new(&manifest).join("assets/potion-base-8M/model.safetensors");
    println!("cargo:rerun-if-changed={}", source.display());
    println!("cargo:rerun-if-changed=build.rs");
    let bytes = std::fs::read(&source).expect("the shipped model file is readable");
    let (values, rows, cols) = vectors(&bytes);
    let mut quantised = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(rows * 4);
    for row in values.chunks_exact(cols) {
        let max = row.iter().fold(0.0_f32, |m, &v| m.max(v.abs()));
        let scale = max / 127.0;
        for &v in row {
            let q = if scale > 0.0 {
                (v / scale).round().clamp(-127.0, 127.0) as i8
            } else {
                0
            };
            quantised.push(q as u8);
        }
        scales.extend_from_slice(&scale.to_le_bytes());
    }
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let out = Path::new(&out);
    std::fs::write(out.join("potion-base-8M.i8"), &quantised).expect("writes the vectors");
    std::fs::write(out.join("potion-base-8M.scales"), &scales).expect("writes the scales");
    let mut shape = std::fs::File::create(out.join("potion-base-8M.shape.rs")).expect("shape");
    writeln!(
        shape,
        "const ROWS: usize = {rows};\nconst COLS: usize = {cols};"
    )
    .expect("shape");
}

/// The `embeddings` tensor of a safetensors file: its values, rows and columns.
fn vectors(bytes: &[u8]) -> (Vec<f32>, usize, usize) {
    let len = u64::from_le_bytes(bytes[..8].try_into().expect("a header length")) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..8 + len]).expect("a JSON header");
    let tensor = &header["embeddings"];
    assert_eq!(tensor["dtype"], "F32", "the shipped vectors are f32");
    let n = |v: &serde_json::Value, i: usize| v[i].as_u64().expect("a number") as usize;
    let (rows, cols) = (n(&tensor["shape"], 0), n(&tensor["shape"], 1));
    let (start, end) = (n(&tensor["data_offsets"], 0), n(&tensor["data_offsets"], 1));
    let values: Vec<f32> = bytes[8 + len + start..8 + len + end]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("four bytes")))
        .collect();
    assert_eq!(values.len(), rows * cols, "the tensor's shape");
    (values, rows, cols)
}
