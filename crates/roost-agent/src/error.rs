//! The agent's one error type. Each variant says what kind of failure it
//! is ([`Error::kind`]): what is unavailable may succeed later, what is
//! invalid or unauthorized will not as it is. Errors of other crates are
//! kept as sources.

use std::path::PathBuf;

/// What a caller can do about an [`Error`]: the kinds of every Roost crate,
/// of which the agent's errors are invalid, unauthorized (the server does
/// not accept this agent's token or join token) or unavailable (retry
/// later).
pub use roost_types::ErrorKind;

/// Why an operation of the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag, an argument or a stored file is not usable.
    #[error("{0}")]
    Invalid(String),
    /// A process configuration file that cannot be used.
    #[error("process config {}: {message}", file.display())]
    ProcessConfig { file: PathBuf, message: String },
    /// 401 or 403: the join token or agent token is not accepted.
    #[error("{message}")]
    Unauthorized { message: String },
    /// Another 4xx: the server will not take this request as it is.
    #[error("the server rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// A 5xx: worth retrying later.
    #[error("server error ({status}): {message}")]
    Server { status: u16, message: String },
    /// The server could not be reached, or the reply was cut short.
    #[error("cannot reach the server: {0}")]
    Transport(String),
    /// A 2xx whose body is not what was expected.
    #[error("unexpected reply from the server: {0}")]
    BadReply(String),
    /// A deploy step failed on this host; the text says which and why.
    #[error("{0}")]
    Deploy(String),
    /// One of the agent's tasks ended; the text says how.
    #[error("{0}")]
    Stopped(&'static str),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
    /// A step on this host's software.
    #[error(transparent)]
    Software(#[from] roost_update::Error),
    /// What was being done when `source` happened.
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid(_)
            | Error::ProcessConfig { .. }
            | Error::Rejected { .. }
            | Error::Json(_)
            | Error::Deploy(_)
            | Error::Software(_) => ErrorKind::Invalid,
            Error::Unauthorized { .. } => ErrorKind::Unauthorized,
            Error::Context { source, .. } => source.kind(),
            Error::Server { .. }
            | Error::Transport(_)
            | Error::BadReply(_)
            | Error::Stopped(_)
            | Error::Io(_)
            | Error::Http(_)
            | Error::Task(_) => ErrorKind::Unavailable,
        }
    }

    /// Wraps `source` with what was being done.
    pub fn context(context: impl Into<String>, source: impl Into<Error>) -> Error {
        Error::Context {
            context: context.into(),
            source: Box::new(source.into()),
        }
    }
}

/// Adds what was being done to an error, as [`Error::context`].
pub trait Context<T> {
    fn context(self, context: impl Into<String>) -> Result<T, Error>;
    fn with_context<C: Into<String>>(self, f: impl FnOnce() -> C) -> Result<T, Error>;
}

impl<T, E: Into<Error>> Context<T> for Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T, Error> {
        self.map_err(|e| Error::context(context, e))
    }

    fn with_context<C: Into<String>>(self, f: impl FnOnce() -> C) -> Result<T, Error> {
        self.map_err(|e| Error::context(f(), e))
    }
}

/// An error and its causes on one line, `outer: inner: ...`.
pub fn error_line(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        line.push_str(": ");
        line.push_str(&inner.to_string());
        source = inner.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_kind_and_the_chain() {
        let e = Error::context(
            "cannot enroll",
            Error::Unauthorized {
                message: "no".into(),
            },
        );
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        assert_eq!(error_line(&e), "cannot enroll: no");
    }
}
