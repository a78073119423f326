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
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The instance could not be planned.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A command-line value is wrong.
    #[error("{0}")]
    Usage(String),
    /// The catalog's upgrade rules do not allow the upgrade.
    #[error("{service} {to} cannot be reached from {from}: it upgrades from {}", if .allowed.is_empty() { "no earlier version".to_string() } else { .allowed.join(", ") })]
    UpgradeRefused {
        /// Service id.
        service: String,
        /// Version asked for, `<pv>/<sv>`.
        to: String,
        /// The instance's version.
        from: String,
        /// Versions the target upgrades from.
        allowed: Vec<String>,
    },
    /// A change that changes nothing.
    #[error("instance \"{id}\" is already at {version} and no parameter to set was given: nothing to change")]
    NothingToChange {
        /// Instance id.
        id: String,
        /// Its version.
        version: String,
    },
    /// The instance was deleted with its volumes kept.
    #[error(
        "instance \"{0}\" was deleted (its volume claims were kept); create it again with the same instance id first"
    )]
    Deleted(String),
    /// Values read from files (`NAME=FILE` pairs) could not be read.
    #[error("value of {name} from {}: {why}", sdl::error::quote(.file))]
    ValueFile {
        /// Parameter name.
        name: String,
        /// The file.
        file: String,
        /// Why it could not be read.
        why: String,
    },
    /// Lint found problems (each already a full message).
    #[error("{}", .0.join("\nerror: "))]
    Lint(Vec<String>),
}
