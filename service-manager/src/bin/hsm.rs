//! `hsm`: the Stratus service manager command line — flags, prompts, printing and exit codes
//! only; every verb is a library action (`service_manager::actions`).
//!
//! Which backend a verb uses is explicit: `--kubeconfig`/`--context` (catalog verbs:
//! `--catalog`) → the cluster or catalog directly; otherwise an HSM server set with `hsm api`
//! (`service_manager::remote`); otherwise the kubeconfig and the shipped catalog.
//!
//! Exit codes: 0 success, 2 bad input (nothing touched), 1 everything else.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sdl::catalog::Catalog;
use sdl::parse::read_document;
use sdl::resolve::{ResolveError, Stored};
use sdl::Idl;
use service_manager::actions::{self, change, lint};
use service_manager::cli::{ChangeArgs, Cli, ClusterArgs, Command, CreateArgs, ModeArgs, SHIPPED_CATALOG};
use service_manager::cluster::{ClientOptions, Cluster};
use service_manager::declared::{self, Mode};
use service_manager::instance::InstanceError;
use service_manager::output::{self, ServiceDetail};
use service_manager::remote::client::Remote;
use service_manager::remote::verbs::{self, SignIn};
use service_manager::remote::{config, RemoteError};
use service_manager::request::{prepare, InstanceRequest};
use service_manager::{controller, terminal};
use service_manager::{progress, HsmError};

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

impl From<RemoteError> for Failure {
    fn from(error: RemoteError) -> Self {
        let code = error.exit_code();
        Failure(error.to_string(), code)
    }
}

/// How long one request to an HSM server may take when the verb has no --request-timeout.
const SERVER_TIMEOUT: Duration = Duration::from_secs(30);

/// The HSM server set with `hsm api`, unless `direct` (a kubeconfig, context or catalog was
/// given): the verb goes there.
fn server(direct: bool, timeout: Duration) -> Result<Option<Remote>, Failure> {
    // Without a home folder (HOME unset, as in some pods) no target can be set either.
    let Ok(home) = config::home() else { return Ok(None) };
    if direct {
        return Ok(None);
    }
    Ok(Remote::open(&home, timeout)?)
}

/// The HSM server of a verb that talks to a cluster, unless `--kubeconfig` or `--context` says
/// to go to the cluster directly.
fn server_of(cluster: &ClusterArgs) -> Result<Option<Remote>, Failure> {
    server(cluster.kubeconfig.is_some() || cluster.context.is_some(), cluster.request_timeout)
}

/// The HSM server that `hsm login` and `hsm info` talk to.
fn target() -> Result<Remote, Failure> {
    Ok(server(false, SERVER_TIMEOUT)?.ok_or(RemoteError::NoTarget)?)
}

/// Cluster facts are the server's own: profile flags cannot be sent to it.
fn no_profile_flags(profile: &service_manager::cli::ProfileArgs, remote: &Remote) -> Result<(), Failure> {
    let given = [
        ("--profile", profile.profile.is_some()),
        ("--registry", profile.registry.is_some()),
        ("--storage-class", profile.storage_class.is_some()),
        ("--shared-storage-class", profile.shared_storage_class.is_some()),
        ("--zones", !profile.zones.is_empty()),
    ];
    match given.iter().find(|(_, given)| *given) {
        None => Ok(()),
        Some((flag, _)) => Err(RemoteError::Usage(format!(
            "{flag} describes a cluster, and this command goes to the HSM server {} (which has its own); give --kubeconfig to work on a cluster directly",
            remote.target().url
        ))
        .into()),
    }
}

/// Parameter values as a map (the last value of a name wins).
fn parameter_map(values: Vec<(String, String)>) -> BTreeMap<String, String> {
    values.into_iter().collect()
}

/// The password for `hsm login -u USER`: asked on the terminal without echo, else one line
/// of standard input.
fn ask_password(user: &str) -> Result<String, Failure> {
    let read = if terminal::interactive() {
        terminal::read_hidden(&format!("Password for {user}: "))
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line.trim_end_matches(['\r', '\n']).to_string())
    };
    let password = read.map_err(|e| Failure(format!("cannot read the password: {e}"), 2))?;
    if password.is_empty() {
        return Err(Failure("no password given (-p PASSWORD, or type it when asked)".into(), 2));
    }
    Ok(password)
}

fn main() -> ExitCode {
    // With more than one rustls crypto provider compiled in (a workspace build that includes
    // the AWS SDK), kube's client cannot choose one by itself.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    // The controller is a long-running service: it logs what it does unless told otherwise.
    let default_filter = match cli.command {
        Command::Controller(_) => "service_manager=info",
        _ => "off",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HSM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let colour = std::io::stderr().is_terminal();
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour).init();
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
    // Catalog verbs go to the server unless a catalog is named.
    let catalog_server = || server(cli.catalog.is_some(), SERVER_TIMEOUT);
    match cli.command {
        Command::Api { url: None, .. } => Ok(verbs::show_target(&config::home()?)?),
        Command::Api { url: Some(url), ca_file, skip_ssl_validation } => {
            let home = config::home()?;
            Ok(verbs::set_target(&home, &url, ca_file.as_deref(), skip_ssl_validation, SERVER_TIMEOUT).await?)
        }
        Command::Login { user, password } => {
            let mut remote = target()?;
            let how = match user {
                None => SignIn::Device,
                Some(user) => {
                    let password = match password {
                        Some(password) => password,
                        None => ask_password(&user)?,
                    };
                    SignIn::Password { user, password }
                }
            };
            let show = |prompt: &service_manager::remote::login::DevicePrompt| {
                eprintln!("To sign in, open {} and enter the code {}", prompt.verification_uri, prompt.user_code);
                if let Some(complete) = &prompt.verification_uri_complete {
                    eprintln!("(or open {complete})");
                }
                eprintln!("Waiting for the sign-in (the code is valid for {}s)...", prompt.expires_in.as_secs());
            };
            Ok(verbs::login(&mut remote, how, show).await?)
        }
        Command::Logout => Ok(verbs::logout(&config::home()?)?),
        Command::Info => Ok(verbs::info(&mut target()?).await?),
        Command::ListServices(o) => match catalog_server()? {
            Some(mut remote) => Ok(verbs::list_services(&mut remote, o.output).await?),
            None => Ok(output::list_services(&catalog()?, o.output)),
        },
        Command::ListCategories(o) => match catalog_server()? {
            Some(mut remote) => Ok(verbs::list_categories(&mut remote, o.output).await?),
            None => Ok(output::list_categories(&catalog()?, o.output)),
        },
        Command::GetService { service_id, product_version, sdl_version, output } => {
            if let Some(mut remote) = catalog_server()? {
                let (pv, sv) = (product_version.as_deref(), sdl_version.as_deref());
                return Ok(verbs::get_service(&mut remote, &service_id, pv, sv, output.output).await?);
            }
            let catalog = catalog()?;
            let service = catalog.service(&service_id).map_err(HsmError::from)?;
            let version =
                service.version(product_version.as_deref(), sdl_version.as_deref()).map_err(HsmError::from)?;
            let sdl = catalog.load_sdl(service, version).map_err(HsmError::from)?;
            Ok(ServiceDetail::of(service, &sdl).render(output.output))
        }
        Command::CreateInstance(args) => {
            // A dry run plans locally: it touches no cluster and no server.
            match server_of(&args.cluster)? {
                Some(remote) if !args.dry_run => create_remote(remote, *args).await,
                _ => create_instance(catalog()?, *args).await,
            }
        }
        Command::ListInstances { cluster, output } => {
            if let Some(mut remote) = server_of(&cluster)? {
                return Ok(verbs::list_instances(&mut remote, output.output).await?);
            }
            Ok(output::list_instances(&declared::list(&connect(&cluster).await?).await?, output.output))
        }
        Command::GetInstance { instance, cluster, output } => {
            if let Some(mut remote) = server_of(&cluster)? {
                return Ok(verbs::get_instance(&mut remote, &instance.instance_id, output.output).await?);
            }
            let detail = declared::get(&connect(&cluster).await?, &instance.instance_id).await?;
            Ok(output::instance_detail(&detail, output.output))
        }
        Command::GetCredentials { instance, binding: Some(binding), cluster, output } => {
            let id = &instance.instance_id;
            if let Some(mut remote) = server_of(&cluster)? {
                let text = verbs::binding_credentials(&mut remote, id, &binding, output.output).await?;
                eprintln!("Credentials of binding {binding} of instance {id} follow: keep them out of logs and shared terminals.");
                return Ok(text);
            }
            let values = actions::binding::credentials(&connect(&cluster).await?, id, &binding).await?;
            eprintln!(
                "Credentials of binding {binding} of instance {id} follow: keep them out of logs and shared terminals."
            );
            let credentials = output::BindingCredentials { instance_id: id.clone(), binding_id: binding, values };
            Ok(output::binding_credentials(&credentials, output.output))
        }
        Command::CreateBinding { instance, binding_id, timeout, cluster, output } => {
            let id = &instance.instance_id;
            let binding = binding_id.unwrap_or_else(service_manager::binding::new_id);
            if let Some(mut remote) = server_of(&cluster)? {
                return Ok(verbs::create_binding(&mut remote, id, &binding, timeout, output.output).await?);
            }
            let request =
                actions::binding::BindRequest { instance_id: id.clone(), binding_id: binding, ..Default::default() };
            let progress = progress::stderr();
            let summary =
                actions::binding::create(&connect(&cluster).await?, &request, timeout, progress.as_ref()).await?;
            Ok(output::binding(&summary, output.output))
        }
        Command::ListBindings { instance, cluster, output } => {
            if let Some(mut remote) = server_of(&cluster)? {
                return Ok(verbs::list_bindings(&mut remote, &instance.instance_id, output.output).await?);
            }
            let summaries = actions::binding::list(&connect(&cluster).await?, &instance.instance_id).await?;
            Ok(output::bindings(&summaries, output.output))
        }
        Command::DeleteBinding { instance, binding_id, timeout, cluster, output } => {
            let id = &instance.instance_id;
            if let Some(mut remote) = server_of(&cluster)? {
                return Ok(verbs::delete_binding(&mut remote, id, &binding_id, timeout, output.output).await?);
            }
            let progress = progress::stderr();
            let summary =
                actions::binding::delete(&connect(&cluster).await?, id, &binding_id, timeout, progress.as_ref())
                    .await?;
            Ok(output::binding(&summary, output.output))
        }
        Command::GetCredentials { instance, binding: None, cluster, output } => {
            if let Some(remote) = server_of(&cluster)? {
                return Err(RemoteError::Usage(format!(
                    "the HSM server {} never returns secret values: give --kubeconfig to read them from the cluster",
                    remote.target().url
                ))
                .into());
            }
            let credentials = actions::credentials::run(&connect(&cluster).await?, &instance.instance_id).await?;
            eprintln!(
                "Secret values of instance {} follow: keep them out of logs and shared terminals.",
                instance.instance_id
            );
            Ok(output::credentials(&credentials, output.output))
        }
        Command::UpgradeInstance { instance, product_version, sdl_version, change } => {
            let target = Some((product_version, sdl_version));
            if let Some(remote) = server_of(&change.cluster)? {
                return change_remote(remote, &instance.instance_id, target, change).await;
            }
            change_instance(catalog()?, &instance.instance_id, target, change).await
        }
        Command::ConfigureInstance { instance, change } => {
            if change.sets.sets.is_empty() && change.sets.set_files.is_empty() {
                return Err(HsmError::Usage("configure-instance needs at least one --set NAME=VALUE".into()).into());
            }
            if let Some(remote) = server_of(&change.cluster)? {
                return change_remote(remote, &instance.instance_id, None, change).await;
            }
            change_instance(catalog()?, &instance.instance_id, None, change).await
        }
        Command::DeleteInstance { instance, yes, keep_volumes, timeout, mode, cluster } => {
            let id = &instance.instance_id;
            let confirm = |question: &str| {
                yes || terminal::confirm(question, "refusing without a terminal to confirm on; pass -y to confirm")
            };
            if let Some(mut remote) = server_of(&cluster)? {
                return Ok(verbs::delete_instance(&mut remote, id, keep_volumes, timeout, confirm).await?);
            }
            let options = actions::delete::Options { keep_volumes, timeout };
            let cluster = connect(&cluster).await?;
            if let Some(current) = declared_instance(&cluster, &mode, id, timeout).await? {
                let place = declared::Place { namespace: mode.lease_namespace.clone() };
                let outcome = declared::delete(&cluster, &current, options, &place, confirm).await?;
                return Ok(output::deleted(id, &outcome));
            }
            let outcome = actions::delete::run(&cluster, id, options, confirm).await?;
            Ok(output::deleted(id, &outcome))
        }
        Command::Controller(args) => {
            let profile = args.profile.load()?;
            let options = controller::Options {
                workers: args.workers,
                timeout: args.reconcile_timeout,
                resync: args.resync,
                reapply_every: args.reapply_every,
                ..controller::Options::default()
            };
            let replica =
                controller::Replica { lease_namespace: args.lease_namespace.clone(), health_addr: args.health_addr };
            let cluster = connect(&args.cluster).await?;
            controller::run(cluster, catalog()?, profile, options, replica)
                .await
                .map_err(|e| Failure(e.to_string(), 1))?;
            Ok(String::new())
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

/// `upgrade-instance` / `configure-instance` through the HSM server.
async fn change_remote(
    mut remote: Remote,
    id: &str,
    target: Option<(String, Option<String>)>,
    args: ChangeArgs,
) -> Result<String, Failure> {
    no_profile_flags(&args.profile, &remote)?;
    let wait = verbs::Wait { wait: !args.no_wait, timeout: args.timeout };
    let parameters = parameter_map(args.sets.values()?);
    let progress = progress::stderr();
    let changed = verbs::change_instance(&mut remote, id, target, parameters, wait, progress.as_ref()).await;
    progress.finish();
    Ok(changed?)
}

async fn change_instance(
    catalog: Catalog,
    id: &str,
    target: Option<(String, Option<String>)>,
    args: ChangeArgs,
) -> Result<String, Failure> {
    let profile = args.profile.load()?;
    let change = change::Change {
        target,
        sets: args.sets.values()?,
        idl: None,
        wait: !args.no_wait,
        readiness: false,
        timeout: args.timeout,
    };
    let cluster = connect(&args.cluster).await?;
    let progress = progress::stderr();
    if let Some(current) = declared_instance(&cluster, &args.mode, id, args.timeout).await? {
        let place = declared::Place { namespace: args.mode.lease_namespace.clone() };
        let outcome =
            declared::change(&cluster, &catalog, &current, &change, &profile, &place, progress.as_ref()).await?;
        progress.note(&format!("done in {:.1}s", outcome.elapsed.as_secs_f64()));
        return Ok(output::changed(&outcome));
    }
    let outcome = change::run(&cluster, &catalog, id, &change, &profile, progress.as_ref()).await?;
    progress.note(&format!("done in {:.1}s", outcome.elapsed.as_secs_f64()));
    Ok(output::changed(&outcome))
}

/// `create-instance` through the HSM server: the IDL's parameters and instance id with the
/// command line's values on top.
async fn create_remote(mut remote: Remote, args: CreateArgs) -> Result<String, Failure> {
    no_profile_flags(&args.profile, &remote)?;
    let idl = match &args.idl {
        Some(path) => read_document::<Idl>(path).map_err(HsmError::from)?,
        None => Idl::default(),
    };
    if !idl.scaling.is_empty() || !idl.labels.is_empty() {
        let file = args.idl.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
        return Err(RemoteError::Usage(format!(
            "{file}: scaling and labels cannot be sent to the HSM server (it takes parameters only); give --kubeconfig to create the instance directly"
        ))
        .into());
    }
    let mut parameters: BTreeMap<String, String> = idl.parameters.into_iter().map(|p| (p.name, p.value)).collect();
    parameters.extend(parameter_map(args.sets.values()?));
    let request = verbs::Create {
        service_id: args.service_id.clone(),
        product_version: args.product_version.clone().or(idl.product_version),
        sdl_version: args.sdl_version.clone().or(idl.sdl_version),
        instance_id: args.instance_id.clone().or(idl.instance_id),
        parameters,
    };
    let wait = verbs::Wait { wait: !args.no_wait, timeout: args.timeout };
    let progress = progress::stderr();
    let created = verbs::create_instance(&mut remote, &request, wait, progress.as_ref()).await;
    progress.finish();
    Ok(created?)
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
    let progress = progress::stderr();
    if let Mode::Declared(_) = choose(&cluster, &args.mode, args.timeout).await? {
        let place = declared::Place { namespace: args.mode.lease_namespace.clone() };
        let wait = declared::Wait { wait: !args.no_wait, timeout: args.timeout };
        let create = |request: InstanceRequest| {
            let (cluster, catalog, profile, place, progress) =
                (&cluster, &catalog, &profile, &place, progress.as_ref());
            async move { declared::create(cluster, catalog, &request, profile, place, wait, progress).await }
        };
        let mut result = create(request.clone()).await;
        if let Err(InstanceError::Hsm(HsmError::Resolve(ResolveError::Missing(names)))) = &result {
            if ask_missing(&catalog, &mut request, &names.clone())? {
                result = create(request.clone()).await;
            }
        }
        match result? {
            Ok(outcome) => {
                progress.note(&format!("done in {:.1}s", outcome.elapsed.as_secs_f64()));
                return Ok(output::created(&outcome));
            }
            Err(why) => eprintln!("note: {why}; hsm applies it itself"),
        }
    }
    let options =
        actions::create::Options { wait: !args.no_wait, timeout: args.timeout, readiness: false, grants: true };
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

/// Which way a change goes on `cluster`; a line on stderr when an installed converger does not
/// run (so hsm applies the change itself).
async fn choose(cluster: &Cluster, args: &ModeArgs, timeout: std::time::Duration) -> Result<Mode, Failure> {
    let found = match args.mode {
        declared::Choice::Direct => Err(String::new()),
        _ => declared::detect(&cluster.with_timeout(timeout), &args.lease_namespace)
            .await
            .map_err(InstanceError::from)?,
    };
    let mode = declared::mode(args.mode, found);
    if let Some(note) = declared::note(args.mode, &mode) {
        eprintln!("note: {note}");
    }
    Ok(mode)
}

/// The Instance of instance `id` when a change to it goes through the converger; `None` when
/// hsm changes it itself (no converger, or an instance that has no Instance).
async fn declared_instance(
    cluster: &Cluster,
    args: &ModeArgs,
    id: &str,
    timeout: std::time::Duration,
) -> Result<Option<service_manager::resource::Instance>, Failure> {
    match choose(cluster, args, timeout).await? {
        Mode::Direct(_) => Ok(None),
        Mode::Declared(_) => Ok(declared::instance(cluster, id).await?),
    }
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
