//! What a new cluster gets before any catalog service, as typed Kubernetes objects in apply
//! order: the pod network (flannel, as the seed's Stackato 4 cluster used), the cloud's
//! controller manager and CSI driver (or, on existing machines, a local-path provisioner),
//! and the storage classes: `block` (the default, ReadWriteOnce) and, with GlusterFS nodes,
//! `glusterfs` (ReadWriteMany, served by the GlusterFS pool's NFS-Ganesha export).
//!
//! Pure: configuration and what Terraform reported in, objects out. Secrets (cloud
//! credentials for the controllers) are planned as Secret objects; [`redacted`] hides their
//! values for printing.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::Secret as SecretObject;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EnvVar, EnvVarSource, HostPathVolumeSource, Namespace,
    ObjectFieldSelector, PodSpec, PodTemplateSpec, SecretKeySelector, SecretVolumeSource, SecurityContext,
    ServiceAccount, Toleration, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::api::storage::v1::{CSIDriver, CSIDriverSpec, StorageClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::ByteString;
use service_manager::objects::KubeObject;

use crate::config::{Aws, Config, OpenStack, Provider, ProviderKind, VSphere};

/// Label on every object the platform plan makes.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "stratus-bootstrap");
/// The default ReadWriteOnce storage class.
pub const BLOCK_CLASS: &str = "block";
/// The ReadWriteMany storage class backed by GlusterFS.
pub const SHARED_CLASS: &str = "glusterfs";
/// Export of the GlusterFS volume the shared class carves directories from.
pub const GLUSTER_VOLUME: &str = "stratus";

/// Pinned images (each can be mirrored with the registry override of the catalog services).
pub mod images {
    /// flanneld.
    pub const FLANNEL: &str = "ghcr.io/flannel-io/flannel:v0.27.3";
    /// The flannel CNI plugin binary installer.
    pub const FLANNEL_CNI: &str = "ghcr.io/flannel-io/flannel-cni-plugin:v1.7.1-flannel1";
    /// OpenStack cloud controller manager.
    pub const OPENSTACK_CCM: &str = "registry.k8s.io/provider-os/openstack-cloud-controller-manager:v1.33.0";
    /// Cinder CSI plugin.
    pub const CINDER_CSI: &str = "registry.k8s.io/provider-os/cinder-csi-plugin:v1.33.0";
    /// AWS cloud controller manager.
    pub const AWS_CCM: &str = "registry.k8s.io/provider-aws/cloud-controller-manager:v1.33.0";
    /// EBS CSI driver.
    pub const EBS_CSI: &str = "public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver:v1.45.0";
    /// vSphere cloud provider.
    pub const VSPHERE_CPI: &str = "registry.k8s.io/cloud-pv-vsphere/cloud-provider-vsphere:v1.33.0";
    /// vSphere CSI driver.
    pub const VSPHERE_CSI: &str = "registry.k8s.io/csi-vsphere/driver:v3.5.0";
    /// CSI external provisioner.
    pub const CSI_PROVISIONER: &str = "registry.k8s.io/sig-storage/csi-provisioner:v5.2.0";
    /// CSI external attacher.
    pub const CSI_ATTACHER: &str = "registry.k8s.io/sig-storage/csi-attacher:v4.8.1";
    /// CSI external resizer.
    pub const CSI_RESIZER: &str = "registry.k8s.io/sig-storage/csi-resizer:v1.13.2";
    /// CSI node driver registrar.
    pub const CSI_REGISTRAR: &str = "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.13.0";
    /// Local path provisioner (existing machines).
    pub const LOCAL_PATH: &str = "docker.io/rancher/local-path-provisioner:v0.0.31";
    /// Provisioner of directories in an NFS export (the GlusterFS pool's).
    pub const NFS_SUBDIR: &str = "registry.k8s.io/sig-storage/nfs-subdir-external-provisioner:v4.0.2";
}

/// A named group of objects applied together, then waited for.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Phase name (`network`, `cloud`, `storage`).
    pub name: &'static str,
    /// What the step does, for progress output.
    pub title: String,
    /// Objects in apply order (service manager's object set: applied and awaited by the same
    /// Kubernetes layer as every service instance).
    pub objects: Vec<KubeObject>,
}

/// What Terraform reported about the machines (its outputs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Addresses of the GlusterFS machines, first one serving the NFS export.
    pub gluster_addresses: Vec<String>,
    /// PEM of the OpenStack API's CA (`OpenStack.CACertFile`), read by the caller.
    pub openstack_ca_certificate: Option<String>,
}

impl Facts {
    /// Reads the facts out of Terraform's outputs (`{"gluster_addresses": [...]}`).
    pub fn from_outputs(outputs: &BTreeMap<String, serde_json::Value>) -> Facts {
        let list = |key: &str| -> Vec<String> {
            outputs
                .get(key)
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        Facts { gluster_addresses: list("gluster_addresses"), openstack_ca_certificate: None }
    }
}

/// The platform steps for `config`: network, cloud integration, storage.
pub fn plan(config: &Config, facts: &Facts) -> Vec<Step> {
    let mut cloud = Vec::new();
    let title = match &config.provider {
        Provider::OpenStack(os) => {
            cloud.extend(openstack(config, os, facts));
            "OpenStack cloud controller manager and Cinder CSI driver"
        }
        Provider::Aws(settings) => {
            cloud.extend(aws(config, settings));
            "AWS cloud controller manager and EBS CSI driver"
        }
        Provider::VSphere(vs) => {
            cloud.extend(vsphere(config, vs));
            "vSphere cloud provider and CSI driver"
        }
        Provider::Local(_) => {
            cloud.extend(local_path());
            "local-path provisioner (existing machines have no cloud volumes)"
        }
    };
    let mut steps = vec![
        Step {
            name: "network",
            title: format!("pod network: flannel on {}", config.pod_cidr),
            objects: flannel(config),
        },
        Step { name: "cloud", title: title.to_string(), objects: cloud },
    ];
    let mut storage = vec![block_class(config)];
    let mut storage_title = format!("storage class {BLOCK_CLASS} (default)");
    if config.gluster_node_count > 0 {
        storage.extend(shared_storage(facts));
        storage_title.push_str(&format!(", {SHARED_CLASS} (ReadWriteMany)"));
    }
    steps.push(Step { name: "storage", title: storage_title, objects: storage });
    steps
}

/// A copy of `steps` whose Secrets show `<redacted>` instead of their values.
pub fn redacted(steps: &[Step]) -> Vec<Step> {
    let mut copy = steps.to_vec();
    for object in copy.iter_mut().flat_map(|s| s.objects.iter_mut()) {
        if let KubeObject::Secret(secret) = object {
            *secret = service_manager::output::redact_secret(secret);
        }
    }
    copy
}

/// The steps as multi-document YAML, secrets redacted.
pub fn yaml(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in redacted(steps) {
        out.push_str(&format!("# {}: {}\n", step.name, step.title));
        for object in &step.objects {
            out.push_str("---\n");
            out.push_str(&serde_yaml::to_string(object).expect("Kubernetes objects serialise"));
        }
    }
    out
}

// ---- building blocks -------------------------------------------------------------------

fn labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), app.to_string()),
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
    ])
}

fn meta(name: &str, namespace: Option<&str>, app: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels(app)),
        ..ObjectMeta::default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn namespace(name: &str, privileged: bool) -> KubeObject {
    let mut metadata = meta(name, None, name);
    if privileged {
        // Network and storage agents need host access: Pod Security "privileged".
        metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert("pod-security.kubernetes.io/enforce".into(), "privileged".into());
    }
    KubeObject::Namespace(Namespace { metadata, ..Namespace::default() })
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..PolicyRule::default()
    }
}

/// A service account with a cluster role of `rules` bound to it (three objects).
fn identity(namespace: &str, name: &str, app: &str, rules: Vec<PolicyRule>) -> Vec<KubeObject> {
    vec![
        KubeObject::ServiceAccount(ServiceAccount {
            metadata: meta(name, Some(namespace), app),
            ..ServiceAccount::default()
        }),
        KubeObject::ClusterRole(ClusterRole {
            metadata: meta(name, None, app),
            rules: Some(rules),
            ..ClusterRole::default()
        }),
        KubeObject::ClusterRoleBinding(ClusterRoleBinding {
            metadata: meta(name, None, app),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: name.into(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: name.into(),
                namespace: Some(namespace.into()),
                ..Subject::default()
            }]),
        }),
    ]
}

fn container(name: &str, image: &str, args: Vec<String>) -> Container {
    Container { name: name.into(), image: Some(image.into()), args: Some(args), ..Container::default() }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount { name: name.into(), mount_path: path.into(), ..VolumeMount::default() }
}

fn host_path(name: &str, path: &str, kind: &str) -> Volume {
    Volume {
        name: name.into(),
        host_path: Some(HostPathVolumeSource { path: path.into(), type_: Some(kind.into()) }),
        ..Volume::default()
    }
}

fn secret_volume(name: &str, secret: &str) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource { secret_name: Some(secret.into()), ..SecretVolumeSource::default() }),
        ..Volume::default()
    }
}

fn config_map_volume(name: &str, config_map: &str) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource { name: config_map.into(), ..ConfigMapVolumeSource::default() }),
        ..Volume::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..EnvVar::default() }
}

fn env_from_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..ObjectFieldSelector::default() }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn env_from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret.into(), key: key.into(), optional: Some(false) }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn privileged() -> Option<SecurityContext> {
    Some(SecurityContext { privileged: Some(true), ..SecurityContext::default() })
}

fn tolerate_everything() -> Option<Vec<Toleration>> {
    Some(vec![Toleration { operator: Some("Exists".into()), ..Toleration::default() }])
}

fn selector(app: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([("app.kubernetes.io/name".to_string(), app.to_string())])),
        ..LabelSelector::default()
    }
}

fn template(app: &str, spec: PodSpec) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(labels(app)), ..ObjectMeta::default() }),
        spec: Some(spec),
    }
}

fn daemon_set(namespace: &str, name: &str, app: &str, spec: PodSpec) -> KubeObject {
    KubeObject::DaemonSet(DaemonSet {
        metadata: meta(name, Some(namespace), app),
        spec: Some(DaemonSetSpec {
            selector: selector(app),
            template: template(app, spec),
            ..DaemonSetSpec::default()
        }),
        ..DaemonSet::default()
    })
}

fn deployment(namespace: &str, name: &str, app: &str, replicas: i32, spec: PodSpec) -> KubeObject {
    KubeObject::Deployment(Deployment {
        metadata: meta(name, Some(namespace), app),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: selector(app),
            template: template(app, spec),
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    })
}

/// A storage provisioner: one replica of `container` running as service account `app`, with
/// the one volume it works on.
fn provisioner_deployment(namespace: &str, app: &str, container: Container, volume: Volume) -> KubeObject {
    let spec = PodSpec {
        service_account_name: Some(app.into()),
        containers: vec![container],
        volumes: Some(vec![volume]),
        ..PodSpec::default()
    };
    deployment(namespace, app, app, 1, spec)
}

fn secret(namespace: &str, name: &str, app: &str, data: BTreeMap<String, String>) -> KubeObject {
    KubeObject::Secret(SecretObject {
        metadata: meta(name, Some(namespace), app),
        type_: Some("Opaque".into()),
        data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v.into_bytes()))).collect()),
        ..SecretObject::default()
    })
}

fn config_map(namespace: &str, name: &str, app: &str, data: BTreeMap<String, String>) -> KubeObject {
    KubeObject::ConfigMap(ConfigMap {
        metadata: meta(name, Some(namespace), app),
        data: Some(data),
        ..ConfigMap::default()
    })
}

/// A value quoted for the INI (gcfg) files the OpenStack and vSphere controllers read.
/// `value` as a gcfg (INI) quoted string: `\`, `"`, newline and tab escaped, so no value can
/// end the string or start a line of its own (other control characters, which bootstrap
/// refuses in its input anyway, are dropped: gcfg has no escape for them).
fn ini_quote(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---- network -----------------------------------------------------------------------------

fn flannel(config: &Config) -> Vec<KubeObject> {
    const NS: &str = "kube-flannel";
    const APP: &str = "flannel";
    let net_conf = serde_json::json!({
        "Network": config.pod_cidr.to_string(),
        "EnableNFTables": false,
        "Backend": {"Type": "vxlan"},
    });
    let cni_conf = serde_json::json!({
        "name": "cbr0", "cniVersion": "1.0.0",
        "plugins": [
            {"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    });
    let mut objects = vec![namespace(NS, true)];
    objects.extend(identity(
        NS,
        APP,
        APP,
        vec![
            rule(&[""], &["pods"], &["get"]),
            rule(&[""], &["nodes"], &["get", "list", "watch"]),
            rule(&[""], &["nodes/status"], &["patch"]),
        ],
    ));
    objects.push(config_map(
        NS,
        "kube-flannel-cfg",
        APP,
        BTreeMap::from([
            ("cni-conf.json".to_string(), serde_json::to_string_pretty(&cni_conf).expect("JSON serialises")),
            ("net-conf.json".to_string(), serde_json::to_string_pretty(&net_conf).expect("JSON serialises")),
        ]),
    ));
    let install_plugin = Container {
        command: Some(strings(&["cp"])),
        volume_mounts: Some(vec![mount("cni-plugin", "/opt/cni/bin")]),
        ..container("install-cni-plugin", images::FLANNEL_CNI, strings(&["-f", "/flannel", "/opt/cni/bin/flannel"]))
    };
    let install_config = Container {
        command: Some(strings(&["cp"])),
        volume_mounts: Some(vec![mount("cni", "/etc/cni/net.d"), mount("flannel-cfg", "/etc/kube-flannel/")]),
        ..container(
            "install-cni",
            images::FLANNEL,
            strings(&["-f", "/etc/kube-flannel/cni-conf.json", "/etc/cni/net.d/10-flannel.conflist"]),
        )
    };
    let flanneld = Container {
        command: Some(strings(&["/opt/bin/flanneld"])),
        env: Some(vec![
            env_from_field("POD_NAME", "metadata.name"),
            env_from_field("POD_NAMESPACE", "metadata.namespace"),
            env("EVENT_QUEUE_DEPTH", "5000"),
        ]),
        security_context: Some(SecurityContext {
            privileged: Some(false),
            capabilities: Some(k8s_openapi::api::core::v1::Capabilities {
                add: Some(strings(&["NET_ADMIN", "NET_RAW"])),
                ..Default::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            mount("run", "/run/flannel"),
            mount("flannel-cfg", "/etc/kube-flannel/"),
            mount("xtables-lock", "/run/xtables.lock"),
        ]),
        ..container("kube-flannel", images::FLANNEL, strings(&["--ip-masq", "--kube-subnet-mgr"]))
    };
    objects.push(daemon_set(
        NS,
        "kube-flannel-ds",
        APP,
        PodSpec {
            host_network: Some(true),
            priority_class_name: Some("system-node-critical".into()),
            service_account_name: Some(APP.into()),
            tolerations: tolerate_everything(),
            init_containers: Some(vec![install_plugin, install_config]),
            containers: vec![flanneld],
            volumes: Some(vec![
                host_path("run", "/run/flannel", "DirectoryOrCreate"),
                host_path("cni-plugin", "/opt/cni/bin", "DirectoryOrCreate"),
                host_path("cni", "/etc/cni/net.d", "DirectoryOrCreate"),
                config_map_volume("flannel-cfg", "kube-flannel-cfg"),
                host_path("xtables-lock", "/run/xtables.lock", "FileOrCreate"),
            ]),
            ..PodSpec::default()
        },
    ));
    objects
}

// ---- cloud controllers -----------------------------------------------------------------------

const KUBE_SYSTEM: &str = "kube-system";

/// A cloud controller manager on every control-plane node.
fn cloud_controller(
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

/// A CSI driver: its registration, a controller Deployment with the provisioner, attacher and
/// resizer sidecars, and a node DaemonSet with the registrar.
struct Csi<'a> {
    /// Driver name, e.g. `cinder.csi.openstack.org`.
    driver: &'a str,
    /// Short name for objects, e.g. `cinder-csi`.
    short: &'a str,
    /// Plugin image.
    image: &'a str,
    /// Plugin arguments in the controller and on nodes.
    controller_args: Vec<String>,
    node_args: Vec<String>,
    /// Plugin environment (beyond `CSI_ENDPOINT`).
    env: Vec<EnvVar>,
    /// A Secret mounted at a path in the plugin containers.
    config: Option<(&'a str, &'a str)>,
}

fn csi(spec: &Csi) -> Vec<KubeObject> {
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

fn openstack(config: &Config, os: &OpenStack, facts: &Facts) -> Vec<KubeObject> {
    // Keys as the cloud controller's gcfg parser names them (`tenant-…` for the project).
    let (domain_kind, project_kind) =
        (if os.domain.id().is_some() { "id" } else { "name" }, if os.project.id().is_some() { "id" } else { "name" });
    let domain = ini_quote(os.domain.value());
    let mut cloud_conf = format!(
        "[Global]\nauth-url={}\nusername={}\npassword={}\nuser-domain-{domain_kind}={domain}\ntenant-domain-{domain_kind}={domain}\ntenant-{project_kind}={}\nregion={}\n",
        ini_quote(&os.auth_url),
        ini_quote(&os.username),
        ini_quote(os.password.expose()),
        ini_quote(os.project.value()),
        ini_quote(&os.region),
    );
    let mut data = BTreeMap::new();
    if let Some(ca) = &facts.openstack_ca_certificate {
        cloud_conf.push_str("ca-file=\"/etc/config/ca.pem\"\n");
        data.insert("ca.pem".to_string(), ca.clone());
    }
    cloud_conf.push_str(&format!(
        "\n[LoadBalancer]\nsubnet-id={}\nnetwork-id={}\ncreate-monitor=true\n\n[BlockStorage]\nignore-volume-az=false\n",
        ini_quote(&os.subnet_id),
        ini_quote(&os.network_id),
    ));
    data.insert("cloud.conf".to_string(), cloud_conf);
    let mut objects = vec![secret(KUBE_SYSTEM, "cloud-config", "openstack-cloud-controller-manager", data)];
    objects.extend(cloud_controller(
        "openstack-cloud-controller-manager",
        images::OPENSTACK_CCM,
        strings(&[
            "/bin/openstack-cloud-controller-manager",
            "--cloud-config=/etc/config/cloud.conf",
            "--cloud-provider=openstack",
            "--use-service-account-credentials=false",
            "--bind-address=127.0.0.1",
        ]),
        vec![env("CLUSTER_NAME", &config.cluster_name)],
        Some(("cloud-config", "/etc/config")),
    ));
    objects.extend(csi(&Csi {
        driver: "cinder.csi.openstack.org",
        short: "cinder-csi",
        image: images::CINDER_CSI,
        controller_args: vec![
            "/bin/cinder-csi-plugin".into(),
            "--endpoint=$(CSI_ENDPOINT)".into(),
            "--cloud-config=/etc/config/cloud.conf".into(),
            format!("--cluster={}", config.cluster_name),
        ],
        node_args: strings(&[
            "/bin/cinder-csi-plugin",
            "--endpoint=$(CSI_ENDPOINT)",
            "--cloud-config=/etc/config/cloud.conf",
        ]),
        env: Vec::new(),
        config: Some(("cloud-config", "/etc/config")),
    }));
    objects
}

fn aws(config: &Config, aws: &Aws) -> Vec<KubeObject> {
    // Without keys in the properties file the instances' IAM role is used.
    let mut credentials = vec![env("AWS_REGION", &aws.region)];
    let mut objects = Vec::new();
    if let (Some(id), Some(key)) = (&aws.access_key, &aws.secret_key) {
        objects.push(secret(
            KUBE_SYSTEM,
            "aws-secret",
            "aws-cloud-controller-manager",
            BTreeMap::from([("key_id".to_string(), id.clone()), ("access_key".to_string(), key.expose().to_string())]),
        ));
        credentials.push(env_from_secret("AWS_ACCESS_KEY_ID", "aws-secret", "key_id"));
        credentials.push(env_from_secret("AWS_SECRET_ACCESS_KEY", "aws-secret", "access_key"));
    }
    objects.extend(cloud_controller(
        "aws-cloud-controller-manager",
        images::AWS_CCM,
        vec![
            "--cloud-provider=aws".into(),
            "--v=2".into(),
            format!("--cluster-name={}", config.cluster_name),
            "--configure-cloud-routes=false".into(),
        ],
        credentials.clone(),
        None,
    ));
    objects.extend(csi(&Csi {
        driver: "ebs.csi.aws.com",
        short: "ebs-csi",
        image: images::EBS_CSI,
        controller_args: vec![
            "controller".into(),
            "--endpoint=$(CSI_ENDPOINT)".into(),
            format!("--extra-tags=kubernetes.io/cluster/{}=owned", config.cluster_name),
            format!("--k8s-tag-cluster-id={}", config.cluster_name),
        ],
        node_args: strings(&["node", "--endpoint=$(CSI_ENDPOINT)"]),
        env: credentials,
        config: None,
    }));
    objects
}

fn vsphere(config: &Config, vs: &VSphere) -> Vec<KubeObject> {
    let datacenters = vs.datacenters.join(",");
    let cpi_conf = serde_yaml::to_string(&serde_json::json!({
        "global": {"port": 443, "insecureFlag": vs.insecure, "secretName": "vsphere-cloud-secret", "secretNamespace": KUBE_SYSTEM},
        "vcenter": {vs.server.clone(): {"server": vs.server, "datacenters": vs.datacenters}},
    }))
    .expect("YAML serialises");
    let csi_conf = format!(
        "[Global]\ncluster-id={}\n\n[VirtualCenter {}]\ninsecure-flag={}\nuser={}\npassword={}\nport=\"443\"\ndatacenters={}\n",
        ini_quote(&config.cluster_name),
        ini_quote(&vs.server),
        ini_quote(if vs.insecure { "true" } else { "false" }),
        ini_quote(&vs.username),
        ini_quote(vs.password.expose()),
        ini_quote(&datacenters),
    );
    let mut objects = vec![
        secret(
            KUBE_SYSTEM,
            "vsphere-cloud-secret",
            "vsphere-cloud-controller-manager",
            BTreeMap::from([
                (format!("{}.username", vs.server), vs.username.clone()),
                (format!("{}.password", vs.server), vs.password.expose().to_string()),
            ]),
        ),
        config_map(
            KUBE_SYSTEM,
            "vsphere-cloud-config",
            "vsphere-cloud-controller-manager",
            BTreeMap::from([("vsphere.conf".to_string(), cpi_conf)]),
        ),
        secret(
            KUBE_SYSTEM,
            "vsphere-config-secret",
            "vsphere-csi",
            BTreeMap::from([("csi-vsphere.conf".to_string(), csi_conf)]),
        ),
        // The driver reads its feature switches from this ConfigMap (`--fss-name`) and will
        // not start without it.
        config_map(
            KUBE_SYSTEM,
            "internal-feature-states.csi.vsphere.vmware.com",
            "vsphere-csi",
            [
                ("csi-migration", "true"),
                ("online-volume-extend", "true"),
                ("improved-csi-idempotency", "true"),
                ("block-volume-snapshot", "true"),
                ("max-pvscsi-targets-per-vm", "true"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ),
    ];
    let mut controller = cloud_controller(
        "vsphere-cloud-controller-manager",
        images::VSPHERE_CPI,
        strings(&["--cloud-provider=vsphere", "--v=2", "--cloud-config=/etc/cloud/vsphere.conf"]),
        Vec::new(),
        None,
    );
    // The CPI reads a ConfigMap (its credentials come from the Secret named inside it).
    if let Some(KubeObject::DaemonSet(set)) = controller.last_mut() {
        if let Some(pod) = set.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
            pod.volumes = Some(vec![config_map_volume("cloud-config", "vsphere-cloud-config")]);
            pod.containers[0].volume_mounts =
                Some(vec![VolumeMount { read_only: Some(true), ..mount("cloud-config", "/etc/cloud") }]);
        }
    }
    objects.extend(controller);
    objects.extend(csi(&Csi {
        driver: "csi.vsphere.vmware.com",
        short: "vsphere-csi",
        image: images::VSPHERE_CSI,
        controller_args: strings(&[
            "--fss-name=internal-feature-states.csi.vsphere.vmware.com",
            "--fss-namespace=kube-system",
        ]),
        node_args: strings(&[
            "--fss-name=internal-feature-states.csi.vsphere.vmware.com",
            "--fss-namespace=kube-system",
        ]),
        env: vec![
            env("VSPHERE_CSI_CONFIG", "/etc/cloud/csi-vsphere.conf"),
            env("X_CSI_MODE", "controller"),
            env_from_field("NODE_NAME", "spec.nodeName"),
        ],
        config: Some(("vsphere-config-secret", "/etc/cloud")),
    }));
    // On nodes the same plugin runs in node mode.
    if let Some(KubeObject::DaemonSet(set)) = objects.last_mut() {
        if let Some(plugin) = set
            .spec
            .as_mut()
            .and_then(|s| s.template.spec.as_mut())
            .and_then(|p| p.containers.iter_mut().find(|c| c.name == "plugin"))
        {
            for var in plugin.env.iter_mut().flatten() {
                if var.name == "X_CSI_MODE" {
                    var.value = Some("node".into());
                }
            }
        }
    }
    objects
}

fn local_path() -> Vec<KubeObject> {
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
    let helper = serde_yaml::to_string(&serde_json::json!({
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

// ---- storage ---------------------------------------------------------------------------------

fn block_class(config: &Config) -> KubeObject {
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
fn shared_storage(facts: &Facts) -> Vec<KubeObject> {
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

#[cfg(test)]
mod tests {
    #[test]
    fn ini_values_cannot_end_their_string_or_start_a_line() {
        assert_eq!(super::ini_quote("a\"b\\c\n[Global]\td\u{1b}"), r#""a\"b\\c\n[Global]\td""#);
    }
}
