//! Building blocks of the platform's objects: metadata and labels, RBAC identities,
//! containers, volumes, workloads, Secrets and ConfigMaps.

use super::*;

pub(super) fn labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), app.to_string()),
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
    ])
}

pub(super) fn meta(name: &str, namespace: Option<&str>, app: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels(app)),
        ..ObjectMeta::default()
    }
}

pub(super) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

pub(super) fn namespace(name: &str, privileged: bool) -> KubeObject {
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

pub(super) fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..PolicyRule::default()
    }
}

/// A service account with a cluster role of `rules` bound to it (three objects).
pub(super) fn identity(namespace: &str, name: &str, app: &str, rules: Vec<PolicyRule>) -> Vec<KubeObject> {
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

pub(super) fn container(name: &str, image: &str, args: Vec<String>) -> Container {
    Container { name: name.into(), image: Some(image.into()), args: Some(args), ..Container::default() }
}

pub(super) fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount { name: name.into(), mount_path: path.into(), ..VolumeMount::default() }
}

pub(super) fn host_path(name: &str, path: &str, kind: &str) -> Volume {
    Volume {
        name: name.into(),
        host_path: Some(HostPathVolumeSource { path: path.into(), type_: Some(kind.into()) }),
        ..Volume::default()
    }
}

pub(super) fn secret_volume(name: &str, secret: &str) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource { secret_name: Some(secret.into()), ..SecretVolumeSource::default() }),
        ..Volume::default()
    }
}

pub(super) fn config_map_volume(name: &str, config_map: &str) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource { name: config_map.into(), ..ConfigMapVolumeSource::default() }),
        ..Volume::default()
    }
}

pub(super) fn env(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..EnvVar::default() }
}

pub(super) fn env_from_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..ObjectFieldSelector::default() }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

pub(super) fn env_from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret.into(), key: key.into(), optional: Some(false) }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

pub(super) fn privileged() -> Option<SecurityContext> {
    Some(SecurityContext { privileged: Some(true), ..SecurityContext::default() })
}

pub(super) fn tolerate_everything() -> Option<Vec<Toleration>> {
    Some(vec![Toleration { operator: Some("Exists".into()), ..Toleration::default() }])
}

pub(super) fn selector(app: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([("app.kubernetes.io/name".to_string(), app.to_string())])),
        ..LabelSelector::default()
    }
}

pub(super) fn template(app: &str, spec: PodSpec) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(labels(app)), ..ObjectMeta::default() }),
        spec: Some(spec),
    }
}

pub(super) fn daemon_set(namespace: &str, name: &str, app: &str, spec: PodSpec) -> KubeObject {
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

pub(super) fn deployment(namespace: &str, name: &str, app: &str, replicas: i32, spec: PodSpec) -> KubeObject {
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
pub(super) fn provisioner_deployment(namespace: &str, app: &str, container: Container, volume: Volume) -> KubeObject {
    let spec = PodSpec {
        service_account_name: Some(app.into()),
        containers: vec![container],
        volumes: Some(vec![volume]),
        ..PodSpec::default()
    };
    deployment(namespace, app, app, 1, spec)
}

pub(super) fn secret(namespace: &str, name: &str, app: &str, data: BTreeMap<String, String>) -> KubeObject {
    KubeObject::Secret(SecretObject {
        metadata: meta(name, Some(namespace), app),
        type_: Some("Opaque".into()),
        data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v.into_bytes()))).collect()),
        ..SecretObject::default()
    })
}

pub(super) fn config_map(namespace: &str, name: &str, app: &str, data: BTreeMap<String, String>) -> KubeObject {
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
pub(super) fn ini_quote(value: &str) -> String {
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
