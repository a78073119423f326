//! `status`: what the state directory says about the cluster and its install phases.

use std::path::PathBuf;

use crate::phases::{PhaseRecord, Record, Status, PHASES};
use crate::Error;

/// Options of `status`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The state directory.
    pub state_dir: PathBuf,
}

/// What the state directory says.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// What the cluster is.
    pub status: Status,
    /// Terraform's outputs as of the last provision.
    pub outputs: std::collections::BTreeMap<String, serde_json::Value>,
    /// Every install phase in order, with its last run (`None`: pending).
    pub phases: Vec<(&'static str, Option<PhaseRecord>)>,
}

impl Outcome {
    /// Whether an install ever recorded a phase.
    pub fn install_started(&self) -> bool {
        self.phases.iter().any(|(_, p)| p.is_some())
    }
}

/// Reads the state record. A state directory with a rendered configuration and no record
/// (rendered by an earlier version) is planned; one with neither is [`Error::NoState`].
pub fn run(options: &Options) -> Result<Outcome, Error> {
    let state = &options.state_dir;
    crate::workspace::check_state(state)?;
    let (record, found): (Record, bool) = Record::open(state)?;
    let status = match record.status {
        Some(status) => status,
        None if state.join("terraform").is_dir() || found => Status::Planned,
        None => return Err(Error::NoState(state.clone())),
    };
    let phases = PHASES.iter().map(|name| (*name, record.get(name).cloned())).collect();
    Ok(Outcome { status, outputs: record.outputs, phases })
}
