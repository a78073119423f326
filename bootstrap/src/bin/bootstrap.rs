//! `bootstrap`: the Stratus installer command line. Exit codes: 0 success, 2 bad input,
//! 1 a failure of Terraform or the cloud.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

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
        /// Seconds to wait for the API, the nodes, each platform step and the platform service
        /// (1 to 604800, a week).
        #[arg(long, value_name = "SECONDS", default_value_t = 1800,
              value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECONDS))]
        timeout: u64,
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

struct Failure(String, u8);

/// The longest `--timeout`: a week (a longer wait is a mistake, and no deadline may overflow).
const MAX_TIMEOUT_SECONDS: u64 = 7 * 24 * 3600;

fn state_failure(e: bootstrap::StateError) -> Failure {
    let code = e.exit_code();
    Failure(e.to_string(), code)
}

/// Checks that whatever is already at the state directory's paths is of the kind bootstrap
/// makes there (a directory, or a regular file), before anything is created: a mismatch is bad
/// input naming the path and what was expected.
fn check_state(state: &Path) -> Result<(), Failure> {
    let paths = [
        ("", true, "the state directory"),
        ("terraform", true, "Terraform's working directory"),
        ("pki.json", false, "the cluster PKI bootstrap writes"),
        ("kubeconfig", false, "the admin kubeconfig bootstrap writes"),
        ("state.json", false, "the state record bootstrap writes"),
        ("install.json", false, "the install record bootstrap writes"),
        ("credentials.yaml", false, "the credentials file bootstrap writes"),
        ("terraform.log", false, "Terraform's log"),
    ];
    for (name, directory, what) in paths {
        let path = if name.is_empty() { state.to_path_buf() } else { state.join(name) };
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        let (ok, kind) = match directory {
            true => (meta.is_dir(), "a directory"),
            false => (meta.is_file(), "a regular file"),
        };
        if !ok {
            let is = if meta.is_dir() {
                "a directory"
            } else if meta.is_file() {
                "a file"
            } else {
                "not a regular file"
            };
            return Err(Failure(
                format!("{}: is {is}; expected {what} ({kind}, or nothing there yet)", path.display()),
                2,
            ));
        }
    }
    Ok(())
}

/// Creates (or closes to 0700) the state directory `dir` and its `terraform/` folder.
fn state_dirs(state: &Path) -> Result<(), Failure> {
    for dir in [state.to_path_buf(), state.join("terraform")] {
        bootstrap::private_dir(&dir).map_err(|e| state_failure(bootstrap::StateError::of(&dir, e)))?;
    }
    Ok(())
}

/// The catalog shipped with Stratus.
const SHIPPED_CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../catalog");

fn main() -> ExitCode {
    // kube-rs, the AWS SDKs and the OpenStack SDK all use rustls: one crypto provider (ring)
    // for the whole process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let result = match cli.command {
        Command::Validate { input } => validate(&input, &env),
        Command::Plan { target: Target { input, state_dir }, render_only } => {
            plan(&input, state_dir.as_deref(), render_only, &env)
        }
        Command::Install { target: Target { input, state_dir }, yes, from, timeout, catalog } => {
            let options = InstallOptions {
                yes,
                from,
                timeout: std::time::Duration::from_secs(timeout),
                catalog: catalog.unwrap_or_else(|| PathBuf::from(SHIPPED_CATALOG)),
            };
            install(&input, state_dir.as_deref(), &options, &env)
        }
        Command::Provision { target: Target { input, state_dir } } => provision(&input, state_dir.as_deref(), &env),
        Command::Uninstall { target: Target { input, state_dir }, yes } => {
            uninstall(&input, state_dir.as_deref(), yes, &env)
        }
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

/// What identifies this program for [`bootstrap::render::inputs_digest`]: its path, size and
/// modification time (a rebuilt or upgraded program renders afresh).
fn program_identity() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let meta = std::fs::metadata(&exe).ok();
    let modified = meta.as_ref().and_then(|m| m.modified().ok()).map(|t| format!("{t:?}")).unwrap_or_default();
    format!("{} {} {modified} {}", exe.display(), meta.map(|m| m.len()).unwrap_or(0), env!("CARGO_PKG_VERSION"))
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
    /// Digest of the rendered files: what the provision phase is done for.
    rendered_fingerprint: String,
    /// Names of the rendered files holding secrets.
    secret_files: Vec<String>,
}

impl Prepared {
    /// Unless `KeepTerraform` is set: clears the saved plan and the rendered secret files from
    /// the working directory once a run has succeeded (the next run renders them again).
    fn clear_terraform_secrets(&self, started: Instant) -> Result<(), Failure> {
        if self.config.keep_terraform {
            return Ok(());
        }
        let removed = bootstrap::clear_terraform_secrets(&self.dir, &self.secret_files)
            .map_err(|e| Failure(format!("{}: {e}", self.dir.display()), 1))?;
        if !removed.is_empty() {
            phase(
                started,
                &format!(
                    "removed the saved plan and secret files from {} ({} file(s); KeepTerraform = true keeps them)",
                    self.dir.display(),
                    removed.len()
                ),
            );
        }
        Ok(())
    }
}

fn prepare(
    input: &Path,
    state_dir: Option<&Path>,
    env: &BTreeMap<String, String>,
    started: Instant,
    init: bool,
    announce: bool,
) -> Result<Prepared, Failure> {
    let config = load(input, env)?;
    if announce {
        phase(
            started,
            &format!(
                "validated {}: {} cluster \"{}\"",
                input.display(),
                config.provider.templates(),
                config.cluster_name
            ),
        );
    }
    let state =
        state_dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(format!("stratus-{}", config.cluster_name)));
    let dir = state.join("terraform");
    // A damaged state directory is found before anything in it is created or changed.
    check_state(&state)?;
    let pki = bootstrap::load_or_create_pki(&state.join("pki.json"), &config.cluster_name).map_err(state_failure)?;
    state_dirs(&state)?;
    let kubeconfig = state.join("kubeconfig");
    if !kubeconfig.exists() {
        let server = bootstrap::nodes::api_url(&config);
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
        .map_err(|e| state_failure(bootstrap::StateError::of(&state, e)))?;
    }
    let (record, rendered) =
        bootstrap::render_into(&dir, &config, &pki, &program_identity()).map_err(|e| Failure(e, 1))?;
    let what = if rendered { "rendered" } else { "already rendered, unchanged:" };
    phase(started, &format!("{what} {} file(s) in {}", record.files.len(), dir.display()));
    let environment = bootstrap::render::environment(&config);
    let terraform = Terraform::new(&dir, &state.join("terraform.log"), environment);
    if init {
        // Init once per provider set: re-running it costs a second for nothing.
        let marker = dir.join(".stratus-init");
        if bootstrap::read_input_text(&marker).ok().as_deref() != Some(record.providers.as_str()) {
            terraform.run(&["init", "-input=false", "-no-color"]).map_err(terraform_failure)?;
            std::fs::write(&marker, &record.providers).map_err(|e| Failure(format!("{}: {e}", marker.display()), 1))?;
            phase(started, "terraform init");
        }
    }
    Ok(Prepared {
        config,
        state,
        dir,
        terraform,
        rendered_fingerprint: record.fingerprint,
        secret_files: record.secret_files,
    })
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
    let prepared = prepare(input, state_dir, env, started, !render_only, true)?;
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

/// Runs a `-json` Terraform command with live progress on stderr. On a terminal: an indicatif
/// bar with the elapsed time, resources done out of the total and the ones in flight, and a
/// line per finished resource above it. Otherwise: the timestamped line per finished
/// resource, with what is still in flight.
fn run_with_progress(
    prepared: &Prepared,
    args: &[&str],
    verb: &str,
    total: u64,
    started: Instant,
) -> Result<(), Failure> {
    let mut tally = bootstrap::terraform::Tally::new(total);
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:24} {pos}/{len} {wide_msg}")
                .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let result = prepared.terraform.run_json(args, |event| {
        let line = tally.observe(event, verb);
        let Some(bar) = &bar else {
            if let Some(line) = line {
                phase(started, &line);
            }
            return;
        };
        bar.set_length(tally.total);
        bar.set_position(tally.done);
        bar.set_message(match tally.in_flight.is_empty() {
            true => String::new(),
            false => format!("in flight: {}", tally.in_flight.join(", ")),
        });
        if let Some(line) = line {
            bar.println(format!("[{:>6.1}s] {line}", started.elapsed().as_secs_f64()));
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result.map(|_| ()).map_err(terraform_failure)
}

fn write_state(state: &Path, status: &str, outputs: serde_json::Value) -> Result<(), Failure> {
    let record = serde_json::json!({"status": status, "outputs": outputs});
    let path = state.join("state.json");
    let text = serde_json::to_string_pretty(&record).map_err(|e| Failure(format!("{}: {e}", path.display()), 1))?;
    bootstrap::write_private(&path, text.as_bytes()).map_err(|e| Failure(format!("{}: {e}", path.display()), 1))
}

fn aws_connection(aws: &bootstrap::config::Aws, env: &BTreeMap<String, String>) -> bootstrap::cloud::aws::Connection {
    bootstrap::cloud::aws::Connection {
        region: aws.region.clone(),
        // The SDKs' own endpoint override (a VPC endpoint, or a local stand-in in tests).
        endpoint: env.get("AWS_ENDPOINT_URL_EC2").or(env.get("AWS_ENDPOINT_URL")).cloned(),
        credentials: aws.access_key.clone().zip(aws.secret_key.as_ref().map(|s| s.expose().to_string())),
    }
}

fn openstack_connection(os: &bootstrap::config::OpenStack) -> Result<bootstrap::cloud::openstack::Connection, Failure> {
    let ca_certificate = os
        .ca_cert_file
        .as_ref()
        .map(|file| bootstrap::read_input_text(file).map_err(|e| Failure(format!("{}: {e}", file.display()), 2)))
        .transpose()?;
    Ok(bootstrap::cloud::openstack::Connection {
        auth_url: os.auth_url.clone(),
        username: os.username.clone(),
        password: os.password.expose().to_string(),
        domain: (&os.domain).into(),
        project: (&os.project).into(),
        region: os.region.clone(),
        ca_certificate,
    })
}

/// Checks the OpenStack project (image, flavors, network and subnet, key pair, floating-IP
/// pool, quotas); every problem is listed before anything is created.
fn openstack_preflight(
    config: &bootstrap::config::Config,
    os: &bootstrap::config::OpenStack,
    started: Instant,
) -> Result<(), Failure> {
    let flavor = |key: &str, flavor: &str, count: u32| bootstrap::cloud::openstack::FlavorUse {
        key: key.into(),
        flavor: flavor.into(),
        count,
    };
    let mut flavors = vec![
        flavor("OpenStack.MasterFlavorID", &os.master_flavor, config.master_count),
        flavor("OpenStack.NodeFlavorID", &os.node_flavor, config.node_count),
    ];
    if config.gluster_node_count > 0 {
        flavors.push(flavor("OpenStack.GlusterFSFlavorID", &os.gluster_flavor, config.gluster_node_count));
    }
    let needs = bootstrap::cloud::openstack::Requirements {
        image: os.image_id.clone(),
        flavors,
        network: os.network_id.clone(),
        subnet: os.subnet_id.clone(),
        keypair: os.keypair.clone(),
        floating_ip_pool: os.floating_ip_pool.clone(),
    };
    let request =
        bootstrap::cloud::Request::OpenStackPreflight { connection: openstack_connection(os)?, requirements: needs };
    let problems = match ask_cloud(&request)? {
        bootstrap::cloud::Answer::Problems(problems) => problems,
        other => return Err(unexpected_answer(other, "; nothing was created")),
    };
    preflight_verdict(&problems, "OpenStack project", started)
}

/// Success when the cloud (`place`: "AWS account", ...) has no problem; else every problem,
/// exit 1.
fn preflight_verdict(problems: &[String], place: &str, started: Instant) -> Result<(), Failure> {
    if problems.is_empty() {
        phase(started, &format!("preflight: the {place} has everything the cluster needs"));
        return Ok(());
    }
    let count = problems.len();
    Err(Failure(
        format!(
            "preflight found {count} problem{} in the {place}; nothing was created:\n  {}",
            if count == 1 { "" } else { "s" },
            problems.join("\n  ")
        ),
        1,
    ))
}

/// Failure listing what a cloud sweep could not remove (`kind id: why` lines).
fn sweep_failed(failures: Vec<String>) -> Result<(), Failure> {
    if failures.is_empty() {
        return Ok(());
    }
    Err(Failure(format!("could not remove what Kubernetes created:\n  {}", failures.join("\n  ")), 1))
}

/// The cluster behind the state directory's kubeconfig, if its API answers now.
async fn answering_cluster(state: &Path) -> Option<service_manager::cluster::Cluster> {
    let options = service_manager::cluster::ClientOptions { attempts: 2, ..Default::default() };
    let cluster =
        service_manager::cluster::Cluster::connect(Some(&state.join("kubeconfig")), None, options).await.ok()?;
    cluster.ready().await.ok().map(|_| cluster)
}

/// What Kubernetes left in the cloud for the cluster: AWS resources tagged with it, or the
/// OpenStack balancers, floating IPs and volumes its controllers made.
fn cloud_leftovers(config: &bootstrap::config::Config, env: &BTreeMap<String, String>) -> Result<Vec<String>, Failure> {
    let cluster = config.cluster_name.clone();
    let request = match (&config.aws, &config.openstack) {
        (Some(aws), _) => bootstrap::cloud::Request::AwsLeftovers { connection: aws_connection(aws, env), cluster },
        (_, Some(os)) => {
            bootstrap::cloud::Request::OpenStackLeftovers { connection: openstack_connection(os)?, cluster }
        }
        _ => return Ok(Vec::new()),
    };
    match ask_cloud(&request)? {
        bootstrap::cloud::Answer::Found(found) => Ok(found),
        other => Err(unexpected_answer(other, "")),
    }
}

/// Asks the cloud helper (the program that links the cloud SDKs).
fn ask_cloud(request: &bootstrap::cloud::Request) -> Result<bootstrap::cloud::Answer, Failure> {
    let helper = bootstrap::cloud::helper_path(std::env::current_exe().ok().as_deref());
    bootstrap::cloud::ask(&helper, request).map_err(|e| Failure(e.to_string(), 1))
}

/// The failure for an answer other than the one asked for (`Failed`: the cloud's own error).
fn unexpected_answer(answer: bootstrap::cloud::Answer, suffix: &str) -> Failure {
    match answer {
        bootstrap::cloud::Answer::Failed(why) => Failure(format!("{why}{suffix}"), 1),
        other => Failure(format!("the cloud helper answered {other:?} to another question"), 1),
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
    if let Some(openstack) = &config.openstack {
        return openstack_preflight(config, openstack, started);
    }
    let Some(aws) = &config.aws else {
        let what = match config.provider {
            bootstrap::config::Provider::Local => "nothing to check beyond the configuration for existing machines",
            _ => "vSphere is not checked through its API yet: the configuration is all that was checked",
        };
        phase(started, &format!("preflight: {what}"));
        return Ok(());
    };
    let mut instance_types = vec![aws.master_instance_type.clone(), aws.node_instance_type.clone()];
    if config.gluster_node_count > 0 {
        instance_types.push(aws.gluster_instance_type.clone());
    }
    instance_types.dedup();
    let requirements = bootstrap::cloud::aws::Requirements {
        ami: aws.ami.clone(),
        instance_types,
        vpc_id: aws.vpc_id.clone(),
        subnets: aws.public_subnets.iter().chain(&aws.private_subnets).cloned().collect(),
        keypair: aws.keypair.clone(),
        instances: config.master_count + config.node_count + config.gluster_node_count,
        elastic_ips: config.master_count,
    };
    let request = bootstrap::cloud::Request::AwsPreflight { connection: aws_connection(aws, env), requirements };
    let problems = match ask_cloud(&request)? {
        bootstrap::cloud::Answer::Problems(problems) => problems,
        other => return Err(unexpected_answer(other, "")),
    };
    preflight_verdict(&problems, "AWS account", started)
}

/// What `apply_machines` did.
struct Applied {
    /// Resources added, changed and destroyed.
    changes: (u64, u64, u64),
}

/// Plans and applies the machines, draining the Kubernetes nodes of machines the plan
/// removes first (when the cluster answers), and records Terraform's outputs in `state.json`.
fn apply_machines(prepared: &Prepared, started: Instant, yes: bool) -> Result<Applied, Failure> {
    write_state(&prepared.state, "provisioning", serde_json::Value::Null)?;
    let events = prepared
        .terraform
        .run_json(&["plan", "-input=false", "-json", "-out=plan.tfplan"], |_| {})
        .map_err(terraform_failure)?;
    let (add, change, remove) = events.iter().find_map(|e| e.changes).unwrap_or((0, 0, 0));
    phase(started, &format!("terraform plan: {add} to add, {change} to change, {remove} to destroy"));
    if remove > 0 && !yes && !ask(&format!("Destroy {remove} resource(s) of cluster {}?", prepared.config.cluster_name))
    {
        return Err(Failure("cancelled: nothing was changed (pass --yes to confirm without a terminal)".into(), 1));
    }
    let going = bootstrap::terraform::machines_going_away(&events);
    if !going.is_empty() {
        drain(prepared, &going, started)?;
    }
    run_with_progress(
        prepared,
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
    Ok(Applied { changes: (add, change, remove) })
}

/// Drains the nodes of machines about to be removed, if the cluster answers; a cluster that
/// never came up has nothing to drain.
fn drain(prepared: &Prepared, machines: &[String], started: Instant) -> Result<(), Failure> {
    runtime().block_on(async {
        let Some(cluster) = answering_cluster(&prepared.state).await else {
            phase(started, "the Kubernetes API does not answer: nothing to drain");
            return Ok(());
        };
        let waits = bootstrap::install::Waits { timeout: Duration::from_secs(600), interval: Duration::from_secs(1) };
        for machine in machines {
            let node = format!("{}-{machine}", prepared.config.cluster_name);
            let drained =
                bootstrap::install::drain_node(&cluster, &node, waits).await.map_err(|e| Failure(e.to_string(), 1))?;
            if drained.existed {
                phase(
                    started,
                    &format!(
                        "drained node {node}: {} pod(s) evicted, node removed from Kubernetes",
                        drained.evicted.len()
                    ),
                );
            }
        }
        Ok(())
    })
}

fn provision(input: &Path, state_dir: Option<&Path>, env: &BTreeMap<String, String>) -> Result<(), Failure> {
    let started = Instant::now();
    let config = load(input, env)?;
    preflight(&config, env, started)?;
    let prepared = prepare(input, state_dir, env, started, true, true)?;
    // `provision` is the explicit command: what it plans is what was asked for.
    apply_machines(&prepared, started, true)?;
    phase(started, "provisioned");
    prepared.clear_terraform_secrets(started)?;
    let machines = bootstrap::nodes::machines(&prepared.config).iter().map(|m| m.key()).collect::<Vec<_>>().join(", ");
    println!("provisioned cluster {} ({machines})", prepared.config.cluster_name);
    println!("API: {}", bootstrap::nodes::api_url(&prepared.config));
    println!("admin kubeconfig: {} (mode 0600)", prepared.state.join("kubeconfig").display());
    println!("DNS records to create under {}: api., hcp., identity., *.identity., hsm.", prepared.config.domain);
    Ok(())
}

/// Lets Kubernetes remove what it created in the cloud (load balancers of Services, volumes
/// of claims) while its controllers still run; skipped when the API does not answer.
fn release_cloud_resources(prepared: &Prepared, started: Instant) -> Result<(), Failure> {
    let outputs = read_outputs(&prepared.state).unwrap_or_default();
    let keep = bootstrap::install::platform_namespaces(&bootstrap::platform::plan(
        &prepared.config,
        &bootstrap::platform::Facts::from_outputs(&outputs),
    ));
    runtime().block_on(async {
        let Some(cluster) = answering_cluster(&prepared.state).await else {
            phase(started, "the Kubernetes API does not answer: what it created in the cloud is left to the sweep");
            return Ok(());
        };
        let waits = bootstrap::install::Waits { timeout: Duration::from_secs(900), interval: Duration::from_secs(1) };
        let released = bootstrap::install::release_cloud_resources(&cluster, &keep, waits, |left| {
            phase(started, &format!("waiting for Kubernetes to release {}", left.join(", ")))
        })
        .await
        .map_err(|e| Failure(e.to_string(), 1))?;
        phase(
            started,
            &format!(
                "Kubernetes released its cloud resources: {} namespace(s) ({}), {} other load balancer(s), {} other claim(s)",
                released.namespaces.len(),
                released.namespaces.join(", "),
                released.load_balancers.len(),
                released.claims.len()
            ),
        );
        Ok(())
    })
}

fn uninstall(input: &Path, state_dir: Option<&Path>, yes: bool, env: &BTreeMap<String, String>) -> Result<(), Failure> {
    let started = Instant::now();
    let prepared = prepare(input, state_dir, env, started, true, true)?;
    let question = format!(
        "Destroy every resource of cluster {} recorded in {}?",
        prepared.config.cluster_name,
        prepared.state.display()
    );
    if !yes && !ask(&question) {
        return Err(Failure("cancelled: nothing was destroyed (pass --yes to confirm without a terminal)".into(), 1));
    }
    release_cloud_resources(&prepared, started)?;
    // Whatever Kubernetes created in the cloud and did not release goes next: it would keep
    // the network alive.
    let cluster = prepared.config.cluster_name.clone();
    let sweep = match (&prepared.config.aws, &prepared.config.openstack) {
        (Some(aws), _) => Some((
            bootstrap::cloud::Request::AwsSweep {
                connection: aws_connection(aws, env),
                cluster,
                retry_after_seconds: 15,
            },
            "EC2",
        )),
        (_, Some(os)) => Some((
            bootstrap::cloud::Request::OpenStackSweep { connection: openstack_connection(os)?, cluster },
            "OpenStack",
        )),
        _ => None,
    };
    if let Some((request, cloud)) = sweep {
        match ask_cloud(&request)? {
            bootstrap::cloud::Answer::NotRemoved(failures) => sweep_failed(failures)?,
            other => return Err(unexpected_answer(other, "")),
        }
        phase(started, &format!("removed what Kubernetes created in {cloud} for the cluster"));
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
    let leaked = cloud_leftovers(&prepared.config, env)?;
    if !leaked.is_empty() {
        return Err(Failure(
            format!("destroyed, but these resources of the cluster are still in the cloud:\n  {}", leaked.join("\n  ")),
            1,
        ));
    }
    write_state(&prepared.state, "uninstalled", serde_json::Value::Null)?;
    // A later install starts from the beginning; the credentials are of a cluster now gone.
    for stale in ["install.json", "credentials.yaml"] {
        let _ = std::fs::remove_file(prepared.state.join(stale));
    }
    phase(started, "uninstalled: nothing is left in the Terraform state");
    if !prepared.config.keep_terraform {
        // Nothing in it is of use any more; a later install renders and initialises afresh.
        std::fs::remove_dir_all(&prepared.dir).map_err(|e| Failure(format!("{}: {e}", prepared.dir.display()), 1))?;
        phase(started, &format!("removed {} (KeepTerraform = true keeps it)", prepared.dir.display()));
    }
    println!("uninstalled cluster {}", prepared.config.cluster_name);
    Ok(())
}

fn status(state_dir: &Path) -> Result<(), Failure> {
    let path = state_dir.join("state.json");
    let text = bootstrap::read_input_text(&path)
        .map_err(|e| Failure(format!("{}: {e} (nothing provisioned from this state directory?)", path.display()), 1))?;
    let record: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Failure(
            format!("{}: not a state record ({e}); expected the state.json an earlier run wrote", path.display()),
            2,
        )
    })?;
    println!("status: {}", record["status"].as_str().unwrap_or("unknown"));
    if let Some(outputs) = record["outputs"].as_object() {
        for (key, value) in outputs {
            println!("{key}: {value}");
        }
    }
    let phases = bootstrap::phases::Record::load(&state_dir.join("install.json")).map_err(state_failure)?;
    if !phases.phases.is_empty() {
        println!("install phases:");
        for name in bootstrap::phases::PHASES {
            let line = match phases.get(name) {
                Some(p) => format!(
                    "{}, {:.1}s{}",
                    match p.state {
                        bootstrap::phases::PhaseState::Running => "running (or interrupted)",
                        bootstrap::phases::PhaseState::Done => "done",
                        bootstrap::phases::PhaseState::Failed => "failed",
                    },
                    p.seconds,
                    p.message.as_deref().and_then(|m| m.lines().next()).map(|m| format!(": {m}")).unwrap_or_default()
                ),
                None => "pending".to_string(),
            };
            println!("  {name:<10} {line}");
        }
    }
    Ok(())
}

/// Asks a yes/no question on the terminal; without one, the answer is no.
fn ask(question: &str) -> bool {
    use std::io::BufRead;
    if !std::io::stdin().is_terminal() {
        eprintln!("{question}");
        return false;
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}

/// Options of `bootstrap install`.
struct InstallOptions {
    yes: bool,
    from: Option<String>,
    timeout: Duration,
    catalog: PathBuf,
}

/// The install's phase bookkeeping: prints each phase, records it in `install.json`, and
/// tells which ones are already done for the same inputs.
struct Phases {
    record: bootstrap::phases::Record,
    path: PathBuf,
    started: Instant,
    current: Option<(String, String, Instant, u64)>,
}

impl Phases {
    fn load(state: &Path, started: Instant) -> Result<Phases, Failure> {
        state_dirs(state)?;
        let path = state.join("install.json");
        let record = bootstrap::phases::Record::load(&path).map_err(state_failure)?;
        Ok(Phases { record, path, started, current: None })
    }

    fn save(&self) -> Result<(), Failure> {
        self.record.save(&self.path).map_err(|e| Failure(format!("{}: {e}", self.path.display()), 1))
    }

    /// Whether `name` is done for `fingerprint`; says so when skipping it.
    fn done(&self, name: &str, fingerprint: &str) -> bool {
        let done = self.record.is_done(name, fingerprint);
        if done {
            phase(self.started, &format!("{name}: done in an earlier run, skipped"));
        }
        done
    }

    fn begin(&mut self, name: &str, fingerprint: &str) -> Result<(), Failure> {
        phase(self.started, &format!("{name}: started"));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        self.current = Some((name.to_string(), fingerprint.to_string(), Instant::now(), now));
        self.record.set(bootstrap::phases::PhaseRecord {
            name: name.into(),
            state: bootstrap::phases::PhaseState::Running,
            fingerprint: fingerprint.into(),
            started: now,
            seconds: 0.0,
            message: None,
        });
        self.save()
    }

    fn end(&mut self, state: bootstrap::phases::PhaseState, message: &str) -> Result<(), Failure> {
        let Some((name, fingerprint, began, started)) = self.current.take() else { return Ok(()) };
        let seconds = began.elapsed().as_secs_f64();
        let verb = if state == bootstrap::phases::PhaseState::Done { "done" } else { "FAILED" };
        let first_line = message.lines().next().unwrap_or_default();
        phase(
            self.started,
            &format!(
                "{name}: {verb} in {seconds:.1}s{}",
                if first_line.is_empty() { String::new() } else { format!(" — {first_line}") }
            ),
        );
        self.record.set(bootstrap::phases::PhaseRecord {
            name,
            state,
            fingerprint,
            started,
            seconds,
            message: (!message.is_empty()).then(|| message.to_string()),
        });
        self.save()
    }

    /// Runs `work` as phase `name` (unless done for `fingerprint`; `None` always runs it),
    /// recording how it ended.
    fn run<T>(
        &mut self,
        name: &str,
        fingerprint: Option<&str>,
        work: impl FnOnce() -> Result<(T, String), Failure>,
    ) -> Result<Option<T>, Failure> {
        let fingerprint = fingerprint.unwrap_or_default();
        if !fingerprint.is_empty() && self.done(name, fingerprint) {
            return Ok(None);
        }
        self.begin(name, fingerprint)?;
        match work() {
            Ok((value, message)) => {
                self.end(bootstrap::phases::PhaseState::Done, &message)?;
                Ok(Some(value))
            }
            Err(Failure(message, code)) => {
                self.end(bootstrap::phases::PhaseState::Failed, &message)?;
                Err(Failure(
                    format!("{message}\n(phase {name} failed; fix the cause and run the same command again to continue from it)"),
                    code,
                ))
            }
        }
    }
}

fn fingerprint_of(value: &impl serde::Serialize) -> String {
    bootstrap::phases::fingerprint(&[&serde_json::to_vec(value).expect("values serialise")])
}

fn install(
    input: &Path,
    state_dir: Option<&Path>,
    options: &InstallOptions,
    env: &BTreeMap<String, String>,
) -> Result<(), Failure> {
    use bootstrap::install as k8s;
    let started = Instant::now();
    let config = load(input, env)?;
    let state =
        state_dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(format!("stratus-{}", config.cluster_name)));
    // Bad input is found before anything is created: the catalog holding the platform too.
    let catalog = sdl::catalog::Catalog::load(&options.catalog).map_err(|e| Failure(e.to_string(), 2))?;
    catalog.service(bootstrap::install::PLATFORM_SERVICE).map_err(|e| {
        Failure(format!("{}: {e} (the platform service must be in the catalog)", options.catalog.display()), 2)
    })?;
    check_state(&state)?;
    let mut phases = Phases::load(&state, started)?;
    if let Some(from) = &options.from {
        phases.record.forget_from(from);
    }
    phases.run("validate", None, || {
        let summary = format!(
            "{} cluster \"{}\": {} master(s), {} node(s), {} GlusterFS node(s)",
            config.provider.templates(),
            config.cluster_name,
            config.master_count,
            config.node_count,
            config.gluster_node_count
        );
        Ok(((), summary))
    })?;
    let properties = std::fs::read(input).map_err(|e| Failure(format!("{}: {e}", input.display()), 2))?;
    let provider_fingerprint = bootstrap::phases::fingerprint(&[&properties]);
    phases.run("preflight", Some(&provider_fingerprint), || {
        preflight(&config, env, started)?;
        Ok(((), String::new()))
    })?;
    let prepared = phases
        .run("render", None, || {
            let prepared = prepare(input, Some(&state), env, started, true, false)?;
            Ok((prepared, String::new()))
        })?
        .expect("render always runs");
    phases.run("provision", Some(&prepared.rendered_fingerprint), || {
        let applied = apply_machines(&prepared, started, options.yes)?;
        let (add, change, remove) = applied.changes;
        Ok(((), format!("{add} added, {change} changed, {remove} destroyed")))
    })?;
    let outputs = read_outputs(&state)?;

    let kubeconfig = state.join("kubeconfig");
    let runtime = runtime();
    let cluster = runtime
        .block_on(service_manager::cluster::Cluster::connect(Some(&kubeconfig), None, Default::default()))
        .map_err(|e| Failure(e.to_string(), 1))?;
    let waits = k8s::Waits { timeout: options.timeout, interval: Duration::from_millis(500) };
    phases.run("api", None, || {
        runtime
            .block_on(k8s::wait_for_api(&cluster, waits, |why| {
                phase(started, &format!("waiting for the Kubernetes API at {}: {why}", cluster.server()))
            }))
            .map_err(|e| Failure(e.to_string(), 1))?;
        Ok(((), format!("{} answers", cluster.server())))
    })?;

    let mut facts = bootstrap::platform::Facts::from_outputs(&outputs);
    if let Some(ca) = prepared.config.openstack.as_ref().and_then(|o| o.ca_cert_file.as_ref()) {
        facts.openstack_ca_certificate =
            Some(bootstrap::read_input_text(ca).map_err(|e| Failure(format!("{}: {e}", ca.display()), 2))?);
    }
    let expected_nodes = (config.master_count + config.node_count) as usize;
    for step in bootstrap::platform::plan(&config, &facts) {
        let objects: Vec<serde_json::Value> =
            step.objects.iter().map(|o| serde_json::to_value(o).expect("objects serialise")).collect();
        phases.run(step.name, Some(&fingerprint_of(&objects)), || {
            phase(started, &format!("{}: {} ({} objects)", step.name, step.title, step.objects.len()));
            runtime.block_on(async {
                k8s::apply_step(&cluster, &step).await.map_err(|e| Failure(e.to_string(), 1))?;
                k8s::wait_for_workloads(&cluster, &step, waits, |waiting| {
                    phase(started, &format!("{}: waiting for {}", step.name, waiting.join("; ")))
                })
                .await
                .map_err(|e| Failure(e.to_string(), 1))?;
                if step.name == "network" {
                    let ready = k8s::wait_for_nodes(&cluster, expected_nodes, waits, |waiting| {
                        phase(started, &format!("network: waiting for {}", waiting.join("; ")))
                    })
                    .await
                    .map_err(|e| Failure(e.to_string(), 1))?;
                    return Ok(((), format!("{} objects applied; {ready} node(s) Ready", step.objects.len())));
                }
                Ok(((), format!("{} objects applied and ready", step.objects.len())))
            })
        })?;
    }

    let request = k8s::platform_request(&config);
    // The request and the version it will install (the catalog's newest).
    let newest = catalog
        .service(k8s::PLATFORM_SERVICE)
        .ok()
        .and_then(|s| s.versions.last())
        .map(|v| (v.product_version.clone(), v.sdl_version.clone()));
    let platform_fingerprint = fingerprint_of(&(&request.sets, &request.service_id, newest));
    phases.run("platform", Some(&platform_fingerprint), || {
        let progress = service_manager::progress::stderr();
        let report = runtime
            .block_on(k8s::install_platform(&cluster, &catalog, &config, options.timeout, progress.as_ref()))
            .map_err(|e| Failure(e.to_string(), 1))?;
        Ok((
            (),
            format!("{} {} ({} objects, {})", k8s::PLATFORM_SERVICE, report.instance_id, report.objects, report.state),
        ))
    })?;

    let api_address = outputs["api_address"].as_str().unwrap_or_default().to_string();
    let report = phases
        .run("report", None, || {
            let report = runtime
                .block_on(k8s::platform_report(
                    &cluster,
                    &config,
                    &api_address,
                    &std::path::absolute(&kubeconfig).unwrap_or(kubeconfig.clone()),
                ))
                .map_err(|e| Failure(e.to_string(), 1))?;
            let credentials = state.join("credentials.yaml");
            let _ = std::fs::remove_file(&credentials);
            bootstrap::write_rendered(
                &state,
                &bootstrap::render::Rendered {
                    secret_files: [("credentials.yaml".to_string(), report.credentials.clone())].into(),
                    ..Default::default()
                },
            )
            .map_err(|e| Failure(format!("{}: {e}", credentials.display()), 1))?;
            Ok((report, format!("credentials in {}", credentials.display())))
        })?
        .expect("the report always runs");
    write_state(&state, "installed", outputs)?;
    prepared.clear_terraform_secrets(started)?;
    println!("cluster {} is installed ({:.1}s)", config.cluster_name, started.elapsed().as_secs_f64());
    println!("  Kubernetes API   {}", bootstrap::nodes::api_url(&config));
    for (name, url) in &report.endpoints {
        println!("  {name:<16} {url}");
    }
    println!("  admin kubeconfig {} (mode 0600)", kubeconfig.display());
    println!(
        "  credentials      {} (mode 0600: platform admin password, hsm client secret)",
        state.join("credentials.yaml").display()
    );
    println!("DNS records to create:");
    for (record, target) in &report.dns {
        let kind = if target.parse::<std::net::Ipv6Addr>().is_ok() { "AAAA" } else { "A" };
        println!("  {record:<40} {kind}  {target}");
    }
    Ok(())
}

/// Terraform's outputs as recorded by the provision phase.
fn read_outputs(state: &Path) -> Result<serde_json::Value, Failure> {
    let path = state.join("state.json");
    let text = bootstrap::read_input_text(&path).map_err(|e| Failure(format!("{}: {e}", path.display()), 1))?;
    let record: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Failure(
            format!("{}: not a state record ({e}); expected the state.json an earlier run wrote", path.display()),
            2,
        )
    })?;
    Ok(record["outputs"].clone())
}
