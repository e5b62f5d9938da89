use std::path::PathBuf;

use roost_types::ErrorKind;

/// Errors of the PKI layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    #[error("tls verifier: {0}")]
    Verifier(String),
    #[error("pem: {0}")]
    Pem(String),
    #[error("x509: {0}")]
    X509(String),
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    /// A TPM quote made for another nonce (an old answer, or a replay).
    #[error("the quote is not for this nonce (a replay, or an old quote)")]
    StaleQuote,
    /// A TPM quote refused, and why.
    #[error("{0}")]
    Quote(String),
}

impl Error {
    /// Files, sockets and peers are [`ErrorKind::Unavailable`]; everything
    /// else is input that cannot be used ([`ErrorKind::Invalid`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } | Error::Http(_) => ErrorKind::Unavailable,
            Error::Rcgen(_)
            | Error::Tls(_)
            | Error::Verifier(_)
            | Error::Pem(_)
            | Error::X509(_)
            | Error::Invalid(_)
            | Error::StaleQuote
            | Error::Quote(_) => ErrorKind::Invalid,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
