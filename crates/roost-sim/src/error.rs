//! The one error of the simulators.

use std::error::Error as StdError;

use roost_types::ErrorKind;

/// Why a simulator could not start, or refused a control command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag, configuration or control command that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// A simulated subcloud or host that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The server answered with an error status; `message` is its own
    /// (or the start of its page).
    #[error("HTTP {status}: {message}")]
    Http { status: u16, message: String },
    /// An answer the simulator cannot use (a field missing, a CA that does
    /// not match the token).
    #[error("{0}")]
    BadAnswer(String),
    /// Something did not happen in time.
    #[error("{0}")]
    Timeout(String),
    /// A request could not be sent, or its answer not read.
    #[error(transparent)]
    Request(#[from] reqwest::Error),
    /// An operating-system call failed (a socket, a file, a process).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A certificate, key or TLS configuration could not be made.
    #[error(transparent)]
    Pki(#[from] roost_pki::Error),
    /// What the simulator was doing when `source` failed.
    #[error("{what}")]
    Context {
        what: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

/// The result of the simulators' operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid(_) | Error::BadAnswer(_) => ErrorKind::Invalid,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Http { status: 404, .. } => ErrorKind::NotFound,
            Error::Http { status: 409, .. } => ErrorKind::Conflict,
            Error::Http { status, .. } if *status < 500 => ErrorKind::Invalid,
            Error::Http { .. } | Error::Timeout(_) | Error::Request(_) | Error::Io(_) => {
                ErrorKind::Unavailable
            }
            Error::Pki(e) => e.kind(),
            Error::Context { source, .. } => match source.downcast_ref::<Error>() {
                Some(e) => e.kind(),
                None => ErrorKind::Unavailable,
            },
        }
    }

    /// The error and its causes on one line, `outer: inner: ...`.
    pub fn chain(&self) -> String {
        roost_types::error_chain(self)
    }
}

/// Says what was being done when an operation failed, or what is missing
/// when an option is empty.
pub(crate) trait Context<T> {
    fn context(self, what: impl Into<String>) -> Result<T>;
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: StdError + Send + Sync + 'static> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::Context {
            what: what.into(),
            source: Box::new(e),
        })
    }

    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Context {
            what: what().into(),
            source: Box::new(e),
        })
    }
}

impl<T> Context<T> for Option<T> {
    /// A missing value is an answer or input the simulator cannot use.
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.ok_or_else(|| Error::BadAnswer(what.into()))
    }

    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.ok_or_else(|| Error::BadAnswer(what().into()))
    }
}
