//! The cloud integration step per provider: the cloud controller manager and the CSI
//! driver with the cloud's credentials (OpenStack, AWS, vSphere).

use super::*;

pub(super) fn openstack(config: &Config, os: &OpenStack, facts: &Facts) -> Vec<KubeObject> {
    // Keys as the cloud controller's gcfg parser names them (`tenant-…` for the project).
    let (domain_kind, project_kind) =
        (if os.domain.id().is_some() { "id" } else { "name" }, if os.project.id().is_some() { "id" } else { "name" });
    let domain = ini_quote(os.domain.value());
    let mut cloud_conf = format!(
        "[Global]\nauth-url={}\nusername={}\npassword={}\nuser-domain-{domain_kind}={domain}\ntenant-domain-{domain_kind}={domain}\ntenant-{project_kind}={}\nregion={}\n",
        ini_quote(&os.auth_url),
        ini_quote(&os.username),
        ini_quote(os.password.expose()),
        ini_quote(os.project.value()),
        ini_quote(&os.region),
    );
    let mut data = BTreeMap::new();
    if let Some(ca) = &facts.openstack_ca_certificate {
        cloud_conf.push_str("ca-file=\"/etc/config/ca.pem\"\n");
        data.insert("ca.pem".to_string(), ca.clone());
    }
    cloud_conf.push_str(&format!(
        "\n[LoadBalancer]\nsubnet-id={}\nnetwork-id={}\ncreate-monitor=true\n\n[BlockStorage]\nignore-volume-az=false\n",
        ini_quote(&os.subnet_id),
        ini_quote(&os.network_id),
    ));
    data.insert("cloud.conf".to_string(), cloud_conf);
    let mut objects = vec![secret(KUBE_SYSTEM, "cloud-config", "openstack-cloud-controller-manager", data)];
    objects.extend(cloud_controller(
        "openstack-cloud-controller-manager",
        images::OPENSTACK_CCM,
        strings(&[
            "/bin/openstack-cloud-controller-manager",
            "--cloud-config=/etc/config/cloud.conf",
            "--cloud-provider=openstack",
            "--use-service-account-credentials=false",
            "--bind-address=127.0.0.1",
        ]),
        vec![env("CLUSTER_NAME", &config.cluster_name)],
        Some(("cloud-config", "/etc/config")),
    ));
    objects.extend(csi(&Csi {
        driver: "cinder.csi.openstack.org",
        short: "cinder-csi",
        image: images::CINDER_CSI,
        controller_args: vec![
            "/bin/cinder-csi-plugin".into(),
            "--endpoint=$(CSI_ENDPOINT)".into(),
            "--cloud-config=/etc/config/cloud.conf".into(),
            format!("--cluster={}", config.cluster_name),
        ],
        node_args: strings(&[
            "/bin/cinder-csi-plugin",
            "--endpoint=$(CSI_ENDPOINT)",
            "--cloud-config=/etc/config/cloud.conf",
        ]),
        env: Vec::new(),
        config: Some(("cloud-config", "/etc/config")),
    }));
    objects
}

pub(super) fn aws(config: &Config, aws: &Aws) -> Vec<KubeObject> {
    // Without keys in the properties file the instances' IAM role is used.
    let mut credentials = vec![env("AWS_REGION", &aws.region)];
    let mut objects = Vec::new();
    if let (Some(id), Some(key)) = (&aws.access_key, &aws.secret_key) {
        objects.push(secret(
            KUBE_SYSTEM,
            "aws-secret",
            "aws-cloud-controller-manager",
            BTreeMap::from([("key_id".to_string(), id.clone()), ("access_key".to_string(), key.expose().to_string())]),
        ));
        credentials.push(env_from_secret("AWS_ACCESS_KEY_ID", "aws-secret", "key_id"));
        credentials.push(env_from_secret("AWS_SECRET_ACCESS_KEY", "aws-secret", "access_key"));
    }
    objects.extend(cloud_controller(
        "aws-cloud-controller-manager",
        images::AWS_CCM,
        vec![
            "--cloud-provider=aws".into(),
            "--v=2".into(),
            format!("--cluster-name={}", config.cluster_name),
            "--configure-cloud-routes=false".into(),
        ],
        credentials.clone(),
        None,
    ));
    objects.extend(csi(&Csi {
        driver: "ebs.csi.aws.com",
        short: "ebs-csi",
        image: images::EBS_CSI,
        controller_args: vec![
            "controller".into(),
            "--endpoint=$(CSI_ENDPOINT)".into(),
            format!("--extra-tags=kubernetes.io/cluster/{}=owned", config.cluster_name),
            format!("--k8s-tag-cluster-id={}", config.cluster_name),
        ],
        node_args: strings(&["node", "--endpoint=$(CSI_ENDPOINT)"]),
        env: credentials,
        config: None,
    }));
    objects
}

pub(super) fn vsphere(config: &Config, vs: &VSphere) -> Vec<KubeObject> {
    let datacenters = vs.datacenters.join(",");
    let cpi_conf = serde_norway::to_string(&serde_json::json!({
        "global": {"port": 443, "insecureFlag": vs.insecure, "secretName": "vsphere-cloud-secret", "secretNamespace": KUBE_SYSTEM},
        "vcenter": {vs.server.clone(): {"server": vs.server, "datacenters": vs.datacenters}},
    }))
    .expect("YAML serialises");
    let csi_conf = format!(
        "[Global]\ncluster-id={}\n\n[VirtualCenter {}]\ninsecure-flag={}\nuser={}\npassword={}\nport=\"443\"\ndatacenters={}\n",
        ini_quote(&config.cluster_name),
        ini_quote(&vs.server),
        ini_quote(if vs.insecure { "true" } else { "false" }),
        ini_quote(&vs.username),
        ini_quote(vs.password.expose()),
        ini_quote(&datacenters),
    );
    let mut objects = vec![
        secret(
            KUBE_SYSTEM,
            "vsphere-cloud-secret",
            "vsphere-cloud-controller-manager",
            BTreeMap::from([
                (format!("{}.username", vs.server), vs.username.clone()),
                (format!("{}.password", vs.server), vs.password.expose().to_string()),
            ]),
        ),
        config_map(
            KUBE_SYSTEM,
            "vsphere-cloud-config",
            "vsphere-cloud-controller-manager",
            BTreeMap::from([("vsphere.conf".to_string(), cpi_conf)]),
        ),
        secret(
            KUBE_SYSTEM,
            "vsphere-config-secret",
            "vsphere-csi",
            BTreeMap::from([("csi-vsphere.conf".to_string(), csi_conf)]),
        ),
        // The driver reads its feature switches from this ConfigMap (`--fss-name`) and will
        // not start without it.
        config_map(
            KUBE_SYSTEM,
            "internal-feature-states.csi.vsphere.vmware.com",
            "vsphere-csi",
            [
                ("csi-migration", "true"),
                ("online-volume-extend", "true"),
                ("improved-csi-idempotency", "true"),
                ("block-volume-snapshot", "true"),
                ("max-pvscsi-targets-per-vm", "true"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ),
    ];
    let mut controller = cloud_controller(
        "vsphere-cloud-controller-manager",
        images::VSPHERE_CPI,
        strings(&["--cloud-provider=vsphere", "--v=2", "--cloud-config=/etc/cloud/vsphere.conf"]),
        Vec::new(),
        None,
    );
    // The CPI reads a ConfigMap (its credentials come from the Secret named inside it).
    if let Some(KubeObject::DaemonSet(set)) = controller.last_mut() {
        if let Some(pod) = set.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
            pod.volumes = Some(vec![config_map_volume("cloud-config", "vsphere-cloud-config")]);
            pod.containers[0].volume_mounts =
                Some(vec![VolumeMount { read_only: Some(true), ..mount("cloud-config", "/etc/cloud") }]);
        }
    }
    objects.extend(controller);
    objects.extend(csi(&Csi {
        driver: "csi.vsphere.vmware.com",
        short: "vsphere-csi",
        image: images::VSPHERE_CSI,
        controller_args: strings(&[
            "--fss-name=internal-feature-states.csi.vsphere.vmware.com",
            "--fss-namespace=kube-system",
        ]),
        node_args: strings(&[
            "--fss-name=internal-feature-states.csi.vsphere.vmware.com",
            "--fss-namespace=kube-system",
        ]),
        env: vec![
            env("VSPHERE_CSI_CONFIG", "/etc/cloud/csi-vsphere.conf"),
            env("X_CSI_MODE", "controller"),
            env_from_field("NODE_NAME", "spec.nodeName"),
        ],
        config: Some(("vsphere-config-secret", "/etc/cloud")),
    }));
    // On nodes the same plugin runs in node mode.
    if let Some(KubeObject::DaemonSet(set)) = objects.last_mut() {
        if let Some(plugin) = set
            .spec
            .as_mut()
            .and_then(|s| s.template.spec.as_mut())
            .and_then(|p| p.containers.iter_mut().find(|c| c.name == "plugin"))
        {
            for var in plugin.env.iter_mut().flatten() {
                if var.name == "X_CSI_MODE" {
                    var.value = Some("node".into());
                }
            }
        }
    }
    objects
}
