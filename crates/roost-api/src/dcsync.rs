//! The protocol between a subcloud and its system controller, over HTTPS
//! with mutual TLS on the system controller's DC listener:
//!
//! - `POST /dc/v1/enroll` (no client certificate yet): a one-time
//!   enrollment token and a CSR; the answer is the subcloud's certificate,
//!   signed by the DC root CA, with its name and the CA.
//! - `POST /dc/v1/sync` (client certificate required; its CN names the
//!   subcloud), every few seconds: a heartbeat carrying the subcloud's alarm
//!   changes since the last acknowledged sequence number (or a snapshot),
//!   its audit records after the last one acknowledged, and what
//!   configuration it applied; the answer acknowledges the alarms and the
//!   audit records and pushes only the configuration that changed.
//! - `POST /dc/v1/renew` (client certificate required): a new CSR, answered
//!   with a new certificate before the old one expires.
//! - `GET /dc/v1/packages/{digest}` (client certificate required): an
//!   application package (`.tgz`) or a release file (`.patch`) by its
//!   SHA-256 digest, as the `apps` and `software` endpoints name them;
//!   `Range: bytes=N-` resumes an interrupted fetch.
//!
//! A fleet software rollout rides the same sync: the reply carries the
//! deploy order the subcloud is to run ([`DeployOrder`], the same one at
//! every sync until it changes) and the request reports how far it got
//! ([`DeployOrderReport`]).

use roost_dc::{AlarmLog, Endpoint, Epoch, Generation, LinkEvent, Stale, SubcloudLink, SyncResult};
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
    /// The state of each application the system controller wants here.
    #[serde(default)]
    pub apps: Vec<AppReport>,
    /// The subcloud's audit records after the last number the system
    /// controller acknowledged (`SyncReply::audit_acked`), oldest first, at
    /// most [`MAX_AUDIT_PER_SYNC`]; none until the first acknowledgement.
    #[serde(default)]
    pub audit: Vec<crate::audit::WireAuditRecord>,
    /// How far the deploy order of the last reply got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<DeployOrderReport>,
}

/// A deploy order of a fleet rollout: run the release's site strategy up
/// to activation (`deploy`), then complete it (`complete`), or take the
/// subcloud back to the release it ran (`rollback`). Orders are
/// idempotent: the same `id` is repeated until the order changes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeployOrder {
    pub id: u64,
    pub release_id: String,
    /// `deploy`, `complete` or `rollback`.
    pub action: String,
    /// The site strategy's options, from the subcloud's strategy-config.
    pub worker_apply_type: String,
    pub max_parallel_workers: u32,
    pub alarm_restriction: String,
}

/// How far a subcloud got with a deploy order: `phase` is one of the
/// rollout phases (`sw-deploy pre-check`, ..., `activated`, `complete`,
/// `failed`, `rolling back`, `rolled-back`, `rollback-failed`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeployOrderReport {
    pub order: u64,
    pub phase: String,
    #[serde(default)]
    pub details: String,
}

/// Most audit records one sync carries.
pub const MAX_AUDIT_PER_SYNC: usize = 500;

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SHA-256 (hex) of a value's JSON text: the digest both ends compare.
fn json_digest<T: Serialize>(v: &T) -> String {
    sha256_hex(serde_json::to_string(v).unwrap_or_default().as_bytes())
}

/// The digest of an endpoint type that carries no configuration (yet).
pub fn empty_digest() -> String {
    sha256_hex(b"null")
}

/// The platform configuration a system controller keeps equal on its
/// subclouds: DNS and NTP servers and the suppressed alarm ids (sorted).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct PlatformConfig {
    #[serde(default)]
    pub dns_servers: Vec<String>,
    #[serde(default)]
    pub ntp_servers: Vec<String>,
    #[serde(default)]
    pub suppressed_alarm_ids: Vec<String>,
}

impl PlatformConfig {
    /// What the system controller compares with what a subcloud runs.
    pub fn digest(&self) -> String {
        json_digest(self)
    }
}

/// A user as identity sync carries it: name, password hash, roles (sorted).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SyncedUser {
    pub name: String,
    pub password_hash: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// The users a system controller keeps equal on its subclouds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    #[serde(default)]
    pub users: Vec<SyncedUser>,
}

impl IdentityConfig {
    /// What the system controller compares with what a subcloud runs.
    pub fn digest(&self) -> String {
        json_digest(self)
    }
}

/// The DC certificate configuration: the CA bundle subclouds trust.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct CertConfig {
    #[serde(default)]
    pub ca_bundle: String,
}

impl CertConfig {
    /// What the system controller compares with what a subcloud runs.
    pub fn digest(&self) -> String {
        json_digest(self)
    }
}

/// The path prefix of packages on the DC listener: `{PACKAGES_PATH}{digest}`.
pub const PACKAGES_PATH: &str = "/dc/v1/packages/";

/// One application a system controller wants on a subcloud.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DesiredApp {
    pub name: String,
    pub version: String,
    /// `sha256:<64 hex>` of the package `.tgz`.
    pub digest: String,
    /// Bytes of the package `.tgz`.
    pub size: u64,
    /// `applied` (the only desired state so far).
    pub state: String,
}

/// The applications a subcloud's group is assigned (sorted by name).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct AppsConfig {
    #[serde(default)]
    pub apps: Vec<DesiredApp>,
}

impl AppsConfig {
    /// What the system controller compares with what a subcloud runs.
    pub fn digest(&self) -> String {
        json_digest(self)
    }
}

/// Whether `digest` is `sha256:` and 64 lowercase hex digits.
pub fn valid_package_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Whether `phase` ends an order of `action`: `complete` or `failed` for
/// `deploy` and `complete`, `rolled-back` or `rollback-failed` for
/// `rollback`.
pub fn order_final(action: &str, phase: &str) -> bool {
    match action {
        "rollback" => matches!(phase, "rolled-back" | "rollback-failed"),
        _ => matches!(phase, "complete" | "failed"),
    }
}

/// A subcloud's side of deploy orders, the same for the real subcloud and
/// the simulator: the last answer and the action it answers. An order
/// answered with a final phase is not taken again, however often the
/// system controller repeats it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSlot {
    pub action: String,
    pub report: Option<DeployOrderReport>,
}

impl OrderSlot {
    /// Whether `order` still needs a step here.
    pub fn needs_step(&self, order: &DeployOrder) -> bool {
        !matches!(&self.report, Some(r) if r.order == order.id
            && self.action == order.action
            && order_final(&self.action, &r.phase))
    }

    /// Records the answer to `order`; true when it differs from the last.
    pub fn answer(&mut self, order: &DeployOrder, phase: &str, details: String) -> bool {
        let next = OrderSlot {
            action: order.action.clone(),
            report: Some(DeployOrderReport {
                order: order.id,
                phase: phase.to_string(),
                details,
            }),
        };
        let changed = *self != next;
        *self = next;
        changed
    }
}

/// One release a system controller keeps on its subclouds: fetched by the
/// digest of its file (`sha256:<64 hex>`), checked against the subcloud's
/// own trusted keys when it is uploaded there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SyncedRelease {
    pub release_id: String,
    pub digest: String,
    pub size: u64,
}

/// The releases uploaded on the system controller (sorted by id).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct SoftwareConfig {
    #[serde(default)]
    pub releases: Vec<SyncedRelease>,
}

impl SoftwareConfig {
    /// What the system controller compares with what a subcloud holds.
    pub fn digest(&self) -> String {
        json_digest(self)
    }
}

/// How a subcloud reports one application the system controller wants
/// there: `applied`, `failed` (with the reason) or `pending`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AppReport {
    pub name: String,
    pub version: String,
    pub state: String,
    #[serde(default)]
    pub reason: String,
}

/// The configuration of one synced endpoint type. On the wire it is the
/// `endpoint` name and the `content` object of a push.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "endpoint", content = "content")]
pub enum EndpointConfig {
    #[serde(rename = "platform")]
    Platform(PlatformConfig),
    #[serde(rename = "identity")]
    Identity(IdentityConfig),
    #[serde(rename = "dc-cert")]
    DcCert(CertConfig),
    #[serde(rename = "apps")]
    Apps(AppsConfig),
    #[serde(rename = "software")]
    Software(SoftwareConfig),
}

impl EndpointConfig {
    /// The endpoint type it configures.
    pub fn endpoint(&self) -> Endpoint {
        match self {
            EndpointConfig::Platform(_) => Endpoint::Platform,
            EndpointConfig::Identity(_) => Endpoint::Identity,
            EndpointConfig::DcCert(_) => Endpoint::DcCert,
            EndpointConfig::Apps(_) => Endpoint::Apps,
            EndpointConfig::Software(_) => Endpoint::Software,
        }
    }

    /// The digest of the content (the same as the inner type's).
    pub fn digest(&self) -> String {
        match self {
            EndpointConfig::Platform(c) => c.digest(),
            EndpointConfig::Identity(c) => c.digest(),
            EndpointConfig::DcCert(c) => c.digest(),
            EndpointConfig::Apps(c) => c.digest(),
            EndpointConfig::Software(c) => c.digest(),
        }
    }

    /// The content alone (what is stored under the endpoint's name).
    pub fn content(&self) -> Value {
        match self {
            EndpointConfig::Platform(c) => serde_json::to_value(c),
            EndpointConfig::Identity(c) => serde_json::to_value(c),
            EndpointConfig::DcCert(c) => serde_json::to_value(c),
            EndpointConfig::Apps(c) => serde_json::to_value(c),
            EndpointConfig::Software(c) => serde_json::to_value(c),
        }
        .unwrap_or(Value::Null)
    }

    /// Reads the content of `endpoint` back; `None` for an endpoint type
    /// that carries no configuration.
    pub fn from_content(
        endpoint: Endpoint,
        content: Value,
    ) -> Option<Result<EndpointConfig, serde_json::Error>> {
        Some(match endpoint {
            Endpoint::Platform => serde_json::from_value(content).map(EndpointConfig::Platform),
            Endpoint::Identity => serde_json::from_value(content).map(EndpointConfig::Identity),
            Endpoint::DcCert => serde_json::from_value(content).map(EndpointConfig::DcCert),
            Endpoint::Apps => serde_json::from_value(content).map(EndpointConfig::Apps),
            Endpoint::Software => serde_json::from_value(content).map(EndpointConfig::Software),
            _ => return None,
        })
    }
}

/// Configuration of one endpoint type to apply.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Push {
    pub epoch: u64,
    pub generation: u64,
    /// `endpoint` and `content` on the wire.
    #[serde(flatten)]
    pub config: EndpointConfig,
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
    /// The last audit record number the system controller holds of this
    /// subcloud (0: none); the subcloud sends what follows it.
    #[serde(default)]
    pub audit_acked: Option<u64>,
    /// The deploy order of a fleet rollout this subcloud is to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<DeployOrder>,
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

/// Most alarm changes one sync carries.
pub const MAX_CHANGES_PER_SYNC: usize = 2000;

/// A subcloud's next sync request, from its link state and alarm log:
/// `local_digest` gives the digest of what it runs of each synced endpoint
/// type. The real subcloud and the simulator both build it here.
pub fn sync_request(
    link: &SubcloudLink,
    log: &AlarmLog,
    software_version: &str,
    local_digest: impl Fn(Endpoint) -> String,
) -> SyncRequest {
    let (snapshot, changes) = alarm_payload(
        log,
        link.acked(),
        link.needs_snapshot(),
        MAX_CHANGES_PER_SYNC,
    );
    SyncRequest {
        software_version: Some(software_version.to_string()),
        snapshot,
        changes,
        applied: Endpoint::SYNCED
            .iter()
            .map(|ep| AppliedEndpoint {
                endpoint: ep.as_str().to_string(),
                generation: link.applied().generation(*ep).0,
                digest: local_digest(*ep),
            })
            .collect(),
        apps: Vec::new(),
        audit: Vec::new(),
        order: None,
    }
}

/// What a reply leaves to do: the pushes to apply (each then reported
/// with [`SubcloudLink::push_applied`]) and those refused as stale.
#[derive(Debug, Default)]
pub struct Taken {
    pub event: Option<LinkEvent>,
    pub pushes: Vec<Push>,
    pub stale: Vec<Stale>,
}

/// Takes a sync reply into the link: alarms acknowledged (the caller then
/// acknowledges its log up to [`SubcloudLink::acked`]), the interval, and
/// the pushes that pass the (epoch, generation) guard.
pub fn take_reply(link: &mut SubcloudLink, sent_snapshot: bool, reply: SyncReply) -> Taken {
    let event = link.finished(
        sent_snapshot,
        SyncResult::Answered {
            acked_seq: reply.acked_seq,
            want_snapshot: reply.want_snapshot,
            interval_secs: reply.interval_secs,
        },
    );
    let mut taken = Taken {
        event,
        ..Taken::default()
    };
    for p in reply.push {
        match link.accept_push(
            p.config.endpoint(),
            Epoch(p.epoch),
            Generation(p.generation),
        ) {
            Ok(()) => taken.pushes.push(p),
            Err(stale) => taken.stale.push(stale),
        }
    }
    taken
}

/// Records that a push taken by [`take_reply`] was applied.
pub fn push_applied(link: &mut SubcloudLink, push: &Push) {
    link.push_applied(
        push.config.endpoint(),
        Epoch(push.epoch),
        Generation(push.generation),
    );
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
    fn pushes_are_typed_and_keep_their_wire_shape() {
        let p = Push {
            epoch: 7,
            generation: 3,
            config: EndpointConfig::Platform(PlatformConfig {
                dns_servers: vec!["10.0.0.53".into()],
                ntp_servers: vec![],
                suppressed_alarm_ids: vec!["100.101".into()],
            }),
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["endpoint"], "platform");
        assert_eq!(v["content"]["dns_servers"][0], "10.0.0.53");
        let back: Push = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, p);
        // The digest is SHA-256 of the content's JSON text, keys in order.
        assert_eq!(
            p.config.digest(),
            sha256_hex(v["content"].to_string().as_bytes())
        );
        let cert =
            EndpointConfig::from_content(Endpoint::DcCert, serde_json::json!({"ca_bundle": "pem"}))
                .unwrap()
                .unwrap();
        assert_eq!(cert.endpoint(), Endpoint::DcCert);
        assert!(EndpointConfig::from_content(Endpoint::Firmware, Value::Null).is_none());
        assert_eq!(empty_digest(), sha256_hex(b"null"));
        // Unknown endpoint types and fields are refused.
        assert!(
            serde_json::from_str::<Push>(
                r#"{"epoch":1,"generation":1,"endpoint":"nope","content":{}}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<Push>(
                r#"{"epoch":1,"generation":1,"endpoint":"dc-cert","content":{"x":1}}"#
            )
            .is_err()
        );
    }

    #[test]
    fn an_order_answered_for_good_is_not_taken_again() {
        let order = |id, action: &str| DeployOrder {
            id,
            release_id: "roost-1.1.0".into(),
            action: action.into(),
            worker_apply_type: "serial".into(),
            max_parallel_workers: 2,
            alarm_restriction: "relaxed".into(),
        };
        let mut slot = OrderSlot::default();
        let deploy = order(7, "deploy");
        assert!(slot.needs_step(&deploy));
        assert!(slot.answer(&deploy, "activated", String::new()));
        assert!(
            !slot.answer(&deploy, "activated", String::new()),
            "no change"
        );
        assert!(slot.needs_step(&deploy), "activated is not final");
        slot.answer(&deploy, "failed", "boom".into());
        assert!(!slot.needs_step(&deploy));
        // The same order id with another action, or another id, is new.
        assert!(slot.needs_step(&order(7, "rollback")));
        assert!(slot.needs_step(&order(8, "deploy")));
        slot.answer(&order(7, "rollback"), "rolled-back", String::new());
        assert!(!slot.needs_step(&order(7, "rollback")));
        assert!(order_final("complete", "complete"));
        assert!(!order_final("rollback", "complete"));
    }

    #[test]
    fn a_reply_is_taken_into_the_link_and_stale_pushes_are_set_aside() {
        use roost_types::Timestamp;
        let mut link = SubcloudLink::new(Timestamp(0), 1);
        let log = AlarmLog::new();
        let req = sync_request(&link, &log, "1.0", |_| empty_digest());
        assert!(req.snapshot.is_some(), "the first sync sends a snapshot");
        assert_eq!(req.applied.len(), Endpoint::SYNCED.len());
        let push = |epoch, generation| Push {
            epoch,
            generation,
            config: EndpointConfig::DcCert(CertConfig {
                ca_bundle: "pem".into(),
            }),
        };
        let reply = |pushes| SyncReply {
            epoch: 5,
            acked_seq: 0,
            want_snapshot: false,
            management: "managed".into(),
            push: pushes,
            interval_secs: 2,
            audit_acked: None,
            order: None,
        };
        let taken = take_reply(&mut link, true, reply(vec![push(5, 2)]));
        assert_eq!(taken.event, Some(LinkEvent::Connected));
        assert_eq!(taken.pushes.len(), 1);
        push_applied(&mut link, &taken.pushes[0]);
        let req = sync_request(&link, &log, "1.0", |_| empty_digest());
        assert!(req.snapshot.is_none());
        assert!(
            req.applied
                .iter()
                .any(|a| a.endpoint == "dc-cert" && a.generation == 2)
        );
        // An older generation of the same epoch, or an older epoch: stale.
        let taken = take_reply(&mut link, false, reply(vec![push(5, 1), push(4, 9)]));
        assert!(taken.pushes.is_empty());
        assert_eq!(taken.stale.len(), 2);
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
