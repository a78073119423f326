//! The HSM server's read path at scale, beside nginx serving the same bytes as static files,
//! on a real Kubernetes control plane (`stratus-tests`' harness). It prints figures; it asserts
//! nothing about time.
//!
//! Set-up: the Instance resource installed and N instances (`API_BENCH_INSTANCES`, default
//! 10,000) created straight through the Kubernetes API, `API_BENCH_SEED_CONCURRENCY` (default
//! 32) creations in flight: for each, the namespace record `hsm list-instances` reads (labelled
//! as hsm's, state `running`) and an `Instance` of the same name (what a converged instance
//! has; `API_BENCH_DECLARED=0` leaves them out). No converger runs. The seeding time is printed.
//!
//! Then `hsm-server --no-auth --insecure-http` on loopback, used once `/readyz` says ready (`HSM_SERVER_BIN` names another
//! binary, e.g. a release build; by default the one Cargo built with this bench), and nginx
//! (Debian's `nginx`, its own config in a temporary folder, `daemon off`, stopped by PID)
//! serving the bodies of `GET /v1/instances` and `GET /v1/services` fetched once from the
//! server. `wrk --latency` (Debian's `wrk`; `API_BENCH_WRK`, default `-t2 -c16 -d10s --timeout 30s`) runs
//! against both, one after the other, for both paths; then once more against a second server
//! with OpenID on (`stratus_tests::oidc`'s provider, a viewer's token) unless
//! `API_BENCH_AUTH=0`. Printed: requests/s, p50, p99, the ratio hsm/nginx and the server's
//! peak RSS (VmHWM) after each run. Last, `API_BENCH_POSTS` (default 200) sequential
//! `POST /v1/instances` (a fresh Lease `hsm-controller` written by the bench stands for the
//! converger; nothing converges them, and they are deleted afterwards): p50 and p99 of the 202.
//!
//! `cargo bench -p hsm-server --bench api` (`--profile dev` to skip the release build, with
//! `HSM_SERVER_BIN` pointing at a release `hsm-server` to measure that one). Needs the control
//! plane's programs (`STRATUS_KUBE_BIN`), `nginx` and `wrk` on PATH and, for the row with
//! OpenID, the provider's `npm ci` in tests/oidc.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use service_manager::cluster::{ClientOptions, Cluster};
use service_manager::instance::record;
use service_manager::labels;
use service_manager::resource::{Instance, InstanceSpec};
use stratus_tests::cluster::{ControlPlane, Options};

/// The issue's targets.
const TARGET_RATIO: f64 = 0.5;
const TARGET_P99_MS: f64 = 20.0;
const TARGET_RSS_MIB: f64 = 64.0;
const TARGET_POST_P99_MS: f64 = 50.0;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text.parse().unwrap_or_else(|_| panic!("{name}={text:?} is not a valid value")),
        Err(_) => default,
    }
}

fn catalog_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `Vm*:` figure of /proc/PID/status, in MiB.
fn memory(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// A child process, stopped by its PID when dropped: SIGTERM first (nginx's master then stops
/// its workers, which a SIGKILL would orphan), SIGKILL if it is still there after 10 s.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: signalling the child this value owns (not yet waited for, so its PID is its own).
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// An `hsm-server` on a free loopback port.
struct Server {
    process: Process,
    address: String,
}

impl Server {
    fn start(kubeconfig: &Path, dir: &Path, name: &str, auth: &[&str]) -> Server {
        let binary = std::env::var_os("HSM_SERVER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_hsm-server")));
        let log = dir.join(format!("{name}.log"));
        let mut child = Command::new(&binary)
            .args(["--insecure-http", "--listen", "127.0.0.1:0", "--catalog"])
            .arg(catalog_dir())
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(auth)
            .env_remove("HSM_CATALOG")
            .env_remove("HSM_SERVER_LISTEN")
            .env_remove("HSM_LEASE_NAMESPACE")
            .env_remove("HSM_OIDC_ISSUER")
            .env_remove("HSM_OIDC_AUDIENCE")
            .env_remove("KUBECONFIG")
            .env("HSM_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let process = Process { child, log };
        let address = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("hsm-server said {line:?}:\n{}", process.tail()))
            .to_string();
        let server = Server { process, address };
        // As a load balancer would: no traffic before /readyz says ready (the instance cache
        // has listed the cluster).
        let started = Instant::now();
        while server.send("GET", "/readyz", None).0 != 200 {
            assert!(started.elapsed() < Duration::from_secs(120), "hsm-server not ready:\n{}", server.process.tail());
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{name}: ready in {} ms", started.elapsed().as_millis());
        server
    }

    fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// `method path` over HTTP/1.1: the status and the body (de-chunked).
    fn send(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let content = body.map(|b| format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{}\r\n{}",
            self.address,
            content.unwrap_or_default(),
            body.unwrap_or_default()
        )
        .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let answer = String::from_utf8(answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            common::dechunk(body)
        } else {
            body.to_string()
        };
        (status, body)
    }
}

/// nginx serving the files under `dir/www` as `application/json`.
fn nginx(dir: &Path) -> (Process, String) {
    let port = free_port();
    let conf = dir.join("nginx.conf");
    let log = dir.join("nginx-error.log");
    std::fs::create_dir_all(dir.join("temp")).unwrap();
    std::fs::write(
        &conf,
        format!(
            "worker_processes auto;\ndaemon off;\npid {dir}/nginx.pid;\nerror_log {dir}/nginx-error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir}/temp;\n  proxy_temp_path {dir}/temp;\n  \
             fastcgi_temp_path {dir}/temp;\n  uwsgi_temp_path {dir}/temp;\n  scgi_temp_path {dir}/temp;\n  \
             types {{ }}\n  default_type application/json;\n  keepalive_requests 1000000;\n  \
             server {{\n    listen 127.0.0.1:{port};\n    root {dir}/www;\n  }}\n}}\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("nginx-stderr.log")).unwrap())
        .spawn()
        .expect("nginx (Debian package nginx) on PATH");
    let process = Process { child, log };
    let address = format!("127.0.0.1:{port}");
    let started = Instant::now();
    while TcpStream::connect(&address).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "nginx did not listen:\n{}", process.tail());
        std::thread::sleep(Duration::from_millis(100));
    }
    (process, address)
}

/// One wrk run's figures.
struct Run {
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: String,
}

fn duration_ms(text: &str) -> f64 {
    let text = text.trim();
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (text, f64::NAN)
    };
    number.parse::<f64>().map(|n| n * factor).unwrap_or(f64::NAN)
}

fn wrk(url: &str, args: &[String], token: Option<&str>) -> Run {
    let mut command = Command::new("wrk");
    command.args(args).arg("--latency");
    if let Some(token) = token {
        command.arg("-H").arg(format!("Authorization: Bearer {token}"));
    }
    let output = command.arg(url).output().expect("wrk (Debian package wrk) on PATH");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "wrk {url}: {text}{}", String::from_utf8_lossy(&output.stderr));
    let find = |prefix: &str| text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_string()));
    let errors = [find("Non-2xx or 3xx responses:").map(|n| format!("{n} non-2xx")), find("Socket errors:")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
    Run {
        requests_per_s: find("Requests/sec:").and_then(|n| n.parse().ok()).unwrap_or(f64::NAN),
        p50_ms: find("50%").map(|d| duration_ms(&d)).unwrap_or(f64::NAN),
        p99_ms: find("99%").map(|d| duration_ms(&d)).unwrap_or(f64::NAN),
        errors,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "meets"
    } else {
        "MISSES"
    }
}

/// Creates `count` instance records (and Instances when `declared`), `concurrency` at a time.
async fn seed(cluster: &Cluster, count: usize, concurrency: usize, declared: bool) {
    let namespaces: Api<Namespace> = Api::all(cluster.client());
    let instances: Api<Instance> = Api::all(cluster.client());
    let now = record::rfc3339_now();
    let services = ["stackato.hpe.redis", "stackato.hpe.postgres", "stackato.hpe.mysql"];
    let mut done = futures::stream::iter(0..count)
        .map(|i| {
            let (namespaces, instances, now) = (namespaces.clone(), instances.clone(), now.clone());
            let service = services[i % services.len()];
            async move {
                let id = format!("bench-{i:05}");
                let namespace = Namespace {
                    metadata: ObjectMeta {
                        name: Some(id.clone()),
                        labels: Some(BTreeMap::from([
                            (labels::MANAGED_BY.to_string(), labels::MANAGER.to_string()),
                            (labels::SERVICE_ID.to_string(), service.to_string()),
                            (labels::VERSION.to_string(), "1.0".to_string()),
                            (labels::SDL_VERSION.to_string(), "1".to_string()),
                        ])),
                        annotations: Some(BTreeMap::from([
                            (record::STATE.to_string(), "running".to_string()),
                            (record::CREATED.to_string(), now.clone()),
                        ])),
                        ..ObjectMeta::default()
                    },
                    ..Namespace::default()
                };
                let params = PostParams::default();
                namespaces.create(&params, &namespace).await.unwrap_or_else(|e| panic!("namespace {id}: {e}"));
                if declared {
                    let spec = InstanceSpec { service_id: service.to_string(), ..InstanceSpec::default() };
                    instances
                        .create(&params, &Instance::new(&id, spec))
                        .await
                        .unwrap_or_else(|e| panic!("Instance {id}: {e}"));
                }
            }
        })
        .buffer_unordered(concurrency.max(1));
    let mut created = 0;
    while done.next().await.is_some() {
        created += 1;
        if created % 1000 == 0 {
            eprintln!("  seeded {created}/{count}");
        }
    }
}

/// The Lease `hsm-controller` in kube-system, held by the bench for an hour: what the server
/// looks at before accepting a write.
fn fresh_lease(plane: &ControlPlane) {
    let now = k8s_openapi::jiff::Timestamp::now();
    let lease = serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "hsm-controller", "namespace": "kube-system"},
        "spec": {
            "holderIdentity": "api-bench",
            "leaseDurationSeconds": 3600,
            "acquireTime": now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            "renewTime": now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        }
    });
    plane.create(&lease).expect("the Lease hsm-controller");
}

fn main() {
    let count: usize = env_or("API_BENCH_INSTANCES", 10_000);
    let concurrency: usize = env_or("API_BENCH_SEED_CONCURRENCY", 32);
    let declared = env_or::<u8>("API_BENCH_DECLARED", 1) != 0;
    let auth = env_or::<u8>("API_BENCH_AUTH", 1) != 0;
    let posts: usize = env_or("API_BENCH_POSTS", 200);
    let wrk_args: Vec<String> = std::env::var("API_BENCH_WRK")
        .unwrap_or_else(|_| "-t2 -c16 -d10s --timeout 30s".into())
        .split_whitespace()
        .map(String::from)
        .collect();

    let Some(plane) = ControlPlane::start_or_skip(Options::default()) else { return };
    let dir = tempfile::tempdir().unwrap();
    // nginx's workers run as nobody: they must read the files.
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let started = Instant::now();
    plane.block_on(async {
        let cluster = Cluster::connect(Some(&plane.kubeconfig()), None, ClientOptions::default()).await.unwrap();
        service_manager::controller::install_definition(&cluster).await.unwrap();
        seed(&cluster, count, concurrency, declared).await;
    });
    let seeding = started.elapsed();
    println!(
        "seeded {count} instances ({}) in {:.1} s ({:.0}/s, {concurrency} in flight)",
        if declared { "namespace record + Instance each" } else { "namespace record each" },
        seeding.as_secs_f64(),
        count as f64 / seeding.as_secs_f64()
    );

    let server = Server::start(&plane.kubeconfig(), dir.path(), "hsm-server", &["--no-auth"]);
    println!(
        "hsm-server: {}",
        std::env::var("HSM_SERVER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_hsm-server").into())
    );

    // The bodies nginx serves: the server's own answers.
    let www = dir.path().join("www/v1");
    std::fs::create_dir_all(&www).unwrap();
    let mut sizes = Vec::new();
    for path in ["/v1/instances", "/v1/services"] {
        let fetched = Instant::now();
        let (status, body) = server.send("GET", path, None);
        let took = fetched.elapsed();
        assert_eq!(status, 200, "GET {path}: {body}\n{}", server.process.tail());
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        let items = value.as_array().map(Vec::len).unwrap_or(0);
        if path == "/v1/instances" {
            assert!(items >= count, "GET /v1/instances lists {items} instances, not {count}");
        }
        println!(
            "GET {path}: {items} items, {} bytes, first answer in {:.0} ms",
            body.len(),
            took.as_secs_f64() * 1000.0
        );
        std::fs::write(www.join(path.trim_start_matches("/v1/")), &body).unwrap();
        sizes.push(body.len());
    }
    println!(
        "hsm-server after its first answers, before load: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        memory(server.pid(), "VmRSS:"),
        memory(server.pid(), "VmHWM:")
    );
    for sub in ["www", "www/v1"] {
        std::fs::set_permissions(dir.path().join(sub), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    for file in ["instances", "services"] {
        std::fs::set_permissions(www.join(file), std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    }
    let (nginx, nginx_address) = nginx(dir.path());

    println!("wrk {} --latency; targets: hsm/nginx >= {TARGET_RATIO}x, p99 <= {TARGET_P99_MS} ms, RSS <= {TARGET_RSS_MIB} MiB", wrk_args.join(" "));
    println!(
        "{:<16} {:<18} {:>10} {:>9} {:>9} {:>8} {:>10}  notes",
        "path", "server", "req/s", "p50 ms", "p99 ms", "ratio", "VmHWM MiB"
    );
    let row = |path: &str, who: &str, run: &Run, ratio: Option<f64>, rss: Option<f64>| {
        let mut notes = Vec::new();
        if let Some(ratio) = ratio {
            notes.push(format!("ratio {}", mark(ratio >= TARGET_RATIO)));
            notes.push(format!("p99 {}", mark(run.p99_ms <= TARGET_P99_MS)));
        }
        if let Some(rss) = rss {
            notes.push(format!("RSS {}", mark(rss <= TARGET_RSS_MIB)));
        }
        if !run.errors.is_empty() {
            notes.push(run.errors.clone());
        }
        println!(
            "{path:<16} {who:<18} {:>10.0} {:>9.2} {:>9.2} {:>8} {:>10}  {}",
            run.requests_per_s,
            run.p50_ms,
            run.p99_ms,
            ratio.map(|r| format!("{r:.2}x")).unwrap_or_else(|| "-".into()),
            rss.map(|r| format!("{r:.1}")).unwrap_or_else(|| "-".into()),
            notes.join("; ")
        );
    };
    let mut static_runs = Vec::new();
    for path in ["/v1/instances", "/v1/services"] {
        let static_run = wrk(&format!("http://{nginx_address}{path}"), &wrk_args, None);
        row(path, "nginx (static)", &static_run, None, None);
        let hsm = wrk(&format!("http://{}{path}", server.address), &wrk_args, None);
        row(
            path,
            "hsm-server",
            &hsm,
            Some(hsm.requests_per_s / static_run.requests_per_s),
            Some(memory(server.pid(), "VmHWM:")),
        );
        static_runs.push(static_run);
    }

    if auth {
        let provider = stratus_tests::oidc::Provider::start(&stratus_tests::oidc::Config::standard());
        let viewer = provider.access_token("viewer");
        let secured = Server::start(
            &plane.kubeconfig(),
            dir.path(),
            "hsm-server-oidc",
            &["--oidc-issuer", provider.issuer(), "--oidc-audience", stratus_tests::oidc::HSM_AUDIENCE],
        );
        for (path, static_run) in ["/v1/instances", "/v1/services"].into_iter().zip(&static_runs) {
            let run = wrk(&format!("http://{}{path}", secured.address), &wrk_args, Some(&viewer));
            let ratio = run.requests_per_s / static_run.requests_per_s;
            row(path, "hsm-server+OpenID", &run, Some(ratio), Some(memory(secured.pid(), "VmHWM:")));
        }
    }
    drop(nginx);

    if posts > 0 {
        fresh_lease(&plane);
        let mut latencies = Vec::with_capacity(posts);
        let mut refused = 0;
        for i in 0..posts {
            let body = format!(r#"{{"service_id": "stackato.hpe.redis", "instance_id": "bench-post-{i:04}"}}"#);
            let sent = Instant::now();
            let (status, answer) = server.send("POST", "/v1/instances", Some(&body));
            latencies.push(sent.elapsed());
            if status != 202 {
                refused += 1;
                if refused == 1 {
                    eprintln!("POST /v1/instances answered {status}: {answer}");
                }
            }
        }
        latencies.sort();
        let p99 = percentile(&latencies, 0.99);
        println!(
            "POST /v1/instances x{posts} sequential: p50 {:.2} ms, p99 {p99:.2} ms (target <= {TARGET_POST_P99_MS} ms: {}), {} not 202; VmHWM {:.1} MiB",
            percentile(&latencies, 0.5),
            mark(p99 <= TARGET_POST_P99_MS),
            refused,
            memory(server.pid(), "VmHWM:")
        );
        plane.block_on(async {
            let instances: Api<Instance> = Api::all(plane.client());
            for i in 0..posts {
                let _ = instances.delete(&format!("bench-post-{i:04}"), &DeleteParams::default()).await;
            }
        });
    }
    println!("sizes: /v1/instances {} bytes, /v1/services {} bytes", sizes[0], sizes[1]);
}
