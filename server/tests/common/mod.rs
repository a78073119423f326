//! What the server's tests on the real control plane share: the catalog folder, waiting until
//! a check holds, and a converger running in the test's process.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sdl::catalog::Catalog;
use service_manager::cluster::{ClientOptions, Cluster};
use service_manager::{controller, ClusterProfile};
use stratus_tests::cluster::ControlPlane;

/// The repository's catalog.
pub fn catalog_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog")
}

/// Polls `check` until it gives a value; fails naming `what` after `limit`.
pub fn eventually<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A converger running in this process (`controller::run_until`, what `hsm controller` runs),
/// stopped gracefully (its Lease released) when dropped.
pub struct Converger {
    plane: &'static ControlPlane,
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Converger {
    /// Starts one on `plane` with the repository's catalog and two workers.
    pub fn start(plane: &'static ControlPlane) -> Converger {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let cluster = plane.block_on(Cluster::connect(Some(&plane.kubeconfig()), None, ClientOptions::default()));
        let cluster = cluster.unwrap();
        let catalog = Catalog::load(&catalog_dir()).unwrap();
        let options = controller::Options { workers: 2, ..controller::Options::default() };
        let task = plane.runtime().spawn(async move {
            let replica = controller::Replica::default();
            let profile = ClusterProfile::default();
            if let Err(error) = controller::run_until(cluster, catalog, profile, options, replica, stopped).await {
                eprintln!("converger: {error}");
            }
        });
        Converger { plane, stop, task: Some(task) }
    }
}

impl Drop for Converger {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = self.plane.block_on(task);
        }
    }
}
