//! `bootstrap`: the Stratus installer command line. It parses flags, asks on the terminal,
//! runs the library's actions ([`bootstrap::actions`]) and prints what they did. Exit codes:
//! 0 success, 2 bad input, 1 a failure of Terraform, the cloud or the cluster.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bootstrap::actions::{self, Context};
use clap::{Parser, Subcommand};
use service_manager::terminal;

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
    /// Everything, in named and timed phases recorded in the state directory: validate,
    /// preflight, render, provision, wait for the API, pod network, cloud integration,
    /// storage classes, the platform (`hcp`), report. Re-running after a failure or a kill
    /// continues from the phase that did not finish.
    Install {
        #[command(flatten)]
        target: Target,
        /// Do not ask before creating or destroying cloud resources.
        #[arg(short = 'y', long)]
        yes: bool,
        /// Run this phase and every later one again even if recorded as done.
        #[arg(long, value_name = "PHASE", value_parser = clap::builder::PossibleValuesParser::new(bootstrap::phases::PHASES))]
        from: Option<String>,
        /// How long to wait for the API, the nodes, each platform step and the platform
        /// service: 30s, 10m, 1h30m, or a bare number of seconds (at most 168h, a week).
        #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = terminal::parse_timeout)]
        timeout: Duration,
        /// The service catalog holding `hcp` (default: the catalog shipped with Stratus).
        #[arg(long, env = "HSM_CATALOG", value_name = "DIR")]
        catalog: Option<PathBuf>,
    },
    /// Check a properties file and report every problem.
    Validate {
        /// The properties file.
        #[arg(short = 'i', long = "input", value_name = "FILE")]
        input: PathBuf,
    },
    /// Validate, render the Terraform configuration into the state directory, run `terraform
    /// init` (once per provider set) and `terraform plan -out=plan.tfplan`. Changes nothing
    /// in any cloud.
    Plan {
        #[command(flatten)]
        target: Target,
        /// Only render the configuration; do not run Terraform.
        #[arg(long)]
        render_only: bool,
    },
    /// Create (or converge) the cluster's machines, networks, volumes and load balancers with
    /// Terraform, each machine receiving its cloud-config. Safe to re-run after a failure or a
    /// kill: it continues and never duplicates a resource.
    Provision {
        #[command(flatten)]
        target: Target,
    },
    /// Destroy everything `provision` created and check that nothing is left.
    Uninstall {
        #[command(flatten)]
        target: Target,
        /// Do not ask for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Check the cloud account before anything is created and list every problem (AWS: AMI,
    /// instance types, VPC, subnets and their zones, key pair; OpenStack: image, flavors,
    /// network and subnet, key pair, floating-IP pool, quotas).
    Preflight {
        /// The properties file.
        #[arg(short = 'i', long = "input", value_name = "FILE")]
        input: PathBuf,
    },
    /// Show what the state directory says about the cluster and its install phases.
    Status {
        /// State directory.
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
    },
}

/// The properties file and the state directory a command works on.
#[derive(clap::Args)]
struct Target {
    /// The properties file.
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    input: PathBuf,
    /// Where the rendered configuration, Terraform state and logs live
    /// (default: ./stratus-<ClusterName>).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

/// The catalog shipped with Stratus.
const SHIPPED_CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../catalog");

fn main() -> ExitCode {
    // kube-rs and the SDKs all use rustls: one crypto provider (ring) for the whole process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let report = bootstrap::progress::stderr();
    let confirm = |question: &str| terminal::confirm(question, "no terminal to answer on: not confirmed");
    let program = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("bootstrap"));
    let context = Context { env: &env, report: report.as_ref(), confirm: &confirm, program };
    match run(cli.command, &context) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", wording(&error));
            ExitCode::from(error.exit_code())
        }
    }
}

/// The error as the command line words it: what to do about it where there is a flag or a
/// re-run that helps.
fn wording(error: &bootstrap::Error) -> String {
    match error {
        bootstrap::Error::Phase { phase, source } => format!(
            "{}\n(phase {phase} failed; fix the cause and run the same command again to continue from it)",
            wording(source)
        ),
        bootstrap::Error::Cancelled(_) => format!("{error} (pass --yes to confirm without a terminal)"),
        _ => error.to_string(),
    }
}

fn run(command: Command, context: &Context) -> Result<(), bootstrap::Error> {
    match command {
        Command::Validate { input } => {
            let outcome = actions::validate::run(&actions::validate::Options { input: input.clone() }, context)?;
            println!("{}: valid; {}", input.display(), outcome.summary());
        }
        Command::Preflight { input } => {
            actions::preflight::run(&actions::preflight::Options { input }, context)?;
        }
        Command::Plan { target, render_only } => {
            let options = actions::plan::Options { input: target.input, state_dir: target.state_dir, render_only };
            let outcome = actions::plan::run(&options, context)?;
            match (outcome.summary, outcome.plan_file) {
                (Some(summary), Some(plan)) => println!("{summary} (plan in {})", plan.display()),
                _ => println!("{}", outcome.dir.display()),
            }
        }
        Command::Provision { target } => {
            let options = actions::provision::Options { input: target.input, state_dir: target.state_dir };
            let outcome = actions::provision::run(&options, context)?;
            println!("provisioned cluster {} ({})", outcome.cluster, outcome.machines.join(", "));
            println!("API: {}", outcome.api_url);
            println!("admin kubeconfig: {} (mode 0600)", outcome.kubeconfig.display());
            println!("DNS records to create under {}: api., hcp., identity., *.identity., hsm.", outcome.domain);
        }
        Command::Install { target, yes, from, timeout, catalog } => {
            let options = actions::install::Options {
                input: target.input,
                state_dir: target.state_dir,
                yes,
                from,
                timeout,
                catalog: catalog.unwrap_or_else(|| PathBuf::from(SHIPPED_CATALOG)),
            };
            let outcome = actions::install::run(&options, context)?;
            println!("cluster {} is installed ({:.1}s)", outcome.cluster, outcome.elapsed.as_secs_f64());
            println!("  Kubernetes API   {}", outcome.api_url);
            for (name, url) in &outcome.endpoints {
                let label = match name.as_str() {
                    "hsm" => "HSM server",
                    "identity" => "identity (Dex)",
                    other => other,
                };
                println!("  {label:<16} {url}");
            }
            println!("  admin kubeconfig {} (mode 0600)", outcome.kubeconfig.display());
            println!(
                "  credentials      {} (mode 0600: platform CA, admin password, broker password)",
                outcome.credentials.display()
            );
            if let Some(hsm) = outcome.endpoints.get("hsm") {
                println!("  sign in          hsm api {hsm} --ca-file <platform CA>; hsm login -u admin");
            }
            println!("DNS records to create:");
            for (record, target) in &outcome.dns {
                let kind = if target.parse::<std::net::Ipv6Addr>().is_ok() { "AAAA" } else { "A" };
                println!("  {record:<40} {kind}  {target}");
            }
        }
        Command::Uninstall { target, yes } => {
            let options = actions::uninstall::Options { input: target.input, state_dir: target.state_dir, yes };
            let outcome = actions::uninstall::run(&options, context)?;
            println!("uninstalled cluster {}", outcome.cluster);
        }
        Command::Status { state_dir } => print_status(&actions::status::run(&actions::status::Options { state_dir })?),
    }
    Ok(())
}

fn print_status(outcome: &actions::status::Outcome) {
    use bootstrap::phases::PhaseState;
    println!("status: {}", outcome.status.describe());
    for (key, value) in &outcome.outputs {
        println!("{key}: {value}");
    }
    if !outcome.install_started() {
        return;
    }
    println!("install phases:");
    for (name, phase) in &outcome.phases {
        let line = match phase {
            Some(p) => format!(
                "{}, {:.1}s{}",
                match p.state {
                    PhaseState::Running => "running (or interrupted)",
                    PhaseState::Done => "done",
                    PhaseState::Failed => "failed",
                },
                p.seconds,
                p.message.as_deref().and_then(|m| m.lines().next()).map(|m| format!(": {m}")).unwrap_or_default()
            ),
            None => "pending".to_string(),
        };
        println!("  {name:<10} {line}");
    }
}
