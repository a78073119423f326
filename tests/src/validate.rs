//! `kubernetes-validate` (PyPI, installed into `.venv` by `scripts/test`): checks rendered
//! objects against the Kubernetes 1.33 OpenAPI schemas, strictly (unknown fields fail).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `kubernetes-validate` binary: `KUBERNETES_VALIDATE`, the workspace's `.venv`, or PATH.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KUBERNETES_VALIDATE") {
        return PathBuf::from(path);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate is in the workspace");
    let venv = workspace.join(".venv/bin/kubernetes-validate");
    if venv.exists() {
        return venv;
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join("kubernetes-validate")).find(|p| p.exists()));
    on_path.unwrap_or_else(|| {
        panic!("kubernetes-validate not found: run scripts/test (it installs it into .venv) or set KUBERNETES_VALIDATE")
    })
}

/// Validates every file (one object each) with `--strict` against Kubernetes 1.33.
/// `Err` carries each complaint; `Ok` the number of objects that passed, which callers
/// compare with the number of files.
pub fn strict(files: &[PathBuf]) -> Result<usize, String> {
    let output = Command::new(binary())
        .args(["-k", "1.33", "--strict"])
        .args(files)
        .output()
        .map_err(|e| format!("kubernetes-validate does not run: {e}"))?;
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let passed = |l: &&str| l.starts_with("INFO") && l.contains(" passed ");
    let complaints: Vec<&str> = report.lines().filter(|l| !passed(l)).collect();
    if !output.status.success() || !complaints.is_empty() {
        return Err(complaints.join("\n"));
    }
    Ok(report.lines().filter(passed).count())
}
