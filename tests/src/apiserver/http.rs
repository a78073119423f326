//! The HTTP face of the test API server: Kubernetes REST paths and verbs, discovery, watch
//! streams, Status bodies, injected latency and faults, and request counting.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::resources::{self, ResourceType};
use super::store::{ApiError, Event, Key, Selector};
use super::Shared;

fn json_response(code: u16, body: &Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("JSON values serialise")))
        .expect("static response parts are valid")
}

fn error_response(error: &ApiError) -> Response {
    json_response(error.code, &error.status())
}

/// Decodes `%XX` escapes and `+` in a query component.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Where a request points.
enum Target {
    Version,
    Health,
    CoreVersions,
    Groups,
    Resources(String, String),
    /// A collection (`name` None) or an object, with an optional subresource.
    Object {
        rt: &'static ResourceType,
        namespace: Option<String>,
        name: Option<String>,
        sub: Option<String>,
    },
    NotFound,
}

fn route(path: &str) -> Target {
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["version"] => return Target::Version,
        ["readyz" | "livez" | "healthz"] => return Target::Health,
        ["api"] => return Target::CoreVersions,
        ["apis"] => return Target::Groups,
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Target::NotFound,
    };
    let object = |plural: &str, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| match resources::find(
        group, version, plural,
    ) {
        Some(rt) if rt.namespaced || namespace.is_none() => Target::Object {
            rt,
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            sub: sub.map(str::to_string),
        },
        _ => Target::NotFound,
    };
    match rest {
        [] => Target::Resources(group.to_string(), version.to_string()),
        [plural] => object(plural, None, None, None),
        ["namespaces", name] if group.is_empty() => object("namespaces", None, Some(name), None),
        ["namespaces", name, sub @ ("status" | "finalize")] if group.is_empty() => {
            object("namespaces", None, Some(name), Some(sub))
        }
        [plural, name] => object(plural, None, Some(name), None),
        ["namespaces", ns, plural] => object(plural, Some(ns), None, None),
        ["namespaces", ns, plural, name] => object(plural, Some(ns), Some(name), None),
        ["namespaces", ns, plural, name, sub] => object(plural, Some(ns), Some(name), Some(sub)),
        _ => Target::NotFound,
    }
}

fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    if content_type.contains("protobuf") {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    if content_type.contains("yaml") {
        serde_norway::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))
    }
}

/// The single request handler.
pub async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    let latency = Duration::from_micros(shared.latency_us.load(Ordering::Relaxed));
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let target = route(uri.path());
    if matches!(target, Target::Version | Target::CoreVersions | Target::Groups | Target::Resources(..)) {
        shared.stats.discovery.fetch_add(1, Ordering::Relaxed);
    } else if let Some(fault) = shared.next_fault() {
        return fault;
    }
    match target {
        Target::Version => json_response(200, &resources::version()),
        Target::Health => Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Body::from("ok"))
            .expect("static response parts are valid"),
        Target::CoreVersions => json_response(200, &resources::core_versions()),
        Target::Groups => json_response(200, &resources::group_list()),
        Target::Resources(group, version) => match resources::resource_list(&group, &version) {
            Some(list) => json_response(200, &list),
            None => error_response(&ApiError {
                code: 404,
                reason: "NotFound",
                message: "the server could not find the requested resource".into(),
                details: None,
                causes: Vec::new(),
            }),
        },
        Target::NotFound => error_response(&ApiError {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: None,
            causes: Vec::new(),
        }),
        Target::Object { rt, namespace, name, sub } => {
            let q = query(&uri);
            let lost = shared.reply_lost(method.as_str(), uri.path());
            let response = match object_request(
                &shared,
                &method,
                rt,
                namespace.as_deref(),
                name.as_deref(),
                sub.as_deref(),
                &q,
                &headers,
                &body,
            )
            .await
            {
                Ok(response) => response,
                Err(error) => error_response(&error),
            };
            match lost.then(super::cut_connection).flatten() {
                Some(cut) => cut,
                None => response,
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn object_request(
    shared: &Arc<Shared>,
    method: &Method,
    rt: &'static ResourceType,
    namespace: Option<&str>,
    name: Option<&str>,
    sub: Option<&str>,
    q: &[(String, String)],
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let status_only = match sub {
        None => false,
        Some("status") if rt.has_status() || rt.kind == "Namespace" => true,
        Some("finalize") => false,
        Some("eviction") if rt.kind == "Pod" => false,
        Some(other) => return Err(ApiError::bad_request(format!("subresource {other} is not served"))),
    };
    match (method, name) {
        (&Method::GET, None) => {
            let selector = Selector::parse(param(q, "labelSelector"), param(q, "fieldSelector"))?;
            if matches!(param(q, "watch"), Some("true") | Some("1")) {
                return watch(shared, rt, namespace, selector, q);
            }
            let (items, rv) = shared.store.lock().expect("store lock").list(rt, namespace, &selector);
            Ok(json_response(
                200,
                &json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
                        "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
            ))
        }
        (&Method::GET, Some(name)) => {
            let key = Key::new(rt, namespace.unwrap_or_default(), name);
            Ok(json_response(200, &shared.store.lock().expect("store lock").get(rt, &key)?))
        }
        (&Method::POST, Some(name)) if sub == Some("eviction") => {
            // No disruption budgets are modelled: an eviction deletes the pod at once.
            let key = Key::new(rt, namespace.unwrap_or_default(), name);
            shared.store.lock().expect("store lock").delete(rt, &key)?;
            Ok(json_response(201, &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})))
        }
        (&Method::POST, None) => {
            let object = parse_body(headers, body)?;
            let created = shared.store.lock().expect("store lock").create(rt, namespace.unwrap_or_default(), object)?;
            Ok(json_response(201, &created))
        }
        (&Method::PUT, Some(name)) => {
            let object = parse_body(headers, body)?;
            let key = Key::new(rt, namespace.unwrap_or_default(), name);
            Ok(json_response(200, &shared.store.lock().expect("store lock").replace(rt, &key, object, status_only)?))
        }
        (&Method::PATCH, Some(name)) => {
            let content_type =
                headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            let key = Key::new(rt, namespace.unwrap_or_default(), name);
            if content_type.starts_with("application/apply-patch") {
                let manager = param(q, "fieldManager")
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| ApiError::bad_request("PATCH with an apply patch requires a fieldManager"))?;
                let applied: Value = serde_norway::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
                if status_only {
                    return Ok(json_response(
                        200,
                        &shared.store.lock().expect("store lock").patch(rt, &key, &applied, true)?,
                    ));
                }
                let (object, created) = shared.store.lock().expect("store lock").apply(rt, &key, applied, manager)?;
                Ok(json_response(if created { 201 } else { 200 }, &object))
            } else if content_type.starts_with("application/merge-patch+json")
                || content_type.starts_with("application/strategic-merge-patch+json")
            {
                let patch: Value = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))?;
                Ok(json_response(200, &shared.store.lock().expect("store lock").patch(rt, &key, &patch, status_only)?))
            } else {
                Err(ApiError::unsupported_media_type(&content_type))
            }
        }
        (&Method::DELETE, Some(name)) => {
            let key = Key::new(rt, namespace.unwrap_or_default(), name);
            Ok(json_response(200, &shared.store.lock().expect("store lock").delete(rt, &key)?))
        }
        (&Method::DELETE, None) => {
            let selector = Selector::parse(param(q, "labelSelector"), param(q, "fieldSelector"))?;
            let mut store = shared.store.lock().expect("store lock");
            let (items, _) = store.list(rt, namespace, &selector);
            let mut deleted = Vec::new();
            for item in items {
                let key = Key::new(
                    rt,
                    item["metadata"]["namespace"].as_str().unwrap_or_default(),
                    item["metadata"]["name"].as_str().unwrap_or_default(),
                );
                deleted.push(store.delete(rt, &key)?);
            }
            Ok(json_response(
                200,
                &json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": {}, "items": deleted}),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn event_json(event: &Event) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": event.kind.as_str(), "object": event.object}))
        .expect("JSON values serialise");
    line.push(b'\n');
    Bytes::from(line)
}

/// `?watch=true`: past events (from `resourceVersion`, or ADDED for every current object), then
/// live ones, as JSON lines, until `timeoutSeconds` (default 30 minutes) or the client leaves.
fn watch(
    shared: &Arc<Shared>,
    rt: &'static ResourceType,
    namespace: Option<&str>,
    selector: Selector,
    q: &[(String, String)],
) -> Result<Response, ApiError> {
    let resource = rt.qualified();
    let namespace = namespace.map(str::to_string);
    let relevant =
        move |key: &Key| key.resource == resource && namespace.as_deref().is_none_or(|ns| key.namespace == ns);
    let timeout = Duration::from_secs(param(q, "timeoutSeconds").and_then(|t| t.parse().ok()).unwrap_or(1800));
    let (initial, receiver) = {
        let store = shared.store.lock().expect("store lock");
        let receiver = store.subscribe();
        let initial: Vec<Event> = match param(q, "resourceVersion").filter(|rv| !rv.is_empty() && *rv != "0") {
            Some(rv) => {
                let rv: u64 = rv.parse().map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv}")))?;
                store.events_since(rv)?
            }
            None => store
                .all()
                .map(|(key, object)| Event {
                    rv: store.resource_version(),
                    kind: super::store::EventType::Added,
                    key: key.clone(),
                    object: object.clone(),
                })
                .collect(),
        };
        (initial, receiver)
    };
    let last_sent = initial.iter().map(|e| e.rv).max().unwrap_or(0);
    let matches = {
        let relevant = relevant.clone();
        let selector = selector.clone();
        move |e: &Event| relevant(&e.key) && selector.matches(&e.object)
    };
    let past: Vec<Bytes> = initial.iter().filter(|e| matches(e)).map(event_json).collect();
    let live = stream::unfold((receiver, last_sent), move |(mut receiver, last_sent)| {
        let matches = matches.clone();
        async move {
            loop {
                match receiver.recv().await {
                    Ok(event) if event.rv > last_sent && matches(&event) => {
                        let rv = event.rv;
                        return Some((event_json(&event), (receiver, rv)));
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    let deadline = tokio::time::sleep(timeout);
    let body = stream::iter(past).chain(live).take_until(deadline).map(Ok::<_, Infallible>);
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from_stream(body))
        .expect("static response parts are valid"))
}
