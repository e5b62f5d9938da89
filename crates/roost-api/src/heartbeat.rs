//! The heartbeat wire format (UDP).
//!
//! Once per period (default 100 ms, down to 10 ms) the server sends a *pulse
//! request* to every unlocked host on each configured network; the host's
//! agent answers with a *pulse response* that echoes the request's epoch,
//! sequence number, flags and send time, and adds a small health summary.
//!
//! This module is pure: no sockets, no clock, no randomness. The caller reads
//! datagrams into a buffer of [`MAX_DATAGRAM`] bytes, looks the sender's key up
//! with [`peek_host_id`], authenticates and parses with [`decode`], then
//! rejects replays with a [`ReplayWindow`]. Every rejection maps to a
//! [`DropReason`] whose [`DropReason::as_str`] is the metric label.
//!
//! # Packet layout
//!
//! Every packet is exactly [`PACKET_LEN`] (72) bytes; integers are big-endian.
//!
//! | Offset | Size | Field            | Meaning                                                        |
//! |-------:|-----:|------------------|----------------------------------------------------------------|
//! |      0 |    4 | magic            | `b"RHB1"`                                                      |
//! |      4 |    1 | kind             | 1 = request, 2 = response ([`Kind`])                           |
//! |      5 |    1 | network          | 0 = management, 1 = cluster-host ([`NETWORK_MGMT`], ...)       |
//! |      6 |    1 | flags            | pulse flags, set by the server, echoed by the agent            |
//! |      7 |    1 | reserved         | must be 0                                                      |
//! |      8 |    4 | host_id          | u32, the host the packet is for (request) or from (response)   |
//! |     12 |    8 | epoch            | u64, the server's session: new and larger at each server start |
//! |     20 |    8 | seq              | u64, pulse sequence number within the epoch                    |
//! |     28 |    8 | sent_at_micros   | u64, server clock at send; echoed in responses (for RTT)       |
//! |     36 |    1 | cpu_pct          | health: CPU use, percent                                       |
//! |     37 |    1 | mem_pct          | health: memory use, percent                                    |
//! |     38 |    1 | fs_pct           | health: fullest filesystem's use, percent                      |
//! |     39 |    1 | health_flags     | health bit flags ([`Health::DEGRADED`], ...)                   |
//! |     40 |   32 | hmac             | HMAC-SHA-256 of bytes 0..40 under the host's [`HostKey`]       |
//!
//! In requests the health bytes are zero. The MAC covers the kind byte, so a
//! request can never be passed off as a response (or the reverse), and the
//! host id, so a packet for one host is useless against another (each host
//! has its own key anyway).
//!
//! # Checks, in order
//!
//! 1. length: shorter than [`PACKET_LEN`] is [`DecodeError::Truncated`],
//!    longer is [`DecodeError::Oversized`];
//! 2. magic ([`DecodeError::BadMagic`]);
//! 3. (caller) key lookup by [`peek_host_id`]; no key is
//!    [`DropReason::UnknownHost`];
//! 4. MAC, in constant time ([`DecodeError::BadMac`]); no other field is
//!    looked at before this succeeds;
//! 5. kind and reserved byte ([`DecodeError::UnknownKind`],
//!    [`DecodeError::BadReserved`]);
//! 6. (caller) [`ReplayWindow::check`]: [`DropReason::Replayed`] or
//!    [`DropReason::Stale`].

use std::collections::HashMap;
use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::Error;

type HmacSha256 = Hmac<Sha256>;

/// The magic at the start of every heartbeat packet (format version 1).
pub const MAGIC: [u8; 4] = *b"RHB1";

/// Length of the authenticated part of a packet (everything before the MAC).
const BODY_LEN: usize = 40;

/// Length of the HMAC-SHA-256 tag at the end of a packet.
pub const MAC_LEN: usize = 32;

/// The exact size of every heartbeat packet, in bytes; any other size is
/// dropped.
pub const PACKET_LEN: usize = BODY_LEN + MAC_LEN;

/// The receive buffer size a caller should use. A datagram larger than this
/// is cut to this size by the kernel, and then rejected as
/// [`DecodeError::Oversized`].
pub const MAX_DATAGRAM: usize = 512;

/// Network number of the management network.
pub const NETWORK_MGMT: u8 = 0;

/// Network number of the cluster-host network.
pub const NETWORK_CLUSTER_HOST: u8 = 1;

/// Request flag: the server asks the agent to reboot its host. The agent
/// answers with [`Health::REBOOTING`] and reboots once per request.
pub const FLAG_REBOOT: u8 = 0x01;

/// Request flag: the server is about to hand over to a new process of
/// itself (a software update), so pulses may stop for a while. An agent
/// that sees it does not fence for [`HOLD_MILLIS`] after that pulse, and
/// the new server does not count missed pulses until as long after its
/// start: applications ride through the gap and no host is failed for it.
pub const FLAG_HOLD: u8 = 0x02;

/// How long a [`FLAG_HOLD`] holds, milliseconds.
pub const HOLD_MILLIS: u64 = 20_000;

const KIND_REQUEST: u8 = 1;
const KIND_RESPONSE: u8 = 2;

/// A host's 32-byte heartbeat key, shared by the server and that host's agent.
///
/// `Debug` never shows the key. Comparing keys is deliberately not offered.
#[derive(Clone)]
pub struct HostKey([u8; 32]);

impl HostKey {
    /// Wraps 32 key bytes (the caller gets them from a random source).
    pub fn from_bytes(bytes: [u8; 32]) -> HostKey {
        HostKey(bytes)
    }

    /// The key as 64 lowercase hexadecimal digits, for storage.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(DIGITS[usize::from(b >> 4)]));
            s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
        }
        s
    }

    /// Parses 64 hexadecimal digits (either case; surrounding whitespace,
    /// such as a file's final newline, is ignored).
    pub fn from_hex(s: &str) -> Result<HostKey, Error> {
        let s = s.trim().as_bytes();
        if s.len() != 64 {
            return Err(Error::BadKey);
        }
        let mut key = [0u8; 32];
        for (out, pair) in key.iter_mut().zip(s.chunks_exact(2)) {
            *out = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        Ok(HostKey(key))
    }

    fn mac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }

    /// A name for the key that does not reveal it: the first 16 hex digits
    /// of an HMAC-SHA-256 under the key of a fixed label. Two parties
    /// compare fingerprints to know they hold the same key.
    pub fn fingerprint(&self) -> String {
        let tag = self
            .mac()
            .chain_update(b"roost heartbeat key fingerprint")
            .finalize()
            .into_bytes();
        tag.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `other` is the same key (compared by fingerprint).
    pub fn same_as(&self, other: &HostKey) -> bool {
        self.fingerprint() == other.fingerprint()
    }
}

/// A host's heartbeat keys while one replaces another: the key in use,
/// since when (microseconds since the Unix epoch, when known) and, during a
/// rotation, the next one. Stored as one string, `<hex>[+<hex>][@<micros>]`,
/// so that both keys are sealed together.
#[derive(Clone, Debug)]
pub struct KeyRing {
    pub current: HostKey,
    pub next: Option<HostKey>,
    pub since_micros: Option<i64>,
}

impl KeyRing {
    /// A ring of one key, in use since `since_micros`.
    pub fn of(current: HostKey, since_micros: i64) -> KeyRing {
        KeyRing {
            current,
            next: None,
            since_micros: Some(since_micros),
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Result<KeyRing, Error> {
        let s = s.trim();
        let (keys, since_micros) = match s.split_once('@') {
            Some((k, t)) => (k, Some(t.parse::<i64>().map_err(|_| Error::BadKey)?)),
            None => (s, None),
        };
        let (current, next) = match keys.split_once('+') {
            Some((c, n)) => (HostKey::from_hex(c)?, Some(HostKey::from_hex(n)?)),
            None => (HostKey::from_hex(keys)?, None),
        };
        Ok(KeyRing {
            current,
            next,
            since_micros,
        })
    }

    /// The stored form.
    pub fn to_stored(&self) -> String {
        let mut s = self.current.to_hex();
        if let Some(n) = &self.next {
            s.push('+');
            s.push_str(&n.to_hex());
        }
        if let Some(t) = self.since_micros {
            s.push_str(&format!("@{t}"));
        }
        s
    }
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HostKey(..)")
    }
}

fn hex_digit(c: u8) -> Result<u8, Error> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(Error::BadKey),
    }
}

/// Which way a pulse goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Server to host (wire value 1).
    Request,
    /// Host to server (wire value 2).
    Response,
}

impl Kind {
    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Kind::Request => KIND_REQUEST,
            Kind::Response => KIND_RESPONSE,
        }
    }

    /// The kind for a wire value, if known.
    pub fn from_u8(v: u8) -> Option<Kind> {
        match v {
            KIND_REQUEST => Some(Kind::Request),
            KIND_RESPONSE => Some(Kind::Response),
            _ => None,
        }
    }
}

/// The health summary a host sends in its responses (all zero in requests).
///
/// Percentages are nominally 0-100; the wire carries any `u8` unchanged, so a
/// reader should treat larger values as 100. Unknown flag bits are carried
/// unchanged too (a newer agent may set them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Health {
    /// CPU use, percent.
    pub cpu_pct: u8,
    /// Memory use, percent.
    pub mem_pct: u8,
    /// Use of the fullest monitored filesystem, percent.
    pub fs_pct: u8,
    /// Bit flags: [`Health::DEGRADED`], [`Health::CRITICAL_PROCESS`],
    /// [`Health::MAJOR_PROCESS`], [`Health::REBOOTING`].
    pub flags: u8,
}

impl Health {
    /// The host considers itself degraded.
    pub const DEGRADED: u8 = 1;
    /// A critical monitored process has failed (the host should be failed).
    pub const CRITICAL_PROCESS: u8 = 2;
    /// A major monitored process has failed (the host should be degraded).
    pub const MAJOR_PROCESS: u8 = 4;
    /// The host is going down for a reboot (expect missed pulses).
    pub const REBOOTING: u8 = 8;

    /// Whether every bit of `flag` is set in [`Health::flags`].
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag == flag
    }
}

/// One heartbeat message, request or response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pulse {
    /// Request or response.
    pub kind: Kind,
    /// The network it travels on ([`NETWORK_MGMT`] or
    /// [`NETWORK_CLUSTER_HOST`]). It is authenticated, so a receiver can
    /// check it matches the socket the packet arrived on.
    pub network: u8,
    /// Pulse flags, set by the server and echoed by the agent.
    pub flags: u8,
    /// The host the request is for, or the response is from.
    pub host_id: u32,
    /// The server's session: a new, larger value at every server start.
    pub epoch: u64,
    /// Sequence number within the epoch; responses echo the request's.
    pub seq: u64,
    /// The server's clock when it sent the request, in microseconds;
    /// responses echo it so the server can compute the round-trip time.
    pub sent_at_micros: u64,
    /// The host's health (zero in requests).
    pub health: Health,
}

impl Pulse {
    /// The response an agent sends to this request: same network, flags,
    /// host, epoch, sequence number and send time, with the agent's health.
    pub fn response(&self, health: Health) -> Pulse {
        Pulse {
            kind: Kind::Response,
            health,
            ..*self
        }
    }
}

/// Why [`decode`] rejected a packet: a reason to count and drop it (like
/// [`DropReason`]), not a failure of the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// Shorter than [`PACKET_LEN`].
    Truncated,
    /// Longer than [`PACKET_LEN`].
    Oversized,
    /// Does not start with [`MAGIC`].
    BadMagic,
    /// The MAC does not match: forged, corrupted, or under another key.
    BadMac,
    /// Authentic, but of a kind this version does not know.
    UnknownKind,
    /// Authentic, but the reserved byte is not 0.
    BadReserved,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::Truncated => "heartbeat packet too short",
            DecodeError::Oversized => "heartbeat packet too long",
            DecodeError::BadMagic => "not a heartbeat packet (bad magic)",
            DecodeError::BadMac => "heartbeat packet failed authentication",
            DecodeError::UnknownKind => "unknown heartbeat packet kind",
            DecodeError::BadReserved => "heartbeat packet has a nonzero reserved byte",
        })
    }
}

impl DecodeError {
    /// The metric label for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Truncated => "truncated",
            DecodeError::Oversized => "oversized",
            DecodeError::BadMagic => "bad_magic",
            DecodeError::BadMac => "bad_mac",
            DecodeError::UnknownKind => "unknown_kind",
            DecodeError::BadReserved => "malformed",
        }
    }
}

/// Why a received heartbeat packet was dropped: every reason a receiver has,
/// from [`decode`], from the key lookup and from [`ReplayWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than [`PACKET_LEN`].
    Truncated,
    /// Longer than [`PACKET_LEN`].
    Oversized,
    /// Does not start with [`MAGIC`].
    BadMagic,
    /// No key is known for the packet's host id.
    UnknownHost,
    /// The MAC does not match.
    BadMac,
    /// Authentic but not understood (unknown kind, nonzero reserved byte).
    Malformed,
    /// Not newer than the last accepted pulse of the same epoch.
    Replayed,
    /// From an older epoch than the last accepted pulse.
    Stale,
}

impl DropReason {
    /// Every reason, for registering metric labels up front.
    pub const ALL: [DropReason; 8] = [
        DropReason::Truncated,
        DropReason::Oversized,
        DropReason::BadMagic,
        DropReason::UnknownHost,
        DropReason::BadMac,
        DropReason::Malformed,
        DropReason::Replayed,
        DropReason::Stale,
    ];

    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::Oversized => "oversized",
            DropReason::BadMagic => "bad_magic",
            DropReason::UnknownHost => "unknown_host",
            DropReason::BadMac => "bad_mac",
            DropReason::Malformed => "malformed",
            DropReason::Replayed => "replayed",
            DropReason::Stale => "stale",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<DecodeError> for DropReason {
    /// [`DecodeError::UnknownKind`] and [`DecodeError::BadReserved`] both
    /// become [`DropReason::Malformed`].
    fn from(e: DecodeError) -> DropReason {
        match e {
            DecodeError::Truncated => DropReason::Truncated,
            DecodeError::Oversized => DropReason::Oversized,
            DecodeError::BadMagic => DropReason::BadMagic,
            DecodeError::BadMac => DropReason::BadMac,
            DecodeError::UnknownKind | DecodeError::BadReserved => DropReason::Malformed,
        }
    }
}

/// Serializes and authenticates a pulse.
pub fn encode(p: &Pulse, key: &HostKey) -> [u8; PACKET_LEN] {
    let mut buf = [0u8; PACKET_LEN];
    buf[0..4].copy_from_slice(&MAGIC);
    buf[4] = p.kind.as_u8();
    buf[5] = p.network;
    buf[6] = p.flags;
    buf[7] = 0;
    buf[8..12].copy_from_slice(&p.host_id.to_be_bytes());
    buf[12..20].copy_from_slice(&p.epoch.to_be_bytes());
    buf[20..28].copy_from_slice(&p.seq.to_be_bytes());
    buf[28..36].copy_from_slice(&p.sent_at_micros.to_be_bytes());
    buf[36] = p.health.cpu_pct;
    buf[37] = p.health.mem_pct;
    buf[38] = p.health.fs_pct;
    buf[39] = p.health.flags;
    let tag = key.mac().chain_update(&buf[..BODY_LEN]).finalize();
    buf[BODY_LEN..].copy_from_slice(&tag.into_bytes());
    buf
}

/// Length and magic checks shared by [`peek_host_id`] and [`decode`].
fn check_frame(buf: &[u8]) -> Result<&[u8; PACKET_LEN], DecodeError> {
    let frame: &[u8; PACKET_LEN] = match buf.len().cmp(&PACKET_LEN) {
        std::cmp::Ordering::Less => return Err(DecodeError::Truncated),
        std::cmp::Ordering::Greater => return Err(DecodeError::Oversized),
        std::cmp::Ordering::Equal => buf.try_into().map_err(|_| DecodeError::Truncated)?,
    };
    if frame[0..4] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    Ok(frame)
}

fn be_u32(b: &[u8; PACKET_LEN], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_u64(b: &[u8; PACKET_LEN], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(v)
}

/// The (unauthenticated) host id of a packet, to find the key to verify it
/// with; `None` unless the length and magic are right. Trust nothing else
/// about the packet until [`decode`] succeeds.
pub fn peek_host_id(buf: &[u8]) -> Option<u32> {
    check_frame(buf).ok().map(|b| be_u32(b, 8))
}

/// Checks a packet's length, magic and MAC (in constant time, before any
/// other field is read), then parses it.
pub fn decode(buf: &[u8], key: &HostKey) -> Result<Pulse, DecodeError> {
    let b = check_frame(buf)?;
    key.mac()
        .chain_update(&b[..BODY_LEN])
        .verify_slice(&b[BODY_LEN..])
        .map_err(|_| DecodeError::BadMac)?;
    let kind = Kind::from_u8(b[4]).ok_or(DecodeError::UnknownKind)?;
    if b[7] != 0 {
        return Err(DecodeError::BadReserved);
    }
    Ok(Pulse {
        kind,
        network: b[5],
        flags: b[6],
        host_id: be_u32(b, 8),
        epoch: be_u64(b, 12),
        seq: be_u64(b, 20),
        sent_at_micros: be_u64(b, 28),
        health: Health {
            cpu_pct: b[36],
            mem_pct: b[37],
            fs_pct: b[38],
            flags: b[39],
        },
    })
}

/// Replay protection: remembers the newest `(epoch, seq)` accepted for each
/// stream `(host_id, network, kind)` and accepts only strictly newer pulses.
///
/// A higher epoch (a restarted server) starts the stream over, whatever its
/// sequence number. A pulse that arrives after a later one (UDP reordering)
/// is dropped as [`DropReason::Replayed`]; for a heartbeat a late pulse has
/// no use anyway.
///
/// Only [`check`](ReplayWindow::check) pulses that [`decode`] accepted: then
/// only holders of a key can add entries, one per stream.
#[derive(Debug, Clone, Default)]
pub struct ReplayWindow {
    last: HashMap<(u32, u8, Kind), (u64, u64)>,
}

impl ReplayWindow {
    /// An empty window.
    pub fn new() -> ReplayWindow {
        ReplayWindow::default()
    }

    /// Accepts and records `p` if it is newer than the last pulse accepted
    /// on its stream; otherwise leaves the window unchanged and returns
    /// [`DropReason::Replayed`] (same epoch, sequence number not larger) or
    /// [`DropReason::Stale`] (older epoch).
    pub fn check(&mut self, p: &Pulse) -> Result<(), DropReason> {
        let stream = (p.host_id, p.network, p.kind);
        let candidate = (p.epoch, p.seq);
        match self.last.get_mut(&stream) {
            None => {
                self.last.insert(stream, candidate);
                Ok(())
            }
            Some(last) => {
                if p.epoch < last.0 {
                    Err(DropReason::Stale)
                } else if p.epoch == last.0 && p.seq <= last.1 {
                    Err(DropReason::Replayed)
                } else {
                    *last = candidate;
                    Ok(())
                }
            }
        }
    }

    /// Forgets every stream of a host (when it is deleted or its key
    /// changes).
    pub fn forget_host(&mut self, host_id: u32) {
        self.last.retain(|&(h, _, _), _| h != host_id);
    }

    /// The number of streams remembered.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no stream is remembered.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

/// The answering side of the heartbeat for one host, without I/O: checks a
/// request (authentic, a request, for this host, newer than the last one)
/// and builds the response. The host agent and the simulated agents both
/// answer through it, so they cannot drift from each other.
///
/// During a key rotation it holds the next key too and accepts requests
/// under either: the first request under the next key makes it the key
/// (the server has switched), reported once by [`Answerer::take_promoted`].
/// Each answer is made under the key its request came under, so no pulse
/// is lost while the two sides switch.
#[derive(Debug, Clone)]
pub struct Answerer {
    host_id: u32,
    key: HostKey,
    next: Option<HostKey>,
    promoted: bool,
    window: ReplayWindow,
}

impl Answerer {
    /// An answerer for host `host_id` holding its `key`.
    pub fn new(host_id: u32, key: HostKey) -> Answerer {
        Answerer {
            host_id,
            key,
            next: None,
            promoted: false,
            window: ReplayWindow::new(),
        }
    }

    /// Accepts `next` besides the current key from now on (a rotation); the
    /// same key as the current one is ignored.
    pub fn offer_next(&mut self, next: HostKey) {
        if !next.same_as(&self.key) {
            self.next = Some(next);
        }
    }

    /// The key the first request under the next key made current, once.
    pub fn take_promoted(&mut self) -> Option<HostKey> {
        std::mem::take(&mut self.promoted).then(|| self.key.clone())
    }

    /// Checks a datagram; the request, or the metric label of the reason it
    /// must be dropped (a [`DecodeError`] or [`DropReason`] label,
    /// `wrong_kind` or `wrong_host`).
    pub fn accept(&mut self, buf: &[u8]) -> Result<Pulse, &'static str> {
        let (p, under_next) = match decode(buf, &self.key) {
            Ok(p) => (p, false),
            Err(DecodeError::BadMac) if self.next.is_some() => {
                let next = self.next.as_ref().ok_or("bad_mac")?;
                (decode(buf, next).map_err(|e| e.reason())?, true)
            }
            Err(e) => return Err(e.reason()),
        };
        if p.kind != Kind::Request {
            return Err("wrong_kind");
        }
        if p.host_id != self.host_id {
            return Err("wrong_host");
        }
        self.window.check(&p).map_err(|r| r.as_str())?;
        if under_next && let Some(next) = self.next.take() {
            self.key = next;
            self.promoted = true;
        }
        Ok(p)
    }

    /// The authenticated response to an accepted `request`.
    pub fn answer(&self, request: &Pulse, health: Health) -> [u8; PACKET_LEN] {
        encode(&request.response(health), &self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_loses_no_request_and_the_next_key_takes_over_at_its_first_request() {
        let (k1, k2) = (HostKey::from_bytes([1; 32]), HostKey::from_bytes([2; 32]));
        let request = |seq: u64| Pulse {
            kind: Kind::Request,
            network: NETWORK_MGMT,
            flags: 0,
            host_id: 4,
            epoch: 1,
            seq,
            sent_at_micros: 0,
            health: Health::default(),
        };
        let mut a = Answerer::new(4, k1.clone());
        assert_eq!(a.accept(&encode(&request(1), &k2)), Err("bad_mac"));
        a.offer_next(k2.clone());
        // Both keys work while the server has not switched; answers go
        // under the key of their request.
        let r = a.accept(&encode(&request(2), &k1)).unwrap();
        assert!(decode(&a.answer(&r, Health::default()), &k1).is_ok());
        assert!(a.take_promoted().is_none());
        let r = a.accept(&encode(&request(3), &k2)).unwrap();
        assert!(decode(&a.answer(&r, Health::default()), &k2).is_ok());
        assert!(a.take_promoted().is_some_and(|k| k.same_as(&k2)));
        assert!(a.take_promoted().is_none());
        // The old key is gone.
        assert_eq!(a.accept(&encode(&request(4), &k1)), Err("bad_mac"));
        assert!(a.accept(&encode(&request(5), &k2)).is_ok());
    }

    #[test]
    fn a_key_ring_round_trips_and_fingerprints_do_not_reveal_keys() {
        let (k1, k2) = (HostKey::from_bytes([1; 32]), HostKey::from_bytes([2; 32]));
        let one = KeyRing::of(k1.clone(), 42);
        assert_eq!(one.to_stored(), format!("{}@42", k1.to_hex()));
        let two = KeyRing {
            current: k1.clone(),
            next: Some(k2.clone()),
            since_micros: Some(7),
        };
        let back = KeyRing::parse(&two.to_stored()).unwrap();
        assert!(back.current.same_as(&k1) && back.next.is_some_and(|n| n.same_as(&k2)));
        assert_eq!(back.since_micros, Some(7));
        let parsed = KeyRing::parse(&one.to_stored()).unwrap();
        assert!(parsed.next.is_none() && parsed.since_micros == Some(42));
        // A key stored before ages were kept.
        let legacy = KeyRing::parse(&k1.to_hex()).unwrap();
        assert!(legacy.since_micros.is_none() && legacy.current.same_as(&k1));
        assert!(KeyRing::parse("zz+").is_err());
        assert!(KeyRing::parse(&format!("{}@soon", k1.to_hex())).is_err());
        assert_eq!(k1.fingerprint().len(), 16);
        assert_ne!(k1.fingerprint(), k2.fingerprint());
        assert!(!k1.to_hex().contains(&k1.fingerprint()));
    }

    #[test]
    fn the_answerer_accepts_only_authentic_new_requests_for_its_host() {
        let key = HostKey::from_bytes([7; 32]);
        let request = |host_id: u32, seq: u64| Pulse {
            kind: Kind::Request,
            network: NETWORK_MGMT,
            flags: 0,
            host_id,
            epoch: 1,
            seq,
            sent_at_micros: 42,
            health: Health::default(),
        };
        let mut a = Answerer::new(9, key.clone());
        let ok = encode(&request(9, 1), &key);
        let p = a.accept(&ok).expect("a fresh request");
        assert_eq!(a.accept(&ok), Err("replayed"));
        assert_eq!(a.accept(&encode(&request(8, 2), &key)), Err("wrong_host"));
        let foreign = encode(&request(9, 3), &HostKey::from_bytes([1; 32]));
        assert_eq!(a.accept(&foreign), Err("bad_mac"));
        let response = encode(&request(9, 4).response(Health::default()), &key);
        assert_eq!(a.accept(&response), Err("wrong_kind"));
        assert!(a.accept(&encode(&request(9, 5), &key)).is_ok());
        let health = Health {
            cpu_pct: 3,
            flags: Health::DEGRADED,
            ..Health::default()
        };
        let back = decode(&a.answer(&p, health), &key).expect("authentic");
        assert_eq!(
            (back.kind, back.seq, back.health),
            (Kind::Response, 1, health)
        );
    }
    use proptest::prelude::*;

    fn key() -> HostKey {
        HostKey::from_bytes(*b"0123456789abcdef0123456789abcdef")
    }

    fn pulse() -> Pulse {
        Pulse {
            kind: Kind::Response,
            network: NETWORK_CLUSTER_HOST,
            flags: 0x5a,
            host_id: 0x0102_0304,
            epoch: 1_750_000_000_000_000,
            seq: 42,
            sent_at_micros: 0x1122_3344_5566_7788,
            health: Health {
                cpu_pct: 12,
                mem_pct: 34,
                fs_pct: 56,
                flags: Health::DEGRADED | Health::MAJOR_PROCESS,
            },
        }
    }

    /// Re-signs a tampered body, as a holder of the key could.
    fn resign(buf: &mut [u8; PACKET_LEN], key: &HostKey) {
        let tag = key.mac().chain_update(&buf[..BODY_LEN]).finalize();
        buf[BODY_LEN..].copy_from_slice(&tag.into_bytes());
    }

    #[test]
    fn the_packet_is_72_bytes_and_fits_the_receive_buffer() {
        assert_eq!(PACKET_LEN, 72);
        assert_eq!(encode(&pulse(), &key()).len(), PACKET_LEN);
        const { assert!(PACKET_LEN <= MAX_DATAGRAM) };
    }

    #[test]
    fn a_pulse_survives_a_round_trip() {
        let p = pulse();
        let buf = encode(&p, &key());
        assert_eq!(decode(&buf, &key()), Ok(p));
        assert_eq!(peek_host_id(&buf), Some(p.host_id));
    }

    #[test]
    fn the_layout_is_big_endian_at_the_documented_offsets() {
        let buf = encode(&pulse(), &key());
        assert_eq!(&buf[0..4], b"RHB1");
        assert_eq!(buf[4..8], [2, 1, 0x5a, 0]);
        assert_eq!(buf[8..12], [1, 2, 3, 4]);
        assert_eq!(buf[12..20], 1_750_000_000_000_000u64.to_be_bytes());
        assert_eq!(buf[20..28], 42u64.to_be_bytes());
        assert_eq!(
            buf[28..36],
            [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]
        );
        assert_eq!(buf[36..40], [12, 34, 56, 5]);
    }

    #[test]
    fn a_response_echoes_the_request_and_carries_health() {
        let req = Pulse {
            kind: Kind::Request,
            health: Health::default(),
            ..pulse()
        };
        let resp = req.response(pulse().health);
        assert_eq!(resp, pulse());
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let buf = encode(&pulse(), &key());
        for byte in 0..PACKET_LEN {
            for bit in 0..8 {
                let mut bad = buf;
                bad[byte] ^= 1 << bit;
                let expected = if byte < 4 {
                    DecodeError::BadMagic
                } else {
                    DecodeError::BadMac
                };
                assert_eq!(decode(&bad, &key()), Err(expected), "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn a_packet_under_another_key_is_rejected() {
        let buf = encode(&pulse(), &key());
        let other = HostKey::from_bytes([7; 32]);
        assert_eq!(decode(&buf, &other), Err(DecodeError::BadMac));
    }

    #[test]
    fn truncated_and_oversized_packets_are_rejected() {
        let buf = encode(&pulse(), &key());
        for len in 0..PACKET_LEN {
            assert_eq!(decode(&buf[..len], &key()), Err(DecodeError::Truncated));
            assert_eq!(peek_host_id(&buf[..len]), None);
        }
        let mut long = buf.to_vec();
        long.push(0);
        assert_eq!(decode(&long, &key()), Err(DecodeError::Oversized));
        assert_eq!(peek_host_id(&long), None);
        long.resize(MAX_DATAGRAM, 0);
        assert_eq!(decode(&long, &key()), Err(DecodeError::Oversized));
    }

    #[test]
    fn a_bad_magic_is_rejected_and_hides_the_host_id() {
        let mut buf = encode(&pulse(), &key());
        buf[3] = b'2';
        assert_eq!(decode(&buf, &key()), Err(DecodeError::BadMagic));
        assert_eq!(peek_host_id(&buf), None);
    }

    #[test]
    fn an_authentic_packet_of_unknown_kind_is_rejected() {
        for kind in [0u8, 3, 255] {
            let mut buf = encode(&pulse(), &key());
            buf[4] = kind;
            resign(&mut buf, &key());
            assert_eq!(decode(&buf, &key()), Err(DecodeError::UnknownKind));
        }
    }

    #[test]
    fn an_authentic_packet_with_a_nonzero_reserved_byte_is_rejected() {
        let mut buf = encode(&pulse(), &key());
        buf[7] = 1;
        resign(&mut buf, &key());
        assert_eq!(decode(&buf, &key()), Err(DecodeError::BadReserved));
    }

    #[test]
    fn decode_errors_map_to_their_metric_labels() {
        let cases = [
            (DecodeError::Truncated, "truncated", DropReason::Truncated),
            (DecodeError::Oversized, "oversized", DropReason::Oversized),
            (DecodeError::BadMagic, "bad_magic", DropReason::BadMagic),
            (DecodeError::BadMac, "bad_mac", DropReason::BadMac),
            (
                DecodeError::UnknownKind,
                "unknown_kind",
                DropReason::Malformed,
            ),
            (DecodeError::BadReserved, "malformed", DropReason::Malformed),
        ];
        for (e, label, drop) in cases {
            assert_eq!(e.reason(), label);
            assert_eq!(DropReason::from(e), drop);
        }
        let labels: Vec<_> = DropReason::ALL.iter().map(DropReason::as_str).collect();
        assert_eq!(
            labels,
            [
                "truncated",
                "oversized",
                "bad_magic",
                "unknown_host",
                "bad_mac",
                "malformed",
                "replayed",
                "stale"
            ]
        );
    }

    #[test]
    fn the_same_packet_twice_is_a_replay() {
        let mut w = ReplayWindow::new();
        let p = decode(&encode(&pulse(), &key()), &key()).unwrap();
        assert_eq!(w.check(&p), Ok(()));
        assert_eq!(w.check(&p), Err(DropReason::Replayed));
        let older = Pulse { seq: 41, ..p };
        assert_eq!(w.check(&older), Err(DropReason::Replayed));
        let newer = Pulse { seq: 43, ..p };
        assert_eq!(w.check(&newer), Ok(()));
    }

    #[test]
    fn an_older_epoch_is_stale() {
        let mut w = ReplayWindow::new();
        let p = pulse();
        assert_eq!(w.check(&p), Ok(()));
        let old = Pulse {
            epoch: p.epoch - 1,
            seq: p.seq + 1000,
            ..p
        };
        assert_eq!(w.check(&old), Err(DropReason::Stale));
        // A rejected pulse leaves the window unchanged.
        assert_eq!(
            w.check(&Pulse {
                seq: p.seq + 1,
                ..p
            }),
            Ok(())
        );
    }

    #[test]
    fn a_newer_epoch_is_accepted_with_a_lower_seq() {
        let mut w = ReplayWindow::new();
        let p = pulse();
        assert_eq!(w.check(&p), Ok(()));
        let restarted = Pulse {
            epoch: p.epoch + 1,
            seq: 0,
            ..p
        };
        assert_eq!(w.check(&restarted), Ok(()));
        assert_eq!(w.check(&p), Err(DropReason::Stale));
    }

    #[test]
    fn streams_are_separate_per_host_network_and_kind() {
        let mut w = ReplayWindow::new();
        let p = pulse();
        assert_eq!(w.check(&p), Ok(()));
        assert_eq!(w.check(&Pulse { host_id: 9, ..p }), Ok(()));
        assert_eq!(
            w.check(&Pulse {
                network: NETWORK_MGMT,
                ..p
            }),
            Ok(())
        );
        assert_eq!(
            w.check(&Pulse {
                kind: Kind::Request,
                ..p
            }),
            Ok(())
        );
        assert_eq!(w.len(), 4);
        w.forget_host(p.host_id);
        assert_eq!(w.len(), 1);
        assert_eq!(w.check(&p), Ok(()));
    }

    #[test]
    fn the_debug_of_a_host_key_hides_the_bytes() {
        let k = HostKey::from_bytes([0xab; 32]);
        let shown = format!("{k:?} {:?} {k:#?}", Some(k.clone()));
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
        assert_eq!(format!("{k:?}"), "HostKey(..)");
    }

    #[test]
    fn a_host_key_survives_hex_storage() {
        let k = key();
        let hex = k.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(
            hex,
            "3031323334353637383961626364656630313233343536373839616263646566"
        );
        let back = HostKey::from_hex(&format!("{}\n", hex.to_uppercase())).unwrap();
        assert_eq!(back.to_hex(), hex);
        // Same key bytes: a packet from one verifies under the other.
        assert!(decode(&encode(&pulse(), &k), &back).is_ok());
        assert_eq!(HostKey::from_hex(&hex[..63]).err(), Some(Error::BadKey));
        assert_eq!(
            HostKey::from_hex(&format!("{}g", &hex[..63])).err(),
            Some(Error::BadKey)
        );
        assert_eq!(
            HostKey::from_hex(&format!("{hex}00")).err(),
            Some(Error::BadKey)
        );
        assert_eq!(
            HostKey::from_hex("é".repeat(32).as_str()).err(),
            Some(Error::BadKey)
        );
    }

    fn arb_pulse() -> impl Strategy<Value = Pulse> {
        (
            prop_oneof![Just(Kind::Request), Just(Kind::Response)],
            any::<(u8, u8, u32, u64, u64, u64)>(),
            any::<[u8; 4]>(),
        )
            .prop_map(
                |(kind, (network, flags, host_id, epoch, seq, sent_at_micros), h)| Pulse {
                    kind,
                    network,
                    flags,
                    host_id,
                    epoch,
                    seq,
                    sent_at_micros,
                    health: Health {
                        cpu_pct: h[0],
                        mem_pct: h[1],
                        fs_pct: h[2],
                        flags: h[3],
                    },
                },
            )
    }

    proptest! {
        #[test]
        fn decode_never_panics_on_arbitrary_bytes(
            bytes in prop::collection::vec(any::<u8>(), 0..MAX_DATAGRAM)
        ) {
            let result = decode(&bytes, &key());
            let _ = peek_host_id(&bytes);
            // Random bytes are never accepted (a 2^-256 forgery aside).
            prop_assert!(result.is_err());
        }

        #[test]
        fn decode_never_panics_on_packets_with_the_right_length_and_magic(
            tail in prop::collection::vec(any::<u8>(), PACKET_LEN - 4)
        ) {
            let mut buf = [0u8; PACKET_LEN];
            buf[..4].copy_from_slice(&MAGIC);
            buf[4..].copy_from_slice(&tail);
            prop_assert_eq!(decode(&buf, &key()), Err(DecodeError::BadMac));
            prop_assert_eq!(peek_host_id(&buf), Some(u32::from_be_bytes([tail[4], tail[5], tail[6], tail[7]])));
        }

        #[test]
        fn arbitrary_pulses_round_trip(p in arb_pulse(), k in any::<[u8; 32]>()) {
            let key = HostKey::from_bytes(k);
            let buf = encode(&p, &key);
            prop_assert_eq!(decode(&buf, &key), Ok(p));
            prop_assert_eq!(peek_host_id(&buf), Some(p.host_id));
        }
    }
}
