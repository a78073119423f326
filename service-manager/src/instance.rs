//! Instances on a cluster: the record each instance keeps in its own namespace, the operation
//! lock that keeps two `hsm` processes from changing one instance at once (and that a killed
//! process never wedges), and the create, list, get and delete flows.
//!
//! An operation on an existing instance holds a Lease (`hsm-operation`) in its namespace; the
//! first creation holds the namespace's operation annotation, set atomically as it is created.
//!
//! The record is the namespace itself: labels (service id, versions, managed-by) from the plan
//! and annotations for state, timestamps, the IDL (secret values removed) and the running
//! operation. Secret values and generated objects live in the plan's Secret, non-secret values
//! in its ConfigMap; together they are the stored values a re-run or upgrade resolves with.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sdl::catalog::Catalog;
use sdl::generate::GeneratedObject;
use sdl::resolve::Stored;
use sdl::Idl;
use serde::Serialize;

use crate::cluster::{Cluster, ClusterError};
use crate::error::HsmError;
use crate::labels;
use crate::plan::{KubeObject, Phase, Plan, CONFIG_MAP_NAME, GENERATED_KEY, SECRET_NAME};
use crate::profile::ClusterProfile;
use crate::progress::Progress;
use crate::request::{prepare, InstanceRequest};

/// Annotation: the instance's state.
pub const STATE: &str = "hsm.stratus.io/state";
/// Annotation: `<holder> <unix seconds>` while an operation runs.
pub const OPERATION: &str = "hsm.stratus.io/operation";
/// Annotation: the IDL the instance was created or last changed with (no secret values).
pub const IDL: &str = "hsm.stratus.io/idl";
/// Annotation: creation time (RFC 3339).
pub const CREATED: &str = "hsm.stratus.io/created";
/// Annotation: time of the last change (RFC 3339).
pub const UPDATED: &str = "hsm.stratus.io/updated";
/// Annotation: why the last operation failed, or what was kept.
pub const MESSAGE: &str = "hsm.stratus.io/message";
/// Annotation: a random id of the operation that created the namespace, so that the process
/// whose creation reply was lost recognises the namespace as its own.
pub const OPERATION_ID: &str = "hsm.stratus.io/operation-id";
/// How long after its deadline an operation may still take to record that it failed.
pub const RECORD_GRACE: Duration = Duration::from_secs(10);
/// An operation not renewed for this long is abandoned and may be taken over.
pub const LOCK_TTL_SECONDS: u64 = 60;

/// Instance states.
pub mod state {
    /// Being created (or re-created after an interruption).
    pub const CREATING: &str = "creating";
    /// Created; every workload was ready at the end of the last operation.
    pub const RUNNING: &str = "running";
    /// The last operation failed (see the message).
    pub const FAILED: &str = "failed";
    /// Being upgraded or reconfigured.
    pub const UPGRADING: &str = "upgrading";
    /// Being deleted.
    pub const DELETING: &str = "deleting";
    /// Deleted except for its volume claims (`--keep-volumes`).
    pub const DELETED: &str = "deleted";
}

/// A failed instance operation.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// Planning or input problems.
    #[error(transparent)]
    Hsm(#[from] HsmError),
    /// The cluster refused or could not be reached.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The namespace exists and hsm does not manage it.
    #[error("namespace \"{0}\" exists and is not managed by hsm; choose another instance id")]
    NotOurs(String),
    /// No such instance.
    #[error("instance \"{0}\" not found")]
    NotFound(String),
    /// The instance exists with another service or version.
    #[error("instance \"{id}\" already exists as {existing}{hint}")]
    Exists {
        /// Instance id.
        id: String,
        /// What it is.
        existing: String,
        /// What to do instead.
        hint: &'static str,
    },
    /// Another hsm is changing the instance.
    #[error("instance \"{id}\" exists and is being changed by another hsm ({holder}, {age}s ago); try again when it finishes")]
    Busy {
        /// Instance id.
        id: String,
        /// Who holds the operation.
        holder: String,
        /// Seconds since it was last renewed.
        age: u64,
    },
    /// The namespace is being deleted.
    #[error("instance \"{0}\" is being deleted")]
    Terminating(String),
    /// Waiting ran out of time.
    #[error("timed out after {seconds}s waiting for {what}:\n{details}")]
    Timeout {
        /// The timeout.
        seconds: u64,
        /// Which step.
        what: String,
        /// Each object not ready, with its latest condition.
        details: String,
    },
    /// A pre- or post-flight job failed.
    #[error("job \"{name}\" failed: {message}")]
    JobFailed {
        /// The job.
        name: String,
        /// Its failure condition.
        message: String,
    },
    /// The operator said no.
    #[error("cancelled: nothing was deleted")]
    Cancelled,
    /// Something the instance keeps on the cluster cannot be read: going on would lose it.
    #[error("instance \"{id}\": {what} cannot be read ({error}); refusing to go on, because it holds what the instance was created with (generated passwords, its CA key); restore it, or delete the instance")]
    Corrupt {
        /// Instance id.
        id: String,
        /// Which record, e.g. `the Secret's hsm-generated.json`.
        what: String,
        /// Why it cannot be read.
        error: String,
    },
}

/// The running operation recorded on an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Operation {
    /// `host/pid` of the hsm process.
    pub holder: String,
    /// Unix seconds of the last renewal.
    pub since: u64,
}

/// What an instance's namespace says about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// Instance id (the namespace).
    pub instance_id: String,
    /// Service id.
    pub service_id: String,
    /// Product version.
    pub product_version: String,
    /// SDL version.
    pub sdl_version: String,
    /// State.
    pub state: String,
    /// Created (RFC 3339).
    pub created: String,
    /// Last changed (RFC 3339).
    pub updated: Option<String>,
    /// Failure or note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The running operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
    /// The IDL (no secret values).
    #[serde(skip)]
    pub idl: Idl,
    /// Why the recorded IDL could not be read, when it could not.
    #[serde(skip)]
    pub idl_error: Option<String>,
    /// The id of the operation that created the namespace.
    #[serde(skip)]
    pub operation_id: Option<String>,
    /// The namespace's resourceVersion (for conditional updates).
    #[serde(skip)]
    pub resource_version: String,
    /// Whether the namespace is being deleted.
    #[serde(skip)]
    pub terminating: bool,
}

impl Record {
    /// The record in `namespace`, or `None` when hsm does not manage it.
    pub fn from_namespace(namespace: &Namespace) -> Option<Record> {
        let meta = &namespace.metadata;
        let labels = meta.labels.clone().unwrap_or_default();
        if labels.get(labels::MANAGED_BY).map(String::as_str) != Some(labels::MANAGER) {
            return None;
        }
        let annotations = meta.annotations.clone().unwrap_or_default();
        let operation = annotations.get(OPERATION).and_then(|text| {
            let (holder, since) = text.rsplit_once(' ')?;
            Some(Operation { holder: holder.to_string(), since: since.parse().ok()? })
        });
        Some(Record {
            instance_id: meta.name.clone().unwrap_or_default(),
            service_id: labels.get(labels::SERVICE_ID).cloned().unwrap_or_default(),
            product_version: labels.get(labels::VERSION).cloned().unwrap_or_default(),
            sdl_version: labels.get(labels::SDL_VERSION).cloned().unwrap_or_default(),
            state: annotations.get(STATE).cloned().unwrap_or_else(|| "unknown".into()),
            created: annotations
                .get(CREATED)
                .cloned()
                .or_else(|| meta.creation_timestamp.as_ref().map(|t| t.0.to_string()))
                .unwrap_or_default(),
            updated: annotations.get(UPDATED).cloned(),
            message: annotations.get(MESSAGE).cloned(),
            operation,
            idl: annotations.get(IDL).and_then(|text| serde_json::from_str(text).ok()).unwrap_or_default(),
            idl_error: annotations
                .get(IDL)
                .and_then(|text| serde_json::from_str::<Idl>(text).err())
                .map(|e| e.to_string()),
            operation_id: annotations.get(OPERATION_ID).cloned(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            terminating: meta.deletion_timestamp.is_some()
                || namespace.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating"),
        })
    }
}

/// Who may run an operation on an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lock {
    /// Nobody holds it.
    Free,
    /// This process holds it.
    Mine,
    /// The holder died or stopped renewing: it may be taken over.
    Abandoned(String),
    /// Another live hsm holds it.
    HeldBy(String, u64),
}

/// Decides whether `me` may take the operation lock at `now` (unix seconds). `alive(pid)`
/// tells whether a process of this host is alive.
pub fn lock_state(operation: Option<&Operation>, me: &str, now: u64, alive: impl Fn(u32) -> bool) -> Lock {
    let Some(op) = operation else { return Lock::Free };
    if op.holder == me {
        return Lock::Mine;
    }
    let age = now.saturating_sub(op.since);
    let (my_host, _) = me.rsplit_once('/').unwrap_or((me, ""));
    let dead_here = op
        .holder
        .rsplit_once('/')
        .is_some_and(|(host, pid)| host == my_host && pid.parse().map(|p| !alive(p)).unwrap_or(false));
    if dead_here || age > LOCK_TTL_SECONDS {
        Lock::Abandoned(op.holder.clone())
    } else {
        Lock::HeldBy(op.holder.clone(), age)
    }
}

/// `host/pid` of this process.
pub fn holder_identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}/{}", std::process::id())
}

fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn rfc3339_now() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The IDL to record: every non-secret value given, with the instance id.
fn recorded_idl(idl: &Idl, sdl: &sdl::Sdl) -> String {
    let mut kept = idl.clone();
    kept.parameters.retain(|p| sdl.parameter(&p.name).is_some_and(|d| !d.secret));
    serde_json::to_string(&kept).expect("IDLs serialise")
}

/// What a re-run or upgrade resolves with: the recorded IDL's values, the Secret's values and
/// the generated objects.
pub async fn stored_values(cluster: &Cluster, record: &Record) -> Result<Stored, InstanceError> {
    let corrupt = |what: &str, error: String| InstanceError::Corrupt {
        id: record.instance_id.clone(),
        what: what.to_string(),
        error,
    };
    if let Some(error) = &record.idl_error {
        return Err(corrupt(&format!("the namespace's {IDL} annotation"), error.clone()));
    }
    let mut stored = Stored::default();
    for p in &record.idl.parameters {
        stored.parameters.insert(p.name.clone(), p.value.clone());
    }
    if let Some(config) = cluster.get::<ConfigMap>(&record.instance_id, CONFIG_MAP_NAME).await? {
        stored.previous.extend(config.data.unwrap_or_default());
    }
    if let Some(secret) = cluster.get::<Secret>(&record.instance_id, SECRET_NAME).await? {
        for (key, value) in secret.data.unwrap_or_default() {
            if key == GENERATED_KEY {
                stored.generated = serde_json::from_slice::<BTreeMap<String, GeneratedObject>>(&value.0)
                    .map_err(|e| corrupt(&format!("Secret {SECRET_NAME}'s {GENERATED_KEY}"), e.to_string()))?;
            } else {
                let text = String::from_utf8_lossy(&value.0).into_owned();
                stored.previous.insert(key.clone(), text.clone());
                stored.parameters.insert(key, text);
            }
        }
    }
    Ok(stored)
}

/// Options of `create-instance`.
#[derive(Debug, Clone, Copy)]
pub struct CreateOptions {
    /// Wait until workloads are ready and jobs complete.
    pub wait: bool,
    /// How long to wait in all.
    pub timeout: Duration,
}

/// What a create did.
#[derive(Debug, Clone)]
pub struct CreateReport {
    /// The instance id.
    pub instance_id: String,
    /// Objects applied.
    pub objects: usize,
    /// Whether the instance already existed (a re-run).
    pub existed: bool,
    /// The final state.
    pub state: String,
}

/// Name of the Lease that marks an operation on an existing instance.
pub const LEASE_NAME: &str = "hsm-operation";

fn lease(namespace: &str, me: &str) -> Lease {
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    Lease {
        metadata: ObjectMeta {
            name: Some(LEASE_NAME.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([(labels::MANAGED_BY.to_string(), labels::MANAGER.to_string())])),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(me.into()),
            lease_duration_seconds: Some(LOCK_TTL_SECONDS as i32),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..LeaseSpec::default()
        }),
    }
}

/// Takes the operation on an existing instance: its Lease, unless another live hsm holds it
/// (or is still creating the instance for the first time).
async fn take_lease(cluster: &Cluster, record: &Record, me: &str) -> Result<(), InstanceError> {
    let id = &record.instance_id;
    let busy = |holder: String, age: u64| InstanceError::Busy { id: id.clone(), holder, age };
    if let Lock::HeldBy(holder, age) = lock_state(record.operation.as_ref(), me, unix_now(), process_alive) {
        return Err(busy(holder, age));
    }
    let wanted = lease(id, me);
    if cluster.create(id, &wanted).await?.is_some() {
        return Ok(());
    }
    let Some(current) = cluster.get::<Lease>(id, LEASE_NAME).await? else {
        // Released in between: one more try.
        return match cluster.create(id, &wanted).await? {
            Some(_) => Ok(()),
            None => Err(busy("unknown".into(), 0)),
        };
    };
    let spec = current.spec.clone().unwrap_or_default();
    let held = Operation {
        holder: spec.holder_identity.clone().unwrap_or_default(),
        since: spec.renew_time.as_ref().map(|t| t.0.as_second().max(0) as u64).unwrap_or(0),
    };
    match lock_state(Some(&held), me, unix_now(), process_alive) {
        Lock::HeldBy(holder, age) => Err(busy(holder, age)),
        Lock::Abandoned(holder) => {
            tracing::info!(instance = %id, %holder, "taking over an abandoned operation");
            let mut taken = current;
            taken.spec = wanted.spec;
            match cluster.replace(id, &taken).await {
                Ok(_) => Ok(()),
                Err(ClusterError::Api { code: 409, .. }) => Err(busy("unknown".into(), 0)),
                Err(other) => Err(other.into()),
            }
        }
        Lock::Free | Lock::Mine => Ok(()),
    }
}

/// Keeps an operation alive while it runs: renews the Lease (or, during a first creation,
/// the namespace's operation annotation) every 20 seconds.
fn spawn_renewer(cluster: &Cluster, namespace: &str, me: &str, with_lease: bool) -> tokio::task::JoinHandle<()> {
    let (cluster, namespace, me) = (cluster.clone(), namespace.to_string(), me.to_string());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(20)).await;
            let renewed = if with_lease {
                let now =
                    serde_json::to_value(MicroTime(k8s_openapi::jiff::Timestamp::now())).expect("times serialise");
                let patch = serde_json::json!({"spec": {"renewTime": now}});
                cluster.merge_patch::<Lease>(&namespace, LEASE_NAME, &patch).await.map(|_| ())
            } else {
                let annotations = BTreeMap::from([(OPERATION.to_string(), Some(format!("{me} {}", unix_now())))]);
                cluster.annotate_namespace(&namespace, &annotations, None).await.map(|_| ())
            };
            if let Err(error) = renewed {
                tracing::warn!(%error, "could not renew the operation");
            }
        }
    })
}

/// Creates (or converges) an instance: plans it, applies the plan in order, waits for jobs
/// and workloads, and records the outcome. Safe to re-run after any interruption.
///
/// An existing instance is planned only while this process holds its operation lock, from
/// the record as it is then: two operations never apply plans made from the same old record.
/// Every cluster call is bounded by `options.timeout`.
pub async fn create(
    cluster: &Cluster,
    catalog: &Catalog,
    request: &InstanceRequest,
    profile: &ClusterProfile,
    options: CreateOptions,
    progress: &dyn Progress,
) -> Result<CreateReport, InstanceError> {
    let me = holder_identity();
    let base = cluster;
    let cluster = &base.with_timeout(options.timeout);
    let mut request = request.clone();
    let mut rng = rand::rng();
    let id = match request.instance_id.clone().or_else(|| request.idl.instance_id.clone()) {
        Some(id) => id,
        None => {
            let service = catalog.service(&request.service_id).map_err(HsmError::from)?;
            crate::request::generated_instance_id(&service.name, &mut rng)
        }
    };
    request.instance_id = Some(id.clone());

    let (existing, plan, idl_annotation) = match cluster.namespace(&id).await? {
        Some(namespace) => {
            let record = existing_record(&namespace, &id, &mut request)?;
            take_lease(cluster, &record, &me).await?;
            // Under the lock: the record as it is now, and a plan made from it.
            let planned = async {
                let namespace = cluster.namespace(&id).await?.ok_or_else(|| InstanceError::NotFound(id.clone()))?;
                let record = existing_record(&namespace, &id, &mut request)?;
                let stored = stored_values(cluster, &record).await?;
                let prepared = prepare(catalog, &request, &stored, profile, &mut rng)?;
                let plan = prepared.plan(profile)?;
                let idl_annotation = recorded_idl(&prepared.idl, &prepared.sdl);
                Ok::<_, InstanceError>((record, plan, idl_annotation))
            }
            .await;
            match planned {
                Ok((record, plan, idl_annotation)) => (Some(record), plan, idl_annotation),
                Err(error) => {
                    release_lease(&base.with_timeout(RECORD_GRACE), &id).await;
                    return Err(error);
                }
            }
        }
        None => {
            let prepared = prepare(catalog, &request, &Stored::default(), profile, &mut rng)?;
            let plan = prepared.plan(profile)?;
            let idl_annotation = recorded_idl(&prepared.idl, &prepared.sdl);
            let KubeObject::Namespace(planned) = &plan.steps[0].objects[0] else {
                unreachable!("a plan starts with its namespace")
            };
            let operation_id = sdl::generate::password(&mut rng, 16, "0123456789abcdef");
            let mut namespace = planned.clone();
            let now = rfc3339_now();
            namespace.metadata.annotations.get_or_insert_with(BTreeMap::new).extend([
                (STATE.to_string(), state::CREATING.to_string()),
                (OPERATION.to_string(), format!("{me} {}", unix_now())),
                (OPERATION_ID.to_string(), operation_id.clone()),
                (IDL.to_string(), idl_annotation.clone()),
                (CREATED.to_string(), now.clone()),
                (UPDATED.to_string(), now),
            ]);
            if cluster.create_namespace(&namespace).await?.is_none() {
                // Taken: by another hsm, or by this one when the reply to an earlier attempt
                // was lost (then the namespace carries this operation's id).
                let ours = cluster
                    .namespace(&id)
                    .await?
                    .and_then(|n| Record::from_namespace(&n))
                    .is_some_and(|r| r.operation_id.as_deref() == Some(operation_id.as_str()));
                if !ours {
                    return Err(InstanceError::Exists {
                        id,
                        existing: format!("{} (created by another hsm just now)", request.service_id),
                        hint: "",
                    });
                }
                tracing::info!(instance = %id, "the namespace was created by this operation (its reply was lost)");
            }
            (None, plan, idl_annotation)
        }
    };

    let renewer = spawn_renewer(base, &id, &me, existing.is_some());
    let result = apply_plan(cluster, &plan, existing.is_none(), &[], options, progress).await;
    renewer.abort();
    let (final_state, message) = match &result {
        Ok(_) if options.wait => (state::RUNNING, None),
        Ok(_) => (state::CREATING, Some("applied without waiting (--no-wait)".to_string())),
        Err(error) => (state::FAILED, Some(error.to_string())),
    };
    let recorder = if result.is_ok() { cluster.clone() } else { base.with_timeout(RECORD_GRACE) };
    let finished = finish(&recorder, &id, existing.as_ref(), final_state, message, &idl_annotation).await;
    result?;
    finished?;
    Ok(CreateReport {
        instance_id: id,
        objects: plan.objects().count(),
        existed: existing.is_some(),
        state: final_state.into(),
    })
}

/// The record of an existing instance `id` that `request` asks to create again: refused when
/// hsm does not manage the namespace, it is being deleted, or it holds another service or
/// version. Fills in the request's versions from the record.
fn existing_record(namespace: &Namespace, id: &str, request: &mut InstanceRequest) -> Result<Record, InstanceError> {
    let record = Record::from_namespace(namespace).ok_or_else(|| InstanceError::NotOurs(id.to_string()))?;
    if record.terminating {
        return Err(InstanceError::Terminating(id.to_string()));
    }
    let asked_version = request.product_version.clone().or(request.idl.product_version.clone());
    if record.service_id != request.service_id || asked_version.as_ref().is_some_and(|v| v != &record.product_version) {
        return Err(InstanceError::Exists {
            id: id.to_string(),
            existing: format!("{} {}/{}", record.service_id, record.product_version, record.sdl_version),
            hint: "; use upgrade-instance to change its version, or choose another instance id",
        });
    }
    request.product_version = Some(record.product_version.clone());
    request.sdl_version = Some(record.sdl_version.clone());
    Ok(record)
}

/// Gives the operation lock back after a failure before anything was changed; a failure to
/// do so only delays the next operation until the lock expires.
async fn release_lease(cluster: &Cluster, id: &str) {
    if let Err(error) = cluster.delete::<Lease>(id, LEASE_NAME).await {
        tracing::warn!(%error, "could not release the operation lock");
    }
}

/// Records the outcome of an operation on the namespace (only what changed, so a re-run that
/// changes nothing moves no resourceVersion) and releases the operation.
async fn finish(
    cluster: &Cluster,
    id: &str,
    existing: Option<&Record>,
    final_state: &str,
    message: Option<String>,
    idl_annotation: &str,
) -> Result<(), InstanceError> {
    let unchanged = existing.is_some_and(|r| {
        r.state == final_state
            && r.message == message
            && r.operation.is_none()
            && serde_json::to_string(&r.idl).is_ok_and(|idl| idl == idl_annotation)
    });
    if !unchanged {
        let annotations = BTreeMap::from([
            (STATE.to_string(), Some(final_state.to_string())),
            (OPERATION.to_string(), None),
            (IDL.to_string(), Some(idl_annotation.to_string())),
            (UPDATED.to_string(), Some(rfc3339_now())),
            (MESSAGE.to_string(), message),
        ]);
        cluster.annotate_namespace(id, &annotations, None).await?;
    }
    if existing.is_some() {
        cluster.delete::<Lease>(id, LEASE_NAME).await?;
    }
    Ok(())
}

/// Applies `plan` step by step, waiting where the step needs it. Jobs named in `rerun_jobs`
/// are deleted first (a Job's template cannot change, and an upgrade runs its jobs again), and
/// so are jobs of the plan that failed before: re-running an operation runs them again.
async fn apply_plan(
    cluster: &Cluster,
    plan: &Plan,
    namespace_created: bool,
    rerun_jobs: &[String],
    options: CreateOptions,
    progress: &dyn Progress,
) -> Result<(), InstanceError> {
    let total = plan.steps.len();
    let namespace = plan.instance_id.clone();
    let mut rerun: BTreeSet<String> = rerun_jobs.iter().cloned().collect();
    let planned_jobs = plan.objects().filter(|o| matches!(o, KubeObject::Job(_)) && !rerun.contains(o.name()));
    if !namespace_created && planned_jobs.count() > 0 {
        let failed =
            cluster.list::<Job>(&namespace, None).await?.into_iter().filter(|j| job_readiness(j).failed.is_some());
        rerun.extend(failed.filter_map(|j| j.metadata.name));
    }
    for (index, step) in plan.steps.iter().enumerate() {
        progress.step(index + 1, total, step.phase.title(), step.objects.len());
        if step.phase == Phase::Namespace && namespace_created {
            continue;
        }
        for job in step.objects.iter().filter(|o| matches!(o, KubeObject::Job(_)) && rerun.contains(o.name())) {
            cluster.delete::<Job>(&namespace, job.name()).await?;
        }
        cluster.apply_all(&step.objects).await?;
        let waiting = match step.phase {
            Phase::Preflight | Phase::Postflight => true,
            Phase::Workloads => options.wait,
            _ => false,
        };
        if waiting {
            wait_for(cluster, &namespace, step, options.timeout, progress).await?;
        }
    }
    progress.finish();
    Ok(())
}

/// Readiness of one workload or job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Ready instances.
    pub ready: i32,
    /// Desired instances.
    pub desired: i32,
    /// Finished (ready, or a completed job).
    pub done: bool,
    /// A job failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// The latest condition, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// Readiness of a Deployment.
pub fn deployment_readiness(d: &Deployment) -> Readiness {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    let current = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    let condition = status.conditions.unwrap_or_default().last().map(|c| {
        format!("{}={}{}", c.type_, c.status, c.message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())
    });
    Readiness {
        kind: "Deployment".into(),
        name: d.metadata.name.clone().unwrap_or_default(),
        ready,
        desired,
        done: current && ready >= desired && status.updated_replicas.unwrap_or(0) >= desired,
        failed: None,
        condition,
    }
}

/// Readiness of a StatefulSet.
pub fn stateful_set_readiness(s: &StatefulSet) -> Readiness {
    let desired = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = s.status.clone().unwrap_or_default();
    let current = status.observed_generation.unwrap_or(0) >= s.metadata.generation.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    let condition = status.conditions.unwrap_or_default().last().map(|c| {
        format!("{}={}{}", c.type_, c.status, c.message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())
    });
    Readiness {
        kind: "StatefulSet".into(),
        name: s.metadata.name.clone().unwrap_or_default(),
        ready,
        desired,
        done: current && ready >= desired,
        failed: None,
        condition,
    }
}

/// Readiness of a Job.
pub fn job_readiness(j: &Job) -> Readiness {
    let conditions = j.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let with = |t: &str| conditions.iter().find(|c| c.type_ == t && c.status == "True");
    let failed = with("Failed").map(|c| c.message.clone().or(c.reason.clone()).unwrap_or_else(|| "failed".into()));
    let complete = with("Complete").is_some();
    Readiness {
        kind: "Job".into(),
        name: j.metadata.name.clone().unwrap_or_default(),
        ready: i32::from(complete),
        desired: 1,
        done: complete,
        failed,
        condition: conditions.last().map(|c| format!("{}={}", c.type_, c.status)),
    }
}

enum Observed {
    Deployment(Deployment),
    StatefulSet(StatefulSet),
    Job(Job),
}

/// Waits until every object of `step` is done (workloads ready, jobs complete).
async fn wait_for(
    cluster: &Cluster,
    namespace: &str,
    step: &crate::plan::Step,
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<(), InstanceError> {
    let mut pending: BTreeMap<(String, String), Readiness> = step
        .objects
        .iter()
        .filter(|o| matches!(o.kind(), "Deployment" | "StatefulSet" | "Job"))
        .map(|o| {
            let key = (o.kind().to_string(), o.name().to_string());
            (
                key.clone(),
                Readiness {
                    kind: key.0,
                    name: key.1,
                    ready: 0,
                    desired: 0,
                    done: false,
                    failed: None,
                    condition: None,
                },
            )
        })
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let kinds: BTreeSet<&str> = pending.keys().map(|(k, _)| k.as_str()).collect();
    let mut streams = Vec::new();
    if kinds.contains("Deployment") {
        streams.push(cluster.watch::<Deployment>(namespace).map(|r| r.map(Observed::Deployment)).boxed());
    }
    if kinds.contains("StatefulSet") {
        streams.push(cluster.watch::<StatefulSet>(namespace).map(|r| r.map(Observed::StatefulSet)).boxed());
    }
    if kinds.contains("Job") {
        streams.push(cluster.watch::<Job>(namespace).map(|r| r.map(Observed::Job)).boxed());
    }
    let mut events = futures::stream::select_all(streams);
    loop {
        if pending.values().all(|r| r.done) {
            return Ok(());
        }
        let next = match cluster.deadline() {
            Some(deadline) => tokio::time::timeout_at(deadline, events.next()).await,
            None => Ok(events.next().await),
        };
        let observed = match next {
            Err(_) => {
                // The namespace's events say why (image pulls, scheduling, crashes): asked
                // past the deadline, so with a short bound of its own.
                let events = cluster
                    .with_timeout(Duration::from_secs(5))
                    .list::<Event>(namespace, None)
                    .await
                    .unwrap_or_default();
                let details: Vec<String> = pending
                    .values()
                    .filter(|r| !r.done)
                    .map(|r| {
                        let status = r.condition.clone().unwrap_or_else(|| "no status reported yet".into());
                        let event =
                            latest_event(&events, &r.name).map(|e| format!("; latest event: {e}")).unwrap_or_default();
                        format!("  {} {}: {}/{} ready; {status}{event}", r.kind, r.name, r.ready, r.desired)
                    })
                    .collect();
                return Err(InstanceError::Timeout {
                    seconds: timeout.as_secs(),
                    what: step.phase.title().into(),
                    details: details.join("\n"),
                });
            }
            Ok(None) => {
                return Err(ClusterError::Transport { action: "watch".into(), message: "the watch ended".into() }.into())
            }
            Ok(Some(result)) => result?,
        };
        let readiness = match &observed {
            Observed::Deployment(d) => deployment_readiness(d),
            Observed::StatefulSet(s) => stateful_set_readiness(s),
            Observed::Job(j) => job_readiness(j),
        };
        if let Some(slot) = pending.get_mut(&(readiness.kind.clone(), readiness.name.clone())) {
            if let Some(message) = &readiness.failed {
                return Err(InstanceError::JobFailed { name: readiness.name.clone(), message: message.clone() });
            }
            *slot = readiness;
            let statuses: Vec<Readiness> = pending.values().cloned().collect();
            progress.waiting(&statuses);
        }
    }
}

/// What an upgrade or reconfiguration did.
#[derive(Debug, Clone)]
pub struct ChangeReport {
    /// The instance id.
    pub instance_id: String,
    /// Version before, `<pv>/<sv>`.
    pub from: String,
    /// Version after.
    pub to: String,
    /// Objects applied.
    pub applied: usize,
    /// Objects the old version had and the new one does not (deleted; volume claims are kept).
    pub removed: Vec<String>,
    /// The final state.
    pub state: String,
}

/// Upgrades instance `id` to `target` (`(product version, SDL version)`; `None` keeps its
/// version) and applies `sets`. The catalog's `upgrade_from` rules decide which upgrades are
/// allowed; generated secrets are kept; immutable parameters may not change; objects of the old
/// version that the new one lacks are removed (volume claims are kept); jobs run again.
///
/// The change is planned only while this process holds the instance's operation lock, from
/// the record as it is then, so a change made by another hsm just before is never reverted.
#[allow(clippy::too_many_arguments)]
pub async fn change(
    cluster: &Cluster,
    catalog: &Catalog,
    id: &str,
    target: Option<(String, Option<String>)>,
    sets: &[(String, String)],
    profile: &ClusterProfile,
    options: CreateOptions,
    progress: &dyn Progress,
) -> Result<ChangeReport, InstanceError> {
    let base = cluster;
    let cluster = &base.with_timeout(options.timeout);
    let namespace = cluster.namespace(id).await?.ok_or_else(|| InstanceError::NotFound(id.to_string()))?;
    let record = Record::from_namespace(&namespace).ok_or_else(|| InstanceError::NotOurs(id.to_string()))?;
    if record.terminating {
        return Err(InstanceError::Terminating(id.to_string()));
    }
    let me = holder_identity();
    take_lease(cluster, &record, &me).await?;
    let change = match plan_change(cluster, catalog, id, target, sets, profile).await {
        Ok(change) => change,
        Err(error) => {
            release_lease(&base.with_timeout(RECORD_GRACE), id).await;
            return Err(error);
        }
    };
    let PlannedChange { record, from, to, old_plan, plan, idl_annotation } = change;

    let upgrading = BTreeMap::from([(STATE.to_string(), Some(state::UPGRADING.to_string()))]);
    let renewer = spawn_renewer(base, id, &me, true);
    let mut removed = Vec::new();
    let result = async {
        cluster.annotate_namespace(id, &upgrading, None).await?;
        let keep: BTreeSet<(String, String)> =
            plan.objects().map(|o| (o.kind().to_string(), o.name().to_string())).collect();
        for old in old_plan.iter().flat_map(|p| p.objects()) {
            let key = (old.kind().to_string(), old.name().to_string());
            if keep.contains(&key) || matches!(old, KubeObject::Namespace(_) | KubeObject::PersistentVolumeClaim(_)) {
                continue;
            }
            delete_object(cluster, id, old).await?;
            removed.push(format!("{}/{}", key.0, key.1));
        }
        let jobs: Vec<String> =
            plan.objects().filter(|o| matches!(o, KubeObject::Job(_))).map(|o| o.name().to_string()).collect();
        apply_plan(cluster, &plan, false, &jobs, options, progress).await
    }
    .await;
    renewer.abort();
    let (final_state, message) = match &result {
        Ok(_) if options.wait => (state::RUNNING, None),
        Ok(_) => (state::UPGRADING, Some("applied without waiting (--no-wait)".to_string())),
        Err(error) => (state::FAILED, Some(error.to_string())),
    };
    let mut before = record.clone();
    before.state = state::UPGRADING.into();
    let recorder = if result.is_ok() { cluster.clone() } else { base.with_timeout(RECORD_GRACE) };
    let finished = finish(&recorder, id, Some(&before), final_state, message, &idl_annotation).await;
    result?;
    finished?;
    Ok(ChangeReport {
        instance_id: id.to_string(),
        from,
        to,
        applied: plan.objects().count(),
        removed,
        state: final_state.into(),
    })
}

/// A change planned under the operation lock.
struct PlannedChange {
    record: Record,
    from: String,
    to: String,
    old_plan: Option<Plan>,
    plan: Plan,
    idl_annotation: String,
}

/// Reads instance `id`'s record (the caller holds its lock), checks the change against the
/// catalog's rules and plans the old and the new version.
async fn plan_change(
    cluster: &Cluster,
    catalog: &Catalog,
    id: &str,
    target: Option<(String, Option<String>)>,
    sets: &[(String, String)],
    profile: &ClusterProfile,
) -> Result<PlannedChange, InstanceError> {
    let namespace = cluster.namespace(id).await?.ok_or_else(|| InstanceError::NotFound(id.to_string()))?;
    let record = Record::from_namespace(&namespace).ok_or_else(|| InstanceError::NotOurs(id.to_string()))?;
    if record.terminating {
        return Err(InstanceError::Terminating(id.to_string()));
    }
    if record.state == state::DELETED {
        return Err(HsmError::Usage(format!(
            "instance \"{id}\" was deleted (its volume claims were kept); create it again with --instance-id {id} first"
        ))
        .into());
    }
    let service = catalog.service(&record.service_id).map_err(HsmError::from)?;
    let from = format!("{}/{}", record.product_version, record.sdl_version);
    let version = match &target {
        None => service.version(Some(&record.product_version), Some(&record.sdl_version)),
        Some((pv, sv)) => service.version(Some(pv), sv.as_deref()),
    }
    .map_err(HsmError::from)?;
    let to = format!("{}/{}", version.product_version, version.sdl_version);
    if from != to && !version.upgrades_from(&record.product_version, &record.sdl_version) {
        let allowed: Vec<String> = version
            .config
            .upgrade_from
            .iter()
            .map(|r| {
                if r.sdl_versions.is_empty() {
                    r.product_version.clone()
                } else {
                    format!("{}/{}", r.product_version, r.sdl_versions.join("|"))
                }
            })
            .collect();
        return Err(HsmError::Usage(format!(
            "{} {to} cannot be reached from {from}: it upgrades from {}",
            service.id,
            if allowed.is_empty() { "no earlier version".to_string() } else { allowed.join(", ") }
        ))
        .into());
    }
    if from == to && sets.is_empty() {
        return Err(HsmError::Usage(format!(
            "instance \"{id}\" is already at {to} and no --set was given: nothing to change"
        ))
        .into());
    }

    let stored = stored_values(cluster, &record).await?;
    let mut rng = rand::rng();
    let mut idl = record.idl.clone();
    idl.product_version = None;
    idl.sdl_version = None;
    let request = |product_version: &str, sdl_version: &str, sets: Vec<(String, String)>| InstanceRequest {
        service_id: record.service_id.clone(),
        product_version: Some(product_version.to_string()),
        sdl_version: Some(sdl_version.to_string()),
        idl: idl.clone(),
        idl_source: format!("the record of instance {id}"),
        sets,
        instance_id: Some(id.to_string()),
    };
    let old_plan = prepare(
        catalog,
        &request(&record.product_version, &record.sdl_version, Vec::new()),
        &stored,
        profile,
        &mut rng,
    )
    .and_then(|p| p.plan(profile))
    .ok();
    let prepared = prepare(
        catalog,
        &request(&version.product_version, &version.sdl_version, sets.to_vec()),
        &stored,
        profile,
        &mut rng,
    )?;
    let plan = prepared.plan(profile)?;
    let idl_annotation = recorded_idl(&prepared.idl, &prepared.sdl);

    Ok(PlannedChange { record, from, to, old_plan, plan, idl_annotation })
}

async fn delete_object(cluster: &Cluster, namespace: &str, object: &KubeObject) -> Result<(), ClusterError> {
    let name = object.name();
    match object {
        KubeObject::Deployment(_) => cluster.delete::<Deployment>(namespace, name).await,
        KubeObject::StatefulSet(_) => cluster.delete::<StatefulSet>(namespace, name).await,
        KubeObject::Job(_) => cluster.delete::<Job>(namespace, name).await,
        KubeObject::Service(_) => cluster.delete::<Service>(namespace, name).await,
        KubeObject::Secret(_) => cluster.delete::<Secret>(namespace, name).await,
        KubeObject::ConfigMap(_) => cluster.delete::<ConfigMap>(namespace, name).await,
        KubeObject::NetworkPolicy(_) => cluster.delete::<NetworkPolicy>(namespace, name).await,
        KubeObject::PersistentVolumeClaim(_) | KubeObject::Namespace(_) => Ok(()),
    }
}

/// The newest event about `name` or its pods (`<name>-...`), as `Reason: message`.
pub fn latest_event(events: &[Event], name: &str) -> Option<String> {
    let prefix = format!("{name}-");
    events
        .iter()
        .filter(|e| e.involved_object.name.as_deref().is_some_and(|n| n == name || n.starts_with(&prefix)))
        .max_by_key(|e| {
            let at =
                e.last_timestamp.as_ref().or(e.first_timestamp.as_ref()).or(e.metadata.creation_timestamp.as_ref());
            (at.map(|t| t.0), e.metadata.resource_version.as_ref().and_then(|v| v.parse::<u64>().ok()))
        })
        .map(|e| format!("{}: {}", e.reason.clone().unwrap_or_default(), e.message.clone().unwrap_or_default()))
}

/// The records of every instance on the cluster.
pub async fn list(cluster: &Cluster) -> Result<Vec<Record>, InstanceError> {
    let selector = format!("{}={}", labels::MANAGED_BY, labels::MANAGER);
    let mut records: Vec<Record> =
        cluster.namespaces(&selector).await?.iter().filter_map(Record::from_namespace).collect();
    records.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    Ok(records)
}

/// Where a public port can be reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// Component (Service) name.
    pub service_name: String,
    /// Port name.
    pub port_name: String,
    /// Load balancer address, or `<pending>`.
    pub public_location: String,
    /// Port.
    pub public_port: i32,
}

/// Everything `get-instance` shows.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceDetail {
    /// The record.
    #[serde(flatten)]
    pub record: Record,
    /// Parameter values; secret ones masked.
    pub parameters: BTreeMap<String, String>,
    /// Workloads and their readiness.
    pub components: Vec<Readiness>,
    /// Public ports.
    pub service_locations: Vec<Location>,
    /// Volume claims.
    pub volume_claims: Vec<String>,
}

/// Details of instance `id`.
pub async fn get(cluster: &Cluster, id: &str) -> Result<InstanceDetail, InstanceError> {
    let namespace = cluster.namespace(id).await?.ok_or_else(|| InstanceError::NotFound(id.to_string()))?;
    let record = Record::from_namespace(&namespace).ok_or_else(|| InstanceError::NotOurs(id.to_string()))?;
    let mut parameters: BTreeMap<String, String> =
        cluster.get::<ConfigMap>(id, CONFIG_MAP_NAME).await?.and_then(|c| c.data).unwrap_or_default();
    if let Some(secret) = cluster.get::<Secret>(id, SECRET_NAME).await? {
        for key in secret.data.unwrap_or_default().into_keys().filter(|k| k != GENERATED_KEY) {
            parameters.insert(key, "********".into());
        }
    }
    let mut components: Vec<Readiness> =
        cluster.list::<Deployment>(id, None).await?.iter().map(deployment_readiness).collect();
    components.extend(cluster.list::<StatefulSet>(id, None).await?.iter().map(stateful_set_readiness));
    components.sort_by(|a, b| a.name.cmp(&b.name));
    let mut service_locations = Vec::new();
    for service in cluster.list::<Service>(id, None).await? {
        let Some(spec) = &service.spec else { continue };
        if spec.type_.as_deref() != Some("LoadBalancer") {
            continue;
        }
        let ingress = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref())
            .and_then(|i| i.first());
        let address = ingress.and_then(|i| i.ip.clone().or(i.hostname.clone())).unwrap_or_else(|| "<pending>".into());
        for port in spec.ports.clone().unwrap_or_default() {
            service_locations.push(Location {
                service_name: service.metadata.name.clone().unwrap_or_default(),
                port_name: port.name.clone().unwrap_or_default(),
                public_location: address.clone(),
                public_port: port.port,
            });
        }
    }
    let volume_claims =
        cluster.list::<PersistentVolumeClaim>(id, None).await?.into_iter().filter_map(|c| c.metadata.name).collect();
    Ok(InstanceDetail { record, parameters, components, service_locations, volume_claims })
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteReport {
    /// There was no such instance.
    AlreadyGone,
    /// The namespace and everything in it is gone.
    Deleted,
    /// Everything but these volume claims is gone; the namespace keeps them.
    VolumesKept(Vec<String>),
}

/// Deletes instance `id`. `confirm` receives a description of what will be deleted and
/// returns whether to go on. With `keep_volumes`, the volume claims stay, with the namespace
/// that holds them and the instance's parameters (Secret and ConfigMap), so that creating the
/// instance again with the same id reattaches them.
pub async fn delete(
    cluster: &Cluster,
    id: &str,
    keep_volumes: bool,
    timeout: Duration,
    confirm: impl FnOnce(&str) -> bool,
) -> Result<DeleteReport, InstanceError> {
    let Some(namespace) = cluster.namespace(id).await? else { return Ok(DeleteReport::AlreadyGone) };
    let record = Record::from_namespace(&namespace).ok_or_else(|| InstanceError::NotOurs(id.to_string()))?;
    if record.terminating {
        wait_gone(cluster, id, timeout).await?;
        return Ok(DeleteReport::Deleted);
    }
    let claims: Vec<String> =
        cluster.list::<PersistentVolumeClaim>(id, None).await?.into_iter().filter_map(|c| c.metadata.name).collect();
    let description = match (keep_volumes, claims.is_empty()) {
        (_, true) => format!("Delete instance {id} ({})?", record.service_id),
        (true, false) => {
            format!("Delete instance {id} ({}), keeping its volume claims {}?", record.service_id, claims.join(", "))
        }
        (false, false) => format!(
            "Delete instance {id} ({}) and its volume claims {} (their data is lost)?",
            record.service_id,
            claims.join(", ")
        ),
    };
    if !confirm(&description) {
        return Err(InstanceError::Cancelled);
    }
    // The deadline starts once the operator has answered.
    let cluster = &cluster.with_timeout(timeout);
    let me = holder_identity();
    take_lease(cluster, &record, &me).await?;
    let deleting = BTreeMap::from([(STATE.to_string(), Some(state::DELETING.to_string()))]);
    cluster.annotate_namespace(id, &deleting, None).await?;
    if !keep_volumes {
        cluster.delete_namespace(id).await?;
        wait_gone(cluster, id, timeout).await?;
        return Ok(DeleteReport::Deleted);
    }
    for d in cluster.list::<Deployment>(id, None).await? {
        cluster.delete::<Deployment>(id, &name_of(&d.metadata)).await?;
    }
    for s in cluster.list::<StatefulSet>(id, None).await? {
        cluster.delete::<StatefulSet>(id, &name_of(&s.metadata)).await?;
    }
    for j in cluster.list::<Job>(id, None).await? {
        cluster.delete::<Job>(id, &name_of(&j.metadata)).await?;
    }
    for s in cluster.list::<Service>(id, None).await? {
        cluster.delete::<Service>(id, &name_of(&s.metadata)).await?;
    }
    for p in cluster.list::<NetworkPolicy>(id, None).await? {
        cluster.delete::<NetworkPolicy>(id, &name_of(&p.metadata)).await?;
    }
    // The Secret and ConfigMap stay with the volumes: re-creating the instance with the same id
    // reattaches the volumes with the same passwords and keys.
    let annotations = BTreeMap::from([
        (STATE.to_string(), Some(state::DELETED.to_string())),
        (OPERATION.to_string(), None),
        (UPDATED.to_string(), Some(rfc3339_now())),
        (MESSAGE.to_string(), Some(format!("volume claims kept: {}", claims.join(", ")))),
    ]);
    cluster.annotate_namespace(id, &annotations, None).await?;
    cluster.delete::<Lease>(id, LEASE_NAME).await?;
    Ok(DeleteReport::VolumesKept(claims))
}

fn name_of(meta: &ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

async fn wait_gone(cluster: &Cluster, id: &str, timeout: Duration) -> Result<(), InstanceError> {
    let deadline = tokio::time::Instant::now().checked_add(timeout);
    while cluster.namespace(id).await?.is_some() {
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return Err(InstanceError::Timeout {
                seconds: timeout.as_secs(),
                what: format!("namespace {id} to be deleted"),
                details: "  the namespace is still terminating".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_decisions() {
        let op = |holder: &str, since| Some(Operation { holder: holder.into(), since });
        assert_eq!(lock_state(None, "h/1", 100, |_| true), Lock::Free);
        assert_eq!(lock_state(op("h/1", 90).as_ref(), "h/1", 100, |_| true), Lock::Mine);
        assert_eq!(lock_state(op("h/2", 90).as_ref(), "h/1", 100, |_| true), Lock::HeldBy("h/2".into(), 10));
        assert_eq!(
            lock_state(op("h/2", 90).as_ref(), "h/1", 100, |_| false),
            Lock::Abandoned("h/2".into()),
            "dead process on this host"
        );
        assert_eq!(
            lock_state(op("other/2", 90).as_ref(), "h/1", 100, |_| false),
            Lock::HeldBy("other/2".into(), 10),
            "other hosts' processes are not checked"
        );
        assert_eq!(
            lock_state(op("other/2", 10).as_ref(), "h/1", 100, |_| true),
            Lock::Abandoned("other/2".into()),
            "not renewed for over a minute"
        );
    }
}
