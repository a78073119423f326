//! `list-instances`: the records of every instance on the cluster.

use crate::cluster::Cluster;
use crate::instance::{InstanceError, Record};
use crate::labels;

/// The records of every instance, by instance id.
pub async fn run(cluster: &Cluster) -> Result<Vec<Record>, InstanceError> {
    let selector = format!("{}={}", labels::MANAGED_BY, labels::MANAGER);
    let mut records: Vec<Record> =
        cluster.namespaces(&selector).await?.iter().filter_map(Record::from_namespace).collect();
    records.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    Ok(records)
}
