//! The one error of the Distributed Cloud domain. Messages are StarlingX's
//! (dcmanager's) where it has one, followed by the reason.

use roost_types::ErrorKind;

use crate::group::{MAX_PARALLEL_SUBCLOUDS, MIN_PARALLEL_SUBCLOUDS};

/// Why a subcloud, group, alarm stream or settings operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("Subcloud not found: {0}")]
    UnknownSubcloud(String),
    /// A group, by id or name as it was asked for.
    #[error("Subcloud Group not found: {0}")]
    UnknownGroup(String),
    #[error("Invalid subcloud name: {0}")]
    InvalidName(String),
    #[error("A subcloud named {0} already exists")]
    Exists(String),
    #[error("A subcloud with id {0} already exists")]
    DuplicateId(u64),
    /// StarlingX: "Subcloud must be unmanaged to perform this operation."
    #[error("Subcloud {0} must be unmanaged to perform this operation.")]
    NotUnmanaged(String),
    /// StarlingX: "Subcloud must be powered down to perform this operation."
    #[error("Subcloud {0} must be powered down (offline) to perform this operation.")]
    NotOffline(String),
    #[error("Invalid group name: {0}")]
    InvalidGroupName(String),
    #[error("Invalid group description: {0}")]
    InvalidGroupDescription(String),
    #[error("Invalid group update_apply_type: {0:?} (expected serial or parallel)")]
    InvalidApplyType(String),
    #[error(
        "Invalid group max_parallel_subclouds: {0} (expected an integer from {MIN_PARALLEL_SUBCLOUDS} to {MAX_PARALLEL_SUBCLOUDS})"
    )]
    InvalidMaxParallel(String),
    #[error("A subcloud group with this name already exists: {0}")]
    GroupExists(String),
    #[error("A subcloud group with this id already exists: {0}")]
    DuplicateGroupId(u64),
    #[error("Default Subcloud Group may not be deleted")]
    DefaultGroupNotDeletable,
    #[error("Default group name cannot be changed")]
    DefaultGroupNameFixed,
    #[error("Subcloud Group not empty: {0} still holds {1} subcloud(s)")]
    GroupNotEmpty(String, usize),
    #[error("nothing to update")]
    NothingToUpdate,
    /// Alarm changes were missing: everything before `got` was applied,
    /// nothing from `got` on. The subcloud must resend from `expected`.
    #[error("alarm change {got} arrived but {expected} was expected; resend from {expected}")]
    Gap { expected: u64, got: u64 },
    /// A batch of alarm changes was not in strictly increasing order;
    /// nothing was applied.
    #[error("alarm changes out of order: {got} came after {after}")]
    OutOfOrder { after: u64, got: u64 },
    /// A setting out of its range; the message names the setting.
    #[error("{0}")]
    InvalidSetting(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::UnknownSubcloud(_) | Error::UnknownGroup(_) => ErrorKind::NotFound,
            Error::Exists(_)
            | Error::DuplicateId(_)
            | Error::NotUnmanaged(_)
            | Error::NotOffline(_)
            | Error::GroupExists(_)
            | Error::DuplicateGroupId(_)
            | Error::DefaultGroupNotDeletable
            | Error::DefaultGroupNameFixed
            | Error::GroupNotEmpty(..)
            | Error::Gap { .. } => ErrorKind::Conflict,
            Error::InvalidName(_)
            | Error::InvalidGroupName(_)
            | Error::InvalidGroupDescription(_)
            | Error::InvalidApplyType(_)
            | Error::InvalidMaxParallel(_)
            | Error::NothingToUpdate
            | Error::OutOfOrder { .. }
            | Error::InvalidSetting(_) => ErrorKind::Invalid,
        }
    }
}
