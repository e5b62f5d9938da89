//! The agent's side of TPM attestation: an attestation key in the TPM and
//! quotes over the PCRs the server chooses, for the nonces it sends. The
//! TPM itself is `roost_tpm` (the cargo feature `tpm`); without it `--tpm`
//! is refused with a message.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use roost_api::tpm::{TpmEnrollment, TpmQuote, to_hex};

use crate::Error;

pub use roost_tpm::Quote;

/// A quote on the wire.
pub fn to_wire(q: &Quote) -> TpmQuote {
    TpmQuote {
        attest: to_hex(&q.attest),
        signature_r: to_hex(&q.signature_r),
        signature_s: to_hex(&q.signature_s),
        pcrs: q
            .pcrs
            .iter()
            .map(|(i, v)| (*i, to_hex(v)))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// What the agent needs of a TPM.
pub trait Attestor: Send {
    /// The attestation key's public point, SEC1 uncompressed.
    fn ak_public(&self) -> Vec<u8>;
    /// A quote over `pcrs` (SHA-256 bank) with `nonce` as qualifying data.
    fn quote(&mut self, nonce: &[u8], pcrs: &[u8]) -> Result<Quote, Error>;
}

/// The host's TPM, shared by the agent's tasks (calls are blocking: run
/// them with `spawn_blocking`).
pub type SharedTpm = Arc<Mutex<Box<dyn Attestor>>>;

/// Opens the TPM at `tcti` (for example `device:/dev/tpmrm0`, or
/// `swtpm:host=127.0.0.1,port=2321`).
pub fn open(tcti: &str) -> Result<SharedTpm, Error> {
    let t = roost_tpm::Tpm::open(tcti)
        .map_err(|e| Error::Invalid(format!("cannot open the TPM at {tcti}: {e}")))?;
    Ok(Arc::new(Mutex::new(Box::new(t))))
}

impl Attestor for roost_tpm::Tpm {
    fn ak_public(&self) -> Vec<u8> {
        roost_tpm::Tpm::ak_public(self)
    }

    fn quote(&mut self, nonce: &[u8], pcrs: &[u8]) -> Result<Quote, Error> {
        roost_tpm::Tpm::quote(self, nonce, pcrs)
            .map_err(|e| Error::Invalid(format!("the TPM cannot quote: {e}")))
    }
}

/// A quote over `pcrs` for `nonce`, off the async runtime.
pub async fn quote(tpm: &SharedTpm, nonce: Vec<u8>, pcrs: Vec<u8>) -> Result<Quote, Error> {
    let tpm = tpm.clone();
    tokio::task::spawn_blocking(move || {
        tpm.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .quote(&nonce, &pcrs)
    })
    .await
    .map_err(|_| Error::Stopped("the TPM task panicked"))?
}

/// What an enrollment carries: the attestation key and a quote for the
/// join token's nonce.
pub async fn enrollment(
    tpm: &SharedTpm,
    join_token: &str,
    pcrs: &[u8],
) -> Result<TpmEnrollment, Error> {
    let nonce = roost_api::tpm::enrollment_nonce(join_token).to_vec();
    let q = quote(tpm, nonce, pcrs.to_vec()).await?;
    let ak = tpm
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .ak_public();
    Ok(TpmEnrollment {
        ak_public: to_hex(&ak),
        quote: to_wire(&q),
    })
}

/// Parses `--tpm-pcrs` (`0-7,16`).
pub fn parse_pcrs(s: &str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let num = |v: &str| {
            v.trim()
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= 23)
                .ok_or_else(|| Error::Invalid(format!("{v:?} is not a PCR index (0 to 23)")))
        };
        let (lo, hi) = (num(lo)?, num(hi)?);
        if lo > hi {
            return Err(Error::Invalid(format!("{part:?} is an empty range")));
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    if out.is_empty() {
        return Err(Error::Invalid("give at least one PCR index".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_lists_parse_with_ranges_and_refuse_nonsense() {
        assert_eq!(parse_pcrs("0-7,16").unwrap(), [0, 1, 2, 3, 4, 5, 6, 7, 16]);
        assert_eq!(parse_pcrs("16, 0,0").unwrap(), [0, 16]);
        assert!(parse_pcrs("24").is_err());
        assert!(parse_pcrs("7-3").is_err());
        assert!(parse_pcrs("").is_err());
        assert!(parse_pcrs("a").is_err());
    }

    #[cfg(not(feature = "tpm"))]
    #[test]
    fn without_the_feature_a_tpm_is_refused_with_a_message() {
        let e = open("device:/dev/tpmrm0").err().unwrap();
        assert!(e.to_string().contains("cargo feature"), "{e}");
    }
}
