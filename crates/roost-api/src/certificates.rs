//! The certificate bodies: `GET /v1/certificates`,
//! `POST /v1/certificate_install`, `POST /v1/certificates/rotate_ca`.

use serde::{Deserialize, Serialize};

/// One certificate Roost uses.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertificateView {
    /// A stable name: `api`, `cloud-ca`, `cloud-ca-previous`, `dc-ca`,
    /// `dc-server`, `subcloud/<name>`.
    pub name: String,
    /// What it is for, in words.
    pub purpose: String,
    /// StarlingX's certificate mode: `ssl` (the API's server certificate),
    /// `ssl_ca` (a CA clients trust), `dc` (Distributed Cloud).
    pub mode: String,
    /// `self` (issued and renewed by Roost) or `installed` (by an operator;
    /// never renewed by Roost, alarmed before it expires).
    pub source: String,
    /// Stable id of this certificate (from its fingerprint): the `uuid` of
    /// the alarms' `entity_instance_id`.
    pub uuid: String,
    /// Subject common name, if any.
    pub subject: Option<String>,
    /// Issuer common name, if any.
    pub issuer: Option<String>,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// RFC 3339, UTC.
    pub not_before: String,
    /// RFC 3339, UTC.
    pub not_after: String,
    /// SHA-256 of the DER certificate, `AA:BB:...`.
    pub fingerprint: String,
}

/// `GET /v1/certificates`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertificateList {
    /// Whether the API is served over TLS.
    pub tls: bool,
    pub certificates: Vec<CertificateView>,
}

/// `POST /v1/certificate_install`: an operator's server certificate for the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertificateInstall {
    /// The chain, PEM: the server certificate first, then its intermediates
    /// (and optionally the root).
    pub certificate_pem: String,
    /// The server certificate's private key, PEM (PKCS#8, SEC1 or PKCS#1).
    pub private_key_pem: String,
}

/// The answer to an install or a CA rotation: what the API presents now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertificateInstalled {
    pub certificate: CertificateView,
    /// The CA certificates clients should trust now, PEM (after a rotation:
    /// the new cloud CA and the previous one).
    pub ca_bundle_pem: String,
}
