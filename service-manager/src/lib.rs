//! The Stratus service manager.
//!
//! [`request`] turns a catalog service, an IDL and command-line values into a resolved
//! instance; [`plan`] turns that into typed Kubernetes objects in apply order (pure);
//! [`output`] prints plans and catalog listings; [`cluster`] is the edge to Kubernetes and
//! [`instance`] the create/list/get/delete flows on it. The `hsm` binary is a thin shell on top.

pub mod actions;
pub mod binding;
pub mod cli;
pub mod cluster;
pub mod controller;
pub mod declared;
pub mod error;
pub mod instance;
pub mod labels;
pub mod objects;
pub mod output;
pub mod plan;
pub mod profile;
pub mod progress;
pub mod readiness;
pub mod remote;
pub mod request;
pub mod resource;
pub mod terminal;
pub mod wait;

pub use error::HsmError;
pub use plan::{plan, Plan, PlanInput};
pub use profile::ClusterProfile;
