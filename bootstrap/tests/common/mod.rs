//! What the `local`-provider tests share: a throw-away `sshd` (Debian's openssh-server)
//! answering on 127.0.0.1-5 as the "machines", their properties file, the `bootstrap` command against a state
//! directory, the Terraform CLI and its state listing, and a kill in the middle of an apply.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running sshd; stopped when dropped.
pub struct Sshd {
    child: Child,
    /// Holds its keys and configuration.
    pub dir: tempfile::TempDir,
    /// Its port.
    pub port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts one with a fresh host key and user key (`dir/userkey`).
pub fn sshd() -> Sshd {
    assert!(
        Path::new("/usr/sbin/sshd").exists(),
        "sshd is not installed: run scripts/test (it installs Debian's openssh-server)"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    for key in ["hostkey", "userkey"] {
        let status =
            Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(path(key)).status().unwrap();
        assert!(status.success());
    }
    std::fs::copy(path("userkey.pub"), path("authorized_keys")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nListenAddress 127.0.0.2\nListenAddress 127.0.0.3\nListenAddress 127.0.0.4\nListenAddress 127.0.0.5\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n",
        path("hostkey").display(),
        path("sshd.pid").display(),
        path("authorized_keys").display()
    );
    std::fs::write(path("sshd_config"), config).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(path("sshd_config"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.5", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "sshd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Sshd { child, dir, port }
}

/// A `local` cluster `fx` on the sshd's machines (master 127.0.0.1, nodes 127.0.0.2-3) whose
/// files go under `machines`, with the `extra` lines appended; written next to the sshd's
/// keys. Returns its path.
pub fn local_properties(sshd: &Sshd, machines: &Path, extra: &str) -> std::path::PathBuf {
    let text = format!(
        "Provider = local\nClusterName = fx\nHCPDomainName = stratus.example.com\n\
         Local.MasterAddresses = 127.0.0.1\nLocal.NodeAddresses = 127.0.0.2, 127.0.0.3\n\
         Local.SSHUser = root\nLocal.SSHPort = {}\nLocal.SSHKeyFile = {}\nLocal.MachineDir = {}\n{extra}",
        sshd.port,
        sshd.dir.path().join("userkey").display(),
        machines.display()
    );
    let path = sshd.dir.path().join("bootstrap.properties");
    std::fs::write(&path, text).unwrap();
    path
}

/// `bootstrap <args> -i input --state-dir state`, without a terminal or a Terraform CLI config.
pub fn bootstrap(args: &[&str], input: &Path, state: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bootstrap"));
    command
        .args(args)
        .arg("-i")
        .arg(input)
        .arg("--state-dir")
        .arg(state)
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .stdin(Stdio::null());
    command
}

/// `terraform <args>` (or `tofu`, as bootstrap chooses) in the working directory `dir`,
/// without a CLI config.
pub fn terraform(dir: &Path, args: &[&str]) -> std::process::Output {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let program = bootstrap::terraform::binary(std::env::var("STRATUS_TERRAFORM").ok(), &path, &|p| p.is_file());
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .expect("terraform is installed")
}

/// The resources in the Terraform state of `state`.
pub fn state_list(state: &Path) -> Vec<String> {
    String::from_utf8_lossy(&terraform(&state.join("terraform"), &["state", "list"]).stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs `command` (a bootstrap run against `state`) and kill -9s its whole process group
/// (bootstrap and its terraform) 300 ms into `terraform apply`; returns how many resources the
/// state then holds.
pub fn kill_mid_apply(mut command: Command, state: &Path) -> usize {
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::null()).process_group(0).spawn().unwrap();
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(state.join("terraform.log")).unwrap_or_default();
        if log.contains("$ terraform apply") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the apply never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    Command::new("kill").args(["-9", "--", &format!("-{}", child.id())]).status().unwrap();
    let _ = child.wait();
    state_list(state).len()
}
