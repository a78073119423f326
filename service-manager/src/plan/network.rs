//! Services and the instance's NetworkPolicy.
//!
//! Per component: `<component>-int` (ClusterIP) for its internal ports, `<component>`
//! (LoadBalancer) for its public ports, `<component>-headless` for per-index DNS of a
//! StatefulSet (`<component>-0.<component>-headless`), or `<component>` (ExternalName) for a
//! connector's external endpoint.

use k8s_openapi::api::core::v1::{Service, ServicePort as KubeServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sdl::model::{Component, ServicePort};
use sdl::template;
use std::collections::BTreeMap;

use super::{Context, PlanError, NETWORK_POLICY_NAME};
use crate::labels;

/// Name of the headless Service of a stateful component.
pub fn headless_name(component: &str) -> String {
    format!("{component}-headless")
}

/// Name of the internal Service of a component.
pub fn internal_name(component: &str) -> String {
    format!("{component}-int")
}

fn kube_ports<'a>(ports: impl Iterator<Item = &'a ServicePort>) -> Vec<KubeServicePort> {
    ports
        .map(|p| KubeServicePort {
            name: Some(p.name.clone()),
            port: p.source_port as i32,
            target_port: Some(IntOrString::Int(p.target_port as i32)),
            protocol: Some(p.protocol.as_str().into()),
            ..KubeServicePort::default()
        })
        .collect()
}

/// The Services of one component.
pub fn services(ctx: &Context<'_>, c: &Component, stateful: bool) -> Result<Vec<Service>, PlanError> {
    let labels = ctx.component_labels(&c.name);
    let service = |name: String, spec: ServiceSpec| Service {
        metadata: ctx.meta(&name, labels.clone()),
        spec: Some(spec),
        ..Service::default()
    };
    if let Some(external) = &c.external_name {
        let resolved = ctx.input.resolved;
        let platform =
            [("HCP_INSTANCE_ID", ctx.namespace), ("HCP_SERVICE_DOMAIN_SUFFIX", ctx.service_domain_suffix.as_str())];
        let name = template::substitute(external, |n| {
            platform.iter().find(|(k, _)| *k == n).map(|(_, v)| *v).or_else(|| resolved.get(n))
        })
        .map_err(|missing| PlanError::ExternalNameValue { component: c.name.clone(), missing })?;
        // The API server checks the name only once the namespace and parameters exist.
        if sdl::names::dns_subdomain(name.strip_suffix('.').unwrap_or(&name)).is_some() {
            return Err(PlanError::ExternalName {
                component: c.name.clone(),
                template: external.clone(),
                value: name.escape_debug().to_string(),
            });
        }
        let ports = kube_ports(c.service_ports.iter());
        return Ok(vec![service(
            c.name.clone(),
            ServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some(name),
                ports: (!ports.is_empty()).then_some(ports),
                ..ServiceSpec::default()
            },
        )]);
    }

    let selector = Some(ctx.selector_labels(&c.name));
    let mut out = Vec::new();
    let internal = kube_ports(c.service_ports.iter().filter(|p| !p.public));
    if !internal.is_empty() {
        out.push(service(
            internal_name(&c.name),
            ServiceSpec {
                type_: Some("ClusterIP".into()),
                selector: selector.clone(),
                ports: Some(internal),
                ..ServiceSpec::default()
            },
        ));
    }
    let public = kube_ports(c.service_ports.iter().filter(|p| p.public));
    if !public.is_empty() {
        out.push(service(
            c.name.clone(),
            ServiceSpec {
                type_: Some("LoadBalancer".into()),
                selector: selector.clone(),
                ports: Some(public),
                ..ServiceSpec::default()
            },
        ));
    }
    if stateful {
        let all = kube_ports(c.service_ports.iter());
        out.push(service(
            headless_name(&c.name),
            ServiceSpec {
                cluster_ip: Some("None".into()),
                selector,
                ports: (!all.is_empty()).then_some(all),
                publish_not_ready_addresses: Some(true),
                ..ServiceSpec::default()
            },
        ));
    }
    Ok(out)
}

/// Isolates the instance: its pods accept traffic from each other, from namespaces labelled
/// `hsm.stratus.io/trusted=true` (the platform), and on public ports from anywhere.
pub fn network_policy(ctx: &Context<'_>) -> NetworkPolicy {
    let everything = LabelSelector::default();
    let mut ingress = vec![
        NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                pod_selector: Some(everything.clone()),
                ..NetworkPolicyPeer::default()
            }]),
            ports: None,
        },
        NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(labels::TRUSTED.to_string(), "true".to_string())])),
                    ..LabelSelector::default()
                }),
                ..NetworkPolicyPeer::default()
            }]),
            ports: None,
        },
    ];
    let mut public_ports: Vec<(u32, &str)> = ctx
        .input
        .sdl
        .components
        .iter()
        .flat_map(|c| c.service_ports.iter().filter(|p| p.public))
        .map(|p| (p.target_port, p.protocol.as_str()))
        .collect();
    public_ports.sort();
    public_ports.dedup();
    if !public_ports.is_empty() {
        ingress.push(NetworkPolicyIngressRule {
            from: None,
            ports: Some(
                public_ports
                    .into_iter()
                    .map(|(port, protocol)| NetworkPolicyPort {
                        port: Some(IntOrString::Int(port as i32)),
                        protocol: Some(protocol.into()),
                        end_port: None,
                    })
                    .collect(),
            ),
        });
    }
    NetworkPolicy {
        metadata: ctx.meta(NETWORK_POLICY_NAME, ctx.common_labels()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(everything),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(ingress),
            ..NetworkPolicySpec::default()
        }),
    }
}
