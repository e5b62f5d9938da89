//! The one error of the fault management domain.

use roost_types::ErrorKind;

/// Why a command, a query or a catalogue import was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No active alarm has this uuid.
    #[error("alarm {0} not found")]
    AlarmNotFound(String),
    /// A command or query that breaks a rule (lengths, filters, states).
    #[error("{0}")]
    Invalid(String),
    /// The catalogue does not allow this alarm id to be suppressed.
    #[error("alarm id {0} cannot be suppressed (the catalogue does not allow it)")]
    NotSuppressible(String),
    /// The alarm id is not an alarm in the catalogue.
    #[error("alarm id {0} is not an alarm in the catalogue")]
    UnknownAlarmId(String),
    /// An imported catalogue is not valid YAML.
    #[error("event catalogue is not valid YAML: {0}")]
    CatalogueYaml(String),
    /// An imported catalogue is valid YAML but not a mapping of ids to
    /// entries.
    #[error(
        "event catalogue must be a mapping of event ids to entries, but the document is {found}"
    )]
    CatalogueNotMapping {
        /// What the document is instead, e.g. `a sequence`.
        found: &'static str,
    },
    /// One entry of an imported catalogue is malformed.
    #[error("event catalogue entry {id}: {reason}")]
    CatalogueEntry {
        /// The entry's id as written.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::AlarmNotFound(_) | Error::UnknownAlarmId(_) => ErrorKind::NotFound,
            Error::Invalid(_)
            | Error::NotSuppressible(_)
            | Error::CatalogueYaml(_)
            | Error::CatalogueNotMapping { .. }
            | Error::CatalogueEntry { .. } => ErrorKind::Invalid,
        }
    }
}
