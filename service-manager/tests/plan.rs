//! The planner's behaviour on a purpose-built SDL: which workload kind, replicas, resources,
//! capabilities, probes, placement, volumes, Services, jobs, network policy and ordering.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PodSpec, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rand::rngs::StdRng;
use rand::SeedableRng;
use sdl::idl::{IdlParameter, Scaling};
use sdl::parse::{parse_document, Syntax};
use sdl::resolve::{resolve, ResolveContext, Stored};
use sdl::validate::validate_sdl;
use sdl::{Idl, Sdl};
use service_manager::output::{plan_json, plan_yaml};
use service_manager::plan::{plan, KubeObject, Phase, PlanInput};
use service_manager::{ClusterProfile, Plan};

const SDL: &str = r#"{
  "name": "shop", "vendor": "acme", "product_version": "2.1", "sdl_version": "1.0.0",
  "components": [
    {"name": "web", "repository": "docker.io", "organization": "acme", "image": "web", "tag": "2.1.0",
     "min_RAM_mb": 256, "max_RAM_mb": 512, "min_VCPU": 0.25, "max_VCPU": 1, "min_instances": 1, "max_instances": 5,
     "service_ports": [{"name": "http", "source_port": 80, "target_port": 8080, "public": true},
                       {"name": "metrics", "source_port": 9090, "target_port": 9090}],
     "volume_mounts": [{"volume_name": "uploads", "mountpoint": "/uploads"}],
     "parameters": ["GREETING", "db-password"], "depends_on": ["db", "cache"],
     "labels": ["tier=front"],
     "probes": {"readiness": {"http": {"path": "/ready", "port": "http"}, "period_seconds": 5},
                "liveness": {"tcp": {"port": 8080}}}},
    {"name": "db", "image": "docker.io/library/postgres:16.6", "min_RAM_mb": 512,
     "service_ports": [{"name": "postgres", "source_port": 5432, "target_port": 5432}],
     "volume_mounts": [{"volume_name": "data", "mountpoint": "/var/lib/postgresql/data"},
                       {"volume_name": "uploads", "mountpoint": "/uploads"}],
     "parameters": ["db-password"], "placement": {"anti_affinity": "required", "node_selector": {"disk": "ssd"}}},
    {"name": "cache", "image": "docker.io/library/redis:7.4.1", "min_RAM_mb": 64, "capabilities": ["NET_ADMIN"],
     "stable_identity": true, "platform": "linux-aarch64",
     "service_ports": [{"name": "redis", "source_port": 6379, "target_port": 6379}]},
    {"name": "worker", "image": "docker.io/acme/worker:2.1.0", "min_RAM_mb": 64, "capabilities": ["ALL"],
     "entrypoint": ["worker", "--queue", "default"], "placement": {"spread": "node"}}
  ],
  "preflight": [{"name": "check", "image": "docker.io/acme/check:1.0", "min_RAM_mb": 32, "retry_count": 4, "timeout": 120}],
  "postflight": [{"name": "migrate", "image": "docker.io/acme/web:2.1.0", "min_RAM_mb": 64, "parameters": ["db-password"],
                  "volume_mounts": [{"volume_name": "uploads", "mountpoint": "/uploads"}]}],
  "volumes": [{"name": "data", "size_gb": 20, "filesystem": "xfs"}, {"name": "uploads", "size_gb": 3, "shared": true}],
  "parameters": [
    {"name": "GREETING", "default": "hello"},
    {"name": "db-password", "secret": true, "generator": {"id": "db", "generate": {"type": "Password"}}}
  ]
}"#;

fn sdl() -> Sdl {
    let sdl: Sdl = parse_document(SDL, Syntax::Json, "shop").unwrap();
    assert_eq!(validate_sdl(&sdl), vec![]);
    sdl
}

fn plan_with(idl: Idl, profile: ClusterProfile) -> Plan {
    let sdl = sdl();
    let mut idl = idl;
    idl.instance_id.get_or_insert_with(|| "shop-1".into());
    let context =
        ResolveContext { instance_id: idl.instance_id.as_deref().unwrap(), cluster_domain: &profile.cluster_domain };
    let resolved = resolve(&sdl, &idl, &Stored::default(), &context, &mut StdRng::seed_from_u64(1)).unwrap();
    plan(PlanInput { service_id: "acme.acme.shop", sdl: &sdl, idl: &idl, resolved: &resolved, profile: &profile })
        .unwrap()
}

fn default_plan() -> Plan {
    plan_with(Idl::default(), ClusterProfile::default())
}

fn find<'a>(plan: &'a Plan, kind: &str, name: &str) -> &'a KubeObject {
    plan.objects().find(|o| o.kind().as_str() == kind && o.name() == name).unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn deployment<'a>(plan: &'a Plan, name: &str) -> &'a Deployment {
    match find(plan, "Deployment", name) {
        KubeObject::Deployment(d) => d,
        _ => unreachable!(),
    }
}

fn stateful_set<'a>(plan: &'a Plan, name: &str) -> &'a StatefulSet {
    match find(plan, "StatefulSet", name) {
        KubeObject::StatefulSet(s) => s,
        _ => unreachable!(),
    }
}

fn service<'a>(plan: &'a Plan, name: &str) -> &'a Service {
    match find(plan, "Service", name) {
        KubeObject::Service(s) => s,
        _ => unreachable!(),
    }
}

fn job<'a>(plan: &'a Plan, name: &str) -> &'a Job {
    match find(plan, "Job", name) {
        KubeObject::Job(j) => j,
        _ => unreachable!(),
    }
}

fn pod_of_deployment<'a>(plan: &'a Plan, name: &str) -> &'a PodSpec {
    deployment(plan, name).spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn pod_of_set<'a>(plan: &'a Plan, name: &str) -> &'a PodSpec {
    stateful_set(plan, name).spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

#[test]
fn objects_come_in_apply_order() {
    let plan = default_plan();
    let phases: Vec<Phase> = plan.steps.iter().map(|s| s.phase).collect();
    assert_eq!(
        phases,
        vec![
            Phase::Namespace,
            Phase::Configuration,
            Phase::StorageAndNetwork,
            Phase::Preflight,
            Phase::Workloads,
            Phase::Postflight
        ]
    );
    let summary: Vec<String> = plan.objects().map(|o| format!("{}/{}", o.kind(), o.name())).collect();
    assert_eq!(
        summary,
        vec![
            "Namespace/shop-1",
            "Secret/secret-parameters",
            "Secret/hsm-record",
            "ConfigMap/parameters",
            "NetworkPolicy/instance-isolation",
            "PersistentVolumeClaim/uploads",
            "Service/web-int",
            "Service/web",
            "Service/db-int",
            "Service/db-headless",
            "Service/cache-int",
            "Service/cache-headless",
            "Job/check",
            // Dependencies first: web depends on db and cache.
            "StatefulSet/db",
            "StatefulSet/cache",
            "Deployment/web",
            "Deployment/worker",
            "Job/migrate",
        ]
    );
    assert!(plan.objects().skip(1).all(|o| o.metadata().namespace.as_deref() == Some("shop-1")));
}

#[test]
fn per_instance_volumes_or_stable_identity_make_a_stateful_set() {
    let plan = default_plan();
    let db = stateful_set(&plan, "db").spec.as_ref().unwrap();
    assert_eq!(db.service_name.as_deref(), Some("db-headless"));
    let claims = db.volume_claim_templates.as_ref().unwrap();
    assert_eq!(claims.len(), 1, "only the non-shared volume gets a claim template");
    let claim = claims[0].spec.as_ref().unwrap();
    assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
    assert_eq!(claim.access_modes.as_deref(), Some(&["ReadWriteOnce".to_string()][..]));
    assert_eq!(claim.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0, "20Gi");
    assert_eq!(claims[0].metadata.annotations.as_ref().unwrap()["hsm.stratus.io/filesystem"], "xfs");
    let retention = db.persistent_volume_claim_retention_policy.as_ref().unwrap();
    assert_eq!(retention.when_deleted.as_deref(), Some("Retain"));

    let cache = stateful_set(&plan, "cache").spec.as_ref().unwrap();
    assert!(cache.volume_claim_templates.is_none());
    let env = pod_of_set(&plan, "cache").containers[0].env.as_ref().unwrap();
    let index = env.iter().find(|e| e.name == "HCP_COMPONENT_INDEX").expect("stateful pods know their index");
    assert_eq!(
        index.value_from.as_ref().unwrap().field_ref.as_ref().unwrap().field_path,
        "metadata.labels['apps.kubernetes.io/pod-index']"
    );
    let web_env = pod_of_deployment(&plan, "web").containers[0].env.as_ref().unwrap();
    assert!(web_env.iter().all(|e| e.name != "HCP_COMPONENT_INDEX"), "deployment replicas are interchangeable");
}

#[test]
fn shared_volumes_are_one_read_write_many_claim() {
    let profile = ClusterProfile {
        shared_storage_class: Some("glusterfs".into()),
        block_storage_class: Some("cinder".into()),
        ..ClusterProfile::default()
    };
    let plan = plan_with(Idl::default(), profile);
    let KubeObject::PersistentVolumeClaim(PersistentVolumeClaim { spec: Some(spec), .. }) =
        find(&plan, "PersistentVolumeClaim", "uploads")
    else {
        panic!()
    };
    assert_eq!(spec.access_modes.as_deref(), Some(&["ReadWriteMany".to_string()][..]));
    assert_eq!(spec.storage_class_name.as_deref(), Some("glusterfs"));
    let db = stateful_set(&plan, "db").spec.as_ref().unwrap();
    assert_eq!(
        db.volume_claim_templates.as_ref().unwrap()[0].spec.as_ref().unwrap().storage_class_name.as_deref(),
        Some("cinder")
    );
    for pod in [pod_of_deployment(&plan, "web"), pod_of_set(&plan, "db")] {
        let volume = pod.volumes.as_ref().unwrap().iter().find(|v| v.name == "uploads").unwrap();
        assert_eq!(volume.persistent_volume_claim.as_ref().unwrap().claim_name, "uploads");
    }
}

#[test]
fn replicas_come_from_scaling_and_spread_across_zones() {
    let plan = default_plan();
    assert_eq!(deployment(&plan, "web").spec.as_ref().unwrap().replicas, Some(1));
    assert!(pod_of_deployment(&plan, "web").topology_spread_constraints.is_none(), "one replica is not spread");

    let idl = Idl {
        scaling: vec![Scaling { component: "web".into(), min_instances: 3, max_instances: 5 }],
        ..Idl::default()
    };
    let plan = plan_with(idl, ClusterProfile { zones: vec!["az1".into(), "az2".into()], ..ClusterProfile::default() });
    assert_eq!(deployment(&plan, "web").spec.as_ref().unwrap().replicas, Some(3));
    let pod = pod_of_deployment(&plan, "web");
    let spread = &pod.topology_spread_constraints.as_ref().unwrap()[0];
    assert_eq!(spread.topology_key, "topology.kubernetes.io/zone");
    assert_eq!(spread.max_skew, 1);
    let zones = &pod.affinity.as_ref().unwrap().node_affinity.as_ref().unwrap();
    let requirement = &zones.required_during_scheduling_ignored_during_execution.as_ref().unwrap().node_selector_terms
        [0]
    .match_expressions
    .as_ref()
    .unwrap()[0];
    assert_eq!(requirement.values.as_deref(), Some(&["az1".to_string(), "az2".to_string()][..]));
}

#[test]
fn placement_is_honoured() {
    let plan = default_plan();
    let db = pod_of_set(&plan, "db");
    assert_eq!(db.node_selector.as_ref().unwrap()["disk"], "ssd");
    let anti = db.affinity.as_ref().unwrap().pod_anti_affinity.as_ref().unwrap();
    assert_eq!(
        anti.required_during_scheduling_ignored_during_execution.as_ref().unwrap()[0].topology_key,
        "kubernetes.io/hostname"
    );
    let worker = pod_of_deployment(&plan, "worker");
    assert_eq!(worker.topology_spread_constraints.as_ref().unwrap()[0].topology_key, "kubernetes.io/hostname");
    assert_eq!(pod_of_set(&plan, "cache").node_selector.as_ref().unwrap()["kubernetes.io/arch"], "arm64");
}

#[test]
fn resources_capabilities_and_probes() {
    let plan = default_plan();
    let web = &pod_of_deployment(&plan, "web").containers[0];
    let resources = web.resources.as_ref().unwrap();
    assert_eq!(resources.requests.as_ref().unwrap()["memory"].0, "256Mi");
    assert_eq!(resources.requests.as_ref().unwrap()["cpu"].0, "250m");
    assert_eq!(resources.limits.as_ref().unwrap()["memory"].0, "512Mi");
    assert_eq!(resources.limits.as_ref().unwrap()["cpu"].0, "1000m");
    let readiness = web.readiness_probe.as_ref().unwrap();
    assert_eq!(readiness.http_get.as_ref().unwrap().port, IntOrString::String("http".into()));
    assert_eq!(readiness.period_seconds, Some(5));
    assert_eq!(web.liveness_probe.as_ref().unwrap().tcp_socket.as_ref().unwrap().port, IntOrString::Int(8080));
    assert!(web.security_context.is_none());

    let worker = &pod_of_deployment(&plan, "worker").containers[0];
    assert_eq!(worker.security_context.as_ref().unwrap().privileged, Some(true), "ALL means privileged");
    assert_eq!(worker.command.as_deref(), Some(&["worker".to_string(), "--queue".into(), "default".into()][..]));
    let cache = &pod_of_set(&plan, "cache").containers[0];
    let caps = cache.security_context.as_ref().unwrap().capabilities.as_ref().unwrap();
    assert_eq!(caps.add.as_deref(), Some(&["NET_ADMIN".to_string()][..]));
    assert_eq!(cache.security_context.as_ref().unwrap().privileged, None);
}

#[test]
fn parameters_reach_containers_as_env_and_secret_files() {
    let idl = Idl {
        parameters: vec![IdlParameter { name: "db-password".into(), value: "s3cret-value".into() }],
        ..Idl::default()
    };
    let plan = plan_with(idl, ClusterProfile::default());
    let pod = pod_of_deployment(&plan, "web");
    let container = &pod.containers[0];
    let env = container.env.as_ref().unwrap();
    let value = |name: &str| env.iter().find(|e| e.name == name).and_then(|e| e.value.clone());
    assert_eq!(value("GREETING").as_deref(), Some("hello"));
    assert_eq!(value("HCP_INSTANCE_ID").as_deref(), Some("shop-1"));
    assert_eq!(value("HCP_COMPONENT_NAME").as_deref(), Some("web"));
    assert_eq!(value("HCP_SERVICE_DOMAIN_SUFFIX").as_deref(), Some("shop-1.svc.cluster.local"));
    assert!(env.iter().all(|e| e.value.as_deref() != Some("s3cret-value")), "secrets never become env values");

    let secret_volume =
        pod.volumes.as_ref().unwrap().iter().find(|v| v.secret.is_some()).unwrap().secret.as_ref().unwrap();
    assert_eq!(secret_volume.secret_name.as_deref(), Some("secret-parameters"));
    let items: Vec<&str> = secret_volume.items.as_ref().unwrap().iter().map(|i| i.path.as_str()).collect();
    assert_eq!(items, vec!["db-password"]);
    let mount = container.volume_mounts.as_ref().unwrap().iter().find(|m| m.name == "secret-parameters").unwrap();
    assert_eq!(mount.mount_path, "/etc/secrets");
    assert_eq!(mount.read_only, Some(true));

    let KubeObject::Secret(secret) = find(&plan, "Secret", "secret-parameters") else { panic!() };
    assert_eq!(secret.data.as_ref().unwrap()["db-password"].0, b"s3cret-value");
    // Components that receive no secret get no secret volume.
    assert!(pod_of_set(&plan, "cache").volumes.is_none());

    for printed in [plan_yaml(&plan), plan_json(&plan)] {
        assert!(!printed.contains("s3cret-value"), "secret values are redacted in printed plans");
        assert!(!printed.contains("czNjcmV0LXZhbHVl"), "not even base64-encoded");
        assert!(printed.contains("<redacted>"));
    }
}

#[test]
fn services_per_component() {
    let plan = default_plan();
    let web_public = service(&plan, "web").spec.as_ref().unwrap();
    assert_eq!(web_public.type_.as_deref(), Some("LoadBalancer"));
    let ports = web_public.ports.as_ref().unwrap();
    assert_eq!((ports.len(), ports[0].port, ports[0].target_port.clone()), (1, 80, Some(IntOrString::Int(8080))));
    let web_internal = service(&plan, "web-int").spec.as_ref().unwrap();
    assert_eq!(web_internal.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(web_internal.ports.as_ref().unwrap()[0].name.as_deref(), Some("metrics"));
    let selector = web_internal.selector.as_ref().unwrap();
    assert_eq!(selector["app.kubernetes.io/component"], "web");
    assert_eq!(selector["app.kubernetes.io/instance"], "shop-1");
    let headless = service(&plan, "db-headless").spec.as_ref().unwrap();
    assert_eq!(headless.cluster_ip.as_deref(), Some("None"));
    assert_eq!(headless.publish_not_ready_addresses, Some(true));
    assert!(plan.objects().all(|o| o.name() != "worker-int"), "no Service for a component without ports");
}

#[test]
fn jobs_carry_retries_and_deadlines() {
    let plan = default_plan();
    let check = job(&plan, "check").spec.as_ref().unwrap();
    assert_eq!(check.backoff_limit, Some(4));
    assert_eq!(check.active_deadline_seconds, Some(120));
    assert_eq!(check.template.spec.as_ref().unwrap().restart_policy.as_deref(), Some("Never"));
    let migrate = job(&plan, "migrate").spec.as_ref().unwrap();
    assert_eq!(migrate.backoff_limit, Some(0));
    assert_eq!(migrate.active_deadline_seconds, None);
}

#[test]
fn network_policy_isolates_the_instance_except_public_ports() {
    let plan = default_plan();
    let KubeObject::NetworkPolicy(policy) = find(&plan, "NetworkPolicy", "instance-isolation") else { panic!() };
    let spec = policy.spec.as_ref().unwrap();
    assert_eq!(spec.policy_types.as_deref(), Some(&["Ingress".to_string()][..]));
    let rules = spec.ingress.as_ref().unwrap();
    assert_eq!(rules.len(), 3);
    assert!(rules[0].from.as_ref().unwrap()[0].pod_selector.is_some());
    let trusted = rules[1].from.as_ref().unwrap()[0].namespace_selector.as_ref().unwrap();
    assert_eq!(trusted.match_labels.as_ref().unwrap()["hsm.stratus.io/trusted"], "true");
    assert!(rules[2].from.is_none(), "public ports are open to everyone");
    let ports = rules[2].ports.as_ref().unwrap();
    assert_eq!((ports.len(), ports[0].port.clone()), (1, Some(IntOrString::Int(8080))));
}

#[test]
fn labels_and_dependencies_are_recorded() {
    let plan = default_plan();
    let KubeObject::Namespace(ns) = &plan.steps[0].objects[0] else { panic!() };
    let labels = ns.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "hsm");
    assert_eq!(labels["hsm.stratus.io/service-id"], "acme.acme.shop");
    assert_eq!(labels["hsm.stratus.io/sdl-version"], "1.0.0");
    let web = deployment(&plan, "web");
    assert_eq!(web.metadata.annotations.as_ref().unwrap()["hsm.stratus.io/depends-on"], "db,cache");
    let pod_labels = web.spec.as_ref().unwrap().template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
    assert_eq!(pod_labels["tier"], "front");
}

#[test]
fn registry_override_replaces_every_registry() {
    let plan = plan_with(
        Idl::default(),
        ClusterProfile { registry: Some("mirror.local:5000".into()), ..ClusterProfile::default() },
    );
    assert_eq!(
        pod_of_deployment(&plan, "web").containers[0].image.as_deref(),
        Some("mirror.local:5000/acme/web:2.1.0")
    );
    assert_eq!(pod_of_set(&plan, "db").containers[0].image.as_deref(), Some("mirror.local:5000/library/postgres:16.6"));
    let plan = default_plan();
    assert_eq!(pod_of_deployment(&plan, "web").containers[0].image.as_deref(), Some("docker.io/acme/web:2.1.0"));
}

#[test]
fn same_input_same_bytes() {
    let a = plan_yaml(&default_plan());
    let b = plan_yaml(&default_plan());
    assert_eq!(a, b);
}

#[test]
fn namespaces_ask_for_privileged_pod_security_only_when_a_container_needs_it() {
    let namespace_level = |sdl_text: &str| {
        let sdl: Sdl = parse_document(sdl_text, Syntax::Json, "t").unwrap();
        let idl = Idl { instance_id: Some("t-1".into()), ..Idl::default() };
        let profile = ClusterProfile::default();
        let context = ResolveContext { instance_id: "t-1", cluster_domain: &profile.cluster_domain };
        let resolved = resolve(&sdl, &idl, &Stored::default(), &context, &mut StdRng::seed_from_u64(1)).unwrap();
        let plan =
            plan(PlanInput { service_id: "acme.acme.t", sdl: &sdl, idl: &idl, resolved: &resolved, profile: &profile })
                .unwrap();
        let namespace = plan.objects().next().unwrap().metadata().clone();
        namespace.labels.unwrap().get("pod-security.kubernetes.io/enforce").cloned()
    };
    let with = |capabilities: &str| {
        format!(
            r#"{{"name": "t", "vendor": "acme", "product_version": "1", "sdl_version": "1.0.0",
              "components": [{{"name": "a", "image": "docker.io/acme/a:1", "min_RAM_mb": 64, "capabilities": {capabilities}}}]}}"#
        )
    };
    // ALL, or a capability baseline does not allow, needs privileged; baseline's own do not.
    assert_eq!(namespace_level(SDL).as_deref(), Some("privileged"));
    assert_eq!(namespace_level(&with(r#"["ALL"]"#)).as_deref(), Some("privileged"));
    assert_eq!(namespace_level(&with(r#"["CAP_NET_ADMIN"]"#)).as_deref(), Some("privileged"));
    assert_eq!(namespace_level(&with(r#"["NET_BIND_SERVICE", "CAP_CHOWN"]"#)), None);
    assert_eq!(namespace_level(&with("[]")), None);
}

#[test]
fn a_service_account_with_namespaced_rules_is_a_role_in_the_instance_namespace_only() {
    let mut sdl = sdl();
    sdl.postflight[0].service_account = Some(sdl::model::ServiceAccount {
        rules: vec![sdl::model::PolicyRule {
            api_groups: vec!["".into()],
            resources: vec!["configmaps".into()],
            verbs: vec!["get".into(), "patch".into()],
            resource_names: vec!["migrations".into()],
        }],
        cluster_rules: Vec::new(),
    });
    assert_eq!(validate_sdl(&sdl), vec![]);
    let profile = ClusterProfile::default();
    let idl = Idl { instance_id: Some("shop-1".into()), ..Idl::default() };
    let context = ResolveContext { instance_id: "shop-1", cluster_domain: &profile.cluster_domain };
    let resolved = resolve(&sdl, &idl, &Stored::default(), &context, &mut StdRng::seed_from_u64(1)).unwrap();
    let plan =
        plan(PlanInput { service_id: "acme.acme.shop", sdl: &sdl, idl: &idl, resolved: &resolved, profile: &profile })
            .unwrap();

    let configuration = plan.steps.iter().find(|s| s.phase == Phase::Configuration).unwrap();
    let granted: Vec<String> = configuration
        .objects
        .iter()
        .filter(|o| matches!(o, KubeObject::ServiceAccount(_) | KubeObject::Role(_) | KubeObject::RoleBinding(_)))
        .map(KubeObject::describe)
        .collect();
    assert_eq!(granted, ["ServiceAccount shop-1/migrate", "Role shop-1/migrate", "RoleBinding shop-1/migrate"]);
    let KubeObject::Role(role) = find(&plan, "Role", "migrate") else { unreachable!() };
    let rule = &role.rules.as_ref().unwrap()[0];
    assert_eq!(rule.resource_names.as_deref(), Some(&["migrations".to_string()][..]));
    // Nothing outside the namespace, so nothing for delete-instance to remember.
    assert!(!plan.objects().any(|o| matches!(o, KubeObject::ClusterRole(_) | KubeObject::ClusterRoleBinding(_))));
    let namespace = plan.objects().next().unwrap().metadata();
    assert!(namespace.annotations.as_ref().is_none_or(|a| !a.contains_key("hsm.stratus.io/cluster-objects")));

    let KubeObject::Job(job) = find(&plan, "Job", "migrate") else { unreachable!() };
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(
        (pod.service_account_name.as_deref(), pod.automount_service_account_token),
        (Some("migrate"), Some(true))
    );
    let web = deployment(&plan, "web").spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!((web.service_account_name.as_deref(), web.automount_service_account_token), (None, Some(false)));
}
