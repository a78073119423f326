//! The installer's AWS edge (aws-sdk-ec2): preflight checks that list every problem before
//! anything is created, and the sweep that finds what Kubernetes itself created for a cluster
//! (Classic and v2 load balancers, target groups, volumes, security groups, network interfaces
//! tagged `kubernetes.io/cluster/<name>`) so it can be removed before Terraform destroys the
//! network.

use aws_sdk_ec2::types::Filter;
use aws_sdk_ec2::Client;

/// Where and as whom, and what the cluster needs: the cloud helper's request types
/// (`bootstrap-cloud-protocol`), taken as they are.
pub use bootstrap_cloud_protocol::aws::{Connection, Requirements};

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

/// Clients of the APIs the installer uses: EC2, and both Elastic Load Balancing APIs (the
/// cloud controller makes Classic balancers by default and NLBs on request).
#[derive(Debug, Clone)]
pub struct Clients {
    /// EC2.
    pub ec2: Client,
    /// Classic load balancers.
    pub elb: aws_sdk_elasticloadbalancing::Client,
    /// Application and network load balancers.
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
}

/// Clients for `connection`.
pub async fn client(connection: &Connection) -> Clients {
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https)
        .region(aws_config::Region::new(connection.region.clone()));
    if let Some(endpoint) = &connection.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some((key, secret)) = &connection.credentials {
        loader = loader.credentials_provider(aws_sdk_ec2::config::Credentials::new(key, secret, None, None, "stratus"));
    }
    let config = loader.load().await;
    Clients {
        ec2: Client::new(&config),
        elb: aws_sdk_elasticloadbalancing::Client::new(&config),
        elbv2: aws_sdk_elasticloadbalancingv2::Client::new(&config),
    }
}

/// Every problem with `requirements` in the account, all listed; empty when ready.
pub async fn preflight(clients: &Clients, requirements: &Requirements) -> Result<Vec<String>, AwsError> {
    let client = &clients.ec2;
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

    // The account's limits, as EC2 reports them, against what is already in use.
    let attributes = client.describe_account_attributes().send().await.map_err(failed("DescribeAccountAttributes"))?;
    let limit = |name: &str| {
        attributes
            .account_attributes()
            .iter()
            .find(|a| a.attribute_name() == Some(name))
            .and_then(|a| a.attribute_values().first())
            .and_then(|v| v.attribute_value())
            .and_then(|v| v.parse::<u64>().ok())
    };
    if let Some(max) = limit("max-instances") {
        let running = client
            .describe_instances()
            .filters(Filter::builder().name("instance-state-name").values("pending").values("running").build())
            .send()
            .await
            .map_err(failed("DescribeInstances"))?;
        let used: u64 = running.reservations().iter().map(|r| r.instances().len() as u64).sum();
        let free = max.saturating_sub(used);
        if u64::from(requirements.instances) > free {
            problems.push(format!(
                "limits: the cluster needs {} instances, the account allows {free} more (max-instances {max}, {used} running)",
                requirements.instances
            ));
        }
    }
    if let Some(max) = limit("vpc-max-elastic-ips") {
        let addresses = client.describe_addresses().send().await.map_err(failed("DescribeAddresses"))?;
        let used = addresses.addresses().len() as u64;
        let free = max.saturating_sub(used);
        if u64::from(requirements.elastic_ips) > free {
            problems.push(format!(
                "limits: the cluster needs {} elastic IPs, the account allows {free} more (vpc-max-elastic-ips {max}, {used} allocated)",
                requirements.elastic_ips
            ));
        }
    }
    Ok(problems)
}

/// One resource Kubernetes created for the cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Leftover {
    /// `load-balancer` (Classic), `load-balancer-v2`, `target-group`, `network-interface`,
    /// `volume` or `security-group`.
    pub kind: &'static str,
    /// Its id (a name for Classic balancers, an ARN for v2 ones and target groups).
    pub id: String,
}

fn cluster_filter(cluster: &str) -> Filter {
    Filter::builder().name("tag-key").values(format!("kubernetes.io/cluster/{cluster}")).build()
}

fn tag_key(cluster: &str) -> String {
    format!("kubernetes.io/cluster/{cluster}")
}

/// Load balancers and target groups tagged with the cluster.
async fn tagged_balancers(clients: &Clients, cluster: &str) -> Result<Vec<Leftover>, AwsError> {
    let key = tag_key(cluster);
    let mut found = Vec::new();
    let classic = clients.elb.describe_load_balancers().send().await.map_err(failed("DescribeLoadBalancers"))?;
    let names: Vec<String> = classic
        .load_balancer_descriptions()
        .iter()
        .filter_map(|d| d.load_balancer_name().map(str::to_string))
        .collect();
    for chunk in names.chunks(20) {
        let tags = clients
            .elb
            .describe_tags()
            .set_load_balancer_names(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(failed("DescribeTags"))?;
        for description in tags.tag_descriptions() {
            if description.tags().iter().any(|t| t.key() == key) {
                let id = description.load_balancer_name().unwrap_or_default().to_string();
                found.push(Leftover { kind: "load-balancer", id });
            }
        }
    }
    let balancers = clients.elbv2.describe_load_balancers().send().await.map_err(failed("DescribeLoadBalancers"))?;
    let groups = clients.elbv2.describe_target_groups().send().await.map_err(failed("DescribeTargetGroups"))?;
    let arns: Vec<(&'static str, String)> = balancers
        .load_balancers()
        .iter()
        .filter_map(|b| b.load_balancer_arn().map(|a| ("load-balancer-v2", a.to_string())))
        .chain(
            groups.target_groups().iter().filter_map(|g| g.target_group_arn().map(|a| ("target-group", a.to_string()))),
        )
        .collect();
    for chunk in arns.chunks(20) {
        let tags = clients
            .elbv2
            .describe_tags()
            .set_resource_arns(Some(chunk.iter().map(|(_, a)| a.clone()).collect()))
            .send()
            .await
            .map_err(failed("DescribeTags"))?;
        for description in tags.tag_descriptions() {
            if description.tags().iter().any(|t| t.key() == Some(key.as_str())) {
                let arn = description.resource_arn().unwrap_or_default();
                let kind = chunk.iter().find(|(_, a)| a == arn).map(|(k, _)| *k).unwrap_or("load-balancer-v2");
                found.push(Leftover { kind, id: arn.to_string() });
            }
        }
    }
    Ok(found)
}

/// What is tagged with the cluster in EC2 and Elastic Load Balancing.
pub async fn tagged(clients: &Clients, cluster: &str) -> Result<Vec<Leftover>, AwsError> {
    let client = &clients.ec2;
    let mut found = tagged_balancers(clients, cluster).await?;
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

/// Deletes what Kubernetes created for the cluster (load balancers, then their target groups,
/// interfaces, volumes, security groups) and returns what could not be deleted, with why.
/// Balancers release their interfaces and groups with a delay: what fails is tried again,
/// up to three passes, `retry_after` apart.
pub async fn sweep(
    clients: &Clients,
    cluster: &str,
    retry_after: std::time::Duration,
) -> Result<Vec<(Leftover, String)>, AwsError> {
    let mut failures = Vec::new();
    for pass in 0..3 {
        if pass > 0 {
            if failures.is_empty() {
                break;
            }
            tokio::time::sleep(retry_after).await;
        }
        failures = sweep_once(clients, cluster).await?;
    }
    Ok(failures)
}

async fn sweep_once(clients: &Clients, cluster: &str) -> Result<Vec<(Leftover, String)>, AwsError> {
    let client = &clients.ec2;
    let mut failures = Vec::new();
    let mut found = tagged(clients, cluster).await?;
    let order = |kind: &str| match kind {
        "load-balancer" | "load-balancer-v2" => 0,
        "target-group" => 1,
        "network-interface" => 2,
        "volume" => 3,
        _ => 4,
    };
    found.sort_by_key(|l| order(l.kind));
    for leftover in found {
        let result = match leftover.kind {
            "load-balancer" => clients
                .elb
                .delete_load_balancer()
                .load_balancer_name(&leftover.id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:?}")),
            "load-balancer-v2" => clients
                .elbv2
                .delete_load_balancer()
                .load_balancer_arn(&leftover.id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:?}")),
            "target-group" => clients
                .elbv2
                .delete_target_group()
                .target_group_arn(&leftover.id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:?}")),
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
