//! `bootstrap preflight` and `provision` on AWS against `moto_server`: a ready account
//! passes, a wrong one gets every problem listed and nothing is created.

mod cloud_helper;

use std::path::Path;
use std::process::Command;

use stratus_tests::moto::MotoServer;

fn bootstrap(args: &[&str], moto: &MotoServer, dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", moto.url())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .unwrap()
}

#[test]
fn preflight_against_moto() {
    cloud_helper::path();
    let moto = MotoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    std::fs::copy(examples.join("example-key"), dir.path().join("example-key")).unwrap();

    // An account with none of the example's resources: every problem listed, nothing created.
    std::fs::copy(examples.join("aws.properties"), dir.path().join("wrong.properties")).unwrap();
    let wrong = bootstrap(&["provision", "-i", "wrong.properties", "--state-dir", "state"], &moto, dir.path());
    assert_eq!(wrong.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("error: preflight found 9 problems in the AWS account; nothing was created:"), "{stderr}");
    assert!(stderr.contains("AWS.VPCID: VPC vpc-0a1b2c3d does not exist"), "{stderr}");
    assert!(stderr.contains("AWS.Keypair: key pair stratus-key does not exist"), "{stderr}");
    assert!(!dir.path().join("state").exists(), "no state directory, no Terraform run");

    // Make the account ready, through the same API.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (vpc, subnets, ami) = runtime.block_on(async {
        let connection = bootstrap_aws::Connection {
            region: "us-east-1".into(),
            endpoint: Some(moto.url().to_string()),
            credentials: Some(("testing".into(), "testing".into())),
        };
        let ec2 = bootstrap_aws::client(&connection).await.ec2;
        let vpc = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap().vpc.unwrap().vpc_id.unwrap();
        let mut subnets = Vec::new();
        for (i, zone) in ["us-east-1a", "us-east-1b", "us-east-1c"].iter().enumerate() {
            let id = ec2
                .create_subnet()
                .vpc_id(&vpc)
                .cidr_block(format!("10.0.{i}.0/24"))
                .availability_zone(*zone)
                .send()
                .await
                .unwrap();
            subnets.push(format!("{}:{zone}", id.subnet.unwrap().subnet_id.unwrap()));
        }
        ec2.create_key_pair().key_name("stratus-key").send().await.unwrap();
        let ami =
            ec2.describe_images().owners("amazon").send().await.unwrap().images()[0].image_id().unwrap().to_string();
        (vpc, subnets.join(", "), ami)
    });
    let text = std::fs::read_to_string(examples.join("aws.properties"))
        .unwrap()
        .replace("vpc-0a1b2c3d", &vpc)
        .replace("ami-0abcdef1234567890", &ami)
        .lines()
        .map(|l| {
            if l.starts_with("AWS.PublicSubnetIDsAndAZ") || l.starts_with("AWS.PrivateSubnetIDsAndAZ") {
                format!("{} = {subnets}\n", l.split(" =").next().unwrap())
            } else {
                format!("{l}\n")
            }
        })
        .collect::<String>();
    std::fs::write(dir.path().join("ready.properties"), text).unwrap();
    let ready = bootstrap(&["preflight", "-i", "ready.properties"], &moto, dir.path());
    assert!(ready.status.success(), "{}", String::from_utf8_lossy(&ready.stderr));
    assert!(
        String::from_utf8_lossy(&ready.stderr).contains("preflight: the AWS account has everything the cluster needs")
    );
}
