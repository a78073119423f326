//! Applying an instance's plan: step by step in plan order, each step's objects at once
//! (bounded), waiting where the step needs it. The one implementation of plan → apply → wait
//! for instances, used by every action that changes one.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;

use super::InstanceError;
use crate::cluster::Cluster;
use crate::objects::KubeObject;
use crate::plan::{Phase, Plan};
use crate::progress::Progress;
use crate::readiness;
use crate::wait;

/// Whether the live namespace already has every label and annotation the plan's Namespace
/// sets, with the same values.
pub fn namespace_is_current(live: &Namespace, plan: &Plan) -> bool {
    let Some(KubeObject::Namespace(planned)) = plan.objects().next() else { return false };
    let carries = |planned: &Option<BTreeMap<String, String>>, live: &Option<BTreeMap<String, String>>| {
        planned.iter().flatten().all(|(k, v)| live.as_ref().and_then(|l| l.get(k)) == Some(v))
    };
    carries(&planned.metadata.labels, &live.metadata.labels)
        && carries(&planned.metadata.annotations, &live.metadata.annotations)
}

/// How a plan is applied.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Wait until workloads are ready (jobs are always waited for: they gate what follows).
    pub wait: bool,
    /// The namespace was just created with the plan's labels (nothing in it can have failed).
    pub namespace_created: bool,
    /// The namespace already carries the plan's labels and annotations
    /// ([`namespace_is_current`]): its step is skipped, so a re-run with nothing to change
    /// writes nothing to it.
    pub namespace_current: bool,
    /// Jobs to delete before applying (a Job's template cannot change; an upgrade runs its
    /// jobs again).
    pub rerun_jobs: Vec<String>,
}

/// Applies `plan` step by step. Besides `options.rerun_jobs`, jobs of the plan that failed
/// before are deleted first, so re-running an operation runs them again.
pub async fn apply_plan(
    cluster: &Cluster,
    plan: &Plan,
    options: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<(), InstanceError> {
    let total = plan.steps.len();
    let namespace = plan.instance_id.clone();
    let mut rerun: BTreeSet<String> = options.rerun_jobs.iter().cloned().collect();
    let mut planned_jobs = plan.objects().filter(|o| matches!(o, KubeObject::Job(_)) && !rerun.contains(o.name()));
    if !options.namespace_created && planned_jobs.next().is_some() {
        let jobs = cluster.list::<Job>(&namespace, None).await?;
        rerun
            .extend(jobs.iter().filter(|j| readiness::job(j).failed.is_some()).filter_map(|j| j.metadata.name.clone()));
    }
    for (index, step) in plan.steps.iter().enumerate() {
        progress.step(index + 1, total, step.phase.title(), step.objects.len());
        if step.phase == Phase::Namespace && (options.namespace_created || options.namespace_current) {
            continue;
        }
        for job in step.objects.iter().filter(|o| matches!(o, KubeObject::Job(_)) && rerun.contains(o.name())) {
            cluster.delete_object(job).await?;
        }
        cluster.apply_all(&step.objects).await?;
        let waiting = match step.phase {
            Phase::Preflight | Phase::Postflight => true,
            Phase::Workloads => options.wait,
            _ => false,
        };
        if waiting {
            wait::until_ready(cluster, &step.objects, step.phase.title(), progress).await?;
        }
    }
    progress.finish();
    Ok(())
}
