//! `stratus-dev-cluster up/down DIR` (what `scripts/dev-cluster` runs) as a user runs it: `up`
//! returns with a working kubeconfig and the converger running, a second `up` does nothing,
//! an Instance applied with kubectl becomes running, `down` stops every process and leaves
//! the folder, a second `down` says there is nothing to stop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use stratus_tests::cluster::ControlPlane;

fn dev_cluster(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stratus-dev-cluster")).args(args).arg(dir).output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// `hsm`, next to this package's binary (`cargo test --workspace` builds it; otherwise it is
/// built here, into the same target directory, debug profile).
fn hsm() -> PathBuf {
    let own = Path::new(env!("CARGO_BIN_EXE_stratus-dev-cluster"));
    let hsm = own.with_file_name("hsm");
    if !hsm.is_file() {
        let target = own.parent().and_then(Path::parent).expect("<target>/debug/stratus-dev-cluster");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "service-manager", "--bin", "hsm", "--target-dir"])
            .arg(target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success() && hsm.is_file(), "cannot build hsm into {}", target.display());
    }
    hsm
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("kubectl").args(args).env("KUBECONFIG", kubeconfig).output().unwrap()
}

#[test]
fn up_twice_down_twice_with_the_converger() {
    if !ControlPlane::available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("cluster");
    let catalog = Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog");
    let hsm = hsm();
    let with = ["--controller", hsm.to_str().unwrap(), "--catalog", catalog.to_str().unwrap()];
    let up =
        || Command::new(env!("CARGO_BIN_EXE_stratus-dev-cluster")).arg("up").args(with).arg(&dir).output().unwrap();

    let started = up();
    assert!(started.status.success(), "{}", text(&started));
    let kubeconfig = dir.join("kubeconfig");
    assert_eq!(text(&started).trim(), format!("cluster ready; kubeconfig: {}", kubeconfig.display()));
    let again = up();
    assert!(again.status.success() && text(&again).starts_with("already running"), "{}", text(&again));

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

    let pid: i32 = std::fs::read_to_string(dir.join("pid")).unwrap().trim().parse().unwrap();
    let stopped = dev_cluster(&["down"], &dir);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert_eq!(text(&stopped).trim(), format!("cluster in {} stopped (its files stay)", dir.display()));
    assert!(!stratus_tests::cluster::running(pid), "the cluster's process is gone");
    let refused = kubectl(&kubeconfig, &["get", "nodes", "--request-timeout=5s"]);
    assert!(!refused.status.success(), "nothing answers after down");
    for kept in ["kubeconfig", "pki/ca.crt", "etcd", "logs/kube-apiserver.log", "logs/hsm-controller.log"] {
        assert!(dir.join(kept).exists(), "{kept} stays");
    }
    let again = dev_cluster(&["down"], &dir);
    assert_eq!(text(&again).trim(), format!("no cluster is running in {}", dir.display()));
}
