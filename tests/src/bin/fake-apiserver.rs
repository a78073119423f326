//! `fake-apiserver`: the test Kubernetes API server as a program, so anyone can point
//! `kubectl` or `hsm` at it.
//!
//! `fake-apiserver --listen 127.0.0.1:PORT --kubeconfig-out FILE [--ready-after SECONDS] [--latency-ms N]`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use stratus_tests::apiserver::store::ControllerConfig;
use stratus_tests::apiserver::{Config, FakeApiServer};

#[derive(Parser)]
#[command(
    name = "fake-apiserver",
    version,
    about = "A Kubernetes API server for tests (in memory, plain HTTP, no auth)"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write a kubeconfig for this server here.
    #[arg(long, value_name = "FILE")]
    kubeconfig_out: Option<PathBuf>,
    /// Seconds after a change before workloads are ready, jobs complete and load balancers get addresses.
    #[arg(long, default_value_t = 0.2)]
    ready_after: f64,
    /// Milliseconds added to every response.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !(args.ready_after.is_finite() && args.ready_after >= 0.0) {
        anyhow::bail!("--ready-after must be a number of seconds, 0 or more");
    }
    let config = Config {
        controller: ControllerConfig {
            ready_after: Duration::from_secs_f64(args.ready_after),
            ..ControllerConfig::default()
        },
        latency: Duration::from_millis(args.latency_ms),
        ..Config::default()
    };
    let server = FakeApiServer::spawn(config, args.listen)?;
    if let Some(path) = &args.kubeconfig_out {
        server.write_kubeconfig(path)?;
    }
    println!("fake-apiserver listening on {}", server.url());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<_, std::io::Error>(())
    })?;
    Ok(())
}
