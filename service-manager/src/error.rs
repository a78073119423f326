//! The service manager's error type: every way a command can fail, each with a message that
//! names the file, key or JSON path at fault.

use sdl::catalog::CatalogError;
use sdl::resolve::ResolveError;
use sdl::LoadError;

use crate::plan::PlanError;

/// A failed `hsm` operation.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    /// The catalog could not be read or lacks what was asked for.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// An SDL, IDL or profile file could not be read, parsed or validated.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Parameters could not be resolved.
    #[error("{error}{hint}", error = .0, hint = resolve_hint(.0))]
    Resolve(#[from] ResolveError),
    /// The instance could not be planned.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A command-line value is wrong.
    #[error("{0}")]
    Usage(String),
}

fn resolve_hint(error: &ResolveError) -> &'static str {
    match error {
        ResolveError::Missing(_) => " (give values with --set NAME=VALUE or in the instance definition's parameters)",
        _ => "",
    }
}
