//! What the planner needs to know about the target cluster. Given on the command line or in
//! a JSON file (`--profile`); every field has a working default.

use serde::{Deserialize, Serialize};

/// Facts about the cluster an instance is planned for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterProfile {
    /// Cluster DNS domain (`cluster.local`).
    pub cluster_domain: String,
    /// Storage class for per-instance (ReadWriteOnce) volumes; the cluster default when absent.
    pub block_storage_class: Option<String>,
    /// Storage class for shared (ReadWriteMany) volumes, e.g. a GlusterFS class; the cluster
    /// default when absent.
    pub shared_storage_class: Option<String>,
    /// Availability zones instances may run in; any zone when empty.
    pub zones: Vec<String>,
    /// Registry host that replaces every image's registry (a mirror).
    pub registry: Option<String>,
    /// Image pull secrets to reference from every pod.
    pub image_pull_secrets: Vec<String>,
}

impl Default for ClusterProfile {
    fn default() -> Self {
        ClusterProfile {
            cluster_domain: "cluster.local".into(),
            block_storage_class: None,
            shared_storage_class: None,
            zones: Vec::new(),
            registry: None,
            image_pull_secrets: Vec::new(),
        }
    }
}
