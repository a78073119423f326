//! The real `hsm-server` binary on a real Kubernetes control plane (`stratus-tests`' harness
//! with its node agent): an instance created by the action layer (what `hsm create-instance`
//! does where no converger runs) and an `Instance` nobody has converged yet are both served
//! by `GET /v1/instances` and `GET /v1/instances/{id}`, without any secret value; an unknown
//! id is a 404 in the error shape; SIGTERM stops the server gracefully. Waits are polls with
//! a generous limit: the test asserts what happens, not how fast.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use kube::api::{Api, PostParams};
use sdl::catalog::Catalog;
use serde_json::Value;
use service_manager::actions::create;
use service_manager::cluster::{ClientOptions, Cluster};
use service_manager::progress::Quiet;
use service_manager::request::InstanceRequest;
use service_manager::resource::{Instance, InstanceSpec};
use service_manager::{controller, ClusterProfile};
use stratus_tests::cluster::ControlPlane;

/// How long anything may take.
const LIMIT: Duration = Duration::from_secs(90);

fn catalog_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog")
}

/// An `hsm-server` process, killed by its PID when dropped.
struct Server {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Server {
    /// Starts the server on a free loopback port and reads where it listens.
    fn start(kubeconfig: &Path, dir: &Path) -> Server {
        let log = dir.join("hsm-server.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hsm-server"))
            .args(["--no-auth", "--listen", "127.0.0.1:0", "--catalog"])
            .arg(catalog_dir())
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .env_remove("HSM_CATALOG")
            .env_remove("HSM_SERVER_LISTEN")
            .env_remove("KUBECONFIG")
            .env("HSM_LOG", "hsm_server=debug,tower_http=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let address = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("hsm-server said {line:?}:\n{}", std::fs::read_to_string(&log).unwrap()))
            .to_string();
        Server { child, address, log }
    }

    /// `GET path` over plain HTTP/1.1: the status and the JSON body.
    fn get(&self, path: &str) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.address).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
        let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body:?}"));
        (status, body)
    }

    /// SIGTERM; waits for the process to end and returns whether it exited with 0.
    fn terminate(&mut self) -> bool {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: signalling the child this value owns (not yet waited for, so its PID is its own).
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(started.elapsed() < LIMIT, "hsm-server did not stop on SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it gives a value, up to [`LIMIT`].
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < LIMIT, "{what}: not within {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn instances_on_the_cluster_are_served_without_secrets() {
    let Some(plane) = ControlPlane::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    plane.block_on(async {
        let cluster = Cluster::connect(Some(&plane.kubeconfig()), None, ClientOptions::default()).await.unwrap();
        let catalog = Catalog::load(&catalog_dir()).unwrap();
        // A record: applied and waited for by the action layer, as `hsm create-instance`
        // does where no converger runs.
        let request = InstanceRequest {
            service_id: "stackato.hpe.redis".into(),
            idl_source: "the test".into(),
            instance_id: Some("srv-redis".into()),
            ..InstanceRequest::default()
        };
        let options = create::Options { wait: true, timeout: LIMIT, readiness: false, grants: true };
        create::run(&cluster, &catalog, &request, &ClusterProfile::default(), options, &Quiet).await.unwrap();
        // An Instance no converger has acted on (none runs here): it has no record yet.
        controller::install_definition(&cluster).await.unwrap();
        let spec = InstanceSpec { service_id: "stackato.hpe.redis".into(), ..InstanceSpec::default() };
        let instances: Api<Instance> = Api::all(cluster.client());
        instances.create(&PostParams::default(), &Instance::new("srv-declared", spec)).await.unwrap();
    });
    let mut server = Server::start(&plane.kubeconfig(), dir.path());

    let (status, ready) = server.get("/readyz");
    assert_eq!((status, ready["status"].as_str()), (200, Some("ok")), "{ready}");

    // The declared Instance shows through the server as soon as the API server serves it.
    let list = eventually("both instances listed", || {
        let (status, list) = server.get("/v1/instances");
        assert_eq!(status, 200, "{list}\n{}", server.log());
        let ids: Vec<&str> = list.as_array()?.iter().filter_map(|i| i["instance_id"].as_str()).collect();
        (ids.contains(&"srv-redis") && ids.contains(&"srv-declared")).then_some(list)
    });
    let by_id = |id: &str| list.as_array().unwrap().iter().find(|i| i["instance_id"] == id).unwrap().clone();
    let redis = by_id("srv-redis");
    assert_eq!((redis["service_id"].as_str(), redis["state"].as_str()), (Some("stackato.hpe.redis"), Some("running")));
    assert!(!redis["product_version"].as_str().unwrap().is_empty(), "{redis}");
    let declared = by_id("srv-declared");
    assert_eq!(
        (declared["service_id"].as_str(), declared["state"].as_str()),
        (Some("stackato.hpe.redis"), Some("creating"))
    );

    let (status, detail) = server.get("/v1/instances/srv-redis");
    assert_eq!(status, 200, "{detail}");
    assert_eq!((detail["instance_id"].as_str(), detail["state"].as_str()), (Some("srv-redis"), Some("running")));
    assert_eq!(detail["parameters"]["redis-password"], "********", "{detail}");
    assert!(!detail["components"].as_array().unwrap().is_empty(), "{detail}");
    // No value of the instance's Secret appears anywhere in the answer.
    let secret = plane
        .get(&format!("/api/v1/namespaces/srv-redis/secrets/{}", service_manager::plan::SECRET_NAME))
        .expect("the instance's Secret");
    let values: Vec<String> = secret["data"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap())
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .filter(|v| v.len() >= 8)
        .collect();
    assert!(!values.is_empty(), "the Secret holds no value to look for: {secret}");
    let text = detail.to_string();
    for value in &values {
        assert!(!text.contains(value.as_str()), "a secret value is in GET /v1/instances/srv-redis");
    }

    let (status, detail) = server.get("/v1/instances/srv-declared");
    assert_eq!(status, 200, "{detail}");
    assert_eq!((detail["instance_id"].as_str(), detail["state"].as_str()), (Some("srv-declared"), Some("creating")));

    // A namespace hsm does not manage is no instance.
    for id in ["srv-nothing", "kube-system"] {
        let (status, error) = server.get(&format!("/v1/instances/{id}"));
        assert_eq!(status, 404, "{error}");
        assert_eq!(
            error,
            serde_json::json!({"code": "instance_not_found", "message": format!("id: instance \"{id}\" not found"), "status": 404})
        );
    }
    let (status, error) = server.get("/v1/instances/Not_An_Id");
    assert_eq!((status, error["code"].as_str()), (400, Some("invalid_instance_id")), "{error}");

    assert!(server.terminate(), "hsm-server did not exit with 0 on SIGTERM:\n{}", server.log());
}
