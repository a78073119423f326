//! `provision`: creates (or converges) the cluster's machines, networks, volumes and load
//! balancers with Terraform, each machine receiving its cloud-config. Safe to re-run after a
//! failure or a kill: it continues and never duplicates a resource.

use std::path::PathBuf;
use std::time::Duration;

use super::Context;
use crate::phases::Status;
use crate::workspace::Prepared;
use crate::Error;

/// Options of `provision`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The properties file.
    pub input: PathBuf,
    /// The state directory (default `./stratus-<ClusterName>`).
    pub state_dir: Option<PathBuf>,
}

/// What `provision` did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The cluster name.
    pub cluster: String,
    /// The machines, by key (`master-0`, `node-1`, ...).
    pub machines: Vec<String>,
    /// The Kubernetes API's URL.
    pub api_url: String,
    /// The admin kubeconfig (mode 0600).
    pub kubeconfig: PathBuf,
    /// The platform domain the DNS records go under.
    pub domain: String,
    /// Resources added, changed and destroyed.
    pub changes: (u64, u64, u64),
}

/// Checks the cloud, renders, plans and applies. `provision` is the explicit command: what
/// it plans is what was asked for, destruction included, without a question.
pub fn run(options: &Options, context: &Context) -> Result<Outcome, Error> {
    let config = crate::load(&options.input, context.env)?;
    // Nothing is created, not even the state directory, before the cloud has been checked.
    super::preflight::check(&config, context)?;
    super::validate::announced(&options.input, &config, context);
    let prepared =
        crate::workspace::prepare(config, options.state_dir.as_deref(), &context.program, true, context.report)?;
    let changes = apply_machines(&prepared, context, true)?;
    context.report.line("provisioned");
    prepared.clear_terraform_secrets(context.report)?;
    let config = &prepared.config;
    Ok(Outcome {
        cluster: config.cluster_name.clone(),
        machines: crate::nodes::machines(config).iter().map(|m| m.key()).collect(),
        api_url: crate::nodes::api_url(config),
        kubeconfig: prepared.state.join("kubeconfig"),
        domain: config.domain.clone(),
        changes,
    })
}

/// Plans and applies the machines, draining the Kubernetes nodes of machines the plan
/// removes first (when the cluster answers), and records Terraform's outputs in the state
/// record. Destruction is confirmed through the context unless `yes`. Returns the resources
/// added, changed and destroyed.
pub(crate) fn apply_machines(prepared: &Prepared, context: &Context, yes: bool) -> Result<(u64, u64, u64), Error> {
    let mut record = prepared.record()?;
    record.set_status(&prepared.state, Status::Provisioning)?;
    let events = prepared.terraform.run_json(&["plan", "-input=false", "-json", "-out=plan.tfplan"], |_| {})?;
    let (add, change, remove) = events.iter().find_map(|e| e.changes).unwrap_or((0, 0, 0));
    context.report.line(&format!("terraform plan: {add} to add, {change} to change, {remove} to destroy"));
    if remove > 0
        && !context
            .confirmed(yes, &format!("Destroy {remove} resource(s) of cluster {}?", prepared.config.cluster_name))
    {
        return Err(Error::Cancelled("changed"));
    }
    let going = crate::terraform::machines_going_away(&events);
    if !going.is_empty() {
        drain(prepared, &going, context)?;
    }
    terraform_with_progress(
        prepared,
        &["apply", "-input=false", "-json", "-auto-approve", "plan.tfplan"],
        "ready",
        add + change + remove,
        context,
    )?;
    let outputs: serde_json::Value =
        serde_json::from_str(&prepared.terraform.run(&["output", "-json"])?).unwrap_or_default();
    record.outputs = outputs
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v["value"].clone())).collect())
        .unwrap_or_default();
    record.set_status(&prepared.state, Status::Provisioned)?;
    Ok((add, change, remove))
}

/// Runs a `-json` Terraform command, reporting each resource as it finishes.
pub(crate) fn terraform_with_progress(
    prepared: &Prepared,
    args: &[&str],
    verb: &str,
    total: u64,
    context: &Context,
) -> Result<(), Error> {
    let mut tally = crate::terraform::Tally::new(total);
    let result = prepared.terraform.run_json(args, |event| {
        let line = tally.observe(event, verb);
        context.report.terraform(&tally, line.as_deref());
    });
    context.report.terraform_done();
    result?;
    Ok(())
}

/// The cluster behind the state directory's kubeconfig, if its API answers now.
pub(crate) async fn answering_cluster(state: &std::path::Path) -> Option<service_manager::cluster::Cluster> {
    let options = service_manager::cluster::ClientOptions { attempts: 2, ..Default::default() };
    let cluster =
        service_manager::cluster::Cluster::connect(Some(&state.join("kubeconfig")), None, options).await.ok()?;
    cluster.ready().await.ok().map(|_| cluster)
}

/// Drains the nodes of machines about to be removed, if the cluster answers; a cluster that
/// never came up has nothing to drain.
fn drain(prepared: &Prepared, machines: &[String], context: &Context) -> Result<(), Error> {
    super::runtime().block_on(async {
        let Some(cluster) = answering_cluster(&prepared.state).await else {
            context.report.line("the Kubernetes API does not answer: nothing to drain");
            return Ok(());
        };
        let waits = crate::kube::Waits { timeout: Duration::from_secs(600), interval: Duration::from_secs(1) };
        for machine in machines {
            let node = format!("{}-{machine}", prepared.config.cluster_name);
            let drained = crate::kube::drain_node(&cluster, &node, waits).await?;
            if drained.existed {
                context.report.line(&format!(
                    "drained node {node}: {} pod(s) evicted, node removed from Kubernetes",
                    drained.evicted.len()
                ));
            }
        }
        Ok(())
    })
}
