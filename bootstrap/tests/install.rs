//! `bootstrap install` end to end on the `local` provider: five "machines" (a throw-away sshd
//! on 127.0.0.1-4, Terraform's SSH provisioners), the install killed in the middle of the
//! apply, then a re-run that finishes the machines, waits for the Kubernetes API (a real
//! control plane — etcd, kube-apiserver, controller manager, scheduler — started only once
//! bootstrap is waiting, on the port bootstrap was told, with certificates from the cluster
//! CA bootstrap made, so bootstrap's own admin kubeconfig works), installs flannel, the
//! local-path provisioner, the storage classes and `hcp`, and writes the report and a 0600
//! credentials file. A further run skips every finished phase and changes nothing; removing a
//! node drains it first (a real eviction); uninstall leaves nothing. The harness's node agent
//! stands in for the machines' kubelets.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use stratus_tests::cluster::{Behaviour, Behaviours, Ca, ControlPlane, Options};

fn install(input: &Path, state: &Path, extra: &[&str]) -> Command {
    let timeout: &[&str] = if extra.contains(&"--timeout") { &[] } else { &["--timeout", "60"] };
    let mut command = common::bootstrap(&["install"], input, state);
    command.args(timeout).args(extra);
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The cluster's control plane, as `kubeadm init` would make it on the first master: the
/// CA from bootstrap's state, the API on `port`, one kubelet (node agent node) per machine.
fn control_plane(state: &Path, port: u16, kubelets: &[&str], behaviours: &Behaviours) -> ControlPlane {
    let pki: Value = serde_json::from_str(&std::fs::read_to_string(state.join("pki.json")).unwrap()).unwrap();
    let ca = Ca::from_pem(pki["ca_certificate"].as_str().unwrap(), pki["ca_key"].as_str().unwrap());
    let options = Options {
        ca: Some(ca),
        api_port: Some(port),
        nodes: kubelets.iter().map(|k| k.to_string()).collect(),
        behaviours: behaviours.clone(),
        ..Options::default()
    };
    ControlPlane::start(options).unwrap()
}

/// The platform's objects as (`namespace/Kind/name`, resourceVersion), the storage classes
/// included: what a re-run must leave as it is.
fn platform_versions(plane: &ControlPlane) -> Vec<(String, String)> {
    let mut versions: Vec<(String, String)> = ["kube-flannel", "local-path-storage", "glusterfs-provisioner", "hcp"]
        .iter()
        .flat_map(|ns| plane.managed_by("hsm", ns).into_iter().map(move |(o, v)| (format!("{ns}/{o}"), v)))
        .collect();
    for class in plane.list("StorageClass", "") {
        let name = class["metadata"]["name"].as_str().unwrap().to_string();
        versions.push((format!("StorageClass/{name}"), class["metadata"]["resourceVersion"].to_string()));
    }
    versions
}

/// Polls `done` for up to 60 s.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(60), "{what} never happened");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn install_resumes_after_a_kill_reports_and_changes_nothing_when_run_again() {
    if !ControlPlane::available() {
        return;
    }
    let sshd = common::sshd();
    let work = tempfile::tempdir().unwrap();
    let machines = work.path().join("machines");
    let state = work.path().join("state");
    let port = free_port();
    let input = common::local_properties(
        &sshd,
        &machines,
        &format!("Local.GlusterFSAddresses = 127.0.0.4, 127.0.0.5\nLocal.APIPort = {port}\n"),
    );

    let after_kill = common::kill_mid_apply(install(&input, &state, &["--yes"]), &state);
    assert!(after_kill < 5, "the kill came too late to test anything ({after_kill} resources done)");
    let record: Value = serde_json::from_str(&std::fs::read_to_string(state.join("state.json")).unwrap()).unwrap();
    let provision = record["phases"].as_array().unwrap().iter().find(|p| p["name"] == "provision").unwrap();
    assert_eq!(provision["state"], "running", "the killed phase stays recorded as unfinished");

    // Run again; start the control plane only once bootstrap is waiting for it, with flannel's
    // pods never starting: the network phase fails after its timeout, saying what waits. (The
    // timeout also bounds the wait for the API: it covers the control plane's start.)
    let kubelets = ["fx-master-0", "fx-node-0", "fx-node-1"];
    let behaviours = Behaviours::default();
    behaviours.set("kube-flannel", Behaviour::never_ready());
    let mut child = install(&input, &state, &["--yes", "--timeout", "40"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr_lines = Vec::new();
    let mut starting = None;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if starting.is_none() && line.contains("waiting for the Kubernetes API at") {
            let (state, behaviours) = (state.clone(), behaviours.clone());
            starting = Some(std::thread::spawn(move || control_plane(&state, port, &kubelets, &behaviours)));
        }
        stderr_lines.push(line);
    }
    let failed = child.wait_with_output().unwrap();
    let stderr = stderr_lines.join("\n");
    let plane = starting.expect("bootstrap waited for the API").join().unwrap();
    assert_eq!(failed.status.code(), Some(1), "{stderr}\n{}", plane.logs(10));
    // The machines: only what the kill left undone.
    let rest = 5 - after_kill;
    assert!(stderr.contains(&format!("{rest}/{rest} ready terraform_data.machine")), "{stderr}");
    assert_eq!(common::state_list(&state).len(), 5);
    assert!(stderr.contains(&format!("waiting for the Kubernetes API at https://127.0.0.1:{port}/")), "{stderr}");
    assert!(stderr.contains("] network: FAILED in"), "{stderr}");
    assert!(
        stderr.contains("timed out after 40s waiting for network (pod network: flannel on 10.244.0.0/16)")
            && stderr.contains("DaemonSet kube-flannel-ds: 0/3 ready")
            && stderr
                .contains("(phase network failed; fix the cause and run the same command again to continue from it)"),
        "{stderr}"
    );

    // The cause fixed, the same command continues from the network phase.
    behaviours.set("kube-flannel", Behaviour::default());
    let output = install(&input, &state, &["--yes"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stderr}\n{stdout}\n{}", plane.logs(10));
    assert!(stderr.contains("provision: done in an earlier run, skipped"), "{stderr}");
    for phase in ["api", "network", "cloud", "storage", "platform", "report"] {
        assert!(stderr.contains(&format!("] {phase}: done in")), "phase {phase} did not finish:\n{stderr}");
    }
    assert!(stderr.contains("network: done in") && stderr.contains("3 node(s) Ready"), "{stderr}");

    // The platform in the cluster.
    let flannel = plane.object("DaemonSet", "kube-flannel", "kube-flannel-ds").expect("flannel is installed");
    assert_eq!(flannel["status"]["numberReady"], 3);
    let config = plane.object("ConfigMap", "kube-flannel", "kube-flannel-cfg").unwrap();
    assert!(config["data"]["net-conf.json"].as_str().unwrap().contains("\"Network\": \"10.244.0.0/16\""));
    assert!(plane.object("Deployment", "local-path-storage", "local-path-provisioner").is_some());
    let block = plane.object("StorageClass", "", "block").unwrap();
    assert_eq!(block["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"], "true");
    assert_eq!(block["provisioner"], "rancher.io/local-path");
    assert_eq!(plane.object("StorageClass", "", "glusterfs").unwrap()["provisioner"], "stratus.io/glusterfs");
    let nfs = plane.object("Deployment", "glusterfs-provisioner", "glusterfs-provisioner").unwrap();
    assert_eq!(
        nfs["spec"]["template"]["spec"]["volumes"][0]["nfs"],
        json!({"server": "127.0.0.4", "path": "/stratus"})
    );
    let hcp = plane.object("Namespace", "", "hcp").expect("the platform is installed");
    assert_eq!(hcp["metadata"]["annotations"]["hsm.stratus.io/state"], "running");
    let ident_db = plane.object("StatefulSet", "hcp", "ident-db").unwrap();
    assert_eq!(ident_db["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"], "block");

    // The report, and credentials only in the 0600 file.
    assert!(stdout.starts_with("cluster fx is installed"), "{stdout}");
    assert!(stdout.contains(&format!("Kubernetes API   https://127.0.0.1:{port}\n")), "{stdout}");
    assert!(stdout.contains("  HSM server       https://hsm.stratus.example.com\n"), "{stdout}");
    assert!(stdout.contains("  identity (Dex)   https://identity.stratus.example.com\n"), "{stdout}");
    assert!(stdout.contains("hsm api https://hsm.stratus.example.com --ca-file"), "{stdout}");
    for record in [
        "hcp.stratus.example.com",
        "hsm.stratus.example.com",
        "identity.stratus.example.com",
        "*.identity.stratus.example.com",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(record))
            .unwrap_or_else(|| panic!("no {record}: {stdout}"));
        assert!(line.contains("A  192.0.2."), "{line}");
    }
    let credentials_path = state.join("credentials.yaml");
    assert_eq!(std::fs::metadata(&credentials_path).unwrap().permissions().mode() & 0o777, 0o600);
    let credentials: Value = serde_norway::from_str(&std::fs::read_to_string(&credentials_path).unwrap()).unwrap();
    let password = credentials["identity"]["password"].as_str().unwrap().to_string();
    assert_eq!(password.len(), 32);
    let secret = plane.object("Secret", "hcp", "secret-parameters").unwrap();
    let stored = base64_decode(secret["data"]["identity-admin-password"].as_str().unwrap());
    assert_eq!(stored, password, "the credentials file holds the password the platform runs with");
    // The broker's credentials (hsm-server's HSM_BROKER_USER and hsm-broker-password), and the
    // platform CA that `hsm api --ca-file` takes.
    let broker = &credentials["broker"];
    assert_eq!(
        (broker["url"].as_str(), broker["username"].as_str()),
        (Some("https://hsm.stratus.example.com"), Some("broker"))
    );
    let broker_password = broker["password"].as_str().unwrap().to_string();
    assert_eq!(broker_password, base64_decode(secret["data"]["hsm-broker-password"].as_str().unwrap()));
    assert_eq!(broker_password.len(), 32);
    let ca = credentials["platform_ca_certificate"].as_str().unwrap();
    assert_eq!(ca, base64_decode(secret["data"]["hcp-ca-cert"].as_str().unwrap()));
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    assert!(credentials["hsm"].get("client_secret").is_none(), "hsm is a public client of the identity provider");
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(!text.contains(&password), "the admin password leaked to {name}");
        assert!(!text.contains(&broker_password), "the broker password leaked to {name}");
    }
    assert!(!std::fs::read_to_string(state.join("terraform.log")).unwrap().contains(&password));

    // KeepTerraform is not set: the saved plan and the rendered secrets (cloud-configs holding
    // the CA key and join token) are gone from the working directory; its state stays.
    let terraform = state.join("terraform");
    assert!(terraform.join("terraform.tfstate").exists() && terraform.join("main.tf").exists());
    assert!(!terraform.join("plan.tfplan").exists() && !terraform.join("cloud-init").exists(), "secrets left behind");
    assert!(stderr.contains("removed the saved plan and secret files from"), "{stderr}");

    // Again: every finished phase is skipped and nothing in the cluster changes.
    let before = platform_versions(&plane);
    let again = install(&input, &state, &[]).output().unwrap();
    let again_err = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{again_err}");
    for phase in ["preflight", "provision", "network", "cloud", "storage", "platform"] {
        assert!(again_err.contains(&format!("{phase}: done in an earlier run, skipped")), "{again_err}");
    }
    assert_eq!(platform_versions(&plane), before, "a re-run changed the cluster");
    let status =
        Command::new(env!("CARGO_BIN_EXE_bootstrap")).args(["status", "--state-dir"]).arg(&state).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("status: installed\n"), "{status}");
    assert!(status.contains("  platform   done, "), "{status}");

    // Removing a node: refused without confirmation, then drained before its machine goes.
    // On it: a workload pod, and flannel's DaemonSet pod, which drains leave alone.
    plane
        .create(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "hcp"},
            "spec": {"nodeName": "fx-node-1", "containers": [{"name": "c", "image": "busybox"}]}}))
        .unwrap();
    eventually("web-1 running", || {
        plane.object("Pod", "hcp", "web-1").is_some_and(|p| p["status"]["phase"] == "Running")
    });
    // The scheduler spread the platform's pods: whatever landed on the node is evicted, but
    // not flannel's DaemonSet pod.
    let on_node: Vec<Value> =
        plane.list("Pod", "").into_iter().filter(|p| p["spec"]["nodeName"] == "fx-node-1").collect();
    let daemon = |p: &Value| p["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet";
    assert_eq!(on_node.iter().filter(|p| daemon(p)).count(), 1, "flannel runs on every node");
    let movable = on_node.iter().filter(|p| !daemon(p)).count();
    assert!(movable >= 1, "web-1 at least");
    let text = std::fs::read_to_string(&input).unwrap().replace("127.0.0.2, 127.0.0.3", "127.0.0.2");
    std::fs::write(&input, text).unwrap();
    let refused = install(&input, &state, &[]).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cancelled: nothing was changed"));
    assert_eq!(common::state_list(&state).len(), 5);
    let smaller = install(&input, &state, &["--yes"]).output().unwrap();
    let smaller_err = String::from_utf8_lossy(&smaller.stderr);
    assert!(smaller.status.success(), "{smaller_err}");
    assert!(
        smaller_err
            .contains(&format!("drained node fx-node-1: {movable} pod(s) evicted, node removed from Kubernetes")),
        "{smaller_err}"
    );
    eventually("web-1 evicted", || plane.object("Pod", "hcp", "web-1").is_none());
    assert!(plane.object("Node", "", "fx-node-1").is_none());
    assert!(!common::state_list(&state).iter().any(|r| r.contains("node-1")));

    // Uninstall lets Kubernetes release what it made in the cloud before the machines go:
    // the platform's namespace (its load balancers and claims) and any other LoadBalancer
    // Service or claim, until their volumes are reclaimed.
    // The volumes are made (and, released, deleted) by the node agent's provisioner, as a
    // CSI driver's external provisioner does.
    plane
        .create(&json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ingress", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]}}))
        .unwrap();
    plane
        .create(&json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
        .unwrap();
    eventually("volumes for both claims", || {
        let claims: Vec<Value> =
            plane.list("PersistentVolume", "").iter().map(|v| v["spec"]["claimRef"].clone()).collect();
        claims.iter().any(|c| c["namespace"] == "default" && c["name"] == "data")
            && claims.iter().any(|c| c["namespace"] == "hcp" && c["name"] == "ident-db-data-ident-db-0")
    });
    let removed = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(["uninstall", "--yes", "-i"])
        .arg(&input)
        .arg("--state-dir")
        .arg(&state)
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .unwrap();
    let removed_err = String::from_utf8_lossy(&removed.stderr);
    assert!(removed.status.success(), "{removed_err}");
    assert!(
        removed_err.contains(
            "Kubernetes released its cloud resources: 1 namespace(s) (hcp), 1 other load balancer(s), 1 other claim(s)"
        ),
        "{removed_err}"
    );
    assert!(plane.object("Namespace", "", "hcp").is_none());
    assert!(plane.object("Service", "default", "ingress").is_none());
    assert_eq!(plane.list("PersistentVolume", ""), Vec::<Value>::new(), "every volume was reclaimed");
    assert!(
        plane.object("DaemonSet", "kube-flannel", "kube-flannel-ds").is_some(),
        "the platform stays until the machines go"
    );
    assert!(removed_err.contains("uninstalled: nothing is left in the Terraform state"), "{removed_err}");
    assert!(!terraform.exists(), "the emptied working directory stays without KeepTerraform");
    let record: Value = serde_json::from_str(&std::fs::read_to_string(state.join("state.json")).unwrap()).unwrap();
    assert_eq!(record["status"], "uninstalled", "{record}");
    assert_eq!(record["phases"], json!([]), "a later install starts from the beginning: {record}");
    assert!(!state.join("install.json").exists() && !credentials_path.exists());
}

fn base64_decode(text: &str) -> String {
    use base64::Engine as _;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(text).unwrap()).unwrap()
}
