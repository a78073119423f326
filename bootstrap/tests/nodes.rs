//! Node bootstrap files and the cluster PKI, checked with the real tools: `cloud-init schema`
//! accepts every rendered cloud-config, `openssl` agrees with the CA hash kubeadm joins with
//! and verifies the admin certificate against the CA.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use bootstrap::nodes::{cloud_config, machines, Machine, Role};
use bootstrap::pki::Pki;

fn config(provider: &str) -> bootstrap::config::Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{provider}.properties"));
    bootstrap::load(&path, &BTreeMap::new()).unwrap()
}

fn cloud_init() -> &'static str {
    if Command::new("cloud-init").arg("--version").output().is_err() {
        panic!("cloud-init is not installed: run scripts/test (it installs Debian's cloud-init)");
    }
    "cloud-init"
}

#[test]
fn every_cloud_config_passes_cloud_init_schema() {
    let dir = tempfile::tempdir().unwrap();
    for provider in ["openstack", "aws", "vsphere", "local"] {
        let config = config(provider);
        let pki = Pki::generate(&config.cluster_name).unwrap();
        for machine in machines(&config) {
            let path = dir.path().join(format!("{provider}-{}.yaml", machine.key()));
            std::fs::write(&path, cloud_config(&config, &pki, &machine)).unwrap();
            let output = Command::new(cloud_init()).args(["schema", "--config-file"]).arg(&path).output().unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success() && stdout.contains("Valid"),
                "{provider} {}: {stdout}{}",
                machine.key(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

#[test]
fn secrets_go_only_where_they_are_needed() {
    let config = config("aws");
    let pki = Pki::generate(&config.cluster_name).unwrap();
    let text = |role, index| cloud_config(&config, &pki, &Machine { role, index });
    let first = text(Role::Master, 0);
    assert!(first.contains("kind: InitConfiguration") && first.contains("--upload-certs"));
    assert!(first.contains("BEGIN PRIVATE KEY"), "the first master carries the CA key");
    assert!(first.contains(&pki.certificate_key));
    let second = text(Role::Master, 1);
    assert!(!second.contains("BEGIN PRIVATE KEY"));
    assert!(second.contains(&pki.join_token) && second.contains("controlPlane"));
    let node = text(Role::Node, 2);
    assert!(!node.contains("BEGIN PRIVATE KEY") && !node.contains(&pki.certificate_key));
    assert!(node.contains(&pki.join_token) && node.contains(&pki.ca_cert_hash()));
    assert!(node.contains("apiServerEndpoint: api.stratus.example.com:6443"));
    let gluster = text(Role::Gluster, 0);
    assert!(!gluster.contains(&pki.join_token) && gluster.contains("gluster peer probe demo-gluster-1"));
    assert!(pki.join_token.len() == 23 && pki.join_token.as_bytes()[6] == b'.');
    assert_eq!(format!("{pki:?}"), "Pki(<redacted>)");
}

fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "openssl {args:?}");
    output.stdout
}

#[test]
fn ca_hash_and_admin_certificate_agree_with_openssl() {
    let pki = Pki::generate("demo").unwrap();
    let public = openssl(&["x509", "-pubkey", "-noout"], pki.ca_certificate.as_bytes());
    let der = openssl(&["pkey", "-pubin", "-outform", "der"], &public);
    let digest = openssl(&["dgst", "-sha256", "-hex"], &der);
    let hex = String::from_utf8(digest).unwrap().rsplit(' ').next().unwrap().trim().to_string();
    assert_eq!(pki.ca_cert_hash(), format!("sha256:{hex}"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.crt"), &pki.ca_certificate).unwrap();
    std::fs::write(dir.path().join("admin.crt"), &pki.admin_certificate).unwrap();
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile", "ca.crt", "admin.crt"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    let subject = openssl(&["x509", "-noout", "-subject"], pki.admin_certificate.as_bytes());
    let subject = String::from_utf8(subject).unwrap();
    assert!(subject.contains("CN = kubernetes-admin") && subject.contains("O = system:masters"), "{subject}");

    let kubeconfig: serde_json::Value =
        serde_yaml::from_str(pki.admin_kubeconfig("demo", "https://192.0.2.10:6443").expose()).unwrap();
    assert_eq!(kubeconfig["clusters"][0]["cluster"]["server"], "https://192.0.2.10:6443");
    assert_eq!(kubeconfig["current-context"], "admin@demo");
}

#[test]
fn plan_keeps_one_pki_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let plan = || {
        let output = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
            .args(["plan", "--render-only", "-i"])
            .arg(examples.join("local.properties"))
            .arg("--state-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        std::fs::read_to_string(dir.path().join("terraform/cloud-init/node-0.yaml")).unwrap()
    };
    let first = plan();
    let second = plan();
    assert_eq!(first, second, "a re-run joins the same cluster");
    use std::os::unix::fs::PermissionsExt;
    for file in ["pki.json", "kubeconfig", "terraform/cloud-init/master-0.yaml"] {
        let mode = std::fs::metadata(dir.path().join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    let kubeconfig = std::fs::read_to_string(dir.path().join("kubeconfig")).unwrap();
    assert!(kubeconfig.contains("server: https://192.0.2.10:6443"));
}
