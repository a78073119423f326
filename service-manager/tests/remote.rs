//! `hsm` against a real `hsm-server` process (plain HTTP on loopback): `hsm api` checks and
//! stores the target (config.json mode 0600 in a 0700 folder, `HSM_HOME`), the catalog verbs
//! print through the server exactly what they print from the catalog, the instance verbs
//! print what they print from the cluster (on the real control plane), and bad input,
//! unreachable servers and server errors give hsm's exit codes with a clear message.
//!
//! `hsm-server` is built into this test's target folder when it is not there (service-manager
//! cannot depend on the server's crate: the server depends on it).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use stratus_tests::cluster::ControlPlane;
use stratus_tests::oidc::{Config, Provider, HSM_AUDIENCE};

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

/// An `hsm-server` process, killed by its PID when dropped.
struct Server {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Server {
    /// A server without authentication on a free loopback port, on the cluster of `kubeconfig`.
    fn start(kubeconfig: &Path, dir: &Path) -> Server {
        Server::start_with(kubeconfig, dir, &["--no-auth"])
    }

    /// The same with the flags `args` (authentication's).
    fn start_with(kubeconfig: &Path, dir: &Path, args: &[&str]) -> Server {
        let log = dir.join("hsm-server.log");
        let mut child = Command::new(server_binary())
            .args(args)
            .arg("--insecure-http")
            .args(["--listen", "127.0.0.1:0", "--request-timeout", "5s", "--catalog"])
            .arg(catalog_dir())
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .env_remove("HSM_CATALOG")
            .env_remove("HSM_SERVER_LISTEN")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let url = stratus_tests::process::listening_url(&mut child, &log);
        Server { child, url, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The server's `/metrics` text (plain HTTP on loopback).
    fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let address = self.url.strip_prefix("http://").unwrap();
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(stream, "GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `hsm` with `HSM_HOME` set to `home` and nothing else from the environment that could
/// choose a backend.
fn hsm(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hsm"))
        .args(args)
        .env("HSM_HOME", home)
        .env_remove("HSM_CATALOG")
        .env_remove("KUBECONFIG")
        .env_remove("HSM_MODE")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Asserts success and returns stdout.
fn ok(output: Output, what: &str) -> String {
    assert_eq!(output.status.code(), Some(0), "{what}: {output:?}");
    stdout(&output)
}

/// Asserts exit code `code` and nothing on stdout; returns stderr.
fn fails(output: Output, code: i32, what: &str) -> String {
    assert_eq!(output.status.code(), Some(code), "{what}: {output:?}");
    assert!(output.stdout.is_empty(), "{what}: {output:?}");
    stderr(&output)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn hsm_api_stores_the_target_and_the_catalog_verbs_answer_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&stratus_tests::process::dead_kubeconfig(dir.path()), dir.path());
    // HSM_HOME names a folder that does not exist yet: hsm creates it, private.
    let home = dir.path().join("home/.hsm");
    let catalog = catalog_dir();
    let catalog = catalog.to_str().unwrap();

    let said = ok(hsm(&home, &["api"]), "hsm api without a target");
    assert!(said.starts_with("no target set"), "{said}");
    let said = ok(hsm(&home, &["api", &format!("{}/", server.url)]), "hsm api URL");
    assert!(said.starts_with(&format!("target: {}\nserver version: ", server.url)), "{said}");
    assert!(said.contains("sign-in:        none (the server checks no token)"), "{said}");
    assert_eq!(mode(&home), 0o700);
    let file = home.join("config.json");
    assert_eq!(mode(&file), 0o600);
    let stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(stored, serde_json::json!({"target": {"url": server.url, "skip_ssl_validation": false}}));
    assert_eq!(ok(hsm(&home, &["api"]), "hsm api"), format!("target: {}\nnot signed in\n", server.url));
    let info = ok(hsm(&home, &["info"]), "hsm info");
    assert!(info.starts_with(&format!("target:         {}\nserver version: 0.1.0\nAPI version:    v1\n", server.url)));

    // The catalog verbs print through the server what they print from the catalog itself.
    let same = [
        vec!["list-services"],
        vec!["list-services", "-o", "json"],
        vec!["list-services", "-o", "yaml"],
        vec!["list-categories"],
        vec!["list-categories", "-o", "json"],
        vec!["get-service", "stackato.hpe.redis"],
        vec!["get-service", "stackato.hpe.mysql", "-o", "json"],
        vec!["get-service", "stackato.hpe.mysql", "8.0"],
        vec!["get-service", "stackato.hpe.mysql", "8.0", "-o", "yaml"],
        vec!["get-service", "stackato.hpe.mysql", "8.0", "1.0.0"],
    ];
    for args in same {
        let remote = ok(hsm(&home, &args), &format!("{args:?} through the server"));
        let direct = ok(hsm(&home, &[&["--catalog", catalog][..], &args].concat()), &format!("{args:?} direct"));
        assert_eq!(remote, direct, "{args:?}");
    }

    // Bad input is exit 2, as directly; the server's message names the value.
    let error = fails(hsm(&home, &["get-service", "stackato.hpe.nothing"]), 2, "unknown service");
    assert!(error.starts_with("error: id: unknown service \"stackato.hpe.nothing\""), "{error}");
    fails(hsm(&home, &["--catalog", catalog, "get-service", "stackato.hpe.nothing"]), 2, "unknown service, direct");
    let error = fails(hsm(&home, &["get-service", "stackato.hpe.mysql", "9.9"]), 2, "unknown version");
    assert!(error.contains("product_version"), "{error}");

    // The server cannot reach its cluster: a 503, exit 1, saying so.
    let error = fails(hsm(&home, &["list-instances"]), 1, "server without its cluster");
    assert!(error.starts_with("error: "), "{error}");
    assert!(!error.contains("run `hsm login`"), "{error}");
    // --kubeconfig goes to the cluster directly, not to the server.
    let direct = fails(
        hsm(&home, &["list-instances", "--kubeconfig", dir.path().join("dead-kubeconfig").to_str().unwrap()]),
        1,
        "direct",
    );
    assert_ne!(direct, error);
    // The server never gives secret values.
    let error = fails(hsm(&home, &["get-credentials", "some-db"]), 2, "get-credentials through the server");
    assert!(error.contains("never returns secret values: give --kubeconfig"), "{error}");
    // Cluster facts are the server's.
    let error =
        fails(hsm(&home, &["create-instance", "stackato.hpe.redis", "--registry", "r.example"]), 2, "--registry");
    assert!(error.starts_with("error: --registry describes a cluster"), "{error}");

    assert_eq!(ok(hsm(&home, &["logout"]), "logout"), "not signed in\n");
    let said = ok(hsm(&home, &["login"]), "login against a server without sign-in");
    assert!(said.contains("checks no token"), "{said}");
}

#[test]
fn bad_targets_and_unreachable_servers_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("hsm");
    for (url, why) in [
        ("hsm.example.com", "not a URL"),
        ("http://hsm.example.com", "plain http is only accepted for a loopback address"),
        ("ftp://127.0.0.1", "the scheme must be https"),
    ] {
        let error = fails(hsm(&home, &["api", url]), 2, url);
        assert!(error.contains(why), "{url}: {error}");
    }
    let error = fails(hsm(&home, &["api", "https://127.0.0.1:1", "--ca-file", "/nonexistent/ca.pem"]), 2, "ca file");
    assert!(error.starts_with("error: --ca-file /nonexistent/ca.pem: "), "{error}");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let error =
        fails(hsm(&home, &["api", "https://127.0.0.1:1", "--ca-file", not_pem.to_str().unwrap()]), 2, "not pem");
    assert!(error.contains("no PEM certificate"), "{error}");
    let error =
        fails(hsm(&home, &["api", "https://127.0.0.1:1", "--ca-file", "x", "--skip-ssl-validation"]), 2, "both");
    assert!(error.contains("cannot be used with"), "{error}");

    // Nothing listens: exit 1 naming the URL, and no target is stored.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let error = fails(hsm(&home, &["api", &url]), 1, "nothing listens");
    assert!(error.starts_with(&format!("error: cannot reach {url}/v1/info: ")), "{error}");
    assert!(!home.join("config.json").exists());

    // No target: the verbs that need one say how to set it.
    for verb in ["info", "login"] {
        let error = fails(hsm(&home, &[verb]), 1, verb);
        assert_eq!(error, "error: no HSM server is set: run `hsm api URL` first\n");
    }

    // A target whose server has gone away: exit 1 naming it.
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("config.json"), format!(r#"{{"target": {{"url": "{url}"}}}}"#)).unwrap();
    let error = fails(hsm(&home, &["list-services"]), 1, "server gone");
    assert!(error.starts_with(&format!("error: cannot reach {url}/v1/services: ")), "{error}");

    // A broken configuration file is named, with the JSON path at fault.
    std::fs::write(home.join("config.json"), r#"{"target": {"url": "http://127.0.0.1:1", "colour": 1}}"#).unwrap();
    let error = fails(hsm(&home, &["list-services"]), 2, "broken config");
    assert!(error.contains("config.json at target.colour: unknown field `colour`"), "{error}");
}

#[test]
fn instances_through_the_server_print_what_the_cluster_shows() {
    let Some(plane) = ControlPlane::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = plane.kubeconfig();
    let kubeconfig = kubeconfig.to_str().unwrap();
    let home = dir.path().join("hsm");
    // An instance created directly (no converger runs here).
    let created = hsm(
        &home,
        &[
            "create-instance",
            "stackato.hpe.redis",
            "--instance-id",
            "rem-redis",
            "--mode",
            "direct",
            "--kubeconfig",
            kubeconfig,
        ],
    );
    assert_eq!(created.status.code(), Some(0), "{created:?}");

    let server = Server::start(&plane.kubeconfig(), dir.path());
    ok(hsm(&home, &["api", &server.url]), "hsm api");
    for args in [vec!["list-instances", "-o", "json"], vec!["get-instance", "rem-redis", "-o", "json"]] {
        let remote = ok(hsm(&home, &args), &format!("{args:?} through the server:\n{}", server.log()));
        let direct = ok(hsm(&home, &[&args[..], &["--kubeconfig", kubeconfig]].concat()), &format!("{args:?} direct"));
        assert_eq!(remote, direct, "{args:?}");
        assert!(remote.contains("rem-redis"), "{remote}");
    }
    let table = ok(hsm(&home, &["get-instance", "rem-redis"]), "get-instance");
    assert!(table.starts_with("INSTANCE:   rem-redis\nSERVICE:    stackato.hpe.redis\n"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("redis-password ") && l.ends_with(" ********")), "{table}");
    let list = ok(hsm(&home, &["list-instances"]), "list-instances");
    assert!(list.starts_with("INSTANCE ") && list.contains("\nrem-redis "), "{list}");

    // TLS against a real HTTPS server, the control plane's API server (no HSM server): its
    // certificate is refused without its CA, pointing at --ca-file; with the CA (or without
    // checks) the handshake passes and the answer says this is no HSM server.
    let other = dir.path().join("other");
    let https = format!("https://{}", plane.api());
    let error = fails(hsm(&other, &["api", &https]), 1, "a CA hsm does not know");
    assert!(error.starts_with(&format!("error: cannot reach {https}/v1/info: ")), "{error}");
    assert!(error.ends_with("(give the CA of the server's certificate with --ca-file FILE)\n"), "{error}");
    let ca = dir.path().join("cluster-ca.pem");
    std::fs::write(&ca, plane.ca().certificate()).unwrap();
    for flags in [vec!["--ca-file", ca.to_str().unwrap()], vec!["--skip-ssl-validation"]] {
        let error = fails(hsm(&other, &[&["api", https.as_str()][..], &flags].concat()), 1, "not an HSM server");
        assert!(
            error.ends_with(&format!("is {https} an HSM server? (it answers GET /v1/info)\n")),
            "{flags:?}: {error}"
        );
    }
    assert!(!other.join("config.json").exists());

    // An unknown instance: exit 1 as directly, naming it.
    let error = fails(hsm(&home, &["get-instance", "rem-nothing"]), 1, "unknown instance");
    assert_eq!(error, "error: id: instance \"rem-nothing\" not found\n");
    fails(hsm(&home, &["get-instance", "rem-nothing", "--kubeconfig", kubeconfig]), 1, "unknown instance, direct");
}

/// The session stored in `home`'s config.json.
fn session(home: &Path) -> serde_json::Value {
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("config.json")).unwrap()).unwrap();
    config["session"].clone()
}

/// Rewrites the stored session's `key` to `value`.
fn set_session(home: &Path, key: &str, value: serde_json::Value) {
    let file = home.join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    config["session"][key] = value;
    std::fs::write(&file, config.to_string()).unwrap();
}

/// Asserts that no secret of the session in `home` (nor `password`) is in `output`.
fn no_secret(output: &Output, home: &Path, password: &str) {
    let text = format!("{}{}", stdout(output), stderr(output));
    assert!(!text.contains(password), "the password is printed: {text}");
    let session = session(home);
    for key in ["access_token", "refresh_token"] {
        if let Some(token) = session[key].as_str() {
            assert!(!text.contains(token), "the {key} is printed: {text}");
        }
    }
}

#[test]
fn hsm_login_signs_in_through_the_real_provider_and_tokens_are_refreshed() {
    let provider = Provider::start(&Config::standard());
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &stratus_tests::process::dead_kubeconfig(dir.path()),
        dir.path(),
        &["--oidc-issuer", provider.issuer(), "--oidc-audience", HSM_AUDIENCE, "--oidc-leeway", "0s"],
    );
    let home = dir.path().join("hsm");
    let said = ok(hsm(&home, &["api", &server.url]), "hsm api");
    assert!(said.contains(&format!("sign-in:        {} (client hsm)\n", provider.issuer())), "{said}");
    assert!(said.ends_with("not signed in: run `hsm login`\n"), "{said}");
    let error = fails(hsm(&home, &["list-services"]), 1, "before login");
    assert_eq!(error, "error: not signed in to 127.0.0.1: run `hsm login`\n");

    // A wrong password is refused by the provider; nothing is stored, nothing secret printed.
    let output = hsm(&home, &["login", "-u", "viewer", "-p", "not-the-password"]);
    let error = fails(output, 1, "wrong password");
    assert!(error.starts_with("error: sign-in failed: the provider refused the credentials (invalid_grant"), "{error}");
    assert!(!error.contains("not-the-password"), "{error}");
    assert!(session(&home).is_null());

    // The password grant.
    let output = hsm(&home, &["login", "-u", "viewer", "-p", "viewer-password"]);
    no_secret(&output, &home, "viewer-password");
    assert_eq!(ok(output, "login -u -p"), format!("signed in to {} as viewer\n", server.url));
    assert_eq!(mode(&home.join("config.json")), 0o600);
    let stored = session(&home);
    assert_eq!((stored["user"].as_str(), stored["issuer"].as_str()), (Some("viewer"), Some(provider.issuer())));
    assert_eq!(stored["audience"].as_str(), Some(HSM_AUDIENCE));
    assert!(stored["refresh_token"].is_string(), "{stored}");
    let claims = stratus_tests::oidc::claims(stored["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"].as_str(), Some(HSM_AUDIENCE), "{claims}");
    let catalog = catalog_dir();
    for args in [vec!["list-services"], vec!["get-service", "stackato.hpe.redis", "-o", "json"]] {
        let output = hsm(&home, &args);
        no_secret(&output, &home, "viewer-password");
        let remote = ok(output, &format!("{args:?} signed in"));
        let direct = ok(hsm(&home, &[&["--catalog", catalog.to_str().unwrap()][..], &args].concat()), "direct");
        assert_eq!(remote, direct, "{args:?}");
    }
    let info = ok(hsm(&home, &["info"]), "info");
    assert!(info.contains("signed in as:   viewer (token valid for "), "{info}");

    // An expired access token is renewed with the refresh token before the request, and the
    // new tokens are stored.
    let before = session(&home);
    set_session(&home, "expires_at", serde_json::json!(1));
    let output = hsm(&home, &["list-services", "-o", "json"]);
    no_secret(&output, &home, "viewer-password");
    ok(output, "list-services after expiry");
    let after = session(&home);
    assert_ne!(after["access_token"], before["access_token"]);
    assert!(after["expires_at"].as_u64().unwrap() > 1, "{after}");
    assert_eq!(after["user"].as_str(), Some("viewer"));
    assert_eq!(mode(&home.join("config.json")), 0o600);
    // A refresh token the provider does not know: told to sign in again, exit 1.
    set_session(&home, "expires_at", serde_json::json!(1));
    set_session(&home, "refresh_token", serde_json::json!("not-a-refresh-token"));
    let error = fails(hsm(&home, &["list-services"]), 1, "refresh refused");
    assert!(error.starts_with("error: your session as viewer has expired and cannot be renewed"), "{error}");
    assert!(error.ends_with(": run `hsm login`\n"), "{error}");
    // A token the server does not accept (here: not signed by the provider): exit 1, sign in.
    set_session(&home, "expires_at", serde_json::json!(u64::MAX / 2));
    set_session(&home, "access_token", serde_json::json!("forged.token.value"));
    let error = fails(hsm(&home, &["list-services"]), 1, "forged token");
    assert!(error.starts_with("error: 127.0.0.1 did not accept your session"), "{error}");
    assert!(error.ends_with("run `hsm login`\n"), "{error}");

    // -u alone reads the password (one line of standard input without a terminal).
    let mut child = Command::new(env!("CARGO_BIN_EXE_hsm"))
        .args(["login", "-u", "nobody"])
        .env("HSM_HOME", &home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"nobody-password\n").unwrap();
    let output = child.wait_with_output().unwrap();
    no_secret(&output, &home, "nobody-password");
    assert_eq!(ok(output, "login -u, password on stdin"), format!("signed in to {} as nobody\n", server.url));
    // Signed in, without a role: 403, exit 1, saying so.
    let error = fails(hsm(&home, &["list-services"]), 1, "no role");
    assert!(error.contains("lacks the role"), "{error}");

    // The device authorization grant, finished by the user in the provider's pages.
    let mut child = Command::new(env!("CARGO_BIN_EXE_hsm"))
        .arg("login")
        .env("HSM_HOME", &home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    lines.read_line(&mut first).unwrap();
    let (uri, code) = first
        .trim()
        .strip_prefix("To sign in, open ")
        .and_then(|rest| rest.split_once(" and enter the code "))
        .unwrap_or_else(|| panic!("hsm login said {first:?}"));
    assert!(uri.starts_with(provider.url()), "{uri}");
    provider.approve_device(uri, code, "developer", "developer-password").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut lines, &mut rest).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{first}{rest}");
    assert_eq!(stdout(&output), format!("signed in to {} as developer\n", server.url));
    assert_eq!(session(&home)["user"].as_str(), Some("developer"));
    ok(hsm(&home, &["list-services"]), "list-services as developer");

    // logout forgets the tokens and keeps the target.
    assert_eq!(ok(hsm(&home, &["logout"]), "logout"), "signed out developer\n");
    assert!(session(&home).is_null());
    assert_eq!(ok(hsm(&home, &["api"]), "api"), format!("target: {}\nnot signed in\n", server.url));
    let error = fails(hsm(&home, &["list-services"]), 1, "after logout");
    assert_eq!(error, "error: not signed in to 127.0.0.1: run `hsm login`\n");
}

/// An `hsm controller` process, killed by its PID when dropped.
struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn write_verbs_through_the_server_create_change_and_delete() {
    let Some(plane) = ControlPlane::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = plane.kubeconfig();
    let _controller = Controller(
        Command::new(env!("CARGO_BIN_EXE_hsm"))
            .args(["controller", "--workers", "2", "--kubeconfig"])
            .arg(&kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("controller.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let started = std::time::Instant::now();
    while plane
        .get("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/hsm-controller")
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(|h| !h.is_empty()))
        != Some(true)
    {
        assert!(started.elapsed() < std::time::Duration::from_secs(90), "the converger does not lead");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let server = Server::start(&kubeconfig, dir.path());
    let home = dir.path().join("hsm");
    ok(hsm(&home, &["api", &server.url]), "hsm api");

    let create = ["create-instance", "stackato.hpe.mysql", "8.0", "--instance-id", "rw-db", "--timeout", "3m"];
    let said = ok(hsm(&home, &create), &format!("create through the server:\n{}", server.log()));
    // As hsm says it against a kubeconfig: the plan's size, then the state.
    let applied = said.strip_prefix("instance rw-db created: ").and_then(|rest| rest.split_once(" objects applied, "));
    let (count, rest) = applied.unwrap_or_else(|| panic!("{said}"));
    assert!(count.parse::<usize>().is_ok_and(|n| n > 3) && rest.starts_with("state running\n"), "{said}");
    // It followed the instance through its events, not by polling.
    let metrics = server.metrics();
    let events = "hsm_server_requests_total{route=\"/v1/instances/{id}/events\",method=\"GET\",status=\"200\"} ";
    assert!(metrics.lines().any(|l| l.starts_with(events)), "{metrics}");
    let error = fails(hsm(&home, &create), 2, "create again");
    assert!(error.contains("rw-db"), "{error}");
    let error =
        fails(hsm(&home, &["create-instance", "stackato.hpe.mysql", "--set", "NOPE=1"]), 2, "unknown parameter");
    assert!(error.contains("NOPE"), "{error}");

    let said = ok(hsm(&home, &["upgrade-instance", "rw-db", "8.4", "--timeout", "3m"]), "upgrade");
    assert!(said.starts_with("instance rw-db upgraded from 8.0/1.0.0 to 8.4/1.0.0: state running\n"), "{said}");
    let detail: serde_json::Value =
        serde_json::from_str(&ok(hsm(&home, &["get-instance", "rw-db", "-o", "json"]), "get")).unwrap();
    assert_eq!((detail["product_version"].as_str(), detail["state"].as_str()), (Some("8.4"), Some("running")));

    let file = dir.path().join("root-password");
    std::fs::write(&file, "Remote-Root-Secret-5e1d\n").unwrap();
    let set = format!("root-password={}", file.display());
    let output = hsm(&home, &["configure-instance", "rw-db", "--set-file", &set, "--timeout", "2m"]);
    assert!(!format!("{output:?}").contains("Remote-Root-Secret-5e1d"), "{output:?}");
    let said = ok(output, "configure");
    assert!(said.starts_with("instance rw-db reconfigured at 8.4/1.0.0: state running\n"), "{said}");
    let detail = ok(hsm(&home, &["get-instance", "rw-db", "-o", "json"]), "get");
    assert!(detail.contains(r#""root-password": "********""#), "{detail}");

    let error = fails(hsm(&home, &["delete-instance", "rw-db"]), 1, "delete without a terminal or -y");
    assert!(error.contains("pass -y to confirm"), "{error}");
    let said = ok(hsm(&home, &["delete-instance", "rw-db", "-y", "--timeout", "3m"]), "delete");
    assert_eq!(said, "instance rw-db deleted\n");
    fails(hsm(&home, &["get-instance", "rw-db"]), 1, "deleted");
    assert_eq!(
        ok(hsm(&home, &["delete-instance", "rw-db", "-y"]), "delete again"),
        "instance rw-db does not exist; nothing to delete\n"
    );
}

#[test]
fn bindings_through_the_server_print_what_the_cluster_shows() {
    let Some(plane) = ControlPlane::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = plane.kubeconfig();
    let kubeconfig = kubeconfig.to_str().unwrap();
    let home = dir.path().join("hsm");
    let direct = ["--kubeconfig", kubeconfig];
    let created = hsm(
        &home,
        &[
            "create-instance",
            "stackato.hpe.redis",
            "--instance-id",
            "rem-bind",
            "--mode",
            "direct",
            "--kubeconfig",
            kubeconfig,
        ],
    );
    assert_eq!(created.status.code(), Some(0), "{created:?}");
    let server = Server::start(&plane.kubeconfig(), dir.path());
    ok(hsm(&home, &["api", &server.url]), "hsm api");

    let made = ok(hsm(&home, &["create-binding", "rem-bind", "r1"]), &format!("create-binding:\n{}", server.log()));
    assert_eq!(made, "binding r1 of instance rem-bind: ready (Secret binding-r1 in namespace rem-bind)\n");
    for args in [
        vec!["list-bindings", "rem-bind", "-o", "json"],
        vec!["get-credentials", "rem-bind", "--binding", "r1", "-o", "json"],
    ] {
        let remote = ok(hsm(&home, &args), &format!("{args:?} through the server:\n{}", server.log()));
        let local = ok(hsm(&home, &[&args[..], &direct].concat()), &format!("{args:?} direct"));
        assert_eq!(remote, local, "{args:?}");
        assert!(remote.contains("\"r1\""), "{remote}");
    }
    let credentials: serde_json::Value = serde_json::from_str(&ok(
        hsm(&home, &["get-credentials", "rem-bind", "--binding", "r1", "-o", "json"]),
        "get-credentials",
    ))
    .unwrap();
    let password = credentials["values"]["password"].as_str().unwrap().to_string();
    assert_eq!(password.len(), 32);
    let list = hsm(&home, &["list-bindings", "rem-bind"]);
    assert!(stdout(&list).starts_with("BINDING "), "{list:?}");
    assert!(!format!("{}{}", stdout(&list), stderr(&list)).contains(&password));

    let deleted = ok(hsm(&home, &["delete-binding", "rem-bind", "r1"]), "delete-binding");
    assert_eq!(deleted, "binding r1 of instance rem-bind: deleting (Secret binding-r1 in namespace rem-bind)\n");
    assert_eq!(ok(hsm(&home, &["list-bindings", "rem-bind"]), "list-bindings"), "the instance has no bindings\n");
    let error = fails(hsm(&home, &["create-binding", "rem-nothing", "r1"]), 1, "unknown instance");
    assert_eq!(error, "error: id: instance \"rem-nothing\" not found\n");
    let error = fails(hsm(&home, &["get-credentials", "rem-bind", "--binding", "r1"]), 1, "a deleted binding");
    assert_eq!(error, "error: bid: binding \"r1\" of instance \"rem-bind\" not found\n");
    assert!(!server.log().contains(&password), "the password is in the server's log");
}
