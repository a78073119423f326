//! The typed installer configuration, read from `bootstrap.properties` entries (and, for
//! credentials, the environment), with validation that reports every problem at once. Secret
//! values are wrapped in [`Secret`] and never appear in any message.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::properties::Entry;

mod aws;
mod local;
mod openstack;
mod vsphere;

pub use aws::Aws;
pub use local::Local;
pub use openstack::OpenStack;
pub use vsphere::VSphere;

/// Upper bounds on what a properties file may ask for, so that no input makes bootstrap
/// allocate, render or plan without end (docs/installer-limits.md says why these).
pub mod limits {
    /// Masters: etcd members beyond 7 only slow writes down.
    pub const MAX_MASTERS: u32 = 7;
    /// Worker nodes.
    pub const MAX_NODES: u32 = 1000;
    /// GlusterFS nodes.
    pub const MAX_GLUSTER_NODES: u32 = 64;
    /// vCPUs of one vSphere machine (vSphere 8's maximum).
    pub const MAX_VCPUS: u32 = 768;
    /// Memory of one vSphere machine in MB (24 TiB, vSphere 8's maximum).
    pub const MAX_MEMORY_MB: u32 = 24 * 1024 * 1024;
    /// Kubernetes minor versions kubeadm's v1beta4 configuration and pkgs.k8s.io serve
    /// (major version 1).
    pub const KUBERNETES_MINORS: std::ops::RangeInclusive<u32> = 31..=34;
    /// Pod network prefix lengths: at most /24 (each machine gets a /24 of it), at least /8.
    pub const POD_PREFIXES: std::ops::RangeInclusive<u8> = 8..=24;
    /// Service network prefix lengths: the API server takes at most 2^20 addresses (/12);
    /// below /24 the platform's services do not fit.
    pub const SERVICE_PREFIXES: std::ops::RangeInclusive<u8> = 12..=24;
    /// Length of `Local.MachineDir`.
    pub const MAX_PATH: usize = 200;
}

/// A secret value: printed as `<redacted>`, compared and used only where needed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value, for handing to Terraform through a 0600 file or the environment.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which provider a cluster runs on, without its settings: names, key prefixes and
/// template folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProviderKind {
    /// OpenStack (Nova, Neutron, Cinder, Octavia).
    OpenStack,
    /// Amazon EC2.
    Aws,
    /// VMware vSphere.
    VSphere,
    /// Machines the operator already has, reached over SSH.
    Local,
}

impl ProviderKind {
    /// The folder of its Terraform templates.
    pub fn templates(self) -> &'static str {
        match self {
            ProviderKind::OpenStack => "openstack",
            ProviderKind::Aws => "aws",
            ProviderKind::VSphere => "vsphere",
            ProviderKind::Local => "local",
        }
    }

    /// The key prefix of its settings.
    pub fn prefix(self) -> &'static str {
        match self {
            ProviderKind::OpenStack => "OpenStack",
            ProviderKind::Aws => "AWS",
            ProviderKind::VSphere => "VSphere",
            ProviderKind::Local => "Local",
        }
    }
}

/// Where the cluster runs, with that provider's settings: exactly one provider, so no code
/// asks for the settings of a provider the cluster is not on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[allow(clippy::large_enum_variant)]
pub enum Provider {
    /// OpenStack (Nova, Neutron, Cinder, Octavia).
    OpenStack(OpenStack),
    /// Amazon EC2.
    Aws(Aws),
    /// VMware vSphere.
    VSphere(VSphere),
    /// Machines the operator already has, reached over SSH.
    Local(Local),
}

impl Provider {
    /// Which provider this is.
    pub fn kind(&self) -> ProviderKind {
        match self {
            Provider::OpenStack(_) => ProviderKind::OpenStack,
            Provider::Aws(_) => ProviderKind::Aws,
            Provider::VSphere(_) => ProviderKind::VSphere,
            Provider::Local(_) => ProviderKind::Local,
        }
    }

    /// The folder of its Terraform templates.
    pub fn templates(&self) -> &'static str {
        self.kind().templates()
    }

    /// The OpenStack settings, on OpenStack.
    pub fn openstack(&self) -> Option<&OpenStack> {
        match self {
            Provider::OpenStack(o) => Some(o),
            _ => None,
        }
    }

    /// The AWS settings, on AWS.
    pub fn aws(&self) -> Option<&Aws> {
        match self {
            Provider::Aws(a) => Some(a),
            _ => None,
        }
    }

    /// The vSphere settings, on vSphere.
    pub fn vsphere(&self) -> Option<&VSphere> {
        match self {
            Provider::VSphere(v) => Some(v),
            _ => None,
        }
    }

    /// The existing machines, for `local`.
    pub fn local(&self) -> Option<&Local> {
        match self {
            Provider::Local(l) => Some(l),
            _ => None,
        }
    }
}

/// A Keystone project or domain, given by ID or by name (they go to Keystone, Terraform and
/// the cloud controller as different fields).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdOrName {
    /// An ID.
    Id(String),
    /// A name.
    Name(String),
}

impl IdOrName {
    /// The ID or name itself.
    pub fn value(&self) -> &str {
        match self {
            IdOrName::Id(v) | IdOrName::Name(v) => v,
        }
    }

    /// The ID, when it is one.
    pub fn id(&self) -> Option<&str> {
        match self {
            IdOrName::Id(v) => Some(v),
            IdOrName::Name(_) => None,
        }
    }

    /// The name, when it is one.
    pub fn name(&self) -> Option<&str> {
        match self {
            IdOrName::Name(v) => Some(v),
            IdOrName::Id(_) => None,
        }
    }
}

/// An IPv4 CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// Network address.
    pub address: std::net::Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl Cidr {
    /// The network address: the address with its host bits cleared.
    pub fn network(self) -> std::net::Ipv4Addr {
        let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix.min(32))) };
        std::net::Ipv4Addr::from(u32::from(self.address) & mask)
    }

    /// The block with its host bits cleared.
    pub fn normalised(self) -> Cidr {
        Cidr { address: self.network(), prefix: self.prefix }
    }
}

impl std::str::FromStr for Cidr {
    type Err = ();
    fn from_str(text: &str) -> Result<Cidr, ()> {
        let (address, prefix) = text.split_once('/').ok_or(())?;
        let address: std::net::Ipv4Addr = address.parse().map_err(|_| ())?;
        if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        let prefix: u8 = prefix.parse().map_err(|_| ())?;
        if prefix > 32 {
            return Err(());
        }
        Ok(Cidr { address, prefix })
    }
}

/// LDAP federation of the identity service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ldap {
    /// Server.
    pub uri: String,
    /// Bind DN.
    pub bind_dn: String,
    /// Bind password.
    pub bind_password: Secret,
    /// Where users are.
    pub user_search_base: String,
    /// Which entries are users.
    pub user_search_filter: String,
    /// Where groups are.
    pub group_search_base: Option<String>,
    /// Which entries are groups.
    pub group_search_filter: Option<String>,
    /// Provider name shown at login.
    pub provider_name: String,
}

/// The whole installer configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Config {
    /// Where the cluster runs, with that provider's settings.
    pub provider: Provider,
    /// Name used for every resource and tag (`stratus` by default).
    pub cluster_name: String,
    /// Masters (odd: etcd quorum).
    pub master_count: u32,
    /// Worker nodes.
    pub node_count: u32,
    /// GlusterFS nodes (0: no shared storage).
    pub gluster_node_count: u32,
    /// Platform domain: `hcp.`, `identity.`, `hsm.` records go under it.
    pub domain: String,
    /// Keep the Terraform working directory after a successful install.
    pub keep_terraform: bool,
    /// Kubernetes version kubeadm installs.
    pub kubernetes_version: String,
    /// Pod network (flannel).
    pub pod_cidr: Cidr,
    /// Service network.
    pub service_cidr: Cidr,
    /// LDAP federation.
    pub ldap: Option<Ldap>,
}

/// One problem with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key at fault, if one is.
    pub key: Option<String>,
    /// Its line in the file.
    pub line: Option<usize>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys and values quoted in messages come from the input: control characters (a
        // newline, a terminal escape) are shown escaped, never sent to the terminal.
        // A huge value or key is shown by its ends.
        let printable = |text: &str, max: usize| -> String {
            let chars: Vec<char> = text.chars().collect();
            let shown: String = if chars.len() > max {
                let (head, tail) = (&chars[..max / 2], &chars[chars.len() - max / 2..]);
                format!("{}…({} characters)…{}", String::from_iter(head), chars.len(), String::from_iter(tail))
            } else {
                text.to_string()
            };
            shown.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
        };
        let message = printable(&self.message, 600);
        match (&self.line, &self.key) {
            (Some(line), Some(key)) => write!(f, "line {line}: {}: {message}", printable(key, 120)),
            (None, Some(key)) => write!(f, "{}: {message}", printable(key, 120)),
            (Some(line), None) => write!(f, "line {line}: {message}"),
            (None, None) => f.write_str(&message),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    General,
    Provider(ProviderKind),
    Ldap,
}

struct KeySpec {
    key: &'static str,
    scope: Scope,
    secret: bool,
}

const fn general(key: &'static str) -> KeySpec {
    KeySpec { key, scope: Scope::General, secret: false }
}
const fn provider(p: ProviderKind, key: &'static str, secret: bool) -> KeySpec {
    KeySpec { key, scope: Scope::Provider(p), secret }
}

use ProviderKind::{Aws as A, Local as L, OpenStack as O, VSphere as V};

const KEYS: &[KeySpec] = &[
    general("Provider"),
    general("ClusterName"),
    general("NodeCount"),
    general("MasterCount"),
    general("GlusterNodeCount"),
    general("HCPDomainName"),
    general("KeepTerraform"),
    general("KubernetesVersion"),
    general("PodCIDR"),
    general("ServiceCIDR"),
    provider(O, "OpenStack.Cloud", false),
    provider(O, "OpenStack.CACertFile", false),
    provider(O, "OpenStack.AuthURL", false),
    provider(O, "OpenStack.Username", false),
    provider(O, "OpenStack.Password", true),
    provider(O, "OpenStack.DomainID", false),
    provider(O, "OpenStack.DomainName", false),
    provider(O, "OpenStack.ProjectID", false),
    provider(O, "OpenStack.ProjectName", false),
    provider(O, "OpenStack.TenantID", false),
    provider(O, "OpenStack.TenantName", false),
    provider(O, "OpenStack.RegionName", false),
    provider(O, "OpenStack.AvailabilityZones", false),
    provider(O, "OpenStack.LinuxImageID", false),
    provider(O, "OpenStack.MasterFlavorID", false),
    provider(O, "OpenStack.NodeFlavorID", false),
    provider(O, "OpenStack.GlusterFSFlavorID", false),
    provider(O, "OpenStack.Keypair", false),
    provider(O, "OpenStack.KeypairFile", false),
    provider(O, "OpenStack.JumpboxCIDR", false),
    provider(O, "OpenStack.LoadBalancerCIDR", false),
    provider(O, "OpenStack.NetworkID", false),
    provider(O, "OpenStack.SubnetID", false),
    provider(O, "OpenStack.FloatingIPPoolName", false),
    provider(O, "OpenStack.FloatingIPPoolID", false),
    provider(A, "AWS.AccessKey", false),
    provider(A, "AWS.SecretKey", true),
    provider(A, "AWS.Region", false),
    provider(A, "AWS.AvailabilityZones", false),
    provider(A, "AWS.MasterInstanceType", false),
    provider(A, "AWS.NodeInstanceType", false),
    provider(A, "AWS.GlusterFSInstanceType", false),
    provider(A, "AWS.LinuxAMI", false),
    provider(A, "AWS.Keypair", false),
    provider(A, "AWS.KeypairFile", false),
    provider(A, "AWS.JumpboxCIDR", false),
    provider(A, "AWS.VPCID", false),
    provider(A, "AWS.PublicSubnetIDsAndAZ", false),
    provider(A, "AWS.PrivateSubnetIDsAndAZ", false),
    provider(V, "VSphere.Username", false),
    provider(V, "VSphere.Password", true),
    provider(V, "VSphere.Server", false),
    provider(V, "VSphere.Insecure", false),
    provider(V, "VSphere.Datacenters", false),
    provider(V, "VSphere.Cluster", false),
    provider(V, "VSphere.Datastore", false),
    provider(V, "VSphere.NetworkName", false),
    provider(V, "VSphere.LinuxVMDKSource", false),
    provider(V, "VSphere.DiskType", false),
    provider(V, "VSphere.MasterNumVCPUs", false),
    provider(V, "VSphere.MasterMemoryMB", false),
    provider(V, "VSphere.NodeNumVCPUs", false),
    provider(V, "VSphere.NodeMemoryMB", false),
    provider(V, "VSphere.GlusterFSNumVCPUs", false),
    provider(V, "VSphere.GlusterFSMemoryMB", false),
    provider(V, "VSphere.KeypairFile", false),
    provider(V, "VSphere.LBVIPAllocationStart", false),
    provider(V, "VSphere.LBVIPAllocationEnd", false),
    provider(V, "VSphere.LBVirtualRouterID", false),
    provider(L, "Local.MasterAddresses", false),
    provider(L, "Local.NodeAddresses", false),
    provider(L, "Local.GlusterFSAddresses", false),
    provider(L, "Local.SSHUser", false),
    provider(L, "Local.SSHPort", false),
    provider(L, "Local.MachineDir", false),
    provider(L, "Local.SSHKeyFile", false),
    provider(L, "Local.APIAddress", false),
    provider(L, "Local.APIPort", false),
    KeySpec { key: "LDAP.URI", scope: Scope::Ldap, secret: false },
    KeySpec { key: "LDAP.BindUserDN", scope: Scope::Ldap, secret: false },
    KeySpec { key: "LDAP.BindPassword", scope: Scope::Ldap, secret: true },
    KeySpec { key: "LDAP.UserSearchBase", scope: Scope::Ldap, secret: false },
    KeySpec { key: "LDAP.UserSearchFilter", scope: Scope::Ldap, secret: false },
    KeySpec { key: "LDAP.GroupSearchBase", scope: Scope::Ldap, secret: false },
    KeySpec { key: "LDAP.GroupSearchFilter", scope: Scope::Ldap, secret: false },
    KeySpec { key: "LDAP.ProviderName", scope: Scope::Ldap, secret: false },
];

/// Names of the keys whose values are secret.
pub fn secret_keys() -> impl Iterator<Item = &'static str> {
    KEYS.iter().filter(|k| k.secret).map(|k| k.key)
}

/// What the reader consults besides the file: the environment (credentials) and the
/// filesystem (files named by keys). Injected so reading stays testable.
pub struct Surroundings<'a> {
    /// Environment variables.
    pub env: &'a BTreeMap<String, String>,
    /// Whether a file may be read as input: `Err` says why not ("does not exist", "is not a
    /// regular file ...", "is N bytes; expected ...").
    pub check_file: &'a dyn Fn(&Path) -> Result<(), String>,
    /// Folder that relative file names are relative to (the properties file's).
    pub base_dir: &'a Path,
    /// The text of a file, if it can be read (OpenStack's `clouds.yaml`).
    pub read_file: &'a dyn Fn(&Path) -> Option<String>,
}

/// Reads and validates the configuration; every problem is returned together.
pub fn read(entries: &[Entry], surroundings: &Surroundings<'_>) -> Result<Config, Vec<Problem>> {
    let mut reader = Reader { values: BTreeMap::new(), problems: Vec::new(), surroundings };
    let mut unknown = 0;
    for entry in entries {
        match KEYS.iter().find(|k| k.key == entry.key) {
            None => {
                // Hints for the first few unknown keys only (a file of thousands is no typo),
                // and none for a key far longer than any known one.
                unknown += 1;
                let hint = Some(&entry.key)
                    .filter(|k| k.len() <= 64 && unknown <= 20)
                    .and_then(|k| sdl::parse::closest(k, KEYS.iter().map(|k| k.key)))
                    .map(|best| format!(" (did you mean {best}?)"))
                    .unwrap_or_default();
                reader.problem(Some(&entry.key), Some(entry.line), format!("unknown key{hint}"));
            }
            Some(_) => {
                if let Some((_, first)) = reader.values.get(&entry.key) {
                    let first = *first;
                    reader.problem(Some(&entry.key), Some(entry.line), format!("given twice (first on line {first})"));
                } else {
                    let value = entry.value.trim_end();
                    if let Some(c) = value.chars().find(|c| c.is_control()) {
                        // Not echoed: the value may be a secret.
                        reader.problem(
                            Some(&entry.key),
                            Some(entry.line),
                            format!("has a control character (U+{:04X}); expected printable text", c as u32),
                        );
                    }
                    reader.values.insert(entry.key.clone(), (value.to_string(), entry.line));
                }
            }
        }
    }
    let config = reader.config();
    if let Some(config) = &config {
        reader.blank_secrets(config);
    }
    // Report in file order; problems without a line (missing keys) last.
    reader.problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    match config {
        Some(config) if reader.problems.is_empty() => Ok(config),
        _ => Err(reader.problems),
    }
}

struct Reader<'a> {
    values: BTreeMap<String, (String, usize)>,
    problems: Vec<Problem>,
    surroundings: &'a Surroundings<'a>,
}

impl Reader<'_> {
    fn problem(&mut self, key: Option<&str>, line: Option<usize>, message: impl Into<String>) {
        self.problems.push(Problem { key: key.map(str::to_string), line, message: message.into() });
    }

    /// A secret key given with an empty value is a problem even when the environment or
    /// `clouds.yaml` would give the secret (an explicit empty password is a mistake, not a
    /// request for another source); so is a secret of only whitespace from any source.
    fn blank_secrets(&mut self, config: &Config) {
        let reported = |reader: &Self, key: &str| reader.problems.iter().any(|p| p.key.as_deref() == Some(key));
        for spec in KEYS.iter().filter(|k| k.secret) {
            let empty = self.values.get(spec.key).is_some_and(|(v, _)| v.is_empty());
            if empty && !reported(self, spec.key) {
                self.problem(
                    Some(spec.key),
                    self.line(spec.key),
                    "is empty; expected the secret (or leave the key out to take it from the environment or clouds.yaml)",
                );
            }
        }
        let secrets = [
            ("OpenStack.Password", config.provider.openstack().map(|o| &o.password)),
            ("VSphere.Password", config.provider.vsphere().map(|v| &v.password)),
            ("AWS.SecretKey", config.provider.aws().and_then(|a| a.secret_key.as_ref())),
            ("LDAP.BindPassword", config.ldap.as_ref().map(|l| &l.bind_password)),
        ];
        for (key, secret) in secrets {
            if secret.is_some_and(|s| !s.expose().is_empty() && s.expose().trim().is_empty()) && !reported(self, key) {
                self.problem(Some(key), self.line(key), "is only whitespace; expected the secret");
            }
        }
    }

    fn line(&self, key: &str) -> Option<usize> {
        self.values.get(key).map(|(_, l)| *l)
    }

    /// The value of `key` if given and not empty.
    fn optional(&mut self, key: &str) -> Option<String> {
        self.values.get(key).map(|(v, _)| v.clone()).filter(|v| !v.is_empty())
    }

    /// The value of `key`, else of environment variable `env`.
    fn optional_or_env(&mut self, key: &str, env: &[&str]) -> Option<String> {
        self.optional(key).or_else(|| {
            env.iter().find_map(|e| self.surroundings.env.get(*e).filter(|v| !v.trim().is_empty()).cloned())
        })
    }

    fn required(&mut self, key: &str, why: &str) -> String {
        match self.optional(key) {
            Some(v) => v,
            None => {
                let message = if self.values.contains_key(key) {
                    "must not be empty".to_string()
                } else {
                    format!("required {why}")
                };
                let line = self.line(key);
                self.problem(Some(key), line, message);
                String::new()
            }
        }
    }

    fn required_or_env(&mut self, key: &str, env: &[&str], why: &str) -> String {
        if let Some(value) = self.optional_or_env(key, env) {
            return value;
        }
        let line = self.line(key);
        let from_env = if env.is_empty() { String::new() } else { format!(" (or set {})", env.join(" or ")) };
        let message = if self.values.contains_key(key) {
            format!("must not be empty{from_env}")
        } else {
            format!("required {why}{from_env}")
        };
        self.problem(Some(key), line, message);
        String::new()
    }

    fn one_of(&mut self, keys: &[&str], why: &str) -> String {
        for key in keys {
            if let Some(v) = self.optional(key) {
                return v;
            }
        }
        self.problem(Some(&keys.join(" or ")), None, format!("one is required {why}"));
        String::new()
    }

    /// Whether `key` is given with an empty value (a problem for numbers, booleans and
    /// addresses: the default is not what an empty value means).
    fn given_empty(&mut self, key: &str, expected: &str) -> bool {
        let empty = self.values.get(key).is_some_and(|(v, _)| v.is_empty());
        if empty {
            self.problem(Some(key), self.line(key), format!("is empty; expected {expected} (or leave the key out)"));
        }
        empty
    }

    /// A whole number from `minimum` to `maximum`; out of range, the problem is reported and
    /// the value clamped (so nothing later allocates by it).
    fn count(&mut self, key: &str, default: Option<u32>, minimum: u32, maximum: u32) -> u32 {
        let expected = format!("a whole number from {minimum} to {maximum}");
        if self.given_empty(key, &expected) {
            return default.unwrap_or(minimum);
        }
        match self.optional(key) {
            None => match default {
                Some(d) => d,
                None => {
                    self.problem(Some(key), self.line(key), format!("required: {expected}"));
                    0
                }
            },
            Some(text) => match text.parse::<u64>() {
                Ok(n) if !text.bytes().all(|b| b.is_ascii_digit()) => {
                    self.problem(Some(key), self.line(key), format!("\"{text}\" is not written as {expected}"));
                    n.clamp(minimum.into(), maximum.into()) as u32
                }
                Ok(n) if n < u64::from(minimum) => {
                    self.problem(Some(key), self.line(key), format!("{n} is too small: at least {minimum}"));
                    n as u32
                }
                Ok(n) if n > u64::from(maximum) => {
                    self.problem(Some(key), self.line(key), format!("{n} is too large: at most {maximum}"));
                    maximum
                }
                Ok(n) => n as u32,
                Err(_) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
                    self.problem(Some(key), self.line(key), format!("{text} is too large: at most {maximum}"));
                    maximum
                }
                Err(_) => {
                    self.problem(Some(key), self.line(key), format!("\"{text}\" is not a whole number"));
                    0
                }
            },
        }
    }

    fn boolean(&mut self, key: &str, default: bool) -> bool {
        if self.given_empty(key, "true or false") {
            return default;
        }
        match self.optional(key).map(|v| v.to_ascii_lowercase()) {
            None => default,
            Some(v) if v == "true" || v == "yes" => true,
            Some(v) if v == "false" || v == "no" => false,
            Some(v) => {
                self.problem(Some(key), self.line(key), format!("\"{v}\" is not true or false"));
                default
            }
        }
    }

    fn cidr(&mut self, key: &str, default: Option<&str>, why: &str) -> Cidr {
        if self.given_empty(key, "an IPv4 CIDR block such as 10.0.0.0/24") {
            return Cidr { address: std::net::Ipv4Addr::UNSPECIFIED, prefix: 0 };
        }
        let text = match (self.optional(key), default) {
            (Some(t), _) => t,
            (None, Some(d)) => d.to_string(),
            (None, None) => {
                self.required(key, why);
                return Cidr { address: std::net::Ipv4Addr::UNSPECIFIED, prefix: 0 };
            }
        };
        match text.parse::<Cidr>() {
            Ok(c) if c.network() != c.address => {
                self.problem(
                    Some(key),
                    self.line(key),
                    format!("{text} has host bits set; expected a network address such as {}", c.normalised()),
                );
                c.normalised()
            }
            Ok(c) => c,
            Err(()) => {
                self.problem(
                    Some(key),
                    self.line(key),
                    format!("\"{text}\" is not an IPv4 CIDR block such as 10.0.0.0/24"),
                );
                Cidr { address: std::net::Ipv4Addr::UNSPECIFIED, prefix: 0 }
            }
        }
    }

    /// Checks an `http(s)://` URL (`schemes`): a host (name, IPv4 or `[IPv6]`) and optional
    /// port, no credentials in it (they would land in files others may read), no space or
    /// control character. Returns whether it is fine; a problem says what is wrong (never
    /// echoing a URL that carries credentials).
    fn url(&mut self, key: &str, value: &str, schemes: &[&str], what: &str) -> bool {
        if value.is_empty() {
            return true;
        }
        // A value with an '@' may carry a password: it is never echoed.
        let shown = if value.contains('@') { "the value".to_string() } else { format!("\"{value}\"") };
        let Some((_, rest)) = value.split_once("://").filter(|(s, _)| schemes.contains(s)) else {
            self.problem(Some(key), self.line(key), format!("{shown} is not {what}"));
            return false;
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            self.problem(
                Some(key),
                self.line(key),
                "has credentials in it (user:password@host); expected a URL without them: give the user name and password in their own settings",
            );
            return false;
        }
        let bad_char = value.chars().any(|c| c.is_whitespace() || c.is_control() || "\"'`\\<>{}|^".contains(c));
        if authority_host(authority).is_none() || bad_char {
            self.problem(
                Some(key),
                self.line(key),
                format!("{shown} is not {what}: expected {}://host[:port][/path] without spaces or quotes", schemes[0]),
            );
            return false;
        }
        true
    }

    fn file(&mut self, key: &str, value: &str) -> PathBuf {
        let path = self.surroundings.base_dir.join(value);
        if !value.is_empty() {
            if let Err(why) = (self.surroundings.check_file)(&path) {
                self.problem(Some(key), self.line(key), format!("file \"{value}\" {why}"));
            }
        }
        path
    }

    fn list(&mut self, key: &str) -> Vec<String> {
        let text = self.optional(key).unwrap_or_default();
        let items: Vec<String> = text.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        if text.split(',').any(|s| s.trim().is_empty()) && !text.trim().is_empty() {
            self.problem(Some(key), self.line(key), "has an empty item (two commas in a row?)");
        }
        items
    }

    /// A list whose items must differ (zones, datacenters); compared without case. A repeat
    /// is a problem and is dropped (so nothing later counts it twice).
    fn unique_list(&mut self, key: &str) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut items = Vec::new();
        for item in self.list(key) {
            if seen.insert(item.to_ascii_lowercase()) {
                items.push(item);
            } else {
                self.problem(Some(key), self.line(key), format!("lists \"{item}\" twice; expected each once"));
            }
        }
        items
    }

    fn hosts(&mut self, key: &str, required: bool) -> Vec<String> {
        if required && self.optional(key).is_none() {
            self.required(key, "when Provider = local");
            return Vec::new();
        }
        let hosts = self.list(key);
        for host in &hosts {
            if let Err(why) = machine_host(host) {
                self.problem(Some(key), self.line(key), why);
            }
        }
        hosts
    }

    fn config(&mut self) -> Option<Config> {
        let provider_text = self.required("Provider", "(one of OpenStack, AWS, VSphere, local)");
        let provider = match provider_text.to_ascii_lowercase().as_str() {
            "openstack" => Some(ProviderKind::OpenStack),
            "aws" => Some(ProviderKind::Aws),
            "vsphere" => Some(ProviderKind::VSphere),
            "local" => Some(ProviderKind::Local),
            "" => None,
            _ => {
                self.problem(
                    Some("Provider"),
                    self.line("Provider"),
                    format!("\"{provider_text}\" is not one of OpenStack, AWS, VSphere, local"),
                );
                None
            }
        };
        // Settings of other providers are mistakes worth naming.
        if let Some(p) = provider {
            let stray: Vec<(String, usize)> = self
                .values
                .iter()
                .filter(|(k, _)| {
                    KEYS.iter().any(|s| s.key == k.as_str() && matches!(s.scope, Scope::Provider(q) if q != p))
                })
                .map(|(k, (_, line))| (k.clone(), *line))
                .collect();
            for (key, line) in stray {
                self.problem(
                    Some(&key),
                    Some(line),
                    format!("is a setting of another provider; Provider is {}", p.templates()),
                );
            }
        }
        let cluster_name = self.optional("ClusterName").unwrap_or_else(|| "stratus".into());
        if !is_dns_label(&cluster_name) || cluster_name.len() > 32 {
            self.problem(Some("ClusterName"), self.line("ClusterName"), format!("\"{cluster_name}\" must be a DNS label of at most 32 characters (it names and tags every resource)"));
        }
        let domain = self.required("HCPDomainName", "(the platform's DNS domain)");
        let domain_ok = domain.is_empty()
            || (domain.len() <= 253 && domain.split('.').count() >= 2 && domain.split('.').all(is_dns_label));
        if !domain_ok {
            self.problem(
                Some("HCPDomainName"),
                self.line("HCPDomainName"),
                format!(
                    "\"{domain}\" is not a DNS domain such as stratus.example.com (lower-case labels of at most 63 characters, at most 253 in all)"
                ),
            );
        }
        let local_counts = provider == Some(ProviderKind::Local);
        let master_count = self.count("MasterCount", Some(1), 1, limits::MAX_MASTERS);
        if master_count % 2 == 0 && master_count > 0 {
            self.problem(
                Some("MasterCount"),
                self.line("MasterCount"),
                format!(
                    "{master_count} masters cannot keep an etcd quorum through a failure; use an odd number (1, 3, 5)"
                ),
            );
        }
        let node_count = self.count(
            "NodeCount",
            if local_counts { Some(0) } else { None },
            if local_counts { 0 } else { 1 },
            limits::MAX_NODES,
        );
        let gluster_node_count = self.count("GlusterNodeCount", Some(0), 0, limits::MAX_GLUSTER_NODES);
        if gluster_node_count == 1 {
            self.problem(
                Some("GlusterNodeCount"),
                self.line("GlusterNodeCount"),
                "a GlusterFS pool needs at least 2 nodes (0 for none)",
            );
        }
        let keep_terraform = self.boolean("KeepTerraform", false);
        self.given_empty("KubernetesVersion", "a version such as 1.33.0");
        let kubernetes_version = self.optional("KubernetesVersion").unwrap_or_else(|| "1.33.0".into());
        let parts: Vec<&str> = kubernetes_version.split('.').collect();
        let numeric = |p: &&str| {
            !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()) && (*p == "0" || !p.starts_with('0'))
        };
        if parts.len() != 3 || !parts.iter().all(numeric) {
            self.problem(
                Some("KubernetesVersion"),
                self.line("KubernetesVersion"),
                format!("\"{kubernetes_version}\" is not a version such as 1.33.0"),
            );
        } else if parts[0] != "1" || !parts[1].parse().is_ok_and(|m: u32| limits::KUBERNETES_MINORS.contains(&m)) {
            self.problem(
                Some("KubernetesVersion"),
                self.line("KubernetesVersion"),
                format!(
                    "{kubernetes_version} is not supported; expected a version from 1.{}.0 to 1.{}.x",
                    limits::KUBERNETES_MINORS.start(),
                    limits::KUBERNETES_MINORS.end()
                ),
            );
        }
        let pod_cidr = self.cidr("PodCIDR", Some("10.244.0.0/16"), "");
        let service_cidr = self.cidr("ServiceCIDR", Some("10.96.0.0/12"), "");
        for (key, cidr, range, what) in [
            ("PodCIDR", pod_cidr, limits::POD_PREFIXES, "each machine takes a /24 of it"),
            ("ServiceCIDR", service_cidr, limits::SERVICE_PREFIXES, "the API server serves at most a /12"),
        ] {
            let given = self.values.get(key).is_some_and(|(v, _)| !v.is_empty());
            if given && cidr.address != std::net::Ipv4Addr::UNSPECIFIED && !range.contains(&cidr.prefix) {
                self.problem(
                    Some(key),
                    self.line(key),
                    format!(
                        "{cidr} is a /{}; expected a prefix from /{} to /{} ({what})",
                        cidr.prefix,
                        range.start(),
                        range.end()
                    ),
                );
            }
        }
        if overlaps(pod_cidr, service_cidr) {
            self.problem(
                Some("ServiceCIDR"),
                self.line("ServiceCIDR"),
                format!("{service_cidr} overlaps PodCIDR {pod_cidr}"),
            );
        }

        let (mut master_count, mut node_count, mut gluster_node_count) = (master_count, node_count, gluster_node_count);
        let settings = match provider {
            Some(ProviderKind::OpenStack) => Some(Provider::OpenStack(self.openstack())),
            Some(ProviderKind::Aws) => Some(Provider::Aws(self.aws())),
            Some(ProviderKind::VSphere) => Some(Provider::VSphere(self.vsphere())),
            Some(ProviderKind::Local) => {
                Some(Provider::Local(self.local(&mut master_count, &mut node_count, &mut gluster_node_count)))
            }
            None => None,
        };
        let machines = u64::from(master_count) + u64::from(node_count);
        let pod_subnets = 1u64 << (24 - u32::from(pod_cidr.prefix.min(24)));
        let counts_ok = !self.problems.iter().any(|p| matches!(p.key.as_deref(), Some("MasterCount" | "NodeCount")));
        if counts_ok && limits::POD_PREFIXES.contains(&pod_cidr.prefix) && machines > pod_subnets {
            self.problem(
                Some("PodCIDR"),
                self.line("PodCIDR"),
                format!(
                    "{} has room for {pod_subnets} machine(s) (a /24 each) but the cluster has {machines} masters and nodes; expected a wider block",
                    pod_cidr
                ),
            );
        }
        let zones = match &settings {
            Some(Provider::OpenStack(o)) => Some(o.availability_zones.len()),
            Some(Provider::Aws(a)) => Some(a.availability_zones.len()),
            Some(Provider::VSphere(v)) => Some(v.datacenters.len()),
            _ => None,
        };
        if let Some(zones) = zones.filter(|z| *z > 1 && counts_ok) {
            if node_count % zones as u32 != 0 {
                self.problem(
                    Some("NodeCount"),
                    self.line("NodeCount"),
                    format!(
                        "{} is not a multiple of the {zones} availability zones: nodes would not spread evenly",
                        node_count
                    ),
                );
            }
        }
        let ldap = self.values.keys().any(|k| k.starts_with("LDAP.")).then(|| self.ldap());
        settings.map(|provider| Config {
            provider,
            cluster_name,
            master_count,
            node_count,
            gluster_node_count,
            domain,
            keep_terraform,
            kubernetes_version,
            pod_cidr,
            service_cidr,
            ldap,
        })
    }

    fn ldap(&mut self) -> Ldap {
        let why = "when LDAP federation is configured";
        let uri = self.required("LDAP.URI", why);
        self.url("LDAP.URI", &uri, &["ldap", "ldaps"], "an ldap:// or ldaps:// URI");
        Ldap {
            uri,
            bind_dn: self.required("LDAP.BindUserDN", why),
            bind_password: Secret(self.required("LDAP.BindPassword", why)),
            user_search_base: self.required("LDAP.UserSearchBase", why),
            user_search_filter: self.optional("LDAP.UserSearchFilter").unwrap_or_else(|| "uid={0}".into()),
            group_search_base: self.optional("LDAP.GroupSearchBase"),
            group_search_filter: self.optional("LDAP.GroupSearchFilter"),
            provider_name: self.optional("LDAP.ProviderName").unwrap_or_else(|| "ldap".into()),
        }
    }
}

/// Whether `text` is a host name (RFC 1123: labels of letters, digits and '-', not starting or
/// ending with '-', at most 63 characters each and 253 in all) or an IP address; a name that
/// looks numeric (its last label all digits: `192.0.2.300`, `3221225985`, `010.0.0.1`) must be
/// a plain dotted-quad IPv4 address. `Ok` holds the parsed address, if it is one.
pub fn host_name_or_ip(text: &str) -> Result<Option<IpAddr>, String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(Some(ip));
    }
    let last = text.rsplit('.').next().unwrap_or_default();
    if text.contains(':') {
        return Err(format!(
            "\"{text}\" is not an IP address (IPv6 is written such as 2001:db8::10, without brackets or port)"
        ));
    }
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) || text.starts_with("0x") {
        return Err(format!(
            "\"{text}\" is not an IPv4 address: expected four numbers from 0 to 255 without leading zeros, such as 192.0.2.10"
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if text.is_empty() || text.len() > 253 || !text.split('.').all(label_ok) {
        return Err(format!(
            "\"{text}\" is neither an IP address nor a host name (letters, digits and '-' in dot-separated labels of at most 63 characters, at most 253 in all)"
        ));
    }
    Ok(None)
}

/// Whether `text` may be the address of a machine: a host name, or an IP address that is not
/// unspecified (0.0.0.0, ::), broadcast or multicast.
pub fn machine_host(text: &str) -> Result<(), String> {
    // An IPv4-mapped IPv6 address (::ffff:0.0.0.0) is judged as the IPv4 address it is.
    let ip = host_name_or_ip(text)?.map(|ip| ip.to_canonical());
    let why = match ip {
        Some(ip) if ip.is_unspecified() => "the unspecified address",
        Some(IpAddr::V4(v4)) if v4.is_broadcast() => "the broadcast address",
        Some(ip) if ip.is_multicast() => "a multicast address",
        _ => return Ok(()),
    };
    Err(format!("{text} is {why}; expected the address of a machine"))
}

/// Whether `text` is a POSIX-style user name: a lower-case letter or '_', then lower-case
/// letters, digits, '_' or '-', at most 32 in all.
pub fn is_user_name(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && text.len() <= 32
}

/// Whether `text` is fit to be a directory on every machine: absolute, not `/`, of letters,
/// digits, '.', '_', '-' and '/', without `.`, `..` or empty components, at most
/// [`limits::MAX_PATH`] long.
pub fn machine_path(text: &str) -> Result<(), String> {
    let charset = text.bytes().all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b));
    let Some(relative) = text.strip_prefix('/').filter(|_| charset) else {
        return Err("must be an absolute path of letters, digits, '.', '_', '-' and '/'".into());
    };
    if relative.is_empty() {
        return Err("is the root directory; expected a directory of its own such as /etc/stratus".into());
    }
    if relative.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err("has an empty, '.' or '..' component; expected a plain path such as /etc/stratus".into());
    }
    if text.len() > limits::MAX_PATH {
        return Err(format!("is {} characters long; expected at most {}", text.len(), limits::MAX_PATH));
    }
    Ok(())
}

/// The host of a URL's authority (`host`, `host:port`, `[v6]`, `[v6]:port`), if it is one.
fn authority_host(authority: &str) -> Option<&str> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest.split_once(']')?;
            v6.parse::<std::net::Ipv6Addr>().ok()?;
            (v6, after.strip_prefix(':'))
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if let Some(port) = port {
        if port.is_empty()
            || port.len() > 5
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u32>().ok()? > 65535
        {
            return None;
        }
    }
    if authority.starts_with('[') {
        return Some(host);
    }
    host_name_or_ip(host).ok().filter(|ip| !matches!(ip, Some(IpAddr::V6(_))))?;
    Some(host)
}

fn is_dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

fn overlaps(a: Cidr, b: Cidr) -> bool {
    let prefix = a.prefix.min(b.prefix);
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    (u32::from(a.address) & mask) == (u32::from(b.address) & mask)
}
