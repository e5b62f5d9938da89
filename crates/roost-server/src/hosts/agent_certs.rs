//! Agents' client certificates: which certificate an agent's call must
//! present, and what a renewal writes. Pure: fed the host's record, the
//! channel the call came over and the time.
//!
//! When the API speaks HTTPS, an agent gets a client certificate from the
//! cloud CA at enrollment, for a key it made itself (the CSR's subject is
//! ignored: the certificate's CN is the host's uuid, so a host deleted and
//! added again under the same name is another host). Every later call
//! presents it besides the agent token, and is refused unless its serial is
//! the one on the host's record, or the one it replaced until the agent
//! first presents the new one. A deleted host has no record and a revoked
//! one no serial: both are refused at once, however valid their
//! certificate. Over plain HTTP (loopback, or `--plain-http`) there is no
//! certificate to present and the token alone is checked.

use std::time::SystemTime;

use roost_pki::CertInfo;
use roost_store::StoredHost;

use crate::Error;

/// How an agent's call reached the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// Plain HTTP: there is no client certificate.
    Plain,
    /// HTTPS, with the client certificate the handshake verified (issued by
    /// the cloud CA and valid at the handshake), if one was presented.
    Tls(Option<CertInfo>),
}

/// An agent's credentials on one call.
#[derive(Debug, Clone)]
pub struct AgentCall {
    /// The `X-Agent-Token` header.
    pub token: String,
    pub channel: Channel,
}

/// Which of the host's certificates a call presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// None was needed (plain HTTP).
    Nothing,
    /// None yet: the host has no certificate on record (enrolled over plain
    /// HTTP), which only the certificate route accepts.
    FirstCertificate,
    /// The certificate on record.
    Current,
    /// The one the certificate on record replaced.
    Previous,
}

/// The subject CN of a host's agent certificate.
pub fn subject_cn(h: &StoredHost) -> String {
    h.uuid.clone()
}

fn refused(message: String) -> Error {
    Error::Unauthorized(message)
}

/// Checks the certificate a call to `h`'s agent routes presented.
/// `first_allowed`: the call asks for a certificate, so a host with none on
/// record may call without one.
pub fn check(h: &StoredHost, channel: &Channel, first_allowed: bool) -> Result<Presented, Error> {
    let peer = match channel {
        Channel::Plain => return Ok(Presented::Nothing),
        Channel::Tls(peer) => peer,
    };
    let Some(current) = h.agent_cert_serial.as_deref() else {
        return match peer {
            None if first_allowed => Ok(Presented::FirstCertificate),
            _ => Err(refused(format!(
                "host {} has no client certificate on record: its agent must ask for one \
                 (POST /v1/agent/certificate) or enroll again",
                h.hostname
            ))),
        };
    };
    let Some(peer) = peer else {
        return Err(refused(format!(
            "host {}'s agent must present its client certificate",
            h.hostname
        )));
    };
    if peer.cn.as_deref() != Some(subject_cn(h).as_str()) {
        return Err(refused(format!(
            "the client certificate (serial {}) is not host {}'s",
            peer.serial, h.hostname
        )));
    }
    if peer.serial == current {
        Ok(Presented::Current)
    } else if h.agent_cert_prev_serial.as_deref() == Some(peer.serial.as_str()) {
        Ok(Presented::Previous)
    } else {
        Err(refused(format!(
            "the client certificate (serial {}) is no longer host {}'s: it was replaced or revoked",
            peer.serial, h.hostname
        )))
    }
}

/// The record once `presented` was accepted: the first use of the current
/// certificate retires the one it replaced. `None`: nothing changes.
pub fn after_use(h: &StoredHost, presented: Presented) -> Option<StoredHost> {
    (presented == Presented::Current && h.agent_cert_prev_serial.is_some()).then(|| {
        let mut u = h.clone();
        u.agent_cert_prev_serial = None;
        u
    })
}

/// The record once `cert_pem` (with `info`) was issued on a call that
/// presented `presented`: the certificate the agent holds now stays good
/// until it presents the new one.
pub fn issued(h: &StoredHost, presented: &Channel, cert_pem: &str, info: &CertInfo) -> StoredHost {
    let mut u = h.clone();
    u.agent_cert_prev_serial = match presented {
        Channel::Tls(Some(peer)) => Some(peer.serial.clone()),
        _ => None,
    };
    u.agent_cert = Some(cert_pem.to_string());
    u.agent_cert_serial = Some(info.serial.clone());
    u
}

/// The record with every credential of its agent withdrawn: its token,
/// its certificates and its heartbeat key.
pub fn revoked(h: &StoredHost) -> StoredHost {
    let mut u = h.clone();
    u.agent_token_hash = None;
    u.agent_cert = None;
    u.agent_cert_serial = None;
    u.agent_cert_prev_serial = None;
    u.hb_key = None;
    u
}

/// Whether the agent should renew the certificate it presented at `now`:
/// two thirds of its life are gone, or it is not from the CA named
/// `ca_cn` (the cloud CA was rotated).
pub fn renewal_due(peer: &CertInfo, ca_cn: Option<&str>, now: SystemTime) -> bool {
    roost_pki::needs_renewal(peer, now) || (ca_cn.is_some() && peer.issuer_cn.as_deref() != ca_cn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn host() -> StoredHost {
        StoredHost {
            uuid: "4d0f-uuid".into(),
            hostname: "worker-1".into(),
            agent_cert_serial: Some("0b".into()),
            agent_cert_prev_serial: Some("0a".into()),
            ..Default::default()
        }
    }

    fn cert(cn: &str, serial: &str) -> CertInfo {
        CertInfo {
            cn: Some(cn.into()),
            issuer_cn: Some("Roost cloud CA".into()),
            serial: serial.into(),
            not_before: 0,
            not_after: 3000,
            fingerprint: "00".repeat(32),
        }
    }

    fn tls(cn: &str, serial: &str) -> Channel {
        Channel::Tls(Some(cert(cn, serial)))
    }

    #[test]
    fn plain_http_checks_no_certificate() {
        assert_eq!(
            check(&host(), &Channel::Plain, false).unwrap(),
            Presented::Nothing
        );
    }

    #[test]
    fn the_current_and_the_replaced_serial_are_accepted_and_nothing_else() {
        let h = host();
        assert_eq!(
            check(&h, &tls("4d0f-uuid", "0b"), false).unwrap(),
            Presented::Current
        );
        assert_eq!(
            check(&h, &tls("4d0f-uuid", "0a"), false).unwrap(),
            Presented::Previous
        );
        let e = check(&h, &tls("4d0f-uuid", "09"), false).unwrap_err();
        assert!(e.to_string().contains("no longer host worker-1's"), "{e}");
        // Another host's certificate, even with a matching serial.
        let e = check(&h, &tls("other-uuid", "0b"), false).unwrap_err();
        assert!(e.to_string().contains("not host worker-1's"), "{e}");
        // No certificate at all over HTTPS.
        assert!(check(&h, &Channel::Tls(None), true).is_err());
    }

    #[test]
    fn a_host_without_a_certificate_may_only_ask_for_one() {
        let h = StoredHost {
            agent_cert_serial: None,
            agent_cert_prev_serial: None,
            ..host()
        };
        assert_eq!(
            check(&h, &Channel::Tls(None), true).unwrap(),
            Presented::FirstCertificate
        );
        assert!(check(&h, &Channel::Tls(None), false).is_err());
        // A revoked host has no serial: its old certificate is refused.
        let r = revoked(&host());
        assert!(check(&r, &tls("4d0f-uuid", "0b"), false).is_err());
        assert!(r.agent_token_hash.is_none() && r.hb_key.is_none());
    }

    #[test]
    fn issuing_keeps_the_presented_certificate_until_the_new_one_is_used() {
        let h = host();
        let new = cert("4d0f-uuid", "0c");
        let u = issued(&h, &tls("4d0f-uuid", "0a"), "PEM", &new);
        assert_eq!(u.agent_cert_serial.as_deref(), Some("0c"));
        assert_eq!(u.agent_cert_prev_serial.as_deref(), Some("0a"));
        assert_eq!(u.agent_cert.as_deref(), Some("PEM"));
        // The old current one ("0b") is out.
        assert!(check(&u, &tls("4d0f-uuid", "0b"), false).is_err());
        // The first use of "0c" retires "0a".
        let p = check(&u, &tls("4d0f-uuid", "0c"), false).unwrap();
        let after = after_use(&u, p).unwrap();
        assert!(after.agent_cert_prev_serial.is_none());
        assert!(check(&after, &tls("4d0f-uuid", "0a"), false).is_err());
        assert!(after_use(&after, Presented::Current).is_none());
    }

    #[test]
    fn renewal_is_due_at_two_thirds_or_after_a_ca_rotation() {
        let c = cert("x", "01");
        let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert!(!renewal_due(&c, Some("Roost cloud CA"), at(1000)));
        assert!(renewal_due(&c, Some("Roost cloud CA"), at(2000)));
        assert!(renewal_due(&c, Some("Roost cloud CA 1a2b"), at(1000)));
    }
}
