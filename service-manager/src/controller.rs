//! The converger: a kube-rs [`Controller`] that keeps every [`Instance`] as declared.
//!
//! It installs (or updates) the `instances.stratus.io` definition on start, then reconciles
//! each Instance whenever it changes or one of the objects of its instance does: those are
//! watched cluster-wide by the label `app.kubernetes.io/managed-by=hsm` and mapped to the
//! Instance named by their `app.kubernetes.io/instance` label. So a deleted Deployment or a
//! hand-scaled StatefulSet triggers a reconcile that applies the plan again.
//!
//! A reconcile is hsm's own `create-instance` ([`actions::create`]): the same plan, the same
//! server-side apply with field manager `hsm`, the same record in the namespace, the same
//! operation lock — run without waiting for readiness ([`create::Options::readiness`]), then
//! the workloads' readiness becomes the Instance's status (through the status subresource),
//! and the Instance is looked at again soon while it is not ready. What cannot be carried out
//! (an unknown service, a bad parameter, a missing Secret) is a `Failed` state with a
//! condition saying why, retried slowly; anything else (the API server failing) is retried
//! with a backoff that grows per Instance.
//!
//! A spec asking for another version than the one the instance runs, or for other parameter
//! values, is `hsm upgrade-instance`/`configure-instance` instead ([`actions::change`], decided
//! by [`upgrade`]): the catalog's `upgrade_from` rules and immutable parameters enforced, a
//! refusal a `Failed` state that leaves the instance as it runs. `status.availableUpgrades`
//! says where the catalog lets it go.
//!
//! Deletion goes through the finalizer [`FINALIZER`]: the instance's namespace is deleted
//! (with `keepVolumes`, what `delete-instance --keep-volumes` deletes), then the finalizer is
//! removed. A namespace hsm does not manage is never touched.
//!
//! Several replicas may run: only the one holding the Lease [`leader::LEASE_NAME`] reconciles
//! ([`leader`]); the others stand by and take over when it stops renewing or lets go. With
//! `--health-addr`, each serves `/healthz`, `/readyz` and `/metrics` ([`health`]).

pub mod converged;
pub mod health;
pub mod leader;
pub mod upgrade;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{CustomResourceExt, Resource, ResourceExt};
use sdl::catalog::Catalog;
use serde_json::json;

use crate::actions::{self, change, create};
use crate::cluster::{Cluster, ClusterError};
use crate::instance::record::{self, Record, State};
use crate::instance::InstanceError;
use crate::labels;
use crate::profile::ClusterProfile;
use crate::readiness::Readiness;
use crate::request::InstanceRequest;
use crate::resource::{
    self, ComponentStatus, Condition, Instance, InstanceState, InstanceStatus, ServiceLocation, FINALIZER,
};
use crate::wait::WaitError;

/// How the controller runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Instances reconciled at once (never the same one twice at once).
    pub workers: u16,
    /// How long one reconcile may take (applying; it does not wait for readiness, but it does
    /// wait for pre-flight jobs, which gate the workloads).
    pub timeout: Duration,
    /// How soon an Instance that is not ready yet is looked at again (a change of one of its
    /// objects triggers a reconcile sooner).
    pub not_ready_requeue: Duration,
    /// How often a ready Instance is reconciled when nothing changes (such a reconcile writes
    /// nothing unless something changed: [`converged`]).
    pub resync: Duration,
    /// How long an apply that left an instance ready is trusted: after that, a reconcile
    /// applies again even when no watch saw a change.
    pub reapply_every: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workers: 16,
            timeout: Duration::from_secs(300),
            not_ready_requeue: Duration::from_secs(10),
            resync: Duration::from_secs(600),
            reapply_every: Duration::from_secs(3600),
        }
    }
}

/// How this replica takes part among several.
#[derive(Debug, Clone)]
pub struct Replica {
    /// Namespace of the controller's Lease.
    pub lease_namespace: String,
    /// Where to serve `/healthz`, `/readyz` and `/metrics`, if anywhere.
    pub health_addr: Option<SocketAddr>,
}

impl Default for Replica {
    fn default() -> Self {
        Replica { lease_namespace: "kube-system".into(), health_addr: None }
    }
}

/// Why the controller stopped or a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// Installing the resource definition failed.
    #[error("cannot install the Instance resource definition: {0}")]
    Install(String),
    /// The health endpoints could not be served.
    #[error("cannot serve the health endpoints: {0}")]
    Health(String),
    /// The leader could not renew its Lease in time, or another replica took it: it stopped
    /// reconciling (a supervisor restarts it as a candidate).
    #[error("lost the controller Lease: {0}")]
    LostLease(String),
    /// An instance operation failed (and will be retried).
    #[error(transparent)]
    Instance(#[from] InstanceError),
    /// A call about the Instance itself failed (and will be retried).
    #[error("{action}: {error}")]
    Kube {
        /// What was being done.
        action: String,
        /// kube's error.
        error: String,
    },
}

fn kube_error(action: impl Into<String>) -> impl FnOnce(kube::Error) -> ControllerError {
    let action = action.into();
    move |error| ControllerError::Kube { action, error: error.to_string() }
}

/// What every reconcile shares.
struct Context {
    cluster: Cluster,
    catalog: Catalog,
    profile: ClusterProfile,
    options: Options,
    /// Failures in a row per Instance, for its backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// Kubernetes Events about Instances.
    recorder: Recorder,
    /// Counts for `/metrics`.
    metrics: Arc<health::Metrics>,
    /// The resourceVersions of the instances' objects, as the watches saw them.
    seen: Arc<converged::Seen>,
    /// The applies that left instances ready.
    memory: converged::Memory,
}

impl Context {
    fn instances(&self) -> Api<Instance> {
        Api::all(self.cluster.client())
    }
}

/// Installs or updates the `Instance` resource definition (server-side apply, field manager
/// `hsm`) and waits until the API server serves it.
pub async fn install_definition(cluster: &Cluster) -> Result<(), ControllerError> {
    let api: Api<CustomResourceDefinition> = Api::all(cluster.client());
    let crd = Instance::crd();
    let name = crd.metadata.name.clone().unwrap_or_default();
    let params = PatchParams::apply(labels::MANAGER).force();
    let mut last = String::new();
    for attempt in 0..40u32 {
        match api.patch(&name, &params, &Patch::Apply(&crd)).await {
            Ok(applied) => {
                if established(&applied) {
                    return Ok(());
                }
                last = "not yet established".into();
            }
            // A refusal of the definition itself will not change: say it at once.
            Err(kube::Error::Api(status)) if matches!(status.code, 400 | 403 | 422) => {
                return Err(ControllerError::Install(format!("{} {}", status.code, status.message)));
            }
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await;
    }
    Err(ControllerError::Install(format!("{name}: {last}")))
}

fn established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Established" && c.status == "True"))
}

/// The Instance an object of an instance belongs to: its `app.kubernetes.io/instance`
/// label (its namespace is the instance id too).
fn owner<K: Resource>(object: &K) -> Option<ObjectRef<Instance>> {
    let meta = object.meta();
    let id = meta.labels.as_ref().and_then(|l| l.get(labels::INSTANCE)).or(meta.namespace.as_ref())?;
    Some(ObjectRef::new(id))
}

/// The mapper of a watch of an instance's objects: notes each object in `seen`, then names
/// its Instance ([`owner`]).
fn noting<K: Resource<DynamicType = ()>>(seen: &Arc<converged::Seen>) -> impl Fn(K) -> Option<ObjectRef<Instance>> {
    let seen = seen.clone();
    move |object| {
        let instance = owner(&object)?;
        seen.observe(&instance.name, &object);
        Some(instance)
    }
}

/// A receiver that turns `true` on SIGTERM or Ctrl-C.
fn shutdown_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    tokio::spawn(async move {
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        tracing::info!("signalled to stop");
        let _ = tx.send(true);
    });
    rx
}

async fn stopped(mut signal: tokio::sync::watch::Receiver<bool>) {
    let _ = signal.wait_for(|stop| *stop).await;
}

/// Keeps the Lease while leading: the reason it was lost once it cannot be renewed within
/// [`leader::RENEW_DEADLINE`] or another replica holds it.
async fn keep_leading(elector: leader::Elector) -> String {
    let mut renewed = Instant::now();
    let mut wait = leader::RENEW_EVERY;
    loop {
        tokio::time::sleep(wait).await;
        let left = leader::RENEW_DEADLINE.saturating_sub(renewed.elapsed());
        match tokio::time::timeout(left, elector.try_lead()).await {
            Ok(Ok(leader::Outcome::Leading)) => {
                renewed = Instant::now();
                wait = leader::RENEW_EVERY;
                continue;
            }
            Ok(Ok(leader::Outcome::Standby(holder))) => return format!("{holder} holds it now"),
            Ok(Err(error)) => tracing::warn!(%error, "cannot renew the controller Lease"),
            Err(_) => tracing::warn!("renewing the controller Lease timed out"),
        }
        if renewed.elapsed() >= leader::RENEW_DEADLINE {
            return format!("not renewed for {:?}", leader::RENEW_DEADLINE);
        }
        wait = Duration::from_secs(1);
    }
}

/// Installs the definition, waits until this replica holds the controller Lease, then
/// reconciles Instances until SIGTERM or Ctrl-C (reconciles under way are finished first, then
/// the Lease is released). A leader that loses its Lease stops at once with
/// [`ControllerError::LostLease`].
pub async fn run(
    cluster: Cluster,
    catalog: Catalog,
    profile: ClusterProfile,
    options: Options,
    replica: Replica,
) -> Result<(), ControllerError> {
    run_until(cluster, catalog, profile, options, replica, shutdown_signal()).await
}

/// [`run`], stopping (as on SIGTERM) when `stop` turns `true` instead of on a signal: for a
/// converger embedded in another process, such as a test's.
pub async fn run_until(
    cluster: Cluster,
    catalog: Catalog,
    profile: ClusterProfile,
    options: Options,
    replica: Replica,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ControllerError> {
    let metrics = Arc::new(health::Metrics::default());
    if let Some(addr) = replica.health_addr {
        let bound =
            health::serve(addr, metrics.clone()).await.map_err(|e| ControllerError::Health(format!("{addr}: {e}")))?;
        tracing::info!(addr = %bound, "serving /healthz, /readyz and /metrics");
    }
    install_definition(&cluster).await?;
    metrics.set_ready(true);
    let me = crate::instance::lock::holder_identity();
    let elector = leader::Elector::new(cluster.client(), &replica.lease_namespace, &me);
    let mut standing_by: Option<String> = None;
    loop {
        match elector.try_lead().await {
            Ok(leader::Outcome::Leading) => break,
            Ok(leader::Outcome::Standby(holder)) => {
                if standing_by.as_ref() != Some(&holder) {
                    tracing::info!(identity = %me, %holder, "standing by: another replica leads");
                    standing_by = Some(holder);
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read the controller Lease"),
        }
        tokio::select! {
            _ = tokio::time::sleep(leader::RENEW_EVERY) => {}
            _ = stopped(stop.clone()) => {
                tracing::info!("stopped while standing by");
                return Ok(());
            }
        }
    }
    metrics.set_leader(true);
    tracing::info!(
        identity = %me,
        lease = %format!("{}/{}", replica.lease_namespace, leader::LEASE_NAME),
        workers = options.workers,
        "leading; reconciling"
    );
    let mut renewer = tokio::spawn(keep_leading(elector.clone()));

    let client = cluster.client();
    let reporter = Reporter { controller: "hsm".into(), instance: Some(me.clone()) };
    let recorder = Recorder::new(client.clone(), reporter);
    let seen = Arc::new(converged::Seen::default());
    let context = Arc::new(Context {
        cluster,
        catalog,
        profile,
        options,
        failures: Mutex::new(HashMap::new()),
        recorder,
        metrics: metrics.clone(),
        seen: seen.clone(),
        memory: converged::Memory::default(),
    });
    let ours = watcher::Config::default().labels(&format!("{}={}", labels::MANAGED_BY, labels::MANAGER));
    let controller = Controller::new(context.instances(), watcher::Config::default())
        .watches(Api::<Deployment>::all(client.clone()), ours.clone(), noting(&seen))
        .watches(Api::<StatefulSet>::all(client.clone()), ours.clone(), noting(&seen))
        .watches(Api::<Service>::all(client.clone()), ours.clone(), noting(&seen))
        .watches(Api::<Secret>::all(client.clone()), ours.clone(), noting(&seen))
        .watches(Api::<ConfigMap>::all(client.clone()), ours.clone(), noting(&seen))
        .watches(Api::<PersistentVolumeClaim>::all(client.clone()), ours.clone(), noting(&seen))
        .watches(Api::<Job>::all(client.clone()), ours.clone(), noting(&seen))
        .watches(Api::<NetworkPolicy>::all(client.clone()), ours.clone(), noting(&seen))
        .watches(Api::<Namespace>::all(client), ours, noting(&seen))
        .with_config(Config::default().concurrency(options.workers).debounce(Duration::from_millis(200)))
        .graceful_shutdown_on(stopped(stop))
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            match result {
                Ok((object, action)) => tracing::debug!(instance = %object.name, ?action, "reconciled"),
                // Queued before it was deleted: nothing to do.
                Err(kube::runtime::controller::Error::ObjectNotFound(object)) => {
                    tracing::debug!(instance = %object.name, "gone before its reconcile")
                }
                Err(error) => tracing::warn!(%error, "reconcile failed"),
            }
        });
    tokio::select! {
        _ = controller => {}
        lost = &mut renewer => {
            // Dropping the controller ends the reconciles under way: another replica may lead.
            metrics.set_leader(false);
            let why = lost.unwrap_or_else(|e| e.to_string());
            tracing::error!(%why, "lost the controller Lease; stopping");
            return Err(ControllerError::LostLease(why));
        }
    }
    renewer.abort();
    metrics.set_leader(false);
    match elector.release().await {
        Ok(()) => tracing::info!("stopped; released the controller Lease"),
        Err(error) => tracing::warn!(%error, "stopped; could not release the controller Lease (it expires)"),
    }
    Ok(())
}

/// What a reconcile found, for the status.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// The plan was applied; the workloads are as given.
    Applied {
        /// Readiness of each workload.
        components: Vec<Readiness>,
        /// Public ports.
        locations: Vec<ServiceLocation>,
        /// Product version running.
        product_version: String,
        /// SDL version in force.
        sdl_version: String,
    },
    /// A change of version or parameters was applied ([`actions::change`]); the workloads are
    /// as given.
    Upgraded {
        /// Version before, `<pv>/<sv>`.
        from: String,
        /// Version after (the same for a reconfiguration).
        to: String,
        /// Readiness of each workload.
        components: Vec<Readiness>,
        /// Public ports.
        locations: Vec<ServiceLocation>,
        /// Product version running.
        product_version: String,
        /// SDL version in force.
        sdl_version: String,
    },
    /// The spec cannot be carried out as it is.
    Refused {
        /// CamelCase reason.
        reason: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The Instance is being deleted.
    Deleting,
}

/// The status an Instance at `generation` gets for `observation`, given its `previous` one
/// (conditions keep their transition time while their status stays); `now` is RFC 3339.
pub fn status(
    previous: Option<&InstanceStatus>,
    generation: Option<i64>,
    observation: &Observation,
    now: &str,
) -> InstanceStatus {
    let was = previous.and_then(|s| s.state);
    let mut next = InstanceStatus {
        observed_generation: generation,
        product_version: previous.and_then(|s| s.product_version.clone()),
        sdl_version: previous.and_then(|s| s.sdl_version.clone()),
        available_upgrades: previous.map(|s| s.available_upgrades.clone()).unwrap_or_default(),
        ..InstanceStatus::default()
    };
    let (state, ready, progressing, degraded) = match observation {
        Observation::Applied { components, locations, product_version, sdl_version }
        | Observation::Upgraded { components, locations, product_version, sdl_version, .. } => {
            next.product_version = Some(product_version.clone());
            next.sdl_version = Some(sdl_version.clone());
            next.components = components
                .iter()
                .map(|c| ComponentStatus {
                    name: c.name.clone(),
                    kind: c.kind.to_string(),
                    ready: c.ready,
                    desired: c.desired,
                })
                .collect();
            next.service_locations = locations.clone();
            let waiting: Vec<String> = components.iter().filter(|c| !c.done).map(Readiness::describe).collect();
            if waiting.is_empty() {
                let message = format!("{} of {} workloads ready", components.len(), components.len());
                (
                    InstanceState::Running,
                    ("True", "AllWorkloadsReady", message),
                    ("False", "Converged", "the instance is as declared".to_string()),
                    ("False", "AllWorkloadsReady", String::new()),
                )
            } else {
                let message = format!("waiting for: {}", waiting.join("; "));
                // An upgrade (or reconfiguration) stays one until its workloads are ready.
                let changing = match observation {
                    Observation::Upgraded { from, to, .. } if from == to => {
                        Some(("Reconfiguring", format!("reconfigured at {to}; {message}")))
                    }
                    Observation::Upgraded { from, to, .. } => {
                        Some(("Upgrading", format!("upgrading from {from} to {to}; {message}")))
                    }
                    _ if was == Some(InstanceState::Upgrading) => {
                        let reason = previous
                            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Progressing"))
                            .map(|c| if c.reason == "Reconfiguring" { "Reconfiguring" } else { "Upgrading" })
                            .unwrap_or("Upgrading");
                        Some((reason, format!("changed to {product_version}/{sdl_version}; {message}")))
                    }
                    _ => None,
                };
                // Once it has run, a workload that is not ready is a degradation, not progress.
                if let Some((reason, progress)) = changing {
                    (
                        InstanceState::Upgrading,
                        ("False", "WorkloadsNotReady", message),
                        ("True", reason, progress),
                        ("False", reason, String::new()),
                    )
                } else if matches!(was, Some(InstanceState::Running | InstanceState::Degraded)) {
                    (
                        InstanceState::Degraded,
                        ("False", "WorkloadsNotReady", message.clone()),
                        ("True", "Repairing", "the plan was applied again".to_string()),
                        ("True", "WorkloadsNotReady", message),
                    )
                } else {
                    (
                        InstanceState::Creating,
                        ("False", "WorkloadsNotReady", message.clone()),
                        ("True", "Applied", message),
                        ("False", "Creating", String::new()),
                    )
                }
            }
        }
        Observation::Refused { reason, message } => (
            InstanceState::Failed,
            ("False", *reason, message.clone()),
            ("False", *reason, "nothing is applied until the spec is fixed".to_string()),
            ("True", *reason, message.clone()),
        ),
        Observation::Deleting => (
            InstanceState::Deleting,
            ("False", "Deleting", "the instance is being deleted".to_string()),
            ("True", "Deleting", "the instance is being deleted".to_string()),
            ("False", "Deleting", String::new()),
        ),
    };
    next.state = Some(state);
    for (type_, (status, reason, message)) in [("Ready", ready), ("Progressing", progressing), ("Degraded", degraded)] {
        let before = previous.and_then(|s| s.conditions.iter().find(|c| c.type_ == type_));
        let since = match before {
            Some(c) if c.status == status => c.last_transition_time.clone(),
            _ => now.to_string(),
        };
        next.conditions.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message,
            last_transition_time: since,
            observed_generation: generation,
        });
    }
    next
}

/// The Event that says an Instance entered the state of `next`, if it did.
pub fn transition(previous: Option<&InstanceStatus>, next: &InstanceStatus) -> Option<Event> {
    let state = next.state?;
    if previous.and_then(|s| s.state) == Some(state) {
        return None;
    }
    let ready = next.conditions.iter().find(|c| c.type_ == "Ready");
    let mut note = ready.map(|c| c.message.clone()).unwrap_or_default();
    if note.len() > 1000 {
        let mut end = 1000;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push('…');
    }
    let (type_, reason) = match state {
        InstanceState::Creating => (EventType::Normal, "Applied".to_string()),
        InstanceState::Running => (EventType::Normal, "Ready".to_string()),
        InstanceState::Degraded => (EventType::Warning, "Degraded".to_string()),
        InstanceState::Upgrading => (EventType::Normal, "Upgrading".to_string()),
        InstanceState::Failed => {
            (EventType::Warning, ready.map(|c| c.reason.clone()).unwrap_or_else(|| "Failed".into()))
        }
        InstanceState::Deleting => (EventType::Normal, "Deleting".to_string()),
    };
    Some(Event { type_, reason, note: Some(note), action: "Reconcile".into(), secondary: None })
}

/// Writes `next` through the status subresource unless it is what the Instance has, and
/// records an Event when the state changes (an Event that cannot be written is only logged).
/// The Instance's resourceVersion afterwards.
async fn write_status(ctx: &Context, instance: &Instance, next: InstanceStatus) -> Result<String, ControllerError> {
    let mut next = next;
    if let (Some(product_version), Some(sdl_version)) = (&next.product_version, &next.sdl_version) {
        next.available_upgrades =
            available_upgrades(&ctx.catalog, &instance.spec.service_id, product_version, sdl_version);
    }
    if instance.status.as_ref() == Some(&next) {
        return Ok(instance.resource_version().unwrap_or_default());
    }
    if let Some(event) = transition(instance.status.as_ref(), &next) {
        if let Err(error) = ctx.recorder.publish(&event, &instance.object_ref(&())).await {
            tracing::warn!(instance = %instance.name_any(), %error, "cannot record an event");
        }
    }
    let name = instance.name_any();
    let body = json!({ "apiVersion": Instance::api_version(&()), "kind": Instance::kind(&()), "status": next });
    let params = PatchParams::apply(labels::MANAGER).force();
    let written = ctx
        .instances()
        .patch_status(&name, &params, &Patch::Apply(&body))
        .await
        .map_err(kube_error(format!("write the status of Instance {name}")))?;
    Ok(written.resource_version().unwrap_or_default())
}

/// What the catalog lets an instance of `service_id` at `product_version`/`sdl_version`
/// upgrade to (nothing when the catalog lacks the service).
fn available_upgrades(catalog: &Catalog, service_id: &str, product_version: &str, sdl_version: &str) -> Vec<String> {
    catalog.service(service_id).map(|s| s.available_upgrades(product_version, sdl_version)).unwrap_or_default()
}

/// The status `instance` gets for `observation` now.
fn observe(instance: &Instance, observation: &Observation) -> InstanceStatus {
    status(instance.status.as_ref(), instance.metadata.generation, observation, &crate::instance::record::rfc3339_now())
}

/// One reconcile: [`converge`] (counted in the metrics), and the Instance's backoff reset when it succeeds (a failure
/// is logged by the controller's stream and counted by [`error_policy`]).
async fn reconcile(instance: Arc<Instance>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    let started = Instant::now();
    let result = converge(&instance, &ctx).await;
    ctx.metrics.reconciled(started.elapsed(), result.is_err());
    if result.is_ok() {
        ctx.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&instance.name_any());
    }
    result
}

/// Backoff per Instance: 1 s doubling to 5 minutes, reset by a success.
fn error_policy(instance: Arc<Instance>, _error: &ControllerError, ctx: Arc<Context>) -> Action {
    let mut failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
    let count = failures.entry(instance.name_any()).or_insert(0);
    *count = count.saturating_add(1);
    Action::requeue(backoff(*count))
}

/// The delay after `failures` failures in a row.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(9)).min(Duration::from_secs(300))
}

async fn converge(instance: &Instance, ctx: &Context) -> Result<Action, ControllerError> {
    let name = instance.name_any();
    let api = ctx.instances();
    let finalized = instance.finalizers().iter().any(|f| f == FINALIZER);
    if instance.metadata.deletion_timestamp.is_some() {
        if !finalized {
            return Ok(Action::await_change());
        }
        let version = write_status(ctx, instance, observe(instance, &Observation::Deleting)).await?;
        if !clean_up(ctx, &name, instance.spec.keep_volumes).await? {
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        // Conditional on the version last seen (that of the status just written): a finalizer
        // another controller added meanwhile is never dropped.
        let finalizers: Vec<&String> = instance.finalizers().iter().filter(|f| *f != FINALIZER).collect();
        let patch = json!({ "metadata": { "resourceVersion": version, "finalizers": finalizers } });
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(kube_error(format!("remove the finalizer of Instance {name}")))?;
        tracing::info!(instance = %name, keep_volumes = instance.spec.keep_volumes, "deleted");
        ctx.memory.forget(&name);
        ctx.seen.forget(&name);
        return Ok(Action::await_change());
    }
    if !finalized {
        let mut finalizers = instance.finalizers().to_vec();
        finalizers.push(FINALIZER.to_string());
        let patch = json!({ "metadata": {
            "resourceVersion": instance.resource_version(), "finalizers": finalizers } });
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(kube_error(format!("add the finalizer to Instance {name}")))?;
    }

    // Taken before anything is read or applied: a change of an object from here on is a change.
    let objects = ctx.seen.digest(&name);
    let refused = |reason: &'static str, message: String| Observation::Refused { reason, message };
    let values = match secret_values(ctx, instance).await? {
        Ok(values) => values,
        Err(message) => {
            ctx.memory.forget(&name);
            write_status(ctx, instance, observe(instance, &refused("SecretUnavailable", message))).await?;
            // Secrets of the operator's are not watched: look again soon.
            return Ok(Action::requeue(Duration::from_secs(15)));
        }
    };
    let inputs =
        converged::Inputs { generation: instance.metadata.generation, values: converged::digest(&values), objects };
    let last = ctx.memory.get(&name);
    let decision = converged::decide(
        last.as_ref(),
        last.map(|c| c.at.elapsed()).unwrap_or_default(),
        &inputs,
        ready_at_generation(instance),
        ctx.options.reapply_every,
        ctx.options.not_ready_requeue,
    );
    match decision {
        converged::Decision::Skip => {
            tracing::debug!(instance = %name, "unchanged since it was applied ready; nothing to write");
            ctx.metrics.skipped();
            return Ok(Action::requeue(ctx.options.resync));
        }
        converged::Decision::Readiness => {
            if let Some(action) = readiness_only(ctx, instance).await? {
                return Ok(action);
            }
        }
        converged::Decision::Apply => {}
    }
    ctx.memory.forget(&name);
    let request = match resource::request(&name, &instance.spec, &values) {
        Ok(request) => request,
        Err(error) => {
            write_status(ctx, instance, observe(instance, &refused("InvalidSpec", error.to_string()))).await?;
            return Ok(Action::requeue(ctx.options.resync));
        }
    };
    if let Some(action) = change_if_asked(ctx, instance, &request, inputs).await? {
        return Ok(action);
    }
    let options = create::Options { wait: false, timeout: ctx.options.timeout, readiness: true, grants: false };
    let progress = crate::progress::Quiet;
    match create::run(&ctx.cluster, &ctx.catalog, &request, &ctx.profile, options, &progress).await {
        Ok(outcome) => {
            let observation = Observation::Applied {
                locations: service_locations(&outcome.locations),
                components: outcome.components,
                product_version: outcome.product_version,
                sdl_version: outcome.sdl_version,
            };
            let next = observe(instance, &observation);
            let ready = next.state == Some(InstanceState::Running);
            if let Some(state) = next.state.filter(|s| Some(*s) != instance.status.as_ref().and_then(|s| s.state)) {
                tracing::info!(instance = %name, state = ?state, "state");
            }
            write_status(ctx, instance, next).await?;
            ctx.memory.remember(&name, inputs, ready);
            Ok(Action::requeue(if ready { ctx.options.resync } else { ctx.options.not_ready_requeue }))
        }
        Err(InstanceError::Busy { .. }) => Ok(Action::requeue(Duration::from_secs(2))),
        Err(error) => match refusal(&error) {
            Some(reason) => {
                tracing::info!(instance = %name, %error, "refused");
                write_status(ctx, instance, observe(instance, &refused(reason, error.to_string()))).await?;
                Ok(Action::requeue(ctx.options.resync))
            }
            None => Err(error.into()),
        },
    }
}

/// An upgrade or reconfiguration, when the spec asks for another version than the instance
/// runs or for other parameter values ([`upgrade`]): what `hsm upgrade-instance` and
/// `configure-instance` do ([`actions::change`]), without waiting. `None` when the spec asks
/// for no change (or there is no instance yet): the reconcile is then `create-instance`'s.
async fn change_if_asked(
    ctx: &Context,
    instance: &Instance,
    request: &InstanceRequest,
    inputs: converged::Inputs,
) -> Result<Option<Action>, ControllerError> {
    let name = instance.name_any();
    let Some(namespace) = ctx.cluster.namespace(&name).await.map_err(InstanceError::from)? else { return Ok(None) };
    let Some(record) = Record::from_namespace(&namespace) else { return Ok(None) };
    if record.terminating || record.state == State::Deleted || record.service_id != instance.spec.service_id {
        return Ok(None);
    }
    let target = upgrade::target_version(&record.product_version, &record.sdl_version, &instance.spec);
    if target.is_none() {
        let mut declared = instance.spec.parameters.clone();
        declared.extend(request.sets.iter().cloned());
        if declared.is_empty() {
            return Ok(None);
        }
        let stored = record::stored_values(&ctx.cluster, &record).await?;
        if upgrade::changed_parameters(&declared, &stored.previous).is_empty() {
            return Ok(None);
        }
    }
    let change = change::Change {
        target,
        sets: request.sets.clone(),
        idl: Some(request.idl.clone()),
        wait: false,
        readiness: true,
        timeout: ctx.options.timeout,
    };
    let running = format!("{}/{}", record.product_version, record.sdl_version);
    let progress = crate::progress::Quiet;
    match change::run(&ctx.cluster, &ctx.catalog, &name, &change, &ctx.profile, &progress).await {
        Ok(outcome) => {
            tracing::info!(instance = %name, from = %outcome.from, to = %outcome.to, removed = ?outcome.removed, "changed");
            let observation = Observation::Upgraded {
                from: outcome.from,
                to: outcome.to,
                locations: service_locations(&outcome.locations),
                components: outcome.components,
                product_version: outcome.product_version,
                sdl_version: outcome.sdl_version,
            };
            let next = observe(instance, &observation);
            let ready = next.state == Some(InstanceState::Running);
            write_status(ctx, instance, next).await?;
            ctx.memory.remember(&name, inputs, ready);
            Ok(Some(Action::requeue(if ready { ctx.options.resync } else { ctx.options.not_ready_requeue })))
        }
        Err(InstanceError::Busy { .. }) => Ok(Some(Action::requeue(Duration::from_secs(2)))),
        Err(error) => match refusal(&error) {
            Some(reason) => {
                tracing::info!(instance = %name, %error, "change refused");
                let available =
                    available_upgrades(&ctx.catalog, &record.service_id, &record.product_version, &record.sdl_version);
                let message = upgrade::refusal_message(reason, &error.to_string(), &running, &available);
                let observation = Observation::Refused { reason, message };
                write_status(ctx, instance, observe(instance, &observation)).await?;
                // Looked at again when the spec changes, else at the resync period.
                Ok(Some(Action::requeue(ctx.options.resync)))
            }
            None => Err(error.into()),
        },
    }
}

/// Between applies of an instance that is not ready yet: its workloads' readiness, read now,
/// becomes its status without applying anything; the Instance is looked at again after
/// [`Options::not_ready_requeue`] (when it is applied again). `None` when every workload is
/// ready, or the status lacks what it would keep: the apply that follows records it.
async fn readiness_only(ctx: &Context, instance: &Instance) -> Result<Option<Action>, ControllerError> {
    let name = instance.name_any();
    let Some(previous) = instance.status.as_ref() else { return Ok(None) };
    let (Some(product_version), Some(sdl_version)) = (previous.product_version.clone(), previous.sdl_version.clone())
    else {
        return Ok(None);
    };
    let ours = format!("{}={}", labels::MANAGED_BY, labels::MANAGER);
    let deployments = ctx.cluster.list::<Deployment>(&name, Some(&ours)).await.map_err(InstanceError::from)?;
    let stateful_sets = ctx.cluster.list::<StatefulSet>(&name, Some(&ours)).await.map_err(InstanceError::from)?;
    let mut components: Vec<Readiness> = deployments.iter().map(crate::readiness::deployment).collect();
    components.extend(stateful_sets.iter().map(crate::readiness::stateful_set));
    if components.is_empty() || components.iter().all(|c| c.done) {
        return Ok(None);
    }
    components.sort_by(|a, b| a.name.cmp(&b.name).then(a.kind.cmp(&b.kind)));
    let observation = Observation::Applied {
        components,
        locations: previous.service_locations.clone(),
        product_version,
        sdl_version,
    };
    write_status(ctx, instance, observe(instance, &observation)).await?;
    Ok(Some(Action::requeue(ctx.options.not_ready_requeue)))
}

/// Whether the Instance's status says it is running, for its current spec.
fn ready_at_generation(instance: &Instance) -> bool {
    instance.status.as_ref().is_some_and(|s| {
        s.state == Some(InstanceState::Running) && s.observed_generation == instance.metadata.generation
    })
}

/// The status's form of an instance's public ports.
fn service_locations(locations: &[crate::actions::get::Location]) -> Vec<ServiceLocation> {
    locations
        .iter()
        .map(|l| ServiceLocation {
            service: l.service_name.clone(),
            port_name: l.port_name.clone(),
            address: l.public_location.clone(),
            port: l.public_port,
        })
        .collect()
}

/// The reason for the `Failed` state when `error` will not go away by retrying; `None` for
/// the rest.
fn refusal(error: &InstanceError) -> Option<&'static str> {
    if let Some(reason) = upgrade::refusal_reason(error) {
        return Some(reason);
    }
    match error {
        InstanceError::Hsm(_) => Some("InvalidSpec"),
        InstanceError::NotOurs(_) => Some("NamespaceTaken"),
        InstanceError::NeedsAdmin { .. } => Some("NeedsClusterAdmin"),
        InstanceError::Exists { .. } => Some("VersionChangeNotSupported"),
        InstanceError::Corrupt { .. } => Some("RecordUnreadable"),
        InstanceError::Wait(WaitError::JobFailed { .. }) => Some("JobFailed"),
        _ => None,
    }
}

/// The values of the spec's secret parameters, read from their Secrets; `Err(message)` names
/// the first one that cannot be read (never its value).
async fn secret_values(
    ctx: &Context,
    instance: &Instance,
) -> Result<Result<BTreeMap<String, String>, String>, ControllerError> {
    let mut values = BTreeMap::new();
    for (parameter, reference) in &instance.spec.secret_parameters {
        let place = format!("Secret {}/{} key {}", reference.namespace, reference.name, reference.key);
        let secret = match ctx.cluster.get::<Secret>(&reference.namespace, &reference.name).await {
            Ok(secret) => secret,
            Err(ClusterError::Api { code: 403, .. }) => {
                return Ok(Err(format!("secret parameter {parameter}: {place} cannot be read (forbidden)")));
            }
            Err(other) => return Err(InstanceError::from(other).into()),
        };
        let Some(secret) = secret else {
            return Ok(Err(format!("secret parameter {parameter}: {place} does not exist")));
        };
        let bytes = secret.data.as_ref().and_then(|d| d.get(&reference.key)).map(|b| b.0.clone());
        let text = match bytes {
            Some(bytes) => String::from_utf8(bytes).map_err(|_| "is not UTF-8 text"),
            None => Err("does not exist"),
        };
        match text {
            Ok(text) => values.insert(parameter.clone(), text),
            Err(why) => return Ok(Err(format!("secret parameter {parameter}: {place} {why}"))),
        };
    }
    Ok(Ok(values))
}

/// Deletes instance `id` (keeping its volumes when asked); `true` once done. A namespace hsm
/// does not manage is left alone.
async fn clean_up(ctx: &Context, id: &str, keep_volumes: bool) -> Result<bool, ControllerError> {
    let Some(namespace) = ctx.cluster.namespace(id).await.map_err(InstanceError::from)? else { return Ok(true) };
    let Some(record) = Record::from_namespace(&namespace) else { return Ok(true) };
    if record.terminating {
        return Ok(false);
    }
    if keep_volumes && record.state == State::Deleted {
        return Ok(true);
    }
    // The deletion waits a little for the namespace to go (a worker is busy meanwhile); the
    // rest is requeued.
    let options = actions::delete::Options { keep_volumes, timeout: Duration::from_secs(3) };
    match actions::delete::run(&ctx.cluster, id, options, |_| true).await {
        Ok(_) => Ok(true),
        Err(InstanceError::Wait(WaitError::Timeout { .. })) | Err(InstanceError::Busy { .. }) => Ok(false),
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::Kind;

    fn workload(name: &str, ready: i32, desired: i32) -> Readiness {
        Readiness { ready, desired, done: ready >= desired, ..Readiness::unknown(Kind::StatefulSet, "cache", name) }
    }

    fn applied(components: Vec<Readiness>) -> Observation {
        Observation::Applied {
            components,
            locations: Vec::new(),
            product_version: "3.0.7".into(),
            sdl_version: "1.0.0".into(),
        }
    }

    fn condition<'a>(status: &'a InstanceStatus, type_: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn an_instance_is_creating_then_running_then_degraded() {
        let creating = status(None, Some(1), &applied(vec![workload("redis", 0, 1)]), "t1");
        assert_eq!(creating.state, Some(InstanceState::Creating));
        assert_eq!(condition(&creating, "Ready").status, "False");
        assert!(condition(&creating, "Ready").message.contains("StatefulSet redis: 0/1 ready"));
        assert_eq!(condition(&creating, "Progressing").status, "True");

        let running = status(Some(&creating), Some(1), &applied(vec![workload("redis", 1, 1)]), "t2");
        assert_eq!(running.state, Some(InstanceState::Running));
        assert_eq!(running.product_version.as_deref(), Some("3.0.7"));
        assert_eq!(condition(&running, "Ready").status, "True");
        assert_eq!(condition(&running, "Ready").last_transition_time, "t2");
        // Degraded stayed False: its transition time is the first one.
        assert_eq!(condition(&running, "Degraded").last_transition_time, "t1");

        let degraded = status(Some(&running), Some(1), &applied(vec![workload("redis", 0, 1)]), "t3");
        assert_eq!(degraded.state, Some(InstanceState::Degraded));
        assert_eq!(condition(&degraded, "Degraded").status, "True");

        // Nothing changed: the same status, so nothing is written.
        let again = status(Some(&running), Some(1), &applied(vec![workload("redis", 1, 1)]), "t4");
        assert_eq!(again, running);
    }

    #[test]
    fn an_upgrade_is_upgrading_until_its_workloads_are_ready_then_running() {
        let running = status(None, Some(1), &applied(vec![workload("redis", 1, 1)]), "t1");
        let upgraded = |ready| Observation::Upgraded {
            from: "3.0.7/1.0.0".into(),
            to: "3.2/1.0.0".into(),
            components: vec![workload("redis", ready, 1)],
            locations: Vec::new(),
            product_version: "3.2".into(),
            sdl_version: "1.0.0".into(),
        };
        let upgrading = status(Some(&running), Some(2), &upgraded(0), "t2");
        assert_eq!(upgrading.state, Some(InstanceState::Upgrading));
        assert_eq!(upgrading.product_version.as_deref(), Some("3.2"));
        let progressing = condition(&upgrading, "Progressing");
        assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("True", "Upgrading"));
        assert!(progressing.message.starts_with("upgrading from 3.0.7/1.0.0 to 3.2/1.0.0; waiting for: "));
        // A later reconcile (create-instance's) while the workloads are still not ready.
        let still = status(Some(&upgrading), Some(2), &applied(vec![workload("redis", 0, 1)]), "t3");
        assert_eq!(still.state, Some(InstanceState::Upgrading));
        assert_eq!(condition(&still, "Progressing").reason, "Upgrading");
        let done = status(Some(&still), Some(2), &applied(vec![workload("redis", 1, 1)]), "t4");
        assert_eq!(done.state, Some(InstanceState::Running));
        // All ready at once: running straight away.
        assert_eq!(status(Some(&running), Some(2), &upgraded(1), "t2").state, Some(InstanceState::Running));
        let event = transition(Some(&running), &upgrading).unwrap();
        assert_eq!((event.type_, event.reason.as_str()), (EventType::Normal, "Upgrading"));
    }

    #[test]
    fn a_refused_spec_is_failed_with_the_reason() {
        let observation = Observation::Refused { reason: "InvalidSpec", message: "unknown service".into() };
        let failed = status(None, Some(2), &observation, "t1");
        assert_eq!(failed.state, Some(InstanceState::Failed));
        assert_eq!(failed.observed_generation, Some(2));
        assert_eq!(condition(&failed, "Ready").reason, "InvalidSpec");
        assert_eq!(condition(&failed, "Degraded").message, "unknown service");
    }

    #[test]
    fn a_change_of_state_is_an_event() {
        let creating = status(None, Some(1), &applied(vec![workload("redis", 0, 1)]), "t1");
        let event = transition(None, &creating).unwrap();
        assert_eq!((event.type_, event.reason.as_str()), (EventType::Normal, "Applied"));
        let running = status(Some(&creating), Some(1), &applied(vec![workload("redis", 1, 1)]), "t2");
        assert_eq!(transition(Some(&creating), &running).unwrap().reason, "Ready");
        assert!(transition(Some(&running), &running).is_none());
        let degraded = status(Some(&running), Some(1), &applied(vec![workload("redis", 0, 1)]), "t3");
        let event = transition(Some(&running), &degraded).unwrap();
        assert_eq!((event.type_, event.reason.as_str()), (EventType::Warning, "Degraded"));
        assert!(event.note.unwrap().contains("StatefulSet redis: 0/1 ready"));
    }

    #[test]
    fn objects_of_an_instance_map_to_its_instance() {
        let labelled = Deployment {
            metadata: kube::api::ObjectMeta {
                namespace: Some("cache".into()),
                labels: Some(BTreeMap::from([(labels::INSTANCE.to_string(), "cache".to_string())])),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(owner(&labelled), Some(ObjectRef::new("cache")));
        let unlabelled = Secret {
            metadata: kube::api::ObjectMeta { namespace: Some("db".into()), ..Default::default() },
            ..Default::default()
        };
        assert_eq!(owner(&unlabelled), Some(ObjectRef::new("db")));
    }

    #[test]
    fn backoff_grows_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(30), Duration::from_secs(300));
    }
}
