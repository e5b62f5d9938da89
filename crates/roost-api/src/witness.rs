//! The witness protocol (`roost witness`, docs/ha.md): a duplex controller
//! without a BMC claims, renews and releases its pair's lease at a witness.
//!
//! - `POST /v1/witness/claim` and `POST /v1/witness/release`, body a
//!   [`Request`], answered `200` with an [`Answer`].
//! - Both bodies are signed: header `X-Roost-Signature` holds the
//!   HMAC-SHA-256 of the exact body bytes under the key both ends share
//!   ([`WitnessKey`]), in hexadecimal. The answer repeats the request's
//!   nonce, so a controller only believes an answer to its own request.
//! - A request sent more than [`MAX_SKEW_MS`] from the witness's wall
//!   clock is refused (a replayed claim could only renew its sender's own
//!   lease, and only that long).

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub const CLAIM_PATH: &str = "/v1/witness/claim";
pub const RELEASE_PATH: &str = "/v1/witness/release";
pub const SIGNATURE_HEADER: &str = "x-roost-signature";
/// How far a request's `sent_ms` may be from the witness's clock.
pub const MAX_SKEW_MS: u64 = 300_000;
/// The largest body either end accepts.
pub const MAX_BODY: usize = 4096;

/// A claim (or renewal) of the pair's lease, or its release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The controller pair (by default both names: `controller-0+controller-1`).
    pub pair: String,
    /// The controller asking.
    pub controller: String,
    /// How long the lease lasts from its receipt (claims; 0 in a release).
    pub lease_ms: u64,
    /// Random, repeated in the answer.
    pub nonce: String,
    /// The sender's wall clock, milliseconds since the Unix epoch.
    pub sent_ms: u64,
}

/// The witness's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The asking controller holds the lease now (claims), or gave it up
    /// (releases).
    pub granted: bool,
    /// Who holds it otherwise (absent: nobody known, the witness started
    /// less than its longest lease ago).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// The lease's epoch: it grows each time the lease changes hands.
    pub epoch: u64,
    /// How long the other holder's lease still lasts, milliseconds.
    pub left_ms: u64,
    /// A claim granted to a new holder: how long ago the previous holder's
    /// lease ended, milliseconds (rounded down). Absent when no holder is
    /// known: it may have ended as late as now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_ended_ms_ago: Option<u64>,
    pub nonce: String,
}

type HmacSha256 = Hmac<Sha256>;

/// The key a witness and its controllers share (a file of at least 32
/// characters, mode 0600 on every host). `Debug` never shows it.
#[derive(Clone)]
pub struct WitnessKey(Vec<u8>);

impl std::fmt::Debug for WitnessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WitnessKey(..)")
    }
}

/// The shortest key accepted, characters.
pub const MIN_KEY_LEN: usize = 32;

impl WitnessKey {
    /// The key from a file's text (surrounding whitespace ignored); `None`
    /// when shorter than [`MIN_KEY_LEN`].
    pub fn from_secret(text: &str) -> Option<WitnessKey> {
        let t = text.trim();
        (t.len() >= MIN_KEY_LEN).then(|| WitnessKey(t.as_bytes().to_vec()))
    }

    fn mac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }

    /// The signature of `body`, lowercase hexadecimal.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut m = self.mac();
        m.update(body);
        m.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `signature` (hexadecimal) is `body`'s, compared in constant
    /// time.
    pub fn verify(&self, body: &[u8], signature: &str) -> bool {
        let s = signature.trim().as_bytes();
        if s.len() != 64 {
            return false;
        }
        let mut raw = [0u8; 32];
        for (out, pair) in raw.iter_mut().zip(s.chunks_exact(2)) {
            let (Some(hi), Some(lo)) = (
                char::from(pair[0]).to_digit(16),
                char::from(pair[1]).to_digit(16),
            ) else {
                return false;
            };
            *out = u8::try_from(hi * 16 + lo).unwrap_or(0);
        }
        let mut m = self.mac();
        m.update(body);
        m.verify_slice(&raw).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_body_and_key() {
        let k = WitnessKey::from_secret(&"k".repeat(32)).unwrap();
        let other = WitnessKey::from_secret(&"j".repeat(32)).unwrap();
        let sig = k.sign(b"body");
        assert_eq!(sig.len(), 64);
        assert!(k.verify(b"body", &sig));
        assert!(k.verify(b"body", &sig.to_uppercase()));
        assert!(!k.verify(b"body!", &sig));
        assert!(!other.verify(b"body", &sig));
        assert!(!k.verify(b"body", "zz"));
        assert!(!k.verify(b"body", &"g".repeat(64)));
    }

    #[test]
    fn short_keys_are_refused_and_never_shown() {
        assert!(WitnessKey::from_secret(&"k".repeat(31)).is_none());
        let k = WitnessKey::from_secret(&format!("  {}\n", "s".repeat(40))).unwrap();
        assert_eq!(format!("{k:?}"), "WitnessKey(..)");
    }
}
