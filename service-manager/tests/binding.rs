//! Bindings on a real Kubernetes control plane (`stratus-tests`' harness; the node agent says
//! what the bind and unbind Jobs' pods do): the real `hsm` binary creates a mysql instance
//! and binds it, and the test reads what landed on the cluster — the binding Secret's layout,
//! the bind Job reading its credentials from that Secret, the unbind Job reading a copy it
//! owns — and that no password reaches hsm's output except where asked for. One instance for
//! the whole lifecycle keeps the file cheap.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use stratus_tests::cluster::{Behaviour, ControlPlane, Proxy};

struct Env {
    plane: &'static ControlPlane,
    _proxy: Arc<Proxy>,
    dir: tempfile::TempDir,
}

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
        Some(Env { plane, _proxy: proxy, dir })
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn hsm(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_hsm"))
            .args(args)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .env_remove("HSM_CATALOG")
            .env_remove("KUBECONFIG")
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> Output {
        let output = self.hsm(args);
        assert!(
            output.status.success(),
            "hsm {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.plane.logs(10)
        );
        output
    }

    fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        self.plane.object(kind, namespace, name)
    }

    /// The instance's own objects hsm wrote (binding objects left out), with resourceVersions.
    fn instance_versions(&self, namespace: &str) -> Vec<(String, String)> {
        let binding = |name: &str| {
            let name = name.split_once('/').map_or(name, |(_, n)| n);
            name.starts_with("binding-") || name.starts_with("hsm-bind-") || name.starts_with("hsm-unbind-")
        };
        self.plane.managed_by("hsm", namespace).into_iter().filter(|(name, _)| !binding(name)).collect()
    }

    fn bindings(&self, instance: &str) -> Vec<Value> {
        let out = self.ok(&["list-bindings", instance, "-o", "json"]);
        serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
    }

    /// Polls `list-bindings` until `done` holds (the node agent acts on its own schedule).
    fn until(&self, instance: &str, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let bindings = self.bindings(instance);
            if done(&bindings) {
                return bindings;
            }
            assert!(Instant::now() < deadline, "{what}: still {bindings:?}\n{}", self.plane.logs(20));
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn decode(value: &Value) -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(value.as_str().expect("a string")).unwrap();
    String::from_utf8(bytes).unwrap()
}

/// The env of a Job's one container.
fn job_env(job: &Value) -> Vec<Value> {
    job["spec"]["template"]["spec"]["containers"][0]["env"].as_array().cloned().unwrap_or_default()
}

fn secret_ref(env: &[Value], name: &str) -> Option<(String, String)> {
    let var = env.iter().find(|e| e["name"] == name)?;
    let selector = &var["valueFrom"]["secretKeyRef"];
    Some((selector["name"].as_str()?.to_string(), selector["key"].as_str()?.to_string()))
}

#[test]
fn a_mysql_binding_from_creation_to_deletion() {
    let env = test_env!();
    let id = "bind-db";
    env.ok(&["create-instance", "stackato.hpe.mysql", "--instance-id", id]);
    let before = env.instance_versions(id);

    // The bind Job's pod never finishes: the binding stays creating, with its Secret written.
    env.plane.behave(id, Behaviour::never_ready());
    let waiting = env.hsm(&["create-binding", id, "b1", "--timeout", "1s"]);
    assert_eq!(waiting.status.code(), Some(1), "{}", text(&waiting));
    assert!(text(&waiting).contains("binding b1"), "{}", text(&waiting));
    let listed = env.bindings(id);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0]["id"].as_str(), listed[0]["state"].as_str()), (Some("b1"), Some("creating")));

    let secret = env.object("Secret", id, "binding-b1").expect("the binding Secret");
    assert_eq!(secret["type"], "servicebinding.io/mysql");
    assert_eq!(secret["metadata"]["labels"]["hsm.stratus.io/binding"], "b1");
    assert_eq!(secret["metadata"]["labels"]["app.kubernetes.io/instance"], id);
    assert_ne!(secret["metadata"]["labels"]["app.kubernetes.io/managed-by"], "hsm", "the converger must not see it");
    let data = secret["data"].as_object().unwrap();
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(keys, ["database", "host", "jdbcUrl", "password", "port", "provider", "type", "uri", "username"]);
    let value = |key: &str| decode(&data[key]);
    assert_eq!(value("type"), "mysql");
    assert_eq!(value("provider"), "hpe");
    assert_eq!(value("host"), format!("mysql-int.{id}.svc"));
    assert_eq!(value("port"), "3306");
    assert_eq!(value("database"), "hsm");
    let (username, password) = (value("username"), value("password"));
    assert!(username.len() == 17 && username.starts_with('b'), "{username}");
    assert!(username[1..].chars().all(|c| c.is_ascii_hexdigit()), "{username}");
    assert_eq!(password.len(), 32);
    assert_eq!(value("uri"), format!("mysql://{username}:{password}@mysql-int.{id}.svc:3306/hsm"));
    assert_ne!(password, decode(&env.object("Secret", id, "secret-parameters").unwrap()["data"]["root-password"]));

    // The bind Job takes the credentials from the binding Secret, never as literals.
    let job = env.object("Job", id, "hsm-bind-b1").expect("the bind Job");
    assert!(!job.to_string().contains(&password), "the password is in the Job's spec");
    let bind_env = job_env(&job);
    assert_eq!(secret_ref(&bind_env, "BINDING_USERNAME"), Some(("binding-b1".into(), "username".into())));
    assert_eq!(secret_ref(&bind_env, "BINDING_PASSWORD"), Some(("binding-b1".into(), "password".into())));
    assert!(job["metadata"]["ownerReferences"][0]["name"] == "binding-b1", "{job}");
    let script = job["spec"]["template"]["spec"]["containers"][0]["command"][2].as_str().unwrap();
    assert!(script.contains("CREATE USER IF NOT EXISTS '$BINDING_USERNAME'"), "{script}");

    // The pod finishes: the binding is ready, and asking again answers the same binding.
    env.plane.behave(id, Behaviour::default());
    env.until(id, "the bind Job completes", |b| b.len() == 1 && b[0]["state"] == "ready");
    let again = env.ok(&["create-binding", id, "b1"]);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        format!("binding b1 of instance {id}: ready (Secret binding-b1 in namespace {id})\n")
    );
    assert_eq!(decode(&env.object("Secret", id, "binding-b1").unwrap()["data"]["password"]), password);

    // A second binding with a generated id has a user and a password of its own.
    let second = env.ok(&["create-binding", id, "-o", "json"]);
    let second: Value = serde_json::from_slice(&second.stdout).unwrap();
    let second_id = second["id"].as_str().unwrap().to_string();
    assert_eq!(second_id.len(), 36, "{second}");
    assert_eq!(second["state"], "ready");
    let second_secret = env.object("Secret", id, &format!("binding-{second_id}")).unwrap();
    assert_ne!(decode(&second_secret["data"]["username"]), username);
    assert_ne!(decode(&second_secret["data"]["password"]), password);

    // Listings and create never show a credential; get-credentials does, as asked.
    let list = env.ok(&["list-bindings", id]);
    let list_json = env.ok(&["list-bindings", id, "-o", "yaml"]);
    for output in [&waiting, &again, &list, &list_json] {
        assert!(!text(output).contains(&password), "a password in {}", text(output));
    }
    assert!(String::from_utf8_lossy(&list.stdout).starts_with("BINDING"), "{}", text(&list));
    let credentials = env.ok(&["get-credentials", id, "--binding", "b1", "-o", "json"]);
    let credentials: Value = serde_json::from_slice(&credentials.stdout).unwrap();
    assert_eq!(credentials["binding_id"], "b1");
    assert_eq!(credentials["values"]["password"], password.as_str());
    assert_eq!(credentials["values"]["username"], username.as_str());

    // The instance's own objects are untouched, and re-running its create changes nothing
    // and removes no binding.
    assert_eq!(env.instance_versions(id), before, "bindings changed the instance's objects");
    env.ok(&["create-instance", "stackato.hpe.mysql", "--instance-id", id]);
    assert_eq!(env.instance_versions(id), before);
    assert!(env.object("Secret", id, "binding-b1").is_some());

    // Deleting: the Secret goes at once; the unbind Job reads a copy it owns.
    env.plane.behave(id, Behaviour::never_ready());
    let deleting = env.hsm(&["delete-binding", id, "b1", "--timeout", "1s"]);
    assert_eq!(deleting.status.code(), Some(1), "{}", text(&deleting));
    assert!(env.object("Secret", id, "binding-b1").is_none(), "the binding Secret is deleted at once");
    let unbind = env.object("Job", id, "hsm-unbind-b1").expect("the unbind Job");
    assert!(!unbind.to_string().contains(&password));
    assert_eq!(unbind["spec"]["ttlSecondsAfterFinished"], 300);
    let (copy_name, key) = secret_ref(&job_env(&unbind), "BINDING_PASSWORD").expect("a secretKeyRef");
    assert!(copy_name.starts_with("hsm-unbind-b1-") && key == "password", "{copy_name} {key}");
    let copy = env.object("Secret", id, &copy_name).expect("the unbind Job's copy");
    assert_eq!(copy["metadata"]["ownerReferences"][0]["kind"], "Job");
    assert_eq!(copy["metadata"]["ownerReferences"][0]["uid"], unbind["metadata"]["uid"]);
    assert_eq!(decode(&copy["data"]["username"]), username);
    let states: Vec<(String, String)> = env
        .bindings(id)
        .iter()
        .map(|b| (b["id"].as_str().unwrap().to_string(), b["state"].as_str().unwrap().to_string()))
        .collect();
    assert!(states.contains(&("b1".to_string(), "deleting".to_string())), "{states:?}");
    let gone = env.hsm(&["get-credentials", id, "--binding", "b1"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(text(&gone).contains("binding \"b1\" of instance \"bind-db\" not found"), "{}", text(&gone));

    // The unbind Job finishes: the binding is gone.
    env.plane.behave(id, Behaviour::default());
    env.until(id, "the unbind Job completes", |b| b.iter().all(|b| b["id"] != "b1"));
    // The same id bound and deleted again runs an unbind Job of its own (the finished one,
    // kept for its TTL, is replaced).
    let first_unbind = env.object("Job", id, "hsm-unbind-b1").expect("the finished unbind Job, kept for its TTL");
    env.ok(&["create-binding", id, "b1"]);
    env.plane.behave(id, Behaviour::never_ready());
    let deleting = env.hsm(&["delete-binding", id, "b1", "--timeout", "1s"]);
    assert_eq!(deleting.status.code(), Some(1), "{}", text(&deleting));
    let second_unbind = env.object("Job", id, "hsm-unbind-b1").expect("a new unbind Job");
    assert_ne!(second_unbind["metadata"]["uid"], first_unbind["metadata"]["uid"]);
    env.plane.behave(id, Behaviour::default());
    env.until(id, "the second unbind Job completes", |b| b.iter().all(|b| b["id"] != "b1"));

    let out = env.ok(&["delete-binding", id, &second_id]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleting"), "{}", text(&out));
    assert!(env.bindings(id).is_empty());
    let missing = env.hsm(&["delete-binding", id, "b1"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn bindings_of_what_cannot_be_bound_are_refused() {
    let env = test_env!();
    let unknown = env.hsm(&["create-binding", "no-such-instance", "b1"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&unknown.stderr), "error: instance \"no-such-instance\" not found\n");
    let listed = env.hsm(&["list-bindings", "no-such-instance"]);
    assert_eq!(listed.status.code(), Some(1));

    let bad = env.hsm(&["create-binding", "x", "Not_An_Id"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("not a binding id"), "{}", text(&bad));

    // A service without a bindings section.
    let catalog = env.dir.path().join("catalog");
    let version = catalog.join("services/acme/app/1/1.0.0");
    std::fs::create_dir_all(version.join("sdl")).unwrap();
    let sdl = r#"{"name": "app", "vendor": "acme", "product_version": "1", "sdl_version": "1.0.0",
        "components": [{"name": "web", "image": "docker.io/acme/web:1.0", "min_RAM_mb": 64,
            "service_ports": [{"name": "http", "source_port": 80, "target_port": 8080}]}]}"#;
    std::fs::write(version.join("sdl/sdl.json"), sdl).unwrap();
    std::fs::write(version.join("config.json"), "{}").unwrap();
    std::fs::write(catalog.join("config.json"), r#"{"name": "test"}"#).unwrap();
    std::fs::write(catalog.join("services/acme/app/config.json"), r#"{"description": "test app"}"#).unwrap();
    env.ok(&["--catalog", catalog.to_str().unwrap(), "create-instance", "test.acme.app", "--instance-id", "plain"]);
    let refused = env.hsm(&["create-binding", "plain", "b1"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr),
        "error: instance \"plain\" cannot be bound: its service test.acme.app has no bindings section\n"
    );
    assert!(env.object("Secret", "plain", "binding-b1").is_none(), "nothing half-created");
}
