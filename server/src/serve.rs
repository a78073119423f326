//! Serving: the state handlers share (the catalog, loaded once; the cluster; the token checks
//! when authentication is on), the listening address (loopback only without authentication),
//! readiness, and serving until a shutdown signal with in-flight requests finished.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sdl::catalog::Catalog;
use service_manager::cluster::Cluster;
use tokio::net::TcpListener;

use crate::auth::Authenticator;

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// `--listen` is not an address this server may listen on (bad input).
    #[error("--listen: {0}")]
    Listen(String),
    /// The address could not be bound, or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The state every handler shares.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
    auth: Option<Arc<Authenticator>>,
}

struct Inner {
    catalog: Catalog,
    cluster: Option<Cluster>,
    request_timeout: Duration,
}

impl AppState {
    /// The catalog and the cluster (`None`: a catalog-only server, whose instance endpoints
    /// answer 503), each request's cluster calls bounded by `request_timeout`; no
    /// authentication ([`AppState::with_auth`] turns it on).
    pub fn new(catalog: Catalog, cluster: Option<Cluster>, request_timeout: Duration) -> AppState {
        AppState { inner: Arc::new(Inner { catalog, cluster, request_timeout }), auth: None }
    }

    /// The same state with every route but the public ones needing a bearer token checked by
    /// `auth` (`crate::auth`).
    pub fn with_auth(self, auth: Authenticator) -> AppState {
        AppState { auth: Some(Arc::new(auth)), ..self }
    }

    /// The token checks, when authentication is on.
    pub fn auth(&self) -> Option<&Arc<Authenticator>> {
        self.auth.as_ref()
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// The cluster, its calls bounded by the request timeout from now.
    pub fn cluster(&self) -> Option<Cluster> {
        self.inner.cluster.as_ref().map(|c| c.with_timeout(self.inner.request_timeout))
    }

    /// How long a request may take.
    pub fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    /// Whether the server can answer: the catalog is loaded (always, once built) and the
    /// API server answers within 5 s; why not otherwise.
    pub async fn ready(&self) -> Result<(), String> {
        let Some(cluster) = &self.inner.cluster else { return Ok(()) };
        match tokio::time::timeout(Duration::from_secs(5), cluster.client().apiserver_version()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(format!("the Kubernetes API server does not answer: {error}")),
            Err(_) => Err("the Kubernetes API server does not answer within 5s".into()),
        }
    }
}

/// The address `text` names: an IP address and port, which must be a loopback one unless
/// `authenticated` (a server without authentication serves only this machine).
pub fn listen_address(text: &str, authenticated: bool) -> Result<SocketAddr, ServerError> {
    let address: SocketAddr = text.parse().map_err(|_| {
        ServerError::Listen(format!("{} is not an IP address and port (e.g. 127.0.0.1:8080)", sdl::error::quote(text)))
    })?;
    if !authenticated && !address.ip().is_loopback() {
        return Err(ServerError::Listen(format!(
            "{address} is not a loopback address; without authentication (--no-auth) the server listens only on 127.0.0.1 or ::1"
        )));
    }
    Ok(address)
}

/// Serves `state` on `listener` until `shutdown` completes, then lets requests in flight
/// finish.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    axum::serve(listener, crate::router(state)).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without signal handlers the process ends on the signal's default action.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing requests in flight"),
        _ = int.recv() => tracing::info!("SIGINT: finishing requests in flight"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_served_without_authentication() {
        assert_eq!(listen_address("127.0.0.1:8080", false).unwrap().port(), 8080);
        assert!(listen_address("[::1]:0", false).is_ok());
        let open = listen_address("0.0.0.0:8080", false).unwrap_err().to_string();
        assert!(open.starts_with("--listen: 0.0.0.0:8080 is not a loopback address"), "{open}");
        assert_eq!(listen_address("0.0.0.0:8080", true).unwrap().port(), 8080);
        let name = listen_address("localhost:8080", true).unwrap_err().to_string();
        assert!(name.contains("\"localhost:8080\" is not an IP address and port"), "{name}");
    }
}
