//! Fault management domain: alarms, the event log, suppression, the alarm
//! summary, and the alarm catalogue.
//!
//! This crate decides; it does not store or serve. [`FmState`] holds the
//! active alarms and the suppression settings, applies [`FmCommand`]s with
//! StarlingX's rules, and returns an [`Outcome`]: the alarm changes (which
//! can be undone if the caller fails to persist them) and the event log
//! records to append. Time comes from the caller. Architecture invariant:
//! no I/O, no SQL, no HTTP, no JSON here.
#![forbid(unsafe_code)]

pub mod catalogue;
mod error;
mod model;
mod query;
mod state;

pub use catalogue::{Catalogue, CatalogueEntry, EventKind};
pub use error::Error;
pub use model::{Alarm, AlarmInput, Event, EventInput, EventState};
pub use query::{Filter, FilterOp, Filterable, SortDir, matches_all};
pub use state::{
    ALARM_SORT_KEYS, AlarmChange, FmCommand, FmState, ListOptions, MAX_ENTITY_LEN, MAX_ID_LEN,
    MAX_TEXT_LEN, Outcome, Page, Reply, Summary,
};
