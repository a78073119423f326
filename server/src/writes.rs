//! The write handlers: create (`POST /v1/instances`), change (`PATCH /v1/instances/{id}`:
//! upgrade and/or configure) and delete (`DELETE /v1/instances/{id}`). Each is a thin layer
//! over `service_manager::declared`, the way `hsm` writes instances where a converger runs:
//! the request is checked and planned locally first (bad input is refused before anything is
//! written), then the `Instance` (and the Secret of secret values) is written and the answer
//! is 202 with the instance's summary; the converger carries it out, which clients follow
//! with `GET /v1/instances/{id}` or its events. Without a converger the answer is 503.
//! Bodies are read by [`ApiJson`]: unknown fields and wrong types are 400s naming the JSON
//! path.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::{header, StatusCode};
use axum::Json;
use serde::de::DeserializeOwned;
use service_manager::actions::change::Change;
use service_manager::cluster::Cluster;
use service_manager::declared::{self, Place};
use service_manager::request::{self, InstanceRequest};
use service_manager::resource::Instance;

use crate::api::{self, ChangeInstance, CreateInstance, CreatedInstance, DeleteQuery, InstanceState, InstanceSummary};
use crate::cache::Written;
use crate::error::{self, write_error, ApiError};
use crate::routes::ApiPath;
use crate::serve::AppState;

/// A JSON request body; one that cannot be read is a 400 naming the JSON path.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|t| t.to_str().ok())
            .and_then(|t| t.split(';').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "body: must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            let status = rejection.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "malformed_body" };
            ApiError::new(status, code, format!("body: {}", rejection.body_text()))
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// `bytes` read as a `T`; a failure names the JSON path. A value under `parameters` is never
/// repeated (it may be secret).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let (path, message) = match path.as_str() {
            "." | "" => ("body".to_string(), inner.to_string()),
            p if p.starts_with("parameters.") && inner.is_data() => {
                (path.clone(), "must be a string (the value given is not shown)".to_string())
            }
            _ => (path.clone(), inner.to_string()),
        };
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", format!("{path}: {message}"))
    })?;
    deserializer
        .end()
        .map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", format!("body: {error}")))?;
    Ok(value)
}

/// A query string; one that cannot be read is a 400.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// The cluster, or a 503 for a catalog-only server.
pub(crate) fn cluster(state: &AppState) -> Result<Cluster, ApiError> {
    state.cluster().ok_or_else(|| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_cluster", "this server was started without a cluster")
    })
}

/// A 503 unless a converger runs: writes go through the `Instance` resource.
pub(crate) async fn converger(state: &AppState, cluster: &Cluster) -> Result<Place, ApiError> {
    match declared::detect(cluster, state.lease_namespace()).await {
        Ok(Ok(_holder)) => Ok(Place { namespace: state.lease_namespace().to_string() }),
        Ok(Err(why)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "converger_unavailable",
            format!("{why}; this server changes instances through the converger (`hsm controller`), which must run"),
        )),
        Err(error) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "cluster_unavailable", error.to_string())),
    }
}

/// The Instance of instance `id`: 404 when there is no such instance, 409 for an instance
/// that was created without the converger (it has no Instance to change).
pub(crate) async fn current(cluster: &Cluster, id: &str) -> Result<Instance, ApiError> {
    if let Some(instance) = declared::instance(cluster, id).await.map_err(write_error)? {
        return Ok(instance);
    }
    match declared::get(cluster, id).await {
        Ok(_) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_declared",
            format!(
                "id: instance {} was created without the converger; change it with `hsm --mode direct`",
                sdl::error::quote(id)
            ),
        )),
        Err(error) => Err(ApiError::from(error)),
    }
}

/// Whether the converger has not yet acted on the Instance's latest spec.
fn pending(instance: &Instance) -> bool {
    let observed = instance.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0);
    observed < instance.metadata.generation.unwrap_or(1)
}

/// The summary of `instance` as written, in `state`.
fn summary(instance: &Instance, state: InstanceState) -> InstanceSummary {
    InstanceSummary { state, ..api::instance_summary(&declared::record_of(instance)) }
}

/// A checked optional version named `field`.
fn version(field: &str, value: &Option<String>) -> Result<(), ApiError> {
    value.as_deref().map(|v| error::version(field, v)).transpose().map(|_| ())
}

/// Creates an instance: its `Instance` (and the Secret of its secret values) is written, the
/// converger creates it.
#[utoipa::path(
    post, path = "/v1/instances", tag = "instances",
    request_body(content = CreateInstance, description = "The instance to create", content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted: the Instance is written and the converger creates it; `Location` names it", body = CreatedInstance,
            headers(("Location" = String, description = "`/v1/instances/{id}`"))),
        (status = 400, description = "A body that cannot be read (unknown field, wrong type), or a malformed id or version, named by its JSON path", body = ApiError),
        (status = 404, description = "Unknown service or version (`service_id`, `product_version`, `sdl_version`)", body = ApiError),
        (status = 409, description = "The instance id is taken, or being deleted", body = ApiError),
        (status = 413, description = "The body is too large", body = ApiError),
        (status = 415, description = "The body is not JSON", body = ApiError),
        (status = 422, description = "Parameter values the service refuses, or missing (`parameters.NAME`)", body = ApiError),
        (status = 503, description = "No converger runs, or the cluster cannot be reached", body = ApiError)
    )
)]
pub async fn create_instance(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateInstance>,
) -> Result<(StatusCode, [(header::HeaderName, String); 1], Json<CreatedInstance>), ApiError> {
    error::service_id_at("service_id", &body.service_id)?;
    version("product_version", &body.product_version)?;
    version("sdl_version", &body.sdl_version)?;
    if let Some(id) = &body.instance_id {
        error::instance_id_at("instance_id", id)?;
    }
    let catalog = state.catalog();
    let mut request = InstanceRequest {
        service_id: body.service_id,
        product_version: body.product_version,
        sdl_version: body.sdl_version,
        idl: sdl::Idl::default(),
        idl_source: "the request body".into(),
        sets: body.parameters.into_iter().collect(),
        instance_id: body.instance_id,
    };
    // Bad input is refused before the cluster is asked anything.
    request::check(catalog, &request).map_err(|e| write_error(e.into()))?;
    let id = {
        let mut rng = rand::rng();
        request::assign_instance_id(catalog, &mut request, &mut rng).map_err(|e| write_error(e.into()))?
    };
    let cluster = cluster(&state)?;
    let place = converger(&state, &cluster).await?;
    let taken = cluster.namespace(&id).await.map_err(|e| write_error(e.into()))?.is_some()
        || declared::instance(&cluster, &id).await.map_err(write_error)?.is_some();
    if taken {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "instance_exists",
            format!("instance_id: instance {} already exists; choose another instance id", sdl::error::quote(&id)),
        ));
    }
    let created = declared::write_create(&cluster, catalog, &request, state.profile(), &place)
        .await
        .map_err(write_error)?
        .map_err(|why| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not_declarable",
                format!(
                    "service_id: {why}; create this instance with `hsm create-instance` as a cluster administrator"
                ),
            )
        })?;
    tracing::info!(instance = %id, service = %request.service_id, "instance created (Instance written)");
    settle(&state, Written::Instance(created.instance.clone())).await;
    let location = format!("/v1/instances/{id}");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(CreatedInstance {
            instance: summary(&created.instance, InstanceState::Creating),
            objects: created.objects,
        }),
    ))
}

/// Changes an instance: upgrades it to another version and/or sets parameters. The change is
/// checked against the catalog's upgrade rules and the service's parameters first.
#[utoipa::path(
    patch, path = "/v1/instances/{id}", tag = "instances",
    params(("id" = String, Path, description = "Instance id (a DNS label)")),
    request_body(content = ChangeInstance, description = "Versions to upgrade to and/or parameters to set", content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted: the Instance's spec is changed and the converger applies it", body = InstanceSummary),
        (status = 400, description = "A body that cannot be read, or a malformed id or version, named by its JSON path", body = ApiError),
        (status = 404, description = "No such instance, or an unknown version", body = ApiError),
        (status = 409, description = "A refused change: an immutable parameter, no upgrade path, nothing to change, an instance being deleted or created without the converger", body = ApiError),
        (status = 413, description = "The body is too large", body = ApiError),
        (status = 415, description = "The body is not JSON", body = ApiError),
        (status = 422, description = "Parameter values the service refuses (`parameters.NAME`)", body = ApiError),
        (status = 503, description = "No converger runs, or the cluster cannot be reached", body = ApiError)
    )
)]
pub async fn change_instance(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ChangeInstance>,
) -> Result<(StatusCode, Json<InstanceSummary>), ApiError> {
    let id = error::instance_id(&id)?;
    version("product_version", &body.product_version)?;
    version("sdl_version", &body.sdl_version)?;
    let cluster = cluster(&state)?;
    let place = converger(&state, &cluster).await?;
    let current = current(&cluster, id).await?;
    if current.metadata.deletion_timestamp.is_some() {
        return Err(write_error(service_manager::instance::InstanceError::Terminating(id.to_string())));
    }
    let running_version = || {
        let status = current.status.as_ref().and_then(|s| s.product_version.clone());
        status.or(current.spec.product_version.clone()).unwrap_or_default()
    };
    let target = match (body.product_version, body.sdl_version) {
        (None, None) => None,
        (Some(pv), sv) => Some((pv, sv)),
        (None, Some(sv)) => Some((running_version(), Some(sv))),
    };
    let upgrade = target.is_some();
    let change = Change {
        target,
        sets: body.parameters.into_iter().collect(),
        idl: None,
        wait: false,
        readiness: false,
        timeout: state.request_timeout(),
    };
    let changed = declared::write_change(&cluster, state.catalog(), &current, &change, state.profile(), &place)
        .await
        .map_err(write_error)?;
    tracing::info!(instance = %id, upgrade, to = %format!("{}/{}", changed.product_version, changed.sdl_version), "instance changed (Instance written)");
    let written = summary(&changed.instance, InstanceState::Upgrading);
    let answer = if pending(&changed.instance) {
        written
    } else {
        api::instance_summary(&declared::record_of(&changed.instance))
    };
    settle(&state, Written::Instance(changed.instance.clone())).await;
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// Deletes an instance: its `Instance` is deleted, and the converger deletes the instance
/// (keeping its volume claims when asked). Deleting an instance being deleted is accepted
/// again.
#[utoipa::path(
    delete, path = "/v1/instances/{id}", tag = "instances",
    params(("id" = String, Path, description = "Instance id (a DNS label)"), DeleteQuery),
    responses(
        (status = 202, description = "Accepted: the Instance is deleted and the converger deletes the instance", body = InstanceSummary),
        (status = 400, description = "A malformed id or query", body = ApiError),
        (status = 404, description = "No such instance", body = ApiError),
        (status = 409, description = "An instance created without the converger", body = ApiError),
        (status = 503, description = "No converger runs, or the cluster cannot be reached", body = ApiError)
    )
)]
pub async fn delete_instance(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeleteQuery>,
) -> Result<(StatusCode, Json<InstanceSummary>), ApiError> {
    let id = error::instance_id(&id)?;
    let cluster = cluster(&state)?;
    converger(&state, &cluster).await?;
    let current = current(&cluster, id).await?;
    declared::start_delete(&cluster, &current, query.keep_volumes).await.map_err(write_error)?;
    tracing::info!(instance = %id, keep_volumes = query.keep_volumes, "instance deleted (Instance deleted)");
    if current.metadata.deletion_timestamp.is_none() {
        settle(&state, Written::ChangedFrom(current.clone())).await;
    }
    Ok((StatusCode::ACCEPTED, Json(summary(&current, InstanceState::Deleting))))
}

/// How long a write waits for the instance cache to see it.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits until the server's instance list shows `written` (read-your-writes for its clients);
/// after [`SETTLE`] the answer goes out anyway, the list catching up moments later.
pub(crate) async fn settle(state: &AppState, written: Written) {
    if let Some(cache) = state.instance_cache() {
        if !cache.settle(&written, SETTLE).await {
            tracing::warn!(instance = %written.name(), "the instance list has not seen this write yet");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_cannot_be_read_is_named_by_its_json_path() {
        let unknown = parse::<CreateInstance>(br#"{"service_id": "a.b.c", "colour": 1}"#).unwrap_err();
        assert_eq!((unknown.status, unknown.code.as_str()), (400, "invalid_body"));
        assert!(unknown.message.contains("unknown field `colour`"), "{}", unknown.message);
        let wrong = parse::<CreateInstance>(br#"{"service_id": 7}"#).unwrap_err();
        assert!(wrong.message.starts_with("service_id: invalid type: integer"), "{}", wrong.message);
        // A parameter's value is never repeated: it may be secret.
        let secret = parse::<CreateInstance>(br#"{"service_id": "a.b.c", "parameters": {"pw": 987654}}"#).unwrap_err();
        assert_eq!(secret.message, "parameters.pw: must be a string (the value given is not shown)");
        let missing = parse::<CreateInstance>(b"{}").unwrap_err();
        assert!(missing.message.starts_with("body: missing field `service_id`"), "{}", missing.message);
        let trailing = parse::<ChangeInstance>(b"{} x").unwrap_err();
        assert!(trailing.message.starts_with("body: trailing characters"), "{}", trailing.message);
        let fine = parse::<ChangeInstance>(br#"{"parameters": {"A": "1"}}"#).unwrap();
        assert_eq!(fine.parameters["A"], "1");
    }
}
