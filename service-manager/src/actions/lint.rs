//! `lint`: check a whole catalog, one SDL file, or an IDL against an SDL file.

use std::path::Path;

use sdl::catalog::Catalog;
use sdl::parse::read_document;
use sdl::validate::{validate_idl, validate_sdl};
use sdl::{Idl, LoadError, Sdl};

use crate::error::HsmError;

/// What was checked and found valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A catalog folder: how many services and versions it holds.
    Catalog {
        /// Services.
        services: usize,
        /// Versions of all services.
        versions: usize,
        /// Files the catalog layout has no place for: nothing reads them.
        strays: Vec<std::path::PathBuf>,
    },
    /// One SDL file.
    Sdl,
    /// An SDL file and an IDL checked against it.
    SdlAndIdl,
}

/// Checks `path` (a catalog folder or an SDL file) and, for a file, `idl` against it. Every
/// problem found is in the error.
pub fn run(path: &Path, idl: Option<&Path>) -> Result<Outcome, HsmError> {
    if path.is_dir() {
        if idl.is_some() {
            return Err(HsmError::Usage("an IDL is checked against an SDL file, not a catalog folder".into()));
        }
        let catalog = Catalog::load(path)?;
        let mut report: Vec<String> = catalog.broken.iter().map(|b| b.error.to_string()).collect();
        report.extend(catalog.lint().iter().map(|e| e.to_string()));
        if report.is_empty() {
            let versions = catalog.services.iter().map(|s| s.versions.len()).sum();
            let strays = catalog.strays.clone();
            return Ok(Outcome::Catalog { services: catalog.services.len(), versions, strays });
        }
        return Err(HsmError::Lint(report));
    }
    let sdl: Sdl = read_document(path)?;
    let problems = validate_sdl(&sdl);
    if !problems.is_empty() {
        return Err(LoadError::Invalid { source_name: path.display().to_string(), what: "SDL", problems }.into());
    }
    let Some(idl_path) = idl else { return Ok(Outcome::Sdl) };
    let idl: Idl = read_document(idl_path)?;
    let service_id = idl.service_id.clone().unwrap_or_default();
    let problems = validate_idl(&sdl, &service_id, &idl);
    if !problems.is_empty() {
        return Err(LoadError::Invalid {
            source_name: idl_path.display().to_string(),
            what: "instance definition",
            problems,
        }
        .into());
    }
    Ok(Outcome::SdlAndIdl)
}
