//! `create-instance`: plans an instance, applies the plan in order, waits for jobs and
//! workloads and records the outcome, with the SDL it was planned from ([`in_force`]). Safe
//! to re-run after any interruption: on an existing instance it converges (and re-runs jobs
//! that failed), planned from the SDL stored with the instance, not the catalog's copy.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use sdl::catalog::Catalog;
use sdl::resolve::Stored;

use super::get::{locations, Location};
use crate::cluster::Cluster;
use crate::instance::apply::{apply_plan, namespace_is_current, ApplyOptions};
use crate::instance::in_force;
use crate::instance::lock::{self, Held, Renewer};
use crate::instance::record::{self, Record, State};
use crate::instance::{InstanceError, RECORD_GRACE};
use crate::labels;
use crate::objects::{Kind, KubeObject};
use crate::plan::Plan;
use crate::profile::ClusterProfile;
use crate::progress::Progress;
use crate::readiness::{self, Readiness};
use crate::request::{prepare, prepare_in_force, InstanceRequest};

/// Options of `create-instance`.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Wait until workloads are ready and jobs complete.
    pub wait: bool,
    /// How long the whole operation may take; every cluster call ends by then.
    pub timeout: Duration,
    /// Without waiting, read the workloads' readiness once after applying and record
    /// `running` when every one is ready (else `creating`), returning it in
    /// [`Outcome::components`]. The converger's way: it never blocks, and is called again.
    pub readiness: bool,
    /// Create what the plan grants: ServiceAccounts with their Roles, ClusterRoles and
    /// bindings. `false` (the converger) refuses a plan that has any with
    /// [`InstanceError::NeedsAdmin`] before touching the cluster.
    pub grants: bool,
}

/// What a create did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The instance id.
    pub instance_id: String,
    /// Objects applied.
    pub objects: usize,
    /// Whether the instance already existed (a re-run).
    pub existed: bool,
    /// The final state.
    pub state: State,
    /// Where its public ports can be reached.
    pub locations: Vec<Location>,
    /// The product version it runs.
    pub product_version: String,
    /// The SDL version in force.
    pub sdl_version: String,
    /// Readiness of its workloads, when it was read after applying ([`Options::readiness`]).
    pub components: Vec<Readiness>,
    /// How long it took.
    pub elapsed: Duration,
}

/// Creates (or converges) the instance `request` asks for.
///
/// An existing instance is planned only while this process holds its operation lock, from
/// the record as it is then: two operations never apply plans made from the same old record.
pub async fn run(
    cluster: &Cluster,
    catalog: &Catalog,
    request: &InstanceRequest,
    profile: &ClusterProfile,
    options: Options,
    progress: &dyn Progress,
) -> Result<Outcome, InstanceError> {
    let started = Instant::now();
    let me = lock::holder_identity();
    let base = cluster;
    let cluster = &base.with_timeout(options.timeout);
    let mut request = request.clone();
    // A generator the future can carry across threads (the converger runs this on a
    // multi-threaded runtime); seeded from the OS like `rand::rng()`.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
    let id = crate::request::assign_instance_id(catalog, &mut request, &mut rng)?;

    let (existing, plan, idl_annotation, namespace_current, store_sdl) = match cluster.namespace(&id).await? {
        Some(namespace) => {
            let record = existing_record(&namespace, &id, &mut request)?;
            lock::take(cluster, &record, &me).await?;
            // Under the lock: the record as it is now, and a plan made from it.
            let planned = async {
                let namespace = cluster.namespace(&id).await?.ok_or_else(|| InstanceError::NotFound(id.clone()))?;
                let record = existing_record(&namespace, &id, &mut request)?;
                let stored = record::stored_values(cluster, &record).await?;
                let sdl = in_force::read(cluster, &record).await?;
                let prepared = prepare_in_force(catalog, &request, sdl.as_ref(), &stored, profile, &mut rng)?;
                let plan = prepared.plan(profile)?;
                check_grants(&plan, options.grants)?;
                let idl_annotation = record::recorded_idl(&prepared.idl, &prepared.sdl);
                let current = namespace_is_current(&namespace, &plan);
                // Stored when it was not (an instance older than the stored SDL, or one whose
                // copy could not be read).
                let store =
                    if sdl.as_ref() == Some(&prepared.sdl) { None } else { in_force::config_map(&plan, &prepared.sdl) };
                Ok::<_, InstanceError>((record, plan, idl_annotation, current, store))
            }
            .await;
            match planned {
                Ok((record, plan, idl_annotation, current, store)) => {
                    (Some(record), plan, idl_annotation, current, store)
                }
                Err(error) => {
                    lock::release_quietly(&base.with_timeout(RECORD_GRACE), &id).await;
                    return Err(error);
                }
            }
        }
        None => {
            let prepared = prepare(catalog, &request, &Stored::default(), profile, &mut rng)?;
            let plan = prepared.plan(profile)?;
            check_grants(&plan, options.grants)?;
            let idl_annotation = record::recorded_idl(&prepared.idl, &prepared.sdl);
            create_namespace(cluster, &plan, &me, &idl_annotation, &mut rng).await?;
            let store = in_force::config_map(&plan, &prepared.sdl);
            (None, plan, idl_annotation, false, store)
        }
    };

    let renewer = Renewer::start(base, &id, &me, if existing.is_some() { Held::Lease } else { Held::Annotation });
    let apply = ApplyOptions {
        wait: options.wait,
        namespace_created: existing.is_none(),
        namespace_current,
        rerun_jobs: Vec::new(),
    };
    let mut result = match &store_sdl {
        Some(object) => cluster.apply(object).await.map(drop).map_err(InstanceError::from),
        None => Ok(()),
    };
    if result.is_ok() {
        result = apply_plan(cluster, &plan, &apply, progress).await;
    }
    drop(renewer);
    let mut components = Vec::new();
    if result.is_ok() && !options.wait && options.readiness {
        match workload_readiness(cluster, &plan).await {
            Ok(read) => components = read,
            Err(error) => result = Err(error),
        }
    }
    let (state, message) = match &result {
        Ok(_) if options.wait => (State::Running, None),
        Ok(_) if options.readiness && components.iter().all(|c| c.done) => (State::Running, None),
        // An upgrade applied without waiting stays one until its workloads are ready.
        Ok(_) if options.readiness => (
            if existing.as_ref().is_some_and(|r| r.state == State::Upgrading) {
                State::Upgrading
            } else {
                State::Creating
            },
            Some("applied; waiting for workloads to be ready".to_string()),
        ),
        Ok(_) => (State::Creating, Some("applied without waiting (--no-wait)".to_string())),
        Err(error) => (State::Failed, Some(error.to_string())),
    };
    let recorder = if result.is_ok() { cluster.clone() } else { base.with_timeout(RECORD_GRACE) };
    let mut finished = record::finish(&recorder, &id, existing.as_ref(), state, message, &idl_annotation).await;
    if existing.is_some() {
        finished = finished.and(lock::release(&recorder, &id).await);
    }
    result?;
    finished?;
    let version = |label: &str| {
        plan.objects().next().and_then(|n| n.metadata().labels.as_ref()?.get(label).cloned()).unwrap_or_default()
    };
    Ok(Outcome {
        product_version: version(labels::VERSION),
        sdl_version: version(labels::SDL_VERSION),
        components,
        objects: plan.objects().count(),
        existed: existing.is_some(),
        state,
        locations: locations(cluster, &id).await?,
        instance_id: id,
        elapsed: started.elapsed(),
    })
}

/// Refuses `plan` when it gives a component a ServiceAccount and `grants` is false.
pub fn check_grants(plan: &Plan, grants: bool) -> Result<(), InstanceError> {
    if grants {
        return Ok(());
    }
    let components: Vec<&str> =
        plan.objects().filter(|o| matches!(o, KubeObject::ServiceAccount(_))).map(KubeObject::name).collect();
    if components.is_empty() {
        return Ok(());
    }
    Err(InstanceError::NeedsAdmin { id: plan.instance_id.clone(), components: components.join(", ") })
}

/// Readiness of the plan's Deployments and StatefulSets as they are now, by name.
pub(crate) async fn workload_readiness(cluster: &Cluster, plan: &Plan) -> Result<Vec<Readiness>, InstanceError> {
    let namespace = &plan.instance_id;
    let planned =
        |kind: Kind| -> BTreeSet<&str> { plan.objects().filter(|o| o.kind() == kind).map(KubeObject::name).collect() };
    let mut out = Vec::new();
    let deployments = planned(Kind::Deployment);
    if !deployments.is_empty() {
        out.extend(cluster.list::<Deployment>(namespace, None).await?.iter().map(readiness::deployment));
    }
    let stateful_sets = planned(Kind::StatefulSet);
    if !stateful_sets.is_empty() {
        out.extend(cluster.list::<StatefulSet>(namespace, None).await?.iter().map(readiness::stateful_set));
    }
    out.retain(|r| match r.kind {
        Kind::Deployment => deployments.contains(r.name.as_str()),
        _ => stateful_sets.contains(r.name.as_str()),
    });
    // A planned workload not (yet) in the list is not ready.
    for (kind, names) in [(Kind::Deployment, &deployments), (Kind::StatefulSet, &stateful_sets)] {
        let missing: Vec<&str> =
            names.iter().copied().filter(|n| !out.iter().any(|r| r.kind == kind && r.name == *n)).collect();
        out.extend(missing.into_iter().map(|name| Readiness::unknown(kind, namespace, name)));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.kind.cmp(&b.kind)));
    Ok(out)
}

/// Creates the plan's namespace as the record of a first creation, holding the operation.
/// When the reply is lost and a retry finds the name taken, the namespace that carries this
/// operation's id is this operation's own.
async fn create_namespace(
    cluster: &Cluster,
    plan: &Plan,
    me: &str,
    idl_annotation: &str,
    rng: &mut (impl rand::Rng + rand::CryptoRng),
) -> Result<(), InstanceError> {
    let Some(KubeObject::Namespace(planned)) = plan.objects().next() else {
        unreachable!("a plan starts with its namespace")
    };
    let operation_id = sdl::generate::password(rng, 16, "0123456789abcdef");
    let mut namespace = planned.clone();
    let now = record::rfc3339_now();
    namespace.metadata.annotations.get_or_insert_with(BTreeMap::new).extend([
        (record::STATE.to_string(), State::Creating.to_string()),
        (record::OPERATION.to_string(), format!("{me} {}", record::unix_now())),
        (record::OPERATION_ID.to_string(), operation_id.clone()),
        (record::IDL.to_string(), idl_annotation.to_string()),
        (record::CREATED.to_string(), now.clone()),
        (record::UPDATED.to_string(), now),
    ]);
    if cluster.create_namespace(&namespace).await?.is_some() {
        return Ok(());
    }
    let id = &plan.instance_id;
    let ours = cluster
        .namespace(id)
        .await?
        .and_then(|n| Record::from_namespace(&n))
        .is_some_and(|r| r.operation_id.as_deref() == Some(operation_id.as_str()));
    if !ours {
        return Err(InstanceError::Exists {
            id: id.clone(),
            existing: format!("{} (created by another hsm just now)", plan.service_id),
            hint: "",
        });
    }
    tracing::info!(instance = %id, "the namespace was created by this operation (its reply was lost)");
    Ok(())
}

/// The record of an existing instance `id` that `request` asks to create again: refused when
/// hsm does not manage the namespace, it is being deleted, or it holds another service or
/// version. Fills in the request's versions from the record.
fn existing_record(
    namespace: &k8s_openapi::api::core::v1::Namespace,
    id: &str,
    request: &mut InstanceRequest,
) -> Result<Record, InstanceError> {
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
