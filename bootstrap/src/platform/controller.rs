//! The cloud controller manager of each cloud: a DaemonSet on the masters with its RBAC.

use super::*;

pub(super) const KUBE_SYSTEM: &str = "kube-system";

/// A cloud controller manager on every control-plane node.
pub(super) fn cloud_controller(
    name: &str,
    image: &str,
    args: Vec<String>,
    env: Vec<EnvVar>,
    config: Option<(&str, &str)>,
) -> Vec<KubeObject> {
    const ACCOUNT: &str = "cloud-controller-manager";
    let mut objects = identity(
        KUBE_SYSTEM,
        ACCOUNT,
        name,
        vec![
            rule(&[""], &["events"], &["create", "patch", "update"]),
            rule(&[""], &["nodes"], &["*"]),
            rule(&[""], &["nodes/status"], &["patch"]),
            rule(&[""], &["services"], &["list", "patch", "update", "watch"]),
            rule(&[""], &["services/status"], &["patch"]),
            rule(&[""], &["serviceaccounts", "serviceaccounts/token"], &["create", "get"]),
            rule(&[""], &["persistentvolumes"], &["get", "list", "watch", "update"]),
            rule(&[""], &["endpoints"], &["create", "get", "list", "watch", "update"]),
            rule(&[""], &["configmaps", "secrets"], &["get", "list", "watch"]),
            rule(&["coordination.k8s.io"], &["leases"], &["get", "create", "update"]),
        ],
    );
    let mut mounts = Vec::new();
    let mut volumes = Vec::new();
    if let Some((secret, path)) = config {
        mounts.push(VolumeMount { read_only: Some(true), ..mount("cloud-config", path) });
        volumes.push(secret_volume("cloud-config", secret));
    }
    let controller = Container { env: Some(env), volume_mounts: Some(mounts), ..container(name, image, args) };
    objects.push(daemon_set(
        KUBE_SYSTEM,
        name,
        name,
        PodSpec {
            host_network: Some(true),
            priority_class_name: Some("system-node-critical".into()),
            service_account_name: Some(ACCOUNT.into()),
            node_selector: Some(BTreeMap::from([("node-role.kubernetes.io/control-plane".to_string(), String::new())])),
            tolerations: Some(vec![
                Toleration {
                    key: Some("node.cloudprovider.kubernetes.io/uninitialized".into()),
                    value: Some("true".into()),
                    effect: Some("NoSchedule".into()),
                    ..Toleration::default()
                },
                Toleration {
                    key: Some("node-role.kubernetes.io/control-plane".into()),
                    effect: Some("NoSchedule".into()),
                    ..Toleration::default()
                },
            ]),
            containers: vec![controller],
            volumes: Some(volumes),
            ..PodSpec::default()
        },
    ));
    objects
}
