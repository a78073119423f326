//! OpenStack for tests: `tests/openstack/standin.py` run with the Python of a venv holding PyPI
//! `keystone` and `gunicorn` (`OPENSTACK_STANDIN_PYTHON`, else the workspace's
//! `.venv-keystone`, where `scripts/test` installs them). It starts a real Keystone on SQLite
//! whose catalog points at in-memory fakes of Nova, Glance, Neutron, Cinder and Octavia; the
//! fakes check every token with Keystone. Stopped (Keystone included) when dropped.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running stand-in cloud and the credentials of its operator account.
pub struct OpenStack {
    child: Child,
    _work: tempfile::TempDir,
    /// Keystone's v3 URL.
    pub auth_url: String,
    /// User name (domain `default`).
    pub username: String,
    /// Its password.
    pub password: String,
    /// Project name (domain `default`).
    pub project: String,
    /// The project's ID.
    pub project_id: String,
    /// PEM of the CA that issued the fakes' HTTPS certificate ([`OpenStack::start_tls`]).
    pub ca_certificate: Option<String>,
    /// Base URL of the fakes (for their test-only `/_stand-in/...` controls).
    pub services_url: String,
}

impl Drop for OpenStack {
    fn drop(&mut self) {
        // Keystone's gunicorn runs in the same process group.
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.wait();
    }
}

fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("OPENSTACK_STANDIN_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv-keystone/bin/python");
    assert!(
        venv.exists(),
        "no Keystone venv: run scripts/test (it installs keystone into .venv-keystone) or set OPENSTACK_STANDIN_PYTHON"
    );
    venv
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl OpenStack {
    /// Starts Keystone and the fakes (about 20 s: Keystone's database and keys are made
    /// fresh) and returns once both answer.
    pub fn start() -> OpenStack {
        Self::start_with(false)
    }

    /// The same, with the fakes on HTTPS under a certificate from a fresh private CA
    /// ([`OpenStack::ca_certificate`]); Keystone stays on HTTP.
    pub fn start_tls() -> OpenStack {
        Self::start_with(true)
    }

    /// A CA certificate (PEM) that issued none of the stand-in's certificates.
    pub fn unrelated_ca_certificate() -> String {
        private_ca_and_serving_certificate().0
    }

    fn start_with(tls: bool) -> OpenStack {
        let work = tempfile::tempdir().expect("a temporary directory");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openstack/standin.py");
        let mut command = Command::new(python());
        command.arg(script).arg("--work").arg(work.path()).args([
            "--keystone-port",
            &free_port().to_string(),
            "--services-port",
            &free_port().to_string(),
        ]);
        let mut ca_certificate = None;
        if tls {
            let (ca, serving) = private_ca_and_serving_certificate();
            for (name, text) in [("services.crt", &serving.certificate), ("services.key", &serving.key)] {
                std::fs::write(work.path().join(name), text).expect("the stand-in's certificate is written");
            }
            command.arg("--tls-cert").arg(work.path().join("services.crt"));
            command.arg("--tls-key").arg(work.path().join("services.key"));
            ca_certificate = Some(ca);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("the OpenStack stand-in starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut ready = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("the stand-in writes text");
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) {
                ready = Some(value);
                break;
            }
        }
        let ready = ready.unwrap_or_else(|| {
            let _ = child.wait();
            panic!("the OpenStack stand-in stopped before it was ready (see its output above)")
        });
        let field = |k: &str| ready[k].as_str().unwrap_or_default().to_string();
        OpenStack {
            auth_url: field("auth_url"),
            username: field("username"),
            password: field("password"),
            project: field("project"),
            project_id: field("project_id"),
            ca_certificate,
            services_url: field("services_url"),
            child,
            _work: work,
        }
    }
}

/// A fresh CA (PEM) and a serving certificate it issued for 127.0.0.1.
fn private_ca_and_serving_certificate() -> (String, stratus_pki::KeyedCertificate) {
    let ca = stratus_pki::Ca::generate("stand-in cloud CA").expect("a CA");
    let serving = ca.issue_serving("stand-in cloud", &["127.0.0.1"], 1).expect("a certificate");
    (ca.certificate().to_string(), serving)
}
