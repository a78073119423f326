//! The Stratus service language.
//!
//! An SDL ([`model::Sdl`]) describes a service: its components, jobs, volumes and parameters.
//! An IDL ([`idl::Idl`]) describes one instance of it. This crate parses both with precise
//! error locations ([`parse`]), validates them ([`validate`]), resolves parameter values
//! including generated passwords, certificates and SSH keys ([`resolve`], [`generate`]), and
//! reads the on-disk service catalog ([`catalog`]). It performs no network I/O and knows
//! nothing about Kubernetes.

pub mod catalog;
pub mod error;
pub mod generate;
pub mod idl;
pub mod limits;
pub mod model;
pub mod names;
pub mod parse;
pub mod resolve;
pub mod template;
pub mod validate;

pub use error::{LoadError, ParseError, Problem};
pub use idl::Idl;
pub use model::Sdl;
