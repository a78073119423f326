//! `hsm`: the Stratus service manager command line.
//!
//! Exit codes: 0 success, 2 bad input (arguments, catalog, SDL, IDL, parameters) with one
//! report on stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sdl::catalog::Catalog;
use sdl::parse::read_document;
use sdl::resolve::{ResolveError, Stored};
use sdl::validate::{validate_idl, validate_sdl};
use sdl::{Idl, LoadError, Sdl};
use service_manager::cluster::{ClientOptions, Cluster};
use service_manager::instance::{self, CreateOptions, DeleteReport, InstanceError};
use service_manager::output::{self, Format, ServiceDetail};
use service_manager::progress::Stderr;
use service_manager::request::{parse_set, prepare, InstanceRequest};
use service_manager::{ClusterProfile, HsmError};

/// The catalog shipped with Stratus (used when neither --catalog nor HSM_CATALOG is given).
const SHIPPED_CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../catalog");

#[derive(Parser)]
#[command(
    name = "hsm",
    version,
    about = "Stratus service manager: a catalog of services turned into running instances"
)]
struct Cli {
    /// Catalog folder.
    #[arg(long, global = true, env = "HSM_CATALOG", value_name = "DIR")]
    catalog: Option<PathBuf>,
    /// Kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long, global = true, value_name = "NAME")]
    context: Option<String>,
    /// Objects applied at once.
    #[arg(long, global = true, default_value_t = 32, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// How long to wait for any one answer of the API server (retries stop after twice this).
    #[arg(long, global = true, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    request_timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the services of the catalog.
    ListServices {
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Format,
    },
    /// List the catalog's categories and their services.
    ListCategories {
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Show a service: versions, upgrade paths, parameters.
    GetService {
        /// Service id, e.g. stackato.hpe.mysql.
        service_id: String,
        /// Product version whose parameters to show (newest when absent).
        product_version: Option<String>,
        /// SDL version (newest of the product version when absent).
        sdl_version: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Create an instance of a service (or print its objects with --dry-run). Re-running it
    /// on an existing instance converges.
    CreateInstance(CreateArgs),
    /// List the instances on the cluster.
    ListInstances {
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Show an instance: versions, state, parameters (secrets masked), components, public locations.
    GetInstance {
        /// Instance id.
        #[arg(value_parser = parse_instance_id)]
        instance_id: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Upgrade an instance to another version of its service (as the catalog's upgrade_from
    /// allows), keeping generated secrets; --set changes parameters at the same time.
    UpgradeInstance {
        /// Instance id.
        #[arg(value_parser = parse_instance_id)]
        instance_id: String,
        /// Product version to upgrade to.
        product_version: String,
        /// SDL version (newest of the product version when absent).
        sdl_version: Option<String>,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Change parameters of an instance (immutable ones excepted) and roll its workloads.
    ConfigureInstance {
        /// Instance id.
        #[arg(value_parser = parse_instance_id)]
        instance_id: String,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Delete an instance and wait until it is gone.
    DeleteInstance {
        /// Instance id.
        #[arg(value_parser = parse_instance_id)]
        instance_id: String,
        /// Do not ask for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
        /// Keep the volume claims (and the namespace holding them).
        #[arg(long)]
        keep_volumes: bool,
        /// How long to wait for the deletion (e.g. 30s, 10m).
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Check SDL files, a whole catalog, or an IDL against an SDL.
    Lint {
        /// A catalog folder or an SDL file (default: the catalog).
        path: Option<PathBuf>,
        /// An IDL to check against the SDL file.
        #[arg(long, value_name = "FILE")]
        idl: Option<PathBuf>,
    },
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
    /// Set a parameter (overrides the IDL); repeatable. Values given here are visible in the
    /// process list: give secrets with --set-file, in the IDL, or when asked on a terminal.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    sets: Vec<(String, String)>,
    /// Set a parameter to the contents of FILE (`-` for standard input; one trailing newline
    /// is dropped); repeatable.
    #[arg(long = "set-file", value_name = "NAME=FILE", value_parser = parse_set)]
    set_files: Vec<(String, String)>,
    /// Instance id (namespace); generated from the service name when absent.
    #[arg(long, value_name = "ID")]
    instance_id: Option<String>,
    /// Print the objects that would be created, create nothing.
    #[arg(long)]
    dry_run: bool,
    /// Apply and return without waiting for readiness (pre-flight jobs are still awaited).
    #[arg(long)]
    no_wait: bool,
    /// How long to wait in all (e.g. 30s, 10m, 1h).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    timeout: Duration,
    /// Plan output format.
    #[arg(short = 'o', long, value_enum, default_value = "yaml")]
    output: PlanFormat,
    #[command(flatten)]
    profile: ProfileArgs,
}

/// Options shared by upgrade-instance and configure-instance.
#[derive(Args)]
struct ChangeArgs {
    /// Set a parameter; repeatable. Values given here are visible in the process list: give
    /// secrets with --set-file.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    sets: Vec<(String, String)>,
    /// Set a parameter to the contents of FILE (`-` for standard input; one trailing newline
    /// is dropped); repeatable.
    #[arg(long = "set-file", value_name = "NAME=FILE", value_parser = parse_set)]
    set_files: Vec<(String, String)>,
    /// Apply and return without waiting for readiness.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait in all (e.g. 30s, 10m, 1h).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    profile: ProfileArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PlanFormat {
    Yaml,
    Json,
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
    fn load(&self) -> Result<ClusterProfile, HsmError> {
        let mut profile: ClusterProfile = match &self.profile {
            Some(path) => read_document(path)?,
            None => ClusterProfile::default(),
        };
        if let Some(registry) = &self.registry {
            profile.registry = Some(registry.clone());
        }
        if let Some(class) = &self.storage_class {
            profile.block_storage_class = Some(class.clone());
        }
        if let Some(class) = &self.shared_storage_class {
            profile.shared_storage_class = Some(class.clone());
        }
        if !self.zones.is_empty() {
            profile.zones = self.zones.clone();
        }
        // Each problem is named by the flag that gave the value, else by the file's key.
        let problems: Vec<String> = profile
            .problems()
            .into_iter()
            .map(|problem| {
                let field = problem.path.split('[').next().unwrap_or_default();
                let flag = match field {
                    "registry" if self.registry.is_some() => Some("--registry"),
                    "block_storage_class" if self.storage_class.is_some() => Some("--storage-class"),
                    "shared_storage_class" if self.shared_storage_class.is_some() => Some("--shared-storage-class"),
                    "zones" if !self.zones.is_empty() => Some("--zones"),
                    _ => None,
                };
                match (flag, &self.profile) {
                    (Some(flag), _) => format!("{flag}: {}", problem.message),
                    (None, Some(file)) => format!("{}: {problem}", file.display()),
                    (None, None) => problem.to_string(),
                }
            })
            .collect();
        if !problems.is_empty() {
            return Err(HsmError::Usage(problems.join("\nerror: ")));
        }
        Ok(profile)
    }
}

/// An instance id is a namespace name: a DNS label. Checked before any cluster is asked.
fn parse_instance_id(text: &str) -> Result<String, String> {
    match sdl::names::dns_label(text) {
        None => Ok(text.to_string()),
        Some(problem) => Err(format!("not an instance id: {problem}")),
    }
}

/// Longest timeout accepted: anything longer is surely a slip of the keyboard.
const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses a timeout such as `30s`, `10m`, `1h30m` or `500ms`: more than zero, at most a week.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim()).map_err(|error| match error {
        humantime::DurationError::NumberOverflow => {
            format!("\"{}\" is longer than the longest timeout accepted, 168h (a week)", text.escape_debug())
        }
        _ => format!("\"{}\" is not a duration such as 30s, 10m or 1h", text.escape_debug()),
    })?;
    if duration.is_zero() {
        return Err("must be longer than zero (e.g. 30s, 10m or 1h)".into());
    }
    if duration > MAX_TIMEOUT {
        return Err(format!("\"{}\" is longer than the longest timeout accepted, 168h (a week)", text.escape_debug()));
    }
    Ok(duration)
}

/// A failure and the exit code it deserves: 2 for bad input, 1 for everything else.
struct Failure(String, u8);

impl From<HsmError> for Failure {
    fn from(error: HsmError) -> Self {
        Failure(error.to_string(), 2)
    }
}

impl From<InstanceError> for Failure {
    fn from(error: InstanceError) -> Self {
        match error {
            InstanceError::Hsm(e) => e.into(),
            other => Failure(other.to_string(), 1),
        }
    }
}

fn main() -> ExitCode {
    // With more than one rustls crypto provider compiled in (a workspace build that includes
    // the AWS SDK), kube's client cannot choose one by itself.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        // Quiet unless asked: failures reach the user as one report, not as library logs.
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HSM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    match runtime.block_on(run(cli)) {
        Ok(stdout) => {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`hsm ... | head`) is not an error worth reporting.
            let _ = out.write_all(stdout.as_bytes());
            ExitCode::SUCCESS
        }
        Err(Failure(message, code)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

async fn connect(cli: &Cli) -> Result<Cluster, Failure> {
    let options = ClientOptions {
        concurrency: usize::from(cli.concurrency),
        request_timeout: cli.request_timeout,
        ..ClientOptions::default()
    };
    Cluster::connect(cli.kubeconfig.as_deref(), cli.context.as_deref(), options)
        .await
        .map_err(|e| Failure(e.to_string(), 1))
}

fn catalog_dir(cli: &Cli) -> PathBuf {
    cli.catalog.clone().unwrap_or_else(|| {
        let shipped = PathBuf::from(SHIPPED_CATALOG);
        std::fs::canonicalize(&shipped).unwrap_or(shipped)
    })
}

async fn run(cli: Cli) -> Result<String, Failure> {
    let dir = catalog_dir(&cli);
    match &cli.command {
        Command::ListServices { output } => {
            Ok(output::list_services(&Catalog::load(&dir).map_err(HsmError::from)?, *output))
        }
        Command::ListCategories { output } => {
            Ok(output::list_categories(&Catalog::load(&dir).map_err(HsmError::from)?, *output))
        }
        Command::GetService { service_id, product_version, sdl_version, output } => {
            let catalog = Catalog::load(&dir).map_err(HsmError::from)?;
            let service = catalog.service(service_id).map_err(HsmError::from)?;
            let version =
                service.version(product_version.as_deref(), sdl_version.as_deref()).map_err(HsmError::from)?;
            let sdl = catalog.load_sdl(service, version).map_err(HsmError::from)?;
            Ok(ServiceDetail::of(service, &sdl).render(*output))
        }
        Command::CreateInstance(args) => create_instance(&cli, &dir, args).await,
        Command::ListInstances { output } => {
            let records = instance::list(&connect(&cli).await?).await?;
            Ok(output::list_instances(&records, *output))
        }
        Command::GetInstance { instance_id, output } => {
            let detail = instance::get(&connect(&cli).await?, instance_id).await?;
            Ok(output::instance_detail(&detail, *output))
        }
        Command::UpgradeInstance { instance_id, product_version, sdl_version, change } => {
            let target = Some((product_version.clone(), sdl_version.clone()));
            change_instance(&cli, &dir, instance_id, target, change).await
        }
        Command::ConfigureInstance { instance_id, change } => {
            if change.sets.is_empty() && change.set_files.is_empty() {
                return Err(HsmError::Usage("configure-instance needs at least one --set NAME=VALUE".into()).into());
            }
            change_instance(&cli, &dir, instance_id, None, change).await
        }
        Command::DeleteInstance { instance_id, yes, keep_volumes, timeout } => {
            let cluster = connect(&cli).await?;
            let confirm = |question: &str| *yes || ask(question);
            match instance::delete(&cluster, instance_id, *keep_volumes, *timeout, confirm).await? {
                DeleteReport::AlreadyGone => Ok(format!("instance {instance_id} does not exist; nothing to delete\n")),
                DeleteReport::Deleted => Ok(format!("instance {instance_id} deleted\n")),
                DeleteReport::VolumesKept(claims) => Ok(format!(
                    "instance {instance_id} deleted; kept in namespace {instance_id}: volume claims {} and the instance's parameters (create the instance again with --instance-id {instance_id} to reattach them)\n",
                    if claims.is_empty() { "(none)".to_string() } else { claims.join(", ") }
                )),
            }
        }
        Command::Lint { path, idl } => Ok(lint(path.as_deref().unwrap_or(&dir), idl.as_deref())?),
    }
}

async fn change_instance(
    cli: &Cli,
    dir: &Path,
    id: &str,
    target: Option<(String, Option<String>)>,
    args: &ChangeArgs,
) -> Result<String, Failure> {
    let catalog = Catalog::load(dir).map_err(HsmError::from)?;
    let profile = args.profile.load()?;
    let cluster = connect(cli).await?;
    let options = CreateOptions { wait: !args.no_wait, timeout: args.timeout };
    let sets = with_files(&args.sets, &args.set_files)?;
    let report = instance::change(&cluster, &catalog, id, target, &sets, &profile, options, &Stderr::new()).await?;
    let removed =
        if report.removed.is_empty() { String::new() } else { format!(", removed {}", report.removed.join(", ")) };
    let what = if report.from == report.to {
        format!("reconfigured at {}", report.to)
    } else {
        format!("upgraded from {} to {}", report.from, report.to)
    };
    Ok(format!(
        "instance {} {what}: {} objects applied{removed}, state {}\n",
        report.instance_id, report.applied, report.state
    ))
}

/// Asks a yes/no question on the terminal; without one, the answer is no.
fn ask(question: &str) -> bool {
    use std::io::{BufRead, IsTerminal};
    if !std::io::stdin().is_terminal() {
        eprintln!("{question}\nrefusing without a terminal to confirm on; pass -y to confirm");
        return false;
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}

async fn create_instance(cli: &Cli, dir: &Path, args: &CreateArgs) -> Result<String, Failure> {
    let catalog = Catalog::load(dir).map_err(HsmError::from)?;
    let profile = args.profile.load()?;
    let mut request = instance_request(args)?;
    // Bad input is reported before any cluster is contacted.
    service_manager::request::check(&catalog, &request)?;
    if args.dry_run {
        return match plan_instance(&catalog, &request, &profile, args.output) {
            Err(HsmError::Resolve(ResolveError::Missing(names))) if ask_missing(&catalog, &mut request, &names)? => {
                Ok(plan_instance(&catalog, &request, &profile, args.output)?)
            }
            other => Ok(other?),
        };
    }
    let cluster = connect(cli).await?;
    let options = CreateOptions { wait: !args.no_wait, timeout: args.timeout };
    let mut result = instance::create(&cluster, &catalog, &request, &profile, options, &Stderr::new()).await;
    if let Err(InstanceError::Hsm(HsmError::Resolve(ResolveError::Missing(names)))) = &result {
        if ask_missing(&catalog, &mut request, &names.clone())? {
            result = instance::create(&cluster, &catalog, &request, &profile, options, &Stderr::new()).await;
        }
    }
    let report = result?;
    let verb = if report.existed { "converged" } else { "created" };
    Ok(format!("instance {} {verb}: {} objects applied, state {}\n", report.instance_id, report.objects, report.state))
}

/// Reads a line from the terminal on stdin without echoing it. Echo is turned off *before*
/// the prompt is shown, so nothing typed after the prompt appears can be echoed.
fn read_hidden(prompt: &str) -> std::io::Result<String> {
    use std::io::BufRead;
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data; tcgetattr fills it for a terminal file descriptor.
    let mut original: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut original) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut hidden = original;
    hidden.c_lflag &= !libc::ECHO;
    hidden.c_lflag |= libc::ECHONL;
    // SAFETY: a valid termios for the same descriptor.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &hidden) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    eprint!("{prompt}");
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    // SAFETY: restores the settings read above.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &original) };
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// On a terminal, asks for each missing required parameter (secret ones without echo) and
/// adds the answers to the request; `false` without a terminal.
fn ask_missing(catalog: &Catalog, request: &mut InstanceRequest, names: &[String]) -> Result<bool, Failure> {
    use std::io::{BufRead, IsTerminal};
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    let checked = service_manager::request::check(catalog, request)?;
    eprintln!("{} needs values for: {}", checked.service.id, names.join(", "));
    for name in names {
        let parameter = checked.sdl.parameter(name);
        let description = parameter.and_then(|p| p.description.clone()).map(|d| format!(" ({d})")).unwrap_or_default();
        let example = parameter.and_then(|p| p.example.clone()).map(|e| format!(" [e.g. {e}]")).unwrap_or_default();
        let prompt = format!("{name}{description}{example}: ");
        let value = if parameter.is_some_and(|p| p.secret) {
            read_hidden(&prompt).map_err(|e| Failure(format!("cannot read {name}: {e}"), 2))?
        } else {
            eprint!("{prompt}");
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).map_err(|e| Failure(format!("cannot read {name}: {e}"), 2))?;
            line.trim_end_matches(['\r', '\n']).to_string()
        };
        if value.is_empty() {
            return Err(Failure(format!("no value given for {name}"), 2));
        }
        request.sets.push((name.clone(), value));
    }
    Ok(true)
}

fn instance_request(args: &CreateArgs) -> Result<InstanceRequest, HsmError> {
    let (idl, idl_source) = match &args.idl {
        Some(path) => (read_document::<Idl>(path)?, path.display().to_string()),
        None => (Idl::default(), "the command line".to_string()),
    };
    Ok(InstanceRequest {
        service_id: args.service_id.clone(),
        product_version: args.product_version.clone(),
        sdl_version: args.sdl_version.clone(),
        idl,
        idl_source,
        sets: with_files(&args.sets, &args.set_files)?,
        instance_id: args.instance_id.clone(),
    })
}

/// Longest value read by --set-file.
const MAX_SET_FILE: u64 = 1 << 20;

/// `--set` values followed by the `--set-file` ones, read from their files.
fn with_files(sets: &[(String, String)], files: &[(String, String)]) -> Result<Vec<(String, String)>, HsmError> {
    use std::io::Read;
    let mut all = sets.to_vec();
    for (name, file) in files {
        let fail = |why: String| HsmError::Usage(format!("--set-file {name}={file}: {why}"));
        let mut bytes = Vec::new();
        let read = if file == "-" {
            std::io::stdin().lock().take(MAX_SET_FILE + 1).read_to_end(&mut bytes)
        } else {
            // Checked before opening: opening a FIFO would wait for a writer.
            let meta = std::fs::metadata(file).map_err(|e| fail(e.to_string()))?;
            if !meta.is_file() {
                return Err(fail("not a regular file".into()));
            }
            let opened = std::fs::File::open(file).map_err(|e| fail(e.to_string()))?;
            opened.take(MAX_SET_FILE + 1).read_to_end(&mut bytes)
        };
        read.map_err(|e| fail(e.to_string()))?;
        if bytes.len() as u64 > MAX_SET_FILE {
            return Err(fail(format!("longer than {MAX_SET_FILE} bytes")));
        }
        let mut value = String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".into()))?;
        if value.ends_with('\n') {
            value.pop();
            if value.ends_with('\r') {
                value.pop();
            }
        }
        all.push((name.clone(), value));
    }
    Ok(all)
}

fn plan_instance(
    catalog: &Catalog,
    request: &InstanceRequest,
    profile: &ClusterProfile,
    format: PlanFormat,
) -> Result<String, HsmError> {
    let prepared = prepare(catalog, request, &Stored::default(), profile, &mut rand::rng())?;
    let plan = prepared.plan(profile)?;
    eprintln!(
        "Planned instance {} of {} {}/{}: {} objects in {} steps (dry run: nothing was created).",
        plan.instance_id,
        prepared.service.id,
        prepared.version.product_version,
        prepared.version.sdl_version,
        plan.objects().count(),
        plan.steps.len()
    );
    Ok(match format {
        PlanFormat::Yaml => output::plan_yaml(&plan),
        PlanFormat::Json => output::plan_json(&plan),
    })
}

fn lint(path: &Path, idl: Option<&Path>) -> Result<String, HsmError> {
    if path.is_dir() {
        if idl.is_some() {
            return Err(HsmError::Usage("--idl needs an SDL file, not a catalog folder".into()));
        }
        let catalog = Catalog::load(path)?;
        let errors = catalog.lint();
        if errors.is_empty() {
            let versions: usize = catalog.services.iter().map(|s| s.versions.len()).sum();
            return Ok(format!(
                "{}: {} services, {versions} versions, no problems\n",
                path.display(),
                catalog.services.len()
            ));
        }
        let report: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        return Err(HsmError::Usage(report.join("\nerror: ")));
    }
    let sdl: Sdl = read_document(path)?;
    let problems = validate_sdl(&sdl);
    if !problems.is_empty() {
        return Err(LoadError::Invalid { source_name: path.display().to_string(), what: "SDL", problems }.into());
    }
    if let Some(idl_path) = idl {
        let idl: Idl = read_document(idl_path)?;
        let service_id = idl.service_id.clone().unwrap_or_default();
        let problems = validate_idl(&sdl, &service_id, &idl);
        if !problems.is_empty() {
            return Err(LoadError::Invalid {
                source_name: idl_path.display().to_string(),
                what: "instance definition",
                problems,
            }
            .into());
        }
        return Ok(format!("{}: valid SDL; {}: valid instance definition\n", path.display(), idl_path.display()));
    }
    Ok(format!("{}: valid SDL\n", path.display()))
}
