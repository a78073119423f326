//! The local cluster of `scripts/dev-cluster` (binary `stratus-dev-cluster`): the real control
//! plane of [`crate::cluster`] run in the background for people, with — as processes, not
//! pods — `hsm controller` (the converger) and, with an `hsm-server` binary, the identity
//! provider ([`crate::oidc`], HTTPS) and the HSM server (HTTPS), each on a free loopback port.
//!
//! `up DIR` starts `run DIR` (this program again) in a session of its own and returns once
//! `DIR/ready` exists; `run` starts everything, writes `DIR/hsm.env` (mode 0600: `HSM_URL`,
//! `HSM_CA_FILE`, `HSM_ADMIN_USER`, `HSM_ADMIN_PASSWORD`, `HSM_BROKER_USER`, `HSM_BROKER_PASSWORD`),
//! then `DIR/ready`, and on SIGTERM
//! stops its children by PID (they also get SIGTERM should it die) and removes `ready`,
//! `hsm.env` and the PID files. `down DIR` sends SIGTERM to the PID in `DIR/pid` and waits.

use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::{running, tail, ControlPlane, Options};
use crate::oidc::{Config, Provider};

/// The audience of the dev cluster's access tokens (the HSM server's `--oidc-audience`).
pub const AUDIENCE: &str = "https://hsm.stratus.local";

/// The one user of the dev cluster's identity provider, in group `hsm-admins`.
pub const ADMIN_USER: &str = "admin";

/// The user of the HSM server's service broker API (its password is generated).
pub const BROKER_USER: &str = "broker";

/// What runs with the control plane.
#[derive(Debug, Clone, Default)]
pub struct With {
    /// How many nodes the node agent registers.
    pub nodes: usize,
    /// `hsm`, to run `hsm controller` (the converger).
    pub controller: Option<PathBuf>,
    /// The catalog the controller and the HSM server read.
    pub catalog: Option<PathBuf>,
    /// `hsm-server`, to run the identity provider and the HSM server.
    pub server: Option<PathBuf>,
}

impl With {
    /// The same as `run`'s flags.
    fn args(&self) -> Vec<String> {
        let mut args = vec!["--nodes".to_string(), self.nodes.to_string()];
        for (flag, path) in
            [("--controller", &self.controller), ("--catalog", &self.catalog), ("--server", &self.server)]
        {
            if let Some(path) = path {
                args.extend([flag.to_string(), path.display().to_string()]);
            }
        }
        args
    }
}

fn pid_of(dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(dir.join("pid")).ok()?.trim().parse().ok()?;
    running(pid).then_some(pid)
}

/// What `up` says once the cluster is ready (`already`: it was running).
fn ready_message(dir: &Path, already: bool) -> String {
    let mut message = format!(
        "{}; kubeconfig: {}",
        if already { "already running" } else { "cluster ready" },
        dir.join("kubeconfig").display()
    );
    if let Ok(url) = std::fs::read_to_string(dir.join("hsm/url")) {
        message.push_str(&format!(
            "\nHSM server: {}; sign in with the values in {}",
            url.trim(),
            dir.join("hsm.env").display()
        ));
    }
    message
}

/// Starts `run DIR` of the program `program` (this one) in the background and waits until it
/// is ready; nothing when it already runs.
pub fn up(program: &Path, dir: &Path, with: &With) -> Result<String, String> {
    std::fs::create_dir_all(dir.join("logs")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dir = std::path::absolute(dir).map_err(|e| e.to_string())?;
    if pid_of(&dir).is_some() && dir.join("ready").exists() {
        return Ok(ready_message(&dir, true));
    }
    let _ = std::fs::remove_file(dir.join("ready"));
    let log_path = dir.join("logs/dev-cluster.log");
    let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut command = Command::new(program);
    command
        .arg("run")
        .args(with.args())
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
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
            return Ok(ready_message(&dir, false));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the cluster stopped while starting ({status}):\n{}", tail(&log_path, 30)));
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err(format!("the cluster was not ready after 5 minutes; see {}", log_path.display()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The files that describe a running cluster (removed when it stops).
fn forget_running(dir: &Path) {
    for file in ["ready", "pid", "hsm.env", "hsm/url", "hsm/pid", "oidc/pid"] {
        let _ = std::fs::remove_file(dir.join(file));
    }
}

/// Stops the cluster running in `dir` (SIGTERM to its PID; SIGKILL after 30 s).
pub fn down(dir: &Path) -> Result<String, String> {
    let Some(pid) = pid_of(dir) else {
        forget_running(dir);
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
    forget_running(dir);
    Ok(format!("cluster in {} stopped (its files stay)", dir.display()))
}

/// `command` gets SIGTERM when the calling thread ends.
fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
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
    die_with_parent(&mut command);
    let mut child = command.spawn().map_err(|e| format!("cannot start {}: {e}", hsm.display()))?;
    let started = Instant::now();
    let served = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/instances.stratus.io";
    while plane.get(served).is_none() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("hsm controller stopped ({status}):\n{}", tail(&log_path, 20)));
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!("hsm controller did not install its resource; see {}", log_path.display()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(child)
}

/// A random password of 32 characters (24 bytes of the kernel's randomness, base64url).
pub fn generate_password() -> Result<String, String> {
    use base64::Engine;
    let mut bytes = [0u8; 24];
    let mut random = std::fs::File::open("/dev/urandom").map_err(|e| format!("/dev/urandom: {e}"))?;
    std::io::Read::read_exact(&mut random, &mut bytes).map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Writes `text` to `path`, readable by its owner only (also when it existed).
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

/// A folder readable by its owner only.
fn private_dir(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// `value` quoted for a POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The identity provider and the HSM server of a dev cluster, stopped by PID when dropped.
pub struct Hsm {
    provider: Provider,
    server: Child,
    /// Where the HSM server listens, `https://127.0.0.1:PORT`.
    pub url: String,
}

impl Drop for Hsm {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child; the server stops gracefully on SIGTERM.
        unsafe { libc::kill(self.server.id() as i32, libc::SIGTERM) };
        let _ = self.server.wait();
        // The provider is killed by its own Drop, after this.
    }
}

/// Starts the identity provider (HTTPS, the cluster CA; one user `admin` in `hsm-admins` with a
/// generated password; client `hsm`; audience [`AUDIENCE`]) and `hsm-server` (HTTPS with a
/// certificate of the cluster CA for 127.0.0.1 and localhost, trusting that provider, on the
/// cluster), and writes `DIR/hsm.env`. Files: `DIR/oidc/` (0700: the provider's
/// configuration holds the password), `DIR/hsm/` (the server's key), logs in `DIR/logs/`.
pub fn start_hsm(plane: &ControlPlane, server: &Path, catalog: Option<&Path>) -> Result<Hsm, String> {
    let dir = plane.dir().to_path_buf();
    let ca_file = dir.join("pki/ca.crt");
    let password = generate_password()?;
    let broker_password = generate_password()?;
    let oidc_dir = dir.join("oidc");
    private_dir(&oidc_dir)?;
    let config = Config::new(AUDIENCE).user(ADMIN_USER, &password, &["hsm-admins"]);
    let provider = Provider::start_in(&config, &oidc_dir, Some(plane.ca()), 365, true);
    std::fs::write(oidc_dir.join("pid"), provider.pid().to_string()).map_err(|e| e.to_string())?;

    let hsm_dir = dir.join("hsm");
    private_dir(&hsm_dir)?;
    let serving = plane
        .ca()
        .issue_serving("hsm-server", &["127.0.0.1", "localhost"], 365)
        .map_err(|e| format!("the HSM server's certificate: {e}"))?;
    let (cert, key) = (hsm_dir.join("tls.crt"), hsm_dir.join("tls.key"));
    std::fs::write(&cert, &serving.certificate).map_err(|e| format!("{}: {e}", cert.display()))?;
    write_private(&key, &serving.key)?;
    let log_path = dir.join("logs/hsm-server.log");
    let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut command = Command::new(server);
    command
        .args(["--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .args(["--oidc-issuer", provider.issuer(), "--oidc-audience", AUDIENCE, "--oidc-ca-file"])
        .arg(&ca_file)
        .arg("--kubeconfig")
        .arg(plane.kubeconfig());
    if let Some(catalog) = catalog {
        command.arg("--catalog").arg(catalog);
    }
    for variable in ["HSM_SERVER_LISTEN", "HSM_TLS_CERT", "HSM_TLS_KEY", "HSM_CATALOG", "KUBECONFIG"] {
        command.env_remove(variable);
    }
    // The service broker API's credentials, through the environment (not the process list).
    command.env("HSM_BROKER_USER", BROKER_USER).env("HSM_BROKER_PASSWORD", &broker_password);
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
    die_with_parent(&mut command);
    let mut child = command.spawn().map_err(|e| format!("cannot start {}: {e}", server.display()))?;
    // Its one stdout line says where it listens.
    let line = crate::process::first_line(&mut child, Duration::from_secs(60));
    let Some(url) = line.trim().strip_prefix("listening on ").map(str::to_string) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("hsm-server did not start (it said {line:?}):\n{}", tail(&log_path, 20)));
    };
    let hsm = Hsm { provider, server: child, url };
    std::fs::write(hsm_dir.join("pid"), hsm.server.id().to_string()).map_err(|e| e.to_string())?;
    std::fs::write(hsm_dir.join("url"), &hsm.url).map_err(|e| e.to_string())?;
    let env = format!(
        "# The dev cluster's HSM server and its admin (scripts/dev-cluster); valid while it runs.\n\
         export HSM_URL={}\nexport HSM_CA_FILE={}\nexport HSM_ADMIN_USER={}\nexport HSM_ADMIN_PASSWORD={}\n\
         # The service broker API (/v2 of HSM_URL), HTTP basic authentication.\n\
         export HSM_BROKER_USER={}\nexport HSM_BROKER_PASSWORD={}\n",
        shell_quote(&hsm.url),
        shell_quote(&ca_file.display().to_string()),
        shell_quote(ADMIN_USER),
        shell_quote(&password),
        shell_quote(BROKER_USER),
        shell_quote(&broker_password)
    );
    write_private(&dir.join("hsm.env"), &env)?;
    Ok(hsm)
}

/// Runs the cluster in `dir` in the foreground until SIGTERM or Ctrl-C (what `up` starts).
pub fn run(dir: &Path, with: &With) -> Result<String, String> {
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
    let hsm = match &with.server {
        Some(server) => Some(start_hsm(&plane, server, with.catalog.as_deref())?),
        None => None,
    };
    std::fs::write(dir.join("ready"), plane.api().to_string()).map_err(|e| e.to_string())?;
    eprintln!("cluster ready at https://{}; kubeconfig {}", plane.api(), plane.kubeconfig().display());
    if let Some(hsm) = &hsm {
        eprintln!("HSM server at {}; identity provider at {}", hsm.url, hsm.provider.url());
    }
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
    drop(hsm);
    if let Some(child) = converger.as_mut() {
        // SAFETY: kill(2) on our own child; it releases its Lease on SIGTERM.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
    }
    drop(plane);
    forget_running(dir);
    Ok("stopped".into())
}
