//! From "create an instance of service X" (service id, versions, IDL, `--set` values) to a
//! validated SDL/IDL pair with resolved parameters, ready for the planner.

use rand::{CryptoRng, Rng};
use sdl::catalog::{Catalog, Service, ServiceVersion};
use sdl::error::Problem;
use sdl::idl::IdlParameter;
use sdl::parse::closest;
use sdl::resolve::{resolve, ResolveContext, Resolved, Stored};
use sdl::validate::validate_idl;
use sdl::{Idl, LoadError, Sdl};

use crate::error::HsmError;
use crate::plan::{self, Plan, PlanInput};
use crate::profile::ClusterProfile;

/// What the operator asked for.
#[derive(Debug, Clone, Default)]
pub struct InstanceRequest {
    /// Service id.
    pub service_id: String,
    /// Product version (newest when absent, or the IDL's).
    pub product_version: Option<String>,
    /// SDL version (newest of the product version when absent, or the IDL's).
    pub sdl_version: Option<String>,
    /// The instance definition (empty when none was given).
    pub idl: Idl,
    /// Name of the IDL file, for error messages.
    pub idl_source: String,
    /// `--set NAME=VALUE` values; they override the IDL.
    pub sets: Vec<(String, String)>,
    /// `--instance-id`; overrides the IDL.
    pub instance_id: Option<String>,
}

/// A request checked against the catalog, with every parameter resolved.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The service.
    pub service: Service,
    /// The chosen version.
    pub version: ServiceVersion,
    /// Its SDL.
    pub sdl: Sdl,
    /// The IDL with `instance_id` and `--set` values filled in.
    pub idl: Idl,
    /// Parameter values.
    pub resolved: Resolved,
}

impl Prepared {
    /// Plans this instance for `profile`.
    pub fn plan(&self, profile: &ClusterProfile) -> Result<Plan, HsmError> {
        Ok(plan::plan(PlanInput {
            service_id: &self.service.id,
            sdl: &self.sdl,
            idl: &self.idl,
            resolved: &self.resolved,
            profile,
        })?)
    }
}

/// Parses `NAME=VALUE`.
pub fn parse_set(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("expected NAME=VALUE, got \"{}\"", text.escape_debug())),
    }
}

/// A request checked against the catalog: the service, version, SDL and the IDL with
/// `--instance-id` and `--set` values merged in. No parameter is resolved yet.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The service.
    pub service: Service,
    /// The chosen version.
    pub version: ServiceVersion,
    /// Its SDL (valid).
    pub sdl: Sdl,
    /// The IDL (valid), `instance_id` possibly still unset.
    pub idl: Idl,
}

/// Checks the request against the catalog: service, versions, IDL and `--set` values. Every
/// problem of the IDL and the command line is reported together.
pub fn check(catalog: &Catalog, request: &InstanceRequest) -> Result<Checked, HsmError> {
    check_in_force(catalog, request, None)
}

/// [`check`], with the SDL in force of an existing instance (stored with it) in place of the
/// catalog's copy when it is that of the version asked for.
pub fn check_in_force(
    catalog: &Catalog,
    request: &InstanceRequest,
    in_force: Option<&Sdl>,
) -> Result<Checked, HsmError> {
    let service = catalog.service(&request.service_id)?;
    let product_version = request.product_version.as_deref().or(request.idl.product_version.as_deref());
    let sdl_version = request.sdl_version.as_deref().or(request.idl.sdl_version.as_deref());
    let version = service.version(product_version, sdl_version)?;
    let sdl = match in_force {
        Some(sdl)
            if (sdl.product_version.as_str(), sdl.sdl_version.as_str())
                == (version.product_version.as_str(), version.sdl_version.as_str())
                && (sdl.name.as_str(), sdl.vendor.as_str()) == (service.name.as_str(), service.vendor.as_str()) =>
        {
            sdl.clone()
        }
        _ => catalog.load_sdl(service, version)?,
    };

    let mut idl = request.idl.clone();
    let mut problems = validate_idl(&sdl, &service.id, &idl);
    if let Some(id) = &request.instance_id {
        idl.instance_id = Some(id.clone());
        problems.extend(validate_idl(&sdl, &service.id, &Idl { instance_id: Some(id.clone()), ..Idl::default() }));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (name, value) in &request.sets {
        let path = format!("--set {name}");
        if !seen.insert(name.as_str()) {
            problems.push(Problem::new(path.clone(), "is given more than once; give each parameter once"));
        }
        match sdl.parameter(name) {
            None => {
                let shown = sdl::error::quote(name);
                let message = match closest(name, sdl.parameters.iter().map(|p| p.name.as_str())) {
                    Some(best) => format!("unknown parameter {shown} (did you mean \"{best}\"?)"),
                    None => format!("unknown parameter {shown}"),
                };
                problems.push(Problem::new(path, message));
            }
            Some(def) => {
                if let Some(problem) = sdl::validate::check_value(def, value) {
                    problems.push(Problem::new(path, problem));
                }
            }
        }
        match idl.parameters.iter_mut().find(|p| &p.name == name) {
            Some(existing) => existing.value = value.clone(),
            None => idl.parameters.push(IdlParameter { name: name.clone(), value: value.clone() }),
        }
    }
    if !problems.is_empty() {
        return Err(LoadError::Invalid {
            source_name: request.idl_source.clone(),
            what: "instance definition",
            problems,
        }
        .into());
    }
    Ok(Checked { service: service.clone(), version: version.clone(), sdl, idl })
}

/// Checks the request against the catalog and resolves its parameters. `stored` holds what
/// the instance had before (empty for a new instance).
pub fn prepare(
    catalog: &Catalog,
    request: &InstanceRequest,
    stored: &Stored,
    profile: &ClusterProfile,
    rng: &mut (impl Rng + CryptoRng),
) -> Result<Prepared, HsmError> {
    prepare_in_force(catalog, request, None, stored, profile, rng)
}

/// [`prepare`] for an existing instance, planned from its SDL in force ([`check_in_force`]).
pub fn prepare_in_force(
    catalog: &Catalog,
    request: &InstanceRequest,
    in_force: Option<&Sdl>,
    stored: &Stored,
    profile: &ClusterProfile,
    rng: &mut (impl Rng + CryptoRng),
) -> Result<Prepared, HsmError> {
    let Checked { service, version, sdl, mut idl } = check_in_force(catalog, request, in_force)?;
    if idl.instance_id.is_none() {
        idl.instance_id = Some(generated_instance_id(&sdl.name, rng));
    }
    let instance_id = idl.instance_id.clone().expect("set above");
    let context = ResolveContext { instance_id: &instance_id, cluster_domain: &profile.cluster_domain };
    let resolved = resolve(&sdl, &idl, stored, &context, rng)?;
    Ok(Prepared { service, version, sdl, idl, resolved })
}

/// The instance id `request` names (flag or IDL), or a new one generated for its service;
/// written back into `request.instance_id`.
pub fn assign_instance_id(
    catalog: &Catalog,
    request: &mut InstanceRequest,
    rng: &mut (impl Rng + CryptoRng),
) -> Result<String, HsmError> {
    let id = match request.instance_id.clone().or_else(|| request.idl.instance_id.clone()) {
        Some(id) => id,
        None => generated_instance_id(&catalog.service(&request.service_id)?.name, rng),
    };
    request.instance_id = Some(id.clone());
    Ok(id)
}

/// `<service>-<6 random lowercase letters and digits>`, e.g. `mysql-k3x9q2`.
pub fn generated_instance_id(service_name: &str, rng: &mut (impl Rng + CryptoRng)) -> String {
    let suffix = sdl::generate::password(rng, 6, "abcdefghijklmnopqrstuvwxyz0123456789");
    let max_prefix = sdl::names::DNS_LABEL_MAX - 7;
    let prefix = &service_name[..service_name.len().min(max_prefix)];
    format!("{}-{suffix}", prefix.trim_end_matches('-'))
}

/// Longest value read from a file by [`read_value_files`].
pub const MAX_VALUE_FILE: u64 = 1 << 20;

/// Values read from files, for `NAME=FILE` pairs (`-` is standard input): at most
/// [`MAX_VALUE_FILE`] bytes of UTF-8 from a regular file, one trailing newline dropped. This is
/// how secrets reach `hsm` without appearing in the process list.
pub fn read_value_files(files: &[(String, String)]) -> Result<Vec<(String, String)>, HsmError> {
    use std::io::Read;
    let mut values = Vec::new();
    for (name, file) in files {
        let fail = |why: String| HsmError::ValueFile { name: name.clone(), file: file.clone(), why };
        let mut bytes = Vec::new();
        let read = if file == "-" {
            std::io::stdin().lock().take(MAX_VALUE_FILE + 1).read_to_end(&mut bytes)
        } else {
            // Checked before opening: opening a FIFO would wait for a writer.
            let meta = std::fs::metadata(file).map_err(|e| fail(e.to_string()))?;
            if !meta.is_file() {
                return Err(fail("not a regular file".into()));
            }
            std::fs::File::open(file).map_err(|e| fail(e.to_string()))?.take(MAX_VALUE_FILE + 1).read_to_end(&mut bytes)
        };
        read.map_err(|e| fail(e.to_string()))?;
        if bytes.len() as u64 > MAX_VALUE_FILE {
            return Err(fail(format!("longer than {MAX_VALUE_FILE} bytes")));
        }
        let mut value = String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".into()))?;
        if value.ends_with('\n') {
            value.pop();
            if value.ends_with('\r') {
                value.pop();
            }
        }
        values.push((name.clone(), value));
    }
    Ok(values)
}
