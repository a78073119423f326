//! Where the kinds Stratus makes live in the API: kind → collection path.

/// Namespaced kinds Stratus's tools write.
pub const NAMESPACED: [&str; 13] = [
    "ConfigMap",
    "Secret",
    "Service",
    "ServiceAccount",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "NetworkPolicy",
    "Role",
    "RoleBinding",
    "Lease",
];

/// `(group-version path, plural)` of `kind`; unknown kinds are taken as core, plural `kind`s.
fn resource(kind: &str) -> (&'static str, String) {
    let (prefix, plural) = match kind {
        "Namespace" => ("/api/v1", "namespaces"),
        "Node" => ("/api/v1", "nodes"),
        "PersistentVolume" => ("/api/v1", "persistentvolumes"),
        "PersistentVolumeClaim" => ("/api/v1", "persistentvolumeclaims"),
        "Pod" => ("/api/v1", "pods"),
        "Service" => ("/api/v1", "services"),
        "ServiceAccount" => ("/api/v1", "serviceaccounts"),
        "Secret" => ("/api/v1", "secrets"),
        "ConfigMap" => ("/api/v1", "configmaps"),
        "Event" => ("/api/v1", "events"),
        "Endpoints" => ("/api/v1", "endpoints"),
        "Deployment" => ("/apis/apps/v1", "deployments"),
        "StatefulSet" => ("/apis/apps/v1", "statefulsets"),
        "DaemonSet" => ("/apis/apps/v1", "daemonsets"),
        "ReplicaSet" => ("/apis/apps/v1", "replicasets"),
        "Job" => ("/apis/batch/v1", "jobs"),
        "NetworkPolicy" => ("/apis/networking.k8s.io/v1", "networkpolicies"),
        "Lease" => ("/apis/coordination.k8s.io/v1", "leases"),
        "StorageClass" => ("/apis/storage.k8s.io/v1", "storageclasses"),
        "CSIDriver" => ("/apis/storage.k8s.io/v1", "csidrivers"),
        "Role" => ("/apis/rbac.authorization.k8s.io/v1", "roles"),
        "RoleBinding" => ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
        "ClusterRole" => ("/apis/rbac.authorization.k8s.io/v1", "clusterroles"),
        "ClusterRoleBinding" => ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings"),
        "PodDisruptionBudget" => ("/apis/policy/v1", "poddisruptionbudgets"),
        other => return ("/api/v1", format!("{}s", other.to_lowercase())),
    };
    (prefix, plural.to_string())
}

/// The collection path of `kind` in `namespace` (`""`: cluster-wide, or cluster-scoped).
pub fn collection(kind: &str, namespace: &str) -> String {
    let (prefix, plural) = resource(kind);
    if namespace.is_empty() {
        format!("{prefix}/{plural}")
    } else {
        format!("{prefix}/namespaces/{namespace}/{plural}")
    }
}
