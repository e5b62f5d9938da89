//! The host's TPM 2.0: an attestation key, quotes over PCRs, PCR extends,
//! and sealing a secret to the TPM. The TPM is reached through tss-esapi
//! behind the cargo feature `tpm`; without it every call answers
//! [`Error::Unsupported`], so callers need no feature switches of their
//! own. Verifying quotes needs no TPM: see `roost_pki::attest`.

#[cfg(feature = "tpm")]
mod esapi;

#[cfg(feature = "tpm")]
pub use esapi::{Tpm, seal, unseal};

/// A quote as the TPM made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// The TPMS_ATTEST bytes the TPM signed.
    pub attest: Vec<u8>,
    /// The ECDSA signature's r and s, big-endian.
    pub signature_r: Vec<u8>,
    pub signature_s: Vec<u8>,
    /// The quoted PCRs of the SHA-256 bank: (index, value), ascending.
    pub pcrs: Vec<(u8, [u8; 32])>,
}

/// Errors from TPM operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[cfg(feature = "tpm")]
    #[error("TPM error: {0}")]
    Tss(#[from] tss_esapi::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("this roost was built without TPM support (cargo feature \"tpm\")")]
    Unsupported,
}

/// Whether this build can reach a TPM.
pub const fn supported() -> bool {
    cfg!(feature = "tpm")
}

/// Without the feature: a TPM that cannot be opened.
#[cfg(not(feature = "tpm"))]
pub struct Tpm;

#[cfg(not(feature = "tpm"))]
impl Tpm {
    /// Always [`Error::Unsupported`].
    pub fn open(_tcti: &str) -> Result<Tpm, Error> {
        Err(Error::Unsupported)
    }

    pub fn ak_public(&self) -> Vec<u8> {
        Vec::new()
    }

    pub fn quote(&mut self, _nonce: &[u8], _pcrs: &[u8]) -> Result<Quote, Error> {
        Err(Error::Unsupported)
    }

    pub fn extend(&mut self, _index: u8, _digest: [u8; 32]) -> Result<(), Error> {
        Err(Error::Unsupported)
    }
}

/// Without the feature: always [`Error::Unsupported`].
#[cfg(not(feature = "tpm"))]
pub fn seal(_tcti: &str, _secret: &[u8]) -> Result<Vec<u8>, Error> {
    Err(Error::Unsupported)
}

/// Without the feature: always [`Error::Unsupported`].
#[cfg(not(feature = "tpm"))]
pub fn unseal(_tcti: &str, _blob: &[u8]) -> Result<Vec<u8>, Error> {
    Err(Error::Unsupported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "tpm"))]
    #[test]
    fn without_the_feature_every_call_says_so() {
        assert!(!supported());
        let e = Tpm::open("device:/dev/tpmrm0").err().unwrap();
        assert!(e.to_string().contains("cargo feature"), "{e}");
    }

    #[cfg(feature = "tpm")]
    #[test]
    fn an_unreachable_tpm_is_an_error_not_a_panic() {
        assert!(supported());
        assert!(Tpm::open("swtpm:host=127.0.0.1,port=1").is_err());
        assert!(Tpm::open("nonsense:").is_err());
    }
}
