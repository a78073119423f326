//! Pod templates and the workloads that carry them: Deployments, StatefulSets, Jobs, and the
//! claims for shared volumes.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, ExecAction, HTTPGetAction, KeyToPath,
    LocalObjectReference, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodAffinityTerm,
    PodAntiAffinity, PodSpec, PodTemplateSpec, Probe as KubeProbe, ResourceRequirements, SecretVolumeSource,
    SecurityContext, TCPSocketAction, TopologySpreadConstraint, Volume as KubeVolume, VolumeMount as KubeVolumeMount,
    VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sdl::model::{AntiAffinity, Component, PortRef, Probe, Sdl, Spread, Volume};

use super::{network, Context, SECRETS_MOUNT, SECRET_NAME};
use crate::labels;

const ZONE_KEY: &str = "topology.kubernetes.io/zone";
const HOST_KEY: &str = "kubernetes.io/hostname";
const SECRETS_VOLUME: &str = "secret-parameters";

/// The capabilities Pod Security's `baseline` level lets a container add.
const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Whether a container of `c` is refused by Pod Security's `baseline` level: it is privileged
/// (`ALL`) or adds a capability outside baseline's list.
pub fn needs_privileged(c: &Component) -> bool {
    c.capabilities.iter().any(|cap| {
        let name = cap.strip_prefix("CAP_").unwrap_or(cap);
        name == "ALL" || !BASELINE_CAPABILITIES.contains(&name)
    })
}

/// A component runs as a StatefulSet when it mounts a per-instance (non-shared) volume or asks
/// for stable identity; otherwise as a Deployment.
pub fn is_stateful(sdl: &Sdl, c: &Component) -> bool {
    c.stable_identity || c.volume_mounts.iter().any(|m| sdl.volume(&m.volume_name).is_some_and(|v| !v.shared))
}

/// The ReadWriteMany claim for a shared volume.
pub fn shared_claim(ctx: &Context<'_>, volume: &Volume) -> PersistentVolumeClaim {
    let mut meta = ctx.meta(&volume.name, ctx.common_labels());
    meta.annotations = Some(filesystem_annotation(volume));
    PersistentVolumeClaim {
        metadata: meta,
        spec: Some(claim_spec(volume, "ReadWriteMany", ctx.input.profile.shared_storage_class.clone())),
        ..PersistentVolumeClaim::default()
    }
}

fn filesystem_annotation(volume: &Volume) -> BTreeMap<String, String> {
    BTreeMap::from([(labels::FILESYSTEM.to_string(), volume.filesystem.as_str().to_string())])
}

fn claim_spec(volume: &Volume, access_mode: &str, storage_class: Option<String>) -> PersistentVolumeClaimSpec {
    PersistentVolumeClaimSpec {
        access_modes: Some(vec![access_mode.to_string()]),
        storage_class_name: storage_class,
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([("storage".to_string(), Quantity(format!("{}Gi", volume.size_gb)))])),
            ..VolumeResourceRequirements::default()
        }),
        ..PersistentVolumeClaimSpec::default()
    }
}

/// Instances to run: the IDL's scaling, else the SDL minimum.
fn replicas(ctx: &Context<'_>, c: &Component) -> i32 {
    let count = ctx.input.idl.scaling_for(&c.name).map_or(c.min_instances, |s| s.min_instances);
    i32::try_from(count).unwrap_or(i32::MAX)
}

fn workload_meta(ctx: &Context<'_>, c: &Component) -> ObjectMeta {
    let mut meta = ctx.meta(&c.name, ctx.component_labels(&c.name));
    if !c.depends_on.is_empty() {
        meta.annotations = Some(BTreeMap::from([(labels::DEPENDS_ON.to_string(), c.depends_on.join(","))]));
    }
    meta
}

fn selector(ctx: &Context<'_>, c: &Component) -> LabelSelector {
    LabelSelector { match_labels: Some(ctx.selector_labels(&c.name)), ..LabelSelector::default() }
}

/// A Deployment for a component without per-instance state.
pub fn deployment(ctx: &Context<'_>, c: &Component) -> Deployment {
    Deployment {
        metadata: workload_meta(ctx, c),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas(ctx, c)),
            selector: selector(ctx, c),
            template: pod_template(ctx, c, false, replicas(ctx, c)),
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// A StatefulSet for a component with per-instance volumes or stable identity. Claims are
/// retained when the set is deleted or scaled down: deleting data is an explicit decision.
pub fn stateful_set(ctx: &Context<'_>, c: &Component) -> StatefulSet {
    let sdl = ctx.input.sdl;
    let claim_templates: Vec<PersistentVolumeClaim> = c
        .volume_mounts
        .iter()
        .filter_map(|m| sdl.volume(&m.volume_name))
        .filter(|v| !v.shared)
        .map(|v| PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(v.name.clone()),
                // A StatefulSet's claim templates cannot change: no label that an upgrade moves.
                labels: Some(ctx.stable_component_labels(&c.name)),
                annotations: Some(filesystem_annotation(v)),
                ..ObjectMeta::default()
            },
            spec: Some(claim_spec(v, "ReadWriteOnce", ctx.input.profile.block_storage_class.clone())),
            ..PersistentVolumeClaim::default()
        })
        .collect();
    StatefulSet {
        metadata: workload_meta(ctx, c),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas(ctx, c)),
            selector: selector(ctx, c),
            service_name: Some(network::headless_name(&c.name)),
            pod_management_policy: Some("Parallel".into()),
            template: pod_template(ctx, c, true, replicas(ctx, c)),
            volume_claim_templates: (!claim_templates.is_empty()).then_some(claim_templates),
            persistent_volume_claim_retention_policy: Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_deleted: Some("Retain".into()),
                when_scaled: Some("Retain".into()),
            }),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// A Job for a pre- or post-flight entry: `retry_count` retries (default 0), `timeout` as the
/// deadline.
pub fn job(ctx: &Context<'_>, j: &Component) -> Job {
    let mut template = pod_template(ctx, j, false, 1);
    if let Some(spec) = template.spec.as_mut() {
        spec.restart_policy = Some("Never".into());
    }
    Job {
        metadata: ctx.meta(&j.name, ctx.component_labels(&j.name)),
        spec: Some(JobSpec {
            backoff_limit: Some(i32::try_from(j.retry_count.unwrap_or(0)).unwrap_or(i32::MAX)),
            active_deadline_seconds: j.timeout.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
            template,
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

fn pod_template(ctx: &Context<'_>, c: &Component, stateful: bool, replicas: i32) -> PodTemplateSpec {
    let sdl = ctx.input.sdl;
    let mut pod_labels = ctx.component_labels(&c.name);
    for label in &c.labels {
        if let Some((k, v)) = label.split_once('=') {
            pod_labels.insert(k.to_string(), v.to_string());
        }
    }

    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    let secret_items: Vec<KeyToPath> = c
        .parameters
        .iter()
        .filter(|name| ctx.input.resolved.values.get(*name).is_some_and(|v| v.secret))
        .map(|name| KeyToPath { key: name.clone(), path: name.clone(), mode: None })
        .collect();
    if !secret_items.is_empty() {
        volumes.push(KubeVolume {
            name: SECRETS_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(SECRET_NAME.into()),
                items: Some(secret_items),
                // Readable by whatever user the image runs as: the files are root's, and
                // without an fsGroup a non-root process (Dex, the HSM server) is "other".
                default_mode: Some(0o444),
                ..SecretVolumeSource::default()
            }),
            ..KubeVolume::default()
        });
        mounts.push(KubeVolumeMount {
            name: SECRETS_VOLUME.into(),
            mount_path: SECRETS_MOUNT.into(),
            read_only: Some(true),
            ..KubeVolumeMount::default()
        });
    }
    for m in &c.volume_mounts {
        let Some(volume) = sdl.volume(&m.volume_name) else {
            continue;
        };
        mounts.push(KubeVolumeMount {
            name: volume.name.clone(),
            mount_path: m.mountpoint.clone(),
            ..KubeVolumeMount::default()
        });
        if volume.shared {
            volumes.push(KubeVolume {
                name: volume.name.clone(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: volume.name.clone(),
                    read_only: None,
                }),
                ..KubeVolume::default()
            });
        }
    }

    let profile = ctx.input.profile;
    let arch = if c.platform.as_deref() == Some("linux-aarch64") { "arm64" } else { "amd64" };
    let mut node_selector = BTreeMap::from([
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), arch.to_string()),
    ]);
    let placement = c.placement.clone().unwrap_or_default();
    node_selector.extend(placement.node_selector.clone());

    let spread_key = match placement.spread {
        Some(Spread::Zone) => Some(ZONE_KEY),
        Some(Spread::Node) => Some(HOST_KEY),
        Some(Spread::None) => None,
        None if replicas > 1 => Some(ZONE_KEY),
        None => None,
    };
    let topology_spread_constraints = spread_key.map(|key| {
        vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: key.into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(selector(ctx, c)),
            ..TopologySpreadConstraint::default()
        }]
    });

    let zone_affinity = (!profile.zones.is_empty()).then(|| NodeAffinity {
        required_during_scheduling_ignored_during_execution: Some(NodeSelector {
            node_selector_terms: vec![NodeSelectorTerm {
                match_expressions: Some(vec![NodeSelectorRequirement {
                    key: ZONE_KEY.into(),
                    operator: "In".into(),
                    values: Some(profile.zones.clone()),
                }]),
                ..NodeSelectorTerm::default()
            }],
        }),
        ..NodeAffinity::default()
    });
    let anti_term = || PodAffinityTerm {
        label_selector: Some(selector(ctx, c)),
        topology_key: HOST_KEY.into(),
        ..PodAffinityTerm::default()
    };
    let pod_anti_affinity = match placement.anti_affinity {
        Some(AntiAffinity::Required) => Some(PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![anti_term()]),
            ..PodAntiAffinity::default()
        }),
        Some(AntiAffinity::Preferred) => Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
                weight: 100,
                pod_affinity_term: anti_term(),
            }]),
            ..PodAntiAffinity::default()
        }),
        None => None,
    };
    let affinity = (zone_affinity.is_some() || pod_anti_affinity.is_some()).then(|| Affinity {
        node_affinity: zone_affinity,
        pod_anti_affinity,
        ..Affinity::default()
    });

    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(pod_labels), ..ObjectMeta::default() }),
        spec: Some(PodSpec {
            containers: vec![container(ctx, c, stateful, mounts)],
            volumes: (!volumes.is_empty()).then_some(volumes),
            node_selector: Some(node_selector),
            affinity,
            topology_spread_constraints,
            enable_service_links: Some(false),
            // API credentials only for a component given a ServiceAccount of its own.
            service_account_name: c.service_account.as_ref().map(|_| c.name.clone()),
            automount_service_account_token: Some(c.service_account.is_some()),
            image_pull_secrets: (!profile.image_pull_secrets.is_empty())
                .then(|| profile.image_pull_secrets.iter().map(|n| LocalObjectReference { name: n.clone() }).collect()),
            ..PodSpec::default()
        }),
    }
}

fn container(ctx: &Context<'_>, c: &Component, stateful: bool, mounts: Vec<KubeVolumeMount>) -> Container {
    let resolved = ctx.input.resolved;
    let literal = |name: &str, value: String| EnvVar { name: name.into(), value: Some(value), value_from: None };
    let field = |name: &str, path: &str| EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), api_version: None }),
            ..EnvVarSource::default()
        }),
    };
    let mut env = vec![
        literal("HCP_INSTANCE_ID", ctx.namespace.to_string()),
        literal("HCP_COMPONENT_NAME", c.name.clone()),
        literal("HCP_SERVICE_DOMAIN_SUFFIX", ctx.service_domain_suffix.clone()),
        field("HCP_NODE_IP", "status.hostIP"),
    ];
    if stateful {
        env.push(field("HCP_COMPONENT_INDEX", "metadata.labels['apps.kubernetes.io/pod-index']"));
    }
    for name in &c.parameters {
        if let Some(value) = resolved.values.get(name).filter(|v| !v.secret) {
            env.push(literal(name, value.value.clone()));
        }
    }

    let mut seen = Vec::new();
    let ports: Vec<ContainerPort> = c
        .service_ports
        .iter()
        .filter(|p| {
            let key = (p.target_port, p.protocol);
            let fresh = !seen.contains(&key);
            seen.push(key);
            fresh
        })
        .map(|p| ContainerPort {
            name: Some(p.name.clone()),
            container_port: p.target_port as i32,
            protocol: Some(p.protocol.as_str().into()),
            ..ContainerPort::default()
        })
        .collect();

    let mut requests = BTreeMap::from([("memory".to_string(), Quantity(format!("{}Mi", c.min_ram_mb)))]);
    let millicores = (c.min_vcpu * 1000.0).round() as u64;
    if millicores > 0 {
        requests.insert("cpu".into(), Quantity(format!("{millicores}m")));
    }
    if let Some(disk) = c.min_disk_gb {
        requests.insert("ephemeral-storage".into(), Quantity(format!("{disk}Gi")));
    }
    let mut limits = BTreeMap::new();
    if let Some(max) = c.max_ram_mb {
        limits.insert("memory".to_string(), Quantity(format!("{max}Mi")));
    }
    if let Some(max) = c.max_vcpu {
        limits.insert("cpu".to_string(), Quantity(format!("{}m", (max * 1000.0).round() as u64)));
    }

    let privileged = c.capabilities.iter().any(|cap| cap == "ALL" || cap == "CAP_ALL");
    let security_context = if privileged {
        Some(SecurityContext { privileged: Some(true), ..SecurityContext::default() })
    } else if !c.capabilities.is_empty() {
        Some(SecurityContext {
            capabilities: Some(Capabilities {
                add: Some(
                    c.capabilities.iter().map(|cap| cap.strip_prefix("CAP_").unwrap_or(cap).to_string()).collect(),
                ),
                drop: None,
            }),
            ..SecurityContext::default()
        })
    } else {
        None
    };

    let probes = c.probes.clone().unwrap_or_default();
    Container {
        name: c.name.clone(),
        image: c.image_reference(ctx.input.profile.registry.as_deref()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: (!c.entrypoint.is_empty()).then(|| c.entrypoint.clone()),
        env: Some(env),
        ports: (!ports.is_empty()).then_some(ports),
        resources: Some(ResourceRequirements {
            requests: Some(requests),
            limits: (!limits.is_empty()).then_some(limits),
            ..ResourceRequirements::default()
        }),
        security_context,
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        readiness_probe: probes.readiness.as_ref().map(probe),
        liveness_probe: probes.liveness.as_ref().map(probe),
        startup_probe: probes.startup.as_ref().map(probe),
        ..Container::default()
    }
}

fn port_ref(port: &PortRef) -> IntOrString {
    match port {
        PortRef::Number(n) => IntOrString::Int(*n as i32),
        PortRef::Name(name) => IntOrString::String(name.clone()),
    }
}

fn probe(p: &Probe) -> KubeProbe {
    let int = |v: Option<u32>| v.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    KubeProbe {
        http_get: p.http.as_ref().map(|h| HTTPGetAction {
            path: Some(h.path.clone()),
            port: port_ref(&h.port),
            scheme: h.scheme.clone(),
            ..HTTPGetAction::default()
        }),
        tcp_socket: p.tcp.as_ref().map(|t| TCPSocketAction { port: port_ref(&t.port), host: None }),
        exec: p.exec.as_ref().map(|command| ExecAction { command: Some(command.clone()) }),
        initial_delay_seconds: int(p.initial_delay_seconds),
        period_seconds: int(p.period_seconds),
        timeout_seconds: int(p.timeout_seconds),
        failure_threshold: int(p.failure_threshold),
        ..KubeProbe::default()
    }
}
