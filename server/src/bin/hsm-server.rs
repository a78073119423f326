//! `hsm-server`: flags → the catalog, the cluster and the address → serve until SIGTERM.
//! Exit codes: 0 after a graceful stop, 2 for bad input (flags, the catalog), 1 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use hsm_server::serve::{self, AppState};
use sdl::catalog::Catalog;
use service_manager::cli::SHIPPED_CATALOG;
use service_manager::cluster::{ClientOptions, Cluster};

/// The HSM server: HTTP API v1 (read-only, unauthenticated, loopback only in this version).
#[derive(Parser)]
#[command(name = "hsm-server", version)]
struct Args {
    /// Address to listen on: a loopback IP address and port (port 0: any free port).
    #[arg(long, env = "HSM_SERVER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Service catalog folder (default: the catalog shipped with Stratus).
    #[arg(long, env = "HSM_CATALOG")]
    catalog: Option<PathBuf>,
    /// Kubeconfig (default: KUBECONFIG, ~/.kube/config, or the in-cluster service account).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long)]
    context: Option<String>,
    /// How long one request may take, e.g. 30s.
    #[arg(long, default_value = "30s", value_parser = service_manager::terminal::parse_timeout)]
    request_timeout: Duration,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // kube's rustls uses ring; install it as the process-wide provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = tracing_subscriber::EnvFilter::try_from_env("HSM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("hsm_server=info,tower_http=info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start: {error}"), 1),
    };
    runtime.block_on(run(args))
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

async fn run(args: Args) -> ExitCode {
    let address = match serve::listen_address(&args.listen) {
        Ok(address) => address,
        Err(error) => return fail(&error.to_string(), 2),
    };
    let dir = args.catalog.unwrap_or_else(|| {
        let shipped = PathBuf::from(SHIPPED_CATALOG);
        std::fs::canonicalize(&shipped).unwrap_or(shipped)
    });
    let catalog = match Catalog::load(&dir) {
        Ok(catalog) => catalog,
        Err(error) => return fail(&format!("catalog {}: {error}", dir.display()), 2),
    };
    for broken in &catalog.broken {
        tracing::warn!("service {} left out: {}", broken.id, broken.error);
    }
    let options = ClientOptions { request_timeout: args.request_timeout, ..ClientOptions::default() };
    let cluster = match Cluster::connect(args.kubeconfig.as_deref(), args.context.as_deref(), options).await {
        Ok(cluster) => cluster,
        Err(error) => return fail(&error.to_string(), 1),
    };
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => return fail(&format!("cannot listen on {address}: {error}"), 1),
    };
    let bound = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| address.to_string());
    // The one line on stdout: where to reach the server (port 0 picks a free one).
    println!("listening on http://{bound}");
    let state = AppState::new(catalog, Some(cluster), args.request_timeout);
    match serve::run(listener, state, serve::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error.to_string(), 1),
    }
}
