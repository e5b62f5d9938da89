//! The cryptography of the User-based Security Model: password-to-key and
//! key localization (RFC 3414 A.2), HMAC-SHA-96 (RFC 3414) and
//! HMAC-192-SHA-256 (RFC 7860) message digests, and AES-128-CFB privacy
//! (RFC 3826). All primitives come from aws-lc-rs.

use aws_lc_rs::cipher::{AES_128, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::digest;
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;

use super::AuthProtocol;
use crate::Error;

/// How many octets of repeated passphrase are hashed (RFC 3414 A.2.1).
const EXPANDED_LEN: usize = 1_048_576;

impl AuthProtocol {
    fn digest_algorithm(self) -> &'static digest::Algorithm {
        match self {
            AuthProtocol::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            AuthProtocol::Sha256 => &digest::SHA256,
        }
    }

    fn hmac_algorithm(self) -> hmac::Algorithm {
        match self {
            AuthProtocol::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            AuthProtocol::Sha256 => hmac::HMAC_SHA256,
        }
    }

    /// Octets of msgAuthenticationParameters: the truncated HMAC.
    pub(super) fn mac_len(self) -> usize {
        match self {
            AuthProtocol::Sha1 => 12,
            AuthProtocol::Sha256 => 24,
        }
    }
}

/// Ku: the digest of the passphrase repeated to 1 MiB.
pub fn password_to_key(protocol: AuthProtocol, passphrase: &[u8]) -> Result<Vec<u8>, Error> {
    if passphrase.is_empty() {
        return Err(Error::Invalid("a passphrase cannot be empty".into()));
    }
    let mut ctx = digest::Context::new(protocol.digest_algorithm());
    // Hash in 64-octet blocks of the endless repetition, as the RFC does.
    let mut block = [0u8; 64];
    let mut pos = 0usize;
    for _ in 0..EXPANDED_LEN / block.len() {
        for b in block.iter_mut() {
            *b = passphrase[pos % passphrase.len()];
            pos += 1;
        }
        ctx.update(&block);
    }
    Ok(ctx.finish().as_ref().to_vec())
}

/// Kul: the digest of Ku | engine ID | Ku.
pub fn localize(protocol: AuthProtocol, ku: &[u8], engine_id: &[u8]) -> Vec<u8> {
    let mut ctx = digest::Context::new(protocol.digest_algorithm());
    ctx.update(ku);
    ctx.update(engine_id);
    ctx.update(ku);
    ctx.finish().as_ref().to_vec()
}

/// An authentication key ready to sign whole messages.
pub struct AuthKey {
    protocol: AuthProtocol,
    key: hmac::Key,
}

impl AuthKey {
    pub fn new(protocol: AuthProtocol, localized: &[u8]) -> AuthKey {
        AuthKey {
            protocol,
            key: hmac::Key::new(protocol.hmac_algorithm(), localized),
        }
    }

    pub fn mac_len(&self) -> usize {
        self.protocol.mac_len()
    }

    /// The truncated HMAC of `message`.
    pub fn mac(&self, message: &[u8]) -> Vec<u8> {
        let tag = hmac::sign(&self.key, message);
        tag.as_ref()[..self.mac_len()].to_vec()
    }
}

/// An AES-128 key in CFB128 mode (RFC 3826).
pub struct PrivKey {
    key: EncryptingKey,
}

impl PrivKey {
    /// Uses the first 16 octets of the localized privacy key.
    pub fn new(localized: &[u8]) -> Result<PrivKey, Error> {
        let bytes = localized
            .get(..16)
            .ok_or(Error::Crypto("the localized privacy key is too short"))?;
        let unbound = UnboundCipherKey::new(&AES_128, bytes)
            .map_err(|_| Error::Crypto("cannot make an AES-128 key"))?;
        let key = EncryptingKey::cfb128(unbound)
            .map_err(|_| Error::Crypto("cannot make an AES-128-CFB key"))?;
        Ok(PrivKey { key })
    }

    /// Encrypts `data` in place with the IV boots | time | salt.
    pub fn encrypt(&self, data: &mut [u8], boots: u32, time: u32, salt: u64) -> Result<(), Error> {
        let mut iv = [0u8; 16];
        iv[..4].copy_from_slice(&boots.to_be_bytes());
        iv[4..8].copy_from_slice(&time.to_be_bytes());
        iv[8..].copy_from_slice(&salt.to_be_bytes());
        self.key
            .less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from(iv)))
            .map_err(|_| Error::Crypto("AES-128-CFB encryption failed"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snmp::hex;

    const ENGINE: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    #[test]
    fn sha1_password_to_key_matches_rfc_3414_a_3_2() {
        let ku = password_to_key(AuthProtocol::Sha1, b"maplesyrup").unwrap();
        assert_eq!(hex(&ku), "9fb5cc0381497b3793528939ff788d5d79145211");
        let kul = localize(AuthProtocol::Sha1, &ku, &ENGINE);
        assert_eq!(hex(&kul), "6695febc9288e36282235fc7151f128497b38f3f");
    }

    #[test]
    fn sha256_password_to_key_follows_the_same_construction() {
        // The RFC 3414 A.2 algorithm with SHA-256 (RFC 7860 section 4.2.2),
        // recomputed here in the plainest way: hash the whole expansion.
        let pass = b"maplesyrup";
        let expanded: Vec<u8> = pass.iter().copied().cycle().take(EXPANDED_LEN).collect();
        let plain = digest::digest(&digest::SHA256, &expanded);
        let ku = password_to_key(AuthProtocol::Sha256, pass).unwrap();
        assert_eq!(ku, plain.as_ref());
        let mut cat = ku.clone();
        cat.extend_from_slice(&ENGINE);
        cat.extend_from_slice(&ku);
        let kul = localize(AuthProtocol::Sha256, &ku, &ENGINE);
        assert_eq!(kul, digest::digest(&digest::SHA256, &cat).as_ref());
        assert_eq!(kul.len(), 32);
        // Pinned, so that a change to the fast path shows; the integration
        // test checks the keys against Net-SNMP's snmptrapd.
        assert_eq!(
            hex(&kul),
            "8982e0e549e866db361a6b625d84cccc11162d453ee8ce3a6445c2d6776f0f8b"
        );
    }

    #[test]
    fn macs_are_truncated_to_12_and_24_octets() {
        let k1 = AuthKey::new(AuthProtocol::Sha1, &[7; 20]);
        assert_eq!(k1.mac(b"message").len(), 12);
        let k2 = AuthKey::new(AuthProtocol::Sha256, &[7; 32]);
        let mac = k2.mac(b"message");
        assert_eq!(mac.len(), 24);
        let full = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[7; 32]), b"message");
        assert_eq!(mac, full.as_ref()[..24]);
    }

    #[test]
    fn aes_cfb_matches_nist_sp_800_38a_f_3_13() {
        // CFB128-AES128.Encrypt, first two blocks. The IV there is
        // 000102030405060708090a0b0c0d0e0f: boots 0x00010203,
        // time 0x04050607, salt 0x08090a0b0c0d0e0f.
        let key: Vec<u8> = (0..16)
            .map(|i| {
                u8::from_str_radix(&"2b7e151628aed2a6abf7158809cf4f3c"[2 * i..2 * i + 2], 16)
                    .unwrap()
            })
            .collect();
        let pk = PrivKey::new(&key).unwrap();
        let plain = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51";
        let mut data: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&plain[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        pk.encrypt(&mut data, 0x0001_0203, 0x0405_0607, 0x0809_0a0b_0c0d_0e0f)
            .unwrap();
        assert_eq!(
            hex(&data),
            "3b3fd92eb72dad20333449f8e83cfb4ac8a64537a0b3a93fcde3cdad9f1ce58b"
        );
    }
}
