//! One test per validation rule: a valid SDL is broken in exactly one way and the validator
//! must report exactly that problem, at the right JSON path.

use sdl::idl::{IdlParameter, Scaling};
use sdl::model::*;
use sdl::validate::{validate_idl, validate_sdl};
use sdl::Idl;

fn port(name: &str, port: u32) -> ServicePort {
    ServicePort { name: name.into(), protocol: Protocol::TCP, source_port: port, target_port: port, public: false }
}

fn secret_password(name: &str) -> Parameter {
    Parameter {
        name: name.into(),
        secret: true,
        generator: Some(Generator {
            id: name.into(),
            generate: Generate { kind: GeneratorType::Password, ..Generate::default() },
        }),
        ..Parameter::default()
    }
}

/// A valid two-component SDL exercising most fields.
fn base() -> Sdl {
    Sdl {
        name: "shop".into(),
        sdl_version: "1.0.0".into(),
        product_version: "2.1".into(),
        vendor: "acme".into(),
        description: None,
        components: vec![
            Component {
                name: "db".into(),
                image: Some("docker.io/library/postgres:16.6".into()),
                min_ram_mb: 256,
                min_vcpu: 0.5,
                min_instances: 1,
                max_instances: 1,
                service_ports: vec![port("postgres", 5432)],
                volume_mounts: vec![VolumeMount { volume_name: "data".into(), mountpoint: "/data".into() }],
                parameters: vec!["db-password".into()],
                ..Component::default()
            },
            Component {
                name: "web".into(),
                repository: Some("docker.io".into()),
                organization: Some("acme".into()),
                image: Some("shop".into()),
                tag: Some("2.1.0".into()),
                min_ram_mb: 128,
                max_instances: 3,
                min_instances: 1,
                service_ports: vec![ServicePort { public: true, ..port("http", 8080) }],
                parameters: vec!["db-password".into(), "GREETING".into()],
                depends_on: vec!["db".into()],
                probes: Some(Probes {
                    readiness: Some(Probe {
                        http: Some(HttpProbe {
                            path: "/health".into(),
                            port: PortRef::Name("http".into()),
                            scheme: None,
                        }),
                        ..Probe::default()
                    }),
                    ..Probes::default()
                }),
                ..Component::default()
            },
        ],
        preflight: vec![],
        postflight: vec![Component {
            name: "migrate".into(),
            image: Some("docker.io/acme/shop:2.1.0".into()),
            min_ram_mb: 64,
            parameters: vec!["db-password".into()],
            retry_count: Some(2),
            timeout: Some(300),
            min_instances: 1,
            max_instances: 1,
            ..Component::default()
        }],
        volumes: vec![Volume { name: "data".into(), size_gb: 5, filesystem: Filesystem::Ext4, shared: false }],
        parameters: vec![
            secret_password("db-password"),
            Parameter { name: "GREETING".into(), default: Some("hello".into()), ..Parameter::default() },
        ],
        features: None,
        bindings: None,
    }
}

fn db(sdl: &mut Sdl) -> &mut Component {
    &mut sdl.components[0]
}

fn web(sdl: &mut Sdl) -> &mut Component {
    &mut sdl.components[1]
}

/// Applies `change` to the base SDL and expects exactly one problem at `path` whose message
/// contains `fragment`.
fn expect_one(change: impl FnOnce(&mut Sdl), path: &str, fragment: &str) {
    let mut sdl = base();
    change(&mut sdl);
    let problems = validate_sdl(&sdl);
    assert_eq!(problems.len(), 1, "expected one problem, got {problems:#?}");
    assert_eq!(problems[0].path, path, "{problems:#?}");
    assert!(problems[0].message.contains(fragment), "{:?} does not contain {fragment:?}", problems[0].message);
}

/// Like [`expect_one`], for changes whose consequences are further problems: the problem at
/// `path` must be among those reported.
fn expect_among(change: impl FnOnce(&mut Sdl), path: &str, fragment: &str) {
    let mut sdl = base();
    change(&mut sdl);
    let problems = validate_sdl(&sdl);
    assert!(
        problems.iter().any(|p| p.path == path && p.message.contains(fragment)),
        "no problem at {path} containing {fragment:?} in {problems:#?}"
    );
}

#[test]
fn base_is_valid() {
    assert_eq!(validate_sdl(&base()), vec![]);
}

#[test]
fn service_name_must_be_dns_label() {
    expect_one(|s| s.name = "Shop".into(), "name", "not a DNS label");
}

#[test]
fn sdl_version_must_be_label_safe() {
    expect_one(|s| s.sdl_version = "1.0.0+build.5".into(), "sdl_version", "not usable as a label value");
}

#[test]
fn product_version_must_be_label_safe() {
    expect_one(|s| s.product_version = "2 beta".into(), "product_version", "not usable as a label value");
}

#[test]
fn at_least_one_component() {
    let mut sdl = base();
    sdl.components.clear();
    sdl.postflight.clear();
    sdl.volumes.clear();
    sdl.parameters.clear();
    let problems = validate_sdl(&sdl);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].message, "a service needs at least one component");
}

#[test]
fn component_names_are_dns1035_labels() {
    expect_one(
        |s| s.postflight[0].name = "1migrate".into(),
        "postflight[0].name",
        "must start with a lowercase letter",
    );
}

#[test]
fn component_names_leave_room_for_derived_names() {
    let long = "a".repeat(53);
    let mut sdl = base();
    web(&mut sdl).name = long.clone();
    let problems = validate_sdl(&sdl);
    assert_eq!(problems[0].message, format!("\"{long}\" is 53 characters long; at most 52 are allowed"));
}

#[test]
fn names_are_unique_across_components_and_jobs() {
    expect_one(|s| s.postflight[0].name = "web".into(), "postflight[0].name", "already used by components[1]");
}

#[test]
fn port_names_follow_kubernetes_rules() {
    expect_one(
        |s| db(s).service_ports[0].name = "postgres-primary".into(),
        "components[0].service_ports[0].name",
        "longer than 15",
    );
    expect_one(|s| db(s).service_ports[0].name = "PG".into(), "components[0].service_ports[0].name", "not a port name");
}

#[test]
fn ports_are_below_30000() {
    expect_one(
        |s| db(s).service_ports[0].target_port = 30000,
        "components[0].service_ports[0].target_port",
        "out of range",
    );
    expect_one(
        |s| db(s).service_ports[0].source_port = 0,
        "components[0].service_ports[0].source_port",
        "out of range",
    );
}

#[test]
fn at_most_ten_ports() {
    expect_one(
        |s| db(s).service_ports = (0..11).map(|i| port(&format!("p{i}"), 1000 + i)).collect(),
        "components[0].service_ports",
        "11 ports declared; at most 10",
    );
}

#[test]
fn port_names_and_numbers_are_unique() {
    expect_one(
        |s| db(s).service_ports.push(port("postgres", 5433)),
        "components[0].service_ports[1].name",
        "used twice",
    );
    expect_one(
        |s| db(s).service_ports.push(port("other", 5432)),
        "components[0].service_ports[1].source_port",
        "5432/TCP is declared twice",
    );
}

#[test]
fn same_port_number_on_two_protocols_is_fine() {
    let mut sdl = base();
    db(&mut sdl).service_ports.push(ServicePort { protocol: Protocol::UDP, ..port("postgres-udp", 5432) });
    assert_eq!(validate_sdl(&sdl), vec![]);
}

#[test]
fn referenced_parameters_exist() {
    expect_one(
        |s| web(s).parameters.push("GREETNG".into()),
        "components[1].parameters[2]",
        "did you mean \"GREETING\"",
    );
}

#[test]
fn every_parameter_is_used() {
    expect_one(
        |s| s.parameters.push(Parameter { name: "UNUSED".into(), ..Parameter::default() }),
        "parameters[2]",
        "not used by any component",
    );
}

#[test]
fn volume_mounts_refer_to_declared_volumes() {
    expect_among(
        |s| db(s).volume_mounts[0].volume_name = "dta".into(),
        "components[0].volume_mounts[0].volume_name",
        "unknown volume \"dta\" (did you mean \"data\"?)",
    );
}

#[test]
fn mountpoints_are_absolute() {
    expect_one(
        |s| db(s).volume_mounts[0].mountpoint = "data".into(),
        "components[0].volume_mounts[0].mountpoint",
        "absolute path",
    );
}

#[test]
fn volumes_are_mounted() {
    expect_one(
        |s| s.volumes.push(Volume { name: "spare".into(), size_gb: 1, filesystem: Filesystem::Xfs, shared: true }),
        "volumes[1]",
        "not mounted by any component",
    );
}

#[test]
fn a_volume_used_by_two_components_must_be_shared() {
    expect_one(
        |s| web(s).volume_mounts.push(VolumeMount { volume_name: "data".into(), mountpoint: "/data".into() }),
        "volumes[0].shared",
        "mounted by db, web",
    );
}

#[test]
fn shared_volume_sizes_agree() {
    expect_one(
        |s| {
            s.volumes[0].shared = true;
            s.volumes.push(Volume { name: "data".into(), size_gb: 7, filesystem: Filesystem::Ext4, shared: true });
        },
        "volumes[1].size_gb",
        "declared again with 7 GiB; volumes[0] says 5 GiB",
    );
}

#[test]
fn jobs_mount_only_shared_volumes() {
    expect_among(
        |s| s.postflight[0].volume_mounts.push(VolumeMount { volume_name: "data".into(), mountpoint: "/d".into() }),
        "postflight[0].volume_mounts[0].volume_name",
        "jobs can only mount shared volumes",
    );
}

#[test]
fn depends_on_names_components_without_cycles() {
    expect_one(|s| web(s).depends_on = vec!["dbb".into()], "components[1].depends_on[0]", "did you mean \"db\"");
    expect_one(
        |s| db(s).depends_on = vec!["web".into()],
        "components[0].depends_on",
        "dependency cycle: db -> web -> db",
    );
    expect_one(|s| db(s).depends_on = vec!["db".into()], "components[0].depends_on[0]", "cannot depend on itself");
}

#[test]
fn images_are_present_and_pinned() {
    expect_one(|s| db(s).image = None, "components[0].image", "an image is required");
    expect_one(|s| db(s).image = Some("postgres".into()), "components[0].image", "has no tag; pin a version");
    expect_one(|s| web(s).tag = Some("latest".into()), "components[1].tag", "not a pinned version");
    expect_one(|s| web(s).image = Some("acme/shop".into()), "components[1].image", "bare image name");
}

#[test]
fn resources_are_sane() {
    expect_one(|s| db(s).min_ram_mb = 0, "components[0].min_RAM_mb", "at least 1");
    expect_one(|s| db(s).max_ram_mb = Some(100), "components[0].max_RAM_mb", "below min_RAM_mb (256)");
    expect_one(|s| db(s).min_vcpu = -1.0, "components[0].min_VCPU", "zero or more");
}

#[test]
fn instance_bounds_are_ordered() {
    expect_one(|s| web(s).min_instances = 4, "components[1].min_instances", "more than max_instances (3)");
    expect_one(|s| s.postflight[0].max_instances = 2, "postflight[0].min_instances", "jobs run once");
}

#[test]
fn capabilities_are_linux_capabilities() {
    expect_one(
        |s| db(s).capabilities = vec!["NET_ADMN".into()],
        "components[0].capabilities[0]",
        "did you mean \"NET_ADMIN\"",
    );
    expect_one(
        |s| db(s).capabilities = vec!["ALL".into(), "CHOWN".into()],
        "components[0].capabilities[0]",
        "list nothing else",
    );
}

#[test]
fn platform_and_workload_type() {
    expect_one(
        |s| db(s).platform = Some("windows-x86_64".into()),
        "components[0].platform",
        "not a supported platform",
    );
    expect_one(|s| db(s).workload_type = WorkloadType::Vm, "components[0].workload_type", "not supported");
}

#[test]
fn probes_have_one_kind_and_known_ports() {
    expect_one(
        |s| {
            let probe = web(s).probes.as_mut().unwrap().readiness.as_mut().unwrap();
            probe.tcp = Some(TcpProbe { port: PortRef::Number(8080) });
        },
        "components[1].probes.readiness",
        "exactly one of http, tcp or exec",
    );
    expect_one(
        |s| {
            let probe = web(s).probes.as_mut().unwrap().readiness.as_mut().unwrap();
            probe.http.as_mut().unwrap().port = PortRef::Name("htp".into());
        },
        "components[1].probes.readiness.http.port",
        "unknown port \"htp\" (did you mean \"http\"?)",
    );
    expect_one(
        |s| web(s).probes.as_mut().unwrap().readiness.as_mut().unwrap().http.as_mut().unwrap().path = "health".into(),
        "components[1].probes.readiness.http.path",
        "must start with '/'",
    );
}

#[test]
fn job_only_fields() {
    expect_one(|s| db(s).retry_count = Some(1), "components[0].retry_count", "only preflight and postflight jobs");
    expect_one(|s| s.postflight[0].timeout = Some(0), "postflight[0].timeout", "at least 1 second");
    expect_one(
        |s| s.postflight[0].service_ports = vec![port("x", 1)],
        "postflight[0].service_ports",
        "jobs cannot serve ports",
    );
}

#[test]
fn parameter_names_fit_their_use() {
    expect_among(|s| s.parameters[0].name = "DB_PASSWORD".into(), "parameters[0].name", "lowercase-with-dashes");
    expect_one(
        |s| {
            s.parameters[1].name = "greet-ing".into();
            web(s).parameters[1] = "greet-ing".into();
        },
        "parameters[1].name",
        "not an environment variable name",
    );
    expect_one(
        |s| {
            s.parameters[1].name = "HCP_GREETING".into();
            web(s).parameters[1] = "HCP_GREETING".into();
        },
        "parameters[1].name",
        "reserved for platform variables",
    );
    expect_one(
        |s| s.parameters.push(Parameter { name: "GREETING".into(), ..Parameter::default() }),
        "parameters[2].name",
        "already declared",
    );
}

#[test]
fn defaults_match_data_types() {
    expect_one(
        |s| s.parameters[1].data_type = Some(DataType::Integer),
        "parameters[1].default",
        "\"hello\" is not an integer",
    );
}

#[test]
fn generators_are_consistent() {
    expect_among(|s| s.parameters[0].secret = false, "parameters[0].secret", "a generated parameter must be secret");
    expect_one(
        |s| s.parameters[0].generator.as_mut().unwrap().generate.value_type = Some(ValueType::Certificate),
        "parameters[0].generator.generate.value_type",
        "a Password has no value_type",
    );
    expect_one(
        |s| s.parameters[0].generator.as_mut().unwrap().generate.length = Some(4),
        "parameters[0].generator.generate.length",
        "4 is out of range",
    );
    expect_one(
        |s| s.parameters[0].generator.as_mut().unwrap().generate.key_length = Some(2048),
        "parameters[0].generator.generate.key_length",
        "2048 is not supported",
    );
    expect_one(
        |s| s.parameters[0].generator.as_mut().unwrap().generate.kind = GeneratorType::SSH,
        "parameters[0].generator.generate.value_type",
        "required for SSH: one of private_key, public_key, fingerprint",
    );
    expect_one(
        |s| {
            let g = &mut s.parameters[0].generator.as_mut().unwrap().generate;
            g.kind = GeneratorType::Certificate;
            g.value_type = Some(ValueType::Certificate);
        },
        "parameters[0].generator.generate.ca",
        "does not have exactly one CACertificate",
    );
}

#[test]
fn certificates_name_an_existing_ca_and_known_san_parameters() {
    let cert = |vt: ValueType, sans: Vec<String>, ca: Option<&str>| Parameter {
        name: format!("tls-{}", if vt == ValueType::Certificate { "cert" } else { "key" }),
        secret: true,
        generator: Some(Generator {
            id: "tls".into(),
            generate: Generate {
                kind: GeneratorType::Certificate,
                value_type: Some(vt),
                subject_alt_names: sans,
                ca: ca.map(str::to_string),
                ..Generate::default()
            },
        }),
        ..Parameter::default()
    };
    let ca = Parameter {
        name: "ca-cert".into(),
        secret: true,
        generator: Some(Generator {
            id: "ca".into(),
            generate: Generate {
                kind: GeneratorType::CACertificate,
                value_type: Some(ValueType::Certificate),
                ..Generate::default()
            },
        }),
        ..Parameter::default()
    };
    let with = |params: Vec<Parameter>| {
        move |s: &mut Sdl| {
            for p in params {
                web(s).parameters.push(p.name.clone());
                s.parameters.push(p);
            }
        }
    };
    let sans = vec!["web.${HCP_SERVICE_DOMAIN_SUFFIX}".to_string(), "*.${GREETING}".to_string()];
    let mut sdl = base();
    with(vec![
        ca.clone(),
        cert(ValueType::Certificate, sans.clone(), None),
        cert(ValueType::PrivateKey, sans.clone(), None),
    ])(&mut sdl);
    assert_eq!(validate_sdl(&sdl), vec![]);

    expect_one(
        with(vec![ca.clone(), cert(ValueType::Certificate, sans.clone(), Some("cq"))]),
        "parameters[3].generator.generate.ca",
        "unknown CA generator id \"cq\"",
    );
    expect_one(
        with(vec![ca.clone(), cert(ValueType::Certificate, vec!["${DOMAN}".into()], None)]),
        "parameters[3].generator.generate.subject_alt_names[0]",
        "unknown parameter \"DOMAN\"",
    );
    expect_one(
        with(vec![ca.clone(), cert(ValueType::Certificate, vec!["${db-password}".into()], None)]),
        "parameters[3].generator.generate.subject_alt_names[0]",
        "refers to a secret parameter",
    );
    expect_one(
        with(vec![
            ca.clone(),
            cert(ValueType::Certificate, sans.clone(), None),
            cert(ValueType::PrivateKey, vec![], None),
        ]),
        "parameters[4].generator.generate",
        "declared differently by parameters[3]",
    );
    let mut twin = cert(ValueType::Certificate, sans.clone(), None);
    twin.name = "tls-cert-2".into();
    expect_one(
        with(vec![ca, cert(ValueType::Certificate, sans, None), twin]),
        "parameters[4].generator.generate.value_type",
        "already receives the Certificate",
    );
}

#[test]
fn external_components_have_no_workload_fields() {
    expect_one(
        |s| {
            web(s).external_name = Some("${GREETING}.example.com".into());
            web(s).probes = None;
        },
        "components[1].image",
        "runs no workload",
    );
    expect_one(
        |s| {
            let w = web(s);
            w.external_name = Some("${NOPE}".into());
            w.probes = None;
            w.image = None;
            w.repository = None;
            w.organization = None;
            w.tag = None;
        },
        "components[1].external_name",
        "unknown parameter \"NOPE\"",
    );
}

#[test]
fn auth_clients_use_secret_parameters() {
    expect_one(
        |s| {
            s.features = Some(Features {
                auth: vec![AuthZone {
                    auth_zone: "shop".into(),
                    clients: vec![AuthClient {
                        id: "shop".into(),
                        secret_parameter: Some("GREETING".into()),
                        authorized_grant_types: vec![],
                        scopes: vec![],
                        authorities: vec![],
                        access_token_validity: None,
                        refresh_token_validity: None,
                    }],
                }],
            })
        },
        "features.auth[0].clients[0].secret_parameter",
        "must be secret",
    );
}

#[test]
fn labels_are_key_value() {
    expect_one(|s| db(s).labels = vec!["tier".into()], "components[0].labels[0]", "not of the form key=value");
    expect_one(
        |s| db(s).labels = vec!["tier=back end".into()],
        "components[0].labels[0]",
        "not usable as a label value",
    );
}

#[test]
fn all_problems_are_reported_together() {
    let mut sdl = base();
    db(&mut sdl).service_ports[0].name = "PG".into();
    web(&mut sdl).tag = Some("latest".into());
    sdl.parameters[0].secret = false;
    let paths: Vec<String> = validate_sdl(&sdl).into_iter().map(|p| p.path).collect();
    assert_eq!(
        paths,
        vec!["components[0].service_ports[0].name", "components[1].tag", "parameters[0].name", "parameters[0].secret"]
    );
}

fn idl_problems(idl: Idl) -> Vec<(String, String)> {
    validate_idl(&base(), "acme.acme.shop", &idl).into_iter().map(|p| (p.path, p.message)).collect()
}

#[test]
fn idl_instance_id_is_a_free_dns_label() {
    assert_eq!(idl_problems(Idl { instance_id: Some("shop-1".into()), ..Idl::default() }), vec![]);
    let problems = idl_problems(Idl { instance_id: Some("Shop_1".into()), ..Idl::default() });
    assert_eq!(problems[0].0, "instance_id");
    let problems = idl_problems(Idl { instance_id: Some("kube-system".into()), ..Idl::default() });
    assert_eq!(problems[0].1, "\"kube-system\" is a reserved namespace; choose another instance id");
}

#[test]
fn idl_parameters_exist_once_and_fit_their_type() {
    let param = |name: &str, value: &str| IdlParameter { name: name.into(), value: value.into() };
    let problems = idl_problems(Idl {
        parameters: vec![param("GRETING", "x"), param("GREETING", "a"), param("GREETING", "b")],
        ..Idl::default()
    });
    assert_eq!(
        problems,
        vec![
            (
                "parameters[0].name".to_string(),
                "unknown parameter \"GRETING\" (did you mean \"GREETING\"?)".to_string()
            ),
            ("parameters[2].name".to_string(), "parameter \"GREETING\" is given twice".to_string()),
        ]
    );
}

#[test]
fn idl_scaling_stays_within_sdl_bounds() {
    let scale = |c: &str, min, max| Scaling { component: c.into(), min_instances: min, max_instances: max };
    assert_eq!(idl_problems(Idl { scaling: vec![scale("web", 3, 3)], ..Idl::default() }), vec![]);
    let problems = idl_problems(Idl {
        scaling: vec![scale("web", 2, 5), scale("wbe", 1, 1), scale("db", 1, 0)],
        ..Idl::default()
    });
    assert_eq!(
        problems,
        vec![
            ("scaling[0].max_instances".to_string(), "5 is above the component's maximum of 3".to_string()),
            ("scaling[1].component".to_string(), "unknown component \"wbe\" (did you mean \"web\"?)".to_string()),
            ("scaling[2].min_instances".to_string(), "1 is more than max_instances (0)".to_string()),
        ]
    );
}

#[test]
fn idl_must_match_the_service() {
    let problems = idl_problems(Idl {
        service_id: Some("acme.acme.other".into()),
        product_version: Some("9".into()),
        ..Idl::default()
    });
    assert_eq!(problems.len(), 2);
    assert_eq!(problems[0].0, "service_id");
    assert_eq!(problems[1].1, "\"9\" does not match the version being created, \"2.1\"");
}

// ---- Hardening: rules that an adversarial pass found unenforced. ----

#[test]
fn instance_ids_starting_kube_are_reserved() {
    for id in ["kube-x", "kube-foo-1", "default"] {
        let problems = idl_problems(Idl { instance_id: Some(id.into()), ..Idl::default() });
        assert_eq!(problems.len(), 1, "{id}: {problems:?}");
        assert!(problems[0].1.contains("is a reserved namespace"), "{problems:?}");
    }
    assert_eq!(sdl::validate::instance_id_problem("kubex"), None);
}

#[test]
fn secrets_mount_cannot_be_reached_by_unnormalised_paths() {
    for point in
        ["/etc/secrets", "/etc//secrets", "/etc/./secrets", "/etc/secrets/", "//etc/secrets/x", "/etc/secrets/."]
    {
        let point = point.to_string();
        expect_one(
            move |s| db(s).volume_mounts[0].mountpoint = point,
            "components[0].volume_mounts[0].mountpoint",
            "/etc/secrets is where secret parameters are mounted",
        );
    }
    expect_valid(|s| db(s).volume_mounts[0].mountpoint = "/etc/secrets-old".into());
}

/// Applies `change` to the base SDL, which must stay valid.
fn expect_valid(change: impl FnOnce(&mut Sdl)) {
    let mut sdl = base();
    change(&mut sdl);
    assert_eq!(validate_sdl(&sdl), vec![]);
}

#[test]
fn mount_points_are_not_root_nor_climbing_nor_duplicated_after_normalising() {
    for point in ["/", "//", "/./"] {
        let point = point.to_string();
        expect_one(
            move |s| db(s).volume_mounts[0].mountpoint = point,
            "components[0].volume_mounts[0].mountpoint",
            "is the container's root",
        );
    }
    expect_one(
        |s| db(s).volume_mounts[0].mountpoint = "/data/../etc/secrets".into(),
        "components[0].volume_mounts[0].mountpoint",
        "must not contain '..'",
    );
    expect_one(
        |s| {
            s.volumes.push(Volume { name: "logs".into(), size_gb: 1, filesystem: Filesystem::Ext4, shared: false });
            db(s).volume_mounts.push(VolumeMount { volume_name: "logs".into(), mountpoint: "/data/".into() });
        },
        "components[0].volume_mounts[1].mountpoint",
        "is mounted twice",
    );
}

#[test]
fn images_are_single_well_formed_references() {
    for image in [
        "docker.io/library/postgres:16.6\n",
        "docker.io/library/postgres:16.6 --privileged",
        "docker.io/library/postgres:16.6:17",
        "docker.io/library/postgres:16.6@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "docker.io/library/Postgres:16.6",
        "docker.io/library/postgres:16.6\t",
    ] {
        let image = image.to_string();
        expect_one(move |s| db(s).image = Some(image), "components[0].image", "is not an image reference");
    }
    expect_one(|s| web(s).tag = Some("2.1 ".into()), "components[1].tag", "is not an image reference");
    expect_one(|s| web(s).image = Some("sh op".into()), "components[1].image", "is not an image reference");
    expect_one(|s| web(s).organization = Some("Ac me".into()), "components[1].organization", "not an image reference");
    expect_one(
        |s| web(s).repository = Some("docker.io\n".into()),
        "components[1].repository",
        "not an image reference",
    );
    let mut sdl = base();
    db(&mut sdl).image =
        Some("quay.io:443/org/pg@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into());
    assert_eq!(validate_sdl(&sdl), vec![]);
}

#[test]
fn control_characters_are_escaped_in_validation_messages() {
    let mut sdl = base();
    db(&mut sdl).image = Some("pg:1\u{1b}]0;owned\u{7}\u{0}".into());
    sdl.name = format!("evil\u{1b}[2J{}", "x".repeat(10_000));
    let problems = validate_sdl(&sdl);
    assert!(!problems.is_empty());
    for p in &problems {
        assert!(!p.to_string().chars().any(|c| c.is_control()), "{p:?}");
        assert!(p.to_string().len() < 600, "{} bytes", p.to_string().len());
    }
}

#[test]
fn reports_list_at_most_fifty_problems() {
    let mut sdl = base();
    db(&mut sdl).labels = (0..500).map(|i| format!("bad{i}")).collect();
    let problems = validate_sdl(&sdl);
    assert_eq!(problems.len(), 500);
    let report = sdl::error::invalid_report("sdl.json", "SDL", &problems);
    assert_eq!(report.lines().count(), 1 + 50 + 1, "{report}");
    assert!(report.ends_with("… and 450 more"), "{report}");
}

#[test]
fn overlong_lists_are_refused_before_pairwise_checks() {
    let mut sdl = base();
    sdl.parameters = (0..50_000).map(|i| Parameter { name: format!("P{i}"), ..Parameter::default() }).collect();
    db(&mut sdl).parameters = (0..50_000).map(|i| format!("Q{i}")).collect();
    let start = std::time::Instant::now();
    let problems = validate_sdl(&sdl);
    assert!(start.elapsed() < std::time::Duration::from_secs(1));
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["parameters", "components[0].parameters"]);
    assert!(problems[0].message.contains("at most 1000"));
}

#[test]
fn a_secret_default_is_never_echoed() {
    let mut sdl = base();
    sdl.parameters.push(Parameter {
        name: "api-pin".into(),
        secret: true,
        data_type: Some(DataType::Integer),
        default: Some("hunter2-s3cret".into()),
        ..Parameter::default()
    });
    web(&mut sdl).parameters.push("api-pin".into());
    let problems = validate_sdl(&sdl);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, "parameters[2].default");
    assert_eq!(problems[0].message, "the secret value (not shown) is not an integer");
    let report = sdl::error::invalid_report("sdl.json", "SDL", &problems);
    assert!(!report.contains("hunter2"));
    // A non-secret value is still shown.
    expect_one(
        |s| s.parameters[1].data_type = Some(DataType::Integer),
        "parameters[1].default",
        "\"hello\" is not an integer",
    );
}

fn sdl_with_pin() -> Sdl {
    let mut sdl = base();
    sdl.parameters.push(Parameter {
        name: "api-pin".into(),
        secret: true,
        required: true,
        data_type: Some(DataType::Integer),
        ..Parameter::default()
    });
    web(&mut sdl).parameters.push("api-pin".into());
    sdl
}

#[test]
fn a_secret_value_is_never_echoed() {
    let sdl = sdl_with_pin();
    let idl =
        Idl { parameters: vec![IdlParameter { name: "api-pin".into(), value: "hunter2".into() }], ..Idl::default() };
    let problems = validate_idl(&sdl, "acme.acme.shop", &idl);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].to_string(), "parameters[0].value: the secret value (not shown) is not an integer");
    // The --set path checks with the same function.
    let def = sdl.parameter("api-pin").unwrap();
    assert!(!sdl::validate::check_value(def, "hunter2").unwrap().contains("hunter2"));
    // check_data_type alone never repeats the value.
    assert_eq!(sdl::validate::check_data_type(Some(DataType::Integer), "hunter2").unwrap(), "is not an integer");
}

#[test]
fn an_empty_value_for_a_required_parameter_is_refused() {
    let sdl = sdl_with_pin();
    let idl = Idl { parameters: vec![IdlParameter { name: "api-pin".into(), value: String::new() }], ..Idl::default() };
    let problems = validate_idl(&sdl, "acme.acme.shop", &idl);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, "parameters[0].value");
    assert!(problems[0].message.contains("\"api-pin\" is required; an empty value is not a value"));
    let def = sdl.parameter("api-pin").unwrap();
    assert!(sdl::validate::check_value(def, "").is_some());
    expect_one(
        |s| {
            s.parameters[1].required = true;
            s.parameters[1].default = Some(String::new());
        },
        "parameters[1].default",
        "an empty value is not a value",
    );
}

#[test]
fn huge_resources_and_counts_are_refused_not_clamped() {
    expect_one(|s| db(s).min_vcpu = 1e300, "components[0].min_VCPU", "more than the 1024 virtual CPUs");
    expect_one(|s| db(s).min_vcpu = 0.0001, "components[0].min_VCPU", "finer than a thousandth");
    expect_one(|s| db(s).max_vcpu = Some(5000.0), "components[0].max_VCPU", "more than the 1024");
    expect_one(|s| web(s).max_instances = u32::MAX, "components[1].max_instances", "more than the 1000 instances");
    expect_among(|s| web(s).min_instances = 3_000_000_000, "components[1].min_instances", "more than the 1000");
    expect_one(|s| s.postflight[0].retry_count = Some(u32::MAX), "postflight[0].retry_count", "at most 2147483647");
    expect_one(|s| s.postflight[0].timeout = Some(u64::MAX), "postflight[0].timeout", "30 days");
    expect_one(
        |s| web(s).probes.as_mut().unwrap().readiness.as_mut().unwrap().period_seconds = Some(u32::MAX),
        "components[1].probes.readiness.period_seconds",
        "at most 2147483647",
    );
    expect_one(
        |s| {
            s.parameters[0].generator = Some(Generator {
                id: "ca".into(),
                generate: Generate {
                    kind: GeneratorType::CACertificate,
                    value_type: Some(ValueType::Certificate),
                    valid_days: Some(u32::MAX),
                    ..Generate::default()
                },
            })
        },
        "parameters[0].generator.generate.valid_days",
        "out of range: 1 to 36500",
    );
}

#[test]
fn labels_keep_off_platform_keys_and_are_unique() {
    expect_one(
        |s| db(s).labels = vec!["app.kubernetes.io/instance=other".into()],
        "components[0].labels[0]",
        "set by the platform",
    );
    expect_one(
        |s| db(s).labels = vec!["tier=a".into(), "tier=b".into()],
        "components[0].labels[1]",
        "\"tier\" is given twice",
    );
}

#[test]
fn external_names_are_dns_names() {
    let connector = |name: &str| Component {
        name: "ext".into(),
        external_name: Some(name.into()),
        min_instances: 1,
        max_instances: 1,
        ..Component::default()
    };
    let c = connector("db.${HCP_SERVICE_DOMAIN_SUFFIX}");
    expect_valid(move |s| s.components.push(c));
    let c = connector("db example.com");
    expect_one(move |s| s.components.push(c), "components[2].external_name", "is not a DNS name");
    let c = connector("Db.Example.com");
    expect_one(move |s| s.components.push(c), "components[2].external_name", "is not a DNS name");
}

#[test]
fn oversized_values_and_descriptions_are_refused() {
    let param = IdlParameter { name: "GREETING".into(), value: "x".repeat(300 * 1024) };
    let problems = idl_problems(Idl { parameters: vec![param], ..Idl::default() });
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].1.contains("at most 262144"), "{problems:?}");
    let problems = idl_problems(Idl { description: Some("d".repeat(5000)), ..Idl::default() });
    assert_eq!(problems[0].0, "description");
    expect_one(|s| s.description = Some("d".repeat(5000)), "description", "at most 4096");
    expect_one(|s| db(s).entrypoint = vec!["a".repeat(200 * 1024)], "components[0].entrypoint", "at most 131072");
    let param = IdlParameter { name: "GREETING".into(), value: "a\0b".into() };
    let problems = idl_problems(Idl { parameters: vec![param], ..Idl::default() });
    assert!(problems[0].1.contains("NUL"), "{problems:?}");
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
    let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PolicyRule { api_groups: own(groups), resources: own(resources), verbs: own(verbs), resource_names: own(names) }
}

fn with_rules(rules: Vec<PolicyRule>, cluster_rules: Vec<PolicyRule>) -> impl FnOnce(&mut Sdl) {
    move |s| web(s).service_account = Some(ServiceAccount { rules, cluster_rules })
}

#[test]
fn service_account_rules_are_kubernetes_rules() {
    let good = vec![
        rule(&[""], &["configmaps", "pods/log"], &["get", "list", "watch"], &[]),
        rule(&["coordination.k8s.io"], &["leases"], &["get", "update"], &["web-lock"]),
        rule(&["*"], &["*"], &["*"], &[]),
    ];
    let mut sdl = base();
    with_rules(good.clone(), good)(&mut sdl);
    assert_eq!(validate_sdl(&sdl), vec![]);
    // An identity without permissions is fine too.
    let mut sdl = base();
    with_rules(Vec::new(), Vec::new())(&mut sdl);
    assert_eq!(validate_sdl(&sdl), vec![]);

    expect_one(
        with_rules(vec![rule(&[""], &[], &["get"], &[])], Vec::new()),
        "components[1].service_account.rules[0].resources",
        "at least one entry",
    );
    expect_one(
        with_rules(Vec::new(), vec![rule(&["Apps"], &["deployments"], &["get"], &[])]),
        "components[1].service_account.cluster_rules[0].api_groups[0]",
        "Apps",
    );
    expect_one(
        with_rules(vec![rule(&[""], &["Secrets"], &["get"], &[])], Vec::new()),
        "components[1].service_account.rules[0].resources[0]",
        "is not a resource name",
    );
    expect_one(
        with_rules(vec![rule(&[""], &["secrets"], &["read"], &[])], Vec::new()),
        "components[1].service_account.rules[0].verbs[0]",
        "unknown verb \"read\"",
    );
    expect_one(
        with_rules(vec![rule(&[""], &["secrets"], &["get", "deletecollection"], &["a"])], Vec::new()),
        "components[1].service_account.rules[0].verbs[1]",
        "cannot be limited to resource_names",
    );
    expect_one(
        with_rules(vec![rule(&[""], &["secrets"], &["get"], &["a/b"])], Vec::new()),
        "components[1].service_account.rules[0].resource_names[0]",
        "is not an object name",
    );
}
