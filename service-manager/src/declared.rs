//! `hsm` on top of the converger: where the `Instance` definition is installed and a converger
//! holds its Lease, `create-instance`, `upgrade-instance`, `configure-instance` and
//! `delete-instance` write the [`Instance`] and follow its status instead of applying the plan
//! themselves; `list-instances` and `get-instance` read Instances as well as records.
//!
//! The decisions are pure and tested here: whether a converger runs ([`converger`]), which way
//! a command goes ([`mode`]), the spec a request becomes with its secret values split off into a
//! Secret ([`spec_for`]), what a status means to a command that waits on it ([`follow`]), and a
//! record for an Instance that has none yet ([`record_of`], [`merge`]). The Kubernetes calls
//! (reading the definition and the Lease, writing the Secret and the Instance, polling its
//! status, deleting it) are the `async` functions at the end. The binary only chooses.
//!
//! Secret values never enter an Instance: hsm writes them into a Secret of its own,
//! [`secret_name`] in the Lease's namespace (labelled with the instance, owned by the Instance
//! so it goes with it), and references them in `spec.secretParameters`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use sdl::catalog::Catalog;
use sdl::resolve::Stored;
use serde_json::json;

use crate::actions::get::{InstanceDetail, Location};
use crate::actions::{change, create, delete};
use crate::cluster::{Cluster, ClusterError};
use crate::controller::leader::LEASE_NAME;
use crate::error::HsmError;
use crate::instance::record::{self, Record, State};
use crate::instance::InstanceError;
use crate::labels;
use crate::objects::Kind;
use crate::profile::ClusterProfile;
use crate::progress::Progress;
use crate::readiness::Readiness;
use crate::request::{prepare, InstanceRequest};
use crate::resource::{Instance, InstanceSpec, InstanceState, InstanceStatus, SecretKeyRef};
use crate::wait::WaitError;

/// How a command that changes an instance is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Choice {
    /// Through the Instance when a converger runs, else directly.
    #[default]
    Auto,
    /// Always directly, as without a converger.
    Direct,
    /// Always through the Instance (waits for a converger to carry it out).
    Converger,
}

/// The way chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// hsm applies the plan itself; why, for the one line on stderr.
    Direct(String),
    /// hsm writes the Instance; the converger holding the Lease carries it out.
    Declared(String),
}

/// Whether a converger runs, from the Instance definition (`None`: not installed) and the
/// controller Lease's spec (`None`: no Lease) at `now` (unix seconds): the holder, or why not.
pub fn converger(
    crd: Option<&CustomResourceDefinition>,
    lease: Option<&LeaseSpec>,
    now: i64,
) -> Result<String, String> {
    let Some(crd) = crd else { return Err(NOT_INSTALLED.into()) };
    let established = crd
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Established" && c.status == "True"));
    if !established {
        return Err("the Instance resource is not established yet".into());
    }
    let Some(lease) = lease else { return Err(format!("no converger has ever held the Lease {LEASE_NAME}")) };
    let Some(holder) = lease.holder_identity.clone().filter(|h| !h.is_empty()) else {
        return Err(format!("no converger holds the Lease {LEASE_NAME}"));
    };
    let renewed = lease.renew_time.as_ref().or(lease.acquire_time.as_ref()).map(|t| t.0.as_second()).unwrap_or(0);
    let ttl = i64::from(lease.lease_duration_seconds.unwrap_or(15).max(1));
    if now > renewed + ttl {
        return Err(format!("the converger {holder} has not renewed the Lease {LEASE_NAME} for {}s", now - renewed));
    }
    Ok(holder)
}

/// The way `choice` goes, given what [`converger`] found.
pub fn mode(choice: Choice, found: Result<String, String>) -> Mode {
    match (choice, found) {
        (Choice::Direct, _) => Mode::Direct("--mode direct".into()),
        (Choice::Converger, Ok(holder)) => Mode::Declared(holder),
        (Choice::Converger, Err(why)) => Mode::Declared(format!("--mode converger, although {why}")),
        (Choice::Auto, Ok(holder)) => Mode::Declared(holder),
        (Choice::Auto, Err(why)) => Mode::Direct(why),
    }
}

/// The line on stderr about `mode` chosen for `choice`: only when hsm applies a change itself
/// although the Instance resource is installed (a converger that stopped, or one not found).
pub fn note(choice: Choice, mode: &Mode) -> Option<String> {
    match (choice, mode) {
        (Choice::Auto, Mode::Direct(why)) if why != NOT_INSTALLED && !why.starts_with(UNREADABLE) => {
            Some(format!("{why}: hsm applies the change itself"))
        }
        (Choice::Converger, Mode::Declared(why)) if why.starts_with("--mode") => Some(why.clone()),
        _ => None,
    }
}

/// Why not, when the Instance resource is not installed (the usual case without a converger:
/// nothing is said).
pub const NOT_INSTALLED: &str = "the Instance resource is not installed";

/// The start of why not, when the definition cannot be read (no access, or no cluster: the
/// direct way then says what is wrong, so nothing more is said).
pub const UNREADABLE: &str = "cannot read the Instance resource definition";

/// The Secret that holds the secret values hsm was given for instance `id`.
pub fn secret_name(id: &str) -> String {
    format!("hsm-instance-{id}")
}

/// The Instance spec for `request` (checked and prepared as `prepared`), with the values of its
/// secret parameters (as the SDL marks them) split off: each becomes a reference to key
/// `<name>` (with `suffix`, so a changed value changes the spec) of `secret` in `namespace`.
/// `Err` names what an Instance cannot say (then hsm does it directly).
pub fn spec_for(
    prepared: &crate::request::Prepared,
    namespace: &str,
    secret: &str,
    suffix: &str,
) -> Result<(InstanceSpec, BTreeMap<String, String>), String> {
    let idl = &prepared.idl;
    if idl.description.is_some() || idl.name.is_some() || idl.vendor.is_some() {
        return Err(
            "the instance definition has a name, vendor or description, which an Instance does not carry".into()
        );
    }
    let mut scaling = BTreeMap::new();
    for s in &idl.scaling {
        if s.min_instances != s.max_instances {
            return Err(format!("component {} is scaled to a range, which an Instance does not carry", s.component));
        }
        scaling.insert(s.component.clone(), s.min_instances);
    }
    let mut spec = InstanceSpec {
        service_id: prepared.service.id.clone(),
        product_version: Some(prepared.version.product_version.clone()),
        sdl_version: Some(prepared.version.sdl_version.clone()),
        scaling,
        labels: idl.labels.clone(),
        ..InstanceSpec::default()
    };
    let values = given_values(prepared);
    let (secrets, plain) = split(&prepared.sdl, values);
    spec.parameters = plain;
    spec.secret_parameters = references(secrets.keys(), namespace, secret, suffix);
    Ok((spec, secrets))
}

/// The values given for `prepared` (instance definition and `--set`), by name.
fn given_values(prepared: &crate::request::Prepared) -> BTreeMap<String, String> {
    prepared.idl.parameters.iter().map(|p| (p.name.clone(), p.value.clone())).collect()
}

/// `values` split into the SDL's secret parameters and the rest.
pub fn split(sdl: &sdl::Sdl, values: BTreeMap<String, String>) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    values.into_iter().partition(|(name, _)| sdl.parameter(name).is_some_and(|p| p.secret))
}

/// The Secret key of parameter `name` written with `suffix`.
pub fn secret_key(name: &str, suffix: &str) -> String {
    format!("{name}.{suffix}")
}

fn references<'a>(
    names: impl Iterator<Item = &'a String>,
    namespace: &str,
    secret: &str,
    suffix: &str,
) -> BTreeMap<String, SecretKeyRef> {
    names
        .map(|name| {
            let reference =
                SecretKeyRef { namespace: namespace.into(), name: secret.into(), key: secret_key(name, suffix) };
            (name.clone(), reference)
        })
        .collect()
}

/// Where an Instance is, for a command waiting on it.
#[derive(Debug, Clone, PartialEq)]
pub enum Followed {
    /// The converger has not looked at this generation yet.
    Pending,
    /// Applied (this generation); not every workload is ready yet.
    Progressing(InstanceState, Vec<Readiness>),
    /// This generation runs: every workload is ready.
    Running(Vec<Readiness>),
    /// This generation cannot be carried out: the Ready condition's reason and message.
    Failed(String, String),
}

/// What `status` says about `generation` of Instance `id`.
pub fn follow(id: &str, status: Option<&InstanceStatus>, generation: Option<i64>) -> Followed {
    let Some(status) = status else { return Followed::Pending };
    if status.observed_generation.unwrap_or(0) < generation.unwrap_or(1) {
        return Followed::Pending;
    }
    let components = components(id, status);
    match status.state {
        Some(InstanceState::Running) => Followed::Running(components),
        Some(InstanceState::Failed) => {
            let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
            Followed::Failed(
                ready.map(|c| c.reason.clone()).unwrap_or_else(|| "Failed".into()),
                ready.map(|c| c.message.clone()).unwrap_or_default(),
            )
        }
        Some(state) => Followed::Progressing(state, components),
        None => Followed::Pending,
    }
}

/// The status's components as hsm's progress displays take them.
pub fn components(id: &str, status: &InstanceStatus) -> Vec<Readiness> {
    status
        .components
        .iter()
        .map(|c| {
            let kind = if c.kind == "Deployment" { Kind::Deployment } else { Kind::StatefulSet };
            Readiness {
                ready: c.ready,
                desired: c.desired,
                done: c.ready >= c.desired,
                ..Readiness::unknown(kind, id, &c.name)
            }
        })
        .collect()
}

/// What a timeout names as not done when the Instance was last seen as `last`.
pub fn not_done(last: &Followed) -> String {
    match last {
        Followed::Pending => "  the converger has not reported on this change yet (is it running?)".to_string(),
        Followed::Progressing(_, components) => components
            .iter()
            .filter(|c| !c.done)
            .map(|c| format!("  {} {}: {}/{} ready", c.kind, c.name, c.ready, c.desired))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The exit code of a failure the converger reported with `reason`: what hsm exits with today
/// for the same failure — 2 when the input is at fault, 1 for the rest.
pub fn exit_code(reason: &str) -> u8 {
    match reason {
        "InvalidSpec" | "UpgradeRefused" => 2,
        _ => 1,
    }
}

/// The status's public locations as hsm prints them.
pub fn locations(status: Option<&InstanceStatus>) -> Vec<Location> {
    status
        .map(|s| {
            s.service_locations
                .iter()
                .map(|l| Location {
                    service_name: l.service.clone(),
                    port_name: l.port_name.clone(),
                    public_location: l.address.clone(),
                    public_port: l.port,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A record for an Instance whose instance has none (yet): what it declares and its state.
pub fn record_of(instance: &Instance) -> Record {
    let status = instance.status.as_ref();
    let state = match status.and_then(|s| s.state) {
        Some(InstanceState::Creating) | None => State::Creating,
        Some(InstanceState::Running) | Some(InstanceState::Degraded) => State::Running,
        Some(InstanceState::Upgrading) => State::Upgrading,
        Some(InstanceState::Failed) => State::Failed,
        Some(InstanceState::Deleting) => State::Deleting,
    };
    let message = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready")).map(|c| c.message.clone());
    Record {
        instance_id: instance.name_any(),
        service_id: instance.spec.service_id.clone(),
        product_version: status
            .and_then(|s| s.product_version.clone())
            .or(instance.spec.product_version.clone())
            .unwrap_or_default(),
        sdl_version: status
            .and_then(|s| s.sdl_version.clone())
            .or(instance.spec.sdl_version.clone())
            .unwrap_or_default(),
        state,
        created: instance.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()).unwrap_or_default(),
        updated: None,
        message: message.filter(|m| !m.is_empty()),
        operation: None,
        idl: sdl::Idl::default(),
        idl_error: None,
        operation_id: None,
        resource_version: String::new(),
        terminating: instance.metadata.deletion_timestamp.is_some(),
    }
}

/// Every instance: the records, with a record for each Instance that has none; an instance
/// whose Instance failed shows the Instance's failure.
pub fn merge<'a>(mut records: Vec<Record>, instances: impl IntoIterator<Item = &'a Instance>) -> Vec<Record> {
    // By id, so that merging N Instances into N records stays linear (10,000 of each would
    // otherwise be 50 million comparisons on every list).
    let mut by_id: std::collections::HashMap<String, usize> =
        records.iter().enumerate().map(|(i, r)| (r.instance_id.clone(), i)).collect();
    for instance in instances {
        let declared = record_of(instance);
        match by_id.get(&declared.instance_id) {
            Some(&i) if declared.state == State::Failed => {
                records[i].state = State::Failed;
                records[i].message = declared.message;
            }
            Some(_) => {}
            None => {
                by_id.insert(declared.instance_id.clone(), records.len());
                records.push(declared);
            }
        }
    }
    records.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    records
}

// ---- the edge -------------------------------------------------------------------------------

/// Whether `error` is the API server's "not found".
fn not_found(error: &ClusterError) -> bool {
    matches!(error, ClusterError::Api { code: 404, .. })
}

/// Whether a converger runs on `cluster` with its Lease in `lease_namespace`: `Ok(holder)`, or
/// `Err(why not)` — a definition or Lease the API server refuses to show counts as none. A
/// server that cannot be reached is the outer error: the direct way would fail the same, so
/// hsm stops at once rather than try it for another `--timeout`.
pub async fn detect(cluster: &Cluster, lease_namespace: &str) -> Result<Result<String, String>, ClusterError> {
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client());
    let crd = match cluster.call("get the Instance resource definition", || crds.get_opt("instances.stratus.io")).await
    {
        Ok(crd) => crd,
        Err(error @ ClusterError::Api { .. }) => return Ok(Err(format!("{UNREADABLE}: {error}"))),
        Err(error) => return Err(error),
    };
    if crd.is_none() {
        return Ok(converger(None, None, 0));
    }
    let leases: Api<Lease> = Api::namespaced(cluster.client(), lease_namespace);
    let lease =
        match cluster.call(&format!("get Lease {lease_namespace}/{LEASE_NAME}"), || leases.get_opt(LEASE_NAME)).await {
            Ok(lease) => lease,
            Err(error @ ClusterError::Api { .. }) => {
                return Ok(Err(format!("cannot read the Lease {lease_namespace}/{LEASE_NAME}: {error}")))
            }
            Err(error) => return Err(error),
        };
    Ok(converger(crd.as_ref(), lease.and_then(|l| l.spec).as_ref(), k8s_openapi::jiff::Timestamp::now().as_second()))
}

/// The Instance named `id`, if there is one (none when the resource is not installed).
pub async fn instance(cluster: &Cluster, id: &str) -> Result<Option<Instance>, InstanceError> {
    let api: Api<Instance> = Api::all(cluster.client());
    match cluster.call(&format!("get Instance {id}"), || api.get_opt(id)).await {
        // No such resource: the definition is not installed.
        Err(error) if not_found(&error) => Ok(None),
        other => Ok(other?),
    }
}

/// Every Instance (none when the resource is not installed or cannot be listed).
async fn instances(cluster: &Cluster) -> Vec<Instance> {
    let api: Api<Instance> = Api::all(cluster.client());
    let params = Default::default();
    cluster.call("list Instances", || api.list(&params)).await.map(|l| l.items).unwrap_or_default()
}

/// `list-instances`: the records merged with the Instances.
pub async fn list(cluster: &Cluster) -> Result<Vec<Record>, InstanceError> {
    let records = crate::actions::list::run(cluster).await?;
    Ok(merge(records, &instances(cluster).await))
}

/// `get-instance`: the record's detail, or the Instance's when it has no record yet; an
/// Instance that failed says so.
pub async fn get(cluster: &Cluster, id: &str) -> Result<InstanceDetail, InstanceError> {
    match crate::actions::get::run(cluster, id).await {
        Ok(mut detail) => {
            if let Some(declared) = instance(cluster, id).await.ok().flatten() {
                detail.available_upgrades = upgrades(&declared);
                detail.record = merge(vec![detail.record], &[declared]).remove(0);
            }
            Ok(detail)
        }
        Err(InstanceError::NotFound(_)) => {
            let Some(declared) = instance(cluster, id).await? else { return Err(InstanceError::NotFound(id.into())) };
            Ok(InstanceDetail {
                record: record_of(&declared),
                parameters: declared.spec.parameters.clone(),
                components: declared.status.as_ref().map(|s| components(id, s)).unwrap_or_default(),
                service_locations: locations(declared.status.as_ref()),
                volume_claims: Vec::new(),
                available_upgrades: upgrades(&declared),
            })
        }
        Err(error) => Err(error),
    }
}

/// The upgrades the converger found for `instance` (its status).
fn upgrades(instance: &Instance) -> Vec<String> {
    instance.status.as_ref().map(|s| s.available_upgrades.clone()).unwrap_or_default()
}

/// Where hsm keeps what it writes for the converger.
#[derive(Debug, Clone)]
pub struct Place {
    /// The namespace of the converger's Lease; hsm's Secrets of secret values go there.
    pub namespace: String,
}

/// Writes `values` (parameter name → value) under keys with `suffix` into the Secret of
/// instance `id`, keeping its other keys (the spec may still refer to them).
async fn write_secret(
    cluster: &Cluster,
    place: &Place,
    id: &str,
    values: &BTreeMap<String, String>,
    suffix: &str,
) -> Result<(), InstanceError> {
    let post = PostParams::default();
    let params = PatchParams::default();
    if values.is_empty() {
        return Ok(());
    }
    let api: Api<Secret> = Api::namespaced(cluster.client(), &place.namespace);
    let name = secret_name(id);
    let data: BTreeMap<String, ByteString> =
        values.iter().map(|(k, v)| (secret_key(k, suffix), ByteString(v.clone().into_bytes()))).collect();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(BTreeMap::from([
                (labels::MANAGED_BY.to_string(), labels::MANAGER.to_string()),
                (labels::INSTANCE.to_string(), id.to_string()),
            ])),
            ..ObjectMeta::default()
        },
        data: Some(data.clone()),
        type_: Some("Opaque".into()),
        ..Secret::default()
    };
    let created =
        cluster.call(&format!("create Secret {}/{name}", place.namespace), || api.create(&post, &secret)).await;
    match created {
        Ok(_) => Ok(()),
        Err(ClusterError::Api { code: 409, .. }) => {
            let patch = Patch::Merge(json!({ "data": data }));
            let action = format!("update Secret {}/{name}", place.namespace);
            cluster.call(&action, || api.patch(&name, &params, &patch)).await?;
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// Makes the Secret of instance `id` owned by `instance` (so it goes with it) and drops the
/// keys its spec no longer refers to.
async fn settle_secret(cluster: &Cluster, place: &Place, instance: &Instance) -> Result<(), InstanceError> {
    let params = PatchParams::default();
    let id = instance.name_any();
    let api: Api<Secret> = Api::namespaced(cluster.client(), &place.namespace);
    let name = secret_name(&id);
    let Some(secret) = cluster.call(&format!("get Secret {}/{name}", place.namespace), || api.get_opt(&name)).await?
    else {
        return Ok(());
    };
    let used: Vec<&str> = instance
        .spec
        .secret_parameters
        .values()
        .filter(|r| r.namespace == place.namespace && r.name == name)
        .map(|r| r.key.as_str())
        .collect();
    let stale: BTreeMap<String, Option<()>> = secret
        .data
        .iter()
        .flat_map(|d| d.keys())
        .filter(|k| !used.contains(&k.as_str()))
        .map(|k| (k.clone(), None))
        .collect();
    let owner = OwnerReference {
        api_version: Instance::api_version(&()).into(),
        kind: Instance::kind(&()).into(),
        name: id.clone(),
        uid: instance.uid().unwrap_or_default(),
        ..OwnerReference::default()
    };
    let patch = Patch::Merge(json!({ "metadata": { "ownerReferences": [owner] }, "data": stale }));
    let action = format!("update Secret {}/{name}", place.namespace);
    cluster.call(&action, || api.patch(&name, &params, &patch)).await?;
    Ok(())
}

/// How often an Instance's status is looked at.
const POLL: Duration = Duration::from_millis(300);

fn random_suffix() -> String {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
    sdl::generate::password(&mut rng, 6, "0123456789abcdefghijklmnopqrstuvwxyz")
}

/// Polls Instance `id` until generation `generation` runs (or, without `wait`, has been
/// applied), reporting its components to `progress`. The final status.
async fn follow_instance(
    cluster: &Cluster,
    id: &str,
    generation: Option<i64>,
    wait: bool,
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<InstanceStatus, InstanceError> {
    let api: Api<Instance> = Api::all(cluster.client());
    let started = Instant::now();
    let mut last_state = None;
    loop {
        let current = cluster.call(&format!("get Instance {id}"), || api.get_opt(id)).await?;
        let Some(current) = current else { return Err(InstanceError::NotFound(id.to_string())) };
        let followed = follow(id, current.status.as_ref(), generation);
        let shown = match &followed {
            Followed::Progressing(state, components) => Some((*state, components)),
            Followed::Running(components) => Some((InstanceState::Running, components)),
            _ => None,
        };
        if let Some((state, components)) = shown {
            if last_state != Some(state) {
                progress.note(&format!("Instance {id}: {}", state_name(state)));
                last_state = Some(state);
            }
            progress.waiting(components);
        }
        let last = match followed {
            Followed::Running(_) => return Ok(current.status.unwrap_or_default()),
            Followed::Progressing(..) if !wait => return Ok(current.status.unwrap_or_default()),
            Followed::Failed(reason, message) => {
                return Err(InstanceError::Declared { id: id.to_string(), code: exit_code(&reason), reason, message })
            }
            other => other,
        };
        if started.elapsed() + POLL >= timeout {
            let (what, details) = (format!("Instance {id} to run"), not_done(&last));
            return Err(WaitError::Timeout { seconds: timeout.as_secs(), what, details }.into());
        }
        tokio::time::sleep(POLL).await;
    }
}

fn state_name(state: InstanceState) -> &'static str {
    match state {
        InstanceState::Creating => "creating",
        InstanceState::Running => "running",
        InstanceState::Degraded => "degraded",
        InstanceState::Upgrading => "upgrading",
        InstanceState::Failed => "failed",
        InstanceState::Deleting => "deleting",
    }
}

/// How a declared command waits.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    /// Until it runs (else until the converger has applied it).
    pub wait: bool,
    /// How long in all.
    pub timeout: Duration,
}

/// What [`write_create`] wrote.
#[derive(Debug, Clone)]
pub struct Created {
    /// The Instance as written (no status yet for a new one).
    pub instance: Instance,
    /// Whether the instance or its Instance existed before (a re-run).
    pub existed: bool,
    /// Objects in the plan the converger applies.
    pub objects: usize,
}

/// `create-instance` through an Instance: checks and plans locally (bad input is refused
/// before anything is written), writes the Secret of secret values and the Instance (or
/// updates the Instance of the same name), and follows it. `Err(Ok(why))` when the request
/// cannot be said as an Instance (then the caller applies it directly).
pub async fn create(
    cluster: &Cluster,
    catalog: &Catalog,
    request: &InstanceRequest,
    profile: &ClusterProfile,
    place: &Place,
    wait: Wait,
    progress: &dyn Progress,
) -> Result<Result<create::Outcome, String>, InstanceError> {
    let started = Instant::now();
    let written = match write_create(cluster, catalog, request, profile, place).await? {
        Ok(written) => written,
        Err(why) => return Ok(Err(why)),
    };
    let id = written.instance.name_any();
    progress.note(&format!("Instance {id} written; the converger applies it"));
    let generation = written.instance.metadata.generation;
    let status = follow_instance(cluster, &id, generation, wait.wait, wait.timeout, progress).await?;
    let state = if status.state == Some(InstanceState::Running) { State::Running } else { State::Creating };
    Ok(Ok(create::Outcome {
        instance_id: id.clone(),
        objects: written.objects,
        existed: written.existed,
        state,
        locations: locations(Some(&status)),
        product_version: status.product_version.clone().unwrap_or_default(),
        sdl_version: status.sdl_version.clone().unwrap_or_default(),
        components: components(&id, &status),
        elapsed: started.elapsed(),
    }))
}

/// The writing half of [`create`], without following: checks and plans locally (bad input is
/// refused before anything is written), then writes the Secret of secret values and the
/// Instance (or updates the Instance of the same name). `Err(Ok(why))` when the request cannot
/// be said as an Instance. The HSM server answers with what it wrote.
pub async fn write_create(
    cluster: &Cluster,
    catalog: &Catalog,
    request: &InstanceRequest,
    profile: &ClusterProfile,
    place: &Place,
) -> Result<Result<Created, String>, InstanceError> {
    write_create_marked(cluster, catalog, request, profile, place, &Marks::default()).await
}

/// Labels and annotations written on an `Instance` itself (not on what it creates): who asked
/// for it, e.g. the Open Service Broker's instance id and platform context. The converger
/// ignores them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    /// Labels (keys and values already checked).
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
}

/// [`write_create`] with `marks` on the Instance, in the same write that creates it (or
/// updates the Instance of the same name).
pub async fn write_create_marked(
    cluster: &Cluster,
    catalog: &Catalog,
    request: &InstanceRequest,
    profile: &ClusterProfile,
    place: &Place,
    marks: &Marks,
) -> Result<Result<Created, String>, InstanceError> {
    let post = PostParams::default();
    let params = PatchParams::default();
    let mut request = request.clone();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
    let id = crate::request::assign_instance_id(catalog, &mut request, &mut rng)?;
    // The record, if any, gives the values stored with the instance (a re-run converges).
    // As the direct way, before anything is written: a namespace hsm does not manage, or one
    // being deleted, is refused.
    let record = match cluster.namespace(&id).await? {
        None => None,
        Some(namespace) => {
            let record = Record::from_namespace(&namespace).ok_or_else(|| InstanceError::NotOurs(id.clone()))?;
            if record.terminating {
                return Err(InstanceError::Terminating(id.clone()));
            }
            Some(record)
        }
    };
    let stored = match &record {
        Some(record) => {
            // As the direct way: another service or version is refused, not changed.
            let asked = request.product_version.clone().or(request.idl.product_version.clone());
            if record.service_id != request.service_id || asked.is_some_and(|v| v != record.product_version) {
                return Err(InstanceError::Exists {
                    id: id.clone(),
                    existing: format!("{} {}/{}", record.service_id, record.product_version, record.sdl_version),
                    hint: "; use upgrade-instance to change its version, or choose another instance id",
                });
            }
            request.product_version = Some(record.product_version.clone());
            request.sdl_version = Some(record.sdl_version.clone());
            record::stored_values(cluster, record).await?
        }
        None => Stored::default(),
    };
    let prepared = prepare(catalog, &request, &stored, profile, &mut rng)?;
    let plan = prepared.plan(profile)?;
    // The converger grants no permissions (`NeedsClusterAdmin`): a service that gives a
    // component a ServiceAccount is applied by hsm itself, with the caller's rights.
    if let Err(InstanceError::NeedsAdmin { components, .. }) = create::check_grants(&plan, false) {
        return Ok(Err(format!(
            "the service gives component(s) {components} Kubernetes API permissions, which the converger does not grant"
        )));
    }
    let suffix = random_suffix();
    let (spec, secrets) = match spec_for(&prepared, &place.namespace, &secret_name(&id), &suffix) {
        Ok(split) => split,
        Err(why) => return Ok(Err(why)),
    };
    let existing = instance(cluster, &id).await?;
    if existing.as_ref().is_some_and(|i| i.metadata.deletion_timestamp.is_some()) {
        return Err(InstanceError::Terminating(id));
    }
    let existed = existing.is_some() || record.is_some();
    write_secret(cluster, place, &id, &secrets, &suffix).await?;
    let api: Api<Instance> = Api::all(cluster.client());
    let written = match existing {
        None => {
            let mut new = Instance::new(&id, spec);
            if !marks.labels.is_empty() {
                new.metadata.labels = Some(marks.labels.clone());
            }
            if !marks.annotations.is_empty() {
                new.metadata.annotations = Some(marks.annotations.clone());
            }
            cluster.call(&format!("create Instance {id}"), || api.create(&post, &new)).await?
        }
        Some(_) => {
            let patch = if *marks == Marks::default() {
                Patch::Merge(json!({ "spec": spec }))
            } else {
                let metadata = json!({ "labels": marks.labels, "annotations": marks.annotations });
                Patch::Merge(json!({ "metadata": metadata, "spec": spec }))
            };
            cluster.call(&format!("update Instance {id}"), || api.patch(&id, &params, &patch)).await?
        }
    };
    settle_secret(cluster, place, &written).await?;
    Ok(Ok(Created { instance: written, existed, objects: plan.objects().count() }))
}

/// `upgrade-instance` / `configure-instance` through Instance `current`: the change is checked
/// and planned locally first (the catalog's upgrade rules, the parameters), then the spec's
/// versions and parameters are patched (secret values into the Secret) and the Instance
/// followed.
#[allow(clippy::too_many_arguments)]
pub async fn change(
    cluster: &Cluster,
    catalog: &Catalog,
    current: &Instance,
    change: &change::Change,
    profile: &ClusterProfile,
    place: &Place,
    progress: &dyn Progress,
) -> Result<change::Outcome, InstanceError> {
    let started = Instant::now();
    let id = current.name_any();
    let changed = write_change(cluster, catalog, current, change, profile, place).await?;
    progress.note(&format!("Instance {id} written; the converger applies it"));
    let generation = changed.instance.metadata.generation;
    let status = follow_instance(cluster, &id, generation, change.wait, change.timeout, progress).await?;
    let (product_version, sdl_version) = match (&status.product_version, &status.sdl_version) {
        (Some(pv), Some(sv)) => (pv.clone(), sv.clone()),
        _ => (changed.product_version.clone(), changed.sdl_version.clone()),
    };
    let to = format!("{product_version}/{sdl_version}");
    Ok(change::Outcome {
        instance_id: id,
        from: changed.from,
        to,
        applied: changed.objects,
        removed: Vec::new(),
        state: if status.state == Some(InstanceState::Running) { State::Running } else { State::Upgrading },
        locations: locations(Some(&status)),
        product_version,
        sdl_version,
        components: Vec::new(),
        elapsed: started.elapsed(),
    })
}

/// What [`write_change`] wrote.
#[derive(Debug, Clone)]
pub struct Changed {
    /// The Instance as written.
    pub instance: Instance,
    /// The version before, `<pv>/<sv>`.
    pub from: String,
    /// The product version planned.
    pub product_version: String,
    /// The SDL version planned.
    pub sdl_version: String,
    /// Objects in the plan the converger applies.
    pub objects: usize,
}

/// The writing half of [`change`], without following: checks and plans the change locally
/// (refused before anything is written), then patches the Instance's spec (secret values into
/// the Secret), conditional on the version of `current`.
pub async fn write_change(
    cluster: &Cluster,
    catalog: &Catalog,
    current: &Instance,
    change: &change::Change,
    profile: &ClusterProfile,
    place: &Place,
) -> Result<Changed, InstanceError> {
    let params = PatchParams::default();
    let id = current.name_any();
    let planned = change::plan_change(cluster, catalog, &id, change, profile).await?;
    let (pv, sv) = planned.to.split_once('/').unwrap_or((planned.to.as_str(), ""));
    let service = catalog.service(&current.spec.service_id).map_err(HsmError::from)?;
    let version = service.version(Some(pv), Some(sv)).map_err(HsmError::from)?;
    let sdl = catalog.load_sdl(service, version).map_err(HsmError::from)?;
    let (secrets, plain) = split(&sdl, change.sets.iter().cloned().collect());
    let suffix = random_suffix();
    write_secret(cluster, place, &id, &secrets, &suffix).await?;
    let mut spec = current.spec.clone();
    if change.target.is_some() {
        spec.product_version = Some(pv.to_string());
        spec.sdl_version = Some(sv.to_string());
    }
    for (name, value) in plain {
        spec.secret_parameters.remove(&name);
        spec.parameters.insert(name, value);
    }
    for (name, reference) in references(secrets.keys(), &place.namespace, &secret_name(&id), &suffix) {
        spec.parameters.remove(&name);
        spec.secret_parameters.insert(name, reference);
    }
    let api: Api<Instance> = Api::all(cluster.client());
    // Conditional on the version read: a change made meanwhile is not overwritten.
    let patch = Patch::Merge(json!({ "metadata": { "resourceVersion": current.resource_version() }, "spec": spec }));
    let written = cluster.call(&format!("update Instance {id}"), || api.patch(&id, &params, &patch)).await?;
    settle_secret(cluster, place, &written).await?;
    Ok(Changed {
        instance: written,
        from: planned.from,
        product_version: planned.product_version,
        sdl_version: planned.sdl_version,
        objects: planned.plan.objects().count(),
    })
}

/// `delete-instance` through Instance `current`: asks `confirm` as the direct deletion does,
/// sets `keepVolumes` as asked, deletes the Instance and waits until the converger's finalizer
/// has let it go (the namespace is gone, or keeps only the volumes by then); hsm's Secret of
/// secret values goes with it.
pub async fn delete(
    cluster: &Cluster,
    current: &Instance,
    options: delete::Options,
    place: &Place,
    confirm: impl FnOnce(&str) -> bool,
) -> Result<delete::Outcome, InstanceError> {
    let id = current.name_any();
    let claims: Vec<String> =
        cluster.list::<PersistentVolumeClaim>(&id, None).await?.into_iter().filter_map(|c| c.metadata.name).collect();
    if !confirm(&delete::question(&id, &current.spec.service_id, options.keep_volumes, &claims)) {
        return Err(InstanceError::Cancelled);
    }
    start_delete(cluster, current, options.keep_volumes).await?;
    let api: Api<Instance> = Api::all(cluster.client());
    let started = Instant::now();
    loop {
        if cluster.call(&format!("get Instance {id}"), || api.get_opt(&id)).await?.is_none() {
            break;
        }
        if started.elapsed() + POLL >= options.timeout {
            return Err(WaitError::Timeout {
                seconds: options.timeout.as_secs(),
                what: format!("Instance {id} to be deleted"),
                details: "  the converger has not finished deleting it (is it running?)".into(),
            }
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), &place.namespace);
    let name = secret_name(&id);
    let action = format!("delete Secret {}/{name}", place.namespace);
    let delete_params = DeleteParams::default();
    match cluster.call(&action, || secrets.delete(&name, &delete_params)).await {
        Err(error) if !not_found(&error) => return Err(error.into()),
        _ => {}
    }
    Ok(match (options.keep_volumes, claims.is_empty()) {
        (true, _) if cluster.namespace(&id).await?.is_some() => delete::Outcome::VolumesKept(claims),
        _ => delete::Outcome::Deleted,
    })
}

/// The deleting half of [`delete`], without asking or waiting: sets `keepVolumes` as asked
/// and deletes Instance `current` (an Instance already gone or being deleted is no error);
/// the converger's finalizer then deletes the instance, and hsm's Secret of secret values
/// goes with the Instance that owns it.
pub async fn start_delete(cluster: &Cluster, current: &Instance, keep_volumes: bool) -> Result<(), InstanceError> {
    let params = PatchParams::default();
    let id = current.name_any();
    let api: Api<Instance> = Api::all(cluster.client());
    if current.spec.keep_volumes != keep_volumes {
        let patch = Patch::Merge(json!({ "spec": { "keepVolumes": keep_volumes } }));
        cluster.call(&format!("update Instance {id}"), || api.patch(&id, &params, &patch)).await?;
    }
    let background = DeleteParams::background();
    match cluster.call(&format!("delete Instance {id}"), || api.delete(&id, &background)).await {
        Err(error) if !not_found(&error) => Err(error.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{ComponentStatus, Condition};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinitionCondition, CustomResourceDefinitionStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn crd(established: &str) -> CustomResourceDefinition {
        CustomResourceDefinition {
            status: Some(CustomResourceDefinitionStatus {
                conditions: Some(vec![CustomResourceDefinitionCondition {
                    type_: "Established".into(),
                    status: established.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn lease(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::from_second(renewed).unwrap())),
            ..Default::default()
        }
    }

    #[test]
    fn a_converger_runs_when_the_definition_is_established_and_the_lease_is_fresh() {
        let now = 1_000_000;
        assert_eq!(converger(Some(&crd("True")), Some(&lease("h/1", now - 5)), now), Ok("h/1".into()));
        let stale = converger(Some(&crd("True")), Some(&lease("h/1", now - 60)), now).unwrap_err();
        assert!(stale.contains("has not renewed") && stale.contains("60s"), "{stale}");
        assert!(converger(None, None, now).unwrap_err().contains("not installed"));
        assert!(converger(Some(&crd("False")), Some(&lease("h/1", now)), now).unwrap_err().contains("established"));
        assert!(converger(Some(&crd("True")), None, now).is_err());
        // A converger that stopped gracefully cleared the holder.
        assert!(converger(Some(&crd("True")), Some(&lease("", now)), now).unwrap_err().contains("no converger holds"));
    }

    #[test]
    fn the_mode_follows_the_choice_then_the_converger() {
        assert_eq!(mode(Choice::Auto, Ok("h/1".into())), Mode::Declared("h/1".into()));
        assert_eq!(mode(Choice::Auto, Err("none".into())), Mode::Direct("none".into()));
        assert!(matches!(mode(Choice::Direct, Ok("h/1".into())), Mode::Direct(_)));
        assert!(matches!(mode(Choice::Converger, Err("none".into())), Mode::Declared(_)));
        // Said on stderr only when a converger is installed but does not run.
        assert_eq!(note(Choice::Auto, &Mode::Direct(NOT_INSTALLED.into())), None);
        assert_eq!(note(Choice::Auto, &Mode::Direct(format!("{UNREADABLE}: 403"))), None);
        let stopped = note(Choice::Auto, &Mode::Direct("no converger holds the Lease hsm-controller".into()));
        assert_eq!(
            stopped.as_deref(),
            Some("no converger holds the Lease hsm-controller: hsm applies the change itself")
        );
        assert_eq!(note(Choice::Auto, &Mode::Declared("h/1".into())), None);
    }

    fn status(generation: i64, state: InstanceState) -> InstanceStatus {
        InstanceStatus {
            observed_generation: Some(generation),
            state: Some(state),
            components: vec![ComponentStatus {
                name: "redis".into(),
                kind: "StatefulSet".into(),
                ready: 0,
                desired: 1,
            }],
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "False".into(),
                reason: "UpgradeRefused".into(),
                message: "7.4 cannot be reached from 3.0".into(),
                last_transition_time: "t".into(),
                observed_generation: Some(generation),
            }],
            ..InstanceStatus::default()
        }
    }

    #[test]
    fn a_status_is_followed_only_for_the_generation_written() {
        assert_eq!(follow("a", None, Some(1)), Followed::Pending);
        // The status of the previous generation says nothing about this one.
        assert_eq!(follow("a", Some(&status(1, InstanceState::Running)), Some(2)), Followed::Pending);
        let Followed::Progressing(InstanceState::Creating, components) =
            follow("a", Some(&status(2, InstanceState::Creating)), Some(2))
        else {
            panic!("progressing")
        };
        assert_eq!(
            (components[0].kind, components[0].name.as_str(), components[0].done),
            (Kind::StatefulSet, "redis", false)
        );
        assert!(matches!(follow("a", Some(&status(3, InstanceState::Running)), Some(2)), Followed::Running(_)));
        let failed = follow("a", Some(&status(2, InstanceState::Failed)), Some(2));
        assert_eq!(failed, Followed::Failed("UpgradeRefused".into(), "7.4 cannot be reached from 3.0".into()));
        assert_eq!(exit_code("UpgradeRefused"), 2);
        assert_eq!(exit_code("JobFailed"), 1);
    }

    fn declared(name: &str, state: Option<InstanceState>) -> Instance {
        let mut instance = Instance::new(
            name,
            InstanceSpec {
                service_id: "stackato.hpe.redis".into(),
                product_version: Some("7.4".into()),
                ..Default::default()
            },
        );
        instance.status = state.map(|s| status(1, s));
        instance
    }

    #[test]
    fn instances_without_a_record_are_listed_and_failures_show() {
        let mut record = record_of(&declared("a", Some(InstanceState::Running)));
        record.message = None;
        let merged = merge(vec![record], &[declared("b", None), declared("a", Some(InstanceState::Failed))]);
        let ids: Vec<&str> = merged.iter().map(|r| r.instance_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(merged[0].state, State::Failed);
        assert_eq!(merged[0].message.as_deref(), Some("7.4 cannot be reached from 3.0"));
        assert_eq!((merged[1].state, merged[1].product_version.as_str()), (State::Creating, "7.4"));
    }

    #[test]
    fn secret_values_are_split_off_by_the_sdl() {
        let sdl: sdl::Sdl = serde_json::from_value(json!({
            "name": "redis", "vendor": "hpe", "sdl_version": "1.0.0", "product_version": "7.4",
            "parameters": [
                { "name": "redis-password", "secret": true, "required": false },
                { "name": "REDIS_MAXMEMORY", "required": false }
            ],
            "components": []
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let values = BTreeMap::from([
            ("redis-password".to_string(), "s3cret".to_string()),
            ("REDIS_MAXMEMORY".to_string(), "64mb".to_string()),
        ]);
        let (secret, plain) = split(&sdl, values);
        assert_eq!(secret.keys().collect::<Vec<_>>(), ["redis-password"]);
        assert_eq!(plain.keys().collect::<Vec<_>>(), ["REDIS_MAXMEMORY"]);
        let refs = references(secret.keys(), "kube-system", &secret_name("cache"), "x1");
        assert_eq!(
            refs["redis-password"],
            SecretKeyRef {
                namespace: "kube-system".into(),
                name: "hsm-instance-cache".into(),
                key: "redis-password.x1".into()
            }
        );
    }
}
