//! Verifying a TPM 2.0 quote with ordinary crypto (no TPM library): the
//! attestation key's ECDSA P-256 signature over the TPMS_ATTEST structure,
//! the server's nonce as its qualifying data, and the quoted PCRs' digest
//! recomputed from the values the host sent.
//!
//! TPMS_ATTEST of a quote (TPM 2.0 Part 2, 10.12.12), all big-endian:
//! magic `0xff544347`, type `0x8018`, qualifiedSigner (TPM2B_NAME), extraData
//! (TPM2B_DATA), clockInfo (8 + 4 + 4 + 1 bytes), firmwareVersion (8 bytes),
//! then TPMS_QUOTE_INFO: a TPML_PCR_SELECTION (count, then per bank: hash
//! algorithm, size of select, select bitmap) and pcrDigest (TPM2B_DIGEST).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// `TPM_GENERATED_VALUE`.
const MAGIC: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_QUOTE`.
const ST_ATTEST_QUOTE: u16 = 0x8018;
/// `TPM_ALG_SHA256`.
const ALG_SHA256: u16 = 0x000b;

/// What a quote proves, once verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteFacts {
    /// The quoted PCRs of the SHA-256 bank: index to value.
    pub pcrs: BTreeMap<u8, [u8; 32]>,
}

/// Why a quote was refused (reported as [`crate::Error::StaleQuote`] or
/// [`crate::Error::Quote`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum QuoteError {
    #[error("the attestation key is not an uncompressed P-256 point")]
    BadKey,
    #[error("the quote is malformed: {0}")]
    Malformed(String),
    #[error("the quote's signature does not verify under the host's attestation key")]
    BadSignature,
    #[error("the quote is not for this nonce (a replay, or an old quote)")]
    WrongNonce,
    #[error("the quote covers PCRs {quoted:?} of the SHA-256 bank, not {sent:?}")]
    WrongSelection { quoted: Vec<u8>, sent: Vec<u8> },
    #[error("the PCR values sent do not match the quoted digest")]
    WrongDigest,
}

/// The parts of a quote as a host sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteParts<'a> {
    /// The TPMS_ATTEST bytes the TPM signed.
    pub attest: &'a [u8],
    /// The ECDSA signature's r and s, big-endian (at most 32 bytes each).
    pub r: &'a [u8],
    pub s: &'a [u8],
    /// The values of the quoted PCRs (SHA-256 bank).
    pub pcrs: &'a BTreeMap<u8, [u8; 32]>,
}

impl From<QuoteError> for crate::Error {
    fn from(e: QuoteError) -> crate::Error {
        match e {
            QuoteError::WrongNonce => crate::Error::StaleQuote,
            other => crate::Error::Quote(other.to_string()),
        }
    }
}

/// Checks `quote` against the attestation key `ak_public` (SEC1
/// uncompressed, 65 bytes) and `nonce`. Returns the PCR values it proves;
/// [`crate::Error::StaleQuote`] for a quote made for another nonce,
/// [`crate::Error::Quote`] (saying why) for every other refusal.
pub fn verify_quote(
    ak_public: &[u8],
    quote: &QuoteParts<'_>,
    nonce: &[u8],
) -> Result<QuoteFacts, crate::Error> {
    Ok(verify(ak_public, quote, nonce)?)
}

fn verify(
    ak_public: &[u8],
    quote: &QuoteParts<'_>,
    nonce: &[u8],
) -> Result<QuoteFacts, QuoteError> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
    if ak_public.len() != 65 || ak_public[0] != 0x04 {
        return Err(QuoteError::BadKey);
    }
    if quote.r.len() > 32 || quote.s.len() > 32 {
        return Err(QuoteError::BadSignature);
    }
    let mut sig = [0u8; 64];
    sig[32 - quote.r.len()..32].copy_from_slice(quote.r);
    sig[64 - quote.s.len()..].copy_from_slice(quote.s);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, ak_public)
        .verify(quote.attest, &sig)
        .map_err(|_| QuoteError::BadSignature)?;
    // Signed by the host's key: now read what it says.
    let info = read_attest(quote.attest)?;
    if info.extra_data != nonce {
        return Err(QuoteError::WrongNonce);
    }
    let sent: Vec<u8> = quote.pcrs.keys().copied().collect();
    if info.sha256_pcrs != sent {
        return Err(QuoteError::WrongSelection {
            quoted: info.sha256_pcrs,
            sent,
        });
    }
    let mut h = Sha256::new();
    for v in quote.pcrs.values() {
        h.update(v);
    }
    if h.finalize().as_slice() != info.pcr_digest.as_slice() {
        return Err(QuoteError::WrongDigest);
    }
    Ok(QuoteFacts {
        pcrs: quote.pcrs.clone(),
    })
}

/// What a quote's TPMS_ATTEST says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteInfo {
    pub extra_data: Vec<u8>,
    /// The PCRs selected in the SHA-256 bank, ascending.
    pub sha256_pcrs: Vec<u8>,
    pub pcr_digest: Vec<u8>,
}

/// Reads a quote's TPMS_ATTEST. Only the SHA-256 bank may be selected.
pub fn parse(attest: &[u8]) -> Result<QuoteInfo, crate::Error> {
    Ok(read_attest(attest)?)
}

fn read_attest(attest: &[u8]) -> Result<QuoteInfo, QuoteError> {
    let mut r = Reader(attest);
    if r.u32()? != MAGIC {
        return Err(QuoteError::Malformed("not TPM-generated (magic)".into()));
    }
    if r.u16()? != ST_ATTEST_QUOTE {
        return Err(QuoteError::Malformed("not a quote".into()));
    }
    r.sized()?; // qualifiedSigner
    let extra_data = r.sized()?.to_vec();
    r.take(17)?; // clockInfo
    r.take(8)?; // firmwareVersion
    let banks = r.u32()?;
    let mut sha256_pcrs = Vec::new();
    for _ in 0..banks {
        let alg = r.u16()?;
        let size = usize::from(r.u8()?);
        let select = r.take(size)?;
        let chosen: Vec<u8> = (0..size * 8)
            .filter(|i| select[i / 8] & (1 << (i % 8)) != 0)
            .filter_map(|i| u8::try_from(i).ok())
            .collect();
        match alg {
            ALG_SHA256 if sha256_pcrs.is_empty() => sha256_pcrs = chosen,
            _ if chosen.is_empty() => {}
            _ => {
                return Err(QuoteError::Malformed(format!(
                    "PCRs of bank {alg:#06x} are selected; only SHA-256 is accepted"
                )));
            }
        }
    }
    let pcr_digest = r.sized()?.to_vec();
    if !r.0.is_empty() {
        return Err(QuoteError::Malformed("bytes after the PCR digest".into()));
    }
    Ok(QuoteInfo {
        extra_data,
        sha256_pcrs,
        pcr_digest,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], QuoteError> {
        if self.0.len() < n {
            return Err(QuoteError::Malformed("cut short".into()));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, QuoteError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, QuoteError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, QuoteError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A TPM2B: a 16-bit size, then that many bytes.
    fn sized(&mut self) -> Result<&'a [u8], QuoteError> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
}

/// Builds a quote's TPMS_ATTEST as a TPM would (for tests and simulators):
/// `nonce` as extraData, the SHA-256 bank's `pcrs` selected and digested.
pub fn quote_attest(nonce: &[u8], pcrs: &BTreeMap<u8, [u8; 32]>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.extend_from_slice(&ST_ATTEST_QUOTE.to_be_bytes());
    let signer = [0u8; 34];
    out.extend_from_slice(&34u16.to_be_bytes());
    out.extend_from_slice(&signer);
    let nonce = &nonce[..nonce.len().min(64)];
    out.extend_from_slice(&u16::try_from(nonce.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&[0u8; 17]);
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&ALG_SHA256.to_be_bytes());
    let mut select = [0u8; 3];
    for &i in pcrs.keys() {
        if let Some(b) = select.get_mut(usize::from(i / 8)) {
            *b |= 1 << (i % 8);
        }
    }
    out.push(3);
    out.extend_from_slice(&select);
    let mut h = Sha256::new();
    for v in pcrs.values() {
        h.update(v);
    }
    let digest = h.finalize();
    out.extend_from_slice(&32u16.to_be_bytes());
    out.extend_from_slice(&digest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    fn key() -> EcdsaKeyPair {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap()
    }

    fn pcrs() -> BTreeMap<u8, [u8; 32]> {
        [(0, [1u8; 32]), (7, [2u8; 32]), (16, [0u8; 32])]
            .into_iter()
            .collect()
    }

    /// A signed quote: (attest, r, s).
    fn signed(k: &EcdsaKeyPair, attest: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let sig = k.sign(&SystemRandom::new(), attest).unwrap();
        let sig = sig.as_ref();
        (sig[..32].to_vec(), sig[32..].to_vec())
    }

    #[test]
    fn a_quote_verifies_and_yields_its_pcrs() {
        let k = key();
        let p = pcrs();
        let attest = quote_attest(b"nonce-1", &p);
        let (r, s) = signed(&k, &attest);
        let q = QuoteParts {
            attest: &attest,
            r: &r,
            s: &s,
            pcrs: &p,
        };
        let facts = verify(k.public_key().as_ref(), &q, b"nonce-1").unwrap();
        assert!(matches!(
            verify_quote(k.public_key().as_ref(), &q, b"nonce-2"),
            Err(crate::Error::StaleQuote)
        ));
        assert_eq!(facts.pcrs, p);
        // Another nonce, another key, other values, a changed byte: refused.
        assert_eq!(
            verify(k.public_key().as_ref(), &q, b"nonce-2"),
            Err(QuoteError::WrongNonce)
        );
        assert_eq!(
            verify(key().public_key().as_ref(), &q, b"nonce-1"),
            Err(QuoteError::BadSignature)
        );
        let mut lied = p.clone();
        lied.insert(16, [9u8; 32]);
        let q2 = QuoteParts { pcrs: &lied, ..q };
        assert_eq!(
            verify(k.public_key().as_ref(), &q2, b"nonce-1"),
            Err(QuoteError::WrongDigest)
        );
        let mut fewer = p.clone();
        fewer.remove(&16);
        let q3 = QuoteParts { pcrs: &fewer, ..q };
        assert!(matches!(
            verify(k.public_key().as_ref(), &q3, b"nonce-1"),
            Err(QuoteError::WrongSelection { .. })
        ));
        let mut changed = attest.clone();
        *changed.last_mut().unwrap() ^= 1;
        let q4 = QuoteParts {
            attest: &changed,
            ..q
        };
        assert_eq!(
            verify(k.public_key().as_ref(), &q4, b"nonce-1"),
            Err(QuoteError::BadSignature)
        );
        assert_eq!(verify(&[4u8; 10], &q, b"nonce-1"), Err(QuoteError::BadKey));
    }

    #[test]
    fn malformed_attestations_are_refused_not_panicked_on() {
        let attest = quote_attest(b"n", &pcrs());
        for n in 0..attest.len() {
            assert!(parse(&attest[..n]).is_err(), "cut at {n}");
        }
        let mut long = attest.clone();
        long.push(0);
        assert!(parse(&long).is_err());
        let mut wrong = attest.clone();
        wrong[0] = 0;
        assert!(parse(&wrong).is_err());
        let info = parse(&attest).unwrap();
        assert_eq!(info.sha256_pcrs, vec![0, 7, 16]);
        assert_eq!(info.extra_data, b"n");
    }
}
