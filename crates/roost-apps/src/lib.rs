//! Applications domain: the StarlingX application life cycle
//! ([`lifecycle`]), workloads in domain terms ([`workload`]), the scheduler
//! ([`scheduler`]), and [`Apps`], which holds every application of a site
//! with its replicas and the hosts' plans and reacts to facts with the time:
//! hosts failing, being locked or coming back, agents' reports of replicas
//! running, exiting or failing probes, and timers (back-off, apply and
//! remove timeouts).
//!
//! Architecture invariant: no I/O, no async, no clock reads here. Inputs
//! come in as values with the current [`roost_types::Timestamp`]; decisions
//! go out as [`Decisions`] (host plans with a generation, alarms, events,
//! changed applications) that the caller persists, sends to agents and
//! turns into FM alarms. Nothing here knows JSON, HTTP or containerd.
//!
//! Alarms: 750.001 (upload failed, warning), 750.002 (apply or update
//! failed, major), 750.003 (remove failed, major), 750.004 and 750.005
//! (apply and update in progress, warning) on `k8s_application=<name>`, as
//! StarlingX. A replica that keeps failing
//! raises Roost's own 750.101 on
//! `k8s_application=<name>.replica=<workload>/<index or host>`: none of
//! StarlingX's 750.x means it (750.002 is the failure of an apply
//! operation, and sharing its id and entity would let a replica's recovery
//! clear a real apply failure, or leave an `applied` application with an
//! apply-failure alarm); under the application's entity it is still found,
//! and cleared, with the application's other alarms.
#![forbid(unsafe_code)]

pub mod apps;
pub mod lifecycle;
pub mod scheduler;
pub mod workload;

pub use apps::{
    AgentReport, App, AppEvent, AppRecord, AppSettings, Apps, Decisions, HostPlan, LockPlan,
    PlannedContainer, PlannedReplica, Replica, ReplicaState, ReplicaStatus, UploadRequest,
};
pub use lifecycle::{
    ALARM_APPLY_FAILED, ALARM_APPLY_IN_PROGRESS, ALARM_REMOVE_FAILED, ALARM_REPLICA_FAILING,
    ALARM_UPDATE_IN_PROGRESS, ALARM_UPLOAD_FAILED, AlarmDecision, AppStatus, Error, Op,
    PROGRESS_ABORTED, PROGRESS_ABORTED_BY_USER, PROGRESS_APPLY_MANIFEST, PROGRESS_COMPLETED,
    PROGRESS_DELETE_MANIFEST, PROGRESS_EXTRACT, PROGRESS_IMAGES, PROGRESS_OVERRIDES,
    PROGRESS_VALIDATE, app_entity, check_transition, failed_progress, replica_entity,
};
pub use scheduler::{CpuAssignment, HostFacts, Usage};
pub use workload::{
    AppSpec, Container, MAX_REPLICAS, PodTemplate, Probe, ProbeAction, Resources, RestartPolicy,
    Workload, WorkloadKind, daemon_replica_id, replica_id,
};
