//! The broker's catalog, pure: the HSM catalog as OSB service offerings (one per service) and
//! plans (one per product version), with ids that depend only on names — a name-based UUID
//! (SHA-256 of a fixed namespace and the name, RFC 9562 version 8 layout) of the HSM service
//! id, and of the service id and product version — so they are the same across restarts,
//! catalog reloads and replicas. `maintenance_info.version` is the newest SDL version of the
//! product version; `schemas` describe the SDL's parameters as JSON schemas (draft-04, what
//! the specification names) of a provision's and an update's `parameters`. Lookups go the
//! other way: offering id → service, plan id → product version.

use ring::digest;
use sdl::catalog::{Catalog, Service, ServiceVersion};
use serde_json::{json, Map, Value};

use sdl::model::{DataType, Sdl};

use super::wire::{
    CatalogResponse, InputParameters, MaintenanceInfo, Plan, Schemas, ServiceInstanceSchema, ServiceOffering,
};

/// Prefix of every name hashed into an id, so that the ids are this broker's own.
const NAMESPACE: &str = "stratus.io/hsm-broker/v1";

/// The name-based UUID of `name` (lowercase, hyphenated).
pub fn name_uuid(name: &str) -> String {
    let hash = digest::digest(&digest::SHA256, format!("{NAMESPACE}\n{name}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash.as_ref()[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80; // version 8 (name-based, SHA-256)
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 9562 variant
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// The offering id of HSM service `service_id`.
pub fn offering_id(service_id: &str) -> String {
    name_uuid(&format!("service:{service_id}"))
}

/// The plan id of `product_version` of HSM service `service_id`.
pub fn plan_id(service_id: &str, product_version: &str) -> String {
    name_uuid(&format!("plan:{service_id}:{product_version}"))
}

/// Whether instances of `version` can be bound: its SDL has a `bindings` section (an SDL that
/// does not load is not bindable).
pub fn bindable(catalog: &Catalog, service: &Service, version: &ServiceVersion) -> bool {
    catalog.load_sdl(service, version).is_ok_and(|sdl| sdl.bindings.is_some())
}

/// The newest SDL version of each product version of `service`, oldest product version first.
pub fn plans_of(service: &Service) -> Vec<&ServiceVersion> {
    let mut newest: Vec<&ServiceVersion> = Vec::new();
    for version in &service.versions {
        match newest.last_mut() {
            Some(last) if last.product_version == version.product_version => {
                if sdl::catalog::compare_versions(&version.sdl_version, &last.sdl_version).is_gt() {
                    *last = version;
                }
            }
            _ => newest.push(version),
        }
    }
    newest
}

/// The OSB catalog of `catalog`.
pub fn catalog(catalog: &Catalog) -> CatalogResponse {
    let mut taken = std::collections::BTreeMap::new();
    for service in &catalog.services {
        *taken.entry(service.name.clone()).or_insert(0) += 1;
    }
    let services = catalog
        .services
        .iter()
        .filter(|s| !s.versions.is_empty())
        .map(|service| {
            // A name shared by services of two vendors gets the vendor as a prefix.
            let name = if taken[&service.name] > 1 {
                format!("{}-{}", service.vendor, service.name)
            } else {
                service.name.clone()
            };
            offering(catalog, service, name)
        })
        .collect();
    CatalogResponse { services }
}

fn offering(catalog: &Catalog, service: &Service, name: String) -> ServiceOffering {
    let plans: Vec<Plan> = plans_of(service).into_iter().map(|v| plan(catalog, service, v)).collect();
    let mut tags: Vec<String> = service.config.categories.iter().chain(&service.config.labels).cloned().collect();
    tags.dedup();
    let mut metadata = Map::new();
    metadata.insert("displayName".into(), json!(service.config.display_name.clone().unwrap_or(service.name.clone())));
    metadata.insert("hsmServiceId".into(), json!(service.id));
    let description = if service.config.description.trim().is_empty() {
        service.id.clone()
    } else {
        service.config.description.clone()
    };
    ServiceOffering {
        id: offering_id(&service.id),
        name,
        description,
        tags,
        bindable: plans.iter().any(|p| p.bindable),
        instances_retrievable: true,
        bindings_retrievable: plans.iter().any(|p| p.bindable),
        allow_context_updates: false,
        plan_updateable: true,
        metadata,
        plans,
    }
}

fn plan(catalog: &Catalog, service: &Service, version: &ServiceVersion) -> Plan {
    let display = service.config.display_name.clone().unwrap_or(service.name.clone());
    let mut metadata = Map::new();
    metadata.insert("productVersion".into(), Value::String(version.product_version.clone()));
    metadata.insert("sdlVersion".into(), Value::String(version.sdl_version.clone()));
    Plan {
        id: plan_id(&service.id, &version.product_version),
        name: version.product_version.clone(),
        description: version.config.description.clone().unwrap_or(format!("{display} {}", version.product_version)),
        free: true,
        bindable: bindable(catalog, service, version),
        plan_updateable: true,
        maintenance_info: MaintenanceInfo { version: version.sdl_version.clone(), description: None },
        metadata,
        schemas: catalog.load_sdl(service, version).ok().map(|sdl| schemas(&sdl)),
    }
}

/// The JSON schemas of `sdl`'s parameters: a provision may give any of them (each by its SDL
/// name; a required one without a default or a generator must be given), an update any but
/// the immutable ones; no other names (the broker refuses them). Values may also come as
/// strings (the broker carries every value as text); a secret's default is not shown.
pub fn schemas(sdl: &Sdl) -> Schemas {
    let object = |update: bool| {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for parameter in &sdl.parameters {
            if update && parameter.immutable {
                continue;
            }
            let mut property = Map::new();
            let kind = match parameter.data_type {
                None | Some(DataType::String) => "string",
                Some(DataType::Integer) => "integer",
                Some(DataType::Number) => "number",
                Some(DataType::Boolean) => "boolean",
            };
            property.insert("type".into(), if kind == "string" { json!("string") } else { json!([kind, "string"]) });
            if let Some(description) = &parameter.description {
                property.insert("description".into(), json!(description));
            }
            if let (Some(default), false) = (&parameter.default, parameter.secret) {
                property.insert("default".into(), json!(default));
            }
            if parameter.secret {
                property.insert("x-secret".into(), json!(true));
            }
            if !update && parameter.required && parameter.default.is_none() && parameter.generator.is_none() {
                required.push(parameter.name.clone());
            }
            properties.insert(parameter.name.clone(), Value::Object(property));
        }
        let mut schema = Map::new();
        schema.insert("$schema".into(), json!("http://json-schema.org/draft-04/schema#"));
        schema.insert("type".into(), json!("object"));
        schema.insert("properties".into(), Value::Object(properties));
        schema.insert("additionalProperties".into(), json!(false));
        if !required.is_empty() {
            schema.insert("required".into(), json!(required));
        }
        InputParameters { parameters: schema }
    };
    Schemas { service_instance: ServiceInstanceSchema { create: object(false), update: object(true) } }
}

/// The service whose offering id is `id`.
pub fn service_by_offering<'a>(catalog: &'a Catalog, id: &str) -> Option<&'a Service> {
    catalog.services.iter().find(|s| offering_id(&s.id) == id)
}

/// The plan (newest SDL version of a product version) of `service` whose id is `id`.
pub fn plan_by_id<'a>(service: &'a Service, id: &str) -> Option<&'a ServiceVersion> {
    plans_of(service).into_iter().find(|v| plan_id(&service.id, &v.product_version) == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn shipped() -> Catalog {
        Catalog::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog")).unwrap()
    }

    #[test]
    fn schemas_type_values_require_what_has_no_default_and_hide_secret_defaults() {
        let catalog = shipped();
        let mysql = catalog.service("stackato.hpe.mysql").unwrap();
        let mut sdl = catalog.load_sdl(mysql, &mysql.versions[0]).unwrap();
        sdl.parameters = serde_json::from_value(json!([
            {"name": "PORT", "data_type": "integer", "default": "6379", "description": "The port."},
            {"name": "ADMIN_USER", "required": true},
            {"name": "token", "secret": true, "default": "s3cr3t"},
            {"name": "FLAG", "data_type": "boolean", "immutable": true}
        ]))
        .unwrap();
        let schemas = schemas(&sdl);
        let create = &schemas.service_instance.create.parameters;
        assert_eq!(create["properties"]["PORT"]["type"], json!(["integer", "string"]));
        assert_eq!(create["properties"]["PORT"]["default"], "6379");
        assert_eq!(create["properties"]["PORT"]["description"], "The port.");
        assert_eq!(create["properties"]["FLAG"]["type"], json!(["boolean", "string"]));
        assert_eq!(create["required"], json!(["ADMIN_USER"]));
        assert!(!serde_json::to_string(create).unwrap().contains("s3cr3t"), "a secret default is shown");
        let update = &schemas.service_instance.update.parameters;
        assert!(update["properties"].get("FLAG").is_none(), "immutable");
        assert!(update.get("required").is_none());
    }

    #[test]
    fn ids_depend_on_names_only_and_are_uuids() {
        let a = offering_id("stackato.hpe.mysql");
        assert_eq!(a, offering_id("stackato.hpe.mysql"));
        assert_ne!(a, offering_id("stackato.hpe.redis"));
        assert_ne!(plan_id("stackato.hpe.mysql", "8.0"), plan_id("stackato.hpe.mysql", "8.4"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8", "{a}");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
        assert!(a.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
    }

    #[test]
    fn every_catalog_service_is_an_offering_with_a_plan_per_product_version() {
        let catalog = shipped();
        let osb = super::catalog(&catalog);
        assert_eq!(osb.services.len(), catalog.services.len());
        let mut names: Vec<&str> = osb.services.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), osb.services.len(), "names are unique");
        // Loaded again (a reload): the same document.
        assert_eq!(osb, super::catalog(&shipped()));
        let mysql = catalog.service("stackato.hpe.mysql").unwrap();
        let offering = osb.services.iter().find(|s| s.id == offering_id(&mysql.id)).unwrap();
        assert_eq!(offering.plans.len(), mysql.product_versions().len());
        for plan in &offering.plans {
            let version = plan_by_id(mysql, &plan.id).unwrap();
            assert_eq!(plan.name, version.product_version);
            assert_eq!(plan.maintenance_info.version, mysql.version(Some(&plan.name), None).unwrap().sdl_version);
            assert!(!plan.description.is_empty());
        }
        assert!(service_by_offering(&catalog, &offering.id).is_some_and(|s| s.id == mysql.id));
        assert!(service_by_offering(&catalog, "nope").is_none());
        assert!(offering.bindable && offering.bindings_retrievable, "mysql's SDL has bindings");
        assert!(offering.plans.iter().all(|p| p.bindable));
        // The plan's schemas are its SDL's parameters.
        let schemas = offering.plans[0].schemas.as_ref().expect("mysql's plan has schemas");
        let create = &schemas.service_instance.create.parameters;
        let update = &schemas.service_instance.update.parameters;
        assert_eq!(create["$schema"], "http://json-schema.org/draft-04/schema#");
        assert_eq!((create["type"].as_str(), create["additionalProperties"].as_bool()), (Some("object"), Some(false)));
        let created: Vec<&String> = create["properties"].as_object().unwrap().keys().collect();
        assert_eq!(created, ["MYSQL_DATABASE", "MYSQL_ROOT_PASSWORD_FILE", "root-password"]);
        assert_eq!(create["properties"]["MYSQL_DATABASE"]["default"], "hsm");
        let secret = &create["properties"]["root-password"];
        assert_eq!((secret["x-secret"].as_bool(), secret.get("default")), (Some(true), None));
        // Required, but generated: a provision need not give it.
        assert!(create.get("required").is_none(), "{create:?}");
        // An update cannot change the immutable ones.
        let updated: Vec<&String> = update["properties"].as_object().unwrap().keys().collect();
        assert_eq!(updated, ["root-password"]);
        let hcp = osb.services.iter().find(|s| s.metadata["hsmServiceId"] == "stackato.hpe.hcp").unwrap();
        assert!(!hcp.bindable && !hcp.bindings_retrievable, "hcp's SDL has no bindings");
    }
}
