//! The error of this crate, and the kinds every Roost error is sorted into.

/// What kind of failure an error is: how a caller should answer it (an HTTP
/// status, an exit code), whichever crate the error comes from. Each crate's
/// `Error` has a `kind()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The thing named does not exist.
    NotFound,
    /// The request is well formed but conflicts with the current state (it
    /// exists already, it is in the wrong state, it changed meanwhile).
    Conflict,
    /// The request or input is malformed or out of range.
    Invalid,
    /// Credentials are missing, wrong, expired or revoked.
    Unauthorized,
    /// Something the operation needs is unavailable or failed (storage, a
    /// file, the network, a peer); trying again later may succeed.
    Unavailable,
    /// Data that was stored or received cannot be read back.
    Corrupt,
}

/// Text that is not one of this crate's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not one of the known severity spellings.
    #[error("unknown severity {0:?} (expected critical, major, minor, warning or not-applicable)")]
    InvalidSeverity(String),
    /// Not a timestamp Roost understands.
    #[error("invalid timestamp {0:?} (expected YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z])")]
    InvalidTimestamp(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidSeverity(_) | Error::InvalidTimestamp(_) => ErrorKind::Invalid,
        }
    }
}

/// An error and its causes on one line, `outer: inner: ...`. A cause whose
/// text the line already holds (HTTP clients often repeat their cause in
/// their own message) is left out.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}
