use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use rustls::pki_types::CertificateDer;

use crate::cert::{CertInfo, cert_info_der, certs_from_pem, system_to_unix};
use crate::error::{Error, Result};

/// Lifetime of a root CA (the DC CA, the cloud CA).
pub const CA_VALIDITY_DAYS: u32 = 3650;
/// Default lifetime of a subcloud client certificate: short, so that renewal
/// is exercised routinely.
pub const DEFAULT_SUBCLOUD_CERT_DAYS: u32 = 30;
/// Issued certificates start this long before "now", to tolerate clock skew
/// between the System Controller and the subclouds.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
const SECS_PER_DAY: u64 = 86_400;
/// X.520 upper bound for a common name.
const MAX_CN_LEN: usize = 64;

/// Public-key algorithms accepted in subcloud CSRs ([`ClientIdentity`]
/// generates P-256). RSA is refused: its key size cannot be vetted here.
///
/// [`ClientIdentity`]: crate::ClientIdentity
static ACCEPTED_CSR_KEYS: [&rcgen::SignatureAlgorithm; 3] = [
    &PKCS_ECDSA_P256_SHA256,
    &rcgen::PKCS_ECDSA_P384_SHA384,
    &rcgen::PKCS_ED25519,
];

const KEY_FILE: &str = "ca.key";
const CERT_FILE: &str = "ca.crt";

/// A certificate's validity window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// From (now - 5 min clock-skew allowance) to now + `days`.
    pub fn days_from_now(days: u32) -> Result<Validity> {
        if days == 0 {
            return Err(Error::Invalid("validity must be at least 1 day".into()));
        }
        let now = SystemTime::now();
        let not_after = now
            .checked_add(Duration::from_secs(u64::from(days) * SECS_PER_DAY))
            .ok_or_else(|| Error::Invalid(format!("validity of {days} days is out of range")))?;
        Ok(Validity {
            not_before: now - CLOCK_SKEW,
            not_after,
        })
    }

    /// An explicit window (e.g. a backdated one in tests). `not_after` must
    /// be after `not_before`.
    pub fn between(not_before: SystemTime, not_after: SystemTime) -> Result<Validity> {
        if not_after <= not_before {
            return Err(Error::Invalid(
                "validity: not_after must be after not_before".into(),
            ));
        }
        Ok(Validity {
            not_before,
            not_after,
        })
    }

    fn apply(&self, params: &mut CertificateParams) -> Result<()> {
        params.not_before = to_asn1_time(self.not_before)?.to_datetime();
        params.not_after = to_asn1_time(self.not_after)?.to_datetime();
        Ok(())
    }
}

/// `SystemTime` to the `time::OffsetDateTime` rcgen wants, without naming the
/// `time` crate (x509-parser hands it to us).
fn to_asn1_time(t: SystemTime) -> Result<x509_parser::time::ASN1Time> {
    x509_parser::time::ASN1Time::from_timestamp(system_to_unix(t))
        .map_err(|e| Error::Invalid(format!("time out of range for X.509: {e}")))
}

pub(crate) fn check_cn(cn: &str) -> Result<()> {
    if cn.trim().is_empty() {
        return Err(Error::Invalid("common name must not be empty".into()));
    }
    if cn.chars().count() > MAX_CN_LEN {
        return Err(Error::Invalid(format!(
            "common name longer than {MAX_CN_LEN} characters: {cn:?}"
        )));
    }
    if cn.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "common name contains control characters: {cn:?}"
        )));
    }
    Ok(())
}

fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    crate::tls::provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| Error::Invalid("system random number generator failed".into()))?;
    // Positive and exactly 16 bytes in DER (no leading zero byte needed).
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// A root CA kept on disk: the DC root CA of a System Controller, and the
/// cloud CA that issues the API's server certificate (one type for both;
/// [`DcCa`] is its name where it is the DC CA).
///
/// Kept in a directory as `ca.key` (PKCS#8 PEM, mode 0600) and `ca.crt`
/// (PEM). ECDSA P-256, valid [`CA_VALIDITY_DAYS`], path length 0 (it signs
/// only leaf certificates).
pub struct Ca {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    info: CertInfo,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("dir", &self.dir)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Loads the CA from `dir`, creating it (and `dir`, mode 0700) on first
    /// use. `name` is the subject CN of a newly created CA; an existing CA
    /// keeps its own.
    ///
    /// * both files present: loaded; the key must match the certificate and
    ///   the certificate must be a CA; a key file readable by group/other is
    ///   tightened back to 0600 (with a warning).
    /// * neither present: a new CA is created. Files are written to a
    ///   temporary name created with their final mode, fsynced, then renamed.
    /// * key without certificate (a crash between the two renames): the CA
    ///   certificate is re-issued from the existing key.
    /// * certificate without key: an error (the CA cannot be recovered, and
    ///   silently replacing a distributed CA would cut every subcloud off).
    pub fn load_or_create(dir: &Path, name: &str) -> Result<Ca> {
        if !dir.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io(dir, e))?;
        }
        let key_path = dir.join(KEY_FILE);
        let cert_path = dir.join(CERT_FILE);
        match (key_path.exists(), cert_path.exists()) {
            (true, true) => Self::load(dir, &key_path, &cert_path),
            (false, false) => {
                check_cn(name)?;
                let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
                write_new_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
                Self::create_cert(dir, key, name, &cert_path)
            }
            (true, false) => {
                check_cn(name)?;
                tracing::warn!(
                    path = %cert_path.display(),
                    "CA key present without certificate; re-issuing the CA certificate"
                );
                let key = read_key(&key_path)?;
                Self::create_cert(dir, key, name, &cert_path)
            }
            (false, true) => Err(Error::Invalid(format!(
                "{} exists but {} is missing: refusing to replace the CA",
                cert_path.display(),
                key_path.display()
            ))),
        }
    }

    /// The parameters of a CA certificate named `name`.
    fn ca_params(name: &str, validity: Validity) -> Result<CertificateParams> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial()?);
        validity.apply(&mut params)?;
        Ok(params)
    }

    fn create_cert(dir: &Path, key: KeyPair, name: &str, cert_path: &Path) -> Result<Ca> {
        let params = Self::ca_params(name, Validity::days_from_now(CA_VALIDITY_DAYS)?)?;
        let cert = params.self_signed(&key)?;
        let pem = cert.pem();
        write_new_file(cert_path, pem.as_bytes(), 0o644)?;
        Self::from_parts(dir, key, pem)
    }

    fn load(dir: &Path, key_path: &Path, cert_path: &Path) -> Result<Ca> {
        let key = read_key(key_path)?;
        let pem = fs::read_to_string(cert_path).map_err(|e| Error::io(cert_path, e))?;
        Self::from_parts(dir, key, pem)
    }

    fn from_parts(dir: &Path, key: KeyPair, cert_pem: String) -> Result<Ca> {
        let cert_der = certs_from_pem(&cert_pem)?.swap_remove(0);
        {
            let (_, x509) = x509_parser::parse_x509_certificate(&cert_der)
                .map_err(|e| Error::X509(format!("cannot parse CA certificate: {e}")))?;
            if !x509.is_ca() {
                return Err(Error::Invalid(
                    "CA certificate is not a CA (basicConstraints cA=false)".into(),
                ));
            }
            if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
                return Err(Error::Invalid(
                    "CA key does not match the CA certificate".into(),
                ));
            }
        }
        let info = cert_info_der(&cert_der)?;
        if !info.is_valid_at(SystemTime::now()) {
            tracing::warn!(
                not_after = info.not_after,
                "CA certificate is outside its validity window"
            );
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)?;
        Ok(Ca {
            dir: dir.to_path_buf(),
            issuer,
            cert_pem,
            cert_der,
            info,
        })
    }
}

/// The DC root CA of a System Controller.
pub type DcCa = Ca;

impl Ca {
    /// Directory holding `ca.key` and `ca.crt`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Lowercase hex SHA-256 of the DER CA certificate: what an enrollment
    /// token carries for [`pinned_client_config`](crate::pinned_client_config).
    pub fn fingerprint(&self) -> String {
        self.info.fingerprint.clone()
    }

    /// Parsed CA certificate.
    pub fn info(&self) -> &CertInfo {
        &self.info
    }

    /// Issues a server certificate for `names` (DNS names and/or IP
    /// addresses; the first one is also the subject CN) valid `days` days,
    /// with a fresh P-256 key.
    ///
    /// Returns `(chain_pem, key_pem)`; `chain_pem` is the server certificate
    /// followed by the CA certificate, which is what [`server_config`]
    /// should present so that enrollment clients
    /// ([`pinned_client_config`](crate::pinned_client_config)) can pin the
    /// CA. [`cert_info`](crate::cert_info) on it describes the leaf.
    ///
    /// [`server_config`]: crate::server_config
    pub fn issue_server_cert(&self, names: &[String], days: u32) -> Result<(String, String)> {
        self.issue_server_cert_with(names, Validity::days_from_now(days)?)
    }

    /// [`issue_server_cert`](Self::issue_server_cert) with an explicit
    /// validity and without the CA after the leaf.
    pub fn issue_leaf_with(
        &self,
        names: &[String],
        validity: Validity,
    ) -> Result<(String, String)> {
        if names.is_empty() {
            return Err(Error::Invalid(
                "a server certificate needs at least one DNS name or IP".into(),
            ));
        }
        let mut sans = Vec::with_capacity(names.len());
        for name in names {
            let name = name.trim();
            if name.is_empty() {
                return Err(Error::Invalid("empty server name".into()));
            }
            sans.push(match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(name.try_into()?),
            });
        }
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        let first = names[0].trim();
        if check_cn(first).is_ok() {
            dn.push(DnType::CommonName, first);
        }
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        validity.apply(&mut params)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// [`issue_server_cert_with`](Self::issue_server_cert_with): the chain
    /// is the leaf followed by this CA's certificate.
    pub fn issue_server_cert_with(
        &self,
        names: &[String],
        validity: Validity,
    ) -> Result<(String, String)> {
        let (mut chain, key) = self.issue_leaf_with(names, validity)?;
        if !chain.ends_with('\n') {
            chain.push('\n');
        }
        chain.push_str(&self.cert_pem);
        Ok((chain, key))
    }

    /// A server certificate alone (no CA after it) and its key, PEM.
    pub fn issue_leaf_pem(&self, names: &[String], days: u32) -> Result<(String, String)> {
        self.issue_leaf_with(names, Validity::days_from_now(days)?)
    }

    /// `other`'s CA certificate signed by this CA (same subject, key and
    /// validity as `other`'s own): a client that trusts this CA accepts
    /// what `other` issues, through it. Used to rotate a CA without cutting
    /// off the clients of the old one.
    pub fn cross_sign(&self, other: &Ca) -> Result<String> {
        let name = other
            .info
            .cn
            .as_deref()
            .ok_or_else(|| Error::Invalid("the CA to cross-sign has no common name".into()))?;
        let mut params = Self::ca_params(
            name,
            Validity::between(other.info.not_before_time(), other.info.not_after_time())?,
        )?;
        params.use_authority_key_identifier_extension = true;
        let key = read_key(&other.dir.join(KEY_FILE))?;
        Ok(params.signed_by(&key, &self.issuer)?.pem())
    }

    /// Signs a subcloud's CSR as a client certificate valid `days` days.
    ///
    /// Only the CSR's public key is used (after checking the CSR's
    /// self-signature, i.e. proof of possession). The subject is FORCED to
    /// `CN=subject_cn`, the name the System Controller decided for the
    /// subcloud; requested subject, SANs and extensions are ignored. The
    /// certificate carries the clientAuth EKU only. The CSR key must be
    /// ECDSA P-256/P-384 or Ed25519.
    pub fn sign_client_csr(&self, csr_pem: &str, subject_cn: &str, days: u32) -> Result<String> {
        self.sign_client_csr_with(csr_pem, subject_cn, Validity::days_from_now(days)?)
    }

    /// [`sign_client_csr`](Self::sign_client_csr) with an explicit validity.
    pub fn sign_client_csr_with(
        &self,
        csr_pem: &str,
        subject_cn: &str,
        validity: Validity,
    ) -> Result<String> {
        check_cn(subject_cn)?;
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)?;
        let alg = csr.public_key.algorithm();
        if !ACCEPTED_CSR_KEYS.contains(&alg) {
            return Err(Error::Invalid(format!(
                "CSR key algorithm {alg:?} not accepted (ECDSA P-256/P-384 or Ed25519 only)"
            )));
        }
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, subject_cn);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        validity.apply(&mut params)?;
        let cert = params.signed_by(&csr.public_key, &self.issuer)?;
        Ok(cert.pem())
    }
}

fn read_key(path: &Path) -> Result<KeyPair> {
    let meta = fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "CA key readable by group/other; resetting to 0600");
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(path, e))?;
    }
    let pem = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(KeyPair::from_pem(&pem)?)
}

/// Writes `contents` to `path` atomically: a temporary file created with
/// `mode` before any byte is written, fsynced, renamed over `path`, and the
/// directory fsynced.
pub(crate) fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&tmp, e)),
    }
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(path, e)
    })
}
