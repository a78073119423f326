//! Upgrades and reconfigurations as spec changes: the pure decisions of the converger. Is the
//! spec asking for another version than the one the instance runs (its record), or for
//! other parameter values than it has? Then the reconcile is `hsm upgrade-instance` /
//! `configure-instance` ([`crate::actions::change`]), else `create-instance`. And when the
//! change is refused, which reason and what to do.

use std::collections::BTreeMap;

use sdl::catalog::CatalogError;
use sdl::resolve::ResolveError;

use crate::error::HsmError;
use crate::instance::InstanceError;
use crate::resource::InstanceSpec;

/// The version `spec` asks an instance running `product_version`/`sdl_version` to move to
/// (an SDL version of `None`: the newest of that product version), or `None` when it asks for
/// what runs. An absent product version keeps the running one (the first creation fixed it),
/// and so does an absent SDL version at the running product version.
pub fn target_version(
    product_version: &str,
    sdl_version: &str,
    spec: &InstanceSpec,
) -> Option<(String, Option<String>)> {
    let asked_product = spec.product_version.as_deref().unwrap_or(product_version);
    let asked_sdl = spec.sdl_version.as_deref();
    if asked_product == product_version && asked_sdl.is_none_or(|s| s == sdl_version) {
        return None;
    }
    Some((asked_product.to_string(), asked_sdl.map(str::to_string)))
}

/// The parameters whose declared value (`declared`: inline and secret values of the spec)
/// differs from the value the instance has (`previous`: every value it was last planned with,
/// defaults included). A parameter left out of the spec keeps its value: it is no change.
pub fn changed_parameters(declared: &BTreeMap<String, String>, previous: &BTreeMap<String, String>) -> Vec<String> {
    declared.iter().filter(|(name, value)| previous.get(*name) != Some(*value)).map(|(name, _)| name.clone()).collect()
}

/// The reason of the `Failed` state for a refused change, `None` for an error that is not a
/// refusal (retried).
pub fn refusal_reason(error: &InstanceError) -> Option<&'static str> {
    match error {
        InstanceError::Hsm(HsmError::UpgradeRefused { .. }) => Some("UpgradeRefused"),
        InstanceError::Hsm(HsmError::Catalog(CatalogError::UnknownVersion { .. })) => Some("UnknownVersion"),
        InstanceError::Hsm(HsmError::Resolve(ResolveError::Immutable(_))) => Some("ImmutableParameter"),
        _ => None,
    }
}

/// What the condition of a refused change says: why (`error`), that the instance still runs
/// `running` untouched, and what to do given the `available` upgrades.
pub fn refusal_message(reason: &str, error: &str, running: &str, available: &[String]) -> String {
    let product_version = running.split_once('/').map(|(pv, _)| pv).unwrap_or(running);
    let todo = match reason {
        "ImmutableParameter" => {
            "set the parameter back to its value (hsm get-instance shows it); changing it needs a new instance"
                .to_string()
        }
        _ if available.is_empty() => {
            format!("set spec.productVersion back to \"{product_version}\": the catalog allows no upgrade from it")
        }
        _ => format!(
            "set spec.productVersion/sdlVersion to one of the available upgrades ({}) or back to \"{product_version}\"",
            available.join(", ")
        ),
    };
    format!("{error}; the instance still runs {running}, unchanged; {todo}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(product_version: Option<&str>, sdl_version: Option<&str>) -> InstanceSpec {
        InstanceSpec {
            service_id: "test.acme.app".into(),
            product_version: product_version.map(str::to_string),
            sdl_version: sdl_version.map(str::to_string),
            ..InstanceSpec::default()
        }
    }

    #[test]
    fn a_version_change_is_asked_only_by_a_version_other_than_what_runs() {
        assert_eq!(target_version("1", "1.0.0", &spec(None, None)), None);
        assert_eq!(target_version("1", "1.0.0", &spec(Some("1"), None)), None);
        assert_eq!(target_version("1", "1.0.0", &spec(Some("1"), Some("1.0.0"))), None);
        assert_eq!(target_version("1", "1.0.0", &spec(Some("2"), None)), Some(("2".into(), None)));
        assert_eq!(
            target_version("1", "1.0.0", &spec(Some("1"), Some("1.1.0"))),
            Some(("1".into(), Some("1.1.0".into())))
        );
        // Only an SDL version: of the running product version.
        assert_eq!(target_version("1", "1.0.0", &spec(None, Some("1.1.0"))), Some(("1".into(), Some("1.1.0".into()))));
    }

    #[test]
    fn changed_parameters_are_those_declared_with_another_value() {
        let previous = BTreeMap::from([("ALPHA".to_string(), "0".to_string()), ("BETA".to_string(), "1".to_string())]);
        let declared = BTreeMap::from([("ALPHA".to_string(), "0".to_string())]);
        assert!(changed_parameters(&declared, &previous).is_empty(), "same value, BETA left out");
        let declared = BTreeMap::from([("ALPHA".to_string(), "2".to_string()), ("GAMMA".to_string(), "x".to_string())]);
        assert_eq!(changed_parameters(&declared, &previous), ["ALPHA", "GAMMA"]);
    }

    #[test]
    fn a_refusal_says_what_still_runs_and_what_to_do() {
        let refused: InstanceError = HsmError::UpgradeRefused {
            service: "test.acme.app".into(),
            to: "3/1.0.0".into(),
            from: "1/1.0.0".into(),
            allowed: vec!["2".into()],
        }
        .into();
        assert_eq!(refusal_reason(&refused), Some("UpgradeRefused"));
        let message = refusal_message("UpgradeRefused", &refused.to_string(), "1/1.0.0", &["2/1.0.0".into()]);
        assert_eq!(
            message,
            "test.acme.app 3/1.0.0 cannot be reached from 1/1.0.0: it upgrades from 2; the instance still runs \
             1/1.0.0, unchanged; set spec.productVersion/sdlVersion to one of the available upgrades (2/1.0.0) or \
             back to \"1\""
        );
        let immutable: InstanceError = HsmError::from(ResolveError::Immutable(vec!["DOMAIN".into()])).into();
        assert_eq!(refusal_reason(&immutable), Some("ImmutableParameter"));
        assert!(refusal_message("ImmutableParameter", &immutable.to_string(), "1/1.0.0", &[])
            .starts_with("immutable parameter cannot change: DOMAIN; the instance still runs 1/1.0.0, unchanged; "));
        assert_eq!(refusal_reason(&InstanceError::NotFound("x".into())), None);
    }
}
