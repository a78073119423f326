//! Where the tests find the cloud helper `bootstrap-cloud`: next to `bootstrap`, where
//! `bootstrap` itself looks for it first (then on PATH). It is its own package
//! (`bootstrap-cloud`, bootstrap/cloud-helper), so `CARGO_BIN_EXE_bootstrap-cloud` does not
//! exist here and `cargo test -p bootstrap` does not build it (`cargo test --workspace`
//! does, before any test runs). [`path`] builds it into the same target directory and profile
//! when it is missing or older than its sources, once per test program.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

/// The helper next to `bootstrap`, built first if need be: call it before running `bootstrap`
/// on a cloud.
pub fn path() -> PathBuf {
    static HELPER: OnceLock<PathBuf> = OnceLock::new();
    HELPER.get_or_init(build).clone()
}

fn build() -> PathBuf {
    let bootstrap = Path::new(env!("CARGO_BIN_EXE_bootstrap"));
    let helper = bootstrap.with_file_name(format!("bootstrap-cloud{}", std::env::consts::EXE_SUFFIX));
    let sources = Path::new(env!("CARGO_MANIFEST_DIR"));
    let newest_source = ["cloud-helper", "cloud-protocol", "aws", "openstack"]
        .iter()
        .flat_map(|crate_dir| [sources.join(crate_dir).join("Cargo.toml"), sources.join(crate_dir).join("src")])
        .filter_map(|p| newest(&p))
        .max();
    let built = std::fs::metadata(&helper).and_then(|m| m.modified()).ok();
    if matches!((built, newest_source), (Some(built), Some(source)) if built >= source) {
        return helper;
    }
    // `<target-dir>/[<triple>/]<profile-dir>/bootstrap`: the same directory, profile and target.
    let profile_dir = bootstrap.parent().expect("bootstrap is in a directory");
    let mut target_dir = profile_dir.parent().expect("the profile directory is in the target directory");
    let mut command = Command::new(env!("CARGO"));
    command.args(["build", "--quiet", "-p", "bootstrap-cloud", "--bin", "bootstrap-cloud"]);
    if !target_dir.join("CACHEDIR.TAG").is_file() {
        if let (Some(triple), Some(parent)) = (target_dir.file_name(), target_dir.parent()) {
            command.arg("--target").arg(triple);
            target_dir = parent;
        }
    }
    command.arg("--target-dir").arg(target_dir);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
        None => {}
    }
    eprintln!("building the cloud helper for this test: {command:?}");
    let status = command.current_dir(sources).status().expect("cargo runs");
    assert!(status.success(), "cannot build the cloud helper: {command:?} {status}");
    assert!(helper.is_file(), "{} was not built", helper.display());
    helper
}

/// The newest modification time of `path` or anything under it.
fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    let own = meta.modified().ok();
    if !meta.is_dir() {
        return own;
    }
    std::fs::read_dir(path).ok()?.filter_map(|entry| newest(&entry.ok()?.path())).chain(own).max()
}
