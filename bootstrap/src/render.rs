//! Renders the Terraform configuration of a cluster from the handlebars templates in
//! `terraform-templates/<provider>/` (compiled into the binary).
//!
//! Every value is escaped for an HCL string: `{{value}}` inside quotes can never end the string
//! or start an expression (`"`, `\`, `${` and `%{` come out literally), and `{{hcl value}}`
//! writes a whole literal (string, number, boolean or list). Secrets never go into `.tf` files:
//! they come back apart, for a 0600 `secrets.auto.tfvars` or the environment of Terraform.

use std::collections::BTreeMap;

use handlebars::{Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason};
use serde_json::{json, Value};

use crate::config::{Config, Provider, ProviderKind};
use crate::nodes;
use crate::pki::Pki;
use serde::Serialize;

/// The templates, by provider.
const TEMPLATES: &[(ProviderKind, &str, &str)] = &[
    (ProviderKind::OpenStack, "main.tf", include_str!("../../terraform-templates/openstack/main.tf.hbs")),
    (ProviderKind::Aws, "main.tf", include_str!("../../terraform-templates/aws/main.tf.hbs")),
    (ProviderKind::VSphere, "main.tf", include_str!("../../terraform-templates/vsphere/main.tf.hbs")),
    (ProviderKind::Local, "main.tf", include_str!("../../terraform-templates/local/main.tf.hbs")),
];

/// A rendered Terraform working directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Files without secrets, by name.
    pub files: BTreeMap<String, String>,
    /// Files holding secrets (write them with mode 0600), by name.
    pub secret_files: BTreeMap<String, String>,
    /// Environment variables Terraform needs (credentials), by name.
    pub environment: BTreeMap<String, String>,
}

impl Rendered {
    /// A digest of everything Terraform will be given: names and contents of every file and
    /// the environment. Equal digests mean an apply would have nothing new to do.
    pub fn fingerprint(&self) -> String {
        let parts: Vec<&[u8]> = self
            .files
            .iter()
            .chain(&self.secret_files)
            .chain(&self.environment)
            .flat_map(|(name, content)| [name.as_bytes(), content.as_bytes()])
            .collect();
        crate::phases::fingerprint(&parts)
    }

    /// The `terraform { ... }` block of `main.tf`: what `terraform init` depends on.
    pub fn required_providers(&self) -> String {
        let main = self.files.get("main.tf").map(String::as_str).unwrap_or_default();
        let start = main.find("terraform {").unwrap_or(0);
        let end = main[start..].find("\n}\n").map(|e| start + e + 3).unwrap_or(main.len());
        main[start..end].to_string()
    }
}

/// A digest of everything rendering depends on: the configuration, the cluster PKI and the
/// program that renders (`program`: something that changes when the program does, such as its
/// path, size and modification time). [`render`] is a pure function of the first two, so equal
/// digests mean equal renderings.
pub fn inputs_digest(config: &Config, pki: &Pki, program: &str) -> String {
    use std::hash::{Hash, Hasher};
    /// Feeds what `Hash` writes into SHA-256.
    struct Sha256(ring::digest::Context);
    impl Hasher for Sha256 {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            unreachable!("only the SHA-256 digest is read")
        }
    }
    let mut hasher = Sha256(ring::digest::Context::new(&ring::digest::SHA256));
    program.hash(&mut hasher);
    config.hash(&mut hasher);
    pki.hash(&mut hasher);
    crate::phases::hex(hasher.0.finish())
}

/// The environment Terraform runs with for `config`: AWS keys when the properties file gives
/// them (they never go into a file).
pub fn environment(config: &Config) -> BTreeMap<String, String> {
    let mut environment = BTreeMap::new();
    if let Some(a) = config.provider.aws() {
        if let (Some(key), Some(secret)) = (&a.access_key, &a.secret_key) {
            environment.insert("AWS_ACCESS_KEY_ID".into(), key.clone());
            environment.insert("AWS_SECRET_ACCESS_KEY".into(), secret.expose().to_string());
        }
    }
    environment
}

/// A template that could not be rendered (a bug in a template, not bad input).
#[derive(Debug, thiserror::Error)]
#[error("rendering the {provider} Terraform templates: {message}")]
pub struct RenderError {
    provider: &'static str,
    message: String,
}

/// Escapes `text` for the inside of an HCL quoted string.
pub fn hcl_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `value` as an HCL literal.
pub fn hcl_literal(value: &Value) -> String {
    match value {
        Value::String(s) => format!("\"{}\"", hcl_escape(s)),
        Value::Array(items) => format!("[{}]", items.iter().map(hcl_literal).collect::<Vec<_>>().join(", ")),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn hcl_helper(h: &Helper, _: &Handlebars, _: &Context, _: &mut RenderContext, out: &mut dyn Output) -> HelperResult {
    let value = h.param(0).ok_or(RenderErrorReason::ParamNotFoundForIndex("hcl", 0))?.value();
    out.write(&hcl_literal(value))?;
    Ok(())
}

fn engine() -> Handlebars<'static> {
    let mut engine = Handlebars::new();
    engine.set_strict_mode(true);
    engine.register_escape_fn(hcl_escape);
    engine.register_helper("hcl", Box::new(hcl_helper));
    engine
}

/// The values the templates see: typed, so a misspelt key does not compile. Serialised as
/// the common values plus one object named after the provider (`openstack`, `aws`,
/// `vsphere` or `local`).
#[derive(Debug, Serialize)]
pub struct Model<'a> {
    cluster_name: &'a str,
    domain: &'a str,
    master_count: u32,
    node_count: u32,
    gluster_node_count: u32,
    kubernetes_version: &'a str,
    pod_cidr: String,
    service_cidr: String,
    #[serde(flatten)]
    provider: ProviderModel<'a>,
}

/// The provider's values, under its template folder's name.
#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase")]
enum ProviderModel<'a> {
    OpenStack(OpenStackModel<'a>),
    Aws(AwsModel<'a>),
    VSphere(VSphereModel<'a>),
    Local(LocalModel<'a>),
}

#[derive(Debug, Serialize)]
struct OpenStackModel<'a> {
    auth_url: &'a str,
    username: &'a str,
    domain_id: Option<&'a str>,
    domain_name: Option<&'a str>,
    project_id: Option<&'a str>,
    project_name: Option<&'a str>,
    region: &'a str,
    ca_cert_file: Option<String>,
    availability_zones: &'a [String],
    image_id: &'a str,
    master_flavor: &'a str,
    node_flavor: &'a str,
    /// The node flavor when none is given for GlusterFS machines.
    gluster_flavor: &'a str,
    keypair: &'a str,
    jumpbox_cidr: String,
    load_balancer_cidr: String,
    network_id: &'a str,
    subnet_id: &'a str,
    floating_ip_pool: &'a str,
}

#[derive(Debug, Serialize)]
struct AwsModel<'a> {
    region: &'a str,
    vpc_id: &'a str,
    jumpbox_cidr: String,
    ami: &'a str,
    keypair: &'a str,
    master_instance_type: &'a str,
    node_instance_type: &'a str,
    gluster_instance_type: &'a str,
    private_subnet_ids: Vec<&'a str>,
    public_subnet_ids: Vec<&'a str>,
}

#[derive(Debug, Serialize)]
struct VSphereModel<'a> {
    username: &'a str,
    server: &'a str,
    insecure: bool,
    datacenter: Option<&'a str>,
    cluster: &'a str,
    datastore: &'a str,
    network: &'a str,
    vmdk_source: &'a str,
    thin: bool,
    eager: bool,
    master_cpus: u32,
    master_memory: u32,
    node_cpus: u32,
    node_memory: u32,
    gluster_cpus: u32,
    gluster_memory: u32,
    vip_start: String,
    vip_end: String,
    virtual_router_id: u32,
}

#[derive(Debug, Serialize)]
struct LocalModel<'a> {
    ssh_user: &'a str,
    ssh_port: u32,
    api_address: &'a str,
    /// `sudo ` unless the SSH user is root.
    sudo: &'static str,
    machine_dir: &'a str,
    masters: &'a [String],
    nodes: &'a [String],
    gluster: &'a [String],
}

/// The values the templates see for `config`.
pub fn model(config: &Config) -> Model<'_> {
    let provider = match &config.provider {
        Provider::OpenStack(o) => ProviderModel::OpenStack(OpenStackModel {
            auth_url: &o.auth_url,
            username: &o.username,
            domain_id: o.domain.id(),
            domain_name: o.domain.name(),
            project_id: o.project.id(),
            project_name: o.project.name(),
            region: &o.region,
            ca_cert_file: o.ca_cert_file.as_ref().map(|p| p.display().to_string()),
            availability_zones: &o.availability_zones,
            image_id: &o.image_id,
            master_flavor: &o.master_flavor,
            node_flavor: &o.node_flavor,
            gluster_flavor: if o.gluster_flavor.is_empty() { &o.node_flavor } else { &o.gluster_flavor },
            keypair: &o.keypair,
            jumpbox_cidr: o.jumpbox_cidr.to_string(),
            load_balancer_cidr: o.load_balancer_cidr.to_string(),
            network_id: &o.network_id,
            subnet_id: &o.subnet_id,
            floating_ip_pool: &o.floating_ip_pool,
        }),
        Provider::Aws(a) => {
            fn ids(subnets: &[(String, String)]) -> Vec<&str> {
                subnets.iter().map(|(id, _)| id.as_str()).collect()
            }
            ProviderModel::Aws(AwsModel {
                region: &a.region,
                vpc_id: &a.vpc_id,
                jumpbox_cidr: a.jumpbox_cidr.to_string(),
                ami: &a.ami,
                keypair: &a.keypair,
                master_instance_type: &a.master_instance_type,
                node_instance_type: &a.node_instance_type,
                gluster_instance_type: &a.gluster_instance_type,
                private_subnet_ids: ids(&a.private_subnets),
                public_subnet_ids: ids(&a.public_subnets),
            })
        }
        Provider::VSphere(v) => ProviderModel::VSphere(VSphereModel {
            username: &v.username,
            server: &v.server,
            insecure: v.insecure,
            datacenter: v.datacenters.first().map(String::as_str),
            cluster: &v.cluster,
            datastore: &v.datastore,
            network: &v.network,
            vmdk_source: &v.vmdk_source,
            thin: v.disk_type == "thin",
            eager: v.disk_type == "eager_zeroed",
            master_cpus: v.sizes[0].0,
            master_memory: v.sizes[0].1,
            node_cpus: v.sizes[1].0,
            node_memory: v.sizes[1].1,
            gluster_cpus: v.sizes[2].0,
            gluster_memory: v.sizes[2].1,
            vip_start: v.vip_range.0.to_string(),
            vip_end: v.vip_range.1.to_string(),
            virtual_router_id: v.virtual_router_id,
        }),
        Provider::Local(l) => ProviderModel::Local(LocalModel {
            ssh_user: &l.ssh_user,
            ssh_port: l.ssh_port,
            api_address: &l.api_address,
            sudo: if l.ssh_user == "root" { "" } else { "sudo " },
            machine_dir: &l.machine_dir,
            masters: &l.masters,
            nodes: &l.nodes,
            gluster: &l.gluster,
        }),
    };
    Model {
        cluster_name: &config.cluster_name,
        domain: &config.domain,
        master_count: config.master_count,
        node_count: config.node_count,
        gluster_node_count: config.gluster_node_count,
        kubernetes_version: &config.kubernetes_version,
        pod_cidr: config.pod_cidr.to_string(),
        service_cidr: config.service_cidr.to_string(),
        provider,
    }
}

/// Renders the Terraform configuration of `config`, with a cloud-config per machine made
/// from `pki` (secret: it carries the CA key and the join token).
pub fn render(config: &Config, pki: &Pki) -> Result<Rendered, RenderError> {
    let provider = config.provider.templates();
    let fail = |e: handlebars::RenderError| RenderError { provider, message: e.to_string() };
    let engine = engine();
    let model = model(config);
    let mut files = BTreeMap::new();
    for (_, name, template) in TEMPLATES.iter().filter(|(p, _, _)| *p == config.provider.kind()) {
        files.insert(name.to_string(), engine.render_template(template, &model).map_err(fail)?);
    }
    let mut secret_files: BTreeMap<String, String> = nodes::cloud_configs(config, pki)
        .map_err(|e| RenderError { provider, message: format!("the cluster PKI: {e}") })?
        .into_iter()
        .map(|(machine, text)| (format!("cloud-init/{}.yaml", machine.key()), text))
        .collect();
    // Passwords go into a 0600 tfvars file, never into main.tf; the SSH key file's path into
    // a plain one.
    match &config.provider {
        Provider::OpenStack(o) => {
            secret_files.insert(
                "secrets.auto.tfvars".into(),
                format!("openstack_password = {}\n", hcl_literal(&json!(o.password.expose()))),
            );
        }
        Provider::VSphere(v) => {
            secret_files.insert(
                "secrets.auto.tfvars".into(),
                format!("vsphere_password = {}\n", hcl_literal(&json!(v.password.expose()))),
            );
        }
        Provider::Local(l) => {
            files.insert(
                "terraform.tfvars".into(),
                format!("ssh_private_key_file = {}\n", hcl_literal(&json!(l.ssh_key_file.display().to_string()))),
            );
        }
        // AWS keys reach Terraform through its environment only.
        Provider::Aws(_) => {}
    }
    Ok(Rendered { files, secret_files, environment: environment(config) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_values_literal() {
        assert_eq!(hcl_escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(hcl_escape("${var.x} and %{if}"), "$${var.x} and %%{if}");
        assert_eq!(hcl_escape("cost $5 or 50%"), "cost $5 or 50%");
        assert_eq!(hcl_escape("line\nbreak\t"), "line\\nbreak\\t");
        assert_eq!(hcl_literal(&json!(["a", "b\"c"])), r#"["a", "b\"c"]"#);
        assert_eq!(hcl_literal(&json!(3)), "3");
    }

    #[test]
    fn the_model_holds_the_common_values_and_one_object_named_after_the_provider() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/local.properties");
        let config = crate::load(&path, &BTreeMap::new()).unwrap();
        let value = serde_json::to_value(model(&config)).unwrap();
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "cluster_name",
                "domain",
                "gluster_node_count",
                "kubernetes_version",
                "local",
                "master_count",
                "node_count",
                "pod_cidr",
                "service_cidr"
            ]
        );
        assert_eq!(value["local"]["sudo"], "sudo ");
        assert_eq!(value["local"]["masters"], json!(["192.0.2.10"]));
    }
}
