//! The IDL (instance definition) types: what one operator asks of one service instance.

use serde::{Deserialize, Serialize};

use crate::model::scalar;

/// An instance definition. Every field is optional: `hsm create-instance` fills the service
/// and versions from its arguments and generates an `instance_id` when none is given.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Idl {
    /// Instance id; also the Kubernetes namespace (a DNS label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Service id, e.g. `stackato.hpe.mysql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    /// Service name (older IDLs name the service with `name` + `vendor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Service vendor (with `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Product version to deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_version: Option<String>,
    /// SDL version to deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdl_version: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Tags for finding the instance later.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Parameter values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<IdlParameter>,
    /// Instance counts per component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scaling: Vec<Scaling>,
}

/// One parameter value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdlParameter {
    /// Parameter name, as in the SDL.
    pub name: String,
    /// Value (numbers and booleans are accepted and kept as text).
    #[serde(deserialize_with = "scalar::required")]
    pub value: String,
}

/// Instance counts for one component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scaling {
    /// Component name, as in the SDL.
    pub component: String,
    /// Instances to run.
    pub min_instances: u32,
    /// Upper bound for later scaling (at least `min_instances`).
    pub max_instances: u32,
}

impl Idl {
    /// The value the IDL gives for parameter `name`.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.iter().find(|p| p.name == name).map(|p| p.value.as_str())
    }

    /// The scaling entry for `component`.
    pub fn scaling_for(&self, component: &str) -> Option<&Scaling> {
        self.scaling.iter().find(|s| s.component == component)
    }
}
