//! `hsm-server`: flags → the catalog, the cluster, the token checks, the address and the
//! transport (HTTPS, or plain HTTP on loopback when asked) → serve until SIGTERM. Exit codes:
//! 0 after a graceful stop, 2 for bad input (flags, the catalog, the TLS files), 1 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use hsm_server::auth::{AuthConfig, Authenticator, RoleGroups};
use hsm_server::broker::gate::Credentials;
use hsm_server::serve::{self, AppState};
use sdl::catalog::Catalog;
use service_manager::cli::{ProfileArgs, SHIPPED_CATALOG};
use service_manager::cluster::{ClientOptions, Cluster};

/// The HSM server: HTTP API v1 over HTTPS (plain HTTP on loopback with --insecure-http), an
/// OpenID resource server (bearer tokens of --oidc-issuer).
#[derive(Parser)]
#[command(name = "hsm-server", version)]
struct Args {
    /// Address to listen on: an IP address and port (port 0: any free port); a loopback one
    /// with --insecure-http or --no-auth.
    #[arg(long, env = "HSM_SERVER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// PEM file of the server's certificate chain (its certificate first): serve HTTPS.
    #[arg(long, env = "HSM_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM file of the certificate's private key.
    #[arg(long, env = "HSM_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP, on a loopback address only (tests; an ingress on the same host).
    #[arg(long)]
    insecure_http: bool,
    /// Namespace of the converger's Lease hsm-controller; the Secrets of secret parameter
    /// values written for the converger go there too.
    #[arg(long, default_value = "kube-system", env = "HSM_LEASE_NAMESPACE", value_name = "NAMESPACE")]
    lease_namespace: String,
    /// The cluster profile instances are planned for (as hsm's flags).
    #[command(flatten)]
    profile: ProfileArgs,
    /// Service catalog folder (default: the catalog shipped with Stratus).
    #[arg(long, env = "HSM_CATALOG")]
    catalog: Option<PathBuf>,
    /// Kubeconfig (default: KUBECONFIG, ~/.kube/config, or the in-cluster service account).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long)]
    context: Option<String>,
    /// How long one request may take, e.g. 30s.
    #[arg(long, default_value = "30s", value_parser = service_manager::terminal::parse_timeout)]
    request_timeout: Duration,
    /// Attempts of a Kubernetes call that fails with a transport error, 429, 5xx or a
    /// conflict (delays from 50 ms, doubling): 8 ride out an API server restart of a few
    /// seconds; 1 answers 503 at once when the cluster cannot be reached.
    #[arg(long, default_value_t = ClientOptions::default().attempts, value_parser = clap::value_parser!(u32).range(1..=20))]
    cluster_attempts: u32,
    /// The OpenID issuer whose access tokens are accepted (discovered at
    /// ISSUER/.well-known/openid-configuration); required unless --no-auth.
    #[arg(long, env = "HSM_OIDC_ISSUER", requires = "oidc_audience")]
    oidc_issuer: Option<String>,
    /// The audience (`aud`) access tokens must be for.
    #[arg(long, env = "HSM_OIDC_AUDIENCE", requires = "oidc_issuer")]
    oidc_audience: Option<String>,
    /// PEM CA certificates to trust for the issuer, besides the usual roots.
    #[arg(long, env = "HSM_OIDC_CA_FILE", requires = "oidc_issuer")]
    oidc_ca_file: Option<PathBuf>,
    /// The public client `hsm login` uses (told to clients by GET /v1/info).
    #[arg(long, default_value = "hsm")]
    oidc_client_id: String,
    /// Clock skew tolerated for the tokens' exp and nbf, e.g. 5s.
    #[arg(long, default_value = "5s", value_parser = parse_leeway)]
    oidc_leeway: Duration,
    /// The token claim holding the groups (a list, or a space-separated string such as
    /// `scope`; a dotted path reaches into objects).
    #[arg(long, default_value = "groups")]
    roles_claim: String,
    /// The group whose members are admins (everything).
    #[arg(long, default_value = "hsm-admins")]
    admin_group: String,
    /// The group whose members are developers (read; create, change and delete instances).
    #[arg(long, default_value = "hsm-developers")]
    developer_group: String,
    /// The group whose members are viewers (read).
    #[arg(long, default_value = "hsm-viewers")]
    viewer_group: String,
    /// The user of the service broker API (`/v2`, HTTP basic authentication).
    #[arg(long, env = "HSM_BROKER_USER", default_value = "broker", value_name = "USER")]
    broker_user: String,
    /// The broker API's password; prefer --broker-password-file (a value in the environment
    /// of a container is fine, a flag is in the process list). Without a password /v2 answers
    /// 401 (unless a bearer token with the admin role is given).
    #[arg(long = "broker-password", env = "HSM_BROKER_PASSWORD", hide_env_values = true, hide = true)]
    broker_password: Option<String>,
    /// File holding the broker API's password (one trailing newline dropped); read at start.
    #[arg(long, value_name = "FILE", conflicts_with = "broker_password")]
    broker_password_file: Option<PathBuf>,
    /// Serve without authentication (tests, development): only on a loopback address.
    #[arg(long, conflicts_with_all = ["oidc_issuer", "oidc_audience", "oidc_ca_file"])]
    no_auth: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // kube's rustls uses ring; install it as the process-wide provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = tracing_subscriber::EnvFilter::try_from_env("HSM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("hsm_server=info,tower_http=info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start: {error}"), 1),
    };
    runtime.block_on(run(args))
}

/// The broker's credentials from the flags, if a password is given.
fn broker_credentials(args: &Args) -> Result<Option<Credentials>, String> {
    let password = match (&args.broker_password, &args.broker_password_file) {
        (_, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("--broker-password-file: cannot read {}: {e}", file.display()))?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            Some(text.strip_suffix('\r').unwrap_or(text).to_string())
        }
        (Some(password), None) => Some(password.clone()),
        (None, None) => None,
    };
    password.map(|p| Credentials::new(&args.broker_user, &p)).transpose()
}

/// A duration as `--request-timeout` takes it, or zero (`0`, `0s`).
fn parse_leeway(text: &str) -> Result<Duration, String> {
    match text.trim() {
        "0" | "0s" => Ok(Duration::ZERO),
        other => service_manager::terminal::parse_timeout(other),
    }
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

async fn run(args: Args) -> ExitCode {
    let tls = match serve::transport(args.tls_cert.as_deref(), args.tls_key.as_deref(), args.insecure_http) {
        Ok(tls) => tls,
        Err(error) => return fail(&error.to_string(), 2),
    };
    let auth = match (&args.oidc_issuer, &args.oidc_audience) {
        (Some(issuer), Some(audience)) => {
            let config = AuthConfig {
                client_id: args.oidc_client_id.clone(),
                roles_claim: args.roles_claim.clone(),
                groups: RoleGroups {
                    admin: args.admin_group.clone(),
                    developer: args.developer_group.clone(),
                    viewer: args.viewer_group.clone(),
                },
                ca_file: args.oidc_ca_file.clone(),
                leeway: args.oidc_leeway,
                ..AuthConfig::new(issuer, audience)
            };
            match Authenticator::new(config) {
                Ok(auth) => Some(auth),
                Err(error) => return fail(&error.to_string(), 2),
            }
        }
        _ if args.no_auth => None,
        _ => {
            return fail(
                "--oidc-issuer and --oidc-audience are required (or --no-auth to serve without authentication, on a loopback address only)",
                2,
            )
        }
    };
    let broker = match broker_credentials(&args) {
        Ok(broker) => broker,
        Err(error) => return fail(&error, 2),
    };
    let address = match serve::listen_address(&args.listen, tls.is_none(), auth.is_some()) {
        Ok(address) => address,
        Err(error) => return fail(&error.to_string(), 2),
    };
    let profile = match args.profile.load() {
        Ok(profile) => profile,
        Err(error) => return fail(&error.to_string(), 2),
    };
    let dir = args.catalog.unwrap_or_else(|| {
        let shipped = PathBuf::from(SHIPPED_CATALOG);
        std::fs::canonicalize(&shipped).unwrap_or(shipped)
    });
    let catalog = match Catalog::load(&dir) {
        Ok(catalog) => catalog,
        Err(error) => return fail(&format!("catalog {}: {error}", dir.display()), 2),
    };
    for broken in &catalog.broken {
        tracing::warn!("service {} left out: {}", broken.id, broken.error);
    }
    let options = ClientOptions {
        request_timeout: args.request_timeout,
        attempts: args.cluster_attempts,
        ..ClientOptions::default()
    };
    let cluster = match Cluster::connect(args.kubeconfig.as_deref(), args.context.as_deref(), options).await {
        Ok(cluster) => cluster,
        Err(error) => return fail(&error.to_string(), 1),
    };
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => return fail(&format!("cannot listen on {address}: {error}"), 1),
    };
    let bound = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| address.to_string());
    // The one line on stdout: where to reach the server (port 0 picks a free one).
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{bound}");
    let mut state = AppState::with(catalog, Some(cluster), args.request_timeout, args.lease_namespace, profile)
        .with_instance_cache();
    match auth {
        Some(auth) => {
            // Early word when the issuer cannot be reached; requests try again.
            match auth.refresh().await {
                Ok(()) => tracing::info!("OpenID issuer {}: keys fetched", auth.config().issuer),
                Err(error) => {
                    tracing::warn!("OpenID issuer {}: {error}; tried again on requests", auth.config().issuer)
                }
            }
            state = state.with_auth(auth);
        }
        None => tracing::warn!("serving without authentication (--no-auth)"),
    }
    match broker {
        Some(credentials) => {
            tracing::info!("service broker API /v2: basic authentication as user {}", credentials.user());
            state = state.with_broker(credentials);
        }
        None => tracing::warn!(
            "service broker API /v2: no password (HSM_BROKER_PASSWORD or --broker-password-file); it answers 401"
        ),
    }
    match serve::run(listener, tls, state, serve::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error.to_string(), 1),
    }
}
