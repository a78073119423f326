//! Test servers for Stratus: [`apiserver`], an in-process Kubernetes API server that `kubectl`
//! and kube-rs talk to, and [`moto`], PyPI moto's EC2 server. (Keystone-fronted OpenStack fakes
//! will join them.)

pub mod apiserver;
pub mod moto;
