//! The instance list kept in memory: two watches — on the namespaces hsm labels, of which
//! only the records read from them are kept, and on the `Instance` resources (a kube-runtime
//! reflector: the broker reads whole Instances) — and the JSON of `GET /v1/instances` made
//! from them once per change, not once per request.
//!
//! Until both watches have listed everything once, the cache answers nothing and the list
//! handler asks the API server, as before. A cluster without the `Instance` definition counts
//! as having no Instances (the watch keeps retrying and picks them up once it exists). The
//! server's own writes wait (briefly) until the cache has seen them, so a client that writes
//! and then lists sees what it wrote.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource, ResourceExt};
use service_manager::cluster::Cluster;
use service_manager::declared;
use service_manager::instance::Record;
use service_manager::labels;
use service_manager::resource::Instance;

use crate::api;

/// The watched instances and the list's JSON made from them.
pub struct InstanceCache {
    records: Records,
    instances: Store<Instance>,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What the watch tasks and the readers share.
#[derive(Default)]
struct Shared {
    /// Bumped on every event of either watch.
    changes: AtomicU64,
    namespaces_listed: AtomicBool,
    instances_listed: AtomicBool,
    /// The `Instance` resource is not defined on the cluster (its watch answers 404).
    no_instance_resource: AtomicBool,
    /// A watch's last attempt failed (the API server does not answer, say).
    failing: AtomicBool,
    /// The JSON of the list and the change count it was made at.
    json: Mutex<Option<(u64, Bytes)>>,
    /// Lists answered from memory.
    served: AtomicU64,
    /// Times the list's JSON was made.
    builds: AtomicU64,
}

/// What a write left behind, for [`InstanceCache::settle`].
#[derive(Debug, Clone)]
pub enum Written {
    /// The `Instance` as the API server answered the write (its resourceVersion).
    Instance(Instance),
    /// The `Instance` was changed from this one (a delete: the finalizer's deletion mark, or
    /// its removal).
    ChangedFrom(Instance),
}

impl Written {
    /// The instance's id.
    pub fn name(&self) -> String {
        match self {
            Written::Instance(instance) | Written::ChangedFrom(instance) => instance.name_any(),
        }
    }
}

impl InstanceCache {
    /// Starts watching `cluster`'s hsm namespaces and `Instance`s (tasks on the current
    /// runtime, stopped when the cache is dropped).
    pub fn start(cluster: &Cluster) -> InstanceCache {
        let shared = Arc::new(Shared::default());
        let selector = format!("{}={}", labels::MANAGED_BY, labels::MANAGER);
        let records = Records::default();
        let stream = watcher(Api::<Namespace>::all(cluster.client()), watcher::Config::default().labels(&selector));
        let first = tokio::spawn(follow(records.keep(stream), shared.clone(), Watched::Namespaces));
        let (instances, writer) = reflector::store();
        let stream = watcher(Api::<Instance>::all(cluster.client()), watcher::Config::default());
        let second = tokio::spawn(follow(reflector::reflector(writer, stream), shared.clone(), Watched::Instances));
        InstanceCache { records, instances, shared, tasks: vec![first, second] }
    }

    /// Whether both watches have listed everything once (a cluster without the `Instance`
    /// definition has listed its Instances: there are none).
    pub fn synced(&self) -> bool {
        self.shared.namespaces_listed.load(Ordering::Acquire)
            && (self.shared.instances_listed.load(Ordering::Acquire)
                || self.shared.no_instance_resource.load(Ordering::Acquire))
    }

    /// Waits, at most `limit`, until the watches have synced; returns whether they have. While
    /// a server starts, requests wait for the one listing the watches make instead of each
    /// listing every namespace and Instance itself (with thousands of instances, a herd of
    /// such lists took seconds each and hundreds of MiB).
    /// A watch that is failing ends the wait at once: the caller then reads the cluster
    /// itself and reports what it finds (an API server that does not answer, say).
    pub async fn wait_synced(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.synced() {
            if tokio::time::Instant::now() >= deadline || self.shared.failing.load(Ordering::Acquire) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// The JSON of `GET /v1/instances` (an array of `InstanceSummary`, by id), or `None` until
    /// the watches have synced. Made again only when something changed since the last time.
    pub fn list_json(&self) -> Option<Bytes> {
        if !self.synced() {
            return None;
        }
        let mut json = self.shared.json.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Read the count before the stores: a change during the build leaves the next request
        // building again rather than serving a stale list as current.
        let changes = self.shared.changes.load(Ordering::Acquire);
        if let Some((made_at, bytes)) = json.as_ref() {
            if *made_at == changes {
                self.shared.served.fetch_add(1, Ordering::Relaxed);
                return Some(bytes.clone());
            }
        }
        let bytes = Bytes::from(list_bytes(self.records.all(), &self.instances.state()));
        *json = Some((changes, bytes.clone()));
        self.shared.builds.fetch_add(1, Ordering::Relaxed);
        self.shared.served.fetch_add(1, Ordering::Relaxed);
        Some(bytes)
    }

    /// The cache's figures in Prometheus text: whether it has synced, lists served from
    /// memory, times the list was made, watch events seen.
    pub fn render_metrics(&self) -> String {
        let figures = [
            (
                "instance_cache_synced",
                "gauge",
                "Whether the instance watches have listed everything once.",
                u64::from(self.synced()),
            ),
            (
                "instance_cache_lists_served_total",
                "counter",
                "Instance lists answered from memory.",
                self.shared.served.load(Ordering::Relaxed),
            ),
            (
                "instance_cache_builds_total",
                "counter",
                "Times the instance list's JSON was made.",
                self.shared.builds.load(Ordering::Relaxed),
            ),
            (
                "instance_cache_events_total",
                "counter",
                "Watch events of namespaces and Instances seen.",
                self.shared.changes.load(Ordering::Relaxed),
            ),
        ];
        figures
            .iter()
            .map(|(name, kind, help, value)| {
                format!("# HELP hsm_server_{name} {help}\n# TYPE hsm_server_{name} {kind}\nhsm_server_{name} {value}\n")
            })
            .collect()
    }

    /// The `Instance` named `name` as the watch holds it: `None` until the watches have
    /// synced, then whether there is one.
    pub fn instance(&self, name: &str) -> Option<Option<Arc<Instance>>> {
        self.synced().then(|| self.instances.get(&ObjectRef::new(name)))
    }

    /// Waits, at most `limit`, until the `Instance` watch has seen `written`, so that this
    /// server's next list shows its own write. Returns whether it did.
    pub async fn settle(&self, written: &Written, limit: Duration) -> bool {
        if !self.synced() {
            return true;
        }
        let seen = || match written {
            Written::Instance(instance) => {
                self.instances.get(&ObjectRef::from_obj(instance)).is_some_and(|held| !older(&held, instance))
            }
            Written::ChangedFrom(before) => match self.instances.get(&ObjectRef::from_obj(before)) {
                None => true,
                Some(held) => held.resource_version() != before.resource_version() && !older(&held, before),
            },
        };
        let deadline = tokio::time::Instant::now() + limit;
        while !seen() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

impl Drop for InstanceCache {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Whether `held` is an older version of the object than `than`. resourceVersions are opaque
/// to clients, but the API server's are etcd revisions: compared as numbers when both are,
/// and otherwise never called older (the wait then ends on any version).
fn older(held: &Instance, than: &Instance) -> bool {
    let number = |i: &Instance| i.resource_version().and_then(|v| v.parse::<u64>().ok());
    matches!((number(held), number(than)), (Some(a), Some(b)) if a < b)
}

/// The records of hsm's namespaces by namespace name, kept from the namespace watch's events:
/// a record is a fraction of the Namespace it is read from (no label and annotation maps, no
/// spec or status), which is most of the cache's memory with thousands of instances.
#[derive(Clone, Default)]
struct Records(Arc<RwLock<HashMap<String, Record>>>);

impl Records {
    /// `stream` with every event applied to these records as it passes. A relisting is
    /// collected aside and replaces the records when it is complete, as a reflector does.
    fn keep(
        &self,
        stream: impl Stream<Item = watcher::Result<Event<Namespace>>>,
    ) -> impl Stream<Item = watcher::Result<Event<Namespace>>> {
        let records = self.clone();
        let mut relisting: Option<HashMap<String, Record>> = None;
        stream.map(move |event| {
            if let Ok(event) = &event {
                records.apply(event, &mut relisting);
            }
            event
        })
    }

    fn apply(&self, event: &Event<Namespace>, relisting: &mut Option<HashMap<String, Record>>) {
        let held = || self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        match event {
            Event::Init => *relisting = Some(HashMap::new()),
            Event::InitApply(namespace) => {
                if let (Some(list), Some(record)) = (relisting.as_mut(), Record::from_namespace(namespace)) {
                    list.insert(namespace.name_any(), record);
                }
            }
            Event::InitDone => {
                if let Some(list) = relisting.take() {
                    *held() = list;
                }
            }
            Event::Apply(namespace) => match Record::from_namespace(namespace) {
                Some(record) => {
                    held().insert(namespace.name_any(), record);
                }
                None => {
                    held().remove(&namespace.name_any());
                }
            },
            Event::Delete(namespace) => {
                held().remove(&namespace.name_any());
            }
        }
    }

    /// A copy of every record, in no order.
    fn all(&self) -> Vec<Record> {
        let held = self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        held.values().cloned().collect()
    }
}

/// Which watch a task follows.
#[derive(Clone, Copy, Debug)]
enum Watched {
    Namespaces,
    Instances,
}

/// A watch with backoff whose objects are kept without their managed fields (most of an
/// object's bytes, and never read here).
fn watcher<K>(api: Api<K>, config: watcher::Config) -> impl Stream<Item = watcher::Result<Event<K>>> + Send
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    watcher::watcher(api, config).default_backoff().modify(|object| object.managed_fields_mut().clear())
}

/// Follows one watch until the cache is dropped: every event is a change; the first full
/// listing marks it synced; a 404 on the `Instance` watch means the resource is not defined.
async fn follow<K>(stream: impl Stream<Item = watcher::Result<Event<K>>>, shared: Arc<Shared>, watched: Watched) {
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                shared.failing.store(false, Ordering::Release);
                shared.changes.fetch_add(1, Ordering::AcqRel);
                if matches!(event, Event::InitDone) {
                    let listed = match watched {
                        Watched::Namespaces => &shared.namespaces_listed,
                        Watched::Instances => {
                            shared.no_instance_resource.store(false, Ordering::Release);
                            &shared.instances_listed
                        }
                    };
                    listed.store(true, Ordering::Release);
                }
            }
            Err(error) => {
                let missing = matches!(&error, watcher::Error::InitialListFailed(kube::Error::Api(status))
                        | watcher::Error::WatchStartFailed(kube::Error::Api(status)) if status.code == 404);
                if matches!(watched, Watched::Instances) && missing {
                    if !shared.no_instance_resource.swap(true, Ordering::AcqRel) {
                        shared.changes.fetch_add(1, Ordering::AcqRel);
                    }
                } else {
                    shared.failing.store(true, Ordering::Release);
                    tracing::warn!(?watched, %error, "instance cache: watch failed; retrying");
                }
            }
        }
    }
}

/// The JSON of the list from the watched objects: each hsm namespace's record merged with
/// the Instances, as `hsm list-instances` merges them (pure).
fn list_bytes(records: Vec<Record>, instances: &[Arc<Instance>]) -> Vec<u8> {
    let merged = declared::merge(records, instances.iter().map(|instance| &**instance));
    let summaries: Vec<api::InstanceSummary> = merged.iter().map(api::instance_summary).collect();
    serde_json::to_vec(&summaries).expect("instance summaries are JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn namespace(id: &str, service: &str) -> Arc<Namespace> {
        let mut ns = Namespace::default();
        ns.metadata.name = Some(id.into());
        ns.metadata.labels = Some(BTreeMap::from([
            (labels::MANAGED_BY.to_string(), labels::MANAGER.to_string()),
            (labels::SERVICE_ID.to_string(), service.to_string()),
        ]));
        Arc::new(ns)
    }

    fn instance(id: &str, version: &str) -> Arc<Instance> {
        let spec = serde_json::from_value(serde_json::json!({ "serviceId": "stackato.hpe.redis" })).unwrap();
        let mut instance = Instance::new(id, spec);
        instance.metadata.resource_version = Some(version.into());
        Arc::new(instance)
    }

    #[test]
    fn the_list_merges_records_with_instances_by_id_as_hsm_does() {
        let records = vec![Record::from_namespace(&namespace("b", "stackato.hpe.mysql")).unwrap()];
        let json = list_bytes(records, &[instance("a", "1"), instance("b", "2")]);
        let list: Vec<serde_json::Value> = serde_json::from_slice(&json).unwrap();
        let ids: Vec<_> = list.iter().map(|i| i["instance_id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["a", "b"]);
        // The record wins over the Instance for an id that has both.
        assert_eq!(list[1]["service_id"], "stackato.hpe.mysql");
        assert_eq!(list[0]["service_id"], "stackato.hpe.redis");
        assert_eq!(list[0]["state"], "creating");
    }

    #[test]
    fn records_follow_the_namespace_watch_and_a_relisting_replaces_them_when_complete() {
        let records = Records::default();
        let mut relisting = None;
        let ids = |records: &Records| {
            let mut ids: Vec<String> = records.all().into_iter().map(|r| r.instance_id).collect();
            ids.sort();
            ids
        };
        let apply = |event: Event<Namespace>, relisting: &mut _| records.apply(&event, relisting);
        apply(Event::Init, &mut relisting);
        apply(Event::InitApply((*namespace("a", "stackato.hpe.redis")).clone()), &mut relisting);
        apply(Event::InitApply((*namespace("b", "stackato.hpe.redis")).clone()), &mut relisting);
        assert!(ids(&records).is_empty(), "a listing shows only once complete");
        apply(Event::InitDone, &mut relisting);
        assert_eq!(ids(&records), ["a", "b"]);

        // A change, a namespace hsm no longer manages, a deletion.
        apply(Event::Apply((*namespace("c", "stackato.hpe.mysql")).clone()), &mut relisting);
        let mut unmanaged = (*namespace("a", "stackato.hpe.redis")).clone();
        unmanaged.metadata.labels = None;
        apply(Event::Apply(unmanaged), &mut relisting);
        apply(Event::Delete((*namespace("b", "stackato.hpe.redis")).clone()), &mut relisting);
        assert_eq!(ids(&records), ["c"]);
        assert_eq!(records.all()[0].service_id, "stackato.hpe.mysql");

        // A relisting (after a watch was lost) replaces everything held.
        apply(Event::Init, &mut relisting);
        apply(Event::InitApply((*namespace("d", "stackato.hpe.redis")).clone()), &mut relisting);
        assert_eq!(ids(&records), ["c"]);
        apply(Event::InitDone, &mut relisting);
        assert_eq!(ids(&records), ["d"]);
    }

    #[test]
    fn resource_versions_are_compared_as_numbers_only_when_both_are_numbers() {
        assert!(older(&instance("a", "9"), &instance("a", "10")));
        assert!(!older(&instance("a", "10"), &instance("a", "10")));
        assert!(!older(&instance("a", "x"), &instance("a", "10")));
    }
}
