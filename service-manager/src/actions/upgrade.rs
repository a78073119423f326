//! `upgrade-instance`: move an instance to another version of its service, as the catalog's
//! `upgrade_from` allows, optionally setting parameters at the same time.

use std::time::Duration;

use sdl::catalog::Catalog;

use super::change::{self, Change, Outcome};
use crate::cluster::Cluster;
use crate::instance::InstanceError;
use crate::profile::ClusterProfile;
use crate::progress::Progress;

/// Options of `upgrade-instance`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Product version to upgrade to.
    pub product_version: String,
    /// SDL version (newest of the product version when absent).
    pub sdl_version: Option<String>,
    /// Parameters to set at the same time.
    pub sets: Vec<(String, String)>,
    /// Wait until workloads are ready.
    pub wait: bool,
    /// How long the whole operation may take.
    pub timeout: Duration,
}

/// Upgrades instance `id`.
pub async fn run(
    cluster: &Cluster,
    catalog: &Catalog,
    id: &str,
    options: Options,
    profile: &ClusterProfile,
    progress: &dyn Progress,
) -> Result<Outcome, InstanceError> {
    let change = Change {
        target: Some((options.product_version, options.sdl_version)),
        sets: options.sets,
        idl: None,
        wait: options.wait,
        readiness: false,
        timeout: options.timeout,
    };
    change::run(cluster, catalog, id, &change, profile, progress).await
}
