//! `hsm`: the Stratus service manager command line.
//!
//! Exit codes: 0 success, 2 bad input (arguments, catalog, SDL, IDL, parameters) with one
//! report on stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use sdl::catalog::Catalog;
use sdl::parse::read_document;
use sdl::resolve::Stored;
use sdl::validate::{validate_idl, validate_sdl};
use sdl::{Idl, LoadError, Sdl};
use service_manager::output::{self, Format, ServiceDetail};
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
    /// Create an instance of a service (only --dry-run for now: print the planned objects).
    CreateInstance(CreateArgs),
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
    /// Set a parameter (overrides the IDL); repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    sets: Vec<(String, String)>,
    /// Instance id (namespace); generated from the service name when absent.
    #[arg(long, value_name = "ID")]
    instance_id: Option<String>,
    /// Print the objects that would be created, create nothing.
    #[arg(long)]
    dry_run: bool,
    /// Plan output format.
    #[arg(short = 'o', long, value_enum, default_value = "yaml")]
    output: PlanFormat,
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
        Ok(profile)
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("HSM_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(stdout) => {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`hsm ... | head`) is not an error worth reporting.
            let _ = out.write_all(stdout.as_bytes());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

fn catalog_dir(cli: &Cli) -> PathBuf {
    cli.catalog.clone().unwrap_or_else(|| {
        let shipped = PathBuf::from(SHIPPED_CATALOG);
        std::fs::canonicalize(&shipped).unwrap_or(shipped)
    })
}

fn run(cli: Cli) -> Result<String, HsmError> {
    let dir = catalog_dir(&cli);
    match cli.command {
        Command::ListServices { output } => Ok(output::list_services(&Catalog::load(&dir)?, output)),
        Command::ListCategories { output } => Ok(output::list_categories(&Catalog::load(&dir)?, output)),
        Command::GetService { service_id, product_version, sdl_version, output } => {
            let catalog = Catalog::load(&dir)?;
            let service = catalog.service(&service_id)?;
            let version = service.version(product_version.as_deref(), sdl_version.as_deref())?;
            let sdl = catalog.load_sdl(service, version)?;
            Ok(ServiceDetail::of(service, &sdl).render(output))
        }
        Command::CreateInstance(args) => create_instance(&dir, args),
        Command::Lint { path, idl } => lint(path.as_deref().unwrap_or(&dir), idl.as_deref()),
    }
}

fn create_instance(dir: &Path, args: CreateArgs) -> Result<String, HsmError> {
    let catalog = Catalog::load(dir)?;
    let profile = args.profile.load()?;
    let (idl, idl_source) = match &args.idl {
        Some(path) => (read_document::<Idl>(path)?, path.display().to_string()),
        None => (Idl::default(), "the command line".to_string()),
    };
    let request = InstanceRequest {
        service_id: args.service_id,
        product_version: args.product_version,
        sdl_version: args.sdl_version,
        idl,
        idl_source,
        sets: args.sets,
        instance_id: args.instance_id,
    };
    let prepared = prepare(&catalog, &request, &Stored::default(), &profile, &mut rand::rng())?;
    let plan = prepared.plan(&profile)?;
    if !args.dry_run {
        return Err(HsmError::Usage(
            "applying to a cluster is not implemented yet; add --dry-run to print the planned objects".into(),
        ));
    }
    eprintln!(
        "Planned instance {} of {} {}/{}: {} objects in {} steps (dry run: nothing was created).",
        plan.instance_id,
        prepared.service.id,
        prepared.version.product_version,
        prepared.version.sdl_version,
        plan.objects().count(),
        plan.steps.len()
    );
    Ok(match args.output {
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
