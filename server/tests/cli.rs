//! The `hsm-server` binary without a control plane (and without authentication, `--no-auth`):
//! bad flags exit 2 with a message naming the flag (plain HTTP only when asked for and only
//! on loopback; TLS needs both files); an API server that does not answer makes `/readyz` and
//! the instance endpoints 503s in the error shape (never a hang or a 500), while the catalog
//! is still served; `--cluster-attempts` bounds how often a failing Kubernetes call is tried.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

fn server() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hsm-server"));
    command
        .arg("--no-auth")
        .env_remove("HSM_CATALOG")
        .env_remove("HSM_SERVER_LISTEN")
        .env_remove("HSM_TLS_CERT")
        .env_remove("HSM_TLS_KEY")
        .env_remove("HSM_OIDC_ISSUER")
        .env_remove("HSM_OIDC_AUDIENCE")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null());
    command
}

fn refused(args: &[&str]) -> String {
    let output = server().args(args).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
    assert!(output.stdout.is_empty());
    String::from_utf8(output.stderr).unwrap()
}

#[test]
fn bad_flags_exit_2_naming_them() {
    let stderr = refused(&["--listen", "127.0.0.1:0"]);
    assert!(stderr.starts_with("error: --tls-cert and --tls-key are needed to serve HTTPS"), "{stderr}");
    let stderr = refused(&["--insecure-http", "--listen", "0.0.0.0:8080"]);
    assert!(stderr.starts_with("error: --listen: 0.0.0.0:8080 is not a loopback address"), "{stderr}");
    let stderr = refused(&["--insecure-http", "--listen", "nowhere"]);
    assert!(stderr.starts_with("error: --listen: \"nowhere\" is not an IP address and port"), "{stderr}");
    let stderr = refused(&["--insecure-http", "--listen", "127.0.0.1:0", "--catalog", "/nonexistent-catalog"]);
    assert!(stderr.starts_with("error: catalog /nonexistent-catalog: "), "{stderr}");
    let stderr = refused(&["--tls-cert", "/nonexistent.crt"]);
    assert!(stderr.starts_with("error: --tls-cert: needs --tls-key"), "{stderr}");
    let stderr = refused(&["--tls-cert", "/nonexistent.crt", "--tls-key", "/nonexistent.key"]);
    assert!(stderr.starts_with("error: --tls-cert: cannot read /nonexistent.crt"), "{stderr}");
    let stderr = refused(&["--request-timeout", "soon"]);
    assert!(stderr.contains("--request-timeout"), "{stderr}");
    let stderr = refused(&["--cluster-attempts", "0"]);
    assert!(stderr.contains("--cluster-attempts"), "{stderr}");
}

/// A child process, killed by its PID when dropped (also when an assertion fails).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(address: &str, path: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.split(' ').nth(1).unwrap().parse().unwrap(), serde_json::from_str(body).unwrap())
}

#[test]
fn an_api_server_that_does_not_answer_is_a_503() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = stratus_tests::process::dead_kubeconfig(dir.path());
    let mut child = Killed(
        server()
            .args(["--insecure-http", "--listen", "127.0.0.1:0", "--request-timeout", "2s", "--kubeconfig"])
            .arg(&kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let address = line.trim().strip_prefix("listening on http://").expect(&line).to_string();

    let (status, body) = get(&address, "/readyz");
    assert_eq!((status, body["code"].as_str()), (503, Some("not_ready")), "{body}");
    let (status, body) = get(&address, "/v1/instances");
    assert_eq!((status, body["code"].as_str()), (503, Some("cluster_unavailable")), "{body}");
    eprintln!("{body}");
    let (status, body) = get(&address, "/v1/instances/some-id");
    assert_eq!((status, body["code"].as_str()), (503, Some("cluster_unavailable")), "{body}");
    let (status, body) = get(&address, "/v1/info");
    assert_eq!((status, body["catalog"].as_str()), (200, Some("stackato")), "{body}");
    let (status, _) = get(&address, "/healthz");
    assert_eq!(status, 200);
    assert!(!body.to_string().contains("not-a-real-token"));
}

/// `GET /v1/info` over HTTPS on `address`, trusting only `ca` (PEM) and asking for
/// `server_name`: the answer's text, or why the TLS connection failed.
fn https_get(address: &str, server_name: &str, ca: &str) -> Result<String, String> {
    use rustls_pki_types::pem::PemObject;
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls_pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(certificate.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(server_name.to_string()).unwrap();
    let mut connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut socket = TcpStream::connect(address).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut tls = rustls::Stream::new(&mut connection, &mut socket);
    write!(tls, "GET /v1/info HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    match tls.read_to_string(&mut answer) {
        Ok(_) => Ok(answer),
        // The server closes without close_notify after `Connection: close`: what was read counts.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => Ok(answer),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn with_a_certificate_the_server_answers_over_https_to_clients_trusting_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = stratus_pki::Ca::generate("hsm-server test CA").unwrap();
    let serving = ca.issue_serving("hsm-server", &["127.0.0.1", "hsm.example.test"], 1).unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, &serving.certificate).unwrap();
    std::fs::write(&key, &serving.key).unwrap();
    // A kubeconfig whose API server is never asked (only /v1/info is).
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n",
    )
    .unwrap();
    let mut child = Killed(
        server()
            .args(["--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let address = line.trim().strip_prefix("listening on https://").expect(&line).to_string();

    for name in ["127.0.0.1", "hsm.example.test"] {
        let answer = https_get(&address, name, ca.certificate()).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let body: Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(body["api_version"], "v1", "{body}");
    }
    // A client trusting another CA refuses the server; plain HTTP gets no HTTP answer.
    let other = stratus_pki::Ca::generate("another CA").unwrap();
    let untrusted = https_get(&address, "127.0.0.1", other.certificate()).unwrap_err();
    assert!(untrusted.to_lowercase().contains("certificate"), "{untrusted}");
    let mut plain = TcpStream::connect(&address).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(plain, "GET /v1/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut bytes = Vec::new();
    let _ = plain.read_to_end(&mut bytes);
    assert!(!bytes.starts_with(b"HTTP/1.1 200"), "plain HTTP was answered on the HTTPS port");
    // A key that does not fit the certificate is refused at start.
    std::fs::write(&key, &other.issue_serving("x", &["127.0.0.1"], 1).unwrap().key).unwrap();
    let stderr =
        refused(&["--listen", "127.0.0.1:0", "--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    assert!(stderr.starts_with("error: --tls-key: "), "{stderr}");
}

#[test]
fn cluster_attempts_bound_how_often_a_failing_call_is_tried() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = stratus_tests::process::dead_kubeconfig(dir.path());
    let log = dir.path().join("server.log");
    let mut child = Killed(
        server()
            .args(["--insecure-http", "--listen", "127.0.0.1:0", "--cluster-attempts", "2", "--kubeconfig"])
            .arg(&kubeconfig)
            .env("HSM_LOG", "service_manager=debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let address = line.trim().strip_prefix("listening on http://").expect(&line).to_string();
    let (status, body) = get(&address, "/v1/instances/attempted");
    assert_eq!((status, body["code"].as_str()), (503, Some("cluster_unavailable")), "{body}");
    // Two attempts: one retry of the call, never a second.
    let text = std::fs::read_to_string(&log).unwrap();
    let retries: Vec<&str> = text.lines().filter(|l| l.contains("retrying") && l.contains("attempted")).collect();
    assert!(!retries.is_empty(), "no retry logged:\n{text}");
    assert!(retries.iter().all(|l| l.contains("attempt=1")), "{retries:#?}");
}
