//! The converger (`hsm controller`) on a real Kubernetes control plane (`stratus-tests`'
//! harness: etcd, kube-apiserver, controller manager, scheduler, and a node agent that makes
//! pods Running and Ready). The real `hsm` binary runs as a child process with a kubeconfig,
//! and Instances are written with the real `kubectl`, as an operator (or GitOps) would.
//! Every wait is a poll with a generous limit: the tests assert what happens, not how fast.

mod common;

use std::time::{Duration, Instant};

use common::{condition, http_get, running, state, Converger, Env, LIMIT, ONE_CONVERGER};
use serde_json::json;

#[test]
fn an_instance_is_created_kept_as_declared_and_deleted_with_its_namespace() {
    let env = test_env!();
    // The password comes from a Secret of the operator's.
    env.plane
        .create(&json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "conv-cache-password", "namespace": "default" },
            "stringData": { "password": "from-a-secret-0123456789" }
        }))
        .unwrap();
    let _one = ONE_CONVERGER.lock().unwrap_or_else(|e| e.into_inner());
    let converger = Converger::start(&env.plane.kubeconfig(), env.dir.path());
    // The definition is installed by the controller on start.
    env.eventually(&converger, "the Instance definition", || {
        env.plane.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/instances.stratus.io")
    });
    let yaml = r#"
apiVersion: stratus.io/v1alpha1
kind: Instance
metadata:
  name: conv-cache
spec:
  serviceId: stackato.hpe.redis
  parameters:
    REDIS_MAXMEMORY: 64mb
  secretParameters:
    redis-password:
      namespace: default
      name: conv-cache-password
      key: password
"#;
    // Until the API server serves the new resource, kubectl may not know the kind yet.
    env.eventually(&converger, "kubectl apply of the Instance", || env.apply(yaml).status.success().then_some(()));

    // Created and running, with the declared values.
    let instance = env.eventually(&converger, "conv-cache running with Ready=True", || running(&env, "conv-cache"));
    assert_eq!(instance["status"]["productVersion"], "7.4", "{instance:#}");
    assert_eq!(instance["status"]["components"][0]["name"], "redis", "{instance:#}");
    assert_eq!(instance["status"]["observedGeneration"], instance["metadata"]["generation"]);
    assert!(instance["metadata"]["finalizers"].as_array().unwrap().iter().any(|f| f == "stratus.io/instance"));
    let parameters = env.plane.object("ConfigMap", "conv-cache", "parameters").unwrap();
    assert_eq!(parameters["data"]["REDIS_MAXMEMORY"], "64mb");
    let secret = env.plane.object("Secret", "conv-cache", "secret-parameters").unwrap();
    let expected = "from-a-secret-0123456789".as_bytes();
    assert_eq!(decode(secret["data"]["redis-password"].as_str().unwrap()), expected);
    let namespace = env.plane.object("Namespace", "", "conv-cache").unwrap();
    assert_eq!(namespace["metadata"]["annotations"]["hsm.stratus.io/state"], "running");

    // The way there is told in Events about the Instance.
    let reasons = env.eventually(&converger, "an Event saying it is ready", || {
        let events = env.plane.get("/apis/events.k8s.io/v1/namespaces/default/events")?;
        let reasons: Vec<String> = events["items"]
            .as_array()?
            .iter()
            .filter(|e| e["regarding"]["kind"] == "Instance" && e["regarding"]["name"] == "conv-cache")
            .filter_map(|e| e["reason"].as_str().map(str::to_string))
            .collect();
        reasons.iter().any(|r| r == "Ready").then_some(reasons)
    });
    assert!(reasons.iter().any(|r| r == "Applied"), "{reasons:?}");
    let events =
        env.kubectl_ok(&["get", "events", "-n", "default", "--field-selector", "involvedObject.name=conv-cache"]);
    assert!(events.contains("Ready") && events.contains("instance/conv-cache"), "{events}");

    // kubectl's columns.
    let table = env.kubectl_ok(&["get", "instances"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SERVICE", "VERSION", "STATE", "AGE"], "{table}");
    let row = table.lines().find(|l| l.starts_with("conv-cache ")).unwrap_or_else(|| panic!("{table}"));
    assert_eq!(
        row.split_whitespace().take(4).collect::<Vec<_>>(),
        ["conv-cache", "stackato.hpe.redis", "7.4", "running"]
    );

    // Drift: a deleted StatefulSet comes back.
    let uid = env.plane.object("StatefulSet", "conv-cache", "redis").unwrap()["metadata"]["uid"].clone();
    env.kubectl_ok(&["delete", "statefulset", "redis", "-n", "conv-cache", "--wait=false"]);
    env.eventually(&converger, "the deleted StatefulSet back", || {
        env.plane.object("StatefulSet", "conv-cache", "redis").filter(|s| s["metadata"]["uid"] != uid)
    });
    env.eventually(&converger, "conv-cache running again", || running(&env, "conv-cache"));

    // Drift: a hand-scaled StatefulSet returns to the declared replicas.
    env.kubectl_ok(&["scale", "statefulset", "redis", "-n", "conv-cache", "--replicas=3"]);
    env.eventually(&converger, "the StatefulSet back to 1 replica", || {
        env.plane.object("StatefulSet", "conv-cache", "redis").filter(|s| s["spec"]["replicas"] == 1)
    });

    // Drift: a deleted Service comes back.
    env.kubectl_ok(&["delete", "service", "redis-int", "-n", "conv-cache", "--wait=false"]);
    env.eventually(&converger, "the deleted Service back", || env.plane.object("Service", "conv-cache", "redis-int"));

    // Drift: a deleted NetworkPolicy (the instance's isolation) comes back.
    env.kubectl_ok(&["delete", "networkpolicy", "instance-isolation", "-n", "conv-cache", "--wait=false"]);
    env.eventually(&converger, "the deleted NetworkPolicy back", || {
        env.plane.get("/apis/networking.k8s.io/v1/namespaces/conv-cache/networkpolicies/instance-isolation")
    });

    // A changed parameter reaches the instance.
    let changed = yaml.replace("REDIS_MAXMEMORY: 64mb", "REDIS_MAXMEMORY: 128mb");
    assert!(env.apply(&changed).status.success());
    env.eventually(&converger, "the changed parameter applied", || {
        let parameters = env.plane.object("ConfigMap", "conv-cache", "parameters")?;
        (parameters["data"]["REDIS_MAXMEMORY"] == "128mb").then_some(())
    });
    let instance = env.eventually(&converger, "conv-cache running at generation 2", || {
        running(&env, "conv-cache").filter(|i| i["status"]["observedGeneration"] == 2)
    });
    assert_eq!(instance["metadata"]["generation"], 2);
    // The generated-or-given password did not change with it.
    let secret = env.plane.object("Secret", "conv-cache", "secret-parameters").unwrap();
    assert_eq!(decode(secret["data"]["redis-password"].as_str().unwrap()), expected);

    // Deleting the Instance deletes its namespace (the finalizer holds the Instance until then).
    env.kubectl_ok(&["delete", "instance", "conv-cache", "--wait=false"]);
    env.eventually(&converger, "the namespace and the Instance gone", || {
        (env.plane.object("Namespace", "", "conv-cache").is_none() && env.instance("conv-cache").is_none())
            .then_some(())
    });
}

#[test]
fn deleting_an_instance_that_keeps_its_volumes_leaves_them_with_its_parameters() {
    let env = test_env!();
    let _one = ONE_CONVERGER.lock().unwrap_or_else(|e| e.into_inner());
    let converger = Converger::start(&env.plane.kubeconfig(), env.dir.path());
    let yaml = r#"
apiVersion: stratus.io/v1alpha1
kind: Instance
metadata:
  name: conv-kept
spec:
  serviceId: stackato.hpe.redis
  keepVolumes: true
"#;
    env.eventually(&converger, "kubectl apply of the Instance", || env.apply(yaml).status.success().then_some(()));
    env.eventually(&converger, "conv-kept running", || running(&env, "conv-kept"));
    let claims = env.eventually(&converger, "its volume claim", || {
        Some(env.plane.list("PersistentVolumeClaim", "conv-kept")).filter(|c| !c.is_empty())
    });
    env.kubectl_ok(&["delete", "instance", "conv-kept", "--wait=false"]);
    env.eventually(&converger, "the Instance gone", || env.instance("conv-kept").is_none().then_some(()));
    // What `delete-instance --keep-volumes` keeps: the namespace, its claims and parameters.
    let namespace = env.plane.object("Namespace", "", "conv-kept").expect("the namespace stays");
    assert_eq!(namespace["metadata"]["annotations"]["hsm.stratus.io/state"], "deleted");
    assert_eq!(env.plane.list("PersistentVolumeClaim", "conv-kept").len(), claims.len());
    assert!(env.plane.object("Secret", "conv-kept", "secret-parameters").is_some());
    assert!(env.plane.object("StatefulSet", "conv-kept", "redis").is_none());
}

#[test]
fn a_spec_that_cannot_be_carried_out_is_failed_with_the_reason_until_it_can() {
    let env = test_env!();
    let _one = ONE_CONVERGER.lock().unwrap_or_else(|e| e.into_inner());
    let converger = Converger::start(&env.plane.kubeconfig(), env.dir.path());
    let yaml = r#"
apiVersion: stratus.io/v1alpha1
kind: Instance
metadata:
  name: conv-unknown
spec:
  serviceId: stackato.hpe.nothing
"#;
    env.eventually(&converger, "kubectl apply of the Instance", || env.apply(yaml).status.success().then_some(()));
    let instance = env.eventually(&converger, "conv-unknown failed", || {
        env.instance("conv-unknown").filter(|i| state(i) == "failed")
    });
    let ready = condition(&instance, "Ready").unwrap();
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "InvalidSpec");
    assert!(ready["message"].as_str().unwrap().contains("stackato.hpe.nothing"), "{ready:#}");
    // Nothing was created for it, and deleting it needs nothing more.
    assert!(env.plane.object("Namespace", "", "conv-unknown").is_none());
    env.kubectl_ok(&["delete", "instance", "conv-unknown", "--wait=false"]);
    env.eventually(&converger, "conv-unknown gone", || env.instance("conv-unknown").is_none().then_some(()));

    // An Instance named after a namespace hsm does not manage: refused, and deleting the
    // Instance leaves that namespace alone.
    let yaml = "apiVersion: stratus.io/v1alpha1\nkind: Instance\nmetadata:\n  name: default\nspec:\n  serviceId: stackato.hpe.redis\n";
    assert!(env.apply(yaml).status.success());
    let instance = env
        .eventually(&converger, "Instance default failed", || env.instance("default").filter(|i| state(i) == "failed"));
    assert_eq!(condition(&instance, "Ready").unwrap()["reason"], "NamespaceTaken");
    env.kubectl_ok(&["delete", "instance", "default", "--wait=false"]);
    env.eventually(&converger, "Instance default gone", || env.instance("default").is_none().then_some(()));
    let namespace = env.plane.object("Namespace", "", "default").expect("namespace default is left alone");
    assert!(namespace["metadata"]["deletionTimestamp"].is_null(), "{namespace:#}");

    // A secret parameter whose Secret does not exist yet: failed, saying which; once the
    // Secret is there, the instance is created with its value.
    let yaml = r#"
apiVersion: stratus.io/v1alpha1
kind: Instance
metadata:
  name: conv-later
spec:
  serviceId: stackato.hpe.redis
  secretParameters:
    redis-password: {namespace: default, name: conv-later-password, key: password}
"#;
    assert!(env.apply(yaml).status.success());
    let instance =
        env.eventually(&converger, "conv-later failed", || env.instance("conv-later").filter(|i| state(i) == "failed"));
    let ready = condition(&instance, "Ready").unwrap();
    assert_eq!(ready["reason"], "SecretUnavailable");
    assert_eq!(
        ready["message"],
        "secret parameter redis-password: Secret default/conv-later-password key password does not exist"
    );
    assert!(env.plane.object("Namespace", "", "conv-later").is_none());
    env.plane
        .create(&json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "conv-later-password", "namespace": "default" },
            "stringData": { "password": "given-later-0123456789" }
        }))
        .unwrap();
    env.eventually(&converger, "conv-later running", || running(&env, "conv-later"));
    let secret = env.plane.object("Secret", "conv-later", "secret-parameters").unwrap();
    assert_eq!(decode(secret["data"]["redis-password"].as_str().unwrap()), b"given-later-0123456789");
    env.kubectl_ok(&["delete", "instance", "conv-later", "--wait=false"]);
    env.eventually(&converger, "conv-later gone", || env.instance("conv-later").is_none().then_some(()));

    // SIGTERM stops it cleanly.
    let mut converger = converger;
    let status = converger.terminate();
    assert!(status.success(), "{status}:\n{}", converger.log());
    assert!(converger.log().contains("stopped"), "{}", converger.log());
}

#[test]
fn the_api_server_refuses_an_invalid_instance_with_a_clear_message() {
    let env = test_env!();
    // The definition, as the controller installs it (no controller is needed for this test).
    let kubeconfig = env.plane.kubeconfig();
    env.plane.block_on(async {
        let cluster =
            service_manager::cluster::Cluster::connect(Some(&kubeconfig), None, Default::default()).await.unwrap();
        service_manager::controller::install_definition(&cluster).await.unwrap();
    });
    let refused = |yaml: &str| -> String {
        // kubectl may need a moment to see a new resource; a refusal by the API server names it.
        let started = Instant::now();
        loop {
            let output = env.apply(yaml);
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            assert!(!output.status.success(), "accepted:\n{yaml}");
            let unknown_kind = stderr.contains("no matches for kind") || stderr.contains("ensure CRDs are installed");
            if !unknown_kind || started.elapsed() > LIMIT {
                return stderr;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    let instance = |name: &str, service: &str| {
        format!("apiVersion: stratus.io/v1alpha1\nkind: Instance\nmetadata:\n  name: {name}\nspec:\n  serviceId: {service}\n")
    };

    let message = refused(&instance("conv-bad-service", "Not A Service!"));
    assert!(message.contains("serviceId must be a catalog service id such as stackato.hpe.redis"), "{message}");

    let message = refused(&instance("Conv_Bad_Name", "stackato.hpe.redis"));
    assert!(message.contains("the name of an Instance is its instance id"), "{message}");

    let message = refused(&format!("{}  keepVolumes: \"perhaps\"\n", instance("conv-bad-field", "stackato.hpe.redis")));
    assert!(message.contains("spec.keepVolumes"), "{message}");

    // kubectl's strict field validation names an unknown field.
    let message = refused(&format!("{}  colour: blue\n", instance("conv-unknown-field", "stackato.hpe.redis")));
    assert!(message.contains("unknown field \"spec.colour\""), "{message}");

    // serviceId cannot change.
    let created = env.apply(&instance("conv-immutable", "stackato.hpe.nothing"));
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let message = refused(&instance("conv-immutable", "stackato.hpe.mysql"));
    assert!(message.contains("serviceId cannot change"), "{message}");
    assert_eq!(env.instance("conv-immutable").unwrap()["spec"]["serviceId"], "stackato.hpe.nothing");
}

fn decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).expect("base64")
}

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/hsm-controller";

/// The PID in the holder identity (`host/pid`) of the controller Lease, if held.
fn lease_holder(env: &Env) -> Option<u32> {
    let lease = env.plane.get(LEASE)?;
    lease["spec"]["holderIdentity"].as_str()?.rsplit_once('/')?.1.parse().ok()
}

fn redis_instance(name: &str) -> String {
    format!("apiVersion: stratus.io/v1alpha1\nkind: Instance\nmetadata:\n  name: {name}\nspec:\n  serviceId: stackato.hpe.redis\n")
}

#[test]
fn of_two_replicas_one_leads_and_the_other_takes_over_when_it_stops() {
    let env = test_env!();
    let _one = ONE_CONVERGER.lock().unwrap_or_else(|e| e.into_inner());
    let kubeconfig = env.plane.kubeconfig();
    let first = Converger::start_with(&kubeconfig, env.dir.path(), "first", &[]);
    let second = Converger::start_with(&kubeconfig, env.dir.path(), "second", &[]);
    let pids = [first.pid(), second.pid()];
    let holder = env
        .eventually(&first, "one of the two holding the Lease", || lease_holder(&env).filter(|pid| pids.contains(pid)));
    let (mut leader, standby) = if holder == first.pid() { (first, second) } else { (second, first) };
    env.eventually(&leader, "the leader saying it leads", || leader.full_log().contains("leading").then_some(()));
    env.eventually(&standby, "the other standing by", || standby.full_log().contains("standing by").then_some(()));

    // The leader reconciles; the other does not.
    env.eventually(&leader, "kubectl apply of the Instance", || {
        env.apply(&redis_instance("conv-ha-one")).status.success().then_some(())
    });
    env.eventually(&leader, "conv-ha-one running", || running(&env, "conv-ha-one"));
    assert!(!standby.full_log().contains("leading"), "{}", standby.log());
    assert!(!standby.full_log().contains("reconciled"), "{}", standby.log());
    assert_eq!(lease_holder(&env), Some(leader.pid()));

    // SIGTERM: the leader stops cleanly and lets go; the other takes over and reconciles.
    let status = leader.terminate();
    assert!(status.success(), "{status:?}\n{}", leader.log());
    assert!(leader.full_log().contains("released the controller Lease"), "{}", leader.log());
    env.eventually(&standby, "the other holding the Lease", || {
        (lease_holder(&env) == Some(standby.pid())).then_some(())
    });
    assert!(env.apply(&redis_instance("conv-ha-two")).status.success());
    env.eventually(&standby, "conv-ha-two running under the new leader", || running(&env, "conv-ha-two"));
    assert!(standby.full_log().contains("leading"), "{}", standby.log());

    for name in ["conv-ha-one", "conv-ha-two"] {
        env.kubectl_ok(&["delete", "instance", name, "--wait=false"]);
    }
    env.eventually(&standby, "both Instances gone", || {
        (env.instance("conv-ha-one").is_none() && env.instance("conv-ha-two").is_none()).then_some(())
    });
}

#[test]
fn the_controller_answers_healthz_readyz_and_metrics() {
    let env = test_env!();
    let _one = ONE_CONVERGER.lock().unwrap_or_else(|e| e.into_inner());
    let converger =
        Converger::start_with(&env.plane.kubeconfig(), env.dir.path(), "health", &["--health-addr", "127.0.0.1:0"]);
    let addr = env.eventually(&converger, "the health address in the log", || {
        let log = converger.full_log();
        let at = log.find("addr=")? + "addr=".len();
        let addr: String = log[at..].chars().take_while(|c| !c.is_whitespace()).collect();
        Some(addr)
    });
    assert_eq!(http_get(&addr, "/healthz"), (200, "ok\n".to_string()));
    env.eventually(&converger, "/readyz ready", || (http_get(&addr, "/readyz").0 == 200).then_some(()));
    assert_eq!(http_get(&addr, "/nowhere").0, 404);
    let metrics = env.eventually(&converger, "/metrics saying it leads", || {
        let (code, body) = http_get(&addr, "/metrics");
        (code == 200 && body.contains("\nhsm_controller_leader 1\n")).then_some(body)
    });
    for name in [
        "hsm_controller_reconciles_total ",
        "hsm_controller_reconcile_errors_total ",
        "hsm_controller_reconcile_duration_seconds_sum ",
        "hsm_controller_reconcile_duration_seconds_count ",
        "# TYPE hsm_controller_leader gauge",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
}
