//! `preflight`: checks the cloud account before anything is created and lists every problem
//! (AWS: AMI, instance types, VPC, subnets and their zones, key pair; OpenStack: image,
//! flavors, network and subnet, key pair, floating-IP pool, quotas).

use std::path::PathBuf;

use super::Context;
use crate::config::{Config, ProviderKind};
use crate::Error;

/// Options of `preflight`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The properties file.
    pub input: PathBuf,
}

/// What preflight checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The cloud (`"AWS account"`, `"OpenStack project"`) has everything the cluster needs.
    Ready(&'static str),
    /// The provider has no API to check (existing machines, vSphere for now).
    NotChecked(ProviderKind),
}

impl Outcome {
    /// One line saying what was found.
    pub fn summary(&self) -> String {
        match self {
            Outcome::Ready(place) => format!("preflight: the {place} has everything the cluster needs"),
            Outcome::NotChecked(ProviderKind::Local) => {
                "preflight: nothing to check beyond the configuration for existing machines".into()
            }
            Outcome::NotChecked(_) => {
                "preflight: vSphere is not checked through its API yet: the configuration is all that was checked"
                    .into()
            }
        }
    }
}

/// Reads the configuration and checks the cloud account.
pub fn run(options: &Options, context: &Context) -> Result<Outcome, Error> {
    let config = crate::load(&options.input, context.env)?;
    check(&config, context)
}

/// Checks the cloud account for `config`; every problem is listed before anything is
/// created ([`Error::Preflight`]). Reports the verdict.
pub fn check(config: &Config, context: &Context) -> Result<Outcome, Error> {
    let outcome = match crate::helper::preflight_request(config, context.env)? {
        Some((request, place)) => {
            crate::helper::preflight(&context.program, &request, place)?;
            Outcome::Ready(place)
        }
        None => Outcome::NotChecked(config.provider.kind()),
    };
    context.report.line(&outcome.summary());
    Ok(outcome)
}
