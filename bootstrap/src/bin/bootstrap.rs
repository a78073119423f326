//! `bootstrap`: the Stratus installer command line. Exit codes: 0 success, 2 bad input,
//! 1 a failure of Terraform or the cloud.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use bootstrap::terraform::Terraform;
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
    /// Validate, render the Terraform configuration into the state directory and run
    /// `terraform init`, `validate` and `plan`. Changes nothing in any cloud.
    Plan {
        /// The properties file.
        #[arg(short = 'i', long = "input", value_name = "FILE")]
        input: PathBuf,
        /// Where the rendered configuration, Terraform state and logs live
        /// (default: ./stratus-<ClusterName>).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Only render the configuration; do not run Terraform.
        #[arg(long)]
        render_only: bool,
    },
    /// Create (or converge) the cluster's machines, networks, volumes and load balancers with
    /// Terraform, each machine receiving its cloud-config. Safe to re-run after a failure or a
    /// kill: it continues and never duplicates a resource.
    Provision {
        /// The properties file.
        #[arg(short = 'i', long = "input", value_name = "FILE")]
        input: PathBuf,
        /// State directory (default: ./stratus-<ClusterName>).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Destroy everything `provision` created and check that nothing is left.
    Uninstall {
        /// The properties file.
        #[arg(short = 'i', long = "input", value_name = "FILE")]
        input: PathBuf,
        /// State directory (default: ./stratus-<ClusterName>).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Do not ask for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Check the cloud account before anything is created (AWS: AMI, instance types, VPC,
    /// subnets and their zones, key pair) and list every problem.
    Preflight {
        /// The properties file.
        #[arg(short = 'i', long = "input", value_name = "FILE")]
        input: PathBuf,
    },
    /// Show what the state directory says about the cluster.
    Status {
        /// State directory.
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
    },
}

struct Failure(String, u8);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let result = match cli.command {
        Command::Validate { input } => validate(&input, &env),
        Command::Plan { input, state_dir, render_only } => plan(&input, state_dir.as_deref(), render_only, &env),
        Command::Provision { input, state_dir } => provision(&input, state_dir.as_deref(), &env),
        Command::Uninstall { input, state_dir, yes } => uninstall(&input, state_dir.as_deref(), yes, &env),
        Command::Status { state_dir } => status(&state_dir),
        Command::Preflight { input } => load(&input, &env).and_then(|config| preflight(&config, &env, Instant::now())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message, code)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

fn load(input: &Path, env: &BTreeMap<String, String>) -> Result<bootstrap::config::Config, Failure> {
    bootstrap::load(input, env).map_err(|e| Failure(e.to_string(), 2))
}

fn validate(input: &Path, env: &BTreeMap<String, String>) -> Result<(), Failure> {
    let config = load(input, env)?;
    println!(
        "{}: valid; provider {}, {} master(s), {} node(s), {} GlusterFS node(s), domain {}",
        input.display(),
        config.provider.templates(),
        config.master_count,
        config.node_count,
        config.gluster_node_count,
        config.domain
    );
    Ok(())
}

/// The `terraform { ... }` block of the rendered files: what `terraform init` depends on.
fn required_providers(rendered: &bootstrap::render::Rendered) -> String {
    let main = rendered.files.get("main.tf").map(String::as_str).unwrap_or_default();
    let start = main.find("terraform {").unwrap_or(0);
    let end = main[start..].find("\n}\n").map(|e| start + e + 3).unwrap_or(main.len());
    main[start..end].to_string()
}

fn phase(started: Instant, text: &str) {
    eprintln!("[{:>6.1}s] {text}", started.elapsed().as_secs_f64());
}

/// Everything before Terraform runs: validated configuration, credentials, rendered files.
struct Prepared {
    config: bootstrap::config::Config,
    state: PathBuf,
    dir: PathBuf,
    terraform: Terraform,
}

fn prepare(
    input: &Path,
    state_dir: Option<&Path>,
    env: &BTreeMap<String, String>,
    started: Instant,
    init: bool,
) -> Result<Prepared, Failure> {
    let config = load(input, env)?;
    phase(
        started,
        &format!("validated {}: {} cluster \"{}\"", input.display(), config.provider.templates(), config.cluster_name),
    );
    let state =
        state_dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(format!("stratus-{}", config.cluster_name)));
    let dir = state.join("terraform");
    let pki =
        bootstrap::load_or_create_pki(&state.join("pki.json"), &config.cluster_name).map_err(|e| Failure(e, 1))?;
    let kubeconfig = state.join("kubeconfig");
    if !kubeconfig.exists() {
        let server = format!("https://{}", bootstrap::nodes::api_endpoint(&config));
        bootstrap::write_rendered(
            &state,
            &bootstrap::render::Rendered {
                secret_files: [(
                    "kubeconfig".to_string(),
                    pki.admin_kubeconfig(&config.cluster_name, &server).expose().to_string(),
                )]
                .into(),
                ..Default::default()
            },
        )
        .map_err(|e| Failure(format!("{}: {e}", state.display()), 1))?;
    }
    let rendered = bootstrap::render::render(&config, &pki).map_err(|e| Failure(e.to_string(), 1))?;
    bootstrap::write_rendered(&dir, &rendered).map_err(|e| Failure(format!("{}: {e}", dir.display()), 1))?;
    phase(
        started,
        &format!("rendered {} file(s) into {}", rendered.files.len() + rendered.secret_files.len(), dir.display()),
    );
    let terraform = Terraform::new(&dir, &state.join("terraform.log"), rendered.environment.clone());
    if init {
        // Init once per provider set: re-running it costs a second for nothing.
        let providers = required_providers(&rendered);
        let marker = dir.join(".stratus-init");
        if std::fs::read_to_string(&marker).ok().as_deref() != Some(providers.as_str()) {
            terraform.run(&["init", "-input=false", "-no-color"]).map_err(terraform_failure)?;
            std::fs::write(&marker, &providers).map_err(|e| Failure(format!("{}: {e}", marker.display()), 1))?;
            phase(started, "terraform init");
        }
    }
    Ok(Prepared { config, state, dir, terraform })
}

fn terraform_failure(e: bootstrap::terraform::TerraformError) -> Failure {
    Failure(e.to_string(), 1)
}

fn plan(
    input: &Path,
    state_dir: Option<&Path>,
    render_only: bool,
    env: &BTreeMap<String, String>,
) -> Result<(), Failure> {
    let started = Instant::now();
    let prepared = prepare(input, state_dir, env, started, !render_only)?;
    if render_only {
        println!("{}", prepared.dir.display());
        return Ok(());
    }
    let out = prepared
        .terraform
        .run(&["plan", "-input=false", "-no-color", "-out=plan.tfplan"])
        .map_err(terraform_failure)?;
    let summary = out
        .lines()
        .find(|l| l.starts_with("Plan:") || l.starts_with("No changes."))
        .unwrap_or("plan written")
        .to_string();
    phase(started, &format!("terraform plan: {summary}"));
    println!("{summary} (plan in {})", prepared.dir.join("plan.tfplan").display());
    Ok(())
}

/// Runs a `-json` Terraform command, printing a line per finished resource with a running
/// count, what is still in flight and the elapsed time.
fn run_with_progress(
    prepared: &Prepared,
    args: &[&str],
    verb: &str,
    total: u64,
    started: Instant,
) -> Result<(), Failure> {
    let mut done = 0u64;
    let mut in_flight: Vec<String> = Vec::new();
    prepared
        .terraform
        .run_json(args, |event| match event.kind.as_str() {
            "apply_start" => in_flight.extend(event.resource.clone()),
            "apply_complete" | "apply_errored" => {
                let resource = event.resource.clone().unwrap_or_default();
                in_flight.retain(|r| r != &resource);
                done += 1;
                let outcome = if event.kind == "apply_errored" { "FAILED" } else { verb };
                let waiting =
                    if in_flight.is_empty() { String::new() } else { format!("; in flight: {}", in_flight.join(", ")) };
                phase(started, &format!("{done}/{total} {outcome} {resource}{waiting}"));
            }
            _ => {}
        })
        .map_err(terraform_failure)?;
    Ok(())
}

fn write_state(state: &Path, status: &str, outputs: serde_json::Value) -> Result<(), Failure> {
    let record = serde_json::json!({"status": status, "outputs": outputs});
    let path = state.join("state.json");
    std::fs::write(&path, serde_json::to_string_pretty(&record).expect("JSON serialises"))
        .map_err(|e| Failure(format!("{}: {e}", path.display()), 1))
}

fn aws_connection(aws: &bootstrap::config::Aws, env: &BTreeMap<String, String>) -> bootstrap_aws::Connection {
    bootstrap_aws::Connection {
        region: aws.region.clone(),
        // The SDKs' own endpoint override (a VPC endpoint, or a local stand-in in tests).
        endpoint: env.get("AWS_ENDPOINT_URL_EC2").or(env.get("AWS_ENDPOINT_URL")).cloned(),
        credentials: aws.access_key.clone().zip(aws.secret_key.as_ref().map(|s| s.expose().to_string())),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime starts")
}

/// Checks the cloud account; every problem is listed before anything is created.
fn preflight(
    config: &bootstrap::config::Config,
    env: &BTreeMap<String, String>,
    started: Instant,
) -> Result<(), Failure> {
    let Some(aws) = &config.aws else {
        let what = match config.provider {
            bootstrap::config::Provider::Local => "nothing to check beyond the configuration for existing machines",
            _ => "checks through the cloud SDK are not implemented yet for this provider",
        };
        phase(started, &format!("preflight: {what}"));
        return Ok(());
    };
    let mut instance_types = vec![aws.master_instance_type.clone(), aws.node_instance_type.clone()];
    if config.gluster_node_count > 0 {
        instance_types.push(aws.gluster_instance_type.clone());
    }
    instance_types.dedup();
    let requirements = bootstrap_aws::Requirements {
        ami: aws.ami.clone(),
        instance_types,
        vpc_id: aws.vpc_id.clone(),
        subnets: aws.public_subnets.iter().chain(&aws.private_subnets).cloned().collect(),
        keypair: aws.keypair.clone(),
        instances: config.master_count + config.node_count + config.gluster_node_count,
    };
    let problems = runtime()
        .block_on(async {
            let client = bootstrap_aws::client(&aws_connection(aws, env)).await;
            bootstrap_aws::preflight(&client, &requirements).await
        })
        .map_err(|e| Failure(e.to_string(), 1))?;
    if !problems.is_empty() {
        let count = problems.len();
        return Err(Failure(
            format!(
                "preflight found {count} problem{} in the AWS account; nothing was created:\n  {}",
                if count == 1 { "" } else { "s" },
                problems.join("\n  ")
            ),
            1,
        ));
    }
    phase(started, "preflight: the AWS account has everything the cluster needs");
    Ok(())
}

fn provision(input: &Path, state_dir: Option<&Path>, env: &BTreeMap<String, String>) -> Result<(), Failure> {
    let started = Instant::now();
    let config = load(input, env)?;
    preflight(&config, env, started)?;
    let prepared = prepare(input, state_dir, env, started, true)?;
    write_state(&prepared.state, "provisioning", serde_json::Value::Null)?;
    let events = prepared
        .terraform
        .run_json(&["plan", "-input=false", "-json", "-out=plan.tfplan"], |_| {})
        .map_err(terraform_failure)?;
    let (add, change, remove) = events.iter().find_map(|e| e.changes).unwrap_or((0, 0, 0));
    phase(started, &format!("terraform plan: {add} to add, {change} to change, {remove} to destroy"));
    run_with_progress(
        &prepared,
        &["apply", "-input=false", "-json", "-auto-approve", "plan.tfplan"],
        "ready",
        add + change + remove,
        started,
    )?;
    let outputs: serde_json::Value =
        serde_json::from_str(&prepared.terraform.run(&["output", "-json"]).map_err(terraform_failure)?)
            .unwrap_or_default();
    let values: serde_json::Value = outputs
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v["value"].clone())).collect())
        .unwrap_or_default();
    write_state(&prepared.state, "provisioned", values)?;
    phase(started, "provisioned");
    let machines = bootstrap::nodes::machines(&prepared.config).iter().map(|m| m.key()).collect::<Vec<_>>().join(", ");
    println!("provisioned cluster {} ({machines})", prepared.config.cluster_name);
    println!("API: https://{}", bootstrap::nodes::api_endpoint(&prepared.config));
    println!("admin kubeconfig: {} (mode 0600)", prepared.state.join("kubeconfig").display());
    println!("DNS records to create under {}: api., hcp., identity., *.identity., hsm.", prepared.config.domain);
    Ok(())
}

fn uninstall(input: &Path, state_dir: Option<&Path>, yes: bool, env: &BTreeMap<String, String>) -> Result<(), Failure> {
    let started = Instant::now();
    let prepared = prepare(input, state_dir, env, started, true)?;
    let question = format!(
        "Destroy every resource of cluster {} recorded in {}?",
        prepared.config.cluster_name,
        prepared.state.display()
    );
    if !yes && !ask(&question) {
        return Err(Failure("cancelled: nothing was destroyed (pass --yes to confirm without a terminal)".into(), 1));
    }
    if let Some(aws) = &prepared.config.aws {
        // What Kubernetes created in the cloud goes first: it would keep the network alive.
        let failures = runtime()
            .block_on(async {
                let client = bootstrap_aws::client(&aws_connection(aws, env)).await;
                bootstrap_aws::sweep(&client, &prepared.config.cluster_name).await
            })
            .map_err(|e| Failure(e.to_string(), 1))?;
        if !failures.is_empty() {
            let list: Vec<String> = failures.iter().map(|(l, why)| format!("{} {}: {why}", l.kind, l.id)).collect();
            return Err(Failure(format!("could not remove what Kubernetes created:\n  {}", list.join("\n  ")), 1));
        }
        phase(started, "removed what Kubernetes created in EC2 for the cluster");
    }
    let resources = prepared.terraform.run(&["state", "list"]).unwrap_or_default().lines().count() as u64;
    run_with_progress(
        &prepared,
        &["destroy", "-input=false", "-json", "-auto-approve"],
        "destroyed",
        resources,
        started,
    )?;
    let left: Vec<String> =
        prepared.terraform.run(&["state", "list"]).map_err(terraform_failure)?.lines().map(str::to_string).collect();
    if !left.is_empty() {
        return Err(Failure(format!("these resources are still recorded after destroy:\n  {}", left.join("\n  ")), 1));
    }
    write_state(&prepared.state, "uninstalled", serde_json::Value::Null)?;
    phase(started, "uninstalled: nothing is left in the Terraform state");
    println!("uninstalled cluster {}", prepared.config.cluster_name);
    Ok(())
}

fn status(state_dir: &Path) -> Result<(), Failure> {
    let path = state_dir.join("state.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Failure(format!("{}: {e} (nothing provisioned from this state directory?)", path.display()), 1))?;
    let record: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Failure(format!("{}: {e}", path.display()), 1))?;
    println!("status: {}", record["status"].as_str().unwrap_or("unknown"));
    if let Some(outputs) = record["outputs"].as_object() {
        for (key, value) in outputs {
            println!("{key}: {value}");
        }
    }
    Ok(())
}

/// Asks a yes/no question on the terminal; without one, the answer is no.
fn ask(question: &str) -> bool {
    use std::io::{BufRead, IsTerminal};
    if !std::io::stdin().is_terminal() {
        eprintln!("{question}");
        return false;
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}
