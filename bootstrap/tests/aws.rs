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
    // Make the account ready, through EC2's query API (moto takes unsigned requests).
    let vpc = first(&ec2(&moto, &[("Action", "CreateVpc"), ("CidrBlock", "10.0.0.0/16")]), "vpcId");
    let mut subnets = Vec::new();
    for (i, zone) in ["us-east-1a", "us-east-1b", "us-east-1c"].iter().enumerate() {
        let cidr = format!("10.0.{i}.0/24");
        let params = [("Action", "CreateSubnet"), ("VpcId", &vpc), ("CidrBlock", &cidr), ("AvailabilityZone", zone)];
        subnets.push(format!("{}:{zone}", first(&ec2(&moto, &params), "subnetId")));
    }
    let subnets = subnets.join(", ");
    ec2(&moto, &[("Action", "CreateKeyPair"), ("KeyName", "stratus-key")]);
    let ami = first(&ec2(&moto, &[("Action", "DescribeImages"), ("Owner.1", "amazon")]), "imageId");
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

/// One EC2 query-API call to moto (with `curl`), returning the XML answer.
fn ec2(moto: &MotoServer, params: &[(&str, &str)]) -> String {
    let mut command = Command::new("curl");
    command.args(["-sS", "--fail", "-X", "POST", "-H"]);
    command.arg("Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0");
    for (key, value) in params.iter().chain(&[("Version", "2016-11-15")]) {
        command.arg("--data-urlencode").arg(format!("{key}={value}"));
    }
    let output = command.arg(moto.url()).output().expect("curl runs");
    assert!(output.status.success(), "{params:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// The text of the first `<tag>` in `xml`.
fn first(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml.find(&open).unwrap_or_else(|| panic!("no <{tag}> in {xml}")) + open.len();
    xml[start..].split('<').next().unwrap().to_string()
}
