//! The installer's AWS edge (aws-sdk-ec2): preflight checks that list every problem before
//! anything is created, and the sweep that finds what Kubernetes itself created in EC2 for a
//! cluster (volumes, security groups, network interfaces tagged
//! `kubernetes.io/cluster/<name>`) so it can be removed before Terraform destroys the network.

use aws_sdk_ec2::types::Filter;
use aws_sdk_ec2::Client;

/// Where and as whom to talk to EC2.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// Region.
    pub region: String,
    /// Endpoint override (a local moto server in tests).
    pub endpoint: Option<String>,
    /// Static credentials; else the AWS credential chain.
    pub credentials: Option<(String, String)>,
}

/// What the cluster will need from the account.
#[derive(Debug, Clone, Default)]
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
}

/// A failed call.
#[derive(Debug, thiserror::Error)]
#[error("EC2 {action}: {message}")]
pub struct AwsError {
    action: &'static str,
    message: String,
}

fn failed<E>(action: &'static str) -> impl Fn(aws_sdk_ec2::error::SdkError<E>) -> AwsError
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::fmt::Debug,
{
    move |e| AwsError {
        action,
        message: e
            .as_service_error()
            .and_then(|s| s.message().map(str::to_string))
            .unwrap_or_else(|| format!("{e:?}").chars().take(300).collect()),
    }
}

/// An EC2 client for `connection`.
pub async fn client(connection: &Connection) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(connection.region.clone()));
    if let Some(endpoint) = &connection.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some((key, secret)) = &connection.credentials {
        loader = loader.credentials_provider(aws_sdk_ec2::config::Credentials::new(key, secret, None, None, "stratus"));
    }
    Client::new(&loader.load().await)
}

/// Every problem with `requirements` in the account, all listed; empty when ready.
pub async fn preflight(client: &Client, requirements: &Requirements) -> Result<Vec<String>, AwsError> {
    let mut problems = Vec::new();

    let images = client.describe_images().image_ids(&requirements.ami).send().await;
    match images {
        Ok(out) if !out.images().is_empty() => {}
        Ok(_) | Err(_) => {
            problems.push(format!("AWS.LinuxAMI: image {} does not exist in this region", requirements.ami))
        }
    }

    let offered = client
        .describe_instance_type_offerings()
        .filters(Filter::builder().name("instance-type").set_values(Some(requirements.instance_types.clone())).build())
        .send()
        .await
        .map_err(failed("DescribeInstanceTypeOfferings"))?;
    let offered: Vec<String> = offered
        .instance_type_offerings()
        .iter()
        .filter_map(|o| o.instance_type().map(|t| t.as_str().to_string()))
        .collect();
    for wanted in &requirements.instance_types {
        if !offered.contains(wanted) {
            problems.push(format!("instance type {wanted} is not offered in this region"));
        }
    }

    let vpcs = client
        .describe_vpcs()
        .filters(Filter::builder().name("vpc-id").values(&requirements.vpc_id).build())
        .send()
        .await
        .map_err(failed("DescribeVpcs"))?;
    if vpcs.vpcs().is_empty() {
        problems.push(format!("AWS.VPCID: VPC {} does not exist", requirements.vpc_id));
    }

    let ids: Vec<String> = requirements.subnets.iter().map(|(id, _)| id.clone()).collect();
    let subnets = client
        .describe_subnets()
        .filters(Filter::builder().name("subnet-id").set_values(Some(ids)).build())
        .send()
        .await
        .map_err(failed("DescribeSubnets"))?;
    for (id, zone) in &requirements.subnets {
        match subnets.subnets().iter().find(|s| s.subnet_id() == Some(id.as_str())) {
            None => problems.push(format!("subnet {id} does not exist")),
            Some(subnet) => {
                if subnet.availability_zone() != Some(zone.as_str()) {
                    problems
                        .push(format!("subnet {id} is in {}, not {zone}", subnet.availability_zone().unwrap_or("?")));
                }
                if subnet.vpc_id() != Some(requirements.vpc_id.as_str()) {
                    problems.push(format!(
                        "subnet {id} belongs to {}, not {}",
                        subnet.vpc_id().unwrap_or("?"),
                        requirements.vpc_id
                    ));
                }
            }
        }
    }

    let keys = client
        .describe_key_pairs()
        .filters(Filter::builder().name("key-name").values(&requirements.keypair).build())
        .send()
        .await
        .map_err(failed("DescribeKeyPairs"))?;
    if keys.key_pairs().is_empty() {
        problems.push(format!("AWS.Keypair: key pair {} does not exist", requirements.keypair));
    }

    let attributes = client
        .describe_account_attributes()
        .attribute_names(aws_sdk_ec2::types::AccountAttributeName::DefaultVpc)
        .send()
        .await;
    let _ = attributes; // reachable account; instance limits are per vCPU quota (Service Quotas), not checked here
    Ok(problems)
}

/// One resource Kubernetes created for the cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Leftover {
    /// `volume`, `security-group` or `network-interface`.
    pub kind: &'static str,
    /// Its id.
    pub id: String,
}

fn cluster_filter(cluster: &str) -> Filter {
    Filter::builder().name("tag-key").values(format!("kubernetes.io/cluster/{cluster}")).build()
}

/// What is tagged with the cluster in EC2.
pub async fn tagged(client: &Client, cluster: &str) -> Result<Vec<Leftover>, AwsError> {
    let mut found = Vec::new();
    let volumes =
        client.describe_volumes().filters(cluster_filter(cluster)).send().await.map_err(failed("DescribeVolumes"))?;
    found.extend(
        volumes.volumes().iter().filter_map(|v| v.volume_id()).map(|id| Leftover { kind: "volume", id: id.into() }),
    );
    let interfaces = client
        .describe_network_interfaces()
        .filters(cluster_filter(cluster))
        .send()
        .await
        .map_err(failed("DescribeNetworkInterfaces"))?;
    found.extend(
        interfaces
            .network_interfaces()
            .iter()
            .filter_map(|n| n.network_interface_id())
            .map(|id| Leftover { kind: "network-interface", id: id.into() }),
    );
    let groups = client
        .describe_security_groups()
        .filters(cluster_filter(cluster))
        .send()
        .await
        .map_err(failed("DescribeSecurityGroups"))?;
    found.extend(
        groups
            .security_groups()
            .iter()
            .filter_map(|g| g.group_id())
            .map(|id| Leftover { kind: "security-group", id: id.into() }),
    );
    found.sort();
    Ok(found)
}

/// Deletes what Kubernetes created for the cluster (interfaces, then volumes, then security
/// groups) and returns what could not be deleted, with why.
pub async fn sweep(client: &Client, cluster: &str) -> Result<Vec<(Leftover, String)>, AwsError> {
    let mut failures = Vec::new();
    let mut found = tagged(client, cluster).await?;
    let order = |kind: &str| match kind {
        "network-interface" => 0,
        "volume" => 1,
        _ => 2,
    };
    found.sort_by_key(|l| order(l.kind));
    for leftover in found {
        let result = match leftover.kind {
            "network-interface" => client
                .delete_network_interface()
                .network_interface_id(&leftover.id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:?}")),
            "volume" => {
                client.delete_volume().volume_id(&leftover.id).send().await.map(|_| ()).map_err(|e| format!("{e:?}"))
            }
            _ => client
                .delete_security_group()
                .group_id(&leftover.id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:?}")),
        };
        if let Err(why) = result {
            failures.push((leftover, why.chars().take(200).collect()));
        }
    }
    Ok(failures)
}
