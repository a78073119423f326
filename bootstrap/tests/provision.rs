//! `bootstrap provision` and `uninstall` for real on the `local` provider: three "machines"
//! at 127.0.0.1-3 served by a throw-away `sshd` (Debian's openssh-server), Terraform's
//! `terraform_data` + SSH provisioners, a kill in the middle of the apply and a re-run that
//! finishes without duplicating anything, a node removed by editing the list, then a teardown
//! that leaves nothing; and the apply's progress bar on a pseudo-terminal, with `KeepTerraform`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{bootstrap, kill_mid_apply, local_properties, sshd, state_list, terraform};

#[test]
fn provision_survives_a_kill_and_uninstall_leaves_nothing() {
    let sshd = sshd();
    let work = tempfile::tempdir().unwrap();
    let machines = work.path().join("machines");
    let state = work.path().join("state");
    let input = local_properties(&sshd, &machines, "");
    // Upload dirs a killed run left on the machine an hour ago go; a fresh one (another run's) stays.
    let upload_dir =
        |n: u32| PathBuf::from(format!("/tmp/stratus-{:08x}-0000-4000-8000-{:012x}", std::process::id(), n));
    let (stale, fresh) = (upload_dir(1), upload_dir(2));
    for dir in [&stale, &fresh] {
        std::fs::create_dir(dir).unwrap();
        std::fs::write(dir.join("cloud-config.yaml"), "left by a killed run").unwrap();
    }
    assert!(Command::new("touch").args(["-d", "2 hours ago"]).arg(&stale).status().unwrap().success());

    // Kill the whole process group (bootstrap and its terraform) in the middle of the apply.
    let after_kill = kill_mid_apply(bootstrap(&["provision"], &input, &state), &state);
    assert!(after_kill < 3, "the kill came too late to test anything ({after_kill} resources done)");

    let output = bootstrap(&["provision"], &input, &state).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("provisioned cluster fx (master-0, node-0, node-1)\nAPI: https://127.0.0.1:6443\n"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}/{} ready terraform_data.machine", 3 - after_kill, 3 - after_kill)),
        "{stderr}"
    );
    assert_eq!(state_list(&state).len(), 3);
    for file in ["machine.json", "cloud-config.yaml"] {
        assert!(machines.join(file).exists(), "{file} was not delivered over SSH");
    }
    assert!(!stale.exists(), "{} was not cleared", stale.display());
    assert!(fresh.join("cloud-config.yaml").exists(), "{} was removed too early", fresh.display());
    std::fs::remove_dir_all(&fresh).unwrap();
    let delivered = std::fs::read_to_string(machines.join("machine.json")).unwrap();
    assert!(delivered.contains("\"cluster\":\"fx\""), "{delivered}");
    let terraform = state.join("terraform");
    assert!(!terraform.join("cloud-init").exists() && !terraform.join("plan.tfplan").exists());

    // Re-running changes nothing and duplicates nothing.
    let again = bootstrap(&["provision"], &input, &state).output().unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("terraform plan: 0 to add, 0 to change, 0 to destroy"));
    assert_eq!(state_list(&state).len(), 3);
    let status =
        Command::new(env!("CARGO_BIN_EXE_bootstrap")).args(["status", "--state-dir"]).arg(&state).output().unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("status: provisioned\n"));

    // Removing a node from the list and provisioning again removes that machine only.
    let text = std::fs::read_to_string(&input).unwrap().replace("127.0.0.2, 127.0.0.3", "127.0.0.2");
    std::fs::write(&input, text).unwrap();
    let smaller = bootstrap(&["provision"], &input, &state).output().unwrap();
    assert!(smaller.status.success(), "{}", String::from_utf8_lossy(&smaller.stderr));
    assert!(String::from_utf8_lossy(&smaller.stderr).contains("terraform plan: 0 to add, 0 to change, 1 to destroy"));
    assert_eq!(state_list(&state), vec!["terraform_data.machine[\"master-0\"]", "terraform_data.machine[\"node-0\"]"]);

    let refused = bootstrap(&["uninstall"], &input, &state).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(state_list(&state).len(), 2, "nothing destroyed without confirmation");
    let removed = bootstrap(&["uninstall", "--yes"], &input, &state).output().unwrap();
    assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
    let removed_err = String::from_utf8_lossy(&removed.stderr);
    assert!(removed_err.contains("2/2 destroyed"), "{removed_err}");
    assert!(removed_err.contains("uninstalled: nothing is left in the Terraform state"), "{removed_err}");
    assert!(!terraform.exists());
}

#[test]
fn on_a_terminal_the_apply_shows_a_progress_bar() {
    let sshd = sshd();
    let work = tempfile::tempdir().unwrap();
    let (machines, state) = (work.path().join("machines"), work.path().join("state"));
    // KeepTerraform keeps everything Terraform was given, for running it by hand.
    let input = local_properties(&sshd, &machines, "KeepTerraform = true\n");
    let command =
        format!("{} provision -i {} --state-dir {}", env!("CARGO_BIN_EXE_bootstrap"), input.display(), state.display());
    // util-linux `script` gives bootstrap a pseudo-terminal and copies what it draws.
    let output = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::piped())
        .output()
        .expect("script (util-linux) runs");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{screen}");
    // The bar: elapsed time, resources done out of the total, what is in flight.
    assert!(screen.contains("[00:00:"), "no elapsed time drawn: {screen:?}");
    assert!(
        screen.contains(" 0/3 in flight: terraform_data.machine[\""),
        "no bar before the first machine: {screen:?}"
    );
    // A line per finished resource above it, and the bar gone at the end.
    assert!(screen.contains("3/3 ready terraform_data.machine[\""), "{screen:?}");
    assert!(screen.contains("provisioned cluster fx (master-0, node-0, node-1)"), "{screen:?}");
    assert_eq!(state_list(&state).len(), 3);
    let terraform = state.join("terraform");
    for kept in ["plan.tfplan", "cloud-init/master-0.yaml", "cloud-init/node-1.yaml"] {
        assert!(terraform.join(kept).exists(), "KeepTerraform = true, yet {kept} is gone: {screen:?}");
    }
}

#[test]
fn two_clusters_provisioned_at_once_on_the_same_machines_each_get_their_own_files() {
    let sshd = sshd();
    let work = tempfile::tempdir().unwrap();
    let path = |name: &str| work.path().join(name);
    // Two clusters, both named fx, on the same three machines, with separate machine dirs.
    let first = local_properties(&sshd, &path("machines-a"), "KeepTerraform = true\n");
    let text = std::fs::read_to_string(&first).unwrap();
    let inputs = [path("a.properties"), path("b.properties")];
    std::fs::write(&inputs[0], &text).unwrap();
    std::fs::write(&inputs[1], text.replace("machines-a", "machines-b")).unwrap();
    let states = [path("state-a"), path("state-b")];

    let runs: Vec<_> = (0..2).map(|i| bootstrap(&["provision"], &inputs[i], &states[i]).spawn().unwrap()).collect();
    for (run, machines) in runs.into_iter().zip(["machines-a", "machines-b"]) {
        let output = run.wait_with_output().unwrap();
        assert!(output.status.success(), "{machines}: {}", String::from_utf8_lossy(&output.stderr));
    }
    for (state, machines) in states.iter().zip(["machines-a", "machines-b"]) {
        // The three machines share the dir: the file is the last one's, from this cluster.
        let delivered = std::fs::read(path(machines).join("cloud-config.yaml"))
            .unwrap_or_else(|e| panic!("{machines}/cloud-config.yaml: {e}"));
        let own = ["master-0", "node-0", "node-1"]
            .map(|m| std::fs::read(state.join("terraform/cloud-init").join(format!("{m}.yaml"))).unwrap());
        assert!(own.contains(&delivered), "{machines} holds another cluster's cloud-config");
        // The private upload dirs, named after each resource's ID, are gone.
        let shown: serde_json::Value =
            serde_json::from_slice(&terraform(&state.join("terraform"), &["show", "-json"]).stdout).unwrap();
        let resources = shown["values"]["root_module"]["resources"].as_array().unwrap();
        assert_eq!(resources.len(), 3);
        for resource in resources {
            let id = resource["values"]["id"].as_str().unwrap();
            assert!(!Path::new(&format!("/tmp/stratus-{id}")).exists(), "/tmp/stratus-{id} was left behind");
        }
    }
}
