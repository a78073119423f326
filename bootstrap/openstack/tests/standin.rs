//! Preflight and the teardown sweep against OpenStack: a real Keystone (PyPI `keystone`) whose
//! catalog points at the in-repo fakes of Nova, Glance, Neutron, Cinder and Octavia
//! (`tests/openstack/standin.py`). What Kubernetes would have created is created through the
//! same REST APIs its cloud controller and CSI driver use.

use bootstrap_openstack::{
    connect, leftovers, preflight, sweep, Connection, FlavorUse, IdOrName, Requirements, ServiceAt,
};
use openstack::session::Session;
use serde_json::json;
use stratus_tests::openstack::OpenStack;

const NETWORK: ServiceAt = ServiceAt("network", 2);
const VOLUME: ServiceAt = ServiceAt("block-storage", 3);
const OCTAVIA: ServiceAt = ServiceAt("load-balancer", 2);
const EXTERNAL_NETWORK: &str = "0f5ad1b2-6c3e-4a8f-9d27-5b1f0e6c7a11";

fn connection(cloud: &OpenStack) -> Connection {
    Connection {
        auth_url: cloud.auth_url.clone(),
        username: cloud.username.clone(),
        password: cloud.password.clone(),
        domain: IdOrName::Name("Default".into()),
        project: IdOrName::Name(cloud.project.clone()),
        region: "RegionOne".into(),
        ca_certificate: None,
    }
}

/// What `bootstrap/examples/openstack.properties` asks for (1 master, 3 nodes, 2 GlusterFS).
fn example_needs() -> Requirements {
    Requirements {
        image: "a61d07fb-4d95-4d7b-b87d-e77bfd37395e".into(),
        flavors: vec![
            FlavorUse { key: "OpenStack.MasterFlavorID".into(), flavor: "3".into(), count: 1 },
            FlavorUse { key: "OpenStack.NodeFlavorID".into(), flavor: "5".into(), count: 3 },
            FlavorUse { key: "OpenStack.GlusterFSFlavorID".into(), flavor: "3".into(), count: 2 },
        ],
        network: "a94493c3-2b5d-47a8-9f1c-1ba51b702ee9".into(),
        subnet: "76b97588-bf91-46c0-bc0b-0f491404dfc8".into(),
        keypair: "stratus-key".into(),
        floating_ip_pool: "ext-net".into(),
    }
}

async fn session(cloud: &OpenStack) -> Session {
    let scope = openstack::auth::Scope::Project {
        project: openstack::IdOrName::from_name(&cloud.project),
        domain: Some(openstack::IdOrName::from_name("Default")),
    };
    let auth = openstack::auth::Password::new(&cloud.auth_url, &cloud.username, &cloud.password, "Default")
        .unwrap()
        .with_scope(scope);
    Session::new(auth).await.unwrap()
}

async fn post(session: &Session, service: ServiceAt, path: &[&str], body: serde_json::Value) -> serde_json::Value {
    let response = session.post(service, path).json(&body).send().await.unwrap();
    response.json().await.unwrap()
}

/// What the cloud controller and the Cinder CSI driver of cluster `cluster` leave behind.
async fn kubernetes_made(session: &Session, cloud: &OpenStack, cluster: &str) {
    let lb = post(
        session,
        OCTAVIA,
        &["lbaas", "loadbalancers"],
        json!({"loadbalancer": {"name": format!("kube_service_{cluster}_hcp_hsm-server"),
            "vip_subnet_id": "76b97588-bf91-46c0-bc0b-0f491404dfc8"}}),
    )
    .await;
    // A balancer with a listener can only go with everything under it (cascade).
    let id = lb["loadbalancer"]["id"].as_str().unwrap();
    let status = std::process::Command::new("curl")
        .args(["-sf", "-X", "POST", &format!("{}/_stand-in/loadbalancers/{id}/listener", cloud.services_url)])
        .status()
        .unwrap();
    assert!(status.success());
    post(
        session,
        NETWORK,
        &["floatingips"],
        json!({"floatingip": {"floating_network_id": EXTERNAL_NETWORK,
            "description": format!("Floating IP for Kubernetes external service hcp/hsm-server from cluster {cluster}")}}),
    )
    .await;
    post(
        session,
        VOLUME,
        &["volumes"],
        json!({"volume": {"size": 1, "name": format!("pvc-{cluster}"),
            "metadata": {"cinder.csi.openstack.org/cluster": cluster, "csi.storage.k8s.io/pvc/name": "data"}}}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_and_sweep_against_keystone_and_the_service_fakes() {
    let cloud = OpenStack::start();

    // Keystone refuses a wrong password; the error names the place and the user, not the secret.
    let wrong = Connection { password: "not-the-password".into(), ..connection(&cloud) };
    let error = connect(&wrong).await.err().expect("a wrong password is refused").to_string();
    assert!(error.contains(&cloud.auth_url) && error.contains("operator"), "{error}");
    assert!(!error.contains("not-the-password"), "{error}");

    // The domain and the project by ID: the user's domain ID goes through a token exchange
    // (the SDK names it only by name), a wrong one is refused.
    let by_id = Connection {
        domain: IdOrName::Id("default".into()),
        project: IdOrName::Id(cloud.project_id.clone()),
        ..connection(&cloud)
    };
    let client = connect(&by_id).await.unwrap();
    assert_eq!(preflight(&client, &example_needs()).await.unwrap(), Vec::<String>::new());
    let elsewhere = Connection { domain: IdOrName::Id("no-such-domain".into()), ..by_id.clone() };
    let error = connect(&elsewhere).await.err().expect("an unknown domain is refused").to_string();
    assert!(error.contains("Keystone answered 401"), "{error}");
    assert!(!error.contains(&cloud.password), "{error}");

    let client = connect(&connection(&cloud)).await.unwrap();
    assert_eq!(preflight(&client, &example_needs()).await.unwrap(), Vec::<String>::new());

    let wrong_account = Requirements {
        image: "0b2b4a56-0000-4000-8000-00000000dead".into(),
        flavors: vec![
            FlavorUse { key: "OpenStack.MasterFlavorID".into(), flavor: "42".into(), count: 1 },
            FlavorUse { key: "OpenStack.NodeFlavorID".into(), flavor: "5".into(), count: 6 },
        ],
        network: EXTERNAL_NETWORK.into(),
        keypair: "someone-elses-key".into(),
        floating_ip_pool: "stratus-net".into(),
        ..example_needs()
    };
    assert_eq!(
        preflight(&client, &wrong_account).await.unwrap(),
        [
            "OpenStack.LinuxImageID: no image 0b2b4a56-0000-4000-8000-00000000dead in the project",
            "OpenStack.MasterFlavorID: no flavor 42 in the project",
            "OpenStack.SubnetID: subnet 76b97588-bf91-46c0-bc0b-0f491404dfc8 belongs to network a94493c3-2b5d-47a8-9f1c-1ba51b702ee9, not to OpenStack.NetworkID 0f5ad1b2-6c3e-4a8f-9d27-5b1f0e6c7a11",
            "OpenStack.Keypair: no key pair someone-elses-key for this user",
            "OpenStack.FloatingIPPoolName: network stratus-net is not external: floating IPs cannot come from it",
            "quota: the cluster needs 48 vCPUs, the project has 40 left",
        ]
    );

    // The sweep removes what Kubernetes made for this cluster, and nothing of another one.
    let raw = session(&cloud).await;
    kubernetes_made(&raw, &cloud, "demo").await;
    kubernetes_made(&raw, &cloud, "other").await;
    let found = leftovers(&client, "demo").await.unwrap();
    let kinds: Vec<&str> = found.iter().map(|l| l.kind).collect();
    assert_eq!(kinds, ["load balancer", "floating IP", "volume"]);
    assert_eq!(sweep(&client, "demo").await.unwrap(), Vec::new());
    assert_eq!(leftovers(&client, "demo").await.unwrap(), Vec::new());
    assert_eq!(leftovers(&client, "other").await.unwrap().len(), 3, "another cluster's resources stay");
}
