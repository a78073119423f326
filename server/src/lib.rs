//! The HSM server: HTTP API v1 over the service catalog and the cluster's instances.
//!
//! The server keeps no state of its own: services come from the catalog folder, instances
//! from the cluster (their records merged with the `Instance` resources, as `hsm
//! list-instances` shows them); writes go through the `Instance` resource to the converger,
//! as `hsm` does where a converger runs. Requests carry bearer tokens of an OpenID provider,
//! checked by [`auth`]; a server without authentication listens on a loopback address only
//! (`docs/server.md`).
//!
//! Modules: [`api`] the wire types and the pure conversions into them; [`auth`] the token
//! checks, the roles and the audit log; [`error`] the one error shape and the checks of path
//! and body values; [`routes`] the read handlers, the router and the OpenAPI document
//! generated from them; [`writes`] create, change and delete; [`events`] an instance's state
//! as server-sent events; [`metrics`] the request counters; [`tls`] HTTPS; [`serve`] the
//! listening address, the shared state, readiness and graceful shutdown; [`cache`] the
//! instance list kept in memory by watches; [`broker`] the Open Service Broker API v2.17
//! under `/v2` (`docs/broker.md`).

pub mod api;
pub mod auth;
pub mod bindings;
pub mod broker;
pub mod cache;
pub mod error;
pub mod events;
pub mod metrics;
pub mod routes;
pub mod serve;
pub mod tls;
pub mod writes;

pub use error::ApiError;
pub use routes::{openapi, router};
pub use serve::{AppState, ServerError};

/// The API version served under `/v1`.
pub const API_VERSION: &str = "v1";
