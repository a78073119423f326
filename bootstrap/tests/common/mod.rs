//! A throw-away `sshd` (Debian's openssh-server) answering on 127.0.0.1-5: the "machines"
//! of the `local` provider in tests.

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
