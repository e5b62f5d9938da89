//! Shared vocabulary of Roost: severities, timestamps, the injected clock and
//! entity instance ids.
//!
//! This crate owns words that several domains use. It does no I/O (the
//! [`SystemClock`] only reads the wall clock) and knows nothing about HTTP,
//! SQL or StarlingX's JSON shapes.
#![forbid(unsafe_code)]

pub mod audit;
pub mod duplex;
mod entity;
mod error;
pub mod lease;
mod severity;
mod system;
mod time;
pub mod witness;

pub use entity::{entity_is_under, entity_type_of};
pub use error::{Error, ErrorKind, error_chain};
pub use severity::Severity;
pub use system::{Role, SystemMode};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
