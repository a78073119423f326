//! A component's own identity: the ServiceAccount its pods run as and the RBAC its SDL's
//! `service_account` asks for — a Role and RoleBinding in the instance's namespace for
//! `rules`, a ClusterRole and ClusterRoleBinding named [`cluster_name`] for `cluster_rules`.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sdl::model::{Component, PolicyRule as SdlRule};

use super::Context;
use crate::objects::KubeObject;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Name of the ClusterRole and ClusterRoleBinding of `component` of instance `instance`:
/// `hsm:<instance>:<component>` (`:` is in neither, so two instances never share one).
pub fn cluster_name(instance: &str, component: &str) -> String {
    format!("hsm:{instance}:{component}")
}

/// The Kubernetes form of an SDL rule.
pub fn policy_rule(rule: &SdlRule) -> PolicyRule {
    PolicyRule {
        api_groups: Some(rule.api_groups.clone()),
        resources: Some(rule.resources.clone()),
        verbs: rule.verbs.clone(),
        resource_names: (!rule.resource_names.is_empty()).then(|| rule.resource_names.clone()),
        non_resource_urls: None,
    }
}

/// The ServiceAccount of `c` and its RBAC objects; nothing when `c` has no `service_account`.
pub(crate) fn objects(ctx: &Context<'_>, c: &Component) -> Vec<KubeObject> {
    let Some(account) = &c.service_account else { return Vec::new() };
    let labels = ctx.component_labels(&c.name);
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: c.name.clone(),
        namespace: Some(ctx.namespace.to_string()),
        api_group: None,
    };
    let role_ref =
        |kind: &str, name: &str| RoleRef { api_group: RBAC_GROUP.into(), kind: kind.into(), name: name.into() };
    let mut out = vec![KubeObject::ServiceAccount(ServiceAccount {
        metadata: ctx.meta(&c.name, labels.clone()),
        ..ServiceAccount::default()
    })];
    if !account.rules.is_empty() {
        out.push(KubeObject::Role(Role {
            metadata: ctx.meta(&c.name, labels.clone()),
            rules: Some(account.rules.iter().map(policy_rule).collect()),
        }));
        out.push(KubeObject::RoleBinding(RoleBinding {
            metadata: ctx.meta(&c.name, labels.clone()),
            role_ref: role_ref("Role", &c.name),
            subjects: Some(vec![subject.clone()]),
        }));
    }
    if !account.cluster_rules.is_empty() {
        let name = cluster_name(ctx.namespace, &c.name);
        let meta = ObjectMeta { name: Some(name.clone()), labels: Some(labels), ..ObjectMeta::default() };
        out.push(KubeObject::ClusterRole(ClusterRole {
            metadata: meta.clone(),
            rules: Some(account.cluster_rules.iter().map(policy_rule).collect()),
            aggregation_rule: None,
        }));
        out.push(KubeObject::ClusterRoleBinding(ClusterRoleBinding {
            metadata: meta,
            role_ref: role_ref("ClusterRole", &name),
            subjects: Some(vec![subject]),
        }));
    }
    out
}
