//! `configure-instance`: change parameters of an instance at its version (immutable ones
//! excepted) and roll its workloads.

use std::time::Duration;

use sdl::catalog::Catalog;

use super::change::{self, Change, Outcome};
use crate::cluster::Cluster;
use crate::error::HsmError;
use crate::instance::InstanceError;
use crate::profile::ClusterProfile;
use crate::progress::Progress;

/// Options of `configure-instance`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Parameters to set (at least one).
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
    if options.sets.is_empty() {
        return Err(HsmError::Usage("configure-instance needs at least one parameter to set".into()).into());
    }
    let change = Change { target: None, sets: options.sets, wait: options.wait, timeout: options.timeout };
    change::run(cluster, catalog, id, &change, profile, progress).await
}
