//! The Open Service Broker API's wire types (each a `ToSchema`, so the broker's OpenAPI
//! document comes from them) and [`BrokerError`], the OSB error shape every failure of `/v2`
//! becomes. Request types ignore unknown fields: the specification makes receivers ignore
//! vendor extension fields.

use std::collections::BTreeMap;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// An OSB error: `error` (a camel-case code, only where the specification names one) and a
/// `description` for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BrokerError {
    /// The specification's error code (`AsyncRequired`, `ConcurrencyError`,
    /// `MaintenanceInfoConflict`) or this broker's own (`BadRequest`, `Unauthorized`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What went wrong, naming the field or header.
    pub description: String,
    /// For a failed update or deprovision: whether the instance can still be used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_usable: Option<bool>,
    /// For a failed update: whether repeating it may succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_repeatable: Option<bool>,
    /// The HTTP status (not in the body).
    #[serde(skip)]
    #[schema(ignore)]
    pub status: u16,
}

impl BrokerError {
    /// An error with `status`, code `error` and `description`.
    pub fn new(status: StatusCode, error: &str, description: impl Into<String>) -> BrokerError {
        BrokerError {
            error: Some(error.to_string()),
            description: description.into(),
            instance_usable: None,
            update_repeatable: None,
            status: status.as_u16(),
        }
    }

    /// 400 `BadRequest`.
    pub fn bad_request(description: impl Into<String>) -> BrokerError {
        BrokerError::new(StatusCode::BAD_REQUEST, "BadRequest", description)
    }

    /// 422 `AsyncRequired`: the request lacks `accepts_incomplete=true`.
    pub fn async_required() -> BrokerError {
        BrokerError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "AsyncRequired",
            "accepts_incomplete: this broker works asynchronously; the request must have accepts_incomplete=true",
        )
    }

    /// 422 `ConcurrencyError`: another operation on the instance is in progress.
    pub fn concurrency(what: &str) -> BrokerError {
        BrokerError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ConcurrencyError",
            format!("another operation on this service instance is in progress ({what}); wait until it has finished"),
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for BrokerError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, Json(&self)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = HeaderValue::from_static("Basic realm=\"hsm-broker\", charset=\"UTF-8\"");
            response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// `GET /v2/catalog`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CatalogResponse {
    /// One service offering per catalog service.
    pub services: Vec<ServiceOffering>,
}

/// A service offering: one service of the HSM catalog.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ServiceOffering {
    /// Stable id: a name-based UUID of the HSM service id.
    pub id: String,
    /// The service's name (CLI-friendly), unique in this catalog.
    pub name: String,
    /// The service's description.
    pub description: String,
    /// The service's categories and labels.
    pub tags: Vec<String>,
    /// Whether instances can be bound (a plan's SDL has a `bindings` section).
    pub bindable: bool,
    /// `GET /v2/service_instances/:id` is served.
    pub instances_retrievable: bool,
    /// `GET …/service_bindings/:bid` is served (when bindable).
    pub bindings_retrievable: bool,
    /// Updates carrying only context are not asked for.
    pub allow_context_updates: bool,
    /// Plans (product versions) can be changed along the catalog's upgrade rules.
    pub plan_updateable: bool,
    /// Display metadata (`displayName`, the HSM service id).
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// One plan per product version, oldest first.
    pub plans: Vec<Plan>,
}

/// A plan: one product version of a service.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Plan {
    /// Stable id: a name-based UUID of the service id and product version.
    pub id: String,
    /// The product version.
    pub name: String,
    /// What the plan runs.
    pub description: String,
    /// Always true.
    pub free: bool,
    /// Whether this plan's instances can be bound.
    pub bindable: bool,
    /// Plans can be changed along the catalog's upgrade rules.
    pub plan_updateable: bool,
    /// The newest SDL version of the product version.
    pub maintenance_info: MaintenanceInfo,
    /// The HSM product version and SDL version.
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// JSON schemas of the `parameters` a provision and an update take (the SDL's
    /// parameters); absent when the plan's SDL cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schemas: Option<Schemas>,
}

/// A plan's `schemas`: the parameters of service instances (bindings take none).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Schemas {
    /// Provision and update.
    pub service_instance: ServiceInstanceSchema,
}

/// The parameters of a provision (`create`) and of an update (`update`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ServiceInstanceSchema {
    /// What `PUT /v2/service_instances/:id` takes.
    pub create: InputParameters,
    /// What `PATCH /v2/service_instances/:id` takes.
    pub update: InputParameters,
}

/// A JSON schema (draft-04) of a request's `parameters`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InputParameters {
    /// The schema.
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
}

/// `maintenance_info`: the SDL version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MaintenanceInfo {
    /// The SDL version.
    pub version: String,
    /// What the version brings, when the catalog says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The body of `PUT /v2/service_instances/:instance_id`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ProvisionRequest {
    /// A service offering id from the catalog.
    pub service_id: String,
    /// A plan id of that offering.
    pub plan_id: String,
    /// The platform's context (`platform`, `organization_guid`, `space_guid`, `namespace`, …).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
    /// Deprecated in favour of `context`.
    #[serde(default)]
    pub organization_guid: Option<String>,
    /// Deprecated in favour of `context`.
    #[serde(default)]
    pub space_guid: Option<String>,
    /// The service's parameters: strings, numbers or booleans.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
    /// Must match the plan's, when given.
    #[serde(default)]
    pub maintenance_info: Option<MaintenanceInfo>,
}

/// The body of `PATCH /v2/service_instances/:instance_id`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct UpdateRequest {
    /// The instance's service offering id.
    pub service_id: String,
    /// The plan to change to (another product version), when given.
    #[serde(default)]
    pub plan_id: Option<String>,
    /// The platform's context (not kept on update).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
    /// Parameters to set: strings, numbers or booleans.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
    /// What the platform believes (ignored).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub previous_values: Option<Map<String, Value>>,
    /// The plan's maintenance_info: a newer SDL version than the instance's is an upgrade.
    #[serde(default)]
    pub maintenance_info: Option<MaintenanceInfo>,
}

/// The answer to an accepted asynchronous operation (202), or `{}` (200).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, ToSchema)]
pub struct OperationResponse {
    /// What to pass to `last_operation` as `operation`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
}

/// `GET /v2/service_instances/:instance_id/last_operation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LastOperation {
    /// `in progress`, `succeeded` or `failed`.
    pub state: OperationState,
    /// Where the operation is, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The state of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum OperationState {
    /// Not finished.
    #[serde(rename = "in progress")]
    InProgress,
    /// Finished.
    #[serde(rename = "succeeded")]
    Succeeded,
    /// Failed.
    #[serde(rename = "failed")]
    Failed,
}

/// `GET /v2/service_instances/:instance_id`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InstanceResponse {
    /// The service offering id.
    pub service_id: String,
    /// The plan id (product version running, else asked for).
    pub plan_id: String,
    /// Parameters that are not secret (secret ones are never returned).
    pub parameters: BTreeMap<String, String>,
    /// The SDL version in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance_info: Option<MaintenanceInfo>,
    /// The platform context kept as labels.
    pub metadata: InstanceMetadata,
}

/// Instance metadata: the labels the broker keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct InstanceMetadata {
    /// Label key → value.
    pub labels: BTreeMap<String, String>,
}
