//! `get-credentials`: the values of an instance's secret parameters (given or generated), for
//! the operator who asks for them by name. Generated keys and certificates stay in the
//! cluster (`hsm-generated.json` is not shown).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use serde::Serialize;

use crate::cluster::Cluster;
use crate::instance::{InstanceError, Record};
use crate::plan::{GENERATED_KEY, SECRET_NAME};

/// An instance's secret parameter values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Credentials {
    /// Instance id.
    pub instance_id: String,
    /// Parameter name → value.
    pub values: BTreeMap<String, String>,
}

/// The secret parameter values of instance `id`.
pub async fn run(cluster: &Cluster, id: &str) -> Result<Credentials, InstanceError> {
    let namespace = cluster.namespace(id).await?.ok_or_else(|| InstanceError::NotFound(id.to_string()))?;
    Record::from_namespace(&namespace).ok_or_else(|| InstanceError::NotOurs(id.to_string()))?;
    let data = cluster.get::<Secret>(id, SECRET_NAME).await?.and_then(|s| s.data).unwrap_or_default();
    let values = data
        .into_iter()
        .filter(|(key, _)| key != GENERATED_KEY)
        .map(|(key, value)| (key, String::from_utf8_lossy(&value.0).into_owned()))
        .collect();
    Ok(Credentials { instance_id: id.to_string(), values })
}
