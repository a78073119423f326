//! The API's one error shape, `{code, message, status}`, what each failure becomes in it
//! (reads and writes: [`write_error`]), and the checks of path and body values (bad input is a
//! 4xx naming the value by its JSON path, never a 500).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sdl::catalog::CatalogError;
use sdl::error::quote;
use sdl::resolve::ResolveError;
use sdl::LoadError;
use serde::Serialize;
use service_manager::error::HsmError;
use service_manager::instance::InstanceError;
use utoipa::ToSchema;

/// Every error the API answers, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApiError {
    /// Stable machine-readable code, e.g. `unknown_service`.
    pub code: String,
    /// What went wrong, naming the path value or field.
    pub message: String,
    /// The HTTP status, repeated.
    pub status: u16,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError { code: code.to_string(), message: message.into(), status: status.as_u16() }
    }

    /// The status as a [`StatusCode`].
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status_code(), Json(self)).into_response()
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_path", format!("path: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_query", format!("query: {}", rejection.body_text()))
    }
}

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> ApiError {
        match &error {
            CatalogError::UnknownService { id, suggestion } => {
                let hint = suggestion.as_ref().map(|s| format!(" (did you mean {}?)", quote(s))).unwrap_or_default();
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_service",
                    format!("id: unknown service {}{hint}; GET /v1/services lists the catalog", quote(id)),
                )
            }
            CatalogError::UnknownVersion { what, .. } => {
                let field = if *what == "SDL version" { "sdl_version" } else { "product_version" };
                ApiError::new(StatusCode::NOT_FOUND, "unknown_version", format!("{field}: {error}"))
            }
            // The catalog's fault, not the request's.
            CatalogError::Broken { .. } | CatalogError::Load(_) | CatalogError::Layout { .. } => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "broken_service", error.to_string())
            }
        }
    }
}

impl From<LoadError> for ApiError {
    /// An SDL of the catalog that cannot be read or is invalid: the catalog's fault.
    fn from(error: LoadError) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "broken_service", error.to_string())
    }
}

impl From<InstanceError> for ApiError {
    fn from(error: InstanceError) -> ApiError {
        match &error {
            // A namespace hsm does not manage is no instance either.
            InstanceError::NotFound(id) | InstanceError::NotOurs(id) => ApiError::new(
                StatusCode::NOT_FOUND,
                "instance_not_found",
                format!("id: instance {} not found", quote(id)),
            ),
            InstanceError::Cluster(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "cluster_unavailable", error.to_string())
            }
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", error.to_string()),
        }
    }
}

/// An instance id in the path, checked: a DNS label (it is the instance's namespace).
pub fn instance_id(id: &str) -> Result<&str, ApiError> {
    instance_id_at("id", id)
}

/// An instance id given as `field`, checked: a DNS label.
pub fn instance_id_at<'a>(field: &str, id: &'a str) -> Result<&'a str, ApiError> {
    match sdl::names::dns_label(id) {
        None => Ok(id),
        Some(problem) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_instance_id",
            format!("{field}: {} is not an instance id: {problem}", quote(id)),
        )),
    }
}

/// A service id in the path, checked: `<catalog>.<vendor>.<service>`, each part a DNS label.
pub fn service_id(id: &str) -> Result<&str, ApiError> {
    service_id_at("id", id)
}

/// A service id given as `field`, checked as [`service_id`].
pub fn service_id_at<'a>(field: &str, id: &'a str) -> Result<&'a str, ApiError> {
    let parts: Vec<&str> = id.split('.').collect();
    let problem = if parts.len() != 3 {
        Some("it must be <catalog>.<vendor>.<service>".to_string())
    } else {
        parts.iter().find_map(|part| sdl::names::dns_label(part))
    };
    match problem {
        None => Ok(id),
        Some(problem) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_service_id",
            format!("{field}: {} is not a service id: {problem}", quote(id)),
        )),
    }
}

/// The JSON path of a problem the request layer reports: `--set NAME` (how hsm names a
/// value given on its command line) is the body's `parameters.NAME`.
fn body_path(path: &str) -> String {
    match path.strip_prefix("--set ") {
        Some(name) => format!("parameters.{name}"),
        None if path.is_empty() => "body".to_string(),
        None => path.to_string(),
    }
}

/// `names` as body paths under `parameters`, comma separated.
fn parameter_paths(names: &[String]) -> String {
    names.iter().map(|n| format!("parameters.{n}")).collect::<Vec<_>>().join(", ")
}

/// What a failure of a write (create, change, delete) becomes: bad input a 4xx naming the
/// body's JSON path (values the SDL refuses 422, a refused change 409, unknown services and
/// versions 404), the cluster's failures 503; only the catalog's or the cluster's own faults
/// are 500s. Messages never carry a secret value (the request layer does not repeat them).
pub fn write_error(error: InstanceError) -> ApiError {
    let unprocessable = |code: &str, message: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message);
    let conflict = |code: &str, message: String| ApiError::new(StatusCode::CONFLICT, code, message);
    match error {
        InstanceError::Hsm(hsm) => match hsm {
            HsmError::Catalog(CatalogError::UnknownService { id, suggestion }) => {
                let hint = suggestion.as_ref().map(|s| format!(" (did you mean {}?)", quote(s))).unwrap_or_default();
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_service",
                    format!("service_id: unknown service {}{hint}; GET /v1/services lists the catalog", quote(&id)),
                )
            }
            HsmError::Catalog(error) => ApiError::from(error),
            HsmError::Load(LoadError::Invalid { problems, .. }) => {
                let text: Vec<String> =
                    problems.iter().map(|p| format!("{}: {}", body_path(&p.path), p.message)).collect();
                unprocessable("invalid_parameters", text.join("; "))
            }
            HsmError::Load(error) => ApiError::from(error),
            HsmError::Resolve(ResolveError::Missing(names)) => unprocessable(
                "missing_parameters",
                format!("{}: required, and no default or generator gives a value", parameter_paths(&names)),
            ),
            HsmError::Resolve(ResolveError::Empty(names)) => unprocessable(
                "invalid_parameters",
                format!("{}: required; an empty value is not a value", parameter_paths(&names)),
            ),
            HsmError::Resolve(ResolveError::Immutable(names)) => conflict(
                "immutable_parameter",
                format!("{}: immutable parameter cannot change after creation", parameter_paths(&names)),
            ),
            HsmError::Resolve(ResolveError::SanValue { ref parameter, .. })
            | HsmError::Resolve(ResolveError::Generate { ref parameter, .. }) => {
                unprocessable("invalid_parameters", format!("parameters.{parameter}: {hsm}"))
            }
            HsmError::Plan(error) => unprocessable("invalid_parameters", format!("parameters: {error}")),
            error @ HsmError::UpgradeRefused { .. } => conflict("upgrade_refused", format!("product_version: {error}")),
            error @ HsmError::NothingToChange { .. } => conflict("nothing_to_change", format!("body: {error}")),
            error @ HsmError::Deleted(_) => conflict("instance_deleted", format!("id: {error}")),
            error => ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", error.to_string()),
        },
        InstanceError::NotFound(id) => ApiError::from(InstanceError::NotFound(id)),
        error @ InstanceError::NotOurs(_) | error @ InstanceError::Exists { .. } => {
            conflict("instance_exists", format!("instance_id: {error}"))
        }
        error @ InstanceError::Busy { .. } => conflict("instance_busy", error.to_string()),
        error @ InstanceError::Terminating(_) => conflict("instance_deleting", error.to_string()),
        error @ InstanceError::NeedsAdmin { .. } => {
            unprocessable("needs_cluster_admin", format!("service_id: {error}"))
        }
        error @ InstanceError::Declared { .. } => conflict("refused_by_converger", error.to_string()),
        error @ (InstanceError::Cluster(_) | InstanceError::Wait(_)) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "cluster_unavailable", error.to_string())
        }
        error => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", error.to_string()),
    }
}

/// The longest version accepted in a path.
const MAX_VERSION: usize = 64;

/// A product or SDL version, checked: 1 to 64 of `A-Z a-z 0-9 . _ + -`. `field` names it.
pub fn version<'a>(field: &str, version: &'a str) -> Result<&'a str, ApiError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-');
    if !version.is_empty() && version.len() <= MAX_VERSION && version.chars().all(allowed) {
        return Ok(version);
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_version",
        format!(
            "{field}: {} is not a version (1 to {MAX_VERSION} letters, digits, '.', '_', '+' or '-')",
            quote(version)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_dns_labels() {
        assert_eq!(instance_id("my-redis"), Ok("my-redis"));
        let error = instance_id("My_Redis").unwrap_err();
        assert_eq!((error.status, error.code.as_str()), (400, "invalid_instance_id"));
        assert!(error.message.starts_with("id: \"My_Redis\" is not an instance id: "), "{}", error.message);
    }

    #[test]
    fn service_ids_have_three_labels() {
        assert_eq!(service_id("stackato.hpe.redis"), Ok("stackato.hpe.redis"));
        for bad in ["redis", "a.b.c.d", "stackato..redis", "stackato.hpe.Redis!", ""] {
            let error = service_id(bad).unwrap_err();
            assert_eq!((error.status, error.code.as_str()), (400, "invalid_service_id"), "{bad}");
        }
    }

    #[test]
    fn versions_are_short_and_plain() {
        assert_eq!(version("product_version", "1.0.0-rc.1+b2"), Ok("1.0.0-rc.1+b2"));
        let error = version("sdl_version", "1.0 ; rm").unwrap_err();
        assert_eq!(error.code, "invalid_version");
        assert!(error.message.starts_with("sdl_version: \"1.0 ; rm\""), "{}", error.message);
        assert!(version("product_version", &"9".repeat(65)).is_err());
        assert!(version("product_version", "").is_err());
    }

    #[test]
    fn write_failures_name_the_json_path_with_the_status_of_their_kind() {
        let invalid = LoadError::Invalid {
            source_name: "the request body".into(),
            what: "instance definition",
            problems: vec![sdl::error::Problem::new("--set NOPE", "unknown parameter \"NOPE\"")],
        };
        let error = write_error(InstanceError::Hsm(HsmError::Load(invalid)));
        assert_eq!((error.status, error.code.as_str()), (422, "invalid_parameters"));
        assert_eq!(error.message, "parameters.NOPE: unknown parameter \"NOPE\"");
        let error = write_error(HsmError::Resolve(ResolveError::Immutable(vec!["USER".into()])).into());
        assert_eq!((error.status, error.code.as_str()), (409, "immutable_parameter"));
        assert!(error.message.starts_with("parameters.USER: "), "{}", error.message);
        let error = write_error(HsmError::Resolve(ResolveError::Missing(vec!["A".into(), "B".into()])).into());
        assert_eq!((error.status, error.code.as_str()), (422, "missing_parameters"));
        assert!(error.message.starts_with("parameters.A, parameters.B: required"), "{}", error.message);
        let refused =
            HsmError::UpgradeRefused { service: "s".into(), to: "2/1".into(), from: "1/1".into(), allowed: vec![] };
        let error = write_error(refused.into());
        assert_eq!((error.status, error.code.as_str()), (409, "upgrade_refused"));
        assert!(error.message.starts_with("product_version: "), "{}", error.message);
        let unknown = CatalogError::UnknownService { id: "a.b.c".into(), suggestion: None };
        let error = write_error(HsmError::Catalog(unknown).into());
        assert_eq!((error.status, error.code.as_str()), (404, "unknown_service"));
        assert!(error.message.starts_with("service_id: unknown service \"a.b.c\""), "{}", error.message);
        let error = write_error(InstanceError::NotOurs("kube-system".into()));
        assert_eq!((error.status, error.code.as_str()), (409, "instance_exists"));
        let error = write_error(InstanceError::NotFound("x".into()));
        assert_eq!((error.status, error.code.as_str()), (404, "instance_not_found"));
    }

    #[test]
    fn a_missing_instance_is_a_404_and_a_namespace_not_ours_too() {
        let missing = ApiError::from(InstanceError::NotFound("x".into()));
        let not_ours = ApiError::from(InstanceError::NotOurs("x".into()));
        assert_eq!(missing, not_ours);
        assert_eq!((missing.status, missing.code.as_str()), (404, "instance_not_found"));
    }
}
