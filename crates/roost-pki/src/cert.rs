use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Renew once this fraction of a certificate's lifetime has elapsed.
pub const RENEWAL_FRACTION: f64 = 2.0 / 3.0;

/// What Roost needs to know about a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    /// Subject common name, if the subject has one.
    pub cn: Option<String>,
    /// Issuer common name, if the issuer has one.
    pub issuer_cn: Option<String>,
    /// Serial number, lowercase hex without separators.
    pub serial: String,
    /// Start of validity, unix seconds.
    pub not_before: i64,
    /// End of validity, unix seconds.
    pub not_after: i64,
    /// Lowercase hex SHA-256 of the DER certificate (64 chars, no separators).
    pub fingerprint: String,
}

impl CertInfo {
    /// `not_before` as a `SystemTime`.
    pub fn not_before_time(&self) -> SystemTime {
        unix_to_system(self.not_before)
    }

    /// `not_after` as a `SystemTime`.
    pub fn not_after_time(&self) -> SystemTime {
        unix_to_system(self.not_after)
    }

    /// Whether `now` lies inside the validity window (inclusive).
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        let now = system_to_unix(now);
        self.not_before <= now && now <= self.not_after
    }
}

pub(crate) fn unix_to_system(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

pub(crate) fn system_to_unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// Lowercase hex SHA-256 of a DER certificate.
pub fn fingerprint_der(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Normalises a user-supplied SHA-256 fingerprint: accepts upper or lower
/// case, with or without `:` separators (the `openssl x509 -fingerprint`
/// form). Returns the canonical lowercase 64-hex form.
pub fn normalize_fingerprint(fp: &str) -> Result<String> {
    let hex: String = fp
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::Invalid(format!(
            "not a SHA-256 fingerprint (64 hex digits): {fp:?}"
        )));
    }
    Ok(hex)
}

/// Checks that the first certificate of `ca_pem` has SHA-256 `fingerprint`
/// (any form [`normalize_fingerprint`] accepts).
///
/// Enrollment: the subcloud receives the CA PEM from the System Controller
/// over the [`pinned_client_config`](crate::pinned_client_config) connection
/// and must check it against the token's fingerprint before storing it.
pub fn check_ca_fingerprint(ca_pem: &str, fingerprint: &str) -> Result<()> {
    let want = normalize_fingerprint(fingerprint)?;
    let got = fingerprint_der(first_cert_der(ca_pem)?.as_ref());
    if got != want {
        return Err(Error::Invalid(format!(
            "CA fingerprint mismatch: expected {want}, got {got}"
        )));
    }
    Ok(())
}

/// Parses the first certificate of a PEM string (a chain is fine: the leaf
/// comes first).
pub fn cert_info(pem: &str) -> Result<CertInfo> {
    let der = first_cert_der(pem)?;
    cert_info_der(der.as_ref())
}

/// Parses a DER certificate.
pub fn cert_info_der(der: &[u8]) -> Result<CertInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| Error::X509(format!("cannot parse certificate: {e}")))?;
    let first_cn = |name: &x509_parser::x509::X509Name<'_>| {
        name.iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned)
    };
    let serial = cert
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok(CertInfo {
        cn: first_cn(cert.subject()),
        issuer_cn: first_cn(cert.issuer()),
        serial,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        fingerprint: fingerprint_der(der),
    })
}

/// Whether `info` should be renewed at `now`: at least [`RENEWAL_FRACTION`]
/// (2/3) of its lifetime has elapsed, or it is already expired.
pub fn needs_renewal(info: &CertInfo, now: SystemTime) -> bool {
    needs_renewal_after(info, now, RENEWAL_FRACTION)
}

/// Whether at least `fraction` (0.0..=1.0) of `info`'s lifetime has elapsed
/// at `now`. A certificate with an empty or inverted validity window always
/// needs renewal.
pub fn needs_renewal_after(info: &CertInfo, now: SystemTime, fraction: f64) -> bool {
    let lifetime = info.not_after.saturating_sub(info.not_before);
    if lifetime <= 0 {
        return true;
    }
    let fraction = fraction.clamp(0.0, 1.0);
    // Integer threshold; lifetimes are far below 2^53 seconds so f64 is exact enough.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let threshold = info
        .not_before
        .saturating_add((lifetime as f64 * fraction).ceil() as i64);
    system_to_unix(now) >= threshold
}

/// A subcloud's client key and CSR, generated locally (ECDSA P-256).
///
/// The key never leaves the subcloud; the CSR goes to the System Controller,
/// which signs it with [`DcCa::sign_client_csr`](crate::DcCa::sign_client_csr).
/// The CN in the CSR is only a hint: the SC overrides it.
#[derive(Clone)]
pub struct ClientIdentity {
    /// PKCS#8 PEM private key. Store it with mode 0600.
    pub key_pem: String,
    /// PKCS#10 PEM certificate signing request.
    pub csr_pem: String,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("key_pem", &"<redacted>")
            .field("csr_pem", &self.csr_pem)
            .finish()
    }
}

impl ClientIdentity {
    /// Generates a fresh P-256 key and a CSR with subject CN `cn`.
    pub fn generate(cn: &str) -> Result<ClientIdentity> {
        crate::ca::check_cn(cn)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        let csr = params.serialize_request(&key)?;
        Ok(ClientIdentity {
            key_pem: key.serialize_pem(),
            csr_pem: csr.pem()?,
        })
    }
}

/// All certificates of a PEM string, in order.
pub(crate) fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Pem(format!("cannot parse certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Pem("no CERTIFICATE block in PEM".into()));
    }
    Ok(certs)
}

pub(crate) fn first_cert_der(pem: &str) -> Result<CertificateDer<'static>> {
    Ok(certs_from_pem(pem)?.swap_remove(0))
}
