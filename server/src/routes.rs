//! The read handlers of API v1, the router (with the write handlers of [`crate::writes`], the
//! events of [`crate::events`] and `/metrics`), and the OpenAPI document generated from the
//! handlers' annotations (`utoipa`): a route and its entry in the document are registered
//! together, so the document cannot leave one out. Handlers only check path values, call the
//! catalog or the action layer, and convert (`api`); every failure is an [`ApiError`].

use std::sync::OnceLock;

use axum::extract::{FromRequestParts, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{middleware, Json, Router};
use service_manager::declared;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::ServiceSummary;
use crate::api::{self, Health, Info, InstanceDetail, InstanceSummary, ProductVersion, SdlVersion, ServiceDetail};
use crate::auth;
use crate::error::{self, ApiError};
use crate::serve::AppState;
use crate::writes::cluster;
use crate::{bindings, events, writes};

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A path's values; a value that cannot be read is a 400 in the error shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Stratus HSM API",
        description = "The HSM server's API v1: the service catalog and the cluster's instances. Instances are created, changed and deleted through the converger (`hsm controller`): writes answer 202 and clients follow the instance with GET or its events. Every route but /v1/info, /v1/openapi.json, /healthz, /readyz and /metrics needs a bearer access token of the OpenID issuer GET /v1/info names; roles: viewer (reads), developer (also writes of instances), admin (everything).",
        license(name = "Apache-2.0")
    ),
    components(schemas(ApiError)),
    tags(
        (name = "server", description = "Version, health and this document"),
        (name = "catalog", description = "The service catalog"),
        (name = "instances", description = "Service instances on the cluster"),
        (name = "bindings", description = "Bindings of instances: Secrets with an endpoint and credentials")
    )
)]
struct ApiDoc;

/// The routes of the API with their documentation, state not yet given.
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(info))
        .routes(routes!(list_services))
        .routes(routes!(get_service))
        .routes(routes!(get_product_version))
        .routes(routes!(get_sdl_version))
        .routes(routes!(list_instances, writes::create_instance))
        .routes(routes!(get_instance, writes::change_instance, writes::delete_instance))
        .routes(routes!(events::instance_events))
        .routes(routes!(bindings::list_bindings, bindings::create_binding))
        .routes(routes!(bindings::get_binding, bindings::delete_binding))
        .routes(routes!(bindings::binding_credentials))
        .routes(routes!(openapi_json))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// The OpenAPI 3 document of every route, with the bearer scheme and the 401/403 answers of
/// every route that needs a role (as [`auth::required_role`] decides).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api_router().split_for_parts().1;
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    document_security(&mut doc);
    doc
}

/// Adds the `bearer` security scheme and, on each operation that needs a role, the security
/// requirement and the 401 and 403 answers.
fn document_security(doc: &mut utoipa::openapi::OpenApi) {
    use axum::http::Method;
    use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

    let scheme = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .bearer_format("JWT")
        .description(Some("An access token of the OpenID issuer named by GET /v1/info, for its audience"))
        .build();
    doc.components.get_or_insert_with(Default::default).add_security_scheme("bearer", SecurityScheme::Http(scheme));
    let answer = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ApiError"))).build())
            .build()
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            (Method::GET, &mut item.get),
            (Method::POST, &mut item.post),
            (Method::PUT, &mut item.put),
            (Method::PATCH, &mut item.patch),
            (Method::DELETE, &mut item.delete),
            (Method::HEAD, &mut item.head),
            (Method::OPTIONS, &mut item.options),
            (Method::TRACE, &mut item.trace),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let Some(role) = auth::required_role(&method, path) else { continue };
            operation.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
            let responses = &mut operation.responses.responses;
            responses.entry("401".into()).or_insert_with(|| {
                answer("No bearer token, or one that is forged, expired, for another audience or unsigned (WWW-Authenticate: Bearer)").into()
            });
            responses.entry("403".into()).or_insert_with(|| {
                answer(&format!("The token's groups do not give the role {role} (code forbidden)")).into()
            });
        }
    }
}

/// The API on `state`: every route, the error shape for unknown routes, methods not allowed,
/// bodies too large and requests that take too long; requests logged. With authentication on
/// (`AppState::with_auth`), every route but the public ones checks the bearer token and the
/// role first (`auth::authorize`).
pub fn router(state: AppState) -> Router {
    let timeout = state.request_timeout();
    let (router, _) = api_router().split_for_parts();
    let router = router.fallback(unknown_route);
    let router = match state.auth() {
        Some(auth) => router.layer(middleware::from_fn_with_state(auth.clone(), auth::authorize)),
        None => router,
    };
    // The broker (`/v2`) checks its own credentials: merged outside the bearer-token check.
    let router = router.merge(crate::broker::broker_router(state.clone()));
    router
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout))
        .layer(middleware::map_response(error_shape))
        .layer(middleware::from_fn_with_state(state.metrics(), crate::metrics::track))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Gives an error answered by axum or a layer (405, 408, 413, 503 on timeout: empty or plain
/// text) the API's error shape.
async fn error_shape(response: Response) -> Response {
    let status = response.status();
    let json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "this method is not allowed here (the Allow header lists those that are)")
        }
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is larger than 64 KiB"),
        StatusCode::SERVICE_UNAVAILABLE => ("timeout", "the request took longer than the server's request timeout"),
        _ => ("error", status.canonical_reason().unwrap_or("error")),
    };
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut shaped = ApiError::new(status, code, message).into_response();
    if let Some(allow) = allow {
        shaped.headers_mut().insert(header::ALLOW, allow);
    }
    shaped
}

async fn unknown_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_route",
        format!("no route {}; GET /v1/openapi.json lists them", sdl::error::quote(uri.path())),
    )
}

/// The server's version, the API version, the catalog's name and how to sign in (no token
/// needed).
#[utoipa::path(get, path = "/v1/info", tag = "server", responses((status = 200, description = "Versions, the catalog's name and the OpenID issuer, client id and audience to sign in with", body = Info)))]
async fn info(State(state): State<AppState>) -> Json<Info> {
    Json(Info {
        server_version: env!("CARGO_PKG_VERSION").to_string(),
        api_version: crate::API_VERSION.to_string(),
        catalog: state.catalog().config.name.clone(),
        auth: state.auth().map(|auth| auth.info()),
    })
}

/// Every service of the catalog, by id.
#[utoipa::path(get, path = "/v1/services", tag = "catalog", responses((status = 200, description = "The services, by id", body = Vec<ServiceSummary>)))]
async fn list_services(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], state.services_json()).into_response()
}

/// A service: its versions and the parameters of its newest version (as `hsm get-service`).
#[utoipa::path(
    get, path = "/v1/services/{id}", tag = "catalog",
    params(("id" = String, Path, description = "Service id, `<catalog>.<vendor>.<service>`")),
    responses(
        (status = 200, description = "The service", body = ServiceDetail),
        (status = 400, description = "Malformed service id", body = ApiError),
        (status = 404, description = "Unknown service", body = ApiError),
        (status = 500, description = "The service's SDL in the catalog cannot be read", body = ApiError)
    )
)]
async fn get_service(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ServiceDetail>, ApiError> {
    let catalog = state.catalog();
    let service = catalog.service(error::service_id(&id)?)?;
    let version = service.version(None, None)?;
    let sdl = catalog.load_sdl(service, version)?;
    Ok(Json(api::service_detail(service, &sdl)))
}

/// A product version of a service and its SDL versions.
#[utoipa::path(
    get, path = "/v1/services/{id}/product_versions/{pv}", tag = "catalog",
    params(
        ("id" = String, Path, description = "Service id, `<catalog>.<vendor>.<service>`"),
        ("pv" = String, Path, description = "Product version")
    ),
    responses(
        (status = 200, description = "The product version", body = ProductVersion),
        (status = 400, description = "Malformed service id or version", body = ApiError),
        (status = 404, description = "Unknown service or product version", body = ApiError)
    )
)]
async fn get_product_version(
    State(state): State<AppState>,
    ApiPath((id, pv)): ApiPath<(String, String)>,
) -> Result<Json<ProductVersion>, ApiError> {
    let service = state.catalog().service(error::service_id(&id)?)?;
    let version = service.version(Some(error::version("product_version", &pv)?), None)?;
    Ok(Json(api::product_version(service, &version.product_version)))
}

/// One SDL version of a service: its upgrade rules, parameters and components.
#[utoipa::path(
    get, path = "/v1/services/{id}/product_versions/{pv}/sdl_versions/{sv}", tag = "catalog",
    params(
        ("id" = String, Path, description = "Service id, `<catalog>.<vendor>.<service>`"),
        ("pv" = String, Path, description = "Product version"),
        ("sv" = String, Path, description = "SDL version")
    ),
    responses(
        (status = 200, description = "The SDL version", body = SdlVersion),
        (status = 400, description = "Malformed service id or version", body = ApiError),
        (status = 404, description = "Unknown service, product version or SDL version", body = ApiError),
        (status = 500, description = "The SDL in the catalog cannot be read", body = ApiError)
    )
)]
async fn get_sdl_version(
    State(state): State<AppState>,
    ApiPath((id, pv, sv)): ApiPath<(String, String, String)>,
) -> Result<Json<SdlVersion>, ApiError> {
    let catalog = state.catalog();
    let service = catalog.service(error::service_id(&id)?)?;
    let pv = error::version("product_version", &pv)?;
    let sv = error::version("sdl_version", &sv)?;
    let version = service.version(Some(pv), Some(sv))?;
    let sdl = catalog.load_sdl(service, version)?;
    Ok(Json(api::sdl_version(service, version, &sdl)))
}

/// How long a list waits for the instance cache's first sync.
const SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Every instance on the cluster (records merged with `Instance` resources, as `hsm
/// list-instances`), from the watches of [`crate::cache`] once they have synced.
#[utoipa::path(
    get, path = "/v1/instances", tag = "instances",
    responses(
        (status = 200, description = "The instances, by id", body = Vec<InstanceSummary>),
        (status = 503, description = "The cluster cannot be reached", body = ApiError)
    )
)]
async fn list_instances(State(state): State<AppState>) -> Result<Response, ApiError> {
    if let Some(cache) = state.instance_cache() {
        // Not synced yet (the server just started): wait for the watches' listing rather than
        // make one more of our own; after the limit, read the cluster as without a cache.
        cache.wait_synced(SYNC_WAIT).await;
        if let Some(json) = cache.list_json() {
            return Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response());
        }
    }
    let records = declared::list(&cluster(&state)?).await?;
    let list: Vec<InstanceSummary> = records.iter().map(api::instance_summary).collect();
    Ok(Json(list).into_response())
}

/// An instance: parameters (secret values masked), components and their readiness, public
/// locations, volume claims (as `hsm get-instance`).
#[utoipa::path(
    get, path = "/v1/instances/{id}", tag = "instances",
    params(("id" = String, Path, description = "Instance id (a DNS label)")),
    responses(
        (status = 200, description = "The instance; no secret value", body = InstanceDetail),
        (status = 400, description = "Malformed instance id", body = ApiError),
        (status = 404, description = "No such instance", body = ApiError),
        (status = 503, description = "The cluster cannot be reached", body = ApiError)
    )
)]
async fn get_instance(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<InstanceDetail>, ApiError> {
    let id = error::instance_id(&id)?;
    let detail = declared::get(&cluster(&state)?, id).await?;
    Ok(Json(api::instance_detail(&detail)))
}

/// This document (OpenAPI 3).
#[utoipa::path(
    get, path = "/v1/openapi.json", tag = "server",
    responses((status = 200, description = "The OpenAPI 3 document of this API", content_type = "application/json"))
)]
async fn openapi_json() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let text = DOCUMENT.get_or_init(|| openapi().to_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")));
    ([(header::CONTENT_TYPE, "application/json")], text.clone()).into_response()
}

/// The process serves.
#[utoipa::path(get, path = "/healthz", tag = "server", responses((status = 200, description = "Serving", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// The server can answer: its catalog is loaded, the Kubernetes API server answers and the
/// instance cache has listed the instances once.
#[utoipa::path(
    get, path = "/readyz", tag = "server",
    responses((status = 200, description = "Ready", body = Health), (status = 503, description = "Not ready, and why", body = ApiError))
)]
async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.ready().await.map_err(|why| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", why))?;
    Ok(Json(Health { status: "ok".into() }))
}

/// The server's Prometheus metrics: requests by route, method and status, and their durations;
/// the instance cache's state.
#[utoipa::path(
    get, path = "/metrics", tag = "server",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain; version=0.0.4", body = String))
)]
async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state.metrics().render();
    if let Some(cache) = state.instance_cache() {
        text.push_str(&cache.render_metrics());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}
