//! The platform end to end on the real control plane: `hcp` installed as bootstrap installs
//! it (hsm, as the cluster administrator, with its ServiceAccounts and RBAC), the converger
//! running in `hcp` (`--lease-namespace hcp`, as hcp's entrypoint says), and the HSM server
//! started with exactly the command line and environment of the applied Deployment
//! `hcp/hsm-server` — its TLS certificate and key and the platform CA from the applied Secret,
//! its own ServiceAccount's identity. No container runs here, so three things are put in place
//! of the pod's: the files under `/etc/secrets/` are written from the Secret into a folder of
//! the test's, the identity provider (Dex in the platform) is the real test provider
//! (`stratus_tests::oidc`, over HTTPS with a certificate of the platform CA, as Dex's is) with
//! the platform's generated admin password — its issuer URL and its audience (a resource
//! indicator; Dex's tokens are for the client id `hsm`) stand in for the SDL's — and the
//! listen address is a free loopback port. Every other flag and variable is the SDL's, so the
//! test fails when the wiring breaks. `hsm` then reaches the server under its public name
//! `hsm.<DOMAIN>` (through a CONNECT proxy of the test's, as DNS would send it) and verifies
//! the SDL's certificate with the platform CA: `hsm api --ca-file`, `hsm login -u -p`, and an
//! instance listed, created, read, upgraded and deleted through the server.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;
use stratus_tests::cluster::{Ca, ControlPlane};
use stratus_tests::oidc::{Config, Provider};

mod common;

const DOMAIN: &str = "platform.stratus.test";
/// What the server runs as in the platform: its ServiceAccount, as the authorizer sees it.
const SERVER_USER: &str = "system:serviceaccount:hcp:hsm-server";

fn catalog_dir() -> PathBuf {
    std::fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog")).unwrap()
}

/// `hsm-server`, next to `hsm` (built here when missing, into the same target folder).
fn server_binary() -> PathBuf {
    let hsm = Path::new(env!("CARGO_BIN_EXE_hsm"));
    let server = hsm.with_file_name("hsm-server");
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let target = hsm.parent().and_then(Path::parent).expect("<target>/debug/hsm");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "hsm-server", "--bin", "hsm-server", "--target-dir"])
            .arg(target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success() && server.is_file(), "cannot build hsm-server into {}", target.display());
    });
    server
}

/// A child process killed by its PID when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A CONNECT proxy on loopback that takes connections for `host` (any port) to `target`, as
/// DNS records for `host` would: `hsm` speaks TLS to the server through it, under that name.
fn proxy(host: &str, target: std::net::SocketAddr) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let host = host.to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let host = host.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut request = String::new();
                reader.read_line(&mut request).unwrap_or_default();
                let mut line = String::new();
                while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                    line.clear();
                }
                let mut client = client;
                let asked = request.split_whitespace().nth(1).unwrap_or_default().to_string();
                if !request.starts_with("CONNECT ") || asked.rsplit_once(':').map(|(h, _)| h) != Some(host.as_str()) {
                    let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n");
                    return;
                }
                let Ok(upstream) = TcpStream::connect(target) else { return };
                if client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").is_err() {
                    return;
                }
                let (mut up_read, mut up_write) = (upstream.try_clone().unwrap(), upstream);
                let mut client_write = client.try_clone().unwrap();
                let buffered = reader.buffer().to_vec();
                let _ = up_write.write_all(&buffered);
                let mut rest = reader.into_inner();
                let to_server = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut rest, &mut up_write);
                    let _ = up_write.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut up_read, &mut client_write);
                let _ = client_write.shutdown(std::net::Shutdown::Write);
                let _ = to_server.join();
            });
        }
    });
    format!("http://{address}")
}

/// `hsm` as a user elsewhere runs it: its own HSM_HOME, the proxy standing for DNS, no
/// kubeconfig.
fn hsm(home: &Path, proxy: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hsm"))
        .args(args)
        .env("HSM_HOME", home)
        .env("HTTPS_PROXY", proxy)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("HSM_CATALOG")
        .env_remove("KUBECONFIG")
        .env_remove("HSM_MODE")
        .env_remove("HTTP_PROXY")
        .env_remove("ALL_PROXY")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Asserts success and returns stdout.
fn ok(output: Output, what: &str, log: &Path) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{what}: {output:?}\nserver log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The value following flag `flag` in `args`.
fn flag<'a>(args: &'a [String], flag: &str) -> &'a str {
    let at = args.iter().position(|a| a == flag).unwrap_or_else(|| panic!("no {flag} in {args:?}"));
    &args[at + 1]
}

/// `text` with every `$(NAME)` replaced by `env[NAME]`, as the kubelet expands a command.
fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (name, value) in env {
        out = out.replace(&format!("$({name})"), value);
    }
    assert!(!out.contains("$("), "{text}: a variable the container does not have");
    out
}

#[test]
fn the_platform_serves_hsm_from_anywhere() {
    let Some(plane) = ControlPlane::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let admin = plane.kubeconfig();

    // The platform, as bootstrap installs it: hsm as the cluster administrator.
    let install = Command::new(env!("CARGO_BIN_EXE_hsm"))
        .args(["create-instance", "stackato.hpe.hcp", "--instance-id", "hcp", "--set"])
        .arg(format!("DOMAIN={DOMAIN}"))
        .args(["--mode", "direct", "--no-wait", "--kubeconfig"])
        .arg(&admin)
        .arg("--catalog")
        .arg(catalog_dir())
        .env_remove("HSM_HOME")
        .env("HSM_HOME", dir.path().join("admin-home"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(install.status.code(), Some(0), "installing hcp: {install:?}");

    // What the platform gives the server: command, environment, secret files.
    let deployment = plane.object("Deployment", "hcp", "hsm-server").expect("hcp's hsm-server");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "hsm-server");
    let container = &pod["containers"][0];
    let mut env = BTreeMap::new();
    for variable in container["env"].as_array().unwrap() {
        if let Some(value) = variable["value"].as_str() {
            env.insert(variable["name"].as_str().unwrap().to_string(), value.to_string());
        }
    }
    assert_eq!(env.get("HSM_BROKER_USER").map(String::as_str), Some("broker"));
    let command: Vec<String> =
        container["command"].as_array().unwrap().iter().map(|a| expand(a.as_str().unwrap(), &env)).collect();
    assert_eq!(command[0], "hsm-server");
    assert_eq!(container["volumeMounts"][0]["mountPath"], "/etc/secrets");
    let secret = plane.object("Secret", "hcp", "secret-parameters").unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let mut values = BTreeMap::new();
    for item in pod["volumes"][0]["secret"]["items"].as_array().unwrap() {
        let key = item["key"].as_str().unwrap();
        let value = base64::engine::general_purpose::STANDARD
            .decode(secret["data"][key].as_str().unwrap_or_else(|| panic!("no {key} in the Secret")))
            .unwrap();
        std::fs::write(secrets.join(item["path"].as_str().unwrap()), &value).unwrap();
        values.insert(key.to_string(), String::from_utf8(value).unwrap());
    }
    let password = secret["data"]["identity-admin-password"].as_str().unwrap();
    let password = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(password).unwrap()).unwrap();

    // The identity provider: the real test provider in Dex's place, with the platform's admin
    // and, as Dex has in the platform, a serving certificate of the platform CA (hcp-ca).
    assert_eq!(flag(&command, "--oidc-issuer"), format!("https://identity.{DOMAIN}"));
    assert_eq!(flag(&command, "--oidc-audience"), "hsm", "Dex's access tokens are for the client id");
    assert_eq!(flag(&command, "--oidc-ca-file"), "/etc/secrets/hcp-ca-cert");
    let generated = secret["data"]["hsm-generated.json"].as_str().unwrap();
    let generated: Value =
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(generated).unwrap()).unwrap();
    let hcp_ca = &generated["hcp-ca"];
    assert_eq!(hcp_ca["certificate"].as_str(), values.get("hcp-ca-cert").map(String::as_str));
    let hcp_ca = Ca::from_pem(hcp_ca["certificate"].as_str().unwrap(), hcp_ca["private_key"].as_str().unwrap());
    let audience = format!("https://hsm.{DOMAIN}");
    let identity = dir.path().join("identity");
    std::fs::create_dir(&identity).unwrap();
    let config = Config::new(&audience).user("admin", &password, &["hsm-admins"]);
    let provider = Provider::start_in(&config, &identity, Some(&hcp_ca), 1, false);

    // The server as the pod runs it, with the pod's files and identity.
    assert_eq!(flag(&command, "--listen"), "0.0.0.0:8443");
    assert_eq!(container["ports"][0]["containerPort"], 8443);
    assert_eq!(flag(&command, "--lease-namespace"), "hcp");
    let mut args = Vec::new();
    let mut rest = command[1..].iter();
    while let Some(arg) = rest.next() {
        let value = rest.next().unwrap_or_else(|| panic!("{arg} without a value"));
        let value = match arg.as_str() {
            "--listen" => "127.0.0.1:0".to_string(),
            "--oidc-issuer" => provider.issuer().to_string(),
            "--oidc-audience" => audience.clone(),
            "--catalog" => catalog_dir().display().to_string(),
            _ => match value.strip_prefix("/etc/secrets/") {
                Some(key) => {
                    assert!(values.contains_key(key), "{arg} {value}: not a secret parameter of hsm-server");
                    secrets.join(key).display().to_string()
                }
                None => value.clone(),
            },
        };
        args.extend([arg.clone(), value]);
    }
    let as_server = dir.path().join("hsm-server.kubeconfig");
    std::fs::write(&as_server, plane.kubeconfig_for(SERVER_USER, Some("system:serviceaccounts"))).unwrap();
    let log = dir.path().join("hsm-server.log");

    // The converger, in hcp as the platform runs it.
    let _one = common::ONE_CONVERGER.lock().unwrap_or_else(|e| e.into_inner());
    let converger = common::Converger::start_with(&admin, dir.path(), "controller", &["--lease-namespace", "hcp"]);
    let started = Instant::now();
    while plane.object("Lease", "hcp", "hsm-controller").filter(|l| l["spec"]["holderIdentity"].is_string()).is_none() {
        assert!(started.elapsed() < Duration::from_secs(90), "the converger does not lead:\n{}", converger.log());
        std::thread::sleep(Duration::from_millis(200));
    }

    let mut child = Command::new(server_binary())
        .args(&args)
        .arg("--kubeconfig")
        .arg(&as_server)
        .env_clear()
        .envs(&env)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HSM_LOG", "hsm_server=info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let url = stratus_tests::process::listening_url(&mut child, &log);
    let _server = Process(child);
    let port = url.rsplit_once(':').unwrap().1.to_string();
    let proxy = proxy(&format!("hsm.{DOMAIN}"), format!("127.0.0.1:{port}").parse().unwrap());

    // hsm from anywhere: the public name, the platform CA, the platform's admin.
    let home = dir.path().join("home");
    let public = format!("https://hsm.{DOMAIN}:{port}");
    let ca = secrets.join("hcp-ca-cert");
    let said = ok(hsm(&home, &proxy, &["api", &public, "--ca-file", ca.to_str().unwrap()]), "hsm api", &log);
    assert!(said.contains(&public), "{said}");
    let said = ok(hsm(&home, &proxy, &["login", "-u", "admin", "-p", &password]), "hsm login", &log);
    assert!(!said.contains(&password), "{said}");

    let list = ok(hsm(&home, &proxy, &["list-instances", "-o", "json"]), "list", &log);
    let list: Value = serde_json::from_str(&list).unwrap();
    assert!(list.as_array().unwrap().iter().any(|i| i["instance_id"] == "hcp"), "{list:#}");

    let create = ["create-instance", "stackato.hpe.mysql", "8.0", "--instance-id", "e2e-db", "--timeout", "3m"];
    let said = ok(hsm(&home, &proxy, &create), "create", &log);
    assert!(
        said.starts_with("instance e2e-db created: ") && said.contains(" objects applied, state running\n"),
        "{said}"
    );
    let said = ok(hsm(&home, &proxy, &["upgrade-instance", "e2e-db", "8.4", "--timeout", "3m"]), "upgrade", &log);
    assert!(said.starts_with("instance e2e-db upgraded from 8.0/1.0.0 to 8.4/1.0.0: state running\n"), "{said}");
    let detail = ok(hsm(&home, &proxy, &["get-instance", "e2e-db", "-o", "json"]), "get", &log);
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!((detail["product_version"].as_str(), detail["state"].as_str()), (Some("8.4"), Some("running")));
    let said = ok(hsm(&home, &proxy, &["delete-instance", "e2e-db", "-y", "--timeout", "3m"]), "delete", &log);
    assert_eq!(said, "instance e2e-db deleted\n");
    assert!(plane.object("Namespace", "", "e2e-db").is_none());

    // As its own ServiceAccount the server was never refused; the audit log names the admin.
    let server_log = std::fs::read_to_string(&log).unwrap();
    assert!(!server_log.contains("forbidden") && !server_log.contains("Forbidden"), "{server_log}");
    assert!(server_log.contains("admin"), "{server_log}");
    for text in [&server_log, &converger.log()] {
        assert!(!text.contains(&password), "the admin password leaked");
    }
}
