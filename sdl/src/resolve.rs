//! Parameter resolution: the value of every parameter of an instance, from (in order) the
//! IDL, the values stored when the instance was created or last changed, the SDL default,
//! and the parameter's generator. Generated objects are keyed by generator id and returned,
//! so the caller stores them and later resolutions (upgrades) keep them unchanged.

use std::collections::BTreeMap;

use rand::{CryptoRng, Rng};
use serde::{Deserialize, Serialize};

use crate::error::ParseError;
use crate::generate::{self, GenerateError, GeneratedObject};
use crate::idl::Idl;
use crate::model::{Generator, GeneratorType, Sdl};
use crate::template;

/// Facts about the instance that parameters may refer to.
#[derive(Debug, Clone)]
pub struct ResolveContext<'a> {
    /// The instance id (namespace).
    pub instance_id: &'a str,
    /// The cluster DNS domain, usually `cluster.local`.
    pub cluster_domain: &'a str,
}

impl ResolveContext<'_> {
    /// `<instance>.svc.<cluster domain>`: the suffix of every Service name in the instance.
    pub fn service_domain_suffix(&self) -> String {
        format!("{}.svc.{}", self.instance_id, self.cluster_domain)
    }
}

/// What an instance had before: parameter values and generated objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// Parameter values by name.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Generated objects by generator id.
    #[serde(default)]
    pub generated: BTreeMap<String, GeneratedObject>,
    /// Every value the instance had, defaults included: immutable parameters keep them, and a
    /// different value for one is refused.
    #[serde(default)]
    pub previous: BTreeMap<String, String>,
}

/// Where a resolved value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The instance definition (or `--set`).
    Idl,
    /// The instance's stored values.
    Stored,
    /// The SDL default.
    Default,
    /// A generator.
    Generated,
}

/// One resolved parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedValue {
    /// The value.
    pub value: String,
    /// Where it came from.
    pub source: Source,
    /// Whether it is secret.
    pub secret: bool,
}

/// The outcome of resolution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Values of every parameter that has one (optional parameters without a value are absent).
    pub values: BTreeMap<String, ResolvedValue>,
    /// Every generated object in use, stored and new, by generator id.
    pub generated: BTreeMap<String, GeneratedObject>,
}

impl Resolved {
    /// The value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|v| v.value.as_str())
    }

    /// What to store for the next resolution.
    pub fn to_stored(&self) -> Stored {
        let all: BTreeMap<String, String> = self.values.iter().map(|(k, v)| (k.clone(), v.value.clone())).collect();
        Stored { parameters: all.clone(), generated: self.generated.clone(), previous: all }
    }
}

/// Why parameters could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Required parameters have no value from any source.
    #[error("missing required parameter{}: {}", if .0.len() == 1 { "" } else { "s" }, .0.join(", "))]
    Missing(Vec<String>),
    /// Required parameters were given an empty value (in the IDL, with `--set`, or as the
    /// SDL default).
    #[error("required parameter{} given an empty value: {}", if .0.len() == 1 { "" } else { "s" }, .0.join(", "))]
    Empty(Vec<String>),
    /// Immutable parameters were given values different from the stored ones.
    #[error("immutable parameter{} cannot change: {}", if .0.len() == 1 { "" } else { "s" }, .0.join(", "))]
    Immutable(Vec<String>),
    /// A certificate's subject alternative name refers to a parameter without a value.
    #[error("parameter \"{parameter}\": subject alternative name {} needs a value for {}", crate::error::quote(.san), crate::error::quote(.missing))]
    SanValue {
        /// The certificate parameter.
        parameter: String,
        /// The SAN template.
        san: String,
        /// The name without a value.
        missing: String,
    },
    /// A generator failed.
    #[error("parameter \"{parameter}\": {source}")]
    Generate {
        /// The generated parameter.
        parameter: String,
        /// Why.
        source: GenerateError,
    },
}

/// Resolves every parameter of `sdl` for the instance described by `idl`. The SDL and IDL must
/// already be valid ([`crate::validate`]).
pub fn resolve(
    sdl: &Sdl,
    idl: &Idl,
    stored: &Stored,
    context: &ResolveContext<'_>,
    rng: &mut (impl Rng + CryptoRng),
) -> Result<Resolved, ResolveError> {
    let mut resolved = Resolved::default();
    // Stored objects of generators the SDL still declares are kept, used or not.
    for p in &sdl.parameters {
        if let Some(g) = &p.generator {
            if let Some(object) = stored.generated.get(&g.id) {
                resolved.generated.insert(g.id.clone(), object.clone());
            }
        }
    }
    let mut missing = Vec::new();
    let mut empty = Vec::new();
    let mut immutable = Vec::new();
    let mut pending_generators = Vec::new();

    for p in &sdl.parameters {
        let given = idl.parameter(&p.name);
        let stored_value = stored.parameters.get(&p.name);
        let previous = stored.previous.get(&p.name).or(stored_value);
        let found = given
            .map(|v| (v.to_string(), Source::Idl))
            .or_else(|| stored_value.map(|v| (v.clone(), Source::Stored)))
            .or_else(|| previous.filter(|_| p.immutable).map(|v| (v.clone(), Source::Stored)))
            .or_else(|| p.default.clone().map(|v| (v, Source::Default)));
        if let (true, Some((value, _)), Some(previous)) = (p.immutable, &found, previous) {
            if value != previous {
                immutable.push(p.name.clone());
            }
        }
        match found {
            Some((value, source)) if p.required && value.is_empty() && source != Source::Stored => {
                empty.push(p.name.clone());
            }
            Some((value, source)) => {
                resolved.values.insert(p.name.clone(), ResolvedValue { value, source, secret: p.secret });
            }
            None if p.generator.is_some() => pending_generators.push(p),
            None if p.required => missing.push(p.name.clone()),
            None => {}
        }
    }
    if !immutable.is_empty() {
        return Err(ResolveError::Immutable(immutable));
    }
    if !empty.is_empty() {
        return Err(ResolveError::Empty(empty));
    }
    if !missing.is_empty() {
        return Err(ResolveError::Missing(missing));
    }

    // Certificate authorities first, so certificates can be signed by them.
    pending_generators.sort_by_key(|p| match p.generator.as_ref().map(|g| g.generate.kind) {
        Some(GeneratorType::CACertificate) => 0,
        _ => 1,
    });
    for p in pending_generators {
        let generator = p.generator.as_ref().expect("only generated parameters are pending");
        if !resolved.generated.contains_key(&generator.id) {
            let object = generate_object(sdl, &p.name, generator, &resolved, context, rng)?;
            resolved.generated.insert(generator.id.clone(), object);
        }
        let object = &resolved.generated[&generator.id];
        let value = object.value(generator.generate.value_type).ok_or_else(|| ResolveError::Generate {
            parameter: p.name.clone(),
            source: GenerateError::WrongKind(generator.id.clone()),
        })?;
        resolved.values.insert(
            p.name.clone(),
            ResolvedValue { value: value.to_string(), source: Source::Generated, secret: p.secret },
        );
    }
    Ok(resolved)
}

/// Reads an instance's stored generated objects (a JSON object of generator id → object, as
/// [`Resolved::generated`] serialises). A document that does not read completely is an error,
/// never an empty map: regenerating would replace the instance's CA and keys.
pub fn parse_generated(text: &str, source_name: &str) -> Result<BTreeMap<String, GeneratedObject>, ParseError> {
    let objects: BTreeMap<String, GeneratedObject> =
        crate::parse::parse_document(text, crate::parse::Syntax::Json, source_name).map_err(|mut e| {
            // The document holds private keys: no excerpt of a value may reach a message.
            e.message = redact_quoted(&e.message);
            e
        })?;
    for (id, object) in &objects {
        let pem_ok =
            |pem: &str, kind: &str| pem.starts_with(&format!("-----BEGIN {kind}")) && pem.trim_end().ends_with("-----");
        let ok = match object {
            GeneratedObject::Password { value } => !value.is_empty(),
            GeneratedObject::Certificate { certificate, private_key, .. } => {
                pem_ok(certificate, "CERTIFICATE") && pem_ok(private_key, "PRIVATE KEY")
            }
            GeneratedObject::SshKey { private_key, public_key, fingerprint } => {
                pem_ok(private_key, "OPENSSH PRIVATE KEY")
                    && public_key.starts_with("ssh-")
                    && fingerprint.starts_with("SHA256:")
            }
        };
        if !ok {
            return Err(ParseError {
                source_name: crate::error::sanitize(source_name),
                path: crate::error::sanitize(id),
                line: 0,
                column: 0,
                message: "the stored object is damaged (empty or not PEM/OpenSSH); refusing to regenerate it".into(),
            });
        }
    }
    Ok(objects)
}

/// `message` with every double-quoted excerpt replaced by `"…"`.
fn redact_quoted(message: &str) -> String {
    let mut out = String::new();
    for (i, part) in message.split('"').enumerate() {
        if i > 0 {
            out.push('"');
        }
        out.push_str(if i % 2 == 1 { "…" } else { part });
    }
    out
}

/// Generates the object of `generator` for parameter `parameter`; certificates are signed by a
/// CA already in `resolved.generated` and their SANs use values already resolved.
fn generate_object(
    sdl: &Sdl,
    parameter: &str,
    generator: &Generator,
    resolved: &Resolved,
    context: &ResolveContext<'_>,
    rng: &mut (impl Rng + CryptoRng),
) -> Result<GeneratedObject, ResolveError> {
    let g = &generator.generate;
    let valid_days = g.valid_days.unwrap_or(generate::DEFAULT_VALID_DAYS);
    let fail = |source| ResolveError::Generate { parameter: parameter.to_string(), source };
    Ok(match g.kind {
        GeneratorType::Password => GeneratedObject::Password {
            value: generate::password(
                rng,
                g.length.unwrap_or(generate::DEFAULT_PASSWORD_LENGTH),
                g.characters.as_deref().unwrap_or(generate::DEFAULT_PASSWORD_CHARACTERS),
            ),
        },
        GeneratorType::SSH => generate::ssh_key(rng, &format!("{}@{}", generator.id, context.instance_id)),
        GeneratorType::CACertificate => {
            generate::certificate_authority(&format!("{} CA for {}", generator.id, context.instance_id), valid_days)
                .map_err(fail)?
        }
        GeneratorType::Certificate => {
            let ca_id = g.ca.clone().unwrap_or_else(|| only_ca_id(sdl));
            let ca = resolved.generated.get(&ca_id).ok_or_else(|| fail(GenerateError::NotACa(ca_id.clone())))?;
            let suffix = context.service_domain_suffix();
            let lookup = |name: &str| match name {
                "HCP_INSTANCE_ID" => Some(context.instance_id),
                "HCP_SERVICE_DOMAIN_SUFFIX" => Some(suffix.as_str()),
                _ => resolved.get(name),
            };
            let mut sans = Vec::new();
            for san in &g.subject_alt_names {
                let value = template::substitute(san, lookup).map_err(|missing| ResolveError::SanValue {
                    parameter: parameter.to_string(),
                    san: san.clone(),
                    missing,
                })?;
                sans.push(value);
            }
            generate::certificate(&ca_id, ca, &generator.id, &sans, valid_days).map_err(fail)?
        }
    })
}

/// The id of the SDL's only CA generator (validation guarantees there is exactly one when a
/// certificate names none).
fn only_ca_id(sdl: &Sdl) -> String {
    sdl.parameters
        .iter()
        .filter_map(|p| p.generator.as_ref())
        .find(|g| g.generate.kind == GeneratorType::CACertificate)
        .map(|g| g.id.clone())
        .unwrap_or_default()
}
