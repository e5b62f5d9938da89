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

#[cfg(test)]
mod tests {
    use super::*;

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
