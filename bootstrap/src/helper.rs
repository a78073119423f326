//! The installer's questions to the cloud helper (see [`crate::cloud`]): connections made from
//! the configuration, and the three things asked of a cloud — preflight (is everything the
//! cluster needs there?), sweep (remove what Kubernetes created) and leftovers (what of the
//! cluster is still there?). Nothing here runs for vSphere or existing machines.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cloud::{Answer, Request};
use crate::config::{Aws, Config, OpenStack, Provider};
use crate::Error;

/// Where and as whom to reach AWS.
pub fn aws_connection(aws: &Aws, env: &BTreeMap<String, String>) -> crate::cloud::aws::Connection {
    crate::cloud::aws::Connection {
        region: aws.region.clone(),
        // The SDKs' own endpoint override (a VPC endpoint, or a local stand-in in tests).
        endpoint: env.get("AWS_ENDPOINT_URL_EC2").or(env.get("AWS_ENDPOINT_URL")).cloned(),
        credentials: aws.access_key.clone().zip(aws.secret_key.as_ref().map(|s| s.expose().to_string())),
    }
}

/// Where and as whom to reach OpenStack (the CA bundle read from `OpenStack.CACertFile`).
pub fn openstack_connection(os: &OpenStack) -> Result<crate::cloud::openstack::Connection, Error> {
    Ok(crate::cloud::openstack::Connection {
        auth_url: os.auth_url.clone(),
        username: os.username.clone(),
        password: os.password.expose().to_string(),
        domain: (&os.domain).into(),
        project: (&os.project).into(),
        region: os.region.clone(),
        ca_certificate: os.ca_cert_file.as_deref().map(read_ca).transpose()?,
    })
}

/// The CA bundle `file` (bad input when unreadable).
pub fn read_ca(file: &Path) -> Result<String, Error> {
    crate::read_input_text(file).map_err(|e| Error::InputFile { path: file.to_path_buf(), message: e.to_string() })
}

/// Asks the helper next to `program` (the running installer), or on PATH.
pub fn ask(program: &Path, request: &Request) -> Result<Answer, Error> {
    let helper = crate::cloud::helper_path(Some(program));
    Ok(crate::cloud::ask(&helper, request)?)
}

/// The error for an answer other than the one asked for (`Failed`: the cloud's own error,
/// followed by `suffix`).
fn unexpected(answer: Answer, suffix: &str) -> Error {
    match answer {
        Answer::Failed(why) => Error::Cloud(format!("{why}{suffix}")),
        other => Error::Cloud(format!("the cloud helper answered {other:?} to another question")),
    }
}

/// What preflight checks, where: the request, and the place named in its verdict.
pub fn preflight_request(
    config: &Config,
    env: &BTreeMap<String, String>,
) -> Result<Option<(Request, &'static str)>, Error> {
    let aws = match &config.provider {
        Provider::Aws(aws) => aws,
        Provider::VSphere(_) | Provider::Local(_) => return Ok(None),
        Provider::OpenStack(os) => {
            let flavor = |key: &str, flavor: &str, count: u32| crate::cloud::openstack::FlavorUse {
                key: key.into(),
                flavor: flavor.into(),
                count,
            };
            let mut flavors = vec![
                flavor("OpenStack.MasterFlavorID", &os.master_flavor, config.master_count),
                flavor("OpenStack.NodeFlavorID", &os.node_flavor, config.node_count),
            ];
            if config.gluster_node_count > 0 {
                flavors.push(flavor("OpenStack.GlusterFSFlavorID", &os.gluster_flavor, config.gluster_node_count));
            }
            let requirements = crate::cloud::openstack::Requirements {
                image: os.image_id.clone(),
                flavors,
                network: os.network_id.clone(),
                subnet: os.subnet_id.clone(),
                keypair: os.keypair.clone(),
                floating_ip_pool: os.floating_ip_pool.clone(),
            };
            let request = Request::OpenStackPreflight { connection: openstack_connection(os)?, requirements };
            return Ok(Some((request, "OpenStack project")));
        }
    };
    let mut instance_types = vec![aws.master_instance_type.clone(), aws.node_instance_type.clone()];
    if config.gluster_node_count > 0 {
        instance_types.push(aws.gluster_instance_type.clone());
    }
    instance_types.dedup();
    let requirements = crate::cloud::aws::Requirements {
        ami: aws.ami.clone(),
        instance_types,
        vpc_id: aws.vpc_id.clone(),
        subnets: aws.public_subnets.iter().chain(&aws.private_subnets).cloned().collect(),
        keypair: aws.keypair.clone(),
        instances: config.master_count + config.node_count + config.gluster_node_count,
        elastic_ips: config.master_count,
    };
    Ok(Some((Request::AwsPreflight { connection: aws_connection(aws, env), requirements }, "AWS account")))
}

/// Runs a preflight request: `Ok` when the cloud has everything, else every problem.
pub fn preflight(program: &Path, request: &Request, place: &'static str) -> Result<(), Error> {
    let suffix = if place == "OpenStack project" { "; nothing was created" } else { "" };
    let problems = match ask(program, request)? {
        Answer::Problems(problems) => problems,
        other => return Err(unexpected(other, suffix)),
    };
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Preflight { place, problems })
}

/// Removes what Kubernetes created in the cloud for the cluster; returns the cloud's name,
/// or `None` when the provider has nothing to sweep.
pub fn sweep(program: &Path, config: &Config, env: &BTreeMap<String, String>) -> Result<Option<&'static str>, Error> {
    let cluster = config.cluster_name.clone();
    let (request, cloud) = match &config.provider {
        Provider::Aws(aws) => {
            (Request::AwsSweep { connection: aws_connection(aws, env), cluster, retry_after_seconds: 15 }, "EC2")
        }
        Provider::OpenStack(os) => {
            (Request::OpenStackSweep { connection: openstack_connection(os)?, cluster }, "OpenStack")
        }
        Provider::VSphere(_) | Provider::Local(_) => return Ok(None),
    };
    match ask(program, &request)? {
        Answer::NotRemoved(failures) if failures.is_empty() => Ok(Some(cloud)),
        Answer::NotRemoved(failures) => Err(Error::NotSwept(failures)),
        other => Err(unexpected(other, "")),
    }
}

/// What Kubernetes left in the cloud for the cluster: AWS resources tagged with it, or the
/// OpenStack balancers, floating IPs and volumes its controllers made.
pub fn leftovers(program: &Path, config: &Config, env: &BTreeMap<String, String>) -> Result<Vec<String>, Error> {
    let cluster = config.cluster_name.clone();
    let request = match &config.provider {
        Provider::Aws(aws) => Request::AwsLeftovers { connection: aws_connection(aws, env), cluster },
        Provider::OpenStack(os) => Request::OpenStackLeftovers { connection: openstack_connection(os)?, cluster },
        Provider::VSphere(_) | Provider::Local(_) => return Ok(Vec::new()),
    };
    match ask(program, &request)? {
        Answer::Found(found) => Ok(found),
        other => Err(unexpected(other, "")),
    }
}
