//! `hsm` against an HSM server instead of a kubeconfig: the stored target and session
//! ([`config`]), signing in through the server's OIDC provider ([`login`]), the HTTP client of
//! API v1 that turns answers into service-manager's own types and HTTP errors into exit codes
//! ([`client`]), and the verbs on top of it ([`verbs`]). It speaks the API's JSON only; it
//! does not depend on the server's crate.
//!
//! Which backend a verb uses is explicit: `--kubeconfig` (or `--context`) → the cluster
//! directly; otherwise a target set with `hsm api` → the server; otherwise the kubeconfig as
//! before.

pub mod client;
pub mod config;
pub mod login;
pub mod verbs;

/// A failure of a remote verb, with the exit code `hsm` gives it.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// Bad input from the command line, found before anything was sent.
    #[error("{0}")]
    Usage(String),
    /// The configuration file cannot be read or written.
    #[error("{0}")]
    Config(String),
    /// No target is set.
    #[error("no HSM server is set: run `hsm api URL` first")]
    NoTarget,
    /// The server (or the identity provider) cannot be reached.
    #[error("cannot reach {url}: {why}")]
    Unreachable {
        /// What was asked.
        url: String,
        /// Why not.
        why: String,
    },
    /// The server answered with an error in the API's shape.
    #[error("{message}{}", hint(*.status))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The API's error code, e.g. `unknown_service`.
        code: String,
        /// The API's message (it names the field at fault).
        message: String,
    },
    /// Not signed in, or the session is no longer accepted.
    #[error("{0}: run `hsm login`")]
    NotSignedIn(String),
    /// Signing in failed or was refused.
    #[error("sign-in failed: {0}")]
    Login(String),
    /// An answer that is not what the API promises.
    #[error("{0}")]
    Protocol(String),
    /// The instance's operation failed.
    #[error("instance \"{id}\" failed: {message}")]
    Failed {
        /// Instance id.
        id: String,
        /// The instance's message.
        message: String,
    },
    /// Waiting took longer than allowed.
    #[error("timed out after {after} waiting for instance \"{id}\" ({state}){}", if .not_done.is_empty() { String::new() } else { format!(":\n{}", .not_done) })]
    Timeout {
        /// Instance id.
        id: String,
        /// How long was waited.
        after: String,
        /// The last state seen.
        state: String,
        /// What was not ready yet, one line each.
        not_done: String,
    },
    /// The operator said no.
    #[error("cancelled: nothing was deleted")]
    Cancelled,
}

fn hint(status: u16) -> &'static str {
    match status {
        403 => " (your account lacks the role this needs; ask an administrator)",
        _ => "",
    }
}

impl RemoteError {
    /// The exit code: 2 for bad input (nothing was changed), 1 for everything else — as `hsm`
    /// gives the same failure against a kubeconfig (an unknown instance is 1 there too).
    pub fn exit_code(&self) -> u8 {
        match self {
            RemoteError::Usage(_) | RemoteError::Config(_) => 2,
            RemoteError::Api { status, code, .. } => match (*status, code.as_str()) {
                (404, "instance_not_found" | "binding_not_found") => 1,
                (400 | 404 | 409 | 413 | 422, _) => 2,
                _ => 1,
            },
            _ => 1,
        }
    }
}

/// Unix seconds now.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> RemoteError {
        RemoteError::Api { status, code: code.into(), message: "m".into() }
    }

    #[test]
    fn exit_codes_follow_the_direct_ones() {
        assert_eq!(api(400, "invalid_service_id").exit_code(), 2);
        assert_eq!(api(404, "unknown_service").exit_code(), 2);
        assert_eq!(api(409, "instance_exists").exit_code(), 2);
        assert_eq!(api(422, "invalid_parameters").exit_code(), 2);
        assert_eq!(api(404, "instance_not_found").exit_code(), 1);
        assert_eq!(api(503, "cluster_unavailable").exit_code(), 1);
        assert_eq!(api(403, "forbidden").exit_code(), 1);
        assert_eq!(RemoteError::Usage("u".into()).exit_code(), 2);
        assert_eq!(RemoteError::NotSignedIn("x".into()).exit_code(), 1);
        assert!(api(403, "forbidden").to_string().contains("lacks the role"));
    }
}
