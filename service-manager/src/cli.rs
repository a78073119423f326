//! The `hsm` command line's grammar: every subcommand and flag with its default and help
//! (clap derive types), and how flag values become library inputs (a checked cluster profile,
//! parameter values read from files). The binary parses with it and runs the actions.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sdl::parse::read_document;

use crate::declared::Choice;
use crate::output::{Format, PlanFormat};
use crate::request::{parse_set, read_value_files};
use crate::terminal::parse_timeout;
use crate::{ClusterProfile, HsmError};

/// The catalog shipped with Stratus (used when neither --catalog nor HSM_CATALOG is given).
pub const SHIPPED_CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../catalog");

/// `hsm` and its global flags.
#[derive(Parser)]
#[command(
    name = "hsm",
    version,
    about = "Stratus service manager: a catalog of services turned into running instances"
)]
pub struct Cli {
    /// Catalog folder [default: the catalog/ folder of the Stratus checkout hsm was built from].
    #[arg(long, global = true, env = "HSM_CATALOG", value_name = "DIR")]
    pub catalog: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// How to reach the cluster (commands that talk to one).
#[derive(Args)]
pub struct ClusterArgs {
    /// Kubeconfig file [default: KUBECONFIG, then ~/.kube/config, then in-cluster].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Objects applied at once.
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// How long to wait for any one answer of the API server (retries stop after twice this).
    #[arg(long, default_value = "30s", value_parser = parse_timeout, value_name = "DURATION")]
    pub request_timeout: Duration,
}

/// The subcommands. Catalog and instance verbs go to the HSM server set with `hsm api`
/// unless `--kubeconfig`/`--context` (or, for catalog verbs, `--catalog`) is given.
#[derive(Subcommand)]
pub enum Command {
    /// Set the HSM server hsm talks to (checks that it answers), or show it.
    Api {
        /// Server URL, e.g. https://hsm.example.com (http:// only for a loopback address).
        url: Option<String>,
        /// PEM file of the CA that signed the server's certificate (added to the public roots).
        #[arg(long, value_name = "FILE", requires = "url", conflicts_with = "skip_ssl_validation")]
        ca_file: Option<PathBuf>,
        /// Do not check the server's certificate at all (tests only: anyone on the way can
        /// read your tokens).
        #[arg(long, requires = "url")]
        skip_ssl_validation: bool,
    },
    /// Sign in to the HSM server through its identity provider: with -u (and -p or a password
    /// prompt) by password, else in a browser with a code (device authorization).
    Login {
        /// User name (password sign-in).
        #[arg(short = 'u', long = "user", value_name = "USER")]
        user: Option<String>,
        /// Password; asked for when -u is given without it. Visible in the process list:
        /// prefer the prompt (or one line on standard input without a terminal).
        /// A password may begin with '-' (`-p -x…` is the password `-x…`).
        #[arg(short = 'p', long = "password", value_name = "PASSWORD", requires = "user", allow_hyphen_values = true)]
        password: Option<String>,
    },
    /// Forget the tokens of the HSM server's session (the target stays).
    Logout,
    /// Show the HSM server's version and sign-in, and who you are signed in as.
    Info,
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
    /// Print the values of an instance's secret parameters (passwords given or generated), or
    /// with --binding the credentials of one of its bindings.
    GetCredentials {
        #[command(flatten)]
        instance: InstanceArg,
        /// Print this binding's credentials instead (the keys of its binding Secret).
        #[arg(long = "binding", value_name = "BINDING_ID", value_parser = parse_binding_id)]
        binding: Option<String>,
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Bind an instance: a binding Secret with the endpoint and credentials (a per-binding
    /// user where the service makes one), waiting for the bind job. Prints no secret value.
    CreateBinding {
        #[command(flatten)]
        instance: InstanceArg,
        /// Binding id (a DNS label of at most 50 characters) [default: a generated one].
        #[arg(value_parser = parse_binding_id)]
        binding_id: Option<String>,
        /// How long to wait for the bind job (e.g. 30s, 10m).
        #[arg(long, default_value = "5m", value_parser = parse_timeout)]
        timeout: Duration,
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        output: OutputArg,
    },
    /// List the bindings of an instance (no credentials).
    ListBindings {
        #[command(flatten)]
        instance: InstanceArg,
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Delete a binding: its Secret at once, then wait for the unbind job removing its user.
    DeleteBinding {
        #[command(flatten)]
        instance: InstanceArg,
        /// Binding id.
        #[arg(value_parser = parse_binding_id)]
        binding_id: String,
        /// How long to wait for the unbind job (e.g. 30s, 10m).
        #[arg(long, default_value = "5m", value_parser = parse_timeout)]
        timeout: Duration,
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
        mode: ModeArgs,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Run the converger: install the Instance resource definition, then keep every Instance
    /// as declared until SIGTERM or Ctrl-C.
    Controller(Box<ControllerArgs>),
    /// Check SDL files, a whole catalog, or an IDL against an SDL.
    Lint {
        /// A catalog folder or an SDL file [default: the catalog].
        path: Option<PathBuf>,
        /// An IDL to check against the SDL file.
        #[arg(long, value_name = "FILE")]
        idl: Option<PathBuf>,
    },
}

/// `-o`: the output format of a listing.
#[derive(Args)]
pub struct OutputArg {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Format,
}

/// The instance a command acts on.
#[derive(Args)]
pub struct InstanceArg {
    /// Instance id.
    #[arg(value_parser = parse_instance_id)]
    pub instance_id: String,
}

/// Parameter values from the command line.
#[derive(Args)]
pub struct SetArgs {
    /// Set a parameter; repeatable. Values given here are visible in the process list: give
    /// secrets with --set-file, in the IDL, or when asked on a terminal.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub sets: Vec<(String, String)>,
    /// Set a parameter to the contents of FILE (`-` for standard input; one trailing newline
    /// is dropped); repeatable.
    #[arg(long = "set-file", value_name = "NAME=FILE", value_parser = parse_set)]
    pub set_files: Vec<(String, String)>,
}

impl SetArgs {
    /// The `--set` values followed by those read with `--set-file`.
    pub fn values(&self) -> Result<Vec<(String, String)>, HsmError> {
        Ok([self.sets.clone(), read_value_files(&self.set_files)?].concat())
    }
}

/// `create-instance`.
#[derive(Args)]
pub struct CreateArgs {
    /// Service id, e.g. stackato.hpe.mysql.
    pub service_id: String,
    /// Product version (newest when absent).
    pub product_version: Option<String>,
    /// SDL version (newest of the product version when absent).
    pub sdl_version: Option<String>,
    /// Instance definition (IDL) file, JSON or YAML.
    #[arg(short = 'i', long = "idl", value_name = "FILE")]
    pub idl: Option<PathBuf>,
    #[command(flatten)]
    pub sets: SetArgs,
    /// Instance id (namespace); generated from the service name when absent.
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,
    /// Print the objects that would be created, create nothing. Secrets are left out.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print the Secrets too, with their real values.
    #[arg(long, requires = "dry_run")]
    pub show_secrets: bool,
    /// Apply and return without waiting for readiness (pre-flight jobs are still awaited).
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait in all (e.g. 30s, 10m, 1h).
    #[arg(long, default_value = "10m", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Plan output format.
    #[arg(short = 'o', long, value_enum, default_value = "yaml")]
    pub output: PlanFormat,
    #[command(flatten)]
    pub mode: ModeArgs,
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Options of `controller`.
#[derive(Args)]
pub struct ControllerArgs {
    /// Instances reconciled at once.
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: u16,
    /// How long one reconcile may take (it never waits for readiness, only for pre-flight jobs).
    #[arg(long, default_value = "5m", value_parser = parse_timeout, value_name = "DURATION")]
    pub reconcile_timeout: Duration,
    /// How often a ready Instance is looked at when nothing changes (it writes nothing unless
    /// something did).
    #[arg(long, default_value = "10m", value_parser = parse_timeout, value_name = "DURATION")]
    pub resync: Duration,
    /// How long an apply that left an Instance ready is trusted before it is applied again
    /// anyway (repairs what a disconnected watch could have missed).
    #[arg(long, default_value = "1h", value_parser = parse_timeout, value_name = "DURATION")]
    pub reapply_every: Duration,
    /// Namespace of the Lease `hsm-controller` that elects the one replica that reconciles.
    #[arg(long, default_value = "kube-system", value_name = "NAMESPACE")]
    pub lease_namespace: String,
    /// Serve /healthz, /readyz and /metrics on this address (e.g. 0.0.0.0:8080); off unless given.
    #[arg(long, value_name = "HOST:PORT")]
    pub health_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Options shared by upgrade-instance and configure-instance.
#[derive(Args)]
pub struct ChangeArgs {
    #[command(flatten)]
    pub sets: SetArgs,
    /// Apply and return without waiting for readiness.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait in all (e.g. 30s, 10m, 1h).
    #[arg(long, default_value = "10m", value_parser = parse_timeout)]
    pub timeout: Duration,
    #[command(flatten)]
    pub mode: ModeArgs,
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Whether a change goes through the converger (`docs/instances.md`, "hsm and Instances").
#[derive(Args)]
pub struct ModeArgs {
    /// How to carry out the change: auto writes the Instance when a converger runs (else
    /// applies the plan itself), direct always applies it, converger always writes the Instance.
    #[arg(long, value_enum, default_value = "auto", env = "HSM_MODE")]
    pub mode: Choice,
    /// Namespace of the converger's Lease hsm-controller; hsm's Secrets of secret values for
    /// the converger go there too.
    #[arg(long, default_value = "kube-system", env = "HSM_LEASE_NAMESPACE", value_name = "NAMESPACE")]
    pub lease_namespace: String,
}

/// Facts about the target cluster.
#[derive(Args)]
pub struct ProfileArgs {
    /// Cluster profile file (JSON or YAML); the flags below override it.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Registry that replaces every image's registry.
    #[arg(long, value_name = "HOST")]
    pub registry: Option<String>,
    /// Storage class for per-instance volumes.
    #[arg(long, value_name = "CLASS")]
    pub storage_class: Option<String>,
    /// Storage class for shared (ReadWriteMany) volumes.
    #[arg(long, value_name = "CLASS")]
    pub shared_storage_class: Option<String>,
    /// Availability zones instances may run in, comma separated.
    #[arg(long, value_name = "ZONES", value_delimiter = ',')]
    pub zones: Vec<String>,
}

impl ProfileArgs {
    /// The profile file with the flags on top, every value checked; a problem is named by
    /// the flag that gave the value, else by the file's key.
    pub fn load(&self) -> Result<ClusterProfile, HsmError> {
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

/// A binding id, checked as [`crate::binding::id_problem`] does.
pub fn parse_binding_id(text: &str) -> Result<String, String> {
    match crate::binding::id_problem(text) {
        None => Ok(text.to_string()),
        Some(problem) => Err(format!("not a binding id: {problem}")),
    }
}

/// An instance id is a namespace name: a DNS label, not a reserved one. Checked before any
/// cluster is asked.
pub fn parse_instance_id(text: &str) -> Result<String, String> {
    match sdl::validate::instance_id_problem(text) {
        None => Ok(text.to_string()),
        Some(problem) => Err(format!("not an instance id: {problem}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_may_begin_with_a_hyphen() {
        // Generated passwords (base64url) begin with '-' once in 64.
        let cli = Cli::try_parse_from(["hsm", "login", "-u", "admin", "-p", "-8xY_secret"]).unwrap();
        match cli.command {
            Command::Login { user, password } => {
                assert_eq!(user.as_deref(), Some("admin"));
                assert_eq!(password.as_deref(), Some("-8xY_secret"));
            }
            _ => panic!("not login"),
        }
        let cli = Cli::try_parse_from(["hsm", "login", "--user", "admin", "--password", "--dashes--"]).unwrap();
        assert!(matches!(cli.command, Command::Login { password: Some(ref p), .. } if p == "--dashes--"));
    }
}
