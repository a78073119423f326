//! Small helpers for tests that run the project's own servers as child processes: a
//! kubeconfig whose API server never answers, and reading the one line a server prints to say
//! where it listens (`listening on URL`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc;
use std::time::Duration;

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

/// The first line `child` prints on its (piped) stdout, waited for up to `limit` (empty when
/// it says nothing in time or exits first). The rest of its stdout is read and dropped in the
/// background, so that a chatty child never blocks on a full pipe.
pub fn first_line(child: &mut Child, limit: Duration) -> String {
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = send.send(line);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    receive.recv_timeout(limit).unwrap_or_default()
}

/// The URL in the first line `child` prints on its (piped) stdout, `listening on URL`; panics
/// with that line and the log at `log` when it says anything else within 60 s.
pub fn listening_url(child: &mut Child, log: &Path) -> String {
    let line = first_line(child, Duration::from_secs(60));
    match line.trim().strip_prefix("listening on ") {
        Some(url) => url.to_string(),
        None => panic!("the server said {line:?}:\n{}", std::fs::read_to_string(log).unwrap_or_default()),
    }
}
