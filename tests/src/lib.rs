//! Test servers for Stratus: [`apiserver`], an in-process Kubernetes API server that `kubectl`
//! and kube-rs talk to, [`moto`], PyPI moto's EC2 server, and [`validate`], the Kubernetes
//! schema check of rendered objects.

pub mod apiserver;
pub mod moto;
pub mod validate;
