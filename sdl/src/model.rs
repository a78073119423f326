//! The SDL (service definition) types: one service, its components, jobs, volumes and
//! parameters, exactly as written in `sdl.json`.
//!
//! Field names follow Stackato 4's SDL (`min_RAM_mb`, `service_ports`, ...). Fields marked
//! *Stratus* are modern, optional additions; an SDL without them is still valid. Unknown fields
//! are rejected at parse time so typos never pass silently.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A service definition: what one service instance is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sdl {
    /// Service name, e.g. `mysql`; also the last part of the service id.
    pub name: String,
    /// Version of this definition (semver; used as a Kubernetes label value).
    pub sdl_version: String,
    /// Version of the product the definition deploys, e.g. `8.4`.
    pub product_version: String,
    /// Vendor, e.g. `hpe`; the middle part of the service id.
    pub vendor: String,
    /// Free text shown by `hsm get-service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Long-running parts of the service.
    #[serde(default)]
    pub components: Vec<Component>,
    /// Jobs run to completion before any component starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preflight: Vec<Component>,
    /// Jobs run to completion after every component is ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub postflight: Vec<Component>,
    /// Persistent volumes that components mount.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Global parameters; components list the ones they receive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
    /// Optional platform features the instance asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Features>,
    /// *Stratus*: what an application bound to an instance receives (`docs/bindings.md`).
    /// Without it the service is not bindable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindings: Option<Bindings>,
}

/// *Stratus*: how bindings of an instance are made: the binding Secret's keys (Service Binding
/// for Kubernetes layout), and the jobs that create and remove a per-binding user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bindings {
    /// The binding's `type` key, e.g. `mysql` (a DNS label).
    #[serde(rename = "type")]
    pub binding_type: String,
    /// The binding's `provider` key; the SDL's vendor when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Where the binding's `host` and `port` come from.
    pub endpoint: BindingEndpoint,
    /// Further keys of the binding Secret, each a template of `${NAME}`s: the instance's
    /// parameters, the platform variables and the binding variables (`BINDING_ID`,
    /// `BINDING_HOST`, `BINDING_PORT`, and with `user` `BINDING_USERNAME`, `BINDING_PASSWORD`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub credentials: BTreeMap<String, String>,
    /// Per-binding credentials: a user name derived from the binding id and a random password,
    /// given to the binding as `username` and `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<BindingUser>,
    /// A job creating the binding's user in the service (like a `postflight` entry); it gets
    /// the binding variables as environment variables (credentials from the binding Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_job: Option<Component>,
    /// A job removing the binding's user when the binding is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unbind_job: Option<Component>,
}

/// The component and port a binding points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingEndpoint {
    /// A component of the service (its Service, or its `external_name` for a connector).
    pub component: String,
    /// The name of one of the component's `service_ports`.
    pub port: String,
}

/// Limits of the per-binding user the software accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingUser {
    /// Longest user name the software accepts (8 to 63; the name is `b` and hex digits).
    #[serde(default = "default_user_length")]
    pub max_length: u32,
    /// Length of the generated password (16 to 128; letters and digits).
    #[serde(default = "default_password_length")]
    pub password_length: u32,
}

impl Bindings {
    /// The binding variables a credential template may use (`with_user`: the SDL asks for
    /// per-binding credentials).
    pub fn variables(with_user: bool) -> &'static [&'static str] {
        if with_user {
            &["BINDING_ID", "BINDING_HOST", "BINDING_PORT", "BINDING_USERNAME", "BINDING_PASSWORD"]
        } else {
            &["BINDING_ID", "BINDING_HOST", "BINDING_PORT"]
        }
    }

    /// The keys Stratus sets itself, which `credentials` may not name.
    pub fn reserved_keys(with_user: bool) -> &'static [&'static str] {
        if with_user {
            &["type", "provider", "username", "password"]
        } else {
            &["type", "provider"]
        }
    }

    /// The bind and unbind jobs the SDL names.
    pub fn jobs(&self) -> impl Iterator<Item = &Component> {
        self.bind_job.iter().chain(self.unbind_job.iter())
    }
}

fn default_user_length() -> u32 {
    17
}

fn default_password_length() -> u32 {
    32
}

/// A component (long-running workload) or, in `preflight`/`postflight`, a job.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Component name; becomes workload and Service names.
    pub name: String,
    /// Image registry host, e.g. `docker.io` (structured image form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Image organization, e.g. `library` (structured image form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Image name (structured form) or a whole reference such as `mysql:8.4.3` (old form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image tag (structured image form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Minimum memory in MiB (becomes the memory request).
    #[serde(rename = "min_RAM_mb", default)]
    pub min_ram_mb: u32,
    /// Minimum scratch disk in GiB (becomes the ephemeral-storage request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_disk_gb: Option<u32>,
    /// Minimum virtual CPUs, may be fractional (becomes the CPU request).
    #[serde(rename = "min_VCPU", default)]
    pub min_vcpu: f64,
    /// *Stratus*: memory limit in MiB.
    #[serde(rename = "max_RAM_mb", default, skip_serializing_if = "Option::is_none")]
    pub max_ram_mb: Option<u32>,
    /// *Stratus*: CPU limit in virtual CPUs.
    #[serde(rename = "max_VCPU", default, skip_serializing_if = "Option::is_none")]
    pub max_vcpu: Option<f64>,
    /// Target platform, `linux-x86_64` (default) or `linux-aarch64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// `container` (default) or `vm`.
    #[serde(default)]
    pub workload_type: WorkloadType,
    /// Linux capabilities to add; `ALL` means a privileged container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Command that replaces the image's entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    /// Instances started by default; also the lowest an IDL may scale to.
    #[serde(default = "one")]
    pub min_instances: u32,
    /// Highest number of instances an IDL may ask for.
    #[serde(default = "one")]
    pub max_instances: u32,
    /// Ports the component serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_ports: Vec<ServicePort>,
    /// Volumes the component mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// Names of the global parameters this component receives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<String>,
    /// Components that must be ready before this one starts (ordering; no cycles).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Stackato 4 field, accepted for compatibility and ignored: use `placement`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub affinity: Vec<String>,
    /// Extra pod labels, each `key=value`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// A DNS name outside the cluster this component stands for (connector services): the
    /// component gets an ExternalName Service and no workload. May use `${PARAMETER}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_name: Option<String>,
    /// *Stratus*: readiness/liveness/startup probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<Probes>,
    /// *Stratus*: where instances may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// *Stratus*: give instances stable names and per-index DNS (a StatefulSet) even
    /// without per-instance volumes — for clustered software such as nats or consul.
    #[serde(default, skip_serializing_if = "is_false")]
    pub stable_identity: bool,
    /// *Stratus*: run the pods as a ServiceAccount of their own (named after the component),
    /// with the Kubernetes API permissions listed. Without it, pods get no API credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ServiceAccount>,
    /// Jobs only: retries after a failed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<u32>,
    /// Jobs only: seconds the job may run in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

fn one() -> u32 {
    1
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// How a component runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadType {
    /// A container in a pod (the only kind the Kubernetes planner runs).
    #[default]
    Container,
    /// A virtual machine (Stackato 4 accepted it; Stratus rejects it at planning).
    Vm,
}

/// A port a component serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePort {
    /// Port name (Kubernetes port-name rules, at most 15 characters).
    pub name: String,
    /// `TCP` (default) or `UDP`.
    #[serde(default)]
    pub protocol: Protocol,
    /// Port the Service listens on.
    pub source_port: u32,
    /// Port the container listens on.
    pub target_port: u32,
    /// Reachable from outside the cluster through a load balancer.
    #[serde(default)]
    pub public: bool,
}

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub enum Protocol {
    /// TCP.
    #[default]
    TCP,
    /// UDP.
    UDP,
}

impl Protocol {
    /// The protocol as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::TCP => "TCP",
            Protocol::UDP => "UDP",
        }
    }
}

/// A persistent volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// Volume name; becomes the claim name.
    pub name: String,
    /// Size in GiB.
    pub size_gb: u32,
    /// `ext4` (default) or `xfs`.
    #[serde(default)]
    pub filesystem: Filesystem,
    /// One volume shared by every mounting component (ReadWriteMany) instead of one per
    /// component instance (ReadWriteOnce).
    #[serde(default)]
    pub shared: bool,
}

/// Filesystem of a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Filesystem {
    /// ext4.
    #[default]
    Ext4,
    /// XFS.
    Xfs,
}

impl Filesystem {
    /// The filesystem's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Filesystem::Ext4 => "ext4",
            Filesystem::Xfs => "xfs",
        }
    }
}

/// Where a component mounts a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeMount {
    /// Name of a volume declared in `volumes`.
    pub volume_name: String,
    /// Absolute path inside the container.
    pub mountpoint: String,
}

/// A global parameter.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    /// Name. Secret parameters are lowercase-with-dashes (they become files in
    /// `/etc/secrets/`); the others are environment variable names.
    pub name: String,
    /// What the parameter means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Value used when the IDL gives none.
    #[serde(default, deserialize_with = "scalar::option", skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// An example value shown to users.
    #[serde(default, deserialize_with = "scalar::option", skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
    /// A value must exist after defaults and generators.
    #[serde(default)]
    pub required: bool,
    /// The value is a secret: stored in a Secret, never printed.
    #[serde(default)]
    pub secret: bool,
    /// The value may not change once the instance exists.
    #[serde(default)]
    pub immutable: bool,
    /// Type the value must parse as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<DataType>,
    /// How to generate the value when none is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<Generator>,
}

/// Type of a parameter value (values are always carried as strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    /// Any text.
    String,
    /// A whole number.
    #[serde(alias = "int")]
    Integer,
    /// A number, possibly fractional.
    Number,
    /// `true` or `false`.
    #[serde(alias = "bool")]
    Boolean,
}

/// A value generator; parameters with the same `id` share one generated object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generator {
    /// Shared identity of the generated object.
    pub id: String,
    /// What to generate.
    pub generate: Generate,
}

/// The specification of a generated object.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    /// Kind of object.
    #[serde(rename = "type")]
    pub kind: GeneratorType,
    /// Which part of the object this parameter receives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_type: Option<ValueType>,
    /// Password length (default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u32>,
    /// Characters a password is drawn from (default: letters and digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub characters: Option<String>,
    /// Key size; Stratus generates ECDSA P-256 (certificates) and Ed25519 (SSH) keys, so
    /// only 256 is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_length: Option<u32>,
    /// Certificate subject alternative names; may use `${PARAMETER}` and wildcards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// *Stratus*: generator id of the CA that signs a `Certificate` (may be omitted when the
    /// SDL has exactly one CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// *Stratus*: certificate validity in days (default 3650).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_days: Option<u32>,
}

/// Kind of generated object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum GeneratorType {
    /// A random password.
    #[default]
    Password,
    /// A self-signed certificate authority.
    CACertificate,
    /// A certificate signed by a CA of the same SDL.
    Certificate,
    /// An SSH key pair.
    SSH,
}

/// Part of a generated object a parameter receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// PEM certificate.
    Certificate,
    /// PEM (certificates) or OpenSSH (SSH) private key.
    PrivateKey,
    /// SSH public key in `authorized_keys` form.
    PublicKey,
    /// SSH key fingerprint (`SHA256:...`).
    Fingerprint,
}

/// *Stratus*: health probes of a component.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probes {
    /// When the component may receive traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Probe>,
    /// When the component must be restarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<Probe>,
    /// When a slow-starting component has started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<Probe>,
}

/// One probe: exactly one of `http`, `tcp`, `exec`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// HTTP GET check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbe>,
    /// TCP connect check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpProbe>,
    /// Command run in the container; exit 0 is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    /// Seconds before the first check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay_seconds: Option<u32>,
    /// Seconds between checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<u32>,
    /// Seconds a check may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    /// Failed checks in a row that count as unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
}

/// HTTP probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    /// Request path.
    pub path: String,
    /// Name of one of the component's ports, or a container port number.
    pub port: PortRef,
    /// `HTTP` (default) or `HTTPS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
}

/// TCP probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpProbe {
    /// Name of one of the component's ports, or a container port number.
    pub port: PortRef,
}

/// A port given by name or number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortRef {
    /// A container port number.
    Number(u32),
    /// The name of one of the component's `service_ports`.
    Name(String),
}

/// *Stratus*: a component's own ServiceAccount and what it may do in the Kubernetes API.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccount {
    /// Permissions in the instance's namespace (a Role and its RoleBinding).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<PolicyRule>,
    /// Permissions in the whole cluster (a ClusterRole and its ClusterRoleBinding, named
    /// `hsm:<instance>:<component>`). Only a cluster administrator can grant them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_rules: Vec<PolicyRule>,
}

impl ServiceAccount {
    /// Whether it asks for any permission at all.
    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty() || !self.cluster_rules.is_empty()
    }
}

/// *Stratus*: one RBAC rule, as Kubernetes' `PolicyRule` (resource rules only).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// API groups (`""` is the core group).
    pub api_groups: Vec<String>,
    /// Resources, e.g. `secrets` or `instances/status`.
    pub resources: Vec<String>,
    /// Verbs, e.g. `get`, `list`, `watch`.
    pub verbs: Vec<String>,
    /// Only the objects of these names (none: every object).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
}

/// *Stratus*: placement of a component's instances.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// How to spread instances; default `zone` when more than one instance runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<Spread>,
    /// Node labels the instances require (a key given twice is an error).
    #[serde(default, deserialize_with = "unique_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Keep instances of this component off the same node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_affinity: Option<AntiAffinity>,
}

/// Spreading of instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Spread {
    /// Evenly across availability zones.
    Zone,
    /// Evenly across nodes.
    Node,
    /// No spreading.
    None,
}

/// Node anti-affinity between instances of one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AntiAffinity {
    /// Never two instances on one node.
    Required,
    /// Avoid two instances on one node when possible.
    Preferred,
}

/// Optional platform features.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Features {
    /// Identity clients to create for the instance.
    #[serde(default)]
    pub auth: Vec<AuthZone>,
}

/// Identity zone and the clients to create in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthZone {
    /// Zone name (`hcp` for the platform zone).
    pub auth_zone: String,
    /// OAuth clients.
    #[serde(default)]
    pub clients: Vec<AuthClient>,
}

/// One OAuth client in an identity zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthClient {
    /// Client id.
    pub id: String,
    /// Secret parameter holding the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_parameter: Option<String>,
    /// OAuth grant types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorized_grant_types: Vec<String>,
    /// Scopes the client may ask for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Authorities granted to the client itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorities: Vec<String>,
    /// Access token validity in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_validity: Option<u64>,
    /// Refresh token validity in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_validity: Option<u64>,
}

impl Sdl {
    /// The parameter named `name`.
    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }

    /// The volume named `name`.
    pub fn volume(&self, name: &str) -> Option<&Volume> {
        self.volumes.iter().find(|v| v.name == name)
    }

    /// The component named `name` (jobs excluded).
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }

    /// Every component and job with the JSON path of the list it sits in.
    pub fn all_workloads(&self) -> impl Iterator<Item = (&'static str, usize, &Component)> {
        let components = self.components.iter().enumerate().map(|(i, c)| ("components", i, c));
        let pre = self.preflight.iter().enumerate().map(|(i, c)| ("preflight", i, c));
        let post = self.postflight.iter().enumerate().map(|(i, c)| ("postflight", i, c));
        components.chain(pre).chain(post)
    }
}

impl Component {
    /// The full image reference, e.g. `docker.io/library/mysql:8.4.3`, with an optional
    /// registry override replacing `repository`. `None` for external-name components.
    pub fn image_reference(&self, registry_override: Option<&str>) -> Option<String> {
        let image = self.image.as_deref()?;
        if self.repository.is_none() && self.organization.is_none() && self.tag.is_none() {
            return Some(match registry_override {
                Some(registry) => format!("{registry}/{}", strip_registry(image)),
                None => image.to_string(),
            });
        }
        let mut reference = String::new();
        if let Some(registry) = registry_override.or(self.repository.as_deref()) {
            reference.push_str(registry);
            reference.push('/');
        }
        if let Some(org) = &self.organization {
            reference.push_str(org);
            reference.push('/');
        }
        reference.push_str(image);
        if let Some(tag) = &self.tag {
            reference.push(':');
            reference.push_str(tag);
        }
        Some(reference)
    }

    /// True for components that stand for something outside the cluster.
    pub fn is_external(&self) -> bool {
        self.external_name.is_some()
    }
}

/// Drops a leading registry host (a first segment with a dot, a colon or `localhost`).
fn strip_registry(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => rest,
        _ => image,
    }
}

/// A map of strings in which a key given twice is an error (serde would keep the last).
fn unique_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    struct UniqueMap;
    impl<'de> serde::de::Visitor<'de> for UniqueMap {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of strings")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!("key {} is given twice", crate::error::quote(&key))));
                }
                let value: String = map.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(UniqueMap)
}

/// Deserialisers that accept a JSON string, number or boolean as a string value (old SDLs
/// and IDLs wrote `"default": 3306`), keeping the exact text written or refusing.
///
/// YAML scalars are read as their text (`1.10` stays `1.10`, `0x1F` stays `0x1F`), as
/// [`crate::parse`] marks YAML documents with [`TextScalars`]. A JSON integer keeps its
/// digits; a JSON number that serde_json can only give as a float (a fraction, an exponent,
/// or an integer beyond 64 bits) would lose its text, so it is refused with a hint to quote it.
pub(crate) mod scalar {
    use serde::de::{self, Deserializer, Visitor};
    use std::cell::Cell;
    use std::fmt;

    thread_local! {
        static TEXT_SCALARS: Cell<bool> = const { Cell::new(false) };
    }

    /// While alive, scalars on this thread are read as their source text (YAML documents).
    pub struct TextScalars {
        previous: bool,
    }

    impl TextScalars {
        /// Marks the current thread until the guard is dropped.
        pub fn enter() -> TextScalars {
            TextScalars { previous: TEXT_SCALARS.with(|c| c.replace(true)) }
        }
    }

    impl Drop for TextScalars {
        fn drop(&mut self) {
            TEXT_SCALARS.with(|c| c.set(self.previous));
        }
    }

    struct ScalarVisitor;

    impl Visitor<'_> for ScalarVisitor {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string, number or boolean")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i128<E: de::Error>(self, v: i128) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u128<E: de::Error>(self, v: u128) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            // The value is not repeated: it may be a secret's.
            let _ = v;
            Err(E::custom(
                "this number may not keep the exact text written (fractions, exponents and integers beyond 64 bits are read as floating point); write it as a string in quotes",
            ))
        }
    }

    /// A required scalar as a string.
    pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        if TEXT_SCALARS.with(Cell::get) {
            // `~`, `null` and nothing at all are YAML's null, not the text "~" or "".
            struct NotNull;
            impl<'de> Visitor<'de> for NotNull {
                type Value = String;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a string, number or boolean")
                }
                fn visit_none<E: de::Error>(self) -> Result<String, E> {
                    Err(E::invalid_type(de::Unexpected::Unit, &self))
                }
                fn visit_unit<E: de::Error>(self) -> Result<String, E> {
                    Err(E::invalid_type(de::Unexpected::Unit, &self))
                }
                fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
                    d.deserialize_str(ScalarVisitor)
                }
            }
            d.deserialize_option(NotNull)
        } else {
            d.deserialize_any(ScalarVisitor)
        }
    }

    /// An optional scalar as a string (`null` is none).
    pub fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        struct OptionVisitor;
        impl<'de> Visitor<'de> for OptionVisitor {
            type Value = Option<String>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number, boolean or null")
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                required(d).map(Some)
            }
        }
        d.deserialize_option(OptionVisitor)
    }
}
