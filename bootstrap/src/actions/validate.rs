//! `validate`: reads a properties file and reports every problem.

use std::path::PathBuf;

use super::Context;
use crate::config::Config;
use crate::Error;

/// Options of `validate`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The properties file.
    pub input: PathBuf,
}

/// A valid configuration.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The configuration read.
    pub config: Config,
}

impl Outcome {
    /// One line about the cluster: provider, machines, domain.
    pub fn summary(&self) -> String {
        let c = &self.config;
        format!(
            "provider {}, {} master(s), {} node(s), {} GlusterFS node(s), domain {}",
            c.provider.templates(),
            c.master_count,
            c.node_count,
            c.gluster_node_count,
            c.domain
        )
    }
}

/// Reads and validates `options.input` (bad input: exit code 2, every problem listed).
pub fn run(options: &Options, context: &Context) -> Result<Outcome, Error> {
    Ok(Outcome { config: crate::load(&options.input, context.env)? })
}

/// Reads the configuration and says so on the report (the first line of most actions).
pub(crate) fn announce(input: &std::path::Path, context: &Context) -> Result<Config, Error> {
    let config = crate::load(input, context.env)?;
    announced(input, &config, context);
    Ok(config)
}

/// Says on the report that `config` was read from `input`.
pub(crate) fn announced(input: &std::path::Path, config: &Config, context: &Context) {
    context.report.line(&format!(
        "validated {}: {} cluster \"{}\"",
        input.display(),
        config.provider.templates(),
        config.cluster_name
    ));
}
