//! Where the control plane's programs are: `STRATUS_KUBE_BIN`, else the folder
//! `scripts/build-control-plane` builds for the versions pinned in `tools/kube/go.mod` —
//! built on first use when Go is here. Under `CI=true` a missing control plane is an error
//! that stops the test, never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The programs a control plane is made of.
pub const PROGRAMS: [&str; 4] = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"];

/// The repository's root (this crate lives in `tests/`).
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The pinned versions, `(kubernetes, etcd)`, read from `tools/kube/go.mod`.
pub fn pinned() -> Result<(String, String), String> {
    let path = repository().join("tools/kube/go.mod");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let version = |module: &str| {
        text.lines()
            .map(str::split_whitespace)
            .find_map(|mut words| (words.next() == Some(module)).then(|| words.next().map(str::to_string)).flatten())
            .ok_or_else(|| format!("{}: no `{module} vX.Y.Z` line", path.display()))
    };
    Ok((version("k8s.io/kubernetes")?, version("go.etcd.io/etcd/server/v3")?))
}

fn complete(dir: &Path) -> bool {
    PROGRAMS.iter().all(|p| dir.join(p).is_file())
}

/// The folder holding the four programs, building them if they are missing and can be built.
pub fn locate() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("STRATUS_KUBE_BIN") {
        let dir = PathBuf::from(dir);
        return if complete(&dir) {
            Ok(dir)
        } else {
            Err(format!("STRATUS_KUBE_BIN={} does not hold {}", dir.display(), PROGRAMS.join(", ")))
        };
    }
    let (kubernetes, etcd) = pinned()?;
    let dir = repository().join(".tools/kube").join(format!("{kubernetes}-etcd-{etcd}"));
    if complete(&dir) {
        return Ok(dir);
    }
    let script = repository().join("scripts/build-control-plane");
    let built = Command::new(&script).stdout(std::process::Stdio::null()).status();
    match built {
        Ok(status) if status.success() && complete(&dir) => Ok(dir),
        Ok(status) => {
            Err(format!("{} failed ({status}); the control plane is not at {}", script.display(), dir.display()))
        }
        Err(e) => Err(format!("cannot run {}: {e}", script.display())),
    }
}

/// Whether a missing control plane must fail the test (`CI=true`) rather than skip it.
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}
