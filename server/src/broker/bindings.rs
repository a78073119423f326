//! Service bindings under OSB: bind (`PUT`), unbind (`DELETE`), fetch (`GET`) and the
//! binding's `last_operation`, asynchronous like instances. Each calls the writing halves of
//! `service_manager::actions::binding` — the binding Secret (Service Binding for Kubernetes
//! layout) in the instance's namespace, owned by its `Instance`, and the bind/unbind Jobs the
//! SDL names — so a binding made here is the one `hsm list-bindings` shows.
//!
//! Ids: an OSB binding id is any string; the HSM binding id is [`hsm_binding_id`] (`osb-` and
//! 24 hex digits of its SHA-256), and the OSB id is kept in the annotation [`OSB_BINDING_ID`]
//! of the binding Secret, with the digest of the request in [`REQUEST_DIGEST`] (same PUT again:
//! 202 while the bind Job runs, 200 once ready; any other: 409).
//!
//! Operations: `bind` and `unbind`. The binding's state comes from its Jobs: creating → `in
//! progress`, ready → `succeeded`, failed → `failed`, deleting → `in progress` (unbind); a
//! binding gone after an unbind is 410 to `last_operation`.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use kube::ResourceExt;
use ring::digest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use service_manager::actions::binding::{self, BindRequest, BindingState, BindingSummary};
use service_manager::cluster::Cluster;
use service_manager::instance::InstanceError;
use service_manager::resource::Instance;
use utoipa::ToSchema;

use super::catalog::{offering_id, service_by_offering};
use super::instances::{
    broker_error, context_labels, find, phase, query, require_async, Phase, CONTEXT_PREFIX, MAX_ID, RETRY_AFTER,
};
use super::wire::{BrokerError, LastOperation, OperationResponse, OperationState};
use crate::error::write_error;
use crate::serve::AppState;

/// Annotation (and label, when valid) of the binding Secret holding the OSB binding id.
pub const OSB_BINDING_ID: &str = "broker.stratus.io/binding-id";
/// Annotation of the binding Secret holding the digest of the bind request.
pub const REQUEST_DIGEST: &str = "broker.stratus.io/request";
/// The operation names.
pub const BIND: &str = "bind";
/// Unbind.
pub const UNBIND: &str = "unbind";

/// The HSM binding id of OSB binding id `osb_id`.
pub fn hsm_binding_id(osb_id: &str) -> String {
    let hash = digest::digest(&digest::SHA256, osb_id.as_bytes());
    let hex: String = hash.as_ref()[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("osb-{hex}")
}

/// The body of `PUT /v2/service_instances/:instance_id/service_bindings/:binding_id`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct BindingRequest {
    /// The instance's service offering id (empty: the instance's).
    pub service_id: String,
    /// The instance's plan id (part of the request's identity).
    pub plan_id: String,
    /// The platform's context (`platform`, `organization_guid`, `space_guid`, `namespace`, …),
    /// kept as labels of the binding Secret where valid.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
    /// Deprecated in favour of `bind_resource.app_guid`.
    #[serde(default)]
    pub app_guid: Option<String>,
    /// What the binding is for (`app_guid`, `route`); part of the request's identity.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub bind_resource: Option<Map<String, Value>>,
    /// Bindings take no parameters: a non-empty object is refused.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
}

/// A binding's credentials (`200`/`201` of bind, and the fetch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BindingResponse {
    /// The binding Secret's keys and values (Service Binding for Kubernetes layout: `type`,
    /// `provider`, `host`, `port`, `username`, `password`, `uri`, …).
    pub credentials: BTreeMap<String, String>,
    /// Where the credentials also are on the cluster.
    pub metadata: BindingMetadata,
}

/// Binding metadata: the Secret that holds the credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BindingMetadata {
    /// Namespace of the binding Secret (the instance's).
    pub namespace: String,
    /// Name of the binding Secret.
    pub secret_name: String,
}

/// The two ids of a binding path, checked like instance ids.
fn ids(
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> Result<(String, String), BrokerError> {
    let Path((instance, binding)) = path.map_err(|e| BrokerError::bad_request(format!("path: {}", e.body_text())))?;
    for (name, id) in [("instance_id", &instance), ("binding_id", &binding)] {
        if id.is_empty() || id.len() > MAX_ID {
            return Err(BrokerError::bad_request(format!("{name}: must be 1 to {MAX_ID} bytes")));
        }
    }
    Ok((instance, binding))
}

fn cluster(state: &AppState) -> Result<Cluster, BrokerError> {
    crate::writes::cluster(state).map_err(broker_error)
}

fn no_instance() -> BrokerError {
    BrokerError::new(StatusCode::NOT_FOUND, "NotFound", "instance_id: no such service instance")
}

fn no_binding() -> BrokerError {
    BrokerError::new(StatusCode::NOT_FOUND, "NotFound", "binding_id: no such service binding")
}

/// A binding error of service-manager as an OSB error.
fn binding_error(error: InstanceError) -> BrokerError {
    match error {
        InstanceError::NotBindable { reason, .. } => {
            BrokerError::bad_request(format!("service_id: this service instance cannot be bound: {reason}"))
        }
        InstanceError::NotFound(_) => no_instance(),
        InstanceError::BindingNotFound { .. } => no_binding(),
        InstanceError::Terminating(_) => BrokerError::concurrency("the service instance is being deprovisioned"),
        other => broker_error(write_error(other)),
    }
}

/// The binding `osb_binding` of `instance`, if there is one that carries that OSB id.
async fn find_binding(
    cluster: &Cluster,
    instance: &Instance,
    osb_binding: &str,
) -> Result<Option<BindingSummary>, BrokerError> {
    let summary = binding::get(cluster, &instance.name_any(), &hsm_binding_id(osb_binding)).await;
    let summary = match summary {
        Err(InstanceError::NotFound(_)) => return Ok(None),
        other => other.map_err(binding_error)?,
    };
    // A binding Secret already removed (unbind running) has no annotations left to check.
    Ok(summary.filter(|s| {
        s.state == BindingState::Deleting || s.annotations.get(OSB_BINDING_ID).map(String::as_str) == Some(osb_binding)
    }))
}

/// The instance of OSB id `osb_instance`, ready for bindings: 404 without one, 422
/// `ConcurrencyError` while an operation runs on it.
async fn bindable_instance(cluster: &Cluster, osb_instance: &str) -> Result<Instance, BrokerError> {
    let instance = find(cluster, osb_instance).await?.ok_or_else(no_instance)?;
    match phase(&instance) {
        Phase::Succeeded(_) | Phase::Failed(..) => Ok(instance),
        Phase::InProgress(op, _) => Err(BrokerError::concurrency(&format!("the service instance's {op} runs"))),
        Phase::Deleting => Err(BrokerError::concurrency("the service instance is being deprovisioned")),
    }
}

/// The digest of a bind request: offering, plan and what it is bound to (pure).
pub fn request_digest(request: &BindingRequest) -> String {
    let app = request
        .bind_resource
        .as_ref()
        .and_then(|r| r.get("app_guid"))
        .and_then(Value::as_str)
        .or(request.app_guid.as_deref());
    let route = request.bind_resource.as_ref().and_then(|r| r.get("route")).and_then(Value::as_str);
    let text = serde_json::json!({
        "service_id": request.service_id, "plan_id": request.plan_id, "app_guid": app, "route": route,
    })
    .to_string();
    digest::digest(&digest::SHA256, text.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn accepted(operation: &str) -> Response {
    (StatusCode::ACCEPTED, Json(OperationResponse { operation: Some(operation.to_string()) })).into_response()
}

/// The credentials of a ready binding as OSB gives them.
async fn credentials(cluster: &Cluster, summary: &BindingSummary) -> Result<BindingResponse, BrokerError> {
    let credentials = binding::credentials(cluster, &summary.instance_id, &summary.id).await.map_err(binding_error)?;
    Ok(BindingResponse {
        credentials,
        metadata: BindingMetadata { namespace: summary.instance_id.clone(), secret_name: summary.secret_name.clone() },
    })
}

/// Binds: checks the offering, plan and body, then writes the binding Secret (and the bind
/// Job the SDL names); 201 with the credentials when the binding is ready at once, else 202.
#[utoipa::path(
    put, path = "/v2/service_instances/{instance_id}/service_bindings/{binding_id}", tag = "service_bindings",
    params(
        ("instance_id" = String, Path, description = "The platform's instance id"),
        ("binding_id" = String, Path, description = "The platform's binding id (any string)"),
        ("accepts_incomplete" = Option<bool>, Query, description = "Must be true: binding may be asynchronous"),
        ("X-Broker-API-Version" = String, Header, description = "2.13 or later"),
    ),
    request_body(content = BindingRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The same binding, ready", body = BindingResponse),
        (status = 201, description = "Bound: the credentials", body = BindingResponse),
        (status = 202, description = "Accepted: the bind Job runs (or the same binding, in progress)", body = OperationResponse),
        (status = 400, description = "Malformed request, another offering or plan than the instance's, parameters, a service that cannot be bound", body = BrokerError),
        (status = 404, description = "No such service instance", body = BrokerError),
        (status = 409, description = "The binding id exists with other attributes", body = BrokerError),
        (status = 422, description = "AsyncRequired, or ConcurrencyError (an operation runs on the instance or the binding)", body = BrokerError),
        (status = 503, description = "The cluster cannot be reached", body = BrokerError),
    )
)]
pub async fn bind(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    RawQuery(raw): RawQuery,
    bytes: Bytes,
) -> Result<Response, BrokerError> {
    let (osb_instance, osb_binding) = ids(path)?;
    let query = query(raw.as_deref())?;
    let request: BindingRequest = super::instances::body(&bytes)?;
    require_async(&query)?;
    if request.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
        return Err(BrokerError::bad_request("parameters: bindings of this broker take no parameters"));
    }
    let cluster = cluster(&state)?;
    let instance = bindable_instance(&cluster, &osb_instance).await?;
    // An empty `service_id` counts as not given (some clients, rocs among them, send ""):
    // the instance's own offering is meant. Any other must be the instance's.
    let service_id = &instance.spec.service_id;
    if !request.service_id.is_empty()
        && service_by_offering(state.catalog(), &request.service_id).map(|s| &s.id) != Some(service_id)
    {
        return Err(BrokerError::bad_request(format!(
            "service_id: {} is not the service offering of this instance ({})",
            sdl::error::quote(&request.service_id),
            offering_id(service_id)
        )));
    }
    let digest = request_digest(&request);
    if let Some(existing) = find_binding(&cluster, &instance, &osb_binding).await? {
        if existing.annotations.get(REQUEST_DIGEST) != Some(&digest) {
            return Err(BrokerError::new(
                StatusCode::CONFLICT,
                "Conflict",
                "binding_id: a service binding with this id exists with other attributes",
            ));
        }
        return match &existing.state {
            BindingState::Ready => Ok((StatusCode::OK, Json(credentials(&cluster, &existing).await?)).into_response()),
            BindingState::Creating => Ok(accepted(BIND)),
            BindingState::Failed { .. } => Ok(accepted(BIND)),
            BindingState::Deleting => Err(BrokerError::concurrency("the service binding is being unbound")),
        };
    }
    let organization_guid = None;
    let (mut labels, dropped) = context_labels(request.context.as_ref(), organization_guid, None);
    if !dropped.is_empty() {
        tracing::warn!("binding context values not kept as labels (not valid label values): {}", dropped.join(", "));
    }
    labels.retain(|k, _| k.starts_with(CONTEXT_PREFIX));
    if sdl::names::label_value(&osb_binding).is_none() {
        labels.insert(OSB_BINDING_ID.into(), osb_binding.clone());
    }
    let annotations =
        BTreeMap::from([(OSB_BINDING_ID.to_string(), osb_binding.clone()), (REQUEST_DIGEST.to_string(), digest)]);
    let request =
        BindRequest { instance_id: instance.name_any(), binding_id: hsm_binding_id(&osb_binding), labels, annotations };
    let summary = binding::start_create(&cluster, &request).await.map_err(binding_error)?;
    tracing::info!(instance = %request.instance_id, binding = %request.binding_id, "broker: binding created");
    match summary.state {
        BindingState::Ready => Ok((StatusCode::CREATED, Json(credentials(&cluster, &summary).await?)).into_response()),
        _ => Ok(accepted(BIND)),
    }
}

/// Unbinds: the binding Secret is removed and the unbind Job the SDL names runs; 200 when
/// nothing is left to run, 202 while the unbind Job runs, 410 when there is no such binding.
#[utoipa::path(
    delete, path = "/v2/service_instances/{instance_id}/service_bindings/{binding_id}", tag = "service_bindings",
    params(
        ("instance_id" = String, Path, description = "The platform's instance id"),
        ("binding_id" = String, Path, description = "The platform's binding id"),
        ("service_id" = Option<String>, Query, description = "The offering id"),
        ("plan_id" = Option<String>, Query, description = "The plan id"),
        ("accepts_incomplete" = Option<bool>, Query, description = "Must be true: unbinding may be asynchronous"),
        ("X-Broker-API-Version" = String, Header, description = "2.13 or later"),
    ),
    responses(
        (status = 200, description = "Unbound", body = Object),
        (status = 202, description = "Accepted: the unbind Job runs", body = OperationResponse),
        (status = 400, description = "A malformed query", body = BrokerError),
        (status = 410, description = "No such service binding (or service instance)", body = Object),
        (status = 422, description = "AsyncRequired, or ConcurrencyError (the instance is being deprovisioned)", body = BrokerError),
        (status = 503, description = "The cluster cannot be reached", body = BrokerError),
    )
)]
pub async fn unbind(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, BrokerError> {
    let (osb_instance, osb_binding) = ids(path)?;
    let query = query(raw.as_deref())?;
    require_async(&query)?;
    let cluster = cluster(&state)?;
    let gone = || (StatusCode::GONE, Json(serde_json::json!({}))).into_response();
    let Some(instance) = find(&cluster, &osb_instance).await? else { return Ok(gone()) };
    if instance.metadata.deletion_timestamp.is_some() {
        return Err(BrokerError::concurrency("the service instance is being deprovisioned"));
    }
    let Some(existing) = find_binding(&cluster, &instance, &osb_binding).await? else { return Ok(gone()) };
    if existing.state != BindingState::Deleting {
        binding::start_delete(&cluster, &existing.instance_id, &existing.id).await.map_err(binding_error)?;
        tracing::info!(instance = %existing.instance_id, binding = %existing.id, "broker: binding deleted");
    }
    match binding::get(&cluster, &existing.instance_id, &existing.id).await.map_err(binding_error)? {
        None => Ok((StatusCode::OK, Json(serde_json::json!({}))).into_response()),
        Some(_) => Ok(accepted(UNBIND)),
    }
}

/// A binding's credentials; 404 while it is being made (or when there is none), 422 while it
/// is being unbound.
#[utoipa::path(
    get, path = "/v2/service_instances/{instance_id}/service_bindings/{binding_id}", tag = "service_bindings",
    params(
        ("instance_id" = String, Path, description = "The platform's instance id"),
        ("binding_id" = String, Path, description = "The platform's binding id"),
        ("service_id" = Option<String>, Query, description = "Hint (ignored)"),
        ("plan_id" = Option<String>, Query, description = "Hint (ignored)"),
        ("X-Broker-API-Version" = String, Header, description = "2.13 or later"),
    ),
    responses(
        (status = 200, description = "The binding's credentials", body = BindingResponse),
        (status = 400, description = "A malformed query", body = BrokerError),
        (status = 404, description = "No such service binding, or it is being made", body = BrokerError),
        (status = 422, description = "ConcurrencyError: it is being unbound", body = BrokerError),
        (status = 503, description = "The cluster cannot be reached", body = BrokerError),
    )
)]
pub async fn fetch(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, BrokerError> {
    let (osb_instance, osb_binding) = ids(path)?;
    query(raw.as_deref())?;
    let cluster = cluster(&state)?;
    let instance = find(&cluster, &osb_instance).await?.ok_or_else(no_binding)?;
    let existing = find_binding(&cluster, &instance, &osb_binding).await?.ok_or_else(no_binding)?;
    match existing.state {
        BindingState::Ready => Ok(Json(credentials(&cluster, &existing).await?).into_response()),
        BindingState::Deleting => Err(BrokerError::concurrency("the service binding is being unbound")),
        BindingState::Creating | BindingState::Failed { .. } => Err(no_binding()),
    }
}

/// The state of a binding's last operation; 410 once an unbind finished.
#[utoipa::path(
    get, path = "/v2/service_instances/{instance_id}/service_bindings/{binding_id}/last_operation", tag = "service_bindings",
    params(
        ("instance_id" = String, Path, description = "The platform's instance id"),
        ("binding_id" = String, Path, description = "The platform's binding id"),
        ("service_id" = Option<String>, Query, description = "Hint (ignored)"),
        ("plan_id" = Option<String>, Query, description = "Hint (ignored)"),
        ("operation" = Option<String>, Query, description = "`bind` or `unbind`, as the 202 said"),
        ("X-Broker-API-Version" = String, Header, description = "2.13 or later"),
    ),
    responses(
        (status = 200, description = "The state; `Retry-After` while in progress", body = LastOperation,
            headers(("Retry-After" = String, description = "Seconds to wait before polling again"))),
        (status = 400, description = "A malformed query", body = BrokerError),
        (status = 404, description = "No such service binding", body = BrokerError),
        (status = 410, description = "The unbind finished: the binding is gone", body = Object),
        (status = 503, description = "The cluster cannot be reached", body = BrokerError),
    )
)]
pub async fn get_last_operation(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, BrokerError> {
    let (osb_instance, osb_binding) = ids(path)?;
    let query = query(raw.as_deref())?;
    let unbinding = query.get("operation").map(String::as_str) == Some(UNBIND);
    let gone = || Ok((StatusCode::GONE, Json(serde_json::json!({}))).into_response());
    let cluster = cluster(&state)?;
    let Some(instance) = find(&cluster, &osb_instance).await? else {
        return if unbinding { gone() } else { Err(no_binding()) };
    };
    let Some(existing) = find_binding(&cluster, &instance, &osb_binding).await? else {
        return if unbinding { gone() } else { Err(no_binding()) };
    };
    let answer = binding_operation(&existing.state);
    let busy = answer.state == OperationState::InProgress;
    let mut response = Json(answer).into_response();
    if busy {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER));
    }
    Ok(response)
}

/// `last_operation`'s answer for a binding in `state` (pure).
pub fn binding_operation(state: &BindingState) -> LastOperation {
    let (state, description) = match state {
        BindingState::Creating => (OperationState::InProgress, "bind: the bind Job runs".to_string()),
        BindingState::Ready => (OperationState::Succeeded, "bind: done".to_string()),
        BindingState::Failed { message } => (OperationState::Failed, format!("bind: {}", super::cut(message, 2000))),
        BindingState::Deleting => (OperationState::InProgress, "unbind: the unbind Job runs".to_string()),
    };
    LastOperation { state, description: Some(description) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_osb_binding_id_maps_to_a_valid_binding_id() {
        for id in ["0b1c2d3e-0000-4000-8000-000000000001", "Any Id/At All", "x".repeat(1024).as_str()] {
            let hsm = hsm_binding_id(id);
            assert_eq!(sdl::names::dns_label(&hsm), None, "{hsm}");
            assert!(hsm.len() <= 50, "{hsm}");
            assert_eq!(hsm, hsm_binding_id(id));
        }
        assert_ne!(hsm_binding_id("a"), hsm_binding_id("b"));
    }

    #[test]
    fn the_request_digest_covers_offering_plan_and_what_is_bound() {
        let request = |app: Option<&str>| BindingRequest {
            service_id: "s".into(),
            plan_id: "p".into(),
            context: None,
            app_guid: None,
            bind_resource: app.map(|a| serde_json::json!({ "app_guid": a }).as_object().unwrap().clone()),
            parameters: None,
        };
        assert_eq!(request_digest(&request(Some("a"))), request_digest(&request(Some("a"))));
        assert_ne!(request_digest(&request(Some("a"))), request_digest(&request(Some("b"))));
        assert_ne!(request_digest(&request(None)), request_digest(&request(Some("a"))));
        let deprecated = BindingRequest { app_guid: Some("a".into()), ..request(None) };
        assert_eq!(request_digest(&deprecated), request_digest(&request(Some("a"))));
    }

    #[test]
    fn binding_states_become_operation_states() {
        assert_eq!(binding_operation(&BindingState::Creating).state, OperationState::InProgress);
        assert_eq!(binding_operation(&BindingState::Ready).state, OperationState::Succeeded);
        let failed = binding_operation(&BindingState::Failed { message: "exit 1".into() });
        assert_eq!((failed.state, failed.description.as_deref()), (OperationState::Failed, Some("bind: exit 1")));
        assert_eq!(binding_operation(&BindingState::Deleting).state, OperationState::InProgress);
    }
}
