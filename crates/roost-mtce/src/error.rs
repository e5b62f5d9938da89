//! The one error of the maintenance domain.

use roost_types::ErrorKind;

/// Why maintenance refused an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The host is not known.
    #[error("host {0} not found")]
    UnknownHost(String),
    /// An action the host's state does not allow.
    #[error("{0}")]
    Refused(String),
    /// A setting that is malformed, out of range, or inconsistent with the
    /// others.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::UnknownHost(_) => ErrorKind::NotFound,
            Error::Refused(_) => ErrorKind::Conflict,
            Error::Invalid(_) => ErrorKind::Invalid,
        }
    }
}
