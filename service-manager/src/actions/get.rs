//! `get-instance`: an instance's record, parameters (secret values masked), components with
//! their readiness, public locations and volume claims.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::instance::{InstanceError, Record};
use crate::plan::{CONFIG_MAP_NAME, GENERATED_KEY, SECRET_NAME};
use crate::readiness::{self, Readiness};

/// Where a public port can be reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Component (Service) name.
    pub service_name: String,
    /// Port name.
    pub port_name: String,
    /// Load balancer address, or `<pending>`.
    pub public_location: String,
    /// Port.
    pub public_port: i32,
}

/// Everything `get-instance` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceDetail {
    /// The record.
    #[serde(flatten)]
    pub record: Record,
    /// Parameter values; secret ones masked.
    pub parameters: BTreeMap<String, String>,
    /// Workloads and their readiness.
    pub components: Vec<Readiness>,
    /// Public ports.
    pub service_locations: Vec<Location>,
    /// Volume claims.
    pub volume_claims: Vec<String>,
    /// Versions the instance can be upgraded to (`product/sdl`), as the converger found them
    /// in the catalog (the `Instance`'s `status.availableUpgrades`); empty without a converger.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub available_upgrades: Vec<String>,
}

/// Details of instance `id`.
pub async fn run(cluster: &Cluster, id: &str) -> Result<InstanceDetail, InstanceError> {
    let namespace = cluster.namespace(id).await?.ok_or_else(|| InstanceError::NotFound(id.to_string()))?;
    let record = Record::from_namespace(&namespace).ok_or_else(|| InstanceError::NotOurs(id.to_string()))?;
    let mut parameters: BTreeMap<String, String> =
        cluster.get::<ConfigMap>(id, CONFIG_MAP_NAME).await?.and_then(|c| c.data).unwrap_or_default();
    if let Some(secret) = cluster.get::<Secret>(id, SECRET_NAME).await? {
        for key in secret.data.unwrap_or_default().into_keys().filter(|k| k != GENERATED_KEY) {
            parameters.insert(key, "********".into());
        }
    }
    let mut components: Vec<Readiness> =
        cluster.list::<Deployment>(id, None).await?.iter().map(readiness::deployment).collect();
    components.extend(cluster.list::<StatefulSet>(id, None).await?.iter().map(readiness::stateful_set));
    components.sort_by(|a, b| a.name.cmp(&b.name));
    let service_locations = locations(cluster, id).await?;
    let volume_claims =
        cluster.list::<PersistentVolumeClaim>(id, None).await?.into_iter().filter_map(|c| c.metadata.name).collect();
    Ok(InstanceDetail {
        record,
        parameters,
        components,
        service_locations,
        volume_claims,
        available_upgrades: Vec::new(),
    })
}

/// The public ports of instance `id`: every port of its LoadBalancer Services, with the
/// address the cloud gave (or `<pending>`).
pub async fn locations(cluster: &Cluster, id: &str) -> Result<Vec<Location>, InstanceError> {
    let mut out = Vec::new();
    for service in cluster.list::<Service>(id, None).await? {
        let Some(spec) = &service.spec else { continue };
        if spec.type_.as_deref() != Some("LoadBalancer") {
            continue;
        }
        let ingress = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref())
            .and_then(|i| i.first());
        let address = ingress.and_then(|i| i.ip.clone().or(i.hostname.clone())).unwrap_or_else(|| "<pending>".into());
        for port in spec.ports.clone().unwrap_or_default() {
            out.push(Location {
                service_name: service.metadata.name.clone().unwrap_or_default(),
                port_name: port.name.clone().unwrap_or_default(),
                public_location: address.clone(),
                public_port: port.port,
            });
        }
    }
    Ok(out)
}
