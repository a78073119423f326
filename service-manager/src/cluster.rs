//! The edge to a Kubernetes cluster (kube-rs): server-side apply of planned objects with
//! retries, reads of instance namespaces and their objects, namespace creation and metadata
//! patches with optimistic concurrency, watches for readiness, and deletion. Everything that
//! decides *what* to do lives in [`crate::instance`]; this module only does it.
//!
//! Every call is bounded: each attempt by [`ClientOptions::request_timeout`], its retries by
//! [`ClientOptions::attempts`] and a budget of twice the request timeout, and all of them by
//! the command's deadline ([`Cluster::with_deadline`]). kube's own retry layer is off, so
//! there is exactly one retry policy and it is this one.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::ApiResource;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;

use crate::labels;
use crate::objects::{Kind, KubeObject};
use crate::readiness::{self, Readiness};

/// Create and replace requests name hsm as their field manager, so the fields they set are
/// hsm's in `managedFields` (not "unknown") and a later server-side apply by hsm takes them
/// over without a write.
fn post_params() -> PostParams {
    PostParams { field_manager: Some(labels::MANAGER.to_string()), ..PostParams::default() }
}

/// Patches (merge and cordon) name hsm as their field manager, as [`post_params`].
fn patch_params() -> PatchParams {
    PatchParams { field_manager: Some(labels::MANAGER.to_string()), ..PatchParams::default() }
}

/// A namespaced Kubernetes type the typed calls below work with.
pub trait Namespaced:
    Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + serde::Serialize
    + std::fmt::Debug
    + Send
    + 'static
{
}

impl<K> Namespaced for K where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
        + Send
        + 'static
{
}

/// A failed cluster call.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No usable kubeconfig.
    #[error("cannot configure a Kubernetes client: {0}")]
    Config(String),
    /// Nothing says which cluster to talk to.
    #[error("no Kubernetes cluster to talk to: no --kubeconfig was given, KUBECONFIG is not set, {home_config} does not exist and this is not a pod with a service account; point at a cluster with --kubeconfig FILE (and --context NAME) or KUBECONFIG=FILE")]
    NoConfig {
        /// Where the default kubeconfig was looked for.
        home_config: String,
    },
    /// The API server answered with an error status.
    #[error("{action}: {message} ({code} {reason}){}", tries(*attempts))]
    Api {
        /// What was being done, e.g. `apply Deployment hcf/api`.
        action: String,
        /// HTTP status.
        code: u16,
        /// Kubernetes reason.
        reason: String,
        /// Server message.
        message: String,
        /// How many times it was asked.
        attempts: u32,
    },
    /// The server could not be reached (after retries).
    #[error("{action}: {message}")]
    Transport {
        /// What was being done.
        action: String,
        /// Why.
        message: String,
    },
    /// The command's deadline passed while a call was still failing or unanswered.
    #[error("timed out after {} waiting for the API server to {action}{}", seconds(*waited), last.as_ref().map(|l| format!("; its last answer: {l}")).unwrap_or_default())]
    Deadline {
        /// What was being done.
        action: String,
        /// How long the command had waited in all.
        waited: Duration,
        /// The last failure seen, if any.
        last: Option<String>,
    },
}

fn tries(attempts: u32) -> String {
    if attempts > 1 {
        format!(", gave up after {attempts} attempts")
    } else {
        String::new()
    }
}

/// `12s`, `1.5s`: a duration as a person reads it.
fn seconds(duration: Duration) -> String {
    let tenths = duration.as_millis().div_ceil(100);
    if tenths % 10 == 0 {
        format!("{}s", tenths / 10)
    } else {
        format!("{}.{}s", tenths / 10, tenths % 10)
    }
}

impl ClusterError {
    /// The HTTP status of an API error.
    pub fn code(&self) -> Option<u16> {
        match self {
            ClusterError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Tuning of cluster calls.
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    /// Objects applied at once within one step.
    pub concurrency: usize,
    /// Attempts for a call failing with 429, 5xx, a conflict, a transport error or no answer.
    pub attempts: u32,
    /// First retry delay (doubles each time, up to 5 s).
    pub backoff: Duration,
    /// How long one attempt may wait for an answer. A call's retries stop once twice this
    /// has passed since its first attempt.
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            concurrency: 32,
            attempts: 8,
            backoff: Duration::from_millis(50),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A connected cluster.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    options: ClientOptions,
    server: String,
    /// When every call must have ended, and the timeout it was set from.
    deadline: Option<(Instant, Duration)>,
}

/// Why one attempt of a call failed.
enum Attempt {
    /// kube's error (an API status or a transport failure).
    Failed(kube::Error),
    /// No answer within the request timeout.
    NoAnswer(Duration),
}

impl Attempt {
    fn retryable(&self) -> bool {
        match self {
            Attempt::Failed(error) => retryable(error),
            Attempt::NoAnswer(_) => true,
        }
    }

    fn describe(&self) -> String {
        match self {
            Attempt::Failed(kube::Error::Api(status)) => {
                format!("{} {} ({})", status.code, status.reason, status.message)
            }
            Attempt::Failed(other) => other.to_string(),
            Attempt::NoAnswer(after) => format!("no answer within {}", seconds(*after)),
        }
    }
}

fn retryable(error: &kube::Error) -> bool {
    match error {
        // A conflict on an update is worth another try; "already exists" is an answer.
        kube::Error::Api(status) if status.code == 409 => status.reason != "AlreadyExists",
        kube::Error::Api(status) => matches!(status.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

fn convert(action: &str, error: kube::Error) -> ClusterError {
    convert_after(action, error, 1)
}

fn convert_after(action: &str, error: kube::Error, attempts: u32) -> ClusterError {
    match error {
        kube::Error::Api(status) => ClusterError::Api {
            action: action.to_string(),
            code: status.code,
            reason: status.reason.clone(),
            message: status.message.clone(),
            attempts,
        },
        other => ClusterError::Transport { action: action.to_string(), message: other.to_string() },
    }
}

impl Cluster {
    /// Connects with `kubeconfig` (else `KUBECONFIG`, `~/.kube/config` or in-cluster
    /// configuration) and `context`.
    pub async fn connect(
        kubeconfig: Option<&Path>,
        context: Option<&str>,
        options: ClientOptions,
    ) -> Result<Cluster, ClusterError> {
        let kube_options = KubeConfigOptions { context: context.map(str::to_string), ..KubeConfigOptions::default() };
        let config = match kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path)
                    .map_err(|e| ClusterError::Config(format!("{}: {e}", path.display())))?;
                kube::Config::from_custom_kubeconfig(file, &kube_options)
                    .await
                    .map_err(|e| ClusterError::Config(e.to_string()))?
            }
            None if context.is_some() => {
                kube::Config::from_kubeconfig(&kube_options).await.map_err(|e| ClusterError::Config(e.to_string()))?
            }
            None => {
                let home_config = std::env::var_os("HOME").map(|h| Path::new(&h).join(".kube/config"));
                let anywhere = std::env::var_os("KUBECONFIG").is_some_and(|k| !k.is_empty())
                    || home_config.as_ref().is_some_and(|p| p.exists())
                    || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
                if !anywhere {
                    let home_config =
                        home_config.map(|p| p.display().to_string()).unwrap_or_else(|| "~/.kube/config".into());
                    return Err(ClusterError::NoConfig { home_config });
                }
                kube::Config::infer().await.map_err(|e| ClusterError::Config(e.to_string()))?
            }
        };
        let mut config = config;
        // One retry policy, ours (bounded by attempts, budget and deadline): kube's default
        // layer retries 429s up to 15 times with delays of up to 1,000 s.
        config.default_retry = false;
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|e| ClusterError::Config(e.to_string()))?;
        Ok(Cluster { client, options, server, deadline: None })
    }

    /// This cluster with every call bounded by a deadline `timeout` from now: a call still
    /// failing or unanswered then ends with [`ClusterError::Deadline`]. A timeout too large
    /// to represent means no deadline.
    pub fn with_timeout(&self, timeout: Duration) -> Cluster {
        let deadline = Instant::now().checked_add(timeout).map(|at| (at, timeout));
        Cluster { deadline, ..self.clone() }
    }

    /// The kube client, for what runs on kube's runtime itself (the converger's controller).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The timeout the deadline was set from, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.deadline.map(|(_, timeout)| timeout)
    }

    /// The deadline calls are bounded by, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.map(|(at, _)| at)
    }

    /// Runs `call` with retries on transient failures, each attempt bounded by the request
    /// timeout, all of them by the retry budget and the deadline.
    async fn retry<T, F, Fut>(&self, action: &str, mut call: F) -> Result<T, ClusterError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        let started = Instant::now();
        let budget = started + self.options.request_timeout * 2;
        let mut delay = self.options.backoff;
        let mut attempt = 1;
        loop {
            let limit = match self.deadline() {
                Some(deadline) => self.options.request_timeout.min(deadline.saturating_duration_since(Instant::now())),
                None => self.options.request_timeout,
            };
            let failure = match tokio::time::timeout(limit, call()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => Attempt::Failed(error),
                Err(_) => Attempt::NoAnswer(limit),
            };
            let now = Instant::now();
            let past_deadline = self.deadline().is_some_and(|d| now + delay >= d);
            if failure.retryable() && past_deadline {
                return Err(self.deadline_error(action, Some(failure.describe())));
            }
            if failure.retryable() && attempt < self.options.attempts && now + delay < budget {
                tracing::debug!(action, attempt, failure = %failure.describe(), "retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                attempt += 1;
                continue;
            }
            return Err(match failure {
                Attempt::Failed(error) => match convert_after(action, error, attempt) {
                    ClusterError::Transport { action, message } => ClusterError::Transport {
                        action,
                        message: format!("{message} (is the API server at {} reachable?)", self.server),
                    },
                    other => other,
                },
                Attempt::NoAnswer(_) => ClusterError::Transport {
                    action: action.to_string(),
                    message: format!(
                        "the API server at {} accepted the request but sent no answer ({} attempts over {})",
                        self.server,
                        attempt,
                        seconds(now - started)
                    ),
                },
            });
        }
    }

    /// Runs `call` once (no retries: its failure is the answer), bounded by the request
    /// timeout and the deadline.
    async fn once<T>(
        &self,
        action: &str,
        call: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ClusterError> {
        let limit = match self.deadline() {
            Some(deadline) => self.options.request_timeout.min(deadline.saturating_duration_since(Instant::now())),
            None => self.options.request_timeout,
        };
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result.map_err(|e| convert(action, e)),
            Err(_) if self.deadline().is_some_and(|d| Instant::now() >= d) => {
                Err(self.deadline_error(action, Some(format!("no answer within {}", seconds(limit)))))
            }
            Err(_) => Err(ClusterError::Transport {
                action: action.to_string(),
                message: format!("the API server at {} sent no answer within {}", self.server, seconds(limit)),
            }),
        }
    }

    fn deadline_error(&self, action: &str, last: Option<String>) -> ClusterError {
        let waited = self.deadline.map(|(_, timeout)| timeout).unwrap_or_default();
        ClusterError::Deadline { action: action.to_string(), waited, last }
    }

    /// Server-side applies `object` with field manager `hsm` (forcing ownership), returning the
    /// stored object.
    pub async fn apply(&self, object: &KubeObject) -> Result<Value, ClusterError> {
        let body = serde_json::to_value(object).expect("Kubernetes objects serialise");
        self.apply_erased(&object.kind().api_resource(), object.metadata(), &body).await
    }

    /// Deletes `object` (by kind, namespace and name); a missing one is not an error.
    pub async fn delete_object(&self, object: &KubeObject) -> Result<(), ClusterError> {
        let resource = object.kind().api_resource();
        let api: Api<DynamicObject> = match object.namespace() {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        let params = DeleteParams::background();
        match self.retry(&format!("delete {}", object.describe()), || api.delete(object.name(), &params)).await {
            Ok(_) | Err(ClusterError::Api { code: 404, .. }) => Ok(()),
            Err(other) => Err(other),
        }
    }

    async fn apply_erased(
        &self,
        resource: &ApiResource,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        body: &Value,
    ) -> Result<Value, ClusterError> {
        let name = meta.name.clone().unwrap_or_default();
        let api: Api<DynamicObject> = match &meta.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
            None => Api::all_with(self.client.clone(), resource),
        };
        let params = PatchParams::apply(labels::MANAGER).force();
        let action = format!("apply {} {}/{}", resource.kind, meta.namespace.as_deref().unwrap_or(""), name);
        let patch = Patch::Apply(body);
        let applied = self.retry(&action, || api.patch(&name, &params, &patch)).await?;
        Ok(serde_json::to_value(applied).expect("objects serialise"))
    }

    /// Asks the API server once whether it is ready (`GET /readyz`): `Ok` when it answers
    /// `ok`; no retries, so callers can poll with their own schedule and report each failure.
    pub async fn ready(&self) -> Result<(), ClusterError> {
        let request = http::Request::get("/readyz").body(Vec::new()).expect("a static request is valid");
        match self.once("GET /readyz", self.client.request_text(request)).await? {
            text if text.trim() == "ok" => Ok(()),
            text => Err(ClusterError::Transport { action: "GET /readyz".into(), message: text }),
        }
    }

    /// The server this client talks to.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Marks node `name` unschedulable; `Ok(false)` when there is no such node.
    pub async fn cordon(&self, name: &str) -> Result<bool, ClusterError> {
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = serde_json::json!({"spec": {"unschedulable": true}});
        let merge = Patch::Merge(&patch);
        let params = patch_params();
        match self.retry(&format!("cordon node {name}"), || api.patch(name, &params, &merge)).await {
            Ok(_) => Ok(true),
            Err(ClusterError::Api { code: 404, .. }) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Pods scheduled on node `name`, in every namespace.
    pub async fn pods_on_node(&self, name: &str) -> Result<Vec<Pod>, ClusterError> {
        let api: Api<Pod> = Api::all(self.client.clone());
        let params = ListParams::default().fields(&format!("spec.nodeName={name}"));
        Ok(self.retry(&format!("list pods on node {name}"), || api.list(&params)).await?.items)
    }

    /// Evicts a pod through the Eviction API (honouring disruption budgets: a 429 is retried);
    /// a pod already gone is not an error.
    pub async fn evict(&self, namespace: &str, name: &str) -> Result<(), ClusterError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = kube::api::EvictParams::default();
        match self.retry(&format!("evict pod {namespace}/{name}"), || api.evict(name, &params)).await {
            Ok(_) | Err(ClusterError::Api { code: 404, .. }) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// Deletes node `name`; a missing one is not an error.
    pub async fn delete_node(&self, name: &str) -> Result<(), ClusterError> {
        let api: Api<Node> = Api::all(self.client.clone());
        let params = DeleteParams::default();
        match self.retry(&format!("delete node {name}"), || api.delete(name, &params)).await {
            Ok(_) | Err(ClusterError::Api { code: 404, .. }) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// Objects of type `K` in every namespace.
    pub async fn list_all_namespaces<K: Namespaced>(&self) -> Result<Vec<K>, ClusterError> {
        let api: Api<K> = Api::all(self.client.clone());
        let params = ListParams::default();
        Ok(self.retry(&format!("list {} in all namespaces", K::plural(&())), || api.list(&params)).await?.items)
    }

    /// Every object of the cluster-scoped type `K` (nodes, storage classes, ...).
    pub async fn list_cluster_scoped<K>(&self) -> Result<Vec<K>, ClusterError>
    where
        K: Resource<Scope = k8s_openapi::ClusterResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::all(self.client.clone());
        let action = format!("list {}", K::plural(&()));
        let params = ListParams::default();
        Ok(self.retry(&action, || api.list(&params)).await?.items)
    }

    /// Applies `objects` with bounded concurrency; the first failure is returned after the
    /// others finish.
    pub async fn apply_all(&self, objects: &[KubeObject]) -> Result<Vec<Value>, ClusterError> {
        // The futures are made first, so no closure is part of the stream's type and the whole
        // future stays `Send` (rustc cannot prove it for a closure over borrowed items).
        let applies: Vec<_> = objects.iter().map(|o| self.apply(o)).collect();
        futures::stream::iter(applies).buffered(self.options.concurrency.max(1)).try_collect().await
    }

    /// The namespace `name`, if it exists.
    pub async fn namespace(&self, name: &str) -> Result<Option<Namespace>, ClusterError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        self.retry(&format!("get namespace {name}"), || api.get_opt(name)).await
    }

    /// Creates `namespace`; `Ok(None)` when it already exists (someone else created it).
    pub async fn create_namespace(&self, namespace: &Namespace) -> Result<Option<Namespace>, ClusterError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let name = namespace.metadata.name.clone().unwrap_or_default();
        let params = post_params();
        match self.retry(&format!("create namespace {name}"), || api.create(&params, namespace)).await {
            Ok(created) => Ok(Some(created)),
            Err(ClusterError::Api { code: 409, .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Merge-patches the namespace's annotations (`None` removes one). With
    /// `resource_version`, the patch only applies if the namespace is unchanged since
    /// (409 Conflict otherwise).
    pub async fn annotate_namespace(
        &self,
        name: &str,
        annotations: &BTreeMap<String, Option<String>>,
        resource_version: Option<&str>,
    ) -> Result<Namespace, ClusterError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let mut metadata = serde_json::json!({"annotations": annotations});
        if let Some(rv) = resource_version {
            metadata["resourceVersion"] = Value::String(rv.to_string());
        }
        let patch = serde_json::json!({"metadata": metadata});
        let action = format!("update namespace {name}");
        let params = patch_params();
        let merge = Patch::Merge(&patch);
        if resource_version.is_some() {
            // A conditional patch is not retried: a conflict is the answer.
            return self.once(&action, api.patch(name, &params, &merge)).await;
        }
        self.retry(&action, || api.patch(name, &params, &merge)).await
    }

    /// Namespaces carrying `label_selector`.
    pub async fn namespaces(&self, label_selector: &str) -> Result<Vec<Namespace>, ClusterError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let params = ListParams::default().labels(label_selector);
        Ok(self.retry("list namespaces", || api.list(&params)).await?.items)
    }

    /// Objects of type `K` in `namespace` (all of them, or those matching `label_selector`).
    pub async fn list<K: Namespaced>(
        &self,
        namespace: &str,
        label_selector: Option<&str>,
    ) -> Result<Vec<K>, ClusterError> {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let mut params = ListParams::default();
        if let Some(selector) = label_selector {
            params = params.labels(selector);
        }
        let action = format!("list {} in {namespace}", K::kind(&()));
        Ok(self.retry(&action, || api.list(&params)).await?.items)
    }

    /// Runs `call`, a kube call of the caller's (for a kind this module has no helper for, such
    /// as the `Instance` resource), with the one retry policy: each attempt bounded by the
    /// request timeout, all of them by the retry budget and the deadline.
    pub async fn call<T, F, Fut>(&self, action: &str, call: F) -> Result<T, ClusterError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        self.retry(action, call).await
    }

    /// The object of type `K` named `name` in `namespace`, if any.
    pub async fn get<K: Namespaced>(&self, namespace: &str, name: &str) -> Result<Option<K>, ClusterError> {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        self.retry(&format!("get {} {namespace}/{name}", K::kind(&())), || api.get_opt(name)).await
    }

    /// Deletes the object of type `K`; a missing object is not an error.
    pub async fn delete<K: Namespaced>(&self, namespace: &str, name: &str) -> Result<(), ClusterError> {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let params = DeleteParams::background();
        match self.retry(&format!("delete {} {namespace}/{name}", K::kind(&())), || api.delete(name, &params)).await {
            Ok(_) | Err(ClusterError::Api { code: 404, .. }) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// Creates `object` in `namespace`; `Ok(None)` when the name is taken.
    pub async fn create<K: Namespaced>(&self, namespace: &str, object: &K) -> Result<Option<K>, ClusterError> {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let params = post_params();
        let action = format!("create {} {namespace}/{}", K::kind(&()), object.meta().name.clone().unwrap_or_default());
        match self.retry(&action, || api.create(&params, object)).await {
            Ok(created) => Ok(Some(created)),
            Err(ClusterError::Api { code: 409, .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Replaces `object` (which carries the resourceVersion it was read at); 409 when it
    /// changed since. Not retried: a conflict is the answer.
    pub async fn replace<K: Namespaced>(&self, namespace: &str, object: &K) -> Result<K, ClusterError> {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let name = object.meta().name.clone().unwrap_or_default();
        let action = format!("replace {} {namespace}/{name}", K::kind(&()));
        self.once(&action, api.replace(&name, &post_params(), object)).await
    }

    /// Merge-patches the object of type `K`.
    pub async fn merge_patch<K: Namespaced>(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<K, ClusterError> {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let params = patch_params();
        let merge = Patch::Merge(patch);
        self.retry(&format!("patch {} {namespace}/{name}", K::kind(&())), || api.patch(name, &params, &merge)).await
    }

    /// Deletes the namespace `name`; a missing one is not an error.
    pub async fn delete_namespace(&self, name: &str) -> Result<(), ClusterError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let params = DeleteParams::background();
        match self.retry(&format!("delete namespace {name}"), || api.delete(name, &params)).await {
            Ok(_) | Err(ClusterError::Api { code: 404, .. }) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// Readiness of every object of `kind` in `namespace`, each time one changes (current
    /// objects first), by kube's runtime watcher. Errors are retried with backoff; after
    /// [`ClientOptions::attempts`] failures in a row the stream ends with the error.
    pub fn readiness(&self, kind: Kind, namespace: &str) -> BoxStream<'static, Result<Readiness, ClusterError>> {
        match kind {
            Kind::Deployment => {
                self.watch::<Deployment>(namespace).map(|r| r.map(|o| readiness::deployment(&o))).boxed()
            }
            Kind::StatefulSet => {
                self.watch::<StatefulSet>(namespace).map(|r| r.map(|o| readiness::stateful_set(&o))).boxed()
            }
            Kind::DaemonSet => self.watch::<DaemonSet>(namespace).map(|r| r.map(|o| readiness::daemon_set(&o))).boxed(),
            Kind::Job => self.watch::<Job>(namespace).map(|r| r.map(|o| readiness::job(&o))).boxed(),
            other => futures::stream::once(async move {
                Err(ClusterError::Transport { action: format!("watch {other}"), message: "it has no readiness".into() })
            })
            .boxed(),
        }
    }

    /// Objects of type `K` in `namespace` as they change (current ones first).
    fn watch<K: Namespaced>(&self, namespace: &str) -> impl futures::Stream<Item = Result<K, ClusterError>> + Send {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let action = format!("watch {} in {namespace}", K::plural(&()));
        let attempts = self.options.attempts;
        let objects = watcher(api, watcher::Config::default().any_semantic()).applied_objects().boxed();
        futures::stream::unfold(Some((objects, 0u32)), move |state| {
            let action = action.clone();
            async move {
                let (mut objects, mut failures) = state?;
                loop {
                    match objects.next().await? {
                        Ok(object) => return Some((Ok(object), Some((objects, 0)))),
                        Err(error) => {
                            failures += 1;
                            if failures >= attempts {
                                let message = format!("failed {failures} times in a row: {error}");
                                return Some((Err(ClusterError::Transport { action, message }), None));
                            }
                            tracing::debug!(%action, failures, %error, "watch failed; retrying");
                            tokio::time::sleep(Duration::from_millis(50 << failures.min(6))).await;
                        }
                    }
                }
            }
        })
    }
}
