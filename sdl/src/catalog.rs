//! Reading a service catalog from disk.
//!
//! Layout (as Stackato 4's):
//! ```text
//! <root>/config.json                                    {"name": "stackato"}
//! <root>/services/<vendor>/<service>/config.json        description, categories, labels, ...
//! <root>/services/<vendor>/<service>/README.md
//! <root>/services/<vendor>/<service>/<pv>/<sv>/config.json      upgrade_from rules (optional)
//! <root>/services/<vendor>/<service>/<pv>/<sv>/sdl/sdl.json     the SDL (or sdl.yaml)
//! ```
//! Service ids are `<catalog>.<vendor>.<service>`. Loading reads the index; SDLs are parsed
//! and validated on demand ([`Catalog::load_sdl`]) or all at once ([`Catalog::lint`]).

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{quote, LoadError, Problem};
use crate::model::Sdl;
use crate::names;
use crate::parse::{closest, read_document};
use crate::validate::validate_sdl;

/// The catalog's own `config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// Catalog name: the first part of every service id.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A service's `config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// One-line description.
    pub description: String,
    /// Human name, e.g. `MySQL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Categories, e.g. `Data`.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Labels shown in listings, e.g. `Dev Grade`.
    #[serde(default)]
    pub labels: Vec<String>,
    /// `Dev Grade`, `Production`, `Connector`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_grade: Option<String>,
    /// Whether the vendor supports the service.
    #[serde(default = "yes")]
    pub supported: bool,
}

fn yes() -> bool {
    true
}

/// A version's `config.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionConfig {
    /// Versions an existing instance may be upgraded from to this one.
    #[serde(default)]
    pub upgrade_from: Vec<UpgradeFrom>,
    /// What changed in this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One upgrade rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeFrom {
    /// Product version upgraded from.
    pub product_version: String,
    /// SDL versions of that product version; empty means any.
    #[serde(default)]
    pub sdl_versions: Vec<String>,
}

impl std::fmt::Display for UpgradeFrom {
    /// `8.0` (any SDL version) or `8.0/1.0.0|1.1.0`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.sdl_versions.is_empty() {
            f.write_str(&self.product_version)
        } else {
            write!(f, "{}/{}", self.product_version, self.sdl_versions.join("|"))
        }
    }
}

/// One service of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `<catalog>.<vendor>.<service>`.
    pub id: String,
    /// Vendor folder name.
    pub vendor: String,
    /// Service folder name.
    pub name: String,
    /// The service's `config.json`.
    pub config: ServiceConfig,
    /// The service folder.
    pub dir: PathBuf,
    /// Versions, oldest first.
    pub versions: Vec<ServiceVersion>,
}

/// One (product version, SDL version) of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceVersion {
    /// Product version.
    pub product_version: String,
    /// SDL version.
    pub sdl_version: String,
    /// The version's `config.json` (empty when absent).
    pub config: VersionConfig,
    /// Path of the SDL file.
    pub sdl_path: PathBuf,
}

impl ServiceVersion {
    /// Whether an instance at `product_version`/`sdl_version` may upgrade to this version.
    pub fn upgrades_from(&self, product_version: &str, sdl_version: &str) -> bool {
        self.config.upgrade_from.iter().any(|rule| {
            rule.product_version == product_version
                && (rule.sdl_versions.is_empty() || rule.sdl_versions.iter().any(|s| s == sdl_version))
        })
    }
}

/// A catalog that could not be read or does not hold what was asked for.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A file could not be read or parsed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The folder layout is wrong.
    #[error("{}: {message}", crate::error::sanitize(&path.display().to_string()))]
    Layout {
        /// The offending path.
        path: PathBuf,
        /// What was expected.
        message: String,
    },
    /// The service's folder could not be read.
    #[error("service {} cannot be read: {error}", quote(.id))]
    Broken {
        /// The service id.
        id: String,
        /// Why.
        error: String,
    },
    /// No such service.
    #[error("unknown service {}{}; `hsm list-services` shows the catalog", quote(.id), hint(.suggestion))]
    UnknownService {
        /// The id asked for.
        id: String,
        /// The closest id.
        suggestion: Option<String>,
    },
    /// No such version of a service.
    #[error("service {} has no {what} {}; available: {}", quote(.id), quote(.version), .available.join(", "))]
    UnknownVersion {
        /// The service id.
        id: String,
        /// `product version` or `SDL version`.
        what: &'static str,
        /// The version asked for.
        version: String,
        /// The versions there are.
        available: Vec<String>,
    },
}

fn hint(suggestion: &Option<String>) -> String {
    suggestion.as_ref().map(|s| format!(" (did you mean {}?)", quote(s))).unwrap_or_default()
}

/// A service (or vendor) folder of a catalog that could not be read.
#[derive(Debug)]
pub struct Broken {
    /// The service id the folder stands for (`<catalog>.<vendor>.<service>`), or the vendor
    /// folder's name.
    pub id: String,
    /// Why it could not be read.
    pub error: CatalogError,
}

/// A service catalog on disk.
#[derive(Debug)]
pub struct Catalog {
    /// The catalog folder.
    pub root: PathBuf,
    /// The catalog's `config.json`.
    pub config: CatalogConfig,
    /// Services sorted by id.
    pub services: Vec<Service>,
    /// Service (or vendor) folders that could not be read, each with why: the rest of the
    /// catalog is usable without them; `lint` fails on them.
    pub broken: Vec<Broken>,
    /// Files where the layout has no place for them (an `sdl.json` one folder off, say):
    /// nothing reads them.
    pub strays: Vec<PathBuf>,
}

impl Catalog {
    /// Reads the catalog index under `root` (SDLs are not parsed yet).
    pub fn load(root: &Path) -> Result<Catalog, CatalogError> {
        let config_path = root.join("config.json");
        let config: CatalogConfig = read_document(&config_path)?;
        if let Some(problem) = names::dns_label(&config.name) {
            return Err(LoadError::Invalid {
                source_name: config_path.display().to_string(),
                what: "catalog config",
                problems: vec![Problem::new("name", format!("{problem} (it is the first part of every service id)"))],
            }
            .into());
        }
        let services_dir = root.join("services");
        let mut services = Vec::new();
        let mut broken = Vec::new();
        let mut strays = Vec::new();
        for vendor_dir in entries(&services_dir, &mut strays, &[])? {
            let vendor = file_name(&vendor_dir);
            let service_dirs = folder_name(&vendor_dir, "vendor", names::dns_label)
                .and_then(|()| entries(&vendor_dir, &mut strays, &["README.md"]));
            let service_dirs = match service_dirs {
                Ok(dirs) => dirs,
                Err(error) => {
                    broken.push(Broken { id: vendor, error });
                    continue;
                }
            };
            for service_dir in service_dirs {
                match load_service(&config.name, &vendor_dir, &service_dir, &mut strays) {
                    Ok(service) => services.push(service),
                    Err(error) => broken
                        .push(Broken { id: format!("{}.{vendor}.{}", config.name, file_name(&service_dir)), error }),
                }
            }
        }
        services.sort_by(|a, b| a.id.cmp(&b.id));
        strays.sort();
        Ok(Catalog { root: root.to_path_buf(), config, services, broken, strays })
    }

    /// The service with id `id`.
    pub fn service(&self, id: &str) -> Result<&Service, CatalogError> {
        if let Some(broken) = self.broken.iter().find(|b| b.id == id) {
            return Err(CatalogError::Broken { id: id.to_string(), error: broken.error.to_string() });
        }
        self.services.iter().find(|s| s.id == id).ok_or_else(|| CatalogError::UnknownService {
            id: id.to_string(),
            suggestion: closest(id, self.services.iter().map(|s| s.id.as_str()))
                .or_else(|| self.services.iter().find(|s| s.name == id).map(|s| s.id.as_str()))
                .map(str::to_string),
        })
    }

    /// Parses and validates the SDL of `version` of `service`, checking it matches its folder.
    pub fn load_sdl(&self, service: &Service, version: &ServiceVersion) -> Result<Sdl, LoadError> {
        let sdl: Sdl = read_document(&version.sdl_path)?;
        let mut problems = validate_sdl(&sdl);
        for (field, actual, expected) in [
            ("name", &sdl.name, &service.name),
            ("vendor", &sdl.vendor, &service.vendor),
            ("product_version", &sdl.product_version, &version.product_version),
            ("sdl_version", &sdl.sdl_version, &version.sdl_version),
        ] {
            if actual != expected {
                problems.push(Problem::new(
                    field,
                    format!("\"{actual}\" does not match its catalog folder \"{expected}\""),
                ));
            }
        }
        if problems.is_empty() {
            Ok(sdl)
        } else {
            Err(LoadError::Invalid { source_name: version.sdl_path.display().to_string(), what: "SDL", problems })
        }
    }

    /// Every problem in every SDL of the catalog, plus upgrade rules naming missing versions.
    pub fn lint(&self) -> Vec<LoadError> {
        let mut errors = Vec::new();
        for service in &self.services {
            for version in &service.versions {
                if let Err(e) = self.load_sdl(service, version) {
                    errors.push(e);
                }
                let problems: Vec<Problem> = version
                    .config
                    .upgrade_from
                    .iter()
                    .enumerate()
                    .filter(|(_, rule)| !service.versions.iter().any(|v| v.product_version == rule.product_version))
                    .map(|(i, rule)| {
                        Problem::new(
                            format!("upgrade_from[{i}].product_version"),
                            format!("\"{}\" is not a version of {}", rule.product_version, service.id),
                        )
                    })
                    .collect();
                if !problems.is_empty() {
                    errors.push(LoadError::Invalid {
                        source_name: version
                            .sdl_path
                            .parent()
                            .and_then(Path::parent)
                            .unwrap_or(&version.sdl_path)
                            .join("config.json")
                            .display()
                            .to_string(),
                        what: "version config",
                        problems,
                    });
                }
            }
        }
        errors
    }
}

impl Service {
    /// The version asked for: the newest product version when none is given, and the newest
    /// SDL version of that product version when no SDL version is given.
    pub fn version(
        &self,
        product_version: Option<&str>,
        sdl_version: Option<&str>,
    ) -> Result<&ServiceVersion, CatalogError> {
        let product_version = match product_version {
            Some(pv) => {
                if !self.versions.iter().any(|v| v.product_version == pv) {
                    return Err(CatalogError::UnknownVersion {
                        id: self.id.clone(),
                        what: "product version",
                        version: pv.to_string(),
                        available: self.product_versions(),
                    });
                }
                pv
            }
            None => &self.versions.last().expect("a service has at least one version").product_version,
        };
        let candidates: Vec<&ServiceVersion> =
            self.versions.iter().filter(|v| v.product_version == product_version).collect();
        match sdl_version {
            None => Ok(candidates.last().expect("a product version has at least one SDL version")),
            Some(sv) => {
                candidates.iter().find(|v| v.sdl_version == sv).copied().ok_or_else(|| CatalogError::UnknownVersion {
                    id: self.id.clone(),
                    what: "SDL version",
                    version: sv.to_string(),
                    available: candidates.iter().map(|v| v.sdl_version.clone()).collect(),
                })
            }
        }
    }

    /// The versions an instance at `product_version`/`sdl_version` may be upgraded to, as
    /// `<product version>/<SDL version>`, oldest first: every other version whose
    /// `upgrade_from` rules allow it.
    pub fn available_upgrades(&self, product_version: &str, sdl_version: &str) -> Vec<String> {
        self.versions
            .iter()
            .filter(|v| (v.product_version.as_str(), v.sdl_version.as_str()) != (product_version, sdl_version))
            .filter(|v| v.upgrades_from(product_version, sdl_version))
            .map(|v| format!("{}/{}", v.product_version, v.sdl_version))
            .collect()
    }

    /// Distinct product versions, oldest first.
    pub fn product_versions(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for v in &self.versions {
            if out.last() != Some(&v.product_version) {
                out.push(v.product_version.clone());
            }
        }
        out
    }
}

/// Orders version strings part by part, numerically where both parts are numbers
/// (`9.4` < `10.1`, `1.0.0-rc.1` < `1.0.0-rc.2`).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let split = |s: &str| s.split(['.', '-', '+']).map(str::to_string).collect::<Vec<_>>();
    let (pa, pb) = (split(a), split(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(nx), Ok(ny)) => nx.cmp(&ny),
            _ => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    pa.len().cmp(&pb.len())
}

/// Reads one service folder: its config and every `<product_version>/<sdl_version>/sdl/`.
fn load_service(
    catalog: &str,
    vendor_dir: &Path,
    service_dir: &Path,
    strays: &mut Vec<PathBuf>,
) -> Result<Service, CatalogError> {
    let vendor = file_name(vendor_dir);
    let name = file_name(service_dir);
    folder_name(service_dir, "service", names::dns_label)?;
    let id = format!("{catalog}.{vendor}.{name}");
    if let Some(problem) = names::label_value(&id) {
        return Err(CatalogError::Layout {
            path: service_dir.to_path_buf(),
            message: format!("the service id {problem} (it labels every object of an instance)"),
        });
    }
    let service_config: ServiceConfig = read_document(&service_dir.join("config.json"))?;
    let mut versions = Vec::new();
    for pv_dir in entries(service_dir, strays, &["config.json", "README.md"])? {
        folder_name(&pv_dir, "product version", names::label_value)?;
        for sv_dir in entries(&pv_dir, strays, &[])? {
            folder_name(&sv_dir, "SDL version", names::label_value)?;
            entries(&sv_dir, strays, &["config.json"])?;
            let config_path = sv_dir.join("config.json");
            let config = if config_path.exists() { read_document(&config_path)? } else { VersionConfig::default() };
            let sdl_path = ["sdl.json", "sdl.yaml", "sdl.yml"]
                .iter()
                .map(|f| sv_dir.join("sdl").join(f))
                .find(|p| p.is_file())
                .ok_or_else(|| CatalogError::Layout {
                    path: sv_dir.join("sdl"),
                    message: "expected sdl/sdl.json in every version folder".into(),
                })?;
            versions.push(ServiceVersion {
                product_version: file_name(&pv_dir),
                sdl_version: file_name(&sv_dir),
                config,
                sdl_path,
            });
        }
    }
    if versions.is_empty() {
        return Err(CatalogError::Layout {
            path: service_dir.to_path_buf(),
            message: "expected at least one <product_version>/<sdl_version>/sdl/sdl.json".into(),
        });
    }
    versions.sort_by(|a, b| {
        compare_versions(&a.product_version, &b.product_version)
            .then_with(|| compare_versions(&a.sdl_version, &b.sdl_version))
    });
    Ok(Service { id, vendor, name, config: service_config, dir: service_dir.to_path_buf(), versions })
}

/// The sub-folders of `dir` (hidden ones and `sdl/` aside); files other than `expected` are
/// added to `strays`.
fn entries(dir: &Path, strays: &mut Vec<PathBuf>, expected: &[&str]) -> Result<Vec<PathBuf>, CatalogError> {
    let read = std::fs::read_dir(dir).map_err(|source| LoadError::Io { path: dir.to_path_buf(), source })?;
    let mut dirs = Vec::new();
    for entry in read {
        let entry = entry.map_err(|source| LoadError::Io { path: dir.to_path_buf(), source })?;
        let path = entry.path();
        let name = file_name(&path);
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            if name != "sdl" {
                dirs.push(path);
            }
        } else if !expected.contains(&name.as_str()) {
            strays.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Refuses a catalog folder whose name cannot be what it stands for.
fn folder_name(dir: &Path, what: &str, check: fn(&str) -> Option<String>) -> Result<(), CatalogError> {
    match check(&file_name(dir)) {
        None => Ok(()),
        Some(problem) => {
            Err(CatalogError::Layout { path: dir.to_path_buf(), message: format!("the {what} folder name {problem}") })
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(product_version: &str, sdl_version: &str, upgrade_from: &[(&str, &[&str])]) -> ServiceVersion {
        ServiceVersion {
            product_version: product_version.into(),
            sdl_version: sdl_version.into(),
            config: VersionConfig {
                upgrade_from: upgrade_from
                    .iter()
                    .map(|(pv, svs)| UpgradeFrom {
                        product_version: pv.to_string(),
                        sdl_versions: svs.iter().map(|s| s.to_string()).collect(),
                    })
                    .collect(),
                description: None,
            },
            sdl_path: PathBuf::new(),
        }
    }

    #[test]
    fn available_upgrades_are_the_versions_whose_rules_allow_the_current_one() {
        let service = Service {
            id: "test.acme.app".into(),
            vendor: "acme".into(),
            name: "app".into(),
            config: ServiceConfig {
                description: "app".into(),
                display_name: None,
                categories: Vec::new(),
                labels: Vec::new(),
                deployment_grade: None,
                supported: true,
            },
            dir: PathBuf::new(),
            versions: vec![
                version("1", "1.0.0", &[]),
                version("1", "1.1.0", &[("1", &["1.0.0"])]),
                version("2", "1.0.0", &[("1", &[])]),
                version("3", "1.0.0", &[("2", &[]), ("1", &["1.1.0"])]),
            ],
        };
        assert_eq!(service.available_upgrades("1", "1.0.0"), ["1/1.1.0", "2/1.0.0"]);
        assert_eq!(service.available_upgrades("1", "1.1.0"), ["2/1.0.0", "3/1.0.0"]);
        assert_eq!(service.available_upgrades("2", "1.0.0"), ["3/1.0.0"]);
        assert!(service.available_upgrades("3", "1.0.0").is_empty());
        // A version unknown to the catalog upgrades to nothing.
        assert!(service.available_upgrades("0.9", "1.0.0").is_empty());
    }

    #[test]
    fn versions_order_numerically() {
        assert_eq!(compare_versions("9.4", "10.1"), Ordering::Less);
        assert_eq!(compare_versions("1.0.0", "1.0.0"), Ordering::Equal);
        assert_eq!(compare_versions("1.0", "1.0.1"), Ordering::Less);
        assert_eq!(compare_versions("2014", "2016"), Ordering::Less);
    }
}
