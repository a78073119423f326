//! What the server's tests on the real control plane share: the catalog folder, waiting until
//! a check holds, a converger running in the test's process, the `hsm-server` process under
//! test (each test file adds its own ways of talking to it), de-chunking an HTTP/1.1 body and
//! finding the tools scripts/test installs. The benches include it too.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

/// An `hsm-server` process of this build on a free loopback port over plain HTTP, killed by
/// its PID when dropped.
pub struct Server {
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// Its standard error.
    pub log: PathBuf,
}

impl Server {
    /// Starts the server with `args` (the authentication flags: `--no-auth`, or OpenID's), the
    /// repository's catalog and `kubeconfig`, its log in `dir/NAME.log`, `env` set (after a
    /// debug `HSM_LOG`, which `env` may replace), and reads where it listens.
    pub fn spawn(kubeconfig: &Path, dir: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let log = dir.join(format!("{name}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_hsm-server"))
            .args(args)
            .args(["--insecure-http", "--listen", "127.0.0.1:0", "--catalog"])
            .arg(catalog_dir())
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .env_remove("HSM_CATALOG")
            .env_remove("HSM_SERVER_LISTEN")
            .env_remove("HSM_LEASE_NAMESPACE")
            .env_remove("KUBECONFIG")
            .env("HSM_LOG", "hsm_server=debug,tower_http=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let url = stratus_tests::process::listening_url(&mut child, &log);
        let address = url.strip_prefix("http://").expect("plain HTTP").to_string();
        Server { child, address, log }
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of a chunked HTTP/1.1 answer.
pub fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else { return body };
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            return body;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
}

/// A tool scripts/test installs: the path in the environment variable `var`, else
/// `default` (relative to the repository), or `None` after saying why; with `CI` set (CI runs
/// `CI=true`) a missing one fails the test.
pub fn installed(var: &str, default: &str, what: &str) -> Option<PathBuf> {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(default));
    if path.is_file() {
        return Some(path);
    }
    assert!(std::env::var_os("CI").is_none(), "{what} is not installed at {}: run scripts/test", path.display());
    eprintln!("SKIPPED: {what} is not installed at {} (scripts/test installs it)", path.display());
    None
}

/// schemathesis (`SCHEMATHESIS`, from PyPI), as [`installed`] finds it.
pub fn schemathesis() -> Option<PathBuf> {
    installed("SCHEMATHESIS", ".venv-schemathesis/bin/schemathesis", "schemathesis")
}
