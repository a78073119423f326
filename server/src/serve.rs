//! Serving: the state handlers share (the catalog, loaded once; the cluster; where the
//! converger keeps its Lease; the metrics; the token checks when authentication is on), the
//! listening address (loopback only for plain HTTP or without authentication), readiness,
//! and serving over HTTP or HTTPS until a shutdown signal with in-flight requests finished.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sdl::catalog::Catalog;
use service_manager::cluster::Cluster;
use service_manager::ClusterProfile;
use tokio::net::TcpListener;
use tokio_rustls::rustls;

use crate::cache::InstanceCache;
use crate::metrics::Metrics;

use crate::auth::Authenticator;

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// `--listen` is not an address this server may listen on (bad input).
    #[error("--listen: {0}")]
    Listen(String),
    /// The TLS flags are incomplete, or their files cannot be used (bad input).
    #[error("{0}")]
    Tls(String),
    /// The address could not be bound, or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The state every handler shares.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
    auth: Option<Arc<Authenticator>>,
    cache: Option<Arc<InstanceCache>>,
    broker: Option<crate::broker::gate::SharedCredentials>,
}

struct Inner {
    catalog: Catalog,
    /// `GET /v1/services`' JSON, made once on first use: the catalog does not change while
    /// the server runs.
    services_json: std::sync::OnceLock<axum::body::Bytes>,
    cluster: Option<Cluster>,
    request_timeout: Duration,
    lease_namespace: String,
    profile: ClusterProfile,
    metrics: Arc<Metrics>,
    stopping: tokio::sync::watch::Sender<bool>,
}

/// The Lease namespace assumed unless told: `hsm controller`'s default.
pub const LEASE_NAMESPACE: &str = "kube-system";

impl AppState {
    /// The catalog and the cluster (`None`: a catalog-only server, whose instance endpoints
    /// answer 503), each request's cluster calls bounded by `request_timeout`; the converger's
    /// Lease in [`LEASE_NAMESPACE`], the default cluster profile; no authentication
    /// ([`AppState::with_auth`] turns it on).
    pub fn new(catalog: Catalog, cluster: Option<Cluster>, request_timeout: Duration) -> AppState {
        AppState::with(catalog, cluster, request_timeout, LEASE_NAMESPACE.into(), ClusterProfile::default())
    }

    /// [`AppState::new`] with the converger's Lease (and hsm's Secrets of secret values) in
    /// `lease_namespace` and instances planned for `profile`, as `hsm` plans them.
    pub fn with(
        catalog: Catalog,
        cluster: Option<Cluster>,
        request_timeout: Duration,
        lease_namespace: String,
        profile: ClusterProfile,
    ) -> AppState {
        let metrics = Arc::new(Metrics::default());
        let (stopping, _) = tokio::sync::watch::channel(false);
        let inner = Inner {
            catalog,
            services_json: Default::default(),
            cluster,
            request_timeout,
            lease_namespace,
            profile,
            metrics,
            stopping,
        };
        AppState { inner: Arc::new(inner), auth: None, cache: None, broker: None }
    }

    /// Says the server is stopping: long answers (event streams) end, so that a graceful
    /// shutdown does not wait for them.
    pub fn stop(&self) {
        self.inner.stopping.send_replace(true);
    }

    /// Completes once [`AppState::stop`] was called.
    pub async fn stopped(&self) {
        let mut stopping = self.inner.stopping.subscribe();
        let _ = stopping.wait_for(|stopping| *stopping).await;
    }

    /// The namespace of the converger's Lease.
    pub fn lease_namespace(&self) -> &str {
        &self.inner.lease_namespace
    }

    /// The cluster profile instances are planned for.
    pub fn profile(&self) -> &ClusterProfile {
        &self.inner.profile
    }

    /// The request counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.inner.metrics.clone()
    }

    /// The same state with every route but the public ones needing a bearer token checked by
    /// `auth` (`crate::auth`).
    pub fn with_auth(self, auth: Authenticator) -> AppState {
        AppState { auth: Some(Arc::new(auth)), ..self }
    }

    /// The same state with the instance list answered from watches on the cluster
    /// (`crate::cache`), started now on the current runtime; without a cluster, unchanged.
    pub fn with_instance_cache(self) -> AppState {
        let cache = self.inner.cluster.as_ref().map(|cluster| Arc::new(InstanceCache::start(cluster)));
        AppState { cache, ..self }
    }

    /// The instance list kept by watches, when the server keeps one.
    pub fn instance_cache(&self) -> Option<&InstanceCache> {
        self.cache.as_deref()
    }

    /// The same state with the broker API (`/v2`) accepting HTTP basic authentication with
    /// `credentials` (`crate::broker`); without, `/v2` answers 401 unless a bearer token with
    /// the admin role is given.
    pub fn with_broker(self, credentials: crate::broker::gate::Credentials) -> AppState {
        AppState { broker: Some(Arc::new(credentials)), ..self }
    }

    /// The broker's credentials, when set.
    pub fn broker_credentials(&self) -> Option<&crate::broker::gate::SharedCredentials> {
        self.broker.as_ref()
    }

    /// The token checks, when authentication is on.
    pub fn auth(&self) -> Option<&Arc<Authenticator>> {
        self.auth.as_ref()
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// The JSON of `GET /v1/services` (the catalog's [`crate::api::ServiceSummary`]s, by id),
    /// made on the first call and shared after.
    pub fn services_json(&self) -> axum::body::Bytes {
        self.inner
            .services_json
            .get_or_init(|| {
                let list: Vec<_> = self.inner.catalog.services.iter().map(crate::api::service_summary).collect();
                serde_json::to_vec(&list).expect("service summaries serialize").into()
            })
            .clone()
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
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(format!("the Kubernetes API server does not answer: {error}")),
            Err(_) => return Err("the Kubernetes API server does not answer within 5s".into()),
        }
        // Traffic before the instance cache's first listing would wait for it (or, after a
        // while, list the cluster itself): not ready until then.
        match self.instance_cache() {
            Some(cache) if !cache.synced() => {
                Err("the instance cache has not listed the cluster's instances yet".into())
            }
            _ => Ok(()),
        }
    }
}

/// The address `text` names: an IP address and port, which must be a loopback one when
/// `plain` (HTTP without TLS is for tests and for an ingress on the same host) or when not
/// `authenticated` (a server without authentication serves only this machine).
pub fn listen_address(text: &str, plain: bool, authenticated: bool) -> Result<SocketAddr, ServerError> {
    let address: SocketAddr = text.parse().map_err(|_| {
        ServerError::Listen(format!("{} is not an IP address and port (e.g. 127.0.0.1:8080)", sdl::error::quote(text)))
    })?;
    if address.ip().is_loopback() {
        return Ok(address);
    }
    if !authenticated {
        return Err(ServerError::Listen(format!(
            "{address} is not a loopback address; without authentication (--no-auth) the server listens only on 127.0.0.1 or ::1"
        )));
    }
    if plain {
        return Err(ServerError::Listen(format!(
            "{address} is not a loopback address; plain HTTP (--insecure-http) is served only on 127.0.0.1 or ::1, give --tls-cert and --tls-key to serve HTTPS elsewhere"
        )));
    }
    Ok(address)
}

/// How the server serves, from its flags: HTTPS with a certificate and key, or plain HTTP
/// only when asked for.
pub fn transport(
    tls_cert: Option<&Path>,
    tls_key: Option<&Path>,
    insecure_http: bool,
) -> Result<Option<Arc<rustls::ServerConfig>>, ServerError> {
    match (tls_cert, tls_key, insecure_http) {
        (Some(_), Some(_), true) => {
            Err(ServerError::Tls("--insecure-http: not with --tls-cert and --tls-key; choose one".into()))
        }
        (Some(cert), Some(key), false) => crate::tls::config(cert, key).map(Some).map_err(ServerError::Tls),
        (Some(_), None, _) => Err(ServerError::Tls("--tls-cert: needs --tls-key".into())),
        (None, Some(_), _) => Err(ServerError::Tls("--tls-key: needs --tls-cert".into())),
        (None, None, true) => Ok(None),
        (None, None, false) => Err(ServerError::Tls(
            "--tls-cert and --tls-key are needed to serve HTTPS; pass --insecure-http to serve plain HTTP on a loopback address".into(),
        )),
    }
}

/// Serves `state` on `listener` (HTTPS when `tls` is given) until `shutdown` completes, then
/// ends event streams and lets requests in flight finish.
pub async fn run(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let router = crate::router(state.clone());
    let shutdown = async move {
        shutdown.await;
        state.stop();
    };
    match tls {
        None => axum::serve(listener, router).with_graceful_shutdown(shutdown).await?,
        Some(config) => {
            let listener = crate::tls::TlsListener::new(listener, config)?;
            axum::serve(listener, router).with_graceful_shutdown(shutdown).await?
        }
    }
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
    fn plain_http_or_no_authentication_is_served_on_loopback_addresses_only() {
        assert_eq!(listen_address("127.0.0.1:8080", true, false).unwrap().port(), 8080);
        assert!(listen_address("[::1]:0", true, false).is_ok());
        let open = listen_address("0.0.0.0:8080", true, true).unwrap_err().to_string();
        assert!(open.starts_with("--listen: 0.0.0.0:8080 is not a loopback address; plain HTTP"), "{open}");
        let open = listen_address("0.0.0.0:8443", false, false).unwrap_err().to_string();
        assert!(open.contains("without authentication (--no-auth)"), "{open}");
        assert_eq!(listen_address("0.0.0.0:8443", false, true).unwrap().port(), 8443);
        let name = listen_address("localhost:8080", false, true).unwrap_err().to_string();
        assert!(name.contains("\"localhost:8080\" is not an IP address and port"), "{name}");
    }

    #[test]
    fn plain_http_only_when_asked_and_tls_needs_both_files() {
        assert!(transport(None, None, true).unwrap().is_none());
        let refused = transport(None, None, false).unwrap_err().to_string();
        assert!(refused.starts_with("--tls-cert and --tls-key are needed"), "{refused}");
        let file = Path::new("/nonexistent");
        assert_eq!(transport(Some(file), None, false).unwrap_err().to_string(), "--tls-cert: needs --tls-key");
        assert_eq!(transport(None, Some(file), false).unwrap_err().to_string(), "--tls-key: needs --tls-cert");
        assert!(transport(Some(file), Some(file), true).unwrap_err().to_string().starts_with("--insecure-http"));
        let missing = transport(Some(file), Some(file), false).unwrap_err().to_string();
        assert!(missing.starts_with("--tls-cert: cannot read /nonexistent"), "{missing}");
    }
}
