//! Notification destinations (`/v1/notifications/destinations`) and the
//! body and signature of a webhook delivery.
//!
//! A destination receives every event-log record (alarm set, alarm clear,
//! customer log) at or above its severity as an SNMP trap, a webhook call
//! or a syslog message. Secrets (a webhook's signing key, an SNMP
//! community or passphrase) are accepted on create and never shown again.

use hmac::{Hmac, KeyInit, Mac};
use roost_fm::Event;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// How a destination is reached.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Target {
    /// An HTTP(S) endpoint that receives a JSON [`WebhookBody`] per event.
    Webhook {
        url: String,
        /// The key the `X-Roost-Signature` HMAC is made with (16+
        /// characters). Never shown again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        /// Tries before a delivery is dead-lettered (default 8, 1 to 100).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_attempts: Option<u32>,
        /// The wait before the first retry, doubled each time up to a
        /// minute (default 1000 ms, 10 to 60000).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_base_ms: Option<u64>,
        /// Time allowed for one call (default 10000 ms, 100 to 60000).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// An SNMP manager that receives traps (ROOST-ALARM-MIB).
    Snmp {
        /// `HOST` or `HOST:PORT` (port 162 by default).
        host: String,
        /// `2c` (default) or `3`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        /// SNMPv2c community. Never shown again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        community: Option<String>,
        /// SNMPv3 user name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        /// SNMPv3 authentication: `SHA` (HMAC-SHA-96) or `SHA-256`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auth_protocol: Option<String>,
        /// SNMPv3 authentication passphrase (8+ characters). Never shown again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auth_password: Option<String>,
        /// SNMPv3 privacy: `AES` (AES-128-CFB).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        priv_protocol: Option<String>,
        /// SNMPv3 privacy passphrase (8+ characters). Never shown again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        priv_password: Option<String>,
    },
    /// A syslog collector that receives RFC 5424 messages.
    Syslog {
        /// `udp://HOST[:PORT]` (RFC 5426, port 514 by default) or
        /// `tcp://HOST[:PORT]` (RFC 6587 octet counting, port 601).
        url: String,
        /// The facility, `local0` (default) to `local7`, `user` or `daemon`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        facility: Option<String>,
    },
}

/// `POST /v1/notifications/destinations` body. Unknown fields are refused
/// (by the type's fields, [`Target`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DestinationCreate {
    /// Unique; letters, digits, `-`, `_` and `.`, at most 64.
    pub name: String,
    /// The lowest severity sent: `critical`, `major`, `minor`, `warning`
    /// (the default: everything) or `not-applicable`/`all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<String>,
    /// Whether customer logs (event-log-only records) are sent as well as
    /// alarm sets and clears (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_logs: Option<bool>,
    #[serde(flatten)]
    pub target: Target,
}

/// `PATCH /v1/notifications/destinations/{id}` body: what may change
/// without re-creating the destination.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_logs: Option<bool>,
}

/// Delivery counters of a destination since the server started.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Messages sent (a webhook: answered 2xx; a trap or a syslog
    /// datagram: handed to the network).
    pub delivered: u64,
    /// Attempts that failed (each retry counts).
    pub failed_attempts: u64,
    /// Waiting to be sent or retried.
    pub pending: u64,
    /// Given up on and kept as dead letters (webhooks).
    pub dead_lettered: u64,
    /// Dropped because the destination's queue was full.
    pub dropped: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivered_at: Option<String>,
}

/// A destination as listed or shown; never holds a secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DestinationView {
    pub id: String,
    pub name: String,
    /// `webhook`, `snmp` or `syslog`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where it sends: the webhook or syslog URL, or the SNMP manager.
    pub address: String,
    pub enabled: bool,
    pub min_severity: String,
    pub include_logs: bool,
    /// The settings of the type, secrets left out (a secret shows as
    /// `"<hidden>"` when set).
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// SNMPv3: this cloud's snmpEngineID in hexadecimal, for the manager's
    /// `createUser -e 0x...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_id: Option<String>,
    pub stats: DeliveryStats,
    pub created_at: String,
}

/// `GET /v1/notifications/destinations` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DestinationList {
    pub destinations: Vec<DestinationView>,
}

/// A webhook delivery given up on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetterView {
    pub id: String,
    pub destination_id: String,
    /// The delivery's sequence number at its destination.
    pub sequence: u64,
    pub entity_instance_id: String,
    pub attempts: u32,
    pub last_error: String,
    pub created_at: String,
    /// The body that was sent.
    pub body: WebhookBody,
}

/// `GET /v1/notifications/destinations/{id}/dead-letters` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetterList {
    pub dead_letters: Vec<DeadLetterView>,
}

/// One event-log record as a webhook receives it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NotifiedEvent {
    pub uuid: String,
    /// The alarm id (set, clear) or the log id.
    pub event_log_id: String,
    /// `set`, `clear`, `log` or `msg`.
    pub state: String,
    pub entity_instance_id: String,
    pub entity_type_id: String,
    pub severity: String,
    pub reason_text: String,
    pub event_log_type: String,
    pub probable_cause: String,
    pub proposed_repair_action: String,
    pub service_affecting: bool,
    pub suppression: bool,
    /// When it happened, RFC 3339 UTC.
    pub timestamp: String,
}

impl NotifiedEvent {
    pub fn new(e: &Event) -> NotifiedEvent {
        NotifiedEvent {
            uuid: e.uuid.clone(),
            event_log_id: e.event_log_id.clone(),
            state: e.state.as_str().to_string(),
            entity_instance_id: e.entity_instance_id.clone(),
            entity_type_id: e.entity_type_id.clone(),
            severity: e.severity.to_string(),
            reason_text: e.reason_text.clone(),
            event_log_type: e.event_log_type.clone(),
            probable_cause: e.probable_cause.clone(),
            proposed_repair_action: e.proposed_repair_action.clone(),
            service_affecting: e.service_affecting,
            suppression: e.suppression,
            timestamp: e.timestamp.to_rfc3339(),
        }
    }
}

/// The JSON body of a webhook call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WebhookBody {
    /// Increases by one per message to this destination (gaps mean a
    /// message was dropped or dead-lettered).
    pub sequence: u64,
    /// The cloud that sent it (the system name).
    pub system: String,
    pub event: NotifiedEvent,
}

/// The header holding a webhook call's signature:
/// `t=<unix seconds>,v1=<hex HMAC-SHA-256 of "<t>.<body>">`.
pub const SIGNATURE_HEADER: &str = "X-Roost-Signature";
/// The header holding the event's uuid (the same on every retry).
pub const DELIVERY_HEADER: &str = "X-Roost-Delivery";
/// The header holding the try number, from 1.
pub const ATTEMPT_HEADER: &str = "X-Roost-Attempt";

fn mac(secret: &[u8], t: u64, body: &[u8]) -> Hmac<Sha256> {
    let mut m =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `X-Roost-Signature` value of `body` sent at `t` (unix seconds).
pub fn webhook_signature(secret: &[u8], t: u64, body: &[u8]) -> String {
    let hex: String = mac(secret, t, body)
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

/// Whether `header` is a valid signature of `body` by `secret`, made
/// within `tolerance_secs` of `now` (unix seconds); compared in constant
/// time. What a receiver runs.
pub fn verify_webhook_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: u64,
    tolerance_secs: u64,
) -> bool {
    let mut t = None;
    let mut sig = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => sig = Some(v),
            _ => {}
        }
    }
    let (Some(t), Some(sig)) = (t, sig) else {
        return false;
    };
    if t.abs_diff(now) > tolerance_secs || sig.len() != 64 {
        return false;
    }
    let mut raw = [0u8; 32];
    for (out, pair) in raw.iter_mut().zip(sig.as_bytes().chunks_exact(2)) {
        let (Some(hi), Some(lo)) = (
            char::from(pair[0]).to_digit(16),
            char::from(pair[1]).to_digit(16),
        ) else {
            return false;
        };
        *out = u8::try_from(hi * 16 + lo).unwrap_or(0);
    }
    mac(secret, t, body).verify_slice(&raw).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_changed_body_or_old_time_does_not() {
        let s = webhook_signature(b"a-secret-of-sixteen", 1_700_000_000, b"{\"a\":1}");
        assert!(s.starts_with("t=1700000000,v1="));
        assert!(verify_webhook_signature(
            b"a-secret-of-sixteen",
            &s,
            b"{\"a\":1}",
            1_700_000_100,
            300
        ));
        assert!(!verify_webhook_signature(
            b"a-secret-of-sixteen",
            &s,
            b"{\"a\":2}",
            1_700_000_100,
            300
        ));
        assert!(!verify_webhook_signature(
            b"another-secret-here",
            &s,
            b"{\"a\":1}",
            1_700_000_100,
            300
        ));
        assert!(!verify_webhook_signature(
            b"a-secret-of-sixteen",
            &s,
            b"{\"a\":1}",
            1_700_001_000,
            300
        ));
        assert!(!verify_webhook_signature(b"k", "v1=zz", b"", 0, 300));
    }

    #[test]
    fn a_create_body_reads_each_type_and_refuses_unknown_fields() {
        let w: DestinationCreate = serde_json::from_str(
            r#"{"name":"ops","type":"webhook","url":"https://h/x","secret":"0123456789abcdef"}"#,
        )
        .unwrap();
        assert!(matches!(w.target, Target::Webhook { .. }));
        let s: DestinationCreate = serde_json::from_str(
            r#"{"name":"nms","type":"snmp","host":"10.0.0.9","community":"public","min_severity":"major"}"#,
        )
        .unwrap();
        assert!(matches!(s.target, Target::Snmp { .. }));
        assert!(
            serde_json::from_str::<DestinationCreate>(r#"{"name":"x","type":"pager","url":"u"}"#)
                .is_err()
        );
    }
}
