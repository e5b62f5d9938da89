//! The API's TLS (the cloud CA, the server certificate, an operator's
//! certificate, CA rotation) and the inventory of every certificate Roost
//! uses, with the expiry alarms 500.200 and 500.210.
//!
//! Files, under `<data_dir>/tls/` (directory 0700):
//! - `ca/ca.key` (0600), `ca/ca.crt`: the cloud CA;
//! - `api.crt`, `api.key` (0600): the API's chain and key;
//! - `api.installed`: present when the API certificate is an operator's
//!   (never renewed by Roost);
//! - `ca-previous.crt`: the CA before the last rotation, still trusted by
//!   clients that have not picked up the new one;
//! - `ca-bundle.crt`: what clients should trust (the CA, and the previous
//!   one after a rotation).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use roost_api::certificates::CertificateView;
use roost_pki::{Ca, CertInfo, ServerIdentity, SwappableCert};
use roost_types::{Clock, Severity, Timestamp};
use tokio::sync::Notify;

use crate::error::{Context, Error, Result};
use crate::fm_service::{FmService, raise_or_clear};

/// Days a self-issued API certificate is valid (renewed after two thirds).
pub const API_CERT_DAYS: u32 = 365;
/// 500.200 is raised this long before a certificate expires.
pub const EXPIRY_WARNING_SECS: i64 = 30 * 86_400;
/// How often certificates are checked (and also at start, and after an
/// install or a rotation).
const CHECK_INTERVAL: Duration = Duration::from_secs(3600);

pub const EXPIRING: &str = "500.200";
pub const EXPIRED: &str = "500.210";

const CA_DIR: &str = "ca";
const API_CERT: &str = "api.crt";
const API_KEY: &str = "api.key";
const API_INSTALLED: &str = "api.installed";
const API_NAMES: &str = "api.names";
const CA_PREVIOUS: &str = "ca-previous.crt";
const CA_BUNDLE: &str = "ca-bundle.crt";

/// Whether the API is served over TLS: `[http] tls` and the listen address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// HTTPS unless the listen address is loopback.
    Auto,
    On,
    Off,
}

impl TlsMode {
    pub fn parse(s: &str) -> Option<TlsMode> {
        match s {
            "auto" => Some(TlsMode::Auto),
            "on" => Some(TlsMode::On),
            "off" => Some(TlsMode::Off),
            _ => None,
        }
    }

    /// Whether to serve HTTPS on `listen`. Plain HTTP on anything but
    /// loopback needs `plain_http` (the `--plain-http` flag), else it is an
    /// error.
    pub fn https(self, listen: std::net::IpAddr, plain_http: bool) -> Result<bool> {
        match self {
            TlsMode::On => Ok(true),
            TlsMode::Auto => Ok(!listen.is_loopback() && !plain_http),
            TlsMode::Off if listen.is_loopback() || plain_http => Ok(false),
            TlsMode::Off => Err(Error::Invalid(format!(
                "http.tls = \"off\" on {listen}, which is not loopback: tokens and passwords \
                 would cross the network in clear; pass --plain-http to do so anyway"
            ))),
        }
    }
}

/// The names the API certificate is for: the configured ones, the public
/// URL's host, the listen address (unless unspecified), the hostname, and
/// localhost / 127.0.0.1 / ::1.
pub fn api_names(
    configured: &[String],
    public_url: Option<&str>,
    listen: std::net::IpAddr,
    hostname: &str,
) -> Vec<String> {
    let mut names: Vec<String> = configured.iter().map(|n| n.trim().to_string()).collect();
    if let Some(host) = public_url.and_then(url_host) {
        names.push(host);
    }
    if !listen.is_unspecified() {
        names.push(listen.to_string());
    }
    names.push(hostname.to_string());
    names.extend(["localhost", "127.0.0.1", "::1"].map(String::from));
    let mut seen = BTreeSet::new();
    names.retain(|n| !n.is_empty() && seen.insert(n.clone()));
    names
}

/// The host of `scheme://host[:port]/...`, without brackets.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// The cloud CA and the one before it (after a rotation), PEM.
fn bundle_pem(st: &TlsState) -> String {
    let mut pem = st.ca.ca_pem().to_string();
    if let Some(prev) = &st.previous_ca_pem {
        if !pem.ends_with('\n') {
            pem.push('\n');
        }
        pem.push_str(prev);
    }
    pem
}

/// The API's TLS: the cloud CA and the certificate the API presents.
pub struct ApiTls {
    dir: PathBuf,
    names: Vec<String>,
    cert: Arc<SwappableCert>,
    /// The CAs whose client certificates the API accepts (the cloud CA, and
    /// the previous one after a rotation).
    clients: Arc<roost_pki::ClientRoots>,
    state: Mutex<TlsState>,
}

struct TlsState {
    ca: Ca,
    previous_ca_pem: Option<String>,
    installed: bool,
}

impl std::fmt::Debug for ApiTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTls")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl ApiTls {
    /// Loads the cloud CA and the API certificate from `dir`, making them
    /// on first start. A self-issued certificate that is due for renewal,
    /// not from the current CA, or for other names is issued anew.
    pub fn load_or_create(dir: &Path, names: Vec<String>) -> Result<Arc<ApiTls>> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let ca = Ca::load_or_create(&dir.join(CA_DIR), "Roost cloud CA")
            .context("cannot load or create the cloud CA")?;
        let previous_ca_pem = fs::read_to_string(dir.join(CA_PREVIOUS)).ok();
        let installed = dir.join(API_INSTALLED).exists();
        let cert_path = dir.join(API_CERT);
        let key_path = dir.join(API_KEY);
        let loaded = if cert_path.exists() && key_path.exists() {
            match ServerIdentity::from_files(&cert_path, &key_path) {
                Ok(id) => Some(id),
                Err(e) if installed => {
                    return Err(Error::Invalid(format!(
                        "the installed API certificate {} cannot be used: {e}",
                        cert_path.display()
                    )));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the API certificate cannot be used; issuing a new one");
                    None
                }
            }
        } else {
            None
        };
        let stored_names = fs::read_to_string(dir.join(API_NAMES)).unwrap_or_default();
        let state = TlsState {
            ca,
            previous_ca_pem,
            installed,
        };
        let identity = match loaded {
            Some(id)
                if installed
                    || (stored_names == names.join("\n")
                        && !roost_pki::needs_renewal(&id.leaf, SystemTime::now())
                        && id.chain.last().map(|c| &c.fingerprint)
                            == Some(&state.ca.info().fingerprint)) =>
            {
                id
            }
            _ => issue(dir, &state.ca, &names)?,
        };
        let clients = roost_pki::ClientRoots::new(&bundle_pem(&state))?;
        let tls = Arc::new(ApiTls {
            dir: dir.to_path_buf(),
            names,
            cert: SwappableCert::new(identity),
            clients,
            state: Mutex::new(state),
        });
        tls.write_bundle()?;
        Ok(tls)
    }

    /// A rustls server config presenting the current certificate (and any
    /// that replaces it later), asking for an optional client certificate
    /// from the cloud CA (agents present one; people and the stock clients
    /// do not).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        Ok(self.cert.server_config_with_clients(self.clients.clone())?)
    }

    /// Signs an agent's CSR with the cloud CA: a client certificate for
    /// `cn`, valid from now for `secs` seconds. The CSR's own subject is
    /// ignored.
    pub fn sign_agent_csr(&self, csr_pem: &str, cn: &str, secs: u64) -> Result<(String, CertInfo)> {
        let now = SystemTime::now();
        let until = now
            .checked_add(Duration::from_secs(secs))
            .ok_or_else(|| Error::Invalid(format!("a lifetime of {secs} s is out of range")))?;
        // The server alone checks these certificates, on its own clock.
        let validity = roost_pki::Validity::between(now - Duration::from_secs(1), until)?;
        let pem = self
            .lock()
            .ca
            .sign_client_csr_with(csr_pem, cn, validity)
            .map_err(|e| {
                Error::Invalid(format!("the certificate request cannot be signed: {e}"))
            })?;
        let info = roost_pki::cert_info(&pem)?;
        Ok((pem, info))
    }

    /// The subject CN of the current cloud CA.
    pub fn ca_cn(&self) -> Option<String> {
        self.lock().ca.info().cn.clone()
    }

    /// What the API presents now.
    pub fn current(&self) -> ServerIdentity {
        self.cert.get()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TlsState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the API certificate was installed by an operator.
    pub fn installed(&self) -> bool {
        self.lock().installed
    }

    /// The CA certificates clients should trust, PEM.
    pub fn ca_bundle_pem(&self) -> String {
        bundle_pem(&self.lock())
    }

    fn write_bundle(&self) -> Result<()> {
        roost_pki::write_public_file(&self.dir.join(CA_BUNDLE), &self.ca_bundle_pem())?;
        Ok(())
    }

    /// Installs an operator's chain and key: checked, written (key 0600),
    /// then presented from the next handshake on. Never renewed by Roost.
    pub fn install(&self, chain_pem: &str, key_pem: &str) -> Result<ServerIdentity> {
        let id = ServerIdentity::from_pem(chain_pem, key_pem)
            .map_err(|e| Error::Invalid(format!("the certificate cannot be installed: {e}")))?;
        let mut st = self.lock();
        roost_pki::write_private_file(&self.dir.join(API_KEY), key_pem)?;
        roost_pki::write_public_file(&self.dir.join(API_CERT), chain_pem)?;
        roost_pki::write_public_file(&self.dir.join(API_INSTALLED), "")?;
        st.installed = true;
        self.cert.set(id.clone());
        tracing::info!(fingerprint = %id.leaf.fingerprint, not_after = id.leaf.not_after, "installed an operator's API certificate");
        Ok(id)
    }

    /// Issues a new self-signed-by-the-cloud-CA certificate if the current
    /// one is self-issued and due (two thirds of its life gone). An
    /// operator's certificate is left alone (it is alarmed instead).
    pub fn renew_if_due(&self, now: SystemTime) -> Result<bool> {
        let current = self.cert.get();
        let st = self.lock();
        if st.installed || !roost_pki::needs_renewal(&current.leaf, now) {
            return Ok(false);
        }
        let id = issue(&self.dir, &st.ca, &self.names)?;
        tracing::info!(fingerprint = %id.leaf.fingerprint, "renewed the API certificate");
        self.cert.set(id);
        Ok(true)
    }

    /// Rotates the cloud CA: a new CA, cross-signed by the old one, and a
    /// new API certificate from it presented as `[leaf, new CA signed by
    /// the old CA]`, so that a client trusting either CA accepts it. The
    /// old CA stays in the bundle until the next rotation. An operator's
    /// certificate is replaced by a self-issued one.
    pub fn rotate_ca(&self) -> Result<ServerIdentity> {
        let mut st = self.lock();
        let next_dir = self.dir.join("ca.next");
        if next_dir.exists() {
            fs::remove_dir_all(&next_dir)
                .with_context(|| format!("cannot remove {}", next_dir.display()))?;
        }
        let suffix = &roost_pki::fingerprint_der(
            &SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
                .to_be_bytes(),
        )[..8];
        let next = Ca::load_or_create(&next_dir, &format!("Roost cloud CA {suffix}"))?;
        let cross = st.ca.cross_sign(&next)?;
        let old_pem = st.ca.ca_pem().to_string();
        roost_pki::write_public_file(&self.dir.join(CA_PREVIOUS), &old_pem)?;
        let ca_dir = self.dir.join(CA_DIR);
        let old_dir = self.dir.join("ca.old");
        if old_dir.exists() {
            fs::remove_dir_all(&old_dir)
                .with_context(|| format!("cannot remove {}", old_dir.display()))?;
        }
        fs::rename(&ca_dir, &old_dir).context("cannot move the old cloud CA aside")?;
        fs::rename(&next_dir, &ca_dir).context("cannot put the new cloud CA in place")?;
        let next = Ca::load_or_create(&ca_dir, "Roost cloud CA")?;
        let (leaf, key) = next.issue_leaf_pem(&self.names, API_CERT_DAYS)?;
        let chain = format!("{}{cross}", ensure_newline(leaf));
        let id = ServerIdentity::from_pem(&chain, &key)?;
        roost_pki::write_private_file(&self.dir.join(API_KEY), &key)?;
        roost_pki::write_public_file(&self.dir.join(API_CERT), &chain)?;
        let _ = fs::remove_file(self.dir.join(API_INSTALLED));
        st.ca = next;
        st.previous_ca_pem = Some(old_pem);
        st.installed = false;
        self.cert.set(id.clone());
        // Agents' certificates from either CA are accepted; agents renew
        // theirs from the new one when their next report says so.
        self.clients.set(&bundle_pem(&st))?;
        drop(st);
        self.write_bundle()?;
        tracing::info!(fingerprint = %id.leaf.fingerprint, "rotated the cloud CA");
        Ok(id)
    }

    /// The inventory entries of the API's certificates.
    pub fn entries(&self) -> Vec<Entry> {
        let current = self.cert.get();
        let st = self.lock();
        let mut out = vec![Entry::system(
            "api",
            "server certificate of the API",
            "ssl",
            if st.installed { "installed" } else { "self" },
            current.leaf.clone(),
        )];
        out.push(Entry::system(
            "cloud-ca",
            "cloud CA: issues the API's server certificate; clients trust it",
            "ssl_ca",
            "self",
            st.ca.info().clone(),
        ));
        if let Some(prev) = st
            .previous_ca_pem
            .as_deref()
            .and_then(|p| roost_pki::cert_info(p).ok())
        {
            out.push(Entry::system(
                "cloud-ca-previous",
                "the cloud CA before the last rotation, still trusted by clients",
                "ssl_ca",
                "self",
                prev,
            ));
        }
        out
    }
}

fn ensure_newline(mut s: String) -> String {
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// Issues the API certificate from `ca` for `names` and writes it.
fn issue(dir: &Path, ca: &Ca, names: &[String]) -> Result<ServerIdentity> {
    let (chain, key) = ca.issue_server_cert(names, API_CERT_DAYS)?;
    let id = ServerIdentity::from_pem(&chain, &key)?;
    roost_pki::write_private_file(&dir.join(API_KEY), &key)?;
    roost_pki::write_public_file(&dir.join(API_CERT), &chain)?;
    roost_pki::write_public_file(&dir.join(API_NAMES), &names.join("\n"))?;
    let _ = fs::remove_file(dir.join(API_INSTALLED));
    Ok(id)
}

/// One certificate of the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub purpose: String,
    pub mode: String,
    pub source: String,
    pub info: CertInfo,
    /// The alarms' entity_instance_id.
    pub entity: String,
    /// How the alarm text names it.
    pub label: String,
}

/// A uuid-shaped id from a fingerprint (its first 128 bits).
pub fn cert_uuid(fingerprint: &str) -> String {
    let h: String = fingerprint.chars().take(32).collect();
    if h.len() < 32 {
        return h;
    }
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl Entry {
    /// A certificate of the platform (StarlingX's `system certificate-list`):
    /// entity `system.certificate.mode=<mode>.uuid=<uuid>`.
    pub fn system(name: &str, purpose: &str, mode: &str, source: &str, info: CertInfo) -> Entry {
        let uuid = cert_uuid(&info.fingerprint);
        Entry {
            name: name.into(),
            purpose: purpose.into(),
            mode: mode.into(),
            source: source.into(),
            entity: format!("system.certificate.mode={mode}.uuid={uuid}"),
            label: format!("system certificate-show {uuid}' (mode={mode}"),
            info,
        }
    }

    /// A Distributed Cloud certificate: entity
    /// `namespace=dc-cert.certificate=<name>`, as StarlingX names the
    /// certificates of its `dc-cert` namespace.
    pub fn dc(name: &str, purpose: &str, info: CertInfo) -> Entry {
        let cert = name.replace('/', "-");
        Entry {
            name: name.into(),
            purpose: purpose.into(),
            mode: "dc".into(),
            source: "self".into(),
            entity: format!("namespace=dc-cert.certificate={cert}"),
            label: format!("dc-cert/{cert}"),
            info,
        }
    }

    /// An agent's client certificate: entity `host=<hostname>.certificate=agent`.
    pub fn agent(host: &str, info: CertInfo) -> Entry {
        Entry {
            name: format!("agent/{host}"),
            purpose: "client certificate of a host's agent (mutual TLS to the API)".into(),
            mode: "agent".into(),
            source: "self".into(),
            entity: format!("host={host}.certificate=agent"),
            label: format!("agent/{host}"),
            info,
        }
    }

    /// A leaf certificate Roost renews itself (at two thirds of its life:
    /// the self-issued API certificate, the DC listener's, the subclouds'),
    /// as opposed to a CA or an operator's certificate.
    pub fn renewed_by_roost(&self) -> bool {
        self.source == "self" && self.mode != "ssl_ca" && self.name != "dc-ca"
    }

    /// How long before expiry 500.200 is raised: 30 days; for a
    /// certificate Roost renews, only once its renewal is overdue (a sixth
    /// of its life left, when renewal was due at a third), so that the
    /// 30-day subcloud certificates are not always alarmed.
    pub fn warning_secs(&self) -> i64 {
        if self.renewed_by_roost() {
            let lifetime = self.info.not_after.saturating_sub(self.info.not_before);
            EXPIRY_WARNING_SECS.min(lifetime / 6)
        } else {
            EXPIRY_WARNING_SECS
        }
    }

    pub fn view(&self) -> CertificateView {
        CertificateView {
            name: self.name.clone(),
            purpose: self.purpose.clone(),
            mode: self.mode.clone(),
            source: self.source.clone(),
            uuid: cert_uuid(&self.info.fingerprint),
            subject: self.info.cn.clone(),
            issuer: self.info.issuer_cn.clone(),
            serial: self.info.serial.clone(),
            not_before: unix_rfc3339(self.info.not_before),
            not_after: unix_rfc3339(self.info.not_after),
            fingerprint: colon_fingerprint(&self.info.fingerprint),
        }
    }
}

fn unix_rfc3339(secs: i64) -> String {
    Timestamp(secs.saturating_mul(1_000_000))
        .to_rfc3339()
        .replace(".000000Z", "Z")
}

/// `AA:BB:...` from lowercase hex.
pub fn colon_fingerprint(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

/// An alarm a certificate should have: `(alarm id, entity)` → severity and text.
pub type Desired = BTreeMap<(String, String), (Severity, String)>;

/// Which expiry alarm each certificate should have at unix time `now`:
/// 500.210 (critical) once expired, 500.200 (major) within
/// [`Entry::warning_secs`] of expiry ([`EXPIRY_WARNING_SECS`], less for
/// what Roost renews itself), none otherwise. Pure: the clock is an
/// argument.
pub fn desired_alarms(entries: &[Entry], now: i64) -> Desired {
    let mut out = Desired::new();
    for e in entries {
        let date = unix_rfc3339(e.info.not_after);
        let quoted = format!("Certificate '{}", e.label);
        let closing = if e.label.contains("(mode=") { ")" } else { "'" };
        let (id, severity, text) = if now > e.info.not_after {
            (
                EXPIRED,
                Severity::Critical,
                format!("{quoted}{closing} expired."),
            )
        } else if e.info.not_after - now <= e.warning_secs() {
            (
                EXPIRING,
                Severity::Major,
                format!("{quoted}{closing} expiring soon on {date}."),
            )
        } else {
            continue;
        };
        out.insert((id.to_string(), e.entity.clone()), (severity, text));
    }
    out
}

/// Whether an alarm `(id, entity)` is one of ours to manage.
fn ours(alarm_id: &str, entity: &str) -> bool {
    (alarm_id == EXPIRING || alarm_id == EXPIRED)
        && (entity.starts_with("system.certificate.mode=")
            || entity.starts_with("namespace=dc-cert.certificate=")
            || (entity.starts_with("host=") && entity.ends_with(".certificate=agent")))
}

/// An alarm raised now: `(id, entity, severity, reason)`.
pub type ExistingAlarm = (String, String, Severity, String);

/// What to raise (`(id, entity)` → severity and reason) and what to clear.
pub type AlarmPlan = (
    Vec<((String, String), (Severity, String))>,
    Vec<(String, String)>,
);

/// What to raise (new or changed) and what to clear, from the alarms that
/// should be and those that are.
pub fn alarm_plan(desired: &Desired, existing: &[ExistingAlarm]) -> AlarmPlan {
    let mut raise = Vec::new();
    for (key, want) in desired {
        let same = existing.iter().any(|(id, ent, sev, text)| {
            (id, ent) == (&key.0, &key.1) && (*sev, text) == (want.0, &want.1)
        });
        if !same {
            raise.push((key.clone(), want.clone()));
        }
    }
    let clear = existing
        .iter()
        .filter(|(id, ent, _, _)| {
            ours(id, ent) && !desired.contains_key(&(id.clone(), ent.clone()))
        })
        .map(|(id, ent, _, _)| (id.clone(), ent.clone()))
        .collect();
    (raise, clear)
}

/// Every certificate of this cloud.
pub struct Inventory {
    pub tls: Option<Arc<ApiTls>>,
    /// System controller: the DC root CA and the DC listener's certificate.
    pub dc_ca: Option<Arc<roost_pki::DcCa>>,
    pub dc_server: Mutex<Option<CertInfo>>,
    /// System controller: the client certificate each subcloud last
    /// presented.
    pub subclouds: Arc<Mutex<BTreeMap<String, CertInfo>>>,
    /// Subcloud: where its DC identity (CA and client certificate) is.
    pub dc_identity: Option<PathBuf>,
    /// The hosts, whose agents hold client certificates.
    pub hosts: Option<crate::hosts::HostService>,
    kick: Notify,
}

impl Inventory {
    pub fn new(tls: Option<Arc<ApiTls>>) -> Inventory {
        Inventory {
            tls,
            dc_ca: None,
            dc_server: Mutex::new(None),
            subclouds: Arc::default(),
            dc_identity: None,
            hosts: None,
            kick: Notify::new(),
        }
    }

    /// Asks the checker to run now.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    pub fn entries(&self) -> Vec<Entry> {
        let mut out = self.tls.as_ref().map(|t| t.entries()).unwrap_or_default();
        if let Some(ca) = &self.dc_ca {
            out.push(Entry::dc(
                "dc-ca",
                "DC root CA: issues the DC listener's and the subclouds' certificates",
                ca.info().clone(),
            ));
        }
        if let Some(info) = self
            .dc_server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            out.push(Entry::dc(
                "dc-server",
                "server certificate of the DC listener",
                info,
            ));
        }
        for (name, info) in self
            .subclouds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            out.push(Entry::dc(
                &format!("subcloud/{name}"),
                "client certificate of a subcloud (mutual TLS to the DC listener)",
                info.clone(),
            ));
        }
        for (host, info) in self
            .hosts
            .as_ref()
            .map(|h| h.agent_certificates())
            .unwrap_or_default()
        {
            out.push(Entry::agent(&host, info));
        }
        if let Some(path) = &self.dc_identity
            && let Ok(text) = fs::read_to_string(path)
            && let Ok(id) = serde_json::from_str::<crate::subcloud::DcIdentity>(&text)
        {
            if let Ok(info) = roost_pki::cert_info(&id.cert_pem) {
                out.push(Entry::dc(
                    "dc-client",
                    "this subcloud's client certificate to its system controller",
                    info,
                ));
            }
            if let Ok(info) = roost_pki::cert_info(&id.ca_pem) {
                out.push(Entry::dc(
                    "dc-ca",
                    "the system controller's DC root CA",
                    info,
                ));
            }
        }
        out
    }

    /// One check: renew what is due, then raise and clear expiry alarms.
    pub async fn check(&self, fm: &FmService, clock: &dyn Clock) {
        let now_secs = clock.now().micros().div_euclid(1_000_000);
        if let Some(tls) = &self.tls {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now_secs.max(0).unsigned_abs());
            if let Err(e) = tls.renew_if_due(now) {
                tracing::warn!(error = %e, "cannot renew the API certificate");
            }
        }
        let desired = desired_alarms(&self.entries(), now_secs);
        let existing: Vec<_> = fm
            .read()
            .alarms()
            .filter(|a| ours(&a.alarm_id, &a.entity_instance_id))
            .map(|a| {
                (
                    a.alarm_id.clone(),
                    a.entity_instance_id.clone(),
                    a.severity,
                    a.reason_text.clone(),
                )
            })
            .collect();
        let (raise, clear) = alarm_plan(&desired, &existing);
        for ((id, entity), (severity, text)) in raise {
            if let Err(e) = fm
                .submit(raise_or_clear(&id, entity, Some(severity), text))
                .await
            {
                tracing::warn!(error = %e, "cannot raise a certificate alarm");
            }
        }
        for (id, entity) in clear {
            if let Err(e) = fm
                .submit(raise_or_clear(&id, entity, None, String::new()))
                .await
            {
                tracing::warn!(error = %e, "cannot clear a certificate alarm");
            }
        }
    }

    /// Checks at start, every [`CHECK_INTERVAL`], and when kicked.
    pub async fn run(
        self: Arc<Self>,
        fm: FmService,
        clock: Arc<dyn Clock>,
        shutdown: crate::Shutdown,
    ) {
        loop {
            self.check(&fm, clock.as_ref()).await;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(CHECK_INTERVAL) => {}
                _ = self.kick.notified() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(not_before: i64, not_after: i64, fp: &str) -> CertInfo {
        CertInfo {
            cn: Some("x".into()),
            issuer_cn: Some("ca".into()),
            serial: "01".into(),
            not_before,
            not_after,
            fingerprint: fp.repeat(64 / fp.len()),
        }
    }

    const DAY: i64 = 86_400;

    #[test]
    fn no_alarm_long_before_expiry_500_200_within_30_days_500_210_after() {
        let t0 = 1_000_000_000;
        let api = Entry::system(
            "api",
            "",
            "ssl",
            "installed",
            info(t0 - DAY, t0 + 31 * DAY, "a"),
        );
        assert!(desired_alarms(std::slice::from_ref(&api), t0).is_empty());
        // Exactly 30 days before: expiring.
        let d = desired_alarms(std::slice::from_ref(&api), t0 + DAY);
        let uuid = cert_uuid(&api.info.fingerprint);
        let key = (
            "500.200".to_string(),
            format!("system.certificate.mode=ssl.uuid={uuid}"),
        );
        let (sev, text) = &d[&key];
        assert_eq!(*sev, Severity::Major);
        assert_eq!(
            text,
            &format!(
                "Certificate 'system certificate-show {uuid}' (mode=ssl) expiring soon on 2001-10-10T01:46:40Z."
            )
        );
        // At not_after still expiring; a second later expired.
        assert!(desired_alarms(std::slice::from_ref(&api), t0 + 31 * DAY).contains_key(&key));
        let d = desired_alarms(std::slice::from_ref(&api), t0 + 31 * DAY + 1);
        assert_eq!(d.len(), 1);
        let ((id, _), (sev, text)) = d.iter().next().unwrap();
        assert_eq!((id.as_str(), *sev), ("500.210", Severity::Critical));
        assert!(text.ends_with("(mode=ssl) expired."), "{text}");
    }

    #[test]
    fn what_roost_renews_is_alarmed_only_once_its_renewal_is_overdue() {
        let t0 = 1_000_000_000;
        // A 30-day subcloud certificate, renewed at 20 days: no alarm with
        // 10 days left, 500.200 with 5 left (a sixth of its life).
        let sub = Entry::dc("subcloud/a", "", info(t0, t0 + 30 * DAY, "d"));
        assert!(desired_alarms(std::slice::from_ref(&sub), t0 + 20 * DAY).is_empty());
        assert_eq!(
            desired_alarms(std::slice::from_ref(&sub), t0 + 25 * DAY).len(),
            1
        );
        // The DC CA and an operator's certificate: 30 days.
        let ca = Entry::dc("dc-ca", "", info(t0, t0 + 3650 * DAY, "e"));
        assert_eq!(
            desired_alarms(std::slice::from_ref(&ca), t0 + 3621 * DAY).len(),
            1
        );
        let op = Entry::system("api", "", "ssl", "installed", info(t0, t0 + 10 * DAY, "f"));
        assert_eq!(desired_alarms(std::slice::from_ref(&op), t0).len(), 1);
        // The self-issued API certificate (a year): 30 days.
        let api = Entry::system("api", "", "ssl", "self", info(t0, t0 + 365 * DAY, "g"));
        assert!(desired_alarms(std::slice::from_ref(&api), t0 + 334 * DAY).is_empty());
        assert_eq!(
            desired_alarms(std::slice::from_ref(&api), t0 + 336 * DAY).len(),
            1
        );
    }

    #[test]
    fn dc_certificates_use_the_dc_cert_namespace() {
        let e = Entry::dc("subcloud/edge-1", "", info(0, 10, "b"));
        let d = desired_alarms(&[e], 100);
        let ((_, entity), (_, text)) = d.iter().next().unwrap();
        assert_eq!(entity, "namespace=dc-cert.certificate=subcloud-edge-1");
        assert_eq!(text, "Certificate 'dc-cert/subcloud-edge-1' expired.");
    }

    #[test]
    fn the_plan_raises_what_is_missing_or_changed_and_clears_only_ours() {
        let t = 1_000_000_000;
        let a = Entry::system("api", "", "ssl", "self", info(0, t + DAY, "c"));
        let desired = desired_alarms(std::slice::from_ref(&a), t);
        let (raise, clear) = alarm_plan(&desired, &[]);
        assert_eq!((raise.len(), clear.len()), (1, 0));
        let (key, (sev, text)) = desired.iter().next().unwrap();
        let existing = vec![
            (key.0.clone(), key.1.clone(), *sev, text.clone()),
            // A renewed certificate's old alarm: cleared.
            (
                "500.210".into(),
                "system.certificate.mode=ssl.uuid=old".into(),
                Severity::Critical,
                String::new(),
            ),
            // Not ours: left alone.
            (
                "500.200".into(),
                "namespace=kube.certificate=x".into(),
                Severity::Major,
                String::new(),
            ),
        ];
        let (raise, clear) = alarm_plan(&desired, &existing);
        assert!(raise.is_empty());
        assert_eq!(
            clear,
            vec![(
                "500.210".to_string(),
                "system.certificate.mode=ssl.uuid=old".to_string()
            )]
        );
        // Once renewed, nothing is desired: the alarm goes.
        let (_, clear) = alarm_plan(&Desired::new(), &existing[..1]);
        assert_eq!(clear.len(), 1);
    }

    #[test]
    fn tls_mode_auto_is_https_off_loopback_and_off_needs_the_flag_elsewhere() {
        let lo: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let any: std::net::IpAddr = "0.0.0.0".parse().unwrap();
        assert!(!TlsMode::Auto.https(lo, false).unwrap());
        assert!(TlsMode::Auto.https(any, false).unwrap());
        assert!(!TlsMode::Auto.https(any, true).unwrap());
        assert!(TlsMode::On.https(lo, false).unwrap());
        assert!(TlsMode::Off.https(any, false).is_err());
        assert!(!TlsMode::Off.https(any, true).unwrap());
    }

    #[test]
    fn names_cover_config_public_url_listen_hostname_and_loopback() {
        let n = api_names(
            &["cloud.example".into()],
            Some("https://[fd00::1]:6385/x"),
            "10.0.0.5".parse().unwrap(),
            "controller-0",
        );
        assert_eq!(
            n,
            [
                "cloud.example",
                "fd00::1",
                "10.0.0.5",
                "controller-0",
                "localhost",
                "127.0.0.1",
                "::1"
            ]
        );
    }

    #[test]
    fn install_renew_and_rotate_keep_files_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tls");
        let tls = ApiTls::load_or_create(&dir, vec!["localhost".into()]).unwrap();
        let first = tls.current().leaf.fingerprint;
        for f in ["api.key", "ca/ca.key"] {
            let mode = fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
        // Same files, same certificate.
        drop(tls);
        let tls = ApiTls::load_or_create(&dir, vec!["localhost".into()]).unwrap();
        assert_eq!(tls.current().leaf.fingerprint, first);
        // Not due now; due in 300 days.
        assert!(!tls.renew_if_due(SystemTime::now()).unwrap());
        let later = SystemTime::now() + Duration::from_secs(300 * 86_400);
        assert!(tls.renew_if_due(later).unwrap());
        assert_ne!(tls.current().leaf.fingerprint, first);
        // Rotation: the new chain verifies for a client of the old CA.
        let old_ca = tls.ca_bundle_pem();
        let rotated = tls.rotate_ca().unwrap();
        assert_eq!(rotated.chain.len(), 2);
        let bundle = tls.ca_bundle_pem();
        assert!(bundle.contains(old_ca.trim()));
        let entries = tls.entries();
        assert!(entries.iter().any(|e| e.name == "cloud-ca-previous"));
    }
}
