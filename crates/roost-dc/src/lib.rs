//! Distributed Cloud domain: the System Controller's view of its subclouds
//! (management, availability, deploy status, per-endpoint sync status,
//! alarms 280.001 and 280.002), subcloud groups, alarm aggregation over a
//! numbered stream, and configuration sync by generation.
//!
//! Each subcloud dials out to the System Controller and, over one
//! connection, sends a light heartbeat ([`Fleet::heard_from`]), a stream of
//! its alarm changes ([`Fleet::alarm_changes`], [`Fleet::alarm_snapshot`])
//! and what configuration it applied ([`Fleet::report_applied`]); the System
//! Controller answers with acknowledgements and the configuration to apply
//! ([`Fleet::to_send`], stamped with [`Fleet::epoch`] and the desired
//! [`Generation`]). The subcloud's side lives here too: [`AlarmLog`] numbers
//! and keeps its alarm changes until acknowledged, and [`Applied`] refuses
//! pushes from a stale controller.
//!
//! Architecture invariant: no I/O, no async, no clock reads here. Inputs
//! come in as values with the current [`roost_types::Timestamp`]; decisions
//! go out as [`DcEffects`] the caller turns into FM alarms, store writes and
//! messages. Nothing here knows JSON or HTTP.
#![forbid(unsafe_code)]

pub mod alarms;
mod error;
pub mod fleet;
pub mod group;
pub mod link;
pub mod settings;
pub mod sync;
pub mod words;

pub use alarms::{
    ActiveAlarm, AlarmChange, AlarmCounts, AlarmLog, AlarmStream, AlarmSummary, AlarmTable,
    DEFAULT_LOG_CAPACITY,
};
pub use error::Error;
pub use fleet::{
    ALARM_SUBCLOUD_OFFLINE, ALARM_SUBCLOUD_OUT_OF_SYNC, AlarmOut, DcEffects, Drift, EndpointSync,
    Fleet, RESERVED_SUBCLOUD_NAMES, SubcloudRecord, SubcloudState, resource_entity,
    subcloud_entity,
};
pub use group::{
    DEFAULT_GROUP_DESCRIPTION, DEFAULT_GROUP_ID, DEFAULT_GROUP_NAME, Group, GroupPatch, GroupSpec,
    MAX_PARALLEL_SUBCLOUDS, MIN_PARALLEL_SUBCLOUDS, parse_apply_type, parse_max_parallel,
};
pub use link::{LinkEvent, SubcloudLink, SyncResult};
pub use settings::DcSettings;
pub use sync::{Applied, Desired, Report, Stale};
pub use words::{
    ApplyType, Availability, CloudStatus, DeployStatus, ENDPOINT_COUNT, Endpoint, Epoch,
    Generation, Management, SyncStatus,
};
