//! `bootstrap preflight` and `provision` on OpenStack against a real Keystone and the in-repo
//! service fakes, served over HTTPS by a private CA (`OpenStack.CACertFile`): the example project passes; a wrong one gets every problem listed (each with
//! the key to fix) and nothing is created; a wrong password is one clear line without it; the
//! credentials may come from `clouds.yaml` instead.

mod cloud_helper;
mod fixtures;

use std::path::Path;
use std::process::Command;

use stratus_tests::openstack::OpenStack;

fn bootstrap(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .unwrap()
}

/// The example properties pointed at the stand-in, with `changes` applied (`key = value`).
fn properties(cloud: &OpenStack, dir: &Path, name: &str, changes: &[(&str, &str)]) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut text = std::fs::read_to_string(examples.join("openstack.properties")).unwrap();
    let mut set = |key: &str, value: &str| {
        let prefix = format!("{key} ");
        if !text.lines().any(|l| l.starts_with(&prefix)) {
            text.push_str(&format!("\n{key} = {value}"));
        }
        text = text
            .lines()
            .map(|l| if l.starts_with(&prefix) { format!("{key} = {value}") } else { l.to_string() })
            .collect::<Vec<_>>()
            .join("\n");
    };
    set("OpenStack.AuthURL", &cloud.auth_url);
    set("OpenStack.Username", &cloud.username);
    set("OpenStack.Password", &cloud.password);
    set("OpenStack.ProjectName", &cloud.project);
    set("OpenStack.DomainName", "Default");
    set("OpenStack.CACertFile", "ca.pem");
    for (key, value) in changes {
        set(key, value);
    }
    std::fs::write(dir.join(name), text + "\n").unwrap();
}

#[test]
fn preflight_against_keystone_and_the_service_fakes() {
    cloud_helper::path();
    let cloud = OpenStack::start_tls();
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    std::fs::copy(examples.join("example-key"), dir.path().join("example-key")).unwrap();
    std::fs::write(dir.path().join("ca.pem"), cloud.ca_certificate.as_ref().unwrap()).unwrap();
    std::fs::write(dir.path().join("other-ca.pem"), OpenStack::unrelated_ca_certificate()).unwrap();

    // The endpoints' certificate chains to the private CA only: without it, TLS refuses them.
    properties(&cloud, dir.path(), "untrusted.properties", &[("OpenStack.CACertFile", "other-ca.pem")]);
    let untrusted = bootstrap(&["preflight", "-i", "untrusted.properties"], dir.path());
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(untrusted.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("https://127.0.0.1:")
            && stderr.contains("certificate")
            && stderr.contains("nothing was created"),
        "{stderr}"
    );

    properties(&cloud, dir.path(), "ready.properties", &[]);
    let ready = bootstrap(&["preflight", "-i", "ready.properties"], dir.path());
    let stderr = String::from_utf8_lossy(&ready.stderr);
    assert!(ready.status.success(), "{stderr}");
    assert!(stderr.contains("preflight: the OpenStack project has everything the cluster needs"), "{stderr}");

    properties(
        &cloud,
        dir.path(),
        "wrong.properties",
        &[("OpenStack.LinuxImageID", "no-such-image"), ("OpenStack.Keypair", "lost-key"), ("NodeCount", "9")],
    );
    let wrong = bootstrap(&["provision", "-i", "wrong.properties", "--state-dir", "state"], dir.path());
    assert_eq!(wrong.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(
        stderr.trim_end(),
        "error: preflight found 5 problems in the OpenStack project; nothing was created:\n  \
         OpenStack.LinuxImageID: no image no-such-image in the project\n  \
         OpenStack.Keypair: no key pair lost-key for this user\n  \
         quota: the cluster needs 12 instances, the project has 10 left\n  \
         quota: the cluster needs 78 vCPUs, the project has 40 left\n  \
         quota: the cluster needs 159744 MB of RAM, the project has 102400 left"
    );
    assert!(!dir.path().join("state").exists(), "no state directory, no Terraform run");

    properties(&cloud, dir.path(), "password.properties", &[("OpenStack.Password", "wrong-secret")]);
    let refused = bootstrap(&["preflight", "-i", "password.properties"], dir.path());
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains(&format!("OpenStack authentication at {} as operator", cloud.auth_url)), "{stderr}");
    assert!(!stderr.contains("wrong-secret"), "the password was printed: {stderr}");

    // The same project through clouds.yaml (OS_CLOUD) instead of keys in the file.
    let text = std::fs::read_to_string(dir.path().join("ready.properties")).unwrap();
    let without = fixtures::without_openstack_credentials(&text);
    std::fs::write(dir.path().join("cloud.properties"), without).unwrap();
    std::fs::write(
        dir.path().join("clouds.yaml"),
        format!(
            "clouds:\n  standin:\n    auth:\n      auth_url: {}\n      username: {}\n      password: {}\n      project_name: {}\n      user_domain_name: Default\n    region_name: RegionOne\n",
            cloud.auth_url, cloud.username, cloud.password, cloud.project
        ),
    )
    .unwrap();
    let via_cloud = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(["preflight", "-i", "cloud.properties"])
        .current_dir(dir.path())
        .env_clear()
        .env("OS_CLOUD", "standin")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&via_cloud.stderr);
    assert!(via_cloud.status.success(), "{stderr}");
    assert!(stderr.contains("preflight: the OpenStack project has everything the cluster needs"), "{stderr}");
}
