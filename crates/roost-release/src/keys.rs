//! Release signing keys (Ed25519, aws-lc-rs). A signing key is kept as a
//! PEM-like text file (mode 0600 is the caller's business); a public key is
//! one line, `ed25519:<base64 of the 32 bytes>`, which is what a cloud is
//! configured to trust. A key is named by its id: the first 16 hex digits
//! of the SHA-256 of its public bytes.

use std::collections::BTreeMap;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

use crate::Error;

const BEGIN: &str = "-----BEGIN ROOST RELEASE SIGNING KEY-----";
const END: &str = "-----END ROOST RELEASE SIGNING KEY-----";
const PUBLIC_PREFIX: &str = "ed25519:";

/// A private signing key. `Debug` never shows it.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public().id())
    }
}

impl SigningKey {
    /// A new random key.
    pub fn generate() -> Result<SigningKey, Error> {
        let doc = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .map_err(|_| Error::Key("cannot make a random key".into()))?;
        Self::from_pkcs8(doc.as_ref())
    }

    fn from_pkcs8(pkcs8: &[u8]) -> Result<SigningKey, Error> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|_| Error::Key("not an Ed25519 private key".into()))?;
        Ok(SigningKey {
            pair,
            pkcs8: pkcs8.to_vec(),
        })
    }

    /// The key as kept in a file.
    pub fn to_text(&self) -> String {
        format!("{BEGIN}\n{}\n{END}\n", B64.encode(&self.pkcs8))
    }

    /// Reads a key file's text.
    pub fn from_text(text: &str) -> Result<SigningKey, Error> {
        let body = text
            .trim()
            .strip_prefix(BEGIN)
            .and_then(|t| t.strip_suffix(END))
            .ok_or_else(|| Error::Key(format!("not a release signing key (no {BEGIN} block)")))?;
        let b64: String = body.split_whitespace().collect();
        let der = B64
            .decode(b64)
            .map_err(|_| Error::Key("the key is not base64".into()))?;
        Self::from_pkcs8(&der)
    }

    pub fn public(&self) -> PublicKey {
        let mut b = [0u8; 32];
        b.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(b)
    }

    /// An Ed25519 signature of `msg` (64 bytes).
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.pair.sign(msg).as_ref().to_vec()
    }
}

/// A public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// `ed25519:<base64>`.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_PREFIX}{}", B64.encode(self.0))
    }

    /// Reads `ed25519:<base64>`.
    pub fn from_text(text: &str) -> Result<PublicKey, Error> {
        let b64 = text
            .trim()
            .strip_prefix(PUBLIC_PREFIX)
            .ok_or_else(|| Error::Key(format!("a public key starts with {PUBLIC_PREFIX}")))?;
        let bytes = B64
            .decode(b64)
            .map_err(|_| Error::Key("the public key is not base64".into()))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::Key("an Ed25519 public key is 32 bytes".into()))?;
        Ok(PublicKey(arr))
    }

    /// The key's id: 16 hex digits of the SHA-256 of its bytes.
    pub fn id(&self) -> String {
        crate::hex(&Sha256::digest(self.0)[..8])
    }

    pub(crate) fn verify(&self, msg: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(msg, signature)
            .is_ok()
    }
}

/// The keys a cloud trusts, by id.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys(BTreeMap<String, PublicKey>);

impl TrustedKeys {
    /// Trusts each `ed25519:...` line of `keys`.
    pub fn parse<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<TrustedKeys, Error> {
        let mut out = BTreeMap::new();
        for k in keys {
            let k = PublicKey::from_text(k)?;
            out.insert(k.id(), k);
        }
        Ok(TrustedKeys(out))
    }

    pub fn add(&mut self, key: PublicKey) {
        self.0.insert(key.id(), key);
    }

    pub fn get(&self, id: &str) -> Option<&PublicKey> {
        self.0.get(id)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
