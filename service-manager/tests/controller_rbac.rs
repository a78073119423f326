//! The converger's RBAC, as the `hcp` service deploys it, on a real API server.
//!
//! The ServiceAccount, Role, RoleBinding, ClusterRole and ClusterRoleBinding are taken from
//! the plan of `hcp` (the catalog planned as a library, no cluster involved), created as the
//! admin, and the real `hsm controller` then runs as that ServiceAccount — a client
//! certificate of the plane's CA for `system:serviceaccount:hcp:hsm-controller` in
//! `system:serviceaccounts`, which the authorizer treats as the ServiceAccount. Enough: it
//! installs its definition, leads, creates, repairs and deletes instances with no request
//! forbidden. No more: `kubectl auth can-i` as that identity says no to what it must not do,
//! and the rules themselves are pinned below, so a widening shows in review.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use sdl::catalog::Catalog;
use sdl::resolve::Stored;
use sdl::Idl;
use serde_json::{json, Value};
use service_manager::objects::KubeObject;
use service_manager::request::{prepare, InstanceRequest};
use service_manager::{ClusterProfile, Plan};
use stratus_tests::cluster::ControlPlane;

mod common;

use common::{condition, is_running, state, Converger};

/// How long anything may take to converge.
const LIMIT: Duration = Duration::from_secs(90);

const INSTANCES: &str = "/apis/stratus.io/v1alpha1/instances";

/// The converger's identity, as the authorizer sees a token of ServiceAccount hcp/hsm-controller.
const USER: &str = "system:serviceaccount:hcp:hsm-controller";
const GROUP: &str = "system:serviceaccounts";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The plan of the shipped `hcp` service as bootstrap installs it (instance `hcp`).
fn hcp_plan() -> Plan {
    let catalog = Catalog::load(&workspace().join("catalog")).unwrap();
    let profile = ClusterProfile::default();
    let idl: Idl =
        serde_json::from_value(json!({"parameters": [{"name": "DOMAIN", "value": "stratus.example.com"}]})).unwrap();
    let request = InstanceRequest {
        service_id: "stackato.hpe.hcp".into(),
        idl,
        idl_source: "the test".into(),
        instance_id: Some("hcp".into()),
        ..InstanceRequest::default()
    };
    let prepared = prepare(&catalog, &request, &Stored::default(), &profile, &mut StdRng::seed_from_u64(7)).unwrap();
    prepared.plan(&profile).unwrap()
}

/// Whether `object` belongs to component `component` of the plan.
fn of_component(object: &KubeObject, component: &str) -> bool {
    object.metadata().labels.as_ref().and_then(|l| l.get("app.kubernetes.io/component")).map(String::as_str)
        == Some(component)
}

/// The identity and permissions of the plan's `component`.
fn component_rbac(plan: &Plan, component: &str) -> Vec<KubeObject> {
    plan.objects()
        .filter(|o| {
            matches!(
                o,
                KubeObject::ServiceAccount(_)
                    | KubeObject::Role(_)
                    | KubeObject::RoleBinding(_)
                    | KubeObject::ClusterRole(_)
                    | KubeObject::ClusterRoleBinding(_)
            ) && of_component(o, component)
        })
        .cloned()
        .collect()
}

/// The identity and permissions of the plan's `hsm-controller` component.
fn converger_rbac(plan: &Plan) -> Vec<KubeObject> {
    component_rbac(plan, "hsm-controller")
}

/// One line per rule of `component`: scope, API groups, resources, verbs and names.
fn rule_lines(plan: &Plan, component: &str) -> Vec<String> {
    let line = |scope: &str, rule: &k8s_openapi::api::rbac::v1::PolicyRule| {
        let list = |l: &Option<Vec<String>>| {
            l.iter().flatten().map(|s| if s.is_empty() { "core" } else { s.as_str() }).collect::<Vec<_>>().join(",")
        };
        let names = list(&rule.resource_names);
        let mut text = format!("{scope} {} {} {}", list(&rule.api_groups), list(&rule.resources), rule.verbs.join(","));
        if !names.is_empty() {
            text.push_str(&format!(" names={names}"));
        }
        text
    };
    let mut lines = Vec::new();
    for object in plan.objects().filter(|o| of_component(o, component)) {
        match object {
            KubeObject::Role(role) => {
                let scope = format!("namespace:{}", object.namespace().unwrap_or_default());
                lines.extend(role.rules.iter().flatten().map(|r| line(&scope, r)));
            }
            KubeObject::ClusterRole(role) => lines.extend(role.rules.iter().flatten().map(|r| line("cluster", r))),
            _ => {}
        }
    }
    lines
}

/// Every permission `hcp` gives the converger. A change here widens (or narrows) what the
/// converger may do on every cluster: review it as such (docs/instances.md says why each is
/// needed).
#[test]
fn the_converger_rules_are_pinned() {
    let plan = hcp_plan();
    let rw = "get,list,watch,create,patch,delete";
    let expected = [
        "namespace:hcp coordination.k8s.io leases get,update names=hsm-controller".to_string(),
        "cluster apiextensions.k8s.io customresourcedefinitions create".to_string(),
        "cluster apiextensions.k8s.io customresourcedefinitions patch names=instances.stratus.io".to_string(),
        "cluster stratus.io instances list,watch,patch".to_string(),
        "cluster stratus.io instances/status patch".to_string(),
        "cluster events.k8s.io events create,patch".to_string(),
        format!("cluster core namespaces {rw}"),
        format!("cluster core secrets,configmaps,services {rw}"),
        "cluster core persistentvolumeclaims get,list,watch,create,patch".to_string(),
        format!("cluster apps deployments,statefulsets {rw}"),
        format!("cluster batch jobs {rw}"),
        format!("cluster networking.k8s.io networkpolicies {rw}"),
        "cluster coordination.k8s.io leases create".to_string(),
        "cluster coordination.k8s.io leases get,update,patch,delete names=hsm-operation".to_string(),
    ];
    assert_eq!(rule_lines(&plan, "hsm-controller"), expected);

    // Bound to the component's ServiceAccount, and only to it.
    let described: Vec<String> = converger_rbac(&plan).iter().map(KubeObject::describe).collect();
    assert_eq!(
        described,
        [
            "ServiceAccount hcp/hsm-controller",
            "Role hcp/hsm-controller",
            "RoleBinding hcp/hsm-controller",
            "ClusterRole hsm:hcp:hsm-controller",
            "ClusterRoleBinding hsm:hcp:hsm-controller",
        ]
    );
    for object in converger_rbac(&plan) {
        let subjects = match &object {
            KubeObject::RoleBinding(b) => b.subjects.clone(),
            KubeObject::ClusterRoleBinding(b) => b.subjects.clone(),
            _ => continue,
        };
        let subjects: Vec<(String, String, Option<String>)> =
            subjects.unwrap().into_iter().map(|s| (s.kind, s.name, s.namespace)).collect();
        assert_eq!(subjects, [("ServiceAccount".into(), "hsm-controller".into(), Some("hcp".into()))]);
    }
    // Its pods run as it; the other components get no API credentials.
    for object in plan.objects() {
        if let KubeObject::Deployment(d) = object {
            let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
            let runs_as = pod.service_account_name.as_deref();
            if ["hsm-controller", "hsm-server"].contains(&object.name()) {
                assert_eq!((runs_as, pod.automount_service_account_token), (Some(object.name()), Some(true)));
            } else {
                assert_eq!((runs_as, pod.automount_service_account_token), (None, Some(false)), "{}", object.name());
            }
        }
    }
}

/// Every permission `hcp` gives the HSM server: reads of what `get`/`list` show, the
/// `Instance`s it writes for the converger, the Secrets `hsm-instance-<id>` of secret values
/// in its own namespace, the converger's Lease and definition (is one running?). A change
/// here widens (or narrows) what the server may do: review it as such (docs/platform.md).
/// `tests/platform.rs` runs the server as this ServiceAccount end to end.
#[test]
fn the_server_rules_are_pinned() {
    let plan = hcp_plan();
    let expected = [
        "namespace:hcp coordination.k8s.io leases get names=hsm-controller",
        "namespace:hcp core secrets create,get,patch,delete",
        "cluster apiextensions.k8s.io customresourcedefinitions get names=instances.stratus.io",
        "cluster stratus.io instances get,list,watch,create,patch,delete",
        "cluster core namespaces get,list,watch",
        "cluster core configmaps get names=parameters,hsm-sdl",
        "cluster core secrets get names=secret-parameters,hsm-record",
        "cluster core services,persistentvolumeclaims list",
        "cluster apps deployments,statefulsets list",
    ];
    assert_eq!(rule_lines(&plan, "hsm-server"), expected);
    let described: Vec<String> = component_rbac(&plan, "hsm-server").iter().map(KubeObject::describe).collect();
    assert_eq!(
        described,
        [
            "ServiceAccount hcp/hsm-server",
            "Role hcp/hsm-server",
            "RoleBinding hcp/hsm-server",
            "ClusterRole hsm:hcp:hsm-server",
            "ClusterRoleBinding hsm:hcp:hsm-server",
        ]
    );
}

struct Env {
    plane: &'static ControlPlane,
    dir: tempfile::TempDir,
    /// The converger's kubeconfig (its ServiceAccount's identity).
    as_converger: PathBuf,
}

impl Env {
    /// `kubectl` with `kubeconfig`.
    fn kubectl_with(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("kubectl runs")
    }

    /// `kubectl` as the admin, which must succeed: its stdout.
    fn kubectl_ok(&self, args: &[&str]) -> String {
        let output = self.kubectl_with(&self.plane.kubeconfig(), args);
        assert!(output.status.success(), "kubectl {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    /// `kubectl apply -f` of `yaml` as the admin.
    fn apply(&self, yaml: &str) -> Output {
        let file = self.dir.path().join("instance.yaml");
        std::fs::write(&file, yaml).unwrap();
        self.kubectl_with(&self.plane.kubeconfig(), &["apply", "-f", file.to_str().unwrap()])
    }

    /// `kubectl auth can-i` as the converger: whether the API server says yes.
    fn converger_can(&self, args: &[&str]) -> bool {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        let output = self.kubectl_with(&self.as_converger, &all);
        let answer = String::from_utf8_lossy(&output.stdout).trim().to_string();
        match (output.status.code(), answer.as_str()) {
            (Some(0), "yes") => true,
            (Some(1), "no") => false,
            _ => panic!("kubectl auth can-i {args:?}: {output:?}"),
        }
    }

    fn instance(&self, name: &str) -> Option<Value> {
        self.plane.get(&format!("{INSTANCES}/{name}"))
    }

    /// Polls `check` until it gives a value, up to [`LIMIT`]; else fails with `what` and the
    /// controller's latest log lines.
    fn eventually<T>(&self, converger: &Converger, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(started.elapsed() < LIMIT, "{what}: not within {LIMIT:?}\ncontroller:\n{}", converger.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Creates the namespace `hcp` and the converger's RBAC from hcp's plan, as the admin; a
/// kubeconfig for the converger's identity.
fn set_up() -> Option<Env> {
    let plane = ControlPlane::shared()?;
    let dir = tempfile::tempdir().unwrap();
    plane.create(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "hcp"}})).unwrap();
    for object in converger_rbac(&hcp_plan()) {
        let body = serde_json::to_value(&object).unwrap();
        plane.create(&body).unwrap_or_else(|e| panic!("{}: {e}", object.describe()));
    }
    let as_converger = dir.path().join("converger.kubeconfig");
    std::fs::write(&as_converger, plane.kubeconfig_for(USER, Some(GROUP))).unwrap();
    Some(Env { plane, dir, as_converger })
}

#[test]
fn the_converger_does_its_work_as_its_service_account_and_no_more() {
    let Some(env) = set_up() else { return };
    // The kubeconfig is that identity, not an admin's.
    let whoami =
        String::from_utf8(env.kubectl_with(&env.as_converger, &["auth", "whoami", "-o", "json"]).stdout).unwrap();
    let whoami: Value = serde_json::from_str(&whoami).unwrap_or_else(|e| panic!("{e}: {whoami}"));
    assert_eq!(whoami["status"]["userInfo"]["username"], USER, "{whoami:#}");
    assert!(!env.converger_can(&["create", "clusterrolebindings"]));

    env.plane
        .create(&json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "rbac-cache-password", "namespace": "default" },
            "stringData": { "password": "from-a-secret-0123456789" }
        }))
        .unwrap();
    let converger =
        Converger::start_with(&env.as_converger, env.dir.path(), "controller", &["--lease-namespace", "hcp"]);

    // It installs its definition and leads, in its own namespace.
    env.eventually(&converger, "the Instance definition", || {
        env.plane.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/instances.stratus.io")
    });
    env.eventually(&converger, "the Lease hcp/hsm-controller held", || {
        env.plane.object("Lease", "hcp", "hsm-controller").filter(|l| l["spec"]["holderIdentity"].is_string())
    });

    // It creates instances: one reading a Secret of the operator's, one keeping its volumes.
    let cache = r#"
apiVersion: stratus.io/v1alpha1
kind: Instance
metadata:
  name: rbac-cache
spec:
  serviceId: stackato.hpe.redis
  secretParameters:
    redis-password:
      namespace: default
      name: rbac-cache-password
      key: password
"#;
    let kept = r#"
apiVersion: stratus.io/v1alpha1
kind: Instance
metadata:
  name: rbac-kept
spec:
  serviceId: stackato.hpe.redis
  keepVolumes: true
"#;
    for yaml in [cache, kept] {
        env.eventually(&converger, "kubectl apply of an Instance", || env.apply(yaml).status.success().then_some(()));
    }
    env.eventually(&converger, "rbac-cache running", || env.instance("rbac-cache").filter(is_running));
    env.eventually(&converger, "rbac-kept running", || env.instance("rbac-kept").filter(is_running));
    let secret = env.plane.object("Secret", "rbac-cache", "secret-parameters").unwrap();
    let password = secret["data"]["redis-password"].as_str().unwrap();
    use base64::Engine;
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(password).unwrap(), b"from-a-secret-0123456789");

    // It repairs: a deleted StatefulSet and a deleted Service come back.
    let uid = env.plane.object("StatefulSet", "rbac-cache", "redis").unwrap()["metadata"]["uid"].clone();
    env.kubectl_ok(&["delete", "statefulset", "redis", "-n", "rbac-cache", "--wait=false"]);
    env.kubectl_ok(&["delete", "service", "redis-int", "-n", "rbac-cache", "--wait=false"]);
    env.eventually(&converger, "the deleted StatefulSet back", || {
        env.plane.object("StatefulSet", "rbac-cache", "redis").filter(|s| s["metadata"]["uid"] != uid)
    });
    env.eventually(&converger, "the deleted Service back", || env.plane.object("Service", "rbac-cache", "redis-int"));
    env.eventually(&converger, "rbac-cache running again", || env.instance("rbac-cache").filter(is_running));

    // An instance whose service grants permissions is refused, untouched: the converger
    // cannot grant what it does not hold (hcp itself gives its converger a ClusterRole).
    let hcp = r#"
apiVersion: stratus.io/v1alpha1
kind: Instance
metadata:
  name: rbac-hcp
spec:
  serviceId: stackato.hpe.hcp
  parameters:
    DOMAIN: stratus.example.com
"#;
    assert!(env.apply(hcp).status.success());
    let refused =
        env.eventually(&converger, "rbac-hcp failed", || env.instance("rbac-hcp").filter(|i| state(i) == "failed"));
    let ready = condition(&refused, "Ready").unwrap();
    assert_eq!(ready["reason"], "NeedsClusterAdmin", "{refused:#}");
    assert!(ready["message"].as_str().unwrap().contains("hsm-controller"), "{ready:#}");
    assert!(env.plane.object("Namespace", "", "rbac-hcp").is_none());

    // It deletes: one instance with its namespace, the other keeping its volumes.
    for name in ["rbac-cache", "rbac-kept", "rbac-hcp"] {
        env.kubectl_ok(&["delete", "instance", name, "--wait=false"]);
    }
    env.eventually(&converger, "rbac-cache and its namespace gone", || {
        (env.plane.object("Namespace", "", "rbac-cache").is_none() && env.instance("rbac-cache").is_none())
            .then_some(())
    });
    env.eventually(&converger, "rbac-kept and rbac-hcp gone", || {
        (env.instance("rbac-kept").is_none() && env.instance("rbac-hcp").is_none()).then_some(())
    });
    let namespace = env.plane.object("Namespace", "", "rbac-kept").expect("the namespace stays");
    assert_eq!(namespace["metadata"]["annotations"]["hsm.stratus.io/state"], "deleted");
    assert!(!env.plane.list("PersistentVolumeClaim", "rbac-kept").is_empty());
    assert!(env.plane.object("StatefulSet", "rbac-kept", "redis").is_none());

    // Nothing it asked for was refused.
    let log = converger.full_log();
    assert!(log.contains("leading; reconciling"), "{}", converger.log());
    let refusals: Vec<&str> =
        log.lines().filter(|l| l.to_lowercase().contains("forbidden") || l.contains(" 403")).collect();
    assert!(refusals.is_empty(), "requests refused:\n{}", refusals.join("\n"));

    // What it may do, the API server agrees (so the "no"s below are answers, not failures).
    for allowed in [
        vec!["get", "secrets", "-n", "default"],
        vec!["patch", "customresourcedefinitions.apiextensions.k8s.io/instances.stratus.io"],
        vec!["update", "leases.coordination.k8s.io/hsm-controller", "-n", "hcp"],
        vec!["create", "deployments.apps", "-n", "some-instance"],
    ] {
        assert!(env.converger_can(&allowed), "the converger may not {allowed:?}");
    }
    // And no more.
    for refused in [
        vec!["create", "clusterrolebindings.rbac.authorization.k8s.io"],
        vec!["create", "clusterroles.rbac.authorization.k8s.io"],
        vec!["escalate", "clusterroles.rbac.authorization.k8s.io"],
        vec!["bind", "clusterroles.rbac.authorization.k8s.io"],
        vec!["create", "roles.rbac.authorization.k8s.io", "-n", "hcp"],
        vec!["create", "rolebindings.rbac.authorization.k8s.io", "-n", "default"],
        vec!["impersonate", "users"],
        vec!["create", "serviceaccounts", "--subresource=token", "-n", "kube-system"],
        vec!["create", "serviceaccounts", "-n", "default"],
        vec!["delete", "nodes"],
        vec!["get", "nodes"],
        vec!["create", "pods", "-n", "default"],
        vec!["create", "pods", "--subresource=exec", "-n", "default"],
        vec!["patch", "customresourcedefinitions.apiextensions.k8s.io/other.example.com"],
        vec!["delete", "customresourcedefinitions.apiextensions.k8s.io/instances.stratus.io"],
        vec!["delete", "instances.stratus.io/rbac-cache"],
        vec!["update", "leases.coordination.k8s.io/kube-controller-manager", "-n", "kube-system"],
        vec!["update", "leases.coordination.k8s.io/hsm-controller", "-n", "kube-system"],
        vec!["delete", "persistentvolumeclaims", "-n", "default"],
        vec!["create", "mutatingwebhookconfigurations.admissionregistration.k8s.io"],
        vec!["update", "daemonsets.apps", "-n", "kube-system"],
    ] {
        assert!(!env.converger_can(&refused), "the converger may {refused:?}");
    }
}

/// `hsm` as the cluster's admin: its output, which must be a success.
fn hsm_ok(plane: &ControlPlane, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_hsm"))
        .args(args)
        .arg("--kubeconfig")
        .arg(plane.kubeconfig())
        .env_remove("HSM_CATALOG")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    assert!(output.status.success(), "hsm {args:?}: {}{}", text(&output.stdout), text(&output.stderr));
    text(&output.stdout)
}

#[test]
fn an_administrator_creates_an_instance_that_grants_and_deleting_it_removes_its_cluster_wide_rbac() {
    let Some(plane) = ControlPlane::shared() else { return };
    let id = "rbac-platform";
    hsm_ok(
        plane,
        &["create-instance", "stackato.hpe.hcp", "--instance-id", id, "--set", "DOMAIN=example.com", "--no-wait"],
    );
    let name = format!("hsm:{id}:hsm-controller");
    let role = plane.object("ClusterRole", "", &name).expect("the ClusterRole");
    assert_eq!(role["metadata"]["labels"]["app.kubernetes.io/instance"], id);
    let binding = plane.object("ClusterRoleBinding", "", &name).expect("the ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], name.as_str());
    assert_eq!(binding["subjects"], json!([{"kind": "ServiceAccount", "name": "hsm-controller", "namespace": id}]));
    assert!(plane.object("Role", id, "hsm-controller").is_some());
    assert!(plane.object("RoleBinding", id, "hsm-controller").is_some());
    assert!(plane.object("ServiceAccount", id, "hsm-controller").is_some());
    let pod = &plane.object("Deployment", id, "hsm-controller").unwrap()["spec"]["template"]["spec"];
    assert_eq!(
        (&pod["serviceAccountName"], &pod["automountServiceAccountToken"]),
        (&json!("hsm-controller"), &json!(true))
    );
    let other = &plane.object("Deployment", id, "ident-api").unwrap()["spec"]["template"]["spec"];
    assert_eq!((&other["serviceAccountName"], &other["automountServiceAccountToken"]), (&Value::Null, &json!(false)));

    // Deleting the namespace would leave what lives outside it: delete-instance does not.
    hsm_ok(plane, &["delete-instance", id, "--yes"]);
    assert!(plane.object("Namespace", "", id).is_none());
    assert!(plane.object("ClusterRole", "", &name).is_none());
    assert!(plane.object("ClusterRoleBinding", "", &name).is_none());
}
