use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, ClientConfig, RootCertStore, ServerConfig};

use crate::cert::{certs_from_pem, fingerprint_der, normalize_fingerprint};
use crate::error::{Error, Result};

/// The three signature methods of a `ServerCertVerifier`, checked with
/// the crypto provider in field `$provider` (every verifier of Roost checks
/// handshake signatures the same way; they differ in what they trust).
macro_rules! signature_checks {
    ($provider:ident) => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.$provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.$provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.$provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}
pub(crate) use signature_checks;

/// The crypto provider used everywhere in Roost: rustls' aws-lc-rs provider.
///
/// Configs are built with it explicitly, so no process-wide default provider
/// needs to be installed.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

pub(crate) fn private_key_from_pem(key_pem: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| Error::Pem(format!("cannot parse private key PEM: {e}")))
}

pub(crate) fn root_store(ca_pem: &str) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for der in certs_from_pem(ca_pem)? {
        roots.add(der)?;
    }
    Ok(roots)
}

/// A server config presenting `server_cert_pem` (leaf first, then the CA: see
/// [`DcCa::issue_server_cert`](crate::DcCa::issue_server_cert)) and verifying
/// client certificates against `client_ca_pem` (one or more CA certificates).
///
/// With `require_client_cert == false`, client authentication is optional: a
/// client that presents no certificate is let in (its
/// [`PeerIdentity`](crate::PeerIdentity) is `None`; enrollment uses this),
/// but a client that presents a certificate not issued by the DC CA, or an
/// expired one, fails the handshake. Routes that need a subcloud identity
/// must check `PeerIdentity` themselves.
pub fn server_config(
    server_cert_pem: &str,
    server_key_pem: &str,
    client_ca_pem: &str,
    require_client_cert: bool,
) -> Result<Arc<ServerConfig>> {
    let provider = provider();
    let roots = Arc::new(root_store(client_ca_pem)?);
    let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
    let builder = if require_client_cert {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    let verifier = builder
        .build()
        .map_err(|e| Error::Verifier(e.to_string()))?;
    let chain = certs_from_pem(server_cert_pem)?;
    let key = private_key_from_pem(server_key_pem)?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// A client config that trusts ONLY the DC CA in `ca_pem` (no web or system
/// roots), presenting `client = Some((cert_pem, key_pem))` when given.
pub fn client_config(ca_pem: &str, client: Option<(&str, &str)>) -> Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(root_store(ca_pem)?);
    let config = match client {
        Some((cert_pem, key_pem)) => builder
            .with_client_auth_cert(certs_from_pem(cert_pem)?, private_key_from_pem(key_pem)?)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A client config for enrollment: the subcloud does not have the DC CA
/// yet, only its SHA-256 `fingerprint` from the enrollment token (any form
/// [`normalize_fingerprint`] accepts). No client certificate is presented.
///
/// See [`PinnedCaVerifier`] for what is accepted. Once enrolled, the
/// subcloud stores the CA (the last certificate of the chain it saw, or the
/// `ca_pem` returned by enrollment, whose fingerprint it must check) and
/// switches to [`client_config`].
pub fn pinned_client_config(fingerprint: &str) -> Result<Arc<ClientConfig>> {
    let verifier = Arc::new(PinnedCaVerifier::new(fingerprint)?);
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Server certificate verifier pinned to a CA fingerprint.
///
/// The server must present its chain as `[server_cert, …, ca_cert]`
/// (as [`DcCa::issue_server_cert`](crate::DcCa::issue_server_cert) produces).
/// The handshake is accepted only if
/// 1. one of the presented non-leaf certificates has exactly the pinned
///    SHA-256 fingerprint (the presented CA is then as good as one the
///    client already had: its bytes are fixed by the hash), and
/// 2. the leaf verifies against that CA as the sole trust anchor, with the
///    normal WebPKI checks (signature chain, validity window, serverAuth
///    EKU, and the server name / IP the client dialled).
///
/// The leaf itself is never accepted as the anchor, so a self-signed server
/// certificate whose own hash was pinned is refused.
#[derive(Debug)]
pub struct PinnedCaVerifier {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl PinnedCaVerifier {
    pub fn new(fingerprint: &str) -> Result<PinnedCaVerifier> {
        Ok(PinnedCaVerifier {
            fingerprint: normalize_fingerprint(fingerprint)?,
            provider: provider(),
        })
    }
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates
            .iter()
            .find(|c| fingerprint_der(c.as_ref()) == self.fingerprint)
        else {
            tracing::debug!(
                pinned = %self.fingerprint,
                presented = intermediates.len(),
                "server chain carries no CA with the pinned fingerprint"
            );
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ));
        };
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let others: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .filter(|c| c.as_ref() != ca.as_ref())
            .cloned()
            .collect();
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(format!("pinned CA verifier: {e}")))?;
        webpki.verify_server_cert(end_entity, &others, server_name, ocsp_response, now)
    }

    signature_checks!(provider);
}
