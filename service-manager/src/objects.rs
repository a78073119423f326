//! The typed object set: every kind of Kubernetes object Stratus creates, for service
//! instances (the planner) and for the platform (the installer), as one enum. Pure data: what
//! an object is, what it is called and which API serves it; applying and waiting live in
//! [`crate::cluster`] and [`crate::wait`].

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Metadata;
use kube::core::ApiResource;
use serde::Serialize;

macro_rules! object_kinds {
    ($($variant:ident($type:ty)),* $(,)?) => {
        /// One typed Kubernetes object.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        #[allow(clippy::large_enum_variant)]
        pub enum KubeObject {
            $(
                #[doc = concat!("A ", stringify!($variant), ".")]
                $variant($type),
            )*
        }

        /// The kinds of [`KubeObject`], compared by type rather than by name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
        pub enum Kind {
            $(
                #[doc = concat!("`", stringify!($variant), "`.")]
                $variant,
            )*
        }

        impl Kind {
            /// The Kubernetes kind, e.g. `Deployment`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$variant => <$type as k8s_openapi::Resource>::KIND,)*
                }
            }

            /// The API that serves this kind.
            pub fn api_resource(self) -> ApiResource {
                match self {
                    $(Kind::$variant => ApiResource::erase::<$type>(&()),)*
                }
            }

            /// Whether objects of this kind live in a namespace.
            pub fn namespaced(self) -> bool {
                match self {
                    $(Kind::$variant => std::any::TypeId::of::<<$type as k8s_openapi::Resource>::Scope>()
                        == std::any::TypeId::of::<k8s_openapi::NamespaceResourceScope>(),)*
                }
            }
        }

        impl KubeObject {
            /// The object's kind.
            pub fn kind(&self) -> Kind {
                match self {
                    $(KubeObject::$variant(_) => Kind::$variant,)*
                }
            }

            /// The object's metadata.
            pub fn metadata(&self) -> &ObjectMeta {
                match self {
                    $(KubeObject::$variant(o) => o.metadata(),)*
                }
            }

            /// The object's metadata, to change.
            pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
                match self {
                    $(KubeObject::$variant(o) => o.metadata_mut(),)*
                }
            }
        }

        $(
            impl From<$type> for KubeObject {
                fn from(object: $type) -> KubeObject {
                    KubeObject::$variant(object)
                }
            }
        )*
    };
}

object_kinds! {
    Namespace(Namespace),
    ServiceAccount(ServiceAccount),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Role(Role),
    RoleBinding(RoleBinding),
    Secret(Secret),
    ConfigMap(ConfigMap),
    NetworkPolicy(NetworkPolicy),
    CsiDriver(CSIDriver),
    StorageClass(StorageClass),
    PersistentVolumeClaim(PersistentVolumeClaim),
    Service(Service),
    Job(Job),
    DaemonSet(DaemonSet),
    Deployment(Deployment),
    StatefulSet(StatefulSet),
}

impl Kind {
    /// Kinds whose readiness is waited for: workloads and jobs.
    pub fn is_awaited(self) -> bool {
        matches!(self, Kind::Deployment | Kind::StatefulSet | Kind::DaemonSet | Kind::Job)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl KubeObject {
    /// The object's name.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// The object's namespace (`None` for cluster-scoped objects).
    pub fn namespace(&self) -> Option<&str> {
        self.metadata().namespace.as_deref()
    }

    /// Kind and `namespace/name` (or `name`), e.g. `DaemonSet kube-flannel/kube-flannel-ds`.
    pub fn describe(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {ns}/{}", self.kind(), self.name()),
            None => format!("{} {}", self.kind(), self.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_know_their_names_and_scopes() {
        assert_eq!(Kind::StatefulSet.as_str(), "StatefulSet");
        assert_eq!(Kind::CsiDriver.as_str(), "CSIDriver");
        assert!(Kind::Job.namespaced());
        assert!(!Kind::Namespace.namespaced());
        assert!(!Kind::StorageClass.namespaced());
        assert!(!Kind::ClusterRole.namespaced());
        assert_eq!(Kind::DaemonSet.api_resource().group, "apps");
        let object = KubeObject::from(ConfigMap {
            metadata: ObjectMeta { name: Some("p".into()), namespace: Some("db".into()), ..ObjectMeta::default() },
            ..ConfigMap::default()
        });
        assert_eq!((object.kind(), object.describe()), (Kind::ConfigMap, "ConfigMap db/p".to_string()));
    }
}
