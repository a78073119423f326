//! The service broker's hot paths on loopback, on a real Kubernetes control plane
//! (`stratus-tests`' harness). It prints figures; it asserts nothing about time.
//!
//! Set-up: the Instance resource installed and a fresh Lease `hsm-controller` written by the
//! bench (it stands for the converger: nothing converges, so every instance stays "in
//! progress"), then `hsm-server --no-auth --insecure-http` with broker credentials
//! (`HSM_SERVER_BIN` names another binary, e.g. a release build; by default the one Cargo
//! built with this bench).
//!
//! 1. `BROKER_BENCH_PROVISIONS` (default 200) sequential `PUT
//!    /v2/service_instances/:id?accepts_incomplete=true` (redis, new ids): the time to the 202,
//!    p50 and p99, and provisions/s — bounded by `BROKER_BENCH_MAX_SECONDS` (default 120).
//! 2. Saturation: `BROKER_BENCH_POLLERS` (default 100) concurrent pollers of `GET
//!    …/last_operation` over the provisioned instances for `BROKER_BENCH_SECONDS` (default 10),
//!    each sending its next request as soon as the last is answered, each request on a new
//!    connection: p50, p99 and requests/s. Closed loop: the latency is pollers ÷ throughput
//!    (Little's law), so this phase measures throughput.
//! 3. Paced: the same pollers, each on one kept-alive connection (as a platform's HTTP client
//!    keeps them), each polling every `BROKER_BENCH_POLL_MS` (default 50: 2,000 polls/s offered
//!    by 100 pollers; Cloud Foundry polls an operation every few seconds), for the same time.
//!    Latency is counted from when the poll was due, not when it was sent, so a server that
//!    falls behind is not flattered (no coordinated omission).
//!
//! Requests carry basic authentication and the OSB headers, as a platform sends them; phases 1
//! and 2 open a new loopback connection per request. The targets (provision p99 ≤
//! 50 ms, last_operation p99 ≤ 10 ms) are printed beside the figures.
//!
//! `cargo bench -p hsm-server --bench broker` (`--profile dev` to skip the release build).
//! Needs the control plane's programs (`STRATUS_KUBE_BIN`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use service_manager::cluster::{ClientOptions, Cluster};
use stratus_tests::cluster::{ControlPlane, Options};

const TARGET_PROVISION_P99_MS: f64 = 50.0;
const TARGET_POLL_P99_MS: f64 = 10.0;
const PASSWORD: &str = "bench-broker-password";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text.parse().unwrap_or_else(|_| panic!("{name}={text:?} is not a valid value")),
        Err(_) => default,
    }
}

/// `hsm-server`, killed by its PID when dropped.
struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(kubeconfig: &Path, log: &Path) -> Server {
    let binary = std::env::var_os("HSM_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_hsm-server")));
    let mut child = Command::new(&binary)
        .args(["--no-auth", "--insecure-http", "--listen", "127.0.0.1:0", "--catalog"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env_remove("HSM_CATALOG")
        .env_remove("HSM_SERVER_LISTEN")
        .env_remove("HSM_LEASE_NAMESPACE")
        .env_remove("KUBECONFIG")
        .env("HSM_BROKER_USER", "broker")
        .env("HSM_BROKER_PASSWORD", PASSWORD)
        .env("HSM_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let address = line.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("{line:?}")).to_string();
    Server { child, address }
}

/// One kept-alive connection to the broker.
struct Connection {
    reader: BufReader<TcpStream>,
    auth: String,
    address: String,
}

impl Connection {
    fn open(address: &str) -> Connection {
        let stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        stream.set_nodelay(true).unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("broker:{PASSWORD}"));
        Connection { reader: BufReader::new(stream), auth, address: address.to_string() }
    }

    /// `GET path`: the status (the body is read and dropped).
    fn get(&mut self, path: &str) -> u16 {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {}\r\nX-Broker-API-Version: 2.17\r\n\r\n",
            self.address, self.auth
        );
        self.reader.get_mut().write_all(request.as_bytes()).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        status
    }
}

/// One OSB request on a new connection: the status and the body.
fn osb(address: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("broker:{PASSWORD}"));
    let content = body.map(|b| format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nAuthorization: Basic {auth}\r\nX-Broker-API-Version: 2.17\r\n{}\r\n{}",
        content.unwrap_or_default(),
        body.unwrap_or_default()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn mark(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "missed"
    }
}

fn main() {
    let provisions: usize = env_or("BROKER_BENCH_PROVISIONS", 200);
    let max_seconds: u64 = env_or("BROKER_BENCH_MAX_SECONDS", 120);
    let pollers: usize = env_or("BROKER_BENCH_POLLERS", 100);
    let seconds: u64 = env_or("BROKER_BENCH_SECONDS", 10);
    let interval = Duration::from_millis(env_or("BROKER_BENCH_POLL_MS", 50));

    let Some(plane) = ControlPlane::start_or_skip(Options::default()) else { return };
    let dir = tempfile::tempdir().unwrap();
    plane.block_on(async {
        let cluster = Cluster::connect(Some(&plane.kubeconfig()), None, ClientOptions::default()).await.unwrap();
        service_manager::controller::install_definition(&cluster).await.unwrap();
    });
    let now = k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let lease = serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "hsm-controller", "namespace": "kube-system"},
        "spec": {"holderIdentity": "broker-bench", "leaseDurationSeconds": 3600, "acquireTime": now, "renewTime": now}
    });
    plane.create(&lease).expect("the Lease hsm-controller");
    let server = start_server(&plane.kubeconfig(), &dir.path().join("hsm-server.log"));
    println!(
        "hsm-server: {}",
        std::env::var("HSM_SERVER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_hsm-server").into())
    );

    let (status, catalog) = osb(&server.address, "GET", "/v2/catalog", None);
    assert_eq!(status, 200, "{catalog}");
    let catalog: serde_json::Value = serde_json::from_str(&catalog).unwrap();
    let redis = catalog["services"].as_array().unwrap().iter().find(|s| s["name"] == "redis").unwrap();
    let body = serde_json::json!({
        "service_id": redis["id"], "plan_id": redis["plans"][0]["id"],
        "organization_guid": "bench-org", "space_guid": "bench-space",
        "context": {"platform": "cloudfoundry", "organization_guid": "bench-org", "space_guid": "bench-space"}
    })
    .to_string();

    // 1. Provisions, one after the other.
    let mut ids = Vec::new();
    let mut times = Vec::new();
    let mut other = 0;
    let started = Instant::now();
    for i in 0..provisions {
        if started.elapsed() > Duration::from_secs(max_seconds) {
            break;
        }
        let id = format!("bench-{i:05}-5d3f0c7e-2b1a-4c8d");
        let path = format!("/v2/service_instances/{id}?accepts_incomplete=true");
        let sent = Instant::now();
        let (status, answer) = osb(&server.address, "PUT", &path, Some(&body));
        times.push(sent.elapsed().as_secs_f64() * 1000.0);
        if status == 202 {
            ids.push(id);
        } else {
            other += 1;
            if other <= 3 {
                eprintln!("PUT answered {status}: {answer}");
            }
        }
    }
    let took = started.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    let p99 = percentile(&times, 0.99);
    println!(
        "PUT /v2/service_instances/:id x{} sequential: p50 {:.2} ms, p99 {p99:.2} ms (target <= {TARGET_PROVISION_P99_MS} ms: {}), {:.1}/s, {other} not 202",
        times.len(),
        percentile(&times, 0.5),
        mark(p99 <= TARGET_PROVISION_P99_MS),
        times.len() as f64 / took
    );
    assert!(!ids.is_empty(), "no provision was accepted");

    // 2. last_operation under concurrent pollers, as fast as they are answered.
    let stop = Arc::new(AtomicBool::new(false));
    let ids = Arc::new(ids);
    let threads: Vec<_> = (0..pollers)
        .map(|n| {
            let (stop, ids, address) = (stop.clone(), ids.clone(), server.address.clone());
            std::thread::spawn(move || {
                let mut times = Vec::new();
                let mut failures = 0usize;
                let mut i = n;
                while !stop.load(Ordering::Relaxed) {
                    let path =
                        format!("/v2/service_instances/{}/last_operation?operation=provision", ids[i % ids.len()]);
                    let sent = Instant::now();
                    let (status, _) = osb(&address, "GET", &path, None);
                    times.push(sent.elapsed().as_secs_f64() * 1000.0);
                    failures += usize::from(status != 200);
                    i += pollers;
                }
                (times, failures)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut polls = Vec::new();
    let mut failures = 0;
    for thread in threads {
        let (times, failed) = thread.join().unwrap();
        polls.extend(times);
        failures += failed;
    }
    polls.sort_by(f64::total_cmp);
    let p99 = percentile(&polls, 0.99);
    println!(
        "GET .../last_operation, {pollers} concurrent pollers for {seconds} s, saturating (a new connection per poll): {} requests, {:.0}/s, p50 {:.2} ms, p99 {p99:.2} ms (target <= {TARGET_POLL_P99_MS} ms: {}), {failures} not 200",
        polls.len(),
        polls.len() as f64 / seconds as f64,
        percentile(&polls, 0.5),
        mark(p99 <= TARGET_POLL_P99_MS)
    );

    // 3. The same pollers, paced, each on a kept-alive connection.
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..pollers)
        .map(|n| {
            let (stop, ids, address) = (stop.clone(), ids.clone(), server.address.clone());
            std::thread::spawn(move || {
                let mut connection = Connection::open(&address);
                let mut times = Vec::new();
                let mut failures = 0usize;
                let mut i = n;
                // The pollers' phases spread over one interval.
                let mut due = Instant::now() + interval.mul_f64(n as f64 / pollers as f64);
                while !stop.load(Ordering::Relaxed) {
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let path =
                        format!("/v2/service_instances/{}/last_operation?operation=provision", ids[i % ids.len()]);
                    let status = connection.get(&path);
                    times.push(due.elapsed().as_secs_f64() * 1000.0);
                    failures += usize::from(status != 200);
                    i += pollers;
                    due += interval;
                }
                (times, failures)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut polls = Vec::new();
    let mut failures = 0;
    for thread in threads {
        let (times, failed) = thread.join().unwrap();
        polls.extend(times);
        failures += failed;
    }
    polls.sort_by(f64::total_cmp);
    let p99 = percentile(&polls, 0.99);
    println!(
        "GET .../last_operation, {pollers} pollers each every {} ms for {seconds} s, kept-alive connections ({:.0}/s offered): {} requests, {:.0}/s, p50 {:.2} ms, p99 {p99:.2} ms from when each poll was due (target <= {TARGET_POLL_P99_MS} ms: {}), {failures} not 200",
        interval.as_millis(),
        pollers as f64 / interval.as_secs_f64(),
        polls.len(),
        polls.len() as f64 / seconds as f64,
        percentile(&polls, 0.5),
        mark(p99 <= TARGET_POLL_P99_MS)
    );
    drop(server);
}
