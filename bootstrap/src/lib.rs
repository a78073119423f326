//! The Stratus installer.
//!
//! [`properties`] reads `bootstrap.properties`; [`config`] turns its entries into a typed,
//! validated configuration per provider; [`render`] writes the Terraform configuration for it
//! from the handlebars templates in `terraform-templates/<provider>/`; [`terraform`] runs the
//! Terraform binary at the edge. Everything else here is pure except reading the input file.

pub mod cloud;
pub mod clouds;
pub mod config;
pub mod install;
pub mod nodes;
pub mod phases;
pub mod pki;
pub mod platform;
pub mod properties;
pub mod render;
pub mod terraform;

use std::collections::BTreeMap;
use std::path::Path;

/// Bad input: every problem found in one file.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("{}:{}: {}", path.display(), source.line, source.message)]
    Syntax {
        /// The file.
        path: std::path::PathBuf,
        /// The line.
        source: properties::SyntaxError,
    },
    /// The configuration breaks rules.
    #[error("{}", invalid(path, problems))]
    Invalid {
        /// The file.
        path: std::path::PathBuf,
        /// Every problem.
        problems: Vec<config::Problem>,
    },
}

fn invalid(path: &Path, problems: &[config::Problem]) -> String {
    let count = problems.len();
    let mut out = format!(
        "{} is not a valid configuration ({count} problem{}):",
        path.display(),
        if count == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string());
    }
    out
}

/// Reads and validates the properties file at `path`, taking credentials from `env`.
pub fn load(path: &Path, env: &BTreeMap<String, String>) -> Result<config::Config, InputError> {
    let text = std::fs::read_to_string(path).map_err(|source| InputError::Io { path: path.to_path_buf(), source })?;
    let entries = properties::parse(&text).map_err(|source| InputError::Syntax { path: path.to_path_buf(), source })?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let base = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
    let exists = |p: &Path| p.exists();
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    let surroundings = config::Surroundings { env, file_exists: &exists, base_dir: &base, read_file: &read };
    config::read(&entries, &surroundings).map_err(|problems| InputError::Invalid { path: path.to_path_buf(), problems })
}

/// Writes `rendered` into `dir` (created if needed): plain files 0644, secret files 0600.
///
/// A file that already holds the same bytes (and, for a secret file, is a regular file with
/// mode 0600) is left alone: a re-run changes no mtime, and truncating a file on ext4 would
/// otherwise start its writeback at close.
pub fn write_rendered(dir: &Path, rendered: &render::Rendered) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    for (name, content) in &rendered.files {
        let path = dir.join(name);
        if !holds(&path, content, None) {
            std::fs::write(path, content)?;
        }
    }
    for (name, content) in &rendered.secret_files {
        let path = dir.join(name);
        if holds(&path, content, Some(0o600)) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let _ = std::fs::remove_file(&path);
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        std::io::Write::write_all(&mut file, content.as_bytes())?;
    }
    Ok(())
}

/// What `KeepTerraform = false` clears from the Terraform working directory `dir` once an
/// install or provision has succeeded: the saved plan (it holds every variable, passwords
/// included) and the secret files named in `secret_files` (the cloud password, the machines'
/// cloud-configs with the cluster CA key and join token), with folders they leave empty. Every
/// run renders them again before Terraform needs them; the state, the configuration and the
/// provider plugins stay. Returns the names removed.
pub fn clear_terraform_secrets<'a>(
    dir: &Path,
    secret_files: impl IntoIterator<Item = &'a String>,
) -> std::io::Result<Vec<String>> {
    let mut removed = Vec::new();
    for name in std::iter::once("plan.tfplan".to_string()).chain(secret_files.into_iter().cloned()) {
        let path = dir.join(&name);
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(name),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
        // Folders the file leaves empty (`cloud-init/`) go too; a non-empty one stays.
        let mut parent = path.parent();
        while let Some(folder) = parent.filter(|p| p.starts_with(dir) && *p != dir) {
            if std::fs::remove_dir(folder).is_err() {
                break;
            }
            parent = folder.parent();
        }
    }
    Ok(removed)
}

/// Whether `path` is a regular file holding exactly `content` (with permission bits `mode`,
/// when given).
fn holds(path: &Path, content: &str, mode: Option<u32>) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else { return false };
    meta.is_file()
        && meta.len() == content.len() as u64
        && mode.is_none_or(|m| meta.permissions().mode() & 0o777 == m)
        && std::fs::read(path).is_ok_and(|bytes| bytes == content.as_bytes())
}

/// The cluster's PKI from `path`, or a new one written there (0600) for every later run.
pub fn load_or_create_pki(path: &Path, cluster: &str) -> Result<pki::Pki, String> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(text) = std::fs::read_to_string(path) {
        return serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()));
    }
    let pki = pki::Pki::generate(cluster).map_err(|e| e.to_string())?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::Write::write_all(&mut file, serde_json::to_string(&pki).expect("PKIs serialise").as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(pki)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn rendered(main: &str, secret: &str) -> render::Rendered {
        render::Rendered {
            files: [("main.tf".to_string(), main.to_string())].into(),
            secret_files: [("secrets.auto.tfvars".to_string(), secret.to_string())].into(),
            ..Default::default()
        }
    }

    fn modified(path: &Path) -> std::time::SystemTime {
        std::fs::metadata(path).unwrap().modified().unwrap()
    }

    #[test]
    fn rewriting_the_same_files_leaves_them_alone_and_changed_ones_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let (main, secret) = (dir.path().join("main.tf"), dir.path().join("secrets.auto.tfvars"));
        write_rendered(dir.path(), &rendered("a", "s = 1")).unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        for path in [&main, &secret] {
            std::fs::File::options().write(true).open(path).unwrap().set_modified(old).unwrap();
        }

        write_rendered(dir.path(), &rendered("a", "s = 1")).unwrap();
        assert_eq!(modified(&main), old, "unchanged file rewritten");
        assert_eq!(modified(&secret), old, "unchanged secret file rewritten");

        // Same length, other bytes: rewritten.
        write_rendered(dir.path(), &rendered("b", "s = 2")).unwrap();
        assert_eq!(std::fs::read_to_string(&main).unwrap(), "b");
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "s = 2");
        assert_ne!(modified(&main), old);
    }

    #[test]
    fn clearing_removes_the_plan_and_the_secret_files_and_keeps_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let rendered = render::Rendered {
            files: [("main.tf".to_string(), "x".to_string())].into(),
            secret_files: [
                ("secrets.auto.tfvars".to_string(), "p".to_string()),
                ("cloud-init/master-0.yaml".to_string(), "c".to_string()),
            ]
            .into(),
            ..Default::default()
        };
        write_rendered(dir.path(), &rendered).unwrap();
        for kept in ["terraform.tfstate", "plan.tfplan"] {
            std::fs::write(dir.path().join(kept), "{}").unwrap();
        }
        let removed = clear_terraform_secrets(dir.path(), rendered.secret_files.keys()).unwrap();
        assert_eq!(removed, ["plan.tfplan", "cloud-init/master-0.yaml", "secrets.auto.tfvars"]);
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        left.sort();
        assert_eq!(left, ["main.tf", "terraform.tfstate"]);
        assert_eq!(clear_terraform_secrets(dir.path(), rendered.secret_files.keys()).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_secret_file_with_the_right_content_but_open_permissions_is_recreated_0600() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secrets.auto.tfvars");
        std::fs::write(&secret, "s = 1").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_rendered(dir.path(), &rendered("a", "s = 1")).unwrap();
        assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "s = 1");
    }

    #[test]
    fn a_symlink_in_place_of_a_secret_file_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "s = 1").unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
        let secret = dir.path().join("secrets.auto.tfvars");
        std::os::unix::fs::symlink(&elsewhere, &secret).unwrap();
        write_rendered(dir.path(), &rendered("a", "s = 2")).unwrap();
        assert!(std::fs::symlink_metadata(&secret).unwrap().is_file());
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "s = 1");
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "s = 2");
    }
}
