//! The one error type of the installer's actions. Each variant says what went wrong in the
//! installer's own terms (no command-line wording: flags and "run it again" hints are the
//! binary's) and carries its exit code: 2 for bad input, 1 for everything else.

use std::path::PathBuf;

/// Why an action failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The properties file is not a valid configuration.
    #[error(transparent)]
    Input(#[from] crate::InputError),
    /// Another input file (a CA bundle, the catalog) is unfit.
    #[error("{}: {message}", path.display())]
    InputFile {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The service catalog cannot be read or lacks the platform service.
    #[error("{0}")]
    Catalog(String),
    /// The state directory holds something bootstrap did not write, or cannot be written.
    #[error(transparent)]
    State(#[from] crate::StateError),
    /// The Terraform configuration could not be rendered.
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
    /// A file in the state directory could not be written or removed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Terraform failed.
    #[error(transparent)]
    Terraform(#[from] crate::terraform::TerraformError),
    /// The cloud helper could not be asked.
    #[error(transparent)]
    Helper(#[from] crate::cloud::HelperError),
    /// The cloud answered with an error of its own.
    #[error("{0}")]
    Cloud(String),
    /// Preflight found problems in the cloud account; nothing was created.
    #[error(
        "preflight found {} problem{} in the {place}; nothing was created:\n  {}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems.join("\n  ")
    )]
    Preflight {
        /// "AWS account", "OpenStack project".
        place: &'static str,
        /// Every problem, each naming the key to fix.
        problems: Vec<String>,
    },
    /// What Kubernetes created in the cloud could not all be removed.
    #[error("could not remove what Kubernetes created:\n  {}", .0.join("\n  "))]
    NotSwept(Vec<String>),
    /// Terraform still records resources after `destroy`.
    #[error("these resources are still recorded after destroy:\n  {}", .0.join("\n  "))]
    StillRecorded(Vec<String>),
    /// Resources of the cluster are still in the cloud after `destroy`.
    #[error("destroyed, but these resources of the cluster are still in the cloud:\n  {}", .0.join("\n  "))]
    LeftInCloud(Vec<String>),
    /// Destroying resources was not confirmed.
    #[error("cancelled: nothing was {0}")]
    Cancelled(&'static str),
    /// A Kubernetes call failed.
    #[error(transparent)]
    Cluster(#[from] service_manager::cluster::ClusterError),
    /// Waiting for the API, the nodes or a drain failed.
    #[error(transparent)]
    Kube(#[from] crate::kube::KubeError),
    /// The platform service failed.
    #[error(transparent)]
    Instance(#[from] service_manager::instance::InstanceError),
    /// The state directory holds no record of a cluster.
    #[error("{}: nothing planned or provisioned from this state directory (no state.json, no terraform/)", .0.display())]
    NoState(PathBuf),
    /// A phase of an install failed; the record says so and a re-run continues from it.
    #[error("{source}")]
    Phase {
        /// The phase.
        phase: String,
        /// Why.
        source: Box<Error>,
    },
}

impl Error {
    /// The process exit code: 2 for bad input, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Input(_) | Error::InputFile { .. } | Error::Catalog(_) => 2,
            Error::State(e) => e.exit_code(),
            Error::Phase { source, .. } => source.exit_code(),
            Error::Instance(e) => e.exit_code(),
            _ => 1,
        }
    }

    /// `path: error` as [`Error::Io`].
    pub fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io { path: path.to_path_buf(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_exits_2_and_everything_else_1() {
        let input = Error::InputFile { path: "ca.pem".into(), message: "does not exist".into() };
        assert_eq!(input.exit_code(), 2);
        assert_eq!(Error::Cancelled("changed").exit_code(), 1);
        assert_eq!(Error::Cancelled("changed").to_string(), "cancelled: nothing was changed");
        let phase = Error::Phase { phase: "preflight".into(), source: Box::new(input) };
        assert_eq!(phase.exit_code(), 2, "a phase failing on bad input is bad input");
        assert_eq!(phase.to_string(), "ca.pem: does not exist");
        let preflight = Error::Preflight { place: "AWS account", problems: vec!["AWS.AMI: not found".into()] };
        assert_eq!(
            preflight.to_string(),
            "preflight found 1 problem in the AWS account; nothing was created:\n  AWS.AMI: not found"
        );
    }
}
