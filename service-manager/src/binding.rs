//! Bindings, planned (pure): the binding Secret of one binding in the Service Binding for
//! Kubernetes layout, the bind and unbind Jobs the SDL names, the short-lived copy of the
//! Secret an unbind Job reads, and a binding's state as its Secret and Jobs show it. The
//! cluster calls are in [`crate::actions::binding`]; `docs/bindings.md` has the lifecycle.
//!
//! Binding objects carry `app.kubernetes.io/managed-by=`[`MANAGER`], not `hsm`: the
//! converger's watches select `hsm`'s label, so bindings never trigger, disturb or get pruned
//! by an instance's reconcile.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapKeySelector, Container, EnvVar, EnvVarSource, KeyToPath, PodSpec, PodTemplateSpec, ResourceRequirements,
    Secret, SecretKeySelector, SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use sdl::model::{Bindings, Component, Sdl};
use sdl::template;
use serde::{Deserialize, Serialize};

use crate::labels;
use crate::plan::{CONFIG_MAP_NAME, SECRETS_MOUNT, SECRET_NAME};
use crate::readiness;

/// `app.kubernetes.io/managed-by` of binding objects (not `hsm`, so the converger ignores them).
pub const MANAGER: &str = "hsm-binding";
/// Label: the binding id.
pub const BINDING_LABEL: &str = "hsm.stratus.io/binding";
/// Longest binding id (Job names `hsm-unbind-<id>` stay within 63 characters).
pub const ID_MAX: usize = 50;
/// Seconds a finished unbind Job (and with it the copy Secret it owns) is kept.
pub const UNBIND_TTL_SECONDS: i32 = 300;
/// The Secret type prefix: `servicebinding.io/<type>`.
pub const SECRET_TYPE_PREFIX: &str = "servicebinding.io/";

/// Where a bind or unbind job's container finds the binding variables.
const BINDING_ENV: [&str; 2] = ["BINDING_USERNAME", "BINDING_PASSWORD"];

/// The state of a binding, from its Jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BindingState {
    /// The bind Job runs.
    Creating,
    /// The Secret is there and the bind Job (if any) completed.
    Ready,
    /// The bind (or unbind) Job failed.
    Failed {
        /// Why.
        message: String,
    },
    /// The Secret is gone and the unbind Job runs.
    Deleting,
}

impl BindingState {
    /// The state's name as listings show it.
    pub fn name(&self) -> &'static str {
        match self {
            BindingState::Creating => "creating",
            BindingState::Ready => "ready",
            BindingState::Failed { .. } => "failed",
            BindingState::Deleting => "deleting",
        }
    }
}

/// A binding without its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingSummary {
    /// Binding id.
    pub id: String,
    /// Instance id.
    pub instance_id: String,
    /// State (flattened: `state`, and `message` when failed).
    #[serde(flatten)]
    pub state: BindingState,
    /// The binding Secret's name (in the instance's namespace).
    pub secret_name: String,
    /// When the binding was created (RFC 3339).
    pub created: Option<String>,
    /// Labels given with the request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations given with the request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What planning a binding needs.
#[derive(Debug, Clone)]
pub struct BindingInput<'a> {
    /// Instance id (its namespace).
    pub instance_id: &'a str,
    /// The SDL in force (valid, with `bindings`).
    pub sdl: &'a Sdl,
    /// The instance's parameter values, secret ones included.
    pub parameters: &'a BTreeMap<String, String>,
    /// Binding id (checked with [`id_problem`]).
    pub binding_id: &'a str,
    /// The generated password (used only when the SDL asks for per-binding users).
    pub password: &'a str,
    /// The cluster's DNS domain, e.g. `cluster.local`.
    pub cluster_domain: &'a str,
    /// The binding Secret's owner (the instance's `Instance`), if any.
    pub owner: Option<OwnerReference>,
    /// Extra labels (checked by the caller).
    pub labels: &'a BTreeMap<String, String>,
    /// Extra annotations.
    pub annotations: &'a BTreeMap<String, String>,
}

/// Why a binding cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    /// The SDL has no `bindings` section.
    #[error("service {0} is not bindable (its SDL has no bindings section)")]
    NotBindable(String),
    /// A credential template names a parameter the instance has no value for.
    #[error("bindings.credentials.{key}: parameter \"{parameter}\" has no value on this instance")]
    NoValue {
        /// The credential key.
        key: String,
        /// The parameter.
        parameter: String,
    },
    /// The endpoint's connector name cannot be resolved.
    #[error("bindings.endpoint: {0}")]
    Endpoint(String),
}

/// Why `id` is no binding id, if it is not: a DNS label of at most [`ID_MAX`] characters.
pub fn id_problem(id: &str) -> Option<String> {
    if let Some(problem) = sdl::names::dns_label(id) {
        return Some(problem);
    }
    (id.len() > ID_MAX).then(|| format!("\"{id}\" is {} characters long; at most {ID_MAX} are allowed", id.len()))
}

/// A new binding id: a random UUID (version 4, lowercase), as OSB platforms make them.
pub fn new_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Name of the binding Secret of binding `id`.
pub fn secret_name(id: &str) -> String {
    format!("binding-{id}")
}

/// Name of the bind Job of binding `id`.
pub fn bind_job_name(id: &str) -> String {
    format!("hsm-bind-{id}")
}

/// Name of the unbind Job of binding `id`, and of the copy Secret it reads.
pub fn unbind_job_name(id: &str) -> String {
    format!("hsm-unbind-{id}")
}

/// Labels of every object of binding `id` of instance `instance`.
pub fn object_labels(instance: &str, id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::MANAGED_BY.to_string(), MANAGER.to_string()),
        (labels::INSTANCE.to_string(), instance.to_string()),
        (BINDING_LABEL.to_string(), id.to_string()),
    ])
}

/// The label selector of every binding object of `instance`.
pub fn selector(instance: &str) -> String {
    format!("{}={MANAGER},{}={instance}", labels::MANAGED_BY, labels::INSTANCE)
}

/// The binding's variables (`BINDING_*`) and its host and port.
struct Endpoint {
    host: String,
    port: String,
}

fn endpoint(input: &BindingInput<'_>, bindings: &Bindings) -> Result<Endpoint, BindingError> {
    let ns = input.instance_id;
    let component = input
        .sdl
        .component(&bindings.endpoint.component)
        .ok_or_else(|| BindingError::Endpoint(format!("no component {}", bindings.endpoint.component)))?;
    let port = component
        .service_ports
        .iter()
        .find(|p| p.name == bindings.endpoint.port)
        .ok_or_else(|| BindingError::Endpoint(format!("no port {}", bindings.endpoint.port)))?;
    let host = match &component.external_name {
        Some(external) => {
            let suffix = format!("{ns}.svc.{}", input.cluster_domain);
            template::substitute(external, |n| match n {
                "HCP_INSTANCE_ID" => Some(ns),
                "HCP_SERVICE_DOMAIN_SUFFIX" => Some(suffix.as_str()),
                other => input.parameters.get(other).map(String::as_str),
            })
            .map_err(|missing| BindingError::Endpoint(format!("parameter \"{missing}\" has no value")))?
        }
        None if port.public => format!("{}.{ns}.svc", component.name),
        None => format!("{}.{ns}.svc", crate::plan::network_internal_name(&component.name)),
    };
    Ok(Endpoint { host, port: port.source_port.to_string() })
}

/// The binding Secret: `type`, `provider`, `host`, `port`, with per-binding users `username`
/// and `password`, and the SDL's `credentials` rendered. Its Secret type is
/// `servicebinding.io/<type>`.
pub fn secret(input: &BindingInput<'_>) -> Result<Secret, BindingError> {
    let sdl = input.sdl;
    let bindings = sdl.bindings.as_ref().ok_or_else(|| BindingError::NotBindable(sdl.name.clone()))?;
    let endpoint = endpoint(input, bindings)?;
    let username = bindings.user.as_ref().map(|u| sdl::generate::binding_username(input.binding_id, u.max_length));
    let suffix = format!("{}.svc.{}", input.instance_id, input.cluster_domain);
    let mut variables: BTreeMap<&str, &str> = BTreeMap::from([
        ("BINDING_ID", input.binding_id),
        ("BINDING_HOST", endpoint.host.as_str()),
        ("BINDING_PORT", endpoint.port.as_str()),
        ("HCP_INSTANCE_ID", input.instance_id),
        ("HCP_SERVICE_DOMAIN_SUFFIX", suffix.as_str()),
    ]);
    let mut data = BTreeMap::from([
        ("type".to_string(), bindings.binding_type.clone()),
        ("provider".to_string(), bindings.provider.clone().unwrap_or_else(|| sdl.vendor.clone())),
        ("host".to_string(), endpoint.host.clone()),
        ("port".to_string(), endpoint.port.clone()),
    ]);
    if let Some(username) = &username {
        variables.insert("BINDING_USERNAME", username);
        variables.insert("BINDING_PASSWORD", input.password);
        data.insert("username".into(), username.clone());
        data.insert("password".into(), input.password.to_string());
    }
    for (key, text) in &bindings.credentials {
        let value = template::substitute(text, |n| {
            variables.get(n).copied().or_else(|| input.parameters.get(n).map(String::as_str))
        })
        .map_err(|parameter| BindingError::NoValue { key: key.clone(), parameter })?;
        data.insert(key.clone(), value);
    }
    let mut labels = input.labels.clone();
    labels.extend(object_labels(input.instance_id, input.binding_id));
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(input.binding_id)),
            namespace: Some(input.instance_id.to_string()),
            labels: Some(labels),
            annotations: (!input.annotations.is_empty()).then(|| input.annotations.clone()),
            owner_references: input.owner.clone().map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        type_: Some(format!("{SECRET_TYPE_PREFIX}{}", bindings.binding_type)),
        data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v.into_bytes()))).collect()),
        ..Secret::default()
    })
}

/// The bind Job of the binding whose Secret is `binding_secret` (owned by it, so it goes with
/// it); `None` when the SDL names none.
pub fn bind_job(sdl: &Sdl, binding_secret: &Secret, owner: OwnerReference) -> Option<Job> {
    let bindings = sdl.bindings.as_ref()?;
    let job = bindings.bind_job.as_ref()?;
    let id = binding_id(binding_secret)?;
    let mut built = job_for(sdl, job, binding_secret, &bind_job_name(&id), &secret_name(&id), "bind");
    built.metadata.owner_references = Some(vec![owner]);
    Some(built)
}

/// The unbind Job of the binding whose Secret is `binding_secret`, reading the copy Secret
/// named `copy` ([`unbind_secret`]); `None` when the SDL names none.
pub fn unbind_job(sdl: &Sdl, binding_secret: &Secret, copy: &str) -> Option<Job> {
    let bindings = sdl.bindings.as_ref()?;
    let job = bindings.unbind_job.as_ref()?;
    let id = binding_id(binding_secret)?;
    let mut built = job_for(sdl, job, binding_secret, &unbind_job_name(&id), copy, "unbind");
    if let Some(spec) = built.spec.as_mut() {
        spec.ttl_seconds_after_finished = Some(UNBIND_TTL_SECONDS);
    }
    Some(built)
}

/// The name of an unbind Job's copy Secret: the Job's name and `suffix` (random, so that a
/// copy of an earlier unbind the garbage collector has not removed yet is never taken for it).
pub fn copy_name(id: &str, suffix: &str) -> String {
    format!("{}-{suffix}", unbind_job_name(id))
}

/// The Secret an unbind Job reads its credentials from (its `BINDING_PASSWORD`'s
/// `secretKeyRef`), if it names one.
pub fn copy_of(job: &Job) -> Option<String> {
    let spec = job.spec.as_ref()?.template.spec.as_ref()?;
    spec.containers.iter().flat_map(|c| c.env.iter().flatten()).find_map(|e| {
        let reference = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
        (e.name == "BINDING_PASSWORD").then(|| reference.name.clone())
    })
}

/// The copy of `binding_secret` named `copy` that the unbind Job reads, owned by that Job
/// (collected with it).
pub fn unbind_secret(binding_secret: &Secret, job_owner: OwnerReference, copy: &str) -> Secret {
    let mut meta = binding_secret.metadata.clone();
    meta.name = Some(copy.to_string());
    meta.owner_references = Some(vec![job_owner]);
    meta.resource_version = None;
    meta.uid = None;
    meta.creation_timestamp = None;
    meta.managed_fields = None;
    meta.generation = None;
    Secret {
        metadata: meta,
        type_: binding_secret.type_.clone(),
        data: binding_secret.data.clone(),
        ..Secret::default()
    }
}

/// An owner reference to `object` (which the API server has given a uid).
pub fn owner_of<K: kube::Resource<DynamicType = ()>>(object: &K, controller: bool) -> Option<OwnerReference> {
    let meta = object.meta();
    Some(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: meta.name.clone()?,
        uid: meta.uid.clone()?,
        controller: Some(controller),
        block_owner_deletion: None,
    })
}

/// The binding id a binding object carries in its labels.
pub fn binding_id(object: &impl kube::Resource) -> Option<String> {
    object.meta().labels.as_ref().and_then(|l| l.get(BINDING_LABEL)).cloned()
}

fn job_for(sdl: &Sdl, job: &Component, binding_secret: &Secret, name: &str, secret: &str, role: &str) -> Job {
    let meta = &binding_secret.metadata;
    let instance = meta.namespace.clone().unwrap_or_default();
    let data = binding_secret.data.clone().unwrap_or_default();
    let text = |key: &str| data.get(key).map(|v| String::from_utf8_lossy(&v.0).into_owned()).unwrap_or_default();
    let literal = |name: &str, value: String| EnvVar { name: name.into(), value: Some(value), value_from: None };
    let id = binding_id(binding_secret).unwrap_or_default();
    let mut env = vec![
        literal("HCP_INSTANCE_ID", instance.clone()),
        literal("BINDING_ID", id.clone()),
        literal("BINDING_HOST", text("host")),
        literal("BINDING_PORT", text("port")),
    ];
    let with_user = sdl.bindings.as_ref().is_some_and(|b| b.user.is_some());
    if with_user {
        for (variable, key) in BINDING_ENV.iter().zip(["username", "password"]) {
            env.push(EnvVar {
                name: variable.to_string(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: secret.to_string(),
                        key: key.to_string(),
                        optional: Some(false),
                    }),
                    ..EnvVarSource::default()
                }),
            });
        }
    }
    let mut secret_items = Vec::new();
    for parameter in &job.parameters {
        match sdl.parameter(parameter) {
            Some(p) if p.secret => {
                secret_items.push(KeyToPath { key: parameter.clone(), path: parameter.clone(), mode: None })
            }
            Some(_) => env.push(EnvVar {
                name: parameter.clone(),
                value: None,
                value_from: Some(EnvVarSource {
                    config_map_key_ref: Some(ConfigMapKeySelector {
                        name: CONFIG_MAP_NAME.into(),
                        key: parameter.clone(),
                        optional: Some(true),
                    }),
                    ..EnvVarSource::default()
                }),
            }),
            None => {}
        }
    }
    let (volumes, mounts) = if secret_items.is_empty() {
        (None, None)
    } else {
        (
            Some(vec![Volume {
                name: "secret-parameters".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(SECRET_NAME.into()),
                    items: Some(secret_items),
                    default_mode: Some(0o440),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            }]),
            Some(vec![VolumeMount {
                name: "secret-parameters".into(),
                mount_path: SECRETS_MOUNT.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            }]),
        )
    };
    let mut labels = object_labels(&instance, &id);
    labels.insert(labels::COMPONENT.to_string(), role.to_string());
    let mut requests = BTreeMap::from([("memory".to_string(), Quantity(format!("{}Mi", job.min_ram_mb.max(16))))]);
    let millicores = (job.min_vcpu * 1000.0).round() as u64;
    if millicores > 0 {
        requests.insert("cpu".into(), Quantity(format!("{millicores}m")));
    }
    let limits = job.max_ram_mb.map(|max| BTreeMap::from([("memory".to_string(), Quantity(format!("{max}Mi")))]));
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(instance.clone()),
            labels: Some(labels.clone()),
            annotations: meta.annotations.clone(),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(i32::try_from(job.retry_count.unwrap_or(0)).unwrap_or(i32::MAX)),
            active_deadline_seconds: job.timeout.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: job.name.clone(),
                        image: job.image_reference(None),
                        image_pull_policy: Some("IfNotPresent".into()),
                        command: (!job.entrypoint.is_empty()).then(|| job.entrypoint.clone()),
                        env: Some(env),
                        resources: Some(ResourceRequirements {
                            requests: Some(requests),
                            limits,
                            ..ResourceRequirements::default()
                        }),
                        volume_mounts: mounts,
                        ..Container::default()
                    }],
                    volumes,
                    enable_service_links: Some(false),
                    automount_service_account_token: Some(false),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// The labels and annotations a request gave, without Stratus's own.
fn given(meta: &ObjectMeta) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut labels = meta.labels.clone().unwrap_or_default();
    for key in [labels::MANAGED_BY, labels::INSTANCE, BINDING_LABEL, labels::COMPONENT] {
        labels.remove(key);
    }
    (labels, meta.annotations.clone().unwrap_or_default())
}

/// The summary of binding `id` of `instance` from its Secret and Jobs as read; `None` when
/// there is no binding (no Secret, and no unbind Job still running).
pub fn summary(
    instance: &str,
    id: &str,
    secret: Option<&Secret>,
    bind: Option<&Job>,
    unbind: Option<&Job>,
) -> Option<BindingSummary> {
    let created = |meta: &ObjectMeta| meta.creation_timestamp.as_ref().map(|t| t.0.to_string());
    let make = |meta: &ObjectMeta, state: BindingState| {
        let (labels, annotations) = given(meta);
        BindingSummary {
            id: id.to_string(),
            instance_id: instance.to_string(),
            state,
            secret_name: secret_name(id),
            created: created(meta),
            labels,
            annotations,
        }
    };
    if let Some(secret) = secret {
        let state = match bind.map(readiness::job) {
            None => BindingState::Ready,
            Some(r) if r.done => BindingState::Ready,
            Some(r) => match r.failed {
                Some(message) => BindingState::Failed { message: format!("bind job failed: {message}") },
                None => BindingState::Creating,
            },
        };
        return Some(make(&secret.metadata, state));
    }
    let unbind = unbind?;
    let r = readiness::job(unbind);
    if r.done {
        return None;
    }
    let state = match r.failed {
        Some(message) => BindingState::Failed { message: format!("unbind job failed: {message}") },
        None => BindingState::Deleting,
    };
    Some(make(&unbind.metadata, state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};

    fn connector() -> Sdl {
        let text = r#"{"name": "rds", "vendor": "hpe", "product_version": "1", "sdl_version": "1.0.0",
            "components": [{"name": "db", "external_name": "${HOST}",
                "service_ports": [{"name": "sql", "source_port": 3306, "target_port": 3306}],
                "parameters": ["HOST", "PORT", "password"]}],
            "parameters": [{"name": "HOST", "required": true}, {"name": "PORT", "default": "3307"},
                {"name": "password", "secret": true, "required": true}, {"name": "DB"}],
            "bindings": {"type": "mysql", "endpoint": {"component": "db", "port": "sql"},
                "credentials": {"port": "${PORT}", "password": "${password}", "database": "${DB}"}}}"#;
        let sdl: Sdl = sdl::parse::parse_document(text, sdl::parse::Syntax::Json, "test").unwrap();
        assert_eq!(sdl::validate::validate_sdl(&sdl), vec![]);
        sdl
    }

    fn input<'a>(
        sdl: &'a Sdl,
        parameters: &'a BTreeMap<String, String>,
        none: &'a BTreeMap<String, String>,
    ) -> BindingInput<'a> {
        BindingInput {
            instance_id: "ext",
            sdl,
            parameters,
            binding_id: "b1",
            password: "unused",
            cluster_domain: "cluster.local",
            owner: None,
            labels: none,
            annotations: none,
        }
    }

    fn data(secret: &Secret) -> BTreeMap<String, String> {
        secret.data.clone().unwrap().into_iter().map(|(k, v)| (k, String::from_utf8(v.0).unwrap())).collect()
    }

    #[test]
    fn a_connector_binding_is_its_configured_endpoint_and_account() {
        let sdl = connector();
        let none = BTreeMap::new();
        let mut parameters = BTreeMap::from([
            ("HOST".to_string(), "db.example.com".to_string()),
            ("PORT".to_string(), "3307".to_string()),
            ("password".to_string(), "s3cret".to_string()),
        ]);
        // A template naming a parameter without a value is an error naming the key.
        let missing = secret(&input(&sdl, &parameters, &none)).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "bindings.credentials.database: parameter \"DB\" has no value on this instance"
        );
        parameters.insert("DB".into(), "app".into());
        let secret = secret(&input(&sdl, &parameters, &none)).unwrap();
        assert_eq!(secret.type_.as_deref(), Some("servicebinding.io/mysql"));
        assert_eq!(secret.metadata.name.as_deref(), Some("binding-b1"));
        let expected = [
            ("database", "app"),
            ("host", "db.example.com"),
            ("password", "s3cret"),
            ("port", "3307"),
            ("provider", "hpe"),
            ("type", "mysql"),
        ];
        let expected: BTreeMap<String, String> = expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(data(&secret), expected);
        // No jobs for a connector.
        let owner = OwnerReference { name: "binding-b1".into(), uid: "u".into(), ..OwnerReference::default() };
        assert!(bind_job(&sdl, &secret, owner).is_none());
        assert!(unbind_job(&sdl, &secret, "copy").is_none());
    }

    #[test]
    fn binding_objects_are_outside_the_convergers_selector() {
        let labels = object_labels("i", "b");
        assert_ne!(labels.get(labels::MANAGED_BY).map(String::as_str), Some(labels::MANAGER));
        assert!(selector("i").contains(&format!("{}={MANAGER}", labels::MANAGED_BY)));
    }

    fn job_with(condition: Option<&str>) -> Job {
        Job {
            status: condition.map(|c| JobStatus {
                conditions: Some(vec![JobCondition {
                    type_: c.into(),
                    status: "True".into(),
                    message: Some("BackoffLimitExceeded".into()),
                    ..JobCondition::default()
                }]),
                ..JobStatus::default()
            }),
            ..Job::default()
        }
    }

    #[test]
    fn the_state_follows_the_secret_and_the_jobs() {
        let secret = Secret::default();
        let state = |s: Option<&Secret>, bind: Option<Job>, unbind: Option<Job>| {
            summary("i", "b", s, bind.as_ref(), unbind.as_ref()).map(|s| s.state)
        };
        assert_eq!(state(Some(&secret), None, None), Some(BindingState::Ready));
        assert_eq!(state(Some(&secret), Some(job_with(None)), None), Some(BindingState::Creating));
        assert_eq!(state(Some(&secret), Some(job_with(Some("Complete"))), None), Some(BindingState::Ready));
        assert_eq!(
            state(Some(&secret), Some(job_with(Some("Failed"))), None),
            Some(BindingState::Failed { message: "bind job failed: BackoffLimitExceeded".into() })
        );
        assert_eq!(state(None, None, Some(job_with(None))), Some(BindingState::Deleting));
        assert_eq!(state(None, None, Some(job_with(Some("Complete")))), None);
        assert_eq!(state(None, None, None), None);
    }

    #[test]
    fn user_names_are_stable_short_and_plain() {
        let name = sdl::generate::binding_username("b1", 17);
        assert_eq!(name, sdl::generate::binding_username("b1", 17));
        assert_ne!(name, sdl::generate::binding_username("b2", 17));
        assert_eq!(name.len(), 17);
        assert_eq!(sdl::generate::binding_username("b1", 8).len(), 8);
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(new_id().len(), 36);
        assert_eq!(id_problem(&new_id()), None);
    }

    #[test]
    fn ids_are_dns_labels_short_enough_for_job_names() {
        assert_eq!(id_problem("b-1"), None);
        assert!(id_problem("B_1").is_some());
        assert!(id_problem(&"a".repeat(ID_MAX + 1)).is_some());
        assert!(unbind_job_name(&"a".repeat(ID_MAX)).len() <= 63);
    }
}
