//! The Kubernetes side of the installer, at the edge: wait for the API the machines
//! bring up (a small poll of `/readyz`), apply the [`crate::platform`] steps and wait for
//! their workloads through the service manager's Kubernetes layer ([`Cluster::apply_all`],
//! [`service_manager::wait::until_ready`]), wait for the nodes (a poll: nodes are not planned
//! objects), install the `hcp` catalog service through the service manager, drain machines
//! that are about to be removed, and read back what the final report and the credentials
//! file need. Deciding *what* to apply is pure and lives elsewhere.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Service};
use serde::Serialize;
use service_manager::actions::{create, get};
use service_manager::cluster::{Cluster, ClusterError};
use service_manager::instance::InstanceError;
use service_manager::objects::{Kind, KubeObject};
use service_manager::progress::Progress;
use service_manager::request::InstanceRequest;
use service_manager::ClusterProfile;

use crate::config::Config;
use crate::platform::Step;

/// The catalog service that is the platform.
pub const PLATFORM_SERVICE: &str = "stackato.hpe.hcp";
/// Its instance id (and namespace).
pub const PLATFORM_INSTANCE: &str = "hcp";

/// A failed wait, drain or platform call.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// A call failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The platform service failed.
    #[error(transparent)]
    Instance(#[from] InstanceError),
    /// Platform objects did not become ready.
    #[error(transparent)]
    Wait(#[from] service_manager::wait::WaitError),
    /// Something was not ready in time.
    #[error("{what} not ready after {}s:\n  {}", waited.as_secs(), details.join("\n  "))]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        waited: Duration,
        /// What is still missing, one line each.
        details: Vec<String>,
    },
}

/// How long to wait, and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    /// Give up after this long.
    pub timeout: Duration,
    /// Look again after this long.
    pub interval: Duration,
}

/// Asks `pending` every `waits.interval` what is still being waited for, until the answer is
/// nothing. `report` hears each answer that differs from the one before, so an operator sees
/// progress without repetition; after `waits.timeout` the last answer is the error's detail.
async fn poll_until<F, Fut>(
    waits: Waits,
    what: impl FnOnce() -> String,
    mut pending: F,
    mut report: impl FnMut(&[String]),
) -> Result<(), KubeError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<String>, KubeError>>,
{
    let started = Instant::now();
    let mut last: Vec<String> = Vec::new();
    loop {
        let waiting = pending().await?;
        if waiting.is_empty() {
            return Ok(());
        }
        if waiting != last {
            report(&waiting);
            last = waiting;
        }
        if started.elapsed() >= waits.timeout {
            return Err(KubeError::Timeout { what: what(), waited: started.elapsed(), details: last });
        }
        tokio::time::sleep(waits.interval).await;
    }
}

/// Polls `GET /readyz` until the API server answers; `report` hears each failure (once per
/// distinct message), so an operator sees why it is still waiting.
pub async fn wait_for_api(cluster: &Cluster, waits: Waits, mut report: impl FnMut(&str)) -> Result<(), KubeError> {
    poll_until(
        waits,
        || format!("the Kubernetes API at {}", cluster.server()),
        move || async move { Ok(cluster.ready().await.err().map(|e| e.to_string()).into_iter().collect()) },
        |why| report(&why[0]),
    )
    .await
}

/// Applies the objects of `step` with the service manager's server-side apply: namespaces
/// first (everything else may live in them), then the rest; then waits with its watch until
/// every workload of the step is ready. `cluster` bounds it all with its deadline.
pub async fn apply_and_wait(cluster: &Cluster, step: &Step, progress: &dyn Progress) -> Result<(), KubeError> {
    let (namespaces, rest): (Vec<KubeObject>, Vec<KubeObject>) =
        step.objects.iter().cloned().partition(|o| o.kind() == Kind::Namespace);
    cluster.apply_all(&namespaces).await?;
    cluster.apply_all(&rest).await?;
    service_manager::wait::until_ready(cluster, &step.objects, &format!("{} ({})", step.name, step.title), progress)
        .await?;
    Ok(())
}

/// Whether a node reports `Ready=True`, and its Ready condition's reason and message if not.
pub fn node_readiness(node: &Node) -> Result<(), String> {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    match conditions.iter().find(|c| c.type_ == "Ready") {
        Some(c) if c.status == "True" => Ok(()),
        Some(c) => Err(format!("{} {}", c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default())
            .trim()
            .to_string()),
        None => Err("has not reported yet".into()),
    }
}

/// Waits until `expected` nodes are registered and Ready; returns how many are Ready.
pub async fn wait_for_nodes(
    cluster: &Cluster,
    expected: usize,
    waits: Waits,
    report: impl FnMut(&[String]),
) -> Result<usize, KubeError> {
    let ready = std::cell::Cell::new(0);
    let counted = &ready;
    let not_ready = move || async move {
        let nodes: Vec<Node> = cluster.list_cluster_scoped().await?;
        let mut waiting = Vec::new();
        for node in &nodes {
            if let Err(why) = node_readiness(node) {
                waiting.push(format!("node {}: {why}", node.metadata.name.clone().unwrap_or_default()));
            }
        }
        counted.set(nodes.len() - waiting.len());
        if counted.get() >= expected {
            return Ok(Vec::new());
        }
        waiting.insert(0, format!("{}/{expected} nodes Ready ({} registered)", counted.get(), nodes.len()));
        Ok(waiting)
    };
    poll_until(waits, || "the nodes".to_string(), not_ready, report).await?;
    Ok(ready.get())
}

/// The service manager request that installs the platform for `config`.
pub fn platform_request(config: &Config) -> InstanceRequest {
    let mut sets = vec![("DOMAIN".to_string(), config.domain.clone())];
    if let Some(ldap) = &config.ldap {
        sets.extend(ldap_parameters(ldap));
    }
    InstanceRequest {
        service_id: PLATFORM_SERVICE.into(),
        product_version: None,
        sdl_version: None,
        idl: sdl::Idl::default(),
        idl_source: "bootstrap".into(),
        sets,
        instance_id: Some(PLATFORM_INSTANCE.into()),
    }
}

/// The `hcp` parameters of the identity provider's LDAP connector (Dex's) for bootstrap's
/// `LDAP.*` properties. Stackato's filters name the attribute compared with the user
/// (`uid={0}`: users sign in with `uid`; `member={0}`: a group lists its members' DNs in
/// `member`); Dex takes those attribute names.
pub fn ldap_parameters(ldap: &crate::config::Ldap) -> Vec<(String, String)> {
    let attribute = |filter: &str| {
        let inner = filter.trim().trim_start_matches('(').trim_end_matches(')');
        inner
            .strip_suffix("={0}")
            .filter(|a| !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            .map(str::to_string)
    };
    let mut sets = vec![
        ("LDAP_URI".to_string(), ldap.uri.clone()),
        ("LDAP_BIND_DN".to_string(), ldap.bind_dn.clone()),
        ("ldap-bind-password".to_string(), ldap.bind_password.expose().to_string()),
        ("LDAP_USER_SEARCH_BASE".to_string(), ldap.user_search_base.clone()),
        ("LDAP_PROVIDER_NAME".to_string(), ldap.provider_name.clone()),
    ];
    if let Some(user) = attribute(&ldap.user_search_filter) {
        sets.push(("LDAP_USER_ATTRIBUTE".to_string(), user));
    }
    if let Some(base) = &ldap.group_search_base {
        sets.push(("LDAP_GROUP_SEARCH_BASE".to_string(), base.clone()));
    }
    if let Some(member) = ldap.group_search_filter.as_deref().and_then(attribute) {
        sets.push(("LDAP_GROUP_MEMBER_ATTRIBUTE".to_string(), member));
    }
    sets
}

/// The cluster profile the platform (and later instances) are planned with: the storage
/// classes this install made.
pub fn platform_profile(config: &Config) -> ClusterProfile {
    ClusterProfile {
        block_storage_class: Some(crate::platform::BLOCK_CLASS.into()),
        shared_storage_class: (config.gluster_node_count > 0).then(|| crate::platform::SHARED_CLASS.into()),
        ..ClusterProfile::default()
    }
}

/// Installs (or converges) the platform service and waits until it runs.
pub async fn install_platform(
    cluster: &Cluster,
    catalog: &sdl::catalog::Catalog,
    config: &Config,
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<create::Outcome, KubeError> {
    let options = create::Options { wait: true, timeout, readiness: false, grants: true };
    Ok(create::run(cluster, catalog, &platform_request(config), &platform_profile(config), options, progress).await?)
}

/// What the operator is told, and the credentials kept for them.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformReport {
    /// `(record, points at)` DNS records to create, e.g. `("hsm.example.com", "192.0.2.7")`.
    pub dns: Vec<(String, String)>,
    /// Endpoints by name (`hsm`, `identity`).
    pub endpoints: BTreeMap<String, String>,
    /// The credentials file's content (secret: write it 0600, never print it).
    #[serde(skip)]
    pub credentials: String,
}

/// Reads the platform's public addresses and generated credentials back from the cluster.
pub async fn platform_report(
    cluster: &Cluster,
    config: &Config,
    api_address: &str,
    kubeconfig: &std::path::Path,
) -> Result<PlatformReport, KubeError> {
    let detail = get::run(cluster, PLATFORM_INSTANCE).await?;
    let address = |service: &str| {
        detail
            .service_locations
            .iter()
            .find(|l| l.service_name == service)
            .map(|l| l.public_location.clone())
            .unwrap_or_else(|| "<pending>".into())
    };
    let domain = &config.domain;
    let hsm = address("hsm-server");
    let identity = address("ident-api");
    let mut dns = Vec::new();
    if !matches!(config.provider, crate::config::Provider::Local(_)) {
        dns.push((format!("api.{domain}"), api_address.to_string()));
    }
    dns.extend([
        (format!("hcp.{domain}"), hsm.clone()),
        (format!("hsm.{domain}"), hsm),
        (format!("identity.{domain}"), identity.clone()),
        (format!("*.identity.{domain}"), identity),
    ]);
    let endpoints = BTreeMap::from([
        ("hsm".to_string(), format!("https://hsm.{domain}")),
        ("identity".to_string(), format!("https://identity.{domain}")),
    ]);
    let secret = cluster.get::<Secret>(PLATFORM_INSTANCE, service_manager::plan::SECRET_NAME).await?;
    let data = secret.and_then(|s| s.data).unwrap_or_default();
    let value = |key: &str| data.get(key).map(|b| String::from_utf8_lossy(&b.0).into_owned()).unwrap_or_default();
    let broker_user = detail.parameters.get("HSM_BROKER_USER").cloned().unwrap_or_else(|| "broker".into());
    let credentials = serde_norway::to_string(&serde_json::json!({
        "cluster": config.cluster_name,
        "kubeconfig": kubeconfig.display().to_string(),
        "identity": {"url": endpoints["identity"], "username": "admin", "password": value("identity-admin-password")},
        "hsm": {"url": endpoints["hsm"], "client_id": "hsm"},
        "broker": {"url": endpoints["hsm"], "username": broker_user, "password": value("hsm-broker-password")},
        "platform_ca_certificate": value("hcp-ca-cert"),
    }))
    .expect("YAML serialises");
    Ok(PlatformReport {
        dns,
        endpoints,
        credentials: format!(
            "# Credentials of Stratus cluster {}. Keep this file private.\n{credentials}",
            config.cluster_name
        ),
    })
}

/// What draining a node did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drained {
    /// Pods evicted.
    pub evicted: Vec<String>,
    /// Whether the Node object was there (and is now deleted).
    pub existed: bool,
}

/// Cordons node `name`, evicts its pods (not DaemonSet or static pods, which go with the
/// machine), waits until they are gone, and deletes the Node object — what `kubectl drain`
/// and `kubectl delete node` do before a machine is removed.
pub async fn drain_node(cluster: &Cluster, name: &str, waits: Waits) -> Result<Drained, KubeError> {
    if !cluster.cordon(name).await? {
        return Ok(Drained::default());
    }
    let movable = |pod: &Pod| {
        let owners = pod.metadata.owner_references.clone().unwrap_or_default();
        let daemon = owners.iter().any(|o| o.kind == "DaemonSet");
        let mirror = pod.metadata.annotations.as_ref().is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
        !daemon && !mirror
    };
    let pods: Vec<Pod> = cluster.pods_on_node(name).await?.into_iter().filter(movable).collect();
    let mut evicted = Vec::new();
    for pod in &pods {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        cluster.evict(&namespace, &pod_name).await?;
        evicted.push(format!("{namespace}/{pod_name}"));
    }
    let movable = &movable;
    let left = move || async move {
        Ok(cluster
            .pods_on_node(name)
            .await?
            .into_iter()
            .filter(movable)
            .map(|p| {
                format!("pod {}/{}", p.metadata.namespace.unwrap_or_default(), p.metadata.name.unwrap_or_default())
            })
            .collect())
    };
    poll_until(waits, || format!("draining node {name}"), left, |_| {}).await?;
    cluster.delete_node(name).await?;
    Ok(Drained { evicted, existed: true })
}

/// Namespaces Kubernetes itself keeps; uninstall leaves them (and the platform's own).
pub const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// What [`release_cloud_resources`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Released {
    /// Namespaces deleted (service instances and the platform service).
    pub namespaces: Vec<String>,
    /// LoadBalancer Services deleted outside those namespaces.
    pub load_balancers: Vec<String>,
    /// Claims deleted outside those namespaces.
    pub claims: Vec<String>,
}

/// Before the machines go: deletes every namespace but the system's and those in `keep` (the
/// platform's: its CSI driver and cloud controller must live to clean up), then the
/// LoadBalancer Services and claims left elsewhere, and waits until the cloud controller and
/// the CSI driver have released their load balancers and volumes (no LoadBalancer Service and
/// no volume with reclaim policy `Delete` left).
pub async fn release_cloud_resources(
    cluster: &Cluster,
    keep: &[String],
    waits: Waits,
    report: impl FnMut(&[String]),
) -> Result<Released, KubeError> {
    let kept = |ns: &str| SYSTEM_NAMESPACES.contains(&ns) || keep.iter().any(|k| k == ns);
    let mut released = Released::default();
    for namespace in cluster.namespaces("").await? {
        let name = namespace.metadata.name.clone().unwrap_or_default();
        if !kept(&name) {
            cluster.delete_namespace(&name).await?;
            released.namespaces.push(name);
        }
    }
    for service in cluster.list_all_namespaces::<Service>().await? {
        let namespace = service.metadata.namespace.clone().unwrap_or_default();
        let balanced = service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
        if balanced && kept(&namespace) {
            let name = service.metadata.name.clone().unwrap_or_default();
            cluster.delete::<Service>(&namespace, &name).await?;
            released.load_balancers.push(format!("{namespace}/{name}"));
        }
    }
    for claim in cluster.list_all_namespaces::<PersistentVolumeClaim>().await? {
        let namespace = claim.metadata.namespace.clone().unwrap_or_default();
        if kept(&namespace) {
            let name = claim.metadata.name.clone().unwrap_or_default();
            cluster.delete::<PersistentVolumeClaim>(&namespace, &name).await?;
            released.claims.push(format!("{namespace}/{name}"));
        }
    }
    let deleted = &released.namespaces;
    let left = move || async move {
        let mut left = Vec::new();
        for namespace in cluster.namespaces("").await? {
            let name = namespace.metadata.name.clone().unwrap_or_default();
            if deleted.contains(&name) {
                left.push(format!("namespace {name} (terminating)"));
            }
        }
        for service in cluster.list_all_namespaces::<Service>().await? {
            if service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer") {
                let ns = service.metadata.namespace.unwrap_or_default();
                left.push(format!("load balancer of Service {ns}/{}", service.metadata.name.unwrap_or_default()));
            }
        }
        for volume in cluster.list_cluster_scoped::<PersistentVolume>().await? {
            let policy = volume.spec.as_ref().and_then(|s| s.persistent_volume_reclaim_policy.as_deref());
            if policy == Some("Delete") {
                left.push(format!("volume {}", volume.metadata.name.unwrap_or_default()));
            }
        }
        Ok(left)
    };
    poll_until(waits, || "the release of load balancers and volumes".to_string(), left, report).await?;
    Ok(released)
}

/// Namespaces the platform plan creates (kept by uninstall until the machines go).
pub fn platform_namespaces(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .flat_map(|s| s.objects.iter())
        .filter_map(|o| match o {
            KubeObject::Namespace(Namespace { metadata, .. }) => metadata.name.clone(),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Ldap, Secret};

    fn ldap(user_filter: &str, group_filter: Option<&str>) -> Ldap {
        Ldap {
            uri: "ldaps://ldap.example.com:636".into(),
            bind_dn: "cn=reader,dc=example,dc=com".into(),
            bind_password: Secret::new("bind-secret".into()),
            user_search_base: "ou=people,dc=example,dc=com".into(),
            user_search_filter: user_filter.into(),
            group_search_base: group_filter.map(|_| "ou=groups,dc=example,dc=com".into()),
            group_search_filter: group_filter.map(str::to_string),
            provider_name: "corp".into(),
        }
    }

    #[test]
    fn ldap_properties_become_the_connector_parameters() {
        let sets = ldap_parameters(&ldap("uid={0}", Some("(member={0})")));
        let got: Vec<(&str, &str)> = sets.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("LDAP_URI", "ldaps://ldap.example.com:636"),
                ("LDAP_BIND_DN", "cn=reader,dc=example,dc=com"),
                ("ldap-bind-password", "bind-secret"),
                ("LDAP_USER_SEARCH_BASE", "ou=people,dc=example,dc=com"),
                ("LDAP_PROVIDER_NAME", "corp"),
                ("LDAP_USER_ATTRIBUTE", "uid"),
                ("LDAP_GROUP_SEARCH_BASE", "ou=groups,dc=example,dc=com"),
                ("LDAP_GROUP_MEMBER_ATTRIBUTE", "member"),
            ]
        );
        // A filter that is not `attribute={0}` leaves the SDL's default; no groups, no group keys.
        let sets = ldap_parameters(&ldap("(&(objectClass=person)(sAMAccountName={0}))", None));
        let names: Vec<&str> = sets.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["LDAP_URI", "LDAP_BIND_DN", "ldap-bind-password", "LDAP_USER_SEARCH_BASE", "LDAP_PROVIDER_NAME"]
        );
        // Every name is a parameter of the shipped hcp SDL.
        let catalog =
            sdl::catalog::Catalog::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../catalog")))
                .unwrap();
        let service = catalog.service(PLATFORM_SERVICE).unwrap();
        let sdl = catalog.load_sdl(service, service.versions.last().unwrap()).unwrap();
        let all = ldap_parameters(&ldap("uid={0}", Some("member={0}")));
        for (name, _) in &all {
            assert!(sdl.parameter(name).is_some(), "{name} is not a parameter of hcp");
        }
        assert!(sdl.parameter("ldap-bind-password").is_some_and(|p| p.secret));
    }
}
