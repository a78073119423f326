//! `bootstrap install` end to end on the `local` provider: five "machines" (a throw-away sshd
//! on 127.0.0.1-4, Terraform's SSH provisioners), the install killed in the middle of the
//! apply, then a re-run that finishes the machines, waits for the Kubernetes API (the test
//! API server, started only once bootstrap is waiting, serving TLS with a certificate from
//! the cluster CA bootstrap made and requiring its admin client certificate), installs
//! flannel, the local-path provisioner, the storage classes and `hcp`, and writes the report
//! and a 0600 credentials file. A further run skips every finished phase and changes nothing;
//! removing a node drains it first; uninstall leaves nothing.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use stratus_tests::apiserver::store::ControllerConfig;
use stratus_tests::apiserver::tls::Tls;
use stratus_tests::apiserver::{Config, FakeApiServer};

fn install(input: &Path, state: &Path, extra: &[&str]) -> Command {
    let timeout: &[&str] = if extra.contains(&"--timeout") { &[] } else { &["--timeout", "60"] };
    let mut command = common::bootstrap(&["install"], input, state);
    command.args(timeout).args(extra);
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn api_server(state: &Path, port: u16, kubelets: &[&str], ready_after: Duration) -> FakeApiServer {
    let pki: Value = serde_json::from_str(&std::fs::read_to_string(state.join("pki.json")).unwrap()).unwrap();
    let tls = Tls::issued_by(pki["ca_certificate"].as_str().unwrap(), pki["ca_key"].as_str().unwrap(), &["127.0.0.1"])
        .unwrap();
    let config = Config {
        controller: ControllerConfig {
            ready_after,
            kubelets: kubelets.iter().map(|k| k.to_string()).collect(),
            ..ControllerConfig::default()
        },
        tls: Some(tls),
        ..Config::default()
    };
    FakeApiServer::spawn(config, ([127, 0, 0, 1], port).into()).unwrap()
}

#[test]
fn install_resumes_after_a_kill_reports_and_changes_nothing_when_run_again() {
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

    // Run again; start the API server only once bootstrap is waiting for it, with workloads
    // that never get ready: the network phase fails after its timeout, saying what waits.
    let kubelets = ["fx-master-0", "fx-node-0", "fx-node-1"];
    let mut child = install(&input, &state, &["--yes", "--timeout", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr_lines = Vec::new();
    let mut server = None;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if server.is_none() && line.contains("waiting for the Kubernetes API at") {
            server = Some(api_server(&state, port, &kubelets, Duration::from_secs(3600)));
        }
        stderr_lines.push(line);
    }
    let failed = child.wait_with_output().unwrap();
    let stderr = stderr_lines.join("\n");
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    let server = server.expect("bootstrap waited for the API");
    // The machines: only what the kill left undone.
    let rest = 5 - after_kill;
    assert!(stderr.contains(&format!("{rest}/{rest} ready terraform_data.machine")), "{stderr}");
    assert_eq!(common::state_list(&state).len(), 5);
    assert!(stderr.contains(&format!("waiting for the Kubernetes API at https://127.0.0.1:{port}/")), "{stderr}");
    assert!(stderr.contains("] network: FAILED in"), "{stderr}");
    assert!(
        stderr.contains("timed out after 3s waiting for network (pod network: flannel on 10.244.0.0/16)")
            && stderr.contains("DaemonSet kube-flannel-ds: 0/3 ready")
            && stderr
                .contains("(phase network failed; fix the cause and run the same command again to continue from it)"),
        "{stderr}"
    );

    // The cause fixed, the same command continues from the network phase.
    server.set_controller(ControllerConfig {
        ready_after: Duration::from_millis(50),
        kubelets: kubelets.iter().map(|k| k.to_string()).collect(),
        ..ControllerConfig::default()
    });
    let output = install(&input, &state, &["--yes"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stderr}\n{stdout}");
    assert!(stderr.contains("provision: done in an earlier run, skipped"), "{stderr}");
    for phase in ["api", "network", "cloud", "storage", "platform", "report"] {
        assert!(stderr.contains(&format!("] {phase}: done in")), "phase {phase} did not finish:\n{stderr}");
    }
    assert!(stderr.contains("network: done in") && stderr.contains("3 node(s) Ready"), "{stderr}");

    // The platform in the cluster.
    let flannel = server.object("DaemonSet", "kube-flannel", "kube-flannel-ds").expect("flannel is installed");
    assert_eq!(flannel["status"]["numberReady"], 3);
    let config = server.object("ConfigMap", "kube-flannel", "kube-flannel-cfg").unwrap();
    assert!(config["data"]["net-conf.json"].as_str().unwrap().contains("\"Network\": \"10.244.0.0/16\""));
    assert!(server.object("Deployment", "local-path-storage", "local-path-provisioner").is_some());
    let block = server.object("StorageClass", "", "block").unwrap();
    assert_eq!(block["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"], "true");
    assert_eq!(block["provisioner"], "rancher.io/local-path");
    assert_eq!(server.object("StorageClass", "", "glusterfs").unwrap()["provisioner"], "stratus.io/glusterfs");
    let nfs = server.object("Deployment", "glusterfs-provisioner", "glusterfs-provisioner").unwrap();
    assert_eq!(
        nfs["spec"]["template"]["spec"]["volumes"][0]["nfs"],
        json!({"server": "127.0.0.4", "path": "/stratus"})
    );
    let hcp = server.object("Namespace", "", "hcp").expect("the platform is installed");
    assert_eq!(hcp["metadata"]["annotations"]["hsm.stratus.io/state"], "running");
    let ident_db = server.object("StatefulSet", "hcp", "ident-db").unwrap();
    assert_eq!(ident_db["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"], "block");

    // The report, and credentials only in the 0600 file.
    assert!(stdout.starts_with("cluster fx is installed"), "{stdout}");
    assert!(stdout.contains(&format!("Kubernetes API   https://127.0.0.1:{port}\n")), "{stdout}");
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
    let secret = server.object("Secret", "hcp", "secret-parameters").unwrap();
    let stored = base64_decode(secret["data"]["identity-admin-password"].as_str().unwrap());
    assert_eq!(stored, password, "the credentials file holds the password the platform runs with");
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(!text.contains(&password), "the admin password leaked to {name}");
    }
    assert!(!std::fs::read_to_string(state.join("terraform.log")).unwrap().contains(&password));

    // KeepTerraform is not set: the saved plan and the rendered secrets (cloud-configs holding
    // the CA key and join token) are gone from the working directory; its state stays.
    let terraform = state.join("terraform");
    assert!(terraform.join("terraform.tfstate").exists() && terraform.join("main.tf").exists());
    assert!(!terraform.join("plan.tfplan").exists() && !terraform.join("cloud-init").exists(), "secrets left behind");
    assert!(stderr.contains("removed the saved plan and secret files from"), "{stderr}");

    // Again: every finished phase is skipped and nothing in the cluster changes.
    let before = server.objects();
    let again = install(&input, &state, &[]).output().unwrap();
    let again_err = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{again_err}");
    for phase in ["preflight", "provision", "network", "cloud", "storage", "platform"] {
        assert!(again_err.contains(&format!("{phase}: done in an earlier run, skipped")), "{again_err}");
    }
    assert_eq!(server.objects(), before, "a re-run changed the cluster");
    let status =
        Command::new(env!("CARGO_BIN_EXE_bootstrap")).args(["status", "--state-dir"]).arg(&state).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("status: installed\n"), "{status}");
    assert!(status.contains("  platform   done, "), "{status}");

    // Removing a node: refused without confirmation, then drained before its machine goes.
    for (name, owner) in [("web-1", None), ("kube-proxy-x", Some("DaemonSet"))] {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": "fx-node-1", "containers": [{"name": "c", "image": "busybox"}]}});
        if let Some(kind) = owner {
            pod["metadata"]["ownerReferences"] =
                json!([{"apiVersion": "apps/v1", "kind": kind, "name": "kube-proxy", "uid": "u-1"}]);
        }
        server.create("hcp", pod).unwrap();
    }
    let text = std::fs::read_to_string(&input).unwrap().replace("127.0.0.2, 127.0.0.3", "127.0.0.2");
    std::fs::write(&input, text).unwrap();
    let refused = install(&input, &state, &[]).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cancelled: nothing was changed"));
    assert_eq!(common::state_list(&state).len(), 5);
    server.set_controller(ControllerConfig {
        ready_after: Duration::from_millis(50),
        kubelets: vec!["fx-master-0".into(), "fx-node-0".into()],
        ..ControllerConfig::default()
    });
    let smaller = install(&input, &state, &["--yes"]).output().unwrap();
    let smaller_err = String::from_utf8_lossy(&smaller.stderr);
    assert!(smaller.status.success(), "{smaller_err}");
    assert!(
        smaller_err.contains("drained node fx-node-1: 1 pod(s) evicted, node removed from Kubernetes"),
        "{smaller_err}"
    );
    assert!(server.object("Pod", "hcp", "web-1").is_none(), "the workload pod was evicted");
    assert!(server.object("Pod", "hcp", "kube-proxy-x").is_some(), "DaemonSet pods are left to go with the machine");
    assert!(server.object("Node", "", "fx-node-1").is_none());
    assert!(!common::state_list(&state).iter().any(|r| r.contains("node-1")));

    // Uninstall lets Kubernetes release what it made in the cloud before the machines go:
    // the platform's namespace (its load balancers and claims) and any other LoadBalancer
    // Service or claim, until their volumes are reclaimed.
    server
        .create(
            "default",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ingress"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]}}),
        )
        .unwrap();
    server
        .create(
            "default",
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        )
        .unwrap();
    for (volume, namespace, claim) in [("pv-1", "default", "data"), ("pv-2", "hcp", "ident-db-data-ident-db-0")] {
        server
            .create(
                "",
                json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": volume},
                "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                         "persistentVolumeReclaimPolicy": "Delete", "claimRef": {"namespace": namespace, "name": claim},
                         "csi": {"driver": "rancher.io/local-path", "volumeHandle": volume}}}),
            )
            .unwrap();
    }
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
    assert!(server.object("Namespace", "", "hcp").is_none());
    assert!(server.object("Service", "default", "ingress").is_none());
    assert!(
        server.object("PersistentVolume", "", "pv-1").is_none()
            && server.object("PersistentVolume", "", "pv-2").is_none()
    );
    assert!(
        server.object("DaemonSet", "kube-flannel", "kube-flannel-ds").is_some(),
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
