//! vSphere settings and how they are read.

use super::*;

/// vSphere settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VSphere {
    /// User.
    pub username: String,
    /// Password.
    pub password: Secret,
    /// vCenter host.
    pub server: String,
    /// Skip TLS verification.
    pub insecure: bool,
    /// Datacenters (one per zone).
    pub datacenters: Vec<String>,
    /// Compute cluster.
    pub cluster: String,
    /// Datastore.
    pub datastore: String,
    /// Network.
    pub network: String,
    /// Template VMDK.
    pub vmdk_source: String,
    /// eager_zeroed | lazy | thin.
    pub disk_type: String,
    /// vCPUs and memory per role: (master, node, gluster).
    pub sizes: [(u32, u32); 3],
    /// Private key for SSH.
    pub keypair_file: PathBuf,
    /// First and last address of the load-balancer VIP range.
    pub vip_range: (IpAddr, IpAddr),
    /// VRRP router id of the VIPs.
    pub virtual_router_id: u32,
}

impl Reader<'_> {
    pub(super) fn vsphere(&mut self) -> VSphere {
        let why = "when Provider = VSphere";
        let size = |reader: &mut Self, cpus: &str, memory: &str, defaults: (u32, u32)| {
            (
                reader.count(cpus, Some(defaults.0), 1, limits::MAX_VCPUS),
                reader.count(memory, Some(defaults.1), 512, limits::MAX_MEMORY_MB),
            )
        };
        let sizes = [
            size(self, "VSphere.MasterNumVCPUs", "VSphere.MasterMemoryMB", (2, 4096)),
            size(self, "VSphere.NodeNumVCPUs", "VSphere.NodeMemoryMB", (4, 16384)),
            size(self, "VSphere.GlusterFSNumVCPUs", "VSphere.GlusterFSMemoryMB", (2, 4096)),
        ];
        let disk_type = self.optional("VSphere.DiskType").unwrap_or_else(|| "thin".into());
        if !matches!(disk_type.as_str(), "eager_zeroed" | "lazy" | "thin") {
            self.problem(
                Some("VSphere.DiskType"),
                self.line("VSphere.DiskType"),
                format!("\"{disk_type}\" is not one of eager_zeroed, lazy, thin"),
            );
        }
        let ip = |reader: &mut Self, key: &str| -> IpAddr {
            let text = reader.required(key, why);
            if text.is_empty() {
                return IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
            }
            match machine_host(&text) {
                Ok(()) => match text.parse::<IpAddr>() {
                    Ok(ip) if ip.to_canonical().is_loopback() => reader.problem(
                        Some(key),
                        reader.line(key),
                        format!("{text} is a loopback address; expected an address of the machines' network"),
                    ),
                    Ok(ip) => return ip,
                    Err(_) => reader.problem(
                        Some(key),
                        reader.line(key),
                        format!("\"{text}\" is a host name; expected an IP address"),
                    ),
                },
                Err(why) => reader.problem(Some(key), reader.line(key), why),
            }
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        };
        let vip_range = (ip(self, "VSphere.LBVIPAllocationStart"), ip(self, "VSphere.LBVIPAllocationEnd"));
        if vip_range.0.is_ipv4() != vip_range.1.is_ipv4() {
            self.problem(
                Some("VSphere.LBVIPAllocationEnd"),
                self.line("VSphere.LBVIPAllocationEnd"),
                "is not of the same address family as LBVIPAllocationStart; expected both IPv4 or both IPv6",
            );
        } else if vip_range.0 > vip_range.1 {
            self.problem(
                Some("VSphere.LBVIPAllocationEnd"),
                self.line("VSphere.LBVIPAllocationEnd"),
                format!("{} is before LBVIPAllocationStart {}", vip_range.1, vip_range.0),
            );
        }
        let router_id = self.count("VSphere.LBVirtualRouterID", Some(51), 1, 255);
        let keypair_file = self.required("VSphere.KeypairFile", why);
        let keypair_file = self.file("VSphere.KeypairFile", &keypair_file);
        let datacenters = self.unique_list("VSphere.Datacenters");
        if datacenters.is_empty() {
            self.required("VSphere.Datacenters", why);
        }
        let server = self.required_or_env("VSphere.Server", &["VSPHERE_SERVER"], why);
        if !server.is_empty() && host_name_or_ip(&server).is_err() {
            self.problem(
                Some("VSphere.Server"),
                self.line("VSphere.Server"),
                format!("\"{server}\" is not a host name or IP address of a vCenter server"),
            );
        }
        VSphere {
            username: self.required_or_env("VSphere.Username", &["VSPHERE_USER"], why),
            password: Secret(self.required_or_env("VSphere.Password", &["VSPHERE_PASSWORD"], why)),
            server,
            insecure: self.boolean("VSphere.Insecure", false),
            datacenters,
            cluster: self.required("VSphere.Cluster", why),
            datastore: self.required("VSphere.Datastore", why),
            network: self.required("VSphere.NetworkName", why),
            vmdk_source: self.required("VSphere.LinuxVMDKSource", why),
            disk_type,
            sizes,
            keypair_file,
            vip_range,
            virtual_router_id: router_id,
        }
    }
}
