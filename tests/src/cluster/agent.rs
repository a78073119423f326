//! The node agent: what kubelets, a volume provisioner and a load-balancer controller would
//! report, without running anything. It registers Nodes (capacity, zone labels, Ready) and
//! keeps their Leases fresh; marks pods bound to them Running and Ready with an IP (or leaves
//! them Pending, or completes or fails Job pods, as the pod's namespace's [`Behaviour`] says);
//! finishes the graceful deletion of their pods; binds pending volume claims to new volumes
//! (and deletes released ones); and gives LoadBalancer Services an address in 192.0.2.0/24.
//! Everything else — ReplicaSets, StatefulSet claims, Job accounting, garbage collection,
//! namespace finalisation, scheduling — is the real controllers' and scheduler's work.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::{json, Value};
use tokio::sync::Notify;

/// What the agent does with the pods of one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Behaviour {
    /// Pods stay Pending: as if their images never pulled. Their Jobs never finish.
    pub never_ready: bool,
    /// How long after the agent first sees a pod on its node it reports it Ready (or its Job
    /// pod finished).
    pub ready_after: Duration,
    /// Jobs (by name) whose pods fail with exit code 1.
    pub failing_jobs: BTreeSet<String>,
}

impl Behaviour {
    /// Pods stay Pending.
    pub fn never_ready() -> Behaviour {
        Behaviour { never_ready: true, ..Behaviour::default() }
    }

    /// Job `name`'s pods fail.
    pub fn failing_job(name: &str) -> Behaviour {
        Behaviour { failing_jobs: BTreeSet::from([name.to_string()]), ..Behaviour::default() }
    }
}

/// Behaviours by namespace, shared by the tests (which set them) and the agent (which reads
/// them); a namespace without one gets [`Behaviour::default`]: ready at once.
#[derive(Debug, Clone, Default)]
pub struct Behaviours {
    by_namespace: Arc<Mutex<HashMap<String, Behaviour>>>,
    changed: Arc<Notify>,
}

impl Behaviours {
    /// Sets `namespace`'s behaviour; pods already waiting are looked at again at once.
    pub fn set(&self, namespace: &str, behaviour: Behaviour) {
        if let Ok(mut map) = self.by_namespace.lock() {
            map.insert(namespace.to_string(), behaviour);
        }
        self.changed.notify_one();
    }

    fn get(&self, namespace: &str) -> Behaviour {
        self.by_namespace.lock().ok().and_then(|m| m.get(namespace).cloned()).unwrap_or_default()
    }
}

/// Whether a Node object's Ready condition is True.
pub fn node_ready(node: &Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .is_some_and(|conditions| conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

const MANAGER: &str = "stratus-node-agent";
/// The agent's provisioner name: volumes carry it as `pv.kubernetes.io/provisioned-by` and as
/// their CSI driver, so the volume controller leaves their deletion to the agent, as it leaves
/// a CSI driver's volumes to its external provisioner.
const PROVISIONER: &str = "node-agent.stratus.io";
const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

/// The agent: its client, nodes, behaviours and what it has done.
pub struct NodeAgent {
    client: kube::Client,
    nodes: Vec<String>,
    behaviours: Behaviours,
    log: Mutex<std::fs::File>,
    first_seen: Mutex<HashMap<String, Instant>>,
    /// UIDs of pods, claims and Services already acted on (their new state may not have
    /// reached the watch yet).
    done: Mutex<HashSet<String>>,
    pod_ips: Mutex<u32>,
    lb_ips: Mutex<u32>,
}

/// Now in RFC 3339 (UTC): whole seconds, as Kubernetes `Time` fields are written.
fn now() -> String {
    now_micro().split('.').next().map(|seconds| format!("{seconds}Z")).unwrap_or_default()
}

/// Now in RFC 3339 (UTC) with microseconds, as `MicroTime` fields (a Lease's) are written.
fn now_micro() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.microsecond()
    )
}

fn node_status(index: usize) -> Value {
    let heartbeat = now();
    let condition = |kind: &str, status: &str, reason: &str| {
        json!({"type": kind, "status": status, "reason": reason, "message": "reported by the Stratus node agent",
               "lastHeartbeatTime": heartbeat, "lastTransitionTime": heartbeat})
    };
    let resources = json!({"cpu": "64", "memory": "512Gi", "pods": "250", "ephemeral-storage": "1Ti"});
    json!({
        "capacity": resources, "allocatable": resources,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID"),
            condition("Ready", "True", "KubeletReady"),
        ],
        "addresses": [{"type": "InternalIP", "address": format!("10.1.0.{}", index + 1)}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "Stratus node agent",
            "containerRuntimeVersion": "stratus-node-agent://1", "kubeletVersion": "v1.34.4", "kubeProxyVersion": "",
            "operatingSystem": "linux", "architecture": "amd64"},
    })
}

impl NodeAgent {
    /// An agent for `nodes`, logging to `log`.
    pub fn new(
        client: kube::Client,
        nodes: Vec<String>,
        behaviours: Behaviours,
        log: &Path,
    ) -> std::io::Result<NodeAgent> {
        Ok(NodeAgent {
            client,
            nodes,
            behaviours,
            log: Mutex::new(std::fs::OpenOptions::new().create(true).append(true).open(log)?),
            first_seen: Mutex::new(HashMap::new()),
            done: Mutex::new(HashSet::new()),
            pod_ips: Mutex::new(0),
            lb_ips: Mutex::new(0),
        })
    }

    fn log(&self, line: impl std::fmt::Display) {
        if let Ok(mut file) = self.log.lock() {
            let _ = writeln!(file, "{} {line}", now_micro());
        }
    }

    fn mark_done(&self, uid: &str) -> bool {
        self.done.lock().map(|mut done| done.insert(uid.to_string())).unwrap_or(false)
    }

    fn forget(&self, uid: &str) {
        if let Ok(mut done) = self.done.lock() {
            done.remove(uid);
        }
    }

    /// Logs what an action did; an answer in `expected` (404 for what is gone, 409 for what
    /// exists) is no news; any other failure is logged and `key` forgotten, so the next pass
    /// tries again.
    fn settle<T>(&self, result: Result<T, kube::Error>, expected: &[u16], key: &str, done: String, what: String) {
        match result {
            Ok(_) => self.log(done),
            Err(kube::Error::Api(e)) if expected.contains(&e.code) => {}
            Err(e) => {
                self.log(format!("{what}: {e}"));
                self.forget(key);
            }
        }
    }

    /// Registers the nodes, then acts on what the watches show, until the runtime stops.
    pub async fn run(self) {
        let agent = Arc::new(self);
        agent.register().await;
        let heartbeat = agent.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                heartbeat.heartbeat().await;
            }
        });

        let changed = agent.behaviours.changed.clone();
        let pods = watch::<Pod>(agent.client.clone(), changed.clone());
        let claims = watch::<PersistentVolumeClaim>(agent.client.clone(), changed.clone());
        let volumes = watch::<PersistentVolume>(agent.client.clone(), changed.clone());
        let services = watch::<Service>(agent.client.clone(), changed.clone());
        loop {
            agent.pass(&pods, &claims, &volumes, &services).await;
            // A watch event or a new behaviour wakes the agent; timers are checked every 50 ms.
            let _ = tokio::time::timeout(Duration::from_millis(50), changed.notified()).await;
        }
    }

    async fn register(&self) {
        let api: Api<Node> = Api::all(self.client.clone());
        for (index, name) in self.nodes.iter().enumerate() {
            let zone = ZONES[index % ZONES.len()];
            let node = json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {
                    "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                    "topology.kubernetes.io/zone": zone, "topology.kubernetes.io/region": "local",
                    "type": "stratus-node-agent"}},
                "spec": {},
                "status": node_status(index),
            });
            match serde_json::from_value::<Node>(node) {
                Ok(node) => match api.create(&PostParams::default(), &node).await {
                    Ok(_) => self.log(format!("registered node {name} in {zone}")),
                    Err(kube::Error::Api(e)) if e.code == 409 => self.log(format!("node {name} exists")),
                    Err(e) => self.log(format!("registering node {name}: {e}")),
                },
                Err(e) => self.log(format!("node {name}: {e}")),
            }
        }
        self.heartbeat().await;
    }

    /// Renews each node's Lease and Ready condition; a node deleted by someone else is left
    /// alone.
    async fn heartbeat(&self) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        for (index, name) in self.nodes.iter().enumerate() {
            let node = match nodes.get_opt(name).await {
                Ok(Some(node)) => node,
                Ok(None) => continue,
                Err(e) => {
                    self.log(format!("node {name}: {e}"));
                    continue;
                }
            };
            let status = json!({"status": node_status(index)});
            if let Err(e) = nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await {
                self.log(format!("node {name} status: {e}"));
            }
            let uid = node.metadata.uid.unwrap_or_default();
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease",
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}]},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now_micro()},
            });
            let params = PatchParams::apply(MANAGER).force();
            if let Err(e) = leases.patch(name, &params, &Patch::Apply(&lease)).await {
                self.log(format!("lease {name}: {e}"));
            }
        }
    }

    async fn pass(
        &self,
        pods: &Store<Pod>,
        claims: &Store<PersistentVolumeClaim>,
        volumes: &Store<PersistentVolume>,
        services: &Store<Service>,
    ) {
        for pod in pods.state() {
            self.pod(&pod).await;
        }
        for claim in claims.state() {
            self.claim(&claim).await;
        }
        for volume in volumes.state() {
            self.volume(&volume).await;
        }
        for service in services.state() {
            self.service(&service).await;
        }
    }

    async fn pod(&self, pod: &Pod) {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else { return };
        let Some(node_index) = self.nodes.iter().position(|n| *n == node) else { return };
        let (Some(uid), Some(name), Some(namespace)) =
            (pod.metadata.uid.clone(), pod.metadata.name.clone(), pod.metadata.namespace.clone())
        else {
            return;
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        if pod.metadata.deletion_timestamp.is_some() {
            // What a kubelet does once the containers have stopped: the final delete.
            if self.mark_done(&format!("delete/{uid}")) {
                let params = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions { uid: Some(uid.clone()), resource_version: None }),
                    ..DeleteParams::default()
                };
                let result = api.delete(&name, &params).await;
                let (done, what) =
                    (format!("pod {namespace}/{name} deleted"), format!("deleting pod {namespace}/{name}"));
                self.settle(result, &[404, 409], &format!("delete/{uid}"), done, what);
            }
            return;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
        if phase != "Pending" && !phase.is_empty() {
            return;
        }
        let behaviour = self.behaviours.get(&namespace);
        if behaviour.never_ready {
            return;
        }
        let seen = {
            let Ok(mut first_seen) = self.first_seen.lock() else { return };
            *first_seen.entry(uid.clone()).or_insert_with(Instant::now)
        };
        if seen.elapsed() < behaviour.ready_after {
            return;
        }
        if !self.mark_done(&uid) {
            return;
        }
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let job = labels.get("batch.kubernetes.io/job-name").or_else(|| labels.get("job-name")).cloned();
        let status = match &job {
            Some(job) if behaviour.failing_jobs.contains(job) => finished(pod, node_index, false),
            Some(_) => finished(pod, node_index, true),
            None => {
                let ip = {
                    let Ok(mut next) = self.pod_ips.lock() else { return };
                    *next += 1;
                    *next
                };
                running(pod, node_index, ip)
            }
        };
        let patch = json!({"status": status});
        let result = api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch)).await;
        let done = format!("pod {namespace}/{name} on {node}: {}", status["phase"]);
        self.settle(result, &[404], &uid, done, format!("pod {namespace}/{name} status"));
    }

    async fn claim(&self, claim: &PersistentVolumeClaim) {
        let (Some(uid), Some(name), Some(namespace)) =
            (claim.metadata.uid.clone(), claim.metadata.name.clone(), claim.metadata.namespace.clone())
        else {
            return;
        };
        let spec = claim.spec.clone().unwrap_or_default();
        if spec.volume_name.is_some() || claim.metadata.deletion_timestamp.is_some() || !self.mark_done(&uid) {
            return;
        }
        let size = spec
            .resources
            .and_then(|r| r.requests)
            .and_then(|r| r.get("storage").cloned())
            .map_or_else(|| "1Gi".to_string(), |q| q.0);
        let volume = json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": format!("pvc-{uid}"), "annotations": {PROVISIONED_BY: PROVISIONER}},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": spec.access_modes.unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
                "storageClassName": spec.storage_class_name.unwrap_or_default(),
                "volumeMode": spec.volume_mode.unwrap_or_else(|| "Filesystem".into()),
                "persistentVolumeReclaimPolicy": "Delete",
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": namespace, "name": name, "uid": uid},
                "csi": {"driver": PROVISIONER, "volumeHandle": uid},
            },
        });
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let Ok(volume) = serde_json::from_value::<PersistentVolume>(volume) else { return };
        let result = api.create(&PostParams::default(), &volume).await;
        let done = format!("volume pvc-{uid} made for {namespace}/{name}");
        self.settle(result, &[409], &uid, done, format!("volume for {namespace}/{name}"));
    }

    /// Released volumes the agent made are deleted, as an external provisioner honours their
    /// `Delete` reclaim policy.
    async fn volume(&self, volume: &PersistentVolume) {
        let released = volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
        let ours = volume
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.get(PROVISIONED_BY).map(String::as_str) == Some(PROVISIONER));
        let (Some(uid), Some(name)) = (volume.metadata.uid.clone(), volume.metadata.name.clone()) else { return };
        if !released || !ours || !self.mark_done(&uid) {
            return;
        }
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let result = api.delete(&name, &DeleteParams::default()).await;
        self.settle(result, &[404], &uid, format!("released volume {name} deleted"), format!("deleting volume {name}"));
    }

    async fn service(&self, service: &Service) {
        let load_balancer = service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
        let addressed = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref())
            .is_some_and(|i| !i.is_empty());
        let (Some(uid), Some(name), Some(namespace)) =
            (service.metadata.uid.clone(), service.metadata.name.clone(), service.metadata.namespace.clone())
        else {
            return;
        };
        if !load_balancer || addressed || !self.mark_done(&uid) {
            return;
        }
        let ip = {
            let Ok(mut next) = self.lb_ips.lock() else { return };
            *next = *next % 250 + 1;
            *next
        };
        let patch =
            json!({"status": {"loadBalancer": {"ingress": [{"ip": format!("192.0.2.{ip}"), "ipMode": "VIP"}]}}});
        let api: Api<Service> = Api::namespaced(self.client.clone(), &namespace);
        let result = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await;
        let done = format!("service {namespace}/{name} at 192.0.2.{ip}");
        self.settle(result, &[404], &uid, done, format!("service {namespace}/{name}"));
    }
}

/// A reflector over every object of `K`, waking `changed` on each event.
fn watch<K>(client: kube::Client, changed: Arc<Notify>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(Api::<K>::all(client), watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while stream.next().await.is_some() {
            changed.notify_one();
        }
    });
    reader
}

fn container_names(pod: &Pod, init: bool) -> Vec<(String, String)> {
    let spec = pod.spec.clone().unwrap_or_default();
    let containers = if init { spec.init_containers.unwrap_or_default() } else { spec.containers };
    containers.into_iter().map(|c| (c.name, c.image.unwrap_or_default())).collect()
}

fn conditions(ready: bool) -> Value {
    let at = now();
    let ready = if ready { "True" } else { "False" };
    json!([
        {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": at},
        {"type": "Initialized", "status": "True", "lastTransitionTime": at},
        {"type": "ContainersReady", "status": ready, "lastTransitionTime": at},
        {"type": "Ready", "status": ready, "lastTransitionTime": at},
    ])
}

fn init_statuses(pod: &Pod) -> Value {
    let at = now();
    Value::Array(
        container_names(pod, true)
            .into_iter()
            .map(|(name, image)| {
                json!({"name": name, "image": image, "imageID": "", "ready": true, "restartCount": 0,
                       "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": at, "finishedAt": at}}})
            })
            .collect(),
    )
}

/// One status per container of `pod`, in `state`.
fn container_statuses(pod: &Pod, running: bool, state: &Value) -> Value {
    let statuses = container_names(pod, false).into_iter().map(|(name, image)| {
        json!({"name": name, "image": image, "imageID": "", "ready": running, "started": running,
               "restartCount": 0, "state": state})
    });
    Value::Array(statuses.collect())
}

fn running(pod: &Pod, node: usize, ip: u32) -> Value {
    let at = now();
    let containers = container_statuses(pod, true, &json!({"running": {"startedAt": at}}));
    let pod_ip = format!("10.244.{}.{}", (ip / 250) % 250, ip % 250 + 1);
    json!({
        "phase": "Running", "conditions": conditions(true),
        "hostIP": format!("10.1.0.{}", node + 1), "hostIPs": [{"ip": format!("10.1.0.{}", node + 1)}],
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}], "startTime": at,
        "initContainerStatuses": init_statuses(pod), "containerStatuses": containers,
    })
}

fn finished(pod: &Pod, node: usize, succeeded: bool) -> Value {
    let at = now();
    let (code, reason) = if succeeded { (0, "Completed") } else { (1, "Error") };
    let terminated = json!({"terminated": {"exitCode": code, "reason": reason, "startedAt": at, "finishedAt": at}});
    let containers = container_statuses(pod, false, &terminated);
    json!({
        "phase": if succeeded { "Succeeded" } else { "Failed" }, "conditions": conditions(false),
        "hostIP": format!("10.1.0.{}", node + 1), "hostIPs": [{"ip": format!("10.1.0.{}", node + 1)}],
        "startTime": at, "initContainerStatuses": init_statuses(pod), "containerStatuses": containers,
    })
}
