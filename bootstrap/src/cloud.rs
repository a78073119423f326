//! The protocol between `bootstrap` and its cloud helper, `bootstrap-cloud`: the one program
//! that links the cloud SDKs (aws-sdk-ec2 and the ELB SDKs, the `openstack` crate), much as
//! Terraform keeps each provider in its own executable. `bootstrap` writes one JSON
//! [`Request`] to the helper's stdin (credentials included: they never go on a command line)
//! and reads one JSON [`Answer`] from its stdout; the helper's stderr is the user's.
//!
//! Keeping the SDKs out of `bootstrap` itself halves its size and the relocations its every
//! start pays for, though most runs (`plan`, every run on existing machines) never call a
//! cloud API.

use std::path::{Path, PathBuf};

impl From<&crate::config::IdOrName> for bootstrap_openstack::IdOrName {
    fn from(value: &crate::config::IdOrName) -> Self {
        match value {
            crate::config::IdOrName::Id(id) => bootstrap_openstack::IdOrName::Id(id.clone()),
            crate::config::IdOrName::Name(name) => bootstrap_openstack::IdOrName::Name(name.clone()),
        }
    }
}

/// What the helper is asked to do.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "call", rename_all = "kebab-case")]
pub enum Request {
    /// Check the AWS account before anything is created.
    AwsPreflight {
        /// Where and as whom.
        connection: bootstrap_aws::Connection,
        /// What the cluster needs.
        requirements: bootstrap_aws::Requirements,
    },
    /// What in AWS is still tagged with the cluster.
    AwsLeftovers {
        /// Where and as whom.
        connection: bootstrap_aws::Connection,
        /// The cluster name.
        cluster: String,
    },
    /// Remove what Kubernetes created in AWS for the cluster.
    AwsSweep {
        /// Where and as whom.
        connection: bootstrap_aws::Connection,
        /// The cluster name.
        cluster: String,
        /// Seconds between attempts at what is still in use.
        retry_after_seconds: u64,
    },
    /// Check the OpenStack project before anything is created.
    OpenStackPreflight {
        /// Where and as whom.
        connection: bootstrap_openstack::Connection,
        /// What the cluster needs.
        requirements: bootstrap_openstack::Requirements,
    },
    /// What in OpenStack is still the cluster's.
    OpenStackLeftovers {
        /// Where and as whom.
        connection: bootstrap_openstack::Connection,
        /// The cluster name.
        cluster: String,
    },
    /// Remove what Kubernetes created in OpenStack for the cluster.
    OpenStackSweep {
        /// Where and as whom.
        connection: bootstrap_openstack::Connection,
        /// The cluster name.
        cluster: String,
    },
}

/// What the helper answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    /// Preflight: every problem found, each naming the key to fix (none: ready).
    Problems(Vec<String>),
    /// Leftovers: what of the cluster is still there, one line each.
    Found(Vec<String>),
    /// Sweep: what could not be removed, `what: why` each (none: all removed).
    NotRemoved(Vec<String>),
    /// The cloud could not be asked (authentication, network, refusal): why.
    Failed(String),
}

/// Why the helper could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// It could not be started.
    #[error("cannot run the cloud helper {}: {source} (it is built and installed next to bootstrap: `cargo build --release -p bootstrap` or `cargo install --path bootstrap`)", path.display())]
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
    fn requests_and_answers_travel_as_tagged_json() {
        let request = Request::OpenStackLeftovers {
            connection: bootstrap_openstack::Connection {
                auth_url: "https://keystone:5000/v3".into(),
                username: "ops".into(),
                password: "pw".into(),
                domain: bootstrap_openstack::IdOrName::Id("default".into()),
                project: bootstrap_openstack::IdOrName::Name("stratus".into()),
                region: "RegionOne".into(),
                ca_certificate: None,
            },
            cluster: "demo".into(),
        };
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["call"], "open-stack-leftovers");
        assert_eq!(json["connection"]["domain"], serde_json::json!({"Id": "default"}));
        let back: Request = serde_json::from_value(json).unwrap();
        assert!(matches!(back, Request::OpenStackLeftovers { cluster, .. } if cluster == "demo"));
        let answer = Answer::NotRemoved(vec!["volume v-1: in use".into()]);
        assert_eq!(serde_json::from_str::<Answer>(&serde_json::to_string(&answer).unwrap()).unwrap(), answer);
    }

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
