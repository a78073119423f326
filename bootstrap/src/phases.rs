//! The one state record in the state directory (`state.json`): what the cluster is (planned,
//! provisioned, installed, uninstalled), what Terraform reported about its machines, and
//! which install phases finished, when, in how long and for which inputs. A re-run skips a
//! finished phase whose inputs (its fingerprint) are unchanged, so an install killed anywhere
//! continues from the phase it was in. [`Runner`] runs phases and keeps the record. Pure
//! apart from loading and saving the record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

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

/// The record's file in the state directory.
pub const RECORD_FILE: &str = "state.json";
/// Where earlier versions kept the phases (merged into [`RECORD_FILE`] when found).
const OLD_PHASES_FILE: &str = "install.json";

/// What the cluster of a state directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Rendered and planned; no machine made yet.
    Planned,
    /// Terraform is applying (or was, when the process died).
    Provisioning,
    /// The machines are there.
    Provisioned,
    /// The platform is installed.
    Installed,
    /// Everything was destroyed.
    Uninstalled,
}

impl Status {
    /// How `bootstrap status` words it.
    pub fn describe(self) -> &'static str {
        match self {
            Status::Planned => "planned, not provisioned",
            Status::Provisioning => "provisioning (or interrupted while provisioning)",
            Status::Provisioned => "provisioned",
            Status::Installed => "installed",
            Status::Uninstalled => "uninstalled",
        }
    }
}

/// The state record: the cluster's status, Terraform's outputs, every phase's last run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// What the cluster is (`None`: nothing planned yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Terraform's outputs as of the last provision (`api_address`, `gluster_addresses`, ...).
    #[serde(default)]
    pub outputs: BTreeMap<String, serde_json::Value>,
    /// In phase order.
    #[serde(default)]
    pub phases: Vec<PhaseRecord>,
}

impl Record {
    /// The record at `path`; an empty one when there is none yet.
    pub fn load(path: &Path) -> Result<Record, crate::StateError> {
        use crate::StateError;
        match crate::read_input_file(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                StateError::Invalid(format!(
                    "{}: not a state record ({e}); expected the {} an earlier run wrote",
                    path.display(),
                    path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
                ))
            }),
            Err(crate::FileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record::default()),
            Err(crate::FileError::Io(e)) => Err(StateError::Io(format!("{}: cannot read: {e}", path.display()))),
            Err(e) => Err(StateError::Invalid(format!("{}: {e}", path.display()))),
        }
    }

    /// The record of state directory `state`, with the phases an earlier version kept in
    /// `install.json` merged in; and whether there was any record at all.
    pub fn open(state: &Path) -> Result<(Record, bool), crate::StateError> {
        let path = state.join(RECORD_FILE);
        let old = state.join(OLD_PHASES_FILE);
        let found = path.exists() || old.exists();
        let mut record = Record::load(&path)?;
        if record.phases.is_empty() && old.exists() {
            record.phases = Record::load(&old)?.phases;
        }
        Ok((record, found))
    }

    /// Writes the record to `path` atomically (a kill never leaves half a file).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        crate::write_private(path, text.as_bytes())
    }

    /// Saves the record in state directory `state`.
    pub fn save_in(&self, state: &Path) -> Result<(), crate::Error> {
        let path = state.join(RECORD_FILE);
        self.save(&path).map_err(crate::Error::io(&path))?;
        // The phases are in this record now; an old separate file would only mislead.
        let _ = std::fs::remove_file(state.join(OLD_PHASES_FILE));
        Ok(())
    }

    /// Sets the status and saves the record in state directory `state`.
    pub fn set_status(&mut self, state: &Path, status: Status) -> Result<(), crate::Error> {
        self.status = Some(status);
        self.save_in(state)
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

/// Runs an install's phases: reports each one, records it in the state record, and skips the
/// ones already done for the same inputs.
pub struct Runner<'a> {
    state: PathBuf,
    report: &'a dyn crate::progress::Report,
    current: Option<(String, String, Instant, u64)>,
}

impl<'a> Runner<'a> {
    /// The runner of state directory `state` (created 0700 if missing).
    pub fn open(state: &Path, report: &'a dyn crate::progress::Report) -> Result<Runner<'a>, crate::Error> {
        crate::workspace::state_dirs(state)?;
        Ok(Runner { state: state.to_path_buf(), report, current: None })
    }

    /// The record as it is in the state directory now (the file is the one truth: work done
    /// inside a phase updates it too).
    pub fn record(&self) -> Result<Record, crate::Error> {
        Ok(Record::open(&self.state)?.0)
    }

    /// Changes the record in the file.
    fn update(&self, change: impl FnOnce(&mut Record)) -> Result<(), crate::Error> {
        let mut record = self.record()?;
        change(&mut record);
        record.save_in(&self.state)
    }

    /// Sets the cluster's status.
    pub fn set_status(&mut self, status: Status) -> Result<(), crate::Error> {
        self.update(|r| r.status = Some(status))
    }

    /// Forgets phase `from` and every later one, so they run again.
    pub fn forget_from(&mut self, from: &str) -> Result<(), crate::Error> {
        self.update(|r| r.forget_from(from))
    }

    fn begin(&mut self, name: &str, fingerprint: &str) -> Result<(), crate::Error> {
        self.report.line(&format!("{name}: started"));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        self.current = Some((name.to_string(), fingerprint.to_string(), Instant::now(), now));
        self.update(|r| {
            r.set(PhaseRecord {
                name: name.into(),
                state: PhaseState::Running,
                fingerprint: fingerprint.into(),
                started: now,
                seconds: 0.0,
                message: None,
            })
        })
    }

    fn end(&mut self, state: PhaseState, message: &str) -> Result<(), crate::Error> {
        let Some((name, fingerprint, began, started)) = self.current.take() else { return Ok(()) };
        let seconds = began.elapsed().as_secs_f64();
        let verb = if state == PhaseState::Done { "done" } else { "FAILED" };
        let first_line = message.lines().next().unwrap_or_default();
        let detail = if first_line.is_empty() { String::new() } else { format!(" — {first_line}") };
        self.report.line(&format!("{name}: {verb} in {seconds:.1}s{detail}"));
        self.update(|r| {
            r.set(PhaseRecord {
                name,
                state,
                fingerprint,
                started,
                seconds,
                message: (!message.is_empty()).then(|| message.to_string()),
            })
        })
    }

    /// Runs `work` as phase `name` (unless done for `fingerprint`; `None` always runs it),
    /// recording how it ended. `work` returns its value and a line saying what it did. A
    /// failure is returned as [`crate::Error::Phase`].
    pub fn run<T>(
        &mut self,
        name: &str,
        fingerprint: Option<&str>,
        work: impl FnOnce() -> Result<(T, String), crate::Error>,
    ) -> Result<Option<T>, crate::Error> {
        let fingerprint = fingerprint.unwrap_or_default();
        if !fingerprint.is_empty() && self.record()?.is_done(name, fingerprint) {
            self.report.line(&format!("{name}: done in an earlier run, skipped"));
            return Ok(None);
        }
        self.begin(name, fingerprint)?;
        match work() {
            Ok((value, message)) => {
                self.end(PhaseState::Done, &message)?;
                Ok(Some(value))
            }
            Err(error) => {
                self.end(PhaseState::Failed, &error.to_string())?;
                Err(crate::Error::Phase { phase: name.to_string(), source: Box::new(error) })
            }
        }
    }
}

/// The fingerprint of a serialisable value.
pub fn fingerprint_of(value: &impl Serialize) -> String {
    fingerprint(&[&serde_json::to_vec(value).expect("values serialise")])
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
        let path = dir.path().join("state.json");
        assert_eq!(Record::load(&path).unwrap(), Record::default());
        let mut record = Record::default();
        record.set(PhaseRecord { message: Some("3 resources".into()), ..done("provision", "f") });
        record.status = Some(Status::Provisioned);
        record.outputs.insert("api_address".into(), "192.0.2.7".into());
        record.save(&path).unwrap();
        assert_eq!(Record::load(&path).unwrap(), record);
        std::fs::write(&path, "{").unwrap();
        let error = Record::load(&path).unwrap_err();
        assert!(error.to_string().contains("state.json: not a state record") && error.exit_code() == 2);
    }

    #[test]
    fn the_two_files_of_earlier_versions_are_read_as_one_record() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("state.json"), r#"{"status": "installed", "outputs": {"api_address": "a"}}"#)
            .unwrap();
        let mut old = Record::default();
        old.set(done("provision", "f"));
        old.save(&dir.path().join("install.json")).unwrap();
        let (record, found) = Record::open(dir.path()).unwrap();
        assert!(found);
        assert_eq!(record.status, Some(Status::Installed));
        assert_eq!(record.outputs["api_address"], "a");
        assert!(record.is_done("provision", "f"));
        record.save_in(dir.path()).unwrap();
        assert!(!dir.path().join("install.json").exists(), "the phases live in state.json now");
        assert_eq!(Record::open(dir.path()).unwrap().0, record);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(Record::open(empty.path()).unwrap(), (Record::default(), false));
    }

    #[test]
    fn the_runner_records_each_phase_skips_finished_ones_and_wraps_failures() {
        let dir = tempfile::tempdir().unwrap();
        let report = crate::progress::Collect::default();
        let mut runner = Runner::open(dir.path(), &report).unwrap();
        assert_eq!(runner.run("validate", None, || Ok((1, "checked".to_string()))).unwrap(), Some(1));
        assert_eq!(runner.run("provision", Some("f"), || Ok((2, String::new()))).unwrap(), Some(2));
        let skipped = runner.run("provision", Some("f"), || -> Result<((), String), crate::Error> { panic!("ran") });
        assert_eq!(skipped.unwrap(), None);
        let error = runner
            .run("api", None, || -> Result<((), String), crate::Error> { Err(crate::Error::Cancelled("changed")) })
            .unwrap_err();
        assert!(matches!(&error, crate::Error::Phase { phase, .. } if phase == "api"), "{error:?}");
        assert_eq!(error.to_string(), "cancelled: nothing was changed");
        runner.set_status(Status::Provisioned).unwrap();

        let (record, found) = Record::open(dir.path()).unwrap();
        assert!(found && record.status == Some(Status::Provisioned));
        assert_eq!(record.get("validate").unwrap().message.as_deref(), Some("checked"));
        assert!(record.is_done("provision", "f"));
        assert_eq!(record.get("api").unwrap().state, PhaseState::Failed);
        let lines = report.text();
        assert!(lines.contains("provision: done in an earlier run, skipped"), "{lines}");
        assert!(lines.contains("api: FAILED in ") && lines.ends_with(" — cancelled: nothing was changed"), "{lines}");
        runner.forget_from("provision").unwrap();
        assert_eq!(runner.record().unwrap().next(), Some("preflight"));
        assert!(runner.record().unwrap().get("provision").is_none());
    }
}
