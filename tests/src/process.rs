//! Small helpers for tests that run the project's own servers as child processes: a
//! kubeconfig whose API server never answers, and reading the one line a server prints to say
//! where it listens (`listening on URL`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Child;

/// Writes `dir/dead-kubeconfig`: a kubeconfig whose API server is a loopback port nothing
/// listens on (bound, then closed), with a token that is not real.
pub fn dead_kubeconfig(dir: &Path) -> PathBuf {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let path = dir.join("dead-kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: not-a-real-token\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The URL in the first line `child` prints on its (piped) stdout, `listening on URL`; panics
/// with that line and the log at `log` when it says anything else.
pub fn listening_url(child: &mut Child, log: &Path) -> String {
    let mut line = String::new();
    let stdout = child.stdout.take().expect("the server's stdout is piped");
    BufReader::new(stdout).read_line(&mut line).unwrap();
    match line.trim().strip_prefix("listening on ") {
        Some(url) => url.to_string(),
        None => panic!("the server said {line:?}:\n{}", std::fs::read_to_string(log).unwrap_or_default()),
    }
}
