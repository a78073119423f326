//! Label and annotation keys the service manager puts on the objects it creates.

/// `app.kubernetes.io/managed-by`; value [`MANAGER`].
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The manager's name, also the server-side-apply field manager.
pub const MANAGER: &str = "hsm";
/// `app.kubernetes.io/name`: the service name.
pub const NAME: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/instance`: the instance id.
pub const INSTANCE: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/version`: the product version.
pub const VERSION: &str = "app.kubernetes.io/version";
/// `app.kubernetes.io/component`: the component or job name.
pub const COMPONENT: &str = "app.kubernetes.io/component";
/// The service id, e.g. `stackato.hpe.mysql`.
pub const SERVICE_ID: &str = "hsm.stratus.io/service-id";
/// The SDL version.
pub const SDL_VERSION: &str = "hsm.stratus.io/sdl-version";
/// Pod Security admission's enforced level for a namespace's pods (`privileged`, `baseline`,
/// `restricted`); hsm sets it only on instances whose pods need `privileged`.
pub const POD_SECURITY_ENFORCE: &str = "pod-security.kubernetes.io/enforce";
/// Namespaces whose pods may reach every instance (the platform's own namespaces).
pub const TRUSTED: &str = "hsm.stratus.io/trusted";
/// Annotation: components a workload waits for, comma separated.
pub const DEPENDS_ON: &str = "hsm.stratus.io/depends-on";
/// Annotation: the filesystem an SDL volume asks for.
pub const FILESYSTEM: &str = "hsm.stratus.io/filesystem";
/// Annotation: the IDL's labels (JSON array).
pub const INSTANCE_LABELS: &str = "hsm.stratus.io/labels";
/// Annotation: the IDL's description.
pub const DESCRIPTION: &str = "hsm.stratus.io/description";
/// Namespace annotation: the instance's cluster-scoped objects (`Kind/name`, comma-separated),
/// which deleting the namespace does not delete.
pub const CLUSTER_OBJECTS: &str = "hsm.stratus.io/cluster-objects";
