//! `install`: everything, in named and timed phases recorded in the state record — validate,
//! preflight, render, provision, wait for the API, pod network, cloud integration, storage
//! classes, the platform (`hcp`), report. Re-running after a failure or a kill continues from
//! the phase that did not finish; a finished phase whose inputs are unchanged is skipped.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::Context;
use crate::kube::{self, Waits, PLATFORM_SERVICE};
use crate::phases::{fingerprint, fingerprint_of, Runner, Status};
use crate::Error;

/// Options of `install`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The properties file.
    pub input: PathBuf,
    /// The state directory (default `./stratus-<ClusterName>`).
    pub state_dir: Option<PathBuf>,
    /// Destroy resources the plan removes without asking.
    pub yes: bool,
    /// Run this phase and every later one again even if recorded as done (one of
    /// [`crate::phases::PHASES`]).
    pub from: Option<String>,
    /// How long to wait for the API, the nodes, each platform step and the platform service.
    pub timeout: Duration,
    /// The service catalog holding the platform service.
    pub catalog: PathBuf,
}

/// What `install` did: what the operator is told.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The cluster name.
    pub cluster: String,
    /// The Kubernetes API's URL.
    pub api_url: String,
    /// Endpoints by name (`hsm`, `identity`).
    pub endpoints: std::collections::BTreeMap<String, String>,
    /// `(record, points at)` DNS records to create.
    pub dns: Vec<(String, String)>,
    /// The admin kubeconfig (mode 0600).
    pub kubeconfig: PathBuf,
    /// The credentials file (mode 0600).
    pub credentials: PathBuf,
    /// How long the install took.
    pub elapsed: Duration,
}

/// Installs (or continues installing) the cluster of `options.input`.
pub fn run(options: &Options, context: &Context) -> Result<Outcome, Error> {
    let started = Instant::now();
    let report = context.report;
    let config = crate::load(&options.input, context.env)?;
    let state = crate::workspace::state_dir(options.state_dir.as_deref(), &config);
    // Bad input is found before anything is created: the catalog holding the platform too.
    let catalog = sdl::catalog::Catalog::load(&options.catalog).map_err(|e| Error::Catalog(e.to_string()))?;
    catalog.service(PLATFORM_SERVICE).map_err(|e| {
        Error::Catalog(format!("{}: {e} (the platform service must be in the catalog)", options.catalog.display()))
    })?;
    crate::workspace::check_state(&state)?;
    let mut phases = Runner::open(&state, report)?;
    if let Some(from) = &options.from {
        phases.forget_from(from)?;
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
    let properties = std::fs::read(&options.input)
        .map_err(|e| Error::InputFile { path: options.input.clone(), message: e.to_string() })?;
    phases.run("preflight", Some(&fingerprint(&[&properties])), || {
        super::preflight::check(&config, context)?;
        Ok(((), String::new()))
    })?;
    let prepared = phases
        .run("render", None, || {
            let prepared = crate::workspace::prepare(config.clone(), Some(&state), &context.program, true, report)?;
            Ok((prepared, String::new()))
        })?
        .expect("render always runs");
    phases.run("provision", Some(&prepared.rendered_fingerprint), || {
        let (add, change, remove) = super::provision::apply_machines(&prepared, context, options.yes)?;
        Ok(((), format!("{add} added, {change} changed, {remove} destroyed")))
    })?;
    let outputs = phases.record()?.outputs;

    let kubeconfig = state.join("kubeconfig");
    let runtime = super::runtime();
    let cluster =
        runtime.block_on(service_manager::cluster::Cluster::connect(Some(&kubeconfig), None, Default::default()))?;
    let waits = Waits { timeout: options.timeout, interval: Duration::from_millis(500) };
    phases.run("api", None, || {
        runtime.block_on(kube::wait_for_api(&cluster, waits, |why| {
            report.line(&format!("waiting for the Kubernetes API at {}: {why}", cluster.server()))
        }))?;
        Ok(((), format!("{} answers", cluster.server())))
    })?;

    let mut facts = crate::platform::Facts::from_outputs(&outputs);
    if let Some(ca) = config.provider.openstack().and_then(|o| o.ca_cert_file.as_ref()) {
        facts.openstack_ca_certificate = Some(crate::helper::read_ca(ca)?);
    }
    let expected_nodes = (config.master_count + config.node_count) as usize;
    let steps = crate::platform::plan(&config, &facts);
    for (index, step) in steps.iter().enumerate() {
        // Fingerprinted as JSON values (sorted keys), as earlier versions recorded them.
        let objects: Vec<serde_json::Value> =
            step.objects.iter().map(|o| serde_json::to_value(o).expect("objects serialise")).collect();
        phases.run(step.name, Some(&fingerprint_of(&objects)), || {
            let title = format!("{}: {}", step.name, step.title);
            let progress = report.kube();
            progress.step(index + 1, steps.len(), &title, step.objects.len());
            let applied =
                runtime.block_on(kube::apply_and_wait(&cluster.with_timeout(options.timeout), step, progress.as_ref()));
            progress.finish();
            applied?;
            runtime.block_on(async {
                if step.name == "network" {
                    let ready = kube::wait_for_nodes(&cluster, expected_nodes, waits, |waiting| {
                        report.line(&format!("network: waiting for {}", waiting.join("; ")))
                    })
                    .await?;
                    return Ok(((), format!("{} objects applied; {ready} node(s) Ready", step.objects.len())));
                }
                Ok(((), format!("{} objects applied and ready", step.objects.len())))
            })
        })?;
    }

    let request = kube::platform_request(&config);
    // The request and the version it will install (the catalog's newest).
    let newest = catalog
        .service(PLATFORM_SERVICE)
        .ok()
        .and_then(|s| s.versions.last())
        .map(|v| (v.product_version.clone(), v.sdl_version.clone()));
    let platform_fingerprint = fingerprint_of(&(&request.sets, &request.service_id, newest));
    phases.run("platform", Some(&platform_fingerprint), || {
        let progress = report.kube();
        let created =
            runtime.block_on(kube::install_platform(&cluster, &catalog, &config, options.timeout, progress.as_ref()));
        progress.finish();
        let created = created?;
        Ok(((), format!("{PLATFORM_SERVICE} {} ({} objects, {})", created.instance_id, created.objects, created.state)))
    })?;

    let api_address = outputs.get("api_address").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let credentials = state.join("credentials.yaml");
    let absolute_kubeconfig = std::path::absolute(&kubeconfig).unwrap_or(kubeconfig.clone());
    let platform = phases
        .run("report", None, || {
            let platform =
                runtime.block_on(kube::platform_report(&cluster, &config, &api_address, &absolute_kubeconfig))?;
            let _ = std::fs::remove_file(&credentials);
            crate::write_rendered(
                &state,
                &crate::render::Rendered {
                    secret_files: [("credentials.yaml".to_string(), platform.credentials.clone())].into(),
                    ..Default::default()
                },
            )
            .map_err(Error::io(&credentials))?;
            Ok((platform, format!("credentials in {}", credentials.display())))
        })?
        .expect("the report always runs");
    phases.set_status(Status::Installed)?;
    prepared.clear_terraform_secrets(report)?;
    Ok(Outcome {
        cluster: config.cluster_name.clone(),
        api_url: crate::nodes::api_url(&config),
        endpoints: platform.endpoints,
        dns: platform.dns,
        kubeconfig,
        credentials,
        elapsed: started.elapsed(),
    })
}
