//! `hsm`: the Stratus service manager command line — flags, prompts, printing and exit codes
//! only; every verb is a library action (`service_manager::actions`).
//!
//! Exit codes: 0 success, 2 bad input (nothing touched), 1 everything else.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sdl::catalog::Catalog;
use sdl::parse::read_document;
use sdl::resolve::{ResolveError, Stored};
use sdl::Idl;
use service_manager::actions::{self, change, lint};
use service_manager::cluster::{ClientOptions, Cluster};
use service_manager::instance::InstanceError;
use service_manager::output::{self, Format, ServiceDetail};
use service_manager::request::{parse_set, prepare, read_value_files, InstanceRequest};
use service_manager::terminal::{self, parse_timeout};
use service_manager::{progress, ClusterProfile, HsmError};

/// The catalog shipped with Stratus (used when neither --catalog nor HSM_CATALOG is given).
const SHIPPED_CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../catalog");

#[derive(Parser)]
#[command(
    name = "hsm",
    version,
    about = "Stratus service manager: a catalog of services turned into running instances"
)]
struct Cli {
    /// Catalog folder [default: the catalog/ folder of the Stratus checkout hsm was built from].
    #[arg(long, global = true, env = "HSM_CATALOG", value_name = "DIR")]
    catalog: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// How to reach the cluster (commands that talk to one).
#[derive(Args)]
struct ClusterArgs {
    /// Kubeconfig file [default: KUBECONFIG, then ~/.kube/config, then in-cluster].
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// Objects applied at once.
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// How long to wait for any one answer of the API server (retries stop after twice this).
    #[arg(long, default_value = "30s", value_parser = parse_timeout, value_name = "DURATION")]
    request_timeout: Duration,
}

#[derive(Subcommand)]
enum Command {
    /// List the services of the catalog.
    ListServices(OutputArg),
    /// List the catalog's categories and their services.
    ListCategories(OutputArg),
    /// Show a service: versions, upgrade paths, parameters.
    GetService {
        /// Service id, e.g. stackato.hpe.mysql.
        service_id: String,
        /// Product version whose parameters to show (newest when absent).
        product_version: Option<String>,
        /// SDL version (newest of the product version when absent).
        sdl_version: Option<String>,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Create an instance of a service (or print its objects with --dry-run). Re-running it
    /// on an existing instance converges.
    CreateInstance(Box<CreateArgs>),
    /// List the instances on the cluster.
    ListInstances {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Show an instance: versions, state, parameters (secrets masked), components, public locations.
    GetInstance {
        #[command(flatten)]
        instance: InstanceArg,
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Print the values of an instance's secret parameters (passwords given or generated).
    GetCredentials {
        #[command(flatten)]
        instance: InstanceArg,
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Upgrade an instance to another version of its service (as the catalog's upgrade_from
    /// allows), keeping generated secrets; --set changes parameters at the same time.
    UpgradeInstance {
        #[command(flatten)]
        instance: InstanceArg,
        /// Product version to upgrade to.
        product_version: String,
        /// SDL version (newest of the product version when absent).
        sdl_version: Option<String>,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Change parameters of an instance (immutable ones excepted) and roll its workloads.
    ConfigureInstance {
        #[command(flatten)]
        instance: InstanceArg,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Delete an instance and wait until it is gone.
    DeleteInstance {
        #[command(flatten)]
        instance: InstanceArg,
        /// Do not ask for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
        /// Keep the volume claims (and the namespace holding them).
        #[arg(long)]
        keep_volumes: bool,
        /// How long to wait for the deletion (e.g. 30s, 10m).
        #[arg(long, default_value = "5m", value_parser = parse_timeout)]
        timeout: Duration,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Check SDL files, a whole catalog, or an IDL against an SDL.
    Lint {
        /// A catalog folder or an SDL file [default: the catalog].
        path: Option<PathBuf>,
        /// An IDL to check against the SDL file.
        #[arg(long, value_name = "FILE")]
        idl: Option<PathBuf>,
    },
}

#[derive(Args)]
struct OutputArg {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Format,
}

#[derive(Args)]
struct InstanceArg {
    /// Instance id.
    #[arg(value_parser = parse_instance_id)]
    instance_id: String,
}

/// Parameter values from the command line.
#[derive(Args)]
struct SetArgs {
    /// Set a parameter; repeatable. Values given here are visible in the process list: give
    /// secrets with --set-file, in the IDL, or when asked on a terminal.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    sets: Vec<(String, String)>,
    /// Set a parameter to the contents of FILE (`-` for standard input; one trailing newline
    /// is dropped); repeatable.
    #[arg(long = "set-file", value_name = "NAME=FILE", value_parser = parse_set)]
    set_files: Vec<(String, String)>,
}

impl SetArgs {
    fn values(&self) -> Result<Vec<(String, String)>, HsmError> {
        Ok([self.sets.clone(), read_value_files(&self.set_files)?].concat())
    }
}

#[derive(Args)]
struct CreateArgs {
    /// Service id, e.g. stackato.hpe.mysql.
    service_id: String,
    /// Product version (newest when absent).
    product_version: Option<String>,
    /// SDL version (newest of the product version when absent).
    sdl_version: Option<String>,
    /// Instance definition (IDL) file, JSON or YAML.
    #[arg(short = 'i', long = "idl", value_name = "FILE")]
    idl: Option<PathBuf>,
    #[command(flatten)]
    sets: SetArgs,
    /// Instance id (namespace); generated from the service name when absent.
    #[arg(long, value_name = "ID")]
    instance_id: Option<String>,
    /// Print the objects that would be created, create nothing. Secrets are left out.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: print the Secrets too, with their real values.
    #[arg(long, requires = "dry_run")]
    show_secrets: bool,
    /// Apply and return without waiting for readiness (pre-flight jobs are still awaited).
    #[arg(long)]
    no_wait: bool,
    /// How long to wait in all (e.g. 30s, 10m, 1h).
    #[arg(long, default_value = "10m", value_parser = parse_timeout)]
    timeout: Duration,
    /// Plan output format.
    #[arg(short = 'o', long, value_enum, default_value = "yaml")]
    output: output::PlanFormat,
    #[command(flatten)]
    profile: ProfileArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Options shared by upgrade-instance and configure-instance.
#[derive(Args)]
struct ChangeArgs {
    #[command(flatten)]
    sets: SetArgs,
    /// Apply and return without waiting for readiness.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait in all (e.g. 30s, 10m, 1h).
    #[arg(long, default_value = "10m", value_parser = parse_timeout)]
    timeout: Duration,
    #[command(flatten)]
    profile: ProfileArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Facts about the target cluster.
#[derive(Args)]
struct ProfileArgs {
    /// Cluster profile file (JSON or YAML); the flags below override it.
    #[arg(long, value_name = "FILE")]
    profile: Option<PathBuf>,
    /// Registry that replaces every image's registry.
    #[arg(long, value_name = "HOST")]
    registry: Option<String>,
    /// Storage class for per-instance volumes.
    #[arg(long, value_name = "CLASS")]
    storage_class: Option<String>,
    /// Storage class for shared (ReadWriteMany) volumes.
    #[arg(long, value_name = "CLASS")]
    shared_storage_class: Option<String>,
    /// Availability zones instances may run in, comma separated.
    #[arg(long, value_name = "ZONES", value_delimiter = ',')]
    zones: Vec<String>,
}

impl ProfileArgs {
    /// The profile file with the flags on top, every value checked; a problem is named by
    /// the flag that gave the value, else by the file's key.
    fn load(&self) -> Result<ClusterProfile, HsmError> {
        let mut profile: ClusterProfile = self.profile.as_deref().map(read_document).transpose()?.unwrap_or_default();
        let flags = [
            ("registry", "--registry", self.registry.clone()),
            ("block_storage_class", "--storage-class", self.storage_class.clone()),
            ("shared_storage_class", "--shared-storage-class", self.shared_storage_class.clone()),
        ];
        profile.registry = self.registry.clone().or(profile.registry);
        profile.block_storage_class = self.storage_class.clone().or(profile.block_storage_class);
        profile.shared_storage_class = self.shared_storage_class.clone().or(profile.shared_storage_class);
        if !self.zones.is_empty() {
            profile.zones = self.zones.clone();
        }
        let problems: Vec<String> = profile
            .problems()
            .into_iter()
            .map(|problem| {
                let field = problem.path.split('[').next().unwrap_or_default();
                let flag = flags.iter().find(|(f, _, v)| *f == field && v.is_some()).map(|(_, flag, _)| *flag);
                let flag = flag.or((field == "zones" && !self.zones.is_empty()).then_some("--zones"));
                match (flag, &self.profile) {
                    (Some(flag), _) => format!("{flag}: {}", problem.message),
                    (None, Some(file)) => format!("{}: {problem}", file.display()),
                    (None, None) => problem.to_string(),
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(profile)
        } else {
            Err(HsmError::Usage(problems.join("\nerror: ")))
        }
    }
}

/// An instance id is a namespace name: a DNS label, not a reserved one. Checked before any
/// cluster is asked.
fn parse_instance_id(text: &str) -> Result<String, String> {
    match sdl::validate::instance_id_problem(text) {
        None => Ok(text.to_string()),
        Some(problem) => Err(format!("not an instance id: {problem}")),
    }
}

/// A failure and its exit code.
struct Failure(String, u8);

impl From<HsmError> for Failure {
    fn from(error: HsmError) -> Self {
        let hint = match &error {
            HsmError::Resolve(ResolveError::Missing(_)) => {
                " (give values with --set NAME=VALUE, --set-file NAME=FILE or in the instance definition's parameters)"
            }
            _ => "",
        };
        Failure(format!("{error}{hint}"), 2)
    }
}

impl From<InstanceError> for Failure {
    fn from(error: InstanceError) -> Self {
        match error {
            InstanceError::Hsm(error) => error.into(),
            other => Failure(other.to_string(), other.exit_code()),
        }
    }
}

fn main() -> ExitCode {
    // With more than one rustls crypto provider compiled in (a workspace build that includes
    // the AWS SDK), kube's client cannot choose one by itself.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = tracing_subscriber::EnvFilter::try_from_env("HSM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(error) => Err(Failure(format!("cannot start: {error}"), 1)),
    };
    match result {
        Ok(stdout) => {
            // A closed pipe (`hsm ... | head`) is not an error worth reporting.
            let _ = std::io::stdout().lock().write_all(stdout.as_bytes());
            ExitCode::SUCCESS
        }
        Err(Failure(message, code)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

async fn connect(args: &ClusterArgs) -> Result<Cluster, Failure> {
    let options = ClientOptions {
        concurrency: usize::from(args.concurrency),
        request_timeout: args.request_timeout,
        ..ClientOptions::default()
    };
    Cluster::connect(args.kubeconfig.as_deref(), args.context.as_deref(), options)
        .await
        .map_err(|e| Failure(e.to_string(), 1))
}

async fn run(cli: Cli) -> Result<String, Failure> {
    let dir = cli.catalog.clone().unwrap_or_else(|| {
        let shipped = PathBuf::from(SHIPPED_CATALOG);
        std::fs::canonicalize(&shipped).unwrap_or(shipped)
    });
    // Services that cannot be read are named; the rest of the catalog stays usable.
    let catalog = || {
        let catalog = Catalog::load(&dir).map_err(HsmError::from)?;
        for broken in &catalog.broken {
            eprintln!("warning: service {} left out: {}", broken.id, broken.error);
        }
        Ok::<_, HsmError>(catalog)
    };
    match cli.command {
        Command::ListServices(o) => Ok(output::list_services(&catalog()?, o.output)),
        Command::ListCategories(o) => Ok(output::list_categories(&catalog()?, o.output)),
        Command::GetService { service_id, product_version, sdl_version, output } => {
            let catalog = catalog()?;
            let service = catalog.service(&service_id).map_err(HsmError::from)?;
            let version =
                service.version(product_version.as_deref(), sdl_version.as_deref()).map_err(HsmError::from)?;
            let sdl = catalog.load_sdl(service, version).map_err(HsmError::from)?;
            Ok(ServiceDetail::of(service, &sdl).render(output.output))
        }
        Command::CreateInstance(args) => create_instance(catalog()?, *args).await,
        Command::ListInstances { cluster, output } => {
            Ok(output::list_instances(&actions::list::run(&connect(&cluster).await?).await?, output.output))
        }
        Command::GetInstance { instance, cluster, output } => {
            let detail = actions::get::run(&connect(&cluster).await?, &instance.instance_id).await?;
            Ok(output::instance_detail(&detail, output.output))
        }
        Command::GetCredentials { instance, cluster, output } => {
            let credentials = actions::credentials::run(&connect(&cluster).await?, &instance.instance_id).await?;
            eprintln!(
                "Secret values of instance {} follow: keep them out of logs and shared terminals.",
                instance.instance_id
            );
            Ok(output::credentials(&credentials, output.output))
        }
        Command::UpgradeInstance { instance, product_version, sdl_version, change } => {
            let target = Some((product_version, sdl_version));
            change_instance(catalog()?, &instance.instance_id, target, change).await
        }
        Command::ConfigureInstance { instance, change } => {
            if change.sets.sets.is_empty() && change.sets.set_files.is_empty() {
                return Err(HsmError::Usage("configure-instance needs at least one --set NAME=VALUE".into()).into());
            }
            change_instance(catalog()?, &instance.instance_id, None, change).await
        }
        Command::DeleteInstance { instance, yes, keep_volumes, timeout, cluster } => {
            let id = &instance.instance_id;
            let confirm = |question: &str| {
                yes || terminal::confirm(question, "refusing without a terminal to confirm on; pass -y to confirm")
            };
            let options = actions::delete::Options { keep_volumes, timeout };
            let outcome = actions::delete::run(&connect(&cluster).await?, id, options, confirm).await?;
            Ok(output::deleted(id, &outcome))
        }
        Command::Lint { path, idl } => {
            let path = path.unwrap_or(dir);
            let outcome = lint::run(&path, idl.as_deref())?;
            if let lint::Outcome::Catalog { strays, .. } = &outcome {
                strays.iter().for_each(|stray| eprintln!("{}", output::stray(stray)));
            }
            Ok(output::linted(&path, idl.as_deref(), &outcome))
        }
    }
}

async fn change_instance(
    catalog: Catalog,
    id: &str,
    target: Option<(String, Option<String>)>,
    args: ChangeArgs,
) -> Result<String, Failure> {
    let profile = args.profile.load()?;
    let change = change::Change { target, sets: args.sets.values()?, wait: !args.no_wait, timeout: args.timeout };
    let cluster = connect(&args.cluster).await?;
    let progress = progress::stderr();
    let outcome = change::run(&cluster, &catalog, id, &change, &profile, progress.as_ref()).await?;
    progress.note(&format!("done in {:.1}s", outcome.elapsed.as_secs_f64()));
    Ok(output::changed(&outcome))
}

async fn create_instance(catalog: Catalog, args: CreateArgs) -> Result<String, Failure> {
    let profile = args.profile.load()?;
    let (idl, idl_source) = match &args.idl {
        Some(path) => (read_document::<Idl>(path).map_err(HsmError::from)?, path.display().to_string()),
        None => (Idl::default(), "the command line".to_string()),
    };
    let mut request = InstanceRequest {
        service_id: args.service_id.clone(),
        product_version: args.product_version.clone(),
        sdl_version: args.sdl_version.clone(),
        idl,
        idl_source,
        sets: args.sets.values()?,
        instance_id: args.instance_id.clone(),
    };
    // Bad input is reported before any cluster is contacted.
    service_manager::request::check(&catalog, &request)?;
    let plan = |request: &InstanceRequest| -> Result<String, HsmError> {
        let prepared = prepare(&catalog, request, &Stored::default(), &profile, &mut rand::rng())?;
        let plan = prepared.plan(&profile)?;
        eprintln!("{}", output::planned(&prepared, &plan));
        Ok(output::plan(&plan, args.output, args.show_secrets))
    };
    if args.dry_run {
        return match plan(&request) {
            Err(HsmError::Resolve(ResolveError::Missing(names))) if ask_missing(&catalog, &mut request, &names)? => {
                Ok(plan(&request)?)
            }
            other => Ok(other?),
        };
    }
    let cluster = connect(&args.cluster).await?;
    let options = actions::create::Options { wait: !args.no_wait, timeout: args.timeout };
    let progress = progress::stderr();
    let mut result = actions::create::run(&cluster, &catalog, &request, &profile, options, progress.as_ref()).await;
    if let Err(InstanceError::Hsm(HsmError::Resolve(ResolveError::Missing(names)))) = &result {
        if ask_missing(&catalog, &mut request, &names.clone())? {
            result = actions::create::run(&cluster, &catalog, &request, &profile, options, progress.as_ref()).await;
        }
    }
    let outcome = result?;
    progress.note(&format!("done in {:.1}s", outcome.elapsed.as_secs_f64()));
    Ok(output::created(&outcome))
}

/// On a terminal, asks for each missing required parameter (secret ones without echo) and
/// adds the answers to the request; `false` without a terminal.
fn ask_missing(catalog: &Catalog, request: &mut InstanceRequest, names: &[String]) -> Result<bool, Failure> {
    if !terminal::interactive() {
        return Ok(false);
    }
    let checked = service_manager::request::check(catalog, request)?;
    eprintln!("{} needs values for: {}", checked.service.id, names.join(", "));
    for name in names {
        let parameter = checked.sdl.parameter(name);
        let prompt = output::prompt(name, parameter);
        let value = if parameter.is_some_and(|p| p.secret) {
            terminal::read_hidden(&prompt)
        } else {
            terminal::read_line(&prompt)
        }
        .map_err(|e| Failure(format!("cannot read {name}: {e}"), 2))?;
        if value.is_empty() {
            return Err(Failure(format!("no value given for {name}"), 2));
        }
        request.sets.push((name.clone(), value));
    }
    Ok(true)
}
