//! Preflight and the teardown sweep against `moto_server` (PyPI `moto`), started on a free
//! loopback port: real signed EC2 calls through aws-sdk-ec2.

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use bootstrap_aws::{client, preflight, sweep, tagged, Connection, Requirements};
use stratus_tests::moto::MotoServer;

fn connection(moto: &MotoServer) -> Connection {
    Connection {
        region: "us-east-1".into(),
        endpoint: Some(moto.url().to_string()),
        credentials: Some(("testing".into(), "testing".into())),
    }
}

fn tags(resource: ResourceType, cluster: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .tags(Tag::builder().key(format!("kubernetes.io/cluster/{cluster}")).value("owned").build())
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_lists_every_problem_and_passes_a_ready_account() {
    let moto = MotoServer::start();
    let clients = client(&connection(&moto)).await;
    let ec2 = &clients.ec2;
    let vpc = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap().vpc.unwrap().vpc_id.unwrap();
    let mut subnets = Vec::new();
    for (i, zone) in ["us-east-1a", "us-east-1b"].iter().enumerate() {
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("10.0.{i}.0/24"))
            .availability_zone(*zone)
            .send()
            .await
            .unwrap();
        subnets.push((subnet.subnet.unwrap().subnet_id.unwrap(), zone.to_string()));
    }
    ec2.create_key_pair().key_name("stratus-key").send().await.unwrap();
    let images = ec2.describe_images().owners("amazon").send().await.unwrap();
    let ami = images.images()[0].image_id().unwrap().to_string();

    let ready = Requirements {
        ami: ami.clone(),
        instance_types: vec!["m5.large".into(), "m5.xlarge".into()],
        vpc_id: vpc.clone(),
        subnets: subnets.clone(),
        keypair: "stratus-key".into(),
        instances: 8,
        elastic_ips: 1,
    };
    assert_eq!(preflight(&clients, &ready).await.unwrap(), Vec::<String>::new());

    // Limits count what is already in use.
    ec2.allocate_address().domain(aws_sdk_ec2::types::DomainType::Vpc).send().await.unwrap();
    let broken = Requirements {
        ami: "ami-00000000000000000".into(),
        instance_types: vec!["m5.large".into(), "x9.gigantic".into()],
        vpc_id: "vpc-00000000".into(),
        subnets: vec![(subnets[0].0.clone(), "us-east-1c".into()), ("subnet-00000000".into(), "us-east-1a".into())],
        keypair: "missing-key".into(),
        instances: 500,
        elastic_ips: 50,
    };
    let problems = preflight(&clients, &broken).await.unwrap();
    assert_eq!(
        problems,
        vec![
            "AWS.LinuxAMI: image ami-00000000000000000 does not exist in this region".to_string(),
            "instance type x9.gigantic is not offered in this region".to_string(),
            "AWS.VPCID: VPC vpc-00000000 does not exist".to_string(),
            format!("subnet {} is in us-east-1a, not us-east-1c", subnets[0].0),
            format!("subnet {} belongs to {vpc}, not vpc-00000000", subnets[0].0),
            "subnet subnet-00000000 does not exist".to_string(),
            "AWS.Keypair: key pair missing-key does not exist".to_string(),
            "limits: the cluster needs 500 instances, the account allows 20 more (max-instances 20, 0 running)"
                .to_string(),
            "limits: the cluster needs 50 elastic IPs, the account allows 4 more (vpc-max-elastic-ips 5, 1 allocated)"
                .to_string(),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_removes_what_kubernetes_created_and_nothing_else() {
    let moto = MotoServer::start();
    let clients = client(&connection(&moto)).await;
    let ec2 = &clients.ec2;
    let vpc = ec2.create_vpc().cidr_block("10.1.0.0/16").send().await.unwrap().vpc.unwrap().vpc_id.unwrap();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.1.0.0/24")
        .availability_zone("us-east-1a")
        .send()
        .await
        .unwrap()
        .subnet
        .unwrap()
        .subnet_id
        .unwrap();
    // What a cloud controller and CSI driver leave behind for cluster "demo".
    for _ in 0..2 {
        ec2.create_volume()
            .availability_zone("us-east-1a")
            .size(10)
            .tag_specifications(tags(ResourceType::Volume, "demo"))
            .send()
            .await
            .unwrap();
    }
    ec2.create_security_group()
        .group_name("k8s-elb-demo")
        .description("created by Kubernetes")
        .vpc_id(&vpc)
        .tag_specifications(tags(ResourceType::SecurityGroup, "demo"))
        .send()
        .await
        .unwrap();
    ec2.create_network_interface()
        .subnet_id(&subnet)
        .tag_specifications(tags(ResourceType::NetworkInterface, "demo"))
        .send()
        .await
        .unwrap();
    // Another cluster's volume and an untagged one must survive.
    let other = ec2
        .create_volume()
        .availability_zone("us-east-1a")
        .size(1)
        .tag_specifications(tags(ResourceType::Volume, "other"))
        .send()
        .await
        .unwrap()
        .volume_id
        .unwrap();
    let untagged = ec2.create_volume().availability_zone("us-east-1a").size(1).send().await.unwrap().volume_id.unwrap();
    // The load balancers of LoadBalancer Services: a Classic one (the controller's default),
    // an NLB with its target group, and another cluster's Classic one.
    let owned = |cluster: &str| {
        aws_sdk_elasticloadbalancing::types::Tag::builder()
            .key(format!("kubernetes.io/cluster/{cluster}"))
            .value("owned")
            .build()
            .unwrap()
    };
    let listener = aws_sdk_elasticloadbalancing::types::Listener::builder()
        .protocol("TCP")
        .load_balancer_port(443)
        .instance_port(30443)
        .build()
        .unwrap();
    for (name, cluster) in [("a1b2c3demo", "demo"), ("d4e5f6other", "other")] {
        clients
            .elb
            .create_load_balancer()
            .load_balancer_name(name)
            .listeners(listener.clone())
            .subnets(&subnet)
            .tags(owned(cluster))
            .send()
            .await
            .unwrap();
    }
    let tag_v2 =
        aws_sdk_elasticloadbalancingv2::types::Tag::builder().key("kubernetes.io/cluster/demo").value("owned").build();
    clients
        .elbv2
        .create_load_balancer()
        .name("k8s-hcp-hsmserv-0123456789")
        .r#type(aws_sdk_elasticloadbalancingv2::types::LoadBalancerTypeEnum::Network)
        .subnets(&subnet)
        .tags(tag_v2.clone())
        .send()
        .await
        .unwrap();
    clients
        .elbv2
        .create_target_group()
        .name("k8s-hcp-hsmserv-tg")
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Tcp)
        .port(30443)
        .vpc_id(&vpc)
        .tags(tag_v2)
        .send()
        .await
        .unwrap();

    let found = tagged(&clients, "demo").await.unwrap();
    let kinds: Vec<&str> = found.iter().map(|l| l.kind).collect();
    assert_eq!(
        kinds,
        vec![
            "load-balancer",
            "load-balancer-v2",
            "network-interface",
            "security-group",
            "target-group",
            "volume",
            "volume"
        ]
    );
    assert_eq!(sweep(&clients, "demo", std::time::Duration::from_millis(100)).await.unwrap(), vec![]);
    assert_eq!(tagged(&clients, "demo").await.unwrap(), vec![], "nothing tagged for the cluster remains");
    let classic = clients.elb.describe_load_balancers().send().await.unwrap();
    let names: Vec<&str> = classic.load_balancer_descriptions().iter().filter_map(|d| d.load_balancer_name()).collect();
    assert_eq!(names, ["d4e5f6other"], "another cluster's balancer stays");
    let volumes = ec2.describe_volumes().send().await.unwrap();
    let left: Vec<&str> = volumes.volumes().iter().filter_map(|v| v.volume_id()).collect();
    assert!(left.contains(&other.as_str()) && left.contains(&untagged.as_str()), "{left:?}");
}
