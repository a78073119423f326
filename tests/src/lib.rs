//! Test servers for Stratus: [`apiserver`], an in-process Kubernetes API server that `kubectl`
//! and kube-rs talk to. (Cloud stand-ins — Keystone-fronted OpenStack fakes, moto for EC2 — will
//! join it with the installer.)

pub mod apiserver;
