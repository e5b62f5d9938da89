//! Event-log records as syslog messages (RFC 5424), framed for UDP
//! (RFC 5426: one message per datagram) or TCP (RFC 6587: octet counting).
//!
//! A message looks like:
//!
//! ```text
//! <131>1 2026-12-04T05:01:02.123456Z controller-0 roost - alarm-set [roost@731 alarm_id="100.104" ...] 100.104 major set host=controller-0.filesystem=/: File system usage is high
//! ```
//!
//! The structured data (SD-ID `roost@731`, after the enterprise the alarm
//! MIB lives under) carries every field of the record, so a collector can
//! index them without parsing the text.

use roost_fm::{Event, EventState};
use roost_types::Severity;

use crate::Error;

/// The longest message sent, octets; longer text is cut at a character
/// boundary.
pub const MAX_MESSAGE: usize = 8 * 1024;

/// The structured-data element's id.
pub const SD_ID: &str = "roost@731";

/// A syslog facility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Facility {
    User,
    Daemon,
    /// `local0` to `local7`.
    Local(u8),
}

impl Facility {
    /// Reads `user`, `daemon` or `local0`..`local7`.
    pub fn parse(s: &str) -> Result<Facility, Error> {
        match s {
            "user" => Ok(Facility::User),
            "daemon" => Ok(Facility::Daemon),
            _ => s
                .strip_prefix("local")
                .and_then(|n| n.parse::<u8>().ok())
                .filter(|n| *n <= 7)
                .map(Facility::Local)
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "unknown syslog facility {s:?}: use local0 to local7, user or daemon"
                    ))
                }),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Facility::User => 1,
            Facility::Daemon => 3,
            Facility::Local(n) => 16 + n,
        }
    }

    pub fn name(self) -> String {
        match self {
            Facility::User => "user".into(),
            Facility::Daemon => "daemon".into(),
            Facility::Local(n) => format!("local{n}"),
        }
    }
}

/// The syslog severity of a record: an alarm set by its severity
/// (critical 2, major 3 error, minor 4 warning, warning 5 notice), a clear
/// 5 (notice), a log 6 (informational) unless its own severity is higher.
pub fn severity_code(e: &Event) -> u8 {
    let by_alarm = match e.severity {
        Severity::Critical => 2,
        Severity::Major => 3,
        Severity::Minor => 4,
        Severity::Warning => 5,
        Severity::NotApplicable => 6,
    };
    match e.state {
        EventState::Clear => 5,
        EventState::Set => by_alarm,
        EventState::Log | EventState::Msg => by_alarm,
    }
}

/// The MSGID of a record.
pub fn msg_id(e: &Event) -> &'static str {
    match e.state {
        EventState::Set => "alarm-set",
        EventState::Clear => "alarm-clear",
        EventState::Log | EventState::Msg => "log",
    }
}

/// A header field: printable US-ASCII without spaces, at most `max`
/// characters, `-` when empty.
fn header_field(s: &str, max: usize) -> String {
    let v: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if v.is_empty() { "-".into() } else { v }
}

/// An SD-PARAM value with `"`, `\` and `]` escaped.
fn param_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        if c.is_control() {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// The RFC 5424 message of `e`, from `hostname`.
pub fn format(e: &Event, facility: Facility, hostname: &str) -> String {
    let pri = u16::from(facility.code()) * 8 + u16::from(severity_code(e));
    let params = [
        ("uuid", e.uuid.as_str()),
        ("alarm_id", e.event_log_id.as_str()),
        ("state", e.state.as_str()),
        ("entity_instance_id", e.entity_instance_id.as_str()),
        ("entity_type_id", e.entity_type_id.as_str()),
        ("severity", &e.severity.to_string()),
        ("event_type", e.event_log_type.as_str()),
        ("probable_cause", e.probable_cause.as_str()),
        (
            "service_affecting",
            if e.service_affecting { "true" } else { "false" },
        ),
    ]
    .iter()
    .map(|(k, v)| format!(" {k}=\"{}\"", param_value(v)))
    .collect::<String>();
    let text: String = e
        .reason_text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut msg = format!(
        "<{pri}>1 {} {} roost - {} [{SD_ID}{params}] {} {} {} {}: {}",
        e.timestamp.to_rfc3339(),
        header_field(hostname, 255),
        msg_id(e),
        e.event_log_id,
        e.severity,
        e.state.as_str(),
        e.entity_instance_id,
        text,
    );
    if msg.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
    }
    msg
}

/// `msg` framed for a TCP stream: its length in octets, a space, the
/// message (RFC 6587 octet counting).
pub fn octet_counted(msg: &str) -> Vec<u8> {
    let mut out = format!("{} ", msg.len()).into_bytes();
    out.extend_from_slice(msg.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_types::Timestamp;

    fn event(state: EventState, severity: Severity) -> Event {
        Event {
            uuid: "6b1f2a1e-0000-4000-8000-000000000001".into(),
            event_log_id: "100.104".into(),
            state,
            entity_instance_id: "host=controller-0.filesystem=/".into(),
            entity_type_id: "host.filesystem".into(),
            severity,
            reason_text: "Usage \"high\" ] on /\nsee docs".into(),
            event_log_type: "operational-violation".into(),
            probable_cause: "threshold-crossed".into(),
            proposed_repair_action: "Free space".into(),
            service_affecting: false,
            suppression: true,
            timestamp: Timestamp(1_764_824_462_123_456),
        }
    }

    #[test]
    fn a_set_alarm_has_the_header_and_escaped_structured_data() {
        let m = format(
            &event(EventState::Set, Severity::Major),
            Facility::Local(0),
            "controller-0",
        );
        // local0 (16) * 8 + error (3) = 131
        assert!(m.starts_with("<131>1 2025-12-04T05:01:02.123456Z controller-0 roost - alarm-set [roost@731 uuid=\"6b1f2a1e-"), "{m}");
        assert!(m.contains(r#"alarm_id="100.104""#));
        assert!(
            m.ends_with(
                "] 100.104 major set host=controller-0.filesystem=/: Usage \"high\" ] on / see docs"
            ),
            "{m}"
        );
        assert!(!m.contains('\n'));
        let sd_end = m.find("] 100.104").unwrap();
        assert!(
            !m[..sd_end].contains("\"high\""),
            "quotes in params are escaped"
        );
    }

    #[test]
    fn clears_and_logs_have_their_msgid_and_severity() {
        let c = format(
            &event(EventState::Clear, Severity::Critical),
            Facility::Daemon,
            "h",
        );
        assert!(c.starts_with("<29>1 "), "daemon (3) * 8 + notice (5): {c}");
        assert!(c.contains(" alarm-clear ["));
        let l = format(
            &event(EventState::Log, Severity::NotApplicable),
            Facility::User,
            "",
        );
        assert!(l.starts_with("<14>1 "), "user (1) * 8 + info (6): {l}");
        assert!(
            l.contains(" - roost - log ["),
            "an empty host is the nil value: {l}"
        );
    }

    #[test]
    fn facilities_parse_and_long_messages_are_cut() {
        assert_eq!(Facility::parse("local7").unwrap().code(), 23);
        assert!(Facility::parse("local8").is_err());
        assert!(Facility::parse("kern").is_err());
        let mut e = event(EventState::Set, Severity::Minor);
        e.reason_text = "é".repeat(MAX_MESSAGE);
        let m = format(&e, Facility::Local(1), "h");
        assert!(m.len() <= MAX_MESSAGE);
        assert_eq!(octet_counted("abc"), b"3 abc");
    }
}
