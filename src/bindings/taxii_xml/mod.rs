//! The TAXII XML message binding in its three dialects: the seed's draft,
//! TAXII 1.0 and TAXII 1.1.
//!
//! [`parse`] reads any of them and says which it was; [`serialize`] writes a
//! message in one ([`ChunkedWriter`] while its content blocks are still
//! coming); [`convert`] turns a message into one a dialect can carry
//! and reports what it changed or could not keep.

mod chunked;
mod convert;
mod decode;
mod encode;
mod error;
mod ids;
mod limits;
pub(crate) mod reader;

pub use chunked::ChunkedWriter;
pub use convert::{Conversion, ConversionNote, Effect, convert};
pub use decode::{Parsed, parse, parse_with};
pub use encode::serialize;
pub use error::{ParseError, SerializeError};
pub use ids::{DialectIds, Ids, ids};
pub use limits::Limits;
