//! The Stratus installer.
//!
//! [`properties`] reads `bootstrap.properties`; [`config`] turns its entries into a typed,
//! validated configuration per provider; [`render`] writes the Terraform configuration for it
//! from the handlebars templates in `terraform-templates/<provider>/`. Everything here is pure
//! except reading the input file; Terraform itself runs at the edge.

pub mod config;
pub mod properties;
pub mod render;

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
    let base = path.parent().unwrap_or(Path::new("."));
    let exists = |p: &Path| if p.is_absolute() { p.exists() } else { base.join(p).exists() };
    let surroundings = config::Surroundings { env, file_exists: &exists };
    config::read(&entries, &surroundings).map_err(|problems| InputError::Invalid { path: path.to_path_buf(), problems })
}
