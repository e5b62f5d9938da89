//! The one error of the wire types.

use roost_types::ErrorKind;

/// A body or value received from another process that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A request body that breaks a rule; the message says which, and is
    /// the detail of the 400 answer.
    #[error("{0}")]
    Invalid(String),
    /// A stored heartbeat key that is not 64 hexadecimal digits.
    #[error("a heartbeat key must be 64 hexadecimal digits")]
    BadKey,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid(_) | Error::BadKey => ErrorKind::Invalid,
        }
    }
}
