//! The converger (`hsm controller`) at work on a real Kubernetes control plane: drift of
//! every kind of object it owns is repaired, a converger killed with SIGKILL in the middle
//! of creating Instances converges when started again (no duplicates, no lock left behind,
//! generated secrets unchanged), a hundred Instances created at once all reach Ready, and
//! ready Instances with nothing changing cost no API writes. Every wait is a poll with a
//! generous limit: the tests assert what happens, not how fast (times are printed).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{condition, http_get, is_running, metric, running, secret_data, Converger, Env, LIMIT, ONE_CONVERGER};
use serde_json::Value;

/// The controller's own Lease: renewing it is the one write a leader makes while idle.
const LEADER_LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/hsm-controller";

fn uid(object: &Value) -> Value {
    object["metadata"]["uid"].clone()
}

/// A catalog with one service, `test.acme.shop`, with one of every kind the converger plans
/// (hcp has them too, but grants permissions, which the converger refuses): `web` a
/// Deployment with a public Service, `db` a StatefulSet (it has stable identity) with its
/// Services; parameters in a ConfigMap and a generated password in the Secret. Returns the
/// catalog folder.
fn drift_catalog(dir: &Path) -> PathBuf {
    let catalog = dir.join("catalog");
    let folder = catalog.join("services/acme/shop/1/1.0.0");
    std::fs::create_dir_all(folder.join("sdl")).unwrap();
    let sdl = r#"{"name": "shop", "vendor": "acme", "product_version": "1", "sdl_version": "1.0.0",
        "components": [
          {"name": "web", "image": "docker.io/acme/web:1.0", "min_RAM_mb": 64,
           "parameters": ["GREETING", "shop-password"],
           "service_ports": [{"name": "http", "source_port": 80, "target_port": 8080, "public": true}]},
          {"name": "db", "image": "docker.io/acme/db:1.0", "min_RAM_mb": 64, "stable_identity": true,
           "parameters": ["shop-password"],
           "service_ports": [{"name": "sql", "source_port": 5432, "target_port": 5432}]}],
        "parameters": [
          {"name": "GREETING", "default": "hello"},
          {"name": "shop-password", "secret": true, "required": true,
           "generator": {"id": "shop-password", "generate": {"type": "Password", "length": 24}}}]}"#;
    std::fs::write(folder.join("sdl/sdl.json"), sdl).unwrap();
    std::fs::write(folder.join("config.json"), "{}").unwrap();
    std::fs::write(catalog.join("config.json"), r#"{"name": "test"}"#).unwrap();
    std::fs::write(catalog.join("services/acme/shop/config.json"), r#"{"description": "test shop"}"#).unwrap();
    catalog
}

const SHOP: &str = r#"
apiVersion: stratus.io/v1alpha1
kind: Instance
metadata:
  name: drift-shop
spec:
  serviceId: test.acme.shop
"#;

#[test]
fn drift_of_every_owned_kind_is_repaired() {
    let env = test_env!();
    let _one = ONE_CONVERGER.lock().unwrap_or_else(|e| e.into_inner());
    let catalog = drift_catalog(env.dir.path());
    let on_catalog = ["--catalog", catalog.to_str().unwrap()];
    let converger = Converger::start_with(&env.plane.kubeconfig(), env.dir.path(), "controller", &on_catalog);
    let id = "drift-shop";
    env.eventually(&converger, "kubectl apply of the Instance", || env.apply(SHOP).status.success().then_some(()));
    env.eventually_within(3 * LIMIT, &converger, "drift-shop running", || running(&env, id));
    let generated = secret_data(&env.plane.object("Secret", id, "secret-parameters").unwrap());

    // (kind, name): each deleted in turn comes back (a new object: another uid).
    let deleted = [
        ("Deployment", "web"),
        ("StatefulSet", "db"),
        ("Service", "web"),
        ("Service", "db-int"),
        ("ConfigMap", "hsm-sdl"),
        ("ConfigMap", "parameters"),
        ("NetworkPolicy", "instance-isolation"),
        ("Secret", "secret-parameters"),
        ("Secret", "hsm-record"),
    ];
    for (kind, name) in deleted {
        let before = env.plane.object(kind, id, name).unwrap_or_else(|| panic!("{kind} {name} is planned"));
        let started = Instant::now();
        env.kubectl_ok(&["delete", &kind.to_lowercase(), name, "-n", id, "--wait=false"]);
        env.eventually(&converger, &format!("the deleted {kind} {name} back"), || {
            env.plane.object(kind, id, name).filter(|o| uid(o) != uid(&before))
        });
        eprintln!("deleted {kind} {name}: back after {:?}", started.elapsed());
        // Ready again, so the next drift starts from an instance the converger left alone.
        env.eventually(&converger, &format!("{id} running after the {kind}"), || running(&env, id));
    }
    // The recreated Secret holds what the instance's record holds: the same generated values,
    // not new ones.
    let secret = secret_data(&env.plane.object("Secret", id, "secret-parameters").unwrap());
    assert_eq!(secret, generated, "the recreated secret-parameters has other values");
    assert_eq!(secret_data(&env.plane.object("Secret", id, "hsm-record").unwrap()), generated);

    // A generated value changed by hand is put back from the record.
    let key =
        generated.keys().find(|k| k.as_str() != "hsm-generated.json").expect("a generated secret parameter").clone();
    let patch = serde_json::json!({"stringData": {&key: "changed-by-hand"}}).to_string();
    env.kubectl_ok(&["patch", "secret", "secret-parameters", "-n", id, "--type", "merge", "-p", &patch]);
    env.eventually(&converger, &format!("{key} restored in secret-parameters"), || {
        let now = secret_data(&env.plane.object("Secret", id, "secret-parameters")?);
        (now == generated).then_some(())
    });
    env.eventually(&converger, &format!("{id} running after the changed secret"), || running(&env, id));

    // (kind, name, declared replicas): hand-scaled, each returns to what is declared.
    for (kind, name, declared) in [("Deployment", "web", 1), ("StatefulSet", "db", 1)] {
        let resource = format!("{}/{name}", kind.to_lowercase());
        env.kubectl_ok(&["scale", &resource, "-n", id, "--replicas=3"]);
        env.eventually(&converger, &format!("{kind} {name} back to {declared} replica"), || {
            env.plane.object(kind, id, name).filter(|o| o["spec"]["replicas"] == declared)
        });
        env.eventually(&converger, &format!("{id} running after scaling the {kind}"), || running(&env, id));
    }

    env.kubectl_ok(&["delete", "instance", id, "--wait=false"]);
    env.eventually(&converger, "the Instance gone", || env.instance(id).is_none().then_some(()));
}

fn mysql_instances(prefix: &str, count: usize) -> (Vec<String>, String) {
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i:03}")).collect();
    let yaml = names
        .iter()
        .map(|name| {
            format!(
                "apiVersion: stratus.io/v1alpha1\nkind: Instance\nmetadata:\n  name: {name}\n\
                 spec:\n  serviceId: stackato.hpe.mysql\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n");
    (names, yaml)
}

/// Deletes the Instances `names` and waits until they are gone.
fn delete_all(env: &Env, converger: &Converger, names: &[String], limit: Duration) {
    let mut args = vec!["delete", "instance", "--wait=false"];
    args.extend(names.iter().map(String::as_str));
    env.kubectl_ok(&args);
    env.eventually_within(limit, converger, "the Instances gone", || {
        names.iter().all(|n| env.instance(n).is_none()).then_some(())
    });
}

#[test]
fn a_converger_killed_mid_reconcile_converges_after_a_restart_with_no_duplicate() {
    let env = test_env!();
    let _one = ONE_CONVERGER.lock().unwrap_or_else(|e| e.into_inner());
    let mut first = Converger::start(&env.plane.kubeconfig(), env.dir.path());
    let (names, yaml) = mysql_instances("kill", 10);
    env.eventually(&first, "kubectl apply of the Instances", || env.apply(&yaml).status.success().then_some(()));
    // Killed once a few instances hold generated secrets: the rest are being created.
    let before: BTreeMap<String, BTreeMap<String, Vec<u8>>> = env.eventually(&first, "three generated Secrets", || {
        let secrets: BTreeMap<_, _> = names
            .iter()
            .filter_map(|n| Some((n.clone(), secret_data(&env.plane.object("Secret", n, "secret-parameters")?))))
            .collect();
        (secrets.len() >= 3).then_some(secrets)
    });
    first.kill();
    let ready = names.iter().filter(|n| running(&env, n).is_some()).count();
    eprintln!("killed with {} of 10 secrets written and {ready} of 10 running", before.len());

    let second = Converger::start_with(&env.plane.kubeconfig(), env.dir.path(), "restarted", &[]);
    for name in &names {
        env.eventually_within(2 * LIMIT, &second, &format!("{name} running"), || running(&env, name));
    }
    let expected = [
        "ConfigMap/hsm-sdl",
        "ConfigMap/parameters",
        "Namespace/NAME",
        "NetworkPolicy/instance-isolation",
        "Secret/hsm-record",
        "Secret/secret-parameters",
        "Service/mysql-headless",
        "Service/mysql-int",
        "StatefulSet/mysql",
    ];
    for name in &names {
        // One namespace per Instance.
        let path = format!("/api/v1/namespaces?labelSelector=app.kubernetes.io/instance%3D{name}");
        let namespaces = env.plane.get(&path).unwrap()["items"].as_array().unwrap().len();
        assert_eq!(namespaces, 1, "{name}");
        // One set of objects, and no operation left holding it.
        env.eventually(&second, &format!("{name}'s operation lock released"), || {
            let objects: Vec<String> = env.plane.managed_by("hsm", name).into_iter().map(|(o, _)| o).collect();
            let namespace = env.plane.object("Namespace", "", name)?;
            let operation = &namespace["metadata"]["annotations"]["hsm.stratus.io/operation"];
            (!objects.iter().any(|o| o.starts_with("Lease/")) && operation.is_null()).then_some(())
        });
        let objects: Vec<String> = env.plane.managed_by("hsm", name).into_iter().map(|(o, _)| o).collect();
        let wanted: Vec<String> = expected.iter().map(|o| o.replace("NAME", name)).collect();
        assert_eq!(objects, wanted, "{name}");
        assert_eq!(env.plane.list("StatefulSet", name).len(), 1, "{name}");
    }
    // What was generated before the kill is what the instances keep.
    for (name, secret) in &before {
        let after = secret_data(&env.plane.object("Secret", name, "secret-parameters").unwrap());
        assert_eq!(&after, secret, "{name}'s generated secret changed");
    }
    delete_all(&env, &second, &names, 3 * LIMIT);
}

#[test]
fn a_hundred_instances_created_at_once_reach_ready_then_cost_no_writes_while_idle() {
    let env = test_env!();
    let _one = ONE_CONVERGER.lock().unwrap_or_else(|e| e.into_inner());
    // Through the fault proxy (no faults), which counts the converger's requests; a resync of
    // 5 s so that every instance is looked at many times while idle.
    let proxy = env.plane.proxy();
    let kubeconfig = env.dir.path().join("proxy-kubeconfig");
    proxy.write_kubeconfig(&kubeconfig).unwrap();
    let args = ["--workers", "16", "--resync", "5s", "--health-addr", "127.0.0.1:0"];
    let converger = Converger::start_with(&kubeconfig, env.dir.path(), "many", &args);
    let addr = env.eventually(&converger, "the health address", || converger.health_addr());
    let metrics = || http_get(&addr, "/metrics").1;
    let unchanged = || metric(&metrics(), "hsm_controller_reconciles_unchanged_total").unwrap_or(0);
    env.eventually(&converger, "the Instance definition", || {
        env.plane.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/instances.stratus.io")
    });

    let (names, yaml) = mysql_instances("many", 100);
    let started = Instant::now();
    env.eventually(&converger, "kubectl apply of 100 Instances", || env.apply(&yaml).status.success().then_some(()));
    env.eventually_within(10 * LIMIT, &converger, "100 Instances running", || {
        let instances = env.instances();
        let ready =
            instances.iter().filter(|i| names.iter().any(|n| i["metadata"]["name"] == *n)).filter(|i| is_running(i));
        (ready.count() == names.len()).then_some(())
    });
    let (requests, writes, discovery) = proxy.counts();
    eprintln!(
        "100 Instances running {:?} after one kubectl apply; the converger made {} requests ({} writes) so far",
        started.elapsed(),
        requests - discovery,
        writes
    );
    for name in &names {
        let instance = env.instance(name).unwrap();
        assert_eq!(condition(&instance, "Ready").unwrap()["status"], "True", "{name}");
    }

    // Settled: every instance found unchanged at least twice (its own echoes are done).
    let settled = unchanged();
    env.eventually(&converger, "every instance looked at and left alone", || {
        (unchanged() >= settled + 2 * names.len() as u64).then_some(())
    });
    let (from, looked) = (proxy.requests().len(), unchanged());
    std::thread::sleep(Duration::from_secs(60));
    let log = proxy.requests();
    let idle_writes: Vec<&(String, String)> = log[from..]
        .iter()
        .filter(|(m, p)| !matches!(m.as_str(), "GET" | "HEAD") && p.split('?').next() != Some(LEADER_LEASE))
        .collect();
    let looked = unchanged() - looked;
    eprintln!(
        "idle 60 s: {} requests, {} writes besides the leader's Lease, {looked} reconciles that wrote nothing",
        log.len() - from,
        idle_writes.len()
    );
    assert!(idle_writes.is_empty(), "writes while idle: {idle_writes:?}");
    assert!(looked >= names.len() as u64, "only {looked} reconciles while idle: the test saw no resync");

    delete_all(&env, &converger, &names, 10 * LIMIT);
}
