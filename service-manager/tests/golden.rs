//! Every version of every shipped catalog service is planned with its defaults (plus the
//! required values in `tests/golden/<service>-<version>.idl.json`), compared with the
//! committed golden YAML, and every object is checked against the official Kubernetes schemas
//! with `kubernetes-validate --strict`.
//!
//! `UPDATE_GOLDEN=1 cargo test -p service-manager --test golden` rewrites the golden files;
//! review the diff before committing.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::SeedableRng;
use sdl::catalog::Catalog;
use sdl::parse::read_document;
use sdl::resolve::Stored;
use sdl::Idl;
use service_manager::output::plan_yaml;
use service_manager::request::{prepare, InstanceRequest};
use service_manager::{ClusterProfile, Plan};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Plans every version of every catalog service; returns (golden file stem, plan).
fn plan_catalog() -> Vec<(String, Plan)> {
    let catalog = Catalog::load(&workspace().join("catalog")).unwrap();
    let profile = ClusterProfile::default();
    let mut plans = Vec::new();
    for service in &catalog.services {
        for version in &service.versions {
            let stem = format!("{}-{}", service.name, version.product_version);
            let fixture = golden_dir().join(format!("{stem}.idl.json"));
            let idl: Idl = if fixture.exists() { read_document(&fixture).unwrap() } else { Idl::default() };
            let request = InstanceRequest {
                service_id: service.id.clone(),
                product_version: Some(version.product_version.clone()),
                sdl_version: Some(version.sdl_version.clone()),
                idl,
                idl_source: fixture.display().to_string(),
                instance_id: Some(service.name.clone()),
                ..InstanceRequest::default()
            };
            let prepared = prepare(&catalog, &request, &Stored::default(), &profile, &mut StdRng::seed_from_u64(42))
                .unwrap_or_else(|e| panic!("{stem}: {e}"));
            plans.push((stem, prepared.plan(&profile).unwrap()));
        }
    }
    plans
}

#[test]
fn rendered_catalog_matches_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatched = Vec::new();
    let plans = plan_catalog();
    assert!(plans.len() >= 13, "every shipped service version is planned");
    for (stem, plan) in &plans {
        let rendered = plan_yaml(plan);
        let path = golden_dir().join(format!("{stem}.yaml"));
        if update {
            std::fs::write(&path, &rendered).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if expected != rendered {
            let line = expected.lines().zip(rendered.lines()).position(|(a, b)| a != b).map_or(0, |i| i + 1);
            mismatched.push(format!("{} (first difference near line {line})", path.display()));
        }
    }
    assert!(
        mismatched.is_empty(),
        "rendered output differs from golden files; review and run with UPDATE_GOLDEN=1:\n{}",
        mismatched.join("\n")
    );
}

#[test]
fn planning_is_deterministic() {
    let first: Vec<String> = plan_catalog().iter().map(|(_, p)| plan_yaml(p)).collect();
    let second: Vec<String> = plan_catalog().iter().map(|(_, p)| plan_yaml(p)).collect();
    assert_eq!(first, second);
}

#[test]
fn every_rendered_object_passes_kubernetes_validate_strict() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (stem, plan) in plan_catalog() {
        // The objects as applied: real Secret data, not the redacted printout.
        for (i, object) in plan.objects().enumerate() {
            let path = dir.path().join(format!("{stem}-{i:03}-{}-{}.json", object.kind(), object.name()));
            std::fs::write(&path, serde_json::to_vec(object).unwrap()).unwrap();
            files.push(path);
        }
    }
    let passed =
        stratus_tests::validate::strict(&files).unwrap_or_else(|e| panic!("kubernetes-validate complained:\n{e}"));
    assert_eq!(passed, files.len(), "every object was validated");
}
