//! Codecs: each binding's wire format to and from core messages. No I/O here.

pub mod amqp;
pub mod rolie;
pub mod taxii_xml;
