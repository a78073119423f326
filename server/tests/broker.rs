//! The service broker API (`/v2`, Open Service Broker v2.17) of the real `hsm-server` binary on
//! a real Kubernetes control plane with a converger (embedded, as `hsm controller` runs it):
//! a table of what the specification says a broker MUST and MUST NOT do for service
//! instances — authentication, the version header, the error shape, `AsyncRequired`,
//! refused bodies creating nothing, the asynchronous flows and their `last_operation`
//! (`Retry-After`, 410 after a deprovision), idempotent and conflicting provisions,
//! `ConcurrencyError`, fetching, plan upgrades along the catalog's rules, and orphan
//! mitigation (a provision that never finishes deprovisioned); and for service bindings —
//! bind through the bind Job to credentials equal to the binding Secret's, idempotent and
//! conflicting binds, unbind to 410. Waits are polls with a
//! generous limit: the test asserts what happens, not how fast.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use common::{dechunk, eventually, schemathesis, Converger, Server};
use hsm_server::broker::bindings::hsm_binding_id;
use hsm_server::broker::instances::hsm_id;
use serde_json::{json, Value};
use stratus_tests::cluster::{Behaviour, ControlPlane};

/// Request headers: name and value.
type Headers = Vec<(&'static str, String)>;

/// How long anything may take.
const LIMIT: Duration = Duration::from_secs(120);

/// One test at a time: each runs a converger in this process.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const USER: &str = "broker";
const PASSWORD: &str = "Broker-Pw-5c1d9e7f";

/// `hsm-server` processes here have the broker's credentials in their environment.
impl Server {
    fn start(kubeconfig: &Path, dir: &Path, name: &str) -> Server {
        Server::start_with(kubeconfig, dir, name, &["--no-auth"])
    }

    /// The same with the flags `args` (authentication's).
    fn start_with(kubeconfig: &Path, dir: &Path, name: &str, args: &[&str]) -> Server {
        let env = [("HSM_BROKER_USER", USER), ("HSM_BROKER_PASSWORD", PASSWORD), ("HSM_LOG", "hsm_server=debug")];
        Server::spawn(kubeconfig, dir, name, args, &env)
    }

    /// `method path` with `headers` and a JSON `body`: the status, the head (lowercase) and
    /// the JSON answer (`Null` for an empty body).
    fn raw(&self, method: &str, path: &str, headers: &[(&str, String)], body: Option<&str>) -> (u16, String, Value) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.address);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
        }
        write!(stream, "{head}\r\n{}", body.unwrap_or_default()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let head = head.to_ascii_lowercase();
        let body = if head.contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
        let value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body:?}"))
        };
        (status, head, value)
    }

    /// An OSB request as a platform sends it: credentials, version 2.17, a request identity.
    fn osb(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String, Value) {
        let text = body.map(Value::to_string);
        self.raw(method, path, &platform_headers(), text.as_deref())
    }
}

/// A Secret's base64 value as text.
fn decode(value: &Value) -> String {
    let bytes = base64::engine::general_purpose::STANDARD.decode(value.as_str().unwrap()).unwrap();
    String::from_utf8(bytes).unwrap()
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

fn platform_headers() -> Vec<(&'static str, String)> {
    let identity = base64::engine::general_purpose::STANDARD.encode(r#"{"user_id": "cf-user-0d1e"}"#);
    vec![
        ("Authorization", basic(USER, PASSWORD)),
        ("X-Broker-API-Version", "2.17".into()),
        ("X-Broker-API-Request-Identity", "req-7a3b".into()),
        ("X-Broker-API-Originating-Identity", format!("cloudfoundry {identity}")),
    ]
}

/// Waits until the converger holds its Lease.
fn leads(plane: &ControlPlane) {
    eventually(LIMIT, "the converger leads", || {
        let lease = plane.get("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/hsm-controller")?;
        lease["spec"]["holderIdentity"].as_str().filter(|h| !h.is_empty()).map(|_| ())
    });
}

/// The ids of `service`'s offering and of its plan `product_version` in `catalog`.
fn ids(catalog: &Value, service: &str, product_version: &str) -> (String, String, String) {
    let offering = catalog["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == service)
        .unwrap_or_else(|| panic!("no offering {service} in {catalog}"));
    let plan = offering["plans"].as_array().unwrap().iter().find(|p| p["name"] == product_version).unwrap();
    (
        offering["id"].as_str().unwrap().to_string(),
        plan["id"].as_str().unwrap().to_string(),
        plan["maintenance_info"]["version"].as_str().unwrap().to_string(),
    )
}

/// Polls `last_operation` of `path` with `operation` until it is no longer in progress: the
/// final status and body. Every in-progress answer has `Retry-After`.
fn settle(server: &Server, path: &str, operation: &str) -> (u16, Value) {
    let url = format!("{path}/last_operation?operation={operation}");
    eventually(LIMIT, &format!("{operation} of {path} finishes"), || {
        let (status, head, body) = server.osb("GET", &url, None);
        if status == 200 && body["state"] == "in progress" {
            assert!(head.contains("retry-after: "), "{head}");
            return None;
        }
        Some((status, body))
    })
}

#[test]
fn osb_service_instances_on_the_real_plane() {
    let Some(plane) = ControlPlane::shared() else { return };
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&plane.kubeconfig(), dir.path(), "first");

    // Authentication, the version header and the error shape, before any handler.
    let version = ("X-Broker-API-Version", "2.17".to_string());
    let rid = ("X-Broker-API-Request-Identity", "req-auth-1".to_string());
    let auth = ("Authorization", basic(USER, PASSWORD));
    let table: Vec<(Headers, u16, Option<&str>)> = vec![
        (vec![version.clone(), rid.clone()], 401, Some("Unauthorized")),
        (vec![version.clone(), ("Authorization", basic(USER, "wrong"))], 401, Some("Unauthorized")),
        (vec![version.clone(), ("Authorization", basic("other", PASSWORD))], 401, Some("Unauthorized")),
        (vec![version.clone(), ("Authorization", "Bearer not-a-token".into())], 401, Some("Unauthorized")),
        (vec![auth.clone()], 400, Some("BadRequest")),
        (vec![auth.clone(), ("X-Broker-API-Version", "2.12".into())], 412, Some("PreconditionFailed")),
        (vec![auth.clone(), ("X-Broker-API-Version", "1.0".into())], 412, Some("PreconditionFailed")),
        (vec![auth.clone(), ("X-Broker-API-Version", "latest".into())], 400, Some("BadRequest")),
        (vec![auth.clone(), ("X-Broker-API-Version", "2.13".into())], 200, None),
        // A malformed originating identity is ignored, never refused.
        (
            vec![auth.clone(), version.clone(), ("X-Broker-API-Originating-Identity", "cloudfoundry %%%".into())],
            200,
            None,
        ),
    ];
    for (headers, expected, error) in table {
        let (status, head, body) = server.raw("GET", "/v2/catalog", &headers, None);
        assert_eq!(status, expected, "{headers:?}: {body}");
        assert!(head.contains("content-type: application/json"), "{head}");
        if let Some(error) = error {
            assert_eq!(body["error"], error, "{headers:?}: {body}");
            assert!(!body["description"].as_str().unwrap().is_empty(), "{body}");
        }
        if expected == 401 {
            assert!(head.contains("www-authenticate: basic"), "{head}");
        }
        if headers.iter().any(|(n, _)| *n == rid.0) {
            assert!(
                head.contains("x-broker-api-request-identity: req-auth-1"),
                "the request identity is echoed: {head}"
            );
        }
    }
    assert!(server.log().contains("X-Broker-API-Originating-Identity ignored"), "{}", server.log());
    // The broker's document needs no credentials.
    let (status, _, document) = server.raw("GET", "/v2/openapi.json", &[], None);
    assert_eq!(status, 200);
    assert!(document["paths"]["/v2/service_instances/{instance_id}/last_operation"].is_object(), "{document}");
    assert!(document["components"]["securitySchemes"]["basic"].is_object(), "{document}");

    // The catalog: unique names, a plan per product version; the same ids after a restart.
    let (status, _, catalog) = server.osb("GET", "/v2/catalog", None);
    assert_eq!(status, 200, "{catalog}");
    let restarted = Server::start(&plane.kubeconfig(), dir.path(), "second");
    assert_eq!(restarted.osb("GET", "/v2/catalog", None).2, catalog, "the catalog changed across a restart");
    drop(restarted);
    for offering in catalog["services"].as_array().unwrap() {
        assert!(!offering["plans"].as_array().unwrap().is_empty(), "{offering}");
        // Bindable exactly where the SDLs have a `bindings` section.
        let bindable = !matches!(offering["name"].as_str().unwrap(), "hcp" | "hcf" | "hsc");
        assert_eq!(offering["bindable"], bindable, "{offering}");
        assert_eq!(offering["bindings_retrievable"], bindable, "{offering}");
        for plan in offering["plans"].as_array().unwrap() {
            assert!(!plan["maintenance_info"]["version"].as_str().unwrap().is_empty(), "{plan}");
        }
    }
    let (redis, redis_plan, _) = ids(&catalog, "redis", "7.4");
    let (mysql, mysql_80, mysql_80_mi) = ids(&catalog, "mysql", "8.0");
    let (_, mysql_84, mysql_84_mi) = ids(&catalog, "mysql", "8.4");

    let converger = Converger::start(plane);
    leads(plane);

    // Refused provisions create nothing.
    let guid = "5d3f0c7e-2b1a-4c8d-9e6f-0a1b2c3d4e5f";
    let path = format!("/v2/service_instances/{guid}");
    let good = json!({
        "service_id": mysql, "plan_id": mysql_80,
        "organization_guid": "org-guid-1", "space_guid": "space-guid-1",
        "context": {"platform": "cloudfoundry", "organization_guid": "org-guid-1", "space_guid": "space-guid-1", "instance_name": "my db"},
        "maintenance_info": {"version": mysql_80_mi},
        "x_vendor_extension": {"ignored": true},
    });
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body[key] = value;
        body
    };
    let refused = [
        (path.clone(), good.to_string(), 422, Some("AsyncRequired")),
        (format!("{path}?accepts_incomplete=false"), good.to_string(), 422, Some("AsyncRequired")),
        (format!("{path}?accepts_incomplete=maybe"), good.to_string(), 400, None),
        (format!("{path}?accepts_incomplete=true"), with("service_id", json!("nope")).to_string(), 400, None),
        (format!("{path}?accepts_incomplete=true"), with("plan_id", json!(redis_plan)).to_string(), 400, None),
        (format!("{path}?accepts_incomplete=true"), with("plan_id", json!(7)).to_string(), 400, None),
        (
            format!("{path}?accepts_incomplete=true"),
            with("maintenance_info", json!({"version": "0.0.1"})).to_string(),
            422,
            Some("MaintenanceInfoConflict"),
        ),
        (format!("{path}?accepts_incomplete=true"), with("parameters", json!({"NOPE": "1"})).to_string(), 400, None),
        (format!("{path}?accepts_incomplete=true"), with("parameters", json!({"x": [1]})).to_string(), 400, None),
        (format!("{path}?accepts_incomplete=true"), "{not json".into(), 400, None),
        (format!("{path}?accepts_incomplete=true"), json!({"plan_id": mysql_80}).to_string(), 400, None),
    ];
    for (url, body, expected, error) in refused {
        let (status, _, answer) = server.raw("PUT", &url, &platform_headers(), Some(&body));
        assert_eq!(status, expected, "PUT {url} {body}: {answer}");
        assert!(answer["description"].as_str().is_some_and(|d| !d.is_empty()), "{answer}");
        if let Some(error) = error {
            assert_eq!(answer["error"], error, "{answer}");
        }
    }
    assert!(plane.get(&format!("/apis/stratus.io/v1alpha1/instances/{}", hsm_id(guid))).is_none());
    let (status, _, _) = server.osb("GET", &format!("{path}/last_operation"), None);
    assert_eq!(status, 404, "a refused provision left an instance");

    // Orphan mitigation: a provision that does not finish (its pods never get ready) is
    // deprovisioned; meanwhile the same PUT is 202 again, another is 409, an update is a
    // ConcurrencyError and a fetch 404.
    let orphan = "Orphan ID/ä";
    let orphan_path = "/v2/service_instances/Orphan%20ID%2F%C3%A4";
    plane.behave(&hsm_id(orphan), Behaviour::never_ready());
    let provision =
        json!({"service_id": redis, "plan_id": redis_plan, "parameters": {"redis-password": "Orphan-Pw-1e2d"}});
    let url = format!("{orphan_path}?accepts_incomplete=true");
    let (status, _, answer) = server.osb("PUT", &url, Some(&provision));
    assert_eq!((status, &answer), (202, &json!({"operation": "provision"})), "{}", server.log());
    let (status, _, answer) = server.osb("PUT", &url, Some(&provision));
    assert_eq!((status, &answer), (202, &json!({"operation": "provision"})), "the same PUT in progress");
    let mut other = provision.clone();
    other["parameters"] = json!({"REDIS_MAXMEMORY": "64mb"});
    let (status, _, answer) = server.osb("PUT", &url, Some(&other));
    assert_eq!(status, 409, "another PUT for the id: {answer}");
    let (status, head, answer) = server.osb("GET", &format!("{orphan_path}/last_operation?operation=provision"), None);
    assert_eq!((status, answer["state"].as_str()), (200, Some("in progress")), "{answer}");
    assert!(head.contains("retry-after: 5"), "{head}");
    let (status, _, answer) = server.osb("GET", orphan_path, None);
    assert_eq!(status, 404, "a fetch while provisioning: {answer}");
    let (status, _, answer) = server.osb("PATCH", &url, Some(&json!({"service_id": redis, "parameters": {"a": "b"}})));
    assert_eq!((status, answer["error"].as_str()), (422, Some("ConcurrencyError")), "{answer}");
    let bind = json!({"service_id": redis, "plan_id": redis_plan});
    let (status, _, answer) =
        server.osb("PUT", &format!("{orphan_path}/service_bindings/early?accepts_incomplete=true"), Some(&bind));
    assert_eq!(
        (status, answer["error"].as_str()),
        (422, Some("ConcurrencyError")),
        "a bind while provisioning: {answer}"
    );
    let instance = plane.get(&format!("/apis/stratus.io/v1alpha1/instances/{}", hsm_id(orphan))).unwrap();
    assert_eq!(instance["metadata"]["annotations"]["broker.stratus.io/instance-id"], orphan, "{instance}");
    let delete = format!("{orphan_path}?service_id={redis}&plan_id={redis_plan}");
    let (status, _, answer) = server.osb("DELETE", &format!("{orphan_path}?accepts_incomplete=true"), None);
    assert_eq!(status, 400, "service_id and plan_id are required: {answer}");
    let (status, _, answer) = server.osb("DELETE", &delete, None);
    assert_eq!((status, answer["error"].as_str()), (422, Some("AsyncRequired")), "{answer}");
    let (status, _, answer) = server.osb("DELETE", &format!("{delete}&accepts_incomplete=true"), None);
    assert_eq!((status, &answer), (202, &json!({"operation": "deprovision"})), "{answer}");
    let (status, answer) = settle(&server, orphan_path, "deprovision");
    assert_eq!((status, &answer), (410, &json!({})), "a finished deprovision is 410 Gone");
    let (status, _, answer) = server.osb("DELETE", &format!("{delete}&accepts_incomplete=true"), None);
    assert_eq!((status, &answer), (410, &json!({})), "deleting what is gone");
    let (status, _, _) = server.osb("GET", &format!("{orphan_path}/last_operation"), None);
    assert_eq!(status, 404);
    plane.behave(&hsm_id(orphan), Behaviour::default());

    // A provision that finishes: labels for the context, then idempotent, fetchable, updatable.
    let url = format!("{path}?accepts_incomplete=true");
    let (status, _, answer) = server.osb("PUT", &url, Some(&good));
    assert_eq!((status, &answer), (202, &json!({"operation": "provision"})), "{}", server.log());
    let instance = plane.get(&format!("/apis/stratus.io/v1alpha1/instances/{}", hsm_id(guid))).unwrap();
    let labels = &instance["metadata"]["labels"];
    assert_eq!(labels["broker.stratus.io/platform"], "cloudfoundry", "{instance}");
    assert_eq!(labels["broker.stratus.io/organization-guid"], "org-guid-1", "{instance}");
    assert_eq!(labels["broker.stratus.io/space-guid"], "space-guid-1", "{instance}");
    assert_eq!(labels["broker.stratus.io/instance-id"], guid, "{instance}");
    let (status, answer) = settle(&server, &path, "provision");
    assert_eq!((status, answer["state"].as_str()), (200, Some("succeeded")), "{answer}\n{}", server.log());
    let (status, _, answer) = server.osb("PUT", &url, Some(&good));
    assert_eq!((status, &answer), (200, &json!({})), "the same PUT, finished");
    let (status, _, answer) = server.osb("PUT", &url, Some(&with("plan_id", json!(mysql_84))));
    assert_eq!(status, 409, "another plan for the same id: {answer}");
    let (status, _, fetched) = server.osb("GET", &path, None);
    assert_eq!(status, 200, "{fetched}");
    assert_eq!((fetched["service_id"].as_str(), fetched["plan_id"].as_str()), (Some(&*mysql), Some(&*mysql_80)));
    assert_eq!(fetched["maintenance_info"]["version"], mysql_80_mi.as_str());
    assert_eq!(fetched["metadata"]["labels"]["broker.stratus.io/platform"], "cloudfoundry");

    // Updates: nothing to change is 200; refusals change nothing; a plan change is an upgrade.
    let (status, _, answer) = server.osb("PATCH", &url, Some(&json!({"service_id": mysql})));
    assert_eq!((status, &answer), (200, &json!({})));
    let (status, _, answer) = server.osb("PATCH", &path, Some(&json!({"service_id": mysql, "plan_id": mysql_84})));
    assert_eq!((status, answer["error"].as_str()), (422, Some("AsyncRequired")), "{answer}");
    let (status, _, answer) = server.osb("PATCH", &url, Some(&json!({"service_id": redis})));
    assert_eq!(status, 400, "another offering: {answer}");
    let (status, _, answer) = server.osb("PATCH", &url, Some(&json!({"service_id": mysql, "plan_id": "nope"})));
    assert_eq!(status, 400, "an unknown plan: {answer}");
    let conflict = json!({"service_id": mysql, "plan_id": mysql_84, "maintenance_info": {"version": "9.9.9"}});
    let (status, _, answer) = server.osb("PATCH", &url, Some(&conflict));
    assert_eq!((status, answer["error"].as_str()), (422, Some("MaintenanceInfoConflict")), "{answer}");
    let (status, _, answer) = server.osb(
        "PATCH",
        "/v2/service_instances/nobody?accepts_incomplete=true",
        Some(&json!({"service_id": mysql})),
    );
    assert_eq!(status, 404, "{answer}");
    let upgrade = json!({"service_id": mysql, "plan_id": mysql_84, "maintenance_info": {"version": mysql_84_mi}, "previous_values": {"plan_id": mysql_80}});
    let (status, _, answer) = server.osb("PATCH", &url, Some(&upgrade));
    assert_eq!(status, 202, "{answer}\n{}", server.log());
    let operation = answer["operation"].as_str().unwrap().to_string();
    assert!(operation.starts_with("update-"), "{answer}");
    let (status, answer) = settle(&server, &path, &operation);
    assert_eq!((status, answer["state"].as_str()), (200, Some("succeeded")), "{answer}");
    let (_, _, fetched) = server.osb("GET", &path, None);
    assert_eq!(
        (fetched["plan_id"].as_str(), fetched["maintenance_info"]["version"].as_str()),
        (Some(&*mysql_84), Some(&*mysql_84_mi))
    );
    // No upgrade path back: refused, not repeatable, nothing changed.
    let (status, _, answer) = server.osb("PATCH", &url, Some(&json!({"service_id": mysql, "plan_id": mysql_80})));
    assert_eq!((status, answer["update_repeatable"].as_bool()), (422, Some(false)), "{answer}");
    assert_eq!(server.osb("GET", &path, None).2["plan_id"], mysql_84.as_str());

    // Bindings: refusals make nothing; a bind runs the bind Job, then hands out the
    // credentials the binding Secret holds; the same bind again is 200, another 409; unbind
    // runs the unbind Job, then the binding is gone (410).
    let osb_binding = "Binding ID 1/ü";
    let binding_path = format!("{path}/service_bindings/Binding%20ID%201%2F%C3%BC");
    let hsm_binding = hsm_binding_id(osb_binding);
    let namespace = hsm_id(guid);
    let bind_url = format!("{binding_path}?accepts_incomplete=true");
    let bind = json!({
        "service_id": mysql, "plan_id": mysql_84,
        "bind_resource": {"app_guid": "app-guid-1"},
        "context": {"platform": "cloudfoundry", "organization_guid": "org-guid-1", "space_guid": "space-guid-1"},
    });
    let with_bind = |key: &str, value: Value| {
        let mut body = bind.clone();
        body[key] = value;
        body
    };
    let refused = [
        (binding_path.clone(), bind.to_string(), 422, Some("AsyncRequired")),
        (bind_url.clone(), with_bind("service_id", json!(redis)).to_string(), 400, None),
        (bind_url.clone(), with_bind("parameters", json!({"user": "x"})).to_string(), 400, None),
        (bind_url.clone(), "{not json".into(), 400, None),
        (bind_url.clone(), json!({"plan_id": mysql_84}).to_string(), 400, None),
        (
            "/v2/service_instances/nobody/service_bindings/b?accepts_incomplete=true".to_string(),
            bind.to_string(),
            404,
            None,
        ),
    ];
    for (url, body, expected, error) in refused {
        let (status, _, answer) = server.raw("PUT", &url, &platform_headers(), Some(&body));
        assert_eq!(status, expected, "PUT {url} {body}: {answer}");
        assert!(answer["description"].as_str().is_some_and(|d| !d.is_empty()), "{answer}");
        if let Some(error) = error {
            assert_eq!(answer["error"], error, "{answer}");
        }
    }
    let binding_secret = format!("/api/v1/namespaces/{namespace}/secrets/binding-{hsm_binding}");
    assert!(plane.get(&binding_secret).is_none(), "a refused bind left a Secret");
    let (status, _, _) = server.osb("GET", &binding_path, None);
    assert_eq!(status, 404, "no binding yet");
    let (status, _, _) = server.osb("GET", &format!("{binding_path}/last_operation"), None);
    assert_eq!(status, 404, "no binding yet");

    let (status, _, answer) = server.osb("PUT", &bind_url, Some(&bind));
    assert!(matches!(status, 201 | 202), "bind: {status} {answer}\n{}", server.log());
    if status == 202 {
        assert_eq!(answer, json!({"operation": "bind"}));
        let (status, answer) = settle(&server, &binding_path, "bind");
        assert_eq!((status, answer["state"].as_str()), (200, Some("succeeded")), "{answer}\n{}", server.log());
    }
    let secret = plane.get(&binding_secret).expect("the binding Secret");
    assert_eq!(secret["type"], "servicebinding.io/mysql", "{secret}");
    assert_eq!(secret["metadata"]["annotations"]["broker.stratus.io/binding-id"], osb_binding, "{secret}");
    assert_eq!(secret["metadata"]["labels"]["broker.stratus.io/space-guid"], "space-guid-1", "{secret}");
    assert_eq!(secret["metadata"]["ownerReferences"][0]["kind"], "Instance", "{secret}");
    let (status, _, fetched) = server.osb("GET", &binding_path, None);
    assert_eq!(status, 200, "{fetched}");
    let credentials = &fetched["credentials"];
    for key in ["type", "provider", "host", "port", "username", "password", "uri"] {
        assert!(credentials[key].as_str().is_some_and(|v| !v.is_empty()), "{key} in {credentials}");
    }
    assert_eq!(credentials["type"], "mysql");
    let host = credentials["host"].as_str().unwrap();
    assert!(host.ends_with(&format!(".{namespace}.svc")), "{host}");
    let password = credentials["password"].as_str().unwrap().to_string();
    assert_eq!(decode(&secret["data"]["password"]), password, "OSB's credentials are the Secret's");
    assert_eq!(fetched["metadata"]["namespace"], namespace.as_str());
    let (status, _, again) = server.osb("PUT", &bind_url, Some(&bind));
    assert_eq!((status, &again["credentials"]), (200, credentials), "the same bind, finished");
    let (status, _, answer) =
        server.osb("PUT", &bind_url, Some(&with_bind("bind_resource", json!({"app_guid": "app-guid-2"}))));
    assert_eq!(status, 409, "another bind for the same id: {answer}");
    let (status, _, answer) =
        server.osb("DELETE", &format!("{binding_path}?service_id={mysql}&plan_id={mysql_84}"), None);
    assert_eq!((status, answer["error"].as_str()), (422, Some("AsyncRequired")), "{answer}");
    let unbind = format!("{binding_path}?service_id={mysql}&plan_id={mysql_84}&accepts_incomplete=true");
    let (status, _, answer) = server.osb("DELETE", &unbind, None);
    assert!(matches!(status, 200 | 202), "unbind: {status} {answer}\n{}", server.log());
    assert!(plane.get(&binding_secret).is_none(), "the binding Secret goes at once");
    if status == 202 {
        assert_eq!(answer, json!({"operation": "unbind"}));
        let (status, answer) = settle(&server, &binding_path, "unbind");
        assert_eq!((status, &answer), (410, &json!({})), "a finished unbind is 410 Gone");
    }
    let (status, _, answer) = server.osb("DELETE", &unbind, None);
    assert_eq!((status, &answer), (410, &json!({})), "unbinding what is gone");
    assert_eq!(server.osb("GET", &binding_path, None).0, 404);
    assert!(!server.log().contains(&password), "a binding's password is in the server's log");

    // Deprovision, then gone.
    let delete = format!("{path}?service_id={mysql}&plan_id={mysql_84}&accepts_incomplete=true");
    let (status, _, answer) = server.osb("DELETE", &delete, None);
    assert_eq!((status, &answer), (202, &json!({"operation": "deprovision"})), "{answer}");
    let (status, _) = settle(&server, &path, "deprovision");
    assert_eq!(status, 410);
    assert_eq!(server.osb("GET", &path, None).0, 404);

    // The audit log names the platform's user and the request; the password is nowhere.
    let log = server.log();
    let audit = log.lines().find(|l| {
        l.contains("broker write") && l.contains("verb=\"provision\"")
            || l.contains("broker write") && l.contains("verb=provision")
    });
    let audit = audit.unwrap_or_else(|| panic!("no audit line:\n{log}"));
    assert!(audit.contains("cloudfoundry:cf-user-0d1e") && audit.contains("req-7a3b"), "{audit}");
    assert!(!log.contains(PASSWORD), "the broker's password is in the log");
    drop(converger);
}

/// Every bindable offering of the catalog, through the broker as a platform drives it:
/// provision its newest plan (connectors with an external endpoint and account), bind, read
/// the credentials (the Service Binding type of the service; a connector's are the configured
/// endpoint and account), unbind, deprovision. Each phase for all services at once.
#[test]
fn every_bindable_service_is_provisioned_bound_unbound_and_deprovisioned() {
    let Some(plane) = ControlPlane::shared() else { return };
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&plane.kubeconfig(), dir.path(), "every");
    let converger = Converger::start(plane);
    leads(plane);
    // The Service Binding type each offering's bindings carry.
    let types = [
        ("mongo", "mongodb"),
        ("mssql", "sqlserver"),
        ("mysql", "mysql"),
        ("pass-through", "pass-through"),
        ("postgres", "postgresql"),
        ("rabbitmq", "rabbitmq"),
        ("rds-mysql", "mysql"),
        ("rds-postgres", "postgresql"),
        ("redis", "redis"),
    ];
    let connectors = ["mssql", "pass-through", "rds-mysql", "rds-postgres"];
    let (_, _, catalog) = server.osb("GET", "/v2/catalog", None);
    let offerings: Vec<&Value> =
        catalog["services"].as_array().unwrap().iter().filter(|o| o["bindable"] == true).collect();
    let mut names: Vec<&str> = offerings.iter().map(|o| o["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, types.iter().map(|(n, _)| *n).collect::<Vec<_>>(), "the bindable offerings");

    struct Case {
        name: String,
        path: String,
        query: String,
        connector: bool,
    }
    let cases: Vec<Case> = offerings
        .iter()
        .map(|offering| {
            let name = offering["name"].as_str().unwrap().to_string();
            let plan = offering["plans"].as_array().unwrap().last().unwrap();
            let (service_id, plan_id) = (offering["id"].as_str().unwrap(), plan["id"].as_str().unwrap());
            let connector = connectors.contains(&name.as_str());
            let parameters = if connector {
                json!({"HOST": format!("{name}.db.example.test"), "USERNAME": "app", "password": format!("Conn-Pw-{name}-7q")})
            } else {
                json!({})
            };
            // The plan's schema says what a provision must give (a connector's endpoint and
            // credentials, nothing for a service that generates its own) and names all it may.
            let schema = &plan["schemas"]["service_instance"]["create"]["parameters"];
            let mut required: Vec<&str> =
                schema["required"].as_array().map(|r| r.iter().map(|n| n.as_str().unwrap()).collect()).unwrap_or_default();
            required.sort_unstable();
            let mut given: Vec<&str> = parameters.as_object().unwrap().keys().map(String::as_str).collect();
            given.sort_unstable();
            assert_eq!(required, given, "{name}: the schema's required parameters: {schema}");
            assert_eq!(schema["additionalProperties"], false, "{name}: {schema}");
            let path = format!("/v2/service_instances/every-{name}");
            let body = json!({"service_id": service_id, "plan_id": plan_id, "parameters": parameters});
            let (status, _, answer) = server.osb("PUT", &format!("{path}?accepts_incomplete=true"), Some(&body));
            assert_eq!(status, 202, "provision {name}: {answer}\n{}", server.log());
            let query = format!("service_id={service_id}&plan_id={plan_id}");
            Case { name, path, query, connector }
        })
        .collect();
    for case in &cases {
        let (status, answer) = settle(&server, &case.path, "provision");
        assert_eq!((status, answer["state"].as_str()), (200, Some("succeeded")), "{}: {answer}", case.name);
    }
    let mut passwords = Vec::new();
    for case in &cases {
        let offering = offerings.iter().find(|o| o["name"] == case.name.as_str()).unwrap();
        let plan = offering["plans"].as_array().unwrap().last().unwrap();
        let bind =
            json!({"service_id": offering["id"], "plan_id": plan["id"], "bind_resource": {"app_guid": "app-every"}});
        let binding = format!("{}/service_bindings/app-every", case.path);
        let (status, _, answer) = server.osb("PUT", &format!("{binding}?accepts_incomplete=true"), Some(&bind));
        // A connector has no bind job: bound at once; the others run theirs.
        assert_eq!(status, if case.connector { 201 } else { 202 }, "bind {}: {answer}\n{}", case.name, server.log());
    }
    for case in &cases {
        let binding = format!("{}/service_bindings/app-every", case.path);
        let (status, answer) = settle(&server, &binding, "bind");
        assert_eq!((status, answer["state"].as_str()), (200, Some("succeeded")), "{}: {answer}", case.name);
        let (status, _, fetched) = server.osb("GET", &binding, None);
        assert_eq!(status, 200, "{}: {fetched}", case.name);
        let credentials = &fetched["credentials"];
        let expected = types.iter().find(|(n, _)| *n == case.name).unwrap().1;
        assert_eq!(credentials["type"], expected, "{}: {credentials}", case.name);
        for key in ["host", "port", "username", "password"] {
            assert!(credentials[key].as_str().is_some_and(|v| !v.is_empty()), "{}: {key} in {credentials}", case.name);
        }
        if case.connector {
            assert_eq!(credentials["host"], format!("{}.db.example.test", case.name), "{credentials}");
            assert_eq!(credentials["username"], "app", "{credentials}");
            assert_eq!(credentials["password"], format!("Conn-Pw-{}-7q", case.name), "{credentials}");
        } else {
            let namespace = hsm_id(&format!("every-{}", case.name));
            assert!(credentials["host"].as_str().unwrap().ends_with(&format!(".{namespace}.svc")), "{credentials}");
            assert_ne!(credentials["username"], "root", "a user of its own: {credentials}");
        }
        passwords.push(credentials["password"].as_str().unwrap().to_string());
    }
    for case in &cases {
        let binding = format!("{}/service_bindings/app-every", case.path);
        let (status, _, answer) =
            server.osb("DELETE", &format!("{binding}?{}&accepts_incomplete=true", case.query), None);
        assert!(matches!(status, 200 | 202), "unbind {}: {status} {answer}", case.name);
    }
    for case in &cases {
        let binding = format!("{}/service_bindings/app-every", case.path);
        eventually(LIMIT, &format!("the binding of {} is gone", case.name), || {
            let (status, _, _) = server.osb("GET", &format!("{binding}/last_operation?operation=unbind"), None);
            (status == 410).then_some(())
        });
        let (status, _, answer) =
            server.osb("DELETE", &format!("{}?{}&accepts_incomplete=true", case.path, case.query), None);
        assert_eq!(status, 202, "deprovision {}: {answer}", case.name);
    }
    for case in &cases {
        assert_eq!(settle(&server, &case.path, "deprovision").0, 410, "{}", case.name);
    }
    let log = server.log();
    for password in passwords {
        assert!(!log.contains(&password), "a binding's password is in the server's log");
    }
    drop(converger);
}

/// rocs, the independent OSB client (`ROCS`, from crates.io), as `common::installed` finds it.
fn rocs() -> Option<PathBuf> {
    common::installed("ROCS", ".tools/rocs/bin/rocs", "rocs")
}

#[test]
fn rocs_provisions_binds_unbinds_and_deprovisions_through_the_broker() {
    let Some(plane) = ControlPlane::shared() else { return };
    let Some(rocs) = rocs() else { return };
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&plane.kubeconfig(), dir.path(), "rocs");
    let converger = Converger::start(plane);
    leads(plane);
    let url = format!("http://{}", server.address);
    let run = |args: &[&str]| {
        let output = Command::new(&rocs)
            .args(["--broker", &url, "--username", USER, "--json"])
            .args(args)
            // The password through the environment, not the command line.
            .env("ROCS_BROKER_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "rocs {args:?}: {}\n{stdout}\n{stderr}\n{}", output.status, server.log());
        stdout
    };

    let catalog = run(&["catalog"]);
    assert!(catalog.contains("\"redis\""), "{catalog}");
    // Provision and wait (rocs polls last_operation, then fetches the instance).
    let provisioned =
        run(&["provision", "--service", "redis", "--plan", "7.4", "--wait", "-P", "REDIS_MAXMEMORY=64mb"]);
    let provisioned: Value = serde_json::from_str(provisioned.trim()).unwrap_or_else(|e| panic!("{e}: {provisioned}"));
    let id = provisioned["service_instance_id"].as_str().unwrap().to_string();
    assert_eq!(provisioned["service_instance_resource"]["parameters"]["REDIS_MAXMEMORY"], "64mb", "{provisioned}");
    let path = format!("/v2/service_instances/{id}");
    let (status, _, state) = server.osb("GET", &format!("{path}/last_operation"), None);
    assert_eq!((status, state["state"].as_str()), (200, Some("succeeded")), "{state}");
    let instance = plane.get(&format!("/apis/stratus.io/v1alpha1/instances/{}", hsm_id(&id))).unwrap();
    assert_eq!(instance["metadata"]["annotations"]["broker.stratus.io/instance-id"], id.as_str());
    // Bind and wait (rocs polls the binding's last_operation while the bind Job runs): the
    // credentials are the binding Secret's; then unbind, and the binding goes.
    let bound = run(&["bind", "--instance", &id, "--wait"]);
    let namespace = hsm_id(&id);
    let secrets = plane
        .get(&format!(
            "/api/v1/namespaces/{namespace}/secrets?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dhsm-binding"
        ))
        .unwrap();
    let secrets = secrets["items"].as_array().unwrap();
    assert_eq!(secrets.len(), 1, "one binding Secret: {secrets:?}\n{bound}");
    let secret = &secrets[0];
    let binding = secret["metadata"]["annotations"]["broker.stratus.io/binding-id"].as_str().unwrap().to_string();
    assert_eq!(secret["type"], "servicebinding.io/redis", "{secret}");
    let password = decode(&secret["data"]["password"]);
    assert!(bound.contains(&password), "rocs printed the binding's credentials: {bound}");
    let binding_path = format!("{path}/service_bindings/{binding}");
    let (status, _, state) = server.osb("GET", &format!("{binding_path}/last_operation"), None);
    assert_eq!((status, state["state"].as_str()), (200, Some("succeeded")), "{state}");
    run(&["unbind", "--instance", &id, "--binding", &binding]);
    eventually(LIMIT, "the binding is gone", || {
        let (status, _, _) = server.osb("GET", &format!("{binding_path}/last_operation?operation=unbind"), None);
        (status == 410).then_some(())
    });
    assert!(!server.log().contains(&password), "the binding's password is in the server's log");
    // Deprovision (rocs does not wait): the instance goes.
    run(&["deprovision", "--instance", &id]);
    let (status, _) = settle(&server, &path, "deprovision");
    assert_eq!(status, 410);
    drop(converger);
}

/// schemathesis against the broker's own document (`/v2/openapi.json`) of a server on the
/// real control plane: every operation, fed examples, boundary values and random data (valid
/// and invalid), with and without the credentials. No answer may be a 5xx but the documented
/// 503 (no converger runs here: a valid write cannot be carried out), and every answer must
/// match the document; invalid data must be refused, missing credentials a 401. Left out, as
/// for `/v1`: `positive_data_acceptance` (validity depends on the catalog's ids).
#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_the_broker_document() {
    let Some(plane) = ControlPlane::shared() else { return };
    let Some(schemathesis) = schemathesis() else { return };
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&plane.kubeconfig(), dir.path(), "schemathesis");
    let output = Command::new(&schemathesis)
        .arg("run")
        .arg(format!("http://{}/v2/openapi.json", server.address))
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        .args(["--max-examples", "25", "--workers", "2", "--request-timeout", "15", "--no-color"])
        .args(["--seed", "20261203", "--suppress-health-check", "all"])
        .arg("--header")
        .arg(format!("Authorization: {}", basic(USER, PASSWORD)))
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
        server.log()
    );
    // Every operation of the document was called (the server's own counters).
    let (_, _, document) = server.raw("GET", "/v2/openapi.json", &[], None);
    let metrics = {
        let mut stream = TcpStream::connect(&server.address).unwrap();
        write!(stream, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    };
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let counted = format!("route=\"{path}\",method=\"{}\"", method.to_uppercase());
            assert!(metrics.contains(&counted), "schemathesis did not exercise {method} {path}:\n{stdout}");
        }
    }
}

/// With OpenID on, `/v2` takes the broker's basic credentials or a bearer token with the admin
/// role (a viewer's is a 403, a forged one a 401), while `/v1` keeps asking for bearer tokens:
/// the broker's credentials open nothing there.
#[test]
fn bearer_tokens_of_admins_are_accepted_by_the_broker_and_basic_credentials_not_by_v1() {
    let Some(plane) = ControlPlane::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let provider = stratus_tests::oidc::Provider::start(&stratus_tests::oidc::Config::standard());
    let auth = ["--oidc-issuer", provider.issuer(), "--oidc-audience", stratus_tests::oidc::HSM_AUDIENCE];
    let server = Server::start_with(&plane.kubeconfig(), dir.path(), "oidc", &auth);
    let version = ("X-Broker-API-Version", "2.17".to_string());
    let bearer = |user: &str| ("Authorization", format!("Bearer {}", provider.access_token(user)));
    let table = [
        (bearer("admin"), 200),
        (bearer("viewer"), 403),
        (("Authorization", "Bearer forged.token.value".to_string()), 401),
        (("Authorization", basic(USER, PASSWORD)), 200),
    ];
    for (authorization, expected) in table {
        let (status, _, body) = server.raw("GET", "/v2/catalog", &[authorization.clone(), version.clone()], None);
        assert_eq!(status, expected, "{}: {body}", &authorization.1[..20]);
    }
    let (status, _, body) = server.raw("GET", "/v1/services", &[("Authorization", basic(USER, PASSWORD))], None);
    assert_eq!(status, 401, "{body}");
}
