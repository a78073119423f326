//! `bootstrap-cloud` as `bootstrap` runs it: one JSON request on stdin, one JSON answer on
//! stdout. (Preflight and uninstall through it: bootstrap/tests/aws.rs and openstack.rs.)
//! This test also makes `cargo test --workspace` build the binary next to `bootstrap`, where
//! bootstrap's own tests look for it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use bootstrap_cloud_protocol::{openstack, Answer, Request};

fn helper(input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bootstrap-cloud"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_cloud_that_cannot_be_asked_is_an_answer_not_a_crash() {
    // Nothing listens on port 1: the request is understood, the cloud cannot be reached.
    let request = Request::OpenStackLeftovers {
        connection: openstack::Connection {
            auth_url: "http://127.0.0.1:1/v3".into(),
            username: "ops".into(),
            password: "hunter2-secret".into(),
            domain: openstack::IdOrName::Name("Default".into()),
            project: openstack::IdOrName::Name("stratus".into()),
            region: "RegionOne".into(),
            ca_certificate: None,
        },
        cluster: "demo".into(),
    };
    let output = helper(&serde_json::to_vec(&request).unwrap());
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let answer: Answer = serde_json::from_slice(&output.stdout).unwrap();
    let Answer::Failed(why) = answer else { panic!("not a failure: {answer:?}") };
    assert!(why.contains("http://127.0.0.1:1/v3") && why.contains("ops"), "{why}");
    assert!(!why.contains("hunter2-secret"), "{why}");
}

#[test]
fn what_is_not_a_request_is_refused_without_being_echoed() {
    let output = helper(br#"{"call": "aws-preflight", "password": "hunter2-secret"#);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: bootstrap-cloud: not a request (line 1, column "), "{stderr}");
    assert!(!stderr.contains("hunter2-secret") && output.stdout.is_empty());
}
