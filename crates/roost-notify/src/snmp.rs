//! SNMP notifications of the event log: the mapping of an event-log record
//! to a notification of ROOST-ALARM-MIB (`monitoring/ROOST-ALARM-MIB.txt`)
//! and the encoding of SNMPv2-Trap-PDUs as SNMPv2c or SNMPv3 (USM)
//! datagrams.
//!
//! The MIB is rooted at StarlingX's alarm MIB node,
//! 1.3.6.1.4.1.731.1.1.1.1 ([`ALARM_MIB`]), so that a manager's filters on
//! StarlingX's trap OIDs keep matching:
//!
//! | notification          | OID under `ALARM_MIB` | sent for                       |
//! |-----------------------|-----------------------|--------------------------------|
//! | `roostAlarmCritical`  | `.0.1`                | an alarm set, critical         |
//! | `roostAlarmMajor`     | `.0.2`                | an alarm set, major            |
//! | `roostAlarmMinor`     | `.0.3`                | an alarm set, minor            |
//! | `roostAlarmWarning`   | `.0.4`                | an alarm set, warning (or n/a) |
//! | `roostAlarmMessage`   | `.0.5`                | a log or message record        |
//! | `roostAlarmClear`     | `.0.9`                | an alarm clear                 |
//!
//! Alarm sets and clears carry the eleven columns of
//! `roostAlarmActiveTable` (`.1.1.2` to `.1.1.12`), logs the twelve of
//! `roostAlarmEventTable` (`.2.1.2` to `.2.1.13`), each with the instance
//! index [`TRAP_INSTANCE`]. Text values are cut to [`MAX_TEXT_OCTETS`].
//!
//! Nothing here does I/O: the caller owns the socket, the clock, the
//! persisted snmpEngineBoots and the salt counter.

mod ber;
mod usm;

use roost_fm::{Event, EventState};
use roost_types::{Severity, Timestamp};

use crate::Error;

/// An object identifier, one element per arc.
pub type Oid = Vec<u32>;

/// ROOST-ALARM-MIB's root, StarlingX's `wrsAlarmMIB`.
pub const ALARM_MIB: &[u32] = &[1, 3, 6, 1, 4, 1, 731, 1, 1, 1, 1];

/// sysUpTime.0 (SNMPv2-MIB), the first varbind of every trap.
pub const SYS_UP_TIME_0: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 3, 0];
/// snmpTrapOID.0 (SNMPv2-MIB), the second varbind of every trap.
pub const SNMP_TRAP_OID_0: &[u32] = &[1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0];

/// The instance index of every table column sent in a notification. Traps
/// are stateless: the manager correlates records on the Uuid column, not
/// on the index (the MIB's DESCRIPTION says the same).
pub const TRAP_INSTANCE: u32 = 1;

/// Text values (and any OCTET STRING given to [`TrapEncoder::encode`]) are
/// cut to this many octets, at a UTF-8 character boundary when the value is
/// UTF-8, so that a trap always fits a UDP datagram.
pub const MAX_TEXT_OCTETS: usize = 1024;

/// The largest datagram [`TrapEncoder::encode`] produces (the UDP payload
/// limit over IPv4); it is also announced as msgMaxSize.
pub const MAX_MESSAGE_OCTETS: usize = 65_507;

/// A varbind's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Integer(i32),
    OctetString(Vec<u8>),
    ObjectId(Oid),
    TimeTicks(u32),
    Counter32(u32),
    Gauge32(u32),
    Counter64(u64),
    IpAddress([u8; 4]),
    Null,
}

/// One variable binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Varbind {
    pub oid: Oid,
    pub value: Value,
}

/// A notification: its snmpTrapOID and its varbinds (after sysUpTime.0
/// and snmpTrapOID.0, which the encoder adds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub trap_oid: Oid,
    pub varbinds: Vec<Varbind>,
}

// ---------------------------------------------------------------------------
// The MIB mapping.

/// Notification numbers under `ALARM_MIB.0`.
pub mod trap {
    pub const CRITICAL: u32 = 1;
    pub const MAJOR: u32 = 2;
    pub const MINOR: u32 = 3;
    pub const WARNING: u32 = 4;
    pub const MESSAGE: u32 = 5;
    pub const CLEAR: u32 = 9;
}

/// RoostAlarmSeverity: clear(0), warning(1), minor(2), major(3),
/// critical(4), notApplicable(5).
pub fn severity_value(severity: Severity) -> i32 {
    match severity {
        Severity::Warning => 1,
        Severity::Minor => 2,
        Severity::Major => 3,
        Severity::Critical => 4,
        Severity::NotApplicable => 5,
    }
}

/// RoostAlarmSeverity's clear(0), sent for an alarm clear.
pub const SEVERITY_CLEAR: i32 = 0;

/// RoostEventState: set(1), clear(2), log(3), msg(4).
pub fn state_value(state: EventState) -> i32 {
    match state {
        EventState::Set => 1,
        EventState::Clear => 2,
        EventState::Log => 3,
        EventState::Msg => 4,
    }
}

/// Column numbers of `roostAlarmActiveEntry` (`ALARM_MIB.1.1`).
mod active {
    pub const UUID: u32 = 2;
    pub const ALARM_ID: u32 = 3;
    pub const ENTITY_INSTANCE_ID: u32 = 4;
    pub const DATE_AND_TIME: u32 = 5;
    pub const SEVERITY: u32 = 6;
    pub const REASON_TEXT: u32 = 7;
    pub const EVENT_TYPE: u32 = 8;
    pub const PROBABLE_CAUSE: u32 = 9;
    pub const PROPOSED_REPAIR_ACTION: u32 = 10;
    pub const SERVICE_AFFECTING: u32 = 11;
    pub const SUPPRESSION_ALLOWED: u32 = 12;
}

/// Column numbers of `roostAlarmEventEntry` (`ALARM_MIB.2.1`).
mod event {
    pub const UUID: u32 = 2;
    pub const EVENT_LOG_ID: u32 = 3;
    pub const STATE: u32 = 4;
    pub const ENTITY_INSTANCE_ID: u32 = 5;
    pub const DATE_AND_TIME: u32 = 6;
    pub const SEVERITY: u32 = 7;
    pub const REASON_TEXT: u32 = 8;
    pub const EVENT_TYPE: u32 = 9;
    pub const PROBABLE_CAUSE: u32 = 10;
    pub const PROPOSED_REPAIR_ACTION: u32 = 11;
    pub const SERVICE_AFFECTING: u32 = 12;
    pub const SUPPRESSION_ALLOWED: u32 = 13;
}

/// `ALARM_MIB` followed by `arcs`.
pub fn alarm_mib_oid(arcs: &[u32]) -> Oid {
    let mut oid = ALARM_MIB.to_vec();
    oid.extend_from_slice(arcs);
    oid
}

/// The notification for one event-log record: an alarm set (by severity),
/// an alarm clear, or a log or message (`roostAlarmMessage`).
pub fn event_notification(event: &Event) -> Notification {
    let text = |s: &str| Value::OctetString(truncate(s.as_bytes(), MAX_TEXT_OCTETS).to_vec());
    let boolean = |b: bool| Value::Integer(i32::from(b));
    let time = Value::OctetString(date_and_time(event.timestamp).to_vec());
    if event.state.is_alarm() {
        let (number, severity) = if event.state == EventState::Clear {
            (trap::CLEAR, SEVERITY_CLEAR)
        } else {
            let number = match event.severity {
                Severity::Critical => trap::CRITICAL,
                Severity::Major => trap::MAJOR,
                Severity::Minor => trap::MINOR,
                Severity::Warning | Severity::NotApplicable => trap::WARNING,
            };
            (number, severity_value(event.severity))
        };
        let column = |c: u32, value: Value| Varbind {
            oid: alarm_mib_oid(&[1, 1, c, TRAP_INSTANCE]),
            value,
        };
        Notification {
            trap_oid: alarm_mib_oid(&[0, number]),
            varbinds: vec![
                column(active::UUID, text(&event.uuid)),
                column(active::ALARM_ID, text(&event.event_log_id)),
                column(active::ENTITY_INSTANCE_ID, text(&event.entity_instance_id)),
                column(active::DATE_AND_TIME, time),
                column(active::SEVERITY, Value::Integer(severity)),
                column(active::REASON_TEXT, text(&event.reason_text)),
                column(active::EVENT_TYPE, text(&event.event_log_type)),
                column(active::PROBABLE_CAUSE, text(&event.probable_cause)),
                column(
                    active::PROPOSED_REPAIR_ACTION,
                    text(&event.proposed_repair_action),
                ),
                column(active::SERVICE_AFFECTING, boolean(event.service_affecting)),
                column(active::SUPPRESSION_ALLOWED, boolean(event.suppression)),
            ],
        }
    } else {
        let column = |c: u32, value: Value| Varbind {
            oid: alarm_mib_oid(&[2, 1, c, TRAP_INSTANCE]),
            value,
        };
        Notification {
            trap_oid: alarm_mib_oid(&[0, trap::MESSAGE]),
            varbinds: vec![
                column(event::UUID, text(&event.uuid)),
                column(event::EVENT_LOG_ID, text(&event.event_log_id)),
                column(event::STATE, Value::Integer(state_value(event.state))),
                column(event::ENTITY_INSTANCE_ID, text(&event.entity_instance_id)),
                column(event::DATE_AND_TIME, time),
                column(
                    event::SEVERITY,
                    Value::Integer(severity_value(event.severity)),
                ),
                column(event::REASON_TEXT, text(&event.reason_text)),
                column(event::EVENT_TYPE, text(&event.event_log_type)),
                column(event::PROBABLE_CAUSE, text(&event.probable_cause)),
                column(
                    event::PROPOSED_REPAIR_ACTION,
                    text(&event.proposed_repair_action),
                ),
                column(event::SERVICE_AFFECTING, boolean(event.service_affecting)),
                column(event::SUPPRESSION_ALLOWED, boolean(event.suppression)),
            ],
        }
    }
}

/// SNMPv2-TC DateAndTime in UTC, 11 octets: year (2, big-endian), month,
/// day, hour, minutes, seconds, deci-seconds, '+', 0, 0. Years outside
/// 0..=65535 are clamped.
pub fn date_and_time(timestamp: Timestamp) -> [u8; 11] {
    let micros = timestamp.micros();
    let secs = micros.div_euclid(1_000_000);
    let deci = (micros.rem_euclid(1_000_000) / 100_000) as u8;
    let (year, month, day) = civil_date(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let year = year.clamp(0, 65_535) as u16;
    let [yh, yl] = year.to_be_bytes();
    [
        yh,
        yl,
        month,
        day,
        (sod / 3600) as u8,
        (sod / 60 % 60) as u8,
        (sod % 60) as u8,
        deci,
        b'+',
        0,
        0,
    ]
}

/// The proleptic Gregorian (year, month, day) of a day counted from
/// 1970-01-01, worked out in 400-year cycles of 146,097 days that start on
/// a 1 March, so that the leap day falls at the end of a cycle's year.
fn civil_date(days: i64) -> (i64, u8, u8) {
    let from_march_0000 = days + 719_468;
    let cycle = from_march_0000.div_euclid(146_097);
    let day_of_cycle = from_march_0000.rem_euclid(146_097);
    let year_of_cycle = (day_of_cycle - day_of_cycle / 1_460 + day_of_cycle / 36_524
        - day_of_cycle / 146_096)
        / 365;
    let day_of_year =
        day_of_cycle - (365 * year_of_cycle + year_of_cycle / 4 - year_of_cycle / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u8;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u8;
    let year = cycle * 400 + year_of_cycle + i64::from(month <= 2);
    (year, month, day)
}

/// `bytes` cut to at most `limit` octets; when `bytes` is UTF-8 the cut
/// falls on a character boundary.
pub fn truncate(bytes: &[u8], limit: usize) -> &[u8] {
    if bytes.len() <= limit {
        return bytes;
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        let mut end = limit;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        return &bytes[..end];
    }
    &bytes[..limit]
}

// ---------------------------------------------------------------------------
// Security configuration.

/// USM authentication protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthProtocol {
    /// usmHMACSHAAuthProtocol: HMAC-SHA-1-96 (RFC 3414).
    Sha1,
    /// usmHMAC192SHA256AuthProtocol: HMAC-SHA-256, 24 octets (RFC 7860).
    Sha256,
}

/// USM privacy protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivProtocol {
    /// usmAesCfb128Protocol (RFC 3826).
    Aes128,
}

/// How traps to one destination are secured.
#[derive(Clone, PartialEq, Eq)]
pub enum Security {
    V2c {
        community: String,
    },
    V3 {
        user: String,
        /// The authentication protocol and passphrase (authNoPriv or authPriv).
        auth: Option<(AuthProtocol, String)>,
        /// The privacy protocol and passphrase (authPriv; needs `auth`).
        privacy: Option<(PrivProtocol, String)>,
    },
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Security::V2c { .. } => f.debug_struct("V2c").finish_non_exhaustive(),
            Security::V3 {
                user,
                auth,
                privacy,
            } => f
                .debug_struct("V3")
                .field("user", user)
                .field("auth", &auth.as_ref().map(|(p, _)| p))
                .field("privacy", &privacy.as_ref().map(|(p, _)| p))
                .finish(),
        }
    }
}

/// An RFC 3411 snmpEngineID of format 5 (administratively assigned
/// octets): 0x80 | the enterprise number (4 octets, big-endian, top bit
/// set), 0x05, then `octets`. Give 1 to 27 octets for a valid ID.
pub fn engine_id_from_octets(enterprise: u32, octets: &[u8]) -> Vec<u8> {
    let mut id = (enterprise | 0x8000_0000).to_be_bytes().to_vec();
    id.push(0x05);
    id.extend_from_slice(octets);
    id
}

/// Lowercase hexadecimal, as snmptrapd's `createUser -e 0x...` takes it.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    s
}

// ---------------------------------------------------------------------------
// The encoder.

enum Mode {
    V2c {
        community: Vec<u8>,
    },
    V3 {
        user: Vec<u8>,
        auth: Option<Box<usm::AuthKey>>,
        privacy: Option<Box<usm::PrivKey>>,
    },
}

/// Encodes traps for one destination. Keys are localized once, in
/// [`TrapEncoder::new`].
pub struct TrapEncoder {
    mode: Mode,
    engine_id: Vec<u8>,
    engine_boots: u32,
    /// The last request-id (v2c) or msgID (v3) used.
    last_id: i32,
}

impl std::fmt::Debug for TrapEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match &self.mode {
            Mode::V2c { .. } => "v2c",
            Mode::V3 { auth: None, .. } => "v3 noAuthNoPriv",
            Mode::V3 { privacy: None, .. } => "v3 authNoPriv",
            Mode::V3 { .. } => "v3 authPriv",
        };
        f.debug_struct("TrapEncoder")
            .field("security", &level)
            .field("engine_id", &hex(&self.engine_id))
            .field("engine_boots", &self.engine_boots)
            .finish_non_exhaustive()
    }
}

/// The largest snmpEngineBoots and snmpEngineTime (RFC 3414).
const MAX_ENGINE_VALUE: u32 = 2_147_483_647;

fn invalid(s: impl Into<String>) -> Error {
    Error::Invalid(s.into())
}

impl TrapEncoder {
    /// An encoder for one destination.
    ///
    /// `engine_id` is this sender's snmpEngineID (for traps the sender is
    /// the authoritative engine) and `engine_boots` its snmpEngineBoots,
    /// persisted by the caller and incremented on every start; both are
    /// used by SNMPv3 only.
    ///
    /// Refuses a community outside 1..=255 octets, a user name outside
    /// 1..=32 octets, a passphrase shorter than 8 octets, privacy without
    /// authentication, an engine ID outside 5..=32 octets and engine boots
    /// above 2147483647. Localizing keys hashes 1 MiB per passphrase.
    pub fn new(
        security: Security,
        engine_id: Vec<u8>,
        engine_boots: u32,
    ) -> Result<TrapEncoder, Error> {
        let mode = match security {
            Security::V2c { community } => {
                if community.is_empty() || community.len() > 255 {
                    return Err(invalid("an SNMP community must have 1 to 255 characters"));
                }
                Mode::V2c {
                    community: community.into_bytes(),
                }
            }
            Security::V3 {
                user,
                auth,
                privacy,
            } => {
                if user.is_empty() || user.len() > 32 {
                    return Err(invalid("an SNMPv3 user name must have 1 to 32 characters"));
                }
                if !(5..=32).contains(&engine_id.len()) {
                    return Err(invalid(format!(
                        "an SNMP engine ID must have 5 to 32 octets, not {}",
                        engine_id.len()
                    )));
                }
                if engine_boots > MAX_ENGINE_VALUE {
                    return Err(invalid("SNMP engine boots must be at most 2147483647"));
                }
                if privacy.is_some() && auth.is_none() {
                    return Err(invalid("SNMPv3 privacy needs authentication"));
                }
                let check = |what: &str, pass: &str| {
                    if pass.len() < 8 {
                        Err(invalid(format!(
                            "an SNMPv3 {what} passphrase must have at least 8 characters"
                        )))
                    } else {
                        Ok(())
                    }
                };
                let mut auth_key = None;
                let mut priv_key = None;
                if let Some((protocol, pass)) = &auth {
                    check("authentication", pass)?;
                    if let Some((PrivProtocol::Aes128, ppass)) = &privacy {
                        check("privacy", ppass)?;
                    }
                    let ku = usm::password_to_key(*protocol, pass.as_bytes())?;
                    let kul = usm::localize(*protocol, &ku, &engine_id);
                    auth_key = Some(Box::new(usm::AuthKey::new(*protocol, &kul)));
                    if let Some((PrivProtocol::Aes128, ppass)) = &privacy {
                        // The privacy key is localized with the
                        // authentication protocol's hash (RFC 3826 1.2).
                        let ku = usm::password_to_key(*protocol, ppass.as_bytes())?;
                        let kul = usm::localize(*protocol, &ku, &engine_id);
                        priv_key = Some(Box::new(usm::PrivKey::new(&kul)?));
                    }
                }
                Mode::V3 {
                    user: user.into_bytes(),
                    auth: auth_key,
                    privacy: priv_key,
                }
            }
        };
        Ok(TrapEncoder {
            mode,
            engine_id,
            engine_boots,
            last_id: 0,
        })
    }

    /// The next request-id / msgID: 1, 2, ... wrapping back to 1.
    fn next_id(&mut self) -> i32 {
        self.last_id = if self.last_id == i32::MAX {
            1
        } else {
            self.last_id + 1
        };
        self.last_id
    }

    /// One datagram: an SNMPv2c message, or an SNMPv3 message at the
    /// configured security level, carrying an SNMPv2-Trap-PDU whose
    /// varbinds are sysUpTime.0 (`uptime_centis`), snmpTrapOID.0 and the
    /// notification's own.
    ///
    /// `engine_time_secs` (seconds since the engine booted, at most
    /// 2147483647) is the v3 msgAuthoritativeEngineTime; `salt` is the
    /// 8-octet msgPrivacyParameters, the low half of the AES IV: the caller
    /// must never repeat one under the same boots (a counter will do).
    /// OCTET STRING values are cut to [`MAX_TEXT_OCTETS`]; a message still
    /// larger than [`MAX_MESSAGE_OCTETS`] is an [`Error::Encode`].
    pub fn encode(
        &mut self,
        notification: &Notification,
        uptime_centis: u32,
        engine_time_secs: u32,
        salt: u64,
    ) -> Result<Vec<u8>, Error> {
        let request_id = self.next_id();
        let pdu = trap_pdu(notification, uptime_centis, request_id)?;
        let message = match &self.mode {
            Mode::V2c { community } => {
                let mut body = Vec::with_capacity(pdu.len() + community.len() + 8);
                ber::integer(&mut body, 1);
                ber::octet_string(&mut body, community);
                body.extend_from_slice(&pdu);
                wrap(ber::SEQUENCE, &body)
            }
            Mode::V3 {
                user,
                auth,
                privacy,
            } => {
                if engine_time_secs > MAX_ENGINE_VALUE {
                    return Err(Error::Encode(
                        "SNMP engine time must be at most 2147483647".into(),
                    ));
                }
                self.v3_message(
                    V3Parts {
                        user,
                        auth: auth.as_deref(),
                        privacy: privacy.as_deref(),
                    },
                    &pdu,
                    request_id,
                    engine_time_secs,
                    salt,
                )?
            }
        };
        if message.len() > MAX_MESSAGE_OCTETS {
            return Err(Error::Encode(format!(
                "the trap needs {} octets, more than a datagram's {MAX_MESSAGE_OCTETS}",
                message.len()
            )));
        }
        Ok(message)
    }

    fn v3_message(
        &self,
        parts: V3Parts<'_>,
        pdu: &[u8],
        msg_id: i32,
        engine_time: u32,
        salt: u64,
    ) -> Result<Vec<u8>, Error> {
        // msgFlags: auth 0x01, priv 0x02; never reportable for a trap.
        let flags = match (parts.auth.is_some(), parts.privacy.is_some()) {
            (true, true) => 0x03,
            (true, false) => 0x01,
            _ => 0x00,
        };
        let mut global = Vec::with_capacity(24);
        ber::integer(&mut global, i64::from(msg_id));
        ber::integer(&mut global, MAX_MESSAGE_OCTETS as i64);
        ber::octet_string(&mut global, &[flags]);
        ber::integer(&mut global, 3); // msgSecurityModel: USM
        let global = wrap(ber::SEQUENCE, &global);

        let mut scoped = Vec::with_capacity(pdu.len() + self.engine_id.len() + 4);
        ber::octet_string(&mut scoped, &self.engine_id); // contextEngineID
        ber::octet_string(&mut scoped, b""); // contextName
        scoped.extend_from_slice(pdu);
        let scoped = wrap(ber::SEQUENCE, &scoped);

        let (msg_data, priv_params) = match parts.privacy {
            Some(key) => {
                let mut data = scoped;
                key.encrypt(&mut data, self.engine_boots, engine_time, salt)?;
                (wrap(ber::OCTET_STRING, &data), salt.to_be_bytes().to_vec())
            }
            None => (scoped, Vec::new()),
        };

        // msgSecurityParameters up to the authentication parameters'
        // contents, which are zeros while the digest is computed.
        let mac_len = parts.auth.map_or(0, usm::AuthKey::mac_len);
        let mut usm_head = Vec::with_capacity(64);
        ber::octet_string(&mut usm_head, &self.engine_id);
        ber::integer(&mut usm_head, i64::from(self.engine_boots));
        ber::integer(&mut usm_head, i64::from(engine_time));
        ber::octet_string(&mut usm_head, parts.user);
        usm_head.push(ber::OCTET_STRING);
        ber::push_len(&mut usm_head, mac_len);
        let mut usm_tail = Vec::with_capacity(12);
        ber::octet_string(&mut usm_tail, &priv_params);
        let usm_len = usm_head.len() + mac_len + usm_tail.len();

        let mut sec_params = vec![ber::SEQUENCE];
        ber::push_len(&mut sec_params, usm_len);
        sec_params.extend_from_slice(&usm_head);
        let mac_at_in_usm = sec_params.len();
        sec_params.resize(sec_params.len() + mac_len, 0);
        sec_params.extend_from_slice(&usm_tail);

        let mut body = Vec::with_capacity(sec_params.len() + msg_data.len() + 40);
        ber::integer(&mut body, 3); // msgVersion
        body.extend_from_slice(&global);
        body.push(ber::OCTET_STRING);
        ber::push_len(&mut body, sec_params.len());
        let mac_at_in_body = body.len() + mac_at_in_usm;
        body.extend_from_slice(&sec_params);
        body.extend_from_slice(&msg_data);

        let mut message = vec![ber::SEQUENCE];
        ber::push_len(&mut message, body.len());
        let mac_at = message.len() + mac_at_in_body;
        message.extend_from_slice(&body);
        if let Some(key) = parts.auth {
            let mac = key.mac(&message);
            message[mac_at..mac_at + mac_len].copy_from_slice(&mac);
        }
        Ok(message)
    }
}

struct V3Parts<'a> {
    user: &'a [u8],
    auth: Option<&'a usm::AuthKey>,
    privacy: Option<&'a usm::PrivKey>,
}

fn wrap(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(contents.len() + 1 + ber::len_len(contents.len()));
    ber::tlv(&mut out, tag, contents);
    out
}

/// The SNMPv2-Trap-PDU: request-id, error-status 0, error-index 0 and the
/// varbind list.
fn trap_pdu(notification: &Notification, uptime: u32, request_id: i32) -> Result<Vec<u8>, Error> {
    let mut list = Vec::with_capacity(256);
    let mut varbind = |oid: &[u32], value: &Value| -> Result<(), Error> {
        let mut vb = Vec::with_capacity(32);
        ber::oid(&mut vb, oid)?;
        encode_value(&mut vb, value)?;
        ber::tlv(&mut list, ber::SEQUENCE, &vb);
        Ok(())
    };
    varbind(SYS_UP_TIME_0, &Value::TimeTicks(uptime))?;
    varbind(
        SNMP_TRAP_OID_0,
        &Value::ObjectId(notification.trap_oid.clone()),
    )?;
    for vb in &notification.varbinds {
        varbind(&vb.oid, &vb.value)?;
    }
    let mut pdu = Vec::with_capacity(list.len() + 16);
    ber::integer(&mut pdu, i64::from(request_id));
    ber::integer(&mut pdu, 0);
    ber::integer(&mut pdu, 0);
    ber::tlv(&mut pdu, ber::SEQUENCE, &list);
    Ok(wrap(ber::SNMPV2_TRAP, &pdu))
}

fn encode_value(out: &mut Vec<u8>, value: &Value) -> Result<(), Error> {
    match value {
        Value::Integer(v) => ber::integer(out, i64::from(*v)),
        Value::OctetString(v) => ber::octet_string(out, truncate(v, MAX_TEXT_OCTETS)),
        Value::ObjectId(v) => ber::oid(out, v)?,
        Value::TimeTicks(v) => ber::unsigned(out, ber::TIME_TICKS, u64::from(*v)),
        Value::Counter32(v) => ber::unsigned(out, ber::COUNTER32, u64::from(*v)),
        Value::Gauge32(v) => ber::unsigned(out, ber::GAUGE32, u64::from(*v)),
        Value::Counter64(v) => ber::unsigned(out, ber::COUNTER64, *v),
        Value::IpAddress(v) => ber::tlv(out, ber::IP_ADDRESS, v),
        Value::Null => ber::tlv(out, ber::NULL, &[]),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
