//! `configure-instance`: change parameters of an instance at its version (immutable ones
//! excepted) and roll its workloads.

use std::time::Duration;

use sdl::catalog::Catalog;

use super::change::{self, Change, Outcome};
use crate::cluster::Cluster;
use crate::instance::InstanceError;
use crate::profile::ClusterProfile;
use crate::progress::Progress;

/// Options of `configure-instance`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Parameters to set (with none, the change is refused as changing nothing).
    pub sets: Vec<(String, String)>,
    /// Wait until workloads are ready.
    pub wait: bool,
    /// How long the whole operation may take.
    pub timeout: Duration,
}

/// Reconfigures instance `id`.
pub async fn run(
    cluster: &Cluster,
    catalog: &Catalog,
    id: &str,
    options: Options,
    profile: &ClusterProfile,
    progress: &dyn Progress,
) -> Result<Outcome, InstanceError> {
    let change = Change {
        target: None,
        sets: options.sets,
        idl: None,
        wait: options.wait,
        readiness: false,
        timeout: options.timeout,
    };
    change::run(cluster, catalog, id, &change, profile, progress).await
}
