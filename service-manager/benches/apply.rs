//! Creating Cloud Foundry (hcf, 54 objects) on the test API server with 5 ms injected latency:
//! `hsm create-instance` (which also waits for every workload and job) against
//! `kubectl apply --server-side -f` of the identical rendered objects, each on a fresh server.
//! Prints wall times (median of 5), their ratio, and requests per object (discovery apart).
//!
//! `cargo bench -p service-manager --bench apply` (needs `kubectl` on PATH).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use sdl::catalog::Catalog;
use sdl::idl::IdlParameter;
use sdl::resolve::Stored;
use sdl::Idl;
use service_manager::request::{prepare, InstanceRequest};
use service_manager::ClusterProfile;
use stratus_tests::apiserver::store::ControllerConfig;
use stratus_tests::apiserver::{Config, FakeApiServer};

const RUNS: usize = 5;
const LATENCY: Duration = Duration::from_millis(5);

struct Run {
    wall: Duration,
    requests: u64,
    discovery: u64,
}

fn server(dir: &Path) -> (FakeApiServer, PathBuf) {
    let config = Config {
        controller: ControllerConfig { ready_after: Duration::ZERO, ..ControllerConfig::default() },
        latency: LATENCY,
        ..Config::default()
    };
    let server = FakeApiServer::spawn(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let kubeconfig = dir.join(format!("kubeconfig-{}", server.addr().port()));
    server.write_kubeconfig(&kubeconfig).unwrap();
    (server, kubeconfig)
}

fn measure(dir: &Path, command: impl Fn(&Path) -> Command) -> Run {
    let (server, kubeconfig) = server(dir);
    let mut command = command(&kubeconfig);
    let start = Instant::now();
    let output = command.output().expect("the command runs");
    let wall = start.elapsed();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (requests, discovery) = server.request_counts();
    Run { wall, requests, discovery }
}

fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by_key(|r| r.wall);
    runs.swap_remove(runs.len() / 2)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let catalog = Catalog::load(&workspace.join("catalog")).unwrap();
    let request = InstanceRequest {
        service_id: "stackato.hpe.hcf".into(),
        idl: Idl {
            parameters: vec![IdlParameter { name: "DOMAIN".into(), value: "cf.example.com".into() }],
            ..Idl::default()
        },
        idl_source: "bench".into(),
        instance_id: Some("hcf".into()),
        ..InstanceRequest::default()
    };
    let profile = ClusterProfile::default();
    let plan = prepare(&catalog, &request, &Stored::default(), &profile, &mut StdRng::seed_from_u64(1))
        .unwrap()
        .plan(&profile)
        .unwrap();
    let objects = plan.objects().count();
    let items: Vec<_> = plan.objects().collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    let manifest = dir.path().join("hcf.json");
    std::fs::write(&manifest, serde_json::to_vec(&list).unwrap()).unwrap();

    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let kubectl = |kubeconfig: &Path| {
        let mut c = Command::new("kubectl");
        c.args(["apply", "--server-side", "--validate=false", "-f"])
            .arg(&manifest)
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", &home);
        c
    };
    let hsm = |extra: &'static [&'static str]| {
        move |kubeconfig: &Path| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_hsm"));
            c.args(["create-instance", "stackato.hpe.hcf", "--set", "DOMAIN=cf.example.com", "--instance-id", "hcf"])
                .args(extra)
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .env_remove("HSM_CATALOG");
            c
        }
    };
    // Warm kubectl's discovery cache, as an operator's would be.
    measure(dir.path(), kubectl);

    let kubectl_run = median((0..RUNS).map(|_| measure(dir.path(), kubectl)).collect());
    let hsm_run = median((0..RUNS).map(|_| measure(dir.path(), hsm(&[]))).collect());
    let hsm_no_wait = median((0..RUNS).map(|_| measure(dir.path(), hsm(&["--no-wait"]))).collect());

    let per_object = |r: &Run| (r.requests - r.discovery) as f64 / objects as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "hcf: {objects} objects, {} ms latency per request, median of {RUNS} runs on fresh servers",
        LATENCY.as_millis()
    );
    println!(
        "kubectl apply --server-side:        {:>8.1} ms  {:>3} requests ({} discovery)  {:.2} requests/object",
        ms(kubectl_run.wall),
        kubectl_run.requests,
        kubectl_run.discovery,
        per_object(&kubectl_run)
    );
    println!(
        "hsm create-instance (waits ready): {:>8.1} ms  {:>3} requests ({} discovery)  {:.2} requests/object",
        ms(hsm_run.wall),
        hsm_run.requests,
        hsm_run.discovery,
        per_object(&hsm_run)
    );
    println!(
        "hsm create-instance --no-wait:     {:>8.1} ms  {:>3} requests ({} discovery)  {:.2} requests/object",
        ms(hsm_no_wait.wall),
        hsm_no_wait.requests,
        hsm_no_wait.discovery,
        per_object(&hsm_no_wait)
    );
    println!("ratio hsm / kubectl:               {:>8.3}", hsm_run.wall.as_secs_f64() / kubectl_run.wall.as_secs_f64());
    println!(
        "ratio hsm --no-wait / kubectl:     {:>8.3}",
        hsm_no_wait.wall.as_secs_f64() / kubectl_run.wall.as_secs_f64()
    );
}
