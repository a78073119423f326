//! `uninstall`: lets Kubernetes release what it created in the cloud, sweeps what it did not,
//! destroys everything `provision` created and checks that nothing is left.

use std::path::PathBuf;
use std::time::Duration;

use super::provision::{answering_cluster, terraform_with_progress};
use super::Context;
use crate::phases::Status;
use crate::workspace::Prepared;
use crate::Error;

/// Options of `uninstall`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The properties file.
    pub input: PathBuf,
    /// The state directory (default `./stratus-<ClusterName>`).
    pub state_dir: Option<PathBuf>,
    /// Destroy without asking.
    pub yes: bool,
}

/// What `uninstall` did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The cluster name.
    pub cluster: String,
    /// Resources Terraform destroyed.
    pub destroyed: u64,
}

/// Destroys the cluster of `options.input`.
pub fn run(options: &Options, context: &Context) -> Result<Outcome, Error> {
    let config = super::validate::announce(&options.input, context)?;
    let prepared =
        crate::workspace::prepare(config, options.state_dir.as_deref(), &context.program, true, context.report)?;
    let question = format!(
        "Destroy every resource of cluster {} recorded in {}?",
        prepared.config.cluster_name,
        prepared.state.display()
    );
    if !context.confirmed(options.yes, &question) {
        return Err(Error::Cancelled("destroyed"));
    }
    release_cloud_resources(&prepared, context)?;
    // Whatever Kubernetes created in the cloud and did not release goes next: it would keep
    // the network alive.
    if let Some(cloud) = crate::helper::sweep(&context.program, &prepared.config, context.env)? {
        context.report.line(&format!("removed what Kubernetes created in {cloud} for the cluster"));
    }
    let resources = prepared.terraform.run(&["state", "list"]).unwrap_or_default().lines().count() as u64;
    terraform_with_progress(
        &prepared,
        &["destroy", "-input=false", "-json", "-auto-approve"],
        "destroyed",
        resources,
        context,
    )?;
    let left: Vec<String> = prepared.terraform.run(&["state", "list"])?.lines().map(str::to_string).collect();
    if !left.is_empty() {
        return Err(Error::StillRecorded(left));
    }
    let leaked = crate::helper::leftovers(&context.program, &prepared.config, context.env)?;
    if !leaked.is_empty() {
        return Err(Error::LeftInCloud(leaked));
    }
    // A later install starts from the beginning; the credentials are of a cluster now gone.
    let record = crate::phases::Record { status: Some(Status::Uninstalled), ..Default::default() };
    record.save_in(&prepared.state)?;
    let _ = std::fs::remove_file(prepared.state.join("credentials.yaml"));
    context.report.line("uninstalled: nothing is left in the Terraform state");
    if !prepared.config.keep_terraform {
        // Nothing in it is of use any more; a later install renders and initialises afresh.
        std::fs::remove_dir_all(&prepared.dir).map_err(Error::io(&prepared.dir))?;
        context.report.line(&format!("removed {} (KeepTerraform = true keeps it)", prepared.dir.display()));
    }
    Ok(Outcome { cluster: prepared.config.cluster_name.clone(), destroyed: resources })
}

/// Lets Kubernetes remove what it created in the cloud (load balancers of Services, volumes
/// of claims) while its controllers still run; skipped when the API does not answer.
fn release_cloud_resources(prepared: &Prepared, context: &Context) -> Result<(), Error> {
    let record = prepared.record()?;
    let keep = crate::kube::platform_namespaces(&crate::platform::plan(
        &prepared.config,
        &crate::platform::Facts::from_outputs(&record.outputs),
    ));
    super::runtime().block_on(async {
        let Some(cluster) = answering_cluster(&prepared.state).await else {
            context.report.line("the Kubernetes API does not answer: what it created in the cloud is left to the sweep");
            return Ok(());
        };
        let waits = crate::kube::Waits { timeout: Duration::from_secs(900), interval: Duration::from_secs(1) };
        let released = crate::kube::release_cloud_resources(&cluster, &keep, waits, |left| {
            context.report.line(&format!("waiting for Kubernetes to release {}", left.join(", ")))
        })
        .await?;
        context.report.line(&format!(
            "Kubernetes released its cloud resources: {} namespace(s) ({}), {} other load balancer(s), {} other claim(s)",
            released.namespaces.len(),
            released.namespaces.join(", "),
            released.load_balancers.len(),
            released.claims.len()
        ));
        Ok(())
    })
}
