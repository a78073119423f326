//! Readiness of every kind Stratus waits for — Deployments, StatefulSets, DaemonSets and
//! Jobs — as pure functions of the objects the API server returns.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use serde::{Deserialize, Serialize};

use crate::objects::Kind;

/// Readiness of one workload or job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    /// Kind.
    pub kind: Kind,
    /// Namespace.
    #[serde(skip)]
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Ready instances.
    pub ready: i32,
    /// Desired instances.
    pub desired: i32,
    /// Finished (ready, or a completed job).
    pub done: bool,
    /// A job failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// The latest condition, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

impl Readiness {
    /// Nothing known yet about `kind` `namespace/name`.
    pub fn unknown(kind: Kind, namespace: &str, name: &str) -> Readiness {
        Readiness {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
            ready: 0,
            desired: 0,
            done: false,
            failed: None,
            condition: None,
        }
    }

    /// One line for an operator: `Deployment api: 1/2 ready (Progressing=True)`.
    pub fn describe(&self) -> String {
        let status = self.condition.clone().map(|c| format!(" ({c})")).unwrap_or_default();
        format!("{} {}: {}/{} ready{status}", self.kind, self.name, self.ready, self.desired)
    }
}

fn identity(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
}

/// `Type=Status: message`, a workload's latest condition as an operator reads it.
fn condition(type_: &str, status: &str, message: &Option<String>) -> String {
    format!("{type_}={status}{}", message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())
}

/// Readiness of a Deployment: its current generation is observed and enough replicas are
/// ready and updated.
pub fn deployment(d: &Deployment) -> Readiness {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    let current = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    let condition = status.conditions.unwrap_or_default().last().map(|c| condition(&c.type_, &c.status, &c.message));
    let (namespace, name) = identity(&d.metadata);
    Readiness {
        kind: Kind::Deployment,
        namespace,
        name,
        ready,
        desired,
        done: current && ready >= desired && status.updated_replicas.unwrap_or(0) >= desired,
        failed: None,
        condition,
    }
}

/// Readiness of a StatefulSet: its current generation is observed and enough replicas are
/// ready.
pub fn stateful_set(s: &StatefulSet) -> Readiness {
    let desired = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = s.status.clone().unwrap_or_default();
    let current = status.observed_generation.unwrap_or(0) >= s.metadata.generation.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    let condition = status.conditions.unwrap_or_default().last().map(|c| condition(&c.type_, &c.status, &c.message));
    let (namespace, name) = identity(&s.metadata);
    Readiness {
        kind: Kind::StatefulSet,
        namespace,
        name,
        ready,
        desired,
        done: current && ready >= desired,
        failed: None,
        condition,
    }
}

/// Readiness of a DaemonSet: its current generation runs and is ready on every node it is
/// scheduled to (and it is scheduled to at least one).
pub fn daemon_set(set: &DaemonSet) -> Readiness {
    let status = set.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0) >= set.metadata.generation.unwrap_or(0);
    let desired = status.desired_number_scheduled;
    let ready = status.number_ready;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let (namespace, name) = identity(&set.metadata);
    Readiness {
        kind: Kind::DaemonSet,
        namespace,
        name,
        ready,
        desired,
        done: observed && desired > 0 && ready >= desired && updated >= desired,
        failed: None,
        condition: (desired == 0).then(|| "no node to run on yet".to_string()),
    }
}

/// Readiness of a Job: done when `Complete`, failed (with its message) when `Failed`.
pub fn job(j: &Job) -> Readiness {
    let conditions = j.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let with = |t: &str| conditions.iter().find(|c| c.type_ == t && c.status == "True");
    let failed = with("Failed").map(|c| c.message.clone().or(c.reason.clone()).unwrap_or_else(|| "failed".into()));
    let complete = with("Complete").is_some();
    let (namespace, name) = identity(&j.metadata);
    Readiness {
        kind: Kind::Job,
        namespace,
        name,
        ready: i32::from(complete),
        desired: 1,
        done: complete,
        failed,
        condition: conditions.last().map(|c| format!("{}={}", c.type_, c.status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DaemonSetStatus, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn meta(generation: i64) -> ObjectMeta {
        ObjectMeta {
            name: Some("x".into()),
            namespace: Some("ns".into()),
            generation: Some(generation),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn deployments_are_ready_when_their_current_generation_is() {
        let mut d = Deployment {
            metadata: meta(2),
            spec: Some(DeploymentSpec { replicas: Some(2), ..DeploymentSpec::default() }),
            status: Some(DeploymentStatus {
                observed_generation: Some(1),
                ready_replicas: Some(2),
                updated_replicas: Some(2),
                ..DeploymentStatus::default()
            }),
        };
        assert!(!deployment(&d).done, "an old generation's readiness does not count");
        d.status.as_mut().unwrap().observed_generation = Some(2);
        assert!(deployment(&d).done);
        assert_eq!(deployment(&d).namespace, "ns");
    }

    #[test]
    fn daemon_sets_need_a_node_and_every_scheduled_pod_ready() {
        let status = |desired, ready| DaemonSetStatus {
            desired_number_scheduled: desired,
            number_ready: ready,
            updated_number_scheduled: Some(ready),
            observed_generation: Some(1),
            ..DaemonSetStatus::default()
        };
        let set = |s| DaemonSet { metadata: meta(1), status: Some(s), ..DaemonSet::default() };
        assert!(!daemon_set(&set(status(0, 0))).done);
        assert_eq!(daemon_set(&set(status(0, 0))).condition.as_deref(), Some("no node to run on yet"));
        assert!(!daemon_set(&set(status(3, 2))).done);
        assert!(daemon_set(&set(status(3, 3))).done);
    }

    #[test]
    fn jobs_complete_or_fail() {
        let with = |t: &str| Job {
            metadata: meta(1),
            status: Some(JobStatus {
                conditions: Some(vec![JobCondition {
                    type_: t.into(),
                    status: "True".into(),
                    message: Some("backoff".into()),
                    ..JobCondition::default()
                }]),
                ..JobStatus::default()
            }),
            ..Job::default()
        };
        assert!(job(&with("Complete")).done);
        assert_eq!(job(&with("Failed")).failed.as_deref(), Some("backoff"));
    }
}
