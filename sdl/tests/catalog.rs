//! Catalog folders and names become parts of service ids and label values: they are checked
//! when the catalog is read.

use std::path::Path;

use sdl::catalog::{Catalog, CatalogError};

const SDL: &str = r#"{"name":"svc","vendor":"acme","sdl_version":"1.0.0","product_version":"1.0",
"components":[{"name":"a","image":"docker.io/acme/svc:1.0","min_RAM_mb":64}]}"#;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn catalog(name: &str, vendor: &str, service: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("config.json"), &format!("{{\"name\": {}}}", serde_json::to_string(name).unwrap()));
    let service_dir = dir.path().join("services").join(vendor).join(service);
    write(&service_dir.join("config.json"), r#"{"description": "d"}"#);
    write(&service_dir.join("1.0/1.0.0/sdl/sdl.json"), SDL);
    dir
}

#[test]
fn a_well_named_catalog_loads() {
    let dir = catalog("stackato", "acme", "svc");
    let catalog = Catalog::load(dir.path()).unwrap();
    assert_eq!(catalog.services[0].id, "stackato.acme.svc");
    assert!(catalog.lint().is_empty());
}

#[test]
fn the_repository_catalog_still_loads_and_lints_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog");
    let catalog = Catalog::load(&root).unwrap();
    let errors: Vec<String> = catalog.lint().iter().map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn a_catalog_name_must_be_a_dns_label() {
    for name in ["../../x", "Stackato", "a.b", "x\u{1b}[2J", ""] {
        let dir = catalog(name, "acme", "svc");
        let err = Catalog::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("name: ") && err.contains("first part of every service id"), "{err}");
        assert!(!err.chars().any(|c| c.is_control() && c != '\n'), "{err:?}");
    }
}

#[test]
fn vendor_and_service_folders_must_be_dns_labels() {
    for (vendor, service) in [("Acme", "svc"), ("acme", "my_svc"), ("acme", "svc\u{7}")] {
        let dir = catalog("stackato", vendor, service);
        let catalog = Catalog::load(dir.path()).unwrap();
        assert!(catalog.services.is_empty());
        let err = &catalog.broken[0].error;
        assert!(matches!(err, CatalogError::Layout { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("folder name") && text.contains("is not a DNS label"), "{text}");
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }
}

#[test]
fn a_service_id_must_fit_in_a_label_value() {
    let dir = catalog(&"c".repeat(30), &"v".repeat(20), &"s".repeat(20));
    let catalog = Catalog::load(dir.path()).unwrap();
    let err = catalog.broken[0].error.to_string();
    assert!(err.contains("the service id") && err.contains("not usable as a label value"), "{err}");
}

#[test]
fn unknown_service_ids_are_quoted_safely() {
    let dir = catalog("stackato", "acme", "svc");
    let catalog = Catalog::load(dir.path()).unwrap();
    let err = catalog.service("\u{1b}[31mx").unwrap_err().to_string();
    assert!(err.starts_with("unknown service \"\\u{1b}[31mx\""), "{err}");
}

#[test]
fn one_broken_service_leaves_the_others_usable_and_is_named() {
    let dir = catalog("stackato", "acme", "svc");
    let broken = dir.path().join("services/acme/broken");
    write(&broken.join("config.json"), "{ not json");
    write(&broken.join("1.0/1.0.0/sdl/sdl.json"), SDL);
    let catalog = Catalog::load(dir.path()).unwrap();
    assert_eq!(catalog.services.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["stackato.acme.svc"]);
    assert_eq!(catalog.broken.len(), 1);
    assert_eq!(catalog.broken[0].id, "stackato.acme.broken");
    assert!(catalog.service("stackato.acme.svc").is_ok());
    let err = catalog.service("stackato.acme.broken").unwrap_err().to_string();
    assert!(err.starts_with("service \"stackato.acme.broken\" cannot be read: "), "{err}");
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn files_the_layout_has_no_place_for_are_listed() {
    let dir = catalog("stackato", "acme", "svc");
    // An SDL one folder off, and one beside the vendors.
    write(&dir.path().join("services/acme/svc/1.0/1.0.0/sdl.json"), SDL);
    write(&dir.path().join("services/sdl.json"), SDL);
    write(&dir.path().join("services/acme/svc/README.md"), "docs");
    let catalog = Catalog::load(dir.path()).unwrap();
    let strays: Vec<String> =
        catalog.strays.iter().map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string()).collect();
    assert_eq!(strays, ["services/acme/svc/1.0/1.0.0/sdl.json", "services/sdl.json"]);
}
