//! The SDL in force, stored with the instance: the ConfigMap [`NAME`] in the instance's
//! namespace holds, under [`KEY`], the SDL (JSON) the instance was created or last upgraded
//! with. Every action that plans an existing instance at its own version plans from it, not
//! from the catalog, so editing a catalog's SDL in place never changes a running instance;
//! an upgrade replaces it with the new version's SDL. An instance without it (made before it
//! was kept), or with one that cannot be read, is planned from the catalog — and gets it.
//!
//! [`config_map`] and [`from_config_map`] are pure; [`read`] is the cluster edge.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use sdl::Sdl;

use super::{InstanceError, Record};
use crate::cluster::Cluster;
use crate::objects::KubeObject;
use crate::plan::{Plan, CONFIG_MAP_NAME};

/// The ConfigMap holding the SDL in force.
pub const NAME: &str = "hsm-sdl";
/// Its key holding the SDL as JSON.
pub const KEY: &str = "sdl.json";
/// The largest SDL kept (a ConfigMap holds at most 1 MiB, metadata included). The catalog's
/// largest, `hcf`, is about 34 kB.
pub const MAX_BYTES: usize = 900 * 1024;

/// The ConfigMap that stores `sdl` for the instance `plan` is of (labelled like the plan's
/// parameters, so the converger watches it); `None` when the SDL is larger than
/// [`MAX_BYTES`] (the instance is then planned from the catalog, as before).
pub fn config_map(plan: &Plan, sdl: &Sdl) -> Option<KubeObject> {
    let text = serde_json::to_string(sdl).expect("SDLs serialise");
    if text.len() > MAX_BYTES {
        return None;
    }
    let labels = plan.objects().find_map(|o| match o {
        KubeObject::ConfigMap(c) if c.metadata.name.as_deref() == Some(CONFIG_MAP_NAME) => c.metadata.labels.clone(),
        _ => None,
    });
    Some(KubeObject::ConfigMap(ConfigMap {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(NAME.to_string()),
            namespace: Some(plan.instance_id.clone()),
            labels,
            ..Default::default()
        },
        data: Some(BTreeMap::from([(KEY.to_string(), text)])),
        ..ConfigMap::default()
    }))
}

/// The SDL `config_map` stores for `product_version`/`sdl_version`: `Ok(None)` when it holds
/// none or that of another version (an upgrade that stopped half-way), `Err` saying why when
/// it cannot be read or is not a valid SDL.
pub fn from_config_map(
    config_map: &ConfigMap,
    product_version: &str,
    sdl_version: &str,
) -> Result<Option<Sdl>, String> {
    let Some(text) = config_map.data.as_ref().and_then(|d| d.get(KEY)) else { return Ok(None) };
    let sdl: Sdl = sdl::parse::parse_document(text, sdl::parse::Syntax::Json, &format!("ConfigMap {NAME}"))
        .map_err(|e| e.to_string())?;
    if (sdl.product_version.as_str(), sdl.sdl_version.as_str()) != (product_version, sdl_version) {
        return Ok(None);
    }
    let problems = sdl::validate::validate_sdl(&sdl);
    if let Some(problem) = problems.first() {
        return Err(format!("not a valid SDL: {problem}"));
    }
    Ok(Some(sdl))
}

/// The SDL in force for the instance `record` describes, if it is stored and readable (one
/// that cannot be read is logged and not used: the catalog's is, and replaces it).
pub async fn read(cluster: &Cluster, record: &Record) -> Result<Option<Sdl>, InstanceError> {
    let Some(config_map) = cluster.get::<ConfigMap>(&record.instance_id, NAME).await? else { return Ok(None) };
    match from_config_map(&config_map, &record.product_version, &record.sdl_version) {
        Ok(sdl) => Ok(sdl),
        Err(error) => {
            tracing::warn!(instance = %record.instance_id, %error, "the stored SDL cannot be read; planning from the catalog");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdl(product_version: &str) -> Sdl {
        let text = format!(
            r#"{{"name": "app", "vendor": "acme", "product_version": "{product_version}", "sdl_version": "1.0.0",
            "components": [{{"name": "web", "image": "docker.io/acme/web:1.0", "min_RAM_mb": 64,
                "parameters": ["ALPHA"],
                "service_ports": [{{"name": "http", "source_port": 80, "target_port": 8080}}]}}],
            "parameters": [{{"name": "ALPHA", "default": "0", "immutable": true}}]}}"#
        );
        sdl::parse::parse_document(&text, sdl::parse::Syntax::Json, "test").unwrap()
    }

    fn plan() -> Plan {
        Plan { instance_id: "app".into(), service_id: "test.acme.app".into(), steps: Vec::new() }
    }

    fn stored(sdl: &Sdl) -> ConfigMap {
        match config_map(&plan(), sdl).unwrap() {
            KubeObject::ConfigMap(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_stored_sdl_reads_back_as_it_was_for_its_version_only() {
        let one = sdl("1");
        let config_map = stored(&one);
        assert_eq!(config_map.metadata.name.as_deref(), Some(NAME));
        assert_eq!(config_map.metadata.namespace.as_deref(), Some("app"));
        assert_eq!(from_config_map(&config_map, "1", "1.0.0"), Ok(Some(one)));
        // The record says another version: that of an upgrade half done. Not used.
        assert_eq!(from_config_map(&config_map, "2", "1.0.0"), Ok(None));
        assert_eq!(from_config_map(&ConfigMap::default(), "1", "1.0.0"), Ok(None));
    }

    #[test]
    fn a_stored_sdl_that_cannot_be_read_says_why() {
        let mut broken = stored(&sdl("1"));
        broken.data.as_mut().unwrap().insert(KEY.into(), "{\"name\": ".into());
        assert!(from_config_map(&broken, "1", "1.0.0").unwrap_err().contains("ConfigMap hsm-sdl"));
        let mut invalid = sdl("1");
        invalid.components.clear();
        let error = from_config_map(&stored(&invalid), "1", "1.0.0").unwrap_err();
        assert!(error.starts_with("not a valid SDL: "), "{error}");
    }

    #[test]
    fn an_sdl_too_large_for_a_config_map_is_not_stored() {
        let mut large = sdl("1");
        large.description = Some("x".repeat(MAX_BYTES));
        assert!(config_map(&plan(), &large).is_none());
    }
}
