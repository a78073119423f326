//! `bootstrap`: the Stratus installer command line. Exit codes: 0 success, 2 bad input.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bootstrap",
    version,
    about = "Stratus installer: bootstrap.properties → Terraform → Kubernetes → platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a properties file and report every problem.
    Validate {
        /// The properties file.
        #[arg(short = 'i', long = "input", value_name = "FILE")]
        input: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    match cli.command {
        Command::Validate { input } => match bootstrap::load(&input, &env) {
            Ok(config) => {
                println!(
                    "{}: valid; provider {}, {} master(s), {} node(s), {} GlusterFS node(s), domain {}",
                    input.display(),
                    config.provider.templates(),
                    config.master_count,
                    config.node_count,
                    config.gluster_node_count,
                    config.domain
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::from(2)
            }
        },
    }
}
