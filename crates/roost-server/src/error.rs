//! The crate's one error type. Each variant says what kind of failure it is
//! ([`Error::kind`]): the HTTP layer turns the kind into a status, and a
//! caller that retries or gives up decides on it. Errors of other crates are
//! kept as sources, so a logged chain names the first cause.

use roost_dc::Error as DcError;
use roost_fm::Error as FmError;
use roost_mtce::Error as MtceError;
use roost_pki::Error as PkiError;
use roost_store::Error as StoreError;
/// What a caller can do about an [`Error`]: the kinds of every Roost crate.
/// The server's own errors are never [`ErrorKind::Corrupt`]: data that
/// cannot be read back is a failure of the server,
/// [`ErrorKind::Unavailable`].
pub use roost_types::ErrorKind;

/// Why an operation of the server failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    /// A request that is well formed but cannot be carried out in the
    /// present state (dcmanager answers these 422).
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unauthorized(String),
    /// Every worker is busy and the queue is full; the text says which.
    #[error("{0}")]
    Busy(&'static str),
    /// The service that was asked is stopping; the text says which.
    #[error("{0}")]
    Stopped(&'static str),
    /// A failure of the server's own machinery, with what failed; not shown
    /// to clients.
    #[error("{0}")]
    Internal(String),
    /// A setting of the configuration is out of range or inconsistent.
    #[error("invalid setting: {0}")]
    Setting(String),
    /// The configuration file is not valid TOML for Roost.
    #[error("config file {path} is not valid: {message}")]
    ConfigFile {
        path: std::path::PathBuf,
        message: String,
    },
    /// The data directory is locked by another server.
    #[error(
        "data directory {} is in use by another roost server (its lock file is held); stop that server or choose another --data-dir",
        .0.display()
    )]
    DataDirLocked(std::path::PathBuf),
    /// A peer (a BMC, the system controller) could not be reached.
    #[error("{0}")]
    Unreachable(String),
    /// A peer (a BMC, the system controller) refused the request or gave
    /// an answer that cannot be used; `status` is its HTTP status, if any.
    #[error("{message}")]
    Refused {
        status: Option<u16>,
        message: String,
    },
    /// The store failed (or refused a write the service had already
    /// decided, which is the service's failure, not the client's).
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Fm(#[from] FmError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
    /// A step on this server's own host's software.
    #[error(transparent)]
    HostSoftware(#[from] roost_update::Error),
    /// What was being done when `source` happened.
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },
}

/// The result of the server's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The kind of failure, which decides the HTTP status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Invalid(_) | Error::Setting(_) | Error::ConfigFile { .. } | Error::Json(_) => {
                ErrorKind::Invalid
            }
            Error::Conflict(_) | Error::Unprocessable(_) | Error::DataDirLocked(_) => {
                ErrorKind::Conflict
            }
            Error::Unauthorized(_) => ErrorKind::Unauthorized,
            Error::Fm(e) => match e.kind() {
                ErrorKind::Corrupt => ErrorKind::Unavailable,
                kind => kind,
            },
            Error::Refused { status, .. } => match status {
                Some(401 | 403) => ErrorKind::Unauthorized,
                Some(404) => ErrorKind::NotFound,
                Some(409) => ErrorKind::Conflict,
                Some(400..=499) => ErrorKind::Invalid,
                _ => ErrorKind::Unavailable,
            },
            Error::Context { source, .. } => source.kind(),
            Error::Busy(_)
            | Error::Stopped(_)
            | Error::Internal(_)
            | Error::Unreachable(_)
            | Error::Store(_)
            | Error::Pki(_)
            | Error::Io(_)
            | Error::Http(_)
            | Error::Task(_)
            | Error::HostSoftware(_) => ErrorKind::Unavailable,
        }
    }

    /// Wraps `source` with what was being done.
    pub fn context(context: impl Into<String>, source: impl Into<Error>) -> Error {
        Error::Context {
            context: context.into(),
            source: Box::new(source.into()),
        }
    }

    /// A host that does not exist.
    pub fn host_not_found(ident: &str) -> Error {
        Error::NotFound(format!("host not found: {ident}"))
    }

    /// The answer to a missing or wrong credential, deliberately vague.
    pub fn unauthenticated() -> Error {
        Error::Unauthorized("The request you have made requires authentication.".into())
    }
}

/// Adds what was being done to an error, as [`Error::context`].
pub trait Context<T> {
    fn context(self, context: impl Into<String>) -> Result<T>;
    fn with_context<C: Into<String>>(self, f: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::context(context, e))
    }

    fn with_context<C: Into<String>>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| Error::context(f(), e))
    }
}

/// The store's own refusals keep their kind (a duplicate, a token used
/// meanwhile); every other store error is a failure of the server. A service
/// for which any store refusal is its own failure wraps it in
/// [`Error::Store`] instead.
impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(m) => Error::Invalid(m),
            StoreError::Conflict(m) => Error::Conflict(m),
            e => Error::Store(e),
        }
    }
}

impl From<MtceError> for Error {
    fn from(e: MtceError) -> Self {
        match e {
            MtceError::UnknownHost(h) => Error::host_not_found(&h),
            MtceError::Refused(m) => Error::Conflict(m),
            MtceError::Invalid(m) => Error::Invalid(m),
        }
    }
}

impl From<DcError> for Error {
    fn from(e: DcError) -> Self {
        let m = e.to_string();
        match e.kind() {
            ErrorKind::NotFound => Error::NotFound(m),
            ErrorKind::Conflict => Error::Conflict(m),
            ErrorKind::Invalid => Error::Invalid(m),
            ErrorKind::Unauthorized => Error::Unauthorized(m),
            ErrorKind::Unavailable | ErrorKind::Corrupt => Error::Internal(m),
        }
    }
}

pub use roost_types::error_chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_kind_and_the_chain() {
        let e = Error::context(
            "cannot open the store",
            Error::context("reading", Error::NotFound("x".into())),
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(error_chain(&e), "cannot open the store: reading: x");
    }

    #[test]
    fn store_refusals_keep_their_kind() {
        let invalid: Error = StoreError::Invalid("bad".into()).into();
        assert_eq!(invalid.kind(), ErrorKind::Invalid);
        let conflict: Error = StoreError::Conflict("used".into()).into();
        assert_eq!(conflict.kind(), ErrorKind::Conflict);
        let wrapped = Error::Store(StoreError::Invalid("bad".into()));
        assert_eq!(wrapped.kind(), ErrorKind::Unavailable);
    }
}
