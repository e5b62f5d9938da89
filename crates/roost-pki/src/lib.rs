//! Distributed Cloud PKI and mTLS plumbing for Roost.
//!
//! A System Controller (SC) owns a DC root CA ([`DcCa`]). It issues its own
//! server certificate from that CA and signs client certificates for the
//! subclouds from their CSRs ([`DcCa::sign_client_csr`]), forcing the subject
//! CN to the subcloud name the SC decided. Subclouds generate their key and
//! CSR locally ([`ClientIdentity::generate`]), so the private key never leaves
//! the subcloud.
//!
//! Transport:
//! * [`server_config`] builds a rustls server config whose client
//!   authentication is rooted at the DC CA, optional or required.
//! * [`serve_tls`] runs an axum [`Router`](axum::Router) behind TLS and hands
//!   each handler the peer's certificate identity ([`PeerIdentity`] or
//!   `ConnectInfo<`[`TlsConnectInfo`]`>`).
//! * [`client_config`] trusts only the DC CA; [`pinned_client_config`] is for
//!   enrollment, before the subcloud has the CA: it trusts whatever CA the
//!   server presents in its chain *if* that CA's SHA-256 fingerprint equals
//!   the one carried by the enrollment token.
//! * [`https_client`] wraps a client config into a `reqwest::Client`.
//!
//! Cryptography is rustls + aws-lc-rs only (never ring); keys are ECDSA P-256.

pub mod attest;
mod ca;
mod cert;
mod client;
mod error;
mod fetch;
mod pin;
mod serve;
mod swap;
mod tls;

pub use ca::{CA_VALIDITY_DAYS, Ca, DEFAULT_SUBCLOUD_CERT_DAYS, DcCa, Validity};
pub use cert::{
    CertInfo, ClientIdentity, RENEWAL_FRACTION, cert_info, cert_info_der, check_ca_fingerprint,
    fingerprint_der, needs_renewal, needs_renewal_after, normalize_fingerprint,
};
pub use client::https_client;
pub use error::{Error, Result};
pub use fetch::{Fetched, fetch_content, fetched_path, file_digest};
pub use pin::{
    chain_ca, der_to_pem, display_fingerprint, pinned_roots_client_config, presented_chain,
};
pub use rustls::pki_types::CertificateDer;
pub use serve::{
    GuardedStream, ListenerLimits, PeerIdentity, PendingHandshakes, TlsConnectInfo, TlsListener,
    accept_tls, is_connection_error, serve_tls,
};
pub use swap::{ClientRoots, ServerIdentity, SwappableCert, write_private_file, write_public_file};
pub use tls::{PinnedCaVerifier, client_config, pinned_client_config, provider, server_config};
pub use tokio_rustls::TlsAcceptor;
pub use tokio_rustls::server::TlsStream;
