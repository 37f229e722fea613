//! Bounds on what a stranger's document may cost us.

/// Limits applied while reading a message. Every byte comes from a stranger:
/// the defaults admit any real TAXII message and refuse what only an attack
/// would send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The whole body, checked before any parsing.
    pub max_body_bytes: usize,
    /// Element nesting, envelope and payload together.
    pub max_depth: usize,
    /// Attributes and namespace declarations on one element.
    pub max_attributes: usize,
    /// The text of one envelope field or attribute (ids, names, messages).
    pub max_field_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024 * 1024,
            max_depth: 256,
            max_attributes: 512,
            max_field_bytes: 1024 * 1024,
        }
    }
}
