//! The protocol between `bootstrap` and its cloud helper, `bootstrap-cloud`: the one program
//! that links the cloud SDKs (aws-sdk-ec2 and the ELB SDKs, the `openstack` crate), much as
//! Terraform keeps each provider in its own executable. `bootstrap` writes one JSON
//! [`Request`] to the helper's stdin (credentials included: they never go on a command line)
//! and reads one JSON [`Answer`] from its stdout; the helper's stderr is the user's.
//!
//! Keeping the SDKs out of `bootstrap` itself halves its size and the relocations its every
//! start pays for, though most runs (`plan`, every run on existing machines) never call a
//! cloud API. The request and answer types live in the serde-only crate
//! `bootstrap-cloud-protocol` (re-exported here), shared with the SDK crates; the helper is
//! its own package, `bootstrap-cloud` (`bootstrap/cloud-helper`), so neither `bootstrap`'s
//! library nor its program depends on an SDK crate.

use std::path::{Path, PathBuf};

pub use bootstrap_cloud_protocol::{aws, openstack, Answer, Request};

impl From<&crate::config::IdOrName> for openstack::IdOrName {
    fn from(value: &crate::config::IdOrName) -> Self {
        match value {
            crate::config::IdOrName::Id(id) => openstack::IdOrName::Id(id.clone()),
            crate::config::IdOrName::Name(name) => openstack::IdOrName::Name(name.clone()),
        }
    }
}

/// Why the helper could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// It could not be started.
    #[error("cannot run the cloud helper {}: {source} (it is built and installed next to bootstrap, from its own package: `cargo build --release -p bootstrap -p bootstrap-cloud`, or `cargo install --path bootstrap/cloud-helper` beside `cargo install --path bootstrap`)", path.display())]
    Start {
        /// Where it was looked for.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It did not answer with an [`Answer`].
    #[error("the cloud helper {} gave no answer ({status}){}", path.display(), if output.is_empty() { String::new() } else { format!(": {output}") })]
    NoAnswer {
        /// The helper.
        path: PathBuf,
        /// How it exited.
        status: std::process::ExitStatus,
        /// What it printed on stdout, if anything.
        output: String,
    },
}

/// The helper: `bootstrap-cloud` next to the running program, else on PATH.
pub fn helper_path(current_exe: Option<&Path>) -> PathBuf {
    current_exe
        .map(|exe| exe.with_file_name("bootstrap-cloud"))
        .filter(|sibling| sibling.is_file())
        .unwrap_or_else(|| PathBuf::from("bootstrap-cloud"))
}

/// Runs the helper at `path` on `request` and returns its answer.
pub fn ask(path: &Path, request: &Request) -> Result<Answer, HelperError> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let start = |source| HelperError::Start { path: path.to_path_buf(), source };
    let mut child = Command::new(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(start)?;
    let body = serde_json::to_vec(request).expect("requests serialise");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // A helper that exits without reading is reported by its (missing) answer below.
    let _ = stdin.write_all(&body);
    drop(stdin);
    let output = child.wait_with_output().map_err(start)?;
    serde_json::from_slice(&output.stdout).map_err(|_| HelperError::NoAnswer {
        path: path.to_path_buf(),
        status: output.status,
        output: String::from_utf8_lossy(&output.stdout).trim().chars().take(300).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_helper_that_is_missing_or_does_not_answer_is_a_clear_error() {
        let request = Request::AwsLeftovers { connection: Default::default(), cluster: "demo".into() };
        let missing = ask(Path::new("/nonexistent/bootstrap-cloud"), &request).unwrap_err().to_string();
        assert!(missing.starts_with("cannot run the cloud helper /nonexistent/bootstrap-cloud: "), "{missing}");
        let silent = ask(Path::new("/bin/true"), &request).unwrap_err().to_string();
        assert_eq!(silent, "the cloud helper /bin/true gave no answer (exit status: 0)");
        assert_eq!(helper_path(Some(Path::new("/nonexistent/bootstrap"))), PathBuf::from("bootstrap-cloud"));
    }
}
