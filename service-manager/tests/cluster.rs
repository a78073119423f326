//! `hsm` against a real Kubernetes control plane (etcd, kube-apiserver, controller manager,
//! scheduler: `stratus-tests`' harness, one per test binary) through a fault proxy of each
//! test's own; the real `hsm` binary talks to it through a kubeconfig, as an operator's would.
//! No kubelet runs: the harness's node agent reports pods Running and Ready (or not, or Jobs
//! failed) as each test asks for its namespaces. Each test uses instance ids of its own.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use stratus_tests::cluster::{Behaviour, ControlPlane, Faults, Proxy};

struct Env {
    plane: &'static ControlPlane,
    proxy: Arc<Proxy>,
    dir: tempfile::TempDir,
}

/// The test's environment, or `return` from the test when no control plane can run here
/// (never under `CI=true`).
macro_rules! test_env {
    () => {
        match Env::new() {
            Some(env) => env,
            None => return,
        }
    };
}

impl Env {
    fn new() -> Option<Env> {
        let plane = ControlPlane::shared()?;
        let proxy = plane.proxy();
        let dir = tempfile::tempdir().unwrap();
        proxy.write_kubeconfig(&dir.path().join("kubeconfig")).unwrap();
        Some(Env { plane, proxy, dir })
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hsm"));
        command
            .args(args)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .env_remove("HSM_CATALOG")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        command
    }

    fn hsm(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.hsm(args);
        assert!(
            output.status.success(),
            "hsm {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.plane.logs(10)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }

    fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        self.plane.object(kind, namespace, name)
    }

    /// The objects of `namespace` hsm wrote, as (kind/name, resourceVersion).
    fn versions(&self, namespace: &str) -> Vec<(String, String)> {
        self.plane.managed_by("hsm", namespace)
    }

    fn secret_value(&self, namespace: &str, key: &str) -> String {
        let secret = self.object("Secret", namespace, "secret-parameters").expect("the instance has a Secret");
        let encoded = secret["data"][key].as_str().unwrap_or_else(|| panic!("no {key} in the Secret"));
        String::from_utf8(decode_base64(encoded)).unwrap()
    }

    fn state(&self, namespace: &str) -> Option<String> {
        self.object("Namespace", "", namespace)
            .and_then(|n| n["metadata"]["annotations"]["hsm.stratus.io/state"].as_str().map(str::to_string))
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).expect("base64")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn create_converges_and_a_rerun_changes_nothing() {
    let env = test_env!();
    let out = env.ok(&["create-instance", "stackato.hpe.mysql", "--instance-id", "db"]);
    assert_eq!(out, "instance db created: 8 objects applied, state running\n");
    assert_eq!(env.state("db").as_deref(), Some("running"));
    let sts = env.object("StatefulSet", "db", "mysql").unwrap();
    let managers = sts["metadata"]["managedFields"].as_array().unwrap();
    assert!(managers.iter().any(|m| m["manager"] == "hsm" && m["operation"] == "Apply"), "{managers:?}");
    assert_eq!(sts["status"]["readyReplicas"], 1);
    let password = env.secret_value("db", "root-password");
    assert_eq!(password.len(), 32);

    let before = env.versions("db");
    let out = env.ok(&["create-instance", "stackato.hpe.mysql", "--instance-id", "db"]);
    assert_eq!(out, "instance db converged: 8 objects applied, state running\n");
    let after = env.versions("db");
    assert_eq!(before, after, "a re-run with nothing changed moves no resourceVersion");
    assert_eq!(env.secret_value("db", "root-password"), password);
}

#[test]
fn pod_security_baseline_is_enforced_where_hsm_asks_for_nothing_more() {
    let env = test_env!();
    env.ok(&["create-instance", "stackato.hpe.redis", "--instance-id", "psa"]);
    let namespace = env.object("Namespace", "", "psa").unwrap();
    assert_eq!(namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], Value::Null);
    // The cluster's own policy holds there: a privileged pod is refused by admission.
    let refused = env
        .plane
        .create(&serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "privileged", "namespace": "psa"},
            "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": true}}]}}))
        .unwrap_err();
    assert!(refused.contains("violates PodSecurity \"baseline:latest\""), "{refused}");
}

#[test]
fn a_hand_edit_is_taken_back_by_a_rerun() {
    let env = test_env!();
    env.ok(&["create-instance", "stackato.hpe.mysql", "--instance-id", "db-edit"]);
    // Someone scales the StatefulSet by hand (kubectl's own field manager, a plain update).
    kubectl(&env, &["scale", "statefulset", "mysql", "-n", "db-edit", "--replicas=3"]);
    assert_eq!(env.object("StatefulSet", "db-edit", "mysql").unwrap()["spec"]["replicas"], 3);
    // hsm's server-side apply forces its ownership back: the instance is as declared again.
    env.ok(&["create-instance", "stackato.hpe.mysql", "--instance-id", "db-edit"]);
    let sts = env.object("StatefulSet", "db-edit", "mysql").unwrap();
    assert_eq!(sts["spec"]["replicas"], 1);
    let owners: Vec<&Value> = sts["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["fieldsV1"]["f:spec"]["f:replicas"].is_object())
        .collect();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0]["manager"], "hsm");
}

#[test]
fn hcf_is_created_with_jobs_and_load_balancers() {
    let env = test_env!();
    let output =
        env.hsm(&["create-instance", "stackato.hpe.hcf", "--set", "DOMAIN=cf.example.com", "--instance-id", "cf"]);
    assert!(output.status.success(), "{}", stderr(&output));
    // The last word says where the instance can be reached, one line per public Service.
    let out = String::from_utf8(output.stdout.clone()).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["instance cf created: 55 objects applied, state running", "public locations:"]);
    let router = lines.iter().find(|l| l.starts_with("  router 192.0.2.")).expect("the router's address");
    assert!(router.ends_with(": http 80, https 443, https-alt 4443"), "{router}");
    let progress = stderr(&output);
    assert!(progress.lines().last().unwrap().starts_with("done in "), "{progress}");
    for line in [
        "[1/5] namespace: 1 object",
        "[4/5] workloads: 22 objects",
        "[5/5] post-flight jobs: 2 objects",
        "Job post-deployment-setup complete",
        "StatefulSet diego-cell ready 1/1",
    ] {
        assert!(progress.contains(line), "progress lacks {line:?}:\n{progress}");
    }
    let detail: Value = serde_json::from_str(&env.ok(&["get-instance", "cf", "-o", "json"])).unwrap();
    assert_eq!(detail["state"], "running");
    assert_eq!(detail["parameters"]["DOMAIN"], "cf.example.com");
    assert_eq!(detail["parameters"]["cluster-admin-password"], "********");
    let locations = detail["service_locations"].as_array().unwrap();
    let router: Vec<&Value> = locations.iter().filter(|l| l["service_name"] == "router").collect();
    assert_eq!(router.len(), 3);
    assert!(router[0]["public_location"].as_str().unwrap().starts_with("192.0.2."));
    assert!(detail["components"].as_array().unwrap().iter().all(|c| c["done"] == true));

    // The shared control plane enforces Pod Security `baseline`; diego-cell is privileged, and
    // runs because hsm labels the namespace so, deliberately.
    let namespace = env.object("Namespace", "", "cf").unwrap();
    assert_eq!(namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "privileged");
    assert!(env.plane.list("Pod", "cf").iter().any(|p| p["metadata"]["name"] == "diego-cell-0"));

    let list = env.ok(&["list-instances"]);
    let row = list.lines().find(|l| l.starts_with("cf ")).unwrap();
    assert!(row.split_whitespace().take(5).eq(["cf", "stackato.hpe.hcf", "4.0.1", "1.0.0", "running"]), "{row}");
    // Secrets never reach stdout or stderr.
    let password = env.secret_value("cf", "cluster-admin-password");
    assert!(!list.contains(&password) && !progress.contains(&password));
}

#[test]
fn a_killed_create_finishes_on_the_next_run_with_the_same_secrets() {
    let env = test_env!();
    env.plane.behave("pg", Behaviour::never_ready());
    let mut child = env.spawn(&["create-instance", "stackato.hpe.postgres", "--instance-id", "pg"]);
    let started = Instant::now();
    while env.object("StatefulSet", "pg", "postgres").is_none() {
        assert!(started.elapsed() < Duration::from_secs(20), "hsm never applied the workload");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(env.state("pg").as_deref(), Some("creating"));
    let password = env.secret_value("pg", "postgres-password");

    env.plane.behave("pg", Behaviour::default());
    let out = env.ok(&["create-instance", "stackato.hpe.postgres", "--instance-id", "pg"]);
    assert_eq!(out, "instance pg converged: 8 objects applied, state running\n");
    assert_eq!(env.secret_value("pg", "postgres-password"), password, "the generated password survived the kill");
}

#[test]
fn concurrent_creates_of_one_instance_let_exactly_one_win() {
    let env = test_env!();
    env.plane.behave("cache", Behaviour { ready_after: Duration::from_millis(800), ..Behaviour::default() });
    let first = env.spawn(&["create-instance", "stackato.hpe.redis", "--instance-id", "cache"]);
    let second = env.spawn(&["create-instance", "stackato.hpe.redis", "--instance-id", "cache"]);
    let outputs = [first.wait_with_output().unwrap(), second.wait_with_output().unwrap()];
    let winners = outputs.iter().filter(|o| o.status.success()).count();
    assert_eq!(winners, 1, "{:?}", outputs.iter().map(stderr).collect::<Vec<_>>());
    let loser = outputs.iter().find(|o| !o.status.success()).unwrap();
    let message = stderr(loser);
    assert!(
        message.contains("error: instance \"cache\" already exists")
            || message.contains("error: instance \"cache\" exists and is being changed by another hsm"),
        "{message}"
    );
    assert_eq!(env.state("cache").as_deref(), Some("running"));
}

#[test]
fn namespaces_hsm_does_not_own_are_refused() {
    let env = test_env!();
    kubectl(&env, &["create", "namespace", "taken"]);
    let output = env.hsm(&["create-instance", "stackato.hpe.redis", "--instance-id", "taken"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: namespace \"taken\" exists and is not managed by hsm; choose another instance id\n"
    );
    assert_eq!(env.versions("taken"), [], "nothing was created in it");
    assert_eq!(
        env.object("Namespace", "", "taken").unwrap()["metadata"]["annotations"]["hsm.stratus.io/state"],
        Value::Null
    );

    let other = env.ok(&["create-instance", "stackato.hpe.redis", "--instance-id", "r1"]);
    assert!(other.starts_with("instance r1 created"));
    let output = env.hsm(&["create-instance", "stackato.hpe.mysql", "--instance-id", "r1"]);
    assert_eq!(
        stderr(&output),
        "error: instance \"r1\" already exists as stackato.hpe.redis 7.4/1.0.0; use upgrade-instance to change its version, or choose another instance id\n"
    );
}

#[test]
fn delete_with_and_without_keeping_volumes() {
    let env = test_env!();
    env.ok(&["create-instance", "stackato.hpe.mysql", "--instance-id", "keep"]);
    let password = env.secret_value("keep", "root-password");
    assert!(env.object("PersistentVolumeClaim", "keep", "mysql-data-mysql-0").is_some());

    let refused = env.hsm(&["delete-instance", "keep"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains(
        "Delete instance keep (stackato.hpe.mysql) and its volume claims mysql-data-mysql-0 (their data is lost)?"
    ));
    assert!(env.object("StatefulSet", "keep", "mysql").is_some(), "nothing deleted without confirmation");

    let out = env.ok(&["delete-instance", "keep", "-y", "--keep-volumes"]);
    assert!(
        out.starts_with("instance keep deleted; kept in namespace keep: volume claims mysql-data-mysql-0"),
        "{out}"
    );
    assert!(env.object("StatefulSet", "keep", "mysql").is_none());
    assert!(env.object("Service", "keep", "mysql-int").is_none());
    assert!(env.object("PersistentVolumeClaim", "keep", "mysql-data-mysql-0").is_some());
    assert_eq!(env.state("keep").as_deref(), Some("deleted"));

    // Creating it again reattaches the volume with the same password.
    env.ok(&["create-instance", "stackato.hpe.mysql", "--instance-id", "keep"]);
    assert_eq!(env.secret_value("keep", "root-password"), password);

    let out = env.ok(&["delete-instance", "keep", "-y"]);
    assert_eq!(out, "instance keep deleted\n");
    assert!(env.object("Namespace", "", "keep").is_none());
    assert!(env.object("PersistentVolumeClaim", "keep", "mysql-data-mysql-0").is_none());
    assert_eq!(env.ok(&["delete-instance", "keep", "-y"]), "instance keep does not exist; nothing to delete\n");
}

#[test]
fn timeouts_name_what_is_not_ready() {
    let env = test_env!();
    // The pod is scheduled but never starts: an image that cannot be pulled.
    env.plane.behave("slow", Behaviour::never_ready());
    let child = env.spawn(&["create-instance", "stackato.hpe.mysql", "--instance-id", "slow", "--timeout", "5s"]);
    // What a kubelet would record about the StatefulSet's pod, after the scheduler's event.
    let started = Instant::now();
    while !env.plane.list("Event", "slow").iter().any(|e| e["reason"] == "Scheduled") {
        assert!(started.elapsed() < Duration::from_secs(5), "the pod was never scheduled");
        std::thread::sleep(Duration::from_millis(20));
    }
    let now = time_rfc3339(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
    let now = now.split('.').next().unwrap().to_string() + "Z";
    let event = serde_json::json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "mysql-0.pull", "namespace": "slow"},
        "involvedObject": {"kind": "Pod", "name": "mysql-0", "namespace": "slow"},
        "reason": "Failed", "message": "Back-off pulling image \"docker.io/library/mysql:8.4.3\"", "type": "Warning",
        "firstTimestamp": now, "lastTimestamp": now, "count": 1, "source": {"component": "kubelet"},
    });
    env.plane.create(&event).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.ends_with(
            "error: timed out after 5s waiting for workloads:\n  StatefulSet mysql: 0/1 ready; no status reported yet; latest event: Failed: Back-off pulling image \"docker.io/library/mysql:8.4.3\"\n"
        ),
        "{message}"
    );
    assert_eq!(env.state("slow").as_deref(), Some("failed"));
    let detail: Value = serde_json::from_str(&env.ok(&["get-instance", "slow", "-o", "json"])).unwrap();
    assert!(detail["message"].as_str().unwrap().starts_with("timed out after 5s"));
    assert!(detail.get("operation").is_none(), "a failed operation releases the instance");
}

#[test]
fn failed_jobs_are_reported() {
    let env = test_env!();
    env.plane.behave("cf-fail", Behaviour::failing_job("sso-create-service"));
    let output =
        env.hsm(&["create-instance", "stackato.hpe.hcf", "--set", "DOMAIN=cf.example.com", "--instance-id", "cf-fail"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output)
            .ends_with("error: job \"sso-create-service\" failed: Job has reached the specified backoff limit\n"),
        "{}",
        stderr(&output)
    );
    assert_eq!(env.state("cf-fail").as_deref(), Some("failed"));
}

#[test]
fn faults_are_survived() {
    let env = test_env!();
    env.proxy.set_faults(Faults { error_every: 5, throttle_every: 7, drop_every: 11 });
    let output = env.hsm(&[
        "create-instance",
        "stackato.hpe.hcf",
        "--set",
        "DOMAIN=cf.example.com",
        "--instance-id",
        "cf-faults",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    env.proxy.set_faults(Faults::default());
    assert_eq!(env.state("cf-faults").as_deref(), Some("running"));
    let applied = env.versions("cf-faults");
    // 55 planned objects and the ConfigMap `hsm-sdl` (the SDL in force), each written once.
    assert_eq!(applied.len(), 56, "every planned object, once: {applied:?}");
    assert!(applied.iter().any(|(object, _)| object == "ConfigMap/hsm-sdl"), "{applied:?}");
    assert_eq!(
        env.plane.list("PersistentVolumeClaim", "cf-faults").len(),
        6,
        "one claim for each of the six stateful roles"
    );
}

#[test]
fn no_wait_applies_and_returns() {
    let env = test_env!();
    env.plane.behave("quick", Behaviour::never_ready());
    let out = env.ok(&["create-instance", "stackato.hpe.redis", "--instance-id", "quick", "--no-wait"]);
    assert_eq!(out, "instance quick created: 8 objects applied, state creating\n");
    let list: Value = serde_json::from_str(&env.ok(&["list-instances", "-o", "json"])).unwrap();
    let quick = list.as_array().unwrap().iter().find(|i| i["instance_id"] == "quick").unwrap();
    assert_eq!(quick["state"], "creating");
    assert_eq!(quick["message"], "applied without waiting (--no-wait)");
}

#[test]
fn an_unreachable_cluster_is_one_clear_report() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: gone\ncurrent-context: gone\nusers:\n- name: gone\n  user: {{}}\n"),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hsm"))
        .args(["list-instances", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "one report, no library logs: {message}");
    assert!(message.starts_with("error: list namespaces: "), "{message}");
    assert!(
        message.trim_end().ends_with(&format!("(is the API server at http://127.0.0.1:{port}/ reachable?)")),
        "{message}"
    );
}

#[test]
fn no_configured_cluster_says_where_it_looked() {
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hsm"))
        .args(["list-instances"])
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "error: no Kubernetes cluster to talk to: no --kubeconfig was given, KUBECONFIG is not set, {}/.kube/config does not exist and this is not a pod with a service account; point at a cluster with --kubeconfig FILE (and --context NAME) or KUBECONFIG=FILE\n",
            home.path().display()
        )
    );
}

#[test]
fn no_cluster_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let output = Command::new(env!("CARGO_BIN_EXE_hsm"))
        .args(["list-instances", "--kubeconfig"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with(&format!("error: cannot configure a Kubernetes client: {}", missing.display())),
        "{}",
        stderr(&output)
    );
}

#[test]
fn upgrade_keeps_secrets_and_follows_upgrade_rules() {
    let env = test_env!();
    env.ok(&["create-instance", "stackato.hpe.mysql", "8.0", "--instance-id", "db-up"]);
    let password = env.secret_value("db-up", "root-password");
    let before = env.object("StatefulSet", "db-up", "mysql").unwrap();
    assert_eq!(before["spec"]["template"]["spec"]["containers"][0]["image"], "docker.io/library/mysql:8.0.40");

    let out = env.ok(&["upgrade-instance", "db-up", "8.4"]);
    assert_eq!(out, "instance db-up upgraded from 8.0/1.0.0 to 8.4/1.0.0: 8 objects applied, state running\n");
    let after = env.object("StatefulSet", "db-up", "mysql").unwrap();
    assert_eq!(after["spec"]["template"]["spec"]["containers"][0]["image"], "docker.io/library/mysql:8.4.3");
    assert_eq!(after["metadata"]["generation"], 2, "the workload rolled");
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(env.secret_value("db-up", "root-password"), password, "generated secrets survive upgrades");
    let record: Value = serde_json::from_str(&env.ok(&["get-instance", "db-up", "-o", "json"])).unwrap();
    assert_eq!((record["product_version"].as_str(), record["state"].as_str()), (Some("8.4"), Some("running")));

    let back = env.hsm(&["upgrade-instance", "db-up", "8.0"]);
    assert_eq!(back.status.code(), Some(2));
    assert_eq!(
        stderr(&back),
        "error: stackato.hpe.mysql 8.0/1.0.0 cannot be reached from 8.4/1.0.0: it upgrades from no earlier version\n"
    );
    let same = env.hsm(&["upgrade-instance", "db-up", "8.4"]);
    assert_eq!(
        stderr(&same),
        "error: instance \"db-up\" is already at 8.4/1.0.0 and no parameter to set was given: nothing to change\n"
    );
}

#[test]
fn configure_changes_parameters_but_never_immutable_ones() {
    let env = test_env!();
    env.ok(&["create-instance", "stackato.hpe.hcf", "--set", "DOMAIN=cf.example.com", "--instance-id", "cf-conf"]);
    let admin = env.secret_value("cf-conf", "cluster-admin-password");
    let job_before = env.object("Job", "cf-conf", "post-deployment-setup").unwrap();

    let refused = env.hsm(&["configure-instance", "cf-conf", "--set", "DOMAIN=other.example.com"]);
    assert_eq!(refused.status.code(), Some(2));
    assert_eq!(stderr(&refused), "error: immutable parameter cannot change: DOMAIN\n");
    assert_eq!(env.state("cf-conf").as_deref(), Some("running"), "a refused change touches nothing");

    let out = env.ok(&["configure-instance", "cf-conf", "--set", "LOG_LEVEL=debug"]);
    assert_eq!(
        out.lines().next().unwrap(),
        "instance cf-conf reconfigured at 4.0.1/1.0.0: 55 objects applied, state running"
    );
    let api = env.object("Deployment", "cf-conf", "api").unwrap();
    let env_vars = api["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap();
    assert!(env_vars.iter().any(|e| e["name"] == "LOG_LEVEL" && e["value"] == "debug"));
    assert_eq!(api["metadata"]["generation"], 2);
    assert_eq!(env.secret_value("cf-conf", "cluster-admin-password"), admin);
    let job_after = env.object("Job", "cf-conf", "post-deployment-setup").unwrap();
    assert_ne!(job_after["metadata"]["uid"], job_before["metadata"]["uid"], "post-flight jobs run again");
    // The new value is kept by later operations.
    env.ok(&["create-instance", "stackato.hpe.hcf", "--instance-id", "cf-conf"]);
    let api = env.object("Deployment", "cf-conf", "api").unwrap();
    assert!(api["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["value"] == "debug"));
}

#[test]
fn upgrades_remove_what_the_new_version_no_longer_has() {
    let env = test_env!();
    let catalog = env.dir.path().join("catalog");
    let sdl = |version: &str, components: &str| {
        format!(
            r#"{{"name": "app", "vendor": "acme", "product_version": "{version}", "sdl_version": "1.0.0", "components": [{components}]}}"#
        )
    };
    let web = r#"{"name": "web", "image": "docker.io/acme/web:1.0", "min_RAM_mb": 64, "service_ports": [{"name": "http", "source_port": 80, "target_port": 8080}]}"#;
    let worker = r#"{"name": "worker", "image": "docker.io/acme/worker:1.0", "min_RAM_mb": 64, "service_ports": [{"name": "metrics", "source_port": 9090, "target_port": 9090}]}"#;
    for (version, components, config) in [
        ("1", format!("{web}, {worker}"), "{}".to_string()),
        ("2", web.to_string(), r#"{"upgrade_from": [{"product_version": "1"}]}"#.to_string()),
    ] {
        let dir = catalog.join(format!("services/acme/app/{version}/1.0.0/sdl"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("sdl.json"), sdl(version, &components)).unwrap();
        std::fs::write(dir.parent().unwrap().join("config.json"), config).unwrap();
    }
    std::fs::write(catalog.join("config.json"), r#"{"name": "test"}"#).unwrap();
    std::fs::write(catalog.join("services/acme/app/config.json"), r#"{"description": "test app"}"#).unwrap();
    let catalog = catalog.to_str().unwrap();

    env.ok(&["--catalog", catalog, "create-instance", "test.acme.app", "1", "--instance-id", "app"]);
    assert!(env.object("Deployment", "app", "worker").is_some());
    let out = env.ok(&["--catalog", catalog, "upgrade-instance", "app", "2"]);
    assert_eq!(out, "instance app upgraded from 1/1.0.0 to 2/1.0.0: 5 objects applied, removed Service/worker-int, Deployment/worker, state running\n");
    assert!(env.object("Deployment", "app", "worker").is_none());
    assert!(env.object("Service", "app", "worker-int").is_none());
    assert!(env.object("Deployment", "app", "web").is_some());
}

/// Waits for `child`, killing it if it has not finished within `limit`: a hang fails the test
/// instead of stalling the suite.
fn finishes_within(mut child: Child, limit: Duration) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!("hsm was still running after {limit:?}; stderr so far:\n{}", stderr(&output));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A catalog with one service, `test.acme.app`, whose two parameters ALPHA and BETA can be
/// changed independently; returns the catalog folder.
fn two_parameter_catalog(dir: &std::path::Path) -> String {
    let catalog = dir.join("catalog");
    let sdl = r#"{"name": "app", "vendor": "acme", "product_version": "1", "sdl_version": "1.0.0",
        "components": [{"name": "web", "image": "docker.io/acme/web:1.0", "min_RAM_mb": 64,
            "parameters": ["ALPHA", "BETA"],
            "service_ports": [{"name": "http", "source_port": 80, "target_port": 8080}]}],
        "parameters": [{"name": "ALPHA", "default": "0"}, {"name": "BETA", "default": "0"}]}"#;
    let version = catalog.join("services/acme/app/1/1.0.0");
    std::fs::create_dir_all(version.join("sdl")).unwrap();
    std::fs::write(version.join("sdl/sdl.json"), sdl).unwrap();
    std::fs::write(version.join("config.json"), "{}").unwrap();
    std::fs::write(catalog.join("config.json"), r#"{"name": "test"}"#).unwrap();
    std::fs::write(catalog.join("services/acme/app/config.json"), r#"{"description": "test app"}"#).unwrap();
    catalog.to_str().unwrap().to_string()
}

#[test]
fn concurrent_configures_never_revert_each_other() {
    let env = test_env!();
    let catalog = two_parameter_catalog(env.dir.path());
    env.ok(&["--catalog", &catalog, "create-instance", "test.acme.app", "--instance-id", "app-conf"]);
    // Slow answers widen the window between reading the record and applying the plan.
    env.proxy.set_latency(Duration::from_millis(15));
    for round in 1..=3 {
        let (alpha, beta) = (format!("ALPHA=a{round}"), format!("BETA=b{round}"));
        let first = env.spawn(&["--catalog", &catalog, "configure-instance", "app-conf", "--set", &alpha]);
        let second = env.spawn(&["--catalog", &catalog, "configure-instance", "app-conf", "--set", &beta]);
        let outputs = [first.wait_with_output().unwrap(), second.wait_with_output().unwrap()];
        let parameters = env.object("ConfigMap", "app-conf", "parameters").unwrap();
        let mut succeeded = 0;
        for (output, (name, value)) in
            outputs.iter().zip([("ALPHA", format!("a{round}")), ("BETA", format!("b{round}"))])
        {
            if output.status.success() {
                succeeded += 1;
                assert_eq!(parameters["data"][name], value, "round {round}: a change that succeeded was reverted");
            } else {
                assert_eq!(output.status.code(), Some(1));
                assert!(
                    stderr(output).contains("error: instance \"app-conf\" exists and is being changed by another hsm"),
                    "{}",
                    stderr(output)
                );
            }
        }
        assert!(succeeded >= 1, "round {round}: {:?}", outputs.iter().map(stderr).collect::<Vec<_>>());
        assert!(env.object("Lease", "app-conf", "hsm-operation").is_none(), "the lock is released");
    }
}

#[test]
fn a_busy_instance_is_reported_at_once() {
    let env = test_env!();
    env.ok(&["create-instance", "stackato.hpe.redis", "--instance-id", "cache-busy"]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let renewed = time_rfc3339(now);
    env.plane
        .create(&serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "hsm-operation", "namespace": "cache-busy"},
            "spec": {"holderIdentity": "elsewhere/1", "leaseDurationSeconds": 60,
                     "acquireTime": renewed, "renewTime": renewed}}))
        .unwrap();
    let (before, _, _) = env.proxy.counts();
    let output = env.hsm(&["configure-instance", "cache-busy", "--set", "REDIS_MAXMEMORY=256mb"]);
    let (after, _, _) = env.proxy.counts();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output)
            .starts_with("error: instance \"cache-busy\" exists and is being changed by another hsm (elsewhere/1, "),
        "{}",
        stderr(&output)
    );
    // Read the instance, try the Lease once, read who holds it: no retrying a taken name.
    assert!(after - before <= 5, "{} requests to find the instance busy", after - before);
    assert_eq!(env.state("cache-busy").as_deref(), Some("running"), "nothing changed");
}

/// RFC 3339 (UTC, microseconds) for unix seconds `secs`, as a Lease's times are written.
fn time_rfc3339(secs: u64) -> String {
    let output = Command::new("date").args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%S.000000Z"]).output();
    String::from_utf8(output.unwrap().stdout).unwrap().trim().to_string()
}

#[test]
fn a_server_answering_429_to_everything_is_given_up_on() {
    let env = test_env!();
    env.proxy.set_faults(Faults { throttle_every: 1, ..Faults::default() });
    let create = env.spawn(&["create-instance", "stackato.hpe.redis", "--instance-id", "cache-429", "--timeout", "3s"]);
    let output = finishes_within(create, Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        // hsm's first question is whether a converger runs; a server that cannot answer it
        // ends the command there, within the one --timeout.
        stderr(&output).starts_with("error: timed out after 3s waiting for the API server to get the Instance resource definition; its last answer: 429 TooManyRequests (injected throttling)"),
        "{}",
        stderr(&output)
    );
    let list = env.spawn(&["list-instances", "--request-timeout", "1s"]);
    let output = finishes_within(list, Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output)
            .starts_with("error: list namespaces: injected throttling (429 TooManyRequests), gave up after "),
        "{}",
        stderr(&output)
    );
}

/// A TCP server on loopback that accepts connections and never answers; stops when dropped.
struct SilentServer {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SilentServer {
    fn start() -> SilentServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((connection, _)) => held.push(connection),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        SilentServer { port, stop }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn a_server_that_never_answers_is_given_up_on() {
    let silent = SilentServer::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: s\n  cluster:\n    server: http://127.0.0.1:{}\ncontexts:\n- name: s\n  context:\n    cluster: s\n    user: s\ncurrent-context: s\nusers:\n- name: s\n  user: {{}}\n",
            silent.port
        ),
    )
    .unwrap();
    let hsm = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hsm"))
            .args(args)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .env_remove("HSM_CATALOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let output = finishes_within(
        hsm(&["create-instance", "stackato.hpe.redis", "--instance-id", "cache", "--timeout", "2s"]),
        Duration::from_secs(60),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with(
            "error: timed out after 2s waiting for the API server to get the Instance resource definition; its last answer: no answer within"
        ),
        "{}",
        stderr(&output)
    );
    let output = finishes_within(hsm(&["get-instance", "cache", "--request-timeout", "1s"]), Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("error: get namespace cache: the API server at http://127.0.0.1:"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("accepted the request but sent no answer (2 attempts over"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_lost_reply_to_the_namespace_creation_is_recognised_as_our_own() {
    let env = test_env!();
    env.proxy.lose_next_reply("POST", "/api/v1/namespaces");
    let out = env.ok(&["create-instance", "stackato.hpe.redis", "--instance-id", "cache-lost"]);
    assert_eq!(out, "instance cache-lost created: 8 objects applied, state running\n");
    assert_eq!(env.state("cache-lost").as_deref(), Some("running"));
    assert!(env.object("StatefulSet", "cache-lost", "redis").is_some());
}

#[test]
fn rerunning_create_reruns_jobs_that_failed() {
    let env = test_env!();
    env.plane.behave("cf-rerun", Behaviour::failing_job("sso-create-service"));
    let args = ["create-instance", "stackato.hpe.hcf", "--set", "DOMAIN=cf.example.com", "--instance-id", "cf-rerun"];
    let output = env.hsm(&args);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("job \"sso-create-service\" failed"), "{}", stderr(&output));
    let failed_uid = env.object("Job", "cf-rerun", "sso-create-service").unwrap()["metadata"]["uid"].clone();

    // Whatever made it fail is mended; the same command is run again.
    env.plane.behave("cf-rerun", Behaviour::default());
    let out = env.ok(&["create-instance", "stackato.hpe.hcf", "--instance-id", "cf-rerun"]);
    assert_eq!(out.lines().next().unwrap(), "instance cf-rerun converged: 55 objects applied, state running");
    let job = env.object("Job", "cf-rerun", "sso-create-service").unwrap();
    assert_ne!(job["metadata"]["uid"], failed_uid, "the failed job was run again");
    assert_eq!(env.state("cf-rerun").as_deref(), Some("running"));
}

/// kubectl as the cluster's admin, straight to the API server.
fn kubectl(env: &Env, args: &[&str]) {
    let output = Command::new("kubectl").args(args).env("KUBECONFIG", env.plane.kubeconfig()).output().unwrap();
    assert!(output.status.success(), "kubectl {args:?}: {}", stderr(&output));
}

#[test]
fn corrupted_records_are_refused_not_regenerated() {
    let env = test_env!();
    env.ok(&["create-instance", "stackato.hpe.mysql", "--instance-id", "db-bad"]);
    // "not json", base64-encoded, in hsm's record of the generated values (what re-runs read).
    let patch = r#"{"data": {"hsm-generated.json": "bm90IGpzb24="}}"#;
    kubectl(&env, &["patch", "secret", "hsm-record", "-n", "db-bad", "--type", "merge", "-p", patch]);
    let before = env.versions("db-bad");
    let output = env.hsm(&["create-instance", "stackato.hpe.mysql", "--instance-id", "db-bad"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with(
            "error: instance \"db-bad\": Secret hsm-record's hsm-generated.json cannot be read (hsm-generated.json:1:2: expected ident"
        ),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("refusing to go on"), "{}", stderr(&output));
    assert_eq!(env.versions("db-bad"), before, "nothing was changed or regenerated");
    assert!(env.object("Lease", "db-bad", "hsm-operation").is_none(), "the lock is released");

    env.ok(&["create-instance", "stackato.hpe.redis", "--instance-id", "cache-bad"]);
    kubectl(&env, &["annotate", "namespace", "cache-bad", "--overwrite", "hsm.stratus.io/idl={broken"]);
    let output = env.hsm(&["configure-instance", "cache-bad", "--set", "REDIS_MAXMEMORY=256mb"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output)
            .starts_with("error: instance \"cache-bad\": the namespace's hsm.stratus.io/idl annotation cannot be read"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn values_the_api_server_would_refuse_are_refused_before_anything_is_written() {
    let env = test_env!();
    for args in [
        vec![
            "create-instance",
            "stackato.hpe.pass-through",
            "--instance-id",
            "ext",
            "--set",
            "HOST=bad host; rm -rf /",
            "--set",
            "USERNAME=u",
            "--set",
            "password=p",
        ],
        vec!["create-instance", "stackato.hpe.redis", "--instance-id", "ext", "--storage-class", "Fast SSD"],
        vec!["create-instance", "stackato.hpe.redis", "--instance-id", "ext", "--zones", "az1,az 2"],
    ] {
        let output = env.hsm(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        assert!(env.object("Namespace", "", "ext").is_none(), "{args:?}: nothing is created");
    }
}

#[test]
fn secrets_can_be_given_from_files_and_standard_input() {
    let env = test_env!();
    let file = env.dir.path().join("password");
    std::fs::write(&file, "from-a-file\n").unwrap();
    let set_file = format!("password={}", file.display());
    let base = ["create-instance", "stackato.hpe.pass-through", "--set", "HOST=db.example.com", "--set", "USERNAME=u"];
    let mut args = base.to_vec();
    args.extend(["--instance-id", "ext1", "--set-file", &set_file]);
    env.ok(&args);
    assert_eq!(env.secret_value("ext1", "password"), "from-a-file", "one trailing newline is dropped");

    let mut args = base.to_vec();
    args.extend(["--instance-id", "ext2", "--set-file", "password=-"]);
    let mut child =
        env.command(&args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"from-stdin").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(env.secret_value("ext2", "password"), "from-stdin");
}

#[test]
fn credentials_are_printed_only_when_asked_for() {
    let env = test_env!();
    env.ok(&["create-instance", "stackato.hpe.mysql", "--instance-id", "db-cred"]);
    let password = env.secret_value("db-cred", "root-password");
    let output = env.hsm(&["get-credentials", "db-cred", "-o", "json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let credentials: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(credentials["values"]["root-password"], password.as_str());
    assert!(credentials["values"].get("hsm-generated.json").is_none(), "generated keys stay in the cluster");
    assert!(stderr(&output).starts_with("Secret values of instance db-cred follow"));
    let table = env.ok(&["get-credentials", "db-cred"]);
    assert!(table.lines().any(|l| l.starts_with("root-password") && l.ends_with(&password)), "{table}");
    // Everything else keeps them masked.
    assert!(!env.ok(&["get-instance", "db-cred"]).contains(&password));
    let missing = env.hsm(&["get-credentials", "nope"]);
    assert_eq!(
        (missing.status.code(), stderr(&missing)),
        (Some(1), "error: instance \"nope\" not found\n".to_string())
    );
}

#[test]
fn empty_listings_say_so_instead_of_printing_headers() {
    // A control plane of its own: the shared one has other tests' instances.
    let Some(plane) = ControlPlane::start_or_skip(stratus_tests::cluster::Options::default()) else { return };
    let empty = Command::new(env!("CARGO_BIN_EXE_hsm"))
        .args(["list-instances", "--kubeconfig"])
        .arg(plane.kubeconfig())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&empty.stdout), "no instances\n", "{}", stderr(&empty));
    drop(plane);

    let env = test_env!();
    env.ok(&["create-instance", "stackato.hpe.redis", "--instance-id", "cache-empty"]);
    let detail = env.ok(&["get-instance", "cache-empty"]);
    assert!(detail.contains("\nSERVICE LOCATIONS\n(none)\n"), "{detail}");
}
