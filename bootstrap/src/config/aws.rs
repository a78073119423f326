//! AWS settings and how they are read: region, VPC, subnets with their zones, AMI,
//! instance types, key pair and optional keys.

use super::*;

/// AWS settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Aws {
    /// Access key (else the credential chain).
    pub access_key: Option<String>,
    /// Secret key (else the credential chain).
    pub secret_key: Option<Secret>,
    /// Region.
    pub region: String,
    /// Availability zones.
    pub availability_zones: Vec<String>,
    /// Instance types per role.
    pub master_instance_type: String,
    /// Instance type of worker nodes.
    pub node_instance_type: String,
    /// Instance type of GlusterFS nodes.
    pub gluster_instance_type: String,
    /// AMI.
    pub ami: String,
    /// Key pair name.
    pub keypair: String,
    /// Private key of the key pair.
    pub keypair_file: PathBuf,
    /// Who may SSH in.
    pub jumpbox_cidr: Cidr,
    /// VPC.
    pub vpc_id: String,
    /// Public subnets and their zones.
    pub public_subnets: Vec<(String, String)>,
    /// Private subnets and their zones.
    pub private_subnets: Vec<(String, String)>,
}

impl Reader<'_> {
    pub(super) fn subnets(&mut self, key: &str) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        for item in self.list(key) {
            match item.split_once(':') {
                Some((subnet, zone)) if aws_id("subnet", subnet) && aws_name(zone) => {
                    pairs.push((subnet.to_string(), zone.to_string()))
                }
                _ => self.problem(
                    Some(key),
                    self.line(key),
                    format!("\"{item}\" is not a subnet-id:zone pair such as subnet-0a1b2c:us-east-1a"),
                ),
            }
        }
        pairs
    }

    pub(super) fn aws(&mut self) -> Aws {
        let why = "when Provider = AWS";
        for key in ["AWS.AccessKey", "AWS.SecretKey"] {
            if self.values.get(key).is_some_and(|(v, _)| v.is_empty()) {
                self.problem(
                    Some(key),
                    self.line(key),
                    "is empty; expected a value (or leave out both AWS.AccessKey and AWS.SecretKey to use the AWS credential chain)",
                );
            }
        }
        let access_key = self.optional_or_env("AWS.AccessKey", &["AWS_ACCESS_KEY_ID"]);
        let secret_key = self.optional_or_env("AWS.SecretKey", &["AWS_SECRET_ACCESS_KEY"]).map(Secret);
        if access_key.is_some() != secret_key.is_some() {
            self.problem(
                Some("AWS.AccessKey"),
                self.line("AWS.AccessKey").or(self.line("AWS.SecretKey")),
                "give both AWS.AccessKey and AWS.SecretKey, or neither (to use the AWS credential chain)",
            );
        }
        let keypair_file = self.required("AWS.KeypairFile", why);
        let keypair_file = self.file("AWS.KeypairFile", &keypair_file);
        let ami = self.required("AWS.LinuxAMI", why);
        if !ami.is_empty() && !aws_id("ami", &ami) {
            self.problem(
                Some("AWS.LinuxAMI"),
                self.line("AWS.LinuxAMI"),
                format!("\"{ami}\" is not an AMI id (ami-...)"),
            );
        }
        let zones = self.unique_list("AWS.AvailabilityZones");
        if zones.is_empty() {
            self.required("AWS.AvailabilityZones", why);
        }
        let public_subnets = self.subnets("AWS.PublicSubnetIDsAndAZ");
        let private_subnets = self.subnets("AWS.PrivateSubnetIDsAndAZ");
        for (key, subnets) in
            [("AWS.PublicSubnetIDsAndAZ", &public_subnets), ("AWS.PrivateSubnetIDsAndAZ", &private_subnets)]
        {
            for zone in &zones {
                if !subnets.is_empty() && !subnets.iter().any(|(_, z)| z == zone) {
                    self.problem(Some(key), self.line(key), format!("has no subnet in availability zone {zone}"));
                }
            }
        }
        let vpc_id = self.required("AWS.VPCID", why);
        if !vpc_id.is_empty() && !aws_id("vpc", &vpc_id) {
            self.problem(Some("AWS.VPCID"), self.line("AWS.VPCID"), format!("\"{vpc_id}\" is not a VPC id (vpc-...)"));
        }
        // The region becomes part of the SDK's endpoint host names; zones and instance types go
        // to the EC2 API: names of lower-case letters, digits, '-' (and '.' in instance types).
        let region = self.required_or_env("AWS.Region", &["AWS_REGION", "AWS_DEFAULT_REGION"], why);
        let region_ok = region.is_empty() || (aws_name(&region) && region.contains('-'));
        if !region_ok {
            self.problem(
                Some("AWS.Region"),
                self.line("AWS.Region"),
                format!("\"{region}\" is not an AWS region such as us-east-1"),
            );
        }
        for zone in &zones {
            if !aws_name(zone) {
                self.problem(
                    Some("AWS.AvailabilityZones"),
                    self.line("AWS.AvailabilityZones"),
                    format!("\"{zone}\" is not an availability zone such as us-east-1a"),
                );
            }
        }
        let mut instance_type = |key: &str, default: &str| {
            let value = self.optional(key).unwrap_or_else(|| default.into());
            if !aws_name(&value.replace('.', "-")) {
                self.problem(
                    Some(key),
                    self.line(key),
                    format!("\"{value}\" is not an instance type such as m5.large"),
                );
            }
            value
        };
        let master_instance_type = instance_type("AWS.MasterInstanceType", "m5.large");
        let node_instance_type = instance_type("AWS.NodeInstanceType", "m5.xlarge");
        let gluster_instance_type = instance_type("AWS.GlusterFSInstanceType", "m5.large");
        Aws {
            access_key,
            secret_key,
            region,
            availability_zones: zones,
            master_instance_type,
            node_instance_type,
            gluster_instance_type,
            ami,
            keypair: self.required("AWS.Keypair", why),
            keypair_file,
            jumpbox_cidr: self.cidr("AWS.JumpboxCIDR", None, why),
            vpc_id,
            public_subnets,
            private_subnets,
        }
    }
}

/// Whether `text` is an AWS name (region, zone): lower-case letters, digits and '-', at most 32.
fn aws_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 32
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Whether `text` is an AWS resource ID `<prefix>-<lower-case letters and digits>`.
fn aws_id(prefix: &str, text: &str) -> bool {
    text.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('-')).is_some_and(|id| {
        !id.is_empty() && id.len() <= 40 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}
