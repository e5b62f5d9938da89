//! The one error of the wire types.

use roost_types::ErrorKind;
use std::fmt::Write as _;

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
    /// A manifest of an application package that Roost refuses. Displays as
    /// `manifests/app.yaml: document 2 (Deployment web): spec.template.spec.affinity: unknown field ...`;
    /// [`Error::in_file`] names the file.
    #[error("{}", manifest_text(.file, .document, .object, .path, .message))]
    Manifest {
        /// The file in the package, when known.
        file: Option<String>,
        /// 1-based document number in the file, when known.
        document: Option<usize>,
        /// `Kind name` of the object, when known.
        object: Option<String>,
        /// The field path, when the error is about a field.
        path: Option<String>,
        message: String,
    },
    /// `metadata.yaml` of an application package could not be read.
    #[error("metadata.yaml: {0}")]
    Metadata(String),
    /// A Kubernetes resource quantity that cannot be read (the text given).
    #[error(
        "invalid quantity {0:?} (expected a number with an optional suffix such as 250m, 0.5, 128Mi or 1G)"
    )]
    Quantity(String),
    /// Base64 text with a character outside both alphabets, at an offset.
    #[error("invalid base64 character {0:?} at offset {1}")]
    Base64Byte(char, u64),
    /// Base64 text with `=` where it cannot be, at an offset.
    #[error("invalid base64 padding at offset {0}")]
    Base64Padding(u64),
    /// Base64 text that ends in the middle of a group.
    #[error("base64 text ends in the middle of a group")]
    Base64Truncated,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid(_)
            | Error::BadKey
            | Error::Manifest { .. }
            | Error::Metadata(_)
            | Error::Quantity(_)
            | Error::Base64Byte(..)
            | Error::Base64Padding(_)
            | Error::Base64Truncated => ErrorKind::Invalid,
        }
    }

    /// Names the file a manifest error is in; other errors are unchanged.
    pub fn in_file(mut self, name: &str) -> Self {
        if let Error::Manifest { file, .. } = &mut self {
            *file = Some(name.to_string());
        }
        self
    }

    /// A manifest error with only its message.
    pub(crate) fn manifest(message: impl Into<String>) -> Self {
        Error::Manifest {
            file: None,
            document: None,
            object: None,
            path: None,
            message: message.into(),
        }
    }

    /// Names the field path of a manifest error.
    pub(crate) fn at(mut self, field: impl Into<String>) -> Self {
        if let Error::Manifest { path, .. } = &mut self {
            *path = Some(field.into());
        }
        self
    }

    /// Names the document of a manifest error, and its object unless one
    /// is named already.
    pub(crate) fn in_document(mut self, number: usize, label: Option<String>) -> Self {
        if let Error::Manifest {
            document, object, ..
        } = &mut self
        {
            *document = Some(number);
            if object.is_none() {
                *object = label;
            }
        }
        self
    }

    /// Names where a manifest error is: file, document and object.
    pub(crate) fn located(mut self, in_file: &str, number: usize, label: String) -> Self {
        if let Error::Manifest {
            file,
            document,
            object,
            ..
        } = &mut self
        {
            *file = Some(in_file.to_string());
            *document = Some(number);
            *object = Some(label);
        }
        self
    }
}

fn manifest_text(
    file: &Option<String>,
    document: &Option<usize>,
    object: &Option<String>,
    path: &Option<String>,
    message: &str,
) -> String {
    let mut out = String::new();
    if let Some(file) = file {
        let _ = write!(out, "{file}: ");
    }
    match (document, object) {
        (Some(d), Some(o)) => {
            let _ = write!(out, "document {d} ({o}): ");
        }
        (Some(d), None) => {
            let _ = write!(out, "document {d}: ");
        }
        (None, Some(o)) => {
            let _ = write!(out, "{o}: ");
        }
        (None, None) => {}
    }
    if let Some(p) = path {
        let _ = write!(out, "{p}: ");
    }
    out.push_str(message);
    out
}
