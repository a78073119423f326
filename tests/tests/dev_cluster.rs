//! `stratus-dev-cluster up/down DIR` (what `scripts/dev-cluster` runs) as a user runs it: `up`
//! returns with a working kubeconfig, the converger, the identity provider and the HSM server
//! running, a second `up` does nothing, an Instance applied with kubectl becomes running, the
//! README's remote flow works with `DIR/hsm.env` (`hsm api`, `hsm login`, list, create, get,
//! delete through the server) without the password ever printed, `down` stops every process
//! and leaves the folder, a second `down` says there is nothing to stop.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use stratus_tests::cluster::ControlPlane;

fn dev_cluster(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stratus-dev-cluster")).args(args).arg(dir).output().unwrap()
}

/// Runs `down` in its folder when dropped, so that a failing test leaves no cluster running
/// (after the test's own `down`, it finds nothing to stop).
struct DownOnDrop(PathBuf);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = dev_cluster(&["down"], &self.0);
    }
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// The binary `bin` of `package`, next to this package's binary, built here into the same
/// target directory (debug profile; cargo does nothing when it is up to date).
fn built(package: &str, bin: &str) -> PathBuf {
    let own = Path::new(env!("CARGO_BIN_EXE_stratus-dev-cluster"));
    let path = own.with_file_name(bin);
    let target = own.parent().and_then(Path::parent).expect("<target>/debug/stratus-dev-cluster");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", package, "--bin", bin, "--target-dir"])
        .arg(target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(status.success() && path.is_file(), "cannot build {bin} into {}", target.display());
    path
}

/// `hsm` with `HSM_HOME` set to `home` and nothing else from the environment that could
/// choose a backend.
fn hsm_in(hsm: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(hsm)
        .args(args)
        .env("HSM_HOME", home)
        .env_remove("HSM_CATALOG")
        .env_remove("KUBECONFIG")
        .env_remove("HSM_MODE")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The values of `hsm.env` as a POSIX shell sees them after `. hsm.env`.
fn sourced(env: &Path) -> Vec<String> {
    let script = r#". "$1" && printf '%s\n' "$HSM_URL" "$HSM_CA_FILE" "$HSM_ADMIN_USER" "$HSM_ADMIN_PASSWORD" "$HSM_BROKER_USER" "$HSM_BROKER_PASSWORD""#;
    let output = Command::new("sh").args(["-c", script, "sh"]).arg(env).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    String::from_utf8(output.stdout).unwrap().lines().map(str::to_string).collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn pid_in(path: &Path) -> i32 {
    std::fs::read_to_string(path).unwrap().trim().parse().unwrap()
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("kubectl").args(args).env("KUBECONFIG", kubeconfig).output().unwrap()
}

#[test]
fn up_twice_down_twice_with_the_converger_and_the_hsm_server() {
    if !ControlPlane::available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("cluster");
    let catalog = Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog");
    let hsm = built("service-manager", "hsm");
    let server = built("hsm-server", "hsm-server");
    let with = [
        "--controller",
        hsm.to_str().unwrap(),
        "--catalog",
        catalog.to_str().unwrap(),
        "--server",
        server.to_str().unwrap(),
    ];
    let up =
        || Command::new(env!("CARGO_BIN_EXE_stratus-dev-cluster")).arg("up").args(with).arg(&dir).output().unwrap();

    let started = up();
    let _down = DownOnDrop(dir.clone());
    assert!(started.status.success(), "{}", text(&started));
    let kubeconfig = dir.join("kubeconfig");
    let env = dir.join("hsm.env");
    assert_eq!(mode(&env), 0o600, "hsm.env holds a password");
    let values = sourced(&env);
    let [url, ca_file, user, password, broker_user, broker_password] = &values[..] else {
        panic!("hsm.env: {values:?}")
    };
    assert_eq!(broker_user, "broker");
    assert!(broker_password.len() >= 20 && broker_password != password, "a generated broker password of its own");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    assert_eq!(Path::new(ca_file), dir.join("pki/ca.crt"));
    assert_eq!(user, "admin");
    assert!(password.len() >= 20, "a generated password of 20 characters or more");
    let said = format!(
        "cluster ready; kubeconfig: {}\nHSM server: {url}; sign in with the values in {}",
        kubeconfig.display(),
        env.display()
    );
    assert_eq!(text(&started).trim(), said);
    assert!(!text(&started).contains(password.as_str()));
    let again = up();
    assert!(again.status.success() && text(&again).starts_with("already running"), "{}", text(&again));
    assert!(text(&again).contains(&format!("HSM server: {url};")), "{}", text(&again));
    assert_eq!(sourced(&env), values, "a second up changes nothing");
    // The provider's configuration holds the password too: the owner's only.
    assert_eq!(mode(&dir.join("oidc")), 0o700);
    assert_eq!(mode(&dir.join("oidc/provider.json")), 0o600);
    assert_eq!(mode(&dir.join("hsm/tls.key")), 0o600);

    let nodes = kubectl(&kubeconfig, &["get", "nodes", "--no-headers"]);
    let listing = String::from_utf8_lossy(&nodes.stdout);
    assert_eq!(listing.lines().filter(|l| l.split_whitespace().nth(1) == Some("Ready")).count(), 3, "{listing}");

    // The converger runs with it: the documented example Instance becomes a running instance.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/instance.yaml");
    let applied = kubectl(&kubeconfig, &["apply", "-f", example.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", text(&applied));
    let waiting = Instant::now();
    loop {
        let state = kubectl(&kubeconfig, &["get", "instance", "orders-db", "-o", "jsonpath={.status.state}"]);
        if String::from_utf8_lossy(&state.stdout) == "running" {
            break;
        }
        assert!(
            waiting.elapsed() < Duration::from_secs(90),
            "the Instance never ran: {}\n{}",
            text(&state),
            stratus_tests::cluster::tail(&dir.join("logs/hsm-controller.log"), 20)
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // The remote flow of the README, with hsm.env's values, through the HSM server.
    let home = work.path().join("hsm-home");
    let flow: Vec<(Vec<&str>, &str)> = vec![
        (vec!["api", url, "--ca-file", ca_file], "api"),
        (vec!["login", "-u", user, "-p", password], "login"),
        (vec!["list-services"], "list-services"),
        (vec!["create-instance", "stackato.hpe.redis", "--instance-id", "r1", "--timeout", "3m"], "create"),
        (vec!["get-instance", "r1"], "get"),
        (vec!["delete-instance", "r1", "-y", "--timeout", "3m"], "delete"),
    ];
    let mut outputs = Vec::new();
    for (args, what) in flow {
        let output = hsm_in(&hsm, &home, &args);
        let said = text(&output);
        // Only the login's own arguments hold the password; no output does.
        assert!(!said.contains(password.as_str()), "{what} printed the password");
        assert!(
            output.status.success(),
            "hsm {what}: {said}\n{}",
            stratus_tests::cluster::tail(&dir.join("logs/hsm-server.log"), 20)
        );
        outputs.push(String::from_utf8(output.stdout).unwrap());
    }
    assert!(outputs[0].starts_with(&format!("target: {url}\nserver version: ")), "{}", outputs[0]);
    assert_eq!(outputs[1], format!("signed in to {url} as admin\n"));
    assert!(outputs[2].lines().any(|l| l.starts_with("stackato.hpe.redis ")), "{}", outputs[2]);
    let created = &outputs[3];
    assert!(
        created.starts_with("instance r1 created: ") && created.contains(" objects applied, state running\n"),
        "{created}"
    );
    assert!(outputs[4].starts_with("INSTANCE:   r1\nSERVICE:    stackato.hpe.redis\n"), "{}", outputs[4]);
    assert_eq!(outputs[5], "instance r1 deleted\n");
    // The service broker API answers with hsm.env's broker credentials (curl reads them from
    // its standard input, not its command line), and refuses the admin's.
    let broker = |credentials: &str| {
        let mut curl = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--config", "-", "--cacert", ca_file])
            .args(["-H", "X-Broker-API-Version: 2.17", &format!("{url}/v2/catalog")])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(curl.stdin.take().unwrap(), "user = \"{credentials}\"").unwrap();
        String::from_utf8(curl.wait_with_output().unwrap().stdout).unwrap()
    };
    assert_eq!(broker(&format!("{broker_user}:{broker_password}")), "200");
    assert_eq!(broker(&format!("{broker_user}:{password}")), "401");
    // Nor is it in any log.
    let logs = std::fs::read_dir(dir.join("logs")).unwrap().map(|entry| entry.unwrap().path());
    for log in logs.chain([dir.join("oidc/provider.log")]) {
        let content = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
        assert!(!content.contains(password.as_str()), "{} holds the password", log.display());
        assert!(!content.contains(broker_password.as_str()), "{} holds the broker's password", log.display());
    }

    let pid = pid_in(&dir.join("pid"));
    let children = [pid_in(&dir.join("oidc/pid")), pid_in(&dir.join("hsm/pid"))];
    for child in children {
        assert!(stratus_tests::cluster::running(child), "{child} runs");
    }
    let stopped = dev_cluster(&["down"], &dir);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert_eq!(text(&stopped).trim(), format!("cluster in {} stopped (its files stay)", dir.display()));
    assert!(!stratus_tests::cluster::running(pid), "the cluster's process is gone");
    for child in children {
        assert!(!stratus_tests::cluster::running(child), "the provider and the HSM server are gone ({child})");
    }
    assert!(!env.exists(), "hsm.env goes with the servers it describes");
    let refused = kubectl(&kubeconfig, &["get", "nodes", "--request-timeout=5s"]);
    assert!(!refused.status.success(), "nothing answers after down");
    for kept in [
        "kubeconfig",
        "pki/ca.crt",
        "etcd",
        "logs/kube-apiserver.log",
        "logs/hsm-controller.log",
        "logs/hsm-server.log",
        "oidc/provider.log",
    ] {
        assert!(dir.join(kept).exists(), "{kept} stays");
    }
    let again = dev_cluster(&["down"], &dir);
    assert_eq!(text(&again).trim(), format!("no cluster is running in {}", dir.display()));
}
