//! `delete-instance`: delete an instance and wait until it is gone — or, keeping its volumes,
//! everything but the volume claims and the parameters that protect their data.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::cluster::{Cluster, ClusterError, Namespaced};
use crate::instance::lock;
use crate::instance::record::{self, Record, State};
use crate::instance::InstanceError;
use crate::labels;
use crate::objects::KubeObject;
use crate::wait::WaitError;

/// Options of `delete-instance`.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Keep the volume claims (and the namespace holding them, with the parameters).
    pub keep_volumes: bool,
    /// How long the deletion may take once confirmed.
    pub timeout: Duration,
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// There was no such instance.
    AlreadyGone,
    /// The namespace and everything in it is gone.
    Deleted,
    /// Everything but these volume claims is gone; the namespace keeps them.
    VolumesKept(Vec<String>),
}

/// Deletes instance `id`. `confirm` receives a description of what will be deleted and
/// returns whether to go on. With `keep_volumes`, the volume claims stay, with the namespace
/// that holds them and the instance's parameters (Secret and ConfigMap), so that creating the
/// instance again with the same id reattaches them.
pub async fn run(
    cluster: &Cluster,
    id: &str,
    options: Options,
    confirm: impl FnOnce(&str) -> bool,
) -> Result<Outcome, InstanceError> {
    let Some(namespace) = cluster.namespace(id).await? else { return Ok(Outcome::AlreadyGone) };
    let record = Record::from_namespace(&namespace).ok_or_else(|| InstanceError::NotOurs(id.to_string()))?;
    if record.terminating {
        wait_gone(&cluster.with_timeout(options.timeout), id).await?;
        return Ok(Outcome::Deleted);
    }
    let claims: Vec<String> =
        cluster.list::<PersistentVolumeClaim>(id, None).await?.into_iter().filter_map(|c| c.metadata.name).collect();
    let description = question(id, &record.service_id, options.keep_volumes, &claims);
    if !confirm(&description) {
        return Err(InstanceError::Cancelled);
    }
    // The deadline starts once the operator has answered.
    let cluster = &cluster.with_timeout(options.timeout);
    lock::take(cluster, &record, &lock::holder_identity()).await?;
    record::set_state(cluster, id, State::Deleting).await?;
    // Deleting the namespace does not delete what lives outside it.
    let annotation = namespace.metadata.annotations.as_ref().and_then(|a| a.get(labels::CLUSTER_OBJECTS));
    for object in cluster_objects(annotation.map(String::as_str).unwrap_or_default()) {
        cluster.delete_object(&object).await?;
    }
    if !options.keep_volumes {
        cluster.delete_namespace(id).await?;
        wait_gone(cluster, id).await?;
        return Ok(Outcome::Deleted);
    }
    delete_all::<Deployment>(cluster, id).await?;
    delete_all::<StatefulSet>(cluster, id).await?;
    delete_all::<Job>(cluster, id).await?;
    delete_all::<Service>(cluster, id).await?;
    delete_all::<NetworkPolicy>(cluster, id).await?;
    // The Secret and ConfigMap stay with the volumes: re-creating the instance with the same id
    // reattaches the volumes with the same passwords and keys.
    let annotations = BTreeMap::from([
        (record::STATE.to_string(), Some(State::Deleted.to_string())),
        (record::OPERATION.to_string(), None),
        (record::UPDATED.to_string(), Some(record::rfc3339_now())),
        (record::MESSAGE.to_string(), Some(format!("volume claims kept: {}", claims.join(", ")))),
    ]);
    cluster.annotate_namespace(id, &annotations, None).await?;
    lock::release(cluster, id).await?;
    Ok(Outcome::VolumesKept(claims))
}

/// The cluster-scoped objects a namespace's [`labels::CLUSTER_OBJECTS`] annotation names
/// (`ClusterRole/name,ClusterRoleBinding/name`); other kinds are ignored.
pub fn cluster_objects(annotation: &str) -> Vec<KubeObject> {
    let meta = |name: &str| ObjectMeta { name: Some(name.to_string()), ..ObjectMeta::default() };
    annotation
        .split(',')
        .filter_map(|entry| match entry.trim().split_once('/')? {
            ("ClusterRole", name) if !name.is_empty() => {
                Some(KubeObject::ClusterRole(ClusterRole { metadata: meta(name), ..ClusterRole::default() }))
            }
            ("ClusterRoleBinding", name) if !name.is_empty() => {
                Some(KubeObject::ClusterRoleBinding(ClusterRoleBinding {
                    metadata: meta(name),
                    ..ClusterRoleBinding::default()
                }))
            }
            _ => None,
        })
        .collect()
}

/// What deleting instance `id` of `service` asks the operator, naming the volume claims
/// `claims` that are kept or lost.
pub fn question(id: &str, service: &str, keep_volumes: bool, claims: &[String]) -> String {
    match (keep_volumes, claims.is_empty()) {
        (_, true) => format!("Delete instance {id} ({service})?"),
        (true, false) => format!("Delete instance {id} ({service}), keeping its volume claims {}?", claims.join(", ")),
        (false, false) => {
            format!(
                "Delete instance {id} ({service}) and its volume claims {} (their data is lost)?",
                claims.join(", ")
            )
        }
    }
}

async fn delete_all<K: Namespaced>(cluster: &Cluster, id: &str) -> Result<(), InstanceError> {
    for object in cluster.list::<K>(id, None).await? {
        cluster.delete::<K>(id, object.meta().name.as_deref().unwrap_or_default()).await?;
    }
    Ok(())
}

/// How often a deletion is checked on.
const POLL: Duration = Duration::from_millis(200);

/// Waits until namespace `id` is gone, up to the cluster's deadline.
async fn wait_gone(cluster: &Cluster, id: &str) -> Result<(), InstanceError> {
    let timeout = || WaitError::Timeout {
        seconds: cluster.timeout().map(|t| t.as_secs()).unwrap_or_default(),
        what: format!("namespace {id} to be deleted"),
        details: "  the namespace is still terminating".into(),
    };
    loop {
        match cluster.namespace(id).await {
            Ok(None) => return Ok(()),
            Ok(Some(_)) => {}
            Err(ClusterError::Deadline { .. }) => return Err(timeout().into()),
            Err(other) => return Err(other.into()),
        }
        if cluster.deadline().is_some_and(|d| tokio::time::Instant::now() + POLL >= d) {
            return Err(timeout().into());
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_objects_annotation_names_what_to_delete() {
        let objects = cluster_objects("ClusterRole/hsm:hcp:c,ClusterRoleBinding/hsm:hcp:c,Secret/x,ClusterRole/");
        let described: Vec<String> = objects.iter().map(KubeObject::describe).collect();
        assert_eq!(described, ["ClusterRole hsm:hcp:c", "ClusterRoleBinding hsm:hcp:c"]);
        assert!(cluster_objects("").is_empty());
    }
}
