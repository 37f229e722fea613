//! Ingress servers and egress clients, one module per binding. Adapters use
//! codecs, services and the store; never each other.

pub mod amqp;
pub mod rolie_client;
pub mod rolie_http;
pub mod taxii_client;
pub mod taxii_http;
