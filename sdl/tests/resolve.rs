//! Parameter resolution and generators, checked with independent tools: certificates with an
//! X.509 parser that verifies signatures, SSH keys with `ssh-keygen`.

use std::process::Command;

use rand::rngs::StdRng;
use rand::SeedableRng;
use sdl::generate::GeneratedObject;
use sdl::idl::IdlParameter;
use sdl::parse::{parse_document, Syntax};
use sdl::resolve::{resolve, ResolveContext, ResolveError, Source, Stored};
use sdl::validate::validate_sdl;
use sdl::{Idl, Sdl};
use x509_parser::prelude::*;

const SDL: &str = r#"{
  "name": "web", "vendor": "acme", "product_version": "1", "sdl_version": "1.0.0",
  "components": [{
    "name": "web", "image": "docker.io/acme/web:1.0", "min_RAM_mb": 64,
    "parameters": ["DOMAIN", "GREETING", "OPTIONAL", "LOCKED", "admin-password", "ca-cert", "ca-key",
                   "tls-cert", "tls-key", "ssh-key", "ssh-pub", "ssh-fp"]
  }],
  "parameters": [
    {"name": "DOMAIN", "required": true},
    {"name": "GREETING", "default": "hello"},
    {"name": "OPTIONAL"},
    {"name": "LOCKED", "default": "a", "immutable": true},
    {"name": "admin-password", "secret": true, "required": true,
     "generator": {"id": "admin", "generate": {"type": "Password", "length": 20, "characters": "xyz"}}},
    {"name": "ca-cert", "secret": true, "generator": {"id": "ca", "generate": {"type": "CACertificate", "value_type": "certificate"}}},
    {"name": "ca-key", "secret": true, "generator": {"id": "ca", "generate": {"type": "CACertificate", "value_type": "private_key"}}},
    {"name": "tls-cert", "secret": true, "generator": {"id": "tls", "generate": {"type": "Certificate", "value_type": "certificate",
      "subject_alt_names": ["${DOMAIN}", "*.${DOMAIN}", "web.${HCP_SERVICE_DOMAIN_SUFFIX}", "10.0.0.7"]}}},
    {"name": "tls-key", "secret": true, "generator": {"id": "tls", "generate": {"type": "Certificate", "value_type": "private_key",
      "subject_alt_names": ["${DOMAIN}", "*.${DOMAIN}", "web.${HCP_SERVICE_DOMAIN_SUFFIX}", "10.0.0.7"]}}},
    {"name": "ssh-key", "secret": true, "generator": {"id": "ssh", "generate": {"type": "SSH", "value_type": "private_key"}}},
    {"name": "ssh-pub", "secret": true, "generator": {"id": "ssh", "generate": {"type": "SSH", "value_type": "public_key"}}},
    {"name": "ssh-fp", "secret": true, "generator": {"id": "ssh", "generate": {"type": "SSH", "value_type": "fingerprint"}}}
  ]
}"#;

fn sdl() -> Sdl {
    let sdl: Sdl = parse_document(SDL, Syntax::Json, "test").unwrap();
    assert_eq!(validate_sdl(&sdl), vec![]);
    sdl
}

fn idl(params: &[(&str, &str)]) -> Idl {
    Idl {
        parameters: params.iter().map(|(n, v)| IdlParameter { name: n.to_string(), value: v.to_string() }).collect(),
        ..Idl::default()
    }
}

const CONTEXT: ResolveContext<'static> = ResolveContext { instance_id: "shop", cluster_domain: "cluster.local" };

fn pem_der(pem: &str) -> Vec<u8> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    pem.contents
}

#[test]
fn values_come_from_idl_then_stored_then_default_then_generator() {
    let sdl = sdl();
    let mut rng = StdRng::seed_from_u64(1);
    let stored = Stored { parameters: [("GREETING".to_string(), "stored".to_string())].into(), ..Stored::default() };
    let resolved = resolve(&sdl, &idl(&[("DOMAIN", "example.com")]), &stored, &CONTEXT, &mut rng).unwrap();
    assert_eq!(resolved.values["DOMAIN"].source, Source::Idl);
    assert_eq!(resolved.get("GREETING"), Some("stored"));
    assert_eq!(resolved.values["GREETING"].source, Source::Stored);
    assert_eq!(resolved.values["LOCKED"].source, Source::Default);
    assert_eq!(resolved.values["admin-password"].source, Source::Generated);
    assert!(resolved.values["admin-password"].secret);
    assert!(!resolved.values["DOMAIN"].secret);
    assert_eq!(resolved.get("OPTIONAL"), None, "optional parameters without a value stay absent");

    let password = resolved.get("admin-password").unwrap();
    assert_eq!(password.len(), 20);
    assert!(password.chars().all(|c| "xyz".contains(c)));

    let given =
        resolve(&sdl, &idl(&[("DOMAIN", "example.com"), ("GREETING", "hi")]), &stored, &CONTEXT, &mut rng).unwrap();
    assert_eq!(given.get("GREETING"), Some("hi"));
}

#[test]
fn every_missing_required_parameter_is_listed() {
    let mut sdl = sdl();
    sdl.parameters[1].required = true;
    sdl.parameters[1].default = None;
    let err = resolve(&sdl, &Idl::default(), &Stored::default(), &CONTEXT, &mut StdRng::seed_from_u64(1)).unwrap_err();
    assert_eq!(err.to_string(), "missing required parameters: DOMAIN, GREETING");
}

#[test]
fn certificate_verifies_against_its_ca_and_carries_the_sans() {
    let resolved = resolve(
        &sdl(),
        &idl(&[("DOMAIN", "example.com")]),
        &Stored::default(),
        &CONTEXT,
        &mut StdRng::seed_from_u64(2),
    )
    .unwrap();
    let ca_der = pem_der(resolved.get("ca-cert").unwrap());
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    assert!(ca.is_ca());
    ca.verify_signature(None).expect("the CA is self-signed");

    let cert_der = pem_der(resolved.get("tls-cert").unwrap());
    let (_, cert) = X509Certificate::from_der(&cert_der).unwrap();
    assert!(!cert.is_ca());
    cert.verify_signature(Some(ca.public_key())).expect("the certificate is signed by the CA");
    assert_eq!(cert.issuer(), ca.subject());

    let sans = cert.subject_alternative_name().unwrap().expect("has SANs").value;
    let names: Vec<String> = sans
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => d.to_string(),
            GeneralName::IPAddress(ip) => format!("ip:{ip:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(names, vec!["example.com", "*.example.com", "web.shop.svc.cluster.local", "ip:[10, 0, 0, 7]"]);

    // A CA from another resolution does not verify it.
    let other = resolve(
        &sdl(),
        &idl(&[("DOMAIN", "example.com")]),
        &Stored::default(),
        &CONTEXT,
        &mut StdRng::seed_from_u64(3),
    )
    .unwrap();
    let other_der = pem_der(other.get("ca-cert").unwrap());
    let (_, other_ca) = X509Certificate::from_der(&other_der).unwrap();
    assert!(cert.verify_signature(Some(other_ca.public_key())).is_err());
}

#[test]
fn parameters_sharing_a_generator_id_share_one_object() {
    let resolved = resolve(
        &sdl(),
        &idl(&[("DOMAIN", "example.com")]),
        &Stored::default(),
        &CONTEXT,
        &mut StdRng::seed_from_u64(4),
    )
    .unwrap();
    // The key belongs to the certificate.
    for (cert, key) in [("ca-cert", "ca-key"), ("tls-cert", "tls-key")] {
        let der = pem_der(resolved.get(cert).unwrap());
        let (_, parsed) = X509Certificate::from_der(&der).unwrap();
        let key = rcgen::KeyPair::from_pem(resolved.get(key).unwrap()).unwrap();
        assert_eq!(
            parsed.public_key().raw,
            rcgen::PublicKeyData::subject_public_key_info(&key).as_slice(),
            "{cert} and its key differ"
        );
    }
    assert_eq!(resolved.generated.len(), 4, "admin, ca, tls and ssh: one object each");
    let GeneratedObject::SshKey { public_key, fingerprint, .. } = &resolved.generated["ssh"] else { panic!("not SSH") };
    assert_eq!(resolved.get("ssh-pub"), Some(public_key.as_str()));
    assert_eq!(resolved.get("ssh-fp"), Some(fingerprint.as_str()));
}

#[test]
fn ssh_keys_are_accepted_by_ssh_keygen() {
    let resolved = resolve(
        &sdl(),
        &idl(&[("DOMAIN", "example.com")]),
        &Stored::default(),
        &CONTEXT,
        &mut StdRng::seed_from_u64(5),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("id");
    std::fs::write(&key_path, resolved.get("ssh-key").unwrap()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let derived = Command::new("ssh-keygen").arg("-y").arg("-f").arg(&key_path).output().expect("ssh-keygen runs");
    assert!(derived.status.success(), "{}", String::from_utf8_lossy(&derived.stderr));
    let derived = String::from_utf8(derived.stdout).unwrap();
    let public = resolved.get("ssh-pub").unwrap();
    let key_part = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    assert_eq!(key_part(&derived), key_part(public));

    let pub_path = dir.path().join("id.pub");
    std::fs::write(&pub_path, public).unwrap();
    let listed = Command::new("ssh-keygen").arg("-l").arg("-f").arg(&pub_path).output().unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert_eq!(listed.split_whitespace().nth(1), resolved.get("ssh-fp"));
    assert!(listed.trim_end().ends_with("(ED25519)"), "{listed}");
}

#[test]
fn stored_values_are_kept_across_resolutions() {
    let sdl = sdl();
    let first =
        resolve(&sdl, &idl(&[("DOMAIN", "example.com")]), &Stored::default(), &CONTEXT, &mut StdRng::seed_from_u64(6))
            .unwrap();
    let stored = first.to_stored();
    // An upgrade: no IDL values, a different random source.
    let second = resolve(&sdl, &Idl::default(), &stored, &CONTEXT, &mut StdRng::seed_from_u64(99)).unwrap();
    assert_eq!(
        first.values.iter().map(|(k, v)| (k, &v.value)).collect::<Vec<_>>(),
        second.values.iter().map(|(k, v)| (k, &v.value)).collect::<Vec<_>>()
    );
    assert_eq!(first.generated, second.generated);

    // A parameter added in a newer SDL that shares a stored generator id gets the stored object.
    let mut newer = sdl.clone();
    let mut extra = newer.parameters.iter().find(|p| p.name == "ssh-pub").unwrap().clone();
    extra.name = "ssh-pub-copy".into();
    extra.generator.as_mut().unwrap().id = "ssh".into();
    newer.parameters.push(extra);
    newer.components[0].parameters.push("ssh-pub-copy".into());
    let mut only_objects = stored.clone();
    only_objects.parameters.retain(|k, _| !k.starts_with("ssh"));
    let third = resolve(&newer, &Idl::default(), &only_objects, &CONTEXT, &mut StdRng::seed_from_u64(100)).unwrap();
    assert_eq!(third.get("ssh-pub-copy"), first.get("ssh-pub"));
    assert_eq!(third.get("ssh-key"), first.get("ssh-key"));
}

#[test]
fn immutable_parameters_cannot_change() {
    let sdl = sdl();
    let first =
        resolve(&sdl, &idl(&[("DOMAIN", "example.com")]), &Stored::default(), &CONTEXT, &mut StdRng::seed_from_u64(7))
            .unwrap();
    let stored = first.to_stored();
    let same = resolve(&sdl, &idl(&[("LOCKED", "a")]), &stored, &CONTEXT, &mut StdRng::seed_from_u64(7));
    assert!(same.is_ok());
    let err = resolve(&sdl, &idl(&[("LOCKED", "b")]), &stored, &CONTEXT, &mut StdRng::seed_from_u64(7)).unwrap_err();
    assert!(matches!(err, ResolveError::Immutable(ref names) if names == &["LOCKED".to_string()]));
    assert_eq!(err.to_string(), "immutable parameter cannot change: LOCKED");
}

#[test]
fn san_needing_an_absent_optional_parameter_is_an_error() {
    let mut sdl = sdl();
    for p in sdl.parameters.iter_mut().filter(|p| p.name.starts_with("tls-")) {
        p.generator.as_mut().unwrap().generate.subject_alt_names = vec!["${OPTIONAL}.example.com".into()];
    }
    let err = resolve(&sdl, &idl(&[("DOMAIN", "d")]), &Stored::default(), &CONTEXT, &mut StdRng::seed_from_u64(8))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "parameter \"tls-cert\": subject alternative name \"${OPTIONAL}.example.com\" needs a value for \"OPTIONAL\""
    );
}

#[test]
fn upgrades_pick_up_new_defaults_but_immutable_values_stay() {
    let sdl = sdl();
    let first =
        resolve(&sdl, &idl(&[("DOMAIN", "example.com")]), &Stored::default(), &CONTEXT, &mut StdRng::seed_from_u64(9))
            .unwrap();
    // What an instance record keeps: the values the operator gave, and every value it had.
    let stored = Stored {
        parameters: [("DOMAIN".to_string(), "example.com".to_string())].into(),
        generated: first.generated.clone(),
        previous: first.to_stored().previous,
    };
    let mut newer = sdl.clone();
    for p in &mut newer.parameters {
        match p.name.as_str() {
            "LOCKED" => p.default = Some("b".into()),
            "GREETING" => p.default = Some("hi there".into()),
            _ => {}
        }
    }
    let upgraded = resolve(&newer, &Idl::default(), &stored, &CONTEXT, &mut StdRng::seed_from_u64(10)).unwrap();
    assert_eq!(upgraded.get("GREETING"), Some("hi there"), "a changed default reaches upgraded instances");
    assert_eq!(upgraded.get("LOCKED"), Some("a"), "an immutable value never changes");
    assert_eq!(upgraded.get("admin-password"), first.get("admin-password"));
    let err = resolve(&newer, &idl(&[("LOCKED", "c")]), &stored, &CONTEXT, &mut StdRng::seed_from_u64(11)).unwrap_err();
    assert_eq!(err.to_string(), "immutable parameter cannot change: LOCKED");
}

#[test]
fn an_empty_value_for_a_required_parameter_is_refused() {
    let sdl = sdl();
    // As given with `--set admin-password=` (merged into the IDL): a required secret.
    let err = resolve(
        &sdl,
        &idl(&[("DOMAIN", "example.com"), ("admin-password", "")]),
        &Stored::default(),
        &CONTEXT,
        &mut StdRng::seed_from_u64(1),
    )
    .unwrap_err();
    assert!(matches!(&err, ResolveError::Empty(names) if names == &["admin-password"]), "{err}");
    assert_eq!(err.to_string(), "required parameter given an empty value: admin-password");
    let err = resolve(&sdl, &idl(&[("DOMAIN", "")]), &Stored::default(), &CONTEXT, &mut StdRng::seed_from_u64(1))
        .unwrap_err();
    assert!(matches!(err, ResolveError::Empty(_)));
    // An optional parameter may be empty.
    let resolved = resolve(
        &sdl,
        &idl(&[("DOMAIN", "example.com"), ("OPTIONAL", "")]),
        &Stored::default(),
        &CONTEXT,
        &mut StdRng::seed_from_u64(1),
    )
    .unwrap();
    assert_eq!(resolved.get("OPTIONAL"), Some(""));
}

#[test]
fn stored_generated_objects_round_trip_and_damage_is_refused() {
    let sdl = sdl();
    let resolved =
        resolve(&sdl, &idl(&[("DOMAIN", "example.com")]), &Stored::default(), &CONTEXT, &mut StdRng::seed_from_u64(3))
            .unwrap();
    let text = serde_json::to_string(&resolved.generated).unwrap();
    assert_eq!(sdl::resolve::parse_generated(&text, "hsm-generated.json").unwrap(), resolved.generated);

    // Truncated, not JSON, wrong shape, or an emptied key: an error naming the document, never an empty map.
    let truncated = &text[..text.len() / 2];
    for (bad, fragment) in [
        (truncated, "EOF while parsing"),
        ("garbage", "expected value"),
        (r#"{"ca": {"type": "certificate", "is_ca": true}}"#, "missing field"),
        (r#"{"ca": {"type": "certificate", "is_ca": true, "certificate": "", "private_key": ""}}"#, "damaged"),
        (r#"{"admin": {"type": "password", "value": ""}}"#, "damaged"),
        (
            r#"{"ca": {"type": "certificate", "is_ca": "-----BEGIN PRIVATE KEY-----\nMIG"}}"#,
            "invalid type: string \"…\"",
        ),
    ] {
        let err = sdl::resolve::parse_generated(bad, "hsm-generated.json").unwrap_err();
        assert!(err.to_string().starts_with("hsm-generated.json:"), "{err}");
        assert!(err.message.contains(fragment), "{err}");
        assert!(!err.to_string().contains("BEGIN"), "{err}");
    }
}
