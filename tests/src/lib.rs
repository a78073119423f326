//! Test servers for Stratus: [`cluster`], a real Kubernetes control plane (etcd,
//! kube-apiserver, controller manager, scheduler) with a node agent and fault proxies — also
//! the local cluster of `scripts/dev-cluster` ([`dev_cluster`], with the identity provider and
//! the HSM server as processes); [`moto`], PyPI moto's EC2 server;
//! [`openstack`], a real Keystone with fakes of the other OpenStack services; [`oidc`], a real
//! OpenID provider (npm `oidc-provider`) with users, groups and JWT access tokens;
//! [`process`], helpers for the project's own servers run as child processes; and
//! [`validate`], the Kubernetes schema check of rendered objects.

pub mod cluster;
pub mod dev_cluster;
pub mod moto;
pub mod oidc;
pub mod openstack;
pub mod process;
pub mod validate;
