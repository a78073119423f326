//! The record of `bootstrap install`'s phases in the state directory (`install.json`): which
//! finished, when, in how long and for which inputs. A re-run skips a finished phase whose
//! inputs (its fingerprint) are unchanged, so an install killed anywhere continues from the
//! phase it was in. Pure apart from [`Record::load`] and [`Record::save`].

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Every phase of an install, in order.
pub const PHASES: &[&str] =
    &["validate", "preflight", "render", "provision", "api", "network", "cloud", "storage", "platform", "report"];

/// How a phase ended (or that it is under way, or was when the process died).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseState {
    /// Started and not finished: the process is running or was killed.
    Running,
    /// Finished.
    Done,
    /// Failed; the message says why.
    Failed,
}

/// One phase's last run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// Phase name (one of [`PHASES`]).
    pub name: String,
    /// How it ended.
    pub state: PhaseState,
    /// Digest of the phase's inputs; empty for phases that always run.
    pub fingerprint: String,
    /// Start, seconds since the Unix epoch.
    pub started: u64,
    /// Duration in seconds.
    pub seconds: f64,
    /// What it did, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Every phase's last run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// In phase order.
    pub phases: Vec<PhaseRecord>,
}

impl Record {
    /// The record at `path`; an empty one when there is none yet.
    pub fn load(path: &Path) -> Result<Record, crate::StateError> {
        use crate::StateError;
        match crate::read_input_file(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                StateError::Invalid(format!(
                    "{}: not an install record ({e}); expected the install.json an earlier run wrote",
                    path.display()
                ))
            }),
            Err(crate::FileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record::default()),
            Err(crate::FileError::Io(e)) => Err(StateError::Io(format!("{}: cannot read: {e}", path.display()))),
            Err(e) => Err(StateError::Invalid(format!("{}: {e}", path.display()))),
        }
    }

    /// Writes the record to `path` atomically (a kill never leaves half a file).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        crate::write_private(path, text.as_bytes())
    }

    /// The last run of phase `name`.
    pub fn get(&self, name: &str) -> Option<&PhaseRecord> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// Whether `name` finished for exactly these inputs.
    pub fn is_done(&self, name: &str, fingerprint: &str) -> bool {
        self.get(name).is_some_and(|p| p.state == PhaseState::Done && p.fingerprint == fingerprint)
    }

    /// Records a run of a phase, replacing its previous one and keeping phase order.
    pub fn set(&mut self, record: PhaseRecord) {
        self.phases.retain(|p| p.name != record.name);
        self.phases.push(record);
        let order = |name: &str| PHASES.iter().position(|p| *p == name).unwrap_or(PHASES.len());
        self.phases.sort_by_key(|p| order(&p.name));
    }

    /// Forgets `from` and every later phase, so they run again.
    pub fn forget_from(&mut self, from: &str) {
        let Some(start) = PHASES.iter().position(|p| *p == from) else { return };
        self.phases.retain(|p| PHASES.iter().position(|q| *q == p.name).is_none_or(|i| i < start));
    }

    /// The first phase not done, if any.
    pub fn next(&self) -> Option<&'static str> {
        PHASES.iter().copied().find(|name| self.get(name).is_none_or(|p| p.state != PhaseState::Done))
    }
}

/// A hex SHA-256 over `parts` (each length-prefixed, so boundaries count).
pub fn fingerprint(parts: &[&[u8]]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part);
    }
    hex(context.finish())
}

/// A digest in lowercase hexadecimal.
pub(crate) fn hex(digest: ring::digest::Digest) -> String {
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(name: &str, fingerprint: &str) -> PhaseRecord {
        PhaseRecord {
            name: name.into(),
            state: PhaseState::Done,
            fingerprint: fingerprint.into(),
            started: 0,
            seconds: 0.0,
            message: None,
        }
    }

    #[test]
    fn a_phase_is_skipped_only_when_done_for_the_same_inputs() {
        let mut record = Record::default();
        record.set(done("provision", "a"));
        assert!(record.is_done("provision", "a"));
        assert!(!record.is_done("provision", "b"));
        record.set(PhaseRecord { state: PhaseState::Running, ..done("provision", "a") });
        assert!(!record.is_done("provision", "a"), "a phase killed while running is not done");
    }

    #[test]
    fn phases_keep_their_order_and_can_be_forgotten_from_one_on() {
        let mut record = Record::default();
        for name in ["network", "validate", "provision", "api"] {
            record.set(done(name, ""));
        }
        let names: Vec<&str> = record.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["validate", "provision", "api", "network"]);
        assert_eq!(record.next(), Some("preflight"));
        record.forget_from("api");
        let names: Vec<&str> = record.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["validate", "provision"]);
    }

    #[test]
    fn fingerprints_separate_their_parts() {
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
        assert_eq!(fingerprint(&[b"x"]), fingerprint(&[b"x"]));
        assert_eq!(fingerprint(&[]).len(), 64);
    }

    #[test]
    fn a_record_survives_a_round_trip_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("install.json");
        assert_eq!(Record::load(&path).unwrap(), Record::default());
        let mut record = Record::default();
        record.set(PhaseRecord { message: Some("3 resources".into()), ..done("provision", "f") });
        record.save(&path).unwrap();
        assert_eq!(Record::load(&path).unwrap(), record);
        std::fs::write(&path, "{").unwrap();
        let error = Record::load(&path).unwrap_err();
        assert!(error.to_string().contains("install.json: not an install record") && error.exit_code() == 2);
    }
}
