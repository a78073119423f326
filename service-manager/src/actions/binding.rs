//! `create-binding`, `list-bindings`, `delete-binding` and `get-credentials --binding`: the
//! cluster side of bindings (planned in [`crate::binding`]). The writing halves
//! ([`start_create`], [`start_delete`]) return at once — the HSM server and the broker call
//! them; [`create`] and [`delete`] wait for the bind and unbind Jobs, for `hsm`.
//! `docs/bindings.md` has the lifecycle.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use crate::binding::{self as plan, BindingError, BindingInput};
pub use crate::binding::{BindingState, BindingSummary};
use crate::cluster::Cluster;
use crate::error::HsmError;
use crate::instance::{in_force, InstanceError, Record, State};
use crate::plan::{CONFIG_MAP_NAME, GENERATED_KEY, SECRET_NAME};
use crate::progress::Progress;

/// A binding to make.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindRequest {
    /// Instance id.
    pub instance_id: String,
    /// Binding id (a DNS label of at most 50 characters).
    pub binding_id: String,
    /// Extra labels for the binding Secret, e.g. OSB context (validated label values).
    pub labels: BTreeMap<String, String>,
    /// Extra annotations (e.g. the OSB request digest, used for idempotency checks).
    pub annotations: BTreeMap<String, String>,
}

/// How often the waiting wrappers look at a binding.
const POLL: Duration = Duration::from_millis(250);

fn usage(message: String) -> InstanceError {
    InstanceError::Hsm(HsmError::Usage(message))
}

/// Checks a request's ids, labels and annotations (bad input, nothing written).
pub fn check(request: &BindRequest) -> Result<(), InstanceError> {
    if let Some(problem) = sdl::validate::instance_id_problem(&request.instance_id) {
        return Err(usage(format!("instance id: {problem}")));
    }
    if let Some(problem) = plan::id_problem(&request.binding_id) {
        return Err(usage(format!("binding id: {problem}")));
    }
    for (key, value) in &request.labels {
        if let Some(problem) = sdl::names::label_key(key).or_else(|| sdl::names::label_value(value)) {
            return Err(usage(format!("label {key}: {problem}")));
        }
    }
    for key in request.annotations.keys() {
        if let Some(problem) = sdl::names::label_key(key) {
            return Err(usage(format!("annotation {key}: {problem}")));
        }
    }
    Ok(())
}

/// The record of instance `id`: `NotFound` without one, `Terminating` when it is being
/// deleted (its namespace or its `Instance` going, or its record saying so).
async fn record(cluster: &Cluster, id: &str) -> Result<Record, InstanceError> {
    let namespace = cluster.namespace(id).await?.ok_or_else(|| InstanceError::NotFound(id.to_string()))?;
    let record = Record::from_namespace(&namespace).ok_or_else(|| InstanceError::NotFound(id.to_string()))?;
    if namespace.metadata.deletion_timestamp.is_some() || matches!(record.state, State::Deleting | State::Deleted) {
        return Err(InstanceError::Terminating(id.to_string()));
    }
    let going = crate::declared::instance(cluster, id).await?.is_some_and(|i| i.metadata.deletion_timestamp.is_some());
    if going {
        return Err(InstanceError::Terminating(id.to_string()));
    }
    Ok(record)
}

/// [`record`] for reads and deletes: the bindings of an instance being deleted go with it, so
/// it has none (`NotFound`).
async fn live(cluster: &Cluster, id: &str) -> Result<Record, InstanceError> {
    match record(cluster, id).await {
        Err(InstanceError::Terminating(id)) => Err(InstanceError::NotFound(id)),
        other => other,
    }
}

async fn read(cluster: &Cluster, instance: &str, id: &str) -> Result<Option<BindingSummary>, InstanceError> {
    let secret = cluster.get::<Secret>(instance, &plan::secret_name(id)).await?;
    let bind = cluster.get::<Job>(instance, &plan::bind_job_name(id)).await?;
    let unbind = cluster.get::<Job>(instance, &plan::unbind_job_name(id)).await?;
    Ok(plan::summary(instance, id, secret.as_ref(), bind.as_ref(), unbind.as_ref()))
}

fn binding_error(id: &str, error: BindingError) -> InstanceError {
    match error {
        BindingError::NotBindable(service) => InstanceError::NotBindable {
            id: id.to_string(),
            reason: format!("its service {service} has no bindings section"),
        },
        other => InstanceError::NotBindable { id: id.to_string(), reason: other.to_string() },
    }
}

/// Writing half of bind: checks the instance exists and its SDL in force has `bindings`,
/// generates per-binding credentials, writes the binding Secret (+ the bind Job). Returns at
/// once. The same binding id again: `Ok` with the existing binding's summary, never a second
/// one (the caller compares annotations).
pub async fn start_create(cluster: &Cluster, request: &BindRequest) -> Result<BindingSummary, InstanceError> {
    check(request)?;
    let (instance, id) = (request.instance_id.as_str(), request.binding_id.as_str());
    let record = record(cluster, instance).await?;
    if let Some(existing) = read(cluster, instance, id).await? {
        return Ok(existing);
    }
    let sdl = in_force::read(cluster, &record).await?.ok_or_else(|| InstanceError::NotBindable {
        id: instance.to_string(),
        reason: "its SDL in force is not stored with it (created by an older hsm); upgrade or re-create it first"
            .into(),
    })?;
    let Some(bindings) = &sdl.bindings else {
        return Err(binding_error(instance, BindingError::NotBindable(record.service_id.clone())));
    };
    let mut parameters =
        cluster.get::<ConfigMap>(instance, CONFIG_MAP_NAME).await?.and_then(|c| c.data).unwrap_or_default();
    for (key, value) in cluster.get::<Secret>(instance, SECRET_NAME).await?.and_then(|s| s.data).unwrap_or_default() {
        if key != GENERATED_KEY {
            parameters.insert(key, String::from_utf8_lossy(&value.0).into_owned());
        }
    }
    let password = bindings.user.as_ref().map_or(String::new(), |u| {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
        sdl::generate::password(&mut rng, u.password_length, sdl::generate::DEFAULT_PASSWORD_CHARACTERS)
    });
    let owner = crate::declared::instance(cluster, instance).await?.and_then(|i| plan::owner_of(&i, false));
    let input = BindingInput {
        instance_id: instance,
        sdl: &sdl,
        parameters: &parameters,
        binding_id: id,
        password: &password,
        cluster_domain: &crate::profile::ClusterProfile::default().cluster_domain,
        owner,
        labels: &request.labels,
        annotations: &request.annotations,
    };
    let secret = plan::secret(&input).map_err(|e| binding_error(instance, e))?;
    let Some(created) = cluster.create(instance, &secret).await? else {
        // Another request made it first: that one is the binding.
        return read(cluster, instance, id)
            .await?
            .ok_or_else(|| InstanceError::BindingNotFound { instance: instance.to_string(), binding: id.to_string() });
    };
    if let Some(owner) = plan::owner_of(&created, true) {
        if let Some(job) = plan::bind_job(&sdl, &created, owner) {
            cluster.create(instance, &job).await?;
        }
    }
    Ok(read(cluster, instance, id)
        .await?
        .unwrap_or_else(|| plan::summary(instance, id, Some(&created), None, None).expect("a Secret makes a summary")))
}

/// Binding `binding_id` of instance `instance_id`, if there is one (`NotFound` when the
/// instance is not).
pub async fn get(
    cluster: &Cluster,
    instance_id: &str,
    binding_id: &str,
) -> Result<Option<BindingSummary>, InstanceError> {
    live(cluster, instance_id).await?;
    if plan::id_problem(binding_id).is_some() {
        return Ok(None);
    }
    read(cluster, instance_id, binding_id).await
}

/// Every binding of instance `instance_id`, by id.
pub async fn list(cluster: &Cluster, instance_id: &str) -> Result<Vec<BindingSummary>, InstanceError> {
    live(cluster, instance_id).await?;
    let selector = plan::selector(instance_id);
    let secrets = cluster.list::<Secret>(instance_id, Some(&selector)).await?;
    let jobs = cluster.list::<Job>(instance_id, Some(&selector)).await?;
    let mut ids: Vec<String> = secrets.iter().filter_map(plan::binding_id).collect();
    ids.extend(jobs.iter().filter_map(plan::binding_id));
    ids.sort();
    ids.dedup();
    let named = |id: &str| secrets.iter().find(|s| s.metadata.name.as_deref() == Some(plan::secret_name(id).as_str()));
    let job = |name: String| jobs.iter().find(|j| j.metadata.name.as_deref() == Some(name.as_str()));
    Ok(ids
        .iter()
        .filter_map(|id| {
            plan::summary(instance_id, id, named(id), job(plan::bind_job_name(id)), job(plan::unbind_job_name(id)))
        })
        .collect())
}

/// The binding Secret's data as strings (what OSB bind returns as `credentials`).
pub async fn credentials(
    cluster: &Cluster,
    instance_id: &str,
    binding_id: &str,
) -> Result<BTreeMap<String, String>, InstanceError> {
    let not_found =
        || InstanceError::BindingNotFound { instance: instance_id.to_string(), binding: binding_id.to_string() };
    get(cluster, instance_id, binding_id).await?.ok_or_else(not_found)?;
    let secret = cluster.get::<Secret>(instance_id, &plan::secret_name(binding_id)).await?.ok_or_else(not_found)?;
    Ok(secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect())
}

/// Writing half of unbind: starts the unbind Job (if the SDL names one) reading a copy of the
/// binding Secret it owns, and removes the binding Secret (its bind Job goes with it); `get`
/// then says `Deleting` until the unbind Job finished, then `None`.
pub async fn start_delete(
    cluster: &Cluster,
    instance_id: &str,
    binding_id: &str,
) -> Result<BindingSummary, InstanceError> {
    let not_found =
        || InstanceError::BindingNotFound { instance: instance_id.to_string(), binding: binding_id.to_string() };
    let record = live(cluster, instance_id).await?;
    if plan::id_problem(binding_id).is_some() {
        return Err(not_found());
    }
    let Some(secret) = cluster.get::<Secret>(instance_id, &plan::secret_name(binding_id)).await? else {
        // Deleted before: the unbind Job may still run.
        return read(cluster, instance_id, binding_id).await?.ok_or_else(not_found);
    };
    let summary = plan::summary(instance_id, binding_id, Some(&secret), None, None).ok_or_else(not_found)?;
    let sdl = in_force::read(cluster, &record).await?;
    let suffix = {
        use rand::Rng;
        let mut rng = rand::rng();
        (0..6).map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])).collect::<String>()
    };
    let copy = plan::copy_name(binding_id, &suffix);
    if let Some(job) = sdl.as_ref().and_then(|sdl| plan::unbind_job(sdl, &secret, &copy)) {
        let name = plan::unbind_job_name(binding_id);
        // A finished unbind Job of an earlier binding with this id (kept for its TTL) goes first.
        if let Some(old) = cluster.get::<Job>(instance_id, &name).await? {
            let finished = crate::readiness::job(&old);
            if finished.done || finished.failed.is_some() {
                cluster.delete::<Job>(instance_id, &name).await?;
            }
        }
        let job = match cluster.create(instance_id, &job).await? {
            Some(created) => Some(created),
            None => cluster.get::<Job>(instance_id, &name).await?,
        };
        if let Some(job) = &job {
            // The copy the Job reads (it may be one an earlier attempt of this delete started).
            let reads = plan::copy_of(job).unwrap_or(copy);
            if let Some(owner) = plan::owner_of(job, true) {
                cluster.create(instance_id, &plan::unbind_secret(&secret, owner, &reads)).await?;
            }
        }
    }
    cluster.delete::<Job>(instance_id, &plan::bind_job_name(binding_id)).await?;
    cluster.delete::<Secret>(instance_id, &plan::secret_name(binding_id)).await?;
    Ok(BindingSummary { state: BindingState::Deleting, ..summary })
}

fn timed_out(seconds: u64, what: String, details: String) -> InstanceError {
    InstanceError::Wait(crate::wait::WaitError::Timeout { seconds, what, details })
}

/// [`start_create`], then waits (at most `timeout`) until the binding is ready; a failed bind
/// Job is [`InstanceError::BindingFailed`].
pub async fn create(
    cluster: &Cluster,
    request: &BindRequest,
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<BindingSummary, InstanceError> {
    let (instance, id) = (request.instance_id.as_str(), request.binding_id.as_str());
    let mut summary = start_create(cluster, request).await?;
    progress.note(&format!("binding {id} of instance {instance}: {}", summary.state.name()));
    let deadline = Instant::now() + timeout;
    loop {
        match &summary.state {
            BindingState::Ready => return Ok(summary),
            BindingState::Failed { message } => {
                return Err(InstanceError::BindingFailed {
                    instance: instance.into(),
                    binding: id.into(),
                    message: message.clone(),
                })
            }
            BindingState::Deleting => {
                return Err(InstanceError::BindingFailed {
                    instance: instance.into(),
                    binding: id.into(),
                    message: "it is being deleted; try again when it is gone".into(),
                })
            }
            BindingState::Creating => {}
        }
        if Instant::now() >= deadline {
            let job = plan::bind_job_name(id);
            return Err(timed_out(timeout.as_secs(), format!("binding {id}"), format!("  Job {job}: not complete")));
        }
        tokio::time::sleep(POLL).await;
        summary = read(cluster, instance, id)
            .await?
            .ok_or_else(|| InstanceError::BindingNotFound { instance: instance.into(), binding: id.into() })?;
    }
}

/// [`start_delete`], then waits (at most `timeout`) until the unbind Job finished.
pub async fn delete(
    cluster: &Cluster,
    instance_id: &str,
    binding_id: &str,
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<BindingSummary, InstanceError> {
    let summary = start_delete(cluster, instance_id, binding_id).await?;
    progress.note(&format!("binding {binding_id} of instance {instance_id}: deleting"));
    let deadline = Instant::now() + timeout;
    loop {
        match read(cluster, instance_id, binding_id).await? {
            None => return Ok(summary),
            Some(BindingSummary { state: BindingState::Failed { message }, .. }) => {
                return Err(InstanceError::BindingFailed {
                    instance: instance_id.into(),
                    binding: binding_id.into(),
                    message,
                })
            }
            Some(_) if Instant::now() >= deadline => {
                let job = plan::unbind_job_name(binding_id);
                return Err(timed_out(
                    timeout.as_secs(),
                    format!("binding {binding_id} to be deleted"),
                    format!("  Job {job}: not complete"),
                ));
            }
            Some(_) => tokio::time::sleep(POLL).await,
        }
    }
}
