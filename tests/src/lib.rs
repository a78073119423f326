//! Test servers for Stratus: [`apiserver`], an in-process Kubernetes API server that `kubectl`
//! and kube-rs talk to, [`moto`], PyPI moto's EC2 server, [`openstack`], a real Keystone with fakes of the
//! other OpenStack services, and [`validate`], the Kubernetes
//! schema check of rendered objects.

pub mod apiserver;
pub mod cluster;
pub mod moto;
pub mod openstack;
pub mod validate;
