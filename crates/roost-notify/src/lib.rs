//! Notifications of the event log to the outside world: SNMP traps
//! ([`snmp`]), webhooks ([`webhook`]) and syslog ([`syslog`]).
//!
//! Each protocol lives here once: the server's notifier sends what these
//! modules encode, and the tests decode it with real peers (`snmptrapd`,
//! an HTTP receiver, a syslog daemon). Nothing here does I/O; the callers
//! own the sockets and the clock.

pub mod snmp;
pub mod syslog;
pub mod webhook;

/// What can go wrong while configuring or encoding a notification.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A destination's settings are not acceptable; the text says why.
    #[error("{0}")]
    Invalid(String),
    /// A message cannot be encoded (for example, too large).
    #[error("cannot encode the notification: {0}")]
    Encode(String),
    /// The cryptographic library refused an operation.
    #[error("cryptographic failure: {0}")]
    Crypto(&'static str),
}
