//! Upgrades and reconfigurations as spec changes, carried out by the converger (`hsm
//! controller`) on a real Kubernetes control plane, and the SDL in force stored with the
//! instance. The converger runs as a child process on a catalog of this test's own (a copy in
//! a temporary folder, so a test may edit it); Instances are written with `kubectl`.
//! Every wait is a poll with a generous limit: the tests assert what happens, not how fast.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{condition, state, Converger, Env, ONE_CONVERGER};
use serde_json::Value;
use stratus_tests::cluster::Behaviour;

impl Env {
    /// The test's own catalog (a copy it may edit) and a converger on it, once the Instance
    /// definition is served.
    fn converger(&self) -> (PathBuf, Converger) {
        let catalog = upgrade_catalog(self.dir.path());
        let on_catalog = ["--catalog", catalog.to_str().unwrap()];
        let converger = Converger::start_with(&self.plane.kubeconfig(), self.dir.path(), "controller", &on_catalog);
        self.eventually(&converger, "the Instance definition", || {
            self.plane.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/instances.stratus.io")
        });
        (catalog, converger)
    }

    /// `kubectl apply` of `yaml`, retried while kubectl does not know the new kind yet.
    fn apply_ok(&self, converger: &Converger, yaml: &str) {
        self.eventually(converger, "kubectl apply of the Instance", || self.apply(yaml).status.success().then_some(()));
    }

    fn secret_value(&self, namespace: &str, key: &str) -> String {
        let secret = self.plane.object("Secret", namespace, "secret-parameters").expect("the instance has a Secret");
        let encoded = secret["data"][key].as_str().unwrap_or_else(|| panic!("no {key} in the Secret"));
        use base64::Engine as _;
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).unwrap()).unwrap()
    }

    /// The SDL stored with instance `id` (ConfigMap `hsm-sdl`).
    fn stored_sdl(&self, id: &str) -> Option<Value> {
        let config_map = self.plane.object("ConfigMap", id, "hsm-sdl")?;
        serde_json::from_str(config_map["data"]["sdl.json"].as_str()?).ok()
    }
}

/// Instance `name` running (Ready) at product version `version`.
fn running_at(env: &Env, name: &str, version: &str) -> Option<Value> {
    env.instance(name).filter(|i| {
        state(i) == "running"
            && condition(i, "Ready").is_some_and(|c| c["status"] == "True")
            && i["status"]["productVersion"] == version
            && i["status"]["observedGeneration"] == i["metadata"]["generation"]
    })
}

fn image(deployment: &Value) -> &str {
    deployment["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap_or_default()
}

fn instance_yaml(name: &str, version: &str, parameters: &[(&str, &str)]) -> String {
    let mut yaml = format!(
        "apiVersion: stratus.io/v1alpha1\nkind: Instance\nmetadata:\n  name: {name}\nspec:\n  serviceId: test.acme.app\n  productVersion: \"{version}\"\n"
    );
    if !parameters.is_empty() {
        yaml.push_str("  parameters:\n");
        for (key, value) in parameters {
            yaml.push_str(&format!("    {key}: \"{value}\"\n"));
        }
    }
    yaml
}

/// A catalog with one service, `test.acme.app`: version 1 has the components `web` and
/// `worker`, version 2 only `web` (a new image) and upgrades from 1, version 3 upgrades from 2
/// only. Parameters: `ALPHA` (changeable), `DOMAIN` (immutable), `app-password` (secret,
/// generated). Returns the catalog folder.
fn upgrade_catalog(dir: &Path) -> PathBuf {
    let catalog = dir.join("catalog");
    let component = |name: &str, tag: &str, port: u16| {
        format!(
            r#"{{"name": "{name}", "image": "docker.io/acme/{name}:{tag}", "min_RAM_mb": 64,
                "parameters": ["ALPHA", "DOMAIN", "app-password"],
                "service_ports": [{{"name": "http", "source_port": {port}, "target_port": 8080}}]}}"#
        )
    };
    let parameters = r#"[{"name": "ALPHA", "default": "0"},
        {"name": "DOMAIN", "default": "example.com", "immutable": true},
        {"name": "app-password", "secret": true, "required": true,
         "generator": {"id": "app-password", "generate": {"type": "Password", "length": 24}}}]"#;
    for (version, components, config) in [
        ("1", format!("{}, {}", component("web", "1.0", 80), component("worker", "1.0", 9090)), "{}"),
        ("2", component("web", "2.0", 80), r#"{"upgrade_from": [{"product_version": "1"}]}"#),
        ("3", component("web", "3.0", 80), r#"{"upgrade_from": [{"product_version": "2"}]}"#),
    ] {
        let folder = catalog.join(format!("services/acme/app/{version}/1.0.0"));
        std::fs::create_dir_all(folder.join("sdl")).unwrap();
        let sdl = format!(
            r#"{{"name": "app", "vendor": "acme", "product_version": "{version}", "sdl_version": "1.0.0",
                "components": [{components}], "parameters": {parameters}}}"#
        );
        std::fs::write(folder.join("sdl/sdl.json"), sdl).unwrap();
        std::fs::write(folder.join("config.json"), config).unwrap();
    }
    std::fs::write(catalog.join("config.json"), r#"{"name": "test"}"#).unwrap();
    std::fs::write(catalog.join("services/acme/app/config.json"), r#"{"description": "test app"}"#).unwrap();
    catalog
}

fn delete_instance(env: &Env, converger: &Converger, name: &str) {
    env.kubectl_ok(&["delete", "instance", name, "--wait=false"]);
    env.eventually(converger, "the Instance and its namespace gone", || {
        (env.instance(name).is_none() && env.plane.object("Namespace", "", name).is_none()).then_some(())
    });
}

#[test]
fn an_instance_upgraded_by_its_spec_runs_the_new_version_with_its_secrets_and_without_what_it_dropped() {
    let env = test_env!();
    let _one = ONE_CONVERGER.lock().unwrap_or_else(|e| e.into_inner());
    let (_catalog, converger) = env.converger();
    env.apply_ok(&converger, &instance_yaml("conv-up", "1", &[]));
    let instance = env.eventually(&converger, "conv-up running at 1", || running_at(&env, "conv-up", "1"));
    assert_eq!(instance["status"]["availableUpgrades"], serde_json::json!(["2/1.0.0"]), "{instance:#}");
    // `hsm get-instance` says so too, in its table and its JSON.
    let shown = env.hsm(&["get-instance", "conv-up"]);
    let table = String::from_utf8_lossy(&shown.stdout);
    assert!(table.contains("\nUPGRADES:   2/1.0.0 (hsm upgrade-instance)\n"), "{table}");
    let shown = env.hsm(&["get-instance", "conv-up", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(json["available_upgrades"], serde_json::json!(["2/1.0.0"]), "{json:#}");
    let password = env.secret_value("conv-up", "app-password");
    assert!(env.plane.object("Deployment", "conv-up", "worker").is_some());
    assert_eq!(env.stored_sdl("conv-up").unwrap()["product_version"], "1", "the SDL in force is stored");

    // The new pods do not get ready for now: the upgrade is seen under way.
    env.plane.behave("conv-up", Behaviour::never_ready());
    assert!(env.apply(&instance_yaml("conv-up", "2", &[])).status.success());
    let upgrading =
        env.eventually(&converger, "conv-up upgrading", || env.instance("conv-up").filter(|i| state(i) == "upgrading"));
    let progressing = condition(&upgrading, "Progressing").unwrap();
    assert_eq!((&progressing["status"], &progressing["reason"]), (&"True".into(), &"Upgrading".into()));
    assert!(
        progressing["message"].as_str().unwrap().starts_with("upgrading from 1/1.0.0 to 2/1.0.0; waiting for: "),
        "{progressing:#}"
    );
    env.plane.behave("conv-up", Behaviour::default());
    let instance = env.eventually(&converger, "conv-up running at 2", || running_at(&env, "conv-up", "2"));
    assert_eq!(instance["status"]["availableUpgrades"], serde_json::json!(["3/1.0.0"]), "{instance:#}");

    // The new version runs, with the same generated password; what 2 lacks is gone.
    assert_eq!(image(&env.plane.object("Deployment", "conv-up", "web").unwrap()), "docker.io/acme/web:2.0");
    assert_eq!(env.secret_value("conv-up", "app-password"), password, "generated secrets survive upgrades");
    assert!(env.plane.object("Deployment", "conv-up", "worker").is_none());
    assert!(env.plane.object("Service", "conv-up", "worker-int").is_none());
    assert_eq!(env.stored_sdl("conv-up").unwrap()["product_version"], "2", "the upgrade stored its SDL");
    let namespace = env.plane.object("Namespace", "", "conv-up").unwrap();
    assert_eq!(namespace["metadata"]["labels"]["app.kubernetes.io/version"], "2");
    assert_eq!(namespace["metadata"]["annotations"]["hsm.stratus.io/state"], "running");
    delete_instance(&env, &converger, "conv-up");
}

#[test]
fn a_refused_upgrade_fails_with_the_reason_and_leaves_the_old_version_running_until_the_spec_is_fixed() {
    let env = test_env!();
    let _one = ONE_CONVERGER.lock().unwrap_or_else(|e| e.into_inner());
    let (_catalog, converger) = env.converger();
    env.apply_ok(&converger, &instance_yaml("conv-refused", "1", &[]));
    env.eventually(&converger, "conv-refused running at 1", || running_at(&env, "conv-refused", "1"));
    let web = env.plane.object("Deployment", "conv-refused", "web").unwrap();

    // 3 upgrades from 2 only.
    assert!(env.apply(&instance_yaml("conv-refused", "3", &[])).status.success());
    let instance = env.eventually(&converger, "conv-refused failed", || {
        env.instance("conv-refused").filter(|i| state(i) == "failed" && i["status"]["observedGeneration"] == 2)
    });
    let ready = condition(&instance, "Ready").unwrap();
    assert_eq!(ready["reason"], "UpgradeRefused", "{instance:#}");
    assert_eq!(
        ready["message"],
        "test.acme.app 3/1.0.0 cannot be reached from 1/1.0.0: it upgrades from 2; the instance still runs \
         1/1.0.0, unchanged; set spec.productVersion/sdlVersion to one of the available upgrades (2/1.0.0) or \
         back to \"1\""
    );
    assert_eq!(instance["status"]["productVersion"], "1", "{instance:#}");
    assert_eq!(instance["status"]["availableUpgrades"], serde_json::json!(["2/1.0.0"]));
    // The old version runs untouched.
    let after = env.plane.object("Deployment", "conv-refused", "web").unwrap();
    assert_eq!(after["metadata"]["resourceVersion"], web["metadata"]["resourceVersion"], "web was not touched");
    assert!(env.plane.object("Deployment", "conv-refused", "worker").is_some());
    let namespace = env.plane.object("Namespace", "", "conv-refused").unwrap();
    assert_eq!(namespace["metadata"]["labels"]["app.kubernetes.io/version"], "1");

    // A version the catalog does not have: refused too, saying which there are.
    assert!(env.apply(&instance_yaml("conv-refused", "9", &[])).status.success());
    let instance = env.eventually(&converger, "conv-refused failed at generation 3", || {
        env.instance("conv-refused").filter(|i| state(i) == "failed" && i["status"]["observedGeneration"] == 3)
    });
    let ready = condition(&instance, "Ready").unwrap();
    assert_eq!(ready["reason"], "UnknownVersion", "{instance:#}");
    assert!(ready["message"].as_str().unwrap().contains("has no product version \"9\"; available: 1, 2, 3"));

    // The spec fixed: running again, still at 1.
    assert!(env.apply(&instance_yaml("conv-refused", "1", &[])).status.success());
    env.eventually(&converger, "conv-refused running at 1 again", || running_at(&env, "conv-refused", "1"));
    assert_eq!(image(&env.plane.object("Deployment", "conv-refused", "web").unwrap()), "docker.io/acme/web:1.0");
    delete_instance(&env, &converger, "conv-refused");
}

#[test]
fn a_changed_immutable_parameter_is_refused_and_a_mutable_one_reconfigures() {
    let env = test_env!();
    let _one = ONE_CONVERGER.lock().unwrap_or_else(|e| e.into_inner());
    let (_catalog, converger) = env.converger();
    env.apply_ok(&converger, &instance_yaml("conv-conf", "1", &[("DOMAIN", "a.example.com")]));
    env.eventually(&converger, "conv-conf running", || running_at(&env, "conv-conf", "1"));
    let password = env.secret_value("conv-conf", "app-password");

    assert!(env.apply(&instance_yaml("conv-conf", "1", &[("DOMAIN", "b.example.com")])).status.success());
    let instance = env.eventually(&converger, "conv-conf failed", || {
        env.instance("conv-conf").filter(|i| state(i) == "failed" && i["status"]["observedGeneration"] == 2)
    });
    let ready = condition(&instance, "Ready").unwrap();
    assert_eq!(ready["reason"], "ImmutableParameter", "{instance:#}");
    assert!(
        ready["message"].as_str().unwrap().starts_with(
            "immutable parameter cannot change: DOMAIN; the instance still runs 1/1.0.0, unchanged; set the parameter back"
        ),
        "{ready:#}"
    );
    let parameters = env.plane.object("ConfigMap", "conv-conf", "parameters").unwrap();
    assert_eq!(parameters["data"]["DOMAIN"], "a.example.com", "a refused change touches nothing");

    // DOMAIN back, ALPHA changed: reconfigured, as configure-instance does.
    let spec = [("DOMAIN", "a.example.com"), ("ALPHA", "7")];
    assert!(env.apply(&instance_yaml("conv-conf", "1", &spec)).status.success());
    env.eventually(&converger, "conv-conf running at generation 3", || {
        running_at(&env, "conv-conf", "1").filter(|i| i["status"]["observedGeneration"] == 3)
    });
    let parameters = env.plane.object("ConfigMap", "conv-conf", "parameters").unwrap();
    assert_eq!(parameters["data"]["ALPHA"], "7");
    let web = env.plane.object("Deployment", "conv-conf", "web").unwrap();
    let vars = web["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap();
    assert!(vars.iter().any(|e| e["name"] == "ALPHA" && e["value"] == "7"), "{vars:?}");
    assert_eq!(env.secret_value("conv-conf", "app-password"), password);
    delete_instance(&env, &converger, "conv-conf");
}

#[test]
fn editing_the_catalog_sdl_of_the_running_version_does_not_change_the_instance() {
    let env = test_env!();
    let _one = ONE_CONVERGER.lock().unwrap_or_else(|e| e.into_inner());
    let (catalog, converger) = env.converger();
    env.apply_ok(&converger, &instance_yaml("conv-pinned", "1", &[]));
    env.eventually(&converger, "conv-pinned running", || running_at(&env, "conv-pinned", "1"));

    // Someone edits version 1's SDL in place: another image, another port.
    let sdl_file = catalog.join("services/acme/app/1/1.0.0/sdl/sdl.json");
    let text = std::fs::read_to_string(&sdl_file).unwrap();
    let edited = text.replace("web:1.0", "web:1.5").replace(r#""source_port": 80,"#, r#""source_port": 81,"#);
    assert_ne!(edited, text);
    std::fs::write(&sdl_file, edited).unwrap();

    // A reconcile: the deleted Service comes back — as the stored SDL has it.
    let uid = env.plane.object("Service", "conv-pinned", "web-int").unwrap()["metadata"]["uid"].clone();
    env.kubectl_ok(&["delete", "service", "web-int", "-n", "conv-pinned", "--wait=false"]);
    let service = env.eventually(&converger, "the deleted Service back", || {
        env.plane.object("Service", "conv-pinned", "web-int").filter(|s| s["metadata"]["uid"] != uid)
    });
    assert_eq!(service["spec"]["ports"][0]["port"], 80, "{service:#}");
    env.eventually(&converger, "conv-pinned running again", || running_at(&env, "conv-pinned", "1"));
    let web = env.plane.object("Deployment", "conv-pinned", "web").unwrap();
    assert_eq!(image(&web), "docker.io/acme/web:1.0");
    assert_eq!(web["metadata"]["generation"], 1, "the workload did not roll");
    let stored = env.stored_sdl("conv-pinned").unwrap();
    assert_eq!(stored["components"][0]["image"], "docker.io/acme/web:1.0");
    delete_instance(&env, &converger, "conv-pinned");
}

/// `hsm` against the same cluster and catalog as the converger.
fn hsm(env: &Env, catalog: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--catalog", catalog.to_str().unwrap()];
    all.extend_from_slice(args);
    env.hsm(&all)
}

#[test]
fn hsm_upgrade_instance_with_a_converger_changes_the_spec_and_a_refused_upgrade_writes_nothing() {
    let env = test_env!();
    let _one = ONE_CONVERGER.lock().unwrap_or_else(|e| e.into_inner());
    let (catalog, converger) = env.converger();
    env.apply_ok(&converger, &instance_yaml("hsm-up", "1", &[]));
    env.eventually(&converger, "hsm-up running at 1", || running_at(&env, "hsm-up", "1"));
    let password = env.secret_value("hsm-up", "app-password");

    // The catalog allows 1 → 2 only: 3 is refused by hsm's own check, before anything is
    // written (exit 2, the generation unchanged).
    let generation = env.instance("hsm-up").unwrap()["metadata"]["generation"].clone();
    let refused = hsm(&env, &catalog, &["upgrade-instance", "hsm-up", "3"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("test.acme.app 3/1.0.0 cannot be reached from 1/1.0.0: it upgrades from 2"), "{stderr}");
    assert_eq!(env.instance("hsm-up").unwrap()["metadata"]["generation"], generation);

    // An allowed upgrade: hsm writes the Instance's spec and follows its status to running.
    let upgraded = hsm(&env, &catalog, &["upgrade-instance", "hsm-up", "2"]);
    let stderr = String::from_utf8_lossy(&upgraded.stderr);
    assert!(upgraded.status.success(), "{stderr}\ncontroller:\n{}", converger.log());
    assert!(stderr.contains("Instance hsm-up written"), "the converger did it: {stderr}");
    let instance = env.instance("hsm-up").unwrap();
    assert_eq!(instance["spec"]["productVersion"], "2", "{instance:#}");
    assert_eq!(instance["status"]["productVersion"], "2", "hsm returned once the converger ran it: {instance:#}");
    assert_eq!(instance["status"]["state"], "running");
    assert_eq!(image(&env.plane.object("Deployment", "hsm-up", "web").unwrap()), "docker.io/acme/web:2.0");
    assert!(env.plane.object("Deployment", "hsm-up", "worker").is_none());
    assert_eq!(env.secret_value("hsm-up", "app-password"), password);
    delete_instance(&env, &converger, "hsm-up");
}
