//! The audit log's bodies: `GET /v1/audit`, `GET /v1/audit/verify`,
//! `GET /v1.0/subclouds/{name}/audit`, and the records a subcloud forwards
//! in its sync.

use roost_types::Timestamp;
use roost_types::audit::{AuditEntry, AuditRecord, ChainHash, Verdict};
use serde::{Deserialize, Serialize};

/// One audit record as the API lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditRecordView {
    pub seq: u64,
    /// UTC, e.g. `2026-01-02T03:04:05.000006Z`.
    pub time: String,
    /// User name; `host:<name>` for an agent; empty when not known.
    pub user: String,
    pub roles: Vec<String>,
    /// The peer's `ip:port`.
    pub source: String,
    pub method: String,
    /// The request path, without its query.
    pub path: String,
    /// The HTTP status answered.
    pub status: u16,
    pub prev_hash: String,
    pub hash: String,
}

impl From<&AuditRecord> for AuditRecordView {
    fn from(r: &AuditRecord) -> Self {
        AuditRecordView {
            seq: r.seq,
            time: r.entry.time.to_rfc3339(),
            user: r.entry.user.clone(),
            roles: r.entry.roles.clone(),
            source: r.entry.source.clone(),
            method: r.entry.method.clone(),
            path: r.entry.path.clone(),
            status: r.entry.status,
            prev_hash: r.prev_hash.to_hex(),
            hash: r.hash.to_hex(),
        }
    }
}

/// `GET /v1/audit` and `GET /v1.0/subclouds/{name}/audit`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct AuditList {
    pub records: Vec<AuditRecordView>,
}

/// `GET /v1/audit/verify`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditVerify {
    pub ok: bool,
    /// Records checked.
    pub records: u64,
    /// The first record number that is changed, missing or out of place.
    pub first_bad_seq: Option<u64>,
    pub reason: Option<String>,
}

impl From<&Verdict> for AuditVerify {
    fn from(v: &Verdict) -> Self {
        AuditVerify {
            ok: v.ok(),
            records: v.records,
            first_bad_seq: v.broken.map(|b| b.seq),
            reason: v.broken.map(|b| b.reason.as_str().to_string()),
        }
    }
}

/// One audit record in a subcloud's sync, exactly as stored (the time in
/// microseconds, so the system controller can check its hash).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WireAuditRecord {
    pub seq: u64,
    pub timestamp: i64,
    pub user: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub source: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub prev_hash: String,
    pub hash: String,
}

impl From<&AuditRecord> for WireAuditRecord {
    fn from(r: &AuditRecord) -> Self {
        WireAuditRecord {
            seq: r.seq,
            timestamp: r.entry.time.micros(),
            user: r.entry.user.clone(),
            roles: r.entry.roles.clone(),
            source: r.entry.source.clone(),
            method: r.entry.method.clone(),
            path: r.entry.path.clone(),
            status: r.entry.status,
            prev_hash: r.prev_hash.to_hex(),
            hash: r.hash.to_hex(),
        }
    }
}

impl WireAuditRecord {
    /// The record, or `None` when a hash is not 64 hex digits.
    pub fn to_record(&self) -> Option<AuditRecord> {
        Some(AuditRecord {
            seq: self.seq,
            entry: AuditEntry {
                time: Timestamp(self.timestamp),
                user: self.user.clone(),
                roles: self.roles.clone(),
                source: self.source.clone(),
                method: self.method.clone(),
                path: self.path.clone(),
                status: self.status,
            },
            prev_hash: ChainHash::from_hex(&self.prev_hash)?,
            hash: ChainHash::from_hex(&self.hash)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_types::audit::Chain;

    #[test]
    fn a_forwarded_record_reads_back_whole() {
        let r = Chain::default().append(AuditEntry {
            time: Timestamp(42),
            user: "admin".into(),
            roles: vec!["admin".into()],
            source: "10.0.0.1:5".into(),
            method: "DELETE".into(),
            path: "/v1/alarms/x".into(),
            status: 204,
        });
        let w = WireAuditRecord::from(&r);
        let back: WireAuditRecord =
            serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
        assert_eq!(back.to_record(), Some(r.clone()));
        let v = AuditRecordView::from(&r);
        assert_eq!(v.hash, r.hash.to_hex());
    }
}
