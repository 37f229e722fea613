//! taxiway: a protocol gateway for cyber-threat-intelligence sharing.
//!
//! Every binding's traffic is turned into TAXII core messages ([`core`]) by a
//! codec ([`bindings`]); everything behind the codecs works on those messages.

pub mod adapters;
pub mod auth;
pub mod bindings;
pub mod config;
pub mod core;
pub mod gateway;
pub mod log_writer;
pub mod router;
pub mod services;
pub mod store;
