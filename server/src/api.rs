//! The API's wire types (each with its OpenAPI schema) and the pure conversions from the
//! catalog and service-manager types into them. The content is what `hsm`'s JSON output
//! shows for the same verb; secret values never appear (secret defaults are redacted,
//! secret parameter values masked). Request bodies refuse unknown fields.

use std::collections::BTreeMap;

use sdl::catalog::{Service, ServiceVersion};
use sdl::Sdl;
use serde::{Deserialize, Serialize};
use service_manager::actions::get;
use service_manager::instance::{Record, State};
use service_manager::output;
use utoipa::ToSchema;

/// `GET /v1/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Info {
    /// The server's version (its package version).
    pub server_version: String,
    /// The API version, `v1`.
    pub api_version: String,
    /// The catalog's name: the first part of every service id.
    pub catalog: String,
    /// How clients sign in (`null` when the server runs without authentication).
    pub auth: Option<crate::auth::AuthInfo>,
}

/// A health or readiness answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// One service of the catalog (`GET /v1/services`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ServiceSummary {
    /// `<catalog>.<vendor>.<service>`.
    pub id: String,
    /// Service name.
    pub name: String,
    /// Vendor.
    pub vendor: String,
    /// Product versions, oldest first.
    pub product_versions: Vec<String>,
    /// Categories.
    pub categories: Vec<String>,
    /// Labels.
    pub labels: Vec<String>,
    /// Description.
    pub description: String,
}

/// One (product version, SDL version) of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct VersionDetail {
    /// Product version.
    pub product_version: String,
    /// SDL version.
    pub sdl_version: String,
    /// `<pv>` or `<pv>/<sv1>|<sv2>` entries this version upgrades from.
    pub upgrade_from: Vec<String>,
}

/// One parameter of an SDL version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ParameterDetail {
    /// Name.
    pub name: String,
    /// Must have a value after defaults and generators.
    pub required: bool,
    /// Secret: its value is never returned.
    pub secret: bool,
    /// Cannot change after creation.
    pub immutable: bool,
    /// Generated when not given.
    pub generated: bool,
    /// Default (`<redacted>` for a secret parameter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A service with its versions and the parameters of its newest version
/// (`GET /v1/services/{id}`, as `hsm get-service`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ServiceDetail {
    /// The summary's fields.
    #[serde(flatten)]
    pub summary: ServiceSummary,
    /// Every version, oldest first.
    pub versions: Vec<VersionDetail>,
    /// `<pv>/<sv>` the parameters and components below belong to.
    pub parameters_of: String,
    /// Parameters of that version.
    pub parameters: Vec<ParameterDetail>,
    /// Components of that version.
    pub components: Vec<String>,
}

/// A product version of a service (`GET /v1/services/{id}/product_versions/{pv}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProductVersion {
    /// Service id.
    pub service_id: String,
    /// Product version.
    pub product_version: String,
    /// Its SDL versions, oldest first.
    pub sdl_versions: Vec<VersionDetail>,
}

/// One SDL version of a service
/// (`GET /v1/services/{id}/product_versions/{pv}/sdl_versions/{sv}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SdlVersion {
    /// Service id.
    pub service_id: String,
    /// Product version.
    pub product_version: String,
    /// SDL version.
    pub sdl_version: String,
    /// `<pv>` or `<pv>/<sv1>|<sv2>` entries this version upgrades from.
    pub upgrade_from: Vec<String>,
    /// What changed in this version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Parameters.
    pub parameters: Vec<ParameterDetail>,
    /// Components.
    pub components: Vec<String>,
}

/// The state of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    /// Being created.
    Creating,
    /// Created; every workload was ready at the end of the last operation.
    Running,
    /// The last operation failed (see the message).
    Failed,
    /// Being upgraded or reconfigured.
    Upgrading,
    /// Being deleted.
    Deleting,
    /// Deleted except for its volume claims.
    Deleted,
    /// A state this server does not know.
    Unknown,
}

/// The operation running on an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Operation {
    /// `host/pid` of the process running it.
    pub holder: String,
    /// Unix seconds of its last renewal.
    pub since: u64,
}

/// One instance (`GET /v1/instances`, as `hsm list-instances`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct InstanceSummary {
    /// Instance id (its namespace).
    pub instance_id: String,
    /// Service id.
    pub service_id: String,
    /// Product version.
    pub product_version: String,
    /// SDL version.
    pub sdl_version: String,
    /// State.
    pub state: InstanceState,
    /// Created (RFC 3339).
    pub created: String,
    /// Last changed (RFC 3339).
    pub updated: Option<String>,
    /// Failure or note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The running operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
}

/// An instance just created (`POST /v1/instances`): its summary and the size of its plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CreatedInstance {
    /// The instance.
    #[serde(flatten)]
    pub instance: InstanceSummary,
    /// Objects in the plan the converger applies.
    pub objects: usize,
}

/// The readiness of one workload of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Component {
    /// Kind (`Deployment`, `StatefulSet`, ...).
    pub kind: String,
    /// Name.
    pub name: String,
    /// Ready replicas.
    pub ready: i32,
    /// Desired replicas.
    pub desired: i32,
    /// Finished (ready, or a completed job).
    pub done: bool,
    /// Why a job failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// The latest condition, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// Where a public port of an instance can be reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Location {
    /// Component (Service) name.
    pub service_name: String,
    /// Port name.
    pub port_name: String,
    /// Load balancer address, or `<pending>`.
    pub public_location: String,
    /// Port.
    pub public_port: i32,
}

/// One instance in detail (`GET /v1/instances/{id}`, as `hsm get-instance`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct InstanceDetail {
    /// The summary's fields.
    #[serde(flatten)]
    pub instance: InstanceSummary,
    /// Parameter values; a secret one is `********`.
    pub parameters: BTreeMap<String, String>,
    /// Workloads and their readiness.
    pub components: Vec<Component>,
    /// Public ports.
    pub service_locations: Vec<Location>,
    /// Volume claims.
    pub volume_claims: Vec<String>,
    /// Versions the instance can be upgraded to (`product/sdl`), as the converger found them
    /// in the catalog; left out when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub available_upgrades: Vec<String>,
}

/// `POST /v1/instances`: the instance to create (as `hsm create-instance`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInstance {
    /// Service id, `<catalog>.<vendor>.<service>`.
    pub service_id: String,
    /// Product version (default: the newest).
    #[serde(default)]
    pub product_version: Option<String>,
    /// SDL version (default: the newest of the product version).
    #[serde(default)]
    pub sdl_version: Option<String>,
    /// Instance id, a DNS label (default: `<service>-<6 random characters>`).
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Parameter values by name. Secret ones are kept in a Secret, never in the Instance and
    /// never returned.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

/// `PATCH /v1/instances/{id}`: an upgrade (versions) and/or a reconfiguration (parameters).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeInstance {
    /// Product version to upgrade to.
    #[serde(default)]
    pub product_version: Option<String>,
    /// SDL version to upgrade to (default: the newest of the product version).
    #[serde(default)]
    pub sdl_version: Option<String>,
    /// Parameter values to set, by name.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

/// `DELETE /v1/instances/{id}`'s query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Keep the instance's volume claims (and its namespace with them).
    #[serde(default)]
    pub keep_volumes: bool,
}

/// The summary of `service`.
pub fn service_summary(service: &Service) -> ServiceSummary {
    let s = output::ServiceSummary::of(service);
    ServiceSummary {
        id: s.id,
        name: s.name,
        vendor: s.vendor,
        product_versions: s.product_versions,
        categories: s.categories,
        labels: s.labels,
        description: s.description,
    }
}

fn version_detail(version: &ServiceVersion) -> VersionDetail {
    VersionDetail {
        product_version: version.product_version.clone(),
        sdl_version: version.sdl_version.clone(),
        upgrade_from: version.config.upgrade_from.iter().map(ToString::to_string).collect(),
    }
}

/// The parameters (secret defaults redacted, as `hsm get-service`) and component names of `sdl`.
fn parameters_and_components(service: &Service, sdl: &Sdl) -> (Vec<ParameterDetail>, Vec<String>) {
    let detail = output::ServiceDetail::of(service, sdl);
    let parameters = detail
        .parameters
        .into_iter()
        .map(|p| ParameterDetail {
            name: p.name,
            required: p.required,
            secret: p.secret,
            immutable: p.immutable,
            generated: p.generated,
            default: p.default,
            description: p.description,
        })
        .collect();
    (parameters, detail.components)
}

/// `service` with its versions and the parameters of the version whose SDL is `sdl`.
pub fn service_detail(service: &Service, sdl: &Sdl) -> ServiceDetail {
    let (parameters, components) = parameters_and_components(service, sdl);
    ServiceDetail {
        summary: service_summary(service),
        versions: service.versions.iter().map(version_detail).collect(),
        parameters_of: format!("{}/{}", sdl.product_version, sdl.sdl_version),
        parameters,
        components,
    }
}

/// Product version `product_version` of `service` (which must have it) with its SDL versions.
pub fn product_version(service: &Service, product_version: &str) -> ProductVersion {
    ProductVersion {
        service_id: service.id.clone(),
        product_version: product_version.to_string(),
        sdl_versions: service
            .versions
            .iter()
            .filter(|v| v.product_version == product_version)
            .map(version_detail)
            .collect(),
    }
}

/// `version` of `service`, whose SDL is `sdl`.
pub fn sdl_version(service: &Service, version: &ServiceVersion, sdl: &Sdl) -> SdlVersion {
    let (parameters, components) = parameters_and_components(service, sdl);
    SdlVersion {
        service_id: service.id.clone(),
        product_version: version.product_version.clone(),
        sdl_version: version.sdl_version.clone(),
        upgrade_from: version_detail(version).upgrade_from,
        description: version.config.description.clone(),
        parameters,
        components,
    }
}

fn state(state: State) -> InstanceState {
    match state {
        State::Creating => InstanceState::Creating,
        State::Running => InstanceState::Running,
        State::Failed => InstanceState::Failed,
        State::Upgrading => InstanceState::Upgrading,
        State::Deleting => InstanceState::Deleting,
        State::Deleted => InstanceState::Deleted,
        State::Unknown => InstanceState::Unknown,
    }
}

/// The summary of an instance's record.
pub fn instance_summary(record: &Record) -> InstanceSummary {
    InstanceSummary {
        instance_id: record.instance_id.clone(),
        service_id: record.service_id.clone(),
        product_version: record.product_version.clone(),
        sdl_version: record.sdl_version.clone(),
        state: state(record.state),
        created: record.created.clone(),
        updated: record.updated.clone(),
        message: record.message.clone(),
        operation: record.operation.as_ref().map(|o| Operation { holder: o.holder.clone(), since: o.since }),
    }
}

/// An instance's details (their secret values already masked by `get`).
pub fn instance_detail(detail: &get::InstanceDetail) -> InstanceDetail {
    InstanceDetail {
        instance: instance_summary(&detail.record),
        parameters: detail.parameters.clone(),
        components: detail
            .components
            .iter()
            .map(|c| Component {
                kind: c.kind.as_str().to_string(),
                name: c.name.clone(),
                ready: c.ready,
                desired: c.desired,
                done: c.done,
                failed: c.failed.clone(),
                condition: c.condition.clone(),
            })
            .collect(),
        service_locations: detail
            .service_locations
            .iter()
            .map(|l| Location {
                service_name: l.service_name.clone(),
                port_name: l.port_name.clone(),
                public_location: l.public_location.clone(),
                public_port: l.public_port,
            })
            .collect(),
        volume_claims: detail.volume_claims.clone(),
        available_upgrades: detail.available_upgrades.clone(),
    }
}
