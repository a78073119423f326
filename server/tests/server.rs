//! The real `hsm-server` binary on a real Kubernetes control plane (`stratus-tests`' harness
//! with its node agent): an instance created by the action layer (what `hsm create-instance`
//! does where no converger runs) and an `Instance` nobody has converged yet are both served
//! by `GET /v1/instances` and `GET /v1/instances/{id}`, without any secret value; an unknown
//! id is a 404 in the error shape; SIGTERM stops the server gracefully. With a converger
//! (embedded here, as `hsm controller` runs it), an instance is created, followed through its
//! events to running, changed, refused an immutable change and deleted through the API; bad
//! bodies create nothing; secret values are in no answer and not in the server's log. Waits
//! are polls with a generous limit: the test asserts what happens, not how fast.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{catalog_dir, dechunk, eventually, schemathesis, Converger, Server};
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

/// One test at a time: the converger of one would converge the other's unconverged Instance.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Server {
    /// Starts the server without authentication on a free loopback port and reads where it
    /// listens.
    fn start(kubeconfig: &Path, dir: &Path) -> Server {
        Server::start_with(kubeconfig, dir, &["--no-auth"])
    }

    /// The same with the flags `args` (authentication's).
    fn start_with(kubeconfig: &Path, dir: &Path, args: &[&str]) -> Server {
        Server::spawn(kubeconfig, dir, "hsm-server", args, &[])
    }

    /// `method path` with a JSON `body` over plain HTTP/1.1: the status, the head and the
    /// body (de-chunked).
    fn send(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String, String) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        let content = body.map(|b| format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{}\r\n{}",
            self.address,
            content.unwrap_or_default(),
            body.unwrap_or_default()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            dechunk(body)
        } else {
            body.to_string()
        };
        (status, head.to_string(), body)
    }

    /// `method path` with a JSON `body`: the status, the head and the JSON answer.
    fn json(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String, Value) {
        let (status, head, text) = self.send(method, path, body);
        assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{method} {path}: {head}");
        let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text:?}"));
        (status, head, value)
    }

    /// `GET path`: the status and the JSON body.
    fn get(&self, path: &str) -> (u16, Value) {
        let (status, _, body) = self.json("GET", path, None);
        (status, body)
    }

    /// The data of every event of the server-sent events at `path`, read until the server
    /// ends the stream.
    fn events(&self, path: &str) -> Vec<Value> {
        let (status, head, body) = self.send("GET", path, None);
        assert_eq!(status, 200, "{head}\n{body}");
        assert!(head.to_ascii_lowercase().contains("content-type: text/event-stream"), "{head}");
        body.split("\n\n")
            .filter(|block| !block.trim().is_empty() && !block.starts_with(':'))
            .map(|block| {
                let lines: Vec<&str> = block.lines().collect();
                assert!(lines.contains(&"event: state"), "{block}");
                let data = lines.iter().find_map(|l| l.strip_prefix("data: ")).unwrap_or_else(|| panic!("{block}"));
                serde_json::from_str(data).unwrap()
            })
            .collect()
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
}

#[test]
fn instances_on_the_cluster_are_served_without_secrets() {
    let Some(plane) = ControlPlane::shared() else { return };
    let _one = one_at_a_time();
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

    // Ready once the instance cache has listed the cluster (and then it says so).
    eventually(LIMIT, "/readyz says ready", || {
        let (status, ready) = server.get("/readyz");
        (status == 200 && ready["status"] == "ok").then_some(())
    });
    let (_, _, metrics) = server.send("GET", "/metrics", None);
    assert!(metrics.contains("hsm_server_instance_cache_synced 1"), "ready before the cache synced:\n{metrics}");

    // The declared Instance shows through the server as soon as the API server serves it.
    let list = eventually(LIMIT, "both instances listed", || {
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

    // An event stream open on an instance nothing converges does not hold up a graceful stop:
    // it ends when the server stops.
    let mut stream = TcpStream::connect(&server.address).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    write!(stream, "GET /v1/instances/srv-declared/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("event: state") {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "the stream ended before its first event: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buffer[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).contains("\"state\":\"creating\""), "{}", String::from_utf8_lossy(&seen));
    assert!(server.terminate(), "hsm-server did not exit with 0 on SIGTERM:\n{}", server.log());
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
}

/// The value of `key` in Secret `name` of `namespace`, if any.
fn secret_value(plane: &ControlPlane, namespace: &str, name: &str, key: &str) -> Option<String> {
    let secret = plane.get(&format!("/api/v1/namespaces/{namespace}/secrets/{name}"))?;
    let encoded = secret["data"][key].as_str()?;
    Some(String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).unwrap()).unwrap())
}

#[test]
fn instances_are_created_changed_and_deleted_through_the_converger() {
    let Some(plane) = ControlPlane::shared() else { return };
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&plane.kubeconfig(), dir.path());
    // Every answer, to look for secret values in at the end.
    let mut answers: Vec<String> = Vec::new();
    let (first_secret, second_secret) = ("Srv-Secret-7f2c9e1a-first", "Srv-Secret-4b8d0c3e-second");
    let create = format!(
        r#"{{"service_id": "stackato.hpe.postgres", "instance_id": "srv-pg", "parameters": {{"postgres-password": "{first_secret}"}}}}"#
    );

    // Without a converger, nothing can be written.
    let (status, _, answer) = server.json("POST", "/v1/instances", Some(&create));
    assert_eq!((status, answer["code"].as_str()), (503, Some("converger_unavailable")), "{answer}");
    answers.push(answer.to_string());

    let converger = Converger::start(plane);
    eventually(LIMIT, "the converger leads", || {
        let lease = plane.get("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/hsm-controller")?;
        lease["spec"]["holderIdentity"].as_str().filter(|h| !h.is_empty()).map(|_| ())
    });

    // Bad bodies are refused naming the JSON path, and create nothing.
    let bad = [
        (
            r#"{"service_id": "stackato.hpe.postgres", "instance_id": "srv-pg", "replicas": 2}"#,
            400,
            "invalid_body",
            "replicas",
        ),
        (
            r#"{"service_id": "stackato.hpe.postgres", "instance_id": "srv-pg", "parameters": []}"#,
            400,
            "invalid_body",
            "parameters",
        ),
        (r#"{"service_id": "stackato.hpe.nosuch", "instance_id": "srv-pg"}"#, 404, "unknown_service", "service_id"),
        (
            r#"{"service_id": "stackato.hpe.postgres", "instance_id": "srv-pg", "parameters": {"NOPE": "1"}}"#,
            422,
            "invalid_parameters",
            "parameters.NOPE",
        ),
    ];
    for (body, expected, code, path) in bad {
        let (status, _, answer) = server.json("POST", "/v1/instances", Some(body));
        assert_eq!((status, answer["code"].as_str()), (expected, Some(code)), "{body}: {answer}");
        assert!(answer["message"].as_str().unwrap().starts_with(path), "{body}: {answer}");
        answers.push(answer.to_string());
    }
    let (status, _) = server.get("/v1/instances/srv-pg");
    assert_eq!(status, 404, "a refused body created instance srv-pg");
    assert!(plane.get("/apis/stratus.io/v1alpha1/instances/srv-pg").is_none());

    // Create: 202 at once with the summary, then followed to running through the events.
    let (status, head, created) = server.json("POST", "/v1/instances", Some(&create));
    assert_eq!(status, 202, "{created}\n{}", server.log());
    assert!(head.to_ascii_lowercase().contains("location: /v1/instances/srv-pg"), "{head}");
    assert_eq!(
        (created["instance_id"].as_str(), created["service_id"].as_str(), created["state"].as_str()),
        (Some("srv-pg"), Some("stackato.hpe.postgres"), Some("creating"))
    );
    answers.push(created.to_string());
    // The list (kept by watches) shows the server's own write at once.
    let (status, list) = server.get("/v1/instances");
    assert_eq!(status, 200, "{list}");
    let listed = list.as_array().unwrap().iter().find(|i| i["instance_id"] == "srv-pg");
    assert_eq!(listed.map(|i| i["service_id"].clone()), Some("stackato.hpe.postgres".into()), "{list}");
    let (status, _, taken) = server.json("POST", "/v1/instances", Some(&create));
    assert_eq!((status, taken["code"].as_str()), (409, Some("instance_exists")), "{taken}");

    let events = server.events("/v1/instances/srv-pg/events");
    answers.extend(events.iter().map(Value::to_string));
    let last = events.last().expect("at least one event");
    assert_eq!(last["state"], "running", "{events:?}\n{}", server.log());
    assert_eq!(last["instance_id"], "srv-pg");
    let (status, detail) = server.get("/v1/instances/srv-pg");
    assert_eq!((status, detail["state"].as_str()), (200, Some("running")), "{detail}");
    assert_eq!(detail["parameters"]["postgres-password"], "********", "{detail}");
    answers.push(detail.to_string());
    // The value given reached the instance.
    let secret = |plane| secret_value(plane, "srv-pg", service_manager::plan::SECRET_NAME, "postgres-password");
    assert_eq!(secret(plane).as_deref(), Some(first_secret));

    // Refused changes: an immutable parameter (409), an unknown one (422), a malformed body.
    let (status, _, refused) =
        server.json("PATCH", "/v1/instances/srv-pg", Some(r#"{"parameters": {"POSTGRES_USER": "admin"}}"#));
    assert_eq!((status, refused["code"].as_str()), (409, Some("immutable_parameter")), "{refused}");
    assert!(refused["message"].as_str().unwrap().starts_with("parameters.POSTGRES_USER: "), "{refused}");
    let (status, _, refused) = server.json("PATCH", "/v1/instances/srv-pg", Some(r#"{"parameters": {"NOPE": "1"}}"#));
    assert_eq!((status, refused["code"].as_str()), (422, Some("invalid_parameters")), "{refused}");
    assert!(refused["message"].as_str().unwrap().starts_with("parameters.NOPE: "), "{refused}");
    let (status, _, refused) = server.json("PATCH", "/v1/instances/srv-pg", Some(r#"{"colour": "red"}"#));
    assert_eq!((status, refused["code"].as_str()), (400, Some("invalid_body")), "{refused}");
    let (status, _, refused) = server.json("PATCH", "/v1/instances/srv-nothing", Some(r#"{"parameters": {}}"#));
    assert_eq!((status, refused["code"].as_str()), (404, Some("instance_not_found")), "{refused}");

    // A change of a parameter: accepted, converged, and the new value reaches the instance.
    let change = format!(r#"{{"parameters": {{"postgres-password": "{second_secret}"}}}}"#);
    let (status, _, changed) = server.json("PATCH", "/v1/instances/srv-pg", Some(&change));
    assert_eq!((status, changed["state"].as_str()), (202, Some("upgrading")), "{changed}\n{}", server.log());
    answers.push(changed.to_string());
    let events = server.events("/v1/instances/srv-pg/events");
    answers.extend(events.iter().map(Value::to_string));
    assert_eq!(events.last().unwrap()["state"], "running", "{events:?}");
    eventually(LIMIT, "the changed password reaches the instance", || {
        (secret(plane).as_deref() == Some(second_secret)).then_some(())
    });

    // Delete: 202 deleting, followed until deleted; then the instance is gone.
    let (status, _, deleting) = server.json("DELETE", "/v1/instances/srv-pg", None);
    assert_eq!((status, deleting["state"].as_str()), (202, Some("deleting")), "{deleting}");
    answers.push(deleting.to_string());
    let (status, head, body) = server.send("GET", "/v1/instances/srv-pg/events", None);
    if status == 200 {
        assert!(body.contains("\"state\":\"deleted\""), "{head}\n{body}");
        answers.push(body);
    } else {
        // Already gone before the stream began.
        assert_eq!(status, 404, "{head}\n{body}");
    }
    eventually(LIMIT, "the instance is gone", || (server.get("/v1/instances/srv-pg").0 == 404).then_some(()));
    eventually(LIMIT, "the list no longer has it", || {
        let (_, list) = server.get("/v1/instances");
        (!list.as_array()?.iter().any(|i| i["instance_id"] == "srv-pg")).then_some(())
    });
    let (status, _, gone) = server.json("DELETE", "/v1/instances/srv-pg", None);
    assert_eq!((status, gone["code"].as_str()), (404, Some("instance_not_found")), "{gone}");

    // The requests are counted.
    let (status, _, metrics) = server.send("GET", "/metrics", None);
    assert_eq!(status, 200);
    for line in [
        "hsm_server_requests_total{route=\"/v1/instances\",method=\"POST\",status=\"202\"} 1",
        "hsm_server_requests_total{route=\"/v1/instances/{id}\",method=\"PATCH\",status=\"409\"} 1",
        "hsm_server_requests_total{route=\"/v1/instances/{id}\",method=\"DELETE\",status=\"202\"} 1",
        "hsm_server_instance_cache_synced 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no {line} in\n{metrics}");
    }

    // Lists were answered from the watches, not from the API server.
    let served = metrics.lines().find_map(|l| l.strip_prefix("hsm_server_instance_cache_lists_served_total "));
    assert!(served.and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n >= 2), "{metrics}");

    // Secret values are in no answer and not in the server's log.
    let log = server.log();
    for secret in [first_secret, second_secret] {
        assert!(!answers.iter().any(|a| a.contains(secret)), "a secret value is in an answer");
        assert!(!log.contains(secret), "a secret value is in the server's log");
    }
    drop(converger);
}

/// schemathesis against `/v1/openapi.json` of a server with authentication (a real OpenID
/// provider) on the real control plane with a converger: every operation of the document,
/// fed examples, boundary values and random data (valid and invalid), with and without the
/// token. No answer may be a 5xx, and every answer must match the document (status, content
/// type, headers, schema); invalid data must be refused and a missing token must be a 401.
/// Left out: `positive_data_acceptance`, which expects every schema-valid request to succeed
/// — this API's validity depends on the catalog (an unknown service is a 404, an unknown
/// parameter a 422) and on the cluster, which no schema can say.
#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let Some(plane) = ControlPlane::shared() else { return };
    let Some(schemathesis) = schemathesis() else { return };
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let provider = stratus_tests::oidc::Provider::start(&stratus_tests::oidc::Config::standard());
    let _converger = Converger::start(plane);
    let auth = [
        "--oidc-issuer",
        provider.issuer(),
        "--oidc-audience",
        stratus_tests::oidc::HSM_AUDIENCE,
        "--request-timeout",
        "10s",
    ];
    let server = Server::start_with(&plane.kubeconfig(), dir.path(), &auth);
    let token = provider.access_token("admin");
    let output = Command::new(&schemathesis)
        .arg("run")
        .arg(format!("http://{}/v1/openapi.json", server.address))
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        .args(["--max-examples", "25", "--workers", "2", "--request-timeout", "15", "--no-color"])
        .args(["--seed", "20261203", "--suppress-health-check", "all"])
        .arg("--header")
        .arg(format!("Authorization: Bearer {token}"))
        .current_dir(dir.path())
        .env("SCHEMATHESIS_HOOKS", "")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{}\n\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(&server.log).unwrap_or_default()
    );
    // It sent requests to every operation of the document (the server's own counters).
    let (_, document) = server.get("/v1/openapi.json");
    let metrics = http_text(&server.address, "/metrics");
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let counted = format!("route=\"{path}\",method=\"{}\"", method.to_uppercase());
            assert!(metrics.contains(&counted), "schemathesis did not exercise {method} {path}:\n{stdout}");
        }
    }
    // Whatever it created is deleted: the converger takes the namespaces away.
    let created: Vec<String> = plane
        .get("/apis/stratus.io/v1alpha1/instances")
        .and_then(|list| list["items"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str().map(String::from))
        .collect();
    for name in &created {
        let path = format!("/apis/stratus.io/v1alpha1/instances/{name}");
        let _ = plane.send("DELETE", &path, "application/json", &serde_json::json!({}));
    }
    eventually(LIMIT, "the Instances schemathesis created deleted", || {
        let list = plane.get("/apis/stratus.io/v1alpha1/instances")?;
        list["items"].as_array().is_some_and(|items| items.is_empty()).then_some(())
    });
}

/// `GET path` over plain HTTP/1.1: the body as text.
fn http_text(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}
