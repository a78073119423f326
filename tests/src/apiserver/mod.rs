//! A faithful in-process Kubernetes API server for tests: real REST paths and discovery for the
//! kinds Stratus creates, uid/resourceVersion/generation, create/get/list/replace/merge
//! patch/server-side apply/delete, label selectors, watch, Kubernetes `Status` errors,
//! namespace termination, a controller that makes workloads ready, and injectable latency and
//! faults. `kubectl` talks to it (see `tests/kubectl.rs`); so does kube-rs.
//!
//! With [`Config::tls`] it serves HTTPS and requires client certificates from the cluster CA,
//! as a kubeadm-made server does; otherwise plain HTTP without authentication.
//!
//! Not modelled: authorization, admission, protobuf, strategic-merge semantics (treated as a
//! merge patch), field ownership conflicts in server-side apply (one manager's applied fields
//! are tracked so it can drop them), pods for workloads.

mod http;
pub mod resources;
pub mod store;
pub mod tls;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use futures_util::stream;
use serde_json::Value;

use store::{ControllerConfig, Store};

/// How the server misbehaves, deterministically: every Nth resource request (discovery is
/// never faulted) gets the fault. Zero disables one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every Nth request answers 500 Internal Server Error.
    pub error_every: u32,
    /// Every Nth request answers 429 Too Many Requests with `Retry-After: 1`.
    pub throttle_every: u32,
    /// Every Nth request's connection is dropped before a response is complete.
    pub drop_every: u32,
}

/// Request counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Every request.
    pub requests: AtomicU64,
    /// Discovery requests (`/version`, `/api`, `/apis`, resource lists).
    pub discovery: AtomicU64,
}

/// Server configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Controller behaviour (readiness delay, failing jobs).
    pub controller: ControllerConfig,
    /// Added before every response.
    pub latency: Duration,
    /// Injected faults.
    pub faults: Faults,
    /// Serve HTTPS with this identity and require client certificates.
    pub tls: Option<tls::Tls>,
}

/// State shared by the request handlers and the controller.
pub struct Shared {
    store: Mutex<Store>,
    controller: Mutex<ControllerConfig>,
    latency_us: AtomicU64,
    faults: Mutex<Faults>,
    fault_counter: AtomicU32,
    stats: Stats,
    /// One-shot: requests (method, path) whose reply is lost after the server acted on them.
    lost_replies: Mutex<Vec<(String, String)>>,
}

/// A response whose body fails at once: the connection is cut mid-response.
fn cut_connection() -> Option<Response> {
    let failing = stream::once(async { Err::<Vec<u8>, std::io::Error>(std::io::Error::other("injected drop")) });
    Response::builder().status(200).header("content-length", "100").body(Body::from_stream(failing)).ok()
}

impl Shared {
    /// Whether the reply to this request is to be lost (once per [`FakeApiServer::lose_next_reply`]).
    fn reply_lost(&self, method: &str, path: &str) -> bool {
        let mut lost = self.lost_replies.lock().expect("lost replies lock");
        match lost.iter().position(|(m, p)| m == method && p == path) {
            Some(index) => {
                lost.remove(index);
                true
            }
            None => false,
        }
    }

    /// The fault response for this request, if it is one of the every-Nth.
    fn next_fault(&self) -> Option<Response> {
        let faults = *self.faults.lock().expect("faults lock");
        if faults == Faults::default() {
            return None;
        }
        let n = self.fault_counter.fetch_add(1, Ordering::Relaxed) + 1;
        let hit = |every: u32| every > 0 && n % every == 0;
        if hit(faults.drop_every) {
            return cut_connection();
        }
        if hit(faults.throttle_every) {
            let error = store::ApiError {
                code: 429,
                reason: "TooManyRequests",
                message: "injected throttling".into(),
                details: None,
                causes: Vec::new(),
            };
            let mut response = Response::new(Body::from(error.status().to_string()));
            *response.status_mut() = axum::http::StatusCode::TOO_MANY_REQUESTS;
            response.headers_mut().insert("retry-after", "1".parse().ok()?);
            response.headers_mut().insert("content-type", "application/json".parse().ok()?);
            return Some(response);
        }
        if hit(faults.error_every) {
            let error = store::ApiError {
                code: 500,
                reason: "InternalError",
                message: "injected failure".into(),
                details: None,
                causes: Vec::new(),
            };
            let mut response = Response::new(Body::from(error.status().to_string()));
            *response.status_mut() = axum::http::StatusCode::INTERNAL_SERVER_ERROR;
            response.headers_mut().insert("content-type", "application/json".parse().ok()?);
            return Some(response);
        }
        None
    }
}

/// A running test API server.
pub struct FakeApiServer {
    addr: SocketAddr,
    scheme: &'static str,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeApiServer {
    /// Starts a server on `listen` (port 0 picks a free one) on its own thread and runtime, so
    /// synchronous tests can use it; it stops when dropped.
    pub fn spawn(config: Config, listen: SocketAddr) -> std::io::Result<FakeApiServer> {
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let acceptor = match &config.tls {
            Some(tls) => Some(tls.acceptor().map_err(std::io::Error::other)?),
            None => None,
        };
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        // Like a fresh cluster: the namespaces Kubernetes makes for itself exist.
        let mut store = Store::default();
        let namespaces = resources::by_kind("v1", "Namespace").expect("namespaces are served");
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            store
                .create(namespaces, "", serde_json::json!({"metadata": {"name": name}}))
                .expect("a fresh store takes the system namespaces");
        }
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            controller: Mutex::new(config.controller.clone()),
            latency_us: AtomicU64::new(config.latency.as_micros() as u64),
            faults: Mutex::new(config.faults),
            fault_counter: AtomicU32::new(0),
            stats: Stats::default(),
            lost_replies: Mutex::new(Vec::new()),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serving = shared.clone();
        let thread = std::thread::Builder::new().name("fake-apiserver".into()).spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime starts");
            runtime.block_on(async {
                tokio::select! {
                    _ = serve(serving, listener, acceptor) => {}
                    _ = rx => {}
                }
            });
            // Open watch streams would keep a graceful shutdown waiting: stop hard.
            runtime.shutdown_timeout(Duration::from_millis(100));
        })?;
        Ok(FakeApiServer { addr, scheme, shared, shutdown: Some(tx), thread: Some(thread) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://` with TLS).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// A kubeconfig pointing at this server (no credentials: the server takes none).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            self.url()
        )
    }

    /// Writes [`Self::kubeconfig`] to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Requests served so far: (all, discovery).
    pub fn request_counts(&self) -> (u64, u64) {
        (self.shared.stats.requests.load(Ordering::Relaxed), self.shared.stats.discovery.load(Ordering::Relaxed))
    }

    /// Changes the injected faults (the every-Nth counter restarts).
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().expect("faults lock") = faults;
        self.shared.fault_counter.store(0, Ordering::Relaxed);
    }

    /// The next `method` request to exactly `path` is carried out, then its connection is cut
    /// before the reply: the client cannot tell whether it happened.
    pub fn lose_next_reply(&self, method: &str, path: &str) {
        self.shared.lost_replies.lock().expect("lost replies lock").push((method.to_string(), path.to_string()));
    }

    /// Changes the per-response latency.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.latency_us.store(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// Changes the controller's behaviour.
    pub fn set_controller(&self, config: ControllerConfig) {
        *self.shared.controller.lock().expect("controller lock") = config;
    }

    /// Makes jobs named `name` fail.
    pub fn fail_job(&self, name: &str) {
        self.shared.controller.lock().expect("controller lock").failing_jobs.insert(name.to_string());
    }

    /// Every stored object, in key order.
    pub fn objects(&self) -> Vec<Value> {
        self.shared.store.lock().expect("store lock").all().map(|(_, v)| v.clone()).collect()
    }

    /// The stored object of `kind` named `name` in `namespace` (empty for cluster-scoped).
    pub fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        self.objects().into_iter().find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"] == name
                && o["metadata"]["namespace"].as_str().unwrap_or_default() == namespace
        })
    }

    /// Creates `object` (with `apiVersion` and `kind`) in `namespace` as a client would,
    /// e.g. the Events a kubelet or scheduler would record.
    pub fn create(&self, namespace: &str, object: Value) -> Result<Value, store::ApiError> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let rt = resources::by_kind(&api_version, &kind)
            .ok_or_else(|| store::ApiError::bad_request(format!("{api_version}/{kind} is not served")))?;
        self.shared.store.lock().expect("store lock").create(rt, namespace, object)
    }

    /// Names of the failing jobs (for tests that need them).
    pub fn failing_jobs(&self) -> BTreeSet<String> {
        self.shared.controller.lock().expect("controller lock").failing_jobs.clone()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(shared: Arc<Shared>, listener: std::net::TcpListener, acceptor: Option<tokio_rustls::TlsAcceptor>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("the listener was bound");
    let controller_state = shared.clone();
    let controller = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            let config = controller_state.controller.lock().expect("controller lock").clone();
            controller_state.store.lock().expect("store lock").reconcile(Instant::now(), &config);
        }
    });
    let app = axum::Router::new().fallback(http::handle).with_state(shared);
    match acceptor {
        Some(acceptor) => {
            let _ = axum::serve(tls::TlsListener { tcp: listener, acceptor }, app).await;
        }
        None => {
            let _ = axum::serve(listener, app).await;
        }
    }
    controller.abort();
}
