//! The HSM server: HTTP API v1 over the service catalog and the cluster's instances.
//!
//! The server keeps no state of its own: services come from the catalog folder, instances
//! from the cluster (their records merged with the `Instance` resources, as `hsm
//! list-instances` shows them); writes go through the `Instance` resource to the converger,
//! as `hsm` does where a converger runs (`docs/server.md`).
//!
//! Modules: [`api`] the wire types and the pure conversions into them; [`error`] the one
//! error shape and the checks of path and body values; [`routes`] the read handlers, the
//! router and the OpenAPI document generated from them; [`writes`] create, change and
//! delete; [`events`] an instance's state as server-sent events; [`metrics`] the request
//! counters; [`tls`] HTTPS; [`serve`] the listening address, the shared state, readiness and
//! graceful shutdown.

pub mod api;
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
