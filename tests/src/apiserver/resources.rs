//! The resource types the test API server serves, and the discovery documents describing them.

use serde_json::{json, Value};

/// One served resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Plural resource name used in paths.
    pub plural: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names kubectl accepts.
    pub short_names: &'static [&'static str],
}

impl ResourceType {
    /// `apiVersion` of objects of this type.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural` or `plural.group`: the name used in messages and keys.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether the type has a `status` subresource the server maintains.
    pub fn has_status(&self) -> bool {
        !matches!(
            self.kind,
            "Secret"
                | "ConfigMap"
                | "Lease"
                | "Event"
                | "NetworkPolicy"
                | "ServiceAccount"
                | "ClusterRole"
                | "ClusterRoleBinding"
                | "Role"
                | "RoleBinding"
                | "StorageClass"
                | "CSIDriver"
        )
    }

    /// Whether names must be DNS labels (namespaces, Services) rather than subdomains.
    pub fn label_names(&self) -> bool {
        matches!(self.kind, "Namespace" | "Service")
    }
}

const fn core(
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
) -> ResourceType {
    ResourceType { group: "", version: "v1", kind, plural, namespaced, short_names: short }
}

const fn grouped(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
) -> ResourceType {
    ResourceType { group, version: "v1", kind, plural, namespaced: true, short_names: short }
}

const fn cluster_scoped(group: &'static str, kind: &'static str, plural: &'static str) -> ResourceType {
    ResourceType { group, version: "v1", kind, plural, namespaced: false, short_names: &[] }
}

/// Every served resource type (those of one group next to each other).
pub const RESOURCES: &[ResourceType] = &[
    core("Namespace", "namespaces", false, &["ns"]),
    core("Secret", "secrets", true, &[]),
    core("ConfigMap", "configmaps", true, &["cm"]),
    core("Service", "services", true, &["svc"]),
    core("PersistentVolumeClaim", "persistentvolumeclaims", true, &["pvc"]),
    core("Pod", "pods", true, &["po"]),
    core("Event", "events", true, &["ev"]),
    core("ServiceAccount", "serviceaccounts", true, &["sa"]),
    core("Node", "nodes", false, &["no"]),
    core("PersistentVolume", "persistentvolumes", false, &["pv"]),
    grouped("apps", "Deployment", "deployments", &["deploy"]),
    grouped("apps", "StatefulSet", "statefulsets", &["sts"]),
    grouped("apps", "DaemonSet", "daemonsets", &["ds"]),
    grouped("batch", "Job", "jobs", &[]),
    grouped("networking.k8s.io", "NetworkPolicy", "networkpolicies", &["netpol"]),
    grouped("coordination.k8s.io", "Lease", "leases", &[]),
    cluster_scoped("rbac.authorization.k8s.io", "ClusterRole", "clusterroles"),
    cluster_scoped("rbac.authorization.k8s.io", "ClusterRoleBinding", "clusterrolebindings"),
    grouped("rbac.authorization.k8s.io", "Role", "roles", &[]),
    grouped("rbac.authorization.k8s.io", "RoleBinding", "rolebindings", &[]),
    cluster_scoped("storage.k8s.io", "StorageClass", "storageclasses"),
    cluster_scoped("storage.k8s.io", "CSIDriver", "csidrivers"),
];

/// The resource type at `group`/`version`/`plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource type of `apiVersion` + `kind`.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    RESOURCES.iter().find(|r| r.api_version() == api_version && r.kind == kind)
}

fn groups() -> Vec<&'static str> {
    let mut groups: Vec<&str> = RESOURCES.iter().map(|r| r.group).filter(|g| !g.is_empty()).collect();
    groups.dedup();
    groups
}

/// `GET /version`.
pub fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-stratus-fake",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"
    })
}

/// `GET /api`.
pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]})
}

/// `GET /apis`.
pub fn group_list() -> Value {
    let groups: Vec<Value> = groups()
        .into_iter()
        .map(|g| {
            let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /api/v1` or `GET /apis/<group>/<version>`; `None` for an unknown group version.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let served: Vec<&ResourceType> = RESOURCES.iter().filter(|r| r.group == group && r.version == version).collect();
    if served.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in &served {
        resources.push(json!({
            "name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced, "kind": r.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": r.short_names,
        }));
        if r.has_status() {
            resources
                .push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                "kind": r.kind, "verbs": ["get", "patch", "update"]}));
        }
        if matches!(r.kind, "Deployment" | "StatefulSet") {
            resources.push(json!({"name": format!("{}/scale", r.plural), "singularName": "", "namespaced": true,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
    }
    let group_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}))
}
