//! Storage: the local-path provisioner of existing machines, the default `block` class and,
//! with GlusterFS nodes, the ReadWriteMany `glusterfs` class over the pool's NFS export.

use super::*;

pub(super) fn local_path() -> Vec<KubeObject> {
    const NS: &str = "local-path-storage";
    const APP: &str = "local-path-provisioner";
    let mut objects = vec![namespace(NS, true)];
    objects.extend(identity(
        NS,
        APP,
        APP,
        vec![
            rule(
                &[""],
                &["nodes", "persistentvolumeclaims", "configmaps", "pods", "pods/log"],
                &["get", "list", "watch"],
            ),
            rule(&[""], &["persistentvolumes"], &["get", "list", "watch", "create", "patch", "update", "delete"]),
            rule(&[""], &["pods"], &["create", "delete"]),
            rule(&[""], &["events"], &["create", "patch"]),
            rule(&["storage.k8s.io"], &["storageclasses"], &["get", "list", "watch"]),
        ],
    ));
    let paths = serde_json::json!({"nodePathMap": [
        {"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["/opt/local-path-provisioner"]},
    ]});
    let helper = serde_norway::to_string(&serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "helper-pod"},
        "spec": {"priorityClassName": "system-node-critical", "tolerations": [{"operator": "Exists"}],
                 "containers": [{"name": "helper-pod", "image": "docker.io/library/busybox:1.37", "imagePullPolicy": "IfNotPresent"}]},
    }))
    .expect("YAML serialises");
    objects.push(config_map(
        NS,
        "local-path-config",
        APP,
        BTreeMap::from([
            ("config.json".to_string(), serde_json::to_string_pretty(&paths).expect("JSON serialises")),
            ("setup".to_string(), "#!/bin/sh\nset -eu\nmkdir -m 0777 -p \"$VOL_DIR\"\n".to_string()),
            ("teardown".to_string(), "#!/bin/sh\nset -eu\nrm -rf \"$VOL_DIR\"\n".to_string()),
            ("helperPod.yaml".to_string(), helper),
        ]),
    ));
    let provisioner = Container {
        command: Some(strings(&["local-path-provisioner", "--debug", "start", "--config", "/etc/config/config.json"])),
        env: Some(vec![
            env_from_field("POD_NAMESPACE", "metadata.namespace"),
            env("CONFIG_MOUNT_PATH", "/etc/config/"),
        ]),
        volume_mounts: Some(vec![mount("config-volume", "/etc/config/")]),
        ..container(APP, images::LOCAL_PATH, Vec::new())
    };
    objects.push(provisioner_deployment(NS, APP, provisioner, config_map_volume("config-volume", "local-path-config")));
    objects
}

pub(super) fn block_class(config: &Config) -> KubeObject {
    let (provisioner, parameters, expandable) = match config.provider.kind() {
        ProviderKind::OpenStack => ("cinder.csi.openstack.org", BTreeMap::new(), true),
        ProviderKind::Aws => (
            "ebs.csi.aws.com",
            BTreeMap::from([("type".to_string(), "gp3".to_string()), ("encrypted".to_string(), "true".to_string())]),
            true,
        ),
        ProviderKind::VSphere => ("csi.vsphere.vmware.com", BTreeMap::new(), true),
        ProviderKind::Local => ("rancher.io/local-path", BTreeMap::new(), false),
    };
    let mut metadata = meta(BLOCK_CLASS, None, "stratus-storage");
    metadata.annotations =
        Some(BTreeMap::from([("storageclass.kubernetes.io/is-default-class".to_string(), "true".to_string())]));
    KubeObject::StorageClass(StorageClass {
        metadata,
        provisioner: provisioner.into(),
        parameters: (!parameters.is_empty()).then_some(parameters),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("WaitForFirstConsumer".into()),
        allow_volume_expansion: Some(expandable),
        ..StorageClass::default()
    })
}

/// The shared class: a provisioner that makes one directory per claim in the GlusterFS
/// pool's NFS-Ganesha export of volume `stratus` on the first GlusterFS machine.
pub(super) fn shared_storage(facts: &Facts) -> Vec<KubeObject> {
    const NS: &str = "glusterfs-provisioner";
    const APP: &str = "glusterfs-provisioner";
    const PROVISIONER: &str = "stratus.io/glusterfs";
    let server = facts.gluster_addresses.first().cloned().unwrap_or_default();
    let mut objects = vec![namespace(NS, false)];
    objects.extend(identity(
        NS,
        APP,
        APP,
        vec![
            rule(&[""], &["nodes"], &["get", "list", "watch"]),
            rule(&[""], &["persistentvolumes"], &["get", "list", "watch", "create", "delete"]),
            rule(&[""], &["persistentvolumeclaims"], &["get", "list", "watch", "update"]),
            rule(&["storage.k8s.io"], &["storageclasses"], &["get", "list", "watch"]),
            rule(&[""], &["events"], &["create", "update", "patch"]),
            rule(&["coordination.k8s.io"], &["leases"], &["get", "list", "watch", "create", "update", "patch"]),
        ],
    ));
    let provisioner = Container {
        env: Some(vec![
            env("PROVISIONER_NAME", PROVISIONER),
            env("NFS_SERVER", &server),
            env("NFS_PATH", &format!("/{GLUSTER_VOLUME}")),
        ]),
        volume_mounts: Some(vec![mount("export", "/persistentvolumes")]),
        ..container(APP, images::NFS_SUBDIR, Vec::new())
    };
    let export = Volume {
        name: "export".into(),
        nfs: Some(k8s_openapi::api::core::v1::NFSVolumeSource {
            server,
            path: format!("/{GLUSTER_VOLUME}"),
            read_only: None,
        }),
        ..Volume::default()
    };
    objects.push(provisioner_deployment(NS, APP, provisioner, export));
    objects.push(KubeObject::StorageClass(StorageClass {
        metadata: meta(SHARED_CLASS, None, "stratus-storage"),
        provisioner: PROVISIONER.into(),
        parameters: Some(BTreeMap::from([
            ("archiveOnDelete".to_string(), "false".to_string()),
            ("pathPattern".to_string(), "${.PVC.namespace}-${.PVC.name}".to_string()),
        ])),
        mount_options: Some(strings(&["nfsvers=4.1"])),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("Immediate".into()),
        allow_volume_expansion: Some(false),
        ..StorageClass::default()
    }));
    objects
}
