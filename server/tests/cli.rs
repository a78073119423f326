//! The `hsm-server` binary without a control plane (and without authentication, `--no-auth`):
//! bad flags exit 2 with a message naming the flag; an API server that does not answer makes
//! `/readyz` and the instance endpoints 503s in the error shape (never a hang or a 500), while
//! the catalog is still served.

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
    let stderr = refused(&["--listen", "0.0.0.0:8080"]);
    assert!(stderr.starts_with("error: --listen: 0.0.0.0:8080 is not a loopback address"), "{stderr}");
    let stderr = refused(&["--listen", "nowhere"]);
    assert!(stderr.starts_with("error: --listen: \"nowhere\" is not an IP address and port"), "{stderr}");
    let stderr = refused(&["--listen", "127.0.0.1:0", "--catalog", "/nonexistent-catalog"]);
    assert!(stderr.starts_with("error: catalog /nonexistent-catalog: "), "{stderr}");
    let stderr = refused(&["--request-timeout", "soon"]);
    assert!(stderr.contains("--request-timeout"), "{stderr}");
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
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: not-a-real-token\n"
        ),
    )
    .unwrap();
    let mut child = Killed(
        server()
            .args(["--listen", "127.0.0.1:0", "--request-timeout", "2s", "--kubeconfig"])
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
