//! One module per verb, as library calls: each takes the cluster, the catalog where it needs
//! it, an options struct and a [`crate::progress::Progress`], and returns what it did or an
//! [`crate::instance::InstanceError`] that carries its exit code. The `hsm` binary, the
//! installer (and later the controller and the HTTP server) run these; none of them prints.

pub mod binding;
pub mod change;
pub mod configure;
pub mod create;
pub mod credentials;
pub mod delete;
pub mod get;
pub mod lint;
pub mod list;
pub mod upgrade;
