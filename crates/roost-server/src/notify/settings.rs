//! A destination's settings: read and checked from the API's create body,
//! split into what is stored in clear and the secrets that are sealed, and
//! read back from the store.

use roost_api::notify::{DestinationCreate, Target};
use roost_notify::snmp::{AuthProtocol, PrivProtocol, Security};
use roost_notify::syslog::Facility;
use roost_types::Severity;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Longest destination name.
pub const MAX_NAME: usize = 64;
/// Shortest webhook signing key.
pub const MIN_SECRET: usize = 16;

/// The lowest severity a destination is sent, or everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinSeverity {
    All,
    At(Severity),
}

impl MinSeverity {
    pub fn parse(s: &str) -> Result<MinSeverity, Error> {
        match s {
            "all" | "not-applicable" => Ok(MinSeverity::All),
            "critical" => Ok(MinSeverity::At(Severity::Critical)),
            "major" => Ok(MinSeverity::At(Severity::Major)),
            "minor" => Ok(MinSeverity::At(Severity::Minor)),
            "warning" => Ok(MinSeverity::At(Severity::Warning)),
            _ => Err(Error::Invalid(format!(
                "unknown min_severity {s:?}: use critical, major, minor, warning or all"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MinSeverity::All => "all",
            MinSeverity::At(Severity::Critical) => "critical",
            MinSeverity::At(Severity::Major) => "major",
            MinSeverity::At(Severity::Minor) => "minor",
            MinSeverity::At(Severity::Warning) => "warning",
            MinSeverity::At(Severity::NotApplicable) => "all",
        }
    }

    /// Whether a record of severity `s` is sent.
    pub fn admits(self, s: Severity) -> bool {
        fn rank(s: Severity) -> u8 {
            match s {
                Severity::Critical => 4,
                Severity::Major => 3,
                Severity::Minor => 2,
                Severity::Warning => 1,
                Severity::NotApplicable => 0,
            }
        }
        match self {
            MinSeverity::All => true,
            MinSeverity::At(min) => rank(s) >= rank(min),
        }
    }
}

/// A webhook's settings without its secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WebhookSettings {
    pub url: String,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub timeout_ms: u64,
}

/// An SNMP manager's settings without its secrets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnmpSettings {
    pub host: String,
    pub port: u16,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priv_protocol: Option<String>,
}

/// A syslog collector's settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SyslogSettings {
    pub transport: String,
    pub host: String,
    pub port: u16,
    pub facility: String,
}

/// The secrets of a destination (sealed at rest).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Secrets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub community: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priv_password: Option<String>,
}

/// A destination's type and settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Webhook(WebhookSettings),
    Snmp(SnmpSettings),
    Syslog(SyslogSettings),
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Webhook(_) => "webhook",
            Kind::Snmp(_) => "snmp",
            Kind::Syslog(_) => "syslog",
        }
    }

    /// Where it sends, for people.
    pub fn address(&self) -> String {
        match self {
            Kind::Webhook(w) => w.url.clone(),
            Kind::Snmp(s) => join_host_port(&s.host, s.port),
            Kind::Syslog(s) => format!("{}://{}", s.transport, join_host_port(&s.host, s.port)),
        }
    }

    /// The settings as stored (no secret).
    pub fn to_json(&self) -> String {
        let v = match self {
            Kind::Webhook(w) => serde_json::to_string(w),
            Kind::Snmp(s) => serde_json::to_string(s),
            Kind::Syslog(s) => serde_json::to_string(s),
        };
        v.unwrap_or_default()
    }

    /// Reads stored settings of type `kind`.
    pub fn from_stored(kind: &str, settings: &str) -> Result<Kind, Error> {
        let bad = |e: serde_json::Error| {
            Error::Internal(format!("a stored {kind} destination cannot be read: {e}"))
        };
        match kind {
            "webhook" => serde_json::from_str(settings)
                .map(Kind::Webhook)
                .map_err(bad),
            "snmp" => serde_json::from_str(settings).map(Kind::Snmp).map_err(bad),
            "syslog" => serde_json::from_str(settings)
                .map(Kind::Syslog)
                .map_err(bad),
            other => Err(Error::Internal(format!(
                "a stored destination has an unknown type {other:?}"
            ))),
        }
    }
}

/// `host:port`, with brackets around an IPv6 address.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Splits `HOST`, `HOST:PORT`, `[V6]` or `[V6]:PORT`.
pub fn split_host_port(s: &str, default_port: u16, what: &str) -> Result<(String, u16), Error> {
    let bad = || {
        Error::Invalid(format!(
            "{what} {s:?} is not HOST or HOST:PORT (an IPv6 address in brackets)"
        ))
    };
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else if s.matches(':').count() > 1 {
        (s, None)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => default_port,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?,
    };
    let ok_host = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:_%".contains(&b));
    if !ok_host {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// A checked create request.
#[derive(Debug, Clone)]
pub struct Checked {
    pub name: String,
    pub min_severity: MinSeverity,
    pub include_logs: bool,
    pub kind: Kind,
    pub secrets: Secrets,
}

fn bounded<T: PartialOrd + Copy + std::fmt::Display>(
    v: Option<T>,
    default: T,
    lo: T,
    hi: T,
    what: &str,
) -> Result<T, Error> {
    let v = v.unwrap_or(default);
    if v < lo || v > hi {
        return Err(Error::Invalid(format!(
            "{what} must be {lo} to {hi}, not {v}"
        )));
    }
    Ok(v)
}

/// Checks a whole create request.
pub fn check(body: DestinationCreate) -> Result<Checked, Error> {
    let name = body.name.trim().to_string();
    if name.is_empty()
        || name.len() > MAX_NAME
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(Error::Invalid(format!(
            "destination name {:?} must be 1 to {MAX_NAME} letters, digits, '-', '_' or '.'",
            body.name
        )));
    }
    let min_severity = MinSeverity::parse(body.min_severity.as_deref().unwrap_or("all"))?;
    let include_logs = body.include_logs.unwrap_or(true);
    let mut secrets = Secrets::default();
    let kind = match body.target {
        Target::Webhook {
            url,
            secret,
            max_attempts,
            retry_base_ms,
            timeout_ms,
        } => {
            let parsed = reqwest::Url::parse(&url)
                .map_err(|e| Error::Invalid(format!("webhook url {url:?} is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(Error::Invalid(format!(
                    "webhook url {url:?} must be http:// or https:// with a host"
                )));
            }
            if !parsed.username().is_empty() || parsed.password().is_some() {
                return Err(Error::Invalid(
                    "a webhook url must not hold credentials: the calls are signed with the secret instead".into(),
                ));
            }
            let secret = secret.unwrap_or_default();
            if secret.chars().count() < MIN_SECRET {
                return Err(Error::Invalid(format!(
                    "a webhook needs a secret of at least {MIN_SECRET} characters to sign its calls"
                )));
            }
            secrets.webhook_secret = Some(secret);
            Kind::Webhook(WebhookSettings {
                url: parsed.to_string(),
                max_attempts: bounded(max_attempts, 8, 1, 100, "max_attempts")?,
                retry_base_ms: bounded(retry_base_ms, 1_000, 10, 60_000, "retry_base_ms")?,
                timeout_ms: bounded(timeout_ms, 10_000, 100, 60_000, "timeout_ms")?,
            })
        }
        Target::Snmp {
            host,
            version,
            community,
            user,
            auth_protocol,
            auth_password,
            priv_protocol,
            priv_password,
        } => {
            let (host, port) = split_host_port(&host, 162, "SNMP host")?;
            let version = version.unwrap_or_else(|| "2c".into());
            let settings = match version.as_str() {
                "2c" => {
                    if user.is_some() || auth_password.is_some() || priv_password.is_some() {
                        return Err(Error::Invalid(
                            "user and passphrases are SNMPv3 settings: set version 3, or give only a community for 2c".into(),
                        ));
                    }
                    secrets.community = community;
                    SnmpSettings {
                        host,
                        port,
                        version,
                        user: None,
                        auth_protocol: None,
                        priv_protocol: None,
                    }
                }
                "3" => {
                    if community.is_some() {
                        return Err(Error::Invalid(
                            "a community is an SNMPv2c setting: SNMPv3 uses a user and passphrases"
                                .into(),
                        ));
                    }
                    let auth_protocol = auth_password
                        .as_ref()
                        .map(|_| auth_protocol.unwrap_or_else(|| "SHA".into()));
                    let priv_protocol = priv_password
                        .as_ref()
                        .map(|_| priv_protocol.unwrap_or_else(|| "AES".into()));
                    secrets.auth_password = auth_password;
                    secrets.priv_password = priv_password;
                    SnmpSettings {
                        host,
                        port,
                        version,
                        user,
                        auth_protocol,
                        priv_protocol,
                    }
                }
                other => {
                    return Err(Error::Invalid(format!(
                        "unknown SNMP version {other:?}: use 2c or 3"
                    )));
                }
            };
            let s = SnmpSettings { ..settings };
            // The encoder checks the rest (lengths, privacy needs auth).
            security(&s, &secrets)?;
            Kind::Snmp(s)
        }
        Target::Syslog { url, facility } => {
            let (transport, rest) = url.split_once("://").ok_or_else(|| {
                Error::Invalid(format!(
                    "syslog url {url:?} must be udp://HOST[:PORT] or tcp://HOST[:PORT]"
                ))
            })?;
            let default_port = match transport {
                "udp" => 514,
                "tcp" => 601,
                _ => {
                    return Err(Error::Invalid(format!(
                        "syslog url {url:?} must be udp:// or tcp://"
                    )));
                }
            };
            let (host, port) =
                split_host_port(rest.trim_end_matches('/'), default_port, "syslog host")?;
            let facility = facility.unwrap_or_else(|| "local0".into());
            Facility::parse(&facility).map_err(|e| Error::Invalid(e.to_string()))?;
            Kind::Syslog(SyslogSettings {
                transport: transport.to_string(),
                host,
                port,
                facility,
            })
        }
    };
    Ok(Checked {
        name,
        min_severity,
        include_logs,
        kind,
        secrets,
    })
}

/// The SNMP security of stored settings and secrets.
pub fn security(s: &SnmpSettings, secrets: &Secrets) -> Result<Security, Error> {
    if s.version == "2c" {
        let community = secrets
            .community
            .clone()
            .ok_or_else(|| Error::Invalid("an SNMPv2c destination needs a community".into()))?;
        return Ok(Security::V2c { community });
    }
    let user = s
        .user
        .clone()
        .ok_or_else(|| Error::Invalid("an SNMPv3 destination needs a user".into()))?;
    let auth = match (&s.auth_protocol, &secrets.auth_password) {
        (Some(p), Some(pw)) => Some((
            match p.to_ascii_uppercase().as_str() {
                "SHA" | "SHA1" | "SHA-1" => AuthProtocol::Sha1,
                "SHA-256" | "SHA256" => AuthProtocol::Sha256,
                other => {
                    return Err(Error::Invalid(format!(
                        "unknown SNMPv3 auth_protocol {other:?}: use SHA or SHA-256"
                    )));
                }
            },
            pw.clone(),
        )),
        _ => None,
    };
    let privacy = match (&s.priv_protocol, &secrets.priv_password) {
        (Some(p), Some(pw)) => Some((
            match p.to_ascii_uppercase().as_str() {
                "AES" | "AES128" | "AES-128" => PrivProtocol::Aes128,
                other => {
                    return Err(Error::Invalid(format!(
                        "unknown SNMPv3 priv_protocol {other:?}: use AES"
                    )));
                }
            },
            pw.clone(),
        )),
        _ => None,
    };
    Ok(Security::V3 {
        user,
        auth,
        privacy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(json: &str) -> Result<Checked, Error> {
        check(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn each_type_is_checked_with_a_message_that_says_what_to_do() {
        let w = create(r#"{"name":"ops","type":"webhook","url":"https://example.com/hook","secret":"0123456789abcdef"}"#).unwrap();
        assert_eq!(w.kind.name(), "webhook");
        assert_eq!(w.min_severity, MinSeverity::All);
        let e = create(
            r#"{"name":"ops","type":"webhook","url":"https://example.com/hook","secret":"short"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("at least 16"), "{e}");
        let e = create(
            r#"{"name":"ops","type":"webhook","url":"ftp://x/","secret":"0123456789abcdef"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("http:// or https://"), "{e}");
        let e = create(r#"{"name":"a b","type":"syslog","url":"udp://h"}"#).unwrap_err();
        assert!(e.to_string().contains("letters, digits"), "{e}");
        let s = create(
            r#"{"name":"log","type":"syslog","url":"tcp://[fd00::1]:6514","facility":"local3"}"#,
        )
        .unwrap();
        assert_eq!(s.kind.address(), "tcp://[fd00::1]:6514");
        let e = create(r#"{"name":"log","type":"syslog","url":"http://h"}"#).unwrap_err();
        assert!(e.to_string().contains("udp:// or tcp://"), "{e}");
        let e = create(r#"{"name":"n","type":"snmp","host":"10.0.0.9:99999","community":"c"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("HOST:PORT"), "{e}");
        let n = create(r#"{"name":"n","type":"snmp","host":"10.0.0.9","community":"public","min_severity":"major"}"#).unwrap();
        assert_eq!(n.kind.address(), "10.0.0.9:162");
        assert_eq!(n.min_severity, MinSeverity::At(Severity::Major));
        let e = create(r#"{"name":"n","type":"snmp","host":"h","version":"3","community":"c"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("SNMPv2c setting"), "{e}");
        let e = create(
            r#"{"name":"n","type":"snmp","host":"h","min_severity":"huge","community":"c"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("min_severity"), "{e}");
    }

    #[test]
    fn severity_filters_rank_severities() {
        let major = MinSeverity::At(Severity::Major);
        assert!(major.admits(Severity::Critical));
        assert!(major.admits(Severity::Major));
        assert!(!major.admits(Severity::Minor));
        assert!(!major.admits(Severity::NotApplicable));
        assert!(MinSeverity::All.admits(Severity::NotApplicable));
    }

    #[test]
    fn stored_settings_read_back() {
        let c = create(r#"{"name":"ops","type":"webhook","url":"http://127.0.0.1:9/x","secret":"0123456789abcdef","max_attempts":3}"#).unwrap();
        let back = Kind::from_stored("webhook", &c.kind.to_json()).unwrap();
        assert_eq!(back, c.kind);
        assert!(!c.kind.to_json().contains("0123456789abcdef"));
    }
}
