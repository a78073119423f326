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
}

struct Failure(String, u8);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let result = match cli.command {
        Command::Validate { input } => validate(&input, &env),
        Command::Plan { input, state_dir, render_only } => plan(&input, state_dir.as_deref(), render_only, &env),
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

fn plan(
    input: &Path,
    state_dir: Option<&Path>,
    render_only: bool,
    env: &BTreeMap<String, String>,
) -> Result<(), Failure> {
    let started = Instant::now();
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
    if render_only {
        println!("{}", dir.display());
        return Ok(());
    }
    let log = state.join("terraform.log");
    let terraform = Terraform::new(&dir, &log, rendered.environment.clone());
    let fail = |e: bootstrap::terraform::TerraformError| Failure(e.to_string(), 1);
    // Init once per provider set: re-running it costs a second for nothing. Plan validates.
    let providers = required_providers(&rendered);
    let marker = dir.join(".stratus-init");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(providers.as_str()) {
        terraform.run(&["init", "-input=false", "-no-color"]).map_err(fail)?;
        std::fs::write(&marker, &providers).map_err(|e| Failure(format!("{}: {e}", marker.display()), 1))?;
        phase(started, "terraform init");
    }
    let out = terraform.run(&["plan", "-input=false", "-no-color", "-out=plan.tfplan"]).map_err(fail)?;
    let summary = out
        .lines()
        .find(|l| l.starts_with("Plan:") || l.starts_with("No changes."))
        .unwrap_or("plan written")
        .to_string();
    phase(started, &format!("terraform plan: {summary}"));
    println!("{summary} (plan in {})", dir.join("plan.tfplan").display());
    Ok(())
}
