//! The Stratus installer.
//!
//! [`properties`] reads `bootstrap.properties`; [`config`] turns its entries into a typed,
//! validated configuration per provider; [`render`] writes the Terraform configuration for it
//! from the handlebars templates in `terraform-templates/<provider>/`; [`terraform`] runs the
//! Terraform binary at the edge. Everything else here is pure except reading the input file.

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
    let surroundings = config::Surroundings { env, file_exists: &exists, base_dir: &base };
    config::read(&entries, &surroundings).map_err(|problems| InputError::Invalid { path: path.to_path_buf(), problems })
}

/// Writes `rendered` into `dir` (created if needed): plain files 0644, secret files 0600.
pub fn write_rendered(dir: &Path, rendered: &render::Rendered) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    for (name, content) in &rendered.files {
        std::fs::write(dir.join(name), content)?;
    }
    for (name, content) in &rendered.secret_files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let _ = std::fs::remove_file(&path);
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        std::io::Write::write_all(&mut file, content.as_bytes())?;
    }
    Ok(())
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
