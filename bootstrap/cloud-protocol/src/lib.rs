//! The protocol between `bootstrap` and its cloud helper `bootstrap-cloud` (the package
//! `bootstrap-cloud`, in `bootstrap/cloud-helper`): the one program that links the cloud SDKs
//! (aws-sdk-ec2 and the ELB SDKs, the `openstack` crate), much as Terraform keeps each
//! provider in its own executable. `bootstrap` writes one JSON [`Request`] to the helper's
//! stdin (credentials included: they never go on a command line) and reads one JSON
//! [`Answer`] from its stdout; the helper's stderr is the user's.
//!
//! Only serde types live here, so that `bootstrap` and the SDK crates (`bootstrap-aws`,
//! `bootstrap-openstack`, which take [`aws`] and [`openstack`] types as they are) share them
//! while only the helper builds the SDKs.

/// What the helper is asked to do.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "call", rename_all = "kebab-case")]
pub enum Request {
    /// Check the AWS account before anything is created.
    AwsPreflight {
        /// Where and as whom.
        connection: aws::Connection,
        /// What the cluster needs.
        requirements: aws::Requirements,
    },
    /// What in AWS is still tagged with the cluster.
    AwsLeftovers {
        /// Where and as whom.
        connection: aws::Connection,
        /// The cluster name.
        cluster: String,
    },
    /// Remove what Kubernetes created in AWS for the cluster.
    AwsSweep {
        /// Where and as whom.
        connection: aws::Connection,
        /// The cluster name.
        cluster: String,
        /// Seconds between attempts at what is still in use.
        retry_after_seconds: u64,
    },
    /// Check the OpenStack project before anything is created.
    OpenStackPreflight {
        /// Where and as whom.
        connection: openstack::Connection,
        /// What the cluster needs.
        requirements: openstack::Requirements,
    },
    /// What in OpenStack is still the cluster's.
    OpenStackLeftovers {
        /// Where and as whom.
        connection: openstack::Connection,
        /// The cluster name.
        cluster: String,
    },
    /// Remove what Kubernetes created in OpenStack for the cluster.
    OpenStackSweep {
        /// Where and as whom.
        connection: openstack::Connection,
        /// The cluster name.
        cluster: String,
    },
}

/// What the helper answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    /// Preflight: every problem found, each naming the key to fix (none: ready).
    Problems(Vec<String>),
    /// Leftovers: what of the cluster is still there, one line each.
    Found(Vec<String>),
    /// Sweep: what could not be removed, `what: why` each (none: all removed).
    NotRemoved(Vec<String>),
    /// The cloud could not be asked (authentication, network, refusal): why.
    Failed(String),
}

/// AWS: where and as whom, and what the cluster needs from the account (the input of
/// `bootstrap-aws`).
pub mod aws {
    /// Where and as whom to talk to EC2.
    #[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
    pub struct Connection {
        /// Region.
        pub region: String,
        /// Endpoint override (a local moto server in tests).
        pub endpoint: Option<String>,
        /// Static credentials; else the AWS credential chain.
        pub credentials: Option<(String, String)>,
    }

    impl std::fmt::Debug for Connection {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let who = self.credentials.as_ref().map(|(key, _)| key.as_str()).unwrap_or("the credential chain");
            write!(f, "Connection({} via {:?} as {who})", self.region, self.endpoint)
        }
    }

    /// What the cluster will need from the account.
    #[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
    pub struct Requirements {
        /// AMI of every machine.
        pub ami: String,
        /// Instance types in use.
        pub instance_types: Vec<String>,
        /// VPC.
        pub vpc_id: String,
        /// Subnets and the zone each must be in.
        pub subnets: Vec<(String, String)>,
        /// Key pair name.
        pub keypair: String,
        /// Instances the cluster will run.
        pub instances: u32,
        /// Elastic IPs it will allocate (one per master).
        pub elastic_ips: u32,
    }
}

/// OpenStack: where and as whom, and what the cluster needs from the project (the input of
/// `bootstrap-openstack`).
pub mod openstack {
    /// A project or domain, by ID or by name.
    #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    pub enum IdOrName {
        /// By ID.
        Id(String),
        /// By name.
        Name(String),
    }

    /// Where and as whom to talk to OpenStack.
    #[derive(Clone, serde::Serialize, serde::Deserialize)]
    pub struct Connection {
        /// Keystone v3 URL.
        pub auth_url: String,
        /// User name.
        pub username: String,
        /// Password.
        pub password: String,
        /// Domain of the user and the project.
        pub domain: IdOrName,
        /// Project.
        pub project: IdOrName,
        /// Region (endpoints of other regions are ignored).
        pub region: String,
        /// PEM of a private CA the endpoints' certificates chain to (`OpenStack.CACertFile`),
        /// trusted besides the usual roots.
        pub ca_certificate: Option<String>,
    }

    impl std::fmt::Debug for Connection {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Connection({} as {} in {:?})", self.auth_url, self.username, self.project)
        }
    }

    /// One flavor the cluster uses, and for what.
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    pub struct FlavorUse {
        /// The properties key naming it (`OpenStack.MasterFlavorID`).
        pub key: String,
        /// Flavor id or name.
        pub flavor: String,
        /// Machines of that flavor.
        pub count: u32,
    }

    /// What the cluster will need from the project.
    #[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
    pub struct Requirements {
        /// Image of every machine.
        pub image: String,
        /// Flavors in use.
        pub flavors: Vec<FlavorUse>,
        /// Network of the machines.
        pub network: String,
        /// Its subnet.
        pub subnet: String,
        /// Nova key pair.
        pub keypair: String,
        /// External network floating IPs come from.
        pub floating_ip_pool: String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_travel_as_tagged_json() {
        let request = Request::OpenStackLeftovers {
            connection: openstack::Connection {
                auth_url: "https://keystone:5000/v3".into(),
                username: "ops".into(),
                password: "pw".into(),
                domain: openstack::IdOrName::Id("default".into()),
                project: openstack::IdOrName::Name("stratus".into()),
                region: "RegionOne".into(),
                ca_certificate: None,
            },
            cluster: "demo".into(),
        };
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["call"], "open-stack-leftovers");
        assert_eq!(json["connection"]["domain"], serde_json::json!({"Id": "default"}));
        let back: Request = serde_json::from_value(json).unwrap();
        assert!(matches!(back, Request::OpenStackLeftovers { cluster, .. } if cluster == "demo"));
        let answer = Answer::NotRemoved(vec!["volume v-1: in use".into()]);
        assert_eq!(serde_json::from_str::<Answer>(&serde_json::to_string(&answer).unwrap()).unwrap(), answer);
    }

    #[test]
    fn connections_do_not_print_their_secrets() {
        let aws = aws::Connection {
            region: "us-east-1".into(),
            endpoint: None,
            credentials: Some(("AKIDEXAMPLE".into(), "aws-secret".into())),
        };
        let openstack = openstack::Connection {
            auth_url: "https://keystone:5000/v3".into(),
            username: "ops".into(),
            password: "os-secret".into(),
            domain: openstack::IdOrName::Id("default".into()),
            project: openstack::IdOrName::Name("stratus".into()),
            region: "RegionOne".into(),
            ca_certificate: None,
        };
        let printed =
            format!("{:?} {:?}", Request::AwsLeftovers { connection: aws, cluster: "demo".into() }, openstack);
        assert!(printed.contains("AKIDEXAMPLE") && printed.contains("ops"), "{printed}");
        assert!(!printed.contains("aws-secret") && !printed.contains("os-secret"), "{printed}");
    }
}
