//! The API's handlers on the shipped catalog, without a cluster (requests through the router
//! with `tower::ServiceExt::oneshot`): catalog answers, the error shape of every failure, bad
//! write bodies refused before any cluster is asked (naming the JSON path), the metrics, and
//! the OpenAPI document listing every route and its schemas.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use hsm_server::AppState;
use sdl::catalog::Catalog;
use serde_json::Value;
use tower::ServiceExt;

fn state() -> AppState {
    let catalog = Catalog::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog")).unwrap();
    AppState::new(catalog, None, Duration::from_secs(10))
}

async fn send(method: Method, uri: &str, body: Body) -> (StatusCode, Value) {
    let request = Request::builder().method(method).uri(uri).body(body).unwrap();
    let response = hsm_server::router(state()).oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24).await.unwrap();
    assert_eq!(content_type.as_deref(), Some("application/json"), "{uri}: {}", String::from_utf8_lossy(&bytes));
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn get(uri: &str) -> (StatusCode, Value) {
    send(Method::GET, uri, Body::empty()).await
}

/// Asserts `body` is the error shape with `status` and `code`; its message.
fn error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) -> String {
    assert_eq!(status, expected, "{body}");
    let keys: BTreeSet<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["code", "message", "status"]), "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], expected.as_u16(), "{body}");
    body["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn info_names_the_versions_and_the_catalog() {
    let (status, body) = get("/v1/info").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["api_version"], "v1");
    assert_eq!(body["server_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["catalog"], "stackato");
}

#[tokio::test]
async fn services_are_the_catalog_by_id() {
    let (status, body) = get("/v1/services").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    let catalog = state();
    let expected: Vec<&str> = catalog.catalog().services.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, expected);
    assert!(ids.contains(&"stackato.hpe.redis"), "{ids:?}");
    let redis = body.as_array().unwrap().iter().find(|s| s["id"] == "stackato.hpe.redis").unwrap();
    assert_eq!(redis["vendor"], "hpe");
    assert!(!redis["product_versions"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_service_shows_its_versions_and_redacts_secret_defaults() {
    for id in ["stackato.hpe.redis", "stackato.hpe.mysql", "stackato.hpe.postgres"] {
        let (status, body) = get(&format!("/v1/services/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["id"], id);
        let versions = body["versions"].as_array().unwrap();
        let newest = versions.last().unwrap();
        assert_eq!(
            body["parameters_of"],
            format!("{}/{}", newest["product_version"], newest["sdl_version"]).replace('"', "")
        );
        assert!(!body["components"].as_array().unwrap().is_empty(), "{body}");
        for parameter in body["parameters"].as_array().unwrap() {
            if parameter["secret"] == true {
                assert!(parameter["default"].is_null() || parameter["default"] == "<redacted>", "{parameter}");
            }
        }
    }
}

#[tokio::test]
async fn product_and_sdl_versions_of_a_service() {
    let (_, service) = get("/v1/services/stackato.hpe.redis").await;
    let version = &service["versions"][0];
    let (pv, sv) = (version["product_version"].as_str().unwrap(), version["sdl_version"].as_str().unwrap());
    let (status, body) = get(&format!("/v1/services/stackato.hpe.redis/product_versions/{pv}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["service_id"], "stackato.hpe.redis");
    assert_eq!(body["product_version"], pv);
    let sdl_versions = body["sdl_versions"].as_array().unwrap();
    assert!(
        sdl_versions.iter().all(|v| v["product_version"] == pv) && sdl_versions.iter().any(|v| v["sdl_version"] == sv)
    );

    let uri = format!("/v1/services/stackato.hpe.redis/product_versions/{pv}/sdl_versions/{sv}");
    let (status, body) = get(&uri).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["product_version"].as_str(), body["sdl_version"].as_str()), (Some(pv), Some(sv)));
    assert!(!body["parameters"].as_array().unwrap().is_empty(), "{body}");
    assert!(!body["components"].as_array().unwrap().is_empty(), "{body}");
}

#[tokio::test]
async fn unknown_services_and_versions_are_404s_naming_them() {
    let (status, body) = get("/v1/services/stackato.hpe.redi").await;
    let message = error(status, &body, StatusCode::NOT_FOUND, "unknown_service");
    assert_eq!(
        message,
        "id: unknown service \"stackato.hpe.redi\" (did you mean \"stackato.hpe.redis\"?); GET /v1/services lists the catalog"
    );
    let (status, body) = get("/v1/services/stackato.hpe.redis/product_versions/99.9").await;
    let message = error(status, &body, StatusCode::NOT_FOUND, "unknown_version");
    assert!(
        message.starts_with(
            "product_version: service \"stackato.hpe.redis\" has no product version \"99.9\"; available: "
        ),
        "{message}"
    );
    let (_, service) = get("/v1/services/stackato.hpe.redis").await;
    let pv = service["versions"][0]["product_version"].as_str().unwrap().to_string();
    let (status, body) =
        get(&format!("/v1/services/stackato.hpe.redis/product_versions/{pv}/sdl_versions/9.9.9")).await;
    let message = error(status, &body, StatusCode::NOT_FOUND, "unknown_version");
    assert!(
        message.starts_with("sdl_version: service \"stackato.hpe.redis\" has no SDL version \"9.9.9\""),
        "{message}"
    );
}

#[tokio::test]
async fn malformed_path_values_are_400s() {
    let (status, body) = get("/v1/services/Not_A_Service").await;
    let message = error(status, &body, StatusCode::BAD_REQUEST, "invalid_service_id");
    assert!(message.starts_with("id: \"Not_A_Service\" is not a service id"), "{message}");
    let (status, body) = get("/v1/services/stackato.hpe.redis/product_versions/1%20;%20x").await;
    let message = error(status, &body, StatusCode::BAD_REQUEST, "invalid_version");
    assert!(message.starts_with("product_version: \"1 ; x\" is not a version"), "{message}");
    // Not UTF-8 once decoded: the path itself cannot be read.
    let (status, body) = get("/v1/services/%FF").await;
    error(status, &body, StatusCode::BAD_REQUEST, "malformed_path");
    let (status, body) = get("/v1/instances/Bad_Id").await;
    let message = error(status, &body, StatusCode::BAD_REQUEST, "invalid_instance_id");
    assert!(message.starts_with("id: \"Bad_Id\" is not an instance id"), "{message}");
    let (status, body) = get(&format!("/v1/instances/{}", "a".repeat(64))).await;
    error(status, &body, StatusCode::BAD_REQUEST, "invalid_instance_id");
}

#[tokio::test]
async fn what_is_not_routed_or_allowed_has_the_error_shape() {
    let (status, body) = get("/v1/nothing-here").await;
    let message = error(status, &body, StatusCode::NOT_FOUND, "unknown_route");
    assert_eq!(message, "no route \"/v1/nothing-here\"; GET /v1/openapi.json lists them");

    let request = Request::builder().method(Method::DELETE).uri("/v1/services").body(Body::empty()).unwrap();
    let response = hsm_server::router(state()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(response.headers().get(header::ALLOW).unwrap().to_str().unwrap().contains("GET"));
    let body: Value =
        serde_json::from_slice(&axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap()).unwrap();
    error(StatusCode::METHOD_NOT_ALLOWED, &body, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");

    let big = Request::builder()
        .method(Method::GET)
        .uri("/v1/services")
        .header(header::CONTENT_LENGTH, 100_000)
        .body(Body::from(vec![b'x'; 100_000]))
        .unwrap();
    let response = hsm_server::router(state()).oneshot(big).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value =
        serde_json::from_slice(&axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap()).unwrap();
    error(StatusCode::PAYLOAD_TOO_LARGE, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[tokio::test]
async fn without_a_cluster_instances_are_unavailable_not_failures() {
    let (status, body) = get("/v1/instances").await;
    error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "no_cluster");
    let (status, body) = get("/healthz").await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (status, body) = get("/readyz").await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));
}

/// Every route, in the document's form.
const ROUTES: [&str; 15] = [
    "/healthz",
    "/metrics",
    "/readyz",
    "/v1/info",
    "/v1/instances",
    "/v1/instances/{id}",
    "/v1/instances/{id}/bindings",
    "/v1/instances/{id}/bindings/{bid}",
    "/v1/instances/{id}/bindings/{bid}/credentials",
    "/v1/instances/{id}/events",
    "/v1/openapi.json",
    "/v1/services",
    "/v1/services/{id}",
    "/v1/services/{id}/product_versions/{pv}",
    "/v1/services/{id}/product_versions/{pv}/sdl_versions/{sv}",
];

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_its_schemas() {
    let (status, served) = get("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(served, serde_json::to_value(hsm_server::openapi()).unwrap());
    assert!(served["openapi"].as_str().unwrap().starts_with("3."), "{}", served["openapi"]);
    let paths: BTreeSet<&str> = served["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(paths, BTreeSet::from(ROUTES));

    let schemas = served["components"]["schemas"].as_object().unwrap();
    for name in [
        "ApiError",
        "Info",
        "Health",
        "ServiceSummary",
        "ServiceDetail",
        "ProductVersion",
        "SdlVersion",
        "InstanceSummary",
        "InstanceDetail",
        "InstanceState",
        "Component",
        "Location",
        "ParameterDetail",
        "VersionDetail",
        "CreateInstance",
        "ChangeInstance",
        "Binding",
        "BindingStateName",
        "CreateBinding",
    ] {
        assert!(schemas.contains_key(name), "no schema {name}: {:?}", schemas.keys());
    }
    // Every reference resolves, and every error answer is the error shape.
    let text = served.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &reference[..reference.find('"').unwrap()];
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }
    let mut operations = 0;
    for (path, item) in served["paths"].as_object().unwrap() {
        assert!(item["get"].is_object(), "{path} has no GET");
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let responses = operation["responses"].as_object().unwrap();
            let success = if method == "get" { "200" } else { "202" };
            assert!(responses.contains_key(success), "{method} {path}");
            for (code, response) in responses {
                assert!(!response["description"].as_str().unwrap().is_empty(), "{path} {code}: no description");
            }
            for (code, response) in responses.iter().filter(|(code, _)| !code.starts_with('2')) {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ApiError",
                    "{method} {path} {code}"
                );
            }
            let parameters: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .map(|p| p.iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap()).collect())
                .unwrap_or_default();
            let in_path: BTreeSet<&str> =
                path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
            assert_eq!(parameters, in_path, "{method} {path}");
            if method != "get" && method != "delete" {
                let body = &operation["requestBody"]["content"]["application/json"]["schema"]["$ref"];
                assert!(
                    body.as_str().is_some_and(|r| r.ends_with("Instance") || r.ends_with("Binding")),
                    "{method} {path}: {body}"
                );
            }
        }
    }
    // GET, POST of the collection; GET, PATCH, DELETE of an instance: 3 write operations;
    // POST of a binding, DELETE of one: 2 more.
    assert_eq!(operations, ROUTES.len() + 5);
    let events = &served["paths"]["/v1/instances/{id}/events"]["get"]["responses"]["200"]["content"];
    assert!(events["text/event-stream"].is_object(), "{events}");
    let delete = &served["paths"]["/v1/instances/{id}"]["delete"]["parameters"];
    assert!(delete.as_array().unwrap().iter().any(|p| p["name"] == "keep_volumes" && p["in"] == "query"), "{delete}");
    let created = &served["paths"]["/v1/instances"]["post"]["responses"]["202"];
    assert!(created["headers"]["Location"].is_object(), "{created}");
}

async fn write(method: Method, uri: &str, body: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = hsm_server::router(state()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn bad_write_bodies_are_refused_before_the_cluster_naming_the_json_path() {
    let cases: [(&str, StatusCode, &str, &str); 9] = [
        (
            r#"{"service_id": "stackato.hpe.redis", "size": 3}"#,
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "size: unknown field `size`",
        ),
        (
            r#"{"service_id": ["stackato.hpe.redis"]}"#,
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "service_id: invalid type",
        ),
        (
            r#"{"service_id": "stackato.hpe.redis", "parameters": {"REDIS_MAXMEMORY": 64}}"#,
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "parameters.REDIS_MAXMEMORY: must be a string",
        ),
        (
            r#"{"service_id": "stackato.hpe.nothing"}"#,
            StatusCode::NOT_FOUND,
            "unknown_service",
            "service_id: unknown service \"stackato.hpe.nothing\"",
        ),
        (
            r#"{"service_id": "stackato.hpe.redis", "product_version": "0.0.1"}"#,
            StatusCode::NOT_FOUND,
            "unknown_version",
            "product_version: ",
        ),
        (
            r#"{"service_id": "stackato.hpe.redis", "parameters": {"NO_SUCH": "x"}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_parameters",
            "parameters.NO_SUCH: unknown parameter \"NO_SUCH\"",
        ),
        (
            r#"{"service_id": "stackato.hpe.redis", "instance_id": "Not_An_Id"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_instance_id",
            "instance_id: \"Not_An_Id\" is not an instance id",
        ),
        (
            r#"{"service_id": "redis"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_service_id",
            "service_id: \"redis\" is not a service id",
        ),
        ("not json", StatusCode::BAD_REQUEST, "invalid_body", "body: expected"),
    ];
    for (body, expected, code, start) in cases {
        let (status, answer) = write(Method::POST, "/v1/instances", body).await;
        let message = error(status, &answer, expected, code);
        assert!(message.starts_with(start), "{body}: {message}");
    }
    // A good body gets as far as the cluster, which this server has not.
    let (status, answer) = write(Method::POST, "/v1/instances", r#"{"service_id": "stackato.hpe.redis"}"#).await;
    error(status, &answer, StatusCode::SERVICE_UNAVAILABLE, "no_cluster");
    let (status, answer) = write(Method::PATCH, "/v1/instances/x", r#"{"parameters": {"A": true}}"#).await;
    assert_eq!(
        error(status, &answer, StatusCode::BAD_REQUEST, "invalid_body"),
        "parameters.A: must be a string (the value given is not shown)"
    );
    let (status, answer) = write(Method::PATCH, "/v1/instances/x", r#"{"product_version": "7 ; x"}"#).await;
    error(status, &answer, StatusCode::BAD_REQUEST, "invalid_version");
    let (status, answer) = write(Method::DELETE, "/v1/instances/x?keep_volumes=maybe", "").await;
    error(status, &answer, StatusCode::BAD_REQUEST, "malformed_query");
    // Not JSON at all.
    let request =
        Request::builder().method(Method::POST).uri("/v1/instances").body(Body::from("service_id=x")).unwrap();
    let response = hsm_server::router(state()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn requests_are_counted_in_the_metrics_by_route_and_status() {
    let router = hsm_server::router(state());
    for uri in
        ["/v1/services/stackato.hpe.redis", "/v1/services/stackato.hpe.nothing", "/v1/services/stackato.hpe.redis"]
    {
        let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
        router.clone().oneshot(request).await.unwrap();
    }
    let request = Request::builder().uri("/metrics").body(Body::empty()).unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    let route = "route=\"/v1/services/{id}\",method=\"GET\"";
    assert!(text.contains(&format!("hsm_server_requests_total{{{route},status=\"200\"}} 2\n")), "{text}");
    assert!(text.contains(&format!("hsm_server_requests_total{{{route},status=\"404\"}} 1\n")), "{text}");
    assert!(text.contains(&format!("hsm_server_request_duration_seconds_count{{{route}}} 3\n")), "{text}");
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let (_, service) = get("/v1/services/stackato.hpe.redis").await;
    let (pv, sv) = (
        service["versions"][0]["product_version"].as_str().unwrap(),
        service["versions"][0]["sdl_version"].as_str().unwrap(),
    );
    for route in ROUTES.iter().filter(|r| **r != "/metrics") {
        let uri =
            route.replace("{id}", if route.contains("instances") { "some-instance" } else { "stackato.hpe.redis" });
        let uri = uri.replace("{pv}", pv).replace("{sv}", sv).replace("{bid}", "some-binding");
        let (status, body) = get(&uri).await;
        assert_ne!(body["code"], "unknown_route", "{uri}");
        assert!(status == StatusCode::OK || body["code"] == "no_cluster", "{uri}: {status} {body}");
    }
}
