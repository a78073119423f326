//! What a new cluster gets before any catalog service, as typed Kubernetes objects in apply
//! order: the pod network (flannel, as the seed's Stackato 4 cluster used), the cloud's
//! controller manager and CSI driver (or, on existing machines, a local-path provisioner),
//! and the storage classes: `block` (the default, ReadWriteOnce) and, with GlusterFS nodes,
//! `glusterfs` (ReadWriteMany, served by the GlusterFS pool's NFS-Ganesha export).
//!
//! Pure: configuration and what Terraform reported in, objects out. Secrets (cloud
//! credentials for the controllers) are planned as Secret objects; [`redacted`] hides their
//! values for printing.
//!
//! One module per add-on: `network` (flannel), `controller` (cloud controller managers),
//! `csi` (CSI drivers), `cloud` (each cloud's controller + CSI with its credentials),
//! `storage` (local-path provisioner, storage classes, the GlusterFS-backed class); `objects`
//! holds the building blocks they share.

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

mod cloud;
mod controller;
mod csi;
mod network;
mod objects;
mod storage;

use cloud::*;
use controller::*;
use csi::*;
use network::*;
use objects::*;
use storage::*;

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
            out.push_str(&serde_norway::to_string(object).expect("Kubernetes objects serialise"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn ini_values_cannot_end_their_string_or_start_a_line() {
        assert_eq!(super::ini_quote("a\"b\\c\n[Global]\td\u{1b}"), r#""a\"b\\c\n[Global]\td""#);
    }
}
