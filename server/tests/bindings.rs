//! The binding routes of the real `hsm-server` binary on a real Kubernetes control plane
//! (`stratus-tests`' harness; its node agent finishes the bind and unbind Jobs): a redis
//! instance made by the action layer is bound, listed, read and unbound through
//! `/v1/instances/{id}/bindings`; the password is only in the credentials answer — in no
//! listing, no summary and not in the server's log; unknown instances and bindings are 404s,
//! malformed ids and bodies 400s. Waits are polls with a generous limit.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use common::{catalog_dir, eventually, Server};
use sdl::catalog::Catalog;
use serde_json::{json, Value};
use service_manager::actions::create;
use service_manager::cluster::{ClientOptions, Cluster};
use service_manager::progress::Quiet;
use service_manager::request::InstanceRequest;
use service_manager::ClusterProfile;
use stratus_tests::cluster::ControlPlane;

const LIMIT: Duration = Duration::from_secs(90);

impl Server {
    /// Starts the server without authentication on a free loopback port.
    fn start(kubeconfig: &Path, dir: &Path) -> Server {
        Server::spawn(kubeconfig, dir, "hsm-server", &["--no-auth"], &[])
    }

    /// `method path` with a JSON `body`: the status and the answer's text.
    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        let body = body.map(Value::to_string);
        let content = body
            .as_ref()
            .map(|b| format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()))
            .unwrap_or_else(|| "Content-Length: 0\r\n".into());
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{content}\r\n{}",
            self.address,
            body.unwrap_or_default()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
        (status, body.to_string())
    }

    fn json(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value, String) {
        let (status, text) = self.send(method, path, body);
        let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text:?}"));
        (status, value, text)
    }
}

#[test]
fn bindings_are_made_read_and_removed_through_the_api() {
    let Some(plane) = ControlPlane::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let id = "rest-redis";
    plane.block_on(async {
        let cluster = Cluster::connect(Some(&plane.kubeconfig()), None, ClientOptions::default()).await.unwrap();
        let catalog = Catalog::load(&catalog_dir()).unwrap();
        let request = InstanceRequest {
            service_id: "stackato.hpe.redis".into(),
            idl_source: "the test".into(),
            instance_id: Some(id.into()),
            ..InstanceRequest::default()
        };
        let options = create::Options { wait: true, timeout: LIMIT, readiness: false, grants: true };
        create::run(&cluster, &catalog, &request, &ClusterProfile::default(), options, &Quiet).await.unwrap();
    });
    let server = Server::start(&plane.kubeconfig(), dir.path());
    let base = format!("/v1/instances/{id}/bindings");

    let (status, list, _) = server.json("GET", &base, None);
    assert_eq!((status, list), (200, json!([])));

    let (status, created, _) = server.json("POST", &base, Some(&json!({"binding_id": "r1"})));
    assert_eq!(status, 202, "{created}\n{}", server.log());
    assert_eq!((created["id"].as_str(), created["instance_id"].as_str()), (Some("r1"), Some(id)));
    assert_eq!(created["secret_name"], "binding-r1");
    let ready = eventually(LIMIT, "the binding is ready", || {
        let (status, binding, _) = server.json("GET", &format!("{base}/r1"), None);
        assert_eq!(status, 200, "{binding}");
        (binding["state"] == "ready").then_some(binding)
    });
    assert!(ready["created"].is_string(), "{ready}");

    // The same id again answers the same binding; a generated id makes another one.
    let (status, again, _) = server.json("POST", &base, Some(&json!({"binding_id": "r1"})));
    assert_eq!((status, again["state"].as_str()), (202, Some("ready")), "{again}");
    let (status, generated, _) = server.json("POST", &base, Some(&json!({})));
    assert_eq!(status, 202, "{generated}");
    let generated_id = generated["id"].as_str().unwrap().to_string();
    assert_ne!(generated_id, "r1");

    let (status, credentials, _) = server.json("GET", &format!("{base}/r1/credentials"), None);
    assert_eq!(status, 200, "{credentials}");
    let secret = plane.object("Secret", id, "binding-r1").expect("the binding Secret");
    let password = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["password"].as_str().unwrap())
        .map(|b| String::from_utf8(b).unwrap())
        .unwrap();
    assert_eq!(credentials["password"], password.as_str());
    assert_eq!(credentials["type"], "redis");
    assert_eq!(credentials["host"], format!("redis-int.{id}.svc"));
    assert_eq!(
        credentials["uri"],
        format!("redis://{}:{password}@redis-int.{id}.svc:6379", credentials["username"].as_str().unwrap())
    );

    // No listing or summary carries it.
    let (status, _, listed) = server.json("GET", &base, None);
    assert_eq!(status, 200);
    let (_, _, one) = server.json("GET", &format!("{base}/r1"), None);
    for text in [&listed, &one, &again.to_string(), &created.to_string()] {
        assert!(!text.contains(&password), "the password is in {text}");
    }
    assert!(listed.contains("\"r1\"") && listed.contains(&generated_id), "{listed}");

    // Failures.
    let (status, error, _) = server.json("POST", "/v1/instances/rest-nothing/bindings", Some(&json!({})));
    assert_eq!((status, error["code"].as_str()), (404, Some("instance_not_found")), "{error}");
    let (status, error, _) = server.json("GET", &format!("{base}/nothing"), None);
    assert_eq!((status, error["code"].as_str()), (404, Some("binding_not_found")), "{error}");
    let (status, error, _) = server.json("GET", &format!("{base}/nothing/credentials"), None);
    assert_eq!((status, error["code"].as_str()), (404, Some("binding_not_found")), "{error}");
    let (status, error, _) = server.json("POST", &base, Some(&json!({"binding_id": "Not_An_Id"})));
    assert_eq!((status, error["code"].as_str()), (400, Some("invalid_binding_id")), "{error}");
    let (status, error, _) = server.json("POST", &base, Some(&json!({"colour": 1})));
    assert_eq!((status, error["code"].as_str()), (400, Some("invalid_body")), "{error}");
    let (status, error, _) = server.json("DELETE", &format!("{base}/Not_An_Id"), None);
    assert_eq!((status, error["code"].as_str()), (400, Some("invalid_binding_id")), "{error}");

    // Unbinding: 202 at once, then gone.
    let (status, deleted, _) = server.json("DELETE", &format!("{base}/r1"), None);
    assert_eq!((status, deleted["state"].as_str()), (202, Some("deleting")), "{deleted}");
    assert!(plane.object("Secret", id, "binding-r1").is_none());
    eventually(LIMIT, "the binding is gone", || {
        let (status, _, _) = server.json("GET", &format!("{base}/r1"), None);
        (status == 404).then_some(())
    });
    let (status, error, _) = server.json("DELETE", &format!("{base}/r1"), None);
    assert_eq!((status, error["code"].as_str()), (404, Some("binding_not_found")), "{error}");
    let (status, _, _) = server.json("DELETE", &format!("{base}/{generated_id}"), None);
    assert_eq!(status, 202);

    assert!(!server.log().contains(&password), "the password is in the server's log");
}
