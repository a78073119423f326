//! `bootstrap-cloud`: the cloud helper `bootstrap` runs for preflight checks, leftovers and
//! sweeps (the protocol: `bootstrap-cloud-protocol`). Reads one JSON request on stdin, writes
//! one JSON answer on stdout; exit 0 when it answered (even `Failed`), 2 when the request was
//! not understood. `bootstrap` runs the `bootstrap-cloud` next to its own executable, else the
//! one on PATH: install both (`cargo install --path bootstrap` and
//! `cargo install --path bootstrap/cloud-helper`).

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::time::Duration;

use bootstrap_cloud_protocol::{Answer, Request};

fn main() -> ExitCode {
    // The AWS SDKs and the OpenStack SDK use rustls: one crypto provider (ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    if std::io::stdin().is_terminal() || std::env::args().len() > 1 {
        eprintln!(
            "bootstrap-cloud is run by bootstrap (preflight, uninstall): it reads one JSON request on stdin and takes no arguments"
        );
        return ExitCode::from(2);
    }
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("error: bootstrap-cloud: cannot read the request: {e}");
        return ExitCode::from(2);
    }
    let request: Request = match serde_json::from_slice(&input) {
        Ok(request) => request,
        Err(e) => {
            // The request holds credentials: only where it broke is shown.
            eprintln!(
                "error: bootstrap-cloud: not a request (line {}, column {}); it is run by bootstrap",
                e.line(),
                e.column()
            );
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime starts");
    let answer = runtime.block_on(answer(request));
    println!("{}", serde_json::to_string(&answer).expect("answers serialise"));
    ExitCode::SUCCESS
}

async fn answer(request: Request) -> Answer {
    let outcome: Result<Answer, String> = match request {
        Request::AwsPreflight { connection, requirements } => {
            let clients = bootstrap_aws::client(&connection).await;
            bootstrap_aws::preflight(&clients, &requirements).await.map(Answer::Problems).map_err(|e| e.to_string())
        }
        Request::AwsLeftovers { connection, cluster } => {
            let clients = bootstrap_aws::client(&connection).await;
            bootstrap_aws::tagged(&clients, &cluster)
                .await
                .map(|found| Answer::Found(found.iter().map(|l| format!("{} {}", l.kind, l.id)).collect()))
                .map_err(|e| e.to_string())
        }
        Request::AwsSweep { connection, cluster, retry_after_seconds } => {
            let clients = bootstrap_aws::client(&connection).await;
            bootstrap_aws::sweep(&clients, &cluster, Duration::from_secs(retry_after_seconds))
                .await
                .map(|failed| {
                    Answer::NotRemoved(failed.iter().map(|(l, why)| format!("{} {}: {why}", l.kind, l.id)).collect())
                })
                .map_err(|e| e.to_string())
        }
        Request::OpenStackPreflight { connection, requirements } => async {
            let client = bootstrap_openstack::connect(&connection).await?;
            bootstrap_openstack::preflight(&client, &requirements).await.map(Answer::Problems)
        }
        .await
        .map_err(|e| e.to_string()),
        Request::OpenStackLeftovers { connection, cluster } => async {
            let client = bootstrap_openstack::connect(&connection).await?;
            let found = bootstrap_openstack::leftovers(&client, &cluster).await?;
            Ok::<_, bootstrap_openstack::OpenStackError>(Answer::Found(
                found.iter().map(|l| format!("{} {} ({})", l.kind, l.id, l.name)).collect(),
            ))
        }
        .await
        .map_err(|e| e.to_string()),
        Request::OpenStackSweep { connection, cluster } => async {
            let client = bootstrap_openstack::connect(&connection).await?;
            let failed = bootstrap_openstack::sweep(&client, &cluster).await?;
            Ok::<_, bootstrap_openstack::OpenStackError>(Answer::NotRemoved(
                failed.iter().map(|(l, why)| format!("{} {} ({}): {why}", l.kind, l.id, l.name)).collect(),
            ))
        }
        .await
        .map_err(|e| e.to_string()),
    };
    outcome.unwrap_or_else(Answer::Failed)
}
