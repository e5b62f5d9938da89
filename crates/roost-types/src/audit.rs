//! The audit log's chain of records.
//!
//! Every record carries the hash of the record before it, and its own hash
//! is `SHA-256(canonical bytes of the record || previous hash)`. Changing,
//! removing or reordering a stored record therefore breaks the chain at
//! that record, which [`Verifier`] finds. What the chain cannot show by
//! itself is a rewrite of the whole tail with recomputed hashes, or records
//! cut from the end: only a hash kept elsewhere (an anchor, the copy a
//! system controller holds) proves those.
//!
//! Pure: no I/O, no clock; the time of a record is given.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::Timestamp;

/// A SHA-256 hash of the chain.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// The previous hash of the very first record.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads 64 hex digits.
    pub fn from_hex(s: &str) -> Option<ChainHash> {
        let s = s.as_bytes();
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(ChainHash(out))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

/// What happened, before it is numbered and chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub time: Timestamp,
    /// The user name (or, for an agent, `host:<name>`; empty when unknown).
    pub user: String,
    pub roles: Vec<String>,
    /// The peer's address (`ip:port`), empty when unknown.
    pub source: String,
    pub method: String,
    /// The request path, without its query.
    pub path: String,
    /// The HTTP status answered.
    pub status: u16,
}

/// One record of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// 1, 2, 3, ... without gaps.
    pub seq: u64,
    pub entry: AuditEntry,
    pub prev_hash: ChainHash,
    pub hash: ChainHash,
}

/// Longest text field kept (longer ones are cut at a character boundary).
pub const MAX_FIELD: usize = 512;

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The canonical bytes of a record: a version tag, then every field in a
/// fixed order, numbers big-endian, texts and lists length-prefixed, so no
/// two different records share their bytes.
pub fn canonical_bytes(seq: u64, e: &AuditEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + e.path.len() + e.user.len());
    out.extend_from_slice(b"roost-audit-v1\0");
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&e.time.micros().to_be_bytes());
    put_str(&mut out, &e.user);
    out.extend_from_slice(&(e.roles.len() as u32).to_be_bytes());
    for r in &e.roles {
        put_str(&mut out, r);
    }
    put_str(&mut out, &e.source);
    put_str(&mut out, &e.method);
    put_str(&mut out, &e.path);
    out.extend_from_slice(&e.status.to_be_bytes());
    out
}

/// `SHA-256(canonical bytes || previous hash)`.
pub fn record_hash(seq: u64, e: &AuditEntry, prev: &ChainHash) -> ChainHash {
    let mut h = Sha256::new();
    h.update(canonical_bytes(seq, e));
    h.update(prev.0);
    ChainHash(h.finalize().into())
}

fn cut(s: &mut String) {
    if s.len() > MAX_FIELD {
        let mut at = MAX_FIELD;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
}

/// The head of a chain: the last record's number and hash (or the anchor
/// left by pruning, or nothing yet). Appending numbers and chains entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Chain {
    pub last_seq: u64,
    pub last_hash: ChainHash,
}

impl Chain {
    /// A chain whose last record is `last_seq` with `last_hash`.
    pub fn resume(last_seq: u64, last_hash: ChainHash) -> Chain {
        Chain {
            last_seq,
            last_hash,
        }
    }

    /// Numbers and chains an entry (long texts are cut to [`MAX_FIELD`]).
    pub fn append(&mut self, mut entry: AuditEntry) -> AuditRecord {
        cut(&mut entry.user);
        cut(&mut entry.source);
        cut(&mut entry.method);
        cut(&mut entry.path);
        entry.roles.iter_mut().for_each(cut);
        let seq = self.last_seq + 1;
        let prev_hash = self.last_hash;
        let hash = record_hash(seq, &entry, &prev_hash);
        self.last_seq = seq;
        self.last_hash = hash;
        AuditRecord {
            seq,
            entry,
            prev_hash,
            hash,
        }
    }
}

/// Why the chain breaks at a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    /// Records are missing: the expected number never came.
    Missing,
    /// A number came again or went backwards.
    OutOfOrder,
    /// The record does not name its predecessor's hash: a record before it
    /// was removed, replaced or moved.
    Unlinked,
    /// The record's content does not give its stored hash: changed.
    Changed,
}

impl Break {
    pub fn as_str(self) -> &'static str {
        match self {
            Break::Missing => "missing record",
            Break::OutOfOrder => "record out of order",
            Break::Unlinked => "record does not follow the one before it",
            Break::Changed => "record content changed",
        }
    }
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where and why a chain breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Broken {
    /// The first sequence number that is not as it should be.
    pub seq: u64,
    pub reason: Break,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Records checked (up to and including the first broken one).
    pub records: u64,
    pub broken: Option<Broken>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.broken.is_none()
    }
}

/// Checks records fed in stored order, one at a time (so a long log
/// needs no memory in proportion to it). Starts from the anchor: the
/// number and hash of the last record pruned, or nothing when nothing was
/// pruned (the first record must then be number 1 on the genesis hash).
#[derive(Debug, Clone)]
pub struct Verifier {
    expect: Chain,
    records: u64,
    broken: Option<Broken>,
}

impl Verifier {
    pub fn new(anchor: Option<Chain>) -> Verifier {
        Verifier {
            expect: anchor.unwrap_or_default(),
            records: 0,
            broken: None,
        }
    }

    /// Checks the next record; false once the chain is broken (later
    /// records are not looked at).
    pub fn feed(&mut self, r: &AuditRecord) -> bool {
        if self.broken.is_some() {
            return false;
        }
        self.records += 1;
        let want = self.expect.last_seq + 1;
        let reason = if r.seq > want {
            Some(Broken {
                seq: want,
                reason: Break::Missing,
            })
        } else if r.seq < want {
            Some(Broken {
                seq: r.seq,
                reason: Break::OutOfOrder,
            })
        } else if r.prev_hash != self.expect.last_hash {
            Some(Broken {
                seq: r.seq,
                reason: Break::Unlinked,
            })
        } else if record_hash(r.seq, &r.entry, &r.prev_hash) != r.hash {
            Some(Broken {
                seq: r.seq,
                reason: Break::Changed,
            })
        } else {
            None
        };
        match reason {
            Some(b) => {
                self.broken = Some(b);
                false
            }
            None => {
                self.expect = Chain::resume(r.seq, r.hash);
                true
            }
        }
    }

    /// The verdict; `head`, when given, is the last record the writer
    /// knows it wrote: a chain that stops short of it lost its tail.
    pub fn finish(self, head: Option<u64>) -> Verdict {
        let broken = self.broken.or_else(|| {
            head.filter(|h| *h > self.expect.last_seq).map(|_| Broken {
                seq: self.expect.last_seq + 1,
                reason: Break::Missing,
            })
        });
        Verdict {
            records: self.records,
            broken,
        }
    }
}

/// Verifies a whole slice of records in stored order.
pub fn verify(records: &[AuditRecord], anchor: Option<Chain>) -> Verdict {
    let mut v = Verifier::new(anchor);
    for r in records {
        if !v.feed(r) {
            break;
        }
    }
    v.finish(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(i: i64) -> AuditEntry {
        AuditEntry {
            time: Timestamp(1_700_000_000_000_000 + i),
            user: format!("user{}", i % 3),
            roles: vec!["admin".into()],
            source: "127.0.0.1:5000".into(),
            method: "POST".into(),
            path: format!("/v1/alarms/{i}"),
            status: 200,
        }
    }

    fn chain(n: usize) -> Vec<AuditRecord> {
        let mut c = Chain::default();
        (0..n).map(|i| c.append(entry(i as i64))).collect()
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let rs = chain(5);
        assert_eq!(rs[0].seq, 1);
        assert_eq!(rs[0].prev_hash, ChainHash::GENESIS);
        let v = verify(&rs, None);
        assert!(v.ok());
        assert_eq!(v.records, 5);
        assert!(verify(&[], None).ok());
    }

    #[test]
    fn a_changed_field_breaks_at_that_record() {
        let mut rs = chain(5);
        rs[2].entry.status = 201;
        let v = verify(&rs, None);
        assert_eq!(
            v.broken,
            Some(Broken {
                seq: 3,
                reason: Break::Changed
            })
        );
    }

    #[test]
    fn a_recomputed_hash_breaks_the_next_link() {
        let mut rs = chain(5);
        rs[2].entry.user = "mallory".into();
        rs[2].hash = record_hash(3, &rs[2].entry, &rs[2].prev_hash);
        let b = verify(&rs, None).broken.unwrap();
        assert_eq!((b.seq, b.reason), (4, Break::Unlinked));
    }

    #[test]
    fn a_removed_record_is_missing() {
        let mut rs = chain(5);
        rs.remove(1);
        let b = verify(&rs, None).broken.unwrap();
        assert_eq!((b.seq, b.reason), (2, Break::Missing));
        // The first record removed, with no anchor.
        let mut rs = chain(3);
        rs.remove(0);
        assert_eq!(verify(&rs, None).broken.unwrap().seq, 1);
    }

    #[test]
    fn reordered_records_are_found() {
        let mut rs = chain(5);
        rs.swap(1, 2);
        let b = verify(&rs, None).broken.unwrap();
        assert_eq!((b.seq, b.reason), (2, Break::Missing));
        // Contents swapped but numbers kept in place.
        let mut rs = chain(5);
        let (a, b) = (rs[1].clone(), rs[2].clone());
        rs[1] = AuditRecord { seq: 2, ..b };
        rs[2] = AuditRecord { seq: 3, ..a };
        let b = verify(&rs, None).broken.unwrap();
        assert_eq!((b.seq, b.reason), (2, Break::Unlinked));
    }

    #[test]
    fn a_pruned_chain_verifies_from_its_anchor() {
        let rs = chain(6);
        let anchor = Chain::resume(rs[2].seq, rs[2].hash);
        assert!(verify(&rs[3..], Some(anchor)).ok());
        assert!(!verify(&rs[3..], None).ok(), "no anchor: must start at 1");
        let wrong = Chain::resume(3, ChainHash([7; 32]));
        let b = verify(&rs[3..], Some(wrong)).broken.unwrap();
        assert_eq!((b.seq, b.reason), (4, Break::Unlinked));
    }

    #[test]
    fn a_lost_tail_is_found_against_the_head() {
        let rs = chain(4);
        let mut v = Verifier::new(None);
        for r in &rs[..2] {
            v.feed(r);
        }
        let b = v.finish(Some(4)).broken.unwrap();
        assert_eq!((b.seq, b.reason), (3, Break::Missing));
    }

    #[test]
    fn long_fields_are_cut_at_a_character_boundary() {
        let mut c = Chain::default();
        let mut e = entry(0);
        e.path = "é".repeat(MAX_FIELD);
        let r = c.append(e);
        assert!(r.entry.path.len() <= MAX_FIELD);
        assert!(verify(&[r], None).ok());
    }

    #[test]
    fn hashes_read_back_from_hex() {
        let h = chain(1)[0].hash;
        assert_eq!(ChainHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(ChainHash::from_hex("zz"), None);
        assert_eq!(ChainHash::from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn field_boundaries_matter() {
        // "ab" + "c" and "a" + "bc" must not hash alike.
        let mut a = entry(0);
        a.user = "ab".into();
        a.source = "c".into();
        let mut b = entry(0);
        b.user = "a".into();
        b.source = "bc".into();
        assert_ne!(canonical_bytes(1, &a), canonical_bytes(1, &b));
    }

    proptest! {
        #[test]
        fn any_single_change_is_found_at_or_before_it(
            n in 2usize..20,
            pick in 0usize..1000,
            what in 0u8..5,
        ) {
            let mut rs = chain(n);
            let i = pick % n;
            let before = verify(&rs, None);
            prop_assert!(before.ok());
            match what {
                0 => rs[i].entry.status ^= 1,
                1 => rs[i].entry.user.push('x'),
                2 => rs[i].entry.time = Timestamp(rs[i].entry.time.micros() + 1),
                3 => { rs.remove(i); }
                _ => {
                    let j = (i + 1) % n;
                    rs.swap(i, j);
                }
            }
            let v = verify(&rs, None);
            if what == 3 && i == n - 1 {
                // Cutting the tail is invisible without the head.
                prop_assert!(v.ok());
            } else {
                let b = v.broken.expect("the change is found");
                let first = if what == 4 { i.min((i + 1) % n) } else { i };
                prop_assert_eq!(b.seq, first as u64 + 1);
            }
        }
    }
}
