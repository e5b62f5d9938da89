//! The protocol between a subcloud and its system controller, over HTTPS
//! with mutual TLS on the system controller's DC listener:
//!
//! - `POST /dc/v1/enroll` (no client certificate yet): a one-time
//!   enrollment token and a CSR; the answer is the subcloud's certificate,
//!   signed by the DC root CA, with its name and the CA.
//! - `POST /dc/v1/sync` (client certificate required; its CN names the
//!   subcloud), every few seconds: a heartbeat carrying the subcloud's alarm
//!   changes since the last acknowledged sequence number (or a snapshot),
//!   and what configuration it applied; the answer acknowledges the alarms
//!   and pushes only the configuration that changed.
//! - `POST /dc/v1/renew` (client certificate required): a new CSR, answered
//!   with a new certificate before the old one expires.

use roost_dc::AlarmLog;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Prefix of enrollment tokens: `rsc1.<CA fingerprint, 64 hex>.<secret>`.
pub const TOKEN_PREFIX: &str = "rsc1";

/// Builds an enrollment token from the DC CA's fingerprint and a secret.
pub fn make_enroll_token(ca_fingerprint: &str, secret: &str) -> String {
    format!("{TOKEN_PREFIX}.{ca_fingerprint}.{secret}")
}

/// Splits an enrollment token into (CA fingerprint, secret).
pub fn parse_enroll_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.trim().strip_prefix(TOKEN_PREFIX)?.strip_prefix('.')?;
    let (fp, secret) = rest.split_once('.')?;
    (fp.len() == 64 && fp.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty())
        .then_some((fp, secret))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub token: String,
    pub csr_pem: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnrollResponse {
    pub name: String,
    pub cert_pem: String,
    pub ca_pem: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    pub csr_pem: String,
}

/// One alarm change in the subcloud's stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WireAlarmChange {
    pub seq: u64,
    pub alarm_id: String,
    pub entity_instance_id: String,
    /// `None` clears.
    pub severity: Option<String>,
    #[serde(default)]
    pub reason_text: String,
    /// Microseconds since the epoch.
    pub timestamp: i64,
}

/// An active alarm in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WireAlarm {
    pub alarm_id: String,
    pub entity_instance_id: String,
    pub severity: String,
    #[serde(default)]
    pub reason_text: String,
    pub timestamp: i64,
}

/// The whole alarm table at sequence number `seq`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WireSnapshot {
    pub seq: u64,
    pub alarms: Vec<WireAlarm>,
}

/// What a subcloud applied of one endpoint type.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppliedEndpoint {
    pub endpoint: String,
    pub generation: u64,
    /// Digest of the subcloud's local state of that endpoint.
    pub digest: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    #[serde(default)]
    pub software_version: Option<String>,
    #[serde(default)]
    pub snapshot: Option<WireSnapshot>,
    #[serde(default)]
    pub changes: Vec<WireAlarmChange>,
    #[serde(default)]
    pub applied: Vec<AppliedEndpoint>,
}

/// Configuration of one endpoint type to apply.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Push {
    pub endpoint: String,
    pub epoch: u64,
    pub generation: u64,
    pub content: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct SyncReply {
    /// The system controller's session.
    pub epoch: u64,
    /// The last alarm change the system controller holds.
    pub acked_seq: u64,
    /// True when the system controller needs a snapshot (its stream broke).
    #[serde(default)]
    pub want_snapshot: bool,
    /// `managed` or `unmanaged`.
    pub management: String,
    #[serde(default)]
    pub push: Vec<Push>,
    /// Seconds until the next sync.
    pub interval_secs: u64,
}

/// The alarm part of a subcloud's sync, from its numbered log: a snapshot
/// when `want_snapshot` (or when the log can no longer bring a controller
/// that acknowledged `acked` up to date), then at most `max` changes after
/// it (or after `acked`).
pub fn alarm_payload(
    log: &AlarmLog,
    acked: u64,
    want_snapshot: bool,
    max: usize,
) -> (Option<WireSnapshot>, Vec<WireAlarmChange>) {
    let snapshot = (want_snapshot || log.needs_snapshot(acked)).then(|| {
        let (seq, alarms) = log.snapshot();
        WireSnapshot {
            seq,
            alarms: alarms
                .into_iter()
                .map(|a| WireAlarm {
                    alarm_id: a.alarm_id,
                    entity_instance_id: a.entity_instance_id,
                    severity: a.severity.as_str().to_string(),
                    reason_text: a.reason_text,
                    timestamp: a.timestamp.micros(),
                })
                .collect(),
        }
    });
    let after = snapshot.as_ref().map_or(acked, |s| s.seq);
    let changes = log
        .pending_after(after)
        .iter()
        .take(max)
        .map(|c| WireAlarmChange {
            seq: c.seq,
            alarm_id: c.alarm_id.clone(),
            entity_instance_id: c.entity_instance_id.clone(),
            severity: c.severity.map(|s| s.as_str().to_string()),
            reason_text: c.reason_text.clone(),
            timestamp: c.timestamp.micros(),
        })
        .collect();
    (snapshot, changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alarm_payload_sends_a_snapshot_only_when_needed() {
        use roost_dc::AlarmChange;
        use roost_types::{Severity, Timestamp};
        let mut log = AlarmLog::new();
        for i in 0..3 {
            log.append(AlarmChange {
                seq: 0,
                alarm_id: "100.104".into(),
                entity_instance_id: format!("host=a.filesystem=/{i}"),
                severity: Some(Severity::Major),
                reason_text: String::new(),
                timestamp: Timestamp(i),
            });
        }
        let (snap, changes) = alarm_payload(&log, 1, false, 10);
        assert!(snap.is_none());
        assert_eq!(changes.iter().map(|c| c.seq).collect::<Vec<_>>(), [2, 3]);
        let (_, changes) = alarm_payload(&log, 0, false, 1);
        assert_eq!(changes.len(), 1, "bounded");
        let (snap, changes) = alarm_payload(&log, 0, true, 10);
        assert_eq!(snap.map(|s| (s.seq, s.alarms.len())), Some((3, 3)));
        assert!(changes.is_empty(), "nothing after the snapshot");
    }

    #[test]
    fn tokens_carry_the_ca_fingerprint() {
        let fp = "ab".repeat(32);
        let t = make_enroll_token(&fp, "s3cr3t");
        assert_eq!(parse_enroll_token(&t), Some((fp.as_str(), "s3cr3t")));
        assert_eq!(parse_enroll_token("rsc1.short.x"), None);
        assert_eq!(parse_enroll_token("nonsense"), None);
        assert_eq!(parse_enroll_token(&format!("rsc1.{fp}.")), None);
    }
}
