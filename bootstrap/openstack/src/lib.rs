//! The installer's OpenStack edge: preflight checks through the `openstack` crate (Keystone
//! authentication, Glance image, Nova flavors, key pair and absolute limits, Neutron network,
//! subnet and floating-IP pool) that list every problem before anything is created, and the
//! sweep of what Kubernetes itself created for a cluster (Octavia load balancers of
//! LoadBalancer Services, their floating IPs, Cinder volumes of claims) so nothing is left
//! behind after `terraform destroy`. A leaf crate: nothing else builds the OpenStack SDK.

use openstack::auth::{AuthType, Scope};
use openstack::session::ServiceType;
use openstack::session::Session;
use openstack::{Cloud, ErrorKind};
use serde_json::Value;

/// Where and as whom, and what the cluster needs: the cloud helper's request types
/// (`bootstrap-cloud-protocol`), taken as they are.
pub use bootstrap_cloud_protocol::openstack::{Connection, FlavorUse, IdOrName, Requirements};

/// The `openstack` crate's own [`IdOrName`].
fn sdk_id_or_name(value: &IdOrName) -> openstack::IdOrName {
    match value {
        IdOrName::Id(id) => openstack::IdOrName::Id(id.clone()),
        IdOrName::Name(name) => openstack::IdOrName::Name(name.clone()),
    }
}

/// A catalog service at a major API version, for the calls the `openstack` crate does not
/// wrap (Octavia, Nova's limits).
#[derive(Debug, Clone, Copy)]
pub struct ServiceAt(pub &'static str, pub u16);

impl ServiceType for ServiceAt {
    fn catalog_type(&self) -> &'static str {
        self.0
    }

    fn major_version_supported(&self, version: openstack::common::ApiVersion) -> bool {
        version.0 == self.1
    }
}

/// Octavia, API v2.
const LOAD_BALANCER: ServiceAt = ServiceAt("load-balancer", 2);
/// Nova, API v2.x.
const COMPUTE: ServiceAt = ServiceAt("compute", 2);

/// A failed call.
#[derive(Debug, thiserror::Error)]
#[error("OpenStack {action}: {message}")]
pub struct OpenStackError {
    action: String,
    message: String,
}

fn failed(action: impl Into<String>) -> impl Fn(openstack::Error) -> OpenStackError {
    let action = action.into();
    move |e| OpenStackError { action: action.clone(), message: with_causes(&e) }
}

/// `result`, with a request that could not be sent explained: the SDK keeps only "error
/// sending request for url (…)", so that URL is asked once more with the same client to learn
/// why (an unknown certificate issuer, a refused connection).
async fn explained<T>(http: &reqwest::Client, result: Result<T, OpenStackError>) -> Result<T, OpenStackError> {
    let Err(mut error) = result else { return result };
    let url = error
        .message
        .split_once("for url (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(url, _)| url.to_string());
    if let Some(url) = url {
        if let Err(e) = http.get(&url).send().await {
            let (first, all) = (e.to_string(), with_causes(&e));
            error.message.push_str(all.strip_prefix(first.as_str()).unwrap_or(&all));
        }
    }
    Err(error)
}

/// An error and its causes, `: `-separated (an HTTPS failure says why: "invalid peer
/// certificate: UnknownIssuer"), each said once.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    text
}

/// An authenticated client, and a raw session for the calls the crate does not wrap.
pub struct Client {
    cloud: Cloud,
    session: Session,
    http: reqwest::Client,
}

/// The project to work in: by ID on its own, by name within the domain.
fn scope(connection: &Connection) -> Scope {
    let domain = match &connection.project {
        IdOrName::Id(_) => None,
        IdOrName::Name(_) => Some(sdk_id_or_name(&connection.domain)),
    };
    Scope::Project { project: sdk_id_or_name(&connection.project), domain }
}

/// Authenticates with Keystone; a refusal is an error naming the URL and user (never the
/// password).
pub async fn connect(connection: &Connection) -> Result<Client, OpenStackError> {
    let action = format!("authentication at {} as {}", connection.auth_url, connection.username);
    let http = http_client(connection)?;
    match &connection.domain {
        IdOrName::Name(domain) => {
            let password = openstack::auth::Password::new(
                &connection.auth_url,
                &connection.username,
                &connection.password,
                domain,
            )
            .map_err(failed("authentication URL"))?
            .with_scope(scope(connection));
            open(http, password, connection, &action).await
        }
        // The SDK names the user's domain only by name: with an ID, Keystone is asked for an
        // unscoped token first, and that token is exchanged for the project's.
        IdOrName::Id(domain) => {
            let token = unscoped_token(&http, connection, domain)
                .await
                .map_err(|message| OpenStackError { action: action.clone(), message })?;
            let token = openstack::auth::Token::new(&connection.auth_url, token)
                .map_err(failed("authentication URL"))?
                .with_scope(scope(connection));
            open(http, token, connection, &action).await
        }
    }
}

/// The HTTP client of every call: the usual roots, and the private CA when there is one.
fn http_client(connection: &Connection) -> Result<reqwest::Client, OpenStackError> {
    let mut builder = reqwest::Client::builder();
    if let Some(pem) = &connection.ca_certificate {
        let ca = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|e| OpenStackError {
            action: "CA certificate (OpenStack.CACertFile)".into(),
            message: e.to_string(),
        })?;
        builder = builder.add_root_certificate(ca);
    }
    builder.build().map_err(|e| OpenStackError { action: "HTTPS client".into(), message: e.to_string() })
}

/// One session (one token) for the SDK's calls and the raw ones.
async fn open<A: AuthType + 'static>(
    http: reqwest::Client,
    auth: A,
    connection: &Connection,
    action: &str,
) -> Result<Client, OpenStackError> {
    let http_for_diagnosis = http.clone();
    let session = Session::new_with_client(http.clone(), auth).await.map_err(failed(action));
    let mut session = explained(&http, session).await?;
    if !connection.region.is_empty() {
        session.endpoint_filters_mut().set_region(&connection.region);
    }
    Ok(Client { cloud: Cloud::from(session.clone()), session, http: http_for_diagnosis })
}

/// `POST /v3/auth/tokens` for the user of domain `domain_id`, unscoped; the token is in the
/// `X-Subject-Token` header. Errors say what Keystone answered, never the password.
async fn unscoped_token(http: &reqwest::Client, connection: &Connection, domain_id: &str) -> Result<String, String> {
    let body = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": connection.username, "domain": {"id": domain_id}, "password": connection.password}}}}});
    let url = format!("{}/auth/tokens", connection.auth_url.trim_end_matches('/'));
    let response = http
        .post(&url)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| with_causes(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("Keystone answered {status}"));
    }
    response
        .headers()
        .get("X-Subject-Token")
        .and_then(|t| t.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| "Keystone's answer has no X-Subject-Token".to_string())
}

fn not_found(e: &openstack::Error) -> bool {
    e.kind() == ErrorKind::ResourceNotFound
}

/// Checks the project against `needs`: every problem, each naming the properties key to fix.
/// Only a failure to reach or authenticate with the cloud is an error.
pub async fn preflight(client: &Client, needs: &Requirements) -> Result<Vec<String>, OpenStackError> {
    explained(&client.http, check(client, needs).await).await
}

async fn check(client: &Client, needs: &Requirements) -> Result<Vec<String>, OpenStackError> {
    let mut problems = Vec::new();
    match client.cloud.get_image(&needs.image).await {
        Ok(image) if format!("{:?}", image.status()).to_lowercase() != "active" => {
            problems.push(format!("OpenStack.LinuxImageID: image {} is {:?}, not active", needs.image, image.status()))
        }
        Ok(_) => {}
        Err(e) if not_found(&e) => {
            problems.push(format!("OpenStack.LinuxImageID: no image {} in the project", needs.image))
        }
        Err(e) => return Err(failed("image lookup")(e)),
    }
    let (mut cores, mut ram, mut instances) = (0u64, 0u64, 0u64);
    for flavor_use in &needs.flavors {
        match client.cloud.get_flavor(&flavor_use.flavor).await {
            Ok(flavor) => {
                cores += u64::from(flavor.vcpu_count()) * u64::from(flavor_use.count);
                ram += flavor.ram_size() * u64::from(flavor_use.count);
            }
            Err(e) if not_found(&e) => {
                problems.push(format!("{}: no flavor {} in the project", flavor_use.key, flavor_use.flavor))
            }
            Err(e) => return Err(failed("flavor lookup")(e)),
        }
        instances += u64::from(flavor_use.count);
    }
    let network = match client.cloud.get_network(&needs.network).await {
        Ok(network) => Some(network.id().clone()),
        Err(e) if not_found(&e) => {
            problems.push(format!("OpenStack.NetworkID: no network {}", needs.network));
            None
        }
        Err(e) => return Err(failed("network lookup")(e)),
    };
    match client.cloud.get_subnet(&needs.subnet).await {
        Ok(subnet) => {
            if let Some(network) = &network {
                if subnet.network_id() != network {
                    problems.push(format!(
                        "OpenStack.SubnetID: subnet {} belongs to network {}, not to OpenStack.NetworkID {}",
                        needs.subnet,
                        subnet.network_id(),
                        needs.network
                    ));
                }
            }
        }
        Err(e) if not_found(&e) => problems.push(format!("OpenStack.SubnetID: no subnet {}", needs.subnet)),
        Err(e) => return Err(failed("subnet lookup")(e)),
    }
    match client.cloud.get_keypair(&needs.keypair).await {
        Ok(_) => {}
        Err(e) if not_found(&e) => {
            problems.push(format!("OpenStack.Keypair: no key pair {} for this user", needs.keypair))
        }
        Err(e) => return Err(failed("key pair lookup")(e)),
    }
    match client.cloud.get_network(&needs.floating_ip_pool).await {
        Ok(pool) if pool.external() != Some(true) => problems.push(format!(
            "OpenStack.FloatingIPPoolName: network {} is not external: floating IPs cannot come from it",
            needs.floating_ip_pool
        )),
        Ok(_) => {}
        Err(e) if not_found(&e) => problems.push(format!(
            "OpenStack.FloatingIPPoolName: no external network {} for floating IPs",
            needs.floating_ip_pool
        )),
        Err(e) => return Err(failed("floating IP pool lookup")(e)),
    }
    let limits: Value = client.session.get_json(COMPUTE, ["limits"]).await.map_err(failed("compute limits"))?;
    let absolute = &limits["limits"]["absolute"];
    let room = |max: &str, used: &str| {
        let max = absolute[max].as_i64().unwrap_or(-1);
        let used = absolute[used].as_i64().unwrap_or(0);
        (max >= 0).then(|| (max - used).max(0) as u64)
    };
    for (what, needed, max, used) in [
        ("instances", instances, "maxTotalInstances", "totalInstancesUsed"),
        ("vCPUs", cores, "maxTotalCores", "totalCoresUsed"),
        ("MB of RAM", ram, "maxTotalRAMSize", "totalRAMUsed"),
    ] {
        if let Some(free) = room(max, used) {
            if needed > free {
                problems.push(format!("quota: the cluster needs {needed} {what}, the project has {free} left"));
            }
        }
    }
    Ok(problems)
}

/// Something Kubernetes created in the cloud for a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// `load balancer`, `floating IP` or `volume`.
    pub kind: &'static str,
    /// Its id.
    pub id: String,
    /// Its name or description.
    pub name: String,
}

/// Octavia balancers the OpenStack cloud controller made for the cluster's Services: it names
/// them `kube_service_<cluster>_<namespace>_<service>`.
fn balancer_prefix(cluster: &str) -> String {
    format!("kube_service_{cluster}_")
}

/// What Kubernetes created for `cluster` and left: load balancers named for it, floating IPs
/// the controller described as its own, volumes the Cinder CSI driver tagged with it.
pub async fn leftovers(client: &Client, cluster: &str) -> Result<Vec<Leftover>, OpenStackError> {
    explained(&client.http, find_leftovers(client, cluster).await).await
}

async fn find_leftovers(client: &Client, cluster: &str) -> Result<Vec<Leftover>, OpenStackError> {
    let mut found = Vec::new();
    let balancers: Value = client
        .session
        .get_json(LOAD_BALANCER, ["lbaas", "loadbalancers"])
        .await
        .map_err(failed("list load balancers"))?;
    for lb in balancers["loadbalancers"].as_array().into_iter().flatten() {
        let name = lb["name"].as_str().unwrap_or_default();
        if name.starts_with(&balancer_prefix(cluster)) {
            found.push(Leftover {
                kind: "load balancer",
                id: lb["id"].as_str().unwrap_or_default().to_string(),
                name: name.to_string(),
            });
        }
    }
    let marker = format!("from cluster {cluster}");
    for ip in client.cloud.list_floating_ips().await.map_err(failed("list floating IPs"))? {
        let description = ip.description().clone().unwrap_or_default();
        if description.ends_with(&marker) {
            found.push(Leftover { kind: "floating IP", id: ip.id().clone(), name: description });
        }
    }
    for volume in client.cloud.list_volumes().await.map_err(failed("list volumes"))? {
        if volume.metadata().get("cinder.csi.openstack.org/cluster").map(String::as_str) == Some(cluster) {
            found.push(Leftover { kind: "volume", id: volume.id().clone(), name: volume.name().clone() });
        }
    }
    Ok(found)
}

/// Deletes every leftover of `cluster` (balancers with everything under them first, then
/// floating IPs, then volumes); returns the ones that could not be deleted, with why.
pub async fn sweep(client: &Client, cluster: &str) -> Result<Vec<(Leftover, String)>, OpenStackError> {
    let mut failures = Vec::new();
    for leftover in leftovers(client, cluster).await? {
        let outcome = match leftover.kind {
            "load balancer" => client
                .session
                .delete(LOAD_BALANCER, ["lbaas", "loadbalancers", leftover.id.as_str()])
                .query(&[("cascade", "true")])
                .send()
                .await
                .map(|_| ()),
            "floating IP" => match client.cloud.get_floating_ip(&leftover.id).await {
                Ok(ip) => ip.delete().await.map(|_| ()),
                Err(e) => Err(e),
            },
            _ => match client.cloud.get_volume(&leftover.id).await {
                Ok(volume) => volume.delete().await.map(|_| ()),
                Err(e) => Err(e),
            },
        };
        match outcome {
            Ok(()) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => failures.push((leftover, e.to_string())),
        }
    }
    Ok(failures)
}
