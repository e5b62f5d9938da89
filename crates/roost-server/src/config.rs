//! Server configuration: defaults, an optional TOML file, and overrides from
//! flags and environment (applied by the caller, which knows the flags).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use roost_mtce::{MonitorSettings, Thresholds};
use roost_store::Durability;
use serde::Deserialize;

/// Everything `roost server` needs to run.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the database, lock and credentials live.
    pub data_dir: PathBuf,
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
    /// UDP address the heartbeat is sent from.
    pub heartbeat_listen: SocketAddr,
    /// Lifetime of the join tokens `roost host add` hands out, seconds.
    pub join_token_ttl_secs: u64,
    /// `standalone` (default), `systemcontroller` or `subcloud`.
    pub role: String,
    pub dc: DcConfigFile,
    pub fm: FmConfig,
    pub monitor: MonitorConfig,
    pub log: LogConfig,
}

/// Distributed Cloud settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DcConfigFile {
    /// System controller: the HTTPS (mutual TLS) listener subclouds dial.
    pub listen: SocketAddr,
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
            listen: SocketAddr::from(([0, 0, 0, 0], 6386)),
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

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./roost-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 6385)),
            alarm_catalogue: None,
            hostname: "controller-0".into(),
            token_ttl_secs: 3600,
            max_body_bytes: 64 * 1024,
            public_url: None,
            system_mode: "simplex".into(),
            heartbeat_listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            join_token_ttl_secs: 3600,
            role: "standalone".into(),
            dc: DcConfigFile::default(),
            fm: FmConfig::default(),
            monitor: MonitorConfig::default(),
            log: LogConfig::default(),
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

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML config file; missing keys keep their defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })
    }

    /// The durability mode named by `fm.durability`.
    pub fn durability(&self) -> Result<Durability, ConfigError> {
        Durability::parse(&self.fm.durability).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "fm.durability is {:?}; use process or power",
                self.fm.durability
            ))
        })
    }

    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.durability()?;
        if self.fm.event_log_cap == 0 {
            return Err(ConfigError::Invalid(
                "fm.event_log_cap must be at least 1".into(),
            ));
        }
        if self.token_ttl_secs < 60 {
            return Err(ConfigError::Invalid(
                "token_ttl_secs must be at least 60".into(),
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "max_body_bytes must be at least 1024".into(),
            ));
        }
        if self.monitor.interval_secs == 0 {
            return Err(ConfigError::Invalid(
                "monitor.interval_secs must be at least 1".into(),
            ));
        }
        if self.hostname.is_empty() || self.hostname.contains(['.', '=', ' ']) {
            return Err(ConfigError::Invalid(format!(
                "hostname {:?} must be non-empty and free of '.', '=' and spaces",
                self.hostname
            )));
        }
        if !matches!(self.system_mode.as_str(), "simplex" | "duplex") {
            return Err(ConfigError::Invalid(format!(
                "system_mode is {:?}; use simplex or duplex",
                self.system_mode
            )));
        }
        if !matches!(
            self.role.as_str(),
            "standalone" | "systemcontroller" | "subcloud"
        ) {
            return Err(ConfigError::Invalid(format!(
                "role is {:?}; use standalone, systemcontroller or subcloud",
                self.role
            )));
        }
        if self.role == "subcloud" && self.dc.system_controller.is_none() {
            return Err(ConfigError::Invalid(
                "a subcloud needs the system controller's URL (--system-controller)".into(),
            ));
        }
        if self.dc.sync_interval_secs == 0
            || self.dc.offline_after_secs <= self.dc.sync_interval_secs
        {
            return Err(ConfigError::Invalid(
                "dc.offline_after_secs must be longer than dc.sync_interval_secs (at least 1)"
                    .into(),
            ));
        }
        if self.dc.subcloud_cert_days == 0 {
            return Err(ConfigError::Invalid(
                "dc.subcloud_cert_days must be at least 1".into(),
            ));
        }
        if self.join_token_ttl_secs < 60 {
            return Err(ConfigError::Invalid(
                "join_token_ttl_secs must be at least 60".into(),
            ));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid(format!(
                "log.format is {:?}; use text or json",
                self.log.format
            )));
        }
        self.monitor
            .thresholds
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))
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
}
