//! Server configuration: defaults, an optional TOML file, and overrides from
//! flags and environment (applied by the caller, which knows the flags).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use roost_mtce::{MonitorSettings, Thresholds};
use roost_store::Durability;
use serde::Deserialize;

use crate::Error;

/// Largest `fm.event_log_cap`: ten million records.
pub const MAX_EVENT_LOG_CAP: u64 = 10_000_000;
/// Largest `max_body_bytes`: 64 MiB.
pub const MAX_BODY_BYTES_LIMIT: u64 = 64 * 1024 * 1024;

/// Fewest `http.max_connections`.
pub const MIN_CONNECTIONS: u64 = 8;

/// Everything `roost server` needs to run.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the database, lock and credentials live.
    pub data_dir: PathBuf,
    /// The store: unset for the embedded SQLite database in the data
    /// directory, a PostgreSQL URL (`postgres://user:password@host/db`),
    /// or `duplex` for a PostgreSQL this server runs itself, replicated
    /// with the peer controller's (`[ha]`).
    pub store: Option<String>,
    /// Address of the HTTP listener.
    pub listen: SocketAddr,
    /// A StarlingX `events.yaml` to load on top of Roost's own catalogue.
    pub alarm_catalogue: Option<PathBuf>,
    /// Name of this server's own host (StarlingX's `controller-0` on AIO-SX).
    pub hostname: String,
    /// Lifetime of issued tokens, in seconds.
    pub token_ttl_secs: u64,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The URL clients should use to reach this server, for the service
    /// catalog and `next` links; by default derived from each request's Host.
    pub public_url: Option<String>,
    /// `simplex` (All-in-One Simplex, the default) or `duplex`.
    pub system_mode: String,
    /// UDP address the heartbeat is sent from. By default the API's
    /// address with any port ([`Config::heartbeat_addr`]).
    pub heartbeat_listen: Option<SocketAddr>,
    /// Lifetime of the join tokens `roost host add` hands out, seconds.
    pub join_token_ttl_secs: u64,
    /// Rotate a host's heartbeat key once it is this old, seconds (0: only
    /// on request).
    pub heartbeat_key_max_age_secs: u64,
    /// Lifetime of an agent's client certificate, seconds (HTTPS only;
    /// agents renew at two thirds of it).
    pub agent_cert_secs: u64,
    /// `standalone` (default), `systemcontroller` or `subcloud`.
    pub role: String,
    pub dc: DcConfigFile,
    pub fm: FmConfig,
    pub http: HttpConfig,
    pub monitor: MonitorConfig,
    pub log: LogConfig,
    pub apps: AppsConfigFile,
    pub audit: AuditConfig,
    pub identity: IdentityConfig,
    pub tpm: TpmConfig,
    pub software: SoftwareConfig,
    pub ha: HaConfig,
}

/// Several controllers on one PostgreSQL store (`[ha]`): one is active,
/// holding the controller lease; the others are standbys.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HaConfig {
    /// This server's name among those sharing the store [default: the
    /// hostname].
    pub name: Option<String>,
    /// The URL standbys send clients to while this server is active
    /// [default: the public URL, else this server's listen address].
    pub url: Option<String>,
    /// How long the lease lasts without a renewal, milliseconds; the
    /// active renews it four times as often. A standby takes over about
    /// this long after the active died.
    pub lease_ms: u64,
    /// Duplex (`store = "duplex"`): the peer controller's name.
    pub peer: Option<String>,
    /// Duplex: where this controller's PostgreSQL listens, for this server
    /// and the peer's replica.
    pub db_listen: Option<SocketAddr>,
    /// Duplex: where the peer controller's PostgreSQL listens.
    pub peer_db: Option<SocketAddr>,
    /// Duplex: a file (mode 0600) holding the database password, the same
    /// on both controllers.
    pub db_password_file: Option<PathBuf>,
    /// Duplex: the Redfish BMC of the peer's host, to power it off before
    /// taking over (`http://ADDRESS`). Without it the standby does not
    /// take over from a lost active.
    pub peer_bmc: Option<String>,
    pub peer_bmc_username: Option<String>,
    /// A file (mode 0600) holding the peer BMC's password.
    pub peer_bmc_password_file: Option<PathBuf>,
    /// Duplex: a witness (`roost witness` on a third host or the system
    /// controller, `http://ADDRESS:PORT`) that fences without a BMC: the
    /// active holds a lease there to commit alone, the standby takes it
    /// over once it expired.
    pub witness: Option<String>,
    /// A file (mode 0600) holding the key shared with the witness.
    pub witness_key_file: Option<PathBuf>,
    /// The pair's name at the witness [default: both controllers' names,
    /// `controller-0+controller-1`]; distinct for each cloud a witness
    /// serves.
    pub witness_pair: Option<String>,
    /// Duplex: this controller may create the database when it finds none
    /// here and no peer (the first controller installed).
    pub bootstrap: bool,
    /// Duplex: how long the primary waits for a lost replica before it
    /// commits alone, milliseconds.
    pub sync_grace_ms: u64,
    /// Duplex: PostgreSQL's binaries [default: the newest under
    /// /usr/lib/postgresql].
    pub postgres_bin: Option<PathBuf>,
    /// Duplex: the system user PostgreSQL runs as when the server runs as
    /// root.
    pub db_user: String,
}

impl Default for HaConfig {
    fn default() -> Self {
        HaConfig {
            name: None,
            url: None,
            lease_ms: 1000,
            peer: None,
            db_listen: None,
            peer_db: None,
            db_password_file: None,
            peer_bmc: None,
            peer_bmc_username: None,
            peer_bmc_password_file: None,
            witness: None,
            witness_key_file: None,
            witness_pair: None,
            bootstrap: false,
            sync_grace_ms: 5000,
            postgres_bin: None,
            db_user: "postgres".into(),
        }
    }
}

/// `store = "duplex"`.
pub const DUPLEX: &str = "duplex";

/// The duplex settings, checked and with their secrets read.
#[derive(Debug, Clone)]
pub struct Duplex {
    pub cluster: roost_store::cluster::ClusterConfig,
    pub peer: String,
    pub peer_db: SocketAddr,
    pub bmc: Option<crate::hosts::bmc::BmcTarget>,
    pub witness: Option<crate::witness::WitnessTarget>,
    pub bootstrap: bool,
    pub grace_ms: u64,
}

/// A secret's file: it must be private to its owner.
pub(crate) fn read_secret_file(path: &std::path::Path, setting: &str) -> Result<String, Error> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::Setting(format!("{setting}: cannot read {}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Error::Setting(format!(
            "{setting}: {} holds a secret and must be private to its owner (chmod 600)",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Setting(format!("{setting}: cannot read {}: {e}", path.display())))?;
    Ok(text.trim().to_string())
}

/// Logins (`[identity]`): account lockout as Keystone's
/// `lockout_failure_attempts` and `lockout_duration`, and growing delays.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// Wrong passwords in a row that lock an account (6, as PCI-DSS asks
    /// at most); 0 never locks.
    pub lockout_failure_attempts: u64,
    /// How long a locked account stays locked, seconds (30 minutes).
    pub lockout_duration_secs: u64,
    /// Wrong passwords from one source address or for one user name
    /// answered at once before delays begin (3).
    pub login_free_failures: u64,
    /// Longest delay between two attempts, milliseconds (30 s).
    pub login_max_delay_ms: u64,
    /// Longest an attempt made during its delay is held before it is
    /// answered, milliseconds (10 s); past it, 429 with `Retry-After`.
    pub login_max_hold_ms: u64,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        let p = crate::identity::LoginPolicy::default();
        IdentityConfig {
            lockout_failure_attempts: u64::from(p.lockout_failure_attempts),
            lockout_duration_secs: p.lockout_duration_secs,
            login_free_failures: u64::from(p.free_failures),
            login_max_delay_ms: p.max_delay_ms,
            login_max_hold_ms: p.max_hold_ms,
        }
    }
}

impl IdentityConfig {
    /// The policy the identity service applies (ranges checked by
    /// [`Config::validate`]).
    pub fn policy(&self) -> crate::identity::LoginPolicy {
        let small = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        crate::identity::LoginPolicy {
            lockout_failure_attempts: small(self.lockout_failure_attempts),
            lockout_duration_secs: self.lockout_duration_secs,
            free_failures: small(self.login_free_failures),
            max_delay_ms: self.login_max_delay_ms,
            max_hold_ms: self.login_max_hold_ms,
        }
    }
}

/// The audit log (`[audit]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Records older than this many days are pruned.
    pub retention_days: u64,
    /// At most this many records are kept; the oldest are pruned first.
    pub max_records: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention_days: 90,
            max_records: 1_000_000,
        }
    }
}

/// TPM attestation of hosts (`[tpm]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TpmConfig {
    /// Refuse agents that enroll without a TPM.
    pub required: bool,
    /// PCRs of the SHA-256 bank every quote must cover (0 to 23).
    pub pcrs: Vec<u8>,
    /// Seconds between quotes asked of each host.
    pub quote_interval_secs: u64,
    /// This server's own TPM (a TCTI such as `device:/dev/tpmrm0`): the
    /// data-encryption key is sealed by it. Unset: the kernel's TPM
    /// resource manager (`/dev/tpmrm0`) when there is one and this build
    /// has TPM support; `"none"`: never.
    pub device: Option<String>,
}

impl Default for TpmConfig {
    fn default() -> Self {
        let p = crate::hosts::attestation::Policy::default();
        TpmConfig {
            required: p.required,
            pcrs: p.pcrs,
            quote_interval_secs: p.quote_interval_secs,
            device: None,
        }
    }
}

impl TpmConfig {
    /// The TPM that seals the data-encryption key, if any.
    pub fn seal_device(&self) -> Option<String> {
        match self.device.as_deref().map(str::trim) {
            Some("none") => None,
            Some(tcti) => Some(tcti.to_string()),
            None => (roost_tpm::supported() && std::path::Path::new("/dev/tpmrm0").exists())
                .then(|| "device:/dev/tpmrm0".to_string()),
        }
    }

    pub fn policy(&self) -> crate::hosts::attestation::Policy {
        let mut pcrs = self.pcrs.clone();
        pcrs.sort_unstable();
        pcrs.dedup();
        crate::hosts::attestation::Policy {
            required: self.required,
            pcrs,
            quote_interval_secs: self.quote_interval_secs,
        }
    }
}

/// Software releases (`[software]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SoftwareConfig {
    /// The release signing keys this cloud trusts (`ed25519:<base64>`, as
    /// `roost release keygen` prints them).
    pub trusted_keys: Vec<String>,
    /// The largest release file accepted, bytes.
    pub max_release_bytes: u64,
    /// How long a host's agent has to fetch, switch to and check a release
    /// (and come back after a restart) before its deploy counts as failed.
    pub host_deploy_timeout_secs: u64,
    /// How long the server's own new `roost` binary has to serve and pass
    /// the release's health check before it is rolled back.
    pub trial_secs: u64,
}

impl Default for SoftwareConfig {
    fn default() -> Self {
        SoftwareConfig {
            trusted_keys: Vec::new(),
            max_release_bytes: 2 << 30,
            host_deploy_timeout_secs: 1800,
            trial_secs: 120,
        }
    }
}

/// Applications (`[apps]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppsConfigFile {
    /// The largest application package accepted, bytes (1 GiB).
    pub max_package_bytes: u64,
    /// containerd's socket; by default the server starts its own private
    /// containerd under the data directory.
    pub containerd_socket: Option<PathBuf>,
    /// Run this host's application containers (the All-in-One host's
    /// agent in the server). Off: applications run on agents' hosts only.
    pub local_runtime: bool,
    /// Accept applications whose containers ask for
    /// `securityContext.privileged: true` (off: such packages are refused).
    pub allow_privileged: bool,
}

impl Default for AppsConfigFile {
    fn default() -> Self {
        AppsConfigFile {
            max_package_bytes: 1 << 30,
            containerd_socket: None,
            local_runtime: true,
            allow_privileged: false,
        }
    }
}

/// Limits of the API port's connections.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Seconds a request head may take from its first byte.
    pub header_read_timeout_secs: u64,
    /// Seconds a request body may take from the end of its head.
    pub body_read_timeout_secs: u64,
    /// Seconds a connection may stay open with no request (keep-alive).
    pub idle_timeout_secs: u64,
    /// Most connections served at once; also kept below the open-file limit.
    pub max_connections: u64,
    /// `auto` (HTTPS unless the listen address is loopback), `on` or `off`.
    pub tls: String,
    /// Names and addresses the API certificate is valid for, besides the
    /// public URL's host, the listen address, the hostname and loopback.
    pub names: Vec<String>,
    /// Serve plain HTTP on an address that is not loopback (`--plain-http`).
    pub plain_http: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            idle_timeout_secs: 30,
            max_connections: 1024,
            tls: "auto".into(),
            names: Vec::new(),
            plain_http: false,
        }
    }
}

/// Distributed Cloud settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DcConfigFile {
    /// System controller: the HTTPS (mutual TLS) listener subclouds dial.
    /// By default the API's address, port 6386 ([`Config::dc_listen_addr`]).
    pub listen: Option<SocketAddr>,
    /// System controller: names and addresses its DC certificate is valid for
    /// (besides localhost, 127.0.0.1 and the listen address).
    pub names: Vec<String>,
    /// Seconds between a subcloud's syncs (its heartbeat).
    pub sync_interval_secs: u64,
    /// Seconds without a sync before a subcloud is offline.
    pub offline_after_secs: u64,
    /// Seconds a managed subcloud may stay out of sync before 280.002.
    pub out_of_sync_alarm_after_secs: u64,
    /// Lifetime of enrollment tokens, seconds.
    pub enroll_token_ttl_secs: u64,
    /// Days a subcloud certificate is valid (renewed after two thirds).
    pub subcloud_cert_days: u32,
    /// Subcloud: the system controller's DC URL (https://host:port).
    pub system_controller: Option<String>,
}

impl Default for DcConfigFile {
    fn default() -> Self {
        DcConfigFile {
            listen: None,
            names: Vec::new(),
            sync_interval_secs: 2,
            offline_after_secs: 8,
            out_of_sync_alarm_after_secs: 30,
            enroll_token_ttl_secs: 24 * 3600,
            subcloud_cert_days: 30,
            system_controller: None,
        }
    }
}

/// Fault management settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FmConfig {
    /// Most event log records kept (oldest pruned first).
    pub event_log_cap: u64,
    /// `process` (default: acknowledged writes survive kill -9) or `power`
    /// (also fsync at every commit: they survive power loss).
    pub durability: String,
}

/// Resource monitoring of the server's own host.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    pub enabled: bool,
    /// Seconds between samples.
    pub interval_secs: u64,
    /// Mount points to watch; empty means every local disk filesystem.
    pub filesystems: Vec<String>,
    #[serde(deserialize_with = "thresholds_from_toml")]
    pub thresholds: MonitorSettings,
}

/// Reads `[monitor.thresholds.{cpu,memory,filesystem}]` (each with `major`,
/// `critical` and `hysteresis`; an absent table keeps its default) into the
/// maintenance domain's settings, which know nothing of file formats.
fn thresholds_from_toml<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<MonitorSettings, D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ThresholdsFile {
        major: f64,
        critical: f64,
        hysteresis: f64,
    }
    #[derive(Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    struct SettingsFile {
        cpu: Option<ThresholdsFile>,
        memory: Option<ThresholdsFile>,
        filesystem: Option<ThresholdsFile>,
    }
    let file = SettingsFile::deserialize(d)?;
    let read = |t: Option<ThresholdsFile>, default: Thresholds| {
        t.map_or(default, |t| Thresholds {
            major: t.major,
            critical: t.critical,
            hysteresis: t.hysteresis,
        })
    };
    Ok(MonitorSettings {
        cpu: read(file.cpu, Thresholds::CPU),
        memory: read(file.memory, Thresholds::MEMORY),
        filesystem: read(file.filesystem, Thresholds::FILESYSTEM),
    })
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A filter such as `info` or `info,roost_server=debug`.
    pub level: String,
}

/// The DC listener's port when `[dc] listen` is not set.
pub const DEFAULT_DC_PORT: u16 = 6386;

impl Config {
    /// The address the heartbeat socket binds: `heartbeat_listen` if set,
    /// otherwise the management address (the API's IP) with any port. Every
    /// address (0.0.0.0) only when configured so, or when the API itself
    /// listens on every address.
    pub fn heartbeat_addr(&self) -> SocketAddr {
        self.heartbeat_listen
            .unwrap_or_else(|| SocketAddr::new(self.listen.ip(), 0))
    }

    /// The address the DC listener binds on a system controller:
    /// `[dc] listen` if set, otherwise the API's IP with port 6386.
    pub fn dc_listen_addr(&self) -> SocketAddr {
        self.dc
            .listen
            .unwrap_or_else(|| SocketAddr::new(self.listen.ip(), DEFAULT_DC_PORT))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./roost-data"),
            store: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 6385)),
            alarm_catalogue: None,
            hostname: "controller-0".into(),
            token_ttl_secs: 3600,
            max_body_bytes: 64 * 1024,
            public_url: None,
            system_mode: "simplex".into(),
            heartbeat_listen: None,
            join_token_ttl_secs: 3600,
            heartbeat_key_max_age_secs: 90 * DAY,
            agent_cert_secs: 90 * DAY,
            role: "standalone".into(),
            dc: DcConfigFile::default(),
            fm: FmConfig::default(),
            http: HttpConfig::default(),
            monitor: MonitorConfig::default(),
            log: LogConfig::default(),
            apps: AppsConfigFile::default(),
            identity: IdentityConfig::default(),
            audit: AuditConfig::default(),
            tpm: TpmConfig::default(),
            software: SoftwareConfig::default(),
            ha: HaConfig::default(),
        }
    }
}

impl Default for FmConfig {
    fn default() -> Self {
        FmConfig {
            event_log_cap: 4000,
            durability: "process".into(),
        }
    }
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            enabled: true,
            interval_secs: 10,
            filesystems: Vec::new(),
            thresholds: MonitorSettings::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// One day, in seconds.
const DAY: u64 = 86_400;

fn check_range(name: &str, value: u64, lo: u64, hi: u64) -> Result<(), Error> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(Error::Setting(format!(
            "{name} is {value}; it must be between {lo} and {hi}"
        )))
    }
}

impl Config {
    /// Reads a TOML config file; missing keys keep their defaults.
    pub fn from_file(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            Error::context(
                format!("cannot read config file {}", path.display()),
                source,
            )
        })?;
        toml::from_str(&text).map_err(|e| Error::ConfigFile {
            path: path.to_path_buf(),
            // With the line, so that a number too large for TOML (over
            // i64::MAX) is reported with its key.
            message: match e.span() {
                Some(span) => {
                    let line = text.get(..span.start).unwrap_or("").matches('\n').count() + 1;
                    let src = text.lines().nth(line - 1).unwrap_or("").trim();
                    format!("{} (line {line}: {src})", e.message())
                }
                None => e.message().to_string(),
            },
        })
    }

    /// Every numeric setting with its name and allowed range (inclusive).
    pub fn numeric_settings(&self) -> Vec<(&'static str, u64, u64, u64)> {
        vec![
            ("ha.lease_ms", self.ha.lease_ms, 200, 60_000),
            ("ha.sync_grace_ms", self.ha.sync_grace_ms, 500, 600_000),
            (
                "fm.event_log_cap",
                self.fm.event_log_cap,
                1,
                MAX_EVENT_LOG_CAP,
            ),
            ("token_ttl_secs", self.token_ttl_secs, 5, 365 * DAY),
            (
                "identity.lockout_failure_attempts",
                self.identity.lockout_failure_attempts,
                0,
                1000,
            ),
            (
                "identity.lockout_duration_secs",
                self.identity.lockout_duration_secs,
                1,
                365 * DAY,
            ),
            (
                "identity.login_free_failures",
                self.identity.login_free_failures,
                0,
                1_000_000,
            ),
            (
                "identity.login_max_delay_ms",
                self.identity.login_max_delay_ms,
                0,
                3_600_000,
            ),
            (
                "identity.login_max_hold_ms",
                self.identity.login_max_hold_ms,
                0,
                60_000,
            ),
            (
                "join_token_ttl_secs",
                self.join_token_ttl_secs,
                60,
                30 * DAY,
            ),
            (
                "heartbeat_key_max_age_secs",
                self.heartbeat_key_max_age_secs,
                0,
                10 * 365 * DAY,
            ),
            ("agent_cert_secs", self.agent_cert_secs, 30, 5 * 365 * DAY),
            (
                "software.max_release_bytes",
                self.software.max_release_bytes,
                1024,
                64 << 30,
            ),
            (
                "software.host_deploy_timeout_secs",
                self.software.host_deploy_timeout_secs,
                10,
                7 * DAY,
            ),
            ("software.trial_secs", self.software.trial_secs, 5, DAY),
            (
                "tpm.quote_interval_secs",
                self.tpm.quote_interval_secs,
                1,
                30 * DAY,
            ),
            (
                "max_body_bytes",
                self.max_body_bytes as u64,
                1024,
                MAX_BODY_BYTES_LIMIT,
            ),
            ("monitor.interval_secs", self.monitor.interval_secs, 1, 3600),
            ("audit.retention_days", self.audit.retention_days, 1, 36_500),
            (
                "audit.max_records",
                self.audit.max_records,
                1,
                1_000_000_000,
            ),
            (
                "apps.max_package_bytes",
                self.apps.max_package_bytes,
                1 << 20,
                64 << 30,
            ),
            (
                "http.header_read_timeout_secs",
                self.http.header_read_timeout_secs,
                1,
                300,
            ),
            (
                "http.body_read_timeout_secs",
                self.http.body_read_timeout_secs,
                1,
                3600,
            ),
            (
                "http.idle_timeout_secs",
                self.http.idle_timeout_secs,
                1,
                3600,
            ),
            (
                "http.max_connections",
                self.http.max_connections,
                MIN_CONNECTIONS,
                1_000_000,
            ),
            ("dc.sync_interval_secs", self.dc.sync_interval_secs, 1, 3600),
            ("dc.offline_after_secs", self.dc.offline_after_secs, 2, DAY),
            (
                "dc.out_of_sync_alarm_after_secs",
                self.dc.out_of_sync_alarm_after_secs,
                1,
                7 * DAY,
            ),
            (
                "dc.enroll_token_ttl_secs",
                self.dc.enroll_token_ttl_secs,
                1,
                30 * DAY,
            ),
            (
                "dc.subcloud_cert_days",
                u64::from(self.dc.subcloud_cert_days),
                1,
                3650,
            ),
        ]
    }

    /// The durability mode named by `fm.durability`.
    pub fn durability(&self) -> Result<Durability, Error> {
        Durability::parse(&self.fm.durability).ok_or_else(|| {
            Error::Setting(format!(
                "fm.durability is {:?}; use process or power",
                self.fm.durability
            ))
        })
    }

    /// Where the store is: the `store` URL, else `roost.db` in the data
    /// directory.
    pub fn store_location(&self) -> Result<roost_store::Location, Error> {
        match self.store.as_deref() {
            Some(DUPLEX) => Ok(roost_store::Location::Postgres(
                self.duplex()?.cluster.url(),
            )),
            None | Some("") => Ok(roost_store::Location::Sqlite(
                self.data_dir.join(roost_store::DATABASE_FILE),
            )),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                roost_store::Location::parse(url).map_err(|e| Error::Setting(e.to_string()))
            }
            Some(other) => Err(Error::Setting(format!(
                "store is {:?}; use a postgres:// URL, or leave it unset for the embedded store in the data directory",
                roost_store::redact_url(other)
            ))),
        }
    }

    /// The duplex settings (`store = "duplex"`), checked.
    pub fn duplex(&self) -> Result<Duplex, Error> {
        let ha = &self.ha;
        let need = |what: &str| {
            Error::Setting(format!(
                "store is \"duplex\" but [ha] {what} is not set; see docs/ha.md"
            ))
        };
        let password = read_secret_file(
            ha.db_password_file
                .as_deref()
                .ok_or_else(|| need("db_password_file"))?,
            "ha.db_password_file",
        )?;
        if password.len() < 16
            || !password
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c))
        {
            return Err(Error::Setting(
                "ha.db_password_file must hold at least 16 characters of letters, digits and -_.~"
                    .into(),
            ));
        }
        let bin = match &ha.postgres_bin {
            Some(b) => b.clone(),
            None => roost_store::cluster::find_postgres_bin().ok_or_else(|| {
                Error::Setting(
                    "store is \"duplex\" but no PostgreSQL is installed under /usr/lib/postgresql; install Debian's postgresql or set [ha] postgres_bin".into(),
                )
            })?,
        };
        let name = ha.name.clone().unwrap_or_else(|| self.hostname.clone());
        let peer = ha.peer.clone().ok_or_else(|| need("peer"))?;
        if peer == name {
            return Err(Error::Setting(format!(
                "[ha] peer is this controller's own name {name:?}"
            )));
        }
        let bmc = match &ha.peer_bmc {
            None => None,
            Some(url) => Some(crate::hosts::bmc::BmcTarget {
                host: peer.clone(),
                bm_type: "redfish".into(),
                address: Some(url.clone()),
                username: ha.peer_bmc_username.clone().unwrap_or_default(),
                password: match &ha.peer_bmc_password_file {
                    Some(f) => Some(read_secret_file(f, "ha.peer_bmc_password_file")?),
                    None => None,
                },
            }),
        };
        let witness = match &ha.witness {
            None => None,
            Some(url) => {
                if !(url.starts_with("http://") || url.starts_with("https://"))
                    || reqwest::Url::parse(url).is_err()
                {
                    return Err(Error::Setting(format!(
                        "[ha] witness {url:?} is not a URL such as http://192.168.204.9:6390"
                    )));
                }
                let text = read_secret_file(
                    ha.witness_key_file
                        .as_deref()
                        .ok_or_else(|| need("witness_key_file"))?,
                    "ha.witness_key_file",
                )?;
                let key = roost_api::witness::WitnessKey::from_secret(&text).ok_or_else(|| {
                    Error::Setting(format!(
                        "ha.witness_key_file must hold at least {} characters",
                        roost_api::witness::MIN_KEY_LEN
                    ))
                })?;
                Some(crate::witness::WitnessTarget {
                    url: url.clone(),
                    key,
                    pair: ha
                        .witness_pair
                        .clone()
                        .unwrap_or_else(|| roost_types::witness::pair_name(&name, &peer)),
                })
            }
        };
        let listen = ha.db_listen.ok_or_else(|| need("db_listen"))?;
        Ok(Duplex {
            cluster: roost_store::cluster::ClusterConfig {
                bin,
                dir: self.data_dir.join("pgsql"),
                listen,
                password,
                os_user: ha.db_user.clone(),
                name: name.clone(),
                timeout: std::time::Duration::from_millis(ha.lease_ms.saturating_mul(2)),
            },
            peer_db: ha.peer_db.ok_or_else(|| need("peer_db"))?,
            peer,
            bmc,
            witness,
            bootstrap: ha.bootstrap,
            grace_ms: ha.sync_grace_ms,
        })
    }

    /// Checks every setting. Every number has a range: a value outside it
    /// (for example one that would wrap when stored as a signed integer)
    /// is refused with the setting's name, the value and the range.
    pub fn validate(&self) -> Result<(), Error> {
        self.durability()?;
        self.store_location()?;
        for (name, value, lo, hi) in self.numeric_settings() {
            check_range(name, value, lo, hi)?;
        }
        if self.hostname.is_empty() || self.hostname.contains(['.', '=', ' ']) {
            return Err(Error::Setting(format!(
                "hostname {:?} must be non-empty and free of '.', '=' and spaces",
                self.hostname
            )));
        }
        if roost_types::SystemMode::parse(&self.system_mode).is_none() {
            return Err(Error::Setting(format!(
                "system_mode is {:?}; use simplex or duplex",
                self.system_mode
            )));
        }
        let Some(tls) = crate::certs::TlsMode::parse(&self.http.tls) else {
            return Err(Error::Setting(format!(
                "http.tls is {:?}; use auto, on or off",
                self.http.tls
            )));
        };
        tls.https(self.listen.ip(), self.http.plain_http)
            .map_err(|e| Error::Setting(e.to_string()))?;
        let role = roost_types::Role::parse(&self.role);
        if role.is_none() {
            return Err(Error::Setting(format!(
                "role is {:?}; use standalone, systemcontroller or subcloud",
                self.role
            )));
        }
        if role == Some(roost_types::Role::Subcloud) && self.dc.system_controller.is_none() {
            return Err(Error::Setting(
                "a subcloud needs the system controller's URL (--system-controller)".into(),
            ));
        }
        if self.dc.offline_after_secs <= self.dc.sync_interval_secs {
            return Err(Error::Setting(
                "dc.offline_after_secs must be longer than dc.sync_interval_secs".into(),
            ));
        }
        if let Err(e) =
            roost_release::TrustedKeys::parse(self.software.trusted_keys.iter().map(String::as_str))
        {
            return Err(Error::Setting(format!("software.trusted_keys: {e}")));
        }
        if self.tpm.pcrs.is_empty() || self.tpm.pcrs.iter().any(|&p| p > 23) {
            return Err(Error::Setting(format!(
                "tpm.pcrs is {:?}; give one or more PCR indices from 0 to 23",
                self.tpm.pcrs
            )));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(Error::Setting(format!(
                "log.format is {:?}; use text or json",
                self.log.format
            )));
        }
        self.monitor
            .thresholds
            .validate()
            .map_err(|e| Error::Setting(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_file_keeps_the_other_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("roost.toml");
        std::fs::write(
            &p,
            "listen = \"127.0.0.1:7000\"\n[fm]\nevent_log_cap = 10\n[monitor.thresholds.cpu]\nmajor = 50.0\ncritical = 60.0\nhysteresis = 2.0\n",
        )
        .unwrap();
        let c = Config::from_file(&p).unwrap();
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.fm.event_log_cap, 10);
        assert_eq!(c.fm.durability, "process");
        assert_eq!(c.monitor.thresholds.cpu.major, 50.0);
        assert_eq!(c.monitor.thresholds.memory.major, 80.0);
        c.validate().unwrap();
    }

    #[test]
    fn the_heartbeat_and_dc_listeners_default_to_the_api_address() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("roost.toml");
        let at = |text: &str| {
            std::fs::write(&p, text).unwrap();
            let c = Config::from_file(&p).unwrap();
            (
                c.heartbeat_addr().to_string(),
                c.dc_listen_addr().to_string(),
            )
        };
        assert_eq!(
            at(""),
            ("127.0.0.1:0".to_string(), "127.0.0.1:6386".to_string())
        );
        assert_eq!(
            at("listen = \"10.0.0.2:6385\"\n"),
            ("10.0.0.2:0".to_string(), "10.0.0.2:6386".to_string())
        );
        assert_eq!(
            at("listen = \"0.0.0.0:6385\"\n"),
            ("0.0.0.0:0".to_string(), "0.0.0.0:6386".to_string())
        );
        assert_eq!(
            at("heartbeat_listen = \"0.0.0.0:0\"\n[dc]\nlisten = \"0.0.0.0:7000\"\n"),
            ("0.0.0.0:0".to_string(), "0.0.0.0:7000".to_string())
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("roost.toml");
        std::fs::write(&p, "lisen = \"x\"\n").unwrap();
        let e = Config::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("lisen"), "{e}");
        let c = Config {
            fm: FmConfig {
                durability: "maybe".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("maybe"));
    }

    #[test]
    fn duplex_settings_are_checked_and_name_what_is_missing() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("db-password");
        std::fs::write(&pw, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let p = dir.path().join("roost.toml");
        let base = format!(
            "hostname = \"controller-0\"\nstore = \"duplex\"\n[ha]\npostgres_bin = \"/usr/bin\"\ndb_password_file = \"{}\"\n",
            pw.display()
        );
        let load = |extra: &str| {
            std::fs::write(&p, format!("{base}{extra}")).unwrap();
            Config::from_file(&p).unwrap().duplex()
        };
        let e = load("").unwrap_err().to_string();
        assert!(e.contains("[ha] peer is not set"), "{e}");
        let e = load("peer = \"controller-0\"\n").unwrap_err().to_string();
        assert!(e.contains("own name"), "{e}");
        let e = load("peer = \"controller-1\"\n").unwrap_err().to_string();
        assert!(e.contains("db_listen"), "{e}");
        let ok = "peer = \"controller-1\"\ndb_listen = \"127.0.0.1:5433\"\npeer_db = \"127.0.0.2:5433\"\n";
        let d = load(ok).unwrap();
        assert_eq!(d.peer, "controller-1");
        assert!(d.bmc.is_none() && d.witness.is_none());
        // A witness needs its key, in a private file, long enough.
        let key = dir.path().join("witness-key");
        let with_witness = format!(
            "{ok}witness = \"http://192.0.2.9:6390\"\nwitness_key_file = \"{}\"\n",
            key.display()
        );
        std::fs::write(&key, "short\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = load(&with_witness).unwrap_err().to_string();
        assert!(e.contains("at least 32 characters"), "{e}");
        std::fs::write(&key, format!("{}\n", "k".repeat(40))).unwrap();
        let w = load(&with_witness).unwrap().witness.unwrap();
        assert_eq!(w.pair, "controller-0+controller-1");
        assert_eq!(w.url, "http://192.0.2.9:6390");
        let e = load(&format!("{ok}witness = \"192.0.2.9:6390\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a URL"), "{e}");
        let e = load(&format!("{ok}witness = \"http://192.0.2.9:6390\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("witness_key_file"), "{e}");
        load(ok).unwrap();
        assert_eq!(
            d.cluster.url(),
            "postgres://roost:0123456789abcdef0123@127.0.0.1:5433/roost"
        );
        // The store is the local database, named without its password.
        let c = Config::from_file(&p).unwrap();
        assert_eq!(
            c.store_location().unwrap().describe(),
            "postgres://roost:***@127.0.0.1:5433/roost"
        );
        // A password file others can read is refused, and so is a short one.
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load(ok).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::write(&pw, "short").unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = load(ok).unwrap_err().to_string();
        assert!(e.contains("at least 16"), "{e}");
    }

    #[test]
    fn every_numeric_setting_has_a_range() {
        let c = Config::default();
        c.validate().unwrap();
        for (name, value, lo, hi) in c.numeric_settings() {
            assert!((lo..=hi).contains(&value), "default {name}");
            // Each number checked: past either end is refused, naming the setting.
            for bad in [lo.checked_sub(1), hi.checked_add(1), Some(u64::MAX)]
                .into_iter()
                .flatten()
            {
                let mut c = c.clone();
                set_numeric(&mut c, name, bad);
                let stored = c.numeric_settings().iter().find(|s| s.0 == name).unwrap().1;
                let e = c.validate().unwrap_err().to_string();
                assert!(e.contains(name) && e.contains(&stored.to_string()), "{e}");
            }
        }
        let mut c = Config::default();
        c.fm.event_log_cap = i64::MAX as u64 + 1;
        assert!(c.validate().is_err());
    }

    fn set_numeric(c: &mut Config, name: &str, v: u64) {
        let small = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        match name {
            "fm.event_log_cap" => c.fm.event_log_cap = v,
            "token_ttl_secs" => c.token_ttl_secs = v,
            "identity.lockout_failure_attempts" => c.identity.lockout_failure_attempts = v,
            "identity.lockout_duration_secs" => c.identity.lockout_duration_secs = v,
            "identity.login_free_failures" => c.identity.login_free_failures = v,
            "identity.login_max_delay_ms" => c.identity.login_max_delay_ms = v,
            "identity.login_max_hold_ms" => c.identity.login_max_hold_ms = v,
            "join_token_ttl_secs" => c.join_token_ttl_secs = v,
            "heartbeat_key_max_age_secs" => c.heartbeat_key_max_age_secs = v,
            "agent_cert_secs" => c.agent_cert_secs = v,
            "software.max_release_bytes" => c.software.max_release_bytes = v,
            "software.host_deploy_timeout_secs" => c.software.host_deploy_timeout_secs = v,
            "software.trial_secs" => c.software.trial_secs = v,
            "tpm.quote_interval_secs" => c.tpm.quote_interval_secs = v,
            "max_body_bytes" => c.max_body_bytes = v as usize,
            "http.header_read_timeout_secs" => c.http.header_read_timeout_secs = v,
            "http.body_read_timeout_secs" => c.http.body_read_timeout_secs = v,
            "http.idle_timeout_secs" => c.http.idle_timeout_secs = v,
            "http.max_connections" => c.http.max_connections = v,
            "monitor.interval_secs" => c.monitor.interval_secs = v,
            "audit.retention_days" => c.audit.retention_days = v,
            "audit.max_records" => c.audit.max_records = v,
            "apps.max_package_bytes" => c.apps.max_package_bytes = v,
            "dc.sync_interval_secs" => c.dc.sync_interval_secs = v,
            "dc.offline_after_secs" => c.dc.offline_after_secs = v,
            "dc.out_of_sync_alarm_after_secs" => c.dc.out_of_sync_alarm_after_secs = v,
            "dc.enroll_token_ttl_secs" => c.dc.enroll_token_ttl_secs = v,
            "dc.subcloud_cert_days" => c.dc.subcloud_cert_days = small(v),
            "ha.lease_ms" => c.ha.lease_ms = v,
            "ha.sync_grace_ms" => c.ha.sync_grace_ms = v,
            other => panic!("no setter for {other}"),
        }
    }

    #[test]
    fn the_sealing_tpm_is_the_configured_one_or_the_machines_or_none() {
        let mut t = TpmConfig::default();
        let auto = t.seal_device();
        let present = roost_tpm::supported() && std::path::Path::new("/dev/tpmrm0").exists();
        assert_eq!(auto.is_some(), present);
        t.device = Some("none".into());
        assert_eq!(t.seal_device(), None);
        t.device = Some("swtpm:host=127.0.0.1,port=2321".into());
        assert_eq!(
            t.seal_device().as_deref(),
            Some("swtpm:host=127.0.0.1,port=2321")
        );
    }

    #[test]
    fn numbers_past_any_integer_type_name_their_setting() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("roost.toml");
        for (text, name) in [
            ("max_body_bytes = 18446744073709551615\n", "max_body_bytes"),
            ("max_body_bytes = 18446744073709551616\n", "max_body_bytes"),
            (
                "[dc]\nsubcloud_cert_days = 4294967296\n",
                "subcloud_cert_days",
            ),
            ("token_ttl_secs = -1\n", "token_ttl_secs"),
        ] {
            std::fs::write(&p, format!("hostname = \"c\"\n{text}")).unwrap();
            let e = Config::from_file(&p)
                .and_then(|c| c.validate())
                .unwrap_err()
                .to_string();
            assert!(e.contains(name), "{text}: {e}");
        }
    }
}
