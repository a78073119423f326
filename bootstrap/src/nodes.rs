//! Node bootstrap files: one cloud-config per machine that brings Kubernetes up with kubeadm
//! (the first master initialises the cluster with the pre-made CA, token and certificate key;
//! other masters and the nodes join it) or forms the GlusterFS pool. Pure: config + PKI in,
//! YAML text out.

use serde_json::{json, Value};

use crate::config::{Config, Provider};
use crate::pki::Pki;

/// What a machine is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Kubernetes control plane.
    Master,
    /// Kubernetes worker.
    Node,
    /// GlusterFS server.
    Gluster,
}

impl Role {
    /// As in machine names.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Node => "node",
            Role::Gluster => "gluster",
        }
    }
}

/// One machine of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// Role.
    pub role: Role,
    /// Index within the role.
    pub index: u32,
}

impl Machine {
    /// `master-0`, `node-3`, ...: the key the Terraform templates use.
    pub fn key(&self) -> String {
        format!("{}-{}", self.role.as_str(), self.index)
    }
}

/// Every machine of `config`, masters first.
pub fn machines(config: &Config) -> Vec<Machine> {
    let mut all = Vec::new();
    for (role, count) in [
        (Role::Master, config.master_count),
        (Role::Node, config.node_count),
        (Role::Gluster, config.gluster_node_count),
    ] {
        all.extend((0..count).map(|index| Machine { role, index }));
    }
    all
}

/// `address` as the host part of a URL or of `host:port`: an IPv6 address in brackets
/// (`[2001:db8::10]`), anything else as it is.
pub fn url_host(address: &str) -> String {
    match address.parse::<std::net::Ipv6Addr>() {
        Ok(v6) => format!("[{v6}]"),
        Err(_) => address.to_string(),
    }
}

/// Host of the Kubernetes API (unbracketed): the given address on existing machines, else
/// `api.<HCPDomainName>` (a DNS record pointing at the API load balancer).
pub fn api_host(config: &Config) -> String {
    match &config.provider {
        Provider::Local(local) => local.api_address.clone(),
        _ => format!("api.{}", config.domain),
    }
}

/// `host:port` of the Kubernetes API ([`api_host`], bracketed when IPv6).
pub fn api_endpoint(config: &Config) -> String {
    let port = match &config.provider {
        Provider::Local(local) => local.api_port,
        _ => 6443,
    };
    format!("{}:{port}", url_host(&api_host(config)))
}

/// `https://host:port` of the Kubernetes API.
pub fn api_url(config: &Config) -> String {
    format!("https://{}", api_endpoint(config))
}

fn file(path: &str, permissions: &str, content: impl Into<String>) -> Value {
    json!({"path": path, "permissions": permissions, "owner": "root:root", "content": content.into()})
}

fn yaml_documents(documents: &[Value]) -> String {
    documents
        .iter()
        // A JSON value of strings, numbers and maps always serialises.
        .map(|d| serde_norway::to_string(d).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

const INSTALL_KUBEADM: &str = r#"#!/bin/sh
# Installs containerd, kubeadm, kubelet and kubectl of Kubernetes $1 from pkgs.k8s.io.
set -eu
version="$1"
minor="$(echo "$version" | cut -d. -f1,2)"
apt-get update -q
apt-get install -y -q containerd apt-transport-https ca-certificates curl gpg
mkdir -p /etc/containerd /etc/apt/keyrings
containerd config default | sed 's/SystemdCgroup = false/SystemdCgroup = true/' > /etc/containerd/config.toml
systemctl restart containerd
curl -fsSL "https://pkgs.k8s.io/core:/stable:/v${minor}/deb/Release.key" | gpg --dearmor -o /etc/apt/keyrings/kubernetes.gpg
echo "deb [signed-by=/etc/apt/keyrings/kubernetes.gpg] https://pkgs.k8s.io/core:/stable:/v${minor}/deb/ /" > /etc/apt/sources.list.d/kubernetes.list
apt-get update -q
apt-get install -y -q "kubelet=${version}-*" "kubeadm=${version}-*" "kubectl=${version}-*"
apt-mark hold kubelet kubeadm kubectl
"#;

const GLUSTER: &str = r#"#!/bin/sh
# Prepares this machine's GlusterFS brick and, on the first GlusterFS node, forms the pool.
set -eu
disk="$(lsblk -dpno NAME,TYPE,MOUNTPOINT | awk '$2 == "disk" && $3 == "" {print $1}' | tail -n 1)"
if [ -n "$disk" ] && ! blkid "$disk" >/dev/null 2>&1; then mkfs.xfs -i size=512 "$disk"; fi
mkdir -p /data/brick
if [ -n "$disk" ]; then grep -q /data/brick /etc/fstab || echo "$disk /data/brick xfs defaults 0 0" >> /etc/fstab; mount -a; fi
mkdir -p /data/brick/stratus
systemctl enable --now glusterd
"#;

/// NFS-Ganesha's export of the GlusterFS volume `volume` (NFSv4, path `/<volume>`).
fn ganesha_export(volume: &str) -> String {
    format!(
        "EXPORT {{\n  Export_Id = 1;\n  Path = \"/{volume}\";\n  Pseudo = \"/{volume}\";\n  Access_Type = RW;\n  Squash = No_root_squash;\n  Protocols = 4;\n  Transports = TCP;\n  SecType = sys;\n  FSAL {{\n    Name = GLUSTER;\n    Hostname = localhost;\n    Volume = \"{volume}\";\n  }}\n}}\n"
    )
}

/// The cloud-config of `machine` (an error when the PKI's CA certificate does not parse).
pub fn cloud_config(config: &Config, pki: &Pki, machine: &Machine) -> Result<String, crate::pki::PkiError> {
    Ok(cloud_config_with(config, pki, &pki.ca_cert_hash()?, machine))
}

/// Every machine's cloud-config, in [`machines`] order (the CA hash worked out once).
pub fn cloud_configs(config: &Config, pki: &Pki) -> Result<Vec<(Machine, String)>, crate::pki::PkiError> {
    let ca_cert_hash = pki.ca_cert_hash()?;
    Ok(machines(config)
        .into_iter()
        .map(|machine| {
            let text = cloud_config_with(config, pki, &ca_cert_hash, &machine);
            (machine, text)
        })
        .collect())
}

fn cloud_config_with(config: &Config, pki: &Pki, ca_cert_hash: &str, machine: &Machine) -> String {
    let endpoint = api_endpoint(config);
    let api_host = api_host(config);
    let kubernetes = |extra_files: Vec<Value>, command: Vec<String>| {
        let mut files = vec![
            file("/etc/modules-load.d/stratus.conf", "0644", "overlay\nbr_netfilter\n"),
            file(
                "/etc/sysctl.d/90-stratus.conf",
                "0644",
                "net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\nnet.ipv4.ip_forward = 1\n",
            ),
            file("/usr/local/sbin/stratus-install-kubeadm", "0755", INSTALL_KUBEADM),
        ];
        files.extend(extra_files);
        let mut runcmd = vec![
            json!(["modprobe", "overlay"]),
            json!(["modprobe", "br_netfilter"]),
            json!(["sysctl", "--system"]),
            json!(["/usr/local/sbin/stratus-install-kubeadm", config.kubernetes_version]),
        ];
        runcmd.push(json!(command));
        json!({"write_files": files, "runcmd": runcmd})
    };
    // On a cloud the kubelet leaves node addresses and zones to the cloud controller manager.
    let registration = if matches!(config.provider, Provider::Local(_)) {
        json!({})
    } else {
        json!({"kubeletExtraArgs": [{"name": "cloud-provider", "value": "external"}]})
    };
    let discovery = json!({"bootstrapToken": {
        "token": pki.join_token, "apiServerEndpoint": endpoint, "caCertHashes": [ca_cert_hash],
    }});
    let body = match (machine.role, machine.index) {
        (Role::Master, 0) => {
            let init = json!({
                "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration",
                "bootstrapTokens": [{"token": pki.join_token, "ttl": "24h0m0s", "groups": ["system:bootstrappers:kubeadm:default-node-token"]}],
                "certificateKey": pki.certificate_key,
                "nodeRegistration": registration,
            });
            let cluster = json!({
                "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
                "clusterName": config.cluster_name, "kubernetesVersion": format!("v{}", config.kubernetes_version),
                "controlPlaneEndpoint": endpoint,
                "networking": {"podSubnet": config.pod_cidr.to_string(), "serviceSubnet": config.service_cidr.to_string()},
                "apiServer": {"certSANs": [api_host]},
            });
            kubernetes(
                vec![
                    file("/etc/kubernetes/pki/ca.crt", "0644", pki.ca_certificate.clone()),
                    file("/etc/kubernetes/pki/ca.key", "0600", pki.ca_key.clone()),
                    file("/etc/stratus/kubeadm.yaml", "0600", yaml_documents(&[init, cluster])),
                ],
                vec![
                    "kubeadm".into(),
                    "init".into(),
                    "--config".into(),
                    "/etc/stratus/kubeadm.yaml".into(),
                    "--upload-certs".into(),
                ],
            )
        }
        (Role::Master, _) | (Role::Node, _) => {
            let mut join = json!({
                "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "JoinConfiguration", "discovery": discovery,
                "nodeRegistration": registration,
            });
            if machine.role == Role::Master {
                join["controlPlane"] = json!({"certificateKey": pki.certificate_key});
            }
            kubernetes(
                vec![file("/etc/stratus/kubeadm.yaml", "0600", yaml_documents(&[join]))],
                vec!["kubeadm".into(), "join".into(), "--config".into(), "/etc/stratus/kubeadm.yaml".into()],
            )
        }
        (Role::Gluster, index) => {
            let mut runcmd = vec![json!(["/usr/local/sbin/stratus-gluster"])];
            let mut files = vec![file("/usr/local/sbin/stratus-gluster", "0755", GLUSTER)];
            if index == 0 {
                // The first GlusterFS node probes its peers by name, creates the volume the
                // shared storage class carves directories from, and exports it over NFS.
                let peers: Vec<String> =
                    (0..config.gluster_node_count).map(|i| format!("{}-gluster-{i}", config.cluster_name)).collect();
                for peer in &peers[1..] {
                    runcmd.push(json!(["sh", "-c", format!("until gluster peer probe {peer}; do sleep 10; done")]));
                }
                let volume = crate::platform::GLUSTER_VOLUME;
                let bricks: Vec<String> = peers.iter().map(|p| format!("{p}:/data/brick/stratus")).collect();
                let replica = if peers.len() > 1 { format!("replica {} ", peers.len()) } else { String::new() };
                runcmd.push(json!([
                    "sh",
                    "-c",
                    format!(
                        "gluster volume info {volume} >/dev/null 2>&1 || gluster --mode=script volume create {volume} {replica}{} force",
                        bricks.join(" ")
                    )
                ]));
                runcmd.push(json!(["sh", "-c", format!("gluster volume start {volume} 2>/dev/null || true")]));
                files.push(file("/etc/ganesha/ganesha.conf", "0644", ganesha_export(volume)));
                runcmd.push(json!(["systemctl", "enable", "--now", "nfs-ganesha"]));
                runcmd.push(json!(["systemctl", "restart", "nfs-ganesha"]));
            }
            json!({
                "packages": ["glusterfs-server", "xfsprogs", "nfs-ganesha", "nfs-ganesha-gluster"],
                "write_files": files,
                "runcmd": runcmd,
            })
        }
    };
    let mut document = body;
    document["hostname"] = json!(format!("{}-{}", config.cluster_name, machine.key()));
    document["package_update"] = json!(true);
    format!("#cloud-config\n{}", serde_norway::to_string(&document).expect("cloud-configs serialise"))
}
