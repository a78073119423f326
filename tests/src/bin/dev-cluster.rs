//! `stratus-dev-cluster`: a local Kubernetes control plane for trying Stratus without a cloud
//! — the test suite's real etcd, kube-apiserver, controller manager and scheduler, with the
//! node agent standing in for kubelets (no container runs: pods are reported Running).
//!
//! `up DIR` starts it in the background and returns once the API is ready (`DIR/kubeconfig`);
//! `down DIR` stops it and removes nothing; `up` on a running cluster does nothing. With
//! `--controller HSM`, `hsm controller` (the converger) runs with it, and `up` returns once the
//! `Instance` resource is served; with `--server HSM_SERVER`, the identity provider and the
//! HSM server run with it and `DIR/hsm.env` says how to sign in. Run by `scripts/dev-cluster`.
//! This binary parses flags and prints; the work is `stratus_tests::dev_cluster`'s.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stratus_tests::dev_cluster;

#[derive(Parser)]
#[command(name = "stratus-dev-cluster", version, about = "A local Kubernetes control plane (no containers run)")]
struct Args {
    #[command(subcommand)]
    command: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Start the cluster in DIR in the background; return when its API is ready.
    Up {
        /// State, certificates, logs and `kubeconfig` go here.
        dir: PathBuf,
        #[command(flatten)]
        with: With,
    },
    /// Stop the cluster running in DIR (its files stay).
    Down {
        /// The folder given to `up`.
        dir: PathBuf,
    },
    /// Run the cluster in the foreground until SIGTERM or Ctrl-C (what `up` starts).
    Run {
        /// The folder given to `up`.
        dir: PathBuf,
        #[command(flatten)]
        with: With,
    },
}

/// What runs with the control plane.
#[derive(clap::Args, Clone)]
struct With {
    /// How many nodes the node agent registers.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Run `HSM controller` (the converger) with the cluster, its log in `DIR/logs`.
    #[arg(long, value_name = "HSM")]
    controller: Option<PathBuf>,
    /// The catalog the controller and the HSM server read.
    #[arg(long, value_name = "DIR")]
    catalog: Option<PathBuf>,
    /// Run the identity provider (Node, tests/oidc) and `HSM_SERVER` with the cluster, both
    /// over HTTPS on loopback; `DIR/hsm.env` (mode 0600) has their URL, CA and admin sign-in.
    #[arg(long, value_name = "HSM_SERVER")]
    server: Option<PathBuf>,
}

impl From<With> for dev_cluster::With {
    fn from(with: With) -> Self {
        dev_cluster::With { nodes: with.nodes, controller: with.controller, catalog: with.catalog, server: with.server }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Verb::Up { dir, with } => std::env::current_exe()
            .map_err(|e| e.to_string())
            .and_then(|program| dev_cluster::up(&program, &dir, &with.into())),
        Verb::Down { dir } => dev_cluster::down(&dir),
        Verb::Run { dir, with } => dev_cluster::run(&dir, &with.into()),
    };
    match result {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
