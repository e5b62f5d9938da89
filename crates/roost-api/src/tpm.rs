//! TPM attestation on the wire: the agent's attestation key and quotes,
//! the server's challenges, and what the API shows of a host's attestation.
//! Bytes travel as lowercase hex.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A TPM 2.0 quote over PCRs of the SHA-256 bank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmQuote {
    /// The TPMS_ATTEST structure the TPM signed.
    pub attest: String,
    /// The ECDSA signature's r and s.
    pub signature_r: String,
    pub signature_s: String,
    /// The quoted PCRs' values, by index.
    pub pcrs: BTreeMap<u8, String>,
}

/// What an agent with a TPM sends at enrollment: its attestation key and a
/// quote for [`enrollment_nonce`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmEnrollment {
    /// The attestation key's public point, SEC1 uncompressed (P-256).
    pub ak_public: String,
    pub quote: TpmQuote,
}

/// The server asks for a quote: over these PCRs, for this nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmChallenge {
    pub nonce: String,
    pub pcrs: Vec<u8>,
}

/// `GET /v1/ihosts/{host}/attestation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationView {
    pub hostname: String,
    /// `none` (no TPM), `trusted` or `failed`.
    pub status: String,
    /// Why the last quote failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// SHA-256 of the attestation key's public point, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ak_fingerprint: Option<String>,
    /// The PCR values the host must quote.
    pub expected_pcrs: BTreeMap<u8, String>,
    /// The values of the last verified quote.
    pub last_pcrs: BTreeMap<u8, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_quote_at: Option<String>,
}

/// The nonce an enrollment's quote is made for: bound to the join token,
/// which is random and used once, so the quote is fresh and cannot serve
/// another enrollment.
pub fn enrollment_nonce(join_token: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"roost tpm enrollment\0");
    h.update(join_token.as_bytes());
    h.finalize().into()
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of hex `s` (either case); `None` if it is not hex.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        assert_eq!(
            from_hex(&to_hex(&[0, 1, 0xab, 0xff])).unwrap(),
            [0, 1, 0xab, 0xff]
        );
        assert_eq!(from_hex("AB").unwrap(), [0xab]);
        assert!(from_hex("abc").is_none());
        assert!(from_hex("zz").is_none());
        assert!(from_hex("é1").is_none());
    }

    #[test]
    fn the_enrollment_nonce_depends_on_the_token() {
        assert_ne!(enrollment_nonce("a"), enrollment_nonce("b"));
        assert_eq!(enrollment_nonce("a"), enrollment_nonce("a"));
    }
}
