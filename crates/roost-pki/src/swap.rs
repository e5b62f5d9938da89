//! A server certificate that can be replaced while the server runs.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DistinguishedName, ServerConfig};

use crate::cert::{CertInfo, cert_info_der, certs_from_pem};
use crate::error::{Error, Result};
use crate::tls::{private_key_from_pem, provider, root_store, signature_checks};

/// A certificate chain and its private key, checked to belong together.
#[derive(Debug, Clone)]
pub struct ServerIdentity {
    key: Arc<CertifiedKey>,
    /// The chain as given (leaf first), PEM.
    pub chain_pem: String,
    /// The leaf.
    pub leaf: CertInfo,
    /// Every certificate of the chain, leaf first.
    pub chain: Vec<CertInfo>,
}

impl ServerIdentity {
    /// Parses and checks `chain_pem` (leaf first, then any intermediates and
    /// optionally the root) and `key_pem` (PKCS#8, SEC1 or PKCS#1): the key
    /// must be the leaf's, the leaf must not be a CA, and each certificate
    /// of the chain must name the next one as its issuer. The validity
    /// window is not checked here: an expired certificate is accepted (and
    /// alarmed) rather than refused.
    pub fn from_pem(chain_pem: &str, key_pem: &str) -> Result<ServerIdentity> {
        let ders = certs_from_pem(chain_pem)?;
        let key = private_key_from_pem(key_pem)?;
        let signing = provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| Error::Invalid(format!("unusable private key: {e}")))?;
        let certified = CertifiedKey::new(ders.clone(), signing);
        certified.keys_match().map_err(|e| {
            Error::Invalid(format!(
                "the private key does not belong to the certificate: {e}"
            ))
        })?;
        let mut chain = Vec::with_capacity(ders.len());
        for (i, der) in ders.iter().enumerate() {
            let (_, x509) = x509_parser::parse_x509_certificate(der)
                .map_err(|e| Error::X509(format!("cannot parse certificate {}: {e}", i + 1)))?;
            if i == 0 && x509.is_ca() {
                return Err(Error::Invalid(
                    "the first certificate is a CA, not a server certificate".into(),
                ));
            }
            if let Some(next) = ders.get(i + 1) {
                let (_, issuer) = x509_parser::parse_x509_certificate(next)
                    .map_err(|e| Error::X509(format!("cannot parse certificate {}: {e}", i + 2)))?;
                if x509.issuer().as_raw() != issuer.subject().as_raw() {
                    return Err(Error::Invalid(format!(
                        "certificate {} is not issued by certificate {} of the chain",
                        i + 1,
                        i + 2
                    )));
                }
                x509.verify_signature(Some(issuer.public_key()))
                    .map_err(|e| {
                        Error::Invalid(format!(
                            "certificate {} does not verify against certificate {}: {e}",
                            i + 1,
                            i + 2
                        ))
                    })?;
            }
            chain.push(cert_info_der(der)?);
        }
        Ok(ServerIdentity {
            key: Arc::new(certified),
            chain_pem: chain_pem.to_string(),
            leaf: chain[0].clone(),
            chain,
        })
    }

    /// Reads the chain and key from files.
    pub fn from_files(chain: &Path, key: &Path) -> Result<ServerIdentity> {
        let chain_pem = std::fs::read_to_string(chain).map_err(|e| Error::io(chain, e))?;
        let key_pem = std::fs::read_to_string(key).map_err(|e| Error::io(key, e))?;
        Self::from_pem(&chain_pem, &key_pem)
    }
}

/// The certificate a TLS server presents, replaceable at any time: the
/// next handshake uses the new one, connections already made are kept.
#[derive(Debug)]
pub struct SwappableCert {
    current: RwLock<ServerIdentity>,
}

impl SwappableCert {
    pub fn new(identity: ServerIdentity) -> Arc<SwappableCert> {
        Arc::new(SwappableCert {
            current: RwLock::new(identity),
        })
    }

    /// Presents `identity` from the next handshake on.
    pub fn set(&self, identity: ServerIdentity) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = identity;
    }

    /// What is presented now.
    pub fn get(&self) -> ServerIdentity {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A server config (no client authentication) presenting this
    /// certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// A server config presenting this certificate that asks for, but does
    /// not require, a client certificate checked by `clients`.
    pub fn server_config_with_clients(
        self: &Arc<Self>,
        clients: Arc<ClientRoots>,
    ) -> Result<Arc<ServerConfig>> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(clients)
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Optional client authentication against CA roots that can be replaced
/// while the server runs (a rotation of the CA adds the new one beside the
/// old): a client that presents a certificate must present one issued by
/// these roots and valid now, else the handshake fails; a client that
/// presents none is let through, and what it may do is for the routes to
/// decide.
pub struct ClientRoots {
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: RwLock<Arc<dyn ClientCertVerifier>>,
}

impl std::fmt::Debug for ClientRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRoots").finish_non_exhaustive()
    }
}

impl ClientRoots {
    /// Client certificates are checked against the CA certificates in
    /// `ca_pem`.
    pub fn new(ca_pem: &str) -> Result<Arc<ClientRoots>> {
        Ok(Arc::new(ClientRoots {
            provider: provider(),
            current: RwLock::new(Self::verifier(ca_pem)?),
        }))
    }

    fn verifier(ca_pem: &str) -> Result<Arc<dyn ClientCertVerifier>> {
        WebPkiClientVerifier::builder_with_provider(Arc::new(root_store(ca_pem)?), provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| Error::Verifier(e.to_string()))
    }

    /// Checks client certificates against `ca_pem` from the next handshake
    /// on.
    pub fn set(&self, ca_pem: &str) -> Result<()> {
        let verifier = Self::verifier(ca_pem)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = verifier;
        Ok(())
    }

    fn get(&self) -> Arc<dyn ClientCertVerifier> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ClientCertVerifier for ClientRoots {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    /// No hints: Roost's clients present their one certificate anyway.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        self.get()
            .verify_client_cert(end_entity, intermediates, now)
    }

    signature_checks!(provider);
}

impl ResolvesServerCert for SwappableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .key
                .clone(),
        )
    }
}

/// Writes a private key file (mode 0600, atomically).
pub fn write_private_file(path: &Path, contents: &str) -> Result<()> {
    crate::ca::write_new_file(path, contents.as_bytes(), 0o600)
}

/// Writes a public file (mode 0644, atomically).
pub fn write_public_file(path: &Path, contents: &str) -> Result<()> {
    crate::ca::write_new_file(path, contents.as_bytes(), 0o644)
}
