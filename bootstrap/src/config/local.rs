//! Existing machines (`Provider = local`) and how they are read: addresses, SSH, the API
//! address and port, the machine directory.

use super::*;

/// Existing machines.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Local {
    /// Masters.
    pub masters: Vec<String>,
    /// Workers.
    pub nodes: Vec<String>,
    /// GlusterFS nodes.
    pub gluster: Vec<String>,
    /// SSH user.
    pub ssh_user: String,
    /// SSH port (22).
    pub ssh_port: u32,
    /// Where each machine keeps Stratus's files (`/etc/stratus`).
    pub machine_dir: String,
    /// SSH private key.
    pub ssh_key_file: PathBuf,
    /// Address of the Kubernetes API (a VIP or the first master).
    pub api_address: String,
    /// Port of the Kubernetes API at `api_address` (6443; another when a proxy or load
    /// balancer in front of the masters listens elsewhere).
    pub api_port: u32,
}

impl Reader<'_> {
    pub(super) fn local(
        &mut self,
        master_count: &mut u32,
        node_count: &mut u32,
        gluster_node_count: &mut u32,
    ) -> Local {
        let masters = self.hosts("Local.MasterAddresses", true);
        let nodes = self.hosts("Local.NodeAddresses", false);
        let gluster = self.hosts("Local.GlusterFSAddresses", false);
        for (key, count_key, count, hosts) in [
            ("Local.MasterAddresses", "MasterCount", *master_count, &masters),
            ("Local.NodeAddresses", "NodeCount", *node_count, &nodes),
            ("Local.GlusterFSAddresses", "GlusterNodeCount", *gluster_node_count, &gluster),
        ] {
            if self.values.contains_key(count_key) && count as usize != hosts.len() {
                self.problem(
                    Some(key),
                    self.line(key),
                    format!("lists {} machine(s) but {count_key} is {count}", hosts.len()),
                );
            }
        }
        *master_count = masters.len() as u32;
        *node_count = nodes.len() as u32;
        *gluster_node_count = gluster.len() as u32;
        if !masters.is_empty() && masters.len() % 2 == 0 && !self.values.contains_key("MasterCount") {
            self.problem(
                Some("Local.MasterAddresses"),
                self.line("Local.MasterAddresses"),
                format!(
                    "{} masters cannot keep an etcd quorum through a failure; use an odd number (1, 3, 5)",
                    masters.len()
                ),
            );
        }
        if gluster.len() == 1 && !self.values.contains_key("GlusterNodeCount") {
            self.problem(
                Some("Local.GlusterFSAddresses"),
                self.line("Local.GlusterFSAddresses"),
                "a GlusterFS pool needs at least 2 nodes (0 for none)",
            );
        }
        for (key, hosts, maximum) in [
            ("Local.MasterAddresses", &masters, limits::MAX_MASTERS),
            ("Local.NodeAddresses", &nodes, limits::MAX_NODES),
            ("Local.GlusterFSAddresses", &gluster, limits::MAX_GLUSTER_NODES),
        ] {
            if hosts.len() > maximum as usize {
                self.problem(
                    Some(key),
                    self.line(key),
                    format!("lists {} machines; expected at most {maximum}", hosts.len()),
                );
            }
        }
        let mut seen = BTreeSet::new();
        for host in masters.iter().chain(&nodes).chain(&gluster) {
            // The same machine however written: host names without case, addresses parsed.
            let canonical = host
                .parse::<IpAddr>()
                .map(|ip| ip.to_canonical().to_string())
                .unwrap_or_else(|_| host.to_ascii_lowercase());
            if !seen.insert(canonical) {
                self.problem(Some("Local"), None, format!("{host} is listed for more than one machine"));
            }
        }
        // Loopback machines only make sense all together (one host standing in for a
        // cluster): the others could not reach them, nor they the API.
        let all: Vec<&String> = masters.iter().chain(&nodes).chain(&gluster).collect();
        let loopback = |h: &str| {
            h.parse::<IpAddr>().is_ok_and(|ip| ip.to_canonical().is_loopback()) || h.eq_ignore_ascii_case("localhost")
        };
        if all.iter().any(|h| loopback(h)) && !all.iter().all(|h| loopback(h)) {
            self.problem(
                Some("Local"),
                None,
                "mixes loopback addresses with others; expected addresses the machines can reach each other at",
            );
        }
        let key_file = self.required("Local.SSHKeyFile", "when Provider = local");
        let ssh_key_file = self.file("Local.SSHKeyFile", &key_file);
        self.given_empty("Local.APIAddress", "an IP address or host name");
        let api_address = self.optional("Local.APIAddress").or_else(|| masters.first().cloned()).unwrap_or_default();
        if self.optional("Local.APIAddress").is_some() {
            let key = "Local.APIAddress";
            match machine_host(&api_address) {
                Err(why) => self.problem(Some(key), self.line(key), why),
                Ok(()) if loopback(&api_address) && !all.iter().all(|h| loopback(h)) => self.problem(
                    Some(key),
                    self.line(key),
                    format!("{api_address} is a loopback address; expected one the machines can reach the API at"),
                ),
                Ok(()) => {}
            }
        }
        self.given_empty("Local.MachineDir", "an absolute path such as /etc/stratus");
        let machine_dir = self.optional("Local.MachineDir").unwrap_or_else(|| "/etc/stratus".into());
        if let Err(why) = machine_path(&machine_dir) {
            self.problem(Some("Local.MachineDir"), self.line("Local.MachineDir"), format!("\"{machine_dir}\" {why}"));
        }
        self.given_empty("Local.SSHUser", "a user name such as ubuntu");
        let ssh_user = self.optional("Local.SSHUser").unwrap_or_else(|| "ubuntu".into());
        if !is_user_name(&ssh_user) {
            self.problem(
                Some("Local.SSHUser"),
                self.line("Local.SSHUser"),
                format!("\"{ssh_user}\" is not a user name: expected a lower-case letter or '_', then letters, digits, '_' or '-' (at most 32)"),
            );
        }
        let ssh_port = self.count("Local.SSHPort", Some(22), 1, 65535);
        let api_port = self.count("Local.APIPort", Some(6443), 1, 65535);
        Local { masters, nodes, gluster, ssh_user, ssh_port, machine_dir, ssh_key_file, api_address, api_port }
    }
}
