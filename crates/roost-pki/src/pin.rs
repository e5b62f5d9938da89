//! Trust on first use for the API: reading the chain a server presents
//! (to show its CA's fingerprint before trusting it), and a client that
//! trusts only the pinned CA and says so plainly when the server's CA is
//! another one.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig};

use crate::cert::{certs_from_pem, fingerprint_der};
use crate::error::{Error, Result};
use crate::tls::{provider, signature_checks};

/// The CA of a presented chain: its last certificate (a chain made by
/// Roost is `[leaf, CA]`; a chain of one certificate is its own CA).
pub fn chain_ca<'a>(chain: &'a [CertificateDer<'static>]) -> Option<&'a CertificateDer<'static>> {
    chain.last()
}

/// `SHA256:AA:BB:...`, as `roost login` shows a fingerprint.
pub fn display_fingerprint(hex: &str) -> String {
    let pairs: Vec<String> = hex
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_ascii_uppercase())
        .collect();
    format!("SHA256:{}", pairs.join(":"))
}

/// PEM of one DER certificate.
pub fn der_to_pem(der: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                b64.push(T[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// Connects to `host:port`, completes a TLS handshake trusting nothing
/// but checking the server's signature, and returns the chain the server
/// presented (leaf first). Nothing is sent after the handshake.
pub fn presented_chain(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Vec<CertificateDer<'static>>> {
    let seen = Arc::new(Capture {
        chain: Mutex::new(None),
        provider: provider(),
    });
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(seen.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
        .map_err(|e| Error::Invalid(format!("invalid server name {host:?}: {e}")))?
        .to_owned();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name)?;
    let addr = (host.trim_start_matches('[').trim_end_matches(']'), port)
        .to_socket_addrs()
        .map_err(|e| Error::Invalid(format!("cannot resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| Error::Invalid(format!("{host} has no address")))?;
    let mut tcp = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| Error::Invalid(format!("cannot connect to {addr}: {e}")))?;
    tcp.set_read_timeout(Some(timeout)).ok();
    tcp.set_write_timeout(Some(timeout)).ok();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|e| Error::Invalid(format!("TLS handshake with {addr} failed: {e}")))?;
    }
    conn.send_close_notify();
    let _ = conn.complete_io(&mut tcp);
    let _ = tcp.flush();
    let _ = tcp.read(&mut [0u8; 0]);
    seen.chain
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .ok_or_else(|| Error::Invalid(format!("{addr} presented no certificate")))
}

#[derive(Debug)]
struct Capture {
    chain: Mutex<Option<Vec<CertificateDer<'static>>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        *self.chain.lock().unwrap_or_else(|e| e.into_inner()) = Some(chain);
        Ok(ServerCertVerified::assertion())
    }

    signature_checks!(provider);
}

/// A client config trusting only the CA certificates of `ca_pem` (with the
/// usual WebPKI checks: chain, validity, server name). When the server's
/// chain does not lead to them, the handshake fails with a message naming
/// the pinned CA's fingerprint and the presented one, so that a changed
/// (or impersonated) server is told apart from a network failure.
pub fn pinned_roots_client_config(ca_pem: &str) -> Result<Arc<ClientConfig>> {
    let verifier = Arc::new(PinnedRoots::new(ca_pem)?);
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct PinnedRoots {
    inner: Arc<WebPkiServerVerifier>,
    pinned: Vec<String>,
    provider: Arc<CryptoProvider>,
}

impl PinnedRoots {
    fn new(ca_pem: &str) -> Result<PinnedRoots> {
        let mut roots = rustls::RootCertStore::empty();
        let mut pinned = Vec::new();
        for der in certs_from_pem(ca_pem)? {
            pinned.push(fingerprint_der(der.as_ref()));
            roots.add(der)?;
        }
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| Error::Verifier(e.to_string()))?;
        Ok(PinnedRoots {
            inner,
            pinned,
            provider: provider(),
        })
    }
}

impl ServerCertVerifier for PinnedRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            )) => {
                let presented = intermediates.last().unwrap_or(end_entity);
                let pinned: Vec<String> =
                    self.pinned.iter().map(|f| display_fingerprint(f)).collect();
                Err(rustls::Error::General(format!(
                    "THE SERVER'S CA HAS CHANGED: it presents a certificate from CA {} \
                     but the CA pinned for it is {}; someone may be impersonating the \
                     server, or its CA was replaced: if you know it was, log in again with \
                     --ca-file FILE or --trust-fingerprint",
                    display_fingerprint(&fingerprint_der(presented.as_ref())),
                    pinned.join(", ")
                )))
            }
            other => other,
        }
    }

    signature_checks!(provider);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = crate::Ca::load_or_create(tmp.path(), "t").unwrap();
        let pem = der_to_pem(ca.ca_der().as_ref());
        assert_eq!(certs_from_pem(&pem).unwrap()[0], *ca.ca_der());
        assert_eq!(pem.trim(), ca.ca_pem().trim());
        assert_eq!(
            display_fingerprint("ab01"),
            "SHA256:AB:01",
            "upper case, colons"
        );
    }
}
