//! What every `/v2` request passes before a handler: HTTP basic authentication against the
//! broker's credentials (compared in constant time; optionally an OpenID bearer token of the
//! `/v1` issuer with the admin role instead), the `X-Broker-API-Version` header (400 missing,
//! 412 below 2.13), the platform's `X-Broker-API-Originating-Identity` (recorded in the audit
//! log when well formed, logged and ignored otherwise) and `X-Broker-API-Request-Identity`
//! (in every log line of the request and echoed in the answer). The checks are pure
//! functions; [`gate`] is the middleware. Neither the password nor a token is ever logged.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use ring::digest;
use subtle::ConstantTimeEq;

use super::wire::BrokerError;
use crate::auth::Role;
use crate::serve::AppState;

/// The lowest OSB API version served.
pub const MIN_MINOR: u32 = 13;

/// The OSB version header.
pub const VERSION_HEADER: &str = "x-broker-api-version";
/// The originating identity header.
pub const IDENTITY_HEADER: &str = "x-broker-api-originating-identity";
/// The request identity header.
pub const REQUEST_HEADER: &str = "x-broker-api-request-identity";

/// The broker's basic-auth credentials. `Debug` never shows the password.
#[derive(Clone)]
pub struct Credentials {
    user: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).field("password", &"********").finish()
    }
}

impl Credentials {
    /// `user` and `password`; both must be non-empty, and the user must not contain `:`.
    pub fn new(user: &str, password: &str) -> Result<Credentials, String> {
        if user.is_empty() || user.contains(':') {
            return Err("--broker-user: must be non-empty and without ':'".into());
        }
        if password.is_empty() {
            return Err("the broker password (HSM_BROKER_PASSWORD or --broker-password-file) is empty".into());
        }
        Ok(Credentials { user: user.to_string(), password: password.to_string() })
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether `user` and `password` are these, compared in constant time (digests of equal
    /// length, both compared whatever the first gives).
    pub fn matches(&self, user: &str, password: &str) -> bool {
        let same = |a: &str, b: &str| {
            let (a, b) = (digest::digest(&digest::SHA256, a.as_bytes()), digest::digest(&digest::SHA256, b.as_bytes()));
            a.as_ref().ct_eq(b.as_ref())
        };
        bool::from(same(user, &self.user) & same(password, &self.password))
    }
}

/// The user and password of an `Authorization: Basic …` header value.
pub fn basic(value: Option<&HeaderValue>) -> Option<(String, String)> {
    let text = value?.to_str().ok()?;
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The `X-Broker-API-Version` header checked: 400 when missing or not `MAJOR.MINOR`, 412 for a
/// version this broker does not serve (not 2, or below 2.13).
pub fn check_version(value: Option<&HeaderValue>) -> Result<(u32, u32), BrokerError> {
    let Some(value) = value else {
        return Err(BrokerError::bad_request(
            "X-Broker-API-Version: the header is required (this broker serves 2.13 to 2.17)",
        ));
    };
    let text = value.to_str().unwrap_or("").trim();
    let parsed = text.split_once('.').and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)));
    let Some((major, minor)) = parsed else {
        return Err(BrokerError::bad_request(format!(
            "X-Broker-API-Version: {} is not MAJOR.MINOR (e.g. 2.17)",
            sdl::error::quote(text)
        )));
    };
    if major != 2 || minor < MIN_MINOR {
        return Err(BrokerError::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            format!("X-Broker-API-Version: {major}.{minor} is not served; use 2.{MIN_MINOR} to 2.17"),
        ));
    }
    Ok((major, minor))
}

/// A well-formed originating identity: the platform and the decoded JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct Originating {
    /// The platform (`cloudfoundry`, `kubernetes`, …).
    pub platform: String,
    /// The identity's properties.
    pub identity: serde_json::Map<String, serde_json::Value>,
}

impl Originating {
    /// The user as the log shows it: the platform and its user id or name.
    pub fn display(&self) -> String {
        let user = ["user_id", "username", "uid", "user_name"]
            .iter()
            .find_map(|k| self.identity.get(*k).and_then(|v| v.as_str()))
            .unwrap_or("-");
        format!("{}:{}", self.platform, super::cut(user, 200))
    }
}

/// The `X-Broker-API-Originating-Identity` header: `Ok(None)` when absent, `Err(why)` when
/// malformed (the request goes on; the caller logs why).
pub fn originating(value: Option<&HeaderValue>) -> Result<Option<Originating>, String> {
    let Some(value) = value else { return Ok(None) };
    let text = value.to_str().map_err(|_| "not ASCII".to_string())?;
    let (platform, encoded) = text.trim().split_once(' ').ok_or("not `platform value`")?;
    if platform.is_empty() {
        return Err("empty platform".into());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|e| format!("the value is not base64: {e}"))?;
    let identity: serde_json::Value =
        serde_json::from_slice(&decoded).map_err(|e| format!("the value is not JSON: {e}"))?;
    match identity {
        serde_json::Value::Object(identity) => Ok(Some(Originating { platform: platform.to_string(), identity })),
        _ => Err("the value is not a JSON object".into()),
    }
}

/// The request identity, when given (cut to 200 characters for the log).
pub fn request_identity(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(REQUEST_HEADER)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| super::cut(value, 200))
}

/// The audit verb of a broker request, if it is a write.
pub fn audit_verb(method: &Method, path: &str) -> Option<&'static str> {
    let rest = path.strip_prefix("/v2/service_instances/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match (parts.as_slice(), method) {
        ([id], &Method::PUT) if !id.is_empty() => Some("provision"),
        ([id], &Method::PATCH) if !id.is_empty() => Some("update"),
        ([id], &Method::DELETE) if !id.is_empty() => Some("deprovision"),
        ([id, "service_bindings", b], &Method::PUT) if !id.is_empty() && !b.is_empty() => Some("bind"),
        ([id, "service_bindings", b], &Method::DELETE) if !id.is_empty() && !b.is_empty() => Some("unbind"),
        _ => None,
    }
}

/// The OSB instance id and binding id (`-` when none) in a broker path, as written in it.
fn path_ids(path: &str) -> (&str, &str) {
    let rest = path.strip_prefix("/v2/service_instances/").unwrap_or("-");
    let mut parts = rest.split('/');
    let instance = parts.next().unwrap_or("-");
    let binding = match (parts.next(), parts.next()) {
        (Some("service_bindings"), Some(binding)) => binding,
        _ => "-",
    };
    (instance, binding)
}

/// Whether a route of the broker serves `method` at `path` (else it is a 405).
pub fn served(method: &Method, path: &str) -> bool {
    let read = *method == Method::GET || *method == Method::HEAD;
    if path == "/v2/catalog" || path.ends_with("/last_operation") {
        return read;
    }
    if path.contains("/service_bindings/") {
        return read || *method == Method::PUT || *method == Method::DELETE;
    }
    read || *method == Method::PUT || *method == Method::PATCH || *method == Method::DELETE
}

/// Who may call: the caller's name, or the refusal.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<String, BrokerError> {
    let unauthorized = |why: &str| BrokerError::new(StatusCode::UNAUTHORIZED, "Unauthorized", why.to_string());
    let authorization = headers.get(header::AUTHORIZATION);
    if let (Some(token), Some(auth)) = (crate::auth::bearer(authorization), state.auth()) {
        return match auth.verify(token).await {
            Ok(principal) if principal.role == Some(Role::Admin) => Ok(principal.display()),
            Ok(_) => Err(BrokerError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "the token's groups do not give the admin role, which the broker API needs",
            )),
            Err(_) => Err(unauthorized("the bearer token is not valid")),
        };
    }
    let Some(credentials) = state.broker_credentials() else {
        return Err(unauthorized(
            "the broker API has no credentials configured (HSM_BROKER_USER and HSM_BROKER_PASSWORD)",
        ));
    };
    match basic(authorization) {
        Some((user, password)) if credentials.matches(&user, &password) => Ok(user),
        Some(_) => Err(unauthorized("wrong user or password")),
        None => Err(unauthorized("HTTP basic authentication is required")),
    }
}

/// The middleware over `/v2` (but its OpenAPI document): authentication, then the version
/// header; the identities in the log; the request identity echoed; one audit line per write.
pub async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    if !served(&method, &path) {
        // axum answers 405 (with Allow) before any credential or header is looked at.
        return next.run(request).await;
    }
    let headers = request.headers();
    let request_id = request_identity(headers);
    let rid = request_id.clone().unwrap_or_else(|| "-".into());
    let origin = match originating(headers.get(IDENTITY_HEADER)) {
        Ok(origin) => origin,
        Err(why) => {
            tracing::warn!(request_identity = %rid, "X-Broker-API-Originating-Identity ignored: {why}");
            None
        }
    };
    let mut response = match authenticate(&state, headers).await {
        Err(refusal) => {
            tracing::warn!(
                target: "hsm_server::audit", request_identity = %rid, method = %method, path = %path,
                reason = %refusal.description, "broker: denied"
            );
            refusal.into_response()
        }
        Ok(caller) => match check_version(headers.get(VERSION_HEADER)) {
            Err(refusal) => refusal.into_response(),
            Ok(_) => {
                let response = next.run(request).await;
                if let Some(verb) = audit_verb(&method, &path) {
                    let (osb_instance, osb_binding) = path_ids(&path);
                    tracing::info!(
                        target: "hsm_server::audit",
                        user = %caller,
                        originating = %origin.as_ref().map(Originating::display).unwrap_or_else(|| "-".into()),
                        verb, osb_instance = %super::cut(osb_instance, 200),
                        osb_binding = %super::cut(osb_binding, 200), request_identity = %rid,
                        status = response.status().as_u16(), "broker write"
                    );
                } else {
                    tracing::debug!(request_identity = %rid, method = %method, path = %path, status = response.status().as_u16(), "broker request");
                }
                response
            }
        },
    };
    if let Some(Ok(value)) = request_id.map(|id| HeaderValue::from_str(&id)) {
        response.headers_mut().insert(REQUEST_HEADER, value);
    }
    response
}

/// Keeps the credentials for [`AppState`].
pub type SharedCredentials = Arc<Credentials>;

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> HeaderValue {
        HeaderValue::from_str(text).unwrap()
    }

    #[test]
    fn credentials_match_exactly_and_never_show_the_password() {
        let credentials = Credentials::new("broker", "s3cret-pw").unwrap();
        assert!(credentials.matches("broker", "s3cret-pw"));
        assert!(!credentials.matches("broker", "s3cret-p"));
        assert!(!credentials.matches("Broker", "s3cret-pw"));
        assert!(!credentials.matches("", ""));
        assert!(!format!("{credentials:?}").contains("s3cret"));
        assert!(Credentials::new("", "x").is_err());
        assert!(Credentials::new("a:b", "x").is_err());
        assert!(Credentials::new("a", "").is_err());
    }

    #[test]
    fn basic_headers_are_read_and_anything_else_is_none() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("broker:pa:ss");
        assert_eq!(basic(Some(&header(&format!("Basic {encoded}")))), Some(("broker".into(), "pa:ss".into())));
        assert_eq!(basic(Some(&header(&format!("basic {encoded}")))).map(|b| b.0), Some("broker".into()));
        assert_eq!(basic(Some(&header("Bearer abc"))), None);
        assert_eq!(basic(Some(&header("Basic !!!"))), None);
        assert_eq!(basic(Some(&header("Basic"))), None);
        assert_eq!(basic(None), None);
    }

    #[test]
    fn the_version_header_is_required_and_2_13_the_lowest() {
        assert_eq!(check_version(Some(&header("2.17"))).unwrap(), (2, 17));
        assert_eq!(check_version(Some(&header("2.13"))).unwrap(), (2, 13));
        assert_eq!(check_version(Some(&header("2.18"))).unwrap(), (2, 18));
        assert_eq!(check_version(None).unwrap_err().status, 400);
        assert_eq!(check_version(Some(&header("two"))).unwrap_err().status, 400);
        assert_eq!(check_version(Some(&header("2.12"))).unwrap_err().status, 412);
        assert_eq!(check_version(Some(&header("3.0"))).unwrap_err().status, 412);
        assert_eq!(check_version(Some(&header("1.99"))).unwrap_err().status, 412);
    }

    #[test]
    fn originating_identities_are_read_when_well_formed() {
        let value = base64::engine::general_purpose::STANDARD.encode(r#"{"user_id": "683ea748"}"#);
        let origin = originating(Some(&header(&format!("cloudfoundry {value}")))).unwrap().unwrap();
        assert_eq!(origin.platform, "cloudfoundry");
        assert_eq!(origin.display(), "cloudfoundry:683ea748");
        assert_eq!(originating(None), Ok(None));
        assert!(originating(Some(&header("cloudfoundry"))).is_err());
        assert!(originating(Some(&header("cloudfoundry %%%"))).is_err());
        let list = base64::engine::general_purpose::STANDARD.encode("[1]");
        assert!(originating(Some(&header(&format!("kubernetes {list}")))).is_err());
        let text = base64::engine::general_purpose::STANDARD.encode("not json");
        assert!(originating(Some(&header(&format!("kubernetes {text}")))).is_err());
    }

    #[test]
    fn writes_have_audit_verbs() {
        assert_eq!(audit_verb(&Method::PUT, "/v2/service_instances/abc"), Some("provision"));
        assert_eq!(audit_verb(&Method::PATCH, "/v2/service_instances/abc"), Some("update"));
        assert_eq!(audit_verb(&Method::DELETE, "/v2/service_instances/abc"), Some("deprovision"));
        assert_eq!(audit_verb(&Method::GET, "/v2/service_instances/abc"), None);
        assert_eq!(audit_verb(&Method::GET, "/v2/service_instances/abc/last_operation"), None);
        assert_eq!(audit_verb(&Method::PUT, "/v2/catalog"), None);
        assert!(served(&Method::GET, "/v2/catalog") && !served(&Method::TRACE, "/v2/catalog"));
        assert!(!served(&Method::PUT, "/v2/catalog"));
        assert!(served(&Method::PATCH, "/v2/service_instances/a") && !served(&Method::POST, "/v2/service_instances/a"));
        assert!(!served(&Method::DELETE, "/v2/service_instances/a/last_operation"));
        let binding = "/v2/service_instances/a/service_bindings/b";
        assert!(served(&Method::PUT, binding) && served(&Method::DELETE, binding) && served(&Method::GET, binding));
        assert!(!served(&Method::PATCH, binding) && !served(&Method::POST, binding));
        assert!(!served(&Method::PUT, &format!("{binding}/last_operation")));
        assert_eq!(audit_verb(&Method::PUT, binding), Some("bind"));
        assert_eq!(audit_verb(&Method::DELETE, binding), Some("unbind"));
        assert_eq!(audit_verb(&Method::GET, binding), None);
        assert_eq!(audit_verb(&Method::PUT, &format!("{binding}/last_operation")), None);
        assert_eq!(path_ids(binding), ("a", "b"));
        assert_eq!(path_ids("/v2/service_instances/a"), ("a", "-"));
    }
}
