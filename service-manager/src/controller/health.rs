//! The controller's `/healthz`, `/readyz` and `/metrics` (Prometheus text format), served
//! over plain HTTP/1.1 on `--health-addr`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// What the controller counts, and whether it is ready.
#[derive(Debug, Default)]
pub struct Metrics {
    reconciles: AtomicU64,
    errors: AtomicU64,
    skipped: AtomicU64,
    /// Microseconds spent reconciling, in all.
    duration_micros: AtomicU64,
    leader: AtomicBool,
    ready: AtomicBool,
}

impl Metrics {
    /// Counts one reconcile that took `took` (and failed if `failed`).
    pub fn reconciled(&self, took: Duration, failed: bool) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.duration_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Counts one reconcile that found nothing changed and wrote nothing.
    pub fn skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// Whether this replica is ready (the definition is installed; leading or standing by).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether this replica is ready.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let reconciles = self.reconciles.load(Ordering::Relaxed);
        let errors = self.errors.load(Ordering::Relaxed);
        let skipped = self.skipped.load(Ordering::Relaxed);
        let seconds = self.duration_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let leader = u8::from(self.leader.load(Ordering::Relaxed));
        format!(
            "# HELP hsm_controller_reconciles_total Reconciles of Instances.\n\
             # TYPE hsm_controller_reconciles_total counter\n\
             hsm_controller_reconciles_total {reconciles}\n\
             # HELP hsm_controller_reconcile_errors_total Reconciles of Instances that failed.\n\
             # TYPE hsm_controller_reconcile_errors_total counter\n\
             hsm_controller_reconcile_errors_total {errors}\n\
             # HELP hsm_controller_reconciles_unchanged_total Reconciles that found nothing changed and wrote nothing.\n\
             # TYPE hsm_controller_reconciles_unchanged_total counter\n\
             hsm_controller_reconciles_unchanged_total {skipped}\n\
             # HELP hsm_controller_reconcile_duration_seconds Time spent reconciling Instances.\n\
             # TYPE hsm_controller_reconcile_duration_seconds summary\n\
             hsm_controller_reconcile_duration_seconds_sum {seconds}\n\
             hsm_controller_reconcile_duration_seconds_count {reconciles}\n\
             # HELP hsm_controller_leader Whether this replica holds the controller Lease.\n\
             # TYPE hsm_controller_leader gauge\n\
             hsm_controller_leader {leader}\n"
        )
    }
}

/// The answer to `GET path`.
pub fn respond(path: &str, metrics: &Metrics) -> (StatusCode, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    match path {
        "/healthz" | "/livez" => (StatusCode::OK, TEXT, "ok\n".into()),
        "/readyz" if metrics.ready() => (StatusCode::OK, TEXT, "ok\n".into()),
        "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, TEXT, "not ready\n".into()),
        "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", metrics.render()),
        _ => (StatusCode::NOT_FOUND, TEXT, "not found\n".into()),
    }
}

/// Binds `addr` and serves the endpoints until the process ends: the address bound (its port
/// is chosen when `addr`'s is 0).
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "health endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let (status, kind, body) = respond(request.uri().path(), &metrics);
                    let response = Response::builder()
                        .status(status)
                        .header(hyper::header::CONTENT_TYPE, kind)
                        .body(Full::new(Bytes::from(body)))
                        .expect("a valid response");
                    async move { Ok::<_, Infallible>(response) }
                });
                let connection =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "health endpoint: connection failed");
                }
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_count_reconciles_and_say_who_leads() {
        let metrics = Metrics::default();
        metrics.reconciled(Duration::from_millis(1500), false);
        metrics.reconciled(Duration::from_millis(500), true);
        metrics.set_leader(true);
        let text = metrics.render();
        assert!(text.contains("\nhsm_controller_reconciles_total 2\n"), "{text}");
        assert!(text.contains("\nhsm_controller_reconcile_errors_total 1\n"), "{text}");
        assert!(text.contains("\nhsm_controller_reconcile_duration_seconds_sum 2\n"), "{text}");
        assert!(text.contains("\nhsm_controller_reconcile_duration_seconds_count 2\n"), "{text}");
        assert!(text.contains("\nhsm_controller_leader 1\n"), "{text}");
    }

    #[test]
    fn ready_only_once_told() {
        let metrics = Metrics::default();
        assert_eq!(respond("/healthz", &metrics).0, StatusCode::OK);
        assert_eq!(respond("/readyz", &metrics).0, StatusCode::SERVICE_UNAVAILABLE);
        metrics.set_ready(true);
        assert_eq!(respond("/readyz", &metrics).0, StatusCode::OK);
        assert_eq!(respond("/nope", &metrics).0, StatusCode::NOT_FOUND);
    }
}
