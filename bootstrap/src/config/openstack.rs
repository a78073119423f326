//! OpenStack settings and how they are read: keys, `clouds.yaml` (`OpenStack.Cloud` or
//! `OS_CLOUD`) and the environment, IDs or names of projects and domains.

use super::*;

/// OpenStack settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OpenStack {
    /// Keystone v3 URL.
    pub auth_url: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: Secret,
    /// Domain of the user and the project.
    pub domain: IdOrName,
    /// Project (older: tenant).
    pub project: IdOrName,
    /// Region.
    pub region: String,
    /// Availability zones.
    pub availability_zones: Vec<String>,
    /// Image of every machine.
    pub image_id: String,
    /// Flavors per role.
    pub master_flavor: String,
    /// Flavor of worker nodes.
    pub node_flavor: String,
    /// Flavor of GlusterFS nodes.
    pub gluster_flavor: String,
    /// Keypair name.
    pub keypair: String,
    /// Private key of the keypair.
    pub keypair_file: PathBuf,
    /// Who may SSH in.
    pub jumpbox_cidr: Cidr,
    /// Who may reach the load balancers.
    pub load_balancer_cidr: Cidr,
    /// Network and subnet of the machines.
    pub network_id: String,
    /// Subnet id.
    pub subnet_id: String,
    /// Floating IP pool name.
    pub floating_ip_pool: String,
    /// CA bundle for the API endpoints.
    pub ca_cert_file: Option<PathBuf>,
}

/// The `clouds.yaml` cloud credentials may come from.
pub(super) enum CloudChoice {
    /// None is named.
    None,
    /// One is named but cannot be read (a problem says why; the credentials it would have
    /// given are not reported missing on top).
    Unreadable,
    /// The named cloud.
    Found(crate::clouds::Cloud),
}

impl Reader<'_> {
    /// The `clouds.yaml` cloud named by `OpenStack.Cloud` or `OS_CLOUD`, if any (a cloud that
    /// cannot be read is a problem saying why).
    pub(super) fn cloud(&mut self) -> CloudChoice {
        let key = "OpenStack.Cloud";
        let (name, from) = match self.optional(key) {
            Some(name) => (name, String::new()),
            None => match self.surroundings.env.get("OS_CLOUD").filter(|c| !c.is_empty()) {
                Some(name) => (name.clone(), " (from OS_CLOUD)".into()),
                None => return CloudChoice::None,
            },
        };
        let surroundings = self.surroundings;
        match crate::clouds::find(&name, surroundings.env, surroundings.base_dir, surroundings.read_file) {
            Ok(cloud) => CloudChoice::Found(cloud),
            Err(e) => {
                self.problem(Some(key), self.line(key), format!("cloud \"{name}\"{from}: {e}"));
                CloudChoice::Unreadable
            }
        }
    }

    /// `key`, else the environment, else the cloud's first of `fields`; a problem when none has
    /// it (unless the named cloud could not be read: that problem says it all).
    pub(super) fn credential(
        &mut self,
        key: &str,
        env: &[&str],
        cloud: &CloudChoice,
        fields: &[&str],
        why: &str,
    ) -> String {
        match (self.optional_or_env(key, env), cloud) {
            (Some(value), _) => value,
            (None, CloudChoice::Unreadable) => String::new(),
            (None, CloudChoice::Found(cloud)) => cloud.get(fields).unwrap_or_else(|| {
                let message = format!(
                    "required {why} (or set {}, or {} in cloud \"{}\" of {})",
                    env.join(" or "),
                    fields.join(" or "),
                    cloud.name,
                    cloud.file.display()
                );
                self.problem(Some(key), self.line(key), message);
                String::new()
            }),
            (None, CloudChoice::None) => self.required_or_env(key, env, why),
        }
    }

    /// The first of `keys`, else of the environment variables `env`, else of the cloud's
    /// `fields` that is set, as an ID or a name as its source says; a problem naming the keys
    /// when none is (unless the named cloud could not be read).
    pub(super) fn id_or_name(
        &mut self,
        keys: &[(&str, bool)],
        env: &[(&str, bool)],
        cloud: &CloudChoice,
        fields: &[(&str, bool)],
        why: &str,
    ) -> IdOrName {
        let typed = |value: String, is_id: bool| if is_id { IdOrName::Id(value) } else { IdOrName::Name(value) };
        let found = keys
            .iter()
            .find_map(|(key, is_id)| self.optional(key).map(|v| typed(v, *is_id)))
            .or_else(|| {
                env.iter().find_map(|(var, is_id)| {
                    self.surroundings.env.get(*var).filter(|v| !v.is_empty()).map(|v| typed(v.clone(), *is_id))
                })
            })
            .or_else(|| {
                let CloudChoice::Found(cloud) = cloud else { return None };
                fields.iter().find_map(|(field, is_id)| cloud.get(&[field]).map(|v| typed(v, *is_id)))
            });
        match (found, cloud) {
            (Some(found), _) => found,
            (None, CloudChoice::Unreadable) => IdOrName::Name(String::new()),
            (None, _) => {
                let names: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
                IdOrName::Name(self.one_of(&names, why))
            }
        }
    }

    pub(super) fn openstack(&mut self) -> OpenStack {
        let why = "when Provider = OpenStack";
        let choice = self.cloud();
        let cloud = match &choice {
            CloudChoice::Found(cloud) => Some(cloud),
            _ => None,
        };
        let auth_url = self.credential("OpenStack.AuthURL", &["OS_AUTH_URL"], &choice, &["auth.auth_url"], why);
        // An unversioned Keystone URL (as clouds.yaml and OS_AUTH_URL often give it) is
        // where the clients discover v3, at /v3.
        let auth_url = match auth_url.split_once("://") {
            Some((_, rest)) if !rest.is_empty() && !rest.trim_end_matches('/').contains('/') => {
                format!("{}/v3", auth_url.trim_end_matches('/'))
            }
            _ => auth_url,
        };
        let url_ok = self.url("OpenStack.AuthURL", &auth_url, &["https", "http"], "an http(s) URL");
        if url_ok && !auth_url.is_empty() && !auth_url.trim_end_matches('/').ends_with("/v3") {
            self.problem(
                Some("OpenStack.AuthURL"),
                self.line("OpenStack.AuthURL"),
                format!("\"{auth_url}\" is not a Keystone v3 URL (ending in /v3)"),
            );
        }
        let ca_cert_file = match self.optional_or_env("OpenStack.CACertFile", &["OS_CACERT"]) {
            Some(file) => Some(self.file("OpenStack.CACertFile", &file)),
            None => cloud.and_then(|c| c.get(&["cacert"]).map(|file| (c, file))).map(|(c, file)| {
                // Relative to the clouds.yaml it is named in.
                let path = c.file.parent().unwrap_or(Path::new("/")).join(&file);
                if let Err(why) = (self.surroundings.check_file)(&path) {
                    let message = format!("file \"{file}\" (cacert of cloud \"{}\") {why}", c.name);
                    self.problem(Some("OpenStack.CACertFile"), None, message);
                }
                path
            }),
        };
        let keypair_file = self.required("OpenStack.KeypairFile", why);
        let keypair_file = self.file("OpenStack.KeypairFile", &keypair_file);
        let project = self.id_or_name(
            &[
                ("OpenStack.ProjectID", true),
                ("OpenStack.ProjectName", false),
                ("OpenStack.TenantID", true),
                ("OpenStack.TenantName", false),
            ],
            &[("OS_PROJECT_ID", true), ("OS_PROJECT_NAME", false), ("OS_TENANT_ID", true), ("OS_TENANT_NAME", false)],
            &choice,
            &[
                ("auth.project_id", true),
                ("auth.project_name", false),
                ("auth.tenant_id", true),
                ("auth.tenant_name", false),
            ],
            why,
        );
        let domain = self.id_or_name(
            &[("OpenStack.DomainID", true), ("OpenStack.DomainName", false)],
            &[
                ("OS_USER_DOMAIN_ID", true),
                ("OS_USER_DOMAIN_NAME", false),
                ("OS_DOMAIN_ID", true),
                ("OS_DOMAIN_NAME", false),
            ],
            &choice,
            &[
                ("auth.user_domain_id", true),
                ("auth.user_domain_name", false),
                ("auth.domain_id", true),
                ("auth.domain_name", false),
                ("auth.project_domain_id", true),
                ("auth.project_domain_name", false),
            ],
            why,
        );
        let floating_ip_pool = self.one_of(&["OpenStack.FloatingIPPoolName", "OpenStack.FloatingIPPoolID"], why);
        let zones = self.unique_list("OpenStack.AvailabilityZones");
        // IDs and names the SDK puts into request paths (preflight, uninstall): nothing that
        // could leave the path segment.
        for key in [
            "OpenStack.LinuxImageID",
            "OpenStack.MasterFlavorID",
            "OpenStack.NodeFlavorID",
            "OpenStack.GlusterFSFlavorID",
            "OpenStack.Keypair",
            "OpenStack.NetworkID",
            "OpenStack.SubnetID",
            "OpenStack.FloatingIPPoolName",
            "OpenStack.FloatingIPPoolID",
        ] {
            if let Some(value) = self.optional(key) {
                if value == "." || value == ".." || value.contains(['/', '?', '#', '%', '\\']) {
                    self.problem(
                        Some(key),
                        self.line(key),
                        format!("\"{value}\" is not an OpenStack ID or name: expected no '/', '?', '#', '%' or '\\'"),
                    );
                }
            }
        }
        OpenStack {
            auth_url,
            username: self.credential("OpenStack.Username", &["OS_USERNAME"], &choice, &["auth.username"], why),
            password: Secret(self.credential("OpenStack.Password", &["OS_PASSWORD"], &choice, &["auth.password"], why)),
            domain,
            project,
            region: self
                .optional_or_env("OpenStack.RegionName", &["OS_REGION_NAME"])
                .or_else(|| cloud.and_then(|c| c.get(&["region_name"])))
                .unwrap_or_else(|| "RegionOne".into()),
            availability_zones: if zones.is_empty() { vec!["nova".into()] } else { zones },
            image_id: self.required("OpenStack.LinuxImageID", why),
            master_flavor: self.required("OpenStack.MasterFlavorID", why),
            node_flavor: self.required("OpenStack.NodeFlavorID", why),
            gluster_flavor: self.optional("OpenStack.GlusterFSFlavorID").unwrap_or_default(),
            keypair: self.required("OpenStack.Keypair", why),
            keypair_file,
            jumpbox_cidr: self.cidr("OpenStack.JumpboxCIDR", None, why),
            load_balancer_cidr: self.cidr("OpenStack.LoadBalancerCIDR", Some("0.0.0.0/0"), why),
            network_id: self.required("OpenStack.NetworkID", why),
            subnet_id: self.required("OpenStack.SubnetID", why),
            floating_ip_pool,
            ca_cert_file,
        }
    }
}
