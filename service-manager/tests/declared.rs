//! `hsm` on top of the converger, on a real Kubernetes control plane (`stratus-tests`' harness
//! with its node agent): with `hsm controller` running, `create-instance`,
//! `configure-instance` and `delete-instance` write the `Instance` and follow its status;
//! with the definition installed but no converger, hsm applies the plan itself — with the same
//! output. The real `hsm` binary runs as a child process. Every wait is a poll with a generous
//! limit: the tests assert what happens, not how fast.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{Converger, Env, INSTANCES, LIMIT, ONE_CONVERGER};
use serde_json::{json, Value};
use stratus_tests::cluster::Behaviour;

const CRD: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/instances.stratus.io";
const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/hsm-controller";

impl Env {
    /// `hsm args` that must succeed: its stdout and stderr.
    fn ok(&self, args: &[&str], converger: Option<&Converger>) -> (String, String) {
        let output = self.hsm(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "hsm {args:?} failed:\n{stderr}\ncontroller:\n{}",
            converger.map(Converger::log).unwrap_or_default()
        );
        (String::from_utf8(output.stdout).unwrap(), stderr)
    }

    /// Polls `check` until it gives a value, up to [`LIMIT`].
    fn until<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(started.elapsed() < LIMIT, "{what}: not within {LIMIT:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts a converger and waits until its definition is served and it holds the Lease.
    fn converger(&self, name: &str) -> Converger {
        let converger = Converger::start_with(&self.plane.kubeconfig(), self.dir.path(), name, &[]);
        let pid = converger.pid().to_string();
        self.until("the converger leading", || {
            let established = self.plane.get(CRD)?["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True");
            let holder = self.plane.get(LEASE)?["spec"]["holderIdentity"].as_str()?.to_string();
            (established && holder.ends_with(&format!("/{pid}"))).then_some(())
        });
        converger
    }
}

fn decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).expect("base64")
}

/// The value of `key` of Secret `namespace/name`, if any.
fn secret_value(env: &Env, namespace: &str, name: &str, key: &str) -> Option<String> {
    let secret = env.plane.object("Secret", namespace, name)?;
    Some(String::from_utf8(decode(secret["data"][key].as_str()?)).unwrap())
}

/// What `hsm` printed, the instance id made `<id>`.
fn shape(stdout: &str, id: &str) -> String {
    stdout.replace(id, "<id>")
}

#[test]
fn with_a_converger_hsm_writes_the_instance_and_without_one_applies_itself_with_the_same_output() {
    let env = test_env!();
    let _one = ONE_CONVERGER.lock().unwrap_or_else(|e| e.into_inner());
    let mut converger = env.converger("first");
    let password = "given-password-0123456789";
    let create = |id: &str, converger: Option<&Converger>| {
        let set_password = format!("redis-password={password}");
        let args = ["create-instance", "stackato.hpe.redis", "--instance-id", id, "--timeout", "90s"];
        let sets = ["--set", &set_password, "--set", "REDIS_MAXMEMORY=64mb"];
        env.ok(&[&args[..], &sets[..]].concat(), converger)
    };

    // --dry-run writes no Instance (and creates nothing), converger or not.
    env.ok(&["create-instance", "stackato.hpe.redis", "--instance-id", "decl-dry", "--dry-run"], Some(&converger));
    assert!(env.instance("decl-dry").is_none());
    assert!(env.plane.object("Namespace", "", "decl-dry").is_none());

    // With a converger: the Instance is written, and hsm follows it until it runs.
    let (declared_out, declared_err) = create("decl-a", Some(&converger));
    let instance = env.instance("decl-a").expect("hsm wrote the Instance");
    assert_eq!(instance["status"]["state"], "running", "{instance:#}");
    assert_eq!(instance["status"]["observedGeneration"], instance["metadata"]["generation"]);
    let spec = &instance["spec"];
    assert_eq!(spec["serviceId"], "stackato.hpe.redis");
    assert_eq!(spec["parameters"]["REDIS_MAXMEMORY"], "64mb");
    // The secret value is not in the Instance, only a reference to hsm's Secret.
    assert!(!instance.to_string().contains(password), "{instance:#}");
    assert!(spec["parameters"].get("redis-password").is_none());
    let reference = &spec["secretParameters"]["redis-password"];
    assert_eq!(
        (reference["namespace"].as_str(), reference["name"].as_str()),
        (Some("kube-system"), Some("hsm-instance-decl-a"))
    );
    let key = reference["key"].as_str().unwrap();
    assert_eq!(secret_value(&env, "kube-system", "hsm-instance-decl-a", key).as_deref(), Some(password));
    let owners = env.plane.object("Secret", "kube-system", "hsm-instance-decl-a").unwrap()["metadata"]
        ["ownerReferences"]
        .clone();
    assert_eq!(
        (owners[0]["kind"].as_str(), owners[0]["name"].as_str()),
        (Some("Instance"), Some("decl-a")),
        "{owners}"
    );
    // The converger applied it: the instance's own Secret has the given password.
    assert_eq!(secret_value(&env, "decl-a", "secret-parameters", "redis-password").as_deref(), Some(password));
    assert!(declared_err.contains("Instance decl-a written"), "{declared_err}");
    assert!(declared_err.contains("StatefulSet redis ready 1/1"), "{declared_err}");
    assert!(declared_err.contains("done in"), "{declared_err}");

    // get-instance and list-instances show it.
    let (detail, _) = env.ok(&["get-instance", "decl-a", "-o", "json"], Some(&converger));
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(
        (detail["state"].as_str(), detail["service_id"].as_str()),
        (Some("running"), Some("stackato.hpe.redis"))
    );
    assert_eq!(detail["parameters"]["REDIS_MAXMEMORY"], "64mb");
    let (list, _) = env.ok(&["list-instances"], Some(&converger));
    assert!(list.lines().any(|l| l.starts_with("decl-a ") && l.contains("running")), "{list}");

    // configure-instance changes the spec, and the converger the instance.
    let (configured, _) = env
        .ok(&["configure-instance", "decl-a", "--set", "REDIS_MAXMEMORY=128mb", "--timeout", "90s"], Some(&converger));
    assert!(configured.starts_with("instance decl-a reconfigured at 7.4/1.0.0: "), "{configured}");
    let instance = env.instance("decl-a").unwrap();
    assert_eq!(instance["spec"]["parameters"]["REDIS_MAXMEMORY"], "128mb");
    assert_eq!(instance["metadata"]["generation"], 2);
    assert_eq!(instance["status"]["observedGeneration"], 2);
    let parameters = env.plane.object("ConfigMap", "decl-a", "parameters").unwrap();
    assert_eq!(parameters["data"]["REDIS_MAXMEMORY"], "128mb");
    // A new secret value: a new key in hsm's Secret (so the spec changes), the old one dropped.
    let new_password = "another-password-0123456789";
    env.ok(
        &["configure-instance", "decl-a", "--set", &format!("redis-password={new_password}"), "--timeout", "90s"],
        Some(&converger),
    );
    let instance = env.instance("decl-a").unwrap();
    assert!(!instance.to_string().contains(new_password));
    let new_key = instance["spec"]["secretParameters"]["redis-password"]["key"].as_str().unwrap().to_string();
    assert_ne!(new_key, key);
    assert_eq!(secret_value(&env, "kube-system", "hsm-instance-decl-a", &new_key).as_deref(), Some(new_password));
    assert_eq!(secret_value(&env, "kube-system", "hsm-instance-decl-a", key), None);
    assert_eq!(secret_value(&env, "decl-a", "secret-parameters", "redis-password").as_deref(), Some(new_password));

    // Bad input is refused before anything is written: exit 2, the Instance unchanged.
    let generation = env.instance("decl-a").unwrap()["metadata"]["generation"].clone();
    let refused = env.hsm(&["configure-instance", "decl-a", "--set", "NO_SUCH_PARAMETER=1"]);
    assert_eq!(refused.status.code(), Some(2), "{}", String::from_utf8_lossy(&refused.stderr));
    assert_eq!(env.instance("decl-a").unwrap()["metadata"]["generation"], generation);

    // A secret parameter removed from the spec keeps its value: nothing is regenerated.
    let patch = json!({ "spec": { "secretParameters": null } });
    env.plane.send("PATCH", &format!("{INSTANCES}/decl-a"), "application/merge-patch+json", &patch).unwrap();
    env.until("the spec without secretParameters applied", || {
        let instance = env.instance("decl-a")?;
        let applied = instance["status"]["observedGeneration"] == instance["metadata"]["generation"]
            && instance["status"]["state"] == "running"
            && instance["spec"].get("secretParameters").is_none();
        applied.then_some(())
    });
    assert_eq!(secret_value(&env, "decl-a", "secret-parameters", "redis-password").as_deref(), Some(new_password));

    // No converger (it stopped; the definition stays): hsm applies the plan itself and says so.
    converger.terminate();
    let (direct_out, direct_err) = create("decl-b", None);
    assert!(env.instance("decl-b").is_none(), "no Instance without a converger");
    assert_eq!(
        env.plane.object("Namespace", "", "decl-b").unwrap()["metadata"]["annotations"]["hsm.stratus.io/state"],
        "running"
    );
    assert!(
        direct_err.contains("no converger holds the Lease hsm-controller: hsm applies the change itself"),
        "{direct_err}"
    );
    assert!(direct_err.contains("StatefulSet redis ready 1/1"), "{direct_err}");
    // The same output either way.
    assert_eq!(shape(&declared_out, "decl-a"), shape(&direct_out, "decl-b"));
    assert!(declared_out.starts_with("instance decl-a created: "), "{declared_out}");

    // Both are listed: one with its Instance, one without.
    let (list, _) = env.ok(&["list-instances"], None);
    assert!(list.contains("decl-a ") && list.contains("decl-b "), "{list}");
    let (deleted, _) = env.ok(&["delete-instance", "decl-b", "-y"], None);
    assert_eq!(deleted, "instance decl-b deleted\n");

    // With a converger again: delete-instance deletes the Instance and waits for the
    // converger's finalizer; the namespace and hsm's Secret are gone with it.
    let converger = env.converger("second");
    let (deleted, _) = env.ok(&["delete-instance", "decl-a", "-y", "--timeout", "90s"], Some(&converger));
    assert_eq!(deleted, "instance decl-a deleted\n");
    assert!(env.instance("decl-a").is_none());
    assert!(env.plane.object("Namespace", "", "decl-a").is_none());
    assert!(env.plane.object("Secret", "kube-system", "hsm-instance-decl-a").is_none());
}

#[test]
fn through_the_instance_failures_timeouts_and_kept_volumes_end_as_they_do_directly() {
    let env = test_env!();
    let _one = ONE_CONVERGER.lock().unwrap_or_else(|e| e.into_inner());
    let converger = env.converger("failures");
    let stderr = |output: &Output| String::from_utf8_lossy(&output.stderr).into_owned();

    // A namespace hsm does not manage: refused before an Instance is written.
    env.plane
        .create(&json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "decl-taken" } }))
        .unwrap();
    let taken = env.hsm(&["create-instance", "stackato.hpe.redis", "--instance-id", "decl-taken"]);
    assert_eq!(taken.status.code(), Some(1), "{}", stderr(&taken));
    assert!(stderr(&taken).contains("namespace \"decl-taken\" exists and is not managed by hsm"), "{}", stderr(&taken));
    assert!(env.instance("decl-taken").is_none());

    // A failure the converger reports (a pre-flight job that fails): exit 1 with its reason and
    // message, as the direct way exits 1 naming the job.
    env.plane.behave("decl-cf", Behaviour::failing_job("sso-create-service"));
    let args = ["create-instance", "stackato.hpe.hcf", "--set", "DOMAIN=cf.example.com", "--instance-id", "decl-cf"];
    let failed = env.hsm(&[&args[..], &["--timeout", "90s"]].concat());
    assert_eq!(failed.status.code(), Some(1), "{}\ncontroller:\n{}", stderr(&failed), converger.log());
    assert!(
        stderr(&failed).contains("error: instance \"decl-cf\" failed (JobFailed): job \"sso-create-service\" failed"),
        "{}",
        stderr(&failed)
    );
    assert_eq!(env.instance("decl-cf").unwrap()["status"]["state"], "failed");
    let (deleted, _) = env.ok(&["delete-instance", "decl-cf", "-y", "--timeout", "90s"], Some(&converger));
    assert_eq!(deleted, "instance decl-cf deleted\n");
    assert!(env.instance("decl-cf").is_none());

    // Workloads that never become ready: the usual timeout (exit 1), naming the Instance.
    env.plane.behave("decl-slow", Behaviour::never_ready());
    let slow = env.hsm(&["create-instance", "stackato.hpe.redis", "--instance-id", "decl-slow", "--timeout", "5s"]);
    assert_eq!(slow.status.code(), Some(1), "{}", stderr(&slow));
    assert!(
        stderr(&slow).contains("error: timed out after 5s waiting for Instance decl-slow to run:"),
        "{}",
        stderr(&slow)
    );
    env.ok(&["delete-instance", "decl-slow", "-y", "--timeout", "90s"], Some(&converger));
    assert!(env.instance("decl-slow").is_none() && env.plane.object("Namespace", "", "decl-slow").is_none());

    // --keep-volumes: the Instance goes, the namespace stays with the volume claim.
    env.ok(
        &["create-instance", "stackato.hpe.redis", "--instance-id", "decl-keep", "--timeout", "90s"],
        Some(&converger),
    );
    assert!(env.instance("decl-keep").is_some());
    let (kept, _) =
        env.ok(&["delete-instance", "decl-keep", "-y", "--keep-volumes", "--timeout", "90s"], Some(&converger));
    assert!(kept.starts_with("instance decl-keep deleted; kept in namespace decl-keep: volume claims "), "{kept}");
    assert!(env.instance("decl-keep").is_none());
    let namespace = env.plane.object("Namespace", "", "decl-keep").unwrap();
    assert_eq!(namespace["metadata"]["annotations"]["hsm.stratus.io/state"], "deleted");
    assert!(!env.plane.list("PersistentVolumeClaim", "decl-keep").is_empty());
    // Without an Instance, the rest is deleted directly.
    let (deleted, _) = env.ok(&["delete-instance", "decl-keep", "-y", "--timeout", "90s"], Some(&converger));
    assert_eq!(deleted, "instance decl-keep deleted\n");
}
