//! CSI drivers: registration, a controller Deployment with its sidecars and a node
//! DaemonSet with the registrar.

use super::*;

/// A CSI driver: its registration, a controller Deployment with the provisioner, attacher and
/// resizer sidecars, and a node DaemonSet with the registrar.
pub(super) struct Csi<'a> {
    /// Driver name, e.g. `cinder.csi.openstack.org`.
    pub(super) driver: &'a str,
    /// Short name for objects, e.g. `cinder-csi`.
    pub(super) short: &'a str,
    /// Plugin image.
    pub(super) image: &'a str,
    /// Plugin arguments in the controller and on nodes.
    pub(super) controller_args: Vec<String>,
    pub(super) node_args: Vec<String>,
    /// Plugin environment (beyond `CSI_ENDPOINT`).
    pub(super) env: Vec<EnvVar>,
    /// A Secret mounted at a path in the plugin containers.
    pub(super) config: Option<(&'a str, &'a str)>,
}

pub(super) fn csi(spec: &Csi) -> Vec<KubeObject> {
    let controller_account = format!("{}-controller", spec.short);
    let node_account = format!("{}-node", spec.short);
    let mut objects = identity(
        KUBE_SYSTEM,
        &controller_account,
        spec.short,
        vec![
            rule(&[""], &["persistentvolumes"], &["get", "list", "watch", "create", "delete", "patch"]),
            rule(&[""], &["persistentvolumeclaims"], &["get", "list", "watch", "update"]),
            rule(&[""], &["persistentvolumeclaims/status"], &["patch"]),
            rule(&[""], &["events"], &["list", "watch", "create", "update", "patch"]),
            rule(&[""], &["nodes"], &["get", "list", "watch"]),
            rule(&[""], &["pods"], &["get", "list", "watch"]),
            rule(&["storage.k8s.io"], &["storageclasses", "csinodes"], &["get", "list", "watch"]),
            rule(&["storage.k8s.io"], &["volumeattachments"], &["get", "list", "watch", "patch"]),
            rule(&["storage.k8s.io"], &["volumeattachments/status"], &["patch"]),
            rule(&["coordination.k8s.io"], &["leases"], &["get", "watch", "list", "delete", "update", "create"]),
        ],
    );
    objects.extend(identity(
        KUBE_SYSTEM,
        &node_account,
        spec.short,
        vec![rule(&[""], &["nodes"], &["get"]), rule(&["storage.k8s.io"], &["csinodes"], &["get"])],
    ));
    objects.push(KubeObject::CsiDriver(CSIDriver {
        metadata: meta(spec.driver, None, spec.short),
        spec: CSIDriverSpec {
            attach_required: Some(true),
            pod_info_on_mount: Some(false),
            volume_lifecycle_modes: Some(strings(&["Persistent"])),
            ..CSIDriverSpec::default()
        },
    }));
    let socket = "/csi/csi.sock";
    let mut plugin_env = vec![env("CSI_ENDPOINT", &format!("unix://{socket}"))];
    plugin_env.extend(spec.env.iter().cloned());
    let mut plugin_mounts = vec![mount("socket-dir", "/csi")];
    let mut config_volumes = Vec::new();
    if let Some((secret, path)) = spec.config {
        plugin_mounts.push(VolumeMount { read_only: Some(true), ..mount("cloud-config", path) });
        config_volumes.push(secret_volume("cloud-config", secret));
    }
    let sidecar = |name: &str, image: &str, extra: &[&str]| {
        let mut args =
            vec![format!("--csi-address={socket}"), "--leader-election=true".to_string(), "--timeout=3m".to_string()];
        args.extend(strings(extra));
        Container { volume_mounts: Some(vec![mount("socket-dir", "/csi")]), ..container(name, image, args) }
    };
    let controller_plugin = Container {
        env: Some(plugin_env.clone()),
        volume_mounts: Some(plugin_mounts.clone()),
        ..container("plugin", spec.image, spec.controller_args.clone())
    };
    let mut controller_volumes =
        vec![Volume { name: "socket-dir".into(), empty_dir: Some(Default::default()), ..Volume::default() }];
    controller_volumes.extend(config_volumes.iter().cloned());
    objects.push(deployment(
        KUBE_SYSTEM,
        &format!("{}-controller", spec.short),
        &format!("{}-controller", spec.short),
        1,
        PodSpec {
            service_account_name: Some(controller_account.clone()),
            priority_class_name: Some("system-cluster-critical".into()),
            containers: vec![
                sidecar(
                    "csi-provisioner",
                    images::CSI_PROVISIONER,
                    &["--extra-create-metadata", "--feature-gates=Topology=true"],
                ),
                sidecar("csi-attacher", images::CSI_ATTACHER, &[]),
                sidecar("csi-resizer", images::CSI_RESIZER, &["--handle-volume-inuse-error=false"]),
                controller_plugin,
            ],
            volumes: Some(controller_volumes),
            ..PodSpec::default()
        },
    ));
    let kubelet_dir = "/var/lib/kubelet";
    let plugin_dir = format!("{kubelet_dir}/plugins/{}", spec.driver);
    let registrar = Container {
        volume_mounts: Some(vec![mount("socket-dir", "/csi"), mount("registration-dir", "/registration")]),
        ..container(
            "node-driver-registrar",
            images::CSI_REGISTRAR,
            vec![format!("--csi-address={socket}"), format!("--kubelet-registration-path={plugin_dir}/csi.sock")],
        )
    };
    let mut node_mounts = plugin_mounts;
    node_mounts
        .push(VolumeMount { mount_propagation: Some("Bidirectional".into()), ..mount("kubelet-dir", kubelet_dir) });
    node_mounts.push(mount("device-dir", "/dev"));
    let node_plugin = Container {
        env: Some(plugin_env),
        security_context: privileged(),
        volume_mounts: Some(node_mounts),
        ..container("plugin", spec.image, spec.node_args.clone())
    };
    let mut node_volumes = vec![
        host_path("socket-dir", &plugin_dir, "DirectoryOrCreate"),
        host_path("registration-dir", &format!("{kubelet_dir}/plugins_registry"), "Directory"),
        host_path("kubelet-dir", kubelet_dir, "Directory"),
        host_path("device-dir", "/dev", "Directory"),
    ];
    node_volumes.extend(config_volumes);
    objects.push(daemon_set(
        KUBE_SYSTEM,
        &format!("{}-node", spec.short),
        &format!("{}-node", spec.short),
        PodSpec {
            host_network: Some(true),
            service_account_name: Some(node_account),
            priority_class_name: Some("system-node-critical".into()),
            tolerations: tolerate_everything(),
            containers: vec![registrar, node_plugin],
            volumes: Some(node_volumes),
            ..PodSpec::default()
        },
    ));
    objects
}
