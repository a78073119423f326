//! The binding routes: `GET|POST /v1/instances/{id}/bindings`,
//! `GET|DELETE /v1/instances/{id}/bindings/{bid}` and
//! `GET /v1/instances/{id}/bindings/{bid}/credentials` — thin handlers over
//! `service_manager::actions::binding` (the same calls as `hsm create-binding` and the
//! others). Bindings do not go through the converger: the writes answer 202 with the binding's
//! summary at once and clients follow it with `GET`. Listings and summaries never carry a
//! credential; only the credentials route does, and it needs the developer role
//! ([`crate::auth::required_role`]). `docs/bindings.md`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use service_manager::actions::binding::{self, BindRequest, BindingState, BindingSummary};
use service_manager::instance::InstanceError;
use utoipa::ToSchema;

use crate::error::{self, ApiError};
use crate::routes::ApiPath;
use crate::serve::AppState;
use crate::writes::{cluster, ApiJson};

/// A binding's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BindingStateName {
    /// The bind job runs.
    Creating,
    /// The binding Secret is there and the bind job (if any) completed.
    Ready,
    /// The bind or unbind job failed (`message` says why).
    Failed,
    /// The binding Secret is gone and the unbind job runs.
    Deleting,
}

/// A binding, without its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Binding {
    /// Binding id.
    pub id: String,
    /// Instance id.
    pub instance_id: String,
    /// State.
    pub state: BindingStateName,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The binding Secret's name in the instance's namespace (Service Binding for Kubernetes
    /// layout: `type`, `provider`, `host`, `port`, `username`, `password`, `uri`, …).
    pub secret_name: String,
    /// When the binding was created (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Labels given when it was made.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations given when it was made.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The wire form of a binding summary (pure).
pub fn binding(summary: &BindingSummary) -> Binding {
    let (state, message) = match &summary.state {
        BindingState::Creating => (BindingStateName::Creating, None),
        BindingState::Ready => (BindingStateName::Ready, None),
        BindingState::Failed { message } => (BindingStateName::Failed, Some(message.clone())),
        BindingState::Deleting => (BindingStateName::Deleting, None),
    };
    Binding {
        id: summary.id.clone(),
        instance_id: summary.instance_id.clone(),
        state,
        message,
        secret_name: summary.secret_name.clone(),
        created: summary.created.clone(),
        labels: summary.labels.clone(),
        annotations: summary.annotations.clone(),
    }
}

/// The body of `POST /v1/instances/{id}/bindings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBinding {
    /// Binding id (a DNS label of at most 50 characters); a random UUID when absent.
    #[serde(default)]
    pub binding_id: Option<String>,
}

/// What a binding failure becomes (pure).
pub fn binding_error(error: InstanceError) -> ApiError {
    match error {
        error @ InstanceError::BindingNotFound { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, "binding_not_found", format!("bid: {error}"))
        }
        error @ InstanceError::NotBindable { .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not_bindable", format!("id: {error}"))
        }
        InstanceError::Hsm(error) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", error.to_string()),
        error @ InstanceError::Terminating(_) => {
            ApiError::new(StatusCode::CONFLICT, "instance_deleting", error.to_string())
        }
        error @ InstanceError::Wait(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "cluster_unavailable", error.to_string())
        }
        other => ApiError::from(other),
    }
}

/// A checked binding id from the path.
fn binding_id(bid: &str) -> Result<&str, ApiError> {
    match service_manager::binding::id_problem(bid) {
        None => Ok(bid),
        Some(problem) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_binding_id",
            format!("bid: {} is not a binding id: {problem}", sdl::error::quote(bid)),
        )),
    }
}

/// The bindings of an instance, by id; no credentials.
#[utoipa::path(
    get, path = "/v1/instances/{id}/bindings", tag = "bindings",
    params(("id" = String, Path, description = "Instance id (a DNS label)")),
    responses(
        (status = 200, description = "The bindings, by id; no credential", body = Vec<Binding>),
        (status = 400, description = "Malformed instance id", body = ApiError),
        (status = 404, description = "No such instance", body = ApiError),
        (status = 503, description = "The cluster cannot be reached", body = ApiError)
    )
)]
pub async fn list_bindings(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<Binding>>, ApiError> {
    let id = error::instance_id(&id)?;
    let summaries = binding::list(&cluster(&state)?, id).await.map_err(binding_error)?;
    Ok(Json(summaries.iter().map(binding).collect()))
}

/// Binds an instance: writes the binding Secret (with a generated per-binding user where the
/// service makes one) and starts the bind job. The same binding id again answers the
/// existing binding.
#[utoipa::path(
    post, path = "/v1/instances/{id}/bindings", tag = "bindings",
    params(("id" = String, Path, description = "Instance id (a DNS label)")),
    request_body(content = CreateBinding, description = "The binding to make", content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted: the binding Secret is written and the bind job runs; no credential", body = Binding),
        (status = 400, description = "A body that cannot be read, or a malformed id, named by its JSON path", body = ApiError),
        (status = 404, description = "No such instance", body = ApiError),
        (status = 409, description = "The instance is being deleted", body = ApiError),
        (status = 413, description = "The body is too large", body = ApiError),
        (status = 415, description = "The body is not JSON", body = ApiError),
        (status = 422, description = "The instance's service is not bindable", body = ApiError),
        (status = 503, description = "The cluster cannot be reached", body = ApiError)
    )
)]
pub async fn create_binding(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CreateBinding>,
) -> Result<(StatusCode, Json<Binding>), ApiError> {
    let id = error::instance_id(&id)?;
    let bid = match body.binding_id {
        Some(bid) => {
            service_manager::binding::id_problem(&bid).map_or(Ok(()), |problem| {
                Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_binding_id",
                    format!("binding_id: {} is not a binding id: {problem}", sdl::error::quote(&bid)),
                ))
            })?;
            bid
        }
        None => service_manager::binding::new_id(),
    };
    let request = BindRequest { instance_id: id.to_string(), binding_id: bid, ..BindRequest::default() };
    let summary = binding::start_create(&cluster(&state)?, &request).await.map_err(binding_error)?;
    tracing::info!(instance = %id, binding = %summary.id, "binding created");
    Ok((StatusCode::ACCEPTED, Json(binding(&summary))))
}

/// A binding; no credentials.
#[utoipa::path(
    get, path = "/v1/instances/{id}/bindings/{bid}", tag = "bindings",
    params(
        ("id" = String, Path, description = "Instance id (a DNS label)"),
        ("bid" = String, Path, description = "Binding id (a DNS label)")
    ),
    responses(
        (status = 200, description = "The binding; no credential", body = Binding),
        (status = 400, description = "Malformed instance or binding id", body = ApiError),
        (status = 404, description = "No such instance or binding", body = ApiError),
        (status = 503, description = "The cluster cannot be reached", body = ApiError)
    )
)]
pub async fn get_binding(
    State(state): State<AppState>,
    ApiPath((id, bid)): ApiPath<(String, String)>,
) -> Result<Json<Binding>, ApiError> {
    let id = error::instance_id(&id)?;
    let bid = binding_id(&bid)?;
    let found = binding::get(&cluster(&state)?, id, bid).await.map_err(binding_error)?;
    let summary = found.ok_or_else(|| {
        binding_error(InstanceError::BindingNotFound { instance: id.to_string(), binding: bid.to_string() })
    })?;
    Ok(Json(binding(&summary)))
}

/// Deletes a binding: its Secret at once; the unbind job (if the service has one) removes
/// its user, and the binding reads `deleting` until it finished.
#[utoipa::path(
    delete, path = "/v1/instances/{id}/bindings/{bid}", tag = "bindings",
    params(
        ("id" = String, Path, description = "Instance id (a DNS label)"),
        ("bid" = String, Path, description = "Binding id (a DNS label)")
    ),
    responses(
        (status = 202, description = "Accepted: the binding Secret is deleted and the unbind job runs", body = Binding),
        (status = 400, description = "Malformed instance or binding id", body = ApiError),
        (status = 404, description = "No such instance or binding", body = ApiError),
        (status = 503, description = "The cluster cannot be reached", body = ApiError)
    )
)]
pub async fn delete_binding(
    State(state): State<AppState>,
    ApiPath((id, bid)): ApiPath<(String, String)>,
) -> Result<(StatusCode, Json<Binding>), ApiError> {
    let id = error::instance_id(&id)?;
    let bid = binding_id(&bid)?;
    let summary = binding::start_delete(&cluster(&state)?, id, bid).await.map_err(binding_error)?;
    tracing::info!(instance = %id, binding = %bid, "binding deleted");
    Ok((StatusCode::ACCEPTED, Json(binding(&summary))))
}

/// A binding's credentials: the binding Secret's keys and values (needs the developer role).
#[utoipa::path(
    get, path = "/v1/instances/{id}/bindings/{bid}/credentials", tag = "bindings",
    params(
        ("id" = String, Path, description = "Instance id (a DNS label)"),
        ("bid" = String, Path, description = "Binding id (a DNS label)")
    ),
    responses(
        (status = 200, description = "The binding Secret's keys and values", body = BTreeMap<String, String>),
        (status = 400, description = "Malformed instance or binding id", body = ApiError),
        (status = 404, description = "No such instance or binding", body = ApiError),
        (status = 503, description = "The cluster cannot be reached", body = ApiError)
    )
)]
pub async fn binding_credentials(
    State(state): State<AppState>,
    ApiPath((id, bid)): ApiPath<(String, String)>,
) -> Result<Json<BTreeMap<String, String>>, ApiError> {
    let id = error::instance_id(&id)?;
    let bid = binding_id(&bid)?;
    let values = binding::credentials(&cluster(&state)?, id, bid).await.map_err(binding_error)?;
    tracing::info!(instance = %id, binding = %bid, "binding credentials read");
    Ok(Json(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_failures_have_their_status() {
        let missing = binding_error(InstanceError::BindingNotFound { instance: "a".into(), binding: "b".into() });
        assert_eq!((missing.status, missing.code.as_str()), (404, "binding_not_found"));
        let not_bindable = binding_error(InstanceError::NotBindable { id: "a".into(), reason: "no".into() });
        assert_eq!((not_bindable.status, not_bindable.code.as_str()), (422, "not_bindable"));
        let no_instance = binding_error(InstanceError::NotFound("a".into()));
        assert_eq!((no_instance.status, no_instance.code.as_str()), (404, "instance_not_found"));
    }

    #[test]
    fn the_wire_form_reads_back_as_service_managers_summary() {
        let summary = BindingSummary {
            id: "b".into(),
            instance_id: "a".into(),
            state: BindingState::Failed { message: "bind job failed: x".into() },
            secret_name: "binding-b".into(),
            created: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        };
        let text = serde_json::to_string(&binding(&summary)).unwrap();
        let back: BindingSummary = serde_json::from_str(&text).unwrap();
        assert_eq!(back, summary);
    }
}
