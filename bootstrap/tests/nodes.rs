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
            std::fs::write(&path, cloud_config(&config, &pki, &machine).unwrap()).unwrap();
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
    let text = |role, index| cloud_config(&config, &pki, &Machine { role, index }).unwrap();
    let first = text(Role::Master, 0);
    assert!(first.contains("kind: InitConfiguration") && first.contains("--upload-certs"));
    assert!(first.contains("BEGIN PRIVATE KEY"), "the first master carries the CA key");
    assert!(first.contains(&pki.certificate_key));
    let second = text(Role::Master, 1);
    assert!(!second.contains("BEGIN PRIVATE KEY"));
    assert!(second.contains(&pki.join_token) && second.contains("controlPlane"));
    let node = text(Role::Node, 2);
    assert!(!node.contains("BEGIN PRIVATE KEY") && !node.contains(&pki.certificate_key));
    assert!(node.contains(&pki.join_token) && node.contains(&pki.ca_cert_hash().unwrap()));
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
    assert_eq!(pki.ca_cert_hash().unwrap(), format!("sha256:{hex}"));

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
        serde_norway::from_str(pki.admin_kubeconfig("demo", "https://192.0.2.10:6443").expose()).unwrap();
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

/// The local example with `Local.*` lines replaced by `lines`.
fn local_with(lines: &[(&str, &str)]) -> bootstrap::config::Config {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let dir = tempfile::tempdir().unwrap();
    let mut text = std::fs::read_to_string(examples.join("local.properties")).unwrap();
    for (key, value) in lines {
        text = text.lines().filter(|l| !l.starts_with(&format!("{key} "))).map(|l| format!("{l}\n")).collect();
        text.push_str(&format!("{key} = {value}\n"));
    }
    std::fs::copy(examples.join("example-key"), dir.path().join("example-key")).unwrap();
    std::fs::write(dir.path().join("b.properties"), text).unwrap();
    bootstrap::load(&dir.path().join("b.properties"), &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn ipv6_addresses_are_bracketed_in_urls_and_host_port_pairs() {
    let config = local_with(&[
        ("Local.MasterAddresses", "2001:db8::10"),
        ("Local.NodeAddresses", "2001:db8::11, 2001:db8::12"),
        ("Local.GlusterFSAddresses", "2001:db8::21, 2001:db8::22"),
    ]);
    assert_eq!(bootstrap::nodes::api_endpoint(&config), "[2001:db8::10]:6443");
    assert_eq!(bootstrap::nodes::api_url(&config), "https://[2001:db8::10]:6443");
    let pki = Pki::generate(&config.cluster_name).unwrap();
    let kubeconfig = pki.admin_kubeconfig(&config.cluster_name, &bootstrap::nodes::api_url(&config));
    assert!(kubeconfig.expose().contains("server: https://[2001:db8::10]:6443"), "{}", kubeconfig.expose());
    let first = cloud_config(&config, &pki, &Machine { role: Role::Master, index: 0 }).unwrap();
    assert!(first.contains("controlPlaneEndpoint: '[2001:db8::10]:6443'"), "{first}");
    // The certificate is for the address itself, without brackets.
    assert!(first.contains("- 2001:db8::10\n") && !first.contains("- '[2001:db8::10]'"), "{first}");
    let node = cloud_config(&config, &pki, &Machine { role: Role::Node, index: 0 }).unwrap();
    assert!(node.contains("apiServerEndpoint: '[2001:db8::10]:6443'"), "{node}");

    // An explicit IPv6 API address and port; IPv4 and names stay as they are.
    let config = local_with(&[("Local.APIAddress", "2001:DB8::1"), ("Local.APIPort", "8443")]);
    assert_eq!(bootstrap::nodes::api_url(&config), "https://[2001:db8::1]:8443");
    let config = local_with(&[("Local.APIAddress", "api.example.com")]);
    assert_eq!(bootstrap::nodes::api_url(&config), "https://api.example.com:6443");
    assert_eq!(bootstrap::nodes::url_host("192.0.2.10"), "192.0.2.10");
}

#[test]
fn a_damaged_pki_is_an_error_naming_the_field_not_a_panic() {
    let good = Pki::generate("demo").unwrap();
    assert!(good.check().is_ok());
    let config = config("local");
    let machine = Machine { role: Role::Node, index: 0 };
    for (field, damage) in [
        ("ca_certificate", Box::new(|p: &mut Pki| p.ca_certificate = "junk".into()) as Box<dyn Fn(&mut Pki)>),
        ("ca_certificate", Box::new(|p: &mut Pki| p.ca_certificate = p.ca_key.clone())),
        ("ca_key", Box::new(|p: &mut Pki| p.ca_key = String::new())),
        ("admin_certificate", Box::new(|p: &mut Pki| p.admin_certificate = "-----BEGIN CERTIFICATE-----\n".into())),
        ("admin_key", Box::new(|p: &mut Pki| p.admin_key = "x".into())),
        ("join_token", Box::new(|p: &mut Pki| p.join_token = "abc".into())),
        ("certificate_key", Box::new(|p: &mut Pki| p.certificate_key = "z".repeat(64))),
    ] {
        let mut pki = good.clone();
        damage(&mut pki);
        let error = pki.check().unwrap_err().to_string();
        assert!(error.starts_with(&format!("{field} is not ")), "{field}: {error}");
        if field == "ca_certificate" {
            assert!(pki.ca_cert_hash().is_err());
            assert!(cloud_config(&config, &pki, &machine).is_err());
            assert!(bootstrap::render::render(&config, &pki).is_err());
        }
    }
}
