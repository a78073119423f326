//! Service instances under OSB: provision (`PUT`), update (`PATCH`), deprovision (`DELETE`),
//! fetch (`GET`) and `last_operation`, all asynchronous. Each writes through the writing halves
//! of `service_manager::declared` exactly as `/v1` does (`crate::writes`), so the converger
//! carries the `Instance` out, and each answers from the `Instance` alone.
//!
//! Ids: an OSB instance id is any string; the HSM instance id is [`hsm_id`], `osb-` and 24 hex
//! digits of its SHA-256 (always a valid instance id and namespace name), and the OSB id is
//! kept verbatim in the annotation [`OSB_ID`] (and as the label of the same name when it is a
//! valid label value), so a lookup is one read by name, checked against the annotation.
//!
//! Operations: `provision` (the Instance's first generation), `update-<generation>`,
//! `deprovision`; their state comes from the Instance's status ([`phase`], pure). Idempotency:
//! the digest of a provision's service, plan and parameters (secret values left out) is kept
//! in the annotation [`REQUEST_DIGEST`]; the same PUT again is 202 while in progress, 200 once
//! done, and any other is 409. Bindings go beside this module (`bindings.rs`, same helpers:
//! [`find`], [`Phase`], [`query`], [`body`], the error mapping).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use kube::ResourceExt;
use ring::digest;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use service_manager::actions::change::Change;
use service_manager::cluster::Cluster;
use service_manager::declared::{self, Followed, Marks};
use service_manager::request::InstanceRequest;
use service_manager::resource::Instance;

use super::catalog::{self, plan_by_id, plan_id, service_by_offering};
use super::wire::{
    BrokerError, InstanceMetadata, InstanceResponse, LastOperation, MaintenanceInfo, OperationResponse, OperationState,
    ProvisionRequest, UpdateRequest,
};
use crate::cache::Written;
use crate::error::{write_error, ApiError};
use crate::serve::AppState;

/// Annotation (and label, when valid) holding the OSB instance id.
pub const OSB_ID: &str = "broker.stratus.io/instance-id";
/// Annotation holding the digest of the provision request.
pub const REQUEST_DIGEST: &str = "broker.stratus.io/request";
/// Label prefix of the OSB context kept on the Instance.
pub const CONTEXT_PREFIX: &str = "broker.stratus.io/";
/// The longest OSB id accepted.
pub const MAX_ID: usize = 1024;
/// Seconds the platform is asked to wait between polls.
pub const RETRY_AFTER: u32 = 5;

/// The operation names.
pub const PROVISION: &str = "provision";
/// Deprovision.
pub const DEPROVISION: &str = "deprovision";

/// The HSM instance id of OSB instance id `osb_id`.
pub fn hsm_id(osb_id: &str) -> String {
    let hash = digest::digest(&digest::SHA256, osb_id.as_bytes());
    let hex: String = hash.as_ref()[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("osb-{hex}")
}

/// Where an instance's last operation is, from its `Instance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// The operation named runs.
    InProgress(String, String),
    /// The operation named finished.
    Succeeded(String),
    /// The operation named failed; why.
    Failed(String, String),
    /// Being deleted.
    Deleting,
}

impl Phase {
    /// The operation's name.
    pub fn operation(&self) -> &str {
        match self {
            Phase::InProgress(op, _) | Phase::Succeeded(op) | Phase::Failed(op, _) => op,
            Phase::Deleting => DEPROVISION,
        }
    }

    /// Whether an operation still runs.
    pub fn busy(&self) -> bool {
        matches!(self, Phase::InProgress(..) | Phase::Deleting)
    }
}

/// The operation of the Instance's current generation.
pub fn operation_of(instance: &Instance) -> String {
    match instance.metadata.generation.unwrap_or(1) {
        g if g <= 1 => PROVISION.to_string(),
        g => format!("update-{g}"),
    }
}

/// The phase of `instance` (pure).
pub fn phase(instance: &Instance) -> Phase {
    if instance.metadata.deletion_timestamp.is_some() {
        return Phase::Deleting;
    }
    let op = operation_of(instance);
    let id = instance.name_any();
    match declared::follow(&id, instance.status.as_ref(), instance.metadata.generation) {
        Followed::Pending => Phase::InProgress(op, "waiting for the converger".into()),
        Followed::Progressing(state, components) => {
            let ready = components.iter().filter(|c| c.done).count();
            Phase::InProgress(op, format!("{state:?}: {ready}/{} components ready", components.len()).to_lowercase())
        }
        Followed::Running(_) => Phase::Succeeded(op),
        Followed::Failed(reason, message) => {
            let why = if message.is_empty() { reason } else { format!("{reason}: {message}") };
            Phase::Failed(op, why)
        }
    }
}

/// `last_operation`'s answer for `phase` (pure).
pub fn last_operation(phase: &Phase) -> LastOperation {
    match phase {
        Phase::InProgress(op, how) => {
            LastOperation { state: OperationState::InProgress, description: Some(format!("{op}: {how}")) }
        }
        Phase::Deleting => {
            LastOperation { state: OperationState::InProgress, description: Some("deprovision: deleting".into()) }
        }
        Phase::Succeeded(op) => {
            LastOperation { state: OperationState::Succeeded, description: Some(format!("{op}: done")) }
        }
        Phase::Failed(op, why) => LastOperation {
            state: OperationState::Failed,
            description: Some(format!("{op}: {}", super::cut(why, 2000))),
        },
    }
}

/// The query string's values; one that cannot be read is a 400.
pub fn query(raw: Option<&str>) -> Result<BTreeMap<String, String>, BrokerError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|e| BrokerError::bad_request(format!("query: {e}")))?;
    Ok(pairs.into_iter().collect())
}

/// `accepts_incomplete`: `true`, else 422 `AsyncRequired` (absent or `false`), 400 for
/// anything else.
pub fn require_async(query: &BTreeMap<String, String>) -> Result<(), BrokerError> {
    match query.get("accepts_incomplete").map(String::as_str) {
        Some("true") => Ok(()),
        None | Some("false") => Err(BrokerError::async_required()),
        Some(other) => Err(BrokerError::bad_request(format!(
            "accepts_incomplete: {} is not true or false",
            sdl::error::quote(other)
        ))),
    }
}

/// A JSON body read as `T`; a failure is a 400 naming the JSON path (a parameter's value is
/// never repeated).
pub fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BrokerError> {
    crate::writes::parse(bytes).map_err(|e: ApiError| BrokerError::bad_request(e.message))
}

/// The OSB id of the path, checked: non-empty, at most [`MAX_ID`] bytes.
pub fn osb_id(path: Result<Path<String>, axum::extract::rejection::PathRejection>) -> Result<String, BrokerError> {
    let Path(id) = path.map_err(|e| BrokerError::bad_request(format!("instance_id: {}", e.body_text())))?;
    if id.is_empty() || id.len() > MAX_ID {
        return Err(BrokerError::bad_request(format!("instance_id: must be 1 to {MAX_ID} bytes")));
    }
    Ok(id)
}

/// OSB parameters as HSM values: strings as they are, numbers and booleans as their JSON
/// text; anything else is a 400 naming the parameter (its value never repeated).
pub fn parameter_values(parameters: Option<&Map<String, Value>>) -> Result<BTreeMap<String, String>, BrokerError> {
    let mut values = BTreeMap::new();
    for (name, value) in parameters.into_iter().flatten() {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(BrokerError::bad_request(format!(
                    "parameters.{}: must be a string, number or boolean (the value given is not shown)",
                    super::cut(name, 100)
                )))
            }
        };
        values.insert(name.clone(), text);
    }
    Ok(values)
}

/// The OSB context as labels of the Instance: `platform`, `organization_guid`, `space_guid`,
/// `namespace` (and the deprecated top-level GUIDs), each only when a valid label value; the
/// names of those left out.
pub fn context_labels(
    context: Option<&Map<String, Value>>,
    organization_guid: Option<&str>,
    space_guid: Option<&str>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut labels = BTreeMap::new();
    let mut dropped = Vec::new();
    let from_context = |key: &str| context.and_then(|c| c.get(key)).and_then(Value::as_str).map(str::to_string);
    let fields = [
        ("platform", from_context("platform")),
        ("organization-guid", from_context("organization_guid").or(organization_guid.map(str::to_string))),
        ("space-guid", from_context("space_guid").or(space_guid.map(str::to_string))),
        ("namespace", from_context("namespace")),
    ];
    for (key, value) in fields {
        let Some(value) = value else { continue };
        if sdl::names::label_value(&value).is_none() {
            labels.insert(format!("{CONTEXT_PREFIX}{key}"), value);
        } else {
            dropped.push(key.to_string());
        }
    }
    (labels, dropped)
}

/// The digest of a provision: service, plan, parameter names and the values of those that
/// are not secret (`secret` names them; their values are never hashed into an annotation).
pub fn request_digest(
    service_id: &str,
    plan_id: &str,
    values: &BTreeMap<String, String>,
    secret: &dyn Fn(&str) -> bool,
) -> String {
    let shown: BTreeMap<&str, Option<&str>> =
        values.iter().map(|(k, v)| (k.as_str(), (!secret(k)).then_some(v.as_str()))).collect();
    let text = serde_json::json!({ "service_id": service_id, "plan_id": plan_id, "parameters": shown }).to_string();
    let hash = digest::digest(&digest::SHA256, text.as_bytes());
    hash.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The Instance of OSB id `osb_id`, if there is one that carries it (an Instance of that name
/// for another OSB id, or none of the broker's, counts as none).
pub async fn find(cluster: &Cluster, osb_id: &str) -> Result<Option<Instance>, BrokerError> {
    let instance = declared::instance(cluster, &hsm_id(osb_id)).await.map_err(|e| broker_error(write_error(e)))?;
    Ok(instance.filter(|i| i.annotations().get(OSB_ID).map(String::as_str) == Some(osb_id)))
}

/// [`find`] from the server's instance cache once it has synced (what pollers of
/// `last_operation` read: no request to the API server), else from the cluster.
pub async fn find_cached(state: &AppState, cluster: &Cluster, osb_id: &str) -> Result<Option<Instance>, BrokerError> {
    match state.instance_cache().and_then(|cache| cache.instance(&hsm_id(osb_id))) {
        Some(held) => Ok(held
            .filter(|i| i.annotations().get(OSB_ID).map(String::as_str) == Some(osb_id))
            .map(|i| Instance::clone(&i))),
        None => find(cluster, osb_id).await,
    }
}

/// An API error as an OSB error: the same status and description.
pub fn broker_error(error: ApiError) -> BrokerError {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = match status {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::CONFLICT => "Conflict",
        StatusCode::UNPROCESSABLE_ENTITY => "UnprocessableEntity",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        _ => "InternalError",
    };
    BrokerError::new(status, code, error.message)
}

/// What a refused provision becomes: bad data is a 400 (unknown parameter, refused value),
/// the rest keeps its status.
fn provision_error(error: ApiError) -> BrokerError {
    let mut error = broker_error(error);
    if matches!(error.status, 404 | 422) {
        error = BrokerError::bad_request(error.description);
    }
    error
}

/// What a refused update becomes: bad data stays 400, a change the catalog or the service
/// refuses is 422 (not repeatable), the rest keeps its status.
fn update_error(error: ApiError) -> BrokerError {
    let mut error = broker_error(error);
    if matches!(error.status, 404 | 409 | 422) {
        error = BrokerError {
            update_repeatable: Some(false),
            instance_usable: Some(true),
            ..BrokerError::new(StatusCode::UNPROCESSABLE_ENTITY, "UnprocessableEntity", error.description)
        };
    }
    error
}

fn cluster(state: &AppState) -> Result<Cluster, BrokerError> {
    crate::writes::cluster(state).map_err(broker_error)
}

fn accepted(operation: &str) -> Response {
    (StatusCode::ACCEPTED, Json(OperationResponse { operation: Some(operation.to_string()) })).into_response()
}

fn ok_empty() -> Response {
    (StatusCode::OK, Json(serde_json::json!({}))).into_response()
}

/// The request's HSM values split into secret or not by `version`'s SDL.
fn secret_names(
    state: &AppState,
    service: &sdl::catalog::Service,
    version: &sdl::catalog::ServiceVersion,
) -> Vec<String> {
    state
        .catalog()
        .load_sdl(service, version)
        .map(|sdl| sdl.parameters.iter().filter(|p| p.secret).map(|p| p.name.clone()).collect())
        .unwrap_or_default()
}

/// Provisions a service instance: checks the offering, plan, maintenance_info and
/// parameters, then writes the `Instance` (labelled with the OSB id and context) for the
/// converger.
#[utoipa::path(
    put, path = "/v2/service_instances/{instance_id}", tag = "service_instances",
    params(
        ("instance_id" = String, Path, description = "The platform's instance id (any string)"),
        ("accepts_incomplete" = Option<bool>, Query, description = "Must be true: provisioning is asynchronous"),
        ("X-Broker-API-Version" = String, Header, description = "2.13 or later"),
    ),
    request_body(content = ProvisionRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The same provision, finished", body = OperationResponse),
        (status = 202, description = "Accepted (or the same provision, in progress)", body = OperationResponse),
        (status = 400, description = "Malformed request, unknown offering or plan, refused parameters", body = BrokerError),
        (status = 409, description = "The instance id exists with other attributes", body = BrokerError),
        (status = 422, description = "AsyncRequired, MaintenanceInfoConflict, or ConcurrencyError", body = BrokerError),
        (status = 503, description = "No converger runs, or the cluster cannot be reached", body = BrokerError),
    )
)]
pub async fn provision(
    State(state): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    RawQuery(raw): RawQuery,
    bytes: Bytes,
) -> Result<Response, BrokerError> {
    let osb_id = osb_id(path)?;
    let query = query(raw.as_deref())?;
    let request: ProvisionRequest = body(&bytes)?;
    require_async(&query)?;
    let catalog = state.catalog();
    let service = service_by_offering(catalog, &request.service_id).ok_or_else(|| {
        BrokerError::bad_request(format!(
            "service_id: {} is not an offering of this broker's catalog",
            sdl::error::quote(&request.service_id)
        ))
    })?;
    let version = plan_by_id(service, &request.plan_id).ok_or_else(|| {
        BrokerError::bad_request(format!(
            "plan_id: {} is not a plan of {}",
            sdl::error::quote(&request.plan_id),
            service.id
        ))
    })?;
    if let Some(asked) = &request.maintenance_info {
        if asked.version != version.sdl_version {
            return Err(maintenance_conflict(&asked.version, &version.sdl_version));
        }
    }
    // The deprecated organization_guid and space_guid: an empty one (some clients send them so)
    // counts as none.
    let organization_guid = request.organization_guid.as_deref().filter(|g| !g.is_empty());
    let space_guid = request.space_guid.as_deref().filter(|g| !g.is_empty());
    let values = parameter_values(request.parameters.as_ref())?;
    let secret = secret_names(&state, service, version);
    let digest = request_digest(&request.service_id, &request.plan_id, &values, &|n| secret.iter().any(|s| s == n));
    let cluster = cluster(&state)?;
    if let Some(existing) = find(&cluster, &osb_id).await? {
        if existing.annotations().get(REQUEST_DIGEST) != Some(&digest) {
            return Err(BrokerError::new(
                StatusCode::CONFLICT,
                "Conflict",
                "instance_id: a service instance with this id exists with other attributes",
            ));
        }
        return Ok(match phase(&existing) {
            Phase::Deleting => return Err(BrokerError::concurrency("it is being deprovisioned")),
            Phase::Succeeded(_) => (StatusCode::OK, Json(OperationResponse::default())).into_response(),
            Phase::InProgress(op, _) | Phase::Failed(op, _) if op == PROVISION => accepted(PROVISION),
            Phase::InProgress(..) => return Err(BrokerError::concurrency("it is being updated")),
            Phase::Failed(..) => (StatusCode::OK, Json(OperationResponse::default())).into_response(),
        });
    }
    let place = crate::writes::converger(&state, &cluster).await.map_err(broker_error)?;
    let id = hsm_id(&osb_id);
    let (mut labels, dropped) = context_labels(request.context.as_ref(), organization_guid, space_guid);
    if !dropped.is_empty() {
        tracing::warn!(instance = %id, "context values not kept as labels (not valid label values): {}", dropped.join(", "));
    }
    if sdl::names::label_value(&osb_id).is_none() {
        labels.insert(OSB_ID.into(), osb_id.clone());
    }
    let annotations = BTreeMap::from([(OSB_ID.to_string(), osb_id.clone()), (REQUEST_DIGEST.to_string(), digest)]);
    let hsm_request = InstanceRequest {
        service_id: service.id.clone(),
        product_version: Some(version.product_version.clone()),
        sdl_version: Some(version.sdl_version.clone()),
        idl: sdl::Idl::default(),
        idl_source: "the request body".into(),
        sets: values.into_iter().collect(),
        instance_id: Some(id.clone()),
    };
    service_manager::request::check(catalog, &hsm_request).map_err(|e| provision_error(write_error(e.into())))?;
    let marks = Marks { labels, annotations };
    let created = declared::write_create_marked(&cluster, catalog, &hsm_request, state.profile(), &place, &marks)
        .await
        .map_err(|e| provision_error(write_error(e)))?
        .map_err(|why| {
            BrokerError::bad_request(format!("service_id: {why}; this service cannot be provisioned by the broker"))
        })?;
    crate::writes::settle(&state, Written::Instance(created.instance)).await;
    tracing::info!(instance = %id, service = %service.id, "broker: instance provisioned (Instance written)");
    Ok(accepted(PROVISION))
}

fn maintenance_conflict(asked: &str, catalog: &str) -> BrokerError {
    BrokerError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "MaintenanceInfoConflict",
        format!(
            "maintenance_info.version: {} is not the plan's ({}); fetch the catalog again",
            sdl::error::quote(asked),
            sdl::error::quote(catalog)
        ),
    )
}

/// Updates a service instance: another plan (product version) or a newer maintenance_info
/// (SDL version) is an upgrade along the catalog's `upgrade_from` rules; parameters are set.
#[utoipa::path(
    patch, path = "/v2/service_instances/{instance_id}", tag = "service_instances",
    params(
        ("instance_id" = String, Path, description = "The platform's instance id"),
        ("accepts_incomplete" = Option<bool>, Query, description = "Must be true: updates are asynchronous"),
        ("X-Broker-API-Version" = String, Header, description = "2.13 or later"),
    ),
    request_body(content = UpdateRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Nothing to change", body = Object),
        (status = 202, description = "Accepted (or the same update, in progress)", body = OperationResponse),
        (status = 400, description = "Malformed request, wrong offering, unknown plan", body = BrokerError),
        (status = 404, description = "No such service instance", body = BrokerError),
        (status = 422, description = "AsyncRequired, MaintenanceInfoConflict, ConcurrencyError, or a change the catalog refuses", body = BrokerError),
        (status = 503, description = "No converger runs, or the cluster cannot be reached", body = BrokerError),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    RawQuery(raw): RawQuery,
    bytes: Bytes,
) -> Result<Response, BrokerError> {
    let osb_id = osb_id(path)?;
    let query = query(raw.as_deref())?;
    let request: UpdateRequest = body(&bytes)?;
    require_async(&query)?;
    let values = parameter_values(request.parameters.as_ref())?;
    let cluster = cluster(&state)?;
    let Some(current) = find(&cluster, &osb_id).await? else {
        return Err(BrokerError::new(StatusCode::NOT_FOUND, "NotFound", "instance_id: no such service instance"));
    };
    let catalog = state.catalog();
    let service = catalog.service(&current.spec.service_id).map_err(|e| broker_error(e.into()))?;
    if request.service_id != catalog::offering_id(&service.id) {
        return Err(BrokerError::bad_request("service_id: not the offering of this service instance"));
    }
    let current_pv = current.spec.product_version.clone().unwrap_or_default();
    let current_sv = current.spec.sdl_version.clone().unwrap_or_default();
    let plan = match &request.plan_id {
        Some(id) => plan_by_id(service, id).ok_or_else(|| {
            BrokerError::bad_request(format!("plan_id: {} is not a plan of {}", sdl::error::quote(id), service.id))
        })?,
        None => service.version(Some(&current_pv), None).map_err(|e| broker_error(e.into()))?,
    };
    if let Some(asked) = &request.maintenance_info {
        if asked.version != plan.sdl_version && !(request.plan_id.is_none() && asked.version == current_sv) {
            return Err(maintenance_conflict(&asked.version, &plan.sdl_version));
        }
    }
    let other_plan = plan.product_version != current_pv;
    let newer = request.maintenance_info.as_ref().is_some_and(|m| m.version != current_sv);
    let target = (other_plan || newer).then(|| (plan.product_version.clone(), plan.sdl_version.clone()));
    let phase = phase(&current);
    // The same update again while it runs: the same operation.
    let asked_already = target.as_ref().is_none_or(|(pv, sv)| {
        current.spec.product_version.as_deref() == Some(pv) && current.spec.sdl_version.as_deref() == Some(sv)
    }) && values.iter().all(|(k, v)| current.spec.parameters.get(k) == Some(v));
    match &phase {
        Phase::Deleting => return Err(BrokerError::concurrency("it is being deprovisioned")),
        Phase::InProgress(op, _) if asked_already && op != PROVISION => return Ok(accepted(op)),
        Phase::InProgress(op, _) => return Err(BrokerError::concurrency(op)),
        _ => {}
    }
    if target.is_none() && values.is_empty() {
        return Ok(ok_empty());
    }
    let place = crate::writes::converger(&state, &cluster).await.map_err(broker_error)?;
    let change = Change {
        target: target.map(|(pv, sv)| (pv, Some(sv))),
        sets: values.into_iter().collect(),
        idl: None,
        wait: false,
        readiness: false,
        timeout: state.request_timeout(),
    };
    let changed = declared::write_change(&cluster, catalog, &current, &change, state.profile(), &place)
        .await
        .map_err(|e| update_error(write_error(e)))?;
    if changed.instance.metadata.generation == current.metadata.generation {
        return Ok(ok_empty());
    }
    crate::writes::settle(&state, Written::Instance(changed.instance.clone())).await;
    tracing::info!(instance = %current.name_any(), to = %format!("{}/{}", changed.product_version, changed.sdl_version), "broker: instance updated (Instance written)");
    Ok(accepted(&operation_of(&changed.instance)))
}

/// Deprovisions a service instance: its `Instance` is deleted and the converger deletes the
/// instance — also one still being provisioned (orphan mitigation).
#[utoipa::path(
    delete, path = "/v2/service_instances/{instance_id}", tag = "service_instances",
    params(
        ("instance_id" = String, Path, description = "The platform's instance id"),
        ("service_id" = String, Query, description = "The instance's offering id"),
        ("plan_id" = String, Query, description = "The instance's plan id"),
        ("accepts_incomplete" = Option<bool>, Query, description = "Must be true: deprovisioning is asynchronous"),
        ("X-Broker-API-Version" = String, Header, description = "2.13 or later"),
    ),
    responses(
        (status = 202, description = "Accepted (or already being deprovisioned)", body = OperationResponse),
        (status = 400, description = "service_id or plan_id missing, or a malformed query", body = BrokerError),
        (status = 410, description = "No such service instance", body = Object),
        (status = 422, description = "AsyncRequired", body = BrokerError),
        (status = 503, description = "No converger runs, or the cluster cannot be reached", body = BrokerError),
    )
)]
pub async fn deprovision(
    State(state): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, BrokerError> {
    let osb_id = osb_id(path)?;
    let query = query(raw.as_deref())?;
    for field in ["service_id", "plan_id"] {
        if query.get(field).is_none_or(|v| v.is_empty()) {
            return Err(BrokerError::bad_request(format!("{field}: the query parameter is required")));
        }
    }
    require_async(&query)?;
    let cluster = cluster(&state)?;
    let Some(current) = find(&cluster, &osb_id).await? else {
        return Ok((StatusCode::GONE, Json(serde_json::json!({}))).into_response());
    };
    if current.metadata.deletion_timestamp.is_none() {
        crate::writes::converger(&state, &cluster).await.map_err(broker_error)?;
        declared::start_delete(&cluster, &current, false).await.map_err(|e| broker_error(write_error(e)))?;
        crate::writes::settle(&state, Written::ChangedFrom(current.clone())).await;
        tracing::info!(instance = %current.name_any(), "broker: instance deprovisioned (Instance deleted)");
    }
    Ok(accepted(DEPROVISION))
}

/// The state of an instance's last operation, from its `Instance`; 410 once a deprovision
/// finished.
#[utoipa::path(
    get, path = "/v2/service_instances/{instance_id}/last_operation", tag = "service_instances",
    params(
        ("instance_id" = String, Path, description = "The platform's instance id"),
        ("service_id" = Option<String>, Query, description = "Hint (ignored)"),
        ("plan_id" = Option<String>, Query, description = "Hint (ignored)"),
        ("operation" = Option<String>, Query, description = "The operation a 202 named"),
        ("X-Broker-API-Version" = String, Header, description = "2.13 or later"),
    ),
    responses(
        (status = 200, description = "The state; `Retry-After` while in progress", body = LastOperation,
            headers(("Retry-After" = String, description = "Seconds to wait before polling again"))),
        (status = 400, description = "A malformed query", body = BrokerError),
        (status = 404, description = "No such service instance", body = BrokerError),
        (status = 410, description = "The deprovision finished: the instance is gone", body = Object),
    )
)]
pub async fn get_last_operation(
    State(state): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, BrokerError> {
    let osb_id = osb_id(path)?;
    let query = query(raw.as_deref())?;
    let cluster = cluster(&state)?;
    let Some(current) = find_cached(&state, &cluster, &osb_id).await? else {
        if query.get("operation").map(String::as_str) == Some(DEPROVISION) {
            return Ok((StatusCode::GONE, Json(serde_json::json!({}))).into_response());
        }
        return Err(BrokerError::new(StatusCode::NOT_FOUND, "NotFound", "instance_id: no such service instance"));
    };
    let phase = phase(&current);
    let mut response = Json(last_operation(&phase)).into_response();
    if phase.busy() {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER));
    }
    Ok(response)
}

/// A service instance: its offering, plan, parameters that are not secret, maintenance_info
/// and the context labels. 404 while it is being provisioned, 422 while it is updated.
#[utoipa::path(
    get, path = "/v2/service_instances/{instance_id}", tag = "service_instances",
    params(
        ("instance_id" = String, Path, description = "The platform's instance id"),
        ("service_id" = Option<String>, Query, description = "Hint (ignored)"),
        ("plan_id" = Option<String>, Query, description = "Hint (ignored)"),
        ("X-Broker-API-Version" = String, Header, description = "2.13 or later"),
    ),
    responses(
        (status = 200, description = "The service instance; no secret value", body = InstanceResponse),
        (status = 404, description = "No such service instance, or it is being provisioned", body = BrokerError),
        (status = 422, description = "ConcurrencyError: it is being updated or deprovisioned", body = BrokerError),
    )
)]
pub async fn fetch(
    State(state): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, BrokerError> {
    let osb_id = osb_id(path)?;
    query(raw.as_deref())?;
    let cluster = cluster(&state)?;
    let not_found = || BrokerError::new(StatusCode::NOT_FOUND, "NotFound", "instance_id: no such service instance");
    let Some(current) = find(&cluster, &osb_id).await? else { return Err(not_found()) };
    match phase(&current) {
        Phase::InProgress(op, _) | Phase::Failed(op, _) if op == PROVISION => return Err(not_found()),
        Phase::InProgress(op, _) => return Err(BrokerError::concurrency(&op)),
        Phase::Deleting => return Err(BrokerError::concurrency(DEPROVISION)),
        _ => {}
    }
    let status = current.status.as_ref();
    let pv =
        status.and_then(|s| s.product_version.clone()).or(current.spec.product_version.clone()).unwrap_or_default();
    let sv = status.and_then(|s| s.sdl_version.clone()).or(current.spec.sdl_version.clone());
    let labels = current
        .labels()
        .iter()
        .filter(|(k, _)| k.starts_with(CONTEXT_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Json(InstanceResponse {
        service_id: catalog::offering_id(&current.spec.service_id),
        plan_id: plan_id(&current.spec.service_id, &pv),
        parameters: current.spec.parameters.clone(),
        maintenance_info: sv.map(|version| MaintenanceInfo { version, description: None }),
        metadata: InstanceMetadata { labels },
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use service_manager::resource::{InstanceSpec, InstanceState, InstanceStatus};

    #[test]
    fn every_osb_id_maps_to_a_valid_instance_id() {
        for id in ["6a1ec9c8-0e5c-4f0b-9bb6-7d6d2f1a2b3c", "Not A Valid/Name", "ü", "x".repeat(1024).as_str()] {
            let hsm = hsm_id(id);
            assert_eq!(sdl::names::dns_label(&hsm), None, "{hsm}");
            assert_eq!(hsm, hsm_id(id));
        }
        assert_ne!(hsm_id("a"), hsm_id("b"));
    }

    #[test]
    fn context_becomes_labels_when_valid() {
        let context =
            serde_json::json!({"platform": "cloudfoundry", "organization_guid": "org-1", "space_guid": "bad value!"});
        let (labels, dropped) = context_labels(context.as_object(), None, Some("space-2"));
        assert_eq!(labels["broker.stratus.io/platform"], "cloudfoundry");
        assert_eq!(labels["broker.stratus.io/organization-guid"], "org-1");
        assert!(!labels.contains_key("broker.stratus.io/space-guid"));
        assert_eq!(dropped, vec!["space-guid".to_string()]);
        let (labels, _) = context_labels(None, Some("org-9"), Some("space-9"));
        assert_eq!(labels.len(), 2);
    }

    #[test]
    fn parameters_are_scalars_and_the_digest_hides_secret_values() {
        let given = serde_json::json!({"a": "x", "n": 3, "b": true});
        let values = parameter_values(given.as_object()).unwrap();
        assert_eq!((values["a"].as_str(), values["n"].as_str(), values["b"].as_str()), ("x", "3", "true"));
        let nested = serde_json::json!({"o": {"secret": 1}});
        let refused = parameter_values(nested.as_object()).unwrap_err();
        assert_eq!(refused.status, 400);
        assert!(!refused.description.contains("secret"), "{}", refused.description);
        let secret = |n: &str| n == "a";
        let one = request_digest("s", "p", &values, &secret);
        let mut other = values.clone();
        other.insert("a".into(), "y".into());
        assert_eq!(one, request_digest("s", "p", &other, &secret), "a secret value is not in the digest");
        other.insert("n".into(), "4".into());
        assert_ne!(one, request_digest("s", "p", &other, &secret));
        assert_ne!(one, request_digest("s", "q", &values, &secret));
    }

    #[test]
    fn accepts_incomplete_must_be_true() {
        let q = |raw: &str| query(Some(raw)).unwrap();
        assert!(require_async(&q("accepts_incomplete=true")).is_ok());
        assert_eq!(require_async(&q("")).unwrap_err().error.as_deref(), Some("AsyncRequired"));
        assert_eq!(require_async(&q("accepts_incomplete=false")).unwrap_err().status, 422);
        assert_eq!(require_async(&q("accepts_incomplete=yes")).unwrap_err().status, 400);
    }

    fn instance(generation: i64, observed: i64, state: Option<InstanceState>) -> Instance {
        let mut i = Instance::new("osb-x", InstanceSpec { service_id: "a.b.c".into(), ..InstanceSpec::default() });
        i.metadata.generation = Some(generation);
        i.status = state.map(|state| InstanceStatus {
            state: Some(state),
            observed_generation: Some(observed),
            ..InstanceStatus::default()
        });
        i
    }

    #[test]
    fn phases_follow_the_instance_status() {
        assert!(matches!(phase(&instance(1, 0, None)), Phase::InProgress(op, _) if op == "provision"));
        assert!(matches!(phase(&instance(1, 1, Some(InstanceState::Creating))), Phase::InProgress(..)));
        assert_eq!(phase(&instance(1, 1, Some(InstanceState::Running))), Phase::Succeeded("provision".into()));
        assert!(
            matches!(phase(&instance(3, 2, Some(InstanceState::Running))), Phase::InProgress(op, _) if op == "update-3")
        );
        assert_eq!(phase(&instance(3, 3, Some(InstanceState::Running))), Phase::Succeeded("update-3".into()));
        assert!(matches!(phase(&instance(1, 1, Some(InstanceState::Failed))), Phase::Failed(..)));
        let mut deleting = instance(1, 1, Some(InstanceState::Running));
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
        assert_eq!(phase(&deleting), Phase::Deleting);
        assert_eq!(last_operation(&Phase::Deleting).state, OperationState::InProgress);
        assert_eq!(last_operation(&Phase::Succeeded("provision".into())).state, OperationState::Succeeded);
    }
}
