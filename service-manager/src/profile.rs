//! What the planner needs to know about the target cluster. Given on the command line or in
//! a JSON file (`--profile`); every field has a working default.

use sdl::names;
use sdl::Problem;
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

impl ClusterProfile {
    /// Every value of the profile that the API server would refuse, each named by its field
    /// (`zones[1]`): they become storage class names, node affinity values, image references
    /// and pull secret names, so they are checked before anything is written.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut check = |path: String, problem: Option<String>| {
            if let Some(problem) = problem {
                problems.push(Problem::new(path, problem));
            }
        };
        check("cluster_domain".into(), names::dns_subdomain(&self.cluster_domain));
        if let Some(class) = &self.block_storage_class {
            check("block_storage_class".into(), names::dns_subdomain(class));
        }
        if let Some(class) = &self.shared_storage_class {
            check("shared_storage_class".into(), names::dns_subdomain(class));
        }
        if let Some(registry) = &self.registry {
            check("registry".into(), names::registry(registry));
        }
        for (i, zone) in self.zones.iter().enumerate() {
            check(format!("zones[{i}]"), names::label_value(zone));
            if self.zones[..i].contains(zone) {
                check(format!("zones[{i}]"), Some(format!("\"{}\" is listed twice", zone.escape_debug())));
            }
        }
        for (i, secret) in self.image_pull_secrets.iter().enumerate() {
            check(format!("image_pull_secrets[{i}]"), names::dns_subdomain(secret));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_the_api_server_would_refuse_are_problems() {
        assert!(ClusterProfile::default().problems().is_empty());
        let profile = ClusterProfile {
            cluster_domain: "cluster local".into(),
            block_storage_class: Some("Fast SSD".into()),
            shared_storage_class: Some("glusterfs".into()),
            zones: vec!["az1".into(), "az 2".into(), "az1".into()],
            registry: Some("mirror.local:5000\nevil".into()),
            image_pull_secrets: vec!["pull_secret".into()],
        };
        let paths: Vec<String> = profile.problems().into_iter().map(|p| p.path).collect();
        assert_eq!(
            paths,
            ["cluster_domain", "block_storage_class", "registry", "zones[1]", "zones[2]", "image_pull_secrets[0]"]
        );
    }
}
