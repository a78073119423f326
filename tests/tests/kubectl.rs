//! Fidelity of the test API server, judged by real clients: `kubectl` (installed on the
//! machine) applies, gets and deletes through it, and a raw HTTP watch sees the changes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use stratus_tests::apiserver::store::ControllerConfig;
use stratus_tests::apiserver::{Config, FakeApiServer, Faults};

const MANIFESTS: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
  labels:
    app: shop
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels:
    app: shop
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.27
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
spec:
  type: LoadBalancer
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
"#;

struct Kubectl {
    server: FakeApiServer,
    dir: tempfile::TempDir,
}

impl Kubectl {
    fn new(config: Config) -> Kubectl {
        let server = FakeApiServer::spawn(config, "127.0.0.1:0".parse().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        server.write_kubeconfig(&dir.path().join("kubeconfig")).unwrap();
        std::fs::write(dir.path().join("objects.yaml"), MANIFESTS).unwrap();
        Kubectl { server, dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("HOME", self.dir.path())
            .current_dir(self.dir.path())
            .output()
            .expect("kubectl is installed")
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(output.status.success(), "kubectl {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
}

#[test]
fn kubectl_applies_gets_and_deletes() {
    let k = Kubectl::new(Config {
        controller: ControllerConfig { ready_after: Duration::from_millis(50), ..Default::default() },
        ..Config::default()
    });
    let applied = k.ok(&["apply", "--server-side", "--validate=false", "-f", "objects.yaml"]);
    assert_eq!(
        applied,
        "namespace/demo serverside-applied\nconfigmap/settings serverside-applied\ndeployment.apps/web serverside-applied\nservice/web serverside-applied\n"
    );

    let cm = k.json(&["get", "configmap", "settings", "-n", "demo"]);
    assert_eq!(cm["data"]["greeting"], "hello");
    assert_eq!(cm["metadata"]["uid"].as_str().unwrap().len(), 36);
    let rv = cm["metadata"]["resourceVersion"].as_str().unwrap().to_string();

    // Re-applying the same objects changes nothing.
    k.ok(&["apply", "--server-side", "--validate=false", "-f", "objects.yaml"]);
    let again = k.json(&["get", "configmap", "settings", "-n", "demo"]);
    assert_eq!(again["metadata"]["resourceVersion"], rv.as_str());

    // Label selectors.
    let selected = k.json(&["get", "configmaps,deployments", "-n", "demo", "-l", "app=shop"]);
    assert_eq!(selected["items"].as_array().unwrap().len(), 2);
    let none = k.json(&["get", "configmaps", "-n", "demo", "-l", "app in (other)"]);
    assert_eq!(none["items"].as_array().unwrap().len(), 0);

    // The controller makes the deployment ready and gives the load balancer an address.
    std::thread::sleep(Duration::from_millis(300));
    let web = k.json(&["get", "deployment", "web", "-n", "demo"]);
    assert_eq!(web["status"]["readyReplicas"], 2);
    assert_eq!(web["metadata"]["generation"], 1);
    let svc = k.json(&["get", "service", "web", "-n", "demo"]);
    assert!(svc["status"]["loadBalancer"]["ingress"][0]["ip"].as_str().unwrap().starts_with("192.0.2."));

    // A scale through a merge patch bumps the generation.
    k.ok(&["patch", "deployment", "web", "-n", "demo", "--type", "merge", "-p", r#"{"spec":{"replicas":3}}"#]);
    assert_eq!(k.json(&["get", "deployment", "web", "-n", "demo"])["metadata"]["generation"], 2);

    // 404 surfaces as kubectl's NotFound message.
    let missing = k.run(&["get", "configmap", "nope", "-n", "demo"]);
    assert!(!missing.status.success());
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr).trim(),
        "Error from server (NotFound): configmaps \"nope\" not found"
    );

    let deleted = k.ok(&["delete", "namespace", "demo", "--wait=true", "--timeout=10s"]);
    assert_eq!(deleted, "namespace \"demo\" deleted\n");
    let left = k.json(&["get", "configmaps", "--all-namespaces"]);
    assert_eq!(left["items"].as_array().unwrap().len(), 0, "namespace deletion removed its content");
    assert!(k.server.object("Namespace", "", "demo").is_none());
}

#[test]
fn kubectl_sees_conflicts_and_invalid_names() {
    let k = Kubectl::new(Config::default());
    k.ok(&["apply", "--server-side", "--validate=false", "-f", "objects.yaml"]);
    std::fs::write(k.dir.path().join("ns.yaml"), "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n").unwrap();
    let exists = k.run(&["create", "--validate=false", "-f", "ns.yaml"]);
    assert!(!exists.status.success());
    assert_eq!(
        String::from_utf8_lossy(&exists.stderr).trim(),
        "Error from server (AlreadyExists): error when creating \"ns.yaml\": namespaces \"demo\" already exists"
    );

    std::fs::write(
        k.dir.path().join("bad.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n  namespace: demo\n",
    )
    .unwrap();
    let invalid = k.run(&["apply", "--server-side", "--validate=false", "-f", "bad.yaml"]);
    assert!(!invalid.status.success());
    let message = String::from_utf8_lossy(&invalid.stderr).to_string();
    assert!(message.contains("is invalid: metadata.name: Invalid value: \"Bad_Name\""), "{message}");
}

/// Sends one raw HTTP/1.1 request and returns (status line, body reader).
fn raw_request(
    server: &FakeApiServer,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (String, BufReader<TcpStream>) {
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header == "\r\n" {
            break;
        }
    }
    (status.trim().to_string(), reader)
}

fn apply(server: &FakeApiServer, path: &str, body: &str) -> (String, Value) {
    let (status, mut reader) =
        raw_request(server, "PATCH", &format!("{path}?fieldManager=test"), "application/apply-patch+yaml", body);
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn watch_streams_changes_from_a_resource_version() {
    let server = FakeApiServer::spawn(Config::default(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let (status, _) =
        apply(&server, "/api/v1/namespaces/w", r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"w"}}"#);
    assert_eq!(status, "HTTP/1.1 201 Created");
    let (_, first) = apply(
        &server,
        "/api/v1/namespaces/w/configmaps/a",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","labels":{"x":"1"}},"data":{"k":"1"}}"#,
    );
    let since = first["metadata"]["resourceVersion"].as_str().unwrap().to_string();

    let (status, mut watch) = raw_request(
        &server,
        "GET",
        &format!(
            "/api/v1/namespaces/w/configmaps?watch=true&resourceVersion={since}&labelSelector=x%3D1&timeoutSeconds=5"
        ),
        "application/json",
        "",
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    apply(
        &server,
        "/api/v1/namespaces/w/configmaps/a",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","labels":{"x":"1"}},"data":{"k":"2"}}"#,
    );
    apply(
        &server,
        "/api/v1/namespaces/w/configmaps/other",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"other"}}"#,
    );
    let (status, _) = raw_request(&server, "DELETE", "/api/v1/namespaces/w/configmaps/a", "application/json", "");
    assert_eq!(status, "HTTP/1.1 200 OK");

    // Chunked encoding: size line, data line, blank line.
    let mut events = Vec::new();
    while events.len() < 2 {
        let mut line = String::new();
        watch.read_line(&mut line).unwrap();
        match serde_json::from_str::<Value>(line.trim()) {
            Ok(event) if event.is_object() => events.push(event),
            _ => {}
        }
    }
    assert_eq!(events[0]["type"], "MODIFIED");
    assert_eq!(events[0]["object"]["data"]["k"], "2");
    assert_eq!(events[1]["type"], "DELETED", "the unlabelled ConfigMap is filtered out");
}

#[test]
fn injected_faults_answer_with_kubernetes_statuses() {
    let server = FakeApiServer::spawn(Config::default(), "127.0.0.1:0".parse().unwrap()).unwrap();
    server.set_faults(Faults { throttle_every: 2, ..Faults::default() });
    let (first, _) = raw_request(&server, "GET", "/api/v1/namespaces", "application/json", "");
    let (second, _) = raw_request(&server, "GET", "/api/v1/namespaces", "application/json", "");
    let (discovery, _) = raw_request(&server, "GET", "/api", "application/json", "");
    assert_eq!(
        (first.as_str(), second.as_str(), discovery.as_str()),
        ("HTTP/1.1 200 OK", "HTTP/1.1 429 Too Many Requests", "HTTP/1.1 200 OK")
    );
    server.set_faults(Faults { error_every: 1, ..Faults::default() });
    let (error, _) = raw_request(&server, "GET", "/api/v1/namespaces", "application/json", "");
    assert_eq!(error, "HTTP/1.1 500 Internal Server Error");
    let (all, discovery) = server.request_counts();
    assert_eq!((all, discovery), (4, 1));
}

/// A CA, and a client certificate from it for `kubernetes-admin` (PEM pairs).
fn cluster_ca() -> ((String, String), (String, String)) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "kubernetes");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&ca_cert.pem(), rcgen::KeyPair::from_pem(&ca_key.serialize_pem()).unwrap())
            .unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let mut client = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    client.distinguished_name.push(rcgen::DnType::CommonName, "kubernetes-admin");
    client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &issuer).unwrap();
    ((ca_cert.pem(), ca_key.serialize_pem()), (client_cert.pem(), client_key.serialize_pem()))
}

#[test]
fn kubectl_needs_a_client_certificate_from_the_cluster_ca_over_tls() {
    let encode = |pem: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pem);
    let ((ca, ca_key), (cert, key)) = cluster_ca();
    let tls = stratus_tests::apiserver::tls::Tls::issued_by(&ca, &ca_key, &["127.0.0.1"]).unwrap();
    let server =
        FakeApiServer::spawn(Config { tls: Some(tls), ..Config::default() }, "127.0.0.1:0".parse().unwrap()).unwrap();
    assert!(server.url().starts_with("https://"));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = |user: &str| {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {user}\n",
            server.url(),
            encode(&ca)
        )
    };
    let with_cert = format!("\n    client-certificate-data: {}\n    client-key-data: {}", encode(&cert), encode(&key));
    std::fs::write(dir.path().join("admin"), kubeconfig(&with_cert)).unwrap();
    std::fs::write(dir.path().join("anonymous"), kubeconfig("{}")).unwrap();
    let kubectl = |config: &str| {
        Command::new("kubectl")
            .args(["get", "namespaces", "-o", "name", "--request-timeout=5s"])
            .env("KUBECONFIG", dir.path().join(config))
            .env("HOME", dir.path())
            .output()
            .unwrap()
    };
    let admin = kubectl("admin");
    assert!(admin.status.success(), "{}", String::from_utf8_lossy(&admin.stderr));
    let names = String::from_utf8_lossy(&admin.stdout);
    assert!(names.contains("namespace/default") && names.contains("namespace/kube-system"), "{names}");
    let anonymous = kubectl("anonymous");
    assert!(!anonymous.status.success(), "a client without a certificate was served");
}
