//! `stratus-dev-cluster`: a local Kubernetes control plane for trying Stratus without a cloud
//! — the test suite's real etcd, kube-apiserver, controller manager and scheduler, with the
//! node agent standing in for kubelets (no container runs: pods are reported Running).
//!
//! `up DIR` starts it in the background and returns once the API is ready (`DIR/kubeconfig`);
//! `down DIR` stops it and removes nothing; `up` on a running cluster does nothing. With
//! `--controller HSM`, `hsm controller` (the converger) runs with it, and `up` returns once the
//! `Instance` resource is served. Run by `scripts/dev-cluster`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use stratus_tests::cluster::{ControlPlane, Options};

#[derive(Parser)]
#[command(name = "stratus-dev-cluster", version, about = "A local Kubernetes control plane (no containers run)")]
struct Args {
    #[command(subcommand)]
    command: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Start the cluster in DIR in the background; return when its API is ready.
    Up {
        /// State, certificates, logs and `kubeconfig` go here.
        dir: PathBuf,
        #[command(flatten)]
        with: With,
    },
    /// Stop the cluster running in DIR (its files stay).
    Down {
        /// The folder given to `up`.
        dir: PathBuf,
    },
    /// Run the cluster in the foreground until SIGTERM or Ctrl-C (what `up` starts).
    Run {
        /// The folder given to `up`.
        dir: PathBuf,
        #[command(flatten)]
        with: With,
    },
}

/// What runs with the control plane.
#[derive(clap::Args, Clone)]
struct With {
    /// How many nodes the node agent registers.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Run `HSM controller` (the converger) with the cluster, its log in `DIR/logs`.
    #[arg(long, value_name = "HSM")]
    controller: Option<PathBuf>,
    /// The catalog the controller reads.
    #[arg(long, value_name = "DIR", requires = "controller")]
    catalog: Option<PathBuf>,
}

impl With {
    fn args(&self) -> Vec<String> {
        let mut args = vec!["--nodes".to_string(), self.nodes.to_string()];
        for (flag, path) in [("--controller", &self.controller), ("--catalog", &self.catalog)] {
            if let Some(path) = path {
                args.extend([flag.to_string(), path.display().to_string()]);
            }
        }
        args
    }
}

fn pid_of(dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(dir.join("pid")).ok()?.trim().parse().ok()?;
    stratus_tests::cluster::running(pid).then_some(pid)
}

fn up(dir: &Path, with: &With) -> Result<String, String> {
    std::fs::create_dir_all(dir.join("logs")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dir = std::path::absolute(dir).map_err(|e| e.to_string())?;
    if pid_of(&dir).is_some() && dir.join("ready").exists() {
        return Ok(format!("already running; kubeconfig: {}", dir.join("kubeconfig").display()));
    }
    let _ = std::fs::remove_file(dir.join("ready"));
    let log_path = dir.join("logs/dev-cluster.log");
    let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    command
        .arg("run")
        .args(with.args())
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe; the cluster outlives this command's session.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| format!("cannot start the cluster: {e}"))?;
    let started = Instant::now();
    loop {
        if dir.join("ready").exists() {
            return Ok(format!("cluster ready; kubeconfig: {}", dir.join("kubeconfig").display()));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "the cluster stopped while starting ({status}):\n{}",
                stratus_tests::cluster::tail(&log_path, 30)
            ));
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err(format!("the cluster was not ready after 5 minutes; see {}", log_path.display()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn down(dir: &Path) -> Result<String, String> {
    let Some(pid) = pid_of(dir) else {
        let _ = std::fs::remove_file(dir.join("ready"));
        return Ok(format!("no cluster is running in {}", dir.display()));
    };
    // SAFETY: kill(2) on the PID the cluster recorded.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let started = Instant::now();
    while pid_of(dir).is_some() {
        if started.elapsed() > Duration::from_secs(30) {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_file(dir.join("ready"));
    let _ = std::fs::remove_file(dir.join("pid"));
    Ok(format!("cluster in {} stopped (its files stay)", dir.display()))
}

/// Starts `hsm controller` against `plane`; it dies with this process.
fn controller(plane: &ControlPlane, hsm: &Path, catalog: Option<&Path>) -> Result<Child, String> {
    let log_path = plane.dir().join("logs/hsm-controller.log");
    let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut command = Command::new(hsm);
    command.arg("controller").arg("--kubeconfig").arg(plane.kubeconfig());
    if let Some(catalog) = catalog {
        command.arg("--catalog").arg(catalog);
    }
    command.stdin(Stdio::null()).stdout(log.try_clone().map_err(|e| e.to_string())?).stderr(log);
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| format!("cannot start {}: {e}", hsm.display()))?;
    let started = Instant::now();
    let served = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/instances.stratus.io";
    while plane.get(served).is_none() {
        if let Ok(Some(status)) = child.try_wait() {
            let tail = stratus_tests::cluster::tail(&log_path, 20);
            return Err(format!("hsm controller stopped ({status}):\n{tail}"));
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!("hsm controller did not install its resource; see {}", log_path.display()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(child)
}

fn run(dir: &Path, with: &With) -> Result<String, String> {
    std::fs::write(dir.join("pid"), std::process::id().to_string()).map_err(|e| e.to_string())?;
    let options = Options {
        dir: Some(dir.to_path_buf()),
        nodes: (0..with.nodes).map(|i| format!("node-{i}")).collect(),
        ..Options::default()
    };
    let plane = ControlPlane::start(options).map_err(|e| e.to_string())?;
    let mut converger = match &with.controller {
        Some(hsm) => Some(controller(&plane, hsm, with.catalog.as_deref())?),
        None => None,
    };
    std::fs::write(dir.join("ready"), plane.api().to_string()).map_err(|e| e.to_string())?;
    eprintln!("cluster ready at https://{}; kubeconfig {}", plane.api(), plane.kubeconfig().display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime
        .block_on(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            Ok::<(), std::io::Error>(())
        })
        .map_err(|e| e.to_string())?;
    if let Some(child) = converger.as_mut() {
        // SAFETY: kill(2) on our own child; it releases its Lease on SIGTERM.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
    }
    drop(plane);
    let _ = std::fs::remove_file(dir.join("ready"));
    let _ = std::fs::remove_file(dir.join("pid"));
    Ok("stopped".into())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Verb::Up { dir, with } => up(&dir, &with),
        Verb::Down { dir } => down(&dir),
        Verb::Run { dir, with } => run(&dir, &with),
    };
    match result {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
