//! Alarms and event log records as the domain sees them.

use std::borrow::Cow;
use std::fmt;

use roost_types::{Severity, Timestamp};

use crate::query::Filterable;

/// An active alarm, identified by (`alarm_id`, `entity_instance_id`).
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    pub uuid: String,
    pub alarm_id: String,
    pub entity_instance_id: String,
    pub entity_type_id: String,
    pub severity: Severity,
    pub reason_text: String,
    pub alarm_type: String,
    pub probable_cause: String,
    pub proposed_repair_action: String,
    pub service_affecting: bool,
    /// Whether the raiser allows this alarm to be suppressed.
    pub suppression: bool,
    /// When the condition was (last) raised.
    pub timestamp: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

/// What a raiser says when it sets an alarm. Optional text fields fall back
/// to the catalogue entry, then to neutral defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmInput {
    pub alarm_id: String,
    pub entity_instance_id: String,
    pub entity_type_id: Option<String>,
    pub severity: Severity,
    pub reason_text: Option<String>,
    pub alarm_type: Option<String>,
    pub probable_cause: Option<String>,
    pub proposed_repair_action: Option<String>,
    pub service_affecting: Option<bool>,
    pub suppression: Option<bool>,
    pub timestamp: Option<Timestamp>,
}

/// State of an event log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventState {
    Set,
    Clear,
    Log,
    Msg,
}

impl EventState {
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Set => "set",
            EventState::Clear => "clear",
            EventState::Log => "log",
            EventState::Msg => "msg",
        }
    }

    pub fn parse(s: &str) -> Option<EventState> {
        match s {
            "set" => Some(EventState::Set),
            "clear" => Some(EventState::Clear),
            "log" => Some(EventState::Log),
            "msg" => Some(EventState::Msg),
            _ => None,
        }
    }

    /// True for records written by alarm set and clear (as opposed to logs).
    pub fn is_alarm(self) -> bool {
        matches!(self, EventState::Set | EventState::Clear)
    }
}

impl fmt::Display for EventState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record of the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub uuid: String,
    pub event_log_id: String,
    pub state: EventState,
    pub entity_instance_id: String,
    pub entity_type_id: String,
    pub severity: Severity,
    pub reason_text: String,
    pub event_log_type: String,
    pub probable_cause: String,
    pub proposed_repair_action: String,
    pub service_affecting: bool,
    pub suppression: bool,
    pub timestamp: Timestamp,
}

/// A customer log (or message) written straight to the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct EventInput {
    pub event_log_id: String,
    pub state: EventState,
    pub entity_instance_id: String,
    pub entity_type_id: Option<String>,
    pub severity: Severity,
    pub reason_text: Option<String>,
    pub event_log_type: Option<String>,
    pub probable_cause: Option<String>,
    pub proposed_repair_action: Option<String>,
    pub service_affecting: Option<bool>,
    pub suppression: Option<bool>,
    pub timestamp: Option<Timestamp>,
}

fn cow(s: &str) -> Option<Cow<'_, str>> {
    Some(Cow::Borrowed(s))
}

impl Filterable for Alarm {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        match name {
            "uuid" => cow(&self.uuid),
            "alarm_id" => cow(&self.alarm_id),
            "entity_instance_id" => cow(&self.entity_instance_id),
            "entity_type_id" => cow(&self.entity_type_id),
            "severity" => cow(self.severity.as_str()),
            "reason_text" => cow(&self.reason_text),
            "alarm_type" => cow(&self.alarm_type),
            "probable_cause" => cow(&self.probable_cause),
            "timestamp" => Some(Cow::Owned(self.timestamp.to_string())),
            _ => None,
        }
    }
}

impl Filterable for Event {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        match name {
            "uuid" => cow(&self.uuid),
            "event_log_id" => cow(&self.event_log_id),
            "state" => cow(self.state.as_str()),
            "entity_instance_id" => cow(&self.entity_instance_id),
            "entity_type_id" => cow(&self.entity_type_id),
            "severity" => cow(self.severity.as_str()),
            "reason_text" => cow(&self.reason_text),
            "event_log_type" => cow(&self.event_log_type),
            "probable_cause" => cow(&self.probable_cause),
            "timestamp" => Some(Cow::Owned(self.timestamp.to_string())),
            _ => None,
        }
    }
}
