//! The planner: a pure function from a valid SDL, a valid IDL, the resolved parameters and a
//! cluster profile to typed Kubernetes objects, grouped in the order they must be applied.
//! Same input, same output, byte for byte; no I/O.

mod network;
mod pod;
pub mod rbac;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use sdl::model::{Component, Sdl, WorkloadType};
use sdl::resolve::Resolved;
use sdl::Idl;
use serde::Serialize;

use crate::labels;
pub use crate::objects::KubeObject;
use crate::profile::ClusterProfile;
pub use network::internal_name as network_internal_name;

/// Name of the Secret holding the instance's secret parameters.
pub const SECRET_NAME: &str = "secret-parameters";
/// Name of the Secret holding hsm's record of the instance's secret values and generated
/// objects: the same data as [`SECRET_NAME`], never mounted. The record is what re-applies and
/// upgrades read first, so a `secret-parameters` deleted or edited by hand is restored from it.
pub const RECORD_SECRET_NAME: &str = "hsm-record";
/// Name of the ConfigMap holding the instance's non-secret parameter values.
pub const CONFIG_MAP_NAME: &str = "parameters";
/// Key in the Secret holding the instance's generated objects (JSON), so upgrades keep them.
pub const GENERATED_KEY: &str = "hsm-generated.json";
/// Name of the NetworkPolicy isolating the instance.
pub const NETWORK_POLICY_NAME: &str = "instance-isolation";
/// Where secret parameters are mounted, one file per parameter.
pub const SECRETS_MOUNT: &str = "/etc/secrets";

/// Everything the planner needs.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// Service id, e.g. `stackato.hpe.mysql`.
    pub service_id: &'a str,
    /// The service definition (valid).
    pub sdl: &'a Sdl,
    /// The instance definition (valid, with `instance_id` set).
    pub idl: &'a Idl,
    /// Resolved parameter values.
    pub resolved: &'a Resolved,
    /// The target cluster.
    pub profile: &'a ClusterProfile,
}

/// The steps of an apply, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The instance namespace.
    Namespace,
    /// Parameters (Secret, ConfigMap), ServiceAccounts with their RBAC, and the network policy.
    Configuration,
    /// Volume claims and Services.
    StorageAndNetwork,
    /// Pre-flight jobs, run to completion in order.
    Preflight,
    /// Deployments and StatefulSets, in dependency order; wait until ready.
    Workloads,
    /// Post-flight jobs, run to completion in order.
    Postflight,
}

impl Phase {
    /// A short human name.
    pub fn title(self) -> &'static str {
        match self {
            Phase::Namespace => "namespace",
            Phase::Configuration => "parameters and network policy",
            Phase::StorageAndNetwork => "volume claims and services",
            Phase::Preflight => "pre-flight jobs",
            Phase::Workloads => "workloads",
            Phase::Postflight => "post-flight jobs",
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Which step.
    pub phase: Phase,
    /// Objects applied in this step.
    pub objects: Vec<KubeObject>,
}

/// The objects of one instance, in apply order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Instance id (namespace).
    pub instance_id: String,
    /// Service id.
    pub service_id: String,
    /// Steps that have objects, in order.
    pub steps: Vec<Step>,
}

impl Plan {
    /// Every object, in apply order.
    pub fn objects(&self) -> impl Iterator<Item = &KubeObject> {
        self.steps.iter().flat_map(|s| s.objects.iter())
    }
}

/// Why a valid SDL/IDL pair could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The IDL has no instance id (the caller must set one).
    #[error("the instance definition has no instance_id")]
    NoInstanceId,
    /// An external name refers to a parameter without a value.
    #[error("component \"{component}\": external_name needs a value for \"{missing}\"")]
    ExternalNameValue {
        /// The component.
        component: String,
        /// The parameter without a value.
        missing: String,
    },
    /// A component asks for something the planner cannot run.
    #[error("component \"{0}\": workload_type \"vm\" is not supported")]
    VirtualMachine(String),
    /// An external name resolves to something that is not a DNS name.
    #[error("component \"{component}\": external_name \"{template}\" resolves to \"{value}\", which is not a DNS name (lowercase letters, digits, '-' and '.', at most 253 characters, e.g. db.example.com)")]
    ExternalName {
        /// The component.
        component: String,
        /// The SDL's external_name.
        template: String,
        /// The value it resolved to (escaped).
        value: String,
    },
    /// The cluster profile holds values the API server would refuse.
    #[error("cluster profile: {}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Profile(Vec<sdl::Problem>),
}

/// Plans the Kubernetes objects of one instance.
pub fn plan(input: PlanInput<'_>) -> Result<Plan, PlanError> {
    let instance_id = input.idl.instance_id.as_deref().ok_or(PlanError::NoInstanceId)?;
    let profile_problems = input.profile.problems();
    if !profile_problems.is_empty() {
        return Err(PlanError::Profile(profile_problems));
    }
    let ctx = Context::new(input, instance_id);
    let sdl = input.sdl;
    if let Some(c) = sdl.all_workloads().map(|(_, _, c)| c).find(|c| c.workload_type == WorkloadType::Vm) {
        return Err(PlanError::VirtualMachine(c.name.clone()));
    }

    let mut steps = vec![Step { phase: Phase::Namespace, objects: vec![KubeObject::Namespace(ctx.namespace())] }];

    let mut configuration = Vec::new();
    if let Some(secret) = ctx.secret() {
        let mut record = secret.clone();
        record.metadata.name = Some(RECORD_SECRET_NAME.into());
        configuration.push(KubeObject::Secret(secret));
        configuration.push(KubeObject::Secret(record));
    }
    configuration.push(KubeObject::ConfigMap(ctx.config_map()));
    for c in sdl.all_workloads().map(|(_, _, c)| c).filter(|c| !c.is_external()) {
        configuration.extend(rbac::objects(&ctx, c));
    }
    configuration.push(KubeObject::NetworkPolicy(network::network_policy(&ctx)));
    steps.push(Step { phase: Phase::Configuration, objects: configuration });

    let mut storage_and_network: Vec<KubeObject> = sdl
        .volumes
        .iter()
        .filter(|v| v.shared)
        .map(|v| KubeObject::PersistentVolumeClaim(pod::shared_claim(&ctx, v)))
        .collect();
    for c in &sdl.components {
        for service in network::services(&ctx, c, pod::is_stateful(sdl, c))? {
            storage_and_network.push(KubeObject::Service(service));
        }
    }
    steps.push(Step { phase: Phase::StorageAndNetwork, objects: storage_and_network });

    let jobs = |list: &[Component]| list.iter().map(|j| KubeObject::Job(pod::job(&ctx, j))).collect::<Vec<_>>();
    steps.push(Step { phase: Phase::Preflight, objects: jobs(&sdl.preflight) });
    let workloads = dependency_order(sdl)
        .into_iter()
        .filter(|c| !c.is_external())
        .map(|c| {
            if pod::is_stateful(sdl, c) {
                KubeObject::StatefulSet(pod::stateful_set(&ctx, c))
            } else {
                KubeObject::Deployment(pod::deployment(&ctx, c))
            }
        })
        .collect();
    steps.push(Step { phase: Phase::Workloads, objects: workloads });
    steps.push(Step { phase: Phase::Postflight, objects: jobs(&sdl.postflight) });

    steps.retain(|s| !s.objects.is_empty());
    Ok(Plan { instance_id: instance_id.to_string(), service_id: input.service_id.to_string(), steps })
}

/// Components ordered so that each comes after what it depends on; ties keep SDL order.
/// The SDL must have no dependency cycle (validation guarantees it).
fn dependency_order(sdl: &Sdl) -> Vec<&Component> {
    let mut placed: Vec<&Component> = Vec::with_capacity(sdl.components.len());
    let mut remaining: Vec<&Component> = sdl.components.iter().collect();
    while !remaining.is_empty() {
        let ready = remaining
            .iter()
            .position(|c| c.depends_on.iter().all(|d| placed.iter().any(|p| &p.name == d)))
            .unwrap_or(0);
        placed.push(remaining.remove(ready));
    }
    placed
}

/// Values shared by every object of one plan.
pub(crate) struct Context<'a> {
    pub input: PlanInput<'a>,
    pub namespace: &'a str,
    pub service_domain_suffix: String,
}

impl<'a> Context<'a> {
    fn new(input: PlanInput<'a>, namespace: &'a str) -> Self {
        let service_domain_suffix = format!("{namespace}.svc.{}", input.profile.cluster_domain);
        Context { input, namespace, service_domain_suffix }
    }

    /// Labels every object of the instance carries.
    pub fn common_labels(&self) -> BTreeMap<String, String> {
        let sdl = self.input.sdl;
        BTreeMap::from([
            (labels::MANAGED_BY.to_string(), labels::MANAGER.to_string()),
            (labels::NAME.to_string(), sdl.name.clone()),
            (labels::INSTANCE.to_string(), self.namespace.to_string()),
            (labels::VERSION.to_string(), sdl.product_version.clone()),
            (labels::SERVICE_ID.to_string(), self.input.service_id.to_string()),
            (labels::SDL_VERSION.to_string(), sdl.sdl_version.clone()),
        ])
    }

    /// Labels that select the pods of one component or job.
    pub fn selector_labels(&self, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (labels::INSTANCE.to_string(), self.namespace.to_string()),
            (labels::COMPONENT.to_string(), component.to_string()),
        ])
    }

    /// [`Context::component_labels`] without those an upgrade changes (product and SDL
    /// version): for what Kubernetes keeps immutable, such as a StatefulSet's claim templates.
    pub fn stable_component_labels(&self, component: &str) -> BTreeMap<String, String> {
        let mut all = self.component_labels(component);
        all.remove(labels::VERSION);
        all.remove(labels::SDL_VERSION);
        all
    }

    /// Labels of the objects belonging to one component or job.
    pub fn component_labels(&self, component: &str) -> BTreeMap<String, String> {
        let mut all = self.common_labels();
        all.extend(self.selector_labels(component));
        all
    }

    /// Metadata for a namespaced object named `name`.
    pub fn meta(&self, name: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(self.namespace.to_string()),
            labels: Some(labels),
            ..ObjectMeta::default()
        }
    }

    fn namespace(&self) -> Namespace {
        let idl = self.input.idl;
        let mut annotations = BTreeMap::new();
        if !idl.labels.is_empty() {
            annotations.insert(
                labels::INSTANCE_LABELS.to_string(),
                serde_json::to_string(&idl.labels).expect("strings serialise"),
            );
        }
        if let Some(description) = &idl.description {
            annotations.insert(labels::DESCRIPTION.to_string(), description.clone());
        }
        let cluster_objects: Vec<String> = self
            .input
            .sdl
            .all_workloads()
            .map(|(_, _, c)| c)
            .filter(|c| c.service_account.as_ref().is_some_and(|a| !a.cluster_rules.is_empty()))
            .flat_map(|c| {
                let name = rbac::cluster_name(self.namespace, &c.name);
                [format!("ClusterRole/{name}"), format!("ClusterRoleBinding/{name}")]
            })
            .collect();
        if !cluster_objects.is_empty() {
            annotations.insert(labels::CLUSTER_OBJECTS.to_string(), cluster_objects.join(","));
        }
        // A cluster may enforce Pod Security `baseline` (or stricter) by default; an instance
        // whose pods need more says so on its namespace, deliberately, and only then.
        let mut namespace_labels = self.common_labels();
        let sdl = self.input.sdl;
        if sdl.components.iter().chain(&sdl.preflight).chain(&sdl.postflight).any(pod::needs_privileged) {
            namespace_labels.insert(labels::POD_SECURITY_ENFORCE.to_string(), "privileged".to_string());
        }
        Namespace {
            metadata: ObjectMeta {
                name: Some(self.namespace.to_string()),
                labels: Some(namespace_labels),
                annotations: (!annotations.is_empty()).then_some(annotations),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        }
    }

    /// Every non-secret parameter value: what the instance was created with, readable by
    /// operators and by the platform (connectors have no workload to carry them).
    fn config_map(&self) -> ConfigMap {
        let data: BTreeMap<String, String> = self
            .input
            .resolved
            .values
            .iter()
            .filter(|(_, v)| !v.secret)
            .map(|(name, v)| (name.clone(), v.value.clone()))
            .collect();
        ConfigMap {
            metadata: self.meta(CONFIG_MAP_NAME, self.common_labels()),
            data: Some(data),
            ..ConfigMap::default()
        }
    }

    fn secret(&self) -> Option<Secret> {
        let mut data: BTreeMap<String, ByteString> = self
            .input
            .resolved
            .values
            .iter()
            .filter(|(_, v)| v.secret)
            .map(|(name, v)| (name.clone(), ByteString(v.value.clone().into_bytes())))
            .collect();
        let generated = &self.input.resolved.generated;
        if !generated.is_empty() {
            let json = serde_json::to_vec(generated).expect("generated objects serialise");
            data.insert(GENERATED_KEY.to_string(), ByteString(json));
        }
        if data.is_empty() {
            return None;
        }
        Some(Secret {
            metadata: self.meta(SECRET_NAME, self.common_labels()),
            type_: Some("Opaque".into()),
            data: Some(data),
            ..Secret::default()
        })
    }
}
