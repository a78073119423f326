//! What `upgrade-instance` and `configure-instance` share: change an existing instance's
//! version and/or parameters. The catalog's `upgrade_from` rules decide which upgrades are
//! allowed; generated secrets are kept; immutable parameters may not change; objects of the
//! old version that the new one lacks are removed (volume claims are kept); jobs run again.
//! The change is planned only while this process holds the instance's operation lock, from
//! the record as it is then, so a change made by another hsm just before is never reverted.
//!
//! The old version is planned from the SDL in force ([`in_force`]), and so is a change that
//! keeps the version; an upgrade plans the new version from the catalog and stores its SDL
//! as the one in force. Refusals (an upgrade the rules do not allow, an unknown version, a
//! changed immutable parameter) are found before anything is touched.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sdl::catalog::Catalog;

use super::get::{locations, Location};
use crate::cluster::Cluster;
use crate::error::HsmError;
use crate::instance::apply::{apply_plan, ApplyOptions};
use crate::instance::in_force;
use crate::instance::lock::{self, Held, Renewer};
use crate::instance::record::{self, Record, State};
use crate::instance::{InstanceError, RECORD_GRACE};
use crate::objects::{Kind, KubeObject};
use crate::plan::Plan;
use crate::profile::ClusterProfile;
use crate::progress::Progress;
use crate::readiness::Readiness;
use crate::request::{prepare_in_force, InstanceRequest};
use sdl::Idl;

/// A change to make.
#[derive(Debug, Clone)]
pub struct Change {
    /// `(product version, SDL version)` to move to; `None` keeps the version.
    pub target: Option<(String, Option<String>)>,
    /// Parameters to set.
    pub sets: Vec<(String, String)>,
    /// The instance definition to plan with in place of the recorded one (its versions are
    /// ignored: `target` says them) — the converger's, from the Instance's spec. With it, a
    /// change that changes nothing is not refused: it applies the plan again.
    pub idl: Option<Idl>,
    /// Wait until workloads are ready.
    pub wait: bool,
    /// Without waiting, read the workloads' readiness once after applying and record
    /// `running` when every one is ready (else `upgrading`), returning it in
    /// [`Outcome::components`] — as [`super::create::Options::readiness`].
    pub readiness: bool,
    /// How long the whole operation may take.
    pub timeout: Duration,
}

/// What an upgrade or reconfiguration did.
#[derive(Debug, Clone)]
pub struct Outcome {
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
    pub state: State,
    /// Where its public ports can be reached.
    pub locations: Vec<Location>,
    /// The product version it runs now.
    pub product_version: String,
    /// The SDL version in force now.
    pub sdl_version: String,
    /// Readiness of its workloads, when it was read after applying ([`Change::readiness`]).
    pub components: Vec<Readiness>,
    /// How long it took.
    pub elapsed: Duration,
}

/// Changes instance `id` as `change` says.
pub async fn run(
    cluster: &Cluster,
    catalog: &Catalog,
    id: &str,
    change: &Change,
    profile: &ClusterProfile,
    progress: &dyn Progress,
) -> Result<Outcome, InstanceError> {
    let started = Instant::now();
    let base = cluster;
    let cluster = &base.with_timeout(change.timeout);
    let namespace = cluster.namespace(id).await?.ok_or_else(|| InstanceError::NotFound(id.to_string()))?;
    let record = Record::from_namespace(&namespace).ok_or_else(|| InstanceError::NotOurs(id.to_string()))?;
    if record.terminating {
        return Err(InstanceError::Terminating(id.to_string()));
    }
    let me = lock::holder_identity();
    lock::take(cluster, &record, &me).await?;
    let planned = match plan_change(cluster, catalog, id, change, profile).await {
        Ok(planned) => planned,
        Err(error) => {
            lock::release_quietly(&base.with_timeout(RECORD_GRACE), id).await;
            return Err(error);
        }
    };
    let Planned { record, from, to, old_plan, plan, idl_annotation, store_sdl, product_version, sdl_version } = planned;

    let renewer = Renewer::start(base, id, &me, Held::Lease);
    let mut removed = Vec::new();
    let result = async {
        record::set_state(cluster, id, State::Upgrading).await?;
        // The new SDL in force first: once the namespace says the new version, it is there.
        if let Some(object) = &store_sdl {
            cluster.apply(object).await?;
        }
        let keep: BTreeSet<(Kind, &str)> = plan.objects().map(|o| (o.kind(), o.name())).collect();
        for old in old_plan.iter().flat_map(|p| p.objects()) {
            if keep.contains(&(old.kind(), old.name()))
                || matches!(old, KubeObject::Namespace(_) | KubeObject::PersistentVolumeClaim(_))
            {
                continue;
            }
            cluster.delete_object(old).await?;
            removed.push(format!("{}/{}", old.kind(), old.name()));
        }
        let jobs = plan.objects().filter(|o| matches!(o, KubeObject::Job(_))).map(|o| o.name().to_string()).collect();
        let apply =
            ApplyOptions { wait: change.wait, namespace_created: false, namespace_current: false, rerun_jobs: jobs };
        apply_plan(cluster, &plan, &apply, progress).await
    }
    .await;
    drop(renewer);
    let mut result = result;
    let mut components = Vec::new();
    if result.is_ok() && !change.wait && change.readiness {
        match super::create::workload_readiness(cluster, &plan).await {
            Ok(read) => components = read,
            Err(error) => result = Err(error),
        }
    }
    let (state, message) = match &result {
        Ok(_) if change.wait => (State::Running, None),
        Ok(_) if change.readiness && components.iter().all(|c| c.done) => (State::Running, None),
        Ok(_) if change.readiness => (State::Upgrading, Some("applied; waiting for workloads to be ready".to_string())),
        Ok(_) => (State::Upgrading, Some("applied without waiting (--no-wait)".to_string())),
        Err(error) => (State::Failed, Some(error.to_string())),
    };
    let before = Record { state: State::Upgrading, ..record };
    let recorder = if result.is_ok() { cluster.clone() } else { base.with_timeout(RECORD_GRACE) };
    let finished = record::finish(&recorder, id, Some(&before), state, message, &idl_annotation)
        .await
        .and(lock::release(&recorder, id).await);
    result?;
    finished?;
    Ok(Outcome {
        instance_id: id.to_string(),
        from,
        to,
        applied: plan.objects().count(),
        removed,
        state,
        locations: locations(cluster, id).await?,
        product_version,
        sdl_version,
        components,
        elapsed: started.elapsed(),
    })
}

/// A change planned under the operation lock (or, by [`crate::declared`], checked and planned
/// before an Instance is changed).
pub(crate) struct Planned {
    pub(crate) record: Record,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) old_plan: Option<Plan>,
    pub(crate) plan: Plan,
    pub(crate) idl_annotation: String,
    /// The new SDL in force, when it is not stored yet.
    pub(crate) store_sdl: Option<KubeObject>,
    pub(crate) product_version: String,
    pub(crate) sdl_version: String,
}

/// Reads instance `id`'s record (the caller holds its lock), checks the change against the
/// catalog's rules and plans the old and the new version.
pub(crate) async fn plan_change(
    cluster: &Cluster,
    catalog: &Catalog,
    id: &str,
    change: &Change,
    profile: &ClusterProfile,
) -> Result<Planned, InstanceError> {
    let namespace = cluster.namespace(id).await?.ok_or_else(|| InstanceError::NotFound(id.to_string()))?;
    let record = Record::from_namespace(&namespace).ok_or_else(|| InstanceError::NotOurs(id.to_string()))?;
    if record.terminating {
        return Err(InstanceError::Terminating(id.to_string()));
    }
    if record.state == State::Deleted {
        return Err(HsmError::Deleted(id.to_string()).into());
    }
    let service = catalog.service(&record.service_id).map_err(HsmError::from)?;
    let from = format!("{}/{}", record.product_version, record.sdl_version);
    let version = match &change.target {
        None => service.version(Some(&record.product_version), Some(&record.sdl_version)),
        Some((pv, sv)) => service.version(Some(pv), sv.as_deref()),
    }
    .map_err(HsmError::from)?;
    let to = format!("{}/{}", version.product_version, version.sdl_version);
    if from != to && !version.upgrades_from(&record.product_version, &record.sdl_version) {
        let allowed: Vec<String> = version.config.upgrade_from.iter().map(ToString::to_string).collect();
        return Err(HsmError::UpgradeRefused { service: service.id.clone(), to, from, allowed }.into());
    }
    if from == to && change.sets.is_empty() && change.idl.is_none() {
        return Err(HsmError::NothingToChange { id: id.to_string(), version: to }.into());
    }

    let stored = record::stored_values(cluster, &record).await?;
    let in_force = in_force::read(cluster, &record).await?;
    // A generator the future can carry across threads (the converger runs this on a
    // multi-threaded runtime).
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
    let mut idl = change.idl.clone().unwrap_or_else(|| record.idl.clone());
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
    // What runs: planned from the recorded definition and the SDL in force.
    let mut recorded = record.idl.clone();
    recorded.product_version = None;
    recorded.sdl_version = None;
    let old_request =
        InstanceRequest { idl: recorded, ..request(&record.product_version, &record.sdl_version, Vec::new()) };
    let old_plan = prepare_in_force(catalog, &old_request, in_force.as_ref(), &stored, profile, &mut rng)
        .and_then(|p| p.plan(profile))
        .ok();
    // At the same version, still the SDL in force; another version's comes from the catalog.
    let prepared = prepare_in_force(
        catalog,
        &request(&version.product_version, &version.sdl_version, change.sets.clone()),
        in_force.as_ref(),
        &stored,
        profile,
        &mut rng,
    )?;
    let plan = prepared.plan(profile)?;
    let idl_annotation = record::recorded_idl(&prepared.idl, &prepared.sdl);
    let store_sdl =
        if in_force.as_ref() == Some(&prepared.sdl) { None } else { in_force::config_map(&plan, &prepared.sdl) };
    Ok(Planned {
        record,
        from,
        to,
        old_plan,
        plan,
        idl_annotation,
        store_sdl,
        product_version: version.product_version.clone(),
        sdl_version: version.sdl_version.clone(),
    })
}
