//! Instances on a cluster: what every action shares — the record each instance keeps in its
//! namespace ([`record`]) with the SDL in force ([`in_force`]), the operation lock ([`lock`]),
//! applying a plan ([`apply`]) — and the error every action returns. The actions themselves are in [`crate::actions`].

pub mod apply;
pub mod in_force;
pub mod lock;
pub mod record;

use std::time::Duration;

use crate::cluster::ClusterError;
use crate::error::HsmError;
use crate::wait::WaitError;

pub use record::{Record, State};

/// How long after its deadline an operation may still take to record that it failed.
pub const RECORD_GRACE: Duration = Duration::from_secs(10);

/// A failed instance operation.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// Planning or input problems.
    #[error(transparent)]
    Hsm(#[from] HsmError),
    /// The cluster refused or could not be reached.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// Waiting for workloads or jobs failed.
    #[error(transparent)]
    Wait(#[from] WaitError),
    /// The namespace exists and hsm does not manage it.
    #[error("namespace \"{0}\" exists and is not managed by hsm; choose another instance id")]
    NotOurs(String),
    /// No such instance.
    #[error("instance \"{0}\" not found")]
    NotFound(String),
    /// The instance exists with another service or version.
    #[error("instance \"{id}\" already exists as {existing}{hint}")]
    Exists {
        /// Instance id.
        id: String,
        /// What it is.
        existing: String,
        /// What to do instead.
        hint: &'static str,
    },
    /// Another hsm is changing the instance.
    #[error("instance \"{id}\" exists and is being changed by another hsm ({holder}, {age}s ago); try again when it finishes")]
    Busy {
        /// Instance id.
        id: String,
        /// Who holds the operation.
        holder: String,
        /// Seconds since it was last renewed.
        age: u64,
    },
    /// The namespace is being deleted.
    #[error("instance \"{0}\" is being deleted")]
    Terminating(String),
    /// The service gives components a ServiceAccount with permissions, and this operation may
    /// not grant permissions (the converger's: it holds none to give).
    #[error("instance \"{id}\": the service gives component(s) {components} a ServiceAccount and Kubernetes API permissions, which the converger does not grant (it holds no permission to give); create the instance with `hsm create-instance` as a cluster administrator")]
    NeedsAdmin {
        /// Instance id.
        id: String,
        /// The components asking, comma-separated.
        components: String,
    },
    /// The converger could not carry out the Instance's spec (its `Ready` condition).
    #[error("instance \"{id}\" failed ({reason}): {message}")]
    Declared {
        /// Instance id.
        id: String,
        /// The condition's reason, e.g. `UpgradeRefused`.
        reason: String,
        /// The condition's message.
        message: String,
        /// The exit code hsm gives the same failure without a converger.
        code: u8,
    },
    /// The instance's service has no `bindings` section (or its SDL in force is not stored).
    #[error("instance \"{id}\" cannot be bound: {reason}")]
    NotBindable {
        /// Instance id.
        id: String,
        /// Why.
        reason: String,
    },
    /// No such binding.
    #[error("binding \"{binding}\" of instance \"{instance}\" not found")]
    BindingNotFound {
        /// Instance id.
        instance: String,
        /// Binding id.
        binding: String,
    },
    /// A bind job failed.
    #[error("binding \"{binding}\" of instance \"{instance}\" failed: {message}")]
    BindingFailed {
        /// Instance id.
        instance: String,
        /// Binding id.
        binding: String,
        /// The job's failure.
        message: String,
    },
    /// The operator said no.
    #[error("cancelled: nothing was deleted")]
    Cancelled,
    /// Something the instance keeps on the cluster cannot be read: going on would lose it.
    #[error("instance \"{id}\": {what} cannot be read ({error}); refusing to go on, because it holds what the instance was created with (generated passwords, its CA key); restore it, or delete the instance")]
    Corrupt {
        /// Instance id.
        id: String,
        /// Which record, e.g. `Secret secret-parameters's hsm-generated.json`.
        what: String,
        /// Why it cannot be read.
        error: String,
    },
}

impl InstanceError {
    /// The exit code a command line gives this error: 2 for bad input (nothing was touched),
    /// 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            InstanceError::Hsm(_) | InstanceError::NotBindable { .. } => 2,
            InstanceError::Declared { code, .. } => *code,
            _ => 1,
        }
    }
}
