//! TPM-rooted host identity: what a host's quotes must prove, and what a
//! quote changes. Pure: fed the host's record, the quote, the nonce and
//! the time; the signature is checked with `roost_pki::attest` (ordinary
//! crypto).
//!
//! An agent on a host with a TPM enrolls with its attestation key (made in
//! the TPM, never leaving it) and a quote over the chosen PCRs for a nonce
//! bound to its single-use join token; the server keeps the key and learns
//! the quoted values as the expected ones. Afterwards the server hands the
//! agent a fresh nonce in the reply to a report every
//! `quote_interval_secs`, and checks the quote that comes with the next
//! report. A quote that does not verify, or PCR values that differ from the
//! expected ones, mark the host failed: 500.110 is raised and the host
//! cannot be unlocked until an admin accepts the values it now quotes (after
//! a legitimate change, such as a firmware update).

use std::collections::BTreeMap;

use roost_api::tpm::{
    AttestationView, TpmEnrollment, TpmQuote, enrollment_nonce, from_hex, to_hex,
};
use roost_mtce::AlarmOut;
use roost_pki::attest::{QuoteParts, verify_quote};
use roost_store::StoredHost;
use roost_types::{Severity, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

/// The alarm of a host whose attestation failed.
pub const ALARM: &str = "500.110";

/// How hosts are attested (`[tpm]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Refuse enrollments without a TPM.
    pub required: bool,
    /// The PCRs of the SHA-256 bank every quote must cover.
    pub pcrs: Vec<u8>,
    /// How often a host is asked for a quote, seconds.
    pub quote_interval_secs: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            required: false,
            pcrs: (0..=7).collect(),
            quote_interval_secs: 600,
        }
    }
}

/// A host's attestation as stored (`hosts.tpm`, JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The attestation key, SEC1 uncompressed, hex.
    pub ak: String,
    /// The PCR values the host must quote.
    pub expected: BTreeMap<u8, String>,
    /// The values of the last verified quote, and when it came.
    pub last: BTreeMap<u8, String>,
    pub last_at: Option<i64>,
    /// Why attestation failed; `None` while the host is trusted.
    pub failure: Option<String>,
}

impl Record {
    pub fn of(h: &StoredHost) -> Option<Record> {
        serde_json::from_str(h.tpm.as_deref()?).ok()
    }

    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A quote's parts, decoded from hex.
struct Decoded {
    attest: Vec<u8>,
    r: Vec<u8>,
    s: Vec<u8>,
    pcrs: BTreeMap<u8, [u8; 32]>,
}

fn decode(q: &TpmQuote) -> Result<Decoded, Error> {
    let bytes = |what: &str, s: &str| {
        from_hex(s).ok_or_else(|| Error::Invalid(format!("the quote's {what} is not hex")))
    };
    let mut pcrs = BTreeMap::new();
    for (i, v) in &q.pcrs {
        let v: [u8; 32] = bytes("PCR value", v)?
            .try_into()
            .map_err(|_| Error::Invalid(format!("PCR {i}'s value is not 32 bytes (SHA-256)")))?;
        pcrs.insert(*i, v);
    }
    Ok(Decoded {
        attest: bytes("attest", &q.attest)?,
        r: bytes("signature_r", &q.signature_r)?,
        s: bytes("signature_s", &q.signature_s)?,
        pcrs,
    })
}

/// What a quote proves, or why it proves nothing.
enum Verified {
    Pcrs(BTreeMap<u8, String>),
    /// Made for another nonce.
    Stale,
    Refused(String),
}

fn verify(ak: &[u8], q: &TpmQuote, nonce: &[u8]) -> Verified {
    let d = match decode(q) {
        Ok(d) => d,
        Err(e) => return Verified::Refused(e.to_string()),
    };
    let parts = QuoteParts {
        attest: &d.attest,
        r: &d.r,
        s: &d.s,
        pcrs: &d.pcrs,
    };
    match verify_quote(ak, &parts, nonce) {
        Ok(facts) => Verified::Pcrs(facts.pcrs.iter().map(|(i, v)| (*i, to_hex(v))).collect()),
        Err(roost_pki::Error::StaleQuote) => Verified::Stale,
        Err(e) => Verified::Refused(e.to_string()),
    }
}

fn missing(policy: &Policy, quoted: &BTreeMap<u8, String>) -> Vec<u8> {
    policy
        .pcrs
        .iter()
        .copied()
        .filter(|i| !quoted.contains_key(i))
        .collect()
}

/// The record of an enrollment: `tpm` must verify for the join token's
/// nonce and cover the policy's PCRs. No TPM: `None`, unless the policy
/// requires one.
pub fn enroll(
    policy: &Policy,
    tpm: Option<&TpmEnrollment>,
    join_token: &str,
    now: Timestamp,
) -> Result<Option<Record>, Error> {
    let Some(tpm) = tpm else {
        if policy.required {
            return Err(Error::Invalid(
                "this cloud requires a TPM: the agent must enroll with its TPM (roost agent --tpm)"
                    .into(),
            ));
        }
        return Ok(None);
    };
    let ak = from_hex(&tpm.ak_public)
        .ok_or_else(|| Error::Invalid("the attestation key is not hex".into()))?;
    let quoted = match verify(&ak, &tpm.quote, &enrollment_nonce(join_token)) {
        Verified::Pcrs(p) => p,
        Verified::Stale => {
            return Err(Error::Unauthorized(
                "the enrollment's TPM quote is refused: it was not made for this join token".into(),
            ));
        }
        Verified::Refused(e) => {
            return Err(Error::Unauthorized(format!(
                "the enrollment's TPM quote is refused: {e}"
            )));
        }
    };
    let absent = missing(policy, &quoted);
    if !absent.is_empty() {
        return Err(Error::Invalid(format!(
            "the enrollment's TPM quote must cover PCRs {:?}; {absent:?} are missing",
            policy.pcrs
        )));
    }
    let expected: BTreeMap<u8, String> = quoted
        .iter()
        .filter(|(i, _)| policy.pcrs.contains(i))
        .map(|(i, v)| (*i, v.clone()))
        .collect();
    Ok(Some(Record {
        ak: tpm.ak_public.to_ascii_lowercase(),
        expected: expected.clone(),
        last: expected,
        last_at: Some(now.micros()),
        failure: None,
    }))
}

/// What a quote did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not for the nonce outstanding (an old answer): nothing changes.
    Ignored(String),
    /// The record after the quote (`failure` set when it failed).
    Checked(Record),
}

/// Checks a quote answering `nonce` against the record.
pub fn on_quote(
    rec: &Record,
    quote: &TpmQuote,
    nonce: &[u8],
    policy: &Policy,
    now: Timestamp,
) -> Outcome {
    let fail = |why: String| {
        let mut r = rec.clone();
        if r.failure.is_none() {
            r.failure = Some(why);
        }
        Outcome::Checked(r)
    };
    let Some(ak) = from_hex(&rec.ak) else {
        return fail("the stored attestation key is not hex".into());
    };
    let quoted = match verify(&ak, quote, nonce) {
        Verified::Pcrs(q) => q,
        Verified::Stale => return Outcome::Ignored("a quote for another nonce".into()),
        Verified::Refused(e) => return fail(format!("a quote failed verification: {e}")),
    };
    let absent = missing(policy, &quoted);
    if !absent.is_empty() {
        return fail(format!("a quote left out PCRs {absent:?}"));
    }
    let mut r = rec.clone();
    r.last = quoted.clone();
    r.last_at = Some(now.micros());
    // PCRs the policy added since enrollment are learned.
    for i in &policy.pcrs {
        if let Some(v) = quoted.get(i) {
            r.expected.entry(*i).or_insert_with(|| v.clone());
        }
    }
    let changed: Vec<String> = r
        .expected
        .iter()
        .filter(|(i, v)| quoted.get(i).is_some_and(|q| q != *v))
        .map(|(i, v)| {
            let q = quoted.get(i).map(String::as_str).unwrap_or_default();
            format!(
                "PCR {i} is {}…, expected {}…",
                &q[..q.len().min(16)],
                &v[..v.len().min(16)]
            )
        })
        .collect();
    if !changed.is_empty() && r.failure.is_none() {
        r.failure = Some(format!("PCR values changed: {}", changed.join("; ")));
    }
    Outcome::Checked(r)
}

/// The record once an admin accepts what the host quotes now: the last
/// verified values become the expected ones and the failure is cleared.
pub fn accept(hostname: &str, rec: &Record) -> Result<Record, Error> {
    if rec.last.is_empty() || rec.last_at.is_none() {
        return Err(Error::Conflict(format!(
            "{hostname} has sent no verified quote to accept yet"
        )));
    }
    if rec
        .failure
        .as_deref()
        .is_some_and(|f| f.starts_with("a quote"))
    {
        return Err(Error::Conflict(format!(
            "{hostname}'s last quote did not verify ({}): there are no values to accept; enroll \
             the host again",
            rec.failure.as_deref().unwrap_or_default()
        )));
    }
    Ok(Record {
        expected: rec.last.clone(),
        failure: None,
        ..rec.clone()
    })
}

/// The alarm change between two records of `host`, if any.
pub fn alarm(host: &str, before: Option<&Record>, after: Option<&Record>) -> Option<AlarmOut> {
    let was = before.and_then(|r| r.failure.as_deref());
    let now = after.and_then(|r| r.failure.as_deref());
    if was == now {
        return None;
    }
    Some(AlarmOut {
        alarm_id: ALARM,
        entity_instance_id: format!("host={host}"),
        severity: now.map(|_| Severity::Critical),
        reason_text: now
            .map(|why| format!("Host {host} failed TPM attestation: {why}"))
            .unwrap_or_default(),
    })
}

/// Whether the host should be asked for a quote now: none was asked in the
/// last interval, and none verified in it.
pub fn challenge_due(
    rec: &Record,
    asked_at: Option<Timestamp>,
    now: Timestamp,
    interval_secs: u64,
) -> bool {
    let interval = i64::try_from(interval_secs.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
    let recent = |t: i64| now.micros().saturating_sub(t) < interval;
    !asked_at.is_some_and(|t| recent(t.micros())) && !rec.last_at.is_some_and(recent)
}

/// Why a host with a failed attestation may not be unlocked.
pub fn unlock_refusal(h: &StoredHost) -> Option<Error> {
    let why = Record::of(h)?.failure?;
    Some(Error::Conflict(format!(
        "{} failed TPM attestation ({why}); it cannot be unlocked until an admin accepts its \
         current PCR values (roost host attestation {} --accept) or it enrolls again",
        h.hostname, h.hostname
    )))
}

/// What the API shows.
pub fn view(h: &StoredHost) -> AttestationView {
    let rec = Record::of(h);
    AttestationView {
        hostname: h.hostname.clone(),
        status: match &rec {
            None => "none",
            Some(r) if r.failure.is_some() => "failed",
            Some(_) => "trusted",
        }
        .into(),
        reason: rec.as_ref().and_then(|r| r.failure.clone()),
        ak_fingerprint: rec
            .as_ref()
            .and_then(|r| from_hex(&r.ak).map(|ak| to_hex(&Sha256::digest(&ak)[..16]))),
        expected_pcrs: rec.as_ref().map(|r| r.expected.clone()).unwrap_or_default(),
        last_pcrs: rec.as_ref().map(|r| r.last.clone()).unwrap_or_default(),
        last_quote_at: rec
            .as_ref()
            .and_then(|r| r.last_at)
            .map(|t| Timestamp(t).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    /// A TPM in software: a P-256 key and PCR values.
    struct FakeTpm {
        key: EcdsaKeyPair,
        pcrs: BTreeMap<u8, [u8; 32]>,
    }

    impl FakeTpm {
        fn new() -> FakeTpm {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            FakeTpm {
                key: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                    .unwrap(),
                pcrs: (0..=7).chain([16]).map(|i| (i, [i; 32])).collect(),
            }
        }

        fn quote(&self, nonce: &[u8]) -> TpmQuote {
            let attest = roost_pki::attest::quote_attest(nonce, &self.pcrs);
            let sig = self.key.sign(&SystemRandom::new(), &attest).unwrap();
            TpmQuote {
                attest: to_hex(&attest),
                signature_r: to_hex(&sig.as_ref()[..32]),
                signature_s: to_hex(&sig.as_ref()[32..]),
                pcrs: self.pcrs.iter().map(|(i, v)| (*i, to_hex(v))).collect(),
            }
        }

        fn enrollment(&self, join_token: &str) -> TpmEnrollment {
            TpmEnrollment {
                ak_public: to_hex(self.key.public_key().as_ref()),
                quote: self.quote(&enrollment_nonce(join_token)),
            }
        }
    }

    fn policy() -> Policy {
        Policy {
            pcrs: vec![0, 7, 16],
            ..Policy::default()
        }
    }

    fn checked(o: Outcome) -> Record {
        match o {
            Outcome::Checked(r) => r,
            Outcome::Ignored(why) => panic!("ignored: {why}"),
        }
    }

    #[test]
    fn enrollment_learns_the_policys_pcrs_from_a_quote_for_the_join_token() {
        let tpm = FakeTpm::new();
        let now = Timestamp(5);
        let rec = enroll(&policy(), Some(&tpm.enrollment("tok")), "tok", now)
            .unwrap()
            .unwrap();
        assert_eq!(rec.expected.keys().copied().collect::<Vec<_>>(), [0, 7, 16]);
        assert!(rec.failure.is_none());
        // A quote made for another join token is refused.
        let e = enroll(&policy(), Some(&tpm.enrollment("other")), "tok", now).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Unauthorized, "{e}");
        // No TPM: fine unless required.
        assert!(enroll(&policy(), None, "tok", now).unwrap().is_none());
        let required = Policy {
            required: true,
            ..policy()
        };
        assert!(enroll(&required, None, "tok", now).is_err());
        // A quote that leaves out a chosen PCR is refused.
        let wide = Policy {
            pcrs: vec![0, 23],
            ..policy()
        };
        assert!(enroll(&wide, Some(&tpm.enrollment("tok")), "tok", now).is_err());
    }

    #[test]
    fn a_changed_pcr_or_a_bad_quote_fails_the_host_until_accepted() {
        let mut tpm = FakeTpm::new();
        let p = policy();
        let rec = enroll(&p, Some(&tpm.enrollment("tok")), "tok", Timestamp(1))
            .unwrap()
            .unwrap();
        let good = checked(on_quote(&rec, &tpm.quote(b"n1"), b"n1", &p, Timestamp(2)));
        assert!(good.failure.is_none());
        assert_eq!(good.last_at, Some(2));
        assert!(alarm("worker-1", Some(&rec), Some(&good)).is_none());
        // An old answer is ignored, not failed.
        assert!(matches!(
            on_quote(&good, &tpm.quote(b"n1"), b"n2", &p, Timestamp(3)),
            Outcome::Ignored(_)
        ));
        // PCR 16 changes: failed, alarmed, not unlockable.
        tpm.pcrs.insert(16, [0xee; 32]);
        let bad = checked(on_quote(&good, &tpm.quote(b"n3"), b"n3", &p, Timestamp(4)));
        let why = bad.failure.clone().unwrap();
        assert!(why.contains("PCR 16"), "{why}");
        let a = alarm("worker-1", Some(&good), Some(&bad)).unwrap();
        assert_eq!((a.alarm_id, a.severity), (ALARM, Some(Severity::Critical)));
        let h = StoredHost {
            hostname: "worker-1".into(),
            tpm: Some(bad.to_stored()),
            ..Default::default()
        };
        assert!(unlock_refusal(&h).is_some());
        assert_eq!(view(&h).status, "failed");
        // Still failed when the value comes back: only an admin clears it.
        tpm.pcrs.insert(16, [16; 32]);
        let back = checked(on_quote(&bad, &tpm.quote(b"n4"), b"n4", &p, Timestamp(5)));
        assert!(back.failure.is_some());
        tpm.pcrs.insert(16, [0xee; 32]);
        let again = checked(on_quote(&back, &tpm.quote(b"n5"), b"n5", &p, Timestamp(6)));
        let ok = accept("worker-1", &again).unwrap();
        assert!(ok.failure.is_none());
        assert_eq!(ok.expected[&16], to_hex(&[0xee; 32]));
        let cleared = alarm("worker-1", Some(&again), Some(&ok)).unwrap();
        assert_eq!(cleared.severity, None);
        // Another key signing: a failed verification, which cannot be accepted.
        let other = FakeTpm::new();
        let forged = checked(on_quote(&ok, &other.quote(b"n6"), b"n6", &p, Timestamp(7)));
        assert!(forged.failure.as_deref().unwrap().starts_with("a quote"));
        assert!(accept("worker-1", &forged).is_err());
    }

    #[test]
    fn a_challenge_is_due_once_per_interval() {
        let rec = Record {
            last_at: Some(0),
            ..Record::default()
        };
        let s = 1_000_000;
        assert!(!challenge_due(&rec, None, Timestamp(5 * s), 10));
        assert!(challenge_due(&rec, None, Timestamp(10 * s), 10));
        assert!(!challenge_due(
            &rec,
            Some(Timestamp(9 * s)),
            Timestamp(10 * s),
            10
        ));
        assert!(challenge_due(
            &rec,
            Some(Timestamp(0)),
            Timestamp(10 * s),
            10
        ));
    }
}
