use std::path::PathBuf;

/// Errors of the PKI layer.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
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
}

impl PkiError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PkiError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = PkiError> = std::result::Result<T, E>;
