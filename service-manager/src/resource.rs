//! The `Instance` resource (`instances.stratus.io`, version `v1alpha1`): one service instance
//! as declared, for `kubectl apply` and for the converger ([`crate::controller`]) that keeps
//! it so. Cluster-scoped: an instance owns its namespace, and the Instance's name is the
//! instance id, which is that namespace's name.
//!
//! The schema is structural and carries CEL rules, so the API server itself refuses what can
//! be checked without the catalog: a name that cannot be a namespace, a malformed service id,
//! a changed service id. What needs the catalog (does the service exist, are the parameters
//! known and valid) is the controller's, reported in `status` conditions.
//!
//! [`request`] turns a spec into hsm's [`InstanceRequest`] — pure, so `hsm create-instance`
//! and the controller plan the same way from the same input.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use sdl::idl::{IdlParameter, Scaling};
use sdl::Idl;

use crate::request::InstanceRequest;

/// The API group of Stratus's resources.
pub const GROUP: &str = "stratus.io";

/// The finalizer the controller puts on every Instance: it removes it once the instance's
/// namespace (or, with `keepVolumes`, all but its volumes) is gone.
pub const FINALIZER: &str = "stratus.io/instance";

/// The declared state of one service instance.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[kube(
    group = "stratus.io",
    version = "v1alpha1",
    kind = "Instance",
    plural = "instances",
    shortname = "inst",
    category = "stratus",
    status = "InstanceStatus",
    doc = "A Stratus service instance: the service, its versions and parameters. The name is the instance id and the namespace the instance runs in.",
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.serviceId"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.productVersion"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("the name of an Instance is its instance id and the name of its namespace: a DNS label (lower-case letters, digits and '-', starting with a letter, at most 63 characters)")
)]
#[serde(rename_all = "camelCase")]
pub struct InstanceSpec {
    /// The catalog's service id, e.g. `stackato.hpe.redis`. Cannot change: another service is
    /// another Instance.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(
        validation = Rule::new("self == oldSelf").message("serviceId cannot change; delete this Instance and create another"),
        validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$')").message("serviceId must be a catalog service id such as stackato.hpe.redis (lower-case letters, digits, '.', '-', '_')")
    )]
    pub service_id: String,
    /// Product version; the catalog's newest when absent. Fixed by the first creation until an
    /// upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub product_version: Option<String>,
    /// SDL version; the newest of the product version when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub sdl_version: Option<String>,
    /// Parameter values, by SDL parameter name. Secret values do not belong here: use
    /// `secretParameters`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    /// Secret parameter values, each read from a key of a Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_parameters: BTreeMap<String, SecretKeyRef>,
    /// Instances to run per component (SDL component name → count).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scaling: BTreeMap<String, u32>,
    /// Tags for finding the instance later.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// On deletion, keep the volume claims (with the namespace holding them and the instance's
    /// parameters), so that an Instance of the same name reattaches them.
    #[serde(default)]
    pub keep_volumes: bool,
}

/// A key of a Secret.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
    /// The key whose value is the parameter's.
    pub key: String,
}

/// What the controller last saw of an instance.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where the instance is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<InstanceState>,
    /// The product version running (the record's, which the catalog cannot change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_version: Option<String>,
    /// The SDL version in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdl_version: Option<String>,
    /// Versions the catalog allows this instance to be upgraded to, `<product>/<SDL version>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub available_upgrades: Vec<String>,
    /// `Ready`, `Progressing` and `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Readiness of each workload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ComponentStatus>,
    /// Where the instance's public ports can be reached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_locations: Vec<ServiceLocation>,
}

/// The states of an Instance.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    /// Applied; not every workload has been ready yet.
    Creating,
    /// Every workload is ready.
    Running,
    /// It was running; some workload is not ready now.
    Degraded,
    /// Changing versions or parameters (an upgrade or reconfiguration applied, its workloads
    /// not all ready yet).
    Upgrading,
    /// The spec cannot be carried out (see the conditions).
    Failed,
    /// Being deleted.
    Deleting,
}

/// One condition, as Kubernetes conventions have it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Progressing` or `Degraded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason.
    pub reason: String,
    /// What a person can act on.
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation this condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Readiness of one workload.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// Workload name (the SDL component).
    pub name: String,
    /// `Deployment` or `StatefulSet`.
    pub kind: String,
    /// Ready replicas.
    pub ready: i32,
    /// Desired replicas.
    pub desired: i32,
}

/// One public port.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceLocation {
    /// The Service.
    pub service: String,
    /// The port's name.
    pub port_name: String,
    /// Load balancer address, or `<pending>`.
    pub address: String,
    /// The port.
    pub port: i32,
}

/// Why a spec cannot become a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A secret parameter's value was not supplied by the caller (its Secret or key is
    /// missing).
    #[error("secret parameter {name}: {reason}")]
    SecretValue {
        /// The parameter.
        name: String,
        /// What is wrong with its Secret.
        reason: String,
    },
    /// A parameter is given both inline and by Secret.
    #[error("parameter {0} is given both in parameters and in secretParameters; give it once")]
    Twice(String),
}

/// The request `hsm create-instance` would make for Instance `name` with `spec`, given the
/// values of its secret parameters (read by the caller from the Secrets the spec names).
///
/// Inline parameters become the instance definition's parameters (recorded with the
/// instance); secret ones are passed like `--set` values, which hsm keeps only in the
/// instance's Secret when the SDL marks them secret.
pub fn request(
    name: &str,
    spec: &InstanceSpec,
    secret_values: &BTreeMap<String, String>,
) -> Result<InstanceRequest, SpecError> {
    if let Some(both) = spec.parameters.keys().find(|k| spec.secret_parameters.contains_key(*k)) {
        return Err(SpecError::Twice(both.clone()));
    }
    let mut sets = Vec::new();
    for (parameter, reference) in &spec.secret_parameters {
        let value = secret_values.get(parameter).ok_or_else(|| SpecError::SecretValue {
            name: parameter.clone(),
            reason: format!(
                "no value read from Secret {}/{} key {}",
                reference.namespace, reference.name, reference.key
            ),
        })?;
        sets.push((parameter.clone(), value.clone()));
    }
    let idl = Idl {
        instance_id: Some(name.to_string()),
        service_id: Some(spec.service_id.clone()),
        product_version: spec.product_version.clone(),
        sdl_version: spec.sdl_version.clone(),
        labels: spec.labels.clone(),
        parameters: spec
            .parameters
            .iter()
            .map(|(name, value)| IdlParameter { name: name.clone(), value: value.clone() })
            .collect(),
        scaling: spec
            .scaling
            .iter()
            .map(|(component, count)| Scaling {
                component: component.clone(),
                min_instances: *count,
                max_instances: *count,
            })
            .collect(),
        ..Idl::default()
    };
    Ok(InstanceRequest {
        service_id: spec.service_id.clone(),
        product_version: spec.product_version.clone(),
        sdl_version: spec.sdl_version.clone(),
        idl,
        idl_source: format!("Instance {name}"),
        sets,
        instance_id: Some(name.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    fn spec() -> InstanceSpec {
        InstanceSpec {
            service_id: "stackato.hpe.redis".into(),
            product_version: Some("3.0.7".into()),
            parameters: BTreeMap::from([("MAXMEMORY".into(), "64mb".into())]),
            secret_parameters: BTreeMap::from([(
                "REDIS_PASSWORD".into(),
                SecretKeyRef { namespace: "team".into(), name: "redis".into(), key: "password".into() },
            )]),
            scaling: BTreeMap::from([("redis".into(), 2)]),
            labels: vec!["team-a".into()],
            ..InstanceSpec::default()
        }
    }

    #[test]
    fn a_spec_becomes_the_request_hsm_would_make() {
        let values = BTreeMap::from([("REDIS_PASSWORD".to_string(), "s3cret".to_string())]);
        let request = request("cache", &spec(), &values).unwrap();
        assert_eq!(request.service_id, "stackato.hpe.redis");
        assert_eq!(request.instance_id.as_deref(), Some("cache"));
        assert_eq!(request.product_version.as_deref(), Some("3.0.7"));
        assert_eq!(request.idl.instance_id.as_deref(), Some("cache"));
        assert_eq!(request.idl.parameter("MAXMEMORY"), Some("64mb"));
        // Secret values never enter the instance definition (which hsm records).
        assert_eq!(request.idl.parameter("REDIS_PASSWORD"), None);
        assert_eq!(request.sets, vec![("REDIS_PASSWORD".to_string(), "s3cret".to_string())]);
        assert_eq!(request.idl.scaling.len(), 1);
        assert_eq!((request.idl.scaling[0].min_instances, request.idl.scaling[0].max_instances), (2, 2));
        assert_eq!(request.idl.labels, vec!["team-a".to_string()]);
    }

    #[test]
    fn a_missing_secret_value_or_a_parameter_given_twice_is_refused() {
        let missing = request("cache", &spec(), &BTreeMap::new()).unwrap_err();
        assert!(missing.to_string().contains("Secret team/redis key password"), "{missing}");
        let mut twice = spec();
        twice.parameters.insert("REDIS_PASSWORD".into(), "plain".into());
        let values = BTreeMap::from([("REDIS_PASSWORD".to_string(), "s3cret".to_string())]);
        assert_eq!(request("cache", &twice, &values).unwrap_err(), SpecError::Twice("REDIS_PASSWORD".into()));
    }

    #[test]
    fn the_definition_is_cluster_scoped_with_rules_and_columns() {
        let crd = serde_json::to_value(Instance::crd()).unwrap();
        assert_eq!(crd["metadata"]["name"], "instances.stratus.io");
        assert_eq!(crd["spec"]["scope"], "Cluster");
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        assert!(version["subresources"]["status"].is_object());
        let columns: Vec<&str> =
            version["additionalPrinterColumns"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(columns, ["Service", "Version", "State", "Age"]);
        let text = version["schema"].to_string();
        assert!(text.contains("self == oldSelf"), "{text}");
        assert!(text.contains("x-kubernetes-validations"));
    }
}
