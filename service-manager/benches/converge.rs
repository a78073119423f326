//! The converger (`hsm controller`) at scale on a real Kubernetes control plane
//! (`stratus-tests`' harness: etcd, kube-apiserver, controller manager, scheduler and a node
//! agent that makes pods Running and Ready). N `stackato.hpe.mysql` Instances
//! (`CONVERGE_BENCH_INSTANCES`, default 1,000) are created at once (64 creations in flight,
//! as the admin, straight to the API server); the converger reaches the API server through the fault proxy (no faults), which
//! counts its requests. It prints:
//!
//! - the time from the first creation until every Instance is running with Ready=True;
//! - the controller's CPU time (utime + stime, /proc/PID/stat) and peak RSS (VmHWM);
//! - its API requests and writes per instance until then (discovery apart);
//! - idle: its API writes over 60 s with every instance ready and nothing changing, with a
//!   resync of 10 s (so every instance is looked at about six times), the leader's own Lease
//!   renewals counted apart; with `CONVERGE_BENCH_BEFORE=1`, the same with
//!   `--reapply-every 1s`, which is how the converger behaved before it remembered what it
//!   applied (every look re-applied the plan);
//! - drift: the time from deleting an instance's StatefulSet to its return (a new uid), p50
//!   and p99 over 50 deletions, one instance after another.
//!
//! `cargo bench -p service-manager --bench converge` (`--profile dev` to skip the release
//! build). Needs the control plane's programs (`STRATUS_KUBE_BIN` or `scripts/build-control-plane`). Figures only.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use stratus_tests::cluster::{ControlPlane, Options, Proxy};

const INSTANCES: &str = "/apis/stratus.io/v1alpha1/instances";
const LEADER_LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/hsm-controller";
const DRIFTS: usize = 50;
const IDLE: Duration = Duration::from_secs(60);

/// An `hsm controller` child, killed when dropped.
struct Controller {
    child: Child,
    log: PathBuf,
}

impl Controller {
    fn start(kubeconfig: &Path, dir: &Path, name: &str, args: &[&str]) -> Controller {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_hsm"))
            .arg("controller")
            .args(args)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .env_remove("HSM_CATALOG")
            .env_remove("KUBECONFIG")
            .env("HSM_LOG", "service_manager=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Controller { child, log }
    }

    /// CPU seconds (user + system) so far.
    fn cpu(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        (ticks(14) + ticks(15)) as f64 / hz
    }

    /// A `Vm*:` figure of /proc/PID/status, in MiB.
    fn memory(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
            .unwrap_or(0.0);
        kib / 1024.0
    }

    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn running(instance: &Value) -> bool {
    instance["status"]["state"] == "running"
        && instance["status"]["observedGeneration"] == instance["metadata"]["generation"]
        && instance["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// How many Instances are running now.
fn running_count(plane: &ControlPlane) -> usize {
    let list = plane.get(INSTANCES).unwrap_or_default();
    list["items"].as_array().map(|items| items.iter().filter(|i| running(i)).count()).unwrap_or(0)
}

/// Writes through `proxy` from request `from` on, the leader's Lease apart: (instances', Lease's).
fn writes_since(proxy: &Proxy, from: usize) -> (Vec<(String, String)>, usize) {
    let log = proxy.requests();
    let writes: Vec<(String, String)> =
        log[from.min(log.len())..].iter().filter(|(m, _)| !matches!(m.as_str(), "GET" | "HEAD")).cloned().collect();
    let (lease, rest): (Vec<_>, Vec<_>) =
        writes.into_iter().partition(|(_, p)| p.split('?').next() == Some(LEADER_LEASE));
    (rest, lease.len())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn wait_until(limit: Duration, what: &str, controller: &Controller, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}\n{}", controller.tail());
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Idle writes over [`IDLE`], once every instance was looked at twice more and left alone
/// (`settle` says when): (instances' writes, leader Lease writes).
fn idle(proxy: &Proxy, controller: &Controller, settle: impl Fn() -> bool) -> (Vec<(String, String)>, usize) {
    wait_until(Duration::from_secs(600), "settled", controller, settle);
    let from = proxy.requests().len();
    std::thread::sleep(IDLE);
    writes_since(proxy, from)
}

fn metric(addr: &str, name: &str) -> u64 {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { return 0 };
    let _ = write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0)
}

fn health_addr(controller: &Controller) -> String {
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(&controller.log).unwrap_or_default();
        if let Some(at) = log.find("addr=") {
            return log[at + 5..].chars().take_while(|c| !c.is_whitespace()).collect();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no health address:\n{}", controller.tail());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() {
    let count: usize = std::env::var("CONVERGE_BENCH_INSTANCES").ok().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let before = std::env::var("CONVERGE_BENCH_BEFORE").is_ok_and(|v| v == "1");
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    // The node agent's nodes have 64 CPUs each and a mysql pod asks for 0.5: enough nodes for
    // every pod, plus one.
    let nodes = (count.div_ceil(128) + 1).max(3);
    let options = Options { nodes: (0..nodes).map(|i| format!("node-{i}")).collect(), ..Options::default() };
    let Some(plane) = ControlPlane::start_or_skip(options) else { return };
    let dir = tempfile::tempdir().unwrap();
    let proxy: Arc<Proxy> = plane.proxy();
    let kubeconfig = dir.path().join("kubeconfig");
    proxy.write_kubeconfig(&kubeconfig).unwrap();
    let workers = std::env::var("CONVERGE_BENCH_WORKERS").unwrap_or_else(|_| "16".into());
    let args = ["--workers", &workers, "--resync", "10s", "--health-addr", "127.0.0.1:0"];
    let controller = Controller::start(&kubeconfig, dir.path(), "controller", &args);
    let addr = health_addr(&controller);
    wait_until(Duration::from_secs(120), "the Instance definition", &controller, || {
        plane.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/instances.stratus.io").is_some()
            && plane.get(INSTANCES).is_some()
    });
    println!(
        "commit {commit}: {count} stackato.hpe.mysql Instances on {nodes} nodes, hsm controller --workers {workers}"
    );

    let names: Vec<String> = (0..count).map(|i| format!("db-{i:04}")).collect();
    let (requests0, writes0, discovery0) = proxy.counts();
    let cpu0 = controller.cpu();
    let started = Instant::now();
    // All at once: 64 creations in flight (one `kubectl create -f` sends them one by one).
    let client = plane.client();
    let failures: Vec<String> = plane.block_on(async {
        futures::stream::iter(names.iter().map(|name| {
            let body = json!({"apiVersion": "stratus.io/v1alpha1", "kind": "Instance",
                "metadata": {"name": name}, "spec": {"serviceId": "stackato.hpe.mysql"}});
            let request = http::Request::post(INSTANCES)
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap())
                .unwrap();
            let client = client.clone();
            async move { client.request::<Value>(request).await.err().map(|e| format!("{name}: {e}")) }
        }))
        .buffer_unordered(64)
        .filter_map(|failed| async move { failed })
        .collect()
        .await
    });
    assert!(failures.is_empty(), "creating Instances failed: {failures:?}");
    let submitted = started.elapsed();
    let mut last_print = Instant::now();
    wait_until(Duration::from_secs(3600), "all running", &controller, || {
        let ready = running_count(&plane);
        if last_print.elapsed() > Duration::from_secs(30) {
            eprintln!("  {:>6.1} s: {ready}/{count} running", started.elapsed().as_secs_f64());
            last_print = Instant::now();
        }
        ready == count
    });
    let all_ready = started.elapsed();
    let cpu = controller.cpu() - cpu0;
    let (requests, writes, discovery) = proxy.counts();
    let requests = (requests - requests0) - (discovery - discovery0);
    let writes = writes - writes0;
    println!(
        "time to all Ready: {:.1} s (creating them all took {:.1} s)",
        all_ready.as_secs_f64(),
        submitted.as_secs_f64()
    );
    println!("controller CPU until then: {cpu:.1} s; peak RSS (VmHWM) {:.1} MiB", controller.memory("VmHWM:"));
    println!(
        "API requests per instance: {:.1} ({:.1} writes)",
        requests as f64 / count as f64,
        writes as f64 / count as f64
    );

    // Where the writes went: method and resource (the path's last plural before a name).
    let mut by_resource = std::collections::BTreeMap::<String, usize>::new();
    for (method, path) in proxy.requests().iter().filter(|(m, _)| !matches!(m.as_str(), "GET" | "HEAD")) {
        let segments: Vec<&str> = path.split('?').next().unwrap_or_default().split('/').collect();
        let resource = match segments.last() {
            Some(&"status") => format!("{}/status", segments.get(segments.len().saturating_sub(3)).unwrap_or(&"")),
            _ if method == "POST" => segments.last().unwrap_or(&"").to_string(),
            _ => segments.get(segments.len().saturating_sub(2)).unwrap_or(&"").to_string(),
        };
        *by_resource.entry(format!("{method} {resource}")).or_default() += 1;
    }
    let mut by_resource: Vec<(String, usize)> = by_resource.into_iter().collect();
    by_resource.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let shown: Vec<String> =
        by_resource.iter().take(8).map(|(what, n)| format!("{what} {:.1}", *n as f64 / count as f64)).collect();
    println!("  writes per instance by kind: {}", shown.join(", "));

    let unchanged = || metric(&addr, "hsm_controller_reconciles_unchanged_total");
    let settled = unchanged();
    let cpu_idle0 = controller.cpu();
    let (idle_writes, lease) = idle(&proxy, &controller, || unchanged() >= settled + 2 * count as u64);
    let looked = unchanged() - settled;
    println!(
        "idle {} s with all Ready (--resync 10s): {} writes by the converger to instances, {lease} renewals of its own \
         Lease; {looked} reconciles wrote nothing since Ready; CPU {:.1} s",
        IDLE.as_secs(),
        idle_writes.len(),
        controller.cpu() - cpu_idle0
    );
    for (method, path) in idle_writes.iter().take(5) {
        println!("  {method} {path}");
    }

    let mut drifts = Vec::new();
    for name in names.iter().step_by((count / DRIFTS).max(1)).take(DRIFTS) {
        let path = format!("/apis/apps/v1/namespaces/{name}/statefulsets/mysql");
        let uid = plane.get(&path).map(|s| s["metadata"]["uid"].clone()).unwrap_or_default();
        let deleted = Instant::now();
        plane.send("DELETE", &path, "application/json", &json!({})).unwrap();
        wait_until(Duration::from_secs(120), "the StatefulSet back", &controller, || {
            plane.get(&path).is_some_and(|s| s["metadata"]["uid"] != uid)
        });
        drifts.push(deleted.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    drifts.sort();
    println!(
        "drift (deleted StatefulSet back), {} deletions: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        drifts.len(),
        percentile(&drifts, 0.5).as_secs_f64() * 1e3,
        percentile(&drifts, 0.99).as_secs_f64() * 1e3,
        drifts.last().unwrap().as_secs_f64() * 1e3
    );
    println!("controller peak RSS at the end: {:.1} MiB", controller.memory("VmHWM:"));
    wait_until(Duration::from_secs(600), "all running again", &controller, || running_count(&plane) == count);

    if before {
        drop(controller);
        let args = ["--workers", &workers, "--resync", "10s", "--reapply-every", "1s", "--health-addr", "127.0.0.1:0"];
        let old = Controller::start(&kubeconfig, dir.path(), "before", &args);
        let addr = health_addr(&old);
        let reconciles = || metric(&addr, "hsm_controller_reconciles_total");
        let (idle_writes, lease) = idle(&proxy, &old, || reconciles() >= 3 * count as u64);
        println!(
            "before (every look re-applies: --reapply-every 1s): idle {} s: {} writes to instances, {lease} Lease renewals",
            IDLE.as_secs(),
            idle_writes.len()
        );
    }
}
