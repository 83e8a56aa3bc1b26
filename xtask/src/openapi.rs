//! `cargo xtask openapi`: writes `openapi.yaml` from the code, checks it, or compares it with a
//! reference document.

use std::path::PathBuf;

/// The committed document, at the workspace root.
pub fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi.yaml")
}

pub fn run(args: &[String]) -> Result<(), String> {
    let path = committed_path();
    match args.first().map(String::as_str) {
        None => {
            std::fs::write(&path, honcho_web::api_yaml())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            println!("wrote {}", path.display());
            Ok(())
        }
        Some("--check") => check(&path),
        Some("--compat") => {
            let reference = args
                .get(1)
                .ok_or("--compat needs the path of a reference OpenAPI JSON document")?;
            let mut allow = crate::compat::Allowances::default();
            let mut rest = args[2..].iter();
            while let Some(arg) = rest.next() {
                let list = match arg.as_str() {
                    "--allow-missing" => &mut allow.missing,
                    "--allow-constraints" => &mut allow.constraints,
                    other => return Err(format!("unknown option {other}\n{}", crate::USAGE)),
                };
                list.push(
                    rest.next()
                        .ok_or_else(|| format!("{arg} needs an operation: \"METHOD /path\""))?
                        .clone(),
                );
            }
            let ours = serde_json::from_str(&honcho_web::api_json()).map_err(|e| e.to_string())?;
            crate::compat::run(&ours, reference, &allow)
        }
        Some(other) => Err(format!("unknown option {other}\n{}", crate::USAGE)),
    }
}

/// Fails with a readable diff when the committed document differs from the code's.
fn check(path: &std::path::Path) -> Result<(), String> {
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let generated = honcho_web::api_yaml();
    if committed == generated {
        println!("{} is up to date", path.display());
        return Ok(());
    }
    let diff = similar::TextDiff::from_lines(&committed, &generated);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header("openapi.yaml (committed)", "openapi.yaml (from the code)")
        .to_string();
    Err(format!(
        "{text}\nopenapi.yaml is out of date: run `cargo xtask openapi` and commit the result"
    ))
}
