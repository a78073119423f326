//! A real Kubernetes control plane on loopback, for the test suite and for users' local
//! clusters (`scripts/dev-cluster`): etcd, kube-apiserver, kube-controller-manager and
//! kube-scheduler — the programs `scripts/build-control-plane` builds — with certificates
//! from `stratus-pki`, a [node agent](agent) standing in for kubelets, and
//! [fault proxies](proxy) in front of the API.
//!
//! Nothing here imitates the API server: every request a test makes is answered by the real
//! one. What is not real is the node: no container runs; the agent reports pods Running and
//! Ready, completes Jobs and binds volume claims, as kwok does.
//!
//! One [`ControlPlane::shared`] per test binary; each test takes its own namespaces and its own
//! proxy. A plane is stopped (its processes killed by PID) when dropped; the shared one when
//! the test binary exits, as its processes die with the thread that started them.

pub mod agent;
mod binaries;
mod objects;
pub mod proxy;

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use stratus_pki::KeyedCertificate;

pub use agent::{Behaviour, Behaviours};
pub use binaries::{pinned, PROGRAMS};
pub use proxy::{Faults, Proxy};
pub use stratus_pki::Ca;

/// How to start a control plane.
#[derive(Debug, Clone)]
pub struct Options {
    /// The cluster CA; a new one when `None`. (`bootstrap`'s tests pass the CA of the cluster
    /// bootstrap made, so its admin kubeconfig works as written.)
    pub ca: Option<Ca>,
    /// The API server's port on 127.0.0.1; a free one when `None`.
    pub api_port: Option<u16>,
    /// The nodes the agent registers and runs pods on.
    pub nodes: Vec<String>,
    /// Where state, certificates and logs go; a temporary folder (removed on drop) when `None`.
    pub dir: Option<PathBuf>,
    /// Pod Security admission's cluster-wide `enforce` level: `privileged` (what kubeadm
    /// sets up), `baseline` or `restricted`. Namespaces override it with labels.
    pub pod_security: String,
    /// How the node agent treats each namespace's pods; shared, so a test can set behaviours
    /// before the plane exists and change them after.
    pub behaviours: Behaviours,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            ca: None,
            api_port: None,
            nodes: vec!["node-a".into(), "node-b".into(), "node-c".into()],
            dir: None,
            pod_security: "privileged".into(),
            behaviours: Behaviours::default(),
        }
    }
}

/// A control plane that could not be started: what failed, with the tail of its log.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

fn fail(what: impl std::fmt::Display) -> StartError {
    StartError(what.to_string())
}

/// One running program of the control plane.
struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// A request to the supervisor thread: start this command, answer with the child.
type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// A running control plane.
pub struct ControlPlane {
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    processes: std::sync::Mutex<Vec<Process>>,
    ca: Ca,
    admin: KeyedCertificate,
    api: SocketAddr,
    runtime: tokio::runtime::Handle,
    client: kube::Client,
    behaviours: Behaviours,
    nodes: Vec<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    supervisor: Option<std::thread::JoinHandle<()>>,
}

fn free_port() -> Result<u16, StartError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| fail(format!("no free port on 127.0.0.1: {e}")))?;
    Ok(listener.local_addr().map_err(fail)?.port())
}

fn write(path: &Path, text: &str) -> Result<(), StartError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(|e| fail(format!("{}: {e}", path.display())))
}

/// Whether process `pid` is running: it exists and is not a zombie (an orphan's exit may be
/// left unreaped where PID 1 does not reap).
pub fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

const UNAVAILABLE: &str = "control plane not available";

/// Kills the shared plane's processes and removes its folder (kept with
/// `STRATUS_KEEP_CLUSTER=1`, for a look at etcd and the logs).
extern "C" fn stop_shared() {
    if let Some(Ok(plane)) = SHARED.get() {
        if let Ok(mut processes) = plane.processes.lock() {
            for process in processes.iter_mut() {
                let _ = process.child.kill();
                let _ = process.child.wait();
            }
        }
        if std::env::var_os("STRATUS_KEEP_CLUSTER").is_none() {
            let _ = std::fs::remove_dir_all(&plane.dir);
        } else {
            eprintln!("the test control plane's folder is kept: {}", plane.dir.display());
        }
    }
}

fn skip_or_panic<T>(error: &str) -> Option<T> {
    if binaries::required() || !error.starts_with(UNAVAILABLE) {
        panic!("the test control plane did not start: {error}");
    }
    eprintln!("SKIPPED (no Kubernetes control plane here): {error}");
    None
}

impl ControlPlane {
    /// The test binary's control plane, started on first use with three nodes and Pod
    /// Security `baseline` enforced cluster-wide (what a hardened cluster does), so anything
    /// that needs more must say so. `None` (after saying why on stderr) when the programs are
    /// missing and cannot be built here; under `CI=true` that panics instead.
    pub fn shared() -> Option<&'static ControlPlane> {
        let result = SHARED.get_or_init(|| {
            let started = ControlPlane::start(Options { pod_security: "baseline".into(), ..Options::default() });
            if started.is_ok() {
                // A static is never dropped: stop it and remove its folder when the test
                // binary exits (passed or failed; failures have printed the logs' tails).
                // SAFETY: registering a plain `extern "C"` function.
                unsafe { libc::atexit(stop_shared) };
            }
            started.map_err(|e| e.to_string())
        });
        match result {
            Ok(plane) => Some(plane),
            Err(e) => skip_or_panic(e),
        }
    }

    /// A control plane of the caller's own, or `None` (after saying why) when the programs are
    /// missing and cannot be built here; under `CI=true`, and for any other failure, panics.
    pub fn start_or_skip(options: Options) -> Option<ControlPlane> {
        match ControlPlane::start(options) {
            Ok(plane) => Some(plane),
            Err(e) => skip_or_panic(&e.0),
        }
    }

    /// Whether a control plane can run here (its programs are built, or can be); `false`
    /// after saying why on stderr; under `CI=true` a missing control plane panics instead.
    pub fn available() -> bool {
        match binaries::locate() {
            Ok(_) => true,
            Err(e) => skip_or_panic::<()>(&format!("{UNAVAILABLE}: {e}")).is_some(),
        }
    }

    /// Starts etcd, the API server, the controller manager, the scheduler and the node agent,
    /// and returns once the API is ready, the nodes are Ready and the controllers work.
    ///
    /// Ports are picked free and then handed to the programs, so another process can take one
    /// in between: a start that fails on a port already in use is tried again with new ports
    /// (three times at most) unless the caller chose the API server's port.
    pub fn start(options: Options) -> Result<ControlPlane, StartError> {
        let mut attempt = 1;
        loop {
            match ControlPlane::start_once(options.clone()) {
                Err(e) if attempt < 3 && options.api_port.is_none() && e.0.contains("address already in use") => {
                    eprintln!(
                        "the test control plane lost a port to another process; starting again: {}",
                        e.0.lines().last().unwrap_or_default()
                    );
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn start_once(options: Options) -> Result<ControlPlane, StartError> {
        let bin = binaries::locate().map_err(|e| fail(format!("{UNAVAILABLE}: {e}")))?;
        let (temp, dir) = match &options.dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let temp = tempfile::Builder::new().prefix("stratus-cluster-").tempdir().map_err(fail)?;
                let dir = temp.path().to_path_buf();
                (Some(temp), dir)
            }
        };
        for sub in ["pki", "logs", "etcd"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| fail(format!("{}: {e}", dir.join(sub).display())))?;
        }
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir.join("etcd"), std::fs::Permissions::from_mode(0o700));

        // Certificates: the CA, the API server's serving certificate, one client certificate
        // per component (the user each is in RBAC's bootstrap policy), the token signing key.
        let ca = match &options.ca {
            Some(ca) => ca.clone(),
            None => Ca::generate("stratus test cluster").map_err(fail)?,
        };
        let pki = dir.join("pki");
        let hosts = [
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "10.0.0.1",
        ];
        let serving = ca.issue_serving("kube-apiserver", &hosts, 365).map_err(fail)?;
        let admin = ca.issue_client("kubernetes-admin", Some("system:masters"), 365).map_err(fail)?;
        let controller_manager = ca.issue_client("system:kube-controller-manager", None, 365).map_err(fail)?;
        let scheduler = ca.issue_client("system:kube-scheduler", None, 365).map_err(fail)?;
        write(&pki.join("ca.crt"), ca.certificate())?;
        write(&pki.join("ca.key"), &ca.0.key)?;
        write(&pki.join("apiserver.crt"), &serving.certificate)?;
        write(&pki.join("apiserver.key"), &serving.key)?;
        let (signing, verifying) = stratus_pki::signing_key().map_err(fail)?;
        write(&pki.join("sa.key"), &signing)?;
        write(&pki.join("sa.pub"), &verifying)?;
        write(
            &pki.join("admission.yaml"),
            &format!(
                "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n- name: PodSecurity\n  configuration:\n    apiVersion: pod-security.admission.config.k8s.io/v1\n    kind: PodSecurityConfiguration\n    defaults:\n      enforce: {0}\n      enforce-version: latest\n      warn: {0}\n      warn-version: latest\n    exemptions:\n      namespaces: [kube-system]\n",
                options.pod_security
            ),
        )?;

        let api_port = match options.api_port {
            Some(port) => port,
            None => free_port()?,
        };
        let api: SocketAddr = ([127, 0, 0, 1], api_port).into();
        let server = format!("https://{api}");
        let admin_kubeconfig = stratus_pki::kubeconfig("stratus", "admin", &server, ca.certificate(), &admin);
        write(&dir.join("kubeconfig"), &admin_kubeconfig)?;
        write(
            &pki.join("controller-manager.kubeconfig"),
            &stratus_pki::kubeconfig("stratus", "controller-manager", &server, ca.certificate(), &controller_manager),
        )?;
        write(
            &pki.join("scheduler.kubeconfig"),
            &stratus_pki::kubeconfig("stratus", "scheduler", &server, ca.certificate(), &scheduler),
        )?;

        // The supervisor thread owns the runtime (node agent, proxies) and starts every
        // process, so that the processes die with it (PR_SET_PDEATHSIG is per thread).
        let (handles, handle_rx) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (spawns, mut spawn_rx) = tokio::sync::mpsc::unbounded_channel::<SpawnRequest>();
        let supervisor = std::thread::Builder::new()
            .name("control-plane".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = handles.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = handles.send(Ok(runtime.handle().clone()));
                runtime.block_on(async move {
                    let mut stopped = stopped;
                    loop {
                        tokio::select! {
                            _ = &mut stopped => break,
                            request = spawn_rx.recv() => match request {
                                Some((mut command, reply)) => { let _ = reply.send(command.spawn()); }
                                // Started: the thread lives on until stopped, its processes with it.
                                None => { let _ = (&mut stopped).await; break; }
                            },
                        }
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(fail)?;
        let runtime = handle_rx.recv().map_err(fail)?.map_err(fail)?;

        let plane = ControlPlane {
            dir: dir.clone(),
            _temp: temp,
            processes: std::sync::Mutex::new(Vec::new()),
            ca,
            admin,
            api,
            runtime: runtime.clone(),
            client: runtime.block_on(client(&admin_kubeconfig)).map_err(fail)?,
            behaviours: options.behaviours.clone(),
            nodes: options.nodes.clone(),
            stop: Some(stop),
            supervisor: Some(supervisor),
        };
        let spawn = |plane: &ControlPlane, name: &'static str, args: Vec<String>| -> Result<(), StartError> {
            let log = plane.dir.join("logs").join(format!("{name}.log"));
            let file = std::fs::File::create(&log).map_err(|e| fail(format!("{}: {e}", log.display())))?;
            let mut command = Command::new(bin.join(name));
            command
                .args(args)
                .stdin(Stdio::null())
                .stdout(file.try_clone().map_err(fail)?)
                .stderr(file)
                .env_remove("KUBECONFIG");
            // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let (reply, answer) = mpsc::channel();
            spawns.send((command, reply)).map_err(|_| fail("the control plane's supervisor is gone"))?;
            let child = answer
                .recv()
                .map_err(|_| fail("the control plane's supervisor is gone"))?
                .map_err(|e| fail(format!("cannot start {name}: {e}")))?;
            plane.processes.lock().map_err(|_| fail("lock"))?.push(Process { name, child, log });
            Ok(())
        };
        let path = |p: PathBuf| p.display().to_string();

        let (etcd_client, etcd_peer) = (free_port()?, free_port()?);
        spawn(
            &plane,
            "etcd",
            vec![
                "--name=stratus".into(),
                format!("--data-dir={}", path(dir.join("etcd"))),
                format!("--listen-client-urls=http://127.0.0.1:{etcd_client}"),
                format!("--advertise-client-urls=http://127.0.0.1:{etcd_client}"),
                format!("--listen-peer-urls=http://127.0.0.1:{etcd_peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}"),
                format!("--initial-cluster=stratus=http://127.0.0.1:{etcd_peer}"),
                "--unsafe-no-fsync".into(),
                "--log-level=warn".into(),
            ],
        )?;
        spawn(
            &plane,
            "kube-apiserver",
            vec![
                format!("--etcd-servers=http://127.0.0.1:{etcd_client}"),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={api_port}"),
                format!("--cert-dir={}", path(pki.clone())),
                format!("--tls-cert-file={}", path(pki.join("apiserver.crt"))),
                format!("--tls-private-key-file={}", path(pki.join("apiserver.key"))),
                format!("--client-ca-file={}", path(pki.join("ca.crt"))),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                format!("--service-account-key-file={}", path(pki.join("sa.pub"))),
                format!("--service-account-signing-key-file={}", path(pki.join("sa.key"))),
                "--service-cluster-ip-range=10.0.0.0/16".into(),
                "--authorization-mode=Node,RBAC".into(),
                "--allow-privileged=true".into(),
                format!("--admission-control-config-file={}", path(pki.join("admission.yaml"))),
                "--profiling=false".into(),
                "--v=1".into(),
            ],
        )?;
        plane.wait_for("the API server's /readyz", Duration::from_secs(120), |plane| {
            plane
                .runtime
                .block_on(async {
                    let request = http::Request::get("/readyz").body(Vec::new()).map_err(|e| e.to_string())?;
                    plane.client.request_text(request).await.map_err(|e| e.to_string())
                })
                .is_ok_and(|text| text.trim() == "ok")
        })?;
        spawn(
            &plane,
            "kube-controller-manager",
            [
                component_flags(&pki.join("controller-manager.kubeconfig"))?,
                vec![
                    "--use-service-account-credentials".into(),
                    format!("--service-account-private-key-file={}", path(pki.join("sa.key"))),
                    format!("--root-ca-file={}", path(pki.join("ca.crt"))),
                    format!("--cluster-signing-cert-file={}", path(pki.join("ca.crt"))),
                    format!("--cluster-signing-key-file={}", path(pki.join("ca.key"))),
                    format!("--cert-dir={}", path(pki.clone())),
                    "--concurrent-deployment-syncs=10".into(),
                    "--concurrent-statefulset-syncs=10".into(),
                    "--concurrent-job-syncs=10".into(),
                ],
            ]
            .concat(),
        )?;
        spawn(&plane, "kube-scheduler", component_flags(&pki.join("scheduler.kubeconfig"))?)?;

        let log = dir.join("logs").join("node-agent.log");
        let agent = agent::NodeAgent::new(plane.client.clone(), options.nodes.clone(), plane.behaviours.clone(), &log)
            .map_err(|e| fail(format!("{}: {e}", log.display())))?;
        runtime.spawn(agent.run());

        // Ready when the controllers work: the default namespace's service account exists and
        // every node reports Ready.
        plane.wait_for("the controllers and nodes", Duration::from_secs(120), |plane| {
            let account = plane.get("/api/v1/namespaces/default/serviceaccounts/default").is_some();
            let nodes = plane.get("/api/v1/nodes").map_or(0, |list| {
                list["items"].as_array().map_or(0, |items| items.iter().filter(|n| agent::node_ready(n)).count())
            });
            account && nodes >= plane.nodes.len()
        })?;
        Ok(plane)
    }

    /// Polls `ready` until it holds; fails early, with its log, if a process ended.
    fn wait_for(&self, what: &str, limit: Duration, ready: impl Fn(&ControlPlane) -> bool) -> Result<(), StartError> {
        let started = Instant::now();
        loop {
            if ready(self) {
                return Ok(());
            }
            if let Some(exited) = self.exited() {
                return Err(fail(format!("waiting for {what}: {exited}")));
            }
            if started.elapsed() > limit {
                return Err(fail(format!("{what} not ready after {limit:?}; logs:\n{}", self.logs(20))));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A process that is no longer running, with its log's tail.
    pub fn exited(&self) -> Option<String> {
        let mut processes = self.processes.lock().ok()?;
        processes.iter_mut().find_map(|p| match p.child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited ({status}):\n{}", p.name, tail(&p.log, 30))),
            _ => None,
        })
    }

    /// The tail of every log (processes and node agent), for a failing test to print.
    pub fn logs(&self, lines: usize) -> String {
        let mut out = String::new();
        let mut names: Vec<String> = PROGRAMS.iter().map(|p| format!("{p}.log")).collect();
        names.push("node-agent.log".into());
        for name in names {
            let path = self.dir.join("logs").join(&name);
            out.push_str(&format!("--- {}\n{}\n", path.display(), tail(&path, lines)));
        }
        out
    }

    /// The folder holding state, certificates (`pki/`), logs (`logs/`) and `kubeconfig`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The admin kubeconfig's path (client certificate in `system:masters`, straight to the
    /// API server).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The API server's address.
    pub fn api(&self) -> SocketAddr {
        self.api
    }

    /// The cluster CA.
    pub fn ca(&self) -> &Ca {
        &self.ca
    }

    /// A kubeconfig (YAML) for user `user` in group `group`, with a client certificate from the
    /// cluster CA valid for a day: to act as another identity, e.g. a ServiceAccount's
    /// (`system:serviceaccount:<namespace>:<name>`, group `system:serviceaccounts`).
    pub fn kubeconfig_for(&self, user: &str, group: Option<&str>) -> String {
        let client = self.ca.issue_client(user, group, 1).expect("the cluster CA issues client certificates");
        stratus_pki::kubeconfig("stratus", user, &format!("https://{}", self.api), self.ca.certificate(), &client)
    }

    /// The admin client certificate.
    pub fn admin(&self) -> &KeyedCertificate {
        &self.admin
    }

    /// The nodes the agent runs.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// An admin client, for tests that talk to the API themselves.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The runtime the node agent and proxies run on.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// Runs `future` to completion on the control plane's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// How the node agent treats pods of `namespace` from now on.
    pub fn behave(&self, namespace: &str, behaviour: Behaviour) {
        self.behaviours.set(namespace, behaviour);
    }

    /// A new fault proxy in front of the API server, faultless until told otherwise.
    pub fn proxy(&self) -> Arc<Proxy> {
        let _guard = self.runtime.enter();
        match self.runtime.block_on(Proxy::start(self)) {
            Ok(proxy) => proxy,
            Err(e) => panic!("the fault proxy did not start: {e}"),
        }
    }

    /// `GET path` as admin: the object, or `None` when it does not exist (or the request failed).
    pub fn get(&self, path: &str) -> Option<Value> {
        let request = http::Request::get(path).body(Vec::new()).ok()?;
        self.runtime.block_on(self.client.request::<Value>(request)).ok()
    }

    /// Sends `method path` with a JSON body as admin; the answer or the API's error.
    pub fn send(&self, method: &str, path: &str, content_type: &str, body: &Value) -> Result<Value, String> {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type)
            .body(serde_json::to_vec(body).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        self.runtime.block_on(self.client.request::<Value>(request)).map_err(|e| e.to_string())
    }

    /// The object of `kind` (one of the kinds Stratus makes) named `name` in `namespace`
    /// (`""` for cluster-scoped kinds).
    pub fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        self.get(&format!("{}/{name}", objects::collection(kind, namespace)))
    }

    /// Every object of `kind` in `namespace`.
    pub fn list(&self, kind: &str, namespace: &str) -> Vec<Value> {
        self.get(&objects::collection(kind, namespace))
            .and_then(|list| list["items"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Creates `object` (JSON with apiVersion and kind) as admin.
    pub fn create(&self, object: &Value) -> Result<Value, String> {
        let kind = object["kind"].as_str().unwrap_or_default();
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
        self.send("POST", &objects::collection(kind, namespace), "application/json", object)
    }

    /// The objects of `namespace` (of the kinds Stratus makes, plus the Namespace itself)
    /// that field manager `manager` has written, as (`Kind/name`, resourceVersion), sorted.
    pub fn managed_by(&self, manager: &str, namespace: &str) -> Vec<(String, String)> {
        let mut found = Vec::new();
        // (List items carry no kind: it is the list's.)
        let mut objects: Vec<(&str, Value)> = objects::NAMESPACED
            .iter()
            .flat_map(|kind| self.list(kind, namespace).into_iter().map(move |o| (*kind, o)))
            .collect();
        objects.extend(self.object("Namespace", "", namespace).map(|o| ("Namespace", o)));
        for (kind, object) in objects {
            let managers = object["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
            if managers.iter().any(|m| m["manager"] == manager) {
                let name = object["metadata"]["name"].as_str().unwrap_or_default();
                let version = object["metadata"]["resourceVersion"].as_str().unwrap_or_default();
                found.push((format!("{kind}/{name}"), version.to_string()));
            }
        }
        found.sort();
        found
    }

    /// Stops every process (SIGTERM, then SIGKILL after 3 s) and the node agent.
    pub fn stop(&mut self) {
        if let Ok(mut processes) = self.processes.lock() {
            // The reverse of the start order: scheduler and controllers first, etcd last.
            for process in processes.iter_mut().rev() {
                terminate(&mut process.child);
            }
            processes.clear();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(supervisor) = self.supervisor.take() {
            let _ = supervisor.join();
        }
    }
}

/// The flags the controller manager and the scheduler share: their kubeconfig (for the API,
/// authentication and authorization), no leader election, a free loopback port of their own.
fn component_flags(kubeconfig: &Path) -> Result<Vec<String>, StartError> {
    let kubeconfig = kubeconfig.display();
    Ok(vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        "--leader-elect=false".into(),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={}", free_port()?),
        "--v=1".into(),
    ])
}

/// SIGTERM, a grace of 3 s, then SIGKILL.
fn terminate(child: &mut Child) {
    let Ok(pid) = i32::try_from(child.id()) else { return };
    // SAFETY: kill(2) on the PID of a child we have not reaped.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An admin client from a kubeconfig's text.
async fn client(kubeconfig: &str) -> Result<kube::Client, String> {
    let parsed = kube::config::Kubeconfig::from_yaml(kubeconfig).map_err(|e| e.to_string())?;
    let config = kube::Config::from_custom_kubeconfig(parsed, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    kube::Client::try_from(config).map_err(|e| e.to_string())
}
