//! The pod network: flannel (as the seed's Stackato 4 cluster used), its RBAC, its
//! configuration and its DaemonSet.

use super::*;

pub(super) fn flannel(config: &Config) -> Vec<KubeObject> {
    const NS: &str = "kube-flannel";
    const APP: &str = "flannel";
    let net_conf = serde_json::json!({
        "Network": config.pod_cidr.to_string(),
        "EnableNFTables": false,
        "Backend": {"Type": "vxlan"},
    });
    let cni_conf = serde_json::json!({
        "name": "cbr0", "cniVersion": "1.0.0",
        "plugins": [
            {"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    });
    let mut objects = vec![namespace(NS, true)];
    objects.extend(identity(
        NS,
        APP,
        APP,
        vec![
            rule(&[""], &["pods"], &["get"]),
            rule(&[""], &["nodes"], &["get", "list", "watch"]),
            rule(&[""], &["nodes/status"], &["patch"]),
        ],
    ));
    objects.push(config_map(
        NS,
        "kube-flannel-cfg",
        APP,
        BTreeMap::from([
            ("cni-conf.json".to_string(), serde_json::to_string_pretty(&cni_conf).expect("JSON serialises")),
            ("net-conf.json".to_string(), serde_json::to_string_pretty(&net_conf).expect("JSON serialises")),
        ]),
    ));
    let install_plugin = Container {
        command: Some(strings(&["cp"])),
        volume_mounts: Some(vec![mount("cni-plugin", "/opt/cni/bin")]),
        ..container("install-cni-plugin", images::FLANNEL_CNI, strings(&["-f", "/flannel", "/opt/cni/bin/flannel"]))
    };
    let install_config = Container {
        command: Some(strings(&["cp"])),
        volume_mounts: Some(vec![mount("cni", "/etc/cni/net.d"), mount("flannel-cfg", "/etc/kube-flannel/")]),
        ..container(
            "install-cni",
            images::FLANNEL,
            strings(&["-f", "/etc/kube-flannel/cni-conf.json", "/etc/cni/net.d/10-flannel.conflist"]),
        )
    };
    let flanneld = Container {
        command: Some(strings(&["/opt/bin/flanneld"])),
        env: Some(vec![
            env_from_field("POD_NAME", "metadata.name"),
            env_from_field("POD_NAMESPACE", "metadata.namespace"),
            env("EVENT_QUEUE_DEPTH", "5000"),
        ]),
        security_context: Some(SecurityContext {
            privileged: Some(false),
            capabilities: Some(k8s_openapi::api::core::v1::Capabilities {
                add: Some(strings(&["NET_ADMIN", "NET_RAW"])),
                ..Default::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            mount("run", "/run/flannel"),
            mount("flannel-cfg", "/etc/kube-flannel/"),
            mount("xtables-lock", "/run/xtables.lock"),
        ]),
        ..container("kube-flannel", images::FLANNEL, strings(&["--ip-masq", "--kube-subnet-mgr"]))
    };
    objects.push(daemon_set(
        NS,
        "kube-flannel-ds",
        APP,
        PodSpec {
            host_network: Some(true),
            priority_class_name: Some("system-node-critical".into()),
            service_account_name: Some(APP.into()),
            tolerations: tolerate_everything(),
            init_containers: Some(vec![install_plugin, install_config]),
            containers: vec![flanneld],
            volumes: Some(vec![
                host_path("run", "/run/flannel", "DirectoryOrCreate"),
                host_path("cni-plugin", "/opt/cni/bin", "DirectoryOrCreate"),
                host_path("cni", "/etc/cni/net.d", "DirectoryOrCreate"),
                config_map_volume("flannel-cfg", "kube-flannel-cfg"),
                host_path("xtables-lock", "/run/xtables.lock", "FileOrCreate"),
            ]),
            ..PodSpec::default()
        },
    ));
    objects
}
