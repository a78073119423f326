//! Installer speed: `cargo bench -p bootstrap --bench render` prints
//! - the time to validate and render the Terraform and the cloud-configs of 3, 30 and 300
//!   nodes (local provider, every machine listed; and OpenStack, where counts drive `count`),
//! - `bootstrap plan` wall time against a bare `terraform plan` of the same rendered directory
//!   (local provider, both after the first init), and their ratio.
//!
//! Medians of repeated runs (the two plans interleaved, 61 pairs; also the median of each
//! pair's own ratio); figures only, no assertion.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

fn local_properties(nodes: usize) -> String {
    let addresses: Vec<String> = (0..nodes).map(|i| format!("10.1.{}.{}", i / 250, i % 250 + 1)).collect();
    format!(
        "Provider = local\nHCPDomainName = stratus.example.com\nLocal.MasterAddresses = 10.0.0.1, 10.0.0.2, 10.0.0.3\nLocal.NodeAddresses = {}\nLocal.GlusterFSAddresses = 10.0.1.1, 10.0.1.2\nLocal.SSHKeyFile = example-key\n",
        addresses.join(", ")
    )
}

fn main() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(examples.join("example-key"), dir.path().join("example-key")).unwrap();
    let env = BTreeMap::new();
    let pki = bootstrap::pki::Pki::generate("bench").unwrap();
    for nodes in [3, 30, 300] {
        let local = dir.path().join(format!("local-{nodes}.properties"));
        std::fs::write(&local, local_properties(nodes)).unwrap();
        let openstack_text = std::fs::read_to_string(examples.join("openstack.properties"))
            .unwrap()
            .replace("NodeCount = 3", &format!("NodeCount = {nodes}"));
        let openstack = dir.path().join(format!("openstack-{nodes}.properties"));
        std::fs::write(&openstack, openstack_text).unwrap();
        let render = |path: &Path| {
            let config = bootstrap::load(path, &env).unwrap();
            black_box(bootstrap::render::render(&config, &pki).unwrap());
        };
        let local_time = time(50, || render(&local));
        let openstack_time = time(50, || render(&openstack));
        println!(
            "validate + render, {nodes:>3} nodes: local {:>7.3} ms   openstack {:>7.3} ms",
            local_time.as_secs_f64() * 1e3,
            openstack_time.as_secs_f64() * 1e3
        );
    }

    let state = dir.path().join("state");
    let plan = || {
        let output = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
            .args(["plan", "-i"])
            .arg(examples.join("local.properties"))
            .arg("--state-dir")
            .arg(&state)
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    };
    let bare = || {
        let output = Command::new("terraform")
            .args(["plan", "-input=false", "-no-color", "-out=plan.tfplan"])
            .current_dir(state.join("terraform"))
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .env("TF_IN_AUTOMATION", "1")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    };
    // Interleaved (plan, bare, plan, bare, ...) so drift in the machine's speed during the
    // run affects both sides alike; each pair also gives a ratio of its own.
    plan();
    bare();
    let (mut plans, mut bares, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..61 {
        let start = Instant::now();
        plan();
        let plan_time = start.elapsed();
        let start = Instant::now();
        bare();
        let bare_time = start.elapsed();
        plans.push(plan_time);
        bares.push(bare_time);
        ratios.push(plan_time.as_secs_f64() / bare_time.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    let (bootstrap_plan, terraform_plan) = (median(plans), median(bares));
    println!("bootstrap plan (local):  {:>8.1} ms", bootstrap_plan.as_secs_f64() * 1e3);
    println!("terraform plan (bare):   {:>8.1} ms", terraform_plan.as_secs_f64() * 1e3);
    println!("ratio:                   {:>8.3}", bootstrap_plan.as_secs_f64() / terraform_plan.as_secs_f64());
    println!("median of paired ratios: {:>8.3}", ratios[ratios.len() / 2]);
}
