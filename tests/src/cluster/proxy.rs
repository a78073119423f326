//! A fault proxy in front of the real API server: HTTPS with a certificate from the cluster
//! CA on its own loopback port, forwarding every request (watches streamed) as the admin.
//! It adds latency, answers every Nth request with 429 or 500, cuts every Nth connection, can
//! lose the reply to one chosen request after the server has acted on it, and counts
//! requests — all the tests' and benchmark's faults, on a real server.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

use super::ControlPlane;

/// Deterministic misbehaviour: every Nth request (counted over all requests through the
/// proxy, discovery excepted) gets the fault. Zero disables one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every Nth request answers 500 Internal Server Error.
    pub error_every: u32,
    /// Every Nth request answers 429 Too Many Requests with `Retry-After: 1`.
    pub throttle_every: u32,
    /// Every Nth request's connection is cut without an answer.
    pub drop_every: u32,
}

type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

struct State {
    faults: Mutex<Faults>,
    latency_us: AtomicU64,
    counter: AtomicU32,
    requests: AtomicU64,
    writes: AtomicU64,
    discovery: AtomicU64,
    lost: Mutex<VecDeque<(String, String)>>,
    log: Mutex<Vec<(String, String)>>,
    upstream: String,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Incoming>,
}

/// A running proxy; it stops when the control plane's runtime does.
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<State>,
    kubeconfig: String,
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).map_err(|e| match e {}).boxed());
    *response.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    if code == 429 {
        response.headers_mut().insert("retry-after", hyper::header::HeaderValue::from_static("1"));
    }
    response
}

/// Discovery: `/version`, `/api`, `/apis`, `/openapi/...` and group-version resource lists.
fn is_discovery(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    matches!(segments.as_slice(), ["version"] | ["api"] | ["apis"] | ["api", _] | ["apis", _] | ["apis", _, _])
        || segments.first() == Some(&"openapi")
}

#[derive(Debug)]
struct Cut;

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection cut by the fault proxy")
    }
}

impl std::error::Error for Cut {}

impl State {
    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Result<Response<Body>, Cut> {
        let method = request.method().as_str().to_string();
        let path = request.uri().path().to_string();
        let discovery = is_discovery(&path);
        self.requests.fetch_add(1, Ordering::Relaxed);
        if discovery {
            self.discovery.fetch_add(1, Ordering::Relaxed);
        } else if !matches!(method.as_str(), "GET" | "HEAD") {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut log) = self.log.lock() {
            let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
            log.push((method.clone(), format!("{path}{query}")));
        }
        let latency = self.latency_us.load(Ordering::Relaxed);
        if latency > 0 {
            tokio::time::sleep(Duration::from_micros(latency)).await;
        }
        if !discovery {
            let faults = *self.faults.lock().map_err(|_| Cut)?;
            if faults != Faults::default() {
                let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
                let hit = |every: u32| every > 0 && n % every == 0;
                if hit(faults.drop_every) {
                    return Err(Cut);
                }
                if hit(faults.throttle_every) {
                    return Ok(status(429, "TooManyRequests", "injected throttling"));
                }
                if hit(faults.error_every) {
                    return Ok(status(500, "InternalError", "injected failure"));
                }
            }
        }
        let lose = {
            let mut lost = self.lost.lock().map_err(|_| Cut)?;
            match lost.iter().position(|(m, p)| *m == method && *p == path) {
                Some(index) => {
                    lost.remove(index);
                    true
                }
                None => false,
            }
        };

        let (mut parts, body) = request.into_parts();
        let target = format!("{}{}", self.upstream, parts.uri.path_and_query().map_or("/", |p| p.as_str()));
        parts.uri = target.parse().map_err(|_| Cut)?;
        parts.headers.remove(hyper::header::HOST);
        let answer = self.client.request(Request::from_parts(parts, body)).await;
        let response = match answer {
            Ok(response) => response,
            Err(e) => return Ok(status(502, "ServiceUnavailable", &format!("fault proxy: upstream: {e}"))),
        };
        if lose {
            // The server acted; its answer never arrives.
            let _ = response.into_body().collect().await;
            return Err(Cut);
        }
        Ok(response.map(|body| body.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>).boxed()))
    }
}

fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
}

fn key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| e.to_string())
}

impl Proxy {
    /// Starts a proxy for `plane` on a free loopback port (on the plane's runtime).
    pub async fn start(plane: &ControlPlane) -> Result<Arc<Proxy>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for certificate in certificates(plane.ca().certificate())? {
            roots.add(certificate).map_err(|e| e.to_string())?;
        }
        let admin = plane.admin();
        let client_config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_client_auth_cert(certificates(&admin.certificate)?, key(&admin.key)?)
            .map_err(|e| e.to_string())?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(client_config)
            .https_only()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);

        let serving = plane
            .ca()
            .issue_serving("stratus-fault-proxy", &["127.0.0.1", "localhost"], 30)
            .map_err(|e| e.to_string())?;
        let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(certificates(&serving.certificate)?, key(&serving.key)?)
            .map_err(|e| e.to_string())?;
        server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let state = Arc::new(State {
            faults: Mutex::new(Faults::default()),
            latency_us: AtomicU64::new(0),
            counter: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            discovery: AtomicU64::new(0),
            lost: Mutex::new(VecDeque::new()),
            log: Mutex::new(Vec::new()),
            upstream: format!("https://{}", plane.api()),
            client,
        });
        let serving_state = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let acceptor = acceptor.clone();
                let state = serving_state.clone();
                tokio::spawn(async move {
                    let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| state.clone().handle(request));
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });
        let kubeconfig = stratus_pki::kubeconfig(
            "stratus-proxy",
            "admin",
            &format!("https://{addr}"),
            plane.ca().certificate(),
            admin,
        );
        Ok(Arc::new(Proxy { addr, state, kubeconfig }))
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig (YAML text) that reaches the API server through this proxy.
    pub fn kubeconfig(&self) -> &str {
        &self.kubeconfig
    }

    /// Writes [`Proxy::kubeconfig`] to `path`.
    pub fn write_kubeconfig(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(path, &self.kubeconfig)
    }

    /// Sets the faults (counting starts again).
    pub fn set_faults(&self, faults: Faults) {
        if let Ok(mut current) = self.state.faults.lock() {
            *current = faults;
        }
        self.state.counter.store(0, Ordering::Relaxed);
    }

    /// Latency added before each request is forwarded.
    pub fn set_latency(&self, latency: Duration) {
        self.state.latency_us.store(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The next `method path` request is forwarded, but its answer is lost: the connection is
    /// cut after the server has acted on it.
    pub fn lose_next_reply(&self, method: &str, path: &str) {
        if let Ok(mut lost) = self.state.lost.lock() {
            lost.push_back((method.to_string(), path.to_string()));
        }
    }

    /// Requests so far: (all, writes, discovery).
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.state.requests.load(Ordering::Relaxed),
            self.state.writes.load(Ordering::Relaxed),
            self.state.discovery.load(Ordering::Relaxed),
        )
    }

    /// Every request so far, as (method, path with query).
    pub fn requests(&self) -> Vec<(String, String)> {
        self.state.log.lock().map(|log| log.clone()).unwrap_or_default()
    }
}
