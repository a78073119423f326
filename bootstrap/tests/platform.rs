//! The platform plan (pod network, cloud controllers and CSI drivers, storage classes) per
//! provider example: golden YAML (`tests/golden/<provider>/platform.yaml`, refreshed with
//! `UPDATE_GOLDEN=1`), every object valid for Kubernetes 1.33 (`kubernetes-validate
//! --strict`), cloud credentials only inside Secrets and never in the printed plan, and the
//! configuration (pod CIDR, GlusterFS addresses, cluster name) reaching the objects.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bootstrap::platform::{self, Facts, Step};
use service_manager::objects::KubeObject;

const PROVIDERS: [&str; 4] = ["openstack", "aws", "vsphere", "local"];

fn example(provider: &str) -> bootstrap::config::Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(format!("{provider}.properties"));
    bootstrap::load(&path, &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"))
}

fn facts() -> Facts {
    Facts { gluster_addresses: vec!["10.0.0.21".into(), "10.0.0.22".into()], openstack_ca_certificate: None }
}

fn objects(steps: &[Step]) -> impl Iterator<Item = &KubeObject> {
    steps.iter().flat_map(|s| s.objects.iter())
}

#[test]
fn platform_plans_match_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatched = Vec::new();
    for provider in PROVIDERS {
        let yaml = platform::yaml(&platform::plan(&example(provider), &facts()));
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(provider).join("platform.yaml");
        if update {
            std::fs::write(&path, &yaml).unwrap();
        } else if std::fs::read_to_string(&path).unwrap_or_default() != yaml {
            mismatched.push(path.display().to_string());
        }
    }
    assert!(mismatched.is_empty(), "platform plans differ (review, then UPDATE_GOLDEN=1):\n{}", mismatched.join("\n"));
}

#[test]
fn every_platform_object_passes_kubernetes_validate_strict() {
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = Vec::new();
    for provider in PROVIDERS {
        for (i, object) in objects(&platform::plan(&example(provider), &facts())).enumerate() {
            // As applied: real Secret data, not the redacted printout.
            let path = dir.path().join(format!("{provider}-{i:03}.json"));
            std::fs::write(&path, serde_json::to_vec(object).unwrap()).unwrap();
            files.push(path);
        }
    }
    let passed =
        stratus_tests::validate::strict(&files).unwrap_or_else(|e| panic!("kubernetes-validate complained:\n{e}"));
    assert_eq!(passed, files.len());
}

#[test]
fn cloud_credentials_live_only_in_secrets_and_are_redacted_when_printed() {
    for provider in ["openstack", "vsphere"] {
        let steps = platform::plan(&example(provider), &facts());
        let in_secrets = objects(&steps).any(|o| match o {
            KubeObject::Secret(s) => {
                s.data.iter().flatten().any(|(_, v)| String::from_utf8_lossy(&v.0).contains("example-password"))
            }
            _ => false,
        });
        assert!(in_secrets, "{provider}: the controllers get the cloud password through a Secret");
        for object in objects(&steps).filter(|o| !matches!(o, KubeObject::Secret(_))) {
            let json = serde_json::to_string(object).unwrap();
            assert!(!json.contains("example-password"), "{provider}: {} carries the password", object.describe());
        }
        let printed = platform::yaml(&steps);
        assert!(!printed.contains("example-password"), "{provider}: the printed plan shows the password");
        assert!(printed.contains("<redacted>"));
    }
}

#[test]
fn an_aws_cluster_without_keys_uses_the_instance_role() {
    let steps = platform::plan(&example("aws"), &facts());
    assert!(!objects(&steps).any(|o| matches!(o, KubeObject::Secret(_))), "no keys in the example: no Secret");
    let ccm = objects(&steps)
        .find_map(|o| match o {
            KubeObject::DaemonSet(d) if d.metadata.name.as_deref() == Some("aws-cloud-controller-manager") => Some(d),
            _ => None,
        })
        .unwrap();
    let env = ccm.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0].env.clone().unwrap();
    assert_eq!(env.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["AWS_REGION"]);
}

#[test]
fn configuration_reaches_the_objects() {
    let mut config = example("local");
    config.pod_cidr = "10.32.0.0/12".parse().unwrap();
    let steps = platform::plan(&config, &facts());
    assert_eq!(steps.iter().map(|s| s.name).collect::<Vec<_>>(), ["network", "cloud", "storage"]);
    let yaml = platform::yaml(&steps);
    assert!(yaml.contains("\"Network\": \"10.32.0.0/12\""), "the pod CIDR is flannel's network");
    assert!(yaml.contains("server: 10.0.0.21"), "the shared class uses the first GlusterFS machine");

    config.gluster_node_count = 0;
    let without = platform::plan(&config, &Facts::default());
    let classes: Vec<String> = objects(&without)
        .filter_map(|o| match o {
            KubeObject::StorageClass(c) => c.metadata.name.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(classes, ["block"], "no GlusterFS machines, no shared class");
}

/// The `[Global]` section of the OpenStack controllers' `cloud.conf`, as key/value lines.
fn openstack_global(config: &bootstrap::config::Config) -> Vec<(String, String)> {
    let steps = platform::plan(config, &facts());
    let conf = objects(&steps)
        .find_map(|o| match o {
            KubeObject::Secret(s) => {
                s.data.as_ref()?.get("cloud.conf").map(|v| String::from_utf8_lossy(&v.0).into_owned())
            }
            _ => None,
        })
        .expect("a Secret holds cloud.conf");
    conf.lines()
        .skip_while(|l| *l != "[Global]")
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

#[test]
fn the_openstack_cloud_conf_uses_the_keys_the_controllers_parse() {
    // The [Global] keys of cloud-provider-openstack's gcfg parser (an unknown key is fatal).
    const KNOWN: [&str; 12] = [
        "auth-url",
        "username",
        "password",
        "user-domain-name",
        "user-domain-id",
        "tenant-domain-name",
        "tenant-domain-id",
        "tenant-name",
        "tenant-id",
        "region",
        "ca-file",
        "domain-name",
    ];
    let by_name = openstack_global(&example("openstack"));
    for (key, _) in &by_name {
        assert!(KNOWN.contains(&key.as_str()), "cloud.conf has [Global] key {key}, which the controllers reject");
    }
    let value = |pairs: &[(String, String)], key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    assert_eq!(value(&by_name, "tenant-name").as_deref(), Some("\"stratus\""));
    assert_eq!(value(&by_name, "user-domain-name").as_deref(), Some("\"default\""));
    assert_eq!(value(&by_name, "tenant-domain-name").as_deref(), Some("\"default\""));

    let mut config = example("openstack");
    let bootstrap::config::Provider::OpenStack(os) = &mut config.provider else { panic!("an OpenStack example") };
    os.project = bootstrap::config::IdOrName::Id("8d3f0a9c".into());
    os.domain = bootstrap::config::IdOrName::Id("2b6e6c1e".into());
    let by_id = openstack_global(&config);
    assert_eq!(value(&by_id, "tenant-id").as_deref(), Some("\"8d3f0a9c\""));
    assert_eq!(value(&by_id, "user-domain-id").as_deref(), Some("\"2b6e6c1e\""));
    assert_eq!(value(&by_id, "tenant-domain-id").as_deref(), Some("\"2b6e6c1e\""));
    assert!(value(&by_id, "tenant-name").is_none() && value(&by_id, "user-domain-name").is_none());
}

#[test]
fn the_vsphere_csi_driver_finds_its_feature_states_config_map() {
    let steps = platform::plan(&example("vsphere"), &facts());
    let printed = platform::yaml(&steps);
    let arg = |name: &str| {
        printed
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("- --{name}=")).map(str::to_string))
            .unwrap_or_else(|| panic!("no --{name} in the vSphere plan"))
    };
    let (name, namespace) = (arg("fss-name"), arg("fss-namespace"));
    let found = objects(&steps).any(|o| match o {
        KubeObject::ConfigMap(c) => {
            c.metadata.name.as_deref() == Some(&name) && c.metadata.namespace.as_deref() == Some(&namespace)
        }
        _ => false,
    });
    assert!(found, "the driver reads ConfigMap {namespace}/{name}, which the plan does not create");
}
