//! The Open Service Broker API v2.17 under `/v2`, for service instances: `GET /v2/catalog`
//! from the HSM catalog ([`catalog`], pure), and provision, update, deprovision, fetch and
//! `last_operation` of service instances ([`instances`]) and bind, unbind, fetch and
//! `last_operation` of service bindings ([`bindings`]), all asynchronous and written through
//! the same `Instance` resource as `/v1`, so the converger carries them out. Every request
//! passes [`gate`] first (basic authentication, the version header, the identities, the audit
//! log). Errors are in OSB's shape ([`wire::BrokerError`]). The broker's own OpenAPI document,
//! generated from the handlers, is served at `GET /v2/openapi.json` (no credentials needed).
//! `docs/broker.md` has the operator's view.
//!
//! Service bindings (`/v2/service_instances/{id}/service_bindings/{bid}` and its
//! `last_operation`) are in [`bindings`]: the same bindings as `/v1` and `hsm create-binding`
//! (`service_manager::actions::binding`), asynchronous too.

pub mod bindings;
pub mod catalog;
pub mod gate;
pub mod instances;
pub mod wire;

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{middleware, Json, Router};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::serve::AppState;
use wire::{BrokerError, CatalogResponse};

/// `text` safe for a log line or message: control characters escaped, at most `max`
/// characters.
pub(crate) fn cut(text: &str, max: usize) -> String {
    sdl::error::escape(&sdl::error::shorten(text, max))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Stratus HSM service broker",
        description = "The Open Service Broker API v2.17 for the HSM catalog's services: the catalog, service instances provisioned, updated and deprovisioned asynchronously through the converger, and service bindings (a Secret in the Service Binding layout, made by the bind Job the service names). Every route but /v2/openapi.json needs HTTP basic authentication (the broker's credentials) and the X-Broker-API-Version header (2.13 or later). Errors are {error, description}.",
        license(name = "Apache-2.0")
    ),
    components(schemas(BrokerError)),
    tags(
        (name = "catalog", description = "The catalog of service offerings and plans"),
        (name = "service_instances", description = "Service instances"),
        (name = "service_bindings", description = "Service bindings: credentials for an application"),
        (name = "broker", description = "This document")
    )
)]
struct BrokerDoc;

fn broker_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(BrokerDoc::openapi())
        .routes(routes!(get_catalog))
        .routes(routes!(instances::provision, instances::update, instances::deprovision, instances::fetch))
        .routes(routes!(instances::get_last_operation))
        .routes(routes!(bindings::bind, bindings::unbind, bindings::fetch))
        .routes(routes!(bindings::get_last_operation))
}

/// The broker's OpenAPI 3 document, with the basic security scheme on every operation and
/// its 401, 400 (version header missing) and 412 (version too old) answers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

    let mut doc = broker_routes().split_for_parts().1;
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let scheme = HttpBuilder::new()
        .scheme(HttpAuthScheme::Basic)
        .description(Some("The broker's user and password (HSM_BROKER_USER, HSM_BROKER_PASSWORD)"))
        .build();
    doc.components.get_or_insert_with(Default::default).add_security_scheme("basic", SecurityScheme::Http(scheme));
    let answer = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("BrokerError"))).build(),
            )
            .build()
    };
    for item in doc.paths.paths.values_mut() {
        for operation in [&mut item.get, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten() {
            operation.security = Some(vec![SecurityRequirement::new("basic", Vec::<String>::new())]);
            let responses = &mut operation.responses.responses;
            responses
                .entry("401".into())
                .or_insert_with(|| answer("No or wrong credentials (WWW-Authenticate: Basic)").into());
            responses.entry("403".into()).or_insert_with(|| answer("A bearer token without the admin role").into());
            responses.entry("400".into()).or_insert_with(|| answer("X-Broker-API-Version missing or malformed").into());
            responses.entry("412".into()).or_insert_with(|| answer("X-Broker-API-Version below 2.13").into());
        }
    }
    doc
}

/// The broker's routes on `state` behind [`gate::gate`], plus its public OpenAPI document;
/// answers axum gives (405, bad paths) in OSB's error shape. Merged into the server's router
/// outside `/v1`'s bearer-token check.
pub fn broker_router(state: AppState) -> Router<AppState> {
    let (routes, _) = broker_routes().split_for_parts();
    let routes = routes.layer(middleware::from_fn_with_state(state, gate::gate));
    Router::new()
        .route("/v2/openapi.json", axum::routing::get(openapi_json))
        .merge(routes)
        .layer(middleware::map_response(error_shape))
}

/// Gives what axum answers itself (405, an empty error) OSB's error shape.
async fn error_shape(response: Response) -> Response {
    let status = response.status();
    let json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let description = match status {
        StatusCode::METHOD_NOT_ALLOWED => "this method is not allowed here (the Allow header lists those that are)",
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is larger than 64 KiB",
        _ => status.canonical_reason().unwrap_or("error"),
    };
    let mut shaped = BrokerError::new(status, "Error", description).into_response();
    if let Some(allow) = allow {
        shaped.headers_mut().insert(header::ALLOW, allow);
    }
    shaped
}

/// The catalog: one offering per HSM service, one plan per product version.
#[utoipa::path(
    get, path = "/v2/catalog", tag = "catalog",
    params(("X-Broker-API-Version" = String, Header, description = "2.13 or later")),
    responses((status = 200, description = "The service offerings", body = CatalogResponse))
)]
async fn get_catalog(State(state): State<AppState>) -> Json<CatalogResponse> {
    Json(catalog::catalog(state.catalog()))
}

/// The broker's OpenAPI document (no credentials needed).
async fn openapi_json() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let text = DOCUMENT.get_or_init(|| openapi().to_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")));
    ([(header::CONTENT_TYPE, "application/json")], text.clone()).into_response()
}
