//! What the converger's tests on a real control plane share: the `hsm controller` child
//! process ([`Converger`]), the test's environment ([`Env`], [`test_env!`]) with `kubectl`
//! and polling ([`Env::eventually`]), and reading an Instance's state.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use stratus_tests::cluster::ControlPlane;

/// How long anything may take to converge.
pub const LIMIT: Duration = Duration::from_secs(90);

/// The Instances' collection path.
pub const INSTANCES: &str = "/apis/stratus.io/v1alpha1/instances";

/// One test's convergers at a time: they share the Lease `hsm-controller`, so another test's
/// converger could lead (or stand by) in place of this test's.
pub static ONE_CONVERGER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// An `hsm controller` process, killed (by its PID) when dropped, even by a failing test.
pub struct Converger {
    child: Child,
    log: PathBuf,
}

impl Converger {
    /// An `hsm controller --workers 4`.
    pub fn start(kubeconfig: &Path, dir: &Path) -> Converger {
        Converger::start_with(kubeconfig, dir, "controller", &[])
    }

    /// An `hsm controller` logging to `<name>.log` in `dir`, with more arguments (4 workers
    /// unless they say `--workers`).
    pub fn start_with(kubeconfig: &Path, dir: &Path, name: &str, args: &[&str]) -> Converger {
        let log = dir.join(format!("{name}.log"));
        let workers: &[&str] = if args.contains(&"--workers") { &[] } else { &["--workers", "4"] };
        let child = Command::new(env!("CARGO_BIN_EXE_hsm"))
            .arg("controller")
            .args(workers)
            .args(args)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .env_remove("HSM_CATALOG")
            .env_remove("KUBECONFIG")
            .env("HSM_LOG", "service_manager=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Converger { child, log }
    }

    /// Sends SIGTERM and waits (up to [`LIMIT`]) for the process to end: its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: signalling the child this value owns (not yet waited for, so its PID is its own).
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < LIMIT, "hsm controller did not stop on SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGKILL and waits for the process to end.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it logged.
    pub fn full_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its last 40 log lines.
    pub fn log(&self) -> String {
        let text = self.full_log();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The address its `--health-addr 127.0.0.1:0` serves on, once it logged it.
    pub fn health_addr(&self) -> Option<String> {
        let log = self.full_log();
        let at = log.find("addr=")? + "addr=".len();
        Some(log[at..].chars().take_while(|c| !c.is_whitespace()).collect())
    }
}

impl Drop for Converger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // For a look at what it did: `CONVERGER_LOG_DIR=/some/dir cargo test ...`.
        if let Some(dir) = std::env::var_os("CONVERGER_LOG_DIR") {
            let name = std::thread::current().name().unwrap_or("converger").replace("::", "-");
            let file = self.log.file_name().unwrap().to_string_lossy();
            let _ = std::fs::copy(&self.log, Path::new(&dir).join(format!("{name}-{file}")));
        }
    }
}

/// A test's control plane and folder.
pub struct Env {
    pub plane: &'static ControlPlane,
    pub dir: tempfile::TempDir,
}

/// The test's [`Env`], or a return from the test (skipped) when there is no control plane.
#[macro_export]
macro_rules! test_env {
    () => {
        match stratus_tests::cluster::ControlPlane::shared() {
            Some(plane) => $crate::common::Env { plane, dir: tempfile::tempdir().unwrap() },
            None => return,
        }
    };
}

impl Env {
    /// The real `hsm` with `args` against this cluster, with none of the caller's hsm
    /// settings (catalog, kubeconfig, mode) leaking in.
    pub fn hsm(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_hsm"))
            .args(args)
            .arg("--kubeconfig")
            .arg(self.plane.kubeconfig())
            .env_remove("HSM_CATALOG")
            .env_remove("KUBECONFIG")
            .env_remove("HSM_MODE")
            .env_remove("HSM_LEASE_NAMESPACE")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `kubectl` as the cluster's admin.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.plane.kubeconfig())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("kubectl runs")
    }

    /// `kubectl`, which must succeed: its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let output = self.kubectl(args);
        assert!(output.status.success(), "kubectl {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    /// `kubectl apply -f` of `yaml` (one or more documents).
    pub fn apply(&self, yaml: &str) -> Output {
        let file = self.dir.path().join("instance.yaml");
        std::fs::write(&file, yaml).unwrap();
        self.kubectl(&["apply", "-f", file.to_str().unwrap()])
    }

    /// The Instance `name`.
    pub fn instance(&self, name: &str) -> Option<Value> {
        self.plane.get(&format!("{INSTANCES}/{name}"))
    }

    /// Every Instance.
    pub fn instances(&self) -> Vec<Value> {
        self.plane.get(INSTANCES).and_then(|l| l["items"].as_array().cloned()).unwrap_or_default()
    }

    /// Polls `check` until it gives a value, up to [`LIMIT`]; else fails with `what` and the
    /// controller's latest log lines.
    pub fn eventually<T>(&self, converger: &Converger, what: &str, check: impl FnMut() -> Option<T>) -> T {
        self.eventually_within(LIMIT, converger, what, check)
    }

    /// [`Env::eventually`] with another limit.
    pub fn eventually_within<T>(
        &self,
        limit: Duration,
        converger: &Converger,
        what: &str,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let started = Instant::now();
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(started.elapsed() < limit, "{what}: not within {limit:?}\ncontroller:\n{}", converger.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The Instance's `status.state`.
pub fn state(instance: &Value) -> &str {
    instance["status"]["state"].as_str().unwrap_or_default()
}

/// The Instance's condition `type_`.
pub fn condition<'a>(instance: &'a Value, type_: &str) -> Option<&'a Value> {
    instance["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

/// Whether the Instance is running with Ready=True for its current spec.
pub fn is_running(instance: &Value) -> bool {
    state(instance) == "running"
        && condition(instance, "Ready").is_some_and(|c| c["status"] == "True")
        && instance["status"]["observedGeneration"] == instance["metadata"]["generation"]
}

/// The Instance `name` when it is running.
pub fn running(env: &Env, name: &str) -> Option<Value> {
    env.instance(name).filter(is_running)
}

/// `GET path` over plain HTTP/1.1: the status code and the body.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

/// The value of counter `name` in a Prometheus text exposition.
pub fn metric(body: &str, name: &str) -> Option<u64> {
    body.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `data` of a Secret, decoded.
pub fn secret_data(secret: &Value) -> std::collections::BTreeMap<String, Vec<u8>> {
    use base64::Engine;
    secret["data"]
        .as_object()
        .map(|data| {
            data.iter()
                .map(|(k, v)| {
                    let bytes = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default());
                    (k.clone(), bytes.unwrap())
                })
                .collect()
        })
        .unwrap_or_default()
}
