//! Test servers for Stratus: [`cluster`], a real Kubernetes control plane (etcd,
//! kube-apiserver, controller manager, scheduler) with a node agent and fault proxies — also
//! the local cluster of `scripts/dev-cluster`; [`moto`], PyPI moto's EC2 server;
//! [`openstack`], a real Keystone with fakes of the other OpenStack services; and
//! [`validate`], the Kubernetes schema check of rendered objects.

pub mod cluster;
pub mod moto;
pub mod openstack;
pub mod validate;
