//! Creating Cloud Foundry (hcf, 54 objects) on a real Kubernetes control plane (`stratus-tests`'
//! harness: etcd, kube-apiserver, controller manager, scheduler and a node agent that reports
//! pods ready) behind its fault proxy with 5 ms latency per request, three ways, each in a
//! fresh namespace per run (median of 5, after one warm-up run that fills kubectl's and helm's
//! discovery caches, as an operator's would be):
//!
//! - `hsm create-instance`, waiting for readiness (its default) and with `--no-wait`;
//! - `kubectl apply --server-side -f` of the identical rendered objects, alone and followed by
//!   the waits an operator would script (`kubectl wait` for Deployments and Jobs,
//!   `kubectl rollout status` for each StatefulSet);
//! - `helm install` of a chart made of the same objects, without and with
//!   `--wait --wait-for-jobs`.
//!
//! It prints wall times, requests per object (discovery apart), the ratios hsm/kubectl and
//! hsm/helm, what a no-op re-run of `hsm create-instance` costs and changes, and hsm's waiting
//! time as a multiple of a floor: plan steps × (request round trip + the time this cluster
//! takes to make one trivial Deployment Available). Figures only; nothing is asserted on time.
//!
//! `cargo bench -p service-manager --bench apply`. Needs `kubectl` on PATH and the control
//! plane's programs (`STRATUS_KUBE_BIN` or `scripts/build-control-plane`); builds Helm with
//! `scripts/build-helm`, and skips when it cannot.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use sdl::catalog::Catalog;
use sdl::resolve::Stored;
use serde_json::json;
use service_manager::objects::{Kind, KubeObject};
use service_manager::plan::Plan;
use service_manager::request::{prepare, InstanceRequest};
use service_manager::ClusterProfile;
use stratus_tests::cluster::{ControlPlane, Options, Proxy};

const RUNS: usize = 5;
const LATENCY: Duration = Duration::from_millis(5);
const SERVICE: &str = "stackato.hpe.hcf";
const DOMAIN: &str = "DOMAIN=cf.example.com";
const TIMEOUT: &str = "--timeout=300s";

/// One measured run: wall time and the requests it made through the proxy.
#[derive(Clone)]
struct Run {
    wall: Duration,
    requests: u64,
    writes: u64,
    discovery: u64,
    /// hsm's progress (stderr) of the run, for its step timings.
    stderr: String,
}

impl Run {
    fn per_object(&self, objects: usize) -> f64 {
        (self.requests - self.discovery) as f64 / objects as f64
    }
}

/// The commands of one run in one namespace, run in order; what they need is prepared first.
type Script<'a> = Box<dyn Fn(&Bench, &str) -> Vec<Command> + 'a>;

struct Bench {
    plane: ControlPlane,
    proxy: Arc<Proxy>,
    dir: tempfile::TempDir,
    catalog: Catalog,
    helm: PathBuf,
    runs: std::cell::Cell<usize>,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median_duration(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by_key(|r| r.wall);
    runs.swap_remove(runs.len() / 2)
}

fn succeeded(command: &mut Command) -> Output {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(output.status.success(), "{command:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// `scripts/build-helm`'s binary, or why there is none.
fn build_helm() -> Result<PathBuf, String> {
    let output = Command::new(workspace().join("scripts/build-helm")).output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
}

/// `{{` in the objects' data would start a template action: write it as one that prints `{{`.
fn escape_template(text: &str) -> String {
    text.replace("{{", "{{ \"{{\" }}")
}

fn is_workload(object: &KubeObject) -> bool {
    matches!(object.kind(), Kind::Deployment | Kind::StatefulSet)
}

impl Bench {
    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn file(&self, namespace: &str, name: &str) -> PathBuf {
        let dir = self.dir.path().join("runs").join(namespace);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    /// The plan `hsm create-instance` makes for instance `namespace`.
    fn plan(&self, namespace: &str) -> Plan {
        let request = InstanceRequest {
            service_id: SERVICE.into(),
            sets: vec![service_manager::request::parse_set(DOMAIN).unwrap()],
            idl_source: "bench".into(),
            instance_id: Some(namespace.into()),
            ..InstanceRequest::default()
        };
        let profile = ClusterProfile::default();
        let prepared =
            prepare(&self.catalog, &request, &Stored::default(), &profile, &mut StdRng::seed_from_u64(1)).unwrap();
        prepared.plan(&profile).unwrap()
    }

    /// Every object of the plan (Namespace, Secret and all) as one JSON List.
    fn manifest(&self, namespace: &str) -> PathBuf {
        let plan = self.plan(namespace);
        let list = json!({"apiVersion": "v1", "kind": "List", "items": plan.objects().collect::<Vec<_>>()});
        let path = self.file(namespace, "objects.json");
        std::fs::write(&path, serde_json::to_vec(&list).unwrap()).unwrap();
        path
    }

    /// A chart of the plan's objects but the Namespace (helm creates that).
    fn chart(&self, namespace: &str) -> PathBuf {
        let plan = self.plan(namespace);
        let documents: Vec<String> = plan
            .objects()
            .filter(|o| o.kind() != Kind::Namespace)
            .map(|o| serde_norway::to_string(o).unwrap())
            .collect();
        let chart = self.file(namespace, "chart");
        std::fs::create_dir_all(chart.join("templates")).unwrap();
        std::fs::write(chart.join("Chart.yaml"), "apiVersion: v2\nname: hcf\nversion: 4.0.1\n").unwrap();
        let objects = escape_template(&documents.join("---\n"));
        std::fs::write(chart.join("templates/objects.yaml"), objects).unwrap();
        chart
    }

    fn kubectl(&self, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command.args(args).env("KUBECONFIG", self.kubeconfig()).env("HOME", self.home());
        command
    }

    fn hsm(&self, namespace: &str, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hsm"));
        command
            .args(["create-instance", SERVICE, "--set", DOMAIN, "--instance-id", namespace])
            .args(extra)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .env_remove("HSM_CATALOG")
            .env_remove("KUBECONFIG");
        command
    }

    fn helm(&self, namespace: &str, extra: &[&str]) -> Command {
        let chart = self.chart(namespace);
        let mut command = Command::new(&self.helm);
        command
            .args(["install", namespace])
            .arg(chart)
            .args(["--namespace", namespace, "--create-namespace", TIMEOUT])
            .args(extra)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.home());
        for (variable, sub) in
            [("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config"), ("HELM_DATA_HOME", "data")]
        {
            command.env(variable, self.dir.path().join("helm").join(sub));
        }
        command
    }

    /// `kubectl apply --server-side` of the plan's objects, then (when `wait`) the waits an
    /// operator would script: every Deployment Available, each StatefulSet rolled out, every
    /// Job complete.
    fn kubectl_script(&self, namespace: &str, wait: bool) -> Vec<Command> {
        let manifest = self.manifest(namespace);
        let mut apply = self.kubectl(&["apply", "--server-side", "-f"]);
        apply.arg(manifest);
        let mut script = vec![apply];
        if !wait {
            return script;
        }
        let plan = self.plan(namespace);
        let has = |kind: Kind| plan.objects().any(|o| o.kind() == kind);
        let wait_all = |condition: &str, resource: &str| {
            let condition = format!("--for=condition={condition}");
            self.kubectl(&["wait", "-n", namespace, TIMEOUT, &condition, resource, "--all"])
        };
        if has(Kind::Deployment) {
            script.push(wait_all("Available", "deployment"));
        }
        for set in plan.objects().filter(|o| o.kind() == Kind::StatefulSet) {
            let resource = format!("statefulset/{}", set.name());
            script.push(self.kubectl(&["rollout", "status", "-n", namespace, TIMEOUT, &resource]));
        }
        if has(Kind::Job) {
            script.push(wait_all("complete", "job"));
        }
        script
    }

    /// A namespace no run has used.
    fn fresh_namespace(&self, tool: &str) -> String {
        let n = self.runs.get() + 1;
        self.runs.set(n);
        format!("{tool}-{n}")
    }

    /// Deletes `namespace` and waits until it is gone, so runs do not pile up pods.
    fn delete_namespace(&self, namespace: &str) {
        let _ = self.plane.send("DELETE", &format!("/api/v1/namespaces/{namespace}"), "application/json", &json!({}));
        let started = Instant::now();
        while self.plane.object("Namespace", "", namespace).is_some() && started.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `script` in a fresh namespace: wall time of its commands (their preparation apart)
    /// and the requests they made.
    fn measure(&self, tool: &str, script: &Script<'_>) -> Run {
        let namespace = self.fresh_namespace(tool);
        let run = self.timed(script(self, &namespace));
        self.delete_namespace(&namespace);
        run
    }

    fn timed(&self, commands: Vec<Command>) -> Run {
        let (requests, writes, discovery) = self.proxy.counts();
        let started = Instant::now();
        let stderr: Vec<String> = commands
            .into_iter()
            .map(|mut command| String::from_utf8_lossy(&succeeded(&mut command).stderr).into_owned())
            .collect();
        let wall = started.elapsed();
        let (requests_after, writes_after, discovery_after) = self.proxy.counts();
        Run {
            wall,
            requests: requests_after - requests,
            writes: writes_after - writes,
            discovery: discovery_after - discovery,
            stderr: stderr.concat(),
        }
    }

    /// One warm-up run, then the median of [`RUNS`].
    fn median_of_runs(&self, tool: &str, script: Script<'_>) -> Run {
        self.measure(tool, &script);
        median((0..RUNS).map(|_| self.measure(tool, &script)).collect())
    }

    /// A fresh, empty namespace for the floor's measurements.
    fn floor_namespace(&self) -> String {
        let namespace = self.fresh_namespace("floor");
        self.plane.create(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})).unwrap();
        namespace
    }

    /// Median time of a GET of a namespace through the proxy.
    fn request_round_trip(&self) -> Duration {
        let namespace = self.floor_namespace();
        let client = self.plane.block_on(proxy_client(&self.proxy));
        let get = || {
            let request = http::Request::get(format!("/api/v1/namespaces/{namespace}")).body(Vec::new()).unwrap();
            let started = Instant::now();
            self.plane.block_on(client.request_text(request)).unwrap();
            started.elapsed()
        };
        get();
        let rtt = median_duration((0..21).map(|_| get()).collect());
        self.delete_namespace(&namespace);
        rtt
    }

    /// Median time from creating a one-replica Deployment to its being Available here.
    fn readiness_round_trip(&self) -> Duration {
        let namespace = self.floor_namespace();
        let samples = (0..RUNS).map(|i| self.deployment_ready_after(&namespace, &format!("trivial-{i}"))).collect();
        self.delete_namespace(&namespace);
        median_duration(samples)
    }

    fn deployment_ready_after(&self, namespace: &str, name: &str) -> Duration {
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "main", "image": "busybox"}]}}},
        });
        let started = Instant::now();
        self.plane.create(&deployment).unwrap();
        loop {
            let available = self
                .plane
                .object("Deployment", namespace, name)
                .and_then(|d| d["status"]["availableReplicas"].as_i64());
            if available == Some(1) {
                return started.elapsed();
            }
            assert!(started.elapsed() < Duration::from_secs(60), "Deployment {name} never became Available");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// `hsm create-instance` again on a running instance: the run, its non-GET requests and
    /// the hsm-managed objects whose resourceVersion moved.
    fn no_op_rerun(&self) -> (Run, Vec<(String, String)>, Vec<String>) {
        let namespace = self.fresh_namespace("noop");
        succeeded(&mut self.hsm(&namespace, &[]));
        let before = self.plane.managed_by("hsm", &namespace);
        let logged = self.proxy.requests().len();
        let run = self.timed(vec![self.hsm(&namespace, &[])]);
        let writes = self.proxy.requests()[logged..].iter().filter(|(method, _)| method != "GET").cloned().collect();
        let after = self.plane.managed_by("hsm", &namespace);
        let changed = after.iter().filter(|object| !before.contains(object)).map(|(name, _)| name.clone()).collect();
        self.delete_namespace(&namespace);
        (run, writes, changed)
    }
}

/// A client that reaches the API through `proxy`.
async fn proxy_client(proxy: &Proxy) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(proxy.kubeconfig()).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

fn print_run(label: &str, run: &Run, objects: usize) {
    println!(
        "{label:<42} {:>9.1} ms  {:>4} requests ({:>3} writes, {:>3} discovery)  {:.2} requests/object",
        ms(run.wall),
        run.requests,
        run.writes,
        run.discovery,
        run.per_object(objects)
    );
}

fn print_ratio(label: &str, hsm: &Run, other: &Run) {
    println!("{label:<42} {:>9.3}", hsm.wall.as_secs_f64() / other.wall.as_secs_f64());
}

/// hsm's step lines (`[i/n] …`) and the last line (`done in …`), with their `(+N.Ns)` stamps.
fn step_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with('[') || l.starts_with("done in")).collect()
}

fn main() {
    if Command::new("kubectl").arg("version").arg("--client").output().is_err() {
        panic!("kubectl is not on PATH; this benchmark compares against it");
    }
    let helm = match build_helm() {
        Ok(helm) => helm,
        Err(why) => {
            println!("SKIPPED: Helm cannot be built here: {why}");
            return;
        }
    };
    let Some(plane) = ControlPlane::start_or_skip(Options::default()) else { return };
    let proxy = plane.proxy();
    proxy.set_latency(LATENCY);
    let bench = Bench {
        plane,
        proxy,
        dir: tempfile::tempdir().unwrap(),
        catalog: Catalog::load(&workspace().join("catalog")).unwrap(),
        helm,
        runs: std::cell::Cell::new(0),
    };
    bench.proxy.write_kubeconfig(&bench.kubeconfig()).unwrap();
    std::fs::create_dir_all(bench.home()).unwrap();

    let plan = bench.plan("hcf");
    let objects = plan.objects().count();
    let steps = plan.steps.len();
    let workloads = plan.objects().filter(|o| is_workload(o)).count();
    println!(
        "hcf: {objects} objects ({workloads} workloads) in {steps} steps; {} ms latency per request through the proxy; \
         median of {RUNS} runs, each in a fresh namespace",
        LATENCY.as_millis()
    );

    let hsm_wait = bench.median_of_runs("hsm-wait", Box::new(|b, ns| vec![b.hsm(ns, &[])]));
    let hsm_no_wait = bench.median_of_runs("hsm", Box::new(|b, ns| vec![b.hsm(ns, &["--no-wait"])]));
    let kubectl_wait = bench.median_of_runs("kubectl-wait", Box::new(|b, ns| b.kubectl_script(ns, true)));
    let kubectl_no_wait = bench.median_of_runs("kubectl", Box::new(|b, ns| b.kubectl_script(ns, false)));
    let helm_wait =
        bench.median_of_runs("helm-wait", Box::new(|b, ns| vec![b.helm(ns, &["--wait", "--wait-for-jobs"])]));
    let helm_no_wait = bench.median_of_runs("helm", Box::new(|b, ns| vec![b.helm(ns, &[])]));

    println!("\nwaiting for readiness:");
    print_run("  hsm create-instance", &hsm_wait, objects);
    print_run("  kubectl apply --server-side + waits", &kubectl_wait, objects);
    print_run("  helm install --wait --wait-for-jobs", &helm_wait, objects);
    println!("without waiting:");
    print_run("  hsm create-instance --no-wait", &hsm_no_wait, objects);
    print_run("  kubectl apply --server-side", &kubectl_no_wait, objects);
    print_run("  helm install", &helm_no_wait, objects);

    println!("\nratios (target ≤ 0.2):");
    print_ratio("  hsm / kubectl, waiting", &hsm_wait, &kubectl_wait);
    print_ratio("  hsm / helm, waiting", &hsm_wait, &helm_wait);
    print_ratio("  hsm / kubectl, without waiting", &hsm_no_wait, &kubectl_no_wait);
    print_ratio("  hsm / helm, without waiting", &hsm_no_wait, &helm_no_wait);
    println!(
        "requests/object (target ≤ 1.05): hsm {:.2} waiting, {:.2} without",
        hsm_wait.per_object(objects),
        hsm_no_wait.per_object(objects)
    );

    let (rerun, writes, changed) = bench.no_op_rerun();
    println!("\nno-op re-run of hsm create-instance on a running instance:");
    print_run("  hsm create-instance (again)", &rerun, objects);
    let lease_writes = writes.iter().filter(|(_, path)| path.contains("/leases")).count();
    println!("  non-GET requests: {} ({lease_writes} of them on the operation lock's Lease)", writes.len());
    for (method, path) in &writes {
        println!("    {method} {path}");
    }
    println!("  hsm-managed objects whose resourceVersion changed: {} {changed:?}", changed.len());

    let rtt = bench.request_round_trip();
    let readiness = bench.readiness_round_trip();
    let floor = (rtt + readiness) * steps as u32;
    let network_floor = rtt * 2 * steps as u32;
    println!("\nfloor ({steps} plan steps):");
    println!("  request round trip (GET through the proxy, median of 21): {:>8.1} ms", ms(rtt));
    println!("  readiness round trip (trivial Deployment Available, median of {RUNS}): {:>8.1} ms", ms(readiness));
    println!("  floor = steps × (request + readiness): {:>8.1} ms", ms(floor));
    println!("  pure-network floor = steps × 2 × request: {:>8.1} ms", ms(network_floor));
    println!(
        "  hsm waiting = {:.2} × floor (target ≤ 1.5), {:.1} × the network floor",
        hsm_wait.wall.as_secs_f64() / floor.as_secs_f64(),
        hsm_wait.wall.as_secs_f64() / network_floor.as_secs_f64()
    );
    println!("\nhsm's steps in the median waiting run:");
    for line in step_lines(&hsm_wait.stderr) {
        println!("  {line}");
    }
}
